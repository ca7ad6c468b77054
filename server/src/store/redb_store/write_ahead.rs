//! The redb store's write-ahead log: committing a batch through it, checkpoints, replay at
//! open (the file format is `store/wal.rs`).

use super::*;

/// The write-ahead log and where the store stands on it.
#[derive(Debug)]
pub(super) struct Log {
    pub(super) wal: Wal,
    /// The last commit (durable in the log; applied to redb once `commit_logged` returns).
    pub(super) seq: u64,
    /// Commits since the last checkpoint.
    pub(super) since: u64,
    /// The seal, written after each commit.
    pub(super) seal: Sealer,
}

/// The write-ahead log beside the store file.
pub(super) fn wal_path(store: &Path) -> PathBuf {
    store.with_file_name(WAL_FILE)
}

/// The log for store `id`, started after redb commit `base` with a header newer than
/// `generation`.
pub(super) fn start_wal(
    store: &Path,
    id: StoreId,
    base: u64,
    generation: u64,
) -> Result<Wal, StoreError> {
    let path = wal_path(store);
    Wal::start(&path, id, base, generation)
        .map_err(|e| io_error(&path, "cannot start the write-ahead log", e))
}

/// The log's batches that the redb file does not hold durably (after a crash), read and
/// checked but not applied yet: the seal is compared first, so that a refused store is left as
/// it was.
pub(super) struct Pending {
    /// The log header's generation (0: no log).
    pub(super) generation: u64,
    batches: Vec<(u64, Vec<Change>)>,
}

impl Pending {
    /// The commit number the store holds once these are applied over `position`.
    pub(super) fn up_to(&self, position: &Position) -> u64 {
        self.batches.last().map_or(position.seq, |(seq, _)| *seq)
    }
}

/// Reads the log beside the store at `path` whose redb file stands at `position`.
pub(super) fn read_pending(path: &Path, position: &Position) -> Result<Pending, StoreError> {
    let wal_path = wal_path(path);
    let damaged = |why: String| untrusted(&wal_path, Distrust::Damaged(why));
    let found = wal::read(&wal_path).map_err(|e| io_error(&wal_path, "cannot read", e))?;
    let (id, base, generation, records) = match found {
        wal::Found::Absent => {
            return Ok(Pending {
                generation: 0,
                batches: Vec::new(),
            });
        }
        wal::Found::Damaged(why) => {
            return Err(damaged(format!("its write-ahead log is unreadable: {why}")));
        }
        wal::Found::Log {
            id,
            base,
            generation,
            records,
        } => (id, base, generation, records),
    };
    if position.id != Some(id) {
        return Err(damaged(format!(
            "the write-ahead log belongs to store {id}, not to store {}",
            position
                .id
                .map_or_else(|| "<without an identity>".to_owned(), |i| i.to_string())
        )));
    }
    if base > position.seq {
        // The log continues from a checkpoint the redb file does not have.
        return Err(untrusted(
            path,
            Distrust::RolledBack {
                found: position.seq,
                expected: base,
            },
        ));
    }
    let mut batches = Vec::new();
    for (seq, payload) in records {
        if seq <= position.seq {
            continue;
        }
        let changes: Vec<Change> = serde_json::from_slice(&payload).map_err(|e| {
            damaged(format!(
                "commit #{seq} in its write-ahead log cannot be read: {e}"
            ))
        })?;
        batches.push((seq, changes));
    }
    Ok(Pending {
        generation,
        batches,
    })
}

/// Applies the pending batches to redb and flushes them; `position` moves to the last.
pub(super) fn replay(
    path: &Path,
    db: &Database,
    position: &mut Position,
    pending: Pending,
) -> Result<(), StoreError> {
    if pending.batches.is_empty() {
        return Ok(());
    }
    let damaged = |why: String| untrusted(path, Distrust::Damaged(why));
    let panicked = |panic: String| damaged(format!("redb panicked: {}", one_line(&panic)));
    let count = pending.batches.len();
    for (seq, changes) in pending.batches {
        let n = contain(|| apply(db, &changes, Durability::None)).map_err(panicked)??;
        if n != seq {
            return Err(damaged(format!(
                "replaying commit #{seq} of its write-ahead log gave commit #{n}"
            )));
        }
        position.seq = seq;
    }
    contain(|| flush(db)).map_err(panicked)??;
    tracing::info!(
        commits = count,
        up_to = position.seq,
        "replayed the write-ahead log"
    );
    Ok(())
}

