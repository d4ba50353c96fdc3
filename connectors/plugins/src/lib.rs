//! The plugin registry of Sluice: the one explicit list of every connector, converter, header converter,
//! transform and predicate linked into the agent and the control plane ([`registry`]), and full validation of a
//! connector configuration.
//!
//! The pieces live in their own crates under `connectors/`: the connector API (`sluice-connect-api`), the
//! converters (`sluice-converters`), the transforms (`sluice-transforms`) and one crate per connector family
//! (`sluice-connector-file`, `-jdbc`, `-postgres-cdc`, `-mysql-cdc`, `-s3`). This crate re-exports the API and the
//! converters and transforms under their old paths, so the runtime reads `sluice_connectors::SinkTask`. A
//! connector family behind a cargo feature (all on by default) can be left out of a slim build.

pub mod registry;
pub mod topic_creation;

pub use sluice_connect_api::{config, connector, date_format, error, plugin, record, shared, values};
pub use sluice_converters::{converter, header_converter, primitive_converter};
pub use sluice_transforms as transforms;

pub use config::{ConfigDef, ConfigInfos, ConfigKey, ConfigMap, ConfigType, Importance};
pub use connector::{
    CommittedOffsets, Connector, ConnectorType, SinkTask, SinkTaskContext, SourceTask, SourceTaskContext,
    TopicPartition,
};
pub use converter::{ByteArrayConverter, Converter, JsonConverter, StringConverter};
pub use error::ConnectError;
pub use header_converter::{HeaderConverter, SimpleHeaderConverter};
pub use record::{Field, Schema, SchemaType, SinkRecord, SourceRecord, Value};
pub use registry::PluginInfo;
pub use sluice_converters::config_def::converter_config_def as converters_config_def;
pub use transforms::{ConnectRecord, Predicate, TransformChain, TransformFailure, Transformation};
