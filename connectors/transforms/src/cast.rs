//! `Cast$Key` / `Cast$Value`: cast fields, or the whole key or value, to another primitive type.

use std::sync::Arc;

use crate::config::{ConfigDef, ConfigType, Importance};
use crate::error::ConnectError;
use crate::record::{Schema, SchemaType, Value};
use crate::values::{java_double_string, java_float_string};

use super::plugin_config::{PluginConfig, REPLACE_NULL_WITH_DEFAULT, key, replace_null_with_default_key};
use super::support::{
    DATE_LOGICAL, SchemaCache, TIME_LOGICAL, TIMESTAMP_LOGICAL, base64, copy_schema_basics, data_error, field_value,
    inferred_type, into_map, into_struct, java_class, map_get, map_put, push_field,
};
use super::{ConnectRecord, Operand, Transformation};

const SPEC: &str = "spec";
const PURPOSE: &str = "cast types";

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            SPEC,
            ConfigType::List,
            None,
            Importance::High,
            "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value. Valid types are int8, int16, int32, int64, float32, float64, boolean, and string. Note that binary fields can only be cast to string.",
        ))
        .define(replace_null_with_default_key())
}

const OUTPUT_TYPES: [SchemaType; 8] = [
    SchemaType::Int8,
    SchemaType::Int16,
    SchemaType::Int32,
    SchemaType::Int64,
    SchemaType::Float32,
    SchemaType::Float64,
    SchemaType::Boolean,
    SchemaType::String,
];

fn type_list(types: &[SchemaType]) -> String {
    format!("[{}]", types.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "))
}

fn parse_type(name: &str) -> Option<SchemaType> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "INT8" => SchemaType::Int8,
        "INT16" => SchemaType::Int16,
        "INT32" => SchemaType::Int32,
        "INT64" => SchemaType::Int64,
        "FLOAT32" => SchemaType::Float32,
        "FLOAT64" => SchemaType::Float64,
        "BOOLEAN" => SchemaType::Boolean,
        "STRING" => SchemaType::String,
        "BYTES" => SchemaType::Bytes,
        "ARRAY" => SchemaType::Array,
        "MAP" => SchemaType::Map,
        "STRUCT" => SchemaType::Struct,
        _ => return None,
    })
}

/// The casts of a spec: per field, or one for the whole value.
#[derive(Debug, Clone, PartialEq)]
enum CastSpec {
    Whole(SchemaType),
    Fields(Vec<(String, SchemaType)>),
}

fn parse_spec(c: &PluginConfig) -> Result<CastSpec, ConnectError> {
    let mappings = c.list(SPEC);
    if mappings.is_empty() {
        return Err(c.error(SPEC, "Must specify at least one field to cast."));
    }
    let output = |t: SchemaType| {
        if OUTPUT_TYPES.contains(&t) {
            Ok(t)
        } else {
            Err(c.error(
                SPEC,
                format!(
                    "Cast transformation does not support casting to {}; supported types are {}",
                    t.name(),
                    type_list(&OUTPUT_TYPES)
                ),
            ))
        }
    };
    let invalid_type = |name: &str| c.error(SPEC, format!("Invalid type found in casting spec: {}", name.trim()));
    let mut whole = None;
    let mut fields = Vec::new();
    for mapping in &mappings {
        let parts: Vec<&str> = mapping.split(':').collect();
        match parts.as_slice() {
            [t] => whole = Some(output(parse_type(t).ok_or_else(|| invalid_type(t))?)?),
            [field, t] => {
                let t = output(parse_type(t).ok_or_else(|| invalid_type(t))?)?;
                let field = field.trim().to_string();
                fields.retain(|(f, _): &(String, SchemaType)| *f != field);
                fields.push((field, t));
            }
            // Kafka Connect reuses ReplaceField's message (and key) here.
            _ => {
                return Err(c.invalid(
                    "renames",
                    &format!("[{}]", mappings.join(", ")),
                    &format!("Invalid rename mapping: {mapping}"),
                ));
            }
        }
    }
    match whole {
        Some(_) if mappings.len() > 1 => Err(c.error(
            SPEC,
            "Cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec",
        )),
        Some(t) => Ok(CastSpec::Whole(t)),
        None => Ok(CastSpec::Fields(fields)),
    }
}

pub fn build(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(Cast {
        operand,
        spec: parse_spec(c)?,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    }))
}

