//! The conformance suite every [`Store`] backend must pass. A backend's test calls [`run_all`]
//! with a factory; `reopen` tells the suite how to get the same store back after dropping it
//! (`None` for stores that do not outlive the process).

use super::Store;
use crate::engine::audit::{AuditEntry, AuditKind};
use crate::engine::record::{Counters, NodeRuntime};
use crate::engine::task::{Action, ActionGroup, ActionStatus, Items, Mode, Reason, Scope, Task};
use crate::engine::{Change, Snapshot, Timestamp};

/// Creates a fresh, empty store; `reopen(key)` opens the store created with the same key again.
pub trait Factory {
    /// A new, empty store named `key`.
    fn create(&self, key: &str) -> Box<dyn Store>;
    /// The store named `key` again, after the previous handle was dropped; `None` when the
    /// backend does not persist.
    fn reopen(&self, key: &str) -> Option<Box<dyn Store>>;
}

fn task(uid: &str, token: u64) -> Task {
    Task {
        uid: uid.into(),
        owner: "alice".into(),
        description: "suite".into(),
        mode: Mode::Weak,
        priority: -3,
        composite: false,
        groups: vec![ActionGroup {
            id: "0".into(),
            actions: vec![
                Action {
                    id: format!("{uid}-a1"),
                    scope: Scope::Node(1),
                    duration: None,
                    status: ActionStatus::Performed {
                        granted_at: Timestamp(5),
                        deadline: Timestamp(300_005),
                        fencing_token: token,
                    },
                    covers: Some(Items::Nodes(vec![1])),
                    kind: crate::engine::drain::ActionKind::DrainFirst,
                    work: Some(crate::engine::drain::WorkState::Running { progress: 4_250 }),
                },
                Action {
                    id: format!("{uid}-a2"),
                    scope: Scope::Host("h".into()),
                    duration: None,
                    status: ActionStatus::Pending {
                        reason: Reason::TooManyUnavailableVDisks,
                        details: "d".into(),
                    },
                    covers: None,
                    kind: Default::default(),
                    work: None,
                },
            ],
        }],
        create_time: Timestamp(5),
        last_refresh_time: Timestamp(6),
        override_holds: false,
    }
}

fn batch() -> Vec<Change> {
    vec![
        Change::PutTask(task("t1", 1)),
        Change::PutTask(task("t2", 2)),
        Change::PutNode(
            3,
            NodeRuntime {
                down: true,
                down_reason: "disk failure".into(),
                ..NodeRuntime::default()
            },
        ),
        Change::PutCounters(Counters {
            last_fencing_token: 2,
            last_action_id: 4,
        }),
    ]
}

fn model(changes: &[Change]) -> Snapshot {
    let mut s = Snapshot::default();
    for c in changes {
        s.apply(c);
    }
    s
}

/// Runs every conformance check; panics with the failing check's name.
pub fn run_all(f: &dyn Factory) {
    empty_store_loads_empty(f);
    commit_then_load_round_trips(f);
    later_changes_replace_and_delete(f);
    empty_commit_changes_nothing(f);
    survives_reopen(f);
    reopening_sees_every_commit(f);
    audit_entries_are_kept_dropped_and_reopened(f);
    freezes_and_read_only_are_kept_lifted_and_reopened(f);
    grant_log_is_replaced_emptied_and_reopened(f);
}

fn grant_log_is_replaced_emptied_and_reopened(f: &dyn Factory) {
    use crate::engine::budget::Grant;
    let g = |at: u64, node: u32| Grant {
        at: Timestamp(at),
        node,
    };
    let s = f.create("grants");
    let mut all = vec![
        Change::PutGrants(vec![g(1000, 1)]),
        Change::PutGrants(vec![g(1000, 1), g(2000, 3), g(2000, 2)]),
    ];
    s.commit(&all).expect("commit");
    let expected = model(&all);
    assert_eq!(expected.grants.len(), 3);
    assert_eq!(s.load().expect("load"), expected, "grants: committed");
    drop(s);
    if let Some(s) = f.reopen("grants") {
        assert_eq!(s.load().expect("load"), expected, "grants: reopened");
        let later = vec![Change::PutGrants(Vec::new())];
        s.commit(&later).expect("commit");
        all.extend(later);
        let emptied = model(&all);
        assert!(emptied.grants.is_empty());
        assert_eq!(s.load().expect("load"), emptied, "grants: emptied");
    }
}

