//! The rollout's task: created from the selection, or an existing one resumed; and the dry run,
//! which shows what the arbiter would grant first and why the other nodes wait.

use super::RollingError;
use super::args::RollingArgs;
use super::feed::is_not_found;
use super::select::{Target, select};
use super::task::{NodeAction, create_request, node_actions};
use crate::Client;
use crate::proto::ydb::maintenance::AvailabilityMode;
use std::collections::HashMap;
use std::io::Write as _;

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

/// `--dry-run`: which nodes the arbiter would grant now, and why the others wait. Nothing is
/// stored; an existing task of that uid is shown as it stands.
pub(crate) async fn dry_run(client: &Client, args: &RollingArgs) -> Result<(), RollingError> {
    let nodes = client.list_nodes().await?;
    let names: HashMap<u32, Target> = nodes
        .iter()
        .map(|n| (n.node_id, Target::from_status(n)))
        .collect();
    let name = |id: u32| {
        names
            .get(&id)
            .map(ToString::to_string)
            .unwrap_or_else(|| format!("node {id}"))
    };
    let mut text = String::new();
    let (actions, skipped) = match &args.task_uid {
        Some(uid) => match client.get_task(uid).await {
            Ok(task) => {
                text.push_str(&format!(
                    "task '{uid}' exists; as it stands (a resume would continue it):\n"
                ));
                (node_actions(&task.action_group_states), Vec::new())
            }
            Err(e) if is_not_found(&e) => {
                let (a, s) = check(client, args, &nodes, uid, &mut text).await?;
                (a, s)
            }
            Err(e) => return Err(e.into()),
        },
        None => check(client, args, &nodes, &args.task_uid(), &mut text).await?,
    };
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
        for (t, why) in &skipped {
            text.push_str(&format!("  {t}: {why}\n"));
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(())
}

type Checked = (Vec<(u32, NodeAction)>, Vec<(Target, String)>);

async fn check(
    client: &Client,
    args: &RollingArgs,
    nodes: &[crate::proto::arbiter::v1::NodeStatus],
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
