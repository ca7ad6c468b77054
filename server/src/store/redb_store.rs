//! The embedded backend: one redb file in the data directory, its write-ahead log and its seal
//! beside it.
//!
//! A batch is durable once its record is in the write-ahead log ([`WAL_FILE`], see `wal.rs` and
//! `redb_store/write_ahead.rs`): one small in-place write and one `fdatasync`. redb then applies
//! it in a write transaction (atomic) without flushing; a checkpoint every so many batches (a
//! flushed redb commit) makes the redb file hold everything so far, and open replays what it
//! lacks after a crash (redb applies a batch after its caller was told it is durable, so the
//! reply does not wait for that). What neither can say is whether the files found are the ones
//! this data directory last committed to; that is what the seal ([`SEAL_FILE`], see `seal.rs`)
//! is for.
//!
//! # Never lying about what it holds
//! - The `meta` table holds the store's identity (random, chosen at creation) and a commit number,
//!   incremented in the same write transaction as every batch; the log's records carry the same
//!   numbers. Once a commit is durable the seal records (identity, number), in line and
//!   flushed now and then (`sealer.rs`): never ahead of the store; after a crash of the process
//!   it holds the last answered commit, after a power loss it may lack the last 100 ms of them;
//!   exact after the store is dropped.
//! - [`RedbStore::open`] compares them. No seal and no store file: a new data directory. A seal
//!   but no store, an empty one, another identity, or fewer commits (the redb file and the log
//!   together) than the seal records: refused ([`StoreError::Untrusted`]), before anything of the
//!   log is applied. So is a log that is unreadable, belongs to another store, or continues from
//!   a checkpoint the redb file lacks. A store ahead of its seal (a crash before the seal caught
//!   up) is fine. A store without a seal (a data directory from before seals, or a seal moved
//!   aside on purpose) is accepted as it is and sealed; one without a log is given one.
//! - The file is opened with redb's integrity check (every page checksum is verified, so a
//!   damaged file is an error instead of a panic later; it reads the whole file once per start),
//!   and every record is decoded at open; redb calls run under [`contain`], so no panic escapes,
//!   whatever the file holds.
//! - [`Recovery::AcceptLoss`] is the explicit way out: the refused files are moved aside (renamed
//!   `<name>.lost-<unix seconds>`, never deleted) and the directory starts as new.
//!
//! # Cost
//! Per batch: one record written in place into the log and flushed, one 96-byte record of the
//! seal written in place (flushed at most every 100 ms), and redb's unflushed apply, after the
//! replies; every 512 batches one flushed redb commit. No rename and no directory sync happen
//! per commit.

use super::contain::contain;
use super::seal::{self, Found, Seal, SealFile, StoreId};
use super::sealer::Sealer;
use super::wal::{self, WAL_FILE, Wal};
use super::{Distrust, Store, StoreError};
use crate::engine::audit::AuditEntry;
use crate::engine::record::{Counters, NodeRuntime};
use crate::engine::task::Task;
use crate::engine::{Change, Snapshot};
use redb::{
    Builder, Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError,
};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use write_ahead::{Log, read_pending, replay, start_wal, wal_path};

/// The store's file inside the data directory.
pub const STORE_FILE: &str = "arbiter.redb";
/// The seal's file inside the data directory: which store it holds, and its last commit.
pub const SEAL_FILE: &str = "store.id";

const TASKS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tasks");
const NODES: TableDefinition<'_, u32, &[u8]> = TableDefinition::new("nodes");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// The audit trail, by sequence number.
const AUDIT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("audit");
/// Freezes, by scope key (`FreezeScope::key`).
const FREEZES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("freezes");
/// The `meta` key of read-only mode, present while it is on.
const READ_ONLY_KEY: &str = "read_only";
/// The log of recent grants the rate budgets count, in `meta`.
const GRANTS_KEY: &str = "grants";
const COUNTERS_KEY: &str = "counters";
/// The store's identity: 16 random bytes.
const STORE_ID_KEY: &str = "store_id";
/// The number of the last commit: a little-endian u64.
const SEQ_KEY: &str = "commit_seq";

/// What [`RedbStore::open`] does with a store it cannot trust.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Refuse it with [`StoreError::Untrusted`].
    #[default]
    Refuse,
    /// Move the untrusted file aside (never delete it) and start as a new data directory; a
    /// damaged seal alone is moved aside and the store accepted as it is.
    AcceptLoss,
}

