//! `--auth FILE`: tickets, roles, ownership, Login, and arbiter.v1's gRPC statuses.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{HeartbeatRequest, NodeState, SetNodeStateRequest};
use arbiter_e2e::proto::ydb::auth::LoginResult;
use arbiter_e2e::proto::ydb::cms::ListDatabasesResult;
use arbiter_e2e::proto::ydb::discovery::WhoAmIResult;
use arbiter_e2e::proto::ydb::maintenance::{
    ActionUid, GetMaintenanceTaskResult, ItemState, ListClusterNodesResult,
    ListMaintenanceTasksResult, MaintenanceTaskResult, ManageActionResult,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, Files, ServerProcess, example_inventory, hash_password, is_pending, is_performed,
    node_locks, refusal, refusal_of, result_bytes, states, status, success, uid_of,
};

const ALICE: &str = "alice-token-000000000001";
const BOB: &str = "bob-token-00000000000002";
const VIC: &str = "vic-token-00000000000003";
const ROOT: &str = "root-token-0000000000004";

const USERS: &str = r#"
[[users]]
name = "alice"
token = "alice-token-000000000001"
role = "operator"

[[users]]
name = "bob"
token = "bob-token-00000000000002"
role = "operator"

[[users]]
name = "vic"
token = "vic-token-00000000000003"
role = "viewer"

[[users]]
name = "root"
token = "root-token-0000000000004"
role = "admin"
"#;

/// A server on the example inventory with `auth` as its auth file.
fn server_with(auth: &str) -> (Files, ServerProcess) {
    let files = Files::new();
    let path = files.write("auth.toml", auth);
    let server =
        ServerProcess::start_with(example_inventory(), &["--auth".as_ref(), path.as_os_str()]);
    (files, server)
}

/// All task uids, as the admin sees them.
async fn all_tasks(admin: &Client) -> Vec<String> {
    success::<ListMaintenanceTasksResult>(&admin.list(None).await).tasks_uids
}

#[tokio::test]
async fn a_missing_or_unknown_ticket_is_unauthorized_everywhere() {
    let (_files, server) = server_with(USERS);
    let admin = server.client(Some(ROOT)).await;
    for c in [
        admin.with_ticket(None),
        admin.with_ticket(Some("not-a-token")),
    ] {
        refusal_of::<ListClusterNodesResult>(&c.list_nodes().await, StatusCode::Unauthorized);
        refusal_of::<MaintenanceTaskResult>(
            &c.create(node_locks("t-intruder", &[1])).await,
            StatusCode::Unauthorized,
        );
        refusal_of::<MaintenanceTaskResult>(&c.refresh("t-any").await, StatusCode::Unauthorized);
        refusal_of::<GetMaintenanceTaskResult>(&c.get("t-any").await, StatusCode::Unauthorized);
        refusal_of::<ListMaintenanceTasksResult>(&c.list(None).await, StatusCode::Unauthorized);
        let uid = ActionUid {
            task_uid: "t-any".into(),
            group_id: "0".into(),
            action_id: "a-1".into(),
        };
        refusal_of::<ManageActionResult>(&c.complete(vec![uid]).await, StatusCode::Unauthorized);
        let op = c.drop_task("t-any").await;
        refusal(&op, StatusCode::Unauthorized);
        assert!(op.result.is_none(), "{op:?}");
        refusal_of::<WhoAmIResult>(&c.who_am_i().await, StatusCode::Unauthorized);
        refusal_of::<ListDatabasesResult>(&c.list_databases().await, StatusCode::Unauthorized);
    }
    assert!(all_tasks(&admin).await.is_empty(), "nothing was created");
    let op = admin.get("t-intruder").await;
    assert_eq!(refusal(&op, StatusCode::BadRequest), "Task not found");
}

