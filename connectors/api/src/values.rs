//! Kafka Connect's `Values` and `toString()` renderings of Connect data, shared by converters, transforms and
//! connectors: Java's number formats, `Struct{...}` text, `Values.append`, base64, and logical type names.

use std::fmt::Write as _;

use crate::date_format::iso_text;
use crate::record::{Field, Schema, Value};

pub const TIMESTAMP_LOGICAL: &str = "org.apache.kafka.connect.data.Timestamp";
pub const DATE_LOGICAL: &str = "org.apache.kafka.connect.data.Date";
pub const TIME_LOGICAL: &str = "org.apache.kafka.connect.data.Time";
pub const DECIMAL_LOGICAL: &str = "org.apache.kafka.connect.data.Decimal";

/// A field's value as `Struct.get(field)` reads it: a null replaced by the field's default when
/// `replace_null_with_default` (Kafka Connect's `replace.null.with.default`, on by default).
pub fn field_value(field: &Field, values: &[Value], replace_null_with_default: bool) -> Value {
    match values.get(field.index) {
        Some(Value::Null) | None => match (&field.schema.default, replace_null_with_default) {
            (Some(default), true) => (**default).clone(),
            _ => Value::Null,
        },
        Some(value) => value.clone(),
    }
}

/// Standard base64 with padding (`Base64.getEncoder()`), used where Kafka Connect renders bytes as text.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Java's `Double.toString`: shortest digits, plain notation in [1e-3, 1e7), else `d.dddE±n`; always a `.`.
pub fn java_double_string(v: f64) -> String {
    java_number_string(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        v.abs() >= 1e-3 && v.abs() < 1e7,
        v == 0.0,
        || (format!("{v}"), format!("{v:e}"), format!("{v:.1e}")),
    )
}

/// Java's `Float.toString`, with the shortest digits of the `f32`.
pub fn java_float_string(v: f32) -> String {
    java_number_string(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        v.abs() >= 1e-3 && v.abs() < 1e7,
        v == 0.0,
        || (format!("{v}"), format!("{v:e}"), format!("{v:.1e}")),
    )
}

/// `render` gives Rust's shortest plain and scientific forms, and the scientific form rounded to two digits.
fn java_number_string(
    nan: bool,
    infinite: bool,
    negative: bool,
    plain: bool,
    zero: bool,
    render: impl FnOnce() -> (String, String, String),
) -> String {
    if nan {
        return "NaN".to_string();
    }
    if infinite {
        return if negative { "-Infinity" } else { "Infinity" }.to_string();
    }
    if zero {
        return if negative { "-0.0" } else { "0.0" }.to_string();
    }
    let (display, scientific, two_digits) = render();
    if plain {
        if display.contains('.') { display } else { display + ".0" }
    } else {
        // Rust writes `1.5e-7` / `1e10`; Java writes `1.5E-7` / `1.0E10`. Java always prints a fractional digit,
        // and when the shortest form has a single digit it uses that second digit to get closer to the exact
        // value: the smallest double is `4.9E-324`, not `5.0E-324` (Rust's shortest is `5e-324`).
        let scientific =
            if scientific.split_once('e').is_some_and(|(m, _)| !m.contains('.')) { two_digits } else { scientific };
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        format!("{mantissa}E{exponent}")
    }
}

/// Renders a value as text the way Kafka Connect's `toString()` would (FileStreamSink, StringConverter):
/// strings as-is, `null`, Java number formats, lists `[a, b]`, maps `{k=v, k2=v2}`, structs `Struct{a=1,b=x}`
/// (null fields skipped). Bytes are shown as (lossy) UTF-8 text, which is more useful than Java's `[B@1b6d3586`.
pub fn write_text(schema: Option<&Schema>, value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int16(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Int64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float32(v) => out.push_str(&java_float_string(*v)),
        Value::Float64(v) => out.push_str(&java_double_string(*v)),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => match schema.filter(|s| s.name.as_deref() == Some(DECIMAL_LOGICAL)) {
            Some(decimal) => {
                let scale = decimal.parameter("scale").and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0);
                write_big_decimal(b, scale, out);
            }
            None => out.push_str(&String::from_utf8_lossy(b)),
        },
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(item_schema, item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_schema.as_deref());
            let value_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(key_schema, k, out);
                out.push('=');
                write_text(value_schema, v, out);
            }
            out.push('}');
        }
        Value::Struct(values) => {
            out.push_str("Struct{");
            let mut first = true;
            for (i, v) in values.iter().enumerate() {
                if matches!(v, Value::Null) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                let field = schema.and_then(|s| s.fields.get(i));
                match field {
                    Some(field) => {
                        out.push_str(&field.name);
                        out.push('=');
                        write_text(Some(&field.schema), v, out);
                    }
                    None => write_text(None, v, out),
                }
            }
            out.push('}');
        }
    }
}

