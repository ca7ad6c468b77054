//! The retry policy against a real three-member etcd: one member dead, one member stalled,
//! every member down and back.

use std::time::{Duration, Instant};

use arbiter_etcd::testing::EtcdCluster;
use arbiter_etcd::{
    CompareResult, EtcdError, EtcdOptions, TxnRequest, cmp_create_revision, cmp_mod_revision,
    op_put,
};

fn create_once(key: &str, value: &str) -> TxnRequest {
    TxnRequest {
        compare: vec![cmp_create_revision(key, CompareResult::Equal, 0)],
        success: vec![op_put(key, value, None)],
        failure: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_member_killed_200_consecutive_calls_succeed() {
    let mut cluster = EtcdCluster::three();
    let etcd = cluster.client();
    etcd.put("warm", "up", None).await.expect("put");
    // Kill the member the client is connected to (endpoint 0, where every new client starts).
    let dead = cluster
        .member_of(&etcd.current_endpoint())
        .expect("a member");
    assert_eq!(dead, 0);
    cluster.kill9(dead);

    let started = Instant::now();
    for i in 0..200 {
        // Every tenth call on a new client, which tries the dead endpoint first.
        let client = if i % 10 == 5 {
            cluster.client()
        } else {
            etcd.clone()
        };
        let key = format!("f/{i:03}");
        match i % 4 {
            0 => {
                client
                    .get("warm")
                    .await
                    .unwrap_or_else(|e| panic!("call {i}: get: {e}"));
            }
            1 => {
                let r = client
                    .txn(create_once(&key, "v"), true)
                    .await
                    .unwrap_or_else(|e| panic!("call {i}: txn: {e}"));
                assert!(r.succeeded, "call {i}");
            }
            2 => {
                let lease = client
                    .lease_grant(Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|e| panic!("call {i}: lease grant: {e}"));
                client
                    .keep_alive_once(lease)
                    .await
                    .unwrap_or_else(|e| panic!("call {i}: keep-alive: {e}"))
                    .unwrap_or_else(|| panic!("call {i}: lease gone"));
            }
            _ => {
                client
                    .range_prefix("f/", 0)
                    .await
                    .unwrap_or_else(|e| panic!("call {i}: range: {e}"));
            }
        }
    }
    assert_ne!(cluster.member_of(&etcd.current_endpoint()), Some(dead));
    let (kvs, _) = etcd.range_prefix("f/", 0).await.expect("range");
    assert_eq!(kvs.len(), 50, "every txn applied exactly once");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_makes_an_unsafe_txn_unknown_and_a_safe_one_retried() {
    let cluster = EtcdCluster::three();
    let etcd = cluster.client_with(EtcdOptions {
        request_timeout: Duration::from_millis(700),
        retry_deadline: Duration::from_secs(10),
        ..EtcdOptions::default()
    });
    let revision = etcd.put("s/key", "0", None).await.expect("put");
    let stalled = cluster
        .member_of(&etcd.current_endpoint())
        .expect("a member");
    cluster.sigstop(stalled);

    // The request reaches the stopped process's socket and gets no answer.
    let guarded = |rev: i64, value: &str| TxnRequest {
        compare: vec![cmp_mod_revision("s/key", CompareResult::Equal, rev)],
        success: vec![op_put("s/key", value, None)],
        failure: vec![],
    };
    let err = etcd
        .txn(guarded(revision, "1"), false)
        .await
        .expect_err("outcome unknown");
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert!(
        matches!(&err, EtcdError::Unknown { endpoint, .. } if *endpoint == cluster.endpoint(stalled)),
        "{err:?}"
    );
    assert!(err.to_string().contains("outcome unknown"), "{err}");

    // The client moved on; a resend-safe txn and reads go through the other members.
    assert_ne!(cluster.member_of(&etcd.current_endpoint()), Some(stalled));
    let r = etcd
        .txn(guarded(revision, "2"), true)
        .await
        .expect("safe txn");
    assert!(r.succeeded);
    cluster.sigcont(stalled);
    let kv = etcd.get("s/key").await.expect("get").expect("exists");
    assert_eq!(kv.value, b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_member_down_calls_fail_in_time_naming_the_endpoints_and_recover() {
    let mut cluster = EtcdCluster::three();
    let deadline = Duration::from_secs(2);
    let etcd = cluster.client_with(EtcdOptions {
        retry_deadline: deadline,
        ..EtcdOptions::default()
    });
    etcd.put("d/key", "v", None).await.expect("put");
    cluster.stop_all();

    let started = Instant::now();
    let err = etcd.get("d/key").await.expect_err("no member runs");
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(1),
        "took {took:?}"
    );
    match &err {
        EtcdError::Unavailable {
            endpoints,
            last_error,
        } => {
            assert_eq!(*endpoints, cluster.endpoints());
            assert!(last_error.contains("connect"), "{last_error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(err.is_retryable());
    for endpoint in cluster.endpoints() {
        assert!(err.to_string().contains(&endpoint), "{err}");
    }
    // Nothing could be sent, so even a write that is not resend-safe is Unavailable, not
    // Unknown.
    let err = etcd
        .txn(create_once("d/other", "v"), false)
        .await
        .expect_err("no member runs");
    assert!(matches!(err, EtcdError::Unavailable { .. }), "{err:?}");

    cluster.start_all();
    let kv = etcd
        .get("d/key")
        .await
        .expect("get after start_all")
        .expect("the data survived");
    assert_eq!(kv.value, b"v");
    assert!(
        etcd.txn(create_once("d/other", "v"), false)
            .await
            .expect("txn")
            .succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_rejoins_on_its_ports_and_data_dir() {
    let mut cluster = EtcdCluster::three();
    let etcd = cluster.client();
    etcd.put("m/before", "1", None).await.expect("put");
    cluster.kill9(1);
    assert!(!cluster.is_running(1));
    // Member 1 may have been the leader: a plain put could then end as "outcome unknown";
    // a create-once txn is resent safely until a new leader applies it.
    let r = etcd
        .txn(create_once("m/while-down", "2"), true)
        .await
        .expect("write with one member down");
    assert!(r.succeeded);
    cluster.restart(1);
    assert!(cluster.is_running(1));
    assert!(cluster.data_dir(1).join("member").is_dir());

    // A client of member 1 alone reads both writes: it kept its data and caught up.
    let only = arbiter_etcd::Etcd::connect(&[cluster.endpoint(1)], EtcdOptions::default())
        .expect("client");
    let (kvs, _) = only.range_prefix("m/", 0).await.expect("range on member 1");
    let keys: Vec<&[u8]> = kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, [b"m/before".as_slice(), b"m/while-down".as_slice()]);
}