struct Cast {
    operand: Operand,
    spec: CastSpec,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl Cast {
    fn target_of(&self, field: &str) -> Option<SchemaType> {
        match &self.spec {
            CastSpec::Whole(_) => None,
            CastSpec::Fields(fields) => fields.iter().find(|(f, _)| f == field).map(|(_, t)| *t),
        }
    }

    fn updated_schema(&self, schema: &Schema) -> Result<Schema, ConnectError> {
        let mut updated = match &self.spec {
            CastSpec::Whole(t) => copy_schema_basics(schema, *t),
            CastSpec::Fields(_) => {
                let mut updated = copy_schema_basics(schema, SchemaType::Struct);
                for field in &schema.fields {
                    let field_schema = match self.target_of(&field.name) {
                        Some(t) => {
                            let mut cast = Schema::primitive(t, field.schema.optional);
                            if let Some(default) = &field.schema.default {
                                cast.default = Some(Box::new(cast_value(Some(&field.schema), default, t)?));
                            }
                            Arc::new(cast)
                        }
                        None => field.schema.clone(),
                    };
                    push_field(&mut updated, field.name.clone(), field_schema);
                }
                updated
            }
        };
        updated.optional = schema.optional;
        if let Some(default) = &schema.default
            && let CastSpec::Whole(t) = self.spec
        {
            updated.default = Some(Box::new(cast_value(Some(schema), default, t)?));
        }
        Ok(updated)
    }
}

impl Transformation for Cast {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        if matches!(self.operand.value(&record), Value::Null) {
            return Ok(Some(record));
        }
        let (schema, value) = self.operand.take(&mut record);
        let (schema, value) = match schema {
            None => match self.spec {
                CastSpec::Whole(t) => (None, cast_value(None, &value, t)?),
                CastSpec::Fields(ref fields) => {
                    let mut entries = into_map(value, PURPOSE)?;
                    for (field, t) in fields {
                        let cast = match map_get(&entries, field) {
                            Some(v) => cast_value(None, v, *t)?,
                            None => Value::Null,
                        };
                        map_put(&mut entries, field, cast);
                    }
                    (None, Value::Map(entries))
                }
            },
            Some(schema) => {
                let updated = self.cache.get_or_build(&schema, |s| self.updated_schema(s))?;
                match self.spec {
                    CastSpec::Whole(t) => {
                        let cast = cast_value(Some(&schema), &value, t)?;
                        (Some(updated), cast)
                    }
                    CastSpec::Fields(_) => {
                        let values = into_struct(value, PURPOSE)?;
                        let mut out = Vec::with_capacity(values.len());
                        for field in &schema.fields {
                            let original = field_value(field, &values, self.replace_null_with_default);
                            out.push(match self.target_of(&field.name) {
                                Some(t) => cast_value(Some(&field.schema), &original, t)?,
                                None => original,
                            });
                        }
                        (Some(updated), Value::Struct(out))
                    }
                }
            }
        };
        self.operand.set(&mut record, schema, value);
        Ok(Some(record))
    }
}

const INPUT_TYPES: [SchemaType; 9] = [
    SchemaType::Int8,
    SchemaType::Int16,
    SchemaType::Int32,
    SchemaType::Int64,
    SchemaType::Float32,
    SchemaType::Float64,
    SchemaType::Boolean,
    SchemaType::String,
    SchemaType::Bytes,
];

/// A number as Java's `Number` sees it, to narrow like `byteValue()`, `intValue()`...
enum Number {
    Integer(i64),
    Float(f64),
}

