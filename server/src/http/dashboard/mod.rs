//! The live web dashboard: one page at `/`, served from the binary itself (the HTML, script and
//! style sheet are compiled in with `include_str!`: no build step, no CDN), read-only.
//!
//! - `/` ([`index`]), `/ui/app.js`, `/ui/style.css`: the page. Static, no data: it loads
//!   without a token.
//! - `/ui/state` ([`state`]): the JSON the page renders ([`UiState`]), built from one query on
//!   the writer: nodes by data center and rack with their display state, lock holder, deadline
//!   and why they are unavailable; tasks with each action's state, reason and hold in plain
//!   words; freezes, read-only mode, maintenance windows; the last [`AUDIT_ENTRIES`] audit
//!   entries.
//! - `/ui/events` ([`events`]): server-sent events, one `state` event with the same JSON on
//!   connect, after every committed change ([`crate::writer::COMMITS`], at most one per
//!   [`MIN_GAP`]), and every [`RESEND`] anyway (deadlines and windows move with time).
//!
//! With `--auth` both data routes need a token as `Authorization: Bearer` (any role: viewers
//! too). The page asks for it once and keeps it in the tab's `sessionStorage`; it reads the event
//! stream with `fetch` (which can send the header; `EventSource` cannot), so a token never
//! appears in a URL, a cookie or a log line. Nothing the page shows is a token: users are names
//! (in open mode the user is whatever ticket the caller sent, which is not a secret there).

use super::Api;
use super::error::ApiError;
use crate::engine::audit::{AuditEntry, AuditQuery};
use crate::engine::freeze::FreezeScope;
use crate::engine::report::{NodeCondition, NodeState, NodeView, WindowStatus};
use crate::engine::task::{ActionStatus, Reason, Scope};
use crate::engine::windows::WindowScope;
use crate::engine::{NodeId, State, Timestamp};
use crate::identity::Caller;
use crate::service::error::ServiceError;
use axum::Json;
use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// How many recent audit entries the page shows.
pub const AUDIT_ENTRIES: usize = 20;
/// The event stream re-sends the state this often without a change.
pub const RESEND: Duration = Duration::from_secs(3);
/// The least time between two events of one stream (a burst of commits is one event).
pub const MIN_GAP: Duration = Duration::from_millis(200);

/// The dashboard's routes.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/style.css", get(style_css))
        .route("/ui/state", get(state))
        .route("/ui/events", get(events))
}

/// Headers of the static page: no inline script may run (everything comes from this origin),
/// no framing, no referrer.
fn page_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

async fn index() -> Response {
    (page_headers("text/html; charset=utf-8"), INDEX_HTML).into_response()
}

async fn app_js() -> Response {
    (page_headers("text/javascript; charset=utf-8"), APP_JS).into_response()
}

async fn style_css() -> Response {
    (page_headers("text/css; charset=utf-8"), STYLE_CSS).into_response()
}

/// The caller of a data route: any known caller may look (viewers too).
fn caller(api: &Api, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let meta = MetadataMap::from_headers(headers.clone());
    api.ctx
        .identity
        .resolve(&meta)
        .map_err(|e| ApiError::from(ServiceError::from(e)))
}

