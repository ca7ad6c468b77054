//! Bad input: the binary refuses bad files and options with exit code 2 and a message that
//! names the file and key; the server refuses bad requests with one issue and changes nothing;
//! bytes that are not protobuf and oversized requests get a gRPC error, and the server stays up.

use arbiter_e2e::proto::ydb::maintenance::{
    Action, AvailabilityMode, CreateMaintenanceTaskRequest, DrainAction, GetMaintenanceTaskResult,
    ListClusterNodesResult, ListMaintenanceTasksResult, MaintenanceTaskResult, action,
    action_scope,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Files, ServerProcess, action_number, example_inventory, lock, node_locks, raw_unary, refusal,
    refusal_of, result_bytes, run_to_exit, states, success, task,
};
use std::ffi::OsStr;
use std::path::Path;

const CREATE_PATH: &str = "/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask";

/// Runs the binary with `args` (plus an ephemeral listen address and a data dir under `files`)
/// and asserts exit code 2 and that stderr mentions every one of `needles`.
fn refused_at_start(files: &Files, args: &[&OsStr], needles: &[&str]) {
    let data = files.path().join("data");
    let mut all: Vec<&OsStr> = vec!["--listen".as_ref(), "127.0.0.1:0".as_ref()];
    all.extend([OsStr::new("--data-dir"), data.as_os_str()]);
    all.extend_from_slice(args);
    let out = run_to_exit(&all, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {args:?}; stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no `listening on` line for {args:?}: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr for {args:?} should mention {needle:?}:\n{stderr}"
        );
    }
}

fn os(p: &Path) -> &OsStr {
    p.as_os_str()
}

#[test]
fn bad_files_and_options_exit_with_code_2_naming_the_file_and_key() {
    let files = Files::new();
    let example = example_inventory();
    let example_str = example.to_string_lossy().into_owned();

    let inventory = files.write(
        "unknown-node.toml",
        "[[nodes]]\nid = 1\nhost = \"h1\"\nport = 1\npdisks = [ { id = 1, path = \"/d\" } ]\n\
         [[storage_groups]]\nid = 7\nerasure = \"none\"\nnodes = [1, 99]\n",
    );
    refused_at_start(
        &files,
        &["--inventory".as_ref(), os(&inventory)],
        &[
            &inventory.to_string_lossy(),
            "storage_groups[0] (id 7).nodes[1]",
            "unknown node 99",
        ],
    );

    let missing = files.path().join("no-such-inventory.toml");
    refused_at_start(
        &files,
        &["--inventory".as_ref(), os(&missing)],
        &[&missing.to_string_lossy(), "cannot read"],
    );

    let auth = files.write(
        "auth.toml",
        "[[users]]\nname = \"mallory\"\ntoken = \"mallory-token-0000000001\"\nrole = \"root\"\n",
    );
    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--auth".as_ref(),
            os(&auth),
        ],
        &[&auth.to_string_lossy(), "users[0].role", "root"],
    );

    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--frobnicate".as_ref(),
        ],
        &["--frobnicate"],
    );

    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--max-lock-duration".as_ref(),
            "0s".as_ref(),
        ],
        &["--max-lock-duration", "0s"],
    );

    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--ring-settle-time".as_ref(),
            "two minutes".as_ref(),
        ],
        &["--ring-settle-time", "two minutes"],
    );

    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--max-lock-duration".as_ref(),
            "1h".as_ref(),
            "--default-lock-duration".as_ref(),
            "2h".as_ref(),
        ],
        &["--default-lock-duration", "--max-lock-duration"],
    );

    // The inventory's own default (10m) above the maximum: the file and its key are named.
    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--max-lock-duration".as_ref(),
            "5m".as_ref(),
        ],
        &[
            &example_str,
            "defaults.lock_duration",
            "--max-lock-duration",
        ],
    );
}

/// Inputs that parse but must still be refused: a JSON inventory with a duplicate key (JSON
/// parsers keep the last value; TOML refuses), and a password hash that looks like argon2 but
/// could never verify a password (found at load, not at the user's first Login).
#[test]
fn a_duplicate_json_key_and_an_unusable_password_hash_exit_with_code_2() {
    let files = Files::new();
    let inventory = files.write(
        "duplicate-key.json",
        r#"{"nodes": [
            {"id": 1, "host": "h1", "port": 1},
            {"id": 2, "host": "h2", "port": 1, "host": "h3"}
        ]}"#,
    );
    refused_at_start(
        &files,
        &["--inventory".as_ref(), os(&inventory)],
        &[
            &inventory.to_string_lossy(),
            "nodes[1] (id 2).host: duplicate key",
        ],
    );

    let example = example_inventory();
    // A valid hash with its memory cost set to 0: the right prefix, unusable parameters.
    let auth = files.write(
        "auth.toml",
        "[[users]]\nname = \"yves\"\nrole = \"operator\"\n\
         password_hash = '$argon2id$v=19$m=0,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
         oq4Jp7wKSNcoc8y4oMgA6mFkbcJb9AmQ4sJNqNjYqWM'\n",
    );
    refused_at_start(
        &files,
        &[
            "--inventory".as_ref(),
            os(&example),
            "--auth".as_ref(),
            os(&auth),
        ],
        &[
            &auth.to_string_lossy(),
            "users[0].password_hash: unusable for user 'yves'",
            "m=0",
        ],
    );
}

