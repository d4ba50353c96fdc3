//! FileStreamSource and FileStreamSink, with Kafka Connect's semantics: the source tails a file line by line and
//! resumes from a saved byte position; the sink appends each record's value as one line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use sluice_connect_api::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator};
use sluice_connect_api::connector::{
    Connector, ConnectorType, SinkTask, SinkTaskContext, SourceTask, SourceTaskContext, TopicPartition,
};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::{ConnectorPlugin, PLUGIN_VERSION};
use sluice_connect_api::record::{Schema, SinkRecord, SourceRecord, Value};
use sluice_connect_api::values::write_text;

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[
    ConnectorPlugin {
        class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
        aliases: &["FileStreamSource", "FileStreamSourceConnector"],
        connector_type: ConnectorType::Source,
        version: PLUGIN_VERSION,
        build: || Arc::new(FileStreamSourceConnector),
    },
    ConnectorPlugin {
        class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
        aliases: &["FileStreamSink", "FileStreamSinkConnector"],
        connector_type: ConnectorType::Sink,
        version: PLUGIN_VERSION,
        build: || Arc::new(FileStreamSinkConnector),
    },
];

/// The file to read or write; unset or empty means stdin (source) or stdout (sink).
pub const FILE_CONFIG: &str = "file";
/// The topic the source writes to.
pub const TOPIC_CONFIG: &str = "topic";
/// The most records one source poll returns.
pub const BATCH_SIZE_CONFIG: &str = "batch.size";
/// `batch.size`'s default, as in Kafka Connect.
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// The key Kafka Connect adds to every task config: the task's class.
pub const TASK_CLASS_CONFIG: &str = "task.class";
const FILE_SOURCE_TASK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceTask";
const FILE_SINK_TASK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkTask";
/// The source partition key naming the file.
pub const FILENAME_FIELD: &str = "filename";
/// The source offset key holding the byte position after the last emitted line.
pub const POSITION_FIELD: &str = "position";

/// Bytes asked for per read: large enough that a busy file costs one syscall per many lines.
const READ_CHUNK: usize = 64 * 1024;
/// A sink batch is rendered and written in pieces of about this size.
const WRITE_CHUNK: usize = 1024 * 1024;

fn file_setting(config: &ConfigMap) -> Option<String> {
    config.get(FILE_CONFIG).map(|f| f.trim()).filter(|f| !f.is_empty()).map(str::to_string)
}

/// The parsed configuration of a FileStreamSource connector or task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceSettings {
    /// `None` reads stdin.
    pub file: Option<String>,
    pub topic: String,
    pub batch_size: usize,
}

impl FileSourceSettings {
    pub fn from_config(config: &ConfigMap) -> Result<Self, ConnectError> {
        let topic = config.get(TOPIC_CONFIG).map(|t| t.trim()).unwrap_or_default();
        if topic.is_empty() {
            return Err(ConnectError::config(TOPIC_CONFIG, "a non-empty topic is required"));
        }
        let batch_size = match config.get(BATCH_SIZE_CONFIG) {
            None => DEFAULT_BATCH_SIZE,
            Some(raw) => raw
                .trim()
                .parse::<i32>()
                .map_err(|_| ConnectError::config(BATCH_SIZE_CONFIG, format!("{raw:?} is not a number of type INT")))?
                // Kafka Connect still returns one record per poll with a batch size of 0 or less.
                .max(1) as usize,
        };
        Ok(FileSourceSettings { file: file_setting(config), topic: topic.to_string(), batch_size })
    }
}

/// Kafka Connect's `FileStreamSourceConnector`: always exactly one task.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStreamSourceConnector;

impl Connector for FileStreamSourceConnector {
    fn class_name(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSourceConnector"
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn version(&self) -> &'static str {
        PLUGIN_VERSION
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new(
                FILE_CONFIG,
                ConfigType::String,
                DefaultValue::Null,
                Importance::High,
                "Source filename. If not specified, the standard input will be used",
            ))
            .define(
                ConfigKey::new(
                    TOPIC_CONFIG,
                    ConfigType::String,
                    DefaultValue::Required,
                    Importance::High,
                    "The topic to publish data to",
                )
                .with_validator(Validator::NonEmptyString),
            )
            .define(ConfigKey::new(
                BATCH_SIZE_CONFIG,
                ConfigType::Int,
                DefaultValue::Value(DEFAULT_BATCH_SIZE.to_string()),
                Importance::Low,
                "The maximum number of records the source task can read from the file each time it is polled",
            ))
    }

    fn task_configs(&self, config: &ConfigMap, _max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        // Checked here so that a bad config fails the write, not the task; the task reads the same keys.
        FileSourceSettings::from_config(config)?;
        // As Kafka Connect's: the connector's config plus `task.class`.
        let mut task = config.clone();
        task.insert(TASK_CLASS_CONFIG.to_string(), FILE_SOURCE_TASK_CLASS.to_string());
        Ok(vec![task])
    }

    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(FileStreamSourceTask::default()))
    }
}

