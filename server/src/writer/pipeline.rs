//! The commit stage of the writer's pipeline: one thread that commits the batches the writer
//! hands it, in order, and only then runs what each batch does after its commit (replies,
//! publications to watchers and agents, logs).
//!
//! While batch N is being committed (and fsynced), the writer already runs batch N+1 on the
//! engine, over a state that includes N's changes. Nothing of N+1 is told to anyone before
//! N+1's own commit, which comes after N's: so no reply or publication reports a change before
//! it is durable, and they go out in commit order.
//!
//! If a commit fails, every later batch of the same generation (computed over the failed
//! batch's changes) is refused without touching the store, and the writer rebuilds its state
//! from the store before its next batch, starting a new generation ([`Pipeline::failed`]).
//!
//! A quiet batch (one request at most, and no other queued behind it) is committed on the
//! writer thread itself when the commit thread is idle: handing it over would
//! only add a wake-up of a sleeping thread to its reply's path (tens of microseconds on a VM),
//! and there is no next batch to overlap. A request that arrives meanwhile waits for that commit
//! instead of running on the engine during it; its own commit would have waited anyway.

use super::WriterError;
use crate::engine::Change;
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

/// What a batch does once its commit returned (with the commit's result).
pub(super) type Finish = Box<dyn FnOnce(Result<(), WriterError>) + Send>;

/// One batch on its way to the store.
pub(super) struct Batch {
    /// The writer's generation when it ran the batch.
    pub(super) generation: u64,
    /// What to commit; empty: nothing (the batch still waits for the ones before it).
    pub(super) changes: Vec<Change>,
    /// Replies, publications, logs.
    pub(super) finish: Finish,
}

// The queue to the commit thread is a rendezvous: the writer hands over batch N+1 only when the
// commit thread takes it, after N's commit. So the writer runs at most one batch ahead of the
// disk, and jobs that arrive meanwhile gather into the batch after it: group commit as before,
// with the engine's work on one batch overlapping the other's fsync. (A queue that let the
// writer run further ahead made batches smaller and cost more CPU per decision than it saved,
// measured on the 2-core bench machine: see README, Performance.)

/// No generation has failed.
const NONE: u64 = u64::MAX;

/// What the commit thread and the writer thread share.
struct Shared {
    store: Arc<dyn Store>,
    /// The generation whose commit failed last (`NONE`: none); its later batches are refused.
    failed: AtomicU64,
    /// The batches the commit thread has finished (committed and answered, or refused).
    done: AtomicU64,
    /// Commits on either thread never overlap (a batch is committed on the writer thread only
    /// when the commit thread is idle); this lock only makes the failure record shareable.
    poisoned: Mutex<Option<u64>>,
}

impl Shared {
    fn poisoned(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.poisoned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits one batch (unless it was run over a failed one) and finishes it as soon as the
    /// store says it is durable (or refused), before the store's own work after that.
    fn commit_one(&self, batch: Batch) {
        let generation = batch.generation;
        let refused = *self.poisoned() == Some(generation);
        let mut finish = Some(batch.finish);
        // Finishes the batch once; the first failure of a generation poisons it.
        let mut outcome = |result: Result<(), WriterError>| {
            let Some(finish) = finish.take() else {
                return;
            };
            if let Err(e) = &result {
                let mut poisoned = self.poisoned();
                if *poisoned != Some(generation) {
                    tracing::error!(error = %e, "commit failed; the batch and the ones run after it are refused");
                    *poisoned = Some(generation);
                    // Before the replies: whoever hears of the failure and asks again is
                    // answered from a rebuilt state.
                    self.failed.store(generation, Ordering::SeqCst);
                }
            }
            finish(result);
        };
        if refused {
            return outcome(Err(WriterError::Store(
                "an earlier commit this request depended on failed; nothing of it was applied"
                    .into(),
            )));
        }
        if batch.changes.is_empty() {
            return outcome(Ok(()));
        }
        let started = Instant::now();
        self.store.commit_then(&batch.changes, &mut |result| {
            crate::metrics::global().committed(started, result.is_ok());
            outcome(result.map_err(|e| WriterError::Store(e.to_string())));
        });
        // Nothing, unless the store broke its promise to call back: then nothing is known of it.
        outcome(Err(WriterError::Store(
            "the store did not say whether the batch was committed".into(),
        )));
    }
}

/// The commit thread and the writer's end of its queue.
pub(super) struct Pipeline {
    tx: Option<SyncSender<Batch>>,
    handle: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The batches handed to the commit thread.
    sent: u64,
    /// Whether quiet batches are committed on the writer thread.
    inline: bool,
}

impl Pipeline {
    /// Starts the commit thread over `store`; `inline`: see [`Pipeline::send`].
    pub(super) fn start(store: Arc<dyn Store>, inline: bool) -> std::io::Result<Pipeline> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(0);
        let shared = Arc::new(Shared {
            store,
            failed: AtomicU64::new(NONE),
            done: AtomicU64::new(0),
            poisoned: Mutex::new(None),
        });
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("arbiter-commit".into())
            .spawn(move || {
                for batch in rx {
                    theirs.commit_one(batch);
                    theirs.done.fetch_add(1, Ordering::Release);
                }
            })?;
        Ok(Pipeline {
            tx: Some(tx),
            handle: Some(handle),
            shared,
            sent: 0,
            inline,
        })
    }

    /// Hands a batch to the commit thread; blocks until it takes it (after the commit before).
    /// A `quiet` batch is committed right here instead when the commit thread is idle (and
    /// `inline` is on): the call then returns once it is committed and finished.
    pub(super) fn send(&mut self, batch: Batch, quiet: bool) {
        let Some(tx) = &self.tx else {
            (batch.finish)(Err(WriterError::Stopped));
            return;
        };
        // Acquire: what the commit thread did with the batches before is seen here.
        if quiet && self.inline && self.shared.done.load(Ordering::Acquire) == self.sent {
            self.shared.commit_one(batch);
            return;
        }
        match tx.send(batch) {
            Ok(()) => self.sent += 1,
            // The commit thread is gone (it panicked): nothing can be made durable.
            Err(mpsc::SendError(batch)) => (batch.finish)(Err(WriterError::Stopped)),
        }
    }

    /// Whether a commit of `generation` failed: the writer's state is then ahead of the store.
    pub(super) fn failed(&self, generation: u64) -> bool {
        self.shared.failed.load(Ordering::SeqCst) == generation
    }

    /// Commits and finishes everything handed over, then stops the thread.
    pub(super) fn drain(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("the commit thread panicked");
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.drain();
    }
}
