//! Property tests: random inventories and random operation sequences, checked after every step
//! by a deliberately simple oracle that shares no code with the engine's check. It knows the
//! cluster from the spec it generated (not from the engine), and it only looks at what the
//! engine reports: the tasks and their performed actions.
//!
//! Invariants checked:
//! - exclusivity: no node and no disk has two live locks (a node lock covers its disks);
//! - fencing: every new grant's token is greater than every token issued before;
//! - safety: every non-force grant of an up node kept the limits, every storage group it
//!   touched, the state-storage rings and the system tablets within its mode, counting
//!   everything unavailable at that moment (down nodes, live locks, earlier grants of the step);
//! - a refused command changes nothing;
//! - liveness: a node whose agent has sent heartbeats counts as unavailable from the release of
//!   its lock until its next heartbeat (or until it is marked up);
//! - silent is not down: a node whose agent went silent (heartbeat timeout), like a restarting
//!   one, counts as unavailable for every other grant, but a grant on it is checked as if it
//!   were up; only a node known down (the inventory, an operator) is lockable unchecked;
//! - freezes (cluster, tenant "/t", data centers; with or without an expiry): no new grant, in
//!   any mode, touches a node in the scope of a freeze that holds (until lifted, or while its
//!   end is after `now`); freeze on/off are accepted exactly when the oracle expects (a scope is
//!   frozen once; lifted by whoever froze it or an admin with force); the engine's freezes are
//!   the oracle's after every step, a restart included;
//! - releases keep working whatever holds: complete and drop are never refused, and no live lock
//!   is past its deadline after a step (expiry);
//! - maintenance windows (zone UTC, daily or on some weekdays, wrapping past midnight or not,
//!   cutting or not, on listed nodes, a data center, the tenant or all): a node with windows is
//!   granted only while one of them is open; a lock's deadline is its requested length, cut to
//!   the latest end of its node's open windows when they all cut (the earliest over its nodes);
//!   a node known down is neither gated nor cut by its windows;
//! - pending details tell the truth: a freeze they name holds now on one of the action's nodes,
//!   and a node they call outside its windows is the action's and has none open now;
//! - rate budgets (`max_grants`, cluster and tenant): the node-grants made in the last `every`
//!   (a node lock one, a host lock each of its nodes, a disk lock its node; every mode; a node
//!   known down is not counted) never exceed `count`, restarts included;
//! - fairness: no grant takes a node or disk that an older task of the same priority waits
//!   for once that task has been pending past the aging threshold (10m), unless a freeze or a
//!   closed window holds that task back.

