//! MySQL/MariaDB column types to Kafka Connect schemas and values, with Debezium's mappings (binlog connector,
//! `MySqlValueConverters`/`BinlogValueConverters`): the same value whether it comes from a binlog row event or from a
//! snapshot `SELECT` (binary protocol).

use std::sync::Arc;

use bytes::Bytes;
use mysql_async::Value as My;
use sluice_connect_api::record::{Schema, SchemaType, Value};

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    Precise,
    Double,
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// `adaptive_time_microseconds` (the MySQL default) and `adaptive` (same except TIME(0-3) as ms `Time`).
    Adaptive { time_micros: bool },
    /// Kafka Connect's own Date/Time/Timestamp (ms).
    Connect,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryMode {
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

/// The converter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSettings {
    pub decimal: DecimalMode,
    pub time: TimeMode,
    pub binary: BinaryMode,
    /// `bigint.unsigned.handling.mode=precise`.
    pub bigint_precise: bool,
}

impl Default for TypeSettings {
    fn default() -> Self {
        TypeSettings {
            decimal: DecimalMode::Precise,
            time: TimeMode::Adaptive { time_micros: true },
            binary: BinaryMode::Bytes,
            bigint_precise: false,
        }
    }
}

/// A column as `information_schema.COLUMNS` describes it (also the form the schema history keeps).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ColumnInfo {
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, ...).
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `enum('a','b')`, `bit(3)`, `tinyint(1)`).
    pub column_type: String,
    pub nullable: bool,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub datetime_precision: Option<u32>,
    /// `COLUMN_DEFAULT` as MariaDB shows it (`0`, `'abc'`, `NULL`, `current_timestamp()`); `None` when no default.
    pub default: Option<String>,
    /// `CHARACTER_SET_NAME` (character columns only).
    pub charset: Option<String>,
    /// `EXTRA` (`auto_increment`, `VIRTUAL GENERATED`, ...).
    pub extra: String,
    /// `COLUMN_COMMENT`.
    pub comment: String,
    /// The type name as a DDL statement wrote it, where Debezium's DDL parser keeps that name and it differs from
    /// `data_type` (`BOOLEAN`, `INTEGER`, `NUMERIC`, `REAL`, `DOUBLE PRECISION`, `FLOAT` with a precision, ...):
    /// `typeName` in `tableChanges`, and for `BOOL`/`BOOLEAN` and `REAL` also the Connect type (boolean, float32).
    /// `None` for a column read from `information_schema`, which only knows the canonical names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_type: Option<String>,
    /// The length Debezium's parser reports for a declared type whose canonical form drops it (`FLOAT(30)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_length: Option<u32>,
}

/// How a column is converted.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Int16,
    Int32,
    Int64,
    /// BIGINT UNSIGNED in `precise` mode: Decimal(20, 0).
    UnsignedBigPrecise,
    Float32,
    Float64,
    Decimal {
        precision: u32,
        scale: u32,
    },
    Text,
    Binary,
    Bool,
    Bits(u32),
    Enum(Vec<String>),
    Set(Vec<String>),
    Date,
    Time,
    Datetime(u32),
    Timestamp(u32),
    Year,
    Json,
}

impl ColumnInfo {
    pub fn unsigned(&self) -> bool {
        self.column_type.to_ascii_lowercase().contains("unsigned")
    }

    /// Declared `BOOL` or `BOOLEAN` (a `tinyint(1)` to the server): Debezium's parser makes it a Connect boolean.
    pub fn declared_boolean(&self) -> bool {
        matches!(self.declared_type.as_deref(), Some("BOOL" | "BOOLEAN"))
    }

