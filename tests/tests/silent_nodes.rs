//! Silent is not down, end to end: a node whose agent stopped sending heartbeats is UNKNOWN, not
//! confirmed DOWN. It counts as unavailable for everyone else, but a lock on it is checked as if
//! it were up, while a node an operator set down stays lockable without checks. `arbiter nodes`
//! shows the difference. And every grant is logged exactly once, even when a refresh of the same
//! task lands in the same batch (and millisecond) as its grant.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{
    HeartbeatRequest, ListNodesRequest, NodeCondition, NodeState, NodeStatus, SetNodeStateRequest,
};
use arbiter_e2e::proto::ydb::maintenance::{ItemState, MaintenanceTaskResult};
use arbiter_e2e::{
    Client, Files, ServerProcess, cli_binary, is_pending, is_performed, node_locks, states, success,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest any awaited change may take.
const BOUND: Duration = Duration::from_secs(10);

/// Five nodes; at most one may be unavailable.
const ONE_AT_A_TIME: &str = r#"
[limits]
max_unavailable_nodes = 1
max_unavailable_ratio = 0

[[nodes]]
id = 1
host = "node-1"
port = 1

[[nodes]]
id = 2
host = "node-2"
port = 1

[[nodes]]
id = 3
host = "node-3"
port = 1

[[nodes]]
id = 4
host = "node-4"
port = 1

[[nodes]]
id = 5
host = "node-5"
port = 1
"#;

fn arbiter(c: &Client) -> ArbiterServiceClient<tonic::transport::Channel> {
    ArbiterServiceClient::new(c.channel())
}

async fn node(c: &Client, id: u32) -> NodeStatus {
    arbiter(c)
        .list_nodes(c.request(ListNodesRequest {}))
        .await
        .expect("ListNodes")
        .into_inner()
        .nodes
        .into_iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("node {id} is listed"))
}

/// `arbiter nodes -o json` against `server`, as a list of JSON objects.
fn cli_nodes(server: &ServerProcess) -> Vec<serde_json::Value> {
    let out = Command::new(cli_binary())
        .env_remove("ARBITER_TOKEN")
        .args([
            "--endpoint",
            &server.addr().to_string(),
            "-o",
            "json",
            "nodes",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run arbiter nodes");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON list of nodes")
}

fn cli_condition(nodes: &[serde_json::Value], id: u32) -> String {
    nodes
        .iter()
        .find(|n| n["node_id"] == id)
        .and_then(|n| n["condition"].as_str())
        .unwrap_or_else(|| panic!("node {id} with a condition in {nodes:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_is_unknown_and_locking_it_is_checked_as_if_it_were_up() {
    let files = Files::new();
    let server = ServerProcess::start_with(
        files.write("five.toml", ONE_AT_A_TIME),
        &["--heartbeat-timeout", "1s"],
    );
    let c = server.client(Some("alice")).await;

    arbiter(&c)
        .heartbeat(c.request(HeartbeatRequest {
            node_id: 2,
            version: None,
            start_time: None,
        }))
        .await
        .expect("Heartbeat");
    let start = Instant::now();
    let silent = loop {
        let n = node(&c, 2).await;
        if n.condition == NodeCondition::Unknown as i32 {
            break n;
        }
        assert!(start.elapsed() < BOUND, "node 2 never went silent: {n:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // YDB's view keeps its three states: DOWN; the arbiter's own says what it knows.
    assert_eq!(silent.state, ItemState::Down as i32, "{silent:?}");
    assert!(!silent.available, "{silent:?}");
    assert!(silent.detail.contains("unknown since"), "{silent:?}");

    arbiter(&c)
        .set_node_state(c.request(SetNodeStateRequest {
            node_id: 3,
            state: NodeState::Down as i32,
            reason: "disk swap".into(),
        }))
        .await
        .expect("SetNodeState");
    let listed = cli_nodes(&server);
    assert_eq!(cli_condition(&listed, 2), "UNKNOWN");
    assert_eq!(cli_condition(&listed, 3), "DOWN");
    assert_eq!(cli_condition(&listed, 1), "UP");

    // Node 2 may be running: locking it is checked as if it were up, and node 3 already takes
    // the one slot. Before the fix it was granted with no check at all.
    let t: MaintenanceTaskResult = success(&c.create(node_locks("silent", &[2])).await);
    let s = states(&t.action_group_states);
    assert!(is_pending(s[0]), "{t:?}");
    assert!(
        s[0].details.contains("down 1 (node 3 down)"),
        "the limit names the node that counts: {:?}",
        s[0]
    );
    // The node an operator set down takes nothing more down: granted without checks.
    let t: MaintenanceTaskResult = success(&c.create(node_locks("known", &[3])).await);
    assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_grant_is_logged_exactly_once() {
    let files = Files::new();
    let server = ServerProcess::start(files.write("five.toml", ONE_AT_A_TIME));
    let c = server.client(Some("alice")).await;
    // A create and refreshes of the same task, sent together: they land in one batch of the
    // writer, at one `now`. The old log picked every action granted at `now` on each reply.
    let rounds = 8u32;
    for i in 0..rounds {
        let uid = format!("t{i}");
        let create = c.create(node_locks(&uid, &[1 + i % 5]));
        let r1 = c.refresh(&uid);
        let r2 = c.refresh(&uid);
        let (created, _, _) = tokio::join!(create, r1, r2);
        let t: MaintenanceTaskResult = success(&created);
        assert!(is_performed(states(&t.action_group_states)[0]), "{t:?}");
        let _ = c.drop_task(&uid).await;
    }
    let start = Instant::now();
    loop {
        let log = server.stderr();
        let grants = log.lines().filter(|l| l.contains("lock granted")).count();
        if grants >= rounds as usize {
            for i in 0..rounds {
                let needle = format!("task=t{i} ");
                let n = log
                    .lines()
                    .filter(|l| l.contains("lock granted") && l.contains(&needle))
                    .count();
                assert_eq!(n, 1, "task t{i} logged {n} grants:\n{log}");
            }
            return;
        }
        assert!(start.elapsed() < BOUND, "grants not logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
