//! Node liveness: heartbeats, manual node state, and a node's way back after maintenance.
//!
//! # Why
//! Orchestrators such as ydbops restart a node and complete its lock at once; YDB's CMS stays
//! safe because it sees the node down. Arbiter sees it through heartbeats from node agents and
//! through SetNodeState. When a node lock is released (completed, dropped or expired):
//! - a node with an agent (one that has sent a heartbeat) counts as unavailable until a heartbeat
//!   arrives after the release ("restarting since ..., not seen up"), then for the settle time;
//! - a node without an agent counts as unavailable for the settle time only (Arbiter cannot see
//!   it come back; SetNodeState UP ends the wait early).
//!
//! With a heartbeat timeout configured, a monitored node whose last heartbeat is older than the
//! timeout goes down, and its next heartbeat brings it up. A node marked down by hand stays down
//! until it is marked up: a heartbeat does not overrule an operator.
//!
//! Heartbeat times are soft state: they change every few seconds, so they are kept in memory and
//! never persisted. After a restart every monitored node gets one full timeout before it can time
//! out. Everything else here is persisted as `PutNode` records like any other change.

use crate::engine::cluster::NodeId;
use crate::engine::error::EngineError;
use crate::engine::fence::EndedLock;
use crate::engine::record::{Change, NodeRuntime};
use crate::engine::state::{Outcome, State};
use crate::engine::time::Timestamp;
use std::time::Duration;

/// YDB's "recently started" window for state-storage replicas: a replica needs time to catch up
/// after a start, and until then its ring is not trusted to hold a quorum.
pub const DEFAULT_RING_SETTLE: Duration = Duration::from_secs(120);

/// How the engine judges node liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// A monitored node without a heartbeat for this long goes down; `None`: never.
    pub heartbeat_timeout: Option<Duration>,
    /// How long a node that came back up still counts as unavailable.
    pub settle: Duration,
    /// How long after a state-storage replica came up its ring still counts as unavailable.
    pub ring_settle: Duration,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            heartbeat_timeout: None,
            settle: Duration::ZERO,
            ring_settle: DEFAULT_RING_SETTLE,
        }
    }
}

/// What a heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// The node's software version, if the agent knows it.
    pub version: Option<String>,
    /// When the node's process started, if the agent knows it.
    pub start_time: Option<Timestamp>,
}

/// What a tick did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticked {
    /// Locks that lapsed.
    pub expired: Vec<crate::engine::state::Expired>,
    /// Nodes whose heartbeats stopped.
    pub timed_out: Vec<NodeId>,
    /// Nodes whose settle time ended.
    pub settled: Vec<NodeId>,
    /// State-storage replicas that stopped counting as recently started.
    pub ring_settled: Vec<NodeId>,
    /// Freezes whose time was up.
    pub unfrozen: Vec<crate::engine::freeze::FreezeScope>,
    /// A rule of time (a window opening, a budget slot freeing) may let a waiting task pass.
    pub woke: bool,
}

impl Ticked {
    /// Whether time changed anything a check could see.
    pub fn is_quiet(&self) -> bool {
        self.expired.is_empty()
            && self.timed_out.is_empty()
            && self.settled.is_empty()
            && self.ring_settled.is_empty()
            && self.unfrozen.is_empty()
            && !self.woke
    }
}

impl State {
    /// Sets the liveness rules. Call before serving; the server's options set them.
    pub fn set_health(&mut self, health: HealthConfig) {
        self.health = health;
        self.heartbeat_due.clear();
        self.liveness_armed = false;
        self.schedule_ring_settles();
    }

    /// Rebuilds the timers that end replicas' "recently started" windows, for a restored state
    /// or a new window length. Windows that already ended fire at the next tick, harmlessly.
    pub(crate) fn schedule_ring_settles(&mut self) {
        let window = self.health.ring_settle;
        self.ring_settle_due = self
            .runtime
            .iter()
            .filter(|(id, _)| self.cluster.ring_of.contains_key(id))
            .filter_map(|(id, rt)| rt.up_since.map(|up| (up.plus(window), *id)))
            .collect();
    }

    /// The liveness rules in force.
    pub fn health(&self) -> HealthConfig {
        self.health
    }

