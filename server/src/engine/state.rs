//! The engine's state and its commands: create, refresh, complete, drop, expire, node state.
//!
//! Every command takes `now`, either returns an error and changes nothing, or applies its effect
//! and returns the [`Change`] records that the store must persist before anyone is told.

use crate::engine::check::{CheckCtx, Verdict};
use crate::engine::cluster::{Cluster, InitialState, InventoryMap, NodeId, PDiskKey};
use crate::engine::error::EngineError;
use crate::engine::fence::LockEnd;
use crate::engine::liveness::HealthConfig;
use crate::engine::record::{Change, Counters, NodeRuntime, Snapshot};
use crate::engine::report::TaskView;
use crate::engine::task::{
    Action, ActionGroup, ActionStatus, LockRequest, Reason, Scope, Task, TaskRequest,
};
use crate::engine::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

mod request;
pub(crate) use request::resolve;

/// Longest task uid, description or action id (the wire limit).
pub const MAX_ID_LEN: usize = 128;
/// Longest host name or device path (the wire limit).
pub const MAX_NAME_LEN: usize = 255;
/// The most actions one task may have: enough for one action group per node of a very large
/// cluster (ydbops sends one per node), and a bound on what each check walks.
pub const MAX_ACTIONS_PER_TASK: usize = 10_000;
/// The most tasks kept at once: pending tasks never expire, and every check walks the pending
/// actions of more important tasks.
pub const MAX_TASKS: usize = 10_000;
/// The priority range; lower is more important.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -100..=100;

/// Who holds a live lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockRef {
    pub(crate) task: String,
    pub(crate) action: String,
    pub(crate) deadline: Timestamp,
}

pub(crate) use crate::engine::task::Items;

/// How a node counts against the unavailable-node limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Up,
    Locked,
    Down,
}

/// Locked and down node counts of the cluster or a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub(crate) locked: u32,
    pub(crate) down: u32,
}

/// The result of a command that changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// What the caller reports.
    pub value: T,
    /// What the store must persist, in order, before the caller reports it.
    pub changes: Vec<Change>,
}

/// A lock that lapsed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Its task.
    pub task: String,
    /// Its action.
    pub action: String,
    /// What it locked.
    pub scope: Scope,
}

/// The engine: the cluster, the tasks, the locks, and the indexes that keep checks cheap.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) tasks: BTreeMap<String, Task>,
    pub(crate) runtime: InventoryMap<NodeId, NodeRuntime>,
    pub(crate) node_locks: InventoryMap<NodeId, LockRef>,
    pub(crate) pdisk_locks: InventoryMap<PDiskKey, LockRef>,
    /// node -> how many of its disks are locked.
    pub(crate) pdisk_locks_on: InventoryMap<NodeId, u32>,
    pub(crate) cluster_count: Count,
    pub(crate) tenant_counts: InventoryMap<String, Count>,
    /// Every node that counts against the limits (locked or down), so that a limit's text can
    /// name them without walking the cluster.
    pub(crate) unavailable: BTreeSet<NodeId>,
    /// Every live lock by deadline: the expiry timer and retry hints read it.
    pub(crate) deadlines: BTreeSet<(Timestamp, String, String)>,
    /// Tasks with pending actions, by priority: higher-priority pending work is found here.
    pub(crate) pending_by_priority: BTreeMap<i32, BTreeSet<String>>,
    pub(crate) counters: Counters,
    /// Heartbeat timeout and settle time.
    pub(crate) health: HealthConfig,
    /// Nodes whose settle time ends, by when.
    pub(crate) settle_due: BTreeSet<(Timestamp, NodeId)>,
    /// State-storage replicas that stop counting as recently started, by when.
    pub(crate) ring_settle_due: BTreeSet<(Timestamp, NodeId)>,
    /// Soft state, never persisted: the last heartbeat of each monitored node.
    pub(crate) last_seen: InventoryMap<NodeId, Timestamp>,
    /// Soft state: when each monitored node's heartbeat times out.
    pub(crate) heartbeat_due: BTreeSet<(Timestamp, NodeId)>,
    /// Whether monitored nodes restored from the store got their first timeout.
    pub(crate) liveness_armed: bool,
    /// Soft state: the retry hint of each task's last check that granted nothing, so that a
    /// task read later (a watch update, Get) still carries it while nothing is performed.
    pub(crate) retry_hints: HashMap<String, Timestamp>,
    /// The audit trail (persisted) and its refusal bound (soft state).
    pub(crate) audit: crate::engine::audit::AuditLog,
    /// Freezes and read-only mode (persisted).
    pub(crate) freezes: crate::engine::freeze::Freezes,
    /// The recent grants the rate budgets count (persisted).
    pub(crate) grants: crate::engine::budget::GrantLog,
    /// Soft state: moments when a rule of time (a window opening, a budget slot freeing) may
    /// let a waiting task pass; [`State::tick`] reports them so that watched tasks are
    /// re-checked then.
    pub(crate) wakeups: BTreeSet<Timestamp>,
    /// Soft state: nodes with an agent's order stream open, and how many streams.
    pub(crate) agents: InventoryMap<NodeId, u32>,
    /// Soft state: when the last agent of a node went away.
    pub(crate) agent_lost: InventoryMap<NodeId, Timestamp>,
    /// Soft state: nodes whose agent orders may have changed since the writer last asked.
    pub(crate) orders_dirty: BTreeSet<NodeId>,
}

