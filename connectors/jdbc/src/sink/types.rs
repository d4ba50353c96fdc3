//! Connect schema types to SQL column types (for `auto.create`/`auto.evolve`), and values to the text the
//! databases parse (PostgreSQL's COPY text format, MySQL parameters).

use sluice_connect_api::record::{Schema, SchemaType, Value};

use crate::connection::Dialect;
use crate::zone::DbZone;

/// The zones values are written in: `db.timezone` for Timestamp and Time, `date.timezone` for Date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZones {
    pub zone: DbZone,
    pub date: DbZone,
}

impl TimeZones {
    pub const UTC: TimeZones = TimeZones { zone: DbZone::UTC, date: DbZone::UTC };
}

pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

/// Which original's type choices `auto.create` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Confluent,
    Debezium,
}

/// The SQL type of a column for `schema` (Confluent's `GenericDatabaseDialect.getSqlType` per dialect, or
/// Debezium's type registry for the types it names). `key` marks primary-key columns (MySQL cannot index TEXT:
/// keys become VARCHAR(255) there).
pub fn sql_type(dialect: Dialect, flavor: Flavor, schema: &Schema, key: bool) -> Result<String, String> {
    let pg = dialect == Dialect::Postgres;
    if let Some(name) = schema.name.as_deref() {
        let t = match name {
            DECIMAL => {
                let scale = schema.parameter("scale").unwrap_or("0");
                let precision = schema.parameter("connect.decimal.precision");
                Some(match (pg, flavor, precision) {
                    (true, Flavor::Debezium, Some(p)) => format!("decimal({p},{scale})"),
                    // Seen from the real Debezium JDBC sink 3.6.0 on PostgreSQL: no precision parameter → 38.
                    (true, Flavor::Debezium, None) => format!("decimal(38,{scale})"),
                    (true, _, _) => "DECIMAL".to_string(),
                    (false, Flavor::Debezium, Some(p)) => format!("decimal({p},{scale})"),
                    (false, _, _) => format!("DECIMAL(65,{scale})"),
                })
            }
            DATE | "io.debezium.time.Date" => Some("DATE".to_string()),
            TIME | "io.debezium.time.Time" => Some(if pg { "TIME" } else { "TIME(3)" }.to_string()),
            "io.debezium.time.MicroTime" | "io.debezium.time.NanoTime" => {
                Some(if pg { "time(6)" } else { "TIME(6)" }.to_string())
            }
            TIMESTAMP | "io.debezium.time.Timestamp" => Some(if pg { "TIMESTAMP" } else { "DATETIME(3)" }.to_string()),
            "io.debezium.time.MicroTimestamp" | "io.debezium.time.NanoTimestamp" => {
                Some(if pg { "timestamp(6)" } else { "DATETIME(6)" }.to_string())
            }
            "io.debezium.time.ZonedTimestamp" => {
                Some(if pg { "timestamp(6) with time zone" } else { "TIMESTAMP(6)" }.to_string())
            }
            "io.debezium.time.ZonedTime" => Some(if pg { "time(6) with time zone" } else { "TIME(6)" }.to_string()),
            "io.debezium.data.Json" => Some(if pg { "json" } else { "JSON" }.to_string()),
            "io.debezium.data.Uuid" => Some(if pg { "uuid" } else { "VARCHAR(36)" }.to_string()),
            "io.debezium.data.VariableScaleDecimal" => Some(if pg { "DECIMAL" } else { "DECIMAL(65,30)" }.to_string()),
            _ => None,
        };
        if let Some(t) = t {
            return Ok(t);
        }
    }
    let t = match (schema.schema_type, pg) {
        (SchemaType::Int8, true) => "SMALLINT",
        (SchemaType::Int8, false) => "TINYINT",
        (SchemaType::Int16, _) => "SMALLINT",
        (SchemaType::Int32, true) => {
            if flavor == Flavor::Debezium {
                "integer"
            } else {
                "INT"
            }
        }
        (SchemaType::Int32, false) => "INT",
        (SchemaType::Int64, _) => "BIGINT",
        (SchemaType::Float32, true) => "REAL",
        (SchemaType::Float32, false) => "FLOAT",
        (SchemaType::Float64, true) => "DOUBLE PRECISION",
        (SchemaType::Float64, false) => "DOUBLE",
        (SchemaType::Boolean, true) => "BOOLEAN",
        (SchemaType::Boolean, false) => "TINYINT",
        (SchemaType::String, true) => "TEXT",
        (SchemaType::String, false) => {
            if key {
                "VARCHAR(255)"
            } else {
                "TEXT"
            }
        }
        (SchemaType::Bytes, true) => "BYTEA",
        (SchemaType::Bytes, false) => {
            if key {
                "VARBINARY(255)"
            } else {
                "VARBINARY(1024)"
            }
        }
        (SchemaType::Array, true) => {
            let element = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
            return Ok(format!("{}[]", sql_type(dialect, flavor, element, false)?));
        }
        (t, _) => return Err(format!("unsupported source data type: {}", t.name().to_uppercase())),
    };
    Ok(t.to_string())
}

