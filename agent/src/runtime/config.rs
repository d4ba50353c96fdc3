//! The worker configuration (`worker.properties`) and what the runtime derives from it per task: Kafka client
//! configurations and converters, with Kafka Connect's precedence (connector overrides worker).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use sluice_connectors::{ConfigMap, Converter, registry};

use super::exactly_once::WorkerSupport;
use super::headers::{DEFAULT_HEADER_CONVERTER, HeaderConversion};
use super::{TaskError, TaskKey};

const DEFAULT_OFFSET_FLUSH_INTERVAL_MS: u64 = 60_000;
const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 5_000;
/// Kafka Connect's default converter: JSON with the schema envelope.
const DEFAULT_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
const OVERRIDE_POLICY_KEY: &str = "connector.client.config.override.policy";

/// Java client keys that librdkafka does not know; passing them would make client creation fail, so they are
/// dropped (with a debug log) instead of failing a worker file written for Kafka Connect.
const JAVA_ONLY_CLIENT_KEYS: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "max.block.ms",
    "interceptor.classes",
    "metric.reporters",
    "partitioner.class",
    "sasl.jaas.config",
    "default.api.timeout.ms",
    "request.timeout.ms.config",
    // The sink loop's batch bound (`BatchSizes` in runtime/sink.rs); librdkafka has no such setting.
    "max.poll.records",
];

/// How many KiB of records a source task's producer may hold (waiting to be sent or for Kafka's acknowledgement),
/// librdkafka's `queue.buffering.max.kbytes`; beyond it `produce` waits, which slows the task instead of growing
/// memory. The Java producer's equivalent, `buffer.memory`, defaults to 32 MiB; librdkafka's own default is 1 GiB,
/// which let a PostgreSQL CDC task at full speed peak at ~145 MB instead of ~90 MB with 8 MiB (and ~120 MB with 16 MiB), at the same speed. 8 MiB keeps several 1 MB batches in flight
/// per broker; `producer.buffer.memory` (worker) or `producer.override.buffer.memory` (connector) set it in bytes as
/// for Kafka Connect, and `queue.buffering.max.kbytes` under the same prefixes sets it directly.
const DEFAULT_PRODUCER_BUFFER_KB: u64 = 8 * 1024;

/// Top-level worker keys that Kafka Connect also applies to every client it creates.
const SHARED_CLIENT_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "client.dns.lookup",
];

/// The Java client's `metadata.max.age.ms` ("force a refresh of metadata after this long, to discover new brokers,
/// partitions and the topics of a `topics.regex` subscription") is librdkafka's `topic.metadata.refresh.interval.ms`;
/// librdkafka's own `metadata.max.age.ms` is the age of its metadata cache, by default three refresh intervals. So a
/// Kafka Connect config that sets `consumer.override.metadata.max.age.ms=10000` to see new topics within 10 s does so
/// here too. A value librdkafka cannot take is passed on as written, so the client refuses it with its own message.
fn set_metadata_max_age(cfg: &mut ClientConfig, value: &str) {
    // librdkafka's ranges: topic.metadata.refresh.interval.ms -1..=3,600,000; metadata.max.age.ms 1..=86,400,000.
    match value.trim().parse::<u64>() {
        Ok(ms) if ms <= 3_600_000 => {
            cfg.set("topic.metadata.refresh.interval.ms", ms.to_string());
            cfg.set("metadata.max.age.ms", (ms * 3).clamp(1, 86_400_000).to_string());
        }
        _ => {
            cfg.set("topic.metadata.refresh.interval.ms", value);
        }
    }
}

/// The Java producer's `buffer.memory` (bytes) is librdkafka's `queue.buffering.max.kbytes` (KiB, rounded up, within
/// librdkafka's range 1..=2,147,483,647). A value that is not a number is passed on as written, so the client refuses
/// it with its own message.
fn set_buffer_memory(cfg: &mut ClientConfig, value: &str) {
    match value.trim().parse::<u64>() {
        Ok(bytes) => {
            let kbytes = bytes.div_ceil(1024).clamp(1, 2_147_483_647);
            cfg.set("queue.buffering.max.kbytes", kbytes.to_string());
        }
        Err(_) => {
            cfg.set("queue.buffering.max.kbytes", value);
        }
    }
}

/// The client prefixes a connector may override (`producer.override.*`, ...).
const CLIENT_OVERRIDE_PREFIXES: &[&str] = &["producer.override.", "consumer.override.", "admin.override."];

