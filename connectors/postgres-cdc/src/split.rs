//! The initial snapshot split across tasks (`tasks.max` > 1), which may run on different agents. Debezium's
//! PostgresConnector runs one task; Sluice's extra tasks only read parts of the initial snapshot.
//!
//! Task 0 owns the replication slot and streams, as with one task. When it snapshots, it plans the chunks (key or
//! block ranges, [`crate::snapshot`]) for every task, keeps its share, and publishes the rest in the connector's
//! shared state as a [`SnapshotPlan`] with a fresh generation and the name of the exported snapshot. Every other
//! task imports that snapshot (`SET TRANSACTION SNAPSHOT`: the same snapshot from any host while task 0 keeps the
//! exporting transaction open), reads its chunks with `snapshot.max.threads` connections under a source partition
//! of its own (`{"server": <topic.prefix>, "snapshot_task": <n>}`, so task 0's Debezium offsets stay task 0's),
//! and once Kafka acknowledged all its records (`SourceTask::commit`) marks its share done for that generation.
//! Task 0 holds back its own last snapshot record (the one marked `last`, whose offset says the snapshot is
//! complete) until every share is done, then sends it and streams: no change event can reach Kafka before a
//! snapshot read of the same key that is older, and the snapshot only counts as complete once every row is in.
//!
//! Before task 0 reads its own share, every other task says it follows the new generation (after Kafka
//! acknowledged whatever it had read for an older one): a stale read of an abandoned generation cannot land after
//! a read of the new one.
//!
//! Failures: a task other than 0 that restarts mid-snapshot imports the snapshot again and reads its whole share
//! again (duplicated snapshot reads, as Debezium repeats a snapshot interrupted by a crash). If task 0 restarts
//! before its snapshot completed, it takes a new snapshot under a new generation and the others follow the new
//! plan (an import of the old one fails, or the old share is abandoned). A share done for the current generation
//! is never read again, so once the snapshot is complete the other tasks idle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_connect_api::shared::SharedValues;

use crate::snapshot::Chunk;

/// Task config key set by the connector's task split: how many tasks share the snapshot.
pub const TASKS_KEY: &str = "sluice.snapshot.tasks";
/// Shared-state key of the current plan.
pub const PLAN_KEY: &str = "snapshot.plan";

/// Shared-state key where task `task` says it follows a generation: everything it read for an older one is
/// acknowledged by Kafka, so none of it can land after a newer read of the same row.
pub fn started_key(task: u32) -> String {
    format!("snapshot.started.{task}")
}

/// The tasks (other than 0) that do not follow `generation` yet.
pub fn not_started(values: &SharedValues, generation: &str, tasks: usize) -> Vec<u32> {
    (1..tasks as u32)
        .filter(|&t| {
            values.get(&started_key(t)).and_then(|v| v.get("generation")).and_then(|g| g.as_str()) != Some(generation)
        })
        .collect()
}

/// Shared-state key where task `task` marks its share of a generation done.
pub fn done_key(task: u32) -> String {
    format!("snapshot.done.{task}")
}

/// What task 0 publishes for the other tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    /// New for every snapshot task 0 starts.
    pub generation: String,
    /// The exported snapshot to import.
    pub snapshot: String,
    /// What every snapshot record carries (`source.txId`, `source.lsn`, offset `ts_usec`), as task 0's do.
    pub xid: i64,
    pub lsn: u64,
    pub started_us: i64,
    /// The captured tables, `(schema, table)`; chunks refer to them by index.
    pub tables: Vec<(String, String)>,
    /// The chunks of each task other than 0, by task number.
    pub chunks: BTreeMap<u32, Vec<Chunk>>,
}

/// What a task writes when Kafka acknowledged every record of its share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareDone {
    pub generation: String,
    pub records: u64,
}

/// Deals the chunks out to `tasks` tasks, round robin in plan order, so each task gets a part of every large
/// table and task 0 gets the first chunk. Entry `n` is task `n`'s.
pub fn deal(chunks: Vec<Chunk>, tasks: usize) -> Vec<Vec<Chunk>> {
    let tasks = tasks.max(1);
    let mut out = vec![Vec::new(); tasks];
    for (i, chunk) in chunks.into_iter().enumerate() {
        out[i % tasks].push(chunk);
    }
    out
}

