//! Unit tests of `engine::drain`: the agents' reports.

use super::*;

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
