//! The audit trail: an append-only journal of who changed what, when and why.
//!
//! # Why here
//! An entry is a [`Change`] record like any other (`PutAudit`), so the writer commits it in the
//! same batch as the change it records: no change is durable without its entry, and the entries
//! survive restarts and, on etcd, failovers (they ride the same log entries and snapshots).
//!
//! The engine only numbers, keeps, bounds and answers entries; who asked (user, role, peer
//! address) is the shell's knowledge and arrives filled in. Time-driven entries (a lock that
//! lapsed, a heartbeat timeout) are derived from [`Ticked`], grants from a batch's records
//! (every fencing token above the batch's first is one grant).
//!
//! # Bounds
//! - Refusals and failed logins are not state changes, and a client can send any number of
//!   them: at most [`AuditConfig::refusals_per_window`] of them are kept per
//!   [`AuditConfig::refusal_window`]; the rest are counted, and one `refusals_suppressed` entry
//!   says how many at the end of the window.
//! - Retention ([`State::audit_retain`]): at most [`AuditConfig::max_entries`], none older than
//!   [`AuditConfig::max_age`]; the oldest go first, never the newest (so sequence numbers, the
//!   next one being the newest's plus one, are never reused).

use crate::engine::cluster::NodeId;
use crate::engine::liveness::Ticked;
use crate::engine::record::Change;
use crate::engine::state::State;
use crate::engine::task::{ActionStatus, Items, Mode, Scope, Task, TaskRequest};
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The user that time-driven entries (expiry, heartbeat timeouts) name.
pub const ARBITER_USER: &str = "arbiter";
/// Default of `--audit-max-entries`.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default of `--audit-max-age`: 90 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// Default of `--audit-max-refusals`: refusal entries kept per window.
pub const DEFAULT_REFUSALS_PER_WINDOW: u32 = 60;
/// Default of `--audit-refusal-window`.
pub const DEFAULT_REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// The most entries one query answers with.
pub const MAX_PAGE: usize = 1000;
/// Entries one query answers with when it names no limit.
pub const DEFAULT_PAGE: usize = 100;
/// The most entries one query looks at: a filter that matches little answers with what it
/// found so far and where to go on, so that one query never holds the writer for long.
pub const MAX_SCAN: usize = 50_000;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A task was created (its request in `detail`).
    TaskCreated,
    /// A lock was granted (scope, token, deadline, mode; `force` for force mode).
    LockGranted,
    /// Actions were completed (or pending ones withdrawn).
    ActionCompleted,
    /// A task was dropped.
    TaskDropped,
    /// A lock lapsed.
    LockExpired,
    /// A node was marked up or down by hand.
    NodeStateSet,
    /// A monitored node's heartbeats stopped: it went down.
    HeartbeatTimeout,
    /// The inventory was swapped.
    InventoryReloaded,
    /// A mutating call was refused.
    Refused,
    /// A Login failed.
    LoginFailed,
    /// Refusals (and failed logins) beyond the window's bound: how many, in `detail`.
    RefusalsSuppressed,
    /// A scope was frozen or its freeze lifted (by hand or by its end).
    FreezeSet,
    /// Read-only mode was turned on or off.
    ReadOnlySet,
    /// A node's agent reported how a drain or cordon hook (or its undo) ended: done, or failed
    /// with its exit and last stderr line (progress reports are not entered).
    WorkReported,
}

impl AuditKind {
    /// Every kind, in declaration order.
    pub const ALL: [AuditKind; 14] = [
        AuditKind::TaskCreated,
        AuditKind::LockGranted,
        AuditKind::ActionCompleted,
        AuditKind::TaskDropped,
        AuditKind::LockExpired,
        AuditKind::NodeStateSet,
        AuditKind::HeartbeatTimeout,
        AuditKind::InventoryReloaded,
        AuditKind::Refused,
        AuditKind::LoginFailed,
        AuditKind::RefusalsSuppressed,
        AuditKind::FreezeSet,
        AuditKind::ReadOnlySet,
        AuditKind::WorkReported,
    ];

