//! The etcd backend against real etcd: the store conformance suite every backend passes, and
//! what only a fenced, shared store has to get right: a deposed leader commits nothing, a batch
//! larger than etcd's request limit goes in pieces, and the log is folded into a snapshot.
//!
//! Each store gets a prefix of its own and wins `<prefix>/leader` on a lease, as an instance
//! does (epoch = the winning Txn's revision). The store's methods block on a runtime handle, so
//! the tests call them from the test thread, with a multi-threaded runtime that runs on its own
//! threads; only the setup (leases, Txns, reads) runs inside it through `block_on`.

use arbiter_etcd::testing::EtcdCluster;
use arbiter_etcd::{CompareResult, Etcd};
use arbiter_server::engine::record::{Counters, NodeRuntime};
use arbiter_server::engine::task::{
    Action, ActionGroup, ActionStatus, Items, Mode, Reason, Scope, Task,
};
use arbiter_server::engine::{Change, Snapshot, Timestamp};
use arbiter_server::store::etcd::layout::Keys;
use arbiter_server::store::etcd::replica::Replica;
use arbiter_server::store::etcd::{EtcdStore, SNAPSHOT_EVERY};
use arbiter_server::store::suite::{Factory, run_all};
use arbiter_server::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A real etcd member, a client of it, and the runtime the client and the stores run on.
struct Env {
    // Dropped in this order: the client, the runtime, then the etcd member.
    etcd: Etcd,
    runtime: tokio::runtime::Runtime,
    _cluster: EtcdCluster,
}

impl Env {
    fn new() -> Env {
        // Started outside any runtime: the harness blocks while it waits for the member.
        let cluster = EtcdCluster::start(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let etcd = {
            let _inside = runtime.enter();
            cluster.client()
        };
        Env {
            etcd,
            runtime,
            _cluster: cluster,
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Wins `<prefix>/leader` (created only if absent, on a fresh lease); the epoch.
    fn win(&self, keys: &Keys, id: &str) -> i64 {
        self.block_on(async {
            let lease = self
                .etcd
                .lease_grant(Duration::from_secs(60))
                .await
                .expect("lease");
            let txn = arbiter_etcd::TxnRequest {
                compare: vec![arbiter_etcd::cmp_create_revision(
                    keys.leader(),
                    CompareResult::Equal,
                    0,
                )],
                success: vec![arbiter_etcd::op_put(
                    keys.leader(),
                    format!(r#"{{"id":"{id}","address":"127.0.0.1:1"}}"#).into_bytes(),
                    Some(lease),
                )],
                failure: Vec::new(),
            };
            let r = self.etcd.txn(txn, true).await.expect("campaign txn");
            assert!(r.succeeded, "the leader key of {keys:?} is free");
            r.header.expect("a header").revision
        })
    }

    /// Deletes the leader key (the lease ran out, or the leader resigned).
    fn lose(&self, keys: &Keys) {
        self.block_on(async {
            self.etcd
                .delete_prefix(keys.leader())
                .await
                .expect("delete the leader key");
        });
    }

    /// A leader's store: the state read now, fenced by `epoch`.
    fn store(&self, keys: &Keys, epoch: i64) -> EtcdStore {
        let replica = self
            .block_on(Replica::read(&self.etcd, keys))
            .expect("read the state");
        EtcdStore::leading(
            self.etcd.clone(),
            keys.clone(),
            epoch,
            replica,
            self.runtime.handle().clone(),
        )
    }

    /// Every key under `prefix` with its mod revision.
    fn keys_under(&self, prefix: Vec<u8>) -> BTreeMap<String, i64> {
        let (kvs, _) = self
            .block_on(self.etcd.range_prefix(prefix, 0))
            .expect("range");
        kvs.into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.mod_revision,
                )
            })
            .collect()
    }
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// A prefix no other store of this process uses.
fn fresh_keys(name: &str) -> Keys {
    let n = RUN.fetch_add(1, Ordering::SeqCst);
    Keys::new(&format!("/arbiter-test/{}-{n}/{name}", std::process::id()))
}

/// The suite's factory: `create` wins the leader key of a new prefix; `reopen` is another
/// instance taking over: the old key goes, a new epoch is won, the state read again.
struct EtcdFactory<'a> {
    env: &'a Env,
    prefixes: std::sync::Mutex<BTreeMap<String, Keys>>,
}

impl Factory for EtcdFactory<'_> {
    fn create(&self, key: &str) -> Box<dyn Store> {
        let keys = fresh_keys(key);
        let mut prefixes = self.prefixes.lock().expect("lock");
        assert!(
            prefixes.insert(key.to_owned(), keys.clone()).is_none(),
            "{key} is created once"
        );
        let epoch = self.env.win(&keys, "first");
        Box::new(self.env.store(&keys, epoch))
    }

