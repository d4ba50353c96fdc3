//! A subset of Java's `SimpleDateFormat`, always in UTC as TimestampConverter and TimestampRouter use it: the
//! pattern letters `y Y M L d D E u a H k K h m s S Z X z`, quoted text (`'T'`, `''`), formatting and lenient
//! parsing of epoch milliseconds. Dates are proleptic Gregorian (Java switches to Julian before 1582).

const MILLIS_PER_DAY: i64 = 86_400_000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(char, usize),
    Literal(String),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    pattern: String,
    tokens: Vec<Token>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (if month <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, month, day)
}

fn is_numeric(letter: char, count: usize) -> bool {
    match letter {
        'M' | 'L' => count < 3,
        'E' | 'a' | 'Z' | 'X' | 'z' => false,
        _ => true,
    }
}

impl DateFormat {
    /// Compiles a pattern; the error is Java's message for an unknown letter or an unterminated quote.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let push_literal = |tokens: &mut Vec<Token>, text: &str| match tokens.last_mut() {
            Some(Token::Literal(last)) => last.push_str(text),
            _ => tokens.push(Token::Literal(text.to_string())),
        };
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    push_literal(&mut tokens, "'");
                    i += 2;
                    continue;
                }
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Unterminated quote".to_string()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            i += 1;
                        }
                    }
                }
                push_literal(&mut tokens, &text);
            } else if c.is_ascii_alphabetic() {
                if !"yYMLdDEuaHkKhmsSZXz".contains(c) {
                    return Err(format!("Illegal pattern character '{c}'"));
                }
                let start = i;
                while i < chars.len() && chars[i] == c {
                    i += 1;
                }
                let count = i - start;
                if c == 'X' && count > 3 {
                    return Err("invalid ISO 8601 format: length=".to_string() + &count.to_string());
                }
                tokens.push(Token::Field(c, count));
            } else {
                push_literal(&mut tokens, &c.to_string());
                i += 1;
            }
        }
        Ok(DateFormat { pattern: pattern.to_string(), tokens })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Formats epoch milliseconds in UTC.
    pub fn format(&self, millis: i64) -> String {
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let ms_of_day = millis.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1000 % 60;
        let milli = ms_of_day % 1000;
        // 1970-01-01 was a Thursday; Monday = 0.
        let weekday = (days + 3).rem_euclid(7);
        let mut out = String::new();
        let pad = |out: &mut String, value: i64, width: usize| {
            if value < 0 {
                out.push('-');
            }
            out.push_str(&format!("{:0width$}", value.abs(), width = width));
        };
        for token in &self.tokens {
            match token {
                Token::Literal(text) => out.push_str(text),
                Token::Field(letter, count) => {
                    let count = *count;
                    match letter {
                        'y' | 'Y' => {
                            // Years before 1 are shown as era years in Java (1 BC is year 1); keep it simple.
                            if count == 2 { pad(&mut out, year.rem_euclid(100), 2) } else { pad(&mut out, year, count) }
                        }
                        'M' | 'L' => match count {
                            1 | 2 => pad(&mut out, month, count),
                            3 => out.push_str(&MONTHS[(month - 1) as usize][..3]),
                            _ => out.push_str(MONTHS[(month - 1) as usize]),
                        },
                        'd' => pad(&mut out, day, count),
                        'D' => pad(&mut out, days - days_from_civil(year, 1, 1) + 1, count),
                        'E' => {
                            let name = DAYS[weekday as usize];
                            out.push_str(if count >= 4 { name } else { &name[..3] })
                        }
                        'u' => pad(&mut out, weekday + 1, count),
                        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
                        'H' => pad(&mut out, hour, count),
                        'k' => pad(&mut out, if hour == 0 { 24 } else { hour }, count),
                        'K' => pad(&mut out, hour % 12, count),
                        'h' => pad(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 }, count),
                        'm' => pad(&mut out, minute, count),
                        's' => pad(&mut out, second, count),
                        'S' => pad(&mut out, milli, count),
                        'Z' => out.push_str("+0000"),
                        'X' => out.push('Z'),
                        'z' => out.push_str(if count >= 4 { "Coordinated Universal Time" } else { "UTC" }),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    /// Parses text into epoch milliseconds like `SimpleDateFormat.parse(String)` in UTC: lenient (out-of-range
    /// fields roll over), numeric fields next to another numeric field take exactly their width (`yyyyMMdd`), and
    /// text after the pattern is ignored. `None` when the text does not match.
    pub fn parse(&self, text: &str) -> Option<i64> {
        let input: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let (mut year, mut month, mut day) = (1970i64, 1i64, 1i64);
        let mut day_of_year: Option<i64> = None;
        let (mut hour, mut minute, mut second, mut milli) = (0i64, 0i64, 0i64, 0i64);
        let mut hour12: Option<i64> = None;
        let mut pm: Option<bool> = None;
        let mut offset_minutes = 0i64;
        for (index, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Literal(literal) => {
                    for expected in literal.chars() {
                        if input.get(pos) != Some(&expected) {
                            return None;
                        }
                        pos += 1;
                    }
                }
                Token::Field(letter, count) => {
                    let (letter, count) = (*letter, *count);
                    if is_numeric(letter, count) {
                        let abutting =
                            matches!(self.tokens.get(index + 1), Some(Token::Field(l, c)) if is_numeric(*l, *c));
                        let negative_allowed = matches!(letter, 'y' | 'Y') && input.get(pos) == Some(&'-');
                        let start = if negative_allowed { pos + 1 } else { pos };
                        let mut end = start;
                        while end < input.len() && input[end].is_ascii_digit() && (!abutting || end - start < count) {
                            end += 1;
                        }
                        if end == start {
                            return None;
                        }
                        let digits: String = input[start..end].iter().collect();
                        let mut value: i64 = digits.parse().ok()?;
                        if negative_allowed {
                            value = -value;
                        }
                        // Two-digit years without abutting width: Java maps them into 80 years before / 20 after
                        // now; we use the fixed window 1950-2049 to stay deterministic.
                        if matches!(letter, 'y' | 'Y') && count <= 2 && end - start == 2 {
                            value += if value < 50 { 2000 } else { 1900 };
                        }
                        pos = end;
                        match letter {
                            'y' | 'Y' => year = value,
                            'M' | 'L' => month = value,
                            'd' => day = value,
                            'D' => day_of_year = Some(value),
                            'u' => {}
                            'H' => hour = value,
                            'k' => hour = if value == 24 { 0 } else { value },
                            'K' | 'h' => hour12 = Some(if letter == 'h' && value == 12 { 0 } else { value }),
                            'm' => minute = value,
                            's' => second = value,
                            'S' => milli = value,
                            _ => {}
                        }
                    } else {
                        let rest: String = input[pos..].iter().collect();
                        match letter {
                            'M' | 'L' => {
                                let (index, len) = match_name(&rest, &MONTHS)?;
                                month = index as i64 + 1;
                                pos += len;
                            }
                            'E' => {
                                let (_, len) = match_name(&rest, &DAYS)?;
                                pos += len;
                            }
                            'a' => {
                                let (index, len) = match_name(&rest, &["AM", "PM"])?;
                                pm = Some(index == 1);
                                pos += len;
                            }
                            _ => {
                                let (minutes, len) = parse_zone(&rest)?;
                                offset_minutes = minutes;
                                pos += len;
                            }
                        }
                    }
                }
            }
        }
        // `a` only affects the 12-hour fields (`h`, `K`), as in Java.
        if let Some(h) = hour12 {
            hour = h + if pm == Some(true) { 12 } else { 0 };
        }
        // Lenient: months beyond 12 roll into the next years, days beyond the month into the next months.
        let month0 = month - 1;
        let year = year + month0.div_euclid(12);
        let month = month0.rem_euclid(12) + 1;
        let days = match day_of_year {
            Some(doy) => days_from_civil(year, 1, 1) + doy - 1,
            None => days_from_civil(year, month, 1) + day - 1,
        };
        let millis = days * MILLIS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + milli;
        Some(millis - offset_minutes * 60_000)
    }
}

/// Kafka Connect's `Values.dateFormatFor(date).format(date)` in UTC: a time (`HH:mm:ss.SSS'Z'`) below one day, a
/// date (`yyyy-MM-dd`) on a day boundary, else a timestamp (`yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`).
pub fn iso_text(millis: i64) -> String {
    let pattern = if millis < MILLIS_PER_DAY {
        "HH:mm:ss.SSS'Z'"
    } else if millis % MILLIS_PER_DAY == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    DateFormat::new(pattern).map(|f| f.format(millis)).unwrap_or_else(|_| millis.to_string())
}

/// A month, day or AM/PM name (full or three-letter prefix), case-insensitive: (index, length matched).
fn match_name(text: &str, names: &[&str]) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    for (i, name) in names.iter().enumerate() {
        if lower.starts_with(&name.to_ascii_lowercase()) {
            return Some((i, name.len()));
        }
    }
    names
        .iter()
        .enumerate()
        .find(|(_, name)| name.len() > 3 && lower.starts_with(&name[..3].to_ascii_lowercase()))
        .map(|(i, _)| (i, 3))
}

/// `Z`, `+hh`, `+hhmm`, `+hh:mm`, `UTC`, `GMT`, `GMT+hh:mm`: (offset in minutes, length matched).
fn parse_zone(text: &str) -> Option<(i64, usize)> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'Z') {
        return Some((0, 1));
    }
    for prefix in ["UTC", "GMT"] {
        if text.starts_with(prefix) {
            return match parse_offset(&text[3..]) {
                Some((minutes, len)) => Some((minutes, 3 + len)),
                None => Some((0, 3)),
            };
        }
    }
    parse_offset(text)
}