/// A redb database file in a data directory, with its seal.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    log: Mutex<Log>,
    /// Set when a batch's record may be in the log but redb does not hold the batch (it could
    /// not apply it, and the record could not be taken back): redb no longer says what the
    /// store holds, so nothing more is committed or loaded from it (a restart replays the log).
    broken: OnceLock<String>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn untrusted(path: &Path, problem: Distrust) -> StoreError {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .display();
    let remedy = match problem {
        Distrust::Damaged(_) | Distrust::Missing | Distrust::Empty => format!(
            "restore {STORE_FILE}, {WAL_FILE} and {SEAL_FILE} in {dir} from a backup taken while \
             the server was stopped"
        ),
        Distrust::Replaced { .. } | Distrust::RolledBack { .. } => format!(
            "put the newest {STORE_FILE} (and its {WAL_FILE}) back in {dir}; if this copy was \
             restored on purpose, move {SEAL_FILE} and {WAL_FILE} aside to start from it as it is"
        ),
        Distrust::SealDamaged(_) => format!(
            "restore {SEAL_FILE} in {dir} from a backup, or move it aside to accept {STORE_FILE} \
             as it is"
        ),
    };
    StoreError::Untrusted {
        path: path.to_owned(),
        problem,
        remedy,
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {what}: {e}", path.display()))
}

/// A panic's text on one line.
fn one_line(panic: &str) -> String {
    panic.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A redb error while reading or opening `path`: damage is [`Distrust::Damaged`]; anything else
/// (a lock held by another process, permissions, an old file format) is a backend error, which
/// [`Recovery::AcceptLoss`] never acts on.
fn redb_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    let damaged = match &e {
        redb::Error::Corrupted(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. } => true,
        redb::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    };
    if damaged {
        untrusted(path, Distrust::Damaged(e.to_string()))
    } else {
        StoreError::Backend(format!("{}: {e}", path.display()))
    }
}

/// What is at the store's path.
enum FileState {
    Missing,
    Empty,
    Present,
}

fn file_state(path: &Path) -> Result<FileState, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(StoreError::Backend(format!(
            "{} is not a file",
            path.display()
        ))),
        Ok(m) if m.len() == 0 => Ok(FileState::Empty),
        Ok(_) => Ok(FileState::Present),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileState::Missing),
        Err(e) => Err(io_error(path, "cannot read", e)),
    }
}

/// redb's page cache (its read cache and the pages written since the last flush, together).
/// Its default is 1 GiB, which a long audit trail would fill: the engine holds the whole state
/// in memory, so redb needs only the pages a commit touches; the rest is read from the file (the
/// kernel's page cache) when a commit needs it again.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A database opened with redb's integrity check.
struct Opened {
    db: Database,
    /// The check found the last commit damaged and went back to the one before it. After a
    /// crash that is a commit that never returned; otherwise it is damage.
    fell_back: bool,
}

/// Opens (or, with `create`, creates) the file with redb's integrity check, panics contained.
fn open_db(path: &Path, create: bool) -> Result<Opened, StoreError> {
    let mut builder = Builder::new();
    builder.set_check_integrity_on_open(true);
    builder.set_cache_size(CACHE_BYTES);
    let fell_back = Rc::new(Cell::new(false));
    let seen = fell_back.clone();
    // redb reports 0.3 only when the newest commit fails its checksums (see `Database::do_repair`).
    builder.set_repair_callback(move |session| {
        if (session.progress() - 0.3).abs() < 1e-9 {
            seen.set(true);
        }
    });
    let opened = contain(|| {
        if create {
            builder.create(path)
        } else {
            builder.open(path)
        }
    });
    match opened {
        Ok(Ok(db)) => Ok(Opened {
            db,
            fell_back: fell_back.get(),
        }),
        Ok(Err(e)) => Err(redb_error(path, e)),
        Err(panic) => Err(untrusted(
            path,
            Distrust::Damaged(format!("redb panicked: {}", one_line(&panic))),
        )),
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(backend)
}

/// A table of a read transaction; `None` when the file has none yet (created, never committed).
fn read_table<K: redb::Key + 'static>(
    path: &Path,
    tx: &ReadTransaction,
    def: TableDefinition<'_, K, &'static [u8]>,
) -> Result<Option<redb::ReadOnlyTable<K, &'static [u8]>>, StoreError> {
    match tx.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(redb_error(path, e)),
    }
}

