//! The redb backend's own tests: integrity, the seal, the write-ahead log.
use super::*;
use crate::engine::Timestamp;
use crate::engine::task::{Action, ActionGroup, ActionStatus, Items, Mode, Scope};

fn task(uid: &str) -> Task {
    Task {
        uid: uid.into(),
        owner: "alice".into(),
        description: "x".repeat(200),
        mode: Mode::Weak,
        priority: 0,
        composite: false,
        groups: vec![ActionGroup {
            id: "0".into(),
            actions: vec![Action {
                id: format!("{uid}-a"),
                scope: Scope::Node(1),
                duration: None,
                status: ActionStatus::Performed {
                    granted_at: Timestamp(1),
                    deadline: Timestamp(2),
                    fencing_token: 1,
                },
                covers: Some(Items::Nodes(vec![1])),
                kind: Default::default(),
                work: None,
            }],
        }],
        create_time: Timestamp(1),
        last_refresh_time: Timestamp(1),
        override_holds: false,
    }
}

/// A data directory whose store holds `n` tasks, committed one by one.
fn store_with_tasks(dir: &Path, n: usize) {
    let s = RedbStore::open(dir, Recovery::Refuse).expect("open");
    for i in 0..n {
        s.commit(&[Change::PutTask(task(&format!("t{i}")))])
            .expect("commit");
    }
}

fn refused(dir: &Path) -> (PathBuf, Distrust) {
    match RedbStore::open(dir, Recovery::Refuse) {
        Err(StoreError::Untrusted { path, problem, .. }) => (path, problem),
        Err(e) => panic!("want Untrusted, got {e}"),
        Ok(s) => panic!(
            "want a refusal, it opened with {} tasks",
            s.load().map(|s| s.tasks.len()).unwrap_or(0)
        ),
    }
}

/// Deterministic bytes that look random (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn damage_from(path: &Path, offset: usize, seed: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    assert!(bytes.len() > offset, "the file has {} bytes", bytes.len());
    let len = bytes.len() - offset;
    bytes[offset..].copy_from_slice(&noise(len, seed));
    std::fs::write(path, bytes).expect("write");
}

fn lost_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}.lost-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_fresh_directory_starts_empty_and_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    assert_eq!(s.load().expect("load"), Snapshot::default());
    assert!(dir.path().join(STORE_FILE).is_file());
    assert!(matches!(
        seal::read(&dir.path().join(SEAL_FILE)).expect("seal"),
        Found::Present(Seal { seq: 0, .. })
    ));
    s.commit(&[Change::PutTask(task("t"))]).expect("commit");
    assert!(matches!(
        seal::read(&dir.path().join(SEAL_FILE)).expect("seal"),
        Found::Present(Seal { seq: 1, .. })
    ));
    drop(s);
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("reopen");
    assert!(s.load().expect("load").tasks.contains_key("t"));
}

#[test]
fn a_damaged_file_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 30);
    let file = dir.path().join(STORE_FILE);
    damage_from(&file, 4096, 1);
    let (path, problem) = refused(dir.path());
    assert_eq!(path, file);
    assert!(matches!(problem, Distrust::Damaged(_)), "{problem}");
    // Refusing changed nothing: still refused.
    assert!(matches!(refused(dir.path()).1, Distrust::Damaged(_)));
}

#[test]
fn a_panic_in_redb_is_contained() {
    // Without the integrity check, redb 4.5 panics on this file (an `unreachable!` in its
    // b-tree code): `contain` turns that into an error, quietly.
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 30);
    let file = dir.path().join(STORE_FILE);
    damage_from(&file, 4096, 88);
    let plain = contain(|| Database::create(&file).map(drop));
    assert!(!matches!(plain, Ok(Ok(()))), "redb accepted a damaged file");
    // The store itself never even gets that far.
    assert!(matches!(refused(dir.path()).1, Distrust::Damaged(_)));
}

#[test]
fn damage_anywhere_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 10);
    let file = dir.path().join(STORE_FILE);
    let pristine = std::fs::read(&file).expect("read");
    let seal = std::fs::read(dir.path().join(SEAL_FILE)).expect("seal");
    for (i, offset) in [
        0usize, 9, 64, 300, 512, 1024, 4096, 4200, 8192, 12_000, 20_000,
    ]
    .into_iter()
    .enumerate()
    {
        if offset >= pristine.len() {
            continue;
        }
        let mut bytes = pristine.clone();
        let end = (offset + 64).min(bytes.len());
        bytes[offset..end].copy_from_slice(&noise(end - offset, i as u64 + 7));
        std::fs::write(&file, &bytes).expect("write");
        std::fs::write(dir.path().join(SEAL_FILE), &seal).expect("seal");
        // Either redb finds nothing wrong that matters (unused bytes) and every record is
        // there, or the file is refused: never a panic, never a silent loss.
        match RedbStore::open(dir.path(), Recovery::Refuse) {
            Ok(s) => assert_eq!(s.load().expect("load").tasks.len(), 10, "offset {offset}"),
            Err(StoreError::Untrusted { .. } | StoreError::Backend(_)) => {}
            Err(e) => panic!("offset {offset}: {e}"),
        }
    }
    // Garbage from the first byte on.
    std::fs::write(&file, noise(pristine.len(), 99)).expect("write");
    std::fs::write(dir.path().join(SEAL_FILE), &seal).expect("seal");
    assert!(matches!(refused(dir.path()).1, Distrust::Damaged(_)));
}

