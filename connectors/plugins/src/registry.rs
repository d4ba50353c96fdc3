//! The one explicit table of every built-in plugin: connectors, converters, transforms and predicates,
//! looked up by class name and by Kafka Connect's aliases, plus full validation of a connector configuration.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::config::{
    ConfigDef, ConfigInfo, ConfigInfos, ConfigKey, ConfigKeyInfo, ConfigMap, ConfigType, ConfigValueInfo, DefaultValue,
    Importance, Validator, Width, invalid_value, parse_list,
};
use crate::connector::{Connector, ConnectorType};
use crate::converter::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
use crate::error::ConnectError;
use crate::header_converter::{ConverterHeaderConverter, HeaderConverter, SimpleHeaderConverter};
use crate::primitive_converter::{BooleanConverter, NumberConverter, NumberKind};

/// An entry of `GET /connector-plugins`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginInfo {
    pub class: String,
    /// source, sink, converter, header_converter, transformation, predicate.
    #[serde(rename = "type")]
    pub plugin_type: String,
    pub version: String,
}

pub use sluice_connect_api::plugin::{ConnectorPlugin, KAFKA_CONNECT_VERSION, PLUGIN_VERSION};

/// A converter plugin of the table; aliases are the simple name and the simple name without `Converter`, as Kafka
/// Connect computes them.
struct ConverterEntry {
    class: &'static str,
    aliases: &'static [&'static str],
    build: fn() -> Box<dyn Converter>,
}

/// Every connector linked into this build: the one explicit list. Each connector crate exports its plugins
/// (`PLUGINS`); adding a connector family means adding a line here (and a cargo feature, if it may be left out).
fn connectors() -> &'static [ConnectorPlugin] {
    static ALL: OnceLock<Vec<ConnectorPlugin>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<ConnectorPlugin> = Vec::new();
        all.extend_from_slice(sluice_connector_file::PLUGINS);
        #[cfg(feature = "jdbc")]
        all.extend_from_slice(sluice_connector_jdbc::PLUGINS);
        #[cfg(feature = "postgres-cdc")]
        all.extend_from_slice(sluice_connector_postgres_cdc::PLUGINS);
        #[cfg(feature = "mysql-cdc")]
        all.extend_from_slice(sluice_connector_mysql_cdc::PLUGINS);
        #[cfg(feature = "s3")]
        all.extend_from_slice(sluice_connector_s3::PLUGINS);
        all
    })
}

/// Every built-in converter. Each is a header converter too, as in Kafka Connect, where all of them implement
/// `HeaderConverter` and are listed under both types.
const CONVERTERS: &[ConverterEntry] = &[
    ConverterEntry {
        class: "org.apache.kafka.connect.storage.StringConverter",
        aliases: &["StringConverter", "String"],
        build: || Box::new(StringConverter),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.ByteArrayConverter",
        aliases: &["ByteArrayConverter", "ByteArray"],
        build: || Box::new(ByteArrayConverter),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.json.JsonConverter",
        aliases: &["JsonConverter", "Json"],
        build: || Box::new(JsonConverter::default()),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.BooleanConverter",
        aliases: &["BooleanConverter", "Boolean"],
        build: || Box::new(BooleanConverter),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.ShortConverter",
        aliases: &["ShortConverter", "Short"],
        build: || Box::new(NumberConverter(NumberKind::Short)),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.IntegerConverter",
        aliases: &["IntegerConverter", "Integer"],
        build: || Box::new(NumberConverter(NumberKind::Integer)),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.LongConverter",
        aliases: &["LongConverter", "Long"],
        build: || Box::new(NumberConverter(NumberKind::Long)),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.FloatConverter",
        aliases: &["FloatConverter", "Float"],
        build: || Box::new(NumberConverter(NumberKind::Float)),
    },
    ConverterEntry {
        class: "org.apache.kafka.connect.converters.DoubleConverter",
        aliases: &["DoubleConverter", "Double"],
        build: || Box::new(NumberConverter(NumberKind::Double)),
    },
];

/// Kafka Connect's default `header.converter`.
pub const SIMPLE_HEADER_CONVERTER: &str = "org.apache.kafka.connect.storage.SimpleHeaderConverter";

/// Header converters proper, with their aliases (every converter of [`CONVERTERS`] serves as one too).
const HEADER_CONVERTERS: &[(&str, &[&str])] = &[(SIMPLE_HEADER_CONVERTER, &["SimpleHeaderConverter", "Simple"])];

fn find_connector(class_or_alias: &str) -> Option<&'static ConnectorPlugin> {
    connectors().iter().find(|e| e.matches(class_or_alias))
}

fn find_converter(class_or_alias: &str) -> Option<&'static ConverterEntry> {
    let name = class_or_alias.trim();
    CONVERTERS.iter().find(|e| e.class == name || e.aliases.contains(&name))
}

/// Whether a class or alias names a header converter (a plain converter can serve as one in Kafka Connect too).
fn is_header_converter(class_or_alias: &str) -> bool {
    let name = class_or_alias.trim();
    find_converter(name).is_some()
        || HEADER_CONVERTERS.iter().any(|(class, aliases)| *class == name || aliases.contains(&name))
}

/// The connector plugin for a class name or alias (`FileStreamSource`, `FileStreamSourceConnector`,
/// `org.apache.kafka.connect.file.FileStreamSourceConnector`).
pub fn connector(class_or_alias: &str) -> Option<Arc<dyn Connector>> {
    find_connector(class_or_alias).map(|e| (e.build)())
}

/// The canonical class names of every connector plugin, for error messages that list what is known.
pub fn connector_class_names() -> Vec<&'static str> {
    connectors().iter().map(|e| e.class).collect()
}

/// The type of the connector a configuration names in `connector.class`, if that class is known.
pub fn connector_type_of(config: &ConfigMap) -> Option<ConnectorType> {
    config.get(CONNECTOR_CLASS).and_then(|class| find_connector(class)).map(|e| e.connector_type)
}

/// All plugins in Kafka Connect's order (by type, then class); connectors only unless `include_all`.
pub fn plugins(include_all: bool) -> Vec<PluginInfo> {
    let info = |class: &str, plugin_type: &str| PluginInfo {
        class: class.to_string(),
        plugin_type: plugin_type.to_string(),
        version: PLUGIN_VERSION.to_string(),
    };
    let mut out: Vec<PluginInfo> = connectors()
        .iter()
        .map(|e| PluginInfo {
            class: e.class.to_string(),
            plugin_type: e.connector_type.as_str().to_string(),
            version: e.version.to_string(),
        })
        .collect();
    if include_all {
        out.extend(CONVERTERS.iter().map(|e| info(e.class, "converter")));
        out.extend(CONVERTERS.iter().map(|e| info(e.class, "header_converter")));
        out.extend(HEADER_CONVERTERS.iter().map(|(class, _)| info(class, "header_converter")));
        out.extend(crate::transforms::transformation_class_names().into_iter().map(|c| info(c, "transformation")));
        out.extend(crate::transforms::predicate_class_names().into_iter().map(|c| info(c, "predicate")));
    }
    // Kafka Connect's order: by type (sink, source, transformation, predicate, converter, header_converter), then
    // by class.
    const TYPE_ORDER: [&str; 6] = ["sink", "source", "transformation", "predicate", "converter", "header_converter"];
    let rank = |t: &str| TYPE_ORDER.iter().position(|o| *o == t).unwrap_or(TYPE_ORDER.len());
    out.sort_by(|a, b| rank(&a.plugin_type).cmp(&rank(&b.plugin_type)).then_with(|| a.class.cmp(&b.class)));
    out
}

/// A new, unconfigured converter for a class name or alias (`org.apache.kafka.connect.storage.StringConverter`,
/// `JsonConverter`, ...).
pub fn converter(class: &str) -> Option<Box<dyn Converter>> {
    find_converter(class).map(|e| (e.build)())
}

/// Kafka Connect's class name of a converter given by class name or alias (`JsonConverter` →
/// `org.apache.kafka.connect.json.JsonConverter`), for error reports.
pub fn converter_class_name(class_or_alias: &str) -> Option<&'static str> {
    find_converter(class_or_alias).map(|e| e.class)
}

/// A configured converter: `config` holds the converter's own keys with the `key.converter.`/`value.converter.`
/// prefix stripped. An unknown class is a configuration error on `key.converter`/`value.converter`.
pub fn new_converter(class: &str, config: &ConfigMap, is_key: bool) -> Result<Box<dyn Converter>, ConnectError> {
    let key = if is_key { KEY_CONVERTER } else { VALUE_CONVERTER };
    let mut converter = converter(class)
        .ok_or_else(|| ConnectError::config(key, format!("Class {} could not be found.", class.trim())))?;
    converter.configure(config, is_key)?;
    Ok(converter)
}

/// Kafka Connect's class name of a header converter given by class name or alias (`Simple` →
/// `org.apache.kafka.connect.storage.SimpleHeaderConverter`, `StringConverter` → its class).
pub fn header_converter_class_name(class_or_alias: &str) -> Option<&'static str> {
    let name = class_or_alias.trim();
    HEADER_CONVERTERS
        .iter()
        .find(|(class, aliases)| *class == name || aliases.contains(&name))
        .map(|(class, _)| *class)
        .or_else(|| converter_class_name(name))
}

