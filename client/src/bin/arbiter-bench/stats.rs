//! Latency samples and their summaries. Every latency is kept (a few hundred thousand
//! `Duration`s at most) and sorted once at the end, so the percentiles are exact.

use std::time::{Duration, Instant};

/// One measured phase: every client does only this kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `grpc.health.v1.Health/Check`, back to back.
    Health,
    /// Create -> refresh until performed -> complete, back to back.
    Cycles,
    /// etcd's own `v3lockpb.Lock/Lock` -> `Unlock`, back to back, each client on its own lease.
    EtcdLocks,
}

impl Phase {
    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Health => "health",
            Phase::Cycles => "cycle",
            Phase::EtcdLocks => "etcd lock",
        }
    }
}

/// What a latency sample is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One health check.
    Health,
    /// One whole decision cycle, create to complete.
    Cycle,
    /// One CreateMaintenanceTask.
    Create,
    /// One RefreshMaintenanceTask.
    Refresh,
    /// One CompleteAction.
    Complete,
    /// One etcd lock cycle, Lock to Unlock.
    EtcdCycle,
    /// One etcd Lock.
    Lock,
    /// One etcd Unlock.
    Unlock,
}

impl Kind {
    /// Every kind, in the order the report prints them.
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Health,
        Kind::Cycle,
        Kind::Create,
        Kind::Refresh,
        Kind::Complete,
        Kind::EtcdCycle,
        Kind::Lock,
        Kind::Unlock,
    ];

    /// The name the report prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Health => "health check",
            Kind::Cycle => "decision cycle",
            Kind::Create => "  create",
            Kind::Refresh => "  refresh",
            Kind::Complete => "  complete",
            Kind::EtcdCycle => "etcd lock+unlock",
            Kind::Lock => "  lock",
            Kind::Unlock => "  unlock",
        }
    }

    /// The phase that measures it.
    pub(crate) fn phase(self) -> Phase {
        match self {
            Kind::Health => Phase::Health,
            Kind::Cycle | Kind::Create | Kind::Refresh | Kind::Complete => Phase::Cycles,
            Kind::EtcdCycle | Kind::Lock | Kind::Unlock => Phase::EtcdLocks,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The measured interval of a phase; what completes outside it is warm-up or tail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// When measuring starts (after the warm-up).
    pub(crate) start: Instant,
    /// When the clients stop starting new work.
    pub(crate) end: Instant,
}

impl Window {
    /// Whether work that finished at `t` counts.
    pub(crate) fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end
    }
}

/// Failed calls: how many, and the first few messages.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// Every failure, warm-up included.
    pub(crate) count: u64,
    /// The first messages, for the report.
    pub(crate) examples: Vec<String>,
}

impl Errors {
    const EXAMPLES: usize = 5;

    /// Counts one failure.
    pub(crate) fn add(&mut self, message: String) {
        self.count += 1;
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(message);
        }
    }

    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        let room = Self::EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

/// What the clients of one phase measured.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    latencies: [Vec<Duration>; Kind::ALL.len()],
    /// Failed calls and cycles.
    pub(crate) errors: Errors,
}

impl Samples {
    /// Keeps the latency of work that started at `started` and finished now, if now is inside
    /// the window.
    pub(crate) fn record(&mut self, kind: Kind, started: Instant, window: &Window) {
        let done = Instant::now();
        if window.contains(done) {
            self.latencies[kind.index()].push(done - started);
        }
    }

    /// Adds another client's samples.
    pub(crate) fn merge(&mut self, other: Samples) {
        for (mine, theirs) in self.latencies.iter_mut().zip(other.latencies) {
            mine.extend(theirs);
        }
        self.errors.merge(other.errors);
    }

    /// Samples of one kind with these latencies (for tests of the report).
    #[cfg(test)]
    pub(crate) fn of(kind: Kind, latencies: Vec<Duration>) -> Samples {
        let mut s = Samples::default();
        s.latencies[kind.index()] = latencies;
        s
    }

    /// The summary of one kind over a measured interval of `length`.
    pub(crate) fn summary(&self, kind: Kind, length: Duration) -> Summary {
        Summary::of(self.latencies[kind.index()].clone(), length)
    }
}

/// Count, rate and latency percentiles of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// Completed in the window.
    pub(crate) count: usize,
    /// `count` per second of the window.
    pub(crate) per_second: f64,
    /// Median latency.
    pub(crate) p50: Duration,
    /// 99th percentile latency.
    pub(crate) p99: Duration,
    /// Slowest.
    pub(crate) max: Duration,
}

impl Summary {
    fn of(mut latencies: Vec<Duration>, length: Duration) -> Summary {
        latencies.sort_unstable();
        let secs = length.as_secs_f64();
        Summary {
            count: latencies.len(),
            per_second: if secs > 0.0 {
                latencies.len() as f64 / secs
            } else {
                0.0
            },
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

/// The nearest-rank percentile of sorted values (zero when there are none).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&v, 50), ms(50));
        assert_eq!(percentile(&v, 99), ms(99));
        assert_eq!(percentile(&[ms(7)], 99), ms(7));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
        let s = Summary::of(vec![ms(3), ms(1), ms(2)], Duration::from_secs(2));
        assert_eq!((s.count, s.p50, s.max), (3, ms(2), ms(3)));
        assert!((s.per_second - 1.5).abs() < 1e-9);
    }

    #[test]
    fn only_work_finished_inside_the_window_counts() {
        let now = Instant::now();
        let past = Window {
            start: now - ms(20),
            end: now - ms(10),
        };
        let open = Window {
            start: now - ms(10),
            end: now + Duration::from_secs(60),
        };
        let mut s = Samples::default();
        s.record(Kind::Health, now, &past);
        s.record(Kind::Health, now, &open);
        assert_eq!(s.summary(Kind::Health, ms(10)).count, 1);
    }

    #[test]
    fn merged_errors_keep_the_count_and_a_few_examples() {
        let mut a = Errors::default();
        let mut b = Errors::default();
        for i in 0..4 {
            a.add(format!("a{i}"));
            b.add(format!("b{i}"));
        }
        a.merge(b);
        assert_eq!(a.count, 8);
        assert_eq!(a.examples.len(), 5);
    }
}
