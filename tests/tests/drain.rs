//! Drain and cordon end to end: the real server, real `arbiter agent` processes whose
//! `--on-drain` / `--on-undrain` / `--on-cordon` / `--on-uncordon` hooks are small shell scripts
//! in the test's temp dir (they append what ran, with their environment, to a log file), driven
//! through the `arbiter` CLI and the YDB wire:
//!
//! - a lock with `--drain` on a node without an agent is PENDING, its details naming the missing
//!   agent; once an agent with hooks is connected it is granted and IN_PROGRESS with details
//!   "Progress: NN.NN%" while the hook prints `progress NN`, the node ENTERING_MAINTENANCE
//!   meanwhile; then PERFORMED and IN_MAINTENANCE. The drain hook ran once, with the node id,
//!   host, task uid and action id in its environment and in its placeholders. Completed, the
//!   node is RESTARTING and the undrain hook waits for as long as the node is not seen up
//!   (its agent's health command fails, so its heartbeats pause); once it beats again the
//!   node is UP and the undrain hook runs;
//! - a task dropped mid-drain: the drain hook's process group is killed (a `sleep` it started
//!   is gone) and the undrain hook runs;
//! - an agent killed with kill -9 mid-drain: the action stays IN_PROGRESS, its details saying
//!   the node's agent is not connected; a new agent for the node drains it and the action is
//!   PERFORMED;
//! - the arbiter killed with kill -9 mid-drain and restarted on the same data and port: the
//!   running hook goes on (it is not started again), the agent reconnects, the action becomes
//!   PERFORMED, and no node was ever DOWN or UNKNOWN;
//! - a failing drain hook (exit 3 and a stderr line) shows in the details with its exit
//!   status, its stderr line and its attempt, which grows with a short --hook-retry-delay; a
//!   hanging hook with --drain-timeout 500ms is killed and the details say it did not finish
//!   within 500ms;
//! - YDB's DrainAction and CordonAction on the wire: PENDING without an agent (naming the
//!   hook the agent needs), then IN_PROGRESS and PERFORMED with no deadline; completed, the
//!   undrain and uncordon hooks run at once (the nodes never restart).
//!
//! Every wait polls with a bound; nothing sleeps to synchronise. Whatever a test's agents
//! started carries a mark in its environment, and is killed (by pid) when the test ends.

use arbiter_e2e::NodeProcess as Agent;
use arbiter_e2e::proto::arbiter::v1::{NodeCondition, NodeStatus};
use arbiter_e2e::proto::ydb::maintenance::action_state::ActionStatus;
use arbiter_e2e::proto::ydb::maintenance::{
    Action, ActionScope, ActionState, AvailabilityMode, CordonAction, DrainAction,
    GetMaintenanceTaskResult, MaintenanceTaskResult, ManageActionResult, action, action_scope,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, FIVE_NODES, Files, ServerProcess, cli, cli_command, cli_ok, list_nodes, node_condition,
    node_status, states, success, task, uid_of,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The server's heartbeat timeout: longer than any window in which a node is silent on
/// purpose (a paused agent, a server restart).
const TIMEOUT: &str = "10s";
/// The longest any awaited change may take.
const BOUND: Duration = Duration::from_secs(20);
/// How often the polling loops look.
const POLL: Duration = Duration::from_millis(20);
/// The environment variable that marks every process an agent of these tests started.
const MARK_VAR: &str = "E2E_DRAIN_MARK";

/// `arbiter agent --node ID --every EVERY ARGS` against `addr`, with `MARK_VAR=mark` in its
/// environment (inherited by its hooks).
fn start_agent(addr: SocketAddr, id: u32, every: &str, args: &[&str], mark: &str) -> Agent {
    let mut cmd = cli_command();
    cmd.env(MARK_VAR, mark)
        .arg("--endpoint")
        .arg(addr.to_string())
        .args(["agent", "--node", &id.to_string(), "--every", every])
        .args(args);
    Agent::spawn(&mut cmd, "arbiter agent", id)
}

/// Every live process this test marked with `MARK_VAR=mark`.
fn marked(mark: &str) -> Vec<(u32, String)> {
    arbiter_e2e::marked_processes(MARK_VAR, mark, None)
}

fn kill_pid(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Kills (by pid) every marked process: what the test's agents left behind.
fn kill_marked(mark: &str) {
    for (pid, _) in marked(mark) {
        kill_pid(pid);
    }
}

/// Kills whatever a test's agents left behind when the test ends, passed or not.
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        kill_marked(&self.0);
    }
}

