//! The schema history: each captured table's structure from a binlog position on, so that a row event is decoded
//! with the structure in force where it was written, also after a restart with a backlog that spans `ALTER TABLE`.
//!
//! Kept where Debezium keeps it, in the Kafka topic `schema.history.internal.kafka.topic` (one partition, infinite
//! retention, created if missing) on `schema.history.internal.kafka.bootstrap.servers`, so existing configs run
//! unchanged and the history lives next to the data it describes. A record is Debezium's history document
//! (`source`, `position`, `ts_ms`, `databaseName`, `ddl`, `tableChanges`) plus a `sluice` member holding the
//! structures after the statement (parsed by [`crate::ddl`], else read from `information_schema`). Without the two
//! keys the history lives in memory only (a restart reads structures from the live database, as before).
//! A history written by Debezium itself has no `sluice` member and is ignored.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_connect_api::error::ConnectError;

use crate::schema_change::TableStructure;

/// A binlog position (`mysql-bin.000003`, 1234). Binlog file names only grow, with a fixed-width number, so the
/// derived order is the binlog's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Position {
    pub file: String,
    pub pos: u64,
}

/// One table's structure after a statement (`None`: dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub db: String,
    pub table: String,
    pub structure: Option<TableStructure>,
}

/// What Sluice keeps of one statement (or of one table read by a snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub position: Position,
    pub tables: Vec<TableEntry>,
}

/// The history of this task: entries in the order they were recorded, and where they are kept.
pub struct SchemaHistory {
    entries: Vec<HistoryEntry>,
    kafka: Option<KafkaHistory>,
}

struct KafkaHistory {
    topic: String,
    server: String,
    producer: FutureProducer,
}

fn kafka_error(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Other(format!("schema history: {what}: {e}"))
}

impl SchemaHistory {
    /// A history kept in memory only.
    pub fn in_memory() -> Self {
        SchemaHistory { entries: Vec::new(), kafka: None }
    }

    /// Opens the history topic (creating it if missing) and reads it back.
    pub async fn open(bootstrap: &str, topic: &str, server: &str) -> Result<Self, ConnectError> {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", bootstrap).create().map_err(|e| kafka_error("admin", e))?;
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "delete")
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
        let results = admin
            .create_topics([&new], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))))
            .await
            .map_err(|e| kafka_error(&format!("creating topic {topic}"), e))?;
        for r in results {
            if let Err((_, code)) = r
                && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
            {
                return Err(kafka_error(&format!("creating topic {topic}"), code));
            }
        }
        let entries = {
            let (bootstrap, topic, server) = (bootstrap.to_string(), topic.to_string(), server.to_string());
            tokio::task::spawn_blocking(move || read_all(&bootstrap, &topic, &server))
                .await
                .map_err(|e| kafka_error("reading", e))??
        };
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| kafka_error("producer", e))?;
        tracing::info!(topic, entries = entries.len(), "schema history read");
        Ok(SchemaHistory {
            entries,
            kafka: Some(KafkaHistory { topic: topic.to_string(), server: server.to_string(), producer }),
        })
    }

    /// Records an entry; with Kafka, returns once the broker has it (as Debezium, before the statement's events
    /// are handed on).
    pub async fn record(
        &mut self,
        entry: HistoryEntry,
        offset: &serde_json::Value,
        database: &str,
        ddl: &str,
    ) -> Result<(), ConnectError> {
        if let Some(k) = &self.kafka {
            let doc = serde_json::json!({
                "source": {"server": k.server},
                "position": offset,
                "ts_ms": crate::envelope::now_ns() / 1_000_000,
                "databaseName": database,
                "ddl": ddl,
                "tableChanges": [],
                "sluice": entry,
            })
            .to_string();
            let record = FutureRecord::<(), str>::to(&k.topic).partition(0).payload(&doc);
            k.producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| kafka_error(&format!("writing to {}", k.topic), e))?;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// The structures in force at `at`: per table, the last entry at or before it (`None` = dropped).
    pub fn structures_at(&self, at: &Position) -> Vec<&TableEntry> {
        let mut latest: std::collections::HashMap<(&str, &str), &TableEntry> = std::collections::HashMap::new();
        for e in self.entries.iter().filter(|e| &e.position <= at) {
            for t in &e.tables {
                latest.insert((t.db.as_str(), t.table.as_str()), t);
            }
        }
        latest.into_values().collect()
    }

    /// The entry recorded for the statement at `at` by an earlier run, if any (the last one).
    pub fn entry_at(&self, at: &Position) -> Option<&HistoryEntry> {
        self.entries.iter().rev().find(|e| &e.position == at)
    }

    pub fn is_persistent(&self) -> bool {
        self.kafka.is_some()
    }
}

/// Reads every record of the topic's partition 0 (up to its end when called), keeping Sluice's entries of `server`.
fn read_all(bootstrap: &str, topic: &str, server: &str) -> Result<Vec<HistoryEntry>, ConnectError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("sluice-schema-history-{server}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| kafka_error("consumer", e))?;
    let (low, high) =
        consumer.fetch_watermarks(topic, 0, Duration::from_secs(30)).map_err(|e| kafka_error("watermarks", e))?;
    let mut out = Vec::new();
    if high <= low {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(|e| kafka_error("assign", e))?;
    consumer.assign(&tpl).map_err(|e| kafka_error("assign", e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut next = low;
    while next < high {
        if std::time::Instant::now() > deadline {
            return Err(kafka_error(topic, format!("timed out reading the history (at offset {next} of {high})")));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(kafka_error(&format!("reading {topic}"), e)),
            Some(Ok(m)) => {
                next = m.offset() + 1;
                let Some(payload) = m.payload() else { continue };
                let Ok(doc) = serde_json::from_slice::<serde_json::Value>(payload) else { continue };
                if doc["source"]["server"].as_str() != Some(server) {
                    continue;
                }
                if let Some(entry) =
                    doc.get("sluice").and_then(|e| serde_json::from_value::<HistoryEntry>(e.clone()).ok())
                {
                    out.push(entry);
                }
            }
        }
    }
    Ok(out)
}
