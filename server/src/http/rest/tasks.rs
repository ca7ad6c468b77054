//! `/v1/tasks`: list, create, get, refresh, complete and drop maintenance tasks, through the
//! same calls as `Ydb.Maintenance.V1.MaintenanceService` (and arbiter.v1's ListTasks).

use super::{
    Answer, ErrorSchema, body, duration, nonempty, parse_duration, path, refused, rest_error, time,
};
use crate::http::error::ApiError;
use crate::http::{Api, Call};
use crate::service::error::ServiceError;
use arbiter_proto::ydb::maintenance::action_scope::{self, PDisk, p_disk};
use arbiter_proto::ydb::maintenance::action_state::{ActionReason, ActionStatus};
use arbiter_proto::ydb::maintenance::{
    Action, ActionGroup, ActionGroupStates, ActionScope, ActionState, ActionUid, AvailabilityMode,
    CompleteActionRequest, CreateMaintenanceTaskRequest, GetMaintenanceTaskResult, LockAction,
    MaintenanceTaskOptions, MaintenanceTaskResult, action,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// How much availability a task keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Keep every failure-model guarantee (the default).
    #[default]
    Strong,
    /// Allow one more failure than strong.
    Weak,
    /// Grant regardless of the failure model (still counts locks).
    Force,
    /// Strong for storage, weak where strong cannot be met.
    Smart,
}

impl Mode {
    /// On the wire.
    pub fn wire(self) -> AvailabilityMode {
        match self {
            Mode::Strong => AvailabilityMode::Strong,
            Mode::Weak => AvailabilityMode::Weak,
            Mode::Force => AvailabilityMode::Force,
            Mode::Smart => AvailabilityMode::Smart,
        }
    }

    fn of(wire: i32) -> Option<Mode> {
        match AvailabilityMode::try_from(wire).ok()? {
            AvailabilityMode::Strong => Some(Mode::Strong),
            AvailabilityMode::Weak => Some(Mode::Weak),
            AvailabilityMode::Force => Some(Mode::Force),
            AvailabilityMode::Smart => Some(Mode::Smart),
            AvailabilityMode::Unspecified => None,
        }
    }
}

/// A disk: by node and pdisk id, or by host and device path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PdiskRef {
    /// The node (with `pdisk_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u32>,
    /// The pdisk id on that node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdisk_id: Option<u32>,
    /// The host (with `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The device path on that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What a lock is on: exactly one of `node`, `host` and `pdisk`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A node by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// Every node of a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// One disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdisk: Option<PdiskRef>,
}

/// One lock asked for: exactly one of `node`, `host`, `pdisk`, and how long.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    /// A node by id.
    #[serde(default)]
    pub node: Option<u32>,
    /// Every node of a host.
    #[serde(default)]
    pub host: Option<String>,
    /// One disk.
    #[serde(default)]
    pub pdisk: Option<PdiskRef>,
    /// How long the lock lasts once granted ("10m"); the server's default when left out.
    #[serde(default)]
    #[schema(example = "10m")]
    pub duration: Option<String>,
}

/// One action group: locks granted together, all or none.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's locks.
    pub locks: Vec<LockSpec>,
}

/// `POST /v1/tasks`: a new task.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// The task's uid, chosen by the client (at most 128 bytes).
    pub uid: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The availability mode (default `strong`).
    #[serde(default)]
    pub mode: Mode,
    /// Its priority (lower numbers first; YDB's range).
    #[serde(default)]
    pub priority: i32,
    /// Check only: grant nothing, keep nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Its action groups, in order.
    pub groups: Vec<GroupSpec>,
    /// Not held back by freezes, windows or rate budgets (admins only).
    #[serde(default)]
    pub override_holds: bool,
}

/// Whether an action is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Granted: the lock is held until `deadline`.
    Performed,
    /// Granted, and the node's agent is still draining or cordoning it (`details` has the
    /// progress, "Progress: NN.NN%"); the lock is held until `deadline`.
    InProgress,
    /// Waiting: `reason` and `details` say for what.
    Pending,
}

