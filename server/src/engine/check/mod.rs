//! One check of a task's pending actions, in request order.
//!
//! The check never mutates the [`State`]. It lays an overlay over it: temporary locks for the
//! actions granted earlier in this check (so later actions see them as unavailable), and
//! scheduled locks for the pending actions of strictly higher-priority tasks (which block the
//! items they want and take node-limit capacity). The overlay is dropped when the check ends;
//! the caller applies the [`Verdict`].
//!
//! Per action, in this order (the first failure decides): lock conflicts on the action's own
//! items; then, unless the items are already down or the mode is force, the cluster and tenant
//! node limits, every affected storage group, the state-storage rings and the system tablets.

use crate::engine::cluster::{GroupId, NodeId, PDiskKey};
use crate::engine::state::{Class, Count, Items, LockRef, State};
use crate::engine::task::{ActionStatus, Mode, Reason, Task};
use crate::engine::time::Timestamp;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

mod budget;
mod failure_model;
mod fairness;
mod limits;

/// An action's position in its task: (group index, action index).
pub(crate) type Pos = (usize, usize);

/// The outcome of one check.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Actions to grant, in request order.
    pub(crate) granted: Vec<Pos>,
    /// Actions that wait, with why.
    pub(crate) pending: Vec<(Pos, Reason, String)>,
    /// When to try again, if nothing was granted.
    pub(crate) retry_after: Option<Timestamp>,
    /// The first failure that no retry can cure (the request itself is contradictory).
    pub(crate) impossible: Option<String>,
    /// When a rule of time (a window opening, a budget slot freeing) may let an action pass.
    pub(crate) wake_at: Option<Timestamp>,
}

impl Verdict {
    /// Fills a dry run's task with the would-be outcome; no locks, no tokens.
    pub(crate) fn apply_dry(&self, task: &mut Task, st: &State, now: Timestamp) {
        let default = st.cluster.defaults().lock_duration;
        for (gi, ai) in &self.granted {
            let a = &mut task.groups[*gi].actions[*ai];
            let mut deadline = now.plus(a.duration.unwrap_or(default));
            if a.kind.unlimited() {
                deadline = Timestamp::NEVER;
            } else if let Ok(items) = st.resolve(&a.scope) {
                deadline = st.window_cut(task.override_holds, &items, now, deadline);
            }
            a.status = ActionStatus::Performed {
                granted_at: now,
                deadline,
                fencing_token: 0,
            };
        }
        for ((gi, ai), reason, details) in &self.pending {
            task.groups[*gi].actions[*ai].status = ActionStatus::Pending {
                reason: *reason,
                details: details.clone(),
            };
        }
    }
}

/// Why one action cannot be granted now.
#[derive(Debug)]
struct Failure {
    /// No retry can help: the request conflicts with itself.
    permanent: bool,
    reason: Reason,
    details: String,
    /// The earliest time things may have changed.
    retry_at: Timestamp,
}

/// A pending action of a higher-priority task, or of an older task of the same priority that
/// has waited past the aging threshold (borrowed: reserving costs no allocation).
#[derive(Debug, Clone, Copy)]
struct Sched<'s> {
    task: &'s str,
    owner: &'s str,
    priority: i32,
    /// Same priority, reserved by aging: since when it waits.
    aged_since: Option<Timestamp>,
}

/// Who makes an item unavailable.
enum Holder<'a> {
    Lock(&'a LockRef),
    Temp,
    Sched(&'a Sched<'a>),
}

/// The overlay of one check.
pub(crate) struct CheckCtx<'s> {
    st: &'s State,
    task: &'s Task,
    now: Timestamp,
    temp_nodes: HashSet<NodeId>,
    temp_pdisks: HashSet<PDiskKey>,
    /// Nodes this check has taken, whole or by a disk.
    own_nodes: BTreeSet<NodeId>,
    /// The nodes of each grant of this check, in order (a budget counts them).
    own_grants: Vec<NodeId>,
    /// The earliest moment a rule of time may let an action of this check pass.
    wake: Cell<Option<Timestamp>>,
    /// Whether any reservation comes from aging (its texts say so).
    aged: bool,
    sched_nodes: HashMap<NodeId, Sched<'s>>,
    sched_pdisks: HashMap<PDiskKey, Sched<'s>>,
    sched_pdisk_nodes: HashMap<NodeId, PDiskKey>,
    /// Nodes the overlay turned into Locked for the limits: (was down, tenant).
    cluster_delta: Count,
    tenant_delta: HashMap<String, Count>,
    /// A preview (nothing will be granted): earlier actions of this check are named as what
    /// the task's next refresh would take.
    preview: bool,
}

