//! The seal: a small file beside the store that says which store this data directory holds and
//! how far it has committed, so that a store that went missing, empty, was replaced or rolled
//! back is told apart from a new one.
//!
//! # Format
//! Two slots, one at offset 0 and one at [`SLOT_B`], each one line of text of fixed length:
//!
//! ```text
//! arbiter-store id=<32 hex digits> seq=<20 decimal digits> sum=<16 hex digits>
//! ```
//!
//! `sum` is the first 8 bytes of the BLAKE2s-256 of everything before ` sum=`. Commit number
//! `seq` is written to slot `seq % 2`, in place: the update of a commit costs one small write,
//! no rename and no directory sync (the flushes are `sealer.rs`'s business). A write torn by a
//! crash damages only the slot it wrote (the slots are in different pages); the other slot still
//! holds a commit before, which the store is never behind. The reader takes the valid slot with
//! the highest `seq`. The file is created whole (temporary file, fsync, rename, directory fsync).

use blake2::{Blake2s256, Digest};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A store's identity: random, chosen when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoreId(pub(super) [u8; 16]);

impl StoreId {
    /// A fresh random identity.
    pub(super) fn random() -> io::Result<StoreId> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(StoreId(id))
    }

    /// From the 16 bytes kept in the store.
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<StoreId> {
        bytes.try_into().ok().map(StoreId)
    }

    fn parse_hex(s: &str) -> Option<StoreId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(StoreId(id))
    }
}

impl std::fmt::Display for StoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Which store, and the last commit known durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seal {
    pub(super) id: StoreId,
    pub(super) seq: u64,
}

/// What the seal file holds.
#[derive(Debug)]
pub(super) enum Found {
    /// No seal file.
    Absent,
    /// A valid seal.
    Present(Seal),
    /// A seal file that cannot be read as one.
    Damaged(String),
}

const PREFIX: &str = "arbiter-store id=";
/// The length of one slot's line, newline included.
const SLOT_LEN: usize = PREFIX.len() + 32 + " seq=".len() + 20 + " sum=".len() + 16 + 1;
/// Where the second slot starts: its own page, so that a torn write of one slot cannot reach
/// the other.
const SLOT_B: usize = 4096;
const FILE_LEN: usize = SLOT_B + SLOT_LEN;

fn checksum(body: &str) -> String {
    let digest = Blake2s256::digest(body.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn slot_text(seal: Seal) -> String {
    let body = format!("{PREFIX}{} seq={:020}", seal.id, seal.seq);
    let sum = checksum(&body);
    format!("{body} sum={sum}\n")
}

fn parse_slot(bytes: &[u8]) -> Option<Seal> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.strip_suffix('\n')?;
    let (body, sum) = line.rsplit_once(" sum=")?;
    if sum != checksum(body) {
        return None;
    }
    let rest = body.strip_prefix(PREFIX)?;
    let (id, seq) = rest.split_once(" seq=")?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Seal {
        id: StoreId::parse_hex(id)?,
        seq: seq.parse().ok()?,
    })
}

fn file_bytes(seal: Seal) -> Vec<u8> {
    let slot = slot_text(seal);
    let mut bytes = Vec::with_capacity(FILE_LEN);
    bytes.extend_from_slice(slot.as_bytes());
    // The padding is newlines, so that `cat store.id` shows both slots and nothing else.
    bytes.resize(SLOT_B, b'\n');
    bytes.extend_from_slice(slot.as_bytes());
    bytes
}

