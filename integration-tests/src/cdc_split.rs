//! What the split-snapshot CDC tests (PostgreSQL and MariaDB, `tasks.max=2`) check in the topics: the change events
//! of a `big` table replayed in topic order (snapshot reads first, then creates, updates and deletes), the snapshot
//! markers of Debezium's `source.snapshot`, and when the topics are complete enough to compare with the table.
//!
//! The writes end with a sentinel row in a `tiny` table. The sentinel alone does not say the snapshot is complete:
//! after task 0 restarted, its new snapshot may read the sentinel while task 1 still reads its share of `big`. So
//! [`wait_for_end`] also waits for the `last` snapshot record, and [`wait_for_replay`] re-reads `big` until the replay
//! gives the table (records of two topics are acknowledged independently).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::kafka::{KeyedRecord, read_keyed};
use crate::wait::wait_until;

/// The replay of a `big` topic with `id` and `v` columns.
#[derive(Debug, Default)]
pub struct Replay {
    /// Snapshot reads per row.
    pub reads: BTreeMap<i64, usize>,
    /// The rows as the events give them: `id` -> `v`.
    pub state: BTreeMap<i64, i64>,
    /// Snapshot reads per task (`__debezium.context.taskId` header).
    pub by_task: BTreeMap<String, usize>,
    /// Snapshot reads per `source.snapshot` value.
    pub markers: BTreeMap<String, usize>,
    /// Index of the record marked `last`, if any, and of the last snapshot read.
    pub last_marker_at: Option<usize>,
    pub last_read_at: usize,
    /// Creates, updates and deletes.
    pub changes: usize,
}

impl Replay {
    /// Rows read more than once by the snapshot.
    pub fn doubled(&self) -> usize {
        self.reads.values().filter(|n| **n > 1).count()
    }

    /// Whether the record marked `last` is the final snapshot read (or there is none in this topic).
    pub fn last_is_final(&self) -> bool {
        self.last_marker_at.is_none_or(|at| at == self.last_read_at)
    }
}

fn header<'a>(r: &'a KeyedRecord, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Replays `records`. Errors are violations no later record can mend: a snapshot read after a change event, a row
/// read twice without a fault, a create of a row already there, an update or delete of a row never seen.
pub fn replay(records: &[KeyedRecord], faulted: bool) -> anyhow::Result<Replay> {
    let mut r = Replay::default();
    let mut streaming = false;
    for (i, rec) in records.iter().enumerate() {
        let Some(v) = &rec.value else { continue };
        let p: Value = serde_json::from_str(v)?;
        let op = p["op"].as_str().unwrap_or("");
        let row = if op == "d" { &p["before"] } else { &p["after"] };
        let id = row["id"].as_i64().context("no id")?;
        match op {
            "r" => {
                ensure!(!streaming, "snapshot read of row {id} after a change event");
                let n = r.reads.entry(id).or_default();
                *n += 1;
                ensure!(*n == 1 || faulted, "row {id} read twice without a fault");
                r.state.insert(id, row["v"].as_i64().context("v")?);
                *r.by_task.entry(header(rec, "__debezium.context.taskId").unwrap_or("?").to_string()).or_default() += 1;
                let marker = p["source"]["snapshot"].as_str().unwrap_or("").to_string();
                if marker == "last" {
                    r.last_marker_at = Some(i);
                }
                *r.markers.entry(marker).or_default() += 1;
                r.last_read_at = i;
            }
            "c" => {
                streaming = true;
                r.changes += 1;
                ensure!(
                    r.state.insert(id, row["v"].as_i64().context("v")?).is_none(),
                    "row {id} created but already seen"
                );
            }
            "u" => {
                streaming = true;
                r.changes += 1;
                ensure!(r.state.insert(id, row["v"].as_i64().context("v")?).is_some(), "update of row {id} never seen");
            }
            "d" => {
                streaming = true;
                r.changes += 1;
                ensure!(r.state.remove(&id).is_some(), "delete of row {id} never seen");
            }
            other => bail!("unexpected op {other:?}"),
        }
    }
    Ok(r)
}

fn is_last_snapshot_read(r: &KeyedRecord) -> bool {
    r.value
        .as_deref()
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .is_some_and(|p| p["op"] == "r" && p["source"]["snapshot"] == "last")
}

/// Waits until `tiny` holds the sentinel row (`"id":999`) and one of the topics the `last` snapshot record: the
/// writes are over and the snapshot is complete.
pub async fn wait_for_end(kafka: &str, big: &str, tiny: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_until(timeout, "the sentinel row after the writes and the end of the snapshot", || async {
        let rows = read_keyed(kafka, tiny).await?;
        if !rows.iter().any(|r| r.value.as_deref().is_some_and(|v| v.contains("\"id\":999"))) {
            return Ok(None);
        }
        if rows.iter().any(is_last_snapshot_read) {
            return Ok(Some(()));
        }
        Ok(read_keyed(kafka, big).await?.iter().any(is_last_snapshot_read).then_some(()))
    })
    .await
}

/// Re-reads `big` until its replay gives `want` (after dropping `ghosts`, rows the replay may hold that the table
/// does not: see the tests), or fails with the difference. A violation of the replay's rules fails at once.
pub async fn wait_for_replay(
    kafka: &str,
    big: &str,
    faulted: bool,
    want: &BTreeMap<i64, i64>,
    ghost: impl Fn(&i64) -> bool,
    timeout: Duration,
) -> anyhow::Result<(Replay, Vec<i64>)> {
    let started = std::time::Instant::now();
    loop {
        let mut r = replay(&read_keyed(kafka, big).await?, faulted)?;
        let ghosts: Vec<i64> = r.state.keys().filter(|k| !want.contains_key(k)).copied().collect();
        if !ghosts.is_empty() && ghosts.iter().all(&ghost) {
            for id in &ghosts {
                r.state.remove(id);
            }
        }
        if r.state == *want {
            return Ok((r, ghosts));
        }
        if started.elapsed() >= timeout {
            let missing: Vec<_> = want.keys().filter(|k| !r.state.contains_key(k)).take(5).collect();
            let extra: Vec<_> = r.state.keys().filter(|k| !want.contains_key(k)).take(5).collect();
            let differ: Vec<_> = want.iter().filter(|(k, v)| r.state.get(k).is_some_and(|s| s != *v)).take(5).collect();
            bail!(
                "{} rows replayed, {} in the table after {timeout:?}; missing {missing:?}, extra {extra:?}, different \
                 {differ:?}",
                r.state.len(),
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The snapshot markers of the `tiny` topic, and whether its `last` record (if any) is its final snapshot read.
pub async fn tiny_markers(kafka: &str, tiny: &str) -> anyhow::Result<(BTreeMap<String, usize>, bool)> {
    let mut markers: BTreeMap<String, usize> = BTreeMap::new();
    let (mut last_at, mut final_read) = (None, 0);
    for (i, r) in read_keyed(kafka, tiny).await?.iter().enumerate() {
        let Some(v) = &r.value else { continue };
        let p: Value = serde_json::from_str(v)?;
        if p["op"] == "r" {
            let marker = p["source"]["snapshot"].as_str().unwrap_or("").to_string();
            if marker == "last" {
                last_at = Some(i);
            }
            final_read = i;
            *markers.entry(marker).or_default() += 1;
        }
    }
    Ok((markers, last_at.is_none_or(|at| at == final_read)))
}