    fn reopen(&self, key: &str) -> Option<Box<dyn Store>> {
        let keys = self.prefixes.lock().expect("lock")[key].clone();
        self.env.lose(&keys);
        let epoch = self.env.win(&keys, "next");
        Some(Box::new(self.env.store(&keys, epoch)))
    }
}

#[test]
fn etcd_store_conforms() {
    let env = Env::new();
    run_all(&EtcdFactory {
        env: &env,
        prefixes: std::sync::Mutex::new(BTreeMap::new()),
    });
}

fn task(uid: &str, actions: usize, pad: usize) -> Task {
    let actions = (0..actions)
        .map(|i| Action {
            id: format!("a-{uid}-{i}"),
            scope: Scope::Node(u32::try_from(i % 1000).expect("small")),
            duration: None,
            status: if i % 2 == 0 {
                ActionStatus::Performed {
                    granted_at: Timestamp(1),
                    deadline: Timestamp(600_001),
                    fencing_token: i as u64 + 1,
                }
            } else {
                ActionStatus::Pending {
                    reason: Reason::TooManyUnavailableVDisks,
                    details: format!("waiting for {i}: {}", "x".repeat(pad)),
                }
            },
            covers: (i % 2 == 0)
                .then(|| Items::Nodes(vec![u32::try_from(i % 1000).expect("small")])),
            kind: Default::default(),
            work: None,
        })
        .collect();
    Task {
        uid: uid.to_owned(),
        owner: "etcd-store-test".into(),
        description: "ha".into(),
        mode: Mode::Weak,
        priority: 0,
        composite: false,
        groups: vec![ActionGroup {
            id: "0".into(),
            actions,
        }],
        create_time: Timestamp(1),
        last_refresh_time: Timestamp(1),
        override_holds: false,
    }
}

fn model(changes: &[Change]) -> Snapshot {
    let mut s = Snapshot::default();
    for c in changes {
        s.apply(c);
    }
    s
}

#[test]
fn a_deposed_store_commits_nothing() {
    let env = Env::new();
    let keys = fresh_keys("deposed");
    let first = env.win(&keys, "a");
    let a = env.store(&keys, first);
    let before = vec![Change::PutTask(task("t1", 2, 0))];
    a.commit(&before).expect("the leader commits");

    // Another instance takes the leader key (ours expired and it won): a new epoch.
    env.lose(&keys);
    let second = env.win(&keys, "b");
    assert!(second > first);
    let written = env.keys_under(keys.all());

    // A small batch and one that goes in pieces: both refused, nothing written.
    let small = vec![Change::PutTask(task("t2", 2, 0))];
    match a.commit(&small) {
        Err(StoreError::Deposed(why)) => assert!(why.contains(&first.to_string()), "{why}"),
        other => panic!("a commit after losing the leader key must be Deposed: {other:?}"),
    }
    let large = vec![Change::PutTask(task("big", 4000, 400))];
    assert!(
        matches!(a.commit(&large), Err(StoreError::Deposed(_))),
        "stays deposed"
    );
    // A fresh handle on the old epoch (the writer rebuilt after a restart, say) tries and fails
    // the fence for a large batch too, before any piece is written.
    let stale = env.store(&keys, first);
    assert!(
        matches!(stale.commit(&large), Err(StoreError::Deposed(_))),
        "the fence of the pieces"
    );
    assert!(
        matches!(stale.commit(&small), Err(StoreError::Deposed(_))),
        "the fence of the log entry"
    );
    assert!(
        matches!(a.load(), Err(StoreError::Deposed(_))),
        "a deposed store does not load either"
    );
    assert_eq!(
        env.keys_under(keys.all()),
        written,
        "a deposed leader wrote something"
    );

    // The new leader sees exactly what the old one committed, and commits.
    let b = env.store(&keys, second);
    assert_eq!(b.load().expect("load"), model(&before));
    b.commit(&small).expect("the new leader commits");
    let mut all = before.clone();
    all.extend(small);
    assert_eq!(b.load().expect("load"), model(&all));
    // Every log entry names the epoch that wrote it.
    let (kvs, _) = env
        .block_on(env.etcd.range_prefix(keys.log(), 0))
        .expect("range");
    let epochs: Vec<i64> = kvs
        .iter()
        .map(|kv| {
            let v: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
            v["epoch"].as_i64().expect("an epoch")
        })
        .collect();
    assert_eq!(epochs, vec![first, second]);
}

