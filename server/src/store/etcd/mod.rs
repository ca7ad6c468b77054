//! The etcd backend: the state of a highly available arbiter, shared by every instance, and
//! written only by the leader. See [`layout`] for the keys.
//!
//! # Fencing
//! Every write is one etcd Txn guarded by the leader key's create revision being this leader's
//! epoch. A Txn that fails its guard means another instance leads now (or our lease expired):
//! the store is then deposed for good, and every later commit is refused without trying.
//! A commit also requires its log entry not to exist yet, so a Txn resent after a lost reply
//! can pass at most once; whether a commit whose reply was lost landed is decided by reading
//! the entry back (our nonce in it), never assumed.
//!
//! # Snapshots
//! Every [`SNAPSHOT_EVERY`] commits the store writes the whole state as a snapshot (in pieces),
//! points `snap/current` at it, and deletes the log entries and pieces it includes, so that the
//! log stays short and loading stays fast. It keeps its own copy of the state for that (applying
//! each committed batch), since the [`Store`] trait only sees changes.

pub mod layout;
pub mod replica;

use super::{Store, StoreError};
use crate::engine::{Change, Snapshot};
use arbiter_etcd::{CompareResult, Etcd};
use layout::{Keys, LogEntry, PARTS_PER_TXN, SnapCurrent};
use replica::{Replica, unavailable};
use std::sync::Mutex;

/// Commits between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 1000;

/// The leader's handle on the state in etcd.
pub struct EtcdStore {
    etcd: Etcd,
    keys: Keys,
    /// The leader key's create revision this leader won with.
    epoch: i64,
    runtime: tokio::runtime::Handle,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("keys", &self.keys)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    /// The state as committed, and the last log entry in it.
    replica: Replica,
    since_snapshot: u64,
    /// Set once a guard failed: nothing more is committed through this handle.
    deposed: Option<String>,
}

impl EtcdStore {
    /// The store of the leader that won `epoch`, starting from `replica` (read after winning,
    /// so that it holds every entry committed before). Its methods block on `runtime`: call
    /// them from a thread of its own (the writer's), never from inside the runtime.
    pub fn leading(
        etcd: Etcd,
        keys: Keys,
        epoch: i64,
        replica: Replica,
        runtime: tokio::runtime::Handle,
    ) -> EtcdStore {
        EtcdStore {
            etcd,
            keys,
            epoch,
            runtime,
            inner: Mutex::new(Inner {
                replica,
                since_snapshot: 0,
                deposed: None,
            }),
        }
    }

    /// The epoch this store is fenced by.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it cannot leave it half-written: every field is replaced whole.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The guard every write carries: the leader key is still the one we created.
    fn fence(&self) -> arbiter_etcd::Compare {
        arbiter_etcd::cmp_create_revision(self.keys.leader(), CompareResult::Equal, self.epoch)
    }

    /// Runs a Txn that only writes under the fence; false when the fence failed.
    async fn fenced(&self, ops: Vec<arbiter_etcd::RequestOp>) -> Result<bool, StoreError> {
        let txn = arbiter_etcd::TxnRequest {
            compare: vec![self.fence()],
            success: ops,
            failure: Vec::new(),
        };
        let r = self.etcd.txn(txn, true).await.map_err(unavailable)?;
        Ok(r.succeeded)
    }

