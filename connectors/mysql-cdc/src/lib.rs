//! Change data capture from MySQL and MariaDB binlogs (ROW format), event for event Debezium's `MySqlConnector` and
//! `MariaDbConnector`: a consistent snapshot at a known binlog position, then the binlog from that position, with
//! Debezium's topics, envelopes, `source` block, type mappings and offsets.
//!
//! Verified against the real Debezium MariaDbConnector 3.5.0.Final by `integration-tests/tests/
//! mysql_cdc_differential.rs` (every key, value and header of the data topics, the transaction topic and the
//! heartbeats, after normalising prefixes, processing times and snapshot positions).
//!
//! **Schema history.** Each captured table's structure is kept from the snapshot on in the Kafka topic
//! `schema.history.internal.kafka.topic` ([`history`]): Debezium's history document plus the structures after the
//! statement. Those come from the DDL parser ([`ddl`]), which applies each statement to the structures in force
//! before it, in binlog order, as Debezium's; a statement it cannot handle is logged and its tables read from
//! `information_schema` instead. A task decodes rows from its resume position with the structures in force there,
//! and takes a DDL statement's structures from the history when an earlier run recorded it, so restarts, replays and
//! a backlog of several `ALTER TABLE`s decode correctly. The binlog's TABLE_MAP column count is still checked against
//! the structure (a fallback read can see a newer structure): a mismatch fails with a message. Without the history
//! keys the history lives in memory only. Schema change events ([`schema_change`], `include.schema.changes`) are
//! Debezium's.
//!
//! **Offsets** are Debezium's: partition `{"server": topic.prefix}`, offset `{ts_sec, file, pos, gtids, row,
//! server_id, event}` where `pos` is the start of the transaction and `event`/`row` say how many row events and rows
//! of it were already delivered; snapshot records carry `"snapshot": "INITIAL"` except the last. A binlog client
//! leaves no state on the server, so `commit` only records the acknowledged offset; a restart resumes from the
//! committed offset, and a lost connection is resumed (with backoff) from the last record handed to the runtime.
//!
//! Not done yet: MySQL's own GTID events (`source.gtid` is filled from MariaDB GTIDs; on MySQL it stays null and
//! resuming uses file/pos), `snapshot.locking.mode=extended` (behaves as `minimal`), `include.query`.
//!
//! **Snapshot across connections and tasks.** `snapshot.max.threads` connections read the initial snapshot in
//! primary-key ranges ([`snapshot`]); with `tasks.max` > 1 the other tasks (on any agent) read shares of it in
//! transactions they open while task 0 holds the global read lock ([`split`]).

use std::sync::Arc;

use sluice_connect_api::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator};
use sluice_connect_api::connector::{Connector, ConnectorType, SourceTask};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::ConnectorPlugin;

pub mod config;
pub mod ddl;
pub mod envelope;
pub mod history;
pub mod schema_change;
pub mod snapshot;
pub mod split;
pub mod task;
pub mod types;

pub use config::{Flavor, MySqlSettings};

/// The Debezium release Sluice's MySQL/MariaDB connectors are drop-in for. The MariaDB connector is compared with
/// 3.5.0.Final (the newest served here, and the one the differential test runs); the MySQL connector keeps the
/// same binlog core and reports the same version.
pub const DEBEZIUM_VERSION: &str = "3.5.0.Final";

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[
    ConnectorPlugin {
        class: "io.debezium.connector.mysql.MySqlConnector",
        aliases: &["MySqlConnector", "MySql"],
        connector_type: ConnectorType::Source,
        version: DEBEZIUM_VERSION,
        build: || Arc::new(MySqlCdcConnector { flavor: Flavor::MySql }),
    },
    ConnectorPlugin {
        class: "io.debezium.connector.mariadb.MariaDbConnector",
        aliases: &["MariaDbConnector", "MariaDb"],
        connector_type: ConnectorType::Source,
        version: DEBEZIUM_VERSION,
        build: || Arc::new(MySqlCdcConnector { flavor: Flavor::MariaDb }),
    },
];

