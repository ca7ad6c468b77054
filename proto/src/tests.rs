//! Wire-compatibility facts about the generated code and the descriptor set.

use prost::{Message, Name};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    Any, DescriptorProto, FieldDescriptorProto, FileDescriptorSet, ServiceDescriptorProto,
};

use crate::FILE_DESCRIPTOR_SET;
use crate::arbiter::v1 as arbiter_v1;
use crate::ydb::maintenance::{
    self as m, Action, ActionGroup, ActionScope, ActionState, LockAction, MaintenanceTaskOptions,
    action, action_scope, action_state,
};
use crate::ydb::operations::{Operation, OperationParams, operation_params};
use crate::ydb::status_ids::StatusCode;

fn lock_node(node_id: u32, seconds: i64) -> ActionGroup {
    ActionGroup {
        actions: vec![Action {
            action: Some(action::Action::LockAction(LockAction {
                scope: Some(ActionScope {
                    scope: Some(action_scope::Scope::NodeId(node_id)),
                }),
                duration: Some(prost_types::Duration { seconds, nanos: 0 }),
                drain: false,
            })),
        }],
    }
}

fn create_request() -> m::CreateMaintenanceTaskRequest {
    m::CreateMaintenanceTaskRequest {
        operation_params: Some(OperationParams {
            operation_mode: operation_params::OperationMode::Sync.into(),
            operation_timeout: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            ..Default::default()
        }),
        task_options: Some(MaintenanceTaskOptions {
            task_uid: "rolling-restart-0001".to_owned(),
            description: "Rolling restart maintenance task".to_owned(),
            availability_mode: m::AvailabilityMode::Strong.into(),
            dry_run: false,
            priority: -80,
            override_holds: false,
        }),
        action_groups: vec![lock_node(1, 543), lock_node(2, 543), lock_node(3, 543)],
    }
}

#[test]
fn create_request_roundtrips() {
    let request = create_request();
    let bytes = request.encode_to_vec();
    let decoded = m::CreateMaintenanceTaskRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, request);

    let options = decoded.task_options.unwrap();
    assert_eq!(options.priority, -80);
    assert_eq!(options.availability_mode(), m::AvailabilityMode::Strong);
    let Some(action::Action::LockAction(lock)) = &decoded.action_groups[2].actions[0].action else {
        panic!("expected a lock action");
    };
    assert_eq!(
        lock.scope.as_ref().unwrap().scope,
        Some(action_scope::Scope::NodeId(3))
    );
}

