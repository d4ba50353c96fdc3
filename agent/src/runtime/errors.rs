//! Kafka Connect's error handling for one task (`RetryWithToleranceOperator` and its reporters): retries of
//! retriable failures with capped, jittered exponential backoff (`errors.retry.timeout`,
//! `errors.retry.delay.max.ms`), tolerance of bad records (`errors.tolerance`), the error log
//! (`errors.log.enable`, `errors.log.include.messages`) and, for sinks, the dead letter queue
//! (`errors.deadletterqueue.*`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use sluice_connectors::{ConfigMap, ConnectError};
use tracing::{debug, error, info};

use super::{TaskContext, TaskError, TaskKey};
use crate::metrics::TaskCounters;

/// Kafka Connect's first retry delay (`RetryWithToleranceOperator.RETRIES_DELAY_MIN_MS`).
const RETRY_DELAY_MIN: Duration = Duration::from_millis(300);
const DEFAULT_RETRY_DELAY_MAX_MS: i64 = 60_000;
const DEFAULT_DLQ_REPLICATION_FACTOR: i32 = 3;
/// How long creating the DLQ topic and producing one record to it may take.
const DLQ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where in the pipeline an operation failed, with Kafka Connect's names (`Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
    KafkaProduce,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// The Java exception class Kafka Connect would have thrown for an error, for `__connect.errors.exception.class.name`.
/// Which converter a converter stage names: 0 key, 1 value, 2 header (an index into a task's converter classes).
pub(crate) fn converter_index(stage: Stage) -> usize {
    match stage {
        Stage::KeyConverter => 0,
        Stage::ValueConverter => 1,
        _ => 2,
    }
}

/// `key`, `value` or `header`, for error messages of a converter stage.
pub(crate) fn converter_side(stage: Stage) -> &'static str {
    ["key", "value", "header"][converter_index(stage)]
}

pub(crate) fn exception_class(error: &ConnectError) -> &'static str {
    match error {
        ConnectError::Config { .. } => "org.apache.kafka.common.config.ConfigException",
        ConnectError::Retriable { .. } => "org.apache.kafka.connect.errors.RetriableException",
        ConnectError::Data(_) => "org.apache.kafka.connect.errors.DataException",
        ConnectError::Fatal { .. } | ConnectError::Other(_) => "org.apache.kafka.connect.errors.ConnectException",
    }
}

/// The record a failure is about, as consumed from Kafka (sinks): the original bytes go to the DLQ unchanged.
pub(crate) struct ConsumedRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// What a failed record operation is about.
pub(crate) enum FailedRecord<'a> {
    Consumed(ConsumedRecord<'a>),
    /// A source record, described for the log (`topic`, source partition and offset, and the record if allowed).
    Source {
        describe: &'a (dyn Fn() -> String + Sync),
    },
    /// Only the topic is known (e.g. a record Kafka refused after the producer's own retries).
    TopicOnly {
        topic: &'a str,
    },
}

/// One record error: the stage, the class executing it, the error.
pub(crate) struct RecordFailure<'a> {
    pub stage: Stage,
    pub class: &'a str,
    pub error: &'a ConnectError,
    pub record: FailedRecord<'a>,
}

/// The parsed `errors.*` keys of a connector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorPolicy {
    /// The backoff cap of retries (`errors.retry.delay.max.ms`).
    pub retry_delay_max: Duration,
    pub tolerate_all: bool,
    pub log_enable: bool,
    pub log_include_messages: bool,
    pub dlq: Option<DlqConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DlqConfig {
    pub topic: String,
    pub replication_factor: i32,
    pub context_headers: bool,
}

