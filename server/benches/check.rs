//! The cost of one check, on clusters of 1k, 10k and 100k nodes.
//!
//! Each cluster has 4 pdisks per node with one vdisk on each (4 vdisks per node). Half of the
//! nodes, in runs of 8, carry 4 block-4-2 groups per run (group `g` of a run lives on pdisk `g` of
//! each of its 8 nodes); the other half, in runs of 9 (3 nodes in each of dc-1, dc-2, dc-3),
//! carry 4 mirror-3-dc groups per run the same way. A handful of leftover nodes carry no group.
//! The state storage has 9 rings of one node each (`nto_select = 9`) and a `HIVE` system tablet
//! runs on those 9 nodes; the limits are YDB's defaults (13% of the nodes).
//!
//! The state, built outside the timed loop: 1% of the nodes are locked by performed strong-mode
//! tasks (the first node of evenly spread runs, so no two share a group), and 1,000 pending
//! tasks, all at priority 0, each wanting one of those locked nodes in turn (so they stay
//! pending, and want 10, 100 and 1,000 distinct nodes at 1k, 10k and 100k nodes).
//!
//! Timed: one `State::create` dry run (a dry run runs the full check and changes nothing, so every
//! iteration sees the same state; the request is cloned outside the timing):
//! - `check/single_node/N`: a strong-mode lock of one free node (a state-storage replica and a
//!   `HIVE` node, so every rule runs), at priority 0: the pending tasks have the same priority,
//!   so the check reserves nothing for them.
//! - `check/hundred_groups/N`: a strong-mode task of 100 single-node groups, on free nodes of 100
//!   distinct runs, at priority 0.
//! - `check/single_node_behind_pending/N`: the single-node lock at priority 1, so that the 1,000
//!   pending priority-0 tasks are all strictly more important and the check reserves what they
//!   want first. Its cost follows the pending actions and the distinct nodes they want, which
//!   grow with the cluster here (see the state above), not the cluster's size as such.
//!
//! Every timed request is asserted, once, to be granted in full.

use arbiter_server::engine::inventory::{self, Format};
use arbiter_server::engine::{LockRequest, Mode, NodeId, Scope, State, TaskRequest, Timestamp};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_main};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cluster sizes, in nodes.
const SIZES: [u32; 3] = [1_000, 10_000, 100_000];
/// Pending tasks in every state.
const PENDING_TASKS: usize = 1_000;
/// Groups per run of nodes (one per pdisk): 4 vdisks per node.
const GROUPS_PER_RUN: u32 = 4;
/// 2026-01-01T00:00:00Z.
const NOW: Timestamp = Timestamp(1_767_225_600_000);

/// A generated cluster: its inventory text and the node runs that share groups.
struct Layout {
    json: String,
    /// Nodes that share storage groups, in id order.
    runs: Vec<Vec<NodeId>>,
}

