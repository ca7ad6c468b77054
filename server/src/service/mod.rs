//! The gRPC services: thin shells that decode a request, identify the caller, run one engine
//! command through the single writer, and encode the reply.
//!
//! - [`maintenance`]: `Ydb.Maintenance.V1.MaintenanceService`, the 7 calls ydbops makes.
//! - [`ydb_extras`]: the YDB calls ydbops makes besides maintenance (WhoAmI, ListDatabases,
//!   Login).
//! - [`arbiter_v1`]: Arbiter's own API (node state by hand).
//! - [`decode`], [`encode`]: wire <-> engine; [`envelope`]: YDB's Operation; [`error`]: the one
//!   mapping from refusals to status codes.
//! - [`audit_trail`] answers `arbiter.v1.ListAudit`.
//! - [`freeze`]: `arbiter.v1` SetFreeze, ListFreezes and SetReadOnly.
//! - [`plan`]: `arbiter.v1.PlanRollout`, a rolling restart simulated on a copy of the state.
//! - [`audit`]: the log lines of refusals (identity, permissions, reloads) and of reloads, and
//!   who made an audit-trail entry ([`Context::audited`], [`Context::refused`]).

pub mod agents;
pub mod arbiter_v1;
pub mod audit;
pub mod audit_trail;
pub mod decode;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod freeze;
pub mod maintenance;
pub mod plan;
pub mod ydb_extras;

use crate::cluster::Membership;
use crate::cluster::instances::Registry;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::reload::Reloaded;
use crate::engine::{Outcome, State, Timestamp};
use crate::identity::Identity;
use crate::inventory_file::InventoryFile;
use crate::writer::Writer;
use audit::{Audit, Initiator};
use decode::RequestLimits;
use error::ServiceError;
use std::sync::Arc;
use tonic::metadata::MetadataMap;

