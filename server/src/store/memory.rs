//! A store in memory: for tests, and the model the conformance suite compares backends with.

use super::{Store, StoreError};
use crate::engine::{Change, Snapshot};
use std::sync::Mutex;

/// Keeps the snapshot in memory; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    snapshot: Mutex<Snapshot>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let guard = self
            .snapshot
            .lock()
            .map_err(|_| StoreError::Backend("poisoned lock".into()))?;
        Ok(guard.clone())
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut guard = self
            .snapshot
            .lock()
            .map_err(|_| StoreError::Backend("poisoned lock".into()))?;
        for c in changes {
            guard.apply(c);
        }
        Ok(())
    }
}
