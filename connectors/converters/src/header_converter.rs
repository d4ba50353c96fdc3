//! Header converters: Kafka Connect's `HeaderConverter` (`header.converter`), which turns one header value into
//! bytes and back. [`SimpleHeaderConverter`] is Kafka Connect's default: values are written as text
//! (`Values.convertToString`) and read back by inferring their type (`Values.parseString`). Any [`Converter`] can
//! serve as a header converter too ([`ConverterHeaderConverter`]), as in Kafka Connect.
//!
//! Inside Sluice, record headers are carried as bytes in `SimpleHeaderConverter`'s form (that is what the header
//! transforms write); the agent translates them at the Kafka boundary when another header converter is configured.

use std::sync::{Arc, OnceLock};

use crate::config::ConfigMap;
use crate::converter::Converter;
use crate::error::ConnectError;
use crate::record::{Schema, SchemaType, Value};
use sluice_connect_api::date_format::days_from_civil;
use sluice_connect_api::values::append_text as header_text;

const DECIMAL_LOGICAL: &str = "org.apache.kafka.connect.data.Decimal";
const DATE_LOGICAL: &str = "org.apache.kafka.connect.data.Date";
const TIME_LOGICAL: &str = "org.apache.kafka.connect.data.Time";
const TIMESTAMP_LOGICAL: &str = "org.apache.kafka.connect.data.Timestamp";
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Turns a header's Connect value into bytes for Kafka and back (Kafka Connect's `HeaderConverter`).
pub trait HeaderConverter: Send + Sync {
    /// `config` holds the converter's own keys, `header.converter.` stripped.
    fn configure(&mut self, config: &ConfigMap) -> Result<(), ConnectError>;
    /// The bytes of a header value; `None` for a null.
    // Named after Kafka Connect's `fromConnectHeader`; it converts *from* Connect data, it is not a constructor.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect_header(
        &self,
        topic: &str,
        header_key: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError>;
    /// The Connect value of a header read from Kafka (`None` bytes is a null header).
    fn to_connect_header(
        &self,
        topic: &str,
        header_key: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), ConnectError>;
}

/// Kafka Connect's `SimpleHeaderConverter`.
#[derive(Debug, Default, Clone)]
pub struct SimpleHeaderConverter;

impl HeaderConverter for SimpleHeaderConverter {
    fn configure(&mut self, _config: &ConfigMap) -> Result<(), ConnectError> {
        Ok(())
    }

    fn from_connect_header(
        &self,
        _topic: &str,
        _header_key: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        if matches!(value, Value::Null) {
            return Ok(None);
        }
        let mut text = String::new();
        header_text(schema, value, false, &mut text);
        Ok(Some(text.into_bytes()))
    }

    fn to_connect_header(
        &self,
        _topic: &str,
        _header_key: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        let Some(bytes) = bytes else { return Ok((None, Value::Null)) };
        // Java decodes malformed UTF-8 with replacement characters too.
        let text = String::from_utf8_lossy(bytes);
        Ok(parse_string(&text))
    }
}

/// A plain [`Converter`] used as a header converter, as Kafka Connect allows for `StringConverter`,
/// `ByteArrayConverter` and `JsonConverter`.
pub struct ConverterHeaderConverter(pub Box<dyn Converter>);

impl HeaderConverter for ConverterHeaderConverter {
    fn configure(&mut self, config: &ConfigMap) -> Result<(), ConnectError> {
        self.0.configure(config, false)
    }

    fn from_connect_header(
        &self,
        topic: &str,
        _header_key: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConnectError> {
        let mut out = Vec::new();
        Ok(self.0.from_connect(topic, schema, value, &mut out)?.then_some(out))
    }

    fn to_connect_header(
        &self,
        topic: &str,
        _header_key: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        self.0.to_connect(topic, bytes)
    }
}

fn schema_of(schema_type: SchemaType) -> Arc<Schema> {
    static SCHEMAS: OnceLock<Vec<Arc<Schema>>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        [
            SchemaType::Int8,
            SchemaType::Int16,
            SchemaType::Int32,
            SchemaType::Int64,
            SchemaType::Float32,
            SchemaType::Float64,
            SchemaType::Boolean,
            SchemaType::String,
        ]
        .into_iter()
        .map(|t| Arc::new(Schema::primitive(t, false)))
        .collect()
    });
    all.iter()
        .find(|s| s.schema_type == schema_type)
        .cloned()
        .unwrap_or_else(|| Arc::new(Schema::primitive(schema_type, false)))
}

