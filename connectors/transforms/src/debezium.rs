//! Debezium's transforms used with CDC topics: `io.debezium.transforms.ExtractNewRecordState` (unwraps the change
//! event envelope into the row, as a JDBC sink wants it) and `io.debezium.transforms.ByLogicalTableRouter`
//! (re-routes several physical tables into one logical topic, keeping keys unique). Behaviour as in Debezium 3.x
//! (`ExtractNewRecordStateConfigDefinition`, `DefaultDeleteHandlingStrategy`, `ByLogicalTableRouter`); the 2.x keys
//! `drop.tombstones` and `delete.handling.mode` are still read when `delete.tombstone.handling.mode` is not set.

use std::sync::Arc;

use bytes::Bytes;
use regex::Regex;

use crate::config::{ConfigDef, ConfigType, Importance};
use crate::error::ConnectError;
use crate::record::{Field, Schema, SchemaType, Value};

use super::plugin_config::{PluginConfig, key, optional_key};
use super::routing::whole_match_regex;
use super::{ConnectRecord, Transformation};

// ---------------------------------------------------------------------------------------------------------------
// ExtractNewRecordState

const DELETE_TOMBSTONE_HANDLING_MODE: &str = "delete.tombstone.handling.mode";
const DELETE_HANDLING_MODE: &str = "delete.handling.mode";
const DROP_TOMBSTONES: &str = "drop.tombstones";
const ADD_FIELDS: &str = "add.fields";
const ADD_HEADERS: &str = "add.headers";
const ADD_FIELDS_PREFIX: &str = "add.fields.prefix";
const ADD_HEADERS_PREFIX: &str = "add.headers.prefix";
const ROUTE_BY_FIELD: &str = "route.by.field";

pub fn extract_new_record_state_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(optional_key(DELETE_TOMBSTONE_HANDLING_MODE, ConfigType::String, Importance::Medium, "How to handle delete and tombstone records: drop, tombstone (default), rewrite, rewrite-with-tombstone, delete-to-tombstone."))
        .define(optional_key(DELETE_HANDLING_MODE, ConfigType::String, Importance::Medium, "Deprecated (2.x): drop, rewrite, none."))
        .define(optional_key(DROP_TOMBSTONES, ConfigType::Boolean, Importance::Low, "Deprecated (2.x): drop tombstones (default true)."))
        .define(key(ADD_FIELDS, ConfigType::List, Some(""), Importance::Low, "Adds these fields of the change event (op, table, lsn, source.ts_ms, ...) to the value, prefixed with add.fields.prefix; `field:newName` renames."))
        .define(key(ADD_HEADERS, ConfigType::List, Some(""), Importance::Low, "Adds these fields of the change event as headers, prefixed with add.headers.prefix."))
        .define(key(ADD_FIELDS_PREFIX, ConfigType::String, Some("__"), Importance::Low, "Prefix of the added fields."))
        .define(key(ADD_HEADERS_PREFIX, ConfigType::String, Some("__"), Importance::Low, "Prefix of the added headers."))
        .define(key(ROUTE_BY_FIELD, ConfigType::String, Some(""), Importance::Low, "The column whose value becomes the topic."))
        .define(key("replace.null.with.default", ConfigType::Boolean, Some("true"), Importance::Low, "Replace null with the field's default."))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteHandling {
    /// Drop the delete event.
    Drop,
    /// Null value, value schema kept.
    NullWithSchema,
    /// A real tombstone (null value, null schema).
    Tombstone,
    /// `before` plus `__deleted: "true"`.
    Rewrite,
}

/// A field of the change event to add: where it is, and its output name.
#[derive(Debug, Clone)]
struct AddedField {
    /// `true`: in the `source` struct; `false`: in the envelope.
    in_source: bool,
    field: String,
    /// The output name without prefix (`source_ts_ms`, `op`, or the rename).
    name: String,
}

struct ExtractNewRecordState {
    delete: DeleteHandling,
    keep_tombstones: bool,
    rewrite: bool,
    fields: Vec<AddedField>,
    headers: Vec<AddedField>,
    fields_prefix: String,
    headers_prefix: String,
    route_by_field: Option<String>,
}

