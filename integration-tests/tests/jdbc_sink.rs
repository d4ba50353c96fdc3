//! The JDBC sink through the REST API against real Kafka and the real PostgreSQL and MariaDB of
//! `deploy/local/postgres|mysql` (`SLUICE_TEST_PG`, `SLUICE_TEST_MYSQL`; a test whose database is not configured
//! says so and passes): a Confluent config (upsert, record_key, auto.create, auto.evolve mid-stream, tombstone
//! deletes), a Debezium config fed change-event envelopes, a rejected row to the DLQ with Kafka Connect's error
//! headers (and `errors.tolerance=none` failing with the database's message), and kill -9 of the agent mid-stream
//! in insert mode (no loss, no duplicate thanks to the offsets stored with the rows).

use std::time::Duration;

use anyhow::ensure;
use serde_json::{Value, json};
use sluice_integration_tests::jdbc::{Db, produce_keyed};
use sluice_integration_tests::kafka::{create_topic, read_records};
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn key(id: i64) -> Option<String> {
    Some(json!({"schema": {"type": "struct", "name": "k", "optional": false, "fields": [{"field": "id", "type": "int32", "optional": false}]}, "payload": {"id": id}}).to_string())
}

fn value(id: i64, name: &str, score: Option<f64>) -> Option<String> {
    let mut fields = vec![
        json!({"field": "id", "type": "int32", "optional": false}),
        json!({"field": "name", "type": "string", "optional": true}),
    ];
    let mut payload = json!({"id": id, "name": name});
    if let Some(s) = score {
        fields.push(json!({"field": "score", "type": "double", "optional": true}));
        payload["score"] = json!(s);
    }
    Some(
        json!({"schema": {"type": "struct", "name": "row", "optional": false, "fields": fields}, "payload": payload})
            .to_string(),
    )
}

fn base_config(db: Db, class: &str, topic: &str) -> anyhow::Result<Value> {
    let (url, user, password) = db.jdbc()?;
    let user_key = if class.starts_with("io.debezium") { "connection.username" } else { "connection.user" };
    Ok(json!({
        "connector.class": class,
        "tasks.max": "1",
        "topics": topic,
        "connection.url": url,
        user_key: user,
        "connection.password": password,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
    }))
}

async fn cluster(env: &TestEnv) -> anyhow::Result<(ControlPlane, Agent)> {
    let cp = ControlPlane::start(env, &env.unique("jdbc"), &env.services.etcd).await?;
    let agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), &env.services.kafka).await?;
    Ok((cp, agent))
}

async fn wait_rows(db: Db, sql: &str, expected: &[Vec<Option<String>>]) -> anyhow::Result<()> {
    wait_until(TIMEOUT, format!("rows of `{sql}`"), || async {
        Ok(match db.rows(sql).await {
            Ok(rows) if rows == expected => Some(()),
            _ => None,
        })
    })
    .await
    .map_err(|e| e.context(format!("expected {} rows", expected.len())))
}

fn row(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|x| if *x == "NULL" { None } else { Some(x.to_string()) }).collect()
}

macro_rules! db_test {
    ($name:ident, $db:expr, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let env = TestEnv::new(stringify!($name)).await;
            if $db.url().is_none() {
                env.note(format!("{:?} not configured (deploy/local/<db> env): skipped", $db));
                return;
            }
            env.finish($body(&env, $db).await);
        }
    };
}

db_test!(jdbc_sink_confluent_postgres, Db::Postgres, confluent_upsert);
db_test!(jdbc_sink_confluent_mariadb, Db::MariaDb, confluent_upsert);
db_test!(jdbc_sink_debezium_postgres, Db::Postgres, debezium_envelopes);
db_test!(jdbc_sink_debezium_mariadb, Db::MariaDb, debezium_envelopes);
db_test!(jdbc_sink_dlq_postgres, Db::Postgres, rejected_rows);
db_test!(jdbc_sink_dlq_mariadb, Db::MariaDb, rejected_rows);
db_test!(jdbc_sink_kill9_postgres, Db::Postgres, kill9_insert);
db_test!(jdbc_sink_kill9_mariadb, Db::MariaDb, kill9_insert);
db_test!(jdbc_sink_time_zone_postgres, Db::Postgres, time_zone);
db_test!(jdbc_sink_time_zone_mariadb, Db::MariaDb, time_zone);

