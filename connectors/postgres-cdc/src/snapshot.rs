//! The parallel initial snapshot: `snapshot.max.threads` connections import one PostgreSQL snapshot (the one the
//! replication slot exported) and read the captured tables in chunks — a large table split into primary-key or
//! block (`ctid`) ranges — while one emitter hands the records to the task's queue and gives them Debezium's
//! `source.snapshot` markers in the order they reach it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{SourceRecord, Value};
use sluice_debezium::envelope::{Op, ProcessingTime};
use sluice_debezium::source::SnapshotMarker;
use tokio::sync::mpsc;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::repl::quote_ident;
use crate::task::{TableState, pg_err};
use crate::types::{self, Conv};

/// Below this many estimated rows per fetch a table is read whole: splitting it buys nothing.
const MIN_FETCHES_TO_SPLIT: u64 = 2;
/// Chunks per thread for a split table: more chunks than threads keep every thread busy when ranges are uneven
/// (gaps in the keys, dead tuples in some blocks).
const CHUNKS_PER_THREAD: u64 = 4;
/// Records per message to the emitter. Smaller than a fetch (`snapshot.fetch.size` rows, cheap as text) because a
/// built record weighs ~10x its row: what waits between the readers and the task's queue stays small.
const RECORDS_PER_MESSAGE: usize = 1024;

/// Which rows of a table a chunk reads. Both ends of a split table are open, so the chunks of a table cover every
/// row whatever the key or block boundaries were estimated from, and no row falls in two chunks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowRange {
    All,
    /// `column >= lo AND column < hi` on a single integer primary key (`None`: open end).
    Key {
        column: String,
        lo: Option<i64>,
        hi: Option<i64>,
    },
    /// `ctid >= '(lo,0)' AND ctid < '(hi,0)'`: heap blocks `lo..hi` (PostgreSQL 14+ reads them with a TID range scan).
    Blocks {
        lo: Option<u64>,
        hi: Option<u64>,
    },
}

impl RowRange {
    /// The `WHERE` clause (with its keyword), or "" for the whole table.
    pub fn where_clause(&self) -> String {
        let (col, lo, hi) = match self {
            RowRange::All => return String::new(),
            RowRange::Key { column, lo, hi } => {
                (quote_ident(column), lo.map(|v| v.to_string()), hi.map(|v| v.to_string()))
            }
            RowRange::Blocks { lo, hi } => {
                ("ctid".to_string(), lo.map(|b| format!("'({b},0)'::tid")), hi.map(|b| format!("'({b},0)'::tid")))
            }
        };
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

/// How many chunks a table of `estimated_rows` is read in.
pub fn chunk_count(estimated_rows: u64, threads: usize, fetch_size: usize) -> usize {
    if threads <= 1 || estimated_rows < MIN_FETCHES_TO_SPLIT * fetch_size as u64 {
        return 1;
    }
    let by_size = estimated_rows / fetch_size.max(1) as u64;
    by_size.min(threads as u64 * CHUNKS_PER_THREAD).max(2) as usize
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

/// `k` block ranges over `blocks` heap blocks, open at both ends (the table may have grown since it was measured).
pub fn block_ranges(blocks: u64, k: usize) -> Vec<RowRange> {
    let k = (k as u64).clamp(1, blocks.max(1));
    let bound = |i: u64| blocks * i / k;
    (0..k).map(|i| RowRange::Blocks { lo: (i > 0).then(|| bound(i)), hi: (i + 1 < k).then(|| bound(i + 1)) }).collect()
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
    Failed(ConnectError),
}

/// What every snapshot record shares: where the snapshot stands and how records are addressed.
pub(crate) struct SnapshotContext {
    pub tables: Vec<Arc<TableState>>,
    pub topic_prefix: String,
    pub dbname: String,
    pub partition: Arc<serde_json::Map<String, serde_json::Value>>,
    pub headers: Vec<(String, Option<bytes::Bytes>)>,
    pub xid: i64,
    pub lsn: u64,
    pub started_us: i64,
    pub fetch_size: usize,
}

impl SnapshotContext {
    /// A snapshot record marked `true`, not the last; the emitter changes the few that are first or last.
    fn record(&self, t: &TableState, row: Value) -> SourceRecord {
        let offset = json!({
            "last_snapshot_record": false,
            "lsn": self.lsn,
            "txId": self.xid,
            "ts_usec": self.started_us,
            "snapshot": "INITIAL",
            "snapshot_completed": false,
        });
        let source = crate::task::source_value(
            &self.topic_prefix,
            &self.dbname,
            t,
            crate::task::now_us(),
            SnapshotMarker::True,
            Some(self.xid as u64),
            self.lsn,
            None,
        );
        let key = t.key(&row);
        let mut row = row;
        t.map_values(&mut row);
        let value = t.envelope.value(Value::Null, row, source, None, Op::Read, ProcessingTime::now());
        crate::task::record(&self.partition, &self.headers, t, key, value, offset)
    }
}

/// Reads chunks from the queue on `client` (in a transaction that imported the snapshot) until it is empty,
/// sending records in messages of [`RECORDS_PER_MESSAGE`]; the bounded channel is the backpressure.
pub(crate) async fn read_chunks(
    client: &Client,
    ctx: &SnapshotContext,
    queue: &ChunkQueue,
    out: &mpsc::Sender<ReaderMessage>,
) -> Result<(), ConnectError> {
    let stopped = || ConnectError::Other("task stopped".into());
    loop {
        let next = queue.lock().map_err(|_| ConnectError::Other("snapshot chunk queue poisoned".into()))?.pop_front();
        let Some(chunk) = next else { return Ok(()) };
        let t = &ctx.tables[chunk.table];
        let cols: Vec<String> = t.envelope.row_schema.fields.iter().map(|f| quote_ident(&f.name)).collect();
        let select_list = if cols.is_empty() { "NULL".to_string() } else { cols.join(", ") };
        // `snapshot.select.statement.overrides`: the user's statement as a derived table, its columns taken by name
        // (as Debezium maps a result set's columns to the table's).
        let from = match &t.snapshot_select {
            Some(statement) => format!("({statement}) AS sluice_override"),
            None => format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.table)),
        };
        let sql = format!(
            "DECLARE sluice_snap NO SCROLL CURSOR FOR SELECT {select_list} FROM {from}{}",
            chunk.range.where_clause()
        );
        tracing::debug!(table = %t.table, range = ?chunk.range, "snapshot chunk");
        client.batch_execute(&sql).await.map_err(|e| pg_err("declaring the snapshot cursor", e))?;
        let convs: Vec<Conv> = t.columns.iter().flatten().map(|(_, c)| c.clone()).collect();
        let fetch = format!("FETCH FORWARD {} FROM sluice_snap", ctx.fetch_size);
        loop {
            let msgs = client.simple_query(&fetch).await.map_err(|e| pg_err("reading the snapshot", e))?;
            let mut got = 0;
            let mut records = Vec::with_capacity(RECORDS_PER_MESSAGE.min(msgs.len()));
            for m in msgs {
                let SimpleQueryMessage::Row(r) = m else { continue };
                let mut row = Vec::with_capacity(convs.len());
                for (i, conv) in convs.iter().enumerate() {
                    row.push(match r.get(i) {
                        None => Value::Null,
                        Some(text) => types::convert(conv, text).map_err(ConnectError::Data)?,
                    });
                }
                records.push(ctx.record(t, Value::Struct(row)));
                got += 1;
                if records.len() == RECORDS_PER_MESSAGE {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(RECORDS_PER_MESSAGE));
                    out.send(ReaderMessage::Rows { table: chunk.table, records: full }).await.map_err(|_| stopped())?;
                }
            }
            if !records.is_empty() {
                out.send(ReaderMessage::Rows { table: chunk.table, records }).await.map_err(|_| stopped())?;
            }
            if got < ctx.fetch_size {
                break;
            }
        }
        client.batch_execute("CLOSE sluice_snap").await.map_err(|e| pg_err("closing the cursor", e))?;
        out.send(ReaderMessage::ChunkDone { table: chunk.table }).await.map_err(|_| stopped())?;
    }
}

