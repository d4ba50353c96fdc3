//! The sink loop: consume from the connector's topics in the group `connect-<connector>`, convert, hand batches to
//! the sink task, and at `offset.flush.interval.ms` (and on stop) flush the task and only then commit the offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_connectors::{Converter, SinkRecord, SinkTask, SinkTaskContext, TopicPartition, TransformChain, registry};
use sluice_proto::agent::TaskState;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use super::{Control, StopMode, TaskContext, TaskError, control_changed, current_control};

/// Kafka Connect's `consumer.max.poll.records` default: the most records handed to one `put`.
const MAX_BATCH: usize = 500;
/// How long a batch may wait to fill up after its first record.
const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// Keeps newly assigned partitions paused while the task is paused (a rebalance would otherwise resume them).
struct SinkConsumerContext {
    paused: Arc<AtomicBool>,
}

impl ClientContext for SinkConsumerContext {}

impl ConsumerContext for SinkConsumerContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                info!(partitions = partitions.count(), "partitions assigned");
                if self.paused.load(Ordering::SeqCst)
                    && let Err(err) = consumer.pause(partitions)
                {
                    warn!(error = %err, "failed to pause newly assigned partitions");
                }
            }
            Rebalance::Revoke(partitions) => info!(partitions = partitions.count(), "partitions revoked"),
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
    let connector_config = ctx.connector_config();
    let key_converter = ctx.worker.converter(&connector_config, true)?;
    let value_converter = ctx.worker.converter(&connector_config, false)?;
    let subscription = subscription(&connector_config)?;

    let paused = Arc::new(AtomicBool::new(false));
    let consumer: TaskConsumer = ctx
        .worker
        .consumer_config(&connector_config, &ctx.id)
        .create_with_context(SinkConsumerContext { paused: paused.clone() })
        .map_err(TaskError::kafka("failed to create the Kafka consumer"))?;
    let consumer = Arc::new(consumer);
    let patterns: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&patterns).map_err(TaskError::kafka(format!("failed to subscribe to {subscription:?}")))?;

    let transforms = TransformChain::from_config(&ctx.connector_config())
        .map_err(|source| TaskError::Connector { context: "invalid `transforms` configuration", source })?;
    let start_context =
        SinkTaskContext { connector: ctx.id.connector.clone(), task: ctx.id.task, config: ctx.task_config() };
    if let Err(err) = task.start(start_context).await {
        release_consumer(consumer, ctx.worker.shutdown_timeout).await;
        return Err(TaskError::Connector { context: "sink task failed to start", source: err });
    }
    info!(topics = ?subscription, "sink task started");

    let mut pipeline = SinkPipeline {
        ctx,
        consumer,
        paused,
        key_converter,
        value_converter,
        transforms,
        tolerate_errors: super::tolerates_record_errors(ctx),
        held: Vec::new(),
        next_offsets: BTreeMap::new(),
        committed: BTreeMap::new(),
    };
    let result = pipeline.run_started(task.as_mut(), &mut control).await;
    let stopped = task.stop().await;
    release_consumer(pipeline.consumer, ctx.worker.shutdown_timeout).await;
    info!("sink task stopped");
    result?;
    stopped.map_err(TaskError::connector("sink task failed to stop"))
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

/// Closing a consumer leaves the group synchronously, which blocks: do it off the async threads, bounded.
async fn release_consumer(consumer: Arc<TaskConsumer>, timeout: Duration) {
    let closing = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    });
    if tokio::time::timeout(timeout, closing).await.is_err() {
        warn!("the Kafka consumer did not close in time");
    }
}

