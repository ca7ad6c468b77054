//! The caps on task watch streams (`--max-watches`, `--max-watches-per-user`) against the real
//! server: one stream past a cap is refused with RESOURCE_EXHAUSTED naming the option, and a
//! closed stream frees its slot.

use arbiter_e2e::proto::arbiter::v1::WatchMaintenanceTaskRequest;
use arbiter_e2e::proto::arbiter::v1::arbiter_service_client::ArbiterServiceClient;
use arbiter_e2e::proto::ydb::maintenance::MaintenanceTaskResult;
use arbiter_e2e::{Client, FIVE_NODES, Files, ServerProcess, node_locks, success};
use std::time::{Duration, Instant};

/// Opens a watch of `uid` and reads its first message; the status when refused.
async fn watch(
    c: &Client,
    uid: &str,
) -> Result<
    tonic::Streaming<arbiter_e2e::proto::arbiter::v1::WatchMaintenanceTaskResponse>,
    tonic::Status,
> {
    let mut s = ArbiterServiceClient::new(c.channel())
        .watch_maintenance_task(c.request(WatchMaintenanceTaskRequest {
            task_uid: uid.into(),
        }))
        .await?
        .into_inner();
    s.message().await?.expect("the state when the watch opened");
    Ok(s)
}

#[tokio::test]
async fn a_watch_past_a_cap_is_refused_naming_the_option_and_a_closed_one_frees_its_slot() {
    let files = Files::new();
    let server = ServerProcess::start_with(
        files.write("five.toml", FIVE_NODES),
        &["--max-watches", "3", "--max-watches-per-user", "2"],
    );
    let c = server.client(None).await;
    let _: MaintenanceTaskResult = success(&c.create(node_locks("t1", &[1])).await);

    let first = watch(&c, "t1").await.expect("the first watch");
    let _second = watch(&c, "t1").await.expect("the second watch");
    let refused = watch(&c, "t1").await.expect_err("over the per-user cap");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("--max-watches-per-user"),
        "{refused:?}"
    );

    // A closed stream gives its slot back (the server notices the close: poll with a bound).
    drop(first);
    let start = Instant::now();
    let _third = loop {
        match watch(&c, "t1").await {
            Ok(s) => break s,
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the closed watch never freed its slot"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
}

#[tokio::test]
async fn the_server_wide_cap_applies_below_the_per_user_one() {
    let files = Files::new();
    let server = ServerProcess::start_with(
        files.write("five.toml", FIVE_NODES),
        &["--max-watches", "2", "--max-watches-per-user", "5"],
    );
    let c = server.client(None).await;
    let _: MaintenanceTaskResult = success(&c.create(node_locks("t1", &[1])).await);
    let _a = watch(&c, "t1").await.expect("the first watch");
    let _b = watch(&c, "t1").await.expect("the second watch");
    let refused = watch(&c, "t1").await.expect_err("over the server's cap");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("at most 2 (--max-watches)"),
        "{refused:?}"
    );
}