/// A configured header converter (`header.converter`): `SimpleHeaderConverter` or any converter of the table used as
/// one. `config` holds the `header.converter.*` keys with the prefix stripped. An unknown class is a configuration
/// error on `header.converter`.
pub fn new_header_converter(class: &str, config: &ConfigMap) -> Result<Box<dyn HeaderConverter>, ConnectError> {
    let name = class.trim();
    let mut converter: Box<dyn HeaderConverter> =
        if HEADER_CONVERTERS.iter().any(|(class, aliases)| *class == name || aliases.contains(&name)) {
            Box::new(SimpleHeaderConverter)
        } else {
            let converter = converter(name)
                .ok_or_else(|| ConnectError::config(HEADER_CONVERTER, format!("Class {name} could not be found.")))?;
            Box::new(ConverterHeaderConverter(converter))
        };
    converter.configure(config)?;
    Ok(converter)
}

const NAME: &str = "name";
const CONNECTOR_CLASS: &str = "connector.class";
const KEY_CONVERTER: &str = "key.converter";
const VALUE_CONVERTER: &str = "value.converter";
const HEADER_CONVERTER: &str = "header.converter";
/// KIP-891: the version of each plugin a connector uses (Sluice's built-ins have one: [`PLUGIN_VERSION`]).
const CONNECTOR_PLUGIN_VERSION: &str = "connector.plugin.version";
const KEY_CONVERTER_VERSION: &str = "key.converter.plugin.version";
const VALUE_CONVERTER_VERSION: &str = "value.converter.plugin.version";
const HEADER_CONVERTER_VERSION: &str = "header.converter.plugin.version";
const TRANSFORMS: &str = "transforms";
const PREDICATES: &str = "predicates";
const TOPICS: &str = "topics";
const TOPICS_REGEX: &str = "topics.regex";
const DLQ_TOPIC: &str = "errors.deadletterqueue.topic.name";

const COMMON_GROUP: &str = "Common";
const TRANSFORMS_GROUP: &str = "Transforms";
const PREDICATES_GROUP: &str = "Predicates";
const ERROR_GROUP: &str = "Error Handling";
const TOPIC_CREATION_GROUP: &str = "Topic Creation";
const EXACTLY_ONCE_SUPPORT_GROUP: &str = "Exactly Once Support";
const OFFSETS_TOPIC_GROUP: &str = "offsets.topic";

const CONNECTOR_CLASS_DOC: &str = "Name or alias of the class for this connector. Must be a subclass of org.apache.kafka.connect.connector.Connector. If the connector is org.apache.kafka.connect.file.FileStreamSinkConnector, you can either specify this full name,  or use \"FileStreamSink\" or \"FileStreamSinkConnector\" to make the configuration a bit shorter";
const TASKS_MAX_DOC: &str = "Maximum number of tasks to use for this connector.";
const TASKS_MAX_ENFORCE_DOC: &str = "(Deprecated) Whether to enforce that the tasks.max property is respected by the connector. By default, connectors that generate too many tasks will fail, and existing sets of tasks that exceed the tasks.max property will also be failed. If this property is set to false, then connectors will be allowed to generate more than the maximum number of tasks, and existing sets of tasks that exceed the tasks.max property will be allowed to run. This property is deprecated and will be removed in an upcoming major release.";
const KEY_CONVERTER_DOC: &str = "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the keys in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro.";
const VALUE_CONVERTER_DOC: &str = "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the values in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro.";
const HEADER_CONVERTER_DOC: &str = "HeaderConverter class used to convert between Kafka Connect format and the serialized form that is written to Kafka. This controls the format of the header values in messages written to or read from Kafka, and since this is independent of connectors it allows any connector to work with any serialization format. Examples of common formats include JSON and Avro. By default, the SimpleHeaderConverter is used to serialize header values to strings and deserialize them by inferring the schemas.";
const TRANSFORMS_DOC: &str = "Aliases for the transformations to be applied to records.";
const CONFIG_ACTION_RELOAD_DOC: &str = "The action that Connect should take on the connector when changes in external configuration providers result in a change in the connector's configuration properties. A value of 'none' indicates that Connect will do nothing. A value of 'restart' indicates that Connect should restart/reload the connector with the updated configuration properties.The restart may actually be scheduled in the future if the external configuration provider indicates that a configuration value will expire in the future.";
const ERRORS_RETRY_TIMEOUT_DOC: &str = "The maximum duration in milliseconds that a failed operation will be reattempted. The default is 0, which means no retries will be attempted. Use -1 for infinite retries.";
const ERRORS_RETRY_DELAY_MAX_MS_DOC: &str = "The maximum duration in milliseconds between consecutive retry attempts. Jitter will be added to the delay once this limit is reached to prevent thundering herd issues.";
const ERRORS_TOLERANCE_DOC: &str = "Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.";
const ERRORS_LOG_ENABLE_DOC: &str = "If true, write each error and the details of the failed operation and problematic record to the Connect application log. This is 'false' by default, so that only errors that are not tolerated are reported.";
const ERRORS_LOG_INCLUDE_MESSAGES_DOC: &str = "Whether to include in the log the Connect record that resulted in a failure. For sink records, the topic, partition, offset, and timestamp will be logged. For source records, the key and value (and their schemas), all headers, and the timestamp, Kafka topic, Kafka partition, source partition, and source offset will be logged. This is 'false' by default, which will prevent record keys, values, and headers from being written to log files.";
/// Sluice's own keys (not in Kafka Connect, which never restarts a failed task by itself).
pub const TASK_RESTART_ON_FAILURE: &str = "task.restart.on.failure";
pub const TASK_RESTART_BACKOFF_MAX_MS: &str = "task.restart.backoff.max.ms";
const TASK_RESTART_ON_FAILURE_DOC: &str = "Sluice only. If true (the default), the agent restarts a task that failed, after a backoff that doubles from 1 second up to task.restart.backoff.max.ms, for as long as the task stays assigned to it; the task shows FAILED (with its trace), then RESTARTING, then RUNNING. If false, a failed task stays FAILED until it is restarted through the REST API, as in Kafka Connect.";
const TASK_RESTART_BACKOFF_MAX_MS_DOC: &str = "Sluice only. The longest wait, in milliseconds, before a failed task is restarted automatically (see task.restart.on.failure). Jitter is added to every wait.";
const TOPICS_REGEX_DOC: &str = "Regular expression giving topics to consume. Under the hood, the regex is compiled to a <code>java.util.regex.Pattern</code>. Only one of topics or topics.regex should be specified.";
const DLQ_TOPIC_DOC: &str = "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters. The topic name is blank by default, which means that no messages are to be recorded in the DLQ.";
const ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR_DOC: &str =
    "Replication factor used to create the dead letter queue topic when it doesn't already exist.";
const ERRORS_DEADLETTERQUEUE_CONTEXT_HEADERS_ENABLE_DOC: &str = "If true, add headers containing error context to the messages written to the dead letter queue. To avoid clashing with headers from the original record, all error context header keys, all error context header keys will start with <code>__connect.errors.</code>";
const TOPIC_CREATION_GROUPS_DOC: &str = "Groups of configurations for topics created by source connectors";
const EXACTLY_ONCE_SUPPORT_DOC: &str = "Permitted values are requested, required. If set to \"required\", forces a preflight check for the connector to ensure that it can provide exactly-once semantics with the given configuration. Some connectors may be capable of providing exactly-once semantics but not signal to Connect that they support this; in that case, documentation for the connector should be consulted carefully before creating it, and the value for this property should be set to \"requested\". Additionally, if the value is set to \"required\" but the worker that performs preflight validation does not have exactly-once support enabled for source connectors, requests to create or validate the connector will fail.";
const TRANSACTION_BOUNDARY_DOC: &str = "Permitted values are: poll, interval, connector. If set to 'poll', a new producer transaction will be started and committed for every batch of records that each task from this connector provides to Connect. If set to 'connector', relies on connector-defined transaction boundaries; note that not all connectors are capable of defining their own transaction boundaries, and in that case, attempts to instantiate a connector with this value will fail. Finally, if set to 'interval', commits transactions only after a user-defined time interval has passed.";
const TRANSACTION_BOUNDARY_INTERVAL_MS_DOC: &str = "If 'transaction.boundary' is set to 'interval', determines the interval for producer transaction commits by connector tasks. If unset, defaults to the value of the worker-level 'offset.flush.interval.ms' property. It has no effect if a different transaction.boundary is specified.";
const OFFSETS_STORAGE_TOPIC_DOC: &str = "The name of a separate offsets topic to use for this connector. If empty or not specified, the worker’s global offsets topic name will be used. If specified, the offsets topic will be created if it does not already exist on the Kafka cluster targeted by this connector (which may be different from the one used for the worker's global offsets topic if the bootstrap.servers property of the connector's producer has been overridden from the worker's). Only applicable in distributed mode; in standalone mode, setting this property will have no effect.";

