//! Converters between Connect values and the bytes in Kafka: `StringConverter`, `ByteArrayConverter` and
//! `JsonConverter` (with and without the `schemas.enable` envelope), under Kafka Connect's class names.
//!
//! The JSON is written by hand rather than through `serde_json` because Kafka Connect users compare bytes: field
//! order (`schema` before `payload`, `type` first), Jackson's escaping and Java's number formatting (`1.0`, `1.0E10`)
//! must match exactly.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::config::ConfigMap;
use crate::error::ConnectError;
use crate::json_read::{SchemaCache, read_envelope};
use crate::record::{Field, Schema, SchemaType, Value};
pub use sluice_connect_api::values::{java_double_string, java_float_string, write_big_decimal, write_text};

/// Turns Connect data into bytes for Kafka and back. One instance per task and per key/value side.
pub trait Converter: Send + Sync {
    /// `config` holds the converter's own keys with the `key.converter.` / `value.converter.` prefix stripped.
    fn configure(&mut self, config: &ConfigMap, is_key: bool) -> Result<(), ConnectError>;
    /// Serializes into `out` (cleared first), so the caller can reuse its buffer; returns `false` for a null.
    // Named after Kafka Connect's `fromConnectData`; it converts *from* Connect data, it is not a constructor.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError>;
    /// Deserializes bytes read from Kafka (`None` is a null/tombstone).
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError>;
}

fn optional_string_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| Arc::new(Schema::primitive(SchemaType::String, true))).clone()
}

fn optional_bytes_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| Arc::new(Schema::primitive(SchemaType::Bytes, true))).clone()
}

/// Reads a boolean converter setting the way Kafka's `ConfigDef` does (case-insensitive `true`/`false`).
fn bool_setting(config: &ConfigMap, key: &str, default: bool) -> Result<bool, ConnectError> {
    match config.get(key).map(|v| v.trim()) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => {
            Err(ConnectError::config(key, format!("Invalid value {v}: Expected value to be either true or false")))
        }
    }
}

/// Kafka Connect's `StringConverter`: values are rendered with their text form (like Java's `toString()`), bytes are
/// read back as an optional string. Only UTF-8 is supported.
#[derive(Debug, Default, Clone)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn configure(&mut self, config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        // Kafka Connect's key is `converter.encoding`; the serializer's own keys are honoured too.
        for key in ["converter.encoding", "encoding", "serializer.encoding", "deserializer.encoding"] {
            if let Some(encoding) = config.get(key) {
                let normalized = encoding.trim().to_ascii_uppercase().replace(['-', '_'], "");
                if normalized != "UTF8" {
                    return Err(ConnectError::config(
                        key,
                        format!("unsupported encoding {encoding:?}: Sluice's StringConverter supports only UTF-8"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        match value {
            Value::Null => Ok(false),
            Value::String(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(true)
            }
            other => {
                let mut text = String::new();
                write_text(schema, other, &mut text);
                out.extend_from_slice(text.as_bytes());
                Ok(true)
            }
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let value = match bytes {
            None => Value::Null,
            // Java decodes malformed UTF-8 with replacement characters too.
            Some(bytes) => Value::String(match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(bytes).into_owned(),
            }),
        };
        Ok((Some(optional_string_schema()), value))
    }
}

/// Kafka Connect's `ByteArrayConverter`: passes `BYTES` through untouched.
#[derive(Debug, Default, Clone)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn configure(&mut self, _config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        if let Some(schema) = schema
            && schema.schema_type != SchemaType::Bytes
        {
            return Err(ConnectError::Data(format!(
                "Invalid schema type for ByteArrayConverter: {}",
                schema.schema_type.name()
            )));
        }
        match value {
            Value::Null => Ok(false),
            Value::Bytes(bytes) => {
                out.extend_from_slice(bytes);
                Ok(true)
            }
            other => Err(ConnectError::Data(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                value_kind(other)
            ))),
        }
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let value = bytes.map_or(Value::Null, |b| Value::Bytes(Bytes::copy_from_slice(b)));
        Ok((Some(optional_bytes_schema()), value))
    }
}

/// Kafka Connect's `JsonConverter`. With `schemas.enable` (the default) every message is an envelope
/// `{"schema":...,"payload":...}`; without it, plain JSON whose schema is inferred on read.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    schemas_enable: bool,
    replace_null_with_default: bool,
    /// Envelope schemas already read (`schemas.cache.size`).
    schemas: SchemaCache,
}

/// Kafka Connect's `schemas.cache.size` default.
const SCHEMAS_CACHE_SIZE: usize = 1000;

impl Default for JsonConverter {
    fn default() -> Self {
        JsonConverter {
            schemas_enable: true,
            replace_null_with_default: true,
            schemas: SchemaCache::new(SCHEMAS_CACHE_SIZE),
        }
    }
}

impl JsonConverter {
    /// A converter with `schemas.enable` set as given (handy for tests and the runtime's own defaults).
    pub fn new(schemas_enable: bool) -> Self {
        JsonConverter { schemas_enable, ..JsonConverter::default() }
    }
}

