//! The parsed configuration of a MySQL/MariaDB CDC task.

use std::collections::HashSet;
use std::time::Duration;

use regex::Regex;
use sluice_connect_api::config::{ConfigMap, parse_list};
use sluice_connect_api::error::ConnectError;

use crate::types::{BinaryMode, DecimalMode, TimeMode, TypeSettings};

/// Which Debezium connector is emulated: the names in schemas and `source.connector` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

impl Flavor {
    /// `source.connector` and the `__debezium.context.connectorName` header.
    pub fn connector_name(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }

    /// The package of schema names (`io.debezium.connector.mariadb.Source`, `...SchemaChangeKey`).
    pub fn package(self) -> &'static str {
        match self {
            Flavor::MySql => "io.debezium.connector.mysql",
            Flavor::MariaDb => "io.debezium.connector.mariadb",
        }
    }
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Initial,
    InitialOnly,
    WhenNeeded,
    NoData,
    Always,
    /// `recovery` / `schema_only_recovery`: the schema is always read from the database here, so it is `no_data`
    /// that keeps the stored position.
    Recovery,
}

/// `snapshot.locking.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockingMode {
    Minimal,
    Extended,
    None,
}

/// Anchored, case-insensitive regular expressions, as Debezium's include/exclude lists.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    fn parse(config: &ConfigMap, include: &str, exclude: &str) -> Result<Self, ConnectError> {
        let compile = |key: &str| -> Result<Vec<Regex>, ConnectError> {
            config
                .get(key)
                .map(|raw| parse_list(raw))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    Regex::new(&format!("(?i)^(?:{p})$"))
                        .map_err(|e| ConnectError::config(key, format!("invalid regular expression `{p}`: {e}")))
                })
                .collect()
        };
        let include_list = compile(include)?;
        let exclude_list = compile(exclude)?;
        if !include_list.is_empty() && !exclude_list.is_empty() {
            return Err(ConnectError::config(exclude, format!("\"{include}\" is already specified")));
        }
        Ok(Filter { include: include_list, exclude: exclude_list })
    }

    pub fn matches(&self, name: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|r| r.is_match(name));
        }
        !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// Everything a task needs from its configuration.
#[derive(Debug, Clone)]
pub struct MySqlSettings {
    pub flavor: Flavor,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub server_id: u32,
    pub topic_prefix: String,
    pub databases: Filter,
    pub tables: Filter,
    pub columns: Filter,
    /// `message.key.columns`: the columns of the message key, per table (else the primary key).
    pub key_columns: sluice_debezium::filters::MessageKeyColumns,
    /// `snapshot.select.statement.overrides`: `database.table` -> the statement its snapshot reads.
    pub snapshot_select: std::collections::HashMap<String, String>,
    /// `column.truncate.to.*`, `column.mask.with.*`, `column.mask.hash.*`.
    pub mappers: sluice_debezium::mapping::ColumnMappers,
    pub snapshot_mode: SnapshotMode,
    pub locking_mode: LockingMode,
    pub include_schema_changes: bool,
    /// `schema.history.internal.kafka.topic` and `.bootstrap.servers`: where the schema history is kept (both set).
    pub history_topic: Option<String>,
    pub history_bootstrap: Option<String>,
    pub tombstones_on_delete: bool,
    pub skipped_operations: HashSet<char>,
    pub types: TypeSettings,
    pub heartbeat_interval: Option<Duration>,
    /// `heartbeat.action.query`: run on the database at every heartbeat.
    pub heartbeat_action_query: Option<String>,
    pub heartbeat_topic: String,
    pub provide_transaction_metadata: bool,
    pub transaction_topic: String,
    pub max_batch_size: usize,
    pub max_queue_size: usize,
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
    pub extended_headers: bool,
    /// `snapshot.max.threads`: connections reading the initial snapshot (1 = Debezium's default).
    pub snapshot_max_threads: usize,
    /// `sluice.snapshot.join.timeout.ms`: how long task 0 holds the global read lock waiting for the other tasks to
    /// open their snapshot transactions (`tasks.max` > 1).
    pub snapshot_join_timeout: Duration,
}

fn get<'a>(config: &'a ConfigMap, key: &str) -> Option<&'a str> {
    config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn required(config: &ConfigMap, key: &str) -> Result<String, ConnectError> {
    get(config, key).map(str::to_string).ok_or_else(|| {
        ConnectError::config(key, format!("Missing required configuration \"{key}\" which has no default value."))
    })
}

