//! A plan of a whole rolling restart: the waves in which its nodes would be granted under the
//! current state, and the nodes that never would be.
//!
//! The plan runs the real engine on a copy of the state, so a plan and a real rollout under the
//! same state agree. It creates the task the rollout creates (one group per node, a lock on the
//! node each) and plays the rollout forward in simulated time from `now`:
//!
//! - after every event, the task is re-checked (what the server does for a watched task);
//! - when a slot is free (at most `inflight` nodes at a time; 0: no limit), the granted nodes
//!   that did not restart yet start, in the task's group order: the nodes that start together
//!   are one wave (a grant beyond the free slots keeps its lock and waits, as in the rollout);
//! - a wave comes back `time_per_node` after it started: its locks are completed and each node
//!   that has an agent sends a heartbeat at once; it then counts as unavailable for the settle
//!   time, and a state-storage replica keeps its ring "recently started" for the ring window,
//!   exactly as the engine's own timers say;
//! - when nothing is granted and nothing is in flight, time moves on to the next settle or ring
//!   window end, maintenance-window opening, freed rate-budget slot or freeze end (a window or
//!   a budget paces the waves as it would the rollout); when there is none either, what is still pending is never granted under the
//!   current state, and its pending details say why.
//!
//! The current state stays as it is for the whole plan: other tasks keep their locks (no expiry)
//! and their pending actions, a node that is down stays down, and every node whose agent is
//! heartbeating now keeps doing so (no heartbeat timeouts).
//!
//! Each node is assumed to take exactly `time_per_node`; the estimate is waves × time per node.

use crate::engine::cluster::NodeId;
use crate::engine::error::EngineError;
use crate::engine::liveness::Heartbeat;
use crate::engine::state::State;
use crate::engine::task::{ActionStatus, LockRequest, Mode, Scope, TaskRequest};
use crate::engine::time::Timestamp;
use std::collections::BTreeSet;
use std::time::Duration;

/// The uid of the simulated task (another one is picked if a task of that uid exists).
const PLAN_UID: &str = "rollout-plan";

/// What to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// The nodes, in the rollout's order (its task's group order).
    pub nodes: Vec<NodeId>,
    /// The task's availability mode.
    pub mode: Mode,
    /// The task's priority.
    pub priority: i32,
    /// At most this many nodes at a time; 0: as many as the checks grant.
    pub inflight: u32,
    /// How long one node takes, from its grant until it is back up.
    pub time_per_node: Duration,
    /// Who would own the task (as the details of other tasks' blockers name owners).
    pub owner: String,
}

/// The simulated rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutPlan {
    /// The nodes that start together, wave by wave.
    pub waves: Vec<Vec<NodeId>>,
    /// The nodes never granted under the current state, with why (their pending details), in
    /// the task's order.
    pub blocked: Vec<(NodeId, String)>,
    /// Waves × time per node.
    pub estimate: Duration,
}

/// A wave on its way back.
struct InFlight {
    back_at: Timestamp,
    actions: Vec<(NodeId, String)>,
}

