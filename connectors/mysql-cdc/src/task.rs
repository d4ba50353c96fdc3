//! The source task: a worker reads the snapshot and then the binlog into a bounded queue (`max.queue.size`);
//! `poll` hands out batches of at most `max.batch.size`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts, OptsBuilder, Row, Value as My};
use serde_json::json;
use sluice_connect_api::connector::{CommittedOffsets, SourceTask, SourceTaskContext};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Schema, SchemaType, SourceRecord, Value, partition_key};
use sluice_connect_api::shared::{SharedState, SharedValues};
use sluice_debezium::snapshot::MarkerAssigner;
use sluice_debezium::source::SnapshotMarker;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::DEBEZIUM_VERSION;
use crate::config::{Flavor, LockingMode, MySqlSettings, SnapshotMode};
use crate::ddl;
use crate::envelope::{self, SourceInfo};
use crate::history::{HistoryEntry, Position, SchemaHistory, TableEntry};
use crate::schema_change::{self, ChangeType, TableStructure};
use crate::snapshot::{
    Chunk, ChunkQueue, ReaderMessage, RowRange, SnapshotContext, SnapshotPoint, begin_snapshot, binlog_snapshot,
    chunk_count, key_ranges, read_chunks, spawn_readers,
};
use crate::split::{self, JoinRequest, Joined, ShareDone, SnapshotPlan};
use crate::types::{self, ColumnInfo, Kind};

/// What the worker hands to `poll`.
enum Item {
    Record(Box<SourceRecord>),
    Failed(ConnectError),
}

/// Debezium's MySQL/MariaDB source task.
pub struct MySqlSourceTask {
    flavor: Flavor,
    rx: Option<mpsc::Receiver<Item>>,
    worker: Option<JoinHandle<()>>,
    settings: Option<MySqlSettings>,
    acknowledged: Arc<Mutex<Option<serde_json::Value>>>,
    partition_key: String,
    /// A task other than 0 of a split snapshot: (generation, records) of its share Kafka acknowledged.
    share_ack: Option<watch::Sender<(String, u64)>>,
    /// Set while a share waits for Kafka's acknowledgements (see [`SourceTask::commit_requested`]).
    share_waiting: Arc<std::sync::atomic::AtomicBool>,
}

impl MySqlSourceTask {
    pub fn new(flavor: Flavor) -> Self {
        MySqlSourceTask {
            flavor,
            rx: None,
            worker: None,
            settings: None,
            acknowledged: Arc::new(Mutex::new(None)),
            partition_key: String::new(),
            share_ack: None,
            share_waiting: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Why the binlog reader's channel closed: a reader that panicked (a bug) fails the task with the panic's
    /// message, never leaves it RUNNING while nothing moves.
    async fn worker_ended(&mut self) -> ConnectError {
        self.rx = None;
        let message = match self.worker.take() {
            Some(join) => match join.await {
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    let text = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "no message".into());
                    format!("the binlog reader panicked: {text}")
                }
                _ => "the binlog reader stopped".to_string(),
            },
            None => "the binlog reader stopped".to_string(),
        };
        ConnectError::Other(message)
    }
}

#[async_trait]
impl SourceTask for MySqlSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let settings = MySqlSettings::from_config(&context.config, self.flavor)?;
        let tasks = context.config.get(split::TASKS_KEY).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1);
        let split = (tasks > 1).then(|| Split { tasks, task: context.task, shared: context.shared.clone() });
        let helper = split.as_ref().is_some_and(|s| s.task > 0);
        let mut partition = serde_json::Map::new();
        partition.insert("server".into(), json!(settings.topic_prefix));
        if helper {
            // a snapshot share's records must not overwrite task 0's (Debezium's) offsets
            partition.insert("snapshot_task".into(), json!(context.task));
        }
        self.partition_key = partition_key(&partition);
        let offset = context.offset(&partition).cloned();
        let (tx, rx) = mpsc::channel(settings.max_queue_size);
        let run_id = envelope::run_id();
        let (share_tx, share_rx) = watch::channel((String::new(), 0u64));
        let worker = Worker {
            split,
            share_ack: helper.then_some(share_rx),
            share_waiting: self.share_waiting.clone(),
            share_sent: Mutex::new(None),
            joined: None,
            reported: None,
            headers: envelope::context_headers(&settings.topic_prefix, context.task, self.flavor, &run_id),
            flavor: self.flavor,
            partition: Arc::new(partition),
            tx,
            opts: opts(&settings),
            tables: HashMap::new(),
            structures: HashMap::new(),
            meta: None,
            gtids: BTreeMap::new(),
            last_row: 0,
            resume: None,
            history: SchemaHistory::in_memory(),
            s: settings.clone(),
        };
        self.settings = Some(settings);
        self.rx = Some(rx);
        if helper {
            self.share_ack = Some(share_tx);
            self.worker = Some(tokio::spawn(worker.read_shares()));
        } else {
            self.worker = Some(tokio::spawn(worker.run(offset)));
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let (Some(rx), Some(s)) = (self.rx.as_mut(), self.settings.as_ref()) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        let first = match tokio::time::timeout(s.poll_interval, rx.recv()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err(self.worker_ended().await),
            Ok(Some(item)) => item,
        };
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Record(r) => out.push(*r),
                Item::Failed(e) => {
                    if out.is_empty() {
                        return Err(e);
                    }
                    // hand out what came before; the error comes with the next poll
                    let (tx, new_rx) = mpsc::channel(1);
                    let _ = tx.try_send(Item::Failed(e));
                    self.rx = Some(new_rx);
                    return Ok(out);
                }
            }
            if out.len() >= s.max_batch_size {
                break;
            }
            next = rx.try_recv().ok();
        }
        Ok(out)
    }

    async fn commit(&mut self, committed: &CommittedOffsets) -> Result<(), ConnectError> {
        // MySQL keeps no replication state for a binlog client (unlike a PostgreSQL slot): the acknowledged position
        // is what a restart resumes from, through the offset store.
        if let (Some(offset), Some(ack)) = (committed.get(&self.partition_key), self.share_ack.as_ref()) {
            let generation = offset.get("generation").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let records = offset.get("records").and_then(|v| v.as_u64()).unwrap_or(0);
            ack.send_replace((generation, records));
            return Ok(());
        }
        if let Some(offset) = committed.get(&self.partition_key) {
            tracing::debug!(offset = %offset, "binlog position acknowledged by Kafka");
            if let Ok(mut a) = self.acknowledged.lock() {
                *a = Some(offset.clone());
            }
        }
        Ok(())
    }

    fn commit_requested(&self) -> bool {
        self.share_waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.rx = None;
        if let Some(w) = self.worker.take() {
            w.abort();
            let _ = w.await;
        }
        Ok(())
    }
}

fn opts(s: &MySqlSettings) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(s.hostname.clone())
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(s.password.clone())
        .prefer_socket(false)
        .into()
}

/// A captured table: its columns and schemas.
pub(crate) struct TableInfo {
    pub(crate) db: String,
    pub(crate) table: String,
    pub(crate) topic: String,
    pub(crate) columns: Vec<ColumnInfo>,
    kinds: Vec<Kind>,
    keep: Vec<bool>,
    /// The message key's columns: `message.key.columns`' for this table, else the primary key's.
    pub(crate) key_columns: Vec<usize>,
    /// The primary key's columns, in key order (the snapshot splits by its first).
    pub(crate) pk_columns: Vec<usize>,
    pub(crate) key_schema: Option<Arc<Schema>>,
    /// Column mappers: row field index, mapper, the column's declared length.
    mappers: Vec<(usize, sluice_debezium::mapping::Mapper, Option<usize>)>,
    /// `snapshot.select.statement.overrides.<database>.<table>`: what the snapshot reads instead of the table.
    pub(crate) snapshot_select: Option<String>,
    pub(crate) envelope: Arc<Schema>,
}

impl TableInfo {
    pub(crate) fn row(&self, values: &[My], s: &MySqlSettings, binlog: bool) -> Result<Value, ConnectError> {
        let mut out = Vec::new();
        for (i, col) in self.columns.iter().enumerate() {
            if !self.keep[i] {
                continue;
            }
            let v = values.get(i).unwrap_or(&My::NULL);
            out.push(types::convert(col, &self.kinds[i], v, &s.types, binlog).map_err(ConnectError::Data)?);
        }
        for (field, mapper, length) in &self.mappers {
            let text = match &out[*field] {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            out[*field] = match mapper.apply(text, *length) {
                Some(s) => Value::String(s),
                None => Value::Null,
            };
        }
        Ok(Value::Struct(out))
    }

    pub(crate) fn key(&self, values: &[My], s: &MySqlSettings, binlog: bool) -> Result<Value, ConnectError> {
        if self.key_schema.is_none() {
            return Ok(Value::Null);
        }
        let mut out = Vec::new();
        for &i in &self.key_columns {
            let v = values.get(i).unwrap_or(&My::NULL);
            out.push(
                types::convert(&self.columns[i], &self.kinds[i], v, &s.types, binlog).map_err(ConnectError::Data)?,
            );
        }
        Ok(Value::Struct(out))
    }
}

/// Where streaming resumes: Debezium's restart position (start of the transaction) plus events and rows to skip.
#[derive(Debug, Clone, PartialEq)]
struct Resume {
    file: String,
    pos: u64,
    skip_events: u64,
    skip_rows: u64,
}

/// Why streaming (or the snapshot) stopped.
pub(crate) enum StreamError {
    /// The connection broke: reconnect and resume.
    Transient(String),
    /// Stop the task with this error.
    Fatal(ConnectError),
    /// The queue is gone: the task is stopping.
    Closed,
}

impl From<mysql_async::Error> for StreamError {
    fn from(e: mysql_async::Error) -> Self {
        classify(e)
    }
}

fn classify(e: mysql_async::Error) -> StreamError {
    match &e {
        mysql_async::Error::Server(server) => match server.code {
            1236 => StreamError::Fatal(ConnectError::Other(format!(
                "The binlog position the connector must resume from is no longer available on the server ({}). \
                 The binlog was purged while the connector was stopped or lagging: set snapshot.mode=when_needed \
                 (or delete the connector's offsets) to take a new snapshot, and keep binlogs longer \
                 (binlog_expire_logs_seconds / expire_logs_days)",
                server.message
            ))),
            1045 | 1044 | 1142 | 1227 | 1370 => StreamError::Fatal(ConnectError::Other(format!(
                "The database user lacks a privilege the connector needs ({}): grant it SELECT, RELOAD, SHOW DATABASES, \
                 REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: BINLOG MONITOR, REPLICATION SLAVE, SELECT, RELOAD), e.g. \
                 GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'user'@'%'",
                server.message
            ))),
            1146 => StreamError::Transient(e.to_string()),
            _ if server.code >= 1000 && server.code < 2000 && server.code != 1053 && server.code != 1927 => {
                StreamError::Fatal(ConnectError::Other(format!("MySQL error {}: {}", server.code, server.message)))
            }
            _ => StreamError::Transient(e.to_string()),
        },
        _ => StreamError::Transient(e.to_string()),
    }
}

struct Worker {
    s: MySqlSettings,
    flavor: Flavor,
    headers: Vec<(String, Option<bytes::Bytes>)>,
    partition: Arc<serde_json::Map<String, serde_json::Value>>,
    tx: mpsc::Sender<Item>,
    opts: Opts,
    tables: HashMap<(String, String), Option<Arc<TableInfo>>>,
    /// The captured tables' structures at the current binlog position, which the DDL parser applies statements to.
    structures: HashMap<(String, String), TableStructure>,
    meta: Option<Conn>,
    /// The executed GTID set, per domain (MariaDB `domain-server-seq`).
    gtids: BTreeMap<u32, (u32, u64)>,
    resume: Option<Resume>,
    history: SchemaHistory,
    /// Debezium's `source.row` outside row events: its source info keeps the row number of the last row it
    /// emitted (a truncate sets 0; a new binlog file resets it), so a schema change event after a multi-row event
    /// carries that row's number (compared side by side in mysql_cdc_differential).
    last_row: i32,
    /// This task's part in a snapshot split across tasks, if any.
    split: Option<Split>,
    /// A task other than 0: what Kafka acknowledged of its share (from `commit`), what it sent, whether it waits.
    share_ack: Option<watch::Receiver<(String, u64)>>,
    share_sent: Mutex<Option<(String, u64)>>,
    share_waiting: Arc<std::sync::atomic::AtomicBool>,
    /// A task other than 0: the snapshot transactions it opened, and the generation it last reported for.
    joined: Option<JoinedSnapshot>,
    reported: Option<String>,
}

fn now_ms() -> i64 {
    envelope::now_ns() / 1_000_000
}

pub(crate) fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn parse_gtids(text: &str) -> BTreeMap<u32, (u32, u64)> {
    let mut out = BTreeMap::new();
    for part in text.split(',') {
        let mut it = part.trim().split('-');
        if let (Some(d), Some(s), Some(n)) = (it.next(), it.next(), it.next())
            && let (Ok(d), Ok(s), Ok(n)) = (d.parse(), s.parse(), n.parse())
        {
            out.insert(d, (s, n));
        }
    }
    out
}

fn render_gtids(set: &BTreeMap<u32, (u32, u64)>) -> String {
    set.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect::<Vec<_>>().join(",")
}

/// The first SQL keyword(s) of a statement, upper case.
fn statement_head(sql: &str) -> String {
    let mut s = sql.trim_start();
    // skip leading comments
    while let Some(rest) = s.strip_prefix("/*") {
        match rest.find("*/") {
            Some(end) => s = rest[end + 2..].trim_start(),
            None => break,
        }
    }
    s.chars().take(40).collect::<String>().to_ascii_uppercase()
}

/// `TRUNCATE [TABLE] [db.]t` -> (db, table).
fn truncated_table(sql: &str, default_db: &str) -> Option<(String, String)> {
    let mut words = sql.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("truncate") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("table") {
        name = words.next()?;
    }
    let name = name.trim_end_matches(';');
    let parts: Vec<String> = name.split('.').map(|p| p.trim_matches('`').to_string()).collect();
    match parts.as_slice() {
        [t] => Some((default_db.to_string(), t.clone())),
        [d, t] => Some((d.clone(), t.clone())),
        _ => None,
    }
}

impl Worker {
    async fn send(&self, record: SourceRecord) -> Result<(), StreamError> {
        self.tx.send(Item::Record(Box::new(record))).await.map_err(|_| StreamError::Closed)
    }

