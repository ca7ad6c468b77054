//! YDB's response envelope as clients see it: every call answers gRPC OK with a ready
//! operation, results packed under YDB's exact type URLs, refusals with one error issue and an
//! empty result of the call's type, and DropMaintenanceTask with no result at all.

use arbiter_e2e::proto::ydb::auth::LoginResult;
use arbiter_e2e::proto::ydb::cms::ListDatabasesResult;
use arbiter_e2e::proto::ydb::discovery::WhoAmIResult;
use arbiter_e2e::proto::ydb::maintenance::{
    ActionUid, AvailabilityMode, GetMaintenanceTaskResult, ListClusterNodesResult,
    ListMaintenanceTasksResult, MaintenanceTaskResult, ManageActionResult,
};
use arbiter_e2e::proto::ydb::operations::Operation;
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    ServerProcess, example_inventory, is_pending, is_performed, node_locks, refusal_of, states,
    status, success, task, uid_of,
};

const TASK_RESULT: &str = "type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult";
const GET_RESULT: &str = "type.googleapis.com/Ydb.Maintenance.GetMaintenanceTaskResult";
const LIST_RESULT: &str = "type.googleapis.com/Ydb.Maintenance.ListMaintenanceTasksResult";
const NODES_RESULT: &str = "type.googleapis.com/Ydb.Maintenance.ListClusterNodesResult";
const MANAGE_RESULT: &str = "type.googleapis.com/Ydb.Maintenance.ManageActionResult";

/// The literal type URL of the packed result.
fn url(op: &Operation) -> &str {
    &op.result.as_ref().expect("a packed result").type_url
}

#[tokio::test]
async fn every_maintenance_call_packs_its_result_under_ydbs_type_url() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    let op = c.list_nodes().await;
    assert_eq!(url(&op), NODES_RESULT);
    let nodes: ListClusterNodesResult = success(&op);
    let ids: Vec<u32> = nodes.nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());

    // Node 1 is granted; node 2 waits (the cluster allows one unavailable node).
    let op = c.create(node_locks("t1", &[1, 2])).await;
    assert_eq!(url(&op), TASK_RESULT);
    let created: MaintenanceTaskResult = success(&op);
    assert_eq!(created.task_uid, "t1");
    let s = states(&created.action_group_states);
    assert_eq!(s.len(), 2);
    assert!(is_performed(s[0]) && is_pending(s[1]), "{created:?}");
    assert!(created.create_time.is_some() && created.last_refresh_time.is_some());

    let op = c.refresh("t1").await;
    assert_eq!(url(&op), TASK_RESULT);
    let refreshed: MaintenanceTaskResult = success(&op);
    assert_eq!(refreshed.task_uid, "t1");
    assert_eq!(refreshed.create_time, created.create_time);

    let op = c.get("t1").await;
    assert_eq!(url(&op), GET_RESULT);
    let got: GetMaintenanceTaskResult = success(&op);
    let options = got.task_options.expect("Get returns the task options");
    assert_eq!(options.task_uid, "t1");
    assert_eq!(options.description, "e2e task t1");
    assert_eq!(options.availability_mode, AvailabilityMode::Strong as i32);
    assert_eq!(got.action_group_states, refreshed.action_group_states);

    let op = c.list(None).await;
    assert_eq!(url(&op), LIST_RESULT);
    let list: ListMaintenanceTasksResult = success(&op);
    assert_eq!(list.tasks_uids, vec!["t1".to_owned()]);

    let done = uid_of(s[0]);
    let op = c.complete(vec![done.clone()]).await;
    assert_eq!(url(&op), MANAGE_RESULT);
    let managed: ManageActionResult = success(&op);
    assert_eq!(managed.action_statuses.len(), 1);
    assert_eq!(managed.action_statuses[0].action_uid.as_ref(), Some(&done));
    assert_eq!(
        managed.action_statuses[0].status,
        StatusCode::Success as i32
    );

    let op = c.drop_task("t1").await;
    assert_eq!(status(&op), StatusCode::Success);
    assert!(op.issues.is_empty(), "{op:?}");
    assert!(
        op.result.is_none(),
        "DropMaintenanceTask packs no result: {op:?}"
    );
    let list: ListMaintenanceTasksResult = success(&c.list(None).await);
    assert!(list.tasks_uids.is_empty(), "{list:?}");
}

#[tokio::test]
async fn refusals_carry_one_issue_and_an_empty_result_of_the_calls_type() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("e2e-user")).await;

    let op = c.get("no-such-task").await;
    assert_eq!(url(&op), GET_RESULT);
    let msg = refusal_of::<GetMaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert_eq!(msg, "Task not found");

    let op = c.refresh("no-such-task").await;
    assert_eq!(url(&op), TASK_RESULT);
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert_eq!(msg, "Task not found");

    let op = c
        .complete(vec![ActionUid {
            task_uid: "no-such-task".into(),
            group_id: "0".into(),
            action_id: "a-1".into(),
        }])
        .await;
    assert_eq!(url(&op), MANAGE_RESULT);
    let msg = refusal_of::<ManageActionResult>(&op, StatusCode::BadRequest);
    assert_eq!(msg, "Task not found");

    let op = c
        .create(task(
            "t-bad",
            AvailabilityMode::Unspecified,
            vec![vec![arbiter_e2e::lock(1, None)]],
        ))
        .await;
    assert_eq!(url(&op), TASK_RESULT);
    let msg = refusal_of::<MaintenanceTaskResult>(&op, StatusCode::BadRequest);
    assert_eq!(msg, "Unknown availability mode");

    let op = c.drop_task("no-such-task").await;
    assert_eq!(status(&op), StatusCode::BadRequest);
    assert_eq!(op.issues.len(), 1, "{op:?}");
    assert_eq!(op.issues[0].message, "Task not found");
    assert_eq!(op.issues[0].severity, 1);
    assert!(
        op.result.is_none(),
        "DropMaintenanceTask packs no result, refused or not: {op:?}"
    );
}

#[tokio::test]
async fn whoami_list_databases_and_login_are_wrapped_too() {
    let server = ServerProcess::start(example_inventory());
    let c = server.client(Some("bob")).await;

    let op = c.who_am_i().await;
    assert_eq!(url(&op), "type.googleapis.com/Ydb.Discovery.WhoAmIResult");
    let me: WhoAmIResult = success(&op);
    assert_eq!(me.user, "bob", "open mode: the user is the ticket");

    let anonymous: WhoAmIResult = success(&c.with_ticket(None).who_am_i().await);
    assert_eq!(anonymous.user, "anonymous");

    let op = c.list_databases().await;
    assert_eq!(url(&op), "type.googleapis.com/Ydb.Cms.ListDatabasesResult");
    let dbs: ListDatabasesResult = success(&op);
    assert_eq!(dbs.paths, vec!["/Root/db1".to_owned()]);

    let op = c.with_ticket(None).login("dave", "anything").await;
    assert_eq!(url(&op), "type.googleapis.com/Ydb.Auth.LoginResult");
    let login: LoginResult = success(&op);
    assert!(login.token.len() >= 20, "{login:?}");
    let me: WhoAmIResult = success(&c.with_ticket(Some(&login.token)).who_am_i().await);
    assert_eq!(me.user, "dave", "a Login token stands for its user");
}
