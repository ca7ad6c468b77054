//! Runs the data-driven engine scenarios in `tests/scenarios/*.toml` (format: its README.md).
//! One test per file. After every step the change records produced so far must rebuild exactly
//! the live state, so every scenario also tests persistence.

use arbiter_server::engine::cluster::PDiskKey;
use arbiter_server::engine::drain::{ActionKind, HookOutcome, Order, WorkKind, WorkReport};
use arbiter_server::engine::freeze::{FreezeScope, Lifter};
use arbiter_server::engine::inventory::{self, Format};
use arbiter_server::engine::{
    ActionView, EngineError, ErrorKind, HealthConfig, Heartbeat, LockRequest, Mode, NodeState,
    Reason, Scope, Snapshot, State, TaskRequest, TaskView, Timestamp,
};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// 2026-01-01T00:00:00Z.
const START: Timestamp = Timestamp(1_767_225_600_000);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    about: String,
    cluster: Option<ClusterGen>,
    #[serde(default)]
    inventory: String,
    health: Option<HealthSpec>,
    #[serde(default)]
    step: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthSpec {
    heartbeat_timeout: Option<String>,
    settle: Option<String>,
    ring_settle: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterGen {
    nodes: u32,
    #[serde(default = "default_layout")]
    layout: String,
    #[serde(default = "one")]
    pdisks_per_node: u32,
    shared_host: Option<String>,
    tenant: Option<String>,
    tenant_nodes: Option<Vec<u32>>,
    /// `inventory` written after `[cluster]` lands here in TOML; it means the same.
    inventory: Option<String>,
}

fn default_layout() -> String {
    "block-4-2".into()
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    node: Option<u32>,
    host: Option<String>,
    pdisk: Option<[u32; 2]>,
    pdisk_host: Option<String>,
    path: Option<String>,
    duration: Option<String>,
    /// `lock` (default), `lock_drain` (a lock that drains first), `drain` or `cordon`.
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(rename = "do")]
    op: String,
    task: Option<String>,
    owner: Option<String>,
    mode: Option<String>,
    priority: Option<i32>,
    dry_run: Option<bool>,
    description: Option<String>,
    groups: Option<Vec<Vec<ActionSpec>>>,
    actions: Option<toml::Value>,
    by: Option<String>,
    node: Option<u32>,
    state: Option<String>,
    states: Option<BTreeMap<String, String>>,
    expect_tasks: Option<Vec<String>>,
    error: Option<String>,
    error_contains: Option<String>,
    details: Option<BTreeMap<String, Vec<String>>>,
    retry_after: Option<String>,
    deadlines: Option<BTreeMap<String, String>>,
    reason: Option<String>,
    version: Option<String>,
    inventory: Option<String>,
    node_details: Option<BTreeMap<String, String>>,
    available: Option<BTreeMap<String, bool>>,
    conditions: Option<BTreeMap<String, String>>,
    /// `fence`: a disk of `node` (absent: the node itself).
    pdisk_id: Option<u32>,
    /// `fence`: the token to check, literally...
    token: Option<u64>,
    /// ...or the token an action was granted, named `[task, position]`.
    token_of: Option<(String, usize)>,
    /// `fence`: the expected state, and optionally the superseding (or holding) task.
    fence: Option<String>,
    fence_task: Option<String>,
    /// `fence`: when it ended (or the superseding lock was granted), this long before now.
    fence_ago: Option<String>,
    /// `freeze`: `cluster`, `tenant:<name>` or `dc:<name>`.
    scope: Option<String>,
    /// `freeze`, `read_only`: who asks (default "user").
    user: Option<String>,
    /// `freeze` on: how long it lasts (absent: until lifted).
    #[serde(rename = "for")]
    for_: Option<String>,
    /// `freeze`, `read_only` off: lift what someone else set (with `admin` for a freeze).
    force: Option<bool>,
    admin: Option<bool>,
    /// `freezes`: the scopes frozen now.
    frozen: Option<Vec<String>>,
    /// `create`: an admin's override of freezes, windows and budgets.
    override_holds: Option<bool>,
    /// `report`: the action reported on, by its position in the create request.
    position: Option<usize>,
    /// `report`: `drain` (default) or `cordon`.
    work: Option<String>,
    /// `report`: the undo hook (undrain, uncordon).
    undo: Option<bool>,
    /// `report`: running | done | failed.
    outcome: Option<String>,
    /// `report` running: the progress in percent (42.5).
    progress: Option<f64>,
    /// `report` failed: which attempt, how it ended, its last stderr line, when it retries.
    attempt: Option<u32>,
    exit: Option<String>,
    stderr: Option<String>,
    retry_in: Option<String>,
    /// `report`: whether the report changed anything.
    changed: Option<bool>,
    /// `orders`, `connect`: the expected drain and cordon orders of `node`.
    drain: Option<String>,
    cordon: Option<String>,
}

