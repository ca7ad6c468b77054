//! The write-ahead log in front of the redb file: what makes a batch durable.
//!
//! A redb commit that is flushed writes about ten scattered pages of its copy-on-write B-trees
//! and costs several times one `fdatasync` (README, Performance). So a batch is made durable by
//! one record written into this log, in place in a file laid out in advance, and one
//! `fdatasync`; redb then applies the batch without flushing (`Durability::None`). Every
//! [`CHECKPOINT_COMMITS`] batches (or when the log is half full, and when the store is dropped)
//! one flushed redb commit makes everything applied so far durable in the redb file, and the
//! log starts again after it.
//!
//! # Format
//! The file is [`CAPACITY`] bytes, written whole (zeros and both headers) under a temporary name
//! and renamed into place, so that a log is either complete or absent, and a record's flush is
//! its data alone, with no file growth for the filesystem to journal.
//! - Two header slots, at 0 and [`SLOT_B`] (a page each), each: magic `ARBWAL01`, the store's identity (16
//!   bytes), `base` (the redb commit the log continues from), a generation number, and the first
//!   16 bytes of the BLAKE2s-256 of those. Generation N is written to slot N % 2, so a torn
//!   header write leaves the other slot, the header before, readable; the reader takes the
//!   valid slot with the highest generation.
//! - Records from [`RECORDS_START`] on, each on the next 512-byte boundary: length of the payload (u32 LE), commit
//!   number (u64 LE), the first 16 bytes of the BLAKE2s-256 of the store's identity, those
//!   twelve bytes and the payload, then the payload (JSON of the batch's changes). A record
//!   left in the file by another store never passes for one of this store's.
//!
//! A log holds commits `base + 1, base + 2, ...` in order. Reading stops at the first record
//! that is not the next one: zeros (never written), a torn or damaged record, or one left over
//! from before the last restart of the log (its number is `base` or less, never the one
//! expected). A batch whose record was torn by a crash never returned; the seal (`sealer.rs`)
//! catches the loss of one that did.

use blake2::{Blake2s256, Digest};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::seal::StoreId;

/// The log's file inside the data directory.
pub const WAL_FILE: &str = "arbiter.wal";
/// The file's size as laid out in advance. A batch larger than what is left still goes in (the
/// file grows); a checkpoint comes first when the log is half full.
pub(super) const CAPACITY: u64 = 8 << 20;
/// How many batches the log holds at most before a checkpoint.
pub(super) const CHECKPOINT_COMMITS: u64 = 512;

const MAGIC: &[u8; 8] = b"ARBWAL01";
/// The second slot is on a page of its own, so a torn write of one slot cannot reach the other.
const SLOT_B: u64 = 4096;
const SLOT_LEN: usize = 8 + 16 + 8 + 8 + 16;
/// Where records start: the header's two pages before it.
pub(super) const RECORDS_START: u64 = 8192;
/// Each record starts on a sector of its own: writing one never rewrites a sector that holds
/// part of the record before it, which was already acknowledged.
const ALIGN: u64 = 512;
const RECORD_HEAD: usize = 4 + 8 + 16;

fn sum(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Blake2s256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// One header slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    id: StoreId,
    base: u64,
    generation: u64,
}

impl Header {
    fn bytes(self) -> [u8; SLOT_LEN] {
        let mut b = [0u8; SLOT_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..24].copy_from_slice(&self.id.0);
        b[24..32].copy_from_slice(&self.base.to_le_bytes());
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        let s = sum(&[&b[..40]]);
        b[40..].copy_from_slice(&s);
        b
    }

    fn parse(b: &[u8]) -> Option<Header> {
        let b = b.get(..SLOT_LEN)?;
        if &b[..8] != MAGIC || b[40..] != sum(&[&b[..40]]) {
            return None;
        }
        Some(Header {
            id: StoreId::from_bytes(&b[8..24])?,
            base: u64::from_le_bytes(b[24..32].try_into().ok()?),
            generation: u64::from_le_bytes(b[32..40].try_into().ok()?),
        })
    }
}

/// What a log file holds.
#[derive(Debug)]
pub(super) enum Found {
    /// No log file.
    Absent,
    /// A readable log: the store it belongs to, the commit it continues from, its header's
    /// generation, and its records in order, as (commit number, payload).
    Log {
        id: StoreId,
        base: u64,
        generation: u64,
        records: Vec<(u64, Vec<u8>)>,
    },
    /// A file that is not a log (neither header slot is valid).
    Damaged(String),
}

/// Reads the log at `path`. An I/O error other than "not found" is an error.
pub(super) fn read(path: &Path) -> io::Result<Found> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    let a = Header::parse(&bytes);
    let b = bytes.get(SLOT_B as usize..).and_then(Header::parse);
    let header = match (a, b) {
        (Some(a), Some(b)) if a.id != b.id => {
            return Ok(Found::Damaged(
                "its two header slots name different stores".into(),
            ));
        }
        (Some(a), Some(b)) => {
            if a.generation >= b.generation {
                a
            } else {
                b
            }
        }
        (Some(h), None) | (None, Some(h)) => h,
        (None, None) => {
            return Ok(Found::Damaged(format!(
                "neither of its two headers is valid ({} bytes)",
                bytes.len()
            )));
        }
    };
    let mut records = Vec::new();
    let mut at = RECORDS_START as usize;
    let mut want = header.base.saturating_add(1);
    while let Some((seq, payload, next)) = record_at(&bytes, at, header.id) {
        if seq != want {
            break;
        }
        records.push((seq, payload.to_vec()));
        want = want.saturating_add(1);
        at = next;
    }
    Ok(Found::Log {
        id: header.id,
        base: header.base,
        generation: header.generation,
        records,
    })
}

