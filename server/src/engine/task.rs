//! Maintenance tasks: what a client asks for, and what the engine keeps of it.

use crate::engine::cluster::{NodeId, PDiskKey};
pub use crate::engine::drain::ActionKind;
use crate::engine::drain::WorkState;
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How much availability a task may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// At most one unavailable member per storage group; at most one bad state-storage ring.
    Strong,
    /// Spend the failure model's redundancy (parity, the mirror-3-dc rule, a ring majority).
    Weak,
    /// No failure-model or limit checks; lock conflicts still apply.
    Force,
    /// Strong where possible, weak as the fallback; never force.
    Smart,
}

impl Mode {
    /// Lower-case name, as details texts and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Strong => "strong",
            Mode::Weak => "weak",
            Mode::Force => "force",
            Mode::Smart => "smart",
        }
    }
}

/// What one lock action takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// One node.
    Node(NodeId),
    /// Every node of a host.
    Host(String),
    /// One disk, by node and pdisk id.
    PDisk(PDiskKey),
    /// One disk, by host and device path.
    PDiskPath {
        /// The host.
        host: String,
        /// The device path on it.
        path: String,
    },
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Node(n) => write!(f, "node {n}"),
            Scope::Host(h) => write!(f, "host '{h}'"),
            Scope::PDisk(k) => write!(f, "pdisk {k}"),
            Scope::PDiskPath { host, path } => write!(f, "pdisk {host}:{path}"),
        }
    }
}

/// One lock action of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// What to lock.
    pub scope: Scope,
    /// How long; `None` or zero: the inventory's default lock duration.
    pub duration: Option<Duration>,
    /// A plain lock, a lock that drains first, or YDB's drain / cordon.
    pub kind: ActionKind,
}

/// A request to create a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRequest {
    /// Unique, chosen by the client.
    pub uid: String,
    /// Who asks; the task's owner.
    pub owner: String,
    /// Free text.
    pub description: String,
    /// Availability mode.
    pub mode: Mode,
    /// In [-100, 100]; lower is more important.
    pub priority: i32,
    /// Check only; store nothing.
    pub dry_run: bool,
    /// Ordered action groups.
    pub groups: Vec<Vec<LockRequest>>,
    /// An admin's explicit override: freezes, maintenance windows and rate budgets do not
    /// hold this task back (the failure model and the limits still do). Logged and audited.
    pub override_holds: bool,
}

#[cfg(test)]
impl TaskRequest {
    /// A stored (not dry-run) request of owner "me" at priority 0, for unit tests.
    pub(crate) fn of(uid: &str, mode: Mode, groups: Vec<Vec<LockRequest>>) -> TaskRequest {
        TaskRequest {
            uid: uid.into(),
            owner: "me".into(),
            description: String::new(),
            mode,
            priority: 0,
            dry_run: false,
            override_holds: false,
            groups,
        }
    }
}

/// Why an action waits (YDB's ActionReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Anything else: a lock conflict, a higher-priority task, an unknown item.
    Generic,
    /// A storage group would lose too much.
    TooManyUnavailableVDisks,
    /// Too many state-storage rings would be unavailable.
    TooManyUnavailableStateStorageRings,
    /// The cluster's node limit.
    DisabledNodesLimitReached,
    /// A tenant's node limit.
    TenantDisabledNodesLimitReached,
    /// A system tablet would lose too many nodes.
    SysTabletsNodeLimitReached,
    /// A freeze, or the arbiter's read-only mode, holds it back (GENERIC on YDB's wire).
    Frozen,
    /// Outside every maintenance window of its nodes (GENERIC on YDB's wire).
    OutsideWindow,
    /// A rate budget is used up (GENERIC on YDB's wire).
    RateBudget,
}

/// Where an action stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionStatus {
    /// Not granted; the last check said why.
    Pending {
        /// The category.
        reason: Reason,
        /// The blocker, in words.
        details: String,
    },
    /// Granted: the lock is held until `deadline`.
    Performed {
        /// When it was granted.
        granted_at: Timestamp,
        /// When the lock lapses unless completed earlier.
        deadline: Timestamp,
        /// Strictly greater than every token issued before it.
        fencing_token: u64,
    },
}

/// What an action's scope resolves to in an inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Items {
    /// Whole nodes (a node, or every node of a host).
    Nodes(Vec<NodeId>),
    /// One disk.
    PDisk(PDiskKey),
}

impl Items {
    /// The nodes the items are on (a disk: its node).
    pub(crate) fn nodes(&self) -> &[NodeId] {
        match self {
            Items::Nodes(ns) => ns,
            Items::PDisk(k) => std::slice::from_ref(&k.node),
        }
    }
}

/// One action the engine keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Unique across all tasks ever created, assigned at creation.
    pub id: String,
    /// What it locks.
    pub scope: Scope,
    /// The requested duration (`None`: default).
    pub duration: Option<Duration>,
    /// Pending or performed.
    pub status: ActionStatus,
    /// What the lock covered when it was granted. A server restarted with an inventory that
    /// resolves the scope to other nodes must refuse to start, as a reload refuses: the lock
    /// would silently grow or shrink. Absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<Items>,
    /// A plain lock, a lock that drains first, or YDB's drain / cordon.
    #[serde(default, skip_serializing_if = "ActionKind::is_lock")]
    pub kind: ActionKind,
    /// Once granted, where its agent's work stands (only for kinds with work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkState>,
}

impl Action {
    /// The deadline, when performed.
    pub fn deadline(&self) -> Option<Timestamp> {
        match self.status {
            ActionStatus::Performed { deadline, .. } => Some(deadline),
            ActionStatus::Pending { .. } => None,
        }
    }

    /// Whether it waits.
    pub fn is_pending(&self) -> bool {
        matches!(self.status, ActionStatus::Pending { .. })
    }
}

/// One action group of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionGroup {
    /// Stable within the task ("0", "1", ...): its position in the request.
    pub id: String,
    /// Its remaining actions, in request order.
    pub actions: Vec<Action>,
}

/// A task as the engine keeps (and the store persists) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique.
    pub uid: String,
    /// Who created it.
    pub owner: String,
    /// Free text.
    pub description: String,
    /// Availability mode.
    pub mode: Mode,
    /// Lower is more important.
    pub priority: i32,
    /// One group with several actions: all-or-nothing.
    pub composite: bool,
    /// The remaining groups, in request order; a group with no actions left is removed.
    pub groups: Vec<ActionGroup>,
    /// When it was created.
    pub create_time: Timestamp,
    /// When it was last refreshed (initially `create_time`).
    pub last_refresh_time: Timestamp,
    /// Freezes, windows and budgets do not hold it back (an admin's explicit override).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub override_holds: bool,
}

impl Task {
    /// Every remaining action, in request order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.groups.iter().flat_map(|g| g.actions.iter())
    }

    /// Whether any action waits.
    pub fn has_pending(&self) -> bool {
        self.actions().any(Action::is_pending)
    }

    /// The action with this id.
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.actions().find(|a| a.id == id)
    }
}