impl State {
    /// Plans a rolling restart of `req.nodes` from the state as it is at `now`, changing nothing.
    ///
    /// Refused as creating the rollout's task would be: no nodes, an unknown node, a node named
    /// twice, too many nodes, a priority out of range (and, as a create is, when the state
    /// holds as many tasks as it may).
    pub fn plan_rollout(
        &self,
        req: &PlanRequest,
        now: Timestamp,
    ) -> Result<RolloutPlan, EngineError> {
        let mut st = self.clone();
        st.freeze_for_plan();
        // The simulation runs the real commands: read-only mode would refuse them all (the
        // freezes still hold back grants in their scopes).
        st.freezes.read_only = None;
        let mut uid = PLAN_UID.to_owned();
        let mut n = 0u32;
        while st.tasks.contains_key(&uid) {
            n += 1;
            uid = format!("{PLAN_UID}-{n}");
        }
        // Beyond the simulation: a lock that never lapses while it runs.
        let hold = Duration::from_secs(100 * 365 * 24 * 3600);
        let request = TaskRequest {
            uid: uid.clone(),
            owner: req.owner.clone(),
            description: "rollout plan".into(),
            mode: req.mode,
            priority: req.priority,
            dry_run: false,
            override_holds: false,
            groups: req
                .nodes
                .iter()
                .map(|id| {
                    vec![LockRequest {
                        scope: Scope::Node(*id),
                        duration: Some(hold),
                        kind: Default::default(),
                    }]
                })
                .collect(),
        };
        st.create(request, now)?;
        let limit = match req.inflight {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let mut plan = RolloutPlan::default();
        let mut started: BTreeSet<NodeId> = BTreeSet::new();
        let mut flying: Vec<InFlight> = Vec::new();
        let mut now = now;
        // Every iteration starts a wave, brings one back or passes a timer: each happens a
        // bounded number of times. The guard only keeps a bug from looping forever.
        let mut guard = 4 * (req.nodes.len() + st.cluster.nodes().count()) + 16;
        loop {
            guard = guard.saturating_sub(1);
            if guard == 0 {
                break;
            }
            let _ = st.tick(now);
            if st.tasks.get(&uid).is_some_and(|t| t.has_pending()) {
                let _ = st.recheck(&uid, now);
            }
            let busy: usize = flying.iter().map(|w| w.actions.len()).sum();
            let ready = st.granted_not_started(&uid, &started);
            let wave: Vec<(NodeId, String)> =
                ready.into_iter().take(limit.saturating_sub(busy)).collect();
            if !wave.is_empty() {
                plan.waves.push(wave.iter().map(|(n, _)| *n).collect());
                started.extend(wave.iter().map(|(n, _)| *n));
                flying.push(InFlight {
                    back_at: now.plus(req.time_per_node),
                    actions: wave,
                });
            }
            let next_back = flying.iter().map(|w| w.back_at).min();
            let next_timer = st.next_plan_timer().filter(|t| *t > now);
            let next = match (next_back, next_timer) {
                (Some(b), Some(t)) => b.min(t),
                (Some(b), None) => b,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next_back.is_none() && st.granted_not_started(&uid, &started).is_empty() {
                // Nothing in flight: only a timer can unblock what is pending, if anything is.
                if !st.tasks.get(&uid).is_some_and(|t| t.has_pending()) {
                    break;
                }
            }
            now = next.max(now);
            let (back, rest): (Vec<InFlight>, Vec<InFlight>) =
                flying.into_iter().partition(|w| w.back_at <= now);
            flying = rest;
            for w in back {
                st.come_back(&uid, &w.actions, now);
            }
        }
        if let Some(task) = st.tasks.get(&uid) {
            for a in task.actions() {
                if let (ActionStatus::Pending { details, .. }, Scope::Node(id)) =
                    (&a.status, &a.scope)
                {
                    plan.blocked.push((*id, details.clone()));
                }
            }
        }
        let waves = u32::try_from(plan.waves.len()).unwrap_or(u32::MAX);
        plan.estimate = req.time_per_node.saturating_mul(waves);
        Ok(plan)
    }

    /// Keeps the copy's present as it is: no lock of another task lapses, no agent that
    /// heartbeats now goes silent.
    fn freeze_for_plan(&mut self) {
        self.deadlines.clear();
        self.health.heartbeat_timeout = None;
        self.heartbeat_due.clear();
        self.liveness_armed = true;
    }

    /// The next end of a settle time or of a ring's "recently started" window, the next
    /// opening of a maintenance window or freed budget slot the checks noted, or the end of a
    /// freeze.
    fn next_plan_timer(&self) -> Option<Timestamp> {
        let settle = self.settle_due.first().map(|(t, _)| *t);
        let ring = self.ring_settle_due.first().map(|(t, _)| *t);
        let wake = self.wakeups.first().copied();
        [settle, ring, wake, self.next_freeze_end()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The plan task's granted nodes that have not started, in group order, with action ids.
    fn granted_not_started(&self, uid: &str, started: &BTreeSet<NodeId>) -> Vec<(NodeId, String)> {
        let Some(task) = self.tasks.get(uid) else {
            return Vec::new();
        };
        task.actions()
            .filter(|a| matches!(a.status, ActionStatus::Performed { .. }))
            .filter_map(|a| match a.scope {
                Scope::Node(id) if !started.contains(&id) => Some((id, a.id.clone())),
                _ => None,
            })
            .collect()
    }

    /// A wave is back: its locks are completed, and each node with an agent reports in.
    fn come_back(&mut self, uid: &str, actions: &[(NodeId, String)], now: Timestamp) {
        let uids: Vec<(String, String)> = actions
            .iter()
            .map(|(_, a)| (uid.to_owned(), a.clone()))
            .collect();
        if !uids.is_empty() {
            let _ = self.complete(&uids, now);
        }
        for (id, _) in actions {
            if self.runtime.get(id).is_some_and(|rt| rt.monitored) {
                let _ = self.heartbeat(*id, Heartbeat::default(), now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::liveness::HealthConfig;
    use std::sync::Arc;

    const T: Duration = Duration::from_secs(60);
    const T0: Timestamp = Timestamp(1_767_225_600_000);

    /// `nodes` nodes with one pdisk each, limits off, plus `extra` inventory text.
    fn state(nodes: u32, extra: &str) -> State {
        let mut text = format!("[limits]\nmax_unavailable_ratio = 0\n{extra}\n");
        for id in 1..=nodes {
            text.push_str(&format!(
                "[[nodes]]\nid = {id}\nhost = \"h{id}\"\nport = 1\npdisks = [ {{ id = 1, path = \"/d\" }} ]\n"
            ));
        }
        State::new(Arc::new(
            inventory::parse(&text, Format::Toml).expect("inventory"),
        ))
    }

    /// Nodes 1-3 in one quorum group (strong: one of them at a time).
    const GROUP_123: &str = "[[storage_groups]]\nid = 1\nerasure = \"quorum\"\n\
        vdisks = [ { node = 1, pdisk = 1 }, { node = 2, pdisk = 1 }, { node = 3, pdisk = 1 } ]\n";

    fn req(nodes: &[NodeId], inflight: u32) -> PlanRequest {
        PlanRequest {
            nodes: nodes.to_vec(),
            mode: Mode::Strong,
            priority: 0,
            inflight,
            time_per_node: T,
            owner: "me".into(),
        }
    }

    fn lock(st: &mut State, uid: &str, node: NodeId) {
        let r = TaskRequest::of(
            uid,
            Mode::Strong,
            vec![vec![LockRequest {
                scope: Scope::Node(node),
                duration: Some(Duration::from_secs(600)),
                kind: Default::default(),
            }]],
        );
        let v = st.create(r, T0).expect("create").value;
        assert!(
            v.groups[0].actions[0].deadline().is_some(),
            "node {node} locked"
        );
    }

    #[test]
    fn a_closed_window_and_a_rate_budget_pace_the_waves_instead_of_blocking_them() {
        // 02:00-03:00 UTC daily; the plan starts at 00:00 (a Thursday).
        let window = "[[windows]]\nname = \"night\"\nzone = \"UTC\"\n\
            days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\n\
            start = \"02:00\"\nend = \"03:00\"\nnodes = [1, 2]\n";
        let st = state(2, window);
        let p = st.plan_rollout(&req(&[1, 2], 1), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1], vec![2]], "{p:?}");
        assert!(p.blocked.is_empty(), "waits for the window: {p:?}");

        let st = state(3, "max_grants = { count = 1, every = \"10m\" }");
        let p = st.plan_rollout(&req(&[1, 2, 3], 0), T0).expect("plan");
        assert_eq!(
            p.waves,
            vec![vec![1], vec![2], vec![3]],
            "one per slot: {p:?}"
        );
        assert!(p.blocked.is_empty(), "{p:?}");
    }

    #[test]
    fn waves_are_capped_by_inflight_and_the_estimate_counts_them() {
        let st = state(5, "");
        let p = st
            .plan_rollout(&req(&[1, 2, 3, 4, 5], 2), T0)
            .expect("plan");
        assert_eq!(p.waves, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(p.blocked.is_empty());
        assert_eq!(p.estimate, T * 3);
        let p = st
            .plan_rollout(&req(&[5, 4, 3, 2, 1], 0), T0)
            .expect("plan");
        assert_eq!(p.waves, vec![vec![5, 4, 3, 2, 1]], "no cap: all at once");
        assert_eq!(p.estimate, T);
    }

    #[test]
    fn the_failure_model_makes_nodes_wait_for_the_previous_wave() {
        let st = state(4, GROUP_123);
        let p = st.plan_rollout(&req(&[1, 2, 3, 4], 0), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1, 4], vec![2], vec![3]]);
        assert!(p.blocked.is_empty());
        assert_eq!(p.estimate, T * 3);
    }

    #[test]
    fn a_node_locked_by_another_task_is_blocked_and_so_is_what_it_holds_back() {
        let mut st = state(5, GROUP_123);
        lock(&mut st, "other", 2);
        let p = st
            .plan_rollout(&req(&[1, 2, 3, 4, 5], 2), T0)
            .expect("plan");
        assert_eq!(p.waves, vec![vec![4, 5]]);
        let blocked: Vec<NodeId> = p.blocked.iter().map(|(n, _)| *n).collect();
        assert_eq!(blocked, vec![1, 2, 3]);
        assert!(
            p.blocked.iter().all(|(_, why)| why.contains("other")),
            "each reason names the other task: {:?}",
            p.blocked
        );
    }

    #[test]
    fn a_node_down_by_an_operator_passes_and_the_plan_waits_for_the_settle_time() {
        let mut st = state(3, GROUP_123);
        st.set_health(HealthConfig {
            settle: Duration::from_secs(90),
            ..HealthConfig::default()
        });
        st.set_node_state(3, false, "broken disk", T0)
            .expect("down");
        // Node 3 is down: a lock on it takes nothing more down, and it holds the group's one
        // unavailable member, so 1 and 2 are never granted while it stays down.
        let p = st.plan_rollout(&req(&[1, 2, 3], 0), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![3]]);
        assert_eq!(p.blocked.len(), 2, "{p:?}");
        assert!(p.blocked[0].1.contains("node 3"), "{p:?}");
        // Once it is back up it settles first; then one at a time, each after the previous one
        // settled.
        st.set_node_state(3, true, "", T0).expect("up");
        let p = st.plan_rollout(&req(&[1, 2], 0), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1], vec![2]], "{p:?}");
        assert!(p.blocked.is_empty(), "{p:?}");
    }

    #[test]
    fn a_recently_started_ring_makes_the_next_replica_wait_for_its_window() {
        // Two rings of one replica each; strong mode tolerates one bad ring, and a replica that
        // came back keeps its ring "recently started" for longer than a node takes.
        let rings = "[state_storage]\nnto_select = 2\nrings = [[1], [2]]\n";
        let mut st = state(3, rings);
        st.set_health(HealthConfig {
            ring_settle: T * 3,
            ..HealthConfig::default()
        });
        // Only a node seen coming back (by its agent) starts a window.
        for id in [1, 2, 3] {
            st.heartbeat(id, Heartbeat::default(), T0).expect("beat");
        }
        let p = st.plan_rollout(&req(&[1, 2, 3], 1), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1], vec![3], vec![2]], "{p:?}");
        assert!(p.blocked.is_empty());
    }

