//! `arbiter-server export` and `import`: the whole state of a store as one file, to move an
//! arbiter from redb to etcd (or back), or to keep a copy.
//!
//! The file is JSON: a header (format name, version, where it came from, when) and the state
//! (the engine's [`Snapshot`]) with a BLAKE2b checksum over the state's bytes, so that a
//! truncated, damaged or foreign file is refused before anything is written.
//!
//! `import` and `restore` put the file into the store in three commits ([`surgery_commits`]):
//! read-only mode on, naming the surgery ("restore from FILE in progress", by
//! `arbiter-server restore`); the data; read-only mode as the file has it (normally off). One
//! that is interrupted (killed, a power cut) leaves a store that a server opens read-only,
//! naming it, until an admin runs `arbiter read-only off --force` or the surgery is run again
//! (a store marked so is overwritten without `--force`: nothing but the surgery wrote to it).

use super::{AppError, ha, open_store};
use crate::config::{Config, StoreKind};
use crate::engine::freeze::ReadOnly;
use crate::engine::{Change, Snapshot};
use crate::store::etcd::EtcdStore;
use crate::store::etcd::layout::{self, Keys};
use crate::store::etcd::replica::Replica;
use crate::store::{Recovery, Store};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format name every export carries.
pub const FORMAT: &str = "arbiter-state";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// The file's header and the state.
#[derive(Debug, Serialize, Deserialize)]
struct Dump {
    format: String,
    version: u32,
    /// Where it was exported from ("redb ./arbiter-data", "etcd /arbiter/default").
    source: String,
    /// When (ms since the Unix epoch).
    exported_ms: u64,
    /// BLAKE2b-256 of `state`'s JSON text, hex.
    checksum: String,
    /// The state, as JSON text (so the checksum covers exactly these bytes).
    state: String,
}

fn bad_file(path: &Path, why: impl std::fmt::Display) -> AppError {
    AppError::Options(format!("{}: {why}; nothing was changed", path.display()))
}

fn io(what: String, e: impl std::fmt::Display) -> AppError {
    AppError::Io {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

fn source_name(config: &Config) -> String {
    match config.store {
        StoreKind::Redb => format!("redb {}", config.data_dir.display()),
        StoreKind::Etcd => format!("etcd {}", config.etcd_prefix),
    }
}

/// Reads the state of the configured store.
async fn read_state(config: &Config) -> Result<Snapshot, AppError> {
    match config.store {
        StoreKind::Redb => {
            let store = open_store(&config.data_dir, Recovery::Refuse)?;
            store.load().map_err(|e| {
                io(
                    format!("cannot read the store in {}", config.data_dir.display()),
                    e,
                )
            })
        }
        StoreKind::Etcd => {
            let (etcd, keys) = ha::connect(config).await?;
            let r = Replica::read(&etcd, &keys).await.map_err(|e| {
                io(
                    format!("cannot read the state under {}", config.etcd_prefix),
                    e,
                )
            })?;
            Ok(r.snapshot)
        }
    }
}

/// The text of an export (or backup) file of `snapshot`, taken from `source`.
pub fn encode_dump(snapshot: &Snapshot, source: &str) -> Result<String, String> {
    let state =
        serde_json::to_string(snapshot).map_err(|e| format!("cannot encode the state: {e}"))?;
    let dump = Dump {
        format: FORMAT.into(),
        version: VERSION,
        source: source.to_owned(),
        exported_ms: crate::cluster::instances::now_ms(),
        checksum: layout::checksum(state.as_bytes()),
        state,
    };
    serde_json::to_string_pretty(&dump).map_err(|e| format!("cannot encode the export: {e}"))
}

/// The state in an export (or backup) file, checked: format, version and checksum. The error
/// says what is wrong with the file.
pub fn decode_dump(text: &str) -> Result<Snapshot, String> {
    let dump: Dump =
        serde_json::from_str(text).map_err(|e| format!("not an arbiter state file ({e})"))?;
    if dump.format != FORMAT {
        return Err(format!("format '{}' is not '{FORMAT}'", dump.format));
    }
    if dump.version != VERSION {
        return Err(format!(
            "version {} is not {VERSION}, the one this arbiter-server reads",
            dump.version
        ));
    }
    if layout::checksum(dump.state.as_bytes()) != dump.checksum {
        return Err(String::from(
            "its checksum does not match: the file is damaged",
        ));
    }
    serde_json::from_str(&dump.state).map_err(|e| format!("the state does not decode: {e}"))
}

/// `export --out FILE`.
pub async fn export(config: &Config, out: &Path) -> Result<String, AppError> {
    let snapshot = read_state(config).await?;
    let source = source_name(config);
    let text = encode_dump(&snapshot, &source).map_err(|e| io(e.clone(), e))?;
    let summary = format!(
        "exported {} tasks, {} node records (last fencing token {}) from {source}",
        snapshot.tasks.len(),
        snapshot.nodes.len(),
        snapshot.counters.last_fencing_token,
    );
    if out == Path::new("-") {
        println!("{text}");
    } else {
        write_file(out, &text)?;
    }
    Ok(summary)
}

/// Writes `text` to `path` whole: a temporary file, flushed, renamed into place.
pub fn write_file(path: &Path, text: &str) -> Result<(), AppError> {
    let tmp = path.with_extension("tmp-export");
    std::fs::write(&tmp, text.as_bytes())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io(format!("cannot write {}", path.display()), e))
}

/// Reads and checks an export file.
fn read_dump(path: &Path) -> Result<Snapshot, AppError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad_file(path, format!("cannot read: {e}")))?;
    decode_dump(&text).map_err(|e| bad_file(path, e))
}

