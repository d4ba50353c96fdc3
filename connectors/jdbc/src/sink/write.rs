//! From records to rows to SQL: extraction (primary key modes, field filters, Debezium envelopes), table
//! creation/evolution, and the per-dialect batch writers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use futures::SinkExt;
use mysql_async::prelude::Queryable;

use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Schema, SchemaType, SinkRecord, Value};

use super::config::{InsertMode, PkMode, SinkSettings};
use super::types::{self, Flavor, Rendered, TimeZones};
use crate::connection::{Dialect, Pool, mysql_error, pg_error};

static STRING_SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::primitive(SchemaType::String, false));
static INT32_SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::primitive(SchemaType::Int32, false));
static INT64_SCHEMA: LazyLock<Schema> = LazyLock::new(|| Schema::primitive(SchemaType::Int64, false));
const KAFKA_PK: [&str; 3] = ["__connect_topic", "__connect_partition", "__connect_offset"];
/// Bytes of COPY data sent to PostgreSQL at a time.
const COPY_CHUNK: usize = 64 << 10;
/// MySQL's limit on placeholders in one statement is 65,535.
const MYSQL_MAX_PARAMS: usize = 60_000;

/// A column's value: from the record, or Kafka coordinates.
#[derive(Clone, Copy)]
enum Cell<'a> {
    V(&'a Value),
    Str(&'a str),
    I64(i64),
}

#[derive(Clone, Copy)]
struct Col<'a> {
    name: &'a str,
    schema: &'a Schema,
    cell: Cell<'a>,
}

struct Row<'a> {
    table: Arc<str>,
    delete: bool,
    /// Key columns first (`nkey` of them), then the others; a slice of the put's [`Cells`].
    cols: &'a [Col<'a>],
    nkey: usize,
}

/// A row as [`extract`] leaves it: its columns are `cells[cols]` of the put's one cell vector (no vector per row).
struct RowAt {
    table: Arc<str>,
    delete: bool,
    cols: std::ops::Range<usize>,
    nkey: usize,
}

/// The columns of every row of a put, one row after the other.
type Cells<'a> = Vec<Col<'a>>;

/// Rows of a put with their columns in `cells`: `(record index, row)`.
fn rows_in<'c, 'a: 'c>(cells: &'c Cells<'a>, at: Vec<(usize, RowAt)>) -> Vec<(usize, Row<'c>)> {
    at.into_iter()
        .map(|(i, r)| (i, Row { table: r.table, delete: r.delete, cols: &cells[r.cols], nkey: r.nkey }))
        .collect()
}

/// Known columns of a table (normalized names), with their PostgreSQL type where the binary COPY writes it.
pub struct TableInfo {
    columns: HashMap<String, PgType>,
}

/// A PostgreSQL column type as the binary COPY sees it: the types whose binary form Connect's plain values map to
/// exactly; a table with any other column in a run is written with the text COPY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `text` and `varchar` (whose binary input checks the length as the text input does).
    Text,
    Bytea,
    Other,
}

impl PgType {
    fn of_udt(udt: &str) -> PgType {
        match udt {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "text" | "varchar" => PgType::Text,
            "bytea" => PgType::Bytea,
            _ => PgType::Other,
        }
    }
}

/// The value a cell writes: a null takes the schema's default, as the text rendering does.
fn effective<'v>(schema: &'v Schema, v: &'v Value) -> &'v Value {
    match v {
        Value::Null => schema.default.as_deref().unwrap_or(v),
        v => v,
    }
}

/// Whether the binary COPY writes this cell into a column of type `t` with exactly the value the text COPY would
/// store: plain values (no logical type) into their own type or a wider integer one; anything else is text.
fn binary_fits(t: PgType, col: &Col<'_>) -> bool {
    let v = match col.cell {
        Cell::Str(_) => return t == PgType::Text,
        Cell::I64(v) => {
            return match t {
                PgType::Int8 => true,
                PgType::Int4 => i32::try_from(v).is_ok(),
                PgType::Int2 => i16::try_from(v).is_ok(),
                _ => false,
            };
        }
        Cell::V(v) => v,
    };
    if col.schema.name.is_some() {
        return false;
    }
    use PgType::*;
    matches!(
        (effective(col.schema, v), t),
        (Value::Null, _)
            | (Value::Boolean(_), Bool)
            | (Value::Int8(_) | Value::Int16(_), Int2 | Int4 | Int8)
            | (Value::Int32(_), Int4 | Int8)
            | (Value::Int64(_), Int8)
            // The text path writes a float32 as the float64 it widens to: the same value either way.
            | (Value::Float32(_), Float4 | Float8)
            | (Value::Float64(_), Float8)
            | (Value::String(_), Text)
            | (Value::Bytes(_), Bytea)
    )
}

