//! The cluster model: what the inventory says exists, with the indexes a check needs.
//!
//! A [`Cluster`] is immutable once built; runtime facts (which node is down, which is locked)
//! live in [`crate::engine::State`]. Every index here exists so that one check costs what the
//! items it touches cost, never what the whole cluster costs.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A hash map over keys the inventory names (node ids, disks, hosts, device paths): hashed
/// with foldhash, several times faster than the standard SipHash. Never for keys a client
/// chooses (task uids, users), which keep the standard map.
pub(crate) type InventoryMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::fmt;
use std::time::Duration;

/// A node id as the inventory and the wire name it.
pub type NodeId = u32;
/// A storage group id.
pub type GroupId = u32;

/// One physical disk: a node id and the pdisk id on that node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PDiskKey {
    /// The node that holds the disk.
    pub node: NodeId,
    /// The disk's id on that node.
    pub pdisk: u32,
}

impl fmt::Display for PDiskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.pdisk)
    }
}

/// Where a node sits; shown by ListClusterNodes and used by mirror-3-dc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// Data center: the fail realm of mirror-3-dc groups.
    pub data_center: Option<String>,
    /// Module (room) within the data center.
    pub module: Option<String>,
    /// Rack within the module.
    pub rack: Option<String>,
    /// Unit within the rack.
    pub unit: Option<String>,
}

/// A physical disk of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PDisk {
    /// Unique within its node.
    pub id: u32,
    /// Device path, unique within its host; lets clients name the disk by host and path.
    pub path: String,
}

/// The state a node has when the arbiter first sees it (no record of it yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitialState {
    /// Running.
    Up,
    /// Down off-schedule.
    Down,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique, non-zero.
    pub id: NodeId,
    /// Several nodes may share a host; a host-scope lock takes all of them.
    pub host: String,
    /// Interconnect port, reported to clients.
    pub port: u32,
    /// Location labels.
    pub location: Location,
    /// `Some`: a dynamic node of that tenant; `None`: a storage node.
    pub tenant: Option<String>,
    /// Software version, reported to clients.
    pub version: Option<String>,
    /// State before anything has been recorded about the node.
    pub initial_state: InitialState,
    /// The node's disks, in inventory order (the first is the default vdisk home).
    pub pdisks: Vec<PDisk>,
    /// The id a FleetLock client names the node by (Zincati's app-specific machine id);
    /// unique across nodes. Without one, FleetLock names the node by its host.
    pub machine_id: Option<String>,
}

/// How a storage group survives lost members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Erasure {
    /// No redundancy: only force mode may take a member.
    None,
    /// Three replicas.
    Mirror3,
    /// Four data parts and two parity parts.
    Block42,
    /// Three replicas in three data centers.
    Mirror3Dc,
    /// A majority quorum (Raft, ISR...): survives floor((members - 1) / 2) lost members.
    Quorum,
}

impl Erasure {
    /// The inventory spelling.
    pub fn name(self) -> &'static str {
        match self {
            Erasure::None => "none",
            Erasure::Mirror3 => "mirror-3",
            Erasure::Block42 => "block-4-2",
            Erasure::Mirror3Dc => "mirror-3-dc",
            Erasure::Quorum => "quorum",
        }
    }

    /// Parses the inventory spelling.
    pub fn parse(s: &str) -> Option<Erasure> {
        Some(match s {
            "none" => Erasure::None,
            "mirror-3" => Erasure::Mirror3,
            "block-4-2" => Erasure::Block42,
            "mirror-3-dc" => Erasure::Mirror3Dc,
            "quorum" => Erasure::Quorum,
            _ => return None,
        })
    }
}

/// One vdisk: a member of a storage group, placed on a pdisk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VDisk {
    /// The disk that holds it.
    pub pdisk: PDiskKey,
}

/// A storage group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Unique.
    pub id: GroupId,
    /// Its failure model.
    pub erasure: Erasure,
    /// Its members, in inventory order.
    pub vdisks: Vec<VDisk>,
    /// For mirror-3-dc: each member's data center index (0, 1, 2); empty otherwise.
    pub realms: Vec<u8>,
}

/// Limits on unavailable nodes; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Absolute number of unavailable nodes.
    pub max_unavailable_nodes: u32,
    /// Percent of all nodes, rounded down (but one node is always allowed alone).
    pub max_unavailable_ratio: u32,
    /// A rate budget on new grants (`None`: no pace).
    pub max_grants: Option<crate::engine::budget::Budget>,
}

impl Default for Limits {
    /// YDB's defaults: no absolute limit, 13 percent.
    fn default() -> Self {
        Limits {
            max_unavailable_nodes: 0,
            max_unavailable_ratio: 13,
            max_grants: None,
        }
    }
}

