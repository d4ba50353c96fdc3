//! The Sluice connector API, modelled on Kafka Connect's `connect-api`: a [`Connector`] validates its
//! configuration and splits the work into task configurations; a [`SourceTask`] polls [`SourceRecord`]s that carry
//! a source partition and offset; a [`SinkTask`] receives [`SinkRecord`]s and makes them durable. Records carry
//! schema'd [`Value`]s; [`values`] renders them as Kafka Connect's `Values` and `toString()` do.
//!
//! Every connector crate depends on this crate and exports its [`ConnectorPlugin`]s; the runtime (batching,
//! backpressure, retries, offsets, converters, transforms, dead letter queue) lives elsewhere.

pub mod config;
pub mod connector;
pub mod date_format;
pub mod error;
pub mod plugin;
pub mod record;
pub mod shared;
pub mod values;

pub use config::{ConfigDef, ConfigInfos, ConfigKey, ConfigMap, ConfigType, Importance};
pub use connector::{
    CommittedOffsets, Connector, ConnectorType, SinkTask, SinkTaskContext, SourceTask, SourceTaskContext,
    TopicPartition,
};
pub use error::ConnectError;
pub use plugin::{ConnectorPlugin, KAFKA_CONNECT_VERSION, PLUGIN_VERSION};
pub use record::{Field, Schema, SchemaType, SinkRecord, SourceRecord, Value};
pub use shared::{SharedState, SharedStateWriter, SharedValues};
