//! The embedded backend: one redb file in the data directory. redb commits durably (fsync) by
//! default and a write transaction is atomic, which is exactly the [`Store`] contract.

use super::{Store, StoreError};
use crate::engine::record::{Counters, NodeRuntime};
use crate::engine::task::Task;
use crate::engine::{Change, Snapshot};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");
const NODES: TableDefinition<'_, u32, &[u8]> = TableDefinition::new("nodes");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const COUNTERS_KEY: &str = "counters";

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A redb database file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        // Create the tables so that a fresh file loads as empty.
        let tx = db.begin_write().map_err(backend)?;
        {
            tx.open_table(TASKS).map_err(backend)?;
            tx.open_table(NODES).map_err(backend)?;
            tx.open_table(META).map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(backend)
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let mut snap = Snapshot::default();
        let tasks = tx.open_table(TASKS).map_err(backend)?;
        for row in tasks.iter().map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let task: Task = decode(k.value(), v.value())?;
            snap.tasks.insert(k.value().to_owned(), task);
        }
        let nodes = tx.open_table(NODES).map_err(backend)?;
        for row in nodes.iter().map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let rt: NodeRuntime = decode(&format!("node {}", k.value()), v.value())?;
            snap.nodes.insert(k.value(), rt);
        }
        let meta = tx.open_table(META).map_err(backend)?;
        if let Some(v) = meta.get(COUNTERS_KEY).map_err(backend)? {
            snap.counters = decode::<Counters>(COUNTERS_KEY, v.value())?;
        }
        Ok(snap)
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut tasks = tx.open_table(TASKS).map_err(backend)?;
            let mut nodes = tx.open_table(NODES).map_err(backend)?;
            let mut meta = tx.open_table(META).map_err(backend)?;
            for c in changes {
                match c {
                    Change::PutTask(t) => {
                        tasks
                            .insert(t.uid.as_str(), encode(t)?.as_slice())
                            .map_err(backend)?;
                    }
                    Change::DeleteTask(uid) => {
                        tasks.remove(uid.as_str()).map_err(backend)?;
                    }
                    Change::PutNode(id, rt) => {
                        nodes.insert(*id, encode(rt)?.as_slice()).map_err(backend)?;
                    }
                    Change::DeleteNode(id) => {
                        nodes.remove(*id).map_err(backend)?;
                    }
                    Change::PutCounters(counters) => {
                        meta.insert(COUNTERS_KEY, encode(counters)?.as_slice())
                            .map_err(backend)?;
                    }
                }
            }
        }
        // An error before this point drops the transaction: nothing of the batch is applied.
        tx.commit().map_err(backend)
    }
}
