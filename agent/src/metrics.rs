//! The agent's metrics, named in one place after Kafka Connect's JMX metrics (`sluice_` + the metric name with
//! underscores), and the HTTP endpoint serving them: `/metrics`, `/health` and the agent's `/admin/loggers`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::runtime::TaskKey;

const TASK_COUNT: &str = "sluice_task_count";
const CONNECTED: &str = "sluice_agent_connected";
const SESSIONS_TOTAL: &str = "sluice_agent_sessions_total";
const FENCED_TOTAL: &str = "sluice_agent_self_fenced_total";
const TASK_RESTARTS_TOTAL: &str = "sluice_task_restarts_total";

/// A per-task counter: its Prometheus name, Kafka Connect's metric (group and name) it stands for, and its help.
struct TaskSeries {
    name: &'static str,
    help: &'static str,
    read: fn(&TaskCounters) -> u64,
}

/// Every per-task series, named after Kafka Connect's JMX metric with the `sluice_` prefix and underscores
/// (`source-record-poll-total` → `sluice_source_record_poll_total`), labelled `connector` and `task`.
/// Rates (`*-rate`) are not exported: Prometheus derives them, e.g. `rate(sluice_source_record_poll_total[1m])`.
const TASK_SERIES: &[TaskSeries] = &[
    // source-task-metrics
    TaskSeries {
        name: "sluice_source_record_poll_total",
        help: "Records produced/polled (before transformations) by the source task (source-record-poll-total).",
        read: |c| c.source_polled.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_source_record_write_total",
        help: "Records output from the transformations and written to Kafka, acknowledged (source-record-write-total).",
        read: |c| c.source_written.load(Ordering::Relaxed),
    },
    // sink-task-metrics
    TaskSeries {
        name: "sluice_sink_record_read_total",
        help: "Records read from Kafka by the sink task, before transformations (sink-record-read-total).",
        read: |c| c.sink_read.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_sink_record_send_total",
        help: "Records output from the transformations and put to the sink task (sink-record-send-total).",
        read: |c| c.sink_put.load(Ordering::Relaxed),
    },
    // connector-task-metrics
    TaskSeries {
        name: "sluice_offset_commit_success_total",
        help: "Successful offset commits (offset-commit-success-total: source offsets reported, sink offsets committed).",
        read: |c| c.commit_success.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_offset_commit_failure_total",
        help: "Failed offset commits (offset-commit-failure-total).",
        read: |c| c.commit_failure.load(Ordering::Relaxed),
    },
    // task-error-metrics
    TaskSeries {
        name: "sluice_total_record_failures",
        help: "Record processing failures, every failed attempt counted (total-record-failures).",
        read: |c| c.record_failures.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_total_record_errors",
        help: "Records that failed for good, after retries (total-record-errors).",
        read: |c| c.record_errors.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_total_records_skipped",
        help: "Records skipped because of errors, with errors.tolerance=all (total-records-skipped).",
        read: |c| c.records_skipped.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_total_retries",
        help: "Retries of failed operations (total-retries).",
        read: |c| c.retries.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_total_errors_logged",
        help: "Errors written to the log, with errors.log.enable=true (total-errors-logged).",
        read: |c| c.errors_logged.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_deadletterqueue_produce_requests",
        help: "Records sent to the dead letter queue (deadletterqueue-produce-requests).",
        read: |c| c.dlq_requests.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_deadletterqueue_produce_failures",
        help: "Records the dead letter queue did not accept (deadletterqueue-produce-failures).",
        read: |c| c.dlq_failures.load(Ordering::Relaxed),
    },
    TaskSeries {
        name: "sluice_last_error_timestamp",
        help: "Epoch milliseconds of the last record error, 0 if none (last-error-timestamp).",
        read: |c| c.last_error_ms.load(Ordering::Relaxed),
    },
];

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
        let tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        for series in TASK_SERIES {
            let kind = if series.name == "sluice_last_error_timestamp" { "gauge" } else { "counter" };
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {kind}", series.name, series.help, series.name);
            for (id, counters) in &tasks {
                let _ = writeln!(
                    out,
                    "{}{{connector=\"{}\",task=\"{}\"}} {}",
                    series.name,
                    escape_label(&id.connector),
                    id.task,
                    (series.read)(counters)
                );
            }
        }
        out
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
        metrics.task(&id).source_records_polled(3);
        metrics.task(&id).source_records_written(2);
        let text = metrics.render();
        assert!(text.contains(r#"sluice_source_record_poll_total{connector="file-\"src\"",task="2"} 3"#), "{text}");
        assert!(text.contains(r#"sluice_source_record_write_total{connector="file-\"src\"",task="2"} 2"#));
        for series in TASK_SERIES {
            assert!(text.contains(&format!("# TYPE {} ", series.name)), "{} missing", series.name);
            assert!(series.name.starts_with("sluice_") && !series.name.contains('-'));
        }
        metrics.remove_task(&id);
        assert!(!metrics.render().contains("task=\"2\""));
    }
}
