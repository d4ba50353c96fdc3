//! The initial snapshot split across tasks (`tasks.max` > 1), which may run on different agents. Debezium's
//! MySQL/MariaDB connectors run one task; Sluice's extra tasks only read parts of the initial snapshot.
//!
//! MySQL cannot hand a snapshot to another session (PostgreSQL's `SET TRANSACTION SNAPSHOT`), but a
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` opened while FLUSH TABLES WITH READ LOCK is held sees exactly the
//! locked state, from any host. So:
//!
//! 1. Task 0 takes the lock, opens its own transactions, reads the binlog position and the schemas, and publishes a
//!    [`JoinRequest`] (a fresh generation, the position, the tables) in the connector's shared state.
//! 2. Every other task opens its `snapshot.max.threads` transactions, reads the tables' structures while the lock
//!    keeps DDL out, and reports [`Joined`] for that generation. Without the lock (MariaDB, `snapshot.locking.mode=
//!    none`) a task joins only if its transactions' `binlog_snapshot_file/position` equal task 0's.
//! 3. Task 0 waits for the joins, at most `sluice.snapshot.join.timeout.ms`, then unlocks. The tasks that joined in
//!    time are the members of the snapshot; a task that did not gets no share (task 0 reads more).
//! 4. Task 0 plans the chunks, deals them out to itself and the members round robin, and publishes the
//!    [`SnapshotPlan`]. Each member reads its share in its transactions under a source partition of its own
//!    (`{"server": <topic.prefix>, "snapshot_task": <n>}`, so task 0's Debezium offsets stay task 0's) and, once Kafka
//!    acknowledged every record of it (`SourceTask::commit`), marks it [`ShareDone`].
//! 5. Task 0 holds back its own last snapshot record (the one marked `last`, whose offset says the snapshot is
//!    complete) until every share is done, then sends it and streams from the snapshot's binlog position: no change
//!    event can reach Kafka before a snapshot read of the same row that is older.
//!
//! Failures. A member whose transactions are lost (the task restarted, its agent died, a connection broke) cannot
//! open the same snapshot again: once Kafka acknowledged what it had sent, it hands its share back
//! (`ShareDone { handed_back: true }`) and task 0 reads it in its own transactions, which see the same state
//! (duplicated snapshot reads, as Debezium repeats a snapshot interrupted by a crash). If task 0 restarts before its
//! snapshot completed, it takes a new snapshot under a new generation; every task abandons the old one, and reports
//! for the new one only after Kafka acknowledged whatever it had read for the old one, and task 0 waits for every
//! task's report before it reads: a stale read of an abandoned generation cannot land after a read of the new one.
//! A share done for the current generation is never read again, so once the snapshot is complete the other tasks
//! idle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_connect_api::shared::SharedValues;

use crate::snapshot::{Chunk, SnapshotPoint};

/// Task config key set by the connector's task split: how many tasks share the snapshot.
pub const TASKS_KEY: &str = "sluice.snapshot.tasks";
/// Shared-state key of the current join request.
pub const JOIN_KEY: &str = "snapshot.join";
/// Shared-state key of the current plan.
pub const PLAN_KEY: &str = "snapshot.plan";

/// What task 0 publishes while it holds the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// New for every snapshot task 0 starts.
    pub generation: String,
    pub point: SnapshotPoint,
    /// Whether task 0 holds FLUSH TABLES WITH READ LOCK; without it a task joins only at the same
    /// `binlog_snapshot_file/position` as task 0's (`point`).
    pub locked: bool,
    /// The captured tables, `(database, table)`; chunks refer to them by index.
    pub tables: Vec<(String, String)>,
}

/// Shared-state key where task `task` reports for a generation.
pub fn joined_key(task: u32) -> String {
    format!("snapshot.joined.{task}")
}

/// What a task reports for a generation, after Kafka acknowledged whatever it read for an older one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    pub generation: String,
    /// New for every join: the plan names the joins it counted, so a restarted task (whose transactions are not
    /// the ones that joined) cannot take a member's place.
    #[serde(default)]
    pub id: String,
    /// Consistent-snapshot transactions it holds at the snapshot's position (0: it did not join).
    pub connections: usize,
}

/// What task 0 publishes once it unlocked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPlan {
    pub generation: String,
    /// The members other than 0 and the id of the join that made each one a member.
    pub members: BTreeMap<u32, String>,
    /// The chunks of each member other than 0, by task number.
    pub chunks: BTreeMap<u32, Vec<Chunk>>,
}

/// Shared-state key where task `task` marks its share of a generation done (or handed back).
pub fn done_key(task: u32) -> String {
    format!("snapshot.done.{task}")
}

/// What a task writes when Kafka acknowledged every record of its share, or when it gives its share back to task 0
/// (its transactions are gone: it cannot read that snapshot any more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareDone {
    pub generation: String,
    pub records: u64,
    #[serde(default)]
    pub handed_back: bool,
}

