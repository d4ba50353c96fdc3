//! The source task: a reader (its own tokio task) snapshots and streams into a bounded queue; `poll` drains it;
//! `commit` hands the acknowledged position back to the reader, which confirms it to the replication slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use sluice_connect_api::connector::{CommittedOffsets, SourceTask, SourceTaskContext};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Schema, SourceRecord, Value, partition_key};
use sluice_connect_api::shared::SharedState;
use sluice_debezium::envelope::{Envelope, Op, ProcessingTime, tombstone};
use sluice_debezium::mapping::Mapper;
use sluice_debezium::snapshot::MarkerAssigner;
use sluice_debezium::source::{CommonSource, SnapshotMarker, source_schema_builder};
use sluice_debezium::transaction::TransactionCounter;
use sluice_debezium::{SchemaBuilder, headers, heartbeat, transaction};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::config::{AutocreateMode, PgSettings, SnapshotMode};
use crate::defaults;
use crate::message::{self, MessageSchemas};
use crate::pgoutput::{self, PgOutput, TupleValue};
use crate::repl::{self, ConnParams, ReplConnection, ReplError, ReplMessage, quote_ident, quote_literal};
use crate::snapshot::{
    Chunk, ChunkQueue, ReaderMessage, RowRange, SnapshotContext, block_ranges, chunk_count, key_ranges, read_chunks,
    set_marker,
};
use crate::split::{self, ShareDone, SnapshotPlan};
use crate::types::{self, ColumnInfo, Conv};

pub const VERSION: &str = "3.6.1.Final";
const CONNECTOR: &str = "postgresql";

type Item = Result<SourceRecord, ConnectError>;

#[derive(Default)]
pub struct PostgresCdcTask {
    rx: Option<mpsc::Receiver<Item>>,
    ack: Option<watch::Sender<u64>>,
    /// A task other than 0 of a split snapshot: (generation, records) of its share Kafka acknowledged.
    share_ack: Option<watch::Sender<(String, u64)>>,
    /// Set while a share waits for Kafka's acknowledgements (see [`SourceTask::commit_requested`]).
    share_waiting: Arc<std::sync::atomic::AtomicBool>,
    reader: Option<tokio::task::JoinHandle<()>>,
    settings: Option<PgSettings>,
    partition_key: String,
}

