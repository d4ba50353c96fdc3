//! The source loop: poll the connector's task, convert, produce to Kafka with many records in flight, and report
//! the offsets of acknowledged records at `offset.flush.interval.ms`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig};
use rdkafka::{ClientContext, Message};
use sluice_connectors::{
    CommittedOffsets, ConnectError, SourceRecord, SourceTask, SourceTaskContext, TransformChain, registry,
};
use sluice_proto::agent::{SourceOffset, TaskState};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::errors::{
    ErrorPolicy, FailedRecord, RecordErrorHandler, RecordFailure, Stage, converter_index, converter_side,
};
use super::exactly_once::{self, Boundary, ExactlyOnce, TRANSACTION_TIMEOUT};
use super::headers::HeaderConversion;
use super::offsets::SourceOffsetTracker;
use super::producer::PolledProducer;
use super::topics::TopicCreator;
use super::{Control, StopMode, TaskContext, TaskError, control_changed, current_control, stop_requested};
use crate::metrics::{TaskCounters, TaskInfo};

/// At most this many records of one task wait for Kafka's acknowledgement; beyond it polling pauses, so a slow
/// broker slows the source instead of growing memory.
const MAX_IN_FLIGHT: usize = 10_000;

/// The delivery opaque of the offsets records an exactly-once task writes into its transactions: not a tracked
/// record (a failure to deliver one fails the transaction's commit instead).
const OFFSETS_OPAQUE: usize = usize::MAX;

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

type TaskProducer = PolledProducer<DeliveryReports>;

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
        header: ctx.worker.header_converter(&connector_config)?,
        classes: [
            super::sink::converter_class(&ctx.worker, &connector_config, "key.converter"),
            super::sink::converter_class(&ctx.worker, &connector_config, "value.converter"),
        ],
    };
    let counters = ctx.metrics.task(&ctx.id);
    counters.set_kind(true);
    counters.set_info(TaskInfo::new(
        connector.as_ref(),
        true,
        [converters.classes[0].clone(), converters.classes[1].clone(), converters.header.class.clone()],
    ));
    let errors = RecordErrorHandler::new(
        ErrorPolicy::from_config(&connector_config, false)?,
        ctx.id.clone(),
        counters.clone(),
        None,
    );
    let exactly_once = exactly_once::settings(&ctx.worker, &connector_config, &ctx.assignment.cluster, &ctx.id)?;
    let (delivery_tx, delivery_rx) = mpsc::unbounded_channel();
    let mut producer_config = ctx.worker.producer_config(&connector_config, &ctx.id);
    if let Some(eos) = &exactly_once {
        // Idempotence and acks=all are what transactions need, whatever `producer.*` says.
        producer_config
            .set("transactional.id", &eos.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        // A transaction must outlive its boundary interval, or the broker aborts it before it is committed.
        if let Boundary::Interval(every) = eos.boundary {
            let needed = (every + Duration::from_secs(30)).as_millis();
            let configured = producer_config.get("transaction.timeout.ms").and_then(|v| v.trim().parse::<u128>().ok());
            if configured.unwrap_or(60_000) < needed {
                producer_config.set("transaction.timeout.ms", needed.to_string());
            }
        }
    }
    let producer: Arc<TaskProducer> = Arc::new(
        PolledProducer::new(&producer_config, DeliveryReports { tx: delivery_tx }, "source-producer")
            .map_err(TaskError::kafka("failed to create the Kafka producer"))?,
    );
    let mut offsets = committed_offsets(ctx);
    let transactions = match exactly_once {
        None => None,
        Some(eos) => match start_transactional(ctx, &eos, &producer, &mut offsets).await {
            Ok(()) => Some(Transactions::new(eos)),
            Err(err) => {
                release_producer(producer).await;
                return Err(err);
            }
        },
    };

    let transforms = TransformChain::from_config(&connector_config)
        .map_err(|source| TaskError::Connector { context: "invalid `transforms` configuration", source })?;
    let start_context = SourceTaskContext {
        connector: ctx.id.connector.clone(),
        task: ctx.id.task,
        config: ctx.task_config(),
        offsets: Arc::new(offsets),
        shared: ctx.shared.clone(),
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
        headers: None,
        counters,
        topics_used: std::collections::HashSet::new(),
        transactions,
    };
    let result = pipeline.run_started(task.as_mut(), &mut control).await;
    if result.is_err() {
        // Nothing of a failed task's open transaction becomes visible.
        pipeline.abort_transaction().await;
    }
    let stopped = task.stop().await;
    release_producer(pipeline.producer).await;
    info!("source task stopped");
    result?;
    stopped.map_err(TaskError::connector("source task failed to stop"))
}

