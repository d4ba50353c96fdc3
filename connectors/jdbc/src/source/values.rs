//! Value conversions shared by both databases: Connect's Decimal bytes (Java `BigInteger.toByteArray` of the
//! unscaled value), civil dates to epoch days, and the numeric mapping of Kafka Connect JDBC.

use std::sync::Arc;

use sluice_connect_api::record::{Schema, SchemaType, Value};

/// `numeric.mapping` (Confluent's `NumericMapping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericMapping {
    None,
    PrecisionOnly,
    BestFit,
    BestFitEagerDouble,
}

/// The Connect type a NUMERIC/DECIMAL column of this precision and scale maps to (Confluent's
/// `GenericDatabaseDialect.addFieldToSchema`, `Types.NUMERIC`/`DECIMAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericKind {
    Int8,
    Int16,
    Int32,
    Int64,
    Float64,
    Decimal(i32),
}

/// `Types.NUMERIC` (PostgreSQL `numeric`); `Types.DECIMAL` (MySQL `DECIMAL`) is always a Decimal. Integers for
/// precision <= 18 (`MAX_INTEGER_TYPE_PRECISION`), `NUMERIC_TYPE_SCALE_LOW` = -84.
pub fn numeric_kind(mapping: NumericMapping, precision: i32, scale: i32) -> NumericKind {
    let ints = |p: i32| {
        if p > 9 {
            NumericKind::Int64
        } else if p > 4 {
            NumericKind::Int32
        } else if p > 2 {
            NumericKind::Int16
        } else {
            NumericKind::Int8
        }
    };
    let decimal = NumericKind::Decimal(scale);
    match mapping {
        NumericMapping::None => decimal,
        NumericMapping::PrecisionOnly if scale == 0 && precision <= 18 => ints(precision),
        NumericMapping::BestFit if precision <= 18 && (-84..1).contains(&scale) => ints(precision),
        NumericMapping::BestFit if precision <= 18 && scale > 0 => NumericKind::Float64,
        NumericMapping::BestFitEagerDouble if (-84..1).contains(&scale) && precision <= 18 => ints(precision),
        NumericMapping::BestFitEagerDouble if scale > 0 => NumericKind::Float64,
        _ => decimal,
    }
}

pub fn numeric_schema(kind: NumericKind, precision: i32, optional: bool) -> Schema {
    match kind {
        NumericKind::Int8 => Schema::primitive(SchemaType::Int8, optional),
        NumericKind::Int16 => Schema::primitive(SchemaType::Int16, optional),
        NumericKind::Int32 => Schema::primitive(SchemaType::Int32, optional),
        NumericKind::Int64 => Schema::primitive(SchemaType::Int64, optional),
        NumericKind::Float64 => Schema::primitive(SchemaType::Float64, optional),
        NumericKind::Decimal(scale) => {
            let mut s = logical(SchemaType::Bytes, DECIMAL, optional, Some(scale));
            // Confluent adds the column's precision (`GenericDatabaseDialect.PRECISION_FIELD`).
            s.parameters.get_or_insert_with(Vec::new).push(("connect.decimal.precision".into(), precision.to_string()));
            s
        }
    }
}

pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

/// A Connect logical schema (version 1, as Connect's `Decimal.builder`/`Date.builder` make them).
pub fn logical(t: SchemaType, name: &str, optional: bool, scale: Option<i32>) -> Schema {
    let mut s = Schema::primitive(t, optional);
    s.name = Some(name.to_string());
    s.version = Some(1);
    if let Some(scale) = scale {
        s.parameters = Some(vec![("scale".to_string(), scale.to_string())]);
    }
    s
}

pub fn prim(t: SchemaType, optional: bool) -> Arc<Schema> {
    Arc::new(Schema::primitive(t, optional))
}

/// A decimal in text (`-12.340`, `5`, `1e3` not expected) converted to a value for `kind`; Decimal values are
/// rescaled to `scale` (half-up, as `BigDecimal.setScale` with `RoundingMode.HALF_UP`... Confluent rescales only
/// when the column scale differs, which it never does for constrained columns).
pub fn numeric_value(kind: NumericKind, text: &str) -> Result<Value, String> {
    let text = text.trim();
    match kind {
        NumericKind::Float64 => text.parse::<f64>().map(Value::Float64).map_err(|e| format!("{text}: {e}")),
        NumericKind::Decimal(scale) => Ok(Value::Bytes(decimal_bytes(text, scale)?.into())),
        _ => {
            let int_part = text.split('.').next().unwrap_or("0");
            let n = int_part.parse::<i64>().map_err(|e| format!("{text}: {e}"))?;
            Ok(match kind {
                NumericKind::Int8 => Value::Int8(n as i8),
                NumericKind::Int16 => Value::Int16(n as i16),
                NumericKind::Int32 => Value::Int32(n as i32),
                _ => Value::Int64(n),
            })
        }
    }
}

