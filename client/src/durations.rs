//! Durations as the command lines take them (`500ms`, `30s`, `10m`), shared by `arbiter`,
//! `arbiter rolling-restart` and `arbiter-bench`.

use std::time::Duration;

/// Any duration, zero included.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 10m)"))
}

/// A duration longer than zero (a zero timeout or interval means nothing). Lock durations take
/// [`duration`]: a zero lock duration asks for the server's default, as no duration does.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_nonsense_are_refused() {
        assert_eq!(positive_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("soon").is_err());
    }
}
