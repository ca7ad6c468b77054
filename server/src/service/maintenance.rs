//! `Ydb.Maintenance.V1.MaintenanceService`.
//!
//! Who may do what: anyone identified may read; operators create tasks and refresh, complete or
//! drop their own; admins any task. The owner check runs inside the writer, on the same state
//! the command then changes.

use super::audit::Audit;
use super::envelope::{bare, operation};
use super::error::ServiceError;
use super::{Context, decode, encode};
use crate::engine::EngineError;
use crate::engine::audit::{self as trail, AuditEntry, AuditKind};
use crate::identity::Caller;
use arbiter_proto::ydb::maintenance::v1::maintenance_service_server::MaintenanceService;
use arbiter_proto::ydb::maintenance::{
    CompleteActionRequest, CreateMaintenanceTaskRequest, DropMaintenanceTaskRequest,
    GetMaintenanceTaskRequest, GetMaintenanceTaskResponse, GetMaintenanceTaskResult,
    ListClusterNodesRequest, ListClusterNodesResponse, ListClusterNodesResult,
    ListMaintenanceTasksRequest, ListMaintenanceTasksResponse, ListMaintenanceTasksResult,
    MaintenanceTaskResponse, MaintenanceTaskResult, ManageActionResponse, ManageActionResult,
    ManageMaintenanceTaskResponse, RefreshMaintenanceTaskRequest, manage_action_result,
};
use arbiter_proto::ydb::status_ids::StatusCode;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The maintenance service.
#[derive(Debug, Clone)]
pub struct Maintenance {
    ctx: Context,
}

impl Maintenance {
    /// Over the shared context.
    pub fn new(ctx: Context) -> Maintenance {
        Maintenance { ctx }
    }

    /// Who is calling; a refusal is logged.
    pub(crate) fn caller(&self, audit: &Audit, meta: &MetadataMap) -> Result<Caller, ServiceError> {
        let caller = self.ctx.identity.resolve(meta).map_err(ServiceError::from);
        audit.check(None, caller)
    }

    pub(crate) async fn list_nodes(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
    ) -> Result<ListClusterNodesResult, ServiceError> {
        self.caller(audit, meta)?;
        self.ctx
            .query(|s, _| {
                let nodes = s
                    .nodes()
                    .iter()
                    .filter_map(|v| encode::node(s.cluster(), v))
                    .collect();
                Ok(ListClusterNodesResult { nodes })
            })
            .await
    }

    pub(crate) async fn create(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        req: CreateMaintenanceTaskRequest,
    ) -> Result<MaintenanceTaskResult, ServiceError> {
        let caller = self.caller(audit, meta)?;
        audit.check(
            Some(&caller),
            caller.require_operator("create tasks").map_err(Into::into),
        )?;
        let req = decode::task_request(req, &caller.user, self.ctx.limits)?;
        if req.override_holds {
            audit.check(
                Some(&caller),
                caller
                    .require_admin("override freezes, windows and rate budgets")
                    .map_err(Into::into),
            )?;
        }
        let dry_run = req.dry_run;
        let entry = AuditEntry {
            task: req.uid.clone(),
            detail: trail::describe_request(&req),
            ..audit.entry(AuditKind::TaskCreated, Some(&caller))
        };
        let (view, _) = self
            .ctx
            .audited(move |s, now| {
                let nodes = trail::request_nodes(s, &req);
                let o = s.create(req, now)?;
                let entries = if dry_run {
                    Vec::new()
                } else {
                    vec![AuditEntry { nodes, ..entry }]
                };
                Ok((o, entries))
            })
            .await?;
        if !dry_run {
            let holds = encode::holds(&view);
            tracing::info!(task = %view.uid, owner = %view.owner, mode = view.mode.name(),
                priority = view.priority, actions = view.actions().count(),
                pending = view.actions().filter(|a| !a.is_performed()).count(),
                held = %holds.join(","), "task created");
            if view.override_holds {
                tracing::warn!(task = %view.uid, user = %caller.user,
                    "task overrides freezes, maintenance windows and rate budgets");
            }
        }
        Ok(encode::task_result(&view))
    }