/// `db.timezone` through the REST API: an unknown zone is a validation error on the key in Kafka Connect's
/// format (and refuses the connector), `Europe/Berlin` writes Timestamp, Time and Date values as wall-clock times
/// in Berlin, across the 2024 spring-forward change.
async fn time_zone(env: &TestEnv, db: Db) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, _agent) = cluster(env).await?;
    let topic = env.unique("jdbc_tz").replace('-', "_");
    let class = "io.confluent.connect.jdbc.JdbcSinkConnector";
    let mut config = base_config(db, class, &topic)?;
    for (k, v) in [("pk.mode", "record_value"), ("pk.fields", "id"), ("auto.create", "true")] {
        config[k] = json!(v);
    }
    config["db.timezone"] = json!("Europe/Atlantis");
    let name = env.unique("jdbc-tz");
    let mut body = config.clone();
    body["name"] = json!(name);
    let reply = cp.rest.put(&format!("/connector-plugins/{class}/config/validate"), &body).await?;
    reply.expect_status(200, "validate")?;
    let body = reply.json()?;
    ensure!(body["error_count"] == json!(1), "{body}");
    let entry = body["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|e| e["value"]["name"] == json!("db.timezone")))
        .cloned()
        .unwrap_or_default();
    ensure!(
        entry["value"]["errors"]
            == json!([
                "Invalid value Europe/Atlantis for configuration db.timezone: Invalid time zone. See the list of valid time zones at https://docs.oracle.com/javase/8/docs/api/java/time/ZoneId.html#shortIds"
            ]),
        "{entry}"
    );
    let refused = cp.rest.post("/connectors", &json!({"name": name, "config": config})).await?;
    let message = refused.expect_error(400, "create with a bad zone")?;
    ensure!(message.contains("Invalid value Europe/Atlantis for configuration db.timezone"), "{message}");

    create_topic(kafka, &topic, 1).await?;
    let schema = json!({"type": "struct", "name": "row", "optional": false, "fields": [
        {"field": "id", "type": "int32", "optional": false},
        {"field": "d", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1},
        {"field": "t", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Time", "version": 1},
        {"field": "ts", "type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
    ]});
    // 00:30Z and 01:30Z on 2024-03-31: 01:30 CET and 03:30 CEST in Berlin.
    let records: Vec<_> = [(1, 1_711_845_000_123i64), (2, 1_711_848_600_000)]
        .iter()
        .map(|(id, ts)| {
            let payload = json!({"id": id, "d": 19_723, "t": 45_296_789, "ts": ts});
            (None, Some(json!({"schema": schema, "payload": payload}).to_string()))
        })
        .collect();
    produce_keyed(kafka, &topic, &records).await?;
    config["db.timezone"] = json!("Europe/Berlin");
    cp.rest.create_connector(&name, &config).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    let t = db.q(&topic);
    let (ts1, ts2) = if db == Db::Postgres {
        ("2024-03-31 01:30:00.123", "2024-03-31 03:30:00")
    } else {
        ("2024-03-31 01:30:00.123", "2024-03-31 03:30:00.000")
    };
    wait_rows(
        db,
        &format!("SELECT id, d, t, ts FROM {t} ORDER BY id"),
        &[row(&["1", "2024-01-01", "13:34:56.789", ts1]), row(&["2", "2024-01-01", "13:34:56.789", ts2])],
    )
    .await?;
    Ok(())
}

async fn confluent_upsert(env: &TestEnv, db: Db) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, _agent) = cluster(env).await?;
    let topic = env.unique("jdbc_orders").replace('-', "_");
    create_topic(kafka, &topic, 1).await?;
    let mut records = Vec::new();
    for i in 1..=200 {
        records.push((key(i), value(i, &format!("n{i}"), None)));
    }
    for i in 1..=50 {
        records.push((key(i), value(i, &format!("u{i}"), None)));
    }
    for i in 191..=200 {
        records.push((key(i), None));
    }
    produce_keyed(kafka, &topic, &records).await?;
    let name = env.unique("jdbc-confluent");
    let mut config = base_config(db, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)?;
    for (k, v) in [
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("auto.create", "true"),
        ("auto.evolve", "true"),
        ("delete.enabled", "true"),
    ] {
        config[k] = json!(v);
    }
    cp.rest.create_connector(&name, &config).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    let t = db.q(&topic);
    let sql = format!("SELECT COUNT(*), SUM(CASE WHEN name LIKE 'u%' THEN 1 ELSE 0 END) FROM {t}");
    wait_rows(db, &sql, &[row(&["190", "50"])]).await?;
    // Mid-stream: the schema gains an optional field (auto.evolve adds the column).
    let more: Vec<_> = (1..=5).map(|i| (key(i), value(i, &format!("s{i}"), Some(i as f64 / 2.0)))).collect();
    produce_keyed(kafka, &topic, &more).await?;
    wait_rows(
        db,
        &format!("SELECT id, name, score FROM {t} WHERE id <= 6 ORDER BY id"),
        &[
            row(&["1", "s1", "0.5"]),
            row(&["2", "s2", "1"]),
            row(&["3", "s3", "1.5"]),
            row(&["4", "s4", "2"]),
            row(&["5", "s5", "2.5"]),
            row(&["6", "u6", "NULL"]),
        ],
    )
    .await?;
    let status = cp.rest.status(&name).await?;
    ensure!(task_state(&status, 0).as_deref() == Some("RUNNING"), "{status}");
    // The password is hidden in the config answer.
    let shown = cp.rest.get(&format!("/connectors/{name}/config")).await?;
    env.note(format!("config answer: {}", shown.body));
    Ok(())
}

