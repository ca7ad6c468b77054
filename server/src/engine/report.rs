//! What the engine's queries and commands answer with: plain views, free of wire types.

use crate::engine::cluster::NodeId;
use crate::engine::drain::WorkView;
use crate::engine::task::{Action, ActionKind, ActionStatus, Mode, Reason, Scope};
use crate::engine::time::Timestamp;
use std::time::Duration;

/// A node's reported state (YDB's ItemState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Up,
    /// Down and locked: planned maintenance.
    Maintenance,
    /// Down off-schedule.
    Down,
}

/// What the arbiter knows of a node, in more detail than [`NodeState`] (YDB's three states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeCondition {
    /// Running, nothing holds it.
    Up,
    /// A live node-wide lock holds it, and the node is not ready to stop yet: its drain runs,
    /// or (without a drain) its agent still reports it running.
    Entering,
    /// A live node-wide lock holds it and it is safe to stop: drained, seen down, or without
    /// an agent (nothing more is known).
    InMaintenance,
    /// Released from a lock and not seen up since.
    Restarting,
    /// Seen up again, but within its settle time.
    Settling,
    /// Known down: set down by an operator, or down in the inventory.
    Down,
    /// Its agent went silent (heartbeat timeout): it may be down or running. It counts as
    /// unavailable, and locking it is checked as if it were up.
    Unknown,
}

impl NodeCondition {
    /// Its name in texts and tables.
    pub fn name(self) -> &'static str {
        match self {
            NodeCondition::Up => "up",
            NodeCondition::Entering => "entering",
            NodeCondition::InMaintenance => "in_maintenance",
            NodeCondition::Restarting => "restarting",
            NodeCondition::Settling => "settling",
            NodeCondition::Down => "down",
            NodeCondition::Unknown => "unknown",
        }
    }
}

/// One node as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Its id.
    pub id: NodeId,
    /// Its state.
    pub state: NodeState,
    /// Its state in more detail.
    pub condition: NodeCondition,
    /// When it was last seen coming up, if ever.
    pub up_since: Option<Timestamp>,
    /// Why it is unavailable without a lock, in words ("restarting since ..., not seen up").
    pub detail: Option<String>,
    /// The version its agent reported.
    pub version: Option<String>,
    /// The process start time its agent reported.
    pub start_time: Option<Timestamp>,
    /// Its last heartbeat since this server started.
    pub last_heartbeat: Option<Timestamp>,
    /// Whether it has an agent (has sent a heartbeat).
    pub monitored: bool,
    /// Whether the checks count it as available: not locked, down, restarting or settling.
    pub available: bool,
    /// The task holding a node-wide lock on it, and the lock's deadline.
    pub lock: Option<(String, Timestamp)>,
    /// Its maintenance windows at the time asked about; `None` when no window covers it (and
    /// from [`crate::engine::State::nodes`], which knows no time: see `State::nodes_at`).
    pub window: Option<WindowStatus>,
}

/// A node's maintenance windows at one instant ([`crate::engine::Cluster::window_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowStatus {
    /// The names of the windows that cover it, in inventory order.
    pub names: Vec<String>,
    /// Whether one of them is open.
    pub open: bool,
    /// When open: when it closes (the latest end among the open ones).
    pub open_until: Option<Timestamp>,
    /// When closed: the soonest opening (`None`: none within the two-year horizon).
    pub next_open: Option<Timestamp>,
    /// The IANA zone of the window that `open_until` or `next_open` comes from.
    pub zone: String,
    /// That instant in that zone, RFC 3339 with its offset (`2026-12-01T22:00:00+01:00`).
    pub local: Option<String>,
}

/// One action as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionView {
    /// Its id (empty in a dry run).
    pub id: String,
    /// What it locks.
    pub scope: Scope,
    /// The requested duration.
    pub duration: Option<Duration>,
    /// Performed or pending, with the details.
    pub status: ActionStatus,
    /// A plain lock, a lock that drains first, or a drain / cordon.
    pub kind: ActionKind,
    /// Once granted, its agent's work (kinds with work only).
    pub work: Option<WorkView>,
}

impl ActionView {
    pub(crate) fn of(a: &Action) -> ActionView {
        ActionView {
            id: a.id.clone(),
            scope: a.scope.clone(),
            duration: a.duration,
            status: a.status.clone(),
            kind: a.kind,
            work: None,
        }
    }

    pub(crate) fn with_work(mut self, work: Option<WorkView>) -> ActionView {
        self.work = work;
        self
    }

    /// Granted, and its work (if any) is not done yet: YDB's IN_PROGRESS.
    pub fn in_progress(&self) -> bool {
        self.work.as_ref().is_some_and(|w| !w.done)
    }

    /// Whether granted.
    pub fn is_performed(&self) -> bool {
        matches!(self.status, ActionStatus::Performed { .. })
    }

    /// The pending reason, when pending.
    pub fn reason(&self) -> Option<Reason> {
        match &self.status {
            ActionStatus::Pending { reason, .. } => Some(*reason),
            ActionStatus::Performed { .. } => None,
        }
    }

    /// The details text (empty when performed).
    pub fn details(&self) -> &str {
        match &self.status {
            ActionStatus::Pending { details, .. } => details,
            ActionStatus::Performed { .. } => "",
        }
    }

    /// The deadline, when performed.
    pub fn deadline(&self) -> Option<Timestamp> {
        match self.status {
            ActionStatus::Performed { deadline, .. } => Some(deadline),
            ActionStatus::Pending { .. } => None,
        }
    }

    /// The fencing token, when performed.
    pub fn fencing_token(&self) -> Option<u64> {
        match self.status {
            ActionStatus::Performed { fencing_token, .. } => Some(fencing_token),
            ActionStatus::Pending { .. } => None,
        }
    }
}

/// One action group as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// Its id within the task.
    pub id: String,
    /// Its remaining actions, in request order.
    pub actions: Vec<ActionView>,
}

/// A task as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// Its uid.
    pub uid: String,
    /// Its owner.
    pub owner: String,
    /// Its description.
    pub description: String,
    /// Its mode.
    pub mode: Mode,
    /// Its priority.
    pub priority: i32,
    /// Remaining groups, in request order.
    pub groups: Vec<GroupView>,
    /// When created.
    pub create_time: Timestamp,
    /// When last refreshed.
    pub last_refresh_time: Timestamp,
    /// Set when this call granted nothing and something waits: when to try again.
    pub retry_after: Option<Timestamp>,
    /// Freezes, windows and budgets do not hold it back (an admin's override).
    pub override_holds: bool,
}

impl TaskView {
    /// Every remaining action, in request order.
    pub fn actions(&self) -> impl Iterator<Item = &ActionView> {
        self.groups.iter().flat_map(|g| g.actions.iter())
    }
}
