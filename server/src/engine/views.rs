//! What the state answers about itself: tasks and nodes as clients see them ([`TaskView`],
//! [`NodeView`]), task uids and owners, the next deadline.

use crate::engine::State;
use crate::engine::cluster::NodeId;
use crate::engine::report::{ActionView, GroupView, NodeCondition, NodeState, NodeView, TaskView};
use crate::engine::state::Class;
use crate::engine::task::Task;
use crate::engine::time::Timestamp;

impl State {
    /// One task, as clients see it.
    pub fn task(&self, uid: &str) -> Option<TaskView> {
        self.tasks
            .get(uid)
            .map(|t| self.view(t, self.retry_hint(t)))
    }

    /// The owner of a task, without building its view.
    pub fn task_owner(&self, uid: &str) -> Option<&str> {
        self.tasks.get(uid).map(|t| t.owner.as_str())
    }

    /// The order in which the server re-checks tasks: more important first, then older first
    /// (so a freed slot goes where the checks would reserve it).
    pub fn task_rank(&self, uid: &str) -> Option<(i32, Timestamp)> {
        self.tasks.get(uid).map(|t| (t.priority, t.create_time))
    }

    /// The id of the group that holds an action of a task.
    pub fn action_group(&self, uid: &str, action: &str) -> Option<&str> {
        self.tasks
            .get(uid)?
            .groups
            .iter()
            .find(|g| g.actions.iter().any(|a| a.id == action))
            .map(|g| g.id.as_str())
    }

    /// Task uids, all or one owner's, ascending.
    pub fn task_uids(&self, owner: Option<&str>) -> Vec<String> {
        self.tasks
            .values()
            .filter(|t| owner.is_none_or(|o| o.is_empty() || t.owner == o))
            .map(|t| t.uid.clone())
            .collect()
    }

    /// Every node with its state, ascending by id.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.cluster.nodes().map(|n| self.node_view(n.id)).collect()
    }

    /// One node's state; `None` when the inventory has no such node.
    pub fn node(&self, id: NodeId) -> Option<NodeView> {
        self.cluster.node(id).map(|_| self.node_view(id))
    }

    /// When [`State::tick`] next has something to do: the earliest lock deadline, heartbeat
    /// timeout or end of a settle time.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.deadlines
                .first()
                .map(|(d, _, _)| *d)
                .filter(|d| *d != Timestamp::NEVER),
            self.heartbeat_due.first().map(|(d, _)| *d),
            self.settle_due.first().map(|(d, _)| *d),
            self.ring_settle_due.first().map(|(d, _)| *d),
            self.next_freeze_end(),
            self.wakeups.first().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// How many live locks there are.
    pub fn lock_count(&self) -> usize {
        self.deadlines.len()
    }

    pub(super) fn node_view(&self, id: NodeId) -> NodeView {
        // A settling node is up (it serves), although the checks still count it unavailable.
        let rt = self.runtime.get(&id);
        let down = match rt {
            Some(rt) => rt.down || rt.restarting_since.is_some(),
            None => self.is_down(id),
        };
        let locked = self.node_locks.contains_key(&id);
        let state = match (down, locked) {
            (false, _) => NodeState::Up,
            (true, true) => NodeState::Maintenance,
            (true, false) => NodeState::Down,
        };
        let condition = if locked {
            // Under a lock: entering maintenance until its drain is done or, without one,
            // until the node is seen down (a node without an agent: nothing more is known).
            let seen_down = rt.is_some_and(|rt| rt.down) || !rt.is_some_and(|rt| rt.monitored);
            match self.node_work_done(id) {
                Some(true) => NodeCondition::InMaintenance,
                Some(false) => NodeCondition::Entering,
                None if seen_down => NodeCondition::InMaintenance,
                None => NodeCondition::Entering,
            }
        } else if self.is_confirmed_down(id) {
            NodeCondition::Down
        } else {
            match rt {
                Some(rt) if rt.down => NodeCondition::Unknown,
                Some(rt) if rt.restarting_since.is_some() => NodeCondition::Restarting,
                Some(rt) if rt.settle_until.is_some() => NodeCondition::Settling,
                _ => NodeCondition::Up,
            }
        };
        NodeView {
            id,
            state,
            condition,
            up_since: rt.and_then(|rt| rt.up_since),
            detail: match (self.down_note(id), self.undo_note(id)) {
                (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                (a, b) => a.or(b),
            },
            version: rt.and_then(|rt| rt.version.clone()),
            start_time: rt.and_then(|rt| rt.start_time),
            last_heartbeat: self.last_seen.get(&id).copied(),
            monitored: rt.is_some_and(|rt| rt.monitored),
            available: self.class(id) == Class::Up,
            lock: self
                .node_locks
                .get(&id)
                .map(|l| (l.task.clone(), l.deadline)),
            window: None, // needs the time: State::nodes_at (windows.rs) fills it in
        }
    }

    pub(crate) fn view(&self, task: &Task, retry_after: Option<Timestamp>) -> TaskView {
        TaskView {
            uid: task.uid.clone(),
            owner: task.owner.clone(),
            description: task.description.clone(),
            mode: task.mode,
            priority: task.priority,
            groups: task
                .groups
                .iter()
                .map(|g| GroupView {
                    id: g.id.clone(),
                    actions: g
                        .actions
                        .iter()
                        .map(|a| ActionView::of(a).with_work(self.work_view(a)))
                        .collect(),
                })
                .collect(),
            create_time: task.create_time,
            last_refresh_time: task.last_refresh_time,
            retry_after,
            override_holds: task.override_holds,
        }
    }

    // ----- commands ------------------------------------------------------------------------
}
