//! Rate budgets: a pace for maintenance ("at most 3 nodes newly granted per 10 minutes").
//!
//! A [`Budget`] is declared in the inventory for the whole cluster (`[limits] max_grants`) and
//! for a tenant (`[tenants."/db"] max_grants`). Every newly granted lock counts the nodes it
//! takes (a node lock one, a host lock each of its nodes, a disk lock its node), in every mode,
//! except nodes known to be down (by an operator or the inventory: their lock takes nothing
//! down, so it is neither paced nor counted);
//! a grant made at `t` counts while `now < t + every` (a rolling interval, not a fixed slot).
//! The check refuses an action that would take a budget past its count; the pending details
//! give the counts, the nodes that used it and when the next slot frees, which is also the
//! action's retry time. An action that takes more nodes than the count at once can never pass
//! and is refused as impossible. As with the node limits, what pending higher-priority tasks
//! (and aged tasks of the same priority) wait for counts as reserved, so a freed slot goes to
//! them first; a task held back by a freeze or a closed window reserves nothing.
//!
//! The counts are durable: the [`GrantLog`] of recent grants is persisted whole
//! (`Change::PutGrants`) whenever it changes, and only grants of nodes under a budget are kept,
//! no longer than the longest interval that covers them, so it stays small.

use crate::engine::cluster::{Cluster, NodeId};
use crate::engine::record::Change;
use crate::engine::state::State;
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// The longest interval a budget may count over: the log keeps grants this long at most.
pub const MAX_BUDGET_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most `count` nodes newly granted per rolling `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// How many nodes, at least 1.
    pub count: u32,
    /// Over how long, more than zero and at most [`MAX_BUDGET_INTERVAL`].
    pub every: Duration,
}

impl Budget {
    /// "at most 3 nodes newly granted per 10m".
    pub fn text(&self) -> String {
        let nodes = if self.count == 1 { "node" } else { "nodes" };
        format!(
            "at most {} {nodes} newly granted per {}",
            self.count,
            humantime::format_duration(self.every)
        )
    }
}

/// One node newly granted, as the budgets count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// When.
    pub at: Timestamp,
    /// Which node.
    pub node: NodeId,
}

/// The recent grants of nodes under a budget, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GrantLog {
    entries: VecDeque<Grant>,
}

impl GrantLog {
    /// From the store's record.
    pub(crate) fn restore(mut entries: Vec<Grant>) -> GrantLog {
        // Stable: grants of one moment keep the order they were made in.
        entries.sort_by_key(|g| g.at);
        GrantLog {
            entries: entries.into(),
        }
    }

    /// What the store keeps.
    pub(crate) fn to_vec(&self) -> Vec<Grant> {
        self.entries.iter().copied().collect()
    }

    /// The grants that still count for an interval of `every` at `now`, oldest first.
    pub(crate) fn recent(&self, now: Timestamp, every: Duration) -> impl Iterator<Item = &Grant> {
        self.entries.iter().filter(move |g| g.at.plus(every) > now)
    }
}

impl Cluster {
    /// The longest budget interval that covers node `n` (`None`: no budget counts it).
    pub(crate) fn budget_horizon(&self, n: NodeId) -> Option<Duration> {
        let cluster = self.limits.max_grants.map(|b| b.every);
        let tenant = self
            .node(n)
            .and_then(|x| x.tenant.as_deref())
            .and_then(|t| self.tenant(t))
            .and_then(|t| t.limits.max_grants)
            .map(|b| b.every);
        cluster.max(tenant)
    }

    /// Whether any budget is declared.
    pub(crate) fn has_budgets(&self) -> bool {
        self.limits.max_grants.is_some() || self.tenants().any(|t| t.limits.max_grants.is_some())
    }
}

impl State {
    /// Counts a new grant of `nodes` at `now` against the budgets that cover them, dropping
    /// grants that no budget counts any more; pushes the log's record when it changed.
    pub(crate) fn count_grant(
        &mut self,
        nodes: &[NodeId],
        now: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        if !self.cluster.has_budgets() && self.grants.entries.is_empty() {
            return;
        }
        let mut changed = false;
        // A node known down loses nothing by its lock: it is not paced and not counted.
        let counted: Vec<NodeId> = nodes
            .iter()
            .copied()
            .filter(|n| !self.is_confirmed_down(*n))
            .collect();
        let cluster = &self.cluster;
        let before = self.grants.entries.len();
        self.grants.entries.retain(|g| {
            cluster
                .budget_horizon(g.node)
                .is_some_and(|h| g.at.plus(h) > now)
        });
        changed |= self.grants.entries.len() != before;
        for n in &counted {
            if cluster.budget_horizon(*n).is_some() {
                self.grants.entries.push_back(Grant { at: now, node: *n });
                changed = true;
            }
        }
        if changed {
            // One record per command: a later grant of the same command replaces it.
            changes.retain(|c| !matches!(c, Change::PutGrants(_)));
            changes.push(Change::PutGrants(self.grants.to_vec()));
        }
    }

    /// The recent grants the budgets count, oldest first (for views and tests).
    pub fn recent_grants(&self) -> Vec<Grant> {
        self.grants.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_counts_for_exactly_its_interval() {
        let log = GrantLog::restore(vec![
            Grant {
                at: Timestamp(5_000),
                node: 2,
            },
            Grant {
                at: Timestamp(1_000),
                node: 1,
            },
        ]);
        let every = Duration::from_secs(10);
        assert_eq!(log.to_vec()[0].node, 1, "oldest first");
        assert_eq!(log.recent(Timestamp(10_999), every).count(), 2);
        assert_eq!(log.recent(Timestamp(11_000), every).count(), 1);
        assert_eq!(log.recent(Timestamp(15_000), every).count(), 0);
    }

    #[test]
    fn budget_texts_read_well() {
        let b = Budget {
            count: 3,
            every: Duration::from_secs(600),
        };
        assert_eq!(b.text(), "at most 3 nodes newly granted per 10m");
        let one = Budget {
            count: 1,
            every: Duration::from_secs(3600),
        };
        assert_eq!(one.text(), "at most 1 node newly granted per 1h");
    }
}
