//! Helpers shared by the transforms: Kafka Connect's `Requirements` checks with their exact messages, schema
//! building like `SchemaUtil.copySchemaBasics`, schemaless map access, and a schema cache keyed by `Arc` identity.

use std::sync::{Arc, Mutex};

use crate::error::ConnectError;
use crate::record::{Field, Schema, SchemaType, Value};
pub use crate::values::{DATE_LOGICAL, DECIMAL_LOGICAL, TIME_LOGICAL, TIMESTAMP_LOGICAL, base64, field_value};

/// The Java class Kafka Connect would hold for a value, as `getClass().getName()` prints it.
pub fn java_class_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.ArrayList",
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

/// `getClass().toString()`: `class java.lang.String`.
pub fn java_class(value: &Value) -> String {
    format!("class {}", java_class_name(value))
}

pub fn data_error(message: impl Into<String>) -> ConnectError {
    ConnectError::Data(message.into())
}

/// `Requirements.requireSchema`.
pub fn require_schema<'a>(schema: Option<&'a Arc<Schema>>, purpose: &str) -> Result<&'a Arc<Schema>, ConnectError> {
    schema.ok_or_else(|| data_error(format!("Schema required for [{purpose}]")))
}

/// `Requirements.requireStruct`: the struct's values.
pub fn require_struct<'a>(value: &'a Value, purpose: &str) -> Result<&'a [Value], ConnectError> {
    match value {
        Value::Struct(values) => Ok(values),
        other => {
            Err(data_error(format!("Only Struct objects supported for [{purpose}], found: {}", java_class_name(other))))
        }
    }
}

/// `Requirements.requireMap`: the map's entries.
pub fn require_map<'a>(value: &'a Value, purpose: &str) -> Result<&'a [(Value, Value)], ConnectError> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(data_error(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            java_class_name(other)
        ))),
    }
}

/// Like [`require_map`], taking the value.
pub fn into_map(value: Value, purpose: &str) -> Result<Vec<(Value, Value)>, ConnectError> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(data_error(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            java_class_name(&other)
        ))),
    }
}

/// Like [`require_struct`], taking the value.
pub fn into_struct(value: Value, purpose: &str) -> Result<Vec<Value>, ConnectError> {
    match value {
        Value::Struct(values) => Ok(values),
        other => Err(data_error(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            java_class_name(&other)
        ))),
    }
}

fn is_key(entry_key: &Value, name: &str) -> bool {
    matches!(entry_key, Value::String(k) if k == name)
}

/// `map.get(name)` on a schemaless map (string keys).
pub fn map_get<'a>(entries: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    entries.iter().find(|(k, _)| is_key(k, name)).map(|(_, v)| v)
}

/// `map.put(name, value)`: replaces in place or appends.
pub fn map_put(entries: &mut Vec<(Value, Value)>, name: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| is_key(k, name)) {
        Some(entry) => entry.1 = value,
        None => entries.push((Value::String(name.to_string()), value)),
    }
}

/// `map.remove(name)`.
pub fn map_remove(entries: &mut Vec<(Value, Value)>, name: &str) -> Option<Value> {
    let index = entries.iter().position(|(k, _)| is_key(k, name))?;
    Some(entries.remove(index).1)
}

/// The string form of a schemaless map key (Kafka Connect keys are usually strings).
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            crate::values::write_text(None, other, &mut out);
            out
        }
    }
}

/// `SchemaUtil.copySchemaBasics`: a schema of `schema_type` with the source's name, version, doc and parameters
/// (not optional, no default, no fields).
pub fn copy_schema_basics(source: &Schema, schema_type: SchemaType) -> Schema {
    let mut schema = Schema::primitive(schema_type, false);
    schema.name = source.name.clone();
    schema.version = source.version;
    schema.doc = source.doc.clone();
    schema.parameters = source.parameters.clone();
    if schema_type == SchemaType::Array && source.schema_type == SchemaType::Array {
        schema.value_schema = source.value_schema.clone();
    }
    schema
}