/// The keys every connector has, whatever its type, in Kafka Connect's order (`ConnectorConfig.configDef()`).
fn base_config_def() -> ConfigDef {
    let common = |key: ConfigKey, order, width, display| key.in_group(COMMON_GROUP, order, width, display);
    let errors = |key: ConfigKey, order, display| key.in_group(ERROR_GROUP, order, Width::Medium, display);
    // errors.tolerance and errors.log.* are SHORT in Kafka Connect, the rest of the group MEDIUM.
    let short_errors = |key: ConfigKey, order, display| key.in_group(ERROR_GROUP, order, Width::Short, display);
    let value = |v: &str| DefaultValue::Value(v.to_string());
    ConfigDef::new()
        .define(common(
            ConfigKey::new(
                NAME,
                ConfigType::String,
                DefaultValue::Required,
                Importance::High,
                "Globally unique name to use for this connector.",
            )
            .with_validator(Validator::NonEmptyStringWithoutControlChars),
            1,
            Width::Medium,
            "Connector name",
        ))
        .define(common(
            ConfigKey::new(
                CONNECTOR_CLASS,
                ConfigType::String,
                DefaultValue::Required,
                Importance::High,
                CONNECTOR_CLASS_DOC,
            ),
            2,
            Width::Long,
            "Connector class",
        ))
        .define(common(
            ConfigKey::new(
                CONNECTOR_PLUGIN_VERSION,
                ConfigType::String,
                value(PLUGIN_VERSION),
                Importance::Medium,
                "Version of the connector.",
            ),
            3,
            Width::Medium,
            "Connector version",
        ))
        .define(common(
            ConfigKey::new("tasks.max", ConfigType::Int, value("1"), Importance::High, TASKS_MAX_DOC)
                .with_validator(Validator::AtLeast(1)),
            4,
            Width::Short,
            "Tasks max",
        ))
        .define(common(
            ConfigKey::new(
                "tasks.max.enforce",
                ConfigType::Boolean,
                value("true"),
                Importance::Low,
                TASKS_MAX_ENFORCE_DOC,
            ),
            5,
            Width::Short,
            "Enforce tasks max",
        ))
        .define(common(
            ConfigKey::new(KEY_CONVERTER, ConfigType::Class, DefaultValue::Null, Importance::Low, KEY_CONVERTER_DOC),
            6,
            Width::Short,
            "Key converter class",
        ))
        .define(common(
            ConfigKey::new(
                KEY_CONVERTER_VERSION,
                ConfigType::String,
                DefaultValue::Null,
                Importance::Low,
                "Version of the key converter.",
            ),
            7,
            Width::Short,
            "Key converter version",
        ))
        .define(common(
            ConfigKey::new(
                VALUE_CONVERTER,
                ConfigType::Class,
                DefaultValue::Null,
                Importance::Low,
                VALUE_CONVERTER_DOC,
            ),
            8,
            Width::Short,
            "Value converter class",
        ))
        .define(common(
            ConfigKey::new(
                VALUE_CONVERTER_VERSION,
                ConfigType::String,
                DefaultValue::Null,
                Importance::Low,
                "Version of the value converter.",
            ),
            9,
            Width::Short,
            "Value converter version",
        ))
        .define(common(
            ConfigKey::new(
                HEADER_CONVERTER,
                ConfigType::Class,
                DefaultValue::Null,
                Importance::Low,
                HEADER_CONVERTER_DOC,
            ),
            10,
            Width::Short,
            "Header converter class",
        ))
        .define(common(
            ConfigKey::new(
                HEADER_CONVERTER_VERSION,
                ConfigType::String,
                DefaultValue::Null,
                Importance::Low,
                "Version of the header converter.",
            ),
            11,
            Width::Short,
            "Header converter version",
        ))
        .define(ConfigKey::new(TRANSFORMS, ConfigType::List, value(""), Importance::Low, TRANSFORMS_DOC).in_group(
            TRANSFORMS_GROUP,
            12,
            Width::Long,
            "Transforms",
        ))
        .define(
            ConfigKey::new(
                PREDICATES,
                ConfigType::List,
                value(""),
                Importance::Low,
                "Aliases for the predicates used by transformations.",
            )
            .in_group(PREDICATES_GROUP, 13, Width::Long, "Predicates"),
        )
        .define(common(
            ConfigKey::new(
                "config.action.reload",
                ConfigType::String,
                value("restart"),
                Importance::Low,
                CONFIG_ACTION_RELOAD_DOC,
            )
            .with_validator(Validator::ValidString(vec!["none", "restart"])),
            14,
            Width::Medium,
            "Reload Action",
        ))
        .define(errors(
            ConfigKey::new(
                "errors.retry.timeout",
                ConfigType::Long,
                value("0"),
                Importance::Medium,
                ERRORS_RETRY_TIMEOUT_DOC,
            ),
            1,
            "Retry Timeout for Errors",
        ))
        .define(errors(
            ConfigKey::new(
                "errors.retry.delay.max.ms",
                ConfigType::Long,
                value("60000"),
                Importance::Medium,
                ERRORS_RETRY_DELAY_MAX_MS_DOC,
            ),
            2,
            "Maximum Delay Between Retries for Errors",
        ))
        .define(short_errors(
            ConfigKey::new(
                "errors.tolerance",
                ConfigType::String,
                value("none"),
                Importance::Medium,
                ERRORS_TOLERANCE_DOC,
            )
            .with_validator(Validator::ValidString(vec!["none", "all"])),
            3,
            "Error Tolerance",
        ))
        .define(short_errors(
            ConfigKey::new(
                "errors.log.enable",
                ConfigType::Boolean,
                value("false"),
                Importance::Medium,
                ERRORS_LOG_ENABLE_DOC,
            ),
            4,
            "Log Errors",
        ))
        .define(short_errors(
            ConfigKey::new(
                "errors.log.include.messages",
                ConfigType::Boolean,
                value("false"),
                Importance::Medium,
                ERRORS_LOG_INCLUDE_MESSAGES_DOC,
            ),
            5,
            "Log Error Details",
        ))
        .define(errors(
            ConfigKey::new(
                TASK_RESTART_ON_FAILURE,
                ConfigType::Boolean,
                value("true"),
                Importance::Medium,
                TASK_RESTART_ON_FAILURE_DOC,
            ),
            11,
            "Restart Failed Tasks",
        ))
        .define(errors(
            ConfigKey::new(
                TASK_RESTART_BACKOFF_MAX_MS,
                ConfigType::Long,
                value("60000"),
                Importance::Low,
                TASK_RESTART_BACKOFF_MAX_MS_DOC,
            )
            .with_validator(Validator::AtLeast(0)),
            12,
            "Maximum Delay Between Task Restarts",
        ))
}

/// The sink-only keys (`SinkConnectorConfig`).
fn sink_config_def(def: ConfigDef) -> ConfigDef {
    let value = |v: &str| DefaultValue::Value(v.to_string());
    def.define(
        ConfigKey::new(
            TOPICS,
            ConfigType::List,
            value(""),
            Importance::High,
            "List of topics to consume, separated by commas",
        )
        .in_group(COMMON_GROUP, 4, Width::Long, "Topics"),
    )
    .define(ConfigKey::new(TOPICS_REGEX, ConfigType::String, value(""), Importance::High, TOPICS_REGEX_DOC).in_group(
        COMMON_GROUP,
        4,
        Width::Long,
        "Topics regex",
    ))
    .define(ConfigKey::new(DLQ_TOPIC, ConfigType::String, value(""), Importance::Medium, DLQ_TOPIC_DOC).in_group(
        ERROR_GROUP,
        6,
        Width::Medium,
        "Dead Letter Queue Topic Name",
    ))
    .define(
        ConfigKey::new(
            "errors.deadletterqueue.topic.replication.factor",
            ConfigType::Short,
            value("3"),
            Importance::Medium,
            ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR_DOC,
        )
        .in_group(ERROR_GROUP, 7, Width::Medium, "Dead Letter Queue Topic Replication Factor"),
    )
    .define(
        ConfigKey::new(
            "errors.deadletterqueue.context.headers.enable",
            ConfigType::Boolean,
            value("false"),
            Importance::Medium,
            ERRORS_DEADLETTERQUEUE_CONTEXT_HEADERS_ENABLE_DOC,
        )
        .in_group(ERROR_GROUP, 8, Width::Medium, "Enable Error Context Headers"),
    )
}