/// `GET /ui/state`: what the page shows, as JSON.
async fn state(AxumState(api): AxumState<Api>, headers: HeaderMap) -> Response {
    if let Err(e) = caller(&api, &headers) {
        return e.into_response();
    }
    match snapshot(&api).await {
        Ok(s) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(s),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn snapshot(api: &Api) -> Result<UiState, ApiError> {
    let auth = api.ctx.identity.is_enforcing();
    Ok(api
        .ctx
        .query(move |s, now| Ok(UiState::of(s, now, auth)))
        .await?)
}

/// `GET /ui/events`: the state as server-sent events (`event: state`), on connect, after each
/// committed change and every [`RESEND`]; an `event: error` with the refusal's JSON when the
/// state cannot be read (this instance stopped leading), then the stream ends.
async fn events(AxumState(api): AxumState<Api>, headers: HeaderMap) -> Response {
    if let Err(e) = caller(&api, &headers) {
        return e.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(2);
    let mut commits = crate::writer::COMMITS.subscribe();
    let mut shutdown = api.ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let event = match snapshot(&api).await {
                Ok(s) => Event::default().event("state").json_data(&s),
                Err(e) => {
                    let body = super::error::ErrorBody {
                        code: e.code,
                        message: e.message,
                    };
                    let ev = Event::default().event("error").json_data(&body);
                    if let Ok(ev) = ev {
                        let _ = tx.send(Ok(ev)).await;
                    }
                    return;
                }
            };
            let Ok(event) = event else { return };
            if tx.send(Ok(event)).await.is_err() {
                return; // the viewer went away
            }
            tokio::time::sleep(MIN_GAP).await;
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RESEND) => {}
                () = tx.closed() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    });
    let sse = Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default());
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        sse,
    )
        .into_response()
}

// ----- the JSON the page renders ---------------------------------------------------------

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct UiState {
    /// The server's time of the query (RFC 3339, UTC) and in milliseconds since the epoch.
    pub now: String,
    /// The same in milliseconds.
    pub now_ms: u64,
    /// Whether an auth file is enforced.
    pub auth: bool,
    /// Read-only mode, when on.
    pub read_only: Option<UiReadOnly>,
    /// The freezes that hold now.
    pub freezes: Vec<UiFreeze>,
    /// The maintenance windows of the inventory.
    pub windows: Vec<UiWindow>,
    /// Every node, ascending by id.
    pub nodes: Vec<UiNode>,
    /// Every task, more important first, then older first.
    pub tasks: Vec<UiTask>,
    /// The most recent audit entries, newest first.
    pub audit: Vec<UiAudit>,
}

/// Read-only mode.
#[derive(Debug, Serialize)]
pub struct UiReadOnly {
    /// Who turned it on.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: String,
    /// The sentence pending details use.
    pub text: String,
}

/// One freeze.
#[derive(Debug, Serialize)]
pub struct UiFreeze {
    /// "cluster", "tenant" or "data_center".
    pub kind: &'static str,
    /// The tenant or data center it names ("" for the cluster).
    pub name: String,
    /// The scope in words ("data center 'dc-1'").
    pub scope: String,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: String,
    /// When it ends on its own, if ever.
    pub until: Option<String>,
    /// The sentence pending details use.
    pub text: String,
}

/// One maintenance window.
#[derive(Debug, Serialize)]
pub struct UiWindow {
    /// Its name.
    pub name: String,
    /// Its IANA zone.
    pub zone: String,
    /// "Mon-Fri 22:00-04:00".
    pub schedule: String,
    /// Which nodes it covers, in words.
    pub scope: String,
    /// Whether it is open now.
    pub open: bool,
    /// When open: when it closes (UTC).
    pub open_until: Option<String>,
    /// When closed: when it next opens (UTC).
    pub next_open: Option<String>,
    /// That instant in the window's zone.
    pub local: Option<String>,
    /// Whether a lock granted inside ends when the window does.
    pub cut: bool,
}

