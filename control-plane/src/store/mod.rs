//! The control plane's view of its key-value store: the small subset of etcd's model it needs (prefix reads,
//! guarded transactions, prefix watches, leases), with two backends: [`etcd::EtcdStore`] for distributed mode and
//! [`embedded::EmbeddedStore`] (in memory, offsets persisted to a file) for standalone mode.

pub mod embedded;
pub mod etcd;
pub mod mirror;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// One stored key with its etcd-style revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the last change to this key.
    pub mod_revision: i64,
    /// Revision at which the key was created.
    pub create_revision: i64,
    /// Lease the key is attached to, 0 when none.
    pub lease: i64,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Missing(String),
    /// The key exists and was last changed at this revision.
    ModRevision(String, i64),
    /// The key exists and holds exactly this value.
    Value(String, Vec<u8>),
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8>, lease: Option<i64> },
    Delete { key: String },
    DeletePrefix { prefix: String },
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put { key: key.into(), value: value.into(), lease: None }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix { prefix: prefix.into() }
    }
}

/// Outcome of a transaction: whether every compare held (then every op was applied) and the store's revision after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    pub succeeded: bool,
    pub revision: i64,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    /// The key was deleted at `revision`.
    Delete {
        key: String,
        revision: i64,
    },
}

/// Batches of events in revision order; the channel closes when the watch broke (the caller lists again).
pub type WatchReceiver = mpsc::Receiver<Vec<WatchEvent>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("the requested revision {0} was compacted")]
    Compacted(i64),
    #[error("lease {0} not found or expired")]
    LeaseNotFound(i64),
    #[error("corrupt value at {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The request is beyond the store's limits (etcd: 128 operations per transaction); retrying cannot help.
    #[error("the store refused the request: {0}")]
    Refused(String),
}

/// etcd's default `--max-txn-ops`: the most compares, and the most operations, in one transaction. The embedded
/// store enforces it too, so what works in standalone mode (and in unit tests) also works against etcd.
pub const MAX_TXN_OPS: usize = 128;

/// The operations the control plane needs from its store. Keys are absolute (the caller adds the cluster prefix).
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Every key under `prefix`, sorted, and the store revision the snapshot was taken at.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError>;
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError>;
    /// Changes under `prefix` from `start_revision` on.
    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchReceiver, StoreError>;
    async fn grant_lease(&self, ttl: Duration) -> Result<i64, StoreError>;
    /// Renews a lease; `Ok(false)` when it does not exist any more.
    async fn keep_alive(&self, lease: i64) -> Result<bool, StoreError>;
    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError>;
}
