//! The agent's metrics, named in one place after Kafka Connect's JMX metrics (`sluice_` + the metric name with
//! underscores), and the HTTP endpoint serving them: `/metrics`, `/health` and the agent's `/admin/loggers`.
//!
//! The hot paths only touch atomics, once per batch: counters add, per-batch samples (`-avg`/`-max`/`-min` of batch
//! sizes, durations, active records) keep a count, a sum and the extremes. Kafka Connect's `*-rate` metrics are left
//! to Prometheus (`rate()` of the `*-total` counter); its `-avg`/`-max`/`-min` are served, over the task's life on this
//! agent (Kafka Connect's cover its sample window, 2 × 30 s by default). String-valued metrics (classes, versions)
//! are the labels of one `sluice_connector_task_info` series per task, and a task's `status` is the `status` label of
//! `sluice_connector_task_status` (value 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use sluice_proto::agent::TaskState;

use crate::runtime::TaskKey;

const TASK_COUNT: &str = "sluice_task_count";
const CONNECTED: &str = "sluice_agent_connected";
const SESSIONS_TOTAL: &str = "sluice_agent_sessions_total";
const FENCED_TOTAL: &str = "sluice_agent_self_fenced_total";
const TASK_RESTARTS_TOTAL: &str = "sluice_task_restarts_total";
const TASK_STARTUP_ATTEMPTS: &str = "sluice_task_startup_attempts_total";
const TASK_STARTUP_SUCCESS: &str = "sluice_task_startup_success_total";
const TASK_STARTUP_SUCCESS_PERCENTAGE: &str = "sluice_task_startup_success_percentage";
const TASK_STARTUP_FAILURE: &str = "sluice_task_startup_failure_total";
const TASK_STARTUP_FAILURE_PERCENTAGE: &str = "sluice_task_startup_failure_percentage";
const TASK_STATUS: &str = "sluice_connector_task_status";
const TASK_INFO: &str = "sluice_connector_task_info";

/// Which tasks a series applies to: Kafka Connect has source-task-metrics and sink-task-metrics groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Any,
    Source,
    Sink,
}

/// A per-task series: its Prometheus name and type, the tasks it applies to, its help (naming Kafka Connect's
/// metric) and how to read it.
struct TaskSeries {
    name: &'static str,
    kind: &'static str,
    applies: Applies,
    help: &'static str,
    read: fn(&TaskCounters) -> f64,
}

const COUNTER: &str = "counter";
const GAUGE: &str = "gauge";

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

