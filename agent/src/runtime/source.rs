//! The source loop: poll the connector's task, convert, produce to Kafka with many records in flight, and report
//! the offsets of acknowledged records at `offset.flush.interval.ms`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use sluice_connectors::{SourceRecord, SourceTask, SourceTaskContext, TransformChain, registry};
use sluice_proto::agent::TaskState;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::offsets::SourceOffsetTracker;
use super::{Control, StopMode, TaskContext, TaskError, control_changed, current_control, stop_requested};
use crate::metrics::TaskCounters;

/// At most this many records of one task wait for Kafka's acknowledgement; beyond it polling pauses, so a slow
/// broker slows the source instead of growing memory.
const MAX_IN_FLIGHT: usize = 10_000;

/// One delivery report: the record's sequence number and the error if Kafka refused it for good.
type Delivery = (u64, Option<KafkaError>);

/// Forwards librdkafka's delivery callbacks (on the producer's polling thread) to the task's async loop.
struct DeliveryReports {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let error = result.as_ref().err().map(|(err, _)| err.clone());
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
    let converters = Converters {
        key: ctx.worker.converter(&connector_config, true)?,
        value: ctx.worker.converter(&connector_config, false)?,
    };
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
        converters,
        transforms,
        tolerate_errors: super::tolerates_record_errors(ctx),
        key_buf: Vec::new(),
        value_buf: Vec::new(),
        has_key: false,
        has_value: false,
        counters: ctx.metrics.task(&ctx.id),
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
}

struct SourcePipeline<'a> {
    ctx: &'a TaskContext,
    producer: TaskProducer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    tracker: SourceOffsetTracker,
    converters: Converters,
    /// The connector's `transforms` chain, applied before conversion (a no-op when empty).
    transforms: TransformChain,
    tolerate_errors: bool,
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
            self.drain_deliveries()?;
            if Instant::now() >= next_flush {
                self.commit(task).await;
                next_flush = Instant::now() + interval;
            }
            if paused == Some(true) || self.tracker.in_flight() >= MAX_IN_FLIGHT {
                tokio::select! {
                    _ = control_changed(control) => {}
                    Some(delivery) = self.deliveries.recv() => self.on_delivery(delivery)?,
                    _ = tokio::time::sleep_until(next_flush) => {}
                }
                continue;
            }
            // `poll` is not cancel-safe (records read but not returned would be lost to this run), so only a stop
            // request may interrupt it; pause and commit wait until it returns, which it should within a second.
            let records = tokio::select! {
                mode = stop_requested(control) => break mode,
                polled = task.poll() => polled.map_err(TaskError::connector("source task failed to poll"))?,
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
            let record = match self.transforms.apply_source(record) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    // Filtered out: nothing to send, its offset counts as done.
                    self.tracker.ack(seq);
                    continue;
                }
                Err(source) if self.tolerate_errors => {
                    warn!(error = %source.trace(), "skipping a record that failed a transform");
                    self.tracker.ack(seq);
                    continue;
                }
                Err(source) => return Err(TaskError::Transform { source }),
            };
            if let Err(err) = self.convert(&record) {
                if self.tolerate_errors {
                    warn!(topic = %record.topic, error = %err.trace(), "skipping a record that failed conversion");
                    self.tracker.ack(seq);
                    continue;
                }
                return Err(err);
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
            while let Some(rec) = pending.take() {
                match self.producer.send(rec) {
                    Ok(()) => {}
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                        pending = Some(rec);
                        // Wait for acks to make room; a stop wins (the unsent record is simply not committed).
                        tokio::select! {
                            mode = stop_requested(control) => return Ok(Some(mode)),
                            Some(delivery) = self.deliveries.recv() => {
                                record_delivery(&mut self.tracker, &self.counters, delivery)?;
                            }
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                    Err((err, _)) => {
                        return Err(TaskError::Kafka {
                            context: format!("failed to send a record to topic `{}`", record.topic),
                            source: err,
                        });
                    }
                }
            }
        }
        Ok(None)
    }

    fn convert(&mut self, record: &SourceRecord) -> Result<(), TaskError> {
        let describe = |side: &str| {
            format!(
                "{side} for topic `{}` from source partition {}",
                record.topic,
                serde_json::Value::Object((*record.source_partition).clone())
            )
        };
        self.has_key = self
            .converters
            .key
            .from_connect(&record.topic, record.key_schema.as_deref(), &record.key, &mut self.key_buf)
            .map_err(|source| TaskError::Convert { what: describe("key"), source })?;
        self.has_value = self
            .converters
            .value
            .from_connect(&record.topic, record.value_schema.as_deref(), &record.value, &mut self.value_buf)
            .map_err(|source| TaskError::Convert { what: describe("value"), source })?;
        Ok(())
    }

    fn drain_deliveries(&mut self) -> Result<(), TaskError> {
        while let Ok(delivery) = self.deliveries.try_recv() {
            self.on_delivery(delivery)?;
        }
        Ok(())
    }

    fn on_delivery(&mut self, delivery: Delivery) -> Result<(), TaskError> {
        record_delivery(&mut self.tracker, &self.counters, delivery)
    }

    /// Waits (bounded) until Kafka acknowledged everything produced so far.
    async fn drain_in_flight(&mut self, timeout: Duration) -> Result<(), TaskError> {
        let deadline = Instant::now() + timeout;
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                delivery = self.deliveries.recv() => match delivery {
                    Some(delivery) => self.on_delivery(delivery)?,
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
        if let Err(err) = task.commit().await {
            warn!(error = %err.trace(), "source task commit hook failed");
        }
    }
}

/// A refused record fails the task: its offset (and every later one) is never committed, so nothing is lost.
fn record_delivery(
    tracker: &mut SourceOffsetTracker,
    counters: &TaskCounters,
    (seq, error): Delivery,
) -> Result<(), TaskError> {
    if let Some(err) = error {
        return Err(TaskError::Kafka { context: "Kafka refused a record after retries".into(), source: err });
    }
    tracker.ack(seq);
    counters.source_records_written(1);
    Ok(())
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
