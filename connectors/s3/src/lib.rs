//! The S3 sink, a drop-in for Confluent's `io.confluent.connect.s3.S3SinkConnector` (kafka-connect-storage-cloud
//! 10.5.x line of keys; version reported: see [`VERSION`]). Keys, defaults, object keys and JSON / ByteArray (gzip)
//! / Avro / Parquet contents, with the keys and headers side objects, as Confluent's; exactly-once with
//! deterministic partitioners through `pre_commit`.
//!
//! Defaults for what Confluent requires and the seed config omits: `format.class` = JsonFormat,
//! `flush.size` = 1000, `storage.class` = S3Storage (the only storage there is).

pub mod avro;
pub mod client;
pub mod format;
pub mod layout;
pub mod parquet_file;
pub mod task;

use std::sync::Arc;

use sluice_connect_api::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator, invalid_value,
};
use sluice_connect_api::connector::{Connector, ConnectorType, SinkTask};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::ConnectorPlugin;

use avro::AvroCodec;
use format::{Compression, Format, View};
use layout::{Extractor, Partitioner, compile_path_format, parse_timezone};
use parquet_file::ParquetCodec;

pub const CLASS: &str = "io.confluent.connect.s3.S3SinkConnector";
/// The Confluent S3 sink release whose keys and layout this follows (kafka-connect-storage-cloud v10.5.x /
/// the reference's sources at v12.1.9 share them).
pub const VERSION: &str = "10.5.17";
const TASK_CLASS: &str = "io.confluent.connect.s3.S3SinkTask";

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[ConnectorPlugin {
    class: CLASS,
    aliases: &["S3SinkConnector", "S3Sink"],
    connector_type: ConnectorType::Sink,
    version: VERSION,
    build: || Arc::new(S3SinkConnector),
}];

pub const DEFAULT_FORMAT: &str = "io.confluent.connect.s3.format.json.JsonFormat";
pub const DEFAULT_FLUSH_SIZE: &str = "1000";
pub const STORAGE_CLASS: &str = "io.confluent.connect.s3.storage.S3Storage";
/// `keys.format.class` / `headers.format.class` default (Confluent's).
pub const DEFAULT_SIDE_FORMAT: &str = "io.confluent.connect.s3.format.avro.AvroFormat";
pub const DEFAULT_PARTITIONER: &str = "io.confluent.connect.storage.partitioner.DefaultPartitioner";
/// `tombstone.encoded.partition` default (Confluent's).
pub const DEFAULT_TOMBSTONE_PARTITION: &str = "tombstone";
/// S3SinkConnectorValidator.validateTombstoneWriter's message (on `store.kafka.keys` and `behavior.on.null.values`).
pub const TOMBSTONE_NEEDS_KEYS: &str =
    "Writing Kafka record keys to storage is mandatory when tombstone writing is enabled.";

/// The parsed configuration of a task.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    pub store_url: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub topics_dir: String,
    pub dir_delim: String,
    pub file_delim: String,
    pub pad: usize,
    pub flush_size: u64,
    pub rotate_interval_ms: i64,
    pub rotate_schedule_interval_ms: i64,
    pub format: Format,
    /// `s3.compression.type` / `s3.compression.level` (JSON and ByteArray objects).
    pub compression: Compression,
    /// The objects of a file: the value view in `format`, then the keys (`store.kafka.keys`, `keys.format.class`)
    /// and headers (`store.kafka.headers`, `headers.format.class`) views when stored.
    pub views: Vec<(View, Format)>,
    pub part_size: usize,
    pub partitioner: Partitioner,
    pub extractor: Extractor,
    pub null_values: NullBehavior,
    /// `tombstone.encoded.partition`: the encoded partition (directory) of the tombstones with
    /// `behavior.on.null.values=write`.
    pub tombstone_partition: String,
    /// Ignored null values go to Kafka Connect's error handling (DLQ / error log) as Confluent's errant record
    /// reporter sends them: `report.null.values.to.dlq` and a reporter (a DLQ topic or `errors.log.enable`).
    pub report_nulls: bool,
    pub tagging: bool,
    pub ssea: Option<String>,
    /// Sluice's per-task upload buffer budget (bytes buffered over all open files): past it, the largest open
    /// file is uploaded early.
    pub buffer_budget: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NullBehavior {
    Fail,
    Ignore,
    Write,
}

