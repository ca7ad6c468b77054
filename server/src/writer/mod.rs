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
//! The same thread lets time act: it sleeps until the earliest deadline (a lock's, a heartbeat
//! timeout, the end of a settle time) when idle, and runs the engine's `tick` before every batch.
//!
//! If a commit fails, the batch's callers get an error and the state is rebuilt from the store,
//! so memory never runs ahead of the disk for longer than the failed batches.
//!
//! # The pipeline
//! Committing is the commit thread's (`pipeline`): while it commits and fsyncs batch N, this
//! thread already runs batch N+1 on the engine. Replies, and the publications to watchers and
//! agents, are prepared here and sent by the commit thread after the batch's own commit, so
//! they still go out only once durable, in commit order. A failed commit refuses every batch
//! computed over it, and the state is rebuilt before the next one.

use crate::agents::{AgentHub, AgentSubscription};
use crate::engine::EngineError;
use crate::engine::NodeId;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::liveness::Ticked;
use crate::engine::{Change, State, Timestamp};
use crate::store::Store;
use crate::watches::{Subscription, TaskUpdate, Watches};
use pipeline::{Batch, Pipeline};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

mod pipeline;

/// How many jobs may wait for the writer before callers are told to back off.
pub const QUEUE_CAPACITY: usize = 4096;
/// The most jobs one batch (one commit) takes.
pub const MAX_BATCH: usize = 512;

/// Counts the committed batches that changed something, in this process: the dashboard's live
/// view waits on it (`subscribe`) instead of polling.
pub static COMMITS: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Why a job did not run, or ran but could not be made durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterError {
    /// The queue is full.
    #[error("the arbiter is overloaded: {QUEUE_CAPACITY} requests are queued")]
    Overloaded,
    /// The writer has stopped (shutdown, a lost leadership, or a store it could not recover).
    #[error("the arbiter stopped deciding (shutting down, or no longer the leader); retry")]
    Stopped,
    /// The store refused the batch; nothing of it was applied.
    #[error("the store failed to commit: {0}")]
    Store(String),
}

/// What a job hands back after running on the engine: its changes, and the reply to send once
/// they are durable.
type Ran = (Vec<Change>, Box<dyn FnOnce(Result<(), WriterError>) + Send>);
type Job = Box<dyn FnOnce(&mut Core, Timestamp) -> Ran + Send>;

