//! The definition of "compatible" for the MariaDB connector: the real Debezium MariaDbConnector 3.5.0.Final (in real
//! Kafka Connect 4.1.2 standalone, jars from `deploy/compat/plugins/debezium-mariadb`) and Sluice capture the same
//! scripted changes into two topic prefixes; every key, value and header of every data topic must match after the
//! normalisation below.
//!
//! Normalisation (values that differ by nature; their type and shape are still compared):
//! - the topic prefix (in topic names, schema names, `source.name`, the `connectorLogicalName` header);
//! - `ts_ms`/`ts_us`/`ts_ns` of the envelope and of `source` (processing and snapshot times): numbers -> 0;
//! - `source.file`, `source.pos`, `source.gtid` of snapshot records (each connector snapshots at its own position);
//! - the `__debezium.context.runId` header (a UUIDv7 per task start).
//!
//! The schema change topic (`<prefix>`, `include.schema.changes`) is compared too, for the statements of the test's
//! own database and the server-wide one (`databaseName` empty): other databases on the shared server change while
//! the test runs. The structures there come from each side's DDL parser (Sluice's applies each statement to the
//! structure before it), down to the integer display width as written (`INT` → `length` null, `int(11)` → 11).
//!
//! Needs MariaDB (MYSQL_HOST/MYSQL_TCP_PORT/MYSQL_USER/MYSQL_PWD), Java, and Kafka Connect's jars under
//! ~/.cache/sluice/connect-4.1.2/libs (deploy/bench/run downloads them); skipped with a message when one is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_integration_tests::mariadb::{KeyedRecord, MariaDb, read_keyed};
use sluice_integration_tests::*;

fn cache() -> PathBuf {
    std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/sluice"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_matches_debezium() {
    let Some(db) = MariaDb::from_env() else {
        eprintln!("MYSQL_HOST is not set: skipped");
        return;
    };
    let libs = cache().join("connect-4.1.2/libs");
    if !libs.join(".complete").exists() {
        eprintln!("{} missing (deploy/bench/run downloads Kafka Connect): skipped", libs.display());
        return;
    }
    let env = TestEnv::new("mysql_cdc_differential").await;
    env.finish(run(&env, &db, &libs).await);
}

/// Replaces the prefix and the values that differ by nature (see the module doc).
fn normalize(v: &mut Value, prefix: &str, snapshot: bool) {
    fn walk(v: &mut Value, prefix: &str) {
        match v {
            Value::String(s) => {
                if s == prefix {
                    *s = "PREFIX".into();
                } else if let Some(rest) = s.strip_prefix(&format!("{prefix}.")) {
                    *s = format!("PREFIX.{rest}");
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, prefix)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, prefix)),
            _ => {}
        }
    }
    walk(v, prefix);
    let zero = |x: &mut Value, what: &str| {
        if x.is_number() {
            *x = json!(0);
        } else if !x.is_null() {
            *x = json!(format!("NOT A NUMBER: {what}"));
        }
    };
    let Some(p) = v.get_mut("payload").filter(|p| p.is_object()) else { return };
    for k in ["ts_ms", "ts_us", "ts_ns"] {
        if let Some(x) = p.get_mut(k) {
            zero(x, k);
        }
    }
    if let Some(s) = p.get_mut("source").filter(|s| s.is_object()) {
        for k in ["ts_ms", "ts_us", "ts_ns"] {
            if let Some(x) = s.get_mut(k) {
                zero(x, k);
            }
        }
        if snapshot {
            if let Some(x) = s.get_mut("pos") {
                zero(x, "pos");
            }
            for k in ["file", "gtid"] {
                if let Some(x) = s.get_mut(k).filter(|x| x.is_string()) {
                    *x = json!("S");
                }
            }
        }
    }
}

/// A normalised record: key, value, headers.
type Normalized = (Value, Value, Vec<(String, String)>);

/// JSON text, fields in their order.
fn text(v: &Value) -> String {
    v.to_string()
}

