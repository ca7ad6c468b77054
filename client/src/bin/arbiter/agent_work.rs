//! The agent's drain and cordon hooks: it keeps the node's order stream open (the arbiter
//! counts the node as having its agent connected while it is), runs `--on-drain`,
//! `--on-undrain`, `--on-cordon` and `--on-uncordon` when its orders say so, and reports how
//! each run stands (progress from `progress NN` lines, success, failure with exit status and
//! the last stderr line). A failed hook is run again after `--hook-retry-delay`, as long as
//! the order stands.
//!
//! Orders are standing state, not events: the stream sends the whole of them on connect and on
//! every change. A changed order stops the hook it replaces (its process group is killed) and
//! starts the new one; the same order again (a reconnect) leaves a running or finished hook
//! alone. The stream outlasts server restarts: it reconnects with capped, jittered backoff, and
//! hooks keep running meanwhile. Only a refusal that no retry cures (an unknown node, a refused
//! credential) ends the agent.

use crate::agent::say;
use crate::cli::{AgentArgs, Format};
use crate::error::Failure;
use crate::hook::{self, Hook, shell_quote};
use arbiter_client::Client;
use arbiter_client::ClientError;
use arbiter_client::retry::Backoff;
use arbiter_proto::arbiter::v1::agent_order::Op;
use arbiter_proto::arbiter::v1::report_work_request::Outcome;
use arbiter_proto::arbiter::v1::{AgentOrder, ReportWorkRequest, WorkKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The hooks of one kind of work.
#[derive(Debug, Clone)]
struct Hooks {
    kind: WorkKind,
    /// "drain" / "cordon", and the undo's name.
    name: &'static str,
    undo_name: &'static str,
    run: Option<String>,
    undo: Option<String>,
    run_timeout: Duration,
    undo_timeout: Duration,
}

/// Everything a hook run needs besides its order.
#[derive(Debug)]
struct Setup {
    node: u32,
    format: Format,
    retry_delay: Duration,
    drain: Hooks,
    cordon: Hooks,
}

/// Whether the agent was given any hook (then it opens the order stream).
pub(crate) fn wanted(args: &AgentArgs) -> bool {
    args.on_drain.is_some()
        || args.on_undrain.is_some()
        || args.on_cordon.is_some()
        || args.on_uncordon.is_some()
}

/// One order being carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    op: Op,
    task: String,
    action: String,
}

