//! The clients and the work they do: closed loops (each client starts its next call when the
//! previous one has answered), so the rate is what the server sustains at this concurrency.
//!
//! Each client has its own HTTP/2 connection, so N clients are N connections as N separate
//! orchestrators would be, and its own nodes, so no client ever waits for another's lock: a
//! cycle measures the arbiter's cost (decode, engine, group commit, fsync), not contention.

use crate::cli::Args;
use crate::stats::{Kind, Phase, Samples, Window};
use anyhow::{Context as _, bail};
use arbiter_proto::ydb::maintenance::v1::maintenance_service_client::MaintenanceServiceClient;
use arbiter_proto::ydb::maintenance::{
    Action, ActionGroup, ActionScope, ActionUid, AvailabilityMode, CompleteActionRequest,
    CreateMaintenanceTaskRequest, DropMaintenanceTaskRequest, ListClusterNodesRequest,
    ListClusterNodesResult, LockAction, MaintenanceTaskOptions, MaintenanceTaskResult,
    ManageActionResult, RefreshMaintenanceTaskRequest, action, action_scope,
    action_state::ActionStatus,
};
use arbiter_proto::ydb::operations::Operation;
use arbiter_proto::ydb::status_ids::StatusCode;
use prost::Message;
use std::time::{Duration, Instant};
use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long every benchmark lock is asked for; far longer than a cycle, so none expires.
const LOCK_SECONDS: i64 = 60;

/// The health service that is SERVING only on the instance that leads (on etcd).
const LEADER_SERVICE: &str = "arbiter.v1.Leader";
/// How often [`wait_for_leader`] asks.
const LEADER_POLL: Duration = Duration::from_millis(50);

/// Waits until the server at `url` leads (its health service `arbiter.v1.Leader` answers
/// SERVING), at most `bound`; returns how long that took. An etcd-backed server announces its
/// address before it has won its campaign.
pub(crate) async fn wait_for_leader(url: &str, bound: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("bad endpoint {url:?}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(1));
    let mut last = String::from("no answer yet");
    while started.elapsed() < bound {
        match endpoint.connect().await {
            Ok(channel) => {
                let request = HealthCheckRequest {
                    service: LEADER_SERVICE.to_owned(),
                };
                match HealthClient::new(channel).check(request).await {
                    Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                        return Ok(started.elapsed());
                    }
                    Ok(r) => last = format!("{LEADER_SERVICE} is {:?}", r.get_ref().status()),
                    Err(status) => last = format!("health check: {status}"),
                }
            }
            Err(e) => last = format!("cannot connect: {e}"),
        }
        tokio::time::sleep(LEADER_POLL).await;
    }
    bail!(
        "the server at {url} did not lead within {} ({last})",
        humantime::format_duration(bound)
    )
}

/// Why a call did not do what the cycle needs.
enum Failure {
    /// The server answered with a non-SUCCESS operation, or with a result the bench cannot use.
    Refused(String),
    /// The call itself failed (connection lost, gRPC error): this client stops its phase.
    Transport(tonic::Status),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        Failure::Transport(s)
    }
}

/// One benchmark client: a connection, its nodes, and its task counter.
pub(crate) struct Client {
    id: u32,
    nodes: Vec<u32>,
    maintenance: MaintenanceServiceClient<Channel>,
    health: HealthClient<Channel>,
    ticket: Option<AsciiMetadataValue>,
    next_task: u64,
    max_refreshes: u32,
}

/// Opens one connection per client, learns the cluster's nodes and deals them out.
pub(crate) async fn connect(args: &Args, url: &str) -> anyhow::Result<Vec<Client>> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("bad endpoint {url:?}"))?
        .tcp_nodelay(true);
    let ticket = args
        .ticket
        .as_deref()
        .map(MetadataValue::try_from)
        .transpose()
        .context("--ticket must be printable ASCII")?;
    let mut clients = Vec::new();
    for id in 0..args.clients {
        // A Channel built by connect() owns one HTTP/2 connection.
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        clients.push(Client {
            id,
            nodes: Vec::new(),
            maintenance: MaintenanceServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            ticket: ticket.clone(),
            next_task: 0,
            max_refreshes: args.max_refreshes,
        });
    }
    let Some(first) = clients.first_mut() else {
        bail!("no clients");
    };
    let nodes = first
        .list_nodes()
        .await
        .context("cannot list the cluster's nodes")?;
    if nodes.len() < clients.len() {
        bail!(
            "the cluster has {} nodes; {} clients need at least one node each",
            nodes.len(),
            clients.len()
        );
    }
    let n = clients.len();
    for (i, node) in nodes.into_iter().enumerate() {
        clients[i % n].nodes.push(node);
    }
    Ok(clients)
}

