//! The task against a real MariaDB (binlog ROW): snapshot, streaming, DDL mid-stream, a table added while running,
//! truncate, restart from committed offsets. Needs MYSQL_HOST / MYSQL_TCP_PORT / MYSQL_USER / MYSQL_PWD (a user with
//! SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT/BINLOG MONITOR and CREATE/DROP for the test databases), as
//! `deploy/local/mysql env` prints them; without MYSQL_HOST the tests say so and pass vacuously.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SourceRecord, partition_key};
use sluice_connector_mysql_cdc::Flavor;
use sluice_connector_mysql_cdc::task::MySqlSourceTask;
use sluice_converters::converter::{Converter, JsonConverter};

struct Db {
    host: String,
    port: u16,
    user: String,
    password: String,
}

fn db() -> Option<Db> {
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

    fn config(&self, prefix: &str, database: &str) -> ConfigMap {
        [
            ("topic.prefix", prefix),
            ("database.hostname", self.host.as_str()),
            ("database.port", &self.port.to_string()),
            ("database.user", self.user.as_str()),
            ("database.password", self.password.as_str()),
            ("database.server.id", &(5000 + rand_u16() as u32).to_string()),
            ("database.include.list", database),
            ("poll.interval.ms", "100"),
            // These tests count row events; the schema change topic is compared in mysql_cdc_differential.
            ("include.schema.changes", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

fn rand_u16() -> u16 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 60000) as u16
}

fn json(record: &SourceRecord) -> (String, String) {
    let conv = JsonConverter::new(true);
    let mut k = Vec::new();
    let mut v = Vec::new();
    let kn = conv.from_connect(&record.topic, record.key_schema.as_deref(), &record.key, &mut k).unwrap();
    let vn = conv.from_connect(&record.topic, record.value_schema.as_deref(), &record.value, &mut v).unwrap();
    (
        if kn { String::from_utf8(k).unwrap() } else { "null".into() },
        if vn { String::from_utf8(v).unwrap() } else { "null".into() },
    )
}

fn payload(record: &SourceRecord) -> serde_json::Value {
    let (_, v) = json(record);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    v.get("payload").cloned().unwrap_or(serde_json::Value::Null)
}

async fn collect(task: &mut MySqlSourceTask, n: usize, within: Duration) -> Vec<SourceRecord> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(task.poll().await.expect("poll"));
    }
    out
}

async fn start(config: ConfigMap, offsets: BTreeMap<String, serde_json::Value>) -> MySqlSourceTask {
    let mut task = MySqlSourceTask::new(Flavor::MariaDb);
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: "c".into(),
        task: 0,
        config,
        offsets: Arc::new(offsets),
    })
    .await
    .expect("start");
    task
}

