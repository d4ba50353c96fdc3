//! Kafka Connect's single message transforms (SMTs) and predicates as a pure library: a record view both source and
//! sink records go through, the built-in transforms and predicates under Kafka Connect's class names, and the chain
//! a connector configuration describes (`transforms=a,b`, `transforms.a.type=...`, `predicates=...`).

mod cast;
mod debezium;
mod fields;
mod headers;
mod plugin_config;
mod predicates;
mod routing;
mod support;
mod timestamp;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ConfigDef, ConfigMap, invalid_value, parse_list};
use crate::error::ConnectError;
use crate::record::{Schema, SinkRecord, SourceRecord, Value};

pub use plugin_config::PluginConfig;

pub use sluice_connect_api::date_format;
use sluice_connect_api::{config, error, record, values};

/// Where a source record came from and how far the source had got, carried through the transforms untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePosition {
    pub partition: Arc<serde_json::Map<String, serde_json::Value>>,
    pub offset: serde_json::Value,
}

/// The part of a record transforms see and change, for source and sink records alike (Kafka Connect's
/// `ConnectRecord`). `offset` is set for sink records; `source` for source records.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: String,
    pub partition: Option<i32>,
    /// The Kafka offset of a sink record; `None` for a source record.
    pub offset: Option<i64>,
    pub key_schema: Option<Arc<Schema>>,
    pub key: Value,
    pub value_schema: Option<Arc<Schema>>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The source partition and offset of a source record, passed through unchanged.
    pub source: Option<SourcePosition>,
}

impl ConnectRecord {
    /// A record with only a topic and a schemaless null key and value, for building records in tests and tools.
    pub fn new(topic: impl Into<String>) -> Self {
        ConnectRecord {
            topic: topic.into(),
            partition: None,
            offset: None,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: Value::Null,
            timestamp: None,
            headers: Vec::new(),
            source: None,
        }
    }

    /// Whether this came from a sink (has a Kafka offset).
    pub fn is_sink_record(&self) -> bool {
        self.offset.is_some()
    }
}

impl From<SourceRecord> for ConnectRecord {
    fn from(r: SourceRecord) -> Self {
        ConnectRecord {
            topic: r.topic,
            partition: r.partition,
            offset: None,
            key_schema: r.key_schema,
            key: r.key,
            value_schema: r.value_schema,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
            source: Some(SourcePosition { partition: r.source_partition, offset: r.source_offset }),
        }
    }
}

impl From<SinkRecord> for ConnectRecord {
    fn from(r: SinkRecord) -> Self {
        ConnectRecord {
            topic: r.topic.to_string(),
            partition: Some(r.partition),
            offset: Some(r.offset),
            key_schema: r.key_schema,
            key: r.key,
            value_schema: r.value_schema,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
            source: None,
        }
    }
}

impl From<ConnectRecord> for SourceRecord {
    /// A record that did not come from a source gets an empty source partition and a null offset.
    fn from(r: ConnectRecord) -> Self {
        let (source_partition, source_offset) = match r.source {
            Some(position) => (position.partition, position.offset),
            None => (Arc::new(serde_json::Map::new()), serde_json::Value::Null),
        };
        SourceRecord {
            source_partition,
            source_offset,
            topic: r.topic,
            partition: r.partition,
            key_schema: r.key_schema,
            key: r.key,
            value_schema: r.value_schema,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
        }
    }
}

impl From<ConnectRecord> for SinkRecord {
    /// A record without a partition or offset (never the case for one that came from a sink) gets 0 and -1.
    fn from(r: ConnectRecord) -> Self {
        sink_record(r, None)
    }
}

/// `shared` is the topic name the record had before the transforms: kept (not allocated again) when they did not
/// change the topic.
fn sink_record(r: ConnectRecord, shared: Option<&Arc<str>>) -> SinkRecord {
    let topic = match shared {
        Some(shared) if **shared == *r.topic => shared.clone(),
        _ => Arc::from(r.topic),
    };
    SinkRecord {
        topic,
        partition: r.partition.unwrap_or(0),
        offset: r.offset.unwrap_or(-1),
        key_schema: r.key_schema,
        key: r.key,
        value_schema: r.value_schema,
        value: r.value,
        timestamp: r.timestamp,
        headers: r.headers,
    }
}