/// One action of a task and its state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionView {
    /// The action's id (to complete it); `null` in a dry run.
    pub action_id: Option<String>,
    /// What it locks.
    pub target: Target,
    /// How long the lock lasts once granted.
    pub duration: Option<String>,
    /// Granted or waiting.
    pub status: Status,
    /// YDB's reason, snake_case: `ok`, `generic`, `too_many_unavailable_vdisks`,
    /// `too_many_unavailable_state_storage_rings`, `disabled_nodes_limit_reached`,
    /// `tenant_disabled_nodes_limit_reached`, `sys_tablets_node_limit_reached`...
    pub reason: String,
    /// What holds it back beyond the failure model: `frozen`, `outside_window`, `rate_budget`.
    pub hold: Option<String>,
    /// Why it waits (or what it got), in words.
    pub details: String,
    /// When a granted lock lapses (RFC 3339).
    pub deadline: Option<String>,
    /// A granted lock's fencing token.
    pub fencing_token: Option<u64>,
}

/// One action group of a task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupView {
    /// The group's id.
    pub group_id: String,
    /// Its actions.
    pub actions: Vec<ActionView>,
}

/// A task and the state of its actions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    /// The task's uid.
    pub uid: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its availability mode.
    pub mode: Option<Mode>,
    /// Its priority.
    pub priority: Option<i32>,
    /// Whether it overrides freezes, windows and rate budgets.
    pub override_holds: Option<bool>,
    /// Whether this was a dry run (nothing kept).
    pub dry_run: bool,
    /// Its remaining action groups.
    pub groups: Vec<GroupView>,
    /// When nothing is granted and something waits: when to refresh again (RFC 3339).
    pub retry_after: Option<String>,
    /// When it was created (RFC 3339).
    pub create_time: Option<String>,
    /// When it was last refreshed (RFC 3339).
    pub last_refresh_time: Option<String>,
}

impl Task {
    /// Whether every remaining action is granted.
    pub fn all_performed(&self) -> bool {
        self.groups
            .iter()
            .flat_map(|g| &g.actions)
            .all(|a| a.status == Status::Performed)
    }
}

/// One line of the task list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskSummary {
    /// The task's uid.
    pub uid: String,
    /// Who owns it.
    pub owner: String,
    /// What it is for.
    pub description: String,
    /// Its availability mode.
    pub mode: Option<Mode>,
    /// Its priority.
    pub priority: i32,
    /// Actions granted.
    pub performed: u32,
    /// Actions waiting.
    pub pending: u32,
    /// When it was created (RFC 3339).
    pub create_time: Option<String>,
    /// When it was last refreshed (RFC 3339).
    pub last_refresh_time: Option<String>,
}

/// Every task.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskList {
    /// The tasks.
    pub tasks: Vec<TaskSummary>,
}

/// The task list's filter.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this owner's tasks.
    pub owner: Option<String>,
}

/// `POST /v1/tasks/{uid}/complete`: which actions are done (their locks released).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTask {
    /// The actions' ids.
    #[serde(default)]
    pub action_ids: Vec<String>,
    /// Every remaining action of the task instead.
    #[serde(default)]
    pub all: bool,
}

/// The actions completed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Completed {
    /// The task.
    pub task_uid: String,
    /// The ids of the actions completed.
    pub completed: Vec<String>,
}

fn target_of(spec: &LockSpec) -> Result<action_scope::Scope, String> {
    match (&spec.node, &spec.host, &spec.pdisk) {
        (Some(id), None, None) => Ok(action_scope::Scope::NodeId(*id)),
        (None, Some(h), None) => Ok(action_scope::Scope::Host(h.clone())),
        (None, None, Some(p)) => {
            let disk = match p {
                PdiskRef {
                    node_id: Some(node_id),
                    pdisk_id: Some(pdisk_id),
                    host: None,
                    path: None,
                } => p_disk::Pdisk::PdiskId(action_scope::PDiskId {
                    node_id: *node_id,
                    pdisk_id: *pdisk_id,
                }),
                PdiskRef {
                    node_id: None,
                    pdisk_id: None,
                    host: Some(host),
                    path: Some(path),
                } => p_disk::Pdisk::PdiskLocation(action_scope::PDiskLocation {
                    host: host.clone(),
                    path: path.clone(),
                }),
                _ => {
                    return Err(
                        "a pdisk is named by node_id and pdisk_id, or by host and path".into(),
                    );
                }
            };
            Ok(action_scope::Scope::Pdisk(PDisk { pdisk: Some(disk) }))
        }
        _ => Err("a lock names exactly one of node, host and pdisk".into()),
    }
}