#[test]
fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 3);
    let file = dir.path().join(STORE_FILE);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    assert_eq!(refused(dir.path()), (file.clone(), Distrust::Empty));
    // Still there, still empty: refusing creates nothing.
    assert_eq!(std::fs::metadata(&file).expect("meta").len(), 0);
}

#[test]
fn a_deleted_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 3);
    let file = dir.path().join(STORE_FILE);
    std::fs::remove_file(&file).expect("delete");
    assert_eq!(refused(dir.path()), (file.clone(), Distrust::Missing));
    assert!(!file.exists(), "refusing must not create a new store");
}

#[test]
fn a_rolled_back_copy_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 3);
    let file = dir.path().join(STORE_FILE);
    let old = std::fs::read(&file).expect("copy");
    {
        let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
        s.commit(&[Change::DeleteTask("t0".into())])
            .expect("commit");
        s.commit(&[Change::PutTask(task("t9"))]).expect("commit");
    }
    std::fs::write(&file, old).expect("restore the old copy");
    assert_eq!(
        refused(dir.path()),
        (
            file,
            Distrust::RolledBack {
                found: 3,
                expected: 5
            }
        )
    );
}

#[test]
fn another_store_in_its_place_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 1);
    store_with_tasks(other.path(), 5);
    let file = dir.path().join(STORE_FILE);
    std::fs::copy(other.path().join(STORE_FILE), &file).expect("copy");
    let (path, problem) = refused(dir.path());
    assert_eq!(path, file);
    assert!(
        matches!(problem, Distrust::Replaced { found: Some(_), .. }),
        "{problem}"
    );
}

#[test]
fn a_store_ahead_of_its_seal_is_accepted() {
    // A crash before the seal was written, or a power loss before it was flushed: behind.
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 2);
    let seal_path = dir.path().join(SEAL_FILE);
    let behind = std::fs::read(&seal_path).expect("seal");
    store_with_tasks(dir.path(), 2);
    std::fs::write(&seal_path, behind).expect("seal two behind");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("ahead is fine");
    assert_eq!(s.load().expect("load").tasks.len(), 2);
    // Brought up to date at once, before the first commit.
    assert!(matches!(
        seal::read(&seal_path).expect("seal"),
        Found::Present(Seal { seq: 4, .. })
    ));
}

#[test]
fn a_directory_from_before_seals_is_accepted_and_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(STORE_FILE);
    // What the previous version wrote: the three tables, no identity, no commit number.
    {
        let db = Database::create(&file).expect("create");
        let tx = db.begin_write().expect("tx");
        {
            let mut tasks = tx.open_table(TASKS).expect("tasks");
            tasks
                .insert("old", encode(&task("old")).expect("json").as_slice())
                .expect("insert");
            tx.open_table(NODES).expect("nodes");
            tx.open_table(META).expect("meta");
        }
        tx.commit().expect("commit");
    }
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("legacy accepted");
    assert!(s.load().expect("load").tasks.contains_key("old"));
    s.commit(&[Change::PutTask(task("new"))]).expect("commit");
    drop(s);
    assert!(matches!(
        seal::read(&dir.path().join(SEAL_FILE)).expect("seal"),
        Found::Present(Seal { seq: 1, .. })
    ));
    // From now on it is protected like any other.
    std::fs::remove_file(&file).expect("delete");
    assert_eq!(refused(dir.path()).1, Distrust::Missing);
}

#[test]
fn a_damaged_seal_is_refused_and_accepting_keeps_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 2);
    let seal_path = dir.path().join(SEAL_FILE);
    std::fs::write(&seal_path, b"garbage").expect("damage the seal");
    let (path, problem) = refused(dir.path());
    assert_eq!(path, seal_path);
    assert!(matches!(problem, Distrust::SealDamaged(_)), "{problem}");
    let s = RedbStore::open(dir.path(), Recovery::AcceptLoss).expect("accepted");
    assert_eq!(s.load().expect("load").tasks.len(), 2);
    assert_eq!(lost_files(dir.path(), SEAL_FILE).len(), 1);
    assert!(lost_files(dir.path(), STORE_FILE).is_empty());
}

