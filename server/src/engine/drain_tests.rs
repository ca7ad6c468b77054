//! Unit tests of `engine::drain`.
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

// ----- reports -------------------------------------------------------------------------------

#[test]
fn a_running_report_shows_the_progress_as_ydb_prints_it() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Running(4200)),
    );
    assert!(changed);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::PutTask(t) if t.uid == "d")),
        "the progress is stored with the task: {changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::PutNode(1, rt) if rt.drained.is_some())),
        "the node owes an undo from the first report on: {changes:?}"
    );
    let a = r.view("d");
    assert!(a.in_progress());
    let w = a.work.expect("work");
    assert_eq!(w.state, WorkState::Running { progress: 4200 });
    assert_eq!(w.details, "Progress: 42.00%");
    assert_eq!(
        r.drained(1),
        Some(Applied {
            task: "d".into(),
            action: id.clone(),
            undo_failure: None,
        })
    );
    // The same report again changes nothing and records nothing.
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Running(4200)),
    );
    assert!(!changed);
    assert!(changes.is_empty(), "{changes:?}");
    // Progress is bounded at 100%.
    r.report(
        1,
        report(
            WorkKind::Drain,
            "d",
            &id,
            false,
            HookOutcome::Running(12_345),
        ),
    );
    assert_eq!(r.view("d").work.expect("work").details, "Progress: 100.00%");
    // Still the live action: the orders stay.
    assert_eq!(r.st.orders(1).drain, do_("d", &id));
}

#[test]
fn a_done_report_performs_the_drain_and_puts_the_node_in_maintenance() {
    let mut r = Rig::new();
    r.heartbeat(1);
    let id = r.granted("l", 1, ActionKind::DrainFirst);
    assert_eq!(r.condition(1), NodeCondition::Entering);
    r.report(
        1,
        report(WorkKind::Drain, "l", &id, false, HookOutcome::Running(5000)),
    );
    assert_eq!(r.condition(1), NodeCondition::Entering);
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "l", &id, false, HookOutcome::Done),
    );
    assert!(changed);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::PutTask(t) if t.uid == "l")),
        "{changes:?}"
    );
    let a = r.view("l");
    assert!(a.is_performed());
    assert!(!a.in_progress(), "done: PERFORMED on the wire");
    let w = a.work.expect("work");
    assert!(w.done);
    assert_eq!(w.state, WorkState::Done);
    assert_eq!(w.details, "drained by the node's agent");
    assert_eq!(r.condition(1), NodeCondition::InMaintenance);
    // The agent keeps its drain order (it is the live action) until the lock ends.
    assert_eq!(r.st.orders(1).drain, do_("l", &id));
    // A detached agent does not matter once done.
    r.st.agent_detached(1, r.now);
    let w = r.view("l").work.expect("work");
    assert_eq!(w.details, "drained by the node's agent");
}

#[test]
fn a_cordon_done_report_says_cordoned() {
    let mut r = Rig::new();
    let id = r.granted("c", 1, ActionKind::Cordon);
    r.report(
        1,
        report(WorkKind::Cordon, "c", &id, false, HookOutcome::Done),
    );
    let w = r.view("c").work.expect("work");
    assert!(w.done);
    assert_eq!(w.details, "cordoned by the node's agent");
    assert_eq!(
        r.cordoned(1).map(|a| (a.task, a.action)),
        Some(act("c", &id))
    );
    assert_eq!(r.drained(1), None);
}

