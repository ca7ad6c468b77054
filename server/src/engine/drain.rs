//! Cooperative drain and cordon: work that a node's agent does before (or instead of) a node
//! going down, through hooks its operator writes.
//!
//! # The model
//! - An action has a kind ([`ActionKind`]): a plain lock; a lock that drains first (Arbiter's
//!   `LockAction.drain`); or YDB's DrainAction / CordonAction, which are checked like a lock of
//!   unlimited duration.
//! - A granted action with work carries a [`WorkState`], durable in the task: waiting for the
//!   agent, running with a progress, done, or failed (the agent retries by its policy). The
//!   wire shows such an action IN_PROGRESS until its work is done, then PERFORMED.
//! - Per node, the runtime keeps what the agent has applied ([`Applied`]: drained or cordoned
//!   for which action), durably, so that an undrain is owed even across restarts.
//! - The agent learns what to do from [`Orders`], a pure function of that state: do the work of
//!   the live action; or undo what was applied once its action is gone (after a lock, only
//!   once the node is seen up again: a node must not take work back while it restarts).
//! - Which nodes have an agent connected is soft state ([`State::agent_attached`]). A new drain
//!   or cordon waits for one; a granted one whose agent went away says so in its details.

use crate::engine::cluster::NodeId;
use crate::engine::error::EngineError;
use crate::engine::record::Change;
use crate::engine::state::{Outcome, State};
use crate::engine::task::{Action, ActionStatus, Task};
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an action asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    /// An exclusive lock until its deadline.
    #[default]
    Lock,
    /// A lock whose node is drained by its agent before the lock counts as performed.
    DrainFirst,
    /// YDB's DrainAction: move the work away; no deadline.
    Drain,
    /// YDB's CordonAction: no new work there; no deadline.
    Cordon,
}

impl ActionKind {
    /// Whether it is a plain lock (the serialised default).
    pub fn is_lock(&self) -> bool {
        *self == ActionKind::Lock
    }

    /// The work an agent does for it, if any.
    pub fn work(self) -> Option<WorkKind> {
        match self {
            ActionKind::Lock => None,
            ActionKind::DrainFirst | ActionKind::Drain => Some(WorkKind::Drain),
            ActionKind::Cordon => Some(WorkKind::Cordon),
        }
    }

    /// Whether it holds until completed or dropped (no deadline): drain and cordon.
    pub fn unlimited(self) -> bool {
        matches!(self, ActionKind::Drain | ActionKind::Cordon)
    }
}

/// The two kinds of work an agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkKind {
    /// Move the node's work away (`--on-drain`; undone by `--on-undrain`).
    Drain,
    /// Keep new work off the node (`--on-cordon`; undone by `--on-uncordon`).
    Cordon,
}

impl WorkKind {
    /// "drain" or "cordon".
    pub fn name(self) -> &'static str {
        match self {
            WorkKind::Drain => "drain",
            WorkKind::Cordon => "cordon",
        }
    }

    /// "drained" or "cordoned".
    pub fn done_word(self) -> &'static str {
        match self {
            WorkKind::Drain => "drained",
            WorkKind::Cordon => "cordoned",
        }
    }
}

/// Where the work of a granted action stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkState {
    /// Granted; the agent has not reported yet.
    Waiting,
    /// The hook runs; progress in hundredths of a percent (0..=10000).
    Running {
        /// Hundredths of a percent.
        progress: u32,
    },
    /// The hook succeeded.
    Done,
    /// The hook failed; the agent tries again after `retry_in_ms`.
    Failed {
        /// Which attempt failed (1: the first).
        attempt: u32,
        /// "exit status 3", "timed out after 10s", "killed by signal 9".
        exit: String,
        /// The last line the hook wrote to stderr.
        stderr: String,
        /// When the agent tries again, from the report.
        retry_in_ms: u64,
    },
}

/// What a node's agent has applied and not yet undone, for which action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The task of the action.
    pub task: String,
    /// The action.
    pub action: String,
    /// The last failure of the undo hook, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_failure: Option<String>,
}

/// One standing order for an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Nothing to do.
    Idle,
    /// Run the hook (again, if it failed) and report until done.
    Do {
        /// The task of the action.
        task: String,
        /// The action.
        action: String,
    },
    /// Undo what was applied for this action.
    Undo {
        /// The task of the action.
        task: String,
        /// The action.
        action: String,
    },
    /// Applied, its action is gone, and the node is not seen healthy again yet: leave it.
    Hold,
}

