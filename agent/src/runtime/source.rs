//! The source loop: poll the connector's task, convert, produce to Kafka with many records in flight, and report
//! the offsets of acknowledged records at `offset.flush.interval.ms`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};
use sluice_connectors::{ConnectError, SourceRecord, SourceTask, SourceTaskContext, TransformChain, registry};
use sluice_proto::agent::TaskState;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::errors::{ErrorPolicy, FailedRecord, RecordErrorHandler, RecordFailure, Stage};
use super::offsets::SourceOffsetTracker;
use super::topics::TopicCreator;
use super::{Control, StopMode, TaskContext, TaskError, control_changed, current_control, stop_requested};
use crate::metrics::TaskCounters;

/// At most this many records of one task wait for Kafka's acknowledgement; beyond it polling pauses, so a slow
/// broker slows the source instead of growing memory.
const MAX_IN_FLIGHT: usize = 10_000;

/// One delivery report: the record's sequence number and, if Kafka refused it for good, the error and the topic.
type Delivery = (u64, Option<(KafkaError, String)>);

/// Forwards librdkafka's delivery callbacks (on the producer's polling thread) to the task's async loop.
struct DeliveryReports {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let error = result.as_ref().err().map(|(err, message)| (err.clone(), message.topic().to_string()));
        let _ = self.tx.send((seq as u64, error));
    }
}

type TaskProducer = ThreadedProducer<DeliveryReports>;

/// Runs a source task until it is stopped or fails. Errors before `start` succeeded never call `stop`.
#[instrument(name = "source", skip_all, fields(connector = %ctx.id.connector, task = ctx.id.task, epoch = ctx.epoch))]
pub(crate) async fn run(ctx: &TaskContext, mut control: watch::Receiver<Control>) -> Result<(), TaskError> {
    let class = ctx.connector_class()?;
    let connector = registry::connector(class).ok_or_else(|| TaskError::UnknownConnector(class.to_string()))?;
    let mut task = connector
        .create_source_task()
        .ok_or_else(|| TaskError::WrongType { class: class.to_string(), kind: "source" })?;
    let connector_config = ctx.connector_config();
    ctx.worker.client_override_policy.check(&connector_config)?;
    let topics = TopicCreator::new(ctx)?;
    let converters = Converters {
        key: ctx.worker.converter(&connector_config, true)?,
        value: ctx.worker.converter(&connector_config, false)?,
        classes: [
            super::sink::converter_class(&ctx.worker, &connector_config, "key.converter"),
            super::sink::converter_class(&ctx.worker, &connector_config, "value.converter"),
        ],
    };
    let counters = ctx.metrics.task(&ctx.id);
    let errors = RecordErrorHandler::new(
        ErrorPolicy::from_config(&connector_config, false)?,
        ctx.id.clone(),
        counters.clone(),
        None,
    );
    let (delivery_tx, delivery_rx) = mpsc::unbounded_channel();
    let producer: TaskProducer = ctx
        .worker
        .producer_config(&connector_config, &ctx.id)
        .create_with_context(DeliveryReports { tx: delivery_tx })
        .map_err(TaskError::kafka("failed to create the Kafka producer"))?;

    let transforms = TransformChain::from_config(&connector_config)
        .map_err(|source| TaskError::Connector { context: "invalid `transforms` configuration", source })?;
    let start_context = SourceTaskContext {
        connector: ctx.id.connector.clone(),
        task: ctx.id.task,
        config: ctx.task_config(),
        offsets: Arc::new(committed_offsets(ctx)),
    };
    if let Err(err) = task.start(start_context).await {
        release_producer(producer).await;
        return Err(TaskError::Connector { context: "source task failed to start", source: err });
    }
    info!("source task started");

    let mut pipeline = SourcePipeline {
        ctx,
        producer,
        deliveries: delivery_rx,
        tracker: SourceOffsetTracker::new(),
        topics,
        converters,
        transforms,
        errors,
        key_buf: Vec::new(),
        value_buf: Vec::new(),
        has_key: false,
        has_value: false,
        counters,
    };
    let result = pipeline.run_started(task.as_mut(), &mut control).await;
    let stopped = task.stop().await;
    release_producer(pipeline.producer).await;
    info!("source task stopped");
    result?;
    stopped.map_err(TaskError::connector("source task failed to stop"))
}

/// Drops a producer off the async threads: dropping purges the queue and joins its polling thread, which blocks.
async fn release_producer(producer: TaskProducer) {
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
}