#[test]
fn a_failed_report_shows_the_failure_and_the_retry_and_stays_in_progress() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    let (changed, changes) = r.report(
        1,
        report(
            WorkKind::Drain,
            "d",
            &id,
            false,
            failed(
                2,
                "exited with status 3",
                "starting\nwarming up\ndisk busy  \n",
                9_500,
            ),
        ),
    );
    assert!(changed);
    assert!(!changes.is_empty());
    let a = r.view("d");
    assert!(a.in_progress());
    let w = a.work.expect("work");
    assert_eq!(
        w.details,
        "drain: the hook failed (attempt 2): exited with status 3: disk busy; \
         the agent tries again in 10s"
    );
    assert_eq!(
        w.state,
        WorkState::Failed {
            attempt: 2,
            exit: "exited with status 3".into(),
            stderr: "disk busy".into(),
            retry_in_ms: 9_500,
        }
    );
    // Without stderr there is no empty ": ".
    r.report(
        1,
        report(
            WorkKind::Drain,
            "d",
            &id,
            false,
            failed(3, "timed out after 10s", "", 5_000),
        ),
    );
    assert_eq!(
        r.view("d").work.expect("work").details,
        "drain: the hook failed (attempt 3): timed out after 10s; the agent tries again in 5s"
    );
    // A failed drain still owes an undo (the hook may have done part of its work).
    assert!(r.drained(1).is_some());
    // And the agent is still told to drain (it retries).
    assert_eq!(r.st.orders(1).drain, do_("d", &id));
    // A later success ends it.
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
    );
    assert!(r.view("d").work.expect("work").done);
}

#[test]
fn a_long_stderr_line_is_cut_at_a_character_boundary() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    let long = "é".repeat(400); // 800 bytes
    r.report(
        1,
        report(
            WorkKind::Drain,
            "d",
            &id,
            false,
            failed(1, "exited with status 1", &long, 1_000),
        ),
    );
    let Some(WorkState::Failed { stderr, .. }) = r.view("d").work.map(|w| w.state) else {
        panic!("not failed");
    };
    assert!(stderr.len() <= MAX_STDERR, "{}", stderr.len());
    assert!(stderr.len() >= MAX_STDERR - 1);
    assert!(stderr.chars().all(|c| c == 'é'));
}

#[test]
fn stale_reports_change_nothing() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    r.attach(2);
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Running(1000)),
    );
    let before = r.st.snapshot();
    let stale = [
        // An action that does not exist.
        (
            1,
            report(WorkKind::Drain, "d", "a-999", false, HookOutcome::Done),
        ),
        // A task that does not exist.
        (
            1,
            report(WorkKind::Drain, "nope", &id, false, HookOutcome::Done),
        ),
        // The right action, reported by another node.
        (
            2,
            report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
        ),
        // The right action, as the other kind of work.
        (
            1,
            report(WorkKind::Cordon, "d", &id, false, HookOutcome::Done),
        ),
        // An undo of something never applied for it.
        (
            2,
            report(WorkKind::Drain, "d", &id, true, HookOutcome::Done),
        ),
        (
            1,
            report(WorkKind::Cordon, "d", &id, true, HookOutcome::Done),
        ),
    ];
    for (node, rep) in stale {
        let shown = format!("node {node}: {rep:?}");
        let (changed, changes) = r.report(node, rep);
        assert!(!changed, "{shown}");
        assert!(changes.is_empty(), "{shown}: {changes:?}");
        assert_eq!(r.st.snapshot(), before, "{shown}");
    }
    assert_eq!(
        r.view("d").work.expect("work").state,
        WorkState::Running { progress: 1000 }
    );
}

#[test]
fn reports_after_the_task_is_gone_change_nothing() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    // Never reported: nothing is owed after the drop.
    r.drop_task("d");
    assert_eq!(r.st.orders(1), idle());
    let before = r.st.snapshot();
    for outcome in [
        HookOutcome::Running(5000),
        HookOutcome::Done,
        failed(1, "exited with status 1", "x", 1000),
    ] {
        let (changed, changes) = r.report(1, report(WorkKind::Drain, "d", &id, false, outcome));
        assert!(!changed);
        assert!(changes.is_empty(), "{changes:?}");
    }
    assert_eq!(r.st.snapshot(), before);
    assert_eq!(
        r.drained(1),
        None,
        "a late report does not mark the node drained"
    );
    assert_eq!(r.st.orders(1), idle());
}

