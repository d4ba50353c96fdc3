//! MariaDB for the CDC tests: connection settings from the standard client variables (`deploy/local/mysql env`
//! prints them: MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_USER, MYSQL_PWD), SQL through the `mariadb` client, and a keyed
//! Kafka reader (CDC records are compared by key and value).

use std::process::Command;

use anyhow::{Context, bail};

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

pub use crate::kafka::{KeyedRecord, read_keyed};