/// Committed offsets from the assignment, keyed by canonical partition JSON as `SourceTaskContext` expects.
fn committed_offsets(ctx: &TaskContext) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for entry in &ctx.assignment.offsets {
        if entry.offset_json.is_empty() {
            continue;
        }
        let partition = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&entry.partition_json);
        let offset = serde_json::from_str::<serde_json::Value>(&entry.offset_json);
        match (partition, offset) {
            (Ok(partition), Ok(offset)) => {
                out.insert(sluice_connectors::record::partition_key(&partition), offset);
            }
            _ => warn!(partition = %entry.partition_json, "ignoring a committed offset that is not valid JSON"),
        }
    }
    out
}

struct Converters {
    key: Box<dyn sluice_connectors::Converter>,
    value: Box<dyn sluice_connectors::Converter>,
    /// Class names of the key and value converters, for error reports.
    classes: [String; 2],
}

struct SourcePipeline<'a> {
    ctx: &'a TaskContext,
    producer: TaskProducer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    tracker: SourceOffsetTracker,
    /// Creates topics before their first record (`topic.creation.*`); `None` when not used.
    topics: Option<TopicCreator>,
    converters: Converters,
    /// The connector's `transforms` chain, applied before conversion (a no-op when empty).
    transforms: TransformChain,
    errors: RecordErrorHandler,
    /// Reused for every record so steady-state conversion does not allocate.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    /// Whether the last conversion produced a key / value (`false` is a Kafka null).
    has_key: bool,
    has_value: bool,
    counters: Arc<TaskCounters>,
}