impl Converter for JsonConverter {
    fn configure(&mut self, config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        self.schemas_enable = bool_setting(config, "schemas.enable", true)?;
        self.replace_null_with_default = bool_setting(config, "replace.null.with.default", true)?;
        if let Some(format) = config.get("decimal.format")
            && !format.trim().eq_ignore_ascii_case("BASE64")
        {
            return Err(ConnectError::config(
                "decimal.format",
                format!("unsupported value {format:?}: Sluice's JsonConverter supports only BASE64 decimals"),
            ));
        }
        if let Some(size) = config.get("schemas.cache.size") {
            let size = size.trim().parse::<i32>().map_err(|_| {
                ConnectError::config("schemas.cache.size", format!("Invalid value {size}: Not a number of type INT"))
            })?;
            self.schemas = SchemaCache::new(usize::try_from(size).unwrap_or(0));
        }
        Ok(())
    }

    fn from_connect(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        if schema.is_none() && matches!(value, Value::Null) {
            return Ok(false);
        }
        let mut writer = JsonWriter { out, replace_null_with_default: self.replace_null_with_default };
        if self.schemas_enable {
            writer.out.extend_from_slice(b"{\"schema\":");
            match schema {
                Some(schema) => writer.schema(schema, None)?,
                None => writer.out.extend_from_slice(b"null"),
            }
            writer.out.extend_from_slice(b",\"payload\":");
            writer.value(schema, value)?;
            writer.out.push(b'}');
        } else {
            writer.value(schema, value)?;
        }
        Ok(true)
    }

    fn to_connect(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let Some(bytes) = bytes else { return Ok((None, Value::Null)) };
        if self.schemas_enable
            && let Some(read) = read_envelope(&self.schemas, bytes)
        {
            return Ok(read);
        }
        let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            ConnectError::Data(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if !self.schemas_enable {
            return Ok((None, json_to_connect(None, &json)?));
        }
        let envelope = match &json {
            serde_json::Value::Object(map)
                if map.len() == 2 && map.contains_key("schema") && map.contains_key("payload") =>
            {
                map
            }
            _ => {
                return Err(ConnectError::Data(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".to_string(),
                ));
            }
        };
        let schema = match &envelope["schema"] {
            serde_json::Value::Null => None,
            json_schema => Some(Arc::new(json_to_schema(json_schema)?)),
        };
        let value = json_to_connect(schema.as_deref(), &envelope["payload"])?;
        Ok((schema, value))
    }
}

/// The JSON type name of a schema type, as in Kafka Connect's `JsonSchema`.
fn json_type_name(t: SchemaType) -> &'static str {
    match t {
        SchemaType::Int8 => "int8",
        SchemaType::Int16 => "int16",
        SchemaType::Int32 => "int32",
        SchemaType::Int64 => "int64",
        SchemaType::Float32 => "float",
        SchemaType::Float64 => "double",
        SchemaType::Boolean => "boolean",
        SchemaType::String => "string",
        SchemaType::Bytes => "bytes",
        SchemaType::Array => "array",
        SchemaType::Map => "map",
        SchemaType::Struct => "struct",
    }
}

fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "Boolean",
        Value::Int8(_) => "Byte",
        Value::Int16(_) => "Short",
        Value::Int32(_) => "Integer",
        Value::Int64(_) => "Long",
        Value::Float32(_) => "Float",
        Value::Float64(_) => "Double",
        Value::String(_) => "String",
        Value::Bytes(_) => "byte[]",
        Value::Array(_) => "List",
        Value::Map(_) => "Map",
        Value::Struct(_) => "Struct",
    }
}

/// Writes Connect data as Jackson would: compact, fields in schema order.
struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    replace_null_with_default: bool,
}