/// The wire request of `t`.
pub fn wire_request(t: &CreateTask) -> Result<CreateMaintenanceTaskRequest, ApiError> {
    let mut groups = Vec::with_capacity(t.groups.len());
    for (g, group) in t.groups.iter().enumerate() {
        let mut actions = Vec::with_capacity(group.locks.len());
        for (l, lock) in group.locks.iter().enumerate() {
            let field = format!("groups[{g}].locks[{l}]");
            let scope =
                target_of(lock).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))?;
            let duration = lock
                .duration
                .as_deref()
                .map(|d| parse_duration(&format!("{field}.duration"), d))
                .transpose()?;
            actions.push(Action {
                action: Some(action::Action::LockAction(LockAction {
                    scope: Some(ActionScope { scope: Some(scope) }),
                    duration,
                    drain: false,
                })),
            });
        }
        groups.push(ActionGroup { actions });
    }
    Ok(CreateMaintenanceTaskRequest {
        operation_params: None,
        task_options: Some(MaintenanceTaskOptions {
            task_uid: t.uid.clone(),
            description: t.description.clone(),
            availability_mode: t.mode.wire() as i32,
            dry_run: t.dry_run,
            priority: t.priority,
            override_holds: t.override_holds,
        }),
        action_groups: groups,
    })
}

fn target(scope: Option<&ActionScope>) -> Target {
    match scope.and_then(|s| s.scope.as_ref()) {
        Some(action_scope::Scope::NodeId(id)) => Target {
            node: Some(*id),
            ..Target::default()
        },
        Some(action_scope::Scope::Host(h)) => Target {
            host: Some(h.clone()),
            ..Target::default()
        },
        Some(action_scope::Scope::Pdisk(p)) => Target {
            pdisk: Some(match &p.pdisk {
                Some(p_disk::Pdisk::PdiskId(id)) => PdiskRef {
                    node_id: Some(id.node_id),
                    pdisk_id: Some(id.pdisk_id),
                    ..PdiskRef::default()
                },
                Some(p_disk::Pdisk::PdiskLocation(l)) => PdiskRef {
                    host: Some(l.host.clone()),
                    path: Some(l.path.clone()),
                    ..PdiskRef::default()
                },
                None => PdiskRef::default(),
            }),
            ..Target::default()
        },
        None => Target::default(),
    }
}

fn reason(r: i32) -> String {
    ActionReason::try_from(r)
        .map(|r| r.as_str_name())
        .unwrap_or("ACTION_REASON_UNSPECIFIED")
        .trim_start_matches("ACTION_REASON_")
        .to_ascii_lowercase()
}

/// An action state on the REST wire.
pub fn action_view(a: &ActionState) -> ActionView {
    let lock = match a.action.as_ref().and_then(|x| x.action.as_ref()) {
        Some(action::Action::LockAction(l)) => Some(l),
        _ => None,
    };
    let in_progress = a.status == ActionStatus::InProgress as i32;
    let performed = a.status == ActionStatus::Performed as i32 || in_progress;
    ActionView {
        action_id: a.action_uid.as_ref().map(|u| u.action_id.clone()),
        target: target(lock.and_then(|l| l.scope.as_ref())),
        duration: duration(lock.and_then(|l| l.duration.as_ref())),
        status: if in_progress {
            Status::InProgress
        } else if performed {
            Status::Performed
        } else {
            Status::Pending
        },
        reason: reason(a.reason),
        hold: nonempty(&a.hold.to_ascii_lowercase()),
        details: a.details.clone(),
        deadline: time(a.deadline.as_ref()),
        fencing_token: (performed && a.fencing_token != 0).then_some(a.fencing_token),
    }
}

fn groups(states: &[ActionGroupStates]) -> Vec<GroupView> {
    states
        .iter()
        .enumerate()
        .map(|(i, g)| GroupView {
            group_id: g
                .action_states
                .iter()
                .find_map(|a| a.action_uid.as_ref().map(|u| u.group_id.clone()))
                .unwrap_or_else(|| i.to_string()),
            actions: g.action_states.iter().map(action_view).collect(),
        })
        .collect()
}

/// Create's and Refresh's result on the REST wire (the options are filled in by the caller).
pub fn task_of(r: &MaintenanceTaskResult) -> Task {
    Task {
        uid: r.task_uid.clone(),
        description: None,
        mode: None,
        priority: None,
        override_holds: None,
        dry_run: false,
        groups: groups(&r.action_group_states),
        retry_after: time(r.retry_after.as_ref()),
        create_time: time(r.create_time.as_ref()),
        last_refresh_time: time(r.last_refresh_time.as_ref()),
    }
}

