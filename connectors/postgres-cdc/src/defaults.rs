//! Column defaults in field schemas, as Debezium's `PostgresDefaultValueConverter` (3.6.1) derives them from the
//! catalog's default expression (`pg_get_expr(adbin, adrelid)`, what JDBC's `COLUMN_DEF` holds): a literal is taken
//! from the expression (`'abc'::character varying` → `abc`, `42` → `42`), a function call or `CURRENT_*` gives a
//! fixed placeholder per type (`now()` → the epoch, `nextval(...)` → `0`), and the result goes through the
//! column's own converter. What Debezium cannot parse (expressions, unknown types, `numeric` without a scale, whose
//! value would be a struct) gives no default. The mapper is chosen by the column's declared type name, so a domain
//! gets no default, as in Debezium.

use std::sync::LazyLock;

use regex::Regex;
use sluice_connect_api::record::Value;
use sluice_debezium::schema::DecimalHandlingMode;

use crate::types::{self, Conv};

/// A function call at the start of the expression (Debezium's `FUNCTION_DEFAULT_PATTERN`).
static FUNCTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)").expect("valid function default pattern"));
/// The first quoted literal (Debezium's `LITERAL_DEFAULT_PATTERN`; `''` inside a literal is not unescaped).
static LITERAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"'(.*?)'").expect("valid literal default pattern"));

const CURRENT_DATE_TIMES: &[&str] =
    &["current_timestamp", "current_time", "current_date", "localtime", "localtimestamp"];
/// Types whose expression is trimmed before parsing.
const TRIM_TYPES: &[&str] = &[
    "bit",
    "varbit",
    "bool",
    "numeric",
    "float4",
    "float8",
    "int2",
    "int4",
    "serial",
    "int8",
    "bigserial",
    "smallserial",
    "uuid",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
];

/// The literal inside an expression: raw (`1234`) or quoted (`'9223372036854775807'::bigint`); `None` for a NULL
/// cast or an expression without a closed literal.
fn literal(expr: &str) -> Option<String> {
    if !expr.contains('\'') {
        return (!expr.starts_with("NULL::")).then(|| expr.to_string());
    }
    LITERAL.captures(expr).and_then(|c| c.get(1)).map(|m| m.as_str().to_string())
}

/// The literal, or `placeholder` when the value is generated (a function call, `CURRENT_TIMESTAMP`, ...).
fn literal_or(expr: &str, placeholder: &str) -> Option<String> {
    if FUNCTION.is_match(expr) || CURRENT_DATE_TIMES.contains(&expr.to_ascii_lowercase().as_str()) {
        return Some(placeholder.to_string());
    }
    literal(expr)
}

/// Java's `Boolean.parseBoolean`.
fn java_bool(s: &str) -> bool {
    s.eq_ignore_ascii_case("true")
}

/// Java's `Integer.parseInt` and friends: an optional sign and ASCII digits, nothing else.
fn java_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Java's `Double.parseDouble` for what PostgreSQL writes (`1.5`, `-2e-05`, `NaN`, `Infinity`).
fn java_float(s: &str) -> Option<f64> {
    match s.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t if t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) => t.parse().ok(),
        _ => None,
    }
}

