//! `arbiter nodes` and `arbiter node up|down|heartbeat`: what Arbiter knows of each node, and
//! the two ways to tell it more (an operator's word, a node agent's heartbeat).

use crate::Ctx;
use crate::cli::{Format, NodeCommand};
use crate::error::{Failure, describe};
use crate::output::{self, Table, emit, emit_json, or_dash, rfc3339, rfc3339_json, yes_no};
use arbiter_client::proto::arbiter::v1::NodeStatus;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// Prints every node, ascending by id.
pub(crate) async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let nodes = ctx.client.list_nodes().await?;
    let now = SystemTime::now();
    match ctx.format {
        Format::Table => {
            let mut table = Table::new(&[
                "ID",
                "HOST",
                "DC",
                "TENANT",
                "STATE",
                "AVAILABLE",
                "LOCK",
                "HEARTBEAT",
                "DETAIL",
            ]);
            for n in &nodes {
                table.row(vec![
                    n.node_id.to_string(),
                    n.host.clone(),
                    or_dash(&n.data_center),
                    tenant(n).to_owned(),
                    output::item_state(n.state),
                    yes_no(n.available),
                    lock_text(n),
                    if n.monitored {
                        output::age(n.last_heartbeat.as_ref(), now)
                    } else {
                        "-".to_owned()
                    },
                    or_dash(&n.detail),
                ]);
            }
            emit(&table.render());
        }
        Format::Json => emit_json(&Value::Array(nodes.iter().map(node_json).collect())),
    }
    Ok(())
}

/// Runs one `node` subcommand.
pub(crate) async fn run(ctx: &Ctx, command: &NodeCommand) -> Result<(), Failure> {
    match command {
        NodeCommand::Up { id, reason } => set_state(ctx, *id, true, reason).await,
        NodeCommand::Down { id, reason } => set_state(ctx, *id, false, reason).await,
        NodeCommand::Heartbeat { id, version, every } => match every {
            None => {
                ctx.client.heartbeat(*id, version.clone(), None).await?;
                match ctx.format {
                    Format::Table => emit(&format!("heartbeat sent for node {id}\n")),
                    Format::Json => emit_json(&json!({ "node_id": id, "heartbeat": "sent" })),
                }
                Ok(())
            }
            Some(every) => agent(ctx, *id, version.clone(), *every).await,
        },
    }
}

async fn set_state(ctx: &Ctx, id: u32, up: bool, reason: &str) -> Result<(), Failure> {
    ctx.client.set_node_state(id, up, reason).await?;
    let state = if up { "UP" } else { "DOWN" };
    match ctx.format {
        Format::Table if reason.is_empty() => emit(&format!("node {id} marked {state}\n")),
        Format::Table => emit(&format!("node {id} marked {state}: {reason}\n")),
        Format::Json => emit_json(&json!({ "node_id": id, "state": state, "reason": reason })),
    }
    Ok(())
}

/// The simplest node agent: a heartbeat every `every`, forever. A failure the server may get
/// over (it restarts, it is busy) is reported once and retried on the next beat; a refusal that
/// will not change by itself (unknown node, no permission) ends the agent with an error. It
/// prints when it starts beating and whenever it loses or regains the server, not every beat.
/// It sends no start time: it does not know when the node's process started.
async fn agent(
    ctx: &Ctx,
    id: u32,
    version: Option<String>,
    every: Duration,
) -> Result<(), Failure> {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy: Option<bool> = None;
    loop {
        ticks.tick().await;
        match ctx.client.heartbeat(id, version.clone(), None).await {
            Ok(()) => {
                if healthy != Some(true) {
                    report(ctx.format, id, "beating", None);
                }
                healthy = Some(true);
            }
            Err(e) if e.is_retryable() => {
                if healthy != Some(false) {
                    report(ctx.format, id, "retrying", Some(&describe(&e)));
                }
                healthy = Some(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn report(format: Format, id: u32, state: &str, error: Option<&str>) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    match (format, error) {
        (Format::Table, None) => emit(&format!(
            "{now} node {id}: heartbeats accepted, sending until stopped\n"
        )),
        (Format::Table, Some(e)) => emit(&format!(
            "{now} node {id}: heartbeat failed, retrying: {e}\n"
        )),
        (Format::Json, _) => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": state,
            "error": error,
        })),
    }
}

fn tenant(n: &NodeStatus) -> &str {
    if n.tenant.is_empty() {
        "storage"
    } else {
        &n.tenant
    }
}

fn lock_text(n: &NodeStatus) -> String {
    if n.lock_task.is_empty() {
        "-".to_owned()
    } else {
        format!(
            "{} until {}",
            n.lock_task,
            rfc3339(n.lock_deadline.as_ref())
        )
    }
}

fn node_json(n: &NodeStatus) -> Value {
    json!({
        "node_id": n.node_id,
        "host": n.host,
        "port": n.port,
        "data_center": n.data_center,
        "tenant": if n.tenant.is_empty() { Value::Null } else { Value::String(n.tenant.clone()) },
        "kind": if n.tenant.is_empty() { "storage" } else { "dynamic" },
        "state": output::item_state(n.state),
        "available": n.available,
        "detail": n.detail,
        "lock_task": if n.lock_task.is_empty() { Value::Null } else { Value::String(n.lock_task.clone()) },
        "lock_deadline": rfc3339_json(n.lock_deadline.as_ref()),
        "monitored": n.monitored,
        "last_heartbeat": rfc3339_json(n.last_heartbeat.as_ref()),
        "version": n.version,
        "start_time": rfc3339_json(n.start_time.as_ref()),
    })
}
