//! Locks expire on their own timer: no Refresh is needed for a lapsed lock to be released.

use arbiter_e2e::proto::ydb::maintenance::AvailabilityMode;
use arbiter_e2e::proto::ydb::maintenance::{GetMaintenanceTaskResult, MaintenanceTaskResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, ServerProcess, example_inventory, is_pending, is_performed, lock, node_locks, node_of,
    states, status, success, task,
};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest a 1 s lock may take to disappear.
const EXPIRY_BOUND: Duration = Duration::from_secs(5);
/// How often to look.
const POLL: Duration = Duration::from_millis(50);

fn millis(t: &prost_types::Timestamp) -> i128 {
    i128::from(t.seconds) * 1000 + i128::from(t.nanos) / 1_000_000
}

fn now_millis() -> i128 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i128::try_from(d.as_millis()).expect("fits")
}

/// Polls Get until `uid` satisfies `done` (bounded by [`EXPIRY_BOUND`]); returns the last Get.
async fn wait_for(
    c: &Client,
    uid: &str,
    done: impl Fn(&arbiter_e2e::proto::ydb::operations::Operation) -> bool,
) -> arbiter_e2e::proto::ydb::operations::Operation {
    let start = Instant::now();
    loop {
        let op = c.get(uid).await;
        if done(&op) {
            return op;
        }
        assert!(
            start.elapsed() < EXPIRY_BOUND,
            "{uid}: not expired after {EXPIRY_BOUND:?}: {op:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn a_lapsed_lock_is_released_without_a_refresh_and_the_waiter_gets_it() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    let short: MaintenanceTaskResult = success(
        &c.create(task(
            "t-short",
            AvailabilityMode::Strong,
            vec![vec![lock(1, Some(1))]],
        ))
        .await,
    );
    let s = states(&short.action_group_states)[0].clone();
    assert!(is_performed(&s), "{short:?}");
    let deadline = millis(
        s.deadline
            .as_ref()
            .expect("a performed lock has a deadline"),
    );
    let granted = millis(short.create_time.as_ref().expect("create time"));
    assert!(
        (deadline - granted - 1000).abs() <= 1,
        "a 1 s lock: granted {granted}, deadline {deadline}"
    );

    let waiter: MaintenanceTaskResult = success(&c.create(node_locks("t-waiter", &[1])).await);
    let w = states(&waiter.action_group_states)[0];
    assert!(is_pending(w), "node 1 is taken: {waiter:?}");
    assert!(w.details.contains("t-short"), "{w:?}");

    let op = wait_for(&c, "t-short", |op| status(op) != StatusCode::Success).await;
    assert_eq!(
        arbiter_e2e::refusal(&op, StatusCode::BadRequest),
        "Task not found"
    );
    assert!(
        now_millis() >= deadline,
        "the lock went before its deadline ({deadline}, now {})",
        now_millis()
    );

    let got: MaintenanceTaskResult = success(&c.refresh("t-waiter").await);
    let w = states(&got.action_group_states)[0];
    assert_eq!(node_of(w), 1);
    assert!(
        is_performed(w),
        "the waiter gets node 1 on its next refresh: {got:?}"
    );
}

#[tokio::test]
async fn expiry_releases_the_lock_but_keeps_the_tasks_pending_actions() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    // Node 1 for 1 s; node 2 waits behind the cluster limit of one unavailable node.
    let r: MaintenanceTaskResult = success(
        &c.create(task(
            "t-mixed",
            AvailabilityMode::Strong,
            vec![vec![lock(1, Some(1))], vec![lock(2, None)]],
        ))
        .await,
    );
    let s = states(&r.action_group_states);
    assert!(is_performed(s[0]) && is_pending(s[1]), "{r:?}");

    let op = wait_for(&c, "t-mixed", |op| {
        let got: GetMaintenanceTaskResult = success(op);
        states(&got.action_group_states).len() == 1
    })
    .await;
    let got: GetMaintenanceTaskResult = success(&op);
    let left = states(&got.action_group_states);
    assert_eq!(node_of(left[0]), 2, "{got:?}");
    assert!(is_pending(left[0]), "{got:?}");

    let refreshed: MaintenanceTaskResult = success(&c.refresh("t-mixed").await);
    let left = states(&refreshed.action_group_states);
    assert_eq!(left.len(), 1);
    assert!(
        is_performed(left[0]),
        "node 2 is free to take now: {refreshed:?}"
    );
}
