//! The rate-budget gate of a check (see `engine::budget` for the rule and its log).

use super::{CheckCtx, Failure};
use crate::engine::budget::{Budget, Grant};
use crate::engine::cluster::NodeId;
use crate::engine::state::Items;
use crate::engine::task::Reason;
use std::collections::BTreeSet;

impl CheckCtx<'_> {
    /// Whether granting `items` keeps the cluster's budget and the budget of every tenant
    /// they touch, counting this check's earlier grants.
    pub(super) fn check_budgets(&self, items: &Items) -> Result<(), Failure> {
        let cluster = &self.st.cluster;
        let nodes = items.nodes();
        if let Some(b) = cluster.limits().max_grants {
            self.budget_gate(b, None, nodes)?;
        }
        let mut seen: Vec<&str> = Vec::new();
        for n in nodes {
            let Some(t) = cluster.node(*n).and_then(|x| x.tenant.as_deref()) else {
                continue;
            };
            if seen.contains(&t) {
                continue;
            }
            seen.push(t);
            if let Some(b) = cluster.tenant(t).and_then(|x| x.limits.max_grants) {
                self.budget_gate(b, Some(t), nodes)?;
            }
        }
        Ok(())
    }

    fn budget_gate(
        &self,
        b: Budget,
        tenant: Option<&str>,
        nodes: &[NodeId],
    ) -> Result<(), Failure> {
        let cluster = &self.st.cluster;
        let in_scope = |n: NodeId| {
            tenant.is_none_or(|t| cluster.node(n).and_then(|x| x.tenant.as_deref()) == Some(t))
        };
        let adding = nodes
            .iter()
            .filter(|n| in_scope(**n) && !self.st.is_confirmed_down(**n))
            .count();
        if adding == 0 {
            return Ok(());
        }
        let count = usize::try_from(b.count).unwrap_or(usize::MAX);
        let recent: Vec<&Grant> = self
            .st
            .grants
            .recent(self.now, b.every)
            .filter(|g| in_scope(g.node))
            .collect();
        let own = self
            .own_grants
            .iter()
            .filter(|n| in_scope(**n) && !self.st.is_confirmed_down(**n))
            .count();
        // What more important (or aged) tasks wait for is theirs first, as with the limits.
        let reserved: BTreeSet<NodeId> = self
            .sched_nodes
            .keys()
            .chain(self.sched_pdisk_nodes.keys())
            .copied()
            .filter(|n| in_scope(*n) && !self.st.is_confirmed_down(*n) && !nodes.contains(n))
            .collect();
        let used = recent.len() + own + reserved.len();
        if used + adding <= count {
            return Ok(());
        }
        let whose = match tenant {
            None => "the cluster".to_owned(),
            Some(t) => format!("tenant '{t}'"),
        };
        let permanent = adding > count || (self.task.composite && own + adding > count);
        if adding > count {
            return Err(Failure {
                permanent,
                reason: Reason::RateBudget,
                details: format!(
                    "this action takes {adding} nodes of {whose} at once, more than its rate budget allows ({})",
                    b.text()
                ),
                retry_at: self.default_retry(),
            });
        }
        // The slot this action needs frees when enough of the counted grants age out; this
        // check's own grants are the newest and age out last.
        let need = used + adding - count;
        let frees = match recent.get(need - 1) {
            Some(g) => g.at.plus(b.every),
            None => self.now.plus(b.every),
        };
        self.wake_at(frees);
        let mut names: Vec<String> = recent.iter().map(|g| g.node.to_string()).collect();
        names.dedup();
        let shown = names.len().min(5);
        let mut list = names[..shown].join(", ");
        if names.len() > shown {
            list.push_str(&format!(" and {} more", names.len() - shown));
        }
        let mut details = format!(
            "rate budget of {whose} used up: {}; {} granted in the last {}",
            b.text(),
            recent.len(),
            humantime::format_duration(b.every)
        );
        match names.len() {
            0 => {}
            1 => details.push_str(&format!(" (node {list})")),
            _ => details.push_str(&format!(" (nodes {list})")),
        }
        if own > 0 {
            details.push_str(&format!(", {own} more by this task now"));
        }
        if !reserved.is_empty() {
            details.push_str(&format!(
                ", {} reserved for tasks that go first",
                reserved.len()
            ));
        }
        details.push_str(&format!("; the next slot frees at {frees}"));
        Err(Failure {
            permanent,
            reason: Reason::RateBudget,
            details,
            retry_at: frees,
        })
    }
}
