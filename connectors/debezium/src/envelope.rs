//! The change event: `<topic>.Envelope` (version 2) with `before`/`after` (`<topic>.Value`), `source`,
//! `transaction` (`event.block`), `op` and the processing time `ts_ms`/`ts_us`/`ts_ns`; `<topic>.Key`; tombstones.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_connect_api::record::{Schema, SourceRecord, Value};

use crate::schema::SchemaBuilder;

/// The envelope schema's version.
pub const ENVELOPE_VERSION: i32 = 2;
/// The `transaction` block's struct name.
pub const TRANSACTION_BLOCK_SCHEMA_NAME: &str = "event.block";

/// The `op` of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    Truncate,
    Message,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "r" => Op::Read,
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }
}

/// The processing time of an event (envelope `ts_ms`/`ts_us`/`ts_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingTime {
    pub nanos: i64,
}

impl ProcessingTime {
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        ProcessingTime { nanos: d.as_nanos() as i64 }
    }
    pub fn from_nanos(nanos: i64) -> Self {
        ProcessingTime { nanos }
    }
    pub fn ms(self) -> i64 {
        self.nanos.div_euclid(1_000_000)
    }
    pub fn us(self) -> i64 {
        self.nanos.div_euclid(1_000)
    }
    pub fn ns(self) -> i64 {
        self.nanos
    }
}

/// The `transaction` block of an event (`provide.transaction.metadata=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionBlock {
    pub id: String,
    pub total_order: i64,
    pub data_collection_order: i64,
}

impl TransactionBlock {
    pub fn to_value(&self) -> Value {
        Value::Struct(vec![
            Value::String(self.id.clone()),
            Value::Int64(self.total_order),
            Value::Int64(self.data_collection_order),
        ])
    }
}

/// `event.block` v1 `{id: string, total_order: int64, data_collection_order: int64}`, optional.
pub fn transaction_block_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        SchemaBuilder::struct_()
            .name(TRANSACTION_BLOCK_SCHEMA_NAME)
            .version(1)
            .optional()
            .field("id", SchemaBuilder::string().arc())
            .field("total_order", SchemaBuilder::int64().arc())
            .field("data_collection_order", SchemaBuilder::int64().arc())
            .arc()
    })
    .clone()
}

fn optional_int64() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| SchemaBuilder::int64().optional().arc()).clone()
}

/// `<topic>.Key`: a required struct of the key columns.
pub fn key_schema(topic: &str, fields: impl IntoIterator<Item = (String, Arc<Schema>)>) -> Arc<Schema> {
    let mut b = SchemaBuilder::struct_().name(format!("{topic}.Key"));
    for (name, schema) in fields {
        b = b.field(name, schema);
    }
    b.arc()
}

/// `<topic>.Value`: the optional row struct used for `before` and `after`.
pub fn row_schema(topic: &str, fields: impl IntoIterator<Item = (String, Arc<Schema>)>) -> Arc<Schema> {
    let mut b = SchemaBuilder::struct_().name(format!("{topic}.Value")).optional();
    for (name, schema) in fields {
        b = b.field(name, schema);
    }
    b.arc()
}

/// `<topic>.Envelope` v2 around a row schema and a source block schema, fields in Debezium's order.
pub fn envelope_schema(topic: &str, row: Arc<Schema>, source: Arc<Schema>) -> Arc<Schema> {
    SchemaBuilder::struct_()
        .name(format!("{topic}.Envelope"))
        .version(ENVELOPE_VERSION)
        .field("before", row.clone())
        .field("after", row)
        .field("source", source)
        .field("transaction", transaction_block_schema())
        .field("op", SchemaBuilder::string().arc())
        .field("ts_ms", optional_int64())
        .field("ts_us", optional_int64())
        .field("ts_ns", optional_int64())
        .arc()
}

/// The schemas of one table's events.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub topic: String,
    /// `None` for a table without a key (null key, null key schema).
    pub key_schema: Option<Arc<Schema>>,
    pub row_schema: Arc<Schema>,
    pub schema: Arc<Schema>,
}

impl Envelope {
    /// Builds the schemas; `key_fields` empty means no key.
    pub fn new(
        topic: &str,
        key_fields: Vec<(String, Arc<Schema>)>,
        row_fields: Vec<(String, Arc<Schema>)>,
        source: Arc<Schema>,
    ) -> Self {
        let key_schema = if key_fields.is_empty() { None } else { Some(key_schema(topic, key_fields)) };
        let row_schema = row_schema(topic, row_fields);
        let schema = envelope_schema(topic, row_schema.clone(), source);
        Envelope { topic: topic.to_string(), key_schema, row_schema, schema }
    }

    /// The envelope value. `before`/`after` are `Value::Struct` rows or `Value::Null`.
    pub fn value(
        &self,
        before: Value,
        after: Value,
        source: Value,
        transaction: Option<&TransactionBlock>,
        op: Op,
        ts: ProcessingTime,
    ) -> Value {
        Value::Struct(vec![
            before,
            after,
            source,
            transaction.map(TransactionBlock::to_value).unwrap_or(Value::Null),
            Value::String(op.code().to_string()),
            Value::Int64(ts.ms()),
            Value::Int64(ts.us()),
            Value::Int64(ts.ns()),
        ])
    }
}

/// The tombstone that follows a delete: same topic, partition, key and offset; null value and value schema.
pub fn tombstone(delete: &SourceRecord) -> SourceRecord {
    SourceRecord {
        source_partition: delete.source_partition.clone(),
        source_offset: delete.source_offset.clone(),
        topic: delete.topic.clone(),
        partition: delete.partition,
        key_schema: delete.key_schema.clone(),
        key: delete.key.clone(),
        value_schema: None,
        value: Value::Null,
        timestamp: delete.timestamp,
        headers: delete.headers.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_field_order() {
        let source = SchemaBuilder::struct_().name("x.Source").arc();
        let e = Envelope::new("p.s.t", vec![], vec![("id".into(), SchemaBuilder::int32().arc())], source);
        let names: Vec<_> = e.schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"]);
        assert_eq!(e.schema.name.as_deref(), Some("p.s.t.Envelope"));
        assert_eq!(e.schema.version, Some(2));
        assert!(e.key_schema.is_none());
        assert!(e.row_schema.optional);
    }
}