/// Sets a snapshot record's `source.snapshot` marker (and, for `last`, its offset's completion flags).
pub fn set_marker(r: &mut SourceRecord, marker: SnapshotMarker) {
    if marker == SnapshotMarker::Last
        && let Some(o) = r.source_offset.as_object_mut()
    {
        o.insert("last_snapshot_record".into(), json!(true));
        o.insert("snapshot_completed".into(), json!(true));
    }
    if marker == SnapshotMarker::True {
        return;
    }
    let Some(schema) = r.value_schema.as_ref() else { return };
    let Some(si) = schema.fields.iter().position(|f| f.name == "source") else { return };
    let Some(mi) = schema.fields[si].schema.fields.iter().position(|f| f.name == "snapshot") else { return };
    if let Value::Struct(env) = &mut r.value
        && let Some(Value::Struct(source)) = env.get_mut(si)
        && let Some(m) = source.get_mut(mi)
    {
        *m = marker.to_value();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        assert_eq!(chunk_count(1_000_000, 1, 10240), 1);
        assert_eq!(chunk_count(15_000, 4, 10240), 1);
        assert_eq!(chunk_count(50_000, 4, 10240), 4);
        assert_eq!(chunk_count(1_000_000, 4, 10240), 16);
        let r = key_ranges("id", 1, 100, 4);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].where_clause(), " WHERE \"id\" < 26");
        assert_eq!(r[1].where_clause(), " WHERE \"id\" >= 26 AND \"id\" < 51");
        assert_eq!(r[3].where_clause(), " WHERE \"id\" >= 76");
        // Extremes do not overflow; fewer values than chunks gives one range per value.
        assert_eq!(key_ranges("id", i64::MIN, i64::MAX, 16).len(), 16);
        assert_eq!(key_ranges("id", 5, 6, 8).len(), 2);
        assert_eq!(key_ranges("id", 7, 7, 8), vec![RowRange::Key { column: "id".into(), lo: None, hi: None }]);
        let b = block_ranges(1000, 4);
        assert_eq!(b[0].where_clause(), " WHERE ctid < '(250,0)'::tid");
        assert_eq!(b[3].where_clause(), " WHERE ctid >= '(750,0)'::tid");
        assert_eq!(RowRange::All.where_clause(), "");
        // Every value falls in exactly one key range.
        let r = key_ranges("id", -17, 1234, 7);
        for v in -20i64..1240 {
            let n = r
                .iter()
                .filter(|x| match x {
                    RowRange::Key { lo, hi, .. } => lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v < h),
                    _ => false,
                })
                .count();
            assert_eq!(n, 1, "{v}");
        }
    }
}
