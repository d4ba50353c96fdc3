//! The parallel initial snapshot against the real MariaDB of `deploy/local/mysql` (MYSQL_HOST / MYSQL_TCP_PORT /
//! MYSQL_USER / MYSQL_PWD, as `deploy/local/mysql env` prints them; without MYSQL_HOST the tests say so and pass
//! vacuously): `snapshot.max.threads=4` gives the records and markers of `snapshot.max.threads=1`; two tasks
//! (`tasks.max=2`, [`sluice_connector_mysql_cdc::split`]) in this process, sharing an in-memory [`SharedState`],
//! share a snapshot under writes; and a task restarted mid-share hands its share back to task 0. "Kafka"
//! acknowledges each record as soon as it is polled: the order records are polled in is the order a consumer sees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SourceRecord, partition_key};
use sluice_connect_api::shared::SharedState;
use sluice_connector_mysql_cdc::Flavor;
use sluice_connector_mysql_cdc::split;
use sluice_connector_mysql_cdc::task::MySqlSourceTask;
use sluice_converters::converter::{Converter, JsonConverter};

struct Db {
    host: String,
    port: u16,
    user: String,
    password: String,
}

fn db() -> Option<Db> {
    // RUST_LOG=info shows the tasks' log lines
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let host = std::env::var("MYSQL_HOST").ok()?;
    Some(Db {
        host,
        port: std::env::var("MYSQL_TCP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3306),
        user: std::env::var("MYSQL_USER").unwrap_or_else(|_| "root".into()),
        password: std::env::var("MYSQL_PWD").unwrap_or_default(),
    })
}

impl Db {
    async fn conn(&self) -> mysql_async::Conn {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false);
        mysql_async::Conn::new(opts).await.expect("connect to MariaDB")
    }

    fn config(&self, prefix: &str, database: &str, extra: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap = [
            ("topic.prefix", prefix),
            ("database.hostname", self.host.as_str()),
            ("database.port", &self.port.to_string()),
            ("database.user", self.user.as_str()),
            ("database.password", self.password.as_str()),
            ("database.server.id", &(5000 + unique() % 60000).to_string()),
            ("database.include.list", database),
            ("poll.interval.ms", "50"),
            ("include.schema.changes", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c
    }
}

fn unique() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_micros()
}

fn payload(r: &SourceRecord) -> Option<serde_json::Value> {
    let c = JsonConverter::new(true);
    let mut v = Vec::new();
    let some = c.from_connect(&r.topic, r.value_schema.as_deref(), &r.value, &mut v).unwrap();
    some.then(|| serde_json::from_slice::<serde_json::Value>(&v).unwrap()["payload"].clone())
}

fn key_json(r: &SourceRecord) -> String {
    let c = JsonConverter::new(true);
    let mut k = Vec::new();
    let some = c.from_connect(&r.topic, r.key_schema.as_deref(), &r.key, &mut k).unwrap();
    if some { String::from_utf8(k).unwrap() } else { "null".into() }
}

async fn start(task: u32, shared: &SharedState, cfg: &ConfigMap) -> MySqlSourceTask {
    let mut t = MySqlSourceTask::new(Flavor::MariaDb);
    t.start(SourceTaskContext {
        connector: "c".into(),
        task,
        config: cfg.clone(),
        offsets: Arc::default(),
        shared: shared.clone(),
    })
    .await
    .unwrap();
    t
}

/// Polls once and "acknowledges" what came (commit with each partition's last offset).
async fn poll_and_ack(task: &mut MySqlSourceTask, into: &mut Vec<(u32, SourceRecord)>, n: u32) {
    let batch = task.poll().await.expect("poll");
    let mut committed = BTreeMap::new();
    for r in &batch {
        committed.insert(partition_key(&r.source_partition), r.source_offset.clone());
    }
    into.extend(batch.into_iter().map(|r| (n, r)));
    if !committed.is_empty() {
        task.commit(&committed).await.unwrap();
    }
}

async fn create(db: &Db, name: &str, keyed_rows: u32) {
    let mut c = db.conn().await;
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
    c.query_drop(format!(
        "CREATE TABLE {name}.keyed (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20), t DATETIME(3))"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO {name}.keyed SELECT seq, 0, CONCAT('r', seq), '2024-01-02 03:04:05.678' FROM {name}.seq_1_to_{keyed_rows}"
    ))
    .await
    .unwrap();
    // no primary key: read whole by one connection
    c.query_drop(format!("CREATE TABLE {name}.heap (a INT, b TEXT)")).await.unwrap();
    c.query_drop(format!("INSERT INTO {name}.heap SELECT seq, REPEAT('x', seq % 7) FROM {name}.seq_1_to_30000"))
        .await
        .unwrap();
    // a composite key with a leading integer column: split by that column (two rows per value, so a range
    // boundary falls between rows of the same leading value only if both sides hold it, which they cannot)
    c.query_drop(format!("CREATE TABLE {name}.pair (a INT, b VARCHAR(8), v INT, PRIMARY KEY (a, b))")).await.unwrap();
    c.query_drop(format!(
        "INSERT INTO {name}.pair SELECT seq DIV 2, IF(seq % 2 = 0, 'even', 'odd'), seq FROM {name}.seq_1_to_30000"
    ))
    .await
    .unwrap();
    // a composite key led by a string: read whole by one connection
    c.query_drop(format!("CREATE TABLE {name}.named (n VARCHAR(12), k INT, PRIMARY KEY (n, k))")).await.unwrap();
    c.query_drop(format!("INSERT INTO {name}.named SELECT CONCAT('n', seq), seq FROM {name}.seq_1_to_25000"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE TABLE {name}.small (id BIGINT PRIMARY KEY, n VARCHAR(5))")).await.unwrap();
    c.query_drop(format!("INSERT INTO {name}.small VALUES (1, 'a'), (2, 'b'), (3, NULL)")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {name}.empty (id INT PRIMARY KEY)")).await.unwrap();
}

/// Snapshot records of one task run with `threads` connections until the one marked `last`.
async fn snapshot_with(db: &Db, name: &str, threads: &str, locking: &str) -> Vec<SourceRecord> {
    let cfg = db.config(
        name,
        name,
        &[("snapshot.max.threads", threads), ("snapshot.mode", "initial_only"), ("snapshot.locking.mode", locking)],
    );
    let mut task = start(0, &SharedState::in_memory(), &cfg).await;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let batch = task.poll().await.expect("poll");
        let done = batch.iter().any(|r| payload(r).is_some_and(|p| p["source"]["snapshot"] == "last"));
        out.extend(batch);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "snapshot not done in time: {} records", out.len());
    }
    task.stop().await.unwrap();
    out
}

/// (topic, key, value without the times, the binlog position and `source.snapshot`) and the marker, per record.
fn comparable(records: &[SourceRecord]) -> (Vec<(String, String, String)>, Vec<String>) {
    let mut rows = Vec::new();
    let mut markers = Vec::new();
    for r in records {
        let mut p = payload(r).unwrap();
        markers.push(p["source"]["snapshot"].as_str().unwrap().to_string());
        let source = p["source"].as_object_mut().unwrap();
        source.remove("ts_ms");
        source.remove("ts_us");
        source.remove("ts_ns");
        source.remove("snapshot");
        // the binlog position of each run's snapshot (other tests write to the same server in between)
        source.remove("file");
        source.remove("pos");
        p.as_object_mut().unwrap().remove("ts_ms");
        p.as_object_mut().unwrap().remove("ts_us");
        p.as_object_mut().unwrap().remove("ts_ns");
        rows.push((r.topic.clone(), key_json(r), p.to_string()));
    }
    (rows, markers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_threads_read_what_one_thread_reads() {
    let Some(db) = db() else {
        eprintln!("MYSQL_HOST not set: skipped (run deploy/local/mysql up and export its env)");
        return;
    };
    let name = format!("msplit_t_{}", unique());
    create(&db, &name, 60_000).await;
    let mut c = db.conn().await;
    c.query_drop(format!("ANALYZE TABLE {name}.keyed, {name}.pair, {name}.named")).await.unwrap();
    let started = Instant::now();
    let one = snapshot_with(&db, &name, "1", "minimal").await;
    let one_took = started.elapsed();
    let started = Instant::now();
    let four = snapshot_with(&db, &name, "4", "minimal").await;
    let four_took = started.elapsed();
    let (mut rows1, markers1) = comparable(&one);
    let (mut rows4, markers4) = comparable(&four);
    assert_eq!(rows1.len(), 60_000 + 30_000 + 30_000 + 25_000 + 3);
    // the keyed table was read in key ranges on several connections: its records interleave
    let ids = |records: &[SourceRecord]| -> Vec<i64> {
        records
            .iter()
            .filter(|r| r.topic.ends_with(".keyed"))
            .map(|r| payload(r).unwrap()["after"]["id"].as_i64().unwrap())
            .collect()
    };
    assert!(ids(&one).is_sorted());
    assert!(!ids(&four).is_sorted(), "4 threads read the keyed table in one range");
    let leading = |records: &[SourceRecord]| -> Vec<i64> {
        records
            .iter()
            .filter(|r| r.topic.ends_with(".pair"))
            .map(|r| payload(r).unwrap()["after"]["a"].as_i64().unwrap())
            .collect()
    };
    assert!(leading(&one).is_sorted());
    assert!(!leading(&four).is_sorted(), "4 threads read the composite-key table in one range");
    // The one-thread snapshot is read table by table, as Debezium's.
    assert_eq!(markers1.first().map(String::as_str), Some("first"));
    assert_eq!(markers1.last().map(String::as_str), Some("last"));
    // Same records (the order differs), and the same markers: one `first`, one `last`, and every other table
    // starts with one `first_in_data_collection` and ends with one `last_in_data_collection`.
    rows1.sort();
    rows4.sort();
    assert!(rows1 == rows4, "the 4-thread snapshot differs from the 1-thread one");
    let count = |m: &[String]| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for x in m {
            *c.entry(x.clone()).or_default() += 1;
        }
        c
    };
    assert_eq!(count(&markers1), count(&markers4));
    assert_eq!(markers4.first().map(String::as_str), Some("first"));
    assert_eq!(markers4.last().map(String::as_str), Some("last"));
    // the final offset says the snapshot is complete; all others that it is running
    assert!(four.last().unwrap().source_offset.get("snapshot").is_none());
    assert!(four[..four.len() - 1].iter().all(|r| r.source_offset["snapshot"] == "INITIAL"));
    // Each table's records start once and end once.
    let mut edges: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (r, m) in four.iter().zip(&markers4) {
        let e = edges.entry(r.topic.clone()).or_default();
        if m == "first" || m == "first_in_data_collection" {
            e.0 += 1;
        }
        if m == "last" || m == "last_in_data_collection" {
            e.1 += 1;
        }
    }
    assert!(edges.values().all(|(s, e)| *s <= 1 && *e == 1), "table edges: {edges:?}");
    // Without the lock (MariaDB): the connections agree on the binlog position when nothing is written meanwhile.
    let unlocked = snapshot_with(&db, &name, "4", "none").await;
    let (mut rows_unlocked, markers_unlocked) = comparable(&unlocked);
    rows_unlocked.sort();
    assert!(rows1 == rows_unlocked, "the 4-thread snapshot without the lock differs from the 1-thread one");
    assert_eq!(count(&markers1), count(&markers_unlocked));
    assert!(!ids(&unlocked).is_sorted(), "4 threads without the lock read the keyed table in one range");
    eprintln!("snapshot of {} rows: 1 thread {one_took:?}, 4 threads {four_took:?}", rows1.len());
    c.query_drop(format!("DROP DATABASE {name}")).await.unwrap();
}

/// Runs task 0 and task 1 of a split snapshot while `writes` go on, until a sentinel insert streams; with
/// `restart_helper`, task 1 is stopped once it sent some records and a fresh one takes its place.
async fn split_run(restart_helper: bool, locking: &str) {
    let Some(db) = db() else {
        eprintln!("MYSQL_HOST not set: skipped (run deploy/local/mysql up and export its env)");
        return;
    };
    let name = format!("msplit_s_{}", unique());
    create(&db, &name, 60_000).await;
    let mut c = db.conn().await;
    c.query_drop(format!("ANALYZE TABLE {name}.keyed, {name}.pair, {name}.named")).await.unwrap();
    let writer = {
        let name = name.clone();
        let mut w = db.conn().await;
        tokio::spawn(async move {
            for i in 0..600i32 {
                let sql = match i % 3 {
                    0 => format!("INSERT INTO {name}.keyed VALUES ({}, 0, 'new', NULL)", 100_000 + i),
                    1 => format!("UPDATE {name}.keyed SET v = v + 1 WHERE id = {}", 1 + i * 97),
                    _ => format!("DELETE FROM {name}.keyed WHERE id = {}", 2 + i * 97),
                };
                w.query_drop(sql).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cfg = db.config(
        &name,
        &name,
        &[
            (split::TASKS_KEY, "2"),
            ("snapshot.max.threads", "2"),
            ("max.queue.size", "512"),
            ("max.batch.size", "256"),
            ("snapshot.locking.mode", locking),
        ],
    );
    let shared = SharedState::in_memory();
    // Task 1 first: it waits for the join request.
    let mut helper = start(1, &shared, &cfg).await;
    let mut leader = start(0, &shared, &cfg).await;
    let mut records: Vec<(u32, SourceRecord)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut writer = Some(writer);
    let mut restarted = !restart_helper;
    let mut checked = 0;
    let mut sentinel = false;
    loop {
        poll_and_ack(&mut helper, &mut records, 1).await;
        poll_and_ack(&mut leader, &mut records, 0).await;
        // only the new records: converting all of them on every round would be quadratic
        sentinel |= records[checked..].iter().any(|(_, r)| {
            r.topic.ends_with(".keyed")
                && payload(r).is_some_and(|p| p["op"] == "c" && p["after"]["id"].as_i64() == Some(999_999))
        });
        checked = records.len();
        if !restarted && records.iter().filter(|(t, _)| *t == 1).count() >= 2000 {
            // as a crash: the records polled so far are acknowledged, the transactions are gone
            helper.stop().await.unwrap();
            helper = start(1, &shared, &cfg).await;
            restarted = true;
        }
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            writer.take().unwrap().await.unwrap();
            c.query_drop(format!("INSERT INTO {name}.keyed VALUES (999999, 0, 'end', NULL)")).await.unwrap();
        }
        if writer.is_none() && sentinel {
            break;
        }
        assert!(Instant::now() < deadline, "not done in time: {} records", records.len());
    }
    for _ in 0..3 {
        assert!(helper.poll().await.unwrap().is_empty(), "task 1 idles once the snapshot is complete");
    }
    helper.stop().await.unwrap();
    leader.stop().await.unwrap();

    let mut keyed: BTreeMap<i64, i64> = BTreeMap::new();
    let mut reads: BTreeMap<i64, usize> = BTreeMap::new();
    let mut markers = Vec::new();
    let mut per_task = [0usize; 2];
    let mut streaming = false;
    for (task, r) in &records {
        let Some(p) = payload(r) else { continue };
        if !r.topic.ends_with(".keyed") {
            if p["op"] == "r" {
                per_task[*task as usize] += 1;
                markers.push(p["source"]["snapshot"].as_str().unwrap().to_string());
            }
            continue;
        }
        let op = p["op"].as_str().unwrap().to_string();
        let row = if op == "d" { &p["before"] } else { &p["after"] };
        let id = row["id"].as_i64().unwrap();
        if op == "r" {
            assert!(!streaming, "a snapshot record after a change event");
            per_task[*task as usize] += 1;
            *reads.entry(id).or_default() += 1;
            markers.push(p["source"]["snapshot"].as_str().unwrap().to_string());
            if *task == 1 {
                assert_eq!(r.source_partition["snapshot_task"], 1);
                assert_eq!(p["source"]["snapshot"], "true");
            } else {
                assert!(r.source_partition.get("snapshot_task").is_none());
            }
            // a repeated snapshot read (a share handed back) is the same row: replace it
            keyed.insert(id, row["v"].as_i64().unwrap());
            continue;
        }
        streaming = true;
        assert_eq!(*task, 0, "changes come from task 0");
        match op.as_str() {
            "d" => assert!(keyed.remove(&id).is_some(), "delete of a row never seen: {id}"),
            "c" => assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_none(), "row {id} twice"),
            _ => assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_some(), "update of a row never seen: {id}"),
        }
    }
    let duplicates: usize = reads.values().map(|n| n - 1).sum();
    if !restart_helper {
        assert_eq!(duplicates, 0, "rows read twice");
    }
    // without the lock task 1 joins only if nothing was written between task 0's snapshot and its own
    assert!(per_task[0] > 0 && (per_task[1] > 0 || locking == "none"), "both tasks read: {per_task:?}");
    // task 1 may read before task 0's first record: one `first` somewhere, one `last` after everything
    assert_eq!(markers.iter().filter(|m| *m == "first").count(), 1);
    assert_eq!(markers.last().map(String::as_str), Some("last"), "task 0's last record comes after task 1's");
    assert_eq!(markers.iter().filter(|m| *m == "last").count(), 1);
    let rows: Vec<(i64, i64)> = c.query(format!("SELECT id, v FROM {name}.keyed")).await.unwrap();
    let want: BTreeMap<i64, i64> = rows.into_iter().collect();
    assert!(keyed == want, "replayed events differ from the table ({} vs {} rows)", keyed.len(), want.len());
    if per_task[1] > 0 {
        let done = shared.get(&split::done_key(1)).expect("task 1 marked its share done");
        assert_eq!(done["handed_back"].as_bool().unwrap_or(false), restart_helper);
    }
    eprintln!(
        "split snapshot (restart of task 1: {restart_helper}, locking {locking}): task 0 read {}, task 1 read {}, {duplicates} keyed rows read twice, {} records in all",
        per_task[0],
        per_task[1],
        records.len()
    );
    c.query_drop(format!("DROP DATABASE {name}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_share_the_snapshot_under_writes() {
    split_run(false, "minimal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_task_hands_its_share_back() {
    split_run(true, "minimal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_without_the_lock() {
    split_run(false, "none").await;
}