/// Appends a cell in PostgreSQL's binary COPY format (length, then the value in network order); the cell was
/// checked with [`binary_fits`].
fn push_binary(buf: &mut Vec<u8>, t: PgType, col: &Col<'_>) {
    fn int(buf: &mut Vec<u8>, t: PgType, v: i64) {
        match t {
            PgType::Int2 => {
                buf.extend_from_slice(&2i32.to_be_bytes());
                buf.extend_from_slice(&(v as i16).to_be_bytes());
            }
            PgType::Int4 => {
                buf.extend_from_slice(&4i32.to_be_bytes());
                buf.extend_from_slice(&(v as i32).to_be_bytes());
            }
            _ => {
                buf.extend_from_slice(&8i32.to_be_bytes());
                buf.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    fn bytes(buf: &mut Vec<u8>, b: &[u8]) {
        buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
        buf.extend_from_slice(b);
    }
    let v = match col.cell {
        Cell::Str(s) => return bytes(buf, s.as_bytes()),
        Cell::I64(v) => return int(buf, t, v),
        Cell::V(v) => effective(col.schema, v),
    };
    match v {
        Value::Boolean(b) => {
            buf.extend_from_slice(&1i32.to_be_bytes());
            buf.push(*b as u8);
        }
        Value::Int8(v) => int(buf, t, *v as i64),
        Value::Int16(v) => int(buf, t, *v as i64),
        Value::Int32(v) => int(buf, t, *v as i64),
        Value::Int64(v) => int(buf, t, *v),
        Value::Float32(v) if t == PgType::Float4 => bytes(buf, &v.to_bits().to_be_bytes()),
        Value::Float32(v) => bytes(buf, &(*v as f64).to_bits().to_be_bytes()),
        Value::Float64(v) => bytes(buf, &v.to_bits().to_be_bytes()),
        Value::String(s) => bytes(buf, s.as_bytes()),
        Value::Bytes(b) => bytes(buf, b),
        _ => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// The binary COPY's signature, flags and header extension length.
const BINARY_COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

pub struct Writer {
    pub settings: SinkSettings,
    pub pool: Pool,
    pub connector: String,
    pub tables: HashMap<String, TableInfo>,
    pub retries: u32,
    pub offsets_table_ready: bool,
    /// PostgreSQL: the previous put's transaction, COMMIT in flight.
    pub pending: Option<PendingCommit>,
    /// PostgreSQL: a transaction whose COMMIT failed after its put returned, to redo before anything else.
    pub failed: Option<Replay>,
    /// PostgreSQL, exactly-once: the next offset per partition the offsets table holds once this writer's last
    /// transaction commits (`None`: no row), as far as this writer knows; cleared after any failure.
    pub stored: HashMap<(String, i32), Option<i64>>,
}

/// A PostgreSQL transaction whose COMMIT was sent and is not confirmed yet, with what it wrote.
pub struct PendingCommit {
    handle: tokio::task::JoinHandle<Result<(), ConnectError>>,
    replay: Replay,
}

/// What a PostgreSQL transaction sent, to send it again if its COMMIT fails (the COPY data is shared, not copied).
#[derive(Default)]
pub struct Replay {
    steps: Vec<Step>,
    /// Exactly-once: the stored next offset per partition when the transaction read it (`None`: no row).
    read: Vec<((String, i32), Option<i64>)>,
    /// Exactly-once: the next offsets it stored.
    ends: Vec<((String, i32), i64)>,
}

enum Step {
    Sql(String),
    Copy(String, Vec<Bytes>),
}

/// A pooled PostgreSQL connection inside a transaction (`BEGIN` sent). Dropped without COMMIT or ROLLBACK (a put
/// cancelled midway), the connection is closed rather than returned to the pool, so the server rolls back.
struct TxConn {
    conn: Option<deadpool_postgres::Object>,
}

impl TxConn {
    async fn begin(pool: &Pool) -> Result<TxConn, ConnectError> {
        let conn = pool.pg().await?;
        conn.batch_execute("BEGIN").await.map_err(|e| pg_error("BEGIN", e))?;
        Ok(TxConn { conn: Some(conn) })
    }

    /// The connection, with its cache of prepared statements (statements sent with every put are prepared once
    /// per connection, not once per put: a round trip each).
    fn client(&self) -> &deadpool_postgres::ClientWrapper {
        self.conn.as_ref().expect("open")
    }

    async fn commit(mut self) -> Result<(), ConnectError> {
        let conn = self.conn.take().expect("open");
        match conn.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                drop(deadpool_postgres::Object::take(conn));
                Err(pg_error("COMMIT", e))
            }
        }
    }

    async fn rollback(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.batch_execute("ROLLBACK").await.is_err()
        {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

fn field_value<'a>(schema: &'a Schema, values: &'a [Value], name: &str) -> Option<(&'a Schema, &'a Value)> {
    let f = schema.field(name)?;
    Some((&f.schema, values.get(f.index)?))
}

fn is_envelope(schema: &Schema) -> bool {
    schema.schema_type == SchemaType::Struct
        && schema.field("op").is_some()
        && schema.field("after").is_some_and(|f| f.schema.schema_type == SchemaType::Struct)
}

/// The table of the last topic seen: the records of a consumed batch share their topic, so unless the name takes
/// `${source.*}` fields it is built once per run of a topic, not per record.
#[derive(Default)]
struct TableNames {
    last: Option<(Arc<str>, Arc<str>)>,
}

impl TableNames {
    fn get(&mut self, settings: &SinkSettings, record: &SinkRecord, source: Option<(&Schema, &[Value])>) -> Arc<str> {
        if source.is_some() && settings.table_format.contains("${source.") {
            return table_name(settings, record, source).into();
        }
        match &self.last {
            Some((topic, table)) if **topic == *record.topic => table.clone(),
            _ => {
                let table: Arc<str> = table_name(settings, record, None).into();
                self.last = Some((record.topic.clone(), table.clone()));
                table
            }
        }
    }
}

fn table_name(settings: &SinkSettings, record: &SinkRecord, source: Option<(&Schema, &[Value])>) -> String {
    let topic = match settings.flavor {
        Flavor::Confluent => std::borrow::Cow::Borrowed(&*record.topic),
        Flavor::Debezium if record.topic.contains('.') => std::borrow::Cow::Owned(record.topic.replace('.', "_")),
        Flavor::Debezium => std::borrow::Cow::Borrowed(&*record.topic),
    };
    let mut name = settings.table_format.replace("${topic}", &topic);
    if let Some((schema, values)) = source {
        while let Some(start) = name.find("${source.") {
            let Some(end) = name[start..].find('}') else { break };
            let field = &name[start + 9..start + end];
            let v = match field_value(schema, values, field) {
                Some((_, Value::String(s))) => s.clone(),
                _ => String::new(),
            };
            name.replace_range(start..start + end + 1, &v);
        }
    }
    name
}

/// Kafka Connect JDBC's record-to-row logic: the row's columns are appended to `cols`. `None`: nothing to write
/// for this record (and nothing appended).
fn extract<'a>(
    s: &'a SinkSettings,
    names: &mut TableNames,
    record: &'a SinkRecord,
    cols: &mut Cells<'a>,
) -> Result<Option<RowAt>, ConnectError> {
    let mut delete = false;
    let mut source = None;
    let mut value: Option<(&'a Schema, &'a [Value])> = None;
    match (&record.value, record.value_schema.as_deref()) {
        (Value::Null, _) => {
            if !s.delete_enabled {
                return Ok(None);
            }
            delete = true;
        }
        (Value::Struct(fields), Some(schema)) if schema.schema_type == SchemaType::Struct => {
            if is_envelope(schema) {
                let op = match field_value(schema, fields, "op") {
                    Some((_, Value::String(op))) => op.as_str(),
                    _ => "",
                };
                if let Some((ss, Value::Struct(sv))) = field_value(schema, fields, "source") {
                    source = Some((ss, sv.as_slice()));
                }
                match op {
                    "d" => {
                        if !s.delete_enabled {
                            return Ok(None);
                        }
                        delete = true;
                    }
                    "c" | "r" | "u" => match field_value(schema, fields, "after") {
                        Some((after_schema, Value::Struct(after))) => value = Some((after_schema, after.as_slice())),
                        _ => return Ok(None),
                    },
                    // Truncate and unknown operations are not applied.
                    _ => return Ok(None),
                }
            } else {
                value = Some((schema, fields.as_slice()));
            }
        }
        _ => {
            return Err(ConnectError::Data(format!(
                "Sink connector requires records with a non-null Struct value and non-null Struct schema, but found \
                 record at (topic='{}',partition={},offset={}) with a {} value and {} value schema",
                record.topic,
                record.partition,
                record.offset,
                kind(&record.value),
                record.value_schema.as_ref().map(|s| s.schema_type.name()).unwrap_or("null")
            )));
        }
    }
    let table = names.get(s, record, source);
    let start = cols.len();
    let row = extract_cols(s, record, value, delete, cols);
    if row.is_err() {
        cols.truncate(start);
    }
    Ok(Some(RowAt { table, delete, cols: start..cols.len(), nkey: row? - start }))
}

/// The columns of [`extract`], appended to `cols`; returns where the key columns end in `cols`.
fn extract_cols<'a>(
    s: &'a SinkSettings,
    record: &'a SinkRecord,
    value: Option<(&'a Schema, &'a [Value])>,
    delete: bool,
    cols: &mut Cells<'a>,
) -> Result<usize, ConnectError> {
    let start = cols.len();
    match s.pk_mode {
        PkMode::None => {}
        PkMode::Kafka => {
            let names: [&'a str; 3] =
                if s.pk_fields.len() == 3 { [&s.pk_fields[0], &s.pk_fields[1], &s.pk_fields[2]] } else { KAFKA_PK };
            cols.push(Col { name: names[0], schema: &STRING_SCHEMA, cell: Cell::Str(&record.topic) });
            cols.push(Col { name: names[1], schema: &INT32_SCHEMA, cell: Cell::I64(record.partition as i64) });
            cols.push(Col { name: names[2], schema: &INT64_SCHEMA, cell: Cell::I64(record.offset) });
        }
        PkMode::RecordKey => {
            let key_schema = record.key_schema.as_deref().ok_or_else(|| {
                ConnectError::Data(format!(
                    "pk.mode=record_key needs a key schema (record at topic='{}',partition={},offset={})",
                    record.topic, record.partition, record.offset
                ))
            })?;
            match (&record.key, key_schema.schema_type) {
                (Value::Struct(kv), SchemaType::Struct) => {
                    for f in &key_schema.fields {
                        if !s.pk_fields.is_empty() && !s.pk_fields.iter().any(|p| p == &f.name) {
                            continue;
                        }
                        let v = kv.get(f.index).unwrap_or(&Value::Null);
                        cols.push(Col { name: &f.name, schema: &f.schema, cell: Cell::V(v) });
                    }
                }
                (Value::Null, _) => {
                    return Err(ConnectError::Data(format!(
                        "pk.mode=record_key needs a non-null key (record at topic='{}',partition={},offset={})",
                        record.topic, record.partition, record.offset
                    )));
                }
                (k, _) => {
                    let name = s.pk_fields.first().map(String::as_str).unwrap_or("__connect_key");
                    cols.push(Col { name, schema: key_schema, cell: Cell::V(k) });
                }
            }
        }
        PkMode::RecordValue => {
            let Some((vs, vv)) = value else {
                return Err(ConnectError::Data("pk.mode=record_value cannot delete: the key is in the value".into()));
            };
            for f in &vs.fields {
                if !s.pk_fields.is_empty() && !s.pk_fields.iter().any(|p| p == &f.name) {
                    continue;
                }
                cols.push(Col {
                    name: &f.name,
                    schema: &f.schema,
                    cell: Cell::V(vv.get(f.index).unwrap_or(&Value::Null)),
                });
            }
        }
    }
    let nkey = cols.len();
    if let (false, Some((vs, vv))) = (delete, value) {
        {
            for f in &vs.fields {
                if cols[start..nkey].iter().any(|c| c.name == f.name) {
                    continue;
                }
                if !s.fields_include.is_empty() && !s.fields_include.iter().any(|p| p == &f.name) {
                    continue;
                }
                if s.fields_exclude.iter().any(|p| p == &f.name) {
                    continue;
                }
                cols.push(Col {
                    name: &f.name,
                    schema: &f.schema,
                    cell: Cell::V(vv.get(f.index).unwrap_or(&Value::Null)),
                });
            }
        }
    }
    Ok(nkey)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Struct(_) => "Struct",
        Value::Map(_) => "Map",
        Value::Array(_) => "Array",
        Value::String(_) => "String",
        _ => "primitive",
    }
}

/// Renders a cell as text into `scratch` (cleared first).
fn render_cell(
    scratch: &mut String,
    dialect: Dialect,
    zones: &TimeZones,
    col: &Col<'_>,
) -> Result<Rendered, ConnectError> {
    use std::fmt::Write;
    scratch.clear();
    match col.cell {
        Cell::Str(s) => {
            scratch.push_str(s);
            Ok(Rendered::Text)
        }
        Cell::I64(v) => {
            let _ = write!(scratch, "{v}");
            Ok(Rendered::Text)
        }
        Cell::V(v) => types::render(scratch, dialect, zones, col.schema, v)
            .map_err(|e| ConnectError::Data(format!("cannot write column `{}`: {e}", col.name))),
    }
}

/// A run of consecutive rows for one statement.
struct Run<'a> {
    rows: Vec<Row<'a>>,
}

/// Widens the offset range of `record`'s partition in `partitions` by `range`.
fn add_range<'r>(partitions: &mut BTreeMap<(&'r str, i32), (i64, i64)>, record: &'r SinkRecord, range: (i64, i64)) {
    let e = partitions.entry((&*record.topic, record.partition)).or_insert(range);
    e.0 = e.0.min(range.0);
    e.1 = e.1.max(range.1);
}