/// Drops a producer off the async threads (the client itself goes with its report thread, see `PolledProducer`).
async fn release_producer(producer: Arc<TaskProducer>) {
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
}

/// Exactly-once start: create the offsets topic if needed, fence earlier producers of this task
/// (`init_transactions` also aborts their open transaction), then read the offsets topic to its end; its offsets
/// for this connector win over the control plane's. Offsets newer than the control plane's are reported to it.
/// After a new offsets generation (the control plane's offsets were set from outside), those win instead: task 0
/// writes them into the offsets topic first, the other tasks wait for that (see `exactly_once`).
async fn start_transactional(
    ctx: &TaskContext,
    eos: &ExactlyOnce,
    producer: &Arc<TaskProducer>,
    offsets: &mut BTreeMap<String, serde_json::Value>,
) -> Result<(), TaskError> {
    exactly_once::ensure_offsets_topic(ctx, &eos.offsets_topic).await?;
    let generation = ctx.assignment.offsets_generation.as_str();
    if !generation.is_empty() && ctx.id.task != 0 {
        exactly_once::await_generation(ctx, &eos.offsets_topic, generation).await?;
    }
    let init = producer.clone();
    tokio::task::spawn_blocking(move || init.init_transactions(TRANSACTION_TIMEOUT))
        .await
        .map_err(|join| TaskError::ExactlyOnce(format!("init_transactions did not finish: {join}")))?
        .map_err(TaskError::kafka(format!(
            "failed to initialize the transactional producer `{}` (init_transactions)",
            eos.transactional_id
        )))?;
    info!(transactional_id = %eos.transactional_id, offsets_topic = %eos.offsets_topic, boundary = ?eos.boundary,
        "exactly-once: transactional producer initialized, earlier producers of this task are fenced");
    let stored = exactly_once::read_offsets(ctx, &eos.offsets_topic).await?;
    if !generation.is_empty() && stored.generation.as_deref() != Some(generation) {
        exactly_once::fence_other_tasks(ctx).await?;
        let records = exactly_once::generation_records(&ctx.id.connector, &stored, offsets, generation);
        write_generation(producer, &eos.offsets_topic, records).await?;
        // Created, or offsets altered or reset while STOPPED: the control plane's offsets are the ones to resume from.
        info!(generation, partitions = offsets.len(), "exactly-once: new offsets generation in the offsets topic");
        return Ok(());
    }
    let mut newer = Vec::new();
    for (partition, offset) in stored.offsets {
        match offset {
            Some(offset) => {
                if offsets.get(&partition) != Some(&offset) {
                    newer.push(SourceOffset { partition_json: partition.clone(), offset_json: offset.to_string() });
                }
                offsets.insert(partition, offset);
            }
            None => {
                if offsets.remove(&partition).is_some() {
                    newer.push(SourceOffset { partition_json: partition, offset_json: String::new() });
                }
            }
        }
    }
    if !newer.is_empty() {
        info!(partitions = newer.len(), "the offsets topic is ahead of the control plane; resuming from it");
        ctx.report_offsets(newer);
    }
    Ok(())
}