/// The plan in the shared state, if any (a value that does not parse counts as none).
pub fn plan(values: &SharedValues) -> Option<SnapshotPlan> {
    values.get(PLAN_KEY).and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The generation task `task` marked done last, if any.
pub fn done_generation(values: &SharedValues, task: u32) -> Option<String> {
    values.get(&done_key(task)).and_then(|v| serde_json::from_value::<ShareDone>(v.clone()).ok()).map(|d| d.generation)
}

/// The plan task `task` must still read its share of: the current one, unless its share of it is done.
pub fn share_to_read(values: &SharedValues, task: u32) -> Option<SnapshotPlan> {
    let plan = plan(values)?;
    (done_generation(values, task).as_deref() != Some(plan.generation.as_str())).then_some(plan)
}

/// The tasks (other than 0) whose share of `generation` is not done yet.
pub fn pending_shares(values: &SharedValues, generation: &str, tasks: usize) -> Vec<u32> {
    (1..tasks as u32).filter(|&t| done_generation(values, t).as_deref() != Some(generation)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::RowRange;

    fn chunk(table: usize, lo: i64) -> Chunk {
        Chunk { table, range: RowRange::Key { column: "id".into(), lo: Some(lo), hi: None } }
    }

    #[test]
    fn every_chunk_goes_to_exactly_one_task() {
        let chunks: Vec<Chunk> = (0..7).map(|i| chunk(i % 2, i as i64)).collect();
        let dealt = deal(chunks.clone(), 3);
        assert_eq!(dealt.len(), 3);
        assert_eq!(dealt[0][0], chunks[0]);
        let mut all: Vec<Chunk> = dealt.concat();
        all.sort_by_key(|c| match c.range {
            RowRange::Key { lo, .. } => lo,
            _ => None,
        });
        assert_eq!(all, chunks);
        assert_eq!(deal(vec![chunk(0, 1)], 4).iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 0, 0, 0]);
        assert_eq!(deal(Vec::new(), 1), vec![Vec::<Chunk>::new()]);
    }

    #[test]
    fn shares_follow_the_current_generation() {
        let plan = SnapshotPlan {
            generation: "g1".into(),
            snapshot: "00000003-1".into(),
            xid: 7,
            lsn: 100,
            started_us: 1,
            tables: vec![("public".into(), "t".into())],
            chunks: BTreeMap::from([(1, vec![chunk(0, 5)]), (2, Vec::new())]),
        };
        let mut values = SharedValues::new();
        assert_eq!(share_to_read(&values, 1), None);
        values.insert(PLAN_KEY.into(), serde_json::to_value(&plan).unwrap());
        // The plan survives the JSON round trip the shared state puts it through.
        assert_eq!(share_to_read(&values, 1), Some(plan.clone()));
        assert_eq!(pending_shares(&values, "g1", 3), vec![1, 2]);
        values.insert(done_key(1), json!({"generation": "g1", "records": 10}));
        assert_eq!(share_to_read(&values, 1), None);
        assert_eq!(pending_shares(&values, "g1", 3), vec![2]);
        // A done mark of an older generation does not count.
        values.insert(done_key(2), json!({"generation": "g0", "records": 3}));
        assert_eq!(pending_shares(&values, "g1", 3), vec![2]);
        values.insert(done_key(2), json!({"generation": "g1", "records": 0}));
        assert!(pending_shares(&values, "g1", 3).is_empty());
        // A new generation: every share is to be read again.
        let mut next = plan;
        next.generation = "g2".into();
        values.insert(PLAN_KEY.into(), serde_json::to_value(&next).unwrap());
        assert_eq!(share_to_read(&values, 1).map(|p| p.generation), Some("g2".into()));
        assert_eq!(pending_shares(&values, "g2", 3), vec![1, 2]);
    }
}
