//! The node agent (`arbiter node heartbeat ID --every D`) against the real server, through the
//! outages it has to outlast:
//!
//! - a server restart (SIGTERM, then a start on the same data and port) within the heartbeat
//!   timeout, and a server that hangs with calls in flight and then crashes: every agent keeps
//!   running, says once that it lost the server and once that it is connected again, and no
//!   node goes DOWN, neither at once nor one timeout later;
//! - an agent started before the server retries until the server is up, then its node is up;
//! - a refusal no retry cures (an unknown node, a viewer's token) ends the agent with exit 1 and
//!   one clear `error:` line, also when the server came up only after the agent started;
//! - SIGTERM and SIGINT end an agent with exit 0, also in the middle of an outage.
//!
//! Every wait polls with a bound; nothing sleeps to synchronise.

use arbiter_e2e::NodeProcess as Agent;
use arbiter_e2e::proto::arbiter::v1::NodeStatus;
use arbiter_e2e::proto::ydb::maintenance::ItemState;
use arbiter_e2e::{FIVE_NODES, Files, ServerProcess, cli_command, free_addr};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The server's heartbeat timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(4);
/// How often the agents beat: well inside [`TIMEOUT`].
const EVERY: &str = "500ms";
/// The longest any awaited change may take.
const BOUND: Duration = Duration::from_secs(20);

/// An `arbiter node heartbeat` loop for node `id` against `addr`, with `extra` global flags
/// (e.g. `-o json`).
fn start_agent(addr: SocketAddr, id: u32, extra: &[&str]) -> Agent {
    let mut cmd = cli_command();
    cmd.arg("--endpoint")
        .arg(addr.to_string())
        .args(extra)
        .args(["node", "heartbeat", &id.to_string(), "--every", EVERY]);
    Agent::spawn(&mut cmd, "arbiter node heartbeat", id)
}

/// A JSON-output heartbeat loop.
fn json_agent(addr: SocketAddr, id: u32) -> Agent {
    start_agent(addr, id, &["-o", "json"])
}

/// The `agent` field of every JSON line the loop printed so far.
fn states(agent: &Agent) -> Vec<String> {
    agent
        .lines()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("node {}: not JSON: {e}: {l}", agent.id));
            v["agent"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Every node as ListNodes reports it, over a fresh connection.
async fn list_nodes(server: &ServerProcess) -> Vec<NodeStatus> {
    arbiter_e2e::list_nodes(&server.client(None).await).await
}

fn node(nodes: &[NodeStatus], id: u32) -> &NodeStatus {
    nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("node {id} is listed: {nodes:?}"))
}

fn is_up(n: &NodeStatus) -> bool {
    n.monitored && n.state == ItemState::Up as i32
}

