//! PostgreSQL column types to Debezium's Connect schemas and values. Values arrive as PostgreSQL's text output
//! (pgoutput text tuples and the snapshot's text rows alike, with `TimeZone=UTC`, `DateStyle=ISO`,
//! `IntervalStyle=postgres`, `extra_float_digits=3` set on both sessions), so one converter serves both.

use std::sync::Arc;

use bytes::Bytes;
use sluice_connect_api::record::{Schema, SchemaType, Value};
use sluice_debezium::schema::{self as dbz, ColumnModes, DecimalHandlingMode, SchemaBuilder, Temporal};
use sluice_debezium::values as dv;

/// What the catalog says about a column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// `pg_type.typname` of the column's base type (domains resolved), e.g. `int4`, `_text`, `numeric`.
    pub type_name: String,
    /// `t.typtype` (`b` base, `e` enum, ...).
    pub type_kind: String,
    pub type_modifier: i32,
    pub not_null: bool,
    /// Enum labels in order (enums, and arrays of enums).
    pub enum_values: Vec<String>,
    /// `typname` of the element type for arrays.
    pub element_type: Option<String>,
    pub element_kind: Option<String>,
    /// `typname` and `typtype` of the column's own type (a domain's name, not its base type's): what Debezium
    /// chooses the default's parser by.
    pub declared_type: String,
    pub declared_kind: String,
    /// The column's default expression (`pg_get_expr(adbin, adrelid)`, JDBC's `COLUMN_DEF`).
    pub default_expr: Option<String>,
}

/// `hstore.handling.mode`: Debezium's default `json` (a `io.debezium.data.Json` string) or `map` (a Connect map
/// of string to optional string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HstoreMode {
    #[default]
    Json,
    Map,
}

impl HstoreMode {
    pub const ALLOWED: &'static [&'static str] = &["json", "map"];

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Some(HstoreMode::Json),
            "map" => Some(HstoreMode::Map),
            _ => None,
        }
    }

    fn schema(self) -> SchemaBuilder {
        match self {
            HstoreMode::Json => dbz::json(),
            // Keys are never null, values may be.
            HstoreMode::Map => {
                SchemaBuilder::map(SchemaBuilder::string().arc(), SchemaBuilder::string().optional().arc())
            }
        }
    }
}

/// How a column's text is turned into a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Conv {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    Decimal {
        scale: Option<i32>,
        mode: DecimalHandlingMode,
    },
    Money {
        scale: i32,
        mode: DecimalHandlingMode,
    },
    Bytea(dbz::BinaryHandlingMode),
    Date(dbz::TimePrecisionMode),
    Time {
        mode: dbz::TimePrecisionMode,
        precision: u32,
    },
    Timestamp {
        mode: dbz::TimePrecisionMode,
        precision: u32,
    },
    TimestampTz {
        precision: u32,
    },
    TimeTz,
    Interval,
    /// `interval.handling.mode=string`.
    IntervalString,
    Bit1,
    Bits,
    /// `hstore` (an extension type): a JSON object text or a map, per `hstore.handling.mode`.
    Hstore(HstoreMode),
    /// Unknown type kept as its text bytes (`include.unknown.datatypes=true`).
    Unknown,
    Array(Box<Conv>),
}

/// The column's schema and converter; `None` for an unsupported type (the column is left out, as Debezium does
/// without `include.unknown.datatypes`).
pub fn column(
    info: &ColumnInfo,
    modes: ColumnModes,
    hstore: HstoreMode,
    include_unknown: bool,
) -> Option<(Arc<Schema>, Conv)> {
    let scalar = |name: &str, kind: &str| {
        scalar(name, kind, info.type_modifier, &info.enum_values, modes, hstore, include_unknown)
    };
    let (builder, conv) = scalar(&info.type_name, &info.type_kind).or_else(|| {
        let el = info.element_type.as_deref()?;
        let kind = info.element_kind.as_deref().unwrap_or("b");
        let (b, c) = scalar(el, kind)?;
        if matches!(c, Conv::Unknown) {
            return None;
        }
        Some((SchemaBuilder::array(b.optional().arc()), Conv::Array(Box::new(c))))
    })?;
    Some((builder.set_optional(!info.not_null).arc(), conv))
}

fn precision_of(typmod: i32, default: u32) -> u32 {
    if typmod < 0 { default } else { (typmod as u32).min(6) }
}

