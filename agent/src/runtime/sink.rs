//! The sink loop: consume from the connector's topics in the group `connect-<connector>`, convert, hand batches to
//! the sink task, and at `offset.flush.interval.ms` (and on stop) flush the task and only then commit the offsets.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_connectors::{
    ConnectError, Converter, SinkRecord, SinkTask, SinkTaskContext, TopicPartition, TransformChain, registry,
};
use sluice_proto::agent::TaskState;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::errors::{
    ConsumedRecord, DeadLetterQueue, ErrorPolicy, FailedRecord, RecordErrorHandler, RecordFailure, Stage,
    converter_index, converter_side,
};
use super::fetch::{Convert, Converted, ConvertedBatch, Fetched, Fetcher, Polled};
use super::headers::HeaderConversion;
use super::{Control, StopMode, TaskContext, TaskError, control_changed, current_control, stop_requested};
use crate::metrics::{TaskCounters, TaskInfo};

/// Kafka Connect's `consumer.max.poll.records` default: the most records the consumer thread hands over at once.
const MAX_BATCH: usize = 500;
/// Without `max.poll.records` set, batches that are already waiting when a `put` is due go into that one `put`, up
/// to this many records. A sink that keeps up gets what was polled, as in Kafka Connect; one that falls behind gets
/// fewer, larger puts (for a database sink: fewer transactions and commits), which is how it catches up.
const MAX_MERGED_PUT: usize = 5000;

/// At most this many in-place rejoins after `FencedInstanceId` within [`REJOIN_WINDOW`]; one more fails the task
/// (two live consumers keep taking the identity from each other: something other than a zombie is at work).
const MAX_REJOINS: usize = 3;
const REJOIN_WINDOW: Duration = Duration::from_secs(60);

/// Keeps newly assigned partitions paused while the task is paused (a rebalance would otherwise resume them).
struct SinkConsumerContext {
    paused: Arc<AtomicBool>,
    counters: Arc<TaskCounters>,
}

impl ClientContext for SinkConsumerContext {}

impl ConsumerContext for SinkConsumerContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                info!(partitions = partitions.count(), "partitions assigned");
                self.counters.partitions_assigned(partitions.count());
                if self.paused.load(Ordering::SeqCst)
                    && let Err(err) = consumer.pause(partitions)
                {
                    warn!(error = %err, "failed to pause newly assigned partitions");
                }
            }
            Rebalance::Revoke(partitions) => {
                info!(partitions = partitions.count(), "partitions revoked");
                self.counters.partitions_revoked(partitions.count());
            }
            Rebalance::Error(err) => warn!(error = %err, "consumer group rebalance failed"),
        }
    }
}

type TaskConsumer = StreamConsumer<SinkConsumerContext>;

/// Runs a sink task until it is stopped or fails.
#[instrument(name = "sink", skip_all, fields(connector = %ctx.id.connector, task = ctx.id.task, epoch = ctx.epoch))]
pub(crate) async fn run(ctx: &TaskContext, mut control: watch::Receiver<Control>) -> Result<(), TaskError> {
    let class = ctx.connector_class()?;
    let connector = registry::connector(class).ok_or_else(|| TaskError::UnknownConnector(class.to_string()))?;
    let mut task =
        connector.create_sink_task().ok_or_else(|| TaskError::WrongType { class: class.to_string(), kind: "sink" })?;
    let connector_class = connector.class_name();
    let connector_config = ctx.connector_config();
    ctx.worker.client_override_policy.check(&connector_config)?;
    let conversion = Arc::new(RecordConversion {
        key: ctx.worker.converter(&connector_config, true)?,
        value: ctx.worker.converter(&connector_config, false)?,
        headers: ctx.worker.header_converter(&connector_config)?,
    });
    let converter_classes = [
        converter_class(&ctx.worker, &connector_config, "key.converter"),
        converter_class(&ctx.worker, &connector_config, "value.converter"),
        conversion.headers.class.clone(),
    ];
    let subscription = subscription(&connector_config)?;
    let policy = ErrorPolicy::from_config(&connector_config, true)?;
    let counters = ctx.metrics.task(&ctx.id);
    counters.set_kind(false);
    counters.set_info(TaskInfo::new(connector.as_ref(), false, converter_classes.clone()));
    let dlq = match policy.dlq.clone() {
        Some(config) => Some(DeadLetterQueue::open(ctx, config).await?),
        None => None,
    };
    let errors = RecordErrorHandler::new(policy, ctx.id.clone(), counters.clone(), dlq);

    let paused = Arc::new(AtomicBool::new(false));
    let consumer = open_consumer(ctx, &connector_config, &subscription, &paused, &counters)?;

    let transforms = TransformChain::from_config(&connector_config)
        .map_err(|source| TaskError::Connector { context: "invalid `transforms` configuration", source })?;
    let start_context =
        SinkTaskContext { connector: ctx.id.connector.clone(), task: ctx.id.task, config: ctx.task_config() };
    if let Err(err) = task.start(start_context).await {
        release_consumer(consumer, None, ctx.worker.shutdown_timeout).await;
        return Err(TaskError::Connector { context: "sink task failed to start", source: err });
    }
    let sizes = match BatchSizes::from_config(ctx, &connector_config) {
        Ok(sizes) => sizes,
        Err(err) => {
            let _ = task.stop().await;
            release_consumer(consumer, None, ctx.worker.shutdown_timeout).await;
            return Err(err);
        }
    };
    let spawned =
        Fetcher::spawn(consumer.clone(), sizes.poll, sizes.waiting(), conversion.on_thread(), fetch_thread_name(ctx));
    let (fetcher, polled) = match spawned {
        Ok(started) => started,
        Err(err) => {
            let _ = task.stop().await;
            release_consumer(consumer, None, ctx.worker.shutdown_timeout).await;
            return Err(TaskError::Io { context: "failed to start the consumer thread", source: err });
        }
    };
    info!(topics = ?subscription, dead_letter_queue = errors.dlq().map(|d| d.topic()), "sink task started");

    let mut pipeline = SinkPipeline {
        ctx,
        consumer,
        polled,
        pending: None,
        sizes,
        paused,
        conversion,
        converter_classes,
        connector_class,
        transforms,
        errors,
        counters,
        held: Batch::default(),
        next_offsets: BTreeMap::new(),
        committed: BTreeMap::new(),
        topics_used: HashSet::new(),
        fetcher: Some(fetcher),
        subscription,
        put_since_flush: false,
        rejoins: Vec::new(),
        skip_below: BTreeMap::new(),
    };
    let result = pipeline.run_started(task.as_mut(), &mut control).await;
    let stopped = task.stop().await;
    let SinkPipeline { consumer, polled, fetcher, .. } = pipeline;
    drop(polled);
    release_consumer(consumer, fetcher, ctx.worker.shutdown_timeout).await;
    info!("sink task stopped");
    result?;
    stopped.map_err(TaskError::connector("sink task failed to stop"))
}