/// The store's identity and last commit number.
struct Position {
    id: Option<StoreId>,
    seq: u64,
}

fn decode_seq(bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        key: SEQ_KEY.into(),
        reason: format!("{} bytes, want 8", bytes.len()),
    })?;
    Ok(u64::from_le_bytes(bytes))
}

fn read_position(path: &Path, tx: &ReadTransaction) -> Result<Position, StoreError> {
    let Some(meta) = read_table(path, tx, META)? else {
        return Ok(Position { id: None, seq: 0 });
    };
    let id = match meta.get(STORE_ID_KEY).map_err(|e| redb_error(path, e))? {
        Some(v) => Some(
            StoreId::from_bytes(v.value()).ok_or_else(|| StoreError::Corrupt {
                key: STORE_ID_KEY.into(),
                reason: format!("{} bytes, want 16", v.value().len()),
            })?,
        ),
        None => None,
    };
    let seq = match meta.get(SEQ_KEY).map_err(|e| redb_error(path, e))? {
        Some(v) => decode_seq(v.value())?,
        None => 0,
    };
    Ok(Position { id, seq })
}

fn read_snapshot(path: &Path, tx: &ReadTransaction) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    let err = |e| redb_error(path, e);
    if let Some(tasks) = read_table(path, tx, TASKS)? {
        for row in tasks.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let task: Task = decode(k.value(), v.value())?;
            snap.tasks.insert(k.value().to_owned(), task);
        }
    }
    if let Some(nodes) = read_table(path, tx, NODES)? {
        for row in nodes.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let rt: NodeRuntime = decode(&format!("node {}", k.value()), v.value())?;
            snap.nodes.insert(k.value(), rt);
        }
    }
    if let Some(meta) = read_table(path, tx, META)?
        && let Some(v) = meta.get(COUNTERS_KEY).map_err(err)?
    {
        snap.counters = decode::<Counters>(COUNTERS_KEY, v.value())?;
    }
    if let Some(meta) = read_table(path, tx, META)?
        && let Some(v) = meta.get(READ_ONLY_KEY).map_err(err)?
    {
        snap.read_only = Some(decode(READ_ONLY_KEY, v.value())?);
    }
    if let Some(meta) = read_table(path, tx, META)?
        && let Some(v) = meta.get(GRANTS_KEY).map_err(err)?
    {
        snap.grants = decode(GRANTS_KEY, v.value())?;
    }
    if let Some(freezes) = read_table(path, tx, FREEZES)? {
        for row in freezes.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let f: crate::engine::freeze::Freeze =
                decode(&format!("freeze {}", k.value()), v.value())?;
            snap.freezes.insert(k.value().to_owned(), f);
        }
    }
    if let Some(audit) = read_table(path, tx, AUDIT)? {
        for row in audit.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let e: AuditEntry = decode(&format!("audit {}", k.value()), v.value())?;
            snap.audit.insert(k.value(), e);
        }
    }
    Ok(snap)
}

/// Reads the whole store once (every record decoded) and its position; anything unreadable is
/// damage.
fn verify(path: &Path, db: &Database) -> Result<Position, StoreError> {
    let read = contain(|| -> Result<Position, StoreError> {
        let tx = db.begin_read().map_err(|e| redb_error(path, e))?;
        read_snapshot(path, &tx)?;
        read_position(path, &tx)
    });
    match read {
        Ok(Ok(position)) => Ok(position),
        Ok(Err(e @ StoreError::Corrupt { .. })) => {
            Err(untrusted(path, Distrust::Damaged(e.to_string())))
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => Err(untrusted(
            path,
            Distrust::Damaged(format!("redb panicked: {}", one_line(&panic))),
        )),
    }
}

/// Writes the identity (and commit number `seq`) into the store, creating the tables.
fn write_identity(path: &Path, db: &Database, id: StoreId, seq: u64) -> Result<(), StoreError> {
    let written = contain(|| -> Result<(), StoreError> {
        let tx = db.begin_write().map_err(|e| redb_error(path, e))?;
        {
            tx.open_table(TASKS).map_err(|e| redb_error(path, e))?;
            tx.open_table(NODES).map_err(|e| redb_error(path, e))?;
            let mut meta = tx.open_table(META).map_err(|e| redb_error(path, e))?;
            meta.insert(STORE_ID_KEY, id.0.as_slice())
                .map_err(|e| redb_error(path, e))?;
            meta.insert(SEQ_KEY, seq.to_le_bytes().as_slice())
                .map_err(|e| redb_error(path, e))?;
        }
        tx.commit().map_err(|e| redb_error(path, e))
    });
    written.map_err(|panic| {
        StoreError::Backend(format!(
            "{}: redb panicked: {}",
            path.display(),
            one_line(&panic)
        ))
    })?
}

/// Renames `path` to `<path>.lost-<unix seconds>` (a free name), durably. `None` if it is not
/// there.
fn move_aside(path: &Path) -> Result<Option<PathBuf>, StoreError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = PathBuf::from(format!("{}.lost-{secs}", path.display()));
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        n += 1;
        target = PathBuf::from(format!("{}.lost-{secs}-{n}", path.display()));
    }
    std::fs::rename(path, &target).map_err(|e| io_error(path, "cannot move it aside", e))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    seal::sync_dir(dir).map_err(|e| io_error(dir, "cannot sync the directory", e))?;
    Ok(Some(target))
}

