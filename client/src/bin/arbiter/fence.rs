//! `arbiter fence check`: whether a fencing token is the live lock on a node or disk now.
//!
//! Made for scripts that guard a destructive step: it prints the answer and exits 0 only when
//! the token is LIVE; SUPERSEDED, RELEASED, EXPIRED and UNKNOWN exit 1 (as does a failed call),
//! a usage error 2.

use crate::Ctx;
use crate::cli::{FenceCommand, Format};
use crate::error::Failure;
use crate::output::{emit, emit_json, fields, rfc3339, rfc3339_json};
use arbiter_client::proto::arbiter::v1::{FenceState, ValidateFenceResponse};
use serde_json::{Value, json};

/// Runs one `fence` subcommand.
pub(crate) async fn run(ctx: &Ctx, command: &FenceCommand) -> Result<(), Failure> {
    match command {
        FenceCommand::Check {
            node,
            pdisk,
            fencing_token,
        } => check(ctx, *node, *pdisk, *fencing_token).await,
    }
}

async fn check(ctx: &Ctx, node: u32, pdisk: Option<u32>, token: u64) -> Result<(), Failure> {
    let r = ctx
        .client
        .validate_fence(node, pdisk.unwrap_or(0), token)
        .await?;
    let state = state_name(r.state);
    let place = match pdisk {
        Some(p) => format!("pdisk {node}:{p}"),
        None => format!("node {node}"),
    };
    match ctx.format {
        Format::Table => emit(&table(&r, state, token, &place)),
        Format::Json => emit_json(&json!({
            "node_id": node,
            "pdisk_id": pdisk,
            "token": token,
            "state": state,
            "task_uid": or_null(&r.task_uid),
            "action_id": or_null(&r.action_id),
            "deadline": rfc3339_json(r.deadline.as_ref()),
            "ended": rfc3339_json(r.ended.as_ref()),
            "live_token": (r.live_token != 0).then_some(r.live_token),
            "detail": r.detail,
        })),
    }
    if r.state == FenceState::Live as i32 {
        Ok(())
    } else {
        Err(Failure(format!(
            "token {token} is not live on {place}: {state}"
        )))
    }
}

fn table(r: &ValidateFenceResponse, state: &str, token: u64, place: &str) -> String {
    let mut pairs = vec![("state", state.to_owned())];
    if !r.task_uid.is_empty() {
        pairs.push(("task", r.task_uid.clone()));
        pairs.push(("action", r.action_id.clone()));
    }
    if r.deadline.is_some() {
        pairs.push(("deadline", rfc3339(r.deadline.as_ref())));
    }
    if r.ended.is_some() {
        let label = if r.state == FenceState::Superseded as i32 {
            "superseded at"
        } else {
            "ended"
        };
        pairs.push((label, rfc3339(r.ended.as_ref())));
    }
    if r.live_token != 0 {
        pairs.push(("live token", r.live_token.to_string()));
    }
    pairs.push(("detail", r.detail.clone()));
    format!("token {token} on {place}\n{}", fields(&pairs))
}

/// LIVE, SUPERSEDED, RELEASED, EXPIRED, UNKNOWN (UNSPECIFIED for anything else).
fn state_name(raw: i32) -> &'static str {
    match FenceState::try_from(raw) {
        Ok(FenceState::Live) => "LIVE",
        Ok(FenceState::Superseded) => "SUPERSEDED",
        Ok(FenceState::Released) => "RELEASED",
        Ok(FenceState::Expired) => "EXPIRED",
        Ok(FenceState::Unknown) => "UNKNOWN",
        _ => "UNSPECIFIED",
    }
}

fn or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}