fn with_options(
    uid: &str,
    groups: Vec<Vec<Action>>,
    edit: impl FnOnce(&mut CreateMaintenanceTaskRequest),
) -> CreateMaintenanceTaskRequest {
    let mut req = task(uid, AvailabilityMode::Strong, groups);
    edit(&mut req);
    req
}

#[tokio::test]
async fn bad_requests_are_refused_with_one_issue_and_change_nothing() {
    let server = ServerProcess::start_with(example_inventory(), &["--max-lock-duration", "1h"]);
    let c = server.client(Some("e2e-user")).await;

    // One live task: its Get bytes and the task list must survive every refusal unchanged.
    let base: MaintenanceTaskResult = success(&c.create(node_locks("base", &[1, 2])).await);
    let base_ids: Vec<u64> = states(&base.action_group_states)
        .into_iter()
        .map(action_number)
        .collect();
    let base_get = result_bytes::<GetMaintenanceTaskResult>(&c.get("base").await);
    let base_list = result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await);

    let drain = Action {
        action: Some(action::Action::DrainAction(DrainAction {
            scope: Some(arbiter_e2e::proto::ydb::maintenance::ActionScope {
                scope: Some(action_scope::Scope::Host("storage-3.dc1.example".into())),
            }),
        })),
    };
    let host = |h: &str| Action {
        action: Some(action::Action::LockAction(
            arbiter_e2e::proto::ydb::maintenance::LockAction {
                scope: Some(arbiter_e2e::proto::ydb::maintenance::ActionScope {
                    scope: Some(action_scope::Scope::Host(h.into())),
                }),
                duration: None,
                drain: false,
            },
        )),
    };
    let long_uid = "u".repeat(129);
    let cases: Vec<(&str, CreateMaintenanceTaskRequest, StatusCode, &str)> = vec![
        (
            "unspecified availability mode",
            task(
                "bad-1",
                AvailabilityMode::Unspecified,
                vec![vec![lock(3, None)]],
            ),
            StatusCode::BadRequest,
            "Unknown availability mode",
        ),
        (
            "unknown availability mode",
            with_options("bad-2", vec![vec![lock(3, None)]], |r| {
                r.task_options.as_mut().expect("options").availability_mode = 77;
            }),
            StatusCode::BadRequest,
            "Unknown availability mode",
        ),
        (
            "an empty group",
            task(
                "bad-3",
                AvailabilityMode::Strong,
                vec![vec![lock(3, None)], vec![]],
            ),
            StatusCode::BadRequest,
            "Empty actions",
        ),
        (
            "no groups",
            task("bad-4", AvailabilityMode::Strong, vec![]),
            StatusCode::BadRequest,
            "action group",
        ),
        (
            "an unset action",
            task(
                "bad-5",
                AvailabilityMode::Strong,
                vec![vec![lock(3, None)], vec![Action { action: None }]],
            ),
            StatusCode::BadRequest,
            "Unknown action",
        ),
        (
            "a drain action by host",
            task("bad-6", AvailabilityMode::Strong, vec![vec![drain]]),
            StatusCode::BadRequest,
            "Unsupported scope: a drain action takes a node_id scope",
        ),
        (
            "a task uid of 129 bytes",
            task(
                &long_uid,
                AvailabilityMode::Strong,
                vec![vec![lock(3, None)]],
            ),
            StatusCode::BadRequest,
            "task_uid is longer than 128 bytes",
        ),
        (
            "an empty task uid",
            task("", AvailabilityMode::Strong, vec![vec![lock(3, None)]]),
            StatusCode::BadRequest,
            "task_uid",
        ),
        (
            "priority 101",
            with_options("bad-7", vec![vec![lock(3, None)]], |r| {
                r.task_options.as_mut().expect("options").priority = 101;
            }),
            StatusCode::BadRequest,
            "Priority value is out of range",
        ),
        (
            "priority -101",
            with_options("bad-8", vec![vec![lock(3, None)]], |r| {
                r.task_options.as_mut().expect("options").priority = -101;
            }),
            StatusCode::BadRequest,
            "Priority value is out of range",
        ),
        (
            "a negative duration",
            task(
                "bad-9",
                AvailabilityMode::Strong,
                vec![vec![lock(3, Some(-5))]],
            ),
            StatusCode::BadRequest,
            "must not be negative",
        ),
        (
            "a duration over --max-lock-duration",
            task(
                "bad-10",
                AvailabilityMode::Strong,
                vec![vec![lock(3, Some(3601))]],
            ),
            StatusCode::BadRequest,
            "exceeds the maximum",
        ),
        (
            "a duplicate task uid",
            node_locks("base", &[3]),
            StatusCode::BadRequest,
            "Maintenance task already exists",
        ),
        (
            "an unknown node next to a known one",
            node_locks("bad-11", &[3, 99]),
            StatusCode::BadRequest,
            "Unknown node 99",
        ),
        (
            "an unknown host",
            task(
                "bad-12",
                AvailabilityMode::Strong,
                vec![vec![host("nowhere.example")]],
            ),
            StatusCode::BadRequest,
            "Unknown host 'nowhere.example'",
        ),
        (
            "several groups with one of several actions",
            task(
                "bad-13",
                AvailabilityMode::Strong,
                vec![vec![lock(3, None)], vec![lock(4, None), lock(5, None)]],
            ),
            StatusCode::Unsupported,
            "either a single composite action group",
        ),
    ];

    for (what, req, code, needle) in cases {
        let uid = req
            .task_options
            .as_ref()
            .map(|o| o.task_uid.clone())
            .unwrap_or_default();
        let op = c.create(req).await;
        let msg = refusal_of::<MaintenanceTaskResult>(&op, code);
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should contain {needle:?}"
        );
        assert_eq!(
            result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await),
            base_list,
            "{what}: the task list changed"
        );
        assert_eq!(
            result_bytes::<GetMaintenanceTaskResult>(&c.get("base").await),
            base_get,
            "{what}: the existing task changed"
        );
        if uid != "base" && uid.len() <= 128 && !uid.is_empty() {
            let op = c.get(&uid).await;
            assert_eq!(
                refusal(&op, StatusCode::BadRequest),
                "Task not found",
                "{what}: the refused task exists"
            );
        }
    }

    // The refusals took no action ids: the next task's ids follow the base task's directly.
    let next: MaintenanceTaskResult = success(&c.create(node_locks("next", &[3])).await);
    let next_id = action_number(states(&next.action_group_states)[0]);
    assert_eq!(
        next_id,
        base_ids.iter().max().expect("ids") + 1,
        "refused requests consumed action ids"
    );
}