/// Writes a new offsets generation into the offsets topic in one transaction of the task's producer.
async fn write_generation(
    producer: &Arc<TaskProducer>,
    topic: &str,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
) -> Result<(), TaskError> {
    let context = || format!("failed to write the new source offsets into `{topic}`");
    producer.begin_transaction().map_err(TaskError::kafka(context()))?;
    for (key, value) in &records {
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, OFFSETS_OPAQUE).key(key.as_slice());
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        let mut pending = Some(record);
        while let Some(record) = pending.take() {
            match producer.send(record) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    pending = Some(record);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // The transaction stays open; the task fails, and its next start's `init_transactions` aborts it.
                Err((err, _)) => return Err(TaskError::kafka(context())(err)),
            }
        }
    }
    let commit = producer.clone();
    tokio::task::spawn_blocking(move || commit.commit_transaction(TRANSACTION_TIMEOUT))
        .await
        .map_err(|join| TaskError::ExactlyOnce(format!("commit_transaction did not finish: {join}")))?
        .map_err(TaskError::kafka(context()))
}

/// The open transaction of an exactly-once task.
struct Transactions {
    settings: ExactlyOnce,
    open: bool,
    /// With `transaction.boundary=interval`: when the open transaction is due for commit.
    deadline: Option<Instant>,
    /// A stop came in the middle of a batch: the transaction holds part of it, so it must not be committed.
    incomplete: bool,
    /// The latest offset per source partition (canonical JSON) of the records in the open transaction.
    offsets: BTreeMap<String, serde_json::Value>,
    /// Records of a batch share one `Arc` partition: its canonical key, cached.
    last_partition: Option<(Arc<serde_json::Map<String, serde_json::Value>>, String)>,
    /// Records polled into the open transaction (transaction-size-*).
    records: u64,
}

impl Transactions {
    fn new(settings: ExactlyOnce) -> Self {
        Transactions {
            settings,
            open: false,
            deadline: None,
            incomplete: false,
            offsets: BTreeMap::new(),
            last_partition: None,
            records: 0,
        }
    }

    fn note(&mut self, partition: &Arc<serde_json::Map<String, serde_json::Value>>, offset: &serde_json::Value) {
        if partition.is_empty() && offset.is_null() {
            return;
        }
        let key = match &self.last_partition {
            Some((cached, key)) if Arc::ptr_eq(cached, partition) || **cached == **partition => key.clone(),
            _ => {
                let key = sluice_connectors::record::partition_key(partition);
                self.last_partition = Some((partition.clone(), key.clone()));
                key
            }
        };
        self.offsets.insert(key, offset.clone());
    }
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
    header: super::headers::HeaderConversion,
    /// Class names of the key and value converters, for error reports.
    classes: [String; 2],
}

impl Converters {
    /// Kafka Connect's class name of the converter of a converter stage.
    fn class(&self, stage: Stage) -> &str {
        match converter_index(stage) {
            2 => &self.header.class,
            i => &self.classes[i],
        }
    }
}

