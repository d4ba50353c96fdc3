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

/// Keys per page of a prefix listing.
const LIST_PAGE: i64 = 1000;

/// The end of the key range of everything under `prefix` (etcd's `WithPrefix`): the prefix with its last byte
/// below 0xff incremented; `\0` (every key) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcd's errors: a request it refuses for its size or operation count is `Refused` (a retry cannot help, and the
/// API must not answer 503 for it); anything else means etcd cannot be reached or cannot answer now.
fn unavailable(e: etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &e
        && matches!(
            status.code(),
            tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        )
    {
        return StoreError::Refused(status.message().to_string());
    }
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
        if let Some(k) = self.keepers.lock().await.get(&lease) {
            return Ok(k.clone());
        }
        // Opened without holding the map's lock: with many agents connecting at once, opening their streams one
        // after the other took longer than their leases live.
        let pair = self.client.clone().lease_keep_alive(lease).await.map_err(|e| match e {
            // Opening the stream renews the lease once; an expired one answers TTL 0, which the client reports so.
            etcd_client::Error::LeaseKeepAliveError(m) if m.contains("lease not found") => {
                StoreError::LeaseNotFound(lease)
            }
            e => unavailable(e),
        })?;
        let keeper = Arc::new(Mutex::new(pair));
        Ok(self.keepers.lock().await.entry(lease).or_insert(keeper).clone())
    }
}

#[async_trait]
impl KvStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.client.clone().get(key, None).await.map_err(unavailable)?;
        Ok(resp.kvs().first().map(convert))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
        // In pages, all at the revision of the first: one answer for a big prefix (10,000 connectors) would pass
        // the 4 MiB a gRPC message may have.
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let options = GetOptions::new().with_range(end.clone()).with_limit(LIST_PAGE).with_revision(revision);
            let resp = self.client.clone().get(from.clone(), Some(options)).await.map_err(unavailable)?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or_default();
            }
            out.extend(resp.kvs().iter().map(convert));
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((out, revision)),
            }
        }
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
        let keeper = match self.keeper(lease).await {
            Ok(k) => k,
            Err(StoreError::LeaseNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
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