fn logical_schema(schema_type: SchemaType, name: &str, parameters: Option<Vec<(String, String)>>) -> Arc<Schema> {
    let mut schema = Schema::primitive(schema_type, false);
    schema.name = Some(name.to_string());
    schema.version = Some(1);
    schema.parameters = parameters;
    Arc::new(schema)
}

type Parsed = (Option<Arc<Schema>>, Value);

/// Kafka Connect's `Values.parseString`: the type of a header text is inferred (booleans, integers of the smallest
/// fitting type, floats, decimals, ISO dates/times/timestamps, arrays and maps); anything else is the string itself.
pub fn parse_string(text: &str) -> Parsed {
    let string = || (Some(schema_of(SchemaType::String)), Value::String(text.to_string()));
    if text.is_empty() {
        return string();
    }
    let mut parser = ValueParser { input: text.as_bytes(), text, pos: 0 };
    match parser.parse(false) {
        Ok(Some(parsed)) => parsed,
        // Kafka Connect fails with a NullPointerException on the bare text `null`; Sluice reads a null header.
        Ok(None) => (None, Value::Null),
        Err(()) => string(),
    }
}

struct ValueParser<'a> {
    input: &'a [u8],
    text: &'a str,
    pos: usize,
}

const DELIMITERS: &[u8] = b"[]{},:\"";

impl<'a> ValueParser<'a> {
    fn skip_whitespace(&mut self) {
        while self.pos < self.input.len() && self.input[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// The next token: a delimiter, or the text up to the next delimiter (with its surrounding whitespace).
    fn next_token(&mut self) -> &'a str {
        let start = self.pos;
        if start >= self.input.len() {
            return "";
        }
        if DELIMITERS.contains(&self.input[start]) {
            self.pos += 1;
        } else {
            while self.pos < self.input.len() && !DELIMITERS.contains(&self.input[self.pos]) {
                self.pos += 1;
            }
        }
        &self.text[start..self.pos]
    }

    /// Consumes `expected` if the next token (whitespace around it ignored) is exactly it.
    fn can_consume(&mut self, expected: &str) -> bool {
        let start = self.pos;
        self.skip_whitespace();
        let token = self.next_token();
        if token.trim() == expected {
            return true;
        }
        self.pos = start;
        false
    }

    fn has_next(&mut self) -> bool {
        self.pos < self.input.len()
    }

    /// `Ok(None)` is a null; `Err` a text that is no embedded value (the whole input then reads as a string).
    fn parse(&mut self, embedded: bool) -> Result<Option<Parsed>, ()> {
        if !self.has_next() {
            return Err(());
        }
        if embedded && self.peek_non_ws() == Some(b'"') {
            self.skip_whitespace();
            self.pos += 1;
            return self.quoted_string().map(Some);
        }
        if self.can_consume("true") {
            return Ok(Some((Some(schema_of(SchemaType::Boolean)), Value::Boolean(true))));
        }
        if self.can_consume("false") {
            return Ok(Some((Some(schema_of(SchemaType::Boolean)), Value::Boolean(false))));
        }
        if self.can_consume("null") {
            return Ok(None);
        }
        let start = self.pos;
        if self.can_consume("[") {
            match self.array() {
                Ok(parsed) => return Ok(Some(parsed)),
                Err(()) => self.pos = start,
            }
        } else if self.can_consume("{") {
            match self.map() {
                Ok(parsed) => return Ok(Some(parsed)),
                Err(()) => self.pos = start,
            }
        }
        let token_start = self.pos;
        let token = self.next_token();
        if token.trim().is_empty() {
            return if embedded {
                Err(())
            } else {
                Ok(Some((Some(schema_of(SchemaType::String)), Value::String(token.to_string()))))
            };
        }
        let trimmed = token.trim();
        let first = trimmed.as_bytes()[0];
        if first.is_ascii_digit() {
            let lead = token.len() - token.trim_start().len();
            if let Some((len, parsed)) = temporal(&self.text[token_start + lead..]) {
                self.pos = token_start + lead + len;
                return Ok(Some(parsed));
            }
        }
        if (first.is_ascii_digit() || first == b'+' || first == b'-')
            && let Some(parsed) = parse_number(trimmed)
        {
            return Ok(Some(parsed));
        }
        if embedded {
            return Err(());
        }
        Ok(Some((Some(schema_of(SchemaType::String)), Value::String(self.text.to_string()))))
    }

    fn peek_non_ws(&self) -> Option<u8> {
        self.input[self.pos..].iter().copied().find(|b| !b.is_ascii_whitespace())
    }

    /// The text up to the closing quote; escapes are kept as written (as Kafka Connect does).
    fn quoted_string(&mut self) -> Result<Parsed, ()> {
        let start = self.pos;
        while self.pos < self.input.len() {
            match self.input[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    let content = self.text[start..self.pos].to_string();
                    self.pos += 1;
                    return Ok((Some(schema_of(SchemaType::String)), Value::String(content)));
                }
                _ => self.pos += 1,
            }
        }
        Err(())
    }

