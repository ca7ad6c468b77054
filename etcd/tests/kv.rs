//! Key-value calls against a real one-member etcd: reads at a revision across pages, guarded
//! txns, etcd's refusals, compaction.

use std::time::Duration;

use arbiter_etcd::pb::etcdserverpb::response_op::Response;
use arbiter_etcd::testing::EtcdCluster;
use arbiter_etcd::{
    CompareResult, EtcdError, EtcdOptions, TxnRequest, cmp_create_revision, cmp_mod_revision,
    cmp_value, cmp_version, op_delete, op_get, op_put,
};

fn value_of(kv: &arbiter_etcd::KeyValue) -> String {
    String::from_utf8_lossy(&kv.value).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_and_a_paged_range_at_one_revision() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client_with(EtcdOptions {
        page_size: 10,
        ..EtcdOptions::default()
    });
    assert!(etcd.get("p/missing").await.expect("get").is_none());

    // 35 keys under the prefix (3.5 pages of 10), plus neighbours outside it.
    for i in 0..35 {
        etcd.put(format!("p/{i:03}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    etcd.put("p0", "outside", None).await.expect("put");
    let at = etcd.put("o", "outside", None).await.expect("put");

    let kv = etcd.get("p/007").await.expect("get").expect("p/007 exists");
    assert_eq!(value_of(&kv), "v7");

    // Change the prefix after `at`: overwrite 5, delete 3, add 2.
    for i in 0..5 {
        etcd.put(format!("p/{i:03}"), "new", None)
            .await
            .expect("put");
    }
    for i in 30..33 {
        let deleted = etcd
            .txn(
                TxnRequest {
                    success: vec![op_delete(format!("p/{i:03}"))],
                    ..TxnRequest::default()
                },
                false,
            )
            .await
            .expect("delete");
        assert!(deleted.succeeded);
    }
    etcd.put("p/100", "added", None).await.expect("put");
    let latest = etcd.put("p/101", "added", None).await.expect("put");

    // At `at`: exactly the 35 original keys and values, in key order, across 4 pages.
    let (kvs, revision) = etcd
        .range_prefix("p/", at)
        .await
        .expect("range at a revision");
    assert_eq!(revision, at);
    let keys: Vec<String> = kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    let expected: Vec<String> = (0..35).map(|i| format!("p/{i:03}")).collect();
    assert_eq!(keys, expected);
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(value_of(kv), format!("v{i}"));
        assert!(kv.mod_revision <= at);
    }

    // The latest: 35 - 3 + 2 keys, at the latest revision.
    let (kvs, revision) = etcd.range_prefix("p/", 0).await.expect("range");
    assert_eq!(revision, latest);
    assert_eq!(kvs.len(), 34);
    assert_eq!(value_of(&kvs[0]), "new");
    assert_eq!(value_of(&kvs[33]), "added");

    assert_eq!(etcd.delete_prefix("p/").await.expect("delete prefix"), 34);
    assert!(
        etcd.range_prefix("p/", 0)
            .await
            .expect("range")
            .0
            .is_empty()
    );
    assert!(
        etcd.get("p0").await.expect("get").is_some(),
        "p0 is outside p/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_txn_passes_once_and_then_fails_its_compare() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    let create = |value: &str| TxnRequest {
        compare: vec![cmp_create_revision("leader", CompareResult::Equal, 0)],
        success: vec![op_put("leader", value, None)],
        failure: vec![op_get("leader")],
    };

    let first = etcd.txn(create("a"), true).await.expect("txn");
    assert!(first.succeeded, "the key did not exist");
    let created = first.header.expect("header").revision;

    let second = etcd.txn(create("b"), true).await.expect("txn");
    assert!(!second.succeeded, "the key exists now");
    match second.responses.first().and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => {
            assert_eq!(value_of(&range.kvs[0]), "a");
            assert_eq!(range.kvs[0].create_revision, created);
        }
        other => panic!("expected the failure branch's range, got {other:?}"),
    }

    // A guard on the mod revision: passes at the right revision, fails at a stale one.
    let update = |rev: i64| TxnRequest {
        compare: vec![
            cmp_mod_revision("leader", CompareResult::Equal, rev),
            cmp_version("leader", CompareResult::Equal, 1),
            cmp_value("leader", CompareResult::Equal, "a"),
        ],
        success: vec![op_put("leader", "c", None)],
        failure: vec![],
    };
    assert!(
        etcd.txn(update(created), false)
            .await
            .expect("txn")
            .succeeded
    );
    assert!(
        !etcd
            .txn(update(created), false)
            .await
            .expect("txn")
            .succeeded
    );
    let kv = etcd.get("leader").await.expect("get").expect("exists");
    assert_eq!(value_of(&kv), "c");
    assert_eq!(kv.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_refusals_are_clear_errors() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    let puts = |n: usize| TxnRequest {
        success: (0..n)
            .map(|i| op_put(format!("ops/{i}"), "v", None))
            .collect(),
        ..TxnRequest::default()
    };

    // etcd's --max-txn-ops is 128.
    assert!(
        etcd.txn(puts(128), false)
            .await
            .expect("128 operations")
            .succeeded
    );
    let err = etcd
        .txn(puts(129), false)
        .await
        .expect_err("129 operations");
    assert!(matches!(err, EtcdError::TooManyOps), "{err:?}");
    assert!(err.to_string().contains("too many operations"), "{err}");
    assert!(!err.is_retryable());

    let twice = TxnRequest {
        success: vec![op_put("dup", "1", None), op_put("dup", "2", None)],
        ..TxnRequest::default()
    };
    let err = etcd.txn(twice, true).await.expect_err("the same key twice");
    assert!(matches!(err, EtcdError::DuplicateKey), "{err:?}");
    assert!(etcd.get("dup").await.expect("get").is_none());

    // etcd's --max-request-bytes is 1.5 MiB.
    let big = vec![b'x'; 1_600_000];
    let err = etcd.put("big", big, None).await.expect_err("1.6 MB");
    assert!(matches!(err, EtcdError::RequestTooLarge { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_revisions_are_reported_for_reads_and_watches() {
    let cluster = EtcdCluster::single();
    let etcd = cluster.client();
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(etcd.put("c/k", format!("{i}"), None).await.expect("put"));
    }
    let compact_at = revisions[3];
    etcd.compact(compact_at, true).await.expect("compact");
    // Compacting an already compacted revision is not an error (compact is resent freely).
    etcd.compact(revisions[1], false)
        .await
        .expect("compact again");

    let err = etcd
        .range_prefix("c/", revisions[1])
        .await
        .expect_err("a compacted revision");
    assert!(
        matches!(err, EtcdError::RevisionCompacted { revision } if revision == revisions[1]),
        "{err:?}"
    );
    assert!(err.is_compacted());
    // The compaction revision itself is still readable.
    let (kvs, _) = etcd
        .range_prefix("c/", compact_at)
        .await
        .expect("range at the compaction revision");
    assert_eq!(value_of(&kvs[0]), "3");

    let mut watcher = etcd.watch_prefix("c/", revisions[0]);
    let outcome = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("the watch answers");
    match outcome {
        Some(Err(EtcdError::Compacted { compact_revision })) => {
            assert_eq!(compact_revision, compact_at)
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(watcher.next().await.is_none(), "the watch has ended");

    // From the compaction revision on, the watch works.
    let mut watcher = etcd.watch_prefix("c/", compact_at);
    let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("the watch answers")
        .expect("not ended")
        .expect("events");
    assert_eq!(
        batch.events[0].kv.as_ref().map(|kv| kv.mod_revision),
        Some(compact_at)
    );
}
