//! The transforms that reshape a key or value by its fields: ExtractField, Flatten, HoistField, InsertField,
//! MaskField, ReplaceField, SetSchemaMetadata and ValueToKey, on schema'd structs and schemaless maps alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{ConfigDef, ConfigType, Importance, Validator};
use crate::error::ConnectError;
use crate::record::{Field, Schema, SchemaType, Value};

use super::plugin_config::{PluginConfig, REPLACE_NULL_WITH_DEFAULT, key, optional_key, replace_null_with_default_key};
use super::support::{
    DECIMAL_LOGICAL, SchemaCache, TIMESTAMP_LOGICAL, copy_schema_basics, data_error, field_value, into_map,
    into_struct, java_class, key_text, logical_schema, map_get, map_put, primitive, push_field, require_map,
    require_schema, require_struct,
};
use super::{ConnectRecord, Operand, Transformation};

// ---------------------------------------------------------------------------------------------------------------
// ExtractField

const FIELD: &str = "field";
const FIELD_SYNTAX_VERSION: &str = "field.syntax.version";
const FIELD_SYNTAX_VERSION_DOC: &str = "Defines the version of the syntax to access fields. If set to `V1`, then the field paths are limited to access the elements at the root level of the struct or map. If set to `V2`, the syntax will support accessing nested elements. To access nested elements, dotted notation is used. If dots are already included in the field name, then backtick pairs can be used to wrap field names containing dots. E.g. to access the subfield `baz` from a field named \"foo.bar\" in a struct/map the following format can be used to access its elements: \"`foo.bar`.baz\".";

pub fn extract_field_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(FIELD, ConfigType::String, None, Importance::Medium, "Field name to extract."))
        .define(replace_null_with_default_key())
        .define(
            key(FIELD_SYNTAX_VERSION, ConfigType::String, Some("V1"), Importance::High, FIELD_SYNTAX_VERSION_DOC)
                .with_validator(Validator::OneOf(vec!["V1", "V2"])),
        )
}

/// The steps of a field path: one step in syntax V1; dotted steps in V2, a step in backticks may contain dots.
fn field_path(c: &PluginConfig, path: &str) -> Result<Vec<String>, ConnectError> {
    let v2 = c.string(FIELD_SYNTAX_VERSION).is_some_and(|v| v.eq_ignore_ascii_case("V2"));
    if !v2 {
        return Ok(vec![path.to_string()]);
    }
    let mut steps = Vec::new();
    let mut rest = path;
    loop {
        if let Some(quoted) = rest.strip_prefix('`') {
            // The closing backtick is the one followed by a dot or the end.
            let close = quoted
                .match_indices('`')
                .map(|(i, _)| i)
                .find(|&i| quoted[i + 1..].is_empty() || quoted[i + 1..].starts_with('.'))
                .ok_or_else(|| {
                    c.error(
                        FIELD,
                        format!(
                            "Incomplete backtick pair in path: [{path}], consider adding a backslash before backtick at position {} to escape it",
                            path.len() - rest.len()
                        ),
                    )
                })?;
            steps.push(quoted[..close].to_string());
            rest = &quoted[close + 1..];
            match rest.strip_prefix('.') {
                Some(after) => rest = after,
                None => break,
            }
            if rest.is_empty() {
                steps.push(String::new());
                break;
            }
        } else {
            match rest.split_once('.') {
                Some((step, after)) => {
                    steps.push(step.to_string());
                    rest = after;
                    if rest.is_empty() {
                        steps.push(String::new());
                        break;
                    }
                }
                None => {
                    steps.push(rest.to_string());
                    break;
                }
            }
        }
    }
    Ok(steps)
}

pub fn build_extract_field(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let original = c.raw(FIELD).map(str::trim).unwrap_or_default().to_string();
    Ok(Box::new(ExtractField {
        operand,
        steps: field_path(c, &original)?,
        original,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
    }))
}

struct ExtractField {
    operand: Operand,
    steps: Vec<String>,
    original: String,
    replace_null_with_default: bool,
}

const EXTRACT_PURPOSE: &str = "field extraction";