async fn debezium_envelopes(env: &TestEnv, db: Db) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, _agent) = cluster(env).await?;
    let prefix = env.unique("dbz").replace('-', "_");
    let topic = format!("{prefix}.public.customers");
    create_topic(kafka, &topic, 1).await?;
    let row_schema = json!({"type": "struct", "optional": true, "name": format!("{prefix}.public.customers.Value"), "field": "after",
        "fields": [{"field": "id", "type": "int32", "optional": false}, {"field": "email", "type": "string", "optional": true}]});
    let mut before = row_schema.clone();
    before["field"] = json!("before");
    let envelope = |op: &str, b: Option<(i64, &str)>, a: Option<(i64, &str)>| {
        let r = |x: Option<(i64, &str)>| x.map(|(i, e)| json!({"id": i, "email": e})).unwrap_or(Value::Null);
        Some(json!({"schema": {"type": "struct", "optional": false, "name": format!("{prefix}.public.customers.Envelope"),
            "fields": [before.clone(), row_schema.clone(), {"field": "op", "type": "string", "optional": false}]},
            "payload": {"before": r(b), "after": r(a), "op": op}}).to_string())
    };
    let records = vec![
        (key(1), envelope("r", None, Some((1, "a@x")))),
        (key(2), envelope("c", None, Some((2, "b@x")))),
        (key(3), envelope("c", None, Some((3, "c@x")))),
        (key(1), envelope("u", Some((1, "a@x")), Some((1, "a2@x")))),
        (key(2), envelope("d", Some((2, "b@x")), None)),
        (key(2), None),
    ];
    produce_keyed(kafka, &topic, &records).await?;
    let name = env.unique("jdbc-debezium");
    let mut config = base_config(db, "io.debezium.connector.jdbc.JdbcSinkConnector", &topic)?;
    for (k, v) in [
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("delete.enabled", "true"),
        ("schema.evolution", "basic"),
    ] {
        config[k] = json!(v);
    }
    cp.rest.create_connector(&name, &config).await?;
    // Debezium's naming: the topic's dots become underscores.
    let table = format!("{prefix}_public_customers");
    wait_rows(db, &format!("SELECT id, email FROM {table} ORDER BY id"), &[row(&["1", "a2@x"]), row(&["3", "c@x"])])
        .await?;
    Ok(())
}

