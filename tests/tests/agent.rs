//! The node agent with a health command (`arbiter agent --node ID --health CMD`) against the
//! real server:
//!
//! - started while the command fails, it says so once (with the exit status and the last line
//!   of the command's stderr), however many runs fail, and sends no heartbeat at all;
//! - once the command succeeds it says healthy and its heartbeats are accepted: the node is
//!   monitored and UP;
//! - when the command fails again the heartbeats pause; a lock on the node completed then
//!   leaves it RESTARTING for as long as the command fails ("seen up again" means "healthy
//!   again"), and it is up as soon as the command succeeds;
//! - a command that hangs is killed after --health-timeout, counts as failed, and the node is
//!   never beaten for; nothing it started is left running;
//! - SIGTERM ends an agent with exit 0.
//!
//! Every wait polls with a bound; nothing sleeps to synchronise.

use arbiter_e2e::NodeProcess as Agent;
use arbiter_e2e::proto::arbiter::v1::{NodeCondition, NodeStatus};
use arbiter_e2e::proto::ydb::maintenance::{ItemState, MaintenanceTaskResult, ManageActionResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, cli, cli_command, cli_ok, is_performed, node_locks, states,
    success, uid_of,
};
use serde_json::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The server's heartbeat timeout in these tests: longer than any window below in which a
/// node must stay RESTARTING without heartbeats (after it, a silent node is UNKNOWN).
const TIMEOUT: &str = "4s";
/// How often the agents beat and run their health command.
const EVERY: &str = "200ms";
/// The longest any awaited change may take.
const BOUND: Duration = Duration::from_secs(20);
/// The environment variable that marks every process an agent of these tests started.
const MARK_VAR: &str = "E2E_AGENT_MARK";

/// `arbiter agent --node ID --every EVERY ARGS` against `addr`, with `MARK_VAR=mark` in its
/// environment (inherited by its health commands).
fn start_agent(addr: SocketAddr, id: u32, args: &[&str], mark: &str) -> Agent {
    let mut cmd = cli_command();
    cmd.env(MARK_VAR, mark)
        .arg("--endpoint")
        .arg(addr.to_string())
        .args(["agent", "--node", &id.to_string(), "--every", EVERY])
        .args(args);
    Agent::spawn(&mut cmd, "arbiter agent", id)
}

/// SIGTERM: the agent ends with exit 0, saying so last, and nothing on stderr.
fn stop(agent: &mut Agent) {
    agent.signal(rustix::process::Signal::TERM);
    let (status, stderr) = agent.exit();
    assert_eq!(
        status.code(),
        Some(0),
        "node {}: {}",
        agent.id,
        agent.report()
    );
    assert!(
        stderr.trim().is_empty(),
        "node {}: stderr: {stderr}",
        agent.id
    );
    let lines = agent.lines();
    let last = lines.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.ends_with(&format!("node {}: stopped by SIGTERM", agent.id)),
        "node {}: last line {last:?}: {}",
        agent.id,
        agent.report()
    );
}

/// Every live process (not the agent itself) this test marked with `MARK_VAR=mark`.
fn marked(mark: &str, except: Option<u32>) -> Vec<(u32, String)> {
    arbiter_e2e::marked_processes(MARK_VAR, mark, except)
}

/// The marked `sleep` processes alive now.
fn marked_sleeps(mark: &str, agent: u32) -> Vec<u32> {
    marked(mark, Some(agent))
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("sleep "))
        .map(|(pid, _)| pid)
        .collect()
}

/// Kills (by pid) whatever a test's agents left behind, so that a failure leaves no process.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for (pid, _) in marked(&self.0, None) {
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// A mark no other test's processes carry: the test's own temporary directory.
fn mark_of(files: &Files) -> String {
    files.path().display().to_string()
}

fn five_nodes(files: &Files) -> ServerProcess {
    ServerProcess::start_with(
        files.write("five.toml", FIVE_NODES),
        &["--heartbeat-timeout", TIMEOUT],
    )
}

/// Node `id` as ListNodes reports it, over a fresh connection.
async fn node(server: &ServerProcess, id: u32) -> NodeStatus {
    arbiter_e2e::node_status(&server.client(None).await, id).await
}

/// Node `id` as `arbiter -o json nodes` shows it.
fn cli_node(server: &ServerProcess, id: u32) -> Value {
    let out = cli_ok(&cli(server, None, &["-o", "json", "nodes"]));
    let nodes: Vec<Value> = serde_json::from_str(&out).expect("a JSON list of nodes");
    nodes
        .into_iter()
        .find(|n| n["node_id"] == id)
        .unwrap_or_else(|| panic!("node {id} in {out}"))
}

