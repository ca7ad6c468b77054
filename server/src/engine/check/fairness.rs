//! Fairness within a priority: aging.
//!
//! Among tasks of one priority, the first to ask is not always the first served: a stream of
//! new tasks can take every freed slot before an old task's next refresh. With an aging
//! threshold (`[fairness] aging`, 10 minutes by default), a pending task that has waited
//! longer than the threshold reserves the nodes and the capacity it waits for against every
//! newer task of its priority, exactly as a higher-priority task does; among aged tasks the
//! older goes first. Waiting ends: once an old task is aged, no newer task of its priority can
//! take what it needs, so it is granted as soon as the capacity exists for it.

use super::{CheckCtx, Failure};
use crate::engine::task::Task;
use crate::engine::time::Timestamp;
use std::time::Duration;

/// Whether `other`, of the same priority as `task`, goes first by aging at `now`: it has
/// waited at least `aging` and is older (by creation, then uid).
pub(super) fn goes_first(
    other: &Task,
    task: &Task,
    aging: Option<Duration>,
    now: Timestamp,
) -> bool {
    let Some(aging) = aging else {
        return false;
    };
    now.since(other.create_time) >= aging
        && (other.create_time, other.uid.as_str()) < (task.create_time, task.uid.as_str())
}

/// "tasks of priority 0 that have waited longer than 10m go first".
pub(super) fn rule_text(aging: Option<Duration>, priority: i32) -> String {
    let threshold = aging.map_or_else(String::new, |a| {
        format!(" longer than {}", humantime::format_duration(a))
    });
    format!("tasks of priority {priority} that have waited{threshold} go first")
}

impl CheckCtx<'_> {
    /// A capacity failure while older tasks reserve by aging says so: their reservations count
    /// as taken.
    pub(super) fn note_aging(&self, mut f: Failure) -> Failure {
        if !self.aged || f.details.contains("older task") {
            return f;
        }
        let mut older: Vec<(Timestamp, &str)> = self
            .sched_nodes
            .values()
            .chain(self.sched_pdisks.values())
            .filter_map(|s| s.aged_since.map(|t| (t, s.task)))
            .collect();
        older.sort();
        older.dedup();
        if let Some((since, task)) = older.first() {
            let more = match older.len() {
                1 => String::new(),
                2 => " and 1 more".to_owned(),
                k => format!(" and {} more", k - 1),
            };
            let sep = if f.details.ends_with('.') { " " } else { ". " };
            f.details.push_str(&format!(
                "{sep}Reserved for older task '{task}' (waiting since {since}){more}: {}.",
                rule_text(self.st.cluster.fairness().aging, self.task.priority)
            ));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::task::Mode;

    fn task(uid: &str, created: u64) -> Task {
        Task {
            uid: uid.into(),
            owner: "o".into(),
            description: String::new(),
            mode: Mode::Strong,
            priority: 0,
            composite: false,
            groups: Vec::new(),
            create_time: Timestamp(created),
            last_refresh_time: Timestamp(created),
            override_holds: false,
        }
    }

    #[test]
    fn only_an_older_task_past_the_threshold_goes_first() {
        let aging = Some(Duration::from_secs(600));
        let old = task("b", 0);
        let new = task("a", 1_000);
        let at = |s: u64| Timestamp(s * 1000);
        assert!(!goes_first(&old, &new, aging, at(599)), "not aged yet");
        assert!(goes_first(&old, &new, aging, at(600)));
        assert!(!goes_first(&new, &old, aging, at(10_000)), "newer never");
        assert!(!goes_first(&old, &new, None, at(10_000)), "aging off");
        // One moment: the uid breaks the tie.
        let twin = task("c", 0);
        assert!(goes_first(&old, &twin, aging, at(600)));
        assert!(!goes_first(&twin, &old, aging, at(600)));
    }

    #[test]
    fn the_rule_reads_well() {
        assert_eq!(
            rule_text(Some(Duration::from_secs(600)), 0),
            "tasks of priority 0 that have waited longer than 10m go first"
        );
    }
}