/// How tonic reports a body it cannot decode.
fn decode_error(e: &tonic::Status) -> bool {
    matches!(
        e.code(),
        tonic::Code::Internal | tonic::Code::InvalidArgument
    ) && e.message().contains("decode")
}

#[tokio::test]
async fn bytes_that_are_not_protobuf_get_a_grpc_error_and_the_server_stays_up() {
    let server = ServerProcess::start(example_inventory());
    let channel = server.channel().await;

    // 0xff... is a varint that never ends: no protobuf decoder can accept it.
    let garbage = vec![0xff; 32];
    let e = raw_unary(channel.clone(), CREATE_PATH, garbage)
        .await
        .expect_err("garbage must be refused");
    assert!(decode_error(&e), "{e:?}");
    // A field with wire type 7 (does not exist).
    let e = raw_unary(channel.clone(), CREATE_PATH, vec![0x0f, 0x01, 0x02])
        .await
        .expect_err("an invalid wire type must be refused");
    assert!(decode_error(&e), "{e:?}");

    let c = server.client(Some("e2e-user")).await;
    let nodes: ListClusterNodesResult = success(&c.list_nodes().await);
    assert_eq!(nodes.nodes.len(), 12);
    success::<MaintenanceTaskResult>(&c.create(node_locks("after-garbage", &[1])).await);
    let list: ListMaintenanceTasksResult = success(&c.list(None).await);
    assert_eq!(list.tasks_uids, vec!["after-garbage".to_owned()]);
}

#[tokio::test]
async fn a_request_over_8_mib_is_refused_and_the_server_stays_up() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    let huge = with_options("huge", vec![vec![lock(1, None)]], |r| {
        r.task_options.as_mut().expect("options").description = "x".repeat(9 * 1024 * 1024);
    });
    let e = c
        .maintenance()
        .create_maintenance_task(c.request(huge))
        .await
        .expect_err("a 9 MiB request must be refused");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("8388608"), "the limit is 8 MiB: {e:?}");

    // Below the limit the request is decoded and reaches validation (gRPC OK, BAD_REQUEST).
    let big = with_options("big", vec![vec![lock(1, None)]], |r| {
        r.task_options.as_mut().expect("options").description = "x".repeat(7 * 1024 * 1024);
    });
    let msg = refusal_of::<MaintenanceTaskResult>(&c.create(big).await, StatusCode::BadRequest);
    assert!(msg.contains("description"), "{msg}");

    // The same connection and a fresh one both still work, and nothing was created.
    let list: ListMaintenanceTasksResult = success(&c.list(None).await);
    assert!(list.tasks_uids.is_empty(), "{list:?}");
    let fresh = server.client(Some("e2e-user")).await;
    success::<MaintenanceTaskResult>(&fresh.create(node_locks("small", &[1])).await);
    assert_eq!(
        refusal(&fresh.get("huge").await, StatusCode::BadRequest),
        "Task not found"
    );
}