struct SinkPipeline<'a> {
    ctx: &'a TaskContext,
    consumer: Arc<TaskConsumer>,
    paused: Arc<AtomicBool>,
    key_converter: Box<dyn Converter>,
    value_converter: Box<dyn Converter>,
    /// The connector's `transforms` chain, applied after conversion (a no-op when empty).
    transforms: TransformChain,
    tolerate_errors: bool,
    /// Records consumed while paused (prefetched before the pause took effect); put on resume.
    held: Vec<SinkRecord>,
    /// Next offset to consume per partition, for everything `put` so far.
    next_offsets: BTreeMap<TopicPartition, i64>,
    /// What the group holds for us, so unchanged offsets are not flushed and committed again.
    committed: BTreeMap<TopicPartition, i64>,
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
                        self.put(task, held).await?;
                    }
                }
                _ => {}
            }
            if Instant::now() >= next_flush {
                self.flush_and_commit(task).await?;
                next_flush = Instant::now() + interval;
            }
            // The consumer is polled even while paused: that serves rebalances and keeps the group membership.
            let first = tokio::select! {
                _ = control_changed(control) => continue,
                _ = tokio::time::sleep_until(next_flush) => continue,
                message = self.consumer.recv() => message,
            };
            let mut batch = Vec::new();
            self.accept(first, &mut batch)?;
            let window = Instant::now() + BATCH_WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(window, self.consumer.recv()).await {
                    Ok(message) => self.accept(message, &mut batch)?,
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            if paused == Some(true) {
                // Something slipped through the pause (e.g. a partition assigned mid-rebalance): pause again, hold it.
                self.set_paused(true);
                self.held.extend(batch);
            } else {
                self.put(task, batch).await?;
            }
        };
        match mode {
            StopMode::Graceful | StopMode::Revoked => self.flush_and_commit(task).await,
            StopMode::Fenced => {
                debug!("fenced: stopping without flushing or committing");
                Ok(())
            }
        }
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

    /// Converts one consumed message into the batch. Consumer errors are mostly transient (broker down, topic not
    /// yet created) and librdkafka recovers by itself, so they are logged, not fatal.
    fn accept(
        &self,
        message: Result<BorrowedMessage<'_>, rdkafka::error::KafkaError>,
        batch: &mut Vec<SinkRecord>,
    ) -> Result<(), TaskError> {
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                warn!(error = %err, "consumer error");
                return Ok(());
            }
        };
        let transformed = self
            .convert(&message)
            .and_then(|record| self.transforms.apply_sink(record).map_err(|source| TaskError::Transform { source }));
        match transformed {
            Ok(Some(record)) => batch.push(record),
            Ok(None) => {}
            // Skipped, not committed by itself: the next record put from its partition commits past it.
            Err(err) if self.tolerate_errors => {
                warn!(error = %err.trace(), "skipping a record that failed conversion or a transform")
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }

    fn convert(&self, message: &BorrowedMessage<'_>) -> Result<SinkRecord, TaskError> {
        let topic = message.topic();
        let describe = |side: &str| {
            format!("{side} at topic `{topic}` partition {} offset {}", message.partition(), message.offset())
        };
        let (key_schema, key) = self
            .key_converter
            .to_connect(topic, message.key())
            .map_err(|source| TaskError::Convert { what: describe("key"), source })?;
        let (value_schema, value) = self
            .value_converter
            .to_connect(topic, message.payload())
            .map_err(|source| TaskError::Convert { what: describe("value"), source })?;
        let headers = message
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice))).collect())
            .unwrap_or_default();
        Ok(SinkRecord {
            topic: topic.to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key_schema,
            key,
            value_schema,
            value,
            timestamp: message.timestamp().to_millis(),
            headers,
        })
    }

    async fn put(&mut self, task: &mut dyn SinkTask, batch: Vec<SinkRecord>) -> Result<(), TaskError> {
        let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for record in &batch {
            let next = positions
                .entry(TopicPartition { topic: record.topic.clone(), partition: record.partition })
                .or_insert(0);
            *next = (*next).max(record.offset + 1);
        }
        let count = batch.len() as u64;
        task.put(batch).await.map_err(TaskError::connector("sink task failed to put records"))?;
        self.ctx.metrics.task(&self.ctx.id).sink_records_put(count);
        for (tp, next) in positions {
            let entry = self.next_offsets.entry(tp).or_insert(next);
            *entry = (*entry).max(next);
        }
        Ok(())
    }

    /// Flushes the task, then commits what it flushed. The order is the at-least-once guarantee: an offset is
    /// never committed before the records below it are durable in the target system.
    async fn flush_and_commit(&mut self, task: &mut dyn SinkTask) -> Result<(), TaskError> {
        if self.next_offsets == self.committed {
            return Ok(());
        }
        task.flush(&self.next_offsets).await.map_err(TaskError::connector("sink task failed to flush"))?;
        // Only partitions we still own: committing a revoked one would fail the whole commit.
        let owned: Vec<(String, i32)> = match self.consumer.assignment() {
            Ok(assignment) => assignment.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect(),
            Err(err) => {
                warn!(error = %err, "cannot read the consumer's assignment; skipping this commit");
                return Ok(());
            }
        };
        let mut tpl = TopicPartitionList::new();
        let mut to_commit = Vec::new();
        for (tp, next) in &self.next_offsets {
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
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let committed = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => {
                debug!(partitions = to_commit.len(), "committed sink offsets");
                self.committed.extend(to_commit);
            }
            // A stale group generation (we were rebalanced away) or a broker hiccup: the next owner or the next
            // interval re-commits; records since the last commit may be delivered again (at-least-once).
            Ok(Err(err)) => warn!(error = %err, "failed to commit sink offsets"),
            Err(err) => warn!(error = %err, "the commit did not finish"),
        }
        Ok(())
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
}