async fn rejected_rows(env: &TestEnv, db: Db) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, _agent) = cluster(env).await?;
    let topic = env.unique("jdbc_narrow").replace('-', "_");
    create_topic(kafka, &topic, 1).await?;
    let t = db.q(&topic);
    db.execute(&format!("CREATE TABLE {t} (id INT NOT NULL, name VARCHAR(5))")).await?;
    let records: Vec<_> =
        (0..30).map(|i| (key(i), value(i, if i % 10 == 4 { "far too long" } else { "ok" }, None))).collect();
    produce_keyed(kafka, &topic, &records).await?;
    let dlq = env.unique("jdbc-dlq");
    let name = env.unique("jdbc-tolerant");
    let mut config = base_config(db, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)?;
    for (k, v) in [
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", dlq.as_str()),
        ("errors.deadletterqueue.topic.replication.factor", "1"),
        ("errors.deadletterqueue.context.headers.enable", "true"),
    ] {
        config[k] = json!(v);
    }
    cp.rest.create_connector(&name, &config).await?;
    wait_rows(db, &format!("SELECT COUNT(*) FROM {t}"), &[row(&["27"])]).await?;
    let dead = wait_until(TIMEOUT, "3 records in the DLQ", || async {
        let dead = read_records(kafka, &dlq).await?;
        Ok((dead.len() >= 3).then_some(dead))
    })
    .await?;
    ensure!(dead.len() == 3, "{dead:?}");
    for (record, offset) in dead.iter().zip(["4", "14", "24"]) {
        ensure!(record.value.contains("far too long"), "{record:?}");
        for (k, v) in [
            ("__connect.errors.topic", topic.as_str()),
            ("__connect.errors.offset", offset),
            ("__connect.errors.stage", "TASK_PUT"),
            ("__connect.errors.connector.name", name.as_str()),
        ] {
            ensure!(record.header(k) == Some(v), "header {k} should be {v}: {record:?}");
        }
        let message = record.header("__connect.errors.exception.message").unwrap_or_default().to_lowercase();
        ensure!(message.contains("too long"), "the database's message: {record:?}");
    }
    env.note(format!("DLQ headers: {:?}", dead[0].headers));

    // errors.tolerance=none: the task fails with the database's message in the trace.
    let strict = env.unique("jdbc-strict");
    let table2 = format!("{topic}_strict");
    db.execute(&format!("CREATE TABLE {} (id INT NOT NULL, name VARCHAR(5))", db.q(&table2))).await?;
    let mut config = base_config(db, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)?;
    config["table.name.format"] = json!(table2);
    config["task.restart.on.failure"] = json!("false");
    cp.rest.create_connector(&strict, &config).await?;
    let status = cp
        .rest
        .wait_for_status_matching(&strict, "task 0 FAILED", TIMEOUT, |s| task_state(s, 0).as_deref() == Some("FAILED"))
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default().to_lowercase();
    env.note(format!("FAILED trace: {trace}"));
    ensure!(trace.contains("too long"), "trace should carry the database's message: {trace}");
    Ok(())
}

async fn kill9_insert(env: &TestEnv, db: Db) -> anyhow::Result<()> {
    const N: i64 = 30_000;
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("jdbc"), &env.services.etcd).await?;
    let mut agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-a"), kafka).await?;
    let topic = env.unique("jdbc_kill9").replace('-', "_");
    create_topic(kafka, &topic, 1).await?;
    let records: Vec<_> = (0..N).map(|i| (None, value(i, "x", None))).collect();
    produce_keyed(kafka, &topic, &records).await?;
    let name = env.unique("jdbc-kill9");
    let mut config = base_config(db, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)?;
    config["auto.create"] = json!("true");
    config["batch.size"] = json!("500");
    cp.rest.create_connector(&name, &config).await?;
    let t = db.q(&topic);
    // Kill -9 once some but not all rows are in.
    let written = wait_until(TIMEOUT, "some rows written", || async {
        Ok(match db.rows(&format!("SELECT COUNT(*) FROM {t}")).await {
            Ok(r) => r[0][0].as_deref().and_then(|c| c.parse::<i64>().ok()).filter(|c| *c > 0),
            Err(_) => None,
        })
    })
    .await?;
    agent.process.kill9();
    env.note(format!("killed the agent with {written} of {N} rows written"));
    let _agent_b = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-b"), kafka).await?;
    let n = N.to_string();
    wait_rows(db, &format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM {t}"), &[row(&[&n, &n])]).await?;
    Ok(())
}

/// `deploy/local/postgres` (or `SLUICE_TEST_PG_SCRIPT`), for a private PostgreSQL this test may restart.
fn pg_script() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("SLUICE_TEST_PG_SCRIPT") {
        return Some(p.into());
    }
    let p = repo_root().join("deploy/local/postgres");
    p.exists().then_some(p)
}

fn pg_private(script: &std::path::Path, run_dir: &std::path::Path, port: u16, action: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new(script)
        .arg(action)
        .env("SLUICE_RUN_DIR", run_dir)
        .env("SLUICE_PG_PORT", port.to_string())
        .status()?;
    ensure!(status.success(), "deploy/local/postgres {action}: {status}");
    Ok(())
}

async fn pg_count(url: &str, sql: &str) -> Option<(i64, i64)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(conn);
    let r = client.query_one(sql, &[]).await.ok()?;
    Some((r.get(0), r.get(1)))
}

