//! Graceful shutdown: SIGTERM exits with code 0, and a restart shows all committed state.

use arbiter_e2e::proto::ydb::maintenance::{
    GetMaintenanceTaskResult, ListMaintenanceTasksResult, MaintenanceTaskResult,
};
use arbiter_e2e::{
    FIVE_NODES, Files, ServerProcess, is_pending, is_performed, node_locks, result_bytes, states,
    success,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_a_restart_shows_every_committed_change() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start(&inventory);
    let c = server.client(Some("e2e-user")).await;

    success::<MaintenanceTaskResult>(&c.create(node_locks("t-1", &[1])).await);
    let part: MaintenanceTaskResult = success(&c.create(node_locks("t-2", &[2, 3])).await);
    let s = states(&part.action_group_states);
    assert!(is_performed(s[0]) && is_pending(s[1]), "{part:?}");
    // Refresh changes last_refresh_time: the restart must show the refreshed task.
    success::<MaintenanceTaskResult>(&c.refresh("t-2").await);
    let t1 = result_bytes::<GetMaintenanceTaskResult>(&c.get("t-1").await);
    let t2 = result_bytes::<GetMaintenanceTaskResult>(&c.get("t-2").await);
    let list = result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await);

    // The client's connection stays open (and responsive: this runtime has worker threads
    // that keep serving it while this thread waits) while the server shuts down.
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exit: {status:?}");
    drop(c);

    server.restart();
    let c = server.client(Some("e2e-user")).await;
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("t-1").await),
        t1
    );
    assert_eq!(
        result_bytes::<GetMaintenanceTaskResult>(&c.get("t-2").await),
        t2
    );
    assert_eq!(
        result_bytes::<ListMaintenanceTasksResult>(&c.list(None).await),
        list
    );
    // The locks are live again: node 1 is still taken.
    let after: MaintenanceTaskResult = success(&c.create(node_locks("t-3", &[1])).await);
    assert!(
        is_pending(states(&after.action_group_states)[0]),
        "{after:?}"
    );

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "second SIGTERM exit: {status:?}");
}

/// The grace period this test gives the server (`--shutdown-grace`).
const GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A client that opened an HTTP/2 connection and then stopped reading (a hung process, a
/// partitioned network) must not keep the server alive past its grace period.
#[tokio::test]
async fn sigterm_exits_after_the_grace_period_even_with_a_stalled_client() {
    use std::io::Write as _;
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    let mut server = ServerProcess::start_with(&inventory, &["--shutdown-grace", "1s"]);
    let c = server.client(Some("e2e-user")).await;
    success::<MaintenanceTaskResult>(&c.create(node_locks("t-1", &[1])).await);
    drop(c);

    // The HTTP/2 preface and an empty SETTINGS frame, then silence: the socket is never read.
    let mut stalled = std::net::TcpStream::connect(server.addr()).expect("connect");
    stalled
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("preface");

    let started = std::time::Instant::now();
    let status = server.terminate_within(GRACE + std::time::Duration::from_secs(10));
    let waited = started.elapsed();
    drop(stalled);
    let status = status.unwrap_or_else(|| panic!("no exit {waited:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "{status:?}");

    // What was committed is still there.
    server.restart();
    let c = server.client(Some("e2e-user")).await;
    success::<arbiter_e2e::proto::ydb::maintenance::GetMaintenanceTaskResult>(&c.get("t-1").await);
}

/// A supervisor may signal the moment it reads `listening on`. The handlers must already be
/// installed by then: a SIGHUP reloads (the server keeps serving) and a SIGTERM shuts down
/// cleanly (exit 0), never the default action that kills the process.
// Multi-threaded, so that the client's connection answers the server's GOAWAY while this
// thread waits for the exit (otherwise every round waits out the grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn signals_sent_right_after_the_readiness_line_are_handled() {
    let files = Files::new();
    let inventory = files.write("five.toml", FIVE_NODES);
    // A few rounds: the window this guards is short, and a round costs a process start.
    for _ in 0..5 {
        let mut server = ServerProcess::start(&inventory);
        let status = server.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "SIGTERM right after start: {status:?}"
        );

        let mut server = ServerProcess::start(&inventory);
        server.send_signal(rustix::process::Signal::HUP);
        let c = server.client(Some("e2e-user")).await;
        success::<ListMaintenanceTasksResult>(&c.list(None).await);
        drop(c);
        let status = server.terminate();
        assert_eq!(status.code(), Some(0), "SIGTERM after SIGHUP: {status:?}");
    }
}