    #[test]
    fn agents_report_in_when_their_node_comes_back() {
        let mut st = state(3, GROUP_123);
        st.set_health(HealthConfig {
            heartbeat_timeout: Some(T / 2),
            ..HealthConfig::default()
        });
        for id in [1, 2, 3] {
            st.heartbeat(id, Heartbeat::default(), T0).expect("beat");
        }
        // Without the heartbeat after its lock, a node would stay "restarting"; without the
        // frozen timeouts, every agent would go silent in the plan's time.
        let p = st.plan_rollout(&req(&[1, 2, 3], 0), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1], vec![2], vec![3]], "{p:?}");
        assert!(p.blocked.is_empty(), "{p:?}");
    }

    #[test]
    fn a_plan_changes_nothing_and_is_deterministic() {
        let mut st = state(5, GROUP_123);
        lock(&mut st, "other", 4);
        let before = st.snapshot();
        let a = st
            .plan_rollout(&req(&[3, 2, 1, 5, 4], 1), T0)
            .expect("plan");
        let b = st
            .plan_rollout(&req(&[3, 2, 1, 5, 4], 1), T0)
            .expect("plan");
        assert_eq!(a, b);
        assert_eq!(st.snapshot(), before, "the state is untouched");
        assert_eq!(st.task_uids(None), vec!["other".to_string()]);
        // 3 and 5 are granted first; 5 keeps its lock and waits for the one slot behind 2 and
        // 1, which come earlier in the task's order (the rollout starts granted nodes so).
        assert_eq!(a.waves, vec![vec![3], vec![2], vec![1], vec![5]]);
        assert_eq!(a.blocked.len(), 1);
        assert_eq!(a.blocked[0].0, 4);
    }

    #[test]
    fn what_a_create_refuses_a_plan_refuses() {
        let st = state(3, "");
        let e = st.plan_rollout(&req(&[1, 9], 0), T0).expect_err("unknown");
        assert_eq!(e, EngineError::UnknownNode(9));
        assert_eq!(
            st.plan_rollout(&req(&[], 0), T0).expect_err("none"),
            EngineError::NoGroups
        );
        assert!(matches!(
            st.plan_rollout(&req(&[1, 1], 0), T0).expect_err("twice"),
            EngineError::OverlappingActions { .. }
        ));
        let mut r = req(&[1], 0);
        r.priority = 1000;
        assert_eq!(
            st.plan_rollout(&r, T0).expect_err("priority"),
            EngineError::PriorityOutOfRange
        );
    }

    #[test]
    fn a_task_named_like_the_plan_does_not_get_in_the_way() {
        let mut st = state(3, "");
        lock(&mut st, PLAN_UID, 3);
        let p = st.plan_rollout(&req(&[1, 2], 0), T0).expect("plan");
        assert_eq!(p.waves, vec![vec![1, 2]]);
    }
}
