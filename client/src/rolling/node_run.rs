//! One node of a rollout: where it is (its phase), and how the rollout tells that a restarted
//! node is up again (what it waited for, heartbeat times compared).

use super::select::{Target, state_name};
use super::task::show_time;
use crate::proto::arbiter::v1::NodeStatus;
use crate::proto::ydb::maintenance::{ActionUid, ItemState};
use std::time::{Instant, SystemTime};

/// Where one node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Its lock is pending.
    Waiting,
    /// Its lock is granted; it waits for a free slot.
    Granted,
    /// Its command runs.
    Running,
    /// Its command succeeded; waiting to see it up again, then to complete its lock.
    ComingUp {
        since: Instant,
        /// The last heartbeat the server knew of just after the command ended (outer `None`:
        /// not looked yet).
        baseline: Option<Option<prost_types::Timestamp>>,
        /// Seen up; only the completion is left.
        up: bool,
    },
    /// Restarted and completed.
    Done,
    /// The command failed on every attempt.
    Failed(String),
    /// Not seen up in time.
    Stalled,
    /// Its action left the task before its turn.
    Lost(String),
    /// Stopped by a second Ctrl-C.
    Aborted,
}

#[derive(Debug)]
pub(super) struct NodeRun {
    pub(super) target: Target,
    pub(super) phase: Phase,
    pub(super) uid: Option<ActionUid>,
    pub(super) deadline: Option<SystemTime>,
    pub(super) why: String,
    /// Its action vanished from the task while it was in progress.
    pub(super) lock_gone: bool,
    pub(super) remark: Option<String>,
}

impl NodeRun {
    pub(super) fn in_flight(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::ComingUp { .. })
    }

    pub(super) fn terminal(&self) -> bool {
        matches!(
            self.phase,
            Phase::Done | Phase::Failed(_) | Phase::Stalled | Phase::Lost(_) | Phase::Aborted
        )
    }

    pub(super) fn kept_until(&self) -> String {
        match self.deadline {
            Some(t) => format!("its lock is kept until {}", show_time(t)),
            None => "its lock is kept".to_owned(),
        }
    }
}

/// What the rollout waited for to count a restarted node as up again, and what the arbiter
/// last said about it (`status`: its last listing; `listed`: whether the last listing worked).
/// A node with an agent (monitored) needs a heartbeat newer than the one the arbiter knew of
/// just after the command ended, and the state UP; a node without one only the state UP.
pub(super) fn waited_for(status: Option<&NodeStatus>, listed: bool) -> String {
    let Some(st) = status else {
        return if listed {
            "waited for the arbiter to report it up, but the arbiter no longer lists it".into()
        } else {
            "waited for the arbiter to report it up, but the arbiter could not be asked".into()
        };
    };
    let waited = if st.monitored {
        "waited for a heartbeat from its agent sent after the command finished, and for the arbiter to report it up"
    } else {
        "waited for the arbiter to report it up; it has no agent sending heartbeats"
    };
    if st.detail.is_empty() {
        format!(
            "{waited}; the arbiter sees it {}",
            state_name(ItemState::try_from(st.state).unwrap_or(ItemState::Unspecified))
        )
    } else {
        format!("{waited}; the arbiter says: {}", st.detail)
    }
}

/// Whether heartbeat time `a` is later than `b` (no heartbeat is the earliest).
pub(super) fn newer(
    a: &Option<prost_types::Timestamp>,
    b: &Option<prost_types::Timestamp>,
) -> bool {
    let key = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| (t.seconds, t.nanos));
    key(a) > key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos })
    }

    #[test]
    fn a_stall_says_what_the_rollout_waited_for() {
        let agent = NodeStatus {
            node_id: 4,
            monitored: true,
            state: ItemState::Down as i32,
            detail: "no heartbeat for 5s".into(),
            ..NodeStatus::default()
        };
        assert_eq!(
            waited_for(Some(&agent), true),
            "waited for a heartbeat from its agent sent after the command finished, and for the arbiter to report it up; the arbiter says: no heartbeat for 5s"
        );
        let quiet = NodeStatus {
            node_id: 4,
            monitored: false,
            state: ItemState::Down as i32,
            ..NodeStatus::default()
        };
        let text = waited_for(Some(&quiet), true);
        assert!(
            text.starts_with("waited for the arbiter to report it up; it has no agent")
                && text.ends_with("the arbiter sees it down"),
            "{text}"
        );
        assert!(waited_for(None, false).ends_with("the arbiter could not be asked"));
        assert!(waited_for(None, true).ends_with("the arbiter no longer lists it"));
    }

    #[test]
    fn heartbeats_order_by_time() {
        assert!(newer(&ts(5, 1), &ts(5, 0)));
        assert!(newer(&ts(6, 0), &ts(5, 999)));
        assert!(newer(&ts(1, 0), &None));
        assert!(!newer(&None, &None));
        assert!(!newer(&ts(5, 0), &ts(5, 0)));
    }
}
