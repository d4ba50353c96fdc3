//! The task against the real PostgreSQL of `deploy/local/postgres` (`SLUICE_TEST_PG`, e.g.
//! `postgres://sluice:sluice@127.0.0.1:55432/sluice`); skipped, saying so, when it is not set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SourceRecord, partition_key};
use sluice_connector_postgres_cdc::task::PostgresCdcTask;
use sluice_converters::converter::{Converter, JsonConverter};
mod common;

use common::{admin, config, pg_url};

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
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg.clone(),
        offsets: Arc::default(),
    })
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
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::new(offsets),
    })
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
        shared: Default::default(),
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
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let e = first_error(&mut task).await;
    assert!(e.contains("REPLICATION"), "{e}");
    task.stop().await.unwrap();
    let _ = db.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
    cleanup(&db, &name).await;
}

/// `snapshot.max.threads=4`: a keyed table read in key ranges and a table without a key read in block ranges on
/// four connections sharing the slot's snapshot, while rows are inserted, updated and deleted. Every row is read
/// once by the snapshot or streamed once after it; replaying the events gives the table; one `first`, one `last`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshot_under_writes() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcpar_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_keyed, {name}_nokey, {name}_small")).await;
    db.batch_execute(&format!(
        "CREATE TABLE {name}_keyed (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {name}_keyed SELECT g, 0 FROM generate_series(1, 50000) g;
         CREATE TABLE {name}_nokey (n int, v int);
         INSERT INTO {name}_nokey SELECT g, 0 FROM generate_series(1, 30000) g;
         CREATE TABLE {name}_small (id int PRIMARY KEY);
         INSERT INTO {name}_small VALUES (1), (2), (3);"
    ))
    .await
    .unwrap();

    // Writes keep going while the task starts and snapshots: some land before the slot (snapshot), the rest after
    // (stream). Each statement is its own transaction.
    let writer = {
        let url = url.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let db = admin(&url).await;
            for i in 0..600i32 {
                let sql = match i % 3 {
                    0 => format!("INSERT INTO {name}_keyed VALUES ({}, 0)", 100_000 + i),
                    1 => format!("UPDATE {name}_keyed SET v = v + 1 WHERE id = {}", 1 + i * 83),
                    _ => format!("DELETE FROM {name}_keyed WHERE id = {}", 2 + i * 83),
                };
                db.batch_execute(&sql).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cfg =
        config(&name, &[("snapshot.max.threads", "4"), ("snapshot.fetch.size", "2000"), ("max.queue.size", "512")]);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let started = Instant::now();
    let mut snapshot_time = None;
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut writer = Some(writer);
    loop {
        let batch = task.poll().await.expect("poll");
        if snapshot_time.is_none() && batch.iter().any(|r| r.source_offset["snapshot_completed"] == true) {
            snapshot_time = Some(started.elapsed());
        }
        records.extend(batch);
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            writer.take().unwrap().await.unwrap();
            // A last marker row, then wait for it: everything before it was streamed.
            db.batch_execute(&format!("INSERT INTO {name}_small VALUES (999)")).await.unwrap();
        }
        let done = writer.is_none()
            && records.iter().any(|r| r.topic.ends_with("_small") && format!("{:?}", r.key).contains("Int32(999)"));
        if done || Instant::now() > deadline {
            break;
        }
    }
    task.stop().await.unwrap();

    // Replay per table and key (the no-key table by its `n`).
    let mut keyed: BTreeMap<i64, i64> = BTreeMap::new();
    let mut nokey: BTreeMap<i64, usize> = BTreeMap::new();
    let mut read_keys: BTreeMap<(String, i64), usize> = BTreeMap::new();
    let mut markers: Vec<String> = Vec::new();
    let mut table_markers: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut snapshot_over = false;
    let mut completed = 0;
    for r in &records {
        let Some(v) = json(r).1 else { continue }; // tombstones
        let p = payload(&v);
        let op = p["op"].as_str().unwrap().to_string();
        if op == "r" {
            assert!(!snapshot_over, "a snapshot record after streaming started");
            let m = p["source"]["snapshot"].as_str().unwrap().to_string();
            *table_markers.entry((p["source"]["table"].as_str().unwrap().to_string(), m.clone())).or_default() += 1;
            markers.push(m);
            if r.source_offset["snapshot_completed"] == true {
                completed += 1;
            }
        } else {
            snapshot_over = true;
            assert_eq!(p["source"]["snapshot"], "false");
        }
        let table = p["source"]["table"].as_str().unwrap().to_string();
        let row = if op == "d" { &p["before"] } else { &p["after"] };
        let id = row["id"].as_i64().or_else(|| row["n"].as_i64()).unwrap();
        if op == "r" {
            *read_keys.entry((table.clone(), id)).or_default() += 1;
        }
        if table.ends_with("_keyed") {
            match op.as_str() {
                "d" => {
                    assert!(keyed.remove(&id).is_some(), "delete of a row never seen: {id}");
                }
                "c" | "r" => {
                    assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_none(), "row {id} twice");
                }
                _ => {
                    assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_some(), "update of a row never seen: {id}");
                }
            }
        } else if table.ends_with("_nokey") {
            *nokey.entry(id).or_default() += 1;
        }
    }
    let doubled: Vec<_> = read_keys.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "rows read twice by the snapshot: {doubled:?}");
    assert_eq!(markers.iter().filter(|m| *m == "first").count(), 1, "one first");
    assert_eq!(markers.iter().filter(|m| *m == "last").count(), 1, "one last");
    assert_eq!(markers.first().map(String::as_str), Some("first"));
    assert_eq!(markers.last().map(String::as_str), Some("last"));
    assert_eq!(completed, 1, "snapshot_completed on the last snapshot record only");
    for t in ["_keyed", "_nokey", "_small"] {
        let n = |m: &str| table_markers.get(&(format!("{name}{t}"), m.to_string())).copied().unwrap_or(0);
        assert!(n("first_in_data_collection") + n("first") == 1, "{t}: one first row");
        assert!(n("last_in_data_collection") + n("last") == 1, "{t}: one last row");
    }
    assert_eq!(nokey.len(), 30000);
    assert!(nokey.values().all(|n| *n == 1));
    // The table as the database has it.
    let rows = db.query(&format!("SELECT id::int8, v::int8 FROM {name}_keyed"), &[]).await.unwrap();
    let want: BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(keyed.len(), want.len());
    assert!(keyed == want, "replayed events differ from the table");
    eprintln!(
        "parallel snapshot: {} snapshot records in {:?}, {} change events, checked in {:?}",
        markers.len(),
        snapshot_time,
        records.len() - markers.len(),
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_keyed, {name}_nokey, {name}_small")).await;
}

