//! FleetLock (Zincati on Fedora CoreOS, Flatcar's `fleetlockctl`): `POST /v1/pre-reboot` and
//! `POST /v1/steady-state`, a counting semaphore per reboot group on top of every normal check.
//!
//! - Both calls need the header `fleet-lock-protocol: true` and a body
//!   `{"client_params": {"id": "...", "group": "..."}}`, read whatever its content type (Zincati
//!   sends none; early versions named the id `node_uuid`).
//! - The id names a node: the node whose inventory `machine_id` it is, else the only node of the
//!   host of that name. The group is `[fleetlock.groups.NAME]` (without a `[fleetlock]` table,
//!   one group "default": 1 slot over every node), and the node must be in its scope.
//! - pre-reboot (RecursiveLock): a node that holds its lock gets 200 again. Otherwise, when the
//!   group's slots are all held by other nodes: 423 `failed_lock_semaphore_full`. Otherwise the
//!   lock is a task `fleetlock:<group>:<node id>` (owned by the caller, or "fleetlock" when no
//!   token was sent) locking the node for the group's `lock_duration` (capped at
//!   `--max-lock-duration`) in the group's mode, checked as any task is (failure model, limits,
//!   freezes, windows, budgets): granted → 200; pending → 423 `failed_lock` with the pending
//!   reason and details, and nothing kept (the client asks again, every 5 minutes for Zincati).
//! - steady-state (UnlockIfHeld): completes that task, releasing the lock; 200 also when the node
//!   holds none. A node that never reports steady-state loses its lock at its deadline, as any
//!   lock lapses.
//! - Identity: the same tokens as everywhere (`Authorization: Bearer`), operators and admins.
//!   Zincati sends none: in open mode it is served as "fleetlock"; with `--auth`, a call with no
//!   token is accepted (as the operator "fleetlock") only by a group with
//!   `unauthenticated = true`.
//! - Refusals are the protocol's `{"kind": "...", "value": "..."}` with a 4xx/5xx status; the
//!   kinds are a small fixed set (see [`FleetError`]).
//!
//! The semaphore check, the task's check and its creation run in one writer job, so two nodes
//! asking at once cannot both take the last slot.

use super::error::ApiError;
use super::{Api, Call};
use crate::engine::audit::{self as trail, AuditEntry, AuditKind};
use crate::engine::cluster::FleetLockGroup;
use crate::engine::task::ActionStatus;
use crate::engine::{Change, LockRequest, NodeId, Outcome, Reason, Scope, State, TaskRequest};
use crate::engine::{TaskView, Timestamp};
use crate::identity::{AuthError, Caller, Role};
use crate::service::error::ServiceError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The header both calls must carry, with the value `true`.
pub const PROTOCOL_HEADER: &str = "fleet-lock-protocol";

/// The owner of locks taken without a token.
pub const OWNER: &str = "fleetlock";

/// The prefix of FleetLock's task uids: `fleetlock:<group>:<node id>`.
pub const TASK_PREFIX: &str = "fleetlock:";

/// The routes of this module.
pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/v1/pre-reboot",
            post(pre_reboot).fallback(method_not_allowed),
        )
        .route(
            "/v1/steady-state",
            post(steady_state).fallback(method_not_allowed),
        )
}

/// A FleetLock refusal: `{"kind": ..., "value": ...}` with a non-2xx status. The kinds:
///
/// | kind | status | when |
/// |---|---|---|
/// | `missing_header` | 400 | no `fleet-lock-protocol: true` |
/// | `method_not_allowed` | 405 | not a POST |
/// | `decode_error` | 400 | the body is not `{"client_params": {"id", "group"}}` |
/// | `invalid_client_params` | 400 | an empty id, a group not `^[a-zA-Z0-9.-]+$` |
/// | `unknown_group` | 404 | no such group in the inventory |
/// | `unknown_id` | 404 | the id is no node's `machine_id` and no single node's host |
/// | `not_in_group` | 403 | the node is outside the group's scope |
/// | `failed_lock_semaphore_full` | 423 | the group's slots are held by other nodes |
/// | `failed_lock` | 423 (or the refusal's) | the lock waits (failure model, limits, freezes...) or was refused |
/// | `failed_unlock` | the refusal's | the release was refused (e.g. read-only mode) |
/// | `unauthorized`, `forbidden` | 401, 403 | identity and roles |
/// | `not_leader`, `unavailable`, `overloaded`, `internal_error` | 503, 503, 429, 500 | the server |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable kind (Zincati's metrics label).
    pub kind: &'static str,
    /// What happened, for people (Zincati logs it).
    pub value: String,
}

