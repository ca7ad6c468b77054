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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Set when soft state a check reads changed (an agent came, by a job, or went, by
    /// `Loop::take_detached`): the batch re-checks the driven tasks as if something had been
    /// committed.
    poke: bool,
}

/// A cloneable handle for submitting jobs. The writer stops when every handle is dropped, or
/// when [`Writer::stop`] is called.
#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Job>,
    stopping: Arc<AtomicBool>,
    /// Agents' order streams that closed, for the next batch to take in (see
    /// [`Writer::detach_agent`]).
    detached: Detached,
}

/// Nodes whose agent's order stream closed, not yet taken in by the writer.
type Detached = Arc<Mutex<Vec<NodeId>>>;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the writer thread over a restored state and its store.
    pub fn start(state: State, store: Box<dyn Store>) -> std::io::Result<(Writer, JoinHandle<()>)> {
        Writer::start_with(state, store, true)
    }

    /// [`Writer::start`]; `inline`: whether a quiet batch may be committed on the writer thread
    /// (`pipeline`). Tests of the pipeline itself turn it off.
    fn start_with(
        state: State,
        store: Box<dyn Store>,
        inline: bool,
    ) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let store: Arc<dyn Store> = Arc::from(store);
        let pipeline = Pipeline::start(store.clone(), inline)?;
        let detached = Detached::default();
        let theirs = detached.clone();
        let handle = std::thread::Builder::new()
            .name("arbiter-writer".into())
            .spawn(move || Loop::new(state, store, pipeline, theirs).run(&rx, &flag))?;
        let writer = Writer {
            tx,
            stopping,
            detached,
        };
        Ok((writer, handle))
    }

    /// Makes the writer stop after the batch it is running (committed and answered). Later
    /// calls, and jobs still queued, are answered with [`WriterError::Stopped`]. For shutdown
    /// when some connections still hold handles.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Wakes an idle writer; if the queue is full it is busy and runs a batch soon anyway.
    fn wake(&self) {
        let _ = self
            .tx
            .try_send(Box::new(|_, _| (Vec::new(), Box::new(|_| {}))));
    }

    /// An agent's order stream for `node` closed. It must not be lost, not even when the queue
    /// is full (the node would count as having its agent forever): it is noted where the next
    /// batch takes it in before its jobs, and the writer is woken.
    fn detach_agent(&self, node: NodeId) {
        self.detached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(node);
        self.wake();
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
            let detach = Box::new(move || writer.detach_agent(node));
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
    /// See [`Writer::detach_agent`].
    detached: Detached,
}

impl Loop {
    fn new(state: State, store: Arc<dyn Store>, pipeline: Pipeline, detached: Detached) -> Loop {
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
            detached,
        }
    }

    /// The agents whose order streams closed since the last batch, taken in.
    fn take_detached(&mut self, now: Timestamp) {
        let nodes =
            std::mem::take(&mut *self.detached.lock().unwrap_or_else(PoisonError::into_inner));
        for node in nodes {
            self.core.state.agent_detached(node, now);
            self.core.agents.prune(node);
            self.core.poke = true;
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
            // Quiet: nobody else is waiting (see `Pipeline::send`).
            let quiet = jobs.len() <= 1;
            if !self.batch(jobs, quiet) {
                break;
            }
        }
        // Every batch handed over is committed (or refused) and answered.
        self.pipeline.drain();
        tracing::info!("writer stopped");
    }

    /// Runs one batch and hands it to the commit stage (`quiet`: see `Pipeline::send`); false
    /// when the state could not be recovered from a failed commit and the writer must stop.
    fn batch(&mut self, jobs: Vec<Job>, quiet: bool) -> bool {
        if self.pipeline.failed(self.generation) {
            // Jobs not run are dropped: their callers hear that the writer stopped.
            if !self.recover() {
                return false;
            }
            self.generation += 1;
        }
        let started = std::time::Instant::now();
        let now = self.now();
        self.take_detached(now);
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
                // The log lines last: nobody waits for them.
                log_ticked(&ticked);
                log_grants(&granted_entries);
            }
            Err(err) => {
                tracing::error!(error = %err, jobs = replies.len(), "batch refused");
                for reply in replies {
                    reply(Err(err.clone()));
                }
            }
        });
        let batch = Batch {
            generation: self.generation,
            changes,
            finish,
        };
        self.pipeline.send(batch, quiet);
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
mod tests;
