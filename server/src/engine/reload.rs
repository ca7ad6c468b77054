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

    /// The live locks of a stored state that `cluster` does not know, in words: a server must not
    /// start with them (their locks would silently vanish).
    pub fn stranded_locks(cluster: &Arc<Cluster>, snapshot: &Snapshot) -> Vec<String> {
        let probe = State::new(cluster.clone());
        snapshot
            .tasks
            .values()
            .flat_map(|t| t.actions().map(move |a| (t, a)))
            .filter(|(_, a)| matches!(a.status, ActionStatus::Performed { .. }))
            .filter(|(_, a)| probe.resolve(&a.scope).is_err())
            .map(|(t, a)| format!("{} (task '{}', action {})", a.scope, t.uid, a.id))
            .collect()
    }
}
