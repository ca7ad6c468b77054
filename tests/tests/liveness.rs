//! Node liveness, the task watch and inventory reloads, end to end against the real server:
//!
//! - the watch delivers a grant with no Refresh from anyone;
//! - a reload that would strand a lock is refused with nothing changed; SIGHUP with a valid
//!   file adds a node;
//! - a heartbeat timeout makes a node DOWN (and it counts), a heartbeat brings it back;
//! - after its lock is completed, a node with an agent is DOWN ("restarting since ...") until
//!   its next heartbeat, then settles; a node without one only settles.

use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::arbiter::v1::{
    HeartbeatRequest, ListNodesRequest, NodeStatus, ReloadInventoryRequest,
    WatchMaintenanceTaskRequest, WatchMaintenanceTaskResponse,
};
use arbiter_e2e::proto::ydb::maintenance::{
    GetMaintenanceTaskResult, ItemState, MaintenanceTaskResult,
};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    Client, FIVE_NODES, Files, ServerProcess, is_pending, is_performed, node_locks, node_of,
    states, status, success, uid_of,
};
use std::time::{Duration, Instant};

/// The longest any awaited change may take.
const BOUND: Duration = Duration::from_secs(10);

fn arbiter(c: &Client) -> ArbiterServiceClient<tonic::transport::Channel> {
    ArbiterServiceClient::new(c.channel())
}

async fn nodes(c: &Client) -> Vec<NodeStatus> {
    arbiter(c)
        .list_nodes(c.request(ListNodesRequest {}))
        .await
        .expect("ListNodes")
        .into_inner()
        .nodes
}

async fn node(c: &Client, id: u32) -> NodeStatus {
    nodes(c)
        .await
        .into_iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("node {id} is listed"))
}

async fn beat(c: &Client, id: u32) {
    arbiter(c)
        .heartbeat(c.request(HeartbeatRequest {
            node_id: id,
            version: None,
            start_time: None,
        }))
        .await
        .expect("Heartbeat");
}

