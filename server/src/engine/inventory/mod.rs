//! The inventory loader: TOML or JSON text in, a validated [`Cluster`] out.
//!
//! The caller reads the file; this module only parses, so it stays pure. Loading reports every
//! problem it finds, each with its key path, because an inventory is usually written by a tool
//! and fixed by a person who wants the whole list at once.

mod entries;
mod fast;
mod fleetlock;
mod json;
mod reader;
mod windows;

pub use reader::Problem;

pub(crate) use fleetlock::valid_group_name as valid_fleetlock_group;

use crate::engine::budget::{Budget, MAX_BUDGET_INTERVAL};
use crate::engine::cluster::{
    Cluster, Defaults, Fairness, Group, InventoryMap, Limits, Node, NodeId, PDisk, PDiskKey,
    StateStorage, SysTablet, Tenant,
};
use reader::{Problems, Table, as_u32, count, entry_path, index_path, key_path};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// The inventory's text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// JSON with the same keys (`.json`).
    Json,
}

impl Format {
    /// Chooses the format by a file name's extension.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".toml") {
            Some(Format::Toml)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// Why an inventory could not be loaded: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InventoryError {
    /// Each problem with its key path.
    pub problems: Vec<Problem>,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = count(self.problems.len(), "problem", "problems");
        write!(f, "{n} in the inventory:")?;
        for p in &self.problems {
            if p.path.is_empty() {
                write!(f, "\n  {}", p.message)?;
            } else {
                write!(f, "\n  {}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

/// The top-level arrays that are read entry by entry: they hold nearly all of a large inventory.
const STREAMED: [&str; 2] = ["nodes", "storage_groups"];

/// Parses and validates an inventory.
///
/// JSON is first read by the fast reader (`fast.rs`: typed entries, answers only for an
/// inventory with no problem at all); otherwise, and for TOML, by the checking reader, which
/// names every problem with its key path. The checking reader takes JSON in one pass that hands
/// each node and storage group to the loader as it is read, so that the whole document never
/// exists as a tree beside the cluster (write a large inventory as JSON); TOML is parsed whole
/// first, as its parser does anyway.
pub fn parse(text: &str, format: Format) -> Result<Cluster, InventoryError> {
    if format == Format::Json
        && let Some(cluster) = fast::parse(text)
    {
        return Ok(cluster.index());
    }
    checked(text, format)
}

/// The checking reader alone: every problem, each with its key path.
fn checked(text: &str, format: Format) -> Result<Cluster, InventoryError> {
    let mut loader = Loader::default();
    let rest = match format {
        Format::Json => json::parse_streaming(text, &STREAMED, &mut |item| loader.take(item))
            .map_err(|e| match e {
                json::JsonError::Syntax(e) => single("", format!("invalid JSON: {e}")),
                json::JsonError::Duplicates(problems) => InventoryError { problems },
            })?,
        Format::Toml => {
            let v: toml::Table =
                toml::from_str(text).map_err(|e| single("", format!("invalid TOML: {e}")))?;
            let mut doc = serde_json::to_value(v)
                .map_err(|e| single("", format!("unsupported TOML value: {e}")))?;
            loader.take_arrays(&mut doc);
            doc
        }
    };
    let mut probs = Problems::default();
    let cluster = loader.finish(&rest, &mut probs);
    if probs.0.is_empty() {
        Ok(cluster.index())
    } else {
        Err(InventoryError { problems: probs.0 })
    }
}

fn single(path: &str, message: String) -> InventoryError {
    InventoryError {
        problems: vec![Problem {
            path: path.to_owned(),
            message,
        }],
    }
}

/// Builds a cluster from the streamed arrays as they arrive, then from the rest of the document.
///
/// Problems are kept per part and put together in one fixed order at the end (top-level tables,
/// nodes, storage groups, the rest), whatever order the file has its keys in.
#[derive(Default)]
struct Loader {
    cluster: Cluster,
    /// machine id -> node: FleetLock names a node by it.
    machine_ids: InventoryMap<String, NodeId>,
    /// Node entries read (refused ones included).
    node_entries: usize,
    node_probs: Problems,
    /// Every node entry has been read, so groups can be checked against the nodes.
    nodes_done: bool,
    /// Group entries read before the nodes were; checked once they are.
    early_groups: Vec<(usize, Value)>,
    group_probs: Problems,
}

impl Loader {
    /// One item from the streaming reader.
    fn take(&mut self, item: json::Streamed) {
        match item {
            json::Streamed::Entry {
                key: "nodes",
                index,
                value,
            } => self.node(index, &value),
            json::Streamed::Entry { index, value, .. } if self.nodes_done => {
                self.group(index, &value);
            }
            json::Streamed::Entry { index, value, .. } => self.early_groups.push((index, value)),
            json::Streamed::End { key: "nodes" } => self.nodes_done = true,
            json::Streamed::End { .. } => {}
        }
    }

    /// Takes the streamed arrays out of a whole document (TOML) and reads them, nodes first.
    fn take_arrays(&mut self, doc: &mut Value) {
        let Value::Object(top) = doc else { return };
        for key in STREAMED {
            if let Some(Value::Array(entries)) = top.get_mut(key) {
                let entries = std::mem::take(entries);
                top.remove(key);
                for (index, value) in entries.into_iter().enumerate() {
                    self.take(json::Streamed::Entry { key, index, value });
                }
                self.take(json::Streamed::End { key });
            }
        }
    }

    fn node(&mut self, i: usize, nv: &Value) {
        self.node_entries += 1;
        let path = entry_path("nodes", i, nv);
        if let Some(node) = entries::load_node(nv, &path, &mut self.node_probs) {
            self.add_node(node, &path, |pd| entries::pdisk_path(nv, &path, pd));
        }
    }

    /// Adds a node read (at `path`) unless its id, one of its device paths or its machine id is
    /// taken; `pdisk_at` names the entry of one of its pdisks.
    fn add_node(&mut self, node: Node, path: &str, pdisk_at: impl Fn(&PDisk) -> String) {
        let probs = &mut self.node_probs;
        if self.cluster.nodes.contains_key(&node.id) {
            probs.add(
                key_path(path, "id"),
                format!("duplicate node id {}", node.id),
            );
            return;
        }
        // The index of device paths is built here, as they are checked (`Cluster::index`
        // builds the rest).
        let paths = &mut self.cluster.pdisk_paths;
        for pd in &node.pdisks {
            let disk = PDiskKey {
                node: node.id,
                pdisk: pd.id,
            };
            if let Some(PDiskKey { node: other, .. }) =
                paths.insert((node.host.clone(), pd.path.clone()), disk)
            {
                probs.add(
                    key_path(&pdisk_at(pd), "path"),
                    format!(
                        "device path '{}' on host '{}' is also used by node {other}",
                        pd.path, node.host
                    ),
                );
            }
        }
        if let Some(m) = &node.machine_id
            && let Some(other) = self.machine_ids.insert(m.clone(), node.id)
        {
            probs.add(
                key_path(path, "machine_id"),
                format!("machine id '{m}' is also node {other}'s"),
            );
        }
        self.cluster.nodes.insert(node.id, node);
    }

    fn group(&mut self, i: usize, gv: &Value) {
        let path = entry_path("storage_groups", i, gv);
        let group = entries::load_group(gv, &path, &self.cluster, &mut self.group_probs);
        if let Some(group) = group {
            self.add_group(group, &path);
        }
    }

    /// Adds a group read (at `path`) unless its id is taken.
    fn add_group(&mut self, group: Group, path: &str) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.cluster.groups.entry(group.id) {
            e.insert(group);
        } else {
            self.group_probs.add(
                key_path(path, "id"),
                format!("duplicate storage group id {}", group.id),
            );
        }
    }

    /// The rest of the document (`doc` without the streamed arrays), and every problem in order.
    fn finish(mut self, doc: &Value, probs: &mut Problems) -> Cluster {
        let mut top = Table::new(doc, String::new(), probs);
        let mut cluster = std::mem::take(&mut self.cluster);

        if let Some(v) = top.value("defaults") {
            cluster.defaults = load_defaults(v, probs);
        }
        if let Some(v) = top.value("limits") {
            cluster.limits = load_limits(v, "limits".into(), probs);
        }
        if let Some(v) = top.value("fairness") {
            cluster.fairness = load_fairness(v, probs);
        }
        let mut tenant_limits = BTreeMap::new();
        match top.value("tenants") {
            None => {}
            // Every key of `tenants` is a tenant name, so there are no unknown keys to report.
            Some(Value::Object(m)) => {
                for (name, tv) in m {
                    let path = key_path("tenants", &format!("\"{name}\""));
                    if name.is_empty() {
                        probs.add(path.clone(), "a tenant name must not be empty");
                    }
                    tenant_limits.insert(name.clone(), load_limits(tv, path, probs));
                }
            }
            Some(_) => probs.add("tenants", "expected a table of tenant names"),
        }

        // A `nodes` that is not an array stayed in the document: reported here.
        top.opt_array("nodes", probs);
        probs.0.append(&mut self.node_probs.0);
        if self.node_entries == 0 {
            probs.add("nodes", "the inventory has no nodes");
        }

        // Tenants: those with limits, and those that nodes name (with the default limits).
        for (name, limits) in tenant_limits {
            cluster.tenants.insert(
                name.clone(),
                Tenant {
                    name,
                    limits,
                    nodes: Vec::new(),
                },
            );
        }
        for node in cluster.nodes.values() {
            if let Some(t) = &node.tenant {
                cluster
                    .tenants
                    .entry(t.clone())
                    .or_insert_with(|| Tenant {
                        name: t.clone(),
                        limits: Limits::default(),
                        nodes: Vec::new(),
                    })
                    .nodes
                    .push(node.id);
            }
        }

        top.opt_array("storage_groups", probs);
        self.cluster = cluster;
        for (i, gv) in std::mem::take(&mut self.early_groups) {
            self.group(i, &gv);
        }
        let mut cluster = std::mem::take(&mut self.cluster);
        probs.0.append(&mut self.group_probs.0);

        if let Some(v) = top.value("state_storage") {
            cluster.state_storage = load_state_storage(v, &cluster, probs);
        }
        for (i, tv) in top.opt_array("sys_tablets", probs).iter().enumerate() {
            if let Some(t) = load_sys_tablet(tv, index_path("sys_tablets", i), &cluster, probs) {
                cluster.sys_tablets.push(t);
            }
        }
        let windows = top.opt_array("windows", probs);
        cluster.windows = windows::load_windows(windows, &cluster, probs);
        cluster.fleetlock_groups =
            fleetlock::load_fleetlock(top.value("fleetlock"), &cluster, probs);
        top.finish(probs);
        cluster
    }
}

fn load_defaults(v: &Value, probs: &mut Problems) -> Defaults {
    let mut t = Table::new(v, "defaults".into(), probs);
    let mut d = Defaults::default();
    if let Some(x) = t.opt_duration("lock_duration", probs) {
        if x.is_zero() {
            probs.add("defaults.lock_duration", "must be longer than zero");
        }
        d.lock_duration = x;
    }
    if let Some(x) = t.opt_duration("retry_after", probs) {
        if x.is_zero() {
            probs.add("defaults.retry_after", "must be longer than zero");
        }
        d.retry_after = x;
    }
    t.finish(probs);
    d
}

fn load_limits(v: &Value, path: String, probs: &mut Problems) -> Limits {
    let mut t = Table::new(v, path, probs);
    let mut l = Limits::default();
    if let Some(n) = t.opt_u32("max_unavailable_nodes", probs) {
        l.max_unavailable_nodes = n;
    }
    if let Some(r) = t.opt_u32("max_unavailable_ratio", probs) {
        if r > 100 {
            probs.add(
                key_path(&t.path, "max_unavailable_ratio"),
                format!("{r} is over 100 (the ratio is a percentage)"),
            );
        }
        l.max_unavailable_ratio = r;
    }
    if let Some(v) = t.value("max_grants") {
        l.max_grants = load_budget(v, key_path(&t.path, "max_grants"), probs);
    }
    t.finish(probs);
    l
}

/// `max_grants = { count = 3, every = "10m" }`.
fn load_budget(v: &Value, path: String, probs: &mut Problems) -> Option<Budget> {
    let mut t = Table::new(v, path.clone(), probs);
    let count = t.req_u32("count", probs);
    if count == Some(0) {
        probs.add(
            key_path(&path, "count"),
            "must be at least 1 (leave max_grants out for no budget)",
        );
    }
    let present = t.value("every").is_some();
    let every = t.opt_duration("every", probs);
    match every {
        None if !present && matches!(v, Value::Object(_)) => {
            probs.add(key_path(&path, "every"), "missing required key");
        }
        Some(d) if d.is_zero() => probs.add(key_path(&path, "every"), "must be longer than zero"),
        Some(d) if d > MAX_BUDGET_INTERVAL => probs.add(
            key_path(&path, "every"),
            format!(
                "{} is longer than the longest budget interval, {}",
                humantime::format_duration(d),
                humantime::format_duration(MAX_BUDGET_INTERVAL)
            ),
        ),
        _ => {}
    }
    t.finish(probs);
    match (count, every) {
        (Some(count), Some(every)) if count > 0 => Some(Budget { count, every }),
        _ => None,
    }
}

/// `[fairness] aging = "10m"` ("0s" turns aging off).
fn load_fairness(v: &Value, probs: &mut Problems) -> Fairness {
    let mut t = Table::new(v, "fairness".into(), probs);
    let mut f = Fairness::default();
    if let Some(d) = t.opt_duration("aging", probs) {
        f.aging = (!d.is_zero()).then_some(d);
    }
    t.finish(probs);
    f
}

fn load_node_list(
    values: &[Value],
    path: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(values.len());
    // A set, not `out.contains`: a tablet may list every node of a large cluster.
    let mut seen = HashSet::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let p = index_path(path, i);
        if let Some(n) = as_u32(v, &p, probs) {
            if cluster.node(n).is_none() {
                probs.add(p, format!("unknown node {n}"));
            } else if !seen.insert(n) {
                probs.add(p, format!("node {n} is listed twice"));
            } else {
                out.push(n);
            }
        }
    }
    out
}

fn load_state_storage(v: &Value, cluster: &Cluster, probs: &mut Problems) -> StateStorage {
    let mut t = Table::new(v, "state_storage".into(), probs);
    let nto_select = t.req_u32("nto_select", probs).unwrap_or(0);
    let mut rings = Vec::new();
    let mut owner: HashMap<NodeId, usize> = HashMap::new();
    for (i, rv) in t.opt_array("rings", probs).iter().enumerate() {
        let p = index_path("state_storage.rings", i);
        let ring = match rv {
            Value::Array(a) => load_node_list(a, &p, cluster, probs),
            // A ring of one replica may be written as a bare node id.
            other => as_u32(other, &p, probs)
                .map(|n| load_node_list(&[Value::from(n)], &p, cluster, probs))
                .unwrap_or_default(),
        };
        if ring.is_empty() {
            probs.add(p.clone(), "a ring needs at least one replica node");
        }
        for n in &ring {
            if let Some(other) = owner.insert(*n, i) {
                probs.add(
                    p.clone(),
                    format!("node {n} is already a replica of ring {other}"),
                );
            }
        }
        rings.push(ring);
    }
    let mut disabled = vec![false; rings.len()];
    for (i, dv) in t.opt_array("disabled_rings", probs).iter().enumerate() {
        let p = index_path("state_storage.disabled_rings", i);
        if let Some(r) = as_u32(dv, &p, probs) {
            match disabled.get_mut(r as usize) {
                Some(d) => *d = true,
                None => probs.add(
                    p,
                    format!(
                        "ring index {r} is out of range (there {})",
                        match rings.len() {
                            1 => "is 1 ring".to_owned(),
                            n => format!("are {n} rings"),
                        }
                    ),
                ),
            }
        }
    }
    if nto_select == 0 || nto_select as usize > rings.len() {
        probs.add(
            "state_storage.nto_select",
            format!(
                "must be between 1 and the number of rings ({})",
                rings.len()
            ),
        );
    }
    t.finish(probs);
    StateStorage {
        nto_select,
        rings,
        disabled,
    }
}

fn load_sys_tablet(
    v: &Value,
    path: String,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<SysTablet> {
    let mut t = Table::new(v, path.clone(), probs);
    let kind = t.req_str("type", probs);
    let npath = key_path(&path, "nodes");
    let nodes = load_node_list(t.opt_array("nodes", probs), &npath, cluster, probs);
    if nodes.is_empty() {
        probs.add(npath, "a system tablet needs at least one node");
    }
    t.finish(probs);
    let kind = kind?;
    if kind.is_empty() {
        probs.add(key_path(&path, "type"), "must not be empty");
        return None;
    }
    Some(SysTablet { kind, nodes })
}

#[cfg(test)]
mod tests;