    async fn connect(&self) -> Result<Conn, StreamError> {
        match tokio::time::timeout(self.s.connect_timeout, Conn::new(self.opts.clone())).await {
            Err(_) => {
                Err(StreamError::Transient(format!("timed out connecting to {}:{}", self.s.hostname, self.s.port)))
            }
            Ok(r) => Ok(r?),
        }
    }

    async fn meta(&mut self) -> Result<&mut Conn, StreamError> {
        if self.meta.is_none() {
            self.meta = Some(self.connect().await?);
        }
        Ok(self.meta.as_mut().expect("just set"))
    }

    /// Reads a captured table's structure from information_schema and builds its schemas.
    async fn load_table(
        &mut self,
        conn: Option<&mut Conn>,
        db: &str,
        table: &str,
    ) -> Result<Option<Arc<TableInfo>>, StreamError> {
        if !self.s.captures(db, table) {
            return Ok(None);
        }
        let conn = match conn {
            Some(c) => c,
            None => self.meta().await?,
        };
        let structure = read_structure(conn, db, table).await?;
        if let Some(t) = &structure {
            self.structures.insert((db.to_string(), table.to_string()), t.clone());
        }
        Ok(structure.map(|t| Arc::new(self.table_info(&t))))
    }

    fn system_db(db: &str) -> bool {
        crate::config::MySqlSettings::is_system_database(db)
    }

    fn table_info(&self, structure: &TableStructure) -> TableInfo {
        let (db, table) = (structure.db.as_str(), structure.table.as_str());
        let (columns, keys) = (structure.columns.clone(), &structure.keys);
        let topic = format!("{}.{}.{}", self.s.topic_prefix, db, table);
        let kinds: Vec<Kind> = columns.iter().map(ColumnInfo::kind).collect();
        let keep: Vec<bool> =
            columns.iter().map(|c| keys.contains(&c.name) || self.s.keeps_column(db, table, &c.name)).collect();
        let schemas: Vec<Arc<Schema>> =
            columns.iter().map(|c| Arc::new(types::column_schema(c, &self.s.types))).collect();
        // Debezium's column mappers (`column.truncate.*`, `column.mask.*`), on character columns only; their fields
        // get the mapper's schema parameter.
        let mut mappers = Vec::new();
        let row_fields: Vec<(String, Arc<Schema>)> = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .enumerate()
            .map(|(field, (i, c))| {
                let text = matches!(
                    c.data_type.as_str(),
                    "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                );
                let mapper = text.then(|| self.s.mappers.mapper_for(&format!("{db}.{table}.{}", c.name))).flatten();
                let Some(m) = mapper else { return (c.name.clone(), schemas[i].clone()) };
                let length = matches!(c.data_type.as_str(), "char" | "varchar")
                    .then(|| c.column_type.split_once('(').and_then(|(_, r)| r.split_once(')')))
                    .flatten()
                    .and_then(|(n, _)| n.trim().parse::<usize>().ok());
                mappers.push((field, m.clone(), length));
                let mut schema = (*schemas[i]).clone();
                schema.parameters.get_or_insert_with(Vec::new).push(m.schema_parameter());
                (c.name.clone(), Arc::new(schema))
            })
            .collect();
        let row_schema = Arc::new(types::struct_schema(&format!("{topic}.Value"), true, row_fields));
        let pk_columns: Vec<usize> = keys.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
        let key_columns = self
            .s
            .key_columns
            .key_columns(&format!("{db}.{table}"), columns.iter().map(|c| c.name.as_str()))
            .unwrap_or_else(|| pk_columns.clone());
        let key_schema = (!key_columns.is_empty()).then(|| {
            Arc::new(types::struct_schema(
                &format!("{topic}.Key"),
                false,
                key_columns.iter().map(|&i| (columns[i].name.clone(), schemas[i].clone())).collect(),
            ))
        });
        TableInfo {
            envelope: envelope::envelope_schema(&topic, &row_schema, self.flavor),
            db: db.to_string(),
            table: table.to_string(),
            topic,
            columns,
            kinds,
            keep,
            key_columns,
            pk_columns,
            key_schema,
            mappers,
            snapshot_select: self.s.snapshot_select.get(&format!("{db}.{table}")).cloned(),
        }
    }

    async fn table(&mut self, db: &str, table: &str) -> Result<Option<Arc<TableInfo>>, StreamError> {
        let k = (db.to_string(), table.to_string());
        if let Some(t) = self.tables.get(&k) {
            return Ok(t.clone());
        }
        let t = self.load_table(None, db, table).await?;
        self.tables.insert(k, t.clone());
        Ok(t)
    }

    fn record(
        &self,
        topic: &str,
        key_schema: Option<Arc<Schema>>,
        key: Value,
        value_schema: Option<Arc<Schema>>,
        value: Value,
        offset: serde_json::Value,
    ) -> SourceRecord {
        SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: offset,
            topic: topic.to_string(),
            partition: None,
            key_schema,
            key,
            value_schema,
            value,
            timestamp: None,
            headers: if self.s.extended_headers { self.headers.clone() } else { Vec::new() },
        }
    }

    async fn run(mut self, offset: Option<serde_json::Value>) {
        // run_inner only returns on an error (streaming retries transient errors itself); one before streaming
        // (the snapshot's connection refused, say) fails the task as well, with its reason.
        let e = match self.run_inner(offset).await {
            Ok(()) | Err(StreamError::Closed) => return,
            Err(StreamError::Fatal(e)) => e,
            Err(StreamError::Transient(why)) => ConnectError::Other(why),
        };
        tracing::error!(error = %e, "MySQL CDC task failed");
        let _ = self.tx.send(Item::Failed(e)).await;
    }

    async fn run_inner(&mut self, offset: Option<serde_json::Value>) -> Result<(), StreamError> {
        if let (Some(bootstrap), Some(topic)) = (&self.s.history_bootstrap, &self.s.history_topic) {
            self.history =
                SchemaHistory::open(bootstrap, topic, &self.s.topic_prefix).await.map_err(StreamError::Fatal)?;
        } else {
            tracing::warn!(
                "schema.history.internal.kafka.topic/bootstrap.servers not set: the schema history is kept in memory \
                 only, and a restart reads table structures from the live database"
            );
        }
        let stored = offset.as_ref().and_then(|o| {
            let file = o.get("file")?.as_str()?.to_string();
            let pos = o.get("pos")?.as_u64()?;
            Some((file, pos, o))
        });
        let snapshot_incomplete = offset.as_ref().map(|o| o.get("snapshot").is_some()).unwrap_or(false);
        let mut snapshot = match self.s.snapshot_mode {
            SnapshotMode::Always => true,
            SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
                stored.is_none() || snapshot_incomplete
            }
            SnapshotMode::NoData | SnapshotMode::Recovery => false,
        };
        if !snapshot && let Some((file, pos, o)) = &stored {
            if let Some(g) = o.get("gtids").and_then(|g| g.as_str()) {
                self.gtids = parse_gtids(g);
            }
            let resume = Resume {
                file: file.clone(),
                pos: *pos,
                skip_events: o.get("event").and_then(|v| v.as_u64()).unwrap_or(0),
                skip_rows: o.get("row").and_then(|v| v.as_u64()).unwrap_or(0),
            };
            if self.s.snapshot_mode == SnapshotMode::WhenNeeded && !self.binlog_exists(&resume.file).await? {
                tracing::warn!(file = %resume.file, "stored binlog position is gone: taking a new snapshot");
                snapshot = true;
            } else {
                self.resume = Some(resume);
            }
        }
        if snapshot {
            self.snapshot().await?;
            if self.s.snapshot_mode == SnapshotMode::InitialOnly {
                tracing::info!("snapshot.mode=initial_only: snapshot done, not streaming");
                std::future::pending::<()>().await;
            }
        } else if self.resume.is_none() {
            let mut conn = self.connect().await?;
            let (file, pos) = master_status(&mut conn).await?;
            if let Some(g) = gtid_pos(&mut conn, self.flavor).await? {
                self.gtids = parse_gtids(&g);
            }
            self.resume = Some(Resume { file, pos, skip_events: 0, skip_rows: 0 });
        }
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.stream().await {
                Err(StreamError::Transient(why)) => {
                    tracing::warn!(error = %why, retry_in = ?backoff, "binlog connection lost; reconnecting");
                    self.meta = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(other) => return Err(other),
                Ok(()) => backoff = Duration::from_millis(500),
            }
        }
    }

    async fn binlog_exists(&mut self, file: &str) -> Result<bool, StreamError> {
        let conn = self.meta().await?;
        let rows: Vec<Row> = conn.query("SHOW BINARY LOGS").await?;
        Ok(rows.into_iter().any(|mut r| r.take::<String, _>(0).as_deref() == Some(file)))
    }

