//! `arbiter rolling-restart` end to end: the real `arbiter-server`, the real `arbiter` CLI, and
//! simulated node agents.
//!
//! Every node has an agent (a tokio task) that sends a heartbeat every 200 ms. The rollout's
//! `--exec` command "restarts" a node by creating a marker file; the agent sees it on its next
//! tick, goes silent for [`SILENCE`] (longer than the server's 1 s heartbeat timeout, so the
//! arbiter sees the node go down), then deletes the marker and resumes. The agents' record of
//! who is silent is the ground truth.
//!
//! An independent checker polls `ListNodes` and, for every answer, takes the nodes that were
//! locked at that moment plus the nodes whose agents were silent during the whole call, and
//! checks them against the failure model and the limits of the inventory with its own code
//! (the rules of the design and of YDB's CMS, not the server's): per storage group and mode,
//! per state-storage ring (with the "recently started" window, which the server's
//! `--ring-settle-time` shortens to [`RING_WINDOW`] here), per system tablet,
//! the cluster's and the tenant's node limits.
//!
//! The CLI is `ARBITER_CLI_BIN`, else the harness builds it on first use (see `arbiter_e2e`).

use arbiter_e2e::proto::arbiter::v1::HeartbeatRequest;
use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::ydb::maintenance::{ItemState, ListMaintenanceTasksResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, FIVE_NODES, Files, ServerProcess, cli_binary, list_nodes, status, success,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an agent sends a heartbeat.
const BEAT: Duration = Duration::from_millis(200);
/// How long a "restarting" agent stays silent (the server's heartbeat timeout is 1 s).
const SILENCE: Duration = Duration::from_millis(1300);
/// How often the checker looks.
const CHECK_EVERY: Duration = Duration::from_millis(40);
/// The "recently started" window of a state-storage ring: YDB's is 2 minutes, too long for a
/// test; the server gets this one with `--ring-settle-time`.
const RING_WINDOW: Duration = Duration::from_secs(3);
/// The longest any one CLI run may take.
const RUN_BOUND: Duration = Duration::from_secs(80);
/// The ticket (and so the task owner) of every call.
const TICKET: &str = "e2e-operator";

// ----- the cluster ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Erasure {
    Block42,
    Mirror3Dc,
}

#[derive(Debug, Clone)]
struct Group {
    id: u32,
    erasure: Erasure,
    /// (node, pdisk) per vdisk.
    vdisks: Vec<(u32, u32)>,
}

#[derive(Debug, Clone)]
struct NodeDef {
    id: u32,
    /// 0, 1 or 2.
    dc: usize,
    dynamic: bool,
}

