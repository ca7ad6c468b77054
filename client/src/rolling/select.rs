//! Which nodes a rollout restarts: the command line's filters over the arbiter's node list.

use super::RollingError;
use super::args::RollingArgs;
use crate::proto::arbiter::v1::NodeStatus;
use crate::proto::ydb::maintenance::ItemState;
use std::collections::BTreeSet;
use std::fmt;

/// One node of a rollout, as the arbiter lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) id: u32,
    pub(crate) host: String,
    pub(crate) port: u32,
}

impl Target {
    pub(crate) fn from_status(n: &NodeStatus) -> Target {
        Target {
            id: n.node_id,
            host: n.host.clone(),
            port: n.port,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.is_empty() {
            write!(f, "node {}", self.id)
        } else {
            write!(f, "node {} ({})", self.id, self.host)
        }
    }
}

/// The chosen nodes, ascending by id, and the ones left out because they are not up.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub(crate) chosen: Vec<Target>,
    pub(crate) skipped: Vec<(Target, String)>,
}

/// Applies the filters to `nodes`. Unknown ids, tenants and data centers are errors (a typo
/// must not quietly select nothing).
pub(crate) fn select(nodes: &[NodeStatus], args: &RollingArgs) -> Result<Selection, RollingError> {
    if !args.has_selection() {
        return Err(RollingError::Usage(
            "choose the nodes: --all, --storage, --tenant TENANT, --dc DC or --nodes IDS".into(),
        ));
    }
    let known: BTreeSet<u32> = nodes.iter().map(|n| n.node_id).collect();
    let ids: BTreeSet<u32> = args
        .nodes
        .iter()
        .flat_map(|l| l.0.iter().copied())
        .collect();
    let excluded: BTreeSet<u32> = args
        .exclude
        .iter()
        .flat_map(|l| l.0.iter().copied())
        .collect();
    if let Some(id) = ids.iter().chain(&excluded).find(|id| !known.contains(id)) {
        return Err(RollingError::Usage(format!(
            "node {id} is not in the cluster"
        )));
    }
    for t in &args.tenant {
        if !nodes.iter().any(|n| &n.tenant == t) {
            return Err(RollingError::Usage(format!(
                "no node belongs to tenant '{t}'"
            )));
        }
    }
    for dc in &args.dc {
        if !nodes.iter().any(|n| &n.data_center == dc) {
            return Err(RollingError::Usage(format!(
                "no node is in data center '{dc}'"
            )));
        }
    }
    let kinds_given = args.storage || !args.tenant.is_empty();
    let mut sel = Selection::default();
    let mut sorted: Vec<&NodeStatus> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.node_id);
    for n in sorted {
        let kind_ok = !kinds_given
            || (args.storage && n.tenant.is_empty())
            || args.tenant.iter().any(|t| t == &n.tenant);
        let dc_ok = args.dc.is_empty() || args.dc.iter().any(|d| d == &n.data_center);
        let id_ok = ids.is_empty() || ids.contains(&n.node_id);
        if !(kind_ok && dc_ok && id_ok) || excluded.contains(&n.node_id) {
            continue;
        }
        let target = Target::from_status(n);
        let state = ItemState::try_from(n.state).unwrap_or(ItemState::Unspecified);
        if state != ItemState::Up && !args.include_down {
            let why = if n.detail.is_empty() {
                format!("not up at the start ({})", state_name(state))
            } else {
                format!("not up at the start: {}", n.detail)
            };
            sel.skipped.push((target, why));
        } else {
            sel.chosen.push(target);
        }
    }
    if sel.chosen.is_empty() {
        return Err(RollingError::Usage(if sel.skipped.is_empty() {
            "the filters select no node".into()
        } else {
            format!(
                "none of the {} selected nodes is up (--include-down restarts them anyway)",
                sel.skipped.len()
            )
        }));
    }
    Ok(sel)
}

/// A node state in words.
pub(crate) fn state_name(s: ItemState) -> &'static str {
    match s {
        ItemState::Up => "up",
        ItemState::Maintenance => "in maintenance",
        ItemState::Down => "down",
        ItemState::Unspecified => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rolling::args::IdList;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: RollingArgs,
    }

    fn args(argv: &[&str]) -> RollingArgs {
        let mut all = vec!["arbiter", "--exec", "true"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).expect("valid").args
    }

    fn node(id: u32, dc: &str, tenant: &str, up: bool) -> NodeStatus {
        NodeStatus {
            node_id: id,
            host: format!("h{id}"),
            data_center: dc.into(),
            tenant: tenant.into(),
            state: if up { ItemState::Up } else { ItemState::Down } as i32,
            ..NodeStatus::default()
        }
    }

    fn cluster() -> Vec<NodeStatus> {
        vec![
            node(3, "a", "", true),
            node(1, "a", "", true),
            node(2, "b", "", false),
            node(4, "a", "/t", true),
            node(5, "b", "/t", true),
        ]
    }

    fn ids(s: &Selection) -> Vec<u32> {
        s.chosen.iter().map(|t| t.id).collect()
    }

    #[test]
    fn filters_combine() {
        let c = cluster();
        let all = select(&c, &args(&["--all"])).expect("ok");
        assert_eq!(ids(&all), vec![1, 3, 4, 5]);
        assert_eq!(all.skipped.len(), 1, "node 2 is down");
        assert_eq!(
            ids(&select(&c, &args(&["--storage"])).expect("ok")),
            vec![1, 3]
        );
        let both = select(&c, &args(&["--storage", "--tenant", "/t", "--dc", "b"])).expect("ok");
        assert_eq!(ids(&both), vec![5]);
        let some = select(&c, &args(&["--nodes", "1-4", "--exclude", "3"])).expect("ok");
        assert_eq!(ids(&some), vec![1, 4]);
        let down = select(&c, &args(&["--dc", "b", "--include-down"])).expect("ok");
        assert_eq!(ids(&down), vec![2, 5]);
    }

    #[test]
    fn typos_are_errors() {
        let c = cluster();
        for bad in [
            &["--nodes", "9"][..],
            &["--tenant", "/nope"],
            &["--dc", "z"],
            &["--all", "--exclude", "1,3,4,5"],
        ] {
            assert!(select(&c, &args(bad)).is_err(), "{bad:?}");
        }
        let mut none = args(&["--all"]);
        none.all = false;
        assert!(select(&c, &none).is_err(), "a selection is required");
        let mut only_down = args(&["--all"]);
        only_down.all = false;
        only_down.nodes = vec![IdList(vec![2])];
        let err = select(&c, &only_down).expect_err("node 2 is down");
        assert!(err.to_string().contains("--include-down"), "{err}");
    }
}