/// Polls until every node of `ids` is monitored and UP with a heartbeat at or after `since`
/// (bounded).
async fn wait_beating(server: &ServerProcess, ids: &[u32], since: SystemTime) {
    let since = since
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let since = i64::try_from(since).expect("a sane clock");
    let start = Instant::now();
    loop {
        let nodes = list_nodes(server).await;
        let beating = ids.iter().all(|&id| {
            let n = node(&nodes, id);
            is_up(n)
                && n.last_heartbeat
                    .as_ref()
                    .is_some_and(|t| t.seconds >= since)
        });
        if beating {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "nodes {ids:?} not seen beating since {since}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn five_nodes_with_timeout(files: &Files, addr: Option<SocketAddr>) -> ServerProcess {
    let inventory = files.write("five.toml", FIVE_NODES);
    let timeout = format!("{}s", TIMEOUT.as_secs());
    let extra = ["--heartbeat-timeout", timeout.as_str()];
    match addr {
        Some(addr) => ServerProcess::start_at(inventory, &extra, addr),
        None => ServerProcess::start_with(inventory, &extra),
    }
}

/// For a whole heartbeat timeout and more, every node of `ids` stays UP and available, and
/// every agent keeps running; then heartbeats still arrive.
async fn stays_up(server: &ServerProcess, ids: &[u32], agents: &mut [Agent]) {
    let window = TIMEOUT + Duration::from_secs(1);
    let start = Instant::now();
    while start.elapsed() < window {
        let nodes = list_nodes(server).await;
        for &id in ids {
            let n = node(&nodes, id);
            assert!(
                is_up(n) && n.available,
                "node {id} went down after the restart ({:?} in): {n:?}",
                start.elapsed()
            );
        }
        for a in agents.iter_mut() {
            assert!(
                a.running(),
                "node {}: the agent stopped: {}",
                a.id,
                a.report()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_beating(server, ids, SystemTime::now() - Duration::from_secs(2)).await;
}

#[tokio::test]
async fn agents_outlast_a_server_restart_and_no_node_goes_down() {
    let files = Files::new();
    let mut server = five_nodes_with_timeout(&files, None);
    let ids = [1, 2, 3, 4];
    let mut agents: Vec<Agent> = ids
        .iter()
        .map(|&id| json_agent(server.addr(), id))
        .collect();
    for a in &mut agents {
        a.wait_line("\"beating\"");
    }
    wait_beating(&server, &ids, UNIX_EPOCH).await;

    // A clean restart: SIGTERM; while the server is away every agent notices and says so
    // once; the new process on the same port gets them back.
    assert!(server.terminate().success(), "{}", server.stderr());
    for a in &mut agents {
        a.wait_line("\"retrying\"");
    }
    let restarted = SystemTime::now();
    server.restart_on_same_port();
    for a in &mut agents {
        a.wait_line("\"recovered\"");
    }
    wait_beating(&server, &ids, restarted).await;
    stays_up(&server, &ids, &mut agents).await;

    // A server that hangs (SIGSTOP) with heartbeats in flight, then crashes (SIGKILL resets
    // their connections): each call runs into its deadline while the server hangs, the reset
    // is retried like any lost connection, and the restarted server gets them back.
    server.send_signal(rustix::process::Signal::STOP);
    for a in &mut agents {
        a.wait_line("no answer within");
    }
    server.kill9();
    let restarted = SystemTime::now();
    server.restart_on_same_port();
    for a in &mut agents {
        let start = Instant::now();
        while states(a).iter().filter(|s| *s == "recovered").count() < 2 {
            assert!(
                a.running(),
                "node {}: the agent stopped: {}",
                a.id,
                a.report()
            );
            assert!(
                start.elapsed() < BOUND,
                "node {}: not recovered: {}",
                a.id,
                a.report()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_beating(&server, &ids, restarted).await;
    stays_up(&server, &ids, &mut agents).await;

    // One line per change of state, not one per attempt.
    for a in &mut agents {
        assert_eq!(
            states(a),
            ["beating", "retrying", "recovered", "retrying", "recovered"],
            "node {}: {}",
            a.id,
            a.report()
        );
        a.signal(rustix::process::Signal::TERM);
        let (status, stderr) = a.exit();
        assert_eq!(status.code(), Some(0), "node {}: {stderr}", a.id);
    }
}

#[tokio::test]
async fn an_agent_started_before_the_server_retries_until_the_server_is_up() {
    let files = Files::new();
    let addr = free_addr();
    let ids = [2, 5];
    let mut agents: Vec<Agent> = ids.iter().map(|&id| json_agent(addr, id)).collect();
    for a in &mut agents {
        a.wait_line("\"retrying\"");
    }
    // Nobody listens yet: the agents keep trying (for a few of their retry delays), quietly.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for a in &mut agents {
            assert!(a.running(), "node {}: gave up: {}", a.id, a.report());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = SystemTime::now();
    let server = five_nodes_with_timeout(&files, Some(addr));
    wait_beating(&server, &ids, started).await;
    for a in &mut agents {
        a.wait_line("\"beating\"");
        assert_eq!(
            states(a),
            ["retrying", "beating"],
            "node {}: {}",
            a.id,
            a.report()
        );
        let first: Value = serde_json::from_str(&a.lines()[0]).expect("JSON");
        assert!(
            first["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("UNAVAILABLE")),
            "why it retries: {first}"
        );
        assert!(a.running());
    }
}

const USERS: &str = r#"
[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"
"#;

#[tokio::test]
async fn a_refusal_no_retry_cures_ends_the_agent_with_exit_1() {
    let files = Files::new();
    // Started before the server: first it retries, then the server says node 99 does not
    // exist, which no retry changes.
    let addr = free_addr();
    let mut unknown = start_agent(addr, 99, &[]);
    unknown.wait_line("retrying");
    let server = five_nodes_with_timeout(&files, Some(addr));
    let (status, stderr) = unknown.exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: node 99: the server refused the heartbeat, not retrying: INVALID_ARGUMENT: Unknown node 99 (is node 99 in the server's inventory?)"
    );
    assert_eq!(
        unknown.lines().len(),
        1,
        "only the retrying line: {}",
        unknown.report()
    );
    drop(server);

    // A viewer may not send heartbeats: refused at once, exit 1.
    let auth = files.write("auth.toml", USERS);
    let guarded = ServerProcess::start_with(
        files.write("five-again.toml", FIVE_NODES),
        &["--auth".as_ref(), auth.as_os_str()],
    );
    let mut viewer = start_agent(guarded.addr(), 1, &["--token", "vic-token-00000000000003"]);
    let (status, stderr) = viewer.exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let line = stderr.trim_end();
    assert!(
        line.starts_with(
            "error: node 1: the server refused the heartbeat, not retrying: PERMISSION_DENIED"
        ) && line.ends_with("(a node agent needs an operator's token)")
            && !line.contains('\n'),
        "{line}"
    );
    assert!(viewer.lines().is_empty(), "{}", viewer.report());
}

#[tokio::test]
async fn sigterm_and_sigint_end_an_agent_with_exit_0() {
    let files = Files::new();
    let server = five_nodes_with_timeout(&files, None);
    for (sig, name) in [
        (rustix::process::Signal::TERM, "SIGTERM"),
        (rustix::process::Signal::INT, "SIGINT"),
    ] {
        let mut agent = start_agent(server.addr(), 3, &[]);
        agent.wait_line("heartbeats accepted");
        agent.signal(sig);
        let (status, stderr) = agent.exit();
        assert_eq!(status.code(), Some(0), "{name}: {stderr}");
        assert!(stderr.is_empty(), "{name}: {stderr}");
        let lines = agent.lines();
        assert!(
            lines[0].ends_with("node 3: heartbeats accepted, sending every 500ms until stopped"),
            "{lines:?}"
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.ends_with(&format!("node 3: stopped by {name}"))),
            "{lines:?}"
        );
    }

    // Also in the middle of an outage: nobody listens on this address.
    let mut lonely = json_agent(free_addr(), 4);
    lonely.wait_line("\"retrying\"");
    lonely.signal(rustix::process::Signal::TERM);
    let (status, stderr) = lonely.exit();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(states(&lonely), ["retrying", "stopped"]);
}
