//! The records the store persists. Every accepted change is a short list of these, and
//! applying them in order to an empty [`Snapshot`] rebuilds the same state after a restart.
//!
//! The records hold results, not commands: replaying commands would need the same inventory and
//! the same clock, while a record of the outcome does not.

use crate::engine::audit::AuditEntry;
use crate::engine::cluster::NodeId;
use crate::engine::task::Task;
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the arbiter has seen of a node, beyond the inventory.
///
/// A node is unavailable (counted as down by the checks) while `down`, while `restarting_since`
/// is set (its lock was released and it has not been seen up since), and while `settle_until` is
/// set (it came up, but not long enough ago).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeRuntime {
    /// Down off-schedule: marked down by hand, or its heartbeats stopped.
    pub down: bool,
    /// When the arbiter last saw it come up (not set for nodes that were up when it started).
    pub up_since: Option<Timestamp>,
    /// When it went down.
    pub down_since: Option<Timestamp>,
    /// Why it is down: the operator's reason, or the heartbeat timeout.
    pub down_reason: String,
    /// Down because its heartbeats stopped; the next heartbeat brings it up.
    pub timed_out: bool,
    /// Its lock was released at this time and it has not been seen up since.
    pub restarting_since: Option<Timestamp>,
    /// It came up and counts as unavailable until then (the settle time).
    pub settle_until: Option<Timestamp>,
    /// It has an agent: it sent at least one heartbeat.
    pub monitored: bool,
    /// The version its agent reported.
    pub version: Option<String>,
    /// The process start time its agent reported.
    pub start_time: Option<Timestamp>,
    /// The last node-wide lock on it that ended (for `State::validate_fence`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_lock: Option<crate::engine::fence::EndedLock>,
    /// The last lock that ended on each of its disks, by pdisk id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub last_disk_locks: BTreeMap<u32, crate::engine::fence::EndedLock>,
    /// Its agent drained it for this action and has not undrained it yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<Box<crate::engine::drain::Applied>>,
    /// Its agent cordoned it for this action and has not uncordoned it yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cordoned: Option<Box<crate::engine::drain::Applied>>,
}

/// Monotonic counters that must survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The last fencing token issued (0: none yet).
    pub last_fencing_token: u64,
    /// The last action id number assigned.
    pub last_action_id: u64,
}

/// One persisted change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Insert or replace a task.
    PutTask(Task),
    /// Remove a task.
    DeleteTask(String),
    /// Insert or replace what is known of a node.
    PutNode(NodeId, NodeRuntime),
    /// Forget a node (it left the inventory).
    DeleteNode(NodeId),
    /// Replace the counters.
    PutCounters(Counters),
    /// Append an audit entry (keyed by its sequence number).
    PutAudit(AuditEntry),
    /// Drop every audit entry up to and including this sequence number (retention).
    DropAuditUpTo(u64),
    /// Insert or replace the freeze of a scope.
    PutFreeze(crate::engine::freeze::Freeze),
    /// Lift the freeze of a scope.
    DeleteFreeze(crate::engine::freeze::FreezeScope),
    /// Turn read-only mode on (`Some`) or off.
    PutReadOnly(Option<crate::engine::freeze::ReadOnly>),
    /// Replace the log of recent grants the rate budgets count.
    PutGrants(Vec<crate::engine::budget::Grant>),
}

/// Everything the engine's state is rebuilt from: the store's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Tasks by uid.
    pub tasks: BTreeMap<String, Task>,
    /// Node records by id.
    pub nodes: BTreeMap<NodeId, NodeRuntime>,
    /// Counters.
    pub counters: Counters,
    /// The audit trail by sequence number (absent in stores from before it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit: BTreeMap<u64, AuditEntry>,
    /// Freezes by scope key (absent in stores from before them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub freezes: BTreeMap<String, crate::engine::freeze::Freeze>,
    /// Read-only mode, when on (absent in stores from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<crate::engine::freeze::ReadOnly>,
    /// The recent grants the rate budgets count, oldest first (absent in stores from before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<crate::engine::budget::Grant>,
}

impl Snapshot {
    /// Applies one change, as a store would.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::PutTask(t) => {
                self.tasks.insert(t.uid.clone(), t.clone());
            }
            Change::DeleteTask(uid) => {
                self.tasks.remove(uid);
            }
            Change::PutNode(id, rt) => {
                self.nodes.insert(*id, rt.clone());
            }
            Change::DeleteNode(id) => {
                self.nodes.remove(id);
            }
            Change::PutCounters(c) => self.counters = *c,
            Change::PutAudit(e) => {
                self.audit.insert(e.seq, e.clone());
            }
            Change::DropAuditUpTo(seq) => {
                self.audit = self.audit.split_off(&seq.saturating_add(1));
            }
            Change::PutFreeze(f) => {
                self.freezes.insert(f.scope.key(), f.clone());
            }
            Change::DeleteFreeze(scope) => {
                self.freezes.remove(&scope.key());
            }
            Change::PutReadOnly(r) => self.read_only = r.clone(),
            Change::PutGrants(g) => self.grants = g.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cluster::PDiskKey;
    use crate::engine::task::{Action, ActionGroup, ActionStatus, Items, Mode, Reason, Scope};
    use std::time::Duration;

    #[test]
    fn records_round_trip_through_serde() {
        let task = Task {
            uid: "t1".into(),
            owner: "alice".into(),
            description: "kernel".into(),
            mode: Mode::Smart,
            priority: -5,
            composite: false,
            groups: vec![ActionGroup {
                id: "0".into(),
                actions: vec![
                    Action {
                        id: "a-1".into(),
                        scope: Scope::PDisk(PDiskKey { node: 3, pdisk: 1 }),
                        duration: Some(Duration::from_secs(60)),
                        status: ActionStatus::Performed {
                            granted_at: Timestamp(1),
                            deadline: Timestamp(60_001),
                            fencing_token: 7,
                        },
                        kind: Default::default(),
                        work: None,
                        covers: Some(Items::PDisk(PDiskKey { node: 3, pdisk: 1 })),
                    },
                    Action {
                        id: "a-2".into(),
                        scope: Scope::Host("h".into()),
                        duration: None,
                        status: ActionStatus::Pending {
                            reason: Reason::Generic,
                            details: "x".into(),
                        },
                        covers: None,
                        kind: Default::default(),
                        work: None,
                    },
                ],
            }],
            create_time: Timestamp(1),
            last_refresh_time: Timestamp(2),
            override_holds: false,
        };
        let changes = vec![
            Change::PutTask(task),
            Change::PutNode(
                3,
                NodeRuntime {
                    down: true,
                    up_since: Some(Timestamp(9)),
                    restarting_since: Some(Timestamp(11)),
                    version: Some("24.4".into()),
                    ..NodeRuntime::default()
                },
            ),
            Change::PutCounters(Counters {
                last_fencing_token: 7,
                last_action_id: 2,
            }),
            Change::DeleteTask("t0".into()),
        ];
        let text = serde_json::to_string(&changes).expect("serialize");
        let back: Vec<Change> = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, changes);
        let mut snap = Snapshot::default();
        for c in &back {
            snap.apply(c);
        }
        assert_eq!(snap.tasks.len(), 1);
        assert_eq!(snap.counters.last_fencing_token, 7);
    }
}
