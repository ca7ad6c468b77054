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
//! before it returns, or before [`Store::commit_then`] says so), because the caller replies to
//! clients right after it.
//!
//! # A store never lies about what it holds
//! A backend must also refuse to come up on data that is not what it last committed: a damaged
//! file, a store that went missing or empty, another store put in its place, or an older copy.
//! Each of these would otherwise start as if nothing had happened, forgetting live locks or
//! handing out fencing tokens again. Such a refusal is [`StoreError::Untrusted`]; how a backend
//! tells (the redb backend keeps a small seal beside its file, see [`RedbStore`]) is its own
//! business, so the [`Store`] trait stays narrow.

mod contain;
pub mod etcd;
mod memory;
mod redb_store;
mod seal;
mod sealer;
pub mod suite;
mod wal;

pub use memory::MemoryStore;
pub use redb_store::{Recovery, RedbStore, SEAL_FILE, STORE_FILE};
pub use wal::WAL_FILE;

use crate::engine::{Change, Snapshot};
use std::path::PathBuf;

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
    /// This instance is no longer the leader: another one holds the leader key, or ours is
    /// gone. Nothing was committed, and nothing more will be from this handle.
    #[error("deposed: {0}")]
    Deposed(String),
    /// The store could not be reached (every endpoint failed); retryable. For a commit, the
    /// outcome is unknown unless the text says otherwise: it is never reported as a success.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data on disk is not what this store last committed; starting on it would forget or
    /// roll back decisions that were already answered.
    #[error("{}: {problem}", path.display())]
    Untrusted {
        /// The file (or other resource) at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: Distrust,
        /// What the operator can do about it, in the backend's terms (its files).
        remedy: String,
    },
}

/// Why a store refuses the data it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// The data cannot be read as a store (or not completely).
    Damaged(String),
    /// The store is gone, although this place held one.
    Missing,
    /// The store is empty (truncated), although this place held one with commits.
    Empty,
    /// A different store (another identity, or one from before identities) is in its place.
    Replaced {
        /// The identity this place last committed to.
        expected: String,
        /// The identity found (`None`: the store has none).
        found: Option<String>,
    },
    /// An older copy of the store is in its place: it lacks commits that were answered.
    RolledBack {
        /// The last commit the store holds.
        found: u64,
        /// The last commit this place is known to have made durable.
        expected: u64,
    },
    /// The record that says what this place last committed is itself unreadable.
    SealDamaged(String),
}

impl Distrust {
    /// Whether accepting the loss keeps the store (only its record of itself was bad) rather
    /// than starting empty.
    pub fn keeps_the_store(&self) -> bool {
        matches!(self, Distrust::SealDamaged(_))
    }
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distrust::Damaged(why) => write!(f, "the store is damaged ({why})"),
            Distrust::Missing => f.write_str(
                "the store is missing, but this data directory held one (its seal is still there)",
            ),
            Distrust::Empty => f.write_str(
                "the store is empty (truncated to 0 bytes), but this data directory held one \
                 (its seal is still there)",
            ),
            Distrust::Replaced { expected, found } => write!(
                f,
                "the store was replaced: it is store {}, but this data directory last committed \
                 to store {expected}",
                found.as_deref().unwrap_or("<without an identity>")
            ),
            Distrust::RolledBack { found, expected } => write!(
                f,
                "the store was rolled back: it holds commits up to #{found}, but this data \
                 directory had made commit #{expected} durable (an older copy?)"
            ),
            Distrust::SealDamaged(why) => write!(f, "the store's seal is damaged ({why})"),
        }
    }
}

/// A persistent home for the engine's records.
pub trait Store: Send + Sync {
    /// Everything stored, as one snapshot.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies a batch of changes atomically and durably, in order.
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;

    /// [`Store::commit`], telling `durable` its outcome as soon as the batch is durable (or
    /// refused), before the work a backend may still do on it (the redb backend applies a
    /// durable batch to its file then, while the replies go out). `durable` is called exactly
    /// once, and must not call back into the store; the call returns when that work is done
    /// too, so the next batch never overtakes it.
    fn commit_then(&self, changes: &[Change], durable: &mut dyn FnMut(Result<(), StoreError>)) {
        durable(self.commit(changes));
    }
}
