//! The writer's tests.
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
    let granted = runtime().block_on(create(&writer, request("t1", 1, Duration::from_millis(50))));
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
    let granted = runtime().block_on(create(&writer, request("t1", 1, Duration::from_millis(50))));
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
    let granted = runtime().block_on(create(&writer, request("t1", 1, Duration::from_secs(60))));
    assert_eq!(granted, Ok(true));
    writer.stop();
    handle
        .join()
        .expect("the writer stops although `writer` is still alive");
    let late = runtime().block_on(writer.read(|s, _| s.lock_count()));
    assert_eq!(late, Err(WriterError::Stopped));
    assert!(store.inner.load().expect("load").tasks.contains_key("t1"));
}

/// A store whose commits wait at a gate: each commit says it started (and on which thread),
/// then waits until the test lets it go.
struct Gated {
    inner: Arc<Flaky>,
    started: Mutex<mpsc::Sender<String>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Store for Arc<Gated> {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        let _ = self.started.lock().expect("lock").send(thread);
        let _ = self.go.lock().expect("lock").recv();
        self.inner.commit(changes)
    }
}

fn gated() -> (Arc<Gated>, mpsc::Receiver<String>, mpsc::Sender<()>) {
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
    // Every batch handed to the commit thread, quiet or not.
    let (writer, handle) =
        Writer::start_with(state(), Box::new(store.clone()), false).expect("start");
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
    // Every batch handed to the commit thread, quiet or not.
    let (writer, handle) =
        Writer::start_with(state(), Box::new(store.clone()), false).expect("start");
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

/// A quiet request (alone in its batch, nobody queued behind it, the commit thread idle) is
/// committed on the writer thread, and still answered only after its commit. Requests
/// that queue up meanwhile go to the commit thread, so that the engine runs during commits
/// again once there is load.
#[test]
fn a_quiet_request_is_committed_in_line_and_load_goes_back_to_the_commit_thread() {
    let (store, started, go) = gated();
    let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
    let wait = Duration::from_secs(5);
    let hour = Duration::from_secs(3600);
    let mut first = Box::pin(create(&writer, request("t1", 1, hour)));
    assert_eq!(started.recv_timeout(wait).as_deref(), Ok("arbiter-writer"));
    assert!(ready_now(&mut first).is_none(), "a reply before its commit");
    // Two more while the writer thread is in that commit: they wait, and then come as one
    // batch that is not quiet.
    let second = create(&writer, request("t2", 2, hour));
    let third = writer.read(|s, _| s.task("t2").is_some());
    go.send(()).expect("let the first commit go");
    assert_eq!(started.recv_timeout(wait).as_deref(), Ok("arbiter-commit"));
    go.send(()).expect("let the second commit go");
    runtime().block_on(async {
        assert_eq!(first.await, Ok(true));
        assert_eq!(second.await, Ok(true));
        assert_eq!(third.await, Ok(true));
    });
    assert_eq!(store.inner.commits.load(Ordering::SeqCst), 2);
    assert_eq!(store.inner.inner.load().expect("load").tasks.len(), 2);
    drop(writer);
    drop(go);
    handle.join().expect("writer thread");
}

/// An agent's stream that closes while the writer's queue is full is still taken in: the node
/// must not count as having its agent forever.
#[test]
fn an_agent_detached_while_the_queue_is_full_is_not_lost() {
    let (store, started, go) = gated();
    let (writer, handle) = Writer::start(state(), Box::new(store.clone())).expect("start");
    let wait = Duration::from_secs(5);
    let rt = runtime();
    let agent = rt
        .block_on(writer.attach_agent(1))
        .expect("writer")
        .expect("node 1 exists");
    assert_eq!(
        rt.block_on(writer.read(|s, _| s.agent_connected(1))),
        Ok(true)
    );
    // The writer thread waits in a commit; the queue fills up behind it.
    let first = create(&writer, request("t1", 1, Duration::from_secs(3600)));
    started.recv_timeout(wait).expect("the commit starts");
    let mut queued = Vec::new();
    let mut full = false;
    for _ in 0..=QUEUE_CAPACITY {
        let mut read = Box::pin(writer.read(|_, _| ()));
        if let Some(Err(WriterError::Overloaded)) = ready_now(&mut read) {
            full = true;
            break;
        }
        queued.push(read);
    }
    assert!(full, "the queue never filled");
    drop(agent);
    drop(go);
    rt.block_on(async {
        assert_eq!(first.await, Ok(true));
        for read in queued {
            assert_eq!(read.await, Ok(()));
        }
        assert_eq!(writer.read(|s, _| s.agent_connected(1)).await, Ok(false));
    });
    drop(writer);
    handle.join().expect("writer thread");
}