#[tokio::test]
async fn snapshot_stream_ddl_and_restart() {
    let Some(db) = db() else {
        eprintln!("MYSQL_HOST not set: skipped (run deploy/local/mysql up and export its env)");
        return;
    };
    let name = format!("mcdc_{}", rand_u16());
    let mut c = db.conn().await;
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
    c.query_drop(format!(
        "CREATE TABLE {name}.t (id INT PRIMARY KEY, ti TINYINT, b TINYINT(1), si SMALLINT UNSIGNED, mi MEDIUMINT, \
         bi BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), ch CHAR(3), vc VARCHAR(20) NOT NULL, tx TEXT, \
         bin VARBINARY(4), bit1 BIT(1), bit10 BIT(10), e ENUM('new','old'), st SET('a','b','c'), dt DATE, tm TIME, \
         tm3 TIME(3), dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, yr YEAR, js JSON)"
    ))
    .await
    .unwrap();
    let row = "(1, -5, 1, 65535, -8388608, 18446744073709551615, 1.5, -0.25, 12.34, 'abc', 'hello', 'text', \
               x'01ff', b'1', b'1000000001', 'old', 'a,c', '1990-05-17', '12:34:56', '-01:02:03.456', \
               '2024-01-02 03:04:05', '2024-01-02 03:04:05.123456', '2024-01-02 01:04:05.123', 2024, '{\"a\": 1}')";
    c.query_drop(format!("INSERT INTO {name}.t VALUES {row}, (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"))
        .await
        .unwrap();
    let prefix = format!("p{name}");
    let config = db.config(&prefix, &name);
    let mut task = start(config.clone(), BTreeMap::new()).await;

    let snap = collect(&mut task, 2, Duration::from_secs(30)).await;
    assert_eq!(snap.len(), 2, "snapshot rows");
    for r in &snap {
        let (k, v) = json(r);
        println!("SNAPSHOT key={k}\nvalue={v}");
    }
    let p0 = payload(&snap[0]);
    assert_eq!(p0["op"], "r");
    assert_eq!(p0["source"]["snapshot"], "first");
    assert_eq!(payload(&snap[1])["source"]["snapshot"], "last");
    let after = &p0["after"];
    assert_eq!(after["bi"], -1, "BIGINT UNSIGNED wraps in long mode");
    assert_eq!(after["dec1"], "BNI=");
    assert_eq!(after["bit10"], "AQI=", "BIT(10) little-endian");
    assert_eq!(after["bit1"], true);
    assert_eq!(after["e"], "old");
    assert_eq!(after["st"], "a,c");
    assert_eq!(after["dt"], 7441);
    assert_eq!(after["tm"], 45296000000i64);
    assert_eq!(after["tm3"], -3723456000i64);
    assert_eq!(after["dtm"], 1704164645000i64);
    assert_eq!(after["dtm6"], 1704164645123456i64);
    assert_eq!(after["ts"], "2024-01-02T01:04:05.123Z");
    assert_eq!(after["yr"], 2024);
    assert_eq!(after["si"], 65535);
    assert_eq!(snap[0].source_offset.get("snapshot"), Some(&serde_json::json!("INITIAL")));
    assert_eq!(snap[1].source_offset.get("snapshot"), None);

    // streaming: insert, update, delete; the same values must come out of the binlog
    c.query_drop(format!("INSERT INTO {name}.t VALUES {}", row.replacen("(1,", "(3,", 1))).await.unwrap();
    c.query_drop(format!("UPDATE {name}.t SET vc = 'changed' WHERE id = 2")).await.unwrap();
    c.query_drop(format!("DELETE FROM {name}.t WHERE id = 2")).await.unwrap();
    let stream = collect(&mut task, 4, Duration::from_secs(30)).await;
    for r in &stream {
        let (k, v) = json(r);
        println!("STREAM topic={} key={k}\nvalue={v}\noffset={}", r.topic, r.source_offset);
    }
    assert_eq!(stream.len(), 4);
    let c3 = payload(&stream[0]);
    assert_eq!(c3["op"], "c");
    let mut a3 = c3["after"].clone();
    a3["id"] = serde_json::json!(1);
    assert_eq!(&a3, after, "binlog values equal snapshot values");
    assert_eq!(c3["source"]["connector"], "mariadb");
    assert_eq!(c3["source"]["snapshot"], "false");
    assert!(c3["source"]["gtid"].as_str().unwrap().starts_with("0-"));
    let u = payload(&stream[1]);
    assert_eq!(u["op"], "u");
    assert_eq!(u["before"]["vc"], "x");
    assert_eq!(u["after"]["vc"], "changed");
    assert_eq!(payload(&stream[2])["op"], "d");
    assert!(stream[3].value_schema.is_none(), "tombstone");

    // ALTER TABLE mid-stream, then a new table
    c.query_drop(format!("ALTER TABLE {name}.t ADD COLUMN extra INT DEFAULT 7")).await.unwrap();
    c.query_drop(format!("UPDATE {name}.t SET vc = 'again' WHERE id = 3")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {name}.n (k VARCHAR(10) PRIMARY KEY, v INT)")).await.unwrap();
    c.query_drop(format!("INSERT INTO {name}.n VALUES ('a', 1)")).await.unwrap();
    let more = collect(&mut task, 2, Duration::from_secs(30)).await;
    for r in &more {
        let (k, v) = json(r);
        println!("MORE topic={} key={k}\nvalue={v}", r.topic);
    }
    assert_eq!(more.len(), 2);
    assert_eq!(payload(&more[0])["after"]["extra"], 7);
    assert!(
        json(&more[0]).1.contains(r#"{"type":"int32","optional":true,"default":7,"field":"extra"}"#),
        "column default in the schema"
    );
    assert_eq!(more[1].topic, format!("{prefix}.{name}.n"));
    let last_offset = more[0].source_offset.clone();
    task.stop().await.unwrap();

    // restart from the offset of the UPDATE: the INSERT into n is replayed, nothing before it
    let mut partition = serde_json::Map::new();
    partition.insert("server".into(), serde_json::json!(prefix));
    let offsets = BTreeMap::from([(partition_key(&partition), last_offset)]);
    let mut task = start(config.clone(), offsets).await;
    c.query_drop(format!("INSERT INTO {name}.n VALUES ('b', 2)")).await.unwrap();
    let replay = collect(&mut task, 2, Duration::from_secs(30)).await;
    let keys: Vec<String> = replay.iter().map(|r| json(r).0).collect();
    println!("REPLAY {keys:?}");
    assert_eq!(replay.len(), 2, "{keys:?}");
    assert_eq!(payload(&replay[0])["after"]["k"], "a");
    assert_eq!(payload(&replay[1])["after"]["k"], "b");
    let extra = collect(&mut task, 1, Duration::from_secs(2)).await;
    assert!(extra.is_empty(), "nothing doubled");
    task.stop().await.unwrap();
    c.query_drop(format!("DROP DATABASE {name}")).await.unwrap();
}

#[tokio::test]
async fn heartbeats_while_idle_and_no_data_mode() {
    let Some(db) = db() else {
        eprintln!("MYSQL_HOST not set: skipped");
        return;
    };
    let name = format!("mcdh_{}", rand_u16());
    let mut c = db.conn().await;
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {name}.t (id INT PRIMARY KEY)")).await.unwrap();
    c.query_drop(format!("INSERT INTO {name}.t VALUES (1)")).await.unwrap();
    let prefix = format!("p{name}");
    let mut config = db.config(&prefix, &name);
    config.insert("heartbeat.interval.ms".into(), "300".into());
    config.insert("snapshot.mode".into(), "no_data".into());
    let mut task = start(config, BTreeMap::new()).await;
    let records = collect(&mut task, 1, Duration::from_secs(10)).await;
    assert!(!records.is_empty(), "a heartbeat while idle");
    let hb = &records[0];
    assert_eq!(hb.topic, format!("__debezium-heartbeat.{prefix}"));
    let (k, v) = json(hb);
    assert_eq!(
        k,
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"serverName"}}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1}},"payload":{{"serverName":"{prefix}"}}}}"#
        )
    );
    assert!(v.contains(r#""name":"io.debezium.connector.common.Heartbeat""#), "{v}");
    assert!(hb.source_offset.get("file").is_some() && hb.source_offset.get("pos").is_some());
    // no_data: the existing row is not read, a new one is streamed
    c.query_drop(format!("INSERT INTO {name}.t VALUES (2)")).await.unwrap();
    let mut data = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while data.is_empty() && Instant::now() < deadline {
        data.extend(task.poll().await.unwrap().into_iter().filter(|r| r.topic.ends_with(".t")));
    }
    assert_eq!(data.len(), 1);
    assert_eq!(payload(&data[0])["after"]["id"], 2);
    task.stop().await.unwrap();
    c.query_drop(format!("DROP DATABASE {name}")).await.unwrap();
}

/// `heartbeat.action.query`: run at every heartbeat (rows appear in a table of another database); a statement the
/// server refuses fails the task with its message.
#[tokio::test]
async fn heartbeat_action_query_runs_and_a_bad_one_fails() {
    let Some(db) = db() else {
        eprintln!("MYSQL_HOST not set: skipped");
        return;
    };
    let name = format!("mcdq_{}", rand_u16());
    let mut c = db.conn().await;
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {name}.t (id INT PRIMARY KEY)")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {name}.beats (id INT AUTO_INCREMENT PRIMARY KEY)")).await.unwrap();
    let prefix = format!("p{name}");
    let mut config = db.config(&prefix, &name);
    config.insert("heartbeat.interval.ms".into(), "200".into());
    config.insert("snapshot.mode".into(), "no_data".into());
    config.insert("table.include.list".into(), format!("{name}\\.t"));
    config.insert("heartbeat.action.query".into(), format!("INSERT INTO {name}.beats VALUES ()"));
    let mut task = start(config.clone(), BTreeMap::new()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut heartbeats, mut beats) = (0, 0u64);
    while Instant::now() < deadline && (heartbeats < 3 || beats < 3) {
        heartbeats += task.poll().await.unwrap().iter().filter(|r| r.topic.starts_with("__debezium-heartbeat")).count();
        beats = c.query_first(format!("SELECT COUNT(*) FROM {name}.beats")).await.unwrap().unwrap_or(0);
    }
    assert!(beats >= 3 && heartbeats >= 3, "{beats} rows written by the action query, {heartbeats} heartbeats");
    task.stop().await.unwrap();

    config.insert("heartbeat.action.query".into(), "INSERT INTO no_such_table_at_all VALUES (1)".into());
    let mut task = start(config, BTreeMap::new()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        assert!(Instant::now() < deadline, "no error within 30 s");
        if let Err(e) = task.poll().await {
            break e.to_string();
        }
    };
    assert!(e.contains("heartbeat.action.query") && e.contains("no_such_table_at_all"), "{e}");
    task.stop().await.unwrap();
    c.query_drop(format!("DROP DATABASE {name}")).await.unwrap();
}
