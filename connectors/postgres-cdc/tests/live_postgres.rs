//! The task against the real PostgreSQL of `deploy/local/postgres` (`SLUICE_TEST_PG`, e.g.
//! `postgres://sluice:sluice@127.0.0.1:55432/sluice`); skipped, saying so, when it is not set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SourceRecord, partition_key};
use sluice_connector_postgres_cdc::task::PostgresCdcTask;
use sluice_converters::converter::{Converter, JsonConverter};
use tokio_postgres::NoTls;

fn pg_url() -> Option<String> {
    std::env::var("SLUICE_TEST_PG").ok().filter(|s| !s.is_empty())
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// The port of `SLUICE_TEST_PG` (`postgres://user:password@host:port/db`).
fn pg_port() -> String {
    let url = pg_url().unwrap_or_default();
    let host_port = url.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    host_port.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_else(|| "5432".into())
}

fn config(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
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
    for (k, v) in extra {
        c.insert(k.to_string(), v.to_string());
    }
    c
}

fn json(r: &SourceRecord) -> (String, Option<String>) {
    let c = JsonConverter::new(true);
    let mut k = Vec::new();
    c.from_connect(&r.topic, r.key_schema.as_deref(), &r.key, &mut k).unwrap();
    let mut v = Vec::new();
    let some = c.from_connect(&r.topic, r.value_schema.as_deref(), &r.value, &mut v).unwrap();
    (String::from_utf8(k).unwrap(), some.then(|| String::from_utf8(v).unwrap()))
}

async fn poll_n(task: &mut PostgresCdcTask, n: usize, timeout: Duration) -> Vec<SourceRecord> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(task.poll().await.expect("poll"));
    }
    out
}

fn payload(v: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(v).unwrap()["payload"].clone()
}

async fn cleanup(c: &tokio_postgres::Client, name: &str) {
    let _ = c
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await;
    let _ = c
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {name}_pub; DROP TABLE IF EXISTS {name}_orders, {name}_types, {name}_late"
        ))
        .await;
}

