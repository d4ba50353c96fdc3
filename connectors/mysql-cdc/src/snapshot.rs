//! The parallel initial snapshot: `snapshot.max.threads` connections (and, with `tasks.max` > 1, the other tasks'
//! connections, [`crate::split`]) each hold a `START TRANSACTION WITH CONSISTENT SNAPSHOT` opened while the global
//! read lock was held, so every one of them sees the state at the one binlog position. They read the captured tables
//! in chunks — a large table split into ranges of its primary key's leading integer column — while one emitter hands the
//! records to the task's queue and gives them Debezium's `source.snapshot` markers in the order they reach it.
//!
//! Without the lock (`snapshot.locking.mode=none` on MariaDB, or FLUSH TABLES WITH READ LOCK refused) a connection
//! is only used when its own `binlog_snapshot_file/position` equals the main connection's: then no transaction
//! committed between the two snapshots.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as My};
use serde_json::json;
use sluice_connect_api::record::{SourceRecord, Value};
use tokio::sync::mpsc;

use crate::DEBEZIUM_VERSION;
use crate::config::{Flavor, MySqlSettings};
use crate::envelope::{self, SourceInfo};
use crate::task::{StreamError, TableInfo, quote};

/// A table is split only when it has at least this many rows (estimated) per chunk: a smaller one is read whole.
const MIN_ROWS_PER_CHUNK: u64 = 10_000;
/// Chunks per connection for a split table: more chunks than connections keep every connection busy when key
/// ranges are uneven (gaps in the keys).
const CHUNKS_PER_CONNECTION: u64 = 4;
/// Records per message to the emitter: what waits between the readers and the task's queue stays small.
const RECORDS_PER_MESSAGE: usize = 1024;

/// Which rows of a table a chunk reads. Both ends of a split table are open, so the chunks of a table cover every
/// row whatever the key boundaries were estimated from, and no row falls in two chunks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowRange {
    All,
    /// `column >= lo AND column < hi` on the primary key's leading integer column (`None`: open end).
    Key {
        column: String,
        lo: Option<i64>,
        hi: Option<i64>,
    },
}

impl RowRange {
    /// The `WHERE` clause (with its keyword), or "" for the whole table.
    pub fn where_clause(&self) -> String {
        let RowRange::Key { column, lo, hi } = self else { return String::new() };
        let col = quote(column);
        let mut conds = Vec::new();
        if let Some(lo) = lo {
            conds.push(format!("{col} >= {lo}"));
        }
        if let Some(hi) = hi {
            conds.push(format!("{col} < {hi}"));
        }
        if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) }
    }
}

/// How many chunks a table of `estimated_rows` is read in when `connections` connections read the snapshot.
pub fn chunk_count(estimated_rows: u64, connections: usize) -> usize {
    if connections <= 1 || estimated_rows < 2 * MIN_ROWS_PER_CHUNK {
        return 1;
    }
    (estimated_rows / MIN_ROWS_PER_CHUNK).min(connections as u64 * CHUNKS_PER_CONNECTION).max(2) as usize
}

/// `k` key ranges over `[min, max]`, open at both ends.
pub fn key_ranges(column: &str, min: i64, max: i64, k: usize) -> Vec<RowRange> {
    let span = (max as i128 - min as i128 + 1).max(1);
    let k = (k as i128).clamp(1, span) as usize;
    let bound = |i: usize| (min as i128 + span * i as i128 / k as i128) as i64;
    (0..k)
        .map(|i| RowRange::Key {
            column: column.to_string(),
            lo: (i > 0).then(|| bound(i)),
            hi: (i + 1 < k).then(|| bound(i + 1)),
        })
        .collect()
}

/// One unit of work: a range of one table (an index into the snapshot's table list).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    pub table: usize,
    pub range: RowRange,
}

/// The chunks still to read, taken in order (table by table) by whichever connection is free.
pub(crate) type ChunkQueue = Arc<Mutex<VecDeque<Chunk>>>;

/// What the readers tell the emitter.
pub(crate) enum ReaderMessage {
    Rows { table: usize, records: Vec<SourceRecord> },
    ChunkDone { table: usize },
    Failed(StreamError),
}

/// Where the snapshot stands: the binlog position every snapshot record carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotPoint {
    pub file: String,
    pub pos: u64,
    pub gtids: Option<String>,
    pub ts_sec: i64,
}

impl SnapshotPoint {
    /// Debezium's snapshot offset: `snapshot: INITIAL` on every record but the last.
    pub fn offset(&self, last: bool) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("ts_sec".into(), json!(self.ts_sec));
        o.insert("file".into(), json!(self.file));
        o.insert("pos".into(), json!(self.pos));
        if let Some(g) = &self.gtids {
            o.insert("gtids".into(), json!(g));
        }
        if !last {
            o.insert("snapshot".into(), json!("INITIAL"));
        }
        serde_json::Value::Object(o)
    }
}

/// What every snapshot record shares: the tables, where the snapshot stands and how records are addressed.
pub(crate) struct SnapshotContext {
    pub tables: Vec<Arc<TableInfo>>,
    pub settings: MySqlSettings,
    pub flavor: Flavor,
    pub partition: Arc<serde_json::Map<String, serde_json::Value>>,
    pub headers: Vec<(String, Option<bytes::Bytes>)>,
    pub point: SnapshotPoint,
}

