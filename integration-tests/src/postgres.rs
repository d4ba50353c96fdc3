//! Helpers for the PostgreSQL CDC tests: the server of `deploy/local/postgres` (libpq variables PGHOST, PGPORT,
//! PGUSER, PGPASSWORD, PGDATABASE, as `deploy/local/postgres env` prints them), SQL through `psql`, and reading a
//! topic back with keys and headers.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::bail;

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

/// A record read back with key and headers (the shared reader of `crate::kafka`).
pub use crate::kafka::{KeyedRecord as TopicRecord, read_keyed as read_topic};

/// Counts records per topic.
pub async fn count_topics(bootstrap: &str, topics: &[String]) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut m = BTreeMap::new();
    for t in topics {
        m.insert(t.clone(), read_topic(bootstrap, t).await?.len());
    }
    Ok(m)
}
