//! The MariaDB connector's schema history (`schema.history.internal.kafka.topic`) through the real binaries, Kafka
//! and MariaDB: rows are streamed across `ALTER TABLE ... ADD COLUMN` and `... DROP COLUMN`; then the connector is
//! stopped, its offset moved back to the snapshot position (as after a crash before the offsets of those changes
//! were committed) and resumed. The replayed rows must be decoded with the structure in force where each was
//! written (`{id, a}`, then `{id, a, b}`, then `{id, b}`), which only the history knows: the live table is `{id,
//! b}` by then, with as many columns as the first structure. The schema change events carry the same structures.
//! Skipped without MYSQL_HOST.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::mariadb::{MariaDb, read_keyed};
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_schema_history_across_restart() {
    let Some(db) = MariaDb::from_env() else {
        eprintln!("MYSQL_HOST is not set: skipped (deploy/local/mysql up, then export `deploy/local/mysql env`)");
        return;
    };
    let env = TestEnv::new("mysql_cdc_schema_history").await;
    env.finish(run(&env, &db).await);
}

/// `(id, sorted field names of after, after)` of the create/read events, in topic order.
async fn rows(kafka: &str, topic: &str) -> anyhow::Result<Vec<(i64, Vec<String>, Value)>> {
    let mut out = Vec::new();
    for r in read_keyed(kafka, topic).await? {
        let Some(v) = r.value else { continue };
        let v: Value = serde_json::from_str(&v)?;
        let after = &v["after"];
        let Some(obj) = after.as_object() else { continue };
        let id = after["id"].as_i64().context("id")?;
        let mut fields: Vec<String> = obj.keys().cloned().collect();
        fields.sort();
        out.push((id, fields, after.clone()));
    }
    Ok(out)
}

