//! `db.timezone` (Confluent) and `use.time.zone` (Debezium): Java `ZoneId`s and the conversions the originals'
//! JDBC drivers make with a `java.util.Calendar` in that zone.
//!
//! What the originals do (kafka-connect-jdbc 10.9, `util/DateTimeUtils.java`, `util/TimeZoneValidator.java`,
//! `dialect/GenericDatabaseDialect.java`, `source/TimestampIncrementingCriteria.java`,
//! `source/TimestampIncrementingTableQuerier.java`, `sink/JdbcSinkConfig.java`):
//! - `db.timezone` is validated by `TimeZoneValidator`: any id of `ZoneId.getAvailableZoneIds()`, else whatever
//!   `ZoneId.of(id, ZoneId.SHORT_IDS)` accepts (`Z`, `+02:00`, `GMT+2`, `UTC-05:30`, `PST`, ...); anything else is
//!   `ConfigException(name, value, "Invalid time zone. See the list of valid time zones at ...")`. The source then
//!   resolves it with `ZoneId.of(id)` falling back to `SHORT_IDS` (`JdbcSourceConnectorConfig.zoneId()`); the sink
//!   with plain `ZoneId.of(id)` in `JdbcSinkConfig`'s constructor, so a short id such as `PST` passes validation but
//!   fails the sink task when it starts.
//! - Values are bound and read with `DateTimeUtils.getZoneIdCalendar(zoneId)`: `setTimestamp(i, ts, cal)`,
//!   `setTime(i, t, cal)`, `setDate(i, d, cal)` in `GenericDatabaseDialect.maybeBindLogical`, `getTimestamp(col,
//!   cal)`/`getTime(col, cal)` in the source's column converters, `setTimestamp(i, begin/end, cal)` in
//!   `TimestampIncrementingCriteria.setQueryParameters*`, and `currentTimeOnDB(conn, cal)` for the end bound.
//!   Dates: the source always reads them with a UTC calendar (`dateTimeZoneId = ZoneOffset.UTC`, kafka-connect-jdbc
//!   PR #1398); the sink binds them in `date.timezone` (`DB_TIMEZONE`, the default, = `db.timezone`; or `UTC`).
//! - The drivers, given a Calendar: pgjdbc (`jdbc/TimestampUtils.toString(Calendar, Timestamp|Time|Date)`) writes
//!   the wall-clock date/time in the calendar's zone followed by that zone's offset, as an untyped parameter
//!   (`Oid.UNSPECIFIED`): a `timestamp` column keeps the wall-clock time, a `timestamptz` column the instant. MariaDB
//!   Connector/J (`plugin/codec/TimestampCodec`, `TimeCodec`, `DateCodec`) writes the wall-clock text in the
//!   calendar's zone, no offset. Reading (`TimestampUtils.toTimestamp/toTime(Calendar, ..)`, Connector/J's codecs
//!   likewise) sets the wall-clock fields on a `GregorianCalendar` in the zone: a time that does not exist (the
//!   spring-forward gap) takes the offset before the transition, an ambiguous one (fall-back) the offset after it
//!   (checked with a JDK: Europe/Berlin 2024-03-31 02:30 -> 01:30Z, 2024-10-27 02:30 -> 01:30Z). A `timestamptz`
//!   value carries its offset, the calendar is not used. A `time` is read as that wall-clock time on 1970-01-01 in
//!   the zone (which can fall on 1969-12-31 in UTC: Connect's `Time` then refuses it).
//! - Java `Time`/`Date` values are instants: Connect `Time` is the instant at that many ms after 1970-01-01T00:00Z,
//!   so the sink writes the time of day that instant has in the zone (its 1970 offset); Connect `Date` is midnight
//!   UTC of the day, so in a zone west of UTC the sink writes the day before (the bug `date.timezone=UTC` avoids).

use std::str::FromStr;

use chrono::{DateTime, LocalResult, Offset, TimeZone};

/// A resolved Java `ZoneId`: a fixed offset (`Z`, `+02:00`, `GMT+2`, `UTC`, ...) or a tz database region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbZone {
    /// Seconds east of UTC.
    Fixed(i32),
    Region(chrono_tz::Tz),
}