/// What turns `from` into `to`, in one batch.
fn replace(from: &Snapshot, to: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    for uid in from.tasks.keys().filter(|u| !to.tasks.contains_key(*u)) {
        changes.push(Change::DeleteTask(uid.clone()));
    }
    for id in from.nodes.keys().filter(|n| !to.nodes.contains_key(*n)) {
        changes.push(Change::DeleteNode(*id));
    }
    changes.extend(to.tasks.values().cloned().map(Change::PutTask));
    changes.extend(
        to.nodes
            .iter()
            .map(|(id, rt)| Change::PutNode(*id, rt.clone())),
    );
    changes.push(Change::PutCounters(to.counters));
    // The audit trail: the file's entries replace the store's.
    if let Some(last) = from.audit.keys().next_back() {
        changes.push(Change::DropAuditUpTo(*last));
    }
    changes.extend(to.audit.values().cloned().map(Change::PutAudit));
    // The freezes: the file's replace the store's.
    for (key, f) in &from.freezes {
        if !to.freezes.contains_key(key) {
            changes.push(Change::DeleteFreeze(f.scope.clone()));
        }
    }
    changes.extend(to.freezes.values().cloned().map(Change::PutFreeze));
    changes
}

fn is_empty(s: &Snapshot) -> bool {
    *s == Snapshot::default()
}

/// Which surgery puts a file into a store: the name of the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surgery {
    /// `arbiter-server import`.
    Import,
    /// `arbiter-server restore`.
    Restore,
}

impl Surgery {
    /// `restore`, `import`.
    pub fn name(self) -> &'static str {
        match self {
            Surgery::Import => "import",
            Surgery::Restore => "restore",
        }
    }

    /// Who turns read-only mode on while it runs: `arbiter-server restore`.
    pub fn by(self) -> String {
        format!("arbiter-server {}", self.name())
    }

    /// The read-only record it writes first.
    fn marker(self, input: &Path, now: crate::engine::Timestamp) -> ReadOnly {
        ReadOnly {
            by: self.by(),
            reason: format!("{} from {} in progress", self.name(), input.display()),
            since: now,
        }
    }
}

/// Whether a read-only record is one a restore or an import writes first (and replaces when
/// done): when a store holds it, that surgery was interrupted.
pub fn is_surgery(r: &ReadOnly) -> bool {
    [Surgery::Import, Surgery::Restore]
        .iter()
        .any(|s| r.by == s.by())
}

/// The read-only record of an interrupted restore or import, if the store holds one.
pub fn interrupted(held: &Snapshot) -> Option<&ReadOnly> {
    held.read_only.as_ref().filter(|r| is_surgery(r))
}

