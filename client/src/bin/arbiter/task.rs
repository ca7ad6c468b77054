//! `arbiter task show|refresh|drop|watch`, and the dispatch of every `task` subcommand (create
//! and complete have their own modules: they translate flags, these only print).

use crate::Ctx;
use crate::cli::{Format, TaskCommand};
use crate::error::Failure;
use crate::output::{emit, emit_json, emit_json_line};
use crate::task_view::TaskView;
use crate::{complete, create};
use arbiter_client::ClientError;
use arbiter_client::proto::ydb::status_ids::StatusCode;
use serde_json::json;
use std::time::SystemTime;

/// Runs one `task` subcommand.
pub(crate) async fn run(ctx: &Ctx, command: &TaskCommand) -> Result<(), Failure> {
    match command {
        TaskCommand::Show { uid } => show(ctx, uid).await,
        TaskCommand::Create(args) => create::run(ctx, args).await,
        TaskCommand::Refresh { uid } => refresh(ctx, uid).await,
        TaskCommand::Complete(args) => complete::run(ctx, args).await,
        TaskCommand::Drop { uid } => drop_task(ctx, uid).await,
        TaskCommand::Watch { uid } => watch(ctx, uid).await,
    }
}

/// Prints a task without re-checking it.
async fn show(ctx: &Ctx, uid: &str) -> Result<(), Failure> {
    let task = ctx.client.get_task(uid).await?;
    print(ctx.format, &TaskView::of_get(&task, uid));
    Ok(())
}

/// Re-checks a task and prints the outcome. Refresh does not echo the options, so they are
/// read afterwards (best effort: a task that vanished in between prints without them).
async fn refresh(ctx: &Ctx, uid: &str) -> Result<(), Failure> {
    let result = ctx.client.refresh_task(uid).await?;
    let options = ctx
        .client
        .get_task(uid)
        .await
        .ok()
        .and_then(|t| t.task_options);
    print(ctx.format, &TaskView::of_result(&result, options.as_ref()));
    Ok(())
}

async fn drop_task(ctx: &Ctx, uid: &str) -> Result<(), Failure> {
    ctx.client.drop_task(uid).await?;
    match ctx.format {
        Format::Table => emit(&format!("task {uid} dropped\n")),
        Format::Json => emit_json(&json!({ "task_uid": uid, "dropped": true })),
    }
    Ok(())
}

/// Prints the task now and after every change, until the server says it is gone (completed,
/// dropped, expired): that is the normal end, exit 0. A stream the server closes without
/// saying so (it is shutting down) is an error, so a script can tell the two apart.
async fn watch(ctx: &Ctx, uid: &str) -> Result<(), Failure> {
    let mut watch = ctx.client.watch_task(uid).await?;
    let mut first = true;
    loop {
        match watch.next().await {
            Some(Ok(result)) => {
                let view = TaskView::of_result(&result, None);
                match ctx.format {
                    Format::Table => {
                        let gap = if first { "" } else { "\n" };
                        emit(&format!("{gap}{}", view.table(SystemTime::now())));
                    }
                    Format::Json => emit_json_line(&view.json()),
                }
                first = false;
            }
            Some(Err(ClientError::Refused {
                status: StatusCode::BadRequest,
                message,
            })) => {
                match ctx.format {
                    Format::Table => emit(&format!("\ntask {uid} is gone: {message}\n")),
                    Format::Json => emit_json_line(&json!({
                        "task_uid": uid,
                        "gone": true,
                        "message": message,
                    })),
                }
                return Ok(());
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(Failure(format!(
                    "the server closed the watch of task {uid} (is it shutting down?)"
                )));
            }
        }
    }
}

fn print(format: Format, view: &TaskView<'_>) {
    match format {
        Format::Table => emit(&view.table(SystemTime::now())),
        Format::Json => emit_json(&view.json()),
    }
}
