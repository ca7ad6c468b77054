//! Arbiter's typed client library: one method per call, the YDB envelope unwrapped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), arbiter_client::ClientError> {
//! let client = arbiter_client::Client::connect("127.0.0.1:2135", Some("alice".into())).await?;
//! for node in client.list_nodes().await? {
//!     println!("{} {}", node.node_id, node.host);
//! }
//! # Ok(()) }
//! ```
//!
//! Every call sends the ticket as `x-ydb-auth-ticket`. A YDB status other than SUCCESS becomes
//! [`ClientError::Refused`] with the server's issue text; [`ClientError::is_retryable`] tells
//! what is worth retrying. The wire types are re-exported as [`proto`].
//!
//! [`heartbeat`] is the node agent's loop (heartbeats that outlast server restarts, with the
//! backoff of [`retry`]); [`rolling`] is `arbiter rolling-restart`.

pub mod durations;
mod endpoint;
mod envelope;
mod error;
pub mod heartbeat;
pub mod retry;
pub mod rolling;

pub use arbiter_proto as proto;
pub use endpoint::{Endpoint, TlsOptions};
pub use error::ClientError;

use arbiter_proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_proto::arbiter::v1::{
    HeartbeatRequest, ListNodesRequest, NodeState, NodeStatus, ReloadInventoryRequest,
    ReloadInventoryResponse, SetNodeStateRequest, WatchMaintenanceTaskRequest,
    WatchMaintenanceTaskResponse,
};
use arbiter_proto::ydb::auth::v1::auth_service_client::AuthServiceClient;
use arbiter_proto::ydb::auth::{LoginRequest, LoginResult};
use arbiter_proto::ydb::discovery::v1::discovery_service_client::DiscoveryServiceClient;
use arbiter_proto::ydb::discovery::{WhoAmIRequest, WhoAmIResult};
use arbiter_proto::ydb::maintenance::v1::maintenance_service_client::MaintenanceServiceClient;
use arbiter_proto::ydb::maintenance::{
    ActionUid, CompleteActionRequest, CreateMaintenanceTaskRequest, DropMaintenanceTaskRequest,
    GetMaintenanceTaskRequest, GetMaintenanceTaskResult, ListClusterNodesRequest,
    ListClusterNodesResult, ListMaintenanceTasksRequest, ListMaintenanceTasksResult,
    MaintenanceTaskResult, ManageActionResult, Node, RefreshMaintenanceTaskRequest,
};
use arbiter_proto::ydb::status_ids::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The largest reply the client accepts (a 100 000-node ListClusterNodes fits).
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a lazy client's connection is pinged (HTTP/2 PING)...
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and how long the answer may take before the connection counts as dead.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The tonic endpoint for `endpoint`, with the options every client uses; TLS for `https://`
/// and `grpcs://` as `tls` says.
fn channel_endpoint(
    endpoint: &str,
    tls: &TlsOptions,
) -> Result<tonic::transport::Endpoint, ClientError> {
    let parsed = Endpoint::parse(endpoint)?;
    let bad = |reason: String| ClientError::Endpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    if !parsed.tls && tls.is_set() {
        return Err(bad(
            "--ca-file, --cert-file and --key-file are for TLS: write the endpoint as \
             https://HOST:PORT or grpcs://HOST:PORT"
                .into(),
        ));
    }
    let channel = Channel::from_shared(parsed.uri())
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if !parsed.tls {
        return Ok(channel);
    }
    channel
        .tls_config(tls.client_config(endpoint)?)
        .map_err(|e| bad(format!("TLS: {e}")))
}

/// A connection to an Arbiter server. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    ticket: Option<String>,
}

impl Client {
    /// Connects to `endpoint` (`host:port`, `grpc://host:port`, `http://...`; `https://` or
    /// `grpcs://` trusting the system's CA roots).
    pub async fn connect(endpoint: &str, ticket: Option<String>) -> Result<Client, ClientError> {
        Client::connect_tls(endpoint, ticket, &TlsOptions::default()).await
    }

    /// [`Client::connect`], with `tls` for an `https://` or `grpcs://` endpoint.
    pub async fn connect_tls(
        endpoint: &str,
        ticket: Option<String>,
        tls: &TlsOptions,
    ) -> Result<Client, ClientError> {
        let channel = channel_endpoint(endpoint, tls)?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        Ok(Client { channel, ticket })
    }

