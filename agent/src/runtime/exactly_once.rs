//! Exactly-once delivery for source tasks (Kafka Connect KIP-618, adapted).
//!
//! With the worker's `exactly.once.source.support=enabled`, every source task produces through a transactional
//! producer (`transactional.id` = `sluice-<connector>-<task>`). The records of a transaction and the source offsets
//! they reach are written in the same transaction: the offsets go to an offsets topic (the connector's
//! `offsets.storage.topic`, else the worker's, else `sluice-offsets`; compacted) with Kafka Connect's record layout
//! (key `["<connector>",{partition}]`, value the offset JSON). Both become visible to `read_committed` readers
//! together, or not at all.
//!
//! On start, `init_transactions` fences every earlier producer with the same transactional id (a zombie copy of
//! the task can no longer commit) and aborts its open transaction; then the offsets topic is read to its end with
//! `isolation.level=read_committed` and its offsets for this connector win over the control plane's, which may lag
//! behind (they are reported after the transaction committed and can be lost in a crash).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_connectors::ConfigMap;
use sluice_connectors::record::partition_key;
use tracing::{info, warn};

use super::{TaskContext, TaskError, TaskKey, WorkerConfig};

/// The offsets topic when neither the connector nor the worker names one.
pub(crate) const DEFAULT_OFFSETS_TOPIC: &str = "sluice-offsets";
/// Kafka Connect's `offsets.storage.partitions` default.
const DEFAULT_OFFSETS_PARTITIONS: i32 = 25;
/// How long `init_transactions`, a commit or an abort may take before the task fails.
pub(crate) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading the offsets topic to its end may take on task start.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The worker's `exactly.once.source.support`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerSupport {
    Disabled,
    /// Kafka Connect's rolling-upgrade step (fencing prepared, tasks not transactional yet): tasks run as without.
    Preparing,
    Enabled,
}

impl WorkerSupport {
    pub fn parse(value: Option<&str>) -> Result<WorkerSupport, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("disabled") => Ok(WorkerSupport::Disabled),
            Some("preparing") => Ok(WorkerSupport::Preparing),
            Some("enabled") => Ok(WorkerSupport::Enabled),
            Some(other) => Err(format!("expected enabled, preparing or disabled, got `{other}`")),
        }
    }
}

/// When a task commits its transaction (`transaction.boundary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// One transaction per non-empty poll batch (the default).
    Poll,
    /// A transaction spans the batches of this interval (`transaction.boundary.interval.ms`, default
    /// `offset.flush.interval.ms`).
    Interval(Duration),
}

/// The exactly-once settings of one source task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExactlyOnce {
    pub boundary: Boundary,
    pub offsets_topic: String,
    pub transactional_id: String,
}

/// Decides whether a source task runs with transactions. `None`: without (worker support off and the connector
/// only requested it). Fails when the connector requires exactly-once but the worker does not provide it, and for
/// connector-defined transaction boundaries (no Sluice connector defines them; Kafka Connect fails the same way).
pub(crate) fn settings(
    worker: &WorkerConfig,
    connector_config: &ConfigMap,
    id: &TaskKey,
) -> Result<Option<ExactlyOnce>, TaskError> {
    let get = |key: &str| connector_config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let config_error = |key: &str, message: String| TaskError::Config { key: key.to_string(), message };
    let required = match get("exactly.once.support").map(str::to_ascii_lowercase).as_deref() {
        None | Some("requested") => false,
        Some("required") => true,
        Some(other) => {
            return Err(config_error("exactly.once.support", format!("expected requested or required, got `{other}`")));
        }
    };
    if worker.exactly_once_source != WorkerSupport::Enabled {
        if required {
            return Err(config_error(
                "exactly.once.support",
                "exactly-once support is required, but this worker does not have exactly-once source support \
                 enabled (set exactly.once.source.support=enabled in worker.properties)"
                    .to_string(),
            ));
        }
        return Ok(None);
    }
    let boundary = match get("transaction.boundary").map(str::to_ascii_lowercase).as_deref() {
        None | Some("poll") => Boundary::Poll,
        Some("interval") => {
            let interval = match get("transaction.boundary.interval.ms") {
                None => worker.offset_flush_interval,
                Some(v) => match v.parse::<u64>() {
                    Ok(ms) => Duration::from_millis(ms),
                    Err(_) => {
                        return Err(config_error(
                            "transaction.boundary.interval.ms",
                            format!("expected a number of milliseconds, got `{v}`"),
                        ));
                    }
                },
            };
            Boundary::Interval(interval)
        }
        Some("connector") => {
            let class = connector_config.get("connector.class").map(String::as_str).unwrap_or_default();
            return Err(config_error(
                "transaction.boundary",
                format!(
                    "The connector {class} does not support connector-defined transaction boundaries with the given \
                     configuration (connector-defined transaction boundaries not supported)"
                ),
            ));
        }
        Some(other) => {
            return Err(config_error(
                "transaction.boundary",
                format!("expected poll, interval or connector, got `{other}`"),
            ));
        }
    };
    let offsets_topic = get("offsets.storage.topic")
        .or_else(|| worker.raw.get("offsets.storage.topic").map(|v| v.trim()).filter(|v| !v.is_empty()))
        .unwrap_or(DEFAULT_OFFSETS_TOPIC)
        .to_string();
    Ok(Some(ExactlyOnce { boundary, offsets_topic, transactional_id: transactional_id(id) }))
}