/// `ZoneId.SHORT_IDS`.
const SHORT_IDS: &[(&str, &str)] = &[
    ("ACT", "Australia/Darwin"),
    ("AET", "Australia/Sydney"),
    ("AGT", "America/Argentina/Buenos_Aires"),
    ("ART", "Africa/Cairo"),
    ("AST", "America/Anchorage"),
    ("BET", "America/Sao_Paulo"),
    ("BST", "Asia/Dhaka"),
    ("CAT", "Africa/Harare"),
    ("CNT", "America/St_Johns"),
    ("CST", "America/Chicago"),
    ("CTT", "Asia/Shanghai"),
    ("EAT", "Africa/Addis_Ababa"),
    ("ECT", "Europe/Paris"),
    ("IET", "America/Indiana/Indianapolis"),
    ("IST", "Asia/Kolkata"),
    ("JST", "Asia/Tokyo"),
    ("MIT", "Pacific/Apia"),
    ("NET", "Asia/Yerevan"),
    ("NST", "Pacific/Auckland"),
    ("PLT", "Asia/Karachi"),
    ("PNT", "America/Phoenix"),
    ("PRT", "America/Puerto_Rico"),
    ("PST", "America/Los_Angeles"),
    ("SST", "Pacific/Guadalcanal"),
    ("VST", "Asia/Ho_Chi_Minh"),
    ("EST", "-05:00"),
    ("MST", "-07:00"),
    ("HST", "-10:00"),
];

/// Ids the IANA database has but the JDK's tzdb leaves out (they are only `SHORT_IDS`).
const NOT_IN_JDK: &[&str] = &["EST", "MST", "HST"];

/// tz regions that are UTC at every instant (resolved as [`DbZone::UTC`]).
const UTC_REGIONS: &[&str] = &[
    "Etc/UTC",
    "Etc/UCT",
    "Etc/GMT",
    "Etc/GMT0",
    "Etc/GMT+0",
    "Etc/GMT-0",
    "Etc/Greenwich",
    "Etc/Universal",
    "Etc/Zulu",
    "UCT",
    "Universal",
    "Zulu",
    "GMT0",
    "Greenwich",
];

/// The message of Confluent's `TimeZoneValidator`.
pub const INVALID_ZONE: &str = "Invalid time zone. See the list of valid time zones at https://docs.oracle.com/javase/8/docs/api/java/time/ZoneId.html#shortIds";

/// `ZoneOffset.of`: `+h`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`, `+hhmmss` (sign required), at most 18 hours.
fn parse_offset(s: &str) -> Option<DbZone> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let num = |x: &str| -> Option<i32> { if x.len() == 2 { x.parse().ok() } else { None } };
    let (h, m, sec) = match rest.len() {
        1 => (rest.parse().ok()?, 0, 0),
        2 => (num(rest)?, 0, 0),
        4 => (num(&rest[..2])?, num(&rest[2..])?, 0),
        5 if &rest[2..3] == ":" => (num(&rest[..2])?, num(&rest[3..])?, 0),
        6 => (num(&rest[..2])?, num(&rest[2..4])?, num(&rest[4..])?),
        8 if &rest[2..3] == ":" && &rest[5..6] == ":" => (num(&rest[..2])?, num(&rest[3..5])?, num(&rest[6..])?),
        _ => return None,
    };
    if h > 18 || m > 59 || sec > 59 {
        return None;
    }
    let total = h * 3600 + m * 60 + sec;
    if total > 18 * 3600 {
        return None;
    }
    Some(DbZone::Fixed(sign * total))
}

impl DbZone {
    pub const UTC: DbZone = DbZone::Fixed(0);

