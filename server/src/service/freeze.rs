//! `arbiter.v1` SetFreeze, ListFreezes and SetReadOnly: decode, permissions, one writer job
//! (with its audit entry), encode. The rules are the engine's (`engine::freeze`).

use super::Context;
use super::audit::Audit;
use super::encode;
use super::error::ServiceError;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::freeze::{Freeze, FreezeScope, Lifter, ReadOnly};
use crate::engine::state::MAX_NAME_LEN;
use crate::identity::{AuthError, Caller, Role};
use arbiter_proto::arbiter::v1::{
    Freeze as WireFreeze, FreezeScopeKind, ListFreezesResponse, ReadOnlyStatus, SetFreezeRequest,
    SetFreezeResponse, SetReadOnlyRequest, SetReadOnlyResponse,
};
use std::time::Duration;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The longest freeze with an end (a longer one is a freeze until lifted).
pub const MAX_FREEZE: Duration = Duration::from_secs(366 * 86_400);

fn scope_of(req: &SetFreezeRequest) -> Result<FreezeScope, ServiceError> {
    let name = req.scope_name.trim();
    if name.len() > MAX_NAME_LEN {
        return Err(ServiceError::BadRequest(format!(
            "scope_name is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    let named = |what: &str| {
        if name.is_empty() {
            Err(ServiceError::BadRequest(format!(
                "a {what} freeze needs scope_name"
            )))
        } else {
            Ok(name.to_owned())
        }
    };
    match FreezeScopeKind::try_from(req.scope_kind) {
        Ok(FreezeScopeKind::Cluster) => Ok(FreezeScope::Cluster),
        Ok(FreezeScopeKind::Tenant) => Ok(FreezeScope::Tenant(named("tenant")?)),
        Ok(FreezeScopeKind::DataCenter) => Ok(FreezeScope::DataCenter(named("data center")?)),
        _ => Err(ServiceError::BadRequest(
            "scope_kind must be CLUSTER, TENANT or DATA_CENTER".into(),
        )),
    }
}

fn duration_of(d: Option<prost_types::Duration>) -> Result<Option<Duration>, ServiceError> {
    let Some(d) = d else { return Ok(None) };
    if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) {
        return Err(ServiceError::BadRequest(
            "a freeze's duration must be positive".into(),
        ));
    }
    let d = Duration::new(d.seconds.unsigned_abs(), d.nanos.unsigned_abs());
    if d > MAX_FREEZE {
        return Err(ServiceError::BadRequest(format!(
            "a freeze lasts at most {}; leave the duration out for one until lifted",
            humantime::format_duration(MAX_FREEZE)
        )));
    }
    Ok(Some(d))
}

fn bounded_reason(reason: &str) -> Result<String, ServiceError> {
    if reason.len() > MAX_NAME_LEN {
        return Err(ServiceError::BadRequest(format!(
            "reason is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    Ok(reason.to_owned())
}

/// A freeze on the wire.
pub fn wire_freeze(f: &Freeze) -> WireFreeze {
    let (kind, name) = match &f.scope {
        FreezeScope::Cluster => (FreezeScopeKind::Cluster, String::new()),
        FreezeScope::Tenant(t) => (FreezeScopeKind::Tenant, t.clone()),
        FreezeScope::DataCenter(d) => (FreezeScopeKind::DataCenter, d.clone()),
    };
    WireFreeze {
        scope_kind: kind as i32,
        scope_name: name,
        by: f.by.clone(),
        reason: f.reason.clone(),
        since: Some(encode::timestamp(f.since)),
        until: f.until.map(encode::timestamp),
        text: f.text(),
    }
}

fn wire_read_only(r: &ReadOnly) -> ReadOnlyStatus {
    ReadOnlyStatus {
        by: r.by.clone(),
        reason: r.reason.clone(),
        since: Some(encode::timestamp(r.since)),
        text: r.text(),
    }
}

/// SetFreeze, for an operator `caller`.
pub async fn set_freeze(
    ctx: &Context,
    audit: &Audit,
    meta: &MetadataMap,
    caller: Caller,
    req: SetFreezeRequest,
) -> Result<SetFreezeResponse, Status> {
    apply_freeze(ctx, audit, meta, caller, req)
        .await
        .map_err(|e| e.to_grpc())
}

/// SetFreeze, for an operator `caller`; a refusal goes to the audit trail.
pub(crate) async fn apply_freeze(
    ctx: &Context,
    audit: &Audit,
    meta: &MetadataMap,
    caller: Caller,
    req: SetFreezeRequest,
) -> Result<SetFreezeResponse, ServiceError> {
    let refuse = |e: ServiceError| {
        ctx.refused(audit, meta, "", &[], &e);
        e
    };
    let scope = scope_of(&req).map_err(refuse)?;
    let duration = duration_of(req.duration).map_err(refuse)?;
    let reason = bounded_reason(&req.reason).map_err(refuse)?;
    let entry = audit.entry(AuditKind::FreezeSet, Some(&caller));
    let on = req.on;
    let force = req.force;
    let user = caller.user.clone();
    let admin = caller.role == Role::Admin;
    let (freeze, _) = ctx
        .audited(move |s, now| {
            let o = if on {
                let until = duration.map(|d| now.plus(d));
                s.freeze_on(scope, &user, &reason, until, now)?
            } else {
                let who = Lifter {
                    user: &user,
                    admin,
                    force,
                };
                s.freeze_off(&scope, who, now)?
            };
            let detail = if on {
                format!("frozen: {}", o.value.text())
            } else {
                format!("{} unfrozen (was: {})", o.value.scope, o.value.text())
            };
            Ok((o, vec![AuditEntry { detail, ..entry }]))
        })
        .await
        .map_err(refuse)?;
    tracing::info!(scope = %freeze.scope, by = %caller.user, on, "freeze set");
    Ok(SetFreezeResponse {
        freeze: Some(wire_freeze(&freeze)),
    })
}

/// ListFreezes.
pub async fn list_freezes(ctx: &Context) -> Result<ListFreezesResponse, Status> {
    freezes(ctx).await.map_err(|e| e.to_grpc())
}

/// ListFreezes, refusals as they are.
pub(crate) async fn freezes(ctx: &Context) -> Result<ListFreezesResponse, ServiceError> {
    ctx.query(|s, now| {
        Ok(ListFreezesResponse {
            freezes: s.freezes(now).iter().map(wire_freeze).collect(),
            read_only: s.read_only().map(wire_read_only),
        })
    })
    .await
}

/// SetReadOnly, for an operator `caller` (who must be an admin).
pub async fn set_read_only(
    ctx: &Context,
    audit: &Audit,
    meta: &MetadataMap,
    caller: Caller,
    req: SetReadOnlyRequest,
) -> Result<SetReadOnlyResponse, Status> {
    let refuse = |e: ServiceError| {
        ctx.refused(audit, meta, "", &[], &e);
        e.to_grpc()
    };
    if caller.role != Role::Admin {
        let e = AuthError::Forbidden {
            user: caller.user.clone(),
            role: caller.role,
            action: "set read-only mode",
        };
        audit.denied(Some(&caller), &e);
        return Err(refuse(ServiceError::from(e)));
    }
    let reason = bounded_reason(&req.reason).map_err(refuse)?;
    let entry = audit.entry(AuditKind::ReadOnlySet, Some(&caller));
    let user = caller.user.clone();
    let (on, force) = (req.on, req.force);
    let (status, _) = ctx
        .audited(move |s, now| {
            let o = if on {
                s.read_only_on(&user, &reason, now)?
            } else {
                let who = Lifter {
                    user: &user,
                    admin: true,
                    force,
                };
                s.read_only_off(who)?
            };
            let detail = if on {
                format!("read-only on: {}", o.value.text())
            } else {
                format!("read-only off (was: {})", o.value.text())
            };
            Ok((o, vec![AuditEntry { detail, ..entry }]))
        })
        .await
        .map_err(refuse)?;
    tracing::info!(by = %caller.user, on, "read-only mode set");
    Ok(SetReadOnlyResponse {
        status: Some(wire_read_only(&status)),
    })
}
