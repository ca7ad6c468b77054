//! `arbiter tasks`: one line per task, with its owner, from arbiter.v1's ListTasks (YDB's
//! ListMaintenanceTasks answers bare uids, and GetMaintenanceTask has no owner).

use crate::Ctx;
use crate::cli::{Format, TasksArgs};
use crate::error::Failure;
use crate::output::{self, Table, emit, emit_json, or_dash};
use serde_json::json;
use std::time::SystemTime;

/// Lists the tasks (all, one owner's, or the caller's) with a summary each.
pub(crate) async fn run(ctx: &Ctx, args: &TasksArgs) -> Result<(), Failure> {
    let owner = if args.mine {
        Some(ctx.client.who_am_i().await?.user)
    } else {
        args.owner.clone()
    };
    let tasks = ctx.client.task_summaries(owner.as_deref()).await?;
    let now = SystemTime::now();
    match ctx.format {
        Format::Table => {
            if tasks.is_empty() {
                emit("no tasks\n");
                return Ok(());
            }
            let mut table = Table::new(&[
                "UID",
                "OWNER",
                "MODE",
                "PRIORITY",
                "PERFORMED",
                "PENDING",
                "HELD",
                "CREATED",
                "DESCRIPTION",
            ]);
            for t in &tasks {
                table.row(vec![
                    t.task_uid.clone(),
                    or_dash(&t.owner),
                    output::mode(t.availability_mode),
                    t.priority.to_string(),
                    t.performed.to_string(),
                    t.pending.to_string(),
                    match (t.holds.is_empty(), t.override_holds) {
                        (_, true) => "OVERRIDE".to_owned(),
                        (true, false) => "-".to_owned(),
                        (false, false) => t.holds.join(","),
                    },
                    output::age(t.create_time.as_ref(), now),
                    or_dash(&t.description),
                ]);
            }
            emit(&table.render());
        }
        Format::Json => emit_json(&json!(
            tasks
                .iter()
                .map(|t| json!({
                    "task_uid": t.task_uid,
                    "owner": t.owner,
                    "options": {
                        "description": t.description,
                        "availability_mode": output::mode(t.availability_mode),
                        "priority": t.priority,
                        "dry_run": false,
                    },
                    "performed": t.performed,
                    "pending": t.pending,
                    "holds": t.holds,
                    "override_holds": t.override_holds,
                    "create_time": output::rfc3339_json(t.create_time.as_ref()),
                    "last_refresh_time": output::rfc3339_json(t.last_refresh_time.as_ref()),
                }))
                .collect::<Vec<_>>()
        )),
    }
    Ok(())
}
