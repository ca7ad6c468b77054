//! Unit tests of `engine::drain`: waiting for the agent, granting, the failure model and the
//! texts here; the agents' reports in `reports.rs`, undoing and durability in `undo.rs`.
//!
//! Every command goes through [`Rig`], which applies the change records the command produced to
//! a [`Snapshot`] and checks that they rebuild the live state exactly: a drain's progress and a
//! node's owed undo must reach the store, or a restart would lose them.

use super::*;
use crate::engine::inventory::{self, Format};
use crate::engine::liveness::Heartbeat;
use crate::engine::record::Snapshot;
use crate::engine::report::{ActionView, NodeCondition, TaskView};
use crate::engine::task::{LockRequest, Mode, Reason, Scope, TaskRequest};
use std::sync::Arc;
use std::time::Duration;

mod reports;
mod undo;

const T0: Timestamp = Timestamp(1_767_225_600_000);

/// Four nodes without disks, on hosts h1..h4; `limits` is the body of `[limits]`.
fn cluster(limits: &str) -> Arc<crate::engine::cluster::Cluster> {
    let mut text = format!("[limits]\n{limits}\n");
    for id in 1..=4 {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nhost = \"h{id}\"\nport = 1\n"
        ));
    }
    Arc::new(inventory::parse(&text, Format::Toml).expect("inventory"))
}

fn req(uid: &str, node: NodeId, kind: ActionKind) -> TaskRequest {
    let lock = LockRequest {
        scope: Scope::Node(node),
        duration: None,
        kind,
    };
    TaskRequest::of(uid, Mode::Strong, vec![vec![lock]])
}

fn report(
    kind: WorkKind,
    task: &str,
    action: &str,
    undo: bool,
    outcome: HookOutcome,
) -> WorkReport {
    WorkReport {
        kind,
        task: task.into(),
        action: action.into(),
        undo,
        outcome,
    }
}

fn failed(attempt: u32, exit: &str, stderr: &str, retry_in_ms: u64) -> HookOutcome {
    HookOutcome::Failed {
        attempt,
        exit: exit.into(),
        stderr: stderr.into(),
        retry_in_ms,
    }
}

fn first(view: &TaskView) -> ActionView {
    view.actions().next().expect("an action").clone()
}

fn idle() -> Orders {
    Orders {
        drain: Order::Idle,
        cordon: Order::Idle,
    }
}

fn act(task: &str, action: &str) -> (String, String) {
    (task.to_owned(), action.to_owned())
}

fn do_(task: &str, action: &str) -> Order {
    Order::Do {
        task: task.into(),
        action: action.into(),
    }
}

fn undo(task: &str, action: &str) -> Order {
    Order::Undo {
        task: task.into(),
        action: action.into(),
    }
}

/// A state, the records its commands produced, and a clock.
struct Rig {
    st: State,
    records: Snapshot,
    now: Timestamp,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_limits("max_unavailable_ratio = 0")
    }

    fn with_limits(limits: &str) -> Rig {
        Rig {
            st: State::new(cluster(limits)),
            records: Snapshot::default(),
            now: T0,
        }
    }

    /// Applies a command's changes and checks that they rebuild the live state.
    fn record(&mut self, changes: &[Change]) {
        for c in changes {
            self.records.apply(c);
        }
        assert_eq!(
            self.records,
            self.st.snapshot(),
            "the change records do not rebuild the live state"
        );
    }

    fn advance(&mut self, secs: u64) {
        self.now = self.now.plus(Duration::from_secs(secs));
        let o = self.st.tick(self.now);
        self.record(&o.changes);
    }

    fn create(&mut self, uid: &str, node: NodeId, kind: ActionKind) -> ActionView {
        let o = self
            .st
            .create(req(uid, node, kind), self.now)
            .expect("create");
        self.record(&o.changes);
        first(&o.value)
    }

    fn refresh(&mut self, uid: &str) -> ActionView {
        let o = self.st.refresh(uid, self.now).expect("refresh");
        self.record(&o.changes);
        first(&o.value)
    }

    fn view(&self, uid: &str) -> ActionView {
        first(&self.st.task(uid).expect("task"))
    }

    fn complete(&mut self, uid: &str, action: &str) {
        let o = self
            .st
            .complete(&[act(uid, action)], self.now)
            .expect("complete");
        self.record(&o.changes);
    }

    fn drop_task(&mut self, uid: &str) {
        let o = self.st.drop_task(uid, self.now).expect("drop");
        self.record(&o.changes);
    }

    fn heartbeat(&mut self, node: NodeId) {
        let beat = Heartbeat {
            version: None,
            start_time: None,
        };
        let o = self.st.heartbeat(node, beat, self.now).expect("heartbeat");
        self.record(&o.changes);
    }

    fn attach(&mut self, node: NodeId) -> Orders {
        self.st.agent_attached(node).expect("attach")
    }

    /// Sends a report; answers whether it changed anything, and the changes it produced.
    fn report(&mut self, node: NodeId, r: WorkReport) -> (bool, Vec<Change>) {
        let o = self.st.report_work(node, r).expect("report");
        self.record(&o.changes);
        (o.value, o.changes)
    }

    fn condition(&self, node: NodeId) -> NodeCondition {
        self.st
            .nodes()
            .into_iter()
            .find(|n| n.id == node)
            .expect("node")
            .condition
    }

    fn drained(&self, node: NodeId) -> Option<Applied> {
        self.st
            .runtime
            .get(&node)
            .and_then(|rt| rt.drained.clone())
            .map(|b| *b)
    }

    fn cordoned(&self, node: NodeId) -> Option<Applied> {
        self.st
            .runtime
            .get(&node)
            .and_then(|rt| rt.cordoned.clone())
            .map(|b| *b)
    }

    /// A granted action of `kind` on `node` (its agent attached first): its id.
    fn granted(&mut self, uid: &str, node: NodeId, kind: ActionKind) -> String {
        self.attach(node);
        let a = self.create(uid, node, kind);
        assert!(a.is_performed(), "{uid} not granted: {}", a.details());
        a.id
    }
}

