//! The records the store persists. Every accepted change is a short list of these, and
//! applying them in order to an empty [`Snapshot`] rebuilds the same state after a restart.
//!
//! The records hold results, not commands: replaying commands would need the same inventory and
//! the same clock, while a record of the outcome does not.

use crate::engine::cluster::NodeId;
use crate::engine::task::Task;
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the arbiter has seen of a node, beyond the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRuntime {
    /// Down off-schedule.
    pub down: bool,
    /// When the arbiter last saw it come up (not set for nodes that were up when it started).
    pub up_since: Option<Timestamp>,
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
    /// Replace the counters.
    PutCounters(Counters),
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
                self.nodes.insert(*id, *rt);
            }
            Change::PutCounters(c) => self.counters = *c,
        }
    }
}
