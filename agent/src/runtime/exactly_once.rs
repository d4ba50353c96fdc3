//! Exactly-once delivery for source tasks (Kafka Connect KIP-618, adapted).
//!
//! With the worker's `exactly.once.source.support=enabled`, every source task produces through a transactional
//! producer (`transactional.id` = `sluice-<cluster>-<connector>-<task>`). The records of a transaction and the
//! source offsets they reach are written in the same transaction: the offsets go to an offsets topic (the
//! connector's `offsets.storage.topic`, else the worker's, else `sluice-<cluster>-offsets`; compacted) with Kafka
//! Connect's record layout (key `["<connector>",{partition}]`, value the offset JSON). Both become visible to
//! `read_committed` readers together, or not at all.
//!
//! On start, `init_transactions` fences every earlier producer with the same transactional id (a zombie copy of
//! the task can no longer commit) and aborts its open transaction; then the offsets topic is read to its end with
//! `isolation.level=read_committed` and its offsets for this connector win over the control plane's, which may lag
//! behind (they are reported after the transaction committed and can be lost in a crash).
//!
//! Except after offsets were set from outside the tasks (the connector was created, or its offsets were altered or
//! reset through the REST API while it was STOPPED): then the assignment carries a new *offsets generation* and the
//! control plane's offsets are authoritative. Task 0 fences the producers of the other tasks and writes those
//! offsets into the offsets topic (tombstones for partitions they no longer have) together with a generation
//! marker, in one transaction; the other tasks wait until the marker is there before they initialize their
//! producers. The marker makes the hand-over crash-safe: a task that starts again (after a crash before or after
//! that commit) finds either the old generation (and writes again) or the new one (and trusts the topic, which may
//! be ahead by then) — never a mix, and never a rollback of progress made since.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_connectors::ConfigMap;
use sluice_connectors::record::partition_key;
use tracing::{info, warn};

use super::{TaskContext, TaskError, TaskKey, WorkerConfig};

/// The offsets topic when neither the connector nor the worker names one and the cluster is not known.
pub(crate) const DEFAULT_OFFSETS_TOPIC: &str = "sluice-offsets";
/// The second element of the key of a generation marker record, `["<connector>","sluice.offsets.generation"]`:
/// not a partition map, so neither Sluice nor Kafka Connect reads it as a source partition.
const GENERATION_MARKER: &str = "sluice.offsets.generation";
/// How long a task other than task 0 waits for task 0 to write a new offsets generation into the offsets topic.
const GENERATION_WAIT: Duration = Duration::from_secs(120);
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
    cluster: &str,
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
        .map_or_else(|| default_offsets_topic(cluster), str::to_string);
    Ok(Some(ExactlyOnce { boundary, offsets_topic, transactional_id: transactional_id(cluster, id) }))
}

/// `sluice-<cluster>-<connector>-<task>` (Kafka Connect: `<group.id>-<connector>-<task>`): one per task, stable
/// across restarts and agents, so a new incarnation fences the old; the cluster keeps two Sluice clusters on one
/// Kafka from fencing each other's tasks of the same name. `sluice-<connector>-<task>` when the control plane did
/// not say which cluster (older versions).
pub(crate) fn transactional_id(cluster: &str, id: &TaskKey) -> String {
    if cluster.is_empty() {
        format!("sluice-{}-{}", id.connector, id.task)
    } else {
        format!("sluice-{cluster}-{}-{}", id.connector, id.task)
    }
}

/// `sluice-<cluster>-offsets`, with the characters a topic name cannot hold replaced by `_`: each cluster has its
/// own offsets topic, as each Kafka Connect cluster has its own `offset.storage.topic`.
fn default_offsets_topic(cluster: &str) -> String {
    if cluster.is_empty() {
        return DEFAULT_OFFSETS_TOPIC.to_string();
    }
    let cluster: String = cluster
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    let topic = format!("sluice-{cluster}-offsets");
    // Kafka's limit on topic names.
    if topic.len() > 249 { DEFAULT_OFFSETS_TOPIC.to_string() } else { topic }
}

/// The generation marker record of a connector: key `["<connector>","sluice.offsets.generation"]`, value
/// `{"generation":"<generation>"}`.
pub(crate) fn generation_record(connector: &str, generation: &str) -> (Vec<u8>, Vec<u8>) {
    let key = serde_json::json!([connector, GENERATION_MARKER]).to_string();
    let value = serde_json::json!({ "generation": generation }).to_string();
    (key.into_bytes(), value.into_bytes())
}