    /// The wire and command-line name (`lock_granted`).
    pub fn name(self) -> &'static str {
        match self {
            AuditKind::TaskCreated => "task_created",
            AuditKind::LockGranted => "lock_granted",
            AuditKind::ActionCompleted => "action_completed",
            AuditKind::TaskDropped => "task_dropped",
            AuditKind::LockExpired => "lock_expired",
            AuditKind::NodeStateSet => "node_state_set",
            AuditKind::HeartbeatTimeout => "heartbeat_timeout",
            AuditKind::InventoryReloaded => "inventory_reloaded",
            AuditKind::Refused => "refused",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::RefusalsSuppressed => "refusals_suppressed",
            AuditKind::FreezeSet => "freeze_set",
            AuditKind::ReadOnlySet => "read_only_set",
            AuditKind::WorkReported => "work_reported",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Strictly increasing, never reused; assigned when the entry is appended.
    pub seq: u64,
    /// When (the writer's clock for the batch); assigned when the entry is appended.
    pub time: Timestamp,
    /// What.
    pub kind: AuditKind,
    /// Who: the caller's user ([`ARBITER_USER`] for what time did; the owner for a grant).
    #[serde(default)]
    pub user: String,
    /// The caller's role, when known.
    #[serde(default)]
    pub role: String,
    /// The caller's address, when known.
    #[serde(default)]
    pub peer: String,
    /// The task it is about, if any.
    #[serde(default)]
    pub task: String,
    /// The nodes it is about, if any.
    #[serde(default)]
    pub nodes: Vec<NodeId>,
    /// What and why, in words: the request, the scope and deadline, the reason given.
    #[serde(default)]
    pub detail: String,
    /// A grant's fencing token (0: none).
    #[serde(default)]
    pub fencing_token: u64,
    /// A grant in force mode.
    #[serde(default)]
    pub force: bool,
}

impl AuditEntry {
    /// An entry of `kind` with nothing else filled in (seq and time come on append).
    pub fn new(kind: AuditKind) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time: Timestamp(0),
            kind,
            user: String::new(),
            role: String::new(),
            peer: String::new(),
            task: String::new(),
            nodes: Vec::new(),
            detail: String::new(),
            fencing_token: 0,
            force: false,
        }
    }
}

/// The server's bounds on the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConfig {
    /// At most this many entries are kept (at least 1).
    pub max_entries: usize,
    /// Entries older than this are dropped.
    pub max_age: Duration,
    /// At most this many refusal entries per window.
    pub refusals_per_window: u32,
    /// The refusal bound's window.
    pub refusal_window: Duration,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_age: DEFAULT_MAX_AGE,
            refusals_per_window: DEFAULT_REFUSALS_PER_WINDOW,
            refusal_window: DEFAULT_REFUSAL_WINDOW,
        }
    }
}

/// The trail as the state keeps it: the entries (persisted) and the refusal window (soft
/// state, like heartbeat times: after a restart the bound starts afresh).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditLog {
    pub(crate) entries: BTreeMap<u64, AuditEntry>,
    config: AuditConfig,
    window: Option<Window>,
}

/// The current refusal window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    written: u32,
    suppressed: u64,
}

impl AuditLog {
    /// The log of a restored store.
    pub(crate) fn restore(entries: BTreeMap<u64, AuditEntry>) -> AuditLog {
        AuditLog {
            entries,
            ..AuditLog::default()
        }
    }
}

/// Which entries a query wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// About this task.
    pub task: Option<String>,
    /// About this node.
    pub node: Option<NodeId>,
    /// By this user.
    pub user: Option<String>,
    /// Of this kind.
    pub kind: Option<AuditKind>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Sequence numbers above this.
    pub after_seq: u64,
    /// At most this many (0: [`DEFAULT_PAGE`]; capped at [`MAX_PAGE`]).
    pub limit: usize,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.task.as_ref().is_none_or(|t| *t == e.task)
            && self.node.is_none_or(|n| e.nodes.contains(&n))
            && self.user.as_ref().is_none_or(|u| *u == e.user)
            && self.kind.is_none_or(|k| k == e.kind)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
    }
}

/// A page of entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts (its `after_seq`); 0 when nothing more matches now.
    pub next_after_seq: u64,
}

impl State {
    /// Sets the trail's bounds. Call before serving; the server's options set them.
    pub fn set_audit(&mut self, config: AuditConfig) {
        self.audit.config = AuditConfig {
            max_entries: config.max_entries.max(1),
            ..config
        };
    }

