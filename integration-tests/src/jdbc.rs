//! Helpers for the JDBC connector tests: keyed records into Kafka, and rows read back from the real PostgreSQL
//! and MariaDB of `deploy/local/postgres|mysql` (`SLUICE_TEST_PG`, `SLUICE_TEST_MYSQL`).

use std::time::Duration;

use anyhow::Context;
use mysql_async::prelude::Queryable;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Postgres,
    MariaDb,
}

impl Db {
    fn var(self) -> &'static str {
        match self {
            Db::Postgres => "SLUICE_TEST_PG",
            Db::MariaDb => "SLUICE_TEST_MYSQL",
        }
    }

    /// The client URL (`postgres://...`, `mysql://...`), if the database is configured.
    pub fn url(self) -> Option<String> {
        std::env::var(self.var()).ok().filter(|s| !s.is_empty())
    }

    /// `(jdbc url, user, password)` for connector configs.
    pub fn jdbc(self) -> anyhow::Result<(String, String, String)> {
        let url = self.url().with_context(|| format!("{} unset", self.var()))?;
        let rest = url.split_once("://").context("url")?.1;
        let (cred, hostdb) = rest.rsplit_once('@').context("url credentials")?;
        let (user, password) = cred.split_once(':').context("url password")?;
        let scheme = if self == Db::Postgres { "postgresql" } else { "mariadb" };
        Ok((format!("jdbc:{scheme}://{hostdb}"), user.to_string(), password.to_string()))
    }

    /// Quotes an identifier.
    pub fn q(self, name: &str) -> String {
        match self {
            Db::Postgres => format!("\"{name}\""),
            Db::MariaDb => format!("`{name}`"),
        }
    }

    /// Runs statements (no result).
    pub async fn execute(self, sql: &str) -> anyhow::Result<()> {
        let url = self.url().context("database unset")?;
        match self {
            Db::Postgres => {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client.batch_execute(sql).await.with_context(|| sql.to_string())?;
            }
            Db::MariaDb => {
                let pool = mysql_async::Pool::new(url.as_str());
                let mut conn = pool.get_conn().await?;
                conn.query_drop(sql).await.with_context(|| sql.to_string())?;
                drop(conn);
                pool.disconnect().await.ok();
            }
        }
        Ok(())
    }

    /// Rows as text (NULL as `None`); an error (e.g. a missing table) as `Err`.
    pub async fn rows(self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let url = self.url().context("database unset")?;
        match self {
            Db::Postgres => {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                let rows = client.simple_query(sql).await.with_context(|| sql.to_string())?;
                Ok(rows
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                        }
                        _ => None,
                    })
                    .collect())
            }
            Db::MariaDb => {
                let pool = mysql_async::Pool::new(url.as_str());
                let mut conn = pool.get_conn().await?;
                let rows: Vec<mysql_async::Row> = conn.query(sql).await.with_context(|| sql.to_string())?;
                drop(conn);
                pool.disconnect().await.ok();
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match r.as_ref(i) {
                                None | Some(mysql_async::Value::NULL) => None,
                                Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                                Some(other) => Some(other.as_sql(true).trim_matches('\'').to_string()),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }
}

/// Writes keyed records (`None` value = tombstone) to partition 0 of `topic`, in order.
pub async fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    records: &[(Option<String>, Option<String>)],
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .context("cannot create a Kafka producer")?;
    let mut pending = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut r = FutureRecord::<str, str>::to(topic).partition(0);
        if let Some(k) = key {
            r = r.key(k.as_str());
        }
        if let Some(v) = value {
            r = r.payload(v.as_str());
        }
        pending.push(producer.send_result(r).map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?);
    }
    for p in pending {
        p.await.context("producer dropped")?.map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    }
    let _ = Duration::from_secs(0);
    Ok(())
}