use arbiter_server::engine::cluster::PDiskKey;
use arbiter_server::engine::freeze::{FreezeScope, Lifter};
use arbiter_server::engine::inventory::{self, Format};
use arbiter_server::engine::{
    HealthConfig, Heartbeat, LockRequest, Mode, Scope, Snapshot, State, TaskRequest, TaskView,
    Timestamp,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

// ----- the generated cluster (the oracle's own model) ------------------------------------

#[derive(Debug, Clone)]
struct NodeSpec {
    id: u32,
    host: String,
    dc: u32,
    tenant: bool,
    pdisks: u32,
    down: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Er {
    Block42,
    Mirror3,
    Mirror3Dc,
    Quorum,
    None,
}

#[derive(Debug, Clone)]
struct GroupSpec {
    erasure: Er,
    /// (node, pdisk) per member.
    members: Vec<(u32, u32)>,
}

/// Which nodes a maintenance window covers.
#[derive(Debug, Clone)]
enum WinScope {
    All,
    Tenant,
    Dc(u32),
    Nodes(Vec<u32>),
}

/// A maintenance window in zone UTC, so that the oracle computes it on the millisecond clock.
#[derive(Debug, Clone)]
struct WindowSpec {
    /// Minutes after midnight UTC.
    start: u32,
    /// Minutes after midnight UTC (up to 1440); at or before `start`: the next day.
    end: u32,
    /// Open days, Monday first (`None`: every day).
    days: Option<[bool; 7]>,
    cut: bool,
    scope: WinScope,
}

const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;

impl WindowSpec {
    fn covers(&self, n: &NodeSpec) -> bool {
        match &self.scope {
            WinScope::All => true,
            WinScope::Tenant => n.tenant,
            WinScope::Dc(d) => n.dc == *d,
            WinScope::Nodes(ns) => ns.contains(&n.id),
        }
    }

    /// The end of the occurrence open at `t` (milliseconds since the epoch), if one is. An
    /// occurrence opens on a listed UTC day at `start` and closes at `end` that day, or the next
    /// day when it wraps. The generated windows never chain (no 00:00-24:00).
    fn open_until(&self, t: u64) -> Option<u64> {
        let today = t / DAY_MS;
        (today.saturating_sub(1)..=today).find_map(|d| {
            // 1970-01-01 was a Thursday (3 with Monday as 0).
            let listed = self.days.is_none_or(|days| days[((d + 3) % 7) as usize]);
            let open = d * DAY_MS + u64::from(self.start) * MINUTE_MS;
            let close_day = if self.end <= self.start { d + 1 } else { d };
            let close = close_day * DAY_MS + u64::from(self.end) * MINUTE_MS;
            (listed && open <= t && t < close).then_some(close)
        })
    }
}

/// A rate budget: at most `count` node-grants in any `every_secs`.
#[derive(Debug, Clone, Copy)]
struct Budget {
    count: u32,
    every_secs: u64,
}

#[derive(Debug, Clone)]
struct Spec {
    nodes: Vec<NodeSpec>,
    groups: Vec<GroupSpec>,
    abs: u32,
    ratio: u32,
    tenant_ratio: u32,
    rings: Vec<Vec<u32>>,
    tablet: Vec<u32>,
    windows: Vec<WindowSpec>,
    /// `[limits] max_grants`.
    budget: Option<Budget>,
    /// `[tenants."/t"] max_grants`.
    tenant_budget: Option<Budget>,
}

impl Spec {
    fn to_toml(&self) -> String {
        let mut s = String::new();
        let budget = |b: &Option<Budget>| match b {
            Some(b) => format!(
                "max_grants = {{ count = {}, every = \"{}s\" }}\n",
                b.count, b.every_secs
            ),
            None => String::new(),
        };
        writeln!(
            s,
            "[limits]\nmax_unavailable_nodes = {}\nmax_unavailable_ratio = {}\n{}",
            self.abs,
            self.ratio,
            budget(&self.budget)
        )
        .ok();
        writeln!(
            s,
            "[tenants.\"/t\"]\nmax_unavailable_ratio = {}\n{}",
            self.tenant_ratio,
            budget(&self.tenant_budget)
        )
        .ok();
        for n in &self.nodes {
            writeln!(
                s,
                "[[nodes]]\nid = {}\nhost = \"{}\"\ndata_center = \"dc{}\"",
                n.id, n.host, n.dc
            )
            .ok();
            if n.tenant {
                writeln!(s, "tenant = \"/t\"").ok();
            }
            if n.down {
                writeln!(s, "state = \"down\"").ok();
            }
            let pds: Vec<String> = (1..=n.pdisks)
                .map(|p| format!("{{ id = {p}, path = \"/dev/n{}p{p}\" }}", n.id))
                .collect();
            writeln!(s, "pdisks = [{}]", pds.join(", ")).ok();
        }
        for (i, g) in self.groups.iter().enumerate() {
            let e = match g.erasure {
                Er::Block42 => "block-4-2",
                Er::Mirror3 => "mirror-3",
                Er::Mirror3Dc => "mirror-3-dc",
                Er::Quorum => "quorum",
                Er::None => "none",
            };
            let v: Vec<String> = g
                .members
                .iter()
                .map(|(n, p)| format!("{{ node = {n}, pdisk = {p} }}"))
                .collect();
            writeln!(
                s,
                "[[storage_groups]]\nid = {}\nerasure = \"{e}\"\nvdisks = [{}]",
                i + 1,
                v.join(", ")
            )
            .ok();
        }
        if !self.rings.is_empty() {
            let rings: Vec<String> = self
                .rings
                .iter()
                .map(|r| {
                    format!(
                        "[{}]",
                        r.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            writeln!(
                s,
                "[state_storage]\nnto_select = {}\nrings = [{}]",
                self.rings.len(),
                rings.join(", ")
            )
            .ok();
        }
        if !self.tablet.is_empty() {
            let t: Vec<String> = self.tablet.iter().map(u32::to_string).collect();
            writeln!(
                s,
                "[[sys_tablets]]\ntype = \"HIVE\"\nnodes = [{}]",
                t.join(", ")
            )
            .ok();
        }
        for (i, w) in self.windows.iter().enumerate() {
            let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
            writeln!(
                s,
                "[[windows]]\nname = \"w{i}\"\nzone = \"UTC\"\nstart = \"{}\"\nend = \"{}\"",
                hhmm(w.start),
                hhmm(w.end)
            )
            .ok();
            if let Some(days) = w.days {
                let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let listed: Vec<String> = (0..7)
                    .filter(|d| days[*d])
                    .map(|d| format!("\"{}\"", names[d]))
                    .collect();
                writeln!(s, "days = [{}]", listed.join(", ")).ok();
            }
            if !w.cut {
                writeln!(s, "cut = false").ok();
            }
            match &w.scope {
                WinScope::All => {}
                WinScope::Tenant => {
                    writeln!(s, "tenant = \"/t\"").ok();
                }
                WinScope::Dc(d) => {
                    writeln!(s, "data_center = \"dc{d}\"").ok();
                }
                WinScope::Nodes(ns) => {
                    let l: Vec<String> = ns.iter().map(u32::to_string).collect();
                    writeln!(s, "nodes = [{}]", l.join(", ")).ok();
                }
            }
        }
        s
    }

    fn node(&self, id: u32) -> &NodeSpec {
        &self.nodes[(id - 1) as usize]
    }
}

/// Picks `k` distinct members from `pool` starting at `offset`, one vdisk each.
fn members(pool: &[u32], offset: usize, k: usize, spec_nodes: &[NodeSpec]) -> Vec<(u32, u32)> {
    (0..k)
        .map(|i| {
            let n = pool[(offset + i) % pool.len()];
            let pd = 1 + (offset as u32 + i as u32) % spec_nodes[(n - 1) as usize].pdisks;
            (n, pd)
        })
        .collect()
}

/// A window's daily times (start, end), in minutes: the clock starts at 00:00 on a Thursday and
/// advances by seconds to hours, so these open and close during a case.
const WINDOW_TIMES: [(u32, u32); 8] = [
    (0, 45),
    (10, 240),
    (1430, 60),
    (1439, 4),
    (0, 180),
    (30, 1440),
    (1320, 120),
    (60, 1200),
];

fn windows_of(n: u32, seed: u64) -> Vec<WindowSpec> {
    let mut rng = seed;
    let mut next = move |m: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % m
    };
    let count = [0, 0, 1, 1, 1, 2][next(6) as usize];
    (0..count)
        .map(|_| {
            let (start, end) = WINDOW_TIMES[next(WINDOW_TIMES.len() as u64) as usize];
            let days = match next(10) {
                // Wednesday only: of a window that wraps, only Thursday's early hours.
                0 => Some([false, false, true, false, false, false, false]),
                1 => Some([false, false, false, true, true, false, false]),
                2 => Some([true, true, true, false, true, true, true]),
                _ => None,
            };
            let scope = match next(6) {
                0 => WinScope::All,
                1 => WinScope::Tenant,
                2 | 3 => WinScope::Dc(next(3) as u32),
                _ => {
                    let k = 2 + next(4);
                    let set: BTreeSet<u32> =
                        (0..k).map(|_| 1 + next(u64::from(n)) as u32).collect();
                    WinScope::Nodes(set.into_iter().collect())
                }
            };
            WindowSpec {
                start,
                end,
                days,
                cut: next(2) == 0,
                scope,
            }
        })
        .collect()
}

fn budget_strategy(
    counts: std::ops::RangeInclusive<u32>,
    secs: std::ops::Range<u64>,
) -> impl Strategy<Value = Option<Budget>> {
    prop_oneof![
        3 => Just(None),
        1 => (counts, secs).prop_map(|(count, every_secs)| Some(Budget { count, every_secs })),
    ]
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        9u32..=20,
        any::<u64>(),
        0usize..3,
        0usize..4,
        0usize..3,
        any::<u64>(),
        budget_strategy(2..=6, 60..1200),
        budget_strategy(1..=3, 60..600),
    )
        .prop_map(|(n, seed, lim, rings, tab, wseed, budget, tenant_budget)| {
            let mut rng = seed;
            let mut next = move |m: u64| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) % m
            };
            let nodes: Vec<NodeSpec> = (1..=n)
                .map(|id| NodeSpec {
                    id,
                    // Every fourth node shares a host with the one before it.
                    host: format!("h{}", if id % 4 == 0 { id - 1 } else { id }),
                    dc: id % 3,
                    tenant: id > n - 4,
                    pdisks: 1 + (next(2) as u32),
                    down: next(10) == 0,
                })
                .collect();
            let all: Vec<u32> = (1..=n).collect();
            let mut groups = Vec::new();
            for g in 0..(3 + next(5) as usize) {
                let off = next(u64::from(n)) as usize;
                let er = [
                    Er::Block42,
                    Er::Mirror3,
                    Er::Mirror3Dc,
                    Er::Quorum,
                    Er::None,
                ][next(5) as usize];
                let ms = match er {
                    Er::Block42 => members(&all, off, 8, &nodes),
                    Er::Mirror3 => members(&all, off, 3, &nodes),
                    Er::Quorum => members(&all, off, 3 + 2 * (g % 2), &nodes),
                    Er::None => members(&all, off, 1, &nodes),
                    Er::Mirror3Dc => {
                        // One member in each data center: nodes off, off+1, off+2 have distinct dc.
                        let start = off as u32 % (n - 2);
                        members(&[start + 1, start + 2, start + 3], 0, 3, &nodes)
                    }
                };
                // Skip a group that would put two vdisks on one pdisk.
                let distinct: BTreeSet<_> = ms.iter().collect();
                if distinct.len() == ms.len() {
                    groups.push(GroupSpec {
                        erasure: er,
                        members: ms,
                    });
                }
            }
            let (abs, ratio) = [(0, 0), (0, 30), (3, 0)][lim];
            let ring_nodes: Vec<Vec<u32>> = (0..[0, 3, 5, 5][rings])
                .map(|r| vec![r as u32 + 1])
                .collect();
            let tablet: Vec<u32> = match tab {
                0 => Vec::new(),
                1 => vec![2, 3, 4],
                _ => vec![1, 2, 3, 4, 5, 6],
            };
            Spec {
                nodes,
                groups,
                abs,
                ratio,
                tenant_ratio: [0, 50][lim % 2],
                rings: ring_nodes,
                tablet,
                windows: windows_of(n, wseed),
                budget,
                tenant_budget,
            }
        })
}

// ----- operations --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Create {
        mode: u8,
        priority: i32,
        composite: bool,
        targets: Vec<(u8, u32)>,
    },
    Refresh(usize),
    Complete(usize, usize),
    Drop(usize),
    Advance(u64),
    Node(u32, bool),
    Heartbeat(u32),
    Restart,
    /// Freeze scope `scope` (see [`freeze_scope`]) as user `by`, for `secs` or until lifted.
    FreezeOn {
        scope: u8,
        by: u8,
        secs: Option<u64>,
    },
    /// Lift the freeze of `scope` (5 and above: the `scope - 5`th of those frozen now, if any)
    /// as lifter `who` (see [`lifter`]).
    FreezeOff {
        scope: u8,
        who: u8,
    },
}

