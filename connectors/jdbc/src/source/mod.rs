//! The JDBC source: drop-in for Confluent's `io.confluent.connect.jdbc.JdbcSourceConnector` (10.9.x keys,
//! defaults, SQL, record schemas and source offsets) on PostgreSQL and MySQL/MariaDB.
//!
//! Each task keeps a queue of "queriers" (one per table, or one for `query`), as Confluent's `JdbcSourceTask`:
//! the head querier runs its query (the same SQL Confluent builds: `SELECT * FROM t WHERE "t"."id" > ? ORDER BY
//! "t"."id" ASC`, ...) as a server-side cursor read in the background ([`db::start_query`]), `poll` hands out one
//! chunk of at most `batch.max.rows` rows at a time, and once the result is exhausted the querier goes to the back
//! of the queue and runs again `poll.interval.ms` after its last run.
//!
//! Tables across tasks: the connector is pure (it cannot list tables when the control plane splits the work), so
//! it makes `tasks.max` task configs (one with `query`) and task *i* of *n* reads the tables whose stable hash
//! (FNV-1a of the fully qualified name) mod *n* is *i*; each task lists the tables at start and every
//! `table.poll.interval.ms`, so new tables are picked up while running without a rebalance. Confluent's connector
//! lists the tables itself, makes min(tables, tasks.max) tasks with explicit table lists and asks for a
//! reconfiguration when the list changes; the assignment differs (and some tasks may be idle with fewer tables
//! than tasks), the records and offsets do not, since offsets are per table.
//!
//! Offsets are Confluent's: partition `{"protocol":"1","table":"<fqn>"}` (a legacy `{"table":"<name>"}` is read
//! too), `{"query":"query"}` with `query`; offset `{"incrementing":N}`, `{"timestamp":ms,"timestamp_nanos":ns}`
//! or all three; bulk mode (partition `{"table":"<name>"}`) stores none.

mod db;
pub mod values;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map as JsonMap, Value as Json, json};

use sluice_connect_api::config::{
    ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator, parse_list,
};
use sluice_connect_api::connector::{Connector, ConnectorType, SourceTask, SourceTaskContext};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::ConnectorPlugin;
use sluice_connect_api::record::{Schema, SourceRecord, Value};

pub use db::TableId;
use db::{Msg, Params, QuerySpec};
use values::{NumericMapping, Ts};

use crate::connection::{ConnectionParams, Dialect, Pool};
use crate::zone::{DbZone, INVALID_ZONE};

pub const SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
pub const SOURCE_TASK_CLASS: &str = "io.confluent.connect.jdbc.source.JdbcSourceTask";
/// The Confluent JDBC connector release whose keys and behaviour this source follows.
pub const SOURCE_VERSION: &str = "10.9.7";
/// Task keys of the split (Sluice's own; Confluent's tasks get a `tables` list instead).
pub const TASK_INDEX_CONFIG: &str = "sluice.jdbc.task.index";
pub const TASK_COUNT_CONFIG: &str = "sluice.jdbc.task.count";

pub const SOURCE_PLUGIN: ConnectorPlugin = ConnectorPlugin {
    class: SOURCE_CLASS,
    aliases: &["JdbcSourceConnector", "JdbcSource"],
    connector_type: ConnectorType::Source,
    version: SOURCE_VERSION,
    build: || Arc::new(JdbcSourceConnector),
};

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub mode: Mode,
    pub incrementing_column: String,
    pub timestamp_columns: Vec<String>,
    pub query: Option<String>,
    pub query_suffix: String,
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
    pub table_types: Vec<String>,
    pub topic_prefix: String,
    pub poll_interval: Duration,
    pub batch_max_rows: usize,
    pub table_poll_interval: Duration,
    pub timestamp_delay_ms: i64,
    pub timestamp_initial: Option<i64>,
    pub validate_non_null: bool,
    pub numeric_mapping: NumericMapping,
    pub quote: bool,
    pub schema_pattern: Option<String>,
    pub catalog_pattern: Option<String>,
    pub task_index: u64,
    pub task_count: u64,
    /// `db.timezone`.
    pub zone: DbZone,
}

