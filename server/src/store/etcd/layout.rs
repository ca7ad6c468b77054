//! How Arbiter's records sit in etcd, under one prefix (`--etcd-prefix`, default
//! `/arbiter/default`). Pure: keys, values, chunking; no I/O.
//!
//! ```text
//! <prefix>/leader              the leader's record, on its lease; its create revision is the epoch
//! <prefix>/instances/<id>      one record per live instance, on that instance's lease
//! <prefix>/inventory           the digest of the inventory every instance must decide on
//! <prefix>/session-key         the key that signs login tokens (shared: valid on every instance)
//! <prefix>/log/<seq>           one committed batch of changes (seq: 20 digits, from 1)
//! <prefix>/part/<nonce>/<i>    the pieces of a batch too large for one value
//! <prefix>/snap/current        which snapshot is the base: its seq, parts and checksum
//! <prefix>/snap/<seq>/<i>      the pieces of the snapshot taken at seq
//! ```
//!
//! A batch is committed by one Txn that puts `log/<seq>` only if that key does not exist yet and
//! the leader key still has our epoch as its create revision: at most one copy of a resent Txn
//! can pass, and a deposed leader's Txn never does. Loading reads the prefix at one revision:
//! the current snapshot, then every log entry after it, in order, with no gap allowed.
//!
//! etcd refuses requests over 1.5 MiB and Txns over 128 operations by default, so values are
//! kept under [`PART_BYTES`]: a larger batch or snapshot is written in pieces first, and the
//! record that makes it visible names them.

use crate::engine::{Change, Snapshot};
use serde::{Deserialize, Serialize};

/// The largest value written in one piece: well under etcd's default request limit, leaving room
/// for the keys and compares of the Txn that carries it.
pub const PART_BYTES: usize = 512 * 1024;

/// Pieces written per Txn while writing a large batch or snapshot ahead of its commit.
pub const PARTS_PER_TXN: usize = 2;

/// The keys under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`, which must start with '/' and not end with one (see
    /// [`Keys::check_prefix`]).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_owned(),
        }
    }

    /// Whether a `--etcd-prefix` value is usable: an absolute path of printable characters.
    pub fn check_prefix(prefix: &str) -> Result<(), String> {
        if !prefix.starts_with('/') {
            return Err(format!("'{prefix}' must start with '/'"));
        }
        if prefix.trim_end_matches('/').is_empty() {
            return Err(String::from(
                "'/' alone would share the whole etcd keyspace",
            ));
        }
        if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "'{}' has a space or control character",
                prefix.escape_debug()
            ));
        }
        if prefix.len() > 200 {
            return Err(String::from("longer than 200 bytes"));
        }
        Ok(())
    }

    /// The prefix itself, with a trailing '/': every key of this arbiter starts with it.
    pub fn all(&self) -> Vec<u8> {
        format!("{}/", self.prefix).into_bytes()
    }

    /// The leader key.
    pub fn leader(&self) -> Vec<u8> {
        format!("{}/leader", self.prefix).into_bytes()
    }

    /// The prefix of the instance records.
    pub fn instances(&self) -> Vec<u8> {
        format!("{}/instances/", self.prefix).into_bytes()
    }

    /// One instance's record.
    pub fn instance(&self, id: &str) -> Vec<u8> {
        format!("{}/instances/{id}", self.prefix).into_bytes()
    }

    /// The inventory digest.
    pub fn inventory(&self) -> Vec<u8> {
        format!("{}/inventory", self.prefix).into_bytes()
    }

    /// The shared session key.
    pub fn session_key(&self) -> Vec<u8> {
        format!("{}/session-key", self.prefix).into_bytes()
    }

    /// The prefix of the log.
    pub fn log(&self) -> Vec<u8> {
        format!("{}/log/", self.prefix).into_bytes()
    }

    /// One log entry.
    pub fn log_entry(&self, seq: u64) -> Vec<u8> {
        format!("{}/log/{seq:020}", self.prefix).into_bytes()
    }

    /// The sequence number of a log entry's key, if it is one.
    pub fn log_seq(&self, key: &[u8]) -> Option<u64> {
        let log = self.log();
        let rest = key.strip_prefix(log.as_slice())?;
        let digits = std::str::from_utf8(rest).ok()?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The prefix of every batch's pieces.
    pub fn parts(&self) -> Vec<u8> {
        format!("{}/part/", self.prefix).into_bytes()
    }

    /// One piece of a large batch.
    pub fn part(&self, nonce: &str, i: usize) -> Vec<u8> {
        format!("{}/part/{nonce}/{i:06}", self.prefix).into_bytes()
    }

    /// The record naming the current snapshot.
    pub fn snap_current(&self) -> Vec<u8> {
        format!("{}/snap/current", self.prefix).into_bytes()
    }

    /// The prefix of every snapshot's pieces.
    pub fn snaps(&self) -> Vec<u8> {
        format!("{}/snap/", self.prefix).into_bytes()
    }

    /// The prefix of the pieces of the snapshot taken at `seq`.
    pub fn snap_parts(&self, seq: u64) -> Vec<u8> {
        format!("{}/snap/{seq:020}/", self.prefix).into_bytes()
    }

    /// One piece of the snapshot taken at `seq`.
    pub fn snap_part(&self, seq: u64, i: usize) -> Vec<u8> {
        format!("{}/snap/{seq:020}/{i:06}", self.prefix).into_bytes()
    }
}