/// The JSON body of a refusal.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The kind.
    pub kind: String,
    /// The text.
    pub value: String,
}

impl FleetError {
    fn new(status: StatusCode, kind: &'static str, value: impl Into<String>) -> FleetError {
        FleetError {
            status,
            kind,
            value: value.into(),
        }
    }

    /// A refusal of the service or the engine during `op`, in FleetLock's words.
    fn service(e: ServiceError, op: Op) -> FleetError {
        let api = ApiError::from(e);
        let kind = match api.code {
            "UNAUTHORIZED" => "unauthorized",
            "FORBIDDEN" => "forbidden",
            "NOT_LEADER" => "not_leader",
            "OVERLOADED" => "overloaded",
            "UNAVAILABLE" => "unavailable",
            "INTERNAL_ERROR" => "internal_error",
            _ => op.failed(),
        };
        FleetError::new(api.status, kind, api.message)
    }
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            kind: self.kind.to_owned(),
            value: self.value,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Which call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lock,
    Unlock,
}

impl Op {
    fn failed(self) -> &'static str {
        match self {
            Op::Lock => "failed_lock",
            Op::Unlock => "failed_unlock",
        }
    }
}

/// The body of both calls.
#[derive(Debug, Deserialize)]
struct Payload {
    client_params: ClientParams,
}

/// Who asks, and for which group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClientParams {
    /// The lock holder's id (Zincati: its app-specific machine id).
    #[serde(alias = "node_uuid")]
    pub id: String,
    /// The reboot group.
    pub group: String,
}

/// The request as the protocol requires it: the header, then the body.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<ClientParams, FleetError> {
    let header = headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if !header.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(FleetError::new(
            StatusCode::BAD_REQUEST,
            "missing_header",
            format!("the header '{PROTOCOL_HEADER}: true' is required"),
        ));
    }
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        FleetError::new(
            StatusCode::BAD_REQUEST,
            "decode_error",
            format!(
                "the body must be {{\"client_params\": {{\"id\": \"...\", \"group\": \"...\"}}}}: {e}"
            ),
        )
    })?;
    let p = payload.client_params;
    if p.id.is_empty() {
        return Err(FleetError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client_params",
            "client_params.id must not be empty",
        ));
    }
    if p.id.len() > crate::engine::state::MAX_ID_LEN {
        return Err(FleetError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client_params",
            format!(
                "client_params.id is longer than {} bytes",
                crate::engine::state::MAX_ID_LEN
            ),
        ));
    }
    if !crate::engine::inventory::valid_fleetlock_group(&p.group) {
        return Err(FleetError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client_params",
            format!(
                "invalid client_params.group '{}': 1 to 64 of a-z, A-Z, 0-9, '.', '-'",
                p.group.escape_debug()
            ),
        ));
    }
    Ok(p)
}

/// The task uid of `node`'s lock in `group`.
pub fn task_uid(group: &str, node: NodeId) -> String {
    format!("{TASK_PREFIX}{group}:{node}")
}

/// The caller, as far as it is known before the writer looks at the group.
#[derive(Debug, Clone)]
enum Who {
    /// Identified (a token, or open mode).
    Caller(Caller),
    /// `--auth` and no token: acceptable only to a group with `unauthenticated = true`.
    NoToken,
}

impl Who {
    /// The caller in `group`, who must be an operator.
    fn in_group(&self, group: &FleetLockGroup, op: Op) -> Result<Caller, FleetError> {
        let caller = match self {
            Who::Caller(c) => c.clone(),
            Who::NoToken if group.unauthenticated => unauthenticated(),
            Who::NoToken => {
                return Err(FleetError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!(
                        "{}; FleetLock group '{}' accepts no caller without one (Zincati cannot send a \
                         token: set unauthenticated = true in [fleetlock.groups.{}])",
                        AuthError::MissingTicket,
                        group.name,
                        group.name
                    ),
                ));
            }
        };
        let action = match op {
            Op::Lock => "take FleetLock reboot locks",
            Op::Unlock => "release FleetLock reboot locks",
        };
        caller
            .require_operator(action)
            .map_err(|e| FleetError::service(e.into(), op))?;
        Ok(caller)
    }
}

/// Who a call without a token is, in a group that accepts one.
fn unauthenticated() -> Caller {
    Caller {
        user: OWNER.into(),
        role: Role::Operator,
    }
}