/// Asserts that the server has never had a heartbeat for node `id`, over gRPC and in the CLI.
async fn never_beaten(server: &ServerProcess, id: u32) {
    let n = node(server, id).await;
    assert!(!n.monitored, "node {id} has no agent yet: {n:?}");
    assert!(n.last_heartbeat.is_none(), "node {id}: no heartbeat: {n:?}");
    let shown = cli_node(server, id);
    assert_eq!(shown["monitored"], false, "{shown}");
    assert!(shown["last_heartbeat"].is_null(), "{shown}");
}

/// The lines of the health command's run log (one per run).
fn runs(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Waits until the health command has run `n` times in all (bounded; the agent must stay up).
fn wait_runs(agent: &mut Agent, log: &Path, n: usize) {
    let start = Instant::now();
    while runs(log) < n {
        agent.alive();
        assert!(
            start.elapsed() < BOUND,
            "node {}: {} health runs, not {n}, within {BOUND:?}: {}",
            agent.id,
            runs(log),
            agent.report()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_flow_only_while_the_health_command_succeeds() {
    let files = Files::new();
    let _leftovers = Leftovers(mark_of(&files));
    let server = five_nodes(&files);
    let marker = files.path().join("healthy");
    let log = files.path().join("runs");
    let health = format!(
        "echo run >> '{}'; test -f '{}' || {{ echo \"not ready: no marker\" >&2; exit 3; }}",
        log.display(),
        marker.display()
    );
    let unhealthy =
        "node 1: unhealthy: the health command exited with status 3: not ready: no marker";

    // 1. Not healthy from the start: said once, however many runs fail; no heartbeat at all.
    let mut agent = start_agent(server.addr(), 1, &["--health", &health], &mark_of(&files));
    agent.wait_line(unhealthy);
    wait_runs(&mut agent, &log, 5);
    assert_eq!(agent.count("unhealthy"), 1, "{}", agent.report());
    assert_eq!(agent.lines().len(), 1, "{}", agent.report());
    assert!(
        agent.lines()[0].ends_with(unhealthy),
        "the whole line: {}",
        agent.report()
    );
    never_beaten(&server, 1).await;

    // 2. Healthy: said once, then the heartbeats are accepted and the node is up.
    std::fs::write(&marker, "").expect("create the marker");
    agent.wait_line("node 1: healthy: the health command succeeds again");
    agent.wait_line("node 1: heartbeats accepted, sending every 200ms");
    let start = Instant::now();
    let up = loop {
        let n = node(&server, 1).await;
        if n.monitored && n.last_heartbeat.is_some() {
            break n;
        }
        assert!(start.elapsed() < BOUND, "node 1 not seen beating: {n:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(up.state, ItemState::Up as i32, "{up:?}");
    assert_eq!(
        arbiter_e2e::node_condition(&up),
        NodeCondition::Up,
        "{up:?}"
    );
    assert!(up.available, "{up:?}");
    let shown = cli_node(&server, 1);
    assert_eq!(shown["condition"], "UP", "{shown}");
    assert_eq!(shown["monitored"], true, "{shown}");
    assert!(shown["last_heartbeat"].is_string(), "{shown}");

    // 3. Unhealthy while beating: the heartbeats pause.
    std::fs::remove_file(&marker).expect("remove the marker");
    agent.wait_line(&format!("{unhealthy}; heartbeats paused"));
    let paused = node(&server, 1).await;
    let last = paused.last_heartbeat;
    assert!(last.is_some(), "{paused:?}");
    assert_eq!(
        arbiter_e2e::node_condition(&paused),
        NodeCondition::Up,
        "not silent yet: {paused:?}"
    );

    // A lock on it, completed (the orchestrator restarted the node): restarting, and it stays
    // so while the health command fails, because no heartbeat says it is up.
    let c = server.client(Some("alice")).await;
    let t: MaintenanceTaskResult = success(&c.create(node_locks("restart-1", &[1])).await);
    let s = states(&t.action_group_states);
    assert!(is_performed(s[0]), "the lock is granted: {t:?}");
    let done: ManageActionResult = success(&c.complete(vec![uid_of(s[0])]).await);
    assert_eq!(done.action_statuses.len(), 1, "{done:?}");
    assert_eq!(
        done.action_statuses[0].status,
        StatusCode::Success as i32,
        "completed: {done:?}"
    );
    let released = runs(&log);
    let start = Instant::now();
    while runs(&log) < released + 4 {
        agent.alive();
        let n = node(&server, 1).await;
        assert_eq!(
            arbiter_e2e::node_condition(&n),
            NodeCondition::Restarting,
            "released and unhealthy, after {} health runs: {n:?}",
            runs(&log) - released
        );
        assert!(!n.available, "{n:?}");
        assert_eq!(
            n.last_heartbeat, last,
            "no heartbeat while unhealthy: {n:?}"
        );
        assert!(n.detail.contains("restarting since"), "{n:?}");
        assert!(
            start.elapsed() < BOUND,
            "the health command stopped running: {}",
            agent.report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown = cli_node(&server, 1);
    assert_eq!(shown["condition"], "RESTARTING", "{shown}");
    assert_eq!(
        agent.count("node 1: healthy: "),
        1,
        "still unhealthy: {}",
        agent.report()
    );

    // Healthy again: the next heartbeat shows it up ("seen up again" means healthy).
    std::fs::write(&marker, "").expect("create the marker again");
    agent.wait_lines("node 1: healthy: the health command succeeds again", 2);
    agent.wait_lines("node 1: heartbeats accepted", 2);
    let start = Instant::now();
    let back = loop {
        let n = node(&server, 1).await;
        if n.last_heartbeat != last {
            break n;
        }
        assert!(start.elapsed() < BOUND, "no new heartbeat: {n:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        matches!(
            arbiter_e2e::node_condition(&back),
            NodeCondition::Up | NodeCondition::Settling
        ),
        "seen up again: {back:?}"
    );
    assert_eq!(back.state, ItemState::Up as i32, "{back:?}");
    let shown = cli_node(&server, 1);
    assert!(
        shown["condition"] == "UP" || shown["condition"] == "SETTLING",
        "{shown}"
    );
    assert_eq!(
        agent.count("unhealthy"),
        2,
        "one line per change: {}",
        agent.report()
    );

    // 5. SIGTERM: exit 0.
    stop(&mut agent);
}

/// Waits until `n` different marked `sleep` processes (health runs) have been seen; answers
/// the most that were alive at once.
fn wait_sleeps(agent: &mut Agent, mark: &str, n: usize) -> usize {
    let pid = agent.pid();
    let mut seen = HashSet::new();
    let mut most = 0;
    let start = Instant::now();
    while seen.len() < n {
        agent.alive();
        let now = marked_sleeps(mark, pid);
        most = most.max(now.len());
        seen.extend(now);
        assert!(
            start.elapsed() < BOUND,
            "node {}: {} health runs seen, not {n}, within {BOUND:?}: {}",
            agent.id,
            seen.len(),
            agent.report()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    most
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_health_command_is_killed_and_counts_as_failed() {
    let files = Files::new();
    let mark = mark_of(&files);
    let _leftovers = Leftovers(mark.clone());
    let server = five_nodes(&files);
    let mut agent = start_agent(
        server.addr(),
        2,
        &["--health", "sleep 30", "--health-timeout", "300ms"],
        &mark,
    );
    agent.wait_line("node 2: unhealthy: the health command did not finish within 300ms (killed)");
    // Several runs time out: one line, and never a heartbeat.
    wait_sleeps(&mut agent, &mark, 4);
    assert_eq!(agent.lines().len(), 1, "{}", agent.report());
    never_beaten(&server, 2).await;
    let n = node(&server, 2).await;
    assert_eq!(
        arbiter_e2e::node_condition(&n),
        NodeCondition::Up,
        "no agent, no lock: {n:?}"
    );

    stop(&mut agent);
    assert_eq!(agent.count("unhealthy"), 1, "{}", agent.report());
    never_beaten(&server, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_health_command_leaves_no_process_behind() {
    let files = Files::new();
    let mark = mark_of(&files);
    let _leftovers = Leftovers(mark.clone());
    let server = five_nodes(&files);
    let mut agent = start_agent(
        server.addr(),
        2,
        &["--health", "sleep 30", "--health-timeout", "300ms"],
        &mark,
    );
    agent.wait_line("did not finish within 300ms (killed)");
    // A killed run takes what it started with it: one run at a time, never more.
    let most = wait_sleeps(&mut agent, &mark, 4);
    let pid = agent.pid();
    let alive = marked(&mark, Some(pid));
    assert!(
        most <= 1,
        "{most} hung health runs alive at once, the killed ones were left running: {alive:?}"
    );
    stop(&mut agent);
    // And none after the agent ended.
    let start = Instant::now();
    loop {
        let left = marked(&mark, None);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "processes of the health command outlived the agent: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
