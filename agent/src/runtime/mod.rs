//! The task runtime: every assigned task runs as its own tokio task (a source loop or a sink loop), is steered by the
//! session through a [`watch`] channel and reports state changes and source offsets back through an mpsc channel.

pub(crate) mod config;
pub(crate) mod config_providers;
pub(crate) mod errors;
pub(crate) mod exactly_once;
mod fetch;
pub(crate) mod headers;
pub(crate) mod offsets;
mod producer;
pub(crate) mod shared;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod topics;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use sluice_connectors::ConnectError;
use sluice_proto::agent::{SourceOffset, TaskAssignment, TaskState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

pub(crate) use config::WorkerConfig;

use crate::fence::FenceTicket;
use crate::metrics::Metrics;

/// Identity of a task: connector name and task number, like Kafka Connect's `ConnectorTaskId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TaskKey {
    pub connector: String,
    pub task: u32,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

/// What the session wants a task to do. A `watch` keeps only the latest wish, which is all a task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    Pause,
    Stop(StopMode),
}

/// How a task stops; decides whether it may still report offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// Agent shutdown (or target state STOPPED): drain in-flight records, commit offsets, then stop.
    Graceful,
    /// The task moved away, got a new epoch, or its connector was stopped, while this agent holds its lease: drain
    /// in-flight records and report the offsets Kafka acknowledged, as in `Graceful`. The control plane accepts
    /// them while no other incarnation took the task over; a successor on this agent starts from them (see
    /// [`Progress`]). Sinks flush and commit to their consumer group, which the group generation fences.
    Revoked,
    /// The agent's lease may have expired and the task may already run elsewhere: stop at once, commit nothing.
    Fenced,
}

/// The source offsets (partition JSON → offset JSON, as the protocol carries them) a task reached: every offset
/// whose record and all earlier ones Kafka acknowledged, reported or not. Kept by the agent so that a successor of
/// the task on this agent (new epoch: restart, config change) or the same task given back after a fence starts
/// exactly where this one ended instead of at the last commit that reached the store.
pub(crate) type Progress = Arc<Mutex<BTreeMap<String, String>>>;

/// Adds offsets to a task's progress.
pub(crate) fn record_progress(progress: &Progress, offsets: &[SourceOffset]) {
    if offsets.is_empty() {
        return;
    }
    let mut reached = progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for o in offsets {
        reached.insert(o.partition_json.clone(), o.offset_json.clone());
    }
}

/// A task's progress, as offsets.
pub(crate) fn progress_offsets(progress: &Progress) -> Vec<SourceOffset> {
    let reached = progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    reached.iter().map(|(p, o)| SourceOffset { partition_json: p.clone(), offset_json: o.clone() }).collect()
}

/// A report from a task to the session.
#[derive(Debug)]
pub(crate) struct TaskEvent {
    pub id: TaskKey,
    pub epoch: u64,
    pub kind: TaskEventKind,
}

#[derive(Debug)]
pub(crate) enum TaskEventKind {
    State {
        state: TaskState,
        trace: String,
    },
    /// Latest acknowledged offsets per source partition since the previous report.
    Offsets(Vec<SourceOffset>),
    /// A source task produced to (a sink task consumed from) this topic for the first time since it started.
    TopicUsed(String),
    /// The task's future finished (after stopping or failing).
    Exited,
    /// The backoff before restarting a failed task is over (sent by the supervisor's own timer).
    RestartDue,
    /// The task wrote a value of its connector's shared state (`value_json` empty: removed it).
    SharedPut {
        key: String,
        value_json: String,
    },
}

/// The session's side of a running task.
pub(crate) struct TaskHandle {
    pub control: watch::Sender<Control>,
    pub join: JoinHandle<()>,
    pub progress: Progress,
}

impl TaskHandle {
    pub fn send(&self, control: Control) {
        // An error only means the task already exited, which is what any control wants eventually.
        let _ = self.control.send(control);
    }
}

/// Everything a source or sink loop needs; built once per task start.
pub(crate) struct TaskContext {
    pub id: TaskKey,
    pub epoch: u64,
    pub assignment: TaskAssignment,
    pub worker: Arc<WorkerConfig>,
    pub events: mpsc::UnboundedSender<TaskEvent>,
    pub metrics: Arc<Metrics>,
    /// The lease fence as of this task's start: asked right before every batch produced or put and every commit.
    pub fence: FenceTicket,
    pub progress: Progress,
    /// The connector's shared state, writing as this incarnation.
    pub shared: sluice_connectors::shared::SharedState,
}