/// A private PostgreSQL is restarted while the sink writes: the task retries (a lost connection is retriable)
/// and every record ends in the table exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_sink_postgres_restart_mid_stream() {
    let env = TestEnv::new("jdbc_sink_postgres_restart_mid_stream").await;
    let Some(script) = pg_script() else {
        env.note("deploy/local/postgres not found: skipped");
        return;
    };
    env.finish(pg_restart(&env, &script).await);
}

async fn pg_restart(env: &TestEnv, script: &std::path::Path) -> anyhow::Result<()> {
    const N: i64 = 60_000;
    let run_dir = env.path("pg-run");
    let port = free_port();
    pg_private(script, &run_dir, port, "up")?;
    let result = async {
        let url = format!("postgres://sluice:sluice@127.0.0.1:{port}/sluice");
        let kafka = env.services.kafka.as_str();
        let (cp, _agent) = cluster(env).await?;
        let topic = env.unique("jdbc_restart").replace('-', "_");
        create_topic(kafka, &topic, 1).await?;
        let records: Vec<_> = (0..N).map(|i| (None, value(i, "x", None))).collect();
        produce_keyed(kafka, &topic, &records).await?;
        let name = env.unique("jdbc-restart");
        let mut config = base_config(Db::Postgres, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)
            .unwrap_or_else(|_| json!({}));
        config["connector.class"] = json!("io.confluent.connect.jdbc.JdbcSinkConnector");
        config["topics"] = json!(topic);
        config["connection.url"] = json!(format!("jdbc:postgresql://127.0.0.1:{port}/sluice"));
        config["connection.user"] = json!("sluice");
        config["connection.password"] = json!("sluice");
        config["key.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
        config["value.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
        config["auto.create"] = json!("true");
        config["batch.size"] = json!("500");
        cp.rest.create_connector(&name, &config).await?;
        let sql = format!("SELECT COUNT(*), COUNT(DISTINCT id) FROM \"{topic}\"");
        let written = wait_until(TIMEOUT, "some rows written", || async {
            Ok(pg_count(&url, &sql).await.map(|c| c.0).filter(|c| *c > 0))
        })
        .await?;
        pg_private(script, &run_dir, port, "restart")?;
        env.note(format!("restarted PostgreSQL with {written} of {N} rows written"));
        wait_until(TIMEOUT, format!("{N} distinct rows"), || async {
            Ok(pg_count(&url, &sql).await.filter(|c| *c == (N, N)))
        })
        .await?;
        let status = cp.rest.status(&name).await?;
        ensure!(task_state(&status, 0).as_deref() == Some("RUNNING"), "{status}");
        Ok(())
    }
    .await;
    let _ = pg_private(script, &run_dir, port, "down");
    result
}

fn bench_value(id: i64) -> String {
    json!({"schema": {"type": "struct", "name": "bench", "optional": false, "fields": [
        {"field": "id", "type": "int64", "optional": false},
        {"field": "name", "type": "string", "optional": true},
        {"field": "amount", "type": "double", "optional": true},
        {"field": "flag", "type": "boolean", "optional": true},
        {"field": "note", "type": "string", "optional": true}]},
        "payload": {"id": id, "name": format!("customer-{id:08}"), "amount": id as f64 * 0.25, "flag": id % 2 == 0,
            "note": "lorem ipsum dolor sit amet consectetur"}})
    .to_string()
}

fn bench_key(id: i64) -> String {
    json!({"schema": {"type": "struct", "name": "k", "optional": false, "fields": [{"field": "id", "type": "int64", "optional": false}]}, "payload": {"id": id}}).to_string()
}

/// Throughput of the sink into PostgreSQL (insert and upsert) against the ceilings of `psql \copy` of the same
/// rows and a bare 1,000-row `INSERT ... ON CONFLICT DO UPDATE` from one client. Not part of the suite (ignored):
/// `SLUICE_BIN_DIR=<release dir> SLUICE_JDBC_BENCH_N=200000 cargo test -p sluice-integration-tests --test
/// jdbc_sink jdbc_sink_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn jdbc_sink_throughput_postgres() {
    let env = TestEnv::new("jdbc_sink_throughput_postgres").await;
    env.finish(throughput(&env).await);
}

async fn throughput(env: &TestEnv) -> anyhow::Result<()> {
    let n: i64 = std::env::var("SLUICE_JDBC_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let db = Db::Postgres;
    let url = db.url().ok_or_else(|| anyhow::anyhow!("SLUICE_TEST_PG unset"))?;
    let kafka = env.services.kafka.as_str();
    let topic = env.unique("jdbc_bench").replace('-', "_");
    create_topic(kafka, &topic, 1).await?;
    let records: Vec<_> = (0..n).map(|i| (Some(bench_key(i)), Some(bench_value(i)))).collect();
    let t0 = std::time::Instant::now();
    produce_keyed(kafka, &topic, &records).await?;
    env.note(format!(
        "produced {n} records ({} B per value) in {:.1?}",
        records[0].1.as_ref().map(String::len).unwrap_or(0),
        t0.elapsed()
    ));
    drop(records);
    let (cp, _agent) = cluster(env).await?;
    let mut results = Vec::new();
    for mode in ["insert", "upsert"] {
        let table = format!("{topic}_{mode}");
        let name = env.unique(&format!("bench-{mode}"));
        let mut config = base_config(db, "io.confluent.connect.jdbc.JdbcSinkConnector", &topic)?;
        config["table.name.format"] = json!(table);
        config["auto.create"] = json!("true");
        config["insert.mode"] = json!(mode);
        if mode == "upsert" {
            config["pk.mode"] = json!("record_key");
        }
        let created = std::time::Instant::now();
        cp.rest.create_connector(&name, &config).await?;
        let sql = format!("SELECT COUNT(*), COUNT(*) FROM \"{table}\"");
        let mut first: Option<(std::time::Instant, i64)> = None;
        loop {
            if let Ok(r) = db.rows(&sql).await {
                let c: i64 = r[0][0].as_deref().unwrap_or("0").parse().unwrap_or(0);
                if c > 0 && first.is_none() {
                    first = Some((std::time::Instant::now(), c));
                }
                if c >= n {
                    break;
                }
            }
            ensure!(created.elapsed() < Duration::from_secs(600), "{mode}: not done in 600 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let total = created.elapsed();
        let (ft, fc) = first.expect("rows seen");
        let steady = (n - fc) as f64 / ft.elapsed().as_secs_f64();
        let line = format!(
            "sluice {mode}: {n} rows in {total:.1?} from create ({:.0} rows/s); {steady:.0} rows/s after the first rows",
            n as f64 / total.as_secs_f64()
        );
        env.note(&line);
        results.push(line);
        cp.rest.delete(&format!("/connectors/{name}")).await?;
        db.execute(&format!("DROP TABLE \"{table}\"")).await?;
    }
    // Ceilings: psql \copy of the same rows, and a bare 1,000-row upsert from one client.
    let csv = env.path("rows.csv");
    let mut text = String::with_capacity(n as usize * 80);
    for i in 0..n {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "{i},customer-{i:08},{},{},lorem ipsum dolor sit amet consectetur",
            i as f64 * 0.25,
            if i % 2 == 0 { "t" } else { "f" }
        );
    }
    std::fs::write(&csv, &text)?;
    let ceiling = format!("{topic}_ceiling");
    db.execute(&format!(
        "CREATE TABLE \"{ceiling}\" (id BIGINT NOT NULL, name TEXT, amount DOUBLE PRECISION, flag BOOLEAN, note TEXT)"
    ))
    .await?;
    let t = std::time::Instant::now();
    let status = std::process::Command::new("psql")
        .arg(&url)
        .arg("-c")
        .arg(format!("\\copy \"{ceiling}\" FROM '{}' WITH (FORMAT csv)", csv.display()))
        .status()?;
    ensure!(status.success(), "psql \\copy");
    let copy = n as f64 / t.elapsed().as_secs_f64();
    let upsert_table = format!("{topic}_bare");
    db.execute(&format!("CREATE TABLE \"{upsert_table}\" (id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE PRECISION, flag BOOLEAN, note TEXT)")).await?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let t = std::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut sql = format!("INSERT INTO \"{upsert_table}\" (id, name, amount, flag, note) VALUES ");
        for (j, i) in chunk.iter().enumerate() {
            if j > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "({i},'customer-{i:08}',{},{},'lorem ipsum dolor sit amet consectetur')",
                *i as f64 * 0.25,
                i % 2 == 0
            ));
        }
        sql.push_str(" ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, amount = EXCLUDED.amount, flag = EXCLUDED.flag, note = EXCLUDED.note");
        client.batch_execute(&sql).await?;
    }
    let bare = n as f64 / t.elapsed().as_secs_f64();
    db.execute(&format!("DROP TABLE \"{ceiling}\"; DROP TABLE \"{upsert_table}\"")).await?;
    env.note(format!("ceilings: psql \\copy {copy:.0} rows/s; bare 1,000-row upsert {bare:.0} rows/s"));
    Ok(())
}
