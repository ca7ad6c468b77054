//! The single writer: the one thread that owns the engine's state and the store.
//!
//! # Why one thread
//! YDB's CMS decides one request at a time, in arrival order; two checks that ran side by side
//! could each grant a node that is only safe without the other. Here every request, read or
//! write, becomes a job on one bounded queue. The writer thread takes what has queued up (a
//! batch), runs each job on the engine in order, commits all of the batch's changes in one
//! [`Store::commit`] (group commit: one fsync for many requests), and only then answers them.
//! So no reply reports a change before it is on disk, and reads never see a change that might
//! still be lost.
//!
//! The same thread releases expired locks: it sleeps until the earliest deadline when idle, and
//! runs the engine's `expire` before every batch.
//!
//! If a commit fails, the batch's callers get an error and the state is rebuilt from the store,
//! so memory never runs ahead of the disk.

use crate::engine::{Change, State, Timestamp};
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// How many jobs may wait for the writer before callers are told to back off.
pub const QUEUE_CAPACITY: usize = 4096;
/// The most jobs one batch (one commit) takes.
pub const MAX_BATCH: usize = 512;

/// Why a job did not run, or ran but could not be made durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterError {
    /// The queue is full.
    #[error("the arbiter is overloaded: {QUEUE_CAPACITY} requests are queued")]
    Overloaded,
    /// The writer has stopped (shutdown, or a store it could not recover).
    #[error("the arbiter is shutting down")]
    Stopped,
    /// The store refused the batch; nothing of it was applied.
    #[error("the store failed to commit: {0}")]
    Store(String),
}

/// What a job hands back after running on the engine: its changes, and the reply to send once
/// they are durable.
type Ran = (Vec<Change>, Box<dyn FnOnce(Result<(), WriterError>) + Send>);
type Job = Box<dyn FnOnce(&mut State, Timestamp) -> Ran + Send>;

/// A cloneable handle for submitting jobs. The writer stops when every handle is dropped, or
/// when [`Writer::stop`] is called.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the writer thread over a restored state and its store.
    pub fn start(state: State, store: Box<dyn Store>) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let handle = std::thread::Builder::new()
            .name("arbiter-writer".into())
            .spawn(move || Loop::new(state, store).run(&rx, &flag))?;
        Ok((Writer { tx, stopping }, handle))
    }

    /// Makes the writer stop after the batch it is running (committed and answered). Later
    /// calls, and jobs still queued, are answered with [`WriterError::Stopped`]. For shutdown
    /// when some connections still hold handles.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake an idle writer; if the queue is full it is busy and sees the flag soon anyway.
        let _ = self
            .tx
            .try_send(Box::new(|_, _| (Vec::new(), Box::new(|_| {}))));
    }

    /// Runs `f` on the engine, in arrival order, and returns its value once its changes are
    /// durable. `f` returns the value and the changes to persist (none for reads).
    ///
    /// The job is queued when this is called, not when the future is first polled, so calls
    /// reach the engine in the order they were made.
    pub fn apply<T, F>(&self, f: F) -> impl Future<Output = Result<T, WriterError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, Timestamp) -> (T, Vec<Change>) + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |state, now| {
            let (value, changes) = f(state, now);
            let reply = Box::new(move |committed: Result<(), WriterError>| {
                // The caller may have gone away (a cancelled RPC): nothing to tell then.
                let _ = reply_tx.send(committed.map(|()| value));
            });
            (changes, reply)
        });
        let queued = self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => WriterError::Overloaded,
            TrySendError::Disconnected(_) => WriterError::Stopped,
        });
        async move {
            queued?;
            reply_rx.await.map_err(|_| WriterError::Stopped)?
        }
    }

    /// Runs a read on the engine; it sees every change answered before it.
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T, WriterError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&State, Timestamp) -> T + Send + 'static,
    {
        self.apply(move |state, now| (f(state, now), Vec::new()))
    }
}

/// The writer thread's own state.
struct Loop {
    state: State,
    store: Box<dyn Store>,
    /// The clock never goes backwards for the engine, even if the system clock does.
    last_now: Timestamp,
}

impl Loop {
    fn new(state: State, store: Box<dyn Store>) -> Loop {
        Loop {
            state,
            store,
            last_now: Timestamp(0),
        }
    }

    fn now(&mut self) -> Timestamp {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.last_now = self.last_now.max(Timestamp(wall));
        self.last_now
    }