fn freeze_scope(s: &str) -> Result<FreezeScope, String> {
    if s == "cluster" {
        Ok(FreezeScope::Cluster)
    } else if let Some(t) = s.strip_prefix("tenant:") {
        Ok(FreezeScope::Tenant(t.to_owned()))
    } else if let Some(d) = s.strip_prefix("dc:") {
        Ok(FreezeScope::DataCenter(d.to_owned()))
    } else {
        Err(format!("bad freeze scope '{s}'"))
    }
}

fn generate(g: &ClusterGen) -> Result<String, String> {
    let mut out = String::new();
    let n = g.nodes;
    let tenant_nodes: Vec<u32> = match (&g.tenant, &g.tenant_nodes) {
        (Some(_), Some(list)) => list.clone(),
        (Some(_), None) => (1..=n).collect(),
        (None, _) => Vec::new(),
    };
    let with_pdisks = g.layout != "no-groups";
    for id in 1..=n {
        let host = g
            .shared_host
            .clone()
            .unwrap_or_else(|| format!("node-{id}"));
        writeln!(
            out,
            "[[nodes]]\nid = {id}\nhost = {host:?}\nport = {}",
            19000 + id
        )
        .ok();
        if g.layout == "mirror-3-dc" {
            let dc = if n == 3 { id } else { ((id - 1) % 9) / 3 + 1 };
            writeln!(out, "data_center = \"dc-{dc}\"").ok();
        }
        if let (Some(t), true) = (&g.tenant, tenant_nodes.contains(&id)) {
            writeln!(out, "tenant = {t:?}").ok();
        }
        if with_pdisks {
            // Device paths name one disk per host, so nodes sharing a host get distinct paths.
            let dev = |p: u32| match &g.shared_host {
                Some(_) => format!("/dev/node{id}-disk{p}"),
                None => format!("/dev/disk{p}"),
            };
            let pds: Vec<String> = (1..=g.pdisks_per_node)
                .map(|p| format!("{{ id = {p}, path = {:?} }}", dev(p)))
                .collect();
            writeln!(out, "pdisks = [{}]", pds.join(", ")).ok();
        }
        out.push('\n');
    }
    let mut gid = 0;
    let mut group = |erasure: &str, members: &[u32], out: &mut String| {
        gid += 1;
        let list: Vec<String> = members.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "[[storage_groups]]\nid = {gid}\nerasure = \"{erasure}\"\nnodes = [{}]\n",
            list.join(", ")
        )
        .ok();
    };
    match g.layout.as_str() {
        "block-4-2" => {
            for b in 0..n / 8 {
                let members: Vec<u32> = (b * 8 + 1..=b * 8 + 8).collect();
                for _ in 0..4 {
                    group("block-4-2", &members, &mut out);
                }
            }
        }
        "mirror-3-dc" if n == 3 => group("mirror-3-dc", &[1, 2, 3], &mut out),
        "mirror-3-dc" => {
            for b in 0..n / 9 {
                let members: Vec<u32> = (b * 9 + 1..=b * 9 + 9).collect();
                for _ in 0..4 {
                    group("mirror-3-dc", &members, &mut out);
                }
            }
        }
        "none" => {
            for id in 1..=n {
                group("none", &[id], &mut out);
            }
        }
        "no-groups" => {}
        other => return Err(format!("unknown [cluster] layout '{other}'")),
    }
    Ok(out)
}