impl fmt::Display for ConnectRecord {
    /// Close to Kafka Connect's `ConnectRecord.toString()`, used in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |schema: Option<&Arc<Schema>>, value: &Value| {
            let mut out = String::new();
            crate::values::write_text(schema.map(|s| &**s), value, &mut out);
            out
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".to_string());
        write!(
            f,
            "ConnectRecord{{topic='{}', kafkaPartition={}, key={}, keySchema={}, value={}, valueSchema={}, timestamp={}}}",
            self.topic,
            opt(self.partition.map(|p| p.to_string())),
            text(self.key_schema.as_ref(), &self.key),
            opt(self.key_schema.as_deref().map(support::schema_text)),
            text(self.value_schema.as_ref(), &self.value),
            opt(self.value_schema.as_deref().map(support::schema_text)),
            opt(self.timestamp.map(|t| t.to_string())),
        )
    }
}

/// Which half of a record a `$Key`/`$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Key,
    Value,
}

impl Operand {
    pub fn schema(self, record: &ConnectRecord) -> Option<&Arc<Schema>> {
        match self {
            Operand::Key => record.key_schema.as_ref(),
            Operand::Value => record.value_schema.as_ref(),
        }
    }

    pub fn value(self, record: &ConnectRecord) -> &Value {
        match self {
            Operand::Key => &record.key,
            Operand::Value => &record.value,
        }
    }

    /// Takes the schema and value out of the record (leaving a schemaless null) to rebuild them without copying.
    pub fn take(self, record: &mut ConnectRecord) -> (Option<Arc<Schema>>, Value) {
        match self {
            Operand::Key => (record.key_schema.take(), std::mem::replace(&mut record.key, Value::Null)),
            Operand::Value => (record.value_schema.take(), std::mem::replace(&mut record.value, Value::Null)),
        }
    }

    pub fn set(self, record: &mut ConnectRecord, schema: Option<Arc<Schema>>, value: Value) {
        match self {
            Operand::Key => {
                record.key_schema = schema;
                record.key = value;
            }
            Operand::Value => {
                record.value_schema = schema;
                record.value = value;
            }
        }
    }
}

/// A single message transform. `Ok(None)` drops the record.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError>;
}

/// A condition on a record that decides whether a transform applies.
pub trait Predicate: Send + Sync {
    fn test(&self, record: &ConnectRecord) -> bool;
}

type BuildTransformation = fn(&PluginConfig) -> Result<Box<dyn Transformation>, ConnectError>;
type BuildPredicate = fn(&PluginConfig) -> Result<Box<dyn Predicate>, ConnectError>;

/// A transform of the table: Kafka Connect's class name, its config definition and its constructor.
struct TransformationEntry {
    class: &'static str,
    config_def: fn() -> ConfigDef,
    build: BuildTransformation,
}

struct PredicateEntry {
    class: &'static str,
    config_def: fn() -> ConfigDef,
    build: BuildPredicate,
}

