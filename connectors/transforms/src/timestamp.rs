//! `TimestampConverter$Key` / `$Value`: convert a timestamp (the whole key/value or one field) between a
//! formatted string, Unix time, and Kafka Connect's Date, Time and Timestamp logical types, in UTC.

use std::sync::Arc;

use crate::config::{ConfigDef, ConfigType, Importance};
use crate::error::ConnectError;
use crate::record::{Schema, SchemaType, Value};

use super::date_format::DateFormat;
use super::plugin_config::{PluginConfig, REPLACE_NULL_WITH_DEFAULT, key, replace_null_with_default_key};
use super::support::{
    DATE_LOGICAL, SchemaCache, TIME_LOGICAL, TIMESTAMP_LOGICAL, copy_schema_basics, data_error, field_value, into_map,
    into_struct, java_class, logical_schema, map_get, map_put, primitive, push_field, schema_text,
};
use super::{ConnectRecord, Operand, Transformation};

const FIELD: &str = "field";
const TARGET_TYPE: &str = "target.type";
const FORMAT: &str = "format";
const UNIX_PRECISION: &str = "unix.precision";
const PURPOSE: &str = "converting timestamp formats";
const MILLIS_PER_DAY: i64 = 86_400_000;

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            FIELD,
            ConfigType::String,
            Some(""),
            Importance::High,
            "The field containing the timestamp, or empty if the entire value is a timestamp",
        ))
        .define(key(
            TARGET_TYPE,
            ConfigType::String,
            None,
            Importance::High,
            "The desired timestamp representation: string, unix, Date, Time, or Timestamp",
        ))
        .define(key(
            FORMAT,
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string.",
        ))
        .define(
            key(
                UNIX_PRECISION,
                ConfigType::String,
                Some("milliseconds"),
                Importance::Low,
                "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds. Used to generate the output when type=unix or used to parse the input if the input is a Long.Note: This SMT will cause precision loss during conversions from, and to, values with sub-millisecond components.",
            ),
        )
        .define(replace_null_with_default_key())
}

/// A representation of a timestamp (`target.type`, or the type of an input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimestampType {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnixPrecision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

pub fn build(c: &PluginConfig, operand: Operand) -> Result<Box<dyn Transformation>, ConnectError> {
    let target_text = c.string(TARGET_TYPE).unwrap_or_default();
    // Kafka Connect's `ValidString` is case-sensitive here.
    let target = match target_text.as_str() {
        "string" => TimestampType::String,
        "unix" => TimestampType::Unix,
        "Date" => TimestampType::Date,
        "Time" => TimestampType::Time,
        "Timestamp" => TimestampType::Timestamp,
        other => {
            return Err(c.invalid(TARGET_TYPE, other, "String must be one of: string, unix, Date, Time, Timestamp"));
        }
    };
    let pattern = c.string(FORMAT).unwrap_or_default();
    if target == TimestampType::String && pattern.trim().is_empty() {
        return Err(
            c.error(FORMAT, "TimestampConverter requires format option to be specified when using string timestamps")
        );
    }
    let format = if pattern.trim().is_empty() {
        None
    } else {
        Some(DateFormat::new(&pattern).map_err(|_| {
            c.error(
                FORMAT,
                format!(
                    "TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {pattern}"
                ),
            )
        })?)
    };
    let precision = match c.string(UNIX_PRECISION).unwrap_or_default().as_str() {
        "seconds" => UnixPrecision::Seconds,
        "milliseconds" => UnixPrecision::Milliseconds,
        "microseconds" => UnixPrecision::Microseconds,
        "nanoseconds" => UnixPrecision::Nanoseconds,
        other => {
            return Err(c.invalid(
                UNIX_PRECISION,
                other,
                "String must be one of: nanoseconds, microseconds, milliseconds, seconds",
            ));
        }
    };
    Ok(Box::new(TimestampConverter {
        operand,
        field: c.string(FIELD).unwrap_or_default(),
        target,
        format,
        precision,
        replace_null_with_default: c.boolean(REPLACE_NULL_WITH_DEFAULT),
        cache: SchemaCache::default(),
    }))
}

