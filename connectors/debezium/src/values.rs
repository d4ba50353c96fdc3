//! Value encodings of Debezium's logical types: Decimal unscaled bytes, days since the epoch, microseconds,
//! ISO strings, binary renderings.

use base64::Engine;
use bytes::Bytes;
use sluice_connect_api::record::Value;

use crate::schema::{BinaryHandlingMode, DecimalHandlingMode};

/// A decimal number parsed from its text (`-12.340`, `1e3` not accepted): sign, digits and scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText {
    pub negative: bool,
    /// All digits, without the point (leading zeros allowed).
    pub digits: String,
    pub scale: i32,
}

impl DecimalText {
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(DecimalText { negative, digits: format!("{int}{frac}"), scale: frac.len() as i32 })
    }

    /// Rescales to `scale` (pads with zeros or truncates toward zero, as `setScale` with enough digits).
    pub fn with_scale(&self, scale: i32) -> Self {
        let mut digits = self.digits.clone();
        if scale > self.scale {
            digits.extend(std::iter::repeat_n('0', (scale - self.scale) as usize));
        } else if scale < self.scale {
            let cut = (self.scale - scale) as usize;
            digits.truncate(digits.len().saturating_sub(cut));
        }
        DecimalText { negative: self.negative, digits, scale }
    }

    /// The unscaled value as Java's `BigInteger.toByteArray()`: minimal big-endian two's complement.
    pub fn unscaled_bytes(&self) -> Vec<u8> {
        // Magnitude in base 256, little-endian.
        let mut mag: Vec<u8> = Vec::new();
        for d in self.digits.bytes() {
            let mut carry = (d - b'0') as u32;
            for byte in mag.iter_mut() {
                let v = *byte as u32 * 10 + carry;
                *byte = (v & 0xFF) as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                mag.push((carry & 0xFF) as u8);
                carry >>= 8;
            }
        }
        while mag.last() == Some(&0) {
            mag.pop();
        }
        let zero = mag.is_empty();
        let negative = self.negative && !zero;
        if negative {
            // Two's complement: invert and add one.
            let mut carry = 1u16;
            for byte in mag.iter_mut() {
                let v = (!*byte) as u16 + carry;
                *byte = (v & 0xFF) as u8;
                carry = v >> 8;
            }
            if mag.last().is_none_or(|b| b & 0x80 == 0) {
                mag.push(0xFF);
            }
            // Minimal: drop redundant leading 0xFF bytes.
            while mag.len() > 1 && mag[mag.len() - 1] == 0xFF && mag[mag.len() - 2] & 0x80 != 0 {
                mag.pop();
            }
        } else if mag.last().is_none_or(|b| b & 0x80 != 0) {
            mag.push(0);
        }
        mag.reverse();
        mag
    }

    /// Java's `BigDecimal.toPlainString()` of this value (for `decimal.handling.mode=string`).
    pub fn plain_string(&self) -> String {
        let digits = self.digits.trim_start_matches('0');
        let s = self.scale.max(0) as usize;
        let mut digits = digits.to_string();
        if digits.len() <= s {
            digits = format!("{}{}", "0".repeat(s + 1 - digits.len()), digits);
        }
        let (i, f) = digits.split_at(digits.len() - s);
        let zero = self.digits.bytes().all(|b| b == b'0');
        let sign = if self.negative && !zero { "-" } else { "" };
        if s == 0 { format!("{sign}{i}") } else { format!("{sign}{i}.{f}") }
    }

    pub fn to_f64(&self) -> f64 {
        self.plain_string().parse().unwrap_or(f64::NAN)
    }
}

/// A decimal column value under `decimal.handling.mode`; `scale` `None` = variable scale
/// (`VariableScaleDecimal {scale, value}` in precise mode). `None` when the text is not a finite number
/// (NaN/Infinity: the caller decides).
pub fn decimal_value(text: &str, scale: Option<i32>, mode: DecimalHandlingMode) -> Option<Value> {
    let d = DecimalText::parse(text)?;
    Some(match mode {
        DecimalHandlingMode::Precise => match scale {
            Some(s) => Value::Bytes(Bytes::from(d.with_scale(s).unscaled_bytes())),
            None => Value::Struct(vec![Value::Int32(d.scale), Value::Bytes(Bytes::from(d.unscaled_bytes()))]),
        },
        DecimalHandlingMode::Double => Value::Float64(d.to_f64()),
        DecimalHandlingMode::String => Value::String(d.plain_string()),
    })
}

