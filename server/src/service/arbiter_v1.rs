//! `arbiter.v1.ArbiterService`: what YDB's API has no place for. Errors are plain gRPC statuses.
//!
//! - Heartbeat: node agents report that a node is alive (and its version and start time).
//! - SetNodeState: an operator (or a node without an agent) says a node is down or back up.
//! - ListNodes: every node with what Arbiter knows of it, including why it is unavailable.
//! - ReloadInventory: re-read the inventory file (also on SIGHUP).
//! - SetFreeze, ListFreezes, SetReadOnly: change freezes and read-only mode (`super::freeze`).
//! - WatchMaintenanceTask: the task's state now and after every change. While its owner (or an
//!   admin) watches, the writer re-checks the task whenever anything changes, so grants arrive
//!   without polling.

use super::audit::{Audit, Initiator};
use super::error::ServiceError;
use super::{Context, decode, encode};
use crate::cluster::Role;
use crate::engine::state::MAX_NAME_LEN;
use crate::engine::{EngineError, Heartbeat, NodeState as EngineNodeState};
use crate::identity::Caller;
use crate::watches::TaskUpdate;
use arbiter_proto::arbiter::v1::arbiter_service_server::ArbiterService;
use arbiter_proto::arbiter::v1::{
    BackupRequest, BackupResponse, HeartbeatRequest, HeartbeatResponse, InstanceStatus,
    ListAuditRequest, ListAuditResponse, ListInstancesRequest, ListInstancesResponse,
    ListNodesRequest, ListNodesResponse, ListTasksRequest, ListTasksResponse, NodeState,
    NodeStatus, PlanRolloutRequest, PlanRolloutResponse, ReloadInventoryRequest,
    ReloadInventoryResponse, SetNodeStateRequest, SetNodeStateResponse, ValidateFenceRequest,
    ValidateFenceResponse, WatchMaintenanceTaskRequest, WatchMaintenanceTaskResponse,
    WhoAmIRequest, WhoAmIResponse,
};
use arbiter_proto::ydb::issue::IssueMessage;
use arbiter_proto::ydb::maintenance::ItemState;
use arbiter_proto::ydb::status_ids::StatusCode;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_stream::Stream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// Arbiter's own service.
#[derive(Debug, Clone)]
pub struct ArbiterApi {
    ctx: Context,
    open_watches: Arc<Mutex<WatchCounts>>,
}

impl ArbiterApi {
    /// Over the shared context.
    pub fn new(ctx: Context) -> ArbiterApi {
        ArbiterApi {
            ctx,
            open_watches: Arc::default(),
        }
    }

    fn caller(&self, audit: &Audit, meta: &MetadataMap) -> Result<Caller, Status> {
        self.identify(audit, meta).map_err(|e| e.to_grpc())
    }

    /// Who is calling; a refusal is logged.
    pub(crate) fn identify(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
    ) -> Result<Caller, ServiceError> {
        self.ctx.identity.resolve(meta).map_err(|e| {
            audit.denied(None, &e);
            ServiceError::from(e)
        })
    }

    fn operator(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        action: &'static str,
    ) -> Result<Caller, Status> {
        self.operator_of(audit, meta, action)
            .map_err(|e| e.to_grpc())
    }

    /// The caller of a mutating call, who must be an operator; a refusal is logged and goes to
    /// the audit trail.
    pub(crate) fn operator_of(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        action: &'static str,
    ) -> Result<Caller, ServiceError> {
        let caller = self.identify(audit, meta).inspect_err(|e| {
            self.ctx.refused(audit, meta, "", &[], e);
        })?;
        caller.require_operator(action).map_err(|e| {
            audit.denied(Some(&caller), &e);
            let e = ServiceError::from(e);
            self.ctx.refused(audit, meta, "", &[], &e);
            e
        })?;
        Ok(caller)
    }

    /// ListNodes: every node with what Arbiter knows of it.
    pub(crate) async fn nodes(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
    ) -> Result<Vec<NodeStatus>, ServiceError> {
        self.identify(audit, meta)?;
        self.ctx.query(|s, now| Ok(node_statuses(s, now))).await
    }

    /// ValidateFence.
    pub(crate) async fn fence(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        req: ValidateFenceRequest,
    ) -> Result<ValidateFenceResponse, ServiceError> {
        self.identify(audit, meta)?;
        let pdisk = (req.pdisk_id != 0).then_some(req.pdisk_id);
        let answer = self
            .ctx
            .query(move |s, now| Ok(s.validate_fence(req.node_id, pdisk, req.token, now)))
            .await?;
        Ok(encode::fence(&answer))
    }