/// One node.
#[derive(Debug, Serialize)]
pub struct UiNode {
    /// Its id.
    pub id: NodeId,
    /// Its host.
    pub host: String,
    /// Its interconnect port.
    pub port: u32,
    /// Data center ("" when the inventory names none).
    pub dc: String,
    /// Module (room) within it.
    pub module: String,
    /// Rack.
    pub rack: String,
    /// Unit within the rack.
    pub unit: String,
    /// Tenant of a dynamic node ("" for a storage node).
    pub tenant: String,
    /// What the tile shows, one of: up, locked, entering, maintenance, restarting, settling,
    /// down, unknown.
    pub display: &'static str,
    /// The engine's condition (up, locked, restarting, settling, down, unknown).
    pub condition: &'static str,
    /// YDB's state (up, maintenance, down).
    pub state: &'static str,
    /// Whether the checks count it available.
    pub available: bool,
    /// Whether an agent reports heartbeats for it.
    pub monitored: bool,
    /// The node-wide lock on it.
    pub lock: Option<UiLock>,
    /// Disk locks on its disks.
    pub disk_locks: Vec<UiDiskLock>,
    /// Why it is unavailable without a lock, in words.
    pub detail: Option<String>,
    /// Its last heartbeat since this server started.
    pub last_heartbeat: Option<String>,
    /// When last seen coming up.
    pub up_since: Option<String>,
    /// Its software version.
    pub version: Option<String>,
    /// Its maintenance windows now.
    pub window: Option<UiNodeWindow>,
    /// Tasks with pending actions about it.
    pub waiting: Vec<String>,
}

/// A node-wide lock.
#[derive(Debug, Serialize)]
pub struct UiLock {
    /// The task holding it.
    pub task: String,
    /// The task's owner.
    pub owner: String,
    /// The task's description.
    pub description: String,
    /// When it lapses unless completed (UTC).
    pub deadline: String,
    /// The same in milliseconds since the epoch.
    pub deadline_ms: u64,
}

/// A disk lock.
#[derive(Debug, Serialize)]
pub struct UiDiskLock {
    /// The disk ("pdisk 3:1" or "pdisk host:/dev/...").
    pub disk: String,
    /// The task holding it.
    pub task: String,
    /// Its owner.
    pub owner: String,
    /// When it lapses (UTC).
    pub deadline: String,
}

/// A node's windows now.
#[derive(Debug, Serialize)]
pub struct UiNodeWindow {
    /// The windows' names.
    pub names: Vec<String>,
    /// Whether one is open.
    pub open: bool,
    /// When the open one closes, or the soonest opening, in the window's zone.
    pub local: Option<String>,
    /// The zone.
    pub zone: String,
}

/// One task.
#[derive(Debug, Serialize)]
pub struct UiTask {
    /// Its uid.
    pub uid: String,
    /// Its owner.
    pub owner: String,
    /// Its description.
    pub description: String,
    /// Its availability mode.
    pub mode: &'static str,
    /// Its priority (lower is more important).
    pub priority: i32,
    /// "granted", "waiting" or "partly granted".
    pub status: &'static str,
    /// When created.
    pub created: String,
    /// When last refreshed.
    pub refreshed: String,
    /// When it will be tried again, if known.
    pub retry_after: Option<String>,
    /// An admin's override of freezes, windows and budgets.
    pub override_holds: bool,
    /// Its remaining actions, in request order.
    pub actions: Vec<UiAction>,
}

/// One action of a task.
#[derive(Debug, Serialize)]
pub struct UiAction {
    /// Its id.
    pub id: String,
    /// Its group's id.
    pub group: String,
    /// What it locks, in words ("node 3", "host 'h1'").
    pub scope: String,
    /// The nodes it is about.
    pub nodes: Vec<NodeId>,
    /// "performed", "in_progress" (granted, its drain or cordon still running) or "pending".
    pub state: &'static str,
    /// When performed: the lock's deadline.
    pub deadline: Option<String>,
    /// When performed: its fencing token (not a secret: a lock's generation).
    pub fencing_token: Option<u64>,
    /// When pending: the reason code (YDB's, plus FROZEN, OUTSIDE_WINDOW, RATE_BUDGET).
    pub reason: Option<&'static str>,
    /// When pending: the reason in plain words.
    pub reason_text: Option<&'static str>,
    /// When pending and held back by a rule of when: "frozen", "window" or "budget".
    pub hold: Option<&'static str>,
    /// When pending: the blocker, as the engine names it.
    pub details: String,
}

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct UiAudit {
    /// Its sequence number.
    pub seq: u64,
    /// When (UTC).
    pub time: String,
    /// Its kind (`lock_granted`).
    pub kind: &'static str,
    /// Who.
    pub user: String,
    /// Their role.
    pub role: String,
    /// The task it is about.
    pub task: String,
    /// The nodes it is about.
    pub nodes: Vec<NodeId>,
    /// What happened.
    pub detail: String,
    /// Whether forced.
    pub force: bool,
}