    /// A consistent snapshot: lock, open `snapshot.max.threads` consistent-snapshot transactions (and, split across
    /// tasks, let the other tasks open theirs: [`crate::split`]), read the binlog position and the schemas, unlock,
    /// read the rows in chunks ([`crate::snapshot`]); streaming then starts at that position.
    async fn snapshot(&mut self) -> Result<(), StreamError> {
        let mut conn = self.connect().await?;
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
        conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
        let locked = if self.s.locking_mode == LockingMode::None {
            false
        } else {
            match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
                Ok(()) => true,
                Err(e) => {
                    if self.flavor == Flavor::MariaDb {
                        // MariaDB's consistent snapshot reports its own binlog position: consistent without the lock.
                        tracing::warn!(error = %e, "FLUSH TABLES WITH READ LOCK refused; using MariaDB's binlog_snapshot position");
                        false
                    } else {
                        return Err(classify(e));
                    }
                }
            }
        };
        let (extra, file, pos) = self.open_snapshot(&mut conn, self.s.snapshot_max_threads - 1, locked).await?;
        let gtids = gtid_pos(&mut conn, self.flavor).await?;
        if let Some(g) = &gtids {
            self.gtids = parse_gtids(g);
        }
        // the captured tables and their schemas, while the lock keeps DDL out
        let names: Vec<(String, String)> = conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await?;
        let mut tables = Vec::new();
        let mut structures = Vec::new();
        for (db, table) in names {
            if Self::system_db(&db) {
                continue;
            }
            let captured = self.s.captures(&db, &table);
            // every other database's structures too: Debezium's snapshot reports them as schema changes
            if !captured && !self.s.include_schema_changes {
                continue;
            }
            let Some(structure) = read_structure(&mut conn, &db, &table).await? else { continue };
            if captured {
                let t = Arc::new(self.table_info(&structure));
                self.tables.insert((db.clone(), table.clone()), Some(t.clone()));
                self.structures.insert((db.clone(), table.clone()), structure.clone());
                tables.push(t);
            }
            structures.push((captured, structure));
        }
        let schema_events =
            if self.s.include_schema_changes { snapshot_ddl(&mut conn, &structures).await? } else { Vec::new() };
        let point = SnapshotPoint { file: file.clone(), pos, gtids: gtids.clone(), ts_sec: now_ms() / 1000 };
        // split across tasks: the others open their transactions now, while the lock holds the state still
        let split = self.split.clone();
        let join = match &split {
            Some(split) => Some(self.gather(split, &point, locked, &tables).await?),
            None => None,
        };
        if locked {
            conn.query_drop("UNLOCK TABLES").await?;
        }
        tracing::info!(%file, pos, tables = tables.len(), connections = 1 + extra.len(), "snapshot at binlog position");
        // the schema history starts with the captured tables' structures at the snapshot position
        let entry = HistoryEntry {
            position: Position { file: file.clone(), pos },
            tables: structures
                .iter()
                .filter(|(captured, _)| *captured)
                .map(|(_, t)| TableEntry { db: t.db.clone(), table: t.table.clone(), structure: Some(t.clone()) })
                .collect(),
        };
        self.history.record(entry, &point.offset(false), "", "").await.map_err(StreamError::Fatal)?;
        for (db, table, ddl, change) in schema_events {
            let source = SourceInfo {
                ts_ms: now_ms(),
                snapshot: Some("true"),
                db: db.clone(),
                table: table.clone(),
                server_id: 0,
                file: file.clone(),
                pos: pos as i64,
                ..Default::default()
            };
            let changes: Vec<_> = change
                .iter()
                .map(|(t, structure)| (*t, db.clone(), table.clone().unwrap_or_default(), structure.as_ref()))
                .collect();
            let value = schema_change::value(
                source.value(self.flavor, &self.s.topic_prefix, DEBEZIUM_VERSION),
                &db,
                &ddl,
                &changes,
            );
            let rec = self.record(
                &self.s.topic_prefix,
                Some(schema_change::key_schema(self.flavor)),
                schema_change::key(&db),
                Some(schema_change::value_schema(self.flavor)),
                value,
                point.offset(false),
            );
            self.send(rec).await?;
        }
        // who reads what: task 0 and the tasks that joined, round robin over the chunks
        let members: BTreeMap<u32, Joined> = join.as_ref().map(|(_, m)| m.clone()).unwrap_or_default();
        if let (Some(split), Some((generation, _))) = (&split, &join) {
            // every task says it follows this generation only once Kafka has what it read for an older one
            wait_for_tasks(&split.shared, "to report for the new snapshot", |v| {
                split::not_reported(v, generation, split.tasks)
            })
            .await?;
        }
        let connections = 1 + extra.len() + members.values().map(|j| j.connections).sum::<usize>();
        let chunks = self.plan_chunks(&mut conn, &tables, connections).await?;
        let mut order = vec![0u32];
        order.extend(members.keys().copied());
        let mut shares = split::deal(chunks, &order);
        let own = shares.remove(&0).unwrap_or_default();
        let plan = join.map(|(generation, members)| SnapshotPlan {
            generation,
            members: members.into_iter().map(|(t, j)| (t, j.id)).collect(),
            chunks: shares,
        });
        if let (Some(split), Some(plan)) = (&split, &plan) {
            let value = serde_json::to_value(plan)
                .map_err(|e| StreamError::Fatal(ConnectError::Other(format!("snapshot plan: {e}"))))?;
            split.shared.put(split::PLAN_KEY, value);
            tracing::info!(generation = %plan.generation, members = ?plan.members.keys().collect::<Vec<_>>(),
                chunks = own.len() + plan.chunks.values().map(Vec::len).sum::<usize>(), "snapshot plan published");
        }
        let ctx = Arc::new(SnapshotContext {
            tables,
            settings: self.s.clone(),
            flavor: self.flavor,
            partition: self.partition.clone(),
            headers: self.headers.clone(),
            point,
        });
        let hold_last = plan.is_some();
        let (mut extra, total, last) =
            self.read_and_emit(&mut conn, extra, own, &ctx, EmitMode::Markers { hold_last }).await?;
        if let (Some(split), Some(plan)) = (&split, &plan) {
            self.await_shares(split, plan, &mut conn, &mut extra, &ctx).await?;
            if let Some(last) = last {
                self.send(last).await?;
            }
        }
        for mut c in extra {
            let _ = c.query_drop("COMMIT").await;
            let _ = c.disconnect().await;
        }
        conn.query_drop("COMMIT").await?;
        let _ = conn.disconnect().await;
        tracing::info!(rows = total, "snapshot completed");
        self.resume = Some(Resume { file, pos, skip_events: 0, skip_rows: 0 });
        Ok(())
    }

    /// Opens the snapshot transaction on `conn` and on `more` new connections, and returns those and the binlog
    /// position the snapshot is at. Under the global read lock every transaction sees the locked state. Without
    /// it (MariaDB), they are used only if their `binlog_snapshot_file/position` all agree; after a few attempts
    /// the snapshot is read on `conn` alone (MySQL tells no such position: one connection at once).
    async fn open_snapshot(
        &self,
        conn: &mut Conn,
        more: usize,
        locked: bool,
    ) -> Result<(Vec<Conn>, String, u64), StreamError> {
        const ATTEMPTS: usize = 5;
        let mut extra = Vec::with_capacity(more);
        if more > 0 && !locked && self.flavor == Flavor::MySql {
            tracing::warn!(
                threads = more + 1,
                "without the global read lock MySQL tells no connection's snapshot position: reading the snapshot on one connection"
            );
        } else {
            for _ in 0..more {
                let mut c = self.connect().await?;
                c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                c.query_drop("SET SESSION time_zone = '+00:00'").await?;
                extra.push(c);
            }
        }
        let mut attempt = 0;
        loop {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
            for c in extra.iter_mut() {
                c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
            }
            let (mut file, mut pos) = master_status(conn).await?;
            if self.flavor == Flavor::MariaDb
                && let Some((f, p)) = binlog_snapshot(conn).await?
            {
                (file, pos) = (f, p);
            }
            if locked || extra.is_empty() {
                return Ok((extra, file, pos));
            }
            let mut agree = true;
            for c in extra.iter_mut() {
                if binlog_snapshot(c).await?.as_ref() != Some(&(file.clone(), pos)) {
                    agree = false;
                    break;
                }
            }
            if agree {
                tracing::info!(connections = extra.len() + 1, %file, pos, "snapshot connections agree on the binlog position (no lock)");
                return Ok((extra, file, pos));
            }
            attempt += 1;
            conn.query_drop("ROLLBACK").await?;
            for c in extra.iter_mut() {
                c.query_drop("ROLLBACK").await?;
            }
            if attempt >= ATTEMPTS {
                tracing::warn!(
                    threads = extra.len() + 1,
                    attempts = attempt,
                    "without the global read lock the snapshot connections saw different binlog positions (writes \
                     in between) {attempt} times: reading the snapshot on one connection"
                );
                for c in extra.drain(..) {
                    let _ = c.disconnect().await;
                }
            }
        }
    }

    /// Task 0 of a split snapshot, holding the lock (if any): publishes the join request and waits (at most
    /// `sluice.snapshot.join.timeout.ms`) for the other tasks to report. Returns the generation and the tasks that
    /// joined.
    async fn gather(
        &self,
        split: &Split,
        point: &SnapshotPoint,
        locked: bool,
        tables: &[Arc<TableInfo>],
    ) -> Result<(String, BTreeMap<u32, Joined>), StreamError> {
        let generation = envelope::run_id();
        let request = JoinRequest {
            generation: generation.clone(),
            point: point.clone(),
            locked,
            tables: tables.iter().map(|t| (t.db.clone(), t.table.clone())).collect(),
        };
        let value = serde_json::to_value(&request)
            .map_err(|e| StreamError::Fatal(ConnectError::Other(format!("snapshot join request: {e}"))))?;
        split.shared.put(split::JOIN_KEY, value);
        tracing::info!(%generation, tasks = split.tasks, locked, "snapshot join request published");
        let deadline = tokio::time::Instant::now() + self.s.snapshot_join_timeout;
        let mut values = split.shared.watch();
        let current = loop {
            let current = values.borrow_and_update().clone().unwrap_or_default();
            let missing = split::not_reported(&current, &generation, split.tasks);
            if missing.is_empty() {
                break current;
            }
            match tokio::time::timeout_at(deadline, values.changed()).await {
                Err(_) => {
                    tracing::warn!(%generation, tasks = ?missing, timeout = ?self.s.snapshot_join_timeout,
                        "tasks did not join the snapshot within sluice.snapshot.join.timeout.ms: the others read their part");
                    break current;
                }
                Ok(Err(_)) => {
                    return Err(StreamError::Fatal(ConnectError::Other(
                        "the connector's shared state was closed".into(),
                    )));
                }
                Ok(Ok(())) => {}
            }
        };
        let members: BTreeMap<u32, Joined> = (1..split.tasks as u32)
            .filter_map(|t| split::joined(&current, t).map(|j| (t, j)))
            .filter(|(_, j)| j.generation == generation && j.connections > 0)
            .collect();
        tracing::info!(%generation, members = ?members.keys().collect::<Vec<_>>(), "tasks joined the snapshot");
        Ok((generation, members))
    }

    /// Task 0 of a split snapshot: waits until every member's share is done, reading the shares handed back
    /// (their transactions were lost) on its own connections, which see the same state.
    async fn await_shares(
        &self,
        split: &Split,
        plan: &SnapshotPlan,
        conn: &mut Conn,
        extra: &mut Vec<Conn>,
        ctx: &Arc<SnapshotContext>,
    ) -> Result<(), StreamError> {
        let mut reread = std::collections::BTreeSet::new();
        let mut values = split.shared.watch();
        let mut last_log = tokio::time::Instant::now();
        loop {
            let current = values.borrow_and_update().clone().unwrap_or_default();
            let handed: Vec<u32> =
                split::handed_back(&current, plan).into_iter().filter(|t| !reread.contains(t)).collect();
            for &t in &handed {
                let chunks = plan.chunks.get(&t).cloned().unwrap_or_default();
                tracing::warn!(
                    task = t,
                    chunks = chunks.len(),
                    "a task handed its snapshot share back: reading it here"
                );
                let (conns, records, _) =
                    self.read_and_emit(conn, std::mem::take(extra), chunks, ctx, EmitMode::Plain).await?;
                *extra = conns;
                tracing::info!(task = t, records, "snapshot share handed back was read");
                reread.insert(t);
            }
            if !handed.is_empty() {
                continue;
            }
            let pending = split::pending_shares(&current, plan);
            if pending.is_empty() {
                tracing::info!(generation = %plan.generation, "every snapshot share is done");
                return Ok(());
            }
            if last_log.elapsed() >= Duration::from_secs(30) {
                tracing::info!(tasks = ?pending, "waiting for other tasks to finish their snapshot shares");
                last_log = tokio::time::Instant::now();
            }
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(30), values.changed()).await {
                return Err(StreamError::Fatal(ConnectError::Other("the connector's shared state was closed".into())));
            }
        }
    }

    /// The chunks to read, table by table: whole tables on one connection; with more, each large table in ranges
    /// of its single integer primary key (a table without one is read whole by one connection).
    async fn plan_chunks(
        &self,
        conn: &mut Conn,
        tables: &[Arc<TableInfo>],
        connections: usize,
    ) -> Result<Vec<Chunk>, StreamError> {
        let mut chunks = Vec::new();
        for (table, t) in tables.iter().enumerate() {
            let ranges = if connections > 1 { split_table(conn, t, connections).await? } else { vec![RowRange::All] };
            chunks.extend(ranges.into_iter().map(|range| Chunk { table, range }));
        }
        Ok(chunks)
    }

    /// Reads `chunks` on `conn` and the `extra` connections and hands the records to the task's queue; returns the
    /// extra connections (for more reading in the same transactions), how many records it sent and, with
    /// `hold_last`, the record marked `last`, not sent.
    async fn read_and_emit(
        &self,
        conn: &mut Conn,
        mut extra: Vec<Conn>,
        chunks: Vec<Chunk>,
        ctx: &Arc<SnapshotContext>,
        mode: EmitMode,
    ) -> Result<(Vec<Conn>, u64, Option<SourceRecord>), StreamError> {
        let mut chunks_left = vec![0usize; ctx.tables.len()];
        for c in &chunks {
            chunks_left[c.table] += 1;
        }
        let readers = (extra.len() + 1).min(chunks.len()).max(1);
        let spare = extra.split_off(readers - 1);
        tracing::info!(chunks = chunks.len(), readers, "reading snapshot chunks");
        let queue: ChunkQueue = Arc::new(std::sync::Mutex::new(chunks.into()));
        // Bounded: a reader that is ahead waits; with the task's queue (max.queue.size) this bounds memory.
        let (tx, mut rx) = mpsc::channel::<ReaderMessage>(readers * 2);
        let mut workers = spawn_readers(extra, ctx, &queue, &tx);
        let (ctx_ref, queue_ref) = (&**ctx, &queue);
        let inline = async move {
            if let Err(e) = read_chunks(conn, ctx_ref, queue_ref, &tx).await {
                let _ = tx.send(ReaderMessage::Failed(e)).await;
            }
        };
        // `move`: an emitter that fails drops the receiver, which stops the readers (else they would wait on a
        // full channel forever)
        let emit = async move {
            let mut markers = MarkerAssigner::default();
            let mut sent = 0u64;
            while let Some(m) = rx.recv().await {
                match m {
                    ReaderMessage::Rows { table, records } => match &mode {
                        EmitMode::Markers { .. } => {
                            for (r, marker) in markers.push(table, records) {
                                self.send(mark(r, marker)).await?;
                                sent += 1;
                            }
                        }
                        EmitMode::Plain => {
                            for r in records {
                                self.send(r).await?;
                                sent += 1;
                            }
                        }
                        EmitMode::Share { generation } => {
                            // a share's records are all `source.snapshot=true`; the offset counts them, so `commit`
                            // tells when Kafka has every one
                            for mut r in records {
                                sent += 1;
                                r.source_offset = json!({"generation": generation, "records": sent});
                                self.send(r).await?;
                                // exactly what is in the queue: what a wait for Kafka's acknowledgements waits for
                                if let Ok(mut s) = self.share_sent.lock() {
                                    *s = Some((generation.clone(), sent));
                                }
                            }
                        }
                    },
                    ReaderMessage::ChunkDone { table } => {
                        chunks_left[table] -= 1;
                        if chunks_left[table] == 0 {
                            markers.table_done(table);
                        }
                    }
                    ReaderMessage::Failed(e) => return Err(e),
                }
            }
            if chunks_left.iter().any(|&n| n > 0) {
                return Err(StreamError::Transient("a snapshot reader stopped before reading its chunks".into()));
            }
            let mut last = None;
            if let EmitMode::Markers { hold_last } = mode {
                let mut rest = markers.finish();
                if let Some((r, marker)) = rest.pop() {
                    for (r, marker) in rest {
                        self.send(mark(r, marker)).await?;
                        sent += 1;
                    }
                    let mut r = mark(r, marker);
                    // Debezium's completeSnapshot marks the final record `last`, whatever it was (even a lone
                    // first); its offset says the snapshot is complete
                    r.source_offset = ctx.point.offset(true);
                    sent += 1;
                    if hold_last {
                        last = Some(r);
                    } else {
                        self.send(r).await?;
                    }
                }
            }
            Ok(last.map_or((sent, None), |l| (sent, Some(l))))
        };
        // An error ends the snapshot: dropping the join set aborts the other readers.
        let ((), emitted) = tokio::join!(inline, emit);
        let (sent, last) = emitted?;
        let mut conns = spare;
        while let Some(done) = workers.join_next().await {
            if let Ok(c) = done {
                conns.push(c);
            }
        }
        Ok((conns, sent, last))
    }

    fn stream_offset(&self, ts_sec: i64, resume: &Resume, gtids: &str, server_id: u32) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("ts_sec".into(), json!(ts_sec));
        o.insert("file".into(), json!(resume.file));
        o.insert("pos".into(), json!(resume.pos));
        if !gtids.is_empty() {
            o.insert("gtids".into(), json!(gtids));
        }
        if resume.skip_rows > 0 {
            o.insert("row".into(), json!(resume.skip_rows));
        }
        o.insert("server_id".into(), json!(server_id));
        if resume.skip_events > 0 {
            o.insert("event".into(), json!(resume.skip_events));
        }
        serde_json::Value::Object(o)
    }

    async fn heartbeat(&self, ts_sec: i64, server_id: u32) -> Result<(), StreamError> {
        let Some(resume) = &self.resume else { return Ok(()) };
        let offset = self.stream_offset(ts_sec, resume, &render_gtids(&self.gtids), server_id);
        let key = Value::Struct(vec![Value::String(self.s.topic_prefix.clone())]);
        let value = Value::Struct(vec![Value::Int64(now_ms())]);
        let mut rec = self.record(
            &self.s.heartbeat_topic,
            Some(envelope::heartbeat_key_schema()),
            key,
            Some(envelope::heartbeat_value_schema()),
            value,
            offset,
        );
        // Debezium's heartbeats carry no context headers
        rec.headers.clear();
        self.send(rec).await
    }

    /// Streams the binlog from `self.resume` until the connection breaks or the task stops.
    async fn stream(&mut self) -> Result<(), StreamError> {
        let start =
            self.resume.clone().ok_or_else(|| StreamError::Fatal(ConnectError::Other("no binlog position".into())))?;
        // the structures in force at the start position, from the history (the rest is read when first met)
        self.tables.clear();
        self.structures.clear();
        let at = Position { file: start.file.clone(), pos: start.pos };
        let seeded: Vec<TableStructure> =
            self.history.structures_at(&at).into_iter().filter_map(|e| e.structure.clone()).collect();
        for t in seeded {
            if self.s.captures(&t.db, &t.table) {
                let info = Arc::new(self.table_info(&t));
                self.tables.insert((t.db.clone(), t.table.clone()), Some(info));
                self.structures.insert((t.db.clone(), t.table.clone()), t);
            }
        }
        let mut conn = self.connect().await?;
        let row_format: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_format").await?;
        if let Some(f) = row_format
            && !f.eq_ignore_ascii_case("ROW")
        {
            return Err(StreamError::Fatal(ConnectError::Other(format!(
                "The MySQL server is not configured to use a ROW binlog_format (it is {f}), which is required \
                     for this connector to work properly. Change the MySQL configuration to use binlog_format=ROW \
                     and restart the connector."
            ))));
        }
        if self.flavor == Flavor::MariaDb || conn.server_version() >= (10, 0, 0) {
            conn.query_drop("SET @mariadb_slave_capability = 4").await?;
        }
        conn.query_drop("SET @master_heartbeat_period = 5000000000").await?;
        let checksum: Option<String> = conn.query_first("SELECT @@GLOBAL.binlog_checksum").await.unwrap_or(None);
        let checksums = checksum.map(|c| !c.eq_ignore_ascii_case("NONE")).unwrap_or(false);
        let mut seen_fde = false;
        tracing::info!(file = %start.file, pos = start.pos, skip_events = start.skip_events, skip_rows = start.skip_rows, "streaming binlog");
        let request =
            BinlogStreamRequest::new(self.s.server_id).with_filename(start.file.as_bytes()).with_pos(start.pos);
        let mut stream = conn.get_binlog_stream(request).await?;

        let mut file = start.file.clone();
        // the first transaction after the start position may be partly delivered already
        let mut skipping = start.skip_events > 0 || start.skip_rows > 0;
        let mut txn_start = start.pos;
        let mut txn_gtid: Option<(u32, u32, u64)> = None;
        let mut in_txn = false;
        let mut rows_events = 0u64;
        let mut txn_meta: Option<TxnMeta> = None;
        let mut last_server_id = 0u32;
        let mut last_ts = 0i64;
        let mut heartbeat_due = self.s.heartbeat_interval.map(|i| tokio::time::Instant::now() + i);
        let idle_limit = Duration::from_secs(30);
        let mut last_event = tokio::time::Instant::now();
        let mut table_names: HashMap<u64, (String, String)> = HashMap::new();

        loop {
            let wait = self.s.poll_interval.max(Duration::from_millis(100));
            let event = match tokio::time::timeout(wait, stream.next()).await {
                Err(_) => {
                    if self.tx.is_closed() {
                        return Err(StreamError::Closed);
                    }
                    if last_event.elapsed() > idle_limit {
                        return Err(StreamError::Transient("no binlog event or heartbeat for 30 s".into()));
                    }
                    if let Some(due) = heartbeat_due
                        && tokio::time::Instant::now() >= due
                        && !in_txn
                    {
                        // `heartbeat.action.query` (Debezium's DatabaseHeartbeatImpl): run on every beat.
                        if let Some(q) = self.s.heartbeat_action_query.clone() {
                            let conn = self.meta().await?;
                            conn.query_drop(&q).await.map_err(|e| match e {
                                // The server refused the statement: retrying will not help (Debezium fails too).
                                mysql_async::Error::Server(se) => StreamError::Fatal(ConnectError::Other(format!(
                                    "heartbeat.action.query {q:?} failed: MySQL error {}: {}; fix the statement or \
                                     remove heartbeat.action.query",
                                    se.code, se.message
                                ))),
                                other => StreamError::from(other),
                            })?;
                        }
                        self.heartbeat(last_ts, last_server_id).await?;
                        heartbeat_due = self.s.heartbeat_interval.map(|i| tokio::time::Instant::now() + i);
                    }
                    continue;
                }
                Ok(None) => return Err(StreamError::Transient("the server ended the binlog stream".into())),
                Ok(Some(Err(e))) => return Err(classify(e)),
                Ok(Some(Ok(ev))) => ev,
            };
            last_event = tokio::time::Instant::now();
            let header = ev_header(&event);
            let (ts, server_id, log_pos, size, type_raw) = header;
            let event_start = log_pos.saturating_sub(size) as u64;
            if type_raw == 162 {
                // MariaDB GTID event: seq_no u64, domain u32, flags u8
                let d = event.data();
                if d.len() >= 13 {
                    let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
                    let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or_default());
                    let flags = d[12];
                    txn_gtid = Some((domain, server_id, seq));
                    in_txn = flags & 1 == 0;
                    txn_start = event_start;
                    rows_events = 0;
                }
                continue;
            }
            let data = match event.read_data() {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    return Err(StreamError::Fatal(ConnectError::Other(format!(
                        "cannot decode binlog event of type {type_raw} at {file}:{event_start}: {e}"
                    ))));
                }
            };
            if ts > 0 {
                last_ts = ts as i64;
            }
            if server_id > 0 {
                last_server_id = server_id;
            }
            match data {
                EventData::RotateEvent(r) => {
                    let mut name = r.name_raw();
                    if !seen_fde && checksums && name.len() > 4 {
                        // the artificial ROTATE that opens the stream comes before the FORMAT_DESCRIPTION that tells
                        // the reader about checksums, so its CRC32 is still at the end of the name
                        name = &name[..name.len() - 4];
                    }
                    file = String::from_utf8_lossy(name).into_owned();
                    self.last_row = 0;
                    if !r.is_fake() || r.position() > 4 {
                        txn_start = r.position();
                    }
                    if !skipping {
                        self.resume =
                            Some(Resume { file: file.clone(), pos: r.position(), skip_events: 0, skip_rows: 0 });
                    }
                }
                EventData::QueryEvent(q) => {
                    let sql = q.query().to_string();
                    let head = statement_head(&sql);
                    if head.starts_with("BEGIN") || head.starts_with("XA START") {
                        if txn_gtid.is_none() {
                            txn_start = event_start;
                            rows_events = 0;
                        }
                        in_txn = true;
                        continue;
                    }
                    if head.starts_with("COMMIT") || head.starts_with("XA COMMIT") || head.starts_with("ROLLBACK") {
                        self.end_txn(&mut txn_meta, ts).await?;
                        self.txn_end(&file, log_pos as u64, &mut txn_gtid, &mut in_txn, &mut skipping);
                        continue;
                    }
                    // DDL or other statement
                    let db = q.schema().to_string();
                    if head.starts_with("TRUNCATE")
                        && let Some((tdb, tname)) = truncated_table(&sql, &db)
                        && !self.s.skipped_operations.contains(&'t')
                        && let Some(t) = self.table(&tdb, &tname).await?
                    {
                        self.last_row = 0;
                        let source = SourceInfo {
                            ts_ms: ts as i64 * 1000,
                            db: tdb.clone(),
                            table: Some(tname.clone()),
                            server_id: server_id as i64,
                            gtid: txn_gtid.map(|(d, s, n)| format!("{d}-{s}-{n}")),
                            file: file.clone(),
                            pos: event_start as i64,
                            ..Default::default()
                        };
                        let value = envelope::envelope_value(
                            Value::Null,
                            Value::Null,
                            source.value(self.flavor, &self.s.topic_prefix, DEBEZIUM_VERSION),
                            Value::Null,
                            "t",
                        );
                        let after_ddl =
                            Resume { file: file.clone(), pos: log_pos as u64, skip_events: 0, skip_rows: 0 };
                        let offset = self.stream_offset(
                            ts as i64,
                            &after_ddl,
                            &render_gtids(&self.gtids_after(txn_gtid)),
                            server_id,
                        );
                        let rec = self.record(&t.topic, None, Value::Null, Some(t.envelope.clone()), value, offset);
                        self.send(rec).await?;
                    }
                    if is_ddl(&head)
                        && !in_txn
                        && self.s.provide_transaction_metadata
                        && self.s.include_schema_changes
                        && self.s.databases.matches(&db)
                        && let Some((d, sid, n)) = txn_gtid
                    {
                        // Debezium opens a transaction (BEGIN, never an END) for the schema change event of a DDL
                        let id = format!("{d}-{sid}-{n}");
                        if txn_meta.as_ref().map(|m| m.id != id).unwrap_or(true) {
                            let m = TxnMeta::new(id);
                            let at = Resume { file: file.clone(), pos: log_pos as u64, skip_events: 0, skip_rows: 0 };
                            let offset = self.stream_offset(ts as i64, &at, &render_gtids(&self.gtids), server_id);
                            self.send(self.txn_record("BEGIN", &m, ts as i64, offset)).await?;
                            txn_meta = Some(m);
                        }
                    }
                    if !head.starts_with("TRUNCATE") && is_ddl(&head) {
                        let gtid = txn_gtid.map(|(d, s, n)| format!("{d}-{s}-{n}"));
                        let after_ddl =
                            Resume { file: file.clone(), pos: log_pos as u64, skip_events: 0, skip_rows: 0 };
                        let offset = self.stream_offset(
                            ts as i64,
                            &after_ddl,
                            &render_gtids(&self.gtids_after(txn_gtid)),
                            server_id,
                        );
                        let at = Position { file: file.clone(), pos: event_start };
                        let ddl = DdlEvent { sql: &sql, db: &db, ts, server_id, gtid, at, offset };
                        self.schema_change(ddl).await?;
                    }
                    if !in_txn {
                        self.txn_end(&file, log_pos as u64, &mut txn_gtid, &mut in_txn, &mut skipping);
                    }
                }
                EventData::XidEvent(_) => {
                    self.end_txn(&mut txn_meta, ts).await?;
                    self.txn_end(&file, log_pos as u64, &mut txn_gtid, &mut in_txn, &mut skipping);
                }
                EventData::FormatDescriptionEvent(_) => seen_fde = true,
                EventData::TableMapEvent(tme) => {
                    table_names.insert(tme.table_id(), (tme.database_name().to_string(), tme.table_name().to_string()));
                }
                EventData::RowsEvent(rows) => {
                    let index = rows_events;
                    rows_events += 1;
                    if skipping && index < start.skip_events {
                        continue;
                    }
                    let skip_rows = if skipping && index == start.skip_events { start.skip_rows } else { 0 };
                    let Some((db, tname)) = table_names.get(&rows.table_id()).cloned() else { continue };
                    let Some(t) = self.table(&db, &tname).await? else { continue };
                    let Some(tme) = stream.get_tme(rows.table_id()) else { continue };
                    if tme.columns_count() as usize != t.columns.len() {
                        return Err(StreamError::Fatal(ConnectError::Other(format!(
                            "binlog row event of {db}.{tname} at {file}:{event_start} has {} columns but the structure \
                             known for it has {}: the table changed again after this event was written, and neither the \
                             schema history (schema.history.internal.kafka.topic) nor the live database has the structure \
                             in force at this position. Restart from a new snapshot (snapshot.mode=when_needed after \
                             deleting the offsets)",
                            tme.columns_count(),
                            t.columns.len()
                        ))));
                    }
                    let op = match &rows {
                        RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => 'c',
                        RowsEventData::UpdateRowsEvent(_)
                        | RowsEventData::UpdateRowsEventV1(_)
                        | RowsEventData::PartialUpdateRowsEvent(_) => 'u',
                        _ => 'd',
                    };
                    let gtid = txn_gtid.map(|(d, s, n)| format!("{d}-{s}-{n}"));
                    let gtids_before = render_gtids(&self.gtids);
                    let mut out = Vec::new();
                    for (row_index, row) in rows.rows(tme).enumerate() {
                        let (before, after) = row.map_err(|e| {
                            StreamError::Fatal(ConnectError::Other(format!(
                                "cannot decode rows of {db}.{tname} at {file}:{event_start}: {e}"
                            )))
                        })?;
                        if (row_index as u64) < skip_rows || self.s.skipped_operations.contains(&op) {
                            continue;
                        }
                        let before = before.map(|r| binlog_values(r, t.columns.len()));
                        let after = after.map(|r| binlog_values(r, t.columns.len()));
                        out.push((row_index, before, after));
                    }
                    let ev_resume_file = file.clone();
                    for (row_index, before, after) in out {
                        let resume = Resume {
                            file: ev_resume_file.clone(),
                            pos: txn_start,
                            skip_events: index,
                            skip_rows: row_index as u64 + 1,
                        };
                        let offset = self.stream_offset(ts as i64, &resume, &gtids_before, server_id);
                        let source = SourceInfo {
                            ts_ms: ts as i64 * 1000,
                            db: db.clone(),
                            table: Some(tname.clone()),
                            server_id: server_id as i64,
                            gtid: gtid.clone(),
                            file: file.clone(),
                            pos: event_start as i64,
                            row: row_index as i32,
                            ..Default::default()
                        };
                        self.last_row = row_index as i32;
                        let source_value = source.value(self.flavor, &self.s.topic_prefix, DEBEZIUM_VERSION);
                        let conv = |v: &Option<Vec<My>>| -> Result<(Value, Value), StreamError> {
                            match v {
                                None => Ok((Value::Null, Value::Null)),
                                Some(vals) => Ok((
                                    t.key(vals, &self.s, true).map_err(StreamError::Fatal)?,
                                    t.row(vals, &self.s, true).map_err(StreamError::Fatal)?,
                                )),
                            }
                        };
                        let (before_key, before_row) = conv(&before)?;
                        let (after_key, after_row) = conv(&after)?;
                        let txn_id = gtid.clone().unwrap_or_else(|| format!("file={file},pos={txn_start}"));
                        let block = |meta: &mut Option<TxnMeta>, collection: &str| -> Value {
                            match meta {
                                Some(m) => m.block(collection),
                                None => Value::Null,
                            }
                        };
                        if self.s.provide_transaction_metadata
                            && txn_meta.as_ref().map(|m| m.id != txn_id).unwrap_or(true)
                        {
                            let m = TxnMeta::new(txn_id.clone());
                            self.send(self.txn_record("BEGIN", &m, ts as i64, offset.clone())).await?;
                            txn_meta = Some(m);
                        }
                        let collection = format!("{db}.{tname}");
                        match op {
                            'c' => {
                                let tb = block(&mut txn_meta, &collection);
                                let value = envelope::envelope_value(Value::Null, after_row, source_value, tb, "c");
                                let rec = self.record(
                                    &t.topic,
                                    t.key_schema.clone(),
                                    after_key,
                                    Some(t.envelope.clone()),
                                    value,
                                    offset,
                                );
                                self.send(rec).await?;
                            }
                            'u' if before_key != after_key && t.key_schema.is_some() => {
                                // a primary-key change: delete (+ tombstone) of the old key, create of the new
                                let tb = block(&mut txn_meta, &collection);
                                let del =
                                    envelope::envelope_value(before_row, Value::Null, source_value.clone(), tb, "d");
                                let newkey = key_header(&after_key, &t);
                                let oldkey = key_header(&before_key, &t);
                                let mut rec = self.record(
                                    &t.topic,
                                    t.key_schema.clone(),
                                    before_key.clone(),
                                    Some(t.envelope.clone()),
                                    del,
                                    offset.clone(),
                                );
                                rec.headers.insert(0, ("__debezium.newkey".into(), Some(newkey.clone().into())));
                                self.send(rec).await?;
                                if self.s.tombstones_on_delete {
                                    let mut tomb = self.record(
                                        &t.topic,
                                        t.key_schema.clone(),
                                        before_key,
                                        None,
                                        Value::Null,
                                        offset.clone(),
                                    );
                                    tomb.headers.insert(0, ("__debezium.newkey".into(), Some(newkey.into())));
                                    self.send(tomb).await?;
                                }
                                let tb = block(&mut txn_meta, &collection);
                                let create = envelope::envelope_value(Value::Null, after_row, source_value, tb, "c");
                                let mut rec = self.record(
                                    &t.topic,
                                    t.key_schema.clone(),
                                    after_key,
                                    Some(t.envelope.clone()),
                                    create,
                                    offset,
                                );
                                rec.headers.insert(0, ("__debezium.oldkey".into(), Some(oldkey.into())));
                                self.send(rec).await?;
                            }
                            'u' => {
                                let tb = block(&mut txn_meta, &collection);
                                let value = envelope::envelope_value(before_row, after_row, source_value, tb, "u");
                                let rec = self.record(
                                    &t.topic,
                                    t.key_schema.clone(),
                                    after_key,
                                    Some(t.envelope.clone()),
                                    value,
                                    offset,
                                );
                                self.send(rec).await?;
                            }
                            _ => {
                                let tb = block(&mut txn_meta, &collection);
                                let value = envelope::envelope_value(before_row, Value::Null, source_value, tb, "d");
                                let rec = self.record(
                                    &t.topic,
                                    t.key_schema.clone(),
                                    before_key.clone(),
                                    Some(t.envelope.clone()),
                                    value,
                                    offset.clone(),
                                );
                                self.send(rec).await?;
                                if self.s.tombstones_on_delete {
                                    let tomb = self.record(
                                        &t.topic,
                                        t.key_schema.clone(),
                                        before_key,
                                        None,
                                        Value::Null,
                                        offset,
                                    );
                                    self.send(tomb).await?;
                                }
                            }
                        }
                        self.resume = Some(resume);
                    }
                }
                _ => {}
            }
        }
    }

    /// A DDL statement of the binlog: the affected tables' structures (from the history when an earlier run
    /// recorded this statement, else from information_schema now, then recorded), and the schema change event.
    async fn schema_change(&mut self, ddl: DdlEvent<'_>) -> Result<(), StreamError> {
        let changes = schema_change::ddl_tables(ddl.sql, ddl.db);
        let database = schema_change::ddl_database(ddl.sql, ddl.db, &changes);
        // whether the statement's effect on the tables is known (recorded or parsed); else caches are dropped
        let mut understood = true;
        let structures: Vec<TableEntry> = match self.history.entry_at(&ddl.at) {
            Some(recorded) => recorded.tables.clone(),
            None => {
                let parsed = ddl::apply(ddl.sql, ddl.db, &self.structures, self.flavor == Flavor::MariaDb);
                let out = match parsed {
                    ddl::Outcome::Applied(mut entries) => {
                        // a created table without a character set of its own has its database's
                        for e in entries.iter_mut() {
                            if let Some(t) = e.structure.as_mut()
                                && t.charset.is_none()
                                && let Some(cs) = database_charset(self.meta().await?, &t.db).await?
                            {
                                ddl::inherit_charset(t, &cs);
                            }
                        }
                        entries
                    }
                    ddl::Outcome::Unsupported(why) => {
                        understood = false;
                        if changes.iter().any(|(_, db, table)| self.s.captures(db, table)) || changes.is_empty() {
                            tracing::warn!(ddl = %ddl.sql, reason = %why, "DDL statement not parsed: the structures of its tables are read from information_schema now");
                        } else {
                            tracing::debug!(ddl = %ddl.sql, reason = %why, "DDL statement of tables not captured not parsed");
                        }
                        let mut out = Vec::new();
                        for (t, db, table) in &changes {
                            let structure = match t {
                                ChangeType::Drop => None,
                                _ => read_structure(self.meta().await?, db, table).await?,
                            };
                            out.push(TableEntry { db: db.clone(), table: table.clone(), structure });
                        }
                        out
                    }
                };
                let captured: Vec<TableEntry> =
                    out.iter().filter(|e| self.s.captures(&e.db, &e.table)).cloned().collect();
                if !captured.is_empty() {
                    let entry = HistoryEntry { position: ddl.at.clone(), tables: captured };
                    self.history.record(entry, &ddl.offset, &database, ddl.sql).await.map_err(StreamError::Fatal)?;
                }
                out
            }
        };
        if changes.is_empty() && !understood {
            // a statement whose tables are not known: read structures again on next use
            tracing::info!(ddl = %ddl.sql, "schema change: table metadata reloaded on next use");
            self.tables.clear();
            self.structures.clear();
        }
        for e in &structures {
            let k = (e.db.clone(), e.table.clone());
            match &e.structure {
                Some(t) if self.s.captures(&e.db, &e.table) => {
                    let info = Arc::new(self.table_info(t));
                    self.tables.insert(k.clone(), Some(info));
                    self.structures.insert(k, t.clone());
                }
                _ => {
                    self.tables.remove(&k);
                    self.structures.remove(&k);
                }
            }
        }
        tracing::info!(ddl = %ddl.sql, tables = structures.len(), "schema change");
        let captured = if changes.is_empty() {
            !Self::system_db(&database) && self.s.databases.matches(&database)
        } else {
            changes.iter().any(|(_, db, table)| self.s.captures(db, table))
        };
        if !self.s.include_schema_changes || !captured {
            return Ok(());
        }
        let source = SourceInfo {
            ts_ms: ddl.ts as i64 * 1000,
            db: database.clone(),
            table: changes.first().map(|(_, _, t)| t.clone()),
            server_id: ddl.server_id as i64,
            gtid: ddl.gtid.clone(),
            file: ddl.at.file.clone(),
            pos: ddl.at.pos as i64,
            row: self.last_row,
            ..Default::default()
        };
        let table_changes: Vec<_> = changes
            .iter()
            .map(|(t, db, table)| {
                let structure = match t {
                    ChangeType::Drop => None,
                    _ => structures
                        .iter()
                        .find(|e| &e.db == db && &e.table == table)
                        .and_then(|e| e.structure.as_ref())
                        .or_else(|| self.structures.get(&(db.clone(), table.clone()))),
                };
                (*t, db.clone(), table.clone(), structure)
            })
            .collect();
        let value = schema_change::value(
            source.value(self.flavor, &self.s.topic_prefix, DEBEZIUM_VERSION),
            &database,
            ddl.sql,
            &table_changes,
        );
        let rec = self.record(
            &self.s.topic_prefix,
            Some(schema_change::key_schema(self.flavor)),
            schema_change::key(&database),
            Some(schema_change::value_schema(self.flavor)),
            value,
            ddl.offset.clone(),
        );
        self.send(rec).await
    }

    fn gtids_after(&self, gtid: Option<(u32, u32, u64)>) -> BTreeMap<u32, (u32, u64)> {
        let mut set = self.gtids.clone();
        if let Some((d, s, n)) = gtid {
            set.insert(d, (s, n));
        }
        set
    }

    /// A transaction ended at `end` (the position after its last event).
    fn txn_end(
        &mut self,
        file: &str,
        end: u64,
        gtid: &mut Option<(u32, u32, u64)>,
        in_txn: &mut bool,
        skipping: &mut bool,
    ) {
        if let Some((d, s, n)) = gtid.take() {
            self.gtids.insert(d, (s, n));
        }
        *in_txn = false;
        *skipping = false;
        self.resume = Some(Resume { file: file.to_string(), pos: end, skip_events: 0, skip_rows: 0 });
    }

    async fn end_txn(&mut self, meta: &mut Option<TxnMeta>, ts: u32) -> Result<(), StreamError> {
        if let Some(m) = meta.take() {
            let offset = match &self.resume {
                Some(r) => self.stream_offset(ts as i64, r, &render_gtids(&self.gtids), 0),
                None => json!({}),
            };
            self.send(self.txn_record("END", &m, ts as i64, offset)).await?;
        }
        Ok(())
    }

    fn txn_record(&self, status: &str, m: &TxnMeta, ts_sec: i64, offset: serde_json::Value) -> SourceRecord {
        let (key_schema, value_schema) = envelope::transaction_schemas();
        let end = status == "END";
        let collections = if end {
            Value::Array(
                java_hash_map_order(&m.collections)
                    .into_iter()
                    .map(|(c, n)| Value::Struct(vec![Value::String(c.clone()), Value::Int64(*n)]))
                    .collect(),
            )
        } else {
            Value::Null
        };
        let value = Value::Struct(vec![
            Value::String(status.to_string()),
            Value::String(m.id.clone()),
            if end { Value::Int64(m.total) } else { Value::Null },
            collections,
            Value::Int64(ts_sec * 1000),
        ]);
        let mut rec = self.record(
            &self.s.transaction_topic,
            Some(key_schema),
            Value::Struct(vec![Value::String(m.id.clone())]),
            Some(value_schema),
            value,
            offset,
        );
        // Debezium's transaction records carry no context headers
        rec.headers.clear();
        rec
    }
}

