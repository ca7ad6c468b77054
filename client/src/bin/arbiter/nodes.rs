//! `arbiter nodes` and `arbiter node up|down|heartbeat`: what Arbiter knows of each node, and
//! the two ways to tell it more (an operator's word, a node agent's heartbeat). The agent
//! (`node heartbeat --every`) only wires the library's heartbeat loop to signals and output.

use crate::Ctx;
use crate::cli::{Format, NodeCommand};
use crate::error::{Failure, describe};
use crate::output::{self, Table, emit, emit_json, or_dash, rfc3339, rfc3339_json, yes_no};
use arbiter_client::heartbeat::{self, Event, HeartbeatConfig, HeartbeatError, Login};
use arbiter_client::proto::arbiter::v1::NodeStatus;
use arbiter_client::proto::ydb::status_ids::StatusCode;
use arbiter_client::{Client, ClientError};
use serde_json::{Value, json};
use std::future::Future;
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
                "CONDITION",
                "AVAILABLE",
                "LOCK",
                "HEARTBEAT",
                "WINDOW",
                "DETAIL",
            ]);
            for n in &nodes {
                table.row(vec![
                    n.node_id.to_string(),
                    n.host.clone(),
                    or_dash(&n.data_center),
                    tenant(n).to_owned(),
                    output::item_state(n.state),
                    output::node_condition(n.condition),
                    yes_no(n.available),
                    lock_text(n),
                    if n.monitored {
                        output::age(n.last_heartbeat.as_ref(), now)
                    } else {
                        "-".to_owned()
                    },
                    window_text(n),
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
            Some(every) => {
                agent(
                    ctx.client.clone(),
                    ctx.format,
                    *id,
                    version.clone(),
                    *every,
                    None,
                )
                .await
            }
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

/// The simplest node agent: a heartbeat every `every` until SIGINT or SIGTERM (exit 0), through
/// server restarts and outages (the loop and its backoff are the library's
/// [`arbiter_client::heartbeat`]). It prints when heartbeats are first accepted, when they
/// start failing (once per outage), when they are accepted again, and when it stops; a refusal
/// no retry cures (an unknown node, a refused token or login) ends it with an error (exit 1).
/// It sends no start time: it does not know when the node's process started.
pub(crate) async fn agent(
    client: Client,
    format: Format,
    id: u32,
    version: Option<String>,
    every: Duration,
    login: Option<(String, String)>,
) -> Result<(), Failure> {
    let stop = stop_signal()?;
    let mut config = HeartbeatConfig::new(id, every);
    config.version = version;
    config.login = login.map(|(user, password)| Login { user, password });
    let ended = heartbeat::run(&client, &config, stop, |event| {
        report(format, id, every, &event);
    })
    .await;
    match ended {
        Ok(signal) => {
            stopped(format, id, signal);
            Ok(())
        }
        Err(HeartbeatError::Refused { source, .. }) => Err(Failure(format!(
            "node {id}: the server refused the heartbeat, not retrying: {}{}",
            describe(&source),
            refusal_hint(id, &source)
        ))),
        Err(HeartbeatError::Login { user, source }) => Err(Failure(format!(
            "login as {user} failed, not retrying: {}",
            describe(&source)
        ))),
    }
}

/// Says that the agent of node `id` stopped on `signal`.
pub(crate) fn stopped(format: Format, id: u32, signal: &str) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    match format {
        Format::Table => emit(&format!("{now} node {id}: stopped by {signal}\n")),
        Format::Json => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": "stopped",
            "signal": signal,
            "error": null,
        })),
    }
}

/// Resolves with the signal's name on the first SIGINT or SIGTERM. The handlers are installed
/// now, before the first heartbeat, so that a supervisor's SIGTERM always ends the agent
/// cleanly.
pub(crate) fn stop_signal() -> Result<impl Future<Output = &'static str>, Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let setup = |e: std::io::Error| Failure(format!("cannot listen for signals: {e}"));
        let mut interrupt = signal(SignalKind::interrupt()).map_err(setup)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(setup)?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}

