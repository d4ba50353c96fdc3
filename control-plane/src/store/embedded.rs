//! The embedded store of standalone mode: the same model as etcd (revisions, guarded transactions, prefix
//! watches, leases) in memory, with keys under chosen prefixes (source offsets) persisted to one file, so a
//! standalone process resumes its connectors' offsets after a restart, like Kafka Connect's
//! `offset.storage.file.filename`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Compare, KeyValue, KvStore, Op, StoreError, TxnOutcome, WatchEvent, WatchReceiver};

/// How many past events a watch can start from.
const HISTORY: usize = 100_000;

struct Lease {
    ttl: Duration,
    expires: Instant,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Vec<WatchEvent>>,
}

struct Inner {
    data: BTreeMap<String, KeyValue>,
    revision: i64,
    history: VecDeque<(i64, WatchEvent)>,
    /// Revision of the newest event dropped from `history`; a watch cannot start at or before it.
    compacted: i64,
    leases: HashMap<i64, Lease>,
    next_lease: i64,
    watchers: Vec<Watcher>,
}

/// In-memory store; see the module doc.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Mutex<Inner>>,
    persist: Option<Arc<Persistence>>,
}

struct Persistence {
    path: PathBuf,
    prefixes: Vec<String>,
}

impl EmbeddedStore {
    /// A store that forgets everything when the process ends.
    pub fn in_memory() -> Self {
        Self::build(None, BTreeMap::new())
    }

    /// A store that keeps the keys under `prefixes` in `path` (loaded now, rewritten atomically on every change).
    pub fn with_file(path: impl Into<PathBuf>, prefixes: Vec<String>) -> Result<Self, StoreError> {
        let path = path.into();
        let mut initial = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) if !bytes.is_empty() => {
                let map: BTreeMap<String, String> = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt { key: path.display().to_string(), message: e.to_string() })?;
                initial = map;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Self::build(Some(Arc::new(Persistence { path, prefixes })), initial))
    }

    fn build(persist: Option<Arc<Persistence>>, initial: BTreeMap<String, String>) -> Self {
        let mut data = BTreeMap::new();
        let mut revision = 1;
        for (key, value) in initial {
            revision += 1;
            data.insert(
                key.clone(),
                KeyValue {
                    key,
                    value: value.into_bytes(),
                    mod_revision: revision,
                    create_revision: revision,
                    lease: 0,
                },
            );
        }
        let inner = Arc::new(Mutex::new(Inner {
            data,
            revision,
            history: VecDeque::new(),
            compacted: 0,
            leases: HashMap::new(),
            next_lease: 1,
            watchers: Vec::new(),
        }));
        let store = EmbeddedStore { inner, persist };
        store.spawn_lease_reaper();
        store
    }

    fn spawn_lease_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let persist = self.persist.clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let store = EmbeddedStore { inner, persist: persist.clone() };
                store.expire_leases();
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock means a panic in this module; the data itself is still consistent per operation.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expire_leases(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let expired: Vec<i64> = inner.leases.iter().filter(|(_, l)| l.expires <= now).map(|(id, _)| *id).collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            inner.leases.remove(id);
        }
        let keys: Vec<String> =
            inner.data.values().filter(|kv| expired.contains(&kv.lease)).map(|kv| kv.key.clone()).collect();
        if keys.is_empty() {
            return;
        }
        inner.revision += 1;
        let revision = inner.revision;
        let mut events = Vec::new();
        for key in keys {
            inner.data.remove(&key);
            events.push(WatchEvent::Delete { key, revision });
        }
        publish(&mut inner, revision, events);
    }

    fn save(&self, inner: &Inner) -> Result<(), StoreError> {
        let Some(persist) = &self.persist else { return Ok(()) };
        let map: BTreeMap<&str, String> = inner
            .data
            .values()
            .filter(|kv| persist.prefixes.iter().any(|p| kv.key.starts_with(p.as_str())))
            .map(|kv| (kv.key.as_str(), String::from_utf8_lossy(&kv.value).into_owned()))
            .collect();
        let bytes = serde_json::to_vec_pretty(&map)
            .map_err(|e| StoreError::Corrupt { key: persist.path.display().to_string(), message: e.to_string() })?;
        let tmp = persist.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
        }
        std::fs::rename(&tmp, &persist.path)?;
        Ok(())
    }

    fn touches_persisted(&self, ops: &[Op]) -> bool {
        let Some(persist) = &self.persist else { return false };
        ops.iter().any(|op| {
            let key = match op {
                Op::Put { key, .. } | Op::Delete { key } => key,
                Op::DeletePrefix { prefix } => prefix,
            };
            persist.prefixes.iter().any(|p| key.starts_with(p.as_str()) || p.starts_with(key.as_str()))
        })
    }
}

fn publish(inner: &mut Inner, revision: i64, events: Vec<WatchEvent>) {
    for e in &events {
        inner.history.push_back((revision, e.clone()));
    }
    while inner.history.len() > HISTORY {
        if let Some((rev, _)) = inner.history.pop_front() {
            inner.compacted = rev;
        }
    }
    inner.watchers.retain(|w| {
        let batch: Vec<WatchEvent> = events.iter().filter(|e| event_key(e).starts_with(&w.prefix)).cloned().collect();
        // A watcher that cannot keep up is dropped; its owner sees the channel close and lists again.
        batch.is_empty() || w.tx.try_send(batch).is_ok()
    });
}

fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put(kv) => &kv.key,
        WatchEvent::Delete { key, .. } => key,
    }
}

