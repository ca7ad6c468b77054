//! `arbiter agent`: the node agent, one long-running process per node. It sends heartbeats for
//! its node (the loop of `arbiter_client::heartbeat`: it outlasts server restarts and outages),
//! and with `--health CMD` only while the node is healthy: the command must succeed before the
//! first heartbeat, and is run again every interval; while it fails the heartbeats pause, so
//! "seen up again" after a restart means "healthy again", and a node that turns unhealthy goes
//! silent (UNKNOWN) after the server's heartbeat timeout. Each change of health is reported
//! once, with the command's exit status and the last line of its stderr.

use crate::cli::{AgentArgs, Format};
use crate::error::Failure;
use crate::nodes;
use crate::output::{self, emit};
use arbiter_client::Client;
use arbiter_client::heartbeat::{self, HeartbeatConfig, HeartbeatError, Login};
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

/// Why the heartbeat loop stopped.
enum Stop {
    /// A signal (its name).
    Signal(&'static str),
    /// The health command failed (why).
    Unhealthy(String),
}

/// Runs the agent until a signal (exit 0) or a refusal no retry cures (exit 1).
pub(crate) async fn run(
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

/// Runs the health command once (`sh -c CMD` in its own process group, with
/// `ARBITER_NODE_ID`), killing the whole group after `timeout` or when the run is abandoned (a
/// signal): `Err` says how it failed, with the last line of its stderr.
async fn probe(cmd: &str, timeout: Duration, id: u32) -> Result<(), String> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("ARBITER_NODE_ID", id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("the health command could not be started: {e}"))?;
    // Whatever the shell started goes with it, however this run ends.
    let _group = Group(child.id());
    let stderr = child.stderr.take();
    let read = tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(mut e) = stderr {
            use tokio::io::AsyncReadExt as _;
            // At most what a last line needs; the rest is drained and dropped.
            let _ = (&mut e).take(64 * 1024).read_to_end(&mut text).await;
            let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
        }
        text
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("the health command failed to run: {e}")),
        Err(_) => {
            read.abort();
            return Err(format!(
                "the health command did not finish within {} (killed)",
                humantime::format_duration(timeout)
            ));
        }
    };
    if status.success() {
        read.abort();
        return Ok(());
    }
    // A background process may keep stderr open: wait for its text only a moment.
    let text = tokio::time::timeout(Duration::from_millis(500), read)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&text);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    let status = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(match last {
        Some(line) => format!("the health command {status}: {}", line.trim()),
        None => format!("the health command {status}"),
    })
}

/// The process group of a health run: killed (SIGKILL) when dropped, so that nothing the
/// command started outlives its run.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

fn say(format: Format, id: u32, state: &str, why: &str) {
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