#[tokio::test]
async fn authorization_bearer_works_like_the_ydb_header() {
    let (_files, server) = server_with(USERS);
    let admin = server.client(Some(ROOT)).await;
    let alice = admin.with_bearer(ALICE);

    let me: WhoAmIResult = success(&alice.who_am_i().await);
    assert_eq!(me.user, "alice");
    assert!(!me.is_administration_allowed);

    let created: MaintenanceTaskResult = success(&alice.create(node_locks("t-bearer", &[1])).await);
    assert!(is_performed(states(&created.action_group_states)[0]));
    let mine: ListMaintenanceTasksResult = success(&admin.list(Some("alice")).await);
    assert_eq!(
        mine.tasks_uids,
        vec!["t-bearer".to_owned()],
        "alice owns it"
    );

    let bad = admin.with_bearer("not-a-token");
    refusal_of::<WhoAmIResult>(&bad.who_am_i().await, StatusCode::Unauthorized);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_create_or_manage() {
    let (_files, server) = server_with(USERS);
    let alice = server.client(Some(ALICE)).await;
    let vic = alice.with_ticket(Some(VIC));
    success::<MaintenanceTaskResult>(&alice.create(node_locks("t-alice", &[1])).await);
    let before = result_bytes::<GetMaintenanceTaskResult>(&alice.get("t-alice").await);

    let nodes: ListClusterNodesResult = success(&vic.list_nodes().await);
    assert_eq!(nodes.nodes.len(), 12);
    assert_eq!(all_tasks(&vic).await, vec!["t-alice".to_owned()]);
    success::<GetMaintenanceTaskResult>(&vic.get("t-alice").await);

    let msg = refusal_of::<MaintenanceTaskResult>(
        &vic.create(node_locks("t-vic", &[5])).await,
        StatusCode::Unauthorized,
    );
    assert!(msg.contains("vic"), "{msg}");
    refusal_of::<MaintenanceTaskResult>(&vic.refresh("t-alice").await, StatusCode::Unauthorized);
    refusal(&vic.drop_task("t-alice").await, StatusCode::Unauthorized);

    assert_eq!(all_tasks(&alice).await, vec!["t-alice".to_owned()]);
    assert_eq!(
        refusal(&alice.get("t-vic").await, StatusCode::BadRequest),
        "Task not found"
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&alice.get("t-alice").await),
        before,
        "the viewer changed nothing"
    );
}

#[tokio::test]
async fn an_operator_manages_only_their_own_tasks_and_an_admin_any() {
    let (_files, server) = server_with(USERS);
    let alice = server.client(Some(ALICE)).await;
    let bob = alice.with_ticket(Some(BOB));
    let root = alice.with_ticket(Some(ROOT));

    // Node 1 granted, node 2 waits for the cluster limit: a refresh would re-check it.
    let created: MaintenanceTaskResult = success(&alice.create(node_locks("t-a", &[1, 2])).await);
    let s = states(&created.action_group_states);
    assert!(is_performed(s[0]) && is_pending(s[1]), "{created:?}");
    let performed = uid_of(s[0]);
    let waiting = uid_of(s[1]);
    success::<MaintenanceTaskResult>(&alice.refresh("t-a").await);
    let before = result_bytes::<GetMaintenanceTaskResult>(&alice.get("t-a").await);

    let msg =
        refusal_of::<MaintenanceTaskResult>(&bob.refresh("t-a").await, StatusCode::Unauthorized);
    assert!(msg.contains("alice"), "names the owner: {msg}");
    refusal(&bob.drop_task("t-a").await, StatusCode::Unauthorized);
    refusal_of::<ManageActionResult>(
        &bob.complete(vec![performed.clone()]).await,
        StatusCode::Unauthorized,
    );
    refusal_of::<ManageActionResult>(
        &bob.complete(vec![waiting.clone()]).await,
        StatusCode::Unauthorized,
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&alice.get("t-a").await),
        before,
        "bob changed nothing, not even the refresh time"
    );
    // Bob may still create his own task; it waits behind alice's lock of node 1.
    let his: MaintenanceTaskResult = success(&bob.create(node_locks("t-b", &[1])).await);
    assert!(is_pending(states(&his.action_group_states)[0]));

    let refreshed: MaintenanceTaskResult = success(&root.refresh("t-a").await);
    assert_ne!(
        result_bytes::<GetMaintenanceTaskResult>(&alice.get("t-a").await),
        before,
        "the admin's refresh went through"
    );
    assert_eq!(states(&refreshed.action_group_states).len(), 2);
    success::<ManageActionResult>(&root.complete(vec![performed]).await);
    let got: GetMaintenanceTaskResult = success(&alice.get("t-a").await);
    assert_eq!(states(&got.action_group_states).len(), 1, "{got:?}");
    let op = root.drop_task("t-a").await;
    assert_eq!(status(&op), StatusCode::Success, "{op:?}");
    assert_eq!(
        refusal(&alice.get("t-a").await, StatusCode::BadRequest),
        "Task not found"
    );
    assert_eq!(all_tasks(&root).await, vec!["t-b".to_owned()]);
}