/// The worker's `connector.client.config.override.policy`: which `*.override.*` keys a connector may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientOverridePolicy {
    /// Every client setting may be overridden (Kafka Connect's default since 3.0).
    All,
    /// No client setting may be overridden.
    None,
    /// Only the client's identity: `sasl.jaas.config`, `sasl.mechanism`, `security.protocol`.
    Principal,
}

impl ClientOverridePolicy {
    /// Parses a policy by Kafka Connect's alias (`All`) or class name
    /// (`org.apache.kafka.connect.connector.policy.AllConnectorClientConfigOverridePolicy`).
    fn parse(value: &str) -> Option<Self> {
        let name = value.trim();
        let name = name.strip_prefix("org.apache.kafka.connect.connector.policy.").unwrap_or(name);
        let name = name.strip_suffix("ConnectorClientConfigOverridePolicy").unwrap_or(name);
        match name {
            "All" => Some(ClientOverridePolicy::All),
            "None" => Some(ClientOverridePolicy::None),
            "Principal" => Some(ClientOverridePolicy::Principal),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClientOverridePolicy::All => "All",
            ClientOverridePolicy::None => "None",
            ClientOverridePolicy::Principal => "Principal",
        }
    }

    fn allows(self, client_key: &str) -> bool {
        match self {
            ClientOverridePolicy::All => true,
            ClientOverridePolicy::None => false,
            ClientOverridePolicy::Principal => {
                matches!(client_key, "sasl.jaas.config" | "sasl.mechanism" | "security.protocol")
            }
        }
    }