/// How many records the consumer thread hands over at once (`poll`) and the most one `put` gets (`put`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct BatchSizes {
    poll: usize,
    put: usize,
}

impl BatchSizes {
    /// Kafka Connect's `max.poll.records` (the connector's `consumer.override.max.poll.records`, else the worker's
    /// `consumer.max.poll.records`) bounds both, as there; without it, see [`MAX_MERGED_PUT`].
    fn from_config(ctx: &TaskContext, connector_config: &sluice_connectors::ConfigMap) -> Result<Self, TaskError> {
        let (key, value) = match connector_config.get("consumer.override.max.poll.records") {
            Some(v) => ("consumer.override.max.poll.records", Some(v)),
            None => ("consumer.max.poll.records", ctx.worker.raw.get("consumer.max.poll.records")),
        };
        Self::parse(key, value.map(String::as_str))
    }

    fn parse(key: &str, value: Option<&str>) -> Result<Self, TaskError> {
        let Some(value) = value else { return Ok(BatchSizes { poll: MAX_BATCH, put: MAX_MERGED_PUT }) };
        match value.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(BatchSizes { poll: n, put: n }),
            _ => Err(TaskError::Config {
                key: key.to_string(),
                message: format!("Invalid value {value} for configuration max.poll.records: must be at least 1"),
            }),
        }
    }

    /// Batches the consumer thread may have waiting: enough to fill a merged put, at least Kafka Connect's two.
    fn waiting(&self) -> usize {
        self.put.div_ceil(self.poll).max(2)
    }
}

/// Creates the task's consumer (group `connect-<connector>`, the task's static `group.instance.id`) and subscribes.
fn open_consumer(
    ctx: &TaskContext,
    connector_config: &sluice_connectors::ConfigMap,
    subscription: &[String],
    paused: &Arc<AtomicBool>,
    counters: &Arc<TaskCounters>,
) -> Result<Arc<TaskConsumer>, TaskError> {
    let consumer: TaskConsumer = ctx
        .worker
        .consumer_config(connector_config, &ctx.id)
        .create_with_context(SinkConsumerContext { paused: paused.clone(), counters: counters.clone() })
        .map_err(TaskError::kafka("failed to create the Kafka consumer"))?;
    let patterns: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&patterns).map_err(TaskError::kafka(format!("failed to subscribe to {subscription:?}")))?;
    Ok(Arc::new(consumer))
}

fn fetch_thread_name(ctx: &TaskContext) -> String {
    format!("sink-{}-{}", ctx.id.connector, ctx.id.task).chars().take(15).collect()
}

/// Kafka Connect's class name of the converter a task uses for `key` (for error reports).
pub(super) fn converter_class(
    worker: &super::WorkerConfig,
    connector_config: &sluice_connectors::ConfigMap,
    key: &str,
) -> String {
    let named = connector_config.get(key).or_else(|| worker.raw.get(key)).map(|c| c.trim().to_string());
    let named = named.unwrap_or_else(|| "org.apache.kafka.connect.json.JsonConverter".to_string());
    registry::converter_class_name(&named).map(str::to_string).unwrap_or(named)
}

/// `topics` (comma list) or `topics.regex`; librdkafka treats a subscription starting with `^` as a regex.
fn subscription(config: &sluice_connectors::ConfigMap) -> Result<Vec<String>, TaskError> {
    let topics: Vec<String> = config
        .get("topics")
        .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let regex = config.get("topics.regex").map(|r| r.trim()).filter(|r| !r.is_empty());
    match (topics.is_empty(), regex) {
        (false, None) => Ok(topics),
        (true, Some(regex)) => Ok(vec![if regex.starts_with('^') { regex.to_string() } else { format!("^{regex}") }]),
        (false, Some(_)) => Err(TaskError::Config {
            key: "topics.regex".into(),
            message: "`topics` and `topics.regex` are mutually exclusive".into(),
        }),
        (true, None) => {
            Err(TaskError::Config { key: "topics".into(), message: "a sink needs `topics` or `topics.regex`".into() })
        }
    }
}

