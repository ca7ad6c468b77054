//! Wall-clock time as the engine sees it: a value passed in, never read.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Milliseconds since the Unix epoch.
///
/// Lock deadlines are persisted and shown to clients, so the engine works in wall-clock time; the
/// caller passes `now` into every command, which keeps the engine deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Never: the deadline of an action without one (a drain, a cordon).
    pub const NEVER: Timestamp = Timestamp(u64::MAX);

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating instead of overflowing on absurd durations.
    pub fn plus(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating at the epoch.
    pub fn minus(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// 9999-12-31T23:59:59.999Z, the last moment RFC 3339 can write.
const LAST_RFC3339_MS: u64 = 253_402_300_799_999;

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, to the second: what pending details show to people.
    /// RFC 3339 stops at the year 9999; later times (a lock of a thousand years) show as that.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > LAST_RFC3339_MS {
            return f.write_str("after 9999-12-31T23:59:59Z");
        }
        let t = std::time::UNIX_EPOCH + Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_seconds(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_timestamp_can_be_shown() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(LAST_RFC3339_MS).to_string(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            Timestamp(LAST_RFC3339_MS + 1).to_string(),
            "after 9999-12-31T23:59:59Z"
        );
        assert_eq!(
            Timestamp(u64::MAX).to_string(),
            "after 9999-12-31T23:59:59Z"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Timestamp(5).minus(Duration::from_millis(9)), Timestamp(0));
        assert_eq!(
            Timestamp(u64::MAX).plus(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(Timestamp(10).since(Timestamp(4)), Duration::from_millis(6));
        assert_eq!(Timestamp(4).since(Timestamp(10)), Duration::ZERO);
    }

    #[test]
    fn displays_rfc3339() {
        assert_eq!(
            Timestamp(1_767_225_600_000).to_string(),
            "2026-01-01T00:00:00Z"
        );
    }
}