impl Transformation for ExtractField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                if !matches!(value, Value::Null) {
                    require_map(&value, EXTRACT_PURPOSE)?;
                }
                let mut current = value;
                for step in &self.steps {
                    current = match current {
                        Value::Map(entries) => entries
                            .into_iter()
                            .find(|(k, _)| matches!(k, Value::String(name) if name == step))
                            .map(|(_, v)| v)
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                }
                self.operand.set(&mut record, None, current);
            }
            Some(schema) => {
                if !matches!(value, Value::Null) {
                    require_struct(&value, EXTRACT_PURPOSE)?;
                }
                let mut field_schema: &Arc<Schema> = &schema;
                let mut current = value;
                for step in &self.steps {
                    let field = field_schema
                        .field(step)
                        .ok_or_else(|| data_error(format!("Unknown field: {}", self.original)))?;
                    current = match current {
                        Value::Struct(values) => field_value(field, &values, self.replace_null_with_default),
                        _ => Value::Null,
                    };
                    field_schema = &field.schema;
                }
                let field_schema = field_schema.clone();
                self.operand.set(&mut record, Some(field_schema), current);
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Flatten

const DELIMITER: &str = "delimiter";
const FLATTEN_PURPOSE: &str = "flattening";

pub fn flatten_config_def() -> ConfigDef {
    ConfigDef::new().define(key(
        DELIMITER,
        ConfigType::String,
        Some("."),
        Importance::Medium,
        "Delimiter to insert between field names from the input record when generating field names for the output record",
    ))
}

pub fn build_flatten(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    // The delimiter is read untrimmed: a blank delimiter is a legitimate choice.
    let delimiter = c.raw(DELIMITER).map(str::to_string).unwrap_or_else(|| ".".to_string());
    Ok(Box::new(Flatten { operand, delimiter, cache: SchemaCache::default() }))
}

struct Flatten {
    operand: Operand,
    delimiter: String,
    cache: SchemaCache,
}

impl Flatten {
    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() { name.to_string() } else { format!("{prefix}{}{name}", self.delimiter) }
    }

    fn flatten_map(
        &self,
        entries: Vec<(Value, Value)>,
        prefix: &str,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), ConnectError> {
        for (k, v) in entries {
            let name = self.name(prefix, &key_text(&k));
            match v {
                Value::Map(inner) => self.flatten_map(inner, &name, out)?,
                Value::Struct(_) => {
                    return Err(data_error(format!(
                        "Flatten transformation does not support {} for record without schemas (for field {name}).",
                        java_class(&v)
                    )));
                }
                other => map_put(out, &name, other),
            }
        }
        Ok(())
    }

    fn flatten_schema(
        &self,
        schema: &Schema,
        prefix: &str,
        optional: bool,
        parent_default: Option<&Value>,
        out: &mut Schema,
    ) -> Result<(), ConnectError> {
        for field in &schema.fields {
            let name = self.name(prefix, &field.name);
            let field_optional = optional || field.schema.optional;
            let default = match (&field.schema.default, parent_default) {
                (Some(d), _) => Some((**d).clone()),
                (None, Some(Value::Struct(values))) => values.get(field.index).cloned().filter(|v| *v != Value::Null),
                _ => None,
            };
            match field.schema.schema_type {
                SchemaType::Struct => {
                    self.flatten_schema(&field.schema, &name, field_optional, default.as_ref(), out)?
                }
                SchemaType::Map => {
                    return Err(data_error(format!(
                        "Flatten transformation does not support MAP for record with schemas (for field {name})."
                    )));
                }
                _ => {
                    let mut flat = (*field.schema).clone();
                    flat.optional = field_optional;
                    flat.default = default.map(Box::new);
                    push_field(out, name, Arc::new(flat));
                }
            }
        }
        Ok(())
    }

    fn flatten_struct(&self, schema: &Schema, values: Option<&[Value]>, out: &mut Vec<Value>) {
        for field in &schema.fields {
            let value = values.map(|v| field_value(field, v, true)).unwrap_or(Value::Null);
            match (field.schema.schema_type, value) {
                (SchemaType::Struct, Value::Struct(inner)) => self.flatten_struct(&field.schema, Some(&inner), out),
                (SchemaType::Struct, _) => self.flatten_struct(&field.schema, None, out),
                (_, value) => out.push(value),
            }
        }
    }
}