impl SnapshotContext {
    /// A snapshot record marked `true`, not the last; the emitter changes the few that are first or last.
    fn record(&self, t: &TableInfo, values: &[My]) -> Result<SourceRecord, StreamError> {
        let key = t.key(values, &self.settings, false).map_err(StreamError::Fatal)?;
        let after = t.row(values, &self.settings, false).map_err(StreamError::Fatal)?;
        let source = SourceInfo {
            ts_ms: envelope::now_ns() / 1_000_000,
            snapshot: Some("true"),
            db: t.db.clone(),
            table: Some(t.table.clone()),
            server_id: 0,
            file: self.point.file.clone(),
            pos: self.point.pos as i64,
            ..Default::default()
        };
        let value = envelope::envelope_value(
            Value::Null,
            after,
            source.value(self.flavor, &self.settings.topic_prefix, DEBEZIUM_VERSION),
            Value::Null,
            "r",
        );
        Ok(SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: self.point.offset(false),
            topic: t.topic.clone(),
            partition: None,
            key_schema: t.key_schema.clone(),
            key,
            value_schema: Some(t.envelope.clone()),
            value,
            timestamp: None,
            headers: if self.settings.extended_headers { self.headers.clone() } else { Vec::new() },
        })
    }
}

/// Reads chunks from the queue on `conn` (in a consistent-snapshot transaction) until it is empty, sending records
/// in messages of [`RECORDS_PER_MESSAGE`]; the bounded channel is the backpressure.
pub(crate) async fn read_chunks(
    conn: &mut Conn,
    ctx: &SnapshotContext,
    queue: &ChunkQueue,
    out: &mpsc::Sender<ReaderMessage>,
) -> Result<(), StreamError> {
    loop {
        let next =
            queue.lock().map_err(|_| StreamError::Transient("snapshot chunk queue poisoned".into()))?.pop_front();
        let Some(chunk) = next else { return Ok(()) };
        let t = &ctx.tables[chunk.table];
        let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
        // `snapshot.select.statement.overrides`: the user's statement as a derived table, its columns taken by name
        // (as Debezium maps a result set's columns to the table's).
        let from = match &t.snapshot_select {
            Some(statement) => format!("({statement}) AS sluice_override"),
            None => format!("{}.{}", quote(&t.db), quote(&t.table)),
        };
        let sql = format!("SELECT {} FROM {from}{}", cols.join(", "), chunk.range.where_clause());
        tracing::debug!(table = %t.table, range = ?chunk.range, "snapshot chunk");
        let mut records = Vec::with_capacity(RECORDS_PER_MESSAGE);
        {
            let mut result = conn.exec_iter(sql, ()).await?;
            while let Some(row) = result.next().await? {
                let values: Vec<My> = row.unwrap();
                records.push(ctx.record(t, &values)?);
                if records.len() == RECORDS_PER_MESSAGE {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(RECORDS_PER_MESSAGE));
                    out.send(ReaderMessage::Rows { table: chunk.table, records: full })
                        .await
                        .map_err(|_| StreamError::Closed)?;
                }
            }
        }
        if !records.is_empty() {
            out.send(ReaderMessage::Rows { table: chunk.table, records }).await.map_err(|_| StreamError::Closed)?;
        }
        out.send(ReaderMessage::ChunkDone { table: chunk.table }).await.map_err(|_| StreamError::Closed)?;
    }
}

/// `n` more connections reading chunks from `queue` until it is empty, each on its own consistent-snapshot
/// transaction; they end their transactions when done.
pub(crate) fn spawn_readers(
    conns: Vec<Conn>,
    ctx: &Arc<SnapshotContext>,
    queue: &ChunkQueue,
    tx: &mpsc::Sender<ReaderMessage>,
) -> tokio::task::JoinSet<Conn> {
    let mut workers = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (ctx, queue, tx) = (ctx.clone(), queue.clone(), tx.clone());
        workers.spawn(async move {
            if let Err(e) = read_chunks(&mut conn, &ctx, &queue, &tx).await {
                let _ = tx.send(ReaderMessage::Failed(e)).await;
            }
            conn
        });
    }
    workers
}

/// A MariaDB connection's consistent-snapshot binlog position (`binlog_snapshot_file/position`), if it reports one.
pub(crate) async fn binlog_snapshot(conn: &mut Conn) -> Result<Option<(String, u64)>, StreamError> {
    let rows: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let (mut file, mut pos) = (None, None);
    for (k, v) in rows {
        match k.to_ascii_lowercase().as_str() {
            "binlog_snapshot_file" if !v.is_empty() => file = Some(v),
            "binlog_snapshot_position" => pos = v.parse().ok(),
            _ => {}
        }
    }
    Ok(file.zip(pos))
}

/// Opens a session for the snapshot: REPEATABLE READ, UTC, in a consistent-snapshot transaction.
pub(crate) async fn begin_snapshot(conn: &mut Conn) -> Result<(), StreamError> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        assert_eq!(chunk_count(1_000_000, 1), 1);
        assert_eq!(chunk_count(15_000, 4), 1);
        assert_eq!(chunk_count(50_000, 4), 5);
        assert_eq!(chunk_count(1_000_000, 4), 16);
        let r = key_ranges("id", 1, 100, 4);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].where_clause(), " WHERE `id` < 26");
        assert_eq!(r[1].where_clause(), " WHERE `id` >= 26 AND `id` < 51");
        assert_eq!(r[3].where_clause(), " WHERE `id` >= 76");
        assert_eq!(key_ranges("id", i64::MIN, i64::MAX, 16).len(), 16);
        assert_eq!(key_ranges("id", 5, 6, 8).len(), 2);
        assert_eq!(key_ranges("id", 7, 7, 8), vec![RowRange::Key { column: "id".into(), lo: None, hi: None }]);
        assert_eq!(RowRange::All.where_clause(), "");
        let r = key_ranges("id", -17, 1234, 7);
        for v in -20i64..1240 {
            let n = r
                .iter()
                .filter(|x| match x {
                    RowRange::Key { lo, hi, .. } => lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v < h),
                    RowRange::All => false,
                })
                .count();
            assert_eq!(n, 1, "{v}");
        }
    }
}
