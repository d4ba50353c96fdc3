//! The definition of "compatible" for the PostgreSQL connector: the real Debezium PostgresConnector 3.6.1.Final (in
//! real Kafka Connect 4.1.2 standalone, jars from `deploy/compat/plugins/debezium-postgres`) and Sluice capture the
//! same scripted changes into two topic prefixes (each with its own slot and publication); every key, value and
//! header of every data topic must match after the normalisation below.
//!
//! Normalisation (values that differ by nature; their type and shape are still compared):
//! - the topic prefix (in topic names, schema names, `source.name`, the `connectorLogicalName` header);
//! - `ts_ms`/`ts_us`/`ts_ns` of the envelope and of `source` (processing, commit and snapshot times): numbers -> 0;
//! - `source.lsn`, `source.txId`, `source.xmin` numbers -> 0 and `source.sequence` strings -> "S" (each connector
//!   has its own slot, so its own positions);
//! - the `__debezium.context.runId` header (a UUIDv7 per task start).
//!
//! Needs PostgreSQL (PGHOST... from `deploy/local/postgres env`), Java, and Kafka Connect's jars under
//! ~/.cache/sluice/connect-4.1.2/libs (deploy/bench/run downloads them); skipped with a message when one is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_integration_tests::postgres::{Postgres, TopicRecord, read_topic};
use sluice_integration_tests::*;

fn cache() -> PathBuf {
    std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/sluice"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_matches_debezium() {
    let Some(db) = Postgres::from_env() else {
        eprintln!("PGHOST is not set (eval \"$(deploy/local/postgres env)\"): skipped");
        return;
    };
    let libs = cache().join("connect-4.1.2/libs");
    if !libs.join(".complete").exists() {
        eprintln!("{} missing (deploy/bench/run downloads Kafka Connect): skipped", libs.display());
        return;
    }
    let env = TestEnv::new("postgres_cdc_differential").await;
    env.finish(run(&env, &db, &libs).await);
}

fn normalize(v: &mut Value, prefix: &str) {
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
        for k in ["ts_ms", "ts_us", "ts_ns", "lsn", "txId", "xmin"] {
            if let Some(x) = s.get_mut(k) {
                zero(x, k);
            }
        }
        if let Some(x) = s.get_mut("sequence").filter(|x| x.is_string()) {
            *x = json!("S");
        }
    }
}

type Normalized = (Value, Value, Vec<(String, String)>);

fn normalized(records: &[TopicRecord], prefix: &str) -> Vec<Normalized> {
    records
        .iter()
        .map(|r| {
            let parse = |t: &Option<String>| {
                t.as_deref().map(|t| serde_json::from_str(t).unwrap_or(json!(t))).unwrap_or(Value::Null)
            };
            let mut k = parse(&r.key);
            let mut v = parse(&r.value);
            normalize(&mut k, prefix);
            normalize(&mut v, prefix);
            let headers = r
                .headers
                .iter()
                .map(|(k, val)| {
                    let val = if k == "__debezium.context.runId" {
                        "RUN".to_string()
                    } else if val == prefix {
                        "PREFIX".to_string()
                    } else {
                        val.replace(prefix, "PREFIX")
                    };
                    (k.clone(), val)
                })
                .collect();
            (k, v, headers)
        })
        .collect()
}

