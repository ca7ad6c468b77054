//! The inventory file the server runs on: read at start, and again on reload (SIGHUP or
//! `arbiter.v1.ReloadInventory`), with the command line's default durations applied each time.

use crate::engine::Cluster;
use crate::engine::cluster::Defaults;
use crate::engine::inventory::{self, Format};
use std::path::PathBuf;
use std::time::Duration;

/// Why the inventory could not be used. The text names the file and, for content problems, every
/// offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryFileError {
    /// Unreadable, of an unknown type, or invalid.
    #[error("inventory {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Valid, but in conflict with the command line.
    #[error("{0}")]
    Options(String),
}

/// Where the inventory lives and what the command line overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryFile {
    /// The file (`.toml` or `.json`).
    pub path: PathBuf,
    /// `--default-lock-duration`.
    pub lock_duration: Option<Duration>,
    /// `--default-retry-after`.
    pub retry_after: Option<Duration>,
    /// `--max-lock-duration`: the default lock duration must not exceed it.
    pub max_lock_duration: Duration,
}

impl InventoryFile {
    /// Reads and validates the file.
    pub fn load(&self) -> Result<Cluster, InventoryFileError> {
        self.read(false).map(|(c, _)| c)
    }

    /// Reads and validates the file; also answers a digest of what was read (the file's bytes
    /// and the command line's overrides), which every instance of a highly available arbiter
    /// must share.
    pub fn load_with_digest(&self) -> Result<(Cluster, String), InventoryFileError> {
        self.read(true)
            .map(|(c, digest)| (c, digest.unwrap_or_default()))
    }

    /// Reads and validates the file, and digests it when asked (a whole pass over the text: at
    /// 100,000 nodes a good part of the start, so only HA pays for it).
    fn read(&self, digest: bool) -> Result<(Cluster, Option<String>), InventoryFileError> {
        let fail = |message: String| InventoryFileError::Invalid {
            path: self.path.clone(),
            message,
        };
        let format = Format::from_file_name(&self.path.to_string_lossy())
            .ok_or_else(|| fail("unknown file type: name it *.toml or *.json".into()))?;
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let digest = digest.then(|| {
            crate::store::etcd::layout::checksum(
                format!(
                    "{text}\n--default-lock-duration={:?}\n--default-retry-after={:?}\n",
                    self.lock_duration, self.retry_after
                )
                .as_bytes(),
            )
        });
        let mut cluster = inventory::parse(&text, format).map_err(|e| fail(e.to_string()))?;
        let inv = cluster.defaults();
        let defaults = Defaults {
            lock_duration: self.lock_duration.unwrap_or(inv.lock_duration),
            retry_after: self.retry_after.unwrap_or(inv.retry_after),
        };
        if defaults.lock_duration > self.max_lock_duration {
            let source = if self.lock_duration.is_some() {
                "--default-lock-duration".to_owned()
            } else {
                format!("{}: defaults.lock_duration", self.path.display())
            };
            return Err(InventoryFileError::Options(format!(
                "{source} ({}) exceeds --max-lock-duration ({})",
                humantime::format_duration(defaults.lock_duration),
                humantime::format_duration(self.max_lock_duration)
            )));
        }
        cluster.set_defaults(defaults);
        Ok((cluster, digest))
    }
}