/// Reads the seal at `path`. An I/O error other than "not found" is an error: it says nothing
/// about the seal.
pub(super) fn read(path: &Path) -> io::Result<Found> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    // Never more than a valid seal's length (and one byte to notice a longer file).
    file.take(FILE_LEN as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() != FILE_LEN {
        let size = if bytes.len() > FILE_LEN {
            format!("more than {FILE_LEN}")
        } else {
            bytes.len().to_string()
        };
        return Ok(Found::Damaged(format!(
            "it has {size} bytes, a seal has {FILE_LEN}"
        )));
    }
    let a = bytes.get(..SLOT_LEN).and_then(parse_slot);
    let b = bytes.get(SLOT_B..).and_then(parse_slot);
    Ok(match (a, b) {
        (None, None) => Found::Damaged("neither of its two records is valid".into()),
        (Some(s), None) | (None, Some(s)) => Found::Present(s),
        (Some(a), Some(b)) if a.id != b.id => {
            Found::Damaged("its two records name different stores".into())
        }
        (Some(a), Some(b)) => Found::Present(if a.seq >= b.seq { a } else { b }),
    })
}

/// An open seal file, updated in place after every commit (see `sealer.rs` for when it is
/// flushed).
#[derive(Debug)]
pub(super) struct SealFile {
    file: File,
    path: PathBuf,
    /// The last record put.
    last: Seal,
    /// Whether it was put since the last flush.
    unsynced: bool,
}

impl SealFile {
    /// Creates the seal at `path` whole and durably: a temporary file beside it, fsync, rename
    /// over `path`, fsync of the directory.
    pub(super) fn create(path: &Path, seal: Seal) -> io::Result<SealFile> {
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&file_bytes(seal))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)?;
        SealFile::open(path, seal)
    }

    /// Opens the seal at `path`, which holds `seal`, for updates.
    pub(super) fn open(path: &Path, seal: Seal) -> io::Result<SealFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SealFile {
            file,
            path: path.to_owned(),
            last: seal,
            unsynced: false,
        })
    }

    /// The seal file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `seal` durably: [`SealFile::put`], then [`SealFile::sync`].
    pub(super) fn write(&mut self, seal: Seal) -> io::Result<()> {
        self.put(seal)?;
        self.sync()
    }

    /// Records `seal` in place, without a flush: one slot rewritten (the slot of `seq % 2`, so
    /// the other still holds the record before). A crash of the process keeps it (it is in the
    /// kernel's page cache); a power loss may take it back to what the last [`SealFile::sync`]
    /// made durable, or anything put since.
    pub(super) fn put(&mut self, seal: Seal) -> io::Result<()> {
        if seal == self.last {
            return Ok(());
        }
        let offset = if seal.seq.is_multiple_of(2) {
            0
        } else {
            SLOT_B as u64
        };
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(slot_text(seal).as_bytes())?;
        self.last = seal;
        self.unsynced = true;
        Ok(())
    }

    /// Makes what was put durable (one `fdatasync`), unless it already is.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// Makes a rename or a new file in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(seq: u64) -> Seal {
        Seal {
            id: StoreId([7; 16]),
            seq,
        }
    }

    #[test]
    fn round_trips_and_takes_the_newest_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.id");
        assert!(matches!(read(&path).expect("read"), Found::Absent));
        let mut f = SealFile::create(&path, seal(0)).expect("create");
        assert!(matches!(read(&path).expect("read"), Found::Present(s) if s == seal(0)));
        for seq in 1..=5 {
            f.write(seal(seq)).expect("write");
            assert!(matches!(read(&path).expect("read"), Found::Present(s) if s == seal(seq)));
        }
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.starts_with("arbiter-store id=07070707"), "{text}");
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.id");
        let mut f = SealFile::create(&path, seal(0)).expect("create");
        f.write(seal(1)).expect("write");
        // Commit 2 goes to slot A; tear it half-way.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[30..SLOT_LEN].fill(0);
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(read(&path).expect("read"), Found::Present(s) if s == seal(1)));
    }

    #[test]
    fn garbage_is_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.id");
        for bytes in [
            &b""[..],
            b"hello",
            &vec![b'x'; FILE_LEN],
            &vec![0; FILE_LEN + 9],
        ] {
            std::fs::write(&path, bytes).expect("write");
            assert!(
                matches!(read(&path).expect("read"), Found::Damaged(_)),
                "{bytes:?}"
            );
        }
    }
}
