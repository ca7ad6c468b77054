//! Change freezes and the arbiter's read-only mode.
//!
//! A *freeze* holds back every new grant in its scope (the whole cluster, a tenant or a data
//! center), force mode included: the check consults [`State::frozen_for`] before any other
//! rule. Releases (complete, drop, expiry) always work, and new tasks are accepted and wait,
//! their pending details naming the freeze; while it has an expiry, that is their retry time.
//! A scope is frozen at most once: a second freeze is refused, naming who froze it, when and
//! why. A freeze is lifted by whoever set it, or by an admin with `force`; one with an expiry
//! ends by [`State::tick`] (see [`State::end_freezes`]).
//!
//! *Read-only mode* refuses every command that would change state (create, refresh, complete,
//! drop, node state, reload, freezes) with [`EngineError::ReadOnly`] (retryable: UNAVAILABLE on
//! the wire); reads, watches, heartbeats and time (expiry) keep working, and the server's own
//! re-checks of watched tasks grant nothing while it is on.
//!
//! Both are durable: `Change::PutFreeze` / `Change::DeleteFreeze` / `Change::PutReadOnly`, kept
//! in `Snapshot.freezes` and `Snapshot.read_only`.

use crate::engine::cluster::NodeId;
use crate::engine::error::EngineError;
use crate::engine::record::Change;
use crate::engine::state::{MAX_NAME_LEN, Outcome, State};
use crate::engine::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a freeze covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FreezeScope {
    /// Every node.
    Cluster,
    /// The nodes of one tenant.
    Tenant(String),
    /// The nodes of one data center.
    DataCenter(String),
}

impl FreezeScope {
    /// The key a freeze is kept under (one freeze per scope).
    pub fn key(&self) -> String {
        match self {
            FreezeScope::Cluster => "cluster".to_owned(),
            FreezeScope::Tenant(t) => format!("tenant:{t}"),
            FreezeScope::DataCenter(d) => format!("dc:{d}"),
        }
    }
}

impl fmt::Display for FreezeScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreezeScope::Cluster => f.write_str("the cluster"),
            FreezeScope::Tenant(t) => write!(f, "tenant '{t}'"),
            FreezeScope::DataCenter(d) => write!(f, "data center '{d}'"),
        }
    }
}

/// One freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    /// What it covers.
    pub scope: FreezeScope,
    /// Who set it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
    /// When it ends on its own (`None`: when lifted).
    #[serde(default)]
    pub until: Option<Timestamp>,
}

impl Freeze {
    /// "data center 'dc-1' is frozen by alice since <t> for 'incident 4711', until <t>": what
    /// the pending details of a held-back action say, and what a refused second freeze names.
    pub fn text(&self) -> String {
        let until = match self.until {
            Some(t) => format!("until {t}"),
            None => "until lifted".to_owned(),
        };
        format!(
            "{} is frozen by {} since {} for '{}', {until}",
            self.scope, self.by, self.since, self.reason
        )
    }

    /// Whether it still holds at `now`.
    pub fn holds(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// Read-only mode: who turned it on, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOnly {
    /// Who turned it on.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
}

impl ReadOnly {
    /// "the arbiter is read-only since <t> (turned on by root: 'migration')".
    pub fn text(&self) -> String {
        format!(
            "the arbiter is read-only since {} (turned on by {}: '{}')",
            self.since, self.by, self.reason
        )
    }
}

/// The freezes and the read-only mode a state holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Freezes {
    /// By [`FreezeScope::key`].
    pub(crate) active: BTreeMap<String, Freeze>,
    pub(crate) read_only: Option<ReadOnly>,
}

impl Freezes {
    /// From the store's records.
    pub(crate) fn restore(active: BTreeMap<String, Freeze>, read_only: Option<ReadOnly>) -> Self {
        Freezes { active, read_only }
    }
}

/// Who asks to lift a freeze or leave read-only mode.
#[derive(Debug, Clone, Copy)]
pub struct Lifter<'a> {
    /// The caller's user.
    pub user: &'a str,
    /// Whether the caller is an admin.
    pub admin: bool,
    /// `--force`: lift what someone else set.
    pub force: bool,
}