fn number<T: std::str::FromStr>(config: &ConfigMap, key: &str, default: T) -> Result<T, ConnectError> {
    match get(config, key) {
        None => Ok(default),
        Some(raw) => {
            raw.parse().map_err(|_| ConnectError::config(key, format!("Invalid value {raw} for configuration {key}")))
        }
    }
}

fn boolean(config: &ConfigMap, key: &str, default: bool) -> Result<bool, ConnectError> {
    match get(config, key).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(raw) => Err(ConnectError::config(key, format!("Invalid value {raw} for configuration {key}"))),
    }
}

fn choice(config: &ConfigMap, key: &str, default: &str, allowed: &[&str]) -> Result<String, ConnectError> {
    let raw = get(config, key).unwrap_or(default).to_ascii_lowercase();
    if allowed.contains(&raw.as_str()) {
        Ok(raw)
    } else {
        Err(ConnectError::config(key, format!("Value must be one of {}", allowed.join(", "))))
    }
}

impl MySqlSettings {
    pub fn from_config(config: &ConfigMap, flavor: Flavor) -> Result<Self, ConnectError> {
        let topic_prefix = required(config, "topic.prefix")?;
        if !topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return Err(ConnectError::config(
                "topic.prefix",
                format!(
                    "{topic_prefix} has invalid format (only the underscore, hyphen, dot and alphanumeric characters are allowed)"
                ),
            ));
        }
        let server_id: u64 = number(config, "database.server.id", 0)?;
        if get(config, "database.server.id").is_none() {
            return Err(ConnectError::config(
                "database.server.id",
                "The 'database.server.id' value is invalid: A numeric ID of this database client is required",
            ));
        }
        if server_id == 0 || server_id > u32::MAX as u64 {
            return Err(ConnectError::config("database.server.id", "must be between 1 and 4294967295"));
        }
        let snapshot_mode = match choice(
            config,
            "snapshot.mode",
            "initial",
            &[
                "initial",
                "initial_only",
                "when_needed",
                "no_data",
                "never",
                "schema_only",
                "always",
                "recovery",
                "schema_only_recovery",
            ],
        )?
        .as_str()
        {
            "initial" => SnapshotMode::Initial,
            "initial_only" => SnapshotMode::InitialOnly,
            "when_needed" => SnapshotMode::WhenNeeded,
            "always" => SnapshotMode::Always,
            "recovery" | "schema_only_recovery" => SnapshotMode::Recovery,
            _ => SnapshotMode::NoData,
        };
        let locking_mode = match choice(
            config,
            "snapshot.locking.mode",
            "minimal",
            &["minimal", "extended", "none", "minimal_percona", "minimal_percona_no_table_locks"],
        )?
        .as_str()
        {
            "extended" => LockingMode::Extended,
            "none" => LockingMode::None,
            _ => LockingMode::Minimal,
        };
        let decimal =
            match choice(config, "decimal.handling.mode", "precise", &["precise", "double", "string"])?.as_str() {
                "double" => DecimalMode::Double,
                "string" => DecimalMode::String,
                _ => DecimalMode::Precise,
            };
        let time = match choice(
            config,
            "time.precision.mode",
            "adaptive_time_microseconds",
            &["adaptive_time_microseconds", "adaptive", "connect"],
        )?
        .as_str()
        {
            "connect" => TimeMode::Connect,
            "adaptive" => TimeMode::Adaptive { time_micros: false },
            _ => TimeMode::Adaptive { time_micros: true },
        };
        let binary =
            match choice(config, "binary.handling.mode", "bytes", &["bytes", "base64", "base64-url-safe", "hex"])?
                .as_str()
            {
                "base64" => BinaryMode::Base64,
                "base64-url-safe" => BinaryMode::Base64UrlSafe,
                "hex" => BinaryMode::Hex,
                _ => BinaryMode::Bytes,
            };
        let bigint_precise =
            choice(config, "bigint.unsigned.handling.mode", "long", &["long", "precise"])? == "precise";
        let skipped_operations = match get(config, "skipped.operations") {
            None => HashSet::from(['t']),
            Some(raw) => {
                let mut set = HashSet::new();
                for item in parse_list(raw) {
                    match item.trim().to_ascii_lowercase().as_str() {
                        "none" => {}
                        op @ ("c" | "u" | "d" | "t") => {
                            set.insert(op.chars().next().unwrap_or('t'));
                        }
                        other => {
                            return Err(ConnectError::config(
                                "skipped.operations",
                                format!("Invalid operation `{other}`: use c, u, d, t or none"),
                            ));
                        }
                    }
                }
                set
            }
        };
        let heartbeat_ms: u64 = number(config, "heartbeat.interval.ms", 0)?;
        let max_batch_size: usize = number(config, "max.batch.size", 2048)?;
        let max_queue_size: usize = number(config, "max.queue.size", 8192)?;
        if max_batch_size == 0 || max_queue_size <= max_batch_size {
            return Err(ConnectError::config("max.queue.size", "must be larger than max.batch.size"));
        }
        Ok(MySqlSettings {
            flavor,
            hostname: required(config, "database.hostname")?,
            port: number(config, "database.port", 3306)?,
            user: required(config, "database.user")?,
            password: config.get("database.password").cloned(),
            server_id: server_id as u32,
            databases: Filter::parse(config, "database.include.list", "database.exclude.list")?,
            tables: Filter::parse(config, "table.include.list", "table.exclude.list")?,
            columns: Filter::parse(config, "column.include.list", "column.exclude.list")?,
            mappers: sluice_debezium::mapping::ColumnMappers::parse(
                config.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(|(k, e)| ConnectError::config(&k, e))?,
            snapshot_select: sluice_debezium::filters::snapshot_select_overrides(|k| config.get(k).map(|s| s.as_str())),
            key_columns: sluice_debezium::filters::MessageKeyColumns::parse(
                config.get("message.key.columns").map(|s| s.as_str()),
            )
            .map_err(|e| ConnectError::config("message.key.columns", e))?,
            snapshot_mode,
            locking_mode,
            include_schema_changes: boolean(config, "include.schema.changes", true)?,
            history_topic: get(config, "schema.history.internal.kafka.topic").map(str::to_string),
            history_bootstrap: get(config, "schema.history.internal.kafka.bootstrap.servers").map(str::to_string),
            tombstones_on_delete: boolean(config, "tombstones.on.delete", true)?,
            skipped_operations,
            types: TypeSettings { decimal, time, binary, bigint_precise },
            heartbeat_interval: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms)),
            heartbeat_action_query: get(config, "heartbeat.action.query").map(str::to_string),
            heartbeat_topic: format!(
                "{}.{}",
                get(config, "topic.heartbeat.prefix").unwrap_or("__debezium-heartbeat"),
                topic_prefix
            ),
            provide_transaction_metadata: boolean(config, "provide.transaction.metadata", false)?,
            transaction_topic: format!(
                "{}.{}",
                topic_prefix,
                get(config, "topic.transaction").unwrap_or("transaction")
            ),
            topic_prefix,
            max_batch_size,
            max_queue_size,
            poll_interval: Duration::from_millis(number(config, "poll.interval.ms", 500)?),
            connect_timeout: Duration::from_millis(number(config, "connect.timeout.ms", 30000)?),
            extended_headers: boolean(config, "extended.headers.enabled", true)?,
            snapshot_max_threads: match number(config, "snapshot.max.threads", 1usize)? {
                0 => return Err(ConnectError::config("snapshot.max.threads", "must be at least 1")),
                n => n,
            },
            snapshot_join_timeout: Duration::from_millis(number(config, "sluice.snapshot.join.timeout.ms", 30000)?),
        })
    }

    /// Whether a table's changes are captured (system databases never are).
    pub fn captures(&self, db: &str, table: &str) -> bool {
        if Self::is_system_database(db) {
            return false;
        }
        self.databases.matches(db) && self.tables.matches(&format!("{db}.{table}"))
    }

    /// Whether a database is one of the server's own (never captured, no schema change events).
    pub fn is_system_database(db: &str) -> bool {
        matches!(db.to_ascii_lowercase().as_str(), "mysql" | "sys" | "performance_schema" | "information_schema")
    }

    /// Whether a column of a captured table is kept.
    pub fn keeps_column(&self, db: &str, table: &str, column: &str) -> bool {
        self.columns.matches(&format!("{db}.{table}.{column}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ConfigMap {
        [
            ("topic.prefix", "dbserver1"),
            ("database.hostname", "127.0.0.1"),
            ("database.user", "u"),
            ("database.server.id", "5400"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn filters_are_anchored_and_exclusive() {
        let mut c = base();
        c.insert("table.include.list".into(), "inventory\\.cust.*".into());
        let s = MySqlSettings::from_config(&c, Flavor::MariaDb).unwrap();
        assert!(s.captures("inventory", "customers"));
        assert!(!s.captures("inventory", "orders"));
        assert!(!s.captures("mysql", "user"));
        c.insert("table.exclude.list".into(), "x".into());
        assert!(MySqlSettings::from_config(&c, Flavor::MariaDb).is_err());
    }

    #[test]
    fn server_id_is_required() {
        let mut c = base();
        c.remove("database.server.id");
        assert!(MySqlSettings::from_config(&c, Flavor::MySql).is_err());
    }
}
