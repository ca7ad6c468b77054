//! `arbiter agent`: the node agent, one long-running process per node. It sends heartbeats for
//! its node (the loop of `arbiter_client::heartbeat`: it outlasts server restarts and outages),
//! and with `--health CMD` only while the node is healthy: the command must succeed before the
//! first heartbeat, and is run again every interval; while it fails the heartbeats pause, so
//! "seen up again" after a restart means "healthy again", and a node that turns unhealthy goes
//! silent (UNKNOWN) after the server's heartbeat timeout. Each change of health is reported
//! once, with the command's exit status and the last line of its stderr. With drain or cordon
//! hooks it also follows the node's orders (`agent_work`).

use crate::cli::{AgentArgs, Format};
use crate::error::Failure;
use crate::hook::{self, Hook};
use crate::nodes;
use crate::output::{self, emit};
use arbiter_client::Client;
use arbiter_client::heartbeat::{self, HeartbeatConfig, HeartbeatError, Login};
use serde_json::json;
use std::time::{Duration, SystemTime};

/// Why the heartbeat loop stopped.
enum Stop {
    /// A signal (its name).
    Signal(&'static str),
    /// The health command failed (why).
    Unhealthy(String),
}

/// Runs the agent until a signal (exit 0) or a refusal no retry cures (exit 1): the heartbeat
/// loop and, with any hook, the order stream (`agent_work`).
pub(crate) async fn run(
    client: Client,
    format: Format,
    args: &AgentArgs,
    login: Option<(String, String)>,
) -> Result<(), Failure> {
    if !crate::agent_work::wanted(args) {
        return beats(client, format, args, login).await;
    }
    let work = crate::agent_work::run(client.clone(), login.clone(), format, args);
    tokio::select! {
        // A signal ends the heartbeat loop; dropping the order loop stops its hooks.
        ended = beats(client, format, args, login) => ended,
        refused = work => Err(refused),
    }
}

async fn beats(
    client: Client,
    format: Format,
    args: &AgentArgs,
    login: Option<(String, String)>,
) -> Result<(), Failure> {
    let id = args.node;
    let every = args.every;
    let mut config = HeartbeatConfig::new(id, every);
    config.version = args.version.clone();
    config.login = login.map(|(user, password)| Login { user, password });
    let signal = nodes::stop_signal()?;
    let mut signal = std::pin::pin!(signal);
    let health = args.health.as_deref();
    let mut unhealthy_said = false;
    loop {
        // Healthy first (at once when there is no health command).
        if let Some(cmd) = health {
            loop {
                let checked = tokio::select! {
                    s = &mut signal => return stopped(format, id, s),
                    r = probe(cmd, args.health_timeout, id) => r,
                };
                match checked {
                    Ok(()) => break,
                    Err(why) => {
                        if !unhealthy_said {
                            say(format, id, "unhealthy", &why);
                            unhealthy_said = true;
                        }
                    }
                }
                tokio::select! {
                    s = &mut signal => return stopped(format, id, s),
                    () = tokio::time::sleep(every) => {}
                }
            }
            if unhealthy_said {
                say(format, id, "healthy", "the health command succeeds again");
            }
        }
        let turned_unhealthy = async {
            match health {
                Some(cmd) => loop {
                    tokio::time::sleep(every).await;
                    if let Err(why) = probe(cmd, args.health_timeout, id).await {
                        break why;
                    }
                },
                None => std::future::pending().await,
            }
        };
        let stop = async {
            tokio::select! {
                s = &mut signal => Stop::Signal(s),
                why = turned_unhealthy => Stop::Unhealthy(why),
            }
        };
        let ended = heartbeat::run(&client, &config, stop, |event| {
            nodes::report(format, id, every, &event);
        })
        .await;
        match ended {
            Ok(Stop::Signal(s)) => return stopped(format, id, s),
            Ok(Stop::Unhealthy(why)) => {
                say(
                    format,
                    id,
                    "unhealthy",
                    &format!("{why}; heartbeats paused"),
                );
                // Said: the wait for health below stays quiet until it is healthy again.
                unhealthy_said = true;
            }
            Err(HeartbeatError::Refused { source, .. }) => {
                return Err(Failure(format!(
                    "node {id}: the server refused the heartbeat, not retrying: {}{}",
                    crate::error::describe(&source),
                    nodes::refusal_hint(id, &source)
                )));
            }
            Err(HeartbeatError::Login { user, source }) => {
                return Err(Failure(format!(
                    "login as {user} failed, not retrying: {}",
                    crate::error::describe(&source)
                )));
            }
        }
    }
}

/// Runs the health command once (with `ARBITER_NODE_ID`; see [`hook::run`]): `Err` says how it
/// failed, with the last line of its stderr.
async fn probe(cmd: &str, timeout: Duration, id: u32) -> Result<(), String> {
    let what = "the health command";
    let env = [("ARBITER_NODE_ID", id.to_string())];
    let run = Hook {
        cmd,
        env: &env,
        timeout,
    };
    hook::run(&run, None).await.map_err(|f| f.text(what))
}

/// One line of what the agent does: "TIME node N: STATE: WHY" (a JSON object with `-o json`).
pub(crate) fn say(format: Format, id: u32, state: &str, why: &str) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    match format {
        Format::Table => emit(&format!("{now} node {id}: {state}: {why}\n")),
        Format::Json => output::emit_json_line(&json!({
            "time": now.to_string(),
            "node_id": id,
            "agent": state,
            "error": if state == "unhealthy" { json!(why) } else { json!(null) },
        })),
    }
}

fn stopped(format: Format, id: u32, signal: &'static str) -> Result<(), Failure> {
    nodes::stopped(format, id, signal);
    Ok(())
}
