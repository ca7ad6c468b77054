//! `arbiter.v1` AgentOrders and ReportWork: the node agent's side of drain and cordon. The
//! rules are the engine's (`engine::drain`); the open streams are the writer's
//! ([`crate::agents`]).

use super::Context;
use super::audit::Audit;
use super::error::ServiceError;
use crate::engine::NodeId;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::drain::{
    HookOutcome, Order, Orders, WorkKind as EngineWorkKind, WorkReport, WorkState, clip,
};
use crate::engine::state::MAX_ID_LEN;
use crate::identity::Caller;
use arbiter_proto::arbiter::v1::report_work_request::Outcome;
use arbiter_proto::arbiter::v1::{
    AgentOrder, AgentOrdersResponse, ReportWorkRequest, ReportWorkResponse, WorkKind,
    agent_order::Op,
};
use std::pin::Pin;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// The order stream's type.
pub type OrdersStream =
    Pin<Box<dyn Stream<Item = Result<AgentOrdersResponse, Status>> + Send + 'static>>;

/// The longest stderr line or exit text a report may carry (longer is cut by the engine).
const MAX_REPORT_TEXT: usize = 4096;

fn order(o: &Order) -> AgentOrder {
    let (op, task, action) = match o {
        Order::Idle => (Op::Idle, "", ""),
        Order::Hold => (Op::Hold, "", ""),
        Order::Do { task, action } => (Op::Do, task.as_str(), action.as_str()),
        Order::Undo { task, action } => (Op::Undo, task.as_str(), action.as_str()),
    };
    AgentOrder {
        op: op as i32,
        task_uid: task.to_owned(),
        action_id: action.to_owned(),
    }
}

fn message(o: &Orders, host: &str) -> AgentOrdersResponse {
    AgentOrdersResponse {
        drain: Some(order(&o.drain)),
        cordon: Some(order(&o.cordon)),
        host: host.to_owned(),
    }
}

/// Opens the order stream of `node`: its orders now, then each change, until the agent goes,
/// the server shuts down or the writer stops (a lost leadership: the agent reconnects).
pub async fn orders(ctx: &Context, node: NodeId) -> Result<OrdersStream, Status> {
    let writer = ctx.writer().map_err(|e| e.to_grpc())?;
    let mut sub = writer
        .attach_agent(node)
        .await
        .map_err(|e| ServiceError::from(e).to_grpc())?
        .map_err(|e| ServiceError::from(e).to_grpc())?;
    let host = sub.host.clone();
    tracing::info!(node, outcome = "connected", "agent order stream opened");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let now = sub.orders.borrow_and_update().clone();
            if tx.send(Ok(message(&now, &host))).await.is_err() {
                break;
            }
            let writer_gone = tokio::select! {
                changed = sub.orders.changed() => changed.is_err(),
                _ = shutdown.wait_for(|stopping| *stopping) => break,
                () = tx.closed() => break,
            };
            if writer_gone {
                let gone = Status::unavailable(
                    "the arbiter stopped deciding (no longer the leader, or shutting down); reconnect",
                );
                let _ = tx.send(Err(gone)).await;
                break;
            }
        }
        tracing::info!(node, outcome = "disconnected", "agent order stream closed");
        drop(sub);
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// Decodes a report; every malformed field is named.
pub fn report(req: ReportWorkRequest) -> Result<(NodeId, WorkReport), ServiceError> {
    let bad = |m: String| Err(ServiceError::BadRequest(m));
    let kind = match WorkKind::try_from(req.kind) {
        Ok(WorkKind::Drain) => EngineWorkKind::Drain,
        Ok(WorkKind::Cordon) => EngineWorkKind::Cordon,
        _ => return bad("kind must be WORK_KIND_DRAIN or WORK_KIND_CORDON".into()),
    };
    if req.task_uid.is_empty() || req.action_id.is_empty() {
        return bad("a report names its task_uid and action_id".into());
    }
    if req.task_uid.len() > MAX_ID_LEN || req.action_id.len() > MAX_ID_LEN {
        return bad(format!(
            "task_uid and action_id are at most {MAX_ID_LEN} bytes"
        ));
    }
    if req.exit.len() > MAX_REPORT_TEXT || req.stderr.len() > MAX_REPORT_TEXT {
        return bad(format!(
            "exit and stderr are at most {MAX_REPORT_TEXT} bytes"
        ));
    }
    let outcome = match Outcome::try_from(req.outcome) {
        Ok(Outcome::Running) => {
            if !req.progress.is_finite() || !(0.0..=100.0).contains(&req.progress) {
                return bad(format!(
                    "progress must be a percentage from 0 to 100, not {}",
                    req.progress
                ));
            }
            // Hundredths of a percent; the range check above bounds the cast.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let hundredths = (req.progress * 100.0).round() as u32;
            HookOutcome::Running(hundredths)
        }
        Ok(Outcome::Done) => HookOutcome::Done,
        Ok(Outcome::Failed) => {
            let retry = req.retry_in.unwrap_or_default();
            if retry.seconds < 0 || retry.nanos < 0 {
                return bad("retry_in must not be negative".into());
            }
            HookOutcome::Failed {
                attempt: req.attempt.max(1),
                exit: req.exit,
                stderr: req.stderr,
                retry_in_ms: retry
                    .seconds
                    .unsigned_abs()
                    .saturating_mul(1000)
                    .saturating_add(u64::from(retry.nanos.unsigned_abs() / 1_000_000)),
            }
        }
        _ => return bad("outcome must be RUNNING, DONE or FAILED".into()),
    };
    Ok((
        req.node_id,
        WorkReport {
            kind,
            task: req.task_uid,
            action: req.action_id,
            undo: req.undo,
            outcome,
        },
    ))
}

/// Records a report. How a hook ended (done or failed, not its progress) goes to the audit
/// trail in the same commit, as `work_reported` by the reporting caller.
pub async fn report_work(
    ctx: &Context,
    audit: &Audit,
    caller: &Caller,
    req: ReportWorkRequest,
) -> Result<ReportWorkResponse, ServiceError> {
    let (node, report) = report(req)?;
    let log = report.clone();
    let what = match (log.kind, log.undo) {
        (EngineWorkKind::Drain, false) => "drain",
        (EngineWorkKind::Drain, true) => "undrain",
        (EngineWorkKind::Cordon, false) => "cordon",
        (EngineWorkKind::Cordon, true) => "uncordon",
    };
    let entry = match &log.outcome {
        HookOutcome::Running(_) => None,
        // Bounded as the engine keeps it: the last stderr line, cut short.
        ended => Some(AuditEntry {
            task: log.task.clone(),
            nodes: vec![node],
            detail: format!(
                "{what} hook on node {node} for action {}: {}",
                log.action,
                WorkState::from(clip(ended.clone()))
            ),
            ..audit.entry(AuditKind::WorkReported, Some(caller))
        }),
    };
    let (recorded, _) = ctx
        .audited(move |s, _now| {
            let o = s.report_work(node, report)?;
            let entries = entry.filter(|_| o.value).into_iter().collect();
            Ok((o, entries))
        })
        .await?;
    if recorded {
        match &log.outcome {
            HookOutcome::Failed { exit, stderr, .. } => tracing::warn!(node, task = %log.task,
                action = %log.action, hook = what, exit = %exit, stderr = %stderr, "agent hook failed"),
            HookOutcome::Done => tracing::info!(node, task = %log.task, action = %log.action,
                hook = what, outcome = "done", "agent hook done"),
            HookOutcome::Running(_) => {}
        }
    }
    Ok(ReportWorkResponse { recorded })
}