/// How long the source task waits; shortened in tests.
#[derive(Debug, Clone, Copy)]
struct SourceTiming {
    /// How long one poll waits for new data before returning an empty batch.
    poll_wait: Duration,
    /// How soon a poll at end of file checks again for appended data; the wait doubles while the file stays
    /// unchanged, up to `recheck_max`, and starts over once data arrives. A busy file is picked up within
    /// `recheck`, an idle one costs one read per `recheck_max` (Kafka Connect: one second).
    recheck: Duration,
    recheck_max: Duration,
    /// How long a poll waits after finding the file missing (Kafka Connect: one second).
    missing_retry: Duration,
}

impl Default for SourceTiming {
    fn default() -> Self {
        SourceTiming {
            poll_wait: Duration::from_secs(1),
            recheck: Duration::from_millis(50),
            recheck_max: Duration::from_secs(1),
            missing_retry: Duration::from_secs(1),
        }
    }
}

/// Kafka Connect's `FileStreamSourceTask`: tails a file (or stdin) and emits one record per line.
///
/// Lines end at `\n`, `\r` or `\r\n`. A line is emitted only once its terminator has been read, and a `\r` that ends
/// the data read so far waits for the next byte, so a `\r\n` split across reads (or appends) is one terminator.
#[derive(Default)]
pub struct FileStreamSourceTask {
    state: Option<SourceState>,
    timing: SourceTiming,
}

impl FileStreamSourceTask {
    pub fn new() -> Self {
        FileStreamSourceTask::default()
    }

    #[cfg(test)]
    fn with_timing(timing: SourceTiming) -> Self {
        FileStreamSourceTask { state: None, timing }
    }
}

struct SourceState {
    connector: String,
    task: u32,
    settings: FileSourceSettings,
    /// `{"filename": ...}`, shared by every record; empty for stdin.
    partition: Arc<serde_json::Map<String, serde_json::Value>>,
    input: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The byte position in the file of `buf[start]`.
    position: u64,
    /// Bytes read but not yet emitted are `buf[start..]`; compacted only before the next read.
    buf: Vec<u8>,
    start: usize,
    /// Whether the missing file was already reported, so the log is not flooded while waiting for it.
    missing_reported: bool,
    /// The next wait at end of file (`None`: `SourceTiming::recheck`, data arrived since the last wait).
    idle_wait: Option<Duration>,
}