/// What an agent should do now, per kind of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orders {
    /// Drain or undrain.
    pub drain: Order,
    /// Cordon or uncordon.
    pub cordon: Order,
}

/// What a hook run came to, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Still running, at this progress (hundredths of a percent).
    Running(u32),
    /// Succeeded.
    Done,
    /// Failed.
    Failed {
        /// Which attempt.
        attempt: u32,
        /// How it ended, in words.
        exit: String,
        /// Its last stderr line.
        stderr: String,
        /// When the agent tries again.
        retry_in_ms: u64,
    },
}

/// One report of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkReport {
    /// Which work.
    pub kind: WorkKind,
    /// For which action.
    pub task: String,
    /// The action.
    pub action: String,
    /// Whether this is the undo hook (undrain, uncordon).
    pub undo: bool,
    /// How it stands.
    pub outcome: HookOutcome,
}

/// The longest stderr line kept from a report.
const MAX_STDERR: usize = 512;

/// A percentage as YDB prints it: "42.00".
pub fn percent(progress: u32) -> String {
    format!("{}.{:02}", progress / 100, progress % 100)
}

impl fmt::Display for WorkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkState::Waiting => f.write_str("waiting for the agent"),
            WorkState::Running { progress } => write!(f, "Progress: {}%", percent(*progress)),
            WorkState::Done => f.write_str("done"),
            WorkState::Failed {
                attempt,
                exit,
                stderr,
                retry_in_ms,
            } => {
                write!(f, "the hook failed (attempt {attempt}): {exit}")?;
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                write!(
                    f,
                    "; the agent tries again in {}s",
                    retry_in_ms.div_ceil(1000)
                )
            }
        }
    }
}

impl State {
    // ----- agents ---------------------------------------------------------------------------

    /// An agent's order stream opened for `node`: it counts as connected until as many
    /// [`State::agent_detached`] calls. Returns its orders.
    pub fn agent_attached(&mut self, node: NodeId) -> Result<Orders, EngineError> {
        if self.cluster.node(node).is_none() {
            return Err(EngineError::UnknownNode(node));
        }
        *self.agents.entry(node).or_default() += 1;
        self.agent_lost.remove(&node);
        Ok(self.orders(node))
    }

    /// An agent's order stream for `node` closed at `now`.
    pub fn agent_detached(&mut self, node: NodeId, now: Timestamp) {
        if let Some(n) = self.agents.get_mut(&node) {
            *n -= 1;
            if *n == 0 {
                self.agents.remove(&node);
                self.agent_lost.insert(node, now);
            }
        }
    }

    /// Carries the connected agents over to a state rebuilt from the store (soft state that
    /// the store does not hold).
    pub fn keep_agents_of(&mut self, old: &State) {
        self.agents = old.agents.clone();
        self.agent_lost = old.agent_lost.clone();
    }

    /// Whether an agent of `node` is connected.
    pub fn agent_connected(&self, node: NodeId) -> bool {
        self.agents.contains_key(&node)
    }

