//! The common head of Debezium's `source` block (`SchemaFactory.sourceInfoSchemaBuilder`, version 1) and the
//! snapshot markers.

use std::sync::Arc;

use sluice_connect_api::record::{Schema, Value};

use crate::schema::SchemaBuilder;

/// `source.snapshot`'s allowed values, as the Enum parameter lists them.
pub const SNAPSHOT_ALLOWED: &str = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// What `source.snapshot` says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotMarker {
    /// A snapshot row that is neither first nor last.
    True,
    /// The first row of the whole snapshot.
    First,
    FirstInDataCollection,
    LastInDataCollection,
    /// The last row of the whole snapshot.
    Last,
    /// Streaming.
    False,
    Incremental,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::FirstInDataCollection => "first_in_data_collection",
            SnapshotMarker::LastInDataCollection => "last_in_data_collection",
            SnapshotMarker::Last => "last",
            SnapshotMarker::False => "false",
            SnapshotMarker::Incremental => "incremental",
        }
    }

    /// The marker of row `index` (0-based) of `rows` in table `table_index` of `tables`, as Debezium's
    /// `RelationalSnapshotChangeEventSource` sets it: `first` for the very first row, `last` for the very last,
    /// `first_in_data_collection`/`last_in_data_collection` at table edges, `true` otherwise (the first row of
    /// the snapshot wins over the table edges; a one-row snapshot is `last`).
    pub fn for_row(table_index: usize, tables: usize, index: u64, rows: u64) -> Self {
        let last_table = table_index + 1 == tables;
        let last_row = index + 1 == rows;
        if last_table && last_row {
            SnapshotMarker::Last
        } else if table_index == 0 && index == 0 {
            SnapshotMarker::First
        } else if last_row {
            SnapshotMarker::LastInDataCollection
        } else if index == 0 {
            SnapshotMarker::FirstInDataCollection
        } else {
            SnapshotMarker::True
        }
    }

    pub fn to_value(self) -> Value {
        Value::String(self.as_str().to_string())
    }
}

/// A builder for a connector's `source` struct, starting with the common fields `version`, `connector`, `name`,
/// `ts_ms`, `snapshot`, `db`, `sequence`, `ts_us`, `ts_ns`; add the connector's own fields after.
pub fn source_schema_builder(struct_name: &str) -> SchemaBuilder {
    SchemaBuilder::struct_()
        .name(struct_name)
        .version(1)
        .field("version", SchemaBuilder::string().arc())
        .field("connector", SchemaBuilder::string().arc())
        .field("name", SchemaBuilder::string().arc())
        .field("ts_ms", SchemaBuilder::int64().arc())
        .field("snapshot", snapshot_schema())
        .field("db", SchemaBuilder::string().arc())
        .field("sequence", SchemaBuilder::string().optional().arc())
        .field("ts_us", SchemaBuilder::int64().optional().arc())
        .field("ts_ns", SchemaBuilder::int64().optional().arc())
}

/// `io.debezium.data.Enum` v1, optional, default `"false"`.
pub fn snapshot_schema() -> Arc<Schema> {
    SchemaBuilder::string()
        .optional()
        .name(crate::schema::ENUM)
        .version(1)
        .parameter("allowed", SNAPSHOT_ALLOWED)
        .default_value(Value::String("false".into()))
        .arc()
}

/// The values of the common fields, in order: append the connector's own after them.
pub struct CommonSource<'a> {
    pub version: &'a str,
    pub connector: &'a str,
    pub name: &'a str,
    /// Database time of the event, in microseconds since the epoch (`ts_ms`/`ts_us`/`ts_ns` are derived).
    pub ts_us: i64,
    pub snapshot: SnapshotMarker,
    pub db: &'a str,
    pub sequence: Option<String>,
}

impl CommonSource<'_> {
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::String(self.version.to_string()),
            Value::String(self.connector.to_string()),
            Value::String(self.name.to_string()),
            Value::Int64(self.ts_us.div_euclid(1000)),
            self.snapshot.to_value(),
            Value::String(self.db.to_string()),
            self.sequence.clone().map(Value::String).unwrap_or(Value::Null),
            Value::Int64(self.ts_us),
            Value::Int64(self.ts_us.saturating_mul(1000)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(SnapshotMarker::for_row(0, 1, 0, 1), SnapshotMarker::Last);
        assert_eq!(SnapshotMarker::for_row(0, 2, 0, 3), SnapshotMarker::First);
        assert_eq!(SnapshotMarker::for_row(0, 2, 1, 3), SnapshotMarker::True);
        assert_eq!(SnapshotMarker::for_row(0, 2, 2, 3), SnapshotMarker::LastInDataCollection);
        assert_eq!(SnapshotMarker::for_row(1, 2, 0, 3), SnapshotMarker::FirstInDataCollection);
        assert_eq!(SnapshotMarker::for_row(1, 2, 2, 3), SnapshotMarker::Last);
        assert_eq!(SnapshotMarker::for_row(0, 3, 0, 1), SnapshotMarker::First);
        assert_eq!(SnapshotMarker::for_row(1, 3, 0, 1), SnapshotMarker::LastInDataCollection);
    }
}