/// How a reader's records are handed over.
enum EmitMode {
    /// Task 0's snapshot: Debezium's markers; with `hold_last` the record marked `last` is returned, not sent.
    Markers { hold_last: bool },
    /// Task 0 reading a share handed back: `source.snapshot=true`, snapshot offsets.
    Plain,
    /// A share of another task: offsets count the records of the generation.
    Share { generation: String },
}

/// This task's part in a snapshot split across `tasks` tasks (see [`crate::split`]).
#[derive(Clone)]
struct Split {
    tasks: usize,
    task: u32,
    shared: SharedState,
}

/// The transactions a task other than 0 opened for a snapshot of task 0's, and what it read while the lock held.
struct JoinedSnapshot {
    generation: String,
    id: String,
    conns: Vec<Conn>,
    tables: Vec<Arc<TableInfo>>,
    point: SnapshotPoint,
}

/// A table's key ranges for `connections` connections: by the first column of its primary key, if that column is
/// an integer (a single-column key or the leading column of a composite one: InnoDB keeps rows in primary key
/// order, so a range of the leading column is a range scan) and the table is large enough (information_schema's
/// row estimate) to be worth splitting. Others are read whole by one connection.
async fn split_table(conn: &mut Conn, t: &TableInfo, connections: usize) -> Result<Vec<RowRange>, StreamError> {
    if t.snapshot_select.is_some() {
        // The user's statement is read as it is, by one connection.
        return Ok(vec![RowRange::All]);
    }
    let Some(key) = t.pk_columns.first() else { return Ok(vec![RowRange::All]) };
    let col = &t.columns[*key];
    if !matches!(col.data_type.as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint") {
        return Ok(vec![RowRange::All]);
    }
    let estimated: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.db, &t.table),
        )
        .await?;
    let k = chunk_count(estimated.flatten().unwrap_or(0), connections);
    if k <= 1 {
        return Ok(vec![RowRange::All]);
    }
    let q = quote(&col.name);
    let bounds: Option<(My, My)> =
        conn.query_first(format!("SELECT MIN({q}), MAX({q}) FROM {}.{}", quote(&t.db), quote(&t.table))).await?;
    let int = |v: &My| match v {
        My::Int(i) => Some(*i),
        My::UInt(u) => i64::try_from(*u).ok(),
        My::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    };
    Ok(match bounds {
        Some((min, max)) => match (int(&min), int(&max)) {
            (Some(min), Some(max)) => key_ranges(&col.name, min, max, k),
            _ => vec![RowRange::All],
        },
        None => vec![RowRange::All],
    })
}