fn get<'a>(c: &'a ConfigMap, k: &str) -> Option<&'a str> {
    c.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn num<T: std::str::FromStr>(c: &ConfigMap, k: &str, default: T) -> Result<T, ConnectError> {
    match get(c, k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConnectError::config(k, format!("Invalid value {v} for configuration {k}"))),
    }
}

fn list(c: &ConfigMap, k: &str) -> Vec<String> {
    get(c, k).map(|v| parse_list(v).into_iter().map(|s| s.to_string()).collect()).unwrap_or_default()
}

impl SourceSettings {
    pub fn from_config(c: &ConfigMap) -> Result<SourceSettings, ConnectError> {
        let mode = match get(c, "mode").unwrap_or("") {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            "timestamp+incrementing" => Mode::TimestampIncrementing,
            other => {
                return Err(ConnectError::config(
                    "mode",
                    format!(
                        "Invalid value {other} for configuration mode: String must be one of: bulk, timestamp, incrementing, timestamp+incrementing"
                    ),
                ));
            }
        };
        let timestamp_columns = list(c, "timestamp.column.name");
        if matches!(mode, Mode::Timestamp | Mode::TimestampIncrementing) && timestamp_columns.is_empty() {
            return Err(ConnectError::config(
                "timestamp.column.name",
                "Timestamp column name must be set for timestamp and timestamp+incrementing modes",
            ));
        }
        let mut whitelist = list(c, "table.whitelist");
        whitelist.extend(list(c, "table.include.list"));
        let mut blacklist = list(c, "table.blacklist");
        blacklist.extend(list(c, "table.exclude.list"));
        if !whitelist.is_empty() && !blacklist.is_empty() {
            return Err(ConnectError::config(
                "table.whitelist",
                "table.whitelist (table.include.list) and table.blacklist (table.exclude.list) are exclusive",
            ));
        }
        let query = get(c, "query").map(str::to_string);
        if query.is_some() && (!whitelist.is_empty() || !blacklist.is_empty()) {
            return Err(ConnectError::config("query", "query may not be combined with whole-table copying settings"));
        }
        let topic_prefix = c
            .get("topic.prefix")
            .cloned()
            .ok_or_else(|| ConnectError::config("topic.prefix", "Missing required configuration \"topic.prefix\""))?;
        let numeric_mapping = match get(c, "numeric.mapping").map(|s| s.to_ascii_lowercase()) {
            None if get(c, "numeric.precision.mapping").is_some_and(|v| v.eq_ignore_ascii_case("true")) => {
                NumericMapping::PrecisionOnly
            }
            None => NumericMapping::None,
            Some(m) => match m.as_str() {
                "none" => NumericMapping::None,
                "precision_only" => NumericMapping::PrecisionOnly,
                "best_fit" => NumericMapping::BestFit,
                "best_fit_eager_double" => NumericMapping::BestFitEagerDouble,
                other => {
                    return Err(ConnectError::config(
                        "numeric.mapping",
                        format!("Invalid value {other} for numeric.mapping"),
                    ));
                }
            },
        };
        let quote = match get(c, "quote.sql.identifiers").unwrap_or("always").to_ascii_lowercase().as_str() {
            "always" => true,
            "never" => false,
            other => return Err(ConnectError::config("quote.sql.identifiers", format!("Invalid value {other}"))),
        };
        // `TimeZoneValidator`, then `JdbcSourceConnectorConfig.zoneId()`: `ZoneId.of`, else with `SHORT_IDS`.
        let zone = match c.get("db.timezone").map(|s| s.trim()) {
            None => DbZone::UTC,
            Some(id) => DbZone::confluent(id).ok_or_else(|| {
                ConnectError::config(
                    "db.timezone",
                    format!("Invalid value {id} for configuration db.timezone: {INVALID_ZONE}"),
                )
            })?,
        };
        if let Some(g) = get(c, "timestamp.granularity")
            && g != "connect_logical"
        {
            return Err(ConnectError::config(
                "timestamp.granularity",
                format!(
                    "timestamp.granularity {g} is not supported by Sluice's JDBC source yet (only connect_logical)"
                ),
            ));
        }
        let table_types = {
            let t = list(c, "table.types");
            if t.is_empty() { vec!["TABLE".to_string()] } else { t }
        };
        Ok(SourceSettings {
            mode,
            incrementing_column: get(c, "incrementing.column.name").unwrap_or("").to_string(),
            timestamp_columns,
            query,
            query_suffix: get(c, "query.suffix").unwrap_or("").to_string(),
            whitelist,
            blacklist,
            table_types,
            topic_prefix,
            poll_interval: Duration::from_millis(num(c, "poll.interval.ms", 5000u64)?),
            batch_max_rows: num(c, "batch.max.rows", 100usize)?.max(1),
            table_poll_interval: Duration::from_millis(num(c, "table.poll.interval.ms", 60_000u64)?),
            timestamp_delay_ms: num(c, "timestamp.delay.interval.ms", 0i64)?,
            timestamp_initial: match get(c, "timestamp.initial") {
                None => None,
                Some(v) => Some(
                    v.parse().map_err(|_| ConnectError::config("timestamp.initial", format!("Invalid value {v}")))?,
                ),
            },
            validate_non_null: get(c, "validate.non.null").map(|v| !v.eq_ignore_ascii_case("false")).unwrap_or(true),
            numeric_mapping,
            quote,
            schema_pattern: get(c, "schema.pattern").map(str::to_string),
            catalog_pattern: get(c, "catalog.pattern").map(str::to_string),
            task_index: num(c, TASK_INDEX_CONFIG, 0u64)?,
            task_count: num(c, TASK_COUNT_CONFIG, 1u64)?.max(1),
            zone,
        })
    }
}