    fn run(mut self, rx: &Receiver<Job>, stopping: &AtomicBool) {
        while !stopping.load(Ordering::SeqCst) {
            let first = match self.state.next_deadline() {
                Some(deadline) => {
                    let wait = deadline.since(self.now());
                    match rx.recv_timeout(wait.max(Duration::from_millis(1))) {
                        Ok(job) => Some(job),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                },
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if !self.batch(jobs) {
                break;
            }
        }
        tracing::info!("writer stopped");
    }

    /// Runs one batch; false when the state could not be recovered and the writer must stop.
    fn batch(&mut self, jobs: Vec<Job>) -> bool {
        let now = self.now();
        let expired = self.state.expire(now);
        let mut changes = expired.changes;
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (mut c, reply) = job(&mut self.state, now);
            changes.append(&mut c);
            replies.push(reply);
        }
        let committed = if changes.is_empty() {
            Ok(())
        } else {
            self.store.commit(&changes)
        };
        match committed {
            Ok(()) => {
                for e in &expired.value {
                    tracing::info!(task = %e.task, action = %e.action, scope = %e.scope,
                        outcome = "expired", "lock expired");
                }
                for reply in replies {
                    reply(Ok(()));
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = replies.len(), "commit failed; batch refused");
                let err = WriterError::Store(e.to_string());
                for reply in replies {
                    reply(Err(err.clone()));
                }
                self.recover()
            }
        }
    }

    /// Rebuilds the state from the store after a failed commit.
    fn recover(&mut self) -> bool {
        match self.store.load() {
            Ok(snapshot) => {
                self.state = State::restore(self.state.cluster().clone(), snapshot);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the store; the writer stops");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Snapshot;
    use crate::engine::inventory::{self, Format};
    use crate::engine::task::{LockRequest, Mode, Scope, TaskRequest};
    use crate::store::{MemoryStore, StoreError};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    fn state() -> State {
        let text = "[limits]\nmax_unavailable_ratio = 0\n[[nodes]]\nid = 1\nhost = \"h1\"\nport = 1\n\
                    [[nodes]]\nid = 2\nhost = \"h2\"\nport = 1\n";
        let cluster = inventory::parse(text, Format::Toml).expect("inventory");
        State::new(Arc::new(cluster))
    }

    fn request(uid: &str, node: u32, duration: Duration) -> TaskRequest {
        TaskRequest {
            uid: uid.into(),
            owner: "me".into(),
            description: String::new(),
            mode: Mode::Strong,
            priority: 0,
            dry_run: false,
            groups: vec![vec![LockRequest {
                scope: Scope::Node(node),
                duration: Some(duration),
            }]],
        }
    }

    /// Creates a task on the writer (queued now); true when every action was granted.
    fn create(
        writer: &Writer,
        req: TaskRequest,
    ) -> impl Future<Output = Result<bool, WriterError>> + use<> {
        writer.apply(move |s, now| match s.create(req, now) {
            Ok(o) => (o.value.actions().all(|a| a.is_performed()), o.changes),
            Err(_) => (false, Vec::new()),
        })
    }

    /// A store that counts commits, reports each one, and can be told to fail them.
    #[derive(Default)]
    struct Flaky {
        inner: MemoryStore,
        fail: AtomicBool,
        commits: AtomicUsize,
        on_commit: Mutex<Option<mpsc::Sender<()>>>,
    }

    impl Store for Arc<Flaky> {
        fn load(&self) -> Result<Snapshot, StoreError> {
            self.inner.load()
        }
        fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
            self.commits.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = self.on_commit.lock().expect("lock").as_ref() {
                let _ = tx.send(());
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("disk full".into()));
            }
            self.inner.commit(changes)
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_failed_commit_refuses_the_change_and_keeps_memory_in_step_with_the_store() {
        let store = Arc::new(Flaky::default());
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        runtime().block_on(async {
            store.fail.store(true, Ordering::SeqCst);
            let r = create(&writer, request("t1", 1, Duration::from_secs(60))).await;
            assert!(matches!(r, Err(WriterError::Store(_))), "{r:?}");
            let seen = writer.read(|s, _| s.task("t1").is_some()).await;
            assert_eq!(seen, Ok(false), "the refused task must not be visible");
            store.fail.store(false, Ordering::SeqCst);
            let r = create(&writer, request("t1", 1, Duration::from_secs(60))).await;
            assert_eq!(r, Ok(true));
        });
        drop(writer);
        handle.join().expect("writer thread");
        assert!(store.inner.load().expect("load").tasks.contains_key("t1"));
    }

    #[test]
    fn expired_locks_are_released_without_any_request() {
        let store = Arc::new(Flaky::default());
        let (tx, rx) = mpsc::channel();
        *store.on_commit.lock().expect("lock") = Some(tx);
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let granted =
            runtime().block_on(create(&writer, request("t1", 1, Duration::from_millis(50))));
        assert_eq!(granted, Ok(true));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the create commit");
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the writer's own expiry commit");
        assert!(store.inner.load().expect("load").tasks.is_empty());
        drop(writer);
        handle.join().expect("writer thread");
    }

    #[test]
    fn stop_ends_the_writer_while_handles_remain() {
        let store = Arc::new(Flaky::default());
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let granted =
            runtime().block_on(create(&writer, request("t1", 1, Duration::from_secs(60))));
        assert_eq!(granted, Ok(true));
        writer.stop();
        handle
            .join()
            .expect("the writer stops although `writer` is still alive");
        let late = runtime().block_on(writer.read(|s, _| s.lock_count()));
        assert_eq!(late, Err(WriterError::Stopped));
        assert!(store.inner.load().expect("load").tasks.contains_key("t1"));
    }

    #[test]
    fn requests_queued_together_share_one_commit() {
        let store = Arc::new(Flaky::default());
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let n = 64;
        // Hold the writer inside a read until every create is queued behind it.
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate = writer.read(move |_, _| {
            let _ = started_tx.send(());
            let _ = gate_rx.recv();
        });
        started_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the writer runs the gate");
        let calls: Vec<_> = (0..n)
            .map(|i| {
                create(
                    &writer,
                    request(&format!("t{i}"), 1 + i % 2, Duration::from_secs(60)),
                )
            })
            .collect();
        gate_tx.send(()).expect("release");
        runtime().block_on(async {
            assert_eq!(gate.await, Ok(()));
            for call in calls {
                assert!(call.await.is_ok());
            }
        });
        assert_eq!(
            store.commits.load(Ordering::SeqCst),
            1,
            "one commit for the whole batch"
        );
        assert_eq!(store.inner.load().expect("load").tasks.len(), n as usize);
        drop(writer);
        handle.join().expect("writer thread");
    }
}