/// Exactly-once: the record is below what the offsets table holds for its partition (already written). A put has
/// few partitions: a scan, rather than a key allocated and hashed per record.
fn below_stored(stored: &HashMap<(String, i32), i64>, r: &SinkRecord) -> bool {
    stored.iter().any(|((topic, partition), next)| *partition == r.partition && **topic == *r.topic && r.offset < *next)
}

fn same_shape(a: &Row<'_>, b: &Row<'_>) -> bool {
    a.table == b.table
        && a.delete == b.delete
        && a.nkey == b.nkey
        && a.cols.len() == b.cols.len()
        // Rows of one schema name their columns with the same strings: the pointers compare first.
        && a.cols.iter().zip(b.cols).all(|(x, y)| std::ptr::eq(x.name, y.name) || x.name == y.name)
}

impl Writer {
    /// A writer with nothing written yet: no tables known, no COMMIT in flight.
    pub fn new(settings: SinkSettings, pool: Pool, connector: String) -> Self {
        Writer {
            settings,
            pool,
            connector,
            tables: HashMap::new(),
            retries: 0,
            offsets_table_ready: false,
            pending: None,
            failed: None,
            stored: HashMap::new(),
        }
    }

    fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    fn keyed(&self) -> bool {
        self.settings.pk_mode != PkMode::None
    }

    /// Normalized identifier for metadata comparisons.
    fn norm(&self, name: &str) -> String {
        match (self.dialect(), self.settings.quote) {
            (Dialect::Postgres, true) => name.to_string(),
            _ => name.to_lowercase(),
        }
    }

    fn ident(&self, out: &mut String, name: &str) {
        self.dialect().push_ident(out, name, self.settings.quote);
    }

    fn table_sql(&self, table: &str) -> String {
        let mut s = String::new();
        self.dialect().push_table(&mut s, table, self.settings.quote);
        s
    }

