//! `arbiter inventory reload` and `arbiter whoami`: the two calls about the server and the
//! caller rather than about nodes or tasks.

use crate::Ctx;
use crate::cli::Format;
use crate::error::Failure;
use crate::output::{self, Table, emit, emit_json, fields, yes_no};
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

/// Prints the user the server sees behind the ticket (in open mode, the ticket itself) and
/// the role (viewer, operator or admin: arbiter.v1 WhoAmI; YDB's WhoAmI has no roles).
pub(crate) async fn whoami(ctx: &Ctx) -> Result<(), Failure> {
    let r = ctx.client.who_am_i().await?;
    let role = ctx.client.caller_role().await?.role;
    match ctx.format {
        Format::Table => emit(&format!(
            "user {}\n{}",
            r.user,
            fields(&[
                ("role", role.clone()),
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
            "role": role,
            "groups": r.groups,
            "is_administration_allowed": r.is_administration_allowed,
            "is_monitoring_allowed": r.is_monitoring_allowed,
        })),
    }
    Ok(())
}

/// `arbiter instances`: the instances as the called one sees them.
pub(crate) async fn instances(ctx: &Ctx) -> Result<(), Failure> {
    let r = ctx.client.list_instances().await?;
    let now = std::time::SystemTime::now();
    match ctx.format {
        Format::Table => {
            let mut table =
                Table::new(&["ID", "ADDRESS", "ROLE", "EPOCH", "RENEWED", "VERSION", ""]);
            for i in &r.instances {
                table.row(vec![
                    i.id.clone(),
                    i.address.clone(),
                    i.role.clone(),
                    if i.leader_epoch == 0 {
                        "-".to_owned()
                    } else {
                        i.leader_epoch.to_string()
                    },
                    if i.last_renewal.is_some() {
                        output::age(i.last_renewal.as_ref(), now)
                    } else {
                        "-".to_owned()
                    },
                    i.version.clone(),
                    if i.answered {
                        "(answered)".to_owned()
                    } else {
                        String::new()
                    },
                ]);
            }
            let leader = if r.leader_id.is_empty() {
                "none known".to_owned()
            } else {
                format!("{} (epoch {})", r.leader_id, r.leader_epoch)
            };
            emit(&format!(
                "store {}, leader {leader}\n{}",
                r.store,
                table.render()
            ));
        }
        Format::Json => emit_json(&json!({
            "store": r.store,
            "leader_id": if r.leader_id.is_empty() { serde_json::Value::Null } else { json!(r.leader_id) },
            "leader_epoch": r.leader_epoch,
            "instances": r.instances.iter().map(|i| json!({
                "id": i.id,
                "address": i.address,
                "role": i.role,
                "leader_epoch": i.leader_epoch,
                "last_renewal": output::rfc3339_json(i.last_renewal.as_ref()),
                "started": output::rfc3339_json(i.started.as_ref()),
                "version": i.version,
                "answered": i.answered,
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(())
}

/// `arbiter backup --out FILE`: the server's backup file, written whole.
pub(crate) async fn backup(ctx: &Ctx, out: &std::path::Path) -> Result<(), Failure> {
    let bytes = ctx.client.backup().await?;
    let tmp = out.with_extension("tmp-backup");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| Failure(format!("cannot write {}: {e}", out.display())))?;
    match ctx.format {
        Format::Table => emit(&format!(
            "backup written to {} ({} bytes); restore it with arbiter-server restore --in {}\n",
            out.display(),
            bytes.len(),
            out.display()
        )),
        Format::Json => {
            emit_json(&json!({ "file": out.display().to_string(), "bytes": bytes.len() }))
        }
    }
    Ok(())
}
