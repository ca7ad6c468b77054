//! Reading the state back from etcd: a whole read at one revision, and catching up with the
//! log entries committed since. The leader loads with it; followers keep a warm copy with it,
//! so that taking over needs only the entries since their last catch-up.

use super::layout::{self, Keys, LogEntry, SnapCurrent};
use crate::engine::{Change, Snapshot};
use crate::store::StoreError;
use arbiter_etcd::Etcd;
use std::collections::BTreeMap;

/// A copy of the state as etcd holds it, with where it stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    /// The state: the snapshot with every log entry after it applied.
    pub snapshot: Snapshot,
    /// The last log entry applied (0: none yet).
    pub seq: u64,
    /// The etcd revision it was read at.
    pub revision: i64,
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

/// Maps the client's error to the store's.
pub(crate) fn unavailable(e: arbiter_etcd::EtcdError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Replica {
    /// Reads everything under the prefix at one revision.
    pub async fn read(etcd: &Etcd, keys: &Keys) -> Result<Replica, StoreError> {
        let (kvs, revision) = etcd
            .range_prefix(keys.all(), 0)
            .await
            .map_err(unavailable)?;
        let map: BTreeMap<Vec<u8>, Vec<u8>> =
            kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        let mut replica = Replica {
            revision,
            ..Replica::default()
        };
        if let Some(v) = map.get(&keys.snap_current()) {
            let current: SnapCurrent = serde_json::from_slice(v)
                .map_err(|e| corrupt(&keys.snap_current(), e.to_string()))?;
            let prefix = keys.snap_parts(current.seq);
            let parts: Vec<Vec<u8>> = map
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect();
            let bytes = layout::join(
                &format!("the snapshot at log entry {}", current.seq),
                &current.parts,
                &parts,
            )
            .map_err(|e| corrupt(&keys.snap_current(), e))?;
            replica.snapshot = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(&keys.snap_current(), e.to_string()))?;
            replica.seq = current.seq;
        }
        let log = keys.log();
        let entries: Vec<(u64, &Vec<u8>, &Vec<u8>)> = map
            .range(log.clone()..)
            .take_while(|(k, _)| k.starts_with(&log))
            .filter_map(|(k, v)| keys.log_seq(k).map(|s| (s, k, v)))
            .filter(|(s, _, _)| *s > replica.seq)
            .collect();
        for (seq, key, value) in entries {
            let changes = decode_entry(keys, key, value, |k| Ok(map.get(k).cloned()))?;
            replica.apply(seq, key, &changes)?;
        }
        Ok(replica)
    }

    /// Applies the log entries committed since [`Replica::seq`]; reads everything again when a
    /// snapshot has made the entries it needs disappear. Answers whether anything changed.
    pub async fn catch_up(&mut self, etcd: &Etcd, keys: &Keys) -> Result<bool, StoreError> {
        let (kvs, revision) = log_since(etcd, keys, self.seq + 1).await?;
        let first = kvs.first().and_then(|kv| keys.log_seq(&kv.key));
        let gap = match first {
            Some(s) => s != self.seq + 1,
            // Nothing new, unless a snapshot moved past us and deleted what we missed.
            None => match etcd.get(keys.snap_current()).await.map_err(unavailable)? {
                Some(kv) => serde_json::from_slice::<SnapCurrent>(&kv.value)
                    .map(|c| c.seq > self.seq)
                    .unwrap_or(true),
                None => false,
            },
        };
        if gap {
            let fresh = Replica::read(etcd, keys).await?;
            let changed = fresh.seq != self.seq || fresh.snapshot != self.snapshot;
            *self = fresh;
            return Ok(changed);
        }
        let mut changed = false;
        for kv in &kvs {
            let Some(seq) = keys.log_seq(&kv.key) else {
                continue;
            };
            let mut fetched = BTreeMap::new();
            if let Ok(entry) = serde_json::from_slice::<LogEntry>(&kv.value)
                && let Some(p) = &entry.parts
            {
                for i in 0..p.count {
                    let key = keys.part(&entry.nonce, i);
                    if let Some(part) = etcd.get(key.clone()).await.map_err(unavailable)? {
                        fetched.insert(key, part.value);
                    }
                }
            }
            let changes = decode_entry(keys, &kv.key, &kv.value, |k| Ok(fetched.get(k).cloned()))?;
            self.apply(seq, &kv.key, &changes)?;
            changed = true;
        }
        self.revision = self.revision.max(revision);
        Ok(changed)
    }

    fn apply(&mut self, seq: u64, key: &[u8], changes: &[Change]) -> Result<(), StoreError> {
        if seq != self.seq + 1 {
            return Err(corrupt(
                key,
                format!(
                    "the log jumps from entry {} to {seq}: entries are missing",
                    self.seq
                ),
            ));
        }
        for c in changes {
            self.snapshot.apply(c);
        }
        self.seq = seq;
        Ok(())
    }
}

/// The log entries from `first` on, at one revision, in pages (entries can be large), and
/// that revision.
async fn log_since(
    etcd: &Etcd,
    keys: &Keys,
    first: u64,
) -> Result<(Vec<arbiter_etcd::KeyValue>, i64), StoreError> {
    const PAGE: i64 = 16;
    etcd.range_paged(
        keys.log_entry(first),
        arbiter_etcd::prefix_end(&keys.log()),
        0,
        PAGE,
    )
    .await
    .map_err(unavailable)
}

/// The changes of one log entry, its pieces fetched through `part`.
pub(crate) fn decode_entry(
    keys: &Keys,
    key: &[u8],
    value: &[u8],
    part: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<Vec<Change>, StoreError> {
    let entry: LogEntry = serde_json::from_slice(value).map_err(|e| corrupt(key, e.to_string()))?;
    match (entry.changes, entry.parts) {
        (Some(changes), None) => Ok(changes),
        (None, Some(pieces)) => {
            let mut parts = Vec::with_capacity(pieces.count);
            for i in 0..pieces.count {
                if let Some(p) = part(&keys.part(&entry.nonce, i))? {
                    parts.push(p);
                }
            }
            let bytes =
                layout::join("a log entry", &pieces, &parts).map_err(|e| corrupt(key, e))?;
            serde_json::from_slice(&bytes).map_err(|e| corrupt(key, e.to_string()))
        }
        _ => Err(corrupt(
            key,
            "a log entry holds either its changes or its pieces",
        )),
    }
}
