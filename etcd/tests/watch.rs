//! Watches against real etcd: order, and resuming on another member after the watched
//! member is killed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arbiter_etcd::testing::EtcdCluster;
use arbiter_etcd::{
    CompareResult, Etcd, EtcdOptions, EventType, TxnRequest, Watcher, cmp_create_revision, op_put,
};

/// The next batch within a bound.
async fn next(watcher: &mut Watcher) -> arbiter_etcd::WatchBatch {
    tokio::time::timeout(Duration::from_secs(20), watcher.next())
        .await
        .expect("a watch batch within 20 s")
        .expect("the watch has not ended")
        .expect("no watch error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_delivers_events_in_revision_order() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    let start = etcd.put("unrelated", "x", None).await.expect("put");
    let mut watcher = etcd.watch_prefix("w/", start + 1);

    let mut written = Vec::new();
    for i in 0..20 {
        written.push(
            etcd.put(format!("w/{}", i % 7), format!("{i}"), None)
                .await
                .expect("put"),
        );
    }
    etcd.put("other/k", "not watched", None).await.expect("put");
    let deleted = etcd.delete_prefix("w/").await.expect("delete");
    assert_eq!(deleted, 7);

    let mut seen = Vec::new();
    while seen.len() < 27 {
        let batch = next(&mut watcher).await;
        assert!(!batch.events.is_empty());
        for event in batch.events {
            let kv = event.kv.expect("an event has a kv");
            assert!(kv.mod_revision <= batch.revision);
            seen.push((
                event.r#type,
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
            ));
        }
    }
    let puts: Vec<i64> = seen[..20].iter().map(|(_, rev, _)| *rev).collect();
    assert_eq!(puts, written, "puts in write order");
    assert!(
        seen[..20]
            .iter()
            .all(|(t, _, _)| *t == EventType::Put as i32)
    );
    assert!(
        seen[20..]
            .iter()
            .all(|(t, _, _)| *t == EventType::Delete as i32)
    );
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "revision order");
    assert!(seen.iter().all(|(_, _, key)| key.starts_with("w/")));
    assert_eq!(watcher.next_revision(), seen[26].1 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_on_another_member_when_its_member_is_killed() {
    let mut cluster = EtcdCluster::three();
    let etcd = cluster.client();
    let start = etcd.put("start", "x", None).await.expect("put");
    let mut watcher = etcd.watch_prefix("w/", start + 1);
    let watched = cluster
        .member_of(&watcher.endpoint())
        .expect("the watcher's member");

    // The writer uses only the two other members, and resend-safe create-once txns, so
    // that every key is written exactly once even across the killed member's leadership.
    let others: Vec<String> = (0..3)
        .filter(|&i| i != watched)
        .map(|i| cluster.endpoint(i))
        .collect();
    let writer = Etcd::connect(
        &others,
        EtcdOptions {
            retry_deadline: Duration::from_secs(15),
            ..EtcdOptions::default()
        },
    )
    .expect("writer");
    const KEYS: usize = 60;
    let writes = tokio::spawn(async move {
        for i in 0..KEYS {
            let key = format!("w/{i:03}");
            let txn = TxnRequest {
                compare: vec![cmp_create_revision(key.clone(), CompareResult::Equal, 0)],
                success: vec![op_put(key, format!("{i}"), None)],
                failure: vec![],
            };
            writer
                .txn(txn, true)
                .await
                .expect("write through the other members");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let mut revisions = Vec::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while revisions.len() < KEYS {
        assert!(
            Instant::now() < deadline,
            "saw only {} of {KEYS} events",
            revisions.len()
        );
        let batch = next(&mut watcher).await;
        for event in batch.events {
            revisions.push(event.kv.expect("kv").mod_revision);
        }
        if !killed && revisions.len() >= 15 {
            cluster.kill9(watched);
            killed = true;
        }
    }
    writes.await.expect("the writer finished");
    assert!(killed);
    assert_ne!(
        cluster.member_of(&watcher.endpoint()),
        Some(watched),
        "moved to another member"
    );

    // Exactly the revisions the keys were written at: each once, in order.
    let (kvs, _) = etcd.range_prefix("w/", 0).await.expect("range");
    assert_eq!(kvs.len(), KEYS);
    let written: Vec<i64> = kvs
        .iter()
        .map(|kv| kv.mod_revision)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(revisions, written, "every revision exactly once, in order");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watcher.next())
            .await
            .is_err(),
        "no duplicates after the last write"
    );
}
