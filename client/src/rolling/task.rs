//! Reading and writing maintenance tasks: the create request of a rollout, and what a task's
//! action states say about each node.

use super::args::RollingArgs;
use super::select::Target;
use crate::proto::ydb::maintenance::action_state::{ActionReason, ActionStatus};
use crate::proto::ydb::maintenance::{
    Action, ActionGroup, ActionGroupStates, ActionScope, ActionState, ActionUid,
    CreateMaintenanceTaskRequest, LockAction, MaintenanceTaskOptions, action, action_scope,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the task says about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeAction {
    /// The lock is granted (a dry run's grants have no uid).
    Granted {
        uid: Option<ActionUid>,
        deadline: Option<SystemTime>,
    },
    /// The lock waits; why, in words.
    Waiting { why: String },
}

/// The create request: one group per node, each a lock on the node for `--lock-duration`.
pub(crate) fn create_request(
    uid: &str,
    args: &RollingArgs,
    targets: &[Target],
    dry_run: bool,
) -> CreateMaintenanceTaskRequest {
    let duration = prost_types::Duration {
        seconds: i64::try_from(args.lock_duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(args.lock_duration.subsec_nanos()).unwrap_or(0),
    };
    CreateMaintenanceTaskRequest {
        operation_params: None,
        task_options: Some(MaintenanceTaskOptions {
            task_uid: uid.to_owned(),
            description: "arbiter rolling-restart".into(),
            availability_mode: args.mode.wire() as i32,
            dry_run,
            priority: args.priority,
            override_holds: false,
        }),
        action_groups: targets
            .iter()
            .map(|t| ActionGroup {
                actions: vec![Action {
                    action: Some(action::Action::LockAction(LockAction {
                        scope: Some(ActionScope {
                            scope: Some(action_scope::Scope::NodeId(t.id)),
                        }),
                        duration: Some(duration),
                        drain: args.drain,
                    })),
                }],
            })
            .collect(),
    }
}

/// The node a state's action locks, if it is a node lock.
pub(crate) fn node_of(state: &ActionState) -> Option<u32> {
    match state.action.as_ref()?.action.as_ref()? {
        action::Action::LockAction(LockAction {
            scope:
                Some(ActionScope {
                    scope: Some(action_scope::Scope::NodeId(n)),
                }),
            ..
        }) => Some(*n),
        _ => None,
    }
}

/// Every node the task's groups name, with what the task says about it, in group order.
pub(crate) fn node_actions(groups: &[ActionGroupStates]) -> Vec<(u32, NodeAction)> {
    groups
        .iter()
        .flat_map(|g| g.action_states.iter())
        .filter_map(|s| Some((node_of(s)?, read_state(s))))
        .collect()
}

fn read_state(s: &ActionState) -> NodeAction {
    let status = ActionStatus::try_from(s.status).unwrap_or(ActionStatus::Unspecified);
    match status {
        ActionStatus::Performed => NodeAction::Granted {
            uid: s.action_uid.clone(),
            deadline: s.deadline.as_ref().map(system_time),
        },
        _ => NodeAction::Waiting {
            why: waiting_text(s),
        },
    }
}

/// Why an action waits: its details, else its reason in words.
pub(crate) fn waiting_text(s: &ActionState) -> String {
    if !s.details.is_empty() {
        return s.details.clone();
    }
    let reason = ActionReason::try_from(s.reason).unwrap_or(ActionReason::Unspecified);
    match reason {
        ActionReason::Unspecified | ActionReason::Ok => "waiting for its turn".into(),
        other => other
            .as_str_name()
            .trim_start_matches("ACTION_REASON_")
            .to_lowercase()
            .replace('_', " "),
    }
}

/// A wire timestamp as a system time.
pub(crate) fn system_time(t: &prost_types::Timestamp) -> SystemTime {
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// A system time for people: RFC 3339, UTC, whole seconds.
pub(crate) fn show_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A duration for people, without sub-second noise above a minute.
pub(crate) fn show_duration(d: Duration) -> String {
    let d = if d >= Duration::from_secs(60) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX) / 100 * 100)
    };
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(node: u32, status: ActionStatus, details: &str) -> ActionState {
        ActionState {
            action: Some(Action {
                action: Some(action::Action::LockAction(LockAction {
                    scope: Some(ActionScope {
                        scope: Some(action_scope::Scope::NodeId(node)),
                    }),
                    duration: None,
                    drain: false,
                })),
            }),
            action_uid: (status == ActionStatus::Performed).then(|| ActionUid {
                task_uid: "t".into(),
                group_id: node.to_string(),
                action_id: format!("a-{node}"),
            }),
            status: status as i32,
            reason: ActionReason::TooManyUnavailableVdisks as i32,
            deadline: Some(prost_types::Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            details: details.into(),
            fencing_token: 0,
            hold: String::new(),
        }
    }

    #[test]
    fn states_are_read_per_node() {
        let groups = vec![
            ActionGroupStates {
                action_states: vec![state(4, ActionStatus::Performed, "")],
            },
            ActionGroupStates {
                action_states: vec![state(2, ActionStatus::Pending, "")],
            },
            ActionGroupStates {
                action_states: vec![state(3, ActionStatus::Pending, "node 3 is locked")],
            },
        ];
        let got = node_actions(&groups);
        assert_eq!(got.len(), 3);
        assert!(
            matches!(&got[0], (4, NodeAction::Granted { deadline: Some(t), .. })
            if *t == UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            got[1],
            (
                2,
                NodeAction::Waiting {
                    why: "too many unavailable vdisks".into()
                }
            )
        );
        assert_eq!(
            got[2].1,
            NodeAction::Waiting {
                why: "node 3 is locked".into()
            }
        );
    }

    #[test]
    fn a_dry_run_grant_has_no_uid() {
        let mut s = state(5, ActionStatus::Performed, "");
        s.action_uid = None;
        let got = node_actions(&[ActionGroupStates {
            action_states: vec![s],
        }]);
        assert!(matches!(
            &got[0],
            (5, NodeAction::Granted { uid: None, .. })
        ));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(show_duration(Duration::from_millis(1234)), "1s 200ms");
        assert_eq!(show_duration(Duration::from_millis(61_500)), "1m 1s");
        assert_eq!(show_duration(Duration::from_secs(600)), "10m");
    }
}