/// Appends a field to a struct schema, keeping `index` consistent.
pub fn push_field(schema: &mut Schema, name: impl Into<String>, field_schema: Arc<Schema>) {
    let index = schema.fields.len();
    schema.fields.push(Field { name: name.into(), index, schema: field_schema });
}

/// A logical type schema (`Timestamp`, `Date`, `Time`): the type with its name and version 1, as Kafka Connect's
/// builders make them.
pub fn logical_schema(name: &str, optional: bool) -> Arc<Schema> {
    let schema_type = if name == TIMESTAMP_LOGICAL { SchemaType::Int64 } else { SchemaType::Int32 };
    let mut schema = Schema::primitive(schema_type, optional);
    schema.name = Some(name.to_string());
    schema.version = Some(1);
    Arc::new(schema)
}

pub fn primitive(schema_type: SchemaType, optional: bool) -> Arc<Schema> {
    Arc::new(Schema::primitive(schema_type, optional))
}

/// Kafka Connect's `ConnectSchema.toString()`: `Schema{INT32}` or `Schema{name:INT64}`.
pub fn schema_text(schema: &Schema) -> String {
    let type_name = schema.schema_type.name();
    match &schema.name {
        Some(name) => format!("Schema{{{name}:{type_name}}}"),
        None => format!("Schema{{{type_name}}}"),
    }
}

/// The schema type a schemaless value has (`ConnectSchema.schemaType(value.getClass())`).
pub fn inferred_type(value: &Value) -> Option<SchemaType> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => SchemaType::Boolean,
        Value::Int8(_) => SchemaType::Int8,
        Value::Int16(_) => SchemaType::Int16,
        Value::Int32(_) => SchemaType::Int32,
        Value::Int64(_) => SchemaType::Int64,
        Value::Float32(_) => SchemaType::Float32,
        Value::Float64(_) => SchemaType::Float64,
        Value::String(_) => SchemaType::String,
        Value::Bytes(_) => SchemaType::Bytes,
        Value::Array(_) => SchemaType::Array,
        Value::Map(_) => SchemaType::Map,
        Value::Struct(_) => SchemaType::Struct,
    })
}

/// The last input schema and the schema a transform derived from it. Sources share one `Arc` per schema, so an
/// identity check makes the common case (every record with the same schema) a pointer comparison, like Kafka
/// Connect's per-transform LRU cache.
#[derive(Default)]
pub struct SchemaCache {
    last: Mutex<Option<(Arc<Schema>, Arc<Schema>)>>,
}

impl SchemaCache {
    pub fn get_or_build(
        &self,
        input: &Arc<Schema>,
        build: impl FnOnce(&Schema) -> Result<Schema, ConnectError>,
    ) -> Result<Arc<Schema>, ConnectError> {
        if let Ok(last) = self.last.lock()
            && let Some((key, derived)) = last.as_ref()
            && Arc::ptr_eq(key, input)
        {
            return Ok(derived.clone());
        }
        let derived = Arc::new(build(input)?);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((input.clone(), derived.clone()));
        }
        Ok(derived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_java() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[1, 0]), "AQA=");
    }

    #[test]
    fn requirement_messages() {
        let err = require_struct(&Value::Int32(1), "field extraction").expect_err("not a struct");
        assert_eq!(
            err.to_string(),
            "record error: Only Struct objects supported for [field extraction], found: java.lang.Integer"
        );
        let err = require_map(&Value::Null, "flattening").expect_err("not a map");
        assert_eq!(
            err.to_string(),
            "record error: Only Map objects supported in absence of schema for [flattening], found: null"
        );
        assert_eq!(
            require_schema(None, "updating schema metadata").expect_err("none").to_string(),
            "record error: Schema required for [updating schema metadata]"
        );
    }
}
