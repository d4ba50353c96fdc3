//! Object keys and contents as Confluent's S3 sink writes them: partitioners (Default, Field, TimeBased, Daily,
//! Hourly) and timestamp extractors (record writers: [`crate::format`]).
//!
//! Sources: confluentinc/kafka-connect-storage-common@v12.0.12 `partitioner/DefaultPartitioner.java`,
//! `FieldPartitioner.java`, `TimeBasedPartitioner.java`, `DailyPartitioner.java`, `HourlyPartitioner.java`;
//! confluentinc/kafka-connect-storage-cloud@v12.1.9 `kafka-connect-s3/.../TopicPartitionWriter.java`
//! (`getCommitFilename`).

use sluice_connect_api::date_format::DateFormat;
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{SinkRecord, Value};

/// How records map to the encoded partition (the directory part of the key).
#[derive(Debug, Clone)]
pub enum Partitioner {
    Default,
    Field(Vec<String>),
    Time { format: DateFormat, duration_ms: i64, offset_ms: i64 },
}

/// Where a record's timestamp comes from (TimeBased partitioners and `rotate.interval.ms`).
#[derive(Debug, Clone, PartialEq)]
pub enum Extractor {
    Wallclock,
    Record,
    RecordField(String),
}

/// `timezone`: `UTC`, `GMT`, `Z` or a fixed offset `+hh:mm` / `GMT+hh:mm` (named regions are not supported).
pub fn parse_timezone(tz: &str) -> Result<i64, String> {
    let t = tz.trim();
    let t = t.strip_prefix("UTC").or_else(|| t.strip_prefix("GMT")).unwrap_or(t);
    if t.is_empty() || t == "Z" {
        return Ok(0);
    }
    let (sign, rest) = match t.as_bytes()[0] {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return Err(format!("timezone {tz:?}: Sluice supports UTC and fixed offsets like +02:00")),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i64 = h.parse().map_err(|_| format!("timezone {tz:?}: bad hours"))?;
    let m: i64 = m.parse().map_err(|_| format!("timezone {tz:?}: bad minutes"))?;
    Ok(sign * (h * 3_600_000 + m * 60_000))
}

/// Compiles a Joda `path.format`: Joda's `Y` is the year of era (SimpleDateFormat's `y`).
pub fn compile_path_format(pattern: &str) -> Result<DateFormat, String> {
    let mut out = String::new();
    let mut quoted = false;
    for c in pattern.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(if c == 'Y' && !quoted { 'y' } else { c });
    }
    DateFormat::new(&out)
}

fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Int8(i) => Some(i.to_string()),
        Value::Int16(i) => Some(i.to_string()),
        Value::Int32(i) => Some(i.to_string()),
        Value::Int64(i) => Some(i.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A record's field by name (Struct with schema, or schemaless map with string keys).
fn record_field<'a>(record: &'a SinkRecord, name: &str) -> Option<&'a Value> {
    match (&record.value, &record.value_schema) {
        (Value::Struct(values), Some(schema)) => schema.field(name).and_then(|f| values.get(f.index)),
        (Value::Map(entries), _) => {
            entries.iter().find(|(k, _)| matches!(k, Value::String(s) if s == name)).map(|(_, v)| v)
        }
        _ => None,
    }
}

impl Extractor {
    /// The record's timestamp in epoch ms.
    pub fn extract(&self, record: &SinkRecord, now_ms: i64) -> Result<i64, ConnectError> {
        match self {
            Extractor::Wallclock => Ok(now_ms),
            Extractor::Record => record.timestamp.ok_or_else(|| {
                ConnectError::Data(format!(
                    "Unable to determine timestamp using timestamp.extractor RecordTimestampExtractor for record: \
                     {}-{}@{} has no timestamp",
                    record.topic, record.partition, record.offset
                ))
            }),
            Extractor::RecordField(field) => match record_field(record, field) {
                Some(Value::Int64(ms)) => Ok(*ms),
                Some(Value::Int32(v)) => Ok(*v as i64),
                Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| {
                    ConnectError::Data(format!("timestamp field {field:?} is not a number of milliseconds: {s:?}"))
                }),
                other => Err(ConnectError::Data(format!(
                    "Unable to extract timestamp from field {field:?} of record {}-{}@{}: {other:?}",
                    record.topic, record.partition, record.offset
                ))),
            },
        }
    }
}