/// Fairness among the tasks of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fairness {
    /// A pending task older than this reserves what it waits for against newer tasks of its
    /// priority, as a higher-priority task would (`None`: no aging).
    pub aging: Option<Duration>,
}

/// The default aging threshold.
pub const DEFAULT_AGING: Duration = Duration::from_secs(600);

impl Default for Fairness {
    fn default() -> Self {
        Fairness {
            aging: Some(DEFAULT_AGING),
        }
    }
}

/// Durations the engine uses when a request leaves them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The lock duration of a lock action that carries none.
    pub lock_duration: Duration,
    /// How long a task that got nothing should wait, when no lock deadline says better.
    pub retry_after: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            lock_duration: Duration::from_secs(300),
            retry_after: Duration::from_secs(300),
        }
    }
}

/// The state-storage configuration: rings of replica nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateStorage {
    /// How many rings a lookup selects; the weak mode tolerates (nto_select - 1) / 2 bad rings.
    pub nto_select: u32,
    /// Replica nodes per ring.
    pub rings: Vec<Vec<NodeId>>,
    /// Whether each ring is disabled (parallel to `rings`).
    pub disabled: Vec<bool>,
}

/// A system tablet type and the nodes it may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysTablet {
    /// Tablet type, e.g. "HIVE".
    pub kind: String,
    /// Nodes it runs on.
    pub nodes: Vec<NodeId>,
}

/// A tenant (database) and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its path, e.g. "/Root/db1".
    pub name: String,
    /// Its own limits on unavailable nodes.
    pub limits: Limits,
    /// Its dynamic nodes, ascending.
    pub nodes: Vec<NodeId>,
}

/// The cluster as the inventory describes it, with lookup indexes.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub(crate) nodes: BTreeMap<NodeId, Node>,
    pub(crate) groups: BTreeMap<GroupId, Group>,
    pub(crate) tenants: BTreeMap<String, Tenant>,
    pub(crate) limits: Limits,
    pub(crate) defaults: Defaults,
    pub(crate) fairness: Fairness,
    pub(crate) state_storage: StateStorage,
    pub(crate) sys_tablets: Vec<SysTablet>,
    /// host -> its nodes, ascending.
    pub(crate) hosts: InventoryMap<String, Vec<NodeId>>,
    /// (host, path) -> disk.
    pub(crate) pdisk_paths: InventoryMap<(String, String), PDiskKey>,
    /// disk -> the (group, member index) pairs of its vdisks.
    pub(crate) vdisks_on: InventoryMap<PDiskKey, Vec<(GroupId, usize)>>,
    /// node -> its state-storage ring index.
    pub(crate) ring_of: InventoryMap<NodeId, usize>,
    /// node -> indexes into `sys_tablets`.
    pub(crate) tablets_of: InventoryMap<NodeId, Vec<usize>>,
    /// Maintenance windows, in inventory order.
    pub(crate) windows: Vec<crate::engine::windows::Window>,
    /// node -> indexes into `windows` (nodes without windows are absent).
    pub(crate) windows_of: InventoryMap<NodeId, Vec<usize>>,
    /// FleetLock's reboot groups by name (`[fleetlock.groups.NAME]`; without a `[fleetlock]`
    /// table, one group "default" over every node).
    pub(crate) fleetlock_groups: BTreeMap<String, FleetLockGroup>,
}

/// One FleetLock reboot group: a counting semaphore over some nodes, each slot a lock task on
/// top of every normal check (see `crate::http::fleetlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetLockGroup {
    /// The name clients send as `client_params.group` (`^[a-zA-Z0-9.-]+$`).
    pub name: String,
    /// How many nodes of the group may hold a reboot lock at once (at least 1).
    pub slots: u32,
    /// The nodes that may join it.
    pub scope: crate::engine::windows::WindowScope,
    /// How long a lock lasts when the node never reports steady-state.
    pub lock_duration: Duration,
    /// The availability mode of its lock tasks (never force).
    pub mode: crate::engine::task::Mode,
    /// With `--auth`: a caller with no token (Zincati cannot send one) is accepted as the
    /// operator "fleetlock" for this group only.
    pub unauthenticated: bool,
}

impl FleetLockGroup {
    /// The lock duration of a group that sets none.
    pub const DEFAULT_LOCK_DURATION: Duration = Duration::from_secs(3600);

