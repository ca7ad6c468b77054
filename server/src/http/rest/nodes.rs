//! `GET /v1/nodes` and `GET /v1/nodes/{id}`: every node with what Arbiter knows of it (ListNodes).

use super::{Answer, ErrorSchema, nonempty, path, rest_error, time};
use crate::http::error::ApiError;
use crate::http::{Api, Call};
use arbiter_proto::arbiter::v1::{NodeCondition, NodeStatus};
use arbiter_proto::ydb::maintenance::ItemState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use serde::Serialize;
use std::net::SocketAddr;
use utoipa::ToSchema;

/// A node's state as YDB's ListClusterNodes reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Up and serving.
    Up,
    /// Locked for maintenance.
    Maintenance,
    /// Down (reported, or timed out).
    Down,
}

/// Arbiter's finer condition of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Up, no lock.
    Up,
    /// A lock is held on it and it is not ready to stop yet (draining, or still running).
    EnteringMaintenance,
    /// A lock is held on it and it is safe to stop (drained, seen down, or no agent).
    InMaintenance,
    /// Its lock ended; restarting, not seen up yet.
    Restarting,
    /// Seen up again; waiting out the settle time before it counts as available.
    Settling,
    /// Down.
    Down,
    /// Not known (no heartbeat yet from a monitored node).
    Unknown,
}

/// The lock held on a whole node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeLock {
    /// The task holding it.
    pub task_uid: String,
    /// When it lapses (RFC 3339).
    pub deadline: Option<String>,
}

/// The maintenance windows of a node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeWindows {
    /// The windows' names.
    pub names: Vec<String>,
    /// Whether one is open now.
    pub open: bool,
    /// When the open one ends (RFC 3339).
    pub open_until: Option<String>,
    /// When the next one opens (RFC 3339).
    pub next_open: Option<String>,
    /// The windows' time zone.
    pub zone: String,
    /// The window in local time, in words.
    pub local: Option<String>,
}

/// One node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Node {
    /// Its id.
    pub node_id: u32,
    /// Its host.
    pub host: String,
    /// Its port.
    pub port: u32,
    /// Its data center, when the inventory names one.
    pub data_center: Option<String>,
    /// Its tenant (a dynamic node); `null` for a storage node.
    pub tenant: Option<String>,
    /// Up, maintenance or down.
    pub state: NodeState,
    /// Arbiter's finer condition.
    pub condition: Condition,
    /// Whether the checks count it as available.
    pub available: bool,
    /// Why it is unavailable without a lock.
    pub detail: Option<String>,
    /// The lock on the whole node, if any.
    pub lock: Option<NodeLock>,
    /// Whether an agent sends heartbeats for it.
    pub monitored: bool,
    /// The last heartbeat (RFC 3339).
    pub last_heartbeat: Option<String>,
    /// Its version, when known.
    pub version: Option<String>,
    /// When it started (RFC 3339), when known.
    pub start_time: Option<String>,
    /// Its maintenance windows, if it has any.
    pub windows: Option<NodeWindows>,
}

/// Every node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeList {
    /// Ascending by id.
    pub nodes: Vec<Node>,
}

/// A node on the REST wire.
pub fn node(n: &NodeStatus) -> Node {
    let state = match ItemState::try_from(n.state) {
        Ok(ItemState::Maintenance) => NodeState::Maintenance,
        Ok(ItemState::Down) => NodeState::Down,
        _ => NodeState::Up,
    };
    let condition = match NodeCondition::try_from(n.condition) {
        Ok(NodeCondition::Up) => Condition::Up,
        Ok(NodeCondition::EnteringMaintenance) => Condition::EnteringMaintenance,
        Ok(NodeCondition::InMaintenance) => Condition::InMaintenance,
        Ok(NodeCondition::Restarting) => Condition::Restarting,
        Ok(NodeCondition::Settling) => Condition::Settling,
        Ok(NodeCondition::Down) => Condition::Down,
        _ => Condition::Unknown,
    };
    Node {
        node_id: n.node_id,
        host: n.host.clone(),
        port: n.port,
        data_center: nonempty(&n.data_center),
        tenant: nonempty(&n.tenant),
        state,
        condition,
        available: n.available,
        detail: nonempty(&n.detail),
        lock: (!n.lock_task.is_empty()).then(|| NodeLock {
            task_uid: n.lock_task.clone(),
            deadline: time(n.lock_deadline.as_ref()),
        }),
        monitored: n.monitored,
        last_heartbeat: time(n.last_heartbeat.as_ref()),
        version: nonempty(&n.version),
        start_time: time(n.start_time.as_ref()),
        windows: (!n.windows.is_empty()).then(|| NodeWindows {
            names: n.windows.clone(),
            open: n.window_open,
            open_until: time(n.window_open_until.as_ref()),
            next_open: time(n.window_next_open.as_ref()),
            zone: n.window_zone.clone(),
            local: nonempty(&n.window_local),
        }),
    }
}

/// Every node.
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes",
    responses(
        (status = 200, description = "Every node, ascending by id", body = NodeList),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn list(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer<NodeList> {
    let call = Call::of("http ListNodes", peer, &headers);
    let nodes = api
        .arbiter
        .nodes(&call.audit, &call.meta)
        .await
        .map_err(rest_error)?;
    Ok(Json(NodeList {
        nodes: nodes.iter().map(node).collect(),
    }))
}

/// One node.
#[utoipa::path(get, path = "/v1/nodes/{id}", tag = "nodes",
    params(("id" = u32, Path, description = "The node's id")),
    responses(
        (status = 200, description = "The node", body = Node),
        (status = 400, description = "The id is not a number", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 404, description = "No such node", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn get_one(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<u32>, PathRejection>,
) -> Answer<Node> {
    let call = Call::of("http ListNodes", peer, &headers);
    let id = path(id)?;
    let nodes = api
        .arbiter
        .nodes(&call.audit, &call.meta)
        .await
        .map_err(rest_error)?;
    nodes
        .iter()
        .find(|n| n.node_id == id)
        .map(|n| Json(node(n)))
        .ok_or_else(|| ApiError::not_found(format!("Unknown node {id}")))
}