impl RedbStore {
    /// Opens the store in the data directory `dir` ([`STORE_FILE`] and [`SEAL_FILE`]), or
    /// creates it when the directory holds neither. A store that is not what the directory last
    /// committed is refused with [`StoreError::Untrusted`], or, with [`Recovery::AcceptLoss`],
    /// moved aside. Never panics, whatever the files hold.
    pub fn open(dir: &Path, recovery: Recovery) -> Result<RedbStore, StoreError> {
        let store = dir.join(STORE_FILE);
        let seal = dir.join(SEAL_FILE);
        // At most: the seal moved aside, then the store (and the seal again).
        for _ in 0..3 {
            match RedbStore::open_checked(&store, &seal) {
                Err(StoreError::Untrusted { path, problem, .. })
                    if recovery == Recovery::AcceptLoss =>
                {
                    let moved = if matches!(problem, Distrust::SealDamaged(_)) {
                        vec![(seal.clone(), move_aside(&seal)?)]
                    } else {
                        let log = wal_path(&store);
                        vec![
                            (store.clone(), move_aside(&store)?),
                            (seal.clone(), move_aside(&seal)?),
                            (log.clone(), move_aside(&log)?),
                        ]
                    };
                    for (from, to) in moved {
                        if let Some(to) = to {
                            tracing::warn!(
                                from = %from.display(),
                                to = %to.display(),
                                "accepting store loss: moved aside"
                            );
                        }
                    }
                    tracing::warn!(
                        path = %path.display(),
                        problem = %problem,
                        "accepting store loss (--accept-store-loss): starting without what it held"
                    );
                }
                opened => return opened,
            }
        }
        RedbStore::open_checked(&store, &seal)
    }

    fn open_checked(store: &Path, seal_path: &Path) -> Result<RedbStore, StoreError> {
        let found = seal::read(seal_path).map_err(|e| io_error(seal_path, "cannot read", e))?;
        if let Found::Damaged(why) = found {
            return Err(untrusted(seal_path, Distrust::SealDamaged(why)));
        }
        match (found, file_state(store)?) {
            (Found::Present(_), FileState::Missing) => Err(untrusted(store, Distrust::Missing)),
            (Found::Present(_), FileState::Empty) => Err(untrusted(store, Distrust::Empty)),
            (_, FileState::Missing | FileState::Empty) => RedbStore::create_new(store, seal_path),
            (found, FileState::Present) => RedbStore::open_existing(store, seal_path, found),
        }
    }

    /// A new store: no seal, and no store file (or an empty one).
    fn create_new(path: &Path, seal_path: &Path) -> Result<RedbStore, StoreError> {
        // A log without its store holds nothing usable (its records are the store's): kept
        // aside, before anything of the new store exists.
        let leftover = wal_path(path);
        if let Some(to) = move_aside(&leftover)? {
            tracing::warn!(from = %leftover.display(), to = %to.display(), "a write-ahead log without its store: moved aside");
        }
        let db = open_db(path, true)?.db;
        let id = StoreId::random().map_err(|e| io_error(path, "cannot choose an identity", e))?;
        write_identity(path, &db, id, 0)?;
        // A second flushed commit: redb keeps the last two, and a crash can send it back to the
        // one before. With the log, commits to the file are rare; from now on even that one
        // names the store.
        contain(|| flush(&db)).map_err(|panic| {
            StoreError::Backend(format!("redb panicked: {}", one_line(&panic)))
        })??;
        // The seal's directory sync also makes the new store file's name durable.
        let seal = SealFile::create(seal_path, Seal { id, seq: 0 })
            .map_err(|e| io_error(seal_path, "cannot write", e))?;
        let wal = start_wal(path, id, 0, 0)?;
        tracing::info!(store = %path.display(), id = %id, "new store created");
        Ok(RedbStore::assemble(db, path, wal, 0, Sealer::new(seal, id)))
    }