impl ErrorPolicy {
    /// Reads the policy; the control plane validated the keys already, so a bad value here is a configuration
    /// error of the task (stated with the key).
    pub fn from_config(config: &ConfigMap, is_sink: bool) -> Result<ErrorPolicy, TaskError> {
        let get = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let long = |key: &str, default: i64| -> Result<i64, TaskError> {
            get(key).map_or(Ok(default), |v| {
                v.parse::<i64>()
                    .map_err(|_| TaskError::Config { key: key.into(), message: format!("`{v}` is not a number") })
            })
        };
        let boolean = |key: &str| -> Result<bool, TaskError> {
            match get(key).map(str::to_ascii_lowercase).as_deref() {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => {
                    Err(TaskError::Config { key: key.into(), message: format!("`{other}` is neither true nor false") })
                }
            }
        };
        // Kafka Connect applies `errors.retry.timeout` to retriable failures of converters and transforms, which
        // none of Sluice's raise; retriable failures of the task itself are retried forever (`retry_task_failure`).
        // The key is still checked, so a typo is not silently accepted.
        let retry_timeout = long("errors.retry.timeout", 0)?;
        if retry_timeout < -1 {
            return Err(TaskError::Config {
                key: "errors.retry.timeout".into(),
                message: format!("{retry_timeout} is neither -1 (forever) nor a number of milliseconds"),
            });
        }
        let retry_delay_max =
            Duration::from_millis(long("errors.retry.delay.max.ms", DEFAULT_RETRY_DELAY_MAX_MS)?.max(1) as u64);
        let tolerate_all = match get("errors.tolerance").map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => false,
            Some("all") => true,
            Some(other) => {
                return Err(TaskError::Config {
                    key: "errors.tolerance".into(),
                    message: format!("`{other}` is neither `none` nor `all`"),
                });
            }
        };
        let dlq = match get("errors.deadletterqueue.topic.name") {
            Some(topic) if is_sink => {
                let replication_factor =
                    long("errors.deadletterqueue.topic.replication.factor", DEFAULT_DLQ_REPLICATION_FACTOR as i64)?;
                Some(DlqConfig {
                    topic: topic.to_string(),
                    replication_factor: i32::try_from(replication_factor).unwrap_or(DEFAULT_DLQ_REPLICATION_FACTOR),
                    context_headers: boolean("errors.deadletterqueue.context.headers.enable")?,
                })
            }
            _ => None,
        };
        Ok(ErrorPolicy {
            retry_delay_max,
            tolerate_all,
            log_enable: boolean("errors.log.enable")?,
            log_include_messages: boolean("errors.log.include.messages")?,
            dlq,
        })
    }

    /// The retries of a retriable failure of the task itself (`SourceTask::poll`, `SinkTask::put`/`flush`, or a
    /// send refused for the moment): forever, whatever `errors.retry.timeout` says, as Kafka Connect's
    /// `WorkerSourceTask` polls again and `WorkerSinkTask` redelivers the batch after a `RetriableException`; the
    /// task stays RUNNING. The delay doubles from 300 ms up to `errors.retry.delay.max.ms` and never drops below
    /// 300 ms, so a task that keeps failing never spins.
    pub fn retry_task_failure(&self) -> Retry {
        Retry { delay_max: self.retry_delay_max.max(RETRY_DELAY_MIN), attempt: 0 }
    }
}

/// The backoff of one failing operation, retried until it succeeds (or the task stops).
#[derive(Debug)]
pub(crate) struct Retry {
    delay_max: Duration,
    attempt: u32,
}