    fn array(&mut self) -> Result<Parsed, ()> {
        let mut items = Vec::new();
        let mut merger = SchemaMerger::default();
        while self.has_next() {
            if self.can_consume("]") {
                return Ok(match merger.common() {
                    Some(element) => {
                        let items = items.into_iter().map(|v| align(&element, v)).collect::<Result<Vec<_>, _>>()?;
                        (Some(array_schema(Some(element))), Value::Array(items))
                    }
                    None => (Some(array_schema(None)), Value::Array(items)),
                });
            }
            if self.can_consume(",") {
                return Err(());
            }
            let element = self.parse(true)?;
            merger.merge(element.as_ref());
            items.push(element.map_or(Value::Null, |(_, v)| v));
            if !self.can_consume(",") && self.peek_non_ws() != Some(b']') {
                return Err(());
            }
        }
        Err(())
    }

    fn map(&mut self) -> Result<Parsed, ()> {
        let mut entries = Vec::new();
        let mut keys = SchemaMerger::default();
        let mut values = SchemaMerger::default();
        while self.has_next() {
            if self.can_consume("}") {
                let (key_schema, value_schema) = match (keys.common(), values.common()) {
                    (Some(k), Some(v)) => {
                        entries = entries
                            .into_iter()
                            .map(|(key, value)| Ok((align(&k, key)?, align(&v, value)?)))
                            .collect::<Result<Vec<_>, ()>>()?;
                        (Some(k), Some(v))
                    }
                    (Some(k), None) => {
                        entries = entries
                            .into_iter()
                            .map(|(key, value)| Ok((align(&k, key)?, value)))
                            .collect::<Result<_, ()>>()?;
                        (Some(k), None)
                    }
                    _ => (None, None),
                };
                let mut schema = Schema::primitive(SchemaType::Map, false);
                schema.key_schema = key_schema;
                schema.value_schema = value_schema;
                return Ok((Some(Arc::new(schema)), Value::Map(entries)));
            }
            if self.can_consume(",") {
                return Err(());
            }
            let key = self.parse(true)?;
            if !self.can_consume(":") {
                return Err(());
            }
            let value = self.parse(true)?;
            keys.merge(key.as_ref());
            values.merge(value.as_ref());
            entries.push((key.map_or(Value::Null, |(_, v)| v), value.map_or(Value::Null, |(_, v)| v)));
            if !self.can_consume(",") && self.peek_non_ws() != Some(b'}') {
                return Err(());
            }
        }
        Err(())
    }
}

fn array_schema(element: Option<Arc<Schema>>) -> Arc<Schema> {
    let mut schema = Schema::primitive(SchemaType::Array, false);
    schema.value_schema = element;
    Arc::new(schema)
}

/// Kafka Connect's `SchemaMerger`: the common schema of the elements, numbers widened; nulls do not count.
#[derive(Default)]
struct SchemaMerger {
    common: Option<Arc<Schema>>,
    incompatible: bool,
}

