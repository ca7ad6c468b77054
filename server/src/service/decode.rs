//! Wire requests to engine requests, refusing what only the wire can get wrong.
//!
//! The engine checks lengths, priorities, group shapes and names; this module checks what
//! cannot reach it: unset oneofs, unknown enum values, negative or too-long durations, and action
//! kinds Arbiter does not perform. The task uid is checked first (also here, before the mode and
//! the actions), so that an empty request is told what it lacks first.

use super::error::ServiceError;
use crate::engine::state::MAX_ID_LEN;
use crate::engine::task::{ActionKind, LockRequest, Mode, Scope, TaskRequest};
use crate::engine::{EngineError, PDiskKey};
use arbiter_proto::ydb::maintenance::{
    ActionScope, ActionUid, AvailabilityMode, CreateMaintenanceTaskRequest, action, action_scope,
};
use std::time::Duration;

/// Limits the server enforces beyond the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// The longest lock a client may ask for.
    pub max_lock_duration: Duration,
    /// The most task watch streams open at once (`--max-watches`).
    pub max_watches: usize,
    /// The most task watch streams one user may hold open (`--max-watches-per-user`).
    pub max_watches_per_user: usize,
}

/// A CreateMaintenanceTask request as the engine takes it, owned by `owner`.
pub fn task_request(
    req: CreateMaintenanceTaskRequest,
    owner: &str,
    limits: RequestLimits,
) -> Result<TaskRequest, ServiceError> {
    let options = req.task_options.unwrap_or_default();
    // The uid first: an empty request is refused for what it lacks first, not for a mode or
    // groups it would need too.
    if options.task_uid.is_empty() {
        return Err(EngineError::EmptyTaskUid.into());
    }
    if options.task_uid.len() > MAX_ID_LEN {
        return Err(EngineError::TooLong {
            field: "task_uid",
            max: MAX_ID_LEN,
        }
        .into());
    }
    let mode = match AvailabilityMode::try_from(options.availability_mode) {
        Ok(AvailabilityMode::Strong) => Mode::Strong,
        Ok(AvailabilityMode::Weak) => Mode::Weak,
        Ok(AvailabilityMode::Force) => Mode::Force,
        Ok(AvailabilityMode::Smart) => Mode::Smart,
        Ok(AvailabilityMode::Unspecified) | Err(_) => {
            return Err(ServiceError::BadRequest("Unknown availability mode".into()));
        }
    };
    let groups = req
        .action_groups
        .into_iter()
        .map(|g| {
            g.actions
                .into_iter()
                .map(|a| lock_request(a.action, limits))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TaskRequest {
        uid: options.task_uid,
        owner: owner.to_owned(),
        description: options.description,
        mode,
        priority: options.priority,
        dry_run: options.dry_run,
        groups,
        override_holds: options.override_holds,
    })
}

fn lock_request(
    action: Option<action::Action>,
    limits: RequestLimits,
) -> Result<LockRequest, ServiceError> {
    // YDB's drain and cordon take a node id scope only, and so does a lock that drains first
    // (its agent drains one node).
    let node_only = |s: Option<ActionScope>, what: &str| match scope(s)? {
        Scope::Node(n) => Ok(Scope::Node(n)),
        _ => Err(ServiceError::BadRequest(format!(
            "Unsupported scope: {what} takes a node_id scope"
        ))),
    };
    let lock = match action {
        Some(action::Action::LockAction(lock)) => lock,
        Some(action::Action::DrainAction(d)) => {
            return Ok(LockRequest {
                scope: node_only(d.scope, "a drain action")?,
                duration: None,
                kind: ActionKind::Drain,
            });
        }
        Some(action::Action::CordonAction(c)) => {
            return Ok(LockRequest {
                scope: node_only(c.scope, "a cordon action")?,
                duration: None,
                kind: ActionKind::Cordon,
            });
        }
        None => return Err(ServiceError::BadRequest("Unknown action".into())),
    };
    let scope = if lock.drain {
        node_only(lock.scope, "a lock with drain")?
    } else {
        scope(lock.scope)?
    };
    let duration = match lock.duration {
        None => None,
        Some(d) => Some(duration(d, limits)?),
    };
    let kind = if lock.drain {
        ActionKind::DrainFirst
    } else {
        ActionKind::Lock
    };
    Ok(LockRequest {
        scope,
        duration,
        kind,
    })
}

/// A wire scope as the engine's.
pub fn scope(scope: Option<ActionScope>) -> Result<Scope, ServiceError> {
    use action_scope::p_disk::Pdisk;
    let unset = || ServiceError::BadRequest("Unsupported scope: the action names no scope".into());
    match scope.and_then(|s| s.scope).ok_or_else(unset)? {
        action_scope::Scope::NodeId(id) => Ok(Scope::Node(id)),
        action_scope::Scope::Host(host) if host.is_empty() => Err(ServiceError::BadRequest(
            "Unsupported scope: the host is empty".into(),
        )),
        action_scope::Scope::Host(host) => Ok(Scope::Host(host)),
        action_scope::Scope::Pdisk(p) => match p.pdisk.ok_or_else(unset)? {
            Pdisk::PdiskId(id) => Ok(Scope::PDisk(PDiskKey {
                node: id.node_id,
                pdisk: id.pdisk_id,
            })),
            Pdisk::PdiskLocation(loc) => Ok(Scope::PDiskPath {
                host: loc.host,
                path: loc.path,
            }),
        },
    }
}

fn duration(d: prost_types::Duration, limits: RequestLimits) -> Result<Duration, ServiceError> {
    // google.protobuf.Duration: nanos within ±999 999 999, with the sign of seconds.
    let nanos_fit = d.nanos.unsigned_abs() < 1_000_000_000;
    let same_sign = d.seconds == 0 || d.nanos == 0 || (d.seconds < 0) == (d.nanos < 0);
    if !nanos_fit || !same_sign {
        return Err(ServiceError::BadRequest(format!(
            "invalid lock duration: {} seconds and {} nanoseconds are not a duration (nanos \
             must be below one second and have the sign of seconds)",
            d.seconds, d.nanos
        )));
    }
    let magnitude = Duration::new(d.seconds.unsigned_abs(), d.nanos.unsigned_abs());
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ServiceError::BadRequest(format!(
            "invalid lock duration -{}: a duration must not be negative",
            humantime::format_duration(magnitude)
        )));
    }
    let d = magnitude;
    if d > limits.max_lock_duration {
        return Err(ServiceError::BadRequest(format!(
            "Lock duration {} exceeds the maximum of {} (--max-lock-duration)",
            humantime::format_duration(d),
            humantime::format_duration(limits.max_lock_duration)
        )));
    }
    Ok(d)
}