    /// The trail's bounds in force.
    pub fn audit_config(&self) -> AuditConfig {
        self.audit.config
    }

    /// How many entries are kept.
    pub fn audit_len(&self) -> usize {
        self.audit.entries.len()
    }

    /// The newest entry's sequence number (0: none yet).
    pub fn last_audit_seq(&self) -> u64 {
        self.audit.entries.keys().next_back().copied().unwrap_or(0)
    }

    /// Appends `entry` at `now`, numbered after the newest; the record that persists it.
    pub fn audit_record(&mut self, mut entry: AuditEntry, now: Timestamp) -> Change {
        entry.seq = self.last_audit_seq() + 1;
        entry.time = now;
        self.audit.entries.insert(entry.seq, entry.clone());
        Change::PutAudit(entry)
    }

    /// Appends a refusal or failed login, within the refusal bound: beyond it the entry is only
    /// counted (no record). Ends a finished window first (its summary entry).
    pub fn audit_refusal(&mut self, entry: AuditEntry, now: Timestamp) -> Vec<Change> {
        let mut changes = self.audit_flush(now);
        let limit = self.audit.config.refusals_per_window;
        let w = self.audit.window.get_or_insert(Window {
            start: now,
            written: 0,
            suppressed: 0,
        });
        if w.written < limit {
            w.written += 1;
            changes.push(self.audit_record(entry, now));
        } else {
            w.suppressed += 1;
        }
        changes
    }

    /// When the refusal window ends with refusals to report (the writer wakes for it).
    pub fn audit_due(&self) -> Option<Timestamp> {
        self.audit
            .window
            .filter(|w| w.suppressed > 0)
            .map(|w| w.start.plus(self.audit.config.refusal_window))
    }

    /// Ends the refusal window if it is over: one `refusals_suppressed` entry when it counted
    /// refusals beyond the bound.
    pub fn audit_flush(&mut self, now: Timestamp) -> Vec<Change> {
        let Some(w) = self.audit.window else {
            return Vec::new();
        };
        let end = w.start.plus(self.audit.config.refusal_window);
        if now < end {
            return Vec::new();
        }
        self.audit.window = None;
        if w.suppressed == 0 {
            return Vec::new();
        }
        let entry = AuditEntry {
            user: ARBITER_USER.into(),
            detail: format!(
                "{} more refusals suppressed (at most {} recorded per {}, from {} to {end})",
                w.suppressed,
                self.audit.config.refusals_per_window,
                humantime::format_duration(self.audit.config.refusal_window),
                w.start,
            ),
            ..AuditEntry::new(AuditKind::RefusalsSuppressed)
        };
        vec![self.audit_record(entry, now)]
    }

    /// Drops what retention says must go (beyond the count, older than the age), oldest first
    /// and never the newest; the record that persists it, if anything went.
    pub fn audit_retain(&mut self, now: Timestamp) -> Option<Change> {
        let newest = self.last_audit_seq();
        let config = self.audit.config;
        let entries = &self.audit.entries;
        let mut cut = None;
        if entries.len() > config.max_entries {
            cut = entries
                .keys()
                .nth(entries.len() - config.max_entries - 1)
                .copied();
        }
        let oldest_kept = now.minus(config.max_age);
        let start = cut.map_or(0, |c| c + 1);
        for (seq, e) in entries.range(start..) {
            if e.time >= oldest_kept || *seq >= newest {
                break;
            }
            cut = Some(*seq);
        }
        let cut = cut.filter(|c| *c < newest)?;
        self.audit.entries = self.audit.entries.split_off(&(cut + 1));
        Some(Change::DropAuditUpTo(cut))
    }

    /// The entries `q` asks for, oldest first, and where the next page starts.
    pub fn audit_query(&self, q: &AuditQuery) -> AuditPage {
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let mut page = AuditPage::default();
        let mut last = q.after_seq;
        for (scanned, (seq, e)) in self
            .audit
            .entries
            .range(q.after_seq.saturating_add(1)..)
            .enumerate()
        {
            if scanned >= MAX_SCAN {
                page.next_after_seq = last;
                return page;
            }
            // Times never go backwards along the sequence: nothing later can match.
            if q.until.is_some_and(|t| e.time >= t) {
                break;
            }
            last = *seq;
            if q.matches(e) {
                page.entries.push(e.clone());
                if page.entries.len() == limit {
                    page.next_after_seq = if *seq < self.last_audit_seq() {
                        *seq
                    } else {
                        0
                    };
                    return page;
                }
            }
        }
        page
    }

