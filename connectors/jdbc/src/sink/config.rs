//! The sink's keys: Confluent's (`JdbcSinkConfig`, 10.9.x) and Debezium's (`JdbcSinkConnectorConfig`, 3.6), with
//! their defaults, parsed into [`SinkSettings`].

use sluice_connect_api::config::{ConfigDef, ConfigKey, ConfigMap, ConfigType, DefaultValue, Importance, Validator};
use sluice_connect_api::error::ConnectError;

use super::types::{Flavor, TimeZones};
use crate::connection::ConnectionParams;
use crate::zone::{DbZone, INVALID_ZONE};

/// The table of ours holding Kafka offsets written in the same transaction as the rows (exactly-once).
pub const OFFSETS_TABLE_CONFIG: &str = "sluice.offsets.table";
pub const DEFAULT_OFFSETS_TABLE: &str = "__sluice_sink_offsets";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// The parsed configuration of a sink task.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub flavor: Flavor,
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    /// Empty: every field.
    pub fields_include: Vec<String>,
    pub fields_exclude: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub table_format: String,
    pub delete_enabled: bool,
    pub batch_size: usize,
    pub max_retries: u32,
    pub quote: bool,
    /// Where Kafka offsets go in the row transaction; `None` when disabled.
    pub offsets_table: Option<String>,
    /// `db.timezone` / `use.time.zone`: Timestamp and Time values are written as wall-clock times in it.
    pub zone: DbZone,
    /// Where Date values are written (`date.timezone`: `db.timezone`, or UTC).
    pub date_zone: DbZone,
    /// Why the zone cannot be resolved when the task starts (it passed validation), as the originals fail then.
    pub zone_error: Option<String>,
}

fn get<'a>(config: &'a ConfigMap, key: &str) -> Option<&'a str> {
    config.get(key).map(|s| s.trim())
}

fn list(config: &ConfigMap, key: &str) -> Vec<String> {
    get(config, key)
        .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

fn boolean(config: &ConfigMap, key: &str, default: bool) -> Result<bool, ConnectError> {
    match get(config, key) {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConnectError::config(
            key,
            format!("Invalid value {v} for configuration {key}: Expected value to be either true or false"),
        )),
    }
}

fn int(config: &ConfigMap, key: &str, default: i64) -> Result<i64, ConnectError> {
    match get(config, key) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConnectError::config(key, format!("Invalid value {v} for configuration {key}: Not a number of type INT"))
        }),
    }
}

impl SinkSettings {
    pub fn time_zones(&self) -> TimeZones {
        TimeZones { zone: self.zone, date: self.date_zone }
    }

