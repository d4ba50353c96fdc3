//! The control plane's Prometheus metrics, served as text on the REST port (`GET /metrics`, open like `/health`).
//! Every series is named here. Like a Prometheus client's default registry they belong to the process: counters are
//! bumped where things happen (leader, agent streams, store calls), gauges of cluster state are read from the
//! replica's mirror when scraped.
//!
//! | series | type | meaning |
//! |---|---|---|
//! | `sluice_control_plane_is_leader` | gauge | 1 while this replica is the leader |
//! | `sluice_control_plane_agents` | gauge | live agents (registered, lease not expired) |
//! | `sluice_control_plane_connectors` | gauge | connectors defined |
//! | `sluice_control_plane_tasks` | gauge | task configurations of all connectors |
//! | `sluice_control_plane_tasks_assigned` | gauge | tasks placed on an agent |
//! | `sluice_control_plane_rebalances_total` | counter | assignment transactions written by this replica as leader |
//! | `sluice_control_plane_agent_sessions` | gauge | agent streams held by this replica |
//! | `sluice_control_plane_etcd_request_seconds` | histogram | latency of store calls, by `op` |
//! | `sluice_control_plane_rejected_reports_total` | counter | status/offset reports rejected for a stale epoch |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::{ClusterState, Keys};
use crate::store::mirror::Snapshot;
use crate::store::{Compare, KeyValue, KvStore, Op, StoreError, TxnOutcome, WatchReceiver};

pub const IS_LEADER: &str = "sluice_control_plane_is_leader";
pub const AGENTS: &str = "sluice_control_plane_agents";
pub const CONNECTORS: &str = "sluice_control_plane_connectors";
pub const TASKS: &str = "sluice_control_plane_tasks";
pub const TASKS_ASSIGNED: &str = "sluice_control_plane_tasks_assigned";
pub const REBALANCES: &str = "sluice_control_plane_rebalances_total";
pub const AGENT_SESSIONS: &str = "sluice_control_plane_agent_sessions";
pub const ETCD_REQUEST_SECONDS: &str = "sluice_control_plane_etcd_request_seconds";
pub const REJECTED_REPORTS: &str = "sluice_control_plane_rejected_reports_total";

/// Upper bounds (seconds) of the store latency histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Store operations, the `op` label of the latency histogram.
const OPS: [&str; 7] = ["get", "list", "txn", "watch", "grant_lease", "keep_alive", "revoke_lease"];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// What a replica lets the scrape read: its mirror and whether it leads.
struct ReplicaView {
    keys: Keys,
    mirror: watch::Receiver<Arc<Snapshot>>,
    is_leader: watch::Receiver<bool>,
    shutdown: CancellationToken,
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    rebalances: AtomicU64,
    rejected_reports: AtomicU64,
    agent_sessions: AtomicI64,
    store: [Histogram; OPS.len()],
    replicas: Mutex<Vec<ReplicaView>>,
}