    /// The implicit group of an inventory without a `[fleetlock]` table.
    pub fn implicit_default() -> FleetLockGroup {
        FleetLockGroup {
            name: "default".into(),
            slots: 1,
            scope: crate::engine::windows::WindowScope::All,
            lock_duration: FleetLockGroup::DEFAULT_LOCK_DURATION,
            mode: crate::engine::task::Mode::Strong,
            unauthenticated: false,
        }
    }

    /// Whether `node` may join the group.
    pub fn covers(&self, node: &Node) -> bool {
        use crate::engine::windows::WindowScope;
        match &self.scope {
            WindowScope::All => true,
            WindowScope::Tenant(t) => node.tenant.as_deref() == Some(t.as_str()),
            WindowScope::DataCenter(dc) => {
                node.location.data_center.as_deref() == Some(dc.as_str())
            }
            WindowScope::Nodes(ns) => ns.contains(&node.id),
        }
    }
}

impl Cluster {
    /// Builds the indexes but `pdisk_paths`, which the inventory loader builds as it checks that
    /// no two disks share a path. The loader has already validated cross references.
    pub(crate) fn index(mut self) -> Cluster {
        self.hosts.clear();
        self.vdisks_on.clear();
        self.ring_of.clear();
        self.tablets_of.clear();
        self.index_windows();
        // Sized first: at 100,000 nodes regrowing these maps cost a tenth of the start.
        self.hosts.reserve(self.nodes.len());
        self.vdisks_on
            .reserve(self.groups.values().map(|g| g.vdisks.len()).sum());
        for node in self.nodes.values() {
            self.hosts
                .entry(node.host.clone())
                .or_default()
                .push(node.id);
        }
        for group in self.groups.values() {
            for (i, v) in group.vdisks.iter().enumerate() {
                self.vdisks_on
                    .entry(v.pdisk)
                    .or_default()
                    .push((group.id, i));
            }
        }
        for (r, ring) in self.state_storage.rings.iter().enumerate() {
            for n in ring {
                self.ring_of.insert(*n, r);
            }
        }
        for (t, tablet) in self.sys_tablets.iter().enumerate() {
            for n in &tablet.nodes {
                let list = self.tablets_of.entry(*n).or_default();
                if !list.contains(&t) {
                    list.push(t);
                }
            }
        }
        self
    }

    /// A node by id.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// Every node, ascending by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// How many nodes the cluster has.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A storage group by id.
    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// Every storage group, ascending by id.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// A FleetLock reboot group by name.
    pub fn fleetlock_group(&self, name: &str) -> Option<&FleetLockGroup> {
        self.fleetlock_groups.get(name)
    }

    /// Every FleetLock reboot group, by name.
    pub fn fleetlock_groups(&self) -> impl Iterator<Item = &FleetLockGroup> {
        self.fleetlock_groups.values()
    }

    /// The node a FleetLock client id names: the node with that `machine_id`, else the only
    /// node on the host of that name (`None`: no node, or a host of several nodes).
    pub fn fleetlock_node(&self, id: &str) -> Option<NodeId> {
        if let Some(n) = self
            .nodes
            .values()
            .find(|n| n.machine_id.as_deref() == Some(id))
        {
            return Some(n.id);
        }
        match self.host_nodes(id) {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The nodes of a host, ascending; empty for an unknown host.
    pub fn host_nodes(&self, host: &str) -> &[NodeId] {
        self.hosts.get(host).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The disk at `path` on `host`.
    pub fn pdisk_at(&self, host: &str, path: &str) -> Option<PDiskKey> {
        self.pdisk_paths
            .get(&(host.to_owned(), path.to_owned()))
            .copied()
    }

    /// Whether the disk exists.
    pub fn has_pdisk(&self, key: PDiskKey) -> bool {
        self.nodes
            .get(&key.node)
            .is_some_and(|n| n.pdisks.iter().any(|p| p.id == key.pdisk))
    }

    /// The (group, member index) pairs of the vdisks on a disk.
    pub fn vdisks_on(&self, key: PDiskKey) -> &[(GroupId, usize)] {
        self.vdisks_on.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Replaces the default durations (the server's command line overrides the inventory's).
    pub fn set_defaults(&mut self, defaults: Defaults) {
        self.defaults = defaults;
    }

    /// Tenants by name.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// The cluster-wide limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The default durations.
    pub fn defaults(&self) -> Defaults {
        self.defaults
    }

    /// The fairness rules.
    pub fn fairness(&self) -> Fairness {
        self.fairness
    }

    /// The state-storage configuration.
    pub fn state_storage(&self) -> &StateStorage {
        &self.state_storage
    }

    /// The system tablets.
    pub fn sys_tablets(&self) -> &[SysTablet] {
        &self.sys_tablets
    }
}