impl TaskContext {
    /// True when the agent's lease may have expired (or the agent fenced itself since this task started): the task
    /// may already run elsewhere and must not produce, put or commit anything more. `what` names the effect that
    /// was about to happen, for the log.
    pub fn fenced(&self, what: &str) -> bool {
        if self.fence.allows() {
            return false;
        }
        warn!(effect = what, "the agent's lease may have expired: not acting, stopping the task (self-fenced)");
        true
    }

    fn emit(&self, kind: TaskEventKind) {
        if let TaskEventKind::State { state, .. } = &kind {
            self.metrics.task_state(&self.id, *state);
        }
        let _ = self.events.send(TaskEvent { id: self.id.clone(), epoch: self.epoch, kind });
    }

    /// Reports a topic a source task started producing to, or a sink task consuming from (once per topic and task run).
    pub fn report_topic(&self, topic: &str) {
        self.emit(TaskEventKind::TopicUsed(topic.to_string()));
    }

    pub fn report_state(&self, state: TaskState) {
        self.emit(TaskEventKind::State { state, trace: String::new() });
    }

    pub fn report_offsets(&self, offsets: Vec<SourceOffset>) {
        if !offsets.is_empty() {
            record_progress(&self.progress, &offsets);
            self.emit(TaskEventKind::Offsets(offsets));
        }
    }

    /// The connector's configuration as the user wrote it.
    pub fn connector_config(&self) -> sluice_connectors::ConfigMap {
        self.assignment.connector_config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The task configuration: the connector's configuration overlaid with the task split's keys.
    pub fn task_config(&self) -> sluice_connectors::ConfigMap {
        let mut config = self.connector_config();
        config.extend(self.assignment.task_config.iter().map(|(k, v)| (k.clone(), v.clone())));
        config
    }

    pub fn connector_class(&self) -> Result<&str, TaskError> {
        self.assignment
            .connector_config
            .get("connector.class")
            .map(String::as_str)
            .ok_or_else(|| TaskError::Config { key: "connector.class".into(), message: "missing".into() })
    }
}

/// Why a task failed. The `Display` and source chain become the `trace` of its FAILED status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TaskError {
    #[error("invalid configuration for `{key}`: {message}")]
    Config { key: String, message: String },
    #[error("unknown connector class `{0}`")]
    UnknownConnector(String),
    #[error("connector `{class}` cannot run a {kind} task")]
    WrongType { class: String, kind: &'static str },
    #[error("unknown converter class `{class}` for `{key}`")]
    UnknownConverter { key: String, class: String },
    #[error("failed to configure converter `{class}` for `{key}`")]
    ConverterConfig {
        key: String,
        class: String,
        #[source]
        source: ConnectError,
    },
    #[error("{context}")]
    Connector {
        context: &'static str,
        #[source]
        source: ConnectError,
    },
    #[error("Failed to transform a record with the `transforms` chain")]
    Transform {
        #[source]
        source: ConnectError,
    },
    #[error("Failed to convert record {what}")]
    Convert {
        what: String,
        #[source]
        source: ConnectError,
    },
    #[error("{context}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("exactly-once source delivery: {0}")]
    ExactlyOnce(String),
    #[error("{context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the sink's consumer thread ended unexpectedly")]
    ConsumerThreadEnded,
    /// A bug in a connector or the runtime: the task fails with the message (the agent and its other tasks go on).
    #[error("the task panicked: {0}")]
    Panicked(String),
}

impl TaskError {
    pub fn connector(context: &'static str) -> impl FnOnce(ConnectError) -> TaskError {
        move |source| TaskError::Connector { context, source }
    }

