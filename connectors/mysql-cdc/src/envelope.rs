//! Debezium's change event envelope, `source` block, heartbeat and transaction schemas for the binlog connectors.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_connect_api::record::{Field, Schema, SchemaType, Value};

use crate::config::Flavor;

fn field(name: &str, index: usize, schema: Schema) -> Field {
    Field { name: name.to_string(), index, schema: Arc::new(schema) }
}

fn prim(t: SchemaType, optional: bool) -> Schema {
    Schema::primitive(t, optional)
}

fn structure(name: &str, optional: bool, version: Option<i32>, fields: Vec<(&str, Schema)>) -> Schema {
    let mut s = Schema::primitive(SchemaType::Struct, optional);
    s.name = Some(name.to_string());
    s.version = version;
    s.fields = fields.into_iter().enumerate().map(|(i, (n, sch))| field(n, i, sch)).collect();
    s
}

/// The `source` struct schema of the MySQL or MariaDB connector.
pub fn source_schema(flavor: Flavor) -> Arc<Schema> {
    static MYSQL: OnceLock<Arc<Schema>> = OnceLock::new();
    static MARIADB: OnceLock<Arc<Schema>> = OnceLock::new();
    let cell = match flavor {
        Flavor::MySql => &MYSQL,
        Flavor::MariaDb => &MARIADB,
    };
    cell.get_or_init(|| {
        use SchemaType::*;
        let mut snapshot = prim(String, true);
        snapshot.name = Some("io.debezium.data.Enum".into());
        snapshot.version = Some(1);
        snapshot.parameters = Some(vec![(
            "allowed".into(),
            "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental".into(),
        )]);
        snapshot.default = Some(Box::new(Value::String("false".into())));
        Arc::new(structure(
            &format!("{}.Source", flavor.package()),
            false,
            Some(1),
            vec![
                ("version", prim(String, false)),
                ("connector", prim(String, false)),
                ("name", prim(String, false)),
                ("ts_ms", prim(Int64, false)),
                ("snapshot", snapshot),
                ("db", prim(String, false)),
                ("sequence", prim(String, true)),
                ("ts_us", prim(Int64, true)),
                ("ts_ns", prim(Int64, true)),
                ("table", prim(String, true)),
                ("server_id", prim(Int64, false)),
                ("gtid", prim(String, true)),
                ("file", prim(String, false)),
                ("pos", prim(Int64, false)),
                ("row", prim(Int32, false)),
                ("thread", prim(Int64, true)),
                ("query", prim(String, true)),
            ],
        ))
    })
    .clone()
}

/// The `transaction` block schema (`event.block`).
pub fn transaction_block_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(structure(
            "event.block",
            true,
            Some(1),
            vec![
                ("id", prim(SchemaType::String, false)),
                ("total_order", prim(SchemaType::Int64, false)),
                ("data_collection_order", prim(SchemaType::Int64, false)),
            ],
        ))
    })
    .clone()
}

/// `<topic>.Envelope` (version 2) around a row schema `<topic>.Value`.
pub fn envelope_schema(topic: &str, row: &Arc<Schema>, flavor: Flavor) -> Arc<Schema> {
    use SchemaType::*;
    let mut s = Schema::primitive(Struct, false);
    s.name = Some(format!("{topic}.Envelope"));
    s.version = Some(2);
    let mut fields = vec![
        Field { name: "before".into(), index: 0, schema: row.clone() },
        Field { name: "after".into(), index: 1, schema: row.clone() },
        Field { name: "source".into(), index: 2, schema: source_schema(flavor) },
        Field { name: "transaction".into(), index: 3, schema: transaction_block_schema() },
    ];
    for (i, (n, t, opt)) in
        [("op", String, false), ("ts_ms", Int64, true), ("ts_us", Int64, true), ("ts_ns", Int64, true)]
            .into_iter()
            .enumerate()
    {
        fields.push(Field { name: n.into(), index: 4 + i, schema: Arc::new(prim(t, opt)) });
    }
    s.fields = fields;
    Arc::new(s)
}

/// The `source` block values.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    pub ts_ms: i64,
    pub snapshot: Option<&'static str>,
    pub db: String,
    pub table: Option<String>,
    pub server_id: i64,
    pub gtid: Option<String>,
    pub file: String,
    pub pos: i64,
    pub row: i32,
    pub thread: Option<i64>,
    pub query: Option<String>,
}

