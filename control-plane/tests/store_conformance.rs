//! The same behaviour checks against both store backends: the embedded store and a real etcd (the one `deploy/test`
//! starts; `SLUICE_TEST_ETCD` overrides the default `http://127.0.0.1:2379`).

use std::sync::Arc;
use std::time::Duration;

use sluice_control_plane::store::embedded::EmbeddedStore;
use sluice_control_plane::store::etcd::EtcdStore;
use sluice_control_plane::store::{Compare, KvStore, Op, WatchEvent};

fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("/sluice-test/{}-{nanos}/", std::process::id())
}

async fn etcd() -> Arc<dyn KvStore> {
    let endpoint = std::env::var("SLUICE_TEST_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".into());
    let store = EtcdStore::connect(std::slice::from_ref(&endpoint)).await.expect("connect to etcd");
    store
        .list("/")
        .await
        .unwrap_or_else(|e| panic!("etcd at {endpoint} is not reachable ({e}); run deploy/local/etcd up"));
    Arc::new(store)
}

async fn conformance(store: Arc<dyn KvStore>) {
    let p = unique_prefix();
    let key = format!("{p}a");

    // Create-if-missing succeeds once.
    let first = store.txn(vec![Compare::Missing(key.clone())], vec![Op::put(&key, "1")]).await.unwrap();
    assert!(first.succeeded);
    let second = store.txn(vec![Compare::Missing(key.clone())], vec![Op::put(&key, "2")]).await.unwrap();
    assert!(!second.succeeded);
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(kv.value, b"1");
    assert_eq!(kv.mod_revision, first.revision);

    // Guarded update by revision and by value.
    let stale = store
        .txn(vec![Compare::ModRevision(key.clone(), kv.mod_revision - 1)], vec![Op::put(&key, "x")])
        .await
        .unwrap();
    assert!(!stale.succeeded);
    let fresh =
        store.txn(vec![Compare::ModRevision(key.clone(), kv.mod_revision)], vec![Op::put(&key, "3")]).await.unwrap();
    assert!(fresh.succeeded);
    assert!(store.txn(vec![Compare::Value(key.clone(), b"3".to_vec())], vec![]).await.unwrap().succeeded);

    // Prefix listing and a watch from the listing's revision.
    let (listed, revision) = store.list(&p).await.unwrap();
    assert_eq!(listed.len(), 1);
    let mut watch = store.watch(&p, revision + 1).await.unwrap();
    store.txn(vec![], vec![Op::put(format!("{p}b"), "4"), Op::put(format!("{p}c/d"), "5")]).await.unwrap();
    store.txn(vec![], vec![Op::delete_prefix(format!("{p}c/"))]).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.recv()).await.unwrap().unwrap();
        seen.extend(batch);
    }
    assert!(matches!(&seen[0], WatchEvent::Put(kv) if kv.key.ends_with("/b")));
    assert!(matches!(&seen[1], WatchEvent::Put(kv) if kv.key.ends_with("/c/d")));
    assert!(matches!(&seen[2], WatchEvent::Delete { key, .. } if key.ends_with("/c/d")));

    // Leases: a kept-alive lease keeps its key; a revoked one deletes it.
    let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
    let leased = format!("{p}leased");
    store.txn(vec![], vec![Op::Put { key: leased.clone(), value: b"v".to_vec(), lease: Some(lease) }]).await.unwrap();
    assert!(store.keep_alive(lease).await.unwrap());
    assert_eq!(store.get(&leased).await.unwrap().unwrap().lease, lease);
    store.revoke_lease(lease).await.unwrap();
    assert!(store.get(&leased).await.unwrap().is_none());
    assert!(!store.keep_alive(lease).await.unwrap_or(false));

    // An unrenewed lease expires on its own.
    let short = store.grant_lease(Duration::from_secs(1)).await.unwrap();
    let expiring = format!("{p}expiring");
    store.txn(vec![], vec![Op::Put { key: expiring.clone(), value: b"v".to_vec(), lease: Some(short) }]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get(&expiring).await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "leased key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    store.txn(vec![], vec![Op::delete_prefix(p)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_store_conformance() {
    conformance(Arc::new(EmbeddedStore::in_memory())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_store_conformance() {
    conformance(etcd().await).await;
}