    /// A client for `endpoint` that does not connect now: the first call connects, and a call
    /// after a lost connection (a server restart) connects again, so a server that is not up
    /// yet is a retryable `UNAVAILABLE` on each call rather than an error here. Only a
    /// malformed endpoint fails. The connection also sends HTTP/2 keep-alive pings, so a peer
    /// that vanished without closing it (a host that rebooted) is noticed and replaced. For
    /// loops that must outlast the server (the node agent, [`heartbeat`]).
    pub fn connect_lazy(endpoint: &str, ticket: Option<String>) -> Result<Client, ClientError> {
        Client::connect_lazy_tls(endpoint, ticket, &TlsOptions::default())
    }

    /// [`Client::connect_lazy`], with `tls` for an `https://` or `grpcs://` endpoint.
    pub fn connect_lazy_tls(
        endpoint: &str,
        ticket: Option<String>,
        tls: &TlsOptions,
    ) -> Result<Client, ClientError> {
        let channel = channel_endpoint(endpoint, tls)?
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Client { channel, ticket })
    }

    /// Over an existing channel.
    pub fn with_channel(channel: Channel, ticket: Option<String>) -> Client {
        Client { channel, ticket }
    }

    /// The same connection with another ticket.
    pub fn with_ticket(&self, ticket: Option<String>) -> Client {
        Client {
            channel: self.channel.clone(),
            ticket,
        }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.ticket
            && let Ok(v) = MetadataValue::try_from(t.as_str())
        {
            r.metadata_mut().insert("x-ydb-auth-ticket", v);
        }
        r
    }

    fn maintenance(&self) -> MaintenanceServiceClient<Channel> {
        MaintenanceServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn arbiter(&self) -> ArbiterServiceClient<Channel> {
        ArbiterServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY_BYTES)
    }

    /// Every node as YDB's ListClusterNodes reports it.
    pub async fn list_cluster_nodes(&self) -> Result<Vec<Node>, ClientError> {
        let r = self
            .maintenance()
            .list_cluster_nodes(self.request(ListClusterNodesRequest::default()))
            .await?;
        Ok(envelope::unpack::<ListClusterNodesResult>(r.into_inner().operation)?.nodes)
    }

    /// Every node with Arbiter's own view (why unavailable, lock, heartbeat).
    pub async fn list_nodes(&self) -> Result<Vec<NodeStatus>, ClientError> {
        let r = self
            .arbiter()
            .list_nodes(self.request(ListNodesRequest {}))
            .await?;
        Ok(r.into_inner().nodes)
    }

    /// Simulates a rolling restart on a copy of the server's state: its waves, the nodes that
    /// are never granted under the current state, and an estimate. Changes nothing.
    pub async fn plan_rollout(
        &self,
        req: arbiter_proto::arbiter::v1::PlanRolloutRequest,
    ) -> Result<arbiter_proto::arbiter::v1::PlanRolloutResponse, ClientError> {
        let r = self.arbiter().plan_rollout(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// A consistent copy of the whole state (admins): the bytes of a backup file.
    pub async fn backup(&self) -> Result<Vec<u8>, ClientError> {
        let r = self
            .arbiter()
            .backup(self.request(arbiter_proto::arbiter::v1::BackupRequest {}))
            .await?;
        Ok(r.into_inner().file)
    }

    /// Freezes a scope or lifts its freeze (arbiter.v1 SetFreeze).
    pub async fn set_freeze(
        &self,
        req: arbiter_proto::arbiter::v1::SetFreezeRequest,
    ) -> Result<arbiter_proto::arbiter::v1::SetFreezeResponse, ClientError> {
        let r = self.arbiter().set_freeze(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// The freezes in force and read-only mode (arbiter.v1 ListFreezes).
    pub async fn list_freezes(
        &self,
    ) -> Result<arbiter_proto::arbiter::v1::ListFreezesResponse, ClientError> {
        let req = arbiter_proto::arbiter::v1::ListFreezesRequest {};
        let r = self.arbiter().list_freezes(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// Turns read-only mode on or off (arbiter.v1 SetReadOnly).
    pub async fn set_read_only(
        &self,
        req: arbiter_proto::arbiter::v1::SetReadOnlyRequest,
    ) -> Result<arbiter_proto::arbiter::v1::SetReadOnlyResponse, ClientError> {
        let r = self.arbiter().set_read_only(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// Whether a fencing token is the live lock on a node (`pdisk_id` 0) or one of its disks
    /// now, or what became of it (arbiter.v1 ValidateFence).
    pub async fn validate_fence(
        &self,
        node_id: u32,
        pdisk_id: u32,
        token: u64,
    ) -> Result<arbiter_proto::arbiter::v1::ValidateFenceResponse, ClientError> {
        let req = arbiter_proto::arbiter::v1::ValidateFenceRequest {
            node_id,
            pdisk_id,
            token,
        };
        let r = self.arbiter().validate_fence(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// Every task (or one owner's) with its owner and counts (arbiter.v1 ListTasks).
    pub async fn task_summaries(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<arbiter_proto::arbiter::v1::TaskSummary>, ClientError> {
        let req = arbiter_proto::arbiter::v1::ListTasksRequest {
            owner: owner.unwrap_or_default().to_owned(),
        };
        let r = self.arbiter().list_tasks(self.request(req)).await?;
        Ok(r.into_inner().tasks)
    }

    /// The caller's user and role (arbiter.v1 WhoAmI).
    pub async fn caller_role(
        &self,
    ) -> Result<arbiter_proto::arbiter::v1::WhoAmIResponse, ClientError> {
        let r = self
            .arbiter()
            .who_am_i(self.request(arbiter_proto::arbiter::v1::WhoAmIRequest {}))
            .await?;
        Ok(r.into_inner())
    }

    /// A page of the audit trail (filters and paging in `req`).
    pub async fn list_audit(
        &self,
        req: arbiter_proto::arbiter::v1::ListAuditRequest,
    ) -> Result<arbiter_proto::arbiter::v1::ListAuditResponse, ClientError> {
        let r = self.arbiter().list_audit(self.request(req)).await?;
        Ok(r.into_inner())
    }

    /// Every arbiter-server instance serving this cluster (answered by the one called).
    pub async fn list_instances(
        &self,
    ) -> Result<arbiter_proto::arbiter::v1::ListInstancesResponse, ClientError> {
        let r = self
            .arbiter()
            .list_instances(self.request(arbiter_proto::arbiter::v1::ListInstancesRequest {}))
            .await?;
        Ok(r.into_inner())
    }

    /// Creates a task (or checks it, with `dry_run`).
    pub async fn create_task(
        &self,
        req: CreateMaintenanceTaskRequest,
    ) -> Result<MaintenanceTaskResult, ClientError> {
        let r = self
            .maintenance()
            .create_maintenance_task(self.request(req))
            .await?;
        envelope::unpack(r.into_inner().operation)
    }

    /// Re-checks a task's pending actions.
    pub async fn refresh_task(&self, uid: &str) -> Result<MaintenanceTaskResult, ClientError> {
        let req = RefreshMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .refresh_maintenance_task(self.request(req))
            .await?;
        envelope::unpack(r.into_inner().operation)
    }

    /// A task, without a re-check.
    pub async fn get_task(&self, uid: &str) -> Result<GetMaintenanceTaskResult, ClientError> {
        let req = GetMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .get_maintenance_task(self.request(req))
            .await?;
        envelope::unpack(r.into_inner().operation)
    }

    /// Task uids: all, or one user's.
    pub async fn list_tasks(&self, user: Option<&str>) -> Result<Vec<String>, ClientError> {
        let req = ListMaintenanceTasksRequest {
            user: user.map(str::to_owned),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .list_maintenance_tasks(self.request(req))
            .await?;
        Ok(envelope::unpack::<ListMaintenanceTasksResult>(r.into_inner().operation)?.tasks_uids)
    }

    /// Drops a task, releasing its locks.
    pub async fn drop_task(&self, uid: &str) -> Result<(), ClientError> {
        let req = DropMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
            ..Default::default()
        };
        let r = self
            .maintenance()
            .drop_maintenance_task(self.request(req))
            .await?;
        let op = r
            .into_inner()
            .operation
            .ok_or_else(|| ClientError::Decode("the reply has no operation".into()))?;
        envelope::check(&op)
    }

    /// Completes (or withdraws, when pending) actions, all or nothing.
    pub async fn complete_actions(
        &self,
        uids: Vec<ActionUid>,
    ) -> Result<ManageActionResult, ClientError> {
        let req = CompleteActionRequest {
            action_uids: uids,
            ..Default::default()
        };
        let r = self
            .maintenance()
            .complete_action(self.request(req))
            .await?;
        envelope::unpack(r.into_inner().operation)
    }

    /// Who the server thinks the caller is.
    pub async fn who_am_i(&self) -> Result<WhoAmIResult, ClientError> {
        let r = DiscoveryServiceClient::new(self.channel.clone())
            .who_am_i(self.request(WhoAmIRequest::default()))
            .await?;
        envelope::unpack(r.into_inner().operation)
    }

    /// Logs in with a password; returns a session token to use as the ticket.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, ClientError> {
        let req = LoginRequest {
            user: user.to_owned(),
            password: password.to_owned(),
            ..Default::default()
        };
        let r = AuthServiceClient::new(self.channel.clone())
            .login(tonic::Request::new(req))
            .await?;
        Ok(envelope::unpack::<LoginResult>(r.into_inner().operation)?.token)
    }

    /// Reports that a node is alive.
    pub async fn heartbeat(
        &self,
        node_id: u32,
        version: Option<String>,
        start_time: Option<SystemTime>,
    ) -> Result<(), ClientError> {
        let req = HeartbeatRequest {
            node_id,
            version,
            start_time: start_time.map(timestamp),
        };
        self.arbiter().heartbeat(self.request(req)).await?;
        Ok(())
    }

    /// Marks a node up or down by hand.
    pub async fn set_node_state(
        &self,
        node_id: u32,
        up: bool,
        reason: &str,
    ) -> Result<(), ClientError> {
        let req = SetNodeStateRequest {
            node_id,
            state: if up { NodeState::Up } else { NodeState::Down } as i32,
            reason: reason.to_owned(),
        };
        self.arbiter().set_node_state(self.request(req)).await?;
        Ok(())
    }

    /// Makes the server re-read its inventory file.
    pub async fn reload_inventory(&self) -> Result<ReloadInventoryResponse, ClientError> {
        let r = self
            .arbiter()
            .reload_inventory(self.request(ReloadInventoryRequest {}))
            .await?;
        Ok(r.into_inner())
    }

    /// Opens the order stream of a node's agent: its orders now, then each change. While it
    /// is open the node counts as having its agent connected.
    pub async fn agent_orders(
        &self,
        node_id: u32,
    ) -> Result<tonic::Streaming<arbiter_proto::arbiter::v1::AgentOrdersResponse>, ClientError>
    {
        let req = arbiter_proto::arbiter::v1::AgentOrdersRequest { node_id };
        Ok(self
            .arbiter()
            .agent_orders(self.request(req))
            .await?
            .into_inner())
    }

    /// Reports how an agent's hook stands; `true` when it changed what the server knew.
    pub async fn report_work(
        &self,
        req: arbiter_proto::arbiter::v1::ReportWorkRequest,
    ) -> Result<bool, ClientError> {
        Ok(self
            .arbiter()
            .report_work(self.request(req))
            .await?
            .into_inner()
            .recorded)
    }

    /// Watches a task: its state now, then after every change.
    pub async fn watch_task(&self, uid: &str) -> Result<Watch, ClientError> {
        let req = WatchMaintenanceTaskRequest {
            task_uid: uid.to_owned(),
        };
        let stream = self
            .arbiter()
            .watch_maintenance_task(self.request(req))
            .await?
            .into_inner();
        Ok(Watch { stream })
    }
}

/// An open task watch.
#[derive(Debug)]
pub struct Watch {
    stream: tonic::Streaming<WatchMaintenanceTaskResponse>,
}

impl Watch {
    /// The next state of the task. `Some(Err(..))` with BAD_REQUEST when the task is gone;
    /// `None` when the server closed the stream (shutdown).
    pub async fn next(&mut self) -> Option<Result<MaintenanceTaskResult, ClientError>> {
        match self.stream.message().await {
            Err(status) => Some(Err(ClientError::Rpc(status))),
            Ok(None) => None,
            Ok(Some(msg)) => {
                let status = StatusCode::try_from(msg.status).unwrap_or(StatusCode::Unspecified);
                if status == StatusCode::Success {
                    Some(msg.result.ok_or_else(|| {
                        ClientError::Decode("a watch update without a result".into())
                    }))
                } else {
                    let message = msg
                        .issues
                        .iter()
                        .map(|i| i.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    Some(Err(ClientError::Refused { status, message }))
                }
            }
        }
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}