/// What a refusal most likely means for an agent.
pub(crate) fn refusal_hint(id: u32, e: &ClientError) -> String {
    match e {
        ClientError::Rpc(s) if s.code() == tonic::Code::InvalidArgument => {
            format!(" (is node {id} in the server's inventory?)")
        }
        ClientError::Rpc(s)
            if matches!(
                s.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            " (a node agent needs an operator's token)".to_owned()
        }
        _ => String::new(),
    }
}

/// What kind of trouble a retryable error is, for people.
fn trouble(e: &ClientError) -> &'static str {
    match e {
        ClientError::Rpc(s) if s.code() == tonic::Code::ResourceExhausted => {
            "the server is overloaded"
        }
        ClientError::Refused {
            status: StatusCode::Overloaded,
            ..
        } => "the server is overloaded",
        ClientError::Refused { .. } => "the server is unavailable",
        ClientError::Timeout { .. } => "the server does not answer",
        _ => "cannot reach the server",
    }
}

pub(crate) fn report(format: Format, id: u32, every: Duration, event: &Event<'_>) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    match (format, event) {
        (Format::Table, Event::Accepted) => emit(&format!(
            "{now} node {id}: heartbeats accepted, sending every {} until stopped\n",
            humantime::format_duration(every)
        )),
        (
            Format::Table,
            Event::Retrying {
                error,
                at_most_every,
            },
        ) => emit(&format!(
            "{now} node {id}: {}, retrying (at least every {}) until it answers: {}\n",
            trouble(error),
            humantime::format_duration(*at_most_every),
            describe(error)
        )),
        (
            Format::Table,
            Event::Recovered {
                outage,
                failed_attempts,
            },
        ) => emit(&format!(
            "{now} node {id}: connected again, heartbeats accepted after {} ({failed_attempts} failed attempts)\n",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(outage.as_millis()).unwrap_or(u64::MAX)
            ))
        )),
        (Format::Json, Event::Accepted) => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": "beating",
            "error": null,
        })),
        (Format::Json, Event::Retrying { error, .. }) => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": "retrying",
            "error": describe(error),
        })),
        (
            Format::Json,
            Event::Recovered {
                outage,
                failed_attempts,
            },
        ) => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": "recovered",
            "outage_seconds": outage.as_secs_f64(),
            "failed_attempts": failed_attempts,
            "error": null,
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

/// `open until 2026-12-02 06:00 Europe/Berlin`, `opens 2026-12-01 22:00 Europe/Berlin`, or
/// empty when no window covers the node.
fn window_text(n: &NodeStatus) -> String {
    if n.windows.is_empty() {
        return String::new();
    }
    let when = local_minutes(&n.window_local).map(|t| format!("{t} {}", n.window_zone));
    match (n.window_open, when) {
        (true, Some(t)) => format!("open until {t}"),
        (true, None) => "open".to_owned(),
        (false, Some(t)) => format!("opens {t}"),
        (false, None) => "closed, no opening within two years".to_owned(),
    }
}

/// `2026-12-01T22:00:00+01:00` -> `2026-12-01 22:00` (the local date and time the server wrote).
fn local_minutes(rfc3339: &str) -> Option<String> {
    let date = rfc3339.get(..10)?;
    let time = rfc3339.get(11..16)?;
    (rfc3339.as_bytes().get(10) == Some(&b'T')).then(|| format!("{date} {time}"))
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
        "condition": output::node_condition(n.condition),
        "available": n.available,
        "detail": n.detail,
        "lock_task": if n.lock_task.is_empty() { Value::Null } else { Value::String(n.lock_task.clone()) },
        "lock_deadline": rfc3339_json(n.lock_deadline.as_ref()),
        "monitored": n.monitored,
        "last_heartbeat": rfc3339_json(n.last_heartbeat.as_ref()),
        "version": n.version,
        "start_time": rfc3339_json(n.start_time.as_ref()),
        "windows": n.windows,
        "window_open": if n.windows.is_empty() { Value::Null } else { Value::Bool(n.window_open) },
        "window_open_until": rfc3339_json(n.window_open_until.as_ref()),
        "window_next_open": rfc3339_json(n.window_next_open.as_ref()),
        "window_zone": if n.window_zone.is_empty() { Value::Null } else { Value::String(n.window_zone.clone()) },
        "window_local": if n.window_local.is_empty() { Value::Null } else { Value::String(n.window_local.clone()) },
    })
}
