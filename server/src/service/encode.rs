//! Engine views to wire messages.
//!
//! Every action state echoes its action (ydbops reads `lock_action.scope.node_id` of a performed
//! state) and carries an action uid, pending ones too: Arbiter assigns uids at creation, so
//! clients may complete (withdraw) an action before it is granted. A dry run's actions have no
//! id and therefore no uid.

use crate::engine::task::{ActionKind, ActionStatus, Reason, Scope};
use crate::engine::{ActionView, Cluster, NodeState, NodeView, TaskView, Timestamp};
use arbiter_proto::ydb::discovery::NodeLocation;
use arbiter_proto::ydb::maintenance::action_scope::{self, PDisk, p_disk};
use arbiter_proto::ydb::maintenance::action_state::{ActionReason, ActionStatus as WireStatus};
use arbiter_proto::ydb::maintenance::{
    Action, ActionGroupStates, ActionScope, ActionState, ActionUid, AvailabilityMode, CordonAction,
    DrainAction, GetMaintenanceTaskResult, ItemState, LockAction, MaintenanceTaskOptions,
    MaintenanceTaskResult, Node, action, node,
};

/// A wire timestamp.
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.as_millis();
    prost_types::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9 by construction.
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

/// Create's and Refresh's result, and every state of the watch stream.
pub fn task_result(view: &TaskView) -> MaintenanceTaskResult {
    MaintenanceTaskResult {
        task_uid: view.uid.clone(),
        action_group_states: group_states(view),
        retry_after: retry_after(view).map(timestamp),
        create_time: Some(timestamp(view.create_time)),
        last_refresh_time: Some(timestamp(view.last_refresh_time)),
    }
}

/// The retry hint as the proto documents it: "set when no action is performed". The engine's
/// hint says when to check again after a check that granted nothing; a task that already holds a
/// performed lock gets none, whatever that check found for its other actions.
fn retry_after(view: &TaskView) -> Option<Timestamp> {
    if view.actions().any(ActionView::is_performed) {
        None
    } else {
        view.retry_after
    }
}

/// Get's result: the task's options always (YDB drops them once all is performed).
pub fn get_result(view: &TaskView) -> GetMaintenanceTaskResult {
    GetMaintenanceTaskResult {
        task_options: Some(MaintenanceTaskOptions {
            task_uid: view.uid.clone(),
            description: view.description.clone(),
            availability_mode: mode(view.mode) as i32,
            dry_run: false,
            priority: view.priority,
            override_holds: view.override_holds,
        }),
        action_group_states: group_states(view),
        create_time: Some(timestamp(view.create_time)),
        last_refresh_time: Some(timestamp(view.last_refresh_time)),
    }
}

fn mode(m: crate::engine::Mode) -> AvailabilityMode {
    use crate::engine::Mode;
    match m {
        Mode::Strong => AvailabilityMode::Strong,
        Mode::Weak => AvailabilityMode::Weak,
        Mode::Force => AvailabilityMode::Force,
        Mode::Smart => AvailabilityMode::Smart,
    }
}

fn group_states(view: &TaskView) -> Vec<ActionGroupStates> {
    view.groups
        .iter()
        .map(|g| ActionGroupStates {
            action_states: g
                .actions
                .iter()
                .map(|a| action_state(&view.uid, &g.id, a))
                .collect(),
        })
        .collect()
}

fn action_state(task: &str, group: &str, a: &ActionView) -> ActionState {
    let (status, reason, deadline, held) = match &a.status {
        ActionStatus::Performed { deadline, .. } => (
            if a.in_progress() {
                WireStatus::InProgress
            } else {
                WireStatus::Performed
            },
            ActionReason::Ok,
            // A drain or a cordon holds until completed: no deadline to show.
            (*deadline != Timestamp::NEVER).then(|| timestamp(*deadline)),
            "",
        ),
        ActionStatus::Pending { reason, .. } => (
            WireStatus::Pending,
            pending_reason(*reason),
            None,
            hold(*reason),
        ),
    };
    let wire_scope = Some(scope(&a.scope));
    let action = match a.kind {
        ActionKind::Drain => action::Action::DrainAction(DrainAction { scope: wire_scope }),
        ActionKind::Cordon => action::Action::CordonAction(CordonAction { scope: wire_scope }),
        ActionKind::Lock | ActionKind::DrainFirst => action::Action::LockAction(LockAction {
            scope: wire_scope,
            duration: a.duration.map(|d| prost_types::Duration {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
            }),
            drain: a.kind == ActionKind::DrainFirst,
        }),
    };
    let details = match &a.work {
        Some(w) => w.details.clone(),
        None => a.details().to_owned(),
    };
    ActionState {
        action: Some(Action {
            action: Some(action),
        }),
        action_uid: (!a.id.is_empty()).then(|| ActionUid {
            task_uid: task.to_owned(),
            group_id: group.to_owned(),
            action_id: a.id.clone(),
        }),
        status: status as i32,
        reason: reason as i32,
        deadline,
        details,
        fencing_token: a.fencing_token().unwrap_or(0),
        hold: held.to_owned(),
    }
}