impl<'s> CheckCtx<'s> {
    /// Checks every pending action of `task` against `st` at `now`.
    pub(crate) fn run(st: &'s State, task: &'s Task, now: Timestamp) -> Verdict {
        CheckCtx::start(st, task, now, false)
    }

    /// The same check as a preview that grants nothing: what the task's next refresh would do.
    pub(crate) fn preview(st: &'s State, task: &'s Task, now: Timestamp) -> Verdict {
        CheckCtx::start(st, task, now, true)
    }

    fn start(st: &'s State, task: &'s Task, now: Timestamp, preview: bool) -> Verdict {
        let mut ctx = CheckCtx {
            st,
            task,
            now,
            temp_nodes: HashSet::new(),
            temp_pdisks: HashSet::new(),
            own_nodes: BTreeSet::new(),
            own_grants: Vec::new(),
            wake: Cell::new(None),
            aged: false,
            sched_nodes: HashMap::new(),
            sched_pdisks: HashMap::new(),
            sched_pdisk_nodes: HashMap::new(),
            cluster_delta: Count::default(),
            tenant_delta: HashMap::new(),
            preview,
        };
        ctx.reserve_higher_priority();
        ctx.check_all()
    }

    fn partial(&self) -> bool {
        !self.task.composite
    }

    fn default_retry(&self) -> Timestamp {
        self.now.plus(self.st.cluster.defaults().retry_after)
    }

