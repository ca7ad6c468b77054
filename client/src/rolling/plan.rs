//! The rollout's task: created from the selection, or an existing one resumed; and the dry run,
//! which shows the server's plan of the whole rollout (PlanRollout).

use super::RollingError;
use super::args::RollingArgs;
use super::feed::is_not_found;
use super::select::{Target, select};
use super::task::{NodeAction, create_request, node_actions};
use crate::proto::arbiter::v1::{NodeStatus, PlanRolloutRequest, PlanRolloutResponse};
use crate::proto::ydb::maintenance::AvailabilityMode;
use crate::{Client, ClientError};
use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

/// The task a rollout works on.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) uid: String,
    /// The task's nodes, in group order.
    pub(crate) targets: Vec<Target>,
    /// What the task said about each node when the rollout started.
    pub(crate) initial: Vec<(u32, NodeAction)>,
    /// Selected nodes left out because they were not up.
    pub(crate) skipped: Vec<(Target, String)>,
    /// One line about the task for the start of the output.
    pub(crate) headline: String,
    /// Remarks (e.g. filters ignored on a resume).
    pub(crate) notes: Vec<String>,
}

/// Resumes task `--task-uid` if it exists; otherwise selects the nodes and creates it.
pub(crate) async fn prepare(client: &Client, args: &RollingArgs) -> Result<Plan, RollingError> {
    let uid = args.task_uid();
    let nodes = client.list_nodes().await?;
    match client.get_task(&uid).await {
        Ok(task) => {
            let by_id: HashMap<u32, Target> = nodes
                .iter()
                .map(|n| (n.node_id, Target::from_status(n)))
                .collect();
            let initial = node_actions(&task.action_group_states);
            let targets: Vec<Target> = initial
                .iter()
                .map(|(id, _)| {
                    by_id.get(id).cloned().unwrap_or_else(|| Target {
                        id: *id,
                        host: String::new(),
                        port: 0,
                    })
                })
                .collect();
            let opts = task.task_options.unwrap_or_default();
            let mode = AvailabilityMode::try_from(opts.availability_mode)
                .map(|m| mode_name(m).to_owned())
                .unwrap_or_else(|_| format!("mode {}", opts.availability_mode));
            let mut notes = Vec::new();
            if args.has_selection() {
                notes.push("the task exists: its remaining nodes are the work, the node filters are not used".to_owned());
            }
            if opts.availability_mode != args.mode.wire() as i32 || opts.priority != args.priority {
                notes.push(format!(
                    "the task keeps its own {mode} mode and priority {}",
                    opts.priority
                ));
            }
            let granted = initial
                .iter()
                .filter(|(_, a)| matches!(a, NodeAction::Granted { .. }))
                .count();
            let mut headline = format!(
                "resuming task '{uid}' ({mode} mode, priority {}): {} nodes remain",
                opts.priority,
                targets.len()
            );
            if granted > 0 {
                headline.push_str(&format!(
                    ", {granted} of them granted in the earlier run (they are restarted now)"
                ));
            }
            Ok(Plan {
                uid,
                targets,
                initial,
                skipped: Vec::new(),
                headline,
                notes,
            })
        }
        Err(e) if is_not_found(&e) => {
            let sel = select(&nodes, args)?;
            let result = client
                .create_task(create_request(&uid, args, &sel.chosen, false))
                .await?;
            let initial = node_actions(&result.action_group_states);
            let headline = format!(
                "task '{uid}' created: {} nodes, {} mode, priority {}, at most {} at a time",
                sel.chosen.len(),
                mode_name(args.mode.wire()),
                args.priority,
                args.inflight
            );
            let mut notes = Vec::new();
            let needed = args.worst_case_per_node();
            if args.lock_duration < needed {
                notes.push(format!(
                    "warning: --lock-duration {} is shorter than one node may take ({} with its retries and --up-timeout); a lock may lapse during a restart",
                    super::task::show_duration(args.lock_duration),
                    super::task::show_duration(needed)
                ));
            }
            Ok(Plan {
                uid,
                targets: sel.chosen,
                initial,
                skipped: sel.skipped,
                headline,
                notes,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// `--dry-run`: the plan of the whole rollout under the current state (PlanRollout): every
/// wave, the nodes never granted and why, and the estimate. Nothing is stored; an existing task
/// of that uid is shown as it stands. A server without PlanRollout gets the older answer:
/// which nodes could go first, and why the others wait.
pub(crate) async fn dry_run(client: &Client, args: &RollingArgs) -> Result<(), RollingError> {
    let nodes = client.list_nodes().await?;
    if let Some(uid) = &args.task_uid {
        match client.get_task(uid).await {
            Ok(task) => {
                let text =
                    format!("task '{uid}' exists; as it stands (a resume would continue it):\n");
                let actions = node_actions(&task.action_group_states);
                return print_first(&nodes, args, text, &actions, &[]);
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let sel = select(&nodes, args)?;
    let req = PlanRolloutRequest {
        node_ids: sel.chosen.iter().map(|t| t.id).collect(),
        availability_mode: args.mode.wire() as i32,
        priority: args.priority,
        inflight: args.inflight,
        time_per_node: Some(prost_types::Duration {
            seconds: i64::try_from(args.time_per_node.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(args.time_per_node.subsec_nanos()).unwrap_or(0),
        }),
    };
    match client.plan_rollout(req).await {
        Ok(plan) => {
            let doc = if args.json {
                plan_json(&nodes, args, &sel.chosen, &sel.skipped, &plan)
            } else {
                plan_text(&nodes, args, &sel.chosen, &sel.skipped, &plan)
            };
            write_out(&doc);
            Ok(())
        }
        Err(ClientError::Rpc(s)) if s.code() == tonic::Code::Unimplemented => {
            let mut text = String::from(
                "note: this server does not plan whole rollouts (PlanRollout is unimplemented: the server is older than this CLI); showing only what could go first\n",
            );
            let (actions, skipped) =
                check(client, args, &nodes, &args.task_uid(), &mut text).await?;
            print_first(&nodes, args, text, &actions, &skipped)
        }
        Err(e) => Err(e.into()),
    }
}

fn names(nodes: &[NodeStatus]) -> HashMap<u32, Target> {
    nodes
        .iter()
        .map(|n| (n.node_id, Target::from_status(n)))
        .collect()
}

fn name_of(names: &HashMap<u32, Target>, id: u32) -> String {
    names
        .get(&id)
        .map(ToString::to_string)
        .unwrap_or_else(|| format!("node {id}"))
}

/// The plan for people.
fn plan_text(
    nodes: &[NodeStatus],
    args: &RollingArgs,
    chosen: &[Target],
    skipped: &[(Target, String)],
    plan: &PlanRolloutResponse,
) -> String {
    let names = names(nodes);
    let mut text = format!(
        "dry run: a rolling restart of {} nodes in {} mode, priority {}, at most {} at a time, under the current state\n",
        chosen.len(),
        mode_name(args.mode.wire()),
        args.priority,
        args.inflight
    );
    for (i, w) in plan.waves.iter().enumerate() {
        let list: Vec<String> = w.node_ids.iter().map(|id| name_of(&names, *id)).collect();
        text.push_str(&format!("wave {}: {}\n", i + 1, list.join(", ")));
    }
    if !plan.blocked.is_empty() {
        text.push_str(&format!(
            "never granted under the current state ({}):\n",
            plan.blocked.len()
        ));
        for b in &plan.blocked {
            text.push_str(&format!("  {}: {}\n", name_of(&names, b.node_id), b.reason));
        }
    }
    if !skipped.is_empty() {
        text.push_str(&format!("skipped ({}):\n", skipped.len()));
        for (t, why) in skipped {
            text.push_str(&format!("  {t}: {why}\n"));
        }
    }
    text.push_str(&format!(
        "estimate: {} waves x {} (--time-per-node) = {}\n",
        plan.waves.len(),
        super::task::show_duration(args.time_per_node),
        super::task::show_duration(estimate(plan))
    ));
    text
}

/// The plan for scripts: one JSON document.
fn plan_json(
    nodes: &[NodeStatus],
    args: &RollingArgs,
    chosen: &[Target],
    skipped: &[(Target, String)],
    plan: &PlanRolloutResponse,
) -> String {
    let names = names(nodes);
    let node = |id: u32| {
        let host = names.get(&id).map(|t| t.host.clone()).unwrap_or_default();
        serde_json::json!({ "id": id, "host": host })
    };
    let doc = serde_json::json!({
        "nodes": chosen.len(),
        "mode": mode_name(args.mode.wire()),
        "priority": args.priority,
        "inflight": args.inflight,
        "time_per_node_seconds": args.time_per_node.as_secs_f64(),
        "waves": plan.waves.iter().map(|w| w.node_ids.iter().map(|id| node(*id)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "blocked": plan.blocked.iter().map(|b| {
            let mut n = node(b.node_id);
            n["reason"] = serde_json::Value::String(b.reason.clone());
            n
        }).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(t, why)| serde_json::json!({ "id": t.id, "host": t.host, "reason": why })).collect::<Vec<_>>(),
        "estimate_seconds": estimate(plan).as_secs_f64(),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn estimate(plan: &PlanRolloutResponse) -> Duration {
    plan.estimate
        .as_ref()
        .map(|d| {
            Duration::new(
                u64::try_from(d.seconds).unwrap_or(0),
                u32::try_from(d.nanos).unwrap_or(0),
            )
        })
        .unwrap_or_default()
}

fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The older dry run's answer: which nodes could go first, and why the others wait.
fn print_first(
    nodes: &[NodeStatus],
    args: &RollingArgs,
    mut text: String,
    actions: &[(u32, NodeAction)],
    skipped: &[(Target, String)],
) -> Result<(), RollingError> {
    let names = names(nodes);
    let name = |id: u32| name_of(&names, id);
    let granted: Vec<u32> = actions
        .iter()
        .filter(|(_, a)| matches!(a, NodeAction::Granted { .. }))
        .map(|(id, _)| *id)
        .collect();
    text.push_str(&format!("could go first ({}):\n", granted.len()));
    for id in &granted {
        text.push_str(&format!("  {}\n", name(*id)));
    }
    let first = u32::try_from(granted.len()).unwrap_or(u32::MAX);
    if first > args.inflight {
        text.push_str(&format!(
            "  (with --inflight {}, {} of them restart at a time)\n",
            args.inflight, args.inflight
        ));
    }
    let waiting: Vec<(u32, &str)> = actions
        .iter()
        .filter_map(|(id, a)| match a {
            NodeAction::Waiting { why } => Some((*id, why.as_str())),
            NodeAction::Granted { .. } => None,
        })
        .collect();
    text.push_str(&format!("waiting ({}):\n", waiting.len()));
    for (id, why) in waiting {
        text.push_str(&format!("  {}: {why}\n", name(id)));
    }
    if !skipped.is_empty() {
        text.push_str(&format!("skipped ({}):\n", skipped.len()));
        for (t, why) in skipped {
            text.push_str(&format!("  {t}: {why}\n"));
        }
    }
    write_out(&text);
    Ok(())
}

type Checked = (Vec<(u32, NodeAction)>, Vec<(Target, String)>);

async fn check(
    client: &Client,
    args: &RollingArgs,
    nodes: &[NodeStatus],
    uid: &str,
    text: &mut String,
) -> Result<Checked, RollingError> {
    let sel = select(nodes, args)?;
    let result = client
        .create_task(create_request(uid, args, &sel.chosen, true))
        .await?;
    text.push_str(&format!(
        "dry run: a rolling restart of {} nodes in {} mode, priority {}, under the current state\n",
        sel.chosen.len(),
        mode_name(args.mode.wire()),
        args.priority
    ));
    Ok((node_actions(&result.action_group_states), sel.skipped))
}

fn mode_name(m: AvailabilityMode) -> &'static str {
    match m {
        AvailabilityMode::Strong => "strong",
        AvailabilityMode::Weak => "weak",
        AvailabilityMode::Force => "force",
        AvailabilityMode::Smart => "smart",
        AvailabilityMode::Unspecified => "unspecified",
    }
}
