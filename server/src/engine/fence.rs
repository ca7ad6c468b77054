//! Fencing tokens you can verify: whether a token is the live lock on a node or disk now.
//!
//! Every grant carries a fencing token, strictly greater than every token issued before it. An
//! agent or storage system that is about to do something destructive (wipe a disk, stop a node)
//! asks [`State::validate_fence`] whether the token it was handed is still the lock on that node
//! or disk, and refuses otherwise: a holder whose lock lapsed while it was paused must not act.
//!
//! What the engine keeps for this (persisted in [`NodeRuntime`](crate::engine::record::NodeRuntime),
//! updated in the same `PutNode` record that releases the lock): per node the last node-wide lock
//! that ended, and per disk the last disk lock that ended ([`EndedLock`]). With the live locks
//! (which the tasks hold) that is enough to answer:
//! - LIVE: the token is the live lock there now;
//! - SUPERSEDED: a lock with a higher token was granted there (tokens strictly increase, so the
//!   token cannot be the live one): the newest such lock and when it was granted;
//! - RELEASED / EXPIRED: the token is the last lock that ended there, and when it ended;
//! - UNKNOWN: above every token issued, or never issued there (or too old to tell).
//!
//! A disk is covered by its own locks and by node-wide locks on its node (a node lock takes its
//! disks too), so a node lock's token is LIVE for each of the node's disks; a disk lock's token
//! is not a lock on the whole node.

use crate::engine::cluster::{NodeId, PDiskKey};
use crate::engine::state::{LockRef, State};
use crate::engine::task::ActionStatus;
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How a lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockEnd {
    /// Completed or dropped.
    Released,
    /// Ran past its deadline.
    Expired,
}

/// The last lock that ended on a node (node-wide) or on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedLock {
    /// Its fencing token.
    pub token: u64,
    /// Its task.
    pub task: String,
    /// Its action.
    pub action: String,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// Released or expired.
    pub how: LockEnd,
    /// When it ended (for an expired lock: its deadline).
    pub at: Timestamp,
}

/// What became of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceState {
    /// The live lock there now.
    Live,
    /// A later lock was granted there.
    Superseded,
    /// Completed or dropped.
    Released,
    /// Ran past its deadline.
    Expired,
    /// Never issued there, or too old to tell.
    Unknown,
}

impl FenceState {
    /// Its name in texts.
    pub fn name(self) -> &'static str {
        match self {
            FenceState::Live => "live",
            FenceState::Superseded => "superseded",
            FenceState::Released => "released",
            FenceState::Expired => "expired",
            FenceState::Unknown => "unknown",
        }
    }
}

/// The answer about one token on one node or disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceAnswer {
    /// What became of it.
    pub state: FenceState,
    /// The task and action that held it (live, released, expired), or that superseded it.
    pub task: Option<String>,
    /// See `task`.
    pub action: Option<String>,
    /// Its deadline, while live.
    pub deadline: Option<Timestamp>,
    /// When it ended, or when the lock that superseded it was granted.
    pub when: Option<Timestamp>,
    /// The token of the live lock there now, if any.
    pub live_token: Option<u64>,
    /// The same in words.
    pub detail: String,
}

/// One lock known on a node or disk: live, or the last that ended.
#[derive(Debug, Clone)]
struct Known {
    token: u64,
    task: String,
    action: String,
    granted_at: Timestamp,
    /// `None` while live (with its deadline in `deadline`).
    ended: Option<(LockEnd, Timestamp)>,
    deadline: Option<Timestamp>,
}

impl State {
    /// Whether `token` is the live lock on node `node` (`pdisk: None`) or on one of its disks
    /// now, or what became of it. Pure: changes nothing.
    pub fn validate_fence(
        &self,
        node: NodeId,
        pdisk: Option<u32>,
        token: u64,
        now: Timestamp,
    ) -> FenceAnswer {
        let place = match pdisk {
            None => format!("node {node}"),
            Some(p) => format!("pdisk {node}:{p}"),
        };
        let unknown = |detail: String| FenceAnswer {
            state: FenceState::Unknown,
            task: None,
            action: None,
            deadline: None,
            when: None,
            live_token: None,
            detail,
        };
        if self.cluster.node(node).is_none() {
            return unknown(format!("node {node} is not in the inventory"));
        }
        if let Some(p) = pdisk
            && !self.cluster.has_pdisk(PDiskKey { node, pdisk: p })
        {
            return unknown(format!("node {node} has no pdisk {p} in the inventory"));
        }
        let last = self.counters.last_fencing_token;
        if token == 0 || token > last {
            return unknown(format!(
                "token {token} was never issued (the last token issued is {last})"
            ));
        }
        let known = self.known_locks(node, pdisk, now);
        let live = known.iter().find(|k| k.ended.is_none());
        let live_token = live.map(|k| k.token);
        if let Some(k) = live
            && k.token == token
        {
            return FenceAnswer {
                state: FenceState::Live,
                task: Some(k.task.clone()),
                action: Some(k.action.clone()),
                deadline: k.deadline,
                when: None,
                live_token,
                detail: format!(
                    "token {token} is the live lock on {place}: task '{}' action {}, until {}",
                    k.task,
                    k.action,
                    k.deadline.map(|d| d.to_string()).unwrap_or_default()
                ),
            };
        }
        if let Some(newest) = known.iter().max_by_key(|k| k.token)
            && newest.token > token
        {
            return FenceAnswer {
                state: FenceState::Superseded,
                task: Some(newest.task.clone()),
                action: Some(newest.action.clone()),
                deadline: None,
                when: Some(newest.granted_at),
                live_token,
                detail: format!(
                    "token {token} is superseded on {place}: token {} (task '{}' action {}) was \
                     granted at {}",
                    newest.token, newest.task, newest.action, newest.granted_at
                ),
            };
        }
        if let Some(k) = known.iter().find(|k| k.token == token)
            && let Some((how, at)) = k.ended
        {
            let (state, verb) = match how {
                LockEnd::Released => (FenceState::Released, "released"),
                LockEnd::Expired => (FenceState::Expired, "expired"),
            };
            return FenceAnswer {
                state,
                task: Some(k.task.clone()),
                action: Some(k.action.clone()),
                deadline: None,
                when: Some(at),
                live_token,
                detail: format!(
                    "token {token} on {place} (task '{}' action {}) {verb} at {at}",
                    k.task, k.action
                ),
            };
        }
        FenceAnswer {
            live_token,
            ..unknown(format!(
                "token {token} was never issued for {place} (or is too old to tell)"
            ))
        }
    }

