//! Session tokens issued by Login: signed, not stored.
//!
//! A token carries its user and its expiry, signed with a key kept in the data directory
//! (`session.key`, created on first start). The server keeps no table of sessions, so the number
//! of logins costs no memory, and tokens survive a restart: ydbops logs in once per run and must
//! not be locked out when the arbiter restarts mid-rollout. Deleting the key file revokes every
//! session token at the next start.
//!
//! Format: `arb1.<user as hex>.<expiry, unix seconds>.<first 16 bytes of the keyed BLAKE2b MAC
//! of "arb1.<user hex>.<expiry>", as hex>`.

use blake2::Blake2bMac512;
use blake2::digest::{KeyInit, Mac};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a session token stays valid.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The key's file inside the data directory.
pub const KEY_FILE: &str = "session.key";
const PREFIX: &str = "arb1";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct Sessions {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Sessions {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// With a given key (tests, and `load_or_create`).
    pub fn with_key(key: [u8; KEY_LEN]) -> Sessions {
        Sessions { key }
    }

    /// With a fresh random key: tokens die with the process.
    pub fn ephemeral() -> std::io::Result<Sessions> {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Sessions { key })
    }

    /// The key in `dir`, created (readable by the owner only) when missing.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Sessions> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} must hold exactly {KEY_LEN} bytes; delete it to make a new one \
                         (this logs every Login session out)",
                        path.display()
                    ))
                })?;
                Ok(Sessions { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Sessions::ephemeral()?;
                write_private(&path, &s.key)?;
                Ok(s)
            }
            Err(e) => Err(e),
        }
    }

    /// A token for `user`, valid for [`SESSION_TTL`] from now.
    pub fn issue(&self, user: &str, now: SystemTime) -> String {
        let expiry = unix(now).saturating_add(SESSION_TTL.as_secs());
        let body = format!("{PREFIX}.{}.{expiry}", hex(user.as_bytes()));
        let tag = self.tag(&body);
        format!("{body}.{}", hex(&tag))
    }

    /// The user of a valid, unexpired token.
    pub fn user(&self, token: &str, now: SystemTime) -> Option<String> {
        let (body, tag) = token.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (prefix, user, expiry) = (parts.next()?, parts.next()?, parts.next()?);
        if prefix != PREFIX || parts.next().is_some() {
            return None;
        }
        let want = self.tag(body);
        if !constant_time_eq(hex(&want).as_bytes(), tag.as_bytes()) {
            return None;
        }
        if expiry.parse::<u64>().ok()? <= unix(now) {
            return None;
        }
        String::from_utf8(unhex(user)?).ok()
    }

    fn tag(&self, body: &str) -> [u8; TAG_LEN] {
        // A 32-byte key is always a valid BLAKE2b key (it takes up to 64).
        let mut mac = match <Blake2bMac512 as KeyInit>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; TAG_LEN],
        };
        mac.update(body.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares secrets without an early exit that would leak how much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_user_and_expire() {
        let s = Sessions::with_key([7; KEY_LEN]);
        let t0 = SystemTime::now();
        let token = s.issue("alice", t0);
        assert!(token.len() >= 20);
        assert_eq!(s.user(&token, t0).as_deref(), Some("alice"));
        assert_eq!(
            s.user(&token, t0 + SESSION_TTL + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let s = Sessions::with_key([7; KEY_LEN]);
        let other = Sessions::with_key([8; KEY_LEN]);
        let now = SystemTime::now();
        let token = s.issue("alice", now);
        assert_eq!(other.user(&token, now), None, "another key");
        let forged = token.replacen(&hex(b"alice"), &hex(b"admin"), 1);
        assert_eq!(s.user(&forged, now), None, "another user");
        for junk in [
            "",
            "arb1",
            "arb1.zz.1.00",
            "x.y.z.w",
            "arb1.61.99999999999.00",
        ] {
            assert_eq!(s.user(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn the_key_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let a = Sessions::load_or_create(dir.path()).expect("create");
        let b = Sessions::load_or_create(dir.path()).expect("load");
        let now = SystemTime::now();
        assert_eq!(b.user(&a.issue("bob", now), now).as_deref(), Some("bob"));
        std::fs::write(dir.path().join(KEY_FILE), b"short").expect("write");
        assert!(Sessions::load_or_create(dir.path()).is_err());
    }
}