    /// Checks every `producer.override.*`, `consumer.override.*` and `admin.override.*` key of a connector;
    /// the first one the policy forbids fails the task with Kafka Connect's message.
    pub fn check(self, connector_config: &ConfigMap) -> Result<(), TaskError> {
        for key in connector_config.keys() {
            let Some(client_key) = CLIENT_OVERRIDE_PREFIXES.iter().find_map(|p| key.strip_prefix(p)) else {
                continue;
            };
            if !self.allows(client_key) {
                return Err(TaskError::Config {
                    key: key.clone(),
                    message: format!(
                        "The '{}' policy does not allow '{client_key}' to be overridden in the connector configuration.",
                        self.name()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The parsed `worker.properties`.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub raw: BTreeMap<String, String>,
    pub bootstrap_servers: String,
    /// How often source offsets are reported and sink offsets flushed and committed.
    pub offset_flush_interval: Duration,
    /// How long a stopping task may take to drain in-flight records before it is cut off.
    pub shutdown_timeout: Duration,
    /// `topic.creation.enable`: whether source connectors may create their topics (`topic.creation.*`).
    pub topic_creation_enable: bool,
    /// `connector.client.config.override.policy`.
    pub client_override_policy: ClientOverridePolicy,
    /// `exactly.once.source.support`: whether source tasks produce transactionally (KIP-618).
    pub exactly_once_source: WorkerSupport,
}

impl WorkerConfig {
    pub fn from_properties(raw: BTreeMap<String, String>) -> Result<Self, crate::AgentError> {
        let millis = |key: &str, default: u64| -> Result<Duration, crate::AgentError> {
            match raw.get(key).map(|v| v.trim()) {
                None | Some("") => Ok(Duration::from_millis(default)),
                Some(v) => v.parse::<u64>().map(Duration::from_millis).map_err(|_| crate::AgentError::WorkerConfig {
                    key: key.to_string(),
                    message: format!("expected a number of milliseconds, got `{v}`"),
                }),
            }
        };
        let offset_flush_interval = millis("offset.flush.interval.ms", DEFAULT_OFFSET_FLUSH_INTERVAL_MS)?;
        let shutdown_timeout = millis("task.shutdown.graceful.timeout.ms", DEFAULT_SHUTDOWN_TIMEOUT_MS)?;
        if offset_flush_interval.is_zero() {
            return Err(crate::AgentError::WorkerConfig {
                key: "offset.flush.interval.ms".into(),
                message: "must be greater than 0".into(),
            });
        }
        let bootstrap_servers =
            raw.get("bootstrap.servers").map(|s| s.trim().to_string()).unwrap_or_else(|| "localhost:9092".to_string());
        let topic_creation_enable = match raw.get("topic.creation.enable").map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(crate::AgentError::WorkerConfig {
                    key: "topic.creation.enable".into(),
                    message: format!("expected true or false, got `{v}`"),
                });
            }
        };
        let client_override_policy = match raw.get(OVERRIDE_POLICY_KEY) {
            None => ClientOverridePolicy::All,
            Some(v) => ClientOverridePolicy::parse(v).ok_or_else(|| crate::AgentError::WorkerConfig {
                key: OVERRIDE_POLICY_KEY.into(),
                message: format!("expected All, None or Principal (or their policy class names), got `{}`", v.trim()),
            })?,
        };
        let exactly_once_source =
            WorkerSupport::parse(raw.get("exactly.once.source.support").map(String::as_str)).map_err(|message| {
                crate::AgentError::WorkerConfig { key: "exactly.once.source.support".into(), message }
            })?;
        // Checked once at start-up, so a bad `config.providers` stops the agent instead of failing every task.
        if let Err(super::TaskError::Config { key, message }) =
            super::config_providers::ConfigProviders::from_worker(&raw)
        {
            return Err(crate::AgentError::WorkerConfig { key, message });
        }
        Ok(WorkerConfig {
            raw,
            bootstrap_servers,
            offset_flush_interval,
            shutdown_timeout,
            topic_creation_enable,
            client_override_policy,
            exactly_once_source,
        })
    }

    /// The admin client of a task (topic creation): worker `admin.*`, then the connector's `admin.override.*`.
    pub fn admin_config(&self, connector_config: &ConfigMap, id: &TaskKey) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("connector-adminclient-{}-{}", id.connector, id.task));
        self.apply_client_keys(&mut cfg, connector_config, "admin.");
        cfg
    }

    /// The producer of a source task: Kafka Connect's safe defaults, then worker `producer.*`, then the connector's
    /// `producer.override.*`.
    pub fn producer_config(&self, connector_config: &ConfigMap, id: &TaskKey) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("connector-producer-{}-{}", id.connector, id.task))
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "5")
            .set("queue.buffering.max.kbytes", DEFAULT_PRODUCER_BUFFER_KB.to_string());
        self.apply_client_keys(&mut cfg, connector_config, "producer.");
        cfg
    }

    /// The consumer of a sink task, in the group `connect-<connector>` that fences zombie sink tasks.
    pub fn consumer_config(&self, connector_config: &ConfigMap, id: &TaskKey) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("connector-consumer-{}-{}", id.connector, id.task))
            .set("group.id", format!("connect-{}", id.connector))
            // Static membership, one identity per task: a restarted or moved task takes over its predecessor's
            // place in the group at once (the coordinator fences the old member) instead of waiting for a
            // rebalance that stalls until the old member's session times out, e.g. after a kill -9.
            .set("group.instance.id", format!("connect-{}-{}", id.connector, id.task))
            // Kafka Connect's worker session timeout: a vanished member is noticed in seconds, not 45 s.
            .set("session.timeout.ms", "10000")
            .set("auto.offset.reset", "earliest")
            // librdkafka stops fetching a partition whose prefetch queue is over `queued.min.messages` and looks
            // again only after this backoff (default 1 s): a fast sink drains the queue long before, then idles.
            .set("fetch.queue.backoff.ms", "10")
            // Prefetch at most 16 MiB (librdkafka's default is 64 MiB): enough to keep a sink busy between fetches,
            // and the agent's memory stays small with many sink tasks. `consumer.*` settings override both.
            .set("queued.max.messages.kbytes", "16384");
        self.apply_client_keys(&mut cfg, connector_config, "consumer.");
        // Offsets are committed only after the sink task flushed; never let the client commit on its own.
        cfg.set("enable.auto.commit", "false").set("enable.auto.offset.store", "false");
        cfg
    }

    /// The consumer that reads the offsets topic when an exactly-once source task starts: `read_committed`, no
    /// group membership or commits (partitions are assigned), worker `consumer.*` and connector
    /// `consumer.override.*` settings apply.
    pub fn offsets_consumer_config(&self, connector_config: &ConfigMap, id: &TaskKey) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("connector-offsets-reader-{}-{}", id.connector, id.task));
        self.apply_client_keys(&mut cfg, connector_config, "consumer.");
        cfg.set("group.id", format!("sluice-offsets-reader-{}-{}", id.connector, id.task))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        cfg
    }

    fn apply_client_keys(&self, cfg: &mut ClientConfig, connector_config: &ConfigMap, prefix: &str) {
        let mut set = |key: &str, value: &str| {
            if JAVA_ONLY_CLIENT_KEYS.contains(&key) {
                tracing::debug!(key, "ignoring a Java-only client setting");
            } else if key == "metadata.max.age.ms" {
                set_metadata_max_age(cfg, value);
            } else if key == "buffer.memory" {
                if prefix == "producer." {
                    set_buffer_memory(cfg, value);
                } else {
                    tracing::debug!(key, prefix, "ignoring a producer-only setting for another client");
                }
            } else {
                cfg.set(key, value);
            }
        };
        for key in SHARED_CLIENT_KEYS {
            if let Some(value) = self.raw.get(*key) {
                set(key, value);
            }
        }
        for (key, value) in &self.raw {
            if let Some(client_key) = key.strip_prefix(prefix) {
                set(client_key, value);
            }
        }
        let override_prefix = format!("{prefix}override.");
        for (key, value) in connector_config {
            if let Some(client_key) = key.strip_prefix(&override_prefix) {
                set(client_key, value);
            }
        }
    }

    /// The key or value converter of a task: the connector's `key.converter`/`value.converter` wins over the
    /// worker's; the sub-configuration (`<prefix>.*`, prefix stripped) comes from whichever side named the class.
    pub fn converter(&self, connector_config: &ConfigMap, is_key: bool) -> Result<Box<dyn Converter>, TaskError> {
        let key = if is_key { "key.converter" } else { "value.converter" };
        let (class, sub_config) = match (connector_config.get(key), self.raw.get(key)) {
            (Some(class), _) => (class.trim().to_string(), sub_config(connector_config, key)),
            (None, Some(class)) => (class.trim().to_string(), sub_config(&self.raw, key)),
            (None, None) => {
                let mut defaults = ConfigMap::new();
                defaults.insert("schemas.enable".into(), "true".into());
                (DEFAULT_CONVERTER.to_string(), defaults)
            }
        };
        if registry::converter(&class).is_none() {
            return Err(TaskError::UnknownConverter { key: key.to_string(), class });
        }
        registry::new_converter(&class, &sub_config, is_key).map_err(|source| TaskError::ConverterConfig {
            key: key.to_string(),
            class,
            source,
        })
    }
}