#[test]
fn a_report_for_a_completed_drain_does_not_bring_it_back() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Running(100)),
    );
    r.complete("d", &id);
    assert_eq!(r.st.orders(1).drain, undo("d", &id));
    // The drain hook's late "done" changes neither the orders nor the owed undo.
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
    );
    assert!(!changed);
    assert!(changes.is_empty());
    assert_eq!(r.st.orders(1).drain, undo("d", &id));
}

// ----- undo ----------------------------------------------------------------------------------

#[test]
fn completing_a_drain_orders_the_undrain_at_once_and_done_clears_the_mark() {
    let mut r = Rig::new();
    r.heartbeat(1); // monitored: still no wait, a drain took nothing down
    let id = r.granted("d", 1, ActionKind::Drain);
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
    );
    r.st.take_orders_dirty();
    r.complete("d", &id);
    assert!(r.st.task("d").is_none());
    assert_eq!(
        r.st.orders(1),
        Orders {
            drain: undo("d", &id),
            cordon: Order::Idle,
        }
    );
    assert_eq!(r.condition(1), NodeCondition::Up, "not restarting");
    assert!(r.st.node(1).expect("node").available);
    // The undo hook runs: a running report changes nothing.
    let (changed, _) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, true, HookOutcome::Running(5000)),
    );
    assert!(!changed);
    // It fails: kept in words, the undo still owed.
    let (changed, changes) = r.report(
        1,
        report(
            WorkKind::Drain,
            "d",
            &id,
            true,
            failed(1, "exited with status 2", "no route", 30_000),
        ),
    );
    assert!(changed);
    assert!(
        changes.iter().any(|c| matches!(c, Change::PutNode(1, _))),
        "{changes:?}"
    );
    let mark = r.drained(1).expect("still owed");
    assert_eq!(
        mark.undo_failure.as_deref(),
        Some(
            "the hook failed (attempt 1): exited with status 2: no route; \
             the agent tries again in 30s"
        )
    );
    assert_eq!(r.st.orders(1).drain, undo("d", &id));
    // ... and in the node's detail, where an operator looks.
    assert_eq!(
        r.st.node(1).expect("node").detail.as_deref(),
        Some(
            "drained for task 'd' (undrain asked of its agent); undrain: the hook failed \
             (attempt 1): exited with status 2: no route; the agent tries again in 30s"
        )
    );
    // It succeeds: the mark is gone, nothing more to do.
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, true, HookOutcome::Done),
    );
    assert!(changed);
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::PutNode(1, rt) if rt.drained.is_none())),
        "{changes:?}"
    );
    assert_eq!(r.drained(1), None);
    assert_eq!(r.st.orders(1), idle());
    // A repeated undo report changes nothing.
    let (changed, changes) = r.report(
        1,
        report(WorkKind::Drain, "d", &id, true, HookOutcome::Done),
    );
    assert!(!changed);
    assert!(changes.is_empty());
}

#[test]
fn dropping_a_cordon_orders_the_uncordon_at_once() {
    let mut r = Rig::new();
    let id = r.granted("c", 2, ActionKind::Cordon);
    r.report(
        2,
        report(WorkKind::Cordon, "c", &id, false, HookOutcome::Done),
    );
    r.drop_task("c");
    assert_eq!(
        r.st.orders(2),
        Orders {
            drain: Order::Idle,
            cordon: undo("c", &id),
        }
    );
    // An undrain report does not clear a cordon.
    let (changed, _) = r.report(
        2,
        report(WorkKind::Drain, "c", &id, true, HookOutcome::Done),
    );
    assert!(!changed);
    assert!(r.cordoned(2).is_some());
    r.report(
        2,
        report(WorkKind::Cordon, "c", &id, true, HookOutcome::Done),
    );
    assert_eq!(r.cordoned(2), None);
    assert_eq!(r.st.orders(2), idle());
}