fn key(
    name: &'static str,
    t: ConfigType,
    default: DefaultValue,
    importance: Importance,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey::new(name, t, default, importance, doc)
}

fn v(s: &str) -> DefaultValue {
    DefaultValue::Value(s.to_string())
}

/// Confluent's `JdbcSourceConnectorConfig` keys (those Sluice reads, plus the common ones it accepts).
pub fn config_def() -> ConfigDef {
    use ConfigType::*;
    use Importance::*;
    ConfigDef::new()
        .define(key("connection.url", String, DefaultValue::Required, High, "JDBC connection URL: jdbc:postgresql://..., jdbc:mysql://... or jdbc:mariadb://..."))
        .define(key("connection.user", String, DefaultValue::Null, High, "JDBC connection user."))
        .define(key("connection.password", Password, DefaultValue::Null, High, "JDBC connection password."))
        .define(key("connection.attempts", Int, v("3"), Low, "Maximum number of attempts to retrieve a valid JDBC connection."))
        .define(key("connection.backoff.ms", Long, v("10000"), Low, "Backoff time in milliseconds between connection attempts."))
        .define(key("catalog.pattern", String, DefaultValue::Null, Medium, "Catalog pattern to fetch table metadata from the database (MySQL: the database)."))
        .define(key("table.whitelist", List, v(""), Medium, "List of tables to include in copying."))
        .define(key("table.blacklist", List, v(""), Medium, "List of tables to exclude from copying."))
        .define(key("table.include.list", List, v(""), Medium, "List of tables to include in copying (alias of table.whitelist)."))
        .define(key("table.exclude.list", List, v(""), Medium, "List of tables to exclude from copying (alias of table.blacklist)."))
        .define(key("schema.pattern", String, DefaultValue::Null, High, "Schema pattern to fetch table metadata from the database."))
        .define(key("numeric.precision.mapping", Boolean, v("false"), Low, "Deprecated: use numeric.mapping=precision_only."))
        .define(key("numeric.mapping", String, DefaultValue::Null, Low, "Map NUMERIC values by precision and optionally scale: none, precision_only, best_fit, best_fit_eager_double."))
        .define(key("dialect.name", String, v(""), Low, "The name of the database dialect (derived from the URL when empty)."))
        .define(
            key("mode", String, v(""), High, "The mode for updating a table each time it is polled: bulk, timestamp, incrementing, timestamp+incrementing.")
                .with_validator(Validator::ValidString(vec!["", "bulk", "timestamp", "incrementing", "timestamp+incrementing"])),
        )
        .define(key("incrementing.column.name", String, v(""), Medium, "The name of the strictly incrementing column used to detect new rows."))
        .define(key("timestamp.column.name", List, v(""), Medium, "Comma-separated timestamp columns (COALESCE) used to detect new or modified rows."))
        .define(key("timestamp.initial", Long, DefaultValue::Null, Low, "The epoch timestamp (ms) used for initial queries in timestamp modes; -1 = the database's current time."))
        .define(key("validate.non.null", Boolean, v("true"), Low, "Verify that the incrementing and timestamp columns are NOT NULL."))
        .define(key("query", String, v(""), Medium, "Use this query instead of copying whole tables."))
        .define(key("quote.sql.identifiers", String, v("ALWAYS"), Medium, "When to quote table names, column names and other identifiers: always or never."))
        .define(key("query.suffix", String, v(""), Low, "Suffix appended at the end of the generated query."))
        .define(key("transaction.isolation.mode", String, v("DEFAULT"), Low, "Isolation level (Sluice reads in the database's default)."))
        .define(key("table.poll.interval.ms", Long, v("60000"), Low, "Frequency in ms to poll for new or removed tables."))
        .define(key("table.types", List, v("TABLE"), Low, "Table types to read: TABLE, VIEW."))
        .define(key("poll.interval.ms", Int, v("5000"), High, "Frequency in ms to poll for new data in each table."))
        .define(key("batch.max.rows", Int, v("100"), Low, "Maximum number of rows to include in a single batch when polling for new data."))
        .define(key("timestamp.delay.interval.ms", Long, v("0"), High, "How long to wait after a row with a certain timestamp appears before including it."))
        .define(key("db.timezone", String, v("UTC"), Medium, "Name of the JDBC timezone used in the connector when querying with time-based criteria. Defaults to UTC."))
        .define(key("timestamp.granularity", String, v("connect_logical"), Low, "Timestamp representation (Sluice: connect_logical only)."))
        .define(key("topic.prefix", String, DefaultValue::Required, High, "Prefix to prepend to table names to generate the Kafka topic names; the topic itself with query."))
}

