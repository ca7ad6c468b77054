//! Persistence: a narrow trait over what the engine's [`Change`] records need, its backends, and
//! one conformance suite that every backend must pass.
//!
//! # What we persist and why
//! The store holds results, not commands: every task (with its actions, their deadlines, fencing
//! tokens and pending reasons), what is known of each node beyond the inventory (down, came up
//! at), and the counters (last fencing token, last action id). Loading them and calling
//! [`crate::engine::State::restore`] rebuilds the exact state, whatever the clock says.
//!
//! A backend must make [`Store::commit`] atomic (all of a batch or none) and durable (on disk
//! before it returns), because the caller replies to clients right after it.

mod memory;
mod redb_store;
pub mod suite;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use crate::engine::{Change, Snapshot};

/// Why the store failed. Every variant is terminal for the request that hit it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a full disk, a lock held by another process...).
    #[error("store backend: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt record '{key}': {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// A persistent home for the engine's records.
pub trait Store: Send + Sync {
    /// Everything stored, as one snapshot.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies a batch of changes atomically and durably, in order.
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;
}