impl Transformation for Flatten {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        if matches!(self.operand.value(&record), Value::Null) {
            return Ok(Some(record));
        }
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                let entries = into_map(value, FLATTEN_PURPOSE)?;
                let mut out = Vec::with_capacity(entries.len());
                self.flatten_map(entries, "", &mut out)?;
                self.operand.set(&mut record, None, Value::Map(out));
            }
            Some(schema) => {
                let values = into_struct(value, FLATTEN_PURPOSE)?;
                let updated = self.cache.get_or_build(&schema, |s| {
                    let mut out = copy_schema_basics(s, SchemaType::Struct);
                    self.flatten_schema(s, "", s.optional, s.default.as_deref(), &mut out)?;
                    Ok(out)
                })?;
                let mut out = Vec::with_capacity(updated.fields.len());
                self.flatten_struct(&schema, Some(&values), &mut out);
                self.operand.set(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// HoistField

pub fn hoist_field_config_def() -> ConfigDef {
    ConfigDef::new().define(key(
        FIELD,
        ConfigType::String,
        None,
        Importance::Medium,
        "Field name for the single field that will be created in the resulting Struct or Map.",
    ))
}

pub fn build_hoist_field(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(HoistField { operand, field: c.string(FIELD).unwrap_or_default(), cache: SchemaCache::default() }))
}

struct HoistField {
    operand: Operand,
    field: String,
    cache: SchemaCache,
}

impl Transformation for HoistField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => self.operand.set(&mut record, None, Value::Map(vec![(Value::String(self.field.clone()), value)])),
            Some(schema) => {
                let updated = self.cache.get_or_build(&schema, |_| {
                    let mut out = Schema::primitive(SchemaType::Struct, false);
                    push_field(&mut out, self.field.clone(), schema.clone());
                    Ok(out)
                })?;
                self.operand.set(&mut record, Some(updated), Value::Struct(vec![value]));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// InsertField

const TOPIC_FIELD: &str = "topic.field";
const PARTITION_FIELD: &str = "partition.field";
const OFFSET_FIELD: &str = "offset.field";
const TIMESTAMP_FIELD: &str = "timestamp.field";
const STATIC_FIELD: &str = "static.field";
const STATIC_VALUE: &str = "static.value";
const INSERT_PURPOSE: &str = "field insertion";

pub fn insert_field_config_def() -> ConfigDef {
    const OPTIONALITY: &str = "Suffix with <code>!</code> to make this a required field, or <code>?</code> to keep it optional (the default).";
    ConfigDef::new()
        .define(optional_key(TOPIC_FIELD, ConfigType::String, Importance::Medium, "Field name for Kafka topic. Suffix with <code>!</code> to make this a required field, or <code>?</code> to keep it optional (the default)."))
        .define(optional_key(PARTITION_FIELD, ConfigType::String, Importance::Medium, "Field name for Kafka partition. Suffix with <code>!</code> to make this a required field, or <code>?</code> to keep it optional (the default)."))
        .define(optional_key(OFFSET_FIELD, ConfigType::String, Importance::Medium, "Field name for Kafka offset - only applicable to sink connectors.<br/>Suffix with <code>!</code> to make this a required field, or <code>?</code> to keep it optional (the default)."))
        .define(optional_key(TIMESTAMP_FIELD, ConfigType::String, Importance::Medium, "Field name for record timestamp. Suffix with <code>!</code> to make this a required field, or <code>?</code> to keep it optional (the default)."))
        .define(optional_key(STATIC_FIELD, ConfigType::String, Importance::Medium, OPTIONALITY))
        .define(optional_key(STATIC_VALUE, ConfigType::String, Importance::Medium, "Static field value, if field name configured."))
        .define(replace_null_with_default_key())
}

/// A field to insert: its name and whether it is optional (`?`, the default) or required (`!`).
#[derive(Debug, Clone)]
struct InsertionSpec {
    name: String,
    optional: bool,
}

impl InsertionSpec {
    fn parse(spec: Option<String>) -> Option<Self> {
        let spec = spec?;
        Some(if let Some(name) = spec.strip_suffix('?') {
            InsertionSpec { name: name.to_string(), optional: true }
        } else if let Some(name) = spec.strip_suffix('!') {
            InsertionSpec { name: name.to_string(), optional: false }
        } else {
            InsertionSpec { name: spec, optional: true }
        })
    }
}

pub fn build_insert_field(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let spec = |k: &str| InsertionSpec::parse(c.string(k));
    let t = InsertField {
        operand,
        topic: spec(TOPIC_FIELD),
        partition: spec(PARTITION_FIELD),
        offset: spec(OFFSET_FIELD),
        timestamp: spec(TIMESTAMP_FIELD),
        static_field: spec(STATIC_FIELD),
        static_value: c.string(STATIC_VALUE),
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    };
    if t.topic.is_none()
        && t.partition.is_none()
        && t.offset.is_none()
        && t.timestamp.is_none()
        && t.static_field.is_none()
    {
        return Err(c.error("type", "No field insertion configured"));
    }
    if let (Some(field), None) = (&t.static_field, &t.static_value) {
        return Err(c.invalid(STATIC_VALUE, "null", &format!("No value specified for static field: {}", field.name)));
    }
    Ok(Box::new(t))
}

struct InsertField {
    operand: Operand,
    topic: Option<InsertionSpec>,
    partition: Option<InsertionSpec>,
    offset: Option<InsertionSpec>,
    timestamp: Option<InsertionSpec>,
    static_field: Option<InsertionSpec>,
    static_value: Option<String>,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl InsertField {
    /// The (name, value) pairs to insert; the offset needs a sink record.
    fn insertions(&self, record: &ConnectRecord) -> Result<Vec<(&str, Value)>, ConnectError> {
        let mut out = Vec::new();
        if let Some(spec) = &self.topic {
            out.push((spec.name.as_str(), Value::String(record.topic.clone())));
        }
        if let (Some(spec), Some(partition)) = (&self.partition, record.partition) {
            out.push((spec.name.as_str(), Value::Int32(partition)));
        }
        if let Some(spec) = &self.offset {
            let offset = record.offset.ok_or_else(|| {
                data_error(format!(
                    "Only SinkRecord supported for [{INSERT_PURPOSE}], found: org.apache.kafka.connect.source.SourceRecord"
                ))
            })?;
            out.push((spec.name.as_str(), Value::Int64(offset)));
        }
        if let (Some(spec), Some(timestamp)) = (&self.timestamp, record.timestamp) {
            out.push((spec.name.as_str(), Value::Int64(timestamp)));
        }
        if let (Some(spec), Some(value)) = (&self.static_field, &self.static_value) {
            out.push((spec.name.as_str(), Value::String(value.clone())));
        }
        Ok(out)
    }

    fn updated_schema(&self, schema: &Schema) -> Schema {
        let mut out = copy_schema_basics(schema, SchemaType::Struct);
        for field in &schema.fields {
            push_field(&mut out, field.name.clone(), field.schema.clone());
        }
        let mut add = |spec: &Option<InsertionSpec>, schema: &dyn Fn(bool) -> Arc<Schema>| {
            if let Some(spec) = spec {
                push_field(&mut out, spec.name.clone(), schema(spec.optional));
            }
        };
        add(&self.topic, &|o| primitive(SchemaType::String, o));
        add(&self.partition, &|o| primitive(SchemaType::Int32, o));
        add(&self.offset, &|o| primitive(SchemaType::Int64, o));
        add(&self.timestamp, &|o| logical_schema(TIMESTAMP_LOGICAL, o));
        add(&self.static_field, &|o| primitive(SchemaType::String, o));
        out
    }
}

impl Transformation for InsertField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        if matches!(self.operand.value(&record), Value::Null) {
            return Ok(Some(record));
        }
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                let mut entries = into_map(value, INSERT_PURPOSE)?;
                let insertions = self.insertions(&record)?;
                for (name, value) in insertions {
                    map_put(&mut entries, name, value);
                }
                self.operand.set(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let values = into_struct(value, INSERT_PURPOSE)?;
                let insertions = self.insertions(&record)?;
                let updated = self.cache.get_or_build(&schema, |s| Ok(self.updated_schema(s)))?;
                let mut out: Vec<Value> =
                    schema.fields.iter().map(|f| field_value(f, &values, self.replace_null_with_default)).collect();
                out.resize(updated.fields.len(), Value::Null);
                for (name, value) in insertions {
                    // The last field of that name: an inserted field comes after the original ones.
                    if let Some(field) = updated.fields.iter().rev().find(|f| f.name == name) {
                        out[field.index] = value;
                    }
                }
                self.operand.set(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// MaskField

const FIELDS: &str = "fields";
const REPLACEMENT: &str = "replacement";
const MASK_PURPOSE: &str = "mask fields";

pub fn mask_field_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(FIELDS, ConfigType::List, None, Importance::High, "Names of fields to mask."))
        .define(
            optional_key(
                REPLACEMENT,
                ConfigType::String,
                Importance::Low,
                "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).",
            )
            .with_validator(Validator::NonEmptyString),
        )
        .define(replace_null_with_default_key())
}

pub fn build_mask_field(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(MaskField {
        operand,
        fields: c.non_empty_list(FIELDS)?,
        replacement: c.string(REPLACEMENT),
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
    }))
}

struct MaskField {
    operand: Operand,
    fields: Vec<String>,
    replacement: Option<String>,
    replace_null_with_default: bool,
}

impl MaskField {
    fn masked(&self, schema: Option<&Schema>, value: &Value) -> Result<Value, ConnectError> {
        if matches!(value, Value::Null) {
            return Ok(Value::Null);
        }
        let decimal = schema.is_some_and(|s| s.name.as_deref() == Some(DECIMAL_LOGICAL));
        match &self.replacement {
            None => Ok(match value {
                Value::Boolean(_) => Value::Boolean(false),
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::String(_) => Value::String(String::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                // A Decimal's zero: the unscaled value 0.
                Value::Bytes(_) if decimal => Value::Bytes(Bytes::from_static(&[0])),
                other => return Err(data_error(format!("Cannot mask value of type: {}", java_class(other)))),
            }),
            Some(replacement) => {
                let number_error =
                    || data_error(format!("Unable to convert {replacement} (class java.lang.String) to number"));
                let trimmed = replacement.trim();
                Ok(match value {
                    Value::Int8(_) => Value::Int8(trimmed.parse().map_err(|_| number_error())?),
                    Value::Int16(_) => Value::Int16(trimmed.parse().map_err(|_| number_error())?),
                    Value::Int32(_) => Value::Int32(trimmed.parse().map_err(|_| number_error())?),
                    Value::Int64(_) => Value::Int64(trimmed.parse().map_err(|_| number_error())?),
                    Value::Float32(_) => Value::Float32(trimmed.parse().map_err(|_| number_error())?),
                    Value::Float64(_) => Value::Float64(trimmed.parse().map_err(|_| number_error())?),
                    Value::String(_) => Value::String(replacement.clone()),
                    other => {
                        return Err(data_error(format!(
                            "Cannot mask value of type {} with custom replacement.",
                            java_class(other)
                        )));
                    }
                })
            }
        }
    }
}

impl Transformation for MaskField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                let mut entries = into_map(value, MASK_PURPOSE)?;
                for field in &self.fields {
                    let masked = match map_get(&entries, field) {
                        Some(v) => self.masked(None, v)?,
                        None => Value::Null,
                    };
                    map_put(&mut entries, field, masked);
                }
                self.operand.set(&mut record, None, Value::Map(entries));
            }
            Some(schema) => {
                let values = into_struct(value, MASK_PURPOSE)?;
                let mut out = Vec::with_capacity(values.len());
                for field in &schema.fields {
                    let original = field_value(field, &values, self.replace_null_with_default);
                    out.push(if self.fields.contains(&field.name) {
                        self.masked(Some(&field.schema), &original)?
                    } else {
                        original
                    });
                }
                self.operand.set(&mut record, Some(schema), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ReplaceField

const EXCLUDE: &str = "exclude";
const INCLUDE: &str = "include";
const RENAMES: &str = "renames";
const REPLACE_PURPOSE: &str = "field replacement";

pub fn replace_field_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            EXCLUDE,
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to exclude. This takes precedence over the fields to include.",
        ))
        .define(key(
            INCLUDE,
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to include. If specified, only these fields will be used.",
        ))
        .define(key(RENAMES, ConfigType::List, Some(""), Importance::Medium, "Field rename mappings."))
        .define(replace_null_with_default_key())
}

pub fn build_replace_field(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let mappings = c.list(RENAMES);
    let mut renames = BTreeMap::new();
    for mapping in &mappings {
        match mapping.split(':').collect::<Vec<_>>().as_slice() {
            [from, to] => {
                renames.insert(from.to_string(), to.to_string());
            }
            _ => {
                return Err(c.invalid(
                    RENAMES,
                    &format!("[{}]", mappings.join(", ")),
                    &format!("Invalid rename mapping: {mapping}"),
                ));
            }
        }
    }
    Ok(Box::new(ReplaceField {
        operand,
        exclude: c.list(EXCLUDE),
        include: c.list(INCLUDE),
        renames,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    }))
}

struct ReplaceField {
    operand: Operand,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: BTreeMap<String, String>,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl ReplaceField {
    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name) && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map(String::as_str).unwrap_or(name)
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        if matches!(self.operand.value(&record), Value::Null) {
            return Ok(Some(record));
        }
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None => {
                let entries = into_map(value, REPLACE_PURPOSE)?;
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let name = key_text(&k);
                    if self.keeps(&name) {
                        map_put(&mut out, self.renamed(&name), v);
                    }
                }
                self.operand.set(&mut record, None, Value::Map(out));
            }
            Some(schema) => {
                let values = into_struct(value, REPLACE_PURPOSE)?;
                let updated = self.cache.get_or_build(&schema, |s| {
                    let mut out = copy_schema_basics(s, SchemaType::Struct);
                    for field in s.fields.iter().filter(|f| self.keeps(&f.name)) {
                        push_field(&mut out, self.renamed(&field.name).to_string(), field.schema.clone());
                    }
                    Ok(out)
                })?;
                let out = schema
                    .fields
                    .iter()
                    .filter(|f| self.keeps(&f.name))
                    .map(|f| field_value(f, &values, self.replace_null_with_default))
                    .collect();
                self.operand.set(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// SetSchemaMetadata

const SCHEMA_NAME: &str = "schema.name";
const SCHEMA_VERSION: &str = "schema.version";

pub fn set_schema_metadata_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(optional_key(SCHEMA_NAME, ConfigType::String, Importance::High, "Schema name to set."))
        .define(optional_key(SCHEMA_VERSION, ConfigType::Int, Importance::High, "Schema version to set."))
        .define(replace_null_with_default_key())
}

pub fn build_set_schema_metadata(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let name = c.string(SCHEMA_NAME);
    let version = c.int(SCHEMA_VERSION);
    if name.is_none() && version.is_none() {
        return Err(c.error("type", "Neither schema name nor version configured"));
    }
    Ok(Box::new(SetSchemaMetadata { operand, name, version, cache: SchemaCache::default() }))
}

struct SetSchemaMetadata {
    operand: Operand,
    name: Option<String>,
    version: Option<i32>,
    cache: SchemaCache,
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let schema = self.operand.schema(&record);
        if schema.is_none() && matches!(self.operand.value(&record), Value::Null) {
            return Ok(Some(record));
        }
        let schema = require_schema(schema, "updating schema metadata")?;
        let updated = self.cache.get_or_build(schema, |s| {
            let mut out = s.clone();
            if let Some(name) = &self.name {
                out.name = Some(name.clone());
            }
            if let Some(version) = self.version {
                out.version = Some(version);
            }
            Ok(out)
        })?;
        let (_, value) = self.operand.take(&mut record);
        self.operand.set(&mut record, Some(updated), value);
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ValueToKey

const VALUE_TO_KEY_PURPOSE: &str = "copying fields from value to key";

pub fn value_to_key_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            FIELDS,
            ConfigType::List,
            None,
            Importance::High,
            "Field names on the record value to extract as the record key.",
        ))
        .define(replace_null_with_default_key())
}