/// The source connector.
pub struct JdbcSourceConnector;

impl Connector for JdbcSourceConnector {
    fn class_name(&self) -> &'static str {
        SOURCE_CLASS
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn version(&self) -> &'static str {
        SOURCE_VERSION
    }
    fn config_def(&self) -> ConfigDef {
        config_def()
    }
    fn validate_extra(&self, config: &ConfigMap) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(e) = ConnectionParams::from_config(config) {
            out.push(("connection.url".to_string(), e.to_string()));
        }
        if let Err(ConnectError::Config { key, message }) = SourceSettings::from_config(config) {
            out.push((key, message));
        }
        out
    }
    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        let settings = SourceSettings::from_config(config)?;
        ConnectionParams::from_config(config)?;
        let n = if settings.query.is_some() { 1 } else { max_tasks.max(1) };
        Ok((0..n)
            .map(|i| {
                let mut t = config.clone();
                t.insert("task.class".into(), SOURCE_TASK_CLASS.into());
                t.insert(TASK_INDEX_CONFIG.into(), i.to_string());
                t.insert(TASK_COUNT_CONFIG.into(), n.to_string());
                t
            })
            .collect())
    }
    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(JdbcSourceTask::default()))
    }
}

/// FNV-1a, stable across builds and machines.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A querier's position (Confluent's `TimestampIncrementingOffset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offset {
    pub ts: Option<Ts>,
    pub inc: Option<i64>,
}

impl Offset {
    pub fn to_json(self) -> Json {
        let mut m = JsonMap::new();
        if let Some(i) = self.inc {
            m.insert("incrementing".into(), json!(i));
        }
        if let Some(t) = self.ts {
            m.insert("timestamp".into(), json!(t.millis()));
            m.insert("timestamp_nanos".into(), json!(t.nanos_of_second()));
        }
        Json::Object(m)
    }