impl JsonWriter<'_> {
    /// A schema as Kafka Connect's `asJsonSchema` builds it: `type`, then `items` / `keys`,`values` / `fields`,
    /// `optional`, `name`, `version`, `doc`, `parameters`, `default`; a struct field adds `field` last.
    fn schema(&mut self, schema: &Schema, field_name: Option<&str>) -> Result<(), ConnectError> {
        self.out.extend_from_slice(b"{\"type\":\"");
        self.out.extend_from_slice(json_type_name(schema.schema_type).as_bytes());
        self.out.push(b'"');
        match schema.schema_type {
            SchemaType::Array => {
                self.out.extend_from_slice(b",\"items\":");
                let items = schema.value_schema.as_deref().ok_or_else(|| missing_part("array", "element"))?;
                self.schema(items, None)?;
            }
            SchemaType::Map => {
                self.out.extend_from_slice(b",\"keys\":");
                self.schema(schema.key_schema.as_deref().ok_or_else(|| missing_part("map", "key"))?, None)?;
                self.out.extend_from_slice(b",\"values\":");
                self.schema(schema.value_schema.as_deref().ok_or_else(|| missing_part("map", "value"))?, None)?;
            }
            SchemaType::Struct => {
                self.out.extend_from_slice(b",\"fields\":[");
                for (i, field) in schema.fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.schema(&field.schema, Some(&field.name))?;
                }
                self.out.push(b']');
            }
            _ => {}
        }
        self.out.extend_from_slice(if schema.optional { b",\"optional\":true" } else { b",\"optional\":false" });
        if let Some(name) = &schema.name {
            self.out.extend_from_slice(b",\"name\":");
            write_json_string(self.out, name);
        }
        if let Some(version) = schema.version {
            // Writing to a Vec cannot fail.
            let _ = write!(VecWriter(self.out), ",\"version\":{version}");
        }
        if let Some(doc) = &schema.doc {
            self.out.extend_from_slice(b",\"doc\":");
            write_json_string(self.out, doc);
        }
        if let Some(parameters) = &schema.parameters {
            self.out.extend_from_slice(b",\"parameters\":{");
            for (i, (k, v)) in parameters.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                write_json_string(self.out, k);
                self.out.push(b':');
                write_json_string(self.out, v);
            }
            self.out.push(b'}');
        }
        if let Some(default) = &schema.default {
            self.out.extend_from_slice(b",\"default\":");
            self.value(Some(schema), default)?;
        }
        if let Some(field_name) = field_name {
            self.out.extend_from_slice(b",\"field\":");
            write_json_string(self.out, field_name);
        }
        self.out.push(b'}');
        Ok(())
    }

    /// A value, checked against its schema when there is one (Kafka Connect's `convertToJson`).
    fn value(&mut self, schema: Option<&Schema>, value: &Value) -> Result<(), ConnectError> {
        let Some(schema) = schema else { return self.schemaless(value) };
        if matches!(value, Value::Null) {
            return match &schema.default {
                Some(default) if self.replace_null_with_default => self.value(Some(schema), default),
                _ if schema.optional => {
                    self.out.extend_from_slice(b"null");
                    Ok(())
                }
                _ => Err(ConnectError::Data(
                    "Conversion error: null value for field that is required and has no default value".to_string(),
                )),
            };
        }
        let mismatch =
            || ConnectError::Data(format!("Invalid type for {}: {}", schema.schema_type.name(), value_kind(value)));
        match (schema.schema_type, value) {
            (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_)) => self.schemaless(value),
            (SchemaType::Array, Value::Array(items)) => {
                let item_schema = schema.value_schema.as_deref();
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(item_schema, item)?;
                }
                self.out.push(b']');
                Ok(())
            }
            (SchemaType::Map, Value::Map(entries)) => {
                let key_schema = schema.key_schema.as_deref();
                let value_schema = schema.value_schema.as_deref();
                if key_schema.is_some_and(|k| k.schema_type == SchemaType::String) {
                    self.object_map(entries, value_schema)
                } else {
                    self.pair_map(entries, key_schema, value_schema)
                }
            }
            (SchemaType::Struct, Value::Struct(values)) => {
                if values.len() != schema.fields.len() {
                    return Err(ConnectError::Data(format!(
                        "Mismatching schema: struct has {} values but its schema {} fields",
                        values.len(),
                        schema.fields.len()
                    )));
                }
                self.out.push(b'{');
                for (i, (field, v)) in schema.fields.iter().zip(values).enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    write_json_string(self.out, &field.name);
                    self.out.push(b':');
                    self.value(Some(&field.schema), v)?;
                }
                self.out.push(b'}');
                Ok(())
            }
            _ => Err(mismatch()),
        }
    }

    /// A value without a schema: its type comes from the value itself.
    fn schemaless(&mut self, value: &Value) -> Result<(), ConnectError> {
        let out = &mut *self.out;
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int8(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::Int16(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::Int32(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::Int64(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Value::Float32(v) => write_json_float(out, java_float_string(*v)),
            Value::Float64(v) => write_json_float(out, java_double_string(*v)),
            Value::String(s) => write_json_string(out, s),
            Value::Bytes(b) => {
                out.push(b'"');
                base64_encode(b, out);
                out.push(b'"');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.schemaless(item)?;
                }
                self.out.push(b']');
            }
            Value::Map(entries) => {
                if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                    self.object_map(entries, None)?;
                } else {
                    self.pair_map(entries, None, None)?;
                }
            }
            Value::Struct(_) => {
                return Err(ConnectError::Data("Struct values need a schema to be converted to JSON".to_string()));
            }
        }
        Ok(())
    }

    fn object_map(&mut self, entries: &[(Value, Value)], value_schema: Option<&Schema>) -> Result<(), ConnectError> {
        self.out.push(b'{');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            let Value::String(k) = k else {
                return Err(ConnectError::Data(format!("Invalid type for map key STRING: {}", value_kind(k))));
            };
            write_json_string(self.out, k);
            self.out.push(b':');
            self.value(value_schema, v)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    /// Maps with non-string keys are arrays of `[key, value]` pairs in Kafka Connect's JSON.
    fn pair_map(
        &mut self,
        entries: &[(Value, Value)],
        key_schema: Option<&Schema>,
        value_schema: Option<&Schema>,
    ) -> Result<(), ConnectError> {
        self.out.push(b'[');
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.push(b'[');
            self.value(key_schema, k)?;
            self.out.push(b',');
            self.value(value_schema, v)?;
            self.out.push(b']');
        }
        self.out.push(b']');
        Ok(())
    }
}

fn missing_part(kind: &str, part: &str) -> ConnectError {
    ConnectError::Data(format!("{kind} schema has no {part} schema"))
}

