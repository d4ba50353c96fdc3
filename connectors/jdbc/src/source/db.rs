//! The database side of the source: listing tables, finding the auto-increment column, the database's clock, and
//! running a query as a server-side cursor in a background task that hands rows over in chunks of
//! `batch.max.rows` through a bounded channel (PostgreSQL: a portal inside a read transaction, fetched
//! `batch.max.rows` at a time; MySQL/MariaDB: the binary-protocol result streamed row by row off the socket). Nothing
//! is materialised beyond the channel's two chunks.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Field, Schema, SchemaType, Value};
use tokio::sync::mpsc;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use super::values::{
    DATE, NumericKind, NumericMapping, TIME, TIMESTAMP, Ts, civil_from_days, days_from_civil, logical, numeric_kind,
    numeric_schema, numeric_value,
};
use crate::connection::{Pool, mysql_error, pg_error};
use crate::zone::DbZone;

/// A table the source reads: its parts, as Kafka Connect JDBC's `TableId` (PostgreSQL: schema + table, MySQL:
/// catalog (database) + table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub table: String,
}

impl TableId {
    /// The unquoted fully qualified name (`TableId.toUnquotedString()`): non-null parts joined by `.`.
    pub fn fqn(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(c) = &self.catalog {
            parts.push(c);
        }
        if let Some(s) = &self.schema {
            parts.push(s);
        }
        parts.push(&self.table);
        parts.join(".")
    }
}

/// The bind parameters of a query (Confluent's `TimestampIncrementingCriteria.setQueryParameters*`).
#[derive(Debug, Clone, Copy)]
pub enum Params {
    None,
    Incrementing(i64),
    Timestamp { begin: Ts, end: Ts },
    TimestampIncrementing { end: Ts, ts: Ts, inc: i64 },
}

/// What the background reader needs.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub sql: String,
    pub params: Params,
    /// Schema name (the table name in table mode, none for `query`).
    pub schema_name: Option<String>,
    pub timestamp_columns: Vec<String>,
    pub incrementing_column: Option<String>,
    pub numeric_mapping: NumericMapping,
    pub batch_max_rows: usize,
    /// `db.timezone`: timestamps and times without a zone are wall-clock times in it (see [`crate::zone`]).
    pub zone: DbZone,
}

/// One row: its struct values, and the offset columns' values.
#[derive(Debug, Clone)]
pub struct RowOut {
    pub values: Vec<Value>,
    pub ts: Option<Ts>,
    pub inc: Option<i64>,
}

/// What the reader sends.
pub enum Msg {
    /// The value schema, and whether each offset column (timestamp columns, then incrementing) is optional.
    Schema {
        schema: Arc<Schema>,
        offset_columns_optional: Vec<(String, bool)>,
    },
    Rows(Vec<RowOut>),
    Done,
    Err(ConnectError),
}

/// Starts reading `spec` in the background; the receiver yields the schema, chunks of rows, then `Done` (or `Err`).
/// Dropping the receiver stops the reader.
pub fn start_query(pool: &Pool, spec: QuerySpec) -> mpsc::Receiver<Msg> {
    let (tx, rx) = mpsc::channel(2);
    let pool = pool.clone();
    tokio::spawn(async move {
        let result = match &pool {
            Pool::Postgres(_) => pg_query(&pool, &spec, &tx).await,
            Pool::MySql(_) => mysql_query(&pool, &spec, &tx).await,
        };
        let _ = match result {
            Ok(()) => tx.send(Msg::Done).await,
            Err(e) => tx.send(Msg::Err(e)).await,
        };
    });
    rx
}

/// The index of the first column named `name` (exactly, else ignoring case, as Confluent's
/// `findCaseSensitive...` does).
fn column_index(names: &[String], name: &str) -> Option<usize> {
    names.iter().position(|n| n == name).or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(name)))
}

/// The struct schema, the offset columns' positions, and each offset column's name and optionality.
type BuiltSchema = (Arc<Schema>, OffsetCols, Vec<(String, bool)>);

struct OffsetCols {
    ts: Vec<usize>,
    inc: Option<usize>,
}