// ----- waiting for the agent ------------------------------------------------------------------

#[test]
fn a_drain_or_cordon_without_an_agent_waits_and_says_how_to_start_one() {
    let mut r = Rig::new();
    for (uid, node, kind, word) in [
        ("d", 1, ActionKind::Drain, "drain"),
        ("c", 2, ActionKind::Cordon, "cordon"),
        ("l", 3, ActionKind::DrainFirst, "drain"),
    ] {
        let a = r.create(uid, node, kind);
        assert!(!a.is_performed(), "{uid}");
        assert!(!a.in_progress(), "{uid}: pending is not in progress");
        assert_eq!(a.work, None, "{uid}");
        assert_eq!(a.reason(), Some(Reason::Generic), "{uid}");
        let want = format!(
            "no agent is connected for node {node}: a {word} needs the node's agent \
             (arbiter agent --node {node} --on-{word} CMD)"
        );
        assert_eq!(a.details(), want, "{uid}");
        assert_eq!(
            r.st.orders(node),
            idle(),
            "{uid}: nothing to do while pending"
        );
        // Nothing is locked while it waits.
        assert_eq!(r.condition(node), NodeCondition::Up, "{uid}");
    }
    // A refresh without an agent still waits.
    assert!(!r.refresh("d").is_performed());
    // A plain lock needs no agent.
    assert!(r.create("p", 4, ActionKind::Lock).is_performed());
}

#[test]
fn a_pending_drain_names_when_the_nodes_agent_went_away() {
    let mut r = Rig::new();
    r.attach(1);
    r.now = r.now.plus(Duration::from_secs(90));
    r.st.agent_detached(1, r.now);
    assert!(!r.st.agent_connected(1));
    let a = r.create("d", 1, ActionKind::Drain);
    assert!(!a.is_performed());
    assert!(
        a.details().contains(
            "no agent is connected for node 1 (its agent went away at 2026-01-01T00:01:30Z)"
        ),
        "{}",
        a.details()
    );
}

#[test]
fn the_agent_of_an_unknown_node_is_refused_and_a_detach_without_attach_is_harmless() {
    let mut r = Rig::new();
    assert!(matches!(
        r.st.agent_attached(99),
        Err(EngineError::UnknownNode(99))
    ));
    let rep = report(WorkKind::Drain, "t", "a-1", false, HookOutcome::Done);
    assert!(matches!(
        r.st.report_work(99, rep),
        Err(EngineError::UnknownNode(99))
    ));
    r.st.agent_detached(2, r.now);
    assert!(!r.st.agent_connected(2));
    // A detach that had no attach does not make a later pending drain talk of a lost agent.
    let a = r.create("d", 2, ActionKind::Drain);
    assert!(!a.details().contains("went away"), "{}", a.details());
}