    pub(crate) async fn refresh(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        uid: String,
    ) -> Result<MaintenanceTaskResult, ServiceError> {
        let caller = self.caller(audit, meta)?;
        let checked = caller.clone();
        let refreshed = self
            .ctx
            .command(move |s, now| {
                if let Some(owner) = s.task_owner(&uid) {
                    checked.require_owner(&uid, owner)?;
                }
                Ok(s.refresh(&uid, now)?)
            })
            .await;
        let (view, _) = audit.check(Some(&caller), refreshed)?;
        Ok(encode::task_result(&view))
    }

    pub(crate) async fn get(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        uid: String,
    ) -> Result<GetMaintenanceTaskResult, ServiceError> {
        self.caller(audit, meta)?;
        let view = self
            .ctx
            .query(move |s, _| {
                Ok(s.task(&uid)
                    .ok_or(crate::engine::EngineError::TaskNotFound)?)
            })
            .await?;
        Ok(encode::get_result(&view))
    }

    pub(crate) async fn list(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        user: Option<String>,
    ) -> Result<ListMaintenanceTasksResult, ServiceError> {
        self.caller(audit, meta)?;
        let tasks_uids = self
            .ctx
            .query(move |s, _| Ok(s.task_uids(user.as_deref())))
            .await?;
        Ok(ListMaintenanceTasksResult { tasks_uids })
    }

    pub(crate) async fn drop_task(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        uid: String,
    ) -> Result<(), ServiceError> {
        let caller = self.caller(audit, meta)?;
        let checked = caller.clone();
        let user = caller.user.clone();
        let log_uid = uid.clone();
        let entry = AuditEntry {
            task: uid.clone(),
            ..audit.entry(AuditKind::TaskDropped, Some(&caller))
        };
        let dropped = self
            .ctx
            .audited(move |s, now| {
                if let Some(owner) = s.task_owner(&uid) {
                    checked.require_owner(&uid, owner)?;
                }
                let nodes = s.audit_nodes_of(&uid);
                let o = s.drop_task(&uid, now)?;
                Ok((o, vec![AuditEntry { nodes, ..entry }]))
            })
            .await;
        audit.check(Some(&caller), dropped)?;
        tracing::info!(task = %log_uid, by = %user, outcome = "dropped", "task dropped");
        Ok(())
    }