    /// The nodes whose orders may have changed since the last call (the writer tells their
    /// agents after the commit).
    pub fn take_orders_dirty(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.orders_dirty).into_iter().collect()
    }

    /// What the agent of `node` should do now.
    pub fn orders(&self, node: NodeId) -> Orders {
        Orders {
            drain: self.order(node, WorkKind::Drain),
            cordon: self.order(node, WorkKind::Cordon),
        }
    }

    fn order(&self, node: NodeId, kind: WorkKind) -> Order {
        if let Some((task, action)) = self.live_work(node, kind) {
            return Order::Do {
                task: task.uid.clone(),
                action: action.id.clone(),
            };
        }
        let Some(rt) = self.runtime.get(&node) else {
            return Order::Idle;
        };
        let applied = match kind {
            WorkKind::Drain => &rt.drained,
            WorkKind::Cordon => &rt.cordoned,
        };
        match applied {
            None => Order::Idle,
            // Not while it restarts or is down: it takes work back once seen healthy again.
            Some(_) if rt.down || rt.restarting_since.is_some() => Order::Hold,
            Some(a) => Order::Undo {
                task: a.task.clone(),
                action: a.action.clone(),
            },
        }
    }

    /// The granted action of this kind of work that holds `node`, if any.
    fn live_work(&self, node: NodeId, kind: WorkKind) -> Option<(&Task, &Action)> {
        let lock = self.node_locks.get(&node)?;
        let task = self.tasks.get(&lock.task)?;
        let action = task.action(&lock.action)?;
        (action.kind.work() == Some(kind)).then_some((task, action))
    }

    /// Records an agent's report. A report about an action that is gone (completed, dropped,
    /// expired) or that this node does not hold changes nothing: the agent's orders tell it
    /// what is current.
    pub fn report_work(
        &mut self,
        node: NodeId,
        report: WorkReport,
    ) -> Result<Outcome<bool>, EngineError> {
        if self.cluster.node(node).is_none() {
            return Err(EngineError::UnknownNode(node));
        }
        let mut changes = Vec::new();
        let outcome = clip(report.outcome);
        let applied_ref = Applied {
            task: report.task.clone(),
            action: report.action.clone(),
            undo_failure: None,
        };
        let same = |a: &Option<Box<Applied>>| {
            a.as_ref()
                .is_some_and(|a| a.task == report.task && a.action == report.action)
        };
        let kind = report.kind;
        if report.undo {
            let changed = self.update_node(node, &mut changes, |rt| {
                let field = match kind {
                    WorkKind::Drain => &mut rt.drained,
                    WorkKind::Cordon => &mut rt.cordoned,
                };
                if !same(field) {
                    return false;
                }
                match &outcome {
                    HookOutcome::Done => *field = None,
                    HookOutcome::Failed { .. } => {
                        let failure = Some(WorkState::from(outcome.clone()).to_string());
                        match field.as_mut() {
                            // The same failure again (a resent report) changes nothing.
                            Some(a) if a.undo_failure != failure => a.undo_failure = failure,
                            _ => return false,
                        }
                    }
                    HookOutcome::Running(_) => return false,
                }
                true
            });
            return Ok(Outcome {
                value: changed,
                changes,
            });
        }
        let live = self
            .live_work(node, kind)
            .is_some_and(|(t, a)| t.uid == report.task && a.id == report.action);
        if !live {
            return Ok(Outcome {
                value: false,
                changes,
            });
        }
        let state = WorkState::from(outcome);
        let mut changed = false;
        if let Some(task) = self.tasks.get(&report.task)
            && let Some(action) = task.action(&report.action)
            && action.work.as_ref() != Some(&state)
        {
            let mut task = task.clone();
            for g in &mut task.groups {
                for a in &mut g.actions {
                    if a.id == report.action {
                        a.work = Some(state.clone());
                    }
                }
            }
            changes.push(Change::PutTask(task.clone()));
            self.tasks.insert(task.uid.clone(), task);
            changed = true;
        }
        // From the first report on, the node owes an undo when the action ends.
        changed |= self.update_node(node, &mut changes, |rt| {
            let field = match kind {
                WorkKind::Drain => &mut rt.drained,
                WorkKind::Cordon => &mut rt.cordoned,
            };
            if same(field) {
                return false;
            }
            *field = Some(Box::new(applied_ref));
            true
        });
        Ok(Outcome {
            value: changed,
            changes,
        })
    }

    // ----- checks and views -----------------------------------------------------------------

    /// Why an action with work cannot be granted on these nodes now: one of them has no agent.
    pub(crate) fn agent_missing(&self, kind: WorkKind, nodes: &[NodeId]) -> Option<String> {
        let n = nodes.iter().copied().find(|n| !self.agent_connected(*n))?;
        let since = match self.agent_lost.get(&n) {
            Some(t) => format!(" (its agent went away at {t})"),
            None => String::new(),
        };
        Some(format!(
            "no agent is connected for node {n}{since}: a {} needs the node's agent (arbiter agent --node {n} --on-{} CMD)",
            kind.name(),
            kind.name()
        ))
    }

    /// An action's work as clients see it: whether it is done, and the details text.
    pub(crate) fn work_view(&self, action: &Action) -> Option<WorkView> {
        let kind = action.kind.work()?;
        let ActionStatus::Performed { .. } = action.status else {
            return None;
        };
        let state = action.work.clone().unwrap_or(WorkState::Waiting);
        let nodes: Vec<NodeId> = action
            .covers
            .as_ref()
            .map(|c| c.nodes().to_vec())
            .unwrap_or_default();
        let mut details = match &state {
            WorkState::Done => format!("{} by the node's agent", kind.done_word()),
            WorkState::Waiting => {
                format!("granted; waiting for the node's agent to {}", kind.name())
            }
            s => format!("{}: {s}", kind.name()),
        };
        if state != WorkState::Done {
            if matches!(state, WorkState::Running { .. }) {
                // YDB's own text first, exactly: clients parse "Progress: NN.NN%".
                details = state.to_string();
            }
            if let Some(n) = nodes.iter().copied().find(|n| !self.agent_connected(*n)) {
                let since = match self.agent_lost.get(&n) {
                    Some(t) => format!(" since {t}"),
                    None => String::new(),
                };
                details.push_str(&format!(
                    "; the agent of node {n} is not connected{since}: the {} resumes when it returns",
                    kind.name()
                ));
            }
        }
        Some(WorkView {
            kind,
            done: state == WorkState::Done,
            state,
            details,
        })
    }

    /// What a node still owes to be undone, when its action is gone: "drained for task 't1'
    /// (undrain waits until it is seen healthy again)", with the undo hook's last failure.
    pub(crate) fn undo_note(&self, node: NodeId) -> Option<String> {
        let rt = self.runtime.get(&node)?;
        let mut notes = Vec::new();
        for (kind, applied) in [
            (WorkKind::Drain, &rt.drained),
            (WorkKind::Cordon, &rt.cordoned),
        ] {
            let Some(a) = applied else { continue };
            if self.live_work(node, kind).is_some() {
                continue;
            }
            let undo = match kind {
                WorkKind::Drain => "undrain",
                WorkKind::Cordon => "uncordon",
            };
            let mut note = format!("{} for task '{}'", kind.done_word(), a.task);
            match self.order(node, kind) {
                Order::Hold => {
                    note.push_str(&format!(" ({undo} waits until it is seen healthy again)"))
                }
                _ => note.push_str(&format!(" ({undo} asked of its agent)")),
            }
            if let Some(f) = &a.undo_failure {
                note.push_str(&format!("; {undo}: {f}"));
            }
            notes.push(note);
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    /// Whether the work of the lock on `node` (if it has work) is done; `None`: no such work.
    pub(crate) fn node_work_done(&self, node: NodeId) -> Option<bool> {
        let lock = self.node_locks.get(&node)?;
        let action = self.tasks.get(&lock.task)?.action(&lock.action)?;
        action.kind.work()?;
        Some(action.work == Some(WorkState::Done))
    }
}

/// An action's work as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkView {
    /// Drain or cordon.
    pub kind: WorkKind,
    /// Whether the agent finished it (the action is then PERFORMED on YDB's wire).
    pub done: bool,
    /// Where it stands.
    pub state: WorkState,
    /// In words, for the action's details.
    pub details: String,
}