#[test]
fn an_agent_counts_as_connected_until_its_last_stream_closes() {
    let mut r = Rig::new();
    r.attach(1);
    r.attach(1);
    r.st.agent_detached(1, r.now);
    assert!(r.st.agent_connected(1), "one stream is still open");
    assert!(r.create("d", 1, ActionKind::Drain).is_performed());
    r.st.agent_detached(1, r.now);
    assert!(!r.st.agent_connected(1));
}

// ----- granting ------------------------------------------------------------------------------

#[test]
fn once_the_agent_is_attached_the_drain_is_granted_and_in_progress_without_a_deadline() {
    let mut r = Rig::new();
    let a = r.create("d", 1, ActionKind::Drain);
    assert!(!a.is_performed());
    assert_eq!(r.attach(1), idle(), "the pending drain is not an order yet");
    let a = r.refresh("d");
    assert!(a.is_performed(), "{}", a.details());
    assert_eq!(a.deadline(), Some(Timestamp::NEVER));
    assert!(a.in_progress());
    let w = a.work.clone().expect("a work view");
    assert_eq!(w.kind, WorkKind::Drain);
    assert!(!w.done);
    assert_eq!(w.state, WorkState::Waiting);
    assert_eq!(w.details, "granted; waiting for the node's agent to drain");
    assert_eq!(
        r.st.orders(1),
        Orders {
            drain: do_("d", &a.id),
            cordon: Order::Idle,
        }
    );
    // An agent attaching now is told the same at once.
    assert_eq!(r.attach(1).drain, do_("d", &a.id));
    // A drain takes nothing down: the node is up, but no longer available to the checks.
    let node = r.st.node(1).expect("node 1");
    assert_eq!(node.lock, Some(("d".into(), Timestamp::NEVER)));
    assert!(!node.available);
    // Time does not end it.
    r.advance(365 * 24 * 3600);
    assert!(r.view("d").is_performed());
}

#[test]
fn a_cordon_is_granted_without_a_deadline_and_orders_a_cordon() {
    let mut r = Rig::new();
    let id = r.granted("c", 2, ActionKind::Cordon);
    let a = r.view("c");
    assert_eq!(a.deadline(), Some(Timestamp::NEVER));
    assert!(a.in_progress());
    let w = a.work.expect("work");
    assert_eq!(w.kind, WorkKind::Cordon);
    assert_eq!(w.details, "granted; waiting for the node's agent to cordon");
    assert_eq!(
        r.st.orders(2),
        Orders {
            drain: Order::Idle,
            cordon: do_("c", &id),
        }
    );
}

#[test]
fn a_lock_with_drain_keeps_its_finite_deadline() {
    let mut r = Rig::new();
    r.attach(3);
    let a = r.create("l", 3, ActionKind::DrainFirst);
    assert!(a.is_performed(), "{}", a.details());
    // The inventory's default lock duration, 5 minutes.
    assert_eq!(a.deadline(), Some(T0.plus(Duration::from_secs(300))));
    assert!(a.in_progress());
    assert_eq!(r.st.orders(3).drain, do_("l", &a.id));
    // With a duration of its own.
    r.attach(4);
    let mut rq = req("l2", 4, ActionKind::DrainFirst);
    rq.groups[0][0].duration = Some(Duration::from_secs(600));
    let o = r.st.create(rq, r.now).expect("create");
    r.record(&o.changes);
    assert_eq!(
        first(&o.value).deadline(),
        Some(T0.plus(Duration::from_secs(600)))
    );
    // A plain lock has no work.
    let p = r.create("p", 1, ActionKind::Lock);
    assert!(p.is_performed());
    assert!(!p.in_progress());
    assert_eq!(p.work, None);
    assert_eq!(r.st.orders(1), idle());
}

#[test]
fn a_lock_with_drain_expires_like_a_lock() {
    let mut r = Rig::new();
    let id = r.granted("l", 1, ActionKind::DrainFirst);
    r.report(
        1,
        report(WorkKind::Drain, "l", &id, false, HookOutcome::Done),
    );
    r.advance(301);
    assert!(r.st.task("l").is_none(), "the lapsed lock's task is gone");
    // The node was drained and is not seen up since: without heartbeats it is not monitored,
    // so it may take work back at once.
    assert_eq!(r.st.orders(1).drain, undo("l", &id));
}