/// Logs a warning when the state starts read-only: it refuses every change until turned off.
pub fn warn_if_read_only(state: &crate::engine::State) {
    let Some(r) = state.read_only() else {
        return;
    };
    if is_surgery(r) {
        tracing::warn!(
            by = %r.by,
            reason = %r.reason,
            since = %r.since,
            "the store is read-only: an interrupted {} left it so ({}); every change is refused \
             until the {} is run again or an admin runs `arbiter read-only off --force`",
            r.by.trim_start_matches("arbiter-server "),
            r.text(),
            r.by,
        );
    } else {
        tracing::warn!(
            by = %r.by,
            reason = %r.reason,
            since = %r.since,
            "the store is read-only ({}); every change is refused until `arbiter read-only off`",
            r.text(),
        );
    }
}

/// The commits that turn a store holding `held` into one holding `wanted`, in order: read-only
/// mode on (`marker`), the data, and read-only mode as `wanted` has it. Each is one atomic
/// commit, so a store is never seen half-written, and one left by an interruption after the
/// first is read-only and names the surgery.
pub fn surgery_commits(held: &Snapshot, wanted: &Snapshot, marker: ReadOnly) -> [Vec<Change>; 3] {
    [
        vec![Change::PutReadOnly(Some(marker))],
        replace(held, wanted),
        vec![Change::PutReadOnly(wanted.read_only.clone())],
    ]
}

/// Runs [`surgery_commits`] on `store`, saying on stderr when read-only mode is on (so that an
/// operator watching a long one knows the store is marked).
fn run_surgery(
    store: &dyn Store,
    held: &Snapshot,
    wanted: &Snapshot,
    marker: ReadOnly,
    target: &str,
) -> Result<(), crate::store::StoreError> {
    let [first, data, last] = surgery_commits(held, wanted, marker);
    store.commit(&first)?;
    eprintln!(
        "read-only mode is on in {target} until the data is written ({} changes)",
        data.len()
    );
    store.commit(&data)?;
    store.commit(&last)
}

/// `import --in FILE [--force]` and `restore --in FILE [--force]`.
pub async fn import(
    config: &Config,
    input: &Path,
    force: bool,
    surgery: Surgery,
) -> Result<String, AppError> {
    let wanted = read_dump(input)?;
    let target = source_name(config);
    let marker = surgery.marker(
        input,
        crate::engine::Timestamp(crate::cluster::instances::now_ms()),
    );
    let mut redone: Option<String> = None;
    let mut refuse_full = |held: &Snapshot| -> Result<(), AppError> {
        if let Some(r) = interrupted(held) {
            // Left by an interrupted surgery: nothing else wrote to it since.
            redone = Some(format!(
                "; it replaced what an interrupted {} left ({})",
                surgery.name(),
                r.text()
            ));
            return Ok(());
        }
        if !force && !is_empty(held) {
            return Err(AppError::Options(format!(
                "{target} already holds {} tasks and {} node records: refusing to overwrite them \
                 without --force; nothing was changed",
                held.tasks.len(),
                held.nodes.len()
            )));
        }
        Ok(())
    };
    match config.store {
        StoreKind::Redb => {
            let store = open_store(&config.data_dir, Recovery::Refuse)?;
            let held = store.load().map_err(|e| {
                io(
                    format!("cannot read the store in {}", config.data_dir.display()),
                    e,
                )
            })?;
            refuse_full(&held)?;
            run_surgery(&store, &held, &wanted, marker, &target).map_err(|e| {
                io(
                    format!("cannot write the store in {}", config.data_dir.display()),
                    e,
                )
            })?;
        }
        StoreKind::Etcd => {
            let (etcd, keys) = ha::connect(config).await?;
            let (epoch, lease) = take_the_lead(&etcd, &keys).await?;
            let result = async {
                let replica = Replica::read(&etcd, &keys).await.map_err(|e| {
                    io(
                        format!("cannot read the state under {}", config.etcd_prefix),
                        e,
                    )
                })?;
                refuse_full(&replica.snapshot)?;
                let held = replica.snapshot.clone();
                let wanted = wanted.clone();
                let target = target.clone();
                let store = EtcdStore::leading(
                    etcd.clone(),
                    keys.clone(),
                    epoch,
                    replica,
                    tokio::runtime::Handle::current(),
                );
                // The store blocks on the runtime: commit from a thread of its own.
                tokio::task::spawn_blocking(move || {
                    run_surgery(&store, &held, &wanted, marker, &target)
                })
                .await
                .map_err(|e| io("the import thread failed".into(), e))?
                .map_err(|e| {
                    io(
                        format!("cannot write the state under {}", config.etcd_prefix),
                        e,
                    )
                })
            }
            .await;
            let _ = etcd
                .txn(
                    arbiter_etcd::TxnRequest {
                        compare: vec![arbiter_etcd::cmp_create_revision(
                            keys.leader(),
                            arbiter_etcd::CompareResult::Equal,
                            epoch,
                        )],
                        success: vec![arbiter_etcd::op_delete(keys.leader())],
                        failure: Vec::new(),
                    },
                    true,
                )
                .await;
            let _ = etcd.lease_revoke(lease).await;
            result?;
        }
    }
    let read_only = match &wanted.read_only {
        None => "read-only mode is off".to_owned(),
        Some(r) => format!("read-only mode stays on as the file has it: {}", r.text()),
    };
    Ok(format!(
        "{} {} tasks, {} node records (last fencing token {}) into {target}; {read_only}{}",
        match surgery {
            Surgery::Import => "imported",
            Surgery::Restore => "restored",
        },
        wanted.tasks.len(),
        wanted.nodes.len(),
        wanted.counters.last_fencing_token,
        redone.unwrap_or_default()
    ))
}