/// Generates the inventory of a cluster of `n` nodes.
fn layout(n: u32) -> Layout {
    let block_nodes = (n / 2) / 8 * 8;
    let mirror_nodes = (n - block_nodes) / 9 * 9;
    let mut runs: Vec<Vec<NodeId>> = Vec::new();
    let mut dc_of = vec![0u32; n as usize + 1];
    for start in (1..=block_nodes).step_by(8) {
        let run: Vec<NodeId> = (start..start + 8).collect();
        for id in &run {
            dc_of[*id as usize] = id % 3;
        }
        runs.push(run);
    }
    for start in (block_nodes + 1..=block_nodes + mirror_nodes).step_by(9) {
        let run: Vec<NodeId> = (start..start + 9).collect();
        for (k, id) in run.iter().enumerate() {
            dc_of[*id as usize] = u32::try_from(k / 3).expect("small");
        }
        runs.push(run);
    }
    for id in block_nodes + mirror_nodes + 1..=n {
        dc_of[id as usize] = id % 3;
    }

    // Written as text: building a `serde_json::Value` tree of 100k nodes takes seconds.
    let mut json = String::with_capacity(n as usize * 400);
    json.push_str(
        r#"{"defaults":{"lock_duration":"10m","retry_after":"1m"},"limits":{"max_unavailable_ratio":13},"nodes":["#,
    );
    for id in 1..=n {
        if id > 1 {
            json.push(',');
        }
        let dc = dc_of[id as usize] + 1;
        write!(
            json,
            r#"{{"id":{id},"host":"host-{id}","port":19001,"data_center":"dc-{dc}","pdisks":["#
        )
        .expect("write to a string");
        for p in 1..=GROUPS_PER_RUN {
            let sep = if p > 1 { "," } else { "" };
            write!(json, r#"{sep}{{"id":{p},"path":"/dev/disk{p}"}}"#).expect("write to a string");
        }
        json.push_str("]}");
    }
    json.push_str(r#"],"storage_groups":["#);
    for (r, run) in runs.iter().enumerate() {
        let erasure = if run.len() == 8 {
            "block-4-2"
        } else {
            "mirror-3-dc"
        };
        for p in 1..=GROUPS_PER_RUN {
            let id = u32::try_from(r).expect("small") * GROUPS_PER_RUN + p;
            let sep = if r > 0 || p > 1 { "," } else { "" };
            write!(json, r#"{sep}{{"id":{id},"erasure":"{erasure}","vdisks":["#)
                .expect("write to a string");
            for (k, node) in run.iter().enumerate() {
                let sep = if k > 0 { "," } else { "" };
                write!(json, r#"{sep}{{"node":{node},"pdisk":{p}}}"#).expect("write to a string");
            }
            json.push_str("]}");
        }
    }
    let replicas = replica_nodes(&runs, &locked_runs(&runs, n));
    let list = |ids: &[NodeId], each: fn(NodeId) -> String| {
        ids.iter().map(|i| each(*i)).collect::<Vec<_>>().join(",")
    };
    write!(
        json,
        r#"],"state_storage":{{"nto_select":{},"rings":[{}]}},"sys_tablets":[{{"type":"HIVE","nodes":[{}]}}]}}"#,
        replicas.len(),
        list(&replicas, |i| format!("[{i}]")),
        list(&replicas, |i| i.to_string()),
    )
    .expect("write to a string");
    Layout { json, runs }
}

/// The runs whose first node is locked: 1% of the nodes, spread evenly over the runs.
fn locked_runs(runs: &[Vec<NodeId>], n: u32) -> Vec<usize> {
    let locks = (n / 100) as usize;
    let stride = runs.len() / locks;
    assert!(stride >= 2, "too few runs for {locks} locks");
    (0..locks).map(|i| i * stride).collect()
}

/// Runs with no locked node, in order.
fn free_runs(runs: &[Vec<NodeId>], locked: &[usize]) -> Vec<usize> {
    (0..runs.len()).filter(|r| !locked.contains(r)).collect()
}

/// Picks `k` of `items`, spread evenly.
fn spread<T: Copy>(items: &[T], k: usize) -> Vec<T> {
    assert!(items.len() >= k, "{} items, {k} wanted", items.len());
    (0..k).map(|i| items[i * items.len() / k]).collect()
}

/// The 9 state-storage replicas: the third node of 9 evenly spread free runs.
fn replica_nodes(runs: &[Vec<NodeId>], locked: &[usize]) -> Vec<NodeId> {
    spread(&free_runs(runs, locked), 9)
        .into_iter()
        .map(|r| runs[r][2])
        .collect()
}

/// One state of the benchmark and the requests it times.
struct Setup {
    state: State,
    single: TaskRequest,
    single_behind: TaskRequest,
    hundred: TaskRequest,
}

fn request(uid: &str, mode: Mode, priority: i32, dry_run: bool, nodes: &[NodeId]) -> TaskRequest {
    TaskRequest {
        uid: uid.to_owned(),
        owner: String::from("bench"),
        description: String::new(),
        mode,
        priority,
        dry_run,
        override_holds: false,
        groups: nodes
            .iter()
            .map(|n| {
                vec![LockRequest {
                    scope: Scope::Node(*n),
                    duration: None,
                    kind: Default::default(),
                }]
            })
            .collect(),
    }
}

fn setup(n: u32) -> Setup {
    let started = Instant::now();
    let Layout { json, runs } = layout(n);
    let generated = started.elapsed();
    let cluster = inventory::parse(&json, Format::Json).expect("the generated inventory loads");
    drop(json);
    let parsed = started.elapsed();
    let mut state = State::new(Arc::new(cluster));

    let locked = locked_runs(&runs, n);
    let locked_nodes: Vec<NodeId> = locked.iter().map(|r| runs[*r][0]).collect();
    for (i, node) in locked_nodes.iter().enumerate() {
        let out = state
            .create(
                request(&format!("lock-{i}"), Mode::Strong, 0, false, &[*node]),
                NOW,
            )
            .expect("lock task");
        assert!(
            out.value.groups[0].actions[0].is_performed(),
            "node {node} not locked: {}",
            out.value.groups[0].actions[0].details()
        );
    }
    for i in 0..PENDING_TASKS {
        let node = locked_nodes[i % locked_nodes.len()];
        let out = state
            .create(
                request(&format!("pending-{i}"), Mode::Strong, 0, false, &[node]),
                NOW,
            )
            .expect("pending task");
        assert!(!out.value.groups[0].actions[0].is_performed());
    }
    assert_eq!(state.lock_count(), locked_nodes.len());

    // The single node: the middle state-storage replica (a HIVE node too).
    let replicas = replica_nodes(&runs, &locked);
    let single_node = replicas[replicas.len() / 2];
    // The hundred: the second node of 100 evenly spread free runs (no replicas among them).
    let hundred_nodes: Vec<NodeId> = spread(&free_runs(&runs, &locked), 100)
        .into_iter()
        .map(|r| runs[r][1])
        .collect();
    let setup = Setup {
        single: request("bench-single", Mode::Strong, 0, true, &[single_node]),
        single_behind: request("bench-behind", Mode::Strong, 1, true, &[single_node]),
        hundred: request("bench-hundred", Mode::Strong, 0, true, &hundred_nodes),
        state,
    };
    let mut state = setup.state.clone();
    for req in [&setup.single, &setup.single_behind, &setup.hundred] {
        let out = state.create(req.clone(), NOW).expect("dry run");
        for a in out.value.groups.iter().flat_map(|g| &g.actions) {
            assert!(
                a.is_performed(),
                "{}: {} not granted: {}",
                req.uid,
                a.scope,
                a.details()
            );
        }
    }
    eprintln!(
        "setup of {n} nodes: inventory generated in {generated:?}, parsed by {parsed:?}, \
         state ready by {:?} ({} locks, {PENDING_TASKS} pending tasks)",
        started.elapsed(),
        locked_nodes.len(),
    );
    setup
}

/// Times one dry-run `create` of `req` on `state`.
fn time_create(
    c: &mut Criterion,
    name: &str,
    setups: &mut [(u32, Setup)],
    req: fn(&Setup) -> &TaskRequest,
) {
    let mut group = c.benchmark_group(name);
    for (n, s) in setups.iter_mut() {
        let req = req(s).clone();
        let state = &mut s.state;
        group.bench_function(BenchmarkId::from_parameter(*n), |b| {
            b.iter_batched(
                || req.clone(),
                |r| black_box(state.create(r, NOW).expect("dry run")),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn bench_check(c: &mut Criterion) {
    let mut setups: Vec<(u32, Setup)> = SIZES.iter().map(|n| (*n, setup(*n))).collect();
    time_create(c, "check/single_node", &mut setups, |s| &s.single);
    time_create(c, "check/hundred_groups", &mut setups, |s| &s.hundred);
    time_create(c, "check/single_node_behind_pending", &mut setups, |s| {
        &s.single_behind
    });
}

/// The benchmark harness: what `criterion_group!` would generate, with a doc comment, and a
/// configuration modest enough for a 2-core machine.
pub fn benches() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_check(&mut c);
}

criterion_main!(benches);