impl SourcePipeline<'_> {
    async fn run_started(
        &mut self,
        task: &mut dyn SourceTask,
        control: &mut watch::Receiver<Control>,
    ) -> Result<(), TaskError> {
        let interval = self.ctx.worker.offset_flush_interval;
        let mut next_flush = Instant::now() + interval;
        let mut paused: Option<bool> = None;
        let mut poll_retry = None;
        let mode = loop {
            match current_control(control) {
                Control::Stop(mode) => break mode,
                Control::Pause if paused != Some(true) => {
                    paused = Some(true);
                    info!("source task paused");
                    self.ctx.report_state(TaskState::Paused);
                }
                Control::Run if paused != Some(false) => {
                    paused = Some(false);
                    self.ctx.report_state(TaskState::Running);
                }
                _ => {}
            }
            self.drain_deliveries().await?;
            if Instant::now() >= next_flush {
                self.commit(task).await;
                next_flush = Instant::now() + interval;
            }
            if paused == Some(true) || self.tracker.in_flight() >= MAX_IN_FLIGHT {
                tokio::select! {
                    _ = control_changed(control) => {}
                    Some(delivery) = self.deliveries.recv() => self.on_delivery(delivery).await?,
                    _ = tokio::time::sleep_until(next_flush) => {}
                }
                continue;
            }
            // `poll` is not cancel-safe (records read but not returned would be lost to this run), so only a stop
            // request may interrupt it; pause and commit wait until it returns, which it should within a second.
            let records = tokio::select! {
                mode = stop_requested(control) => break mode,
                polled = task.poll() => polled,
            };
            let records = match records {
                Ok(records) => {
                    poll_retry = None;
                    records
                }
                Err(error) if error.is_retriable() => {
                    // Kafka Connect retries a retriable poll failure; here within `errors.retry.timeout`.
                    self.counters.record_failure();
                    let retry = poll_retry.get_or_insert_with(|| self.errors.policy.retry());
                    let Some(delay) = retry.next_delay() else {
                        return Err(super::sink::retries_exhausted("source task failed to poll", retry, error));
                    };
                    self.counters.retry();
                    warn!(error = %error.trace(), attempt = retry.attempts(), delay_ms = delay.as_millis() as u64,
                        stage = Stage::TaskPoll.name(), "poll failed with a retriable error; retrying");
                    tokio::select! {
                        mode = stop_requested(control) => break mode,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
                Err(error) => return Err(TaskError::connector("source task failed to poll")(error)),
            };
            if records.is_empty() {
                continue;
            }
            self.counters.source_records_polled(records.len() as u64);
            if let Some(mode) = self.produce_batch(records, control).await? {
                break mode;
            }
        };
        if mode == StopMode::Graceful {
            self.drain_in_flight(self.ctx.worker.shutdown_timeout).await?;
            self.commit(task).await;
        } else {
            debug!(?mode, in_flight = self.tracker.in_flight(), "stopping without committing offsets");
        }
        Ok(())
    }

    /// Converts and enqueues a batch; returns early with the stop mode if a stop arrives while the queue is full.
    async fn produce_batch(
        &mut self,
        records: Vec<SourceRecord>,
        control: &mut watch::Receiver<Control>,
    ) -> Result<Option<StopMode>, TaskError> {
        for record in records {
            let seq = self.tracker.track(&record.source_partition, &record.source_offset);
            let record = match self.transforms.apply_source_traced(record) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    // Filtered out: nothing to send, its offset counts as done.
                    self.tracker.ack(seq);
                    continue;
                }
                Err(failure) => {
                    let fail_with = TaskError::Transform { source: copy_error(&failure.error) };
                    let describe = || format!("{{alias={}}}", failure.alias);
                    let failed = RecordFailure {
                        stage: Stage::Transformation,
                        class: failure.class,
                        error: &failure.error,
                        record: FailedRecord::Source { describe: &describe },
                    };
                    self.errors.record_failed(failed, fail_with).await?;
                    // Skipped (errors.tolerance=all): its offset counts as done.
                    self.tracker.ack(seq);
                    continue;
                }
            };
            if let Err((stage, error)) = self.convert(&record) {
                let class = self.converters.classes[usize::from(stage == Stage::ValueConverter)].clone();
                let side = if stage == Stage::KeyConverter { "key" } else { "value" };
                let what = format!(
                    "{side} for topic `{}` from source partition {} with {class}",
                    record.topic,
                    serde_json::Value::Object((*record.source_partition).clone())
                );
                let fail_with = TaskError::Convert { what, source: copy_error(&error) };
                let describe = || describe_source_record(&record);
                let failed = RecordFailure {
                    stage,
                    class: &class,
                    error: &error,
                    record: FailedRecord::Source { describe: &describe },
                };
                self.errors.record_failed(failed, fail_with).await?;
                self.tracker.ack(seq);
                continue;
            }
            if let Some(topics) = &mut self.topics {
                topics.ensure(&record.topic).await?;
            }
            let headers = headers_of(&record);
            let mut pending = BaseRecord::with_opaque_to(&record.topic, seq as usize);
            pending.partition = record.partition;
            pending.timestamp = record.timestamp;
            pending.headers = headers;
            if self.has_key {
                pending = pending.key(self.key_buf.as_slice());
            }
            if self.has_value {
                pending = pending.payload(self.value_buf.as_slice());
            }
            let mut pending = Some(pending);
            let mut retry = None;
            while let Some(rec) = pending.take() {
                match self.producer.send(rec) {
                    Ok(()) => {}
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                        pending = Some(rec);
                        // Wait for acks to make room; a stop wins (the unsent record is simply not committed).
                        tokio::select! {
                            mode = stop_requested(control) => return Ok(Some(mode)),
                            Some(delivery) = self.deliveries.recv() => {
                                handle_delivery(&mut self.tracker, &self.counters, &self.errors, delivery).await?;
                            }
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                    Err((err, rec)) if is_retriable(&err) => {
                        self.counters.record_failure();
                        let retry = retry.get_or_insert_with(|| self.errors.policy.retry());
                        let Some(delay) = retry.next_delay() else {
                            let error = ConnectError::retriable(format!("producing to topic `{}`", record.topic), err);
                            return Err(super::sink::retries_exhausted("failed to send a record", retry, error));
                        };
                        self.counters.retry();
                        warn!(error = %err, attempt = retry.attempts(), delay_ms = delay.as_millis() as u64,
                            stage = Stage::KafkaProduce.name(), "send failed with a retriable error; retrying");
                        pending = Some(rec);
                        tokio::select! {
                            mode = stop_requested(control) => return Ok(Some(mode)),
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                    Err((err, _)) => {
                        let context = format!("failed to send a record to topic `{}`", record.topic);
                        let error = ConnectError::fatal(context.clone(), err.clone());
                        let failed = RecordFailure {
                            stage: Stage::KafkaProduce,
                            class: "org.apache.kafka.clients.producer.KafkaProducer",
                            error: &error,
                            record: FailedRecord::TopicOnly { topic: &record.topic },
                        };
                        self.errors.record_failed(failed, TaskError::Kafka { context, source: err }).await?;
                        self.tracker.ack(seq);
                    }
                }
            }
        }
        Ok(None)
    }

    fn convert(&mut self, record: &SourceRecord) -> Result<(), (Stage, ConnectError)> {
        self.has_key = self
            .converters
            .key
            .from_connect(&record.topic, record.key_schema.as_deref(), &record.key, &mut self.key_buf)
            .map_err(|e| (Stage::KeyConverter, e))?;
        self.has_value = self
            .converters
            .value
            .from_connect(&record.topic, record.value_schema.as_deref(), &record.value, &mut self.value_buf)
            .map_err(|e| (Stage::ValueConverter, e))?;
        Ok(())
    }

    async fn drain_deliveries(&mut self) -> Result<(), TaskError> {
        while let Ok(delivery) = self.deliveries.try_recv() {
            self.on_delivery(delivery).await?;
        }
        Ok(())
    }

    async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), TaskError> {
        handle_delivery(&mut self.tracker, &self.counters, &self.errors, delivery).await
    }

    /// Waits (bounded) until Kafka acknowledged everything produced so far.
    async fn drain_in_flight(&mut self, timeout: Duration) -> Result<(), TaskError> {
        let deadline = Instant::now() + timeout;
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                delivery = self.deliveries.recv() => match delivery {
                    Some(delivery) => self.on_delivery(delivery).await?,
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    warn!(in_flight = self.tracker.in_flight(), "records still unacknowledged at shutdown; their offsets are not committed");
                    break;
                }
            }
        }
        Ok(())
    }

    /// Reports the acknowledged offsets, then lets the connector know (`SourceTask::commit`).
    async fn commit(&mut self, task: &mut dyn SourceTask) {
        let offsets = self.tracker.take_committable();
        if offsets.is_empty() {
            return;
        }
        debug!(partitions = offsets.len(), "reporting source offsets");
        self.ctx.report_offsets(offsets);
        self.counters.offset_commit(true);
        if let Err(err) = task.commit().await {
            warn!(error = %err.trace(), "source task commit hook failed");
        }
    }
}

