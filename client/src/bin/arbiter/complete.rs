//! `arbiter task complete`: CompleteAction wants full action uids (task, group, action), which
//! nobody types. The user names action ids, nodes, or "everything performed"; this reads the
//! task once and maps that choice to uids, refusing a name that matches nothing rather than
//! completing less than was asked.

use crate::Ctx;
use crate::cli::{CompleteArgs, Format};
use crate::error::Failure;
use crate::output::{Table, emit, emit_json, status_code};
use crate::task_view::TaskView;
use arbiter_client::proto::ydb::maintenance::ActionUid;
use serde_json::json;

/// Completes the chosen actions (all or nothing) and prints each one's status.
pub(crate) async fn run(ctx: &Ctx, args: &CompleteArgs) -> Result<(), Failure> {
    let task = ctx.client.get_task(&args.uid).await?;
    let view = TaskView::of_get(&task, &args.uid);
    let uids = select(&view, args)?;
    let result = ctx.client.complete_actions(uids).await?;
    match ctx.format {
        Format::Table => {
            let mut table = Table::new(&["GROUP", "ACTION", "STATUS"]);
            for s in &result.action_statuses {
                let (group, action) = s
                    .action_uid
                    .as_ref()
                    .map(|u| (u.group_id.clone(), u.action_id.clone()))
                    .unwrap_or_default();
                table.row(vec![group, action, status_code(s.status)]);
            }
            emit(&format!(
                "task {}: {} action(s) completed\n{}",
                args.uid,
                result.action_statuses.len(),
                table.render()
            ));
        }
        Format::Json => emit_json(&json!({
            "task_uid": args.uid,
            "actions": result.action_statuses.iter().map(|s| {
                let uid = s.action_uid.clone().unwrap_or_default();
                json!({
                    "group_id": uid.group_id,
                    "action_id": uid.action_id,
                    "status": status_code(s.status),
                })
            }).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}

/// The uids of the actions `args` names in `task`.
fn select(task: &TaskView<'_>, args: &CompleteArgs) -> Result<Vec<ActionUid>, Failure> {
    let uid_of = |row: &crate::task_view::Row<'_>| {
        row.state.action_uid.clone().ok_or_else(|| {
            Failure(format!(
                "task {}: action in group {} has no uid",
                task.uid,
                row.group_id()
            ))
        })
    };
    let mut picked = Vec::new();
    if args.all_performed {
        for row in task.actions().filter(|r| r.is_performed()) {
            picked.push(uid_of(&row)?);
        }
        if picked.is_empty() {
            return Err(Failure(format!(
                "task {} has no performed action to complete",
                task.uid
            )));
        }
    }
    for id in &args.actions {
        let row = task
            .actions()
            .find(|r| r.action_id() == *id)
            .ok_or_else(|| Failure(format!("task {} has no action {id}", task.uid)))?;
        picked.push(uid_of(&row)?);
    }
    for node in &args.nodes {
        let rows: Vec<_> = task.actions().filter(|r| r.node() == Some(*node)).collect();
        if rows.is_empty() {
            return Err(Failure(format!(
                "task {} has no action on node {node}",
                task.uid
            )));
        }
        for row in rows {
            picked.push(uid_of(&row)?);
        }
    }
    // The same action named twice (an id and its node) is completed once.
    let mut unique: Vec<ActionUid> = Vec::with_capacity(picked.len());
    for uid in picked {
        if !unique.contains(&uid) {
            unique.push(uid);
        }
    }
    Ok(unique)
}
