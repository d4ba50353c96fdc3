//! A replica's in-memory copy of the cluster's control data, kept current by one prefix watch. The scheduler and
//! the agent streams read it instead of querying the store on every change; admin reads go to the store itself so
//! they always see their own writes. After any watch or store failure it lists again, so it converges on its own
//! after an etcd restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{KeyValue, KvStore, WatchEvent};

/// A consistent copy of every key under the prefix (minus skipped sub-prefixes) at `revision`. Values are shared
/// between successive snapshots (`Arc`), so a new snapshot costs one map of pointers, and an unchanged key is the
/// same `Arc` in both.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub revision: i64,
    pub kvs: BTreeMap<String, Arc<KeyValue>>,
}

/// Least time between two published snapshots (changes in between are gathered into one).
const MIN_PUBLISH_INTERVAL: Duration = Duration::from_millis(20);

/// Applies a batch of watch events; `true` if a kept key changed.
fn apply(snapshot: &mut Snapshot, batch: Vec<WatchEvent>, keep: &impl Fn(&str) -> bool) -> bool {
    let mut changed = false;
    for event in batch {
        match event {
            WatchEvent::Put(kv) => {
                snapshot.revision = snapshot.revision.max(kv.mod_revision);
                if keep(&kv.key) {
                    snapshot.kvs.insert(kv.key.clone(), Arc::new(kv));
                    changed = true;
                }
            }
            WatchEvent::Delete { key, revision } => {
                snapshot.revision = snapshot.revision.max(revision);
                changed |= snapshot.kvs.remove(&key).is_some();
            }
        }
    }
    changed
}

/// Starts mirroring `prefix`, leaving out keys under any of `skip`. The receiver always holds the newest snapshot;
/// it starts empty at revision 0 until the first listing succeeded.
pub fn spawn(
    store: Arc<dyn KvStore>,
    prefix: String,
    skip: Vec<String>,
    shutdown: CancellationToken,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let listed = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = store.list(&prefix) => r,
            };
            let (kvs, revision) = match listed {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror: listing failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let keep = |key: &str| !skip.iter().any(|s| key.starts_with(s.as_str()));
            let mut snapshot = Snapshot {
                revision,
                kvs: kvs.into_iter().filter(|kv| keep(&kv.key)).map(|kv| (kv.key.clone(), Arc::new(kv))).collect(),
            };
            tx.send_replace(Arc::new(snapshot.clone()));
            let mut events = match store.watch(&prefix, revision + 1).await {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror: watch failed, listing again");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let mut published = Instant::now();
            let mut watch_ended = false;
            while !watch_ended {
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    b = events.recv() => b,
                };
                let Some(batch) = batch else { break };
                let mut changed = apply(&mut snapshot, batch, &keep);
                // Whatever else arrives until the next publication goes into the same snapshot: under a burst of
                // writes (10,000 connectors created in a loop) every consumer then wakes at most once per
                // interval, not once per event, and each copy of the snapshot serves many changes.
                let next = published + MIN_PUBLISH_INTERVAL;
                loop {
                    while let Ok(more) = events.try_recv() {
                        changed |= apply(&mut snapshot, more, &keep);
                    }
                    if !changed || Instant::now() >= next {
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep_until(next) => {}
                        more = events.recv() => match more {
                            Some(more) => changed |= apply(&mut snapshot, more, &keep),
                            None => {
                                watch_ended = true;
                                break;
                            }
                        },
                    }
                }
                if changed {
                    tx.send_replace(Arc::new(snapshot.clone()));
                    published = Instant::now();
                }
            }
            tracing::debug!("mirror: watch ended, listing again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    rx
}
