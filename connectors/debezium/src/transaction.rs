//! The transaction metadata topic (`provide.transaction.metadata=true`): `<prefix>.transaction`, key
//! `io.debezium.connector.common.TransactionMetadataKey {id}`, value
//! `io.debezium.connector.common.TransactionMetadataValue {status, id, event_count, data_collections, ts_ms}`.

use std::sync::{Arc, OnceLock};

use sluice_connect_api::record::{Schema, Value};

use crate::schema::SchemaBuilder;

pub const KEY_SCHEMA_NAME: &str = "io.debezium.connector.common.TransactionMetadataKey";
pub const VALUE_SCHEMA_NAME: &str = "io.debezium.connector.common.TransactionMetadataValue";
pub const COLLECTION_SCHEMA_NAME: &str = "event.collection";

/// `<prefix>.transaction` (`topic.transaction` = `transaction`).
pub fn topic(prefix: &str, delimiter: &str, name: &str) -> String {
    format!("{prefix}{delimiter}{name}")
}

pub fn key_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_().name(KEY_SCHEMA_NAME).version(1).field("id", SchemaBuilder::string().arc()).arc()
    })
    .clone()
}

pub fn collection_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_()
            .name(COLLECTION_SCHEMA_NAME)
            .version(1)
            .optional()
            .field("data_collection", SchemaBuilder::string().arc())
            .field("event_count", SchemaBuilder::int64().arc())
            .arc()
    })
    .clone()
}

pub fn value_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_()
            .name(VALUE_SCHEMA_NAME)
            .version(1)
            .field("status", SchemaBuilder::string().arc())
            .field("id", SchemaBuilder::string().arc())
            .field("event_count", SchemaBuilder::int64().optional().arc())
            .field("data_collections", SchemaBuilder::array(collection_schema()).optional().arc())
            .field("ts_ms", SchemaBuilder::int64().arc())
            .arc()
    })
    .clone()
}

pub fn key(id: &str) -> Value {
    Value::Struct(vec![Value::String(id.to_string())])
}

/// The BEGIN value.
pub fn begin_value(id: &str, ts_ms: i64) -> Value {
    Value::Struct(vec![
        Value::String("BEGIN".into()),
        Value::String(id.to_string()),
        Value::Null,
        Value::Null,
        Value::Int64(ts_ms),
    ])
}

/// The END value with per-collection counts (in first-seen order).
pub fn end_value(id: &str, ts_ms: i64, event_count: i64, collections: &[(String, i64)]) -> Value {
    Value::Struct(vec![
        Value::String("END".into()),
        Value::String(id.to_string()),
        Value::Int64(event_count),
        Value::Array(
            collections.iter().map(|(c, n)| Value::Struct(vec![Value::String(c.clone()), Value::Int64(*n)])).collect(),
        ),
        Value::Int64(ts_ms),
    ])
}

/// Counts events of one transaction, giving the `transaction` block of each event and the END counts.
#[derive(Debug, Clone, Default)]
pub struct TransactionCounter {
    pub id: String,
    pub total: i64,
    pub per_collection: Vec<(String, i64)>,
}

impl TransactionCounter {
    pub fn begin(id: String) -> Self {
        TransactionCounter { id, total: 0, per_collection: Vec::new() }
    }

    /// Counts one event of `collection` and returns its block.
    pub fn next(&mut self, collection: &str) -> crate::envelope::TransactionBlock {
        self.total += 1;
        let n = match self.per_collection.iter_mut().find(|(c, _)| c == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_collection.push((collection.to_string(), 1));
                1
            }
        };
        crate::envelope::TransactionBlock { id: self.id.clone(), total_order: self.total, data_collection_order: n }
    }
}
