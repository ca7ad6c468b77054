//! What the server checks when it starts on an existing data directory, and completions that
//! name an action by the wrong group.

use arbiter_e2e::proto::ydb::maintenance::{ActionUid, MaintenanceTaskResult};
use arbiter_e2e::proto::ydb::status_ids::StatusCode;
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, is_performed, node_locks, refusal, run_to_exit, states,
    success, uid_of,
};

/// A store holding a lock on node 5, and an inventory without node 5: starting would silently
/// drop the lock, so the server refuses (exit 2, naming the inventory, the node and the task).
// Multi-threaded, so that the client's connection answers the server's GOAWAY while this
// thread waits for the server to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_server_does_not_start_on_an_inventory_that_strands_a_stored_lock() {
    let files = Files::new();
    let five = files.write("five.toml", FIVE_NODES);
    let four = files.write(
        "four.toml",
        &FIVE_NODES.replace(
            "[[nodes]]\nid = 5\nhost = \"node-5.example\"\nport = 19001\n",
            "",
        ),
    );
    let mut server = ServerProcess::start(&five);
    let c = server.client(Some("e2e-user")).await;
    let r: MaintenanceTaskResult = success(&c.create(node_locks("t-5", &[5])).await);
    assert!(is_performed(states(&r.action_group_states)[0]), "{r:?}");
    drop(c);
    assert_eq!(server.terminate().code(), Some(0));

    let data = server.data_dir();
    let out = run_to_exit(
        &[
            "--inventory".as_ref(),
            four.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("four.toml"), "{stderr}");
    assert!(stderr.contains("node 5 (task 't-5'"), "{stderr}");

    // With the old inventory everything is still there.
    server.restart();
    let c = server.client(Some("e2e-user")).await;
    success::<arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult>(&c.get("t-5").await);
}

/// On a restart the inventory is read while the store loads. A JSON inventory with a problem is
/// still reported with its key path (the fast reader gives up, the checking one names it), before
/// a damaged store is, and a good one restarts the server with its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_restart_reports_the_inventory_first_and_keeps_the_state() {
    let files = Files::new();
    let good: toml::Table = toml::from_str(FIVE_NODES).expect("five nodes");
    let mut doc = serde_json::to_value(&good).expect("as JSON");
    let inventory = files.write("five.json", &doc.to_string());
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;
    let r: MaintenanceTaskResult = success(&c.create(node_locks("t-1", &[1])).await);
    assert!(is_performed(states(&r.action_group_states)[0]), "{r:?}");
    drop(c);
    assert_eq!(server.terminate().code(), Some(0));
    let data = server.data_dir();
    let start = |inventory: &std::path::Path| {
        run_to_exit(
            &[
                "--inventory".as_ref(),
                inventory.as_os_str(),
                "--data-dir".as_ref(),
                data.as_os_str(),
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
            ],
            "",
        )
    };

    // A port out of range on the third node.
    doc["nodes"][2]["port"] = 70_000.into();
    let bad = files.write("bad.json", &doc.to_string());
    let out = start(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nodes[2] (id 3).port: 70000 is not a port number"),
        "{stderr}"
    );

    // The same inventory beside a damaged store: the inventory is what is reported.
    let store = data.join("arbiter.redb");
    let intact = std::fs::read(&store).expect("read the store");
    let mut damaged = intact.clone();
    // Everything past the header overwritten with noise.
    let mut x: u64 = 0x5eed;
    for b in damaged.iter_mut().skip(4096) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        *b = (x >> 56) as u8;
    }
    std::fs::write(&store, &damaged).expect("damage the store");
    let out = start(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(!stderr.contains("arbiter.redb"), "{stderr}");
    // (With the good inventory that store is refused, and named.)
    let out = start(&inventory);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("arbiter.redb"), "{stderr}");
    std::fs::write(&store, &intact).expect("put the store back");

    // With the good inventory the task is still there.
    server.restart();
    let c = server.client(Some("e2e-user")).await;
    success::<arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult>(&c.get("t-1").await);
}

/// ydbops sends action uids back verbatim; one that names another group is refused and
/// completes nothing.
#[tokio::test]
async fn complete_refuses_a_uid_with_the_wrong_group() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;
    let r: MaintenanceTaskResult = success(&c.create(node_locks("t", &[1])).await);
    let right = uid_of(states(&r.action_group_states)[0]);
    let wrong = ActionUid {
        group_id: "5".into(),
        ..right.clone()
    };
    assert_eq!(
        refusal(&c.complete(vec![wrong]).await, StatusCode::BadRequest),
        "Action not found"
    );
    success::<arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult>(&c.get("t").await);
    // YDB leaves group_id empty; that is accepted.
    let bare = ActionUid {
        group_id: String::new(),
        ..right
    };
    success::<arbiter_e2e::proto::ydb::maintenance::ManageActionResult>(
        &c.complete(vec![bare]).await,
    );
}