fn get<'a>(c: &'a ConfigMap, k: &str) -> Option<&'a str> {
    c.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn num<T: std::str::FromStr>(c: &ConfigMap, k: &str, default: T) -> Result<T, ConnectError> {
    match get(c, k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConnectError::config(k, format!("Invalid value {v}: not a number"))),
    }
}

fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// A BOOLEAN key as Kafka's ConfigDef parses it.
fn boolean(c: &ConfigMap, k: &str, default: bool) -> Result<bool, ConnectError> {
    match get(c, k) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConnectError::config(k, invalid_value(k, v, "Expected value to be either true or false"))),
    }
}

/// A format class key (`format.class`, `keys.format.class`, `headers.format.class`).
fn format_class(c: &ConfigMap, k: &str, default: &str) -> Result<Format, ConnectError> {
    let class = get(c, k).unwrap_or(default);
    let invalid = |m: &str| ConnectError::config(k, invalid_value(k, class, m));
    match simple(class) {
        "JsonFormat" => Ok(Format::Json),
        "ByteArrayFormat" => Ok(Format::ByteArray {
            extension: get(c, "format.bytearray.extension").unwrap_or(".bin").to_string(),
            separator: c
                .get("format.bytearray.separator")
                .map(|s| s.replace("\\n", "\n").replace("\\r", "\r").into_bytes())
                .unwrap_or_else(|| b"\n".to_vec()),
        }),
        "AvroFormat" => {
            // AVRO_SUPPORTED_CODECS of storage-common; Sluice writes null, deflate and snappy.
            let codec = match get(c, "avro.codec").unwrap_or("null") {
                "null" => AvroCodec::Null,
                "deflate" => AvroCodec::Deflate,
                "snappy" => AvroCodec::Snappy,
                other @ ("bzip2" | "xz" | "zstandard") => {
                    return Err(ConnectError::config(
                        "avro.codec",
                        invalid_value(
                            "avro.codec",
                            other,
                            "Sluice's S3 sink writes the codecs null, deflate and snappy",
                        ),
                    ));
                }
                other => {
                    return Err(ConnectError::config(
                        "avro.codec",
                        invalid_value(
                            "avro.codec",
                            other,
                            "Value must be one of: [null, deflate, snappy, bzip2, xz, zstandard]",
                        ),
                    ));
                }
            };
            Ok(Format::Avro { codec, connect_meta_data: boolean(c, "connect.meta.data", true)? })
        }
        "ParquetFormat" => {
            // storage-common's parquet.codec (default snappy); Sluice writes none, snappy and gzip.
            let codec = match get(c, "parquet.codec").unwrap_or("snappy").to_ascii_lowercase().as_str() {
                "none" | "uncompressed" => ParquetCodec::None,
                "snappy" => ParquetCodec::Snappy,
                "gzip" => ParquetCodec::Gzip,
                other @ ("lzo" | "brotli" | "lz4" | "lz4_raw" | "zstd") => {
                    return Err(ConnectError::config(
                        "parquet.codec",
                        invalid_value(
                            "parquet.codec",
                            other,
                            "Sluice's S3 sink writes the codecs none, snappy and gzip",
                        ),
                    ));
                }
                other => {
                    return Err(ConnectError::config(
                        "parquet.codec",
                        invalid_value(
                            "parquet.codec",
                            other,
                            "Value must be one of: [none, snappy, gzip, lzo, brotli, lz4, lz4_raw, zstd]",
                        ),
                    ));
                }
            };
            Ok(Format::Parquet { codec, connect_meta_data: boolean(c, "connect.meta.data", true)? })
        }
        _ => Err(invalid(&format!("Class {class} could not be found."))),
    }
}