/// The freeze scopes the ops use: 0 the cluster, 1 tenant "/t", 2..=4 data centers dc0..dc2.
fn freeze_scope(i: u8) -> FreezeScope {
    match i % 5 {
        0 => FreezeScope::Cluster,
        1 => FreezeScope::Tenant("/t".into()),
        d => FreezeScope::DataCenter(format!("dc{}", d - 2)),
    }
}

fn freezes_node(i: u8, n: &NodeSpec) -> bool {
    match i % 5 {
        0 => true,
        1 => n.tenant,
        d => n.dc == u32::from(d - 2),
    }
}

const FREEZERS: [&str; 2] = ["alice", "bob"];

/// 0: alice, 1: bob (neither an admin), 2: root (an admin) without force, 3: root with force.
fn lifter(who: u8) -> Lifter<'static> {
    match who % 4 {
        w @ (0 | 1) => Lifter {
            user: FREEZERS[usize::from(w)],
            admin: false,
            force: false,
        },
        w => Lifter {
            user: "root",
            admin: true,
            force: w == 3,
        },
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, prop::sample::select(vec![-10, 0, 0, 10]), any::<bool>(),
              prop::collection::vec((0u8..6, 1u32..=20), 1..4))
            .prop_map(|(mode, priority, composite, targets)| Op::Create { mode, priority, composite, targets }),
        4 => any::<usize>().prop_map(Op::Refresh),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(t, a)| Op::Complete(t, a)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (1u64..400).prop_map(Op::Advance),
        // Across window boundaries.
        1 => (600u64..14_400).prop_map(Op::Advance),
        2 => (1u32..=20, any::<bool>()).prop_map(|(n, up)| Op::Node(n, up)),
        2 => (1u32..=20).prop_map(Op::Heartbeat),
        1 => Just(Op::Restart),
        1 => (prop::sample::select(vec![0u8, 1, 1, 2, 3, 4]), prop::sample::select(vec![0u8, 0, 0, 1]),
              prop::option::weighted(0.8, 1u64..300))
            .prop_map(|(scope, by, secs)| Op::FreezeOn { scope, by, secs }),
        2 => (0u8..12, prop::sample::select(vec![0u8, 0, 0, 1, 2, 3]))
            .prop_map(|(scope, who)| Op::FreezeOff { scope, who }),
    ]
}