fn parse_added(list: Vec<String>) -> Vec<AddedField> {
    list.into_iter()
        .map(|spec| {
            let (field, rename) = match spec.split_once(':') {
                Some((f, r)) => (f.trim().to_string(), Some(r.trim().to_string())),
                None => (spec.trim().to_string(), None),
            };
            let (in_source, name, f) = match field.strip_prefix("source.") {
                Some(f) => (true, format!("source_{f}"), f.to_string()),
                None => {
                    let envelope = matches!(field.as_str(), "op" | "ts_ms" | "ts_us" | "ts_ns");
                    (!envelope, field.clone(), field.clone())
                }
            };
            AddedField { in_source, field: f, name: rename.unwrap_or(name) }
        })
        .collect()
}

pub fn build_extract_new_record_state(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    let (delete, keep_tombstones) = match c.string(DELETE_TOMBSTONE_HANDLING_MODE) {
        Some(mode) => match mode.to_ascii_lowercase().as_str() {
            "drop" => (DeleteHandling::Drop, false),
            "tombstone" => (DeleteHandling::NullWithSchema, false),
            "rewrite" => (DeleteHandling::Rewrite, false),
            "rewrite-with-tombstone" => (DeleteHandling::Rewrite, true),
            "delete-to-tombstone" => (DeleteHandling::Tombstone, false),
            _ => {
                return Err(c.invalid(
                    DELETE_TOMBSTONE_HANDLING_MODE,
                    &mode,
                    "must be one of drop, tombstone, rewrite, rewrite-with-tombstone, delete-to-tombstone",
                ));
            }
        },
        None if c.raw(DELETE_HANDLING_MODE).is_some() || c.raw(DROP_TOMBSTONES).is_some() => {
            let mode = c.string(DELETE_HANDLING_MODE).unwrap_or_else(|| "drop".into());
            let delete = match mode.to_ascii_lowercase().as_str() {
                "drop" => DeleteHandling::Drop,
                "none" => DeleteHandling::NullWithSchema,
                "rewrite" => DeleteHandling::Rewrite,
                _ => return Err(c.invalid(DELETE_HANDLING_MODE, &mode, "must be one of drop, rewrite, none")),
            };
            let drop = c.raw(DROP_TOMBSTONES).map(|v| !v.trim().eq_ignore_ascii_case("false")).unwrap_or(true);
            (delete, !drop)
        }
        None => (DeleteHandling::NullWithSchema, false),
    };
    let route = c.string(ROUTE_BY_FIELD).filter(|s| !s.is_empty());
    Ok(Box::new(ExtractNewRecordState {
        delete,
        keep_tombstones,
        rewrite: delete == DeleteHandling::Rewrite,
        fields: parse_added(c.list(ADD_FIELDS)),
        headers: parse_added(c.list(ADD_HEADERS)),
        fields_prefix: c.string(ADD_FIELDS_PREFIX).unwrap_or_else(|| "__".into()),
        headers_prefix: c.string(ADD_HEADERS_PREFIX).unwrap_or_else(|| "__".into()),
        route_by_field: route,
    }))
}

fn field_of<'a>(schema: &'a Schema, value: &'a Value, name: &str) -> Option<(&'a Arc<Schema>, &'a Value)> {
    let f = schema.field(name)?;
    match value {
        Value::Struct(vals) => Some((&f.schema, vals.get(f.index)?)),
        _ => None,
    }
}

fn optional(schema: &Schema) -> Arc<Schema> {
    let mut s = schema.clone();
    s.optional = true;
    Arc::new(s)
}

fn header_text(v: &Value) -> Option<Bytes> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Int64(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    };
    Some(Bytes::from(s))
}

impl ExtractNewRecordState {
    fn lookup<'a>(
        &self,
        envelope: &'a Schema,
        value: &'a Value,
        f: &AddedField,
    ) -> Option<(&'a Arc<Schema>, &'a Value)> {
        if f.in_source {
            let (ss, sv) = field_of(envelope, value, "source")?;
            field_of(ss, sv, &f.field)
        } else {
            field_of(envelope, value, &f.field)
        }
    }
}