/// An acknowledged record advances the offsets. A record Kafka refused after the producer's own retries
/// (`delivery.timeout.ms`) fails the task, or with `errors.tolerance=all` is skipped as Kafka Connect does since
/// KIP-779 (its offset then counts as done).
async fn handle_delivery(
    tracker: &mut SourceOffsetTracker,
    counters: &TaskCounters,
    errors: &RecordErrorHandler,
    (seq, error): Delivery,
) -> Result<(), TaskError> {
    if let Some((err, topic)) = error {
        let context = format!("Kafka refused a record for topic `{topic}` after retries");
        let error = ConnectError::fatal(context.clone(), err.clone());
        let failed = RecordFailure {
            stage: Stage::KafkaProduce,
            class: "org.apache.kafka.clients.producer.KafkaProducer",
            error: &error,
            record: FailedRecord::TopicOnly { topic: &topic },
        };
        errors.record_failed(failed, TaskError::Kafka { context, source: err }).await?;
        tracker.ack(seq);
        return Ok(());
    }
    tracker.ack(seq);
    counters.source_records_written(1);
    Ok(())
}

/// Errors librdkafka reports as transient when a record is handed to it (not after delivery).
fn is_retriable(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(|code| {
        matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
        )
    })
}

/// `ConnectError` is not `Clone`: a copy with the same kind and the readable chain, for the task's trace.
pub(super) fn copy_error(error: &ConnectError) -> ConnectError {
    match error {
        ConnectError::Config { key, message } => ConnectError::Config { key: key.clone(), message: message.clone() },
        ConnectError::Data(message) => ConnectError::Data(message.clone()),
        other => ConnectError::Other(other.trace()),
    }
}

/// A source record as Kafka Connect's `SourceRecord.toString()` shows it in the error log.
fn describe_source_record(record: &SourceRecord) -> String {
    format!(
        "SourceRecord{{sourcePartition={}, sourceOffset={}}} ConnectRecord{{topic='{}', kafkaPartition={:?}, key={:?}, value={:?}, timestamp={:?}, headers={:?}}}",
        serde_json::Value::Object((*record.source_partition).clone()),
        record.source_offset,
        record.topic,
        record.partition,
        record.key,
        record.value,
        record.timestamp,
        record.headers
    )
}

fn headers_of(record: &SourceRecord) -> Option<OwnedHeaders> {
    if record.headers.is_empty() {
        return None;
    }
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header { key, value: value.as_deref() });
    }
    Some(headers)
}
