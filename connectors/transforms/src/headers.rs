//! The header transforms: DropHeaders, InsertHeader, and HeaderFrom (copy or move fields into headers). Header
//! values are bytes here; a field becomes the text Kafka Connect's `SimpleHeaderConverter` would write for it.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ConfigDef, ConfigType, Importance};
use crate::error::ConnectError;
use crate::record::{Schema, SchemaType, Value};
use crate::values::append_text;

use super::plugin_config::{PluginConfig, REPLACE_NULL_WITH_DEFAULT, key, replace_null_with_default_key};
use super::support::{
    SchemaCache, copy_schema_basics, data_error, field_value, into_map, into_struct, map_get, map_remove, push_field,
};
use super::{ConnectRecord, Operand, Transformation};

const HEADERS: &str = "headers";
const FIELDS: &str = "fields";
const OPERATION: &str = "operation";
const HEADER: &str = "header";
const VALUE_LITERAL: &str = "value.literal";

// ---------------------------------------------------------------------------------------------------------------
// DropHeaders

pub fn drop_headers_config_def() -> ConfigDef {
    ConfigDef::new().define(key(
        HEADERS,
        ConfigType::List,
        None,
        Importance::High,
        "The name of the headers to be removed.",
    ))
}

pub fn build_drop_headers(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(DropHeaders { headers: c.non_empty_list(HEADERS)? }))
}

struct DropHeaders {
    headers: Vec<String>,
}

impl Transformation for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        record.headers.retain(|(name, _)| !self.headers.contains(name));
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// InsertHeader

pub fn insert_header_config_def() -> ConfigDef {
    ConfigDef::new().define(key(HEADER, ConfigType::String, None, Importance::High, "The name of the header.")).define(
        key(
            VALUE_LITERAL,
            ConfigType::String,
            None,
            Importance::High,
            "The literal value that is to be set as the header value on all records.",
        ),
    )
}

pub fn build_insert_header(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(InsertHeader {
        header: c.string(HEADER).unwrap_or_default(),
        value: Bytes::from(c.string(VALUE_LITERAL).unwrap_or_default()),
    }))
}

struct InsertHeader {
    header: String,
    value: Bytes,
}

impl Transformation for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        record.headers.push((self.header.clone(), Some(self.value.clone())));
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// HeaderFrom

pub fn header_from_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            FIELDS,
            ConfigType::List,
            None,
            Importance::High,
            "Field names in the record whose values are to be copied or moved to headers.",
        ))
        .define(key(
            HEADERS,
            ConfigType::List,
            None,
            Importance::High,
            "Header names, in the same order as the field names listed in the fields configuration property.",
        ))
        // Checked when built: Kafka Connect's `ValidString` is case-sensitive, unlike `Validator::OneOf`.
        .define(key(
            OPERATION,
            ConfigType::String,
            None,
            Importance::High,
            "Either <code>move</code> if the fields are to be moved to the headers (removed from the key/value), or <code>copy</code> if the fields are to be copied to the headers (retained in the key/value).",
        ))
        .define(replace_null_with_default_key())
}

pub fn build_header_from(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let fields = c.non_empty_list(FIELDS)?;
    let headers = c.non_empty_list(HEADERS)?;
    if fields.len() != headers.len() {
        return Err(c.error(HEADERS, "'fields' config must have the same number of elements as 'headers' config."));
    }
    let operation = c.string(OPERATION).unwrap_or_default();
    let move_fields = match operation.as_str() {
        "move" => true,
        "copy" => false,
        other => return Err(c.invalid(OPERATION, other, "String must be one of: move, copy")),
    };
    Ok(Box::new(HeaderFrom {
        operand,
        fields,
        headers,
        move_fields,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    }))
}

struct HeaderFrom {
    operand: Operand,
    fields: Vec<String>,
    headers: Vec<String>,
    move_fields: bool,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl HeaderFrom {
    fn purpose(&self) -> &'static str {
        if self.move_fields { "header move" } else { "header copy" }
    }
}

impl Transformation for HeaderFrom {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                let mut entries = into_map(value, self.purpose())?;
                for (field, header) in self.fields.iter().zip(&self.headers) {
                    let value = if self.move_fields {
                        map_remove(&mut entries, field)
                    } else {
                        map_get(&entries, field).cloned()
                    };
                    record.headers.push((header.clone(), header_bytes(None, &value.unwrap_or(Value::Null))));
                }
                self.operand.set(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let values = into_struct(value, self.purpose())?;
                for (field_name, header) in self.fields.iter().zip(&self.headers) {
                    let field = schema
                        .field(field_name)
                        .ok_or_else(|| data_error(format!("Field does not exist: {field_name}")))?;
                    let value = field_value(field, &values, self.replace_null_with_default);
                    record.headers.push((header.clone(), header_bytes(Some(&field.schema), &value)));
                }
                if self.move_fields {
                    let updated = self.cache.get_or_build(&schema, |s| {
                        let mut out = copy_schema_basics(s, SchemaType::Struct);
                        for field in s.fields.iter().filter(|f| !self.fields.contains(&f.name)) {
                            push_field(&mut out, field.name.clone(), field.schema.clone());
                        }
                        Ok(out)
                    })?;
                    let kept = schema
                        .fields
                        .iter()
                        .filter(|f| !self.fields.contains(&f.name))
                        .map(|f| field_value(f, &values, self.replace_null_with_default))
                        .collect();
                    self.operand.set(&mut record, Some(updated), Value::Struct(kept));
                } else {
                    self.operand.set(&mut record, Some(schema), Value::Struct(values));
                }
            }
        }
        Ok(Some(record))
    }
}