#[async_trait]
impl KvStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let inner = self.lock();
        let kvs = inner.data.range(prefix.to_string()..).take_while(|(k, _)| k.starts_with(prefix));
        Ok((kvs.map(|(_, v)| v.clone()).collect(), inner.revision))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        if compares.len() > super::MAX_TXN_OPS || ops.len() > super::MAX_TXN_OPS {
            return Err(StoreError::Refused(format!(
                "too many operations in txn request ({} compares, {} operations; at most {})",
                compares.len(),
                ops.len(),
                super::MAX_TXN_OPS
            )));
        }
        let mut inner = self.lock();
        let holds = compares.iter().all(|c| match c {
            Compare::Missing(key) => !inner.data.contains_key(key),
            Compare::ModRevision(key, rev) => inner.data.get(key).is_some_and(|kv| kv.mod_revision == *rev),
            Compare::Value(key, value) => inner.data.get(key).is_some_and(|kv| &kv.value == value),
        });
        if !holds {
            return Ok(TxnOutcome { succeeded: false, revision: inner.revision });
        }
        for op in &ops {
            if let Op::Put { lease: Some(lease), .. } = op
                && !inner.leases.contains_key(lease)
            {
                return Err(StoreError::LeaseNotFound(*lease));
            }
        }
        if ops.is_empty() {
            return Ok(TxnOutcome { succeeded: true, revision: inner.revision });
        }
        let persist = self.touches_persisted(&ops);
        inner.revision += 1;
        let revision = inner.revision;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let create_revision = inner.data.get(&key).map(|kv| kv.create_revision).unwrap_or(revision);
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        mod_revision: revision,
                        create_revision,
                        lease: lease.unwrap_or(0),
                    };
                    inner.data.insert(key, kv.clone());
                    events.push(WatchEvent::Put(kv));
                }
                Op::Delete { key } => {
                    if inner.data.remove(&key).is_some() {
                        events.push(WatchEvent::Delete { key, revision });
                    }
                }
                Op::DeletePrefix { prefix } => {
                    let keys: Vec<String> = inner
                        .data
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in keys {
                        inner.data.remove(&key);
                        events.push(WatchEvent::Delete { key, revision });
                    }
                }
            }
        }
        if persist {
            self.save(&inner)?;
        }
        publish(&mut inner, revision, events);
        Ok(TxnOutcome { succeeded: true, revision })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchReceiver, StoreError> {
        let mut inner = self.lock();
        let (tx, rx) = mpsc::channel(1024);
        if start_revision <= inner.revision {
            if start_revision <= inner.compacted {
                return Err(StoreError::Compacted(start_revision));
            }
            let past: Vec<WatchEvent> = inner
                .history
                .iter()
                .filter(|(r, e)| *r >= start_revision && event_key(e).starts_with(prefix))
                .map(|(_, e)| e.clone())
                .collect();
            if !past.is_empty() && tx.try_send(past).is_err() {
                return Err(StoreError::Compacted(start_revision));
            }
        }
        inner.watchers.push(Watcher { prefix: prefix.to_string(), tx });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<i64, StoreError> {
        let mut inner = self.lock();
        let id = inner.next_lease;
        inner.next_lease += 1;
        inner.leases.insert(id, Lease { ttl, expires: Instant::now() + ttl });
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get_mut(&lease) {
            Some(l) => {
                l.expires = Instant::now() + l.ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        if let Some(l) = self.lock().leases.get_mut(&lease) {
            l.expires = Instant::now();
        }
        self.expire_leases();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guarded_txn_and_watch() {
        let store = EmbeddedStore::in_memory();
        let (_, rev) = store.list("/a/").await.unwrap();
        let mut watch = store.watch("/a/", rev + 1).await.unwrap();
        let ok = store.txn(vec![Compare::Missing("/a/x".into())], vec![Op::put("/a/x", "1")]).await.unwrap();
        assert!(ok.succeeded);
        let again = store.txn(vec![Compare::Missing("/a/x".into())], vec![Op::put("/a/x", "2")]).await.unwrap();
        assert!(!again.succeeded);
        let events = watch.recv().await.unwrap();
        assert!(matches!(&events[0], WatchEvent::Put(kv) if kv.value == b"1"));
        assert_eq!(store.get("/a/x").await.unwrap().unwrap().value, b"1");
    }

    #[tokio::test]
    async fn lease_expiry_deletes_keys() {
        let store = EmbeddedStore::in_memory();
        let lease = store.grant_lease(Duration::from_millis(200)).await.unwrap();
        store
            .txn(vec![], vec![Op::Put { key: "/l/k".into(), value: b"v".to_vec(), lease: Some(lease) }])
            .await
            .unwrap();
        assert!(store.get("/l/k").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(store.get("/l/k").await.unwrap().is_none());
        assert!(!store.keep_alive(lease).await.unwrap());
    }

    #[tokio::test]
    async fn persisted_prefix_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        {
            let store = EmbeddedStore::with_file(&path, vec!["/o/".into()]).unwrap();
            store.txn(vec![], vec![Op::put("/o/p", "{\"position\":3}"), Op::put("/x/y", "z")]).await.unwrap();
        }
        let store = EmbeddedStore::with_file(&path, vec!["/o/".into()]).unwrap();
        assert_eq!(store.get("/o/p").await.unwrap().unwrap().value, b"{\"position\":3}");
        assert!(store.get("/x/y").await.unwrap().is_none());
    }
}