    pub(crate) async fn complete(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        req: CompleteActionRequest,
    ) -> Result<ManageActionResult, ServiceError> {
        let caller = self.caller(audit, meta)?;
        let checked = caller.clone();
        let uids = decode::action_uids(&req.action_uids)?;
        let groups: Vec<String> = req.action_uids.iter().map(|u| u.group_id.clone()).collect();
        let user = caller.user.clone();
        let logged = uids.clone();
        let entry = audit.entry(AuditKind::ActionCompleted, Some(&caller));
        let completed = self
            .ctx
            .audited(move |s, now| {
                for ((task, action), group) in uids.iter().zip(&groups) {
                    if let Some(owner) = s.task_owner(task) {
                        checked.require_owner(task, owner)?;
                    }
                    // ydbops sends uids back verbatim; a group id that names another group is
                    // a mistake (an empty one is YDB's usage and fine).
                    if !group.is_empty() && s.action_group(task, action).is_some_and(|g| g != group)
                    {
                        return Err(EngineError::ActionNotFound.into());
                    }
                }
                let entries = completed_entries(s, &uids, &entry);
                Ok((s.complete(&uids, now)?, entries))
            })
            .await;
        audit.check(Some(&caller), completed)?;
        for (task, action) in &logged {
            tracing::info!(task = %task, action = %action, by = %user, outcome = "completed",
                "action completed");
        }
        Ok(ManageActionResult {
            action_statuses: req
                .action_uids
                .into_iter()
                .map(|uid| manage_action_result::Status {
                    action_uid: Some(uid),
                    status: StatusCode::Success as i32,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl MaintenanceService for Maintenance {
    async fn list_cluster_nodes(
        &self,
        request: Request<ListClusterNodesRequest>,
    ) -> Result<Response<ListClusterNodesResponse>, Status> {
        let audit = Audit::of("ListClusterNodes", &request);
        let op = operation(self.list_nodes(&audit, request.metadata()).await);
        Ok(Response::new(ListClusterNodesResponse {
            operation: Some(op),
        }))
    }

    async fn create_maintenance_task(
        &self,
        request: Request<CreateMaintenanceTaskRequest>,
    ) -> Result<Response<MaintenanceTaskResponse>, Status> {
        let audit = Audit::of("CreateMaintenanceTask", &request);
        let (meta, _, req) = request.into_parts();
        let uid = req
            .task_options
            .as_ref()
            .map(|o| o.task_uid.clone())
            .unwrap_or_default();
        let result = self.create(&audit, &meta, req).await;
        if let Err(e) = &result {
            self.ctx.refused(&audit, &meta, &uid, &[], e);
        }
        let op = operation(result);
        Ok(Response::new(MaintenanceTaskResponse {
            operation: Some(op),
        }))
    }

    async fn refresh_maintenance_task(
        &self,
        request: Request<RefreshMaintenanceTaskRequest>,
    ) -> Result<Response<MaintenanceTaskResponse>, Status> {
        let audit = Audit::of("RefreshMaintenanceTask", &request);
        let (meta, _, req) = request.into_parts();
        let uid = req.task_uid.clone();
        let result = self.refresh(&audit, &meta, req.task_uid).await;
        if let Err(e) = &result {
            self.ctx.refused(&audit, &meta, &uid, &[], e);
        }
        let op = operation(result);
        Ok(Response::new(MaintenanceTaskResponse {
            operation: Some(op),
        }))
    }

    async fn get_maintenance_task(
        &self,
        request: Request<GetMaintenanceTaskRequest>,
    ) -> Result<Response<GetMaintenanceTaskResponse>, Status> {
        let audit = Audit::of("GetMaintenanceTask", &request);
        let (meta, _, req) = request.into_parts();
        let op = operation(self.get(&audit, &meta, req.task_uid).await);
        Ok(Response::new(GetMaintenanceTaskResponse {
            operation: Some(op),
        }))
    }

    async fn list_maintenance_tasks(
        &self,
        request: Request<ListMaintenanceTasksRequest>,
    ) -> Result<Response<ListMaintenanceTasksResponse>, Status> {
        let audit = Audit::of("ListMaintenanceTasks", &request);
        let (meta, _, req) = request.into_parts();
        let op = operation(self.list(&audit, &meta, req.user).await);
        Ok(Response::new(ListMaintenanceTasksResponse {
            operation: Some(op),
        }))
    }

    async fn drop_maintenance_task(
        &self,
        request: Request<DropMaintenanceTaskRequest>,
    ) -> Result<Response<ManageMaintenanceTaskResponse>, Status> {
        let audit = Audit::of("DropMaintenanceTask", &request);
        let (meta, _, req) = request.into_parts();
        let uid = req.task_uid.clone();
        let result = self.drop_task(&audit, &meta, req.task_uid).await;
        if let Err(e) = &result {
            self.ctx.refused(&audit, &meta, &uid, &[], e);
        }
        let op = bare(result);
        Ok(Response::new(ManageMaintenanceTaskResponse {
            operation: Some(op),
        }))
    }

    async fn complete_action(
        &self,
        request: Request<CompleteActionRequest>,
    ) -> Result<Response<ManageActionResponse>, Status> {
        let audit = Audit::of("CompleteAction", &request);
        let (meta, _, req) = request.into_parts();
        let uid = req
            .action_uids
            .first()
            .map(|u| u.task_uid.clone())
            .unwrap_or_default();
        let result = self.complete(&audit, &meta, req).await;
        if let Err(e) = &result {
            self.ctx.refused(&audit, &meta, &uid, &[], e);
        }
        let op = operation(result);
        Ok(Response::new(ManageActionResponse {
            operation: Some(op),
        }))
    }
}

/// One `action_completed` entry per task of `uids`, naming its actions (taken before they
/// are completed, so that their scopes and states are still there).
fn completed_entries(
    s: &crate::engine::State,
    uids: &[(String, String)],
    entry: &AuditEntry,
) -> Vec<AuditEntry> {
    let mut by_task: std::collections::BTreeMap<&str, (Vec<String>, Vec<u32>)> =
        std::collections::BTreeMap::new();
    for (task, action) in uids {
        let (names, nodes) = by_task.entry(task).or_default();
        match s.audit_action(task, action) {
            Some((name, n)) => {
                names.push(name);
                nodes.extend(n);
            }
            None => names.push(action.clone()),
        }
    }
    by_task
        .into_iter()
        .map(|(task, (names, mut nodes))| {
            nodes.sort_unstable();
            nodes.dedup();
            AuditEntry {
                task: task.to_owned(),
                nodes,
                detail: format!("completed {}", names.join(", ")),
                ..entry.clone()
            }
        })
        .collect()
}