    /// Everything time does on its own: lapsed locks, heartbeat timeouts, settle times ending.
    /// The server runs it before every batch and when [`State::next_deadline`] comes.
    pub fn tick(&mut self, now: Timestamp) -> Outcome<Ticked> {
        self.arm_liveness(now);
        let expired = self.expire(now);
        let mut changes = expired.changes;
        let mut ticked = Ticked {
            expired: expired.value,
            ..Ticked::default()
        };
        ticked.unfrozen = self.end_freezes(now, &mut changes);
        while let Some(&(due, id)) = self.heartbeat_due.first() {
            if due > now {
                break;
            }
            self.heartbeat_due.remove(&(due, id));
            let Some(timeout) = self.health.heartbeat_timeout else {
                continue;
            };
            let note = format!("no heartbeat for {}", humantime::format_duration(timeout));
            let changed = self.update_node(id, &mut changes, |rt| {
                if rt.down {
                    return false;
                }
                rt.down = true;
                rt.timed_out = true;
                rt.down_since = Some(due);
                rt.down_reason = note;
                true
            });
            if changed {
                ticked.timed_out.push(id);
            }
        }
        while let Some(&(due, id)) = self.settle_due.first() {
            if due > now {
                break;
            }
            self.settle_due.remove(&(due, id));
            let changed = self.update_node(id, &mut changes, |rt| {
                if rt.settle_until != Some(due) {
                    return false;
                }
                rt.settle_until = None;
                true
            });
            if changed {
                ticked.settled.push(id);
            }
        }
        while let Some(&due) = self.wakeups.first() {
            if due > now {
                break;
            }
            self.wakeups.remove(&due);
            ticked.woke = true;
        }
        // Nothing to record: the ring rule reads `up_since` and the clock. But a waiting task
        // may pass now, and the server re-checks watched tasks when a tick is not quiet.
        while let Some(&(due, id)) = self.ring_settle_due.first() {
            if due > now {
                break;
            }
            self.ring_settle_due.remove(&(due, id));
            ticked.ring_settled.push(id);
        }
        Outcome {
            value: ticked,
            changes,
        }
    }

    /// A heartbeat from a node's agent. Answers whether the node's recorded state changed.
    pub fn heartbeat(
        &mut self,
        id: NodeId,
        beat: Heartbeat,
        now: Timestamp,
    ) -> Result<Outcome<bool>, EngineError> {
        if self.cluster.node(id).is_none() {
            return Err(EngineError::UnknownNode(id));
        }
        self.arm_liveness(now);
        if let Some(old) = self.last_seen.insert(id, now)
            && let Some(timeout) = self.health.heartbeat_timeout
        {
            self.heartbeat_due.remove(&(old.plus(timeout), id));
        }
        if let Some(timeout) = self.health.heartbeat_timeout {
            self.heartbeat_due.insert((now.plus(timeout), id));
        }
        let settle = self.settle_end(now);
        let mut changes = Vec::new();
        let changed = self.update_node(id, &mut changes, |rt| {
            let before = rt.clone();
            rt.monitored = true;
            if let Some(v) = beat.version {
                rt.version = Some(v);
            }
            if let Some(t) = beat.start_time {
                rt.start_time = Some(t);
            }
            let back = (rt.down && rt.timed_out) || rt.restarting_since.is_some();
            if rt.down && rt.timed_out {
                rt.down = false;
                rt.timed_out = false;
                rt.down_since = None;
                rt.down_reason.clear();
            }
            if back {
                rt.restarting_since = None;
                rt.up_since = Some(now);
                rt.settle_until = settle;
            }
            *rt != before
        });
        if changed {
            self.index_settle(id);
        }
        Ok(Outcome {
            value: changed,
            changes,
        })
    }

    /// Marks a node down (with a reason) or up by hand. Up also ends a restart wait; the node
    /// then settles. Answers whether anything changed.
    pub fn set_node_state(
        &mut self,
        id: NodeId,
        up: bool,
        reason: &str,
        now: Timestamp,
    ) -> Result<Outcome<bool>, EngineError> {
        self.ensure_writable()?;
        if self.cluster.node(id).is_none() {
            return Err(EngineError::UnknownNode(id));
        }
        let settle = self.settle_end(now);
        let mut changes = Vec::new();
        let changed = self.update_node(id, &mut changes, |rt| {
            if up {
                if !rt.down && rt.restarting_since.is_none() {
                    return false;
                }
                rt.down = false;
                rt.timed_out = false;
                rt.down_since = None;
                rt.down_reason.clear();
                rt.restarting_since = None;
                rt.up_since = Some(now);
                rt.settle_until = settle;
            } else {
                if rt.down && !rt.timed_out && rt.down_reason == reason {
                    return false;
                }
                rt.down = true;
                rt.timed_out = false;
                rt.down_since = rt.down_since.or(Some(now));
                rt.down_reason = reason.to_owned();
            }
            true
        });
        if changed {
            self.index_settle(id);
        }
        Ok(Outcome {
            value: changed,
            changes,
        })
    }

    /// A node lock was released at `now`: start the node's way back, and keep the lock as the
    /// node's last ended one (fencing), in the same record.
    pub(crate) fn node_released(
        &mut self,
        id: NodeId,
        now: Timestamp,
        ended: EndedLock,
        back: bool,
        changes: &mut Vec<Change>,
    ) {
        let settle = self.settle_end(now);
        let changed = self.update_node(id, changes, |rt| {
            rt.last_lock = Some(ended);
            if rt.down || !back {
                // Still down: it stays unavailable anyway, and comes back through up.
            } else if rt.monitored {
                rt.restarting_since = Some(now);
                rt.settle_until = None;
            } else if settle.is_some() {
                rt.settle_until = settle;
            }
            true
        });
        if changed {
            self.index_settle(id);
        }
    }