fn scalar(
    type_name: &str,
    kind: &str,
    typmod: i32,
    enum_values: &[String],
    modes: ColumnModes,
    hstore: HstoreMode,
    include_unknown: bool,
) -> Option<(SchemaBuilder, Conv)> {
    Some(match type_name {
        "int2" => (SchemaBuilder::int16(), Conv::Int16),
        "int4" => (SchemaBuilder::int32(), Conv::Int32),
        "int8" | "oid" => (SchemaBuilder::int64(), Conv::Int64),
        "float4" => (SchemaBuilder::float32(), Conv::Float32),
        "float8" => (SchemaBuilder::float64(), Conv::Float64),
        "bool" => (SchemaBuilder::boolean(), Conv::Bool),
        "text" | "varchar" | "bpchar" | "char" | "name" | "citext" | "inet" | "cidr" | "macaddr" | "macaddr8"
        | "tsvector" | "tsquery" | "int4range" | "int8range" | "numrange" | "tsrange" | "tstzrange" | "daterange" => {
            (SchemaBuilder::string(), Conv::Text)
        }
        "json" | "jsonb" => (dbz::json(), Conv::Text),
        "uuid" => (dbz::uuid(), Conv::Text),
        "xml" => (dbz::xml(), Conv::Text),
        "ltree" => (dbz::ltree(), Conv::Text),
        "numeric" => {
            let (precision, scale) = if typmod < 4 {
                (None, None)
            } else {
                let t = typmod - 4;
                (Some((t >> 16) & 0xFFFF), Some(t & 0xFFFF))
            };
            (dbz::decimal_schema(precision, scale, modes.decimal), Conv::Decimal { scale, mode: modes.decimal })
        }
        "money" => {
            let b = match modes.decimal {
                DecimalHandlingMode::Precise => dbz::decimal(2, None),
                DecimalHandlingMode::Double => SchemaBuilder::float64(),
                DecimalHandlingMode::String => SchemaBuilder::string(),
            };
            (b, Conv::Money { scale: 2, mode: modes.decimal })
        }
        "bytea" => (dbz::binary_schema(modes.binary), Conv::Bytea(modes.binary)),
        "date" => (dbz::temporal_schema(Temporal::Date, modes.time), Conv::Date(modes.time)),
        "time" => {
            let p = precision_of(typmod, 6);
            (dbz::temporal_schema(Temporal::Time(p), modes.time), Conv::Time { mode: modes.time, precision: p })
        }
        "timestamp" => {
            let p = precision_of(typmod, 6);
            (
                dbz::temporal_schema(Temporal::Timestamp(p), modes.time),
                Conv::Timestamp { mode: modes.time, precision: p },
            )
        }
        "timestamptz" => (dbz::zoned_timestamp(), Conv::TimestampTz { precision: precision_of(typmod, 6) }),
        "timetz" => (dbz::zoned_time(), Conv::TimeTz),
        "interval" if modes.interval_string => (dbz::interval_string(), Conv::IntervalString),
        "interval" => (dbz::micro_duration(), Conv::Interval),
        "bit" if typmod <= 1 => (SchemaBuilder::boolean(), Conv::Bit1),
        "bit" | "varbit" => (dbz::bits(typmod.max(1) as u32), Conv::Bits),
        "hstore" => (hstore.schema(), Conv::Hstore(hstore)),
        _ if kind == "e" => (dbz::enumeration(enum_values), Conv::Text),
        _ if include_unknown => (SchemaBuilder::bytes(), Conv::Unknown),
        _ => return None,
    })
}