impl SourceInfo {
    pub fn value(&self, flavor: Flavor, name: &str, version: &str) -> Value {
        let opt_s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        Value::Struct(vec![
            Value::String(version.to_string()),
            Value::String(flavor.connector_name().to_string()),
            Value::String(name.to_string()),
            Value::Int64(self.ts_ms),
            Value::String(self.snapshot.unwrap_or("false").to_string()),
            Value::String(self.db.clone()),
            Value::Null,
            Value::Int64(self.ts_ms * 1000),
            Value::Int64(self.ts_ms * 1_000_000),
            opt_s(&self.table),
            Value::Int64(self.server_id),
            opt_s(&self.gtid),
            Value::String(self.file.clone()),
            Value::Int64(self.pos),
            Value::Int32(self.row),
            self.thread.map(Value::Int64).unwrap_or(Value::Null),
            opt_s(&self.query),
        ])
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The envelope value: before, after, source, transaction, op, ts_ms/us/ns (processing time).
pub fn envelope_value(before: Value, after: Value, source: Value, transaction: Value, op: &str) -> Value {
    let ns = now_ns();
    Value::Struct(vec![
        before,
        after,
        source,
        transaction,
        Value::String(op.to_string()),
        Value::Int64(ns / 1_000_000),
        Value::Int64(ns / 1_000),
        Value::Int64(ns),
    ])
}

/// The heartbeat key schema `io.debezium.connector.common.ServerNameKey {serverName}`.
pub fn heartbeat_key_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(structure(
            "io.debezium.connector.common.ServerNameKey",
            false,
            Some(1),
            vec![("serverName", prim(SchemaType::String, false))],
        ))
    })
    .clone()
}

/// The heartbeat value schema `io.debezium.connector.common.Heartbeat {ts_ms}`.
pub fn heartbeat_value_schema() -> Arc<Schema> {
    static S: OnceLock<Arc<Schema>> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(structure(
            "io.debezium.connector.common.Heartbeat",
            false,
            Some(1),
            vec![("ts_ms", prim(SchemaType::Int64, false))],
        ))
    })
    .clone()
}

/// Transaction metadata key `{id}` and value `{status, id, event_count, data_collections, ts_ms}` schemas.
pub fn transaction_schemas() -> (Arc<Schema>, Arc<Schema>) {
    static S: OnceLock<(Arc<Schema>, Arc<Schema>)> = OnceLock::new();
    S.get_or_init(|| {
        use SchemaType::*;
        let key = structure(
            "io.debezium.connector.common.TransactionMetadataKey",
            false,
            Some(1),
            vec![("id", prim(String, false))],
        );
        let collection = structure(
            "event.collection",
            true,
            Some(1),
            vec![("data_collection", prim(String, false)), ("event_count", prim(Int64, false))],
        );
        let mut collections = Schema::primitive(Array, true);
        collections.value_schema = Some(Arc::new(collection));
        let value = structure(
            "io.debezium.connector.common.TransactionMetadataValue",
            false,
            Some(1),
            vec![
                ("status", prim(String, false)),
                ("id", prim(String, false)),
                ("event_count", prim(Int64, true)),
                ("data_collections", collections),
                ("ts_ms", prim(Int64, false)),
            ],
        );
        (Arc::new(key), Arc::new(value))
    })
    .clone()
}

/// A per task start identifier shaped as a UUIDv7 (the `__debezium.context.runId` header).
pub fn run_id() -> String {
    let ms = (now_ns() / 1_000_000) as u64;
    let r: u128 = rand::random();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&r.to_be_bytes()[6..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The four `__debezium.context.*` headers.
pub fn context_headers(prefix: &str, task: u32, flavor: Flavor, run_id: &str) -> Vec<(String, Option<Bytes>)> {
    vec![
        ("__debezium.context.connectorLogicalName".into(), Some(Bytes::from(prefix.to_string()))),
        ("__debezium.context.taskId".into(), Some(Bytes::from(task.to_string()))),
        ("__debezium.context.connectorName".into(), Some(Bytes::from(flavor.connector_name()))),
        ("__debezium.context.runId".into(), Some(Bytes::from(run_id.to_string()))),
    ]
}
