//! Offsets of sink connectors. They live where Kafka Connect keeps them, in the Kafka consumer group
//! `connect-<connector>`, so the control plane reads and changes them with librdkafka: committed offsets through a
//! consumer that never joins the group, commits as a "simple" (generation-less) consumer, which the broker accepts
//! only while the group has no members (the connector is stopped), and a reset by deleting the group.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// How long a change waits for the members of a stopped sink's group to go. Agents' sink consumers are static
/// members (`group.instance.id`), which do not leave the group when they close: the coordinator drops them after
/// their `session.timeout.ms` (10 s), so a change right after a stop takes up to that long.
const BUSY_GROUP_WAIT: Duration = Duration::from_secs(20);

/// One committed position: topic, partition, offset (the next record to read).
pub type SinkPosition = (String, i32, i64);

/// Which topics a sink reads: its `topics` list and its `topics.regex`.
#[derive(Debug, Clone, Default)]
pub struct SinkTopics {
    pub topics: Vec<String>,
    pub regex: Option<String>,
}

/// Access to the consumer groups of sink connectors.
#[async_trait]
pub trait SinkOffsets: Send + Sync + 'static {
    /// Committed offsets of `group` on the partitions of `topics`, sorted.
    async fn committed(&self, group: &str, topics: &SinkTopics) -> Result<Vec<SinkPosition>, String>;
    /// Commits `set` and removes `remove` (topic, partition) from `group`, which must have no members.
    async fn alter(
        &self,
        group: &str,
        topics: &SinkTopics,
        set: Vec<SinkPosition>,
        remove: Vec<(String, i32)>,
    ) -> Result<(), String>;
    /// Deletes `group` (all its offsets); a group that does not exist is fine.
    async fn delete_group(&self, group: &str) -> Result<(), String>;
}

/// [`SinkOffsets`] on a Kafka cluster.
pub struct KafkaSinkOffsets {
    bootstrap: String,
    timeout: Duration,
}

impl KafkaSinkOffsets {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaSinkOffsets { bootstrap: bootstrap.into(), timeout: Duration::from_secs(10) }
    }

    fn consumer(&self, group: &str) -> Result<BaseConsumer, String> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("cannot create a Kafka client for {}: {e}", self.bootstrap))
    }

    /// Every partition of the sink's topics that exists in the cluster.
    fn partitions(&self, consumer: &BaseConsumer, topics: &SinkTopics) -> Result<TopicPartitionList, String> {
        let regex = match &topics.regex {
            Some(r) => Some(regex::Regex::new(&format!("^(?:{r})$")).map_err(|e| format!("topics.regex: {e}"))?),
            None => None,
        };
        let metadata = consumer
            .fetch_metadata(None, self.timeout)
            .map_err(|e| format!("cannot read topic metadata from Kafka: {e}"))?;
        let mut list = TopicPartitionList::new();
        for topic in metadata.topics() {
            let wanted = topics.topics.iter().any(|t| t == topic.name())
                || regex.as_ref().is_some_and(|r| r.is_match(topic.name()));
            if wanted {
                for partition in topic.partitions() {
                    list.add_partition(topic.name(), partition.id());
                }
            }
        }
        Ok(list)
    }

    fn committed_blocking(&self, group: &str, topics: &SinkTopics) -> Result<Vec<SinkPosition>, String> {
        let consumer = self.consumer(group)?;
        let partitions = self.partitions(&consumer, topics)?;
        if partitions.count() == 0 {
            return Ok(Vec::new());
        }
        let committed = consumer
            .committed_offsets(partitions, self.timeout)
            .map_err(|e| format!("cannot read the committed offsets of consumer group {group}: {e}"))?;
        let mut out: Vec<SinkPosition> = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
                _ => None,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn commit_blocking(&self, group: &str, positions: &[SinkPosition]) -> Result<(), String> {
        if positions.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer(group)?;
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in positions {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| format!("invalid offset {offset} for {topic}-{partition}: {e}"))?;
        }
        // A stopped sink task leaves the group within moments; until then the broker refuses generation-less commits.
        let deadline = std::time::Instant::now() + BUSY_GROUP_WAIT;
        loop {
            match consumer.commit(&list, CommitMode::Sync) {
                Ok(()) => break,
                Err(KafkaError::ConsumerCommit(
                    RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::RebalanceInProgress,
                )) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
                Err(KafkaError::ConsumerCommit(
                    RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::RebalanceInProgress,
                )) => {
                    return Err(format!(
                        "consumer group {group} still has active members; wait until the sink's tasks stopped"
                    ));
                }
                Err(e) => return Err(format!("cannot commit offsets to consumer group {group}: {e}")),
            }
        }
        // A commit's per-partition errors are reported in the list, not as the call's error.
        let errors: Vec<String> = list
            .elements()
            .iter()
            .filter_map(|e| e.error().err().map(|err| format!("{}-{}: {err}", e.topic(), e.partition())))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(format!("cannot commit offsets: {}", errors.join(", "))) }
    }

    async fn delete_group_async(&self, group: &str) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| format!("cannot create a Kafka admin client for {}: {e}", self.bootstrap))?;
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let deadline = tokio::time::Instant::now() + BUSY_GROUP_WAIT;
        'attempts: loop {
            let results = admin
                .delete_groups(&[group], &options)
                .await
                .map_err(|e| format!("cannot delete consumer group {group}: {e}"))?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                    Err((_, RDKafkaErrorCode::NonEmptyGroup)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue 'attempts;
                    }
                    Err((_, RDKafkaErrorCode::NonEmptyGroup)) => {
                        return Err(format!(
                            "consumer group {group} still has active members; wait until the sink's tasks stopped"
                        ));
                    }
                    Err((_, code)) => return Err(format!("cannot delete consumer group {group}: {code}")),
                }
            }
            return Ok(());
        }
    }
}