/// The source-only keys (`SourceConnectorConfig`): topic creation, exactly-once support and the offsets topic.
fn source_config_def(def: ConfigDef) -> ConfigDef {
    let value = |v: &str| DefaultValue::Value(v.to_string());
    def.define(
        ConfigKey::new(
            "topic.creation.groups",
            ConfigType::List,
            value(""),
            Importance::Low,
            TOPIC_CREATION_GROUPS_DOC,
        )
        .in_group(TOPIC_CREATION_GROUP, 1, Width::Long, "Topic Creation Groups"),
    )
    .define(
        ConfigKey::new(
            "exactly.once.support",
            ConfigType::String,
            value("requested"),
            Importance::Medium,
            EXACTLY_ONCE_SUPPORT_DOC,
        )
        // Kafka Connect lists the enum's names: upper case, in its order.
        .with_validator(Validator::OneOf(vec!["REQUIRED", "REQUESTED"]))
        .in_group(EXACTLY_ONCE_SUPPORT_GROUP, 2, Width::Short, "Exactly once support"),
    )
    .define(
        ConfigKey::new(
            "transaction.boundary",
            ConfigType::String,
            value("poll"),
            Importance::Medium,
            TRANSACTION_BOUNDARY_DOC,
        )
        .with_validator(Validator::OneOf(vec!["INTERVAL", "POLL", "CONNECTOR"]))
        .in_group(EXACTLY_ONCE_SUPPORT_GROUP, 3, Width::Short, "Transaction Boundary"),
    )
    .define(
        ConfigKey::new(
            "transaction.boundary.interval.ms",
            ConfigType::Long,
            DefaultValue::Null,
            Importance::Low,
            TRANSACTION_BOUNDARY_INTERVAL_MS_DOC,
        )
        .with_validator(Validator::AtLeast(0))
        .in_group(EXACTLY_ONCE_SUPPORT_GROUP, 4, Width::Short, "Transaction boundary interval"),
    )
    .define(
        ConfigKey::new(
            "offsets.storage.topic",
            ConfigType::String,
            DefaultValue::Null,
            Importance::Low,
            OFFSETS_STORAGE_TOPIC_DOC,
        )
        .in_group(OFFSETS_TOPIC_GROUP, 1, Width::Long, "Offsets topic"),
    )
}

/// The keys every connector has (`name`, `connector.class`, `tasks.max`, converters, `transforms`, `predicates`,
/// `errors.*`, and for sinks `topics`/`topics.regex`).
pub fn common_config_def(connector_type: ConnectorType) -> ConfigDef {
    match connector_type {
        ConnectorType::Source => source_config_def(base_config_def()),
        ConnectorType::Sink => sink_config_def(base_config_def()),
    }
}

/// The "known connector plugins" part of the unknown-class error: every class with its aliases.
fn known_connectors_text() -> String {
    connectors()
        .iter()
        .map(|e| format!("{} (aliases: {})", e.class, e.aliases.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Validates a whole connector configuration (common keys and the plugin's own keys) and returns every problem at
/// once, as Kafka Connect's validate endpoint does. An unknown or missing `connector.class` is reported as an error
/// on that key naming the known plugins.
pub fn validate(config: &ConfigMap) -> ConfigInfos {
    validate_with(config, &WorkerConverters::default())
}

/// The converters a worker uses for connectors that name none (`key.converter`, `value.converter`,
/// `header.converter` of the worker properties): validate shows them as defaults, as Kafka Connect does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConverters {
    pub key: String,
    pub value: String,
    pub header: String,
}

impl Default for WorkerConverters {
    /// Sluice's (and Kafka Connect's usual) defaults: JSON keys and values, simple headers.
    fn default() -> Self {
        WorkerConverters {
            key: JSON_CONVERTER.to_string(),
            value: JSON_CONVERTER.to_string(),
            header: SIMPLE_HEADER_CONVERTER.to_string(),
        }
    }
}

impl WorkerConverters {
    /// From worker properties; a missing key keeps the default. Aliases are resolved to class names.
    pub fn from_worker_config(worker: &ConfigMap) -> Self {
        let mut out = WorkerConverters::default();
        let class = |key: &str, is_header: bool| {
            let given = worker.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())?;
            let resolved = if is_header { header_converter_class_name(given) } else { converter_class_name(given) };
            Some(resolved.map(str::to_string).unwrap_or_else(|| given.to_string()))
        };
        if let Some(c) = class(KEY_CONVERTER, false) {
            out.key = c;
        }
        if let Some(c) = class(VALUE_CONVERTER, false) {
            out.value = c;
        }
        if let Some(c) = class(HEADER_CONVERTER, true) {
            out.header = c;
        }
        out
    }
}

const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// The classes validate recommends for `key.converter`/`value.converter` (every converter) and `header.converter`
/// (every converter and header converter), sorted as Kafka Connect lists them.
fn recommended_converters(header: bool) -> Vec<String> {
    let mut classes: Vec<String> = CONVERTERS.iter().map(|e| e.class.to_string()).collect();
    if header {
        classes.extend(HEADER_CONVERTERS.iter().map(|(class, _)| class.to_string()));
    }
    classes.sort();
    classes.dedup();
    classes
}

/// Whether `version` satisfies a `*.plugin.version` value: a version (`4.1.2`, exact) or a Maven-style range
/// (`[4.0,5.0)`, `[4.1.2,)`), as Kafka Connect reads them (KIP-891).
fn version_matches(spec: &str, version: &str) -> bool {
    let spec = spec.trim();
    let parts = |v: &str| v.trim().split('.').map(|p| p.trim().parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    let (Some(open), Some(close)) = (spec.chars().next(), spec.chars().last()) else { return true };
    if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') {
        return spec == version;
    }
    let inner = &spec[1..spec.len() - 1];
    let Some((low, high)) = inner.split_once(',') else { return inner.trim() == version };
    let v = parts(version);
    let low_ok = low.trim().is_empty() || if open == '[' { v >= parts(low) } else { v > parts(low) };
    let high_ok = high.trim().is_empty() || if close == ']' { v <= parts(high) } else { v < parts(high) };
    low_ok && high_ok
}

/// Kafka Connect's validate answers for the plugin keys: the worker's converters as default and value of
/// `*.converter`, the converters as their recommended values, and the plugins' versions (KIP-891) as default, value
/// and only recommended value of `*.plugin.version`; a version that does not match is an error on both keys.
fn apply_plugin_defaults(
    configs: &mut [ConfigInfo],
    config: &ConfigMap,
    converters: &WorkerConverters,
    plugin: Option<&dyn Connector>,
) {
    let given = |key: &str| config.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut plugins: Vec<(&str, &str, Option<String>, &str)> = Vec::new();
    if let Some(plugin) = plugin {
        plugins.push((
            CONNECTOR_CLASS,
            CONNECTOR_PLUGIN_VERSION,
            Some(plugin.class_name().to_string()),
            plugin.version(),
        ));
    }
    for (key, version_key, default, header) in [
        (KEY_CONVERTER, KEY_CONVERTER_VERSION, &converters.key, false),
        (VALUE_CONVERTER, VALUE_CONVERTER_VERSION, &converters.value, false),
        (HEADER_CONVERTER, HEADER_CONVERTER_VERSION, &converters.header, true),
    ] {
        let class = given(key).unwrap_or_else(|| default.clone());
        let known =
            if header { header_converter_class_name(&class).is_some() } else { converter_class_name(&class).is_some() };
        if let Some(info) = configs.iter_mut().find(|c| c.value.name == key) {
            if let Some(definition) = info.definition.as_mut() {
                definition.default_value = Some(default.clone());
            }
            if info.value.value.is_none() {
                info.value.value = Some(default.clone());
            }
            info.value.recommended_values = recommended_converters(header);
        }
        plugins.push((key, version_key, known.then_some(class), PLUGIN_VERSION));
    }
    let mut version_errors: Vec<(&str, String)> = Vec::new();
    for (class_key, version_key, class, version) in plugins {
        let Some(class) = class else { continue };
        let Some(info) = configs.iter_mut().find(|c| c.value.name == version_key) else { continue };
        if let Some(definition) = info.definition.as_mut() {
            definition.default_value = Some(version.to_string());
        }
        info.value.recommended_values = vec![version.to_string()];
        match given(version_key) {
            None => info.value.value = Some(version.to_string()),
            Some(spec) if !version_matches(&spec, version) => {
                let range = if spec.starts_with(['[', '(']) { spec.clone() } else { format!("[{spec},{spec}]") };
                let message = format!(
                    "Plugin {class} not found that matches the version range {range}, available versions: [{version}]"
                );
                version_errors.push((class_key, message.clone()));
                version_errors.push((version_key, message));
            }
            Some(_) => {}
        }
    }
    for (key, message) in version_errors {
        if let Some(info) = configs.iter_mut().find(|c| c.value.name == key) {
            info.value.errors.push(message);
        }
    }
}

/// [`validate`] with the worker's converters as the defaults of `key.converter`, `value.converter` and
/// `header.converter`.
pub fn validate_with(config: &ConfigMap, converters: &WorkerConverters) -> ConfigInfos {
    let class = config.get(CONNECTOR_CLASS);
    let plugin = class.and_then(|c| connector(c));
    let mut keys: Vec<ConfigKey> = match &plugin {
        Some(p) => common_config_def(p.connector_type()).keys,
        None => base_config_def().keys,
    };
    let common_count = keys.len();
    if let Some(p) = &plugin {
        // A plugin key that shadows a common one would be listed twice; the common definition wins.
        let plugin_keys = p.config_def().keys.into_iter().filter(|k| !keys.iter().any(|c| c.name == k.name));
        let plugin_keys: Vec<_> = plugin_keys.collect();
        keys.extend(plugin_keys);
    }

    let mut configs: Vec<ConfigInfo> = keys
        .iter()
        .map(|key| ConfigInfo {
            definition: Some(key.info()),
            value: key.validate_value(config.get(key.name).map(String::as_str)),
        })
        .collect();
    // Each transformation's keys, defined as Kafka Connect's enriched definition does, between the common keys and
    // the connector's own.
    let (transform_infos, transform_groups) = transformation_infos(config);
    // Keys nobody defines are not listed (Kafka Connect's ConfigDef.validate answers only the defined ones), but
    // the client overrides are, after the connector's keys: producer, consumer, then admin, as Kafka Connect lists
    // them (there with the client's definition of each key, here with none).
    configs.splice(common_count..common_count, transform_infos.clone());
    for prefix in ["producer.override.", "consumer.override.", "admin.override."] {
        configs.extend(config.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| ConfigInfo {
            definition: None,
            value: ConfigValueInfo {
                name: k.clone(),
                value: Some(v.clone()),
                recommended_values: Vec::new(),
                errors: Vec::new(),
                visible: true,
            },
        }));
    }

    let mut extra: Vec<(String, String)> = Vec::new();
    match (class, &plugin) {
        (Some(class), None) => extra.push((
            CONNECTOR_CLASS.to_string(),
            format!(
                "Failed to find any class that implements Connector and which name matches {}; known connector plugins: {}",
                class.trim(),
                known_connectors_text()
            ),
        )),
        // A missing class is already reported as a missing required key.
        (None, _) => {}
        (Some(_), Some(p)) => {
            match p.connector_type() {
                ConnectorType::Sink => extra.extend(validate_sink_topics(config)),
                ConnectorType::Source => extra.extend(crate::topic_creation::validate(config)),
            }
            extra.extend(p.validate_extra(config));
        }
    }
    extra.extend(validate_converters(config));
    extra.extend(validate_aliases(config, TRANSFORMS));
    extra.extend(validate_aliases(config, PREDICATES));
    extra.extend(crate::transforms::validate_transforms(config));

    for (key, message) in extra {
        match configs.iter_mut().find(|c| c.value.name == key) {
            Some(info) => info.value.errors.push(message),
            None => configs.push(ConfigInfo {
                definition: None,
                value: ConfigValueInfo {
                    name: key.clone(),
                    value: config.get(&key).cloned(),
                    recommended_values: Vec::new(),
                    errors: vec![message],
                    visible: true,
                },
            }),
        }
    }

    apply_plugin_defaults(&mut configs, config, converters, plugin.as_deref());

    let mut groups: Vec<String> = Vec::new();
    for group in keys.iter().filter_map(|k| k.group) {
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
    }
    groups.extend(transform_groups);
    // Then the keys of each converter the config names (header, key, value), as Kafka Connect appends them.
    let mut converter_infos = Vec::new();
    for (key, converter_type) in [(HEADER_CONVERTER, "header"), (KEY_CONVERTER, "key"), (VALUE_CONVERTER, "value")] {
        let (infos, converter_groups) = converter_config_infos(config, &configs, key, converter_type);
        converter_infos.extend(infos);
        for group in converter_groups {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    configs.extend(converter_infos);
    let error_count = configs.iter().map(|c| c.value.errors.len()).sum();
    ConfigInfos { name: class.cloned().unwrap_or_default(), error_count, groups, configs }
}

/// The validate entries of the converter a config names under `key` (`value.converter`, ...): its own keys
/// prefixed with `key.`, valued from the config's `key.*` entries and `converter.type`, in the order Kafka Connect's
/// `ConfigDef.validate` returns them; nothing when the config names no converter there or names one in error.
/// Returns the entries and their groups.
fn converter_config_infos(
    config: &ConfigMap,
    validated: &[ConfigInfo],
    key: &str,
    converter_type: &str,
) -> (Vec<ConfigInfo>, Vec<String>) {
    let Some(given) = config.get(key) else { return (Vec::new(), Vec::new()) };
    let sound = validated.iter().find(|c| c.value.name == key).is_some_and(|c| c.value.errors.is_empty());
    let class = if key == HEADER_CONVERTER { header_converter_class_name(given) } else { converter_class_name(given) };
    let (true, Some(def)) = (sound, class.and_then(sluice_converters::config_def::converter_config_def)) else {
        return (Vec::new(), Vec::new());
    };
    let prefix = format!("{key}.");
    let mut own: ConfigMap =
        config.iter().filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone()))).collect();
    own.entry("converter.type".to_string()).or_insert_with(|| converter_type.to_string());
    let names: Vec<&str> = def.keys.iter().map(|k| k.name).collect();
    let mut groups = Vec::new();
    let infos = sluice_converters::config_def::java_hash_map_order(&names)
        .into_iter()
        .filter_map(|name| def.key(name))
        .map(|k| {
            if let Some(group) = k.group
                && !groups.iter().any(|g| g == group)
            {
                groups.push(group.to_string());
            }
            let mut definition = k.info();
            definition.name = format!("{prefix}{}", definition.name);
            let mut value = k.validate_value(own.get(k.name).map(String::as_str));
            value.name = format!("{prefix}{}", value.name);
            ConfigInfo { definition: Some(definition), value }
        })
        .collect();
    (infos, groups)
}

