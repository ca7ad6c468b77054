//! The unavailable-node limits of the cluster and of each tenant, and their texts, which name
//! the nodes that count.
//!
//! A node being locked that already counts as unavailable without being confirmed down (its
//! agent went silent, it is restarting or still settling) may well be running: it is checked as
//! if it were up, so it leaves the down count and is counted as one more node taken down.

use super::{CheckCtx, Failure};
use crate::engine::cluster::NodeId;
use crate::engine::rules::{self, LimitBreach};
use crate::engine::state::{Class, Items};
use crate::engine::task::Reason;
use crate::engine::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

/// How many nodes a limit text names before it says "and K more".
const NAMED: usize = 5;

impl CheckCtx<'_> {
    /// Whether taking the nodes `active` down keeps the cluster and their tenants within the
    /// node limits. Every node in `active` is up or unavailable but not confirmed down.
    pub(super) fn check_limits(&self, active: &[NodeId]) -> Result<(), Failure> {
        let cluster = &self.st.cluster;
        let adding = count(active.len());
        let total = count(cluster.node_count());
        let already = |n: &&NodeId| self.class(**n) == Class::Down;
        let (l, d) = self.counts(None);
        let d = d.saturating_sub(count(active.iter().filter(already).count()));
        if let Err(breach) = rules::limit_check(cluster.limits(), l, d, adding, total) {
            let own = count(self.own_nodes.len());
            let permanent = self.task.composite
                && rules::limit_check(cluster.limits(), own, 0, adding, total).is_err();
            return Err(Failure {
                permanent,
                reason: Reason::DisabledNodesLimitReached,
                details: self.limit_text("in the cluster", None, active, breach, total),
                retry_at: self.earliest_lock(|_| true),
            });
        }
        let mut by_tenant: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
        for n in active {
            if let Some(t) = cluster.node(*n).and_then(|x| x.tenant.as_deref()) {
                by_tenant.entry(t).or_default().push(*n);
            }
        }
        for (t, nodes) in by_tenant {
            let Some(tenant) = cluster.tenant(t) else {
                continue;
            };
            let adding = count(nodes.len());
            let total = count(tenant.nodes.len());
            let (l, d) = self.counts(Some(t));
            let d = d.saturating_sub(count(nodes.iter().filter(already).count()));
            if let Err(breach) = rules::limit_check(tenant.limits, l, d, adding, total) {
                let in_tenant =
                    |n: NodeId| cluster.node(n).and_then(|x| x.tenant.as_deref()) == Some(t);
                let own = count(self.own_nodes.iter().filter(|n| in_tenant(**n)).count());
                let permanent = self.task.composite
                    && rules::limit_check(tenant.limits, own, 0, adding, total).is_err();
                return Err(Failure {
                    permanent,
                    reason: Reason::TenantDisabledNodesLimitReached,
                    details: self.limit_text(
                        &format!("in tenant '{t}'"),
                        Some(t),
                        &nodes,
                        breach,
                        total,
                    ),
                    retry_at: self.earliest_lock(in_tenant),
                });
            }
        }
        Ok(())
    }

    /// The earliest deadline of a live lock on a node that `filter` accepts.
    pub(super) fn earliest_lock(&self, filter: impl Fn(NodeId) -> bool) -> Timestamp {
        for (deadline, task, action) in &self.st.deadlines {
            let nodes = self
                .st
                .tasks
                .get(task)
                .and_then(|t| t.action(action))
                .and_then(|a| self.st.resolve(&a.scope).ok());
            let hit = match nodes {
                Some(Items::Nodes(ns)) => ns.iter().any(|n| filter(*n)),
                Some(Items::PDisk(k)) => filter(k.node),
                None => false,
            };
            if hit {
                return *deadline;
            }
        }
        self.default_retry()
    }

    /// "too many unavailable nodes in the cluster: locked 2 (nodes 3, 5), down 1 (node 4
    /// restarting), limit 13% of 12 nodes". Names the nodes that count, with the overlay, in
    /// the cluster (`tenant` `None`) or a tenant, leaving out `adding` (the action's own nodes).
    fn limit_text(
        &self,
        whereabouts: &str,
        tenant: Option<&str>,
        adding: &[NodeId],
        breach: LimitBreach,
        total: u32,
    ) -> String {
        let cluster = &self.st.cluster;
        let mut candidates: BTreeSet<NodeId> = self.st.unavailable.iter().copied().collect();
        candidates.extend(self.own_nodes.iter().copied());
        candidates.extend(self.sched_nodes.keys().copied());
        candidates.extend(self.sched_pdisk_nodes.keys().copied());
        let (mut locked, mut down) = (Vec::new(), Vec::new());
        for n in candidates {
            if adding.contains(&n)
                || (tenant.is_some() && cluster.node(n).and_then(|x| x.tenant.as_deref()) != tenant)
            {
                continue;
            }
            match self.class(n) {
                Class::Locked => locked.push(format!("{n}")),
                Class::Down => down.push(format!("{n} {}", self.st.down_word(n))),
                Class::Up => {}
            }
        }
        let limit = match breach {
            LimitBreach::Absolute(n) => n.to_string(),
            LimitBreach::Ratio(r) => format!("{r}% of {}", nodes_count(total)),
        };
        format!(
            "too many unavailable nodes {whereabouts}: locked {}, down {}, limit {limit}",
            named(&locked),
            named(&down)
        )
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// "1 node", "12 nodes".
pub(crate) fn nodes_count(n: u32) -> String {
    if n == 1 {
        String::from("1 node")
    } else {
        format!("{n} nodes")
    }
}

/// "0", "1 (node 4)", "7 (nodes 1, 2, 3, 4, 5 and 2 more)".
fn named(items: &[String]) -> String {
    match items.len() {
        0 => String::from("0"),
        1 => format!("1 (node {})", items[0]),
        k => {
            let shown = items[..k.min(NAMED)].join(", ");
            if k > NAMED {
                format!("{k} (nodes {shown} and {} more)", k - NAMED)
            } else {
                format!("{k} (nodes {shown})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_nodes_are_named_then_counted() {
        let items = |k: usize| (1..=k).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(named(&items(0)), "0");
        assert_eq!(named(&items(1)), "1 (node 1)");
        assert_eq!(named(&items(3)), "3 (nodes 1, 2, 3)");
        assert_eq!(named(&items(5)), "5 (nodes 1, 2, 3, 4, 5)");
        assert_eq!(named(&items(8)), "8 (nodes 1, 2, 3, 4, 5 and 3 more)");
        assert_eq!(nodes_count(1), "1 node");
        assert_eq!(nodes_count(12), "12 nodes");
    }
}