/// The value of a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Unique per commit attempt: a resent Txn is recognised by it.
    pub nonce: String,
    /// The leader epoch that wrote it.
    pub epoch: i64,
    /// The batch, when it fits in the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
    /// Otherwise how many pieces hold it (`part/<nonce>/<i>`), and their checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Pieces>,
}

/// A value written in pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pieces {
    /// How many.
    pub count: usize,
    /// Their joined length in bytes.
    pub bytes: usize,
    /// BLAKE2b-256 of the joined bytes, hex.
    pub checksum: String,
}

/// The record naming the current snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapCurrent {
    /// The last log entry it includes.
    pub seq: u64,
    /// Its pieces under `snap/<seq>/`.
    pub parts: Pieces,
}

/// Splits `bytes` into pieces of at most [`PART_BYTES`].
pub fn split(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        return vec![bytes];
    }
    bytes.chunks(PART_BYTES).collect()
}

/// Describes `bytes` as pieces.
pub fn pieces(bytes: &[u8]) -> Pieces {
    Pieces {
        count: split(bytes).len(),
        bytes: bytes.len(),
        checksum: checksum(bytes),
    }
}

/// Joins pieces read back, checking them against their description.
pub fn join(what: &str, desc: &Pieces, parts: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    if parts.len() != desc.count {
        return Err(format!(
            "{what}: {} of its {} pieces are present",
            parts.len(),
            desc.count
        ));
    }
    let joined: Vec<u8> = parts.concat();
    if joined.len() != desc.bytes || checksum(&joined) != desc.checksum {
        return Err(format!(
            "{what}: its pieces do not match their checksum (damaged or mixed up)"
        ));
    }
    Ok(joined)
}

/// BLAKE2b-256 of `bytes`, hex.
pub fn checksum(bytes: &[u8]) -> String {
    use blake2::digest::{Update, VariableOutput};
    let mut h = blake2::Blake2bVar::new(32).expect("32 is a valid BLAKE2b output size");
    h.update(bytes);
    let mut out = [0u8; 32];
    h.finalize_variable(&mut out)
        .expect("the buffer has the size asked for");
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh nonce: 16 random bytes, hex.
pub fn nonce() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for a nonce: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A snapshot's bytes.
pub fn encode_snapshot(s: &Snapshot) -> Result<Vec<u8>, String> {
    serde_json::to_vec(s).map_err(|e| format!("cannot encode the snapshot: {e}"))
}

/// A batch's bytes.
pub fn encode_changes(c: &[Change]) -> Result<Vec<u8>, String> {
    serde_json::to_vec(c).map_err(|e| format!("cannot encode a batch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_their_sequence_numbers() {
        let k = Keys::new("/arbiter/default/");
        assert_eq!(k.log_entry(7), b"/arbiter/default/log/00000000000000000007");
        assert!(k.log_entry(9) < k.log_entry(10));
        assert_eq!(k.log_seq(&k.log_entry(12345)), Some(12345));
        assert_eq!(k.log_seq(b"/arbiter/default/log/12"), None);
        assert_eq!(k.log_seq(b"/arbiter/other/log/00000000000000000001"), None);
        assert!(k.log_entry(1).starts_with(&k.log()));
        assert!(k.log().starts_with(&k.all()));
        assert!(k.snap_part(3, 1).starts_with(&k.snap_parts(3)));
        assert!(!k.snap_current().starts_with(&k.snap_parts(3)));
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Keys::check_prefix("/arbiter/default").is_ok());
        assert!(Keys::check_prefix("arbiter").is_err());
        assert!(Keys::check_prefix("/").is_err());
        assert!(Keys::check_prefix("/a b").is_err());
    }

    #[test]
    fn pieces_round_trip_and_detect_damage() {
        let big: Vec<u8> = (0..(PART_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let parts: Vec<Vec<u8>> = split(&big).iter().map(|p| p.to_vec()).collect();
        assert_eq!(parts.len(), 3);
        let d = pieces(&big);
        assert_eq!(join("batch", &d, &parts).expect("joins"), big);
        let mut bad = parts.clone();
        bad[1][0] ^= 1;
        assert!(join("batch", &d, &bad).is_err());
        assert!(join("batch", &d, &parts[..2]).is_err());
        assert_eq!(split(&[]).len(), 1);
    }
}
