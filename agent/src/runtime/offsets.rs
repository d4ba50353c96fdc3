//! Source offset tracking: which offsets may be committed given the order in which Kafka acknowledged records.
//!
//! Invariant: a committed offset never moves past a record Kafka has not acknowledged. Acks may arrive out of
//! order (different partitions, retries), so the tracker only advances through the contiguous acknowledged prefix
//! of everything the task produced, in poll order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use sluice_connectors::record::partition_key;
use sluice_proto::agent::SourceOffset;

type Partition = serde_json::Map<String, serde_json::Value>;

struct PendingRecord {
    acked: bool,
    /// `None` for records without an offset (nothing to commit for them, but they still hold back later ones).
    position: Option<(Arc<str>, serde_json::Value)>,
}

/// Tracks produced records by sequence number and coalesces committable offsets per source partition.
#[derive(Default)]
pub(crate) struct SourceOffsetTracker {
    /// Sequence number of `pending.front()`.
    base_seq: u64,
    pending: VecDeque<PendingRecord>,
    /// Latest offset per partition (canonical JSON) whose record and all earlier records were acknowledged.
    committable: BTreeMap<Arc<str>, serde_json::Value>,
    /// Records of a batch share one `Arc` partition; caching its canonical key avoids re-serializing per record.
    last_partition: Option<(Arc<Partition>, Arc<str>)>,
}

impl SourceOffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the next produced record and returns its sequence number (the delivery opaque).
    pub fn track(&mut self, partition: &Arc<Partition>, offset: serde_json::Value) -> u64 {
        let seq = self.base_seq + self.pending.len() as u64;
        let position =
            if offset.is_null() && partition.is_empty() { None } else { Some((self.key_of(partition), offset)) };
        self.pending.push_back(PendingRecord { acked: false, position });
        seq
    }

    fn key_of(&mut self, partition: &Arc<Partition>) -> Arc<str> {
        if let Some((cached, key)) = &self.last_partition
            && (Arc::ptr_eq(cached, partition) || **cached == **partition)
        {
            return key.clone();
        }
        let key: Arc<str> = partition_key(partition).into();
        self.last_partition = Some((partition.clone(), key.clone()));
        key
    }

    /// The source offset of a tracked record that is not acknowledged yet (for error reports).
    pub fn offset(&self, seq: u64) -> Option<&serde_json::Value> {
        let index = seq.checked_sub(self.base_seq)?;
        self.pending.get(usize::try_from(index).ok()?)?.position.as_ref().map(|(_, offset)| offset)
    }

    /// Marks a record acknowledged and advances the committable offsets through the acknowledged prefix.
    /// Unknown or repeated sequence numbers are ignored.
    pub fn ack(&mut self, seq: u64) {
        let Some(index) = seq.checked_sub(self.base_seq) else { return };
        let Some(record) = self.pending.get_mut(index as usize) else { return };
        record.acked = true;
        while self.pending.front().is_some_and(|r| r.acked) {
            if let Some(PendingRecord { position: Some((partition, offset)), .. }) = self.pending.pop_front() {
                self.committable.insert(partition, offset);
            }
            self.base_seq += 1;
        }
    }

    /// Whether acknowledged offsets wait to be taken.
    pub fn has_committable(&self) -> bool {
        !self.committable.is_empty()
    }

    /// Records produced but not yet acknowledged (including acknowledged ones stuck behind an unacknowledged one).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Takes the coalesced offsets acknowledged since the previous call, as the agent protocol carries them.
    pub fn take_committable(&mut self) -> Vec<SourceOffset> {
        std::mem::take(&mut self.committable)
            .into_iter()
            .map(|(partition, offset)| SourceOffset {
                partition_json: partition.to_string(),
                // An explicit null offset means "remove", which the protocol spells as an empty string.
                offset_json: if offset.is_null() { String::new() } else { offset.to_string() },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn partition(name: &str) -> Arc<Partition> {
        let serde_json::Value::Object(map) = json!({ "filename": name }) else { unreachable!() };
        Arc::new(map)
    }

    fn offsets(tracker: &mut SourceOffsetTracker) -> Vec<(String, String)> {
        tracker.take_committable().into_iter().map(|o| (o.partition_json, o.offset_json)).collect()
    }

    #[test]
    fn in_order_acks_commit_the_latest_offset() {
        let mut t = SourceOffsetTracker::new();
        let p = partition("/tmp/a");
        let s0 = t.track(&p, json!({"position": 10}));
        let s1 = t.track(&p, json!({"position": 20}));
        t.ack(s0);
        t.ack(s1);
        assert_eq!(offsets(&mut t), vec![(r#"{"filename":"/tmp/a"}"#.into(), r#"{"position":20}"#.into())]);
        assert_eq!(t.in_flight(), 0);
        assert!(offsets(&mut t).is_empty(), "taken offsets are not reported twice");
    }

    #[test]
    fn out_of_order_acks_advance_only_through_the_contiguous_prefix() {
        let mut t = SourceOffsetTracker::new();
        let p = partition("/tmp/a");
        let seqs: Vec<u64> = (1..=4).map(|i| t.track(&p, json!({ "position": i }))).collect();
        t.ack(seqs[1]);
        t.ack(seqs[3]);
        assert!(offsets(&mut t).is_empty(), "record 1 is unacked, nothing may be committed");
        assert_eq!(t.in_flight(), 4);
        t.ack(seqs[0]);
        assert_eq!(offsets(&mut t), vec![(r#"{"filename":"/tmp/a"}"#.into(), r#"{"position":2}"#.into())]);
        t.ack(seqs[2]);
        assert_eq!(offsets(&mut t), vec![(r#"{"filename":"/tmp/a"}"#.into(), r#"{"position":4}"#.into())]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn an_unacked_record_holds_back_other_partitions_too() {
        let mut t = SourceOffsetTracker::new();
        let a = partition("/a");
        let b = partition("/b");
        let sa = t.track(&a, json!({"position": 1}));
        let sb = t.track(&b, json!({"position": 5}));
        t.ack(sb);
        assert!(offsets(&mut t).is_empty());
        t.ack(sa);
        assert_eq!(
            offsets(&mut t),
            vec![
                (r#"{"filename":"/a"}"#.into(), r#"{"position":1}"#.into()),
                (r#"{"filename":"/b"}"#.into(), r#"{"position":5}"#.into()),
            ]
        );
    }

    #[test]
    fn partition_keys_are_canonical() {
        let mut t = SourceOffsetTracker::new();
        let serde_json::Value::Object(map) = json!({"z": 1, "a": 2}) else { unreachable!() };
        let s = t.track(&Arc::new(map), json!({"pos": 1}));
        t.ack(s);
        assert_eq!(offsets(&mut t), vec![(r#"{"a":2,"z":1}"#.into(), r#"{"pos":1}"#.into())]);
    }

    #[test]
    fn duplicate_and_unknown_acks_are_ignored() {
        let mut t = SourceOffsetTracker::new();
        let p = partition("/a");
        let s0 = t.track(&p, json!(1));
        t.ack(s0);
        t.ack(s0);
        t.ack(99);
        let s1 = t.track(&p, json!(2));
        assert_eq!(s1, s0 + 1);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(offsets(&mut t), vec![(r#"{"filename":"/a"}"#.into(), "1".into())]);
    }

    #[test]
    fn null_offset_is_reported_as_removed() {
        let mut t = SourceOffsetTracker::new();
        let s = t.track(&partition("/a"), serde_json::Value::Null);
        t.ack(s);
        assert_eq!(offsets(&mut t), vec![(r#"{"filename":"/a"}"#.into(), String::new())]);
    }
}
