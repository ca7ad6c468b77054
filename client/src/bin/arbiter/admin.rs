//! `arbiter inventory reload` and `arbiter whoami`: the two calls about the server and the
//! caller rather than about nodes or tasks.

use crate::Ctx;
use crate::cli::Format;
use crate::error::Failure;
use crate::output::{emit, emit_json, fields, yes_no};
use serde_json::json;

/// Makes the server re-read its inventory file and prints what changed in size.
pub(crate) async fn reload_inventory(ctx: &Ctx) -> Result<(), Failure> {
    let r = ctx.client.reload_inventory().await?;
    match ctx.format {
        Format::Table => emit(&format!(
            "inventory reloaded: nodes {} -> {}, storage groups {} -> {}\n",
            r.nodes_before, r.nodes_after, r.groups_before, r.groups_after
        )),
        Format::Json => emit_json(&json!({
            "nodes_before": r.nodes_before,
            "nodes_after": r.nodes_after,
            "groups_before": r.groups_before,
            "groups_after": r.groups_after,
        })),
    }
    Ok(())
}

/// Prints the user the server sees behind the ticket (in open mode, the ticket itself).
pub(crate) async fn whoami(ctx: &Ctx) -> Result<(), Failure> {
    let r = ctx.client.who_am_i().await?;
    match ctx.format {
        Format::Table => emit(&format!(
            "user {}\n{}",
            r.user,
            fields(&[
                (
                    "groups",
                    if r.groups.is_empty() {
                        "-".to_owned()
                    } else {
                        r.groups.join(", ")
                    }
                ),
                ("administration", yes_no(r.is_administration_allowed)),
                ("monitoring", yes_no(r.is_monitoring_allowed)),
            ])
        )),
        Format::Json => emit_json(&json!({
            "user": r.user,
            "groups": r.groups,
            "is_administration_allowed": r.is_administration_allowed,
            "is_monitoring_allowed": r.is_monitoring_allowed,
        })),
    }
    Ok(())
}