/// The bytes `SimpleHeaderConverter` writes for a header value (`Values.convertToString`); null stays null.
pub fn header_bytes(schema: Option<&Arc<Schema>>, value: &Value) -> Option<Bytes> {
    if matches!(value, Value::Null) {
        return None;
    }
    let mut out = String::new();
    append_text(schema.map(|s| &**s), value, false, &mut out);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn header(value: &str) -> Option<Bytes> {
        Some(Bytes::from(value.to_string()))
    }

    #[test]
    fn drop_headers() {
        let t = transform("DropHeaders", &[("headers", "a, b")]);
        let mut record = with_value(None, s("v"));
        record.headers =
            vec![("a".into(), header("1")), ("c".into(), header("3")), ("b".into(), None), ("a".into(), None)];
        assert_eq!(apply(&*t, record).headers, vec![("c".to_string(), header("3"))]);
        assert_eq!(
            build_error("DropHeaders", &[("headers", "")]),
            "Invalid value [] for configuration headers: Empty list"
        );
    }

    #[test]
    fn insert_header() {
        let t = transform("InsertHeader", &[("header", "source"), ("value.literal", "db-1")]);
        let mut record = with_value(None, s("v"));
        record.headers = vec![("source".into(), header("old"))];
        assert_eq!(
            apply(&*t, record).headers,
            vec![("source".to_string(), header("old")), ("source".to_string(), header("db-1"))]
        );
        assert_eq!(
            build_error("InsertHeader", &[("header", "h")]),
            "Missing required configuration \"value.literal\" which has no default value."
        );
    }

    #[test]
    fn header_from_schemaless_move_and_copy() {
        let t = transform("HeaderFrom$Value", &[("fields", "a,b"), ("headers", "ha,hb"), ("operation", "move")]);
        let value = smap(&[("a", Value::Int32(1)), ("b", s("x")), ("c", Value::Boolean(true))]);
        let out = apply(&*t, with_value(None, value.clone()));
        assert_eq!(out.value, smap(&[("c", Value::Boolean(true))]));
        assert_eq!(out.headers, vec![("ha".to_string(), header("1")), ("hb".to_string(), header("x"))]);

        let t = transform("HeaderFrom$Value", &[("fields", "a,missing"), ("headers", "ha,hm"), ("operation", "copy")]);
        let out = apply(&*t, with_value(None, value.clone()));
        assert_eq!(out.value, value);
        assert_eq!(out.headers, vec![("ha".to_string(), header("1")), ("hm".to_string(), None)]);
    }

    #[test]
    fn header_from_schemad() {
        let inner = struct_schema(&[("n", schema(SchemaType::String)), ("l", schema(SchemaType::Int64))]);
        let value_schema = struct_schema(&[("id", schema(SchemaType::Int32)), ("nested", inner)]);
        let value = Value::Struct(vec![Value::Int32(5), Value::Struct(vec![s("a\"b"), Value::Int64(2)])]);
        let t = transform("HeaderFrom$Key", &[("fields", "nested"), ("headers", "h"), ("operation", "move")]);
        let out = apply(&*t, with_key(Some(value_schema.clone()), value.clone()));
        assert_eq!(out.key, Value::Struct(vec![Value::Int32(5)]));
        let key_schema = out.key_schema.expect("schema");
        assert_eq!(key_schema.fields.len(), 1);
        assert_eq!(out.headers, vec![("h".to_string(), header(r#"{"n":"a\"b","l":2}"#))]);

        let t = transform("HeaderFrom$Value", &[("fields", "id"), ("headers", "h"), ("operation", "copy")]);
        let out = apply(&*t, with_value(Some(value_schema.clone()), value.clone()));
        assert_eq!(out.value, value);
        assert_eq!(out.headers, vec![("h".to_string(), header("5"))]);
        assert_eq!(
            apply_error(&*t, with_value(Some(value_schema), Value::Int32(1))),
            "Only Struct objects supported for [header copy], found: java.lang.Integer"
        );
    }

    #[test]
    fn header_from_config_errors() {
        assert_eq!(
            build_error("HeaderFrom$Value", &[("fields", "a,b"), ("headers", "h"), ("operation", "copy")]),
            "'fields' config must have the same number of elements as 'headers' config."
        );
        assert_eq!(
            build_error("HeaderFrom$Value", &[("fields", "a"), ("headers", "h"), ("operation", "steal")]),
            "Invalid value steal for configuration operation: String must be one of: move, copy"
        );
    }
}
