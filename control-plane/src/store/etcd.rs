//! The etcd backend. One client, cloned per call (tonic channels are cheap to clone and reconnect by themselves
//! after an etcd restart). Lease renewals reuse one keep-alive stream per lease and reopen it when it broke.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, CompareOp, ConnectOptions, EventType, GetOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, WatchOptions,
};
use tokio::sync::{Mutex, mpsc};

use super::{Compare, KeyValue, KvStore, Op, StoreError, TxnOutcome, WatchEvent, WatchReceiver};

/// One open keep-alive stream of a lease.
type Keeper = Arc<Mutex<(LeaseKeeper, LeaseKeepAliveStream)>>;

pub struct EtcdStore {
    client: Client,
    keepers: Mutex<HashMap<i64, Keeper>>,
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
        lease: kv.lease(),
    }
}

impl EtcdStore {
    /// Connects lazily: the first request fails with `Unavailable` while etcd is down, later ones succeed once it is
    /// back.
    pub async fn connect(endpoints: &[String]) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options)).await.map_err(unavailable)?;
        Ok(EtcdStore { client, keepers: Mutex::new(HashMap::new()) })
    }

    async fn keeper(&self, lease: i64) -> Result<Keeper, StoreError> {
        let mut keepers = self.keepers.lock().await;
        if let Some(k) = keepers.get(&lease) {
            return Ok(k.clone());
        }
        let pair = self.client.clone().lease_keep_alive(lease).await.map_err(unavailable)?;
        let keeper = Arc::new(Mutex::new(pair));
        keepers.insert(lease, keeper.clone());
        Ok(keeper)
    }
}

#[async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.client.clone().get(key, None).await.map_err(unavailable)?;
        Ok(resp.kvs().first().map(convert))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let resp = self.client.clone().get(prefix, Some(GetOptions::new().with_prefix())).await.map_err(unavailable)?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        Ok((resp.kvs().iter().map(convert).collect(), revision))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let compares: Vec<etcd_client::Compare> = compares
            .into_iter()
            .map(|c| match c {
                Compare::Missing(key) => etcd_client::Compare::create_revision(key, CompareOp::Equal, 0),
                Compare::ModRevision(key, rev) => etcd_client::Compare::mod_revision(key, CompareOp::Equal, rev),
                Compare::Value(key, value) => etcd_client::Compare::value(key, CompareOp::Equal, value),
            })
            .collect();
        let ops: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => TxnOp::put(key, value, lease.map(|l| PutOptions::new().with_lease(l))),
                Op::Delete { key } => TxnOp::delete(key, None),
                Op::DeletePrefix { prefix } => {
                    TxnOp::delete(prefix, Some(etcd_client::DeleteOptions::new().with_prefix()))
                }
            })
            .collect();
        let resp = self.client.clone().txn(Txn::new().when(compares).and_then(ops)).await.map_err(unavailable)?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        Ok(TxnOutcome { succeeded: resp.succeeded(), revision })
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchReceiver, StoreError> {
        let options = WatchOptions::new().with_prefix().with_start_revision(start_revision);
        let mut stream = self.client.clone().watch(prefix, Some(options)).await.map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // Dropping `stream` (on return) cancels the watch on the server.
            loop {
                let resp = match stream.message().await {
                    Ok(Some(resp)) => resp,
                    Ok(None) | Err(_) => return,
                };
                if resp.canceled() {
                    tracing::warn!(reason = resp.cancel_reason(), "etcd watch canceled");
                    return;
                }
                let events: Vec<WatchEvent> = resp
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let kv = e.kv()?;
                        Some(match e.event_type() {
                            EventType::Put => WatchEvent::Put(convert(kv)),
                            EventType::Delete => WatchEvent::Delete {
                                key: String::from_utf8_lossy(kv.key()).into_owned(),
                                revision: kv.mod_revision(),
                            },
                        })
                    })
                    .collect();
                if !events.is_empty() && tx.send(events).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<i64, StoreError> {
        let secs = ttl.as_secs().max(1) as i64;
        let resp = self.client.clone().lease_grant(secs, None).await.map_err(unavailable)?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: i64) -> Result<bool, StoreError> {
        let keeper = self.keeper(lease).await?;
        let mut guard = keeper.lock().await;
        let result = async {
            guard.0.keep_alive().await?;
            guard.1.message().await
        }
        .await;
        match result {
            Ok(Some(resp)) => {
                let alive = resp.ttl() > 0;
                if !alive {
                    drop(guard);
                    self.keepers.lock().await.remove(&lease);
                }
                Ok(alive)
            }
            Ok(None) | Err(_) => {
                // The stream broke (etcd restarted or the connection dropped): open a fresh one next time.
                drop(guard);
                self.keepers.lock().await.remove(&lease);
                Err(StoreError::Unavailable(format!("keep-alive stream of lease {lease} broke")))
            }
        }
    }

    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        self.keepers.lock().await.remove(&lease);
        match self.client.clone().lease_revoke(lease).await {
            Ok(_) => Ok(()),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("not found") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}