    pub fn kind(&self) -> Kind {
        let unsigned = self.unsigned();
        if self.declared_boolean() {
            return Kind::Bool;
        }
        if self.declared_type.as_deref() == Some("REAL") {
            // java.sql.Types.REAL, which Debezium converts to a float32 (the server stores a double)
            return Kind::Float32;
        }
        match self.data_type.as_str() {
            "tinyint" => Kind::Int16,
            "smallint" if unsigned => Kind::Int32,
            "smallint" => Kind::Int16,
            "mediumint" => Kind::Int32,
            "int" | "integer" if unsigned => Kind::Int64,
            "int" | "integer" => Kind::Int32,
            "bigint" if unsigned => Kind::UnsignedBigPrecise,
            "bigint" => Kind::Int64,
            "float" => Kind::Float32,
            "double" | "real" => Kind::Float64,
            "decimal" | "numeric" => {
                Kind::Decimal { precision: self.precision.unwrap_or(10), scale: self.scale.unwrap_or(0) }
            }
            "bit" => {
                let n = paren_number(&self.column_type).unwrap_or(1);
                if n == 1 { Kind::Bool } else { Kind::Bits(n) }
            }
            "enum" => Kind::Enum(paren_list(&self.column_type)),
            "set" => Kind::Set(paren_list(&self.column_type)),
            "date" => Kind::Date,
            "time" => Kind::Time,
            "datetime" => Kind::Datetime(self.datetime_precision.unwrap_or(0)),
            "timestamp" => Kind::Timestamp(self.datetime_precision.unwrap_or(0)),
            "year" => Kind::Year,
            "json" => Kind::Json,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Binary,
            _ => Kind::Text,
        }
    }
}

/// `bit(3)` -> 3.
fn paren_number(column_type: &str) -> Option<u32> {
    let start = column_type.find('(')?;
    let end = column_type[start..].find(')')? + start;
    column_type[start + 1..end].trim().parse().ok()
}

/// `enum('a','b''c')` -> `["a", "b'c"]`.
pub fn paren_list(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else { return Vec::new() };
    let body = &column_type[start + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut item = String::new();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        item.push('\'');
                    } else {
                        break;
                    }
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        item.push(n);
                    }
                } else {
                    item.push(c);
                }
            }
            out.push(item);
        } else if c == ')' {
            break;
        }
    }
    out
}

fn logical(schema_type: SchemaType, optional: bool, name: &str, params: Vec<(&str, String)>) -> Schema {
    let mut s = Schema::primitive(schema_type, optional);
    s.name = Some(name.to_string());
    s.version = Some(1);
    if !params.is_empty() {
        s.parameters = Some(params.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    }
    s
}

fn decimal_schema(optional: bool, precision: u32, scale: u32, mode: DecimalMode) -> Schema {
    match mode {
        DecimalMode::Precise => logical(
            SchemaType::Bytes,
            optional,
            "org.apache.kafka.connect.data.Decimal",
            vec![("scale", scale.to_string()), ("connect.decimal.precision", precision.to_string())],
        ),
        DecimalMode::Double => Schema::primitive(SchemaType::Float64, optional),
        DecimalMode::String => Schema::primitive(SchemaType::String, optional),
    }
}

/// The Connect schema of a column (Debezium's), with the column's literal default as the schema default and its
/// comment as the doc.
pub fn column_schema(col: &ColumnInfo, settings: &TypeSettings) -> Schema {
    let mut schema = column_schema_without_default(col, settings);
    if let Some(default) = literal_default(col, settings) {
        schema.default = Some(Box::new(default));
    }
    // Debezium's field `doc`: the column's comment
    if !col.comment.is_empty() {
        schema.doc = Some(col.comment.clone());
    }
    schema
}

/// A literal column default as a Connect value (numbers, strings, enums, decimals, dates); expressions such as
/// `current_timestamp()` and `NULL` give none.
fn literal_default(col: &ColumnInfo, settings: &TypeSettings) -> Option<Value> {
    let raw = col.default.as_deref()?.trim();
    if raw.eq_ignore_ascii_case("NULL") {
        return None;
    }
    if col.declared_boolean() {
        let raw = raw.trim_matches('\'');
        return if raw.eq_ignore_ascii_case("TRUE") {
            Some(Value::Boolean(true))
        } else if raw.eq_ignore_ascii_case("FALSE") {
            Some(Value::Boolean(false))
        } else {
            raw.parse::<i64>().ok().map(|n| Value::Boolean(n != 0))
        };
    }
    let text = if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        inner.replace("''", "'").replace("\\\\", "\\")
    } else if raw.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
        raw.to_string()
    } else {
        return None;
    };
    let kind = col.kind();
    let value = match kind {
        Kind::Date | Kind::Datetime(_) | Kind::Timestamp(_) => {
            let (date, time) = text.split_once(' ').unwrap_or((&text, "00:00:00"));
            let mut d = date.split('-').map(|p| p.parse::<u32>().ok());
            let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
            let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
            let mut t = hms.split(':').map(|p| p.parse::<u32>().ok());
            let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
            let mut f = frac.to_string();
            while f.len() < 6 {
                f.push('0');
            }
            let us: u32 = f[..6].parse().ok()?;
            My::Date(y as u16, m as u8, dd as u8, h as u8, mi as u8, sec as u8, us)
        }
        // A quoted literal's text as bytes, as Debezium's default value converter (its DDL text decoded as UTF-8,
        // so raw bytes that are not UTF-8 read as U+FFFD); `X'..'` and expressions give none.
        Kind::Binary if raw.starts_with('\'') => My::Bytes(text.into_bytes()),
        Kind::Time | Kind::Bool | Kind::Bits(_) | Kind::Binary => return None,
        _ => My::Bytes(text.into_bytes()),
    };
    match convert(col, &kind, &value, settings, false) {
        Ok(Value::Null) | Err(_) => None,
        Ok(v) => Some(v),
    }
}