#[test]
fn granting_marks_the_nodes_orders_dirty_once() {
    let mut r = Rig::new();
    r.attach(1);
    r.st.take_orders_dirty();
    let id = r.create("d", 1, ActionKind::Drain).id;
    assert_eq!(r.st.take_orders_dirty(), vec![1]);
    assert!(r.st.take_orders_dirty().is_empty(), "taken");
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
    );
    assert_eq!(
        r.st.take_orders_dirty(),
        vec![1],
        "the node now owes an undo"
    );
    r.complete("d", &id);
    assert_eq!(r.st.take_orders_dirty(), vec![1], "the undo is due");
}

// ----- the failure model ---------------------------------------------------------------------

#[test]
fn a_drain_counts_against_the_node_limit_like_a_lock() {
    let mut r = Rig::with_limits("max_unavailable_ratio = 0\nmax_unavailable_nodes = 1");
    let d1 = r.granted("d1", 1, ActionKind::Drain);
    r.attach(2);
    let a = r.create("d2", 2, ActionKind::Drain);
    assert!(!a.is_performed());
    assert_eq!(a.reason(), Some(Reason::DisabledNodesLimitReached));
    assert!(
        a.details()
            .contains("too many unavailable nodes in the cluster: locked 1 (node 1)"),
        "{}",
        a.details()
    );
    assert_eq!(r.st.orders(2), idle());
    // A plain lock waits for the drain as well, and so does a cordon.
    let p = r.create("p", 3, ActionKind::Lock);
    assert_eq!(p.reason(), Some(Reason::DisabledNodesLimitReached));
    r.attach(4);
    let c = r.create("c", 4, ActionKind::Cordon);
    assert_eq!(c.reason(), Some(Reason::DisabledNodesLimitReached));
    // The drain ends: the next one goes.
    r.complete("d1", &d1);
    let a = r.refresh("d2");
    assert!(a.is_performed(), "{}", a.details());
    assert_eq!(r.st.orders(2).drain, do_("d2", &a.id));
}

#[test]
fn a_drain_on_a_locked_node_waits_for_the_lock() {
    let mut r = Rig::new();
    assert!(r.create("p", 1, ActionKind::Lock).is_performed());
    r.attach(1);
    let a = r.create("d", 1, ActionKind::Drain);
    assert!(!a.is_performed());
    assert!(
        a.details().contains("node 1 is locked by task 'p'"),
        "{}",
        a.details()
    );
    assert_eq!(r.st.orders(1), idle(), "the plain lock has no work");
}

#[test]
fn a_dry_run_drain_grants_nothing_and_orders_nothing() {
    let mut r = Rig::new();
    r.attach(1);
    let mut rq = req("d", 1, ActionKind::Drain);
    rq.dry_run = true;
    let o = r.st.create(rq, r.now).expect("dry run");
    assert!(o.changes.is_empty());
    let a = first(&o.value);
    assert!(a.is_performed());
    assert_eq!(a.deadline(), Some(Timestamp::NEVER));
    assert!(r.st.task("d").is_none());
    assert_eq!(r.st.orders(1), idle());
}

// ----- texts ---------------------------------------------------------------------------------

#[test]
fn percentages_and_work_states_read_as_documented() {
    assert_eq!(percent(0), "0.00");
    assert_eq!(percent(5), "0.05");
    assert_eq!(percent(4200), "42.00");
    assert_eq!(percent(10_000), "100.00");
    assert_eq!(WorkState::Waiting.to_string(), "waiting for the agent");
    assert_eq!(
        WorkState::Running { progress: 1234 }.to_string(),
        "Progress: 12.34%"
    );
    assert_eq!(WorkState::Done.to_string(), "done");
    assert_eq!(
        WorkState::Failed {
            attempt: 1,
            exit: "killed by signal 9".into(),
            stderr: String::new(),
            retry_in_ms: 1,
        }
        .to_string(),
        "the hook failed (attempt 1): killed by signal 9; the agent tries again in 1s"
    );
    assert_eq!(ActionKind::Drain.work(), Some(WorkKind::Drain));
    assert_eq!(ActionKind::DrainFirst.work(), Some(WorkKind::Drain));
    assert_eq!(ActionKind::Cordon.work(), Some(WorkKind::Cordon));
    assert_eq!(ActionKind::Lock.work(), None);
    assert!(ActionKind::Drain.unlimited() && ActionKind::Cordon.unlimited());
    assert!(!ActionKind::DrainFirst.unlimited() && !ActionKind::Lock.unlimited());
}