// ----- the oracle --------------------------------------------------------------------------

/// What one live lock takes, in the oracle's own terms.
enum Took {
    Nodes(Vec<u32>),
    Disk(u32, u32),
}

fn took(spec: &Spec, scope: &Scope) -> Took {
    match scope {
        Scope::Node(n) => Took::Nodes(vec![*n]),
        Scope::Host(h) => Took::Nodes(
            spec.nodes
                .iter()
                .filter(|n| &n.host == h)
                .map(|n| n.id)
                .collect(),
        ),
        Scope::PDisk(k) => Took::Disk(k.node, k.pdisk),
        Scope::PDiskPath { .. } => unreachable!("not generated"),
    }
}

/// Whether two locks take a common node or disk (a node lock takes its disks).
fn overlaps(a: &Took, b: &Took) -> bool {
    match (a, b) {
        (Took::Nodes(x), Took::Nodes(y)) => x.iter().any(|n| y.contains(n)),
        (Took::Nodes(x), Took::Disk(n, _)) | (Took::Disk(n, _), Took::Nodes(x)) => x.contains(n),
        (Took::Disk(n, p), Took::Disk(m, q)) => n == m && p == q,
    }
}

/// The aging threshold the generated inventories leave at its default.
const AGING: Duration = Duration::from_secs(600);

/// Everything unavailable, as the oracle counts it.
#[derive(Clone, Default)]
struct Unavail {
    /// Nodes that are down or locked whole.
    nodes_out: BTreeSet<u32>,
    /// Disks locked alone.
    disks_out: BTreeSet<(u32, u32)>,
    /// Nodes counted against the limits: down, locked whole, or with a locked disk.
    limit_nodes: BTreeSet<u32>,
}

impl Unavail {
    fn add(&mut self, t: &Took) {
        match t {
            Took::Nodes(ns) => {
                for n in ns {
                    self.nodes_out.insert(*n);
                    self.limit_nodes.insert(*n);
                }
            }
            Took::Disk(n, p) => {
                self.disks_out.insert((*n, *p));
                self.limit_nodes.insert(*n);
            }
        }
    }

    fn member_out(&self, (n, p): (u32, u32)) -> bool {
        self.nodes_out.contains(&n) || self.disks_out.contains(&(n, p))
    }
}

fn group_tolerates(g: &GroupSpec, mode: Mode, u: &Unavail) -> bool {
    let out: Vec<usize> = (0..g.members.len())
        .filter(|i| u.member_out(g.members[*i]))
        .collect();
    let k = out.len();
    let m = g.members.len();
    let weak = match g.erasure {
        Er::None => 0,
        Er::Block42 | Er::Mirror3 => 2,
        Er::Quorum => (m - 1) / 2,
        Er::Mirror3Dc => 3, // one member per DC here: any two DCs, never all three
    };
    let limit = match mode {
        Mode::Strong => weak.min(1),
        Mode::Weak | Mode::Smart => weak,
        Mode::Force => usize::MAX,
    };
    if g.erasure == Er::Mirror3Dc && mode != Mode::Strong {
        return k < 3;
    }
    k <= limit
}

fn limits_ok(spec: &Spec, before: &Unavail, after: &Unavail) -> bool {
    let within = |abs: u32, ratio: u32, nodes: &dyn Fn(u32) -> bool| {
        let total = spec.nodes.iter().filter(|n| nodes(n.id)).count() as u64;
        let b = before.limit_nodes.iter().filter(|n| nodes(**n)).count() as u64;
        let a = after.limit_nodes.iter().filter(|n| nodes(**n)).count() as u64;
        a == b
            || b == 0
            || ((abs == 0 || a <= u64::from(abs))
                && (ratio == 0 || a * 100 <= total * u64::from(ratio)))
    };
    within(spec.abs, spec.ratio, &|_| true)
        && within(0, spec.tenant_ratio, &|n| spec.node(n).tenant)
}

fn rings_ok(spec: &Spec, mode: Mode, u: &Unavail) -> bool {
    if spec.rings.is_empty() {
        return true;
    }
    let bad = spec
        .rings
        .iter()
        .filter(|r| r.iter().any(|n| u.nodes_out.contains(n)))
        .count();
    let allowed = match mode {
        Mode::Strong => 1,
        _ => (spec.rings.len() - 1) / 2,
    };
    bad <= allowed.max(if mode == Mode::Strong { 1 } else { 0 })
}

fn tablets_ok(spec: &Spec, mode: Mode, u: &Unavail) -> bool {
    if spec.tablet.is_empty() {
        return true;
    }
    let n = spec.tablet.len();
    let d = spec
        .tablet
        .iter()
        .filter(|x| u.nodes_out.contains(x))
        .count();
    match mode {
        Mode::Strong => d * 2 <= n,
        _ => d < n,
    }
}

struct Live {
    /// action id -> (task mode, scope, token, deadline)
    performed: BTreeMap<String, (Mode, Scope, u64, Timestamp)>,
}

fn live(state: &State) -> Live {
    let mut performed = BTreeMap::new();
    for uid in state.task_uids(None) {
        let t: TaskView = state.task(&uid).expect("listed task exists");
        for a in t.actions() {
            if let (Some(tok), Some(deadline)) = (a.fencing_token(), a.deadline()) {
                performed.insert(a.id.clone(), (t.mode, a.scope.clone(), tok, deadline));
            }
        }
    }
    Live { performed }
}

