//! Swapping the inventory under a running state (reload) and checking a stored state against an
//! inventory (start-up).
//!
//! A new inventory may add, remove or change nodes, groups, rings and limits, but it must not
//! strand a live lock: every performed action must still name exactly what it locked. Otherwise
//! the lock would silently vanish (a removed node) or grow (a host that gained nodes) without a
//! check. Such a change is refused as a whole.

use crate::engine::cluster::Cluster;
use crate::engine::error::EngineError;
use crate::engine::record::{Change, Snapshot};
use crate::engine::state::{Outcome, State};
use crate::engine::task::ActionStatus;
use std::sync::Arc;

/// What a reload changed, for the log and the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// Nodes before and after.
    pub nodes: (usize, usize),
    /// Storage groups before and after.
    pub groups: (usize, usize),
}

impl State {
    /// Replaces the inventory, keeping tasks, locks, node records and liveness. Refused, with
    /// nothing changed, when a live lock would be stranded.
    pub fn reload(&mut self, cluster: Arc<Cluster>) -> Result<Outcome<Reloaded>, EngineError> {
        self.ensure_writable()?;
        let mut next = State::restore(cluster, self.snapshot());
        for task in self.tasks.values() {
            for a in task.actions() {
                if !matches!(a.status, ActionStatus::Performed { .. }) {
                    continue;
                }
                let before = self.resolve(&a.scope).ok();
                let after = next.resolve(&a.scope).ok();
                if after.is_none() {
                    return Err(EngineError::Impossible(format!(
                        "inventory reload refused: {} is locked by task '{}' (action {}) and is \
                         not in the new inventory; complete or drop the task first",
                        a.scope, task.uid, a.id
                    )));
                }
                if before != after {
                    return Err(EngineError::Impossible(format!(
                        "inventory reload refused: {} is locked by task '{}' (action {}) and \
                         would lock other nodes under the new inventory; complete or drop the \
                         task first",
                        a.scope, task.uid, a.id
                    )));
                }
            }
        }
        let value = Reloaded {
            nodes: (self.cluster.node_count(), next.cluster.node_count()),
            groups: (self.cluster.groups().count(), next.cluster.groups().count()),
        };
        next.health = self.health;
        next.schedule_ring_settles();
        // Liveness is soft state that a reload must not lose: without the timers, a node whose
        // agent died would never be seen down.
        next.last_seen = std::mem::take(&mut self.last_seen);
        next.last_seen
            .retain(|id, _| next.cluster.node(*id).is_some());
        next.heartbeat_due = std::mem::take(&mut self.heartbeat_due);
        next.heartbeat_due
            .retain(|(_, id)| next.cluster.node(*id).is_some());
        next.liveness_armed = self.liveness_armed;
        // Records of nodes that left the inventory go too; restore already left them out.
        let mut gone: Vec<_> = self
            .runtime
            .keys()
            .filter(|id| next.cluster.node(**id).is_none())
            .copied()
            .collect();
        gone.sort_unstable();
        *self = next;
        Ok(Outcome {
            value,
            changes: gone.into_iter().map(Change::DeleteNode).collect(),
        })
    }

    /// The live locks of a stored state that `cluster` does not know, or resolves to other nodes
    /// or disks than when they were granted, in words: a server must not start with them (their
    /// locks would silently vanish, or grow onto nodes that another task may hold).
    pub fn stranded_locks(cluster: &Arc<Cluster>, snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .tasks
            .values()
            .flat_map(|t| t.actions().map(move |a| (t, a)))
            .filter(|(_, a)| matches!(a.status, ActionStatus::Performed { .. }))
            .filter_map(|(t, a)| {
                let why = match (super::state::resolve(cluster, &a.scope), &a.covers) {
                    (Err(_), _) => "is not in it",
                    (Ok(now), Some(then)) if now != *then => "would cover other nodes or disks",
                    _ => return None,
                };
                Some(format!(
                    "{} (task '{}', action {}) {why}",
                    a.scope, t.uid, a.id
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::task::{LockRequest, Mode, Scope, TaskRequest};
    use crate::engine::time::Timestamp;

    fn cluster(hosts: [&str; 3]) -> Arc<Cluster> {
        let mut text = String::from("[limits]\nmax_unavailable_ratio = 0\n");
        for (i, h) in hosts.iter().enumerate() {
            text.push_str(&format!(
                "[[nodes]]\nid = {}\nhost = \"{h}\"\nport = 1\n",
                i + 1
            ));
        }
        Arc::new(inventory::parse(&text, Format::Toml).expect("inventory"))
    }

    /// A stored lock on host "a" of nodes 1 and 2.
    fn host_lock() -> Snapshot {
        let mut st = State::new(cluster(["a", "a", "b"]));
        let host = LockRequest {
            scope: Scope::Host("a".into()),
            duration: None,
            kind: Default::default(),
        };
        let req = TaskRequest::of("t", Mode::Force, vec![vec![host]]);
        let o = st.create(req, Timestamp(1_000)).expect("create");
        assert!(o.value.actions().all(|a| a.is_performed()));
        st.snapshot()
    }

    #[test]
    fn a_start_is_refused_when_a_lock_would_cover_other_nodes() {
        let snapshot = host_lock();
        assert!(State::stranded_locks(&cluster(["a", "a", "b"]), &snapshot).is_empty());
        // Node 3 moved onto host a: the lock would grow onto it.
        let grown = State::stranded_locks(&cluster(["a", "a", "a"]), &snapshot);
        assert_eq!(grown.len(), 1, "{grown:?}");
        assert!(grown[0].contains("would cover other nodes"), "{grown:?}");
        // Node 2 moved away: the lock would shrink.
        let shrunk = State::stranded_locks(&cluster(["a", "c", "b"]), &snapshot);
        assert_eq!(shrunk.len(), 1, "{shrunk:?}");
        // Host a gone.
        let gone = State::stranded_locks(&cluster(["x", "y", "b"]), &snapshot);
        assert!(gone[0].contains("is not in it"), "{gone:?}");
    }

    #[test]
    fn records_without_what_a_lock_covered_are_checked_by_resolution_only() {
        let mut snapshot = host_lock();
        for task in snapshot.tasks.values_mut() {
            for g in &mut task.groups {
                for a in &mut g.actions {
                    a.covers = None;
                }
            }
        }
        assert!(State::stranded_locks(&cluster(["a", "a", "a"]), &snapshot).is_empty());
        assert_eq!(
            State::stranded_locks(&cluster(["x", "y", "b"]), &snapshot).len(),
            1
        );
    }
}