/// `sluice-<connector>-<task>`: one per task, stable across restarts and agents, so a new incarnation fences the old.
pub(crate) fn transactional_id(id: &TaskKey) -> String {
    format!("sluice-{}-{}", id.connector, id.task)
}

/// The offsets topic record of one source partition: key `["<connector>",{partition}]` (canonical JSON, as Kafka
/// Connect's JSON converter writes it without schemas), value the offset JSON, or none (a tombstone) for a null
/// offset.
pub(crate) fn offset_record(
    connector: &str,
    partition_key: &str,
    offset: &serde_json::Value,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = format!("[{},{}]", serde_json::Value::String(connector.to_string()), partition_key);
    let value = if offset.is_null() { None } else { Some(offset.to_string().into_bytes()) };
    (key.into_bytes(), value)
}

/// Makes sure the offsets topic exists: compacted, `offsets.storage.partitions` partitions (25) and
/// `offsets.storage.replication.factor` replicas (broker default) from the worker, like Kafka Connect's
/// `connect-offsets`. An existing topic is used as it is.
pub(crate) async fn ensure_offsets_topic(ctx: &TaskContext, topic: &str) -> Result<(), TaskError> {
    let worker = &ctx.worker;
    let number = |key: &str, default: i32| -> Result<i32, TaskError> {
        match worker.raw.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| TaskError::Config {
                key: key.to_string(),
                message: format!("expected a number in worker.properties, got `{v}`"),
            }),
        }
    };
    let partitions = number("offsets.storage.partitions", DEFAULT_OFFSETS_PARTITIONS)?;
    let replication = number("offsets.storage.replication.factor", -1)?;
    let admin: AdminClient<DefaultClientContext> = worker
        .admin_config(&ctx.connector_config(), &ctx.id)
        .create()
        .map_err(TaskError::kafka("failed to create the Kafka admin client for the offsets topic"))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let context = format!("Unable to create the offsets topic `{topic}`");
    let results = admin.create_topics([&new], &options).await.map_err(TaskError::kafka(context.clone()))?;
    for result in results {
        match result {
            Ok(_) => info!(topic, partitions, "created the offsets topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(TaskError::Kafka { context, source: KafkaError::AdminOp(code) }),
        }
    }
    Ok(())
}

/// Reads the offsets topic from the beginning to its end (as of now) with `isolation.level=read_committed` and
/// returns the latest offset of every source partition of `connector`, keyed by canonical partition JSON; a
/// tombstone removes a partition. Must run after `init_transactions`, so the task's own aborted transaction does
/// not hold the end back.
pub(crate) async fn read_offsets(
    ctx: &TaskContext,
    topic: &str,
) -> Result<BTreeMap<String, Option<serde_json::Value>>, TaskError> {
    let config = ctx.worker.offsets_consumer_config(&ctx.connector_config(), &ctx.id);
    let consumer: BaseConsumer =
        config.create().map_err(TaskError::kafka("failed to create the offsets topic reader"))?;
    let (topic, connector) = (topic.to_string(), ctx.id.connector.clone());
    tokio::task::spawn_blocking(move || read_offsets_blocking(&consumer, &topic, &connector))
        .await
        .map_err(|join| TaskError::ExactlyOnce(format!("reading the offsets topic panicked: {join}")))?
}

