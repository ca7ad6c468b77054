//! The registry of live instances, as Apache Kylin keeps one: each instance puts a record under
//! `<prefix>/instances/<id>` on its own lease and renews it with the lease, so a dead instance's
//! record disappears within a lease TTL. ListInstances reads them.

use super::Role;
use serde::{Deserialize, Serialize};

/// What one instance says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Its `--instance-id`.
    pub id: String,
    /// Its `--advertise` address.
    pub address: String,
    /// "leader", "follower" or "starting".
    pub role: String,
    /// The epoch of the leader it knows (0: none).
    pub leader_epoch: i64,
    /// When it last renewed this record (ms since the Unix epoch).
    pub renewed_ms: u64,
    /// When it started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Its version.
    pub version: String,
}

impl InstanceRecord {
    /// The record for this instance now.
    pub fn of(id: &str, address: &str, role: &Role, started_ms: u64) -> InstanceRecord {
        let leader_epoch = match role {
            Role::Leader { epoch, .. } => *epoch,
            Role::Follower { leader: Some(p) } => p.epoch,
            _ => 0,
        };
        InstanceRecord {
            id: id.to_owned(),
            address: address.to_owned(),
            role: role.name().to_owned(),
            leader_epoch,
            renewed_ms: now_ms(),
            started_ms,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Milliseconds since the Unix epoch, by the wall clock (for display only).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads the registry.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The etcd client.
    pub etcd: arbiter_etcd::Etcd,
    /// The keys under `--etcd-prefix`.
    pub keys: crate::store::etcd::layout::Keys,
}

impl Registry {
    /// Every registered instance, ascending by id.
    pub async fn list(&self) -> Result<Vec<InstanceRecord>, String> {
        let (kvs, _) = self
            .etcd
            .range_prefix(self.keys.instances(), 0)
            .await
            .map_err(|e| format!("cannot read the instance registry from etcd: {e}"))?;
        let mut out: Vec<InstanceRecord> = kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Records the inventory the cluster decides on, fenced by the leader's `epoch`.
    pub async fn record_inventory(
        &self,
        epoch: i64,
        digest: &str,
        nodes: usize,
        by: &str,
    ) -> Result<(), String> {
        let record = crate::app::ha::InventoryRecord {
            digest: digest.to_owned(),
            nodes,
            by: by.to_owned(),
            at_ms: now_ms(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let txn = arbiter_etcd::TxnRequest {
            compare: vec![arbiter_etcd::cmp_create_revision(
                self.keys.leader(),
                arbiter_etcd::CompareResult::Equal,
                epoch,
            )],
            success: vec![arbiter_etcd::op_put(self.keys.inventory(), value, None)],
            failure: Vec::new(),
        };
        let r = self
            .etcd
            .txn(txn, true)
            .await
            .map_err(|e| format!("the inventory was reloaded but not recorded in etcd: {e}"))?;
        if r.succeeded {
            Ok(())
        } else {
            Err(String::from(
                "the inventory was reloaded but this instance lost the lead before recording it",
            ))
        }
    }
}