    pub fn from_config(config: &ConfigMap, flavor: Flavor) -> Result<SinkSettings, ConnectError> {
        ConnectionParams::from_config(config)?;
        let insert_mode = match get(config, "insert.mode").unwrap_or("insert").to_ascii_lowercase().as_str() {
            "insert" | "" => InsertMode::Insert,
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            other => {
                return Err(ConnectError::config(
                    "insert.mode",
                    format!("Invalid value {other}: must be one of insert, upsert, update"),
                ));
            }
        };
        let (pk_key, pk_fields_key) = match flavor {
            Flavor::Confluent => ("pk.mode", "pk.fields"),
            Flavor::Debezium => ("primary.key.mode", "primary.key.fields"),
        };
        let pk_mode = match get(config, pk_key).unwrap_or("none").to_ascii_lowercase().as_str() {
            "none" | "" => PkMode::None,
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            other => {
                return Err(ConnectError::config(
                    pk_key,
                    format!("Invalid value {other}: must be one of none, kafka, record_key, record_value"),
                ));
            }
        };
        let pk_fields = list(config, pk_fields_key);
        if pk_mode == PkMode::Kafka && !(pk_fields.is_empty() || pk_fields.len() == 3) {
            return Err(ConnectError::config(
                pk_fields_key,
                "with pk.mode=kafka, pk.fields must name 3 columns (topic, partition, offset) or be empty",
            ));
        }
        let (include_key, exclude) = match flavor {
            Flavor::Confluent => ("fields.whitelist", Vec::new()),
            Flavor::Debezium => ("field.include.list", list(config, "field.exclude.list")),
        };
        let mut fields_include = list(config, include_key);
        if fields_include.is_empty() {
            // Both spellings are accepted by either class.
            fields_include =
                list(config, if flavor == Flavor::Confluent { "field.include.list" } else { "fields.whitelist" });
        }
        let (auto_create, auto_evolve) = match flavor {
            Flavor::Confluent => (boolean(config, "auto.create", false)?, boolean(config, "auto.evolve", false)?),
            Flavor::Debezium => {
                let basic = match get(config, "schema.evolution").unwrap_or("none").to_ascii_lowercase().as_str() {
                    "none" | "" => false,
                    "basic" => true,
                    other => {
                        return Err(ConnectError::config(
                            "schema.evolution",
                            format!("Invalid value {other}: must be one of none, basic"),
                        ));
                    }
                };
                (basic, basic)
            }
        };
        let table_format = match flavor {
            Flavor::Confluent => get(config, "table.name.format").filter(|s| !s.is_empty()).unwrap_or("${topic}"),
            Flavor::Debezium => get(config, "collection.name.format")
                .or_else(|| get(config, "table.name.format"))
                .filter(|s| !s.is_empty())
                .unwrap_or("${topic}"),
        }
        .to_string();
        let delete_enabled = boolean(config, "delete.enabled", false)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(ConnectError::config(
                "delete.enabled",
                format!("Deletes are only supported for {pk_key}=record_key"),
            ));
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            return Err(ConnectError::config(
                pk_key,
                format!(
                    "insert.mode={} needs a primary key: set {pk_key}",
                    match insert_mode {
                        InsertMode::Upsert => "upsert",
                        _ => "update",
                    }
                ),
            ));
        }
        let batch_default = if flavor == Flavor::Confluent { 3000 } else { 500 };
        let batch_size = int(config, "batch.size", batch_default)?;
        if batch_size < 1 {
            return Err(ConnectError::config("batch.size", "must be at least 1"));
        }
        let max_retries = match flavor {
            Flavor::Confluent => int(config, "max.retries", 10)?,
            Flavor::Debezium => int(config, "flush.max.retries", 5)?,
        }
        .max(0) as u32;
        let quote = match flavor {
            Flavor::Confluent => {
                match get(config, "quote.sql.identifiers").unwrap_or("always").to_ascii_lowercase().as_str() {
                    "always" | "" => true,
                    "never" => false,
                    other => {
                        return Err(ConnectError::config(
                            "quote.sql.identifiers",
                            format!("Invalid value {other}: must be one of always, never"),
                        ));
                    }
                }
            }
            Flavor::Debezium => boolean(config, "quote.identifiers", false)?,
        };
        // Confluent: `TimeZoneValidator` at validation, then `ZoneId.of(db.timezone)` (no SHORT_IDS) in
        // `JdbcSinkConfig`'s constructor, so `PST` validates but fails the task. `date.timezone` (DB_TIMEZONE | UTC,
        // `EnumValidator`, any case) picks the zone of Date values (kafka-connect-jdbc PR #1398).
        let (zone, date_zone, zone_error) = match flavor {
            Flavor::Confluent => {
                let id = get(config, "db.timezone").unwrap_or("UTC");
                if DbZone::confluent(id).is_none() {
                    return Err(ConnectError::config(
                        "db.timezone",
                        format!("Invalid value {id} for configuration db.timezone: {INVALID_ZONE}"),
                    ));
                }
                let (zone, error) = match DbZone::parse(id, false) {
                    Some(z) => (z, None),
                    None => (DbZone::UTC, Some(format!("Unknown time-zone ID: {id}"))),
                };
                // `EnumValidator`: the names upper- or lower-case.
                let date_zone = match get(config, "date.timezone").unwrap_or("DB_TIMEZONE") {
                    "DB_TIMEZONE" | "db_timezone" => zone,
                    "UTC" | "utc" => DbZone::UTC,
                    other => {
                        return Err(ConnectError::config(
                            "date.timezone",
                            format!("Invalid value {other} for configuration date.timezone: Invalid enumerator"),
                        ));
                    }
                };
                (zone, date_zone, error)
            }
            Flavor::Debezium => {
                // `use.time.zone` (deprecated alias `database.time_zone`), no validator: the types resolve it with
                // `ZoneId.of` when the task starts.
                let id = get(config, "use.time.zone")
                    .filter(|s| !s.is_empty())
                    .or_else(|| get(config, "database.time_zone").filter(|s| !s.is_empty()))
                    .unwrap_or("UTC");
                // Sluice: the Debezium sink's zone handling (through Hibernate's `hibernate.jdbc.time_zone`) is not
                // reproduced; a zone other than UTC+0 is refused at validation rather than written differently.
                match DbZone::parse(id, false) {
                    Some(z) if z.is_utc() => (z, z, None),
                    Some(_) => {
                        return Err(ConnectError::config(
                            "use.time.zone",
                            format!("use.time.zone {id} is not supported by Sluice's Debezium JDBC sink (only UTC)"),
                        ));
                    }
                    None => (DbZone::UTC, DbZone::UTC, Some(format!("Unknown time-zone ID: {id}"))),
                }
            }
        };
        let offsets_table = match config.get(OFFSETS_TABLE_CONFIG) {
            Some(t) if t.trim().is_empty() => None,
            Some(t) => Some(t.trim().to_string()),
            None => Some(DEFAULT_OFFSETS_TABLE.to_string()),
        };
        Ok(SinkSettings {
            flavor,
            insert_mode,
            pk_mode,
            pk_fields,
            fields_include,
            fields_exclude: exclude,
            auto_create,
            auto_evolve,
            table_format,
            delete_enabled,
            batch_size: batch_size as usize,
            max_retries,
            quote,
            offsets_table,
            zone,
            date_zone,
            zone_error,
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

/// The config definition of either class.
pub fn config_def(flavor: Flavor) -> ConfigDef {
    use ConfigType::*;
    use Importance::*;
    let def = ConfigDef::new()
        .define(key("connection.url", String, DefaultValue::Required, High, "JDBC connection URL: jdbc:postgresql://host:port/db, jdbc:mysql://host:port/db or jdbc:mariadb://host:port/db."))
        .define(key("connection.password", Password, DefaultValue::Null, High, "JDBC connection password."))
        .define(key("insert.mode", String, v("insert"), High, "The insertion mode to use: insert, upsert (INSERT ... ON CONFLICT DO UPDATE / ON DUPLICATE KEY UPDATE) or update.").with_validator(Validator::ValidString(vec!["insert", "upsert", "update"])))
        .define(key("delete.enabled", Boolean, v("false"), Medium, "Whether to treat null record values (tombstones) as deletes. Requires the primary key mode record_key."))
        .define(key("batch.size", Int, v(if flavor == Flavor::Confluent { "3000" } else { "500" }), Medium, "Specifies how many records to attempt to batch together for insertion into the destination table, when possible."))
        .define(key(OFFSETS_TABLE_CONFIG, String, v(DEFAULT_OFFSETS_TABLE), Low, "Sluice: the table in which the sink stores the Kafka offsets it wrote, in the same transaction as the rows, and from which it skips records already written after a restart (exactly-once into the table in every insert mode). Empty disables it (at-least-once, as the originals)."));
    match flavor {
        Flavor::Confluent => def
            .define(key("connection.user", String, DefaultValue::Null, High, "JDBC connection user."))
            .define(key("connection.attempts", Int, v("3"), Low, "Maximum number of attempts to retrieve a valid JDBC connection."))
            .define(key("connection.backoff.ms", Long, v("10000"), Low, "Backoff time in milliseconds between connection attempts."))
            .define(key("dialect.name", String, v(""), Low, "The name of the database dialect; empty picks it from the URL."))
            .define(key("pk.mode", String, v("none"), High, "The primary key mode: none, kafka (__connect_topic, __connect_partition, __connect_offset), record_key or record_value.").with_validator(Validator::ValidString(vec!["none", "kafka", "record_key", "record_value"])))
            .define(key("pk.fields", List, v(""), Medium, "List of comma-separated primary key field names; meaning depends on pk.mode."))
            .define(key("fields.whitelist", List, v(""), Medium, "List of comma-separated record value field names. If empty, all fields from the record value are used."))
            .define(key("auto.create", Boolean, v("false"), Medium, "Whether to automatically create the destination table based on record schema (CREATE TABLE)."))
            .define(key("auto.evolve", Boolean, v("false"), Medium, "Whether to automatically add columns to the table schema when found missing relative to the record schema (ALTER TABLE ADD)."))
            .define(key("table.name.format", String, v("${topic}"), Medium, "A format string for the destination table name, which may contain '${topic}' as a placeholder for the originating topic name."))
            .define(key("table.types", List, v("TABLE"), Low, "The comma-separated types of database tables to which the sink connector can write."))
            .define(key("max.retries", Int, v("10"), Medium, "The maximum number of times to retry on errors before failing the task."))
            .define(key("retry.backoff.ms", Int, v("3000"), Medium, "The time in milliseconds to wait following an error before a retry attempt is made."))
            .define(key("quote.sql.identifiers", String, v("always"), Medium, "When to quote table names, column names, and other identifiers in SQL statements: always or never."))
            .define(key("db.timezone", String, v("UTC"), Medium, "Name of the JDBC timezone that should be used in the connector when inserting time-based values. Defaults to UTC."))
            .define(key("date.timezone", String, v("DB_TIMEZONE"), Low, "Name of the JDBC timezone that should be used in the connector when inserting DATE type values: DB_TIMEZONE (db.timezone, the default) or UTC."))
            .define(key("replace.null.with.default", Boolean, v("true"), Low, "Whether to replace null values with the field's default value.")),
        Flavor::Debezium => def
            .define(key("connection.username", String, DefaultValue::Null, High, "Name of the database user to be used when connecting to the connection."))
            .define(key("connection.pool.min_size", Int, v("5"), Low, "Minimum number of connection in the connection pool."))
            .define(key("connection.pool.max_size", Int, v("32"), Low, "Maximum number of connection in the connection pool."))
            .define(key("connection.pool.timeout", Int, v("1800"), Low, "Connection timeout in seconds."))
            .define(key("primary.key.mode", String, v("none"), Medium, "How the primary key columns are resolved: none, kafka, record_key, record_value.").with_validator(Validator::ValidString(vec!["none", "kafka", "record_key", "record_value", "record_header"])))
            .define(key("primary.key.fields", List, DefaultValue::Null, Medium, "A comma-separated list of primary key field names."))
            .define(key("field.include.list", List, DefaultValue::Null, Medium, "A comma-separated list of fields to include."))
            .define(key("field.exclude.list", List, DefaultValue::Null, Medium, "A comma-separated list of fields to exclude."))
            .define(key("schema.evolution", String, v("none"), Medium, "Controls how schema evolution is handled: none or basic (CREATE TABLE and ALTER TABLE ADD COLUMN).").with_validator(Validator::ValidString(vec!["none", "basic"])))
            .define(key("collection.name.format", String, v("${topic}"), Medium, "A format string for the table name; '${topic}' is the topic with '.' replaced by '_'; '${source.<field>}' reads the envelope's source block."))
            .define(key("truncate.enabled", Boolean, v("false"), Medium, "Whether to process truncate events."))
            .define(key("quote.identifiers", Boolean, v("false"), Medium, "Whether table and column names are quoted."))
            .define(key("use.time.zone", String, v("UTC"), Medium, "The timezone used when inserting temporal values. Defaults to UTC (Sluice: zones at UTC+0 only)."))
            .define(key("use.reduction.buffer", Boolean, v("false"), Low, "Collapse changes to one key within a batch (Sluice always does for keyed modes)."))
            .define(key("flush.max.retries", Int, v("5"), Low, "Number of retries when flushing to the database fails."))
            .define(key("flush.retry.delay.ms", Long, v("1000"), Low, "Delay between flush retries in milliseconds.")),
    }
}