/// Takes the leader key for the import, refusing while an arbiter instance leads.
async fn take_the_lead(
    etcd: &arbiter_etcd::Etcd,
    keys: &Keys,
) -> Result<(i64, arbiter_etcd::LeaseId), AppError> {
    let lease = etcd
        .lease_grant(std::time::Duration::from_secs(30))
        .await
        .map_err(|e| io("cannot get an etcd lease".into(), e))?;
    let me = crate::cluster::Peer {
        id: format!("import-{}", std::process::id()),
        address: String::new(),
        epoch: 0,
    };
    let value = serde_json::to_vec(&me).map_err(|e| io("cannot encode".into(), e))?;
    let txn = arbiter_etcd::TxnRequest {
        compare: vec![arbiter_etcd::cmp_create_revision(
            keys.leader(),
            arbiter_etcd::CompareResult::Equal,
            0,
        )],
        success: vec![arbiter_etcd::op_put(keys.leader(), value, Some(lease))],
        failure: vec![arbiter_etcd::op_get(keys.leader())],
    };
    let r = etcd
        .txn(txn, true)
        .await
        .map_err(|e| io("cannot take the leader key".into(), e))?;
    if !r.succeeded {
        let _ = etcd.lease_revoke(lease).await;
        return Err(AppError::Options(
            "an arbiter instance leads this prefix: stop every instance before importing; nothing was changed"
                .into(),
        ));
    }
    Ok((r.header.as_ref().map_or(0, |h| h.revision), lease))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Timestamp;
    use crate::engine::freeze::{Freeze, FreezeScope};
    use crate::engine::record::{Counters, NodeRuntime};
    use crate::store::MemoryStore;
    use crate::store::StoreError;
    use std::sync::Mutex;

    /// A memory store that records every commit and, when told, fails from the n-th on (a
    /// process killed there: nothing of that commit or after it is stored).
    #[derive(Default)]
    struct Recording {
        inner: MemoryStore,
        commits: Mutex<Vec<Vec<Change>>>,
        die_at: Option<usize>,
    }

    impl Store for Recording {
        fn load(&self) -> Result<Snapshot, StoreError> {
            self.inner.load()
        }

        fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
            let mut commits = self.commits.lock().expect("lock");
            if self.die_at.is_some_and(|n| commits.len() >= n) {
                return Err(StoreError::Backend("killed".into()));
            }
            commits.push(changes.to_vec());
            self.inner.commit(changes)
        }
    }

    fn snapshot(nodes: &[u32], token: u64, frozen: bool) -> Snapshot {
        let mut s = Snapshot {
            counters: Counters {
                last_fencing_token: token,
                last_action_id: token,
            },
            ..Snapshot::default()
        };
        for n in nodes {
            let rt = NodeRuntime {
                down: true,
                down_reason: format!("node {n}"),
                ..NodeRuntime::default()
            };
            s.nodes.insert(*n, rt);
        }
        if frozen {
            let f = Freeze {
                scope: FreezeScope::Cluster,
                by: "alice".into(),
                reason: "change freeze".into(),
                since: Timestamp(1_000),
                until: None,
            };
            s.freezes.insert(f.scope.key(), f);
        }
        s
    }

    fn marker() -> ReadOnly {
        Surgery::Restore.marker(Path::new("/backups/b.json"), Timestamp(5_000))
    }

    #[test]
    fn a_restore_marks_the_store_read_only_first_and_unmarks_it_last() {
        let store = Recording::default();
        let held = snapshot(&[1, 2], 7, true);
        store
            .inner
            .commit(&replace(&Snapshot::default(), &held))
            .expect("seed");
        let wanted = snapshot(&[2, 3], 42, false);
        run_surgery(&store, &held, &wanted, marker(), "redb ./d").expect("restore");
        let commits = store.commits.lock().expect("lock").clone();
        assert_eq!(commits.len(), 3, "{commits:?}");
        assert_eq!(commits[0], vec![Change::PutReadOnly(Some(marker()))]);
        assert!(
            commits[1]
                .iter()
                .all(|c| !matches!(c, Change::PutReadOnly(_))),
            "the data commit leaves read-only mode alone"
        );
        assert_eq!(commits[2], vec![Change::PutReadOnly(None)]);
        // The store now holds the file's state exactly: node 1 and the freeze are gone.
        assert_eq!(store.load().expect("load"), wanted);
        assert_eq!(marker().by, "arbiter-server restore");
        assert_eq!(marker().reason, "restore from /backups/b.json in progress");
    }

    #[test]
    fn the_last_commit_keeps_read_only_mode_when_the_file_has_it() {
        let store = Recording::default();
        let mut wanted = snapshot(&[1], 3, true);
        let kept = ReadOnly {
            by: "root".into(),
            reason: "store migration".into(),
            since: Timestamp(2_000),
        };
        wanted.read_only = Some(kept.clone());
        let held = Snapshot::default();
        run_surgery(&store, &held, &wanted, marker(), "redb ./d").expect("restore");
        let commits = store.commits.lock().expect("lock").clone();
        assert_eq!(commits[2], vec![Change::PutReadOnly(Some(kept))]);
        let loaded = store.load().expect("load");
        assert_eq!(loaded, wanted);
        assert!(
            interrupted(&loaded).is_none(),
            "an admin's read-only mode is not surgery"
        );
    }

    #[test]
    fn an_interrupted_restore_leaves_a_store_that_starts_read_only() {
        let held = snapshot(&[1], 7, false);
        let wanted = snapshot(&[2, 3], 42, true);
        // Killed before the data commit, and before the last one.
        for die_at in [1, 2] {
            let store = Recording {
                die_at: Some(die_at),
                ..Recording::default()
            };
            store
                .inner
                .commit(&replace(&Snapshot::default(), &held))
                .expect("seed");
            assert!(run_surgery(&store, &held, &wanted, marker(), "redb ./d").is_err());
            let loaded = store.load().expect("load");
            assert_eq!(
                loaded.read_only,
                Some(marker()),
                "killed at commit {die_at}"
            );
            assert_eq!(interrupted(&loaded), Some(&marker()));
            let expected_nodes = if die_at == 1 {
                &held.nodes
            } else {
                &wanted.nodes
            };
            assert_eq!(&loaded.nodes, expected_nodes);
            // A server started on it refuses every change, naming the restore.
            let cluster = crate::engine::inventory::parse(
                "[[nodes]]\nid = 1\nhost = \"n1\"\nport = 1\n",
                crate::engine::inventory::Format::Toml,
            )
            .expect("inventory");
            let state = crate::engine::State::restore(std::sync::Arc::new(cluster), loaded.clone());
            let err = state.ensure_writable().expect_err("read-only");
            assert!(
                err.to_string()
                    .contains("arbiter-server restore: 'restore from /backups/b.json in progress'"),
                "{err}"
            );
            // Running it again finishes the job and unmarks the store.
            let again = Recording::default();
            again
                .inner
                .commit(&replace(&Snapshot::default(), &loaded))
                .expect("copy");
            again
                .inner
                .commit(&[Change::PutReadOnly(loaded.read_only.clone())])
                .expect("copy");
            run_surgery(&again, &loaded, &wanted, marker(), "redb ./d").expect("again");
            assert_eq!(again.load().expect("load"), wanted);
        }
    }
}
