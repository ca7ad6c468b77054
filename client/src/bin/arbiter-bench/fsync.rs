//! The floor under a durable write: what one `fdatasync` costs on the filesystem the store is
//! on. The bench measures it itself, in the directory the spawned server's store goes to, and
//! the report derives the one-client bound from it (two health checks plus two fdatasyncs per
//! cycle, since a cycle makes two durable writes).
//!
//! The flushes are timed back to back (the bound's floor), and again spaced 1 ms apart, as one
//! client's writes are. The two differ on some filesystems: on ext4 without a journal a write
//! after the clock's tick changes the file's mtime, and the flush then writes the inode too,
//! after the data (README, Performance).

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many flushes are timed: enough for a stable median, bounded (well under a second on a
/// disk, a few seconds on a slow one).
pub(crate) const SAMPLES: usize = 300;
/// How many spaced flushes are timed, and the pause before each.
pub(crate) const SPACED_SAMPLES: usize = 100;
const SPACING: Duration = Duration::from_millis(1);
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
    /// How many flushes were timed 1 ms apart.
    pub(crate) spaced: usize,
    /// Their p50 and p90 (none when none were asked for).
    pub(crate) spaced_p50: Option<(Duration, Duration)>,
}

/// Times `samples` rounds of "rewrite a small record in place, `fdatasync`" in a file of its own
/// in `dir` (created first, flushed whole, removed afterwards), then `spaced` more rounds 1 ms
/// apart.
pub(crate) fn measure(dir: &Path, samples: usize, spaced: usize) -> std::io::Result<Fsync> {
    let path = dir.join(format!(".arbiter-bench-fsync-{}", std::process::id()));
    let result = time_flushes(&path, samples.max(1), spaced);
    let removed = std::fs::remove_file(&path);
    let (mut times, mut apart) = result?;
    removed?;
    times.sort_unstable();
    apart.sort_unstable();
    let at = |t: &[Duration], q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    Ok(Fsync {
        dir: dir.to_owned(),
        count: times.len(),
        p50: at(&times, 0.50),
        p99: at(&times, 0.99),
        spaced: apart.len(),
        spaced_p50: (!apart.is_empty()).then(|| (at(&apart, 0.50), at(&apart, 0.90))),
    })
}

/// The back-to-back times and the spaced ones.
type Times = (Vec<Duration>, Vec<Duration>);

fn time_flushes(path: &Path, samples: usize, spaced: usize) -> std::io::Result<Times> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    file.write_all(&[0; FILE_LEN])?;
    file.sync_all()?;
    let mut times = Vec::with_capacity(samples);
    let mut apart = Vec::with_capacity(spaced);
    for i in 0..samples + spaced {
        if i >= samples {
            std::thread::sleep(SPACING);
        }
        // Two pages taken in turn, as a store alternates between its records.
        let offset = (i % 2) * (FILE_LEN / 2);
        let record = [b'a' + (i % 26) as u8; RECORD_LEN];
        let started = Instant::now();
        file.seek(SeekFrom::Start(offset as u64))?;
        file.write_all(&record)?;
        file.sync_data()?;
        let took = started.elapsed();
        if i < samples {
            times.push(took);
        } else {
            apart.push(took);
        }
    }
    Ok((times, apart))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_are_timed_and_the_file_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = measure(dir.path(), 20, 5).expect("measure");
        assert_eq!((f.count, f.spaced), (20, 5));
        assert!(f.p50 > Duration::ZERO && f.p50 <= f.p99, "{f:?}");
        assert!(
            f.spaced_p50
                .is_some_and(|(p50, p90)| p50 > Duration::ZERO && p50 <= p90),
            "{f:?}"
        );
        assert!(
            measure(dir.path(), 3, 0)
                .expect("measure")
                .spaced_p50
                .is_none()
        );
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(measure(&dir.path().join("nope"), 5, 1).is_err());
    }
}