fn normalized(records: &[KeyedRecord], prefix: &str) -> Vec<Normalized> {
    records
        .iter()
        .map(|r| {
            let parse = |t: &Option<String>| {
                t.as_deref().map(|t| serde_json::from_str(t).unwrap_or(json!(t))).unwrap_or(Value::Null)
            };
            let mut k = parse(&r.key);
            let mut v = parse(&r.value);
            let snapshot = v["payload"]["op"] == "r"
                || (v["payload"]["op"].is_null() && v["payload"]["source"]["snapshot"].as_str() != Some("false"));
            normalize(&mut k, prefix, snapshot);
            normalize(&mut v, prefix, snapshot);
            let headers = r
                .headers
                .iter()
                .map(|(k, val)| {
                    let val = if k == "__debezium.context.runId" {
                        "RUN".to_string()
                    } else if val == prefix {
                        "PREFIX".to_string()
                    } else {
                        val.clone()
                    };
                    (k.clone(), val)
                })
                .collect();
            (k, v, headers)
        })
        .collect()
}

async fn run(env: &TestEnv, db: &MariaDb, libs: &std::path::Path) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let plugin_dir = {
        let out = Command::new(repo_root().join("deploy/compat/plugins/debezium-mariadb")).output()?;
        if !out.status.success() {
            bail!("deploy/compat/plugins/debezium-mariadb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let plugin_path = env.path("plugins");
    std::fs::create_dir_all(&plugin_path)?;
    std::os::unix::fs::symlink(&plugin_dir, plugin_path.join("debezium-mariadb"))?;

    let name = env.unique("diff").replace(['-', '.'], "_");
    db.sql(&format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"))?;
    db.sql(&format!(
        "USE {name};
         CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, b BOOLEAN, si SMALLINT UNSIGNED, mi MEDIUMINT, \
           bi BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(30,10), ch CHAR(3), \
           vc VARCHAR(20) NOT NULL DEFAULT 'dflt', tx TEXT, bin VARBINARY(4), bl BLOB, bit1 BIT(1), bit10 BIT(10), \
           e ENUM('new','old'), st SET('a','b','c'), dt DATE, tm TIME, tm3 TIME(3), dtm DATETIME, dtm3 DATETIME(3), \
           dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, yr YEAR, js JSON, n INT NOT NULL DEFAULT 7);
         CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(50) NOT NULL, amount DECIMAL(10,2), updated DATETIME(6));
         CREATE TABLE nopk (a INT, b VARCHAR(10));
         CREATE TABLE bdefs (id INT PRIMARY KEY, raw VARBINARY(4) DEFAULT x'01ff', txt VARCHAR(4) DEFAULT 'ü', \
           av VARBINARY(4) DEFAULT 'ab', bl BLOB DEFAULT x'01ff');
         INSERT INTO bdefs (id) VALUES (1);
         INSERT INTO types VALUES (1, -5, TRUE, 65535, -8388608, -9223372036854775808, 18446744073709551615, 1.5, \
           -0.25, 12.34, -12345678901234567890.0123456789, 'abc', 'hello', 'text', x'01ff', x'00', b'1', b'1000000001', \
           'old', 'a,c', '1990-05-17', '12:34:56', '-01:02:03.456', '2024-01-02 03:04:05', '2024-01-02 03:04:05.123', \
           '2024-01-02 03:04:05.123456', '2024-01-02 01:04:05.123', 2024, '{{\"a\": [1, true]}}', 3);
         INSERT INTO types (id) VALUES (2);
         INSERT INTO orders VALUES (1, 'apple', 2.25, '2026-01-02 03:04:05.000001'), (2, 'pear', NULL, NULL);
         INSERT INTO nopk VALUES (1, 'x');"
    ))?;

    // Kafka Connect standalone with Debezium, Sluice (control plane + agent) with its own connector.
    let port = free_port();
    let props = write_properties(
        &env.path("connect.properties"),
        &[
            ("bootstrap.servers", kafka),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("offset.storage.file.filename", &env.path("connect.offsets").display().to_string()),
            ("offset.flush.interval.ms", "1000"),
            ("plugin.path", &plugin_path.display().to_string()),
            ("listeners", &format!("http://127.0.0.1:{port}")),
        ],
    )?;
    let mut cmd = Command::new("java");
    cmd.args(["-Xmx1G", "-cp", &format!("{}/*", libs.display()), "org.apache.kafka.connect.cli.ConnectStandalone"])
        .arg(&props);
    let _connect = Process::spawn(env, "kafka-connect", cmd)?;
    let connect = RestClient::new(format!("http://127.0.0.1:{port}"));
    wait_until(Duration::from_secs(120), "Kafka Connect REST", || async {
        Ok(connect.get("/connectors").await.ok().filter(|r| r.status == 200).map(|_| ()))
    })
    .await?;
    let cp = ControlPlane::start(env, &env.unique("diff"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    let dbz = format!("dbz{name}");
    let sl = format!("sl{name}");
    let config = |prefix: &str, server_id: u32| {
        let mut c = db.connector_keys();
        for (k, v) in [
            ("connector.class", "io.debezium.connector.mariadb.MariaDbConnector".to_string()),
            ("tasks.max", "1".into()),
            ("topic.prefix", prefix.into()),
            ("database.server.id", server_id.to_string()),
            ("database.include.list", name.clone()),
            ("schema.history.internal.kafka.topic", format!("{prefix}-history")),
            ("schema.history.internal.kafka.bootstrap.servers", kafka.to_string()),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("provide.transaction.metadata", "true".into()),
            ("heartbeat.interval.ms", "1000".into()),
            // a key for the table without a primary key, and another one for `orders` (changed by an update below)
            ("message.key.columns", format!("{name}.nopk:a;{name}\\.ORDERS:item,id")),
            // column mappers: a truncation (of a key column too), a mask (null in one row), a v1 hash of a
            // VARCHAR(20) (cut to 20) and a v2 hash of a TEXT column (null in one row)
            ("column.truncate.to.3.chars", format!("{name}\\.orders\\.item")),
            ("column.mask.with.5.chars", format!("{name}\\.types\\.ch")),
            ("column.mask.hash.SHA-256.with.salt.pepper", format!("{name}\\.types\\.vc")),
            ("column.mask.hash.v2.MD5.with.salt.salt", format!("{name}\\.types\\.tx")),
            // the snapshot reads only a part of `orders`, with the columns in another order
            ("snapshot.select.statement.overrides", format!("{name}.orders")),
            (
                &*format!("snapshot.select.statement.overrides.{name}.orders").leak(),
                format!("SELECT updated, amount, item, id FROM {name}.orders WHERE id > 1"),
            ),
        ] {
            c.insert(k.into(), json!(v));
        }
        Value::Object(c)
    };
    let base_id = 20000 + std::process::id() % 10000;
    connect.create_connector("dbz", &config(&dbz, base_id)).await.context("creating the Debezium connector")?;
    cp.rest.create_connector("sl", &config(&sl, base_id + 1)).await?;
    for (rest, n) in [(&connect, "dbz"), (&cp.rest, "sl")] {
        let status = rest.wait_for_status(n, "RUNNING", Duration::from_secs(120)).await?;
        env.note(format!("{n}: {status}"));
    }
    // bdefs: a binary column's default, which SHOW CREATE TABLE sends as raw bytes (not UTF-8).
    let tables = ["types", "orders", "nopk", "later", "bdefs", "typed", "aliased"];
    let count = |prefix: String| {
        let name = name.clone();
        async move {
            let mut n = 0;
            for t in tables {
                n += read_keyed(kafka, &format!("{prefix}.{name}.{t}")).await?.len();
            }
            anyhow::Ok(n)
        }
    };
    for p in [&dbz, &sl] {
        wait_until(Duration::from_secs(120), "the snapshot", || async {
            Ok((count(p.clone()).await? >= 5).then_some(()))
        })
        .await?;
    }

    // The scripted changes.
    db.sql(&format!(
        "USE {name};
         INSERT INTO types VALUES (3, 127, FALSE, 0, 8388607, 9223372036854775807, 0, -3.4E38, 1.0E-7, -0.01, 0, '', \
           '', '', x'', x'', b'0', b'0000000000', 'new', '', '1969-12-31', '-838:59:59', '838:59:59.999', \
           '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01.000', \
           1901, '[]', 0);
         INSERT INTO types (id, vc) VALUES (4, 'x');
         UPDATE types SET tx = 'changed', dec1 = 99.99 WHERE id = 1;
         UPDATE types SET id = 10 WHERE id = 2;
         DELETE FROM types WHERE id = 3;
         START TRANSACTION; INSERT INTO orders VALUES (3, 'plum', 1.00, NULL); UPDATE orders SET amount = 3 WHERE id = 1; \
           INSERT INTO nopk VALUES (2, 'y'); COMMIT;
         UPDATE nopk SET b = 'z' WHERE a = 1;
         DELETE FROM nopk WHERE a = 2;
         ALTER TABLE orders ADD COLUMN qty INT NOT NULL DEFAULT 5 AFTER item;
         INSERT INTO orders (id, item, amount) VALUES (4, 'fig', 4.5);
         UPDATE orders SET qty = 6 WHERE id = 4;
         UPDATE orders SET item = 'fig2' WHERE id = 4;
         CREATE TABLE later (k VARCHAR(10) PRIMARY KEY, v DOUBLE);
         INSERT INTO later VALUES ('a', 0.5), ('b', NULL);
         TRUNCATE TABLE nopk;
         DELETE FROM later WHERE k = 'b';
         ALTER TABLE later ADD COLUMN n BIGINT UNSIGNED NOT NULL DEFAULT 0, ADD COLUMN w INT(11) COMMENT 'w' AFTER k, \
           MODIFY v DECIMAL(8,3);
         INSERT INTO later VALUES ('c', 3, 1.5, 7);
         ALTER TABLE later RENAME COLUMN w TO w2, ALTER COLUMN n SET DEFAULT 5;
         INSERT INTO later (k, v) VALUES ('d', 2.25);
         CREATE TABLE `typed` (id INT(11) NOT NULL AUTO_INCREMENT, s SMALLINT(6) DEFAULT NULL, \
           e ENUM('x','y') DEFAULT 'x', t TIMESTAMP(6) NULL, c CHAR(2) CHARACTER SET latin1, dc DECIMAL, \
           PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
         INSERT INTO typed (s, t, c, dc) VALUES (1, '2024-01-02 03:04:05.123456', 'ab', 12);
         CREATE TABLE aliased (id INTEGER PRIMARY KEY, b BOOLEAN, b2 BOOL DEFAULT TRUE, n NUMERIC(6,2), nd NUMERIC, \
           r REAL, i1 INT1, i2 INT2, i3 INT3, i4 INT4, i8 INT8, mi MIDDLEINT, ch CHARACTER(2), nc NCHAR(2), \
           nv NVARCHAR(5), fx FIXED(5,1), fl FLOAT(30), fl2 FLOAT(10), dp DOUBLE PRECISION, dc DEC(4,1));
         INSERT INTO aliased VALUES (1, TRUE, FALSE, 1234.5, 7, 1.5, -1, -2, -3, -4, -8, 5, 'ab', 'cd', 'efg', 12.3, \
           0.25, 0.5, 2.5, 123.4), (2, NULL, DEFAULT, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
           NULL, NULL, NULL, NULL, NULL, NULL);
         ALTER TABLE aliased ADD COLUMN added BOOLEAN NOT NULL DEFAULT FALSE, MODIFY COLUMN b2 INTEGER;
         INSERT INTO aliased (id, b, added, b2) VALUES (3, FALSE, TRUE, 9);"
    ))?;
    // Settle: both sides reach the same count and stay there.
    let mut last = (0, 0);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (count(dbz.clone()).await?, count(sl.clone()).await?);
        if now == last && now.0 > 6 {
            break;
        }
        last = now;
    }
    env.note(format!("records: Debezium {}, Sluice {}", last.0, last.1));

    let mut mismatches = Vec::new();
    let mut compared = 0;
    for t in tables.iter().map(|t| format!("{name}.{t}")).chain(["transaction".to_string()]) {
        let a = normalized(&read_keyed(kafka, &format!("{dbz}.{t}")).await?, &dbz);
        let b = normalized(&read_keyed(kafka, &format!("{sl}.{t}")).await?, &sl);
        let dump = |side: &[Normalized]| side.iter().map(|(k, v, h)| format!("{k}\t{v}\t{h:?}\n")).collect::<String>();
        let _ = std::fs::write(env.path(&format!("debezium-{t}.jsonl")), dump(&a));
        let _ = std::fs::write(env.path(&format!("sluice-{t}.jsonl")), dump(&b));
        if a.len() != b.len() {
            mismatches.push(format!("{t}: Debezium wrote {} records, Sluice {}", a.len(), b.len()));
        }
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            compared += 1;
            for (what, l, r) in [("key", &x.0, &y.0), ("value", &x.1, &y.1)] {
                // as text: field order counts (serde_json's map equality would ignore it)
                if text(l) != text(r) {
                    mismatches.push(format!("{t}[{i}] {what}:\n  debezium: {l}\n  sluice:   {r}"));
                }
            }
            if x.2 != y.2 {
                mismatches.push(format!("{t}[{i}] headers:\n  debezium: {:?}\n  sluice:   {:?}", x.2, y.2));
            }
        }
    }
    // Heartbeats come at times of each connector's own: the first one of each must have the same shape.
    let a = normalized(&read_keyed(kafka, &format!("__debezium-heartbeat.{dbz}")).await?, &dbz);
    let b = normalized(&read_keyed(kafka, &format!("__debezium-heartbeat.{sl}")).await?, &sl);
    match (a.first(), b.first()) {
        (Some(x), Some(y)) => {
            compared += 1;
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(p) = v.get_mut("payload").and_then(|p| p.get_mut("ts_ms")) {
                    *p = json!(0);
                }
                text(&v)
            };
            for (what, l, r) in [("key", strip(&x.0), strip(&y.0)), ("value", strip(&x.1), strip(&y.1))] {
                if l != r {
                    mismatches.push(format!("heartbeat {what}:\n  debezium: {l}\n  sluice:   {r}"));
                }
            }
            if x.2 != y.2 {
                mismatches.push(format!("heartbeat headers:\n  debezium: {:?}\n  sluice:   {:?}", x.2, y.2));
            }
        }
        (x, y) => mismatches.push(format!("heartbeats: Debezium {}, Sluice {}", x.is_some(), y.is_some())),
    }
    // The schema change topic: the statements of this test's database and the server-wide ones.
    let ours = |records: Vec<Normalized>| -> Vec<Normalized> {
        records
            .into_iter()
            .filter(|(_, v, _)| {
                let db = v["payload"]["databaseName"].as_str();
                db == Some("") || db == Some(name.as_str())
            })
            .collect()
    };
    let a = ours(normalized(&read_keyed(kafka, &dbz).await?, &dbz));
    let b = ours(normalized(&read_keyed(kafka, &sl).await?, &sl));
    let dump = |side: &[Normalized]| side.iter().map(|(k, v, h)| format!("{k}\t{v}\t{h:?}\n")).collect::<String>();
    let _ = std::fs::write(env.path("debezium-schema-changes.jsonl"), dump(&a));
    let _ = std::fs::write(env.path("sluice-schema-changes.jsonl"), dump(&b));
    if a.len() != b.len() {
        mismatches.push(format!("schema changes: Debezium wrote {} records, Sluice {}", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        compared += 1;
        for (what, l, r) in [("key", &x.0, &y.0), ("value", &x.1, &y.1)] {
            if text(l) != text(r) {
                mismatches.push(format!("schema change [{i}] {what}:\n  debezium: {l}\n  sluice:   {r}"));
            }
        }
        if x.2 != y.2 {
            mismatches.push(format!("schema change [{i}] headers:\n  debezium: {:?}\n  sluice:   {:?}", x.2, y.2));
        }
    }
    env.note(format!("compared {compared} records, {} of them schema change events", a.len()));
    let _ = std::fs::write(env.path("mismatches.txt"), mismatches.join("\n"));
    if !mismatches.is_empty() {
        for m in mismatches.iter().take(15) {
            env.note(m);
        }
        bail!("{} differences (all in {})", mismatches.len(), env.path("mismatches.txt").display());
    }
    db.sql(&format!("DROP DATABASE {name}"))?;
    Ok(())
}