fn column_schema_without_default(col: &ColumnInfo, settings: &TypeSettings) -> Schema {
    let optional = col.nullable;
    match col.kind() {
        Kind::Int16 => Schema::primitive(SchemaType::Int16, optional),
        Kind::Int32 => Schema::primitive(SchemaType::Int32, optional),
        Kind::Int64 => Schema::primitive(SchemaType::Int64, optional),
        Kind::UnsignedBigPrecise if settings.bigint_precise => decimal_schema(optional, 20, 0, DecimalMode::Precise),
        Kind::UnsignedBigPrecise => Schema::primitive(SchemaType::Int64, optional),
        Kind::Float32 => Schema::primitive(SchemaType::Float32, optional),
        Kind::Float64 => Schema::primitive(SchemaType::Float64, optional),
        Kind::Decimal { precision, scale } => decimal_schema(optional, precision, scale, settings.decimal),
        Kind::Text => Schema::primitive(SchemaType::String, optional),
        Kind::Json => logical(SchemaType::String, optional, "io.debezium.data.Json", vec![]),
        Kind::Binary => match settings.binary {
            BinaryMode::Bytes => Schema::primitive(SchemaType::Bytes, optional),
            _ => Schema::primitive(SchemaType::String, optional),
        },
        Kind::Bool => Schema::primitive(SchemaType::Boolean, optional),
        Kind::Bits(n) => logical(SchemaType::Bytes, optional, "io.debezium.data.Bits", vec![("length", n.to_string())]),
        Kind::Enum(values) => {
            logical(SchemaType::String, optional, "io.debezium.data.Enum", vec![("allowed", values.join(","))])
        }
        Kind::Set(values) => {
            logical(SchemaType::String, optional, "io.debezium.data.EnumSet", vec![("allowed", values.join(","))])
        }
        Kind::Year => logical(SchemaType::Int32, optional, "io.debezium.time.Year", vec![]),
        Kind::Date => match settings.time {
            TimeMode::Connect => logical(SchemaType::Int32, optional, "org.apache.kafka.connect.data.Date", vec![]),
            _ => logical(SchemaType::Int32, optional, "io.debezium.time.Date", vec![]),
        },
        Kind::Time => match settings.time {
            TimeMode::Connect => logical(SchemaType::Int32, optional, "org.apache.kafka.connect.data.Time", vec![]),
            TimeMode::Adaptive { time_micros: false } if col.datetime_precision.unwrap_or(0) <= 3 => {
                logical(SchemaType::Int32, optional, "io.debezium.time.Time", vec![])
            }
            _ => logical(SchemaType::Int64, optional, "io.debezium.time.MicroTime", vec![]),
        },
        Kind::Datetime(p) => match settings.time {
            TimeMode::Connect => {
                logical(SchemaType::Int64, optional, "org.apache.kafka.connect.data.Timestamp", vec![])
            }
            _ if p <= 3 => logical(SchemaType::Int64, optional, "io.debezium.time.Timestamp", vec![]),
            _ => logical(SchemaType::Int64, optional, "io.debezium.time.MicroTimestamp", vec![]),
        },
        Kind::Timestamp(_) => logical(SchemaType::String, optional, "io.debezium.time.ZonedTimestamp", vec![]),
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-01-02T01:04:05.123Z` with `digits` fraction digits, as Debezium's ZonedTimestamp for MySQL TIMESTAMP(p).
pub fn zoned_timestamp(epoch_micros: i64, digits: u32) -> String {
    let secs = epoch_micros.div_euclid(1_000_000);
    let micros = epoch_micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod % 3600) / 60, sod % 60);
    if digits > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(&frac[..digits.min(6) as usize]);
    }
    out.push('Z');
    out
}

/// The big-endian two's-complement bytes of an unscaled decimal, as Java's `BigInteger.toByteArray`.
pub fn decimal_bytes(text: &str, scale: u32) -> Option<Bytes> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let mut all: String = int_part.to_string();
    let mut frac = frac_part.to_string();
    while (frac.len() as u32) < scale {
        frac.push('0');
    }
    frac.truncate(scale as usize);
    all.push_str(&frac);
    // magnitude in base 256, big-endian
    let mut mag: Vec<u8> = vec![0];
    for c in all.chars() {
        let digit = c.to_digit(10)?;
        let mut carry = digit;
        for b in mag.iter_mut().rev() {
            let v = *b as u32 * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while mag.len() > 1 && mag[0] == 0 {
        mag.remove(0);
    }
    if !negative || mag.iter().all(|b| *b == 0) {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return Some(Bytes::from(mag));
    }
    // two's complement of the magnitude
    if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    for b in mag.iter_mut() {
        *b = !*b;
    }
    for b in mag.iter_mut().rev() {
        let (v, overflow) = b.overflowing_add(1);
        *b = v;
        if !overflow {
            break;
        }
    }
    while mag.len() > 1 && mag[0] == 0xff && mag[1] & 0x80 != 0 {
        mag.remove(0);
    }
    Some(Bytes::from(mag))
}

fn text_of(v: &My) -> Option<String> {
    match v {
        My::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        My::Int(i) => Some(i.to_string()),
        My::UInt(u) => Some(u.to_string()),
        My::Float(f) => Some(f.to_string()),
        My::Double(f) => Some(f.to_string()),
        _ => None,
    }
}

/// The value of an integer column as the column's width and signedness say: the binlog carries no signedness
/// (MariaDB logs no `binlog_row_metadata` by default), so a raw value is re-read at the column's width.
fn normalize_int(col: &ColumnInfo, v: i64) -> i64 {
    let bits = match col.data_type.as_str() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => return v,
    };
    let mask = (1i64 << bits) - 1;
    let raw = v & mask;
    if col.unsigned() {
        raw
    } else if raw >> (bits - 1) & 1 == 1 {
        raw - (1i64 << bits)
    } else {
        raw
    }
}

fn int_of(v: &My) -> Option<i64> {
    match v {
        My::Int(i) => Some(*i),
        My::UInt(u) => Some(*u as i64),
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        My::Float(f) => Some(*f as i64),
        My::Double(f) => Some(*f as i64),
        _ => None,
    }
}

fn float_of(v: &My) -> Option<f64> {
    match v {
        My::Float(f) => Some(*f as f64),
        My::Double(f) => Some(*f),
        My::Int(i) => Some(*i as f64),
        My::UInt(u) => Some(*u as f64),
        My::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn micros_of_time(v: &My) -> Option<i64> {
    match v {
        My::Time(neg, days, h, m, s, us) => {
            let total = ((*days as i64 * 24 + *h as i64) * 3600 + *m as i64 * 60 + *s as i64) * 1_000_000 + *us as i64;
            Some(if *neg { -total } else { total })
        }
        My::Bytes(b) => {
            let t = std::str::from_utf8(b).ok()?;
            let (neg, t) = match t.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, t),
            };
            let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
            let mut parts = hms.split(':');
            let h: i64 = parts.next()?.parse().ok()?;
            let m: i64 = parts.next()?.parse().ok()?;
            let s: i64 = parts.next()?.parse().ok()?;
            let mut f = frac.to_string();
            while f.len() < 6 {
                f.push('0');
            }
            let us: i64 = f[..6].parse().ok()?;
            let total = (h * 3600 + m * 60 + s) * 1_000_000 + us;
            Some(if neg { -total } else { total })
        }
        _ => None,
    }
}

/// Epoch microseconds of a date-time value (wall clock taken as UTC).
fn micros_of_datetime(v: &My) -> Option<i64> {
    match v {
        My::Date(y, mo, d, h, mi, s, us) => {
            if *y == 0 && *mo == 0 && *d == 0 {
                return None;
            }
            let days = days_from_civil(*y as i64, (*mo).max(1) as u32, (*d).max(1) as u32);
            Some(((days * 86_400) + *h as i64 * 3600 + *mi as i64 * 60 + *s as i64) * 1_000_000 + *us as i64)
        }
        My::Bytes(b) => {
            // binlog TIMESTAMP2: "sec" or "sec.usec" since the epoch
            let t = std::str::from_utf8(b).ok()?;
            let (sec, frac) = t.split_once('.').unwrap_or((t, ""));
            let sec: i64 = sec.parse().ok()?;
            let mut f = frac.to_string();
            while f.len() < 6 {
                f.push('0');
            }
            let us: i64 = if f.is_empty() { 0 } else { f[..6].parse().ok()? };
            Some(sec * 1_000_000 + us)
        }
        My::Int(sec) => Some(sec * 1_000_000),
        _ => None,
    }
}

fn encode_binary(bytes: &[u8], mode: BinaryMode) -> Value {
    use base64::Engine;
    match mode {
        BinaryMode::Bytes => Value::Bytes(Bytes::copy_from_slice(bytes)),
        BinaryMode::Base64 => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        BinaryMode::Base64UrlSafe => Value::String(base64::engine::general_purpose::URL_SAFE.encode(bytes)),
        BinaryMode::Hex => Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// Converts a column value (binlog or binary-protocol form) to its Connect value. `Err` says why it could not.
pub fn convert(
    col: &ColumnInfo,
    kind: &Kind,
    value: &My,
    settings: &TypeSettings,
    from_binlog: bool,
) -> Result<Value, String> {
    if matches!(value, My::NULL) {
        return Ok(Value::Null);
    }
    let bad = || format!("column `{}` ({}): cannot convert {value:?}", col.name, col.column_type);
    Ok(match kind {
        Kind::Int16 => Value::Int16(normalize_int(col, int_of(value).ok_or_else(bad)?) as i16),
        Kind::Int32 => Value::Int32(normalize_int(col, int_of(value).ok_or_else(bad)?) as i32),
        Kind::Int64 => Value::Int64(normalize_int(col, int_of(value).ok_or_else(bad)?)),
        Kind::UnsignedBigPrecise => {
            let text = match value {
                My::Int(i) => (*i as u64).to_string(),
                other => text_of(other).ok_or_else(bad)?,
            };
            if settings.bigint_precise {
                Value::Bytes(decimal_bytes(&text, 0).ok_or_else(bad)?)
            } else {
                Value::Int64(text.parse::<u64>().map_err(|_| bad())? as i64)
            }
        }
        Kind::Float32 => Value::Float32(float_of(value).ok_or_else(bad)? as f32),
        Kind::Float64 => Value::Float64(float_of(value).ok_or_else(bad)?),
        Kind::Decimal { scale, .. } => {
            let text = text_of(value).ok_or_else(bad)?;
            match settings.decimal {
                DecimalMode::Precise => Value::Bytes(decimal_bytes(&text, *scale).ok_or_else(bad)?),
                DecimalMode::Double => Value::Float64(text.parse().map_err(|_| bad())?),
                DecimalMode::String => Value::String(text),
            }
        }
        Kind::Text | Kind::Json => Value::String(text_of(value).ok_or_else(bad)?),
        Kind::Binary => match value {
            My::Bytes(b) => encode_binary(b, settings.binary),
            _ => return Err(bad()),
        },
        Kind::Bool => match value {
            My::Bytes(b) => Value::Boolean(b.iter().any(|x| *x != 0)),
            other => Value::Boolean(int_of(other).ok_or_else(bad)? != 0),
        },
        Kind::Bits(n) => {
            let len = n.div_ceil(8) as usize;
            let mut be: Vec<u8> = match value {
                My::Bytes(b) => b.clone(),
                other => (int_of(other).ok_or_else(bad)? as u64).to_be_bytes().to_vec(),
            };
            while be.len() > len && be[0] == 0 {
                be.remove(0);
            }
            while be.len() < len {
                be.insert(0, 0);
            }
            be.reverse();
            Value::Bytes(Bytes::from(be))
        }
        Kind::Enum(values) => match value {
            My::Int(_) | My::UInt(_) => {
                let i = int_of(value).ok_or_else(bad)?;
                Value::String(if i <= 0 {
                    String::new()
                } else {
                    values.get(i as usize - 1).cloned().unwrap_or_default()
                })
            }
            other => Value::String(text_of(other).ok_or_else(bad)?),
        },
        Kind::Set(values) => match value {
            My::Bytes(b) if from_binlog => {
                let mut mask: u64 = 0;
                for (i, byte) in b.iter().enumerate().take(8) {
                    mask |= (*byte as u64) << (8 * i);
                }
                let chosen: Vec<&str> = values
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1u64 << i) != 0)
                    .map(|(_, v)| v.as_str())
                    .collect();
                Value::String(chosen.join(","))
            }
            other => Value::String(text_of(other).ok_or_else(bad)?),
        },
        Kind::Year => Value::Int32(int_of(value).ok_or_else(bad)? as i32),
        Kind::Date => match value {
            My::Date(y, m, d, ..) => {
                if *y == 0 && *m == 0 && *d == 0 {
                    return Ok(Value::Null);
                }
                Value::Int32(days_from_civil(*y as i64, (*m).max(1) as u32, (*d).max(1) as u32) as i32)
            }
            _ => return Err(bad()),
        },
        Kind::Time => {
            let micros = micros_of_time(value).ok_or_else(bad)?;
            match settings.time {
                TimeMode::Connect => Value::Int32((micros / 1000) as i32),
                TimeMode::Adaptive { time_micros: false } if col.datetime_precision.unwrap_or(0) <= 3 => {
                    Value::Int32((micros / 1000) as i32)
                }
                _ => Value::Int64(micros),
            }
        }
        Kind::Datetime(p) => {
            let Some(micros) = micros_of_datetime(value) else { return Ok(Value::Null) };
            match settings.time {
                TimeMode::Connect => Value::Int64(micros.div_euclid(1000)),
                _ if *p <= 3 => Value::Int64(micros.div_euclid(1000)),
                _ => Value::Int64(micros),
            }
        }
        Kind::Timestamp(p) => {
            let Some(micros) = micros_of_datetime(value) else { return Ok(Value::Null) };
            Value::String(zoned_timestamp(micros, *p))
        }
    })
}

/// A struct schema of columns with the given name (`<topic>.Value` / `<topic>.Key`).
pub fn struct_schema(name: &str, optional: bool, fields: Vec<(String, Arc<Schema>)>) -> Schema {
    let mut s = Schema::primitive(SchemaType::Struct, optional);
    s.name = Some(name.to_string());
    s.fields = fields
        .into_iter()
        .enumerate()
        .map(|(index, (name, schema))| sluice_connect_api::record::Field { name, index, schema })
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_java_big_integers() {
        assert_eq!(decimal_bytes("12.34", 2).unwrap().as_ref(), &[0x04, 0xd2]);
        assert_eq!(decimal_bytes("2.25", 2).unwrap().as_ref(), &[0x00, 0xe1]);
        assert_eq!(decimal_bytes("0", 0).unwrap().as_ref(), &[0x00]);
        assert_eq!(decimal_bytes("-1", 0).unwrap().as_ref(), &[0xff]);
        assert_eq!(decimal_bytes("-128", 0).unwrap().as_ref(), &[0x80]);
        assert_eq!(decimal_bytes("-129", 0).unwrap().as_ref(), &[0xff, 0x7f]);
        assert_eq!(decimal_bytes("128", 0).unwrap().as_ref(), &[0x00, 0x80]);
        assert_eq!(decimal_bytes("1.5", 3).unwrap().as_ref(), &[0x05, 0xdc]);
    }

    #[test]
    fn dates_and_zoned_timestamps() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1990, 5, 17), 7441);
        assert_eq!(civil_from_days(7441), (1990, 5, 17));
        assert_eq!(zoned_timestamp(1_704_157_445_123_456, 6), "2024-01-02T01:04:05.123456Z");
        assert_eq!(zoned_timestamp(1_704_157_445_123_456, 3), "2024-01-02T01:04:05.123Z");
        assert_eq!(zoned_timestamp(1_704_157_445_000_000, 0), "2024-01-02T01:04:05Z");
    }

    #[test]
    fn enum_lists() {
        assert_eq!(paren_list("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
    }
}