fn check_text(field: &'static str, text: &str) -> Result<(), EngineError> {
    if text.trim().is_empty() {
        return Err(EngineError::Impossible(format!(
            "{field} must not be empty"
        )));
    }
    if text.len() > MAX_NAME_LEN {
        return Err(EngineError::TooLong {
            field,
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

impl State {
    /// Refuses while read-only mode is on: every command that changes state calls it first.
    pub fn ensure_writable(&self) -> Result<(), EngineError> {
        match &self.freezes.read_only {
            Some(r) => Err(EngineError::ReadOnly(r.text())),
            None => Ok(()),
        }
    }

    /// Read-only mode, if on.
    pub fn read_only(&self) -> Option<&ReadOnly> {
        self.freezes.read_only.as_ref()
    }

    /// Every freeze that holds at `now`, by scope.
    pub fn freezes(&self, now: Timestamp) -> Vec<Freeze> {
        self.freezes
            .active
            .values()
            .filter(|f| f.holds(now))
            .cloned()
            .collect()
    }

    /// Freezes `scope` until `until` (`None`: until lifted). Refused while read-only, for an
    /// unknown tenant or data center, without a reason, for an end not after `now`, and while
    /// the scope is frozen already (naming who froze it, when and why).
    pub fn freeze_on(
        &mut self,
        scope: FreezeScope,
        by: &str,
        reason: &str,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Outcome<Freeze>, EngineError> {
        self.ensure_writable()?;
        check_text("reason", reason)?;
        match &scope {
            FreezeScope::Cluster => {}
            FreezeScope::Tenant(t) => {
                let known = self.cluster.tenant(t).is_some()
                    || self
                        .cluster
                        .nodes()
                        .any(|n| n.tenant.as_deref() == Some(t.as_str()));
                if !known {
                    return Err(EngineError::Impossible(format!("unknown tenant '{t}'")));
                }
            }
            FreezeScope::DataCenter(d) => {
                let known = self
                    .cluster
                    .nodes()
                    .any(|n| n.location.data_center.as_deref() == Some(d.as_str()));
                if !known {
                    return Err(EngineError::Impossible(format!(
                        "no node is in data center '{d}'"
                    )));
                }
            }
        }
        if until.is_some_and(|u| u <= now) {
            return Err(EngineError::Impossible(
                "a freeze must end in the future".to_owned(),
            ));
        }
        if let Some(f) = self.freezes.active.get(&scope.key())
            && f.holds(now)
        {
            return Err(EngineError::AlreadyFrozen(f.text()));
        }
        let freeze = Freeze {
            scope,
            by: by.to_owned(),
            reason: reason.to_owned(),
            since: now,
            until,
        };
        self.freezes
            .active
            .insert(freeze.scope.key(), freeze.clone());
        Ok(Outcome {
            changes: vec![Change::PutFreeze(freeze.clone())],
            value: freeze,
        })
    }

    /// Lifts the freeze of `scope`: by whoever set it, or by an admin with `force`.
    pub fn freeze_off(
        &mut self,
        scope: &FreezeScope,
        who: Lifter<'_>,
        now: Timestamp,
    ) -> Result<Outcome<Freeze>, EngineError> {
        self.ensure_writable()?;
        let key = scope.key();
        let Some(f) = self.freezes.active.get(&key).filter(|f| f.holds(now)) else {
            return Err(EngineError::Impossible(format!("{scope} is not frozen")));
        };
        if f.by != who.user && !(who.admin && who.force) {
            let how = if who.admin {
                "add --force to lift it"
            } else {
                "only they or an admin (with --force) may lift it"
            };
            return Err(EngineError::FreezeRefused(format!("{}; {how}", f.text())));
        }
        let freeze = f.clone();
        self.freezes.active.remove(&key);
        Ok(Outcome {
            changes: vec![Change::DeleteFreeze(freeze.scope.clone())],
            value: freeze,
        })
    }

    /// Turns read-only mode on; refused while it is on already.
    pub fn read_only_on(
        &mut self,
        by: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Outcome<ReadOnly>, EngineError> {
        check_text("reason", reason)?;
        if let Some(r) = &self.freezes.read_only {
            return Err(EngineError::AlreadyFrozen(r.text()));
        }
        let r = ReadOnly {
            by: by.to_owned(),
            reason: reason.to_owned(),
            since: now,
        };
        self.freezes.read_only = Some(r.clone());
        Ok(Outcome {
            changes: vec![Change::PutReadOnly(Some(r.clone()))],
            value: r,
        })
    }

    /// Turns read-only mode off: by whoever turned it on, or by anyone else with `force`.
    pub fn read_only_off(&mut self, who: Lifter<'_>) -> Result<Outcome<ReadOnly>, EngineError> {
        let Some(r) = &self.freezes.read_only else {
            return Err(EngineError::Impossible(
                "the arbiter is not read-only".to_owned(),
            ));
        };
        if r.by != who.user && !who.force {
            return Err(EngineError::FreezeRefused(format!(
                "{}; add --force to turn it off",
                r.text()
            )));
        }
        let r = r.clone();
        self.freezes.read_only = None;
        Ok(Outcome {
            changes: vec![Change::PutReadOnly(None)],
            value: r,
        })
    }

    /// The freeze (or read-only mode) that holds back a new grant on node `n` at `now`, as the
    /// pending details text, with when to retry (the freeze's end, if it has one).
    pub(crate) fn frozen_for(
        &self,
        n: NodeId,
        now: Timestamp,
    ) -> Option<(String, Option<Timestamp>)> {
        if let Some(r) = &self.freezes.read_only {
            return Some((format!("{}: nothing is granted", r.text()), None));
        }
        if self.freezes.active.is_empty() {
            return None;
        }
        let node = self.cluster.node(n)?;
        let mut keys = vec![FreezeScope::Cluster.key()];
        if let Some(t) = &node.tenant {
            keys.push(FreezeScope::Tenant(t.clone()).key());
        }
        if let Some(d) = &node.location.data_center {
            keys.push(FreezeScope::DataCenter(d.clone()).key());
        }
        keys.iter()
            .filter_map(|k| self.freezes.active.get(k))
            .find(|f| f.holds(now))
            .map(|f| (f.text(), f.until))
    }

    /// The earliest end of a freeze, for [`State::next_deadline`].
    pub(crate) fn next_freeze_end(&self) -> Option<Timestamp> {
        self.freezes.active.values().filter_map(|f| f.until).min()
    }

    /// Ends every freeze whose time is up (part of [`State::tick`]); returns their scopes.
    pub(crate) fn end_freezes(
        &mut self,
        now: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Vec<FreezeScope> {
        let due: Vec<String> = self
            .freezes
            .active
            .iter()
            .filter(|(_, f)| !f.holds(now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut ended = Vec::new();
        for k in due {
            if let Some(f) = self.freezes.active.remove(&k) {
                changes.push(Change::DeleteFreeze(f.scope.clone()));
                ended.push(f.scope);
            }
        }
        ended
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

    fn state() -> State {
        let mut text = String::from("[limits]\nmax_unavailable_ratio = 0\n");
        for id in 1..=4 {
            let dc = if id <= 2 { "dc-1" } else { "dc-2" };
            text.push_str(&format!(
                "[[nodes]]\nid = {id}\nhost = \"h{id}\"\nport = 1\ndata_center = \"{dc}\"\n"
            ));
        }
        State::new(Arc::new(
            inventory::parse(&text, Format::Toml).expect("inventory"),
        ))
    }

    fn req(uid: &str, node: u32, mode: Mode) -> TaskRequest {
        let lock = LockRequest {
            scope: Scope::Node(node),
            duration: None,
            kind: Default::default(),
        };
        TaskRequest::of(uid, mode, vec![vec![lock]])
    }

    const T0: Timestamp = Timestamp(1_000_000);

    #[test]
    fn a_frozen_data_center_holds_back_force_mode_too_and_names_the_freeze() {
        let mut st = state();
        let until = T0.plus(Duration::from_secs(3600));
        let dc = FreezeScope::DataCenter("dc-1".into());
        st.freeze_on(dc.clone(), "alice", "incident 4711", Some(until), T0)
            .expect("freeze");
        let o = st.create(req("t1", 1, Mode::Force), T0).expect("create");
        let a = o.value.actions().next().expect("action");
        assert!(!a.is_performed());
        assert!(a.details().contains("frozen by alice"), "{}", a.details());
        assert!(a.details().contains("incident 4711"));
        assert_eq!(o.value.retry_after, Some(until));
        let o = st.create(req("t2", 3, Mode::Strong), T0).expect("create");
        assert!(o.value.actions().all(|a| a.is_performed()));
        let e = st
            .freeze_on(dc.clone(), "bob", "again", None, T0)
            .expect_err("twice");
        assert!(e.to_string().contains("frozen by alice"), "{e}");
        let bob = Lifter {
            user: "bob",
            admin: false,
            force: false,
        };
        assert!(st.freeze_off(&dc, bob, T0).is_err());
        let o = st.tick(until);
        assert!(o.changes.contains(&Change::DeleteFreeze(dc)));
        let o = st.refresh("t1", until).expect("refresh");
        assert!(o.value.actions().all(|a| a.is_performed()));
    }

    #[test]
    fn read_only_refuses_changes_and_survives_a_restart() {
        let mut st = state();
        let mut snap = Snapshot::default();
        let o = st.read_only_on("root", "migration", T0).expect("on");
        o.changes.iter().for_each(|c| snap.apply(c));
        assert!(st.read_only_on("root", "again", T0).is_err());
        let e = st.create(req("t1", 1, Mode::Strong), T0).expect_err("ro");
        assert_eq!(e.kind(), crate::engine::ErrorKind::Unavailable);
        assert!(e.to_string().contains("root"), "{e}");
        let mut st = State::restore(st.cluster().clone(), snap.clone());
        assert!(st.read_only().is_some());
        let other = Lifter {
            user: "bob",
            admin: true,
            force: false,
        };
        assert!(st.read_only_off(other).is_err());
        st.read_only_off(Lifter {
            force: true,
            ..other
        })
        .expect("off");
        assert!(st.create(req("t1", 1, Mode::Strong), T0).is_ok());
    }
}