/// What jobs run on: the engine's state, the open watches and the agents' order streams.
struct Core {
    state: State,
    watches: Watches,
    agents: AgentHub,
    /// Set by a job that changed soft state a check reads (an agent came or went): the
    /// batch re-checks the driven tasks as if something had been committed.
    poke: bool,
}

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
        let store: Arc<dyn Store> = Arc::from(store);
        let pipeline = Pipeline::start(store.clone())?;
        let handle = std::thread::Builder::new()
            .name("arbiter-writer".into())
            .spawn(move || Loop::new(state, store, pipeline).run(&rx, &flag))?;
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
        self.submit(move |core, now| f(&mut core.state, now))
    }

    /// Opens a watch on task `uid`; `None` when there is no such task. `drives` answers, for
    /// the task's owner, whether this watcher may drive it (the owner or an admin): a driving
    /// watch makes the writer re-check the task whenever anything changes.
    pub fn watch<D>(
        &self,
        uid: String,
        drives: D,
    ) -> impl Future<Output = Result<Option<Subscription>, WriterError>> + use<D>
    where
        D: FnOnce(&str) -> bool + Send + 'static,
    {
        self.submit(move |core, now| {
            let Some(view) = core.state.task(&uid) else {
                return (None, Vec::new());
            };
            let drives = drives(&view.owner);
            let mut changes = Vec::new();
            let mut update = TaskUpdate::Live(Box::new(view));
            if drives && let Ok(o) = core.state.recheck(&uid, now) {
                update = TaskUpdate::Live(Box::new(o.value));
                changes = o.changes;
            }
            (Some(core.watches.subscribe(&uid, update, drives)), changes)
        })
    }

    /// Opens an agent's order stream for `node` (an unknown node: the engine's error). The
    /// node counts as having its agent connected until the subscription drops.
    pub fn attach_agent(
        &self,
        node: NodeId,
    ) -> impl Future<Output = Result<Result<AgentSubscription, EngineError>, WriterError>> + use<>
    {
        let writer = self.clone();
        self.submit(move |core, _now| {
            let orders = match core.state.agent_attached(node) {
                Ok(o) => o,
                Err(e) => return (Err(e), Vec::new()),
            };
            core.poke = true;
            let rx = core.agents.subscribe(node, orders);
            let detach = Box::new(move || {
                // Queued at once; nobody waits for the answer.
                drop(writer.submit(move |core, now| {
                    core.state.agent_detached(node, now);
                    core.agents.prune(node);
                    core.poke = true;
                    ((), Vec::new())
                }));
            });
            let host = (core.state.cluster().node(node))
                .map(|n| n.host.clone())
                .unwrap_or_default();
            (Ok(AgentSubscription::new(rx, host, detach)), Vec::new())
        })
    }

    fn submit<T, F>(&self, f: F) -> impl Future<Output = Result<T, WriterError>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Core, Timestamp) -> (T, Vec<Change>) + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let queued = crate::metrics::global().queued();
        let job: Job = Box::new(move |core, now| {
            drop(queued);
            let (value, changes) = f(core, now);
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
    core: Core,
    /// For rebuilding the state after a failed commit; the commit thread commits.
    store: Arc<dyn Store>,
    pipeline: Pipeline,
    /// Counts the rebuilds after failed commits: a batch run over a state that a failed
    /// commit left ahead of the store has the failed batch's generation.
    generation: u64,
    /// The clock never goes backwards for the engine, even if the system clock does.
    last_now: Timestamp,
}

impl Loop {
    fn new(state: State, store: Arc<dyn Store>, pipeline: Pipeline) -> Loop {
        Loop {
            core: Core {
                state,
                watches: Watches::default(),
                agents: AgentHub::default(),
                poke: false,
            },
            store,
            pipeline,
            generation: 0,
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
            let state = &self.core.state;
            let due = match (state.next_deadline(), state.audit_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match due {
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
        // Every batch handed over is committed (or refused) and answered.
        self.pipeline.drain();
        tracing::info!("writer stopped");
    }

    /// Runs one batch and hands it to the commit stage; false when the state could not be
    /// recovered from a failed commit and the writer must stop.
    fn batch(&mut self, jobs: Vec<Job>) -> bool {
        if self.pipeline.failed(self.generation) {
            // Jobs not run are dropped: their callers hear that the writer stopped.
            if !self.recover() {
                return false;
            }
            self.generation += 1;
        }
        let started = std::time::Instant::now();
        let now = self.now();
        let tokens_before = self.core.state.counters().last_fencing_token;
        let ticked = self.core.state.tick(now);
        let mut changes = ticked.changes;
        changes.extend(self.core.state.audit_ticked(&ticked.value, now));
        changes.extend(self.core.state.audit_flush(now));
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (mut c, reply) = job(&mut self.core, now);
            changes.append(&mut c);
            replies.push(reply);
        }
        let changed = changes
            .iter()
            .any(|c| !matches!(c, Change::PutAudit(_) | Change::DropAuditUpTo(_)));
        if changed || !ticked.value.is_quiet() || std::mem::take(&mut self.core.poke) {
            self.recheck_driven(now, &mut changes);
        }
        // In the same commit as the grants: every grant has its entry, and retention bounds the
        // trail as part of the batch.
        let grants = self.core.state.audit_grants(&changes, tokens_before, now);
        let granted_entries = grant_entries(&grants);
        changes.extend(grants);
        changes.extend(self.core.state.audit_retain(now));
        // What the commit stage sends once this batch is durable: the watchers' and agents'
        // new states as of this batch (the engine may be further along by then).
        let watched = self.prepare_watches(&changes);
        let orders = self.prepare_orders();
        let any = !changes.is_empty();
        let granted = (self.core.state.counters().last_fencing_token).saturating_sub(tokens_before);
        let open = self.core.watches.open();
        let (state, jobs) = (&self.core.state, replies.len());
        crate::metrics::global().batch_done(state, jobs, granted, open, started);
        let ticked = ticked.value;
        let finish = Box::new(move |committed: Result<(), WriterError>| match committed {
            Ok(()) => {
                log_ticked(&ticked);
                log_grants(&granted_entries);
                // Watchers first: a caller that opened a watch finds it current on its reply.
                for p in watched {
                    p.send();
                }
                for p in orders {
                    p.send();
                }
                if any {
                    COMMITS.send_modify(|n| *n = n.wrapping_add(1));
                }
                for reply in replies {
                    reply(Ok(()));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, jobs = replies.len(), "batch refused");
                for reply in replies {
                    reply(Err(err.clone()));
                }
            }
        });
        self.pipeline.send(Batch {
            generation: self.generation,
            changes,
            finish,
        });
        true
    }

    /// Something changed: re-check the pending actions of every task whose owner is watching,
    /// more important tasks first, then older ones.
    fn recheck_driven(&mut self, now: Timestamp, changes: &mut Vec<Change>) {
        let state = &mut self.core.state;
        let mut driven: Vec<((i32, Timestamp), String)> = self
            .core
            .watches
            .driven()
            .into_iter()
            .filter_map(|uid| state.task_rank(&uid).map(|r| (r, uid)))
            .collect();
        driven.sort();
        for (_, uid) in driven {
            if let Ok(o) = state.recheck(&uid, now) {
                changes.extend(o.changes);
            }
        }
    }

    /// The new state of every watched task these changes touched, to publish once they are
    /// durable.
    fn prepare_watches(&mut self, changes: &[Change]) -> Vec<crate::watches::Publication> {
        let watches = &mut self.core.watches;
        if watches.is_empty() {
            return Vec::new();
        }
        let mut touched: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::PutTask(t) => Some(t.uid.as_str()),
                Change::DeleteTask(uid) => Some(uid.as_str()),
                _ => None,
            })
            .filter(|uid| watches.is_watched(uid))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let mut out = Vec::with_capacity(touched.len());
        for uid in touched {
            let update = match self.core.state.task(uid) {
                Some(view) => TaskUpdate::Live(Box::new(view)),
                None => TaskUpdate::Gone,
            };
            out.extend(watches.prepare(uid, update));
        }
        watches.prune();
        out
    }

    /// The new orders of every connected agent whose orders this batch may have changed.
    fn prepare_orders(&mut self) -> Vec<crate::agents::OrdersPublication> {
        let dirty = self.core.state.take_orders_dirty();
        let mut out = Vec::new();
        for node in dirty {
            if self.core.agents.is_open(node) {
                let orders = self.core.state.orders(node);
                out.extend(self.core.agents.prepare(node, orders));
            }
        }
        out
    }

    /// Rebuilds the state from the store after a failed commit.
    fn recover(&mut self) -> bool {
        match self.store.load() {
            Ok(snapshot) => {
                let health = self.core.state.health();
                let audit = self.core.state.audit_config();
                let mut state = State::restore(self.core.state.cluster().clone(), snapshot);
                state.set_health(health);
                state.set_audit(audit);
                state.keep_agents_of(&self.core.state);
                self.core.state = state;
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the store; the writer stops");
                false
            }
        }
    }
}

/// The grant entries of a batch's audit records (one per grant, in token order: see
/// `State::audit_grants`), for its log lines once committed.
fn grant_entries(records: &[Change]) -> Vec<AuditEntry> {
    records
        .iter()
        .filter_map(|c| match c {
            Change::PutAudit(e) if e.kind == AuditKind::LockGranted => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// One log line per lock that a committed batch granted.
fn log_grants(entries: &[AuditEntry]) {
    for e in entries {
        tracing::info!(task = %e.task, owner = %e.user, nodes = ?e.nodes, outcome = "granted",
            fencing_token = e.fencing_token, force = e.force, grant = %e.detail, "lock granted");
    }
}

/// One log line per change that time made.
fn log_ticked(t: &Ticked) {
    for e in &t.expired {
        tracing::info!(task = %e.task, action = %e.action, scope = %e.scope,
            outcome = "expired", "lock expired");
    }
    for node in &t.timed_out {
        tracing::warn!(node, outcome = "down", "heartbeats stopped: node down");
    }
    for node in &t.settled {
        tracing::info!(node, outcome = "settled", "node settled");
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
        let lock = LockRequest {
            scope: Scope::Node(node),
            duration: Some(duration),
            kind: Default::default(),
        };
        TaskRequest::of(uid, Mode::Strong, vec![vec![lock]])
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
            let result = if self.fail.load(Ordering::SeqCst) {
                Err(StoreError::Backend("disk full".into()))
            } else {
                self.inner.commit(changes)
            };
            if let Some(tx) = self.on_commit.lock().expect("lock").as_ref() {
                let _ = tx.send(());
            }
            result
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

    /// A watcher must never see a grant that is not durable: a driving watch that grants on
    /// open, in a batch whose commit fails, leaves the other watchers' view as it was.
    #[test]
    fn other_watchers_do_not_see_a_grant_whose_commit_failed() {
        let store = Arc::new(Flaky::default());
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        runtime().block_on(async {
            let hour = Duration::from_secs(3600);
            assert_eq!(create(&writer, request("t1", 1, hour)).await, Ok(true));
            assert_eq!(create(&writer, request("t2", 1, hour)).await, Ok(false));
            let mut viewer = writer
                .watch("t2".into(), |_| false)
                .await
                .expect("watch")
                .expect("t2 exists");
            let pending = viewer.updates.borrow_and_update().clone();
            let dropped = writer
                .apply(|s, now| match s.drop_task("t1", now) {
                    Ok(o) => (true, o.changes),
                    Err(_) => (false, Vec::new()),
                })
                .await;
            assert_eq!(dropped, Ok(true));

            store.fail.store(true, Ordering::SeqCst);
            let owner = writer.watch("t2".into(), |_| true).await;
            assert!(matches!(owner, Err(WriterError::Store(_))), "{owner:?}");
            assert!(
                !viewer.updates.has_changed().expect("open"),
                "the viewer saw an update from a failed batch: {:?}",
                viewer.updates.borrow()
            );
            assert_eq!(*viewer.updates.borrow(), pending);

            // Once the store works, the owner's watch grants and every watcher sees it.
            store.fail.store(false, Ordering::SeqCst);
            let owner = writer.watch("t2".into(), |_| true).await;
            let owner = owner.expect("watch").expect("t2 exists");
            let granted = |u: &TaskUpdate| {
                matches!(u, TaskUpdate::Live(v) if v.actions().all(|a| a.is_performed()))
            };
            assert!(granted(&owner.updates.borrow()), "{:?}", owner.updates.borrow());
            assert!(viewer.updates.has_changed().expect("open"));
            assert!(granted(&viewer.updates.borrow_and_update()));
        });
        drop(writer);
        handle.join().expect("writer thread");
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

    /// Every grant and every expiry has its audit entry in the very commit that made it.
    #[test]
    fn grants_and_expiries_are_audited_in_their_own_commit() {
        use crate::engine::audit::AuditKind;
        let store = Arc::new(Flaky::default());
        let (tx, rx) = mpsc::channel();
        *store.on_commit.lock().expect("lock") = Some(tx);
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let granted =
            runtime().block_on(create(&writer, request("t1", 1, Duration::from_millis(50))));
        assert_eq!(granted, Ok(true));
        rx.recv_timeout(Duration::from_secs(5)).expect("create");
        let kinds = |s: &Snapshot| s.audit.values().map(|e| e.kind).collect::<Vec<_>>();
        let after_create = store.inner.load().expect("load");
        assert!(after_create.tasks.contains_key("t1"));
        assert_eq!(kinds(&after_create), vec![AuditKind::LockGranted]);
        let grant = &after_create.audit[&1];
        assert_eq!((grant.fencing_token, grant.nodes.as_slice()), (1, &[1][..]));
        rx.recv_timeout(Duration::from_secs(5)).expect("expiry");
        let after_expiry = store.inner.load().expect("load");
        assert!(after_expiry.tasks.is_empty());
        assert_eq!(
            kinds(&after_expiry),
            vec![AuditKind::LockGranted, AuditKind::LockExpired]
        );
        assert_eq!(after_expiry.audit[&2].user, "arbiter");
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

    /// A store whose commits wait at a gate: each commit says it started, then waits until
    /// the test lets it go.
    struct Gated {
        inner: Arc<Flaky>,
        started: Mutex<mpsc::Sender<()>>,
        go: Mutex<mpsc::Receiver<()>>,
    }

    impl Store for Arc<Gated> {
        fn load(&self) -> Result<Snapshot, StoreError> {
            self.inner.load()
        }
        fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
            let _ = self.started.lock().expect("lock").send(());
            let _ = self.go.lock().expect("lock").recv();
            self.inner.commit(changes)
        }
    }

    fn gated() -> (Arc<Gated>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let store = Arc::new(Gated {
            inner: Arc::new(Flaky::default()),
            started: Mutex::new(started_tx),
            go: Mutex::new(go_rx),
        });
        (store, started_rx, go_tx)
    }

    /// Whether a future is ready now (one poll, no waiting).
    fn ready_now<F: Future>(f: &mut std::pin::Pin<Box<F>>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    /// The pipeline: the engine runs the next batch while one commits, and neither batch is
    /// answered before its own commit (the later one after the earlier one's).
    #[test]
    fn the_next_batch_runs_during_a_commit_and_no_reply_comes_before_its_commit() {
        let (store, started, go) = gated();
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let mut first = Box::pin(create(&writer, request("t1", 1, Duration::from_secs(60))));
        started
            .recv_timeout(Duration::from_secs(5))
            .expect("the first commit starts");
        let (ran_tx, ran_rx) = mpsc::channel();
        let mut second = Box::pin(writer.read(move |s, _| {
            let seen = s.task("t1").is_some();
            let _ = ran_tx.send(seen);
            seen
        }));
        // The read ran on the engine while the first commit waits at the gate...
        assert_eq!(ran_rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        // ... and nobody has been answered: the only commit has not returned.
        assert!(ready_now(&mut first).is_none(), "a reply before its commit");
        assert!(
            ready_now(&mut second).is_none(),
            "a reply before the commit it read"
        );
        assert!(store.inner.inner.load().expect("load").tasks.is_empty());
        go.send(()).expect("let the commit go");
        runtime().block_on(async {
            assert_eq!(first.await, Ok(true));
            assert_eq!(second.await, Ok(true));
        });
        assert!(
            store
                .inner
                .inner
                .load()
                .expect("load")
                .tasks
                .contains_key("t1")
        );
        drop(writer);
        drop(go);
        handle.join().expect("writer thread");
    }

    /// A failed commit refuses the batch and every batch the engine ran over it, without
    /// committing them; the state is rebuilt and the next batch commits.
    #[test]
    fn a_failed_commit_refuses_the_batches_run_over_it() {
        let (store, started, go) = gated();
        let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
        let hour = Duration::from_secs(3600);
        let mut first = Box::pin(create(&writer, request("t1", 1, hour)));
        started
            .recv_timeout(Duration::from_secs(5))
            .expect("the first commit starts");
        // Run over t1's lock of node 1: t2 asks for node 2 (granted: two nodes, no limit).
        let (ran_tx, ran_rx) = mpsc::channel();
        let req = request("t2", 2, hour);
        let mut second = Box::pin(writer.apply(move |s, now| {
            let seen = s.task("t1").is_some();
            let o = s.create(req, now).expect("t2");
            let _ = ran_tx.send(seen);
            (o.value.actions().all(|a| a.is_performed()), o.changes)
        }));
        assert_eq!(ran_rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        store.inner.fail.store(true, Ordering::SeqCst);
        go.send(()).expect("let the failing commit go");
        runtime().block_on(async {
            assert!(matches!(first.as_mut().await, Err(WriterError::Store(_))));
            assert!(matches!(second.as_mut().await, Err(WriterError::Store(_))));
        });
        assert_eq!(
            store.inner.commits.load(Ordering::SeqCst),
            1,
            "the batch run over the failed one never reached the store"
        );
        store.inner.fail.store(false, Ordering::SeqCst);
        // Later commits pass the gate at once.
        for _ in 0..4 {
            go.send(()).expect("open");
        }
        runtime().block_on(async {
            let seen = writer
                .read(|s, _| (s.task("t1").is_some(), s.task("t2").is_some()))
                .await;
            assert_eq!(
                seen,
                Ok((false, false)),
                "the state was rebuilt from the store"
            );
            assert_eq!(create(&writer, request("t3", 1, hour)).await, Ok(true));
        });
        let stored = store.inner.inner.load().expect("load");
        assert_eq!(stored.tasks.keys().collect::<Vec<_>>(), vec!["t3"]);
        drop(writer);
        drop(go);
        handle.join().expect("writer thread");
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
