//! Crash safety: everything a reply reported survives `kill -9`, byte for byte.

use arbiter_e2e::proto::ydb::maintenance::{
    GetMaintenanceTaskResult, ListMaintenanceTasksResult, MaintenanceTaskResult, ManageActionResult,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, action_number, is_pending, is_performed, node_locks, node_of,
    refusal, result_bytes, states, success, uid_of,
};

#[tokio::test]
async fn kill_9_loses_nothing_that_was_answered() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;

    // A task whose only action was completed before the crash: it is gone and stays gone.
    let gone: MaintenanceTaskResult = success(&c.create(node_locks("t-gone", &[5])).await);
    let gone_state = states(&gone.action_group_states)[0].clone();
    assert!(is_performed(&gone_state), "{gone:?}");
    success::<ManageActionResult>(&c.complete(vec![uid_of(&gone_state)]).await);
    assert_eq!(
        refusal(&c.get("t-gone").await, StatusCode::BadRequest),
        "Task not found"
    );

    // A fully performed task, and one with a performed and a pending action (limit: 2 nodes).
    let full: MaintenanceTaskResult = success(&c.create(node_locks("t-full", &[1])).await);
    assert!(
        is_performed(states(&full.action_group_states)[0]),
        "{full:?}"
    );
    let part: MaintenanceTaskResult = success(&c.create(node_locks("t-part", &[2, 3])).await);
    let s = states(&part.action_group_states);
    assert!(is_performed(s[0]) && is_pending(s[1]), "{part:?}");

    let mut issued: Vec<u64> = vec![action_number(&gone_state)];
    for r in [&full, &part] {
        issued.extend(
            states(&r.action_group_states)
                .into_iter()
                .map(action_number),
        );
    }
    let full_before = result_bytes::<GetMaintenanceTaskResult>(&c.get("t-full").await);
    let part_before = result_bytes::<GetMaintenanceTaskResult>(&c.get("t-part").await);
    let list_before = result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await);
    drop(c);

    let status = server.kill9();
    assert!(!status.success(), "SIGKILL: {status:?}");
    server.restart();
    let c = server.client(Some("e2e-user")).await;

    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("t-full").await),
        full_before,
        "t-full changed across the crash"
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("t-part").await),
        part_before,
        "t-part changed across the crash"
    );
    assert_eq!(
        result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await),
        list_before,
        "the task list changed across the crash"
    );
    assert_eq!(
        refusal(&c.get("t-gone").await, StatusCode::BadRequest),
        "Task not found",
        "a completed task came back"
    );

    // Node 1's lock still holds: a new task on it waits, naming the holder. Its action id is
    // new, even compared to the completed action's id.
    let after: MaintenanceTaskResult = success(&c.create(node_locks("t-after", &[1])).await);
    let a = states(&after.action_group_states)[0];
    assert_eq!(node_of(a), 1);
    assert!(
        is_pending(a),
        "the pre-crash lock must still block: {after:?}"
    );
    assert!(
        a.details.contains("t-full"),
        "details name the holder: {a:?}"
    );
    let max_before = issued.iter().copied().max().expect("ids");
    assert!(
        action_number(a) > max_before,
        "action id {} reused or went back (issued before the crash: {issued:?})",
        action_number(a)
    );

    // The limit state survived too: t-part's pending action still waits (nodes 1 and 2 are
    // locked), and a refresh does not grant it.
    let refreshed: MaintenanceTaskResult = success(&c.refresh("t-part").await);
    let s = states(&refreshed.action_group_states);
    assert_eq!(
        s.iter().filter(|s| is_performed(s)).count(),
        1,
        "{refreshed:?}"
    );
    assert!(is_pending(s[1]), "{refreshed:?}");
}

/// More batches than the store's write-ahead log holds between two checkpoints (512): after
/// `kill -9` part of the state is in the redb file and the rest is replayed from the log, and
/// the answers are the same, byte for byte.
#[tokio::test]
async fn kill_9_after_a_checkpoint_loses_nothing_either() {
    const CYCLES: usize = 300;
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;
    // Two batches each (create, complete): 600 commits, past the first checkpoint.
    for i in 0..CYCLES {
        let node = u32::try_from(i % 5).expect("small") + 1;
        let r: MaintenanceTaskResult =
            success(&c.create(node_locks(&format!("c-{i}"), &[node])).await);
        let s = states(&r.action_group_states)[0].clone();
        assert!(is_performed(&s), "{r:?}");
        success::<ManageActionResult>(&c.complete(vec![uid_of(&s)]).await);
    }
    // And what is live at the crash: a granted task and one waiting behind it.
    let held: MaintenanceTaskResult = success(&c.create(node_locks("held", &[3])).await);
    assert!(is_performed(states(&held.action_group_states)[0]));
    let waits: MaintenanceTaskResult = success(&c.create(node_locks("waits", &[3])).await);
    assert!(is_pending(states(&waits.action_group_states)[0]));
    let list_before = result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await);
    let held_before = result_bytes::<GetMaintenanceTaskResult>(&c.get("held").await);
    let waits_before = result_bytes::<GetMaintenanceTaskResult>(&c.get("waits").await);
    drop(c);

    assert!(!server.kill9().success());
    server.restart();
    let c = server.client(Some("e2e-user")).await;
    assert_eq!(
        result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await),
        list_before
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("held").await),
        held_before
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("waits").await),
        waits_before
    );
    assert_eq!(
        refusal(&c.get("c-7").await, StatusCode::BadRequest),
        "Task not found",
        "a completed task came back"
    );
    // The numbering goes on past everything issued before the crash.
    let next: MaintenanceTaskResult = success(&c.create(node_locks("next", &[1])).await);
    let id = action_number(states(&next.action_group_states)[0]);
    let held_id = action_number(states(&held.action_group_states)[0]);
    let waits_id = action_number(states(&waits.action_group_states)[0]);
    assert!(
        id > held_id.max(waits_id),
        "{id} after {held_id}, {waits_id}"
    );
}