fn blocking_error(e: tokio::task::JoinError) -> String {
    format!("the Kafka client thread failed: {e}")
}

#[async_trait]
impl SinkOffsets for KafkaSinkOffsets {
    async fn committed(&self, group: &str, topics: &SinkTopics) -> Result<Vec<SinkPosition>, String> {
        let this = KafkaSinkOffsets { bootstrap: self.bootstrap.clone(), timeout: self.timeout };
        let (group, topics) = (group.to_string(), topics.clone());
        tokio::task::spawn_blocking(move || this.committed_blocking(&group, &topics)).await.map_err(blocking_error)?
    }

    async fn alter(
        &self,
        group: &str,
        topics: &SinkTopics,
        set: Vec<SinkPosition>,
        remove: Vec<(String, i32)>,
    ) -> Result<(), String> {
        let positions = if remove.is_empty() {
            set
        } else {
            // Kafka has no "forget one partition" commit: read everything, drop the group, commit what stays.
            let mut wanted = topics.clone();
            wanted.topics.extend(remove.iter().map(|(t, _)| t.clone()));
            wanted.topics.extend(set.iter().map(|(t, _, _)| t.clone()));
            let mut keep: Vec<SinkPosition> = self
                .committed(group, &wanted)
                .await?
                .into_iter()
                .filter(|(t, p, _)| !remove.iter().any(|(rt, rp)| rt == t && rp == p))
                .filter(|(t, p, _)| !set.iter().any(|(st, sp, _)| st == t && sp == p))
                .collect();
            self.delete_group(group).await?;
            keep.extend(set);
            keep
        };
        let this = KafkaSinkOffsets { bootstrap: self.bootstrap.clone(), timeout: self.timeout };
        let group = group.to_string();
        tokio::task::spawn_blocking(move || this.commit_blocking(&group, &positions)).await.map_err(blocking_error)?
    }

    async fn delete_group(&self, group: &str) -> Result<(), String> {
        self.delete_group_async(group).await
    }
}