fn ts(t: Timestamp) -> String {
    t.to_string()
}

impl UiState {
    /// The page's view of `s` at `now`.
    pub fn of(s: &State, now: Timestamp, auth: bool) -> UiState {
        let cluster = s.cluster();
        let mut tasks: Vec<_> = s
            .task_uids(None)
            .iter()
            .filter_map(|uid| s.task(uid))
            .collect();
        tasks.sort_by(|a, b| {
            (a.priority, a.create_time, &a.uid).cmp(&(b.priority, b.create_time, &b.uid))
        });
        let mut disk_locks: BTreeMap<NodeId, Vec<UiDiskLock>> = BTreeMap::new();
        let mut waiting: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
        let ui_tasks = tasks
            .iter()
            .map(|t| {
                let mut actions = Vec::new();
                for g in &t.groups {
                    for a in &g.actions {
                        let nodes = s.audit_scope_nodes(&a.scope);
                        let mut ui = UiAction {
                            id: a.id.clone(),
                            group: g.id.clone(),
                            scope: a.scope.to_string(),
                            nodes: nodes.clone(),
                            state: "pending",
                            deadline: None,
                            fencing_token: None,
                            reason: None,
                            reason_text: None,
                            hold: None,
                            details: String::new(),
                        };
                        match &a.status {
                            ActionStatus::Performed {
                                deadline,
                                fencing_token,
                                ..
                            } => {
                                ui.state = "performed";
                                if let Some(w) = &a.work {
                                    // Granted, its drain or cordon running or done.
                                    ui.details = w.details.clone();
                                    if !w.done {
                                        ui.state = "in_progress";
                                    }
                                }
                                ui.deadline =
                                    (*deadline != Timestamp::NEVER).then(|| ts(*deadline));
                                ui.fencing_token = Some(*fencing_token);
                                if matches!(a.scope, Scope::PDisk(_) | Scope::PDiskPath { .. }) {
                                    for n in &nodes {
                                        disk_locks.entry(*n).or_default().push(UiDiskLock {
                                            disk: a.scope.to_string(),
                                            task: t.uid.clone(),
                                            owner: t.owner.clone(),
                                            deadline: ts(*deadline),
                                        });
                                    }
                                }
                            }
                            ActionStatus::Pending { reason, details } => {
                                let (code, text, hold) = reason_words(*reason);
                                ui.reason = Some(code);
                                ui.reason_text = Some(text);
                                ui.hold = hold;
                                ui.details = details.clone();
                                for n in &nodes {
                                    let w = waiting.entry(*n).or_default();
                                    if !w.contains(&t.uid) {
                                        w.push(t.uid.clone());
                                    }
                                }
                            }
                        }
                        actions.push(ui);
                    }
                }
                let performed = actions.iter().filter(|a| a.state == "performed").count();
                UiTask {
                    uid: t.uid.clone(),
                    owner: t.owner.clone(),
                    description: t.description.clone(),
                    mode: t.mode.name(),
                    priority: t.priority,
                    status: if performed == actions.len() {
                        "granted"
                    } else if performed == 0 {
                        "waiting"
                    } else {
                        "partly granted"
                    },
                    created: ts(t.create_time),
                    refreshed: ts(t.last_refresh_time),
                    retry_after: t.retry_after.map(ts),
                    override_holds: t.override_holds,
                    actions,
                }
            })
            .collect();
        let nodes = s
            .nodes_at(now)
            .into_iter()
            .filter_map(|v| {
                let n = cluster.node(v.id)?;
                let lock = v.lock.as_ref().map(|(task, deadline)| {
                    let t = tasks.iter().find(|t| t.uid == *task);
                    UiLock {
                        task: task.clone(),
                        owner: t.map(|t| t.owner.clone()).unwrap_or_default(),
                        description: t.map(|t| t.description.clone()).unwrap_or_default(),
                        deadline: ts(*deadline),
                        deadline_ms: deadline.as_millis(),
                    }
                });
                let loc = &n.location;
                Some(UiNode {
                    id: v.id,
                    host: n.host.clone(),
                    port: n.port,
                    dc: loc.data_center.clone().unwrap_or_default(),
                    module: loc.module.clone().unwrap_or_default(),
                    rack: loc.rack.clone().unwrap_or_default(),
                    unit: loc.unit.clone().unwrap_or_default(),
                    tenant: n.tenant.clone().unwrap_or_default(),
                    display: display(&v),
                    condition: v.condition.name(),
                    state: match v.state {
                        NodeState::Up => "up",
                        NodeState::Maintenance => "maintenance",
                        NodeState::Down => "down",
                    },
                    available: v.available,
                    monitored: v.monitored,
                    lock,
                    disk_locks: disk_locks.remove(&v.id).unwrap_or_default(),
                    detail: v.detail.clone(),
                    last_heartbeat: v.last_heartbeat.map(ts),
                    up_since: v.up_since.map(ts),
                    version: v.version.clone().or_else(|| n.version.clone()),
                    window: v.window.as_ref().map(node_window),
                    waiting: waiting.remove(&v.id).unwrap_or_default(),
                })
            })
            .collect();
        let windows = cluster
            .windows()
            .iter()
            .map(|w| {
                let open = w.is_open(now);
                let open_until = if open { w.open_until(now) } else { None };
                let next_open = if open { None } else { w.next_open(now) };
                UiWindow {
                    name: w.name.clone(),
                    zone: w.zone_name.clone(),
                    schedule: schedule(&w.days, w.start, w.end),
                    scope: match &w.scope {
                        WindowScope::All => "every node".to_owned(),
                        WindowScope::Tenant(t) => format!("tenant '{t}'"),
                        WindowScope::DataCenter(d) => format!("data center '{d}'"),
                        WindowScope::Nodes(ns) => {
                            let ids: Vec<String> = ns.iter().map(|n| n.to_string()).collect();
                            format!("nodes {}", ids.join(", "))
                        }
                    },
                    open,
                    open_until: open_until.map(ts),
                    next_open: next_open.map(ts),
                    local: open_until.or(next_open).map(|t| w.local_text(t)),
                    cut: w.cut,
                }
            })
            .collect();
        let last = s.last_audit_seq();
        let page = s.audit_query(&AuditQuery {
            after_seq: last.saturating_sub(AUDIT_ENTRIES as u64),
            limit: AUDIT_ENTRIES,
            ..AuditQuery::default()
        });
        let audit = page.entries.iter().rev().map(ui_audit).collect();
        UiState {
            now: ts(now),
            now_ms: now.as_millis(),
            auth,
            read_only: s.read_only().map(|r| UiReadOnly {
                by: r.by.clone(),
                reason: r.reason.clone(),
                since: ts(r.since),
                text: r.text(),
            }),
            freezes: s
                .freezes(now)
                .iter()
                .map(|f| UiFreeze {
                    kind: match f.scope {
                        FreezeScope::Cluster => "cluster",
                        FreezeScope::Tenant(_) => "tenant",
                        FreezeScope::DataCenter(_) => "data_center",
                    },
                    name: match &f.scope {
                        FreezeScope::Cluster => String::new(),
                        FreezeScope::Tenant(n) | FreezeScope::DataCenter(n) => n.clone(),
                    },
                    scope: f.scope.to_string(),
                    by: f.by.clone(),
                    reason: f.reason.clone(),
                    since: ts(f.since),
                    until: f.until.map(ts),
                    text: f.text(),
                })
                .collect(),
            windows,
            nodes,
            tasks: ui_tasks,
            audit,
        }
    }
}