#[tokio::test]
async fn snapshot_stream_commit_restart() {
    let Some(url) = pg_url() else {
        eprintln!(
            "SLUICE_TEST_PG not set: skipping (run deploy/local/postgres up; eval \"$(deploy/local/postgres env)\")"
        );
        return;
    };
    let name = format!("sl_cdc_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!(
        "CREATE TABLE {name}_orders (id int PRIMARY KEY, item text NOT NULL, amount numeric(10,2), updated timestamptz);
         INSERT INTO {name}_orders VALUES (1, 'apple', 1.50, '2026-01-02 03:04:05+00');"
    ))
    .await
    .unwrap();

    let cfg = config(&name, &[]);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext { connector: name.clone(), task: 0, config: cfg.clone(), offsets: Arc::default() })
        .await
        .unwrap();
    let snap = poll_n(&mut task, 1, Duration::from_secs(30)).await;
    assert_eq!(snap.len(), 1, "snapshot row");
    let (k, v) = json(&snap[0]);
    assert_eq!(
        k,
        format!(
            "{{\"schema\":{{\"type\":\"struct\",\"fields\":[{{\"type\":\"int32\",\"optional\":false,\"field\":\"id\"}}],\"optional\":false,\"name\":\"{name}.public.{name}_orders.Key\"}},\"payload\":{{\"id\":1}}}}"
        )
    );
    let p = payload(v.as_deref().unwrap());
    assert_eq!(p["op"], "r");
    assert_eq!(p["source"]["snapshot"], "last");
    assert_eq!(p["after"]["amount"], "AJY=");
    assert_eq!(p["after"]["updated"], "2026-01-02T03:04:05.000000Z");
    assert_eq!(snap[0].source_offset["snapshot_completed"], true);

    // One transaction each, as autocommit statements.
    for sql in [
        format!("INSERT INTO {name}_orders VALUES (2, 'pear', 2.25, '2026-01-02 03:04:06+00')"),
        format!("UPDATE {name}_orders SET amount = 3.00 WHERE id = 2"),
        format!("DELETE FROM {name}_orders WHERE id = 2"),
    ] {
        db.batch_execute(&sql).await.unwrap();
    }
    let recs = poll_n(&mut task, 4, Duration::from_secs(30)).await;
    assert_eq!(recs.len(), 4);
    let ops: Vec<_> = recs.iter().map(|r| json(r).1.map(|v| payload(&v)["op"].as_str().unwrap().to_string())).collect();
    assert_eq!(ops, [Some("c".into()), Some("u".into()), Some("d".into()), None]);
    let (_, v) = json(&recs[0]);
    let v = v.unwrap();
    // The schema of the captured Debezium example, with our names.
    let expected_schema = include_str!("captured_orders_schema.json")
        .replace("dbserver1.public.orders", &format!("{name}.public.{name}_orders"));
    let got: serde_json::Value = serde_json::from_str(&v).unwrap();
    let want: serde_json::Value = serde_json::from_str(&expected_schema).unwrap();
    assert_eq!(got["schema"], want, "envelope schema as Debezium's");
    assert_eq!(payload(&v)["after"]["amount"], "AOE=");
    assert_eq!(payload(&json(&recs[1]).1.unwrap())["after"]["amount"], "ASw=");
    let d = payload(&json(&recs[2]).1.unwrap());
    assert_eq!(d["before"], serde_json::json!({"id": 2, "item": "", "amount": null, "updated": null}));
    assert_eq!(recs[0].headers.len(), 4);

    // Acknowledge everything: the slot's confirmed position moves to what was committed, never further.
    let last = recs.last().unwrap().source_offset.clone();
    let pkey = partition_key(&recs[0].source_partition);
    let mut committed = BTreeMap::new();
    committed.insert(pkey.clone(), last.clone());
    task.commit(&committed).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let confirmed: String = db
        .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&name])
        .await
        .unwrap()
        .get(0);
    let lsn_commit = last["lsn_commit"].as_u64().unwrap();
    assert_eq!(sluice_connector_postgres_cdc::repl::parse_lsn(&confirmed), Some(lsn_commit));
    task.stop().await.unwrap();

    // Restart from the committed offset: only what follows, nothing repeated.
    db.batch_execute(&format!("INSERT INTO {name}_orders VALUES (3, 'fig', 0, NULL)")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut offsets = BTreeMap::new();
    offsets.insert(pkey, last);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext { connector: name.clone(), task: 0, config: cfg, offsets: Arc::new(offsets) })
        .await
        .unwrap();
    let recs = poll_n(&mut task, 2, Duration::from_secs(10)).await;
    assert_eq!(
        recs.len(),
        1,
        "only the new row after restart: {:?}",
        recs.iter().map(|r| json(r).1).collect::<Vec<_>>()
    );
    let p = payload(&json(&recs[0]).1.unwrap());
    assert_eq!(p["after"]["id"], 3);
    assert_eq!(p["after"]["amount"], "AA==");

    // The database drops the replication connection: the task reconnects (backoff) and resumes after what it
    // already handed over, without a new snapshot and without repeats.
    let killed: bool = db
        .query_one("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1", &[&name])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    db.batch_execute(&format!("INSERT INTO {name}_orders VALUES (4, 'kiwi', 1, NULL)")).await.unwrap();
    let recs = poll_n(&mut task, 2, Duration::from_secs(15)).await;
    let ids: Vec<_> = recs.iter().map(|r| payload(&json(r).1.unwrap())["after"]["id"].clone()).collect();
    assert_eq!(ids, [serde_json::json!(4)], "only the new row after the reconnect");
    task.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
}

async fn first_error(task: &mut PostgresCdcTask) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Err(e) = task.poll().await {
            return e.to_string();
        }
    }
    panic!("no error within 30 s");
}

#[tokio::test]
async fn dropped_slot_and_missing_privileges_fail_with_advice() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcerr_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!("CREATE TABLE {name}_orders (id int PRIMARY KEY)")).await.unwrap();

    // Streaming offsets but the slot is gone: changes were lost; say what to do.
    let partition = serde_json::json!({"server": name}).as_object().cloned().unwrap();
    let mut offsets = BTreeMap::new();
    offsets.insert(
        partition_key(&partition),
        serde_json::json!({"lsn_proc": 1, "lsn_commit": 1, "lsn": 1, "txId": 1, "ts_usec": 1}),
    );
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        connector: name.clone(),
        task: 0,
        config: config(&name, &[]),
        offsets: Arc::new(offsets),
    })
    .await
    .unwrap();
    let e = first_error(&mut task).await;
    assert!(e.contains("does not exist") && e.contains("offsets"), "{e}");
    task.stop().await.unwrap();

    // A user without REPLICATION.
    let role = format!("{name}_norepl");
    db.batch_execute(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'pw' NOREPLICATION; GRANT SELECT ON {name}_orders TO {role};"
    ))
    .await
    .unwrap();
    let mut task = PostgresCdcTask::default();
    let cfg = config(
        &name,
        &[("database.user", role.as_str()), ("database.password", "pw"), ("publication.autocreate.mode", "disabled")],
    );
    // The publication exists (created by the first part).
    task.start(SourceTaskContext { connector: name.clone(), task: 0, config: cfg, offsets: Arc::default() })
        .await
        .unwrap();
    let e = first_error(&mut task).await;
    assert!(e.contains("REPLICATION"), "{e}");
    task.stop().await.unwrap();
    let _ = db.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
    cleanup(&db, &name).await;
}