/// Java's `BigDecimal.toString()` of a Connect Decimal: `unscaled` is the big-endian two's complement integer (as
/// `BigInteger.toByteArray()` writes it). Plain notation unless the scale is negative or the number is smaller
/// than 1e-6, then `d.dddE±n`.
pub fn write_big_decimal(unscaled: &[u8], scale: i32, out: &mut String) {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    // The magnitude, big-endian: negate a negative two's complement number (invert, add one).
    let mut magnitude: Vec<u8> = if negative { unscaled.iter().map(|b| !b).collect() } else { unscaled.to_vec() };
    if negative {
        for byte in magnitude.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
    }
    // Decimal digits by repeated division by 10^9, least significant group first.
    let mut groups = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder = 0u64;
        for byte in magnitude.iter_mut() {
            let acc = (remainder << 8) | u64::from(*byte);
            *byte = (acc / 1_000_000_000) as u8;
            remainder = acc % 1_000_000_000;
        }
        groups.push(remainder as u32);
    }
    let mut digits = groups.last().map_or_else(|| "0".to_string(), |g| g.to_string());
    for group in groups.iter().rev().skip(1) {
        let _ = write!(digits, "{group:09}");
    }
    if negative {
        out.push('-');
    }
    let adjusted = i64::from(digits.len() as i32 - 1) - i64::from(scale);
    if scale == 0 {
        out.push_str(&digits);
    } else if scale > 0 && adjusted >= -6 {
        let scale = scale as usize;
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            let _ = write!(out, "{int}.{frac}");
        } else {
            let _ = write!(out, "0.{}{digits}", "0".repeat(scale - digits.len()));
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "E{}{adjusted}", if adjusted >= 0 { "+" } else { "" });
    }
}

/// Kafka Connect's `Values.append`: strings quoted and escaped only when embedded in a list, map or struct.
pub fn append_text(schema: Option<&Schema>, value: &Value, embedded: bool, out: &mut String) {
    let logical = schema.and_then(|s| s.name.as_deref());
    match value {
        Value::Null => out.push_str("null"),
        Value::Int32(days) if logical == Some(DATE_LOGICAL) => out.push_str(&iso_text(i64::from(*days) * 86_400_000)),
        Value::Int32(ms) if logical == Some(TIME_LOGICAL) => out.push_str(&iso_text(i64::from(*ms))),
        Value::Int64(ms) if logical == Some(TIMESTAMP_LOGICAL) => out.push_str(&iso_text(*ms)),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int8(v) => out.push_str(&v.to_string()),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(v) => out.push_str(&java_float_string(*v)),
        Value::Float64(v) => out.push_str(&java_double_string(*v)),
        Value::String(s) if embedded => {
            out.push('"');
            out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        }
        Value::String(s) => out.push_str(s),
        Value::Bytes(_) if logical == Some(DECIMAL_LOGICAL) => write_text(schema, value, out),
        Value::Bytes(b) if embedded => {
            out.push('"');
            out.push_str(&base64(b));
            out.push('"');
        }
        Value::Bytes(b) => out.push_str(&base64(b)),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_text(item_schema, item, true, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let key_schema = schema.and_then(|s| s.key_schema.as_deref());
            let value_schema = schema.and_then(|s| s.value_schema.as_deref());
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                append_text(key_schema, k, true, out);
                out.push(':');
                append_text(value_schema, v, true, out);
            }
            out.push('}');
        }
        Value::Struct(values) => {
            out.push('{');
            if let Some(schema) = schema {
                for (i, field) in schema.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    append_text(None, &Value::String(field.name.clone()), true, out);
                    out.push(':');
                    append_text(Some(&field.schema), &field_value(field, values, true), true, out);
                }
            }
            out.push('}');
        }
    }
}