impl From<HookOutcome> for WorkState {
    fn from(o: HookOutcome) -> WorkState {
        match o {
            HookOutcome::Running(progress) => WorkState::Running { progress },
            HookOutcome::Done => WorkState::Done,
            HookOutcome::Failed {
                attempt,
                exit,
                stderr,
                retry_in_ms,
            } => WorkState::Failed {
                attempt,
                exit,
                stderr,
                retry_in_ms,
            },
        }
    }
}

/// Bounds what a report carries: progress to 100%, stderr to one short line.
pub(crate) fn clip(outcome: HookOutcome) -> HookOutcome {
    let line = |s: String| {
        let s = s.lines().last().unwrap_or("").trim().to_owned();
        if s.len() <= MAX_STDERR {
            return s;
        }
        let mut end = MAX_STDERR;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    match outcome {
        HookOutcome::Running(p) => HookOutcome::Running(p.min(10_000)),
        HookOutcome::Done => HookOutcome::Done,
        HookOutcome::Failed {
            attempt,
            exit,
            stderr,
            retry_in_ms,
        } => HookOutcome::Failed {
            attempt,
            exit: line(exit),
            stderr: line(stderr),
            retry_in_ms,
        },
    }
}

#[cfg(test)]
#[path = "drain_tests/mod.rs"]
mod tests;