/// Get's result on the REST wire.
pub fn task_of_get(r: &GetMaintenanceTaskResult) -> Task {
    let o = r.task_options.clone().unwrap_or_default();
    Task {
        uid: o.task_uid,
        description: Some(o.description),
        mode: Mode::of(o.availability_mode),
        priority: Some(o.priority),
        override_holds: Some(o.override_holds),
        dry_run: false,
        groups: groups(&r.action_group_states),
        retry_after: None,
        create_time: time(r.create_time.as_ref()),
        last_refresh_time: time(r.last_refresh_time.as_ref()),
    }
}

/// Fills `task`'s options from a fresh Get (best effort: the task may be gone by then).
pub async fn with_options(api: &Api, call: &Call, mut task: Task) -> Task {
    if let Ok(r) = api
        .maintenance
        .get(&call.audit, &call.meta, task.uid.clone())
        .await
        && let Some(o) = r.task_options
    {
        task.description = Some(o.description);
        task.mode = Mode::of(o.availability_mode);
        task.priority = Some(o.priority);
        task.override_holds = Some(o.override_holds);
    }
    task
}

/// A malformed request of a mutating call: recorded like any refusal, then answered.
pub fn malformed(api: &Api, call: &Call, task: &str, e: ApiError) -> ApiError {
    api.ctx.refused(
        &call.audit,
        &call.meta,
        task,
        &[],
        &ServiceError::BadRequest(e.message.clone()),
    );
    e
}

