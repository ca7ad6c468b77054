//! `/v1/freezes` (ListFreezes, SetFreeze), `/v1/audit` (ListAudit) and `/v1/fences/validate`
//! (ValidateFence): the same calls as arbiter.v1's.

use super::tasks::malformed;
use super::{Answer, ErrorSchema, body, nonempty, parse_duration, parse_time, rest_error, time};
use crate::http::error::ApiError;
use crate::http::{Api, Call};
use arbiter_proto::arbiter::v1::{
    FenceState, Freeze as WireFreeze, FreezeScopeKind, ListAuditRequest, SetFreezeRequest,
    ValidateFenceRequest,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// What a freeze covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The whole cluster (the default).
    #[default]
    Cluster,
    /// One tenant's nodes (`name`: the tenant).
    Tenant,
    /// One data center's nodes (`name`: the data center).
    DataCenter,
}

/// A freeze: no new grants in its scope until it ends or is lifted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Freeze {
    /// What it covers.
    pub scope: ScopeKind,
    /// The tenant or data center; `null` for the cluster.
    pub name: Option<String>,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// Until when (RFC 3339); `null`: until lifted.
    pub until: Option<String>,
    /// The freeze in words, as pending actions name it.
    pub text: String,
}

/// Read-only mode: nothing changes until it is turned off.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadOnly {
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: Option<String>,
    /// In words.
    pub text: String,
}

/// Every freeze, and read-only mode if it is on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FreezeList {
    /// The freezes in force.
    pub freezes: Vec<Freeze>,
    /// Read-only mode, when on.
    pub read_only: Option<ReadOnly>,
}

/// `POST /v1/freezes`: set (`on: true`) or lift (`on: false`) a freeze.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFreeze {
    /// Set (true) or lift (false).
    pub on: bool,
    /// What it covers (default `cluster`).
    #[serde(default)]
    pub scope: ScopeKind,
    /// The tenant or data center (for those scopes).
    #[serde(default)]
    pub name: Option<String>,
    /// Why (required to set one).
    #[serde(default)]
    pub reason: String,
    /// How long it lasts ("2h"); left out: until lifted.
    #[serde(default)]
    #[schema(example = "2h")]
    pub duration: Option<String>,
    /// Lifting: an admin lifts someone else's freeze.
    #[serde(default)]
    pub force: bool,
}

fn freeze(f: &WireFreeze) -> Freeze {
    Freeze {
        scope: match FreezeScopeKind::try_from(f.scope_kind) {
            Ok(FreezeScopeKind::Tenant) => ScopeKind::Tenant,
            Ok(FreezeScopeKind::DataCenter) => ScopeKind::DataCenter,
            _ => ScopeKind::Cluster,
        },
        name: nonempty(&f.scope_name),
        by: f.by.clone(),
        reason: f.reason.clone(),
        since: time(f.since.as_ref()),
        until: time(f.until.as_ref()),
        text: f.text.clone(),
    }
}