    /// Marks the pending actions of strictly higher-priority tasks, and of older tasks of the
    /// same priority that have waited past the aging threshold, as scheduled locks.
    fn reserve_higher_priority(&mut self) {
        let st = self.st;
        let aging = st.cluster.fairness().aging;
        let upto = if aging.is_some() {
            std::ops::Bound::Included(self.task.priority)
        } else {
            std::ops::Bound::Excluded(self.task.priority)
        };
        for (prio, uids) in st
            .pending_by_priority
            .range((std::ops::Bound::Unbounded, upto))
        {
            for uid in uids {
                if *uid == self.task.uid {
                    continue;
                }
                let Some(other) = st.tasks.get(uid) else {
                    continue;
                };
                let aged_since = if *prio == self.task.priority {
                    if !fairness::goes_first(other, self.task, aging, self.now) {
                        continue;
                    }
                    self.aged = true;
                    Some(other.create_time)
                } else {
                    None
                };
                let sched = Sched {
                    task: &other.uid,
                    owner: &other.owner,
                    priority: other.priority,
                    aged_since,
                };
                for a in other.actions().filter(|a| a.is_pending()) {
                    let items = st.resolve(&a.scope);
                    // What a freeze or a closed window holds back cannot be taken now, so it
                    // reserves nothing: a task waiting hours for its window must not stop
                    // everyone else's work elsewhere.
                    if !other.override_holds
                        && let Ok(items) = &items
                        && items.nodes().iter().any(|n| self.held(*n))
                    {
                        continue;
                    }
                    match items {
                        Ok(Items::Nodes(nodes)) => {
                            for n in nodes {
                                if !self.sched_nodes.contains_key(&n) {
                                    let s = sched;
                                    self.mark(n, |c| {
                                        c.sched_nodes.insert(n, s);
                                    });
                                }
                            }
                        }
                        Ok(Items::PDisk(k)) => {
                            if !self.sched_pdisks.contains_key(&k) {
                                let s = sched;
                                self.mark(k.node, |c| {
                                    c.sched_pdisks.insert(k, s);
                                    c.sched_pdisk_nodes.entry(k.node).or_insert(k);
                                });
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }

    fn check_all(mut self) -> Verdict {
        let mut v = Verdict::default();
        let mut retry: Option<Timestamp> = None;
        let mut blocked: Option<String> = None;
        for (gi, g) in self.task.groups.iter().enumerate() {
            for (ai, a) in g.actions.iter().enumerate() {
                if !a.is_pending() {
                    continue;
                }
                if let Some(why) = &blocked {
                    let details =
                        format!("all-or-nothing group: waits until {why} can be taken too");
                    v.pending.push(((gi, ai), Reason::Generic, details));
                    continue;
                }
                match self.check_action(a) {
                    Ok(items) => {
                        self.temp_lock(&items);
                        self.own_grants.extend_from_slice(items.nodes());
                        v.granted.push((gi, ai));
                    }
                    Err(f) => {
                        retry = Some(retry.map_or(f.retry_at, |r| r.min(f.retry_at)));
                        if f.permanent && v.impossible.is_none() {
                            v.impossible = Some(format!("{}: {}", a.scope, f.details));
                        }
                        v.pending.push(((gi, ai), f.reason, f.details));
                        if self.task.composite {
                            blocked = Some(a.scope.to_string());
                        }
                    }
                }
            }
        }
        if let Some(why) = blocked {
            // All or nothing: what passed before the failure waits too.
            for pos in v.granted.drain(..) {
                let details = format!("all-or-nothing group: waits until {why} can be taken too");
                v.pending.push((pos, Reason::Generic, details));
            }
            v.pending.sort_by_key(|(pos, _, _)| *pos);
        }
        if v.granted.is_empty() && !v.pending.is_empty() {
            v.retry_after = Some(retry.unwrap_or_else(|| self.default_retry()));
        }
        v.wake_at = self.wake.get();
        v
    }

    /// Whether a freeze or a closed maintenance window holds node `n` back now (as the gates
    /// decide: a node known down is not gated by its windows).
    fn held(&self, n: NodeId) -> bool {
        self.st.frozen_for(n, self.now).is_some()
            || (!self.st.is_confirmed_down(n) && self.st.cluster.window_closed(n, self.now))
    }

    /// Notes a moment when a rule of time may let an action pass.
    fn wake_at(&self, at: Timestamp) {
        let earliest = self.wake.get().map_or(at, |w| w.min(at));
        self.wake.set(Some(earliest));
    }

    /// The rules of when (freezes, windows), then availability, then the rate budgets; an
    /// admin's explicit override skips the rules of when and the budgets.
    fn check_action(&self, a: &crate::engine::task::Action) -> Result<Items, Failure> {
        let items = self.st.resolve(&a.scope).map_err(|e| Failure {
            permanent: true,
            reason: Reason::Generic,
            details: e.to_string(),
            retry_at: self.default_retry(),
        })?;
        // Work needs the nodes' agents: without one it could never be done.
        if let Some(kind) = a.kind.work()
            && let Some(details) = self.st.agent_missing(kind, items.nodes())
        {
            return Err(Failure {
                permanent: false,
                reason: Reason::Generic,
                details,
                retry_at: self.default_retry(),
            });
        }
        let holds = !self.task.override_holds;
        // Windows and budgets pace disruption: a lock only of nodes known down takes nothing
        // down, so only a freeze holds it back.
        let disrupts = !items.nodes().iter().all(|n| self.st.is_confirmed_down(*n));
        if holds {
            self.check_frozen(&items)?;
            if disrupts {
                self.check_windows(&items)?;
            }
        }
        self.check_available(&items)
            .map_err(|f| self.note_aging(f))?;
        if holds && disrupts {
            self.check_budgets(&items)?;
        }
        Ok(items)
    }

    /// Lock conflicts and the failure model.
    fn check_available(&self, items: &Items) -> Result<(), Failure> {
        match items {
            Items::Nodes(nodes) => {
                for n in nodes {
                    self.node_conflict(*n)?;
                }
                // A node known to be down takes nothing more down; any other node, even one
                // that already counts as unavailable, is checked as if it were up.
                let active: Vec<NodeId> = nodes
                    .iter()
                    .copied()
                    .filter(|n| !self.st.is_confirmed_down(*n))
                    .collect();
                if active.is_empty() || self.task.mode == Mode::Force {
                    return Ok(());
                }
                self.check_limits(&active)?;
                let mut cands: BTreeMap<GroupId, Vec<usize>> = BTreeMap::new();
                for n in &active {
                    if let Some(node) = self.st.cluster.node(*n) {
                        for pd in &node.pdisks {
                            for (g, i) in self.st.cluster.vdisks_on(PDiskKey {
                                node: *n,
                                pdisk: pd.id,
                            }) {
                                cands.entry(*g).or_default().push(*i);
                            }
                        }
                    }
                }
                self.check_groups(&cands)?;
                self.check_rings(&active)?;
                self.check_tablets(&active)?;
            }
            Items::PDisk(k) => {
                self.pdisk_conflict(*k)?;
                if self.st.is_confirmed_down(k.node) || self.task.mode == Mode::Force {
                    return Ok(());
                }
                // The disk's node joins the limits unless a lock already counts it there.
                if self.class(k.node) != Class::Locked {
                    self.check_limits(&[k.node])?;
                }
                let mut cands: BTreeMap<GroupId, Vec<usize>> = BTreeMap::new();
                for (g, i) in self.st.cluster.vdisks_on(*k) {
                    cands.entry(*g).or_default().push(*i);
                }
                self.check_groups(&cands)?;
            }
        }
        Ok(())
    }

    /// A freeze (or read-only mode) over any of the items holds the action back, force mode
    /// included; it retries when the freeze ends, if it has an end.
    fn check_frozen(&self, items: &Items) -> Result<(), Failure> {
        for n in items.nodes() {
            if let Some((details, until)) = self.st.frozen_for(*n, self.now) {
                return Err(Failure {
                    permanent: false,
                    reason: Reason::Frozen,
                    details,
                    retry_at: until.unwrap_or_else(|| self.default_retry()),
                });
            }
        }
        Ok(())
    }

    /// A node with maintenance windows is granted only inside one of them (force mode
    /// included; a node known down is not gated); the action retries when the soonest window
    /// opens.
    fn check_windows(&self, items: &Items) -> Result<(), Failure> {
        for n in items.nodes() {
            if self.st.is_confirmed_down(*n) {
                continue;
            }
            if let crate::engine::windows::Gate::Closed { details, opens } =
                self.st.cluster.window_gate(*n, self.now)
            {
                if let Some(at) = opens {
                    self.wake_at(at);
                }
                return Err(Failure {
                    permanent: false,
                    reason: Reason::OutsideWindow,
                    details,
                    retry_at: opens.unwrap_or_else(|| self.default_retry()),
                });
            }
        }
        Ok(())
    }

    // ----- the overlay -------------------------------------------------------------------

    fn class(&self, n: NodeId) -> Class {
        if self.st.class(n) == Class::Locked
            || self.own_nodes.contains(&n)
            || self.sched_nodes.contains_key(&n)
            || self.sched_pdisk_nodes.contains_key(&n)
        {
            Class::Locked
        } else if self.st.is_down(n) {
            Class::Down
        } else {
            Class::Up
        }
    }

    /// Applies an overlay change to node `n`, keeping the limit counts in step.
    fn mark(&mut self, n: NodeId, f: impl FnOnce(&mut Self)) {
        let before = self.class(n);
        f(self);
        let after = self.class(n);
        if before != after {
            let tenant = self.st.cluster.node(n).and_then(|x| x.tenant.clone());
            let bump = |c: &mut Count| {
                c.locked += 1;
                if before == Class::Down {
                    c.down += 1;
                }
            };
            bump(&mut self.cluster_delta);
            if let Some(t) = tenant {
                bump(self.tenant_delta.entry(t).or_default());
            }
        }
    }

    fn temp_lock(&mut self, items: &Items) {
        match items {
            Items::Nodes(nodes) => {
                for n in nodes {
                    let n = *n;
                    self.mark(n, |c| {
                        c.temp_nodes.insert(n);
                        c.own_nodes.insert(n);
                    });
                }
            }
            Items::PDisk(k) => {
                let k = *k;
                self.mark(k.node, |c| {
                    c.temp_pdisks.insert(k);
                    c.own_nodes.insert(k.node);
                });
            }
        }
    }

    /// (locked, down) with the overlay, for the cluster (`None`) or a tenant.
    fn counts(&self, tenant: Option<&str>) -> (u32, u32) {
        let (base, delta) = match tenant {
            None => (self.st.cluster_count, self.cluster_delta),
            Some(t) => (
                self.st.tenant_counts.get(t).copied().unwrap_or_default(),
                self.tenant_delta.get(t).copied().unwrap_or_default(),
            ),
        };
        (
            base.locked + delta.locked,
            base.down.saturating_sub(delta.down),
        )
    }

    fn node_holder(&self, n: NodeId) -> Option<Holder<'_>> {
        if let Some(l) = self.st.node_locks.get(&n) {
            Some(Holder::Lock(l))
        } else if self.temp_nodes.contains(&n) {
            Some(Holder::Temp)
        } else {
            self.sched_nodes.get(&n).map(Holder::Sched)
        }
    }

    fn pdisk_holder(&self, k: PDiskKey) -> Option<Holder<'_>> {
        if let Some(h) = self.node_holder(k.node) {
            Some(h)
        } else if let Some(l) = self.st.pdisk_locks.get(&k) {
            Some(Holder::Lock(l))
        } else if self.temp_pdisks.contains(&k) {
            Some(Holder::Temp)
        } else {
            self.sched_pdisks.get(&k).map(Holder::Sched)
        }
    }

    fn holder_text(&self, h: &Holder<'_>) -> String {
        match h {
            Holder::Lock(l) => format!("task '{}' of {}", l.task, self.st.owner_of(&l.task)),
            Holder::Temp if self.preview => String::from("this task, at its next refresh"),
            Holder::Temp => String::from("this task"),
            Holder::Sched(s) if s.aged_since.is_some() => {
                format!("pending, older task '{}' of {}", s.task, s.owner)
            }
            Holder::Sched(s) => {
                format!("pending, higher-priority task '{}' of {}", s.task, s.owner)
            }
        }
    }

    // ----- lock conflicts ----------------------------------------------------------------

    fn locked_by(&self, what: String, l: &LockRef) -> Failure {
        let until = if l.deadline == Timestamp::NEVER {
            String::from("it is completed (a drain or cordon has no deadline)")
        } else {
            l.deadline.to_string()
        };
        Failure {
            permanent: false,
            reason: Reason::Generic,
            details: format!(
                "{what} is locked by task '{}' of {} until {until}",
                l.task,
                self.st.owner_of(&l.task),
            ),
            retry_at: self.lock_retry(l),
        }
    }

    /// When a live lock may have ended: its deadline, or for a lock without one (a drain, a
    /// cordon) the default retry.
    fn lock_retry(&self, l: &LockRef) -> Timestamp {
        if l.deadline == Timestamp::NEVER {
            self.default_retry()
        } else {
            l.deadline
        }
    }

    fn taken_here(&self, what: String) -> Failure {
        Failure {
            permanent: true,
            reason: Reason::Generic,
            details: format!("{what} is already taken by an earlier action of this task"),
            retry_at: self.default_retry(),
        }
    }

    fn wanted_by(&self, what: String, s: &Sched<'_>) -> Failure {
        let details = match s.aged_since {
            Some(since) => format!(
                "{what} is wanted by older task '{}' of {}, waiting since {since}: {}",
                s.task,
                s.owner,
                fairness::rule_text(self.st.cluster.fairness().aging, self.task.priority)
            ),
            None => format!(
                "{what} is wanted by higher-priority task '{}' of {} (priority {} vs {})",
                s.task, s.owner, s.priority, self.task.priority
            ),
        };
        Failure {
            permanent: false,
            reason: Reason::Generic,
            details,
            retry_at: self.default_retry(),
        }
    }

    fn node_conflict(&self, n: NodeId) -> Result<(), Failure> {
        if let Some(l) = self.st.node_locks.get(&n) {
            return Err(self.locked_by(format!("node {n}"), l));
        }
        if self.st.pdisk_locks_on.contains_key(&n)
            && let Some(node) = self.st.cluster.node(n)
        {
            for pd in &node.pdisks {
                let k = PDiskKey {
                    node: n,
                    pdisk: pd.id,
                };
                if let Some(l) = self.st.pdisk_locks.get(&k) {
                    return Err(self.locked_by(format!("pdisk {k}"), l));
                }
            }
        }
        if self.own_nodes.contains(&n) {
            return Err(self.taken_here(format!("node {n}")));
        }
        if let Some(s) = self.sched_nodes.get(&n) {
            return Err(self.wanted_by(format!("node {n}"), s));
        }
        if let Some(k) = self.sched_pdisk_nodes.get(&n)
            && let Some(s) = self.sched_pdisks.get(k)
        {
            return Err(self.wanted_by(format!("pdisk {k}"), s));
        }
        Ok(())
    }

    fn pdisk_conflict(&self, k: PDiskKey) -> Result<(), Failure> {
        if let Some(l) = self.st.pdisk_locks.get(&k) {
            return Err(self.locked_by(format!("pdisk {k}"), l));
        }
        if let Some(l) = self.st.node_locks.get(&k.node) {
            return Err(self.locked_by(format!("node {}", k.node), l));
        }
        if self.temp_pdisks.contains(&k) {
            return Err(self.taken_here(format!("pdisk {k}")));
        }
        if self.temp_nodes.contains(&k.node) {
            return Err(self.taken_here(format!("node {}", k.node)));
        }
        if let Some(s) = self.sched_pdisks.get(&k) {
            return Err(self.wanted_by(format!("pdisk {k}"), s));
        }
        if let Some(s) = self.sched_nodes.get(&k.node) {
            return Err(self.wanted_by(format!("node {}", k.node), s));
        }
        Ok(())
    }
}