    pub fn from_json(v: &Json) -> Offset {
        let int = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)).or_else(|| x.as_str()?.parse().ok()))
        };
        Offset { inc: int("incrementing"), ts: int("timestamp").map(|ms| Ts::from_offset(ms, int("timestamp_nanos"))) }
    }
}

struct Stream {
    rx: tokio::sync::mpsc::Receiver<Msg>,
    schema: Option<Arc<Schema>>,
}

struct Querier {
    table: Option<TableId>,
    partition: Arc<JsonMap<String, Json>>,
    topic: String,
    offset: Offset,
    last_update: Option<Instant>,
    stream: Option<Stream>,
    incrementing_column: Option<String>,
    checked_auto_increment: bool,
}

/// The source task.
#[derive(Default)]
pub struct JdbcSourceTask {
    settings: Option<SourceSettings>,
    pool: Option<Pool>,
    context: SourceTaskContext,
    queue: VecDeque<Querier>,
    next_table_poll: Option<Instant>,
}

/// The longest a poll waits.
const POLL_WAIT: Duration = Duration::from_millis(500);

impl JdbcSourceTask {
    fn settings(&self) -> &SourceSettings {
        self.settings.as_ref().expect("started")
    }

    fn dialect(&self) -> Dialect {
        self.pool.as_ref().expect("started").dialect()
    }

    fn partition_for(&self, table: Option<&TableId>) -> JsonMap<String, Json> {
        let mut m = JsonMap::new();
        match table {
            None => {
                m.insert("query".into(), json!("query"));
            }
            Some(t) if self.settings().mode == Mode::Bulk => {
                m.insert("table".into(), json!(t.table));
            }
            Some(t) => {
                m.insert("protocol".into(), json!("1"));
                m.insert("table".into(), json!(t.fqn()));
            }
        }
        m
    }

    async fn new_querier(&self, table: Option<TableId>) -> Result<Querier, ConnectError> {
        let s = self.settings();
        let partition = self.partition_for(table.as_ref());
        let stored = self.context.offset(&partition).or_else(|| {
            // Protocol v0: {"table": "<name>"}.
            let t = table.as_ref()?;
            let mut legacy = JsonMap::new();
            legacy.insert("table".into(), json!(t.table));
            self.context.offset(&legacy)
        });
        let offset = match stored {
            Some(v) if !v.is_null() => Offset::from_json(v),
            _ => {
                let ts = match s.timestamp_initial {
                    Some(-1) if s.mode != Mode::Bulk && s.mode != Mode::Incrementing => {
                        Some(db::db_now(self.pool.as_ref().expect("started")).await?)
                    }
                    Some(ms) if ms >= 0 => Some(Ts::from_offset(ms, None)),
                    _ => None,
                };
                Offset { ts, inc: None }
            }
        };
        let topic = match &table {
            Some(t) => format!("{}{}", s.topic_prefix, t.table),
            None => s.topic_prefix.clone(),
        };
        tracing::info!(
            "JDBC source task {}: reading {} from offset {}",
            self.context.task,
            table.as_ref().map(|t| t.fqn()).unwrap_or_else(|| "query".into()),
            offset.to_json()
        );
        Ok(Querier {
            table,
            partition: Arc::new(partition),
            topic,
            offset,
            last_update: None,
            stream: None,
            incrementing_column: (!s.incrementing_column.is_empty()).then(|| s.incrementing_column.clone()),
            checked_auto_increment: false,
        })
    }

    /// Re-lists the tables and adds/removes queriers for this task's share.
    async fn refresh_tables(&mut self) -> Result<(), ConnectError> {
        let s = self.settings().clone();
        if s.query.is_some() {
            if self.queue.is_empty() {
                let q = self.new_querier(None).await?;
                self.queue.push_back(q);
            }
            self.next_table_poll = None;
            return Ok(());
        }
        let pool = self.pool.clone().expect("started");
        let tables =
            db::list_tables(&pool, &s.table_types, s.schema_pattern.as_deref(), s.catalog_pattern.as_deref()).await?;
        let matches = |list: &[String], t: &TableId| list.iter().any(|e| *e == t.fqn() || *e == t.table);
        let mine: Vec<TableId> = tables
            .into_iter()
            .filter(|t| if s.whitelist.is_empty() { !matches(&s.blacklist, t) } else { matches(&s.whitelist, t) })
            .filter(|t| stable_hash(&t.fqn()) % s.task_count == s.task_index)
            .collect();
        self.queue.retain(|q| q.table.as_ref().is_some_and(|t| mine.contains(t)));
        for t in mine {
            if !self.queue.iter().any(|q| q.table.as_ref() == Some(&t)) {
                let q = self.new_querier(Some(t)).await?;
                self.queue.push_back(q);
            }
        }
        self.next_table_poll = Some(Instant::now() + s.table_poll_interval);
        Ok(())
    }