/// The performed actions of a task, in request order (the order the engine granted them).
fn performed_ids(view: &TaskView) -> Vec<String> {
    view.actions()
        .filter(|a| a.is_performed())
        .map(|a| a.id.clone())
        .collect()
}

fn check_exclusive(spec: &Spec, l: &Live) -> Result<(), String> {
    let mut nodes = BTreeMap::new();
    let mut disks = BTreeMap::new();
    for (id, (_, scope, _, _)) in &l.performed {
        match took(spec, scope) {
            Took::Nodes(ns) => {
                for n in ns {
                    if let Some(o) = nodes.insert(n, id.clone()) {
                        return Err(format!("node {n} locked by {o} and {id}"));
                    }
                }
            }
            Took::Disk(n, p) => {
                if let Some(o) = disks.insert((n, p), id.clone()) {
                    return Err(format!("disk {n}:{p} locked by {o} and {id}"));
                }
            }
        }
    }
    for (n, p) in disks.keys() {
        if let Some(o) = nodes.get(n) {
            return Err(format!(
                "disk {n}:{p} locked while node {n} is locked by {o}"
            ));
        }
    }
    Ok(())
}

/// The heartbeat timeout the property test runs with (advances are 1 to 400 s).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(300);

/// The engine rebuilt from records, with the test's liveness rules.
fn restored(cluster: &Arc<arbiter_server::engine::Cluster>, snapshot: Snapshot) -> State {
    let mut state = State::restore(cluster.clone(), snapshot);
    state.set_health(HealthConfig {
        heartbeat_timeout: Some(HEARTBEAT_TIMEOUT),
        ..HealthConfig::default()
    });
    state
}

/// The oracle's own model of heartbeat timeouts: when each monitored node's agent is due, and
/// which nodes went silent. After a restart the engine forgets heartbeat times and gives every
/// monitored node one full timeout from the next tick or heartbeat.
#[derive(Default)]
struct Silence {
    due: BTreeMap<u32, Timestamp>,
    armed: bool,
    silent: BTreeSet<u32>,
}

impl Silence {
    fn arm(&mut self, monitored: &BTreeSet<u32>, now: Timestamp) {
        if !self.armed {
            self.armed = true;
            for n in monitored {
                self.due.entry(*n).or_insert(now.plus(HEARTBEAT_TIMEOUT));
            }
        }
    }

    /// Time passed to `now`: nodes whose agent is overdue go silent unless known down.
    fn tick(&mut self, monitored: &BTreeSet<u32>, down: &BTreeSet<u32>, now: Timestamp) {
        self.arm(monitored, now);
        let overdue: Vec<u32> = self
            .due
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in overdue {
            self.due.remove(&n);
            if !down.contains(&n) {
                self.silent.insert(n);
            }
        }
    }

    fn heartbeat(&mut self, monitored: &BTreeSet<u32>, n: u32, now: Timestamp) {
        self.arm(monitored, now);
        self.due.insert(n, now.plus(HEARTBEAT_TIMEOUT));
        self.silent.remove(&n);
    }

    fn restart(&mut self) {
        self.due.clear();
        self.armed = false;
    }
}