    /// The nodes an action's scope is about: what a grant covered, else what it names now.
    fn scope_nodes(&self, scope: &Scope, covers: Option<&Items>) -> Vec<NodeId> {
        match covers.cloned().or_else(|| self.resolve(scope).ok()) {
            Some(Items::Nodes(nodes)) => nodes,
            Some(Items::PDisk(k)) => vec![k.node],
            None => Vec::new(),
        }
    }

    /// The nodes every action of task `uid` is about (none when there is no such task).
    pub fn audit_nodes_of(&self, uid: &str) -> Vec<NodeId> {
        self.tasks
            .get(uid)
            .map(|t| self.audit_task_nodes(t))
            .unwrap_or_default()
    }

    /// An action as an entry names it (`node 1 (a-1)`, `performed` or `pending`), and its nodes;
    /// `None` when there is no such action.
    pub fn audit_action(&self, uid: &str, action: &str) -> Option<(String, Vec<NodeId>)> {
        let a = self.tasks.get(uid)?.action(action)?;
        let state = if a.is_pending() {
            "pending"
        } else {
            "performed"
        };
        Some((
            format!("{} ({}, {state})", a.scope, a.id),
            self.scope_nodes(&a.scope, a.covers.as_ref()),
        ))
    }

    /// The nodes every action of a task is about, sorted, without repeats.
    fn audit_task_nodes(&self, task: &Task) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = task
            .actions()
            .flat_map(|a| self.scope_nodes(&a.scope, a.covers.as_ref()))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The nodes a scope is about now (an entry of a request).
    pub fn audit_scope_nodes(&self, scope: &Scope) -> Vec<NodeId> {
        self.scope_nodes(scope, None)
    }

    /// One `lock_granted` entry per lock that `changes` granted: every grant carries a fencing
    /// token above `tokens_before` (the last one before the batch), and is taken once, from the
    /// task's last record among `changes`, however many commands touched the task.
    pub fn audit_grants(
        &mut self,
        changes: &[Change],
        tokens_before: u64,
        now: Timestamp,
    ) -> Vec<Change> {
        let mut last: BTreeMap<&str, &Task> = BTreeMap::new();
        for c in changes {
            match c {
                Change::PutTask(t) => {
                    last.insert(t.uid.as_str(), t);
                }
                Change::DeleteTask(uid) => {
                    last.remove(uid.as_str());
                }
                _ => {}
            }
        }
        let mut grants: Vec<(u64, AuditEntry)> = Vec::new();
        for task in last.values() {
            for a in task.actions() {
                if let ActionStatus::Performed {
                    fencing_token,
                    deadline,
                    ..
                } = a.status
                    && fencing_token > tokens_before
                {
                    let entry = AuditEntry {
                        user: task.owner.clone(),
                        task: task.uid.clone(),
                        nodes: self.scope_nodes(&a.scope, a.covers.as_ref()),
                        detail: format!(
                            "{} ({}): fencing token {fencing_token}, until {deadline}, mode {}",
                            a.scope,
                            a.id,
                            task.mode.name()
                        ),
                        fencing_token,
                        force: task.mode == Mode::Force,
                        ..AuditEntry::new(AuditKind::LockGranted)
                    };
                    grants.push((fencing_token, entry));
                }
            }
        }
        grants.sort_by_key(|(token, _)| *token);
        grants
            .into_iter()
            .map(|(_, e)| self.audit_record(e, now))
            .collect()
    }

