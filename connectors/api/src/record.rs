//! The record model: schema'd keys and values like Kafka Connect's `Schema`/`Struct`, so converters and
//! transforms can work on fields.

use std::sync::Arc;

use bytes::Bytes;

/// The type of a schema, with Kafka Connect's names (`INT32`, `STRUCT`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// Kafka Connect's `Schema.Type` name (`INT32`, `FLOAT64`, ...), as its error messages print it.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "INT8",
            SchemaType::Int16 => "INT16",
            SchemaType::Int32 => "INT32",
            SchemaType::Int64 => "INT64",
            SchemaType::Float32 => "FLOAT32",
            SchemaType::Float64 => "FLOAT64",
            SchemaType::Boolean => "BOOLEAN",
            SchemaType::String => "STRING",
            SchemaType::Bytes => "BYTES",
            SchemaType::Array => "ARRAY",
            SchemaType::Map => "MAP",
            SchemaType::Struct => "STRUCT",
        }
    }
}

/// A Kafka Connect schema. Logical types (Decimal, Date, Time, Timestamp) are expressed by `name` as in Connect.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// Schema parameters in insertion order, as Kafka Connect keeps them (a `LinkedHashMap`); the JSON envelope
    /// writes them in this order, so sorting them would change the bytes.
    pub parameters: Option<Vec<(String, String)>>,
    pub default: Option<Box<Value>>,
    /// Fields of a struct schema, in order.
    pub fields: Vec<Field>,
    /// Key schema of a map.
    pub key_schema: Option<Arc<Schema>>,
    /// Value schema of a map or element schema of an array.
    pub value_schema: Option<Arc<Schema>>,
}

impl Schema {
    /// A primitive schema of the given type.
    pub fn primitive(schema_type: SchemaType, optional: bool) -> Self {
        Schema {
            schema_type,
            optional,
            name: None,
            version: None,
            doc: None,
            parameters: None,
            default: None,
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    /// The shared `STRING` schema (not optional) that FileStreamSource uses for its values.
    pub fn string() -> Arc<Schema> {
        static STRING: std::sync::OnceLock<Arc<Schema>> = std::sync::OnceLock::new();
        STRING.get_or_init(|| Arc::new(Schema::primitive(SchemaType::String, false))).clone()
    }

    /// The value of a schema parameter (`scale` of a Decimal, ...).
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Arc<Schema>,
}

/// A value, schema'd or schemaless.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Bytes),
    Array(Vec<Value>),
    /// Map entries in order; keys may be any value (schemaless maps use strings).
    Map(Vec<(Value, Value)>),
    /// Struct values in the order of the schema's fields.
    Struct(Vec<Value>),
}

/// A record produced by a source task.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Where the record came from, e.g. `{"filename": "/tmp/input.txt"}`. Shared by all records of a partition.
    pub source_partition: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Position after this record, e.g. `{"position": 1234}`.
    pub source_offset: serde_json::Value,
    pub topic: String,
    pub partition: Option<i32>,
    pub key_schema: Option<Arc<Schema>>,
    pub key: Value,
    pub value_schema: Option<Arc<Schema>>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A record consumed from Kafka for a sink task.
#[derive(Debug, Clone)]
pub struct SinkRecord {
    /// Shared by the records of a consumed batch (one allocation per batch and topic, not one per record).
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key_schema: Option<Arc<Schema>>,
    pub key: Value,
    pub value_schema: Option<Arc<Schema>>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// The canonical string form of a source partition (JSON with sorted keys), used as the key of committed offsets.
pub fn partition_key(partition: &serde_json::Map<String, serde_json::Value>) -> String {
    fn canonical(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    canonical(&serde_json::Value::Object(partition.clone())).to_string()
}