pub fn build_value_to_key(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(ValueToKey {
        fields: c.non_empty_list(FIELDS)?,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    }))
}

struct ValueToKey {
    fields: Vec<String>,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl Transformation for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        match &record.value_schema {
            None => {
                let entries = require_map(&record.value, VALUE_TO_KEY_PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| (Value::String(f.clone()), map_get(entries, f).cloned().unwrap_or(Value::Null)))
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let values = require_struct(&record.value, VALUE_TO_KEY_PURPOSE)?;
                let key_schema = self.cache.get_or_build(schema, |s| {
                    let mut out = Schema::primitive(SchemaType::Struct, false);
                    for name in &self.fields {
                        let field = s.field(name).ok_or_else(|| data_error(format!("Field does not exist: {name}")))?;
                        push_field(&mut out, name.clone(), field.schema.clone());
                    }
                    Ok(out)
                })?;
                let key: Vec<Value> = self
                    .fields
                    .iter()
                    .map(|name| {
                        schema
                            .field(name)
                            .map(|f: &Field| field_value(f, values, self.replace_null_with_default))
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                record.key_schema = Some(key_schema);
                record.key = Value::Struct(key);
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn person() -> (Arc<Schema>, Value) {
        let schema = struct_schema(&[
            ("id", schema(SchemaType::Int64)),
            ("name", schema(SchemaType::String)),
            ("email", optional(SchemaType::String)),
        ]);
        (schema, Value::Struct(vec![Value::Int64(7), s("Ada"), s("ada@example.com")]))
    }

    #[test]
    fn extract_field_schemaless_and_schemad() {
        let t = transform("ExtractField$Value", &[("field", "name")]);
        assert_eq!(apply(&*t, with_value(None, smap(&[("name", s("x"))]))).value, s("x"));
        assert_eq!(apply(&*t, with_value(None, smap(&[("other", s("x"))]))).value, Value::Null);
        assert_eq!(apply(&*t, with_value(None, Value::Null)).value, Value::Null);
        assert_eq!(
            apply_error(&*t, with_value(None, Value::Int32(1))),
            "Only Map objects supported in absence of schema for [field extraction], found: java.lang.Integer"
        );
        let (schema, value) = person();
        let out = apply(&*t, with_value(Some(schema.clone()), value));
        assert_eq!(out.value, s("Ada"));
        assert_eq!(out.value_schema.expect("schema").schema_type, SchemaType::String);
        assert_eq!(
            apply_error(&*t, with_value(Some(schema.clone()), s("x"))),
            "Only Struct objects supported for [field extraction], found: java.lang.String"
        );
        let t = transform("ExtractField$Key", &[("field", "missing")]);
        assert_eq!(apply_error(&*t, with_key(Some(schema), Value::Null)), "Unknown field: missing");
    }

    #[test]
    fn extract_field_v2_nested_paths() {
        let inner = struct_schema(&[("city", schema(SchemaType::String))]);
        let outer = struct_schema(&[("address", inner)]);
        let t = transform("ExtractField$Value", &[("field", "address.city"), ("field.syntax.version", "v2")]);
        let out = apply(&*t, with_value(Some(outer), Value::Struct(vec![Value::Struct(vec![s("Paris")])])));
        assert_eq!(out.value, s("Paris"));
        let t = transform("ExtractField$Value", &[("field", "`a.b`.c"), ("field.syntax.version", "V2")]);
        let value = smap(&[("a.b", smap(&[("c", Value::Int32(1))]))]);
        assert_eq!(apply(&*t, with_value(None, value)).value, Value::Int32(1));
        // V1 takes the dotted name literally.
        let t = transform("ExtractField$Value", &[("field", "a.b")]);
        assert_eq!(apply(&*t, with_value(None, smap(&[("a.b", Value::Int32(2))]))).value, Value::Int32(2));
    }

    #[test]
    fn flatten_schemaless_and_schemad() {
        let t = transform("Flatten$Value", &[]);
        let value = smap(&[
            ("a", smap(&[("b", Value::Int32(1)), ("c", smap(&[("d", s("x"))]))])),
            ("e", Value::Null),
            ("f", Value::Array(vec![Value::Int32(1)])),
        ]);
        assert_eq!(
            apply(&*t, with_value(None, value)).value,
            smap(&[
                ("a.b", Value::Int32(1)),
                ("a.c.d", s("x")),
                ("e", Value::Null),
                ("f", Value::Array(vec![Value::Int32(1)]))
            ])
        );
        let t = transform("Flatten$Key", &[("delimiter", "_")]);
        let inner = struct_schema(&[("x", schema(SchemaType::Int32)), ("y", schema(SchemaType::String))]);
        let mut optional_inner = (*inner).clone();
        optional_inner.optional = true;
        let outer = struct_schema(&[("id", schema(SchemaType::Int64)), ("p", inner), ("q", Arc::new(optional_inner))]);
        let out = apply(
            &*t,
            with_key(
                Some(outer.clone()),
                Value::Struct(vec![Value::Int64(1), Value::Struct(vec![Value::Int32(2), s("a")]), Value::Null]),
            ),
        );
        assert_eq!(out.key, Value::Struct(vec![Value::Int64(1), Value::Int32(2), s("a"), Value::Null, Value::Null]));
        let flat = out.key_schema.expect("schema");
        let names: Vec<&str> = flat.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "p_x", "p_y", "q_x", "q_y"]);
        assert!(!flat.fields[1].schema.optional);
        assert!(flat.fields[3].schema.optional, "optional because the parent struct is");

        let map_schema = struct_schema(&[("m", schema(SchemaType::Map))]);
        let t = transform("Flatten$Value", &[]);
        assert_eq!(
            apply_error(&*t, with_value(Some(map_schema), Value::Struct(vec![Value::Map(vec![])]))),
            "Flatten transformation does not support MAP for record with schemas (for field m)."
        );
        assert_eq!(
            apply_error(&*t, with_value(None, s("x"))),
            "Only Map objects supported in absence of schema for [flattening], found: java.lang.String"
        );
    }

    #[test]
    fn hoist_field() {
        let t = transform("HoistField$Value", &[("field", "line")]);
        assert_eq!(apply(&*t, with_value(None, s("hi"))).value, smap(&[("line", s("hi"))]));
        let out = apply(&*t, with_value(Some(schema(SchemaType::Int32)), Value::Int32(5)));
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(5)]));
        let hoisted = out.value_schema.expect("schema");
        assert_eq!(hoisted.schema_type, SchemaType::Struct);
        assert_eq!(hoisted.fields[0].name, "line");
        assert_eq!(hoisted.fields[0].schema.schema_type, SchemaType::Int32);
        let t = transform("HoistField$Key", &[("field", "k")]);
        assert_eq!(apply(&*t, with_key(None, Value::Int32(1))).key, smap(&[("k", Value::Int32(1))]));
    }

    #[test]
    fn insert_field_schemaless_and_schemad() {
        let t = transform(
            "InsertField$Value",
            &[
                ("topic.field", "topic!"),
                ("partition.field", "part"),
                ("offset.field", "off?"),
                ("timestamp.field", "ts"),
                ("static.field", "instance"),
                ("static.value", "id-1"),
            ],
        );
        let mut record = with_value(None, smap(&[("a", Value::Int32(1))]));
        record.offset = Some(10);
        record.timestamp = Some(1000);
        assert_eq!(
            apply(&*t, record).value,
            smap(&[
                ("a", Value::Int32(1)),
                ("topic", s("test")),
                ("part", Value::Int32(0)),
                ("off", Value::Int64(10)),
                ("ts", Value::Int64(1000)),
                ("instance", s("id-1")),
            ])
        );

        let (schema, value) = person();
        let mut record = with_value(Some(schema), value);
        record.offset = Some(3);
        let out = apply(&*t, record);
        let updated = out.value_schema.expect("schema");
        let names: Vec<&str> = updated.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "email", "topic", "part", "off", "ts", "instance"]);
        assert!(!updated.fields[3].schema.optional, "topic! is required");
        assert!(updated.fields[4].schema.optional);
        assert_eq!(updated.fields[6].schema.name.as_deref(), Some(TIMESTAMP_LOGICAL));
        assert_eq!(
            out.value,
            Value::Struct(vec![
                Value::Int64(7),
                s("Ada"),
                s("ada@example.com"),
                s("test"),
                Value::Int32(0),
                Value::Int64(3),
                Value::Null,
                s("id-1"),
            ])
        );
        // A tombstone passes through.
        assert_eq!(apply(&*t, with_value(None, Value::Null)).value, Value::Null);
        assert_eq!(
            apply_error(&*t, with_value(None, smap(&[]))),
            "Only SinkRecord supported for [field insertion], found: org.apache.kafka.connect.source.SourceRecord"
        );
        let t = transform("InsertField$Value", &[("topic.field", "t")]);
        assert_eq!(
            apply_error(&*t, with_value(None, Value::Int32(1))),
            "Only Map objects supported in absence of schema for [field insertion], found: java.lang.Integer"
        );
    }

    #[test]
    fn insert_field_config_errors() {
        assert_eq!(build_error("InsertField$Value", &[]), "No field insertion configured");
        assert_eq!(
            build_error("InsertField$Value", &[("static.field", "x")]),
            "Invalid value null for configuration static.value: No value specified for static field: x"
        );
    }

    #[test]
    fn mask_field() {
        let t = transform("MaskField$Value", &[("fields", "s,i,b,f,l,m,missing")]);
        let value = smap(&[
            ("s", s("secret")),
            ("i", Value::Int32(42)),
            ("b", Value::Boolean(true)),
            ("f", Value::Float64(1.5)),
            ("l", Value::Array(vec![Value::Int32(1)])),
            ("m", smap(&[("k", s("v"))])),
            ("keep", s("k")),
        ]);
        assert_eq!(
            apply(&*t, with_value(None, value)).value,
            smap(&[
                ("s", s("")),
                ("i", Value::Int32(0)),
                ("b", Value::Boolean(false)),
                ("f", Value::Float64(0.0)),
                ("l", Value::Array(vec![])),
                ("m", Value::Map(vec![])),
                ("keep", s("k")),
                ("missing", Value::Null),
            ])
        );
        let t = transform("MaskField$Value", &[("fields", "name,id"), ("replacement", "****")]);
        let (schema, value) = person();
        assert_eq!(
            apply_error(&*t, with_value(Some(schema.clone()), value.clone())),
            "Unable to convert **** (class java.lang.String) to number"
        );
        let t = transform("MaskField$Value", &[("fields", "name"), ("replacement", "****")]);
        let out = apply(&*t, with_value(Some(schema.clone()), value.clone()));
        assert_eq!(out.value, Value::Struct(vec![Value::Int64(7), s("****"), s("ada@example.com")]));
        let t = transform("MaskField$Value", &[("fields", "id"), ("replacement", "-1")]);
        assert_eq!(
            apply(&*t, with_value(Some(schema), value)).value,
            Value::Struct(vec![Value::Int64(-1), s("Ada"), s("ada@example.com")])
        );
        let t = transform("MaskField$Value", &[("fields", "b"), ("replacement", "x")]);
        assert_eq!(
            apply_error(&*t, with_value(None, smap(&[("b", Value::Boolean(true))]))),
            "Cannot mask value of type class java.lang.Boolean with custom replacement."
        );
        let t = transform("MaskField$Value", &[("fields", "b")]);
        assert_eq!(
            apply_error(&*t, with_value(None, smap(&[("b", Value::Bytes(Bytes::from_static(b"x")))]))),
            "Cannot mask value of type: class [B"
        );
        assert_eq!(
            build_error("MaskField$Value", &[("fields", "")]),
            "Invalid value [] for configuration fields: Empty list"
        );
    }

    #[test]
    fn replace_field() {
        let t = transform("ReplaceField$Value", &[("exclude", "email"), ("renames", "name:full_name")]);
        let (schema, value) = person();
        let out = apply(&*t, with_value(Some(schema), value));
        assert_eq!(out.value, Value::Struct(vec![Value::Int64(7), s("Ada")]));
        let names: Vec<String> = out.value_schema.expect("schema").fields.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ["id", "full_name"]);

        let t = transform("ReplaceField$Value", &[("include", "a,b"), ("exclude", "b"), ("renames", "a:x")]);
        let value = smap(&[("a", Value::Int32(1)), ("b", Value::Int32(2)), ("c", Value::Int32(3))]);
        assert_eq!(apply(&*t, with_value(None, value)).value, smap(&[("x", Value::Int32(1))]));
        assert_eq!(
            build_error("ReplaceField$Value", &[("renames", "a:b:c,d")]),
            "Invalid value [a:b:c, d] for configuration renames: Invalid rename mapping: a:b:c"
        );
    }

    #[test]
    fn set_schema_metadata() {
        let t = transform("SetSchemaMetadata$Value", &[("schema.name", "com.example.Person"), ("schema.version", "3")]);
        let (schema, value) = person();
        let out = apply(&*t, with_value(Some(schema), value.clone()));
        let updated = out.value_schema.expect("schema");
        assert_eq!((updated.name.as_deref(), updated.version), (Some("com.example.Person"), Some(3)));
        assert_eq!(updated.fields.len(), 3);
        assert_eq!(out.value, value);
        assert_eq!(apply_error(&*t, with_value(None, s("x"))), "Schema required for [updating schema metadata]");
        assert_eq!(apply(&*t, with_value(None, Value::Null)).value, Value::Null);
        assert_eq!(build_error("SetSchemaMetadata$Key", &[]), "Neither schema name nor version configured");
        assert_eq!(
            build_error("SetSchemaMetadata$Key", &[("schema.version", "x")]),
            "Invalid value x for configuration schema.version: Not a number of type INT"
        );
    }

    #[test]
    fn value_to_key() {
        let t = transform("ValueToKey", &[("fields", "id,name")]);
        let (schema, value) = person();
        let out = apply(&*t, with_value(Some(schema.clone()), value.clone()));
        assert_eq!(out.key, Value::Struct(vec![Value::Int64(7), s("Ada")]));
        let key_schema = out.key_schema.expect("schema");
        assert_eq!(key_schema.fields.len(), 2);
        assert_eq!(key_schema.fields[1].name, "name");
        assert_eq!(out.value, value);
        let out = apply(&*t, with_value(None, smap(&[("id", Value::Int32(1)), ("x", s("y"))])));
        assert_eq!(out.key, smap(&[("id", Value::Int32(1)), ("name", Value::Null)]));
        let t = transform("ValueToKey", &[("fields", "nope")]);
        assert_eq!(apply_error(&*t, with_value(Some(schema), value)), "Field does not exist: nope");
        assert_eq!(
            apply_error(&*t, with_value(None, Value::Null)),
            "Only Map objects supported in absence of schema for [copying fields from value to key], found: null"
        );
    }

    #[test]
    fn struct_defaults_replace_nulls_unless_disabled() {
        let mut with_default = Schema::primitive(SchemaType::String, true);
        with_default.default = Some(Box::new(s("dflt")));
        let schema = struct_schema(&[("a", Arc::new(with_default))]);
        let t = transform("ReplaceField$Value", &[]);
        assert_eq!(
            apply(&*t, with_value(Some(schema.clone()), Value::Struct(vec![Value::Null]))).value,
            Value::Struct(vec![s("dflt")])
        );
        let t = transform("ReplaceField$Value", &[("replace.null.with.default", "false")]);
        assert_eq!(
            apply(&*t, with_value(Some(schema), Value::Struct(vec![Value::Null]))).value,
            Value::Struct(vec![Value::Null])
        );
    }
}