/// Builds the struct schema from the kept columns; returns it with the offset columns' positions in the struct.
fn build_schema(spec: &QuerySpec, fields: Vec<(String, Schema)>) -> Result<BuiltSchema, ConnectError> {
    let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
    let mut ts = Vec::new();
    let mut optional = Vec::new();
    for c in &spec.timestamp_columns {
        let i = column_index(&names, c).ok_or_else(|| {
            ConnectError::Other(format!("timestamp column {c} not found in the result columns {}", names.join(",")))
        })?;
        optional.push((names[i].clone(), fields[i].1.optional));
        ts.push(i);
    }
    let inc = match &spec.incrementing_column {
        Some(c) => {
            let i = column_index(&names, c).ok_or_else(|| {
                ConnectError::Other(format!("Incrementing column {c} not found in {}", names.join(",")))
            })?;
            optional.push((names[i].clone(), fields[i].1.optional));
            Some(i)
        }
        None => None,
    };
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.name = spec.schema_name.clone();
    s.fields = fields
        .into_iter()
        .enumerate()
        .map(|(index, (name, schema))| Field { name, index, schema: Arc::new(schema) })
        .collect();
    Ok((Arc::new(s), OffsetCols { ts, inc }, optional))
}

fn offsets_of(cols: &OffsetCols, values: &[Value], ts_raw: &[Option<Ts>]) -> Result<RowOut, ConnectError> {
    let ts = cols.ts.iter().find_map(|&i| ts_raw[i]);
    let inc = match cols.inc {
        Some(i) => Some(match &values[i] {
            Value::Int8(v) => *v as i64,
            Value::Int16(v) => *v as i64,
            Value::Int32(v) => *v as i64,
            Value::Int64(v) => *v,
            Value::Bytes(b) => {
                // A Decimal (scale 0 expected): the unscaled two's complement.
                if b.len() > 8 {
                    return Err(ConnectError::Other(
                        "Decimal value for incrementing column exceeded Long.MAX_VALUE".into(),
                    ));
                }
                let mut n: i64 = if b.first().is_some_and(|x| x & 0x80 != 0) { -1 } else { 0 };
                for x in b.iter() {
                    n = (n << 8) | *x as i64;
                }
                n
            }
            Value::Null => return Err(ConnectError::Other("Null value for incrementing column".into())),
            other => return Err(ConnectError::Other(format!("Invalid type for incrementing column: {other:?}"))),
        }),
        None => None,
    };
    Ok(RowOut { values: values.to_vec(), ts, inc })
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

/// Any value, raw (binary format).
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10957;

/// A timestamp parameter: bound as timestamp, timestamptz or date (whatever the column's type makes the
/// parameter), as pgjdbc's `setTimestamp(i, ts, Calendar(db.timezone))` sends it: the wall-clock time in the zone
/// with the zone's offset, untyped, so a `timestamp` compares with the wall-clock time, a `timestamptz` with the
/// instant, and a `date` with the zone's local date.
#[derive(Debug)]
struct PgTs(Ts, DbZone);

impl ToSql for PgTs {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        let instant = self.0.micros();
        if *ty == Type::DATE {
            out.put_i32((self.1.to_local_micros(instant).div_euclid(86_400_000_000) - PG_EPOCH_DAYS) as i32);
        } else if *ty == Type::TIMESTAMP {
            out.put_i64(self.1.to_local_micros(instant) - PG_EPOCH_MICROS);
        } else {
            out.put_i64(instant - PG_EPOCH_MICROS);
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::DATE)
    }
    tokio_postgres::types::to_sql_checked!();
}

/// An incrementing parameter, bound as the column's integer or numeric type.
#[derive(Debug)]
struct PgInt(i64);

impl ToSql for PgInt {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        let v = self.0;
        match *ty {
            Type::INT2 => out.put_i16(v.clamp(i16::MIN as i64, i16::MAX as i64) as i16),
            Type::INT4 => out.put_i32(v.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
            Type::NUMERIC => {
                // Base-10000 digits, most significant first.
                let mut digits = Vec::new();
                let mut m = v.unsigned_abs();
                while m > 0 {
                    digits.push((m % 10000) as i16);
                    m /= 10000;
                }
                digits.reverse();
                let weight = digits.len() as i16 - 1;
                out.put_i16(digits.len() as i16);
                out.put_i16(if digits.is_empty() { 0 } else { weight });
                out.put_u16(if v < 0 { 0x4000 } else { 0 });
                out.put_u16(0);
                for d in digits {
                    out.put_i16(d);
                }
            }
            _ => out.put_i64(v),
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC)
    }
    tokio_postgres::types::to_sql_checked!();
}

#[derive(Debug, Clone, Copy)]
enum PgKind {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric(NumericKind),
    Text,
    Jsonb,
    Uuid,
    Bytes,
    Date,
    Time,
    /// `timestamp`: a wall-clock time in `db.timezone`.
    Timestamp,
    /// `timestamptz`: an instant.
    TimestampTz,
}