    /// The locks known on a node (node-wide) or a disk (its own and its node's): the live one
    /// and the last ones that ended. A live lock past its deadline (the timer has not run yet)
    /// counts as expired at its deadline.
    fn known_locks(&self, node: NodeId, pdisk: Option<u32>, now: Timestamp) -> Vec<Known> {
        let mut out = Vec::new();
        let mut live = |l: Option<&LockRef>| {
            let Some(l) = l else { return };
            let Some(ActionStatus::Performed {
                granted_at,
                deadline,
                fencing_token,
            }) = self
                .tasks
                .get(&l.task)
                .and_then(|t| t.action(&l.action))
                .map(|a| &a.status)
            else {
                return;
            };
            out.push(Known {
                token: *fencing_token,
                task: l.task.clone(),
                action: l.action.clone(),
                granted_at: *granted_at,
                ended: (*deadline <= now).then_some((LockEnd::Expired, *deadline)),
                deadline: Some(*deadline),
            });
        };
        live(self.node_locks.get(&node));
        if let Some(p) = pdisk {
            live(self.pdisk_locks.get(&PDiskKey { node, pdisk: p }));
        }
        let rt = self.runtime.get(&node);
        let ended = rt
            .and_then(|rt| rt.last_lock.as_ref())
            .into_iter()
            .chain(pdisk.and_then(|p| rt.and_then(|rt| rt.last_disk_locks.get(&p))));
        for e in ended {
            out.push(Known {
                token: e.token,
                task: e.task.clone(),
                action: e.action.clone(),
                granted_at: e.granted_at,
                ended: Some((e.how, e.at)),
                deadline: None,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::record::Snapshot;
    use crate::engine::task::{LockRequest, Mode, Scope, TaskRequest};
    use std::sync::Arc;
    use std::time::Duration;

    const T0: Timestamp = Timestamp(1_000_000);

    fn state() -> State {
        let text = "[limits]\nmax_unavailable_ratio = 0\n\
                    [[nodes]]\nid = 1\nhost = \"a\"\nport = 1\n\
                    pdisks = [{ id = 1, path = \"/dev/a\" }, { id = 2, path = \"/dev/b\" }]\n\
                    [[nodes]]\nid = 2\nhost = \"b\"\nport = 1\n";
        State::new(Arc::new(
            inventory::parse(text, Format::Toml).expect("inventory"),
        ))
    }

    /// Creates task `uid` locking `scope` for a minute and answers its token.
    fn lock(st: &mut State, uid: &str, scope: Scope, now: Timestamp) -> u64 {
        let req = TaskRequest::of(
            uid,
            Mode::Force,
            vec![vec![LockRequest {
                scope,
                duration: Some(Duration::from_secs(60)),
                kind: Default::default(),
            }]],
        );
        let view = st.create(req, now).expect("create").value;
        view.actions()
            .next()
            .and_then(|a| a.fencing_token())
            .expect("granted")
    }

    fn action_of(st: &State, uid: &str) -> String {
        st.task(uid).expect("task").groups[0].actions[0].id.clone()
    }

    #[test]
    fn a_node_lock_is_live_then_released_then_superseded() {
        let mut st = state();
        let t1 = lock(&mut st, "t1", Scope::Node(1), T0);
        let a1 = action_of(&st, "t1");
        let live = st.validate_fence(1, None, t1, T0);
        assert_eq!(live.state, FenceState::Live);
        assert_eq!(live.task.as_deref(), Some("t1"));
        assert_eq!(live.deadline, Some(T0.plus(Duration::from_secs(60))));
        assert_eq!(live.live_token, Some(t1));
        // Not a lock on another node.
        assert_eq!(
            st.validate_fence(2, None, t1, T0).state,
            FenceState::Unknown
        );
        let later = T0.plus(Duration::from_secs(5));
        st.complete(&[("t1".into(), a1)], later).expect("complete");
        let gone = st.validate_fence(1, None, t1, later);
        assert_eq!(gone.state, FenceState::Released);
        assert_eq!(gone.when, Some(later));
        assert_eq!(gone.live_token, None);
        let t2 = lock(&mut st, "t2", Scope::Node(1), later);
        let old = st.validate_fence(1, None, t1, later);
        assert_eq!(old.state, FenceState::Superseded);
        assert_eq!(old.when, Some(later));
        assert_eq!(old.task.as_deref(), Some("t2"));
        assert_eq!(old.live_token, Some(t2));
        assert_eq!(
            st.validate_fence(1, None, t2, later).state,
            FenceState::Live
        );
    }

    #[test]
    fn an_expired_lock_says_when_and_a_dropped_one_is_released() {
        let mut st = state();
        let t1 = lock(&mut st, "t1", Scope::Node(1), T0);
        let deadline = T0.plus(Duration::from_secs(60));
        // Past the deadline before the timer ran: already not live.
        let late = deadline.plus(Duration::from_secs(1));
        assert_eq!(
            st.validate_fence(1, None, t1, late).state,
            FenceState::Expired
        );
        st.expire(late);
        let e = st.validate_fence(1, None, t1, late);
        assert_eq!((e.state, e.when), (FenceState::Expired, Some(deadline)));
        let t2 = lock(&mut st, "t2", Scope::Node(2), late);
        st.drop_task("t2", late).expect("drop");
        assert_eq!(
            st.validate_fence(2, None, t2, late).state,
            FenceState::Released
        );
    }

    #[test]
    fn tokens_never_issued_are_unknown_and_bad_places_too() {
        let mut st = state();
        assert_eq!(st.validate_fence(1, None, 1, T0).state, FenceState::Unknown);
        let t1 = lock(&mut st, "t1", Scope::Node(1), T0);
        let above = st.validate_fence(1, None, t1 + 1, T0);
        assert_eq!(above.state, FenceState::Unknown);
        assert!(above.detail.contains("never issued"), "{}", above.detail);
        assert_eq!(st.validate_fence(1, None, 0, T0).state, FenceState::Unknown);
        assert_eq!(
            st.validate_fence(9, None, t1, T0).state,
            FenceState::Unknown
        );
        assert_eq!(
            st.validate_fence(1, Some(7), t1, T0).state,
            FenceState::Unknown
        );
    }

    #[test]
    fn disks_are_covered_by_their_own_locks_and_their_nodes() {
        let mut st = state();
        let d = lock(
            &mut st,
            "d",
            Scope::PDisk(PDiskKey { node: 1, pdisk: 1 }),
            T0,
        );
        assert_eq!(st.validate_fence(1, Some(1), d, T0).state, FenceState::Live);
        // A disk lock is not a lock on the node, nor on the node's other disk.
        assert_eq!(st.validate_fence(1, None, d, T0).state, FenceState::Unknown);
        assert_eq!(
            st.validate_fence(1, Some(2), d, T0).state,
            FenceState::Unknown
        );
        st.drop_task("d", T0).expect("drop");
        assert_eq!(
            st.validate_fence(1, Some(1), d, T0).state,
            FenceState::Released
        );
        let n = lock(&mut st, "n", Scope::Node(1), T0);
        // The node lock takes its disks: live for each, and it supersedes the disk lock.
        assert_eq!(st.validate_fence(1, Some(2), n, T0).state, FenceState::Live);
        assert_eq!(st.validate_fence(1, Some(1), n, T0).state, FenceState::Live);
        assert_eq!(
            st.validate_fence(1, Some(1), d, T0).state,
            FenceState::Superseded
        );
    }

    #[test]
    fn the_answer_survives_a_rebuild_from_the_records() {
        let mut st = state();
        let mut records = Snapshot::default();
        let keep = |changes: &[crate::engine::record::Change], s: &mut Snapshot| {
            for c in changes {
                s.apply(c);
            }
        };
        let req = TaskRequest::of(
            "t1",
            Mode::Force,
            vec![vec![LockRequest {
                scope: Scope::PDisk(PDiskKey { node: 1, pdisk: 2 }),
                duration: None,
                kind: Default::default(),
            }]],
        );
        let o = st.create(req, T0).expect("create");
        keep(&o.changes, &mut records);
        let token = o.value.actions().next().and_then(|a| a.fencing_token());
        let token = token.expect("granted");
        let o = st.drop_task("t1", T0).expect("drop");
        keep(&o.changes, &mut records);
        let back = State::restore(st.cluster().clone(), records);
        let a = back.validate_fence(1, Some(2), token, T0);
        assert_eq!(a.state, FenceState::Released);
        assert_eq!(a, st.validate_fence(1, Some(2), token, T0));
    }
}
