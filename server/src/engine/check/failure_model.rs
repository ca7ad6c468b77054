//! The failure model's part of a check: every storage group an action affects, the
//! state-storage rings and the system tablets, each at the task's availability mode.

use super::{CheckCtx, Failure, Holder};
use crate::engine::cluster::{GroupId, NodeId};
use crate::engine::rules::{self, Level};
use crate::engine::task::{Mode, Reason};
use crate::engine::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

impl CheckCtx<'_> {
    // ----- storage groups ----------------------------------------------------------------

    pub(super) fn levels(&self) -> &'static [Level] {
        match self.task.mode {
            Mode::Strong => &[Level::Strong],
            Mode::Weak => &[Level::Weak],
            Mode::Smart => &[Level::Strong, Level::Weak],
            Mode::Force => &[],
        }
    }

    pub(super) fn check_groups(
        &self,
        cands: &BTreeMap<GroupId, Vec<usize>>,
    ) -> Result<(), Failure> {
        let levels = self.levels();
        for (gid, cand) in cands {
            let Some(group) = self.st.cluster.group(*gid) else {
                continue;
            };
            let erasure = group.erasure;
            let head = format!("group {gid} ({})", erasure.name());
            if erasure == crate::engine::cluster::Erasure::None {
                return Err(Failure {
                    permanent: true,
                    reason: Reason::TooManyUnavailableVDisks,
                    details: format!(
                        "{head} has no redundancy: only force mode may take its member"
                    ),
                    retry_at: self.default_retry(),
                });
            }
            let mut locked: Vec<(usize, String)> = Vec::new();
            let mut down: Vec<usize> = Vec::new();
            let mut temp: Vec<usize> = Vec::new();
            let mut retry: Option<Timestamp> = None;
            for (i, v) in group.vdisks.iter().enumerate() {
                if cand.contains(&i) {
                    continue;
                }
                if let Some(h) = self.pdisk_holder(v.pdisk) {
                    match &h {
                        Holder::Temp => temp.push(i),
                        Holder::Lock(l) => {
                            let at = self.lock_retry(l);
                            retry = Some(retry.map_or(at, |r| r.min(at)));
                        }
                        Holder::Sched(_) => {}
                    }
                    locked.push((i, self.holder_text(&h)));
                } else if self.st.is_down(v.pdisk.node) {
                    down.push(i);
                }
            }
            let vdisk = |i: usize| {
                let k = group.vdisks[i].pdisk;
                format!("node {} pdisk {}", k.node, k.pdisk)
            };
            let mut all: Vec<usize> = cand.clone();
            all.extend(locked.iter().map(|(i, _)| *i));
            all.extend(down.iter().copied());
            let n = group.vdisks.len();
            let ok = |set: &[usize]| {
                levels
                    .iter()
                    .any(|l| rules::group_ok(erasure, *l, n, set, &group.realms))
            };
            if ok(&all) {
                // Within the failure model, but a partial check takes one member per group per
                // round: the next round sees the first grant as a real lock.
                if self.partial() && !temp.is_empty() {
                    return Err(Failure {
                        permanent: false,
                        reason: Reason::TooManyUnavailableVDisks,
                        details: format!(
                            "{head}: cannot take two members of one group in one check; {} was taken by an earlier action of this task",
                            vdisk(temp[0])
                        ),
                        retry_at: self.default_retry(),
                    });
                }
                continue;
            }
            let mut own = cand.clone();
            own.extend(temp.iter().copied());
            let permanent = !ok(cand) || (self.task.composite && !ok(&own));
            let locked_text = if locked.is_empty() {
                String::from("none")
            } else {
                locked
                    .iter()
                    .map(|(i, who)| format!("{} ({who})", vdisk(*i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let down_text = if down.is_empty() {
                String::from("none")
            } else {
                down.iter()
                    .map(|i| match self.st.down_why(group.vdisks[*i].pdisk.node) {
                        Some(why) => format!("{} ({why})", vdisk(*i)),
                        None => vdisk(*i),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let taking = cand
                .iter()
                .map(|i| vdisk(*i))
                .collect::<Vec<_>>()
                .join(", ");
            let mut details = format!(
                "{head}: too many unavailable vdisks for {} mode. This action takes: {taking}. Locked: {locked_text}. Down: {down_text}.",
                self.task.mode.name()
            );
            if erasure == crate::engine::cluster::Erasure::Mirror3Dc {
                let k = rules::affected_realms(&all, &group.realms);
                let dcs = if k == 1 {
                    "data center"
                } else {
                    "data centers"
                };
                details.push_str(&format!(" {k} {dcs} affected."));
            }
            return Err(Failure {
                permanent,
                reason: Reason::TooManyUnavailableVDisks,
                details,
                retry_at: retry.unwrap_or_else(|| self.default_retry()),
            });
        }
        Ok(())
    }

    // ----- state storage -----------------------------------------------------------------

    pub(super) fn check_rings(&self, active: &[NodeId]) -> Result<(), Failure> {
        let ss = self.st.cluster.state_storage();
        let own: BTreeSet<usize> = active
            .iter()
            .filter_map(|n| self.st.cluster.ring_of.get(n).copied())
            .filter(|r| !ss.disabled.get(*r).copied().unwrap_or(false))
            .collect();
        if own.is_empty() {
            return Ok(());
        }
        let (mut restarting, mut recent, mut disabled, mut temp_rings) = (0u32, 0u32, 0u32, 0u32);
        let mut retry: Option<Timestamp> = None;
        for (r, ring) in ss.rings.iter().enumerate() {
            if own.contains(&r) {
                continue;
            }
            if ss.disabled.get(r).copied().unwrap_or(false) {
                disabled += 1;
                continue;
            }
            let mut bad = false;
            let mut by_temp = false;
            let mut fresh = false;
            for n in ring {
                match self.node_holder(*n) {
                    Some(Holder::Temp) => {
                        bad = true;
                        by_temp = true;
                    }
                    Some(Holder::Lock(l)) => {
                        bad = true;
                        let at = self.lock_retry(l);
                        retry = Some(retry.map_or(at, |x| x.min(at)));
                    }
                    Some(Holder::Sched(_)) => bad = true,
                    None if self.st.is_down(*n) => bad = true,
                    None => {
                        let up_since = self.st.runtime.get(n).and_then(|rt| rt.up_since);
                        if up_since.is_some_and(|t| self.now.since(t) < self.st.health.ring_settle)
                        {
                            fresh = true;
                        }
                    }
                }
            }
            if bad {
                restarting += 1;
                temp_rings += u32::from(by_temp);
            } else if fresh {
                recent += 1;
            }
        }
        let own_count = u32::try_from(own.len()).unwrap_or(u32::MAX);
        let nto = ss.nto_select;
        let levels = self.levels();
        let ok = |restart: u32, recent: u32| {
            levels
                .iter()
                .any(|l| rules::rings_ok(*l, restart, recent, disabled, nto))
        };
        if ok(restarting + own_count, recent) {
            return Ok(());
        }
        let permanent =
            !ok(own_count, 0) || (self.task.composite && !ok(own_count + temp_rings, 0));
        let last = levels.last().copied().unwrap_or(Level::Strong);
        Err(Failure {
            permanent,
            reason: Reason::TooManyUnavailableStateStorageRings,
            details: format!(
                "too many unavailable state-storage rings for {} mode: restarting {}, recently started {recent}, disabled {disabled}, allowed {}",
                self.task.mode.name(),
                restarting + own_count,
                rules::rings_allowed(last, nto)
            ),
            retry_at: retry.unwrap_or_else(|| self.default_retry()),
        })
    }

    // ----- system tablets ----------------------------------------------------------------

    pub(super) fn check_tablets(&self, active: &[NodeId]) -> Result<(), Failure> {
        let cluster = &self.st.cluster;
        let mut kinds: BTreeSet<usize> = BTreeSet::new();
        for n in active {
            if let Some(ts) = cluster.tablets_of.get(n) {
                kinds.extend(ts.iter().copied());
            }
        }
        for t in kinds {
            let tablet = &cluster.sys_tablets()[t];
            let total = u32::try_from(tablet.nodes.len()).unwrap_or(u32::MAX);
            let (mut locked, mut down, mut temp, mut mine) = (0u32, 0u32, 0u32, false);
            let mut retry: Option<Timestamp> = None;
            let mut adding = 0u32;
            for n in &tablet.nodes {
                if active.contains(n) {
                    adding += 1;
                    continue;
                }
                match self.node_holder(*n) {
                    Some(Holder::Temp) => {
                        locked += 1;
                        temp += 1;
                        mine = true;
                    }
                    Some(Holder::Lock(l)) => {
                        locked += 1;
                        mine |= l.task == self.task.uid;
                        let at = self.lock_retry(l);
                        retry = Some(retry.map_or(at, |x| x.min(at)));
                    }
                    Some(Holder::Sched(_)) => locked += 1,
                    None if self.st.is_down(*n) => down += 1,
                    None => {}
                }
            }
            let ok = |disabled: u32| match self.task.mode {
                Mode::Strong => rules::tablet_ok(Level::Strong, disabled, total),
                Mode::Weak => rules::tablet_ok(Level::Weak, disabled, total),
                // Smart falls back to weak only once per tablet type and task.
                Mode::Smart => {
                    rules::tablet_ok(Level::Strong, disabled, total)
                        || (!mine && rules::tablet_ok(Level::Weak, disabled, total))
                }
                Mode::Force => true,
            };
            if ok(locked + down + adding) {
                continue;
            }
            let permanent = !ok(adding) || (self.task.composite && !ok(adding + temp));
            let level = if self.task.mode == Mode::Strong {
                Level::Strong
            } else {
                Level::Weak
            };
            return Err(Failure {
                permanent,
                reason: Reason::SysTabletsNodeLimitReached,
                details: format!(
                    "too many unavailable nodes for system tablet '{}': locked {locked}, down {down}, limit {}",
                    tablet.kind,
                    rules::tablet_limit(level, total)
                ),
                retry_at: retry.unwrap_or_else(|| self.default_retry()),
            });
        }
        Ok(())
    }
}