/// The Connect schema of a PostgreSQL column (Confluent's `PostgreSqlDatabaseDialect` + `GenericDatabaseDialect`
/// `addFieldToSchema` with pgjdbc's JDBC types), or `None` for a type Confluent leaves out ("not currently
/// supported").
fn pg_kind(ty: &Type, typmod: i32, optional: bool, mapping: NumericMapping) -> Option<(PgKind, Schema)> {
    use SchemaType as S;
    let p = |t: S| Schema::primitive(t, optional);
    Some(match *ty {
        Type::BOOL => (PgKind::Bool, p(S::Boolean)),
        Type::BIT if typmod <= 1 => (PgKind::Bool, p(S::Boolean)),
        Type::CHAR => (PgKind::Text, p(S::String)),
        Type::INT2 => (PgKind::I16, p(S::Int16)),
        Type::INT4 => (PgKind::I32, p(S::Int32)),
        Type::INT8 => (PgKind::I64, p(S::Int64)),
        Type::OID => (PgKind::I64, p(S::Int64)),
        Type::FLOAT4 => (PgKind::F32, p(S::Float32)),
        Type::FLOAT8 => (PgKind::F64, p(S::Float64)),
        Type::NUMERIC => {
            // pgjdbc: precision and scale from the type modifier; 0/0 for an unconstrained numeric.
            let (precision, scale) =
                if typmod >= 4 { ((((typmod - 4) >> 16) & 0xffff), ((typmod - 4) & 0xffff)) } else { (0, 0) };
            let kind = numeric_kind(mapping, precision, scale);
            (PgKind::Numeric(kind), numeric_schema(kind, precision, optional))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::XML => (PgKind::Text, p(S::String)),
        Type::JSONB => (PgKind::Jsonb, p(S::String)),
        Type::UUID => (PgKind::Uuid, p(S::String)),
        Type::BYTEA => (PgKind::Bytes, p(S::Bytes)),
        Type::DATE => (PgKind::Date, logical(S::Int32, DATE, optional, None)),
        Type::TIME => (PgKind::Time, logical(S::Int32, TIME, optional, None)),
        Type::TIMESTAMP => (PgKind::Timestamp, logical(S::Int64, TIMESTAMP, optional, None)),
        Type::TIMESTAMPTZ => (PgKind::TimestampTz, logical(S::Int64, TIMESTAMP, optional, None)),
        _ => return None,
    })
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// PostgreSQL's binary numeric as decimal text.
fn pg_numeric_text(b: &[u8]) -> Result<String, String> {
    if b.len() < 8 {
        return Err("short numeric".into());
    }
    let ndigits = be_i16(b, 0) as usize;
    let weight = be_i16(b, 2) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as usize;
    if sign == 0xC000 {
        return Err("NaN cannot be a Connect Decimal".into());
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| be_i16(b, 8 + 2 * i)).collect();
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part.push_str(&d.to_string());
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut i = weight + 1;
    while frac.len() < dscale {
        let d = if i >= 0 { digits.get(i as usize).copied().unwrap_or(0) } else { 0 };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int_part);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

/// A `time` read as pgjdbc's `getTime(col, Calendar(db.timezone))`: that wall-clock time on 1970-01-01 in the zone.
/// Connect's `Time` refuses an instant off 1970-01-01 UTC (`Time.fromLogical`, in the converter): the same error.
fn time_in_zone(zone: DbZone, wall_micros: i64) -> Result<Value, String> {
    let ms = zone.from_local_micros(wall_micros).div_euclid(1000);
    if !(0..86_400_000).contains(&ms) {
        return Err("Kafka Connect Time type should not have any date fields set to non-zero values.".into());
    }
    Ok(Value::Int32(ms as i32))
}

fn pg_value(kind: PgKind, raw: &[u8], zone: DbZone) -> Result<(Value, Option<Ts>), String> {
    let need = |n: usize| if raw.len() < n { Err(format!("short value ({} bytes)", raw.len())) } else { Ok(()) };
    Ok(match kind {
        PgKind::Bool => (Value::Boolean(raw.first().is_some_and(|b| *b != 0)), None),
        PgKind::I16 => {
            need(2)?;
            (Value::Int16(be_i16(raw, 0)), None)
        }
        PgKind::I32 => {
            need(4)?;
            (Value::Int32(i32::from_be_bytes(raw[..4].try_into().unwrap())), None)
        }
        PgKind::I64 => {
            if raw.len() == 4 {
                (Value::Int64(u32::from_be_bytes(raw[..4].try_into().unwrap()) as i64), None)
            } else {
                need(8)?;
                (Value::Int64(i64::from_be_bytes(raw[..8].try_into().unwrap())), None)
            }
        }
        PgKind::F32 => {
            need(4)?;
            (Value::Float32(f32::from_be_bytes(raw[..4].try_into().unwrap())), None)
        }
        PgKind::F64 => {
            need(8)?;
            (Value::Float64(f64::from_be_bytes(raw[..8].try_into().unwrap())), None)
        }
        PgKind::Numeric(k) => (numeric_value(k, &pg_numeric_text(raw)?)?, None),
        PgKind::Text => (Value::String(String::from_utf8_lossy(raw).into_owned()), None),
        PgKind::Jsonb => (Value::String(String::from_utf8_lossy(raw.get(1..).unwrap_or(&[])).into_owned()), None),
        PgKind::Uuid => {
            need(16)?;
            let h: String = raw[..16].iter().map(|b| format!("{b:02x}")).collect();
            (Value::String(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])), None)
        }
        PgKind::Bytes => (Value::Bytes(bytes::Bytes::copy_from_slice(raw)), None),
        PgKind::Date => {
            need(4)?;
            let d = i32::from_be_bytes(raw[..4].try_into().unwrap()) as i64 + PG_EPOCH_DAYS;
            (Value::Int32(d as i32), Some(Ts { nanos: d as i128 * 86_400_000_000_000 }))
        }
        PgKind::Time => {
            need(8)?;
            let us = i64::from_be_bytes(raw[..8].try_into().unwrap());
            if zone.is_utc() { (Value::Int32((us / 1000) as i32), None) } else { (time_in_zone(zone, us)?, None) }
        }
        PgKind::Timestamp => {
            need(8)?;
            let wall = i64::from_be_bytes(raw[..8].try_into().unwrap()) + PG_EPOCH_MICROS;
            let ts = Ts::from_micros(zone.from_local_micros(wall));
            (Value::Int64(ts.millis()), Some(ts))
        }
        PgKind::TimestampTz => {
            need(8)?;
            let ts = Ts::from_micros(i64::from_be_bytes(raw[..8].try_into().unwrap()) + PG_EPOCH_MICROS);
            (Value::Int64(ts.millis()), Some(ts))
        }
    })
}

async fn pg_query(pool: &Pool, spec: &QuerySpec, tx: &mpsc::Sender<Msg>) -> Result<(), ConnectError> {
    let mut client = pool.pg().await?;
    let txn = client.transaction().await.map_err(|e| pg_error("BEGIN", e))?;
    let stmt = txn.prepare(&spec.sql).await.map_err(|e| pg_error(&format!("preparing {}", spec.sql), e))?;
    // Nullability and type modifiers of the result's table columns (pgjdbc's ResultSetMetaData does the same).
    let rels: Vec<String> = {
        let mut v: Vec<u32> = stmt.columns().iter().filter_map(|c| c.table_oid()).collect();
        v.sort_unstable();
        v.dedup();
        v.iter().map(|o| o.to_string()).collect()
    };
    let mut attrs: HashMap<(u32, i16), (bool, i32)> = HashMap::new();
    if !rels.is_empty() {
        let q = format!(
            "SELECT attrelid::int8, attnum, attnotnull, atttypmod FROM pg_catalog.pg_attribute WHERE attrelid IN ({})",
            rels.join(",")
        );
        for row in txn.query(&q, &[]).await.map_err(|e| pg_error("describing columns", e))? {
            let rel: i64 = row.get(0);
            attrs.insert((rel as u32, row.get(1)), (row.get(2), row.get(3)));
        }
    }
    let mut kinds = Vec::new();
    let mut fields = Vec::new();
    for (i, c) in stmt.columns().iter().enumerate() {
        let (notnull, typmod) = match (c.table_oid(), c.column_id()) {
            (Some(t), Some(n)) => attrs.get(&(t, n)).copied().unwrap_or((false, -1)),
            _ => (false, -1),
        };
        match pg_kind(c.type_(), typmod, !notnull, spec.numeric_mapping) {
            Some((kind, schema)) => {
                kinds.push((i, kind));
                fields.push((c.name().to_string(), schema));
            }
            None => tracing::warn!(
                "JDBC type of column {} ({}) not currently supported: left out of the record",
                c.name(),
                c.type_().name()
            ),
        }
    }
    let (schema, cols, optional) = build_schema(spec, fields)?;
    if tx.send(Msg::Schema { schema, offset_columns_optional: optional }).await.is_err() {
        return Ok(());
    }
    let (a, b, c, d);
    let params: Vec<&(dyn ToSql + Sync)> = match spec.params {
        Params::None => vec![],
        Params::Incrementing(inc) => {
            a = PgInt(inc);
            vec![&a]
        }
        Params::Timestamp { begin, end } => {
            b = PgTs(begin, spec.zone);
            c = PgTs(end, spec.zone);
            vec![&b, &c]
        }
        Params::TimestampIncrementing { end, ts, inc } => {
            b = PgTs(end, spec.zone);
            c = PgTs(ts, spec.zone);
            d = PgInt(inc);
            vec![&b, &c, &d, &c]
        }
    };
    let portal = txn.bind(&stmt, &params).await.map_err(|e| pg_error(&format!("executing {}", spec.sql), e))?;
    let fetch = spec.batch_max_rows.clamp(1, i32::MAX as usize) as i32;
    loop {
        let rows = txn.query_portal(&portal, fetch).await.map_err(|e| pg_error("fetching rows", e))?;
        let n = rows.len();
        let mut out = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(kinds.len());
        let mut ts_raw = Vec::with_capacity(kinds.len());
        for row in rows {
            values.clear();
            ts_raw.clear();
            for &(i, kind) in &kinds {
                let raw: Option<Raw<'_>> = row.try_get(i).map_err(|e| pg_error("reading a column", e))?;
                match raw {
                    None => {
                        values.push(Value::Null);
                        ts_raw.push(None);
                    }
                    Some(Raw(bytes)) => {
                        let (v, t) = pg_value(kind, bytes, spec.zone)
                            .map_err(|e| ConnectError::Data(format!("column {}: {e}", stmt.columns()[i].name())))?;
                        values.push(v);
                        ts_raw.push(t);
                    }
                }
            }
            out.push(offsets_of(&cols, &values, &ts_raw)?);
        }
        if !out.is_empty() && tx.send(Msg::Rows(out)).await.is_err() {
            return Ok(());
        }
        if n < fetch as usize {
            break;
        }
    }
    drop(portal);
    txn.commit().await.map_err(|e| pg_error("COMMIT", e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// MySQL / MariaDB

#[derive(Debug, Clone, Copy)]
enum MyKind {
    Int,
    Float32,
    Float64,
    Decimal(NumericKind),
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
}

fn my_kind(c: &mysql_async::Column) -> Option<(MyKind, Schema)> {
    use SchemaType as S;
    use mysql_async::consts::{ColumnFlags, ColumnType as T};
    let optional = !c.flags().contains(ColumnFlags::NOT_NULL_FLAG);
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = c.character_set() == 63;
    let p = |t: S| Schema::primitive(t, optional);
    Some(match c.column_type() {
        // Connector/J reports TINYINT(1) and BIT(1) as Types.BIT, which Confluent maps to INT8.
        T::MYSQL_TYPE_TINY if c.column_length() == 1 => (MyKind::Int, p(S::Int8)),
        T::MYSQL_TYPE_BIT if c.column_length() <= 1 => (MyKind::Int, p(S::Int8)),
        T::MYSQL_TYPE_BIT => (MyKind::Bytes, p(S::Bytes)),
        T::MYSQL_TYPE_TINY => (MyKind::Int, p(if unsigned { S::Int16 } else { S::Int8 })),
        T::MYSQL_TYPE_SHORT => (MyKind::Int, p(if unsigned { S::Int32 } else { S::Int16 })),
        T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG => (MyKind::Int, p(if unsigned { S::Int64 } else { S::Int32 })),
        T::MYSQL_TYPE_LONGLONG => (MyKind::Int, p(S::Int64)),
        T::MYSQL_TYPE_FLOAT => (MyKind::Float32, p(S::Float32)),
        T::MYSQL_TYPE_DOUBLE => (MyKind::Float64, p(S::Float64)),
        T::MYSQL_TYPE_DECIMAL | T::MYSQL_TYPE_NEWDECIMAL => {
            // Types.DECIMAL: always a Decimal (numeric.mapping only applies to Types.NUMERIC).
            let scale = c.decimals() as i32;
            let precision = c.column_length() as i32 - if scale > 0 { 1 } else { 0 } - if unsigned { 0 } else { 1 };
            let kind = NumericKind::Decimal(scale);
            (MyKind::Decimal(kind), numeric_schema(kind, precision, optional))
        }
        T::MYSQL_TYPE_VARCHAR
        | T::MYSQL_TYPE_VAR_STRING
        | T::MYSQL_TYPE_STRING
        | T::MYSQL_TYPE_TINY_BLOB
        | T::MYSQL_TYPE_MEDIUM_BLOB
        | T::MYSQL_TYPE_LONG_BLOB
        | T::MYSQL_TYPE_BLOB => {
            if binary {
                (MyKind::Bytes, p(S::Bytes))
            } else {
                (MyKind::Text, p(S::String))
            }
        }
        T::MYSQL_TYPE_ENUM | T::MYSQL_TYPE_SET | T::MYSQL_TYPE_JSON => (MyKind::Text, p(S::String)),
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE | T::MYSQL_TYPE_YEAR => {
            (MyKind::Date, logical(S::Int32, DATE, optional, None))
        }
        T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => (MyKind::Time, logical(S::Int32, TIME, optional, None)),
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 | T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => {
            (MyKind::Timestamp, logical(S::Int64, TIMESTAMP, optional, None))
        }
        _ => return None,
    })
}

/// A value as MariaDB Connector/J reads it with a `Calendar` in `db.timezone` (`TimestampCodec`/`TimeCodec`): the
/// session runs in UTC (`time_zone = '+00:00'`, as a server in UTC), DATETIME and TIMESTAMP values are wall-clock
/// times in the zone.
fn my_value(kind: MyKind, schema: &Schema, v: mysql_async::Value, zone: DbZone) -> Result<(Value, Option<Ts>), String> {
    use mysql_async::Value as V;
    let text = |v: &V| -> String {
        match v {
            V::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            V::Int(i) => i.to_string(),
            V::UInt(u) => u.to_string(),
            V::Float(f) => f.to_string(),
            V::Double(d) => d.to_string(),
            other => format!("{other:?}"),
        }
    };
    if matches!(v, V::NULL) {
        return Ok((Value::Null, None));
    }
    Ok(match kind {
        MyKind::Int => {
            let n: i64 = match &v {
                V::Int(i) => *i,
                V::UInt(u) => *u as i64,
                V::Bytes(b) if schema.schema_type == SchemaType::Int8 && b.len() == 1 && !b[0].is_ascii_digit() => {
                    b[0] as i64
                }
                other => text(other).parse::<i64>().map_err(|e| e.to_string())?,
            };
            let v = match schema.schema_type {
                SchemaType::Int8 => Value::Int8(n as i8),
                SchemaType::Int16 => Value::Int16(n as i16),
                SchemaType::Int32 => Value::Int32(n as i32),
                _ => Value::Int64(n),
            };
            (v, None)
        }
        MyKind::Float32 => (
            Value::Float32(match v {
                V::Float(f) => f,
                V::Double(d) => d as f32,
                other => text(&other).parse().map_err(|e: std::num::ParseFloatError| e.to_string())?,
            }),
            None,
        ),
        MyKind::Float64 => (
            Value::Float64(match v {
                V::Double(d) => d,
                V::Float(f) => f as f64,
                other => text(&other).parse().map_err(|e: std::num::ParseFloatError| e.to_string())?,
            }),
            None,
        ),
        MyKind::Decimal(k) => (numeric_value(k, &text(&v))?, None),
        MyKind::Text => (Value::String(text(&v)), None),
        MyKind::Bytes => match v {
            V::Bytes(b) => (Value::Bytes(b.into()), None),
            other => (Value::Bytes(text(&other).into_bytes().into()), None),
        },
        MyKind::Date => match v {
            V::Date(y, m, d, ..) => {
                let days = days_from_civil(y as i64, m.max(1) as u32, d.max(1) as u32);
                (Value::Int32(days as i32), Some(Ts { nanos: days as i128 * 86_400_000_000_000 }))
            }
            other => {
                // YEAR arrives as an integer: January 1st of that year.
                let y: i64 = text(&other).parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
                (Value::Int32(days_from_civil(y, 1, 1) as i32), None)
            }
        },
        MyKind::Time => match v {
            V::Time(neg, days, h, m, s, us) => {
                let ms = ((days as i64 * 24 + h as i64) * 3600 + m as i64 * 60 + s as i64) * 1000 + us as i64 / 1000;
                let ms = if neg { -ms } else { ms };
                if zone.is_utc() { (Value::Int32(ms as i32), None) } else { (time_in_zone(zone, ms * 1000)?, None) }
            }
            other => return Err(format!("unexpected TIME value {other:?}")),
        },
        MyKind::Timestamp => match v {
            V::Date(y, mo, d, h, mi, s, us) => {
                let days = days_from_civil(y as i64, mo.max(1) as u32, d.max(1) as u32);
                let micros = ((days * 24 + h as i64) * 3600 + mi as i64 * 60 + s as i64) * 1_000_000 + us as i64;
                let ts = Ts::from_micros(zone.from_local_micros(micros));
                (Value::Int64(ts.millis()), Some(ts))
            }
            other => return Err(format!("unexpected DATETIME value {other:?}")),
        },
    })
}

/// A MySQL DATETIME parameter: the wall-clock time in `db.timezone`, as Connector/J's
/// `setTimestamp(i, ts, Calendar)` writes it.
fn my_ts(ts: Ts, zone: DbZone) -> mysql_async::Value {
    let us = zone.to_local_micros(ts.micros());
    let days = us.div_euclid(86_400_000_000);
    let rem = us.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    let secs = rem / 1_000_000;
    mysql_async::Value::Date(
        y.clamp(0, 9999) as u16,
        m as u8,
        d as u8,
        (secs / 3600) as u8,
        ((secs / 60) % 60) as u8,
        (secs % 60) as u8,
        (rem % 1_000_000) as u32,
    )
}

async fn mysql_query(pool: &Pool, spec: &QuerySpec, tx: &mpsc::Sender<Msg>) -> Result<(), ConnectError> {
    use mysql_async::Value as V;
    let mut conn = pool.mysql().await?;
    let params: Vec<V> = match spec.params {
        Params::None => vec![],
        Params::Incrementing(inc) => vec![V::Int(inc)],
        Params::Timestamp { begin, end } => vec![my_ts(begin, spec.zone), my_ts(end, spec.zone)],
        Params::TimestampIncrementing { end, ts, inc } => {
            vec![my_ts(end, spec.zone), my_ts(ts, spec.zone), V::Int(inc), my_ts(ts, spec.zone)]
        }
    };
    let mut result = conn
        .exec_iter(spec.sql.as_str(), params)
        .await
        .map_err(|e| mysql_error(&format!("executing {}", spec.sql), e))?;
    let columns = result.columns().map(|c| c.to_vec()).unwrap_or_default();
    let mut kinds = Vec::new();
    let mut fields = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match my_kind(c) {
            Some((kind, schema)) => {
                kinds.push((i, kind, schema.clone()));
                fields.push((c.name_str().into_owned(), schema));
            }
            None => tracing::warn!(
                "JDBC type of column {} ({:?}) not currently supported: left out of the record",
                c.name_str(),
                c.column_type()
            ),
        }
    }
    let (schema, cols, optional) = build_schema(spec, fields)?;
    if tx.send(Msg::Schema { schema, offset_columns_optional: optional }).await.is_err() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(spec.batch_max_rows.min(10_000));
    let mut values = Vec::with_capacity(kinds.len());
    let mut ts_raw = Vec::with_capacity(kinds.len());
    while let Some(mut row) = result.next().await.map_err(|e| mysql_error("fetching rows", e))? {
        values.clear();
        ts_raw.clear();
        for (i, kind, schema) in &kinds {
            let raw = row.take(*i).unwrap_or(V::NULL);
            let (v, t) = my_value(*kind, schema, raw, spec.zone)
                .map_err(|e| ConnectError::Data(format!("column {}: {e}", columns[*i].name_str())))?;
            values.push(v);
            ts_raw.push(t);
        }
        out.push(offsets_of(&cols, &values, &ts_raw)?);
        if out.len() >= spec.batch_max_rows.max(1) {
            let chunk = std::mem::replace(&mut out, Vec::with_capacity(spec.batch_max_rows.min(10_000)));
            if tx.send(Msg::Rows(chunk)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !out.is_empty() && tx.send(Msg::Rows(out)).await.is_err() {
        return Ok(());
    }
    drop(result);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata

/// Lists the tables of `table.types` (JDBC's `DatabaseMetaData.getTables` as pgjdbc and Connector/J answer it):
/// PostgreSQL: every schema but the system ones (or those LIKE `schema.pattern`); MySQL: the connection's database
/// (or those LIKE `catalog.pattern`).
pub async fn list_tables(
    pool: &Pool,
    table_types: &[String],
    schema_pattern: Option<&str>,
    catalog_pattern: Option<&str>,
) -> Result<Vec<TableId>, ConnectError> {
    let types: Vec<String> = table_types
        .iter()
        .map(|t| match t.to_ascii_uppercase().as_str() {
            "TABLE" => "BASE TABLE".to_string(),
            other => other.to_string(),
        })
        .collect();
    match pool {
        Pool::Postgres(_) => {
            let client = pool.pg().await?;
            let rows = client
                .query(
                    "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                     WHERE table_type = ANY($1) AND table_schema NOT IN ('pg_catalog', 'information_schema') \
                     AND table_schema NOT LIKE 'pg\\_toast%' AND table_schema NOT LIKE 'pg\\_temp%' \
                     AND ($2::text IS NULL OR table_schema LIKE $2) ORDER BY 1, 2",
                    &[&types, &schema_pattern],
                )
                .await
                .map_err(|e| pg_error("listing tables", e))?;
            Ok(rows.iter().map(|r| TableId { catalog: None, schema: Some(r.get(0)), table: r.get(1) }).collect())
        }
        Pool::MySql(_) => {
            let mut conn = pool.mysql().await?;
            let rows: Vec<(String, String, String)> = conn
                .exec(
                    "SELECT table_schema, table_name, table_type FROM information_schema.tables \
                     WHERE (? IS NULL AND table_schema = DATABASE()) OR table_schema LIKE ? ORDER BY 1, 2",
                    (catalog_pattern, catalog_pattern),
                )
                .await
                .map_err(|e| mysql_error("listing tables", e))?;
            Ok(rows
                .into_iter()
                .filter(|(_, _, t)| types.iter().any(|x| x.eq_ignore_ascii_case(t)))
                .map(|(c, t, _)| TableId { catalog: Some(c), schema: None, table: t })
                .collect())
        }
    }
}

/// The table's auto-increment column (Confluent's `findDefaultAutoIncrementingColumn`): PostgreSQL serial/identity
/// columns, MySQL `AUTO_INCREMENT`.
pub async fn auto_increment_column(pool: &Pool, table: &TableId) -> Result<Option<String>, ConnectError> {
    match pool {
        Pool::Postgres(_) => {
            let client = pool.pg().await?;
            let row = client
                .query_opt(
                    "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 \
                     AND table_name = $2 AND (column_default LIKE 'nextval(%' OR is_identity = 'YES') \
                     ORDER BY ordinal_position LIMIT 1",
                    &[&table.schema.clone().unwrap_or_default(), &table.table],
                )
                .await
                .map_err(|e| pg_error("finding the auto-increment column", e))?;
            Ok(row.map(|r| r.get(0)))
        }
        Pool::MySql(_) => {
            let mut conn = pool.mysql().await?;
            let row: Option<String> = conn
                .exec_first(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? \
                     AND extra LIKE '%auto_increment%' ORDER BY ordinal_position LIMIT 1",
                    (table.catalog.clone().unwrap_or_default(), table.table.clone()),
                )
                .await
                .map_err(|e| mysql_error("finding the auto-increment column", e))?;
            Ok(row)
        }
    }
}

/// The database's current time (`dialect.currentTimeOnDB`).
pub async fn db_now(pool: &Pool) -> Result<Ts, ConnectError> {
    match pool {
        Pool::Postgres(_) => {
            let client = pool.pg().await?;
            let row = client
                .query_one("SELECT (EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000000)::int8", &[])
                .await
                .map_err(|e| pg_error("reading the database time", e))?;
            Ok(Ts::from_micros(row.get(0)))
        }
        Pool::MySql(_) => {
            let mut conn = pool.mysql().await?;
            let us: Option<i64> = conn
                .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
                .await
                .map_err(|e| mysql_error("reading the database time", e))?;
            Ok(Ts::from_micros(us.unwrap_or(0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_numeric_decodes() {
        // 12345.678: ndigits 3, weight 1, digits 1 2345 6780, dscale 3
        let mut b = vec![];
        for v in [3i16, 1, 0, 3, 1, 2345, 6780] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(pg_numeric_text(&b).unwrap(), "12345.678");
        let mut b = vec![];
        for v in [1i16, -1, 0x4000u16 as i16, 4, 5000] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(pg_numeric_text(&b).unwrap(), "-0.5000");
        let mut b = vec![];
        for v in [0i16, 0, 0, 2] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(pg_numeric_text(&b).unwrap(), "0.00");
    }
}