impl S3Settings {
    pub fn from_config(c: &ConfigMap) -> Result<Self, ConnectError> {
        let bucket = get(c, "s3.bucket.name")
            .ok_or_else(|| {
                ConnectError::config(
                    "s3.bucket.name",
                    "Missing required configuration \"s3.bucket.name\" which has no default value.",
                )
            })?
            .to_string();
        if let Some(s) = get(c, "storage.class")
            && simple(s) != "S3Storage"
        {
            return Err(ConnectError::config("storage.class", format!("only {STORAGE_CLASS} is supported, not {s}")));
        }
        let format = format_class(c, "format.class", DEFAULT_FORMAT)?;
        let level: i32 = num(c, "s3.compression.level", -1)?;
        if !(-1..=9).contains(&level) {
            let m = if level < -1 { "Value must be at least -1" } else { "Value must be no more than 9" };
            return Err(ConnectError::config(
                "s3.compression.level",
                invalid_value("s3.compression.level", &level.to_string(), m),
            ));
        }
        // CompressionTypeValidator: the exact lowercase names.
        let compression = match get(c, "s3.compression.type").unwrap_or("none") {
            "none" => Compression::None,
            // Deflater.DEFAULT_COMPRESSION (-1) is zlib's level 6.
            "gzip" => Compression::Gzip(if level < 0 { 6 } else { level as u32 }),
            other => {
                return Err(ConnectError::config(
                    "s3.compression.type",
                    invalid_value("s3.compression.type", other, "Value must be one of: [none, gzip]"),
                ));
            }
        };
        // KeyValueHeaderRecordWriterProvider: the value object, then `.keys` and `.headers` objects next to it.
        let mut views = vec![(View::Value, format.clone())];
        if boolean(c, "store.kafka.keys", false)? {
            views.push((View::Key, format_class(c, "keys.format.class", DEFAULT_SIDE_FORMAT)?));
        }
        if boolean(c, "store.kafka.headers", false)? {
            let headers_format = format_class(c, "headers.format.class", DEFAULT_SIDE_FORMAT)?;
            if matches!(headers_format, Format::ByteArray { .. }) {
                // HEADERS_FORMAT_CLASS_VALID_VALUES: "ByteArrayFormat for headers is not supported".
                let class = get(c, "headers.format.class").unwrap_or_default();
                return Err(ConnectError::config(
                    "headers.format.class",
                    invalid_value(
                        "headers.format.class",
                        class,
                        "ByteArrayFormat cannot write headers; use AvroFormat, JsonFormat or ParquetFormat",
                    ),
                ));
            }
            views.push((View::Headers, headers_format));
        }
        let flush_size: u64 = num(c, "flush.size", 1000)?;
        if flush_size < 1 {
            return Err(ConnectError::config("flush.size", "must be at least 1"));
        }
        let part_size: usize = num(c, "s3.part.size", 26_214_400)?;
        if part_size < 5 * 1024 * 1024 {
            return Err(ConnectError::config("s3.part.size", "Value must be at least 5242880"));
        }
        let extractor = match get(c, "timestamp.extractor").unwrap_or("Wallclock") {
            "Wallclock" => Extractor::Wallclock,
            "Record" => Extractor::Record,
            "RecordField" => Extractor::RecordField(get(c, "timestamp.field").unwrap_or("timestamp").to_string()),
            other => return Err(ConnectError::config("timestamp.extractor", format!("unknown extractor {other}"))),
        };
        let tz =
            parse_timezone(get(c, "timezone").unwrap_or("UTC")).map_err(|m| ConnectError::config("timezone", m))?;
        let time = |path: &str, duration: i64| -> Result<Partitioner, ConnectError> {
            Ok(Partitioner::Time {
                format: compile_path_format(path).map_err(|m| ConnectError::config("path.format", m))?,
                duration_ms: duration,
                offset_ms: tz,
            })
        };
        let partitioner = match simple(get(c, "partitioner.class").unwrap_or(DEFAULT_PARTITIONER)) {
            "DefaultPartitioner" => Partitioner::Default,
            "FieldPartitioner" => {
                let fields: Vec<String> = get(c, "partition.field.name")
                    .ok_or_else(|| ConnectError::config("partition.field.name", "required by FieldPartitioner"))?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                Partitioner::Field(fields)
            }
            "DailyPartitioner" => time("'year'=YYYY/'month'=MM/'day'=dd", 86_400_000)?,
            "HourlyPartitioner" => time("'year'=YYYY/'month'=MM/'day'=dd/'hour'=HH", 3_600_000)?,
            "TimeBasedPartitioner" => {
                let path = get(c, "path.format")
                    .ok_or_else(|| ConnectError::config("path.format", "required by TimeBasedPartitioner"))?;
                let duration: i64 = num(c, "partition.duration.ms", -1)?;
                if duration <= 0 {
                    return Err(ConnectError::config(
                        "partition.duration.ms",
                        "required (> 0) by TimeBasedPartitioner",
                    ));
                }
                time(path, duration)?
            }
            other => return Err(ConnectError::config("partitioner.class", format!("unknown partitioner {other}"))),
        };
        let null_values = match get(c, "behavior.on.null.values").unwrap_or("fail").to_ascii_lowercase().as_str() {
            "fail" => NullBehavior::Fail,
            "ignore" => NullBehavior::Ignore,
            "write" => NullBehavior::Write,
            other => {
                return Err(ConnectError::config(
                    "behavior.on.null.values",
                    invalid_value("behavior.on.null.values", other, "String must be one of: ignore, fail, write"),
                ));
            }
        };
        if null_values == NullBehavior::Write && !views.iter().any(|(v, _)| *v == View::Key) {
            // S3SinkConnectorValidator.validateTombstoneWriter (reported on both keys by `validate_extra`).
            return Err(ConnectError::config("store.kafka.keys", TOMBSTONE_NEEDS_KEYS));
        }
        let tombstone_partition =
            c.get("tombstone.encoded.partition").map_or(DEFAULT_TOMBSTONE_PARTITION, |v| v.trim()).to_string();
        // Kafka Connect creates the errant record reporter when a DLQ topic is named or the error log is on
        // (ConnectorConfig.enableErrantRecordReporter).
        let reporter = get(c, "errors.deadletterqueue.topic.name").is_some() || boolean(c, "errors.log.enable", false)?;
        let report_nulls = reporter && boolean(c, "report.null.values.to.dlq", true)?;
        Ok(S3Settings {
            bucket,
            region: get(c, "s3.region").unwrap_or("us-west-2").to_string(),
            store_url: get(c, "store.url").map(str::to_string),
            access_key: get(c, "aws.access.key.id").map(str::to_string),
            secret_key: get(c, "aws.secret.access.key").map(str::to_string),
            topics_dir: c.get("topics.dir").map(|s| s.trim().to_string()).unwrap_or_else(|| "topics".into()),
            dir_delim: c.get("directory.delim").cloned().unwrap_or_else(|| "/".into()),
            file_delim: c.get("file.delim").cloned().unwrap_or_else(|| "+".into()),
            pad: num(c, "filename.offset.zero.pad.width", 10)?,
            flush_size,
            rotate_interval_ms: num(c, "rotate.interval.ms", -1)?,
            rotate_schedule_interval_ms: num(c, "rotate.schedule.interval.ms", -1)?,
            format,
            compression,
            views,
            part_size,
            partitioner,
            extractor,
            null_values,
            tombstone_partition,
            report_nulls,
            tagging: get(c, "s3.object.tagging").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            ssea: get(c, "s3.ssea.name").map(str::to_string),
            buffer_budget: num(c, "sluice.s3.buffer.budget.bytes", 256 * 1024 * 1024)?,
        })
    }
}