/// Ends the consumer thread, then closes the consumer. Closing leaves the group synchronously, which blocks: both
/// happen off the async threads, bounded.
async fn release_consumer(consumer: Arc<TaskConsumer>, fetcher: Option<Fetcher>, timeout: Duration) {
    let closing = tokio::task::spawn_blocking(move || {
        if let Some(fetcher) = fetcher {
            fetcher.stop();
        }
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(timeout, closing).await.is_err() {
        warn!("the Kafka consumer did not close in time");
    }
}

/// The original bytes of a consumed record, kept while its batch is in flight so a record that fails inside `put`
/// can go to the dead letter queue unchanged.
struct RawRecord {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl RawRecord {
    fn consumed(&self) -> ConsumedRecord<'_> {
        ConsumedRecord {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect(),
        }
    }
}

/// Records on their way to `put`, with the consumer positions they account for.
#[derive(Default)]
struct Batch {
    records: Vec<SinkRecord>,
    /// Index-aligned with `records`; empty unless a dead letter queue is configured.
    raw: Vec<RawRecord>,
    /// Next offset per consumed partition, counting records that were filtered or skipped too: offsets follow
    /// the topic the record was read from, not the one a transform may have renamed it to.
    positions: BTreeMap<TopicPartition, i64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.positions.is_empty()
    }

    fn extend(&mut self, other: Batch) {
        self.records.extend(other.records);
        self.raw.extend(other.raw);
        for (tp, next) in other.positions {
            let entry = self.positions.entry(tp).or_insert(next);
            *entry = (*entry).max(next);
        }
    }
}

/// How one `put` attempt sequence ended.
enum PutOutcome {
    Done,
    /// The task said the data is bad (`ConnectError::Data`).
    BadData(ConnectError),
    /// A stop arrived while waiting to retry.
    Stopped(StopMode),
}

struct SinkPipeline<'a> {
    ctx: &'a TaskContext,
    consumer: Arc<TaskConsumer>,
    /// Batches from the consumer thread.
    polled: mpsc::Receiver<Fetched>,
    /// Taken from `polled` but not merged into the last put (it would have gone over `sizes.put`, or it is the
    /// consumer's error): handled before anything new is received.
    pending: Option<Fetched>,
    sizes: BatchSizes,
    paused: Arc<AtomicBool>,
    /// Shared with the consumer thread, which converts the batches it hands over.
    conversion: Arc<RecordConversion>,
    /// Class names of the key, value and header converters, for error reports.
    converter_classes: [String; 3],
    connector_class: &'static str,
    /// The connector's `transforms` chain, applied after conversion (a no-op when empty).
    transforms: TransformChain,
    errors: RecordErrorHandler,
    counters: Arc<TaskCounters>,
    /// Records consumed while paused (prefetched before the pause took effect); put on resume.
    held: Batch,
    /// Next offset to consume per partition, for everything `put` so far.
    next_offsets: BTreeMap<TopicPartition, i64>,
    /// What the group holds for us, so unchanged offsets are not flushed and committed again.
    committed: BTreeMap<TopicPartition, i64>,
    /// Topics consumed from since the start, each reported once (Kafka Connect's active topics; with `topics.regex`
    /// the only way to know them).
    topics_used: HashSet<String>,
    /// The consumer thread (`None` only while the consumer is being replaced).
    fetcher: Option<Fetcher>,
    subscription: Vec<String>,
    /// Records were put since the last flush (a commit is due when the lease is at risk).
    put_since_flush: bool,
    /// When the consumer was replaced after `FencedInstanceId`, within [`REJOIN_WINDOW`].
    rejoins: Vec<Instant>,
    /// After a rejoin the new consumer starts from the group's committed offsets: records below these positions
    /// were put by this task already (and are flushed with the next commit), so they are not put again.
    skip_below: BTreeMap<TopicPartition, i64>,
}