fn parse<T: for<'de> Deserialize<'de>>(values: &SharedValues, key: &str) -> Option<T> {
    values.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The join request in the shared state, if any (a value that does not parse counts as none).
pub fn join_request(values: &SharedValues) -> Option<JoinRequest> {
    parse(values, JOIN_KEY)
}

/// The plan in the shared state, if any.
pub fn plan(values: &SharedValues) -> Option<SnapshotPlan> {
    parse(values, PLAN_KEY)
}

/// What task `task` reported last.
pub fn joined(values: &SharedValues, task: u32) -> Option<Joined> {
    parse(values, &joined_key(task))
}

/// What task `task` marked done last.
pub fn done(values: &SharedValues, task: u32) -> Option<ShareDone> {
    parse(values, &done_key(task))
}

/// Deals the chunks out to `members` (task 0 first), round robin in plan order, so each gets a part of every large
/// table and task 0 gets the first chunk.
pub fn deal(chunks: Vec<Chunk>, members: &[u32]) -> BTreeMap<u32, Vec<Chunk>> {
    let mut out: BTreeMap<u32, Vec<Chunk>> = members.iter().map(|&m| (m, Vec::new())).collect();
    if members.is_empty() {
        return out;
    }
    for (i, chunk) in chunks.into_iter().enumerate() {
        out.entry(members[i % members.len()]).or_default().push(chunk);
    }
    out
}

/// The tasks (other than 0) that have not reported for `generation` yet.
pub fn not_reported(values: &SharedValues, generation: &str, tasks: usize) -> Vec<u32> {
    (1..tasks as u32).filter(|&t| joined(values, t).is_none_or(|j| j.generation != generation)).collect()
}

/// The members whose share of `generation` is neither done nor handed back.
pub fn pending_shares(values: &SharedValues, plan: &SnapshotPlan) -> Vec<u32> {
    plan.chunks.keys().copied().filter(|&t| done(values, t).is_none_or(|d| d.generation != plan.generation)).collect()
}

/// The members that handed their share of `generation` back to task 0.
pub fn handed_back(values: &SharedValues, plan: &SnapshotPlan) -> Vec<u32> {
    plan.chunks
        .keys()
        .copied()
        .filter(|&t| done(values, t).is_some_and(|d| d.generation == plan.generation && d.handed_back))
        .collect()
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
    fn every_chunk_goes_to_exactly_one_member() {
        let chunks: Vec<Chunk> = (0..7).map(|i| chunk(i % 2, i as i64)).collect();
        let dealt = deal(chunks.clone(), &[0, 2, 3]);
        assert_eq!(dealt.len(), 3);
        assert_eq!(dealt[&0][0], chunks[0]);
        assert_eq!(dealt[&2][0], chunks[1]);
        let mut all: Vec<Chunk> = dealt.into_values().flatten().collect();
        all.sort_by_key(|c| match c.range {
            RowRange::Key { lo, .. } => lo,
            RowRange::All => None,
        });
        assert_eq!(all, chunks);
        assert_eq!(deal(vec![chunk(0, 1)], &[0, 1]).get(&1).map(Vec::len), Some(0));
    }

    #[test]
    fn shares_follow_the_current_generation() {
        let plan = SnapshotPlan {
            generation: "g1".into(),
            members: BTreeMap::from([(1, "a".into()), (2, "b".into())]),
            chunks: BTreeMap::from([(1, vec![chunk(0, 5)]), (2, Vec::new())]),
        };
        let mut values = SharedValues::new();
        values.insert(PLAN_KEY.into(), serde_json::to_value(&plan).unwrap());
        assert_eq!(self::plan(&values), Some(plan.clone()));
        assert_eq!(pending_shares(&values, &plan), vec![1, 2]);
        assert_eq!(not_reported(&values, "g1", 3), vec![1, 2]);
        values.insert(joined_key(1), json!({"generation": "g1", "connections": 2}));
        values.insert(joined_key(2), json!({"generation": "g0", "connections": 2}));
        assert_eq!(not_reported(&values, "g1", 3), vec![2]);
        values.insert(done_key(1), json!({"generation": "g1", "records": 10}));
        assert_eq!(pending_shares(&values, &plan), vec![2]);
        assert!(handed_back(&values, &plan).is_empty());
        // a done mark of an older generation does not count
        values.insert(done_key(2), json!({"generation": "g0", "records": 3}));
        assert_eq!(pending_shares(&values, &plan), vec![2]);
        values.insert(done_key(2), json!({"generation": "g1", "records": 0, "handed_back": true}));
        assert!(pending_shares(&values, &plan).is_empty());
        assert_eq!(handed_back(&values, &plan), vec![2]);
    }
}
