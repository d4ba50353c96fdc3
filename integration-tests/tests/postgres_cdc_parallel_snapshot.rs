//! The PostgreSQL CDC connector's parallel initial snapshot (`snapshot.max.threads=4`) through the real Sluice
//! binaries, the real PostgreSQL of `deploy/local/postgres` and the real Kafka: a 50,000-row keyed table (read in
//! primary-key ranges), a 20,000-row table without a key (read in block ranges) and a small one, snapshotted while
//! rows are inserted, updated and deleted. Every row is read once by the snapshot or streamed once after it, the
//! events replayed give the table as the database has it, and the markers are Debezium's: one `first` and one
//! `last` across the snapshot, one first and one last row per table, snapshot rows before streamed ones.
//! Skipped with a message without PGHOST.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::postgres::{Postgres, read_topic};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cdc_parallel_snapshot() {
    let Some(db) = Postgres::from_env() else {
        eprintln!("PGHOST is not set (eval \"$(deploy/local/postgres env)\"): skipped");
        return;
    };
    let env = TestEnv::new("postgres_cdc_parallel_snapshot").await;
    env.finish(run(&env, &db).await);
}

/// Inserts, updates and deletes on `table`, one transaction each, in a background psql; then a sentinel row in
/// `sentinel` that says the writes are over.
fn writer(db: &Postgres, table: &str, sentinel: &str) -> std::thread::JoinHandle<anyhow::Result<String>> {
    let db = db.clone();
    let mut script = String::new();
    for i in 0..900i64 {
        script.push_str(&match i % 3 {
            0 => format!("INSERT INTO {table} VALUES ({}, 0);\n", 100_000 + i),
            1 => format!("UPDATE {table} SET v = v + 1 WHERE id = {};\n", 1 + i * 53),
            _ => format!("DELETE FROM {table} WHERE id = {};\n", 2 + i * 53),
        });
        if i % 10 == 0 {
            script.push_str("SELECT pg_sleep(0.01);\n");
        }
    }
    script.push_str(&format!("INSERT INTO {sentinel} VALUES (999);\n"));
    std::thread::spawn(move || db.script(&script))
}

/// The value payloads of a topic (JSON without schemas), tombstones left out.
async fn payloads(kafka: &str, topic: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for r in read_topic(kafka, topic).await? {
        if let Some(v) = r.value {
            out.push(serde_json::from_str(&v)?);
        }
    }
    Ok(out)
}

