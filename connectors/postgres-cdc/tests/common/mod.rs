//! Helpers shared by this crate's tests against the real PostgreSQL of `deploy/local/postgres` (`SLUICE_TEST_PG`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use tokio_postgres::NoTls;

pub fn pg_url() -> Option<String> {
    std::env::var("SLUICE_TEST_PG").ok().filter(|s| !s.is_empty())
}

pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// The port of `SLUICE_TEST_PG` (`postgres://user:password@host:port/db`).
pub fn pg_port() -> String {
    let url = pg_url().unwrap_or_default();
    let host_port = url.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    host_port.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_else(|| "5432".into())
}

pub fn config(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let port = pg_port();
    let mut c: BTreeMap<String, String> = [
        ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "sluice"),
        ("database.password", "sluice"),
        ("database.dbname", "sluice"),
        ("plugin.name", "pgoutput"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    c.insert("topic.prefix".into(), name.into());
    c.insert("slot.name".into(), name.into());
    c.insert("publication.name".into(), format!("{name}_pub"));
    c.insert("publication.autocreate.mode".into(), "filtered".into());
    c.insert("table.include.list".into(), format!("public\\.{name}_.*"));
    c.insert("poll.interval.ms".into(), "100".into());
    // Logical decoding messages are not filtered by publication: every slot gets those that the other tests of
    // this file emit at the same time. Tests that do not want them leave them out.
    if !extra.iter().any(|(k, _)| k.starts_with("message.prefix.")) {
        c.insert("message.prefix.exclude.list".into(), ".*".into());
    }
    for (k, v) in extra {
        c.insert(k.to_string(), v.to_string());
    }
    c
}