impl SourceState {
    /// Opens the input, positioned at the committed offset. `Ok(false)` when the file does not exist yet.
    async fn open(&mut self) -> Result<bool, ConnectError> {
        let Some(path) = &self.settings.file else {
            self.input = Some(Box::new(tokio::io::stdin()));
            return Ok(true);
        };
        let mut file = match tokio::fs::File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.missing_reported {
                    tracing::warn!(connector = %self.connector, task = self.task, file = %path,
                        "couldn't find file for FileStreamSourceTask, waiting for it to be created");
                    self.missing_reported = true;
                }
                return Ok(false);
            }
            Err(e) => return Err(ConnectError::retriable(format!("opening source file {path:?}"), e)),
        };
        if self.position > 0 {
            file.seek(std::io::SeekFrom::Start(self.position)).await.map_err(|e| {
                ConnectError::retriable(format!("seeking to position {} in {path:?}", self.position), e)
            })?;
        }
        tracing::info!(connector = %self.connector, task = self.task, file = %path, position = self.position,
            "reading source file");
        self.missing_reported = false;
        self.buf.clear();
        self.start = 0;
        self.input = Some(Box::new(file));
        Ok(true)
    }

    /// Reads the next chunk after what is buffered; returns the number of bytes read (0 at end of file).
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.start > 0 {
            // Only the unterminated tail moves, once per read, so the copying stays amortized.
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        // A line longer than the buffer makes it grow, as Kafka Connect's does.
        self.buf.reserve(READ_CHUNK);
        let Some(input) = self.input.as_mut() else { return Ok(0) };
        input.read_buf(&mut self.buf).await
    }

    /// Emits up to `batch.size` complete lines from the buffer.
    fn extract_lines(&mut self) -> Vec<SourceRecord> {
        let mut records = Vec::new();
        while records.len() < self.settings.batch_size {
            let pending = &self.buf[self.start..];
            let Some(at) = pending.iter().position(|&b| b == b'\n' || b == b'\r') else { break };
            let terminator = match pending[at] {
                b'\n' => 1,
                // Cannot tell `\r` from `\r\n` until the next byte is there.
                _ if at + 1 == pending.len() => break,
                _ if pending[at + 1] == b'\n' => 2,
                _ => 1,
            };
            // Java decodes malformed UTF-8 with replacement characters too.
            let line = match std::str::from_utf8(&pending[..at]) {
                Ok(line) => line.to_owned(),
                Err(_) => String::from_utf8_lossy(&pending[..at]).into_owned(),
            };
            let consumed = at + terminator;
            self.start += consumed;
            self.position += consumed as u64;
            records.push(self.record(line));
        }
        records
    }

    fn record(&self, line: String) -> SourceRecord {
        let source_offset = if self.settings.file.is_some() {
            let mut offset = serde_json::Map::with_capacity(1);
            offset.insert(POSITION_FIELD.to_string(), serde_json::Value::from(self.position));
            serde_json::Value::Object(offset)
        } else {
            serde_json::Value::Null
        };
        SourceRecord {
            source_partition: self.partition.clone(),
            source_offset,
            topic: self.settings.topic.clone(),
            partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: Some(Schema::string()),
            value: Value::String(line),
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// The byte position stored in a committed `{"position": n}` offset.
fn committed_position(offset: &serde_json::Value) -> Result<Option<u64>, ConnectError> {
    match offset {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(map) => match map.get(POSITION_FIELD) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(position) => position
                .as_u64()
                .map(Some)
                .ok_or_else(|| ConnectError::Other(format!("Offset position is the incorrect type: {position}"))),
        },
        other => Err(ConnectError::Other(format!("Offset is the incorrect type: {other}"))),
    }
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let settings = FileSourceSettings::from_config(&context.config)?;
        let mut partition = serde_json::Map::new();
        let mut position = 0;
        if let Some(file) = &settings.file {
            partition.insert(FILENAME_FIELD.to_string(), serde_json::Value::String(file.clone()));
            if let Some(offset) = context.offset(&partition) {
                position = committed_position(offset)?.unwrap_or(0);
            }
        }
        tracing::info!(connector = %context.connector, task = context.task, file = ?settings.file,
            topic = %settings.topic, position, "file source task started");
        self.state = Some(SourceState {
            connector: context.connector,
            task: context.task,
            settings,
            partition: Arc::new(partition),
            input: None,
            position,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            missing_reported: false,
            idle_wait: None,
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let timing = self.timing;
        let state =
            self.state.as_mut().ok_or_else(|| ConnectError::Other("file source task polled before start".into()))?;
        if state.input.is_none() && !state.open().await? {
            tokio::time::sleep(timing.missing_retry).await;
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + timing.poll_wait;
        loop {
            let records = state.extract_lines();
            if !records.is_empty() {
                return Ok(records);
            }
            match state.fill().await {
                Ok(0) => {
                    // End of file: wait a little for appends, but never past the deadline.
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(Vec::new());
                    }
                    let wait = state.idle_wait.unwrap_or(timing.recheck);
                    tokio::time::sleep(wait.min(deadline - now)).await;
                    state.idle_wait = Some((wait * 2).min(timing.recheck_max));
                }
                Ok(_) => state.idle_wait = None,
                Err(e) => {
                    // Reopen at the last emitted position on the next poll; the partial line is read again.
                    state.input = None;
                    let file = state.settings.file.as_deref().unwrap_or("stdin");
                    return Err(ConnectError::retriable(format!("reading {file:?} at position {}", state.position), e));
                }
            }
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(state) = self.state.take() {
            tracing::info!(connector = %state.connector, task = state.task, position = state.position,
                "file source task stopped");
        }
        Ok(())
    }
}

/// Kafka Connect's `FileStreamSinkConnector`: `tasks.max` identical tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStreamSinkConnector;

impl Connector for FileStreamSinkConnector {
    fn class_name(&self) -> &'static str {
        "org.apache.kafka.connect.file.FileStreamSinkConnector"
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn version(&self) -> &'static str {
        PLUGIN_VERSION
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(ConfigKey::new(
            FILE_CONFIG,
            ConfigType::String,
            DefaultValue::Null,
            Importance::High,
            "Destination filename. If not specified, the standard output will be used",
        ))
    }

    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        let mut task = config.clone();
        task.insert(TASK_CLASS_CONFIG.to_string(), FILE_SINK_TASK_CLASS.to_string());
        Ok(vec![task; max_tasks])
    }

    fn create_sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(FileStreamSinkTask::default()))
    }
}