/// Every per-task series, named after Kafka Connect's JMX metric with the `sluice_` prefix and underscores
/// (`source-record-poll-total` → `sluice_source_record_poll_total`), labelled `connector` and `task`.
/// Rates (`*-rate`) are not exported: Prometheus derives them, e.g. `rate(sluice_source_record_poll_total[1m])`.
const TASK_SERIES: &[TaskSeries] = &[
    // connector-task-metrics (status and the classes/versions: see `render`)
    TaskSeries {
        name: "sluice_running_ratio",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Fraction of its time on this agent the task spent running (running-ratio).",
        read: |c| c.ratios().0,
    },
    TaskSeries {
        name: "sluice_pause_ratio",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Fraction of its time on this agent the task spent paused (pause-ratio).",
        read: |c| c.ratios().1,
    },
    TaskSeries {
        name: "sluice_offset_commit_avg_time_ms",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Average time of an offset commit, ms (offset-commit-avg-time-ms).",
        read: |c| c.commit_time.avg() / 1000.0,
    },
    TaskSeries {
        name: "sluice_offset_commit_max_time_ms",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Longest offset commit, ms (offset-commit-max-time-ms).",
        read: |c| c.commit_time.max() / 1000.0,
    },
    TaskSeries {
        name: "sluice_offset_commit_success_percentage",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Share of offset commits that succeeded, 0 to 1 (offset-commit-success-percentage).",
        read: |c| c.commit_percentage(true),
    },
    TaskSeries {
        name: "sluice_offset_commit_failure_percentage",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Share of offset commits that failed, 0 to 1 (offset-commit-failure-percentage).",
        read: |c| c.commit_percentage(false),
    },
    TaskSeries {
        name: "sluice_batch_size_avg",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Average records per batch: polled by a source task, put to a sink task (batch-size-avg).",
        read: |c| c.batch_size.avg(),
    },
    TaskSeries {
        name: "sluice_batch_size_max",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Most records in one batch (batch-size-max).",
        read: |c| c.batch_size.max(),
    },
    // source-task-metrics
    TaskSeries {
        name: "sluice_source_record_poll_total",
        kind: COUNTER,
        applies: Applies::Source,
        help: "Records produced/polled (before transformations) by the source task (source-record-poll-total).",
        read: |c| load(&c.source_polled),
    },
    TaskSeries {
        name: "sluice_source_record_write_total",
        kind: COUNTER,
        applies: Applies::Source,
        help: "Records output from the transformations and written to Kafka, acknowledged (source-record-write-total).",
        read: |c| load(&c.source_written),
    },
    TaskSeries {
        name: "sluice_poll_batch_avg_time_ms",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Average time of a poll of the source task that returned records, ms (poll-batch-avg-time-ms).",
        read: |c| c.poll_time.avg() / 1000.0,
    },
    TaskSeries {
        name: "sluice_poll_batch_max_time_ms",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Longest poll of the source task that returned records, ms (poll-batch-max-time-ms).",
        read: |c| c.poll_time.max() / 1000.0,
    },
    TaskSeries {
        name: "sluice_source_record_active_count",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Records polled but not yet acknowledged by Kafka (source-record-active-count).",
        read: |c| load(&c.active),
    },
    TaskSeries {
        name: "sluice_source_record_active_count_avg",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Average of source-record-active-count, sampled once per batch (source-record-active-count-avg).",
        read: |c| c.active_sample.avg(),
    },
    TaskSeries {
        name: "sluice_source_record_active_count_max",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Largest source-record-active-count sampled (source-record-active-count-max).",
        read: |c| c.active_sample.max(),
    },
    TaskSeries {
        name: "sluice_transaction_size_avg",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Average records per committed transaction, exactly-once only (transaction-size-avg).",
        read: |c| c.transaction_size.avg(),
    },
    TaskSeries {
        name: "sluice_transaction_size_max",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Most records in one committed transaction (transaction-size-max).",
        read: |c| c.transaction_size.max(),
    },
    TaskSeries {
        name: "sluice_transaction_size_min",
        kind: GAUGE,
        applies: Applies::Source,
        help: "Fewest records in one committed transaction (transaction-size-min).",
        read: |c| c.transaction_size.min(),
    },
    // sink-task-metrics
    TaskSeries {
        name: "sluice_sink_record_read_total",
        kind: COUNTER,
        applies: Applies::Sink,
        help: "Records read from Kafka by the sink task, before transformations (sink-record-read-total).",
        read: |c| load(&c.sink_read),
    },
    TaskSeries {
        name: "sluice_sink_record_send_total",
        kind: COUNTER,
        applies: Applies::Sink,
        help: "Records output from the transformations and put to the sink task (sink-record-send-total).",
        read: |c| load(&c.sink_put),
    },
    TaskSeries {
        name: "sluice_offset_commit_completion_total",
        kind: COUNTER,
        applies: Applies::Sink,
        help: "Offset commits that completed, commit points with nothing new included (offset-commit-completion-total).",
        read: |c| load(&c.commit_success),
    },
    TaskSeries {
        name: "sluice_offset_commit_skip_total",
        kind: COUNTER,
        applies: Applies::Sink,
        help: "Offset commits whose completion came out of order (offset-commit-skip-total): always 0, Sluice commits synchronously.",
        read: |_| 0.0,
    },
    TaskSeries {
        name: "sluice_offset_commit_seq_no",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Sequence number of the last commit point, one per offset.flush.interval.ms and at stop (offset-commit-seq-no).",
        read: |c| load(&c.commit_seq_no),
    },
    TaskSeries {
        name: "sluice_partition_count",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Topic partitions assigned to the sink task (partition-count).",
        read: |c| load(&c.partitions),
    },
    TaskSeries {
        name: "sluice_put_batch_avg_time_ms",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Average time of a put of a batch to the sink task, ms (put-batch-avg-time-ms).",
        read: |c| c.put_time.avg() / 1000.0,
    },
    TaskSeries {
        name: "sluice_put_batch_max_time_ms",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Longest put of a batch to the sink task, ms (put-batch-max-time-ms).",
        read: |c| c.put_time.max() / 1000.0,
    },
    TaskSeries {
        name: "sluice_sink_record_active_count",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Records read from Kafka whose offsets are not committed yet (sink-record-active-count).",
        read: |c| load(&c.active),
    },
    TaskSeries {
        name: "sluice_sink_record_active_count_avg",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Average of sink-record-active-count, sampled once per batch (sink-record-active-count-avg).",
        read: |c| c.active_sample.avg(),
    },
    TaskSeries {
        name: "sluice_sink_record_active_count_max",
        kind: GAUGE,
        applies: Applies::Sink,
        help: "Largest sink-record-active-count sampled (sink-record-active-count-max).",
        read: |c| c.active_sample.max(),
    },
    // task-error-metrics
    TaskSeries {
        name: "sluice_total_record_failures",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Record processing failures, every failed attempt counted (total-record-failures).",
        read: |c| load(&c.record_failures),
    },
    TaskSeries {
        name: "sluice_total_record_errors",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Records that failed for good, after retries (total-record-errors).",
        read: |c| load(&c.record_errors),
    },
    TaskSeries {
        name: "sluice_total_records_skipped",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Records skipped because of errors, with errors.tolerance=all (total-records-skipped).",
        read: |c| load(&c.records_skipped),
    },
    TaskSeries {
        name: "sluice_total_retries",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Retries of failed operations (total-retries).",
        read: |c| load(&c.retries),
    },
    TaskSeries {
        name: "sluice_total_errors_logged",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Errors written to the log, with errors.log.enable=true (total-errors-logged).",
        read: |c| load(&c.errors_logged),
    },
    TaskSeries {
        name: "sluice_deadletterqueue_produce_requests",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Records sent to the dead letter queue (deadletterqueue-produce-requests).",
        read: |c| load(&c.dlq_requests),
    },
    TaskSeries {
        name: "sluice_deadletterqueue_produce_failures",
        kind: COUNTER,
        applies: Applies::Any,
        help: "Records the dead letter queue did not accept (deadletterqueue-produce-failures).",
        read: |c| load(&c.dlq_failures),
    },
    TaskSeries {
        name: "sluice_last_error_timestamp",
        kind: GAUGE,
        applies: Applies::Any,
        help: "Epoch milliseconds of the last record error, 0 if none (last-error-timestamp).",
        read: |c| load(&c.last_error_ms),
    },
];

