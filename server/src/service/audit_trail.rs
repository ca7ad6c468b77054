//! `arbiter.v1.ListAudit`: the audit trail ([`crate::engine::audit`]) with filters and paging.
//!
//! Anyone identified may read it, like every other query. A query is answered from the
//! writer's state, so it sees every entry whose change was answered before it.

use super::Context;
use super::audit::Audit;
use super::error::ServiceError;
use super::{decode, encode};
use crate::engine::audit::{AuditEntry, AuditKind, AuditQuery, MAX_PAGE};
use crate::engine::state::{MAX_ID_LEN, MAX_NAME_LEN};
use arbiter_proto::arbiter::v1::{AuditEntry as WireEntry, ListAuditRequest, ListAuditResponse};
use tonic::Status;

/// Decodes a ListAudit request; refuses an unknown kind and over-long names.
pub fn query(req: ListAuditRequest) -> Result<AuditQuery, ServiceError> {
    let kind = match req.kind.as_str() {
        "" => None,
        k => Some(AuditKind::parse(k).ok_or_else(|| {
            let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.name()).collect();
            ServiceError::BadRequest(format!(
                "unknown audit kind '{k}' (one of: {})",
                names.join(", ")
            ))
        })?),
    };
    if req.task_uid.len() > MAX_ID_LEN || req.user.len() > MAX_NAME_LEN {
        return Err(ServiceError::BadRequest(format!(
            "task_uid is at most {MAX_ID_LEN} bytes and user at most {MAX_NAME_LEN}"
        )));
    }
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    Ok(AuditQuery {
        task: nonempty(req.task_uid),
        node: (req.node_id != 0).then_some(req.node_id),
        user: nonempty(req.user),
        kind,
        since: req.since.map(decode::timestamp),
        until: req.until.map(decode::timestamp),
        after_seq: req.after_seq,
        limit: usize::try_from(req.limit).unwrap_or(MAX_PAGE),
    })
}

/// One entry on the wire.
pub fn entry(e: &AuditEntry) -> WireEntry {
    WireEntry {
        seq: e.seq,
        time: Some(encode::timestamp(e.time)),
        kind: e.kind.name().to_owned(),
        user: e.user.clone(),
        role: e.role.clone(),
        peer: e.peer.clone(),
        task_uid: e.task.clone(),
        node_ids: e.nodes.clone(),
        detail: e.detail.clone(),
        fencing_token: e.fencing_token,
        force: e.force,
    }
}

/// Answers ListAudit for an identified caller.
pub async fn list(
    ctx: &Context,
    audit: &Audit,
    request: tonic::Request<ListAuditRequest>,
) -> Result<ListAuditResponse, Status> {
    ctx.identity.resolve(request.metadata()).map_err(|e| {
        audit.denied(None, &e);
        ServiceError::from(e).to_grpc()
    })?;
    page(ctx, request.into_inner())
        .await
        .map_err(|e| e.to_grpc())
}

/// One page of the trail for `req` (the caller already identified).
pub(crate) async fn page(
    ctx: &Context,
    req: ListAuditRequest,
) -> Result<ListAuditResponse, ServiceError> {
    let q = query(req)?;
    let page = ctx.query(move |s, _| Ok(s.audit_query(&q))).await?;
    Ok(ListAuditResponse {
        entries: page.entries.iter().map(entry).collect(),
        next_after_seq: page.next_after_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_kind_is_refused_naming_the_kinds() {
        let err = query(ListAuditRequest {
            kind: "nope".into(),
            ..ListAuditRequest::default()
        })
        .expect_err("unknown kind");
        assert!(err.to_string().contains("lock_granted"), "{err}");
        let q = query(ListAuditRequest {
            kind: "lock_granted".into(),
            node_id: 3,
            ..ListAuditRequest::default()
        })
        .expect("query");
        assert_eq!(q.kind, Some(AuditKind::LockGranted));
        assert_eq!(q.node, Some(3));
        assert_eq!(q.task, None);
    }
}
