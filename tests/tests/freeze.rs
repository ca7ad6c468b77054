//! Freezes and read-only mode through the real binaries: `arbiter freeze on|off|status` and
//! `arbiter read-only on|off|status` against a running server, tasks over YDB's API.
//!
//! A frozen data center holds back a task on one of its nodes (the freeze named in the pending
//! details, retry_after at its end) while a node elsewhere is granted; completing works while
//! frozen; after `off` a refresh grants; a second `on` is refused naming who froze it.
//! Read-only mode refuses a create (UNAVAILABLE, naming the reason and who) while `arbiter
//! nodes` and heartbeats work. Both survive a restart.

use arbiter_e2e::proto::ydb::maintenance::{MaintenanceTaskResult, ManageActionResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Files, ServerProcess, cli, cli_failed as failed, cli_ok as ok, is_performed, node_locks,
    refusal, states, success, uid_of,
};
use std::process::Output;

const FOUR_NODES: &str = r#"
[limits]
max_unavailable_ratio = 0

[[nodes]]
id = 1
host = "node-1"
port = 1
data_center = "dc-1"

[[nodes]]
id = 2
host = "node-2"
port = 1
data_center = "dc-1"

[[nodes]]
id = 3
host = "node-3"
port = 1
data_center = "dc-2"

[[nodes]]
id = 4
host = "node-4"
port = 1
data_center = "dc-2"
"#;

const USERS: &str = r#"
[[users]]
name = "root"
token = "root-token-0000000000001"
role = "admin"

[[users]]
name = "alice"
token = "alice-token-000000000001"
role = "operator"

[[users]]
name = "bob"
token = "bob-token-00000000000001"
role = "operator"
"#;

const ROOT: &str = "root-token-0000000000001";
const ALICE: &str = "alice-token-000000000001";
const BOB: &str = "bob-token-00000000000001";

fn arbiter(server: &ServerProcess, token: &str, args: &[&str]) -> Output {
    cli(server, Some(token), args)
}

#[tokio::test(flavor = "multi_thread")]
async fn freezes_hold_back_grants_and_read_only_refuses_changes_across_a_restart() {
    let files = Files::new();
    let inventory = files.write("four.toml", FOUR_NODES);
    let auth = files.write("users.toml", USERS);
    let mut server =
        ServerProcess::start_with(&inventory, &["--auth", auth.to_str().expect("utf-8")]);

    // Freeze dc-1 for 2h.
    let out = ok(&arbiter(
        &server,
        ALICE,
        &[
            "freeze",
            "on",
            "--dc",
            "dc-1",
            "--reason",
            "incident 4711",
            "--for",
            "2h",
        ],
    ));
    assert!(
        out.contains("data center 'dc-1' is frozen by alice"),
        "{out}"
    );

    // A second freeze of the same scope is refused, naming who froze it and why.
    let err = failed(&arbiter(
        &server,
        BOB,
        &["freeze", "on", "--dc", "dc-1", "--reason", "me too"],
    ));
    assert!(err.contains("frozen by alice"), "{err}");
    assert!(err.contains("incident 4711"), "{err}");

    // A task on a node there waits, the freeze named; retry_after is the freeze's end.
    let c = server.client(Some(ALICE)).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("frozen", &[1])).await);
    let a = states(&t.action_group_states)[0];
    assert!(!is_performed(a), "{t:?}");
    assert!(
        a.details
            .contains("data center 'dc-1' is frozen by alice since"),
        "{t:?}"
    );
    assert!(a.details.contains("for 'incident 4711', until"), "{t:?}");
    let retry = t.retry_after.expect("retry_after").seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (retry - (now + 7200)).abs() < 120,
        "retry_after {retry} is not the freeze's end (now {now})"
    );

    // A node elsewhere is granted, and completing works while frozen.
    let t: MaintenanceTaskResult = success(&c.create(node_locks("elsewhere", &[3])).await);
    let a = states(&t.action_group_states)[0];
    assert!(is_performed(a), "{t:?}");
    let r: ManageActionResult = success(&c.complete(vec![uid_of(a)]).await);
    assert_eq!(r.action_statuses.len(), 1, "{r:?}");

    // Status names the freeze.
    let out = ok(&arbiter(&server, BOB, &["freeze", "status"]));
    assert!(
        out.contains("dc dc-1") && out.contains("incident 4711"),
        "{out}"
    );

    // Bob may not lift alice's freeze; an admin only with --force.
    let err = failed(&arbiter(&server, BOB, &["freeze", "off", "--dc", "dc-1"]));
    assert!(err.contains("frozen by alice"), "{err}");
    let err = failed(&arbiter(&server, ROOT, &["freeze", "off", "--dc", "dc-1"]));
    assert!(err.contains("--force"), "{err}");

    // Both survive a restart.
    let out = ok(&arbiter(
        &server,
        ROOT,
        &["read-only", "on", "--reason", "store migration"],
    ));
    assert!(out.contains("read-only"), "{out}");
    let err = failed(&arbiter(
        &server,
        ROOT,
        &["read-only", "on", "--reason", "again"],
    ));
    assert!(err.contains("turned on by root"), "{err}");
    server.terminate();
    server.restart();

    // Read-only: a create is refused, UNAVAILABLE, naming the reason and who.
    let c = server.client(Some(ALICE)).await;
    let msg = refusal(
        &c.create(node_locks("refused", &[4])).await,
        StatusCode::Unavailable,
    );
    assert!(msg.contains("read-only"), "{msg}");
    assert!(
        msg.contains("store migration") && msg.contains("root"),
        "{msg}"
    );
    let err = failed(&arbiter(
        &server,
        ALICE,
        &["freeze", "on", "--cluster", "--reason", "x"],
    ));
    assert!(err.contains("read-only"), "{err}");
    // Reads and heartbeats keep working.
    let out = ok(&arbiter(&server, ALICE, &["nodes"]));
    assert!(out.contains("node-4"), "{out}");
    ok(&arbiter(&server, ALICE, &["node", "heartbeat", "2"]));
    let out = ok(&arbiter(&server, BOB, &["read-only", "status"]));
    assert!(out.contains("turned on by root"), "{out}");
    let out = ok(&arbiter(&server, BOB, &["freeze", "status"]));
    assert!(
        out.contains("read-only") && out.contains("dc dc-1"),
        "{out}"
    );
    // Only admins set it; off by whoever turned it on.
    let err = failed(&arbiter(&server, ALICE, &["read-only", "off"]));
    assert!(err.contains("read-only"), "{err}");
    ok(&arbiter(&server, ROOT, &["read-only", "off"]));

    // The freeze survived the restart; lifted, a refresh grants.
    let t: MaintenanceTaskResult = success(&c.refresh("frozen").await);
    assert!(!is_performed(states(&t.action_group_states)[0]), "{t:?}");
    let out = ok(&arbiter(&server, ALICE, &["freeze", "off", "--dc", "dc-1"]));
    assert!(out.contains("unfrozen"), "{out}");
    let t: MaintenanceTaskResult = success(&c.refresh("frozen").await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
    let out = ok(&arbiter(&server, BOB, &["freeze", "status"]));
    assert!(out.contains("no freezes"), "{out}");
}
