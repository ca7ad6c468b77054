//! Node and storage-group entries: the checking reader (from a parsed value, every problem with
//! its key path) and the checks on their values, which the fast reader (`fast.rs`) runs too, so
//! that both accept exactly the same entries.

use super::reader::{Problems, Table, as_u32, count, entry_path, index_path, key_path};
use crate::engine::cluster::{
    Cluster, Erasure, Group, InitialState, Location, Node, PDisk, PDiskKey, VDisk,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// Longest host name or device path accepted (the wire limit).
const MAX_NAME: usize = 255;

/// Checks the name at `key` of the table at `path` (the key's path is built only for a problem).
pub(super) fn check_name(value: &str, path: &str, key: &str, what: &str, probs: &mut Problems) {
    if value.is_empty() {
        probs.add(key_path(path, key), format!("{what} must not be empty"));
    } else if value.len() > MAX_NAME {
        probs.add(
            key_path(path, key),
            format!("{what} is longer than {MAX_NAME} bytes"),
        );
    }
}

/// A node's fields once read and checked one by one; [`NodeFields::build`] makes the node.
pub(super) struct NodeFields {
    pub(super) id: Option<u32>,
    pub(super) host: Option<String>,
    pub(super) port: u32,
    pub(super) location: Location,
    pub(super) tenant: Option<String>,
    pub(super) version: Option<String>,
    pub(super) machine_id: Option<String>,
    pub(super) initial_state: InitialState,
    pub(super) pdisks: Vec<PDisk>,
}

impl NodeFields {
    /// The node, unless a required field was refused.
    pub(super) fn build(self) -> Option<Node> {
        Some(Node {
            id: self.id?,
            host: self.host?,
            port: self.port,
            location: self.location,
            tenant: self.tenant.filter(|t| !t.is_empty()),
            version: self.version,
            initial_state: self.initial_state,
            pdisks: self.pdisks,
            machine_id: self.machine_id.filter(|m| !m.is_empty()),
        })
    }
}

/// A node id: ids start at 1.
pub(super) fn node_id(id: Option<u32>, path: &str, probs: &mut Problems) -> Option<u32> {
    if id == Some(0) {
        probs.add(key_path(path, "id"), "node ids start at 1");
        return None;
    }
    id
}

/// A port number.
pub(super) fn check_port(port: u32, path: &str, probs: &mut Problems) {
    if port > u32::from(u16::MAX) {
        probs.add(
            key_path(path, "port"),
            format!("{port} is not a port number"),
        );
    }
}

/// A tenant name, when given, is not empty.
pub(super) fn check_tenant(tenant: Option<&str>, path: &str, probs: &mut Problems) {
    if tenant == Some("") {
        probs.add(key_path(path, "tenant"), "a tenant name must not be empty");
    }
}

/// `state = "up" | "down"` (absent: up).
pub(super) fn initial_state(state: Option<&str>, path: &str, probs: &mut Problems) -> InitialState {
    match state {
        None | Some("up") => InitialState::Up,
        Some("down") => InitialState::Down,
        Some(other) => {
            probs.add(
                key_path(path, "state"),
                format!("unknown state '{other}' (up | down)"),
            );
            InitialState::Up
        }
    }
}

/// Adds a pdisk (entry path `at`) to its node's list unless the node has its id already.
pub(super) fn add_pdisk(
    pdisks: &mut Vec<PDisk>,
    id: u32,
    path: String,
    at: &str,
    probs: &mut Problems,
) {
    if pdisks.iter().any(|p| p.id == id) {
        probs.add(
            key_path(at, "id"),
            format!("duplicate pdisk id {id} on this node"),
        );
    } else {
        pdisks.push(PDisk { id, path });
    }
}

/// Reads a node entry (at `path`) from a parsed value.
pub(super) fn load_node(v: &Value, path: &str, probs: &mut Problems) -> Option<Node> {
    let mut t = Table::new(v, path.to_owned(), probs);
    let id = t.req_u32("id", probs);
    let id = node_id(id, path, probs);
    let host = t.req_str("host", probs);
    if let Some(h) = &host {
        check_name(h, path, "host", "a host name", probs);
    }
    let port = t.opt_u32("port", probs).unwrap_or(0);
    check_port(port, path, probs);
    let location = Location {
        data_center: t.opt_str("data_center", probs),
        module: t.opt_str("module", probs),
        rack: t.opt_str("rack", probs),
        unit: t.opt_str("unit", probs),
    };
    let tenant = t.opt_str("tenant", probs);
    check_tenant(tenant.as_deref(), path, probs);
    let version = t.opt_str("version", probs);
    let machine_id = t.opt_str("machine_id", probs);
    if let Some(m) = &machine_id {
        check_name(m, path, "machine_id", "a machine id", probs);
    }
    let state = t.opt_str("state", probs);
    let initial_state = initial_state(state.as_deref(), path, probs);
    let mut pdisks = Vec::new();
    let pd_path = key_path(path, "pdisks");
    for (i, pv) in t.opt_array("pdisks", probs).iter().enumerate() {
        let ppath = entry_path(&pd_path, i, pv);
        let mut pt = Table::new(pv, ppath.clone(), probs);
        let pid = pt.req_u32("id", probs);
        let dev = pt.req_str("path", probs);
        if let Some(p) = &dev {
            check_name(p, &ppath, "path", "a device path", probs);
        }
        pt.finish(probs);
        if let (Some(id), Some(dev)) = (pid, dev) {
            add_pdisk(&mut pdisks, id, dev, &ppath, probs);
        }
    }
    t.finish(probs);
    NodeFields {
        id,
        host,
        port,
        location,
        tenant,
        version,
        machine_id,
        initial_state,
        pdisks,
    }
    .build()
}

/// The path of a node's pdisk entry as the file has it: its index among the node's `pdisks` (the
/// loader skips refused entries, so the position in [`Node::pdisks`] may differ) and its id.
pub(super) fn pdisk_path(node: &Value, node_path: &str, pd: &PDisk) -> String {
    let list = key_path(node_path, "pdisks");
    let entries = node.get("pdisks").and_then(Value::as_array);
    let found = entries.into_iter().flatten().enumerate().find(|(_, e)| {
        e.get("id").and_then(Value::as_u64) == Some(u64::from(pd.id))
            && e.get("path").and_then(Value::as_str) == Some(pd.path.as_str())
    });
    match found {
        Some((i, e)) => entry_path(&list, i, e),
        None => list,
    }
}

/// An erasure by its name.
pub(super) fn erasure(name: &str, path: &str, probs: &mut Problems) -> Option<Erasure> {
    let parsed = Erasure::parse(name);
    if parsed.is_none() {
        probs.add(
            key_path(path, "erasure"),
            format!(
                "unknown erasure '{name}' (none | mirror-3 | block-4-2 | mirror-3-dc | quorum)"
            ),
        );
    }
    parsed
}

/// Whether a group names its members one way: by `vdisks` or by `nodes`.
pub(super) fn members_given(
    by_vdisks: bool,
    by_nodes: bool,
    path: &str,
    probs: &mut Problems,
) -> bool {
    match (by_vdisks, by_nodes) {
        (true, true) => {
            probs.add(path, "give either `vdisks` or `nodes`, not both");
            false
        }
        (false, false) => {
            probs.add(path, "a storage group needs `vdisks` or `nodes`");
            false
        }
        _ => true,
    }
}

/// A member given as `{ node, pdisk }` (the entry at `at`): the disk must exist.
pub(super) fn vdisk_member(
    node: u32,
    pdisk: u32,
    at: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<VDisk> {
    let key = PDiskKey { node, pdisk };
    // One lookup of the node: at 100,000 nodes a second one showed in the start's profile.
    match cluster.node(node) {
        None => {
            probs.add(key_path(at, "node"), format!("unknown node {node}"));
            None
        }
        Some(n) if !n.pdisks.iter().any(|p| p.id == pdisk) => {
            probs.add(
                key_path(at, "pdisk"),
                format!("node {node} has no pdisk {pdisk}"),
            );
            None
        }
        Some(_) => Some(VDisk { pdisk: key }),
    }
}

/// A member given as a node id (the entry at `at`): its first pdisk holds the vdisk.
pub(super) fn node_member(
    n: u32,
    at: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<VDisk> {
    match cluster.node(n) {
        None => {
            probs.add(at, format!("unknown node {n}"));
            None
        }
        Some(node) => match node.pdisks.first() {
            None => {
                probs.add(at, format!("node {n} has no pdisks to hold a vdisk"));
                None
            }
            Some(pd) => Some(VDisk {
                pdisk: PDiskKey {
                    node: n,
                    pdisk: pd.id,
                },
            }),
        },
    }
}

/// Reads a storage group entry (at `path`) from a parsed value.
pub(super) fn load_group(
    v: &Value,
    path: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<Group> {
    let mut t = Table::new(v, path.to_owned(), probs);
    let id = t.req_u32("id", probs);
    let erasure_name = t.req_str("erasure", probs);
    let erasure = erasure_name
        .as_deref()
        .and_then(|e| erasure(e, path, probs));
    let mut vdisks = Vec::new();
    let by_vdisks = t.value("vdisks").is_some();
    let by_nodes = t.value("nodes").is_some();
    let mut ok = members_given(by_vdisks, by_nodes, path, probs);
    if by_vdisks {
        let vpath = key_path(path, "vdisks");
        for (i, vv) in t.opt_array("vdisks", probs).iter().enumerate() {
            let p = index_path(&vpath, i);
            let mut vt = Table::new(vv, p.clone(), probs);
            let node = vt.req_u32("node", probs);
            let pdisk = vt.req_u32("pdisk", probs);
            vt.finish(probs);
            let member = match (node, pdisk) {
                (Some(node), Some(pdisk)) => vdisk_member(node, pdisk, &p, cluster, probs),
                _ => None,
            };
            match member {
                Some(m) => vdisks.push(m),
                None => ok = false,
            }
        }
    } else if by_nodes {
        let npath = key_path(path, "nodes");
        for (i, nv) in t.opt_array("nodes", probs).iter().enumerate() {
            let p = index_path(&npath, i);
            let member = as_u32(nv, &p, probs).and_then(|n| node_member(n, &p, cluster, probs));
            match member {
                Some(m) => vdisks.push(m),
                None => ok = false,
            }
        }
    }
    t.finish(probs);
    let (id, erasure) = (id?, erasure?);
    if !ok {
        return None;
    }
    finish_group(id, erasure, vdisks, path, cluster, probs)
}

/// The checks on a group's members as a whole: no disk twice, the erasure's member count, and
/// for mirror-3-dc an even spread over three data centers.
pub(super) fn finish_group(
    id: u32,
    erasure: Erasure,
    vdisks: Vec<VDisk>,
    path: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<Group> {
    let mut seen = BTreeSet::new();
    for v in &vdisks {
        if !seen.insert(v.pdisk) {
            probs.add(
                path,
                format!("pdisk {} holds two vdisks of this group", v.pdisk),
            );
            return None;
        }
    }
    let n = vdisks.len();
    let count_problem = match erasure {
        Erasure::None | Erasure::Quorum if n == 0 => Some("at least 1 member"),
        Erasure::Mirror3 if n < 3 => Some("at least 3 members"),
        Erasure::Block42 if !(6..=8).contains(&n) => {
            Some("6 to 8 members (4 data, 2 parity, up to 2 spare)")
        }
        Erasure::Mirror3Dc if n == 0 || !n.is_multiple_of(3) => {
            Some("3, 6 or 9 members, the same number in each of 3 data centers")
        }
        _ => None,
    };
    if let Some(need) = count_problem {
        probs.add(
            path,
            format!("a {} group needs {need}; this one has {n}", erasure.name()),
        );
        return None;
    }
    let mut realms = Vec::new();
    if erasure == Erasure::Mirror3Dc {
        let mut dcs: Vec<String> = Vec::new();
        for v in &vdisks {
            let node = cluster.node(v.pdisk.node)?;
            let Some(dc) = node.location.data_center.clone() else {
                probs.add(
                    path,
                    format!(
                        "mirror-3-dc needs a data_center on every member's node; node {} has none",
                        node.id
                    ),
                );
                return None;
            };
            let idx = match dcs.iter().position(|d| *d == dc) {
                Some(i) => i,
                None => {
                    dcs.push(dc);
                    dcs.len() - 1
                }
            };
            realms.push(u8::try_from(idx).unwrap_or(u8::MAX));
        }
        let per_dc: Vec<usize> = (0..dcs.len())
            .map(|d| realms.iter().filter(|r| usize::from(**r) == d).count())
            .collect();
        if dcs.len() != 3 || per_dc.iter().any(|c| *c != n / 3) {
            probs.add(
                path,
                format!(
                    "mirror-3-dc needs its members spread evenly over exactly 3 data centers; found {}: {}",
                    count(dcs.len(), "data center", "data centers"),
                    dcs.iter()
                        .zip(&per_dc)
                        .map(|(dc, n)| format!("'{dc}' with {}", count(*n, "member", "members")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
    }
    Some(Group {
        id,
        erasure,
        vdisks,
        realms,
    })
}