impl State {
    /// A fresh state: no tasks, every node as the inventory says.
    pub fn new(cluster: Arc<Cluster>) -> State {
        State::restore(cluster, Snapshot::default())
    }

    /// Rebuilds the state from what the store holds.
    pub fn restore(cluster: Arc<Cluster>, snapshot: Snapshot) -> State {
        let mut state = State {
            cluster,
            tasks: BTreeMap::new(),
            runtime: InventoryMap::default(),
            node_locks: InventoryMap::default(),
            pdisk_locks: InventoryMap::default(),
            pdisk_locks_on: InventoryMap::default(),
            cluster_count: Count::default(),
            tenant_counts: InventoryMap::default(),
            unavailable: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            pending_by_priority: BTreeMap::new(),
            counters: snapshot.counters,
            health: HealthConfig::default(),
            settle_due: BTreeSet::new(),
            ring_settle_due: BTreeSet::new(),
            last_seen: InventoryMap::default(),
            heartbeat_due: BTreeSet::new(),
            liveness_armed: false,
            retry_hints: HashMap::new(),
            audit: crate::engine::audit::AuditLog::restore(snapshot.audit),
            freezes: crate::engine::freeze::Freezes::restore(snapshot.freezes, snapshot.read_only),
            grants: crate::engine::budget::GrantLog::restore(snapshot.grants),
            wakeups: BTreeSet::new(),
            agents: InventoryMap::default(),
            agent_lost: InventoryMap::default(),
            orders_dirty: BTreeSet::new(),
        };
        for (id, rt) in snapshot.nodes {
            if state.cluster.node(id).is_some() {
                if let Some(until) = rt.settle_until {
                    state.settle_due.insert((until, id));
                }
                state.runtime.insert(id, rt);
            }
        }
        state.schedule_ring_settles();
        // No lock is held yet: a node is down or up. Only the down ones count.
        let cluster = state.cluster.clone();
        for node in cluster.nodes() {
            let down = match state.runtime.get(&node.id) {
                Some(rt) => crate::engine::locks::runtime_down(rt),
                None => node.initial_state == InitialState::Down,
            };
            if down {
                state.count_node(node.id, Class::Down, true);
            }
        }
        for (uid, task) in snapshot.tasks {
            for action in task.actions() {
                if let ActionStatus::Performed { deadline, .. } = action.status
                    && let Ok(items) = state.resolve(&action.scope)
                {
                    state.take_locks(&uid, &action.id, &items, deadline);
                }
            }
            state.index_pending(&task, true);
            state.tasks.insert(uid, task);
        }
        state
    }

