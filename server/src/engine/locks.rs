//! Live locks and the counts they drive: taking and releasing an action's locks, how each node
//! counts against the limits (locked, down, or neither), and the per-cluster and per-tenant
//! counts kept incrementally so that a check never walks the cluster.

use crate::engine::State;
use crate::engine::cluster::{InitialState, NodeId};
use crate::engine::fence::{EndedLock, LockEnd};
use crate::engine::record::{Change, NodeRuntime};
use crate::engine::state::{Class, Count, Items, LockRef};
use crate::engine::task::{Action, ActionStatus};
use crate::engine::time::Timestamp;

/// Whether a node with this runtime state is unavailable without a lock (a node with none yet
/// goes by the inventory's `initial_state`): see [`State::is_down`].
pub(crate) fn runtime_down(rt: &NodeRuntime) -> bool {
    rt.down || rt.restarting_since.is_some() || rt.settle_until.is_some()
}

impl State {
    /// Releases an action's locks. A released node lock starts the node's way back (see
    /// `State::node_released`); the node or disk keeps it as its last ended lock (fencing).
    pub(super) fn release(
        &mut self,
        task: &str,
        action: &Action,
        how: LockEnd,
        now: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let ActionStatus::Performed {
            granted_at,
            deadline,
            fencing_token,
        } = action.status
        else {
            return;
        };
        let ended = EndedLock {
            token: fencing_token,
            task: task.to_owned(),
            action: action.id.clone(),
            granted_at,
            how,
            at: match how {
                LockEnd::Released => now,
                LockEnd::Expired => deadline,
            },
        };
        self.deadlines
            .remove(&(deadline, task.to_owned(), action.id.clone()));
        let Ok(items) = self.resolve(&action.scope) else {
            return;
        };
        let mine = |l: &LockRef| l.task == task && l.action == action.id;
        self.orders_dirty.extend(items.nodes());
        match items {
            Items::Nodes(nodes) => {
                for n in nodes {
                    if self.node_locks.get(&n).is_some_and(mine) {
                        let before = self.class(n);
                        self.node_locks.remove(&n);
                        self.reclass(n, before);
                        // A drain or a cordon took nothing down: no way back to wait for.
                        let back = !action.kind.unlimited();
                        self.node_released(n, now, ended.clone(), back, changes);
                    }
                }
            }
            Items::PDisk(k) => {
                if self.pdisk_locks.get(&k).is_some_and(mine) {
                    let before = self.class(k.node);
                    self.pdisk_locks.remove(&k);
                    if let Some(c) = self.pdisk_locks_on.get_mut(&k.node) {
                        *c -= 1;
                        if *c == 0 {
                            self.pdisk_locks_on.remove(&k.node);
                        }
                    }
                    self.reclass(k.node, before);
                    self.update_node(k.node, changes, |rt| {
                        rt.last_disk_locks.insert(k.pdisk, ended);
                        true
                    });
                }
            }
        }
    }

    pub(super) fn take_locks(
        &mut self,
        task: &str,
        action: &str,
        items: &Items,
        deadline: Timestamp,
    ) {
        let lock = LockRef {
            task: task.to_owned(),
            action: action.to_owned(),
            deadline,
        };
        self.orders_dirty.extend(items.nodes());
        self.deadlines
            .insert((deadline, task.to_owned(), action.to_owned()));
        match items {
            Items::Nodes(nodes) => {
                for n in nodes {
                    let before = self.class(*n);
                    self.node_locks.insert(*n, lock.clone());
                    self.reclass(*n, before);
                }
            }
            Items::PDisk(k) => {
                let before = self.class(k.node);
                if self.pdisk_locks.insert(*k, lock).is_none() {
                    *self.pdisk_locks_on.entry(k.node).or_default() += 1;
                }
                self.reclass(k.node, before);
            }
        }
    }

    /// Whether a node is known to be down: set down by an operator, or down in the inventory.
    /// Only such a node may be locked without the failure-model checks: a lock on it takes
    /// nothing more down. A node that is unavailable for any other reason (its heartbeats
    /// stopped, it is restarting or settling) may be running, so locking it is checked as if
    /// it were up.
    pub(crate) fn is_confirmed_down(&self, id: NodeId) -> bool {
        match self.runtime.get(&id) {
            Some(rt) => rt.down && !rt.timed_out,
            None => self
                .cluster
                .node(id)
                .is_some_and(|n| n.initial_state == InitialState::Down),
        }
    }

    /// Whether a node counts as unavailable without a lock: down (confirmed, or silent since
    /// its heartbeats stopped), restarting (not seen up since its lock was released), or still
    /// settling.
    pub(crate) fn is_down(&self, id: NodeId) -> bool {
        match self.runtime.get(&id) {
            Some(rt) => runtime_down(rt),
            None => self
                .cluster
                .node(id)
                .is_some_and(|n| n.initial_state == InitialState::Down),
        }
    }

    /// How a node counts against the limits, from live locks and state alone.
    pub(crate) fn class(&self, id: NodeId) -> Class {
        if self.node_locks.contains_key(&id) || self.pdisk_locks_on.contains_key(&id) {
            Class::Locked
        } else if self.is_down(id) {
            Class::Down
        } else {
            Class::Up
        }
    }

    pub(crate) fn reclass(&mut self, id: NodeId, before: Class) {
        let after = self.class(id);
        if before != after {
            self.count_node(id, before, false);
            self.count_node(id, after, true);
        }
    }

    pub(super) fn count_node(&mut self, id: NodeId, class: Class, add: bool) {
        if class == Class::Up {
            // An available node counts nowhere.
            return;
        }
        if add {
            self.unavailable.insert(id);
        } else {
            self.unavailable.remove(&id);
        }
        let apply = |c: &mut Count| {
            let slot = if class == Class::Locked {
                &mut c.locked
            } else {
                &mut c.down
            };
            if add {
                *slot += 1;
            } else {
                *slot -= 1;
            }
        };
        apply(&mut self.cluster_count);
        if let Some(t) = self.cluster.node(id).and_then(|n| n.tenant.as_deref()) {
            if let Some(c) = self.tenant_counts.get_mut(t) {
                apply(c);
            } else {
                apply(self.tenant_counts.entry(t.to_owned()).or_default());
            }
        }
    }
}