/// The type default Debezium puts into NOT NULL columns it has no value for (delete with REPLICA IDENTITY DEFAULT).
pub fn type_default(schema: &Schema) -> Value {
    match schema.schema_type {
        SchemaType::Int8 => Value::Int8(0),
        SchemaType::Int16 => Value::Int16(0),
        SchemaType::Int32 => Value::Int32(0),
        SchemaType::Int64 => Value::Int64(0),
        SchemaType::Float32 => Value::Float32(0.0),
        SchemaType::Float64 => Value::Float64(0.0),
        SchemaType::Boolean => Value::Boolean(false),
        SchemaType::String => Value::String(String::new()),
        SchemaType::Bytes => Value::Bytes(Bytes::new()),
        SchemaType::Array => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

/// Converts a column's text. Errors describe the bad text.
pub fn convert(conv: &Conv, text: &str) -> Result<Value, String> {
    let bad = || format!("cannot convert {text:?} ({conv:?})");
    Ok(match conv {
        Conv::Int16 => Value::Int16(text.parse().map_err(|_| bad())?),
        Conv::Int32 => Value::Int32(text.parse().map_err(|_| bad())?),
        Conv::Int64 => Value::Int64(text.parse().map_err(|_| bad())?),
        Conv::Float32 => Value::Float32(parse_float(text).ok_or_else(bad)? as f32),
        Conv::Float64 => Value::Float64(parse_float(text).ok_or_else(bad)?),
        Conv::Bool | Conv::Bit1 => Value::Boolean(matches!(text, "t" | "true" | "1")),
        Conv::Text => Value::String(text.to_string()),
        Conv::Unknown => Value::Bytes(Bytes::copy_from_slice(text.as_bytes())),
        Conv::Decimal { scale, mode } => {
            if text == "NaN" {
                return Ok(match mode {
                    DecimalHandlingMode::Double => Value::Float64(f64::NAN),
                    DecimalHandlingMode::String => Value::String("NaN".into()),
                    DecimalHandlingMode::Precise => Value::Null,
                });
            }
            dv::decimal_value(text, *scale, *mode).ok_or_else(bad)?
        }
        Conv::Money { scale, mode } => {
            let negative = text.contains('-') || text.starts_with('(');
            let cleaned: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
            let t = if negative { format!("-{cleaned}") } else { cleaned };
            dv::decimal_value(&t, Some(*scale), *mode).ok_or_else(bad)?
        }
        Conv::Bytea(mode) => {
            let hex = text.strip_prefix("\\x").ok_or_else(bad)?;
            let bytes = decode_hex(hex).ok_or_else(bad)?;
            dv::binary_value(&bytes, *mode)
        }
        Conv::Date(mode) => {
            let days = dv::parse_date_days(text).ok_or_else(bad)?;
            match mode {
                dbz::TimePrecisionMode::IsoString => Value::String(text.to_string()),
                _ => Value::Int32(days as i32),
            }
        }
        Conv::Time { mode, precision } => {
            let us = dv::parse_time_micros(text).ok_or_else(bad)?;
            use dbz::TimePrecisionMode as M;
            match mode {
                M::Connect => Value::Int32((us / 1000) as i32),
                M::IsoString => Value::String(text.to_string()),
                M::Nanoseconds => Value::Int64(us * 1000),
                M::Microseconds | M::AdaptiveTimeMicroseconds => Value::Int64(us),
                M::Adaptive => {
                    if *precision <= 3 {
                        Value::Int32((us / 1000) as i32)
                    } else {
                        Value::Int64(us)
                    }
                }
            }
        }
        Conv::Timestamp { mode, precision } => {
            let us = dv::parse_timestamp_micros(text).ok_or_else(bad)?;
            use dbz::TimePrecisionMode as M;
            match mode {
                M::Connect => Value::Int64(us.div_euclid(1000)),
                M::IsoString => Value::String(text.to_string()),
                M::Nanoseconds => Value::Int64(us * 1000),
                M::Microseconds => Value::Int64(us),
                M::Adaptive | M::AdaptiveTimeMicroseconds => {
                    if *precision <= 3 {
                        Value::Int64(us.div_euclid(1000))
                    } else {
                        Value::Int64(us)
                    }
                }
            }
        }
        Conv::TimestampTz { precision } => {
            let us = dv::parse_timestamp_micros(text).ok_or_else(bad)?;
            Value::String(dv::format_zoned_timestamp(us, *precision))
        }
        Conv::TimeTz => {
            let (us, offset) = dv::parse_time_with_offset(text).ok_or_else(bad)?;
            let utc = (us - offset * 1_000_000).rem_euclid(86_400_000_000);
            Value::String(format!("{}Z", java_local_time(utc)))
        }
        Conv::Interval => Value::Int64(parse_interval_micros(text).ok_or_else(bad)?),
        Conv::IntervalString => Value::String(interval_iso(text).ok_or_else(bad)?),
        Conv::Bits => {
            // Debezium: BitSet of the bit string read right to left (bit 0 = last character), as bytes.
            let bits: Vec<bool> = text.chars().rev().map(|c| c == '1').collect();
            let mut bytes = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    bytes[i / 8] |= 1 << (i % 8);
                }
            }
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            Value::Bytes(Bytes::from(bytes))
        }
        Conv::Hstore(mode) => hstore_value(&parse_hstore(text).ok_or_else(bad)?, *mode),
        Conv::Array(el) => {
            let items = parse_array(text).ok_or_else(bad)?;
            Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        None => Ok(Value::Null),
                        Some(s) => convert(el, &s),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// The pairs of an `hstore` text (`"a"=>"1", "b"=>NULL`), in the order written, as pgjdbc's
/// `HStoreConverter.fromString` reads them.
pub fn parse_hstore(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    // A quoted string with backslash escapes; the opening quote is the next non-separator character.
    fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                '"' => return Some(s),
                c => s.push(c),
            }
        }
    }
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some('"') => {}
            Some(_) => return None,
        }
        let key = quoted(&mut chars)?;
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.next()? != '=' || chars.next()? != '>' {
            return None;
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let value = match chars.next()? {
            '"' => Some(quoted(&mut chars)?),
            'N' => {
                for c in ['U', 'L', 'L'] {
                    if chars.next()? != c {
                        return None;
                    }
                }
                None
            }
            _ => return None,
        };
        out.push((key, value));
    }
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The pairs in the iteration order of a `java.util.HashMap` they were put into in this order (pgjdbc reads an
/// hstore into one, and Debezium writes it as it iterates): by bucket of the final table (16 buckets, doubled
/// whenever more than 3/4 full), then in insertion order within a bucket. (A bucket of 8+ colliding keys, which
/// Java would turn into a tree, is not modelled.)
pub fn java_hashmap_order<V>(pairs: Vec<(String, V)>) -> Vec<(String, V)> {
    let mut capacity = 16usize;
    while pairs.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut keyed: Vec<(usize, usize, (String, V))> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let h = java_string_hash(&k) as u32;
            let spread = h ^ (h >> 16);
            (spread as usize & (capacity - 1), i, (k, v))
        })
        .collect();
    keyed.sort_by_key(|(bucket, i, _)| (*bucket, *i));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// An hstore value as Debezium gives it: a map, or the map as JSON text written by Jackson (`{"a":"1","b":null}`).
pub fn hstore_value(pairs: &[(String, Option<String>)], mode: HstoreMode) -> Value {
    let ordered = java_hashmap_order(pairs.to_vec());
    match mode {
        HstoreMode::Map => Value::Map(
            ordered.into_iter().map(|(k, v)| (Value::String(k), v.map(Value::String).unwrap_or(Value::Null))).collect(),
        ),
        HstoreMode::Json => {
            let mut out = String::from("{");
            for (i, (k, v)) in ordered.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                jackson_string(&mut out, k);
                out.push(':');
                match v {
                    Some(v) => jackson_string(&mut out, v),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
            Value::String(out)
        }
    }
}

/// A JSON string as Jackson writes it: `"` and `\` escaped, control characters as `\n`-style short escapes or
/// `\u00XX` (uppercase hex), everything else as is.
fn jackson_string(out: &mut String, s: &str) {
    out.push('"');
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
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Java's `LocalTime.toString()`-like rendering used by `DateTimeFormatter.ISO_LOCAL_TIME`: `HH:mm:ss` and the
/// fraction with its trailing zeros stripped.
fn java_local_time(us: i64) -> String {
    let secs = us / 1_000_000;
    let frac = us % 1_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    if frac == 0 {
        base
    } else {
        let f = format!("{frac:06}");
        format!("{base}.{}", f.trim_end_matches('0'))
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// `IntervalStyle=postgres` text (`1 year 2 mons 3 days 04:05:06.789`, `-00:00:01`) to µs, months as
/// 30.4375 days and years as 365.25 days (Debezium's `MicroDuration.durationMicros`).
pub fn parse_interval_micros(text: &str) -> Option<i64> {
    let mut years = 0f64;
    let mut months = 0f64;
    let mut days = 0f64;
    let mut micros = 0i64;
    let parts: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    while i < parts.len() {
        let p = parts[i];
        if p.contains(':') {
            let (neg, t) = match p.strip_prefix('-') {
                Some(t) => (true, t),
                None => (false, p.strip_prefix('+').unwrap_or(p)),
            };
            let us = dv::parse_time_micros(t)?;
            micros += if neg { -us } else { us };
            i += 1;
            continue;
        }
        let n: f64 = p.parse().ok()?;
        let unit = parts.get(i + 1)?;
        match unit.trim_end_matches('s') {
            "year" => years += n,
            "mon" => months += n,
            "day" => days += n,
            _ => return None,
        }
        i += 2;
    }
    let month_days = 30.4375f64;
    let total_days = years * 12.0 * month_days + months * month_days + days;
    Some((total_days * 86_400_000_000f64).round() as i64 + micros)
}

/// An interval as `interval.handling.mode=string` gives it: Debezium's `Interval.toIsoString` of the components
/// pgjdbc's `PGInterval` reads from the text (`postgres` IntervalStyle: `1 year 2 mons 3 days -04:05:06.5`), every
/// component written (`P1Y2M3DT-4H-5M-6.5S`).
pub fn interval_iso(text: &str) -> Option<String> {
    let (mut years, mut months, mut days, mut hours, mut minutes) = (0i64, 0i64, 0i64, 0i64, 0i64);
    let mut seconds = 0f64;
    let parts: Vec<&str> = text.split_whitespace().collect();
    let mut i = 0;
    while i < parts.len() {
        let p = parts[i];
        if p.contains(':') {
            let (neg, t) = match p.strip_prefix('-') {
                Some(t) => (true, t),
                None => (false, p.strip_prefix('+').unwrap_or(p)),
            };
            let mut f = t.split(':');
            let h: i64 = f.next()?.parse().ok()?;
            let m: i64 = f.next()?.parse().ok()?;
            let s: f64 = f.next().unwrap_or("0").parse().ok()?;
            let sign = if neg { -1 } else { 1 };
            hours += sign * h;
            minutes += sign * m;
            seconds += sign as f64 * s;
            i += 1;
            continue;
        }
        let n: i64 = p.parse().ok()?;
        match parts.get(i + 1)?.trim_end_matches('s') {
            "year" => years += n,
            "mon" => months += n,
            "day" => days += n,
            _ => return None,
        }
        i += 2;
    }
    Some(format!("P{years}Y{months}M{days}DT{hours}H{minutes}M{}S", java_big_decimal_seconds(seconds)))
}

/// The seconds as Debezium writes them: the double's shortest decimal form (`BigDecimal.valueOf`), cut to 9
/// decimals, trailing zeros stripped, plain notation.
fn java_big_decimal_seconds(d: f64) -> String {
    let shortest = format!("{}", d.abs());
    let (int, frac) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let frac = frac[..frac.len().min(9)].trim_end_matches('0');
    let body = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
    if d < 0.0 && body != "0" { format!("-{body}") } else { body }
}

/// A one-dimensional PostgreSQL array literal (`{1,2,NULL,"a b","x\"y"}`).
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(if !quoted && item == "NULL" { None } else { Some(item) });
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(parse_array("{1,NULL,\"a b\"}").unwrap(), vec![Some("1".into()), None, Some("a b".into())]);
        assert_eq!(
            parse_hstore(r#""a"=>"1", "b\"q"=>NULL, "c"=>"x\\y""#).unwrap(),
            vec![("a".into(), Some("1".into())), ("b\"q".into(), None), ("c".into(), Some("x\\y".into()))]
        );
        assert_eq!(parse_hstore("").unwrap(), vec![]);
        // java.util.HashMap<String,String> iteration: "aa" (bucket 3104 & 15 = 0) before "b" (bucket 98 & 15 = 2).
        let pairs = vec![("b".to_string(), Some("2".to_string())), ("aa".to_string(), None)];
        assert_eq!(hstore_value(&pairs, HstoreMode::Json), Value::String(r#"{"aa":null,"b":"2"}"#.into()));
        assert_eq!(parse_interval_micros("1 mon"), Some((30.4375 * 86_400_000_000f64) as i64));
        assert_eq!(parse_interval_micros("04:05:06.5"), Some(14_706_500_000));
        assert_eq!(interval_iso("1 year 2 mons 3 days 04:05:06.5").as_deref(), Some("P1Y2M3DT4H5M6.5S"));
        assert_eq!(interval_iso("00:00:00").as_deref(), Some("P0Y0M0DT0H0M0S"));
        assert_eq!(interval_iso("-1 years -2 mons +3 days -04:05:06.25").as_deref(), Some("P-1Y-2M3DT-4H-5M-6.25S"));
        // the double's shortest form, as Debezium (2.3 is 2.2999999999999998... as a double)
        assert_eq!(interval_iso("-1 days 00:00:02.3").as_deref(), Some("P0Y0M-1DT0H0M2.3S"));
        assert_eq!(interval_iso("00:00:01.123456").as_deref(), Some("P0Y0M0DT0H0M1.123456S"));
        assert_eq!(convert(&Conv::TimeTz, "12:34:56+02").unwrap(), Value::String("10:34:56Z".into()));
        assert_eq!(
            convert(&Conv::TimestampTz { precision: 6 }, "2026-01-02 03:04:06+00").unwrap(),
            Value::String("2026-01-02T03:04:06.000000Z".into())
        );
    }
}