enum SinkOutput {
    File { path: String, writer: tokio::fs::File },
    Stdout(tokio::io::Stdout),
}

impl SinkOutput {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        match self {
            SinkOutput::File { writer, .. } => writer,
            SinkOutput::Stdout(writer) => writer,
        }
    }

    fn describe(&self) -> &str {
        match self {
            SinkOutput::File { path, .. } => path,
            SinkOutput::Stdout(_) => "stdout",
        }
    }
}

/// Kafka Connect's `FileStreamSinkTask`: appends each record's value and a newline; `flush` makes it durable.
#[derive(Default)]
pub struct FileStreamSinkTask {
    output: Option<SinkOutput>,
    connector: String,
    task: u32,
    /// Reused for every batch so rendering does not allocate per line.
    text: String,
}

impl FileStreamSinkTask {
    pub fn new() -> Self {
        FileStreamSinkTask::default()
    }

    fn output(&mut self) -> Result<&mut SinkOutput, ConnectError> {
        self.output.as_mut().ok_or_else(|| ConnectError::Other("file sink task used before start".into()))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnectError> {
        let output = self.output()?;
        let written = output.writer().write_all(bytes).await;
        written.map_err(|e| ConnectError::retriable(format!("writing to {}", output.describe()), e))
    }
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let output = match file_setting(&context.config) {
            Some(path) => {
                let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await.map_err(|e| {
                    ConnectError::fatal(format!("couldn't find or create file {path:?} for FileStreamSinkTask"), e)
                })?;
                SinkOutput::File { path, writer: file }
            }
            None => SinkOutput::Stdout(tokio::io::stdout()),
        };
        tracing::info!(connector = %context.connector, task = context.task, file = %output.describe(),
            "file sink task started");
        self.connector = context.connector;
        self.task = context.task;
        self.output = Some(output);
        Ok(())
    }