/// Polls node `id` until `done` holds (bounded by [`BOUND`]); returns it and the time taken.
async fn wait_node(
    c: &Client,
    id: u32,
    done: impl Fn(&NodeStatus) -> bool,
) -> (NodeStatus, Duration) {
    let start = Instant::now();
    loop {
        let n = node(c, id).await;
        if done(&n) {
            return (n, start.elapsed());
        }
        assert!(start.elapsed() < BOUND, "node {id} never got there: {n:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_state(n: &NodeStatus, s: ItemState) -> bool {
    n.state == s as i32
}

/// FIVE_NODES without its last node (node 5).
fn without_node_5() -> String {
    let cut = FIVE_NODES.rfind("[[nodes]]").expect("a last node");
    FIVE_NODES[..cut].to_owned()
}

fn with_node_6() -> String {
    format!("{FIVE_NODES}\n[[nodes]]\nid = 6\nhost = \"node-6.example\"\nport = 19001\n")
}

/// The next update of a watch (bounded by [`BOUND`]).
async fn next(
    stream: &mut tonic::Streaming<WatchMaintenanceTaskResponse>,
) -> WatchMaintenanceTaskResponse {
    tokio::time::timeout(BOUND, stream.message())
        .await
        .expect("an update in time")
        .expect("the stream is fine")
        .expect("the stream is open")
}

#[tokio::test]
async fn the_watch_delivers_a_grant_without_any_refresh() {
    let files = Files::new();
    let server = ServerProcess::start(files.write("five.toml", FIVE_NODES));
    let c = server.client(Some("alice")).await;

    let first: MaintenanceTaskResult = success(&c.create(node_locks("t-first", &[1])).await);
    let held = states(&first.action_group_states)[0].clone();
    assert!(is_performed(&held), "{first:?}");
    let second: MaintenanceTaskResult = success(&c.create(node_locks("t-second", &[1])).await);
    let waiting = states(&second.action_group_states)[0];
    assert!(is_pending(waiting), "node 1 is taken: {second:?}");
    assert!(waiting.details.contains("t-first"), "{waiting:?}");

    let mut stream = arbiter(&c)
        .watch_maintenance_task(c.request(WatchMaintenanceTaskRequest {
            task_uid: "t-second".into(),
        }))
        .await
        .expect("WatchMaintenanceTask")
        .into_inner();
    let now = next(&mut stream).await;
    assert_eq!(now.status, StatusCode::Success as i32, "{now:?}");
    let now = now.result.expect("a state");
    assert!(is_pending(states(&now.action_group_states)[0]), "{now:?}");

    // Only the first task's completion; nobody refreshes the second task.
    success::<arbiter_e2e::proto::ydb::maintenance::ManageActionResult>(
        &c.complete(vec![uid_of(&held)]).await,
    );
    let granted = loop {
        let update = next(&mut stream).await;
        assert_eq!(update.status, StatusCode::Success as i32, "{update:?}");
        let result = update.result.expect("a state");
        let s = states(&result.action_group_states)[0].clone();
        if is_performed(&s) {
            break s;
        }
    };
    assert_eq!(node_of(&granted), 1);
    assert!(granted.action_uid.is_some(), "{granted:?}");
    // The grant is the server's state, not just the stream's: Get (which re-checks nothing)
    // shows it too.
    let got: GetMaintenanceTaskResult = success(&c.get("t-second").await);
    assert!(is_performed(states(&got.action_group_states)[0]), "{got:?}");
    assert_eq!(node(&c, 1).await.lock_task, "t-second");
}

#[tokio::test]
async fn a_reload_that_would_strand_a_lock_is_refused_and_sighup_adds_a_node() {
    let files = Files::new();
    let inventory = files.write("inventory.toml", FIVE_NODES);
    let server = ServerProcess::start(&inventory);
    let c = server.client(Some("alice")).await;
    let held: MaintenanceTaskResult = success(&c.create(node_locks("t-hold", &[5])).await);
    assert!(is_performed(states(&held.action_group_states)[0]));

    files.write("inventory.toml", &without_node_5());
    let refused = arbiter(&c)
        .reload_inventory(c.request(ReloadInventoryRequest {}))
        .await
        .expect_err("a reload that drops a locked node is refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let msg = refused.message();
    assert!(
        msg.contains("node 5") && msg.contains("'t-hold'"),
        "names the node and the task: {msg}"
    );
    // Nothing changed.
    let listed = nodes(&c).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(listed[4].lock_task, "t-hold");
    let got: GetMaintenanceTaskResult = success(&c.get("t-hold").await);
    assert!(is_performed(states(&got.action_group_states)[0]), "{got:?}");

    // A valid file, read on SIGHUP: node 6 appears, the lock stays.
    files.write("inventory.toml", &with_node_6());
    server.send_signal(rustix::process::Signal::HUP);
    let start = Instant::now();
    let listed = loop {
        let listed = nodes(&c).await;
        if listed.len() == 6 {
            break listed;
        }
        assert!(
            start.elapsed() < BOUND,
            "no node 6 after SIGHUP: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed[5].host, "node-6.example");
    assert_eq!(
        listed[4].lock_task, "t-hold",
        "the lock survives the reload"
    );
    let grant: MaintenanceTaskResult = success(&c.create(node_locks("t-new", &[6])).await);
    assert!(
        is_performed(states(&grant.action_group_states)[0]),
        "{grant:?}"
    );
}

#[tokio::test]
async fn a_heartbeat_timeout_makes_a_node_down_and_a_heartbeat_brings_it_back() {
    let files = Files::new();
    let server = ServerProcess::start_with(
        files.write("five.toml", FIVE_NODES),
        &["--heartbeat-timeout", "1s"],
    );
    let c = server.client(Some("alice")).await;

    beat(&c, 2).await;
    let beaten = Instant::now();
    let n = node(&c, 2).await;
    assert!(
        n.monitored && n.available && is_state(&n, ItemState::Up),
        "{n:?}"
    );
    assert!(n.last_heartbeat.is_some(), "{n:?}");

    let (n, _) = wait_node(&c, 2, |n| is_state(n, ItemState::Down)).await;
    assert!(
        beaten.elapsed() >= Duration::from_millis(900),
        "down only after the timeout"
    );
    assert!(!n.available, "{n:?}");
    assert!(n.detail.contains("no heartbeat for 1s"), "{n:?}");

    // The DOWN node counts against the limit (at most two unavailable).
    let t: MaintenanceTaskResult = success(&c.create(node_locks("t-two", &[3, 4])).await);
    let s = states(&t.action_group_states);
    assert!(
        is_performed(s[0]),
        "node 3 fits next to the down node 2: {t:?}"
    );
    assert!(is_pending(s[1]), "node 4 would be the third: {t:?}");
    assert!(s[1].details.contains("down 1"), "{:?}", s[1]);

    beat(&c, 2).await;
    let n = node(&c, 2).await;
    assert!(
        is_state(&n, ItemState::Up) && n.available,
        "back at once: {n:?}"
    );
    assert!(n.detail.is_empty(), "{n:?}");
    let t: MaintenanceTaskResult = success(&c.refresh("t-two").await);
    assert!(
        states(&t.action_group_states)
            .iter()
            .all(|s| is_performed(s)),
        "node 2 is back, so node 4 fits: {t:?}"
    );
}

#[tokio::test]
async fn after_completion_a_monitored_node_is_down_until_its_next_heartbeat_then_settles() {
    let files = Files::new();
    let server = ServerProcess::start_with(
        files.write("five.toml", FIVE_NODES),
        &["--settle-time", "1s"],
    );
    let c = server.client(Some("alice")).await;
    beat(&c, 1).await;

    let t: MaintenanceTaskResult = success(&c.create(node_locks("t-restart", &[1])).await);
    let s = states(&t.action_group_states)[0].clone();
    assert!(is_performed(&s), "{t:?}");
    assert!(
        is_state(&node(&c, 1).await, ItemState::Up),
        "locked but still up"
    );
    success::<arbiter_e2e::proto::ydb::maintenance::ManageActionResult>(
        &c.complete(vec![uid_of(&s)]).await,
    );

    let n = node(&c, 1).await;
    assert!(is_state(&n, ItemState::Down), "restarting: {n:?}");
    assert!(!n.available && n.lock_task.is_empty(), "{n:?}");
    assert!(
        n.detail.contains("node 1 restarting since") && n.detail.contains("not seen up"),
        "{n:?}"
    );
    // It still counts: with node 1 restarting, only one more node fits (at most two).
    let more: MaintenanceTaskResult = success(&c.create(node_locks("t-more", &[2, 3])).await);
    let ms = states(&more.action_group_states);
    assert!(is_performed(ms[0]) && is_pending(ms[1]), "{more:?}");
    assert_eq!(status(&c.drop_task("t-more").await), StatusCode::Success);

    beat(&c, 1).await;
    let n = node(&c, 1).await;
    assert!(is_state(&n, ItemState::Up), "seen up: {n:?}");
    assert!(!n.available && n.detail.contains("settling until"), "{n:?}");
    let (_, took) = wait_node(&c, 1, |n| n.available).await;
    assert!(
        took >= Duration::from_millis(700),
        "settles for about 1s, took {took:?}"
    );
    assert!(node(&c, 1).await.detail.is_empty());

    // A node without an agent cannot be seen coming back: it only settles.
    let t: MaintenanceTaskResult = success(&c.create(node_locks("t-quiet", &[4])).await);
    let s = states(&t.action_group_states)[0].clone();
    success::<arbiter_e2e::proto::ydb::maintenance::ManageActionResult>(
        &c.complete(vec![uid_of(&s)]).await,
    );
    let n = node(&c, 4).await;
    assert!(!n.monitored && is_state(&n, ItemState::Up), "{n:?}");
    assert!(!n.available && n.detail.contains("settling until"), "{n:?}");
    wait_node(&c, 4, |n| n.available).await;
}