    fn build_sql(&self, q: &Querier) -> (String, Params) {
        let s = self.settings();
        let d = self.dialect();
        let mut sql = String::new();
        match (&q.table, &s.query) {
            (_, Some(query)) => sql.push_str(query),
            (Some(t), None) => {
                sql.push_str("SELECT * FROM ");
                push_table(d, &mut sql, t, s.quote);
            }
            (None, None) => unreachable!("a querier has a table or a query"),
        }
        let col = |out: &mut String, name: &str| {
            // Confluent's ColumnId(tableId, name): qualified by the table in table mode.
            if let (Some(t), None) = (&q.table, &s.query) {
                push_table(d, out, t, s.quote);
                out.push('.');
            }
            d.push_ident(out, name, s.quote);
        };
        let ts_expr = |out: &mut String| {
            if s.timestamp_columns.len() == 1 {
                col(out, &s.timestamp_columns[0]);
            } else {
                out.push_str("COALESCE(");
                for (i, c) in s.timestamp_columns.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    col(out, c);
                }
                out.push(')');
            }
        };
        let mut n = 0;
        let mut ph = |out: &mut String| {
            n += 1;
            d.push_placeholder(out, n);
        };
        let inc_col = q.incrementing_column.clone().unwrap_or_default();
        let params = match s.mode {
            Mode::Bulk => Params::None,
            Mode::Incrementing => {
                sql.push_str(" WHERE ");
                col(&mut sql, &inc_col);
                sql.push_str(" > ");
                ph(&mut sql);
                sql.push_str(" ORDER BY ");
                col(&mut sql, &inc_col);
                sql.push_str(" ASC");
                Params::Incrementing(q.offset.inc.unwrap_or(-1))
            }
            Mode::Timestamp => {
                sql.push_str(" WHERE ");
                ts_expr(&mut sql);
                sql.push_str(" > ");
                ph(&mut sql);
                sql.push_str(" AND ");
                ts_expr(&mut sql);
                sql.push_str(" < ");
                ph(&mut sql);
                sql.push_str(" ORDER BY ");
                ts_expr(&mut sql);
                sql.push_str(" ASC");
                Params::Timestamp { begin: q.offset.ts.unwrap_or(Ts { nanos: 0 }), end: Ts { nanos: 0 } }
            }
            Mode::TimestampIncrementing => {
                sql.push_str(" WHERE ");
                ts_expr(&mut sql);
                sql.push_str(" < ");
                ph(&mut sql);
                sql.push_str(" AND ((");
                ts_expr(&mut sql);
                sql.push_str(" = ");
                ph(&mut sql);
                sql.push_str(" AND ");
                col(&mut sql, &inc_col);
                sql.push_str(" > ");
                ph(&mut sql);
                sql.push_str(") OR ");
                ts_expr(&mut sql);
                sql.push_str(" > ");
                ph(&mut sql);
                sql.push_str(") ORDER BY ");
                ts_expr(&mut sql);
                sql.push(',');
                col(&mut sql, &inc_col);
                sql.push_str(" ASC");
                Params::TimestampIncrementing {
                    end: Ts { nanos: 0 },
                    ts: q.offset.ts.unwrap_or(Ts { nanos: 0 }),
                    inc: q.offset.inc.unwrap_or(-1),
                }
            }
        };
        if !s.query_suffix.is_empty() {
            sql.push(' ');
            sql.push_str(&s.query_suffix);
        }
        (sql, params)
    }

    async fn start_head(&mut self) -> Result<(), ConnectError> {
        let pool = self.pool.clone().expect("started");
        let s = self.settings().clone();
        let head = self.queue.front_mut().expect("non-empty queue");
        if matches!(s.mode, Mode::Incrementing | Mode::TimestampIncrementing)
            && head.incrementing_column.is_none()
            && !head.checked_auto_increment
        {
            if let Some(t) = &head.table {
                head.incrementing_column = db::auto_increment_column(&pool, t).await?;
            }
            head.checked_auto_increment = true;
            if head.incrementing_column.is_none() {
                return Err(ConnectError::config(
                    "incrementing.column.name",
                    format!(
                        "Cannot find auto-incrementing column in {} and incrementing.column.name is not set",
                        head.table.as_ref().map(|t| t.fqn()).unwrap_or_else(|| "the query".into())
                    ),
                ));
            }
        }
        let head = self.queue.front().expect("non-empty queue");
        let (sql, mut params) = self.build_sql(head);
        if matches!(s.mode, Mode::Timestamp | Mode::TimestampIncrementing) {
            let now = db::db_now(&pool).await?;
            let end = Ts { nanos: now.nanos - s.timestamp_delay_ms as i128 * 1_000_000 };
            match &mut params {
                Params::Timestamp { end: e, .. } | Params::TimestampIncrementing { end: e, .. } => *e = end,
                _ => {}
            }
        }
        tracing::debug!("JDBC source: {sql} with {params:?}");
        let head = self.queue.front_mut().expect("non-empty queue");
        let spec = QuerySpec {
            sql,
            params,
            schema_name: head.table.as_ref().map(|t| t.table.clone()),
            timestamp_columns: if matches!(s.mode, Mode::Timestamp | Mode::TimestampIncrementing) {
                s.timestamp_columns.clone()
            } else {
                vec![]
            },
            incrementing_column: if matches!(s.mode, Mode::Incrementing | Mode::TimestampIncrementing) {
                head.incrementing_column.clone()
            } else {
                None
            },
            numeric_mapping: s.numeric_mapping,
            batch_max_rows: s.batch_max_rows,
            zone: s.zone,
        };
        head.stream = Some(Stream { rx: db::start_query(&pool, spec), schema: None });
        Ok(())
    }

    fn finish_head(&mut self) {
        if let Some(mut q) = self.queue.pop_front() {
            q.stream = None;
            q.last_update = Some(Instant::now());
            self.queue.push_back(q);
        }
    }
}

