//! The Sluice connector API and the built-in plugins.
//!
//! Modelled on Kafka Connect's: a [`Connector`] validates its configuration and splits the work into task
//! configurations; a [`SourceTask`] polls [`SourceRecord`]s that carry a source partition and offset; a
//! [`SinkTask`] receives [`SinkRecord`]s and flushes them. Converters turn schema'd [`Value`]s into bytes and back.
//! Every plugin is registered in one explicit table, [`registry`], by class name and by Kafka Connect's aliases.

pub mod config;
pub mod connector;
pub mod converter;
pub mod error;
pub mod file;
pub mod header_converter;
pub mod primitive_converter;
pub mod record;
pub mod registry;
pub mod topic_creation;
pub mod transforms;

pub use config::{ConfigDef, ConfigInfos, ConfigKey, ConfigMap, ConfigType, Importance};
pub use connector::{
    Connector, ConnectorType, SinkTask, SinkTaskContext, SourceTask, SourceTaskContext, TopicPartition,
};
pub use converter::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use error::ConnectError;
pub use header_converter::{HeaderConverter, SimpleHeaderConverter};
pub use record::{Field, Schema, SchemaType, SinkRecord, SourceRecord, Value};
pub use registry::PluginInfo;
pub use transforms::{ConnectRecord, Predicate, TransformChain, TransformFailure, Transformation};