fn freezes_and_read_only_are_kept_lifted_and_reopened(f: &dyn Factory) {
    use crate::engine::freeze::{Freeze, FreezeScope, ReadOnly};
    let freeze = |scope: FreezeScope, until: Option<Timestamp>| Freeze {
        scope,
        by: "alice".into(),
        reason: "incident 4711".into(),
        since: Timestamp(1000),
        until,
    };
    let s = f.create("freezes");
    let mut all = vec![
        Change::PutFreeze(freeze(FreezeScope::Cluster, None)),
        Change::PutFreeze(freeze(
            FreezeScope::DataCenter("dc-1".into()),
            Some(Timestamp(9000)),
        )),
        Change::PutFreeze(freeze(FreezeScope::Tenant("/Root/db".into()), None)),
        Change::PutReadOnly(Some(ReadOnly {
            by: "root".into(),
            reason: "migration".into(),
            since: Timestamp(2000),
        })),
        Change::DeleteFreeze(FreezeScope::Cluster),
    ];
    s.commit(&all).expect("commit");
    let expected = model(&all);
    assert_eq!(expected.freezes.len(), 2);
    assert!(expected.read_only.is_some());
    assert_eq!(s.load().expect("load"), expected, "freezes: committed");
    drop(s);
    if let Some(s) = f.reopen("freezes") {
        assert_eq!(s.load().expect("load"), expected, "freezes: reopened");
        let later = vec![
            Change::PutReadOnly(None),
            Change::DeleteFreeze(FreezeScope::DataCenter("dc-1".into())),
        ];
        s.commit(&later).expect("commit");
        all.extend(later);
        assert_eq!(s.load().expect("load"), model(&all), "freezes: lifted");
    }
}

fn audit(seq: u64) -> AuditEntry {
    AuditEntry {
        seq,
        time: Timestamp(1000 + seq),
        user: "alice".into(),
        role: "operator".into(),
        peer: "127.0.0.1:5000".into(),
        task: format!("t{seq}"),
        nodes: vec![1, 2],
        detail: "node 1 (a-1): fencing token 3, until 2026-01-01T00:05:00Z, mode force".into(),
        fencing_token: seq,
        force: seq.is_multiple_of(2),
        ..AuditEntry::new(AuditKind::LockGranted)
    }
}