    /// Renders the batch into one buffer and writes it with one call (per MiB): the lines reach the file right
    /// after `put`, also at low rates (tokio writes in the background; `flush` waits for that and syncs).
    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let mut result = Ok(());
        for (index, record) in records.iter().enumerate() {
            write_text(record.value_schema.as_deref(), &record.value, &mut text);
            text.push('\n');
            if text.len() >= WRITE_CHUNK || index + 1 == records.len() {
                result = self.write(text.as_bytes()).await;
                text.clear();
                if result.is_err() {
                    break;
                }
            }
        }
        self.text = text;
        result
    }

    async fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        let (connector, task) = (self.connector.clone(), self.task);
        let output = self.output()?;
        let describe = output.describe().to_string();
        let retriable = |what: &str, e| ConnectError::retriable(format!("{what} {describe}"), e);
        output.writer().flush().await.map_err(|e| retriable("flushing", e))?;
        if let SinkOutput::File { writer, .. } = output {
            writer.sync_data().await.map_err(|e| retriable("syncing", e))?;
        }
        tracing::debug!(connector = %connector, task, file = %describe, partitions = offsets.len(),
            "file sink flushed");
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(mut output) = self.output.take() {
            output
                .writer()
                .flush()
                .await
                .map_err(|e| ConnectError::retriable(format!("flushing {} on stop", output.describe()), e))?;
            tracing::info!(connector = %self.connector, task = self.task, file = %output.describe(),
                "file sink task stopped");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;

    fn fast() -> SourceTiming {
        SourceTiming {
            poll_wait: Duration::from_millis(200),
            recheck: Duration::from_millis(10),
            recheck_max: Duration::from_millis(40),
            missing_retry: Duration::from_millis(20),
        }
    }

    fn source_context(file: &std::path::Path, offsets: Option<u64>, batch: Option<&str>) -> SourceTaskContext {
        let mut config: ConfigMap = [("file", file.to_str().expect("utf-8 path")), ("topic", "lines")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        if let Some(batch) = batch {
            config.insert("batch.size".into(), batch.into());
        }
        let mut committed = BTreeMap::new();
        if let Some(position) = offsets {
            let partition = serde_json::json!({"filename": file.to_str().expect("utf-8 path")});
            let partition = partition.as_object().expect("object").clone();
            committed.insert(
                sluice_connect_api::record::partition_key(&partition),
                serde_json::json!({"position": position}),
            );
        }
        SourceTaskContext {
            shared: Default::default(),
            connector: "src".into(),
            task: 0,
            config,
            offsets: Arc::new(committed),
        }
    }

    fn append(path: &std::path::Path, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open for append");
        f.write_all(data).expect("append");
    }

    fn lines(records: &[SourceRecord]) -> Vec<(&str, u64)> {
        records
            .iter()
            .map(|r| {
                let Value::String(s) = &r.value else { panic!("string value") };
                (s.as_str(), r.source_offset["position"].as_u64().expect("position"))
            })
            .collect()
    }

    async fn started(ctx: SourceTaskContext) -> FileStreamSourceTask {
        let mut task = FileStreamSourceTask::with_timing(fast());
        task.start(ctx).await.expect("start");
        task
    }

    #[test]
    fn task_configs_are_kafka_connects_connector_config_plus_task_class() {
        let config: ConfigMap =
            [("name", "s"), ("connector.class", "FileStreamSource"), ("file", "/tmp/x"), ("topic", "t")]
                .map(|(k, v)| (k.into(), v.into()))
                .into();
        let tasks = FileStreamSourceConnector.task_configs(&config, 5).expect("valid");
        let mut expected = config.clone();
        expected.insert("task.class".into(), "org.apache.kafka.connect.file.FileStreamSourceTask".into());
        assert_eq!(tasks, vec![expected]);
        let missing_topic: ConfigMap = [("file", "/tmp/x")].map(|(k, v)| (k.into(), v.into())).into();
        assert!(FileStreamSourceConnector.task_configs(&missing_topic, 1).is_err());
        let mut sink_task = config.clone();
        sink_task.insert("task.class".into(), "org.apache.kafka.connect.file.FileStreamSinkTask".into());
        assert_eq!(FileStreamSinkConnector.task_configs(&config, 3).expect("valid"), vec![sink_task; 3]);
    }

    #[tokio::test]
    async fn source_splits_lines_on_every_terminator_and_records_positions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        append(&path, b"a\nbb\r\nccc\rd\n\npartial");
        let mut task = started(source_context(&path, None, None)).await;
        let records = task.poll().await.expect("poll");
        assert_eq!(lines(&records), [("a", 2), ("bb", 6), ("ccc", 10), ("d", 12), ("", 13)]);
        let first = &records[0];
        assert_eq!(first.topic, "lines");
        assert_eq!(first.key, Value::Null);
        assert!(first.key_schema.is_none());
        assert!(Arc::ptr_eq(first.value_schema.as_ref().expect("schema"), &Schema::string()));
        assert!(Arc::ptr_eq(&first.source_partition, &records[1].source_partition), "partition is shared");
        assert_eq!(first.source_partition["filename"], path.to_str().expect("utf-8 path"));

        // The partial line waits for its terminator.
        assert!(task.poll().await.expect("poll").is_empty());
        append(&path, b" line\n");
        assert_eq!(lines(&task.poll().await.expect("poll")), [("partial line", 26)]);
        task.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn source_keeps_crlf_split_across_appends_as_one_terminator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        append(&path, b"one\r");
        let mut task = started(source_context(&path, None, None)).await;
        assert!(task.poll().await.expect("poll").is_empty(), "a trailing \\r waits for the next byte");
        append(&path, b"\ntwo\r");
        assert_eq!(lines(&task.poll().await.expect("poll")), [("one", 5)]);
        append(&path, b"three\n");
        assert_eq!(lines(&task.poll().await.expect("poll")), [("two", 9), ("three", 15)]);
    }

    #[tokio::test]
    async fn source_tails_appends_made_while_polling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        append(&path, b"");
        // A long poll wait: the poll must return when the line arrives, not when the wait ends.
        let patient = SourceTiming { poll_wait: Duration::from_secs(5), ..fast() };
        let mut task = FileStreamSourceTask::with_timing(patient);
        task.start(source_context(&path, None, None)).await.expect("start");
        let writer_path = path.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            append(&writer_path, b"late\n");
        });
        let started_at = std::time::Instant::now();
        let records = task.poll().await.expect("poll");
        writer.await.expect("writer");
        assert_eq!(lines(&records), [("late", 5)]);
        assert!(started_at.elapsed() < Duration::from_secs(4), "returns as soon as the line arrives");
    }

    #[tokio::test]
    async fn source_long_lines_span_reads_and_batch_size_caps_polls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        let long = "x".repeat(3 * READ_CHUNK + 17);
        let mut data = format!("{long}\n");
        for i in 0..10 {
            data.push_str(&format!("{i}\n"));
        }
        append(&path, data.as_bytes());
        let mut task = started(source_context(&path, None, Some("4"))).await;
        let mut all = Vec::new();
        loop {
            let records = task.poll().await.expect("poll");
            if records.is_empty() {
                break;
            }
            assert!(records.len() <= 4);
            all.extend(records);
        }
        assert_eq!(all.len(), 11);
        assert_eq!(all[0].value, Value::String(long.clone()));
        assert_eq!(
            all.last().expect("last").source_offset,
            serde_json::json!({"position": data.len()}),
            "offset is the byte position after the last terminator"
        );
    }

    #[tokio::test]
    async fn source_resumes_from_the_committed_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        append(&path, "héllo\nworld\n".as_bytes());
        let mut task = started(source_context(&path, Some(7), None)).await;
        assert_eq!(lines(&task.poll().await.expect("poll")), [("world", 13)]);

        let mut bad = source_context(&path, None, None);
        let partition = serde_json::json!({"filename": path.to_str().expect("utf-8 path")});
        let key = sluice_connect_api::record::partition_key(partition.as_object().expect("object"));
        bad.offsets = Arc::new([(key, serde_json::json!({"position": "seven"}))].into());
        assert!(FileStreamSourceTask::new().start(bad).await.is_err());
    }

    #[tokio::test]
    async fn source_waits_for_a_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("later.txt");
        let mut task = started(source_context(&path, None, None)).await;
        assert!(task.poll().await.expect("poll").is_empty());
        assert!(task.poll().await.expect("poll").is_empty());
        append(&path, b"here\n");
        assert_eq!(lines(&task.poll().await.expect("poll")), [("here", 5)]);
    }

    #[tokio::test]
    async fn source_poll_before_start_is_an_error() {
        assert!(FileStreamSourceTask::new().poll().await.is_err());
    }

    fn sink_record(value: Value) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key_schema: None,
            key: Value::Null,
            value_schema: None,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn sink_appends_values_as_lines_and_flush_makes_them_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.txt");
        append(&path, b"existing\n");
        let config: ConfigMap =
            [("file", path.to_str().expect("utf-8 path")), ("topics", "t")].map(|(k, v)| (k.into(), v.into())).into();
        let mut task = FileStreamSinkConnector.create_sink_task().expect("sink task");
        task.start(SinkTaskContext { connector: "sink".into(), task: 0, config }).await.expect("start");
        task.put(&[
            sink_record(Value::String("hello".into())),
            sink_record(Value::Null),
            sink_record(Value::Int64(42)),
            sink_record(Value::Map(vec![(Value::String("a".into()), Value::Boolean(true))])),
        ])
        .await
        .expect("put");
        let offsets = [(TopicPartition { topic: "t".into(), partition: 0 }, 4)].into();
        task.flush(&offsets).await.expect("flush");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "existing\nhello\nnull\n42\n{a=true}\n");
        task.put(&[sink_record(Value::String("more".into()))]).await.expect("put");
        task.stop().await.expect("stop");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "existing\nhello\nnull\n42\n{a=true}\nmore\n");
    }

    #[tokio::test]
    async fn sink_reports_an_unwritable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no-such-dir").join("out.txt");
        let config: ConfigMap =
            [("file", path.to_str().expect("utf-8 path"))].map(|(k, v)| (k.into(), v.into())).into();
        let err = FileStreamSinkTask::new()
            .start(SinkTaskContext { connector: "sink".into(), task: 0, config })
            .await
            .expect_err("cannot create");
        assert!(err.to_string().contains("couldn't find or create file"), "{err}");
    }
}
