//! The connector's keys (Debezium `PostgresConnectorConfig` names and defaults) and their parsed form.

use sluice_connect_api::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator};
use sluice_connect_api::error::ConnectError;
use sluice_debezium::filters::{IncludeExclude, MessageKeyColumns, SkippedOperations};
use sluice_debezium::schema::{BinaryHandlingMode, ColumnModes, DecimalHandlingMode, TimePrecisionMode};

use crate::types::HstoreMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Initial,
    NoData,
    WhenNeeded,
    InitialOnly,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutocreateMode {
    AllTables,
    Filtered,
    Disabled,
    NoTables,
}

#[derive(Debug, Clone)]
pub struct PgSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub topic_prefix: String,
    pub schemas: IncludeExclude,
    pub tables: IncludeExclude,
    pub columns: IncludeExclude,
    /// `message.key.columns`: the columns of the message key, per table (else the primary key).
    pub key_columns: MessageKeyColumns,
    /// `snapshot.select.statement.overrides`: `schema.table` -> the statement its snapshot reads.
    pub snapshot_select: std::collections::HashMap<String, String>,
    /// `column.truncate.to.*`, `column.mask.with.*`, `column.mask.hash.*`: what happens to character columns' values.
    pub mappers: sluice_debezium::mapping::ColumnMappers,
    pub slot_name: String,
    pub publication_name: String,
    pub autocreate: AutocreateMode,
    pub snapshot_mode: SnapshotMode,
    pub heartbeat_interval_ms: u64,
    /// `heartbeat.action.query`: run on the database at every heartbeat.
    pub heartbeat_action_query: Option<String>,
    pub modes: ColumnModes,
    pub tombstones_on_delete: bool,
    pub include_unknown: bool,
    pub max_batch_size: usize,
    pub max_queue_size: usize,
    pub poll_interval_ms: u64,
    pub provide_transaction_metadata: bool,
    pub skipped: SkippedOperations,
    pub snapshot_fetch_size: usize,
    /// `snapshot.max.threads`: connections reading the initial snapshot (1 = Debezium's default).
    pub snapshot_max_threads: usize,
    pub status_update_interval_ms: u64,
    pub heartbeat_topic_prefix: String,
    pub topic_delimiter: String,
    pub transaction_topic: String,
    pub extended_headers: bool,
    pub unavailable_placeholder: String,
    /// `hstore.handling.mode` (Debezium's default `json`).
    pub hstore: HstoreMode,
    /// `message.prefix.include.list` / `message.prefix.exclude.list`: which logical decoding messages are written.
    pub message_prefixes: IncludeExclude,
}

fn get<'a>(c: &'a ConfigMap, k: &str) -> Option<&'a str> {
    c.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn num<T: std::str::FromStr>(c: &ConfigMap, k: &str, default: T) -> Result<T, ConnectError> {
    match get(c, k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConnectError::config(k, format!("{v:?} is not a valid number"))),
    }
}

fn boolean(c: &ConfigMap, k: &str, default: bool) -> Result<bool, ConnectError> {
    match get(c, k).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(ConnectError::config(k, format!("{v:?} is not a boolean"))),
    }
}

fn required(c: &ConfigMap, k: &str) -> Result<String, ConnectError> {
    get(c, k).map(str::to_string).ok_or_else(|| ConnectError::config(k, "Missing required configuration"))
}