/// Casts one value like Kafka Connect's `Cast.castValueToType`.
fn cast_value(schema: Option<&Schema>, value: &Value, target: SchemaType) -> Result<Value, ConnectError> {
    if matches!(value, Value::Null) {
        return Ok(Value::Null);
    }
    let from = match schema {
        Some(s) => s.schema_type,
        None => inferred_type(value).unwrap_or(SchemaType::Struct),
    };
    if !INPUT_TYPES.contains(&from) {
        return Err(data_error(format!(
            "Cast transformation does not support casting from {}; supported types are {}",
            from.name(),
            type_list(&INPUT_TYPES)
        )));
    }
    let logical = schema.and_then(|s| s.name.as_deref());
    if target == SchemaType::String {
        return Ok(Value::String(match (logical, value) {
            (Some(name), Value::Int32(_) | Value::Int64(_))
                if name == DATE_LOGICAL || name == TIME_LOGICAL || name == TIMESTAMP_LOGICAL =>
            {
                logical_text(name, value)
            }
            _ => java_to_string(value),
        }));
    }
    let out_of_range =
        || data_error(format!("Value ({}) was out of range for requested data type", java_to_string(value)));
    let number = match value {
        Value::Int8(v) => Number::Integer(i64::from(*v)),
        Value::Int16(v) => Number::Integer(i64::from(*v)),
        Value::Int32(v) => Number::Integer(i64::from(*v)),
        Value::Int64(v) => Number::Integer(*v),
        Value::Float32(v) => Number::Float(f64::from(*v)),
        Value::Float64(v) => Number::Float(*v),
        Value::Boolean(b) => Number::Integer(i64::from(*b)),
        Value::String(text) => {
            return parse_string(text, target).ok_or_else(out_of_range);
        }
        other => return Err(data_error(format!("Unexpected type in Cast transformation: {}", java_class(other)))),
    };
    if let (Value::Boolean(b), SchemaType::Float32 | SchemaType::Float64 | SchemaType::Boolean) = (value, target) {
        return Ok(match target {
            SchemaType::Float32 => Value::Float32(if *b { 1.0 } else { 0.0 }),
            SchemaType::Float64 => Value::Float64(if *b { 1.0 } else { 0.0 }),
            _ => Value::Boolean(*b),
        });
    }
    // Java's narrowing: float to integer saturates (NaN is 0), then integers wrap.
    let as_long = match number {
        Number::Integer(v) => v,
        Number::Float(v) => v as i64,
    };
    let as_int = match number {
        Number::Integer(v) => v as i32,
        Number::Float(v) => v as i32,
    };
    Ok(match target {
        SchemaType::Int8 => Value::Int8(as_int as i8),
        SchemaType::Int16 => Value::Int16(as_int as i16),
        SchemaType::Int32 => Value::Int32(as_int),
        SchemaType::Int64 => Value::Int64(as_long),
        SchemaType::Float32 => Value::Float32(match number {
            Number::Integer(v) => v as f32,
            Number::Float(v) => v as f32,
        }),
        SchemaType::Float64 => Value::Float64(match number {
            Number::Integer(v) => v as f64,
            Number::Float(v) => v,
        }),
        // `Number.longValue() != 0`: 0.5 is false.
        SchemaType::Boolean => Value::Boolean(as_long != 0),
        other => {
            return Err(data_error(format!("{} is not supported in the Cast transformation.", other.name())));
        }
    })
}

/// `Byte.parseByte`, `Integer.parseInt`, `Double.parseDouble`, `Boolean.parseBoolean`...
fn parse_string(text: &str, target: SchemaType) -> Option<Value> {
    Some(match target {
        SchemaType::Int8 => Value::Int8(text.parse().ok()?),
        SchemaType::Int16 => Value::Int16(text.parse().ok()?),
        SchemaType::Int32 => Value::Int32(text.parse().ok()?),
        SchemaType::Int64 => Value::Int64(text.parse().ok()?),
        // Java's floating-point parsing ignores surrounding whitespace.
        SchemaType::Float32 => Value::Float32(text.trim().parse().ok()?),
        SchemaType::Float64 => Value::Float64(text.trim().parse().ok()?),
        SchemaType::Boolean => Value::Boolean(text.eq_ignore_ascii_case("true")),
        _ => return None,
    })
}

/// Java's `toString()` of a value; bytes are base64 as Cast encodes them.
fn java_to_string(value: &Value) -> String {
    match value {
        Value::Float32(v) => java_float_string(*v),
        Value::Float64(v) => java_double_string(*v),
        Value::Bytes(b) => base64(b),
        other => {
            let mut out = String::new();
            crate::values::write_text(None, other, &mut out);
            out
        }
    }
}

