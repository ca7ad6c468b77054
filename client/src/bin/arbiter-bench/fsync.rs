//! The floor under a durable write: what one `fdatasync` costs on the filesystem the store is
//! on. The bench measures it itself, in the directory the spawned server's store goes to, and
//! the report derives the one-client bound from it (two health checks plus two fdatasyncs per
//! cycle, since a cycle makes two durable writes).

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many flushes are timed: enough for a stable median, bounded (well under a second on a
/// disk, a few seconds on a slow one).
pub(crate) const SAMPLES: usize = 300;
/// The size of the file, and of the small record rewritten in place before each flush.
const FILE_LEN: usize = 8192;
const RECORD_LEN: usize = 128;

/// The measured flushes.
#[derive(Debug, Clone)]
pub(crate) struct Fsync {
    /// Where they were measured.
    pub(crate) dir: PathBuf,
    pub(crate) count: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

/// Times `samples` rounds of "rewrite a small record in place, `fdatasync`" in a file of its own
/// in `dir` (created first, flushed whole, removed afterwards).
pub(crate) fn measure(dir: &Path, samples: usize) -> std::io::Result<Fsync> {
    let path = dir.join(format!(".arbiter-bench-fsync-{}", std::process::id()));
    let result = time_flushes(&path, samples.max(1));
    let removed = std::fs::remove_file(&path);
    let mut times = result?;
    removed?;
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Fsync {
        dir: dir.to_owned(),
        count: times.len(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

fn time_flushes(path: &Path, samples: usize) -> std::io::Result<Vec<Duration>> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    file.write_all(&[0; FILE_LEN])?;
    file.sync_all()?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        // Two pages taken in turn, as a store alternates between its records.
        let offset = (i % 2) * (FILE_LEN / 2);
        let record = [b'a' + (i % 26) as u8; RECORD_LEN];
        let started = Instant::now();
        file.seek(SeekFrom::Start(offset as u64))?;
        file.write_all(&record)?;
        file.sync_data()?;
        times.push(started.elapsed());
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_are_timed_and_the_file_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = measure(dir.path(), 20).expect("measure");
        assert_eq!(f.count, 20);
        assert!(f.p50 > Duration::ZERO && f.p50 <= f.p99, "{f:?}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(measure(&dir.path().join("nope"), 5).is_err());
    }
}