/// Debezium's MySQL or MariaDB source connector: one task reads the binlog; with `tasks.max` > 1 the others only
/// read shares of the initial snapshot ([`split`]).
pub struct MySqlCdcConnector {
    pub flavor: Flavor,
}

fn key(
    name: &'static str,
    config_type: ConfigType,
    default: DefaultValue,
    importance: Importance,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey::new(name, config_type, default, importance, doc)
}

fn value(v: &str) -> DefaultValue {
    DefaultValue::Value(v.to_string())
}

impl Connector for MySqlCdcConnector {
    fn class_name(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql => "io.debezium.connector.mysql.MySqlConnector",
            Flavor::MariaDb => "io.debezium.connector.mariadb.MariaDbConnector",
        }
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn version(&self) -> &'static str {
        DEBEZIUM_VERSION
    }

    fn config_def(&self) -> ConfigDef {
        use ConfigType::*;
        use Importance::*;
        ConfigDef::new()
            .define(
                key("topic.prefix", String, DefaultValue::Required, High, "Topic prefix that identifies and provides a namespace for the particular database server/cluster is capturing changes. The topic prefix should be unique across all other connectors, since it is used as a prefix for all Kafka topic names that receive events emitted by this connector. Only alphanumeric characters, hyphens, dots and underscores must be accepted.")
                    .with_validator(Validator::NonEmptyString),
            )
            .define(key("database.hostname", String, DefaultValue::Required, High, "Resolvable hostname or IP address of the database server."))
            .define(key("database.port", Int, value("3306"), High, "Port of the database server."))
            .define(key("database.user", String, DefaultValue::Required, High, "Name of the database user to be used when connecting to the database."))
            .define(key("database.password", Password, DefaultValue::Null, High, "Password of the database user to be used when connecting to the database."))
            .define(key("database.server.id", Long, DefaultValue::Required, High, "A numeric ID of this database client, which must be unique across all currently-running database processes in the cluster. This connector joins the database cluster as another server (with this unique ID) so it can read the binlog."))
            .define(key("database.include.list", List, DefaultValue::Null, High, "The databases for which changes are to be captured"))
            .define(key("database.exclude.list", List, DefaultValue::Null, High, "A comma-separated list of regular expressions that match database names to be excluded from monitoring"))
            .define(key("table.include.list", List, DefaultValue::Null, High, "The tables for which changes are to be captured"))
            .define(key("table.exclude.list", List, DefaultValue::Null, High, "A comma-separated list of regular expressions that match the fully-qualified names of tables to be excluded from monitoring"))
            .define(key("column.include.list", List, DefaultValue::Null, Medium, "Regular expressions matching columns to include in change events"))
            .define(key("column.exclude.list", List, DefaultValue::Null, Medium, "Regular expressions matching columns to exclude from change events"))
            .define(key("message.key.columns", ConfigType::String, DefaultValue::Null, Medium, "A semicolon-separated list of expressions that match fully-qualified tables and column(s) to be used as message key. Each expression must match the pattern '<fully-qualified table name>:<key columns>', where the table names could be defined as (DB_NAME.TABLE_NAME) or (SCHEMA_NAME.TABLE_NAME), depending on the specific connector, and the key columns are a comma-separated list of columns representing the custom key. For any table without an explicit key configuration the table's primary key column(s) will be used as message key. Example: dbserver1.inventory.orderlines:orderId,orderLineId;dbserver1.inventory.orders:id"))
            .define(key("snapshot.mode", String, value("initial"), Low, "The criteria for running a snapshot upon startup of the connector. Select one of the following snapshot options: 'when_needed', 'initial' (default), 'initial_only', 'no_data' ('never', 'schema_only'), 'always', 'recovery' ('schema_only_recovery')."))
            .define(key("snapshot.locking.mode", String, value("minimal"), Low, "Controls how long the connector holds onto the global read lock while it is performing a snapshot: 'minimal' (default), 'extended', 'none'."))
            .define(key("snapshot.max.threads", Int, value("1"), Medium, "The maximum number of threads used to perform the snapshot. Sluice opens this many connections with START TRANSACTION WITH CONSISTENT SNAPSHOT while the global read lock is held (so all see the state at the one binlog position), then reads a large table's primary-key ranges on them, and several tables at once."))
            .define(key("sluice.snapshot.join.timeout.ms", Long, value("30000"), Low, "Sluice only, with tasks.max > 1: how long task 0 holds the global read lock while the other tasks open their snapshot transactions. A task that has not joined by then is left out of the snapshot and task 0 reads its share."))
            .define(key("include.schema.changes", Boolean, value("true"), Medium, "Whether the connector should publish changes in the database schema to a Kafka topic with the same name as the database server ID."))
            .define(key("schema.history.internal.kafka.topic", String, DefaultValue::Null, High, "The name of the topic for the database schema history"))
            .define(key("schema.history.internal.kafka.bootstrap.servers", String, DefaultValue::Null, High, "A list of host/port pairs that the connector will use for establishing the initial connection to the Kafka cluster for retrieving database schema history previously stored by the connector."))
            .define(key("gtid.source.includes", List, DefaultValue::Null, Low, "The source UUIDs used to include GTID ranges when determine the starting position in the binlog."))
            .define(key("gtid.source.excludes", List, DefaultValue::Null, Low, "The source UUIDs used to exclude GTID ranges when determine the starting position in the binlog."))
            .define(key("tombstones.on.delete", Boolean, value("true"), Medium, "Whether delete operations should be represented by a delete event and a subsequent tombstone event (true) or only by a delete event (false)."))
            .define(key("skipped.operations", List, value("t"), Low, "The comma-separated list of operations to skip during streaming, defined as: 'c' for inserts/create; 'u' for updates; 'd' for deletes, 't' for truncates, and 'none' to indicate nothing skipped."))
            .define(key("decimal.handling.mode", String, value("precise"), Medium, "Specify how DECIMAL and NUMERIC columns should be represented in change events, including: 'precise' (the default) uses java.math.BigDecimal to represent values, which are encoded in the change events using a binary representation and Kafka Connect's 'org.apache.kafka.connect.data.Decimal' type; 'string' uses string to represent values; 'double' represents values using Java's 'double', which may not offer the precision but will be far easier to use in consumers."))
            .define(key("time.precision.mode", String, value("adaptive_time_microseconds"), Medium, "Time, date and timestamps can be represented with different kinds of precisions, including: 'adaptive_time_microseconds': the precision of date and timestamp values is based the database column's precision; but time fields always use microseconds precision; 'connect': always represents time, date and timestamp values using Kafka Connect's built-in representations for Time, Date, and Timestamp, which uses millisecond precision regardless of the database columns' precision."))
            .define(key("binary.handling.mode", String, value("bytes"), Low, "Specify how binary (blob, binary, etc.) columns should be represented in change events, including: 'bytes' represents binary data as byte array (default); 'base64' represents binary data as base64-encoded string; 'base64-url-safe' represents binary data as base64-url-safe-encoded string; 'hex' represents binary data as hex-encoded (base16) string"))
            .define(key("bigint.unsigned.handling.mode", String, value("long"), Medium, "Specify how BIGINT UNSIGNED columns should be represented in change events, including: 'precise' uses java.math.BigDecimal to represent values, which are encoded in the change events using a binary representation and Kafka Connect's 'org.apache.kafka.connect.data.Decimal' type; 'long' (the default) represents values using Java's 'long', which may not offer the precision but will be far easier to use in consumers."))
            .define(key("heartbeat.interval.ms", Int, value("0"), Medium, "Length of an interval in milli-seconds in in which the connector periodically sends heartbeat messages to a heartbeat topic. Use 0 to disable heartbeat messages. Disabled by default."))
            .define(key("topic.heartbeat.prefix", String, value("__debezium-heartbeat"), Low, "The prefix that is used to name heartbeat topics."))
            .define(key("snapshot.select.statement.overrides", String, DefaultValue::Null, Medium, "This property contains a comma-separated list of fully-qualified tables (DB_NAME.TABLE_NAME) or (SCHEMA_NAME.TABLE_NAME), depending on the specific connectors. Select statements for the individual tables are specified in further configuration properties, one for each table, identified by the id 'snapshot.select.statement.overrides.[DB_NAME].[TABLE_NAME]' or 'snapshot.select.statement.overrides.[SCHEMA_NAME].[TABLE_NAME]', respectively. The value of those properties is the select statement to use when retrieving data from the specific table during snapshotting. A possible use case for large append-only tables is setting a specific point where to start (resume) snapshotting, in case a previous snapshotting was interrupted."))
            .define(key("heartbeat.action.query", String, DefaultValue::Null, Low, "The query executed with every heartbeat."))
            .define(key("provide.transaction.metadata", Boolean, value("false"), Low, "Enables transaction metadata extraction together with event counting"))
            .define(key("topic.transaction", String, value("transaction"), Low, "The suffix of the transaction metadata topic."))
            .define(key("max.batch.size", Int, value("2048"), Medium, "Maximum size of each batch of source records. Defaults to 2048."))
            .define(key("max.queue.size", Int, value("8192"), Medium, "Maximum size of the queue for change events read from the database log but not yet recorded or forwarded. Defaults to 8192, and should always be larger than the maximum batch size."))
            .define(key("poll.interval.ms", Int, value("500"), Medium, "Time to wait for new change events to appear after receiving no events, given in milliseconds. Defaults to 500 ms."))
            .define(key("connect.timeout.ms", Int, value("30000"), Low, "Maximum time to wait after trying to connect to the database before timing out, given in milliseconds. Defaults to 30 seconds (30,000 ms)."))
            .define(key("extended.headers.enabled", Boolean, value("true"), Low, "Enable/Disable Debezium context headers that provides essential metadata for tracking and identifying the source of CDC events in downstream processing systems."))
    }

    fn validate_extra(&self, config: &ConfigMap) -> Vec<(String, String)> {
        if config.contains_key(split::TASKS_KEY) {
            return vec![(
                split::TASKS_KEY.to_string(),
                "set by the connector for its tasks (from tasks.max), not by the user".to_string(),
            )];
        }
        match MySqlSettings::from_config(config, self.flavor) {
            Ok(_) => Vec::new(),
            Err(ConnectError::Config { key, message }) => vec![(key, message)],
            Err(other) => vec![("topic.prefix".to_string(), other.to_string())],
        }
    }

    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        // One binlog reader per server, as Debezium: task 0. Extra tasks only ever read snapshot shares
        // ([`split`]): none for a connector that never snapshots.
        let settings = MySqlSettings::from_config(config, self.flavor)?;
        let mut task = config.clone();
        task.remove(split::TASKS_KEY);
        let snapshots =
            !matches!(settings.snapshot_mode, config::SnapshotMode::NoData | config::SnapshotMode::Recovery);
        let tasks = if snapshots { max_tasks.max(1) } else { 1 };
        if tasks > 1 {
            task.insert(split::TASKS_KEY.into(), tasks.to_string());
        }
        Ok(vec![task; tasks])
    }

    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(task::MySqlSourceTask::new(self.flavor)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap =
            [("topic.prefix", "p"), ("database.hostname", "h"), ("database.user", "u"), ("database.server.id", "5")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        c.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c
    }

    #[test]
    fn extra_tasks_only_for_snapshots() {
        let c = MySqlCdcConnector { flavor: Flavor::MariaDb };
        let one = c.task_configs(&config(&[]), 1).unwrap();
        assert_eq!(one, vec![config(&[])]);
        let three = c.task_configs(&config(&[]), 3).unwrap();
        assert_eq!(three.len(), 3);
        assert!(three.iter().all(|t| t.get(split::TASKS_KEY).map(String::as_str) == Some("3")));
        assert_eq!(c.task_configs(&config(&[("snapshot.mode", "no_data")]), 3).unwrap().len(), 1);
        // the tasks' own key is the connector's to set
        let sneaky = config(&[(split::TASKS_KEY, "4")]);
        assert!(!c.task_configs(&sneaky, 1).unwrap()[0].contains_key(split::TASKS_KEY));
        assert_eq!(c.validate_extra(&sneaky)[0].0, split::TASKS_KEY);
        assert!(c.validate_extra(&config(&[])).is_empty());
        assert_eq!(c.validate_extra(&config(&[("snapshot.max.threads", "0")]))[0].0, "snapshot.max.threads");
    }
}