fn pending_reason(r: Reason) -> ActionReason {
    match r {
        Reason::Generic => ActionReason::Generic,
        Reason::TooManyUnavailableVDisks => ActionReason::TooManyUnavailableVdisks,
        Reason::TooManyUnavailableStateStorageRings => {
            ActionReason::TooManyUnavailableStateStorageRings
        }
        Reason::DisabledNodesLimitReached => ActionReason::DisabledNodesLimitReached,
        Reason::TenantDisabledNodesLimitReached => ActionReason::TenantDisabledNodesLimitReached,
        Reason::SysTabletsNodeLimitReached => ActionReason::SysTabletsNodeLimitReached,
        Reason::Frozen | Reason::OutsideWindow | Reason::RateBudget => ActionReason::Generic,
    }
}

/// The hold of a pending action, named on Arbiter's extension field (empty: none).
fn hold(r: Reason) -> &'static str {
    match r {
        Reason::Frozen => "FROZEN",
        Reason::OutsideWindow => "OUTSIDE_WINDOW",
        Reason::RateBudget => "RATE_BUDGET",
        _ => "",
    }
}

/// A scope on the wire.
pub fn scope(s: &Scope) -> ActionScope {
    let scope = match s {
        Scope::Node(id) => action_scope::Scope::NodeId(*id),
        Scope::Host(h) => action_scope::Scope::Host(h.clone()),
        Scope::PDisk(k) => action_scope::Scope::Pdisk(PDisk {
            pdisk: Some(p_disk::Pdisk::PdiskId(action_scope::PDiskId {
                node_id: k.node,
                pdisk_id: k.pdisk,
            })),
        }),
        Scope::PDiskPath { host, path } => action_scope::Scope::Pdisk(PDisk {
            pdisk: Some(p_disk::Pdisk::PdiskLocation(action_scope::PDiskLocation {
                host: host.clone(),
                path: path.clone(),
            })),
        }),
    };
    ActionScope { scope: Some(scope) }
}

/// One node of ListClusterNodes: the inventory's facts plus the engine's state.
pub fn node(cluster: &Cluster, view: &NodeView) -> Option<Node> {
    let n = cluster.node(view.id)?;
    Some(Node {
        node_id: n.id,
        host: n.host.clone(),
        port: n.port,
        location: Some(NodeLocation {
            data_center: n.location.data_center.clone(),
            module: n.location.module.clone(),
            rack: n.location.rack.clone(),
            unit: n.location.unit.clone(),
            ..NodeLocation::default()
        }),
        state: match view.state {
            NodeState::Up => ItemState::Up,
            NodeState::Maintenance => ItemState::Maintenance,
            NodeState::Down => ItemState::Down,
        } as i32,
        r#type: Some(match &n.tenant {
            Some(tenant) => node::Type::Dynamic(node::DynamicNode {
                tenant: tenant.clone(),
            }),
            None => node::Type::Storage(node::StorageNode {}),
        }),
        // What the node's agent reported, else when Arbiter saw it come up (unset: unknown).
        start_time: view.start_time.or(view.up_since).map(timestamp),
        // ydbops parses versions; "" means unknown and only gives a warning.
        version: view
            .version
            .clone()
            .or_else(|| n.version.clone())
            .unwrap_or_default(),
    })
}

/// The arbiter's finer node state on its own wire.
pub fn condition(c: crate::engine::NodeCondition) -> arbiter_proto::arbiter::v1::NodeCondition {
    use crate::engine::NodeCondition as C;
    use arbiter_proto::arbiter::v1::NodeCondition as W;
    match c {
        C::Up => W::Up,
        C::Entering => W::EnteringMaintenance,
        C::InMaintenance => W::InMaintenance,
        C::Restarting => W::Restarting,
        C::Settling => W::Settling,
        C::Down => W::Down,
        C::Unknown => W::Unknown,
    }
}