fn parse_offset(text: &str) -> Option<(i64, usize)> {
    let bytes = text.as_bytes();
    let sign = match bytes.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |i: usize| bytes.get(i).filter(|b| b.is_ascii_digit()).map(|b| i64::from(b - b'0'));
    let hours = digit(1)? * 10 + digit(2)?;
    if bytes.get(3) == Some(&b':') {
        let minutes = digit(4)? * 10 + digit(5)?;
        return Some((sign * (hours * 60 + minutes), 6));
    }
    match (digit(3), digit(4)) {
        (Some(a), Some(b)) => Some((sign * (hours * 60 + a * 10 + b), 5)),
        _ => Some((sign * hours * 60, 3)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_conversions() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in [-800_000, -1, 0, 59, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn formats_common_patterns() {
        let ms = 1_500_000_000_123; // 2017-07-14T02:40:00.123Z, a Friday
        let f = |p: &str| DateFormat::new(p).expect("valid").format(ms);
        assert_eq!(f("yyyyMMdd"), "20170714");
        assert_eq!(f("yyyy-MM-dd'T'HH:mm:ss.SSSZ"), "2017-07-14T02:40:00.123+0000");
        assert_eq!(f("yyyy-MM-dd'T'HH:mm:ss.SSSX"), "2017-07-14T02:40:00.123Z");
        assert_eq!(f("yy/M/d h:mm a"), "17/7/14 2:40 AM");
        assert_eq!(f("EEE, d MMM yyyy"), "Fri, 14 Jul 2017");
        assert_eq!(f("EEEE MMMM D"), "Friday July 195");
        assert_eq!(f("'It''s' HH 'o''clock' z"), "It's 02 o'clock UTC");
        assert_eq!(DateFormat::new("yyyy-MM-dd HH:mm").expect("valid").format(-1), "1969-12-31 23:59");
    }

    #[test]
    fn parses_common_patterns() {
        let p = |pattern: &str, text: &str| DateFormat::new(pattern).expect("valid").parse(text);
        assert_eq!(p("yyyyMMdd", "20170714"), Some(1_499_990_400_000));
        assert_eq!(p("yyyy-MM-dd'T'HH:mm:ss.SSSZ", "2017-07-14T02:40:00.123+0000"), Some(1_500_000_000_123));
        assert_eq!(p("yyyy-MM-dd'T'HH:mm:ss.SSSX", "2017-07-14T04:40:00.123+02:00"), Some(1_500_000_000_123));
        assert_eq!(p("yyyy-MM-dd'T'HH:mm:ss.SSSX", "2017-07-14T02:40:00.123Z"), Some(1_500_000_000_123));
        assert_eq!(p("dd MMM yyyy hh:mm a", "14 Jul 2017 02:40 PM"), Some(1_500_043_200_000));
        assert_eq!(p("yyyy-MM-dd", "2017-13-01"), p("yyyy-MM-dd", "2018-01-01"), "lenient");
        assert_eq!(p("yyyy-MM-dd", "2017-07-14 trailing"), Some(1_499_990_400_000));
        assert_eq!(p("yyyy-MM-dd", "2017/07/14"), None);
        assert_eq!(p("yyyy-MM-dd", "nope"), None);
    }

    #[test]
    fn iso_text_picks_the_format_like_kafka_connect() {
        assert_eq!(iso_text(1_500_000_000_123), "2017-07-14T02:40:00.123Z");
        assert_eq!(iso_text(1_499_990_400_000), "2017-07-14");
        assert_eq!(iso_text(3_600_000), "01:00:00.000Z");
    }

    #[test]
    fn rejects_unknown_letters() {
        assert_eq!(DateFormat::new("yyyy-qq").expect_err("q"), "Illegal pattern character 'q'");
        assert_eq!(DateFormat::new("'open").expect_err("quote"), "Unterminated quote");
    }
}
