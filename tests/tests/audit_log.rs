//! The log tells who changed what, and who was refused: failed logins, unauthenticated calls,
//! permission refusals, refused reloads (SIGHUP and ReloadInventory) and accepted reloads each
//! leave one line naming the user (or the signal), the call and the reason. Passwords and tickets
//! never appear.

use arbiter_e2e::proto::arbiter::v1::ReloadInventoryRequest;
use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::ydb::maintenance::{ListClusterNodesResult, MaintenanceTaskResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, FIVE_NODES, Files, ServerProcess, is_performed, node_locks, refusal, refusal_of,
    states, success,
};
use std::time::{Duration, Instant};

/// Within this, a log line is written.
const BOUND: Duration = Duration::from_secs(10);

const ROOT: &str = "root-token-0000000000004";
const OLGA: &str = "olga-token-0000000000001";
const BOB: &str = "bob-token-00000000000002";
const VIC: &str = "vic-token-00000000000003";
const WRONG_PASSWORD: &str = "hunter2-is-not-it";
const UNKNOWN_TICKET: &str = "stolen-ticket-0000000099";

const USERS: &str = r#"
[[users]]
name = "root"
token = "root-token-0000000000004"
password = "root-password"
role = "admin"

[[users]]
name = "olga"
token = "olga-token-0000000000001"
role = "operator"

[[users]]
name = "bob"
token = "bob-token-00000000000002"
role = "operator"

[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"
"#;

/// The first line of the server's log that contains every one of `needles`; waits for it
/// (bounded) and panics with the whole log when none does.
async fn log_line(server: &ServerProcess, needles: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let log = server.stderr();
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(
            start.elapsed() < BOUND,
            "no log line with all of {needles:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// FIVE_NODES without node 5, or with a sixth node.
fn inventory_with(nodes: &[u32]) -> String {
    let head = FIVE_NODES
        .split("[[nodes]]")
        .next()
        .expect("the inventory's head");
    let mut text = head.to_owned();
    for n in nodes {
        text.push_str(&format!(
            "[[nodes]]\nid = {n}\nhost = \"node-{n}.example\"\nport = 19001\n\n"
        ));
    }
    text
}

async fn reload(c: &Client) -> Result<(), tonic::Status> {
    ArbiterServiceClient::new(c.channel())
        .reload_inventory(c.request(ReloadInventoryRequest {}))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn refusals_and_reloads_are_logged_with_who_asked() {
    let files = Files::new();
    let inventory = files.write("inventory.toml", FIVE_NODES);
    let auth = files.write("auth.toml", USERS);
    let server = ServerProcess::start_with(&inventory, &["--auth".as_ref(), auth.as_os_str()]);
    let root = server.client(Some(ROOT)).await;

    // Failed logins: an unknown user, and a known one with a wrong password.
    refusal(
        &root.login("mallory", WRONG_PASSWORD).await,
        StatusCode::Unauthorized,
    );
    refusal(
        &root.login("root", WRONG_PASSWORD).await,
        StatusCode::Unauthorized,
    );
    let line = log_line(&server, &["login refused", "mallory", "unknown user"]).await;
    assert!(line.contains("WARN") && line.contains("Login"), "{line}");
    let line = log_line(&server, &["login refused", "root", "wrong password"]).await;
    assert!(line.contains("peer=127.0.0.1:"), "the peer address: {line}");
    // A good login is logged too.
    success::<arbiter_e2e::proto::ydb::auth::LoginResult>(
        &root.login("root", "root-password").await,
    );
    log_line(&server, &["login accepted", "root", "admin"]).await;

    // An unknown ticket.
    let stranger = root.with_ticket(Some(UNKNOWN_TICKET));
    refusal_of::<ListClusterNodesResult>(&stranger.list_nodes().await, StatusCode::Unauthorized);
    log_line(
        &server,
        &[
            "not authenticated",
            "ListClusterNodes",
            "unknown or expired",
        ],
    )
    .await;

    // A viewer tries to create a task.
    let vic = root.with_ticket(Some(VIC));
    refusal_of::<MaintenanceTaskResult>(
        &vic.create(node_locks("t-vic", &[1])).await,
        StatusCode::Unauthorized,
    );
    let line = log_line(
        &server,
        &["permission denied", "CreateMaintenanceTask", "user=vic"],
    )
    .await;
    assert!(
        line.contains("WARN") && line.contains("role=viewer") && line.contains("create tasks"),
        "{line}"
    );

    // An operator touches someone else's task.
    let olga = root.with_ticket(Some(OLGA));
    let held: MaintenanceTaskResult = success(&olga.create(node_locks("t-olga", &[5])).await);
    assert!(is_performed(states(&held.action_group_states)[0]));
    let bob = root.with_ticket(Some(BOB));
    refusal(&bob.drop_task("t-olga").await, StatusCode::Unauthorized);
    let line = log_line(
        &server,
        &["permission denied", "DropMaintenanceTask", "user=bob"],
    )
    .await;
    assert!(
        line.contains("role=operator") && line.contains("belongs to 'olga'"),
        "{line}"
    );
    // And an operator may not reload.
    let e = reload(&olga).await.expect_err("an operator may not reload");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    log_line(
        &server,
        &["permission denied", "ReloadInventory", "user=olga"],
    )
    .await;

    // A reload that would strand olga's lock on node 5: refused, on SIGHUP and over the API.
    files.write("inventory.toml", &inventory_with(&[1, 2, 3, 4]));
    server.send_signal(rustix::process::Signal::HUP);
    let line = log_line(&server, &["inventory reload refused", "SIGHUP", "'t-olga'"]).await;
    assert!(
        line.contains("WARN") && line.contains("user=(signal)"),
        "{line}"
    );
    let e = reload(&root).await.expect_err("the reload strands a lock");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    let line = log_line(
        &server,
        &["inventory reload refused", "ReloadInventory", "user=root"],
    )
    .await;
    assert!(
        line.contains("role=admin") && line.contains("node 5"),
        "{line}"
    );

    // An accepted reload names who did it, and counts in words.
    files.write("inventory.toml", &inventory_with(&[1, 2, 3, 4, 5, 6]));
    reload(&root).await.expect("a reload that adds node 6");
    let line = log_line(
        &server,
        &["inventory reloaded", "ReloadInventory", "user=root"],
    )
    .await;
    assert!(
        line.contains("INFO") && line.contains("5 nodes -> 6 nodes"),
        "{line}"
    );
    // SIGHUP too.
    files.write("inventory.toml", &inventory_with(&[1, 2, 3, 4, 5]));
    server.send_signal(rustix::process::Signal::HUP);
    log_line(
        &server,
        &["inventory reloaded", "SIGHUP", "6 nodes -> 5 nodes"],
    )
    .await;

    let log = server.stderr();
    for secret in [
        WRONG_PASSWORD,
        "root-password",
        UNKNOWN_TICKET,
        ROOT,
        VIC,
        BOB,
        OLGA,
    ] {
        assert!(
            !log.contains(secret),
            "the log shows a secret {secret:?}:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_reload_of_one_node_says_1_node() {
    let files = Files::new();
    let inventory = files.write("inventory.toml", &inventory_with(&[1]));
    let server = ServerProcess::start(&inventory);
    let c = server.client(Some("admin-by-open-mode")).await;
    files.write("inventory.toml", &inventory_with(&[1, 2]));
    reload(&c).await.expect("reload");
    log_line(
        &server,
        &[
            "inventory reloaded",
            "user=admin-by-open-mode",
            "1 node -> 2 nodes",
            "0 storage groups -> 0 storage groups",
        ],
    )
    .await;
}
