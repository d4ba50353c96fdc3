//! End to end through the real Sluice binaries (control plane + agent), the real Kafka, PostgreSQL and MariaDB:
//! PostgreSQL → Sluice's Debezium `PostgresConnector` → Kafka → `io.debezium.transforms.ExtractNewRecordState` (and
//! a `RegexRouter` naming the table) on the sink → Confluent's `JdbcSinkConnector` (upsert, `pk.mode=record_key`,
//! `delete.enabled=true`, `auto.create`, `auto.evolve`) into MariaDB. After a snapshot, then streamed inserts,
//! updates (to NULL too), deletes, a primary-key change, a composite-key table and an `ALTER TABLE ADD COLUMN`
//! mid-stream, the MariaDB tables hold exactly the PostgreSQL tables' rows (compared as text, column by column).
//! Skipped with a message when PostgreSQL (`PGHOST`, `SLUICE_TEST_PG`) or MariaDB (`SLUICE_TEST_MYSQL`) is not
//! configured.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_integration_tests::jdbc::Db;
use sluice_integration_tests::postgres::Postgres;
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(120);
const SNAPSHOT_ROWS: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cdc_to_mariadb_jdbc_sink() {
    let env = TestEnv::new("cdc_postgres_to_mariadb").await;
    let (Some(pg), true, true) = (Postgres::from_env(), Db::Postgres.url().is_some(), Db::MariaDb.url().is_some())
    else {
        env.note("PostgreSQL (PGHOST, SLUICE_TEST_PG) or MariaDB (SLUICE_TEST_MYSQL) not configured: skipped");
        return;
    };
    env.finish(run(&env, &pg).await);
}

type Rows = Vec<Vec<Option<String>>>;

/// The source table as text: the same rendering as [`sink_items`] gives on MariaDB.
fn source_items_sql(table: &str, with_extra: bool) -> String {
    format!(
        "SELECT id::text, name, amount::text, score::text, CASE WHEN flag THEN '1' WHEN NOT flag THEN '0' END, \
         born::text, to_char(seen, 'YYYY-MM-DD HH24:MI:SS.US'), \
         to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), big::text, note{} FROM {table} ORDER BY {table}.id",
        if with_extra { ", extra" } else { "" }
    )
}

fn sink_items_sql(table: &str, with_extra: bool) -> String {
    format!(
        "SELECT CAST(id AS CHAR), name, CAST(amount AS CHAR), CAST(score AS CHAR), CAST(flag AS CHAR), \
         CAST(born AS CHAR), DATE_FORMAT(seen, '%Y-%m-%d %H:%i:%s.%f'), \
         DATE_FORMAT(CONVERT_TZ(`at`, @@session.time_zone, '+00:00'), '%Y-%m-%d %H:%i:%s.%f'), CAST(big AS CHAR), \
         note{} FROM `{table}` ORDER BY `{table}`.id",
        if with_extra { ", extra" } else { "" }
    )
}

/// Waits until the MariaDB rows equal the PostgreSQL rows; on timeout, says how they differ.
async fn wait_same(what: &str, source_sql: &str, sink_sql: &str) -> anyhow::Result<usize> {
    let expected: Rows = Db::Postgres.rows(source_sql).await?;
    let last: std::sync::Mutex<Result<Rows, String>> = std::sync::Mutex::new(Err("not read yet".into()));
    let ok = wait_until(TIMEOUT, what.to_string(), || async {
        let rows = Db::MariaDb.rows(sink_sql).await.map_err(|e| format!("{e:#}"));
        let same = matches!(&rows, Ok(rows) if *rows == expected);
        *last.lock().unwrap_or_else(|p| p.into_inner()) = rows;
        Ok(same.then_some(()))
    })
    .await;
    if let Err(e) = ok {
        let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
        let detail = match &last {
            Err(e) => format!("sink not readable: {e}"),
            Ok(rows) => {
                let missing: Vec<_> = expected.iter().filter(|r| !rows.contains(r)).take(3).collect();
                let extra: Vec<_> = rows.iter().filter(|r| !expected.contains(r)).take(3).collect();
                format!(
                    "{} rows in PostgreSQL, {} in MariaDB; missing or different {missing:?}; unexpected {extra:?}",
                    expected.len(),
                    rows.len()
                )
            }
        };
        return Err(e.context(detail));
    }
    Ok(expected.len())
}