impl Client {
    /// Does the phase's work back to back until the window ends; gives itself back with what
    /// it measured.
    pub(crate) async fn run(mut self, phase: Phase, window: Window) -> (Client, Samples) {
        let mut out = Samples::default();
        while Instant::now() < window.end {
            let step = match phase {
                Phase::Health => self.health_check(&mut out, &window).await,
                Phase::Cycles => self.cycle(&mut out, &window).await,
                Phase::EtcdLocks => {
                    out.errors
                        .add("an arbiter client has no etcd locks to run".into());
                    break;
                }
            };
            match step {
                Ok(()) => {}
                Err(Failure::Refused(message)) => out.errors.add(message),
                Err(Failure::Transport(status)) => {
                    out.errors.add(format!(
                        "client {} stopped: gRPC {:?}: {}",
                        self.id,
                        status.code(),
                        status.message()
                    ));
                    break;
                }
            }
        }
        (self, out)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Some(t) = &self.ticket {
            r.metadata_mut().insert("x-ydb-auth-ticket", t.clone());
        }
        r
    }

    async fn health_check(&mut self, out: &mut Samples, window: &Window) -> Result<(), Failure> {
        let started = Instant::now();
        let reply = self
            .health
            .check(self.request(HealthCheckRequest::default()))
            .await?
            .into_inner();
        if reply.status != ServingStatus::Serving as i32 {
            return Err(Failure::Refused(format!(
                "health check: status {}",
                reply.status
            )));
        }
        out.record(Kind::Health, started, window);
        Ok(())
    }

    /// Create -> refresh until performed -> complete. On a refusal after the task exists, the
    /// task is dropped so that its node is free for the next cycle.
    async fn cycle(&mut self, out: &mut Samples, window: &Window) -> Result<(), Failure> {
        let n = self.next_task;
        self.next_task += 1;
        let uid = format!("bench-{}-{n}", self.id);
        let node = self.nodes[(n % self.nodes.len() as u64) as usize];
        let started = Instant::now();
        let mut task = self.create(&uid, node, out, window).await?;
        let result = self.finish(&uid, &mut task, out, window).await;
        if let Err(Failure::Refused(_)) = &result {
            let drop = DropMaintenanceTaskRequest {
                operation_params: None,
                task_uid: uid,
            };
            let _ = self
                .maintenance
                .drop_maintenance_task(self.request(drop))
                .await;
        }
        result?;
        out.record(Kind::Cycle, started, window);
        Ok(())
    }

    async fn finish(
        &mut self,
        uid: &str,
        task: &mut MaintenanceTaskResult,
        out: &mut Samples,
        window: &Window,
    ) -> Result<(), Failure> {
        let mut refreshes = 0;
        let action = loop {
            if let Some(action) = performed(task)? {
                break action;
            }
            if refreshes == self.max_refreshes {
                return Err(Failure::Refused(format!(
                    "{uid}: still pending after {refreshes} refreshes"
                )));
            }
            refreshes += 1;
            *task = self.refresh(uid, out, window).await?;
        };
        self.complete(action, out, window).await
    }

