//! `arbiter.v1.ArbiterService`: what YDB's API has no place for. Errors are plain gRPC statuses.
//!
//! SetNodeState lets an operator (or a node agent) say a node is down or back up, so that a node
//! that is still booting after a restart counts as unavailable. Heartbeats and the task watch
//! stream belong to a later issue and answer UNIMPLEMENTED.

use super::Context;
use super::error::ServiceError;
use arbiter_proto::arbiter::v1::arbiter_service_server::ArbiterService;
use arbiter_proto::arbiter::v1::{
    HeartbeatRequest, HeartbeatResponse, NodeState, SetNodeStateRequest, SetNodeStateResponse,
    WatchMaintenanceTaskRequest, WatchMaintenanceTaskResponse,
};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Arbiter's own service.
#[derive(Debug, Clone)]
pub struct ArbiterApi {
    ctx: Context,
}

impl ArbiterApi {
    /// Over the shared context.
    pub fn new(ctx: Context) -> ArbiterApi {
        ArbiterApi { ctx }
    }
}

/// The watch stream's type.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<WatchMaintenanceTaskResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ArbiterService for ArbiterApi {
    async fn heartbeat(
        &self,
        _request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Err(Status::unimplemented("heartbeats are not implemented yet"))
    }

    async fn set_node_state(
        &self,
        request: Request<SetNodeStateRequest>,
    ) -> Result<Response<SetNodeStateResponse>, Status> {
        let (meta, _, req) = request.into_parts();
        let caller = self
            .ctx
            .identity
            .resolve(&meta)
            .map_err(|e| ServiceError::from(e).to_grpc())?;
        caller
            .require_operator("set node states")
            .map_err(|e| ServiceError::from(e).to_grpc())?;
        let up = match NodeState::try_from(req.state) {
            Ok(NodeState::Up) => true,
            Ok(NodeState::Down) => false,
            _ => {
                return Err(Status::invalid_argument(
                    "state must be NODE_STATE_UP or NODE_STATE_DOWN",
                ));
            }
        };
        let node = req.node_id;
        let (changed, _) = self
            .ctx
            .command(move |s, now| Ok(s.set_node_state(node, up, now)?))
            .await
            .map_err(|e| e.to_grpc())?;
        if changed {
            tracing::info!(node, state = if up { "up" } else { "down" }, by = %caller.user,
                reason = %req.reason, "node state set");
        }
        Ok(Response::new(SetNodeStateResponse {}))
    }

    type WatchMaintenanceTaskStream = WatchStream;

    async fn watch_maintenance_task(
        &self,
        _request: Request<WatchMaintenanceTaskRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        Err(Status::unimplemented(
            "the task watch is not implemented yet",
        ))
    }
}
