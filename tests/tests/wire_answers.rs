//! What the server answers on the wire, beyond the envelope: `retry_after` as the proto documents
//! it (set only while no action of the task is performed), the order of validation of an empty
//! request, INVALID_ARGUMENT for bytes that are not a request, and the wording of refusals.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{ReloadInventoryRequest, WatchMaintenanceTaskRequest};
use arbiter_e2e::proto::ydb::maintenance::{
    AvailabilityMode, CreateMaintenanceTaskRequest, MaintenanceTaskOptions, MaintenanceTaskResult,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, example_inventory, is_pending, is_performed, lock,
    node_locks, raw_unary, refusal_of, states, success, task,
};
use std::time::Duration;

/// Within this, the first message of a watch arrives.
const BOUND: Duration = Duration::from_secs(10);

/// A five-node server (at most two nodes unavailable) with a task that holds nodes 1 and 2 and
/// waits for node 3, and a task that holds nothing and waits for node 4.
async fn part_and_waiting(files: &Files) -> (ServerProcess, arbiter_e2e::Client) {
    let inventory = files.write("inventory.toml", FIVE_NODES);
    let server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;
    let part: MaintenanceTaskResult = success(&c.create(node_locks("part", &[1, 2, 3])).await);
    let s = states(&part.action_group_states);
    assert!(
        is_performed(s[0]) && is_performed(s[1]) && is_pending(s[2]),
        "{part:?}"
    );
    assert!(
        part.retry_after.is_none(),
        "create: something is performed, so no retry_after: {part:?}"
    );
    let waits: MaintenanceTaskResult = success(&c.create(node_locks("waits", &[4])).await);
    assert!(
        is_pending(states(&waits.action_group_states)[0]),
        "{waits:?}"
    );
    (server, c)
}

#[tokio::test]
async fn refresh_sets_retry_after_only_while_nothing_is_performed() {
    let files = Files::new();
    let (_server, c) = part_and_waiting(&files).await;

    // Node 3 still waits, but the task holds nodes 1 and 2: "set when no action is performed".
    let part: MaintenanceTaskResult = success(&c.refresh("part").await);
    let s = states(&part.action_group_states);
    assert!(is_performed(s[0]) && is_pending(s[2]), "{part:?}");
    assert_eq!(
        part.retry_after, None,
        "refresh of a task that holds a performed lock carries no retry_after"
    );

    // A task with nothing performed keeps its hint, on create and on refresh alike.
    let waits: MaintenanceTaskResult = success(&c.refresh("waits").await);
    assert!(
        is_pending(states(&waits.action_group_states)[0]),
        "{waits:?}"
    );
    let retry = waits
        .retry_after
        .expect("nothing performed: retry_after is set");
    let refreshed = waits.last_refresh_time.expect("last_refresh_time");
    assert!(retry.seconds > refreshed.seconds, "{waits:?}");
}

#[tokio::test]
async fn the_watch_stream_sets_retry_after_only_while_nothing_is_performed() {
    let files = Files::new();
    let (server, c) = part_and_waiting(&files).await;
    let mut arbiter = ArbiterServiceClient::new(server.channel().await);
    let mut stream = arbiter
        .watch_maintenance_task(c.request(WatchMaintenanceTaskRequest {
            task_uid: "part".into(),
        }))
        .await
        .expect("WatchMaintenanceTask")
        .into_inner();
    // The owner's watch re-checks the task at once: node 3 still waits.
    let first = tokio::time::timeout(BOUND, stream.message())
        .await
        .expect("a first message in time")
        .expect("the stream is open")
        .expect("a message");
    assert_eq!(first.status, StatusCode::Success as i32, "{first:?}");
    let result = first.result.expect("the task's state");
    assert!(
        is_performed(states(&result.action_group_states)[0]),
        "{result:?}"
    );
    assert_eq!(
        result.retry_after, None,
        "a watched task that holds a performed lock carries no retry_after"
    );
}

#[tokio::test]
async fn an_empty_create_is_told_the_task_uid_first() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    // No task_options at all.
    let op = c.create(CreateMaintenanceTaskRequest::default()).await;
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert!(
        msg.contains("task_uid"),
        "the missing uid comes first: {msg}"
    );

    // Options without a uid (and without a mode or groups).
    let op = c
        .create(CreateMaintenanceTaskRequest {
            task_options: Some(MaintenanceTaskOptions::default()),
            ..Default::default()
        })
        .await;
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert!(
        msg.contains("task_uid"),
        "the missing uid comes first: {msg}"
    );

    // With a uid, what comes next is told.
    let op = c
        .create(task("no-groups", AvailabilityMode::Strong, vec![]))
        .await;
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert!(msg.contains("action group"), "{msg}");
}

#[tokio::test]
async fn bytes_that_are_not_a_request_are_invalid_argument_naming_the_message() {
    let server = ServerProcess::start(example_inventory());
    let channel = server.channel().await;
    // 0xff... is a varint that never ends; 0x0f is a field with wire type 7 (none such).
    let cases: [(&'static str, &str, Vec<u8>); 4] = [
        (
            "/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask",
            "Ydb.Maintenance.CreateMaintenanceTaskRequest",
            vec![0xff; 32],
        ),
        (
            "/Ydb.Maintenance.V1.MaintenanceService/RefreshMaintenanceTask",
            "Ydb.Maintenance.RefreshMaintenanceTaskRequest",
            vec![0x0f, 0x01, 0x02],
        ),
        (
            "/Ydb.Auth.V1.AuthService/Login",
            "Ydb.Auth.LoginRequest",
            vec![0xff; 8],
        ),
        (
            "/arbiter.v1.ArbiterService/Heartbeat",
            "arbiter.v1.HeartbeatRequest",
            vec![0x0f],
        ),
    ];
    for (path, message, body) in cases {
        let e = raw_unary(channel.clone(), path, body)
            .await
            .expect_err("garbage is refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{path}: {e:?}");
        assert!(
            e.message()
                .starts_with(&format!("request body is not a valid {message}: ")),
            "{path}: the message names the problem: {e:?}"
        );
    }
    // The server stays up and serves the next request.
    let c = server.client(Some("e2e-user")).await;
    success::<MaintenanceTaskResult>(&c.create(node_locks("after-garbage", &[1])).await);
}

#[tokio::test]
async fn a_negative_duration_is_told_as_a_duration() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;
    let op = c
        .create(task(
            "negative",
            AvailabilityMode::Strong,
            vec![vec![lock(3, Some(-5))]],
        ))
        .await;
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert_eq!(
        msg,
        "invalid lock duration -5s: a duration must not be negative"
    );
}

#[tokio::test]
async fn an_operator_is_an_operator() {
    let files = Files::new();
    let auth = files.write(
        "auth.toml",
        "[[users]]\nname = \"olga\"\ntoken = \"olga-token-0000000000001\"\nrole = \"operator\"\n",
    );
    let server =
        ServerProcess::start_with(example_inventory(), &["--auth".as_ref(), auth.as_os_str()]);
    let c = server.client(Some("olga-token-0000000000001")).await;
    let e = ArbiterServiceClient::new(c.channel())
        .reload_inventory(c.request(ReloadInventoryRequest {}))
        .await
        .expect_err("an operator may not reload");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        "Access denied: 'olga' is an operator and may not reload the inventory"
    );
}
