//! `arbiter freeze on|off|status` and `arbiter read-only on|off|status`.

use crate::Ctx;
use crate::cli::{Format, FreezeCommand, FreezeScopeArgs, ReadOnlyCommand};
use crate::error::Failure;
use crate::output::{self, Table, emit, emit_json};
use arbiter_proto::arbiter::v1::{
    Freeze, FreezeScopeKind, ReadOnlyStatus, SetFreezeRequest, SetReadOnlyRequest,
};
use serde_json::{Value, json};

fn scope(args: &FreezeScopeArgs) -> (FreezeScopeKind, String) {
    if let Some(t) = &args.tenant {
        (FreezeScopeKind::Tenant, t.clone())
    } else if let Some(d) = &args.dc {
        (FreezeScopeKind::DataCenter, d.clone())
    } else {
        (FreezeScopeKind::Cluster, String::new())
    }
}

fn scope_text(f: &Freeze) -> String {
    match FreezeScopeKind::try_from(f.scope_kind) {
        Ok(FreezeScopeKind::Tenant) => format!("tenant {}", f.scope_name),
        Ok(FreezeScopeKind::DataCenter) => format!("dc {}", f.scope_name),
        _ => "cluster".to_owned(),
    }
}

fn freeze_json(f: &Freeze) -> Value {
    json!({
        "scope": scope_text(f),
        "by": f.by,
        "reason": f.reason,
        "since": output::rfc3339_json(f.since.as_ref()),
        "until": output::rfc3339_json(f.until.as_ref()),
        "text": f.text,
    })
}

fn read_only_json(r: Option<&ReadOnlyStatus>) -> Value {
    match r {
        None => json!({ "on": false }),
        Some(r) => json!({
            "on": true,
            "by": r.by,
            "reason": r.reason,
            "since": output::rfc3339_json(r.since.as_ref()),
            "text": r.text,
        }),
    }
}

/// `arbiter freeze ...`.
pub(crate) async fn freeze(ctx: &Ctx, c: &FreezeCommand) -> Result<(), Failure> {
    let req = match c {
        FreezeCommand::Status => return status(ctx).await,
        FreezeCommand::On {
            scope: s,
            reason,
            for_,
        } => {
            let (kind, name) = scope(s);
            SetFreezeRequest {
                on: true,
                scope_kind: kind as i32,
                scope_name: name,
                reason: reason.clone(),
                duration: for_.map(|d| prost_types::Duration {
                    seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
                }),
                force: false,
            }
        }
        FreezeCommand::Off { scope: s, force } => {
            let (kind, name) = scope(s);
            SetFreezeRequest {
                on: false,
                scope_kind: kind as i32,
                scope_name: name,
                force: *force,
                ..SetFreezeRequest::default()
            }
        }
    };
    let on = req.on;
    let r = ctx.client.set_freeze(req).await?;
    let f = r.freeze.unwrap_or_default();
    match ctx.format {
        Format::Table if on => emit(&format!("{}\n", f.text)),
        Format::Table => emit(&format!("{} unfrozen (was: {})\n", scope_text(&f), f.text)),
        Format::Json => emit_json(&json!({ "on": on, "freeze": freeze_json(&f) })),
    }
    Ok(())
}

async fn status(ctx: &Ctx) -> Result<(), Failure> {
    let r = ctx.client.list_freezes().await?;
    match ctx.format {
        Format::Table => {
            let mut text = String::new();
            if let Some(ro) = &r.read_only {
                text.push_str(&format!("read-only: {}\n", ro.text));
            }
            if r.freezes.is_empty() {
                text.push_str("no freezes\n");
            } else {
                let mut table = Table::new(&["SCOPE", "BY", "SINCE", "UNTIL", "REASON"]);
                for f in &r.freezes {
                    table.row(vec![
                        scope_text(f),
                        f.by.clone(),
                        output::rfc3339(f.since.as_ref()),
                        if f.until.is_some() {
                            output::rfc3339(f.until.as_ref())
                        } else {
                            "until lifted".to_owned()
                        },
                        f.reason.clone(),
                    ]);
                }
                text.push_str(&table.render());
            }
            emit(&text);
        }
        Format::Json => emit_json(&json!({
            "freezes": r.freezes.iter().map(freeze_json).collect::<Vec<_>>(),
            "read_only": read_only_json(r.read_only.as_ref()),
        })),
    }
    Ok(())
}

/// `arbiter read-only ...`.
pub(crate) async fn read_only(ctx: &Ctx, c: &ReadOnlyCommand) -> Result<(), Failure> {
    let req = match c {
        ReadOnlyCommand::Status => {
            let r = ctx.client.list_freezes().await?;
            match ctx.format {
                Format::Table => match &r.read_only {
                    Some(ro) => emit(&format!("{}\n", ro.text)),
                    None => emit("read-only mode is off\n"),
                },
                Format::Json => emit_json(&read_only_json(r.read_only.as_ref())),
            }
            return Ok(());
        }
        ReadOnlyCommand::On { reason } => SetReadOnlyRequest {
            on: true,
            reason: reason.clone(),
            force: false,
        },
        ReadOnlyCommand::Off { force } => SetReadOnlyRequest {
            on: false,
            reason: String::new(),
            force: *force,
        },
    };
    let on = req.on;
    let r = ctx.client.set_read_only(req).await?;
    let text = r
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    match ctx.format {
        Format::Table if on => emit(&format!("{text}\n")),
        Format::Table => emit(&format!("read-only mode is off (was: {text})\n")),
        Format::Json => {
            emit_json(&json!({ "on": on, "status": read_only_json(r.status.as_ref()) }))
        }
    }
    Ok(())
}