/// Who is calling: a token names them (refused when it names no one); without one, open mode
/// serves them as "fleetlock", `--auth` leaves it to the group.
fn who(api: &Api, call: &Call, headers: &HeaderMap, op: Op) -> Result<Who, FleetError> {
    let has_ticket = headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers.contains_key("x-ydb-auth-ticket");
    if !has_ticket && api.ctx.identity.is_enforcing() {
        return Ok(Who::NoToken);
    }
    let mut caller = api
        .maintenance
        .caller(&call.audit, &call.meta)
        .map_err(|e| FleetError::service(e, op))?;
    if !has_ticket {
        caller.user = OWNER.into();
    }
    Ok(Who::Caller(caller))
}

/// The node and the group a request names (the node in the group's scope when `in_scope`).
fn target(
    s: &State,
    p: &ClientParams,
    in_scope: bool,
) -> Result<(NodeId, FleetLockGroup), FleetError> {
    let cluster = s.cluster();
    let group = cluster.fleetlock_group(&p.group).ok_or_else(|| {
        let known: Vec<&str> = cluster
            .fleetlock_groups()
            .map(|g| g.name.as_str())
            .collect();
        FleetError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!(
                "unknown FleetLock group '{}' (the inventory's groups: {})",
                p.group,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
    })?;
    let node = cluster.fleetlock_node(&p.id).ok_or_else(|| {
        FleetError::new(
            StatusCode::NOT_FOUND,
            "unknown_id",
            format!(
                "no node has machine_id '{}', and no host of that name has exactly one node",
                p.id.escape_debug()
            ),
        )
    })?;
    if in_scope
        && let Some(n) = cluster.node(node)
        && !group.covers(n)
    {
        return Err(FleetError::new(
            StatusCode::FORBIDDEN,
            "not_in_group",
            format!(
                "node {node} (host '{}') is not in FleetLock group '{}'",
                n.host, group.name
            ),
        ));
    }
    Ok((node, group.clone()))
}

/// The nodes that hold a FleetLock lock in `group`, but for the task `except`.
fn holders(s: &State, group: &str, except: &str) -> Vec<(NodeId, Timestamp)> {
    let prefix = format!("{TASK_PREFIX}{group}:");
    s.tasks
        .range(prefix.clone()..)
        .take_while(|(uid, _)| uid.starts_with(&prefix))
        .filter(|(uid, _)| uid.as_str() != except)
        .flat_map(|(_, t)| t.actions())
        .filter_map(|a| match (&a.scope, a.deadline()) {
            (Scope::Node(n), Some(d)) => Some((*n, d)),
            _ => None,
        })
        .collect()
}

/// The lock a node holds: its task, node and deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// "locked" (granted now) or "held" (already held: the call was a repeat).
    pub status: &'static str,
    /// The lock's task.
    pub task_uid: String,
    /// The node.
    pub node: NodeId,
    /// When it lapses unless released earlier (RFC 3339).
    pub deadline: String,
    /// Its fencing token.
    pub fencing_token: u64,
}

fn held(status: &'static str, view: &TaskView, node: NodeId) -> Option<Held> {
    view.actions().find_map(|a| match a.status {
        ActionStatus::Performed {
            deadline,
            fencing_token,
            ..
        } => Some(Held {
            status,
            task_uid: view.uid.clone(),
            node,
            deadline: deadline.to_string(),
            fencing_token,
        }),
        ActionStatus::Pending { .. } => None,
    })
}

/// YDB's name of a pending reason (Arbiter's own for its holds).
fn reason_name(r: Reason) -> &'static str {
    match r {
        Reason::Generic => "GENERIC",
        Reason::TooManyUnavailableVDisks => "TOO_MANY_UNAVAILABLE_VDISKS",
        Reason::TooManyUnavailableStateStorageRings => "TOO_MANY_UNAVAILABLE_STATE_STORAGE_RINGS",
        Reason::DisabledNodesLimitReached => "DISABLED_NODES_LIMIT_REACHED",
        Reason::TenantDisabledNodesLimitReached => "TENANT_DISABLED_NODES_LIMIT_REACHED",
        Reason::SysTabletsNodeLimitReached => "SYS_TABLETS_NODE_LIMIT_REACHED",
        Reason::Frozen => "FROZEN",
        Reason::OutsideWindow => "OUTSIDE_WINDOW",
        Reason::RateBudget => "RATE_BUDGET",
    }
}

/// What a granted lock leaves in the audit trail.
struct Granted {
    held: Held,
    detail: Option<String>,
}