    /// The entries of what time did: lapsed locks and heartbeat timeouts.
    pub fn audit_ticked(&mut self, ticked: &Ticked, now: Timestamp) -> Vec<Change> {
        let mut entries = Vec::new();
        for e in &ticked.expired {
            entries.push(AuditEntry {
                user: ARBITER_USER.into(),
                task: e.task.clone(),
                nodes: self.audit_scope_nodes(&e.scope),
                detail: format!("{} ({}): the lock's deadline passed", e.scope, e.action),
                ..AuditEntry::new(AuditKind::LockExpired)
            });
        }
        for node in &ticked.timed_out {
            let why = self
                .runtime
                .get(node)
                .map(|rt| rt.down_reason.clone())
                .unwrap_or_default();
            entries.push(AuditEntry {
                user: ARBITER_USER.into(),
                nodes: vec![*node],
                detail: format!("node {node} down: {why}"),
                ..AuditEntry::new(AuditKind::HeartbeatTimeout)
            });
        }
        for scope in &ticked.unfrozen {
            entries.push(AuditEntry {
                user: ARBITER_USER.into(),
                detail: format!("{scope} unfrozen: the freeze's time was up"),
                ..AuditEntry::new(AuditKind::FreezeSet)
            });
        }
        entries
            .into_iter()
            .map(|e| self.audit_record(e, now))
            .collect()
    }
}