#[test]
fn accepting_loss_moves_the_file_aside_and_starts_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 30);
    let file = dir.path().join(STORE_FILE);
    damage_from(&file, 4096, 3);
    let damaged = std::fs::read(&file).expect("read");
    let s = RedbStore::open(dir.path(), Recovery::AcceptLoss).expect("accepted");
    assert_eq!(s.load().expect("load"), Snapshot::default());
    let moved = lost_files(dir.path(), STORE_FILE);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(std::fs::read(&moved[0]).expect("moved"), damaged);
    assert_eq!(lost_files(dir.path(), SEAL_FILE).len(), 1);
    s.commit(&[Change::PutTask(task("after"))]).expect("commit");
    drop(s);
    // The new store is sealed: a plain start takes it.
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("reopen");
    assert_eq!(s.load().expect("load").tasks.len(), 1);
    // Accepting loss when nothing is wrong moves nothing.
    drop(s);
    let s = RedbStore::open(dir.path(), Recovery::AcceptLoss).expect("reopen");
    assert_eq!(s.load().expect("load").tasks.len(), 1);
    assert_eq!(lost_files(dir.path(), STORE_FILE).len(), 1);
}

#[test]
fn accepting_loss_of_a_deleted_store_starts_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    store_with_tasks(dir.path(), 3);
    std::fs::remove_file(dir.path().join(STORE_FILE)).expect("delete");
    let s = RedbStore::open(dir.path(), Recovery::AcceptLoss).expect("accepted");
    assert_eq!(s.load().expect("load"), Snapshot::default());
    assert_eq!(lost_files(dir.path(), SEAL_FILE).len(), 1);
}

#[test]
fn a_store_in_use_is_never_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    running
        .commit(&[Change::PutTask(task("t"))])
        .expect("commit");
    match RedbStore::open(dir.path(), Recovery::AcceptLoss) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains(STORE_FILE), "{msg}"),
        other => panic!("want a backend error, got {other:?}"),
    }
    assert!(lost_files(dir.path(), STORE_FILE).is_empty());
    assert!(running.load().expect("load").tasks.contains_key("t"));
}

/// What a `kill -9` leaves: the data directory's files as they are on disk while the store is
/// still open (redb's file holds only its last flushed commit; the rest is in the log).
fn crash_copy(from: &Path, to: &Path, files: &[&str]) {
    for name in files {
        std::fs::copy(from.join(name), to.join(name)).expect("copy");
    }
}

const ALL: [&str; 3] = [STORE_FILE, SEAL_FILE, WAL_FILE];

fn log_records(dir: &Path) -> (u64, usize) {
    match wal::read(&dir.join(WAL_FILE)).expect("read") {
        wal::Found::Log { base, records, .. } => (base, records.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_a_crash_the_log_gives_back_every_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    for i in 0..10 {
        s.commit(&[Change::PutTask(task(&format!("t{i}")))])
            .expect("commit");
    }
    s.commit(&[Change::DeleteTask("t3".into())])
        .expect("commit");
    assert_eq!(log_records(dir.path()), (0, 11), "no checkpoint yet");
    crash_copy(dir.path(), crashed.path(), &ALL);
    let want = s.load().expect("load");
    drop(s);
    let r = RedbStore::open(crashed.path(), Recovery::Refuse).expect("replayed");
    assert_eq!(r.load().expect("load"), want);
    assert_eq!(want.tasks.len(), 9);
    // Replayed into the redb file and flushed: the log starts after it.
    assert_eq!(log_records(crashed.path()), (11, 0));
    // And the next commit continues the numbering.
    r.commit(&[Change::PutTask(task("t10"))]).expect("commit");
    assert!(matches!(
        seal::read(&crashed.path().join(SEAL_FILE)).expect("seal"),
        Found::Present(Seal { seq: 12, .. })
    ));
}

#[test]
fn checkpoints_keep_the_log_short_and_a_clean_stop_empties_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    let n = wal::CHECKPOINT_COMMITS + 3;
    for i in 0..n {
        s.commit(&[Change::PutTask(task(&format!("t{i}")))])
            .expect("commit");
    }
    assert_eq!(log_records(dir.path()), (wal::CHECKPOINT_COMMITS, 3));
    crash_copy(dir.path(), crashed.path(), &ALL);
    drop(s);
    assert_eq!(
        log_records(dir.path()),
        (n, 0),
        "the last checkpoint at the stop"
    );
    let tasks = |d: &Path| {
        RedbStore::open(d, Recovery::Refuse)
            .expect("open")
            .load()
            .expect("load")
            .tasks
            .len() as u64
    };
    assert_eq!(tasks(crashed.path()), n);
    // After a clean stop the redb file alone holds everything: a lost log loses nothing.
    std::fs::remove_file(dir.path().join(WAL_FILE)).expect("remove");
    assert_eq!(tasks(dir.path()), n);
}

#[test]
fn a_torn_last_record_is_a_batch_that_never_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    for i in 0..5 {
        s.commit(&[Change::PutTask(task(&format!("t{i}")))])
            .expect("commit");
    }
    crash_copy(dir.path(), crashed.path(), &[SEAL_FILE]);
    // The sixth batch's record is torn by the crash: its commit never returned.
    s.commit(&[Change::PutTask(task("t5"))]).expect("commit");
    crash_copy(dir.path(), crashed.path(), &[STORE_FILE, WAL_FILE]);
    drop(s);
    let log = crashed.path().join(WAL_FILE);
    let mut bytes = std::fs::read(&log).expect("read");
    let end = bytes.iter().rposition(|&b| b != 0).expect("records");
    bytes[end] ^= 0x55;
    std::fs::write(&log, &bytes).expect("tear");
    let r = RedbStore::open(crashed.path(), Recovery::Refuse).expect("open");
    let tasks = r.load().expect("load").tasks;
    assert_eq!(tasks.len(), 5);
    assert!(!tasks.contains_key("t5"));
}

