//! Keeping the seal up to date without a flush per commit.
//!
//! The seal's record of commit N may be written only once commit N is durable (a seal ahead of
//! its store would refuse a good store as rolled back). Flushed after every commit, that is a
//! second `fdatasync` per batch, competing with the log's own for the disk; on a thread of its
//! own, also a thread to wake and to wait for per batch (measured: 30 µs a batch at one client,
//! 110-200 µs at 64 on 2 busy cores; see README, Performance).
//!
//! So [`Sealer::committed`] writes the record in place right after the batch is durable,
//! without a flush, and [`Sealer::settle`], after the batch's replies, flushes it only when the
//! last flush is [`SYNC_EVERY`] old; so does dropping the store. What that means for what the seal can tell:
//! - After a crash of the process (kill -9, a panic, the OOM killer) the kernel still writes out
//!   what was written: the seal holds the last durable commit (or the one before, if the
//!   process died between the log's flush and the seal's write). After a clean stop it is exact.
//! - After a power loss or a kernel crash, it may lack the records written since its last
//!   flush. Every commit that comes [`SYNC_EVERY`] or more after a flush flushes once its
//!   replies are out, so those are the commits of about [`SYNC_EVERY`] at most: the seal can
//!   say less than the store holds, never more.
//!
//! A store ahead of its seal is accepted at the next start (and the seal brought up to date);
//! the price is that an older copy of the store lacking only those last commits is not told
//! apart from the real one after a power loss. Refusing older copies is about a restored backup
//! or a copied directory, which is older by much more than that.

use super::seal::{Seal, SealFile, StoreId};
use std::time::{Duration, Instant};

/// How old the seal's last flush may be when a commit comes.
pub(super) const SYNC_EVERY: Duration = Duration::from_millis(100);

/// The seal file and when it was last flushed.
#[derive(Debug)]
pub(super) struct Sealer {
    file: SealFile,
    id: StoreId,
    synced: Instant,
}

impl Sealer {
    /// The seal in `file` (durable as it is), of store `id`.
    pub(super) fn new(file: SealFile, id: StoreId) -> Sealer {
        Sealer {
            file,
            id,
            synced: Instant::now(),
        }
    }

    /// Commit `seq` is durable: the seal records it, without a flush. A seal that cannot be
    /// written does not fail the commit, which is durable: the error is logged.
    pub(super) fn committed(&mut self, seq: u64) {
        if let Err(e) = self.file.put(Seal { id: self.id, seq }) {
            tracing::error!(
                seal = %self.file.path().display(),
                error = %e,
                commit = seq,
                "cannot record the commit in the store's seal; the commit itself is durable"
            );
        }
    }

    /// Flushes what was written if the last flush is [`SYNC_EVERY`] old (after a commit's
    /// replies went out, so that none waits for it).
    pub(super) fn settle(&mut self) {
        if self.synced.elapsed() >= SYNC_EVERY {
            self.sync();
        }
    }

    /// Flushes what was written (and a clean stop). Errors are logged: the commits are durable.
    pub(super) fn sync(&mut self) {
        self.synced = Instant::now();
        if let Err(e) = self.file.sync() {
            tracing::error!(
                seal = %self.file.path().display(),
                error = %e,
                "cannot flush the store's seal; the commits themselves are durable"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::seal::{self, Found};
    use super::*;

    fn id() -> StoreId {
        StoreId([3; 16])
    }

    fn read_seq(path: &std::path::Path) -> u64 {
        match seal::read(path).expect("read") {
            Found::Present(s) => s.seq,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_seal_holds_each_commit_as_it_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.id");
        let file = SealFile::create(&path, Seal { id: id(), seq: 0 }).expect("create");
        let mut sealer = Sealer::new(file, id());
        for seq in 1..=50 {
            sealer.committed(seq);
            assert_eq!(read_seq(&path), seq);
            sealer.settle();
        }
        sealer.sync();
        assert_eq!(read_seq(&path), 50);
    }
}
