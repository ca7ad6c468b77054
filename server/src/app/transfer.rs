//! `arbiter-server export` and `import`: the whole state of a store as one file, to move an
//! arbiter from redb to etcd (or back), or to keep a copy.
//!
//! The file is JSON: a header (format name, version, where it came from, when) and the state
//! (the engine's [`Snapshot`]) with a BLAKE2b checksum over the state's bytes, so that a
//! truncated, damaged or foreign file is refused before anything is written.

use super::{AppError, ha, open_store};
use crate::config::{Config, StoreKind};
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
    changes
}

fn is_empty(s: &Snapshot) -> bool {
    *s == Snapshot::default()
}

/// `import --in FILE [--force]`.
pub async fn import(config: &Config, input: &Path, force: bool) -> Result<String, AppError> {
    let wanted = read_dump(input)?;
    let target = source_name(config);
    let refuse_full = |held: &Snapshot| -> Result<(), AppError> {
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
            store.commit(&replace(&held, &wanted)).map_err(|e| {
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
                let changes = replace(&replica.snapshot, &wanted);
                let store = EtcdStore::leading(
                    etcd.clone(),
                    keys.clone(),
                    epoch,
                    replica,
                    tokio::runtime::Handle::current(),
                );
                // The store blocks on the runtime: commit from a thread of its own.
                tokio::task::spawn_blocking(move || store.commit(&changes))
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
    Ok(format!(
        "imported {} tasks, {} node records (last fencing token {}) into {target}",
        wanted.tasks.len(),
        wanted.nodes.len(),
        wanted.counters.last_fencing_token
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