#[test]
fn field_tags_on_the_wire() {
    // ActionScope { node_id = 1 (varint) }: key (1 << 3) | 0.
    let scope = ActionScope {
        scope: Some(action_scope::Scope::NodeId(7)),
    };
    assert_eq!(scope.encode_to_vec(), [0x08, 0x07]);

    // ActionScope { pdisk = 3 { pdisk_id = 1 { node_id = 1: 5, pdisk_id = 2: 1001 } } }.
    let pdisk = ActionScope {
        scope: Some(action_scope::Scope::Pdisk(action_scope::PDisk {
            pdisk: Some(action_scope::p_disk::Pdisk::PdiskId(
                action_scope::PDiskId {
                    node_id: 5,
                    pdisk_id: 1001,
                },
            )),
        })),
    };
    assert_eq!(
        pdisk.encode_to_vec(),
        [0x1a, 0x07, 0x0a, 0x05, 0x08, 0x05, 0x10, 0xe9, 0x07]
    );

    // ActionState.details is field 6 (length-delimited): key (6 << 3) | 2 = 0x32.
    let state = ActionState {
        details: "x".to_owned(),
        ..Default::default()
    };
    assert_eq!(state.encode_to_vec(), [0x32, 0x01, b'x']);

    // A YDB server of 2024-10..2026-03 sent the same bytes as `reason_details`.
    let old =
        ActionState::decode([0x18, 0x01, 0x20, 0x04, 0x32, 0x02, b'h', b'i'].as_slice()).unwrap();
    assert_eq!(old.status(), action_state::ActionStatus::Pending);
    assert_eq!(
        old.reason(),
        action_state::ActionReason::DisabledNodesLimitReached
    );
    assert_eq!(old.details, "hi");

    // The unset optional retry_after is absent; a set one is field 3.
    let result = m::MaintenanceTaskResult {
        retry_after: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    assert_eq!(result.encode_to_vec(), [0x1a, 0x02, 0x08, 0x01]);
    assert!(
        m::MaintenanceTaskResult::default()
            .encode_to_vec()
            .is_empty()
    );
}

#[test]
fn enum_values_match_ydb() {
    assert_eq!(StatusCode::Success as i32, 400_000);
    assert_eq!(StatusCode::BadRequest as i32, 400_010);
    assert_eq!(StatusCode::Unauthorized as i32, 400_020);
    assert_eq!(StatusCode::Unavailable as i32, 400_050);
    assert_eq!(StatusCode::NotFound as i32, 400_140);
    assert_eq!(StatusCode::ExternalError as i32, 400_200);
    assert_eq!(m::AvailabilityMode::Smart as i32, 4);
    assert_eq!(m::ItemState::Down as i32, 3);
    assert_eq!(action_state::ActionStatus::InProgress as i32, 3);
    assert_eq!(action_state::ActionReason::Generic as i32, 8);
    assert_eq!(operation_params::OperationMode::Sync as i32, 1);
    // Proto names (used by JSON, grpcurl) keep YDB's spelling.
    assert_eq!(
        m::AvailabilityMode::Smart.as_str_name(),
        "AVAILABILITY_MODE_SMART"
    );
    assert_eq!(
        action_state::ActionStatus::InProgress.as_str_name(),
        "ACTION_STATUS_IN_PROGRESS"
    );
}

#[test]
fn results_pack_into_any_with_ydb_type_urls() {
    let result = m::MaintenanceTaskResult {
        task_uid: "t1".to_owned(),
        action_group_states: vec![m::ActionGroupStates {
            action_states: vec![ActionState {
                action: lock_node(4, 60).actions.pop(),
                action_uid: Some(m::ActionUid {
                    task_uid: "t1".to_owned(),
                    group_id: String::new(),
                    action_id: "user-p-1".to_owned(),
                }),
                status: action_state::ActionStatus::Performed.into(),
                reason: action_state::ActionReason::Ok.into(),
                deadline: Some(prost_types::Timestamp {
                    seconds: 1_000,
                    nanos: 0,
                }),
                details: String::new(),
                fencing_token: 7,
                hold: String::new(),
            }],
        }],
        retry_after: None,
        create_time: Some(prost_types::Timestamp {
            seconds: 900,
            nanos: 0,
        }),
        last_refresh_time: Some(prost_types::Timestamp {
            seconds: 950,
            nanos: 0,
        }),
    };
    let any = Any::from_msg(&result).unwrap();
    assert_eq!(
        any.type_url,
        "type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult"
    );

    let operation = Operation {
        ready: true,
        status: StatusCode::Success.into(),
        result: Some(any),
        ..Default::default()
    };
    let response = m::MaintenanceTaskResponse {
        operation: Some(operation),
    };
    let decoded = m::MaintenanceTaskResponse::decode(response.encode_to_vec().as_slice()).unwrap();
    let operation = decoded.operation.unwrap();
    assert_eq!(operation.status(), StatusCode::Success);
    let unpacked: m::MaintenanceTaskResult = operation.result.unwrap().to_msg().unwrap();
    assert_eq!(unpacked, result);

    for (url, expected) in [
        (
            m::GetMaintenanceTaskResult::type_url(),
            "Ydb.Maintenance.GetMaintenanceTaskResult",
        ),
        (
            m::ListMaintenanceTasksResult::type_url(),
            "Ydb.Maintenance.ListMaintenanceTasksResult",
        ),
        (
            m::ListClusterNodesResult::type_url(),
            "Ydb.Maintenance.ListClusterNodesResult",
        ),
        (
            m::ManageActionResult::type_url(),
            "Ydb.Maintenance.ManageActionResult",
        ),
        (
            crate::ydb::discovery::WhoAmIResult::type_url(),
            "Ydb.Discovery.WhoAmIResult",
        ),
        (
            crate::ydb::cms::ListDatabasesResult::type_url(),
            "Ydb.Cms.ListDatabasesResult",
        ),
        (
            crate::ydb::auth::LoginResult::type_url(),
            "Ydb.Auth.LoginResult",
        ),
    ] {
        assert_eq!(url, format!("type.googleapis.com/{expected}"));
    }
}

#[test]
fn service_names_are_ydbs() {
    use crate::ydb::{auth, cms, discovery, maintenance};
    assert_eq!(
        maintenance::v1::maintenance_service_server::SERVICE_NAME,
        "Ydb.Maintenance.V1.MaintenanceService"
    );
    assert_eq!(
        discovery::v1::discovery_service_server::SERVICE_NAME,
        "Ydb.Discovery.V1.DiscoveryService"
    );
    assert_eq!(
        cms::v1::cms_service_server::SERVICE_NAME,
        "Ydb.Cms.V1.CmsService"
    );
    assert_eq!(
        auth::v1::auth_service_server::SERVICE_NAME,
        "Ydb.Auth.V1.AuthService"
    );
    assert_eq!(
        arbiter_v1::arbiter_service_server::SERVICE_NAME,
        "arbiter.v1.ArbiterService"
    );
}

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap()
}

fn find_message<'a>(fds: &'a FileDescriptorSet, package: &str, name: &str) -> &'a DescriptorProto {
    fds.file
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| &file.message_type)
        .find(|message| message.name() == name)
        .unwrap_or_else(|| panic!("message {package}.{name} not in the descriptor set"))
}

fn find_service<'a>(
    fds: &'a FileDescriptorSet,
    package: &str,
    name: &str,
) -> &'a ServiceDescriptorProto {
    fds.file
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| &file.service)
        .find(|service| service.name() == name)
        .unwrap_or_else(|| panic!("service {package}.{name} not in the descriptor set"))
}