impl WorkerConfig {
    /// The task's `header.converter` (connector over worker, `SimpleHeaderConverter` by default), configured with
    /// the `header.converter.*` keys of the side that named it.
    pub fn header_converter(&self, connector_config: &ConfigMap) -> Result<HeaderConversion, TaskError> {
        const KEY: &str = "header.converter";
        let (class, sub_config) = match (connector_config.get(KEY), self.raw.get(KEY)) {
            (Some(class), _) => (class.trim().to_string(), sub_config(connector_config, KEY)),
            (None, Some(class)) => (class.trim().to_string(), sub_config(&self.raw, KEY)),
            (None, None) => (DEFAULT_HEADER_CONVERTER.to_string(), ConfigMap::new()),
        };
        if registry::header_converter_class_name(&class).is_none() {
            return Err(TaskError::UnknownConverter { key: KEY.to_string(), class });
        }
        HeaderConversion::new(&class, &sub_config).map_err(|source| TaskError::ConverterConfig {
            key: KEY.to_string(),
            class,
            source,
        })
    }
}

fn sub_config(config: &BTreeMap<String, String>, key: &str) -> ConfigMap {
    let prefix = format!("{key}.");
    config.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|sub| (sub.to_string(), v.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn id() -> TaskKey {
        TaskKey { connector: "local-file-source".into(), task: 0 }
    }

    #[test]
    fn defaults() {
        let worker = WorkerConfig::from_properties(BTreeMap::new()).expect("valid");
        assert_eq!(worker.offset_flush_interval, Duration::from_secs(60));
        assert_eq!(worker.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(worker.bootstrap_servers, "localhost:9092");
    }

    #[test]
    fn rejects_a_bad_interval() {
        let err = WorkerConfig::from_properties(map(&[("offset.flush.interval.ms", "soon")])).unwrap_err();
        assert!(err.to_string().contains("offset.flush.interval.ms"), "{err}");
    }

    #[test]
    fn producer_precedence_defaults_worker_connector() {
        let worker = WorkerConfig::from_properties(map(&[
            ("bootstrap.servers", "k1:9092"),
            ("producer.linger.ms", "20"),
            ("producer.compression.type", "lz4"),
            ("producer.key.serializer", "org.Whatever"),
            ("consumer.fetch.min.bytes", "7"),
            ("security.protocol", "PLAINTEXT"),
        ]))
        .expect("valid");
        let connector = map(&[("producer.override.compression.type", "zstd")]);
        let cfg = worker.producer_config(&connector, &id());
        assert_eq!(cfg.get("bootstrap.servers"), Some("k1:9092"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("linger.ms"), Some("20"));
        assert_eq!(cfg.get("compression.type"), Some("zstd"));
        assert_eq!(cfg.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(cfg.get("key.serializer"), None);
        assert_eq!(cfg.get("fetch.min.bytes"), None);
        assert_eq!(cfg.get("client.id"), Some("connector-producer-local-file-source-0"));
    }

    #[test]
    fn override_policy_all_none_principal() {
        let worker = WorkerConfig::from_properties(BTreeMap::new()).expect("valid");
        assert_eq!(worker.client_override_policy, ClientOverridePolicy::All);
        assert!(worker.topic_creation_enable);
        let connector = map(&[
            ("producer.override.acks", "1"),
            ("producer.override.sasl.jaas.config", "x"),
            ("admin.override.security.protocol", "SSL"),
            ("producer.linger.ms", "not an override"),
        ]);
        ClientOverridePolicy::All.check(&connector).expect("All allows everything");
        let err = ClientOverridePolicy::None.check(&connector).unwrap_err();
        assert!(
            err.to_string().contains(
                "The 'None' policy does not allow 'security.protocol' to be overridden in the connector configuration."
            ),
            "{err}"
        );
        let err = ClientOverridePolicy::Principal.check(&connector).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration for `producer.override.acks`: The 'Principal' policy does not allow 'acks' to be overridden in the connector configuration."
        );
        let principal =
            map(&[("producer.override.sasl.jaas.config", "x"), ("consumer.override.sasl.mechanism", "PLAIN")]);
        ClientOverridePolicy::Principal.check(&principal).expect("identity keys are allowed");
        ClientOverridePolicy::None.check(&map(&[("name", "c")])).expect("no overrides, nothing to refuse");

        for (value, policy) in [
            ("None", ClientOverridePolicy::None),
            (" Principal ", ClientOverridePolicy::Principal),
            (
                "org.apache.kafka.connect.connector.policy.NoneConnectorClientConfigOverridePolicy",
                ClientOverridePolicy::None,
            ),
            ("AllConnectorClientConfigOverridePolicy", ClientOverridePolicy::All),
        ] {
            let worker = WorkerConfig::from_properties(map(&[(OVERRIDE_POLICY_KEY, value)])).expect("valid");
            assert_eq!(worker.client_override_policy, policy, "{value}");
        }
        assert!(WorkerConfig::from_properties(map(&[(OVERRIDE_POLICY_KEY, "Some")])).is_err());
        let worker = WorkerConfig::from_properties(map(&[("topic.creation.enable", "FALSE")])).expect("valid");
        assert!(!worker.topic_creation_enable);
        assert!(WorkerConfig::from_properties(map(&[("topic.creation.enable", "maybe")])).is_err());
    }

    #[test]
    fn admin_client_gets_worker_and_connector_settings() {
        let worker = WorkerConfig::from_properties(map(&[("admin.request.timeout.ms", "7000")])).expect("valid");
        let cfg = worker.admin_config(&map(&[("admin.override.socket.timeout.ms", "9000")]), &id());
        assert_eq!(cfg.get("request.timeout.ms"), Some("7000"));
        assert_eq!(cfg.get("socket.timeout.ms"), Some("9000"));
        assert_eq!(cfg.get("client.id"), Some("connector-adminclient-local-file-source-0"));
    }

    #[test]
    fn java_metadata_max_age_is_the_refresh_interval() {
        let worker = WorkerConfig::from_properties(BTreeMap::new()).expect("valid");
        let cfg = worker.consumer_config(&map(&[("consumer.override.metadata.max.age.ms", "1000")]), &id());
        assert_eq!(cfg.get("topic.metadata.refresh.interval.ms"), Some("1000"));
        assert_eq!(cfg.get("metadata.max.age.ms"), Some("3000"));
        let worker = WorkerConfig::from_properties(map(&[("producer.metadata.max.age.ms", "7200000")])).expect("valid");
        let cfg = worker.producer_config(&ConfigMap::new(), &id());
        assert_eq!(cfg.get("topic.metadata.refresh.interval.ms"), Some("7200000"), "out of range: librdkafka says so");
    }

    #[test]
    fn producer_memory_is_bounded_and_buffer_memory_sets_it() {
        let worker = WorkerConfig::from_properties(BTreeMap::new()).expect("valid");
        let cfg = worker.producer_config(&ConfigMap::new(), &id());
        assert_eq!(cfg.get("queue.buffering.max.kbytes"), Some("8192"));
        assert_eq!(cfg.get("buffer.memory"), None);
        // Worker `producer.buffer.memory` in bytes (Java's key), then the connector's override wins; KiB rounded up.
        let worker = WorkerConfig::from_properties(map(&[("producer.buffer.memory", "33554432")])).expect("valid");
        let cfg = worker.producer_config(&ConfigMap::new(), &id());
        assert_eq!(cfg.get("queue.buffering.max.kbytes"), Some("32768"));
        let cfg = worker.producer_config(&map(&[("producer.override.buffer.memory", "1000")]), &id());
        assert_eq!(cfg.get("queue.buffering.max.kbytes"), Some("1"));
        let cfg = worker.producer_config(&map(&[("producer.override.queue.buffering.max.kbytes", "4096")]), &id());
        assert_eq!(cfg.get("queue.buffering.max.kbytes"), Some("4096"));
        // Not a producer: not passed on.
        let worker = WorkerConfig::from_properties(map(&[("consumer.buffer.memory", "1024")])).expect("valid");
        let cfg = worker.consumer_config(&ConfigMap::new(), &id());
        assert_eq!(cfg.get("buffer.memory"), None);
        assert_eq!(cfg.get("queue.buffering.max.kbytes"), None);
    }

    #[test]
    fn consumer_never_auto_commits() {
        let worker = WorkerConfig::from_properties(map(&[("consumer.enable.auto.commit", "true")])).expect("valid");
        let cfg = worker.consumer_config(&ConfigMap::new(), &id());
        assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
        assert_eq!(cfg.get("group.id"), Some("connect-local-file-source"));
        assert_eq!(cfg.get("group.instance.id"), Some("connect-local-file-source-0"));
        assert_eq!(cfg.get("auto.offset.reset"), Some("earliest"));
    }

    #[test]
    fn header_converter_defaults_to_simple_and_the_connector_wins() {
        let worker = WorkerConfig::from_properties(BTreeMap::new()).expect("valid");
        let none = ConfigMap::new();
        let simple = worker.header_converter(&none).expect("default");
        assert_eq!(simple.class, "org.apache.kafka.connect.storage.SimpleHeaderConverter");
        let worker = WorkerConfig::from_properties(map(&[
            ("header.converter", "JsonConverter"),
            ("header.converter.schemas.enable", "false"),
        ]))
        .expect("valid");
        let json = worker.header_converter(&none).expect("worker's");
        assert_eq!(json.class, "org.apache.kafka.connect.json.JsonConverter");
        assert_eq!(json.encode_produced("t", "h", Some(b"x")).expect("converts").as_deref(), Some(&b"\"x\""[..]));
        let connector: ConfigMap = map(&[("header.converter", "StringConverter")]).into_iter().collect();
        assert_eq!(
            worker.header_converter(&connector).expect("connector's").class,
            "org.apache.kafka.connect.storage.StringConverter"
        );
        let unknown: ConfigMap = map(&[("header.converter", "AvroConverter")]).into_iter().collect();
        assert!(matches!(worker.header_converter(&unknown), Err(TaskError::UnknownConverter { .. })));
        let bad: ConfigMap = map(&[("header.converter", "JsonConverter"), ("header.converter.schemas.enable", "x")])
            .into_iter()
            .collect();
        assert!(matches!(worker.header_converter(&bad), Err(TaskError::ConverterConfig { .. })));
    }

    #[test]
    fn converter_sub_config_comes_from_the_side_that_named_the_class() {
        let worker = map(&[("value.converter", "W"), ("value.converter.schemas.enable", "false"), ("x", "y")]);
        assert_eq!(sub_config(&worker, "value.converter"), map(&[("schemas.enable", "false")]));
        assert!(sub_config(&worker, "key.converter").is_empty());
    }
}
