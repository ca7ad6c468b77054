//! Leases against a real one-member etcd: keep-alive holds a leased key, expiry deletes it,
//! revoke deletes at once.

use std::time::{Duration, Instant};

use arbiter_etcd::testing::EtcdCluster;
use arbiter_etcd::{CompareResult, TxnRequest, cmp_lease, op_put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_a_leased_key_and_expiry_deletes_it() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    // 2 s is etcd's minimum TTL with the harness's 1 s election timeout.
    let lease = etcd
        .lease_grant(Duration::from_secs(2))
        .await
        .expect("grant");
    assert!(lease.0 > 0);
    etcd.put("l/key", "held", Some(lease)).await.expect("put");
    let kv = etcd
        .get("l/key")
        .await
        .expect("get")
        .expect("the key exists");
    assert_eq!(kv.lease, lease.0);

    let txn = TxnRequest {
        compare: vec![cmp_lease("l/key", CompareResult::Equal, Some(lease))],
        success: vec![op_put("l/other", "x", Some(lease))],
        failure: vec![],
    };
    assert!(etcd.txn(txn, true).await.expect("txn").succeeded);

    // Renewed every 0.5 s for twice the TTL: the key stays.
    let held_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < held_until {
        let ttl = etcd.keep_alive_once(lease).await.expect("keep-alive");
        assert_eq!(ttl, Some(Duration::from_secs(2)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        etcd.get("l/key").await.expect("get").is_some(),
        "kept alive"
    );
    assert!(etcd.lease_time_to_live(lease).await.expect("ttl").is_some());

    // Without renewals the lease expires and takes its keys along.
    let deadline = Instant::now() + Duration::from_secs(15);
    while etcd.get("l/key").await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the leased key outlived its lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(etcd.get("l/other").await.expect("get").is_none());
    assert_eq!(
        etcd.keep_alive_once(lease).await.expect("keep-alive"),
        None,
        "the lease is gone"
    );
    assert_eq!(etcd.lease_time_to_live(lease).await.expect("ttl"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_deletes_leased_keys_at_once_and_is_idempotent() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    let lease = etcd
        .lease_grant(Duration::from_secs(60))
        .await
        .expect("grant");
    let other = etcd
        .lease_grant(Duration::from_secs(60))
        .await
        .expect("grant");
    assert_ne!(lease, other);
    etcd.put("r/key", "v", Some(lease)).await.expect("put");
    etcd.put("r/kept", "v", Some(other)).await.expect("put");

    etcd.lease_revoke(lease).await.expect("revoke");
    assert!(etcd.get("r/key").await.expect("get").is_none());
    assert!(etcd.get("r/kept").await.expect("get").is_some());
    assert_eq!(etcd.keep_alive_once(lease).await.expect("keep-alive"), None);
    etcd.lease_revoke(lease)
        .await
        .expect("revoking a gone lease is fine");
}