/// The validate entries of every transformation alias, as Kafka Connect's enriched connector definition has them: in
/// a group `Transforms: <alias>`, `type` and `plugin.version`, then (for a known class) the transformation's own
/// keys, `negate` and `predicate`, all prefixed with `transforms.<alias>.`. Their errors come from
/// [`crate::transforms::validate_transforms`]. Returns the entries and the groups.
fn transformation_infos(config: &ConfigMap) -> (Vec<ConfigInfo>, Vec<String>) {
    let (mut infos, mut groups) = alias_infos(config, AliasKind::Transformation);
    let (predicate_infos, predicate_groups) = alias_infos(config, AliasKind::Predicate);
    infos.extend(predicate_infos);
    groups.extend(predicate_groups);
    (infos, groups)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AliasKind {
    Transformation,
    Predicate,
}

/// [`transformation_infos`] of the `transforms` or the `predicates` aliases (predicates have no `negate` and
/// `predicate` keys; their group is `Predicates: <alias>`).
fn alias_infos(config: &ConfigMap, kind: AliasKind) -> (Vec<ConfigInfo>, Vec<String>) {
    let (list_key, group_name, noun, display) = match kind {
        AliasKind::Transformation => (TRANSFORMS, "Transforms", "transformation", "Transformation"),
        AliasKind::Predicate => (PREDICATES, "Predicates", "predicate", "Predicate"),
    };
    let mut aliases: Vec<&str> = Vec::new();
    for alias in config.get(list_key).map(|v| parse_list(v)).unwrap_or_default() {
        if !alias.is_empty() && !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }
    let classes = match kind {
        AliasKind::Transformation => crate::transforms::transformation_class_names(),
        AliasKind::Predicate => crate::transforms::predicate_class_names(),
    };
    let mut recommended: Vec<String> = classes.into_iter().map(str::to_string).collect();
    recommended.sort();
    let mut infos = Vec::new();
    let mut groups = Vec::new();
    for alias in aliases {
        let prefix = format!("{list_key}.{alias}.");
        let group = format!("{group_name}: {alias}");
        let given = |key: &str| config.get(&format!("{prefix}{key}")).map(|v| v.trim().to_string());
        let class = given("type").filter(|c| !c.is_empty());
        let canonical = class.as_deref().and_then(|c| match kind {
            AliasKind::Transformation => crate::transforms::transformation_class(c),
            AliasKind::Predicate => crate::transforms::predicate_class(c),
        });
        let def = canonical.and_then(crate::transforms::plugin_config_def);
        let known = def.is_some();
        let mut alias_infos: Vec<ConfigInfo> = Vec::new();
        let mut entry = |key: &str, info: ConfigKeyInfo, value: Option<String>, recommended_values: Vec<String>| {
            // Orders count from 0 within the alias's group.
            let order = i32::try_from(alias_infos.len()).unwrap_or(i32::MAX);
            alias_infos.push(ConfigInfo {
                definition: Some(ConfigKeyInfo {
                    name: format!("{prefix}{key}"),
                    group: Some(group.clone()),
                    order,
                    ..info
                }),
                value: ConfigValueInfo {
                    name: format!("{prefix}{key}"),
                    value,
                    recommended_values,
                    errors: Vec::new(),
                    visible: true,
                },
            });
        };
        let key_info =
            |config_type: &str, default: Option<&str>, importance: &str, doc: String, width: &str, display: String| {
                ConfigKeyInfo {
                    name: String::new(),
                    config_type: config_type.to_string(),
                    required: false,
                    default_value: default.map(str::to_string),
                    importance: importance.to_string(),
                    documentation: doc,
                    group: None,
                    order: 0,
                    width: width.to_string(),
                    display_name: display,
                    dependents: Vec::new(),
                }
            };
        let type_info = ConfigKeyInfo {
            required: true,
            ..key_info(
                "CLASS",
                None,
                "HIGH",
                format!("Class for the '{alias}' {noun}."),
                "LONG",
                format!("{display} type for {alias}"),
            )
        };
        // Kafka Connect shows no value for a class it cannot load.
        entry("type", type_info, class.clone().filter(|_| known), recommended.clone());
        let version_default = known.then_some(PLUGIN_VERSION);
        let version_info = key_info(
            "STRING",
            version_default,
            "HIGH",
            format!("Version of the '{alias}' {noun}."),
            "LONG",
            format!("{display} version for {alias}"),
        );
        let version = given("plugin.version").or(version_default.map(str::to_string));
        let version_recommended = if known { vec![PLUGIN_VERSION.to_string()] } else { Vec::new() };
        entry("plugin.version", version_info, version, version_recommended);
        if let Some(def) = &def {
            for key in &def.keys {
                let value = key.validate_value(config.get(&format!("{prefix}{}", key.name)).map(String::as_str)).value;
                entry(key.name, key.info(), value, Vec::new());
            }
        }
        if known && kind == AliasKind::Transformation {
            let negate = key_info(
                "BOOLEAN",
                Some("false"),
                "MEDIUM",
                "Whether the configured predicate should be negated.".to_string(),
                "NONE",
                "negate".to_string(),
            );
            entry("negate", negate, given("negate").or(Some("false".to_string())), Vec::new());
            let predicate = key_info(
                "STRING",
                None,
                "MEDIUM",
                "The alias of a predicate used to determine whether to apply this transformation.".to_string(),
                "NONE",
                "predicate".to_string(),
            );
            entry("predicate", predicate, given("predicate"), Vec::new());
        }
        infos.extend(alias_infos);
        groups.push(group);
    }
    (infos, groups)
}

/// Kafka Connect's `SinkConnectorConfig.validate`: exactly one of `topics`/`topics.regex`, and the DLQ topic may not
/// be one of the consumed topics.
fn validate_sink_topics(config: &ConfigMap) -> Vec<(String, String)> {
    let given = |key: &str| config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let topics = given(TOPICS);
    let regex = given(TOPICS_REGEX);
    let mut errors = Vec::new();
    let both_or_none = match (topics, regex) {
        (Some(_), Some(_)) => {
            Some("topics and topics.regex are mutually exclusive options, but both are set.".to_string())
        }
        (None, None) => Some("Must configure one of topics or topics.regex".to_string()),
        _ => None,
    };
    if let Some(message) = both_or_none {
        errors.push((TOPICS.to_string(), message.clone()));
        errors.push((TOPICS_REGEX.to_string(), message));
    }
    if let (Some(dlq), Some(topics)) = (given(DLQ_TOPIC), topics) {
        let list = parse_list(topics);
        if list.contains(&dlq) {
            errors.push((
                TOPICS.to_string(),
                format!(
                    "The DLQ topic '{dlq}' may not be included in the list of topics ('topics=[{}]') consumed by the connector",
                    list.join(", ")
                ),
            ));
        }
    }
    errors
}

/// Converter classes must name a known converter (`CLASS` keys fail in Kafka Connect when the class is missing).
fn validate_converters(config: &ConfigMap) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for key in [KEY_CONVERTER, VALUE_CONVERTER, HEADER_CONVERTER] {
        let Some(class) = config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) else { continue };
        let known = if key == HEADER_CONVERTER { is_header_converter(class) } else { find_converter(class).is_some() };
        if !known {
            errors.push((key.to_string(), invalid_value(key, class, &format!("Class {class} could not be found."))));
        }
    }
    errors
}

