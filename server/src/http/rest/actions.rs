//! Node actions in the style of Redis Enterprise's `POST /v1/nodes/{id}/actions/...`:
//!
//! - `POST /v1/nodes/{id}/actions/maintenance_on` creates a task of one lock on the node, owned
//!   by the caller, with the deterministic uid `maintenance-node-{id}`: a repeated POST does not
//!   create a second task, it re-checks the existing one and answers it.
//! - `GET` of the same path tracks it: the owner's (or an admin's) GET re-checks the task (so the
//!   status may change from `queued` to `completed`); anyone else's reads it as it is.
//! - `POST /v1/nodes/{id}/actions/maintenance_off` drops the task: the lock is released (or the
//!   wait withdrawn). Idempotent: with no such task it answers `released: false`.
//!
//! Status words: `queued` (the lock waits: `reason` and `details` say for what; `retry_after`
//! when to look again) and `completed` (granted: the node is in maintenance until `deadline`,
//! with `fencing_token`; for maintenance_off: released). Failures are the API's errors: 400
//! (unknown node, a malformed body), 401, 403 (a viewer turning maintenance on, or someone
//! else's task), 404 (GET: no maintenance_on task for the node), 429, 503 (read-only mode, not
//! the leader).

use super::tasks::{CreateTask, GroupSpec, LockSpec, Mode, Status, Task, malformed, wire_request};
use super::tasks::{task_of, task_of_get};
use super::{Answer, ErrorSchema, optional_body, path, refused, rest_error};
use crate::engine::EngineError;
use crate::http::error::ApiError;
use crate::http::{Api, Call};
use crate::service::error::ServiceError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;

/// The uid of node `id`'s maintenance_on task.
pub fn task_uid(id: u32) -> String {
    format!("maintenance-node-{id}")
}

/// Where a node action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting: the lock is not granted yet (`reason`, `details`).
    Queued,
    /// Done: maintenance_on holds the lock; maintenance_off released it.
    Completed,
}

/// `POST .../maintenance_on`'s optional body.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceOn {
    /// How long the lock lasts once granted ("30m"); the server's default when left out.
    #[serde(default)]
    #[schema(example = "30m")]
    pub duration: Option<String>,
    /// The availability mode (default `strong`).
    #[serde(default)]
    pub mode: Mode,
    /// The task's priority.
    #[serde(default)]
    pub priority: i32,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A node's maintenance_on action.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeAction {
    /// `queued` or `completed`.
    pub status: ActionStatus,
    /// The task (`maintenance-node-{id}`).
    pub task_id: String,
    /// The node.
    pub node_id: u32,
    /// The lock's action id.
    pub action_id: Option<String>,
    /// Granted: when the lock lapses unless refreshed (RFC 3339).
    pub deadline: Option<String>,
    /// Granted: the lock's fencing token.
    pub fencing_token: Option<u64>,
    /// Queued: YDB's reason, snake_case (`disabled_nodes_limit_reached`...).
    pub reason: Option<String>,
    /// Queued: why it waits, in words.
    pub details: Option<String>,
    /// Queued: when to look again (RFC 3339).
    pub retry_after: Option<String>,
}

/// maintenance_off's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MaintenanceOff {
    /// Always `completed`.
    pub status: ActionStatus,
    /// The task.
    pub task_id: String,
    /// The node.
    pub node_id: u32,
    /// Whether a task was there to drop (false: nothing was on).
    pub released: bool,
}

fn answer(node: u32, task: &Task) -> NodeAction {
    let action = task.groups.iter().flat_map(|g| &g.actions).next();
    let granted = task.all_performed() && action.is_some();
    NodeAction {
        status: if granted {
            ActionStatus::Completed
        } else {
            ActionStatus::Queued
        },
        task_id: task.uid.clone(),
        node_id: node,
        action_id: action.and_then(|a| a.action_id.clone()),
        deadline: action.and_then(|a| a.deadline.clone()),
        fencing_token: action.and_then(|a| a.fencing_token),
        reason: action
            .filter(|a| a.status == Status::Pending)
            .map(|a| a.reason.clone()),
        details: action
            .filter(|a| a.status == Status::Pending)
            .map(|a| a.details.clone()),
        retry_after: task.retry_after.clone(),
    }
}

