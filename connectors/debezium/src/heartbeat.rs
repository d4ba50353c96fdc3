//! Heartbeat records: topic `__debezium-heartbeat.<prefix>` (`topic.heartbeat.prefix`), key
//! `io.debezium.connector.common.ServerNameKey {serverName}`, value `io.debezium.connector.common.Heartbeat {ts_ms}`.

use std::sync::{Arc, OnceLock};

use sluice_connect_api::record::{Schema, SourceRecord, Value};

use crate::schema::SchemaBuilder;

pub const DEFAULT_TOPIC_PREFIX: &str = "__debezium-heartbeat";
pub const KEY_SCHEMA_NAME: &str = "io.debezium.connector.common.ServerNameKey";
pub const VALUE_SCHEMA_NAME: &str = "io.debezium.connector.common.Heartbeat";

pub fn topic(heartbeat_prefix: &str, delimiter: &str, topic_prefix: &str) -> String {
    format!("{heartbeat_prefix}{delimiter}{topic_prefix}")
}

pub fn key_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_()
            .name(KEY_SCHEMA_NAME)
            .version(1)
            .field("serverName", SchemaBuilder::string().arc())
            .arc()
    })
    .clone()
}

pub fn value_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_().name(VALUE_SCHEMA_NAME).version(1).field("ts_ms", SchemaBuilder::int64().arc()).arc()
    })
    .clone()
}

/// A heartbeat record carrying the connector's current partition and offset (committing it moves the position).
pub fn record(
    topic: String,
    server_name: &str,
    ts_ms: i64,
    source_partition: Arc<serde_json::Map<String, serde_json::Value>>,
    source_offset: serde_json::Value,
    headers: Vec<(String, Option<bytes::Bytes>)>,
) -> SourceRecord {
    SourceRecord {
        source_partition,
        source_offset,
        topic,
        partition: None,
        key_schema: Some(key_schema()),
        key: Value::Struct(vec![Value::String(server_name.to_string())]),
        value_schema: Some(value_schema()),
        value: Value::Struct(vec![Value::Int64(ts_ms)]),
        timestamp: None,
        headers,
    }
}
