//! Logical decoding messages (`pg_logical_emit_message(transactional, prefix, content)`), as Debezium's
//! `LogicalDecodingMessageMonitor` writes them: topic `<topic.prefix>.message`, key
//! `io.debezium.connector.postgresql.MessageKey {prefix}`, value `io.debezium.connector.postgresql.MessageValue`
//! with `op: "m"`, the connector's `ts_ms`, the `source` block (empty schema and table), the `transaction` block and
//! a `message` block `{prefix, content}` (content under `binary.handling.mode`). Debezium writes these records
//! without the context headers (those are added to table change events only).

use std::sync::Arc;

use sluice_connect_api::record::{Schema, Value};
use sluice_debezium::schema::{self as dbz, BinaryHandlingMode, SchemaBuilder};
use sluice_debezium::values as dv;

/// The topic of the messages: Debezium appends `.message` to the prefix whatever `topic.delimiter` is.
pub fn topic(topic_prefix: &str) -> String {
    format!("{topic_prefix}.message")
}

/// What `transaction.data_collections` counts messages as (Debezium's `LogicalDecodingMessageId`).
pub const DATA_COLLECTION: &str = "LOGICAL_DECODING_MESSAGE";

/// The key and value schemas of message records.
#[derive(Debug, Clone)]
pub struct MessageSchemas {
    pub key: Arc<Schema>,
    pub value: Arc<Schema>,
    mode: BinaryHandlingMode,
}

impl MessageSchemas {
    pub fn new(source: Arc<Schema>, mode: BinaryHandlingMode) -> Self {
        let key = SchemaBuilder::struct_()
            .name("io.debezium.connector.postgresql.MessageKey")
            .version(1)
            .field("prefix", SchemaBuilder::string().optional().arc())
            .arc();
        let block = SchemaBuilder::struct_()
            .name("io.debezium.connector.postgresql.Message")
            .version(1)
            .field("prefix", SchemaBuilder::string().optional().arc())
            .field("content", dbz::binary_schema(mode).optional().arc())
            .arc();
        let value = SchemaBuilder::struct_()
            .name("io.debezium.connector.postgresql.MessageValue")
            .version(1)
            .field("op", SchemaBuilder::string().arc())
            .field("ts_ms", SchemaBuilder::int64().optional().arc())
            .field("source", source)
            .field("transaction", sluice_debezium::envelope::transaction_block_schema())
            .field("message", block)
            .arc();
        MessageSchemas { key, value, mode }
    }

    pub fn key(&self, prefix: &str) -> Value {
        Value::Struct(vec![Value::String(prefix.to_string())])
    }

    /// The value of a message: `source` built by the caller, `transaction` when transaction metadata is on.
    pub fn value(
        &self,
        prefix: &str,
        content: &[u8],
        source: Value,
        transaction: Option<&sluice_debezium::TransactionBlock>,
        ts_ms: i64,
    ) -> Value {
        Value::Struct(vec![
            Value::String("m".into()),
            Value::Int64(ts_ms),
            source,
            transaction.map(|t| t.to_value()).unwrap_or(Value::Null),
            Value::Struct(vec![Value::String(prefix.to_string()), dv::binary_value(content, self.mode)]),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_debezium::source::source_schema_builder;

    #[test]
    fn schemas_and_values() {
        let s = MessageSchemas::new(
            source_schema_builder("io.debezium.connector.postgresql.Source").arc(),
            BinaryHandlingMode::Base64,
        );
        assert_eq!(topic("dbserver1"), "dbserver1.message");
        let names: Vec<&str> = s.value.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["op", "ts_ms", "source", "transaction", "message"]);
        let Value::Struct(v) = s.value("p", b"hi", Value::Null, None, 5) else { panic!("struct") };
        assert_eq!(v[4], Value::Struct(vec![Value::String("p".into()), Value::String("aGk=".into())]));
    }
}