/// A cluster description that both the inventory file and the checker are made from.
#[derive(Debug, Clone)]
struct Model {
    nodes: Vec<NodeDef>,
    groups: Vec<Group>,
    rings: Vec<Vec<u32>>,
    nto_select: u32,
    tablets: Vec<(&'static str, Vec<u32>)>,
    /// Cluster limit: percent of all nodes.
    cluster_ratio: u32,
    /// The tenant's absolute limit.
    tenant_max: u32,
}

const TENANT: &str = "/Root/db1";

/// 27 nodes, 9 per data center: in each, 6 storage nodes (two pdisks each) and 3 dynamic
/// nodes of `/Root/db1`. Data center k holds nodes 9k+1..9k+9; its storage nodes are 9k+1..9k+6.
///
/// - mirror-3-dc groups 1 and 2 over pdisk 1 (nodes 1-3/10-12/19-21 and 4-6/13-15/22-24), and a
///   3-member mirror-3-dc group 3 (nodes 3, 12, 21, pdisk 2);
/// - block-4-2 groups 11, 12, 13 over pdisk 2, one per data center (its 6 storage nodes);
/// - HIVE on nodes 5, 14 and 23;
/// - limits: 13% of 27 nodes cluster-wide (3), at most 2 of the tenant's 9 nodes;
/// - state storage: 5 rings (nto_select 5): ring 0 = nodes 1, 10, 19; ring 1 = 2, 11, 20;
///   rings 2, 3, 4 = nodes 4, 13, 22.
///
/// Why the rings look like this: a replica that came back less than [`RING_WINDOW`] ago makes
/// its ring count as unavailable, so within one window a rollout can touch at most as many
/// rings as the mode tolerates (strong: 1; weak with nto_select 5: 2). Two rings of three
/// replicas in three data centers and three rings of one replica make the big rollout wait for
/// windows to end between rings, which the checker checks at every sample.
fn cluster27() -> Model {
    let mut nodes = Vec::new();
    for dc in 0..3usize {
        for k in 1..=9u32 {
            nodes.push(NodeDef {
                id: u32::try_from(dc).expect("small") * 9 + k,
                dc,
                dynamic: k > 6,
            });
        }
    }
    let span = |offsets: &[u32], pdisk: u32| -> Vec<(u32, u32)> {
        (0..3u32)
            .flat_map(|dc| offsets.iter().map(move |o| (dc * 9 + o, pdisk)))
            .collect()
    };
    let mut groups = vec![
        Group {
            id: 1,
            erasure: Erasure::Mirror3Dc,
            vdisks: span(&[1, 2, 3], 1),
        },
        Group {
            id: 2,
            erasure: Erasure::Mirror3Dc,
            vdisks: span(&[4, 5, 6], 1),
        },
        Group {
            id: 3,
            erasure: Erasure::Mirror3Dc,
            vdisks: span(&[3], 2),
        },
    ];
    for dc in 0..3u32 {
        groups.push(Group {
            id: 11 + dc,
            erasure: Erasure::Block42,
            vdisks: (1..=6).map(|k| (dc * 9 + k, 2)).collect(),
        });
    }
    Model {
        nodes,
        groups,
        rings: vec![
            vec![1, 10, 19],
            vec![2, 11, 20],
            vec![4],
            vec![13],
            vec![22],
        ],
        nto_select: 5,
        tablets: vec![("HIVE", vec![5, 14, 23])],
        cluster_ratio: 13,
        tenant_max: 2,
    }
}

impl Model {
    fn node(&self, id: u32) -> Option<&NodeDef> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The inventory file.
    fn toml(&self) -> String {
        let mut t = String::from("[defaults]\nlock_duration = \"10m\"\nretry_after = \"1m\"\n\n");
        t.push_str(&format!(
            "[limits]\nmax_unavailable_nodes = 0\nmax_unavailable_ratio = {}\n\n",
            self.cluster_ratio
        ));
        t.push_str(&format!(
            "[tenants.\"{TENANT}\"]\nmax_unavailable_nodes = {}\nmax_unavailable_ratio = 0\n\n",
            self.tenant_max
        ));
        for n in &self.nodes {
            t.push_str(&format!(
                "[[nodes]]\nid = {}\nhost = \"{}\"\nport = 19001\ndata_center = \"dc-{}\"\n",
                n.id,
                host(n.id),
                n.dc + 1
            ));
            if n.dynamic {
                t.push_str(&format!("tenant = \"{TENANT}\"\n"));
            } else {
                t.push_str(
                    "pdisks = [ { id = 1, path = \"/dev/nvme0n1\" }, { id = 2, path = \"/dev/nvme1n1\" } ]\n",
                );
            }
            t.push('\n');
        }
        for g in &self.groups {
            let erasure = match g.erasure {
                Erasure::Block42 => "block-4-2",
                Erasure::Mirror3Dc => "mirror-3-dc",
            };
            let vdisks: Vec<String> = g
                .vdisks
                .iter()
                .map(|(n, p)| format!("{{ node = {n}, pdisk = {p} }}"))
                .collect();
            t.push_str(&format!(
                "[[storage_groups]]\nid = {}\nerasure = \"{erasure}\"\nvdisks = [ {} ]\n\n",
                g.id,
                vdisks.join(", ")
            ));
        }
        let rings: Vec<String> = self.rings.iter().map(|r| format!("{r:?}")).collect();
        t.push_str(&format!(
            "[state_storage]\nnto_select = {}\nrings = [ {} ]\n\n",
            self.nto_select,
            rings.join(", ")
        ));
        for (kind, nodes) in &self.tablets {
            t.push_str(&format!(
                "[[sys_tablets]]\ntype = \"{kind}\"\nnodes = {nodes:?}\n\n"
            ));
        }
        t
    }
}

fn host(id: u32) -> String {
    format!("node-{id}.dc{}.example", (id - 1) / 9 + 1)
}

// ----- the independent checker -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Strong,
    Weak,
}