fn numeric_rank(t: SchemaType) -> Option<u8> {
    match t {
        SchemaType::Int8 => Some(1),
        SchemaType::Int16 => Some(2),
        SchemaType::Int32 => Some(3),
        SchemaType::Int64 => Some(4),
        SchemaType::Float32 => Some(5),
        SchemaType::Float64 => Some(6),
        _ => None,
    }
}

impl SchemaMerger {
    fn merge(&mut self, parsed: Option<&Parsed>) {
        let Some((Some(schema), _)) = parsed else { return };
        let Some(common) = &self.common else {
            self.common = Some(schema.clone());
            return;
        };
        if common.schema_type == schema.schema_type {
            // Same type, different inner schemas (`[[1,2],[]]`): Kafka Connect ends with the later one.
            if common != schema {
                self.common = Some(schema.clone());
            }
            return;
        }
        match (numeric_rank(common.schema_type), numeric_rank(schema.schema_type)) {
            (Some(a), Some(b)) if b > a => self.common = Some(schema.clone()),
            (Some(_), Some(_)) => {}
            _ => self.incompatible = true,
        }
    }

    fn common(&self) -> Option<Arc<Schema>> {
        if self.incompatible { None } else { self.common.clone() }
    }
}

/// `Values.convertTo` of one element to the common schema: numbers are widened; a null cannot take a required
/// schema, which makes the whole text a string.
fn align(schema: &Schema, value: Value) -> Result<Value, ()> {
    let as_i64 = |v: &Value| match v {
        Value::Int8(x) => Some(i64::from(*x)),
        Value::Int16(x) => Some(i64::from(*x)),
        Value::Int32(x) => Some(i64::from(*x)),
        Value::Int64(x) => Some(*x),
        _ => None,
    };
    Ok(match (&value, schema.schema_type) {
        (Value::Null, _) => return Err(()),
        (v, SchemaType::Int16) if as_i64(v).is_some() => Value::Int16(as_i64(v).unwrap_or_default() as i16),
        (v, SchemaType::Int32) if as_i64(v).is_some() => Value::Int32(as_i64(v).unwrap_or_default() as i32),
        (v, SchemaType::Int64) if as_i64(v).is_some() => Value::Int64(as_i64(v).unwrap_or_default()),
        (v, SchemaType::Float32) if as_i64(v).is_some() => Value::Float32(as_i64(v).unwrap_or_default() as f32),
        (v, SchemaType::Float64) if as_i64(v).is_some() => Value::Float64(as_i64(v).unwrap_or_default() as f64),
        (Value::Float32(f), SchemaType::Float64) => Value::Float64(f64::from(*f)),
        _ => value,
    })
}

/// An ISO date (`yyyy-MM-dd`), time (`HH:mm:ss.SSS'Z'`) or timestamp (`yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`) at the start
/// of `text`, as Kafka Connect's formats (UTC) read them: its length and value.
fn temporal(text: &str) -> Option<(usize, Parsed)> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) { std::str::from_utf8(part).ok()?.parse().ok() } else { None }
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let date = || -> Option<i64> {
        if !(at(4, b'-') && at(7, b'-')) {
            return None;
        }
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
    };
    let time = |o: usize| -> Option<i64> {
        if !(at(o + 2, b':') && at(o + 5, b':') && at(o + 8, b'.') && at(o + 12, b'Z')) {
            return None;
        }
        let (h, mi, s, ms) = (num(o..o + 2)?, num(o + 3..o + 5)?, num(o + 6..o + 8)?, num(o + 9..o + 12)?);
        (h < 24 && mi < 60 && s < 60).then_some(h * 3_600_000 + mi * 60_000 + s * 1000 + ms)
    };
    if at(10, b'T')
        && let (Some(days), Some(ms)) = (date(), time(11))
    {
        let schema = logical_schema(SchemaType::Int64, TIMESTAMP_LOGICAL, None);
        return Some((24, (Some(schema), Value::Int64(days * MILLIS_PER_DAY + ms))));
    }
    if let Some(days) = date() {
        let schema = logical_schema(SchemaType::Int32, DATE_LOGICAL, None);
        return Some((10, (Some(schema), Value::Int32(i32::try_from(days).ok()?))));
    }
    if let Some(ms) = time(0) {
        let schema = logical_schema(SchemaType::Int32, TIME_LOGICAL, None);
        return Some((13, (Some(schema), Value::Int32(ms as i32))));
    }
    None
}