fn run_ops(spec: &Spec, ops: &[Op]) -> Result<(), TestCaseError> {
    let cluster = inventory::parse(&spec.to_toml(), Format::Toml).map_err(|e| {
        TestCaseError::fail(format!(
            "generated inventory rejected: {e}\n{}",
            spec.to_toml()
        ))
    })?;
    let cluster = Arc::new(cluster);
    let mut state = restored(&cluster, Snapshot::default());
    let mut records = Snapshot::default();
    let mut now = Timestamp(1_767_225_600_000);
    let mut down: BTreeSet<u32> = spec.nodes.iter().filter(|n| n.down).map(|n| n.id).collect();
    // Nodes with an agent, and those of them whose lock was released and that have not sent a
    // heartbeat since: unavailable until they do.
    let mut monitored: BTreeSet<u32> = BTreeSet::new();
    let mut restarting: BTreeSet<u32> = BTreeSet::new();
    let mut silence = Silence::default();
    let mut max_token = 0u64;
    let mut seq = 0;
    // The oracle's freezes: scope (see `freeze_scope`) -> (who froze it, its end).
    let mut freezes: BTreeMap<u8, (u8, Option<Timestamp>)> = BTreeMap::new();
    let holds = |until: &Option<Timestamp>, now: Timestamp| until.is_none_or(|u| u > now);
    // Every node-grant so far, for the rate budgets: (when, node).
    let mut node_grants: Vec<(Timestamp, u32)> = Vec::new();
    for op in ops {
        let before_live = live(&state);
        let before_snapshot = state.snapshot();
        // Determinism: a twin rebuilt from the same records (fresh hash seeds, fresh indexes)
        // must answer the same command identically.
        let mut twin = restored(&cluster, before_snapshot.clone());
        // Known down, and unavailable for other reasons (restarting, silent), before the step.
        let confirmed_before = down.clone();
        let soft_before: BTreeSet<u32> = restarting
            .union(&silence.silent)
            .filter(|n| !down.contains(n))
            .copied()
            .collect();
        // Fairness: what each task pending past the aging threshold waits for, unless a freeze or
        // a closed window holds it back: (priority, created, uid, what the action takes).
        let aged: Vec<(i32, Timestamp, String, Took)> = state
            .task_uids(None)
            .into_iter()
            .filter_map(|uid| state.task(&uid))
            .filter(|t| now.since(t.create_time) >= AGING)
            .flat_map(|t| {
                let pending: Vec<Scope> = t
                    .actions()
                    .filter(|a| !a.is_performed())
                    .map(|a| a.scope.clone())
                    .collect();
                pending.into_iter().map(move |scope| {
                    (t.priority, t.create_time, t.uid.clone(), took(spec, &scope))
                })
            })
            .filter(|(_, _, _, want)| {
                let nodes: Vec<u32> = match want {
                    Took::Nodes(ns) => ns.clone(),
                    Took::Disk(n, _) => vec![*n],
                };
                !nodes.iter().any(|n| {
                    let node = spec.node(*n);
                    let frozen = freezes
                        .iter()
                        .any(|(i, (_, u))| holds(u, now) && freezes_node(*i, node));
                    let windows: Vec<&WindowSpec> =
                        spec.windows.iter().filter(|w| w.covers(node)).collect();
                    let closed = !down.contains(n)
                        && !windows.is_empty()
                        && windows
                            .iter()
                            .all(|w| w.open_until(now.as_millis()).is_none());
                    frozen || closed
                })
            })
            .collect();
        let mut granted_in_order: Vec<String> = Vec::new();
        // The task a create or refresh checked at `now`, as the engine answered.
        let mut checked: Option<TaskView> = None;
        let result = match op {
            Op::Create {
                mode,
                priority,
                composite,
                targets,
            } => {
                seq += 1;
                let mode = [Mode::Strong, Mode::Weak, Mode::Force, Mode::Smart][usize::from(*mode)];
                let lock = |(kind, n): &(u8, u32)| {
                    let n = 1 + (n - 1) % spec.nodes.len() as u32;
                    let scope = match kind {
                        0..=3 => Scope::Node(n),
                        4 => Scope::Host(spec.node(n).host.clone()),
                        _ => Scope::PDisk(PDiskKey { node: n, pdisk: 1 }),
                    };
                    // Node locks of kind 3 are long, to outlast the window they are granted in.
                    let secs = if *kind == 3 {
                        90 * 60
                    } else {
                        60 * u64::from(n % 5 + 1)
                    };
                    LockRequest {
                        scope,
                        duration: Some(Duration::from_secs(secs)),
                        kind: Default::default(),
                    }
                };
                let groups = if *composite && targets.len() > 1 {
                    vec![targets.iter().map(lock).collect()]
                } else {
                    targets.iter().map(|t| vec![lock(t)]).collect()
                };
                let req = TaskRequest {
                    uid: format!("t{seq}"),
                    owner: "prop".into(),
                    description: String::new(),
                    mode,
                    priority: *priority,
                    dry_run: false,
                    override_holds: false,
                    groups,
                };
                let twin_out = twin.create(req.clone(), now);
                let out = state.create(req, now);
                prop_assert_eq!(&twin_out, &out, "create is not deterministic");
                out.map(|o| {
                    granted_in_order = performed_ids(&o.value);
                    checked = Some(o.value);
                    o.changes
                })
            }
            Op::Refresh(i) => {
                let uids = state.task_uids(None);
                if uids.is_empty() {
                    continue;
                }
                let uid = &uids[i % uids.len()];
                let twin_out = twin.refresh(uid, now);
                let out = state.refresh(uid, now);
                prop_assert_eq!(&twin_out, &out, "refresh is not deterministic");
                out.map(|o| {
                    granted_in_order = performed_ids(&o.value);
                    checked = Some(o.value);
                    o.changes
                })
            }
            Op::Complete(t, a) => {
                let uids = state.task_uids(None);
                if uids.is_empty() {
                    continue;
                }
                let uid = &uids[t % uids.len()];
                let view = state.task(uid).expect("listed");
                let ids: Vec<String> = view.actions().map(|x| x.id.clone()).collect();
                let pick = ids[a % ids.len()].clone();
                let r = state
                    .complete(&[(uid.clone(), pick)], now)
                    .map(|o| o.changes);
                // Releases work whatever holds: freezes, closed windows, budgets.
                prop_assert!(r.is_ok(), "complete refused: {:?}", r);
                r
            }
            Op::Drop(t) => {
                let uids = state.task_uids(None);
                if uids.is_empty() {
                    continue;
                }
                let r = state
                    .drop_task(&uids[t % uids.len()], now)
                    .map(|o| o.changes);
                prop_assert!(r.is_ok(), "drop refused: {:?}", r);
                r
            }
            Op::Advance(s) => {
                now = now.plus(Duration::from_secs(*s));
                silence.tick(&monitored, &down, now);
                Ok(state.tick(now).changes)
            }
            Op::Node(n, up) => {
                let n = 1 + (n - 1) % spec.nodes.len() as u32;
                let r = state.set_node_state(n, *up, "", now).map(|o| o.changes);
                if *up {
                    down.remove(&n);
                    restarting.remove(&n);
                } else {
                    down.insert(n);
                }
                silence.silent.remove(&n);
                r
            }
            Op::Heartbeat(n) => {
                let n = 1 + (n - 1) % spec.nodes.len() as u32;
                let r = state
                    .heartbeat(n, Heartbeat::default(), now)
                    .map(|o| o.changes);
                silence.heartbeat(&monitored, n, now);
                monitored.insert(n);
                restarting.remove(&n);
                r
            }
            Op::Restart => {
                state = restored(&cluster, records.clone());
                silence.restart();
                Ok(Vec::new())
            }
            Op::FreezeOn { scope, by, secs } => {
                let i = scope % 5;
                let until = secs.map(|x| now.plus(Duration::from_secs(x)));
                let r = state
                    .freeze_on(
                        freeze_scope(i),
                        FREEZERS[usize::from(*by % 2)],
                        "prop",
                        until,
                        now,
                    )
                    .map(|o| o.changes);
                let expected = !freezes.get(&i).is_some_and(|(_, u)| holds(u, now));
                prop_assert_eq!(
                    r.is_ok(),
                    expected,
                    "freeze on {:?}: {:?}",
                    freeze_scope(i),
                    r
                );
                if r.is_ok() {
                    freezes.insert(i, (*by % 2, until));
                }
                r
            }
            Op::FreezeOff { scope, who } => {
                let held: Vec<u8> = freezes
                    .iter()
                    .filter(|(_, (_, u))| holds(u, now))
                    .map(|(i, _)| *i)
                    .collect();
                let i = match *scope {
                    s if s >= 5 && !held.is_empty() => held[usize::from(s - 5) % held.len()],
                    s => s % 5,
                };
                let l = lifter(*who);
                let r = state
                    .freeze_off(&freeze_scope(i), l, now)
                    .map(|o| o.changes);
                let expected = freezes.get(&i).is_some_and(|(by, u)| {
                    holds(u, now) && (FREEZERS[usize::from(*by)] == l.user || (l.admin && l.force))
                });
                prop_assert_eq!(
                    r.is_ok(),
                    expected,
                    "freeze off {:?} by {:?}: {:?}",
                    freeze_scope(i),
                    l,
                    r
                );
                if r.is_ok() {
                    freezes.remove(&i);
                }
                r
            }
        };
        match result {
            Err(e) => prop_assert_eq!(
                &state.snapshot(),
                &before_snapshot,
                "refused command ({}) changed state",
                e
            ),
            Ok(changes) => {
                for c in &changes {
                    records.apply(c);
                }
            }
        }
        prop_assert_eq!(
            &records,
            &state.snapshot(),
            "records do not rebuild the state after {:?}",
            op
        );

        let after = live(&state);
        check_exclusive(spec, &after).map_err(TestCaseError::fail)?;
        // Expiry works whatever holds: time has run out for no live lock.
        for (id, (_, _, _, deadline)) in &after.performed {
            prop_assert!(
                *deadline > now,
                "{} is live past its deadline {}",
                id,
                deadline
            );
        }
        // The engine's freezes are the oracle's (a restart keeps them, expiry ends them).
        let engine_freezes: BTreeSet<(String, Option<Timestamp>)> = state
            .freezes(now)
            .into_iter()
            .map(|f| (f.scope.key(), f.until))
            .collect();
        let oracle_freezes: BTreeSet<(String, Option<Timestamp>)> = freezes
            .iter()
            .filter(|(_, (_, u))| holds(u, now))
            .map(|(i, (_, u))| (freeze_scope(*i).key(), *u))
            .collect();
        prop_assert_eq!(
            engine_freezes,
            oracle_freezes,
            "freezes differ after {:?}",
            op
        );
        let frozen = |n: &NodeSpec| {
            freezes
                .iter()
                .any(|(i, (_, u))| holds(u, now) && freezes_node(*i, n))
        };
        // Released locks start a restart wait.
        for (id, (_, scope, _, _)) in &before_live.performed {
            if after.performed.contains_key(id) {
                continue;
            }
            if let Took::Nodes(ns) = took(spec, scope) {
                for n in ns {
                    if monitored.contains(&n) && !down.contains(&n) {
                        restarting.insert(n);
                    }
                }
            }
        }
        let confirmed = &confirmed_before;

        // New grants, in the order the engine made them.
        // The requested lengths of the checked task's actions (grants happen only there).
        let durations: BTreeMap<&str, Option<Duration>> = checked
            .iter()
            .flat_map(|v| v.actions())
            .map(|a| (a.id.as_str(), a.duration))
            .collect();
        let new: Vec<&String> = granted_in_order
            .iter()
            .filter(|id| !before_live.performed.contains_key(*id))
            .collect();
        let mut step_tokens = Vec::new();
        // Unavailable before the step: unavailable nodes and the locks that were live before it
        // and still are (a completion or expiry in this step only frees capacity).
        let mut locks = Unavail::default();
        for (id, (_, scope, _, _)) in &after.performed {
            if before_live.performed.contains_key(id) {
                locks.add(&took(spec, scope));
            }
        }
        let unavailable = |locks: &Unavail, soft: &BTreeSet<u32>| {
            let mut u = locks.clone();
            for n in confirmed.iter().chain(soft) {
                u.nodes_out.insert(*n);
                u.limit_nodes.insert(*n);
            }
            u
        };
        for id in new {
            let (mode, scope, token, deadline) = after.performed[id].clone();
            prop_assert!(
                token > max_token,
                "token {} of {} not above {}",
                token,
                id,
                max_token
            );
            step_tokens.push(token);
            let t = took(spec, &scope);
            let own: Vec<u32> = match &t {
                Took::Nodes(ns) => ns.clone(),
                Took::Disk(n, _) => vec![*n],
            };
            let touched_up = own.iter().any(|n| !confirmed.contains(n));
            // Fairness: no grant takes what an older task of the same priority, pending past
            // the aging threshold and not held back, waits for.
            if let Some(v) = &checked {
                for (prio, created, uid, want) in &aged {
                    let older = (*created, uid.as_str()) < (v.create_time, v.uid.as_str());
                    prop_assert!(
                        !(*prio == v.priority && older && overlaps(&t, want)),
                        "grant {} ({:?}) of task {} takes what older task {} (created {}) waits for since past the aging threshold",
                        id,
                        scope,
                        v.uid,
                        uid,
                        created
                    );
                }
            }
            let duration = durations.get(id.as_str()).copied().flatten();
            prop_assert!(duration.is_some(), "grant {} has no requested duration", id);
            let mut cut_to = now.plus(duration.unwrap_or_default()).as_millis();
            for n in &own {
                let node = spec.node(*n);
                // Freezes: nothing is granted in a frozen scope, force mode included.
                prop_assert!(
                    !frozen(node),
                    "grant {} ({:?}) touches frozen node {}",
                    id,
                    scope,
                    n
                );
                // Windows: a node with windows is granted only while one of them is open; when
                // every open one cuts, the lock ends no later than the latest of their ends. A
                // node known down loses nothing by its lock: its windows do not gate it.
                let windows: Vec<&WindowSpec> =
                    spec.windows.iter().filter(|w| w.covers(node)).collect();
                if windows.is_empty() || confirmed.contains(n) {
                    continue;
                }
                let open: Vec<(bool, u64)> = windows
                    .iter()
                    .filter_map(|w| w.open_until(now.as_millis()).map(|end| (w.cut, end)))
                    .collect();
                prop_assert!(
                    !open.is_empty(),
                    "grant {} ({:?}) on node {} outside its windows at {}",
                    id,
                    scope,
                    n,
                    now
                );
                if open.iter().all(|(cut, _)| *cut) {
                    let end = open.iter().map(|(_, e)| *e).max().unwrap_or(u64::MAX);
                    prop_assert!(
                        deadline.as_millis() <= end,
                        "grant {} ({:?}) on node {} ends at {}, after its window closes at {}",
                        id,
                        scope,
                        n,
                        deadline,
                        Timestamp(end)
                    );
                    cut_to = cut_to.min(end);
                }
            }
            // Nothing else shortens a lock: its requested length, or the end of its windows.
            prop_assert_eq!(
                deadline.as_millis(),
                cut_to,
                "grant {} ({:?}): deadline {} is not min(now + duration, window end) {}",
                id,
                &scope,
                deadline,
                Timestamp(cut_to)
            );
            // A node known down is neither paced nor counted by the budgets (its lock takes
            // nothing down).
            node_grants.extend(
                own.iter()
                    .filter(|n| !confirmed.contains(n))
                    .map(|n| (now, *n)),
            );
            // As if up: the grant's own nodes that are unavailable but not known down (silent,
            // restarting) do not count as already unavailable for this grant.
            let soft: BTreeSet<u32> = soft_before
                .iter()
                .filter(|n| !own.contains(n))
                .copied()
                .collect();
            let before = unavailable(&locks, &soft);
            let mut u = before.clone();
            u.add(&t);
            locks.add(&t);
            if mode == Mode::Force || !touched_up {
                continue;
            }
            prop_assert!(
                limits_ok(spec, &before, &u),
                "grant {} ({:?}) broke a node limit",
                id,
                scope
            );
            let touched: Vec<&GroupSpec> = spec
                .groups
                .iter()
                .filter(|g| {
                    g.members
                        .iter()
                        .any(|m| u.member_out(*m) && !before.member_out(*m))
                })
                .collect();
            for g in touched {
                prop_assert!(
                    group_tolerates(g, mode, &u),
                    "grant {} ({:?}, {:?}) broke group {:?}",
                    id,
                    scope,
                    mode,
                    g
                );
            }
            if matches!(t, Took::Nodes(_)) {
                let newly_out = |n: &u32| u.nodes_out.contains(n) && !before.nodes_out.contains(n);
                if spec.rings.iter().flatten().any(newly_out) {
                    prop_assert!(rings_ok(spec, mode, &u), "grant {} broke state storage", id);
                }
                if spec.tablet.iter().any(newly_out) && mode != Mode::Smart {
                    prop_assert!(
                        tablets_ok(spec, mode, &u),
                        "grant {} broke system tablets",
                        id
                    );
                }
            }
        }
        for t in step_tokens {
            max_token = max_token.max(t);
        }
        // What holds a checked action back is what the oracle sees: a freeze it names holds
        // now and covers one of the action's nodes; a node it says is outside its maintenance
        // windows is one of the action's, has windows, and none is open now.
        for a in checked.iter().flat_map(|v| v.actions()) {
            let d = a.details();
            let nodes: Vec<u32> = match took(spec, &a.scope) {
                Took::Nodes(ns) => ns,
                Took::Disk(n, _) => vec![n],
            };
            if d.contains(" is frozen by ") {
                let i = (0u8..5)
                    .find(|i| d.starts_with(&format!("{} is frozen by ", freeze_scope(*i))));
                prop_assert!(i.is_some(), "{}: unknown freeze in {:?}", a.id, d);
                let i = i.unwrap_or_default();
                prop_assert!(
                    freezes.get(&i).is_some_and(|(_, u)| holds(u, now))
                        && nodes.iter().any(|n| freezes_node(i, spec.node(*n))),
                    "{} ({:?}) held back by a freeze that does not hold on it: {:?}",
                    a.id,
                    a.scope,
                    d
                );
            }
            if let Some(rest) = d.strip_prefix("node ")
                && let Some((n, _)) = rest.split_once(" is outside maintenance window ")
            {
                let n: u32 = n.parse().unwrap_or(0);
                let windows: Vec<&WindowSpec> = spec
                    .windows
                    .iter()
                    .filter(|w| {
                        nodes.contains(&n) && !confirmed.contains(&n) && w.covers(spec.node(n))
                    })
                    .collect();
                prop_assert!(
                    !windows.is_empty()
                        && windows
                            .iter()
                            .all(|w| w.open_until(now.as_millis()).is_none()),
                    "{} ({:?}) held back by a window that is open at {}: {:?}",
                    a.id,
                    a.scope,
                    now,
                    d
                );
            }
        }
        // Rate budgets: node-grants in the last `every`, over the cluster and over the tenant.
        let within = |b: &Option<Budget>, counts: &dyn Fn(u32) -> bool| {
            b.is_none_or(|b| {
                let every = Duration::from_secs(b.every_secs);
                let n = node_grants
                    .iter()
                    .filter(|(at, n)| at.plus(every) > now && counts(*n))
                    .count();
                n <= b.count as usize
            })
        };
        prop_assert!(
            within(&spec.budget, &|_| true),
            "cluster budget {:?} exceeded",
            spec.budget
        );
        prop_assert!(
            within(&spec.tenant_budget, &|n| spec.node(n).tenant),
            "tenant budget {:?} exceeded",
            spec.tenant_budget
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn grants_stay_within_the_failure_model(spec in spec_strategy(), ops in prop::collection::vec(op_strategy(), 1..75)) {
        run_ops(&spec, &ops)?;
    }
}