#[test]
fn a_lost_or_foreign_log_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    store_with_tasks(other.path(), 1);
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    for i in 0..4 {
        s.commit(&[Change::PutTask(task(&format!("t{i}")))])
            .expect("commit");
    }
    // The log went missing after a crash: the seal knows of commit 4, redb only of 0.
    crash_copy(dir.path(), crashed.path(), &[STORE_FILE, SEAL_FILE]);
    assert_eq!(
        refused(crashed.path()),
        (
            crashed.path().join(STORE_FILE),
            Distrust::RolledBack {
                found: 0,
                expected: 4
            }
        )
    );
    // Another store's log in its place.
    std::fs::copy(other.path().join(WAL_FILE), crashed.path().join(WAL_FILE)).expect("copy");
    let (path, problem) = refused(crashed.path());
    assert_eq!(path, crashed.path().join(WAL_FILE));
    assert!(
        matches!(&problem, Distrust::Damaged(why) if why.contains("belongs to store")),
        "{problem}"
    );
    // Garbage in its place.
    std::fs::write(crashed.path().join(WAL_FILE), noise(9000, 3)).expect("write");
    let (path, problem) = refused(crashed.path());
    assert_eq!(path, crashed.path().join(WAL_FILE));
    assert!(
        matches!(&problem, Distrust::Damaged(why) if why.contains("unreadable")),
        "{problem}"
    );
    // Accepting the loss moves the store, its seal and its log aside and starts empty.
    let fresh = RedbStore::open(crashed.path(), Recovery::AcceptLoss).expect("accept");
    assert!(fresh.load().expect("load").tasks.is_empty());
    drop(s);
}

#[test]
fn a_batch_is_answered_once_durable_in_the_log_and_applied_to_redb_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    s.commit(&[Change::PutTask(task("t0"))]).expect("commit");
    let mut heard = Vec::new();
    s.commit_then(&[Change::PutTask(task("t1"))], &mut |outcome| {
        // Durable: the log and the seal hold it; redb does not yet (nobody waits for that).
        heard.push(outcome.is_ok());
        assert_eq!(log_records(dir.path()), (0, 2));
        let seal = seal::read(&dir.path().join(SEAL_FILE)).expect("seal");
        assert!(
            matches!(seal, Found::Present(Seal { seq: 2, .. })),
            "{seal:?}"
        );
        let read = s.db.begin_read().expect("read");
        let tasks = read.open_table(TASKS).expect("tasks");
        assert!(tasks.get("t1").expect("get").is_none());
        // What a crash right now leaves: the log gives the batch back.
        crash_copy(dir.path(), crashed.path(), &ALL);
    });
    assert_eq!(heard, [true], "told exactly once");
    assert_eq!(s.load().expect("load").tasks.len(), 2);
    drop(s);
    let r = RedbStore::open(crashed.path(), Recovery::Refuse).expect("replayed");
    assert_eq!(r.load().expect("load").tasks.len(), 2);
}

#[test]
fn a_broken_store_tells_each_batch_so_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path(), Recovery::Refuse).expect("open");
    let _ = s.break_on("a test broke it".into());
    let mut heard = Vec::new();
    s.commit_then(&[Change::PutTask(task("t"))], &mut |outcome| {
        heard.push(outcome.map_err(|e| e.to_string()));
    });
    assert_eq!(heard.len(), 1);
    let why = heard[0].as_ref().expect_err("refused");
    assert!(why.contains("a test broke it"), "{why}");
    assert_eq!(log_records(dir.path()), (0, 0), "nothing was logged");
}