    fn open_existing(path: &Path, seal_path: &Path, found: Found) -> Result<RedbStore, StoreError> {
        let Opened { db, fell_back } = open_db(path, false)?;
        let mut position = verify(path, &db)?;
        let (id, seal, generation) = match found {
            Found::Present(sealed) => {
                if position.id.is_none() && fell_back {
                    // redb went back to a commit from before the identity: its newer ones are
                    // damaged (with the log, a crash leaves the file near its first commits).
                    return Err(untrusted(
                        path,
                        Distrust::Damaged(
                            "its newest commits are damaged: redb could only recover one from \
                             before the store's identity"
                                .into(),
                        ),
                    ));
                }
                if position.id != Some(sealed.id) {
                    return Err(untrusted(
                        path,
                        Distrust::Replaced {
                            expected: sealed.id.to_string(),
                            found: position.id.map(|id| id.to_string()),
                        },
                    ));
                }
                // The commit number the store holds is the log's; it is compared before the
                // log is applied, so that a refused store is left as it was.
                let pending = read_pending(path, &position)?;
                let holds = pending.up_to(&position);
                if holds < sealed.seq && fell_back {
                    return Err(untrusted(
                        path,
                        Distrust::Damaged(format!(
                            "its newest commits are damaged: redb could only recover commit \
                             #{holds} of #{}",
                            sealed.seq
                        )),
                    ));
                }
                if holds < sealed.seq {
                    return Err(untrusted(
                        path,
                        Distrust::RolledBack {
                            found: holds,
                            expected: sealed.seq,
                        },
                    ));
                }
                let generation = pending.generation;
                replay(path, &db, &mut position, pending)?;
                let mut file = SealFile::open(seal_path, sealed)
                    .map_err(|e| io_error(seal_path, "cannot open", e))?;
                // Ahead after a crash before the seal was written (or, after a power loss,
                // flushed): see `sealer.rs`.
                file.write(Seal {
                    id: sealed.id,
                    seq: position.seq,
                })
                .map_err(|e| io_error(seal_path, "cannot write", e))?;
                (sealed.id, file, generation)
            }
            Found::Absent | Found::Damaged(_) => {
                let pending = read_pending(path, &position)?;
                let generation = pending.generation;
                replay(path, &db, &mut position, pending)?;
                let id = match position.id {
                    Some(id) => id,
                    None => {
                        let id = StoreId::random()
                            .map_err(|e| io_error(path, "cannot choose an identity", e))?;
                        write_identity(path, &db, id, position.seq)?;
                        id
                    }
                };
                let seal = Seal {
                    id,
                    seq: position.seq,
                };
                let file = SealFile::create(seal_path, seal)
                    .map_err(|e| io_error(seal_path, "cannot write", e))?;
                if position.id.is_some() {
                    // It was sealed before: someone moved the seal aside (or a crash came right
                    // after the store was created, before its seal).
                    tracing::warn!(
                        store = %path.display(),
                        seal = %seal_path.display(),
                        id = %id,
                        commit = position.seq,
                        "the store's seal is missing: accepting the store as it is, sealed again"
                    );
                } else {
                    tracing::info!(
                        store = %path.display(),
                        seal = %seal_path.display(),
                        id = %id,
                        commit = position.seq,
                        "a store from before seals: accepted as it is and sealed"
                    );
                }
                (id, file, generation)
            }
        };
        let wal = start_wal(path, id, position.seq, generation)?;
        let seal = Sealer::new(seal, id);
        Ok(RedbStore::assemble(db, path, wal, position.seq, seal))
    }

    fn assemble(db: Database, path: &Path, wal: Wal, seq: u64, seal: Sealer) -> RedbStore {
        RedbStore {
            db,
            path: path.to_owned(),
            log: Mutex::new(Log {
                wal,
                seq,
                since: 0,
                seal,
            }),
            broken: OnceLock::new(),
        }
    }
}