/// Logical dates, times and timestamps as `Values.dateFormatFor` renders the `java.util.Date` they stand for.
fn logical_text(name: &str, value: &Value) -> String {
    let millis = match (name, value) {
        (DATE_LOGICAL, Value::Int32(days)) => i64::from(*days) * 86_400_000,
        (_, Value::Int32(ms)) => i64::from(*ms),
        (_, Value::Int64(ms)) => *ms,
        (_, other) => return java_to_string(other),
    };
    super::date_format::iso_text(millis)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn casts_whole_schemaless_values() {
        let t = transform("Cast$Value", &[("spec", "int8")]);
        assert_eq!(apply(&*t, with_value(None, Value::Int32(300))).value, Value::Int8(44));
        assert_eq!(apply(&*t, with_value(None, s("42"))).value, Value::Int8(42));
        assert_eq!(apply(&*t, with_value(None, Value::Boolean(true))).value, Value::Int8(1));
        assert_eq!(apply(&*t, with_value(None, Value::Float64(-7.9))).value, Value::Int8(-7));
        assert_eq!(
            apply_error(&*t, with_value(None, s("300"))),
            "Value (300) was out of range for requested data type"
        );
        let t = transform("Cast$Value", &[("spec", "string")]);
        assert_eq!(apply(&*t, with_value(None, Value::Float64(1.0))).value, s("1.0"));
        assert_eq!(apply(&*t, with_value(None, Value::Bytes(bytes::Bytes::from_static(b"foo")))).value, s("Zm9v"));
        let t = transform("Cast$Value", &[("spec", "boolean")]);
        assert_eq!(apply(&*t, with_value(None, s("TRUE"))).value, Value::Boolean(true));
        assert_eq!(apply(&*t, with_value(None, Value::Float64(0.5))).value, Value::Boolean(false));
        let t = transform("Cast$Value", &[("spec", "float64")]);
        assert_eq!(apply(&*t, with_value(None, Value::Int64(3))).value, Value::Float64(3.0));
        let t = transform("Cast$Value", &[("spec", "int32")]);
        assert_eq!(
            apply_error(&*t, with_value(None, Value::Bytes(bytes::Bytes::from_static(b"x")))),
            "Unexpected type in Cast transformation: class [B"
        );
        assert_eq!(
            apply_error(&*t, with_value(None, smap(&[]))),
            "Cast transformation does not support casting from MAP; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]"
        );
        // Null passes through.
        assert_eq!(apply(&*t, with_value(None, Value::Null)).value, Value::Null);
    }

    #[test]
    fn casts_schemaless_fields() {
        let t = transform("Cast$Value", &[("spec", "a:int64, b:string, missing:int8")]);
        let out = apply(&*t, with_value(None, smap(&[("a", s("5")), ("b", Value::Int32(7)), ("c", s("x"))])));
        assert_eq!(out.value, smap(&[("a", Value::Int64(5)), ("b", s("7")), ("c", s("x")), ("missing", Value::Null)]));
        assert_eq!(
            apply_error(&*t, with_value(None, s("x"))),
            "Only Map objects supported in absence of schema for [cast types], found: java.lang.String"
        );
    }

    #[test]
    fn casts_struct_fields_and_schema() {
        let schema = struct_schema(&[
            ("int8", schema(SchemaType::Int8)),
            ("opt", optional(SchemaType::Int32)),
            ("keep", schema(SchemaType::String)),
        ]);
        let t = transform("Cast$Value", &[("spec", "int8:int32,opt:string")]);
        let out = apply(&*t, with_value(Some(schema), Value::Struct(vec![Value::Int8(8), Value::Null, s("k")])));
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(8), Value::Null, s("k")]));
        let updated = out.value_schema.expect("schema");
        assert_eq!(updated.fields[0].schema.schema_type, SchemaType::Int32);
        assert!(!updated.fields[0].schema.optional);
        assert_eq!(updated.fields[1].schema.schema_type, SchemaType::String);
        assert!(updated.fields[1].schema.optional);
        assert_eq!(updated.fields[2].schema.schema_type, SchemaType::String);

        let t = transform("Cast$Key", &[("spec", "int16")]);
        let out = apply(&*t, with_key(Some(schema_named_int64()), Value::Int64(65537)));
        assert_eq!(out.key, Value::Int16(1));
        assert_eq!(out.key_schema.expect("schema").schema_type, SchemaType::Int16);
        let t = transform("Cast$Value", &[("spec", "a:int8")]);
        assert_eq!(
            apply_error(&*t, with_value(Some(schema_named_int64()), Value::Int64(1))),
            "Only Struct objects supported for [cast types], found: java.lang.Long"
        );
    }

    fn schema_named_int64() -> Arc<Schema> {
        schema(SchemaType::Int64)
    }

    #[test]
    fn logical_timestamps_cast_to_iso_strings() {
        let mut ts = Schema::primitive(SchemaType::Int64, false);
        ts.name = Some(TIMESTAMP_LOGICAL.into());
        let t = transform("Cast$Value", &[("spec", "string")]);
        let out = apply(&*t, with_value(Some(Arc::new(ts)), Value::Int64(1_500_000_000_123)));
        assert_eq!(out.value, s("2017-07-14T02:40:00.123Z"));
    }

    #[test]
    fn spec_errors() {
        assert_eq!(build_error("Cast$Value", &[("spec", "")]), "Must specify at least one field to cast.");
        assert_eq!(build_error("Cast$Value", &[("spec", "a:nope")]), "Invalid type found in casting spec: nope");
        assert_eq!(
            build_error("Cast$Value", &[("spec", "a:bytes")]),
            "Cast transformation does not support casting to BYTES; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING]"
        );
        assert_eq!(
            build_error("Cast$Value", &[("spec", "int8,a:int16")]),
            "Cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec"
        );
        assert_eq!(
            build_error("Cast$Value", &[("spec", "a:b:c")]),
            "Invalid value [a:b:c] for configuration renames: Invalid rename mapping: a:b:c"
        );
        assert_eq!(
            build_error("Cast$Value", &[]),
            "Missing required configuration \"spec\" which has no default value."
        );
    }
}