/// Count, sum and extremes of a value sampled once per batch (a batch size, a duration in µs), for Kafka Connect's
/// `-avg`, `-max` and `-min`. Without samples they read NaN, as Kafka Connect's do.
pub(crate) struct Sample {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
    min: AtomicU64,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
        }
    }
}

impl Sample {
    pub fn record(&self, value: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
    }

    pub fn record_duration(&self, elapsed: Duration) {
        self.record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn avg(&self) -> f64 {
        match self.count() {
            0 => f64::NAN,
            n => self.sum.load(Ordering::Relaxed) as f64 / n as f64,
        }
    }

    fn max(&self) -> f64 {
        if self.count() == 0 { f64::NAN } else { self.max.load(Ordering::Relaxed) as f64 }
    }

    fn min(&self) -> f64 {
        if self.count() == 0 { f64::NAN } else { self.min.load(Ordering::Relaxed) as f64 }
    }
}

/// Time spent in each state since the task started on this agent, for `running-ratio` and `pause-ratio`.
struct StateClock {
    created: Instant,
    state: Option<TaskState>,
    since: Instant,
    running: Duration,
    paused: Duration,
}

impl StateClock {
    fn new() -> Self {
        let now = Instant::now();
        StateClock { created: now, state: None, since: now, running: Duration::ZERO, paused: Duration::ZERO }
    }

    fn enter(&mut self, state: TaskState) {
        let now = Instant::now();
        let spent = now - self.since;
        match self.state {
            Some(TaskState::Running) => self.running += spent,
            Some(TaskState::Paused) => self.paused += spent,
            _ => {}
        }
        self.state = Some(state);
        self.since = now;
    }