    pub fn kafka(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> TaskError {
        let context = context.into();
        move |source| TaskError::Kafka { context, source }
    }

    /// The readable cause chain, one cause per line, as Kafka Connect shows in a FAILED task's `trace`.
    pub fn trace(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str("\nCaused by: ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

/// The same task's previous incarnation on this agent.
pub(crate) struct Predecessor {
    pub join: JoinHandle<()>,
    pub progress: Progress,
}

/// Starts a task. When `predecessor` is the same task's previous incarnation (epoch change), the new one starts
/// only after the old one exited (or after the graceful timeout), so two copies never poll side by side for long,
/// and a source starts from the offsets the old one reached (reporting them again under its own epoch, which the
/// control plane accepts), not from those the assignment carried when it was pushed.
#[allow(clippy::too_many_arguments)] // each is one of the agent's shared parts a task needs; both callers are in the supervisor
pub(crate) fn spawn_task(
    assignment: TaskAssignment,
    initial: Control,
    worker: Arc<WorkerConfig>,
    events: mpsc::UnboundedSender<TaskEvent>,
    metrics: Arc<Metrics>,
    fence: FenceTicket,
    predecessor: Option<Predecessor>,
    shared: &shared::SharedStates,
) -> TaskHandle {
    let id = TaskKey {
        connector: assignment.id.as_ref().map(|t| t.connector.clone()).unwrap_or_default(),
        task: assignment.id.as_ref().map(|t| t.task).unwrap_or_default(),
    };
    let epoch = assignment.epoch;
    let (control_tx, control_rx) = watch::channel(initial);
    let span = info_span!("task", connector = %id.connector, task = id.task, epoch);
    metrics.task_startup_attempt(&id);
    let progress = Progress::default();
    let shared = shared.handle(&id, epoch, events.clone());
    let ctx = TaskContext { id, epoch, assignment, worker, events, metrics, fence, progress: progress.clone(), shared };
    let join = tokio::spawn(
        async move {
            let mut ctx = ctx;
            if let Some(previous) = predecessor {
                wait_or_abort(previous.join, ctx.worker.shutdown_timeout).await;
                let reached = progress_offsets(&previous.progress);
                if !reached.is_empty() && ctx.assignment.connector_type == "source" {
                    info!(partitions = reached.len(), "starting from the offsets the previous incarnation reached");
                    for offset in &reached {
                        ctx.assignment.offsets.retain(|o| o.partition_json != offset.partition_json);
                        ctx.assignment.offsets.push(offset.clone());
                    }
                    ctx.report_offsets(reached);
                }
            }
            let kind = ctx.assignment.connector_type.clone();
            // Config-provider references (`${env:X}`, `${file:path:key}`) are resolved here and nowhere else.
            let resolved = config_providers::resolve_assignment(&ctx.worker.raw, &mut ctx.assignment);
            let run = async {
                match kind.as_str() {
                    _ if resolved.is_err() => resolved,
                    "source" => source::run(&ctx, control_rx).await,
                    "sink" => sink::run(&ctx, control_rx).await,
                    other => Err(TaskError::Config {
                        key: "connector_type".into(),
                        message: format!("expected `source` or `sink`, got `{other}`"),
                    }),
                }
            };
            // A panic in connector code fails this task with its message (FAILED, restartable), never leaves the
            // task RUNNING with nothing moving.
            let result = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(result) => result,
                Err(payload) => Err(TaskError::Panicked(panic_message(payload.as_ref()))),
            };
            if let Err(err) = result {
                let trace = err.trace();
                error!(error = %trace, "task failed");
                ctx.emit(TaskEventKind::State { state: TaskState::Failed, trace });
            }
            ctx.emit(TaskEventKind::Exited);
        }
        .instrument(span),
    );
    TaskHandle { control: control_tx, join, progress }
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Waits for a task to finish; aborts it when it overstays `grace` (a connector stuck in `poll` or `stop`).
pub(crate) async fn wait_or_abort(mut join: JoinHandle<()>, grace: Duration) {
    if tokio::time::timeout(grace, &mut join).await.is_err() {
        warn!(grace_ms = grace.as_millis() as u64, "task did not stop in time, aborting it");
        join.abort();
        let _ = join.await;
    }
}

/// Waits until the session asks the task to stop; a dropped sender (session gone) counts as fenced.
pub(crate) async fn stop_requested(control: &mut watch::Receiver<Control>) -> StopMode {
    loop {
        if let Control::Stop(mode) = *control.borrow_and_update() {
            return mode;
        }
        if control.changed().await.is_err() {
            return StopMode::Fenced;
        }
    }
}

/// The current wish; a dropped sender counts as fenced.
pub(crate) fn current_control(control: &mut watch::Receiver<Control>) -> Control {
    if control.has_changed().is_err() {
        return Control::Stop(StopMode::Fenced);
    }
    *control.borrow_and_update()
}

/// Waits for the next change of the wish (the caller re-reads it with [`current_control`]).
/// A dropped sender resolves at once; the caller then reads Fenced and exits.
pub(crate) async fn control_changed(control: &mut watch::Receiver<Control>) {
    let _ = control.changed().await;
}