/// The unscaled value of `text` at `scale`, as Java's `BigInteger.toByteArray()` (big-endian two's complement,
/// minimal length; zero is one 0 byte).
pub fn decimal_bytes(text: &str, scale: i32) -> Result<Vec<u8>, String> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if !int_part.chars().chain(frac_part.chars()).all(|c| c.is_ascii_digit()) {
        return Err(format!("not a decimal: {text}"));
    }
    let scale = scale.max(0) as usize;
    let mut digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    let mut round_up = false;
    for (i, b) in frac_part.bytes().enumerate() {
        if i < scale {
            digits.push(b - b'0');
        } else if i == scale {
            round_up = b >= b'5';
        }
    }
    digits.extend(std::iter::repeat_n(0, scale.saturating_sub(frac_part.len())));
    // Magnitude in base 256, big-endian.
    let mut mag: Vec<u8> = vec![0];
    for d in digits {
        let mut carry = d as u32;
        for byte in mag.iter_mut().rev() {
            let v = *byte as u32 * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    if round_up {
        let mut carry = 1u32;
        for byte in mag.iter_mut().rev() {
            let v = *byte as u32 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
            if carry == 0 {
                break;
            }
        }
        if carry > 0 {
            mag.insert(0, carry as u8);
        }
    }
    while mag.len() > 1 && mag[0] == 0 {
        mag.remove(0);
    }
    let is_zero = mag.iter().all(|b| *b == 0);
    if !neg || is_zero {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return Ok(mag);
    }
    // Two's complement of the magnitude.
    let mut out: Vec<u8> = mag.iter().map(|b| !b).collect();
    for byte in out.iter_mut().rev() {
        let (v, overflow) = byte.overflowing_add(1);
        *byte = v;
        if !overflow {
            break;
        }
    }
    if out[0] & 0x80 == 0 {
        out.insert(0, 0xff);
    }
    while out.len() > 1 && out[0] == 0xff && out[1] & 0x80 != 0 {
        out.remove(0);
    }
    Ok(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
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

/// A point in time as Kafka Connect JDBC's offsets keep it: epoch milliseconds (`Timestamp.getTime()`) and the
/// nanoseconds within the second (`Timestamp.getNanos()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts {
    /// Nanoseconds since the epoch.
    pub nanos: i128,
}

impl Ts {
    pub fn from_micros(us: i64) -> Ts {
        Ts { nanos: us as i128 * 1000 }
    }
    pub fn millis(self) -> i64 {
        self.nanos.div_euclid(1_000_000) as i64
    }
    pub fn micros(self) -> i64 {
        self.nanos.div_euclid(1000) as i64
    }
    pub fn nanos_of_second(self) -> i64 {
        self.nanos.rem_euclid(1_000_000_000) as i64
    }
    /// From an offset map's `timestamp` (ms) and `timestamp_nanos` (nanos of the second).
    pub fn from_offset(millis: i64, nanos: Option<i64>) -> Ts {
        let secs = millis.div_euclid(1000) as i128;
        let n = match nanos {
            Some(n) => n as i128,
            None => millis.rem_euclid(1000) as i128 * 1_000_000,
        };
        Ts { nanos: secs * 1_000_000_000 + n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_match_java_big_integer() {
        assert_eq!(decimal_bytes("0", 0).unwrap(), vec![0]);
        assert_eq!(decimal_bytes("0.00", 2).unwrap(), vec![0]);
        assert_eq!(decimal_bytes("1.5", 2).unwrap(), vec![0, 150]);
        assert_eq!(decimal_bytes("128", 0).unwrap(), vec![0, 128]);
        assert_eq!(decimal_bytes("-1", 0).unwrap(), vec![0xff]);
        assert_eq!(decimal_bytes("-128", 0).unwrap(), vec![0x80]);
        assert_eq!(decimal_bytes("-129", 0).unwrap(), vec![0xff, 0x7f]);
        assert_eq!(decimal_bytes("-256", 0).unwrap(), vec![0xff, 0x00]);
        assert_eq!(decimal_bytes("12345.678", 3).unwrap(), 12345678i64.to_be_bytes()[4..].to_vec());
        assert_eq!(decimal_bytes("1.005", 2).unwrap(), vec![101]);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10957);
        assert_eq!(civil_from_days(10957), (2000, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn ts_offset_fields() {
        let t = Ts::from_micros(1_700_000_000_123_456);
        assert_eq!((t.millis(), t.nanos_of_second()), (1_700_000_000_123, 123_456_000));
        assert_eq!(Ts::from_offset(t.millis(), Some(t.nanos_of_second())), t);
    }

    #[test]
    fn numeric_mappings() {
        assert_eq!(numeric_kind(NumericMapping::None, 5, 0), NumericKind::Decimal(0));
        assert_eq!(numeric_kind(NumericMapping::BestFit, 5, 0), NumericKind::Int32);
        assert_eq!(numeric_kind(NumericMapping::BestFit, 10, 2), NumericKind::Float64);
        assert_eq!(numeric_kind(NumericMapping::PrecisionOnly, 18, 0), NumericKind::Int64);
        assert_eq!(numeric_kind(NumericMapping::PrecisionOnly, 19, 0), NumericKind::Decimal(0));
        assert_eq!(numeric_kind(NumericMapping::BestFit, 3, 0), NumericKind::Int16);
    }
}
