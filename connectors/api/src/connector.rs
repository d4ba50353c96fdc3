//! The connector and task traits. The runtime (the agent's source and sink loops) owns batching, backpressure,
//! retries and offset commits; a connector only produces or consumes records.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, ConfigMap};
use crate::error::ConnectError;
use crate::record::{SinkRecord, SourceRecord};

/// Whether a connector reads from an external system into Kafka, or writes from Kafka out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// A connector plugin: describes its configuration and splits a connector's work into task configurations.
/// Pure: it never touches the external system here (that is the tasks' job), so the control plane can call it.
pub trait Connector: Send + Sync {
    /// The canonical class name, e.g. `org.apache.kafka.connect.file.FileStreamSourceConnector`.
    fn class_name(&self) -> &'static str;
    fn connector_type(&self) -> ConnectorType;
    fn version(&self) -> &'static str;
    /// The plugin's own keys (not the common ones like `name` or `tasks.max`, which [`crate::config`] adds).
    fn config_def(&self) -> ConfigDef;
    /// Checks beyond what the definition says (e.g. keys that exclude each other). Returns `(key, message)` pairs.
    fn validate_extra(&self, _config: &ConfigMap) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError>;
    /// A new source task; `None` for sink connectors.
    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        None
    }
    /// A new sink task; `None` for source connectors.
    fn create_sink_task(&self) -> Option<Box<dyn SinkTask>> {
        None
    }
}

/// What a source task gets at start: its config and the offsets committed for its connector.
#[derive(Clone, Debug, Default)]
pub struct SourceTaskContext {
    pub connector: String,
    pub task: u32,
    /// The task configuration (the connector's config merged with the task split's keys).
    pub config: ConfigMap,
    /// Committed offsets keyed by the JSON of the source partition (canonical, keys sorted).
    pub offsets: Arc<BTreeMap<String, serde_json::Value>>,
    /// State shared with the connector's other tasks, on whichever agents they run (see [`crate::shared`]).
    pub shared: crate::shared::SharedState,
}

impl SourceTaskContext {
    /// The committed offset of a source partition, if any.
    pub fn offset(&self, partition: &serde_json::Map<String, serde_json::Value>) -> Option<&serde_json::Value> {
        let key = crate::record::partition_key(partition);
        self.offsets.get(&key)
    }
}

/// A source task: polls records from the external system. `poll` may wait for data but should return within about
/// a second (an empty batch is fine) so the runtime can react to pause, stop and commit requests.
#[async_trait]
pub trait SourceTask: Send {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError>;
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;
    /// Called when the runtime has handed offsets to the offset store: `committed` holds, per source partition
    /// (keyed by its canonical JSON, as in [`SourceTaskContext::offsets`]), the offset of the last record Kafka
    /// acknowledged, together with every record before it from that partition. Kafka Connect's `commit()` plus
    /// what its `commitRecord` calls told; a CDC task advances its replication position here (never further).
    async fn commit(&mut self, _committed: &CommittedOffsets) -> Result<(), ConnectError> {
        Ok(())
    }
    /// True while the task waits on [`SourceTask::commit`] to go on (a CDC task handing its part of a snapshot
    /// over to another task): the runtime then reports acknowledged offsets and calls `commit` as soon as there are
    /// new ones, not only every `offset.flush.interval.ms`. Kafka Connect has `commitRecord` for this.
    fn commit_requested(&self) -> bool {
        false
    }
    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// Source offsets by partition: the canonical JSON of the source partition (see [`crate::record::partition_key`])
/// to the offset.
pub type CommittedOffsets = BTreeMap<String, serde_json::Value>;

/// A Kafka topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// What a sink task gets at start.
#[derive(Clone, Debug, Default)]
pub struct SinkTaskContext {
    pub connector: String,
    pub task: u32,
    pub config: ConfigMap,
}

/// A sink task: receives records in batches and makes them durable on `flush`.
#[async_trait]
pub trait SinkTask: Send {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError>;
    /// Writes (or buffers) a batch. The records stay the runtime's: after a retriable failure the same batch is
    /// put again, so a task that keeps records past `put` clones what it keeps.
    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError>;
    /// Makes everything `put` so far durable. `offsets` are the next offsets to consume per partition; the runtime
    /// commits them to the consumer group only after this returns `Ok`.
    async fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError>;
    /// Kafka Connect's `preCommit`: called at every commit point with the next offsets of everything `put` so far;
    /// returns the offsets that are safe to commit to the consumer group. The default flushes and returns them all.
    /// A task that buffers across commit points (an object store writing one object per `flush.size` records)
    /// returns only what is durable, per partition; a partition it leaves out is not committed this time.
    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        self.flush(offsets).await?;
        Ok(offsets.clone())
    }
    async fn stop(&mut self) -> Result<(), ConnectError>;
}