/// The valid record at `at`, if there is one: (commit number, payload, where the next starts).
fn record_at(bytes: &[u8], at: usize, id: StoreId) -> Option<(u64, &[u8], usize)> {
    let head = bytes.get(at..at.checked_add(RECORD_HEAD)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    let seq = u64::from_le_bytes(head[4..12].try_into().ok()?);
    let start = at + RECORD_HEAD;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    let next = aligned((start + len) as u64).try_into().ok()?;
    (head[12..] == sum(&[&id.0, &head[..12], payload])).then_some((seq, payload, next))
}

/// `at` rounded up to the next record boundary.
fn aligned(at: u64) -> u64 {
    at.div_ceil(ALIGN).saturating_mul(ALIGN)
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// A new log at `path`, whole or not at all: laid out under a temporary name with both headers,
/// flushed, renamed into place, and the directory flushed.
fn create(path: &Path, id: StoreId, base: u64) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        write_zeros(&file, 0, CAPACITY)?;
        for (generation, slot) in [(0, 0), (1, SLOT_B)] {
            let header = Header {
                id,
                base,
                generation,
            };
            file.write_all_at(&header.bytes(), slot)?;
        }
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    super::seal::sync_dir(dir)
}

/// The open log: where the next record goes.
#[derive(Debug)]
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    id: StoreId,
    generation: u64,
    /// The redb commit the log continues from.
    base: u64,
    /// Where the next record goes.
    end: u64,
    /// Where the last record written starts (for [`Wal::retract`]).
    last: Option<u64>,
}