/// Every task (arbiter.v1 ListTasks).
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(ListParams),
    responses(
        (status = 200, description = "The tasks", body = TaskList),
        (status = 400, description = "A malformed query", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn list(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Answer<TaskList> {
    let call = Call::of("http ListTasks", peer, &headers);
    let Query(params) = params.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let tasks = api
        .arbiter
        .tasks(&call.audit, &call.meta, params.owner.unwrap_or_default())
        .await
        .map_err(rest_error)?;
    Ok(Json(TaskList {
        tasks: tasks
            .iter()
            .map(|t| TaskSummary {
                uid: t.task_uid.clone(),
                owner: t.owner.clone(),
                description: t.description.clone(),
                mode: Mode::of(t.availability_mode),
                priority: t.priority,
                performed: t.performed,
                pending: t.pending,
                create_time: time(t.create_time.as_ref()),
                last_refresh_time: time(t.last_refresh_time.as_ref()),
            })
            .collect(),
    }))
}

/// Creates a task (CreateMaintenanceTask); its actions are checked at once.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = CreateTask,
    responses(
        (status = 200, description = "The task, with what was granted and what waits", body = Task),
        (status = 400, description = "A malformed or invalid request", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "A viewer, or an override by a non-admin", body = ErrorSchema),
        (status = 409, description = "A task with this uid exists", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 501, description = "Something Arbiter does not do", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn create(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer<Task> {
    let call = Call::of("http CreateTask", peer, &headers);
    let t: CreateTask = body(&bytes).map_err(|e| malformed(&api, &call, "", e))?;
    let req = wire_request(&t).map_err(|e| malformed(&api, &call, &t.uid, e))?;
    let r = api
        .maintenance
        .create(&call.audit, &call.meta, req)
        .await
        .map_err(|e| refused(&api, &call, &t.uid, &[], e))?;
    Ok(Json(Task {
        description: Some(t.description),
        mode: Some(t.mode),
        priority: Some(t.priority),
        override_holds: Some(t.override_holds),
        dry_run: t.dry_run,
        ..task_of(&r)
    }))
}

/// One task (GetMaintenanceTask).
#[utoipa::path(get, path = "/v1/tasks/{uid}", tag = "tasks",
    params(("uid" = String, Path, description = "The task's uid")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 400, description = "A malformed uid", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 404, description = "No such task", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn get_one(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uid: Result<Path<String>, PathRejection>,
) -> Answer<Task> {
    let call = Call::of("http GetTask", peer, &headers);
    let uid = path(uid)?;
    let r = api
        .maintenance
        .get(&call.audit, &call.meta, uid)
        .await
        .map_err(rest_error)?;
    Ok(Json(task_of_get(&r)))
}

/// Re-checks a task's pending actions (RefreshMaintenanceTask); its owner or an admin.
#[utoipa::path(post, path = "/v1/tasks/{uid}/refresh", tag = "tasks",
    params(("uid" = String, Path, description = "The task's uid")),
    responses(
        (status = 200, description = "The task after the check", body = Task),
        (status = 400, description = "A malformed uid", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "Someone else's task", body = ErrorSchema),
        (status = 404, description = "No such task", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn refresh(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uid: Result<Path<String>, PathRejection>,
) -> Answer<Task> {
    let call = Call::of("http RefreshTask", peer, &headers);
    let uid = path(uid).map_err(|e| malformed(&api, &call, "", e))?;
    let r = api
        .maintenance
        .refresh(&call.audit, &call.meta, uid.clone())
        .await
        .map_err(|e| refused(&api, &call, &uid, &[], e))?;
    Ok(Json(with_options(&api, &call, task_of(&r)).await))
}

/// Completes actions (CompleteAction): their locks are released; the task ends with its last.
#[utoipa::path(post, path = "/v1/tasks/{uid}/complete", tag = "tasks",
    params(("uid" = String, Path, description = "The task's uid")),
    request_body = CompleteTask,
    responses(
        (status = 200, description = "The actions completed", body = Completed),
        (status = 400, description = "A malformed request, or no actions named", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "Someone else's task", body = ErrorSchema),
        (status = 404, description = "No such task or action", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 501, description = "Something Arbiter does not do", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn complete(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uid: Result<Path<String>, PathRejection>,
    bytes: Bytes,
) -> Answer<Completed> {
    let call = Call::of("http CompleteAction", peer, &headers);
    let uid = path(uid).map_err(|e| malformed(&api, &call, "", e))?;
    let c: CompleteTask = body(&bytes).map_err(|e| malformed(&api, &call, &uid, e))?;
    let ids = complete_ids(&api, &call, &uid, c).await?;
    let completed = complete_actions(&api, &call, &uid, ids).await?;
    Ok(Json(Completed {
        task_uid: uid,
        completed,
    }))
}

async fn complete_ids(
    api: &Api,
    call: &Call,
    uid: &str,
    c: CompleteTask,
) -> Result<Vec<String>, ApiError> {
    if c.all != c.action_ids.is_empty() {
        return Err(malformed(
            api,
            call,
            uid,
            ApiError::bad_request("name the actions in action_ids, or set all to true (not both)"),
        ));
    }
    if !c.all {
        return Ok(c.action_ids);
    }
    let r = api
        .maintenance
        .get(&call.audit, &call.meta, uid.to_owned())
        .await
        .map_err(|e| refused(api, call, uid, &[], e))?;
    Ok(r.action_group_states
        .iter()
        .flat_map(|g| &g.action_states)
        .filter_map(|a| a.action_uid.as_ref().map(|u| u.action_id.clone()))
        .collect())
}

/// Completes `ids` of task `uid`; answers the ids.
pub async fn complete_actions(
    api: &Api,
    call: &Call,
    uid: &str,
    ids: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    let req = CompleteActionRequest {
        operation_params: None,
        action_uids: ids
            .iter()
            .map(|id| ActionUid {
                task_uid: uid.to_owned(),
                group_id: String::new(),
                action_id: id.clone(),
            })
            .collect(),
    };
    api.maintenance
        .complete(&call.audit, &call.meta, req)
        .await
        .map_err(|e| refused(api, call, uid, &[], e))?;
    Ok(ids)
}

/// Drops a task (DropMaintenanceTask): every lock it holds is released.
#[utoipa::path(delete, path = "/v1/tasks/{uid}", tag = "tasks",
    params(("uid" = String, Path, description = "The task's uid")),
    responses(
        (status = 204, description = "Dropped"),
        (status = 400, description = "A malformed uid", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "Someone else's task", body = ErrorSchema),
        (status = 404, description = "No such task", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn drop_one(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uid: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let call = Call::of("http DropTask", peer, &headers);
    let uid = path(uid).map_err(|e| malformed(&api, &call, "", e))?;
    api.maintenance
        .drop_task(&call.audit, &call.meta, uid.clone())
        .await
        .map_err(|e| refused(&api, &call, &uid, &[], e))?;
    Ok(StatusCode::NO_CONTENT)
}