impl Partitioner {
    /// The encoded partition, with `/` replaced by `directory.delim`.
    pub fn encode(&self, record: &SinkRecord, ts: i64, delim: &str) -> Result<String, ConnectError> {
        match self {
            Partitioner::Default => Ok(format!("partition={}", record.partition)),
            Partitioner::Field(fields) => {
                if !matches!(record.value, Value::Struct(_)) {
                    return Err(ConnectError::Data(format!(
                        "FieldPartitioner needs Struct values; record {}-{}@{} is not a Struct",
                        record.topic, record.partition, record.offset
                    )));
                }
                let mut parts = Vec::new();
                for f in fields {
                    let v = record_field(record, f)
                        .ok_or_else(|| ConnectError::Data(format!("FieldPartitioner: the value has no field {f:?}")))?;
                    let text = field_text(v).ok_or_else(|| {
                        ConnectError::Data(format!("FieldPartitioner: field {f:?} is not an int, string or boolean"))
                    })?;
                    parts.push(format!("{f}={text}"));
                }
                Ok(parts.join(delim))
            }
            Partitioner::Time { format, duration_ms, offset_ms } => {
                let local = ts + offset_ms;
                let bucket = local - local.rem_euclid(*duration_ms);
                Ok(format.format(bucket).replace('/', delim))
            }
        }
    }

    /// [`Partitioner::encode`] appended to `out` (the DefaultPartitioner's without allocating).
    pub fn encode_into(&self, record: &SinkRecord, ts: i64, delim: &str, out: &mut String) -> Result<(), ConnectError> {
        match self {
            Partitioner::Default => {
                use std::fmt::Write as _;
                let _ = write!(out, "partition={}", record.partition);
            }
            _ => out.push_str(&self.encode(record, ts, delim)?),
        }
        Ok(())
    }

    /// Whether a restart rewrites the same keys with the same contents.
    pub fn is_deterministic(&self, extractor: &Extractor) -> bool {
        !matches!(self, Partitioner::Time { .. }) || *extractor != Extractor::Wallclock
    }
}

/// `<topics.dir>/<topic>/<encoded>/<topic>+<p>+<padded start><ext>` with the configured delimiters.
#[allow(clippy::too_many_arguments)]
pub fn object_key(
    topics_dir: &str,
    dir_delim: &str,
    file_delim: &str,
    pad: usize,
    topic: &str,
    encoded: &str,
    partition: i32,
    start_offset: i64,
    ext: &str,
) -> String {
    let name = format!("{topic}{file_delim}{partition}{file_delim}{start_offset:0pad$}{ext}");
    if topics_dir.is_empty() {
        format!("{topic}{dir_delim}{encoded}{dir_delim}{name}")
    } else {
        format!("{topics_dir}{dir_delim}{topic}{dir_delim}{encoded}{dir_delim}{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, p: i32, offset: i64, value: Value) -> SinkRecord {
        SinkRecord {
            topic: topic.into(),
            partition: p,
            offset,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value,
            timestamp: Some(1_700_000_000_123),
            headers: Vec::new(),
        }
    }

    /// Fixture: TopicPartitionWriter.getCommitFilename (kafka-connect-storage-cloud v12.1.9):
    /// `topicsDir + dirDelim + topic + dirDelim + encodedPartition + dirDelim + topic + fileDelim + partition +
    /// fileDelim + String.format("%0" + zeroPadWidth + "d", startOffset) + extension`; DefaultPartitioner
    /// (storage-common v12.0.12) encodes `"partition=" + partition`.
    #[test]
    fn default_keys_match_confluent() {
        let r = rec("file-input-topic", 0, 0, Value::String("x".into()));
        let enc = Partitioner::Default.encode(&r, 0, "/").unwrap();
        assert_eq!(
            object_key("topics", "/", "+", 10, "file-input-topic", &enc, 0, 0, ".json"),
            "topics/file-input-topic/partition=0/file-input-topic+0+0000000000.json"
        );
        assert_eq!(object_key("t", "/", "+", 3, "a", "partition=12", 12, 42, ".bin"), "t/a/partition=12/a+12+042.bin");
    }

    /// Fixture: TimeBasedPartitioner / HourlyPartitioner (storage-common v12.0.12): path.format
    /// `'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH` applied to the timestamp floored to partition.duration.ms.
    #[test]
    fn time_based_paths() {
        let p = Partitioner::Time {
            format: compile_path_format("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH").unwrap(),
            duration_ms: 3_600_000,
            offset_ms: 0,
        };
        let r = rec("t", 0, 0, Value::Null);
        // 1700000000123 = 2023-11-14T22:13:20.123Z
        assert_eq!(p.encode(&r, 1_700_000_000_123, "/").unwrap(), "year=2023/month=11/day=14/hour=22");
        let Partitioner::Time { format, duration_ms, .. } = p else { unreachable!() };
        let p2 = Partitioner::Time { format, duration_ms, offset_ms: parse_timezone("+02:00").unwrap() };
        assert_eq!(p2.encode(&r, 1_700_000_000_123, "/").unwrap(), "year=2023/month=11/day=15/hour=00");
    }
}
