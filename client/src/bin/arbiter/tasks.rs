//! `arbiter tasks`: ListMaintenanceTasks answers bare uids, so each task is read (a few at a
//! time) for a one-line summary. A task that ends between the list and its read is left out:
//! it is no longer a task.

use crate::Ctx;
use crate::cli::{Format, TasksArgs};
use crate::error::Failure;
use crate::output::{self, Table, emit, emit_json, or_dash};
use crate::task_view::{TaskView, options_json};
use arbiter_client::proto::ydb::maintenance::GetMaintenanceTaskResult;
use arbiter_client::proto::ydb::status_ids::StatusCode;
use arbiter_client::{Client, ClientError};
use serde_json::json;
use std::time::SystemTime;
use tokio::task::JoinSet;

/// How many tasks are read at once.
const READS_IN_FLIGHT: usize = 16;

/// Lists the tasks (all, one owner's, or the caller's) with a summary each.
pub(crate) async fn run(ctx: &Ctx, args: &TasksArgs) -> Result<(), Failure> {
    let owner = if args.mine {
        Some(ctx.client.who_am_i().await?.user)
    } else {
        args.owner.clone()
    };
    let uids = ctx.client.list_tasks(owner.as_deref()).await?;
    let tasks = read_all(&ctx.client, uids).await?;
    let now = SystemTime::now();
    match ctx.format {
        Format::Table => {
            if tasks.is_empty() {
                emit("no tasks\n");
                return Ok(());
            }
            let mut table = Table::new(&[
                "UID",
                "MODE",
                "PRIORITY",
                "PERFORMED",
                "PENDING",
                "CREATED",
                "DESCRIPTION",
            ]);
            for (uid, task) in &tasks {
                let view = TaskView::of_get(task, uid);
                let (performed, pending) = view.counts();
                let options = view.options;
                table.row(vec![
                    uid.clone(),
                    options.map_or("-".into(), |o| output::mode(o.availability_mode)),
                    options.map_or("-".into(), |o| o.priority.to_string()),
                    performed.to_string(),
                    pending.to_string(),
                    output::age(task.create_time.as_ref(), now),
                    options.map_or("-".into(), |o| or_dash(&o.description)),
                ]);
            }
            emit(&table.render());
        }
        Format::Json => emit_json(&json!(
            tasks
                .iter()
                .map(|(uid, task)| {
                    let view = TaskView::of_get(task, uid);
                    let (performed, pending) = view.counts();
                    json!({
                        "task_uid": uid,
                        "owner": owner,
                        "options": view.options.map(options_json),
                        "performed": performed,
                        "pending": pending,
                        "create_time": output::rfc3339_json(task.create_time.as_ref()),
                    })
                })
                .collect::<Vec<_>>()
        )),
    }
    Ok(())
}

/// Reads every task, in the order of `uids`, skipping the ones that are gone.
async fn read_all(
    client: &Client,
    uids: Vec<String>,
) -> Result<Vec<(String, GetMaintenanceTaskResult)>, Failure> {
    let mut slots: Vec<Option<GetMaintenanceTaskResult>> = vec![None; uids.len()];
    let mut running = JoinSet::new();
    let mut next = 0;
    loop {
        while running.len() < READS_IN_FLIGHT && next < uids.len() {
            let (client, uid, i) = (client.clone(), uids[next].clone(), next);
            running.spawn(async move { (i, client.get_task(&uid).await) });
            next += 1;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = joined.map_err(|e| Failure(format!("a task read failed: {e}")))?;
        match result {
            Ok(task) => slots[i] = Some(task),
            Err(ClientError::Refused {
                status: StatusCode::BadRequest,
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(uids
        .into_iter()
        .zip(slots)
        .filter_map(|(uid, task)| Some((uid, task?)))
        .collect())
}