struct SourcePipeline<'a> {
    ctx: &'a TaskContext,
    producer: Arc<TaskProducer>,
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
    /// The converted headers of the last conversion (`None`: no headers).
    headers: Option<OwnedHeaders>,
    counters: Arc<TaskCounters>,
    /// Topics already reported as used by this run of the task.
    topics_used: std::collections::HashSet<String>,
    /// Exactly-once delivery: the transaction state; `None` without.
    transactions: Option<Transactions>,
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
            self.counters.set_active_records(self.tracker.in_flight());
            // A task that waits on its commits gets them as soon as Kafka acknowledged something new.
            let asked = self.transactions.is_none() && self.tracker.has_committable() && task.commit_requested();
            if asked || Instant::now() >= next_flush {
                // With exactly-once, offsets are reported when their transaction commits instead.
                if self.transactions.is_none() {
                    self.commit(task).await;
                }
                next_flush = Instant::now() + interval;
            }
            if let Some(deadline) = self.transaction_deadline()
                && Instant::now() >= deadline
            {
                self.commit_transaction(task).await?;
            }
            if paused == Some(true) || self.tracker.in_flight() >= MAX_IN_FLIGHT {
                let wake = self.transaction_deadline().map_or(next_flush, |d| d.min(next_flush));
                tokio::select! {
                    _ = control_changed(control) => {}
                    Some(delivery) = self.deliveries.recv() => self.on_delivery(delivery).await?,
                    _ = tokio::time::sleep_until(wake) => {}
                }
                continue;
            }
            // `poll` is not cancel-safe (records read but not returned would be lost to this run), so only a stop
            // request may interrupt it; pause and commit wait until it returns, which it should within a second.
            let poll_started = Instant::now();
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
                    // Kafka Connect polls again after a retriable poll failure, forever (`errors.retry.timeout` is
                    // for converters and transforms); here after a backoff.
                    self.counters.record_failure();
                    let retry = poll_retry.get_or_insert_with(|| self.errors.policy.retry_task_failure());
                    let delay = retry.next_delay();
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
            self.counters.batch(records.len(), poll_started.elapsed(), true);
            if let Some(txn) = &mut self.transactions {
                txn.records += records.len() as u64;
            }
            let produced = self.produce_batch(records, control).await?;
            self.counters.active_records(self.tracker.in_flight());
            if let Some(mode) = produced {
                if let Some(txn) = &mut self.transactions {
                    txn.incomplete = true;
                }
                break mode;
            }
            if self.transactions.as_ref().is_some_and(|t| t.settings.boundary == Boundary::Poll) {
                self.commit_transaction(task).await?;
            }
        };
        if let Some(txn) = &self.transactions {
            if mode == StopMode::Graceful && !txn.incomplete {
                self.commit_transaction(task).await?;
            } else {
                debug!(?mode, "stopping: aborting the open transaction");
                self.abort_transaction().await;
            }
        } else if mode == StopMode::Fenced {
            // Nothing more goes out, but what Kafka already acknowledged is kept: if the same task comes back with
            // the same epoch (nobody else ran it), it resumes from here and commits these.
            self.drain_deliveries().await?;
            super::record_progress(&self.ctx.progress, &self.tracker.take_committable());
            // Records still queued in the client would reach Kafka after the fence: drop them.
            self.producer.purge(PurgeConfig::default().queue());
            debug!(?mode, in_flight = self.tracker.in_flight(), "stopping without committing offsets");
        } else {
            // Graceful or revoked: every record Kafka acknowledged is committed before the task is gone, so a
            // stop, restart, config change or move replays nothing.
            self.drain_in_flight(self.ctx.worker.shutdown_timeout).await?;
            self.commit(task).await;
            info!(?mode, "source task stopped: acknowledged offsets reported");
        }
        Ok(())
    }

    /// Converts and enqueues a batch; returns early with the stop mode if a stop arrives while the queue is full.
    async fn produce_batch(
        &mut self,
        records: Vec<SourceRecord>,
        control: &mut watch::Receiver<Control>,
    ) -> Result<Option<StopMode>, TaskError> {
        if self.ctx.fenced("produce") {
            return Ok(Some(StopMode::Fenced));
        }
        if let Some(txn) = &mut self.transactions
            && !txn.open
        {
            self.producer.begin_transaction().map_err(TaskError::kafka("failed to begin a transaction"))?;
            txn.open = true;
            txn.incomplete = false;
            if let Boundary::Interval(every) = txn.settings.boundary {
                txn.deadline = Some(Instant::now() + every);
            }
        }
        for mut record in records {
            // The offset moves to the tracker (no copy per record); error reports look it up there.
            let offset = std::mem::take(&mut record.source_offset);
            if let Some(txn) = &mut self.transactions {
                txn.note(&record.source_partition, &offset);
            }
            let seq = self.tracker.track(&record.source_partition, offset);
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
                let class = self.converters.class(stage).to_string();
                let side = converter_side(stage);
                let what = format!(
                    "{side} for topic `{}` from source partition {} with {class}",
                    record.topic,
                    serde_json::Value::Object((*record.source_partition).clone())
                );
                let fail_with = TaskError::Convert { what, source: copy_error(&error) };
                let describe = || describe_source_record(&record, self.tracker.offset(seq));
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
            if !self.topics_used.contains(&record.topic) {
                self.topics_used.insert(record.topic.clone());
                self.ctx.report_topic(&record.topic);
            }
            let headers = self.headers.take();
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
                        if self.ctx.fenced("produce") {
                            return Ok(Some(StopMode::Fenced));
                        }
                    }
                    Err((err, rec)) if is_retriable(&err) => {
                        self.counters.record_failure();
                        // Forever, as Kafka Connect sends again after a retriable send failure.
                        let retry = retry.get_or_insert_with(|| self.errors.policy.retry_task_failure());
                        let delay = retry.next_delay();
                        self.counters.retry();
                        warn!(error = %err, attempt = retry.attempts(), delay_ms = delay.as_millis() as u64,
                            stage = Stage::KafkaProduce.name(), "send failed with a retriable error; retrying");
                        pending = Some(rec);
                        tokio::select! {
                            mode = stop_requested(control) => return Ok(Some(mode)),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        if self.ctx.fenced("produce") {
                            return Ok(Some(StopMode::Fenced));
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
        self.headers = headers_of(record, &self.converters.header).map_err(|e| (Stage::HeaderConverter, e))?;
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

    /// When the open transaction is due (`transaction.boundary=interval`).
    fn transaction_deadline(&self) -> Option<Instant> {
        self.transactions.as_ref().filter(|t| t.open).and_then(|t| t.deadline)
    }

    /// Commits the open transaction: writes the offsets its records reached to the offsets topic within it, then
    /// commits, so records and offsets become visible together. Afterwards the offsets go to the control plane and
    /// the connector hears of the commit. A failed commit aborts (when the transaction still can be) and fails the
    /// task; a fenced producer (another incarnation took over) cannot commit at all.
    async fn commit_transaction(&mut self, task: &mut dyn SourceTask) -> Result<(), TaskError> {
        let Some(txn) = self.transactions.as_mut() else { return Ok(()) };
        if !txn.open {
            return Ok(());
        }
        if self.ctx.fenced("commit") {
            // The next batch finds the fence too and stops the task; nothing of this transaction becomes visible.
            self.abort_transaction().await;
            return Ok(());
        }
        let Some(txn) = self.transactions.as_mut() else { return Ok(()) };
        let commit_started = Instant::now();
        let offsets = std::mem::take(&mut txn.offsets);
        let records = std::mem::take(&mut txn.records);
        let topic = txn.settings.offsets_topic.clone();
        let transactional_id = txn.settings.transactional_id.clone();
        for (partition, offset) in &offsets {
            let (key, value) = exactly_once::offset_record(&self.ctx.id.connector, partition, offset);
            let mut record: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&topic, OFFSETS_OPAQUE).key(key.as_slice());
            if let Some(value) = &value {
                record = record.payload(value.as_slice());
            }
            let mut pending = Some(record);
            while let Some(record) = pending.take() {
                match self.producer.send(record) {
                    Ok(()) => {}
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                        pending = Some(record);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((err, _)) => {
                        self.counters.offset_commit_timed(false, commit_started.elapsed());
                        self.abort_transaction().await;
                        return Err(TaskError::kafka(format!("failed to write source offsets to `{topic}`"))(err));
                    }
                }
            }
        }
        let producer = self.producer.clone();
        let committed = tokio::task::spawn_blocking(move || producer.commit_transaction(TRANSACTION_TIMEOUT))
            .await
            .map_err(|join| TaskError::ExactlyOnce(format!("commit_transaction did not finish: {join}")))?;
        if let Err(err) = committed {
            self.counters.offset_commit_timed(false, commit_started.elapsed());
            let fatal = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
            if !fatal {
                self.abort_transaction().await;
            }
            let note =
                if fatal { " (fatal, e.g. fenced: another producer with this transactional id took over)" } else { "" };
            return Err(TaskError::kafka(format!("failed to commit the transaction of `{transactional_id}`{note}"))(
                err,
            ));
        }
        if let Some(txn) = self.transactions.as_mut() {
            txn.open = false;
            txn.deadline = None;
        }
        debug!(partitions = offsets.len(), "transaction committed");
        let committed: CommittedOffsets = offsets.iter().map(|(p, o)| (p.to_string(), o.clone())).collect();
        let report = offsets
            .into_iter()
            .map(|(partition_json, offset)| SourceOffset {
                partition_json,
                offset_json: if offset.is_null() { String::new() } else { offset.to_string() },
            })
            .collect();
        self.ctx.report_offsets(report);
        self.counters.offset_commit_timed(true, commit_started.elapsed());
        self.counters.transaction_committed(records);
        if let Err(err) = task.commit(&committed).await {
            warn!(error = %err.trace(), "source task commit hook failed");
        }
        Ok(())
    }

    /// Aborts the open transaction, if any (best effort: a fenced producer cannot, and its successor's
    /// `init_transactions` aborts it anyway).
    async fn abort_transaction(&mut self) {
        let Some(txn) = self.transactions.as_mut() else { return };
        if !txn.open {
            return;
        }
        txn.open = false;
        txn.deadline = None;
        txn.offsets.clear();
        txn.records = 0;
        let producer = self.producer.clone();
        let aborted = tokio::task::spawn_blocking(move || producer.abort_transaction(Duration::from_secs(10))).await;
        match aborted {
            Ok(Ok(())) => info!("transaction aborted"),
            Ok(Err(err)) => {
                warn!(error = %err, "could not abort the transaction; it ends when a successor fences it or it times out")
            }
            Err(join) => warn!(error = %join, "aborting the transaction did not finish"),
        }
    }

    /// Reports the acknowledged offsets, then lets the connector know (`SourceTask::commit`).
    async fn commit(&mut self, task: &mut dyn SourceTask) {
        if self.ctx.fenced("commit") {
            return;
        }
        let commit_started = Instant::now();
        let offsets = self.tracker.take_committable();
        self.counters.active_records(self.tracker.in_flight());
        if offsets.is_empty() {
            // Kafka Connect counts a commit point with nothing new as a successful commit too.
            self.counters.offset_commit_timed(true, commit_started.elapsed());
            return;
        }
        debug!(partitions = offsets.len(), "reporting source offsets");
        let committed: CommittedOffsets = offsets
            .iter()
            .map(|o| {
                let offset = serde_json::from_str(&o.offset_json).unwrap_or(serde_json::Value::Null);
                (o.partition_json.clone(), offset)
            })
            .collect();
        self.ctx.report_offsets(offsets);
        self.counters.offset_commit_timed(true, commit_started.elapsed());
        if let Err(err) = task.commit(&committed).await {
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
    if seq == OFFSETS_OPAQUE as u64 {
        // An offsets record of an exactly-once transaction; its failure fails the transaction's commit.
        return Ok(());
    }
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
fn describe_source_record(record: &SourceRecord, offset: Option<&serde_json::Value>) -> String {
    format!(
        "SourceRecord{{sourcePartition={}, sourceOffset={}}} ConnectRecord{{topic='{}', kafkaPartition={:?}, key={:?}, value={:?}, timestamp={:?}, headers={:?}}}",
        serde_json::Value::Object((*record.source_partition).clone()),
        offset.unwrap_or(&serde_json::Value::Null),
        record.topic,
        record.partition,
        record.key,
        record.value,
        record.timestamp,
        record.headers
    )
}

/// The record's headers as produced, each converted with the task's `header.converter`.
fn headers_of(record: &SourceRecord, converter: &HeaderConversion) -> Result<Option<OwnedHeaders>, ConnectError> {
    if record.headers.is_empty() {
        return Ok(None);
    }
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        let value = converter.encode_produced(&record.topic, key, value.as_deref())?;
        headers = headers.insert(Header { key, value: value.as_deref() });
    }
    Ok(Some(headers))
}
