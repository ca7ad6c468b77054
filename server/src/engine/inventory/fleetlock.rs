//! `[fleetlock]`: FleetLock's reboot groups (Zincati, Flatcar).
//!
//! ```toml
//! [fleetlock.groups.default]
//! slots = 1               # nodes of the group that may hold a reboot lock at once
//! lock_duration = "1h"    # a node that never reports steady-state loses its lock then
//! mode = "strong"         # strong | weak | smart: the lock tasks' availability mode
//! unauthenticated = false # with --auth: accept callers without a token (Zincati sends none)
//! data_center = "dc-a"    # or nodes = [...], tenant = "...", all = true (the default)
//! ```
//!
//! Without a `[fleetlock]` table there is one group, "default": 1 slot over every node, 1 h
//! locks, strong mode, tokens required under `--auth`. With one, exactly the groups it names.

use super::reader::{Problems, Table, key_path};
use super::windows::load_scope;
use crate::engine::cluster::{Cluster, FleetLockGroup};
use crate::engine::task::Mode;
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest group name: a task uid `fleetlock:<group>:<node>` must stay short.
pub(crate) const MAX_GROUP_NAME: usize = 64;

/// Whether `name` is a valid FleetLock group name (the protocol's `^[a-zA-Z0-9.-]+$`).
pub(crate) fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_GROUP_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The groups of `[fleetlock]` (`None`: the implicit default group).
pub(super) fn load_fleetlock(
    v: Option<&Value>,
    cluster: &Cluster,
    probs: &mut Problems,
) -> BTreeMap<String, FleetLockGroup> {
    let mut out = BTreeMap::new();
    let Some(v) = v else {
        let g = FleetLockGroup::implicit_default();
        out.insert(g.name.clone(), g);
        return out;
    };
    let mut t = Table::new(v, "fleetlock".into(), probs);
    match t.value("groups") {
        None => {}
        // Every key of `groups` is a group name, so there are no unknown keys to report.
        Some(Value::Object(m)) => {
            for (name, gv) in m {
                let path = key_path("fleetlock.groups", &format!("\"{name}\""));
                if !valid_group_name(name) {
                    probs.add(
                        path.clone(),
                        format!(
                            "invalid group name '{name}' (1 to {MAX_GROUP_NAME} of a-z, A-Z, 0-9, '.', '-', as FleetLock requires)"
                        ),
                    );
                }
                if let Some(g) = load_group(name, gv, &path, cluster, probs) {
                    out.insert(name.clone(), g);
                }
            }
        }
        Some(_) => probs.add("fleetlock.groups", "expected a table of group names"),
    }
    t.finish(probs);
    out
}

fn load_group(
    name: &str,
    v: &Value,
    path: &str,
    cluster: &Cluster,
    probs: &mut Problems,
) -> Option<FleetLockGroup> {
    let mut t = Table::new(v, path.to_owned(), probs);
    let slots = t.opt_u32("slots", probs).unwrap_or(1);
    if slots == 0 {
        probs.add(
            key_path(path, "slots"),
            "must be at least 1 (a group of 0 slots never lets a node reboot)",
        );
    }
    let lock_duration = t
        .opt_duration("lock_duration", probs)
        .unwrap_or(FleetLockGroup::DEFAULT_LOCK_DURATION);
    if lock_duration.is_zero() {
        probs.add(key_path(path, "lock_duration"), "must be longer than zero");
    }
    let mode = match t.opt_str("mode", probs).as_deref() {
        None | Some("strong") => Mode::Strong,
        Some("weak") => Mode::Weak,
        Some("smart") => Mode::Smart,
        Some(other) => {
            probs.add(
                key_path(path, "mode"),
                format!("unknown mode '{other}' (strong | weak | smart)"),
            );
            Mode::Strong
        }
    };
    let unauthenticated = match t.value("unauthenticated") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            probs.add(key_path(path, "unauthenticated"), "expected true or false");
            false
        }
    };
    let scope = load_scope(&mut t, path, cluster, probs);
    t.finish(probs);
    Some(FleetLockGroup {
        name: name.to_owned(),
        slots,
        scope: scope?,
        lock_duration,
        mode,
        unauthenticated,
    })
}