    /// Why a node counts as unavailable without a lock, in words; `None` when it does not.
    pub fn down_note(&self, id: NodeId) -> Option<String> {
        self.down_why(id).map(|why| format!("node {id} {why}"))
    }

    /// The same without the node's name: "restarting since ..., not seen up".
    pub(crate) fn down_why(&self, id: NodeId) -> Option<String> {
        let rt = self.runtime.get(&id)?;
        if rt.down && rt.timed_out {
            let since = rt
                .down_since
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            Some(format!(
                "unknown{since}: {}; it may still be running",
                rt.down_reason
            ))
        } else if rt.down {
            let since = rt
                .down_since
                .map(|t| format!(" since {t}"))
                .unwrap_or_default();
            let why = if rt.down_reason.is_empty() {
                String::new()
            } else {
                format!(": {}", rt.down_reason)
            };
            Some(format!("down{since}{why}"))
        } else if let Some(t) = rt.restarting_since {
            Some(format!("restarting since {t}, not seen up"))
        } else {
            rt.settle_until
                .map(|t| format!("came up, settling until {t}"))
        }
    }

    /// One word for why a node counts as unavailable without a lock, for limit texts.
    pub(crate) fn down_word(&self, id: NodeId) -> &'static str {
        match self.runtime.get(&id) {
            Some(rt) if rt.down && rt.timed_out => "silent",
            Some(rt) if rt.restarting_since.is_some() && !rt.down => "restarting",
            Some(rt) if rt.settle_until.is_some() && !rt.down => "settling",
            _ => "down",
        }
    }

    /// The end of a settle time that starts now, if there is a settle time.
    fn settle_end(&self, now: Timestamp) -> Option<Timestamp> {
        (!self.health.settle.is_zero()).then(|| now.plus(self.health.settle))
    }

    fn index_settle(&mut self, id: NodeId) {
        self.settle_due.retain(|(_, n)| *n != id);
        if let Some(until) = self.runtime.get(&id).and_then(|rt| rt.settle_until) {
            self.settle_due.insert((until, id));
        }
    }

    /// After a restore, gives every monitored node one full timeout from `now`.
    fn arm_liveness(&mut self, now: Timestamp) {
        if self.liveness_armed {
            return;
        }
        self.liveness_armed = true;
        let Some(timeout) = self.health.heartbeat_timeout else {
            return;
        };
        let monitored: Vec<NodeId> = self
            .runtime
            .iter()
            .filter(|(id, rt)| rt.monitored && !self.last_seen.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        for id in monitored {
            self.last_seen.insert(id, now);
            self.heartbeat_due.insert((now.plus(timeout), id));
        }
    }

    /// Applies `f` to a node's record (created from the inventory's initial state when missing);
    /// when `f` reports a change, re-counts the node and records a `PutNode`.
    pub(crate) fn update_node(
        &mut self,
        id: NodeId,
        changes: &mut Vec<Change>,
        f: impl FnOnce(&mut NodeRuntime) -> bool,
    ) -> bool {
        let before_class = self.class(id);
        let mut rt = self
            .runtime
            .get(&id)
            .cloned()
            .unwrap_or_else(|| NodeRuntime {
                down: self.is_down(id),
                ..NodeRuntime::default()
            });
        let up_before = rt.up_since;
        if !f(&mut rt) {
            return false;
        }
        if let Some(up) = rt.up_since
            && rt.up_since != up_before
            && self.cluster.ring_of.contains_key(&id)
        {
            self.ring_settle_due
                .insert((up.plus(self.health.ring_settle), id));
        }
        changes.push(Change::PutNode(id, rt.clone()));
        self.runtime.insert(id, rt);
        self.reclass(id, before_class);
        self.orders_dirty.insert(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use std::sync::Arc;

    #[test]
    fn the_end_of_a_replicas_recently_started_window_is_a_timer_event() {
        let text = "[[nodes]]\nid = 1\nhost = \"a\"\nport = 1\n[[nodes]]\nid = 2\nhost = \"b\"\n\
                    port = 1\n[state_storage]\nnto_select = 1\nrings = [[1]]\n";
        let cluster = inventory::parse(text, Format::Toml).expect("inventory");
        let mut st = State::new(Arc::new(cluster));
        let t0 = Timestamp(1_000_000);
        st.set_node_state(1, false, "reboot", t0).expect("down");
        st.set_node_state(1, true, "", t0).expect("up");
        assert_eq!(st.next_deadline(), Some(t0.plus(DEFAULT_RING_SETTLE)));
        assert!(
            st.tick(t0.plus(DEFAULT_RING_SETTLE).minus(Duration::from_millis(1)))
                .value
                .is_quiet()
        );
        let t = st.tick(t0.plus(DEFAULT_RING_SETTLE)).value;
        assert_eq!(t.ring_settled, vec![1]);
        assert_eq!(st.next_deadline(), None);
        // Node 2 is in no ring: coming up sets no such timer.
        st.set_node_state(2, false, "", t0).expect("down");
        st.set_node_state(2, true, "", t0).expect("up");
        assert_eq!(st.next_deadline(), None);
    }
}