/// `transforms` and `predicates` list aliases; Kafka Connect rejects a duplicate alias.
fn validate_aliases(config: &ConfigMap, key: &str) -> Vec<(String, String)> {
    let Some(raw) = config.get(key) else { return Vec::new() };
    let aliases = parse_list(raw);
    let unique: BTreeSet<&str> = aliases.iter().copied().collect();
    if unique.len() == aliases.len() {
        Vec::new()
    } else {
        vec![(key.to_string(), invalid_value(key, &aliases.join(","), "Duplicate alias provided."))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn errors_of<'a>(infos: &'a ConfigInfos, key: &str) -> &'a [String] {
        &infos.configs.iter().find(|c| c.value.name == key).expect("key listed").value.errors
    }

    fn value_of<'a>(infos: &'a ConfigInfos, key: &str) -> Option<&'a str> {
        infos.configs.iter().find(|c| c.value.name == key).expect("key listed").value.value.as_deref()
    }

    #[test]
    fn aliases_resolve_to_the_canonical_class() {
        for alias in
            ["FileStreamSource", "FileStreamSourceConnector", "org.apache.kafka.connect.file.FileStreamSourceConnector"]
        {
            let c = connector(alias).expect("known");
            assert_eq!(c.class_name(), "org.apache.kafka.connect.file.FileStreamSourceConnector");
            assert_eq!(c.connector_type(), ConnectorType::Source);
        }
        for alias in
            ["FileStreamSink", "FileStreamSinkConnector", "org.apache.kafka.connect.file.FileStreamSinkConnector"]
        {
            assert_eq!(connector(alias).expect("known").connector_type(), ConnectorType::Sink);
        }
        assert!(connector("filestreamsink").is_none(), "aliases are case-sensitive as in Kafka Connect");
        assert!(connector("Nope").is_none());
        for alias in [
            "JsonConverter",
            "Json",
            "org.apache.kafka.connect.json.JsonConverter",
            "StringConverter",
            "ByteArrayConverter",
        ] {
            assert!(converter(alias).is_some(), "{alias}");
        }
        assert_eq!(connector_type_of(&map(&[("connector.class", "FileStreamSink")])), Some(ConnectorType::Sink));
        assert_eq!(connector_type_of(&map(&[])), None);
        // The file connectors plus whatever the connector crates linked in by features export.
        assert_eq!(connector_class_names().len(), connectors().len());
        assert!(connector_class_names().len() >= 2);
    }

    #[test]
    fn plugins_are_sorted_and_filtered() {
        let connectors = plugins(false);
        // Sorted by class; the file connectors (the connector crates' own plugins are listed too when linked in).
        // As Kafka Connect lists them: the sink connectors sorted, then the source connectors sorted.
        let keys: Vec<(&str, &str)> = connectors.iter().map(|p| (p.plugin_type.as_str(), p.class.as_str())).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        assert_eq!(
            connectors
                .iter()
                .filter(|p| p.class.starts_with("org.apache.kafka.connect.file."))
                .map(|p| (p.class.as_str(), p.plugin_type.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("org.apache.kafka.connect.file.FileStreamSinkConnector", "sink"),
                ("org.apache.kafka.connect.file.FileStreamSourceConnector", "source"),
            ]
        );
        let all = plugins(true);
        // Kafka Connect 4.1.2 lists 50: 2 connectors, 9 converters, the same 9 plus SimpleHeaderConverter as
        // header converters, 26 transformations and 3 predicates; Sluice adds Debezium's two transformations
        // (ExtractNewRecordState, ByLogicalTableRouter) when the CDC connectors are built in.
        let debezium_transforms = all.iter().filter(|p| p.class.starts_with("io.debezium.transforms.")).count();
        assert_eq!(
            all.len(),
            connectors.len() + 9 + 10 + 26 + 3 + debezium_transforms,
            "connectors, converters, header converters, transforms, predicates"
        );
        for class in [
            "org.apache.kafka.connect.converters.BooleanConverter",
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            "org.apache.kafka.connect.converters.DoubleConverter",
            "org.apache.kafka.connect.converters.FloatConverter",
            "org.apache.kafka.connect.converters.IntegerConverter",
            "org.apache.kafka.connect.converters.LongConverter",
            "org.apache.kafka.connect.converters.ShortConverter",
            "org.apache.kafka.connect.json.JsonConverter",
            "org.apache.kafka.connect.storage.StringConverter",
        ] {
            for plugin_type in ["converter", "header_converter"] {
                assert!(all.iter().any(|p| p.class == class && p.plugin_type == plugin_type), "{class} {plugin_type}");
            }
        }
        let header_converters = all.iter().filter(|p| p.plugin_type == "header_converter").count();
        assert_eq!(header_converters, 10);
        assert!(
            all.iter()
                .any(|p| p.plugin_type == "transformation"
                    && p.class == "org.apache.kafka.connect.transforms.Cast$Value")
        );
        assert!(all.iter().any(|p| p.plugin_type == "predicate"
            && p.class == "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"));
        // Kafka Connect's order: by type (connectors, transformations, predicates, converters, header
        // converters), then by class.
        let types: Vec<&str> = all.iter().map(|p| p.plugin_type.as_str()).collect();
        let first = |t: &str| types.iter().position(|x| *x == t).expect("type listed");
        let last = |t: &str| types.iter().rposition(|x| *x == t).expect("type listed");
        assert!(last("source") < first("transformation") && last("transformation") < first("predicate"));
        assert!(last("predicate") < first("converter") && last("converter") < first("header_converter"));
        assert!(all.windows(2).all(|w| w[0].plugin_type != w[1].plugin_type || w[0].class <= w[1].class));
        assert_eq!(PLUGIN_VERSION, "4.1.2", "the Kafka Connect plugins Sluice reimplements");
        assert!(all.iter().any(|p| p.plugin_type == "header_converter"
            && p.class == "org.apache.kafka.connect.storage.SimpleHeaderConverter"));
        // Kafka Connect's own plugins report its version; connectors that are drop-ins for others report theirs.
        assert!(all.iter().filter(|p| !p.class.starts_with("io.")).all(|p| p.version == PLUGIN_VERSION));
        assert_eq!(
            serde_json::to_string(
                connectors
                    .iter()
                    .find(|p| p.class == "org.apache.kafka.connect.file.FileStreamSinkConnector")
                    .expect("listed")
            )
            .expect("serializes"),
            format!(
                r#"{{"class":"org.apache.kafka.connect.file.FileStreamSinkConnector","type":"sink","version":"{PLUGIN_VERSION}"}}"#
            )
        );
    }

    #[test]
    fn a_valid_source_config_has_no_errors_and_lists_every_key() {
        let infos = validate(&map(&[
            ("name", "src"),
            ("connector.class", "FileStreamSource"),
            ("file", "/tmp/in.txt"),
            ("topic", "lines"),
            ("producer.override.acks", "all"),
        ]));
        assert_eq!(infos.error_count, 0, "{:?}", infos.error_messages());
        assert_eq!(infos.name, "FileStreamSource");
        assert_eq!(
            infos.groups,
            [
                "Common",
                "Transforms",
                "Predicates",
                "Error Handling",
                "Topic Creation",
                "Exactly Once Support",
                "offsets.topic"
            ]
        );
        let names: Vec<&str> = infos.configs.iter().map(|c| c.value.name.as_str()).collect();
        assert_eq!(&names[..4], ["name", "connector.class", "connector.plugin.version", "tasks.max"]);
        let file = names.iter().position(|n| *n == "file").expect("plugin key listed");
        assert!(file > names.iter().position(|n| *n == "errors.tolerance").expect("common key"));
        assert_eq!(value_of(&infos, "tasks.max"), Some("1"));
        assert_eq!(value_of(&infos, "key.converter"), Some("org.apache.kafka.connect.json.JsonConverter"));
        assert_eq!(value_of(&infos, "batch.size"), Some("2000"));
        let undefined = infos.configs.last().expect("client override listed last");
        assert!(undefined.definition.is_none());
        assert_eq!(undefined.value.name, "producer.override.acks");
        assert_eq!(undefined.value.value.as_deref(), Some("all"));
    }

    #[test]
    fn validate_lists_the_keys_of_the_converters_a_config_names() {
        let infos = validate(&map(&[
            ("name", "c"),
            ("connector.class", "FileStreamSink"),
            ("topics", "t"),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("value.converter.decimal.format", "bogus"),
            ("not.a.key", "1"),
        ]));
        let names: Vec<&str> = infos.configs.iter().map(|c| c.value.name.as_str()).collect();
        assert!(!names.contains(&"not.a.key"), "undefined keys are not listed");
        assert!(!names.iter().any(|n| n.starts_with("key.converter.converter")), "key.converter is not named");
        let tail = &names[names.len() - 5..];
        assert_eq!(
            tail,
            [
                "value.converter.decimal.format",
                "value.converter.converter.type",
                "value.converter.schemas.cache.size",
                "value.converter.replace.null.with.default",
                "value.converter.schemas.enable"
            ]
        );
        assert_eq!(value_of(&infos, "value.converter.converter.type"), Some("value"));
        assert_eq!(infos.error_count, 1, "{:?}", infos.error_messages());
        assert!(infos.groups.ends_with(&["Serialization".to_string(), "Schemas".to_string()]), "{:?}", infos.groups);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_kafka_connects_wording() {
        let infos = validate(&map(&[
            ("name", "bad\u{7}name"),
            ("connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector"),
            ("tasks.max", "0"),
            ("errors.retry.timeout", "soon"),
            ("errors.tolerance", "some"),
            ("errors.log.enable", "yes"),
            ("value.converter", "AvroConverter"),
            ("transforms", "a, b, a"),
        ]));
        assert_eq!(
            errors_of(&infos, "name"),
            [
                "Invalid value bad\u{7}name for configuration name: String may not contain control sequences but had the following ASCII chars: 7"
            ]
        );
        assert_eq!(
            errors_of(&infos, "tasks.max"),
            ["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
        );
        assert_eq!(
            errors_of(&infos, "errors.retry.timeout"),
            ["Invalid value soon for configuration errors.retry.timeout: Not a number of type LONG"]
        );
        assert_eq!(
            errors_of(&infos, "errors.tolerance"),
            ["Invalid value some for configuration errors.tolerance: String must be one of: none, all"]
        );
        assert_eq!(
            errors_of(&infos, "errors.log.enable"),
            ["Invalid value yes for configuration errors.log.enable: Expected value to be either true or false"]
        );
        assert_eq!(
            errors_of(&infos, "value.converter"),
            ["Invalid value AvroConverter for configuration value.converter: Class AvroConverter could not be found."]
        );
        assert_eq!(
            errors_of(&infos, "transforms"),
            ["Invalid value a,b,a for configuration transforms: Duplicate alias provided."]
        );
        assert_eq!(
            errors_of(&infos, "topic"),
            ["Missing required configuration \"topic\" which has no default value."]
        );
        // Plus the missing `transforms.a.type` and `transforms.b.type`, as Kafka Connect reports them.
        assert!(errors_of(&infos, "transforms.a.type").iter().any(|e| e.contains("transforms.a.type")));
        assert_eq!(infos.error_count, 10);
        assert_eq!(infos.error_messages().len(), 10);
        assert_eq!(value_of(&infos, "transforms"), Some("a,b,a"));
    }

    #[test]
    fn source_topic_creation_keys_are_validated() {
        let mut config = map(&[
            ("name", "src"),
            ("connector.class", "FileStreamSource"),
            ("topic", "t"),
            ("file", "/tmp/in"),
            ("topic.creation.default.replication.factor", "1"),
        ]);
        let infos = validate(&config);
        assert_eq!(
            errors_of(&infos, "topic.creation.default.partitions"),
            ["Missing required configuration \"topic.creation.default.partitions\" which has no default value."]
        );
        assert_eq!(infos.error_count, 1);
        config.insert("topic.creation.default.partitions".into(), "3".into());
        assert_eq!(validate(&config).error_count, 0);
    }

    #[test]
    fn empty_name_and_missing_name() {
        let infos = validate(&map(&[("name", "  "), ("connector.class", "FileStreamSink"), ("topics", "t")]));
        assert_eq!(errors_of(&infos, "name"), ["Invalid value  for configuration name: String may not be empty"]);
        let infos = validate(&map(&[("connector.class", "FileStreamSink"), ("topics", "t")]));
        assert_eq!(errors_of(&infos, "name"), ["Missing required configuration \"name\" which has no default value."]);
        assert_eq!(infos.error_count, 1);
    }

    #[test]
    fn sink_needs_exactly_one_of_topics_and_topics_regex() {
        let none = validate(&map(&[("name", "s"), ("connector.class", "FileStreamSink")]));
        assert_eq!(errors_of(&none, "topics"), ["Must configure one of topics or topics.regex"]);
        assert_eq!(errors_of(&none, "topics.regex"), ["Must configure one of topics or topics.regex"]);
        assert_eq!(none.error_count, 2);
        assert_eq!(none.groups, ["Common", "Transforms", "Predicates", "Error Handling"]);

        let both = validate(&map(&[
            ("name", "s"),
            ("connector.class", "FileStreamSink"),
            ("topics", "a"),
            ("topics.regex", "a.*"),
        ]));
        assert_eq!(
            errors_of(&both, "topics"),
            ["topics and topics.regex are mutually exclusive options, but both are set."]
        );

        let dlq = validate(&map(&[
            ("name", "s"),
            ("connector.class", "FileStreamSink"),
            ("topics", "a, dlq"),
            ("errors.deadletterqueue.topic.name", "dlq"),
        ]));
        assert_eq!(
            errors_of(&dlq, "topics"),
            [
                "The DLQ topic 'dlq' may not be included in the list of topics ('topics=[a, dlq]') consumed by the connector"
            ]
        );

        let ok = validate(&map(&[("name", "s"), ("connector.class", "FileStreamSink"), ("topics", "a")]));
        assert_eq!(ok.error_count, 0, "{:?}", ok.error_messages());
        assert_eq!(value_of(&ok, "errors.deadletterqueue.topic.replication.factor"), Some("3"));
        assert_eq!(value_of(&ok, "file"), None);
    }

    #[test]
    fn unknown_or_missing_connector_class() {
        let infos = validate(&map(&[("name", "x"), ("connector.class", "Nope")]));
        assert_eq!(infos.name, "Nope");
        let errors = errors_of(&infos, "connector.class");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(
            "Failed to find any class that implements Connector and which name matches Nope; known connector plugins: "
        ));
        assert!(errors[0].contains(
            "org.apache.kafka.connect.file.FileStreamSinkConnector (aliases: FileStreamSink, FileStreamSinkConnector)"
        ));
        assert_eq!(infos.error_count, 1);

        let infos = validate(&map(&[("name", "x"), ("tasks.max", "x")]));
        assert_eq!(infos.name, "");
        assert_eq!(
            errors_of(&infos, "connector.class"),
            ["Missing required configuration \"connector.class\" which has no default value."]
        );
        // tasks.max=x: as Kafka Connect, the value is null and the range check fails on it too.
        assert_eq!(infos.error_count, 3, "common keys are still checked: {:?}", infos.error_messages());
        assert_eq!(value_of(&infos, "tasks.max"), None);
        assert_eq!(
            errors_of(&infos, "tasks.max"),
            [
                "Invalid value x for configuration tasks.max: Not a number of type INT",
                "Invalid value null for configuration tasks.max: Value must be non-null"
            ]
        );
    }

    #[test]
    fn config_infos_serialize_like_kafka_connect() {
        let infos = validate(&map(&[("name", "s"), ("connector.class", "FileStreamSink"), ("topics", "a")]));
        let json = serde_json::to_value(&infos).expect("serializes");
        let tasks_max = &json["configs"][3];
        assert_eq!(
            tasks_max["definition"],
            serde_json::json!({"name":"tasks.max","type":"INT","required":false,"default_value":"1",
                "importance":"HIGH","documentation":"Maximum number of tasks to use for this connector.","group":"Common",
                "order":4,"width":"SHORT","display_name":"Tasks max","dependents":[]})
        );
        assert_eq!(
            tasks_max["value"],
            serde_json::json!({"name":"tasks.max","value":"1","recommended_values":[],"errors":[],"visible":true})
        );
        let name = &json["configs"][0]["definition"];
        assert_eq!(name["required"], true);
        assert_eq!(name["default_value"], serde_json::Value::Null);
        let file =
            json["configs"].as_array().expect("array").iter().find(|c| c["value"]["name"] == "file").expect("file");
        assert_eq!(file["definition"]["group"], serde_json::Value::Null);
        assert_eq!(file["definition"]["order"], -1);
        assert_eq!(file["definition"]["width"], "NONE");
        assert_eq!(file["definition"]["display_name"], "file");
    }

    #[test]
    fn passwords_are_hidden() {
        let key = ConfigKey::new("secret", ConfigType::Password, DefaultValue::Null, Importance::High, "doc");
        assert_eq!(key.validate_value(Some("hunter2")).value.as_deref(), Some("[hidden]"));
        assert_eq!(key.validate_value(None).value, None);
    }

    #[test]
    fn new_header_converter_builds_simple_or_any_converter() {
        use crate::record::Value;
        let simple = new_header_converter("SimpleHeaderConverter", &ConfigMap::new()).expect("known");
        let bytes = simple.from_connect_header("t", "h", None, &Value::Int32(5)).expect("writes");
        assert_eq!(bytes.as_deref(), Some(&b"5"[..]));
        assert_eq!(header_converter_class_name("Simple"), Some(SIMPLE_HEADER_CONVERTER));
        assert_eq!(header_converter_class_name("String"), Some("org.apache.kafka.connect.storage.StringConverter"));
        let json = new_header_converter("JsonConverter", &map(&[("schemas.enable", "false")])).expect("known");
        assert_eq!(json.to_connect_header("t", "h", Some(b"true")).expect("reads").1, Value::Boolean(true));
        assert!(new_header_converter("JsonConverter", &map(&[("schemas.enable", "maybe")])).is_err());
        let err = new_header_converter("AvroConverter", &ConfigMap::new()).err().expect("unknown");
        assert!(err.to_string().contains("AvroConverter could not be found"), "{err}");
    }

    #[test]
    fn new_converter_configures_or_names_the_unknown_class() {
        let conv = new_converter("JsonConverter", &map(&[("schemas.enable", "false")]), false).expect("known");
        let mut out = Vec::new();
        assert!(conv.from_connect("t", None, &crate::Value::Int64(5), &mut out).expect("converts"));
        assert_eq!(out, b"5");
        let err = new_converter("Avro", &ConfigMap::new(), true).err().expect("unknown");
        assert_eq!(err.to_string(), "invalid configuration for `key.converter`: Class Avro could not be found.");
    }
}

/// Issue 12 item 6: the plugin keys of KIP-891 and the worker's converters in validate, as Kafka Connect 4.1.2
/// answers them (checked against it by deploy/compat/rest-compare).
#[cfg(test)]
mod plugin_key_tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn info<'a>(infos: &'a ConfigInfos, key: &str) -> &'a ConfigInfo {
        infos.configs.iter().find(|c| c.value.name == key).expect("key listed")
    }

    #[test]
    fn validate_shows_plugin_versions_and_the_workers_converters() {
        let config = map(&[("connector.class", "FileStreamSink"), ("topics", "t"), ("name", "s")]);
        let infos = validate(&config);
        assert_eq!(infos.error_count, 0, "{:?}", infos.error_messages());
        let names: Vec<&str> = infos.configs.iter().take(12).map(|c| c.value.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "connector.class",
                "connector.plugin.version",
                "tasks.max",
                "tasks.max.enforce",
                "key.converter",
                "key.converter.plugin.version",
                "value.converter",
                "value.converter.plugin.version",
                "header.converter",
                "header.converter.plugin.version",
                "transforms"
            ]
        );
        let version = info(&infos, "connector.plugin.version");
        assert_eq!(version.value.value.as_deref(), Some("4.1.2"));
        assert_eq!(version.value.recommended_values, ["4.1.2"]);
        let key = info(&infos, "key.converter");
        assert_eq!(key.value.value.as_deref(), Some("org.apache.kafka.connect.json.JsonConverter"));
        let default = key.definition.as_ref().and_then(|d| d.default_value.as_deref());
        assert_eq!(default, Some("org.apache.kafka.connect.json.JsonConverter"));
        assert!(key.value.recommended_values.contains(&"org.apache.kafka.connect.storage.StringConverter".to_string()));
        let header = info(&infos, "header.converter");
        assert_eq!(header.value.value.as_deref(), Some(SIMPLE_HEADER_CONVERTER));
        assert!(header.value.recommended_values.contains(&SIMPLE_HEADER_CONVERTER.to_string()));
        let mut sorted = header.value.recommended_values.clone();
        sorted.sort();
        assert_eq!(header.value.recommended_values, sorted);
        let errors = info(&infos, "errors.tolerance").definition.as_ref().map(|d| d.width.clone());
        assert_eq!(errors.as_deref(), Some("SHORT"));

        // The worker's converters are the defaults; a connector's own wins.
        let worker = WorkerConverters::from_worker_config(&map(&[("value.converter", "StringConverter")]));
        let infos = validate_with(&config, &worker);
        let value = info(&infos, "value.converter");
        assert_eq!(value.value.value.as_deref(), Some("org.apache.kafka.connect.storage.StringConverter"));
        let mut own = config.clone();
        own.insert("value.converter".into(), "org.apache.kafka.connect.converters.ByteArrayConverter".into());
        let infos = validate_with(&own, &worker);
        let value = info(&infos, "value.converter");
        assert_eq!(value.value.value.as_deref(), Some("org.apache.kafka.connect.converters.ByteArrayConverter"));

        // A version that does not match is an error on the class and on the version key.
        let mut wrong = config.clone();
        wrong.insert("value.converter.plugin.version".into(), "1.0".into());
        wrong.insert("connector.plugin.version".into(), "[4.0,5.0)".into());
        let infos = validate(&wrong);
        assert_eq!(infos.error_count, 2, "{:?}", infos.error_messages());
        assert!(info(&infos, "value.converter").value.errors[0].contains("version range [1.0,1.0]"));
        assert!(info(&infos, "connector.plugin.version").value.errors.is_empty());
    }

    #[test]
    fn validate_defines_each_transformations_keys_in_its_group() {
        let config = map(&[
            ("connector.class", "FileStreamSource"),
            ("topic", "t"),
            ("name", "s"),
            ("transforms", "route,bad"),
            ("transforms.route.type", "org.apache.kafka.connect.transforms.RegexRouter"),
            ("transforms.route.regex", "(.*)"),
            ("transforms.bad.type", "org.example.NoSuchTransform"),
        ]);
        let infos = validate(&config);
        let names: Vec<&str> = infos.configs.iter().map(|c| c.value.name.as_str()).collect();
        let first = names.iter().position(|n| n.starts_with("transforms.")).expect("transform keys");
        assert_eq!(
            &names[first..first + 8],
            [
                "transforms.route.type",
                "transforms.route.plugin.version",
                "transforms.route.regex",
                "transforms.route.replacement",
                "transforms.route.negate",
                "transforms.route.predicate",
                "transforms.bad.type",
                "transforms.bad.plugin.version"
            ]
        );
        assert_eq!(names[first - 1], "offsets.storage.topic", "after the common keys");
        assert_eq!(names[first + 8], "file", "before the connector's own");
        assert!(infos.groups.ends_with(&["Transforms: route".to_string(), "Transforms: bad".to_string()]));
        let replacement = info(&infos, "transforms.route.replacement");
        let definition = replacement.definition.as_ref().expect("defined");
        assert_eq!((definition.group.as_deref(), definition.order), (Some("Transforms: route"), 3));
        assert_eq!(
            replacement.value.errors,
            ["Missing required configuration \"transforms.route.replacement\" which has no default value."]
        );
        let bad = info(&infos, "transforms.bad.type");
        assert_eq!(bad.value.value, None, "as Kafka Connect: no value for a class it cannot load");
        assert_eq!(bad.value.errors.len(), 1);
        assert_eq!(infos.error_count, 2, "{:?}", infos.error_messages());
    }

    #[test]
    fn version_ranges() {
        assert!(version_matches("4.1.2", "4.1.2"));
        assert!(!version_matches("4.1.1", "4.1.2"));
        assert!(version_matches("[4.0,5.0)", "4.1.2"));
        assert!(version_matches("[4.1.2,)", "4.1.2"));
        assert!(!version_matches("(4.1.2,)", "4.1.2"));
        assert!(!version_matches("[3.0,4.0]", "4.1.2"));
        assert!(version_matches("[4.1.2]", "4.1.2"));
    }
}