#[tokio::test]
async fn login_with_a_hashed_password_issues_a_working_token() {
    let hash = hash_password("carol's secret");
    let users = format!(
        "{USERS}\n[[users]]\nname = \"carol\"\npassword_hash = \"{hash}\"\nrole = \"operator\"\n"
    );
    let (_files, server) = server_with(&users);
    let c = server.client(None).await;

    let op = c.login("carol", "carol's secret").await;
    let login: LoginResult = success(&op);
    assert!(login.token.len() >= 20, "{login:?}");
    let carol = c.with_ticket(Some(&login.token));
    let me: WhoAmIResult = success(&carol.who_am_i().await);
    assert_eq!(me.user, "carol");
    success::<MaintenanceTaskResult>(&carol.create(node_locks("t-carol", &[1])).await);
    let admin = c.with_ticket(Some(ROOT));
    let hers: ListMaintenanceTasksResult = success(&admin.list(Some("carol")).await);
    assert_eq!(hers.tasks_uids, vec!["t-carol".to_owned()]);

    let op = c.login("carol", "carol's secreT").await;
    refusal_of::<LoginResult>(&op, StatusCode::Unauthorized);
    let op = c.login("nobody", "carol's secret").await;
    refusal_of::<LoginResult>(&op, StatusCode::Unauthorized);
    let op = c.login("alice", "").await;
    refusal_of::<LoginResult>(&op, StatusCode::Unauthorized);
    // A password argon2 would spend long on is refused before any check.
    let op = c.login("carol", &"x".repeat(1025)).await;
    let message = refusal_of::<LoginResult>(&op, StatusCode::BadRequest);
    assert!(message.contains("passwords at most 1024"), "{message}");
}

#[tokio::test]
async fn set_node_state_answers_with_grpc_statuses() {
    let (_files, server) = server_with(USERS);
    let channel = server.channel().await;
    let c = Client::new(channel.clone(), None);
    let mut api = ArbiterServiceClient::new(channel);
    let down = |node_id| SetNodeStateRequest {
        node_id,
        state: NodeState::Down as i32,
        reason: "e2e".into(),
    };

    let e = api
        .set_node_state(c.request(down(3)))
        .await
        .expect_err("no ticket");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = api
        .set_node_state(c.with_ticket(Some("not-a-token")).request(down(3)))
        .await
        .expect_err("unknown ticket");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    let e = api
        .set_node_state(c.with_ticket(Some(VIC)).request(down(3)))
        .await
        .expect_err("a viewer");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    let state_of = |nodes: &ListClusterNodesResult, id: u32| {
        nodes
            .nodes
            .iter()
            .find(|n| n.node_id == id)
            .map(|n| n.state)
    };
    let root = c.with_ticket(Some(ROOT));
    let nodes: ListClusterNodesResult = success(&root.list_nodes().await);
    assert_eq!(
        state_of(&nodes, 3),
        Some(ItemState::Up as i32),
        "refusals changed nothing"
    );

    api.set_node_state(c.with_ticket(Some(ALICE)).request(down(3)))
        .await
        .expect("an operator may");
    let nodes: ListClusterNodesResult = success(&root.list_nodes().await);
    assert_eq!(state_of(&nodes, 3), Some(ItemState::Down as i32));

    // Strings an agent sends are bounded like every other name.
    let long = SetNodeStateRequest {
        reason: "r".repeat(256),
        ..down(4)
    };
    let e = api
        .set_node_state(root.request(long))
        .await
        .expect_err("a long reason");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("reason is longer than 255"), "{e:?}");
    let beat = HeartbeatRequest {
        node_id: 4,
        version: Some("v".repeat(256)),
        start_time: None,
    };
    let e = api
        .heartbeat(root.request(beat))
        .await
        .expect_err("a long version");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("version is longer than 255"), "{e:?}");
    let nodes: ListClusterNodesResult = success(&root.list_nodes().await);
    assert_eq!(state_of(&nodes, 4), Some(ItemState::Up as i32), "unchanged");
}
