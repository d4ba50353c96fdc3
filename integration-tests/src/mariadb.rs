//! MariaDB for the CDC tests: connection settings from the standard client variables (`deploy/local/mysql env`
//! prints them: MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_USER, MYSQL_PWD), SQL through the `mariadb` client, and a keyed
//! Kafka reader (CDC records are compared by key and value).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// A MariaDB server reachable over TCP.
#[derive(Debug, Clone)]
pub struct MariaDb {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl MariaDb {
    /// From MYSQL_HOST / MYSQL_TCP_PORT / MYSQL_USER / MYSQL_PWD; `None` when MYSQL_HOST is not set.
    pub fn from_env() -> Option<MariaDb> {
        let host = std::env::var("MYSQL_HOST").ok().filter(|h| !h.is_empty())?;
        Some(MariaDb {
            host,
            port: std::env::var("MYSQL_TCP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3306),
            user: std::env::var("MYSQL_USER").unwrap_or_else(|_| "root".into()),
            password: std::env::var("MYSQL_PWD").unwrap_or_default(),
        })
    }

    /// Runs SQL with the `mariadb` client; returns its tab-separated output (no column names).
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("mariadb")
            .args(["-h", &self.host, "-P", &self.port.to_string(), "-u", &self.user, "-N", "-B", "-e", sql])
            .env("MYSQL_PWD", &self.password)
            .output()
            .context("cannot run the mariadb client")?;
        if !out.status.success() {
            bail!("mariadb `{sql}` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The connection keys of a Debezium MySQL/MariaDB connector config.
    pub fn connector_keys(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("database.hostname".into(), self.host.clone().into());
        m.insert("database.port".into(), self.port.to_string().into());
        m.insert("database.user".into(), self.user.clone().into());
        m.insert("database.password".into(), self.password.clone().into());
        m
    }
}

/// A record read back with its key (text; `None` for a null key or value).
#[derive(Debug, Clone)]
pub struct KeyedRecord {
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Every record of every partition of `topic` from the beginning up to the high watermarks (empty if the topic does
/// not exist).
pub async fn read_keyed(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<KeyedRecord>> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "sluice-integration-tests-cdc-reader")
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
                    out.push(KeyedRecord { key: text(m.key()), value: text(m.payload()), headers });
                }
            }
        }
        Ok(out)
    })
    .await?
}
