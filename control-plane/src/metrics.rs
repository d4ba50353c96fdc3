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
//!
//! Kafka Connect's connector-level and worker-level metrics are named like the agent's task metrics (`sluice_` + the
//! JMX name with underscores); here they describe the cluster, as this replica sees it:
//!
//! | series | Kafka Connect metric |
//! |---|---|
//! | `sluice_connector_info{connector,connector_class,connector_type,connector_version}` (1) | connector-metrics `connector-class`, `connector-type`, `connector-version` |
//! | `sluice_connector_status{connector,status}` (1) | connector-metrics `status` |
//! | `sluice_connector_count` | connect-worker-metrics `connector-count` |
//! | `sluice_connector_{total,running,paused,failed,unassigned,restarting}_task_count{connector}` | connect-worker-metrics `connector-*-task-count` |
//! | `sluice_connector_startup_{attempts,success,failure}_total`, `..._{success,failure}_percentage` | connect-worker-metrics `connector-startup-*` |
//! | `sluice_completed_rebalances_total`, `sluice_rebalancing`, `sluice_rebalance_{avg,max}_time_ms`, `sluice_time_since_last_rebalance_ms`, `sluice_epoch`, `sluice_connect_worker_rebalance_info{leader_name,connect_protocol}` (1) | connect-worker-rebalance-metrics |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sluice_connectors::registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::ConnectorStateInfo;
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
pub const CONNECTOR_INFO: &str = "sluice_connector_info";
pub const CONNECTOR_STATUS: &str = "sluice_connector_status";
pub const CONNECTOR_COUNT: &str = "sluice_connector_count";
pub const CONNECTOR_STARTUP_ATTEMPTS: &str = "sluice_connector_startup_attempts_total";
pub const CONNECTOR_STARTUP_SUCCESS: &str = "sluice_connector_startup_success_total";
pub const CONNECTOR_STARTUP_SUCCESS_PERCENTAGE: &str = "sluice_connector_startup_success_percentage";
pub const CONNECTOR_STARTUP_FAILURE: &str = "sluice_connector_startup_failure_total";
pub const CONNECTOR_STARTUP_FAILURE_PERCENTAGE: &str = "sluice_connector_startup_failure_percentage";
pub const COMPLETED_REBALANCES: &str = "sluice_completed_rebalances_total";
pub const REBALANCING: &str = "sluice_rebalancing";
pub const REBALANCE_AVG_TIME: &str = "sluice_rebalance_avg_time_ms";
pub const REBALANCE_MAX_TIME: &str = "sluice_rebalance_max_time_ms";
pub const TIME_SINCE_LAST_REBALANCE: &str = "sluice_time_since_last_rebalance_ms";
pub const EPOCH: &str = "sluice_epoch";
pub const REBALANCE_INFO: &str = "sluice_connect_worker_rebalance_info";
/// Per-connector task counts by state: (series, state as the status answers it; `None`: all tasks).
const TASK_COUNTS: [(&str, Option<&str>); 6] = [
    ("sluice_connector_total_task_count", None),
    ("sluice_connector_running_task_count", Some("RUNNING")),
    ("sluice_connector_paused_task_count", Some("PAUSED")),
    ("sluice_connector_failed_task_count", Some("FAILED")),
    ("sluice_connector_unassigned_task_count", Some("UNASSIGNED")),
    ("sluice_connector_restarting_task_count", Some("RESTARTING")),
];
/// What `connect-protocol` reports: not one of Kafka Connect's group protocols but Sluice's etcd scheduler.
const CONNECT_PROTOCOL: &str = "sluice";

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
    rebalancing: AtomicI64,
    /// Completed rebalances' durations (µs): sum and max; the count is `rebalances`.
    rebalance_micros: AtomicU64,
    rebalance_max_micros: AtomicU64,
    /// When the last rebalance completed (ms since the Unix epoch), 0 if never.
    last_rebalance_ms: AtomicU64,
    connector_startup_attempts: AtomicU64,
    connector_startup_success: AtomicU64,
    connector_startup_failure: AtomicU64,
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

    /// The leader starts a scheduler pass; `sluice_rebalancing` is 1 while the guard lives, and
    /// [`RebalanceGuard::completed`] counts it as a rebalance with its duration.
    pub fn rebalance_started(&'static self) -> RebalanceGuard {
        self.rebalancing.fetch_add(1, Ordering::Relaxed);
        RebalanceGuard { metrics: self, started: Instant::now() }
    }

    /// A connector is being started: its valid config is split into task configs (connector-startup-attempts-total).
    pub fn connector_startup_attempt(&self) {
        self.connector_startup_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// How a connector start ended.
    pub fn connector_startup(&self, success: bool) {
        let counter = if success { &self.connector_startup_success } else { &self.connector_startup_failure };
        counter.fetch_add(1, Ordering::Relaxed);
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

    /// The Prometheus text exposition (format 0.0.4), without the series that need the connectors' statuses.
    pub fn render(&self) -> String {
        self.render_with(None)
    }

    /// The Prometheus text exposition (format 0.0.4); `statuses` (as `GET /connectors?expand=status` answers them)
    /// add the connector status and task count series.
    pub fn render_with(&self, statuses: Option<&BTreeMap<String, ConnectorStateInfo>>) -> String {
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
        self.render_connect(&mut out, &state, statuses);
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

impl Metrics {
    /// Kafka Connect's connector-metrics, connect-worker-metrics and connect-worker-rebalance-metrics.
    fn render_connect(
        &self,
        out: &mut String,
        state: &ClusterState,
        statuses: Option<&BTreeMap<String, ConnectorStateInfo>>,
    ) {
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        header(
            out,
            CONNECTOR_INFO,
            "gauge",
            "What each connector runs, in its labels (connector-metrics connector-class, connector-type, connector-version).",
        );
        for (name, entry) in &state.connectors {
            let class = entry.config.get("connector.class").map(String::as_str).unwrap_or_default();
            let (class, kind, version) = match registry::connector(class) {
                Some(plugin) => (plugin.class_name(), plugin.connector_type().as_str(), plugin.version()),
                None => (class, "unknown", ""),
            };
            let _ = writeln!(
                out,
                "{CONNECTOR_INFO}{{connector=\"{}\",connector_class=\"{}\",connector_type=\"{kind}\",connector_version=\"{}\"}} 1",
                escape_label(name),
                escape_label(class),
                escape_label(version)
            );
        }
        header(out, CONNECTOR_COUNT, "gauge", "Connectors in the cluster (connect-worker-metrics connector-count).");
        let _ = writeln!(out, "{CONNECTOR_COUNT} {}", state.connectors.len());
        if let Some(statuses) = statuses {
            header(
                out,
                CONNECTOR_STATUS,
                "gauge",
                "Each connector's state, in the status label (connector-metrics status).",
            );
            for (name, info) in statuses {
                let _ = writeln!(
                    out,
                    "{CONNECTOR_STATUS}{{connector=\"{}\",status=\"{}\"}} 1",
                    escape_label(name),
                    escape_label(&info.connector.state.to_ascii_lowercase())
                );
            }
            for (series, wanted) in TASK_COUNTS {
                let help = match wanted {
                    None => "Tasks of the connector (connect-worker-metrics connector-total-task-count).".to_string(),
                    Some(state) => format!(
                        "Tasks of the connector in state {state} (connect-worker-metrics connector-{}-task-count).",
                        state.to_ascii_lowercase()
                    ),
                };
                header(out, series, "gauge", &help);
                for (name, info) in statuses {
                    let count = info.tasks.iter().filter(|t| wanted.is_none_or(|w| t.state == w)).count();
                    let _ = writeln!(out, "{series}{{connector=\"{}\"}} {count}", escape_label(name));
                }
            }
        }
        let attempts = self.connector_startup_attempts.load(Ordering::Relaxed);
        let success = self.connector_startup_success.load(Ordering::Relaxed);
        let failure = self.connector_startup_failure.load(Ordering::Relaxed);
        let share = |n: u64| if attempts == 0 { 0.0 } else { n as f64 / attempts as f64 };
        for (name, kind, help, value) in [
            (
                CONNECTOR_STARTUP_ATTEMPTS,
                "counter",
                "Connector starts (a valid config split into task configs) on this replica (connector-startup-attempts-total).",
                attempts as f64,
            ),
            (
                CONNECTOR_STARTUP_SUCCESS,
                "counter",
                "Connector starts that succeeded (connector-startup-success-total).",
                success as f64,
            ),
            (
                CONNECTOR_STARTUP_SUCCESS_PERCENTAGE,
                "gauge",
                "Share of connector starts that succeeded, 0 to 1 (connector-startup-success-percentage).",
                share(success),
            ),
            (
                CONNECTOR_STARTUP_FAILURE,
                "counter",
                "Connector starts that failed (connector-startup-failure-total).",
                failure as f64,
            ),
            (
                CONNECTOR_STARTUP_FAILURE_PERCENTAGE,
                "gauge",
                "Share of connector starts that failed, 0 to 1 (connector-startup-failure-percentage).",
                share(failure),
            ),
        ] {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        // connect-worker-rebalance-metrics: a rebalance is a scheduler pass that wrote new assignments.
        let completed = self.rebalances.load(Ordering::Relaxed);
        let micros = self.rebalance_micros.load(Ordering::Relaxed);
        let avg = if completed == 0 { f64::NAN } else { micros as f64 / completed as f64 / 1000.0 };
        let max =
            if completed == 0 { f64::NAN } else { self.rebalance_max_micros.load(Ordering::Relaxed) as f64 / 1000.0 };
        let last = self.last_rebalance_ms.load(Ordering::Relaxed);
        let since = if last == 0 { f64::INFINITY } else { now_ms().saturating_sub(last) as f64 };
        let epoch = state.assignments.values().map(|(_, revision)| *revision).max().unwrap_or(0);
        for (name, kind, help, value) in [
            (
                COMPLETED_REBALANCES,
                "counter",
                "Scheduler passes that wrote new assignments, by this replica as leader (completed-rebalances-total).",
                completed as f64,
            ),
            (
                REBALANCING,
                "gauge",
                "1 while this replica's scheduler is computing or writing assignments (rebalancing).",
                self.rebalancing.load(Ordering::Relaxed).clamp(0, 1) as f64,
            ),
            (
                REBALANCE_AVG_TIME,
                "gauge",
                "Average time of a completed rebalance (plan and etcd write), ms (rebalance-avg-time-ms).",
                avg,
            ),
            (REBALANCE_MAX_TIME, "gauge", "Longest completed rebalance, ms (rebalance-max-time-ms).", max),
            (
                TIME_SINCE_LAST_REBALANCE,
                "gauge",
                "Time since this replica last completed a rebalance, ms; +Inf if never (time-since-last-rebalance-ms).",
                since,
            ),
            (
                EPOCH,
                "gauge",
                "etcd revision of the newest assignment in the cluster: grows with every rebalance (epoch).",
                epoch as f64,
            ),
        ] {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {}", number(value));
        }
        header(
            out,
            REBALANCE_INFO,
            "gauge",
            "The leader replica and the assignment protocol, in labels (leader-name, connect-protocol).",
        );
        let _ = writeln!(
            out,
            "{REBALANCE_INFO}{{leader_name=\"{}\",connect_protocol=\"{CONNECT_PROTOCOL}\"}} 1",
            escape_label(state.leader.as_deref().unwrap_or_default())
        );
    }
}

/// Ends a scheduler pass started with [`Metrics::rebalance_started`].
pub struct RebalanceGuard {
    metrics: &'static Metrics,
    started: Instant,
}

impl RebalanceGuard {
    /// The pass wrote new assignments: a completed rebalance.
    pub fn completed(self) {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.rebalanced();
        self.metrics.rebalance_micros.fetch_add(micros, Ordering::Relaxed);
        self.metrics.rebalance_max_micros.fetch_max(micros, Ordering::Relaxed);
        self.metrics.last_rebalance_ms.store(now_ms(), Ordering::Relaxed);
    }
}

impl Drop for RebalanceGuard {
    fn drop(&mut self) {
        self.metrics.rebalancing.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// A sample value in Prometheus' text format (`NaN`, `+Inf`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() }
    } else {
        value.to_string()
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
        let pass = metrics.rebalance_started();
        assert!(metrics.render().contains("sluice_rebalancing 1\n"));
        pass.completed();
        assert!(metrics.render().contains("sluice_rebalancing 0\n"));
        drop(metrics.rebalance_started());
        metrics.connector_startup_attempt();
        metrics.connector_startup(true);
        metrics.report_rejected();
        let guard = metrics.agent_session();
        let text = metrics.render();
        assert!(text.contains("sluice_control_plane_rebalances_total 1\n"), "{text}");
        assert!(text.contains("sluice_completed_rebalances_total 1\n"), "{text}");
        assert!(text.contains("sluice_connector_startup_success_percentage 1\n"), "{text}");
        assert!(text.contains("sluice_connector_count 0\n"), "{text}");
        assert!(!text.contains("sluice_time_since_last_rebalance_ms +Inf"), "{text}");
        assert!(text.contains("sluice_connect_worker_rebalance_info{leader_name=\"\",connect_protocol=\"sluice\"} 1"));
        assert!(text.contains("sluice_control_plane_rejected_reports_total 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_agent_sessions 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_is_leader 0\n"), "{text}");
        assert!(text.contains("sluice_control_plane_etcd_request_seconds_count{op=\"txn\"} 1\n"), "{text}");
        assert!(text.contains("sluice_control_plane_etcd_request_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"));
        drop(guard);
        assert!(metrics.render().contains("sluice_control_plane_agent_sessions 0\n"));
    }
}
