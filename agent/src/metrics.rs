//! The agent's metrics, named in one place after Kafka Connect's JMX metrics as the Prometheus JMX exporter shows
//! them, and the `/metrics` + `/health` HTTP endpoint.

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

const SOURCE_RECORD_POLL_TOTAL: &str = "kafka_connect_source_task_metrics_source_record_poll_total";
const SOURCE_RECORD_WRITE_TOTAL: &str = "kafka_connect_source_task_metrics_source_record_write_total";
const SINK_RECORD_SEND_TOTAL: &str = "kafka_connect_sink_task_metrics_sink_record_send_total";
const TASK_COUNT: &str = "kafka_connect_connect_worker_metrics_task_count";
const CONNECTED: &str = "sluice_agent_connected";
const SESSIONS_TOTAL: &str = "sluice_agent_sessions_total";
const FENCED_TOTAL: &str = "sluice_agent_self_fenced_total";

/// One task's counters; a task holds its own `Arc` so the hot path is a single atomic add.
#[derive(Default)]
pub(crate) struct TaskCounters {
    source_polled: AtomicU64,
    source_written: AtomicU64,
    sink_put: AtomicU64,
}

impl TaskCounters {
    pub fn source_records_polled(&self, n: u64) {
        self.source_polled.fetch_add(n, Ordering::Relaxed);
    }

    pub fn source_records_written(&self, n: u64) {
        self.source_written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sink_records_put(&self, n: u64) {
        self.sink_put.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counters shared by the session and the tasks.
#[derive(Default)]
pub(crate) struct Metrics {
    connected: AtomicBool,
    sessions: AtomicU64,
    fenced: AtomicU64,
    running_tasks: AtomicU64,
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
        let tasks = self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let series: [(&str, &str, ReadCounter); 3] = [
            (SOURCE_RECORD_POLL_TOTAL, "Records polled by the source task.", |c| {
                c.source_polled.load(Ordering::Relaxed)
            }),
            (SOURCE_RECORD_WRITE_TOTAL, "Records the source task wrote to Kafka (acknowledged).", |c| {
                c.source_written.load(Ordering::Relaxed)
            }),
            (SINK_RECORD_SEND_TOTAL, "Records handed to the sink task.", |c| c.sink_put.load(Ordering::Relaxed)),
        ];
        for (name, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (id, counters) in &tasks {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{}\"}} {}",
                    escape_label(&id.connector),
                    id.task,
                    read(counters)
                );
            }
        }
        out
    }
}

/// Reads one counter of a task.
type ReadCounter = fn(&TaskCounters) -> u64;

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `/metrics` and `/health` until `shutdown`. `/health` answers 200 while connected to the control plane and
/// 503 otherwise, so it works as a readiness probe.
pub(crate) async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let app =
        Router::new().route("/metrics", get(metrics_handler)).route("/health", get(health_handler)).with_state(metrics);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_task_series_with_labels() {
        let metrics = Metrics::default();
        let id = TaskKey { connector: "file-\"src\"".into(), task: 2 };
        metrics.task(&id).source_records_polled(3);
        metrics.task(&id).source_records_written(2);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"kafka_connect_source_task_metrics_source_record_poll_total{connector="file-\"src\"",task="2"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"kafka_connect_source_task_metrics_source_record_write_total{connector="file-\"src\"",task="2"} 2"#
        ));
        metrics.remove_task(&id);
        assert!(!metrics.render().contains("task=\"2\""));
    }
}