/// Every freeze (ListFreezes).
#[utoipa::path(get, path = "/v1/freezes", tag = "holds",
    responses(
        (status = 200, description = "The freezes, and read-only mode", body = FreezeList),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn freezes(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer<FreezeList> {
    let call = Call::of("http ListFreezes", peer, &headers);
    let r = api
        .arbiter
        .freezes(&call.audit, &call.meta)
        .await
        .map_err(rest_error)?;
    Ok(Json(FreezeList {
        freezes: r.freezes.iter().map(freeze).collect(),
        read_only: r.read_only.map(|r| ReadOnly {
            by: r.by,
            reason: r.reason,
            since: time(r.since.as_ref()),
            text: r.text,
        }),
    }))
}

/// Sets or lifts a freeze (SetFreeze); operators, and the freeze's owner or an admin to lift.
#[utoipa::path(post, path = "/v1/freezes", tag = "holds", request_body = SetFreeze,
    responses(
        (status = 200, description = "The freeze set or lifted", body = Freeze),
        (status = 400, description = "A malformed request, a second freeze, or none to lift", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 403, description = "A viewer, or someone else's freeze", body = ErrorSchema),
        (status = 429, description = "Overloaded: retry later", body = ErrorSchema),
        (status = 503, description = "Read-only mode, not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn set_freeze(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer<Freeze> {
    let call = Call::of("http SetFreeze", peer, &headers);
    let f: SetFreeze = body(&bytes).map_err(|e| malformed(&api, &call, "", e))?;
    let duration = f
        .duration
        .as_deref()
        .map(|d| parse_duration("duration", d))
        .transpose()
        .map_err(|e| malformed(&api, &call, "", e))?;
    let req = SetFreezeRequest {
        on: f.on,
        scope_kind: match f.scope {
            ScopeKind::Cluster => FreezeScopeKind::Cluster,
            ScopeKind::Tenant => FreezeScopeKind::Tenant,
            ScopeKind::DataCenter => FreezeScopeKind::DataCenter,
        } as i32,
        scope_name: f.name.unwrap_or_default(),
        reason: f.reason,
        duration,
        force: f.force,
    };
    // SetFreeze records its own refusals in the audit trail.
    let r = api
        .arbiter
        .freeze(&call.audit, &call.meta, req)
        .await
        .map_err(rest_error)?;
    let f = r
        .freeze
        .ok_or_else(|| ApiError::bad_request("no freeze in the answer"))?;
    Ok(Json(freeze(&f)))
}

/// The audit trail's filters and paging.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only entries about this task.
    pub task_uid: Option<String>,
    /// Only entries about this node.
    pub node_id: Option<u32>,
    /// Only entries by this user.
    pub user: Option<String>,
    /// Only entries of this kind (`task_created`, `lock_granted`, `refused`...).
    pub kind: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Only entries with a sequence number above this one (paging: the last page's
    /// `next_after_seq`).
    pub after_seq: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its sequence number.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: Option<String>,
    /// What happened: `task_created`, `lock_granted`, `refused`...
    pub kind: String,
    /// Who asked.
    pub user: String,
    /// Their role.
    pub role: String,
    /// From where.
    pub peer: String,
    /// The task it is about.
    pub task_uid: Option<String>,
    /// The nodes it is about.
    pub node_ids: Vec<u32>,
    /// In words.
    pub detail: String,
    /// The fencing token of a grant.
    pub fencing_token: Option<u64>,
    /// Whether it was forced (an admin's override).
    pub force: bool,
}

/// One page of the audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after_seq` for the next page.
    pub next_after_seq: u64,
}

/// The audit trail (ListAudit), filtered and paged.
#[utoipa::path(get, path = "/v1/audit", tag = "holds", params(AuditParams),
    responses(
        (status = 200, description = "One page of entries", body = AuditPage),
        (status = 400, description = "A malformed filter", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn audit(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Answer<AuditPage> {
    let call = Call::of("http ListAudit", peer, &headers);
    let Query(p) = params.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let req = ListAuditRequest {
        task_uid: p.task_uid.unwrap_or_default(),
        node_id: p.node_id.unwrap_or(0),
        user: p.user.unwrap_or_default(),
        kind: p.kind.unwrap_or_default(),
        since: p.since.map(|t| parse_time("since", &t)).transpose()?,
        until: p.until.map(|t| parse_time("until", &t)).transpose()?,
        after_seq: p.after_seq.unwrap_or(0),
        limit: p.limit.unwrap_or(0),
    };
    let r = api
        .arbiter
        .audit_page(&call.audit, &call.meta, req)
        .await
        .map_err(rest_error)?;
    Ok(Json(AuditPage {
        entries: r
            .entries
            .iter()
            .map(|e| AuditEntry {
                seq: e.seq,
                time: time(e.time.as_ref()),
                kind: e.kind.clone(),
                user: e.user.clone(),
                role: e.role.clone(),
                peer: e.peer.clone(),
                task_uid: nonempty(&e.task_uid),
                node_ids: e.node_ids.clone(),
                detail: e.detail.clone(),
                fencing_token: (e.fencing_token != 0).then_some(e.fencing_token),
                force: e.force,
            })
            .collect(),
        next_after_seq: r.next_after_seq,
    }))
}

/// `POST /v1/fences/validate`: is this fencing token still the live lock?
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateFence {
    /// The node.
    pub node_id: u32,
    /// A disk of the node (left out: the node itself).
    #[serde(default)]
    pub pdisk_id: Option<u32>,
    /// The token a grant carried.
    pub token: u64,
}

/// What became of a fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fence {
    /// It is the live lock on that node or disk now.
    Live,
    /// A later lock was granted there.
    Superseded,
    /// Its lock was completed or dropped.
    Released,
    /// Its lock lapsed at its deadline.
    Expired,
    /// Arbiter knows nothing of it.
    Unknown,
}

/// ValidateFence's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FenceAnswer {
    /// What became of the token.
    pub state: Fence,
    /// The task of its lock, when known.
    pub task_uid: Option<String>,
    /// The action of its lock, when known.
    pub action_id: Option<String>,
    /// A live lock's deadline (RFC 3339).
    pub deadline: Option<String>,
    /// When it ended (RFC 3339).
    pub ended: Option<String>,
    /// The token of the lock live there now, if any.
    pub live_token: Option<u64>,
    /// In words.
    pub detail: String,
}

/// Validates a fencing token (ValidateFence).
#[utoipa::path(post, path = "/v1/fences/validate", tag = "holds", request_body = ValidateFence,
    responses(
        (status = 200, description = "What became of the token", body = FenceAnswer),
        (status = 400, description = "A malformed request", body = ErrorSchema),
        (status = 401, description = "No or an unknown token (with --auth)", body = ErrorSchema),
        (status = 503, description = "Not the leader, or the writer stopped", body = ErrorSchema),
    ))]
pub async fn validate_fence(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer<FenceAnswer> {
    let call = Call::of("http ValidateFence", peer, &headers);
    let v: ValidateFence = body(&bytes)?;
    let req = ValidateFenceRequest {
        node_id: v.node_id,
        pdisk_id: v.pdisk_id.unwrap_or(0),
        token: v.token,
    };
    let r = api
        .arbiter
        .fence(&call.audit, &call.meta, req)
        .await
        .map_err(rest_error)?;
    Ok(Json(FenceAnswer {
        state: match FenceState::try_from(r.state) {
            Ok(FenceState::Live) => Fence::Live,
            Ok(FenceState::Superseded) => Fence::Superseded,
            Ok(FenceState::Released) => Fence::Released,
            Ok(FenceState::Expired) => Fence::Expired,
            _ => Fence::Unknown,
        },
        task_uid: nonempty(&r.task_uid),
        action_id: nonempty(&r.action_id),
        deadline: time(r.deadline.as_ref()),
        ended: time(r.ended.as_ref()),
        live_token: (r.live_token != 0).then_some(r.live_token),
        detail: r.detail,
    }))
}