    /// The cluster this state is about.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The persisted counters (fencing tokens, action ids).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What the store would hold now: used to check that records rebuild the same state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            tasks: self.tasks.clone(),
            nodes: self.runtime.iter().map(|(k, v)| (*k, v.clone())).collect(),
            counters: self.counters,
            audit: self.audit.entries.clone(),
            freezes: self.freezes.active.clone(),
            read_only: self.freezes.read_only.clone(),
            grants: self.grants.to_vec(),
        }
    }

    // ----- queries -------------------------------------------------------------------------

    /// A task's retry hint, while none of its actions is performed (the proto's rule).
    pub(super) fn retry_hint(&self, task: &Task) -> Option<Timestamp> {
        if task
            .actions()
            .any(|a| matches!(a.status, ActionStatus::Performed { .. }))
        {
            return None;
        }
        self.retry_hints.get(&task.uid).copied()
    }

    fn set_retry_hint(&mut self, uid: &str, retry: Option<Timestamp>) {
        match retry {
            Some(t) => {
                self.retry_hints.insert(uid.to_owned(), t);
            }
            None => {
                self.retry_hints.remove(uid);
            }
        }
    }

    /// Creates a task and checks it. A dry run checks and stores nothing.
    pub fn create(
        &mut self,
        req: TaskRequest,
        now: Timestamp,
    ) -> Result<Outcome<TaskView>, EngineError> {
        self.ensure_writable()?;
        self.validate(&req)?;
        let composite = req.groups.len() == 1 && req.groups[0].len() > 1;
        let mut next_action = self.counters.last_action_id;
        let groups: Vec<ActionGroup> = req
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| ActionGroup {
                id: gi.to_string(),
                actions: g
                    .iter()
                    .map(
                        |LockRequest {
                             scope,
                             duration,
                             kind,
                         }| {
                            let id = if req.dry_run {
                                String::new()
                            } else {
                                next_action += 1;
                                format!("a-{next_action}")
                            };
                            Action {
                                id,
                                scope: scope.clone(),
                                duration: duration.filter(|d| !d.is_zero()),
                                status: ActionStatus::Pending {
                                    reason: Reason::Generic,
                                    details: String::from("not checked yet"),
                                },
                                covers: None,
                                kind: *kind,
                                work: None,
                            }
                        },
                    )
                    .collect(),
            })
            .collect();
        let mut task = Task {
            uid: req.uid,
            owner: req.owner,
            description: req.description,
            mode: req.mode,
            priority: req.priority,
            composite,
            groups,
            create_time: now,
            last_refresh_time: now,
            override_holds: req.override_holds,
        };
        let verdict = CheckCtx::run(self, &task, now);
        if verdict.granted.is_empty()
            && let Some(why) = &verdict.impossible
        {
            return Err(EngineError::Impossible(why.clone()));
        }
        if req.dry_run {
            verdict.apply_dry(&mut task, self, now);
            let retry = verdict.retry_after;
            return Ok(Outcome {
                value: self.view(&task, retry),
                changes: Vec::new(),
            });
        }
        self.counters.last_action_id = next_action;
        let mut changes = Vec::new();
        let retry = self.apply_verdict(&mut task, verdict, now, &mut changes);
        self.index_pending(&task, true);
        let view = self.view(&task, retry);
        self.set_retry_hint(&task.uid, retry);
        changes.push(Change::PutTask(task.clone()));
        changes.push(Change::PutCounters(self.counters));
        self.tasks.insert(task.uid.clone(), task);
        Ok(Outcome {
            value: view,
            changes,
        })
    }

    /// Re-checks a task's pending actions.
    pub fn refresh(&mut self, uid: &str, now: Timestamp) -> Result<Outcome<TaskView>, EngineError> {
        self.ensure_writable()?;
        self.check_again(uid, now, true)
    }

    /// Re-checks a task's pending actions for the server, when something happened that may have
    /// unblocked them and the task's owner is watching. Unlike [`State::refresh`] it does not
    /// count as the client's refresh, and it changes nothing (no records) when nothing changed.
    pub fn recheck(&mut self, uid: &str, now: Timestamp) -> Result<Outcome<TaskView>, EngineError> {
        self.check_again(uid, now, false)
    }

    fn check_again(
        &mut self,
        uid: &str,
        now: Timestamp,
        by_client: bool,
    ) -> Result<Outcome<TaskView>, EngineError> {
        let before = self
            .tasks
            .get(uid)
            .cloned()
            .ok_or(EngineError::TaskNotFound)?;
        let mut task = before.clone();
        if by_client {
            task.last_refresh_time = now;
        }
        let mut retry = None;
        let mut changes = Vec::new();
        if task.has_pending() {
            let verdict = CheckCtx::run(self, &task, now);
            self.index_pending(&task, false);
            retry = self.apply_verdict(&mut task, verdict, now, &mut changes);
            self.index_pending(&task, true);
        }
        let view = self.view(&task, retry);
        if task.has_pending() {
            self.set_retry_hint(&task.uid, retry);
        }
        if task != before {
            changes.push(Change::PutTask(task.clone()));
            changes.push(Change::PutCounters(self.counters));
        }
        self.tasks.insert(task.uid.clone(), task);
        Ok(Outcome {
            value: view,
            changes,
        })
    }

    /// Completes performed actions (releasing their locks) and withdraws pending ones.
    /// All or nothing: every uid must name an existing action.
    pub fn complete(
        &mut self,
        uids: &[(String, String)],
        now: Timestamp,
    ) -> Result<Outcome<()>, EngineError> {
        self.ensure_writable()?;
        if uids.is_empty() {
            return Err(EngineError::NoActionUids);
        }
        let mut owners = BTreeSet::new();
        for (task, action) in uids {
            let t = self.tasks.get(task).ok_or(EngineError::TaskNotFound)?;
            t.action(action).ok_or(EngineError::ActionNotFound)?;
            owners.insert(t.owner.as_str());
        }
        if owners.len() > 1 {
            return Err(EngineError::MultipleOwners);
        }
        let mut by_task: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (task, action) in uids {
            by_task.entry(task).or_default().insert(action);
        }
        let mut changes = Vec::new();
        for (uid, actions) in by_task {
            self.remove_actions(
                uid,
                |id| actions.contains(id),
                LockEnd::Released,
                now,
                &mut changes,
            );
        }
        Ok(Outcome { value: (), changes })
    }

    /// Removes a task, releasing its locks at once.
    pub fn drop_task(&mut self, uid: &str, now: Timestamp) -> Result<Outcome<()>, EngineError> {
        self.ensure_writable()?;
        let task = self.tasks.remove(uid).ok_or(EngineError::TaskNotFound)?;
        self.index_pending(&task, false);
        let mut changes = vec![Change::DeleteTask(uid.to_owned())];
        for a in task.actions() {
            self.release(&task.uid, a, LockEnd::Released, now, &mut changes);
        }
        Ok(Outcome { value: (), changes })
    }

    /// Releases every lock whose deadline is at or before `now`. The tasks keep their pending
    /// actions; a task left with no actions is deleted.
    pub fn expire(&mut self, now: Timestamp) -> Outcome<Vec<Expired>> {
        let mut due: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (deadline, task, action) in &self.deadlines {
            if *deadline > now {
                break;
            }
            due.entry(task.clone()).or_default().insert(action.clone());
        }
        let mut expired = Vec::new();
        let mut changes = Vec::new();
        for (uid, actions) in due {
            let how = LockEnd::Expired;
            for a in self.remove_actions(&uid, |id| actions.contains(id), how, now, &mut changes) {
                expired.push(Expired {
                    task: uid.clone(),
                    action: a.id,
                    scope: a.scope,
                });
            }
            self.restate_pending(&uid, now, &mut changes);
        }
        Outcome {
            value: expired,
            changes,
        }
    }

    // ----- internals -----------------------------------------------------------------------

    /// Rewrites why the pending actions of task `uid` wait, from a check at `now` that grants
    /// nothing: after one of its locks lapsed, texts that named that lock ("(this task)") would
    /// mislead. An action the check would grant says that it waits for the next refresh.
    fn restate_pending(&mut self, uid: &str, now: Timestamp, changes: &mut Vec<Change>) {
        let Some(task) = self.tasks.get(uid) else {
            return;
        };
        if !task.has_pending() {
            return;
        }
        let verdict = CheckCtx::preview(self, task, now);
        let mut task = task.clone();
        for (gi, ai) in &verdict.granted {
            task.groups[*gi].actions[*ai].status = ActionStatus::Pending {
                reason: Reason::Generic,
                details: String::from(
                    "nothing blocks it since a lock of this task lapsed: granted at the task's next refresh",
                ),
            };
        }
        for ((gi, ai), reason, details) in verdict.pending {
            task.groups[gi].actions[ai].status = ActionStatus::Pending { reason, details };
        }
        if self.tasks.get(uid) != Some(&task) {
            changes.push(Change::PutTask(task.clone()));
            self.tasks.insert(task.uid.clone(), task);
        }
    }

    /// Applies a check's verdict to the task: grants locks, stores reasons. Returns retry_after.
    fn apply_verdict(
        &mut self,
        task: &mut Task,
        verdict: Verdict,
        now: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Option<Timestamp> {
        if let Some(at) = verdict.wake_at
            && self.wakeups.len() < MAX_TASKS
        {
            self.wakeups.insert(at);
        }
        let default = self.cluster.defaults().lock_duration;
        for (gi, ai) in &verdict.granted {
            let action = &mut task.groups[*gi].actions[*ai];
            let mut deadline = now.plus(action.duration.unwrap_or(default));
            if action.kind.unlimited() {
                deadline = Timestamp::NEVER;
            } else if let Ok(items) = self.resolve(&action.scope) {
                deadline = self.window_cut(task.override_holds, &items, now, deadline);
            }
            if action.kind.work().is_some() {
                action.work = Some(crate::engine::drain::WorkState::Waiting);
            }
            self.counters.last_fencing_token += 1;
            action.status = ActionStatus::Performed {
                granted_at: now,
                deadline,
                fencing_token: self.counters.last_fencing_token,
            };
            if let Ok(items) = self.resolve(&action.scope) {
                self.take_locks(&task.uid, &action.id, &items, deadline);
                self.count_grant(items.nodes(), now, changes);
                action.covers = Some(items);
            }
        }
        for ((gi, ai), reason, details) in verdict.pending {
            task.groups[gi].actions[ai].status = ActionStatus::Pending { reason, details };
        }
        if verdict.granted.is_empty() {
            verdict.retry_after
        } else {
            None
        }
    }

    /// A lock's deadline cut by the windows that gated it: an open window that cuts ends the
    /// lock with it, unless the task overrides the windows; nodes known down were not gated.
    pub(crate) fn window_cut(
        &self,
        override_holds: bool,
        items: &Items,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Timestamp {
        if override_holds {
            return deadline;
        }
        let gated = items
            .nodes()
            .iter()
            .copied()
            .filter(|n| !self.is_confirmed_down(*n));
        self.cluster.window_cut(gated, now, deadline)
    }

    /// Removes the actions of task `uid` that `remove` selects, releasing their locks; stores
    /// what is left of the task or deletes it when nothing is. Returns the removed actions.
    fn remove_actions(
        &mut self,
        uid: &str,
        remove: impl Fn(&str) -> bool,
        how: LockEnd,
        now: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Vec<Action> {
        let Some(mut task) = self.tasks.remove(uid) else {
            return Vec::new();
        };
        self.index_pending(&task, false);
        let mut removed = Vec::new();
        for g in &mut task.groups {
            let (gone, kept): (Vec<Action>, Vec<Action>) =
                g.actions.drain(..).partition(|a| remove(&a.id));
            g.actions = kept;
            removed.extend(gone);
        }
        for a in &removed {
            self.release(uid, a, how, now, changes);
        }
        self.store_or_delete(task, changes);
        removed
    }

    fn store_or_delete(&mut self, mut task: Task, changes: &mut Vec<Change>) {
        task.groups.retain(|g| !g.actions.is_empty());
        if task.groups.is_empty() {
            self.retry_hints.remove(&task.uid);
            changes.push(Change::DeleteTask(task.uid));
        } else {
            self.index_pending(&task, true);
            changes.push(Change::PutTask(task.clone()));
            self.tasks.insert(task.uid.clone(), task);
        }
    }

    fn index_pending(&mut self, task: &Task, add: bool) {
        if add {
            if task.has_pending() {
                self.pending_by_priority
                    .entry(task.priority)
                    .or_default()
                    .insert(task.uid.clone());
            }
        } else if let Some(set) = self.pending_by_priority.get_mut(&task.priority) {
            set.remove(&task.uid);
            if set.is_empty() {
                self.pending_by_priority.remove(&task.priority);
            }
        }
    }

    /// The owner of a task, for details texts.
    pub(crate) fn owner_of(&self, task: &str) -> &str {
        self.tasks
            .get(task)
            .map(|t| t.owner.as_str())
            .unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::task::{LockRequest, Mode, Scope};

    fn state() -> State {
        state_of(1)
    }

    /// A cluster of `nodes` nodes, ids from 1, limits off.
    fn state_of(nodes: usize) -> State {
        let mut text = String::from("[limits]\nmax_unavailable_ratio = 0\n");
        for id in 1..=nodes {
            text.push_str(&format!(
                "[[nodes]]\nid = {id}\nhost = \"h{id}\"\nport = 1\n"
            ));
        }
        State::new(Arc::new(
            inventory::parse(&text, Format::Toml).expect("inventory"),
        ))
    }

    /// One single-action group per node 1, 2, ... (`groups` of them; ids past the cluster's
    /// last node are unknown nodes).
    fn request(uid: &str, groups: usize, dry_run: bool) -> TaskRequest {
        let lock = |i: usize| {
            vec![LockRequest {
                scope: Scope::Node(u32::try_from(i + 1).expect("small")),
                duration: None,
                kind: Default::default(),
            }]
        };
        TaskRequest {
            dry_run,
            override_holds: false,
            ..TaskRequest::of(uid, Mode::Strong, (0..groups).map(lock).collect())
        }
    }

    #[test]
    fn a_task_with_too_many_actions_is_refused_and_stores_nothing() {
        let mut st = state_of(MAX_ACTIONS_PER_TASK);
        let e = st
            .create(
                request("big", MAX_ACTIONS_PER_TASK + 1, false),
                Timestamp(1),
            )
            .expect_err("too many");
        assert_eq!(
            e,
            EngineError::TooManyActions {
                max: MAX_ACTIONS_PER_TASK,
                got: MAX_ACTIONS_PER_TASK + 1
            }
        );
        assert!(st.task("big").is_none());
        assert!(
            st.create(request("ok", MAX_ACTIONS_PER_TASK, true), Timestamp(1))
                .is_ok()
        );
    }

    #[test]
    fn no_task_is_kept_past_the_limit_but_dry_runs_still_answer() {
        let mut st = state();
        for i in 0..MAX_TASKS {
            st.create(request(&format!("t{i}"), 1, false), Timestamp(1))
                .expect("room");
        }
        let e = st
            .create(request("one-more", 1, false), Timestamp(1))
            .expect_err("full");
        assert_eq!(e, EngineError::TooManyTasks { max: MAX_TASKS });
        assert!(st.task("one-more").is_none());
        assert!(st.create(request("what-if", 1, true), Timestamp(1)).is_ok());
        st.drop_task("t0", Timestamp(2)).expect("drop");
        assert!(
            st.create(request("one-more", 1, false), Timestamp(2))
                .is_ok()
        );
    }
}
