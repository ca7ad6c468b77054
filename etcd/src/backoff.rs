//! Capped, jittered exponential backoff with a lock-free splitmix64 generator seeded from
//! the operating system (no `rand` dependency).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A jitter source: splitmix64 over an atomic counter.
#[derive(Debug)]
pub(crate) struct Jitter {
    state: AtomicU64,
}

impl Jitter {
    /// A generator seeded from the OS (or the clock, should that fail).
    pub(crate) fn new() -> Jitter {
        let seed = getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x5eed, |d| d.as_nanos() as u64)
        });
        Jitter {
            state: AtomicU64::new(seed),
        }
    }

    /// The next pseudo-random number.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The pause after failed round `round` (1-based): `base * 2^(round-1)`, capped at
    /// `max`, then jittered uniformly into its upper half.
    pub(crate) fn backoff(&self, round: u32, base: Duration, max: Duration) -> Duration {
        let exp = round.saturating_sub(1).min(20);
        let full = base.saturating_mul(1 << exp).min(max);
        let half = full / 2;
        let span = (full - half).as_nanos() as u64;
        let extra = if span == 0 {
            0
        } else {
            self.next_u64() % (span + 1)
        };
        half + Duration::from_nanos(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let j = Jitter::new();
        let base = Duration::from_millis(50);
        let max = Duration::from_secs(1);
        for round in 1..30 {
            let full = base.saturating_mul(1 << (round - 1).min(20)).min(max);
            for _ in 0..50 {
                let d = j.backoff(round, base, max);
                assert!(
                    d >= full / 2 && d <= full,
                    "round {round}: {d:?} vs {full:?}"
                );
            }
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| j.backoff(5, base, max)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