#[test]
fn after_a_lock_with_drain_the_node_holds_its_drain_until_seen_up_again() {
    let mut r = Rig::new();
    r.heartbeat(1);
    let id = r.granted("l", 1, ActionKind::DrainFirst);
    r.report(
        1,
        report(WorkKind::Drain, "l", &id, false, HookOutcome::Done),
    );
    assert_eq!(r.condition(1), NodeCondition::InMaintenance);
    r.advance(10);
    r.complete("l", &id);
    assert_eq!(r.condition(1), NodeCondition::Restarting);
    assert_eq!(r.st.orders(1).drain, Order::Hold, "not while it restarts");
    assert!(r.drained(1).is_some());
    let detail = r.st.node(1).expect("node").detail.unwrap_or_default();
    assert!(
        detail.ends_with("; drained for task 'l' (undrain waits until it is seen healthy again)"),
        "{detail}"
    );
    // Still holding across a restart of the arbiter.
    let restored = State::restore(r.st.cluster().clone(), r.records.clone());
    assert_eq!(restored.orders(1).drain, Order::Hold);
    // Seen up again: undrain now.
    r.advance(20);
    r.heartbeat(1);
    assert_eq!(r.condition(1), NodeCondition::Up);
    assert_eq!(r.st.orders(1).drain, undo("l", &id));
    r.report(
        1,
        report(WorkKind::Drain, "l", &id, true, HookOutcome::Done),
    );
    assert_eq!(r.st.orders(1), idle());
    assert_eq!(r.drained(1), None);
    assert_eq!(r.st.node(1).expect("node").detail, None);
}

#[test]
fn a_node_set_down_by_hand_holds_its_undrain_until_set_up() {
    let mut r = Rig::new();
    let id = r.granted("d", 1, ActionKind::Drain);
    r.report(
        1,
        report(WorkKind::Drain, "d", &id, false, HookOutcome::Done),
    );
    let o =
        r.st.set_node_state(1, false, "bad disk", r.now)
            .expect("down");
    r.record(&o.changes);
    r.complete("d", &id);
    assert_eq!(r.st.orders(1).drain, Order::Hold);
    let o = r.st.set_node_state(1, true, "", r.now).expect("up");
    r.record(&o.changes);
    assert_eq!(r.st.orders(1).drain, undo("d", &id));
}

#[test]
fn a_lock_with_drain_never_reported_owes_no_undrain() {
    let mut r = Rig::new();
    r.heartbeat(1);
    let id = r.granted("l", 1, ActionKind::DrainFirst);
    r.complete("l", &id);
    assert_eq!(r.st.orders(1), idle());
    assert_eq!(r.drained(1), None);
}

#[test]
fn a_new_drain_on_a_node_that_owes_an_undrain_is_done_first() {
    let mut r = Rig::new();
    let id1 = r.granted("d1", 1, ActionKind::Drain);
    r.report(
        1,
        report(WorkKind::Drain, "d1", &id1, false, HookOutcome::Done),
    );
    r.complete("d1", &id1);
    assert_eq!(r.st.orders(1).drain, undo("d1", &id1));
    let id2 = r.create("d2", 1, ActionKind::Drain).id;
    // The live action wins: the agent drains for it (the node is drained already).
    assert_eq!(r.st.orders(1).drain, do_("d2", &id2));
    r.report(
        1,
        report(WorkKind::Drain, "d2", &id2, false, HookOutcome::Done),
    );
    assert_eq!(
        r.drained(1).map(|a| (a.task, a.action)),
        Some(act("d2", &id2))
    );
    // The old undo's late report does not clear the new drain's mark.
    let (changed, _) = r.report(
        1,
        report(WorkKind::Drain, "d1", &id1, true, HookOutcome::Done),
    );
    assert!(!changed);
    assert!(r.drained(1).is_some());
    r.complete("d2", &id2);
    assert_eq!(r.st.orders(1).drain, undo("d2", &id2));
}

// ----- durability and soft state -------------------------------------------------------------

