//! Capped, jittered exponential backoff for loops that must outlast a server restart (the node
//! agent's heartbeats).
//!
//! The n-th delay after a failure is drawn from `[d/2, d]` with `d = min(cap, first * 2^n)`
//! ("equal jitter"): it grows quickly to the cap, never exceeds it, and many clients that lost
//! the same server at the same moment do not come back in step. [`Backoff::reset`] after a
//! success starts the next outage from `first` again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The delays between attempts while a call keeps failing.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    /// Failures since the last reset.
    failures: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Delays from about `first` up to `cap` (a `first` above `cap` is lowered to it), with a
    /// seed for the jitter from the clock and the process id.
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Truncating the nanoseconds keeps their fast-changing low bits, which is all a seed
        // for jitter needs.
        let seed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        Backoff::with_seed(first, cap, seed)
    }

    /// As [`Backoff::new`], with a fixed seed (for tests, or to spread a fleet by node id).
    pub fn with_seed(first: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            first: first.min(cap),
            cap,
            failures: 0,
            rng: SplitMix64(seed),
        }
    }

    /// The longest delay this backoff ever returns.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// How many delays were handed out since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(31);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self
            .first
            .checked_mul(1u32 << exp)
            .map_or(self.cap, |d| d.min(self.cap));
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.rng.next() % (spread + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// After a success: the next failure starts again from the first delay.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A tiny, fast generator; jitter needs no more (and no dependency).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::with_seed(100 * MS, 1000 * MS, 7);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (i, c) in ceilings.iter().enumerate() {
            let d = b.next_delay();
            let c = *c * MS;
            assert!(
                d >= c / 2 && d <= c,
                "delay {i}: {d:?} not in [{:?}, {c:?}]",
                c / 2
            );
        }
        assert_eq!(b.failures(), 8);
        // Far past the cap it stays capped (no overflow).
        for _ in 0..100 {
            assert!(b.next_delay() <= 1000 * MS);
        }
    }

    #[test]
    fn a_reset_starts_from_the_first_delay_again() {
        let mut b = Backoff::with_seed(100 * MS, 5000 * MS, 1);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay() <= 100 * MS);
    }

    #[test]
    fn the_first_delay_never_exceeds_the_cap() {
        let mut b = Backoff::with_seed(10_000 * MS, 300 * MS, 3);
        assert_eq!(b.cap(), 300 * MS);
        for _ in 0..5 {
            assert!(b.next_delay() <= 300 * MS);
        }
        let mut zero = Backoff::with_seed(Duration::ZERO, Duration::ZERO, 3);
        assert_eq!(zero.next_delay(), Duration::ZERO);
    }

    #[test]
    fn jitter_spreads_clients_that_failed_together() {
        let delays: Vec<Duration> = (0..20)
            .map(|seed| {
                let mut b = Backoff::with_seed(1000 * MS, 1000 * MS, seed);
                b.next_delay()
            })
            .collect();
        let mut distinct = delays.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 15, "{delays:?}");
    }
}