/// What the offsets topic holds for one connector.
#[derive(Debug, Default)]
pub(crate) struct StoredOffsets {
    /// The latest offset of every source partition, keyed by canonical partition JSON; `None`: removed.
    pub offsets: BTreeMap<String, Option<serde_json::Value>>,
    /// The last offsets generation written into the topic (see the module doc), if any.
    pub generation: Option<String>,
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
pub(crate) async fn read_offsets(ctx: &TaskContext, topic: &str) -> Result<StoredOffsets, TaskError> {
    let config = ctx.worker.offsets_consumer_config(&ctx.connector_config(), &ctx.id);
    let consumer: BaseConsumer =
        config.create().map_err(TaskError::kafka("failed to create the offsets topic reader"))?;
    let (topic, connector) = (topic.to_string(), ctx.id.connector.clone());
    tokio::task::spawn_blocking(move || read_offsets_blocking(&consumer, &topic, &connector))
        .await
        .map_err(|join| TaskError::ExactlyOnce(format!("reading the offsets topic panicked: {join}")))?
}

fn read_offsets_blocking(consumer: &BaseConsumer, topic: &str, connector: &str) -> Result<StoredOffsets, TaskError> {
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
    let mut stored = StoredOffsets::default();
    if ends.is_empty() {
        return Ok(stored);
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
                let (name, partition) = match parts.as_slice() {
                    [serde_json::Value::String(name), serde_json::Value::Object(partition)] => (name, Some(partition)),
                    [serde_json::Value::String(name), serde_json::Value::String(marker)]
                        if marker == GENERATION_MARKER =>
                    {
                        (name, None)
                    }
                    _ => continue,
                };
                if name != connector {
                    continue;
                }
                let Some(partition) = partition else {
                    let generation = message
                        .payload()
                        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
                        .and_then(|value| value.get("generation")?.as_str().map(str::to_string));
                    stored.generation = generation;
                    continue;
                };
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
                stored.offsets.insert(partition_key(partition), offset);
            }
        }
    }
    info!(topic, records, partitions = stored.offsets.len(), generation = ?stored.generation,
        "read the committed source offsets from the offsets topic");
    Ok(stored)
}

/// Tasks other than task 0, when the control plane's offsets are a new generation: waits until task 0 wrote them
/// into the offsets topic (its generation marker is there), before this task initializes its producer — so task 0's
/// fencing cannot hit it, and it starts from the new offsets. Fails (the task restarts) if that takes too long.
pub(crate) async fn await_generation(ctx: &TaskContext, topic: &str, generation: &str) -> Result<(), TaskError> {
    let deadline = Instant::now() + GENERATION_WAIT;
    loop {
        let stored = read_offsets(ctx, topic).await?;
        if stored.generation.as_deref() == Some(generation) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TaskError::ExactlyOnce(format!(
                "task 0 did not write the connector's new source offsets (generation {generation}) into `{topic}` \
                 within {} s; this task waits for them before it starts",
                GENERATION_WAIT.as_secs()
            )));
        }
        info!(topic, generation, "waiting for task 0 to write the new source offsets into the offsets topic");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Task 0, before it writes a new offsets generation: fences the transactional producers of tasks 1 to
