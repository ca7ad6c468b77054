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

use super::WriterError;
use crate::engine::Change;
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

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

/// How many batches may wait for the committer while it commits one: the writer runs at most
/// this many batches ahead of the disk.
const DEPTH: usize = 1;

/// No generation has failed.
const NONE: u64 = u64::MAX;

/// The commit thread and the writer's end of its queue.
pub(super) struct Pipeline {
    tx: Option<SyncSender<Batch>>,
    handle: Option<JoinHandle<()>>,
    /// The last generation whose commit failed (`NONE`: none).
    failed: Arc<AtomicU64>,
}

impl Pipeline {
    /// Starts the commit thread over `store`.
    pub(super) fn start(store: Arc<dyn Store>) -> std::io::Result<Pipeline> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(DEPTH);
        let failed = Arc::new(AtomicU64::new(NONE));
        let flag = failed.clone();
        let handle = std::thread::Builder::new()
            .name("arbiter-commit".into())
            .spawn(move || {
                let mut poisoned: Option<u64> = None;
                for batch in rx {
                    let result = if poisoned == Some(batch.generation) {
                        Err(WriterError::Store(
                            "an earlier commit this request depended on failed; nothing of it was applied"
                                .into(),
                        ))
                    } else if batch.changes.is_empty() {
                        Ok(())
                    } else {
                        crate::metrics::global()
                            .commit(|| store.commit(&batch.changes))
                            .map_err(|e| WriterError::Store(e.to_string()))
                    };
                    if let Err(e) = &result
                        && poisoned != Some(batch.generation)
                    {
                        tracing::error!(error = %e, "commit failed; the batch and the ones run after it are refused");
                        poisoned = Some(batch.generation);
                        // Before the replies: whoever hears of the failure and asks again is
                        // answered from a rebuilt state.
                        flag.store(batch.generation, Ordering::SeqCst);
                    }
                    (batch.finish)(result);
                }
            })?;
        Ok(Pipeline {
            tx: Some(tx),
            handle: Some(handle),
            failed,
        })
    }

    /// Hands a batch to the committer; blocks while `DEPTH` batches already wait.
    pub(super) fn send(&self, batch: Batch) {
        let Some(tx) = &self.tx else {
            (batch.finish)(Err(WriterError::Stopped));
            return;
        };
        if let Err(mpsc::SendError(batch)) = tx.send(batch) {
            // The commit thread is gone (it panicked): nothing can be made durable.
            (batch.finish)(Err(WriterError::Stopped));
        }
    }

    /// Whether a commit of `generation` failed: the writer's state is then ahead of the store.
    pub(super) fn failed(&self, generation: u64) -> bool {
        self.failed.load(Ordering::SeqCst) == generation
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