/// RecursiveLock on `s`; the changes it made go to `changes` even when it refuses afterwards
/// (a stale task of the uid that it replaced).
fn lock_on(
    s: &mut State,
    now: Timestamp,
    p: &ClientParams,
    who: &Who,
    max_duration: std::time::Duration,
    changes: &mut Vec<Change>,
) -> Result<(Caller, Granted), FleetError> {
    let eng = |e: crate::engine::EngineError| FleetError::service(e.into(), Op::Lock);
    let (node, group) = target(s, p, true)?;
    let caller = who.in_group(&group, Op::Lock)?;
    let uid = task_uid(&group.name, node);
    if let Some(owner) = s.task_owner(&uid) {
        caller
            .require_owner(&uid, owner)
            .map_err(|e| FleetError::service(e.into(), Op::Lock))?;
    }
    if let Some(view) = s.task(&uid) {
        if let Some(h) = held("held", &view, node) {
            return Ok((
                caller,
                Granted {
                    held: h,
                    detail: None,
                },
            ));
        }
        // A task of this uid that holds nothing (left by another client): checked anew.
        changes.extend(s.drop_task(&uid, now).map_err(eng)?.changes);
    }
    let taken = holders(s, &group.name, &uid);
    if taken.len() >= group.slots as usize {
        let list: Vec<String> = taken
            .iter()
            .map(|(n, d)| {
                let host = s.cluster().node(*n).map_or("?", |x| x.host.as_str());
                format!("node {n} (host '{host}') until {d}")
            })
            .collect();
        return Err(FleetError::new(
            StatusCode::LOCKED,
            "failed_lock_semaphore_full",
            format!(
                "all {} of FleetLock group '{}' are held: {}",
                crate::service::audit::count(group.slots as usize, "slot"),
                group.name,
                list.join(", ")
            ),
        ));
    }
    let mut description = format!("FleetLock {} id {}", group.name, p.id);
    if description.len() > crate::engine::state::MAX_ID_LEN {
        let mut end = crate::engine::state::MAX_ID_LEN;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    let req = TaskRequest {
        uid: uid.clone(),
        owner: caller.user.clone(),
        description,
        mode: group.mode,
        priority: 0,
        dry_run: true,
        groups: vec![vec![LockRequest {
            scope: Scope::Node(node),
            duration: Some(group.lock_duration.min(max_duration)),
            kind: Default::default(),
        }]],
        override_holds: false,
    };
    // A dry run first: a lock that would wait is refused, and nothing is kept of it.
    let dry = s.create(req.clone(), now).map_err(eng)?.value;
    if let Some((reason, details)) = dry.actions().find_map(|a| match &a.status {
        ActionStatus::Pending { reason, details } => Some((*reason, details.clone())),
        ActionStatus::Performed { .. } => None,
    }) {
        let retry = dry
            .retry_after
            .map(|t| format!("; retry after {t}"))
            .unwrap_or_default();
        return Err(FleetError::new(
            StatusCode::LOCKED,
            "failed_lock",
            format!(
                "node {node} may not reboot now ({}): {details}{retry}",
                reason_name(reason)
            ),
        ));
    }
    let detail = trail::describe_request(&req);
    let real = TaskRequest {
        dry_run: false,
        ..req
    };
    let o = s.create(real, now).map_err(eng)?;
    changes.extend(o.changes);
    match held("locked", &o.value, node) {
        Some(h) => Ok((
            caller,
            Granted {
                held: h,
                detail: Some(detail),
            },
        )),
        // The same check with the same `now` grants what the dry run granted; should it not,
        // nothing waits on its behalf.
        None => {
            changes.extend(s.drop_task(&o.value.uid, now).map_err(eng)?.changes);
            Err(FleetError::new(
                StatusCode::LOCKED,
                "failed_lock",
                format!("node {node} may not reboot now"),
            ))
        }
    }
}

/// What steady-state did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// "released", or "not_held" (nothing to release).
    pub status: &'static str,
    /// The node.
    pub node: NodeId,
    /// The released lock's task, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_uid: Option<String>,
}

/// UnlockIfHeld on `s`.
fn unlock_on(
    s: &mut State,
    now: Timestamp,
    p: &ClientParams,
    who: &Who,
    changes: &mut Vec<Change>,
) -> Result<(Caller, Released), FleetError> {
    let (node, group) = target(s, p, false)?;
    let caller = who.in_group(&group, Op::Unlock)?;
    let uid = task_uid(&group.name, node);
    let Some(view) = s.task(&uid) else {
        return Ok((
            caller,
            Released {
                status: "not_held",
                node,
                task_uid: None,
            },
        ));
    };
    caller
        .require_owner(&uid, &view.owner)
        .map_err(|e| FleetError::service(e.into(), Op::Unlock))?;
    let actions: Vec<(String, String)> = view
        .actions()
        .map(|a| (uid.clone(), a.id.clone()))
        .collect();
    let o = s
        .complete(&actions, now)
        .map_err(|e| FleetError::service(e.into(), Op::Unlock))?;
    changes.extend(o.changes);
    Ok((
        caller,
        Released {
            status: "released",
            node,
            task_uid: Some(uid),
        },
    ))
}