impl PgSettings {
    pub fn from_config(c: &ConfigMap) -> Result<Self, ConnectError> {
        let filter = |inc: &str, exc: &str| {
            if get(c, inc).is_some() && get(c, exc).is_some() {
                return Err(ConnectError::config(inc, format!("\"{inc}\" is already specified; {exc} cannot be used")));
            }
            IncludeExclude::new(get(c, inc), get(c, exc)).map_err(|e| ConnectError::config(inc, e))
        };
        let snapshot_mode = match get(c, "snapshot.mode").unwrap_or("initial").to_ascii_lowercase().as_str() {
            "initial" => SnapshotMode::Initial,
            "no_data" | "never" => SnapshotMode::NoData,
            "when_needed" => SnapshotMode::WhenNeeded,
            "initial_only" => SnapshotMode::InitialOnly,
            "always" => SnapshotMode::Always,
            other => {
                return Err(ConnectError::config(
                    "snapshot.mode",
                    format!("{other:?} is not supported; use initial, no_data, when_needed, initial_only or always"),
                ));
            }
        };
        let autocreate =
            match get(c, "publication.autocreate.mode").unwrap_or("all_tables").to_ascii_lowercase().as_str() {
                "all_tables" => AutocreateMode::AllTables,
                "filtered" => AutocreateMode::Filtered,
                "disabled" => AutocreateMode::Disabled,
                "no_tables" => AutocreateMode::NoTables,
                other => {
                    return Err(ConnectError::config(
                        "publication.autocreate.mode",
                        format!("{other:?} is not one of all_tables, filtered, disabled, no_tables"),
                    ));
                }
            };
        if let Some(plugin) = get(c, "plugin.name")
            && !plugin.eq_ignore_ascii_case("pgoutput")
        {
            return Err(ConnectError::config(
                "plugin.name",
                format!(
                    "{plugin:?} is not supported: Sluice decodes PostgreSQL's built-in pgoutput; set plugin.name=pgoutput"
                ),
            ));
        }
        let mode = |k: &str, v: Option<&str>, allowed: &[&str]| {
            ConnectError::config(k, format!("{:?} is not one of {}", v.unwrap_or(""), allowed.join(", ")))
        };
        let decimal = match get(c, "decimal.handling.mode") {
            None => DecimalHandlingMode::Precise,
            v => DecimalHandlingMode::parse(v.unwrap_or(""))
                .ok_or_else(|| mode("decimal.handling.mode", v, DecimalHandlingMode::ALLOWED))?,
        };
        let time = match get(c, "time.precision.mode") {
            None => TimePrecisionMode::Adaptive,
            v => TimePrecisionMode::parse(v.unwrap_or(""))
                .ok_or_else(|| mode("time.precision.mode", v, TimePrecisionMode::ALLOWED))?,
        };
        let binary = match get(c, "binary.handling.mode") {
            None => BinaryHandlingMode::Bytes,
            v => BinaryHandlingMode::parse(v.unwrap_or(""))
                .ok_or_else(|| mode("binary.handling.mode", v, BinaryHandlingMode::ALLOWED))?,
        };
        let interval_string = match get(c, "interval.handling.mode").map(str::to_ascii_lowercase).as_deref() {
            None | Some("numeric") => false,
            Some("string") => true,
            Some(other) => {
                return Err(ConnectError::config(
                    "interval.handling.mode",
                    format!("{other:?} is not one of numeric, string"),
                ));
            }
        };
        let hstore = match get(c, "hstore.handling.mode") {
            None => HstoreMode::Json,
            v => HstoreMode::parse(v.unwrap_or(""))
                .ok_or_else(|| mode("hstore.handling.mode", v, HstoreMode::ALLOWED))?,
        };
        let (msg_inc, msg_exc) = (get(c, "message.prefix.include.list"), get(c, "message.prefix.exclude.list"));
        if msg_inc.is_some() && msg_exc.is_some() {
            // Debezium's words.
            return Err(ConnectError::config(
                "message.prefix.exclude.list",
                "\"logical_decoding_message.prefix.include.list\" is already specified",
            ));
        }
        let message_prefixes = IncludeExclude::new(msg_inc, msg_exc)
            .map_err(|e| ConnectError::config("message.prefix.include.list", e))?;
        Ok(PgSettings {
            host: required(c, "database.hostname")?,
            port: num(c, "database.port", 5432u16)?,
            user: required(c, "database.user")?,
            password: c.get("database.password").cloned().unwrap_or_default(),
            dbname: required(c, "database.dbname")?,
            topic_prefix: required(c, "topic.prefix")?,
            schemas: filter("schema.include.list", "schema.exclude.list")?,
            tables: filter("table.include.list", "table.exclude.list")?,
            columns: filter("column.include.list", "column.exclude.list")?,
            mappers: sluice_debezium::mapping::ColumnMappers::parse(c.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|(k, e)| ConnectError::config(&k, e))?,
            snapshot_select: sluice_debezium::filters::snapshot_select_overrides(|k| c.get(k).map(|s| s.as_str())),
            key_columns: MessageKeyColumns::parse(c.get("message.key.columns").map(|s| s.as_str()))
                .map_err(|e| ConnectError::config("message.key.columns", e))?,
            slot_name: get(c, "slot.name").unwrap_or("debezium").to_string(),
            publication_name: get(c, "publication.name").unwrap_or("dbz_publication").to_string(),
            autocreate,
            snapshot_mode,
            heartbeat_interval_ms: num(c, "heartbeat.interval.ms", 0u64)?,
            heartbeat_action_query: get(c, "heartbeat.action.query").map(str::to_string),
            modes: ColumnModes { decimal, time, binary, interval_string },
            tombstones_on_delete: boolean(c, "tombstones.on.delete", true)?,
            include_unknown: boolean(c, "include.unknown.datatypes", false)?,
            max_batch_size: num(c, "max.batch.size", 2048usize)?.max(1),
            max_queue_size: num(c, "max.queue.size", 8192usize)?.max(2),
            poll_interval_ms: num(c, "poll.interval.ms", 500u64)?,
            provide_transaction_metadata: boolean(c, "provide.transaction.metadata", false)?,
            skipped: SkippedOperations::parse(get(c, "skipped.operations"))
                .map_err(|e| ConnectError::config("skipped.operations", e))?,
            snapshot_fetch_size: num(c, "snapshot.fetch.size", 10240usize)?.max(1),
            snapshot_max_threads: match num(c, "snapshot.max.threads", 1usize)? {
                0 => return Err(ConnectError::config("snapshot.max.threads", "must be at least 1")),
                n => n,
            },
            status_update_interval_ms: num(c, "status.update.interval.ms", 10_000u64)?.max(100),
            heartbeat_topic_prefix: get(c, "topic.heartbeat.prefix").unwrap_or("__debezium-heartbeat").to_string(),
            topic_delimiter: get(c, "topic.delimiter").unwrap_or(".").to_string(),
            transaction_topic: get(c, "topic.transaction").unwrap_or("transaction").to_string(),
            extended_headers: boolean(c, "extended.headers.enabled", true)?,
            unavailable_placeholder: c
                .get("unavailable.value.placeholder")
                .cloned()
                .unwrap_or_else(|| "__debezium_unavailable_value".to_string()),
            hstore,
            message_prefixes,
        })
    }