impl Retry {
    /// After a failed attempt: how long to wait before the next one. The delay doubles from 300 ms (Kafka Connect's
    /// `RETRIES_DELAY_MIN_MS`); past the cap it is a random delay between 300 ms and the cap (jitter, so tasks that
    /// failed together do not retry together).
    pub fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        let doubled = RETRY_DELAY_MIN.saturating_mul(1u32 << (self.attempt - 1).min(20));
        if doubled > self.delay_max {
            let cap = self.delay_max.as_millis() as u64;
            Duration::from_millis(rand::rng().random_range(RETRY_DELAY_MIN.as_millis() as u64..=cap))
        } else {
            doubled
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// The dead letter queue of a sink task: its own producer, records acknowledged before the task goes on.
pub(crate) struct DeadLetterQueue {
    config: DlqConfig,
    producer: FutureProducer,
}

impl DeadLetterQueue {
    /// Creates the topic if it is missing (one partition, the configured replication factor, as Kafka Connect
    /// does) and the producer.
    pub async fn open(ctx: &TaskContext, config: DlqConfig) -> Result<DeadLetterQueue, TaskError> {
        let connector_config = ctx.connector_config();
        let admin: AdminClient<DefaultClientContext> = ctx
            .worker
            .admin_config(&connector_config, &ctx.id)
            .create()
            .map_err(TaskError::kafka("failed to create the Kafka admin client for the DLQ"))?;
        let topic = NewTopic::new(&config.topic, 1, TopicReplication::Fixed(config.replication_factor));
        let options = AdminOptions::new().operation_timeout(Some(DLQ_TIMEOUT)).request_timeout(Some(DLQ_TIMEOUT));
        let created = admin
            .create_topics([&topic], &options)
            .await
            .map_err(TaskError::kafka(format!("failed to create the dead letter queue topic `{}`", config.topic)))?;
        for result in created {
            match result {
                Ok(name) => {
                    info!(topic = %name, replication_factor = config.replication_factor, "created the dead letter queue topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(TaskError::Config {
                        key: "errors.deadletterqueue.topic.name".into(),
                        message: format!(
                            "cannot create the dead letter queue topic `{name}` with replication factor {} \
                             (errors.deadletterqueue.topic.replication.factor): {code}",
                            config.replication_factor
                        ),
                    });
                }
            }
        }
        let mut producer_config = ctx.worker.producer_config(&connector_config, &ctx.id);
        producer_config.set("client.id", format!("connector-dlq-producer-{}-{}", ctx.id.connector, ctx.id.task));
        let producer = producer_config.create().map_err(TaskError::kafka("failed to create the DLQ producer"))?;
        Ok(DeadLetterQueue { config, producer })
    }

    /// Sends the original record (key, value and headers unchanged) with the error context headers if enabled,
    /// and waits for Kafka's acknowledgement: the record's offset is committed only after that.
    async fn send(
        &self,
        id: &TaskKey,
        failure: &RecordFailure<'_>,
        record: &ConsumedRecord<'_>,
    ) -> Result<(), TaskError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 10);
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: *value });
        }
        if self.config.context_headers {
            for (key, value) in context_headers(id, failure, record) {
                headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
            }
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.config.topic).headers(headers);
        if let Some(key) = record.key {
            out = out.key(key);
        }
        if let Some(value) = record.value {
            out = out.payload(value);
        }
        if let Some(timestamp) = record.timestamp {
            out = out.timestamp(timestamp);
        }
        self.producer.send(out, DLQ_TIMEOUT).await.map(|_| ()).map_err(|(source, _)| TaskError::Kafka {
            context: format!(
                "failed to write the record at topic `{}` partition {} offset {} to the dead letter queue `{}`",
                record.topic, record.partition, record.offset, self.config.topic
            ),
            source,
        })
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }
}

/// Kafka Connect's `__connect.errors.*` headers (`DeadLetterQueueReporter.populateContextHeaders`).
pub(crate) fn context_headers(
    id: &TaskKey,
    failure: &RecordFailure<'_>,
    record: &ConsumedRecord<'_>,
) -> Vec<(&'static str, String)> {
    vec![
        ("__connect.errors.topic", record.topic.to_string()),
        ("__connect.errors.partition", record.partition.to_string()),
        ("__connect.errors.offset", record.offset.to_string()),
        ("__connect.errors.connector.name", id.connector.clone()),
        ("__connect.errors.task.id", id.task.to_string()),
        ("__connect.errors.stage", failure.stage.name().to_string()),
        ("__connect.errors.class.name", failure.class.to_string()),
        ("__connect.errors.exception.class.name", exception_class(failure.error).to_string()),
        ("__connect.errors.exception.message", failure.error.to_string()),
        ("__connect.errors.exception.stacktrace", stacktrace(failure.error)),
    ]
}

/// There is no Java stack trace: the exception line and the cause chain stand in for it.
fn stacktrace(error: &ConnectError) -> String {
    format!("{}: {}", exception_class(error), error.trace())
}

/// Handles record errors of one task: counts them, logs them, sends consumed records to the DLQ, and decides
/// (by `errors.tolerance`) whether the task skips the record or fails.
pub(crate) struct RecordErrorHandler {
    pub policy: ErrorPolicy,
    id: TaskKey,
    counters: Arc<TaskCounters>,
    dlq: Option<DeadLetterQueue>,
}

impl RecordErrorHandler {
    pub fn new(policy: ErrorPolicy, id: TaskKey, counters: Arc<TaskCounters>, dlq: Option<DeadLetterQueue>) -> Self {
        RecordErrorHandler { policy, id, counters, dlq }
    }