    /// `ZoneId.of(id)` (with `short_ids`: `ZoneId.of(id, ZoneId.SHORT_IDS)`); `None` where Java throws.
    pub fn parse(id: &str, short_ids: bool) -> Option<DbZone> {
        let id = if short_ids { SHORT_IDS.iter().find(|(k, _)| *k == id).map(|(_, v)| *v).unwrap_or(id) } else { id };
        if id == "Z" {
            return Some(DbZone::UTC);
        }
        if id.starts_with('+') || id.starts_with('-') {
            return parse_offset(id);
        }
        if matches!(id, "UTC" | "GMT" | "UT") {
            return Some(DbZone::UTC);
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = id.strip_prefix(prefix)
                && (rest.starts_with('+') || rest.starts_with('-'))
            {
                return parse_offset(rest);
            }
        }
        if NOT_IN_JDK.contains(&id) {
            return None;
        }
        if UTC_REGIONS.contains(&id) {
            return chrono_tz::Tz::from_str(id).ok().map(|_| DbZone::UTC);
        }
        chrono_tz::Tz::from_str(id).ok().map(DbZone::Region)
    }

    /// Confluent's `TimeZoneValidator` (and the source's resolution): the zone, or `None` (invalid).
    pub fn confluent(id: &str) -> Option<DbZone> {
        DbZone::parse(id, false).or_else(|| DbZone::parse(id, true))
    }

    pub fn is_utc(&self) -> bool {
        *self == DbZone::UTC
    }

    /// The zone's offset (seconds east of UTC) at the instant `secs` (epoch seconds).
    pub fn offset_at(&self, secs: i64) -> i32 {
        match self {
            DbZone::Fixed(o) => *o,
            DbZone::Region(tz) => match DateTime::from_timestamp(secs, 0) {
                Some(dt) => tz.offset_from_utc_datetime(&dt.naive_utc()).fix().local_minus_utc(),
                None => 0,
            },
        }
    }

    /// The wall-clock time (as epoch micros of that local date-time read as UTC) of the instant `micros`.
    pub fn to_local_micros(&self, micros: i64) -> i64 {
        micros + self.offset_at(micros.div_euclid(1_000_000)) as i64 * 1_000_000
    }

    /// The instant of the wall-clock time `local` (epoch micros of the local date-time read as UTC), resolved as
    /// `GregorianCalendar` does: in a gap with the offset before the transition, in an overlap with the one after.
    pub fn from_local_micros(&self, local: i64) -> i64 {
        let offset = match self {
            DbZone::Fixed(o) => *o,
            DbZone::Region(tz) => {
                let secs = local.div_euclid(1_000_000);
                match DateTime::from_timestamp(secs, 0) {
                    None => 0,
                    Some(dt) => match tz.offset_from_local_datetime(&dt.naive_utc()) {
                        LocalResult::Single(o) => o.fix().local_minus_utc(),
                        // Later instant = the smaller offset, the one in force after a fall-back transition.
                        LocalResult::Ambiguous(_, after) => after.fix().local_minus_utc(),
                        // A spring-forward gap: the offset in force before it (a day earlier: transitions are
                        // never that close).
                        LocalResult::None => self.offset_at(secs - 86_400),
                    },
                }
            }
        };
        local - offset as i64 * 1_000_000
    }