/// The batch in one redb write transaction with the next commit number, flushed or not;
/// returns that number.
fn apply(db: &Database, changes: &[Change], durability: Durability) -> Result<u64, StoreError> {
    let (tx, seq) = stage(db, changes, durability)?;
    tx.commit().map_err(backend)?;
    Ok(seq)
}

/// The batch written into a redb write transaction with the next commit number, not committed:
/// an error here leaves nothing of it (the transaction is dropped). A failed `commit` after it
/// may still have applied the batch (redb says so).
fn stage(
    db: &Database,
    changes: &[Change],
    durability: Durability,
) -> Result<(redb::WriteTransaction, u64), StoreError> {
    let mut tx = db.begin_write().map_err(backend)?;
    tx.set_durability(durability).map_err(backend)?;
    let seq;
    {
        let mut tasks = tx.open_table(TASKS).map_err(backend)?;
        let mut nodes = tx.open_table(NODES).map_err(backend)?;
        let mut meta = tx.open_table(META).map_err(backend)?;
        let mut audit = tx.open_table(AUDIT).map_err(backend)?;
        let mut freezes = tx.open_table(FREEZES).map_err(backend)?;
        let last = match meta.get(SEQ_KEY).map_err(backend)? {
            Some(v) => decode_seq(v.value())?,
            None => 0,
        };
        seq = last.saturating_add(1);
        for c in changes {
            match c {
                Change::PutTask(t) => {
                    tasks
                        .insert(t.uid.as_str(), encode(t)?.as_slice())
                        .map_err(backend)?;
                }
                Change::DeleteTask(uid) => {
                    tasks.remove(uid.as_str()).map_err(backend)?;
                }
                Change::PutNode(id, rt) => {
                    nodes.insert(*id, encode(rt)?.as_slice()).map_err(backend)?;
                }
                Change::DeleteNode(id) => {
                    nodes.remove(*id).map_err(backend)?;
                }
                Change::PutCounters(counters) => {
                    meta.insert(COUNTERS_KEY, encode(counters)?.as_slice())
                        .map_err(backend)?;
                }
                Change::PutAudit(e) => {
                    audit
                        .insert(e.seq, encode(e)?.as_slice())
                        .map_err(backend)?;
                }
                Change::DropAuditUpTo(seq) => {
                    audit.retain_in(..=*seq, |_, _| false).map_err(backend)?;
                }
                Change::PutFreeze(f) => {
                    freezes
                        .insert(f.scope.key().as_str(), encode(f)?.as_slice())
                        .map_err(backend)?;
                }
                Change::DeleteFreeze(scope) => {
                    freezes.remove(scope.key().as_str()).map_err(backend)?;
                }
                Change::PutReadOnly(Some(r)) => {
                    meta.insert(READ_ONLY_KEY, encode(r)?.as_slice())
                        .map_err(backend)?;
                }
                Change::PutReadOnly(None) => {
                    meta.remove(READ_ONLY_KEY).map_err(backend)?;
                }
                Change::PutGrants(g) if g.is_empty() => {
                    meta.remove(GRANTS_KEY).map_err(backend)?;
                }
                Change::PutGrants(g) => {
                    meta.insert(GRANTS_KEY, encode(g)?.as_slice())
                        .map_err(backend)?;
                }
            }
        }
        meta.insert(SEQ_KEY, seq.to_le_bytes().as_slice())
            .map_err(backend)?;
    }
    Ok((tx, seq))
}

/// An empty flushed commit: redb makes every commit applied without a flush before it durable.
fn flush(db: &Database) -> Result<(), StoreError> {
    let tx = db.begin_write().map_err(backend)?;
    tx.commit().map_err(backend)
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        if let Some(why) = self.broken.get() {
            return Err(StoreError::Backend(why.clone()));
        }
        let read = contain(|| -> Result<Snapshot, StoreError> {
            let tx = self.db.begin_read().map_err(backend)?;
            read_snapshot(&self.path, &tx)
        });
        read.map_err(|panic| {
            untrusted(
                &self.path,
                Distrust::Damaged(format!("redb panicked: {}", one_line(&panic))),
            )
        })?
    }

    /// See [`RedbStore::commit_logged`].
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut outcome = Ok(());
        self.commit_logged(changes, &mut |r| outcome = r);
        outcome
    }

    /// See [`RedbStore::commit_logged`].
    fn commit_then(&self, changes: &[Change], durable: &mut dyn FnMut(Result<(), StoreError>)) {
        self.commit_logged(changes, durable);
    }
}

#[cfg(test)]
mod tests;
mod write_ahead;