#[test]
fn a_batch_over_a_mebibyte_commits_in_pieces_and_loads_back_equal() {
    let env = Env::new();
    let keys = fresh_keys("large");
    let epoch = env.win(&keys, "a");
    let s = env.store(&keys, epoch);
    let mut changes = vec![Change::PutTask(task("big", 6000, 300))];
    for i in 0..300 {
        changes.push(Change::PutTask(task(&format!("t{i}"), 4, 100)));
    }
    changes.push(Change::PutNode(
        3,
        NodeRuntime {
            down: true,
            down_reason: "disk".into(),
            ..NodeRuntime::default()
        },
    ));
    changes.push(Change::PutCounters(Counters {
        last_fencing_token: 6000,
        last_action_id: 7200,
    }));
    let bytes = serde_json::to_vec(&changes).expect("json").len();
    assert!(bytes > 2 << 20, "the batch is {bytes} bytes");
    s.commit(&changes).expect("a large commit");
    let parts = env.keys_under(keys.parts());
    assert!(
        parts.len() >= 4,
        "a {bytes}-byte batch goes in pieces: {:?}",
        parts.keys().collect::<Vec<_>>()
    );
    assert_eq!(env.keys_under(keys.log()).len(), 1, "one log entry");
    // Small commits after it.
    let later = vec![
        Change::DeleteTask("t7".into()),
        Change::PutTask(task("t8", 1, 0)),
    ];
    s.commit(&later).expect("a small commit after it");
    changes.extend(later);
    let want = model(&changes);
    assert_eq!(s.load().expect("load"), want);
    drop(s);
    // Another instance reads it back whole.
    env.lose(&keys);
    let next = env.win(&keys, "b");
    let r = env.block_on(Replica::read(&env.etcd, &keys)).expect("read");
    assert_eq!(r.seq, 2);
    assert!(r.snapshot == want, "the state read back differs");
    let s = env.store(&keys, next);
    assert!(s.load().expect("load") == want);
}

#[test]
fn more_than_snapshot_every_commits_make_a_snapshot_that_loads_back_equal() {
    let env = Env::new();
    let keys = fresh_keys("snapshot");
    let epoch = env.win(&keys, "a");
    let s = env.store(&keys, epoch);
    let commits = SNAPSHOT_EVERY + 5;
    let mut all = Vec::new();
    for n in 0..commits {
        let mut changes = vec![Change::PutTask(task(&format!("t{}", n % 50), 1, 0))];
        if n % 7 == 0 {
            changes.push(Change::DeleteTask(format!("t{}", (n / 7) % 50)));
        }
        changes.push(Change::PutCounters(Counters {
            last_fencing_token: n,
            last_action_id: 2 * n,
        }));
        s.commit(&changes).expect("commit");
        all.extend(changes);
    }
    let want = model(&all);
    let current = env
        .block_on(env.etcd.get(keys.snap_current()))
        .expect("get")
        .expect("a snapshot after SNAPSHOT_EVERY commits");
    let current: serde_json::Value = serde_json::from_slice(&current.value).expect("json");
    let seq = current["seq"].as_u64().expect("seq");
    assert!(
        (SNAPSHOT_EVERY..=commits).contains(&seq),
        "snapshot at {seq}"
    );
    let log = env.keys_under(keys.log());
    assert_eq!(
        log.len() as u64,
        commits - seq,
        "the log entries the snapshot includes are deleted: {:?}",
        log.keys().collect::<Vec<_>>()
    );
    assert!(
        !env.keys_under(keys.snap_parts(seq)).is_empty(),
        "the snapshot's pieces"
    );
    assert!(s.load().expect("load") == want, "load after the snapshot");
    drop(s);
    env.lose(&keys);
    let next = env.win(&keys, "b");
    let r = env.block_on(Replica::read(&env.etcd, &keys)).expect("read");
    assert_eq!(r.seq, commits);
    assert!(
        r.snapshot == want,
        "read back from the snapshot and the log"
    );
    let s = env.store(&keys, next);
    let more = vec![Change::DeleteTask("t1".into())];
    s.commit(&more)
        .expect("a commit after the snapshot, by the next leader");
    all.extend(more);
    assert!(s.load().expect("load") == model(&all));
}
