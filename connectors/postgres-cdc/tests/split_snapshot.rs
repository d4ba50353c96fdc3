//! The initial snapshot split across two tasks (`tasks.max=2`, see `sluice_connector_postgres_cdc::split`), both
//! in this process and sharing an in-memory [`SharedState`], against the real PostgreSQL of `deploy/local/postgres`
//! (`SLUICE_TEST_PG`); skipped, saying so, when it is not set. "Kafka" acknowledges each record as soon as it is
//! polled: the order records are polled in is the order a consumer sees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SourceRecord, partition_key};
use sluice_connect_api::shared::SharedState;
use sluice_connector_postgres_cdc::split;
use sluice_connector_postgres_cdc::task::PostgresCdcTask;
use sluice_converters::converter::{Converter, JsonConverter};
mod common;

use common::{admin, pg_url};

/// The shared test config, polled every 50 ms.
fn config(name: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut c = common::config(name, extra);
    if !extra.iter().any(|(k, _)| *k == "poll.interval.ms") {
        c.insert("poll.interval.ms".into(), "50".into());
    }
    c
}

fn payload(r: &SourceRecord) -> Option<serde_json::Value> {
    let c = JsonConverter::new(true);
    let mut v = Vec::new();
    let some = c.from_connect(&r.topic, r.value_schema.as_deref(), &r.value, &mut v).unwrap();
    some.then(|| serde_json::from_slice::<serde_json::Value>(&v).unwrap()["payload"].clone())
}

async fn cleanup(c: &tokio_postgres::Client, name: &str) {
    let _ = c
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await;
    let _ = c.batch_execute(&format!("DROP PUBLICATION IF EXISTS {name}_pub; DROP TABLE IF EXISTS {name}_keyed")).await;
}

async fn start(name: &str, task: u32, shared: &SharedState, cfg: &BTreeMap<String, String>) -> PostgresCdcTask {
    let mut t = PostgresCdcTask::default();
    t.start(SourceTaskContext {
        connector: name.into(),
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
async fn poll_and_ack(task: &mut PostgresCdcTask, into: &mut Vec<(u32, SourceRecord)>, n: u32) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_share_the_snapshot_under_writes() {
    let Some(url) = pg_url() else {
        eprintln!("SLUICE_TEST_PG not set: skipping");
        return;
    };
    let name = format!("sl_split_{}", std::process::id());
    let db = admin(&url).await;
    cleanup(&db, &name).await;
    db.batch_execute(&format!(
        "CREATE TABLE {name}_keyed (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {name}_keyed SELECT g, 0 FROM generate_series(1, 40000) g;"
    ))
    .await
    .unwrap();
    let writer = {
        let (url, name) = (url.clone(), name.clone());
        tokio::spawn(async move {
            let db = admin(&url).await;
            for i in 0..600i32 {
                let sql = match i % 3 {
                    0 => format!("INSERT INTO {name}_keyed VALUES ({}, 0)", 100_000 + i),
                    1 => format!("UPDATE {name}_keyed SET v = v + 1 WHERE id = {}", 1 + i * 61),
                    _ => format!("DELETE FROM {name}_keyed WHERE id = {}", 2 + i * 61),
                };
                db.batch_execute(&sql).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cfg = config(
        &name,
        &[
            (split::TASKS_KEY, "2"),
            ("snapshot.max.threads", "2"),
            ("snapshot.fetch.size", "2000"),
            ("max.queue.size", "512"),
        ],
    );
    let shared = SharedState::in_memory();
    // Task 1 first: it waits for the plan.
    let mut helper = start(&name, 1, &shared, &cfg).await;
    let mut leader = start(&name, 0, &shared, &cfg).await;
    let mut records: Vec<(u32, SourceRecord)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut writer = Some(writer);
    loop {
        poll_and_ack(&mut helper, &mut records, 1).await;
        poll_and_ack(&mut leader, &mut records, 0).await;
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            writer.take().unwrap().await.unwrap();
            db.batch_execute(&format!("INSERT INTO {name}_keyed VALUES (999999, 0)")).await.unwrap();
        }
        let done = writer.is_none()
            && records
                .iter()
                .any(|(_, r)| r.source_offset.get("lsn_proc").is_some() && format!("{:?}", r.key).contains("999999"));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "not done in time: {} records", records.len());
    }
    // Task 1 idles from now on: a few more polls bring nothing.
    for _ in 0..3 {
        assert!(helper.poll().await.unwrap().is_empty());
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
        } else {
            streaming = true;
            assert_eq!(*task, 0, "changes come from task 0");
        }
        match op.as_str() {
            "d" => assert!(keyed.remove(&id).is_some(), "delete of a row never seen: {id}"),
            "c" | "r" => assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_none(), "row {id} twice"),
            _ => assert!(keyed.insert(id, row["v"].as_i64().unwrap()).is_some(), "update of a row never seen: {id}"),
        }
    }
    assert!(reads.values().all(|n| *n == 1), "rows read twice");
    assert!(per_task[0] > 0 && per_task[1] > 0, "both tasks read: {per_task:?}");
    assert_eq!(markers.first().map(String::as_str), Some("first"));
    assert_eq!(markers.last().map(String::as_str), Some("last"), "task 0's last record comes after task 1's");
    assert_eq!(markers.iter().filter(|m| *m == "last").count(), 1);
    let rows = db.query(&format!("SELECT id::int8, v::int8 FROM {name}_keyed"), &[]).await.unwrap();
    let want: BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(keyed == want, "replayed events differ from the table ({} vs {} rows)", keyed.len(), want.len());
    let done = shared.get(&split::done_key(1)).expect("task 1 marked its share done");
    assert_eq!(done["records"].as_u64(), Some(per_task[1] as u64));
    eprintln!(
        "split snapshot: task 0 read {}, task 1 read {}, {} records in all",
        per_task[0],
        per_task[1],
        records.len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    cleanup(&db, &name).await;
}