/// Every way in which `unavailable` (with `fresh_rings` recently restarted) breaks the failure
/// model or the limits at `level`. Written from the rules, sharing no code with the server.
fn violations(
    m: &Model,
    level: Level,
    unavailable: &BTreeSet<u32>,
    fresh_rings: &BTreeSet<usize>,
) -> Vec<String> {
    let mut bad = Vec::new();
    let within = |n: usize, abs: u32, ratio: u32, total: usize| {
        n <= 1
            || ((abs == 0 || n <= abs as usize)
                && (ratio == 0 || n * 100 <= total * ratio as usize))
    };
    let n = unavailable.len();
    if !within(n, 0, m.cluster_ratio, m.nodes.len()) {
        bad.push(format!(
            "cluster: {n} nodes unavailable {unavailable:?}, limit {}% of {}",
            m.cluster_ratio,
            m.nodes.len()
        ));
    }
    let tenant_nodes = m.nodes.iter().filter(|d| d.dynamic).count();
    let tenant_down: Vec<u32> = unavailable
        .iter()
        .copied()
        .filter(|id| m.node(*id).is_some_and(|d| d.dynamic))
        .collect();
    if !within(tenant_down.len(), m.tenant_max, 0, tenant_nodes) {
        bad.push(format!(
            "tenant: {tenant_down:?} unavailable, limit {}",
            m.tenant_max
        ));
    }
    for g in &m.groups {
        let down: Vec<(u32, usize)> = g
            .vdisks
            .iter()
            .filter(|(node, _)| unavailable.contains(node))
            .map(|(node, _)| (*node, m.node(*node).map_or(0, |d| d.dc)))
            .collect();
        let ok = match (g.erasure, level) {
            (_, Level::Strong) => down.len() <= 1,
            (Erasure::Block42, Level::Weak) => down.len() <= 2,
            (Erasure::Mirror3Dc, Level::Weak) => {
                let mut per_dc = [0usize; 3];
                for (_, dc) in &down {
                    per_dc[*dc] += 1;
                }
                let hit: Vec<usize> = per_dc.into_iter().filter(|c| *c > 0).collect();
                hit.len() <= 1 || (hit.len() == 2 && hit.iter().any(|c| *c <= 1))
            }
        };
        if !ok {
            bad.push(format!("group {}: unavailable vdisks on {down:?}", g.id));
        }
    }
    let restarting: BTreeSet<usize> = m
        .rings
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|n| unavailable.contains(n)))
        .map(|(i, _)| i)
        .collect();
    let rings_bad = restarting.union(fresh_rings).count();
    let allowed = match level {
        Level::Strong => 1,
        Level::Weak => (m.nto_select as usize - 1) / 2,
    };
    if rings_bad > allowed {
        bad.push(format!(
            "state storage: rings restarting {restarting:?}, recently started {fresh_rings:?}, allowed {allowed}"
        ));
    }
    for (kind, nodes) in &m.tablets {
        let down = nodes.iter().filter(|n| unavailable.contains(n)).count();
        let ok = match level {
            Level::Strong => down * 2 <= nodes.len(),
            Level::Weak => down < nodes.len(),
        };
        if !ok {
            bad.push(format!("tablet {kind}: {down} of {nodes:?} unavailable"));
        }
    }
    bad
}

#[test]
fn the_checker_itself_catches_breaches() {
    let m = cluster27();
    let set = |ids: &[u32]| ids.iter().copied().collect::<BTreeSet<u32>>();
    let none = BTreeSet::new();
    // Fine in weak mode: one DC of mirror group 1 plus two of a block-4-2 group.
    assert!(violations(&m, Level::Weak, &set(&[1, 2]), &none).is_empty());
    assert!(violations(&m, Level::Weak, &set(&[1, 10, 7]), &none).is_empty());
    // Breaches, each named by the rule it breaks.
    for (ids, what) in [
        (&[1, 10, 19][..], "group 1"), // three data centers of a mirror-3-dc group
        (&[1, 2, 3][..], "group 11"),  // three of a block-4-2 group
        (&[7, 8, 9][..], "tenant"),    // three of the tenant's nodes
        (&[7, 16, 3, 24][..], "cluster"), // four nodes
        (&[1, 2, 4][..], "state storage"), // three rings
    ] {
        let v = violations(&m, Level::Weak, &set(ids), &none);
        assert!(v.iter().any(|s| s.starts_with(what)), "{ids:?}: {v:?}");
    }
    // Two HIVE nodes: weak keeps one (fine), strong keeps half (not).
    assert!(violations(&m, Level::Weak, &set(&[5, 14]), &none).is_empty());
    let strong = violations(&m, Level::Strong, &set(&[5, 14]), &none);
    assert!(
        strong.iter().any(|s| s.starts_with("tablet HIVE")),
        "{strong:?}"
    );
    let fresh: BTreeSet<usize> = [0, 1].into_iter().collect();
    let v = violations(&m, Level::Weak, &set(&[4]), &fresh);
    assert!(v.iter().any(|s| s.starts_with("state storage")), "{v:?}");
    assert!(violations(&m, Level::Weak, &set(&[2]), &fresh).is_empty());
}

// ----- simulated node agents --------------------------------------------------------------