    /// The offset at the instant `micros` as PostgreSQL takes it in a literal (`+01`, `-05:30`, `+00:53:28`),
    /// as pgjdbc's `appendTimeZone`.
    pub fn push_pg_offset(&self, out: &mut String, micros: i64) {
        use std::fmt::Write;
        let o = self.offset_at(micros.div_euclid(1_000_000));
        let (sign, a) = if o < 0 { ('-', -o) } else { ('+', o) };
        let _ = write!(out, "{sign}{:02}", a / 3600);
        if a % 3600 != 0 {
            let _ = write!(out, ":{:02}", (a / 60) % 60);
            if a % 60 != 0 {
                let _ = write!(out, ":{:02}", a % 60);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(id: &str) -> DbZone {
        DbZone::confluent(id).unwrap_or_else(|| panic!("{id} should parse"))
    }

    #[test]
    fn parses_java_zone_ids() {
        assert_eq!(z("UTC"), DbZone::UTC);
        assert_eq!(z("Z"), DbZone::UTC);
        assert_eq!(z("GMT"), DbZone::UTC);
        assert_eq!(z("GMT+2"), DbZone::Fixed(7200));
        assert_eq!(z("Etc/UTC"), DbZone::UTC);
        assert_eq!(z("Zulu"), DbZone::UTC);
        assert_eq!(z("UTC-05:30"), DbZone::Fixed(-19800));
        assert_eq!(z("UT+0130"), DbZone::Fixed(5400));
        assert_eq!(z("+2"), DbZone::Fixed(7200));
        assert_eq!(z("-08:00"), DbZone::Fixed(-28800));
        assert_eq!(z("+01:02:03"), DbZone::Fixed(3723));
        assert_eq!(z("EST"), DbZone::Fixed(-18000));
        assert_eq!(z("PST"), DbZone::Region(chrono_tz::America::Los_Angeles));
        assert_eq!(z("Europe/Berlin"), DbZone::Region(chrono_tz::Europe::Berlin));
        assert_eq!(z("US/Eastern"), DbZone::Region(chrono_tz::US::Eastern));
        assert_eq!(z("Etc/GMT+2").offset_at(0), -7200);
        for bad in ["europe/berlin", "Mars/Olympus", "", "+19", "UTC+18:01", "+1:00", "GMT+", "CEST", "12"] {
            assert_eq!(DbZone::confluent(bad), None, "{bad}");
        }
        // The sink resolves without SHORT_IDS: PST and EST fail there.
        assert_eq!(DbZone::parse("PST", false), None);
        assert_eq!(DbZone::parse("EST", false), None);
        assert_eq!(DbZone::parse("America/New_York", false), Some(DbZone::Region(chrono_tz::America::New_York)));
    }

    const S: i64 = 1_000_000;

    #[test]
    fn instants_to_wall_clock_across_dst() {
        let berlin = z("Europe/Berlin");
        // 2024-03-31T00:30Z = 01:30 CET; 01:30Z = 03:30 CEST (spring forward at 01:00Z).
        assert_eq!(berlin.to_local_micros(1_711_845_000 * S), (1_711_845_000 + 3600) * S);
        assert_eq!(berlin.to_local_micros(1_711_848_600 * S), (1_711_848_600 + 7200) * S);
        let ny = z("America/New_York");
        assert_eq!(ny.offset_at(1_704_067_200), -5 * 3600);
        assert_eq!(ny.offset_at(1_719_792_000), -4 * 3600);
        let mut s = String::new();
        berlin.push_pg_offset(&mut s, 1_711_848_600 * S);
        z("Asia/Kolkata").push_pg_offset(&mut s, 0);
        z("-03:30").push_pg_offset(&mut s, 0);
        assert_eq!(s, "+02+05:30-03:30");
    }

    #[test]
    fn wall_clock_to_instants_as_gregorian_calendar() {
        let berlin = z("Europe/Berlin");
        let local = |secs: i64| secs * S;
        // 2024-03-31 02:30 does not exist in Berlin: JDK -> 01:30Z (1711848600).
        assert_eq!(berlin.from_local_micros(local(1_711_852_200)), 1_711_848_600 * S);
        // 2024-10-27 02:30 happens twice: JDK -> the second (CET), 01:30Z (1729992600).
        assert_eq!(berlin.from_local_micros(local(1_729_996_200)), 1_729_992_600 * S);
        let ny = z("America/New_York");
        // 2024-11-03 01:30 (ambiguous) -> 06:30Z; 2024-03-10 02:30 (gap) -> 07:30Z, as the JDK.
        assert_eq!(ny.from_local_micros(local(1_730_597_400)), 1_730_615_400 * S);
        assert_eq!(ny.from_local_micros(local(1_710_037_800)), 1_710_055_800 * S);
        // Round trip off the transitions, with microseconds.
        for t in [0i64, 1_704_067_200_123_456, 1_719_792_000_000_001, -86_400_000_000] {
            assert_eq!(berlin.from_local_micros(berlin.to_local_micros(t)), t);
            assert_eq!(ny.from_local_micros(ny.to_local_micros(t)), t);
        }
        assert_eq!(DbZone::Fixed(7200).from_local_micros(7200 * S), 0);
    }
}
