//! The tolerance rules, one pure function per failure domain. The check gathers counts; these
//! functions say whether the counts are acceptable in a mode. Only strong and weak are modes
//! here: force never asks, and smart asks strong first, then weak.

use crate::engine::cluster::{Erasure, Limits};

/// A mode as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Strong,
    Weak,
}

/// Whether a storage group may have these members unavailable at once.
///
/// `unavailable` lists member indexes (candidates included); `realms` gives each member's data
/// center for mirror-3-dc.
pub(crate) fn group_ok(
    erasure: Erasure,
    level: Level,
    members: usize,
    unavailable: &[usize],
    realms: &[u8],
) -> bool {
    let n = unavailable.len();
    let quorum_slack = members.saturating_sub(1) / 2;
    match (erasure, level) {
        (Erasure::None, _) => n == 0,
        (Erasure::Quorum, Level::Strong) => n <= quorum_slack.min(1),
        (Erasure::Quorum, Level::Weak) => n <= quorum_slack,
        (_, Level::Strong) => n <= 1,
        (Erasure::Mirror3 | Erasure::Block42, Level::Weak) => n <= 2,
        (Erasure::Mirror3Dc, Level::Weak) => mirror3dc_weak_ok(unavailable, realms),
    }
}

/// YDB's mirror-3-dc rule: one data center may be lost entirely, or one plus one more vdisk.
fn mirror3dc_weak_ok(unavailable: &[usize], realms: &[u8]) -> bool {
    let mut per_dc = [0usize; 3];
    for i in unavailable {
        if let Some(r) = realms.get(*i)
            && let Some(slot) = per_dc.get_mut(usize::from(*r))
        {
            *slot += 1;
        }
    }
    let affected: Vec<usize> = per_dc.iter().copied().filter(|c| *c > 0).collect();
    match affected.len() {
        0 | 1 => true,
        2 => affected.iter().any(|c| *c <= 1),
        _ => false,
    }
}

/// How many data centers have unavailable members (for details texts).
pub(crate) fn affected_realms(unavailable: &[usize], realms: &[u8]) -> usize {
    let mut seen = [false; 3];
    for i in unavailable {
        if let Some(r) = realms.get(*i)
            && let Some(s) = seen.get_mut(usize::from(*r))
        {
            *s = true;
        }
    }
    seen.iter().filter(|s| **s).count()
}

/// State-storage rings: how many may be bad at once in this mode.
pub(crate) fn rings_allowed(level: Level, nto_select: u32) -> u32 {
    match level {
        Level::Strong => 1,
        Level::Weak => nto_select.saturating_sub(1) / 2,
    }
}

/// Whether the rings' counts (own rings included) are acceptable.
pub(crate) fn rings_ok(
    level: Level,
    restarting: u32,
    recently_started: u32,
    disabled: u32,
    nto_select: u32,
) -> bool {
    let allowed = rings_allowed(level, nto_select);
    match level {
        Level::Strong => restarting + recently_started <= allowed,
        Level::Weak => restarting + recently_started + disabled <= allowed,
    }
}

/// System tablets: the most nodes of one tablet type that may be unavailable, as shown.
pub(crate) fn tablet_limit(level: Level, nodes: u32) -> u32 {
    match level {
        Level::Strong => nodes / 2,
        Level::Weak => nodes.saturating_sub(1),
    }
}

/// Whether `disabled` unavailable nodes (the candidate included) of a tablet's `nodes` are fine.
pub(crate) fn tablet_ok(level: Level, disabled: u32, nodes: u32) -> bool {
    match level {
        Level::Strong => disabled * 2 <= nodes,
        Level::Weak => disabled < nodes,
    }
}

/// Which node limit would be exceeded, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitBreach {
    Absolute(u32),
    Ratio(u32),
}