#[test]
fn work_states_and_owed_undos_survive_a_restore() {
    let mut r = Rig::new();
    let d = r.granted("d", 1, ActionKind::Drain);
    let c = r.granted("c", 2, ActionKind::Cordon);
    let l = r.granted("l", 3, ActionKind::DrainFirst);
    r.report(
        1,
        report(WorkKind::Drain, "d", &d, false, HookOutcome::Done),
    );
    r.report(
        2,
        report(WorkKind::Cordon, "c", &c, false, HookOutcome::Done),
    );
    r.report(
        3,
        report(WorkKind::Drain, "l", &l, false, HookOutcome::Running(4200)),
    );
    r.drop_task("d");

    // From the records alone (what the store holds).
    let restored = State::restore(r.st.cluster().clone(), r.records.clone());
    assert_eq!(restored.snapshot(), r.st.snapshot());
    // From the live state's snapshot.
    let mut again = State::restore(r.st.cluster().clone(), r.st.snapshot());
    for st in [&restored, &again] {
        assert_eq!(
            st.orders(1).drain,
            undo("d", &d),
            "the undrain is still owed"
        );
        assert_eq!(st.orders(2).cordon, do_("c", &c));
        assert_eq!(st.orders(3).drain, do_("l", &l));
        let cv = first(&st.task("c").expect("c"));
        assert!(cv.work.as_ref().expect("work").done);
        assert_eq!(cv.deadline(), Some(Timestamp::NEVER));
        let lv = first(&st.task("l").expect("l"));
        assert!(lv.in_progress());
        assert_eq!(
            lv.work.expect("work").state,
            WorkState::Running { progress: 4200 }
        );
    }
    // Agents are soft state: a restored state has none until they reconnect...
    assert!(!again.agent_connected(3));
    assert!(
        first(&again.task("l").expect("l"))
            .work
            .expect("work")
            .details
            .contains("the agent of node 3 is not connected: the drain resumes when it returns")
    );
    // ...unless carried over from the state it replaces.
    again.keep_agents_of(&r.st);
    assert!(again.agent_connected(3));
    assert_eq!(
        first(&again.task("l").expect("l"))
            .work
            .expect("work")
            .details,
        "Progress: 42.00%"
    );
}

#[test]
fn an_agent_that_goes_away_mid_drain_is_named_in_the_details() {
    let mut r = Rig::new();
    let id = r.granted("l", 2, ActionKind::DrainFirst);
    let w = r.view("l").work.expect("work");
    assert_eq!(w.details, "granted; waiting for the node's agent to drain");
    r.report(
        2,
        report(WorkKind::Drain, "l", &id, false, HookOutcome::Running(4200)),
    );
    r.now = r.now.plus(Duration::from_secs(30));
    r.st.agent_detached(2, r.now);
    let a = r.view("l");
    assert!(a.is_performed());
    assert!(a.in_progress(), "still in progress without its agent");
    let w = a.work.expect("work");
    assert_eq!(
        w.details,
        "Progress: 42.00%; the agent of node 2 is not connected since 2026-01-01T00:00:30Z: \
         the drain resumes when it returns"
    );
    // The orders stay; the agent gets them when it comes back.
    assert_eq!(r.st.orders(2).drain, do_("l", &id));
    assert_eq!(r.attach(2).drain, do_("l", &id));
    assert_eq!(r.view("l").work.expect("work").details, "Progress: 42.00%");
    // A failure text carries the note too.
    r.report(
        2,
        report(
            WorkKind::Drain,
            "l",
            &id,
            false,
            failed(1, "exited with status 3", "busy", 2000),
        ),
    );
    r.st.agent_detached(2, r.now);
    let d = r.view("l").work.expect("work").details;
    assert!(d.starts_with("drain: the hook failed (attempt 1)"), "{d}");
    assert!(
        d.ends_with("the agent of node 2 is not connected since 2026-01-01T00:00:30Z: the drain resumes when it returns"),
        "{d}"
    );
}

#[test]
fn a_waiting_cordon_names_its_lost_agent() {
    let mut r = Rig::new();
    r.granted("c", 4, ActionKind::Cordon);
    r.st.agent_detached(4, r.now);
    assert_eq!(
        r.view("c").work.expect("work").details,
        "granted; waiting for the node's agent to cordon; the agent of node 4 is not connected \
         since 2026-01-01T00:00:00Z: the cordon resumes when it returns"
    );
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