    pub async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        // A batch acknowledged earlier whose COMMIT failed comes first.
        self.redo_failed().await?;
        // Extract rows (a bad record fails the batch as Data: the runtime isolates it).
        let mut at = Vec::with_capacity(records.len());
        let mut cells = Cells::new();
        let mut partitions: BTreeMap<(&str, i32), (i64, i64)> = BTreeMap::new();
        // Consecutive records mostly share their partition (and their topic's `Arc`): the map is touched once per
        // change of partition, not per record.
        let mut current: Option<(&SinkRecord, (i64, i64))> = None;
        for r in records {
            match &mut current {
                Some((c, range)) if c.partition == r.partition && Arc::ptr_eq(&c.topic, &r.topic) => {
                    range.0 = range.0.min(r.offset);
                    range.1 = range.1.max(r.offset);
                }
                _ => {
                    if let Some((c, range)) = current.replace((r, (r.offset, r.offset))) {
                        add_range(&mut partitions, c, range);
                    }
                }
            }
        }
        if let Some((c, range)) = current {
            add_range(&mut partitions, c, range);
        }
        let mut names = TableNames::default();
        for (i, r) in records.iter().enumerate() {
            if let Some(row) = extract(&self.settings, &mut names, r, &mut cells)? {
                if at.is_empty() {
                    // The first row's width times the rest of the batch: one allocation when the rows are alike.
                    cells.reserve(row.cols.len() * (records.len() - i - 1));
                }
                at.push((i, row));
            }
        }
        let rows = rows_in(&cells, at);
        // DDL outside the data transaction. Consecutive rows of one shape are checked once.
        for (n, (_, row)) in rows.iter().enumerate() {
            if n > 0 && same_shape(&rows[n - 1].1, row) {
                continue;
            }
            let known = match self.tables.get(&*row.table) {
                Some(info) => row.cols.iter().all(|c| info.columns.contains_key(&self.norm(c.name))),
                None => false,
            };
            if !known {
                let info = self.ensure_table(row).await?;
                self.tables.insert(row.table.to_string(), info);
            }
        }
        if self.settings.offsets_table.is_some() && !self.offsets_table_ready {
            self.create_offsets_table().await?;
            self.offsets_table_ready = true;
        }
        match self.dialect() {
            Dialect::Postgres => {
                let written = self.put_pg(records, rows, &partitions).await;
                let (conn, replay) = written.inspect_err(|_| self.stored.clear())?;
                self.commit_pg(conn, replay).await.inspect_err(|_| self.stored.clear())
            }
            Dialect::MySql => self.put_mysql(records, rows, &partitions).await,
        }
    }

    /// Groups rows into runs: consecutive rows of the same table, operation and columns; in keyed modes a run
    /// never holds one key twice (a later change to the same key starts a new run, so order is kept).
    fn runs<'a>(
        &self,
        rows: Vec<(usize, Row<'a>)>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Run<'a>>, ConnectError> {
        let mut runs: Vec<Run<'a>> = Vec::new();
        let mut keys: HashSet<String> = HashSet::new();
        let mut scratch = String::new();
        let zones = self.settings.time_zones();
        let keyed = self.keyed();
        // A run is one statement: on MySQL a multi-row INSERT of at most `batch.size` rows; on PostgreSQL one COPY,
        // whose length needs no bound (fewer, longer runs are faster).
        let max_run = match self.dialect() {
            Dialect::Postgres => usize::MAX,
            Dialect::MySql => self.settings.batch_size,
        };
        let total = rows.len();
        for (i, row) in rows {
            if skip(i) {
                continue;
            }
            let key = if keyed {
                let mut k = String::new();
                for c in &row.cols[..row.nkey] {
                    match render_cell(&mut scratch, self.dialect(), &zones, c)? {
                        Rendered::Null => k.push_str("\u{0}N"),
                        _ => k.push_str(&scratch),
                    }
                    k.push('\u{1}');
                }
                Some(k)
            } else {
                None
            };
            let new_run = match runs.last() {
                Some(run) => {
                    !same_shape(&run.rows[0], &row)
                        || run.rows.len() >= max_run
                        || key.as_ref().is_some_and(|k| keys.contains(k))
                }
                None => true,
            };
            if new_run {
                keys.clear();
                // Most puts are one run: room for all of it at once.
                let rows = if runs.is_empty() { Vec::with_capacity(total) } else { Vec::new() };
                runs.push(Run { rows });
            }
            if let Some(k) = key {
                keys.insert(k);
            }
            runs.last_mut().expect("pushed").rows.push(row);
        }
        Ok(runs)
    }

    async fn ensure_table(&self, row: &Row<'_>) -> Result<TableInfo, ConnectError> {
        let existing = self.read_columns(&row.table).await?;
        let dialect = self.dialect();
        let flavor = self.settings.flavor;
        let table_sql = self.table_sql(&row.table);
        let mut ddl = Vec::new();
        if existing.is_empty() {
            if !self.settings.auto_create {
                return Err(ConnectError::Other(format!(
                    "Table {table_sql} is missing and auto-creation is disabled ({})",
                    if flavor == Flavor::Confluent { "auto.create=false" } else { "schema.evolution=none" }
                )));
            }
            let mut sql = format!("CREATE TABLE IF NOT EXISTS {table_sql} (");
            for (i, c) in row.cols.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let key = i < row.nkey;
                self.ident(&mut sql, c.name);
                sql.push(' ');
                sql.push_str(
                    &types::sql_type(dialect, flavor, c.schema, key)
                        .map_err(|e| ConnectError::Other(format!("{table_sql}.{}: {e}", c.name)))?,
                );
                self.column_tail(&mut sql, c, key)
                    .map_err(|e| ConnectError::Other(format!("{table_sql}.{}: {e}", c.name)))?;
            }
            if row.nkey > 0 {
                sql.push_str(", PRIMARY KEY(");
                for (i, c) in row.cols[..row.nkey].iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    self.ident(&mut sql, c.name);
                }
                sql.push(')');
            }
            sql.push(')');
            ddl.push(sql);
        } else {
            let missing: Vec<&Col<'_>> =
                row.cols.iter().filter(|c| !existing.contains_key(&self.norm(c.name))).collect();
            if !missing.is_empty() {
                if !self.settings.auto_evolve {
                    let names: Vec<&str> = missing.iter().map(|c| c.name).collect();
                    return Err(ConnectError::Other(format!(
                        "Table {table_sql} is missing fields ({}) and auto-evolution is disabled",
                        names.join(", ")
                    )));
                }
                for c in missing {
                    if !c.schema.optional && c.schema.default.is_none() {
                        return Err(ConnectError::Other(format!(
                            "Cannot ALTER TABLE {table_sql} to add missing field {}, as the field is not optional and does not have a default value",
                            c.name
                        )));
                    }
                    let mut sql = format!("ALTER TABLE {table_sql} ADD COLUMN IF NOT EXISTS ");
                    self.ident(&mut sql, c.name);
                    sql.push(' ');
                    sql.push_str(
                        &types::sql_type(dialect, flavor, c.schema, false)
                            .map_err(|e| ConnectError::Other(format!("{table_sql}.{}: {e}", c.name)))?,
                    );
                    self.column_tail(&mut sql, c, false)
                        .map_err(|e| ConnectError::Other(format!("{table_sql}.{}: {e}", c.name)))?;
                    ddl.push(sql);
                }
            }
        }
        for sql in &ddl {
            tracing::info!(sql = %sql, "JDBC sink: schema change");
            match &self.pool {
                Pool::Postgres(_) => {
                    let conn = self.pool.pg().await?;
                    conn.batch_execute(sql).await.map_err(|e| pg_error("schema change", e))?;
                }
                Pool::MySql(_) => {
                    let mut conn = self.pool.mysql().await?;
                    conn.query_drop(sql).await.map_err(|e| mysql_error("schema change", e))?;
                }
            }
        }
        let columns = if ddl.is_empty() { existing } else { self.read_columns(&row.table).await? };
        Ok(TableInfo { columns })
    }

    /// What follows a column's type in `CREATE TABLE` and `ALTER TABLE ... ADD`: the field's default value as
    /// `DEFAULT <literal>`, and the nullability. Confluent's sink (GenericDatabaseDialect.writeColumnSpec) writes
    /// either the default or `NULL`/`NOT NULL` (a key is never optional); Debezium's writes the default, then the
    /// nullability. Added columns are nullable unless the Debezium sink has a default, as the originals do.
    fn column_tail(&self, sql: &mut String, c: &Col<'_>, key: bool) -> Result<(), String> {
        let default = c.schema.default.as_deref().filter(|d| **d != Value::Null);
        if let Some(d) = default {
            sql.push_str(" DEFAULT ");
            types::push_default_literal(sql, self.dialect(), &self.settings.time_zones(), c.schema, d)?;
            if self.settings.flavor == Flavor::Confluent {
                return Ok(());
            }
        }
        sql.push_str(if key || !c.schema.optional { " NOT NULL" } else { " NULL" });
        Ok(())
    }

    /// The table's columns (normalized) with their PostgreSQL types, empty when it does not exist.
    async fn read_columns(&self, table: &str) -> Result<HashMap<String, PgType>, ConnectError> {
        let (schema, name) = match table.rsplit_once('.') {
            Some((s, t)) => (Some(s.to_string()), t.to_string()),
            None => (None, table.to_string()),
        };
        let fold =
            |s: String| if self.dialect() == Dialect::Postgres && !self.settings.quote { s.to_lowercase() } else { s };
        let (schema, name) = (schema.map(fold), fold(name));
        let columns: Vec<(String, PgType)> = match &self.pool {
            Pool::Postgres(_) => {
                let conn = self.pool.pg().await?;
                let rows = conn
                    .query(
                        "SELECT column_name::text, udt_name::text FROM information_schema.columns \
                         WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2",
                        &[&schema, &name],
                    )
                    .await
                    .map_err(|e| pg_error("reading table metadata", e))?;
                rows.iter().map(|r| (r.get::<_, String>(0), PgType::of_udt(r.get::<_, &str>(1)))).collect()
            }
            Pool::MySql(_) => {
                let mut conn = self.pool.mysql().await?;
                let names: Vec<String> = conn
                    .exec(
                        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                         WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
                        (schema, name),
                    )
                    .await
                    .map_err(|e| mysql_error("reading table metadata", e))?;
                names.into_iter().map(|n| (n, PgType::Other)).collect()
            }
        };
        Ok(columns.into_iter().map(|(n, t)| (self.norm(&n), t)).collect())
    }

    /// The column types of a run if the binary COPY can write every cell of it exactly (see [`binary_fits`]).
    fn binary_types(&self, run: &Run<'_>, ncols: usize) -> Option<Vec<PgType>> {
        let first = &run.rows[0];
        let info = self.tables.get(&*first.table)?;
        let types: Vec<PgType> = first.cols[..ncols]
            .iter()
            .map(|c| info.columns.get(&self.norm(c.name)).copied().unwrap_or(PgType::Other))
            .collect();
        if types.contains(&PgType::Other) {
            return None;
        }
        let fits = run.rows.iter().all(|row| row.cols[..ncols].iter().zip(&types).all(|(c, t)| binary_fits(*t, c)));
        fits.then_some(types)
    }

    async fn create_offsets_table(&self) -> Result<(), ConnectError> {
        let Some(t) = &self.settings.offsets_table else { return Ok(()) };
        match &self.pool {
            Pool::Postgres(_) => {
                let conn = self.pool.pg().await?;
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {t} (connector TEXT NOT NULL, topic TEXT NOT NULL, \
                     kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (connector, topic, kafka_partition))"
                );
                conn.batch_execute(&sql).await.map_err(|e| pg_error("creating the offsets table", e))
            }
            Pool::MySql(_) => {
                let mut conn = self.pool.mysql().await?;
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {t} (connector VARCHAR(255) NOT NULL, topic VARCHAR(255) NOT NULL, \
                     kafka_partition INT NOT NULL, next_offset BIGINT NOT NULL, PRIMARY KEY (connector, topic, kafka_partition))"
                );
                conn.query_drop(sql).await.map_err(|e| mysql_error("creating the offsets table", e))
            }
        }
    }

    fn col_list(&self, out: &mut String, cols: &[Col<'_>], prefix: Option<&str>) {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if let Some(p) = prefix {
                out.push_str(p);
                out.push('.');
            }
            self.ident(out, c.name);
        }
    }

    /// Writes the rows in a new transaction; returns it open, with what it sent.
    async fn put_pg(
        &self,
        records: &[SinkRecord],
        rows: Vec<(usize, Row<'_>)>,
        partitions: &BTreeMap<(&str, i32), (i64, i64)>,
    ) -> Result<(TxConn, Replay), ConnectError> {
        let mut conn = TxConn::begin(&self.pool).await?;
        let mut replay = Replay::default();
        match self.write_pg(conn.client(), records, rows, partitions, &mut replay).await {
            Ok(()) => Ok((conn, replay)),
            Err(e) => {
                conn.rollback().await;
                Err(e)
            }
        }
    }

    /// Commits a put's transaction after the previous one's COMMIT succeeded (puts stay in order; one whose COMMIT
    /// failed is redone first, and this batch is then put again by the runtime, as after any retriable failure).
    /// The COMMIT itself (and its WAL flush) goes on while the next batch is prepared and copied on another
    /// connection; [`Writer::settle`], from the runtime's flush, waits for it before any offset goes to Kafka.
    async fn commit_pg(&mut self, mut conn: TxConn, replay: Replay) -> Result<(), ConnectError> {
        if let Err(e) = self.wait_pending().await {
            conn.rollback().await;
            self.redo_failed().await?;
            return Err(ConnectError::retriable("the previous batch's COMMIT failed (it was written again)", e));
        }
        let handle = tokio::spawn(conn.commit());
        self.expect_stored(&replay);
        self.pending = Some(PendingCommit { handle, replay });
        Ok(())
    }

    /// Writes the rows in the open transaction of `client`, recording what was sent in `replay`.
    async fn write_pg(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        records: &[SinkRecord],
        rows: Vec<(usize, Row<'_>)>,
        partitions: &BTreeMap<(&str, i32), (i64, i64)>,
        replay: &mut Replay,
    ) -> Result<(), ConnectError> {
        // Exactly-once: what this connector already wrote. When this writer knows it (its own last transaction
        // stored it, and that transaction's COMMIT may still be in flight), it is checked under lock at the end
        // rather than read and locked here, which would wait for that COMMIT; otherwise read and locked now.
        let mut stored: HashMap<(String, i32), i64> = HashMap::new();
        let optimistic = self.settings.offsets_table.is_some()
            && partitions.keys().all(|(t, p)| self.stored.contains_key(&(t.to_string(), *p)));
        if let Some(t) = &self.settings.offsets_table {
            let sql = format!(
                "SELECT next_offset FROM {t} WHERE connector = $1 AND topic = $2 AND kafka_partition = $3 FOR UPDATE"
            );
            for (topic, partition) in partitions.keys() {
                let tp = (topic.to_string(), *partition);
                let next = match self.stored.get(&tp) {
                    Some(known) if optimistic => *known,
                    _ => {
                        let select =
                            client.prepare_cached(&sql).await.map_err(|e| pg_error("reading stored offsets", e))?;
                        client
                            .query_opt(&select, &[&self.connector, topic, partition])
                            .await
                            .map_err(|e| pg_error("reading stored offsets", e))?
                            .map(|r| r.get::<_, i64>(0))
                    }
                };
                if let Some(next) = next {
                    stored.insert(tp.clone(), next);
                }
                replay.read.push((tp, next));
            }
        }
        let skip = |i: usize| below_stored(&stored, &records[i]);
        let runs = self.runs(rows, &skip)?;
        let mut scratch = String::new();
        let zones = self.settings.time_zones();
        let mut buf: Vec<u8> = Vec::with_capacity(COPY_CHUNK + COPY_CHUNK / 4);
        for (n, run) in runs.iter().enumerate() {
            let first = &run.rows[0];
            let table = self.table_sql(&first.table);
            let cols = if first.delete { &first.cols[..first.nkey] } else { first.cols };
            let direct = !first.delete && self.settings.insert_mode == InsertMode::Insert;
            let stage = format!("sluice_stage_{n}");
            let target = if direct {
                table.clone()
            } else {
                let mut sql = format!("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT ");
                self.col_list(&mut sql, cols, None);
                sql.push_str(&format!(" FROM {table} WITH NO DATA"));
                client.batch_execute(&sql).await.map_err(|e| pg_error("creating the staging table", e))?;
                replay.steps.push(Step::Sql(sql));
                stage.clone()
            };
            // The binary COPY where every cell's binary form is exact (PostgreSQL then parses no text: no number
            // or escape parsing); otherwise the text COPY.
            let binary = self.binary_types(run, cols.len());
            let mut copy = format!("COPY {target} (");
            self.col_list(&mut copy, cols, None);
            copy.push_str(if binary.is_some() { ") FROM STDIN (FORMAT binary)" } else { ") FROM STDIN" });
            // Into the table itself, the same statement every put: prepared once per connection. (A staging
            // table is new in every transaction: its COPY is not kept.)
            let sink = if direct {
                let statement = client.prepare_cached(&copy).await.map_err(|e| pg_error("COPY", e))?;
                client.copy_in(&statement).await
            } else {
                client.copy_in(&copy).await
            };
            let sink = sink.map_err(|e| pg_error("COPY", e))?;
            futures::pin_mut!(sink);
            let mut chunks = Vec::new();
            buf.clear();
            if binary.is_some() {
                buf.extend_from_slice(BINARY_COPY_HEADER);
            }
            for row in &run.rows {
                let cols = if row.delete { &row.cols[..row.nkey] } else { row.cols };
                if let Some(types) = &binary {
                    buf.extend_from_slice(&(cols.len() as i16).to_be_bytes());
                    for (c, t) in cols.iter().zip(types) {
                        push_binary(&mut buf, *t, c);
                    }
                } else {
                    for (j, c) in cols.iter().enumerate() {
                        if j > 0 {
                            buf.push(b'\t');
                        }
                        match render_cell(&mut scratch, Dialect::Postgres, &zones, c)? {
                            Rendered::Null => buf.extend_from_slice(b"\\N"),
                            _ => types::push_copy_escaped(&mut buf, &scratch),
                        }
                    }
                    buf.push(b'\n');
                }
                // Small chunks: the server parses one while the next is rendered.
                if buf.len() >= COPY_CHUNK {
                    let chunk = Bytes::from(std::mem::take(&mut buf));
                    chunks.push(chunk.clone());
                    sink.send(chunk).await.map_err(|e| pg_error("COPY", e))?;
                    buf.reserve(COPY_CHUNK + COPY_CHUNK / 4);
                }
            }
            if binary.is_some() {
                buf.extend_from_slice(&(-1i16).to_be_bytes());
            }
            if !buf.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut buf));
                chunks.push(chunk.clone());
                sink.send(chunk).await.map_err(|e| pg_error("COPY", e))?;
            }
            sink.finish().await.map_err(|e| pg_error(&format!("COPY into {target}"), e))?;
            replay.steps.push(Step::Copy(copy, chunks));
            if direct {
                continue;
            }
            let keys = &first.cols[..first.nkey];
            let rest = &first.cols[first.nkey..];
            let sql = if first.delete {
                let mut s = format!("DELETE FROM {table} AS d USING {stage} AS s WHERE ");
                self.key_match(&mut s, keys);
                s
            } else if self.settings.insert_mode == InsertMode::Update {
                if rest.is_empty() {
                    continue;
                }
                let mut s = format!("UPDATE {table} AS d SET ");
                for (i, c) in rest.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    self.ident(&mut s, c.name);
                    s.push_str(" = s.");
                    self.ident(&mut s, c.name);
                }
                s.push_str(&format!(" FROM {stage} AS s WHERE "));
                self.key_match(&mut s, keys);
                s
            } else {
                let mut s = format!("INSERT INTO {table} (");
                self.col_list(&mut s, cols, None);
                s.push_str(") SELECT ");
                self.col_list(&mut s, cols, None);
                s.push_str(&format!(" FROM {stage} ON CONFLICT ("));
                self.col_list(&mut s, keys, None);
                if rest.is_empty() {
                    s.push_str(") DO NOTHING");
                } else {
                    s.push_str(") DO UPDATE SET ");
                    for (i, c) in rest.iter().enumerate() {
                        if i > 0 {
                            s.push_str(", ");
                        }
                        self.ident(&mut s, c.name);
                        s.push_str(" = EXCLUDED.");
                        self.ident(&mut s, c.name);
                    }
                }
                s
            };
            client.batch_execute(&sql).await.map_err(|e| pg_error(&format!("writing to {table}"), e))?;
            replay.steps.push(Step::Sql(sql));
        }
        if let Some(t) = &self.settings.offsets_table {
            replay.ends = partitions.iter().map(|((t, p), (_, last))| ((t.to_string(), *p), last + 1)).collect();
            let check = async {
                if !optimistic {
                    return Ok(());
                }
                // Locked from here to COMMIT: unchanged since the rows were chosen, it is as if read and locked
                // at the start.
                let sql = format!(
                    "SELECT next_offset FROM {t} WHERE connector = $1 AND topic = $2 AND kafka_partition = $3 FOR UPDATE"
                );
                let select = client.prepare_cached(&sql).await.map_err(|e| pg_error("reading stored offsets", e))?;
                for ((topic, partition), expected) in &replay.read {
                    let now = client
                        .query_opt(&select, &[&self.connector, topic, partition])
                        .await
                        .map_err(|e| pg_error("reading stored offsets", e))?
                        .map(|r| r.get::<_, i64>(0));
                    if now != *expected {
                        return Err(ConnectError::retriable(
                            "checking stored offsets",
                            std::io::Error::other(format!(
                                "{t} holds {now:?} for {topic}-{partition}, {expected:?} was expected (the previous \
                                 batch's COMMIT failed, or another writer)"
                            )),
                        ));
                    }
                }
                Ok(())
            };
            let store = self.store_offsets(client, &replay.ends);
            if replay.read.len() == 1 {
                // One partition (the usual case): the check and the new offset go out together, one round trip
                // instead of two. The check is polled first, so its SELECT is sent (and run) before the update;
                // when it fails, the transaction is rolled back with the update.
                let (checked, stored) = futures::join!(check, store);
                checked?;
                stored?;
            } else {
                check.await?;
                store.await?;
            }
        }
        Ok(())
    }

    /// What the offsets table holds once a transaction that read `read` and stored `ends` commits.
    fn expect_stored(&mut self, replay: &Replay) {
        for ((tp, read), (_, end)) in replay.read.iter().zip(&replay.ends) {
            self.stored.insert(tp.clone(), Some(read.map_or(*end, |r| r.max(*end))));
        }
    }

    /// Exactly-once: the next offsets per partition, in the transaction of `client`.
    async fn store_offsets(
        &self,
        client: &deadpool_postgres::ClientWrapper,
        ends: &[((String, i32), i64)],
    ) -> Result<(), ConnectError> {
        let Some(t) = &self.settings.offsets_table else { return Ok(()) };
        let sql = format!(
            "INSERT INTO {t} (connector, topic, kafka_partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (connector, topic, kafka_partition) DO UPDATE SET next_offset = GREATEST({t}.next_offset, EXCLUDED.next_offset)"
        );
        let insert = client.prepare_cached(&sql).await.map_err(|e| pg_error("storing offsets", e))?;
        for ((topic, partition), next) in ends {
            client
                .execute(&insert, &[&self.connector, topic, partition, next])
                .await
                .map_err(|e| pg_error("storing offsets", e))?;
        }
        Ok(())
    }

    /// Waits for the COMMIT of the previous put, if one is in flight, and redoes a transaction whose COMMIT
    /// failed (its records are the runtime's no more): afterwards everything put so far is durable. The error is
    /// never [`ConnectError::Data`].
    pub async fn settle(&mut self) -> Result<(), ConnectError> {
        // A failure is kept in `failed` (and logged), then redone.
        let _ = self.wait_pending().await;
        self.redo_failed().await
    }

    /// Waits for the in-flight COMMIT; when it failed, its transaction is kept in `failed`.
    async fn wait_pending(&mut self) -> Result<(), ConnectError> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let outcome = match pending.handle.await {
            Ok(outcome) => outcome,
            Err(e) => Err(ConnectError::retriable("the COMMIT of the previous batch did not finish", e)),
        };
        if let Err(e) = &outcome {
            tracing::warn!(error = %e.trace(), "the COMMIT of the previous batch failed; redoing that transaction");
            self.failed = Some(pending.replay);
        }
        outcome
    }

    /// Redoes the transaction whose COMMIT failed, if any.
    async fn redo_failed(&mut self) -> Result<(), ConnectError> {
        let Some(replay) = &self.failed else { return Ok(()) };
        let redone = self.redo(replay).await;
        if redone.is_err() {
            self.stored.clear();
        }
        redone.map_err(|e| match e {
            ConnectError::Data(message) => ConnectError::Other(format!(
                "a batch whose COMMIT failed could not be written again (its records were acknowledged): {message}"
            )),
            other => other,
        })?;
        self.failed = None;
        tracing::info!("the batch whose COMMIT failed was written again");
        Ok(())
    }

    /// Redoes a transaction whose COMMIT failed, waiting for its COMMIT. Exactly-once: only when the offsets table
    /// still holds what the transaction read (a COMMIT whose answer was lost may have succeeded: then the stored
    /// offsets are its own and nothing is redone).
    async fn redo(&self, replay: &Replay) -> Result<(), ConnectError> {
        let mut conn = TxConn::begin(&self.pool).await?;
        let result: Result<bool, ConnectError> = async {
            let client = conn.client();
            if let Some(t) = &self.settings.offsets_table {
                let sql = format!(
                    "SELECT next_offset FROM {t} WHERE connector = $1 AND topic = $2 AND kafka_partition = $3 FOR UPDATE"
                );
                let (mut same, mut done) = (true, true);
                for ((topic, partition), read) in &replay.read {
                    let r = client
                        .query_opt(&sql, &[&self.connector, topic, partition])
                        .await
                        .map_err(|e| pg_error("reading stored offsets", e))?;
                    let now = r.map(|r| r.get::<_, i64>(0));
                    same &= now == *read;
                    let end = replay.ends.iter().find(|(tp, _)| tp.0 == *topic && tp.1 == *partition).map(|e| e.1);
                    done &= matches!((now, end), (Some(now), Some(end)) if now >= end);
                }
                if done {
                    return Ok(false);
                }
                if !same {
                    return Err(ConnectError::Other(format!(
                        "the offsets in {t} changed while a batch's COMMIT failed: another writer for connector {}?",
                        self.connector
                    )));
                }
            }
            for step in &replay.steps {
                match step {
                    Step::Sql(sql) => client.batch_execute(sql).await.map_err(|e| pg_error("redoing a batch", e))?,
                    Step::Copy(copy, chunks) => {
                        let sink = client.copy_in(copy).await.map_err(|e| pg_error("COPY", e))?;
                        futures::pin_mut!(sink);
                        for chunk in chunks {
                            sink.send(chunk.clone()).await.map_err(|e| pg_error("COPY", e))?;
                        }
                        sink.finish().await.map_err(|e| pg_error("COPY", e))?;
                    }
                }
            }
            self.store_offsets(client, &replay.ends).await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(true) => conn.commit().await,
            Ok(false) => {
                conn.rollback().await;
                Ok(())
            }
            Err(e) => {
                conn.rollback().await;
                Err(e)
            }
        }
    }

    fn key_match(&self, s: &mut String, keys: &[Col<'_>]) {
        for (i, c) in keys.iter().enumerate() {
            if i > 0 {
                s.push_str(" AND ");
            }
            s.push_str("d.");
            self.ident(s, c.name);
            s.push_str(" = s.");
            self.ident(s, c.name);
        }
    }

    fn mysql_value(scratch: &mut String, zones: &TimeZones, c: &Col<'_>) -> Result<mysql_async::Value, ConnectError> {
        Ok(match c.cell {
            Cell::V(Value::Int8(v)) => mysql_async::Value::Int(*v as i64),
            Cell::V(Value::Int16(v)) => mysql_async::Value::Int(*v as i64),
            Cell::V(Value::Int32(v)) if c.schema.name.is_none() => mysql_async::Value::Int(*v as i64),
            Cell::V(Value::Int64(v)) if c.schema.name.is_none() => mysql_async::Value::Int(*v),
            Cell::I64(v) => mysql_async::Value::Int(v),
            Cell::V(Value::Float64(v)) if v.is_finite() => mysql_async::Value::Double(*v),
            Cell::V(Value::Float32(v)) if v.is_finite() => mysql_async::Value::Float(*v),
            _ => match render_cell(scratch, Dialect::MySql, zones, c)? {
                Rendered::Null => mysql_async::Value::NULL,
                Rendered::Text => mysql_async::Value::Bytes(scratch.as_bytes().to_vec()),
                Rendered::Bytes => match c.cell {
                    Cell::V(Value::Bytes(b)) => mysql_async::Value::Bytes(b.to_vec()),
                    _ => mysql_async::Value::NULL,
                },
            },
        })
    }

    async fn put_mysql(
        &self,
        records: &[SinkRecord],
        rows: Vec<(usize, Row<'_>)>,
        partitions: &BTreeMap<(&str, i32), (i64, i64)>,
    ) -> Result<(), ConnectError> {
        let mut conn = self.pool.mysql().await?;
        let mut tx =
            conn.start_transaction(mysql_async::TxOpts::default()).await.map_err(|e| mysql_error("BEGIN", e))?;
        let result: Result<(), ConnectError> = async {
            let mut stored: HashMap<(String, i32), i64> = HashMap::new();
            if let Some(t) = &self.settings.offsets_table {
                let sql = format!(
                    "SELECT next_offset FROM {t} WHERE connector = ? AND topic = ? AND kafka_partition = ? FOR UPDATE"
                );
                for (topic, partition) in partitions.keys() {
                    let r: Option<i64> = tx
                        .exec_first(&sql, (self.connector.as_str(), *topic, *partition))
                        .await
                        .map_err(|e| mysql_error("reading stored offsets", e))?;
                    if let Some(next) = r {
                        stored.insert((topic.to_string(), *partition), next);
                    }
                }
            }
            let skip = |i: usize| below_stored(&stored, &records[i]);
            let runs = self.runs(rows, &skip)?;
            let mut scratch = String::new();
            let zones = self.settings.time_zones();
            for run in &runs {
                let first = &run.rows[0];
                let table = self.table_sql(&first.table);
                let keys = &first.cols[..first.nkey];
                let rest = &first.cols[first.nkey..];
                if first.delete || self.settings.insert_mode == InsertMode::Update {
                    if !first.delete && rest.is_empty() {
                        continue;
                    }
                    let mut sql = if first.delete {
                        format!("DELETE FROM {table} WHERE ")
                    } else {
                        let mut s = format!("UPDATE {table} SET ");
                        for (i, c) in rest.iter().enumerate() {
                            if i > 0 {
                                s.push_str(", ");
                            }
                            self.ident(&mut s, c.name);
                            s.push_str(" = ?");
                        }
                        s.push_str(" WHERE ");
                        s
                    };
                    for (i, c) in keys.iter().enumerate() {
                        if i > 0 {
                            sql.push_str(" AND ");
                        }
                        self.ident(&mut sql, c.name);
                        sql.push_str(" = ?");
                    }
                    let mut params = Vec::with_capacity(run.rows.len());
                    for row in &run.rows {
                        let mut p = Vec::with_capacity(row.cols.len());
                        if !row.delete {
                            for c in &row.cols[row.nkey..] {
                                p.push(Self::mysql_value(&mut scratch, &zones, c)?);
                            }
                        }
                        for c in &row.cols[..row.nkey] {
                            p.push(Self::mysql_value(&mut scratch, &zones, c)?);
                        }
                        params.push(mysql_async::Params::Positional(p));
                    }
                    tx.exec_batch(&sql, params).await.map_err(|e| mysql_error(&format!("writing to {table}"), e))?;
                    continue;
                }
                let ncols = first.cols.len().max(1);
                let per_stmt = (MYSQL_MAX_PARAMS / ncols).max(1);
                for chunk in run.rows.chunks(per_stmt) {
                    let mut sql = format!("INSERT INTO {table} (");
                    self.col_list(&mut sql, first.cols, None);
                    sql.push_str(") VALUES ");
                    let mut p = Vec::with_capacity(chunk.len() * ncols);
                    for (i, row) in chunk.iter().enumerate() {
                        if i > 0 {
                            sql.push(',');
                        }
                        sql.push('(');
                        for (j, c) in row.cols.iter().enumerate() {
                            if j > 0 {
                                sql.push(',');
                            }
                            sql.push('?');
                            p.push(Self::mysql_value(&mut scratch, &zones, c)?);
                        }
                        sql.push(')');
                    }
                    if self.settings.insert_mode == InsertMode::Upsert {
                        sql.push_str(" ON DUPLICATE KEY UPDATE ");
                        let upd = if rest.is_empty() { keys } else { rest };
                        for (i, c) in upd.iter().enumerate() {
                            if i > 0 {
                                sql.push(',');
                            }
                            self.ident(&mut sql, c.name);
                            sql.push_str("=VALUES(");
                            self.ident(&mut sql, c.name);
                            sql.push(')');
                        }
                    }
                    tx.exec_drop(&sql, mysql_async::Params::Positional(p))
                        .await
                        .map_err(|e| mysql_error(&format!("writing to {table}"), e))?;
                }
            }
            if let Some(t) = &self.settings.offsets_table {
                let sql = format!(
                    "INSERT INTO {t} (connector, topic, kafka_partition, next_offset) VALUES (?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE next_offset = GREATEST(next_offset, VALUES(next_offset))"
                );
                for ((topic, partition), (_, last)) in partitions {
                    tx.exec_drop(&sql, (self.connector.as_str(), *topic, *partition, last + 1))
                        .await
                        .map_err(|e| mysql_error("storing offsets", e))?;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tx.commit().await.map_err(|e| mysql_error("COMMIT", e)),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// The pipelined COMMIT against the real PostgreSQL of `deploy/local/postgres` (`SLUICE_TEST_PG`, exported by
/// deploy/test): a COMMIT that fails after its put returned is redone before anything else, exactly once.
#[cfg(test)]
mod pipelined_commit_tests {
    use std::sync::Arc;

    use sluice_connect_api::config::ConfigMap;
    use sluice_connect_api::record::Field;

    use super::*;
    use crate::connection::ConnectionParams;

    fn pg() -> Option<(String, String, String)> {
        let url = std::env::var("SLUICE_TEST_PG").ok()?;
        let (cred, hostdb) = url.split_once("://")?.1.rsplit_once('@')?;
        let (user, password) = cred.split_once(':')?;
        Some((format!("jdbc:postgresql://{hostdb}"), user.into(), password.into()))
    }

    fn writer(name: &str, extra: &[(&str, &str)]) -> Option<Writer> {
        let (jdbc, user, password) = pg()?;
        let mut config = ConfigMap::new();
        for (k, v) in
            [("connection.url", jdbc.as_str()), ("connection.user", &user), ("connection.password", &password)]
                .into_iter()
                .chain([("auto.create", "true")])
                .chain(extra.iter().copied())
        {
            config.insert(k.into(), v.into());
        }
        let params = ConnectionParams::from_config(&config).unwrap();
        Some(Writer::new(
            SinkSettings::from_config(&config, Flavor::Confluent).unwrap(),
            Pool::connect(&params).unwrap(),
            name.into(),
        ))
    }

    fn records(topic: &str, offsets: std::ops::Range<i64>) -> Vec<SinkRecord> {
        let mut schema = Schema::primitive(SchemaType::Struct, false);
        schema.fields = vec![Field { name: "id".into(), index: 0, schema: Arc::new(INT64_SCHEMA.clone()) }];
        let schema = Arc::new(schema);
        offsets
            .map(|offset| SinkRecord {
                topic: topic.into(),
                partition: 0,
                offset,
                key_schema: None,
                key: Value::Null,
                value_schema: Some(schema.clone()),
                value: Value::Struct(vec![Value::Int64(offset)]),
                timestamp: None,
                headers: Vec::new(),
            })
            .collect()
    }

    /// Writes `recs` as a put does, then ends the transaction (COMMIT when `committed`, else ROLLBACK) and leaves
    /// it pending as a COMMIT whose answer was an error (a connection lost during COMMIT: it may or may not have
    /// happened).
    async fn put_with_failed_commit(w: &mut Writer, recs: &[SinkRecord], committed: bool) {
        w.settle().await.unwrap();
        let mut partitions: BTreeMap<(&str, i32), (i64, i64)> = BTreeMap::new();
        for r in recs {
            let e = partitions.entry((&*r.topic, r.partition)).or_insert((r.offset, r.offset));
            e.1 = e.1.max(r.offset);
        }
        let mut cells = Cells::new();
        let at = recs
            .iter()
            .enumerate()
            .map(|(i, r)| (i, extract(&w.settings, &mut TableNames::default(), r, &mut cells).unwrap().unwrap()))
            .collect();
        let (mut conn, replay) = w.put_pg(recs, rows_in(&cells, at), &partitions).await.unwrap();
        if committed {
            conn.commit().await.unwrap();
        } else {
            conn.rollback().await;
        }
        w.expect_stored(&replay);
        let handle =
            tokio::spawn(async { Err(ConnectError::retriable("COMMIT", std::io::Error::other("connection lost"))) });
        w.pending = Some(PendingCommit { handle, replay });
    }

    /// Puts until it succeeds, as the runtime does after retriable failures; returns the failed attempts.
    async fn put_until_ok(w: &mut Writer, recs: &[SinkRecord]) -> usize {
        for attempt in 0..5 {
            match w.put(recs).await {
                Ok(()) => return attempt,
                Err(e) => assert!(e.is_retriable(), "{e:?}"),
            }
        }
        panic!("put kept failing");
    }

    async fn count(w: &Writer, table: &str) -> (i64, i64, i64) {
        let client = w.pool.pg().await.unwrap();
        let r = client
            .query_one(&format!("SELECT COUNT(*), COUNT(DISTINCT id), COALESCE(MAX(id), -1) FROM \"{table}\""), &[])
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    async fn stored_offset(w: &Writer, topic: &str) -> Option<i64> {
        let client = w.pool.pg().await.unwrap();
        let t = w.settings.offsets_table.as_deref().unwrap();
        client
            .query_opt(
                &format!("SELECT next_offset FROM {t} WHERE connector = $1 AND topic = $2"),
                &[&w.connector, &topic],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    fn unique(prefix: &str) -> String {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
    }

    #[tokio::test]
    async fn exactly_once_redoes_a_failed_commit_once() {
        let topic = unique("jdbc_pipe_eo");
        let Some(mut w) = writer(&topic, &[]) else {
            eprintln!("SLUICE_TEST_PG unset: skipped");
            return;
        };
        w.put(&records(&topic, 0..10)).await.unwrap();
        // Rolled back: the next put finds the offsets it expected missing, and the batch is redone first.
        put_with_failed_commit(&mut w, &records(&topic, 10..20), false).await;
        assert!(put_until_ok(&mut w, &records(&topic, 20..30)).await > 0);
        w.settle().await.unwrap();
        assert_eq!(count(&w, &topic).await, (30, 30, 29));
        assert_eq!(stored_offset(&w, &topic).await, Some(30));
        // Committed although the answer was an error: not written twice.
        put_with_failed_commit(&mut w, &records(&topic, 30..40), true).await;
        assert!(put_until_ok(&mut w, &records(&topic, 40..50)).await > 0);
        w.settle().await.unwrap();
        assert_eq!(count(&w, &topic).await, (50, 50, 49));
        // A flush after a failed COMMIT redoes it too.
        put_with_failed_commit(&mut w, &records(&topic, 50..60), false).await;
        w.settle().await.unwrap();
        assert_eq!(count(&w, &topic).await, (60, 60, 59));
        assert_eq!(stored_offset(&w, &topic).await, Some(60));
        // Redelivered records (a restart from older Kafka offsets) are skipped, also by a fresh writer.
        w.put(&records(&topic, 55..70)).await.unwrap();
        w.settle().await.unwrap();
        let mut fresh = writer(&topic, &[]).unwrap();
        fresh.put(&records(&topic, 65..75)).await.unwrap();
        fresh.settle().await.unwrap();
        assert_eq!(count(&w, &topic).await, (75, 75, 74));
        w.pool.close().await;
        fresh.pool.close().await;
    }

    #[tokio::test]
    async fn at_least_once_redoes_a_failed_commit() {
        let topic = unique("jdbc_pipe_alo");
        let Some(mut w) = writer(&topic, &[("sluice.offsets.table", "")]) else {
            eprintln!("SLUICE_TEST_PG unset: skipped");
            return;
        };
        w.put(&records(&topic, 0..10)).await.unwrap();
        put_with_failed_commit(&mut w, &records(&topic, 10..20), false).await;
        assert_eq!(put_until_ok(&mut w, &records(&topic, 20..30)).await, 1, "redone, then this batch again");
        w.settle().await.unwrap();
        assert_eq!(count(&w, &topic).await, (30, 30, 29));
        w.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col<'a>(schema: &'a Schema, cell: Cell<'a>) -> Col<'a> {
        Col { name: "c", schema, cell }
    }

    #[test]
    fn binary_copy_only_where_exact() {
        let int64 = Schema::primitive(SchemaType::Int64, true);
        let float32 = Schema::primitive(SchemaType::Float32, true);
        let mut date = Schema::primitive(SchemaType::Int32, true);
        date.name = Some("org.apache.kafka.connect.data.Date".into());
        let big = Value::Int64(1 << 40);
        let f = Value::Float32(1.5);
        assert!(binary_fits(PgType::Int8, &col(&int64, Cell::V(&big))));
        // narrowing needs the server's range check: text
        assert!(!binary_fits(PgType::Int4, &col(&int64, Cell::V(&big))));
        assert!(binary_fits(PgType::Float8, &col(&float32, Cell::V(&f))));
        assert!(!binary_fits(PgType::Text, &col(&float32, Cell::V(&f))));
        // logical types are rendered as text
        let d = Value::Int32(19_723);
        assert!(!binary_fits(PgType::Int4, &col(&date, Cell::V(&d))));
        assert!(binary_fits(PgType::Int4, &col(&int64, Cell::I64(7))));
        assert!(!binary_fits(PgType::Int2, &col(&int64, Cell::I64(1 << 20))));
        assert!(binary_fits(PgType::Bool, &col(&int64, Cell::V(&Value::Null))));
    }

    #[test]
    fn binary_cells_are_length_and_network_order() {
        let mut buf = Vec::new();
        let int8 = Schema::primitive(SchemaType::Int8, true);
        push_binary(&mut buf, PgType::Int4, &col(&int8, Cell::V(&Value::Int8(-2))));
        assert_eq!(buf, [0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe]);
        buf.clear();
        let mut defaulted = Schema::primitive(SchemaType::Int8, true);
        defaulted.default = Some(Box::new(Value::Int8(3)));
        push_binary(&mut buf, PgType::Int2, &col(&defaulted, Cell::V(&Value::Null)));
        assert_eq!(buf, [0, 0, 0, 2, 0, 3]);
        buf.clear();
        push_binary(&mut buf, PgType::Int2, &col(&int8, Cell::V(&Value::Null)));
        assert_eq!(buf, [0xff, 0xff, 0xff, 0xff]);
        buf.clear();
        push_binary(&mut buf, PgType::Text, &col(&int8, Cell::Str("ab")));
        assert_eq!(buf, [0, 0, 0, 2, b'a', b'b']);
        assert_eq!(BINARY_COPY_HEADER.len(), 19);
    }
}