/// Whether `adding` more nodes may become unavailable when `locked + down` already are, out of
/// `total`. When nothing is unavailable, one action is always allowed: otherwise a small cluster
/// with a ratio limit could never be maintained at all.
pub(crate) fn limit_check(
    limits: Limits,
    locked: u32,
    down: u32,
    adding: u32,
    total: u32,
) -> Result<(), LimitBreach> {
    if locked + down == 0 || adding == 0 {
        return Ok(());
    }
    let disabled = u64::from(locked + down + adding);
    if limits.max_unavailable_nodes > 0 && disabled > u64::from(limits.max_unavailable_nodes) {
        return Err(LimitBreach::Absolute(limits.max_unavailable_nodes));
    }
    let ratio = limits.max_unavailable_ratio;
    if ratio > 0 && disabled * 100 > u64::from(total) * u64::from(ratio) {
        return Err(LimitBreach::Ratio(ratio));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(n: u32, r: u32) -> Limits {
        Limits {
            max_unavailable_nodes: n,
            max_unavailable_ratio: r,
            max_grants: None,
        }
    }

    #[test]
    fn ratio_rounds_down_but_always_allows_one() {
        // 13% of 8 nodes is 1.04: one node, and a second only when nothing else is down.
        assert!(limit_check(lim(0, 13), 0, 0, 1, 8).is_ok());
        assert_eq!(
            limit_check(lim(0, 13), 1, 0, 1, 8),
            Err(LimitBreach::Ratio(13))
        );
        assert!(limit_check(lim(0, 13), 1, 0, 1, 16).is_ok());
        assert!(limit_check(lim(0, 13), 2, 0, 1, 16).is_err());
        assert!(limit_check(lim(0, 30), 1, 0, 1, 8).is_ok());
        assert!(limit_check(lim(0, 30), 2, 0, 1, 8).is_err());
        assert!(limit_check(lim(0, 10), 0, 0, 1, 8).is_ok());
    }

    #[test]
    fn absolute_and_ratio_are_both_checked() {
        assert_eq!(
            limit_check(lim(2, 100), 1, 1, 1, 10),
            Err(LimitBreach::Absolute(2))
        );
        assert!(limit_check(lim(3, 0), 1, 1, 1, 10).is_ok());
        assert!(limit_check(lim(0, 0), 50, 50, 1, 10).is_ok());
    }

    #[test]
    fn block42_tolerates_two_in_weak_one_in_strong() {
        let e = Erasure::Block42;
        assert!(group_ok(e, Level::Strong, 8, &[0], &[]));
        assert!(!group_ok(e, Level::Strong, 8, &[0, 1], &[]));
        assert!(group_ok(e, Level::Weak, 8, &[0, 1], &[]));
        assert!(!group_ok(e, Level::Weak, 8, &[0, 1, 2], &[]));
    }

    #[test]
    fn none_erasure_tolerates_nothing() {
        assert!(!group_ok(Erasure::None, Level::Weak, 1, &[0], &[]));
        assert!(group_ok(Erasure::None, Level::Weak, 1, &[], &[]));
    }

    #[test]
    fn quorum_keeps_a_majority() {
        assert!(!group_ok(Erasure::Quorum, Level::Strong, 2, &[0], &[]));
        assert!(group_ok(Erasure::Quorum, Level::Strong, 3, &[0], &[]));
        assert!(!group_ok(Erasure::Quorum, Level::Strong, 5, &[0, 1], &[]));
        assert!(group_ok(Erasure::Quorum, Level::Weak, 5, &[0, 1], &[]));
        assert!(!group_ok(Erasure::Quorum, Level::Weak, 5, &[0, 1, 2], &[]));
    }

    #[test]
    fn mirror3dc_loses_one_dc_plus_one() {
        let realms = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        let e = Erasure::Mirror3Dc;
        assert!(group_ok(e, Level::Weak, 9, &[0, 1, 2], &realms));
        assert!(group_ok(e, Level::Weak, 9, &[0, 1, 2, 3], &realms));
        assert!(!group_ok(e, Level::Weak, 9, &[0, 1, 3, 4], &realms));
        assert!(!group_ok(e, Level::Weak, 9, &[0, 3, 6], &realms));
        assert_eq!(affected_realms(&[0, 3, 6], &realms), 3);
    }

    #[test]
    fn rings_and_tablets() {
        assert!(rings_ok(Level::Strong, 1, 0, 5, 5));
        assert!(!rings_ok(Level::Strong, 1, 1, 0, 5));
        assert!(rings_ok(Level::Weak, 2, 0, 0, 5));
        assert!(!rings_ok(Level::Weak, 2, 1, 0, 5));
        assert!(tablet_ok(Level::Strong, 3, 6));
        assert!(!tablet_ok(Level::Strong, 4, 6));
        assert!(tablet_ok(Level::Weak, 5, 6));
        assert!(!tablet_ok(Level::Weak, 6, 6));
    }
}