impl SinkPipeline<'_> {
    async fn run_started(
        &mut self,
        task: &mut dyn SinkTask,
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
                    self.set_paused(true);
                    info!("sink task paused");
                    self.ctx.report_state(TaskState::Paused);
                }
                Control::Run if paused != Some(false) => {
                    if paused.is_some() {
                        self.set_paused(false);
                    }
                    paused = Some(false);
                    self.ctx.report_state(TaskState::Running);
                    if !self.held.is_empty() {
                        let held = std::mem::take(&mut self.held);
                        if let Some(mode) = self.put(task, held, control).await? {
                            break mode;
                        }
                    }
                }
                _ => {}
            }
            // Once the lease is at risk (heartbeats overdue: the control plane may be unreachable), what was put is
            // committed after every batch, while the fence still allows it: a self-fence then leaves at most the
            // batch in flight uncommitted, not a whole `offset.flush.interval.ms`.
            let at_risk_from = self.ctx.fence.at_risk_from();
            let at_risk = at_risk_from.is_some_and(|at| Instant::now() >= at);
            if Instant::now() >= next_flush || (at_risk && self.put_since_flush) {
                self.put_since_flush = false;
                match self.flush_and_commit(task, Some(control)).await {
                    Ok(Some(mode)) => break mode,
                    Ok(None) => {}
                    Err(err) if self.consumer_fenced_by_instance() => {
                        if let Some(mode) = self.rejoin(err).await? {
                            break mode;
                        }
                    }
                    Err(err) => return Err(err),
                }
                next_flush = Instant::now() + interval;
            }
            let wake = match at_risk_from {
                Some(at) if self.put_since_flush && at > Instant::now() => next_flush.min(at),
                _ => next_flush,
            };
            // The consumer is polled even while paused: that serves rebalances and keeps the group membership.
            let fetched = match self.pending.take() {
                Some(fetched) => fetched,
                None => tokio::select! {
                    _ = control_changed(control) => continue,
                    _ = tokio::time::sleep_until(wake) => continue,
                    fetched = self.polled.recv() => fetched.ok_or(TaskError::ConsumerThreadEnded)?,
                },
            };
            let polled = match fetched {
                Ok(polled) => polled,
                Err(err) if self.consumer_fenced_by_instance() => {
                    let err = TaskError::kafka("the sink's Kafka consumer failed (fatal)")(err);
                    match self.rejoin(err).await? {
                        Some(mode) => break mode,
                        None => continue,
                    }
                }
                Err(err) => return Err(TaskError::kafka("the sink's Kafka consumer failed (fatal)")(err)),
            };
            let mut batch = Batch::default();
            self.accept(polled, &mut batch).await?;
            if paused != Some(true) {
                self.merge_waiting(&mut batch).await?;
            }
            if batch.is_empty() {
                continue;
            }
            if paused == Some(true) {
                // Something slipped through the pause (e.g. a partition assigned mid-rebalance): pause again, hold it.
                self.set_paused(true);
                self.held.extend(batch);
            } else if let Some(mode) = self.put(task, batch, control).await? {
                break mode;
            } else {
                self.put_since_flush = true;
            }
        };
        match mode {
            StopMode::Graceful | StopMode::Revoked => self.flush_and_commit(task, None).await.map(|_| ()),
            StopMode::Fenced => {
                debug!("fenced: stopping without flushing or committing");
                Ok(())
            }
        }
    }

    /// Adds the batches the consumer thread already has waiting, up to `sizes.put` records: never waits.
    async fn merge_waiting(&mut self, batch: &mut Batch) -> Result<(), TaskError> {
        while batch.records.len() < self.sizes.put {
            match self.polled.try_recv() {
                Ok(Ok(more)) if batch.records.len() + more.len() <= self.sizes.put => {
                    // Room for the whole merged put at once, rather than doubling (and copying) batch by batch.
                    if batch.records.capacity() < self.sizes.put {
                        batch.records.reserve_exact(self.sizes.put - batch.records.len());
                    }
                    self.accept(more, batch).await?;
                }
                Ok(other) => {
                    self.pending = Some(other);
                    break;
                }
                // Empty, or the thread ended: the next `recv` says so.
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// True when the consumer is dead because another member joined with the task's `group.instance.id`.
    fn consumer_fenced_by_instance(&self) -> bool {
        super::fetch::fenced_by_instance(&self.consumer)
    }

    /// The consumer was fenced by another one with the task's static `group.instance.id` — a zombie agent's consumer
    /// rejoining after a pause — while this agent's lease is alive, so this task is the rightful owner. Rather than
    /// failing (FAILED until the automatic restart), the task takes the identity back with a new consumer, which
    /// fences the zombie's in turn; the zombie stops at its own lease deadline and never puts or commits. What this
    /// task put before is not put again (`skip_below`), and its offsets are committed by the new consumer.
    async fn rejoin(&mut self, cause: TaskError) -> Result<Option<StopMode>, TaskError> {
        let now = Instant::now();
        self.rejoins.retain(|at| now.duration_since(*at) < REJOIN_WINDOW);
        if self.rejoins.len() >= MAX_REJOINS {
            warn!(
                rejoins = self.rejoins.len(),
                "the consumer keeps being fenced by another with the same group.instance.id"
            );
            return Err(cause);
        }
        if self.ctx.fenced("rejoin") {
            return Ok(Some(StopMode::Fenced));
        }
        self.rejoins.push(now);
        warn!(error = %cause, "the sink's consumer was fenced by another member with the task's group.instance.id \
              (a zombie's?) while this agent's lease is alive: rejoining with a new consumer");
        let old = std::mem::replace(&mut self.polled, mpsc::channel(1).1);
        drop(old);
        // Read by the old consumer and not put: the new one reads them again from the committed offsets.
        self.pending = None;
        if let Ok(assignment) = self.consumer.assignment() {
            self.counters.partitions_revoked(assignment.count());
        }
        // The old client is dead (fatal error): it sends nothing more, so it can be closed after the new one exists.
        let connector_config = self.ctx.connector_config();
        let consumer = open_consumer(self.ctx, &connector_config, &self.subscription, &self.paused, &self.counters)?;
        let old = std::mem::replace(&mut self.consumer, consumer);
        release_consumer(old, self.fetcher.take(), self.ctx.worker.shutdown_timeout).await;
        let (fetcher, polled) = Fetcher::spawn(
            self.consumer.clone(),
            self.sizes.poll,
            self.sizes.waiting(),
            self.conversion.on_thread(),
            fetch_thread_name(self.ctx),
        )
        .map_err(|source| TaskError::Io { context: "failed to start the consumer thread", source })?;
        self.fetcher = Some(fetcher);
        self.polled = polled;
        // The new member starts from the group's committed offsets; everything put since is flushed and committed
        // with the next commit, so it is skipped when read again.
        self.skip_below = self.next_offsets.clone();
        self.committed.clear();
        Ok(None)
    }

    fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        let assignment = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(err) => {
                warn!(error = %err, "cannot read the consumer's assignment");
                return;
            }
        };
        let result = if paused { self.consumer.pause(&assignment) } else { self.consumer.resume(&assignment) };
        if let Err(err) = result {
            warn!(error = %err, paused, "failed to change the pause state of the consumer");
        }
    }

    /// Converts and transforms polled records into the batch. A record that fails goes through the error handler
    /// (log, DLQ, tolerance); its offset counts as consumed when it is skipped.
    async fn accept(&self, mut polled: Polled, batch: &mut Batch) -> Result<(), TaskError> {
        self.counters.sink_records_read(polled.len() as u64);
        self.counters.add_active_records(polled.len());
        let keep_raw = self.errors.dlq().is_some();
        let converted = match polled.take_converted() {
            Some(converted) => converted,
            None => {
                let mut converted = ConvertedBatch::default();
                for index in 0..polled.len() {
                    match self.conversion.convert(&polled.record(index), polled.topic(index)) {
                        Ok(record) => converted.records.push(record),
                        Err(failure) => converted.failures.push((index, failure)),
                    }
                }
                converted
            }
        };
        if converted.failures.is_empty() && self.transforms.is_empty() && self.skip_below.is_empty() && !keep_raw {
            // The usual case: every record converted, nothing to transform, skip or keep: the batch as it is.
            if batch.records.is_empty() {
                batch.records = converted.records;
            } else {
                batch.records.extend(converted.records);
            }
        } else {
            batch.records.reserve(converted.records.len());
            let mut records = converted.records.into_iter();
            let mut failures = converted.failures.into_iter().peekable();
            for index in 0..polled.len() {
                let consumed = polled.record(index);
                // Every index is in one of the two, in order (the second arm only if that were ever broken).
                let converted = match failures.next_if(|(failed, _)| *failed == index) {
                    Some((_, failure)) => Err(failure),
                    None => match records.next() {
                        Some(record) => Ok(record),
                        None => self.conversion.convert(&consumed, polled.topic(index)),
                    },
                };
                if !self.skip_below.is_empty() {
                    let tp = TopicPartition { topic: consumed.topic.to_string(), partition: consumed.partition };
                    if self.skip_below.get(&tp).is_some_and(|below| consumed.offset < *below) {
                        continue;
                    }
                }
                if let Some(record) = self.convert_and_transform(converted, &consumed, || polled.record(index)).await? {
                    if keep_raw {
                        batch.raw.push(raw_record(&consumed));
                    }
                    batch.records.push(record);
                }
            }
        }
        for (topic, partition, next) in polled.next_offsets() {
            let next_offset =
                batch.positions.entry(TopicPartition { topic: topic.to_string(), partition }).or_insert(0);
            *next_offset = (*next_offset).max(next);
        }
        Ok(())
    }

    /// `None` when a transform dropped the record or it failed and was skipped (`errors.tolerance=all`). `again`
    /// gives the consumed record once more for the error report.
    async fn convert_and_transform<'p>(
        &self,
        converted: Converted,
        message: &ConsumedRecord<'_>,
        again: impl FnOnce() -> ConsumedRecord<'p>,
    ) -> Result<Option<SinkRecord>, TaskError> {
        let (stage, class, error) = match converted {
            Ok(record) => match self.transforms.apply_sink_traced(record) {
                Ok(record) => return Ok(record),
                Err(failure) => (Stage::Transformation, failure.class.to_string(), failure.error),
            },
            Err((stage, error)) => {
                let class = self.converter_classes[converter_index(stage)].clone();
                (stage, class, error)
            }
        };
        let fail_with = match stage {
            Stage::Transformation => TaskError::Transform { source: super::source::copy_error(&error) },
            _ => TaskError::Convert {
                what: format!(
                    "{} at topic `{}` partition {} offset {} with {class}",
                    converter_side(stage),
                    message.topic,
                    message.partition,
                    message.offset
                ),
                source: super::source::copy_error(&error),
            },
        };
        let failure = RecordFailure { stage, class: &class, error: &error, record: FailedRecord::Consumed(again()) };
        self.errors.record_failed(failure, fail_with).await?;
        Ok(None)
    }

    /// Hands a batch to the task. Retriable failures are retried forever (see `put_with_retry`); when the task says a
    /// record is bad (`ConnectError::Data`) and errors are tolerated, the batch is put again record by record so
    /// only the bad ones are skipped (and sent to the DLQ). `Some(mode)` when a stop interrupted a retry wait: then
    /// nothing of the batch is marked consumed.
    async fn put(
        &mut self,
        task: &mut dyn SinkTask,
        batch: Batch,
        control: &mut watch::Receiver<Control>,
    ) -> Result<Option<StopMode>, TaskError> {
        for tp in batch.positions.keys() {
            if !self.topics_used.contains(&tp.topic) {
                self.topics_used.insert(tp.topic.clone());
                self.ctx.report_topic(&tp.topic);
            }
        }
        let Batch { records, raw, positions } = batch;
        let count = records.len() as u64;
        if !records.is_empty() {
            // The batch stays ours: a retriable failure redelivers it, and a bad record is searched for one by one.
            let put_started = std::time::Instant::now();
            let outcome = self.put_with_retry(task, &records, control).await?;
            self.counters.batch(records.len(), put_started.elapsed(), false);
            self.counters.sample_active_records(None);
            match outcome {
                PutOutcome::Done => {}
                PutOutcome::Stopped(mode) => return Ok(Some(mode)),
                // As in Kafka Connect, a failing `put` is not a record error unless errors are tolerated.
                PutOutcome::BadData(error) if !self.errors.tolerates() => {
                    return Err(TaskError::connector("sink task failed to put records")(error));
                }
                PutOutcome::BadData(error) if records.len() == 1 => self.put_failed(0, &records, &raw, error).await?,
                PutOutcome::BadData(error) => {
                    warn!(records = records.len(), error = %error.trace(),
                        "the sink task refused a batch as bad data; putting its records one by one to find the bad ones");
                    for (index, record) in records.iter().enumerate() {
                        match self.put_with_retry(task, std::slice::from_ref(record), control).await? {
                            PutOutcome::Done => {}
                            PutOutcome::Stopped(mode) => return Ok(Some(mode)),
                            PutOutcome::BadData(error) => self.put_failed(index, &records, &raw, error).await?,
                        }
                    }
                }
            }
        }
        self.counters.sink_records_put(count);
        for (tp, next) in positions {
            let entry = self.next_offsets.entry(tp).or_insert(next);
            *entry = (*entry).max(next);
        }
        Ok(None)
    }

    /// `put` of `records` with retries of retriable failures.
    /// As Kafka Connect's `WorkerSinkTask` redelivers a batch after a `RetriableException` from `put` for as long as
    /// it takes (`errors.retry.timeout` applies to converters and transforms only), a retriable failure is retried
    /// forever, after a backoff (`ErrorPolicy::retry_task_failure`); the task stays RUNNING, a stop ends the wait.
    async fn put_with_retry(
        &mut self,
        task: &mut dyn SinkTask,
        records: &[SinkRecord],
        control: &mut watch::Receiver<Control>,
    ) -> Result<PutOutcome, TaskError> {
        let mut retry = self.errors.policy.retry_task_failure();
        loop {
            if self.ctx.fenced("put") {
                return Ok(PutOutcome::Stopped(StopMode::Fenced));
            }
            match task.put(records).await {
                Ok(()) => return Ok(PutOutcome::Done),
                Err(ConnectError::Data(message)) => return Ok(PutOutcome::BadData(ConnectError::Data(message))),
                Err(error) if error.is_retriable() => {
                    self.counters.record_failure();
                    let delay = retry.next_delay();
                    self.counters.retry();
                    warn!(error = %error.trace(), attempt = retry.attempts(), delay_ms = delay.as_millis() as u64,
                        "put failed with a retriable error; retrying");
                    tokio::select! {
                        mode = stop_requested(control) => return Ok(PutOutcome::Stopped(mode)),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Err(TaskError::connector("sink task failed to put records")(error)),
            }
        }
    }

    /// Record `index` of a batch failed inside `put`: through the error handler (log, DLQ, tolerance).
    async fn put_failed(
        &self,
        index: usize,
        records: &[SinkRecord],
        raw: &[RawRecord],
        error: ConnectError,
    ) -> Result<(), TaskError> {
        let fail_with = TaskError::connector("sink task failed to put records")(super::source::copy_error(&error));
        // `raw` is index-aligned with the batch when a DLQ is configured, empty otherwise.
        let record = match raw.get(index) {
            Some(raw) => FailedRecord::Consumed(raw.consumed()),
            None => FailedRecord::TopicOnly { topic: records.get(index).map_or("", |r| &*r.topic) },
        };
        let failure = RecordFailure { stage: Stage::TaskPut, class: self.connector_class, error: &error, record };
        self.errors.record_failed(failure, fail_with).await
    }

    /// Flushes the task, then commits what it flushed. The order is the at-least-once guarantee: an offset is
    /// never committed before the records below it are durable in the target system. While running (`control`
    /// given) retriable flush failures are retried forever with a backoff, as Kafka Connect keeps a task running
    /// when its `preCommit` fails (it tries again at the next commit), and a stop ends the wait
    /// (`Some(mode)`); when stopping there is one attempt.
    async fn flush_and_commit(
        &mut self,
        task: &mut dyn SinkTask,
        mut control: Option<&mut watch::Receiver<Control>>,
    ) -> Result<Option<StopMode>, TaskError> {
        // Every commit point has a sequence number; one with nothing new completes at once, as in Kafka Connect.
        self.counters.offset_commit_started();
        let commit_started = std::time::Instant::now();
        if self.next_offsets == self.committed {
            self.counters.offset_commit_timed(true, commit_started.elapsed());
            self.counters.sample_active_records(Some(self.held.records.len()));
            return Ok(None);
        }
        let mut retry = self.errors.policy.retry_task_failure();
        // What the task says is durable (`preCommit`): by default everything put so far.
        let durable = loop {
            if self.ctx.fenced("flush") {
                return Ok(Some(StopMode::Fenced));
            }
            match task.pre_commit(&self.next_offsets).await {
                Ok(durable) => break durable,
                Err(error) if error.is_retriable() && control.is_some() => {
                    self.counters.offset_commit(false);
                    let delay = retry.next_delay();
                    self.counters.retry();
                    warn!(error = %error.trace(), attempt = retry.attempts(), delay_ms = delay.as_millis() as u64,
                        "flush failed with a retriable error; retrying");
                    if let Some(control) = control.as_deref_mut() {
                        tokio::select! {
                            mode = stop_requested(control) => return Ok(Some(mode)),
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
                Err(error) => {
                    self.counters.offset_commit(false);
                    return Err(TaskError::connector("sink task failed to flush")(error));
                }
            }
        };
        // Only partitions we still own: committing a revoked one would fail the whole commit.
        let owned: Vec<(String, i32)> = match self.consumer.assignment() {
            Ok(assignment) => assignment.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect(),
            Err(err) => {
                warn!(error = %err, "cannot read the consumer's assignment; skipping this commit");
                return Ok(None);
            }
        };
        let mut tpl = TopicPartitionList::new();
        let mut to_commit = Vec::new();
        for (tp, next) in &durable {
            // Never beyond what was put (a task cannot claim more), and only partitions we still own.
            let next = match self.next_offsets.get(tp) {
                Some(put) => (*next).min(*put),
                None => continue,
            };
            let next = &next;
            let is_owned = owned.iter().any(|(t, p)| *t == tp.topic && *p == tp.partition);
            if is_owned && self.committed.get(tp) != Some(next) {
                if let Err(err) = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next)) {
                    warn!(error = %err, topic = %tp.topic, partition = tp.partition, "cannot build the commit");
                    continue;
                }
                to_commit.push((tp.clone(), *next));
            }
        }
        // Partitions we lost in a rebalance belong to another task now; forget them.
        self.next_offsets.retain(|tp, _| owned.iter().any(|(t, p)| *t == tp.topic && *p == tp.partition));
        self.committed.retain(|tp, _| self.next_offsets.contains_key(tp));
        if to_commit.is_empty() {
            self.counters.offset_commit_timed(true, commit_started.elapsed());
            self.counters.sample_active_records(Some(self.held.records.len()));
            return Ok(None);
        }
        if self.ctx.fenced("commit") {
            return Ok(Some(StopMode::Fenced));
        }
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => {
                debug!(partitions = to_commit.len(), "committed sink offsets");
                self.counters.offset_commit_timed(true, commit_started.elapsed());
                self.counters.sample_active_records(Some(self.held.records.len()));
                self.committed.extend(to_commit);
            }
            // A stale group generation (we were rebalanced away) or a broker hiccup: the next owner or the next
            // interval re-commits; records since the last commit may be delivered again (at-least-once).
            Ok(Err(err)) => {
                self.counters.offset_commit_timed(false, commit_started.elapsed());
                if super::fetch::is_fatal(&self.consumer, &err) {
                    // The client is dead (e.g. fenced): no commit will ever succeed, fail instead of idling RUNNING.
                    return Err(TaskError::kafka("failed to commit sink offsets (fatal consumer error)")(err));
                }
                warn!(error = %err, "failed to commit sink offsets");
            }
            Err(err) => {
                self.counters.offset_commit_timed(false, commit_started.elapsed());
                warn!(error = %err, "the commit did not finish");
            }
        }
        Ok(None)
    }
}

fn raw_record(message: &ConsumedRecord<'_>) -> RawRecord {
    RawRecord {
        topic: message.topic.to_string(),
        partition: message.partition,
        offset: message.offset,
        timestamp: message.timestamp,
        key: message.key.map(Bytes::copy_from_slice),
        value: message.value.map(Bytes::copy_from_slice),
        headers: message.headers.iter().map(|(k, v)| (k.to_string(), v.map(Bytes::copy_from_slice))).collect(),
    }
}

/// The key, value and header converters of a sink task.
struct RecordConversion {
    key: Box<dyn Converter>,
    value: Box<dyn Converter>,
    headers: HeaderConversion,
}

impl RecordConversion {
    /// For the consumer thread.
    fn on_thread(self: &Arc<Self>) -> Convert {
        let conversion = self.clone();
        Arc::new(move |message, topic| conversion.convert(message, topic))
    }

    /// `topic` is `message.topic`, shared.
    fn convert(&self, message: &ConsumedRecord<'_>, topic_name: &Arc<str>) -> Converted {
        let topic = message.topic;
        let (key_schema, key) = self.key.to_connect(topic, message.key).map_err(|e| (Stage::KeyConverter, e))?;
        let (value_schema, value) =
            self.value.to_connect(topic, message.value).map_err(|e| (Stage::ValueConverter, e))?;
        let mut headers = Vec::with_capacity(message.headers.len());
        for (key, value) in &message.headers {
            let value = self.headers.decode_consumed(topic, key, *value).map_err(|e| (Stage::HeaderConverter, e))?;
            headers.push((key.to_string(), value));
        }
        Ok(SinkRecord {
            topic: topic_name.clone(),
            partition: message.partition,
            offset: message.offset,
            key_schema,
            key,
            value_schema,
            value,
            timestamp: message.timestamp,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> sluice_connectors::ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn topics_list_is_split_and_trimmed() {
        assert_eq!(subscription(&config(&[("topics", " a, b ,,c")])).expect("valid"), vec!["a", "b", "c"]);
    }

    #[test]
    fn topics_regex_gets_a_caret() {
        assert_eq!(subscription(&config(&[("topics.regex", "orders-.*")])).expect("valid"), vec!["^orders-.*"]);
        assert_eq!(subscription(&config(&[("topics.regex", "^x")])).expect("valid"), vec!["^x"]);
    }

    #[test]
    fn topics_and_regex_exclude_each_other() {
        assert!(subscription(&config(&[("topics", "a"), ("topics.regex", "b")])).is_err());
        assert!(subscription(&config(&[])).is_err());
    }

    /// A sink that refuses any batch holding the value `bad` as bad data, and keeps what it accepted.
    #[derive(Default)]
    struct PickySink {
        accepted: Vec<String>,
        puts: usize,
    }

    #[async_trait::async_trait]
    impl SinkTask for PickySink {
        async fn start(&mut self, _: SinkTaskContext) -> Result<(), ConnectError> {
            Ok(())
        }
        async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
            self.puts += 1;
            let values: Vec<String> = records
                .iter()
                .map(|r| match &r.value {
                    sluice_connectors::Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            if values.iter().any(|v| v == "bad") {
                return Err(ConnectError::Data("cannot write `bad`".into()));
            }
            self.accepted.extend(values);
            Ok(())
        }
        async fn flush(&mut self, _: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
            Ok(())
        }
        async fn stop(&mut self) -> Result<(), ConnectError> {
            Ok(())
        }
    }

    fn record(offset: i64, value: &str) -> SinkRecord {
        SinkRecord {
            topic: Arc::from("t"),
            partition: 0,
            offset,
            key_schema: None,
            key: sluice_connectors::Value::Null,
            value_schema: None,
            value: sluice_connectors::Value::String(value.into()),
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// `put` of a batch with one poison record, with the pipeline set up as `run` would (no broker needed: the
    /// consumer is never polled). Returns the sink, the pipeline's next offsets and the result.
    async fn put_batch<S: SinkTask + Default>(
        tolerance: &str,
    ) -> (S, BTreeMap<TopicPartition, i64>, Result<(), TaskError>) {
        let connector_config = config(&[("errors.tolerance", tolerance)]);
        let worker = Arc::new(super::super::WorkerConfig::from_properties(Default::default()).expect("valid"));
        let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = TaskContext {
            id: super::super::TaskKey { connector: "picky".into(), task: 0 },
            epoch: 1,
            assignment: sluice_proto::agent::TaskAssignment {
                connector_config: connector_config.clone().into_iter().collect(),
                ..Default::default()
            },
            worker: worker.clone(),
            events,
            metrics: Arc::new(crate::metrics::Metrics::default()),
            fence: crate::fence::FenceTicket::unfenced(),
            progress: Default::default(),
            shared: Default::default(),
        };
        let counters = ctx.metrics.task(&ctx.id);
        let policy = ErrorPolicy::from_config(&connector_config, true).expect("valid");
        let paused = Arc::new(AtomicBool::new(false));
        let consumer: TaskConsumer = worker
            .consumer_config(&connector_config, &ctx.id)
            .create_with_context(SinkConsumerContext { paused: paused.clone(), counters: counters.clone() })
            .expect("consumer");
        let mut pipeline = SinkPipeline {
            ctx: &ctx,
            consumer: Arc::new(consumer),
            polled: mpsc::channel(1).1,
            pending: None,
            sizes: BatchSizes { poll: MAX_BATCH, put: MAX_MERGED_PUT },
            paused,
            conversion: Arc::new(RecordConversion {
                key: worker.converter(&connector_config, true).expect("converter"),
                value: worker.converter(&connector_config, false).expect("converter"),
                headers: worker.header_converter(&connector_config).expect("header converter"),
            }),
            converter_classes: [String::new(), String::new(), String::new()],
            connector_class: "PickySink",
            transforms: TransformChain::empty(),
            errors: RecordErrorHandler::new(policy, ctx.id.clone(), counters, None),
            counters: ctx.metrics.task(&ctx.id),
            held: Batch::default(),
            next_offsets: BTreeMap::new(),
            committed: BTreeMap::new(),
            topics_used: HashSet::new(),
            fetcher: None,
            subscription: Vec::new(),
            put_since_flush: false,
            rejoins: Vec::new(),
            skip_below: BTreeMap::new(),
        };
        let batch = Batch {
            records: vec![record(10, "a"), record(11, "bad"), record(12, "c")],
            raw: Vec::new(),
            positions: BTreeMap::from([(TopicPartition { topic: "t".into(), partition: 0 }, 13)]),
        };
        let (_control_tx, mut control) = watch::channel(Control::Run);
        let mut sink = S::default();
        let result = pipeline.put(&mut sink, batch, &mut control).await.map(|stopped| assert!(stopped.is_none()));
        (sink, pipeline.next_offsets, result)
    }

    #[test]
    fn max_poll_records_bounds_polls_and_puts() {
        let default = BatchSizes::parse("consumer.max.poll.records", None).expect("valid");
        assert_eq!(default, BatchSizes { poll: 500, put: MAX_MERGED_PUT });
        assert_eq!(default.waiting(), 10);
        let set = BatchSizes::parse("consumer.override.max.poll.records", Some(" 2000 ")).expect("valid");
        assert_eq!(set, BatchSizes { poll: 2000, put: 2000 });
        assert_eq!(set.waiting(), 2);
        for bad in ["0", "-1", "many"] {
            match BatchSizes::parse("consumer.override.max.poll.records", Some(bad)) {
                Err(TaskError::Config { key, .. }) => assert_eq!(key, "consumer.override.max.poll.records"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_poison_record_inside_put_is_isolated_and_skipped_with_tolerance_all() {
        let (sink, next_offsets, result) = put_batch::<PickySink>("all").await;
        result.expect("tolerated");
        assert_eq!(sink.accepted, vec!["a", "c"], "the good records of the batch are put one by one");
        assert_eq!(sink.puts, 4, "one batch put, then one put per record");
        assert_eq!(next_offsets.get(&TopicPartition { topic: "t".into(), partition: 0 }), Some(&13));
    }

    #[tokio::test]
    async fn a_poison_record_inside_put_fails_the_task_with_tolerance_none() {
        let (sink, next_offsets, result) = put_batch::<PickySink>("none").await;
        let err = result.expect_err("not tolerated");
        assert!(err.trace().contains("cannot write `bad`"), "{}", err.trace());
        assert!(sink.accepted.is_empty());
        assert!(next_offsets.is_empty(), "nothing of a failed batch is marked consumed");
    }

    /// Fails every `put` with a retriable error until `failures` reach 5, then takes the records.
    #[derive(Default)]
    struct FlakySink {
        failures: usize,
        attempts_at: Vec<tokio::time::Instant>,
        accepted: Vec<i64>,
    }

    #[async_trait::async_trait]
    impl SinkTask for FlakySink {
        async fn start(&mut self, _: SinkTaskContext) -> Result<(), ConnectError> {
            Ok(())
        }
        async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
            self.attempts_at.push(tokio::time::Instant::now());
            if self.failures < 5 {
                self.failures += 1;
                let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "target down");
                return Err(ConnectError::retriable("writing to the target", io));
            }
            self.accepted.extend(records.iter().map(|r| r.offset));
            Ok(())
        }
        async fn flush(&mut self, _: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
            Ok(())
        }
        async fn stop(&mut self) -> Result<(), ConnectError> {
            Ok(())
        }
    }

    /// Kafka Connect redelivers a batch after a `RetriableException` from `put` for as long as it takes, whatever
    /// `errors.retry.timeout` says (0 here, the default): the batch is put again after a doubling backoff, not at
    /// once, and the task does not fail.
    #[tokio::test(start_paused = true)]
    async fn a_retriable_put_failure_is_retried_with_backoff_regardless_of_errors_retry_timeout() {
        let started = tokio::time::Instant::now();
        let (sink, next_offsets, result) = put_batch::<FlakySink>("none").await;
        result.expect("retried until the sink took the batch");
        assert_eq!(sink.accepted, vec![10, 11, 12], "the whole batch, once");
        let waits: Vec<u128> = sink.attempts_at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 4800], "doubling from 300 ms, never at once");
        assert_eq!((tokio::time::Instant::now() - started).as_millis(), 9300);
        assert_eq!(next_offsets.get(&TopicPartition { topic: "t".into(), partition: 0 }), Some(&13));
    }
}