    /// (running, paused) shares of the time since the task started.
    fn ratios(&self) -> (f64, f64) {
        let now = Instant::now();
        let total = (now - self.created).as_secs_f64();
        if total <= 0.0 {
            return (0.0, 0.0);
        }
        let current = now - self.since;
        let (mut running, mut paused) = (self.running, self.paused);
        match self.state {
            Some(TaskState::Running) => running += current,
            Some(TaskState::Paused) => paused += current,
            _ => {}
        }
        (running.as_secs_f64() / total, paused.as_secs_f64() / total)
    }
}

/// What a task runs: Kafka Connect's string-valued connector-task-metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskInfo {
    pub connector_class: String,
    pub connector_type: &'static str,
    pub connector_version: String,
    pub task_class: String,
    pub task_version: String,
    /// Key, value and header converters: (class, version).
    pub converters: [(String, String); 3],
}

impl TaskInfo {
    /// The task of a built-in connector; its task class is the connector's with `Task` for `Connector`, as Kafka
    /// Connect's own connectors name them (`FileStreamSourceConnector` → `FileStreamSourceTask`). Built-in
    /// converters carry the plugins' version.
    pub fn new(connector: &dyn sluice_connectors::Connector, source: bool, converters: [String; 3]) -> Self {
        let class = connector.class_name();
        let task_class = match class.strip_suffix("Connector") {
            Some(stem) => format!("{stem}Task"),
            None => format!("{class}Task"),
        };
        let version = sluice_connectors::registry::PLUGIN_VERSION.to_string();
        TaskInfo {
            connector_class: class.to_string(),
            connector_type: if source { "source" } else { "sink" },
            connector_version: connector.version().to_string(),
            task_class,
            task_version: connector.version().to_string(),
            converters: converters.map(|class| (class, version.clone())),
        }
    }
}

/// One task's counters; a task holds its own `Arc` so the hot path is a single atomic add.
#[derive(Default)]
pub(crate) struct TaskCounters {
    source_polled: AtomicU64,
    source_written: AtomicU64,
    sink_read: AtomicU64,
    sink_put: AtomicU64,
    commit_success: AtomicU64,
    commit_failure: AtomicU64,
    record_failures: AtomicU64,
    record_errors: AtomicU64,
    records_skipped: AtomicU64,
    retries: AtomicU64,
    errors_logged: AtomicU64,
    dlq_requests: AtomicU64,
    dlq_failures: AtomicU64,
    last_error_ms: AtomicU64,
    commit_time: Sample,
    commit_seq_no: AtomicU64,
    batch_size: Sample,
    poll_time: Sample,
    put_time: Sample,
    /// Records in flight: polled and not acknowledged (source), read and not committed (sink).
    active: AtomicU64,
    active_sample: Sample,
    transaction_size: Sample,
    partitions: AtomicU64,
    clock: Mutex<Option<StateClock>>,
    info: OnceLock<TaskInfo>,
    /// Whether the task reached RUNNING (or PAUSED) once: its startup succeeded.
    started: AtomicBool,
    /// 0 not known yet, 1 source, 2 sink.
    kind: AtomicU8,
}

impl TaskCounters {
    pub fn source_records_polled(&self, n: u64) {
        self.source_polled.fetch_add(n, Ordering::Relaxed);
    }

