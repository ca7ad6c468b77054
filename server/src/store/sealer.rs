//! Keeping the seal up to date off the commit path.
//!
//! The seal's record of commit N may be written only once commit N is durable (a seal ahead of
//! its store would refuse a good store as rolled back). Written in line, that is a second
//! `fdatasync` after every store commit, which the reply waits for. Instead, [`Sealer`] hands
//! each durable commit number to a thread of its own, which writes the newest number it was
//! given while the next batch is committed. Before it returns, the commit of batch N+1 waits
//! until the seal holds at least N, which it nearly always does by then: a small in-place write
//! is faster than a store commit.
//!
//! So the seal is never ahead of the store, and after a crash normally one or two commits behind
//! it: one whose record was being written when the process died, and one that was durable but
//! had not returned. (The thread writes the newest number it was given and may skip some; if
//! the crash also tore the seal's own write, its other slot may hold an older number. Either way
//! the seal only says less, never more, than the store holds.) A store ahead of its seal is
//! accepted at the next start, and the seal brought up to date; the price is that an older copy
//! of the store that lacks only those last commits before a crash is not told apart from the
//! real one. After a clean stop (the store dropped) the seal holds the last commit exactly.

use super::seal::{Seal, SealFile, StoreId};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// The numbers the thread and the committer share.
#[derive(Debug, Default)]
struct Progress {
    /// The newest commit known durable.
    posted: u64,
    /// The newest commit the seal holds (or whose write failed and was logged).
    written: u64,
    /// The store is being dropped: write what is posted, then end.
    stop: bool,
    /// The thread has ended (after `stop`, or by a panic): nobody is to wait for it.
    ended: bool,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Progress>) -> MutexGuard<'a, Progress> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The seal file, written by a thread of its own.
#[derive(Debug)]
pub(super) struct Sealer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Sealer {
    /// Starts the thread for `file`, which holds commit `seq` of store `id`.
    pub(super) fn start(file: SealFile, id: StoreId, seq: u64) -> std::io::Result<Sealer> {
        let shared = Arc::new(Shared::default());
        {
            let mut p = shared.lock();
            p.posted = seq;
            p.written = seq;
        }
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("arbiter-seal".into())
            .spawn(move || run(file, id, &theirs))?;
        Ok(Sealer {
            shared,
            thread: Some(thread),
        })
    }

    /// Commit `seq` is durable: the seal is to record it. Returns once the seal holds at least
    /// the commit before it.
    pub(super) fn committed(&self, seq: u64) {
        let mut p = self.shared.lock();
        if seq > p.posted {
            p.posted = seq;
            self.shared.changed.notify_all();
        }
        while p.written.saturating_add(1) < seq && !p.ended {
            p = self.shared.wait(p);
        }
    }

    /// Waits until the seal holds every commit posted so far.
    #[cfg(test)]
    pub(super) fn flush(&self) {
        let mut p = self.shared.lock();
        while p.written < p.posted && !p.ended {
            p = self.shared.wait(p);
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only writes and logs; if it panicked there is nothing left to do.
            let _ = thread.join();
        }
    }
}

/// Marks the thread ended when it returns or unwinds, so that no commit waits for it.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.lock().ended = true;
        self.0.changed.notify_all();
    }
}

fn run(mut file: SealFile, id: StoreId, shared: &Shared) {
    let _ended = Ended(shared);
    let path: PathBuf = file.path().to_owned();
    let mut p = shared.lock();
    loop {
        if p.written < p.posted {
            let seq = p.posted;
            drop(p);
            if let Err(e) = file.write(Seal { id, seq }) {
                tracing::error!(
                    seal = %path.display(),
                    error = %e,
                    commit = seq,
                    "cannot record the commit in the store's seal; the commit itself is durable"
                );
            }
            p = shared.lock();
            p.written = seq;
            shared.changed.notify_all();
        } else if p.stop {
            return;
        } else {
            p = shared.wait(p);
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
    fn the_seal_follows_the_commits_and_is_exact_after_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.id");
        let file = SealFile::create(&path, Seal { id: id(), seq: 0 }).expect("create");
        let sealer = Sealer::start(file, id(), 0).expect("start");
        for seq in 1..=50 {
            sealer.committed(seq);
            // Never ahead of what was committed, never more than one behind on return.
            let on_disk = read_seq(&path);
            assert!(
                on_disk + 1 >= seq && on_disk <= seq,
                "{on_disk} after {seq}"
            );
        }
        sealer.flush();
        assert_eq!(read_seq(&path), 50);
        sealer.committed(51);
        drop(sealer);
        assert_eq!(read_seq(&path), 51);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_seal_that_cannot_be_written_does_not_stop_the_commits() {
        // Every write to /dev/full fails (ENOSPC): each is logged, and no commit waits forever.
        let file = SealFile::open(std::path::Path::new("/dev/full"), Seal { id: id(), seq: 0 })
            .expect("open /dev/full");
        let sealer = Sealer::start(file, id(), 0).expect("start");
        for seq in 1..=5 {
            sealer.committed(seq);
        }
        sealer.flush();
        let p = sealer.shared.lock();
        assert_eq!((p.posted, p.written), (5, 5));
    }
}