impl RedbStore {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One flushed redb commit (everything applied since the last becomes durable in the redb
    /// file), then the log starts again after it.
    fn checkpoint(&self, log: &mut Log) -> Result<(), StoreError> {
        contain(|| flush(&self.db)).map_err(|panic| {
            StoreError::Backend(format!(
                "{}: redb panicked during a checkpoint: {}",
                self.path.display(),
                one_line(&panic)
            ))
        })??;
        log.wal
            .restart(log.seq)
            .map_err(|e| io_error(log.wal.path(), "cannot restart the log", e))?;
        log.since = 0;
        Ok(())
    }

    /// Marks the store broken (the first reason stays) and returns the error to report.
    pub(super) fn break_on(&self, why: String) -> StoreError {
        let why = format!(
            "{}: {why}; nothing more is committed until a restart replays the write-ahead log",
            self.path.display()
        );
        StoreError::Backend(self.broken.get_or_init(|| why).clone())
    }

    /// After a batch's record went (or may have gone) to the log but the batch is refused:
    /// the record is taken back, so that the failure stands. If that fails too the store is
    /// broken: the batch may come back when the log is replayed.
    fn take_back(&self, log: &mut Log, failed: StoreError) -> StoreError {
        match log.wal.retract() {
            Ok(()) => failed,
            Err(e) => self.break_on(format!(
                "{failed}; and cannot take the batch back out of {}: {e}; its outcome is known \
                 after the restart",
                log.wal.path().display()
            )),
        }
    }

    /// [`Store::commit_then`]: the batch staged in a redb write transaction (redb refusing it
    /// refuses the batch: nothing of it is anywhere), its record in the log (one `fdatasync`:
    /// durable from here on), the seal; then `durable` is told, and only then is the
    /// transaction committed without a flush, off the replies' path. Every so many batches a
    /// checkpoint follows.
    ///
    /// Once `durable` heard of a success, nothing can take the batch back: a redb commit or a
    /// checkpoint that fails then breaks the store (logged; the next batches are refused, and a
    /// restart replays the log, the batch included).
    pub(super) fn commit_logged(
        &self,
        changes: &[Change],
        durable: &mut dyn FnMut(Result<(), StoreError>),
    ) {
        if changes.is_empty() {
            return durable(Ok(()));
        }
        let mut log = self.log();
        let tx = match self.log_batch(&mut log, changes) {
            Ok(tx) => tx,
            Err(e) => return durable(Err(e)),
        };
        let seq = log.seq.saturating_add(1);
        log.seq = seq;
        log.since += 1;
        log.seal.committed(seq);
        durable(Ok(()));
        log.seal.settle();
        let settled = match contain(|| tx.commit()) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("redb could not apply durable commit #{seq} ({e})")),
            Err(panic) => Some(format!(
                "redb panicked while applying durable commit #{seq} ({})",
                one_line(&panic)
            )),
        };
        let failed = match settled {
            Some(why) => Some(why),
            None if log.wal.full(log.since) => (self.checkpoint(&mut log).err())
                .map(|e| format!("a checkpoint after commit #{seq} failed: {e}")),
            None => None,
        };
        if let Some(why) = failed {
            // The batch is durable in the log and answered; redb refuses writes after a failed
            // commit or flush, and the log's header may be half restarted: the next batches are
            // refused, so that the server stops and a restart replays the log.
            let why = self.break_on(why);
            tracing::error!(error = %why, commit = seq, "the store broke after a durable commit");
        }
    }

    /// The batch staged in redb and its record durable in the log; the staged transaction is
    /// returned uncommitted. On an error nothing of the batch is anywhere, unless the store is
    /// broken by it (then the error says so).
    fn log_batch(
        &self,
        log: &mut Log,
        changes: &[Change],
    ) -> Result<redb::WriteTransaction, StoreError> {
        if let Some(why) = self.broken.get() {
            return Err(StoreError::Backend(why.clone()));
        }
        let seq = log.seq.saturating_add(1);
        let (tx, n) = match contain(|| stage(&self.db, changes, Durability::None)) {
            Ok(staged) => staged?,
            Err(panic) => {
                return Err(self.break_on(format!(
                    "redb panicked while staging a batch ({})",
                    one_line(&panic)
                )));
            }
        };
        if n != seq {
            return Err(self.break_on(format!(
                "redb gave the batch commit number #{n}, the log #{seq}"
            )));
        }
        let payload = encode(&changes)?;
        if let Err(e) = log.wal.append(seq, &payload) {
            // The staged transaction is dropped (redb aborts it) with this error.
            let failed = io_error(log.wal.path(), "cannot write the batch to the log", e);
            return Err(self.take_back(log, failed));
        }
        Ok(tx)
    }
}

impl Drop for RedbStore {
    /// A last checkpoint, so that after a clean stop the redb file alone holds everything, and
    /// the seal flushed.
    fn drop(&mut self) {
        let mut log = self.log();
        if self.broken.get().is_none()
            && log.since > 0
            && let Err(e) = self.checkpoint(&mut log)
        {
            tracing::warn!(error = %e, "the last checkpoint failed; the log is replayed at the next start");
        }
        log.seal.sync();
    }
}