/// Waits until `pending` names no task, saying every 30 s which ones it waits for.
async fn wait_for_tasks(
    shared: &SharedState,
    what: &str,
    pending: impl Fn(&SharedValues) -> Vec<u32>,
) -> Result<(), StreamError> {
    let mut values = shared.watch();
    let mut last_log = tokio::time::Instant::now();
    loop {
        let p = pending(&values.borrow_and_update().clone().unwrap_or_default());
        if p.is_empty() {
            tracing::info!("every other task is ready ({what})");
            return Ok(());
        }
        if last_log.elapsed() >= Duration::from_secs(30) {
            tracing::info!(tasks = ?p, "waiting for other tasks {what}");
            last_log = tokio::time::Instant::now();
        }
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(30), values.changed()).await {
            return Err(StreamError::Fatal(ConnectError::Other("the connector's shared state was closed".into())));
        }
    }
}

type SharedWatch = tokio::sync::watch::Receiver<Option<Arc<SharedValues>>>;

impl Worker {
    /// A task other than 0 of a split snapshot ([`crate::split`]): joins each snapshot task 0 starts, reads its
    /// share, marks it done once Kafka acknowledged all of it (or hands it back), and otherwise idles.
    async fn read_shares(mut self) {
        let Some(split) = self.split.clone() else { return };
        let mut values = split.shared.watch();
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.share_step(&split, &mut values).await {
                Ok(()) => backoff = Duration::from_millis(500),
                Err(StreamError::Closed) => return,
                Err(StreamError::Fatal(e)) => {
                    tracing::error!(task = split.task, error = %e, "snapshot share failed");
                    let _ = self.tx.send(Item::Failed(e)).await;
                    return;
                }
                Err(StreamError::Transient(why)) => {
                    tracing::warn!(task = split.task, error = %why, retry_in = ?backoff, "snapshot share step failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// One step of [`Worker::read_shares`]: acts on the shared state as it is now, or waits for it to change.
    async fn share_step(&mut self, split: &Split, values: &mut SharedWatch) -> Result<(), StreamError> {
        let task = split.task;
        let current = values.borrow_and_update().clone().unwrap_or_default();
        let closed = || StreamError::Fatal(ConnectError::Other("the connector's shared state was closed".into()));
        let Some(request) = split::join_request(&current) else {
            return values.changed().await.map_err(|_| closed());
        };
        let generation = request.generation.clone();
        if self.joined.as_ref().is_some_and(|j| j.generation != generation) {
            // a new snapshot: the old transactions are of no use
            self.joined = None;
        }
        if self.reported.as_deref() != Some(generation.as_str()) {
            // what this task read for an older snapshot must be in Kafka before task 0 reads the new one
            self.wait_acked(Some(&generation)).await?;
            let too_late = split::plan(&current).is_some_and(|p| p.generation == generation);
            let connections = if too_late {
                0
            } else {
                match self.join(&request).await {
                    Ok(Some(j)) => {
                        let n = j.conns.len();
                        self.joined = Some(j);
                        n
                    }
                    Ok(None) => 0,
                    Err(StreamError::Closed) => return Err(StreamError::Closed),
                    Err(StreamError::Fatal(e)) => {
                        tracing::warn!(task, error = %e, "could not join the snapshot");
                        0
                    }
                    Err(StreamError::Transient(why)) => {
                        tracing::warn!(task, error = %why, "could not join the snapshot");
                        0
                    }
                }
            };
            let id = self.joined.as_ref().map(|j| j.id.clone()).unwrap_or_default();
            let report = Joined { generation: generation.clone(), id, connections };
            split.shared.put(&split::joined_key(task), serde_json::to_value(&report).unwrap_or_default());
            self.reported = Some(generation.clone());
            tracing::info!(task, %generation, connections, "reported for the snapshot");
            split
                .shared
                .wait_for(|v| {
                    (split::joined(v, task).is_some_and(|j| j.generation == generation)
                        || split::join_request(v).is_some_and(|r| r.generation != generation))
                    .then_some(())
                })
                .await
                .map_err(StreamError::Fatal)?;
            return Ok(());
        }
        let plan = split::plan(&current).filter(|p| p.generation == generation);
        let done = split::done(&current, task).is_some_and(|d| d.generation == generation);
        let (Some(plan), false) = (plan, done) else {
            return values.changed().await.map_err(|_| closed());
        };
        let Some(chunks) = plan.chunks.get(&task).cloned() else {
            // not a member of this snapshot: nothing to read
            self.joined = None;
            return values.changed().await.map_err(|_| closed());
        };
        let member = plan.members.get(&task);
        let joined = self.joined.take().filter(|j| j.generation == generation && Some(&j.id) == member);
        let (records, handed_back) = match joined {
            Some(j) => {
                let mut watch = values.clone();
                let superseded = async {
                    loop {
                        if watch.changed().await.is_err() {
                            return std::future::pending::<()>().await;
                        }
                        let newer = watch.borrow_and_update().as_deref().and_then(split::join_request);
                        if newer.is_some_and(|r| r.generation != generation) {
                            return;
                        }
                    }
                };
                tokio::select! {
                    read = self.read_share(j, chunks, &generation) => match read {
                        Ok(n) => (n, false),
                        Err(StreamError::Closed) => return Err(StreamError::Closed),
                        Err(StreamError::Fatal(e)) => {
                            tracing::warn!(task, error = %e, "reading the snapshot share failed: handing it back to task 0");
                            (0, true)
                        }
                        Err(StreamError::Transient(why)) => {
                            tracing::warn!(task, error = %why, "reading the snapshot share failed: handing it back to task 0");
                            (0, true)
                        }
                    },
                    () = superseded => {
                        tracing::info!(task, %generation, "task 0 started a new snapshot: abandoning this one");
                        return Ok(());
                    }
                }
            }
            None => {
                tracing::warn!(task, %generation, "this task's snapshot transactions are gone (restarted?): handing its share back to task 0");
                (0, true)
            }
        };
        if handed_back {
            // what it sent of the share must be in Kafka before task 0 can stream
            self.wait_acked(None).await?;
        }
        let done = ShareDone { generation: generation.clone(), records, handed_back };
        split.shared.put(&split::done_key(task), serde_json::to_value(&done).unwrap_or_default());
        tracing::info!(task, %generation, records, handed_back, "snapshot share done");
        split
            .shared
            .wait_for(|v| {
                (split::done(v, task).is_some_and(|d| d.generation == generation)
                    || split::join_request(v).is_some_and(|r| r.generation != generation))
                .then_some(())
            })
            .await
            .map_err(StreamError::Fatal)?;
        Ok(())
    }

    /// Waits until Kafka acknowledged every share record this task sent (of a generation other than `except`).
    async fn wait_acked(&self, except: Option<&str>) -> Result<(), StreamError> {
        let sent = self.share_sent.lock().ok().and_then(|s| s.clone());
        let Some((generation, records)) = sent else { return Ok(()) };
        if records == 0 || except == Some(generation.as_str()) {
            return Ok(());
        }
        let Some(mut acked) = self.share_ack.clone() else { return Ok(()) };
        self.share_waiting.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = acked.wait_for(|(g, n)| *g == generation && *n >= records).await.map(|_| ());
        self.share_waiting.store(false, std::sync::atomic::Ordering::Relaxed);
        r.map_err(|_| StreamError::Closed)
    }

    /// Opens `snapshot.max.threads` consistent-snapshot transactions for task 0's snapshot and reads the tables'
    /// structures in them. `None` if none could join (without the lock: the binlog moved on since task 0's).
    async fn join(&self, request: &JoinRequest) -> Result<Option<JoinedSnapshot>, StreamError> {
        let mut conns: Vec<Conn> = Vec::new();
        for _ in 0..self.s.snapshot_max_threads {
            let mut c = self.connect().await?;
            begin_snapshot(&mut c).await?;
            if !request.locked {
                let at = binlog_snapshot(&mut c).await?;
                if at.as_ref() != Some(&(request.point.file.clone(), request.point.pos)) {
                    tracing::info!(?at, file = %request.point.file, pos = request.point.pos,
                        "the binlog moved on since task 0 opened its snapshot (no global read lock): not joining with this connection");
                    let _ = c.disconnect().await;
                    break;
                }
            }
            conns.push(c);
        }
        let Some(first) = conns.first_mut() else { return Ok(None) };
        let mut tables = Vec::with_capacity(request.tables.len());
        for (db, table) in &request.tables {
            match read_structure(first, db, table).await? {
                Some(structure) => tables.push(Arc::new(self.table_info(&structure))),
                None => {
                    tracing::warn!(db = %db, table = %table, "a table of the snapshot is gone: not joining");
                    return Ok(None);
                }
            }
        }
        Ok(Some(JoinedSnapshot {
            generation: request.generation.clone(),
            id: envelope::run_id(),
            conns,
            tables,
            point: request.point.clone(),
        }))
    }

    /// Reads this task's share in the transactions it joined with and waits until Kafka acknowledged all of it.
    /// Returns how many records it holds.
    async fn read_share(&self, j: JoinedSnapshot, chunks: Vec<Chunk>, generation: &str) -> Result<u64, StreamError> {
        tracing::info!(generation, chunks = chunks.len(), connections = j.conns.len(), "reading a snapshot share");
        let ctx = Arc::new(SnapshotContext {
            tables: j.tables,
            settings: self.s.clone(),
            flavor: self.flavor,
            partition: self.partition.clone(),
            headers: self.headers.clone(),
            point: j.point,
        });
        let mut conns = j.conns;
        if conns.is_empty() {
            return Err(StreamError::Transient("no snapshot connection".into()));
        }
        let mut first = conns.remove(0);
        if let Ok(mut s) = self.share_sent.lock() {
            *s = Some((generation.to_string(), 0));
        }
        let (rest, records, _) = self
            .read_and_emit(&mut first, conns, chunks, &ctx, EmitMode::Share { generation: generation.to_string() })
            .await?;
        for mut c in rest.into_iter().chain(std::iter::once(first)) {
            let _ = c.query_drop("COMMIT").await;
            let _ = c.disconnect().await;
        }
        if records > 0 {
            tracing::info!(generation, records, "snapshot share read; waiting for Kafka to acknowledge it");
            self.wait_acked(None).await?;
        }
        Ok(records)
    }
}

/// A DDL statement read from the binlog.
struct DdlEvent<'a> {
    sql: &'a str,
    /// The session's current database.
    db: &'a str,
    ts: u32,
    server_id: u32,
    gtid: Option<String>,
    /// Where the statement starts.
    at: Position,
    /// The offset after it.
    offset: serde_json::Value,
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Entries in the iteration order of a `java.util.HashMap` filled in this order (Debezium keeps the per-table event
/// counts of a transaction in one, and writes `data_collections` in its order): by bucket, then insertion.
fn java_hash_map_order(entries: &[(String, i64)]) -> Vec<&(String, i64)> {
    let mut capacity = 16usize;
    while entries.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let mut ordered: Vec<(usize, usize, &(String, i64))> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let h = java_string_hash(&e.0);
            let spread = (h ^ ((h as u32) >> 16) as i32) as u32 as usize;
            (spread & (capacity - 1), i, e)
        })
        .collect();
    ordered.sort_by_key(|(bucket, i, _)| (*bucket, *i));
    ordered.into_iter().map(|(_, _, e)| e).collect()
}

/// Transaction metadata bookkeeping (`provide.transaction.metadata`).
struct TxnMeta {
    id: String,
    total: i64,
    collections: Vec<(String, i64)>,
}

impl TxnMeta {
    fn new(id: String) -> Self {
        TxnMeta { id, total: 0, collections: Vec::new() }
    }

    fn block(&mut self, collection: &str) -> Value {
        self.total += 1;
        let n = match self.collections.iter_mut().find(|(c, _)| c == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.collections.push((collection.to_string(), 1));
                1
            }
        };
        Value::Struct(vec![Value::String(self.id.clone()), Value::Int64(self.total), Value::Int64(n)])
    }
}

fn is_ddl(head: &str) -> bool {
    ["CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"].iter().any(|k| head.starts_with(k))
}

/// A key struct as the `__debezium.newkey`/`oldkey` header text (`SimpleHeaderConverter`'s JSON of the struct).
fn key_header(key: &Value, t: &TableInfo) -> String {
    let Value::Struct(values) = key else { return String::new() };
    let mut map = serde_json::Map::new();
    for (i, v) in t.key_columns.iter().zip(values) {
        let j = match v {
            Value::Int8(x) => json!(x),
            Value::Int16(x) => json!(x),
            Value::Int32(x) => json!(x),
            Value::Int64(x) => json!(x),
            Value::Float32(x) => json!(x),
            Value::Float64(x) => json!(x),
            Value::Boolean(x) => json!(x),
            Value::String(x) => json!(x),
            Value::Null => serde_json::Value::Null,
            other => json!(format!("{other:?}")),
        };
        map.insert(t.columns[*i].name.clone(), j);
    }
    serde_json::Value::Object(map).to_string()
}

/// Sets `source.snapshot` of a snapshot record.
pub(crate) fn mark(mut rec: SourceRecord, marker: SnapshotMarker) -> SourceRecord {
    if let Value::Struct(fields) = &mut rec.value
        && let Some(Value::Struct(source)) = fields.get_mut(2)
    {
        source[4] = Value::String(marker.as_str().to_string());
    }
    rec
}

fn binlog_values(mut row: mysql_async::binlog::row::BinlogRow, n: usize) -> Vec<My> {
    (0..n)
        .map(|i| match row.take(i) {
            Some(BinlogValue::Value(v)) => v,
            Some(BinlogValue::Jsonb(j)) => match serde_json::Value::try_from(j) {
                Ok(v) => My::Bytes(v.to_string().into_bytes()),
                Err(_) => My::NULL,
            },
            _ => My::NULL,
        })
        .collect()
}

fn ev_header(event: &mysql_async::binlog::events::Event) -> (u32, u32, u32, u32, u8) {
    let h = event.header();
    (h.timestamp(), h.server_id(), h.log_pos(), h.event_size(), h.event_type_raw())
}

/// A database's default character set (`None` if it does not exist).
async fn database_charset(conn: &mut Conn, db: &str) -> Result<Option<String>, StreamError> {
    Ok(conn
        .exec_first("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (db,))
        .await?)
}

/// A table's structure from information_schema (`None` if it does not exist).
async fn read_structure(conn: &mut Conn, db: &str, table: &str) -> Result<Option<TableStructure>, StreamError> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             DATETIME_PRECISION, COLUMN_DEFAULT, CHARACTER_SET_NAME, EXTRA, COLUMN_COMMENT \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let keys: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND \
             TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await?;
    let meta: Option<(Option<String>, Option<String>)> = conn
        .exec_first(
            "SELECT c.CHARACTER_SET_NAME, t.TABLE_COMMENT FROM information_schema.TABLES t LEFT JOIN \
             information_schema.COLLATION_CHARACTER_SET_APPLICABILITY c ON c.COLLATION_NAME = t.TABLE_COLLATION \
             WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?",
            (db, table),
        )
        .await?;
    let (charset, comment) = meta.unwrap_or((None, None));
    let columns = rows
        .into_iter()
        .map(|mut r| ColumnInfo {
            name: r.take::<String, _>(0).unwrap_or_default(),
            data_type: r.take::<String, _>(1).unwrap_or_default().to_ascii_lowercase(),
            column_type: r.take::<String, _>(2).unwrap_or_default(),
            nullable: r.take::<String, _>(3).as_deref() == Some("YES"),
            precision: r.take::<Option<u64>, _>(4).flatten().map(|v| v as u32),
            scale: r.take::<Option<u64>, _>(5).flatten().map(|v| v as u32),
            datetime_precision: r.take::<Option<u64>, _>(6).flatten().map(|v| v as u32),
            default: r.take::<Option<String>, _>(7).flatten(),
            charset: r.take::<Option<String>, _>(8).flatten(),
            extra: r.take::<Option<String>, _>(9).flatten().unwrap_or_default(),
            comment: r.take::<Option<String>, _>(10).flatten().unwrap_or_default(),
            ..Default::default()
        })
        .collect::<Vec<ColumnInfo>>();
    let mut columns = columns;
    // information_schema shows a binary column's default converted to UTF-8 (`0xff` as `?`); Debezium reads it from
    // the DDL text, which has the raw bytes.
    let binary_default =
        |c: &ColumnInfo| c.kind() == Kind::Binary && c.default.as_deref().is_some_and(|d| d.starts_with('\''));
    if columns.iter().any(binary_default) {
        let row: Option<(Vec<u8>, Vec<u8>)> =
            conn.query_first(format!("SHOW CREATE TABLE {}.{}", quote(db), quote(table))).await?;
        if let Some((_, ddl)) = row {
            let ddl = String::from_utf8_lossy(&ddl);
            for c in columns.iter_mut().filter(|c| binary_default(c)) {
                if let Some(literal) = ddl_default_literal(&ddl, &c.name) {
                    c.default = Some(literal);
                }
            }
        }
    }
    Ok(Some(TableStructure {
        db: db.to_string(),
        table: table.to_string(),
        columns,
        keys,
        charset,
        comment: comment.filter(|c| !c.is_empty()),
    }))
}

/// A schema change event of the snapshot: database, table, statement, table changes.
type SnapshotDdl = (String, Option<String>, String, Vec<(ChangeType, Option<TableStructure>)>);

/// The statements Debezium's snapshot reports on the schema change topic, in its order: the server's character
/// set; `DROP TABLE IF EXISTS` of every table; then per database `DROP DATABASE IF EXISTS`, `CREATE DATABASE`,
/// `USE` and each table's `SHOW CREATE TABLE`.
async fn snapshot_ddl(conn: &mut Conn, structures: &[(bool, TableStructure)]) -> Result<Vec<SnapshotDdl>, StreamError> {
    let mut out = Vec::new();
    let server: Option<(String, String)> =
        conn.query_first("SELECT @@character_set_server, @@collation_server").await?;
    if let Some((cs, coll)) = server {
        out.push((String::new(), None, format!("SET character_set_server={cs}, collation_server={coll}"), vec![]));
    }
    for (_, t) in structures {
        out.push((
            t.db.clone(),
            Some(t.table.clone()),
            format!("DROP TABLE IF EXISTS {}.{}", quote(&t.db), quote(&t.table)),
            vec![(ChangeType::Drop, None)],
        ));
    }
    let mut databases: Vec<&str> = structures.iter().map(|(_, t)| t.db.as_str()).collect();
    databases.dedup();
    for db in databases {
        let charset: Option<(String, String)> = conn
            .exec_first(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await?;
        out.push((db.to_string(), None, format!("DROP DATABASE IF EXISTS {}", quote(db)), vec![]));
        let create = match charset {
            Some((cs, coll)) => format!("CREATE DATABASE {} CHARSET {cs} COLLATE {coll}", quote(db)),
            None => format!("CREATE DATABASE {}", quote(db)),
        };
        out.push((db.to_string(), None, create, vec![]));
        out.push((db.to_string(), None, format!("USE {}", quote(db)), vec![]));
        for (_, t) in structures.iter().filter(|(_, t)| t.db == db) {
            // As bytes: a binary column's default comes raw (`DEFAULT '\x01\xff'`), not as UTF-8; decoded the
            // way Debezium's JDBC getString does (each malformed sequence becomes U+FFFD).
            let row: Option<(Vec<u8>, Vec<u8>)> =
                conn.query_first(format!("SHOW CREATE TABLE {}.{}", quote(db), quote(&t.table))).await?;
            let ddl = row.map(|(_, ddl)| String::from_utf8_lossy(&ddl).into_owned()).unwrap_or_default();
            out.push((db.to_string(), Some(t.table.clone()), ddl, vec![(ChangeType::Create, Some(t.clone()))]));
        }
    }
    Ok(out)
}

/// The quoted `DEFAULT '...'` literal of a column in `SHOW CREATE TABLE` output (one column per line, as the server
/// prints it), quotes included.
fn ddl_default_literal(ddl: &str, column: &str) -> Option<String> {
    let head = format!("`{}` ", column.replace('`', "``"));
    let line = ddl.lines().map(str::trim_start).find(|l| l.starts_with(&head))?;
    let at = line.find(" DEFAULT '")? + " DEFAULT ".len();
    let rest = &line[at..];
    // the literal ends at the first quote that is not doubled or backslash-escaped
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\\' => {
                chars.next();
            }
            '\'' if rest[i + 1..].starts_with('\'') => {
                chars.next();
            }
            '\'' => return Some(rest[..=i].to_string()),
            _ => {}
        }
    }
    None
}