fn read_offsets_blocking(
    consumer: &BaseConsumer,
    topic: &str,
    connector: &str,
) -> Result<BTreeMap<String, Option<serde_json::Value>>, TaskError> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let context = |what: &str| format!("failed to read the offsets topic `{topic}`: {what}");
    let metadata =
        consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(TaskError::kafka(context("metadata")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TaskError::ExactlyOnce(context("the topic has no partitions")));
    }
    // The end to read to: the high watermarks now. Records of transactions still open below them become visible
    // (or are skipped as aborted) once those transactions end; the read waits for that.
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(TaskError::kafka(context("watermarks")))?;
        if high > low {
            ends.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(TaskError::kafka(context("assign")))?;
        }
    }
    let mut offsets = BTreeMap::new();
    if ends.is_empty() {
        return Ok(offsets);
    }
    consumer.assign(&assignment).map_err(TaskError::kafka(context("assign")))?;
    let mut records = 0u64;
    loop {
        // The position moves past transaction markers and aborted records too, so it reaches the end.
        let position = consumer.position().map_err(TaskError::kafka(context("position")))?;
        ends.retain(|partition, end| match position.find_partition(topic, *partition).map(|p| p.offset()) {
            Some(Offset::Offset(at)) => at < *end,
            _ => true,
        });
        if ends.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(TaskError::ExactlyOnce(context(&format!(
                "did not reach the end within {} s (partitions {:?} behind; an open transaction?)",
                READ_TIMEOUT.as_secs(),
                ends.keys().collect::<Vec<_>>()
            ))));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(err)) => return Err(TaskError::kafka(context("fetch"))(err)),
            Some(Ok(message)) => {
                records += 1;
                let Some(key) = message.key() else { continue };
                let Ok(serde_json::Value::Array(parts)) = serde_json::from_slice::<serde_json::Value>(key) else {
                    continue;
                };
                let [serde_json::Value::String(name), serde_json::Value::Object(partition)] = parts.as_slice() else {
                    continue;
                };
                if name != connector {
                    continue;
                }
                let offset = match message.payload() {
                    None => None,
                    Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
                        Ok(value) => Some(value),
                        Err(err) => {
                            warn!(topic, offset = message.offset(), error = %err, "ignoring an offset that is not JSON");
                            continue;
                        }
                    },
                };
                offsets.insert(partition_key(partition), offset);
            }
        }
    }
    info!(topic, records, partitions = offsets.len(), "read the committed source offsets from the offsets topic");
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn worker(pairs: &[(&str, &str)]) -> WorkerConfig {
        WorkerConfig::from_properties(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
            .expect("valid")
    }

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut map: ConfigMap = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.insert("connector.class".into(), "FileStreamSource".into());
        map
    }

    fn id() -> TaskKey {
        TaskKey { connector: "src".into(), task: 0 }
    }

    #[test]
    fn worker_support_values() {
        assert_eq!(WorkerSupport::parse(None), Ok(WorkerSupport::Disabled));
        assert_eq!(WorkerSupport::parse(Some(" Enabled ")), Ok(WorkerSupport::Enabled));
        assert_eq!(WorkerSupport::parse(Some("preparing")), Ok(WorkerSupport::Preparing));
        assert!(WorkerSupport::parse(Some("yes")).is_err());
        assert!(WorkerConfig::from_properties([("exactly.once.source.support".into(), "on".into())].into()).is_err());
    }

    #[test]
    fn disabled_worker_runs_without_unless_required() {
        let off = worker(&[]);
        assert_eq!(settings(&off, &config(&[]), &id()).expect("ok"), None);
        assert_eq!(settings(&off, &config(&[("transaction.boundary", "connector")]), &id()).expect("ok"), None);
        let err = settings(&off, &config(&[("exactly.once.support", "required")]), &id()).unwrap_err();
        assert!(err.to_string().contains("exactly.once.source.support=enabled"), "{err}");
        let preparing = worker(&[("exactly.once.source.support", "preparing")]);
        assert!(settings(&preparing, &config(&[("exactly.once.support", "required")]), &id()).is_err());
    }

    #[test]
    fn enabled_worker_boundaries_and_topic() {
        let on = worker(&[("exactly.once.source.support", "enabled"), ("offset.flush.interval.ms", "700")]);
        let eos = settings(&on, &config(&[("exactly.once.support", "required")]), &id()).expect("ok").expect("eos");
        assert_eq!(eos.boundary, Boundary::Poll);
        assert_eq!(eos.offsets_topic, DEFAULT_OFFSETS_TOPIC);
        assert_eq!(eos.transactional_id, "sluice-src-0");
        let eos =
            settings(&on, &config(&[("transaction.boundary", "interval"), ("offsets.storage.topic", "mine")]), &id())
                .expect("ok")
                .expect("eos");
        assert_eq!(eos.boundary, Boundary::Interval(Duration::from_millis(700)));
        assert_eq!(eos.offsets_topic, "mine");
        let eos = settings(
            &on,
            &config(&[("transaction.boundary", "interval"), ("transaction.boundary.interval.ms", "250")]),
            &id(),
        )
        .expect("ok")
        .expect("eos");
        assert_eq!(eos.boundary, Boundary::Interval(Duration::from_millis(250)));
        let err = settings(&on, &config(&[("transaction.boundary", "connector")]), &id()).unwrap_err();
        assert!(err.to_string().contains("connector-defined transaction boundaries not supported"), "{err}");
        let global =
            worker(&[("exactly.once.source.support", "enabled"), ("offsets.storage.topic", "connect-offsets")]);
        let eos = settings(&global, &config(&[]), &id()).expect("ok").expect("eos");
        assert_eq!(eos.offsets_topic, "connect-offsets");
    }

    #[test]
    fn offset_records_use_kafka_connect_layout() {
        let (key, value) = offset_record("src", r#"{"filename":"/tmp/a"}"#, &json!({"position": 42}));
        assert_eq!(String::from_utf8(key).expect("utf8"), r#"["src",{"filename":"/tmp/a"}]"#);
        assert_eq!(value.as_deref(), Some(br#"{"position":42}"#.as_slice()));
        let (_, tombstone) = offset_record("src", r#"{"filename":"/tmp/a"}"#, &serde_json::Value::Null);
        assert_eq!(tombstone, None);
    }
}