/// A wire timestamp as the engine's; times before the epoch become the epoch.
pub fn timestamp(t: prost_types::Timestamp) -> crate::engine::Timestamp {
    let seconds = u64::try_from(t.seconds).unwrap_or(0);
    let millis = u64::try_from(t.nanos / 1_000_000).unwrap_or(0);
    crate::engine::Timestamp(seconds.saturating_mul(1000).saturating_add(millis))
}

/// CompleteAction's uids as (task uid, action id) pairs.
pub fn action_uids(uids: &[ActionUid]) -> Result<Vec<(String, String)>, ServiceError> {
    uids.iter()
        .map(|u| {
            for (field, value) in [
                ("task_uid", &u.task_uid),
                ("group_id", &u.group_id),
                ("action_id", &u.action_id),
            ] {
                if value.len() > MAX_ID_LEN {
                    return Err(EngineError::TooLong {
                        field,
                        max: MAX_ID_LEN,
                    }
                    .into());
                }
            }
            Ok((u.task_uid.clone(), u.action_id.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_proto::ydb::maintenance::{
        Action, ActionGroup, CordonAction, DrainAction, LockAction, MaintenanceTaskOptions,
    };

    const LIMITS: RequestLimits = RequestLimits {
        max_watches: 4096,
        max_watches_per_user: 256,
        max_lock_duration: Duration::from_secs(3600),
    };

    fn req(mode: i32, action: Option<action::Action>) -> CreateMaintenanceTaskRequest {
        CreateMaintenanceTaskRequest {
            operation_params: None,
            task_options: Some(MaintenanceTaskOptions {
                task_uid: "t".into(),
                availability_mode: mode,
                ..Default::default()
            }),
            action_groups: vec![ActionGroup {
                actions: vec![Action { action }],
            }],
        }
    }

    fn lock(node: u32, seconds: i64) -> Option<action::Action> {
        Some(action::Action::LockAction(LockAction {
            scope: Some(ActionScope {
                scope: Some(action_scope::Scope::NodeId(node)),
            }),
            duration: Some(prost_types::Duration { seconds, nanos: 0 }),
            drain: false,
        }))
    }

    fn refusal(r: CreateMaintenanceTaskRequest) -> String {
        task_request(r, "me", LIMITS)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_lock_request_reaches_the_engine() {
        let t = task_request(req(4, lock(7, 60)), "me", LIMITS).expect("valid");
        assert_eq!(t.mode, Mode::Smart);
        assert_eq!(t.owner, "me");
        assert_eq!(t.groups[0][0].scope, Scope::Node(7));
        assert_eq!(t.groups[0][0].duration, Some(Duration::from_secs(60)));
    }

    #[test]
    fn wire_level_mistakes_are_refused() {
        assert_eq!(refusal(req(0, lock(1, 1))), "Unknown availability mode");
        assert_eq!(refusal(req(9, lock(1, 1))), "Unknown availability mode");
        assert_eq!(refusal(req(1, None)), "Unknown action");
        assert_eq!(
            refusal(req(1, lock(1, -5))),
            "invalid lock duration -5s: a duration must not be negative"
        );
        assert!(refusal(req(1, lock(1, 3601))).contains("exceeds the maximum"));
        let no_scope = Some(action::Action::LockAction(LockAction::default()));
        assert!(refusal(req(1, no_scope)).starts_with("Unsupported scope"));
        let cordon = Some(action::Action::CordonAction(CordonAction::default()));
        assert!(refusal(req(1, cordon)).starts_with("Unsupported scope"));
    }

    #[test]
    fn drain_cordon_and_a_lock_with_drain_take_a_node_id() {
        let node = |n| {
            Some(ActionScope {
                scope: Some(action_scope::Scope::NodeId(n)),
            })
        };
        let host = Some(ActionScope {
            scope: Some(action_scope::Scope::Host("h".into())),
        });
        let drain = |scope| Some(action::Action::DrainAction(DrainAction { scope }));
        let t = task_request(req(1, drain(node(3))), "me", LIMITS).expect("valid");
        assert_eq!(t.groups[0][0].kind, ActionKind::Drain);
        assert_eq!(t.groups[0][0].scope, Scope::Node(3));
        assert_eq!(
            refusal(req(1, drain(host.clone()))),
            "Unsupported scope: a drain action takes a node_id scope"
        );
        let cordon = Some(action::Action::CordonAction(CordonAction {
            scope: node(2),
        }));
        let t = task_request(req(1, cordon), "me", LIMITS).expect("valid");
        assert_eq!(t.groups[0][0].kind, ActionKind::Cordon);
        let drained = |scope| {
            Some(action::Action::LockAction(LockAction {
                scope,
                duration: None,
                drain: true,
            }))
        };
        let t = task_request(req(1, drained(node(4))), "me", LIMITS).expect("valid");
        assert_eq!(t.groups[0][0].kind, ActionKind::DrainFirst);
        assert_eq!(
            refusal(req(1, drained(host))),
            "Unsupported scope: a lock with drain takes a node_id scope"
        );
        let disk = Some(ActionScope {
            scope: Some(action_scope::Scope::Pdisk(action_scope::PDisk {
                pdisk: Some(action_scope::p_disk::Pdisk::PdiskId(
                    action_scope::PDiskId {
                        node_id: 1,
                        pdisk_id: 1,
                    },
                )),
            })),
        });
        assert!(refusal(req(1, drained(disk))).starts_with("Unsupported scope"));
    }

    #[test]
    fn durations_are_told_in_human_units() {
        let with = |seconds, nanos| {
            let mut r = req(1, lock(1, 0));
            if let Some(action::Action::LockAction(l)) = &mut r.action_groups[0].actions[0].action {
                l.duration = Some(prost_types::Duration { seconds, nanos });
            }
            r
        };
        assert_eq!(
            refusal(with(-90, -500_000_000)),
            "invalid lock duration -1m 30s 500ms: a duration must not be negative"
        );
        assert_eq!(
            refusal(with(0, -1)),
            "invalid lock duration -1ns: a duration must not be negative"
        );
        assert!(refusal(with(1, -1)).contains("are not a duration"));
        assert!(refusal(with(0, 1_000_000_000)).contains("are not a duration"));
        assert_eq!(
            refusal(with(3601, 0)),
            "Lock duration 1h 1s exceeds the maximum of 1h (--max-lock-duration)"
        );
        assert!(task_request(with(59, 500), "me", LIMITS).is_ok());
    }

    #[test]
    fn the_missing_task_uid_is_told_first() {
        let empty = CreateMaintenanceTaskRequest::default();
        assert_eq!(refusal(empty), "A task needs a non-empty task_uid");
        let mut no_uid = req(0, None);
        no_uid.action_groups.clear();
        no_uid
            .task_options
            .as_mut()
            .expect("options")
            .task_uid
            .clear();
        assert_eq!(refusal(no_uid), "A task needs a non-empty task_uid");
        let mut long = req(0, None);
        long.task_options.as_mut().expect("options").task_uid = "u".repeat(129);
        assert_eq!(refusal(long), "task_uid is longer than 128 bytes");
    }

    #[test]
    fn wire_timestamps_never_overflow() {
        let t = |seconds, nanos| timestamp(prost_types::Timestamp { seconds, nanos });
        assert_eq!(t(1_700_000_000, 123_000_000).as_millis(), 1_700_000_000_123);
        assert_eq!(t(-5, -1).as_millis(), 0);
        assert_eq!(t(i64::MAX, 999_999_999).as_millis(), u64::MAX);
    }

    #[test]
    fn over_long_action_uids_are_refused() {
        let uid = |action_id: String| ActionUid {
            task_uid: "t".into(),
            group_id: "0".into(),
            action_id,
        };
        assert!(action_uids(&[uid("a-1".into())]).is_ok());
        let e = action_uids(&[uid("x".repeat(129))]).expect_err("too long");
        assert_eq!(e.to_string(), "action_id is longer than 128 bytes");
    }
}