fn field<'a>(message: &'a DescriptorProto, name: &str) -> &'a FieldDescriptorProto {
    message
        .field
        .iter()
        .find(|field| field.name() == name)
        .unwrap_or_else(|| panic!("field {name} not in {}", message.name()))
}

#[test]
fn descriptor_set_has_maintenance_service() {
    let fds = descriptor_set();
    let service = find_service(&fds, "Ydb.Maintenance.V1", "MaintenanceService");
    let methods: Vec<(&str, &str, &str)> = service
        .method
        .iter()
        .map(|method| {
            assert!(!method.client_streaming() && !method.server_streaming());
            (method.name(), method.input_type(), method.output_type())
        })
        .collect();
    assert_eq!(
        methods,
        [
            (
                "ListClusterNodes",
                ".Ydb.Maintenance.ListClusterNodesRequest",
                ".Ydb.Maintenance.ListClusterNodesResponse"
            ),
            (
                "CreateMaintenanceTask",
                ".Ydb.Maintenance.CreateMaintenanceTaskRequest",
                ".Ydb.Maintenance.MaintenanceTaskResponse"
            ),
            (
                "RefreshMaintenanceTask",
                ".Ydb.Maintenance.RefreshMaintenanceTaskRequest",
                ".Ydb.Maintenance.MaintenanceTaskResponse"
            ),
            (
                "GetMaintenanceTask",
                ".Ydb.Maintenance.GetMaintenanceTaskRequest",
                ".Ydb.Maintenance.GetMaintenanceTaskResponse"
            ),
            (
                "ListMaintenanceTasks",
                ".Ydb.Maintenance.ListMaintenanceTasksRequest",
                ".Ydb.Maintenance.ListMaintenanceTasksResponse"
            ),
            (
                "DropMaintenanceTask",
                ".Ydb.Maintenance.DropMaintenanceTaskRequest",
                ".Ydb.Maintenance.ManageMaintenanceTaskResponse"
            ),
            (
                "CompleteAction",
                ".Ydb.Maintenance.CompleteActionRequest",
                ".Ydb.Maintenance.ManageActionResponse"
            ),
        ]
    );

    let watch = find_service(&fds, "arbiter.v1", "ArbiterService")
        .method
        .iter()
        .find(|method| method.name() == "WatchMaintenanceTask")
        .unwrap();
    assert!(watch.server_streaming() && !watch.client_streaming());

    for (package, name) in [
        ("Ydb.Discovery.V1", "DiscoveryService"),
        ("Ydb.Cms.V1", "CmsService"),
        ("Ydb.Auth.V1", "AuthService"),
    ] {
        assert_eq!(find_service(&fds, package, name).method.len(), 1);
    }
}

#[test]
fn descriptor_set_field_numbers() {
    let fds = descriptor_set();

    let state = find_message(&fds, "Ydb.Maintenance", "ActionState");
    let details = field(state, "details");
    assert_eq!(details.number(), 6);
    assert_eq!(details.r#type(), Type::String);
    assert_eq!(field(state, "deadline").number(), 5);
    // Arbiter's own field on YDB's message: far outside YDB's numbers, so YDB's clients skip it.
    assert_eq!(field(state, "fencing_token").number(), 10001);

    let result = find_message(&fds, "Ydb.Maintenance", "MaintenanceTaskResult");
    let retry_after = field(result, "retry_after");
    assert_eq!(retry_after.number(), 3);
    assert_eq!(retry_after.type_name(), ".google.protobuf.Timestamp");
    assert!(retry_after.proto3_optional());
    assert_eq!(field(result, "create_time").number(), 4);
    assert_eq!(field(result, "last_refresh_time").number(), 5);

    let scope = find_message(&fds, "Ydb.Maintenance", "ActionScope");
    let pdisk = field(scope, "pdisk");
    assert_eq!(pdisk.number(), 3);
    assert_eq!(pdisk.type_name(), ".Ydb.Maintenance.ActionScope.PDisk");
    assert_eq!(pdisk.oneof_index, field(scope, "node_id").oneof_index);

    let list = find_message(&fds, "Ydb.Maintenance", "ListMaintenanceTasksRequest");
    let user = field(list, "user");
    assert_eq!(user.number(), 2);
    assert!(user.proto3_optional());

    let options = find_message(&fds, "Ydb.Maintenance", "MaintenanceTaskOptions");
    assert_eq!(field(options, "priority").number(), 5);
    assert_eq!(field(options, "priority").r#type(), Type::Int32);

    let operation = find_message(&fds, "Ydb.Operations", "Operation");
    assert_eq!(field(operation, "result").number(), 5);
    assert_eq!(field(operation, "issues").label(), Label::Repeated);

    let location = find_message(&fds, "Ydb.Discovery", "NodeLocation");
    assert_eq!(field(location, "body").number(), 100_500);
    assert_eq!(field(location, "data_center").number(), 10);
    assert_eq!(field(location, "bridge_pile_name").number(), 5);
    assert!(field(location, "bridge_pile_name").proto3_optional());

    // Well-known types ride along so the set is self-contained for reflection.
    assert!(
        fds.file
            .iter()
            .any(|file| file.name() == "google/protobuf/timestamp.proto")
    );
}