/// A create request in words: its scopes (with durations), mode, priority and description.
pub fn describe_request(req: &TaskRequest) -> String {
    let groups: Vec<String> = req
        .groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|l| match l.duration {
                    Some(d) if !d.is_zero() => {
                        format!("{} for {}", l.scope, humantime::format_duration(d))
                    }
                    _ => l.scope.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect();
    let mut text = format!(
        "scopes: {}; mode {}; priority {}",
        groups.join(", "),
        req.mode.name(),
        req.priority
    );
    if !req.description.is_empty() {
        text.push_str("; description: ");
        text.push_str(&req.description);
    }
    if req.override_holds {
        text.push_str("; OVERRIDES freezes, windows and rate budgets");
    }
    text
}

/// The nodes a create request names, as they resolve now, sorted, without repeats.
pub fn request_nodes(state: &State, req: &TaskRequest) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = req
        .groups
        .iter()
        .flatten()
        .flat_map(|l| state.audit_scope_nodes(&l.scope))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::record::Snapshot;
    use crate::engine::task::LockRequest;
    use std::sync::Arc;

    fn state() -> State {
        let text = "[limits]\nmax_unavailable_ratio = 0\n[[nodes]]\nid = 1\nhost = \"h1\"\nport = 1\n\
                    [[nodes]]\nid = 2\nhost = \"h2\"\nport = 1\n";
        State::new(Arc::new(
            inventory::parse(text, Format::Toml).expect("inventory"),
        ))
    }

    fn refused(user: &str) -> AuditEntry {
        AuditEntry {
            user: user.into(),
            detail: "Access denied".into(),
            ..AuditEntry::new(AuditKind::Refused)
        }
    }

    /// Applies `changes` to `snap`, as a store would.
    fn apply(snap: &mut Snapshot, changes: &[Change]) {
        for c in changes {
            snap.apply(c);
        }
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.name()), Some(k));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }

    #[test]
    fn entries_are_numbered_and_rebuilt_from_their_records() {
        let mut s = state();
        let mut snap = Snapshot::default();
        for i in 0..3 {
            let c = s.audit_record(refused(&format!("u{i}")), Timestamp(10 + i));
            apply(&mut snap, &[c]);
        }
        assert_eq!(s.last_audit_seq(), 3);
        assert_eq!(snap, s.snapshot());
        let back = State::restore(s.cluster().clone(), snap);
        assert_eq!(back.last_audit_seq(), 3);
    }

    #[test]
    fn retention_drops_the_oldest_by_count_and_age_but_never_the_newest() {
        let mut s = state();
        s.set_audit(AuditConfig {
            max_entries: 3,
            max_age: Duration::from_secs(10),
            ..AuditConfig::default()
        });
        let mut snap = Snapshot::default();
        for i in 0..5u64 {
            let c = s.audit_record(refused("u"), Timestamp(i * 1000));
            apply(&mut snap, &[c]);
        }
        let c = s.audit_retain(Timestamp(5000)).expect("over the count");
        assert_eq!(c, Change::DropAuditUpTo(2));
        apply(&mut snap, &[c]);
        assert_eq!(snap, s.snapshot());
        assert_eq!(s.audit_retain(Timestamp(5000)), None);
        // Everything is older than 10s an hour later: all but the newest go.
        let c = s.audit_retain(Timestamp(3_600_000)).expect("too old");
        assert_eq!(c, Change::DropAuditUpTo(4));
        apply(&mut snap, &[c]);
        assert_eq!(s.audit_len(), 1);
        assert_eq!(snap, s.snapshot());
        // Numbers go on from the newest.
        assert_eq!(
            match s.audit_record(refused("u"), Timestamp(3_600_001)) {
                Change::PutAudit(e) => e.seq,
                other => panic!("{other:?}"),
            },
            6
        );
    }

    #[test]
    fn refusals_beyond_the_bound_are_counted_in_one_entry() {
        let mut s = state();
        s.set_audit(AuditConfig {
            refusals_per_window: 2,
            refusal_window: Duration::from_secs(60),
            ..AuditConfig::default()
        });
        let mut written = 0;
        for i in 0..10 {
            written += s.audit_refusal(refused("mallory"), Timestamp(i)).len();
        }
        assert_eq!(written, 2);
        assert_eq!(s.audit_due(), Some(Timestamp(60_000)));
        assert!(s.audit_flush(Timestamp(59_999)).is_empty());
        let flushed = s.audit_flush(Timestamp(60_000));
        let [Change::PutAudit(e)] = flushed.as_slice() else {
            panic!("{flushed:?}");
        };
        assert_eq!(e.kind, AuditKind::RefusalsSuppressed);
        assert!(e.detail.starts_with("8 more refusals suppressed"), "{e:?}");
        assert_eq!(s.audit_due(), None);
        // A new window records again.
        assert_eq!(s.audit_refusal(refused("m"), Timestamp(61_000)).len(), 1);
    }

    #[test]
    fn grants_are_taken_once_each_from_the_batch_records() {
        let mut s = state();
        let lock = |n| LockRequest {
            scope: Scope::Node(n),
            duration: None,
            kind: Default::default(),
        };
        let req = TaskRequest::of("t1", Mode::Force, vec![vec![lock(1)], vec![lock(2)]]);
        let mut changes = s.create(req, Timestamp(1)).expect("create").changes;
        // The same task recorded twice in the batch still gives one entry per grant.
        changes.extend(s.refresh("t1", Timestamp(2)).expect("refresh").changes);
        let grants = s.audit_grants(&changes, 0, Timestamp(2));
        let entries: Vec<&AuditEntry> = grants
            .iter()
            .filter_map(|c| match c {
                Change::PutAudit(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(entries[0].nodes, vec![1]);
        assert_eq!(entries[0].fencing_token, 1);
        assert!(entries.iter().all(|e| e.force && e.user == "me"));
        assert!(s.audit_grants(&changes, 2, Timestamp(3)).is_empty());
    }

    #[test]
    fn queries_filter_and_page() {
        let mut s = state();
        for i in 0..10u64 {
            let e = AuditEntry {
                user: if i % 2 == 0 { "alice" } else { "bob" }.into(),
                task: format!("t{}", i % 3),
                nodes: vec![u32::try_from(i % 2).expect("small") + 1],
                ..AuditEntry::new(AuditKind::TaskCreated)
            };
            s.audit_record(e, Timestamp(i * 10));
        }
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            s.audit_query(&q)
        };
        assert_eq!(q(|_| {}).entries.len(), 10);
        assert_eq!(q(|q| q.user = Some("bob".into())).entries.len(), 5);
        assert_eq!(q(|q| q.task = Some("t0".into())).entries.len(), 4);
        assert_eq!(q(|q| q.node = Some(2)).entries.len(), 5);
        assert_eq!(q(|q| q.kind = Some(AuditKind::Refused)).entries.len(), 0);
        let window = q(|q| {
            q.since = Some(Timestamp(20));
            q.until = Some(Timestamp(50));
        });
        let seqs: Vec<u64> = window.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let first = q(|q| q.limit = 4);
        assert_eq!(first.entries.len(), 4);
        assert_eq!(first.next_after_seq, 4);
        let rest = q(|q| {
            q.after_seq = 8;
            q.limit = 4;
        });
        assert_eq!(rest.entries.len(), 2);
        assert_eq!(rest.next_after_seq, 0, "nothing more");
    }
}