impl Transformation for ExtractNewRecordState {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        // A tombstone.
        if matches!(record.value, Value::Null) && record.value_schema.is_none() {
            return Ok(self.keep_tombstones.then_some(record));
        }
        let Some(schema) = record.value_schema.clone() else { return Ok(Some(record)) };
        let is_envelope = schema.schema_type == SchemaType::Struct
            && schema.name.as_deref().is_some_and(|n| n.ends_with(".Envelope"))
            && schema.field("op").is_some()
            && schema.field("after").is_some();
        if !is_envelope {
            return Ok(Some(record));
        }
        let op = match field_of(&schema, &record.value, "op") {
            Some((_, Value::String(op))) => op.clone(),
            _ => return Ok(Some(record)),
        };
        if op == "t" {
            return Ok(None);
        }
        if op == "m" {
            return Ok(Some(record));
        }
        let deleted = op == "d";
        let row_field = if deleted { "before" } else { "after" };
        let Some((row_schema, row_value)) = field_of(&schema, &record.value, row_field) else {
            return Ok(Some(record));
        };
        let (row_schema, row_value) = (row_schema.clone(), row_value.clone());
        // Headers first (they read the envelope).
        for h in &self.headers {
            let v = self.lookup(&schema, &record.value, h).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
            record.headers.push((format!("{}{}", self.headers_prefix, h.name.replace('.', "_")), header_text(&v)));
        }
        if deleted {
            match self.delete {
                DeleteHandling::Drop => return Ok(None),
                DeleteHandling::Tombstone => {
                    record.value_schema = None;
                    record.value = Value::Null;
                    return Ok(Some(record));
                }
                DeleteHandling::NullWithSchema => {
                    record.value_schema = Some(row_schema);
                    record.value = Value::Null;
                    return Ok(Some(record));
                }
                DeleteHandling::Rewrite => {}
            }
        }
        let route = match &self.route_by_field {
            Some(f) => match field_of(&row_schema, &row_value, f) {
                Some((_, Value::String(s))) => Some(s.clone()),
                _ => None,
            },
            None => None,
        };
        if !self.rewrite && self.fields.is_empty() {
            record.value_schema = Some(row_schema);
            record.value = row_value;
        } else {
            let mut s = Schema::primitive(SchemaType::Struct, false);
            s.name = row_schema.name.clone();
            s.version = row_schema.version;
            s.doc = row_schema.doc.clone();
            s.parameters = row_schema.parameters.clone();
            s.fields = row_schema.fields.clone();
            let mut vals = match row_value {
                Value::Struct(v) => v,
                _ => vec![Value::Null; s.fields.len()],
            };
            let mut push = |s: &mut Schema, name: String, fs: Arc<Schema>, v: Value| {
                let index = s.fields.len();
                s.fields.push(Field { name, index, schema: fs });
                vals.push(v);
            };
            if self.rewrite {
                push(
                    &mut s,
                    format!("{}deleted", self.fields_prefix),
                    Arc::new(Schema::primitive(SchemaType::String, true)),
                    Value::String(deleted.to_string()),
                );
            }
            for f in &self.fields {
                let (fs, v) = match self.lookup(&schema, &record.value, f) {
                    Some((fs, v)) => (optional(fs), v.clone()),
                    None => (Arc::new(Schema::primitive(SchemaType::String, true)), Value::Null),
                };
                push(&mut s, format!("{}{}", self.fields_prefix, f.name.replace('.', "_")), fs, v);
            }
            record.value_schema = Some(Arc::new(s));
            record.value = Value::Struct(vals);
        }
        if let Some(topic) = route {
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ByLogicalTableRouter

const TOPIC_REGEX: &str = "topic.regex";
const TOPIC_REPLACEMENT: &str = "topic.replacement";
const KEY_ENFORCE_UNIQUENESS: &str = "key.enforce.uniqueness";
const KEY_FIELD_NAME: &str = "key.field.name";
const KEY_FIELD_REGEX: &str = "key.field.regex";
const KEY_FIELD_REPLACEMENT: &str = "key.field.replacement";

pub fn by_logical_table_router_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            TOPIC_REGEX,
            ConfigType::String,
            None,
            Importance::Low,
            "The regex used for extracting the name of the logical table from the original topic name.",
        ))
        .define(key(
            TOPIC_REPLACEMENT,
            ConfigType::String,
            None,
            Importance::Low,
            "The replacement string used in conjunction with topic.regex.",
        ))
        .define(key(
            KEY_ENFORCE_UNIQUENESS,
            ConfigType::Boolean,
            Some("true"),
            Importance::Low,
            "Augment each record's key with a field denoting the source table.",
        ))
        .define(key(
            KEY_FIELD_NAME,
            ConfigType::String,
            Some("__dbz__physicalTableIdentifier"),
            Importance::Low,
            "The name of the key field denoting the source table.",
        ))
        .define(optional_key(
            KEY_FIELD_REGEX,
            ConfigType::String,
            Importance::Low,
            "The regex used for extracting the physical table identifier from the original topic name.",
        ))
        .define(optional_key(
            KEY_FIELD_REPLACEMENT,
            ConfigType::String,
            Importance::Low,
            "The replacement string used in conjunction with key.field.regex.",
        ))
        .define(key("schema.name.adjustment.mode", ConfigType::String, Some("none"), Importance::Low, "none or avro."))
        .define(key(
            "logical.table.cache.size",
            ConfigType::Int,
            Some("16"),
            Importance::Low,
            "The size of the cache of logical table names.",
        ))
}