    pub fn tolerates(&self) -> bool {
        self.policy.tolerate_all
    }

    pub fn dlq(&self) -> Option<&DeadLetterQueue> {
        self.dlq.as_ref()
    }

    /// A record failed for good (after retries, if any). `Ok` means: skip it and go on; `Err` fails the task
    /// (with `errors.tolerance=none`, or when the DLQ cannot take the record — losing it silently would break
    /// at-least-once).
    pub async fn record_failed(&self, failure: RecordFailure<'_>, fail_with: TaskError) -> Result<(), TaskError> {
        self.counters.record_failure();
        self.counters.record_error();
        self.log(&failure);
        if let (Some(dlq), FailedRecord::Consumed(record)) = (&self.dlq, &failure.record) {
            self.counters.dlq_produce_request();
            if let Err(err) = dlq.send(&self.id, &failure, record).await {
                self.counters.dlq_produce_failure();
                error!(topic = %dlq.topic(), error = %err.trace(), "could not produce a record to the dead letter queue");
                return Err(err);
            }
        }
        if !self.policy.tolerate_all {
            return Err(fail_with);
        }
        self.counters.record_skipped();
        Ok(())
    }

    /// Kafka Connect's `LogReporter`: one ERROR line per failed record when `errors.log.enable=true`, with the
    /// record's coordinates (and content for source records) when `errors.log.include.messages=true`.
    fn log(&self, failure: &RecordFailure<'_>) {
        let message = describe_failure(&self.id, failure, self.policy.log_include_messages);
        if self.policy.log_enable {
            self.counters.error_logged();
            error!(error = %failure.error.trace(), "{message}");
        } else {
            debug!(error = %failure.error.trace(), "{message}");
        }
    }
}