/// ValidateFence's answer.
pub fn fence(
    a: &crate::engine::fence::FenceAnswer,
) -> arbiter_proto::arbiter::v1::ValidateFenceResponse {
    use crate::engine::fence::FenceState as E;
    use arbiter_proto::arbiter::v1::FenceState as W;
    let state = match a.state {
        E::Live => W::Live,
        E::Superseded => W::Superseded,
        E::Released => W::Released,
        E::Expired => W::Expired,
        E::Unknown => W::Unknown,
    };
    arbiter_proto::arbiter::v1::ValidateFenceResponse {
        state: state as i32,
        task_uid: a.task.clone().unwrap_or_default(),
        action_id: a.action.clone().unwrap_or_default(),
        deadline: a.deadline.map(timestamp),
        ended: a.when.map(timestamp),
        live_token: a.live_token.unwrap_or(0),
        detail: a.detail.clone(),
    }
}

/// What holds a task's pending actions back, when a rule of when maintenance may happen does:
/// each hold once, in a fixed order.
pub fn holds(view: &TaskView) -> Vec<String> {
    ["FROZEN", "OUTSIDE_WINDOW", "RATE_BUDGET"]
        .into_iter()
        .filter(|h| view.actions().any(|a| a.reason().map(hold) == Some(*h)))
        .map(str::to_owned)
        .collect()
}

/// One line of arbiter.v1's ListTasks.
pub fn task_summary(view: &TaskView) -> arbiter_proto::arbiter::v1::TaskSummary {
    let performed = view.actions().filter(|a| a.is_performed()).count();
    let pending = view.actions().count() - performed;
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    arbiter_proto::arbiter::v1::TaskSummary {
        task_uid: view.uid.clone(),
        owner: view.owner.clone(),
        description: view.description.clone(),
        availability_mode: mode(view.mode) as i32,
        priority: view.priority,
        performed: n(performed),
        pending: n(pending),
        create_time: Some(timestamp(view.create_time)),
        last_refresh_time: Some(timestamp(view.last_refresh_time)),
        holds: holds(view),
        override_holds: view.override_holds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::{self, Format};
    use crate::engine::{LockRequest, Mode, State, TaskRequest};
    use std::sync::Arc;

    fn request(uid: &str, nodes: &[u32]) -> TaskRequest {
        TaskRequest {
            uid: uid.into(),
            owner: "me".into(),
            description: String::new(),
            mode: Mode::Strong,
            priority: 0,
            dry_run: false,
            override_holds: false,
            groups: nodes
                .iter()
                .map(|&n| {
                    vec![LockRequest {
                        scope: Scope::Node(n),
                        duration: None,
                        kind: Default::default(),
                    }]
                })
                .collect(),
        }
    }

    #[test]
    fn retry_after_only_while_nothing_is_performed() {
        let text = "[limits]\nmax_unavailable_nodes = 1\nmax_unavailable_ratio = 0\n\
                    [[nodes]]\nid = 1\nhost = \"a\"\nport = 1\n\
                    [[nodes]]\nid = 2\nhost = \"b\"\nport = 1\n";
        let cluster = Arc::new(inventory::parse(text, Format::Toml).expect("inventory"));
        let mut st = State::new(cluster);
        let now = Timestamp(1_000);
        // Node 1 is granted, node 2 waits for the limit.
        let created = st.create(request("part", &[1, 2]), now).expect("created");
        assert!(task_result(&created.value).retry_after.is_none());
        // A refresh grants nothing; the task still holds node 1: no retry_after.
        let refreshed = st.refresh("part", Timestamp(2_000)).expect("refreshed");
        assert!(refreshed.value.actions().any(ActionView::is_performed));
        assert!(task_result(&refreshed.value).retry_after.is_none());
        // A task with nothing performed keeps the engine's hint, on create and on refresh.
        let waits = st.create(request("waits", &[2]), now).expect("created");
        assert!(waits.value.retry_after.is_some());
        assert!(task_result(&waits.value).retry_after.is_some());
        let again = st.refresh("waits", Timestamp(2_000)).expect("refreshed");
        assert_eq!(
            task_result(&again.value).retry_after,
            again.value.retry_after.map(timestamp)
        );
        assert!(again.value.retry_after.is_some());
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let t = timestamp(Timestamp(1_700_000_000_123));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
    }
}