/// What a node's tile shows: the engine's condition (a node-wide lock: entering maintenance
/// while it drains or still runs, in maintenance once drained or seen down; a lock on a node
/// without an agent shows as locked: nothing more is known of it).
fn display(v: &NodeView) -> &'static str {
    match v.condition {
        NodeCondition::Entering => "entering",
        NodeCondition::InMaintenance if v.monitored => "maintenance",
        NodeCondition::InMaintenance => "locked",
        c => c.name(),
    }
}

fn node_window(w: &WindowStatus) -> UiNodeWindow {
    UiNodeWindow {
        names: w.names.clone(),
        open: w.open,
        local: w.local.clone(),
        zone: w.zone.clone(),
    }
}

fn ui_audit(e: &AuditEntry) -> UiAudit {
    UiAudit {
        seq: e.seq,
        time: ts(e.time),
        kind: e.kind.name(),
        user: e.user.clone(),
        role: e.role.clone(),
        task: e.task.clone(),
        nodes: e.nodes.clone(),
        detail: e.detail.clone(),
        force: e.force,
    }
}

/// A pending reason: its code, its meaning in plain words, and the rule of when that holds the
/// action back, if one does.
fn reason_words(r: Reason) -> (&'static str, &'static str, Option<&'static str>) {
    match r {
        Reason::Generic => (
            "GENERIC",
            "waits for a conflicting lock or a more important task",
            None,
        ),
        Reason::TooManyUnavailableVDisks => (
            "TOO_MANY_UNAVAILABLE_VDISKS",
            "a storage group would lose too many disks",
            None,
        ),
        Reason::TooManyUnavailableStateStorageRings => (
            "TOO_MANY_UNAVAILABLE_STATE_STORAGE_RINGS",
            "too many state-storage rings would be unavailable",
            None,
        ),
        Reason::DisabledNodesLimitReached => (
            "DISABLED_NODES_LIMIT_REACHED",
            "the cluster's limit of unavailable nodes is reached",
            None,
        ),
        Reason::TenantDisabledNodesLimitReached => (
            "TENANT_DISABLED_NODES_LIMIT_REACHED",
            "a tenant's limit of unavailable nodes is reached",
            None,
        ),
        Reason::SysTabletsNodeLimitReached => (
            "SYS_TABLETS_NODE_LIMIT_REACHED",
            "a system tablet would lose too many nodes",
            None,
        ),
        Reason::Frozen => ("FROZEN", "held back by a change freeze", Some("frozen")),
        Reason::OutsideWindow => (
            "OUTSIDE_WINDOW",
            "outside its maintenance window",
            Some("window"),
        ),
        Reason::RateBudget => (
            "RATE_BUDGET",
            "the rate budget is used up for now",
            Some("budget"),
        ),
    }
}

/// "Mon-Fri 22:00-04:00", "every day 00:00-24:00".
fn schedule(days: &[bool; 7], start: u16, end: u16) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let days = if days.iter().all(|d| *d) {
        "every day".to_owned()
    } else {
        // Runs of consecutive days: "Mon-Fri", "Sat, Sun" stays "Sat-Sun".
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if days[i] {
                let mut j = i;
                while j + 1 < 7 && days[j + 1] {
                    j += 1;
                }
                parts.push(if i == j {
                    NAMES[i].to_owned()
                } else {
                    format!("{}-{}", NAMES[i], NAMES[j])
                });
                i = j + 1;
            } else {
                i += 1;
            }
        }
        if parts.is_empty() {
            "never".to_owned()
        } else {
            parts.join(", ")
        }
    };
    format!("{days} {}-{}", hm(start), hm(end))
}

#[cfg(test)]
mod tests;