fn dur(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("bad duration '{s}': {e}"))
}

fn mode(s: Option<&str>) -> Result<Mode, String> {
    Ok(match s.unwrap_or("strong") {
        "strong" => Mode::Strong,
        "weak" => Mode::Weak,
        "force" => Mode::Force,
        "smart" => Mode::Smart,
        other => return Err(format!("unknown mode '{other}'")),
    })
}

fn kind(s: Option<&str>) -> Result<ActionKind, String> {
    Ok(match s.unwrap_or("lock") {
        "lock" => ActionKind::Lock,
        "lock_drain" => ActionKind::DrainFirst,
        "drain" => ActionKind::Drain,
        "cordon" => ActionKind::Cordon,
        other => return Err(format!("unknown action kind '{other}'")),
    })
}

fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::Generic => "generic",
        Reason::TooManyUnavailableVDisks => "vdisks",
        Reason::TooManyUnavailableStateStorageRings => "rings",
        Reason::DisabledNodesLimitReached => "nodes_limit",
        Reason::TenantDisabledNodesLimitReached => "tenant_limit",
        Reason::SysTabletsNodeLimitReached => "sys_tablets",
        Reason::Frozen => "frozen",
        Reason::OutsideWindow => "window",
        Reason::RateBudget => "budget",
    }
}

fn scope(a: &ActionSpec) -> Result<Scope, String> {
    match (a.node, &a.host, a.pdisk, &a.pdisk_host, &a.path) {
        (Some(n), None, None, None, None) => Ok(Scope::Node(n)),
        (None, Some(h), None, None, None) => Ok(Scope::Host(h.clone())),
        (None, None, Some([n, p]), None, None) => Ok(Scope::PDisk(PDiskKey { node: n, pdisk: p })),
        (None, None, None, Some(h), Some(p)) => Ok(Scope::PDiskPath {
            host: h.clone(),
            path: p.clone(),
        }),
        _ => {
            Err("an action needs exactly one of: node, host, pdisk, or pdisk_host with path".into())
        }
    }
}

/// An action's details as the wire shows them: its work's while it has work, else the pending
/// details (empty for a performed lock).
fn details(a: &ActionView) -> &str {
    match &a.work {
        Some(w) => &w.details,
        None => a.details(),
    }
}

fn show(view: &TaskView) -> String {
    let mut s = format!("task {}:", view.uid);
    for (i, a) in view.actions().enumerate() {
        let st = if let Some(w) = a.work.as_ref().filter(|w| !w.done) {
            format!(
                "in_progress until {} ({})",
                a.deadline().map(|d| d.to_string()).unwrap_or_default(),
                w.details
            )
        } else if a.is_performed() {
            format!(
                "performed until {}",
                a.deadline().map(|d| d.to_string()).unwrap_or_default()
            )
        } else {
            format!(
                "pending {} ({})",
                a.reason().map(reason_name).unwrap_or("?"),
                a.details()
            )
        };
        write!(s, "\n    [{i}] {} {}: {st}", a.id, a.scope).ok();
    }
    if let Some(r) = view.retry_after {
        write!(s, "\n    retry_after {r}").ok();
    }
    s
}

struct Runner {
    state: State,
    health: HealthConfig,
    /// The generated part of the inventory, which `reload` keeps.
    generated: String,
    records: Snapshot,
    now: Timestamp,
    /// task uid -> action ids in request order (flattened), for `complete`.
    positions: BTreeMap<String, Vec<String>>,
    /// (task, action id) -> the fencing token it was granted, as seen in any answer.
    tokens: BTreeMap<(String, String), u64>,
}

