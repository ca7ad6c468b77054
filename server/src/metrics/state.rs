//! The gauges that come from the engine's state, read at scrape time: one query on the writer
//! ([`StateGauges::read`]) that walks the nodes and the tasks once, then a registry of its own
//! for one scrape ([`StateGauges::registry`]).

use crate::engine::{NodeCondition, Reason, State, Timestamp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Every node condition, in the order they are reported.
const CONDITIONS: [NodeCondition; 7] = [
    NodeCondition::Up,
    NodeCondition::Entering,
    NodeCondition::InMaintenance,
    NodeCondition::Restarting,
    NodeCondition::Settling,
    NodeCondition::Down,
    NodeCondition::Unknown,
];

/// Every pending reason, with its label: YDB's names, and Arbiter's holds as its `hold` field
/// names them.
const REASONS: [(Reason, &str); 9] = [
    (Reason::Generic, "GENERIC"),
    (
        Reason::TooManyUnavailableVDisks,
        "TOO_MANY_UNAVAILABLE_VDISKS",
    ),
    (
        Reason::TooManyUnavailableStateStorageRings,
        "TOO_MANY_UNAVAILABLE_STATE_STORAGE_RINGS",
    ),
    (
        Reason::DisabledNodesLimitReached,
        "DISABLED_NODES_LIMIT_REACHED",
    ),
    (
        Reason::TenantDisabledNodesLimitReached,
        "TENANT_DISABLED_NODES_LIMIT_REACHED",
    ),
    (
        Reason::SysTabletsNodeLimitReached,
        "SYS_TABLETS_NODE_LIMIT_REACHED",
    ),
    (Reason::Frozen, "FROZEN"),
    (Reason::OutsideWindow, "OUTSIDE_WINDOW"),
    (Reason::RateBudget, "RATE_BUDGET"),
];

/// What one scrape reports of the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateGauges {
    /// Nodes by condition, in [`CONDITIONS`] order.
    pub nodes: [i64; CONDITIONS.len()],
    /// Nodes with an agent (that have sent a heartbeat).
    pub monitored: i64,
    /// The oldest and the newest heartbeat's age among monitored nodes seen since the start,
    /// in seconds.
    pub heartbeat_age: Option<(f64, f64)>,
    /// Nodes covered by a maintenance window: (open now, closed now).
    pub windows: (i64, i64),
    /// Tasks.
    pub tasks: i64,
    /// Tasks with a pending action.
    pub pending_tasks: i64,
    /// Pending actions by reason, in [`REASONS`] order.
    pub pending: [i64; 9],
    /// The age of the oldest task that has a pending action, in seconds.
    pub oldest_pending_age: f64,
    /// Freezes that hold now.
    pub freezes: i64,
    /// Whether read-only mode is on.
    pub read_only: bool,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn seconds(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

impl StateGauges {
    /// Reads the gauges from `state` at `now`: one walk over the nodes (with their windows) and
    /// one over the tasks.
    pub fn read(state: &State, now: Timestamp) -> StateGauges {
        let mut g = StateGauges::default();
        let mut ages: Option<(f64, f64)> = None;
        for n in state.nodes_at(now) {
            if let Some(i) = CONDITIONS.iter().position(|c| *c == n.condition) {
                g.nodes[i] += 1;
            }
            if n.monitored {
                g.monitored += 1;
                if let Some(seen) = n.last_heartbeat {
                    let age = seconds(now.since(seen));
                    ages = Some(match ages {
                        Some((max, min)) => (max.max(age), min.min(age)),
                        None => (age, age),
                    });
                }
            }
            match n.window {
                Some(w) if w.open => g.windows.0 += 1,
                Some(_) => g.windows.1 += 1,
                None => {}
            }
        }
        g.heartbeat_age = ages;
        let mut oldest: Option<Timestamp> = None;
        for uid in state.task_uids(None) {
            let Some(task) = state.task(&uid) else {
                continue;
            };
            g.tasks += 1;
            let mut waits = false;
            for a in task.actions() {
                if let Some(r) = a.reason() {
                    waits = true;
                    if let Some(i) = REASONS.iter().position(|(x, _)| *x == r) {
                        g.pending[i] += 1;
                    }
                }
            }
            if waits {
                g.pending_tasks += 1;
                oldest = Some(oldest.map_or(task.create_time, |o| o.min(task.create_time)));
            }
        }
        g.oldest_pending_age = oldest.map_or(0.0, |t| seconds(now.since(t)));
        g.freezes = count(state.freezes(now).len());
        g.read_only = state.read_only().is_some();
        g
    }

    /// A registry of this scrape's gauges. `leader` and `epoch` come from the membership;
    /// `read` is `None` when the state was not read (a follower, or a writer that did not
    /// answer in time): then only `arbiter_state_read_ok 0` is said of it.
    pub fn registry(read: Option<&StateGauges>, leader: bool, epoch: i64) -> Registry {
        let mut r = Registry::default();
        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        let float = |v: f64| {
            let g: Gauge<f64, AtomicU64> = Gauge::default();
            g.set(v);
            g
        };
        r.register(
            "arbiter_leader",
            "1 while this instance decides (a single instance, or the leader on etcd)",
            gauge(i64::from(leader)),
        );
        r.register(
            "arbiter_epoch",
            "The leader's epoch (the leader key's create revision on etcd; 0 for a single instance)",
            gauge(epoch),
        );
        r.register(
            "arbiter_state_read_ok",
            "1 when this scrape read the engine's state (the leader's writer answered within 2 s)",
            gauge(i64::from(read.is_some())),
        );
        let Some(g) = read else {
            return r;
        };
        let nodes: Family<StateLabel, Gauge> = Family::default();
        for (c, n) in CONDITIONS.iter().zip(g.nodes) {
            nodes.get_or_create(&StateLabel { state: c.name() }).set(n);
        }
        r.register("arbiter_nodes", "Nodes by state", nodes);
        r.register(
            "arbiter_monitored_nodes",
            "Nodes with an agent (that have sent a heartbeat)",
            gauge(g.monitored),
        );
        if let Some((max, min)) = g.heartbeat_age {
            r.register(
                "arbiter_heartbeat_age_max_seconds",
                "Age of the oldest last heartbeat among monitored nodes seen since the start",
                float(max),
            );
            r.register(
                "arbiter_heartbeat_age_min_seconds",
                "Age of the newest last heartbeat among monitored nodes seen since the start",
                float(min),
            );
        }
        let windows: Family<StateLabel, Gauge> = Family::default();
        windows
            .get_or_create(&StateLabel { state: "open" })
            .set(g.windows.0);
        windows
            .get_or_create(&StateLabel { state: "closed" })
            .set(g.windows.1);
        r.register(
            "arbiter_window_nodes",
            "Nodes covered by a maintenance window, by whether one is open now",
            windows,
        );
        r.register("arbiter_tasks", "Maintenance tasks", gauge(g.tasks));
        r.register(
            "arbiter_pending_tasks",
            "Tasks with at least one pending action",
            gauge(g.pending_tasks),
        );
        let pending: Family<ReasonLabel, Gauge> = Family::default();
        for ((_, name), n) in REASONS.iter().zip(g.pending) {
            pending.get_or_create(&ReasonLabel { reason: name }).set(n);
        }
        r.register(
            "arbiter_pending_actions",
            "Pending actions by reason (FROZEN, OUTSIDE_WINDOW and RATE_BUDGET are the holds)",
            pending,
        );
        r.register(
            "arbiter_pending_task_oldest_age_seconds",
            "Age of the oldest task that has a pending action (0: none)",
            float(g.oldest_pending_age),
        );
        r.register(
            "arbiter_freezes",
            "Change freezes that hold now",
            gauge(g.freezes),
        );
        r.register(
            "arbiter_read_only",
            "1 while the arbiter is in read-only mode",
            gauge(i64::from(g.read_only)),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::{LockRequest, Mode, Scope, TaskRequest};
    use prometheus_client::encoding::text::encode;
    use std::sync::Arc;
    use std::time::Duration;

    fn lock(uid: &str, node: u32) -> TaskRequest {
        let lock = LockRequest {
            scope: Scope::Node(node),
            duration: Some(Duration::from_secs(60)),
            kind: Default::default(),
        };
        TaskRequest::of(uid, Mode::Strong, vec![vec![lock]])
    }

    #[test]
    fn gauges_count_nodes_by_state_and_pending_actions_by_reason() {
        let text = "[limits]\nmax_unavailable_nodes = 1\nmax_unavailable_ratio = 0\n\
                    [[nodes]]\nid = 1\nhost = \"h1\"\nport = 1\n\
                    [[nodes]]\nid = 2\nhost = \"h2\"\nport = 1\n\
                    [[nodes]]\nid = 3\nhost = \"h3\"\nport = 1\n";
        let cluster = inventory::parse(text, Format::Toml).expect("inventory");
        let mut state = State::new(Arc::new(cluster));
        let t0 = Timestamp(1_000_000);
        state.create(lock("a", 1), t0).expect("a");
        state
            .create(lock("b", 2), t0.plus(Duration::from_secs(5)))
            .expect("b");
        let now = t0.plus(Duration::from_secs(10));
        let g = StateGauges::read(&state, now);
        // Node 1 is locked without an agent: in maintenance (nothing more is known).
        assert_eq!(g.nodes, [2, 0, 1, 0, 0, 0, 0]);
        assert_eq!((g.tasks, g.pending_tasks), (2, 1));
        assert_eq!(g.pending[3], 1, "{:?}", g.pending);
        assert_eq!(g.pending.iter().sum::<i64>(), 1);
        assert_eq!(g.oldest_pending_age, 5.0);
        assert_eq!(g.heartbeat_age, None);

        let mut out = String::new();
        encode(&mut out, &StateGauges::registry(Some(&g), true, 7)).expect("encode");
        assert!(
            out.contains("arbiter_nodes{state=\"in_maintenance\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("arbiter_pending_actions{reason=\"DISABLED_NODES_LIMIT_REACHED\"} 1\n")
        );
        assert!(out.contains("arbiter_epoch 7\n"));
        assert!(
            !out.contains("arbiter_heartbeat_age"),
            "no monitored node: no heartbeat ages"
        );
        let mut none = String::new();
        encode(&mut none, &StateGauges::registry(None, false, 0)).expect("encode");
        assert!(none.contains("arbiter_state_read_ok 0\n") && !none.contains("arbiter_nodes"));
    }
}