/// A task stopped in the middle of a parallel snapshot (as a crash would) restarts from an offset that says the
/// snapshot did not complete: like Debezium, it takes the whole snapshot again (new slot, new exported snapshot),
/// then streams from the new slot with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshot_interrupted_runs_again() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcparx_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}_keyed;
         CREATE TABLE {name}_keyed (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {name}_keyed SELECT g, 0 FROM generate_series(1, 30000) g;"
    ))
    .await
    .unwrap();
    let cfg =
        config(&name, &[("snapshot.max.threads", "4"), ("snapshot.fetch.size", "1000"), ("max.queue.size", "100")]);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg.clone(),
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let first = poll_n(&mut task, 3000, Duration::from_secs(60)).await;
    task.stop().await.unwrap();
    assert!(first.len() >= 3000 && first.len() < 30000, "stopped mid-snapshot: {}", first.len());
    let last = first.last().unwrap().source_offset.clone();
    assert_eq!(last["snapshot"], "INITIAL");
    assert_eq!(last["snapshot_completed"], false);
    db.batch_execute(&format!("INSERT INTO {name}_keyed VALUES (100001, 1)")).await.unwrap();

    let mut offsets = BTreeMap::new();
    offsets.insert(partition_key(&first[0].source_partition), last);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::new(offsets),
    })
    .await
    .unwrap();
    let again = poll_n(&mut task, 30001, Duration::from_secs(120)).await;
    assert_eq!(again.len(), 30001, "the whole snapshot again, with the row inserted meanwhile");
    assert_eq!(again.last().unwrap().source_offset["snapshot_completed"], true);
    db.batch_execute(&format!("INSERT INTO {name}_keyed VALUES (100002, 2)")).await.unwrap();
    let streamed = poll_n(&mut task, 1, Duration::from_secs(30)).await;
    assert_eq!(streamed.len(), 1);
    let p = payload(&json(&streamed[0]).1.unwrap());
    assert_eq!((p["op"].as_str(), p["after"]["id"].as_i64()), (Some("c"), Some(100002)));
    let mut ids: Vec<i64> =
        again.iter().map(|r| payload(&json(r).1.unwrap())["after"]["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30001);
    task.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_keyed")).await;
}

/// `snapshot.mode=always` with a slot that already exists (streaming offsets): the slot cannot export a snapshot,
/// so the first snapshot connection exports its own (`pg_export_snapshot()`) for the other three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshot_with_an_existing_slot() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcpare_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}_keyed;
         CREATE TABLE {name}_keyed (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {name}_keyed SELECT g, 0 FROM generate_series(1, 30000) g;"
    ))
    .await
    .unwrap();
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: config(&name, &[]),
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    assert_eq!(poll_n(&mut task, 30000, Duration::from_secs(60)).await.len(), 30000);
    db.batch_execute(&format!("INSERT INTO {name}_keyed VALUES (100001, 1)")).await.unwrap();
    let streamed = poll_n(&mut task, 1, Duration::from_secs(30)).await;
    task.stop().await.unwrap();
    let offset = streamed[0].source_offset.clone();
    assert!(offset.get("lsn_proc").is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut offsets = BTreeMap::new();
    offsets.insert(partition_key(&streamed[0].source_partition), offset);
    let cfg =
        config(&name, &[("snapshot.mode", "always"), ("snapshot.max.threads", "4"), ("snapshot.fetch.size", "1000")]);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::new(offsets),
    })
    .await
    .unwrap();
    let again = poll_n(&mut task, 30001, Duration::from_secs(120)).await;
    task.stop().await.unwrap();
    assert_eq!(again.len(), 30001);
    let mut ids: Vec<i64> =
        again.iter().map(|r| payload(&json(r).1.unwrap())["after"]["id"].as_i64().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30001, "every row once");
    let markers: Vec<String> = again
        .iter()
        .map(|r| payload(&json(r).1.unwrap())["source"]["snapshot"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(markers.first().map(String::as_str), Some("first"));
    assert_eq!(markers.last().map(String::as_str), Some("last"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_keyed")).await;
}

/// The `default` of field `field` in the `after` schema of a value (`None` when it has none).
fn after_default(v: &str, field: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(v).unwrap();
    let after = v["schema"]["fields"].as_array()?.iter().find(|f| f["field"] == "after")?.clone();
    let f = after["fields"].as_array()?.iter().find(|f| f["field"] == field)?.clone();
    f.get("default").cloned()
}

#[tokio::test]
async fn column_defaults_in_snapshot_and_after_alter() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcdef_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_defs")).await;
    db.batch_execute(&format!(
        "CREATE TABLE {name}_defs (id serial PRIMARY KEY, qty int NOT NULL DEFAULT 1, note varchar(10) DEFAULT 'n/a', \
           at timestamptz DEFAULT now(), price numeric(8,2) DEFAULT 9.5, expr int DEFAULT (1 + 2));
         INSERT INTO {name}_defs DEFAULT VALUES;"
    ))
    .await
    .unwrap();
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: config(&name, &[]),
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let snap = poll_n(&mut task, 1, Duration::from_secs(30)).await;
    assert_eq!(snap.len(), 1);
    let (k, v) = json(&snap[0]);
    let v = v.unwrap();
    // A serial key: nextval(...) is a function, whose placeholder is 0 (also in the key schema).
    assert!(k.contains("{\"type\":\"int32\",\"optional\":false,\"default\":0,\"field\":\"id\"}"), "{k}");
    assert_eq!(after_default(&v, "qty"), Some(serde_json::json!(1)));
    assert_eq!(after_default(&v, "note"), Some(serde_json::json!("n/a")));
    assert_eq!(after_default(&v, "at"), Some(serde_json::json!("1970-01-01T00:00:00.000000Z")));
    assert_eq!(after_default(&v, "price"), Some(serde_json::json!("A7Y="))); // 9.50
    assert_eq!(after_default(&v, "expr"), None);

    // Streaming: the relation message after the ALTER brings the new defaults (read from the catalog then).
    db.batch_execute(&format!(
        "ALTER TABLE {name}_defs ALTER COLUMN qty SET DEFAULT 2, ADD COLUMN flag boolean DEFAULT true;
         INSERT INTO {name}_defs (id) VALUES (2);
         DELETE FROM {name}_defs WHERE id = 2;"
    ))
    .await
    .unwrap();
    let recs = poll_n(&mut task, 3, Duration::from_secs(30)).await;
    assert_eq!(recs.len(), 3, "insert, delete, tombstone");
    let (_, v) = json(&recs[0]);
    let v = v.unwrap();
    assert_eq!(after_default(&v, "qty"), Some(serde_json::json!(2)));
    assert_eq!(after_default(&v, "flag"), Some(serde_json::json!(true)));
    // A delete's `before` has only the key; a NOT NULL column gets its default, as in Debezium.
    let (_, d) = json(&recs[1]);
    let p = payload(d.as_deref().unwrap());
    assert_eq!(p["op"], "d");
    assert_eq!(p["before"]["qty"], 2);
    assert_eq!(p["before"]["note"], "n/a");
    task.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_defs")).await;
}

#[tokio::test]
async fn hstore_as_json_and_as_map() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let db = admin(&url).await;
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS hstore").await.unwrap();
    for (mode, expected) in
        [("json", serde_json::json!("{\"aa\":null,\"b\":\"2\"}")), ("map", serde_json::json!({"aa": null, "b": "2"}))]
    {
        let name = format!("sl_cdchs{mode}_{}", std::process::id());
        cleanup(&db, &name).await;
        db.batch_execute(&format!(
            "DROP TABLE IF EXISTS {name}_hs; CREATE TABLE {name}_hs (id int PRIMARY KEY, h hstore);
             INSERT INTO {name}_hs VALUES (1, 'b=>2, aa=>NULL');"
        ))
        .await
        .unwrap();
        let mut task = PostgresCdcTask::default();
        let cfg = config(&name, &[("hstore.handling.mode", mode)]);
        task.start(SourceTaskContext {
            shared: Default::default(),
            connector: name.clone(),
            task: 0,
            config: cfg,
            offsets: Arc::default(),
        })
        .await
        .unwrap();
        let snap = poll_n(&mut task, 1, Duration::from_secs(30)).await;
        assert_eq!(snap.len(), 1);
        // Debezium iterates a java.util.HashMap: "aa" (bucket 0) before "b" (bucket 2).
        assert_eq!(payload(json(&snap[0]).1.as_deref().unwrap())["after"]["h"], expected, "{mode}");
        db.batch_execute(&format!("INSERT INTO {name}_hs VALUES (2, 'b=>2, aa=>NULL')")).await.unwrap();
        let recs = poll_n(&mut task, 1, Duration::from_secs(30)).await;
        assert_eq!(payload(json(&recs[0]).1.as_deref().unwrap())["after"]["h"], expected, "{mode} streamed");
        task.stop().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cleanup(&db, &name).await;
        let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_hs")).await;
    }
}

#[tokio::test]
async fn logical_messages_filtered_and_resumed() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdcmsg_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!("CREATE TABLE {name}_orders (id int PRIMARY KEY)")).await.unwrap();
    let cfg = config(&name, &[("message.prefix.include.list", &format!("{name}_.*"))]);
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg.clone(),
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    // Messages are decoded from the slot's position on: wait until the task streams.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let active =
            db.query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active", &[&name]).await.unwrap();
        if active.is_some() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.batch_execute(&format!(
        "SELECT pg_logical_emit_message(false, '{name}_a', 'one');
         SELECT pg_logical_emit_message(false, 'foreign_{name}', 'filtered out');
         BEGIN; INSERT INTO {name}_orders VALUES (1);
           SELECT pg_logical_emit_message(true, '{name}_b', '\\x00ff'::bytea); COMMIT;"
    ))
    .await
    .unwrap();
    let recs = poll_n(&mut task, 3, Duration::from_secs(30)).await;
    let topics: Vec<&str> = recs.iter().map(|r| r.topic.as_str()).collect();
    let msg_topic = format!("{name}.message");
    let orders_topic = format!("{name}.public.{name}_orders");
    assert_eq!(topics, [msg_topic.as_str(), orders_topic.as_str(), msg_topic.as_str()]);
    let (k, v) = json(&recs[0]);
    assert_eq!(
        k,
        format!(
            "{{\"schema\":{{\"type\":\"struct\",\"fields\":[{{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"}}],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageKey\",\"version\":1}},\"payload\":{{\"prefix\":\"{name}_a\"}}}}"
        )
    );
    let a = payload(v.as_deref().unwrap());
    assert_eq!(a["op"], "m");
    assert_eq!(a["message"], serde_json::json!({"prefix": format!("{name}_a"), "content": "b25l"}));
    assert_eq!(a["source"]["txId"], serde_json::Value::Null, "non-transactional");
    assert_eq!(a["source"]["table"], "");
    assert!(recs[0].headers.is_empty(), "Debezium writes messages without context headers");
    let b = payload(json(&recs[2]).1.as_deref().unwrap());
    assert_eq!(b["message"]["content"], "AP8=");
    assert!(b["source"]["txId"].is_number(), "transactional");
    assert_eq!(recs[2].source_offset["messageType"], "MESSAGE");
    task.stop().await.unwrap();

    // Restart from the first message's offset (nothing committed to the slot): it is not written again.
    let mut offsets = BTreeMap::new();
    offsets.insert(partition_key(&recs[0].source_partition), recs[0].source_offset.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::new(offsets),
    })
    .await
    .unwrap();
    let again = poll_n(&mut task, 3, Duration::from_secs(10)).await;
    let topics: Vec<&str> = again.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, [orders_topic.as_str(), msg_topic.as_str()], "the insert and the second message only");
    task.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
}