impl Runner {
    fn record(&mut self, changes: &[arbiter_server::engine::Change]) {
        for c in changes {
            self.records.apply(c);
        }
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        let result: Result<Option<TaskView>, EngineError> = match s.op.as_str() {
            "create" => {
                let groups = s.groups.as_ref().ok_or("create needs groups")?;
                let mut gs = Vec::new();
                for g in groups {
                    let mut actions = Vec::new();
                    for a in g {
                        let duration = a.duration.as_deref().map(dur).transpose()?;
                        actions.push(LockRequest {
                            scope: scope(a)?,
                            duration,
                            kind: kind(a.kind.as_deref())?,
                        });
                    }
                    gs.push(actions);
                }
                let req = TaskRequest {
                    uid: s.task.clone().ok_or("create needs task")?,
                    owner: s.owner.clone().unwrap_or_else(|| "user".into()),
                    description: s.description.clone().unwrap_or_default(),
                    mode: mode(s.mode.as_deref())?,
                    priority: s.priority.unwrap_or(0),
                    dry_run: s.dry_run.unwrap_or(false),
                    override_holds: s.override_holds.unwrap_or(false),
                    groups: gs,
                };
                let dry = req.dry_run;
                self.state.create(req, self.now).map(|o| {
                    self.record(&o.changes);
                    if !dry {
                        let ids = o.value.actions().map(|a| a.id.clone()).collect();
                        self.positions.insert(o.value.uid.clone(), ids);
                    }
                    Some(o.value)
                })
            }
            "refresh" => {
                let uid = s.task.as_deref().ok_or("refresh needs task")?;
                self.state.refresh(uid, self.now).map(|o| {
                    self.record(&o.changes);
                    Some(o.value)
                })
            }
            "get" => {
                let uid = s.task.as_deref().ok_or("get needs task")?;
                self.state
                    .task(uid)
                    .map(Some)
                    .ok_or(EngineError::TaskNotFound)
            }
            "complete" => {
                let uids = self.complete_uids(s)?;
                self.state.complete(&uids, self.now).map(|o| {
                    self.record(&o.changes);
                    None
                })
            }
            "drop" => {
                let uid = s.task.as_deref().ok_or("drop needs task")?;
                self.state.drop_task(uid, self.now).map(|o| {
                    self.record(&o.changes);
                    None
                })
            }
            "advance" => {
                self.now = self
                    .now
                    .plus(dur(s.by.as_deref().ok_or("advance needs by")?)?);
                let o = self.state.tick(self.now);
                self.record(&o.changes);
                Ok(None)
            }
            "node" => {
                let id = s.node.ok_or("node needs node")?;
                let up = match s.state.as_deref() {
                    Some("up") => true,
                    Some("down") => false,
                    other => return Err(format!("node state must be up or down, not {other:?}")),
                };
                let reason = s.reason.as_deref().unwrap_or("");
                self.state
                    .set_node_state(id, up, reason, self.now)
                    .map(|o| {
                        self.record(&o.changes);
                        None
                    })
            }
            "heartbeat" => {
                let id = s.node.ok_or("heartbeat needs node")?;
                let beat = Heartbeat {
                    version: s.version.clone(),
                    start_time: None,
                };
                self.state.heartbeat(id, beat, self.now).map(|o| {
                    self.record(&o.changes);
                    None
                })
            }
            "reload" => {
                let mut text = self.generated.clone();
                text.push('\n');
                text.push_str(s.inventory.as_deref().ok_or("reload needs inventory")?);
                let cluster = inventory::parse(&text, Format::Toml).map_err(|e| e.to_string())?;
                self.state.reload(Arc::new(cluster)).map(|o| {
                    self.record(&o.changes);
                    None
                })
            }
            "restart" => {
                let before = self.state.snapshot();
                self.state = State::restore(self.state.cluster().clone(), self.records.clone());
                self.state.set_health(self.health);
                if self.state.snapshot() != before {
                    return Err("state after restart differs from before".into());
                }
                Ok(None)
            }
            "nodes" => {
                if s.states.is_none() && s.conditions.is_none() {
                    return Err("nodes needs states or conditions".into());
                }
                for (id, want) in s.conditions.iter().flatten() {
                    let id: u32 = id.parse().map_err(|_| format!("bad node id '{id}'"))?;
                    let view = self.state.node(id).ok_or(format!("no node {id}"))?;
                    let got = view.condition.name();
                    if got != want {
                        return Err(format!("node {id}: expected condition {want}, got {got}"));
                    }
                }
                for (id, want) in s.states.iter().flatten() {
                    let id: u32 = id.parse().map_err(|_| format!("bad node id '{id}'"))?;
                    let view = self.state.node(id).ok_or(format!("no node {id}"))?;
                    let got = match view.state {
                        NodeState::Up => "up",
                        NodeState::Maintenance => "maintenance",
                        NodeState::Down => "down",
                    };
                    if got != want {
                        return Err(format!("node {id}: expected {want}, got {got}"));
                    }
                }
                Ok(None)
            }
            "node_info" => {
                for (id, want) in s.node_details.iter().flatten() {
                    let n: u32 = id.parse().map_err(|_| format!("bad node id '{id}'"))?;
                    let view = self.state.node(n).ok_or(format!("no node {n}"))?;
                    let got = view.detail.unwrap_or_default();
                    let ok = if want.is_empty() {
                        got.is_empty()
                    } else {
                        got.contains(want.as_str())
                    };
                    if !ok {
                        return Err(format!("node {n} detail: expected '{want}', got '{got}'"));
                    }
                }
                for (id, want) in s.available.iter().flatten() {
                    let n: u32 = id.parse().map_err(|_| format!("bad node id '{id}'"))?;
                    let view = self.state.node(n).ok_or(format!("no node {n}"))?;
                    if view.available != *want {
                        return Err(format!("node {n}: expected available = {want}"));
                    }
                }
                Ok(None)
            }
            "tasks" => {
                let mut got = self.state.task_uids(s.owner.as_deref());
                let mut want = s.expect_tasks.clone().ok_or("tasks needs expect_tasks")?;
                got.sort();
                want.sort();
                if got != want {
                    return Err(format!("tasks: expected {want:?}, got {got:?}"));
                }
                Ok(None)
            }
            "fence" => {
                self.fence(s)?;
                Ok(None)
            }
            "freeze" | "read_only" => {
                let user = s.user.as_deref().unwrap_or("user");
                let reason = s.reason.as_deref().unwrap_or("");
                let lifter = Lifter {
                    user,
                    admin: s.admin.unwrap_or(false),
                    force: s.force.unwrap_or(false),
                };
                let on = match s.state.as_deref() {
                    Some("on") => true,
                    Some("off") => false,
                    other => {
                        return Err(format!("{} state must be on or off, not {other:?}", s.op));
                    }
                };
                let changes = if s.op == "read_only" {
                    if on {
                        self.state
                            .read_only_on(user, reason, self.now)
                            .map(|o| o.changes)
                    } else {
                        self.state.read_only_off(lifter).map(|o| o.changes)
                    }
                } else {
                    let scope = freeze_scope(s.scope.as_deref().ok_or("freeze needs scope")?)?;
                    if on {
                        let until = s
                            .for_
                            .as_deref()
                            .map(dur)
                            .transpose()?
                            .map(|d| self.now.plus(d));
                        self.state
                            .freeze_on(scope, user, reason, until, self.now)
                            .map(|o| o.changes)
                    } else {
                        self.state
                            .freeze_off(&scope, lifter, self.now)
                            .map(|o| o.changes)
                    }
                };
                changes.map(|c| {
                    self.record(&c);
                    None
                })
            }
            "freezes" => {
                let mut got: Vec<String> = self
                    .state
                    .freezes(self.now)
                    .iter()
                    .map(|f| f.scope.key())
                    .collect();
                let mut want = s.frozen.clone().ok_or("freezes needs frozen")?;
                got.sort();
                want.sort();
                if got != want {
                    return Err(format!("freezes: expected {want:?}, got {got:?}"));
                }
                Ok(None)
            }
            "connect" => {
                let id = s.node.ok_or("connect needs node")?;
                match self.state.agent_attached(id) {
                    Ok(orders) => {
                        self.check_orders(s, id, &orders.drain, &orders.cordon)?;
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
            "disconnect" => {
                let id = s.node.ok_or("disconnect needs node")?;
                self.state.agent_detached(id, self.now);
                Ok(None)
            }
            "orders" => {
                let id = s.node.ok_or("orders needs node")?;
                if s.drain.is_none() && s.cordon.is_none() {
                    return Err("orders needs drain or cordon".into());
                }
                let orders = self.state.orders(id);
                self.check_orders(s, id, &orders.drain, &orders.cordon)?;
                Ok(None)
            }
            "report" => {
                let id = s.node.ok_or("report needs node")?;
                let report = self.work_report(s)?;
                match self.state.report_work(id, report) {
                    Ok(o) => {
                        self.record(&o.changes);
                        if let Some(want) = s.changed
                            && o.value != want
                        {
                            return Err(format!("report: expected changed = {want}"));
                        }
                        // The task as it stands now, for the expectations.
                        Ok(s.task.as_deref().and_then(|t| self.state.task(t)))
                    }
                    Err(e) => Err(e),
                }
            }
            other => return Err(format!("unknown step '{other}'")),
        };
        if let Ok(Some(view)) = &result {
            for a in view.actions() {
                if let Some(t) = a.fencing_token() {
                    self.tokens.insert((view.uid.clone(), a.id.clone()), t);
                }
            }
        }
        // Every change must be recorded: the records alone rebuild the live state.
        if self.records != self.state.snapshot() {
            return Err("the change records do not rebuild the live state".into());
        }
        self.expect(s, result)
    }

    /// An agent's report from a `report` step.
    fn work_report(&self, s: &Step) -> Result<WorkReport, String> {
        let task = s.task.clone().ok_or("report needs task")?;
        let pos = s.position.ok_or("report needs position")?;
        let action = self
            .positions
            .get(&task)
            .and_then(|ids| ids.get(pos))
            .cloned()
            // An unknown task or position reports on a made-up action (a stale report).
            .unwrap_or_else(|| format!("no-such-action-{pos}"));
        let kind = match s.work.as_deref().unwrap_or("drain") {
            "drain" => WorkKind::Drain,
            "cordon" => WorkKind::Cordon,
            other => {
                return Err(format!(
                    "report work must be drain or cordon, not '{other}'"
                ));
            }
        };
        let outcome = match s.outcome.as_deref().ok_or("report needs outcome")? {
            "running" => {
                let p = s.progress.unwrap_or(0.0);
                HookOutcome::Running((p * 100.0).round().clamp(0.0, f64::from(u32::MAX)) as u32)
            }
            "done" => HookOutcome::Done,
            "failed" => HookOutcome::Failed {
                attempt: s.attempt.unwrap_or(1),
                exit: s
                    .exit
                    .clone()
                    .unwrap_or_else(|| "exited with status 1".into()),
                stderr: s.stderr.clone().unwrap_or_default(),
                retry_in_ms: match &s.retry_in {
                    Some(d) => u64::try_from(dur(d)?.as_millis()).unwrap_or(u64::MAX),
                    None => 0,
                },
            },
            other => {
                return Err(format!(
                    "report outcome must be running, done or failed, not '{other}'"
                ));
            }
        };
        Ok(WorkReport {
            kind,
            task,
            action,
            undo: s.undo.unwrap_or(false),
            outcome,
        })
    }

    /// Checks an agent's orders against `drain` / `cordon`: `idle`, `hold`,
    /// `do <task> <position>` or `undo <task> <position>`.
    fn check_orders(
        &self,
        s: &Step,
        node: u32,
        drain: &Order,
        cordon: &Order,
    ) -> Result<(), String> {
        for (name, want, got) in [("drain", &s.drain, drain), ("cordon", &s.cordon, cordon)] {
            let Some(want) = want else { continue };
            let shown = self.order_text(got);
            if &shown != want {
                return Err(format!(
                    "node {node} {name} order: expected '{want}', got '{shown}'"
                ));
            }
        }
        Ok(())
    }

    /// An order in the words of `check_orders`, naming the action by its position.
    fn order_text(&self, o: &Order) -> String {
        let named = |verb: &str, task: &str, action: &str| {
            let pos = self
                .positions
                .get(task)
                .and_then(|ids| ids.iter().position(|id| id == action))
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("?{action}"));
            format!("{verb} {task} {pos}")
        };
        match o {
            Order::Idle => "idle".into(),
            Order::Hold => "hold".into(),
            Order::Do { task, action } => named("do", task, action),
            Order::Undo { task, action } => named("undo", task, action),
        }
    }

    /// Checks `State::validate_fence` for one token on a node or disk.
    fn fence(&self, s: &Step) -> Result<(), String> {
        let node = s.node.ok_or("fence needs node")?;
        let token = match (&s.token, &s.token_of) {
            (Some(t), None) => *t,
            (None, Some((task, pos))) => {
                let id = self
                    .positions
                    .get(task)
                    .and_then(|ids| ids.get(*pos))
                    .ok_or(format!("no action [{pos}] of task {task}"))?;
                *self
                    .tokens
                    .get(&(task.clone(), id.clone()))
                    .ok_or(format!("action [{pos}] of task {task} was never granted"))?
            }
            _ => return Err("fence needs token or token_of".into()),
        };
        let want = s
            .fence
            .as_deref()
            .ok_or("fence needs fence (the expected state)")?;
        let got = self.state.validate_fence(node, s.pdisk_id, token, self.now);
        let shown = format!("{} ({})", got.state.name(), got.detail);
        if got.state.name() != want {
            return Err(format!("token {token}: expected {want}, got {shown}"));
        }
        if let Some(task) = &s.fence_task
            && got.task.as_deref() != Some(task.as_str())
        {
            return Err(format!("token {token}: expected task {task}, got {shown}"));
        }
        if let Some(ago) = &s.fence_ago {
            let expected = Some(self.now.minus(dur(ago)?));
            if got.when != expected {
                return Err(format!(
                    "token {token}: expected when {expected:?}, got {:?}: {shown}",
                    got.when
                ));
            }
        }
        Ok(())
    }

    fn complete_uids(&self, s: &Step) -> Result<Vec<(String, String)>, String> {
        let list = s
            .actions
            .as_ref()
            .and_then(toml::Value::as_array)
            .ok_or("complete needs actions")?;
        let mut out = Vec::new();
        for v in list {
            let (task, pos) = match v {
                toml::Value::Integer(i) => (s.task.clone().ok_or("complete needs task")?, *i),
                toml::Value::Array(pair) => match pair.as_slice() {
                    [toml::Value::String(t), toml::Value::Integer(i)] => (t.clone(), *i),
                    _ => return Err("complete pairs are [task, position]".into()),
                },
                _ => return Err("complete actions are positions or [task, position] pairs".into()),
            };
            let id = self
                .positions
                .get(&task)
                .and_then(|ids| ids.get(usize::try_from(pos).ok()?))
                .cloned()
                // An unknown task or position completes a made-up action, to test the errors.
                .unwrap_or_else(|| format!("no-such-action-{pos}"));
            out.push((task, id));
        }
        Ok(out)
    }

    fn expect(
        &self,
        s: &Step,
        result: Result<Option<TaskView>, EngineError>,
    ) -> Result<(), String> {
        let view = match (result, &s.error) {
            (Err(e), Some(kind)) => {
                let got = match e.kind() {
                    ErrorKind::BadRequest => "bad_request",
                    ErrorKind::Unsupported => "unsupported",
                    ErrorKind::Unavailable => "unavailable",
                };
                if got != kind {
                    return Err(format!("expected error {kind}, got {got}: {e}"));
                }
                if let Some(text) = &s.error_contains
                    && !e.to_string().contains(text.as_str())
                {
                    return Err(format!("error '{e}' does not contain '{text}'"));
                }
                return Ok(());
            }
            (Err(e), None) => return Err(format!("unexpected error: {e}")),
            (Ok(v), Some(kind)) => {
                let shown = v.as_ref().map(show).unwrap_or_default();
                return Err(format!("expected error {kind}, but it succeeded {shown}"));
            }
            (Ok(v), None) => v,
        };
        let Some(view) = view else { return Ok(()) };
        let actions: Vec<&ActionView> = view.actions().collect();
        if let Some(want) = s.actions.as_ref().filter(|_| s.op != "complete") {
            let want = want.as_array().ok_or("actions must be a list of strings")?;
            if want.len() != actions.len() {
                return Err(format!(
                    "expected {} actions, got {}: {}",
                    want.len(),
                    actions.len(),
                    show(&view)
                ));
            }
            for (i, (w, a)) in want.iter().zip(&actions).enumerate() {
                let w = w.as_str().ok_or("actions must be strings")?;
                let mut words = w.split_whitespace();
                let ok = match (words.next(), words.next()) {
                    // PERFORMED on the wire: granted, and its work (if any) done.
                    (Some("performed"), None) => a.is_performed() && !a.in_progress(),
                    (Some("in_progress"), None) => a.in_progress(),
                    (Some("granted"), None) => a.is_performed(),
                    (Some("pending"), None) => !a.is_performed(),
                    (Some("pending"), Some(r)) => a.reason().map(reason_name) == Some(r),
                    _ => return Err(format!("bad action expectation '{w}'")),
                };
                if !ok {
                    return Err(format!("action [{i}]: expected '{w}': {}", show(&view)));
                }
            }
        }
        for (i, texts) in s.details.iter().flatten() {
            let i: usize = i.parse().map_err(|_| format!("bad details index '{i}'"))?;
            let a = actions
                .get(i)
                .ok_or(format!("no action [{i}]: {}", show(&view)))?;
            for t in texts {
                if !details(a).contains(t.as_str()) {
                    return Err(format!("action [{i}] details lack '{t}': {}", show(&view)));
                }
            }
        }
        if let Some(want) = &s.retry_after {
            let expected = if want == "none" {
                None
            } else {
                Some(self.now.plus(dur(want)?))
            };
            if view.retry_after != expected {
                return Err(format!(
                    "retry_after: expected {expected:?}, got {:?}: {}",
                    view.retry_after,
                    show(&view)
                ));
            }
        }
        for (i, d) in s.deadlines.iter().flatten() {
            let i: usize = i
                .parse()
                .map_err(|_| format!("bad deadlines index '{i}'"))?;
            let a = actions
                .get(i)
                .ok_or(format!("no action [{i}]: {}", show(&view)))?;
            let expected = if d == "never" {
                Some(Timestamp::NEVER)
            } else {
                Some(self.now.plus(dur(d)?))
            };
            if a.deadline() != expected {
                return Err(format!(
                    "action [{i}] deadline: expected {expected:?}, got {:?}",
                    a.deadline()
                ));
            }
        }
        Ok(())
    }
}

fn run(path: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sc: Scenario = toml::from_str(&text).map_err(|e| format!("bad scenario file: {e}"))?;
    if sc.name.trim().is_empty() || sc.about.trim().is_empty() {
        return Err("a scenario needs a name and an about".into());
    }
    let generated = match &sc.cluster {
        Some(g) => generate(g)?,
        None => String::new(),
    };
    let mut inv = generated.clone();
    inv.push_str(&sc.inventory);
    if let Some(extra) = sc.cluster.as_ref().and_then(|g| g.inventory.as_deref()) {
        inv.push('\n');
        inv.push_str(extra);
    }
    let cluster = inventory::parse(&inv, Format::Toml).map_err(|e| e.to_string())?;
    let health = match &sc.health {
        None => HealthConfig::default(),
        Some(h) => HealthConfig {
            heartbeat_timeout: h.heartbeat_timeout.as_deref().map(dur).transpose()?,
            settle: h
                .settle
                .as_deref()
                .map(dur)
                .transpose()?
                .unwrap_or_default(),
            ring_settle: h
                .ring_settle
                .as_deref()
                .map(dur)
                .transpose()?
                .unwrap_or(arbiter_server::engine::DEFAULT_RING_SETTLE),
        },
    };
    let mut state = State::new(Arc::new(cluster));
    state.set_health(health);
    let mut r = Runner {
        state,
        health,
        generated,
        records: Snapshot::default(),
        now: START,
        positions: BTreeMap::new(),
        tokens: BTreeMap::new(),
    };
    for (i, s) in sc.step.iter().enumerate() {
        r.step(s).map_err(|e| {
            format!(
                "step {} ({}{}): {e}",
                i + 1,
                s.op,
                s.task
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default()
            )
        })?;
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let trials = files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name, move || run(&p))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