struct TimestampConverter {
    operand: Operand,
    field: String,
    target: TimestampType,
    format: Option<DateFormat>,
    precision: UnixPrecision,
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl TimestampConverter {
    fn target_schema(&self, optional: bool) -> Arc<Schema> {
        match self.target {
            TimestampType::String => primitive(SchemaType::String, optional),
            TimestampType::Unix => primitive(SchemaType::Int64, optional),
            TimestampType::Date => logical_schema(DATE_LOGICAL, optional),
            TimestampType::Time => logical_schema(TIME_LOGICAL, optional),
            TimestampType::Timestamp => logical_schema(TIMESTAMP_LOGICAL, optional),
        }
    }

    fn type_of_schema(schema: &Schema) -> Result<TimestampType, ConnectError> {
        Ok(match (schema.name.as_deref(), schema.schema_type) {
            (Some(TIMESTAMP_LOGICAL), _) => TimestampType::Timestamp,
            (Some(DATE_LOGICAL), _) => TimestampType::Date,
            (Some(TIME_LOGICAL), _) => TimestampType::Time,
            (_, SchemaType::String) => TimestampType::String,
            (_, SchemaType::Int64) => TimestampType::Unix,
            _ => {
                return Err(ConnectError::Other(format!(
                    "Schema {} does not correspond to a known timestamp type format",
                    schema_text(schema)
                )));
            }
        })
    }

    fn infer_type(value: &Value) -> Result<TimestampType, ConnectError> {
        match value {
            Value::Int64(_) => Ok(TimestampType::Unix),
            Value::String(_) => Ok(TimestampType::String),
            other => Err(data_error(format!(
                "TimestampConverter does not support {} objects as timestamps",
                java_class(other)
            ))),
        }
    }

    /// Epoch milliseconds of a timestamp of the given type.
    fn to_raw(&self, from: TimestampType, value: &Value) -> Result<i64, ConnectError> {
        let expected = |what: &str| data_error(format!("Expected {what}, but found {}", java_class(value)));
        match (from, value) {
            (TimestampType::String, Value::String(text)) => {
                let format = self.format.as_ref().ok_or_else(|| {
                    data_error("TimestampConverter requires format option to be specified when using string timestamps")
                })?;
                format.parse(text).ok_or_else(|| {
                    data_error(format!(
                        "Could not parse timestamp: value ({text}) does not match pattern ({})",
                        format.pattern()
                    ))
                })
            }
            (TimestampType::String, _) => Err(expected("string timestamp to be a String")),
            (TimestampType::Unix, Value::Int64(v)) => Ok(match self.precision {
                UnixPrecision::Seconds => v.saturating_mul(1000),
                UnixPrecision::Milliseconds => *v,
                UnixPrecision::Microseconds => v / 1000,
                UnixPrecision::Nanoseconds => v / 1_000_000,
            }),
            (TimestampType::Unix, _) => Err(expected("Unix timestamp to be a Long")),
            (TimestampType::Date, Value::Int32(days)) => Ok(i64::from(*days) * MILLIS_PER_DAY),
            (TimestampType::Date, _) => Err(expected("Date to be a java.util.Date")),
            (TimestampType::Time, Value::Int32(ms)) => Ok(i64::from(*ms)),
            (TimestampType::Time, _) => Err(expected("Time to be a java.util.Date")),
            (TimestampType::Timestamp, Value::Int64(ms)) => Ok(*ms),
            (TimestampType::Timestamp, _) => Err(expected("Timestamp to be a java.util.Date")),
        }
    }

    fn to_target(&self, millis: i64) -> Value {
        match self.target {
            TimestampType::String => Value::String(self.format.as_ref().map(|f| f.format(millis)).unwrap_or_default()),
            TimestampType::Unix => Value::Int64(match self.precision {
                UnixPrecision::Seconds => millis / 1000,
                UnixPrecision::Milliseconds => millis,
                UnixPrecision::Microseconds => millis.saturating_mul(1000),
                UnixPrecision::Nanoseconds => millis.saturating_mul(1_000_000),
            }),
            TimestampType::Date => Value::Int32(millis.div_euclid(MILLIS_PER_DAY) as i32),
            TimestampType::Time => Value::Int32(millis.rem_euclid(MILLIS_PER_DAY) as i32),
            TimestampType::Timestamp => Value::Int64(millis),
        }
    }

    /// Converts one timestamp; `from` is `None` when it is inferred from a schemaless value.
    fn convert(&self, value: &Value, from: Option<TimestampType>) -> Result<Value, ConnectError> {
        if matches!(value, Value::Null) {
            return Ok(Value::Null);
        }
        let from = match from {
            Some(from) => from,
            None => Self::infer_type(value)?,
        };
        Ok(self.to_target(self.to_raw(from, value)?))
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let (schema, value) = self.operand.take(&mut record);
        match schema {
            None if self.field.is_empty() || matches!(value, Value::Null) => {
                let converted = self.convert(&value, None)?;
                self.operand.set(&mut record, None, converted);
            }
            None => {
                let mut entries = into_map(value, PURPOSE)?;
                let converted = match map_get(&entries, &self.field) {
                    Some(v) => self.convert(v, None)?,
                    None => Value::Null,
                };
                map_put(&mut entries, &self.field, converted);
                self.operand.set(&mut record, None, Value::Map(entries));
            }
            Some(schema) if self.field.is_empty() => {
                let converted = self.convert(&value, Some(Self::type_of_schema(&schema)?))?;
                self.operand.set(&mut record, Some(self.target_schema(schema.optional)), converted);
            }
            Some(schema) => {
                let updated = self.cache.get_or_build(&schema, |s| {
                    let mut out = copy_schema_basics(s, SchemaType::Struct);
                    for field in &s.fields {
                        let field_schema = if field.name == self.field {
                            self.target_schema(field.schema.optional)
                        } else {
                            field.schema.clone()
                        };
                        push_field(&mut out, field.name.clone(), field_schema);
                    }
                    out.optional = s.optional;
                    Ok(out)
                })?;
                if matches!(value, Value::Null) {
                    self.operand.set(&mut record, Some(updated), Value::Null);
                    return Ok(Some(record));
                }
                let values = into_struct(value, PURPOSE)?;
                let mut out = Vec::with_capacity(values.len());
                for field in &schema.fields {
                    let original = field_value(field, &values, self.replace_null_with_default);
                    out.push(if field.name == self.field {
                        self.convert(&original, Some(Self::type_of_schema(&field.schema)?))?
                    } else {
                        original
                    });
                }
                self.operand.set(&mut record, Some(updated), Value::Struct(out));
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const MS: i64 = 1_500_000_000_123; // 2017-07-14T02:40:00.123Z
    const DAYS: i32 = 17_361; // 2017-07-14

    fn ts_schema() -> Arc<Schema> {
        logical_schema(TIMESTAMP_LOGICAL, false)
    }

    #[test]
    fn whole_value_conversions_with_schema() {
        let to_string = transform(
            "TimestampConverter$Value",
            &[("target.type", "string"), ("format", "yyyy-MM-dd'T'HH:mm:ss.SSSZ")],
        );
        let out = apply(&*to_string, with_value(Some(ts_schema()), Value::Int64(MS)));
        assert_eq!(out.value, s("2017-07-14T02:40:00.123+0000"));
        assert_eq!(out.value_schema.expect("schema").schema_type, SchemaType::String);

        let to_date = transform("TimestampConverter$Value", &[("target.type", "Date")]);
        let out = apply(&*to_date, with_value(Some(ts_schema()), Value::Int64(MS)));
        assert_eq!(out.value, Value::Int32(DAYS));
        assert_eq!(out.value_schema.expect("schema").name.as_deref(), Some(DATE_LOGICAL));

        let to_time = transform("TimestampConverter$Value", &[("target.type", "Time")]);
        assert_eq!(apply(&*to_time, with_value(Some(ts_schema()), Value::Int64(MS))).value, Value::Int32(9_600_123));

        let to_unix = transform("TimestampConverter$Value", &[("target.type", "unix"), ("unix.precision", "seconds")]);
        let out = apply(&*to_unix, with_value(Some(logical_schema(DATE_LOGICAL, true)), Value::Int32(DAYS)));
        assert_eq!(out.value, Value::Int64(1_499_990_400));
        assert!(out.value_schema.expect("schema").optional);

        let from_string =
            transform("TimestampConverter$Key", &[("target.type", "Timestamp"), ("format", "yyyy-MM-dd HH:mm:ss.SSS")]);
        let out = apply(&*from_string, with_key(Some(schema(SchemaType::String)), s("2017-07-14 02:40:00.123")));
        assert_eq!(out.key, Value::Int64(MS));
        assert_eq!(
            apply_error(&*from_string, with_key(Some(schema(SchemaType::String)), s("14/07/2017"))),
            "Could not parse timestamp: value (14/07/2017) does not match pattern (yyyy-MM-dd HH:mm:ss.SSS)"
        );
        assert_eq!(
            apply_error(&*from_string, with_key(Some(schema(SchemaType::Int32)), Value::Int32(1))),
            "Schema Schema{INT32} does not correspond to a known timestamp type format"
        );
    }

    #[test]
    fn unix_precisions() {
        let micros =
            transform("TimestampConverter$Value", &[("target.type", "Timestamp"), ("unix.precision", "microseconds")]);
        assert_eq!(apply(&*micros, with_value(None, Value::Int64(MS * 1000 + 999))).value, Value::Int64(MS));
        let nanos =
            transform("TimestampConverter$Value", &[("target.type", "unix"), ("unix.precision", "nanoseconds")]);
        assert_eq!(apply(&*nanos, with_value(Some(ts_schema()), Value::Int64(MS))).value, Value::Int64(MS * 1_000_000));
    }

    #[test]
    fn schemaless_values_and_fields() {
        let t = transform(
            "TimestampConverter$Value",
            &[("target.type", "string"), ("format", "yyyyMMdd"), ("field", "ts")],
        );
        let out = apply(&*t, with_value(None, smap(&[("ts", Value::Int64(MS)), ("x", Value::Int32(1))])));
        assert_eq!(out.value, smap(&[("ts", s("20170714")), ("x", Value::Int32(1))]));
        assert_eq!(
            apply_error(&*t, with_value(None, smap(&[("ts", Value::Int32(1))]))),
            "TimestampConverter does not support class java.lang.Integer objects as timestamps"
        );
        assert_eq!(apply(&*t, with_value(None, Value::Null)).value, Value::Null);
        let whole = transform("TimestampConverter$Value", &[("target.type", "unix"), ("format", "yyyyMMdd")]);
        assert_eq!(apply(&*whole, with_value(None, s("20170714"))).value, Value::Int64(1_499_990_400_000));
    }

    #[test]
    fn struct_field_conversion() {
        let value_schema = struct_schema(&[("id", schema(SchemaType::Int32)), ("at", ts_schema())]);
        let t = transform("TimestampConverter$Value", &[("target.type", "unix"), ("field", "at")]);
        let out =
            apply(&*t, with_value(Some(value_schema.clone()), Value::Struct(vec![Value::Int32(1), Value::Int64(MS)])));
        assert_eq!(out.value, Value::Struct(vec![Value::Int32(1), Value::Int64(MS)]));
        let updated = out.value_schema.expect("schema");
        assert_eq!(updated.fields[1].schema.schema_type, SchemaType::Int64);
        assert_eq!(updated.fields[1].schema.name, None);
        let out = apply(&*t, with_value(Some(value_schema.clone()), Value::Null));
        assert_eq!(out.value, Value::Null);
        assert_eq!(
            apply_error(&*t, with_value(Some(value_schema), s("x"))),
            "Only Struct objects supported for [converting timestamp formats], found: java.lang.String"
        );
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            build_error("TimestampConverter$Value", &[("target.type", "date")]),
            "Invalid value date for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp"
        );
        assert_eq!(
            build_error("TimestampConverter$Value", &[("target.type", "string")]),
            "TimestampConverter requires format option to be specified when using string timestamps"
        );
        assert_eq!(
            build_error("TimestampConverter$Value", &[("target.type", "string"), ("format", "yyyy-qq")]),
            "TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: yyyy-qq"
        );
        assert_eq!(
            build_error("TimestampConverter$Value", &[("target.type", "unix"), ("unix.precision", "hours")]),
            "Invalid value hours for configuration unix.precision: String must be one of: nanoseconds, microseconds, milliseconds, seconds"
        );
    }
}