/// `text`, cut to at most `max` bytes at a character boundary.
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What every service shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// This instance's role, and the single writer that owns the engine while it leads.
    pub membership: Membership,
    /// The instances serving this cluster (high availability on etcd only).
    pub registry: Option<Registry>,
    /// Callers and their roles.
    pub identity: Arc<Identity>,
    /// Request limits beyond the engine's.
    pub limits: RequestLimits,
    /// The inventory file, for reloads.
    pub inventory: Arc<InventoryFile>,
    /// Turns true when the server starts shutting down; open streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Context {
    /// Runs one engine command; answers with its value and the `now` it ran at, once its
    /// changes are durable.
    pub async fn command<T, F>(&self, f: F) -> Result<(T, Timestamp), ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, Timestamp) -> Result<Outcome<T>, ServiceError> + Send + 'static,
    {
        self.writer()?
            .apply(move |state, now| match f(state, now) {
                Ok(o) => (Ok((o.value, now)), o.changes),
                Err(e) => (Err(e), Vec::new()),
            })
            .await?
    }

    /// Runs one engine command that also returns its audit-trail entries; the entries are
    /// appended in the same job, so they are committed with the change they record (and not
    /// at all when it is refused).
    pub async fn audited<T, F>(&self, f: F) -> Result<(T, Timestamp), ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, Timestamp) -> Result<(Outcome<T>, Vec<AuditEntry>), ServiceError>
            + Send
            + 'static,
    {
        self.writer()?
            .apply(move |state, now| match f(state, now) {
                Ok((mut o, entries)) => {
                    for e in entries {
                        o.changes.push(state.audit_record(e, now));
                    }
                    (Ok((o.value, now)), o.changes)
                }
                Err(e) => (Err(e), Vec::new()),
            })
            .await?
    }

    /// Records a refused mutating call in the audit trail (within the refusal bound), with who
    /// made it as far as the ticket tells; `task` and `nodes` are what it named, if anything. Refusals of the
    /// writer itself (overloaded, stopped, a failed commit) and of a non-leader are not recorded:
    /// nothing was decided. Does not wait for the entry's commit.
    pub fn refused(
        &self,
        audit: &Audit,
        meta: &MetadataMap,
        task: &str,
        nodes: &[crate::engine::NodeId],
        e: &ServiceError,
    ) {
        if let Some(reason) = crate::metrics::refusal_reason(e) {
            crate::metrics::global().refused(reason);
        }
        if matches!(
            e,
            ServiceError::Writer(_) | ServiceError::NotLeader(_) | ServiceError::Overloaded(_)
        ) {
            return;
        }
        let caller = self.identity.resolve(meta).ok();
        let entry = AuditEntry {
            task: bounded(task, crate::engine::state::MAX_ID_LEN),
            nodes: nodes.to_vec(),
            detail: format!("{}: {e}", audit.call),
            ..audit.entry(AuditKind::Refused, caller.as_ref())
        };
        self.record_refusal(entry);
    }

    /// Records a refusal entry (a refused call, a failed login) within the refusal bound,
    /// without waiting for its commit: the job is queued now, so a later call sees it.
    pub fn record_refusal(&self, entry: AuditEntry) {
        if let Ok(writer) = self.writer() {
            // Queued on call; the reply (committed or not) has no one to go to.
            drop(writer.apply(move |s, now| ((), s.audit_refusal(entry, now))));
        }
    }

    /// Re-reads the inventory file and swaps it in; refused (nothing changed) when the file is
    /// invalid or a live lock would be stranded. Logs the outcome with who asked (`by`).
    pub async fn reload_inventory(
        &self,
        audit: Audit,
        by: Initiator<'_>,
    ) -> Result<Reloaded, ServiceError> {
        let entry = audit.entry_by(AuditKind::InventoryReloaded, by);
        let result = self.load_and_swap(entry.clone()).await;
        match &result {
            Ok(r) => audit.reloaded(by, r),
            Err(e) => {
                audit.reload_refused(by, e);
                if !matches!(e, ServiceError::Writer(_) | ServiceError::NotLeader(_)) {
                    self.record_refusal(AuditEntry {
                        kind: AuditKind::Refused,
                        detail: format!("{}: {e}", audit.call),
                        ..entry
                    });
                }
            }
        }
        result
    }

    async fn load_and_swap(&self, entry: AuditEntry) -> Result<Reloaded, ServiceError> {
        let file = self.inventory.clone();
        // Only the leader reloads (a follower relays the call): fail early, before reading.
        self.writer()?;
        let (cluster, digest) = tokio::task::spawn_blocking(move || file.load_with_digest())
            .await
            .map_err(|e| ServiceError::BadRequest(format!("reload failed: {e}")))?
            .map_err(|e| ServiceError::BadRequest(format!("inventory reload refused: {e}")))?;
        let nodes = cluster.node_count();
        let (r, _) = self
            .audited(move |s, _| {
                let o = s.reload(Arc::new(cluster))?;
                let r = &o.value;
                let detail = format!(
                    "{} -> {}, {} -> {}",
                    audit::count(r.nodes.0, "node"),
                    audit::count(r.nodes.1, "node"),
                    audit::count(r.groups.0, "storage group"),
                    audit::count(r.groups.1, "storage group"),
                );
                Ok((o, vec![AuditEntry { detail, ..entry }]))
            })
            .await?;
        if let Some(registry) = &self.registry
            && let crate::cluster::Role::Leader { epoch, .. } = self.membership.role()
        {
            // Every instance must decide on this inventory from now on: an instance whose file
            // differs refuses to lead.
            registry
                .record_inventory(epoch, &digest, nodes, &self.membership.me().id)
                .await
                .map_err(|e| ServiceError::Writer(crate::writer::WriterError::Store(e)))?;
        }
        Ok(r)
    }

    /// The writer, while this instance leads.
    pub fn writer(&self) -> Result<Writer, ServiceError> {
        Ok(self.membership.writer()?)
    }

    /// Runs a query; it sees every change answered before it.
    pub async fn query<T, F>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&State, Timestamp) -> Result<T, ServiceError> + Send + 'static,
    {
        self.writer()?.read(f).await?
    }
}