/// Puts a node in maintenance: one lock on it, owned by the caller.
#[utoipa::path(post, path = "/v1/nodes/{id}/actions/maintenance_on", tag = "node actions",
    params(("id" = u32, Path, description = "The node's id")),
    request_body(content = Option<MaintenanceOn>, description = "Optional: duration, mode, priority, description"),
    responses(
        (status = 200, description = "`queued` (waits) or `completed` (granted); a repeated POST answers the existing task", body = NodeAction),
        (status = 400, description = "An unknown node, or a malformed body", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "A viewer, or the node's task belongs to someone else", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn maintenance_on(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<u32>, PathRejection>,
    bytes: Bytes,
) -> Answer<NodeAction> {
    let call = Call::of("http MaintenanceOn", peer, &headers);
    let id = path(id).map_err(|e| malformed(&api, &call, "", e))?;
    let uid = task_uid(id);
    let on: MaintenanceOn = optional_body(&bytes).map_err(|e| malformed(&api, &call, &uid, e))?;
    let t = CreateTask {
        uid: uid.clone(),
        description: on
            .description
            .unwrap_or_else(|| format!("maintenance_on node {id}")),
        mode: on.mode,
        priority: on.priority,
        dry_run: false,
        groups: vec![GroupSpec {
            locks: vec![LockSpec {
                node: Some(id),
                duration: on.duration,
                ..LockSpec::default()
            }],
        }],
        override_holds: false,
    };
    let req = wire_request(&t).map_err(|e| malformed(&api, &call, &uid, e))?;
    let created = api.maintenance.create(&call.audit, &call.meta, req).await;
    let r = match created {
        Ok(r) => r,
        // Idempotent: the node's task exists; re-check it (its owner's, or an admin's).
        Err(ServiceError::Engine(EngineError::TaskExists)) => api
            .maintenance
            .refresh(&call.audit, &call.meta, uid.clone())
            .await
            .map_err(|e| refused(&api, &call, &uid, &[id], e))?,
        Err(e) => return Err(refused(&api, &call, &uid, &[id], e)),
    };
    Ok(Json(answer(id, &task_of(&r))))
}

/// Tracks a node's maintenance_on: re-checked for its owner or an admin, read for others.
#[utoipa::path(get, path = "/v1/nodes/{id}/actions/maintenance_on", tag = "node actions",
    params(("id" = u32, Path, description = "The node's id")),
    responses(
        (status = 200, description = "`queued` or `completed`", body = NodeAction),
        (status = 400, description = "The id is not a number", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 404, description = "No maintenance_on task for this node", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn maintenance_status(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<u32>, PathRejection>,
) -> Answer<NodeAction> {
    let call = Call::of("http MaintenanceStatus", peer, &headers);
    let id = path(id)?;
    let uid = task_uid(id);
    let not_on = || {
        ApiError::not_found(format!(
            "node {id} has no maintenance_on task ({uid}): never turned on, turned off, or its \
             lock lapsed"
        ))
    };
    let task = match api
        .maintenance
        .refresh(&call.audit, &call.meta, uid.clone())
        .await
    {
        Ok(r) => task_of(&r),
        Err(ServiceError::Engine(EngineError::TaskNotFound)) => return Err(not_on()),
        // Someone else's task (or a viewer, or read-only mode): read it as it is.
        Err(ServiceError::Auth(a)) if a.is_forbidden() => get_task(&api, &call, &uid)
            .await
            .map_err(|e| not_found_as(e, not_on))?,
        Err(ServiceError::Engine(EngineError::ReadOnly(_))) => get_task(&api, &call, &uid)
            .await
            .map_err(|e| not_found_as(e, not_on))?,
        Err(e) => return Err(rest_error(e)),
    };
    Ok(Json(answer(id, &task)))
}

async fn get_task(api: &Api, call: &Call, uid: &str) -> Result<Task, ServiceError> {
    let r = api
        .maintenance
        .get(&call.audit, &call.meta, uid.to_owned())
        .await?;
    Ok(task_of_get(&r))
}

fn not_found_as(e: ServiceError, not_on: impl Fn() -> ApiError) -> ApiError {
    match e {
        ServiceError::Engine(EngineError::TaskNotFound) => not_on(),
        e => rest_error(e),
    }
}

/// Takes a node out of maintenance: its maintenance_on task is dropped, the lock released.
#[utoipa::path(post, path = "/v1/nodes/{id}/actions/maintenance_off", tag = "node actions",
    params(("id" = u32, Path, description = "The node's id")),
    responses(
        (status = 200, description = "`completed`; `released` says whether a task was there", body = MaintenanceOff),
        (status = 400, description = "The id is not a number", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "A viewer, or someone else's task", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn maintenance_off(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<u32>, PathRejection>,
) -> Answer<MaintenanceOff> {
    let call = Call::of("http MaintenanceOff", peer, &headers);
    let id = path(id).map_err(|e| malformed(&api, &call, "", e))?;
    let uid = task_uid(id);
    let released = match api
        .maintenance
        .drop_task(&call.audit, &call.meta, uid.clone())
        .await
    {
        Ok(()) => true,
        Err(ServiceError::Engine(EngineError::TaskNotFound)) => false,
        Err(e) => return Err(refused(&api, &call, &uid, &[id], e)),
    };
    Ok(Json(MaintenanceOff {
        status: ActionStatus::Completed,
        task_id: uid,
        node_id: id,
        released,
    }))
}