    /// Whether `schema.table` is captured.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        self.schemas.accepts(schema) && self.tables.accepts(&format!("{schema}.{table}"))
    }
}

fn key(name: &'static str, t: ConfigType, default: DefaultValue, imp: Importance, doc: &'static str) -> ConfigKey {
    ConfigKey::new(name, t, default, imp, doc)
}

fn val(v: &str) -> DefaultValue {
    DefaultValue::Value(v.to_string())
}

pub fn config_def() -> ConfigDef {
    use ConfigType as T;
    use Importance as I;
    ConfigDef::new()
        .define(key("topic.prefix", T::String, DefaultValue::Required, I::High, "Topic prefix that identifies and provides a namespace for the particular database server/cluster is capturing changes. The topic prefix should be unique across all other connectors, since it is used as a prefix for all Kafka topic names that receive events emitted by this connector. Only alphanumeric characters, hyphens, dots and underscores must be accepted."))
        .define(key("database.hostname", T::String, DefaultValue::Required, I::High, "Resolvable hostname or IP address of the database server."))
        .define(key("database.port", T::Int, val("5432"), I::High, "Port of the database server."))
        .define(key("database.user", T::String, DefaultValue::Required, I::High, "Name of the database user to be used when connecting to the database."))
        .define(key("database.password", T::Password, DefaultValue::Null, I::High, "Password of the database user to be used when connecting to the database."))
        .define(key("database.dbname", T::String, DefaultValue::Required, I::High, "The name of the database from which the connector should capture changes"))
        .define(key("plugin.name", T::String, val("decoderbufs"), I::Medium, "The name of the Postgres logical decoding plugin installed on the server. Sluice supports pgoutput."))
        .define(key("slot.name", T::String, val("debezium"), I::Medium, "The name of the Postgres logical decoding slot created for streaming changes from a plugin."))
        .define(key("publication.name", T::String, val("dbz_publication"), I::Low, "The name of the Postgres 10+ publication used for streaming changes from a plugin."))
        .define(key("publication.autocreate.mode", T::String, val("all_tables"), I::Low, "Applies only when streaming changes using pgoutput: all_tables, disabled, filtered, no_tables.").with_validator(Validator::OneOf(vec!["all_tables", "disabled", "filtered", "no_tables"])))
        .define(key("schema.include.list", T::List, DefaultValue::Null, I::High, "The schemas for which events should be captured"))
        .define(key("schema.exclude.list", T::List, DefaultValue::Null, I::Medium, "The schemas for which events must not be captured"))
        .define(key("table.include.list", T::List, DefaultValue::Null, I::High, "The tables for which changes are to be captured"))
        .define(key("table.exclude.list", T::List, DefaultValue::Null, I::Medium, "A comma-separated list of regular expressions that match the fully-qualified names of tables to be excluded from monitoring"))
        .define(key("column.include.list", T::List, DefaultValue::Null, I::Medium, "Regular expressions matching columns to include in change events"))
        .define(key("column.exclude.list", T::List, DefaultValue::Null, I::Medium, "Regular expressions matching columns to exclude from change events"))
        .define(key("message.key.columns", T::String, DefaultValue::Null, I::Medium, "A semicolon-separated list of expressions that match fully-qualified tables and column(s) to be used as message key. Each expression must match the pattern '<fully-qualified table name>:<key columns>', where the table names could be defined as (DB_NAME.TABLE_NAME) or (SCHEMA_NAME.TABLE_NAME), depending on the specific connector, and the key columns are a comma-separated list of columns representing the custom key. For any table without an explicit key configuration the table's primary key column(s) will be used as message key. Example: dbserver1.inventory.orderlines:orderId,orderLineId;dbserver1.inventory.orders:id"))
        .define(key("snapshot.mode", T::String, val("initial"), I::Low, "The criteria for running a snapshot upon startup of the connector: initial, no_data (never), when_needed, initial_only, always."))
        .define(key("snapshot.fetch.size", T::Int, val("10240"), I::Medium, "The maximum number of records that should be loaded into memory while performing a snapshot."))
        .define(key("snapshot.max.threads", T::Int, val("1"), I::Medium, "The maximum number of threads used to perform the snapshot. Sluice reads a large table's key (or block) ranges on this many connections that share the snapshot, and several tables at once."))
        .define(key("heartbeat.interval.ms", T::Int, val("0"), I::Medium, "Length of an interval in milli-seconds in in which the connector periodically sends heartbeat messages to a heartbeat topic. Use 0 to disable heartbeat messages. Disabled by default."))
        .define(key("snapshot.select.statement.overrides", T::String, DefaultValue::Null, I::Medium, "This property contains a comma-separated list of fully-qualified tables (DB_NAME.TABLE_NAME) or (SCHEMA_NAME.TABLE_NAME), depending on the specific connectors. Select statements for the individual tables are specified in further configuration properties, one for each table, identified by the id 'snapshot.select.statement.overrides.[DB_NAME].[TABLE_NAME]' or 'snapshot.select.statement.overrides.[SCHEMA_NAME].[TABLE_NAME]', respectively. The value of those properties is the select statement to use when retrieving data from the specific table during snapshotting. A possible use case for large append-only tables is setting a specific point where to start (resume) snapshotting, in case a previous snapshotting was interrupted."))
        .define(key("heartbeat.action.query", T::String, DefaultValue::Null, I::Low, "The query executed with every heartbeat."))
        .define(key("topic.heartbeat.prefix", T::String, val("__debezium-heartbeat"), I::Low, "The prefix that is used to name heartbeat topics."))
        .define(key("topic.delimiter", T::String, val("."), I::Low, "Specify the delimiter for topic name."))
        .define(key("topic.transaction", T::String, val("transaction"), I::Low, "The name of the transaction metadata topic."))
        .define(key("decimal.handling.mode", T::String, val("precise"), I::Medium, "Specify how DECIMAL and NUMERIC columns should be represented in change events: precise, string, double."))
        .define(key("time.precision.mode", T::String, val("adaptive"), I::Medium, "Time, date, and timestamps can be represented with different kinds of precisions: adaptive, adaptive_time_microseconds, connect, isostring, microseconds, nanoseconds."))
        .define(key("interval.handling.mode", T::String, val("numeric"), I::Medium, "Specify how INTERVAL columns should be represented in change events, including: 'string' represents values as an exact ISO formatted string; 'numeric' (default) represents values using the inexact conversion into microseconds").with_validator(Validator::OneOf(vec!["numeric", "string"])))
        .define(key("binary.handling.mode", T::String, val("bytes"), I::Low, "Specify how binary (blob, binary, etc.) columns should be represented in change events: bytes, base64, base64-url-safe, hex."))
        .define(key("hstore.handling.mode", T::String, val("json"), I::Low, "Specify how HSTORE columns should be represented in change events, including: 'json' represents values as string-ified JSON (default); 'map' represents values as a key/value map").with_validator(Validator::OneOf(vec!["json", "map"])))
        .define(key("message.prefix.include.list", T::List, DefaultValue::Null, I::Medium, "A comma-separated list of regular expressions that match the logical decoding message prefixes to be monitored. All prefixes are monitored by default."))
        .define(key("message.prefix.exclude.list", T::List, DefaultValue::Null, I::Medium, "A comma-separated list of regular expressions that match the logical decoding message prefixes to be excluded from monitoring."))
        .define(key("tombstones.on.delete", T::Boolean, val("true"), I::Medium, "Whether delete operations should be represented by a delete event and a subsequent tombstone event (true) or only by a delete event (false)."))
        .define(key("include.unknown.datatypes", T::Boolean, val("false"), I::Low, "Specify whether the fields of data type not supported by Debezium should be processed: false (the default) omits the fields; true converts the field into an implementation dependent binary representation."))
        .define(key("max.batch.size", T::Int, val("2048"), I::Medium, "Maximum size of each batch of source records."))
        .define(key("max.queue.size", T::Int, val("8192"), I::Medium, "Maximum size of the queue for change events read from the database log but not yet recorded or forwarded."))
        .define(key("poll.interval.ms", T::Long, val("500"), I::Medium, "Time to wait for new change events to appear after receiving no events, given in milliseconds."))
        .define(key("provide.transaction.metadata", T::Boolean, val("false"), I::Low, "Enables transaction metadata extraction together with event counting"))
        .define(key("skipped.operations", T::List, val("t"), I::Low, "The comma-separated list of operations to skip during streaming: c, u, d, t, none."))
        .define(key("status.update.interval.ms", T::Int, val("10000"), I::Medium, "Frequency for sending replication connection status updates to the server, given in milliseconds."))
        .define(key("extended.headers.enabled", T::Boolean, val("true"), I::Low, "Enable adding the context headers to the change events."))
        .define(key("unavailable.value.placeholder", T::String, val("__debezium_unavailable_value"), I::Medium, "Specify the constant that will be provided by Debezium to indicate that the original value is a toasted value not provided by the database."))
}
