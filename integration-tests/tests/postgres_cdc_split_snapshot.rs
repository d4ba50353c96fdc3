//! The PostgreSQL CDC connector's initial snapshot split across tasks on different agents (`tasks.max=2`, each task
//! reading with `snapshot.max.threads=2`), through the real binaries, PostgreSQL and Kafka: a 200,000-row table
//! snapshotted while rows are inserted, updated and deleted. Every row is read once by the snapshot (by both tasks,
//! on two agents) or streamed after it, snapshot reads come before every change event, and the events replayed give
//! the table as the database has it.
//!
//! The same with `kill -9` of an agent mid-snapshot: of the agent running task 1 (its task moves, imports the
//! snapshot task 0 still exports, reads its share again) and of the agent running task 0 (the snapshot starts over
//! under a new generation and task 1 follows the new plan). Then rows may be read twice, as Debezium reads them
//! again after a crash, but only by the snapshot, all before the first change event; none is missing.
//! Skipped with a message without PGHOST.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::postgres::{Postgres, read_topic};
use sluice_integration_tests::*;

const ROWS: i64 = 200_000;

/// One test of this file at a time: they time kills against the snapshot's progress, and each one's snapshot and
/// writes would slow the others' down.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// kill -9 of the agent running task 1, while it reads its share.
    KillTask1Agent,
    /// kill -9 of the agent running task 0, while the tasks read the snapshot.
    KillTask0Agent,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cdc_split_snapshot() {
    run_test("postgres_cdc_split_snapshot", Fault::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cdc_split_snapshot_kill9_task1_agent() {
    run_test("postgres_cdc_split_snapshot_kill9_task1_agent", Fault::KillTask1Agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cdc_split_snapshot_kill9_task0_agent() {
    run_test("postgres_cdc_split_snapshot_kill9_task0_agent", Fault::KillTask0Agent).await;
}

async fn run_test(name: &str, fault: Fault) {
    let Some(db) = Postgres::from_env() else {
        eprintln!("PGHOST is not set (eval \"$(deploy/local/postgres env)\"): skipped");
        return;
    };
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new(name).await;
    env.finish(run(&env, &db, fault).await);
}

/// Inserts, updates and deletes on `table`, one transaction each, in a background psql; then a sentinel row in
/// `sentinel` that says the writes are over.
fn writer(db: &Postgres, table: &str, sentinel: &str) -> std::thread::JoinHandle<anyhow::Result<String>> {
    let db = db.clone();
    let mut script = String::new();
    for i in 0..1500i64 {
        script.push_str(&match i % 3 {
            0 => format!("INSERT INTO {table} VALUES ({}, 0);\n", 1_000_000 + i),
            1 => format!("UPDATE {table} SET v = v + 1 WHERE id = {};\n", 1 + i * 131),
            _ => format!("DELETE FROM {table} WHERE id = {};\n", 2 + i * 131),
        });
        if i % 10 == 0 {
            script.push_str("SELECT pg_sleep(0.02);\n");
        }
    }
    script.push_str(&format!("INSERT INTO {sentinel} VALUES (999);\n"));
    std::thread::spawn(move || db.script(&script))
}

fn header<'a>(r: &'a sluice_integration_tests::postgres::TopicRecord, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn run(env: &TestEnv, db: &Postgres, fault: Fault) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("pgsplit").replace(['-', '.'], "_").to_lowercase();
    let prefix = format!("p{name}");
    let (big, tiny) = (format!("{name}_big"), format!("{name}_tiny"));
    db.script(&format!(
        "CREATE TABLE {big} (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {big} SELECT g, 0 FROM generate_series(1, {ROWS}) g;
         CREATE TABLE {tiny} (id int PRIMARY KEY);
         INSERT INTO {tiny} VALUES (1);
         ANALYZE {big};"
    ))?;
    let cp = ControlPlane::start(env, &env.unique("pgsplit"), &env.services.etcd).await?;
    let mut agents = vec![
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-a"), kafka).await?,
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-b"), kafka).await?,
    ];
    // Both agents connected before the connector exists: its two tasks are spread over them.
    wait_until(Duration::from_secs(30), "both agents to be connected", || {
        let connected = agents.iter().all(|a| a.process.log_text().contains("session established"));
        async move { Ok(connected.then_some(())) }
    })
    .await?;

    let mut config = db.connector_keys();
    for (k, v) in [
        ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".to_string()),
        ("tasks.max", "2".into()),
        ("topic.prefix", prefix.clone()),
        ("plugin.name", "pgoutput".into()),
        ("slot.name", prefix.clone()),
        ("publication.name", format!("{prefix}_pub")),
        ("publication.autocreate.mode", "filtered".into()),
        ("table.include.list", format!("public\\.{name}_.*")),
        ("snapshot.max.threads", "2".into()),
        ("snapshot.fetch.size", "2000".into()),
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("key.converter.schemas.enable", "false".into()),
        ("value.converter.schemas.enable", "false".into()),
    ] {
        config.insert(k.into(), json!(v));
    }
    let connector = "pgsplit";
    let w = writer(db, &big, &tiny);
    let started = Instant::now();
    cp.rest.create_connector(connector, &Value::Object(config)).await?;
    let both_running =
        |s: &Value| task_state(s, 0).as_deref() == Some("RUNNING") && task_state(s, 1).as_deref() == Some("RUNNING");
    let status = cp
        .rest
        .wait_for_status_matching(connector, "both tasks RUNNING", Duration::from_secs(60), both_running)
        .await?;
    let (worker0, worker1) = (task_worker(&status, 0), task_worker(&status, 1));
    env.note(format!("task 0 on {worker0:?}, task 1 on {worker1:?}"));
    ensure!(worker0.is_some() && worker0 != worker1, "the two tasks should run on two agents: {status}");
    let agent_of = |worker: &Option<String>| agents.iter().position(|a| Some(&a.id) == worker.as_ref());
    let (agent0, agent1) =
        (agent_of(&worker0).context("task 0's agent")?, agent_of(&worker1).context("task 1's agent")?);

    let mut killed = None;
    if fault != Fault::None {
        // Mid-snapshot: task 1 is reading its share (and task 0 waits for it or reads its own).
        let victim = if fault == Fault::KillTask1Agent { agent1 } else { agent0 };
        wait_until(Duration::from_secs(180), "task 1 to read its share", || {
            let log = agents[agent1].process.log_text();
            async move {
                Ok(log.lines().any(|l| l.contains("reading a snapshot share") && !l.contains("chunks=0")).then_some(()))
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let done_before = agents[agent1].process.log_text().contains("snapshot share done");
        let streaming_before = agents[agent0].process.log_text().contains("every other task is ready (to finish");
        env.note(format!(
            "kill -9 of {} ({fault:?}) {:?} after the connector was created; share done before: {done_before}, task 0 \
             past the wait: {streaming_before}",
            agents[victim].id,
            started.elapsed()
        ));
        ensure!(!streaming_before, "the snapshot was over before the kill: the test did not hit mid-snapshot");
        agents[victim].process.kill9();
        let survivor = agents[1 - victim].id.clone();
        let on_survivor = |s: &Value| {
            both_running(s)
                && task_worker(s, 0).as_deref() == Some(survivor.as_str())
                && task_worker(s, 1).as_deref() == Some(survivor.as_str())
        };
        let status = cp
            .rest
            .wait_for_status_matching(
                connector,
                "both tasks RUNNING on the survivor",
                Duration::from_secs(60),
                on_survivor,
            )
            .await?;
        env.note(format!("both tasks on the survivor {survivor} {:?} after the kill: {status}", started.elapsed()));
        killed = Some(victim);
    }

    w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let topic = |t: &str| format!("{prefix}.public.{t}");
    cdc_split::wait_for_end(kafka, &topic(&big), &topic(&tiny), Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();

    let rows = db.sql(&format!("SELECT id, v FROM {big} ORDER BY 1"))?;
    let want: BTreeMap<i64, i64> = rows
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(a, b)| Ok((a.parse()?, b.parse()?)))
        .collect::<anyhow::Result<_>>()?;
    // After task 0's crash the snapshot starts over: rows read by the abandoned one and deleted before the new one
    // stay in the topic with no delete event (as after a Debezium snapshot that a crash interrupted). Only those.
    let deleted_by_writer =
        |id: &i64| fault == Fault::KillTask0Agent && (0..1500i64).any(|i| i % 3 == 2 && *id == 2 + i * 131);
    let (replay, ghosts) = cdc_split::wait_for_replay(
        kafka,
        &topic(&big),
        fault != Fault::None,
        &want,
        deleted_by_writer,
        Duration::from_secs(60),
    )
    .await?;
    if !ghosts.is_empty() {
        env.note(format!(
            "{} rows deleted between the abandoned snapshot and the new one stay as read by the abandoned one: {:?}",
            ghosts.len(),
            &ghosts[..ghosts.len().min(10)]
        ));
    }
    let cdc_split::Replay { reads, by_task, markers, changes, .. } = &replay;
    let doubled = replay.doubled();
    env.note(format!(
        "{fault:?}: {} snapshot reads of {} rows ({doubled} rows read more than once), {changes} change events, \
         {} rows in the table; reads by task {by_task:?}; markers {markers:?}; in {elapsed:?}",
        reads.values().sum::<usize>(),
        reads.len(),
        want.len()
    ));
    ensure!(
        by_task.get("0").is_some_and(|n| *n > 0) && by_task.get("1").is_some_and(|n| *n > 0),
        "both tasks read: {by_task:?}"
    );
    // Debezium's markers across both tables: one `last` (task 0's held-back record, after task 1's share), the final
    // snapshot read of its topic; one `first` unless the snapshot started over.
    let (tiny_markers, tiny_last_is_final) = cdc_split::tiny_markers(kafka, &topic(&tiny)).await?;
    env.note(format!("markers of {tiny}: {tiny_markers:?}"));
    let count = |m: &str| markers.get(m).copied().unwrap_or(0) + tiny_markers.get(m).copied().unwrap_or(0);
    ensure!(count("last") == 1, "one `last`: {markers:?} {tiny_markers:?}");
    ensure!(replay.last_is_final() && tiny_last_is_final, "the `last` record is the last snapshot read of its table");
    if fault == Fault::None {
        ensure!(doubled == 0, "rows read twice");
        ensure!(count("first") == 1, "one `first`: {markers:?} {tiny_markers:?}");
    }
    if let Some(victim) = killed {
        let survivor_log = agents[1 - victim].process.log_text();
        let plans = survivor_log.matches("snapshot plan published").count()
            + agents[victim].process.log_text().matches("snapshot plan published").count();
        env.note(format!("snapshot plans published: {plans}"));
        if fault == Fault::KillTask0Agent {
            // Once for the kill; more if the survivor fenced itself meanwhile (a loaded machine), which is fine.
            ensure!(plans >= 2, "task 0 should have started the snapshot over: {plans} plans");
        }
    }

    // Task 0's offsets are Debezium's (snapshot complete, then streaming); task 1's are under a partition of its own.
    let offsets = wait_until(Duration::from_secs(30), "committed offsets of both tasks", || async {
        let v = cp.rest.get(&format!("/connectors/{connector}/offsets")).await?.json()?.clone();
        let n = v["offsets"].as_array().map_or(0, Vec::len);
        Ok((n >= 2).then_some(v))
    })
    .await?;
    let partitions: BTreeSet<String> =
        offsets["offsets"].as_array().into_iter().flatten().map(|o| o["partition"].to_string()).collect();
    env.note(format!("offsets: {offsets}"));
    ensure!(
        partitions.contains(&json!({"server": prefix}).to_string())
            && partitions.contains(&json!({"server": prefix, "snapshot_task": 1}).to_string()),
        "unexpected partitions: {partitions:?}"
    );

    let _ = cp.rest.delete(&format!("/connectors/{connector}")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    db.drop_slot(&prefix);
    let _ = db.script(&format!("DROP PUBLICATION IF EXISTS {prefix}_pub; DROP TABLE {big}, {tiny};"));
    drop(agents);
    Ok(())
}

/// Standalone mode: both tasks in the one process, coordinating through the embedded store's shared state. Every
/// row once, read by both tasks; a row inserted after the snapshot is streamed; a restart reads nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_postgres_cdc_split() {
    let Some(db) = Postgres::from_env() else {
        eprintln!("PGHOST is not set (eval \"$(deploy/local/postgres env)\"): skipped");
        return;
    };
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new("standalone_postgres_cdc_split").await;
    env.finish(run_standalone(&env, &db).await);
}

async fn run_standalone(env: &TestEnv, db: &Postgres) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("pgsa").replace(['-', '.'], "_").to_lowercase();
    let prefix = format!("p{name}");
    let big = format!("{name}_big");
    db.script(&format!(
        "CREATE TABLE {big} (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO {big} SELECT g, 0 FROM generate_series(1, 50000) g;
         ANALYZE {big};"
    ))?;
    let port = free_port();
    let listeners = format!("http://127.0.0.1:{port}");
    let offsets = env.path("standalone.offsets").display().to_string();
    let worker = write_properties(
        &env.path("worker.properties"),
        &[
            ("bootstrap.servers", kafka),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("key.converter.schemas.enable", "false"),
            ("value.converter.schemas.enable", "false"),
            ("offset.flush.interval.ms", "500"),
            ("listeners", &listeners),
            ("offset.storage.file.filename", &offsets),
        ],
    )?;
    let keys = db.connector_keys();
    let key = |k: &str| keys[k].as_str().unwrap_or_default().to_string();
    let (host, pg_port, user, password, dbname) = (
        key("database.hostname"),
        key("database.port"),
        key("database.user"),
        key("database.password"),
        key("database.dbname"),
    );
    let table_filter = format!("public\\\\.{name}_.*");
    let connector = write_properties(
        &env.path("pg.properties"),
        &[
            ("name", "pgsa"),
            ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
            ("tasks.max", "2"),
            ("database.hostname", &host),
            ("database.port", &pg_port),
            ("database.user", &user),
            ("database.password", &password),
            ("database.dbname", &dbname),
            ("topic.prefix", &prefix),
            ("plugin.name", "pgoutput"),
            ("slot.name", &prefix),
            ("publication.name", &format!("{prefix}_pub")),
            ("publication.autocreate.mode", "filtered"),
            ("table.include.list", &table_filter),
            ("snapshot.max.threads", "2"),
            ("snapshot.fetch.size", "2000"),
        ],
    )?;
    let topic = format!("{prefix}.public.{big}");
    let reads_of = |records: &[sluice_integration_tests::postgres::TopicRecord]| -> anyhow::Result<(BTreeMap<i64, usize>, BTreeSet<String>, usize)> {
        let mut reads = BTreeMap::new();
        let mut tasks = BTreeSet::new();
        let mut changes = 0;
        for r in records {
            let Some(v) = &r.value else { continue };
            let p: Value = serde_json::from_str(v)?;
            if p["op"] == "r" {
                *reads.entry(p["after"]["id"].as_i64().context("id")?).or_default() += 1;
                tasks.insert(header(r, "__debezium.context.taskId").unwrap_or("?").to_string());
            } else {
                changes += 1;
            }
        }
        Ok((reads, tasks, changes))
    };
    let mut standalone = Standalone::start(env, "standalone", port, &worker, std::slice::from_ref(&connector)).await?;
    wait_until(Duration::from_secs(120), "the snapshot", || async {
        let records = read_topic(kafka, &topic).await?;
        Ok((records.len() >= 50_000).then_some(()))
    })
    .await?;
    db.sql(&format!("INSERT INTO {big} VALUES (999999, 1)"))?;
    wait_until(Duration::from_secs(60), "the streamed row", || async {
        let records = read_topic(kafka, &topic).await?;
        Ok(records
            .iter()
            .any(|r| r.value.as_deref().is_some_and(|v| v.contains("999999") && v.contains("\"op\":\"c\"")))
            .then_some(()))
    })
    .await?;
    let (reads, tasks, changes) = reads_of(&read_topic(kafka, &topic).await?)?;
    env.note(format!("standalone: {} rows read, by tasks {tasks:?}, {changes} change events", reads.len()));
    ensure!(reads.len() == 50_000 && reads.values().all(|n| *n == 1), "every row once");
    ensure!(tasks.contains("0") && tasks.contains("1"), "both tasks read: {tasks:?}");

    // A restart (same offsets file) reads nothing again and keeps streaming.
    let status = standalone.process.terminate(Duration::from_secs(30)).await?;
    ensure!(status.success(), "a graceful stop should exit with 0, got {status}");
    let mut standalone = Standalone::start(env, "standalone-restarted", port, &worker, &[connector]).await?;
    standalone.rest.wait_for_status("pgsa", "RUNNING", Duration::from_secs(60)).await?;
    db.sql(&format!("INSERT INTO {big} VALUES (1000000, 1)"))?;
    wait_until(Duration::from_secs(60), "the row streamed after the restart", || async {
        let records = read_topic(kafka, &topic).await?;
        Ok(records.iter().any(|r| r.value.as_deref().is_some_and(|v| v.contains("1000000"))).then_some(()))
    })
    .await?;
    let (reads, _, changes) = reads_of(&read_topic(kafka, &topic).await?)?;
    ensure!(
        reads.values().all(|n| *n == 1) && changes == 2,
        "nothing read again after the restart ({changes} changes)"
    );
    let _ = standalone.process.terminate(Duration::from_secs(30)).await;
    db.drop_slot(&prefix);
    let _ = db.script(&format!("DROP PUBLICATION IF EXISTS {prefix}_pub; DROP TABLE {big};"));
    Ok(())
}