const TRANSFORMS_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
const PREDICATES_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// Every built-in transform. Adding a transform means adding a line here.
const TRANSFORMATIONS: &[TransformationEntry] = &[
    TransformationEntry {
        class: "io.debezium.transforms.ByLogicalTableRouter",
        config_def: debezium::by_logical_table_router_config_def,
        build: debezium::build_by_logical_table_router,
    },
    TransformationEntry {
        class: "io.debezium.transforms.ExtractNewRecordState",
        config_def: debezium::extract_new_record_state_config_def,
        build: debezium::build_extract_new_record_state,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.Cast$Key",
        config_def: cast::config_def,
        build: |c| cast::build(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.Cast$Value",
        config_def: cast::config_def,
        build: |c| cast::build(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.DropHeaders",
        config_def: headers::drop_headers_config_def,
        build: headers::build_drop_headers,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.ExtractField$Key",
        config_def: fields::extract_field_config_def,
        build: |c| fields::build_extract_field(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.ExtractField$Value",
        config_def: fields::extract_field_config_def,
        build: |c| fields::build_extract_field(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.Filter",
        config_def: ConfigDef::new,
        build: routing::build_filter,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.Flatten$Key",
        config_def: fields::flatten_config_def,
        build: |c| fields::build_flatten(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.Flatten$Value",
        config_def: fields::flatten_config_def,
        build: |c| fields::build_flatten(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.HeaderFrom$Key",
        config_def: headers::header_from_config_def,
        build: |c| headers::build_header_from(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.HeaderFrom$Value",
        config_def: headers::header_from_config_def,
        build: |c| headers::build_header_from(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.HoistField$Key",
        config_def: fields::hoist_field_config_def,
        build: |c| fields::build_hoist_field(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.HoistField$Value",
        config_def: fields::hoist_field_config_def,
        build: |c| fields::build_hoist_field(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.InsertField$Key",
        config_def: fields::insert_field_config_def,
        build: |c| fields::build_insert_field(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.InsertField$Value",
        config_def: fields::insert_field_config_def,
        build: |c| fields::build_insert_field(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.InsertHeader",
        config_def: headers::insert_header_config_def,
        build: headers::build_insert_header,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.MaskField$Key",
        config_def: fields::mask_field_config_def,
        build: |c| fields::build_mask_field(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.MaskField$Value",
        config_def: fields::mask_field_config_def,
        build: |c| fields::build_mask_field(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.RegexRouter",
        config_def: routing::regex_router_config_def,
        build: routing::build_regex_router,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.ReplaceField$Key",
        config_def: fields::replace_field_config_def,
        build: |c| fields::build_replace_field(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.ReplaceField$Value",
        config_def: fields::replace_field_config_def,
        build: |c| fields::build_replace_field(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.SetSchemaMetadata$Key",
        config_def: fields::set_schema_metadata_config_def,
        build: |c| fields::build_set_schema_metadata(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.SetSchemaMetadata$Value",
        config_def: fields::set_schema_metadata_config_def,
        build: |c| fields::build_set_schema_metadata(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.TimestampConverter$Key",
        config_def: timestamp::config_def,
        build: |c| timestamp::build(c, Operand::Key),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.TimestampConverter$Value",
        config_def: timestamp::config_def,
        build: |c| timestamp::build(c, Operand::Value),
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.TimestampRouter",
        config_def: routing::timestamp_router_config_def,
        build: routing::build_timestamp_router,
    },
    TransformationEntry {
        class: "org.apache.kafka.connect.transforms.ValueToKey",
        config_def: fields::value_to_key_config_def,
        build: fields::build_value_to_key,
    },
];

/// Every built-in predicate.
const PREDICATES: &[PredicateEntry] = &[
    PredicateEntry {
        class: "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        config_def: predicates::has_header_key_config_def,
        build: predicates::build_has_header_key,
    },
    PredicateEntry {
        class: "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        config_def: ConfigDef::new,
        build: predicates::build_record_is_tombstone,
    },
    PredicateEntry {
        class: "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        config_def: predicates::topic_name_matches_config_def,
        build: predicates::build_topic_name_matches,
    },
];

/// Matches the full class name or the name without the package (`Cast$Value`; `Cast.Value` is accepted too, as
/// Java's canonical name of the nested class).
fn class_matches(class: &str, package: &str, name: &str) -> bool {
    let name = name.trim();
    if class == name {
        return true;
    }
    let short = class.strip_prefix(package).unwrap_or(class);
    short == name || short.replace('$', ".") == name || class.replace('$', ".") == name
}

fn find_transformation(name: &str) -> Option<&'static TransformationEntry> {
    TRANSFORMATIONS.iter().find(|e| class_matches(e.class, TRANSFORMS_PACKAGE, name))
}

fn find_predicate(name: &str) -> Option<&'static PredicateEntry> {
    PREDICATES.iter().find(|e| class_matches(e.class, PREDICATES_PACKAGE, name))
}

/// The class names of every built-in transform, for `GET /connector-plugins?connectorsOnly=false`.
pub fn transformation_class_names() -> Vec<&'static str> {
    TRANSFORMATIONS.iter().map(|e| e.class).collect()
}

/// The class names of every built-in predicate.
pub fn predicate_class_names() -> Vec<&'static str> {
    PREDICATES.iter().map(|e| e.class).collect()
}

/// The canonical class of a transform named by class or short name (`Cast$Value`).
pub fn transformation_class(name: &str) -> Option<&'static str> {
    find_transformation(name).map(|e| e.class)
}

/// The canonical class of a predicate named by class or short name (`TopicNameMatches`).
pub fn predicate_class(name: &str) -> Option<&'static str> {
    find_predicate(name).map(|e| e.class)
}

/// The configuration definition of a transform or predicate (for `GET /connector-plugins/{plugin}/config`).
pub fn plugin_config_def(name: &str) -> Option<ConfigDef> {
    find_transformation(name).map(|e| (e.config_def)()).or_else(|| find_predicate(name).map(|e| (e.config_def)()))
}

/// A configured transform by class name or short name, its keys without prefix in `config`.
pub fn new_transformation(class: &str, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConnectError> {
    let entry = find_transformation(class)
        .ok_or_else(|| ConnectError::config("type", format!("Class {} could not be found.", class.trim())))?;
    let plugin_config = PluginConfig::new("", config.clone(), (entry.config_def)());
    plugin_config.check()?;
    (entry.build)(&plugin_config)
}

/// A configured predicate by class name or short name, its keys without prefix in `config`.
pub fn new_predicate(class: &str, config: &ConfigMap) -> Result<Box<dyn Predicate>, ConnectError> {
    let entry = find_predicate(class)
        .ok_or_else(|| ConnectError::config("type", format!("Class {} could not be found.", class.trim())))?;
    let plugin_config = PluginConfig::new("", config.clone(), (entry.config_def)());
    plugin_config.check()?;
    (entry.build)(&plugin_config)
}

const TRANSFORMS: &str = "transforms";
const PREDICATES_KEY: &str = "predicates";
const PREDICATE: &str = "predicate";
const NEGATE: &str = "negate";
const TYPE: &str = "type";

/// One transform of a chain with the predicate that guards it (Kafka Connect's `TransformationStage`).
struct TransformStage {
    alias: String,
    /// Kafka Connect's class name of the transform, named in error reports (`__connect.errors.class.name`).
    class: &'static str,
    transformation: Box<dyn Transformation>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// A transform of a chain failed on a record: which one, and why.
#[derive(Debug)]
pub struct TransformFailure {
    pub alias: String,
    /// Kafka Connect's class name of the failing transform.
    pub class: &'static str,
    pub error: ConnectError,
}

/// The transforms of a connector in order. An empty chain passes records through without touching them.
#[derive(Default)]
pub struct TransformChain {
    stages: Vec<TransformStage>,
}

impl fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformChain").field("aliases", &self.aliases()).finish()
    }
}

impl TransformChain {
    /// The chain that does nothing.
    pub fn empty() -> Self {
        TransformChain::default()
    }

    /// Builds the chain a connector configuration describes; the first configuration problem is the error
    /// (see [`validate_transforms`] for all of them).
    pub fn from_config(config: &ConfigMap) -> Result<TransformChain, ConnectError> {
        let mut problems = Vec::new();
        let stages = build_stages(config, &mut problems);
        match problems.into_iter().next() {
            Some((key, message)) => Err(ConnectError::Config { key, message }),
            None => Ok(TransformChain { stages }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// The aliases of the transforms, in order.
    pub fn aliases(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.alias.as_str()).collect()
    }

    /// Runs the record through every transform whose predicate (if any) holds; `Ok(None)` when one dropped it.
    pub fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        self.apply_traced(record).map_err(|failure| failure.error)
    }

    /// [`apply`](Self::apply), naming the transform that failed, for error reports.
    pub fn apply_traced(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, TransformFailure> {
        let mut record = record;
        for stage in &self.stages {
            let applies = match &stage.predicate {
                None => true,
                Some((predicate, negate)) => predicate.test(&record) != *negate,
            };
            if applies {
                let applied = stage.transformation.apply(record).map_err(|error| TransformFailure {
                    alias: stage.alias.clone(),
                    class: stage.class,
                    error,
                })?;
                match applied {
                    Some(next) => record = next,
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(record))
    }

    /// [`apply_source`](Self::apply_source), naming the transform that failed.
    pub fn apply_source_traced(&self, record: SourceRecord) -> Result<Option<SourceRecord>, TransformFailure> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        Ok(self.apply_traced(record.into())?.map(SourceRecord::from))
    }

    /// [`apply_sink`](Self::apply_sink), naming the transform that failed.
    pub fn apply_sink_traced(&self, record: SinkRecord) -> Result<Option<SinkRecord>, TransformFailure> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        let topic = record.topic.clone();
        Ok(self.apply_traced(record.into())?.map(|r| sink_record(r, Some(&topic))))
    }

    /// [`apply`](Self::apply) for a source record; an empty chain returns the record as it is, without conversion.
    pub fn apply_source(&self, record: SourceRecord) -> Result<Option<SourceRecord>, ConnectError> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        Ok(self.apply(record.into())?.map(SourceRecord::from))
    }

    /// [`apply`](Self::apply) for a sink record; an empty chain returns the record as it is, without conversion.
    pub fn apply_sink(&self, record: SinkRecord) -> Result<Option<SinkRecord>, ConnectError> {
        if self.is_empty() {
            return Ok(Some(record));
        }
        let topic = record.topic.clone();
        Ok(self.apply(record.into())?.map(|r| sink_record(r, Some(&topic))))
    }
}

/// Every problem with the `transforms` and `predicates` of a connector configuration, as (key, message) pairs
/// worded like Kafka Connect's: a missing or unknown `type`, a missing or invalid key of a transform or predicate,
/// a transform's own configuration error, an unknown predicate alias, `negate` without `predicate`.
pub fn validate_transforms(config: &ConfigMap) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    build_stages(config, &mut problems);
    problems
}

/// The unique aliases of a LIST key (duplicates are reported by the connector validation).
fn aliases_of(config: &ConfigMap, key: &str) -> Vec<String> {
    let mut aliases: Vec<String> = Vec::new();
    for alias in config.get(key).map(|v| parse_list(v)).unwrap_or_default() {
        if !alias.is_empty() && !aliases.iter().any(|a| a == alias) {
            aliases.push(alias.to_string());
        }
    }
    aliases
}

/// The class named by `<prefix>type`, or the problem with it.
fn plugin_type<'a>(config: &'a ConfigMap, prefix: &str, problems: &mut Vec<(String, String)>) -> Option<&'a str> {
    let key = format!("{prefix}{TYPE}");
    match config.get(&key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        Some(class) => Some(class),
        None => {
            problems
                .push((key.clone(), format!("Missing required configuration \"{key}\" which has no default value.")));
            None
        }
    }
}

fn class_not_found(key: &str, class: &str) -> (String, String) {
    (key.to_string(), invalid_value(key, class, &format!("Class {class} could not be found.")))
}

/// Builds every predicate and transform, collecting every problem; what could not be built is left out.
fn build_stages(config: &ConfigMap, problems: &mut Vec<(String, String)>) -> Vec<TransformStage> {
    let transform_aliases = aliases_of(config, TRANSFORMS);
    let predicate_aliases = aliases_of(config, PREDICATES_KEY);
    if transform_aliases.is_empty() && predicate_aliases.is_empty() {
        return Vec::new();
    }

    let mut predicates: BTreeMap<&str, Arc<dyn Predicate>> = BTreeMap::new();
    for alias in &predicate_aliases {
        let prefix = format!("{PREDICATES_KEY}.{alias}.");
        let Some(class) = plugin_type(config, &prefix, problems) else { continue };
        let Some(entry) = find_predicate(class) else {
            problems.push(class_not_found(&format!("{prefix}{TYPE}"), class));
            continue;
        };
        let plugin_config = PluginConfig::new(prefix.clone(), sub_config(config, &prefix), (entry.config_def)());
        let own = plugin_config.problems();
        if !own.is_empty() {
            problems.extend(own);
            continue;
        }
        match (entry.build)(&plugin_config) {
            Ok(predicate) => {
                predicates.insert(alias, Arc::from(predicate));
            }
            Err(e) => problems.push(problem_of(e, &format!("{prefix}{TYPE}"))),
        }
    }

    let mut stages = Vec::new();
    for alias in &transform_aliases {
        let prefix = format!("{TRANSFORMS}.{alias}.");
        let predicate_key = format!("{prefix}{PREDICATE}");
        let negate_key = format!("{prefix}{NEGATE}");
        let predicate_alias = config.get(&predicate_key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let negate = match config.get(&negate_key) {
            None => false,
            Some(raw) => match crate::config::parse_value(&negate_key, crate::config::ConfigType::Boolean, raw) {
                Ok(v) => v == "true",
                Err(message) => {
                    problems.push((negate_key.clone(), message));
                    false
                }
            },
        };
        if config.contains_key(&negate_key) && predicate_alias.is_none() {
            problems.push((
                negate_key.clone(),
                format!(
                    "Config '{negate_key}' was provided but there is no config '{predicate_key}' defining a predicate to be negated."
                ),
            ));
        }
        let predicate = match predicate_alias {
            None => None,
            Some(p) if !predicate_aliases.iter().any(|a| a == p) => {
                problems.push((
                    predicate_key.clone(),
                    invalid_value(
                        &predicate_key,
                        p,
                        &format!("Unknown predicate alias '{p}': it must be listed in '{PREDICATES_KEY}'"),
                    ),
                ));
                None
            }
            // Listed but broken: its problem is already reported.
            Some(p) => predicates.get(p).map(|predicate| (predicate.clone(), negate)),
        };

        let Some(class) = plugin_type(config, &prefix, problems) else { continue };
        let Some(entry) = find_transformation(class) else {
            problems.push(class_not_found(&format!("{prefix}{TYPE}"), class));
            continue;
        };
        let plugin_config = PluginConfig::new(prefix.clone(), sub_config(config, &prefix), (entry.config_def)());
        let own = plugin_config.problems();
        if !own.is_empty() {
            problems.extend(own);
            continue;
        }
        match (entry.build)(&plugin_config) {
            Ok(transformation) => {
                stages.push(TransformStage { alias: alias.clone(), class: entry.class, transformation, predicate })
            }
            Err(e) => problems.push(problem_of(e, &format!("{prefix}{TYPE}"))),
        }
    }
    stages
}

fn sub_config(config: &ConfigMap, prefix: &str) -> ConfigMap {
    plugin_config::sub_config(config, prefix, &[TYPE, PREDICATE, NEGATE])
}

/// A build error as a (key, message) pair; errors without a key land on the `type` key.
fn problem_of(error: ConnectError, fallback_key: &str) -> (String, String) {
    match error {
        ConnectError::Config { key, message } => (key, message),
        other => (fallback_key.to_string(), other.to_string()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::record::{Field, SchemaType};

    pub fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub fn transform(class: &str, pairs: &[(&str, &str)]) -> Box<dyn Transformation> {
        match new_transformation(class, &map(pairs)) {
            Ok(t) => t,
            Err(e) => panic!("{class} should build: {e}"),
        }
    }

    pub fn build_error(class: &str, pairs: &[(&str, &str)]) -> String {
        match new_transformation(class, &map(pairs)) {
            Ok(_) => panic!("{class} should not build"),
            Err(ConnectError::Config { message, .. }) => message,
            Err(other) => panic!("not a config error: {other}"),
        }
    }

    pub fn apply(t: &dyn Transformation, record: ConnectRecord) -> ConnectRecord {
        t.apply(record).expect("applies").expect("not dropped")
    }

    pub fn apply_error(t: &dyn Transformation, record: ConnectRecord) -> String {
        match t.apply(record) {
            Ok(r) => panic!("should fail, got {r:?}"),
            Err(ConnectError::Data(message)) => message,
            Err(other) => other.to_string(),
        }
    }

    pub fn schema(schema_type: SchemaType) -> Arc<Schema> {
        Arc::new(Schema::primitive(schema_type, false))
    }

    pub fn optional(schema_type: SchemaType) -> Arc<Schema> {
        Arc::new(Schema::primitive(schema_type, true))
    }

    pub fn struct_schema(fields: &[(&str, Arc<Schema>)]) -> Arc<Schema> {
        let mut schema = Schema::primitive(SchemaType::Struct, false);
        schema.fields = fields
            .iter()
            .enumerate()
            .map(|(index, (name, schema))| Field { name: name.to_string(), index, schema: schema.clone() })
            .collect();
        Arc::new(schema)
    }

    pub fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }

    pub fn smap(entries: &[(&str, Value)]) -> Value {
        Value::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
    }

    pub fn with_value(schema: Option<Arc<Schema>>, value: Value) -> ConnectRecord {
        let mut record = ConnectRecord::new("test");
        record.partition = Some(0);
        record.value_schema = schema;
        record.value = value;
        record
    }

    pub fn with_key(schema: Option<Arc<Schema>>, key: Value) -> ConnectRecord {
        let mut record = ConnectRecord::new("test");
        record.key_schema = schema;
        record.key = key;
        record
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn source_and_sink_records_round_trip() {
        let mut partition = serde_json::Map::new();
        partition.insert("filename".into(), serde_json::json!("/tmp/in"));
        let source = SourceRecord {
            source_partition: Arc::new(partition),
            source_offset: serde_json::json!({"position": 12}),
            topic: "t".into(),
            partition: Some(3),
            key_schema: None,
            key: Value::Null,
            value_schema: Some(Schema::string()),
            value: s("line"),
            timestamp: Some(5),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
        };
        let record = ConnectRecord::from(source.clone());
        assert!(!record.is_sink_record());
        let back = SourceRecord::from(record);
        assert_eq!(back.source_partition, source.source_partition);
        assert_eq!(back.source_offset, source.source_offset);
        assert_eq!((back.topic.as_str(), back.partition, back.timestamp), ("t", Some(3), Some(5)));
        assert_eq!(back.headers, source.headers);

        let sink = SinkRecord {
            topic: "t".into(),
            partition: 2,
            offset: 42,
            key_schema: None,
            key: s("k"),
            value_schema: None,
            value: Value::Null,
            timestamp: None,
            headers: Vec::new(),
        };
        let record = ConnectRecord::from(sink);
        assert_eq!((record.partition, record.offset), (Some(2), Some(42)));
        let back = SinkRecord::from(record);
        assert_eq!((back.partition, back.offset, back.key), (2, 42, s("k")));
    }

    #[test]
    fn class_names_and_short_forms_resolve() {
        assert_eq!(transformation_class("Cast$Value"), Some("org.apache.kafka.connect.transforms.Cast$Value"));
        assert_eq!(
            transformation_class("org.apache.kafka.connect.transforms.Cast$Key"),
            Some("org.apache.kafka.connect.transforms.Cast$Key")
        );
        assert_eq!(transformation_class("Cast.Value"), Some("org.apache.kafka.connect.transforms.Cast$Value"));
        assert_eq!(transformation_class("Cast"), None, "Cast needs $Key or $Value");
        assert_eq!(transformation_class("Filter"), Some("org.apache.kafka.connect.transforms.Filter"));
        assert_eq!(
            predicate_class("TopicNameMatches"),
            Some("org.apache.kafka.connect.transforms.predicates.TopicNameMatches")
        );
        // Kafka Connect's 26 plus Debezium's ExtractNewRecordState and ByLogicalTableRouter.
        assert_eq!(transformation_class_names().len(), 28);
        assert_eq!(predicate_class_names().len(), 3);
        assert!(plugin_config_def("RegexRouter").expect("known").key("regex").is_some());
        assert!(plugin_config_def("HasHeaderKey").expect("known").key("name").is_some());
    }

    #[test]
    fn empty_chain_passes_records_through() {
        let chain = TransformChain::from_config(&map(&[("name", "c")])).expect("builds");
        assert!(chain.is_empty());
        let record = with_value(None, s("v"));
        assert_eq!(chain.apply(record.clone()).expect("ok"), Some(record));
        let chain = TransformChain::from_config(&map(&[("transforms", "")])).expect("builds");
        assert_eq!(chain.len(), 0);
    }

    #[test]
    fn chain_applies_transforms_in_order() {
        let chain = TransformChain::from_config(&map(&[
            ("transforms", "hoist, route"),
            ("transforms.hoist.type", "org.apache.kafka.connect.transforms.HoistField$Value"),
            ("transforms.hoist.field", "line"),
            ("transforms.route.type", "RegexRouter"),
            ("transforms.route.regex", "(.*)"),
            ("transforms.route.replacement", "$1-out"),
        ]))
        .expect("builds");
        assert_eq!(chain.aliases(), ["hoist", "route"]);
        let out = chain.apply(with_value(None, s("hello"))).expect("ok").expect("kept");
        assert_eq!(out.topic, "test-out");
        assert_eq!(out.value, smap(&[("line", s("hello"))]));
    }

    #[test]
    fn predicates_guard_transforms_and_negate_inverts() {
        let config = |negate: Option<&str>| {
            let mut pairs = vec![
                ("transforms", "drop"),
                ("transforms.drop.type", "Filter"),
                ("transforms.drop.predicate", "isFoo"),
                ("predicates", "isFoo"),
                ("predicates.isFoo.type", "org.apache.kafka.connect.transforms.predicates.TopicNameMatches"),
                ("predicates.isFoo.pattern", "foo.*"),
            ];
            if let Some(n) = negate {
                pairs.push(("transforms.drop.negate", n));
            }
            map(&pairs)
        };
        let record = |topic: &str| {
            let mut r = with_value(None, s("v"));
            r.topic = topic.to_string();
            r
        };
        let chain = TransformChain::from_config(&config(None)).expect("builds");
        assert_eq!(chain.apply(record("foo-1")).expect("ok"), None);
        assert!(chain.apply(record("bar")).expect("ok").is_some());

        let chain = TransformChain::from_config(&config(Some("true"))).expect("builds");
        assert!(chain.apply(record("foo-1")).expect("ok").is_some());
        assert_eq!(chain.apply(record("bar")).expect("ok"), None);

        let chain = TransformChain::from_config(&config(Some("false"))).expect("builds");
        assert_eq!(chain.apply(record("foo-1")).expect("ok"), None);
    }

    #[test]
    fn a_dropped_record_stops_the_chain() {
        let chain = TransformChain::from_config(&map(&[
            ("transforms", "tomb,fail"),
            ("transforms.tomb.type", "Filter"),
            ("transforms.tomb.predicate", "t"),
            ("predicates", "t"),
            ("predicates.t.type", "RecordIsTombstone"),
            // ExtractField fails on a non-map value: it must not run after the filter dropped the record.
            ("transforms.fail.type", "ExtractField$Value"),
            ("transforms.fail.field", "x"),
        ]))
        .expect("builds");
        assert_eq!(chain.apply(with_value(None, Value::Null)).expect("dropped, not failed"), None);
        let err = chain.apply(with_value(None, Value::Int32(1))).expect_err("fails");
        assert_eq!(
            err.to_string(),
            "record error: Only Map objects supported in absence of schema for [field extraction], found: java.lang.Integer"
        );
    }

    #[test]
    fn source_and_sink_helpers() {
        let chain = TransformChain::from_config(&map(&[
            ("transforms", "offset"),
            ("transforms.offset.type", "InsertField$Value"),
            ("transforms.offset.offset.field", "off"),
        ]))
        .expect("builds");
        let sink = SinkRecord {
            topic: "t".into(),
            partition: 1,
            offset: 9,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: smap(&[]),
            timestamp: None,
            headers: Vec::new(),
        };
        let out = chain.apply_sink(sink).expect("ok").expect("kept");
        assert_eq!(out.value, smap(&[("off", Value::Int64(9))]));
        assert_eq!(out.offset, 9);
        let source = SourceRecord {
            source_partition: Arc::new(serde_json::Map::new()),
            source_offset: serde_json::json!(1),
            topic: "t".into(),
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value: smap(&[]),
            timestamp: None,
            headers: Vec::new(),
        };
        let err = chain.apply_source(source).expect_err("offset needs a sink record");
        assert_eq!(
            err.to_string(),
            "record error: Only SinkRecord supported for [field insertion], found: org.apache.kafka.connect.source.SourceRecord"
        );
        assert!(TransformChain::empty().apply_sink(SinkRecord::from(ConnectRecord::new("x"))).expect("ok").is_some());
    }

    #[test]
    fn validation_reports_every_problem() {
        let problems = validate_transforms(&map(&[
            ("transforms", "a,b,c,d,e"),
            ("transforms.b.type", "Nope"),
            ("transforms.c.type", "MaskField$Value"),
            ("transforms.d.type", "Filter"),
            ("transforms.d.predicate", "missing"),
            ("transforms.e.type", "Filter"),
            ("transforms.e.negate", "true"),
            ("predicates", "p,q"),
            ("predicates.p.type", "TopicNameMatches"),
            ("predicates.q.type", "HasHeaderKey"),
            ("predicates.q.name", "h"),
        ]));
        let expected: Vec<(String, String)> = [
            ("predicates.p.pattern", "Missing required configuration \"predicates.p.pattern\" which has no default value."),
            ("transforms.a.type", "Missing required configuration \"transforms.a.type\" which has no default value."),
            ("transforms.b.type", "Invalid value Nope for configuration transforms.b.type: Class Nope could not be found."),
            ("transforms.c.fields", "Missing required configuration \"transforms.c.fields\" which has no default value."),
            (
                "transforms.d.predicate",
                "Invalid value missing for configuration transforms.d.predicate: Unknown predicate alias 'missing': it must be listed in 'predicates'",
            ),
            (
                "transforms.e.negate",
                "Config 'transforms.e.negate' was provided but there is no config 'transforms.e.predicate' defining a predicate to be negated.",
            ),
        ]
        .iter()
        .map(|(k, m)| (k.to_string(), m.to_string()))
        .collect();
        assert_eq!(problems, expected);

        let err = TransformChain::from_config(&map(&[("transforms", "a")])).expect_err("missing type");
        assert_eq!(
            err.to_string(),
            "invalid configuration for `transforms.a.type`: Missing required configuration \"transforms.a.type\" which has no default value."
        );
    }

    #[test]
    fn validation_reports_transform_semantics_and_types() {
        let problems = validate_transforms(&map(&[
            ("transforms", "ins,cast,ts"),
            ("transforms.ins.type", "InsertField$Value"),
            ("transforms.cast.type", "Cast$Value"),
            ("transforms.cast.spec", "a:bytes"),
            ("transforms.cast.replace.null.with.default", "maybe"),
            ("transforms.ts.type", "TimestampConverter$Value"),
            ("transforms.ts.target.type", "string"),
        ]));
        assert_eq!(
            problems,
            vec![
                ("transforms.ins.type".to_string(), "No field insertion configured".to_string()),
                (
                    "transforms.cast.replace.null.with.default".to_string(),
                    "Invalid value maybe for configuration transforms.cast.replace.null.with.default: Expected value to be either true or false"
                        .to_string()
                ),
                (
                    "transforms.ts.format".to_string(),
                    "TimestampConverter requires format option to be specified when using string timestamps".to_string()
                ),
            ]
        );
        assert!(
            validate_transforms(&map(&[
                ("transforms", "c"),
                ("transforms.c.type", "Cast$Value"),
                ("transforms.c.spec", "a:int8")
            ]))
            .is_empty()
        );
    }
}