    async fn create(
        &mut self,
        uid: &str,
        node: u32,
        out: &mut Samples,
        window: &Window,
    ) -> Result<MaintenanceTaskResult, Failure> {
        let lock = LockAction {
            scope: Some(ActionScope {
                scope: Some(action_scope::Scope::NodeId(node)),
            }),
            duration: Some(prost_types::Duration {
                seconds: LOCK_SECONDS,
                nanos: 0,
            }),
            drain: false,
        };
        let req = CreateMaintenanceTaskRequest {
            operation_params: None,
            task_options: Some(MaintenanceTaskOptions {
                task_uid: uid.to_owned(),
                description: "arbiter-bench".into(),
                availability_mode: AvailabilityMode::Strong as i32,
                ..MaintenanceTaskOptions::default()
            }),
            action_groups: vec![ActionGroup {
                actions: vec![Action {
                    action: Some(action::Action::LockAction(lock)),
                }],
            }],
        };
        let started = Instant::now();
        let reply = self
            .maintenance
            .create_maintenance_task(self.request(req))
            .await?;
        let result = unpack("create", reply.into_inner().operation)?;
        out.record(Kind::Create, started, window);
        Ok(result)
    }

    async fn refresh(
        &mut self,
        uid: &str,
        out: &mut Samples,
        window: &Window,
    ) -> Result<MaintenanceTaskResult, Failure> {
        let req = RefreshMaintenanceTaskRequest {
            operation_params: None,
            task_uid: uid.to_owned(),
        };
        let started = Instant::now();
        let reply = self
            .maintenance
            .refresh_maintenance_task(self.request(req))
            .await?;
        let result = unpack("refresh", reply.into_inner().operation)?;
        out.record(Kind::Refresh, started, window);
        Ok(result)
    }

    async fn complete(
        &mut self,
        action: ActionUid,
        out: &mut Samples,
        window: &Window,
    ) -> Result<(), Failure> {
        let req = CompleteActionRequest {
            operation_params: None,
            action_uids: vec![action],
        };
        let started = Instant::now();
        let reply = self.maintenance.complete_action(self.request(req)).await?;
        let result: ManageActionResult = unpack("complete", reply.into_inner().operation)?;
        if let Some(s) = result
            .action_statuses
            .iter()
            .find(|s| s.status != StatusCode::Success as i32)
        {
            return Err(Failure::Refused(format!(
                "complete: action status {}",
                status_name(s.status)
            )));
        }
        out.record(Kind::Complete, started, window);
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<u32>, tonic::Status> {
        let reply = self
            .maintenance
            .list_cluster_nodes(self.request(ListClusterNodesRequest::default()))
            .await?;
        let result: ListClusterNodesResult = unpack("list nodes", reply.into_inner().operation)
            .map_err(|f| match f {
                Failure::Refused(m) => tonic::Status::failed_precondition(m),
                Failure::Transport(s) => s,
            })?;
        Ok(result.nodes.iter().map(|n| n.node_id).collect())
    }
}

/// The single action's uid once it is performed; None while it is pending.
fn performed(task: &MaintenanceTaskResult) -> Result<Option<ActionUid>, Failure> {
    let state = task
        .action_group_states
        .first()
        .and_then(|g| g.action_states.first())
        .ok_or_else(|| Failure::Refused(format!("{}: the result has no action", task.task_uid)))?;
    if state.status != ActionStatus::Performed as i32 {
        return Ok(None);
    }
    let uid = state
        .action_uid
        .clone()
        .ok_or_else(|| Failure::Refused(format!("{}: performed without a uid", task.task_uid)))?;
    Ok(Some(uid))
}

/// The result inside a SUCCESS operation.
fn unpack<R: Message + Default>(call: &str, op: Option<Operation>) -> Result<R, Failure> {
    let op = op.ok_or_else(|| Failure::Refused(format!("{call}: no operation in the reply")))?;
    if op.status != StatusCode::Success as i32 {
        let issues: Vec<&str> = op.issues.iter().map(|i| i.message.as_str()).collect();
        return Err(Failure::Refused(format!(
            "{call}: {}: {}",
            status_name(op.status),
            issues.join("; ")
        )));
    }
    let any = op
        .result
        .ok_or_else(|| Failure::Refused(format!("{call}: SUCCESS without a result")))?;
    R::decode(any.value.as_slice())
        .map_err(|e| Failure::Refused(format!("{call}: undecodable result: {e}")))
}

fn status_name(code: i32) -> String {
    StatusCode::try_from(code).map_or_else(|_| code.to_string(), |c| c.as_str_name().to_owned())
}