/// `tasks.max - 1` (as Kafka Connect fences all task producers before it alters offsets), so no zombie of another
/// task can commit offsets over the new ones. Those tasks wait for the generation marker before they start.
pub(crate) async fn fence_other_tasks(ctx: &TaskContext) -> Result<(), TaskError> {
    let connector_config = ctx.connector_config();
    let tasks_max = connector_config.get("tasks.max").and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(1);
    for task in 1..tasks_max {
        let id = TaskKey { connector: ctx.id.connector.clone(), task };
        let transactional_id = transactional_id(&ctx.assignment.cluster, &id);
        let producer: BaseProducer = ctx
            .worker
            .producer_config(&connector_config, &id)
            .set("transactional.id", &transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .map_err(TaskError::kafka("failed to create a producer to fence another task"))?;
        tokio::task::spawn_blocking(move || producer.init_transactions(TRANSACTION_TIMEOUT))
            .await
            .map_err(|join| TaskError::ExactlyOnce(format!("fencing `{transactional_id}` did not finish: {join}")))?
            .map_err(TaskError::kafka(format!("failed to fence the producer `{transactional_id}`")))?;
        info!(transactional_id, "fenced the producer of another task before writing new source offsets");
    }
    Ok(())
}

/// The records that make the offsets topic hold exactly `wanted` for the connector, given what it holds now: the
/// changed offsets, tombstones for partitions `wanted` does not have, and the generation marker last.
pub(crate) fn generation_records(
    connector: &str,
    stored: &StoredOffsets,
    wanted: &BTreeMap<String, serde_json::Value>,
    generation: &str,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut records = Vec::new();
    for (partition, offset) in &stored.offsets {
        if offset.is_some() && !wanted.contains_key(partition) {
            records.push(offset_record(connector, partition, &serde_json::Value::Null));
        }
    }
    for (partition, offset) in wanted {
        if stored.offsets.get(partition).and_then(Option::as_ref) != Some(offset) {
            records.push(offset_record(connector, partition, offset));
        }
    }
    let (key, value) = generation_record(connector, generation);
    records.push((key, Some(value)));
    records
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
        assert_eq!(settings(&off, &config(&[]), "prod", &id()).expect("ok"), None);
        assert_eq!(settings(&off, &config(&[("transaction.boundary", "connector")]), "prod", &id()).expect("ok"), None);
        let err = settings(&off, &config(&[("exactly.once.support", "required")]), "prod", &id()).unwrap_err();
        assert!(err.to_string().contains("exactly.once.source.support=enabled"), "{err}");
        let preparing = worker(&[("exactly.once.source.support", "preparing")]);
        assert!(settings(&preparing, &config(&[("exactly.once.support", "required")]), "prod", &id()).is_err());
    }

    #[test]
    fn enabled_worker_boundaries_and_topic() {
        let on = worker(&[("exactly.once.source.support", "enabled"), ("offset.flush.interval.ms", "700")]);
        let eos =
            settings(&on, &config(&[("exactly.once.support", "required")]), "prod", &id()).expect("ok").expect("eos");
        assert_eq!(eos.boundary, Boundary::Poll);
        assert_eq!(eos.offsets_topic, "sluice-prod-offsets");
        assert_eq!(eos.transactional_id, "sluice-prod-src-0");
        let unnamed = settings(&on, &config(&[]), "", &id()).expect("ok").expect("eos");
        assert_eq!(unnamed.offsets_topic, DEFAULT_OFFSETS_TOPIC);
        assert_eq!(unnamed.transactional_id, "sluice-src-0");
        let odd = settings(&on, &config(&[]), "team a/b", &id()).expect("ok").expect("eos");
        assert_eq!(odd.offsets_topic, "sluice-team_a_b-offsets");
        assert_eq!(odd.transactional_id, "sluice-team a/b-src-0");
        let eos = settings(
            &on,
            &config(&[("transaction.boundary", "interval"), ("offsets.storage.topic", "mine")]),
            "prod",
            &id(),
        )
        .expect("ok")
        .expect("eos");
        assert_eq!(eos.boundary, Boundary::Interval(Duration::from_millis(700)));
        assert_eq!(eos.offsets_topic, "mine");
        let eos = settings(
            &on,
            &config(&[("transaction.boundary", "interval"), ("transaction.boundary.interval.ms", "250")]),
            "prod",
            &id(),
        )
        .expect("ok")
        .expect("eos");
        assert_eq!(eos.boundary, Boundary::Interval(Duration::from_millis(250)));
        let err = settings(&on, &config(&[("transaction.boundary", "connector")]), "prod", &id()).unwrap_err();
        assert!(err.to_string().contains("connector-defined transaction boundaries not supported"), "{err}");
        let global =
            worker(&[("exactly.once.source.support", "enabled"), ("offsets.storage.topic", "connect-offsets")]);
        let eos = settings(&global, &config(&[]), "prod", &id()).expect("ok").expect("eos");
        assert_eq!(eos.offsets_topic, "connect-offsets");
    }

    #[test]
    fn offset_records_use_kafka_connect_layout() {
        let (key, value) = offset_record("src", r#"{"filename":"/tmp/a"}"#, &json!({"position": 42}));
        assert_eq!(String::from_utf8(key).expect("utf8"), r#"["src",{"filename":"/tmp/a"}]"#);
        assert_eq!(value.as_deref(), Some(br#"{"position":42}"#.as_slice()));
        let (_, tombstone) = offset_record("src", r#"{"filename":"/tmp/a"}"#, &serde_json::Value::Null);
        assert_eq!(tombstone, None);
        let (key, value) = generation_record("src", "g1");
        assert_eq!(String::from_utf8(key).expect("utf8"), r#"["src","sluice.offsets.generation"]"#);
        assert_eq!(String::from_utf8(value).expect("utf8"), r#"{"generation":"g1"}"#);
    }

    #[test]
    fn a_new_generation_rewrites_only_what_differs_and_ends_with_the_marker() {
        let (a, b, c) = (r#"{"file":"a"}"#, r#"{"file":"b"}"#, r#"{"file":"c"}"#);
        let stored = StoredOffsets {
            offsets: BTreeMap::from([
                (a.to_string(), Some(json!({"position": 10}))),
                (b.to_string(), Some(json!({"position": 20}))),
                (c.to_string(), None),
            ]),
            generation: Some("old".into()),
        };
        let wanted =
            BTreeMap::from([(b.to_string(), json!({"position": 20})), (c.to_string(), json!({"position": 5}))]);
        let text = |bytes: &Option<Vec<u8>>| bytes.as_ref().map(|b| String::from_utf8(b.clone()).expect("utf8"));
        let records: Vec<(String, Option<String>)> = generation_records("src", &stored, &wanted, "new")
            .iter()
            .map(|(k, v)| (String::from_utf8(k.clone()).expect("utf8"), text(v)))
            .collect();
        assert_eq!(
            records,
            vec![
                (format!(r#"["src",{a}]"#), None),
                (format!(r#"["src",{c}]"#), Some(r#"{"position":5}"#.to_string())),
                (r#"["src","sluice.offsets.generation"]"#.to_string(), Some(r#"{"generation":"new"}"#.to_string())),
            ]
        );
        // Reset to nothing: every live partition gets a tombstone.
        let records = generation_records("src", &stored, &BTreeMap::new(), "new");
        assert_eq!(records.len(), 3);
        assert!(records[..2].iter().all(|(_, v)| v.is_none()));
    }
}