async fn run(env: &TestEnv, db: &Postgres) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("pgpar").replace(['-', '.'], "_").to_lowercase();
    let prefix = format!("p{name}");
    let (big, heap, tiny) = (format!("{name}_big"), format!("{name}_heap"), format!("{name}_tiny"));
    db.script(&format!(
        "CREATE TABLE {big} (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {big} SELECT g, 0 FROM generate_series(1, 50000) g;
         CREATE TABLE {heap} (n int, t text);
         INSERT INTO {heap} SELECT g, 'row ' || g FROM generate_series(1, 20000) g;
         CREATE TABLE {tiny} (id int PRIMARY KEY);
         INSERT INTO {tiny} VALUES (1), (2), (3);"
    ))?;
    let cp = ControlPlane::start(env, &env.unique("pgpar"), &env.services.etcd).await?;
    let agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    let mut config = db.connector_keys();
    for (k, v) in [
        ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".to_string()),
        ("topic.prefix", prefix.clone()),
        ("plugin.name", "pgoutput".into()),
        ("slot.name", prefix.clone()),
        ("publication.name", format!("{prefix}_pub")),
        ("publication.autocreate.mode", "filtered".into()),
        ("table.include.list", format!("public\\.{name}_.*")),
        ("snapshot.max.threads", "4".into()),
        ("snapshot.fetch.size", "2000".into()),
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("key.converter.schemas.enable", "false".into()),
        ("value.converter.schemas.enable", "false".into()),
    ] {
        config.insert(k.into(), json!(v));
    }
    // The writes run while the connector starts and snapshots: some land before the slot (snapshot), the rest
    // after it (stream).
    let w = writer(db, &big, &tiny);
    let started = Instant::now();
    cp.rest.create_connector("pgpar", &Value::Object(config)).await?;
    cp.rest.wait_for_status("pgpar", "RUNNING", Duration::from_secs(60)).await?;
    w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let topic = |t: &str| format!("{prefix}.public.{t}");
    wait_until(Duration::from_secs(300), "the sentinel row after the writes", || async {
        let tiny_rows = payloads(kafka, &topic(&tiny)).await?;
        Ok(tiny_rows.iter().any(|p| p["after"]["id"] == 999).then_some(()))
    })
    .await?;
    let elapsed = started.elapsed();

    let mut markers: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut summary = Vec::new();
    for t in [&big, &heap, &tiny] {
        let events = payloads(kafka, &topic(t)).await?;
        let mut reads: BTreeMap<i64, usize> = BTreeMap::new();
        let mut state: BTreeMap<i64, Value> = BTreeMap::new();
        let mut streaming = false;
        for p in &events {
            let op = p["op"].as_str().unwrap_or("");
            let row = if op == "d" { &p["before"] } else { &p["after"] };
            let id = row["id"].as_i64().or_else(|| row["n"].as_i64()).context("no id")?;
            let marker = p["source"]["snapshot"].as_str().unwrap_or("").to_string();
            match op {
                "r" => {
                    ensure!(!streaming, "{t}: snapshot row {id} after streamed ones");
                    *markers.entry((t.to_string(), marker)).or_default() += 1;
                    *reads.entry(id).or_default() += 1;
                    ensure!(state.insert(id, row.clone()).is_none(), "{t}: row {id} read twice");
                }
                "c" => {
                    streaming = true;
                    ensure!(marker == "false", "{t}: streamed event marked {marker}");
                    ensure!(state.insert(id, row.clone()).is_none(), "{t}: row {id} created but already seen");
                }
                "u" => {
                    streaming = true;
                    ensure!(state.insert(id, row.clone()).is_some(), "{t}: update of row {id} never seen");
                }
                "d" => {
                    streaming = true;
                    ensure!(state.remove(&id).is_some(), "{t}: delete of row {id} never seen");
                }
                other => bail!("{t}: unexpected op {other:?}"),
            }
        }
        // Replayed events == the table now.
        let (col, v) = if t == &heap { ("n", "t") } else { ("id", if t == &big { "v" } else { "id" }) };
        let rows = db.sql(&format!("SELECT {col}, {v} FROM {t} ORDER BY 1"))?;
        let want: Vec<String> = rows.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
        let got: Vec<String> = state
            .iter()
            .map(|(id, row)| {
                let val = &row[v];
                format!("{id}|{}", val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string()))
            })
            .collect();
        if got != want {
            let diff: Vec<_> = got.iter().zip(&want).filter(|(a, b)| a != b).take(5).collect();
            bail!("{t}: {} rows replayed, {} in the table; first differences {diff:?}", got.len(), want.len());
        }
        summary.push(format!("{t}: {} read, {} events, {} rows", reads.len(), events.len(), want.len()));
    }
    env.note(format!("snapshot + stream in {elapsed:?}: {}", summary.join("; ")));
    env.note(format!("markers: {markers:?}"));
    let count = |m: &str| markers.iter().filter(|((_, mk), _)| mk == m).map(|(_, n)| n).sum::<usize>();
    ensure!(count("first") == 1 && count("last") == 1, "one first and one last: {markers:?}");
    for t in [&big, &heap, &tiny] {
        let n = |m: &str| markers.get(&(t.to_string(), m.to_string())).copied().unwrap_or(0);
        ensure!(n("first") + n("first_in_data_collection") == 1, "{t}: one first row: {markers:?}");
        ensure!(n("last") + n("last_in_data_collection") == 1, "{t}: one last row: {markers:?}");
    }

    // Four connections read the snapshot, the two large tables in ranges (the agent's log says how it was planned).
    let log = agent.process.log_text();
    let planned = log.lines().find(|l| l.contains("snapshot chunks planned")).unwrap_or("").to_string();
    env.note(format!("agent log: {planned}"));
    ensure!(planned.contains("readers=4"), "the snapshot was not read by 4 connections: {planned:?}");
    let chunks: usize =
        planned.split("chunks=").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    ensure!(chunks > 3, "the large tables were not split: {planned:?}");

    // The connector's offsets say the snapshot completed.
    let offsets = wait_until(Duration::from_secs(30), "committed offsets", || async {
        let r = cp.rest.get("/connectors/pgpar/offsets").await?;
        let v = r.json()?.clone();
        Ok(v["offsets"].as_array().filter(|a| !a.is_empty()).map(|_| v.clone()))
    })
    .await?;
    ensure!(offsets["offsets"][0]["offset"]["lsn"].is_u64(), "unexpected offsets: {offsets}");

    let _ = cp.rest.delete("/connectors/pgpar").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.drop_slot(&prefix);
    let _ = db.script(&format!("DROP PUBLICATION IF EXISTS {prefix}_pub; DROP TABLE {big}, {heap}, {tiny};"));
    Ok(())
}