/// The connector.
pub struct S3SinkConnector;

fn key(name: &'static str, t: ConfigType, d: DefaultValue, doc: &'static str) -> ConfigKey {
    ConfigKey::new(name, t, d, Importance::Medium, doc)
}

fn val(v: &str) -> DefaultValue {
    DefaultValue::Value(v.to_string())
}

impl Connector for S3SinkConnector {
    fn class_name(&self) -> &'static str {
        CLASS
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn version(&self) -> &'static str {
        VERSION
    }
    fn config_def(&self) -> ConfigDef {
        use ConfigType::*;
        use DefaultValue::*;
        ConfigDef::new()
            .define(ConfigKey::new("s3.bucket.name", String, Required, Importance::High, "The S3 Bucket.").with_validator(Validator::NonEmptyString))
            .define(key("s3.region", String, val("us-west-2"), "The AWS region to be used the connector."))
            .define(key("store.url", String, Null, "Store's connection URL, if applicable (S3-compatible endpoints). Unset: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS."))
            .define(key("aws.access.key.id", String, val(""), "The AWS access key ID (unset: the AWS environment / profile)."))
            .define(key("aws.secret.access.key", Password, val(""), "The secret access key."))
            .define(key("storage.class", Class, val(STORAGE_CLASS), "The underlying storage layer. Sluice default: S3Storage (Confluent requires it)."))
            .define(key("format.class", Class, val(DEFAULT_FORMAT), "The format class to use when writing data to the store. Sluice default: JsonFormat (Confluent requires it)."))
            .define(key("flush.size", Int, val(DEFAULT_FLUSH_SIZE), "Number of records written to store before invoking file commits. Sluice default: 1000 (Confluent requires it)."))
            .define(key("rotate.interval.ms", Long, val("-1"), "The time interval in milliseconds to invoke file commits (record timestamps)."))
            .define(key("rotate.schedule.interval.ms", Long, val("-1"), "The time interval in milliseconds to periodically invoke file commits (wall clock)."))
            .define(key("topics.dir", String, val("topics"), "Top level directory to store the data ingested from Kafka."))
            .define(key("directory.delim", String, val("/"), "Directory delimiter pattern"))
            .define(key("file.delim", String, val("+"), "File delimiter pattern"))
            .define(key("filename.offset.zero.pad.width", Int, val("10"), "Width to zero-pad offsets in store's filenames if offsets are too short in order to provide fixed-width filenames that can be ordered by simple lexicographic sorting."))
            .define(key("s3.part.size", Int, val("26214400"), "The Part Size in S3 Multi-part Uploads.").with_validator(Validator::Between(5_242_880, i32::MAX as i64)))
            .define(key("s3.compression.type", String, val("none"), "Compression type for files written to S3. Applied when using JsonFormat or ByteArrayFormat. Available values: none, gzip."))
            .define(key("s3.compression.level", Int, val("-1"), "Compression level for files written to S3. Applied when using JsonFormat or ByteArrayFormat.").with_validator(Validator::Between(-1, 9)))
            .define(key("partitioner.class", Class, val(DEFAULT_PARTITIONER), "The partitioner to use when writing data to the store."))
            .define(key("partition.field.name", List, val(""), "The name of the partitioning field when FieldPartitioner is used."))
            .define(key("partition.duration.ms", Long, val("-1"), "The duration of a partition milliseconds used by TimeBasedPartitioner."))
            .define(key("path.format", String, val(""), "This configuration is used to set the format of the data directories when partitioning with TimeBasedPartitioner."))
            .define(key("locale", String, val(""), "The locale to use when partitioning with TimeBasedPartitioner."))
            .define(key("timezone", String, val(""), "The timezone to use when partitioning with TimeBasedPartitioner (UTC or fixed offsets in Sluice)."))
            .define(key("timestamp.extractor", String, val("Wallclock"), "The extractor that gets the timestamp for records when partitioning with TimeBasedPartitioner."))
            .define(key("timestamp.field", String, val("timestamp"), "The record field to be used as timestamp by the timestamp extractor."))
            .define(key("behavior.on.null.values", String, val("fail"), "How to handle records with a null value (i.e. Kafka tombstone records). Valid options are 'ignore', 'fail' and 'write'. Ignore would skip the tombstone record and fail would cause the connector task to throw an exception. In case of the write tombstone option, the connector redirects tombstone records to a separate directory mentioned in the config tombstone.encoded.partition. The storage of Kafka record keys is mandatory when this option is selected and the file for values is not generated for tombstone records.").with_validator(Validator::OneOf(vec!["fail", "ignore", "write"])))
            .define(key("report.null.values.to.dlq", Boolean, val("true"), "Determine whether to log records with null values to dlq. `errors.tolerance` should be set to 'all' for successfully writing into dlq"))
            .define(key("tombstone.encoded.partition", String, val(DEFAULT_TOMBSTONE_PARTITION), "Output s3 folder to write the tombstone records to. The configured partitioner would map tombstone records to this output folder."))
            .define(key("store.kafka.keys", Boolean, val("false"), "Enable or disable writing keys to storage."))
            .define(key("store.kafka.headers", Boolean, val("false"), "Enable or disable writing headers to storage."))
            .define(key("keys.format.class", Class, val(DEFAULT_SIDE_FORMAT), "The format class to use when writing keys to the store."))
            .define(key("headers.format.class", Class, val(DEFAULT_SIDE_FORMAT), "The format class to use when writing headers to the store."))
            .define(key("s3.object.tagging", Boolean, val("false"), "Tag S3 objects with start and end offsets, as well as record count."))
            .define(key("s3.ssea.name", String, val(""), "The S3 Server Side Encryption Algorithm."))
            .define(key("avro.codec", String, val("null"), "The Avro compression codec to be used for output files. Available values: null, deflate, snappy (bzip2, xz, zstandard are not built in Sluice)."))
            .define(key("parquet.codec", String, val("snappy"), "The Parquet compression codec to be used for output files. Available values: none, snappy, gzip (lzo, brotli, lz4, zstd are not built in Sluice)."))
            .define(key("connect.meta.data", Boolean, val("true"), "Allow the Connect converter to add its metadata to the output schema."))
            .define(key("enhanced.avro.schema.support", Boolean, val("false"), "Enable enhanced Avro schema support in AvroConverter: Enum symbol preservation and Package Name awareness (accepted; Sluice writes such schemas as their Connect types)."))
            .define(key("format.bytearray.extension", String, val(".bin"), "Output file extension for ByteArrayFormat."))
            .define(key("format.bytearray.separator", String, Null, "String inserted between records for ByteArrayFormat (default line separator)."))
    }

    fn validate_extra(&self, config: &ConfigMap) -> Vec<(std::string::String, std::string::String)> {
        match S3Settings::from_config(config) {
            // As S3SinkConnectorValidator.recordErrors: the message on each key involved.
            Err(ConnectError::Config { message, .. }) if message == TOMBSTONE_NEEDS_KEYS => vec![
                ("store.kafka.keys".to_string(), message.clone()),
                ("behavior.on.null.values".to_string(), message),
            ],
            Err(ConnectError::Config { key, message }) => vec![(key, message)],
            _ => Vec::new(),
        }
    }

    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        S3Settings::from_config(config)?;
        let mut task = config.clone();
        // What the seed leaves out and Confluent requires (or defaults), made explicit in the task configs, so
        // `GET /connectors/{name}/tasks` shows what is in force (GET .../config stays what the user submitted, as
        // in Kafka Connect).
        for (k, v) in [
            ("storage.class", STORAGE_CLASS),
            ("format.class", DEFAULT_FORMAT),
            ("flush.size", DEFAULT_FLUSH_SIZE),
            ("partitioner.class", DEFAULT_PARTITIONER),
            ("s3.region", "us-west-2"),
            ("topics.dir", "topics"),
            ("s3.part.size", "26214400"),
            ("behavior.on.null.values", "fail"),
        ] {
            task.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        task.insert("task.class".into(), TASK_CLASS.into());
        Ok(vec![task; max_tasks.max(1)])
    }

    fn create_sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(task::S3SinkTask::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_config_is_enough() {
        let c: ConfigMap = [
            ("name", "s3-sink"),
            ("connector.class", CLASS),
            ("tasks.max", "1"),
            ("topics", "file-input-topic"),
            ("s3.bucket.name", "my-kafka-bucket"),
            ("s3.region", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = S3Settings::from_config(&c).unwrap();
        assert_eq!(
            (s.flush_size, s.format.extension(s.compression).as_str(), s.region.as_str()),
            (1000, ".json", "us-east-1")
        );
        assert!(S3SinkConnector.validate_extra(&c).is_empty());
        let tasks = S3SinkConnector.task_configs(&c, 1).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0]["format.class"], DEFAULT_FORMAT);
        assert_eq!(tasks[0]["flush.size"], "1000");
        assert_eq!(tasks[0]["s3.region"], "us-east-1");
    }

    fn with(extra: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap = [("connector.class", CLASS), ("topics", "t"), ("s3.bucket.name", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in extra {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    /// Fixture: S3SinkConnectorConfig (kafka-connect-storage-cloud v12.1.9): `CompressionTypeValidator` ("Value
    /// must be one of: " + [none, gzip]), `CompressionLevelValidator` (Range -1..9), `.gz` extension.
    #[test]
    fn compression_keys() {
        let s = S3Settings::from_config(&with(&[("s3.compression.type", "gzip")])).unwrap();
        assert_eq!((s.compression, s.format.extension(s.compression).as_str()), (Compression::Gzip(6), ".json.gz"));
        let s = S3Settings::from_config(&with(&[
            ("s3.compression.type", "gzip"),
            ("s3.compression.level", "1"),
            ("format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
        ]))
        .unwrap();
        assert_eq!(s.format.extension(s.compression), ".bin.gz");
        let errors = S3SinkConnector.validate_extra(&with(&[("s3.compression.type", "zstd")]));
        assert_eq!(
            errors,
            [(
                "s3.compression.type".to_string(),
                "Invalid value zstd for configuration s3.compression.type: Value must be one of: [none, gzip]"
                    .to_string()
            )]
        );
        let errors = S3SinkConnector.validate_extra(&with(&[("s3.compression.level", "12")]));
        assert_eq!(
            errors[0].1,
            "Invalid value 12 for configuration s3.compression.level: Value must be no more than 9"
        );
        let errors = S3SinkConnector.validate_extra(&with(&[("format.class", "com.example.NoSuchFormat")]));
        assert_eq!(
            errors[0].1,
            "Invalid value com.example.NoSuchFormat for configuration format.class: Class com.example.NoSuchFormat could not be found."
        );
    }

    /// Fixture: S3SinkConnectorConfig (v12.1.9) "Keys and Headers" group: `store.kafka.keys` / `store.kafka.headers`
    /// (BOOLEAN), `keys.format.class` / `headers.format.class` (default AvroFormat; no ByteArrayFormat for headers).
    #[test]
    fn keys_and_headers_keys() {
        let json = "io.confluent.connect.s3.format.json.JsonFormat";
        let s = S3Settings::from_config(&with(&[
            ("store.kafka.keys", "true"),
            ("keys.format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
            ("store.kafka.headers", "TRUE"),
            ("headers.format.class", json),
        ]))
        .unwrap();
        let views: Vec<View> = s.views.iter().map(|(v, _)| *v).collect();
        assert_eq!(views, [View::Value, View::Key, View::Headers]);
        let errors = S3SinkConnector.validate_extra(&with(&[
            ("store.kafka.headers", "true"),
            ("headers.format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
        ]));
        assert_eq!(errors[0].0, "headers.format.class");
        assert!(errors[0].1.starts_with("Invalid value io.confluent.connect.s3.format.bytearray.ByteArrayFormat for configuration headers.format.class: "));
        let errors = S3SinkConnector.validate_extra(&with(&[("store.kafka.keys", "yes")]));
        assert_eq!(
            errors[0].1,
            "Invalid value yes for configuration store.kafka.keys: Expected value to be either true or false"
        );
        assert!(
            S3SinkConnector
                .validate_extra(&with(&[("store.kafka.keys", "false"), ("store.kafka.headers", "false")]))
                .is_empty()
        );
    }

    /// Fixture: S3SinkConnectorValidator.validateTombstoneWriter (kafka-connect-storage-cloud v12.1.9):
    /// `recordErrors(message, STORE_KAFKA_KEYS_CONFIG, BEHAVIOR_ON_NULL_VALUES_CONFIG)`; `tombstone.encoded.partition`
    /// default "tombstone"; `report.null.values.to.dlq` default true, used when Kafka Connect has an errant record
    /// reporter (a DLQ topic or `errors.log.enable`).
    #[test]
    fn tombstone_keys() {
        let errors = S3SinkConnector.validate_extra(&with(&[("behavior.on.null.values", "write")]));
        let message = "Writing Kafka record keys to storage is mandatory when tombstone writing is enabled.";
        assert_eq!(
            errors,
            [
                ("store.kafka.keys".to_string(), message.to_string()),
                ("behavior.on.null.values".to_string(), message.to_string())
            ]
        );
        let errors = S3SinkConnector
            .validate_extra(&with(&[("behavior.on.null.values", "write"), ("store.kafka.keys", "false")]));
        assert_eq!(errors.len(), 2);
        let keys = ("store.kafka.keys", "true");
        let s = S3Settings::from_config(&with(&[("behavior.on.null.values", "Write"), keys])).unwrap();
        assert_eq!(
            (s.null_values, s.tombstone_partition.as_str(), s.report_nulls),
            (NullBehavior::Write, "tombstone", false)
        );
        let s = S3Settings::from_config(&with(&[
            ("behavior.on.null.values", "write"),
            keys,
            ("tombstone.encoded.partition", " deleted "),
        ]))
        .unwrap();
        assert_eq!(s.tombstone_partition, "deleted");
        assert!(S3SinkConnector.validate_extra(&with(&[("behavior.on.null.values", "write"), keys])).is_empty());
        let ignore = ("behavior.on.null.values", "ignore");
        let dlq = ("errors.deadletterqueue.topic.name", "dlq");
        assert!(S3Settings::from_config(&with(&[ignore, dlq])).unwrap().report_nulls);
        assert!(S3Settings::from_config(&with(&[ignore, ("errors.log.enable", "true")])).unwrap().report_nulls);
        assert!(
            !S3Settings::from_config(&with(&[ignore, dlq, ("report.null.values.to.dlq", "false")]))
                .unwrap()
                .report_nulls
        );
        assert!(!S3Settings::from_config(&with(&[ignore])).unwrap().report_nulls);
        let tasks = S3SinkConnector.task_configs(&with(&[]), 1).unwrap();
        assert_eq!(tasks[0]["behavior.on.null.values"], "fail");
    }

    /// Fixture: AvroFormat (`.avro`), storage-common's `avro.codec` (default "null"), `keys.format.class` default
    /// AvroFormat.
    #[test]
    fn avro_keys() {
        let avro = "io.confluent.connect.s3.format.avro.AvroFormat";
        let s = S3Settings::from_config(&with(&[("format.class", avro), ("store.kafka.keys", "true")])).unwrap();
        assert_eq!(s.format.extension(s.compression), ".avro");
        assert_eq!(s.views[1].1, Format::Avro { codec: AvroCodec::Null, connect_meta_data: true });
        let s = S3Settings::from_config(&with(&[("format.class", avro), ("avro.codec", "snappy")])).unwrap();
        assert_eq!(s.format, Format::Avro { codec: AvroCodec::Snappy, connect_meta_data: true });
        let errors = S3SinkConnector.validate_extra(&with(&[("format.class", avro), ("avro.codec", "lz4")]));
        assert_eq!(errors[0].0, "avro.codec");
        assert!(errors[0].1.starts_with("Invalid value lz4 for configuration avro.codec: "), "{}", errors[0].1);
        let parquet = "io.confluent.connect.s3.format.parquet.ParquetFormat";
        let s = S3Settings::from_config(&with(&[("format.class", parquet)])).unwrap();
        assert_eq!(s.format.extension(s.compression), ".snappy.parquet");
        let s = S3Settings::from_config(&with(&[("format.class", parquet), ("parquet.codec", "none")])).unwrap();
        assert_eq!(s.format.extension(s.compression), ".parquet");
        let errors = S3SinkConnector.validate_extra(&with(&[("format.class", parquet), ("parquet.codec", "zstd")]));
        assert_eq!(errors[0].0, "parquet.codec");
    }
}