/// A spawned hook job, aborted (its process group killed) when dropped.
struct Job {
    order: Current,
    /// Set once its hook succeeded (its report may still be on its way).
    done: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Follows the node's orders until a refusal no retry cures (the error). A signal is the
/// caller's: it drops this future, which stops every running hook.
pub(crate) async fn run(
    client: Client,
    login: Option<(String, String)>,
    format: Format,
    args: &AgentArgs,
) -> Failure {
    let setup = Arc::new(Setup {
        node: args.node,
        format,
        retry_delay: args.hook_retry_delay,
        drain: Hooks {
            kind: WorkKind::Drain,
            name: "drain",
            undo_name: "undrain",
            run: args.on_drain.clone(),
            undo: args.on_undrain.clone(),
            run_timeout: args.drain_timeout,
            undo_timeout: args.undrain_timeout,
        },
        cordon: Hooks {
            kind: WorkKind::Cordon,
            name: "cordon",
            undo_name: "uncordon",
            run: args.on_cordon.clone(),
            undo: args.on_uncordon.clone(),
            run_timeout: args.cordon_timeout,
            undo_timeout: args.uncordon_timeout,
        },
    });
    let node = args.node;
    let (client_tx, client_rx) = watch::channel(client.clone());
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut jobs: [Option<Job>; 2] = [None, None];
    let mut trouble_said = false;
    let mut connected_once = false;
    loop {
        let opened = async {
            let c = match &login {
                Some((user, password)) => {
                    let token = client.login(user, password).await?;
                    client.with_ticket(Some(token))
                }
                None => client.clone(),
            };
            let stream = c.agent_orders(node).await?;
            Ok::<_, ClientError>((c, stream))
        };
        let mut stream = match opened.await {
            Ok((c, stream)) => {
                client_tx.send_replace(c);
                stream
            }
            Err(e) if !e.is_retryable() => {
                return Failure(format!(
                    "node {node}: the server refused the agent's order stream, not retrying: {}",
                    crate::error::describe(&e)
                ));
            }
            Err(e) => {
                if !trouble_said {
                    say(
                        format,
                        node,
                        "orders unreachable",
                        &format!("{}; retrying", crate::error::describe(&e)),
                    );
                    trouble_said = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut first = true;
        let lost = loop {
            match stream.message().await {
                Ok(Some(msg)) => {
                    if first {
                        first = false;
                        backoff.reset();
                        if trouble_said || !connected_once {
                            say(format, node, "orders connected", "waiting for orders");
                        }
                        trouble_said = false;
                        connected_once = true;
                    }
                    let host = msg.host.clone();
                    for (slot, (order, hooks)) in jobs
                        .iter_mut()
                        .zip([(msg.drain, &setup.drain), (msg.cordon, &setup.cordon)])
                    {
                        follow(slot, order, hooks, &setup, &host, &client_rx);
                    }
                }
                Ok(None) => break "the server closed the order stream".to_owned(),
                Err(status) => {
                    let e = ClientError::Rpc(status);
                    if !e.is_retryable() {
                        return Failure(format!(
                            "node {node}: the server refused the agent's order stream, not retrying: {}",
                            crate::error::describe(&e)
                        ));
                    }
                    break crate::error::describe(&e);
                }
            }
        };
        if !trouble_said {
            say(
                format,
                node,
                "orders lost",
                &format!("{lost}; reconnecting (running hooks go on)"),
            );
            trouble_said = true;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Brings one kind of work in line with its order.
fn follow(
    slot: &mut Option<Job>,
    order: Option<AgentOrder>,
    hooks: &Hooks,
    setup: &Arc<Setup>,
    host: &str,
    client: &watch::Receiver<Client>,
) {
    let order = order.unwrap_or_default();
    let op = Op::try_from(order.op).unwrap_or(Op::Unspecified);
    let wanted = match op {
        Op::Do | Op::Undo => Some(Current {
            op,
            task: order.task_uid,
            action: order.action_id,
        }),
        // Idle: nothing applied. Hold: keep what is applied (the node restarts).
        Op::Idle | Op::Hold | Op::Unspecified => None,
    };
    if slot.as_ref().map(|j| &j.order) == wanted.as_ref() {
        return;
    }
    if let Some(old) = slot.take() {
        if !old.done.load(Ordering::SeqCst) {
            let name = if old.order.op == Op::Do {
                hooks.name
            } else {
                hooks.undo_name
            };
            say(
                setup.format,
                setup.node,
                name,
                &format!(
                    "stopped for task {}: the arbiter no longer asks for it",
                    old.order.task
                ),
            );
        }
        drop(old);
    }
    let Some(current) = wanted else { return };
    let done = Arc::new(AtomicBool::new(false));
    let handle = tokio::spawn(carry_out(
        current.clone(),
        hooks.clone(),
        setup.clone(),
        host.to_owned(),
        client.clone(),
        done.clone(),
    ));
    *slot = Some(Job {
        order: current,
        done,
        handle,
    });
}

/// Runs the hook of one order until it succeeds, reporting each step.
async fn carry_out(
    order: Current,
    hooks: Hooks,
    setup: Arc<Setup>,
    host: String,
    client: watch::Receiver<Client>,
    done: Arc<AtomicBool>,
) {
    let undo = order.op == Op::Undo;
    let (name, cmd, timeout) = if undo {
        (hooks.undo_name, hooks.undo.as_deref(), hooks.undo_timeout)
    } else {
        (hooks.name, hooks.run.as_deref(), hooks.run_timeout)
    };
    let report = |outcome: Outcome| ReportWorkRequest {
        node_id: setup.node,
        kind: hooks.kind as i32,
        task_uid: order.task.clone(),
        action_id: order.action.clone(),
        undo,
        outcome: outcome as i32,
        ..Default::default()
    };
    let Some(template) = cmd else {
        if undo {
            // Nothing was done that needs undoing.
            done.store(true, Ordering::SeqCst);
            deliver(&client, &setup, report(Outcome::Done)).await;
            return;
        }
        let flag = format!("--on-{name}");
        let exit = format!("cannot {name}: this agent has no {flag} hook");
        say(setup.format, setup.node, name, &exit);
        let failed = ReportWorkRequest {
            attempt: 1,
            exit,
            stderr: format!("start the agent with {flag} CMD"),
            ..report(Outcome::Failed)
        };
        deliver(&client, &setup, failed).await;
        return;
    };
    let env = [
        ("ARBITER_NODE_ID", setup.node.to_string()),
        ("ARBITER_HOST", host.clone()),
        ("ARBITER_TASK_UID", order.task.clone()),
        ("ARBITER_ACTION_ID", order.action.clone()),
        ("ARBITER_ACTION", name.to_owned()),
    ];
    let cmd = template
        .replace("{node}", &setup.node.to_string())
        .replace("{host}", &shell_quote(&host))
        .replace("{task}", &shell_quote(&order.task))
        .replace("{action}", &shell_quote(&order.action));
    let what = format!("the {name} hook");
    let mut attempt: u32 = 1;
    loop {
        say(
            setup.format,
            setup.node,
            name,
            &format!("started for task {} (attempt {attempt})", order.task),
        );
        if !undo {
            deliver(&client, &setup, report(Outcome::Running)).await;
        }
        let (tx, mut rx) = mpsc::channel::<f64>(16);
        let forward = {
            let client = client.clone();
            let base = report(Outcome::Running);
            tokio::spawn(async move {
                let mut last = None;
                while let Some(p) = rx.recv().await {
                    if last == Some(p) {
                        continue;
                    }
                    last = Some(p);
                    let c = client.borrow().clone();
                    // Best effort: a lost progress step is followed by the next one.
                    let _ = c
                        .report_work(ReportWorkRequest {
                            progress: p,
                            ..base.clone()
                        })
                        .await;
                }
            })
        };
        let run = Hook {
            cmd: &cmd,
            env: &env,
            timeout,
        };
        let ended = hook::run(&run, (!undo).then_some(tx)).await;
        // Every progress report goes before the outcome.
        let _ = forward.await;
        match ended {
            Ok(()) => {
                done.store(true, Ordering::SeqCst);
                let word = if undo {
                    format!("{name} done")
                } else {
                    format!("{} done", hooks.name)
                };
                say(
                    setup.format,
                    setup.node,
                    name,
                    &format!("{word} for task {}", order.task),
                );
                deliver(&client, &setup, report(Outcome::Done)).await;
                return;
            }
            Err(f) => {
                let delay = setup.retry_delay;
                say(
                    setup.format,
                    setup.node,
                    name,
                    &format!(
                        "{} (attempt {attempt}); trying again in {}",
                        f.text(&what),
                        humantime::format_duration(delay)
                    ),
                );
                let failed = ReportWorkRequest {
                    attempt,
                    exit: f.exit,
                    stderr: f.stderr,
                    retry_in: Some(prost_types::Duration {
                        seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                        nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
                    }),
                    ..report(Outcome::Failed)
                };
                deliver(&client, &setup, failed).await;
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Sends a report until the server takes it (or refuses it for good: then says so).
async fn deliver(client: &watch::Receiver<Client>, setup: &Setup, req: ReportWorkRequest) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let c = client.borrow().clone();
        match c.report_work(req.clone()).await {
            Ok(_) => return,
            Err(e) if e.is_retryable() => tokio::time::sleep(backoff.next_delay()).await,
            Err(e) => {
                say(
                    setup.format,
                    setup.node,
                    "report refused",
                    &crate::error::describe(&e),
                );
                return;
            }
        }
    }
}