    /// ListTasks: the tasks of `owner` (empty: every task), summed up.
    pub(crate) async fn tasks(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        owner: String,
    ) -> Result<Vec<arbiter_proto::arbiter::v1::TaskSummary>, ServiceError> {
        self.identify(audit, meta)?;
        self.ctx
            .query(move |s, _| {
                Ok(s.task_uids(Some(&owner))
                    .iter()
                    .filter_map(|uid| s.task(uid))
                    .map(|view| encode::task_summary(&view))
                    .collect())
            })
            .await
    }

    /// SetFreeze: the caller must be an operator; refusals go to the audit trail.
    pub(crate) async fn freeze(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        req: arbiter_proto::arbiter::v1::SetFreezeRequest,
    ) -> Result<arbiter_proto::arbiter::v1::SetFreezeResponse, ServiceError> {
        let caller = self.operator_of(audit, meta, "set freezes")?;
        super::freeze::apply_freeze(&self.ctx, audit, meta, caller, req).await
    }

    /// ListFreezes.
    pub(crate) async fn freezes(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
    ) -> Result<arbiter_proto::arbiter::v1::ListFreezesResponse, ServiceError> {
        self.identify(audit, meta)?;
        super::freeze::freezes(&self.ctx).await
    }

    /// ListAudit.
    pub(crate) async fn audit_page(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        req: ListAuditRequest,
    ) -> Result<ListAuditResponse, ServiceError> {
        self.identify(audit, meta)?;
        super::audit_trail::page(&self.ctx, req).await
    }
}