async fn run(env: &TestEnv, db: &Postgres, libs: &std::path::Path) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let plugin_dir = {
        let out = Command::new(repo_root().join("deploy/compat/plugins/debezium-postgres")).output()?;
        if !out.status.success() {
            bail!("deploy/compat/plugins/debezium-postgres failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let plugin_path = env.path("plugins");
    std::fs::create_dir_all(&plugin_path)?;
    std::os::unix::fs::symlink(&plugin_dir, plugin_path.join("debezium-postgres"))?;

    let name = env.unique("pgdiff").replace(['-', '.'], "_").to_lowercase();
    let dbz = format!("dbz{name}");
    let sl = format!("sl{name}");
    // A second pair with other settings: hstore.handling.mode=map, interval.handling.mode=string (on the types table too), binary.handling.mode=hex (message content) and a
    // message prefix exclude list (the first pair has an include list).
    let dbzm = format!("dbzm{name}");
    let slm = format!("slm{name}");
    db.script(&format!(
        "CREATE EXTENSION IF NOT EXISTS hstore;
         CREATE TYPE {name}_mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE {name}_types (id int PRIMARY KEY, si smallint, bi bigint, r real, d double precision, \
           n1 numeric(10,2), n2 numeric, m money, b boolean, t text, vc varchar(20) NOT NULL, ch char(3), by bytea, \
           dt date, tm time, tm3 time(3), ts timestamp, ts3 timestamp(3), tz timestamptz, ttz timetz, iv interval, \
           u uuid, js json, jb jsonb, ai int[], at text[], b1 bit(1), ip inet, mood {name}_mood);
         CREATE TABLE {name}_orders (id int PRIMARY KEY, item text NOT NULL, amount numeric(10,2), updated timestamptz);
         CREATE TABLE {name}_nopk (a int, b text);
         CREATE TABLE {name}_full (id int PRIMARY KEY, v text);
         ALTER TABLE {name}_full REPLICA IDENTITY FULL;
         ALTER TABLE {name}_nopk REPLICA IDENTITY FULL;
         INSERT INTO {name}_types VALUES (1, -5, -9223372036854775808, 1.5, -0.25, 12.34, 3.14159, 12.5, true, 'text', \
           'hello', 'abc', '\\x01ff', '1990-05-17', '12:34:56', '01:02:03.456', '2024-01-02 03:04:05', \
           '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.123456+02', '10:34:56+02', '1 year 2 mons 3 days 04:05:06.5', \
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{\"a\": [1, true]}}', '{{\"b\": null, \"a\": 1}}', '{{1,2,NULL}}', \
           '{{x,\"y z\"}}', B'1', '192.168.0.1/24', 'happy');
         INSERT INTO {name}_types (id, vc) VALUES (2, 'x');
         INSERT INTO {name}_orders VALUES (1, 'apple', 2.25, '2026-01-02 03:04:05.000001+00'), (2, 'pear', NULL, NULL);
         INSERT INTO {name}_nopk VALUES (1, 'x');
         INSERT INTO {name}_full VALUES (1, 'one');
         CREATE TABLE {name}_defaults (id serial PRIMARY KEY, i int DEFAULT 42, ineg int DEFAULT -7, \
           si smallint DEFAULT 3, bi bigint DEFAULT 9223372036854775807, r real DEFAULT 1.5, \
           d double precision DEFAULT 2.25, n numeric(10,2) DEFAULT 12.3, nv numeric DEFAULT 3.14159, \
           m money DEFAULT 5.5, b boolean DEFAULT true, bn boolean NOT NULL DEFAULT false, t text DEFAULT 'hello', \
           vc varchar(20) NOT NULL DEFAULT 'it''s', ch char(3) DEFAULT 'ab', dt date DEFAULT '2024-02-29', \
           dtnow date DEFAULT CURRENT_DATE, tm time DEFAULT '12:34:56.789', tm3 time(3) DEFAULT '01:02:03', \
           ts timestamp DEFAULT '2024-01-02 03:04:05.123456', ts3 timestamp(3) DEFAULT '2024-01-02 03:04:05.123', \
           tz timestamptz DEFAULT '2024-01-02 03:04:05+02', tznow timestamptz DEFAULT now(), \
           tzcur timestamptz(3) DEFAULT CURRENT_TIMESTAMP, iv interval DEFAULT '1 day 02:03:04', \
           u uuid DEFAULT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', ugen uuid DEFAULT gen_random_uuid(), \
           js json DEFAULT '{{}}', jb jsonb DEFAULT '{{\"a\": 1}}', b1 bit(1) DEFAULT B'1', bits bit(3) DEFAULT B'101', \
           mood {name}_mood DEFAULT 'ok', fn int DEFAULT length('abc'), ex int DEFAULT (1 + 2), \
           ai int[] DEFAULT '{{1,2}}', nn int NOT NULL DEFAULT 5, tx text DEFAULT upper('x'), by bytea DEFAULT '\\x01', \
           tnull text DEFAULT NULL, f4n real DEFAULT 'NaN');
         INSERT INTO {name}_defaults DEFAULT VALUES;
         INSERT INTO {name}_defaults (id, i, t, nn) VALUES (100, NULL, NULL, 9);
         CREATE TABLE {name}_hstore (id int PRIMARY KEY, h hstore, hn hstore NOT NULL DEFAULT '', ha hstore[]);
         INSERT INTO {name}_hstore VALUES (1, 'a=>1, b=>NULL, \"key with space\"=>\"va\\\"l\", aa=>x, \
           c=>\"back\\\\slash\", ключ=>значение, \"😀\"=>\"tab\there\"', 'k=>v', ARRAY['x=>1'::hstore, NULL]),
           (2, NULL, '', NULL),
           (3, (SELECT hstore(array_agg('key' || i), array_agg(i::text)) FROM generate_series(1, 30) i), 'z=>\"\"', '{{}}');"
    ))?;

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
    let cp = ControlPlane::start(env, &env.unique("pgdiff"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    let config = |prefix: &str, extra: &[(&str, String)]| {
        let mut c = db.connector_keys();
        for (k, v) in [
            ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".to_string()),
            ("tasks.max", "1".into()),
            ("topic.prefix", prefix.into()),
            ("plugin.name", "pgoutput".into()),
            ("slot.name", prefix.into()),
            ("publication.name", format!("{prefix}_pub")),
            ("publication.autocreate.mode", "filtered".into()),
            ("table.include.list", format!("public\\.{name}_.*")),
            ("skipped.operations", "none".into()),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ] {
            c.insert(k.into(), json!(v));
        }
        for (k, v) in extra {
            c.insert(k.to_string(), json!(v));
        }
        Value::Object(c)
    };
    let map_mode = [
        ("table.include.list", format!("public\\.{name}_(hstore|types)")),
        ("hstore.handling.mode", "map".to_string()),
        ("interval.handling.mode", "string".to_string()),
        ("binary.handling.mode", "hex".to_string()),
        ("message.prefix.exclude.list", ".*_excluded".to_string()),
    ];
    // message.key.columns: a key for the table without a primary key, and another key (in another order than the
    // table's columns) for one with a primary key; updating `v` of the latter changes the key.
    let main = [
        ("message.prefix.include.list", format!("{name}_.*")),
        ("message.key.columns", format!("public.{name}_nopk:a;(.*)\\.{name}_FULL:v,id")),
        // column mappers: a truncation, a mask (of a column that is null in one row), a v1 hash of a varchar(20)
        // (cut to 20) and a v2 hash of a text column (null in one row)
        ("column.truncate.to.3.chars", format!("public\\.{name}_orders\\.item")),
        ("column.mask.with.5.chars", format!("public\\.{name}_types\\.ch")),
        ("column.mask.hash.SHA-256.with.salt.pepper", format!("public\\.{name}_types\\.vc")),
        ("column.mask.hash.v2.MD5.with.salt.salt", format!("public\\.{name}_types\\.t")),
        // the snapshot reads only a part of `orders`, with the columns in another order
        ("snapshot.select.statement.overrides", format!("public.{name}_orders")),
        (
            &*format!("snapshot.select.statement.overrides.public.{name}_orders").leak(),
            format!("SELECT updated, amount, item, id FROM public.{name}_orders WHERE id > 1;"),
        ),
    ];
    connect.create_connector("dbz", &config(&dbz, &main)).await.context("creating the Debezium connector")?;
    cp.rest.create_connector("sl", &config(&sl, &main)).await?;
    connect.create_connector("dbzm", &config(&dbzm, &map_mode)).await.context("creating the Debezium connector")?;
    cp.rest.create_connector("slm", &config(&slm, &map_mode)).await?;
    for (rest, n) in [(&connect, "dbz"), (&cp.rest, "sl"), (&connect, "dbzm"), (&cp.rest, "slm")] {
        let status = rest.wait_for_status(n, "RUNNING", Duration::from_secs(120)).await?;
        env.note(format!("{n}: {status}"));
    }
    let tables = ["types", "orders", "nopk", "full", "defaults", "hstore"];
    let count = |prefix: String| {
        let name = name.clone();
        async move {
            let mut n = 0;
            for t in tables {
                n += read_topic(kafka, &format!("{prefix}.public.{name}_{t}")).await?.len();
            }
            anyhow::Ok(n)
        }
    };
    for p in [&dbz, &sl] {
        wait_until(Duration::from_secs(120), "the snapshot", || async {
            Ok((count(p.clone()).await? >= 10).then_some(()))
        })
        .await?;
    }
    let hstore_topic = |p: &str| format!("{p}.public.{name}_hstore");
    for p in [&dbzm, &slm] {
        wait_until(Duration::from_secs(120), "the snapshot (map mode)", || async {
            Ok((read_topic(kafka, &hstore_topic(p)).await?.len() >= 3).then_some(()))
        })
        .await?;
    }

    // The scripted changes (each statement its own transaction unless in BEGIN/COMMIT).
    db.script(&format!(
        "INSERT INTO {name}_types VALUES (3, 32767, 9223372036854775807, -3.4e38, 1e-7, -0.01, 0, -1.25, false, '', '', \
           '', '\\x', '1969-12-31', '23:59:59.999999', '00:00:00', '1970-01-01 00:00:00.000001', '9999-12-31 23:59:59.999', \
           '1970-01-01 00:00:01+00', '00:00:00-05', '-1 days 00:00:02.3', '00000000-0000-0000-0000-000000000000', '[]', '[]', \
           '{{}}', '{{}}', B'0', '::1', 'sad');
         UPDATE {name}_types SET t = 'changed', n1 = 99.99 WHERE id = 1;
         UPDATE {name}_types SET id = 10 WHERE id = 2;
         DELETE FROM {name}_types WHERE id = 3;
         BEGIN; INSERT INTO {name}_orders VALUES (3, 'plum', 1.00, NULL); UPDATE {name}_orders SET amount = 3 WHERE id = 1; \
           INSERT INTO {name}_nopk VALUES (2, 'y'); COMMIT;
         UPDATE {name}_nopk SET b = 'z' WHERE a = 1;
         DELETE FROM {name}_nopk WHERE a = 2;
         UPDATE {name}_full SET v = 'uno' WHERE id = 1;
         DELETE FROM {name}_full WHERE id = 1;
         ALTER TABLE {name}_orders ADD COLUMN qty int;
         INSERT INTO {name}_orders (id, item, amount, qty) VALUES (4, 'fig', 4.5, 6);
         UPDATE {name}_orders SET qty = 7 WHERE id = 4;
         TRUNCATE {name}_nopk;
         DELETE FROM {name}_orders WHERE id = 2;
         INSERT INTO {name}_hstore VALUES (4, 'x=>1, y=>2', 'n=>NULL', ARRAY['q=>\"r s\"'::hstore]);
         UPDATE {name}_hstore SET h = h || 'added=>yes'::hstore WHERE id = 1;
         DELETE FROM {name}_hstore WHERE id = 2;
         SELECT pg_logical_emit_message(false, '{name}_plain', 'hello');
         SELECT pg_logical_emit_message(true, '{name}_tx', 'alone in a transaction');
         BEGIN; INSERT INTO {name}_orders VALUES (5, 'kiwi', 1, NULL); \
           SELECT pg_logical_emit_message(true, '{name}_tx', '\\x00ff'::bytea); \
           UPDATE {name}_orders SET qty = 1 WHERE id = 5; COMMIT;
         SELECT pg_logical_emit_message(false, '{name}_excluded', 'not for the second pair');
         SELECT pg_logical_emit_message(false, 'other_{name}', 'only for the second pair');"
    ))?;
    // Defaults changed while streaming: each step waits until both connectors have read the one before, so the
    // catalog each reads on the next relation message is the same (both read it out of band, as Debezium does).
    let defaults_topic = |p: &str| format!("{p}.public.{name}_defaults");
    let mut expected = 2;
    for (step, adds) in [
        (format!("INSERT INTO {name}_defaults (id) VALUES (2);"), 1),
        (
            format!(
                "ALTER TABLE {name}_defaults ALTER COLUMN i SET DEFAULT 43, ALTER COLUMN vc SET DEFAULT 'x'::text, \
                   ALTER COLUMN t DROP DEFAULT; \
                 ALTER TABLE {name}_defaults ADD COLUMN added text NOT NULL DEFAULT 'new', \
                   ADD COLUMN added_ts timestamptz DEFAULT '2020-01-01 00:00:00+00', ADD COLUMN added_fn date DEFAULT now(); \
                 INSERT INTO {name}_defaults (id) VALUES (3);"
            ),
            1,
        ),
        (
            format!(
                "UPDATE {name}_defaults SET t = 'x', i = NULL WHERE id = 3; DELETE FROM {name}_defaults WHERE id = 2;"
            ),
            3,
        ),
    ] {
        db.script(&step)?;
        expected += adds;
        for p in [&dbz, &sl] {
            wait_until(Duration::from_secs(60), "a defaults step", || async {
                Ok((read_topic(kafka, &defaults_topic(p)).await?.len() >= expected).then_some(()))
            })
            .await?;
        }
    }
    let mut last = (0, 0);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let side = |main: String, second: String| async move {
            anyhow::Ok(
                count(main.clone()).await?
                    + read_topic(kafka, &format!("{main}.message")).await?.len()
                    + read_topic(kafka, &hstore_topic(&second)).await?.len()
                    + read_topic(kafka, &format!("{second}.message")).await?.len(),
            )
        };
        let now = (side(dbz.clone(), dbzm.clone()).await?, side(sl.clone(), slm.clone()).await?);
        if now == last && now.0 > 6 {
            break;
        }
        last = now;
    }
    env.note(format!("records: Debezium {}, Sluice {}", last.0, last.1));

    let mut mismatches = Vec::new();
    let mut compared = 0;
    // (label, Debezium's prefix, Sluice's prefix, topic after the prefix)
    let mut compare: Vec<(String, &str, &str, String)> =
        tables.iter().map(|t| (t.to_string(), dbz.as_str(), sl.as_str(), format!("public.{name}_{t}"))).collect();
    compare.push(("hstore-map".into(), &dbzm, &slm, format!("public.{name}_hstore")));
    compare.push(("interval-string".into(), &dbzm, &slm, format!("public.{name}_types")));
    compare.push(("message".into(), &dbz, &sl, "message".into()));
    compare.push(("message-second".into(), &dbzm, &slm, "message".into()));
    for (t, dbz, sl, topic) in &compare {
        let a = normalized(&read_topic(kafka, &format!("{dbz}.{topic}")).await?, dbz);
        let b = normalized(&read_topic(kafka, &format!("{sl}.{topic}")).await?, sl);
        let dump = |side: &[Normalized]| side.iter().map(|(k, v, h)| format!("{k}\t{v}\t{h:?}\n")).collect::<String>();
        let _ = std::fs::write(env.path(&format!("debezium-{t}.jsonl")), dump(&a));
        let _ = std::fs::write(env.path(&format!("sluice-{t}.jsonl")), dump(&b));
        if a.len() != b.len() {
            mismatches.push(format!("{t}: Debezium wrote {} records, Sluice {}", a.len(), b.len()));
        }
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            compared += 1;
            for (what, l, r) in [("key", &x.0, &y.0), ("value", &x.1, &y.1)] {
                // As text: field order counts (map equality would ignore it).
                let (lt, rt) = (l.to_string(), r.to_string());
                if lt != rt {
                    mismatches.push(format!("{t}[{i}] {what}:\n  debezium: {l}\n  sluice:   {r}"));
                }
            }
            if x.2 != y.2 {
                mismatches.push(format!("{t}[{i}] headers:\n  debezium: {:?}\n  sluice:   {:?}", x.2, y.2));
            }
        }
    }
    env.note(format!("compared {compared} records"));
    let _ = std::fs::write(env.path("mismatches.txt"), mismatches.join("\n"));
    for n in ["dbz", "dbzm"] {
        let _ = connect.delete(&format!("/connectors/{n}")).await;
    }
    for n in ["sl", "slm"] {
        let _ = cp.rest.delete(&format!("/connectors/{n}")).await;
    }
    if !mismatches.is_empty() {
        for m in mismatches.iter().take(15) {
            env.note(m);
        }
        bail!("{} differences (all in {})", mismatches.len(), env.path("mismatches.txt").display());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for p in [&dbz, &sl, &dbzm, &slm] {
        db.drop_slot(p);
        let _ = db.sql(&format!("DROP PUBLICATION IF EXISTS {p}_pub"));
    }
    let _ = db.script(&format!(
        "DROP TABLE {name}_types, {name}_orders, {name}_nopk, {name}_full, {name}_defaults, {name}_hstore; DROP TYPE {name}_mood;"
    ));
    Ok(())
}