fn push_table(d: Dialect, out: &mut String, t: &TableId, quote: bool) {
    for part in [&t.catalog, &t.schema].into_iter().flatten() {
        d.push_ident(out, part, quote);
        out.push('.');
    }
    d.push_ident(out, &t.table, quote);
}

#[async_trait]
impl SourceTask for JdbcSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let settings = SourceSettings::from_config(&context.config)?;
        let params = ConnectionParams::from_config(&context.config)?;
        self.pool = Some(Pool::connect(&params)?);
        self.settings = Some(settings);
        self.context = context;
        self.queue.clear();
        self.next_table_poll = Some(Instant::now());
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.next_table_poll.is_some_and(|t| Instant::now() >= t) {
            // Only between queries of the head querier (a running cursor keeps its place).
            if self.queue.front().is_none_or(|q| q.stream.is_none()) {
                self.refresh_tables().await?;
            }
        }
        let Some(head) = self.queue.front() else {
            tokio::time::sleep(POLL_WAIT).await;
            return Ok(Vec::new());
        };
        if head.stream.is_none() {
            if let Some(last) = head.last_update {
                let due = last + self.settings().poll_interval;
                let now = Instant::now();
                if now < due {
                    tokio::time::sleep((due - now).min(POLL_WAIT)).await;
                    return Ok(Vec::new());
                }
            }
            self.start_head().await?;
        }
        let deadline = tokio::time::Instant::now() + POLL_WAIT;
        let validate = self.settings().validate_non_null;
        loop {
            let head = self.queue.front_mut().expect("non-empty queue");
            let stream = head.stream.as_mut().expect("started stream");
            let msg = match tokio::time::timeout_at(deadline, stream.rx.recv()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(None) => Msg::Err(ConnectError::Other("the JDBC reader stopped unexpectedly".into())),
                Ok(Some(m)) => m,
            };
            match msg {
                Msg::Schema { schema, offset_columns_optional } => {
                    if validate && head.table.is_some() {
                        let name = head.table.as_ref().map(|t| t.fqn()).unwrap_or_default();
                        let s = self.settings.as_ref().expect("started");
                        let inc_nullable = matches!(s.mode, Mode::Incrementing | Mode::TimestampIncrementing)
                            && offset_columns_optional.last().is_some_and(|(_, o)| *o);
                        let n_ts = if matches!(s.mode, Mode::Timestamp | Mode::TimestampIncrementing) {
                            s.timestamp_columns.len()
                        } else {
                            0
                        };
                        let ts_all_nullable = n_ts > 0 && offset_columns_optional[..n_ts].iter().all(|(_, o)| *o);
                        if inc_nullable {
                            let col = offset_columns_optional.last().map(|(c, _)| c.clone()).unwrap_or_default();
                            head.stream = None;
                            return Err(ConnectError::Other(format!(
                                "Cannot make incremental queries using incrementing column {col} on {name} because this column is nullable."
                            )));
                        }
                        if ts_all_nullable {
                            head.stream = None;
                            return Err(ConnectError::Other(format!(
                                "Cannot make incremental queries using timestamp columns {} on {name} because all of these columns are nullable.",
                                s.timestamp_columns.join(",")
                            )));
                        }
                    }
                    stream.schema = Some(schema);
                }
                Msg::Rows(rows) => {
                    let schema = stream.schema.clone();
                    let bulk = self.settings.as_ref().expect("started").mode == Mode::Bulk;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        if row.ts.is_some() {
                            head.offset.ts = row.ts;
                        }
                        if row.inc.is_some() {
                            head.offset.inc = row.inc;
                        }
                        out.push(SourceRecord {
                            source_partition: head.partition.clone(),
                            source_offset: if bulk { Json::Null } else { head.offset.to_json() },
                            topic: head.topic.clone(),
                            partition: None,
                            key_schema: None,
                            key: Value::Null,
                            value_schema: schema.clone(),
                            value: Value::Struct(row.values),
                            timestamp: None,
                            headers: Vec::new(),
                        });
                    }
                    return Ok(out);
                }
                Msg::Done => {
                    self.finish_head();
                    return Ok(Vec::new());
                }
                Msg::Err(e) => {
                    head.stream = None;
                    head.last_update = Some(Instant::now());
                    return Err(e);
                }
            }
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.queue.clear();
        if let Some(pool) = self.pool.take() {
            pool.close().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn offsets_round_trip_confluent_maps() {
        let o = Offset { ts: Some(Ts::from_micros(1_700_000_000_123_456)), inc: Some(42) };
        let j = o.to_json();
        assert_eq!(j, json!({"incrementing": 42, "timestamp": 1_700_000_000_123i64, "timestamp_nanos": 123_456_000}));
        assert_eq!(Offset::from_json(&j), o);
        assert_eq!(Offset::from_json(&json!({"incrementing": 7})), Offset { ts: None, inc: Some(7) });
    }

    #[test]
    fn task_split() {
        let c = cfg(&[("connection.url", "jdbc:postgresql://h/d"), ("mode", "incrementing"), ("topic.prefix", "p-")]);
        let tasks = JdbcSourceConnector.task_configs(&c, 3).unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[2][TASK_INDEX_CONFIG], "2");
        let mut q = c.clone();
        q.insert("query".into(), "SELECT 1".into());
        assert_eq!(JdbcSourceConnector.task_configs(&q, 3).unwrap().len(), 1);
        let bad = cfg(&[("connection.url", "jdbc:postgresql://h/d"), ("mode", "timestamp"), ("topic.prefix", "p-")]);
        assert!(JdbcSourceConnector.task_configs(&bad, 1).is_err());
        assert_eq!(stable_hash("public.orders"), stable_hash("public.orders"));
    }
}