async fn run(env: &TestEnv, db: &MariaDb) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("hist").replace(['-', '.'], "_");
    db.sql(&format!(
        "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; \
         CREATE TABLE {name}.t (id INT PRIMARY KEY, a INT NOT NULL); INSERT INTO {name}.t VALUES (1, 10)"
    ))?;
    let cp = ControlPlane::start(env, &env.unique("hist"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let prefix = format!("h{name}");
    let history_topic = format!("{prefix}-history");
    let mut config = db.connector_keys();
    for (k, v) in [
        ("connector.class", "io.debezium.connector.mariadb.MariaDbConnector".to_string()),
        ("topic.prefix", prefix.clone()),
        ("database.server.id", (30000 + std::process::id() % 10000).to_string()),
        ("database.include.list", name.clone()),
        ("schema.history.internal.kafka.topic", history_topic.clone()),
        ("schema.history.internal.kafka.bootstrap.servers", kafka.to_string()),
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("key.converter.schemas.enable", "false".into()),
        ("value.converter.schemas.enable", "false".into()),
    ] {
        config.insert(k.into(), json!(v));
    }
    let connector = "hist";
    cp.rest.create_connector(connector, &Value::Object(config)).await?;
    cp.rest.wait_for_status(connector, "RUNNING", TIMEOUT).await?;
    let topic = format!("{prefix}.{name}.t");
    let snapshot = wait_until(TIMEOUT, "the snapshot row", || async {
        Ok(read_keyed(kafka, &topic).await?.into_iter().find_map(|r| r.value))
    })
    .await?;
    let snapshot: Value = serde_json::from_str(&snapshot)?;
    let (file, pos) = (snapshot["source"]["file"].clone(), snapshot["source"]["pos"].clone());

    // One statement at a time, each seen streamed before the next.
    let steps = [
        (Some("INSERT INTO t VALUES (2, 20)"), 2),
        (Some("ALTER TABLE t ADD COLUMN b VARCHAR(10) NOT NULL DEFAULT 'x'"), 2),
        (Some("INSERT INTO t VALUES (3, 30, 'y')"), 3),
        (Some("ALTER TABLE t DROP COLUMN a"), 3),
        (Some("INSERT INTO t VALUES (4, 'z')"), 4),
    ];
    let mut first = Vec::new();
    for (sql, rows_after) in steps {
        if let Some(sql) = sql {
            db.sql(&format!("USE {name}; {sql}"))?;
        }
        let ddls = if sql.is_some_and(|s| s.starts_with("ALTER")) { Some(sql.unwrap_or_default()) } else { None };
        first = wait_until(TIMEOUT, format!("the events of `{}`", sql.unwrap_or_default()), || async {
            if let Some(ddl) = ddls {
                let seen =
                    read_keyed(kafka, &prefix).await?.into_iter().any(|r| r.value.is_some_and(|v| v.contains(ddl)));
                if !seen {
                    return Ok(None);
                }
            }
            let r = rows(kafka, &topic).await?;
            Ok((r.len() >= rows_after).then_some(r))
        })
        .await?;
    }
    let shapes: Vec<(i64, Vec<String>)> = first.iter().map(|(id, f, _)| (*id, f.clone())).collect();
    let expected = vec![
        (1, vec!["a".to_string(), "id".into()]),
        (2, vec!["a".into(), "id".into()]),
        (3, vec!["a".into(), "b".into(), "id".into()]),
        (4, vec!["b".into(), "id".into()]),
    ];
    ensure!(shapes == expected, "streamed rows: {shapes:?}");
    let history = read_keyed(kafka, &history_topic).await?;
    env.note(format!("history topic {history_topic}: {} records", history.len()));
    ensure!(history.len() >= 3, "history records: {}", history.len());

    // Back to the snapshot position, as if the agent had died before committing the streamed changes' offsets.
    cp.rest.put(&format!("/connectors/{connector}/stop"), &json!(null)).await?.expect_status(204, "stop")?;
    wait_until(TIMEOUT, "the connector stopped", || async {
        let s = cp.rest.status(connector).await?;
        Ok((s["connector"]["state"] == "STOPPED").then_some(()))
    })
    .await?;
    let patch =
        json!({"offsets": [{"partition": {"server": prefix}, "offset": {"file": file, "pos": pos, "ts_sec": 0}}]});
    cp.rest.patch(&format!("/connectors/{connector}/offsets"), &patch).await?.expect_status(200, "PATCH offsets")?;
    cp.rest.put(&format!("/connectors/{connector}/resume"), &json!(null)).await?.expect_status(202, "resume")?;
    let replayed = wait_until(TIMEOUT, "the replayed rows", || async {
        let r = rows(kafka, &topic).await?;
        Ok((r.len() >= 7).then_some(r))
    })
    .await
    .context("rows not replayed")?;
    let status = cp.rest.status(connector).await?;
    ensure!(task_state(&status, 0).as_deref() == Some("RUNNING"), "after the replay: {status}");
    let again: Vec<_> = replayed[4..].iter().map(|(id, _, after)| (*id, after.clone())).collect();
    let before: Vec<_> = first[1..].iter().map(|(id, _, after)| (*id, after.clone())).collect();
    env.note(format!("replayed: {again:?}"));
    if again != before {
        bail!("replayed rows differ from the first run:\n  first:    {before:?}\n  replayed: {again:?}");
    }

    // The schema change events carry the structure after each statement.
    let changes: Vec<Value> = read_keyed(kafka, &prefix)
        .await?
        .into_iter()
        .filter_map(|r| r.value.and_then(|v| serde_json::from_str(&v).ok()))
        .collect();
    let columns = |ddl_start: &str| -> Option<Vec<String>> {
        let v = changes.iter().find(|v| v["ddl"].as_str().is_some_and(|d| d.starts_with(ddl_start)))?;
        let cols = v["tableChanges"][0]["table"]["columns"].as_array()?;
        Some(cols.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
    };
    ensure!(columns("ALTER TABLE t ADD") == Some(vec!["id".into(), "a".into(), "b".into()]), "{changes:?}");
    ensure!(columns("ALTER TABLE t DROP") == Some(vec!["id".into(), "b".into()]), "{changes:?}");
    let _ = cp.rest.delete(&format!("/connectors/{connector}")).await;
    db.sql(&format!("DROP DATABASE {name}"))?;
    Ok(())
}

/// A connector that is behind by several DDL statements of one table when it first reads them: stopped after its
/// snapshot, then `ALTER TABLE` twice with rows between (the second keeps the column count, so a count check cannot
/// tell the structures apart), a table created and altered, then resumed. The DDL parser applies each statement to
/// the structure in force before it, so every row is decoded with the structure in force where it was written,
/// although the live tables only have the last ones. A statement the parser does not handle (`SERIAL`) falls back to
/// `information_schema`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_behind_by_two_ddl_statements() {
    let Some(db) = MariaDb::from_env() else {
        eprintln!("MYSQL_HOST is not set: skipped (deploy/local/mysql up, then export `deploy/local/mysql env`)");
        return;
    };
    let env = TestEnv::new("mysql_cdc_schema_history_lag").await;
    env.finish(run_lagging(&env, &db).await);
}

async fn run_lagging(env: &TestEnv, db: &MariaDb) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("lag").replace(['-', '.'], "_");
    db.sql(&format!(
        "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; \
         CREATE TABLE {name}.t (id INT PRIMARY KEY, a INT NOT NULL); INSERT INTO {name}.t VALUES (1, 10)"
    ))?;
    let cp = ControlPlane::start(env, &env.unique("lag"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let prefix = format!("l{name}");
    let mut config = db.connector_keys();
    for (k, v) in [
        ("connector.class", "io.debezium.connector.mariadb.MariaDbConnector".to_string()),
        ("topic.prefix", prefix.clone()),
        ("database.server.id", (40000 + std::process::id() % 10000).to_string()),
        ("database.include.list", name.clone()),
        ("schema.history.internal.kafka.topic", format!("{prefix}-history")),
        ("schema.history.internal.kafka.bootstrap.servers", kafka.to_string()),
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("key.converter.schemas.enable", "false".into()),
        ("value.converter.schemas.enable", "false".into()),
    ] {
        config.insert(k.into(), json!(v));
    }
    let connector = "lag";
    cp.rest.create_connector(connector, &Value::Object(config)).await?;
    cp.rest.wait_for_status(connector, "RUNNING", TIMEOUT).await?;
    let topic = format!("{prefix}.{name}.t");
    let topic2 = format!("{prefix}.{name}.t2");
    wait_until(TIMEOUT, "the snapshot row", || async {
        Ok(read_keyed(kafka, &topic).await?.into_iter().find_map(|r| r.value))
    })
    .await?;
    cp.rest.put(&format!("/connectors/{connector}/stop"), &json!(null)).await?.expect_status(204, "stop")?;
    wait_until(TIMEOUT, "the connector stopped", || async {
        let s = cp.rest.status(connector).await?;
        Ok((s["connector"]["state"] == "STOPPED").then_some(()))
    })
    .await?;

    // While it is stopped: two ALTERs of t with rows between, and a table created and altered.
    db.sql(&format!(
        "USE {name};
         INSERT INTO t VALUES (2, 20);
         ALTER TABLE t ADD COLUMN b VARCHAR(10) NOT NULL DEFAULT 'x';
         INSERT INTO t VALUES (3, 30, 'y');
         ALTER TABLE t DROP COLUMN a, ADD COLUMN c INT;
         INSERT INTO t VALUES (4, 'z', 40);
         CREATE TABLE t2 (k INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO t2 VALUES (1, 1);
         ALTER TABLE t2 CHANGE v w BIGINT, ADD COLUMN s VARCHAR(5) DEFAULT 'q' FIRST;
         INSERT INTO t2 (k, w) VALUES (2, 2);
         CREATE TABLE t3 (id INT PRIMARY KEY);
         ALTER TABLE t3 ADD COLUMN v SERIAL;
         INSERT INTO t3 (id) VALUES (1);"
    ))?;
    cp.rest.put(&format!("/connectors/{connector}/resume"), &json!(null)).await?.expect_status(202, "resume")?;
    let rows_t = wait_until(TIMEOUT, "the rows of t", || async {
        let r = rows(kafka, &topic).await?;
        Ok((r.len() >= 4).then_some(r))
    })
    .await?;
    let rows_t2 = wait_until(TIMEOUT, "the rows of t2", || async {
        let r = read_keyed(kafka, &topic2).await?;
        let afters: Vec<Value> = r
            .into_iter()
            .filter_map(|r| r.value.and_then(|v| serde_json::from_str::<Value>(&v).ok()))
            .map(|v| v["after"].clone())
            .collect();
        Ok((afters.len() >= 2).then_some(afters))
    })
    .await?;
    // SERIAL is not parsed: that statement's structure is read from information_schema (the fallback)
    let rows_t3 = wait_until(TIMEOUT, "the row of t3", || async {
        let r = rows(kafka, &format!("{prefix}.{name}.t3")).await?;
        Ok((!r.is_empty()).then_some(r))
    })
    .await?;
    ensure!(rows_t3[0].2 == json!({"id": 1, "v": 1}), "row of t3: {rows_t3:?}");
    let status = cp.rest.status(connector).await?;
    ensure!(task_state(&status, 0).as_deref() == Some("RUNNING"), "after the backlog: {status}");
    let afters: Vec<Value> = rows_t.iter().map(|(_, _, a)| a.clone()).collect();
    env.note(format!("t: {afters:?}"));
    env.note(format!("t2: {rows_t2:?}"));
    let expected = vec![
        json!({"id": 1, "a": 10}),
        json!({"id": 2, "a": 20}),
        json!({"id": 3, "a": 30, "b": "y"}),
        json!({"id": 4, "b": "z", "c": 40}),
    ];
    ensure!(afters == expected, "rows of t:\n  got      {afters:?}\n  expected {expected:?}");
    let expected2 = vec![json!({"k": 1, "v": 1}), json!({"s": "q", "k": 2, "w": 2})];
    ensure!(rows_t2 == expected2, "rows of t2:\n  got      {rows_t2:?}\n  expected {expected2:?}");

    // The schema change events carry the parsed structures: INT as written has no display width (as Debezium's).
    let changes: Vec<Value> = read_keyed(kafka, &prefix)
        .await?
        .into_iter()
        .filter_map(|r| r.value.and_then(|v| serde_json::from_str(&v).ok()))
        .collect();
    let columns = |ddl_start: &str| -> Option<Vec<(String, Value)>> {
        let v = changes.iter().find(|v| v["ddl"].as_str().is_some_and(|d| d.starts_with(ddl_start)))?;
        let cols = v["tableChanges"][0]["table"]["columns"].as_array()?;
        Some(cols.iter().map(|c| (c["name"].as_str().unwrap_or_default().to_string(), c["length"].clone())).collect())
    };
    let cols = |v: &[(&str, Value)]| Some(v.iter().map(|(n, l)| (n.to_string(), l.clone())).collect::<Vec<_>>());
    ensure!(
        columns("ALTER TABLE t ADD") == cols(&[("id", json!(11)), ("a", json!(11)), ("b", json!(10))]),
        "{changes:?}"
    );
    ensure!(
        columns("ALTER TABLE t DROP") == cols(&[("id", json!(11)), ("b", json!(10)), ("c", Value::Null)]),
        "{changes:?}"
    );
    ensure!(columns("CREATE TABLE t2") == cols(&[("k", Value::Null), ("v", Value::Null)]), "{changes:?}");
    let _ = cp.rest.delete(&format!("/connectors/{connector}")).await;
    db.sql(&format!("DROP DATABASE {name}"))?;
    Ok(())
}