impl Wal {
    /// Opens the log at `path` (creating it, laid out whole and flushed, if missing or short)
    /// and starts it afresh after redb commit `base`, with a header newer than `generation`.
    pub(super) fn start(path: &Path, id: StoreId, base: u64, generation: u64) -> io::Result<Wal> {
        if !path.exists() {
            create(path, id, base)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len < CAPACITY {
            // A log from before (a shorter one): its header stays valid while it grows.
            write_zeros(&file, len, CAPACITY)?;
            file.sync_all()?;
        }
        let mut wal = Wal {
            file,
            path: path.to_owned(),
            id,
            generation,
            base,
            end: RECORDS_START,
            last: None,
        };
        // Both slots: nothing of a header from before stays readable.
        wal.restart(base)?;
        wal.restart(base)?;
        Ok(wal)
    }

    /// The log's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records commit `seq` durably: one record written in place, one `fdatasync`.
    pub(super) fn append(&mut self, seq: u64, payload: &[u8]) -> io::Result<()> {
        // Set first: a write or flush that fails may still leave the record whole on disk, and
        // `retract` is to take it back (never the record before, which was acknowledged).
        self.last = Some(self.end);
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::other(format!("a batch of {} bytes", payload.len())))?;
        let mut head = [0u8; RECORD_HEAD];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..12].copy_from_slice(&seq.to_le_bytes());
        let s = sum(&[&self.id.0, &head[..12], payload]);
        head[12..].copy_from_slice(&s);
        let mut record = Vec::with_capacity(RECORD_HEAD + payload.len());
        record.extend_from_slice(&head);
        record.extend_from_slice(payload);
        self.file.write_all_at(&record, self.end)?;
        self.file.sync_data()?;
        self.end = aligned(self.end + record.len() as u64);
        Ok(())
    }

    /// Takes back the last record (its write failed, or its redb half did): its length is
    /// zeroed and flushed, so that no reader sees it. An error here may leave it in place.
    pub(super) fn retract(&mut self) -> io::Result<()> {
        let Some(last) = self.last.take() else {
            return Ok(());
        };
        self.file.write_all_at(&[0u8; 4], last)?;
        self.file.sync_data()?;
        self.end = last;
        Ok(())
    }

    /// Whether a checkpoint is due after `commits` records.
    pub(super) fn full(&self, commits: u64) -> bool {
        commits >= CHECKPOINT_COMMITS || self.end >= CAPACITY / 2
    }

    /// Starts the log again after redb commit `base`, which is durable in the redb file: a new
    /// header (the other slot), flushed. Records of the log before stay in the file, unread.
    pub(super) fn restart(&mut self, base: u64) -> io::Result<()> {
        let generation = self.generation.saturating_add(1);
        let header = Header {
            id: self.id,
            base,
            generation,
        };
        let slot = if generation.is_multiple_of(2) {
            0
        } else {
            SLOT_B
        };
        self.file.write_all_at(&header.bytes(), slot)?;
        self.file.sync_data()?;
        self.generation = generation;
        self.base = base;
        self.end = RECORDS_START;
        self.last = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> StoreId {
        StoreId([n; 16])
    }

    fn records(path: &Path) -> (u64, Vec<(u64, Vec<u8>)>) {
        match read(path).expect("read") {
            Found::Log {
                id: i,
                base,
                records,
                ..
            } => {
                assert_eq!(i, id(1));
                (base, records)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_round_trip_and_a_restart_hides_the_old_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        assert!(matches!(read(&path).expect("read"), Found::Absent));
        let mut w = Wal::start(&path, id(1), 7, 0).expect("start");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), CAPACITY);
        assert_eq!(records(&path), (7, vec![]));
        for seq in 8..=10 {
            w.append(seq, format!("batch {seq}").as_bytes())
                .expect("append");
        }
        let (base, got) = records(&path);
        assert_eq!(base, 7);
        assert_eq!(
            got.iter().map(|(s, p)| (*s, p.clone())).collect::<Vec<_>>(),
            (8..=10)
                .map(|s| (s, format!("batch {s}").into_bytes()))
                .collect::<Vec<_>>()
        );
        // A checkpoint at 10: the old records are still in the file but not read.
        w.restart(10).expect("restart");
        assert_eq!(records(&path), (10, vec![]));
        w.append(11, b"x").expect("append");
        assert_eq!(records(&path), (10, vec![(11, b"x".to_vec())]));
        // Reopened (a new start): a newer header, nothing lost.
        drop(w);
        let before = match read(&path).expect("read") {
            Found::Log { generation, .. } => generation,
            other => panic!("{other:?}"),
        };
        let w = Wal::start(&path, id(1), 11, before).expect("restart");
        assert_eq!(records(&path), (11, vec![]));
        assert!(w.generation > before);
    }

    #[test]
    fn a_torn_record_ends_the_log_and_a_retracted_one_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut w = Wal::start(&path, id(1), 0, 0).expect("start");
        w.append(1, b"one").expect("append");
        w.append(2, b"two").expect("append");
        w.append(3, b"three").expect("append");
        w.retract().expect("retract");
        assert_eq!(records(&path).1.len(), 2);
        // The next record takes the retracted one's place.
        w.append(3, b"again").expect("append");
        assert_eq!(records(&path).1[2], (3, b"again".to_vec()));
        drop(w);
        // Tear the second record's payload: the log ends after the first.
        let mut bytes = std::fs::read(&path).expect("read");
        let second = (RECORDS_START + ALIGN) as usize;
        bytes[second + RECORD_HEAD] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(records(&path).1, vec![(1, b"one".to_vec())]);
    }

    #[test]
    fn a_torn_header_falls_back_to_the_other_slot_and_garbage_is_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        // Generations 1 and 2 (both slots) at the start, then 3 (slot B) at a checkpoint.
        let mut w = Wal::start(&path, id(1), 0, 0).expect("start");
        w.restart(5).expect("restart");
        drop(w);
        assert_eq!(records(&path).0, 5);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[SLOT_B as usize + 20] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(records(&path).0, 0, "the header before");
        bytes[3] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(&path).expect("read"), Found::Damaged(_)));
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(read(&path).expect("read"), Found::Damaged(_)));
    }

    #[test]
    fn a_log_is_whole_or_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        // What a crash while creating it leaves: the temporary file, not the log.
        std::fs::write(dir.path().join("arbiter.wal.tmp"), b"half").expect("write");
        assert!(matches!(read(&path).expect("read"), Found::Absent));
        let mut w = Wal::start(&path, id(1), 3, 0).expect("start");
        w.append(4, b"four").expect("append");
        assert_eq!(records(&path), (3, vec![(4, b"four".to_vec())]));
        assert!(!dir.path().join("arbiter.wal.tmp").exists());
        // Records start on sector boundaries.
        w.append(5, b"five").expect("append");
        assert_eq!(w.end, RECORDS_START + 2 * ALIGN);
    }

    #[test]
    fn a_refused_append_takes_back_nothing_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut w = Wal::start(&path, id(1), 0, 0).expect("start");
        w.append(1, b"one").expect("append");
        assert!(w.append(2, b"").is_err());
        w.retract().expect("retract");
        assert_eq!(records(&path).1, vec![(1, b"one".to_vec())]);
    }

    #[test]
    fn another_stores_records_are_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut w = Wal::start(&path, id(2), 0, 0).expect("start");
        w.append(1, b"theirs").expect("append");
        drop(w);
        // A new store in the same place, its log started over the old file.
        let w = Wal::start(&path, id(1), 0, 5).expect("start");
        drop(w);
        assert_eq!(records(&path), (0, vec![]));
    }

    #[test]
    fn a_record_out_of_order_ends_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(WAL_FILE);
        let mut w = Wal::start(&path, id(1), 0, 0).expect("start");
        w.append(1, b"one").expect("append");
        w.append(3, b"three").expect("append");
        assert_eq!(records(&path).1, vec![(1, b"one".to_vec())]);
        assert!(w.append(4, b"").is_err(), "an empty batch has no record");
    }
}