/// Whether process `pid` is alive (a zombie is not).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// One test's directory: its hook scripts, their log, and the mark of its processes.
struct Setup {
    files: Files,
    _leftovers: Leftovers,
}

impl Setup {
    fn new() -> Setup {
        let files = Files::new();
        let mark = files.path().display().to_string();
        Setup {
            files,
            _leftovers: Leftovers(mark),
        }
    }

    fn mark(&self) -> String {
        self.files.path().display().to_string()
    }

    fn log_path(&self) -> PathBuf {
        self.files.path().join("hooks.log")
    }

    /// Every line the hooks logged so far.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The logged lines that start with `prefix`.
    fn logged(&self, prefix: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Waits until `n` logged lines start with `prefix` (bounded).
    fn wait_logged(&self, prefix: &str, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.logged(prefix);
            if lines.len() >= n {
                return lines;
            }
            assert!(
                start.elapsed() < BOUND,
                "not {n} {prefix:?} lines logged within {BOUND:?}: {:?}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// A hook command: `sh SCRIPT {node} {task} {action}`, the script being `body` after a
    /// line that logs `WORD node=.. host=.. task=.. action=.. what=.. args=..`.
    fn hook(&self, word: &str, body: &str) -> String {
        let log = self.log_path();
        let script = format!(
            "echo \"{word} node=$ARBITER_NODE_ID host=$ARBITER_HOST task=$ARBITER_TASK_UID \
             action=$ARBITER_ACTION_ID what=$ARBITER_ACTION args=$*\" >> '{log}'\n{body}\n",
            log = log.display()
        );
        let path = self.files.write(&format!("{word}.sh"), &script);
        format!("sh '{}' {{node}} {{task}} {{action}}", path.display())
    }

    /// A drain hook that prints `progress P` for each of `steps`, pausing `pause` seconds
    /// after each, then logs `drained TASK`.
    fn drain_hook(&self, steps: &[u32], pause: &str) -> String {
        let steps: Vec<String> = steps.iter().map(u32::to_string).collect();
        let body = format!(
            "for p in {}; do echo \"progress $p\"; sleep {pause}; done\n\
             echo \"drained $ARBITER_TASK_UID\" >> '{}'",
            steps.join(" "),
            self.log_path().display()
        );
        self.hook("drain", &body)
    }

    /// An undo hook (undrain, uncordon) that only logs.
    fn log_hook(&self, word: &str) -> String {
        self.hook(word, "")
    }

    fn server(&self) -> ServerProcess {
        ServerProcess::start_with(
            self.files.write("five.toml", FIVE_NODES),
            &["--heartbeat-timeout", TIMEOUT],
        )
    }
}

/// What the hook logged for an order: `WORD node=N host=node-N.example task=T action=A
/// what=WHAT args=N T A`.
fn hook_line(word: &str, node: u32, task: &str, action: &str, what: &str) -> String {
    format!(
        "{word} node={node} host=node-{node}.example task={task} action={action} what={what} \
         args={node} {task} {action}"
    )
}

fn status_of(s: &ActionState) -> ActionStatus {
    ActionStatus::try_from(s.status).unwrap_or(ActionStatus::Unspecified)
}

/// The first action of task `uid`, over GetMaintenanceTask.
async fn first_action(c: &Client, uid: &str) -> ActionState {
    let t: GetMaintenanceTaskResult = success(&c.get(uid).await);
    states(&t.action_group_states)
        .first()
        .map(|s| (*s).clone())
        .unwrap_or_else(|| panic!("task {uid} has an action: {t:?}"))
}

/// Refreshes task `uid` until none of its actions is PENDING (bounded); its actions then.
async fn refresh_until_granted(c: &Client, uid: &str) -> Vec<ActionState> {
    let start = Instant::now();
    loop {
        let t: MaintenanceTaskResult = success(&c.refresh(uid).await);
        let s: Vec<ActionState> = states(&t.action_group_states)
            .into_iter()
            .cloned()
            .collect();
        if s.iter().all(|a| status_of(a) != ActionStatus::Pending) {
            return s;
        }
        assert!(
            start.elapsed() < BOUND,
            "task {uid} not granted within {BOUND:?}: {t:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the first action of `uid` until `done` holds for it (bounded); it then.
async fn wait_action(
    c: &Client,
    uid: &str,
    what: &str,
    done: impl Fn(&ActionState) -> bool,
) -> ActionState {
    let start = Instant::now();
    loop {
        let a = first_action(c, uid).await;
        if done(&a) {
            return a;
        }
        assert!(
            start.elapsed() < BOUND,
            "task {uid}: not {what} within {BOUND:?}: {a:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls node `id` until its condition is `want` (bounded).
async fn wait_condition(c: &Client, id: u32, want: NodeCondition) -> NodeStatus {
    let start = Instant::now();
    loop {
        let n = node_status(c, id).await;
        if node_condition(&n) == want {
            return n;
        }
        assert!(
            start.elapsed() < BOUND,
            "node {id} not {want:?} within {BOUND:?}: {n:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The first action of task `uid` as `arbiter -o json task show` shows it.
fn cli_action(server: &ServerProcess, uid: &str) -> Value {
    let out = cli_ok(&cli(server, None, &["-o", "json", "task", "show", uid]));
    let t: Value = serde_json::from_str(&out).expect("a JSON task");
    t["action_groups"][0]["actions"][0].clone()
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

/// Whether `details` is YDB's progress text exactly: "Progress: NN.NN%" (then maybe more).
fn progress_of(details: &str) -> Option<f64> {
    let rest = details.strip_prefix("Progress: ")?;
    let number = &rest[..rest.find('%')?];
    let (whole, hundredths) = number.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && hundredths.len() == 2 && digits(hundredths))
        .then(|| number.parse().ok())
        .flatten()
}

/// `arbiter task create UID --nodes N --drain`, which must succeed.
fn create_drain(server: &ServerProcess, uid: &str, node: u32) {
    cli_ok(&cli(
        server,
        None,
        &[
            "task",
            "create",
            uid,
            "--nodes",
            &node.to_string(),
            "--drain",
        ],
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_with_drain_waits_for_the_agent_drains_and_undrains_once_the_node_is_up() {
    let setup = Setup::new();
    let server = setup.server();
    let c = server.client(None).await;

    // No agent for node 1: the lock waits, and says for what.
    create_drain(&server, "t-drain", 1);
    let shown = cli_action(&server, "t-drain");
    assert_eq!(shown["status"], "PENDING", "{shown}");
    let details = shown["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("no agent is connected for node 1")
            && details.contains("arbiter agent --node 1 --on-drain CMD"),
        "{shown}"
    );
    let a = first_action(&c, "t-drain").await;
    assert_eq!(status_of(&a), ActionStatus::Pending, "{a:?}");
    assert_eq!(a.details, details, "the CLI shows the wire's details");
    // A refresh does not grant it either.
    let t: MaintenanceTaskResult = success(&c.refresh("t-drain").await);
    let s = states(&t.action_group_states);
    assert_eq!(status_of(s[0]), ActionStatus::Pending, "{t:?}");
    assert!(
        s[0].details.contains("no agent is connected for node 1"),
        "{t:?}"
    );

    // The agent: its health command passes while the marker file exists (it exists now).
    let healthy = setup.files.write("healthy", "");
    let health = format!("test -f '{}'", healthy.display());
    let drain = setup.drain_hook(&[10, 40, 70], "0.4");
    let undrain = setup.log_hook("undrain");
    let mut agent = start_agent(
        server.addr(),
        1,
        "500ms",
        &[
            "--health",
            &health,
            "--on-drain",
            &drain,
            "--on-undrain",
            &undrain,
        ],
        &setup.mark(),
    );
    agent.wait_lines("node 1: orders connected", 1);
    let granted = refresh_until_granted(&c, "t-drain").await;
    assert_eq!(
        status_of(&granted[0]),
        ActionStatus::InProgress,
        "granted, not drained yet: {granted:?}"
    );
    let action_id = uid_of(&granted[0]).action_id;

    // IN_PROGRESS with YDB's progress text, the node entering maintenance, until drained.
    let mut progress = Vec::new();
    let mut entering = 0;
    let start = Instant::now();
    let performed = loop {
        // The node first: if the action is still in progress after this read, the drain was
        // not done at it.
        let n = node_status(&c, 1).await;
        let a = first_action(&c, "t-drain").await;
        match status_of(&a) {
            ActionStatus::InProgress => {
                assert_eq!(
                    node_condition(&n),
                    NodeCondition::EnteringMaintenance,
                    "draining: {n:?}"
                );
                assert!(!n.available, "locked: {n:?}");
                entering += 1;
                if let Some(p) = progress_of(&a.details) {
                    progress.push(p);
                } else {
                    assert_eq!(
                        a.details, "granted; waiting for the node's agent to drain",
                        "{a:?}"
                    );
                }
                assert!(
                    a.deadline.is_some(),
                    "a lock with drain has a deadline: {a:?}"
                );
            }
            ActionStatus::Performed => break a,
            _ => panic!("neither in progress nor performed: {a:?}"),
        }
        assert!(
            start.elapsed() < BOUND,
            "not drained within {BOUND:?}: {a:?}\n{}",
            agent.report()
        );
        tokio::time::sleep(POLL).await;
    };
    assert!(entering > 0, "never seen draining");
    assert!(
        progress.iter().any(|p| [10.0, 40.0, 70.0].contains(p)),
        "a progress the hook printed was shown: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {progress:?}"
    );
    assert_eq!(
        performed.details, "drained by the node's agent",
        "{performed:?}"
    );
    assert_eq!(
        node_condition(&node_status(&c, 1).await),
        NodeCondition::InMaintenance,
        "drained"
    );
    let shown = cli_action(&server, "t-drain");
    assert_eq!(shown["status"], "PERFORMED", "{shown}");
    assert_eq!(shown["details"], "drained by the node's agent", "{shown}");
    let shown = cli_node(&server, 1);
    assert_eq!(shown["condition"], "IN_MAINTENANCE", "{shown}");

    // The drain hook ran once, with the order's node, host, task and action.
    assert_eq!(
        setup.logged("drain "),
        vec![hook_line("drain", 1, "t-drain", &action_id, "drain")],
        "{:?}",
        setup.log()
    );
    assert_eq!(setup.logged("drained "), vec!["drained t-drain"]);
    assert!(setup.logged("undrain").is_empty(), "{:?}", setup.log());
    agent.wait_lines("node 1: drain: drain done for task t-drain", 1);

    // The node goes down for its restart: its health command fails, its heartbeats pause.
    std::fs::remove_file(&healthy).expect("remove the health marker");
    agent.wait_lines("heartbeats paused", 1);
    let silent = node_status(&c, 1).await.last_heartbeat;

    // Completed: the node is restarting, and the undrain waits while it is not seen up.
    let out = cli_ok(&cli(
        &server,
        None,
        &["task", "complete", "t-drain", "--all-performed"],
    ));
    assert!(out.contains("1 action(s) completed"), "{out}");
    let released = Instant::now();
    while released.elapsed() < Duration::from_millis(1500) {
        agent.alive();
        // The log first: if the node is still restarting after this read, no heartbeat had
        // come by the time of the read.
        let undrains = setup.logged("undrain");
        let n = node_status(&c, 1).await;
        assert_eq!(
            node_condition(&n),
            NodeCondition::Restarting,
            "released: {n:?}"
        );
        assert_eq!(
            n.last_heartbeat, silent,
            "no heartbeat while unhealthy: {n:?}"
        );
        assert!(
            undrains.is_empty(),
            "undrained while the node was not seen up again: {:?}",
            setup.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = cli_node(&server, 1);
    assert_eq!(shown["condition"], "RESTARTING", "{shown}");
    assert!(setup.logged("undrain").is_empty(), "{:?}", setup.log());

    // Up again: a heartbeat, the node UP, and the undrain runs, once.
    std::fs::write(&healthy, "").expect("restore the health marker");
    agent.wait_lines("node 1: healthy: the health command succeeds again", 1);
    let up = wait_condition(&c, 1, NodeCondition::Up).await;
    assert_ne!(up.last_heartbeat, silent, "seen up by a heartbeat: {up:?}");
    let undrains = setup.wait_logged("undrain", 1);
    assert_eq!(
        undrains,
        vec![hook_line("undrain", 1, "t-drain", &action_id, "undrain")]
    );
    agent.wait_lines("node 1: undrain: undrain done for task t-drain", 1);
    let shown = cli_node(&server, 1);
    assert_eq!(shown["condition"], "UP", "{shown}");
    assert_eq!(
        setup.logged("drain ").len(),
        1,
        "drained once: {:?}",
        setup.log()
    );
    assert_eq!(setup.logged("undrain").len(), 1, "{:?}", setup.log());

    // How each hook ended is in the audit trail (its progress is not), by the agent's caller.
    let text = cli_ok(&cli(
        &server,
        None,
        &["audit", "-o", "json", "--kind", "work_reported"],
    ));
    let entries: Vec<Value> = serde_json::from_str(&text).expect("a JSON array");
    let details: Vec<&str> = entries
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        details,
        vec![
            format!("drain hook on node 1 for action {action_id}: done"),
            format!("undrain hook on node 1 for action {action_id}: done"),
        ],
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["task_uid"] == "t-drain" && e["node_ids"] == serde_json::json!([1])),
        "{entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_task_mid_drain_kills_the_hook_and_undrains() {
    let setup = Setup::new();
    let server = setup.server();
    let c = server.client(None).await;
    let pid_file = setup.files.path().join("sleep.pid");
    let drain = setup.hook(
        "drain",
        &format!(
            "echo 'progress 5'\nsleep 60 &\necho $! > '{}'\nwait $!\necho \"drained $ARBITER_TASK_UID\" >> '{}'",
            pid_file.display(),
            setup.log_path().display()
        ),
    );
    let undrain = setup.log_hook("undrain");
    let mut agent = start_agent(
        server.addr(),
        2,
        "200ms",
        &["--on-drain", &drain, "--on-undrain", &undrain],
        &setup.mark(),
    );
    agent.wait_lines("node 2: orders connected", 1);
    create_drain(&server, "t-drop", 2);
    let granted = refresh_until_granted(&c, "t-drop").await;
    let action_id = uid_of(&granted[0]).action_id;
    wait_action(&c, "t-drop", "at 5%", |a| {
        status_of(a) == ActionStatus::InProgress && a.details == "Progress: 5.00%"
    })
    .await;
    // The hook's child runs.
    let start = Instant::now();
    let sleep_pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(start.elapsed() < BOUND, "the drain hook wrote no pid file");
        std::thread::sleep(POLL);
    };
    assert!(process_alive(sleep_pid), "the hook's sleep runs");

    // Dropped: the hook and what it started are killed, and the node is undrained.
    let out = cli_ok(&cli(&server, None, &["task", "drop", "t-drop"]));
    assert!(out.contains("t-drop"), "{out}");
    agent.wait_lines(
        "node 2: drain: stopped for task t-drop: the arbiter no longer asks for it",
        1,
    );
    let start = Instant::now();
    while process_alive(sleep_pid) {
        assert!(
            start.elapsed() < BOUND,
            "the drain hook's sleep (pid {sleep_pid}) outlived its run: {:?}",
            marked(&setup.mark())
        );
        std::thread::sleep(POLL);
    }
    let undrains = setup.wait_logged("undrain", 1);
    assert_eq!(
        undrains,
        vec![hook_line("undrain", 2, "t-drop", &action_id, "undrain")]
    );
    agent.wait_lines("node 2: undrain: undrain done for task t-drop", 1);
    wait_condition(&c, 2, NodeCondition::Up).await;
    assert!(
        setup.logged("drained").is_empty(),
        "the killed hook did not finish: {:?}",
        setup.log()
    );
    assert_eq!(setup.logged("drain ").len(), 1, "{:?}", setup.log());
    // Nothing of the hook is left running (the agent itself is).
    let left: Vec<(u32, String)> = marked(&setup.mark())
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("sh ") || cmd.starts_with("sleep "))
        .collect();
    assert!(left.is_empty(), "hook processes left: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_drain_leaves_it_in_progress_and_a_new_agent_finishes_it() {
    let setup = Setup::new();
    let server = setup.server();
    let c = server.client(None).await;
    let drain = setup.drain_hook(&[10, 20, 30, 40, 50, 60, 70, 80, 90], "0.25");
    let undrain = setup.log_hook("undrain");
    let hooks = [
        "--on-drain",
        drain.as_str(),
        "--on-undrain",
        undrain.as_str(),
    ];
    let mut first = start_agent(server.addr(), 3, "200ms", &hooks, &setup.mark());
    first.wait_lines("node 3: orders connected", 1);
    create_drain(&server, "t-agent", 3);
    refresh_until_granted(&c, "t-agent").await;
    wait_action(&c, "t-agent", "draining with progress", |a| {
        status_of(a) == ActionStatus::InProgress && progress_of(&a.details).is_some()
    })
    .await;

    // kill -9: its hook is orphaned; the test ends it, so that only the new agent's runs.
    first.kill9();
    kill_marked(&setup.mark());
    let gone = wait_action(&c, "t-agent", "shown without its agent", |a| {
        a.details
            .contains("the agent of node 3 is not connected since")
    })
    .await;
    assert_eq!(status_of(&gone), ActionStatus::InProgress, "{gone:?}");
    assert!(
        progress_of(&gone.details).is_some(),
        "YDB's progress text first: {gone:?}"
    );
    assert!(
        gone.details
            .ends_with(": the drain resumes when it returns"),
        "{gone:?}"
    );
    let shown = cli_action(&server, "t-agent");
    assert_eq!(shown["status"], "IN_PROGRESS", "{shown}");
    assert!(
        shown["details"]
            .as_str()
            .is_some_and(|d| d.contains("the agent of node 3 is not connected")),
        "{shown}"
    );
    assert_eq!(
        node_condition(&node_status(&c, 3).await),
        NodeCondition::EnteringMaintenance,
        "not drained"
    );
    assert!(setup.logged("drained").is_empty(), "{:?}", setup.log());

    // A new agent: the drain runs again, and the action is performed.
    let mut second = start_agent(server.addr(), 3, "200ms", &hooks, &setup.mark());
    second.wait_lines("node 3: drain: started for task t-agent (attempt 1)", 1);
    let done = wait_action(&c, "t-agent", "performed", |a| {
        status_of(a) == ActionStatus::Performed
    })
    .await;
    assert_eq!(done.details, "drained by the node's agent", "{done:?}");
    assert_eq!(
        node_condition(&node_status(&c, 3).await),
        NodeCondition::InMaintenance
    );
    assert_eq!(setup.logged("drain ").len(), 2, "{:?}", setup.log());
    assert_eq!(setup.logged("drained "), vec!["drained t-agent"]);
    second.alive();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_arbiter_killed_mid_drain_comes_back_and_the_running_drain_completes() {
    let setup = Setup::new();
    let mut server = setup.server();
    let c = server.client(None).await;
    let drain = setup.drain_hook(&[10, 20, 30, 40, 50, 60, 70, 80, 90], "0.3");
    let undrain = setup.log_hook("undrain");
    let mut agent = start_agent(
        server.addr(),
        4,
        "200ms",
        &["--on-drain", &drain, "--on-undrain", &undrain],
        &setup.mark(),
    );
    agent.wait_lines("node 4: orders connected", 1);
    create_drain(&server, "t-crash", 4);
    refresh_until_granted(&c, "t-crash").await;
    let before = wait_action(&c, "t-crash", "draining with progress", |a| {
        status_of(a) == ActionStatus::InProgress && progress_of(&a.details).is_some()
    })
    .await;
    drop(c);

    let status = server.kill9();
    assert!(!status.success(), "SIGKILL: {status:?}");
    server.restart_on_same_port();
    let c = server.client(None).await;

    // The agent reconnects; the hook it ran goes on and its outcome lands.
    let mut conditions = Vec::new();
    let start = Instant::now();
    let done = loop {
        for n in list_nodes(&c).await {
            conditions.push((n.node_id, node_condition(&n)));
        }
        let a = first_action(&c, "t-crash").await;
        if status_of(&a) == ActionStatus::Performed {
            break a;
        }
        assert_eq!(status_of(&a), ActionStatus::InProgress, "{a:?}");
        assert!(
            start.elapsed() < BOUND,
            "not performed within {BOUND:?} after the restart: {a:?}\n{}",
            agent.report()
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(done.details, "drained by the node's agent", "{done:?}");
    assert_eq!(
        uid_of(&done),
        uid_of(&before),
        "the same action across the crash"
    );
    agent.wait_lines("node 4: orders lost", 1);
    agent.wait_lines("node 4: orders connected", 2);
    agent.alive();
    assert_eq!(
        setup.logged("drain ").len(),
        1,
        "the running hook went on, it was not started again: {:?}",
        setup.log()
    );
    assert_eq!(setup.logged("drained "), vec!["drained t-crash"]);
    assert_eq!(
        agent.count("node 4: drain: started"),
        1,
        "{}",
        agent.report()
    );
    for n in list_nodes(&c).await {
        conditions.push((n.node_id, node_condition(&n)));
    }
    let down: Vec<&(u32, NodeCondition)> = conditions
        .iter()
        .filter(|(_, c)| matches!(c, NodeCondition::Down | NodeCondition::Unknown))
        .collect();
    assert!(down.is_empty(), "a node went down or silent: {down:?}");
    assert_eq!(
        node_condition(&node_status(&c, 4).await),
        NodeCondition::InMaintenance
    );
}

/// The attempt number of "drain: the hook failed (attempt N): ...".
fn attempt_of(details: &str) -> Option<u32> {
    let rest = details.split_once("(attempt ")?.1;
    rest[..rest.find(')')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_hanging_drain_hook_shows_in_the_details_and_is_retried() {
    let setup = Setup::new();
    let server = setup.server();
    let c = server.client(None).await;
    let failing = setup.hook(
        "drain",
        "echo 'progress 1'\necho 'moving shards' >&2\necho 'no replica for shard 7' >&2\nexit 3",
    );
    let mut failer = start_agent(
        server.addr(),
        4,
        "200ms",
        &["--on-drain", &failing, "--hook-retry-delay", "300ms"],
        &setup.mark(),
    );
    let mut hanger = start_agent(
        server.addr(),
        5,
        "200ms",
        &[
            "--on-drain",
            "sleep 30",
            "--drain-timeout",
            "500ms",
            "--hook-retry-delay",
            "300ms",
        ],
        &setup.mark(),
    );
    failer.wait_lines("node 4: orders connected", 1);
    hanger.wait_lines("node 5: orders connected", 1);
    create_drain(&server, "t-fail", 4);
    create_drain(&server, "t-hang", 5);
    refresh_until_granted(&c, "t-fail").await;
    refresh_until_granted(&c, "t-hang").await;

    // Exit 3: the exit status, the last stderr line and the attempt, which grows.
    let failed = |a: &ActionState| {
        a.details.starts_with("drain: the hook failed (attempt ")
            && a.details.ends_with(
                "): exited with status 3: no replica for shard 7; the agent tries again in 1s",
            )
    };
    let first = wait_action(&c, "t-fail", "failed", failed).await;
    assert_eq!(status_of(&first), ActionStatus::InProgress, "{first:?}");
    let n = attempt_of(&first.details).expect("an attempt number");
    let later = wait_action(&c, "t-fail", "failed twice more", |a| {
        failed(a) && attempt_of(&a.details).is_some_and(|m| m >= n + 2)
    })
    .await;
    assert_eq!(status_of(&later), ActionStatus::InProgress, "{later:?}");
    let shown = cli_action(&server, "t-fail");
    assert_eq!(shown["status"], "IN_PROGRESS", "{shown}");
    assert!(
        shown["details"]
            .as_str()
            .is_some_and(|d| d.contains("exited with status 3: no replica for shard 7")),
        "{shown}"
    );
    failer.wait_lines(
        "node 4: drain: the drain hook exited with status 3: no replica for shard 7 (attempt 2); trying again in 300ms",
        1,
    );
    assert_eq!(
        node_condition(&node_status(&c, 4).await),
        NodeCondition::EnteringMaintenance,
        "not drained"
    );
    // Each failed attempt is in the audit trail, with how it ended.
    let text = cli_ok(&cli(
        &server,
        None,
        &[
            "audit",
            "-o",
            "json",
            "--kind",
            "work_reported",
            "--node",
            "4",
        ],
    ));
    let entries: Vec<Value> = serde_json::from_str(&text).expect("a JSON array");
    assert!(entries.len() >= 2, "{entries:#?}");
    assert!(
        entries.iter().all(|e| e["task_uid"] == "t-fail"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("drain hook on node 4")
                    && d.contains("exited with status 3: no replica for shard 7"))),
        "{entries:#?}"
    );

    // A hook that hangs: killed after --drain-timeout, and retried.
    let hung = |a: &ActionState| {
        a.details.starts_with("drain: the hook failed (attempt ")
            && a.details.contains("did not finish within 500ms (killed)")
    };
    let first = wait_action(&c, "t-hang", "timed out", hung).await;
    assert_eq!(status_of(&first), ActionStatus::InProgress, "{first:?}");
    let n = attempt_of(&first.details).expect("an attempt number");
    wait_action(&c, "t-hang", "timed out again", |a| {
        hung(a) && attempt_of(&a.details).is_some_and(|m| m > n)
    })
    .await;
    // One run at a time: the killed runs took their sleep with them.
    let sleeps: Vec<(u32, String)> = marked(&setup.mark())
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("sleep "))
        .collect();
    assert!(sleeps.len() <= 1, "killed runs left running: {sleeps:?}");

    // Dropped: the orders end, and so do the retries.
    for uid in ["t-fail", "t-hang"] {
        cli_ok(&cli(&server, None, &["task", "drop", uid]));
    }
    hanger.wait_lines("node 5: drain: stopped for task t-hang", 1);
    let start = Instant::now();
    loop {
        let left = marked(&setup.mark())
            .into_iter()
            .filter(|(_, cmd)| cmd.starts_with("sleep "))
            .count();
        if left == 0 {
            break;
        }
        assert!(start.elapsed() < BOUND, "the hung hook outlived its order");
        std::thread::sleep(POLL);
    }
    failer.alive();
    hanger.alive();
}

fn node_scope(node: u32) -> Option<ActionScope> {
    Some(ActionScope {
        scope: Some(action_scope::Scope::NodeId(node)),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ydb_drain_and_cordon_actions_run_the_hooks_and_undo_them_at_once() {
    let setup = Setup::new();
    let server = setup.server();
    let c = server.client(Some("ydb-operator")).await;
    let drain_action = Action {
        action: Some(action::Action::DrainAction(DrainAction {
            scope: node_scope(1),
        })),
    };
    let cordon_action = Action {
        action: Some(action::Action::CordonAction(CordonAction {
            scope: node_scope(2),
        })),
    };
    let created: MaintenanceTaskResult = success(
        &c.create(task(
            "t-wire",
            AvailabilityMode::Strong,
            vec![vec![drain_action.clone()], vec![cordon_action.clone()]],
        ))
        .await,
    );
    let s = states(&created.action_group_states);
    assert_eq!(s.len(), 2, "{created:?}");
    assert!(
        s.iter().all(|a| status_of(a) == ActionStatus::Pending),
        "no agents yet: {created:?}"
    );
    assert!(
        s[0].details.contains("no agent is connected for node 1")
            && s[0].details.contains("a drain needs the node's agent")
            && s[0].details.contains("--on-drain CMD"),
        "{:?}",
        s[0]
    );
    assert!(
        s[1].details.contains("no agent is connected for node 2")
            && s[1].details.contains("a cordon needs the node's agent")
            && s[1].details.contains("--on-cordon CMD"),
        "{:?}",
        s[1]
    );

    let drain = setup.drain_hook(&[50], "0.3");
    let undrain = setup.log_hook("undrain");
    let cordon = setup.hook("cordon", "echo 'progress 50'\nsleep 0.3");
    let uncordon = setup.log_hook("uncordon");
    let mut drainer = start_agent(
        server.addr(),
        1,
        "1s",
        &["--on-drain", &drain, "--on-undrain", &undrain],
        &setup.mark(),
    );
    let mut cordoner = start_agent(
        server.addr(),
        2,
        "1s",
        &["--on-cordon", &cordon, "--on-uncordon", &uncordon],
        &setup.mark(),
    );
    drainer.wait_lines("node 1: orders connected", 1);
    cordoner.wait_lines("node 2: orders connected", 1);
    let granted = refresh_until_granted(&c, "t-wire").await;
    let uids: Vec<_> = granted.iter().map(uid_of).collect();

    // Performed once both hooks are done; the echoed actions are the wire's, with no deadline.
    let start = Instant::now();
    let done = loop {
        let t: GetMaintenanceTaskResult = success(&c.get("t-wire").await);
        let s: Vec<ActionState> = states(&t.action_group_states)
            .into_iter()
            .cloned()
            .collect();
        for a in &s {
            assert!(
                a.deadline.is_none(),
                "drain and cordon have no deadline: {a:?}"
            );
            assert!(
                matches!(
                    status_of(a),
                    ActionStatus::InProgress | ActionStatus::Performed
                ),
                "{a:?}"
            );
        }
        if s.iter().all(|a| status_of(a) == ActionStatus::Performed) {
            break s;
        }
        assert!(
            start.elapsed() < BOUND,
            "not performed within {BOUND:?}: {t:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(done[0].action, Some(drain_action), "{:?}", done[0]);
    assert_eq!(done[1].action, Some(cordon_action), "{:?}", done[1]);
    assert_eq!(done[0].details, "drained by the node's agent");
    assert_eq!(done[1].details, "cordoned by the node's agent");
    assert_eq!(
        setup.logged("drain "),
        vec![hook_line("drain", 1, "t-wire", &uids[0].action_id, "drain")]
    );
    assert_eq!(
        setup.logged("cordon "),
        vec![hook_line(
            "cordon",
            2,
            "t-wire",
            &uids[1].action_id,
            "cordon"
        )]
    );

    // Completed: the undo hooks run at once; a drain or cordon took no node down, so neither
    // restarts.
    let completed: ManageActionResult = success(&c.complete(uids.clone()).await);
    assert!(
        completed
            .action_statuses
            .iter()
            .all(|s| s.status == StatusCode::Success as i32),
        "{completed:?}"
    );
    let start = Instant::now();
    while setup.logged("undrain").is_empty() || setup.logged("uncordon").is_empty() {
        for n in list_nodes(&c).await {
            assert_ne!(
                node_condition(&n),
                NodeCondition::Restarting,
                "a drain or cordon does not restart its node: {n:?}"
            );
        }
        assert!(
            start.elapsed() < BOUND,
            "not undone within {BOUND:?}: {:?}",
            setup.log()
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        setup.logged("undrain"),
        vec![hook_line(
            "undrain",
            1,
            "t-wire",
            &uids[0].action_id,
            "undrain"
        )]
    );
    assert_eq!(
        setup.logged("uncordon"),
        vec![hook_line(
            "uncordon",
            2,
            "t-wire",
            &uids[1].action_id,
            "uncordon"
        )]
    );
    for id in [1, 2] {
        assert_eq!(
            node_condition(&node_status(&c, id).await),
            NodeCondition::Up,
            "node {id}"
        );
    }
    drainer.alive();
    cordoner.alive();
}