/// The metrics of this process.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// Lets scrapes read a replica's cluster view and leadership until `shutdown`.
    pub fn register_replica(
        &self,
        keys: &Keys,
        mirror: watch::Receiver<Arc<Snapshot>>,
        is_leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let mut replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
        replicas.retain(|r| !r.shutdown.is_cancelled());
        replicas.push(ReplicaView { keys: keys.clone(), mirror, is_leader, shutdown });
    }

    /// The leader wrote new assignments.
    pub fn rebalanced(&self) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
    }

    /// A status or offset report was rejected for a stale epoch.
    pub fn report_rejected(&self) {
        self.rejected_reports.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an agent stream for as long as the guard lives.
    pub fn agent_session(&'static self) -> SessionGuard {
        self.agent_sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard(self)
    }

    fn observe_store(&self, op: usize, elapsed: Duration) {
        self.store[op].observe(elapsed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let (leader, state) = {
            let mut replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
            replicas.retain(|r| !r.shutdown.is_cancelled());
            let leader = replicas.iter().any(|r| *r.is_leader.borrow());
            let state = replicas.last().map(|r| ClusterState::from_snapshot(&r.keys, &r.mirror.borrow()));
            (leader, state.unwrap_or_default())
        };
        let tasks: usize = state.connectors.values().map(|c| c.tasks.len()).sum();
        let assigned: usize = state.assignments.values().map(|(record, _)| record.tasks.len()).sum();
        let mut out = String::with_capacity(4096);
        let mut scalar = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        };
        scalar(
            IS_LEADER,
            "gauge",
            "1 if this control-plane replica is the leader, else 0.",
            u8::from(leader).to_string(),
        );
        scalar(AGENTS, "gauge", "Live agents (registered, lease not expired).", state.agents.len().to_string());
        scalar(CONNECTORS, "gauge", "Connectors defined in the cluster.", state.connectors.len().to_string());
        scalar(TASKS, "gauge", "Task configurations of all connectors.", tasks.to_string());
        scalar(TASKS_ASSIGNED, "gauge", "Tasks placed on an agent.", assigned.to_string());
        scalar(
            REBALANCES,
            "counter",
            "Assignment transactions written by this replica as leader.",
            self.rebalances.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            AGENT_SESSIONS,
            "gauge",
            "Agent streams held by this replica.",
            self.agent_sessions.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            REJECTED_REPORTS,
            "counter",
            "Task status and offset reports rejected for a stale epoch.",
            self.rejected_reports.load(Ordering::Relaxed).to_string(),
        );
        let name = ETCD_REQUEST_SECONDS;
        let _ =
            write!(out, "# HELP {name} Latency of the control plane's store (etcd) calls.\n# TYPE {name} histogram\n");
        for (op, histogram) in OPS.iter().zip(&self.store) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{op=\"{op}\",le=\"{bound}\"}} {cumulative}");
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{op=\"{op}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{op=\"{op}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{op=\"{op}\"}} {count}");
        }
        out
    }
}

/// Keeps `sluice_control_plane_agent_sessions` counted while an agent stream lives.
pub struct SessionGuard(&'static Metrics);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.agent_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A [`KvStore`] that times every call into `sluice_control_plane_etcd_request_seconds`.
pub struct TimedStore {
    inner: Arc<dyn KvStore>,
    metrics: &'static Metrics,
}

/// Wraps a store so its calls are timed.
pub fn timed_store(inner: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
    Arc::new(TimedStore { inner, metrics: global() })
}

impl TimedStore {
    async fn timed<T>(&self, op: usize, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let result = call.await;
        self.metrics.observe_store(op, start.elapsed());
        result
    }
}

#[async_trait]
impl KvStore for TimedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.timed(0, self.inner.get(key)).await
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
        self.timed(1, self.inner.list(prefix)).await
    }
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        self.timed(2, self.inner.txn(compares, ops)).await
    }
    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<WatchReceiver, StoreError> {
        self.timed(3, self.inner.watch(prefix, start_revision)).await
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<i64, StoreError> {
        self.timed(4, self.inner.grant_lease(ttl)).await
    }
    async fn keep_alive(&self, lease: i64) -> Result<bool, StoreError> {
        self.timed(5, self.inner.keep_alive(lease)).await
    }
    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        self.timed(6, self.inner.revoke_lease(lease)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn store_calls_are_timed_and_rendered() {
        let metrics: &'static Metrics = Box::leak(Box::default());
        let store = TimedStore { inner: Arc::new(crate::store::embedded::EmbeddedStore::in_memory()), metrics };
        store.txn(vec![], vec![Op::put("/k", b"v".to_vec())]).await.expect("txn");
        assert!(store.get("/k").await.expect("get").is_some());
        metrics.rebalanced();
        metrics.report_rejected();
        let guard = metrics.agent_session();
        let text = metrics.render();
        assert!(text.contains("sluice_control_plane_rebalances_total 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_rejected_reports_total 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_agent_sessions 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_is_leader 0\n"), "{text}");
        assert!(text.contains("sluice_control_plane_etcd_request_seconds_count{op=\"txn\"} 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_etcd_request_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"));
        drop(guard);
        assert!(metrics.render().contains("sluice_control_plane_agent_sessions 0\n"));
    }
}