async fn master_status(conn: &mut Conn) -> Result<(String, u64), StreamError> {
    let row: Option<Row> = conn.query_first("SHOW MASTER STATUS").await?;
    match row {
        Some(mut r) => Ok((r.take::<String, _>(0).unwrap_or_default(), r.take::<u64, _>(1).unwrap_or(4))),
        None => Err(StreamError::Fatal(ConnectError::Other(
            "The server has no binary log (SHOW MASTER STATUS is empty): enable it with log-bin, binlog_format=ROW, \
             binlog_row_image=FULL and a server-id, then restart the connector"
                .into(),
        ))),
    }
}

async fn gtid_pos(conn: &mut Conn, flavor: Flavor) -> Result<Option<String>, StreamError> {
    let sql = match flavor {
        Flavor::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
        Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
    };
    match conn.query_first::<Option<String>, _>(sql).await {
        Ok(v) => Ok(v.flatten().filter(|s| !s.is_empty())),
        Err(mysql_async::Error::Server(_)) => Ok(None),
        Err(e) => Err(classify(e)),
    }
}

#[allow(dead_code)]
fn _schema_type_is_used(_: SchemaType) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_literals_from_show_create_table() {
        // `q`'s value is `it's \` (a doubled quote, an escaped backslash)
        let ddl = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `raw` varbinary(4) DEFAULT '\u{1}\u{fffd}',\n  \
                   `q` varbinary(9) DEFAULT 'it''s \\\\',\n  `b` blob DEFAULT X'01ff',\n  PRIMARY KEY (`id`)\n)";
        assert_eq!(ddl_default_literal(ddl, "raw").as_deref(), Some("'\u{1}\u{fffd}'"));
        assert_eq!(ddl_default_literal(ddl, "q").as_deref(), Some(r"'it''s \\'"));
        assert_eq!(ddl_default_literal(ddl, "b"), None);
        assert_eq!(ddl_default_literal(ddl, "id"), None);
        assert_eq!(ddl_default_literal(ddl, "missing"), None);
    }

    #[test]
    fn gtid_sets_round_trip() {
        let set = parse_gtids("0-223344-6,1-5-9");
        assert_eq!(render_gtids(&set), "0-223344-6,1-5-9");
    }

    #[test]
    fn truncate_names() {
        assert_eq!(truncated_table("TRUNCATE TABLE `a`.`b`", "x"), Some(("a".into(), "b".into())));
        assert_eq!(truncated_table("truncate t1", "db"), Some(("db".into(), "t1".into())));
        assert_eq!(statement_head("/* x */ alter table t"), "ALTER TABLE T");
    }
}