struct ByLogicalTableRouter {
    topic_regex: Regex,
    topic_replacement: String,
    enforce_uniqueness: bool,
    key_field: String,
    key_regex: Option<(Regex, String)>,
}

pub fn build_by_logical_table_router(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    let regex = c.string(TOPIC_REGEX).unwrap_or_default();
    let topic_regex = whole_match_regex(&regex).map_err(|e| c.invalid(TOPIC_REGEX, &regex, &e))?;
    let key_regex = match (c.string(KEY_FIELD_REGEX), c.string(KEY_FIELD_REPLACEMENT)) {
        (Some(r), Some(rep)) => {
            Some((whole_match_regex(&r).map_err(|e| c.invalid(KEY_FIELD_REGEX, &r, &e))?, java_replacement(&rep)))
        }
        _ => None,
    };
    Ok(Box::new(ByLogicalTableRouter {
        topic_regex,
        topic_replacement: java_replacement(&c.string(TOPIC_REPLACEMENT).unwrap_or_default()),
        enforce_uniqueness: c.boolean(KEY_ENFORCE_UNIQUENESS),
        key_field: c.string(KEY_FIELD_NAME).unwrap_or_else(|| "__dbz__physicalTableIdentifier".into()),
        key_regex,
    }))
}

/// Java's `$1` group references to the regex crate's `${1}`.
fn java_replacement(rep: &str) -> String {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{digits}}}"));
            }
            other => out.push(other),
        }
    }
    out
}

fn renamed(schema: &Schema, name: String) -> Schema {
    let mut s = schema.clone();
    s.name = Some(name);
    s
}