    async fn commit_async(&self, inner: &mut Inner, changes: &[Change]) -> Result<(), StoreError> {
        let seq = inner.replica.seq + 1;
        let nonce = layout::nonce().map_err(StoreError::Backend)?;
        let bytes = layout::encode_changes(changes).map_err(StoreError::Backend)?;
        let entry = if bytes.len() <= layout::PART_BYTES {
            LogEntry {
                nonce: nonce.clone(),
                epoch: self.epoch,
                changes: Some(changes.to_vec()),
                parts: None,
            }
        } else {
            let parts = layout::split(&bytes);
            for (g, group) in parts.chunks(PARTS_PER_TXN).enumerate() {
                let ops = group
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let key = self.keys.part(&nonce, g * PARTS_PER_TXN + i);
                        arbiter_etcd::op_put(key, p.to_vec(), None)
                    })
                    .collect();
                if !self.fenced(ops).await? {
                    return Err(self.deposed(inner, "the leader key changed"));
                }
            }
            LogEntry {
                nonce: nonce.clone(),
                epoch: self.epoch,
                changes: None,
                parts: Some(layout::pieces(&bytes)),
            }
        };
        let value = serde_json::to_vec(&entry)
            .map_err(|e| StoreError::Backend(format!("cannot encode a log entry: {e}")))?;
        let key = self.keys.log_entry(seq);
        let txn = arbiter_etcd::TxnRequest {
            compare: vec![
                self.fence(),
                arbiter_etcd::cmp_version(key.clone(), CompareResult::Equal, 0),
            ],
            success: vec![arbiter_etcd::op_put(key.clone(), value, None)],
            failure: Vec::new(),
        };
        let landed = match self.etcd.txn(txn, true).await {
            Ok(r) if r.succeeded => true,
            // The guard failed, or an earlier copy of this Txn landed: the entry tells which.
            Ok(_) => self.is_ours(&key, &nonce).await?,
            Err(e) => {
                // Never a success until a read proves it.
                match self.is_ours(&key, &nonce).await {
                    Ok(true) => true,
                    Ok(false) => {
                        return Err(StoreError::Unavailable(format!(
                            "{e}; log entry {seq} was not committed"
                        )));
                    }
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "{e}; whether log entry {seq} was committed is unknown (the writer reloads)"
                        )));
                    }
                }
            }
        };
        if !landed {
            return Err(self.deposed(inner, "another instance leads now"));
        }
        for c in changes {
            inner.replica.snapshot.apply(c);
        }
        inner.replica.seq = seq;
        inner.since_snapshot += 1;
        if inner.since_snapshot >= SNAPSHOT_EVERY {
            match self.snapshot(inner).await {
                Ok(()) => inner.since_snapshot = 0,
                Err(e) => tracing::warn!(error = %e, "snapshot to etcd failed; retried later"),
            }
        }
        Ok(())
    }

    async fn is_ours(&self, key: &[u8], nonce: &str) -> Result<bool, StoreError> {
        let kv = self.etcd.get(key.to_vec()).await.map_err(unavailable)?;
        Ok(kv
            .and_then(|kv| serde_json::from_slice::<LogEntry>(&kv.value).ok())
            .is_some_and(|e| e.nonce == nonce))
    }

    fn deposed(&self, inner: &mut Inner, why: &str) -> StoreError {
        let text = format!("{why} (our epoch was {})", self.epoch);
        inner.deposed = Some(text.clone());
        StoreError::Deposed(text)
    }

    /// Writes the state as a snapshot and drops the log it includes.
    async fn snapshot(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let seq = inner.replica.seq;
        let bytes =
            layout::encode_snapshot(&inner.replica.snapshot).map_err(StoreError::Backend)?;
        let parts = layout::split(&bytes);
        for (g, group) in parts.chunks(PARTS_PER_TXN).enumerate() {
            let ops = group
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    arbiter_etcd::op_put(
                        self.keys.snap_part(seq, g * PARTS_PER_TXN + i),
                        p.to_vec(),
                        None,
                    )
                })
                .collect();
            if !self.fenced(ops).await? {
                return Err(self.deposed(inner, "the leader key changed"));
            }
        }
        let current = SnapCurrent {
            seq,
            parts: layout::pieces(&bytes),
        };
        let value = serde_json::to_vec(&current)
            .map_err(|e| StoreError::Backend(format!("cannot encode the snapshot record: {e}")))?;
        let old = self
            .etcd
            .get(self.keys.snap_current())
            .await
            .map_err(unavailable)?
            .and_then(|kv| serde_json::from_slice::<SnapCurrent>(&kv.value).ok());
        let mut ops = vec![
            arbiter_etcd::op_put(self.keys.snap_current(), value, None),
            delete_range(self.keys.log_entry(0), self.keys.log_entry(seq + 1)),
            arbiter_etcd::op_delete_prefix(self.keys.parts()),
        ];
        if let Some(old) = old
            && old.seq != seq
        {
            ops.push(arbiter_etcd::op_delete_prefix(
                self.keys.snap_parts(old.seq),
            ));
        }
        if !self.fenced(ops).await? {
            return Err(self.deposed(inner, "the leader key changed"));
        }
        tracing::info!(
            seq,
            bytes = bytes.len(),
            pieces = parts.len(),
            "snapshot written to etcd"
        );
        Ok(())
    }
}

/// Deletes the keys in [start, end).
fn delete_range(start: Vec<u8>, end: Vec<u8>) -> arbiter_etcd::RequestOp {
    use arbiter_etcd::pb::etcdserverpb::{DeleteRangeRequest, request_op};
    arbiter_etcd::RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: start,
                range_end: end,
                ..Default::default()
            },
        )),
    }
}

impl Store for EtcdStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut inner = self.lock();
        if let Some(why) = &inner.deposed {
            return Err(StoreError::Deposed(why.clone()));
        }
        let replica = self.runtime.block_on(async {
            let replica = Replica::read(&self.etcd, &self.keys).await?;
            let leader = self
                .etcd
                .get(self.keys.leader())
                .await
                .map_err(unavailable)?;
            match leader {
                Some(kv) if kv.create_revision == self.epoch => Ok(replica),
                _ => Err(StoreError::Deposed(format!(
                    "the leader key is no longer ours (our epoch was {})",
                    self.epoch
                ))),
            }
        });
        match replica {
            Ok(r) => {
                let snapshot = r.snapshot.clone();
                inner.replica = r;
                Ok(snapshot)
            }
            Err(e) => {
                if let StoreError::Deposed(why) = &e {
                    inner.deposed = Some(why.clone());
                }
                Err(e)
            }
        }
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        if let Some(why) = &inner.deposed {
            return Err(StoreError::Deposed(why.clone()));
        }
        self.runtime
            .block_on(self.commit_async(&mut inner, changes))
    }
}