#[derive(Debug, Default)]
struct World {
    /// Silent agents, since when.
    silent: BTreeMap<u32, Instant>,
    /// When each agent last came back.
    resumed: BTreeMap<u32, Instant>,
    /// How many times each node was "restarted" (went silent).
    restarts: BTreeMap<u32, u32>,
    /// Agents that never come back once silent.
    stuck: BTreeSet<u32>,
}

/// One agent per node.
struct Agents {
    world: Arc<Mutex<World>>,
    dir: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agents {
    /// Starts an agent for every node of `ids`; returns once the server has seen each of them.
    async fn start(server: &ServerProcess, ids: &[u32], dir: &Path) -> Agents {
        let world = Arc::new(Mutex::new(World::default()));
        let client = server.client(Some(TICKET)).await;
        let mut tasks = Vec::new();
        for &id in ids {
            let world = world.clone();
            let client = client.clone();
            let marker = dir.join(format!("down-{id}"));
            let ack = dir.join(format!("silent-{id}"));
            tasks.push(tokio::spawn(async move {
                let mut arbiter = ArbiterServiceClient::new(client.channel());
                let mut tick = tokio::time::interval(BEAT);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let send = {
                        let mut w = world.lock().expect("world");
                        let now = Instant::now();
                        match w.silent.get(&id).copied() {
                            Some(since) => {
                                if now.duration_since(since) >= SILENCE && !w.stuck.contains(&id) {
                                    let _ = std::fs::remove_file(&marker);
                                    w.silent.remove(&id);
                                    w.resumed.insert(id, now);
                                    true
                                } else {
                                    false
                                }
                            }
                            None if marker.exists() => {
                                w.silent.insert(id, now);
                                *w.restarts.entry(id).or_default() += 1;
                                // Every beat sent before this one has been answered: the
                                // command may end now, and the rollout's baseline heartbeat
                                // is the last one the server gets before the silence.
                                let _ = std::fs::write(&ack, b"");
                                false
                            }
                            None => true,
                        }
                    };
                    if send {
                        let req = client.request(HeartbeatRequest {
                            node_id: id,
                            version: None,
                            start_time: None,
                        });
                        // A lost beat is what a real agent would see too; the next one follows.
                        let _ = arbiter.heartbeat(req).await;
                    }
                }
            }));
        }
        let agents = Agents {
            world,
            dir: dir.to_path_buf(),
            tasks,
        };
        let want: BTreeSet<u32> = ids.iter().copied().collect();
        let start = Instant::now();
        loop {
            let monitored: BTreeSet<u32> = list_nodes(&client)
                .await
                .into_iter()
                .filter(|n| n.monitored && n.state == ItemState::Up as i32)
                .map(|n| n.node_id)
                .collect();
            if want.is_subset(&monitored) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "agents not all seen: {:?}",
                want.difference(&monitored).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        agents
    }

    /// The `--exec` command that "restarts" a node: it ends only once the node's agent has gone
    /// silent, as a real restart ends with the node down. (Ending at once would let a beat sent
    /// just before the silence look like the node coming back.)
    fn exec(&self) -> String {
        let d = self.dir.display();
        format!(
            "touch {d}/down-{{id}} && until [ -e {d}/silent-{{id}} ]; do sleep 0.02; done; rm -f {d}/silent-{{id}}"
        )
    }

    fn restarts(&self) -> BTreeMap<u32, u32> {
        self.world.lock().expect("world").restarts.clone()
    }

    fn silent(&self) -> BTreeSet<u32> {
        self.world
            .lock()
            .expect("world")
            .silent
            .keys()
            .copied()
            .collect()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the checker saw.
#[derive(Debug, Default)]
struct Report {
    samples: usize,
    max_locked: usize,
    max_unavailable: usize,
    violations: Vec<String>,
}

/// Polls ListNodes until `stop`, checking every answer.
fn start_checker(
    client: Client,
    model: Model,
    level: Level,
    world: Arc<Mutex<World>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Report> {
    tokio::spawn(async move {
        let mut report = Report::default();
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < RUN_BOUND * 3 {
            let sent = Instant::now();
            let nodes = list_nodes(&client).await;
            let (silent, fresh) = {
                let w = world.lock().expect("world");
                let now = Instant::now();
                let silent: BTreeSet<u32> = w
                    .silent
                    .iter()
                    .filter(|(_, since)| **since <= sent)
                    .map(|(id, _)| *id)
                    .collect();
                let fresh: BTreeSet<usize> = model
                    .rings
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.iter().any(|n| {
                            w.resumed
                                .get(n)
                                .is_some_and(|t| now.duration_since(*t) < RING_WINDOW)
                        })
                    })
                    .map(|(i, _)| i)
                    .collect();
                (silent, fresh)
            };
            let locked: BTreeSet<u32> = nodes
                .iter()
                .filter(|n| !n.lock_task.is_empty())
                .map(|n| n.node_id)
                .collect();
            let unavailable: BTreeSet<u32> = locked.union(&silent).copied().collect();
            report.samples += 1;
            report.max_locked = report.max_locked.max(locked.len());
            report.max_unavailable = report.max_unavailable.max(unavailable.len());
            for v in violations(&model, level, &unavailable, &fresh) {
                if report.violations.len() < 20 {
                    report.violations.push(format!(
                        "at {:?}: {v} (locked {locked:?}, silent {silent:?})",
                        started.elapsed()
                    ));
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
        report
    })
}

// ----- the CLI ------------------------------------------------------------------------------

/// A running `arbiter ... rolling-restart ...`, its stdout read line by line as it comes.
struct CliRun {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// How a CLI run ended.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl CliRun {
    fn start(server: &ServerProcess, args: &[&str]) -> CliRun {
        let mut cmd = Command::new(cli_binary());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ARBITER_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("--endpoint")
            .arg(server.addr().to_string())
            .arg("--token")
            .arg(TICKET)
            .arg("rolling-restart")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn arbiter");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let l = lines.clone();
        let e = stderr.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    l.lock().expect("lines").push(line);
                }
            }),
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = BufReader::new(err).read_to_string(&mut text);
                e.lock().expect("stderr").push_str(&text);
            }),
        ];
        CliRun {
            child: Some(child),
            lines,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits until `n` stdout lines satisfy `pred` (bounded).
    async fn wait_for_lines(&self, n: usize, pred: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let count = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .filter(|l| pred(l))
                .count();
            if count >= n {
                return;
            }
            assert!(
                start.elapsed() < RUN_BOUND,
                "not {n} matching lines after {RUN_BOUND:?}; stdout so far:\n{}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let child = self.child.as_ref().expect("running");
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a pid");
        rustix::process::kill_process(pid, sig).expect("signal the CLI");
    }

    /// Waits for the exit (bounded by [`RUN_BOUND`]; killed after that).
    async fn finish(mut self) -> Finished {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > RUN_BOUND {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "arbiter rolling-restart did not finish within {RUN_BOUND:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr.lock().expect("stderr")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr.lock().expect("stderr").clone(),
        }
    }
}

impl Drop for CliRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn tasks_of(c: &Client) -> Vec<String> {
    let r: ListMaintenanceTasksResult = success(&c.list(Some(TICKET)).await);
    r.tasks_uids
}

fn start_cluster27(files: &Files) -> ServerProcess {
    let inventory = files.write("cluster-27.toml", &cluster27().toml());
    ServerProcess::start_with(
        inventory,
        &[
            "--heartbeat-timeout",
            "1s",
            "--settle-time",
            "500ms",
            "--ring-settle-time",
            &format!("{}ms", RING_WINDOW.as_millis()),
        ],
    )
}

fn all_ids() -> Vec<u32> {
    (1..=27).collect()
}

// ----- the tests ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_27_node_rolling_restart_stays_within_the_failure_model_and_finishes() {
    let files = Files::new();
    let server = start_cluster27(&files);
    let c = server.client(Some(TICKET)).await;
    let agents = Agents::start(&server, &all_ids(), files.path()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let checker = start_checker(
        c.clone(),
        cluster27(),
        Level::Weak,
        agents.world.clone(),
        stop.clone(),
    );

    let started = Instant::now();
    let exec = agents.exec();
    let run = CliRun::start(
        &server,
        &[
            "--all",
            "--mode",
            "weak",
            "--inflight",
            "3",
            "--task-uid",
            "rr-27",
            "--poll-interval",
            "200ms",
            "--up-timeout",
            "30s",
            "--progress",
            "lines",
            "--exec",
            &exec,
        ],
    );
    let done = run.finish().await;
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let report = checker.await.expect("the checker ends");

    assert!(
        done.status.success(),
        "the rollout failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        done.status,
        done.stdout,
        done.stderr
    );
    assert!(
        report.violations.is_empty(),
        "the failure model or a limit was broken:\n{}\nstdout:\n{}",
        report.violations.join("\n"),
        done.stdout
    );
    let restarts = agents.restarts();
    for id in all_ids() {
        assert_eq!(
            restarts.get(&id).copied().unwrap_or(0),
            1,
            "node {id} restarts: {restarts:?}\nstdout:\n{}",
            done.stdout
        );
    }
    assert!(agents.silent().is_empty(), "every node is back");
    assert!(
        done.stdout
            .contains("summary: 27 restarted, 0 failed, 0 skipped (of 27)"),
        "{}",
        done.stdout
    );
    for id in [1, 27] {
        for step in ["granted", "restarting", "up again", "completed"] {
            let line = format!("node {id} ({}): {step}", host(id));
            assert!(
                done.stdout.contains(&line),
                "no '{line}' in:\n{}",
                done.stdout
            );
        }
    }
    assert!(tasks_of(&c).await.is_empty(), "the task is gone");
    let op = c.get("rr-27").await;
    assert_eq!(status(&op), StatusCode::BadRequest, "{op:?}");
    // The checker saw the rollout use its room: several nodes at once, never past the limit.
    assert!(report.samples > 50, "{report:?}");
    assert!(report.max_locked >= 2, "{report:?}");
    assert!(report.max_unavailable <= 3, "{report:?}");
    eprintln!(
        "27-node rollout: {took:?}, {} samples, at most {} locked and {} unavailable at once",
        report.samples, report.max_locked, report.max_unavailable
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rollout_resumes_from_its_task_and_restarts_each_node_once() {
    let files = Files::new();
    let server = start_cluster27(&files);
    let c = server.client(Some(TICKET)).await;
    let agents = Agents::start(&server, &all_ids(), files.path()).await;
    let exec = agents.exec();
    let args = [
        "--tenant",
        TENANT,
        "--mode",
        "weak",
        "--inflight",
        "2",
        "--task-uid",
        "rr-resume",
        "--keep-task",
        "--poll-interval",
        "200ms",
        "--progress",
        "lines",
        "--exec",
        &exec,
    ];
    let tenant_nodes: Vec<u32> = cluster27()
        .nodes
        .iter()
        .filter(|n| n.dynamic)
        .map(|n| n.id)
        .collect();

    let first = CliRun::start(&server, &args);
    first
        .wait_for_lines(3, |l| l.ends_with(": completed"))
        .await;
    first.signal(rustix::process::Signal::INT);
    let first = first.finish().await;
    assert!(!first.status.success(), "an interrupt is not a success");
    assert!(
        first
            .stderr
            .contains("interrupted; task 'rr-resume' is kept"),
        "{first:?}"
    );
    assert!(
        first.stdout.contains("task 'rr-resume' is kept with"),
        "{}",
        first.stdout
    );
    let after_first = agents.restarts();
    let restarted_first: usize = after_first.values().map(|n| *n as usize).sum();
    assert!(
        (3..tenant_nodes.len()).contains(&restarted_first),
        "{after_first:?}"
    );
    assert!(
        after_first.values().all(|n| *n == 1),
        "each node at most once: {after_first:?}"
    );
    assert!(
        agents.silent().is_empty(),
        "the nodes in progress finished before the exit"
    );
    assert_eq!(tasks_of(&c).await, vec!["rr-resume".to_string()], "kept");

    let second = CliRun::start(&server, &args).finish().await;
    assert!(second.status.success(), "{second:?}");
    assert!(
        second.stdout.contains("resuming task 'rr-resume'"),
        "{}",
        second.stdout
    );
    let restarts = agents.restarts();
    for id in all_ids() {
        let want = u32::from(tenant_nodes.contains(&id));
        assert_eq!(
            restarts.get(&id).copied().unwrap_or(0),
            want,
            "node {id}: {restarts:?}\nfirst:\n{}\nsecond:\n{}",
            first.stdout,
            second.stdout
        );
    }
    assert!(tasks_of(&c).await.is_empty(), "the task is gone at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_comes_back_stalls_the_rollout_with_a_clear_message() {
    let files = Files::new();
    let server = start_cluster27(&files);
    let c = server.client(Some(TICKET)).await;
    let agents = Agents::start(&server, &all_ids(), files.path()).await;
    agents.world.lock().expect("world").stuck.insert(8);
    let exec = agents.exec();
    let started = Instant::now();
    let done = CliRun::start(
        &server,
        &[
            "--nodes",
            "8,9",
            "--task-uid",
            "rr-stall",
            "--up-timeout",
            "3s",
            "--poll-interval",
            "200ms",
            "--exec",
            &exec,
        ],
    )
    .finish()
    .await;
    assert!(!done.status.success(), "{done:?}");
    let want = format!(
        "node 8 ({}) was not seen up again within 3s after its restart command finished (waited for a heartbeat from its agent sent after the command finished, and for the arbiter to report it up; the arbiter says: ",
        host(8)
    );
    assert!(done.stderr.contains(&want), "{done:?}");
    assert!(
        done.stderr
            .contains("the rollout stops here; its lock is kept until"),
        "{done:?}"
    );
    assert!(
        done.stderr.contains("no heartbeat"),
        "the arbiter's view: {done:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped soon after the timeout"
    );
    let restarts = agents.restarts();
    assert_eq!(restarts.get(&8), Some(&1));
    assert_eq!(restarts.get(&9), None, "the rollout did not move on");
    let nodes = list_nodes(&c).await;
    let n8 = nodes.iter().find(|n| n.node_id == 8).expect("node 8");
    assert_eq!(n8.lock_task, "rr-stall", "node 8 keeps its lock: {n8:?}");
    assert_eq!(n8.state, ItemState::Maintenance as i32, "{n8:?}");
    assert_eq!(tasks_of(&c).await, vec!["rr-stall".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_command_is_retried_and_one_that_keeps_failing_stops_the_rollout() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let server = ServerProcess::start(inventory);
    let c = server.client(Some(TICKET)).await;
    let dir = files.path().display().to_string();
    let flaky = format!(
        "test -e {dir}/tried-{{id}} || {{ touch {dir}/tried-{{id}}; echo first try fails; exit 1; }}"
    );
    let done = CliRun::start(
        &server,
        &[
            "--nodes",
            "1,2",
            "--retries",
            "1",
            "--retry-delay",
            "100ms",
            "--poll-interval",
            "100ms",
            "--exec",
            &flaky,
        ],
    )
    .finish()
    .await;
    assert!(done.status.success(), "{done:?}");
    for id in [1, 2] {
        let line = format!(
            "node {id} (node-{id}.example): attempt 1 failed: the command exited with status 1; trying again in 100ms"
        );
        assert!(done.stdout.contains(&line), "{}", done.stdout);
        assert!(
            done.stdout
                .contains(&format!("node {id} (node-{id}.example) | first try fails")),
            "{}",
            done.stdout
        );
    }
    assert!(
        done.stdout.contains("summary: 2 restarted, 0 failed"),
        "{}",
        done.stdout
    );

    let done = CliRun::start(
        &server,
        &[
            "--nodes",
            "3,4",
            "--retries",
            "1",
            "--retry-delay",
            "100ms",
            "--task-uid",
            "rr-fail",
            "--exec",
            "exit 7",
        ],
    )
    .finish()
    .await;
    assert!(!done.status.success(), "{done:?}");
    assert!(
        done.stderr.contains(
            "node 3 (node-3.example): restart failed: the command exited with status 7 (attempt 2 of 2); the rollout stops here; its lock is kept until"
        ),
        "{done:?}"
    );
    assert!(
        done.stdout.contains("summary: 0 restarted, 1 failed"),
        "{}",
        done.stdout
    );
    let nodes = list_nodes(&c).await;
    assert_eq!(nodes[2].lock_task, "rr-fail", "node 3 keeps its lock");
    assert_eq!(tasks_of(&c).await, vec!["rr-fail".to_string()]);

    // With --keep-going the others go on; the failed node keeps its lock, the run fails.
    assert_eq!(status(&c.drop_task("rr-fail").await), StatusCode::Success);
    let done = CliRun::start(
        &server,
        &[
            "--nodes",
            "3-5",
            "--retries",
            "0",
            "--keep-going",
            "--task-uid",
            "rr-keep-going",
            "--poll-interval",
            "100ms",
            "--exec",
            "test {id} != 4",
        ],
    )
    .finish()
    .await;
    assert!(!done.status.success(), "{done:?}");
    assert!(
        done.stderr
            .contains("1 of 3 nodes were not restarted; the failed ones keep their locks in task 'rr-keep-going'"),
        "{done:?}"
    );
    assert!(
        done.stdout
            .contains("summary: 2 restarted, 1 failed, 0 skipped (of 3)"),
        "{}",
        done.stdout
    );
    assert_eq!(list_nodes(&c).await[3].lock_task, "rr-keep-going");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_every_wave_the_nodes_never_granted_and_an_estimate() {
    let files = Files::new();
    let server = start_cluster27(&files);
    let c = server.client(Some(TICKET)).await;
    // Another task holds node 19 (dc-3): in strong mode its mirror-3-dc group 1 (with nodes 1,
    // 2, 3) and its state-storage ring 0 have no room left while it does, so nodes 1-3 and the
    // replicas of other rings (2, 4) are never granted; 5 and 6 go one after the other.
    let r = c.create(arbiter_e2e::node_locks("other", &[19])).await;
    assert_eq!(status(&r), StatusCode::Success, "{r:?}");
    let done = CliRun::start(
        &server,
        &[
            "--storage",
            "--dc",
            "dc-1",
            "--dry-run",
            "--time-per-node",
            "2m",
        ],
    )
    .finish()
    .await;
    assert!(done.status.success(), "{done:?}");
    let out = &done.stdout;
    assert!(
        out.contains(
            "dry run: a rolling restart of 6 nodes in strong mode, priority 0, at most 1 at a time"
        ),
        "{out}"
    );
    let waves: Vec<&str> = out.lines().filter(|l| l.starts_with("wave ")).collect();
    assert_eq!(
        waves,
        vec![
            format!("wave 1: node 5 ({})", host(5)),
            format!("wave 2: node 6 ({})", host(6)),
        ],
        "{out}"
    );
    assert!(
        out.contains("never granted under the current state (4):"),
        "{out}"
    );
    for (id, blocker) in [
        (1, "node 19"),
        (2, ""),
        (3, "node 19"),
        (4, "state-storage rings"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("  node {id} ({}): ", host(id))))
            .unwrap_or_else(|| panic!("no reason for node {id} in:\n{out}"));
        assert!(line.contains(blocker), "the blocker is named: {line}");
    }
    assert!(
        out.contains("estimate: 2 waves x 2m (--time-per-node) = 4m"),
        "{out}"
    );

    // The same plan as JSON.
    let json = CliRun::start(
        &server,
        &["--storage", "--dc", "dc-1", "--dry-run", "-o", "json"],
    )
    .finish()
    .await;
    assert!(json.status.success(), "{json:?}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["waves"][0][0]["id"], 5, "{doc}");
    assert_eq!(doc["waves"][1][0]["id"], 6, "{doc}");
    assert_eq!(doc["blocked"].as_array().map(Vec::len), Some(4), "{doc}");
    assert_eq!(doc["estimate_seconds"], 600.0, "2 waves x 5m: {doc}");
    assert_eq!(
        tasks_of(&c).await,
        vec!["other".to_string()],
        "a dry run stores nothing"
    );
}

/// A planned wave is a set of nodes that start together; the rollout's "restarting" lines, in
/// order, give the real ones (with `--inflight 1`, one node each).
fn restarted_in_order(stdout: &str) -> Vec<Vec<u32>> {
    stdout
        .lines()
        .filter(|l| l.ends_with("): restarting"))
        .filter_map(|l| l.strip_prefix("node ")?.split(' ').next()?.parse().ok())
        .map(|id| vec![id])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planned_waves_are_the_waves_the_real_rollout_takes() {
    // Windows chosen so that the order of events does not depend on the test machine's speed:
    // settle (300 ms) < ring window (800 ms) < one node's restart (over 1.3 s of silence).
    let files = Files::new();
    let inventory = files.write("cluster-27.toml", &cluster27().toml());
    let server = ServerProcess::start_with(
        inventory,
        &[
            "--heartbeat-timeout",
            "1s",
            "--settle-time",
            "300ms",
            "--ring-settle-time",
            "800ms",
        ],
    );
    let agents = Agents::start(&server, &all_ids(), files.path()).await;
    let common = [
        "--storage",
        "--mode",
        "strong",
        "--inflight",
        "1",
        "--task-uid",
        "rr-plan",
    ];
    let mut dry: Vec<&str> = common.to_vec();
    dry.extend(["--dry-run", "--time-per-node", "2s", "-o", "json"]);
    let planned = CliRun::start(&server, &dry).finish().await;
    assert!(planned.status.success(), "{planned:?}");
    let doc: serde_json::Value = serde_json::from_str(&planned.stdout).expect("JSON");
    let waves: Vec<Vec<u32>> = doc["waves"]
        .as_array()
        .expect("waves")
        .iter()
        .map(|w| {
            w.as_array()
                .expect("a wave")
                .iter()
                .map(|n| u32::try_from(n["id"].as_u64().expect("id")).expect("small"))
                .collect()
        })
        .collect();
    assert_eq!(doc["blocked"].as_array().map(Vec::len), Some(0), "{doc}");
    assert_eq!(waves.len(), 18, "one node a wave: {doc}");
    assert_eq!(doc["estimate_seconds"].as_f64(), Some(36.0), "{doc}");

    let exec = agents.exec();
    let mut real: Vec<&str> = common.to_vec();
    real.extend([
        "--poll-interval",
        "100ms",
        "--up-timeout",
        "30s",
        "--progress",
        "lines",
        "--exec",
        &exec,
    ]);
    let done = CliRun::start(&server, &real).finish().await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        restarted_in_order(&done.stdout),
        waves,
        "the real rollout took other waves than planned\nplan: {doc}\nstdout:\n{}",
        done.stdout
    );
}