/// Logs an identity refusal with the call and records it in the audit trail (within the
/// refusal bound), as the gRPC services do.
fn log_refusal(api: &Api, call: &Call, e: &FleetError) {
    if e.kind == "unauthorized" || e.kind == "forbidden" {
        tracing::warn!(call = call.audit.call, peer = ?call.audit.peer, outcome = "refused",
            reason = %e.value, "FleetLock call refused");
        let caller = api.ctx.identity.resolve(&call.meta).ok();
        api.ctx.record_refusal(AuditEntry {
            detail: format!("{}: {}", call.audit.call, e.value),
            ..call.audit.entry(AuditKind::Refused, caller.as_ref())
        });
    }
}

async fn pre_reboot(
    AxumState(api): AxumState<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call::of("http FleetLock pre-reboot", peer, &headers);
    match pre_reboot_for(&api, &call, &headers, &body).await {
        Ok(h) => (StatusCode::OK, Json(h)).into_response(),
        Err(e) => {
            log_refusal(&api, &call, &e);
            e.into_response()
        }
    }
}

async fn pre_reboot_for(
    api: &Api,
    call: &Call,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Held, FleetError> {
    let p = parse(headers, body)?;
    let who = who(api, call, headers, Op::Lock)?;
    let max = api.ctx.limits.max_lock_duration;
    let audit = call.audit;
    let params = p.clone();
    let (result, _) = api
        .ctx
        .audited(move |s, now| {
            let mut changes = Vec::new();
            let r = lock_on(s, now, &params, &who, max, &mut changes);
            let entries = match &r {
                Ok((caller, g)) => g
                    .detail
                    .iter()
                    .map(|d| AuditEntry {
                        task: g.held.task_uid.clone(),
                        nodes: vec![g.held.node],
                        detail: format!("FleetLock pre-reboot: {d}"),
                        ..audit.entry(AuditKind::TaskCreated, Some(caller))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            Ok((
                Outcome {
                    value: r.map(|(_, g)| g.held),
                    changes,
                },
                entries,
            ))
        })
        .await
        .map_err(|e| FleetError::service(e, Op::Lock))?;
    let held = result?;
    if held.status == "locked" {
        tracing::info!(task = %held.task_uid, node = held.node, id = %p.id, group = %p.group,
            deadline = %held.deadline, "FleetLock lock granted");
    }
    Ok(held)
}

async fn steady_state(
    AxumState(api): AxumState<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call::of("http FleetLock steady-state", peer, &headers);
    match steady_state_for(&api, &call, &headers, &body).await {
        Ok(r) => (StatusCode::OK, Json(r)).into_response(),
        Err(e) => {
            log_refusal(&api, &call, &e);
            e.into_response()
        }
    }
}

async fn steady_state_for(
    api: &Api,
    call: &Call,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Released, FleetError> {
    let p = parse(headers, body)?;
    let who = who(api, call, headers, Op::Unlock)?;
    let audit = call.audit;
    let params = p.clone();
    let (result, _) = api
        .ctx
        .audited(move |s, now| {
            let mut changes = Vec::new();
            let r = unlock_on(s, now, &params, &who, &mut changes);
            let entries = match &r {
                Ok((caller, rel)) if rel.task_uid.is_some() => vec![AuditEntry {
                    task: rel.task_uid.clone().unwrap_or_default(),
                    nodes: vec![rel.node],
                    detail: "FleetLock steady-state: released".into(),
                    ..audit.entry(AuditKind::ActionCompleted, Some(caller))
                }],
                _ => Vec::new(),
            };
            Ok((
                Outcome {
                    value: r.map(|(_, rel)| rel),
                    changes,
                },
                entries,
            ))
        })
        .await
        .map_err(|e| FleetError::service(e, Op::Unlock))?;
    let released = result?;
    if let Some(uid) = &released.task_uid {
        tracing::info!(task = %uid, node = released.node, id = %p.id, group = %p.group,
            "FleetLock lock released");
    }
    Ok(released)
}

async fn method_not_allowed() -> Response {
    let mut r = FleetError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "FleetLock calls are POST",
    )
    .into_response();
    r.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    r
}

#[cfg(test)]
mod tests;