/// `Values.parseAsNumber`: a whole number as the smallest integer type that holds it, else a FLOAT32 or FLOAT64 if
/// finite (and the text has a scale), else a Decimal. `None` if the token is no Java `BigDecimal`.
fn parse_number(token: &str) -> Option<Parsed> {
    let (negative, body) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => {
            let exp = &body[i + 1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (&body[..i], exp.parse::<i64>().ok()?)
        }
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().chain(frac_part.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let scale = frac_part.len() as i64 - exponent;
    let all_digits = format!("{int_part}{frac_part}");
    let digits = all_digits.trim_start_matches('0');

    // A whole number that fits a long: the smallest integer type.
    let integral = if digits.is_empty() {
        Some(String::new())
    } else if scale <= 0 {
        (scale > -40).then(|| format!("{digits}{}", "0".repeat((-scale) as usize)))
    } else {
        let cut = digits.len() as i64 - scale;
        if cut <= 0 {
            None
        } else {
            let (whole, rest) = digits.split_at(cut as usize);
            rest.bytes().all(|c| c == b'0').then(|| whole.to_string())
        }
    };
    if let Some(whole) = integral
        && whole.len() <= 20
    {
        let magnitude: i128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let value = if negative { -magnitude } else { magnitude };
        if let Ok(v) = i8::try_from(value) {
            return Some((Some(schema_of(SchemaType::Int8)), Value::Int8(v)));
        }
        if let Ok(v) = i16::try_from(value) {
            return Some((Some(schema_of(SchemaType::Int16)), Value::Int16(v)));
        }
        if let Ok(v) = i32::try_from(value) {
            return Some((Some(schema_of(SchemaType::Int32)), Value::Int32(v)));
        }
        if let Ok(v) = i64::try_from(value) {
            return Some((Some(schema_of(SchemaType::Int64)), Value::Int64(v)));
        }
    }
    if scale != 0 {
        let f: f32 = token.parse().ok()?;
        if f.is_finite() {
            return Some((Some(schema_of(SchemaType::Float32)), Value::Float32(f)));
        }
        let d: f64 = token.parse().ok()?;
        if d.is_finite() {
            return Some((Some(schema_of(SchemaType::Float64)), Value::Float64(d)));
        }
    }
    let scale = i32::try_from(scale).ok()?;
    let schema =
        logical_schema(SchemaType::Bytes, DECIMAL_LOGICAL, Some(vec![("scale".to_string(), scale.to_string())]));
    Some((Some(schema), Value::Bytes(two_complement(digits, negative).into())))
}

/// Java's `BigInteger.toByteArray()` of a decimal digit string: minimal big-endian two's complement.
fn two_complement(digits: &str, negative: bool) -> Vec<u8> {
    let mut magnitude: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in magnitude.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            magnitude.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    // One leading zero byte keeps room for the sign bit.
    magnitude.insert(0, 0);
    if negative {
        for byte in magnitude.iter_mut() {
            *byte = !*byte;
        }
        for byte in magnitude.iter_mut().rev() {
            let (sum, overflow) = byte.overflowing_add(1);
            *byte = sum;
            if !overflow {
                break;
            }
        }
    }
    let sign = if negative { 0xff } else { 0 };
    let mut start = 0;
    while start + 1 < magnitude.len() && magnitude[start] == sign && (magnitude[start + 1] & 0x80 == sign & 0x80) {
        start += 1;
    }
    magnitude.split_off(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Parsed {
        SimpleHeaderConverter.to_connect_header("t", "h", Some(text.as_bytes())).expect("reads")
    }

    fn write(schema: Option<&Schema>, value: &Value) -> Option<String> {
        SimpleHeaderConverter
            .from_connect_header("t", "h", schema, value)
            .expect("writes")
            .map(|b| String::from_utf8(b).expect("utf-8"))
    }

    #[test]
    fn scalars_are_inferred() {
        assert_eq!(read("42"), (Some(schema_of(SchemaType::Int8)), Value::Int8(42)));
        assert_eq!(read("128").1, Value::Int16(128));
        assert_eq!(read("70000").1, Value::Int32(70000));
        assert_eq!(read("12345678901234").1, Value::Int64(12_345_678_901_234));
        assert_eq!(read("1.0").1, Value::Int8(1));
        assert_eq!(read("1.5").1, Value::Float32(1.5));
        assert_eq!(read("1.7976931348623157E308").1, Value::Float64(f64::MAX));
        assert_eq!(read("true").1, Value::Boolean(true));
        assert_eq!(read("TRUE").1, Value::String("TRUE".into()));
        assert_eq!(read("7 apples").1, Value::String("7 apples".into()));
        assert_eq!(read("").1, Value::String(String::new()));
        assert_eq!(read("null"), (None, Value::Null));
        assert_eq!(SimpleHeaderConverter.to_connect_header("t", "h", None).expect("null"), (None, Value::Null));
        let (schema, value) = read("9223372036854775808");
        assert_eq!(schema.expect("decimal").parameter("scale"), Some("0"));
        assert_eq!(value, Value::Bytes(vec![0, 0x80, 0, 0, 0, 0, 0, 0, 0].into()));
        assert_eq!(two_complement("128", true), vec![0x80]);
        assert_eq!(two_complement("129", true), vec![0xff, 0x7f]);
        assert_eq!(two_complement("", false), vec![0]);
    }

    #[test]
    fn temporals_arrays_and_maps() {
        let (schema, value) = read("2022-01-08");
        assert_eq!((schema.expect("date").name.as_deref(), value), (Some(DATE_LOGICAL), Value::Int32(19000)));
        assert_eq!(read("12:00:00.000Z").1, Value::Int32(43_200_000));
        assert_eq!(read("1970-01-02T00:00:00.001Z").1, Value::Int64(86_400_001));
        let (schema, value) = read("[1,300]");
        assert_eq!(schema.expect("array").value_schema.as_ref().map(|s| s.schema_type), Some(SchemaType::Int16));
        assert_eq!(value, Value::Array(vec![Value::Int16(1), Value::Int16(300)]));
        assert_eq!(read("[1,null]").1, Value::String("[1,null]".into()));
        assert_eq!(read("[a,b]").1, Value::String("[a,b]".into()));
        let (schema, value) = read(r#"{"a":null}"#);
        let schema = schema.expect("map");
        assert_eq!(schema.key_schema.as_ref().map(|s| s.schema_type), Some(SchemaType::String));
        assert!(schema.value_schema.is_none());
        assert_eq!(value, Value::Map(vec![(Value::String("a".into()), Value::Null)]));
    }

    #[test]
    fn values_are_written_as_text() {
        assert_eq!(write(None, &Value::Null), None);
        assert_eq!(write(None, &Value::String("a \"b\"".into())).as_deref(), Some("a \"b\""));
        assert_eq!(write(None, &Value::Float64(1e10)).as_deref(), Some("1.0E10"));
        let list = Value::Array(vec![Value::String("x\"".into()), Value::Int32(1), Value::Null]);
        assert_eq!(write(None, &list).as_deref(), Some(r#"["x\"",1,null]"#));
        let decimal = logical_schema(SchemaType::Bytes, DECIMAL_LOGICAL, Some(vec![("scale".into(), "2".into())]));
        assert_eq!(write(Some(&decimal), &Value::Bytes(vec![0x04, 0xd2].into())).as_deref(), Some("12.34"));
    }

    #[test]
    fn converters_serve_as_header_converters() {
        let mut json = ConverterHeaderConverter(Box::new(crate::converter::JsonConverter::default()));
        json.configure(&ConfigMap::from([("schemas.enable".to_string(), "false".to_string())])).expect("configures");
        let bytes = json.from_connect_header("t", "h", None, &Value::String("v".into())).expect("writes");
        assert_eq!(bytes.as_deref(), Some(&b"\"v\""[..]));
        assert_eq!(json.to_connect_header("t", "h", Some(b"1")).expect("reads").1, Value::Int64(1));
        let string = ConverterHeaderConverter(Box::new(crate::converter::StringConverter));
        assert_eq!(string.from_connect_header("t", "h", None, &Value::Null).expect("null"), None);
    }
}
