//! The machine the figures belong to, and where its CPU went during a phase.
//!
//! On a small machine the bench and the server share the cores, so a rate means little without
//! knowing who was busy: the CPU time of the bench, of the spawned server, of the server's
//! writer thread (`arbiter-writer`, the one thread that runs the engine and commits) and of the
//! bench's etcd over the measured window tells whether the ceiling is the CPU, the transport or
//! the writer's commits.
//! Read from Linux's /proc; elsewhere the report just leaves it out.

use std::path::Path;
use std::time::{Duration, Instant};

/// Linux reports CPU times in clock ticks of 1/USER_HZ seconds; USER_HZ is 100 on every
/// architecture Linux runs on today.
const TICKS_PER_SECOND: u64 = 100;
/// The name the server gives its writer thread.
const WRITER_THREAD: &str = "arbiter-writer";

/// Logical CPUs this process may use.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU model from /proc/cpuinfo, if there is one.
pub(crate) fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// CPU time used during a window, as a share of one core (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    /// The whole machine: every process, the kernel, interrupts (not steal: the VM did not
    /// run then).
    pub(crate) machine: Option<f64>,
    /// Interrupt handling (mostly loopback TCP's softirqs), which no process is charged for.
    pub(crate) irq: Option<f64>,
    /// Time the hypervisor gave to someone else while this VM wanted to run.
    pub(crate) steal: Option<f64>,
    /// This process (all its threads).
    pub(crate) bench: Option<f64>,
    /// The spawned server (all its threads).
    pub(crate) server: Option<f64>,
    /// The server's writer thread alone.
    pub(crate) writer: Option<f64>,
    /// The bench's etcd member (all its threads).
    pub(crate) etcd: Option<f64>,
}

/// What a phase watches besides the bench itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Watched {
    /// The spawned arbiter-server, while it runs.
    pub(crate) server: Option<u32>,
    /// The bench's etcd member.
    pub(crate) etcd: Option<u32>,
    /// Its client address (for its /metrics).
    pub(crate) etcd_addr: Option<std::net::SocketAddr>,
}

impl CpuUse {
    /// What neither the bench nor the processes it started (server, etcd) used: other
    /// processes and the kernel's own threads. None when it started none (a server of its own
    /// could not be told from the rest).
    pub(crate) fn rest(&self) -> Option<f64> {
        if self.server.is_none() && self.etcd.is_none() {
            return None;
        }
        let ours = self.bench? + self.server.unwrap_or(0.0) + self.etcd.unwrap_or(0.0);
        Some((self.machine? - ours).max(0.0))
    }

    /// Reads the CPU times at `start` and at `end`, and returns their difference.
    pub(crate) async fn sample(pids: Watched, start: Instant, end: Instant) -> CpuUse {
        tokio::time::sleep_until(start.into()).await;
        let before = Times::now(pids);
        tokio::time::sleep_until(end.into()).await;
        CpuUse::since(&before, &Times::now(pids))
    }

    /// The CPU used between two readings.
    pub(crate) fn since(before: &Times, after: &Times) -> CpuUse {
        let wall = after.at.saturating_duration_since(before.at);
        let field = |t: &Times, f: fn(&Machine) -> u64| t.machine.as_ref().map(f);
        CpuUse {
            machine: share(field(before, |m| m.busy), field(after, |m| m.busy), wall),
            irq: share(field(before, |m| m.irq), field(after, |m| m.irq), wall),
            steal: share(field(before, |m| m.steal), field(after, |m| m.steal), wall),
            bench: share(before.bench, after.bench, wall),
            server: share(before.server, after.server, wall),
            writer: share(before.writer, after.writer, wall),
            etcd: share(before.etcd, after.etcd, wall),
        }
    }
}

/// Ticks used so far, where readable.
pub(crate) struct Times {
    /// When they were read.
    at: Instant,
    machine: Option<Machine>,
    bench: Option<u64>,
    server: Option<u64>,
    writer: Option<u64>,
    etcd: Option<u64>,
}

impl Times {
    /// The CPU times of the machine, this process and the watched ones, now.
    pub(crate) fn now(pids: Watched) -> Times {
        let proc_dir = pids.server.map(|pid| format!("/proc/{pid}"));
        Times {
            at: Instant::now(),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_machine(&s)),
            bench: ticks(Path::new("/proc/self/stat")),
            server: proc_dir
                .as_ref()
                .and_then(|d| ticks(&Path::new(d).join("stat"))),
            writer: proc_dir.as_ref().and_then(|d| writer_ticks(Path::new(d))),
            etcd: pids
                .etcd
                .and_then(|pid| ticks(Path::new(&format!("/proc/{pid}/stat")))),
        }
    }
}

fn share(before: Option<u64>, after: Option<u64>, wall: Duration) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    let wall = wall.as_secs_f64();
    (wall > 0.0).then(|| used as f64 / TICKS_PER_SECOND as f64 / wall)
}

/// utime + stime of a /proc/.../stat file.
fn ticks(stat: &Path) -> Option<u64> {
    parse_ticks(&std::fs::read_to_string(stat).ok()?)
}

/// The name field may hold spaces and parentheses, so fields are counted after its last ')':
/// there, field 3 (state) comes first, utime is field 14 and stime field 15.
fn parse_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The whole machine's ticks, from the first line of /proc/stat: user nice system idle iowait
/// irq softirq steal ...
struct Machine {
    /// Everything but idle, iowait and steal.
    busy: u64,
    irq: u64,
    steal: u64,
}

fn parse_machine(stat: &str) -> Option<Machine> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // guest time (fields 8 and 9) is already counted in user and nice.
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    Some(Machine {
        busy,
        irq: get(5) + get(6),
        steal: get(7),
    })
}

fn writer_ticks(proc_dir: &Path) -> Option<u64> {
    for task in std::fs::read_dir(proc_dir.join("task")).ok()?.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.trim_end() == WRITER_THREAD {
            return ticks(&task.path().join("stat"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_past_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(parse_ticks(stat), Some(12));
        assert_eq!(parse_ticks("garbage"), None);
    }

    #[test]
    fn the_machine_line_is_read() {
        let m = parse_machine("cpu  100 1 20 500 3 4 5 6 0 0\ncpu0 1 2 3\n").expect("parsed");
        assert_eq!((m.busy, m.irq, m.steal), (130, 9, 6));
    }

    #[test]
    fn the_rest_leaves_out_what_the_bench_started() {
        let cpu = CpuUse {
            machine: Some(1.9),
            bench: Some(0.6),
            server: Some(0.5),
            etcd: Some(0.4),
            ..CpuUse::default()
        };
        assert!((cpu.rest().unwrap_or(-1.0) - 0.4).abs() < 1e-9);
        let etcd_alone = CpuUse {
            server: None,
            ..cpu
        };
        assert!((etcd_alone.rest().unwrap_or(-1.0) - 0.9).abs() < 1e-9);
        let external = CpuUse {
            server: None,
            etcd: None,
            ..cpu
        };
        assert_eq!(external.rest(), None);
    }

    #[test]
    fn shares_are_of_one_core() {
        let s = share(Some(100), Some(150), Duration::from_secs(1));
        assert_eq!(s, Some(0.5));
        assert_eq!(share(None, Some(1), Duration::from_secs(1)), None);
    }
}