/// Every node as ListNodes reports it.
fn node_statuses(s: &crate::engine::State, now: crate::engine::Timestamp) -> Vec<NodeStatus> {
    s.nodes_at(now)
        .iter()
        .filter_map(|v| {
            let n = s.cluster().node(v.id)?;
            Some(NodeStatus {
                node_id: v.id,
                host: n.host.clone(),
                port: n.port,
                data_center: n.location.data_center.clone().unwrap_or_default(),
                tenant: n.tenant.clone().unwrap_or_default(),
                state: match v.state {
                    EngineNodeState::Up => ItemState::Up,
                    EngineNodeState::Maintenance => ItemState::Maintenance,
                    EngineNodeState::Down => ItemState::Down,
                } as i32,
                available: v.available,
                detail: v.detail.clone().unwrap_or_default(),
                lock_task: v.lock.as_ref().map(|l| l.0.clone()).unwrap_or_default(),
                lock_deadline: v.lock.as_ref().map(|l| encode::timestamp(l.1)),
                monitored: v.monitored,
                last_heartbeat: v.last_heartbeat.map(encode::timestamp),
                version: v
                    .version
                    .clone()
                    .or_else(|| n.version.clone())
                    .unwrap_or_default(),
                start_time: v.start_time.or(v.up_since).map(encode::timestamp),
                condition: encode::condition(v.condition) as i32,
                windows: v
                    .window
                    .as_ref()
                    .map(|w| w.names.clone())
                    .unwrap_or_default(),
                window_open: v.window.as_ref().is_some_and(|w| w.open),
                window_open_until: v
                    .window
                    .as_ref()
                    .and_then(|w| w.open_until)
                    .map(encode::timestamp),
                window_next_open: v
                    .window
                    .as_ref()
                    .and_then(|w| w.next_open)
                    .map(encode::timestamp),
                window_zone: v
                    .window
                    .as_ref()
                    .map(|w| w.zone.clone())
                    .unwrap_or_default(),
                window_local: v
                    .window
                    .as_ref()
                    .and_then(|w| w.local.clone())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The watch stream's type.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<WatchMaintenanceTaskResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ArbiterService for ArbiterApi {
    type AgentOrdersStream = super::agents::OrdersStream;

    async fn agent_orders(
        &self,
        request: Request<arbiter_proto::arbiter::v1::AgentOrdersRequest>,
    ) -> Result<Response<Self::AgentOrdersStream>, Status> {
        let audit = Audit::of("AgentOrders", &request);
        let (meta, _, req) = request.into_parts();
        self.operator(&audit, &meta, "receive agent orders")?;
        super::agents::orders(&self.ctx, req.node_id)
            .await
            .map(Response::new)
    }

    async fn report_work(
        &self,
        request: Request<arbiter_proto::arbiter::v1::ReportWorkRequest>,
    ) -> Result<Response<arbiter_proto::arbiter::v1::ReportWorkResponse>, Status> {
        let audit = Audit::of("ReportWork", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.operator(&audit, &meta, "report agent work")?;
        super::agents::report_work(&self.ctx, &audit, &caller, req)
            .await
            .map(Response::new)
            .map_err(|e| e.to_grpc())
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let audit = Audit::of("Heartbeat", &request);
        let (meta, _, req) = request.into_parts();
        self.operator(&audit, &meta, "send heartbeats")?;
        if req.version.as_ref().is_some_and(|v| v.len() > MAX_NAME_LEN) {
            return Err(Status::invalid_argument(format!(
                "version is longer than {MAX_NAME_LEN} bytes"
            )));
        }
        let node = req.node_id;
        let beat = Heartbeat {
            version: req.version.filter(|v| !v.is_empty()),
            start_time: req.start_time.map(decode::timestamp),
        };
        let (changed, _) = self
            .ctx
            .command(move |s, now| Ok(s.heartbeat(node, beat, now)?))
            .await
            .map_err(|e| e.to_grpc())?;
        if changed {
            tracing::info!(
                node,
                outcome = "heartbeat",
                "node record updated by a heartbeat"
            );
        }
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn set_node_state(
        &self,
        request: Request<SetNodeStateRequest>,
    ) -> Result<Response<SetNodeStateResponse>, Status> {
        let audit = Audit::of("SetNodeState", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.operator(&audit, &meta, "set node states")?;
        let node = req.node_id;
        let refuse = |e: ServiceError| {
            self.ctx.refused(&audit, &meta, "", &[node], &e);
            e.to_grpc()
        };
        let up = match NodeState::try_from(req.state) {
            Ok(NodeState::Up) => true,
            Ok(NodeState::Down) => false,
            _ => {
                return Err(refuse(ServiceError::BadRequest(
                    "state must be NODE_STATE_UP or NODE_STATE_DOWN".into(),
                )));
            }
        };
        if req.reason.len() > MAX_NAME_LEN {
            return Err(refuse(ServiceError::BadRequest(format!(
                "reason is longer than {MAX_NAME_LEN} bytes"
            ))));
        }
        let reason = req.reason.clone();
        let entry = audit.entry(crate::engine::audit::AuditKind::NodeStateSet, Some(&caller));
        let (changed, _) = self
            .ctx
            .audited(move |s, now| {
                let o = s.set_node_state(node, up, &reason, now)?;
                let state = if up { "up" } else { "down" };
                let entries = if o.value {
                    vec![crate::engine::audit::AuditEntry {
                        nodes: vec![node],
                        detail: format!("node {node} {state}: {reason}"),
                        ..entry
                    }]
                } else {
                    Vec::new()
                };
                Ok((o, entries))
            })
            .await
            .map_err(refuse)?;
        if changed {
            tracing::info!(node, state = if up { "up" } else { "down" }, by = %caller.user,
                reason = %req.reason, "node state set");
        }
        Ok(Response::new(SetNodeStateResponse {}))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let audit = Audit::of("ListNodes", &request);
        let nodes = self
            .nodes(&audit, request.metadata())
            .await
            .map_err(|e| e.to_grpc())?;
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn validate_fence(
        &self,
        request: Request<ValidateFenceRequest>,
    ) -> Result<Response<ValidateFenceResponse>, Status> {
        let audit = Audit::of("ValidateFence", &request);
        let (meta, _, req) = request.into_parts();
        let answer = self
            .fence(&audit, &meta, req)
            .await
            .map_err(|e| e.to_grpc())?;
        Ok(Response::new(answer))
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let audit = Audit::of("ListTasks", &request);
        let (meta, _, req) = request.into_parts();
        let tasks = self
            .tasks(&audit, &meta, req.owner)
            .await
            .map_err(|e| e.to_grpc())?;
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn set_freeze(
        &self,
        request: Request<arbiter_proto::arbiter::v1::SetFreezeRequest>,
    ) -> Result<Response<arbiter_proto::arbiter::v1::SetFreezeResponse>, Status> {
        let audit = Audit::of("SetFreeze", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.operator(&audit, &meta, "set freezes")?;
        super::freeze::set_freeze(&self.ctx, &audit, &meta, caller, req)
            .await
            .map(Response::new)
    }

    async fn list_freezes(
        &self,
        request: Request<arbiter_proto::arbiter::v1::ListFreezesRequest>,
    ) -> Result<Response<arbiter_proto::arbiter::v1::ListFreezesResponse>, Status> {
        let audit = Audit::of("ListFreezes", &request);
        self.caller(&audit, request.metadata())?;
        super::freeze::list_freezes(&self.ctx)
            .await
            .map(Response::new)
    }

    async fn set_read_only(
        &self,
        request: Request<arbiter_proto::arbiter::v1::SetReadOnlyRequest>,
    ) -> Result<Response<arbiter_proto::arbiter::v1::SetReadOnlyResponse>, Status> {
        let audit = Audit::of("SetReadOnly", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.operator(&audit, &meta, "set read-only mode")?;
        super::freeze::set_read_only(&self.ctx, &audit, &meta, caller, req)
            .await
            .map(Response::new)
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let audit = Audit::of("WhoAmI", &request);
        let caller = self.caller(&audit, request.metadata())?;
        Ok(Response::new(WhoAmIResponse {
            user: caller.user,
            role: caller.role.to_string(),
        }))
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let audit = Audit::of("ListAudit", &request);
        Ok(Response::new(
            super::audit_trail::list(&self.ctx, &audit, request).await?,
        ))
    }

    async fn plan_rollout(
        &self,
        request: Request<PlanRolloutRequest>,
    ) -> Result<Response<PlanRolloutResponse>, Status> {
        let audit = Audit::of("PlanRollout", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.caller(&audit, &meta)?;
        super::plan::plan_rollout(&self.ctx, &caller, req)
            .await
            .map(Response::new)
    }

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupResponse>, Status> {
        let audit = Audit::of("Backup", &request);
        let caller = self.caller(&audit, request.metadata())?;
        if let Err(e) = caller.require_admin("take backups") {
            audit.denied(Some(&caller), &e);
            return Err(ServiceError::from(e).to_grpc());
        }
        // A read on the writer: the state as committed, every change answered before it in.
        let snapshot = self
            .ctx
            .query(|s, _| Ok(s.snapshot()))
            .await
            .map_err(|e| e.to_grpc())?;
        let source = format!("backup of instance {}", self.ctx.membership.me().id);
        let file =
            crate::app::transfer::encode_dump(&snapshot, &source).map_err(Status::internal)?;
        tracing::info!(user = %caller.user, tasks = snapshot.tasks.len(),
            fencing_token = snapshot.counters.last_fencing_token, "backup taken");
        Ok(Response::new(BackupResponse {
            file: file.into_bytes(),
        }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let audit = Audit::of("ListInstances", &request);
        self.caller(&audit, request.metadata())?;
        let membership = &self.ctx.membership;
        let me = membership.me();
        let role = membership.role();
        let (leader_id, leader_epoch) = match &role {
            Role::Leader { epoch, .. } => (me.id.clone(), *epoch),
            Role::Follower { leader: Some(p) } => (p.id.clone(), p.epoch),
            _ => (String::new(), 0),
        };
        let ms = |ms: u64| encode::timestamp(crate::engine::Timestamp(ms));
        let instances = match &self.ctx.registry {
            None => vec![InstanceStatus {
                id: me.id.clone(),
                address: me.address.clone(),
                role: role.name().to_owned(),
                leader_epoch,
                last_renewal: None,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started: None,
                answered: true,
            }],
            Some(registry) => registry
                .list()
                .await
                .map_err(Status::unavailable)?
                .into_iter()
                .map(|r| InstanceStatus {
                    answered: r.id == me.id,
                    id: r.id,
                    address: r.address,
                    role: r.role,
                    leader_epoch: r.leader_epoch,
                    last_renewal: Some(ms(r.renewed_ms)),
                    version: r.version,
                    started: Some(ms(r.started_ms)),
                })
                .collect(),
        };
        Ok(Response::new(ListInstancesResponse {
            instances,
            store: if self.ctx.registry.is_some() {
                "etcd"
            } else {
                "redb"
            }
            .to_owned(),
            leader_id,
            leader_epoch,
        }))
    }

    async fn reload_inventory(
        &self,
        request: Request<ReloadInventoryRequest>,
    ) -> Result<Response<ReloadInventoryResponse>, Status> {
        let audit = Audit::of("ReloadInventory", &request);
        let caller = self.caller(&audit, request.metadata())?;
        if let Err(e) = caller.require_admin("reload the inventory") {
            audit.denied(Some(&caller), &e);
            let e = ServiceError::from(e);
            self.ctx.refused(&audit, request.metadata(), "", &[], &e);
            return Err(e.to_grpc());
        }
        let reloaded = self
            .ctx
            .reload_inventory(audit, Initiator::Caller(&caller))
            .await;
        let r = reloaded.map_err(|e| match e {
            ServiceError::Engine(EngineError::Impossible(m)) | ServiceError::BadRequest(m) => {
                Status::failed_precondition(m)
            }
            other => other.to_grpc(),
        })?;
        let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        Ok(Response::new(ReloadInventoryResponse {
            nodes_before: n(r.nodes.0),
            nodes_after: n(r.nodes.1),
            groups_before: n(r.groups.0),
            groups_after: n(r.groups.1),
        }))
    }

    type WatchMaintenanceTaskStream = WatchStream;

    async fn watch_maintenance_task(
        &self,
        request: Request<WatchMaintenanceTaskRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let audit = Audit::of("WatchMaintenanceTask", &request);
        let (meta, _, req) = request.into_parts();
        let caller = self.caller(&audit, &meta)?;
        let uid = req.task_uid;
        let guard = WatchSlot::take(&self.open_watches, &caller.user, self.ctx.limits)?;
        // Whether this watch drives the task is decided by the writer, on the task as it is
        // when the watch opens (a uid may be dropped and created again by someone else).
        let drives = {
            let (uid, caller) = (uid.clone(), caller.clone());
            move |owner: &str| caller.require_owner(&uid, owner).is_ok()
        };
        let sub = self
            .ctx
            .writer()
            .map_err(|e| e.to_grpc())?
            .watch(uid.clone(), drives)
            .await
            .map_err(|e| ServiceError::from(e).to_grpc())?
            .ok_or_else(|| Status::invalid_argument("Task not found"))?;
        // The stream itself waits on the task's channel: no task of its own and no channel
        // between, so a change reaches each watcher in one wake-up. The subscription (with its
        // driver handle) and the slot live as long as the stream, which tonic drops when the
        // caller goes away.
        let watching = Watching {
            uid,
            sub,
            shutdown: self.ctx.shutdown.clone(),
            _slot: guard,
            first: true,
        };
        let stream = futures_util::stream::unfold(Some(watching), |watching| async move {
            let mut w = watching?;
            if !std::mem::take(&mut w.first) {
                tokio::select! {
                    changed = w.sub.updates.changed() => changed.ok()?,
                    _ = w.shutdown.wait_for(|stopping| *stopping) => return None,
                }
            }
            let update = w.sub.updates.borrow_and_update().clone();
            let gone = update == TaskUpdate::Gone;
            let item = Ok(message(&w.uid, update));
            // The task gone: this message is the last.
            Some((item, (!gone).then_some(w)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One open watch stream's state.
struct Watching {
    uid: String,
    sub: crate::watches::Subscription,
    shutdown: tokio::sync::watch::Receiver<bool>,
    _slot: WatchSlot,
    /// The state when the watch opened is sent first, without waiting for a change.
    first: bool,
}

fn message(uid: &str, update: TaskUpdate) -> WatchMaintenanceTaskResponse {
    match update {
        TaskUpdate::Live(view) => WatchMaintenanceTaskResponse {
            status: StatusCode::Success as i32,
            issues: Vec::new(),
            result: Some(encode::task_result(&view)),
            owner: view.owner.clone(),
        },
        TaskUpdate::Gone => WatchMaintenanceTaskResponse {
            status: StatusCode::BadRequest as i32,
            issues: vec![IssueMessage {
                message: format!(
                    "Task not found: '{uid}' is gone (completed, dropped, or its locks expired)"
                ),
                severity: 1,
                ..IssueMessage::default()
            }],
            result: None,
            owner: String::new(),
        },
    }
}

/// Open watch streams, in all and per user.
#[derive(Debug, Default)]
struct WatchCounts {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// One watch slot, given back on drop.
struct WatchSlot {
    counts: Arc<Mutex<WatchCounts>>,
    user: String,
}

impl WatchSlot {
    fn take(
        counts: &Arc<Mutex<WatchCounts>>,
        user: &str,
        limits: super::decode::RequestLimits,
    ) -> Result<WatchSlot, Status> {
        let mut c = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.total >= limits.max_watches {
            return Err(Status::resource_exhausted(format!(
                "too many open watches: the server holds at most {} (--max-watches)",
                limits.max_watches
            )));
        }
        let mine = c.by_user.entry(user.to_owned()).or_default();
        if *mine >= limits.max_watches_per_user {
            return Err(Status::resource_exhausted(format!(
                "too many open watches: user '{user}' holds {}, the most one user may (--max-watches-per-user)",
                limits.max_watches_per_user
            )));
        }
        *mine += 1;
        c.total += 1;
        Ok(WatchSlot {
            counts: counts.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut c = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.by_user.remove(&self.user);
            }
        }
    }
}
