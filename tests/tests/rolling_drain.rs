//! `arbiter rolling-restart --drain` end to end: the real `arbiter-server`, the real `arbiter`
//! CLI driving the rollout, and nine real `arbiter agent` processes with a `--health` command
//! and `--on-drain` / `--on-undrain` hooks, all of them shell scripts in a temp dir.
//!
//! What it shows: every node of a 9-node cluster is drained, then restarted, then undrained,
//! once each and in that order, within the failure model at every moment, in a bounded time.
//!
//! How the nodes are faked (the files in the temp dir are the ground truth):
//! - the drain hook marks `draining-<id>`, reports progress, then writes `drained-<id>` (the
//!   task's uid) and clears `draining-<id>`;
//! - the rollout's `--exec` "restart" first checks that `drained-<id>` names its task (else it
//!   records a violation), then stops the node: it creates `down-<id>`, which makes the agent's
//!   health command fail, so its heartbeats pause as they would for a real restart. Once the
//!   health command has said so (`silent-<id>`), the node stays down longer than the server's
//!   heartbeat timeout; then the command writes `restarted-<id>` and removes `down-<id>`;
//! - the health command, run healthy after a restart, writes `up-<id>`; the undrain hook
//!   records a violation unless `up-<id>` exists and `down-<id>` does not (the node came back
//!   and is healthy), then writes `undrained-<id>`.
//!
//! Every hook and the restart append one line per step to `events.log` (small `O_APPEND`
//! writes, so its order is one total order of the steps, without clocks).
//!
//! Two independent checkers, sharing no code with the server:
//! - a sampler polls `ListNodes` every [`CHECK_EVERY`] and takes the nodes locked in the answer
//!   plus the nodes stopped (`down-<id>`) during the whole call, and checks them against the
//!   failure model of the inventory below (weak mode: YDB's mirror-3-dc rule, and the
//!   cluster's limit of [`MAX_DOWN`] nodes). It also checks that a stopped node is locked by the
//!   rollout's task and IN_MAINTENANCE, that a node whose drain hook runs is locked and
//!   ENTERING_MAINTENANCE (and not stopped), and that the server never calls a node
//!   IN_MAINTENANCE before its drain hook finished;
//! - a replay of `events.log` checks each node's steps (drain, drained, stop, start, undrain,
//!   undrained: each once, in that order) and, at every line, that the nodes between their
//!   drain's start and their restart's end (all of them locked then) fit the failure model.
//!
//! Every wait polls a condition with a bound; the only sleeps are the fake work's own
//! durations.

