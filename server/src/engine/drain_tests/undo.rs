//! Unit tests of `engine::drain`: undoing a drain or cordon, and what survives a restore.

use super::*;

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
    let undo_failed = report(
        WorkKind::Drain,
        "d",
        &id,
        true,
        failed(1, "exited with status 2", "no route", 30_000),
    );
    let (changed, changes) = r.report(1, undo_failed.clone());
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
    // The same failure reported again (a resent report) changes nothing.
    let (changed, changes) = r.report(1, undo_failed);
    assert!(!changed, "{changes:?}");
    assert!(changes.is_empty(), "{changes:?}");
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