    pub fn source_records_written(&self, n: u64) {
        self.source_written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sink_records_read(&self, n: u64) {
        self.sink_read.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sink_records_put(&self, n: u64) {
        self.sink_put.fetch_add(n, Ordering::Relaxed);
    }

    pub fn offset_commit(&self, success: bool) {
        let counter = if success { &self.commit_success } else { &self.commit_failure };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An offset commit that completed (or failed) after `elapsed`.
    pub fn offset_commit_timed(&self, success: bool, elapsed: Duration) {
        self.offset_commit(success);
        self.commit_time.record_duration(elapsed);
    }

    /// A sink offset commit started: its sequence number.
    pub fn offset_commit_started(&self) {
        self.commit_seq_no.fetch_add(1, Ordering::Relaxed);
    }

    fn commit_percentage(&self, success: bool) -> f64 {
        let ok = load(&self.commit_success);
        let failed = load(&self.commit_failure);
        if ok + failed == 0.0 {
            return 0.0;
        }
        (if success { ok } else { failed }) / (ok + failed)
    }

    /// A batch of `records` polled (source, with the poll's duration) or put (sink, with the put's duration).
    pub fn batch(&self, records: usize, elapsed: Duration, source: bool) {
        self.batch_size.record(records as u64);
        let time = if source { &self.poll_time } else { &self.put_time };
        time.record_duration(elapsed);
    }

    /// The records in flight now; sampled for the `-avg`/`-max` too (call once per batch).
    pub fn active_records(&self, n: usize) {
        self.active.store(n as u64, Ordering::Relaxed);
        self.active_sample.record(n as u64);
    }

    /// The records in flight now, without sampling them (cheap enough for every turn of a task's loop).
    pub fn set_active_records(&self, n: usize) {
        self.active.store(n as u64, Ordering::Relaxed);
    }

    /// `n` more records in flight (a sink task read them).
    pub fn add_active_records(&self, n: usize) {
        self.active.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Samples the records in flight for the `-avg`/`-max` (once per batch), optionally resetting them first.
    pub fn sample_active_records(&self, reset_to: Option<usize>) {
        if let Some(n) = reset_to {
            self.active.store(n as u64, Ordering::Relaxed);
        }
        self.active_sample.record(self.active.load(Ordering::Relaxed));
    }

    /// A transaction of `records` records committed (exactly-once sources).
    pub fn transaction_committed(&self, records: u64) {
        self.transaction_size.record(records);
    }

    /// Partitions assigned in a rebalance. Counted from the rebalance's own lists (eager: all revoked, then all
    /// assigned; cooperative: the increments), never by asking the consumer: `assignment()` inside a rebalance
    /// callback can block while the consumer closes.
    pub fn partitions_assigned(&self, n: usize) {
        self.partitions.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn partitions_revoked(&self, n: usize) {
        let _ =
            self.partitions.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(p.saturating_sub(n as u64)));
    }

    /// What the task runs; set once when it starts.
    pub fn set_info(&self, info: TaskInfo) {
        let _ = self.info.set(info);
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, Option<StateClock>> {
        let mut clock = self.clock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clock.get_or_insert_with(StateClock::new);
        clock
    }

    /// The task entered `state`; `true` the first time it is RUNNING or PAUSED (its startup succeeded).
    pub fn enter_state(&self, state: TaskState) -> bool {
        if let Some(clock) = self.clock().as_mut() {
            clock.enter(state);
        }
        matches!(state, TaskState::Running | TaskState::Paused) && !self.started.swap(true, Ordering::Relaxed)
    }

    fn ratios(&self) -> (f64, f64) {
        self.clock().as_ref().map(StateClock::ratios).unwrap_or_default()
    }

    /// Whether the task is a source or a sink, which picks its series.
    pub fn set_kind(&self, source: bool) {
        self.kind.store(if source { 1 } else { 2 }, Ordering::Relaxed);
    }

    fn applies(&self, applies: Applies) -> bool {
        match (applies, self.kind.load(Ordering::Relaxed)) {
            (Applies::Any, _) => true,
            (Applies::Source, kind) => kind == 1,
            (Applies::Sink, kind) => kind == 2,
        }
    }

    fn has_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    fn state(&self) -> Option<TaskState> {
        self.clock().as_ref().and_then(|c| c.state)
    }

    /// One failed attempt (also counted for attempts that are retried).
    pub fn record_failure(&self) {
        self.record_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A record that failed for good.
    pub fn record_error(&self) {
        self.record_errors.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last_error_ms.store(now.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn record_skipped(&self) {
        self.records_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error_logged(&self) {
        self.errors_logged.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dlq_produce_request(&self) {
        self.dlq_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dlq_produce_failure(&self) {
        self.dlq_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters shared by the session and the tasks.
#[derive(Default)]
pub(crate) struct Metrics {
    connected: AtomicBool,
    sessions: AtomicU64,
    fenced: AtomicU64,
    running_tasks: AtomicU64,
    task_restarts: AtomicU64,
    task_startup_attempts: AtomicU64,
    task_startup_success: AtomicU64,
    task_startup_failure: AtomicU64,
    tasks: Mutex<BTreeMap<TaskKey, Arc<TaskCounters>>>,
}

impl Metrics {
    /// The counters of a task, registered so `/metrics` shows them until [`Metrics::remove_task`].
    pub fn task(&self, id: &TaskKey) -> Arc<TaskCounters> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tasks.entry(id.clone()).or_default().clone()
    }

    /// Forgets a task that no longer runs here, so its series disappear.
    pub fn remove_task(&self, id: &TaskKey) {
        self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(id);
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        if connected {
            self.sessions.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn self_fenced(&self) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed task was restarted automatically (`task.restart.on.failure`).
    pub fn task_restarted(&self) {
        self.task_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A task is being started (task-startup-attempts-total); a restarted task's startup is judged afresh.
    pub fn task_startup_attempt(&self, id: &TaskKey) {
        self.task_startup_attempts.fetch_add(1, Ordering::Relaxed);
        let counters = self.task(id);
        counters.started.store(false, Ordering::Relaxed);
        // The state clock (running and pause ratios) starts with the task's first start here.
        drop(counters.clock());
    }

    /// A task reported `state`: the first RUNNING (or PAUSED) is a successful startup, a failure before it a failed
    /// one (task-startup-success-total / -failure-total).
    pub fn task_state(&self, id: &TaskKey, state: TaskState) {
        let counters = self.task(id);
        if counters.enter_state(state) {
            self.task_startup_success.fetch_add(1, Ordering::Relaxed);
        } else if state == TaskState::Failed && !counters.has_started() {
            self.task_startup_failure.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_running_tasks(&self, n: usize) {
        self.running_tasks.store(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            &mut out,
            CONNECTED,
            "1 while a session with the control plane is up.",
            self.connected.load(Ordering::Relaxed) as u64,
        );
        gauge(&mut out, TASK_COUNT, "Tasks running on this agent.", self.running_tasks.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP {SESSIONS_TOTAL} Sessions established with the control plane.\n# TYPE {SESSIONS_TOTAL} counter\n{SESSIONS_TOTAL} {}",
            self.sessions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {FENCED_TOTAL} Times the agent stopped all tasks because its lease may have expired.\n# TYPE {FENCED_TOTAL} counter\n{FENCED_TOTAL} {}",
            self.fenced.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {TASK_RESTARTS_TOTAL} Failed tasks restarted automatically by this agent.\n# TYPE {TASK_RESTARTS_TOTAL} counter\n{TASK_RESTARTS_TOTAL} {}",
            self.task_restarts.load(Ordering::Relaxed)
        );
        let attempts = self.task_startup_attempts.load(Ordering::Relaxed);
        let success = self.task_startup_success.load(Ordering::Relaxed);
        let failure = self.task_startup_failure.load(Ordering::Relaxed);
        let share = |n: u64| if attempts == 0 { 0.0 } else { n as f64 / attempts as f64 };
        for (name, kind, help, value) in [
            (TASK_STARTUP_ATTEMPTS, COUNTER, "Task starts attempted (task-startup-attempts-total).", attempts as f64),
            (
                TASK_STARTUP_SUCCESS,
                COUNTER,
                "Task starts that reached RUNNING (task-startup-success-total).",
                success as f64,
            ),
            (
                TASK_STARTUP_SUCCESS_PERCENTAGE,
                GAUGE,
                "Share of task starts that succeeded, 0 to 1 (task-startup-success-percentage).",
                share(success),
            ),
            (
                TASK_STARTUP_FAILURE,
                COUNTER,
                "Task starts that failed before running (task-startup-failure-total).",
                failure as f64,
            ),
            (
                TASK_STARTUP_FAILURE_PERCENTAGE,
                GAUGE,
                "Share of task starts that failed, 0 to 1 (task-startup-failure-percentage).",
                share(failure),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", number(value));
        }
        let tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let _ = writeln!(
            out,
            "# HELP {TASK_STATUS} The task's state on this agent, in the status label (connector-task-metrics status).\n# TYPE {TASK_STATUS} gauge"
        );
        for (id, counters) in &tasks {
            if let Some(state) = counters.state() {
                let status = state.as_str_name().trim_start_matches("TASK_STATE_").to_ascii_lowercase();
                let _ = writeln!(out, "{TASK_STATUS}{{{}status=\"{status}\"}} 1", labels(id));
            }
        }
        let _ = writeln!(
            out,
            "# HELP {TASK_INFO} What the task runs, in its labels: connector-task-metrics connector-class, connector-type, connector-version, task-class, task-version, key-/value-/header-converter-class and -version.\n# TYPE {TASK_INFO} gauge"
        );
        for (id, counters) in &tasks {
            if let Some(info) = counters.info.get() {
                let [(key, key_version), (value, value_version), (header, header_version)] = &info.converters;
                let _ = writeln!(
                    out,
                    "{TASK_INFO}{{{}connector_class=\"{}\",connector_type=\"{}\",connector_version=\"{}\",task_class=\"{}\",task_version=\"{}\",key_converter_class=\"{}\",key_converter_version=\"{}\",value_converter_class=\"{}\",value_converter_version=\"{}\",header_converter_class=\"{}\",header_converter_version=\"{}\"}} 1",
                    labels(id),
                    escape_label(&info.connector_class),
                    info.connector_type,
                    escape_label(&info.connector_version),
                    escape_label(&info.task_class),
                    escape_label(&info.task_version),
                    escape_label(key),
                    escape_label(key_version),
                    escape_label(value),
                    escape_label(value_version),
                    escape_label(header),
                    escape_label(header_version),
                );
            }
        }
        for series in TASK_SERIES {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", series.name, series.help, series.name, series.kind);
            for (id, counters) in tasks.iter().filter(|(_, c)| c.applies(series.applies)) {
                let _ = writeln!(
                    out,
                    "{}{{{}}} {}",
                    series.name,
                    labels(id).trim_end_matches(','),
                    number((series.read)(counters))
                );
            }
        }
        out
    }
}

/// The `connector` and `task` labels, with a trailing comma.
fn labels(id: &TaskKey) -> String {
    format!("connector=\"{}\",task=\"{}\",", escape_label(&id.connector), id.task)
}

/// A sample value in Prometheus' text format (`NaN`, `+Inf`, integers without a fraction).
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

/// Credentials the metrics port requires on every path but `/health` (`--metrics-auth-token`,
/// `--metrics-basic-auth user:password`; either is accepted when both are set).
#[derive(Clone, Default)]
pub struct MetricsAuth {
    token: Option<String>,
    /// `base64(user:password)`, as sent after `Basic `.
    basic: Option<String>,
}

impl std::fmt::Debug for MetricsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAuth")
            .field("token", &self.token.is_some())
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

impl MetricsAuth {
    /// `None` when neither is given. `basic` is `user:password`.
    pub fn new(token: Option<String>, basic: Option<String>) -> Result<Option<MetricsAuth>, String> {
        use base64::Engine;
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let basic = match basic.map(|b| b.trim().to_string()).filter(|b| !b.is_empty()) {
            None => None,
            Some(pair) if pair.contains(':') => Some(base64::engine::general_purpose::STANDARD.encode(pair)),
            Some(_) => return Err("--metrics-basic-auth must be user:password".to_string()),
        };
        Ok((token.is_some() || basic.is_some()).then_some(MetricsAuth { token, basic }))
    }

    fn allows(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, given)) = authorization.map(str::trim).and_then(|v| v.split_once(' ')) else { return false };
        let expected = if scheme.eq_ignore_ascii_case("bearer") {
            self.token.as_deref()
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.basic.as_deref()
        } else {
            None
        };
        let given = given.trim().as_bytes();
        expected
            .is_some_and(|e| e.len() == given.len() && e.bytes().zip(given).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
    }
}

async fn require_auth(
    State(auth): State<Arc<MetricsAuth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if request.uri().path() == "/health" || auth.allows(header) {
        return next.run(request).await;
    }
    let challenge = if auth.basic.is_some() { "Basic realm=\"sluice-agent\"" } else { "Bearer realm=\"sluice-agent\"" };
    let body = serde_json::json!({ "error_code": 401, "message": "Authentication required" });
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], axum::Json(body)).into_response()
}

/// Serves `/metrics`, `/health` and `/admin/loggers` until `shutdown`. `/health` answers 200 while connected to the
/// control plane and 503 otherwise, so it works as a readiness probe; it is the one path `auth` does not cover.
pub(crate) async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    auth: Option<MetricsAuth>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let mut app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .route("/admin/loggers", get(loggers_handler))
        .with_state(metrics);
    if let Some(auth) = auth {
        app = app.layer(axum::middleware::from_fn_with_state(Arc::new(auth), require_auth));
    }
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(err) = served {
            tracing::warn!(error = %err, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render())
}

async fn health_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let connected = metrics.is_connected();
    let running = metrics.running_tasks.load(Ordering::Relaxed);
    let status = if connected { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "status": if connected { "UP" } else { "DISCONNECTED" }, "connected": connected, "tasks": running });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// This agent's log levels, in the shape of Kafka Connect's `GET /admin/loggers` (they change when the control plane
/// pushes cluster-wide levels).
async fn loggers_handler() -> impl IntoResponse {
    match sluice_logging::levels().all() {
        Ok(levels) => (StatusCode::OK, axum::Json(levels)).into_response(),
        Err(e) => {
            let body = serde_json::json!({ "error_code": 500, "message": e.to_string() });
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_credentials() {
        assert!(MetricsAuth::new(None, None).expect("none").is_none());
        assert!(MetricsAuth::new(None, Some("nocolon".into())).is_err());
        let auth = MetricsAuth::new(Some("t0k".into()), Some("prom:pw".into())).expect("ok").expect("on");
        assert!(auth.allows(Some("Bearer t0k")));
        assert!(auth.allows(Some("Basic cHJvbTpwdw==")));
        for wrong in [None, Some("Bearer t0x"), Some("t0k"), Some("Basic cHJvbTpweA=="), Some("")] {
            assert!(!auth.allows(wrong), "{wrong:?}");
        }
        assert!(!format!("{auth:?}").contains("t0k"));
    }

    #[test]
    fn renders_task_series_with_labels() {
        let metrics = Metrics::default();
        let id = TaskKey { connector: "file-\"src\"".into(), task: 2 };
        metrics.task(&id).set_kind(true);
        metrics.task(&id).source_records_polled(3);
        metrics.task(&id).source_records_written(2);
        metrics.task(&id).batch(3, Duration::from_millis(4), true);
        metrics.task(&id).batch(1, Duration::from_millis(2), true);
        metrics.task(&id).offset_commit_timed(true, Duration::from_micros(1500));
        metrics.task_startup_attempt(&id);
        metrics.task_state(&id, TaskState::Running);
        let text = metrics.render();
        assert!(text.contains(r#"sluice_batch_size_avg{connector="file-\"src\"",task="2"} 2"#), "{text}");
        assert!(text.contains(r#"sluice_batch_size_max{connector="file-\"src\"",task="2"} 3"#), "{text}");
        assert!(text.contains(r#"sluice_poll_batch_max_time_ms{connector="file-\"src\"",task="2"} 4"#), "{text}");
        assert!(text.contains(r#"sluice_offset_commit_avg_time_ms{connector="file-\"src\"",task="2"} 1.5"#));
        assert!(text.contains(r#"sluice_offset_commit_success_percentage{connector="file-\"src\"",task="2"} 1"#));
        assert!(text.contains(r#"sluice_transaction_size_min{connector="file-\"src\"",task="2"} NaN"#));
        assert!(text.contains(r#"sluice_connector_task_status{connector="file-\"src\"",task="2",status="running"} 1"#));
        assert!(text.contains("sluice_task_startup_success_percentage 1\n"), "{text}");
        assert!(!text.contains("sluice_sink_record_read_total{"), "a source task has no sink series");
        assert!(text.contains(r#"sluice_source_record_poll_total{connector="file-\"src\"",task="2"} 3"#), "{text}");
        assert!(text.contains(r#"sluice_source_record_write_total{connector="file-\"src\"",task="2"} 2"#));
        for series in TASK_SERIES {
            assert!(text.contains(&format!("# TYPE {} ", series.name)), "{} missing", series.name);
            assert!(series.name.starts_with("sluice_") && !series.name.contains('-'));
        }
        metrics.remove_task(&id);
        assert!(!metrics.render().contains("task=\"2\""));
    }

    #[test]
    fn task_startups_count_failures_before_running_and_restarts_afresh() {
        let metrics = Metrics::default();
        let id = TaskKey { connector: "c".into(), task: 0 };
        metrics.task_startup_attempt(&id);
        metrics.task_state(&id, TaskState::Failed);
        metrics.task_state(&id, TaskState::Restarting);
        metrics.task_startup_attempt(&id);
        metrics.task_state(&id, TaskState::Running);
        metrics.task_state(&id, TaskState::Paused);
        metrics.task_state(&id, TaskState::Failed);
        let text = metrics.render();
        assert!(text.contains("sluice_task_startup_attempts_total 2\n"), "{text}");
        assert!(text.contains("sluice_task_startup_success_total 1\n"), "{text}");
        assert!(text.contains("sluice_task_startup_failure_total 1\n"), "{text}");
        assert!(text.contains("sluice_task_startup_failure_percentage 0.5\n"), "{text}");
        assert!(text.contains(r#"sluice_connector_task_status{connector="c",task="0",status="failed"} 1"#), "{text}");
    }
}