impl Transformation for ByLogicalTableRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let old_topic = record.topic.clone();
        if !self.topic_regex.is_match(&old_topic) {
            return Ok(Some(record));
        }
        let new_topic = self.topic_regex.replace(&old_topic, self.topic_replacement.as_str()).into_owned();
        if new_topic.is_empty() {
            return Ok(Some(record));
        }
        // Key: renamed `<new>.Key` with the physical table identifier appended.
        if let Some(ks) = record.key_schema.clone()
            && ks.schema_type == SchemaType::Struct
        {
            let mut s = renamed(&ks, format!("{new_topic}.Key"));
            let mut vals = match std::mem::replace(&mut record.key, Value::Null) {
                Value::Struct(v) => v,
                _ => vec![Value::Null; s.fields.len()],
            };
            if self.enforce_uniqueness {
                let id = match &self.key_regex {
                    Some((r, rep)) if r.is_match(&old_topic) => r.replace(&old_topic, rep.as_str()).into_owned(),
                    _ => old_topic.clone(),
                };
                let index = s.fields.len();
                s.fields.push(Field {
                    name: self.key_field.clone(),
                    index,
                    schema: Arc::new(Schema::primitive(SchemaType::String, false)),
                });
                vals.push(Value::String(id));
            }
            record.key_schema = Some(Arc::new(s));
            record.key = Value::Struct(vals);
        }
        // Value: `<new>.Envelope` with `<new>.Value` rows.
        if let Some(vs) = record.value_schema.clone()
            && vs.schema_type == SchemaType::Struct
            && vs.name.as_deref().is_some_and(|n| n.ends_with(".Envelope"))
        {
            let mut s = renamed(&vs, format!("{new_topic}.Envelope"));
            for f in s.fields.iter_mut() {
                if (f.name == "before" || f.name == "after") && f.schema.schema_type == SchemaType::Struct {
                    f.schema = Arc::new(renamed(&f.schema, format!("{new_topic}.Value")));
                }
            }
            record.value_schema = Some(Arc::new(s));
        }
        record.topic = new_topic;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn envelope(op: &str, before: Value, after: Value) -> ConnectRecord {
        let row = Arc::new({
            let mut s = (*struct_schema(&[("id", schema(SchemaType::Int32))])).clone();
            s.name = Some("p.s.t.Value".into());
            s.optional = true;
            s
        });
        let source = struct_schema(&[
            ("table", schema(SchemaType::String)),
            ("lsn", crate::test_support::optional(SchemaType::Int64)),
        ]);
        let mut env = (*struct_schema(&[
            ("before", row.clone()),
            ("after", row),
            ("source", source),
            ("op", schema(SchemaType::String)),
            ("ts_ms", crate::test_support::optional(SchemaType::Int64)),
        ]))
        .clone();
        env.name = Some("p.s.t.Envelope".into());
        let mut r = with_value(
            Some(Arc::new(env)),
            Value::Struct(vec![before, after, Value::Struct(vec![s("t"), Value::Int64(42)]), s(op), Value::Int64(1)]),
        );
        r.topic = "p.s.t".into();
        r
    }

    #[test]
    fn unwraps_and_rewrites() {
        let t = transform("io.debezium.transforms.ExtractNewRecordState", &[]);
        let out = apply(t.as_ref(), envelope("c", Value::Null, Value::Struct(vec![Value::Int32(1)])));
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(1)]));
        assert_eq!(out.value_schema.unwrap().name.as_deref(), Some("p.s.t.Value"));
        let d = apply(t.as_ref(), envelope("d", Value::Struct(vec![Value::Int32(1)]), Value::Null));
        assert_eq!(d.value, Value::Null);
        assert!(d.value_schema.is_some());

        let t = transform(
            "io.debezium.transforms.ExtractNewRecordState",
            &[("delete.tombstone.handling.mode", "rewrite"), ("add.fields", "op,table,lsn,source.ts_ms")],
        );
        let d = apply(t.as_ref(), envelope("d", Value::Struct(vec![Value::Int32(2)]), Value::Null));
        let schema = d.value_schema.unwrap();
        let names: Vec<_> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "__deleted", "__op", "__table", "__lsn", "__source_ts_ms"]);
        assert_eq!(
            d.value,
            Value::Struct(vec![Value::Int32(2), s("true"), s("d"), s("t"), Value::Int64(42), Value::Null])
        );
        let mut tomb = ConnectRecord::new("p.s.t");
        tomb.key = Value::Int32(1);
        assert!(t.apply(tomb).unwrap().is_none());
    }

    #[test]
    fn routes_logical_tables() {
        let t = transform(
            "io.debezium.transforms.ByLogicalTableRouter",
            &[("topic.regex", "(.*)customers_shard(.*)"), ("topic.replacement", "$1customers_all_shards")],
        );
        let mut r = envelope("c", Value::Null, Value::Struct(vec![Value::Int32(1)]));
        r.topic = "db.public.customers_shard1".into();
        r.key_schema = Some(struct_schema(&[("id", schema(SchemaType::Int32))]));
        r.key = Value::Struct(vec![Value::Int32(1)]);
        let out = apply(t.as_ref(), r);
        assert_eq!(out.topic, "db.public.customers_all_shards");
        assert_eq!(out.key, Value::Struct(vec![Value::Int32(1), s("db.public.customers_shard1")]));
        assert_eq!(out.key_schema.unwrap().name.as_deref(), Some("db.public.customers_all_shards.Key"));
        assert_eq!(out.value_schema.unwrap().name.as_deref(), Some("db.public.customers_all_shards.Envelope"));
    }
}