use arbiter_e2e::proto::arbiter::v1::{NodeCondition, NodeStatus};
use arbiter_e2e::proto::ydb::maintenance::{ItemState, ListMaintenanceTasksResult};
use arbiter_e2e::{
    Client, Collected, Files, ServerProcess, cli_command, list_nodes, spawn_collecting, success,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The ticket (and so the task owner) of the rollout.
const TICKET: &str = "e2e-operator";
/// The rollout's task.
const TASK: &str = "rd-9";
/// The number of nodes; node `k` is in data center `(k - 1) % 3`.
const NODES: u32 = 9;
/// The cluster's limit of unavailable nodes (`max_unavailable_nodes`).
const MAX_DOWN: usize = 3;
/// The server's heartbeat timeout, and how often the agents beat and check health.
const HEARTBEAT_TIMEOUT: &str = "1s";
const EVERY: &str = "200ms";
/// How long a stopped node stays down once its heartbeats paused (longer than the timeout, so
/// the server sees it go silent, as for a real restart).
const DOWN_FOR: &str = "1.3";
/// How often the sampler looks.
const CHECK_EVERY: Duration = Duration::from_millis(40);
/// The longest the whole rollout may take (about 15 s on an idle machine).
const ROLLOUT_BOUND: Duration = Duration::from_secs(45);
/// The longest any other awaited change may take.
const BOUND: Duration = Duration::from_secs(20);

// ----- the cluster and its failure model ------------------------------------------------------

/// The data center (0, 1, 2) of node `id`: the data centers interleave, so that the rollout's
/// order (1, 2, 3, ...) runs into the mirror-3-dc rule at once (1, 2 and 3 are in three data
/// centers, which weak mode does not allow at the same time).
fn dc(id: u32) -> usize {
    ((id - 1) % 3) as usize
}

/// Nine storage nodes in three data centers, one pdisk each, all in one mirror-3-dc group
/// (three vdisks per data center); at most [`MAX_DOWN`] nodes unavailable cluster-wide.
fn inventory() -> String {
    let mut t = String::from("[defaults]\nlock_duration = \"10m\"\nretry_after = \"1m\"\n\n");
    t.push_str(&format!(
        "[limits]\nmax_unavailable_nodes = {MAX_DOWN}\nmax_unavailable_ratio = 0\n\n"
    ));
    for id in 1..=NODES {
        t.push_str(&format!(
            "[[nodes]]\nid = {id}\nhost = \"node-{id}.example\"\nport = 19001\ndata_center = \"dc-{}\"\npdisks = [ {{ id = 1, path = \"/dev/nvme0n1\" }} ]\n\n",
            dc(id) + 1
        ));
    }
    let vdisks: Vec<String> = (1..=NODES)
        .map(|id| format!("{{ node = {id}, pdisk = 1 }}"))
        .collect();
    t.push_str(&format!(
        "[[storage_groups]]\nid = 1\nerasure = \"mirror-3-dc\"\nvdisks = [ {} ]\n",
        vdisks.join(", ")
    ));
    t
}

/// Every way in which `unavailable` breaks the failure model in weak mode: more than
/// [`MAX_DOWN`] nodes, or vdisks of the mirror-3-dc group down in more than one data center
/// beyond one vdisk (YDB: one data center may be lost entirely, or one plus one more vdisk).
fn violations(unavailable: &BTreeSet<u32>) -> Vec<String> {
    let mut bad = Vec::new();
    if unavailable.len() > MAX_DOWN {
        bad.push(format!(
            "cluster: {} nodes unavailable {unavailable:?}, limit {MAX_DOWN}",
            unavailable.len()
        ));
    }
    let mut per_dc = [0usize; 3];
    for id in unavailable {
        per_dc[dc(*id)] += 1;
    }
    let hit: Vec<usize> = per_dc.into_iter().filter(|c| *c > 0).collect();
    let ok = hit.len() <= 1 || (hit.len() == 2 && hit.iter().any(|c| *c <= 1));
    if !ok {
        bad.push(format!(
            "group 1 (mirror-3-dc): vdisks down on {unavailable:?}, per data center {per_dc:?}"
        ));
    }
    bad
}

#[test]
fn the_checker_itself_catches_breaches() {
    let set = |ids: &[u32]| ids.iter().copied().collect::<BTreeSet<u32>>();
    // One data center whole; one plus one vdisk elsewhere.
    assert!(violations(&set(&[1, 4, 7])).is_empty());
    assert!(violations(&set(&[1, 4, 2])).is_empty());
    assert!(violations(&set(&[])).is_empty());
    for (ids, what) in [
        (&[1, 2, 3][..], "group 1"),    // three data centers
        (&[1, 4, 2, 5][..], "group"),   // two data centers, two each
        (&[1, 4, 7, 2][..], "cluster"), // four nodes
    ] {
        let v = violations(&set(ids));
        assert!(v.iter().any(|s| s.starts_with(what)), "{ids:?}: {v:?}");
    }
}

// ----- the node agents ----------------------------------------------------------------------

/// A path in the temp dir as one shell word.
fn word(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(!s.contains('\''), "a temp dir without quotes: {s}");
    format!("'{s}'")
}

/// The agent's health command for node `id`: it fails while the node is stopped (and says so
/// in `silent-<id>`), and records `up-<id>` when it succeeds after the restart.
fn health_cmd(d: &Path, id: u32) -> String {
    let d = word(d);
    format!(
        "if [ -e {d}/down-{id} ]; then touch {d}/silent-{id}; echo stopped >&2; exit 1; fi; \
         if [ -e {d}/restarted-{id} ]; then touch {d}/up-{id}; fi"
    )
}

/// The drain hook (the agent fills in `{node}`): takes a while, reports progress, and writes
/// `drained-<id>` with its task's uid before it ends.
fn drain_cmd(d: &Path) -> String {
    let d = word(d);
    format!(
        "echo \"drain-start {{node}} $ARBITER_TASK_UID\" >> {d}/events.log; \
         touch {d}/draining-{{node}}; \
         if [ -e {d}/down-{{node}} ]; then echo \"node {{node}}: drained while stopped\" >> {d}/violations; fi; \
         echo progress 25; sleep 0.2; echo progress 75; sleep 0.2; \
         echo \"$ARBITER_TASK_UID\" > {d}/drained-{{node}}; \
         rm -f {d}/draining-{{node}}; \
         echo \"drain-done {{node}}\" >> {d}/events.log"
    )
}

/// The undrain hook: the node must be up again (its health command succeeded after the
/// restart, and it is not stopped).
fn undrain_cmd(d: &Path) -> String {
    let d = word(d);
    format!(
        "echo \"undrain-start {{node}} $ARBITER_TASK_UID\" >> {d}/events.log; \
         if [ -e {d}/down-{{node}} ] || [ ! -e {d}/up-{{node}} ]; then \
           echo \"node {{node}}: undrained before it came back\" >> {d}/violations; fi; \
         touch {d}/undrained-{{node}}; \
         echo \"undrain-done {{node}}\" >> {d}/events.log"
    )
}

/// The rollout's `--exec` (the CLI fills in `{id}`): refuses to go on unnoticed if the node is
/// not drained for this task, stops the node, waits until its agent's health command has
/// failed (the heartbeats paused), keeps it down for [`DOWN_FOR`] seconds, and starts it.
fn restart_cmd(d: &Path) -> String {
    let d = word(d);
    format!(
        "if [ \"$(cat {d}/drained-{{id}} 2>/dev/null)\" != \"$ARBITER_TASK_UID\" ]; then \
           echo \"node {{id}}: stopped before its drain finished\" >> {d}/violations; fi; \
         echo \"stop {{id}}\" >> {d}/events.log; \
         touch {d}/down-{{id}}; \
         until [ -e {d}/silent-{{id}} ]; do sleep 0.02; done; \
         sleep {DOWN_FOR}; \
         touch {d}/restarted-{{id}}; \
         echo \"start {{id}}\" >> {d}/events.log; \
         rm -f {d}/down-{{id}}"
    )
}

/// One `arbiter agent` process.
struct Agent {
    id: u32,
    child: Option<Child>,
    out: Collected,
}

impl Agent {
    fn start(server: &ServerProcess, d: &Path, id: u32) -> Agent {
        let mut cmd = cli_command();
        cmd.arg("--endpoint")
            .arg(server.addr().to_string())
            .args(["agent", "--node", &id.to_string(), "--every", EVERY])
            .args(["--health", &health_cmd(d, id)])
            .args(["--on-drain", &drain_cmd(d)])
            .args(["--on-undrain", &undrain_cmd(d)])
            .args(["--hook-retry-delay", "1s"]);
        let (child, out) = spawn_collecting(&mut cmd, "arbiter agent");
        Agent {
            id,
            child: Some(child),
            out,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.out.0.lock().expect("lines").clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn report(&self) -> String {
        format!(
            "--- agent of node {} ---\nstdout:\n{}\nstderr:\n{}",
            self.id,
            self.lines().join("\n"),
            self.out.1.lock().expect("stderr")
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every agent, printed when the test fails.
struct Agents(Vec<Agent>);

impl Agents {
    fn report(&self) -> String {
        self.0
            .iter()
            .map(Agent::report)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

// ----- the rollout --------------------------------------------------------------------------

/// A running `arbiter rolling-restart`.
struct Rollout {
    child: Option<Child>,
    out: Collected,
}

/// How it ended.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Rollout {
    fn start(server: &ServerProcess, args: &[&str]) -> Rollout {
        let mut cmd = cli_command();
        cmd.arg("--endpoint")
            .arg(server.addr().to_string())
            .args(["--token", TICKET, "rolling-restart"])
            .args(args);
        let (child, out) = spawn_collecting(&mut cmd, "arbiter rolling-restart");
        Rollout {
            child: Some(child),
            out,
        }
    }

    fn stdout(&self) -> String {
        self.out.0.lock().expect("lines").join("\n")
    }

    /// Waits for the exit, at most `bound` (then kills it and fails).
    async fn finish(mut self, bound: Duration) -> Finished {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > bound {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "arbiter rolling-restart did not finish within {bound:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.out.1.lock().expect("stderr")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The reader threads end once the pipes close (bounded: a leftover could hold them).
        let start = Instant::now();
        while (Arc::strong_count(&self.out.0) > 1 || Arc::strong_count(&self.out.1) > 1)
            && start.elapsed() < BOUND
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.out.1.lock().expect("stderr").clone(),
        }
    }
}

impl Drop for Rollout {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ----- the sampler --------------------------------------------------------------------------

/// The nodes that have a file `<prefix><id>` in `d` now.
fn marked(d: &Path, prefix: &str) -> BTreeSet<u32> {
    std::fs::read_dir(d)
        .expect("read the temp dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok())
        .collect()
}

/// What the sampler saw.
#[derive(Debug, Default)]
struct Report {
    samples: usize,
    max_locked: usize,
    max_unavailable: usize,
    /// Samples with a node draining (its hook running, the server saying ENTERING).
    saw_draining: usize,
    /// Samples with a node stopped (locked and IN_MAINTENANCE).
    saw_stopped: usize,
    violations: Vec<String>,
}

impl Report {
    fn bad(&mut self, at: Duration, what: String) {
        if self.violations.len() < 30 {
            self.violations.push(format!("at {at:?}: {what}"));
        }
    }
}

/// Samples `ListNodes` until `stop`, checking every answer against the files around it.
fn start_sampler(c: Client, d: PathBuf, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Report> {
    tokio::spawn(async move {
        let mut r = Report::default();
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < ROLLOUT_BOUND + BOUND * 2 {
            let (down_before, draining_before) = (marked(&d, "down-"), marked(&d, "draining-"));
            let nodes = list_nodes(&c).await;
            let (down_after, draining_after) = (marked(&d, "down-"), marked(&d, "draining-"));
            let drained_after = marked(&d, "drained-");
            let at = started.elapsed();
            // Stopped, or draining, for the whole call.
            let stopped: BTreeSet<u32> = down_before.intersection(&down_after).copied().collect();
            let draining: BTreeSet<u32> = draining_before
                .intersection(&draining_after)
                .copied()
                .collect();
            let by_id: BTreeMap<u32, &NodeStatus> = nodes.iter().map(|n| (n.node_id, n)).collect();
            let locked: BTreeSet<u32> = nodes
                .iter()
                .filter(|n| !n.lock_task.is_empty())
                .map(|n| n.node_id)
                .collect();
            let unavailable: BTreeSet<u32> = locked.union(&stopped).copied().collect();
            r.samples += 1;
            r.max_locked = r.max_locked.max(locked.len());
            r.max_unavailable = r.max_unavailable.max(unavailable.len());
            for v in violations(&unavailable) {
                r.bad(at, format!("{v} (locked {locked:?}, stopped {stopped:?})"));
            }
            let condition = |id: u32| {
                by_id.get(&id).map_or(NodeCondition::Unspecified, |n| {
                    NodeCondition::try_from(n.condition).unwrap_or(NodeCondition::Unspecified)
                })
            };
            for &id in &stopped {
                let task = by_id.get(&id).map_or("", |n| n.lock_task.as_str());
                if task != TASK || condition(id) != NodeCondition::InMaintenance {
                    r.bad(
                        at,
                        format!(
                            "node {id} is stopped, but the server says lock {task:?}, {:?}",
                            condition(id)
                        ),
                    );
                }
            }
            for &id in &draining {
                let task = by_id.get(&id).map_or("", |n| n.lock_task.as_str());
                if task != TASK || condition(id) != NodeCondition::EnteringMaintenance {
                    r.bad(
                        at,
                        format!(
                            "node {id} drains, but the server says lock {task:?}, {:?}",
                            condition(id)
                        ),
                    );
                }
            }
            for n in &nodes {
                let id = n.node_id;
                let c = condition(id);
                // The server learns of the drain's end only after the hook wrote its file.
                if c == NodeCondition::InMaintenance && !drained_after.contains(&id) {
                    r.bad(
                        at,
                        format!("node {id} IN_MAINTENANCE before its drain finished"),
                    );
                }
                // Not drained yet by the server's word: it must not have been stopped already.
                if c == NodeCondition::EnteringMaintenance && down_before.contains(&id) {
                    r.bad(at, format!("node {id} stopped while ENTERING_MAINTENANCE"));
                }
            }
            if !draining.is_empty() {
                r.saw_draining += 1;
            }
            if !stopped.is_empty() {
                r.saw_stopped += 1;
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
        r
    })
}

// ----- the replay of events.log -------------------------------------------------------------

/// Each node's steps, in the order they must come.
const STEPS: [&str; 6] = [
    "drain-start",
    "drain-done",
    "stop",
    "start",
    "undrain-start",
    "undrain-done",
];

/// What the replay found: every breach, and the most nodes held at once.
fn replay(log: &str) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut steps: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    // Between the start of its drain and the end of its restart a node is locked.
    let mut held = BTreeSet::new();
    let mut most = 0;
    for (i, line) in log.lines().enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(step), Some(id)) = (parts.next(), parts.next().and_then(|s| s.parse().ok()))
        else {
            bad.push(format!("line {}: cannot read {line:?}", i + 1));
            continue;
        };
        if step.ends_with("-start")
            && step != "start"
            && let Some(task) = parts.next()
            && task != TASK
        {
            bad.push(format!("line {}: {step} {id} for task {task:?}", i + 1));
        }
        let seen = steps.entry(id).or_default();
        let want = STEPS.get(seen.len()).copied();
        if want != Some(step) {
            bad.push(format!(
                "line {}: node {id}: {step} after {seen:?} (expected {want:?})",
                i + 1
            ));
        }
        seen.push(step);
        match step {
            "drain-start" => {
                held.insert(id);
            }
            "start" => {
                held.remove(&id);
            }
            _ => {}
        }
        most = most.max(held.len());
        for v in violations(&held) {
            bad.push(format!("line {}: {v}", i + 1));
        }
    }
    for id in 1..=NODES {
        let seen = steps.get(&id).map(Vec::len).unwrap_or(0);
        if seen != STEPS.len() {
            bad.push(format!("node {id}: steps {:?}", steps.get(&id)));
        }
    }
    (bad, most)
}

// ----- the test -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_rolling_restart_of_9_nodes_drains_before_each_stop_and_undrains_after() {
    let files = Files::new();
    let d = files.path().to_path_buf();
    let inventory = files.write("cluster-9.toml", &inventory());
    let server = ServerProcess::start_with(
        inventory,
        &[
            "--heartbeat-timeout",
            HEARTBEAT_TIMEOUT,
            "--settle-time",
            "300ms",
        ],
    );
    let c = server.client(Some(TICKET)).await;
    let mut agents = Agents(
        (1..=NODES)
            .map(|id| Agent::start(&server, &d, id))
            .collect(),
    );

    // Every node up with its agent, and every agent's order stream open.
    let start = Instant::now();
    loop {
        let up: BTreeSet<u32> = list_nodes(&c)
            .await
            .into_iter()
            .filter(|n| n.monitored && n.state == ItemState::Up as i32)
            .map(|n| n.node_id)
            .collect();
        let listening = agents
            .0
            .iter()
            .filter(|a| a.count("orders connected") > 0)
            .count();
        if up.len() == NODES as usize && listening == NODES as usize {
            break;
        }
        for a in &mut agents.0 {
            assert!(a.running(), "node {}: the agent exited", a.id);
        }
        assert!(
            start.elapsed() < BOUND,
            "not every agent is up and connected within {BOUND:?}: up {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = start_sampler(c.clone(), d.clone(), stop.clone());
    let exec = restart_cmd(&d);
    let started = Instant::now();
    let done = Rollout::start(
        &server,
        &[
            "--all",
            "--drain",
            "--mode",
            "weak",
            "--inflight",
            "3",
            "--task-uid",
            TASK,
            "--retries",
            "0",
            "--command-timeout",
            "20s",
            "--poll-interval",
            "100ms",
            "--up-timeout",
            "20s",
            "--progress",
            "lines",
            "--exec",
            &exec,
        ],
    )
    .finish(ROLLOUT_BOUND)
    .await;
    let took = started.elapsed();
    assert!(
        done.status.success(),
        "the rollout failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        done.status,
        done.stdout,
        done.stderr
    );

    // The last nodes undrain after the rollout ends: once the server saw them up again.
    let start = Instant::now();
    while marked(&d, "undrained-").len() < NODES as usize {
        assert!(
            start.elapsed() < BOUND,
            "not every node undrained within {BOUND:?} after the rollout: {:?}\nviolations:\n{}\nstdout:\n{}",
            marked(&d, "undrained-"),
            std::fs::read_to_string(d.join("violations")).unwrap_or_default(),
            done.stdout
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let report = sampler.await.expect("the sampler ends");

    // No hook or restart found anything wrong.
    let noted = std::fs::read_to_string(d.join("violations")).unwrap_or_default();
    assert!(noted.is_empty(), "the hooks saw violations:\n{noted}");
    // The sampler saw no breach, and it saw the rollout at work: nodes draining, nodes
    // stopped, several at once.
    assert!(
        report.violations.is_empty(),
        "the sampler saw breaches:\n{}\nstdout:\n{}",
        report.violations.join("\n"),
        done.stdout
    );
    assert!(report.samples > 50, "{report:?}");
    assert!(report.saw_draining > 0, "{report:?}");
    assert!(report.saw_stopped > 0, "{report:?}");
    assert!(report.max_locked >= 2, "{report:?}");
    assert!(report.max_unavailable <= MAX_DOWN, "{report:?}");
    // Each node's steps, once each and in order, and the failure model at every step.
    let log = std::fs::read_to_string(d.join("events.log")).expect("events.log");
    let (bad, most_held) = replay(&log);
    assert!(
        bad.is_empty(),
        "the event log breaks the rules:\n{}\nlog:\n{log}",
        bad.join("\n")
    );
    assert!(most_held >= 2, "several nodes at once:\n{log}");

    // The rollout's own account.
    assert!(
        done.stdout
            .contains("summary: 9 restarted, 0 failed, 0 skipped (of 9)"),
        "{}",
        done.stdout
    );
    for id in 1..=NODES {
        for step in ["granted", "restarting", "up again", "completed"] {
            let line = format!("node {id} (node-{id}.example): {step}");
            assert_eq!(
                done.stdout.matches(&line).count(),
                1,
                "one '{line}' in:\n{}",
                done.stdout
            );
        }
    }
    // The agents' own account: one drain and one undrain each, no failed hook, and every
    // agent still running.
    for a in &mut agents.0 {
        let id = a.id;
        assert!(a.running(), "node {id}: the agent exited");
        for line in [
            format!("node {id}: drain: drain done for task {TASK}"),
            format!("node {id}: undrain: undrain done for task {TASK}"),
            format!("node {id}: drain: started for task {TASK} (attempt 1)"),
            format!("node {id}: undrain: started for task {TASK} (attempt 1)"),
        ] {
            assert_eq!(a.count(&line), 1, "one '{line}'");
        }
        assert_eq!(a.count("(attempt 2)"), 0, "node {id}: no hook failed");
        assert_eq!(
            a.count("heartbeats paused"),
            1,
            "node {id}: stopped once (its heartbeats paused)"
        );
    }

    // The end state: no task, no lock, every node up and not owed an undrain.
    let tasks: ListMaintenanceTasksResult = success(&c.list(Some(TICKET)).await);
    assert!(tasks.tasks_uids.is_empty(), "the task is gone: {tasks:?}");
    let start = Instant::now();
    loop {
        let nodes = list_nodes(&c).await;
        let settled = nodes.iter().all(|n| {
            n.lock_task.is_empty()
                && n.state == ItemState::Up as i32
                && n.condition == NodeCondition::Up as i32
        });
        if settled {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "not every node up and free within {BOUND:?}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        took < ROLLOUT_BOUND,
        "the rollout took {took:?}, bound {ROLLOUT_BOUND:?}"
    );
    eprintln!(
        "9-node drained rollout: {took:?}; sampler: {} samples, at most {} locked and {} unavailable at once; log: at most {most_held} held",
        report.samples, report.max_locked, report.max_unavailable
    );
}