#[async_trait]
impl SourceTask for PostgresCdcTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let settings = PgSettings::from_config(&context.config)?;
        let tasks = context.config.get(split::TASKS_KEY).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1);
        let split = (tasks > 1).then(|| Split { tasks, task: context.task, shared: context.shared.clone() });
        let partition = match &split {
            // A snapshot share's records must not overwrite task 0's (Debezium's) offsets.
            Some(split) if split.task > 0 => json!({"server": settings.topic_prefix, "snapshot_task": split.task}),
            _ => json!({"server": settings.topic_prefix}),
        };
        let partition = Arc::new(partition.as_object().cloned().unwrap_or_default());
        self.partition_key = partition_key(&partition);
        let offset = context.offset(&partition).cloned();
        let (tx, rx) = mpsc::channel(settings.max_queue_size);
        let (ack_tx, ack_rx) = watch::channel(0u64);
        let run_id = headers::uuid_v7();
        let headers = if settings.extended_headers {
            headers::context_headers(&settings.topic_prefix, context.task, CONNECTOR, &run_id)
        } else {
            Vec::new()
        };
        let helper = split.as_ref().is_some_and(|s| s.task > 0);
        let reader = Reader::new(settings.clone(), partition, headers, tx, ack_rx, offset, split);
        if helper {
            let (share_tx, share_rx) = watch::channel((String::new(), 0u64));
            self.share_ack = Some(share_tx);
            self.reader = Some(tokio::spawn(reader.read_shares(share_rx, self.share_waiting.clone())));
        } else {
            self.reader = Some(tokio::spawn(reader.run()));
        }
        self.rx = Some(rx);
        self.ack = Some(ack_tx);
        self.settings = Some(settings);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let (Some(rx), Some(settings)) = (self.rx.as_mut(), self.settings.as_ref()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let wait = Duration::from_millis(settings.poll_interval_ms.clamp(1, 1000));
        match tokio::time::timeout(wait, rx.recv()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err(ConnectError::Other("the PostgreSQL reader stopped".into())),
            Ok(Some(item)) => out.push(item?),
        }
        while out.len() < settings.max_batch_size {
            match rx.try_recv() {
                Ok(item) => out.push(item?),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, committed: &CommittedOffsets) -> Result<(), ConnectError> {
        if let (Some(offset), Some(ack)) = (committed.get(&self.partition_key), self.share_ack.as_ref()) {
            let generation = offset.get("generation").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let records = offset.get("records").and_then(|v| v.as_u64()).unwrap_or(0);
            ack.send_replace((generation, records));
            return Ok(());
        }
        if let (Some(offset), Some(ack)) = (committed.get(&self.partition_key), self.ack.as_ref())
            && let Some(lsn) = offset.get("lsn_commit").and_then(|v| v.as_u64())
        {
            ack.send_if_modified(|cur| {
                if lsn > *cur {
                    *cur = lsn;
                    true
                } else {
                    false
                }
            });
        }
        Ok(())
    }

    fn commit_requested(&self) -> bool {
        self.share_waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
        self.rx = None;
        Ok(())
    }
}

/// A captured table's schemas and converters.
pub(crate) struct TableState {
    pub(crate) schema: String,
    pub(crate) table: String,
    topic: String,
    pub(crate) envelope: Envelope,
    /// Per column of the relation (pgoutput order): its index in the row struct and converter, or `None` when
    /// the column is left out (filtered or unsupported).
    pub(crate) columns: Vec<Option<(usize, Conv)>>,
    /// Row struct field index -> key struct field index.
    key_fields: Vec<usize>,
    /// Column mappers of character columns (`column.mask.*`, `column.truncate.*`): row field index, mapper, the
    /// column's declared length.
    mappers: Vec<(usize, Mapper, Option<usize>)>,
    /// `snapshot.select.statement.overrides.<schema>.<table>`: what the snapshot reads instead of the whole table.
    pub(crate) snapshot_select: Option<String>,
    captured: bool,
}

impl TableState {
    /// Applies the column mappers to a `before` or `after` row (after its key was taken from it).
    pub(crate) fn map_values(&self, row: &mut Value) {
        if self.mappers.is_empty() {
            return;
        }
        let Value::Struct(fields) = row else { return };
        for (idx, mapper, length) in &self.mappers {
            let Some(v) = fields.get_mut(*idx) else { continue };
            let text = match v {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            *v = match mapper.apply(text, *length) {
                Some(s) => Value::String(s),
                None => Value::Null,
            };
        }
    }

    fn row(&self, tuple: &[TupleValue], placeholder: &str, key_only: bool) -> Result<Value, ConnectError> {
        let fields = &self.envelope.row_schema.fields;
        let mut row = vec![Value::Null; fields.len()];
        let mut filled = vec![false; fields.len()];
        let mut convs: Vec<Option<&Conv>> = vec![None; fields.len()];
        for (col, v) in self.columns.iter().zip(tuple) {
            let Some((idx, conv)) = col else { continue };
            convs[*idx] = Some(conv);
            let schema = &fields[*idx].schema;
            row[*idx] = match v {
                TupleValue::Null => Value::Null,
                TupleValue::Unchanged => match conv {
                    // Debezium's placeholder for an hstore: a one-entry map {placeholder: placeholder}.
                    Conv::Hstore(mode) => {
                        types::hstore_value(&[(placeholder.to_string(), Some(placeholder.to_string()))], *mode)
                    }
                    _ => unavailable(schema, placeholder),
                },
                TupleValue::Text(t) | TupleValue::Binary(t) => {
                    let text = std::str::from_utf8(t).map_err(|e| ConnectError::Data(e.to_string()))?;
                    types::convert(conv, text).map_err(ConnectError::Data)?
                }
            };
            filled[*idx] = !matches!(v, TupleValue::Null) || !key_only;
        }
        if key_only {
            for (i, f) in fields.iter().enumerate() {
                if !filled[i] && !f.schema.optional {
                    // Debezium's converters give a required column without a value its schema default, else a
                    // type default.
                    row[i] = match (&f.schema.default, convs[i]) {
                        (Some(d), _) => (**d).clone(),
                        (None, Some(Conv::Hstore(mode))) => types::hstore_value(&[], *mode),
                        (None, _) => types::type_default(&f.schema),
                    };
                }
            }
        }
        Ok(Value::Struct(row))
    }

    pub(crate) fn key(&self, row: &Value) -> Value {
        if self.envelope.key_schema.is_none() {
            return Value::Null;
        }
        let Value::Struct(vals) = row else { return Value::Null };
        Value::Struct(self.key_fields.iter().map(|&i| vals[i].clone()).collect())
    }
}

fn unavailable(schema: &Schema, placeholder: &str) -> Value {
    use sluice_connect_api::record::SchemaType as T;
    match schema.schema_type {
        T::String => Value::String(placeholder.to_string()),
        T::Bytes => Value::Bytes(Bytes::copy_from_slice(placeholder.as_bytes())),
        T::Array => Value::Array(vec![Value::String(placeholder.to_string())]),
        _ => Value::Null,
    }
}

/// Where streaming resumes: skip transactions committed before `commit_lsn`, and in transaction `tx_id`, changes
/// at or before `lsn`.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    commit_lsn: u64,
    tx_id: Option<u64>,
    lsn: u64,
    /// The offset is a non-transactional message's, at `commit_lsn`: a message there was already handed over.
    after_message: bool,
}

/// This task's part in a snapshot split across `tasks` tasks (see [`crate::split`]).
#[derive(Clone)]
struct Split {
    tasks: usize,
    task: u32,
    shared: SharedState,
}

struct Reader {
    s: PgSettings,
    split: Option<Split>,
    partition: Arc<serde_json::Map<String, serde_json::Value>>,
    headers: Vec<(String, Option<Bytes>)>,
    tx: mpsc::Sender<Item>,
    ack: watch::Receiver<u64>,
    offset: Option<serde_json::Value>,
    source_schema: Arc<Schema>,
    tables: HashMap<u32, TableState>,
    resume: Resume,
    /// The end LSN of the last transaction processed (offset `lsn_commit`).
    last_commit: Option<u64>,
    /// The commit time (µs) of the last transaction seen: the time of a non-transactional message, which has none.
    last_commit_ts: Option<i64>,
    messages: MessageSchemas,
    confirmed: u64,
    /// The offset of the last record handed to the queue.
    last_sent: std::sync::Mutex<Option<serde_json::Value>>,
}

fn pg_source_schema() -> Arc<Schema> {
    source_schema_builder("io.debezium.connector.postgresql.Source")
        .field("schema", SchemaBuilder::string().arc())
        .field("table", SchemaBuilder::string().arc())
        .field("txId", SchemaBuilder::int64().optional().arc())
        .field("lsn", SchemaBuilder::int64().optional().arc())
        .field("xmin", SchemaBuilder::int64().optional().arc())
        .field("origin", SchemaBuilder::string().optional().arc())
        .field("origin_lsn", SchemaBuilder::int64().optional().arc())
        .arc()
}

fn fatal(msg: impl Into<String>) -> ConnectError {
    ConnectError::Other(msg.into())
}

pub(crate) fn pg_err(context: &str, e: tokio_postgres::Error) -> ConnectError {
    if let Some(db) = e.as_db_error()
        && db.code().code() == "42501"
    {
        return fatal(format!(
            "{context}: permission denied ({}). The user needs REPLICATION and SELECT on the captured tables \
             (ALTER ROLE <user> REPLICATION; GRANT SELECT ON ALL TABLES IN SCHEMA <schema> TO <user>)",
            db.message()
        ));
    }
    ConnectError::retriable(context.to_string(), e)
}

fn repl_err(context: &str, e: ReplError) -> ConnectError {
    match e.code() {
        Some("42501") => fatal(format!(
            "{context}: {e}. The user needs the REPLICATION attribute (ALTER ROLE <user> REPLICATION) and \
             CREATE on the database for the publication"
        )),
        Some("42704") => fatal(format!(
            "{context}: {e}. The replication slot is gone: changes since the last committed offset are lost. \
             Reset the connector's offsets (DELETE /connectors/<name>/offsets) to take a new snapshot, or use \
             snapshot.mode=when_needed"
        )),
        Some("55006") => ConnectError::retriable(format!("{context} (is another connector using slot.name?)"), e),
        _ => ConnectError::retriable(context.to_string(), e),
    }
}

pub(crate) fn now_us() -> i64 {
    ProcessingTime::now().us()
}

impl Reader {
    fn new(
        s: PgSettings,
        partition: Arc<serde_json::Map<String, serde_json::Value>>,
        headers: Vec<(String, Option<Bytes>)>,
        tx: mpsc::Sender<Item>,
        ack: watch::Receiver<u64>,
        offset: Option<serde_json::Value>,
        split: Option<Split>,
    ) -> Self {
        let messages = MessageSchemas::new(pg_source_schema(), s.modes.binary);
        Reader {
            s,
            split,
            partition,
            headers,
            tx,
            ack,
            offset,
            source_schema: pg_source_schema(),
            tables: HashMap::new(),
            resume: Resume::default(),
            last_commit: None,
            last_commit_ts: None,
            messages,
            confirmed: 0,
            last_sent: std::sync::Mutex::new(None),
        }
    }

    fn params(&self) -> ConnParams {
        ConnParams {
            host: self.s.host.clone(),
            port: self.s.port,
            user: self.s.user.clone(),
            password: self.s.password.clone(),
            dbname: self.s.dbname.clone(),
        }
    }

    async fn run(mut self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.run_once().await {
                Ok(()) => return,
                Err(e) if e.is_retriable() => {
                    // Resume after what was already handed over, not from the task's start.
                    if let Some(last) = self.last_sent.lock().ok().and_then(|l| l.clone()) {
                        self.offset = Some(last);
                    }
                    self.tables.clear();
                    tracing::warn!(error = %e.trace(), "PostgreSQL CDC reader failed; reconnecting in {:?}", backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// How the catalog and snapshot connections connect (the session settings the text conversions rely on).
    fn catalog_config(&self) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.s.host)
            .port(self.s.port)
            .user(&self.s.user)
            .password(&self.s.password)
            .dbname(&self.s.dbname)
            .application_name("sluice-postgres-cdc")
            .options("-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3")
            .connect_timeout(Duration::from_secs(30));
        cfg
    }

    async fn catalog(&self) -> Result<Client, ConnectError> {
        let (client, conn) =
            self.catalog_config().connect(NoTls).await.map_err(|e| pg_err("connecting to PostgreSQL", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    async fn repl(&self) -> Result<ReplConnection, ConnectError> {
        ReplConnection::connect(&self.params(), Duration::from_secs(30))
            .await
            .map_err(|e| repl_err("opening the replication connection", e))
    }

    async fn send(&self, r: SourceRecord) -> Result<(), ConnectError> {
        let offset = r.source_offset.clone();
        self.tx.send(Ok(r)).await.map_err(|_| fatal("task stopped"))?;
        // What a reconnect resumes from: the records handed over are delivered by the runtime whatever happens here.
        if let Ok(mut last) = self.last_sent.lock() {
            *last = Some(offset);
        }
        Ok(())
    }

    /// Hands several records over; what a reconnect resumes from is set once, after the last.
    async fn send_all(&self, records: Vec<SourceRecord>) -> Result<(), ConnectError> {
        let Some(offset) = records.last().map(|r| r.source_offset.clone()) else { return Ok(()) };
        for r in records {
            self.tx.send(Ok(r)).await.map_err(|_| fatal("task stopped"))?;
        }
        if let Ok(mut last) = self.last_sent.lock() {
            *last = Some(offset);
        }
        Ok(())
    }

    /// Connects, snapshots when needed, streams. Returns only on error (or after `initial_only`).
    async fn run_once(&mut self) -> Result<(), ConnectError> {
        let client = self.catalog().await?;
        self.ensure_publication(&client).await?;
        let slot = client
            .query_opt(
                "SELECT plugin, confirmed_flush_lsn::text, database FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.s.slot_name],
            )
            .await
            .map_err(|e| pg_err("reading pg_replication_slots", e))?;
        let offset = self.offset.clone();
        let streaming_offset = offset.as_ref().filter(|o| o.get("lsn_proc").is_some() || o.get("lsn_commit").is_some());
        let snapshot_done = offset.as_ref().is_some_and(|o| {
            o.get("snapshot").is_none() || o.get("last_snapshot_record").and_then(|v| v.as_bool()) == Some(true)
        });
        let mut repl = self.repl().await?;
        let needs_snapshot = match self.s.snapshot_mode {
            SnapshotMode::NoData => false,
            SnapshotMode::Always => true,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => !snapshot_done,
            SnapshotMode::WhenNeeded => !snapshot_done || slot.is_none(),
        };
        if let Some(row) = &slot {
            let plugin: String = row.get(0);
            if plugin != "pgoutput" {
                return Err(fatal(format!(
                    "replication slot {:?} uses plugin {plugin:?}, not pgoutput; drop it (SELECT \
                     pg_drop_replication_slot('{}')) or set another slot.name",
                    self.s.slot_name, self.s.slot_name
                )));
            }
        } else if streaming_offset.is_some() && !needs_snapshot {
            return Err(fatal(format!(
                "replication slot {:?} does not exist but the connector has streaming offsets: changes since then \
                 are lost. Reset the offsets (DELETE /connectors/<name>/offsets) or use snapshot.mode=when_needed \
                 to take a new snapshot",
                self.s.slot_name
            )));
        }
        let mut start_lsn = 0u64;
        if needs_snapshot && self.offset_is_fresh_for_snapshot(slot.is_some()) {
            // A slot created now exports the snapshot it starts at: no gap, no duplicate.
            if slot.is_some() {
                client
                    .execute("SELECT pg_drop_replication_slot($1)", &[&self.s.slot_name])
                    .await
                    .map_err(|e| pg_err("dropping the unused replication slot", e))?;
            }
            let rows = repl
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
                    quote_ident(&self.s.slot_name)
                ))
                .await
                .map_err(|e| repl_err("creating the replication slot", e))?;
            let row = rows.first().ok_or_else(|| fatal("CREATE_REPLICATION_SLOT returned nothing"))?;
            let consistent = row.get(1).cloned().flatten().and_then(|l| repl::parse_lsn(&l)).unwrap_or(0);
            let snapshot_name = row.get(2).cloned().flatten().ok_or_else(|| fatal("no exported snapshot"))?;
            self.snapshot(&client, Some(&snapshot_name), consistent).await?;
            start_lsn = consistent;
            self.resume = Resume { commit_lsn: consistent, ..Resume::default() };
        } else {
            if slot.is_none() {
                let rows = repl
                    .simple_query(&format!(
                        "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                        quote_ident(&self.s.slot_name)
                    ))
                    .await
                    .map_err(|e| repl_err("creating the replication slot", e))?;
                start_lsn = rows
                    .first()
                    .and_then(|r| r.get(1).cloned().flatten())
                    .and_then(|l| repl::parse_lsn(&l))
                    .unwrap_or(0);
            } else if let Some(row) = &slot {
                let l: Option<String> = row.get(1);
                start_lsn = l.and_then(|l| repl::parse_lsn(&l)).unwrap_or(0);
            }
            if needs_snapshot {
                // An existing slot cannot export a snapshot: like Debezium, snapshot now and stream from the slot
                // (events between the slot's position and the snapshot may repeat).
                self.snapshot(&client, None, start_lsn).await?;
            }
            if let Some(o) = streaming_offset {
                let g = |k: &str| o.get(k).and_then(|v| v.as_u64());
                let after_message =
                    o.get("messageType").and_then(|v| v.as_str()) == Some("MESSAGE") && g("txId").is_none();
                self.resume = Resume {
                    commit_lsn: g("lsn_commit").unwrap_or(0),
                    tx_id: g("txId"),
                    lsn: g("lsn").unwrap_or(0),
                    after_message,
                };
                self.last_commit = g("lsn_commit");
            } else if let Some(o) = offset.as_ref() {
                let lsn = o.get("lsn").and_then(|v| v.as_u64()).unwrap_or(0);
                self.resume = Resume { commit_lsn: lsn, ..Resume::default() };
            }
        }
        if self.s.snapshot_mode == SnapshotMode::InitialOnly {
            tracing::info!("snapshot.mode=initial_only: the snapshot is done; not streaming");
            std::future::pending::<()>().await;
        }
        self.confirmed = start_lsn.max(*self.ack.borrow());
        self.stream(&client, repl).await
    }

    fn offset_is_fresh_for_snapshot(&self, _slot_exists: bool) -> bool {
        // No streaming offset: nothing was consumed from a slot of ours, so it can be (re)created with a snapshot.
        self.offset.as_ref().is_none_or(|o| o.get("lsn_proc").is_none())
    }

    async fn ensure_publication(&self, client: &Client) -> Result<(), ConnectError> {
        let exists = client
            .query_opt("SELECT puballtables FROM pg_publication WHERE pubname = $1", &[&self.s.publication_name])
            .await
            .map_err(|e| pg_err("reading pg_publication", e))?;
        let name = quote_ident(&self.s.publication_name);
        match self.s.autocreate {
            AutocreateMode::Disabled => {
                if exists.is_none() {
                    return Err(fatal(format!(
                        "publication {:?} does not exist and publication.autocreate.mode=disabled: create it \
                         (CREATE PUBLICATION {name} FOR TABLE ...)",
                        self.s.publication_name
                    )));
                }
            }
            AutocreateMode::AllTables => {
                if exists.is_none() {
                    client
                        .batch_execute(&format!("CREATE PUBLICATION {name} FOR ALL TABLES"))
                        .await
                        .map_err(|e| pg_err("creating the publication FOR ALL TABLES (needs superuser)", e))?;
                }
            }
            AutocreateMode::NoTables => {
                if exists.is_none() {
                    client
                        .batch_execute(&format!("CREATE PUBLICATION {name}"))
                        .await
                        .map_err(|e| pg_err("creating the publication", e))?;
                }
            }
            AutocreateMode::Filtered => {
                let tables: Vec<String> = self
                    .list_tables(client)
                    .await?
                    .iter()
                    .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
                    .collect();
                if tables.is_empty() {
                    return Err(fatal("publication.autocreate.mode=filtered but no table matches the include lists"));
                }
                let sql = if exists.is_none() {
                    format!("CREATE PUBLICATION {name} FOR TABLE {}", tables.join(", "))
                } else {
                    format!("ALTER PUBLICATION {name} SET TABLE {}", tables.join(", "))
                };
                client.batch_execute(&sql).await.map_err(|e| pg_err("creating the filtered publication", e))?;
            }
        }
        Ok(())
    }

    async fn list_tables(&self, client: &Client) -> Result<Vec<(String, String)>, ConnectError> {
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| pg_err("listing tables", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter(|(s, t)| self.s.captures(s, t))
            .collect())
    }

    /// Column facts of a table from the catalog: (column info, is primary key), in column order.
    async fn columns(
        &self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<Vec<(ColumnInfo, bool)>, ConnectError> {
        let rows = client
            .query(
                "SELECT a.attname::text, coalesce(bt.typname, t.typname)::text, coalesce(bt.typtype, t.typtype)::text, \
                 CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, a.attnotnull, \
                 et.typname::text, et.typtype::text, \
                 (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e \
                   WHERE e.enumtypid = coalesce(et.oid, bt.oid, t.oid)), \
                 coalesce(a.attnum = ANY(i.indkey), false), t.typname::text, t.typtype::text, \
                 pg_get_expr(ad.adbin, ad.adrelid) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
                 LEFT JOIN pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A' \
                 LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&schema, &table],
            )
            .await
            .map_err(|e| pg_err("reading table columns", e))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ColumnInfo {
                        name: r.get(0),
                        type_name: r.get(1),
                        type_kind: r.get(2),
                        type_modifier: r.get(3),
                        not_null: r.get(4),
                        element_type: r.get(5),
                        element_kind: r.get(6),
                        enum_values: r.get::<_, Option<Vec<String>>>(7).unwrap_or_default(),
                        declared_type: r.get(9),
                        declared_kind: r.get(10),
                        default_expr: r.get(11),
                    },
                    r.get(8),
                )
            })
            .collect())
    }

    /// Builds a table's state for the given relation column names (pgoutput order; the catalog order for
    /// snapshots).
    async fn table_state(
        &self,
        client: &Client,
        schema: &str,
        table: &str,
        relation_columns: Option<&[String]>,
    ) -> Result<TableState, ConnectError> {
        let topic = format!("{}{d}{schema}{d}{table}", self.s.topic_prefix, d = self.s.topic_delimiter);
        let captured = self.s.captures(schema, table);
        let catalog = if captured { self.columns(client, schema, table).await? } else { Vec::new() };
        let names: Vec<String> = match relation_columns {
            Some(c) => c.to_vec(),
            None => catalog.iter().map(|(c, _)| c.name.clone()).collect(),
        };
        // `message.key.columns`: the key's columns for this table, in the setting's order (else the primary key's).
        let custom_key: Option<Vec<&str>> = self
            .s
            .key_columns
            .key_columns(&format!("{schema}.{table}"), catalog.iter().map(|(c, _)| c.name.as_str()))
            .map(|idx| idx.into_iter().map(|i| catalog[i].0.name.as_str()).collect());
        let key_rank = |name: &str, pk: bool| match &custom_key {
            Some(cols) => cols.iter().position(|c| *c == name),
            None => pk.then_some(0),
        };
        let schema_name = schema;
        let mut row_fields = Vec::new();
        let mut key_fields = Vec::new();
        let mut key_idx = Vec::new();
        let mut columns = Vec::new();
        let mut mappers = Vec::new();
        for name in &names {
            let Some((info, pk)) = catalog.iter().find(|(c, _)| &c.name == name) else {
                columns.push(None);
                continue;
            };
            let key_rank = key_rank(name, *pk);
            // Key columns stay in the value whatever the column filters say (Debezium keeps them in the key only).
            if !self.s.columns.accepts(&format!("{schema}.{table}.{name}")) && key_rank.is_none() {
                columns.push(None);
                continue;
            }
            match types::column(info, self.s.modes, self.s.hstore, self.s.include_unknown) {
                Some((schema, conv)) => {
                    let default = info
                        .default_expr
                        .as_deref()
                        .and_then(|e| defaults::default_value(&info.declared_type, &info.declared_kind, e, &conv));
                    let schema = match default {
                        Some(d) => {
                            let mut s = (*schema).clone();
                            s.default = Some(Box::new(d));
                            Arc::new(s)
                        }
                        None => schema,
                    };
                    let idx = row_fields.len();
                    if let Some(rank) = key_rank {
                        key_fields.push((rank, name.clone(), schema.clone()));
                        key_idx.push((rank, idx));
                    }
                    // Debezium's column mappers act on character columns (JDBC CHAR/VARCHAR) only.
                    let mapper = matches!(info.type_name.as_str(), "varchar" | "bpchar" | "text" | "name")
                        .then(|| self.s.mappers.mapper_for(&format!("{schema_name}.{table}.{name}")))
                        .flatten();
                    let schema = match mapper {
                        Some(m) => {
                            let length = (matches!(info.type_name.as_str(), "varchar" | "bpchar")
                                && info.type_modifier > 4)
                                .then(|| (info.type_modifier - 4) as usize);
                            mappers.push((idx, m.clone(), length));
                            let mut s = (*schema).clone();
                            s.parameters.get_or_insert_with(Vec::new).push(m.schema_parameter());
                            Arc::new(s)
                        }
                        None => schema,
                    };
                    row_fields.push((name.clone(), schema));
                    columns.push(Some((idx, conv)));
                }
                None => columns.push(None),
            }
        }
        // Primary key columns in table order (all rank 0, a stable sort); custom ones in the setting's order.
        key_fields.sort_by_key(|(rank, ..)| *rank);
        key_idx.sort_by_key(|(rank, _)| *rank);
        let key_fields = key_fields.into_iter().map(|(_, name, schema)| (name, schema)).collect();
        let key_idx = key_idx.into_iter().map(|(_, idx)| idx).collect();
        let envelope = Envelope::new(&topic, key_fields, row_fields, self.source_schema.clone());
        Ok(TableState {
            schema: schema.to_string(),
            table: table.to_string(),
            topic,
            envelope,
            columns,
            key_fields: key_idx,
            mappers,
            snapshot_select: self.s.snapshot_select.get(&format!("{schema_name}.{table}")).cloned(),
            captured,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn source_value(
        &self,
        t: &TableState,
        ts_us: i64,
        snapshot: SnapshotMarker,
        tx_id: Option<u64>,
        lsn: u64,
        last_commit: Option<u64>,
    ) -> Value {
        source_value(&self.s.topic_prefix, &self.s.dbname, t, ts_us, snapshot, tx_id, lsn, last_commit)
    }

    fn record(&self, t: &TableState, key: Value, value: Value, offset: serde_json::Value) -> SourceRecord {
        record(&self.partition, &self.headers, t, key, value, offset)
    }

    /// Reads every captured table in one snapshot: the one a slot created now exported, or (an existing slot) one
    /// this connection takes and, for other connections, exports. `snapshot.max.threads` connections read it in
    /// chunks ([`crate::snapshot`]); this connection is one of them, and this task emits what they read.
    async fn snapshot(&mut self, client: &Client, exported: Option<&str>, lsn: u64) -> Result<(), ConnectError> {
        let tables = self.list_tables(client).await?;
        let threads = self.s.snapshot_max_threads;
        let tasks = self.split.as_ref().map_or(1, |s| s.tasks);
        tracing::info!(tables = tables.len(), threads, tasks, lsn = %repl::format_lsn(lsn), "snapshot starting");
        let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;");
        if let Some(name) = exported {
            sql.push_str(&format!("SET TRANSACTION SNAPSHOT {};", quote_literal(name)));
        }
        client.batch_execute(&sql).await.map_err(|e| pg_err("starting the snapshot transaction", e))?;
        let xid: i64 = client
            .query_one("SELECT txid_snapshot_xmin(txid_current_snapshot())", &[])
            .await
            .map_err(|e| pg_err("reading the snapshot xid", e))?
            .get(0);
        let started_us = now_us();
        let mut states = Vec::with_capacity(tables.len());
        for (schema, table) in &tables {
            states.push(Arc::new(self.table_state(client, schema, table, None).await?));
        }
        let mut shares = split::deal(self.plan_chunks(client, &states).await?, tasks).into_iter();
        let chunks = shares.next().unwrap_or_default();
        let readers = threads.min(chunks.len()).max(1);
        let snapshot_name = match exported {
            Some(name) => name.to_string(),
            None if readers > 1 || tasks > 1 => client
                .query_one("SELECT pg_export_snapshot()", &[])
                .await
                .map_err(|e| pg_err("exporting the snapshot", e))?
                .get(0),
            None => String::new(),
        };
        // The other tasks' shares, for them to read in the same snapshot while this transaction (or the slot's
        // exporting one) stays open: until they are done (see `crate::split`).
        let generation = match &self.split {
            Some(split) => {
                let plan = SnapshotPlan {
                    generation: headers::uuid_v7(),
                    snapshot: snapshot_name.clone(),
                    xid,
                    lsn,
                    started_us,
                    tables: tables.clone(),
                    chunks: shares.enumerate().map(|(i, c)| (i as u32 + 1, c)).collect(),
                };
                let value = serde_json::to_value(&plan).map_err(|e| fatal(format!("snapshot plan: {e}")))?;
                split.shared.put(split::PLAN_KEY, value);
                tracing::info!(generation = %plan.generation, tasks, "snapshot plan published for the other tasks");
                wait_for_tasks(
                    &split.shared,
                    &plan.generation,
                    tasks,
                    "to follow the snapshot plan",
                    split::not_started,
                )
                .await?;
                Some(plan.generation)
            }
            None => None,
        };
        let mut chunks_left = vec![0usize; states.len()];
        for c in &chunks {
            chunks_left[c.table] += 1;
        }
        tracing::info!(chunks = chunks.len(), readers, "snapshot chunks planned");
        let ctx = Arc::new(SnapshotContext {
            tables: states,
            topic_prefix: self.s.topic_prefix.clone(),
            dbname: self.s.dbname.clone(),
            partition: self.partition.clone(),
            headers: self.headers.clone(),
            xid,
            lsn,
            started_us,
            fetch_size: self.s.snapshot_fetch_size,
        });
        let queue: ChunkQueue = Arc::new(std::sync::Mutex::new(chunks.into()));
        // Bounded: a reader that is ahead waits; with the task's queue (max.queue.size) this bounds memory.
        let (tx, mut rx) = mpsc::channel::<ReaderMessage>(readers * 2);
        let mut workers = self.spawn_readers(readers - 1, &ctx, &queue, &tx, &snapshot_name);
        let this: &Reader = self;
        let ctx_ref = &ctx;
        let queue_ref = &queue;
        let inline = async move {
            if let Err(e) = read_chunks(client, ctx_ref, queue_ref, &tx).await {
                let _ = tx.send(ReaderMessage::Failed(e)).await;
            }
        };
        let split_snapshot = generation.is_some();
        let emit = async move {
            let mut markers = MarkerAssigner::default();
            while let Some(m) = rx.recv().await {
                match m {
                    ReaderMessage::Rows { table, records } => {
                        this.send_all(with_markers(markers.push(table, records))).await?;
                    }
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
                return Err(ConnectError::retriable(
                    "snapshot",
                    std::io::Error::other("a snapshot reader stopped before reading its chunks"),
                ));
            }
            let mut rest = with_markers(markers.finish());
            // Split: the record marked `last` (its offset says the snapshot is complete) waits for the other shares.
            let last = if split_snapshot { rest.pop() } else { None };
            this.send_all(rest).await?;
            Ok(last)
        };
        // An error ends the snapshot: dropping the join set aborts the other readers.
        let ((), emitted) = tokio::join!(inline, emit);
        let last = emitted?;
        while workers.join_next().await.is_some() {}
        if let (Some(generation), Some(split)) = (&generation, &self.split) {
            wait_for_tasks(&split.shared, generation, tasks, "to finish their snapshot shares", split::pending_shares)
                .await?;
            if let Some(last) = last {
                self.send_all(vec![last]).await?;
            }
        }
        client.batch_execute("COMMIT").await.map_err(|e| pg_err("ending the snapshot", e))?;
        tracing::info!("snapshot done");
        Ok(())
    }

    /// `n` more connections that import `snapshot_name` and read chunks from `queue` until it is empty.
    fn spawn_readers(
        &self,
        n: usize,
        ctx: &Arc<SnapshotContext>,
        queue: &ChunkQueue,
        tx: &mpsc::Sender<ReaderMessage>,
        snapshot_name: &str,
    ) -> tokio::task::JoinSet<()> {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (ctx, queue, tx, name) = (ctx.clone(), queue.clone(), tx.clone(), snapshot_name.to_string());
            let connect = self.catalog_config();
            workers.spawn(async move {
                let read = async {
                    let (client, conn) =
                        connect.connect(NoTls).await.map_err(|e| pg_err("connecting a snapshot reader", e))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client
                        .batch_execute(&format!(
                            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                            quote_literal(&name)
                        ))
                        .await
                        .map_err(|e| pg_err("importing the snapshot", e))?;
                    read_chunks(&client, &ctx, &queue, &tx).await?;
                    client.batch_execute("COMMIT").await.map_err(|e| pg_err("ending the snapshot", e))
                };
                if let Err(e) = read.await {
                    let _ = tx.send(ReaderMessage::Failed(e)).await;
                }
            });
        }
        workers
    }

    /// A task other than 0 of a split snapshot: reads its share of every plan task 0 publishes (one not done yet),
    /// marks it done once Kafka acknowledged every record of it, and otherwise idles. A new plan (task 0 started
    /// over) abandons the share being read.
    async fn read_shares(self, mut acked: watch::Receiver<(String, u64)>, waiting: Arc<std::sync::atomic::AtomicBool>) {
        let Some(split) = self.split.clone() else { return };
        let mut values = split.shared.watch();
        let mut backoff = Duration::from_millis(500);
        loop {
            let plan = {
                let current = values.borrow_and_update().clone();
                current.and_then(|v| split::share_to_read(&v, split.task))
            };
            let Some(plan) = plan else {
                if values.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let generation = plan.generation.clone();
            let superseded = {
                let mut values = values.clone();
                async move {
                    loop {
                        if values.changed().await.is_err() {
                            return std::future::pending().await;
                        }
                        let newer = values.borrow_and_update().as_deref().and_then(split::plan);
                        if newer.is_some_and(|p| p.generation != generation) {
                            return;
                        }
                    }
                }
            };
            let read = tokio::select! {
                r = self.read_share(&plan, split.task, &mut acked, &waiting) => r,
                () = superseded => {
                    tracing::info!(task = split.task, generation = %plan.generation, "snapshot plan replaced; following the new one");
                    continue;
                }
            };
            match read {
                Ok(records) => {
                    tracing::info!(task = split.task, generation = %plan.generation, records, "snapshot share done");
                    let done = ShareDone { generation: plan.generation.clone(), records };
                    split.shared.put(&split::done_key(split.task), serde_json::to_value(done).unwrap_or_default());
                    backoff = Duration::from_millis(500);
                    // Wait for the write to show (or a new plan) before looking again.
                    let mut values = values.clone();
                    let task = split.task;
                    let _ = split
                        .shared
                        .wait_for(|v| {
                            (split::share_to_read(v, task).is_none()
                                || split::plan(v).is_some_and(|p| p.generation != plan.generation))
                            .then_some(())
                        })
                        .await;
                    values.mark_changed();
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(task = split.task, generation = %plan.generation, error = %e.trace(),
                        "reading the snapshot share failed (is task 0 still exporting this snapshot?); retrying in {:?}", backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Reads this task's share of `plan` in its snapshot and waits until Kafka acknowledged all of it. Returns
    /// how many records it holds.
    async fn read_share(
        &self,
        plan: &SnapshotPlan,
        task: u32,
        acked: &mut watch::Receiver<(String, u64)>,
        waiting: &std::sync::atomic::AtomicBool,
    ) -> Result<u64, ConnectError> {
        // Whatever this returns with (done, failed, superseded), nothing waits on acknowledgements any more.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _reset = Waiting(waiting);
        // What this task read for an older generation must be in Kafka before task 0 reads the new one.
        let previous = self.last_sent.lock().ok().and_then(|l| l.clone());
        if let Some(previous) = previous
            && let (Some(generation), Some(records)) =
                (previous.get("generation").and_then(|g| g.as_str()), previous.get("records").and_then(|n| n.as_u64()))
            && generation != plan.generation
        {
            waiting.store(true, std::sync::atomic::Ordering::Relaxed);
            acked.wait_for(|(g, n)| g == generation && *n >= records).await.map_err(|_| fatal("task stopped"))?;
        }
        if let Some(split) = &self.split {
            split.shared.put(&split::started_key(task), json!({"generation": plan.generation}));
        }
        let chunks = plan.chunks.get(&task).cloned().unwrap_or_default();
        tracing::info!(task, generation = %plan.generation, chunks = chunks.len(), "reading a snapshot share");
        if chunks.is_empty() {
            return Ok(0);
        }
        let client = self.catalog().await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&plan.snapshot)
            ))
            .await
            .map_err(|e| pg_err("importing the snapshot of task 0", e))?;
        let mut states = Vec::with_capacity(plan.tables.len());
        for (schema, table) in &plan.tables {
            states.push(Arc::new(self.table_state(&client, schema, table, None).await?));
        }
        let mut chunks_left = chunks.len();
        let readers = self.s.snapshot_max_threads.min(chunks.len()).max(1);
        let ctx = Arc::new(SnapshotContext {
            tables: states,
            topic_prefix: self.s.topic_prefix.clone(),
            dbname: self.s.dbname.clone(),
            partition: self.partition.clone(),
            headers: self.headers.clone(),
            xid: plan.xid,
            lsn: plan.lsn,
            started_us: plan.started_us,
            fetch_size: self.s.snapshot_fetch_size,
        });
        let queue: ChunkQueue = Arc::new(std::sync::Mutex::new(chunks.into()));
        let (tx, mut rx) = mpsc::channel::<ReaderMessage>(readers * 2);
        let mut workers = self.spawn_readers(readers - 1, &ctx, &queue, &tx, &plan.snapshot);
        let (ctx_ref, queue_ref, client_ref) = (&ctx, &queue, &client);
        let inline = async move {
            if let Err(e) = read_chunks(client_ref, ctx_ref, queue_ref, &tx).await {
                let _ = tx.send(ReaderMessage::Failed(e)).await;
            }
        };
        let emit = async {
            // Records of a share are all `source.snapshot=true`; the offset counts them, so `commit` tells when Kafka
            // has every one.
            let mut records = 0u64;
            while let Some(m) = rx.recv().await {
                match m {
                    ReaderMessage::Rows { records: mut batch, .. } => {
                        for r in batch.iter_mut() {
                            records += 1;
                            r.source_offset = json!({"generation": plan.generation, "records": records});
                        }
                        self.send_all(batch).await?;
                    }
                    ReaderMessage::ChunkDone { .. } => chunks_left -= 1,
                    ReaderMessage::Failed(e) => return Err(e),
                }
            }
            if chunks_left > 0 {
                return Err(ConnectError::retriable(
                    "snapshot share",
                    std::io::Error::other("a snapshot reader stopped before reading its chunks"),
                ));
            }
            Ok(records)
        };
        let ((), emitted) = tokio::join!(inline, emit);
        let records = emitted?;
        while workers.join_next().await.is_some() {}
        client.batch_execute("COMMIT").await.map_err(|e| pg_err("ending the snapshot", e))?;
        if records > 0 {
            tracing::info!(task, records, "snapshot share read; waiting for Kafka to acknowledge it");
            waiting.store(true, std::sync::atomic::Ordering::Relaxed);
            acked
                .wait_for(|(generation, n)| *generation == plan.generation && *n >= records)
                .await
                .map_err(|_| fatal("task stopped"))?;
        }
        Ok(records)
    }

    /// Connections reading the snapshot, over every task that shares it: what large tables are split for.
    fn snapshot_connections(&self) -> usize {
        self.s.snapshot_max_threads * self.split.as_ref().map_or(1, |s| s.tasks)
    }

    /// The chunks to read, table by table: whole tables with one thread; with more, each large table in ranges
    /// of its single integer primary key or, without one, of its heap blocks.
    async fn plan_chunks(&self, client: &Client, states: &[Arc<TableState>]) -> Result<Vec<Chunk>, ConnectError> {
        let threads = self.snapshot_connections();
        let mut chunks = Vec::new();
        let version: i32 = if threads > 1 {
            client
                .query_one("SELECT current_setting('server_version_num')::int4", &[])
                .await
                .map_err(|e| pg_err("reading the server version", e))?
                .get(0)
        } else {
            0
        };
        for (table, t) in states.iter().enumerate() {
            let ranges = if threads > 1 { self.split(client, t, version).await? } else { vec![RowRange::All] };
            chunks.extend(ranges.into_iter().map(|range| Chunk { table, range }));
        }
        Ok(chunks)
    }

    async fn split(&self, client: &Client, t: &TableState, version: i32) -> Result<Vec<RowRange>, ConnectError> {
        if t.snapshot_select.is_some() {
            // The user's statement is read as it is, by one connection.
            return Ok(vec![RowRange::All]);
        }
        let qualified = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.table));
        let plan = client
            .simple_query(&format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {qualified}"))
            .await
            .map_err(|e| pg_err("estimating the table size", e))?;
        // The planner's estimate: reltuples scaled to the table's current size (or a guess from the size when
        // the table was never analyzed).
        let estimated = plan
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
            .and_then(|j| j[0]["Plan"]["Plan Rows"].as_f64())
            .unwrap_or(0.0);
        let k = chunk_count(estimated.max(0.0) as u64, self.snapshot_connections(), self.s.snapshot_fetch_size);
        if k <= 1 {
            return Ok(vec![RowRange::All]);
        }
        let pk: Vec<_> = self.columns(client, &t.schema, &t.table).await?.into_iter().filter(|(_, pk)| *pk).collect();
        if let [(col, _)] = pk.as_slice()
            && matches!(col.type_name.as_str(), "int2" | "int4" | "int8")
        {
            let q = quote_ident(&col.name);
            let row = client
                .query_one(&format!("SELECT min({q})::int8, max({q})::int8 FROM {qualified}"), &[])
                .await
                .map_err(|e| pg_err("reading the key range", e))?;
            let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
            return Ok(match (min, max) {
                (Some(min), Some(max)) => key_ranges(&col.name, min, max, k),
                _ => vec![RowRange::All],
            });
        }
        // No single integer key: ranges of heap blocks, which PostgreSQL 14+ reads with a TID range scan (older
        // servers would scan the whole table for each range). Partitioned tables have no blocks of their own.
        let row = client
            .query_one(
                "SELECT c.relkind::text, pg_relation_size(c.oid) / current_setting('block_size')::int8 \
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&qualified],
            )
            .await
            .map_err(|e| pg_err("reading the table size", e))?;
        let (kind, blocks): (String, i64) = (row.get(0), row.get(1));
        if version >= 140_000 && kind == "r" && blocks >= 2 {
            return Ok(block_ranges(blocks as u64, k));
        }
        Ok(vec![RowRange::All])
    }

    async fn stream(&mut self, client: &Client, mut repl: ReplConnection) -> Result<(), ConnectError> {
        repl.start_replication(&self.s.slot_name, 0, &self.s.publication_name)
            .await
            .map_err(|e| repl_err("starting replication", e))?;
        tracing::info!(slot = %self.s.slot_name, confirmed = %repl::format_lsn(self.confirmed), "streaming");
        let status_every = Duration::from_millis(self.s.status_update_interval_ms);
        let heartbeat_every =
            (self.s.heartbeat_interval_ms > 0).then(|| Duration::from_millis(self.s.heartbeat_interval_ms));
        let mut status_tick = tokio::time::interval(status_every);
        let mut heartbeat_tick = tokio::time::interval(heartbeat_every.unwrap_or(Duration::from_secs(3600)));
        let mut in_tx: Option<(u32, i64, u64, bool, TransactionCounter)> = None; // xid, commit ts µs, final lsn, skip
        let mut wal_seen = 0u64;
        let mut relation_names: HashMap<u32, (String, String, Vec<String>)> = HashMap::new();
        let mut ack = self.ack.clone();
        loop {
            let msg = tokio::select! {
                m = repl.next_message() => m.map_err(|e| repl_err("reading the replication stream", e))?,
                _ = status_tick.tick() => {
                    repl.send_status(self.confirmed, false).await.map_err(|e| repl_err("sending status", e))?;
                    continue;
                }
                _ = heartbeat_tick.tick(), if heartbeat_every.is_some() => {
                    // `heartbeat.action.query` (Debezium's DatabaseHeartbeatImpl): a write to the captured
                    // database on every beat, so its WAL moves and the slot can advance when only other
                    // databases are written.
                    if let Some(q) = &self.s.heartbeat_action_query {
                        client.batch_execute(q).await.map_err(|e| match e.as_db_error() {
                            // The database refused the statement: retrying will not help (Debezium fails too).
                            Some(db) if db.code().code() != "42501" => fatal(format!(
                                "heartbeat.action.query {q:?} failed: {} (SQLSTATE {}); fix the statement or remove \
                                 heartbeat.action.query",
                                db.message(),
                                db.code().code()
                            )),
                            _ => pg_err("executing heartbeat.action.query", e),
                        })?;
                    }
                    if in_tx.is_none() {
                        let pos = wal_seen.max(self.last_commit.unwrap_or(0));
                        if pos > 0 {
                            self.last_commit = Some(pos);
                            self.emit_heartbeat(pos).await?;
                        }
                    }
                    continue;
                }
                r = ack.changed() => {
                    if r.is_ok() {
                        let a = *ack.borrow_and_update();
                        if a > self.confirmed {
                            self.confirmed = a;
                            repl.send_status(self.confirmed, false).await.map_err(|e| repl_err("sending status", e))?;
                        }
                    }
                    continue;
                }
            };
            match msg {
                ReplMessage::Keepalive { wal_end, reply } => {
                    if in_tx.is_none() {
                        wal_seen = wal_seen.max(wal_end);
                    }
                    if reply {
                        repl.send_status(self.confirmed, false).await.map_err(|e| repl_err("sending status", e))?;
                    }
                }
                ReplMessage::CopyDone => {
                    return Err(ConnectError::retriable(
                        "replication stream",
                        std::io::Error::other("server ended the stream"),
                    ));
                }
                ReplMessage::XLogData { wal_start, data, .. } => {
                    let m = pgoutput::decode(data).map_err(|e| fatal(e.to_string()))?;
                    match m {
                        PgOutput::Begin { final_lsn, commit_ts, xid } => {
                            let skip = final_lsn < self.resume.commit_lsn;
                            self.last_commit_ts = Some(commit_ts + repl::PG_EPOCH_OFFSET_MICROS);
                            in_tx = Some((
                                xid,
                                commit_ts + repl::PG_EPOCH_OFFSET_MICROS,
                                final_lsn,
                                skip,
                                TransactionCounter::begin(xid.to_string()),
                            ));
                            if !skip && self.s.provide_transaction_metadata {
                                self.emit_tx_begin(xid, commit_ts + repl::PG_EPOCH_OFFSET_MICROS, wal_start).await?;
                            }
                        }
                        PgOutput::Commit { end_lsn, .. } => {
                            if let Some((xid, ts, _, skip, counter)) = in_tx.take()
                                && !skip
                                && self.s.provide_transaction_metadata
                            {
                                self.emit_tx_end(xid, ts, wal_start, &counter).await?;
                            }
                            self.last_commit = Some(end_lsn);
                            wal_seen = wal_seen.max(end_lsn);
                        }
                        PgOutput::Relation(rel) => {
                            if let Some((xid, ..)) = &in_tx {
                                wait_visible(client, *xid, Duration::from_secs(5)).await;
                            }
                            let names: Vec<String> = rel.columns.iter().map(|c| c.name.clone()).collect();
                            let state = self.table_state(client, &rel.namespace, &rel.name, Some(&names)).await?;
                            self.tables.insert(rel.id, state);
                            relation_names.insert(rel.id, (rel.namespace, rel.name, names));
                        }
                        PgOutput::Insert { .. }
                        | PgOutput::Update { .. }
                        | PgOutput::Delete { .. }
                        | PgOutput::Truncate { .. } => {
                            let Some((xid, ts, _, skip, counter)) = in_tx.as_mut() else { continue };
                            if *skip {
                                continue;
                            }
                            if self.resume.tx_id == Some(*xid as u64) && wal_start <= self.resume.lsn {
                                continue;
                            }
                            let (xid, ts) = (*xid, *ts);
                            self.change(m, xid, ts, wal_start, counter).await?;
                        }
                        PgOutput::Message { transactional: true, prefix, content, .. } => {
                            let Some((xid, ts, _, skip, counter)) = in_tx.as_mut() else { continue };
                            if *skip || (self.resume.tx_id == Some(*xid as u64) && wal_start <= self.resume.lsn) {
                                continue;
                            }
                            let (xid, ts) = (*xid, *ts);
                            self.logical_message(&prefix, &content, Some((xid, ts, counter)), wal_start).await?;
                        }
                        PgOutput::Message { transactional: false, prefix, content, .. } => {
                            // Decoded where it was written, outside any transaction; it is its own commit point.
                            if wal_start < self.resume.commit_lsn
                                || (wal_start == self.resume.commit_lsn && self.resume.after_message)
                            {
                                continue;
                            }
                            self.last_commit = Some(wal_start);
                            wal_seen = wal_seen.max(wal_start);
                            self.logical_message(&prefix, &content, None, wal_start).await?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// A logical decoding message: in a transaction (`tx`: xid, commit time, event counter) or not.
    async fn logical_message(
        &self,
        prefix: &str,
        content: &[u8],
        tx: Option<(u32, i64, &mut TransactionCounter)>,
        lsn: u64,
    ) -> Result<(), ConnectError> {
        if !self.s.message_prefixes.accepts(prefix) {
            return Ok(());
        }
        let (xid, ts) = match &tx {
            Some((xid, ts, _)) => (Some(*xid), Some(*ts)),
            None => (None, self.last_commit_ts),
        };
        let mut offset = serde_json::Map::new();
        offset.insert("lsn_proc".into(), json!(lsn));
        offset.insert("messageType".into(), json!("MESSAGE"));
        if let Some(c) = self.last_commit {
            offset.insert("lsn_commit".into(), json!(c));
        }
        offset.insert("lsn".into(), json!(lsn));
        if let Some(x) = xid {
            offset.insert("txId".into(), json!(x));
        }
        if let Some(ts) = ts {
            offset.insert("ts_usec".into(), json!(ts));
        }
        let block = match tx {
            Some((_, _, counter)) if self.s.provide_transaction_metadata => {
                let mut b = counter.next(message::DATA_COLLECTION);
                b.id = format!("{}:{}", counter.id, self.last_commit.unwrap_or(0));
                Some(b)
            }
            _ => None,
        };
        let source = source_struct(
            &self.s.topic_prefix,
            &self.s.dbname,
            ("", ""),
            ts.unwrap_or_else(now_us),
            SnapshotMarker::False,
            xid.map(u64::from),
            lsn,
            self.last_commit,
        );
        let r = SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: serde_json::Value::Object(offset),
            topic: message::topic(&self.s.topic_prefix),
            partition: None,
            key_schema: Some(self.messages.key.clone()),
            key: self.messages.key(prefix),
            value_schema: Some(self.messages.value.clone()),
            value: self.messages.value(prefix, content, source, block.as_ref(), ProcessingTime::now().ms()),
            timestamp: None,
            // Debezium adds the context headers to table change events only.
            headers: Vec::new(),
        };
        self.send(r).await
    }

    async fn emit_heartbeat(&self, pos: u64) -> Result<(), ConnectError> {
        let offset = json!({"lsn_proc": pos, "lsn_commit": pos, "lsn": pos, "ts_usec": now_us()});
        let topic = heartbeat::topic(&self.s.heartbeat_topic_prefix, &self.s.topic_delimiter, &self.s.topic_prefix);
        let r = heartbeat::record(
            topic,
            &self.s.topic_prefix,
            ProcessingTime::now().ms(),
            self.partition.clone(),
            offset,
            self.headers.clone(),
        );
        self.send(r).await
    }

    fn tx_offset(&self, lsn: u64, xid: u32, ts: i64, kind: &str) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("lsn_proc".into(), json!(lsn));
        o.insert("messageType".into(), json!(kind));
        if let Some(c) = self.last_commit {
            o.insert("lsn_commit".into(), json!(c));
        }
        o.insert("lsn".into(), json!(lsn));
        o.insert("txId".into(), json!(xid));
        o.insert("ts_usec".into(), json!(ts));
        serde_json::Value::Object(o)
    }

    async fn emit_tx_begin(&self, xid: u32, ts: i64, lsn: u64) -> Result<(), ConnectError> {
        let id = format!("{xid}:{lsn}");
        let r = self.tx_record(&id, transaction::begin_value(&id, ts / 1000), self.tx_offset(lsn, xid, ts, "BEGIN"));
        self.send(r).await
    }

    async fn emit_tx_end(&self, xid: u32, ts: i64, lsn: u64, c: &TransactionCounter) -> Result<(), ConnectError> {
        let id = format!("{xid}:{lsn}");
        let v = transaction::end_value(&id, ts / 1000, c.total, &c.per_collection);
        let r = self.tx_record(&id, v, self.tx_offset(lsn, xid, ts, "COMMIT"));
        self.send(r).await
    }

    fn tx_record(&self, id: &str, value: Value, offset: serde_json::Value) -> SourceRecord {
        SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: offset,
            topic: transaction::topic(&self.s.topic_prefix, &self.s.topic_delimiter, &self.s.transaction_topic),
            partition: None,
            key_schema: Some(transaction::key_schema()),
            key: transaction::key(id),
            value_schema: Some(transaction::value_schema()),
            value,
            timestamp: None,
            // Debezium writes transaction metadata records without the context headers.
            headers: Vec::new(),
        }
    }

    async fn change(
        &mut self,
        m: PgOutput,
        xid: u32,
        ts: i64,
        lsn: u64,
        counter: &mut TransactionCounter,
    ) -> Result<(), ConnectError> {
        let placeholder = self.s.unavailable_placeholder.clone();
        let (relation, op) = match &m {
            PgOutput::Insert { relation, .. } => (*relation, Op::Create),
            PgOutput::Update { relation, .. } => (*relation, Op::Update),
            PgOutput::Delete { relation, .. } => (*relation, Op::Delete),
            PgOutput::Truncate { relations, .. } => {
                if self.s.skipped.skips(Op::Truncate) {
                    return Ok(());
                }
                for rel in relations.clone() {
                    let Some(t) = self.tables.get(&rel) else { continue };
                    if !t.captured {
                        continue;
                    }
                    let tb = self.tx_block(counter, t);
                    let source =
                        self.source_value(t, ts, SnapshotMarker::False, Some(xid as u64), lsn, self.last_commit);
                    let value = t.envelope.value(
                        Value::Null,
                        Value::Null,
                        source,
                        tb.as_ref(),
                        Op::Truncate,
                        ProcessingTime::now(),
                    );
                    let mut r = self.record(t, Value::Null, value, self.tx_offset(lsn, xid, ts, "TRUNCATE"));
                    r.key_schema = None;
                    self.send(r).await?;
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        if self.s.skipped.skips(op) {
            return Ok(());
        }
        let Some(t) = self.tables.get(&relation) else {
            return Err(fatal(format!("change for unknown relation {relation}")));
        };
        if !t.captured {
            return Ok(());
        }
        let kind = match op {
            Op::Create => "INSERT",
            Op::Update => "UPDATE",
            _ => "DELETE",
        };
        let offset = self.tx_offset(lsn, xid, ts, kind);
        let (mut before, mut after) = match &m {
            PgOutput::Insert { new, .. } => (Value::Null, t.row(new, &placeholder, false)?),
            PgOutput::Update { old, new, .. } => {
                let before = match old {
                    Some((key_only, tuple)) => t.row(tuple, &placeholder, *key_only)?,
                    None => Value::Null,
                };
                (before, t.row(new, &placeholder, false)?)
            }
            PgOutput::Delete { old, key_only, .. } => (t.row(old, &placeholder, *key_only)?, Value::Null),
            _ => unreachable!(),
        };
        let now = ProcessingTime::now();
        let source = self.source_value(t, ts, SnapshotMarker::False, Some(xid as u64), lsn, self.last_commit);
        // The keys come from the rows as read, the values through the column mappers.
        let (old_key, new_key) = (t.key(&before), t.key(&after));
        t.map_values(&mut before);
        t.map_values(&mut after);
        // A primary key change: delete (+ tombstone) of the old key, then create of the new one.
        if op == Op::Update && before != Value::Null && t.envelope.key_schema.is_some() && old_key != new_key {
            let tb = self.tx_block(counter, t);
            let del = t.envelope.value(before.clone(), Value::Null, source.clone(), tb.as_ref(), Op::Delete, now);
            let mut r = self.record(t, old_key.clone(), del, offset.clone());
            let nk = key_json(&new_key, t);
            let ok = key_json(&old_key, t);
            r.headers.insert(0, (headers::NEW_KEY.to_string(), Some(Bytes::from(nk))));
            let tomb = self.s.tombstones_on_delete.then(|| tombstone(&r));
            self.send(r).await?;
            if let Some(tomb) = tomb {
                self.send(tomb).await?;
            }
            let tb = self.tx_block(counter, t);
            let t = &self.tables[&relation];
            let c = t.envelope.value(Value::Null, after, source, tb.as_ref(), Op::Create, now);
            let mut r = self.record(t, new_key, c, offset);
            r.headers.insert(0, (headers::OLD_KEY.to_string(), Some(Bytes::from(ok))));
            return self.send(r).await;
        }
        let key = match op {
            Op::Delete => old_key,
            _ => new_key,
        };
        let tb = self.tx_block(counter, t);
        let value = t.envelope.value(before, after, source, tb.as_ref(), op, now);
        let r = self.record(t, key, value, offset);
        let tomb = (op == Op::Delete && self.s.tombstones_on_delete).then(|| tombstone(&r));
        self.send(r).await?;
        if let Some(tomb) = tomb {
            self.send(tomb).await?;
        }
        Ok(())
    }

    fn tx_block(&self, counter: &mut TransactionCounter, t: &TableState) -> Option<sluice_debezium::TransactionBlock> {
        if !self.s.provide_transaction_metadata {
            return None;
        }
        let mut b = counter.next(&format!("{}.{}", t.schema, t.table));
        b.id = format!("{}:{}", counter.id, self.last_commit.unwrap_or(0));
        Some(b)
    }
}

/// Waits until `pending` names no task for `generation`, saying now and then which ones it waits for.
async fn wait_for_tasks(
    shared: &SharedState,
    generation: &str,
    tasks: usize,
    what: &str,
    pending: fn(&sluice_connect_api::shared::SharedValues, &str, usize) -> Vec<u32>,
) -> Result<(), ConnectError> {
    let mut values = shared.watch();
    let mut last_log = tokio::time::Instant::now();
    loop {
        let pending = values.borrow_and_update().as_deref().map(|v| pending(v, generation, tasks));
        match pending {
            Some(p) if p.is_empty() => {
                tracing::info!(generation, tasks, "every other task is ready ({what})");
                return Ok(());
            }
            Some(p) if last_log.elapsed() >= Duration::from_secs(30) => {
                tracing::info!(generation, tasks = ?p, "waiting for other tasks {what}");
                last_log = tokio::time::Instant::now();
            }
            _ => {}
        }
        // Woken by a change, or every 30 s to say what it still waits for.
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(30), values.changed()).await {
            return Err(fatal("the connector's shared state was closed"));
        }
    }
}

fn with_markers(records: Vec<(SourceRecord, SnapshotMarker)>) -> Vec<SourceRecord> {
    records
        .into_iter()
        .map(|(mut r, marker)| {
            set_marker(&mut r, marker);
            r
        })
        .collect()
}

/// The PostgreSQL `source` block of an event of table `t`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn source_value(
    topic_prefix: &str,
    dbname: &str,
    t: &TableState,
    ts_us: i64,
    snapshot: SnapshotMarker,
    tx_id: Option<u64>,
    lsn: u64,
    last_commit: Option<u64>,
) -> Value {
    source_struct(topic_prefix, dbname, (&t.schema, &t.table), ts_us, snapshot, tx_id, lsn, last_commit)
}

/// The PostgreSQL `source` block of an event of `(schema, table)` (both empty for a logical decoding message).
#[allow(clippy::too_many_arguments)]
fn source_struct(
    topic_prefix: &str,
    dbname: &str,
    (schema, table): (&str, &str),
    ts_us: i64,
    snapshot: SnapshotMarker,
    tx_id: Option<u64>,
    lsn: u64,
    last_commit: Option<u64>,
) -> Value {
    let sequence =
        serde_json::to_string(&json!([last_commit.map(|l| l.to_string()), lsn.to_string()])).unwrap_or_default();
    let mut v = CommonSource {
        version: VERSION,
        connector: CONNECTOR,
        name: topic_prefix,
        ts_us,
        snapshot,
        db: dbname,
        sequence: Some(sequence),
    }
    .values();
    v.extend([
        Value::String(schema.to_string()),
        Value::String(table.to_string()),
        tx_id.map(|x| Value::Int64(x as i64)).unwrap_or(Value::Null),
        Value::Int64(lsn as i64),
        Value::Null,
        Value::Null,
        Value::Null,
    ]);
    Value::Struct(v)
}

/// A data record of table `t`.
pub(crate) fn record(
    partition: &Arc<serde_json::Map<String, serde_json::Value>>,
    headers: &[(String, Option<Bytes>)],
    t: &TableState,
    key: Value,
    value: Value,
    offset: serde_json::Value,
) -> SourceRecord {
    SourceRecord {
        source_partition: partition.clone(),
        source_offset: offset,
        topic: t.topic.clone(),
        partition: None,
        key_schema: t.envelope.key_schema.clone(),
        key,
        value_schema: Some(t.envelope.schema.clone()),
        value,
        timestamp: None,
        headers: headers.to_vec(),
    }
}

/// The `__debezium.newkey`/`oldkey` header text: the key as JSON (`{"id":10}`), as Debezium's headers show it.
fn key_json(key: &Value, t: &TableState) -> String {
    let Some(schema) = t.envelope.key_schema.as_ref() else { return String::new() };
    let Value::Struct(vals) = key else { return String::new() };
    let mut m = serde_json::Map::new();
    for (f, v) in schema.fields.iter().zip(vals) {
        let j = match v {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => json!(b),
            Value::Int8(n) => json!(n),
            Value::Int16(n) => json!(n),
            Value::Int32(n) => json!(n),
            Value::Int64(n) => json!(n),
            Value::Float32(n) => json!(n),
            Value::Float64(n) => json!(n),
            Value::String(s) => json!(s),
            other => {
                let mut out = String::new();
                sluice_connect_api::values::write_text(Some(&f.schema), other, &mut out);
                json!(out)
            }
        };
        m.insert(f.name.clone(), j);
    }
    serde_json::Value::Object(m).to_string()
}

/// pgoutput hands a transaction out once its commit record is in the WAL, which can be a moment before the
/// transaction is visible to other sessions (the committing backend leaves the proc array after writing it). The
/// catalog read for a Relation message in that moment would see the table as it was before the transaction (an
/// ALTER's old column defaults). So: wait, bounded, until the transaction is no longer in progress in a fresh
/// snapshot (one cheap query; Relation messages come once per table and session and after schema changes).
pub(crate) async fn wait_visible(client: &Client, xid: u32, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let running = client
            .query_one(
                // the 32-bit xid widened with the snapshot's epoch (one back if that puts it far beyond xmax); a
                // transaction at or beyond xmax, or in xip, is still in progress
                "SELECT NOT txid_visible_in_snapshot(CASE WHEN c.x - txid_snapshot_xmax(c.snap) > 2147483648 \
                 THEN c.x - 4294967296 ELSE c.x END, c.snap) FROM (SELECT s.snap, \
                 ((txid_snapshot_xmax(s.snap) >> 32) << 32) + $1 AS x FROM (SELECT txid_current_snapshot() AS snap) s) c",
                &[&i64::from(xid)],
            )
            .await
            .map(|row| row.get::<_, bool>(0));
        match running {
            Ok(true) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(true) => {
                tracing::warn!(xid, "transaction still not visible after {bound:?}; reading the catalog anyway");
                return;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect(url: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
    }

    /// wait_visible returns only once a transaction is no longer in progress (here: when it commits, 300 ms in),
    /// and at once for one that is not running. Needs SLUICE_TEST_PG.
    #[tokio::test]
    async fn waits_until_a_transaction_is_visible() {
        let Ok(url) = std::env::var("SLUICE_TEST_PG") else {
            eprintln!("SLUICE_TEST_PG not set: skipping");
            return;
        };
        let (writer, reader) = (connect(&url).await, connect(&url).await);
        writer.batch_execute("BEGIN").await.unwrap();
        let xid: i64 = writer.query_one("SELECT txid_current()", &[]).await.unwrap().get(0);
        let xid = (xid % (1 << 32)) as u32;
        let started = std::time::Instant::now();
        let commit = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            writer.batch_execute("COMMIT").await.unwrap();
        });
        wait_visible(&reader, xid, Duration::from_secs(10)).await;
        let waited = started.elapsed();
        commit.await.unwrap();
        assert!(waited >= Duration::from_millis(300), "returned after {waited:?}, before the commit");
        assert!(waited < Duration::from_secs(5), "returned after {waited:?}");
        let started = std::time::Instant::now();
        wait_visible(&reader, xid, Duration::from_secs(10)).await;
        assert!(started.elapsed() < Duration::from_millis(200), "a committed transaction waited");
    }
}