/// The audit trail rides the same commits: entries are appended with other changes, a
/// retention drop removes a range (only that range), and everything survives a reopen.
fn audit_entries_are_kept_dropped_and_reopened(f: &dyn Factory) {
    let s = f.create("audit");
    let mut all = batch();
    all.extend((1..=5).map(|seq| Change::PutAudit(audit(seq))));
    s.commit(&all).expect("commit");
    assert_eq!(s.load().expect("load"), model(&all), "audit: appended");
    let later = vec![
        Change::PutAudit(audit(6)),
        Change::DropAuditUpTo(3),
        Change::PutAudit(audit(7)),
        // Dropping what is already gone is not an error.
        Change::DropAuditUpTo(2),
    ];
    s.commit(&later).expect("commit");
    all.extend(later);
    let expected = model(&all);
    assert_eq!(
        expected.audit.keys().copied().collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(s.load().expect("load"), expected, "audit: dropped");
    drop(s);
    if let Some(s) = f.reopen("audit") {
        assert_eq!(s.load().expect("load"), expected, "audit: reopened");
        s.commit(&[Change::PutAudit(audit(8))]).expect("commit");
        all.push(Change::PutAudit(audit(8)));
        assert_eq!(s.load().expect("load"), model(&all), "audit: after reopen");
    }
}

fn empty_store_loads_empty(f: &dyn Factory) {
    let s = f.create("empty");
    assert_eq!(
        s.load().expect("load"),
        Snapshot::default(),
        "empty_store_loads_empty"
    );
}

fn commit_then_load_round_trips(f: &dyn Factory) {
    let s = f.create("round-trip");
    s.commit(&batch()).expect("commit");
    assert_eq!(
        s.load().expect("load"),
        model(&batch()),
        "commit_then_load_round_trips"
    );
}

fn later_changes_replace_and_delete(f: &dyn Factory) {
    let s = f.create("replace");
    s.commit(&batch()).expect("commit");
    let later = vec![
        Change::DeleteTask("t1".into()),
        Change::PutTask(task("t2", 9)),
        Change::PutNode(
            3,
            NodeRuntime {
                up_since: Some(Timestamp(7)),
                monitored: true,
                version: Some("24.4.1".into()),
                ..NodeRuntime::default()
            },
        ),
        Change::PutCounters(Counters {
            last_fencing_token: 9,
            last_action_id: 4,
        }),
        // Deleting what does not exist is not an error.
        Change::DeleteTask("never".into()),
        Change::DeleteNode(99),
        Change::PutNode(4, NodeRuntime::default()),
        Change::DeleteNode(4),
    ];
    s.commit(&later).expect("commit");
    let mut all = batch();
    all.extend(later);
    assert_eq!(
        s.load().expect("load"),
        model(&all),
        "later_changes_replace_and_delete"
    );
}

fn empty_commit_changes_nothing(f: &dyn Factory) {
    let s = f.create("noop");
    s.commit(&batch()).expect("commit");
    s.commit(&[]).expect("empty commit");
    assert_eq!(
        s.load().expect("load"),
        model(&batch()),
        "empty_commit_changes_nothing"
    );
}

fn survives_reopen(f: &dyn Factory) {
    let s = f.create("reopen");
    s.commit(&batch()).expect("commit");
    drop(s);
    if let Some(s) = f.reopen("reopen") {
        assert_eq!(s.load().expect("load"), model(&batch()), "survives_reopen");
    }
}

/// Many commits over several reopenings (and commits after each): every one of them is there,
/// and a reopened store keeps accepting commits.
fn reopening_sees_every_commit(f: &dyn Factory) {
    let mut all = Vec::new();
    let mut s = f.create("every-commit");
    for round in 0..3u32 {
        for i in 0..5u32 {
            let n = round * 5 + i;
            let mut changes = vec![Change::PutTask(task(&format!("t{n}"), u64::from(n)))];
            if n % 3 == 0 {
                changes.push(Change::DeleteTask(format!("t{}", n / 2)));
            }
            changes.push(Change::PutNode(
                n % 4,
                NodeRuntime {
                    down: n % 2 == 0,
                    ..NodeRuntime::default()
                },
            ));
            changes.push(Change::PutCounters(Counters {
                last_fencing_token: u64::from(n),
                last_action_id: u64::from(2 * n),
            }));
            s.commit(&changes).expect("commit");
            all.extend(changes);
        }
        assert_eq!(
            s.load().expect("load"),
            model(&all),
            "reopening_sees_every_commit"
        );
        drop(s);
        s = match f.reopen("every-commit") {
            Some(s) => s,
            None => return,
        };
        assert_eq!(
            s.load().expect("load after reopen"),
            model(&all),
            "reopening_sees_every_commit (round {round})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Recovery, RedbStore};
    use std::path::PathBuf;

    struct Memory;

    impl Factory for Memory {
        fn create(&self, _key: &str) -> Box<dyn Store> {
            Box::new(MemoryStore::default())
        }

        fn reopen(&self, _key: &str) -> Option<Box<dyn Store>> {
            None
        }
    }

    struct Redb(PathBuf);

    impl Factory for Redb {
        fn create(&self, key: &str) -> Box<dyn Store> {
            let dir = self.0.join(key);
            assert!(!dir.exists(), "{key} is created once");
            std::fs::create_dir_all(&dir).expect("data dir");
            Box::new(RedbStore::open(&dir, Recovery::Refuse).expect("open"))
        }

        fn reopen(&self, key: &str) -> Option<Box<dyn Store>> {
            Some(Box::new(
                RedbStore::open(&self.0.join(key), Recovery::Refuse).expect("reopen"),
            ))
        }
    }

    #[test]
    fn memory_store_conforms() {
        run_all(&Memory);
    }

    #[test]
    fn redb_store_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        run_all(&Redb(dir.path().to_path_buf()));
    }

    #[test]
    fn redb_reports_a_corrupt_record_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(crate::store::STORE_FILE);
        {
            let db = redb::Database::create(&path).expect("create");
            let tx = db.begin_write().expect("tx");
            {
                let mut t = tx
                    .open_table(redb::TableDefinition::<&str, &[u8]>::new("tasks"))
                    .expect("table");
                t.insert("broken", b"not json".as_slice()).expect("insert");
            }
            tx.commit().expect("commit");
        }
        let err = RedbStore::open(dir.path(), Recovery::Refuse).expect_err("corrupt");
        assert!(err.to_string().contains("'broken'"), "{err}");
    }
}