/// `heartbeat.action.query`: run on the database at every heartbeat (rows appear in a heartbeat table, and the
/// heartbeat records follow); a statement the database refuses fails the task with its message, not a retry loop.
#[tokio::test]
async fn heartbeat_action_query_runs_and_a_bad_one_fails() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_cdchb_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}_beats; CREATE TABLE {name}_orders (id int PRIMARY KEY); \
         CREATE TABLE {name}_beats (at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .unwrap();
    let query = format!("INSERT INTO {name}_beats DEFAULT VALUES");
    let mut task = PostgresCdcTask::default();
    let cfg = config(
        &name,
        &[
            ("heartbeat.interval.ms", "200"),
            ("heartbeat.action.query", query.as_str()),
            ("table.include.list", &format!("public\\.{name}_orders")),
        ],
    );
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut heartbeats = 0;
    let mut beats = 0i64;
    while Instant::now() < deadline && (heartbeats < 3 || beats < 3) {
        heartbeats += task.poll().await.unwrap().iter().filter(|r| r.topic.starts_with("__debezium-heartbeat")).count();
        beats = db.query_one(&format!("SELECT count(*) FROM {name}_beats"), &[]).await.unwrap().get(0);
    }
    assert!(beats >= 3 && heartbeats >= 3, "{beats} rows written by the action query, {heartbeats} heartbeats");
    task.stop().await.unwrap();

    let mut task = PostgresCdcTask::default();
    let cfg = config(
        &name,
        &[
            ("heartbeat.interval.ms", "200"),
            ("heartbeat.action.query", "INSERT INTO no_such_table_at_all VALUES (1)"),
            ("table.include.list", &format!("public\\.{name}_orders")),
        ],
    );
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: name.clone(),
        task: 0,
        config: cfg,
        offsets: Arc::default(),
    })
    .await
    .unwrap();
    let e = first_error(&mut task).await;
    assert!(e.contains("heartbeat.action.query") && e.contains("no_such_table_at_all"), "{e}");
    task.stop().await.unwrap();
    let _ = db.batch_execute(&format!("DROP TABLE IF EXISTS {name}_beats")).await;
    cleanup(&db, &name).await;
}
