//! Helpers for the PostgreSQL CDC tests: the server of `deploy/local/postgres` (libpq variables PGHOST, PGPORT,
//! PGUSER, PGPASSWORD, PGDATABASE, as `deploy/local/postgres env` prints them), SQL through `psql`, and reading a
//! topic back with keys and headers.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// The PostgreSQL server to test against.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Postgres {
    /// From the libpq variables; `None` when PGHOST is not set.
    pub fn from_env() -> Option<Postgres> {
        let var = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
        std::env::var("PGHOST").ok().filter(|h| !h.is_empty())?;
        Some(Postgres {
            host: var("PGHOST", "127.0.0.1"),
            port: var("PGPORT", "5432"),
            user: var("PGUSER", "sluice"),
            password: var("PGPASSWORD", "sluice"),
            database: var("PGDATABASE", "sluice"),
        })
    }

    /// Runs SQL (several statements: one implicit transaction per statement) with psql; returns its output.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
                "-p",
                &self.port,
                "-U",
                &self.user,
                "-d",
                &self.database,
            ])
            .env("PGPASSWORD", &self.password)
            .arg("-c")
            .arg(sql)
            .output()?;
        if !out.status.success() {
            bail!("psql failed: {}\n{sql}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a script (each statement its own transaction unless the script says BEGIN/COMMIT).
    pub fn script(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
                "-p",
                &self.port,
                "-U",
                &self.user,
                "-d",
                &self.database,
            ])
            .env("PGPASSWORD", &self.password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(sql.as_bytes())?;
                child.wait_with_output()
            })?;
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `database.*` keys of a Debezium PostgreSQL connector config.
    pub fn connector_keys(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("database.hostname", &self.host),
            ("database.port", &self.port),
            ("database.user", &self.user),
            ("database.password", &self.password),
            ("database.dbname", &self.database),
        ] {
            m.insert(k.to_string(), serde_json::Value::String(v.clone()));
        }
        m
    }

    /// Drops a replication slot if it exists and is not in use.
    pub fn drop_slot(&self, slot: &str) {
        let _ = self.sql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
        ));
    }
}

/// A record read back (text; `None` for a null key or value) with its headers.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Every record of `topic` from the beginning up to the high watermarks, partition by partition (empty if the topic
/// does not exist).
pub async fn read_topic(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<TopicRecord>> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "sluice-integration-tests-pg-reader")
            .set("enable.auto.commit", "false")
            .create()?;
        let timeout = Duration::from_secs(30);
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut out = Vec::new();
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
            if high <= low {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition, Offset::Offset(low))?;
            consumer.assign(&tpl)?;
            let start = Instant::now();
            let mut next = low;
            while next < high {
                if start.elapsed() > timeout {
                    bail!("read only up to offset {next} of {topic}-{partition} (high watermark {high})");
                }
                if let Some(m) = consumer.poll(Duration::from_millis(500)) {
                    let m = m?;
                    next = m.offset() + 1;
                    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    let headers = m
                        .headers()
                        .map(|h| {
                            use rdkafka::message::Headers;
                            h.iter().map(|h| (h.key.to_string(), text(h.value).unwrap_or_default())).collect()
                        })
                        .unwrap_or_default();
                    out.push(TopicRecord { key: text(m.key()), value: text(m.payload()), headers });
                }
            }
        }
        Ok(out)
    })
    .await?
}

/// Counts records per topic.
pub async fn count_topics(bootstrap: &str, topics: &[String]) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut m = BTreeMap::new();
    for t in topics {
        m.insert(t.clone(), read_topic(bootstrap, t).await?.len());
    }
    Ok(m)
}