/// A field's default value as an SQL literal for `DEFAULT`, as Confluent's `formatColumnValue`: numbers and decimals
/// bare, dates, times, timestamps and strings quoted (`'` doubled), bytes as a binary literal. Booleans are `1`/`0` on
/// MySQL as in Confluent, but `TRUE`/`FALSE` on PostgreSQL, whose BOOLEAN refuses an integer default (Confluent's
/// `DEFAULT 1` fails there); PostgreSQL bytes are `'\x..'` (its `x'..'` is a bit string).
pub fn push_default_literal(
    out: &mut String,
    dialect: Dialect,
    zones: &TimeZones,
    schema: &Schema,
    value: &Value,
) -> Result<(), String> {
    use std::fmt::Write;
    let pg = dialect == Dialect::Postgres;
    match value {
        Value::Boolean(b) => {
            out.push_str(match (pg, b) {
                (true, true) => "TRUE",
                (true, false) => "FALSE",
                (false, true) => "1",
                (false, false) => "0",
            });
            return Ok(());
        }
        Value::Bytes(b) if schema.name.as_deref() != Some(DECIMAL) => {
            out.push_str(if pg { "'\\x" } else { "x'" });
            for byte in b.iter() {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('\'');
            return Ok(());
        }
        _ => {}
    }
    let mut text = String::new();
    if let Rendered::Null = render(&mut text, dialect, zones, schema, value)? {
        return Err("the default value has no SQL form".into());
    }
    let bare = schema.name.is_none() || schema.name.as_deref() == Some(DECIMAL);
    let numeric = matches!(
        value,
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) | Value::Float32(_) | Value::Float64(_)
    ) || schema.name.as_deref() == Some(DECIMAL);
    if bare && numeric && text.parse::<f64>().is_ok_and(|v| v.is_finite()) {
        out.push_str(&text);
    } else {
        out.push('\'');
        out.push_str(&text.replace('\'', "''"));
        out.push('\'');
    }
    Ok(())
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Days since the epoch to (year, month, day) (proleptic Gregorian).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_date(out: &mut String, days: i64) {
    use std::fmt::Write;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

/// `HH:MM:SS[.fraction]` from a time of day in units of 10^-`digits` s.
fn push_time(out: &mut String, t: i64, digits: u32) {
    use std::fmt::Write;
    let unit = 10i64.pow(digits);
    let secs = t.div_euclid(unit);
    let frac = t.rem_euclid(unit);
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    if digits > 0 {
        let _ = write!(out, ".{:0width$}", frac, width = digits as usize);
    }
}

/// `YYYY-MM-DD HH:MM:SS.fraction` from an epoch instant in units of 10^-`digits` s.
fn push_timestamp(out: &mut String, t: i64, digits: u32, zone: bool) {
    let unit = 10i64.pow(digits) * 86_400;
    push_date(out, t.div_euclid(unit));
    out.push(' ');
    push_time(out, t.rem_euclid(unit), digits);
    if zone {
        out.push_str("+00");
    }
}

/// A Connect Decimal (big-endian two's complement unscaled value) as decimal text.
pub fn push_decimal(out: &mut String, bytes: &[u8], scale: i32) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10.
    let mut digits = Vec::new();
    let mut start = 0;
    while start < mag.len() {
        let mut rem = 0u32;
        for b in mag[start..].iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
        while start < mag.len() && mag[start] == 0 {
            start += 1;
        }
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    if negative {
        out.push('-');
    }
    let s = std::str::from_utf8(&digits).unwrap_or("0");
    if scale <= 0 {
        out.push_str(s);
        for _ in 0..(-scale) {
            out.push('0');
        }
    } else {
        let scale = scale as usize;
        if s.len() > scale {
            out.push_str(&s[..s.len() - scale]);
            out.push('.');
            out.push_str(&s[s.len() - scale..]);
        } else {
            out.push_str("0.");
            for _ in 0..(scale - s.len()) {
                out.push('0');
            }
            out.push_str(s);
        }
    }
}

fn push_float(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// How a value is sent.
pub enum Rendered {
    Null,
    /// Text in `scratch`.
    Text,
    /// Raw bytes (MySQL binary columns).
    Bytes,
}

/// Renders `value` (of `schema`) as the text the database parses for the column type `sql_type` would create.
/// Text goes to `out`; MySQL binary values are returned as [`Rendered::Bytes`] (the caller sends the bytes).
///
/// Connect Date, Time and Timestamp values are written as Confluent binds them with a `Calendar` in the zone (see
/// [`crate::zone`]): the wall-clock date/time the instant has in the zone; PostgreSQL timestamps also get the
/// zone's offset at that instant, as pgjdbc's `TimestampUtils.toString(Calendar, Timestamp)` (a `timestamp` column
/// keeps the wall-clock time, a `timestamptz` column the instant).
pub fn render(
    out: &mut String,
    dialect: Dialect,
    zones: &TimeZones,
    schema: &Schema,
    value: &Value,
) -> Result<Rendered, String> {
    use std::fmt::Write;
    let pg = dialect == Dialect::Postgres;
    let value = match value {
        Value::Null => match schema.default.as_deref() {
            Some(d) if *d != Value::Null => d,
            _ => return Ok(Rendered::Null),
        },
        v => v,
    };
    if let Some(name) = schema.name.as_deref() {
        match (name, value) {
            (DECIMAL, Value::Bytes(b)) => {
                let scale = schema.parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
                push_decimal(out, b, scale);
                return Ok(Rendered::Text);
            }
            ("io.debezium.data.VariableScaleDecimal", Value::Struct(f)) => {
                let scale = schema.fields.iter().position(|x| x.name == "scale").and_then(|i| f.get(i));
                let v = schema.fields.iter().position(|x| x.name == "value").and_then(|i| f.get(i));
                if let (Some(Value::Int32(scale)), Some(Value::Bytes(b))) = (scale, v) {
                    push_decimal(out, b, *scale);
                    return Ok(Rendered::Text);
                }
                return Ok(Rendered::Null);
            }
            (DATE, Value::Int32(d)) => {
                // Midnight UTC of the day, as a `java.sql.Date` in `date.timezone`: the day before west of UTC.
                push_date(out, zones.date.to_local_micros(*d as i64 * DAY_MICROS).div_euclid(DAY_MICROS));
                return Ok(Rendered::Text);
            }
            (TIME, Value::Int32(t)) => {
                // The instant 1970-01-01T00:00Z + t ms, as a `java.sql.Time` in the zone (its 1970 offset).
                push_time(out, zones.zone.to_local_micros(*t as i64 * 1000).rem_euclid(DAY_MICROS) / 1000, 3);
                return Ok(Rendered::Text);
            }
            (TIMESTAMP, Value::Int64(t)) if !zones.zone.is_utc() => {
                let instant = t.saturating_mul(1000);
                push_timestamp(out, zones.zone.to_local_micros(instant) / 1000, 3, false);
                if pg {
                    zones.zone.push_pg_offset(out, instant);
                }
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.Date", Value::Int32(d)) => {
                push_date(out, *d as i64);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.Time", Value::Int32(t)) => {
                push_time(out, *t as i64, 3);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.MicroTime", Value::Int64(t)) => {
                push_time(out, *t, 6);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.NanoTime", Value::Int64(t)) => {
                push_time(out, *t, 9);
                return Ok(Rendered::Text);
            }
            (TIMESTAMP | "io.debezium.time.Timestamp", Value::Int64(t)) => {
                push_timestamp(out, *t, 3, pg);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.MicroTimestamp", Value::Int64(t)) => {
                push_timestamp(out, *t, 6, pg);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.NanoTimestamp", Value::Int64(t)) => {
                push_timestamp(out, *t, 9, pg);
                return Ok(Rendered::Text);
            }
            ("io.debezium.time.ZonedTimestamp", Value::String(s)) if !pg => {
                // MySQL TIMESTAMP takes no zone suffix: the instant in UTC (session time_zone is UTC).
                out.push_str(s.trim_end_matches('Z').replace('T', " ").as_str());
                return Ok(Rendered::Text);
            }
            _ => {}
        }
    }
    match value {
        Value::Null => return Ok(Rendered::Null),
        Value::Boolean(b) => out.push_str(match (pg, b) {
            (true, true) => "t",
            (true, false) => "f",
            (false, true) => "1",
            (false, false) => "0",
        }),
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
        Value::Float32(v) => push_float(out, *v as f64),
        Value::Float64(v) => push_float(out, *v),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => {
            if pg {
                out.push_str("\\x");
                for byte in b.iter() {
                    let _ = write!(out, "{byte:02x}");
                }
            } else {
                return Ok(Rendered::Bytes);
            }
        }
        Value::Array(items) if pg => {
            let element = schema.value_schema.as_deref().ok_or("array schema without element schema")?;
            out.push('{');
            let mut tmp = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                tmp.clear();
                match render(&mut tmp, dialect, zones, element, item)? {
                    Rendered::Null => out.push_str("NULL"),
                    _ => {
                        out.push('"');
                        for c in tmp.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
        }
        other => return Err(format!("unsupported value for a column: {}", kind(other))),
    }
    Ok(Rendered::Text)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "ARRAY",
        Value::Map(_) => "MAP",
        Value::Struct(_) => "STRUCT",
        _ => "primitive",
    }
}

/// Appends `text` escaped for PostgreSQL's COPY text format.
pub fn push_copy_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&bytes[last..i]);
        out.extend_from_slice(esc);
        last = i + 1;
    }
    out.extend_from_slice(&bytes[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], scale: i32) -> String {
        let mut s = String::new();
        push_decimal(&mut s, bytes, scale);
        s
    }

    #[test]
    fn decimals() {
        assert_eq!(dec(&[0x30, 0x39], 2), "123.45");
        assert_eq!(dec(&[0xcf, 0xc7], 2), "-123.45");
        assert_eq!(dec(&[0x00], 0), "0");
        assert_eq!(dec(&[0x05], 3), "0.005");
        assert_eq!(dec(&[0xff], 0), "-1");
        assert_eq!(dec(&[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], 0), "18446744073709551616");
    }

    #[test]
    fn dates_and_times() {
        let mut s = String::new();
        push_date(&mut s, 19_723);
        assert_eq!(s, "2024-01-01");
        s.clear();
        push_timestamp(&mut s, 1_704_067_200_123, 3, true);
        assert_eq!(s, "2024-01-01 00:00:00.123+00");
        s.clear();
        push_timestamp(&mut s, -1, 3, false);
        assert_eq!(s, "1969-12-31 23:59:59.999");
        s.clear();
        push_time(&mut s, 45_296_789, 3);
        assert_eq!(s, "12:34:56.789");
    }

    #[test]
    fn copy_escaping() {
        let mut v = Vec::new();
        push_copy_escaped(&mut v, "a\tb\\c\nd");
        assert_eq!(v, b"a\\tb\\\\c\\nd");
    }
}