/// A binary value under `binary.handling.mode`.
pub fn binary_value(data: &[u8], mode: BinaryHandlingMode) -> Value {
    match mode {
        BinaryHandlingMode::Bytes => Value::Bytes(Bytes::copy_from_slice(data)),
        BinaryHandlingMode::Base64 => Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
        BinaryHandlingMode::Base64UrlSafe => Value::String(base64::engine::general_purpose::URL_SAFE.encode(data)),
        BinaryHandlingMode::Hex => Value::String(data.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD` (with an optional ` BC` suffix) into days since the epoch.
pub fn parse_date_days(text: &str) -> Option<i64> {
    let (t, bc) = match text.trim().strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text.trim(), false),
    };
    let mut parts = t.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// Parses `HH:MM:SS[.ffffff]` into microseconds of the day (24:00:00 allowed).
pub fn parse_time_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    let mut parts = t.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s = parts.next()?;
    let (sec, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let sec: i64 = sec.parse().ok()?;
    let mut frac_us = 0i64;
    if !frac.is_empty() {
        let f: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        frac_us = f.parse().ok()?;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + frac_us)
}

/// Parses `HH:MM:SS[.f][+|-HH[:MM[:SS]]]`: time of day in µs and the offset in seconds east.
pub fn parse_time_with_offset(text: &str) -> Option<(i64, i64)> {
    let t = text.trim();
    let pos = t.rfind(['+', '-'])?;
    let (time, off) = t.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let mut parts = off[1..].split(':');
    let oh: i64 = parts.next()?.parse().ok()?;
    let om: i64 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    let os: i64 = parts.next().map(|p| p.parse().ok()).unwrap_or(Some(0))?;
    Some((parse_time_micros(time)?, sign * (oh * 3600 + om * 60 + os)))
}

/// Parses `YYYY-MM-DD HH:MM:SS[.f]` (optionally followed by an offset `+HH[:MM]`, and/or ` BC`) into µs since
/// the epoch (the wall clock taken as UTC, then the offset subtracted when present).
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    let (t, bc) = match t.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (t, false),
    };
    let (date, time) = t.split_once([' ', 'T'])?;
    let mut days = parse_date_days(date)?;
    if bc {
        let (y, m, d) = civil_from_days(days);
        days = days_from_civil(1 - y, m, d);
    }
    let (micros, offset) = if time.contains(['+', '-']) {
        parse_time_with_offset(time)?
    } else {
        (parse_time_micros(time.trim_end_matches('Z'))?, 0)
    };
    Some(days * 86_400_000_000 + micros - offset * 1_000_000)
}

/// ISO-8601 UTC rendering of µs since the epoch with `digits` fraction digits (0 = none), `Z` suffix:
/// `2026-01-02T03:04:06.000000Z` (Debezium's ZonedTimestamp for timestamptz(6)).
pub fn format_zoned_timestamp(micros: i64, digits: u32) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let year = if (0..=9999).contains(&y) { format!("{y:04}") } else { format!("{y:+05}") };
    format!("{year}-{m:02}-{d:02}T{}Z", format_time_of_day(in_day, digits))
}

/// `HH:MM:SS[.f]` of µs within the day with `digits` fraction digits.
pub fn format_time_of_day(micros: i64, digits: u32) -> String {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    if digits == 0 {
        base
    } else {
        let f = format!("{frac:06}");
        format!("{base}.{}", &f[..digits.min(6) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(v)
    }

    #[test]
    fn decimal_bytes_like_bigdecimal() {
        assert_eq!(b64(&DecimalText::parse("2.25").unwrap().with_scale(2).unscaled_bytes()), "AOE=");
        assert_eq!(b64(&DecimalText::parse("12.34").unwrap().with_scale(2).unscaled_bytes()), "BNI=");
        assert_eq!(b64(&DecimalText::parse("0").unwrap().with_scale(2).unscaled_bytes()), "AA==");
        assert_eq!(b64(&DecimalText::parse("3.00").unwrap().with_scale(2).unscaled_bytes()), "ASw=");
        assert_eq!(DecimalText::parse("-1").unwrap().unscaled_bytes(), vec![0xFF]);
        assert_eq!(DecimalText::parse("-128").unwrap().unscaled_bytes(), vec![0x80]);
        assert_eq!(DecimalText::parse("-129").unwrap().unscaled_bytes(), vec![0xFF, 0x7F]);
        assert_eq!(DecimalText::parse("128").unwrap().unscaled_bytes(), vec![0x00, 0x80]);
        assert_eq!(DecimalText::parse("-0.50").unwrap().plain_string(), "-0.50");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date_days("1970-01-01"), Some(0));
        assert_eq!(parse_date_days("2020-05-17"), Some(18399));
        assert_eq!(civil_from_days(18399), (2020, 5, 17));
        assert_eq!(parse_time_micros("12:34:56.789"), Some(45_296_789_000));
        assert_eq!(
            format_zoned_timestamp(parse_timestamp_micros("2026-01-02 04:04:06+01").unwrap(), 6),
            "2026-01-02T03:04:06.000000Z"
        );
        assert_eq!(parse_time_with_offset("10:34:56+02"), Some((38_096_000_000, 7200)));
    }
}
