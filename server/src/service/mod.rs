//! The gRPC services: thin shells that decode a request, identify the caller, run one engine
//! command through the single writer, and encode the reply.
//!
//! - [`maintenance`]: `Ydb.Maintenance.V1.MaintenanceService`, the 7 calls ydbops makes.
//! - [`ydb_extras`]: the YDB calls ydbops makes besides maintenance (WhoAmI, ListDatabases,
//!   Login).
//! - [`arbiter_v1`]: Arbiter's own API (node state by hand).
//! - [`decode`], [`encode`]: wire <-> engine; [`envelope`]: YDB's Operation; [`error`]: the one
//!   mapping from refusals to status codes.
//! - [`audit`]: the log lines of refusals (identity, permissions, reloads) and of reloads.

pub mod arbiter_v1;
pub mod audit;
pub mod decode;
pub mod encode;
pub mod envelope;
pub mod error;
pub mod maintenance;
pub mod ydb_extras;

use crate::cluster::Membership;
use crate::cluster::instances::Registry;
use crate::engine::reload::Reloaded;
use crate::engine::{Outcome, State, Timestamp};
use crate::identity::Identity;
use crate::inventory_file::InventoryFile;
use crate::writer::Writer;
use audit::{Audit, Initiator};
use decode::RequestLimits;
use error::ServiceError;
use std::sync::Arc;

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

    /// Re-reads the inventory file and swaps it in; refused (nothing changed) when the file is
    /// invalid or a live lock would be stranded. Logs the outcome with who asked (`by`).
    pub async fn reload_inventory(
        &self,
        audit: Audit,
        by: Initiator<'_>,
    ) -> Result<Reloaded, ServiceError> {
        let result = self.load_and_swap().await;
        match &result {
            Ok(r) => audit.reloaded(by, r),
            Err(e) => audit.reload_refused(by, e),
        }
        result
    }

    async fn load_and_swap(&self) -> Result<Reloaded, ServiceError> {
        let file = self.inventory.clone();
        // Only the leader reloads (a follower relays the call): fail early, before reading.
        self.writer()?;
        let (cluster, digest) = tokio::task::spawn_blocking(move || file.load_with_digest())
            .await
            .map_err(|e| ServiceError::BadRequest(format!("reload failed: {e}")))?
            .map_err(|e| ServiceError::BadRequest(format!("inventory reload refused: {e}")))?;
        let nodes = cluster.node_count();
        let (r, _) = self
            .command(move |s, _| Ok(s.reload(Arc::new(cluster))?))
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