async fn run(env: &TestEnv, pg: &Postgres) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("e2e").replace(['-', '.'], "_").to_lowercase();
    let prefix = format!("p{name}");
    let items = format!("{name}_items");
    let pairs = format!("{name}_pairs");
    pg.script(&format!(
        "CREATE TABLE {items} (id int PRIMARY KEY, name text NOT NULL, amount numeric(10,2), score double precision,
           flag boolean, born date, seen timestamp(6), at timestamptz, big bigint, note varchar(40));
         INSERT INTO {items} SELECT g, 'name ' || g, g * 1.25, g / 8.0, g % 2 = 0, DATE '2024-01-01' + g,
           TIMESTAMP '2024-01-02 03:04:05.123456' + g * INTERVAL '1 minute 1.5 second',
           TIMESTAMPTZ '2024-06-01 12:00:00.5+02' + g * INTERVAL '1 hour', g * 10000000000,
           CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END
         FROM generate_series(1, {SNAPSHOT_ROWS}) g;
         CREATE TABLE {pairs} (a int, b varchar(20), v int, PRIMARY KEY (a, b));
         INSERT INTO {pairs} VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 20);"
    ))?;
    let (source_name, sink_name) = (format!("{name}-source"), format!("{name}-sink"));
    let cp = ControlPlane::start(env, &env.unique("e2e"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    // The sink first, so that its topics.regex subscription must find the CDC topics created after it.
    let (url, user, password) = Db::MariaDb.jdbc()?;
    let sink = json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics.regex": format!("{prefix}\\.public\\..*"),
        // The sink starts before the CDC topics exist: it looks for new matches every second (Kafka Connect's key;
        // the default, as in Kafka Connect, is 5 minutes).
        "consumer.override.metadata.max.age.ms": "1000",
        "connection.url": url,
        "connection.user": user,
        "connection.password": password,
        "insert.mode": "upsert",
        "pk.mode": "record_key",
        "delete.enabled": "true",
        "auto.create": "true",
        "auto.evolve": "true",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "transforms": "unwrap,route",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "[^.]+\\.[^.]+\\.(.+)",
        "transforms.route.replacement": "$1",
    });
    cp.rest.create_connector(&sink_name, &sink).await?;
    cp.rest.wait_for_status(&sink_name, "RUNNING", TIMEOUT).await?;

    let mut source = pg.connector_keys();
    for (k, v) in [
        ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".to_string()),
        ("topic.prefix", prefix.clone()),
        ("plugin.name", "pgoutput".into()),
        ("slot.name", prefix.clone()),
        ("publication.name", format!("{prefix}_pub")),
        ("table.include.list", format!("public\\.{name}_.*")),
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
    ] {
        source.insert(k.into(), json!(v));
    }
    cp.rest.create_connector(&source_name, &Value::Object(source)).await?;
    cp.rest.wait_for_status(&source_name, "RUNNING", TIMEOUT).await?;

    let pairs_source = format!("SELECT a::text, b, v::text FROM {pairs} t ORDER BY t.a, t.b");
    let pairs_sink = format!("SELECT CAST(a AS CHAR), b, CAST(v AS CHAR) FROM `{pairs}` t ORDER BY t.a, t.b");
    let n =
        wait_same("the snapshot in MariaDB", &source_items_sql(&items, false), &sink_items_sql(&items, false)).await?;
    wait_same("the composite-key table's snapshot", &pairs_source, &pairs_sink).await?;
    env.note(format!("snapshot: {n} rows reproduced"));

    // Streaming: inserts, updates (values, to NULL, from NULL), deletes, a primary-key change, on both tables.
    pg.script(&format!(
        "INSERT INTO {items} (id, name, amount, score, flag, born, seen, at, big, note)
           SELECT g, 'new ' || g, -g * 0.01, -g / 3.0, g % 3 = 0, DATE '1999-12-31' - g,
             TIMESTAMP '1970-01-01 00:00:00' + g * INTERVAL '1.000001 second', TIMESTAMPTZ '2030-01-01 00:00:00Z',
             -g, 'ünï ' || g
           FROM generate_series(1001, 1200) g;
         UPDATE {items} SET name = name || ' upd', amount = amount + 0.5, note = NULL WHERE id % 5 = 0;
         UPDATE {items} SET note = 'was null', flag = NULL, at = NULL WHERE note IS NULL AND id % 7 = 0;
         DELETE FROM {items} WHERE id % 11 = 0;
         BEGIN; UPDATE {items} SET id = 5000 WHERE id = 1; DELETE FROM {items} WHERE id = 2; COMMIT;
         UPDATE {items} SET id = id + 10000 WHERE id BETWEEN 1001 AND 1010;
         INSERT INTO {pairs} VALUES (3, 'z', 30);
         UPDATE {pairs} SET v = 12 WHERE a = 1 AND b = 'y';
         UPDATE {pairs} SET b = 'w' WHERE a = 2;
         DELETE FROM {pairs} WHERE a = 1 AND b = 'x';"
    ))?;
    let n =
        wait_same("the streamed changes in MariaDB", &source_items_sql(&items, false), &sink_items_sql(&items, false))
            .await?;
    wait_same("the composite-key table's changes", &pairs_source, &pairs_sink).await?;
    env.note(format!("after inserts, updates, deletes and key changes: {n} rows reproduced"));

    // ALTER TABLE mid-stream: the new column reaches MariaDB through auto.evolve.
    pg.script(&format!(
        "ALTER TABLE {items} ADD COLUMN extra text;
         UPDATE {items} SET extra = 'e' || id WHERE id % 4 = 0;
         INSERT INTO {items} (id, name, extra) VALUES (7000, 'after alter', 'x');
         DELETE FROM {items} WHERE id % 13 = 0;"
    ))?;
    let n =
        wait_same("the rows after ALTER TABLE", &source_items_sql(&items, true), &sink_items_sql(&items, true)).await?;
    env.note(format!("after ALTER TABLE ADD COLUMN: {n} rows reproduced"));

    for c in [&sink_name, &source_name] {
        let _ = cp.rest.delete(&format!("/connectors/{c}")).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.drop_slot(&prefix);
    let _ = pg.script(&format!("DROP PUBLICATION IF EXISTS {prefix}_pub; DROP TABLE {items}, {pairs};"));
    let _ = Db::MariaDb.execute(&format!("DROP TABLE IF EXISTS `{items}`, `{pairs}`")).await;
    Ok(())
}