/// A Java `UUID.fromString` of the canonical form, rendered as `UUID.toString` (lowercase).
fn java_uuid(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if parts.len() != 5
        || parts.iter().zip(lens).any(|(p, n)| p.len() != n || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// The enum label of `'label'::type` when the cast names the column's enum type (Debezium's `extractEnumDefault`).
fn enum_label(expr: &str, type_name: &str) -> Option<String> {
    let cast = expr.rfind("::")?;
    let suffix = &expr[cast + 2..];
    let unquote = |s: &str| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s).replace("\"\"", "\"");
    let cast_type = match suffix.rsplit_once('.') {
        Some((_, t)) if !suffix.ends_with('"') || t.starts_with('"') => unquote(t),
        _ => unquote(suffix),
    };
    if cast_type != type_name {
        return None;
    }
    let value = &expr[..cast];
    (value.len() >= 2 && value.starts_with('\'') && value.ends_with('\''))
        .then(|| value[1..value.len() - 1].to_string())
}

/// The default of a column: its declared type (`pg_type.typname`, not resolved through domains) and kind
/// (`typtype`), the catalog's default expression, and the converter of its values.
pub fn default_value(declared_type: &str, declared_kind: &str, expr: &str, conv: &Conv) -> Option<Value> {
    let expr = if TRIM_TYPES.contains(&declared_type) { expr.trim() } else { expr };
    // A NULL cast is no default for every type (Debezium: null raw value, or a parse error).
    if expr.starts_with("NULL::") {
        return None;
    }
    let text = |placeholder: &str| literal_or(expr, placeholder);
    match declared_type {
        "bit" => {
            // One bit is a boolean; more are a bit string for the column's `Bits` converter.
            let bits = text("00")?;
            match bits.len() {
                1 => convert(conv, if bits == "1" { "1" } else { "0" }),
                _ => convert(conv, &bits),
            }
        }
        "bool" => convert(conv, if java_bool(&text("false")?) { "t" } else { "f" }),
        "bpchar" | "varchar" | "text" | "xml" => convert(conv, &text("")?),
        "json" | "jsonb" => convert(conv, &text("{}")?),
        "int2" => convert(conv, &java_int::<i16>(&text("0")?)?.to_string()),
        "int4" => convert(conv, &java_int::<i32>(&text("0")?)?.to_string()),
        "int8" => convert(conv, &java_int::<i64>(&text("0")?)?.to_string()),
        "float4" => match conv {
            Conv::Float32 => Some(Value::Float32(java_float(&text("0.0")?)? as f32)),
            _ => None,
        },
        "float8" => match conv {
            Conv::Float64 => Some(Value::Float64(java_float(&text("0.0")?)?)),
            _ => None,
        },
        "numeric" => numeric(&text("0.0")?, conv),
        "uuid" => convert(conv, &java_uuid(&text("00000000-0000-0000-0000-000000000000")?)?),
        "date" => {
            let t = text("1970-01-01")?;
            // pgjdbc's toLocalDateTime: the date part (a time part, if any, is dropped by the date converter).
            let date = t.split([' ', 'T']).next().unwrap_or(&t).to_string();
            convert(conv, &date)
        }
        "time" => {
            let t = text("00:00")?;
            let t = if t.matches(':').count() == 1 { format!("{t}:00") } else { t };
            convert(conv, &t)
        }
        "timestamp" | "timestamptz" => {
            let t = text("1970-01-01")?;
            // A date alone is its midnight; without an offset pgjdbc reads the text as UTC.
            let t = if t.contains(':') { t } else { format!("{t} 00:00:00") };
            convert(conv, &t)
        }
        "interval" => match text("epoch")?.as_str() {
            "epoch" => convert(conv, "00:00:00"),
            t => convert(conv, t),
        },
        _ if declared_kind == "e" => convert(conv, &enum_label(expr, declared_type)?),
        // money, bytea, arrays, ranges, network types, domains, ...: Debezium has no mapper.
        _ => None,
    }
}

fn convert(conv: &Conv, text: &str) -> Option<Value> {
    match types::convert(conv, text).ok()? {
        // Kafka Connect refuses a struct default (KAFKA-12694): Debezium leaves it out.
        Value::Struct(_) | Value::Null => None,
        v => Some(v),
    }
}

/// A `numeric` default (Java `BigDecimal`): rescaled to the column's scale in precise mode; a column without a
/// scale has a struct value (VariableScaleDecimal) and so no default.
fn numeric(text: &str, conv: &Conv) -> Option<Value> {
    let Conv::Decimal { scale, mode } = conv else { return None };
    if *mode == DecimalHandlingMode::Precise && scale.is_none() {
        return None;
    }
    convert(conv, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_debezium::schema::{BinaryHandlingMode, TimePrecisionMode};

    fn d(t: &str, expr: &str, conv: Conv) -> Option<Value> {
        default_value(t, "b", expr, &conv)
    }

    #[test]
    fn literals_functions_and_placeholders() {
        assert_eq!(d("int4", "42", Conv::Int32), Some(Value::Int32(42)));
        assert_eq!(d("int4", "'-7'::integer", Conv::Int32), Some(Value::Int32(-7)));
        assert_eq!(d("int4", "nextval('t_id_seq'::regclass)", Conv::Int32), Some(Value::Int32(0)));
        assert_eq!(d("int4", "(1 + 2)", Conv::Int32), None);
        assert_eq!(d("int8", "'9223372036854775807'::bigint", Conv::Int64), Some(Value::Int64(i64::MAX)));
        assert_eq!(d("text", "'it''s'::text", Conv::Text), Some(Value::String("it".into())));
        assert_eq!(d("varchar", "'abc'::character varying", Conv::Text), Some(Value::String("abc".into())));
        assert_eq!(d("text", "upper('x'::text)", Conv::Text), Some(Value::String(String::new())));
        assert_eq!(d("text", "NULL::text", Conv::Text), None);
        assert_eq!(d("bool", "true", Conv::Bool), Some(Value::Boolean(true)));
        assert_eq!(d("bit", "B'1'::\"bit\"", Conv::Bit1), Some(Value::Boolean(true)));
        assert_eq!(d("bit", "B'101'::\"bit\"", Conv::Bits), Some(Value::Bytes(bytes::Bytes::from_static(&[5]))));
        assert_eq!(d("float8", "2.25", Conv::Float64), Some(Value::Float64(2.25)));
        assert_eq!(
            d("timestamptz", "now()", Conv::TimestampTz { precision: 6 }),
            Some(Value::String("1970-01-01T00:00:00.000000Z".into()))
        );
        assert_eq!(
            d("timestamptz", "CURRENT_TIMESTAMP", Conv::TimestampTz { precision: 6 }),
            Some(Value::String("1970-01-01T00:00:00.000000Z".into()))
        );
        assert_eq!(d("date", "CURRENT_DATE", Conv::Date(TimePrecisionMode::Adaptive)), Some(Value::Int32(0)));
        assert_eq!(
            d(
                "time",
                "'12:34:56.789'::time without time zone",
                Conv::Time { mode: TimePrecisionMode::Adaptive, precision: 6 }
            ),
            Some(Value::Int64(45_296_789_000))
        );
        assert_eq!(
            d("numeric", "12.3", Conv::Decimal { scale: Some(2), mode: DecimalHandlingMode::Precise }),
            Some(Value::Bytes(bytes::Bytes::from_static(&[0x04, 0xCE])))
        );
        assert_eq!(d("numeric", "3.14", Conv::Decimal { scale: None, mode: DecimalHandlingMode::Precise }), None);
        assert_eq!(d("money", "5.5", Conv::Bytea(BinaryHandlingMode::Bytes)), None);
        assert_eq!(
            d("uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid", Conv::Text),
            Some(Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()))
        );
        assert_eq!(default_value("mood", "e", "'ok'::mood", &Conv::Text), Some(Value::String("ok".into())));
        assert_eq!(default_value("mood", "e", "'ok'::other", &Conv::Text), None);
        assert_eq!(default_value("mood", "e", "'ok'::s1.mood", &Conv::Text), Some(Value::String("ok".into())));
    }
}