/// `std::fmt::Write` over a byte vector, for `write!` of numbers without an intermediate `String`.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Jackson quotes the non-finite numbers (`"NaN"`), everything else is a bare number.
fn write_json_float(out: &mut Vec<u8>, text: String) {
    let finite = text.starts_with(|c: char| c.is_ascii_digit() || c == '-') && text != "-Infinity";
    if finite {
        out.extend_from_slice(text.as_bytes());
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// A JSON string with Jackson's escaping: `"` and `\`, the short escapes `\b \t \n \f \r`, other control characters
/// as `\u00XX` with uppercase hex; characters outside the Basic Multilingual Plane (emoji, ...) as an escaped UTF-16
/// surrogate pair `\uD83D\uDE00`, because Jackson's UTF-8 generator writes them so by default; everything else as
/// UTF-8.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    fn unicode_escape(out: &mut Vec<u8>, unit: u16) {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[usize::from((unit >> shift) & 0xf)]);
        }
    }
    out.push(b'"');
    let bytes = s.as_bytes();
    // `bytes[start..i]` is written as it is once a byte that needs escaping (or the end) is reached.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none of them needs a look (most text: a few word operations per 8 bytes).
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            if !may_need_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            // The first byte of a 4-byte UTF-8 sequence: a character beyond U+FFFF.
            0xf0..=0xf7 => {
                out.extend_from_slice(&bytes[start..i]);
                let c = s[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    unicode_escape(out, *unit);
                }
                start = i + c.len_utf8();
                i = start;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            unicode_escape(out, u16::from(b));
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the 8 bytes of `word` may need escaping in a JSON string: a control character (< 0x20), `"`, `\`
/// or the first byte of a 4-byte UTF-8 sequence (0xF0 and above). Never false when one does (it may be true when
/// none does: the caller then looks at each byte).
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let below_0x20 = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    let top_nibble_f = word & (word << 1) & (word << 2) & (word << 3) & HIGHS != 0;
    below_0x20
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
        || top_nibble_f
}

/// Parses a JSON schema of the envelope (Kafka Connect's `asConnectSchema`).
pub(crate) fn json_to_schema(json: &serde_json::Value) -> Result<Schema, ConnectError> {
    let data = |m: &str| ConnectError::Data(m.to_string());
    let obj = json.as_object().ok_or_else(|| data("Schema must be a JSON object"))?;
    let type_name = obj.get("type").and_then(|t| t.as_str()).ok_or_else(|| data("Schema must contain 'type' field"))?;
    let schema_type = match type_name {
        "boolean" => SchemaType::Boolean,
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        "float" => SchemaType::Float32,
        "double" => SchemaType::Float64,
        "bytes" => SchemaType::Bytes,
        "string" => SchemaType::String,
        "array" => SchemaType::Array,
        "map" => SchemaType::Map,
        "struct" => SchemaType::Struct,
        other => return Err(ConnectError::Data(format!("Unknown schema type: {other}"))),
    };
    let mut schema = Schema::primitive(schema_type, false);
    match schema_type {
        SchemaType::Array => {
            let items = obj.get("items").ok_or_else(|| data("Array schema did not specify the element type"))?;
            schema.value_schema = Some(Arc::new(json_to_schema(items)?));
        }
        SchemaType::Map => {
            let keys = obj.get("keys").ok_or_else(|| data("Map schema did not specify the key type"))?;
            let values = obj.get("values").ok_or_else(|| data("Map schema did not specify the value type"))?;
            schema.key_schema = Some(Arc::new(json_to_schema(keys)?));
            schema.value_schema = Some(Arc::new(json_to_schema(values)?));
        }
        SchemaType::Struct => {
            let fields = obj
                .get("fields")
                .and_then(|f| f.as_array())
                .ok_or_else(|| data("Struct schema's \"fields\" argument is not an array."))?;
            for (index, field) in fields.iter().enumerate() {
                let name = field
                    .get("field")
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| data("Struct schema's field name not specified properly"))?;
                schema.fields.push(Field { name: name.to_string(), index, schema: Arc::new(json_to_schema(field)?) });
            }
        }
        _ => {}
    }
    if let Some(optional) = obj.get("optional") {
        schema.optional = optional.as_bool().ok_or_else(|| data("Schema's \"optional\" field must be a boolean"))?;
    }
    if let Some(name) = obj.get("name").filter(|n| !n.is_null()) {
        schema.name = Some(name.as_str().ok_or_else(|| data("Schema name must be a string"))?.to_string());
    }
    if let Some(version) = obj.get("version").filter(|v| !v.is_null()) {
        let version = version.as_i64().and_then(|v| i32::try_from(v).ok());
        schema.version = Some(version.ok_or_else(|| data("Schema version must be an integer"))?);
    }
    if let Some(doc) = obj.get("doc").filter(|d| !d.is_null()) {
        schema.doc = Some(doc.as_str().ok_or_else(|| data("Schema doc must be a string"))?.to_string());
    }
    if let Some(params) = obj.get("parameters").filter(|p| !p.is_null()) {
        let params = params.as_object().ok_or_else(|| data("Schema parameters must be a JSON object"))?;
        let mut list = Vec::with_capacity(params.len());
        for (k, v) in params {
            let v = v.as_str().ok_or_else(|| data("Schema parameters must have string values."))?;
            list.push((k.clone(), v.to_string()));
        }
        schema.parameters = Some(list);
    }
    if let Some(default) = obj.get("default").filter(|d| !d.is_null()) {
        let value = json_to_connect(Some(&schema), default)?;
        schema.default = Some(Box::new(value));
    }
    Ok(schema)
}

/// Converts a JSON payload to Connect data (Kafka Connect's `convertToConnect`); without a schema the type is
/// inferred: integers are INT64, other numbers FLOAT64, objects string-keyed maps.
pub(crate) fn json_to_connect(schema: Option<&Schema>, json: &serde_json::Value) -> Result<Value, ConnectError> {
    use serde_json::Value as J;
    let Some(schema) = schema else {
        return Ok(match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float64(kafka_float(n.as_f64().unwrap_or(f64::NAN))),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::Array(items.iter().map(|i| json_to_connect(None, i)).collect::<Result<_, _>>()?),
            J::Object(map) => {
                Value::Map(
                    map.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), json_to_connect(None, v)?)))
                        .collect::<Result<_, ConnectError>>()?,
                )
            }
        });
    };
    if json.is_null() {
        if let Some(default) = &schema.default {
            return Ok((**default).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(ConnectError::Data(format!("Invalid null value for required {} field", schema.schema_type.name())));
    }
    let mismatch =
        || ConnectError::Data(format!("Expected {} but found JSON {}", schema.schema_type.name(), json_kind(json)));
    // Jackson reads `1e3` as a number that Kafka Connect accepts for an integer schema; so does Sluice, but only
    // when it is integral and in range (Kafka Connect would truncate `1.9` and wrap `300` for INT8).
    let integral = || {
        json.as_i64().or_else(|| {
            json.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= -9.223_372_036_854_776e18 && *f < 9.223_372_036_854_776e18)
                .map(|f| f as i64)
        })
    };
    let int = |min: i64, max: i64| integral().filter(|v| (min..=max).contains(v)).ok_or_else(mismatch);
    Ok(match schema.schema_type {
        SchemaType::Boolean => Value::Boolean(json.as_bool().ok_or_else(mismatch)?),
        SchemaType::Int8 => Value::Int8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        SchemaType::Int16 => Value::Int16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        SchemaType::Int32 => Value::Int32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        SchemaType::Int64 => Value::Int64(integral().ok_or_else(mismatch)?),
        SchemaType::Float32 => Value::Float32(json_float(json).ok_or_else(mismatch)? as f32),
        SchemaType::Float64 => Value::Float64(json_float(json).ok_or_else(mismatch)?),
        SchemaType::String => Value::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        SchemaType::Bytes => {
            let text = json.as_str().ok_or_else(mismatch)?;
            Value::Bytes(Bytes::from(
                base64_decode(text).ok_or_else(|| ConnectError::Data("Invalid bytes field".to_string()))?,
            ))
        }
        SchemaType::Array => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let item_schema = schema.value_schema.as_deref();
            Value::Array(items.iter().map(|i| json_to_connect(item_schema, i)).collect::<Result<_, _>>()?)
        }
        SchemaType::Map => {
            let key_schema = schema.key_schema.as_deref();
            let value_schema = schema.value_schema.as_deref();
            if key_schema.is_none_or(|k| k.schema_type == SchemaType::String) {
                let map = json.as_object().ok_or_else(|| {
                    ConnectError::Data(format!(
                        "Maps with string fields should be encoded as JSON objects, but found {}",
                        json_kind(json)
                    ))
                })?;
                Value::Map(
                    map.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), json_to_connect(value_schema, v)?)))
                        .collect::<Result<_, ConnectError>>()?,
                )
            } else {
                let pairs = json.as_array().ok_or_else(|| {
                    ConnectError::Data(format!(
                        "Maps with non-string fields should be encoded as JSON array of tuples, but found {}",
                        json_kind(json)
                    ))
                })?;
                let mut entries = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    match pair.as_array().map(Vec::as_slice) {
                        Some([k, v]) => {
                            entries.push((json_to_connect(key_schema, k)?, json_to_connect(value_schema, v)?))
                        }
                        _ => {
                            return Err(ConnectError::Data(format!(
                                "Found invalid map entry instead of array tuple of length 2: {pair}"
                            )));
                        }
                    }
                }
                Value::Map(entries)
            }
        }
        SchemaType::Struct => {
            let map = json.as_object().ok_or_else(|| {
                ConnectError::Data(format!("Structs should be encoded as JSON objects, but found {}", json_kind(json)))
            })?;
            let null = J::Null;
            Value::Struct(
                schema
                    .fields
                    .iter()
                    .map(|f| json_to_connect(Some(&f.schema), map.get(&f.name).unwrap_or(&null)))
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// A JSON float as Kafka Connect's JsonConverter reads it for a FLOAT32/FLOAT64 schema: its Jackson reads floats as
/// `BigDecimal` (`USE_BIG_DECIMAL_FOR_FLOATS`), which has no negative zero (`-0.0` arrives as `0.0`), and takes
/// `doubleValue()` of any other node, which is `0.0` for the quoted non-finite numbers it writes itself (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`): a NaN does not survive a JsonConverter round trip in Kafka Connect either
/// (checked against Kafka 4.1.2's JsonConverter, and by deploy/compat/jdbc-sink-compare). Other strings and other
/// JSON types stay errors here (Kafka Connect would read them as `0.0` too).
fn json_float(json: &serde_json::Value) -> Option<f64> {
    match json {
        serde_json::Value::Number(n) => n.as_f64().map(kafka_float),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" | "Infinity" | "-Infinity" => Some(0.0),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON number read as Kafka Connect's JsonConverter does (see [`json_float`]): `-0.0` is `0.0`.
pub(crate) fn kafka_float(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { v }
}

fn json_kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "NULL",
        serde_json::Value::Bool(_) => "BOOLEAN",
        serde_json::Value::Number(_) => "NUMBER",
        serde_json::Value::String(_) => "STRING",
        serde_json::Value::Array(_) => "ARRAY",
        serde_json::Value::Object(_) => "OBJECT",
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Jackson writes binary nodes.
fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..4 {
            if i < symbols {
                out.push(BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Decodes standard base64, padding optional; `None` if malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover symbol (6 bits) cannot encode a byte.
    if trimmed.len() % 4 == 1 { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    /// Jackson's escaping, one character at a time: the reference for `write_json_string`'s word-at-a-time scan.
    fn escaped_char_by_char(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
                c if (c as u32) > 0xffff => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn json_strings_are_escaped_like_jackson_at_every_position() {
        let specials =
            ["\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{1}", "\u{1f}", "😀", "é", "€", "\u{7f}", "x"];
        for special in specials {
            for before in 0..18 {
                for after in [0, 1, 7, 8, 9, 17] {
                    let text = format!("{}{special}{}", "a".repeat(before), "b".repeat(after));
                    let mut out = Vec::new();
                    write_json_string(&mut out, &text);
                    assert_eq!(String::from_utf8(out).expect("utf-8"), escaped_char_by_char(&text), "{text:?}");
                }
            }
        }
        let mixed = "plain text of some length, then \"quotes\", a tab\there, 😀😀 and ümlauts\u{0} 0123456789";
        let mut out = Vec::new();
        write_json_string(&mut out, mixed);
        assert_eq!(String::from_utf8(out).expect("utf-8"), escaped_char_by_char(mixed));
        for byte in 0u8..=0x7f {
            let word = u64::from_le_bytes([b'a', b'a', b'a', byte, b'a', b'a', b'a', b'a']);
            let needs = byte < 0x20 || byte == b'"' || byte == b'\\';
            assert!(!needs || may_need_escape(word), "{byte:#x}");
        }
        assert!(may_need_escape(u64::from_le_bytes(*b"aaaaaa\xf0a")));
        assert!(!may_need_escape(u64::from_le_bytes(*b"abcdefgh")));
    }

    use super::*;

    fn to_json(conv: &JsonConverter, schema: Option<&Schema>, value: &Value) -> String {
        let mut out = Vec::new();
        assert!(conv.from_connect("t", schema, value, &mut out).expect("converts"));
        String::from_utf8(out).expect("utf-8")
    }

    fn rec_schema() -> Schema {
        let mut schema = Schema::primitive(SchemaType::Struct, false);
        schema.name = Some("rec".to_string());
        schema.fields = vec![
            Field { name: "id".to_string(), index: 0, schema: Arc::new(Schema::primitive(SchemaType::Int32, false)) },
            Field { name: "name".to_string(), index: 1, schema: Arc::new(Schema::primitive(SchemaType::String, true)) },
        ];
        schema
    }

    #[test]
    fn json_envelope_matches_kafka_connect_bytes() {
        let conv = JsonConverter::default();
        assert_eq!(
            to_json(&conv, Some(&Schema::string()), &Value::String("foo".into())),
            r#"{"schema":{"type":"string","optional":false},"payload":"foo"}"#
        );
        let rec = Value::Struct(vec![Value::Int32(1), Value::String("a".into())]);
        let expected = r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"}],"optional":false,"name":"rec"},"payload":{"id":1,"name":"a"}}"#;
        assert_eq!(to_json(&conv, Some(&rec_schema()), &rec), expected);

        let (schema, value) = conv.to_connect("t", Some(expected.as_bytes())).expect("parses");
        let schema = schema.expect("schema");
        assert_eq!(*schema, rec_schema());
        assert_eq!(value, rec);
        assert_eq!(to_json(&conv, Some(&schema), &value), expected, "round trip is byte-exact");
    }

    #[test]
    fn json_schema_field_order_with_every_attribute() {
        let mut inner = Schema::primitive(SchemaType::Int64, true);
        inner.name = Some("org.apache.kafka.connect.data.Timestamp".into());
        inner.version = Some(1);
        inner.doc = Some("when".into());
        inner.parameters = Some([("a".to_string(), "b".to_string())].into());
        inner.default = Some(Box::new(Value::Int64(7)));
        let mut array = Schema::primitive(SchemaType::Array, false);
        array.value_schema = Some(Arc::new(inner));
        let conv = JsonConverter::default();
        assert_eq!(
            to_json(&conv, Some(&array), &Value::Array(vec![Value::Int64(1), Value::Null])),
            r#"{"schema":{"type":"array","items":{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"doc":"when","parameters":{"a":"b"},"default":7},"optional":false},"payload":[1,7]}"#
        );
        let mut map = Schema::primitive(SchemaType::Map, false);
        map.key_schema = Some(Arc::new(Schema::primitive(SchemaType::Int32, false)));
        map.value_schema = Some(Schema::string());
        let value = Value::Map(vec![(Value::Int32(1), Value::String("x".into()))]);
        let json = to_json(&conv, Some(&map), &value);
        assert_eq!(
            json,
            r#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":false},"optional":false},"payload":[[1,"x"]]}"#
        );
        let (schema, back) = conv.to_connect("t", Some(json.as_bytes())).expect("parses");
        assert_eq!(schema.as_deref(), Some(&map));
        assert_eq!(back, value);
    }

    #[test]
    fn json_without_schemas() {
        let conv = JsonConverter::new(false);
        let value = Value::Map(vec![
            (Value::String("a".into()), Value::Int64(1)),
            (Value::String("b".into()), Value::Array(vec![Value::Float64(1.5), Value::Boolean(true), Value::Null])),
            (Value::String("c\"\n\u{1}".into()), Value::String("é".into())),
        ]);
        let json = to_json(&conv, None, &value);
        assert_eq!(json, "{\"a\":1,\"b\":[1.5,true,null],\"c\\\"\\n\\u0001\":\"é\"}");
        let (schema, back) = conv.to_connect("t", Some(json.as_bytes())).expect("parses");
        assert!(schema.is_none());
        assert_eq!(back, value);
        assert_eq!(to_json(&conv, Some(&Schema::string()), &Value::String("x".into())), "\"x\"");
    }

    #[test]
    fn json_nulls_and_errors() {
        let conv = JsonConverter::default();
        let mut out = vec![1];
        assert!(!conv.from_connect("t", None, &Value::Null, &mut out).expect("tombstone"));
        assert!(out.is_empty());
        assert_eq!(to_json(&conv, None, &Value::Int64(3)), r#"{"schema":null,"payload":3}"#);
        let optional = Schema::primitive(SchemaType::String, true);
        assert_eq!(
            to_json(&conv, Some(&optional), &Value::Null),
            r#"{"schema":{"type":"string","optional":true},"payload":null}"#
        );
        let err = conv.from_connect("t", Some(&Schema::string()), &Value::Null, &mut out).expect_err("required");
        assert!(err.to_string().contains("null value for field that is required"), "{err}");
        let err = conv.from_connect("t", Some(&Schema::string()), &Value::Int32(1), &mut out).expect_err("mismatch");
        assert_eq!(err.to_string(), "record error: Invalid type for STRING: Integer");

        assert_eq!(conv.to_connect("t", None).expect("tombstone"), (None, Value::Null));
        let err = conv.to_connect("t", Some(br#"{"a":1}"#)).expect_err("no envelope");
        assert!(err.to_string().contains("requires \"schema\" and \"payload\" fields"), "{err}");
        assert!(conv.to_connect("t", Some(b"{not json")).is_err());
        let err = conv
            .to_connect("t", Some(br#"{"schema":{"type":"int32","optional":false},"payload":null}"#))
            .expect_err("required");
        assert_eq!(err.to_string(), "record error: Invalid null value for required INT32 field");
    }

    #[test]
    fn json_numbers_and_bytes_like_java() {
        let conv = JsonConverter::new(false);
        assert_eq!(to_json(&conv, None, &Value::Float64(1.0)), "1.0");
        assert_eq!(to_json(&conv, None, &Value::Float64(1e10)), "1.0E10");
        assert_eq!(to_json(&conv, None, &Value::Float64(1.5e-7)), "1.5E-7");
        assert_eq!(to_json(&conv, None, &Value::Float64(0.001)), "0.001");
        assert_eq!(to_json(&conv, None, &Value::Float64(f64::NAN)), "\"NaN\"");
        assert_eq!(to_json(&conv, None, &Value::Float32(0.1)), "0.1");
        assert_eq!(to_json(&conv, None, &Value::Bytes(Bytes::from_static(b"hello"))), "\"aGVsbG8=\"");
        let mut bytes = Schema::primitive(SchemaType::Bytes, false);
        bytes.name = Some("org.apache.kafka.connect.data.Decimal".into());
        bytes.parameters = Some([("scale".to_string(), "2".to_string())].into());
        let with = JsonConverter::default();
        let json = to_json(&with, Some(&bytes), &Value::Bytes(Bytes::from_static(&[0x01, 0x00])));
        assert_eq!(
            json,
            r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"}},"payload":"AQA="}"#
        );
        let (_, back) = with.to_connect("t", Some(json.as_bytes())).expect("parses");
        assert_eq!(back, Value::Bytes(Bytes::from_static(&[0x01, 0x00])));
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let mut out = Vec::new();
            base64_encode(input, &mut out);
            assert_eq!(base64_decode(std::str::from_utf8(&out).expect("ascii")).as_deref(), Some(input));
        }
    }

    #[test]
    fn json_floats_read_like_kafka_connect() {
        // Kafka 4.1.2's JsonConverter (Jackson with USE_BIG_DECIMAL_FOR_FLOATS, then doubleValue()/floatValue()):
        // the quoted non-finite numbers it writes read back as 0.0, and -0.0 as 0.0.
        let conv = JsonConverter::default();
        let schema = r#"{"type":"struct","optional":false,"fields":[{"field":"f","type":"float","optional":true},{"field":"d","type":"double","optional":true}]}"#;
        let cases = [
            (r#"{"f":"NaN","d":"NaN"}"#, 0.0f32, 0.0f64),
            (r#"{"f":"Infinity","d":"-Infinity"}"#, 0.0, 0.0),
            (r#"{"f":-0.0,"d":-0.0}"#, 0.0, 0.0),
            (r#"{"f":1e-45,"d":5e-324}"#, 1e-45, 5e-324),
            (r#"{"f":-1.5,"d":-2}"#, -1.5, -2.0),
        ];
        for (payload, f, d) in cases {
            // Twice: the second read takes the fast path with the schema compared, not parsed.
            for _ in 0..2 {
                let json = format!(r#"{{"schema":{schema},"payload":{payload}}}"#);
                let (_, value) = conv.to_connect("t", Some(json.as_bytes())).expect("parses");
                let Value::Struct(fields) = value else { panic!("{payload}: not a struct") };
                match (&fields[0], &fields[1]) {
                    (Value::Float32(a), Value::Float64(b)) => {
                        assert_eq!((a.to_bits(), b.to_bits()), (f.to_bits(), d.to_bits()), "{payload}");
                    }
                    other => panic!("{payload}: {other:?}"),
                }
            }
        }
        // Without a schema too.
        let (_, value) = JsonConverter::new(false).to_connect("t", Some(b"-0.0")).expect("parses");
        assert_eq!(value, Value::Float64(0.0));
        assert!(matches!(value, Value::Float64(v) if v.is_sign_positive()));
    }

    #[test]
    fn json_configure() {
        let mut conv = JsonConverter::default();
        conv.configure(&[("schemas.enable".to_string(), "FALSE".to_string())].into(), false).expect("valid");
        assert_eq!(to_json(&conv, Some(&Schema::string()), &Value::String("x".into())), "\"x\"");
        assert!(conv.configure(&[("schemas.enable".to_string(), "nope".to_string())].into(), false).is_err());
        assert!(conv.configure(&[("decimal.format".to_string(), "NUMERIC".to_string())].into(), false).is_err());
    }

    #[test]
    fn string_converter() {
        let mut conv = StringConverter;
        conv.configure(&[("converter.encoding".to_string(), "utf-8".to_string())].into(), false).expect("utf-8");
        assert!(conv.configure(&[("converter.encoding".to_string(), "UTF-16".to_string())].into(), false).is_err());
        let mut out = Vec::new();
        assert!(conv.from_connect("t", None, &Value::String("héllo".into()), &mut out).expect("converts"));
        assert_eq!(out, "héllo".as_bytes());
        assert!(!conv.from_connect("t", None, &Value::Null, &mut out).expect("null"));
        assert!(conv.from_connect("t", None, &Value::Int32(42), &mut out).expect("converts"));
        assert_eq!(out, b"42");
        let (schema, value) = conv.to_connect("t", Some(b"abc")).expect("converts");
        assert_eq!(schema.as_deref(), Some(&Schema::primitive(SchemaType::String, true)));
        assert_eq!(value, Value::String("abc".into()));
        assert_eq!(conv.to_connect("t", None).expect("null").1, Value::Null);
    }

    #[test]
    fn byte_array_converter() {
        let conv = ByteArrayConverter;
        let mut out = Vec::new();
        assert!(conv.from_connect("t", None, &Value::Bytes(Bytes::from_static(b"\x00\x01")), &mut out).expect("ok"));
        assert_eq!(out, b"\x00\x01");
        let err =
            conv.from_connect("t", Some(&Schema::string()), &Value::String("x".into()), &mut out).expect_err("bad");
        assert_eq!(err.to_string(), "record error: Invalid schema type for ByteArrayConverter: STRING");
        assert!(conv.from_connect("t", None, &Value::Int32(1), &mut out).is_err());
        let (schema, value) = conv.to_connect("t", Some(b"ab")).expect("ok");
        assert_eq!(schema.expect("schema").schema_type, SchemaType::Bytes);
        assert_eq!(value, Value::Bytes(Bytes::from_static(b"ab")));
    }

    #[test]
    fn decimals_render_like_big_decimal_to_string() {
        let text = |unscaled: &[u8], scale: i32| {
            let mut out = String::new();
            write_big_decimal(unscaled, scale, &mut out);
            out
        };
        assert_eq!(text(&[0x30, 0x39], 2), "123.45");
        assert_eq!(text(&[0xcf, 0xc7], 2), "-123.45");
        assert_eq!(text(&[0x05], 2), "0.05");
        assert_eq!(text(&[0x00], 0), "0");
        assert_eq!(text(&[0x00], 3), "0.000");
        assert_eq!(text(&[0x0c], -2), "1.2E+3");
        assert_eq!(text(&[0x01], 8), "1E-8");
        assert_eq!(text(&[0xff], 0), "-1");
        assert_eq!(text(&[0x80, 0x00], 0), "-32768");
        // 2^72 spans several base-10^9 groups.
        assert_eq!(text(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0), "4722366482869645213696");
    }

    #[test]
    fn text_rendering_is_java_like() {
        let mut out = String::new();
        write_text(Some(&rec_schema()), &Value::Struct(vec![Value::Int32(1), Value::String("a".into())]), &mut out);
        assert_eq!(out, "Struct{id=1,name=a}");
        out.clear();
        write_text(Some(&rec_schema()), &Value::Struct(vec![Value::Int32(1), Value::Null]), &mut out);
        assert_eq!(out, "Struct{id=1}");
        out.clear();
        let map = Value::Map(vec![
            (Value::String("k".into()), Value::Array(vec![Value::Float64(2.0), Value::Null])),
            (Value::String("j".into()), Value::Boolean(false)),
        ]);
        write_text(None, &map, &mut out);
        assert_eq!(out, "{k=[2.0, null], j=false}");
    }
}