/// `Error encountered in task x-0. Executing stage 'VALUE_CONVERTER' with class '...', where consumed record is
/// {topic='t', partition=0, offset=7, timestamp=..., timestampType=CreateTime}.` — Kafka Connect's wording.
pub(crate) fn describe_failure(id: &TaskKey, failure: &RecordFailure<'_>, include_record: bool) -> String {
    let mut out = format!(
        "Error encountered in task {}-{}. Executing stage '{}' with class '{}'",
        id.connector,
        id.task,
        failure.stage.name(),
        failure.class
    );
    if include_record {
        match &failure.record {
            FailedRecord::Consumed(record) => {
                let _ = write!(
                    out,
                    ", where consumed record is {{topic='{}', partition={}, offset={}",
                    record.topic, record.partition, record.offset
                );
                if let Some(timestamp) = record.timestamp {
                    let _ = write!(out, ", timestamp={timestamp}, timestampType=CreateTime");
                }
                out.push('}');
            }
            FailedRecord::Source { describe, .. } => {
                let _ = write!(out, ", where source record is = {}", describe());
            }
            FailedRecord::TopicOnly { topic } => {
                let _ = write!(out, ", where the record was for topic '{topic}'");
            }
        }
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_kafka_connects() {
        let policy = ErrorPolicy::from_config(&ConfigMap::new(), true).expect("valid");
        assert_eq!(policy.retry_delay_max, Duration::from_secs(60));
        assert!(!policy.tolerate_all && !policy.log_enable && !policy.log_include_messages);
        assert_eq!(policy.dlq, None);
    }

    #[test]
    fn parses_every_key() {
        let policy = ErrorPolicy::from_config(
            &config(&[
                ("errors.retry.timeout", "-1"),
                ("errors.retry.delay.max.ms", "1000"),
                ("errors.tolerance", "ALL"),
                ("errors.log.enable", "true"),
                ("errors.log.include.messages", "true"),
                ("errors.deadletterqueue.topic.name", " dlq "),
                ("errors.deadletterqueue.topic.replication.factor", "1"),
                ("errors.deadletterqueue.context.headers.enable", "true"),
            ]),
            true,
        )
        .expect("valid");
        assert!(policy.tolerate_all && policy.log_enable && policy.log_include_messages);
        assert_eq!(policy.dlq, Some(DlqConfig { topic: "dlq".into(), replication_factor: 1, context_headers: true }));
        let source = ErrorPolicy::from_config(&config(&[("errors.deadletterqueue.topic.name", "dlq")]), false);
        assert_eq!(source.expect("valid").dlq, None, "sources have no DLQ, as in Kafka Connect");
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        for (key, value) in [("errors.tolerance", "some"), ("errors.retry.timeout", "-2"), ("errors.log.enable", "yes")]
        {
            let err = ErrorPolicy::from_config(&config(&[(key, value)]), true).expect_err("invalid");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn task_failures_are_retried_forever_with_a_capped_jittered_backoff() {
        // errors.retry.timeout=0 (the default) does not stop the retries of a task's own retriable failure.
        let policy = ErrorPolicy::from_config(&config(&[("errors.retry.delay.max.ms", "5000")]), true).expect("valid");
        let mut retry = policy.retry_task_failure();
        let delays: Vec<Duration> = (0..200).map(|_| retry.next_delay()).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(&delays[..5], [ms(300), ms(600), ms(1200), ms(2400), ms(4800)]);
        // 9600 ms would pass the cap: from then on a random delay between 300 ms and the cap.
        assert!(delays[5..].iter().all(|d| *d >= ms(300) && *d <= ms(5000)), "{delays:?}");
        assert!(delays[5..].windows(2).any(|w| w[0] != w[1]), "jittered: {delays:?}");
        assert_eq!(retry.attempts(), 200);
    }

    #[test]
    fn task_failures_never_spin_even_with_a_tiny_cap() {
        let policy = ErrorPolicy::from_config(&config(&[("errors.retry.delay.max.ms", "1")]), false).expect("valid");
        let mut retry = policy.retry_task_failure();
        assert!((0..100).all(|_| retry.next_delay() == RETRY_DELAY_MIN));
    }

    #[test]
    fn context_headers_and_log_line_follow_kafka_connect() {
        let id = TaskKey { connector: "orders-sink".into(), task: 2 };
        let error =
            ConnectError::Data("Converting byte[] to Kafka Connect data failed due to serialization error".into());
        let record = ConsumedRecord {
            topic: "orders",
            partition: 1,
            offset: 42,
            timestamp: Some(1_700_000_000_000),
            key: None,
            value: Some(b"not json"),
            headers: Vec::new(),
        };
        let failure = RecordFailure {
            stage: Stage::ValueConverter,
            class: "org.apache.kafka.connect.json.JsonConverter",
            error: &error,
            record: FailedRecord::Consumed(ConsumedRecord { headers: Vec::new(), ..record }),
        };
        let FailedRecord::Consumed(consumed) = &failure.record else { unreachable!() };
        let headers = context_headers(&id, &failure, consumed);
        let get = |k: &str| headers.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("__connect.errors.topic"), Some("orders"));
        assert_eq!(get("__connect.errors.partition"), Some("1"));
        assert_eq!(get("__connect.errors.offset"), Some("42"));
        assert_eq!(get("__connect.errors.connector.name"), Some("orders-sink"));
        assert_eq!(get("__connect.errors.task.id"), Some("2"));
        assert_eq!(get("__connect.errors.stage"), Some("VALUE_CONVERTER"));
        assert_eq!(get("__connect.errors.class.name"), Some("org.apache.kafka.connect.json.JsonConverter"));
        assert_eq!(get("__connect.errors.exception.class.name"), Some("org.apache.kafka.connect.errors.DataException"));
        assert!(get("__connect.errors.exception.message").is_some_and(|m| m.contains("serialization error")));
        assert!(
            get("__connect.errors.exception.stacktrace")
                .is_some_and(|m| m.starts_with("org.apache.kafka.connect.errors.DataException: "))
        );
        assert_eq!(headers.len(), 10);

        assert_eq!(
            describe_failure(&id, &failure, false),
            "Error encountered in task orders-sink-2. Executing stage 'VALUE_CONVERTER' with class \
             'org.apache.kafka.connect.json.JsonConverter'."
        );
        assert_eq!(
            describe_failure(&id, &failure, true),
            "Error encountered in task orders-sink-2. Executing stage 'VALUE_CONVERTER' with class \
             'org.apache.kafka.connect.json.JsonConverter', where consumed record is {topic='orders', partition=1, \
             offset=42, timestamp=1700000000000, timestampType=CreateTime}."
        );
    }
}
