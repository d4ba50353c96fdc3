//! The JDBC source task against the real PostgreSQL and MariaDB of `deploy/local/postgres|mysql` (variables
//! `SLUICE_TEST_PG` / `SLUICE_TEST_MYSQL` as `deploy/local/<db> env` prints them). A test whose database variable
//! is unset says so and passes. Covers every mode with rows inserted and updated while running, a table created
//! while running, resuming from a stored (or altered) Confluent offset, query mode, and the record schema.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{Connector, SourceTask, SourceTaskContext};
use sluice_connect_api::record::{SchemaType, SourceRecord, Value, partition_key};
use sluice_connector_jdbc::source::JdbcSourceConnector;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pg,
    My,
}

struct Db {
    kind: Kind,
    jdbc: String,
    user: String,
    password: String,
    url: String,
    /// The namespace in the partition's fqn (PG schema `public`, MySQL database).
    ns: String,
}

fn db(kind: Kind) -> Option<Db> {
    let (var, scheme) = match kind {
        Kind::Pg => ("SLUICE_TEST_PG", "postgresql"),
        Kind::My => ("SLUICE_TEST_MYSQL", "mariadb"),
    };
    let Ok(url) = std::env::var(var) else {
        eprintln!("{var} is not set: skipping (eval \"$(deploy/local/<db> env)\")");
        return None;
    };
    let rest = url.split_once("://")?.1;
    let (cred, hostdb) = rest.rsplit_once('@')?;
    let (user, password) = cred.split_once(':')?;
    let ns = match kind {
        Kind::Pg => "public".to_string(),
        Kind::My => hostdb.split_once('/')?.1.split('?').next()?.to_string(),
    };
    Some(Db { kind, jdbc: format!("jdbc:{scheme}://{hostdb}"), user: user.into(), password: password.into(), url, ns })
}

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}

async fn exec(d: &Db, sql: &str) {
    match d.kind {
        Kind::Pg => {
            let (client, conn) = tokio_postgres::connect(&d.url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            client.batch_execute(&format!("SET TimeZone = 'UTC'; {sql}")).await.expect(sql);
        }
        Kind::My => {
            let pool = mysql_async::Pool::new(d.url.as_str());
            let mut conn = pool.get_conn().await.expect("connect");
            conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
            for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
                conn.query_drop(stmt).await.expect(stmt);
            }
            drop(conn);
            pool.disconnect().await.unwrap();
        }
    }
}

/// `CREATE TABLE` of a test table with an auto-increment id, a NOT NULL timestamp and a few columns.
fn create(d: &Db, t: &str) -> String {
    match d.kind {
        Kind::Pg => format!(
            "CREATE TABLE {t} (id serial PRIMARY KEY, name text NOT NULL, amount numeric(10,2), \
             ts timestamp(6) NOT NULL DEFAULT now())"
        ),
        Kind::My => format!(
            "CREATE TABLE {t} (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, amount decimal(10,2), \
             ts datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
        ),
    }
}

fn config(d: &Db, extra: &[(&str, &str)]) -> ConfigMap {
    let mut c: ConfigMap = BTreeMap::new();
    for (k, v) in [
        ("connection.url", d.jdbc.as_str()),
        ("connection.user", d.user.as_str()),
        ("connection.password", d.password.as_str()),
        ("poll.interval.ms", "100"),
        ("table.poll.interval.ms", "300"),
        ("batch.max.rows", "2"),
    ] {
        c.insert(k.into(), v.into());
    }
    for (k, v) in extra {
        c.insert(k.to_string(), v.to_string());
    }
    c
}

async fn start(config: &ConfigMap, offsets: BTreeMap<String, serde_json::Value>) -> Box<dyn SourceTask> {
    let task_config = JdbcSourceConnector.task_configs(config, 1).expect("task configs").remove(0);
    let mut task = JdbcSourceConnector.create_source_task().unwrap();
    task.start(SourceTaskContext {
        shared: Default::default(),
        connector: "test".into(),
        task: 0,
        config: task_config,
        offsets: Arc::new(offsets),
    })
    .await
    .expect("start");
    task
}

/// Polls until `n` records arrived (fails after 20 s), then a little more to catch extra ones.
async fn poll_n(task: &mut Box<dyn SourceTask>, n: usize) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} records: {:?}", out.len(), names(&out));
        out.extend(task.poll().await.expect("poll"));
    }
    let quiet = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet {
        out.extend(task.poll().await.expect("poll"));
    }
    out
}

fn field<'a>(r: &'a SourceRecord, name: &str) -> &'a Value {
    let schema = r.value_schema.as_ref().unwrap();
    let i = schema.fields.iter().position(|f| f.name == name).unwrap();
    match &r.value {
        Value::Struct(v) => &v[i],
        other => panic!("not a struct: {other:?}"),
    }
}

fn names(rs: &[SourceRecord]) -> Vec<String> {
    rs.iter()
        .map(|r| match field(r, "name") {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn partition(d: &Db, t: &str) -> serde_json::Map<String, serde_json::Value> {
    json!({"protocol": "1", "table": format!("{}.{t}", d.ns)}).as_object().unwrap().clone()
}

async fn incrementing(kind: Kind) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_inc");
    exec(&d, &create(&d, &t)).await;
    exec(&d, &format!("INSERT INTO {t} (name, amount) VALUES ('a', 1.50), ('b', NULL), ('c', -2.25)")).await;
    let cfg = config(
        &d,
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("topic.prefix", "pfx-"),
            ("table.whitelist", &t),
        ],
    );
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 3).await;
    assert_eq!(names(&rs), ["a", "b", "c"]);
    let r = &rs[2];
    assert_eq!(r.topic, format!("pfx-{t}"));
    assert_eq!(*r.source_partition, partition(&d, &t));
    assert_eq!(r.source_offset, json!({"incrementing": 3}));
    assert_eq!(r.key, Value::Null);
    let schema = r.value_schema.as_ref().unwrap();
    assert_eq!(schema.name.as_deref(), Some(t.as_str()));
    let cols: Vec<_> =
        schema.fields.iter().map(|f| (f.name.as_str(), f.schema.schema_type, f.schema.optional)).collect();
    assert_eq!(
        cols,
        [
            ("id", SchemaType::Int32, false),
            ("name", SchemaType::String, false),
            ("amount", SchemaType::Bytes, true),
            ("ts", SchemaType::Int64, false)
        ]
    );
    let amount = &schema.fields[2].schema;
    assert_eq!(amount.name.as_deref(), Some("org.apache.kafka.connect.data.Decimal"));
    assert_eq!(amount.parameter("scale"), Some("2"));
    assert_eq!(field(&rs[0], "amount"), &Value::Bytes(vec![0u8, 150].into()));
    assert_eq!(field(&rs[2], "amount"), &Value::Bytes(vec![0xff, 0x1f].into()));
    assert_eq!(schema.fields[3].schema.name.as_deref(), Some("org.apache.kafka.connect.data.Timestamp"));

    // Inserted while running; an update is not seen in incrementing mode.
    exec(&d, &format!("INSERT INTO {t} (name) VALUES ('d'), ('e'); UPDATE {t} SET name = 'a2' WHERE id = 1")).await;
    let rs = poll_n(&mut task, 2).await;
    assert_eq!(names(&rs), ["d", "e"]);
    assert_eq!(rs[1].source_offset, json!({"incrementing": 5}));

    // A table created while running is picked up (table.poll.interval.ms) when it matches the whitelist.
    let t2 = format!("{t}_new");
    task.stop().await.unwrap();
    let mut cfg2 = cfg.clone();
    cfg2.insert("table.whitelist".into(), format!("{t},{t2}"));
    let offsets: BTreeMap<_, _> = [(partition_key(&partition(&d, &t)), json!({"incrementing": 5}))].into();
    let mut task = start(&cfg2, offsets).await;
    assert!(poll_n(&mut task, 0).await.is_empty(), "resumed past the end");
    exec(&d, &format!("{}; INSERT INTO {t2} (name) VALUES ('x')", create(&d, &t2))).await;
    let rs = poll_n(&mut task, 1).await;
    assert_eq!(names(&rs), ["x"]);
    assert_eq!(rs[0].topic, format!("pfx-{t2}"));
    task.stop().await.unwrap();

    // Resume from an altered offset (as PATCH /connectors/{name}/offsets writes it): rows after id 2 again.
    let offsets: BTreeMap<_, _> = [(partition_key(&partition(&d, &t)), json!({"incrementing": 2}))].into();
    let mut task = start(&cfg, offsets).await;
    let rs = poll_n(&mut task, 3).await;
    assert_eq!(names(&rs), ["c", "d", "e"]);
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}; DROP TABLE {t2}")).await;
}

async fn timestamp_modes(kind: Kind, mode: &str) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_ts");
    exec(&d, &create(&d, &t)).await;
    exec(
        &d,
        &format!(
            "INSERT INTO {t} (name, ts) VALUES ('a', '2024-01-01 00:00:00.123456'), ('b', '2024-01-01 00:00:01'), \
             ('c', '2024-01-01 00:00:01')"
        ),
    )
    .await;
    let mut extra =
        vec![("mode", mode), ("timestamp.column.name", "ts"), ("topic.prefix", "p."), ("table.whitelist", t.as_str())];
    if mode == "timestamp+incrementing" {
        extra.push(("incrementing.column.name", "id"));
    }
    let cfg = config(&d, &extra);
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 3).await;
    assert_eq!(names(&rs), ["a", "b", "c"]);
    let first_ms = 1_704_067_200_123i64;
    let mut expected = json!({"timestamp": first_ms, "timestamp_nanos": 123_456_000});
    if mode == "timestamp+incrementing" {
        expected["incrementing"] = json!(1);
    }
    assert_eq!(rs[0].source_offset, expected);
    assert_eq!(field(&rs[0], "ts"), &Value::Int64(first_ms));

    // An update moving the timestamp forward and an insert, while running.
    exec(&d, &format!("UPDATE {t} SET name = 'a2', ts = '2024-01-02 00:00:00' WHERE id = 1; INSERT INTO {t} (name, ts) VALUES ('d', '2024-01-03 00:00:00')")).await;
    let rs = poll_n(&mut task, 2).await;
    assert_eq!(names(&rs), ["a2", "d"]);
    task.stop().await.unwrap();

    // Resume from an altered offset: everything after 2024-01-01T00:00:00.5.
    let offsets: BTreeMap<_, _> = [(
        partition_key(&partition(&d, &t)),
        json!({"timestamp": 1_704_067_200_500i64, "timestamp_nanos": 500_000_000, "incrementing": 0}),
    )]
    .into();
    let mut task = start(&cfg, offsets).await;
    let rs = poll_n(&mut task, 4).await;
    assert_eq!(names(&rs), ["b", "c", "a2", "d"]);
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}")).await;
}

async fn bulk_and_query(kind: Kind) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_bulk");
    exec(&d, &create(&d, &t)).await;
    exec(&d, &format!("INSERT INTO {t} (name) VALUES ('a'), ('b'), ('c')")).await;
    let cfg =
        config(&d, &[("mode", "bulk"), ("topic.prefix", "b-"), ("table.whitelist", &t), ("poll.interval.ms", "300")]);
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 6).await;
    assert!(rs.len() >= 6);
    assert_eq!(names(&rs[..6]), ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(*rs[0].source_partition, json!({"table": t}).as_object().unwrap().clone());
    assert_eq!(rs[0].source_offset, serde_json::Value::Null);
    task.stop().await.unwrap();

    // query mode: WHERE appended to the query, partition {"query":"query"}, topic = the prefix.
    let q = format!("SELECT id, name FROM {t}");
    let cfg = config(
        &d,
        &[("mode", "incrementing"), ("incrementing.column.name", "id"), ("topic.prefix", "qtopic"), ("query", &q)],
    );
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 3).await;
    assert_eq!(names(&rs), ["a", "b", "c"]);
    assert_eq!(rs[0].topic, "qtopic");
    assert_eq!(*rs[0].source_partition, json!({"query": "query"}).as_object().unwrap().clone());
    assert_eq!(rs[2].source_offset, json!({"incrementing": 3}));
    assert_eq!(rs[0].value_schema.as_ref().unwrap().name, None);
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}")).await;
}

async fn nullable_incrementing_refused(kind: Kind) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_null");
    exec(&d, &format!("CREATE TABLE {t} (id int, name varchar(10))")).await;
    exec(&d, &format!("INSERT INTO {t} VALUES (1, 'a')")).await;
    let cfg = config(
        &d,
        &[
            ("mode", "incrementing"),
            ("incrementing.column.name", "id"),
            ("topic.prefix", "n-"),
            ("table.whitelist", &t),
        ],
    );
    let mut task = start(&cfg, BTreeMap::new()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline);
        match task.poll().await {
            Err(e) => break e,
            Ok(rs) => assert!(rs.is_empty()),
        }
    };
    assert!(err.to_string().contains("nullable"), "{err}");
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}")).await;
}

/// `db.timezone=Europe/Berlin` in timestamp mode: `timestamp` / DATETIME values are wall-clock times in Berlin
/// (read as the original's `getTimestamp(col, Calendar)`: the spring-forward gap's neighbours an hour apart, the
/// fall-back's ambiguous 02:30 as the second, CET, one), offsets are the instants, and a resumed task compares its
/// offset with the column as the wall-clock time in Berlin. A `time` is read in Berlin's 1970 offset (+1), a
/// `timestamptz` keeps its instant.
async fn timestamp_in_zone(kind: Kind) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_tz");
    let create = match kind {
        Kind::Pg => format!(
            "CREATE TABLE {t} (id serial PRIMARY KEY, name text NOT NULL, ts timestamp(6) NOT NULL, tm time(3), \
             tstz timestamptz)"
        ),
        Kind::My => format!(
            "CREATE TABLE {t} (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, ts datetime(6) NOT NULL, \
             tm time(3))"
        ),
    };
    exec(&d, &create).await;
    exec(
        &d,
        &format!(
            "INSERT INTO {t} (name, ts, tm) VALUES ('a', '2024-03-31 01:30:00.000250', '13:34:56.789'), \
             ('b', '2024-03-31 03:30:00', '13:34:56.789'), ('c', '2024-10-27 02:30:00', '13:34:56.789'), \
             ('d', '2024-10-27 03:30:00', '13:34:56.789')"
        ),
    )
    .await;
    if kind == Kind::Pg {
        exec(&d, &format!("UPDATE {t} SET tstz = '2024-03-31 00:30:00+00'")).await;
    }
    let cfg = config(
        &d,
        &[
            ("mode", "timestamp"),
            ("timestamp.column.name", "ts"),
            ("topic.prefix", "p."),
            ("table.whitelist", t.as_str()),
            ("db.timezone", "Europe/Berlin"),
        ],
    );
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 4).await;
    assert_eq!(names(&rs), ["a", "b", "c", "d"]);
    let instants = [1_711_845_000_000i64, 1_711_848_600_000, 1_729_992_600_000, 1_729_996_200_000];
    for (r, ms) in rs.iter().zip(instants) {
        assert_eq!(field(r, "ts"), &Value::Int64(ms), "{}", names(std::slice::from_ref(r))[0]);
        assert_eq!(field(r, "tm"), &Value::Int32(45_296_789));
        if kind == Kind::Pg {
            assert_eq!(field(r, "tstz"), &Value::Int64(1_711_845_000_000));
        }
    }
    assert_eq!(rs[0].source_offset, json!({"timestamp": 1_711_845_000_000i64, "timestamp_nanos": 250_000}));
    assert_eq!(rs[3].source_offset, json!({"timestamp": 1_729_996_200_000i64, "timestamp_nanos": 0}));
    // A row inserted while running: 2025-01-15 12:00 in Berlin is 11:00Z.
    exec(&d, &format!("INSERT INTO {t} (name, ts) VALUES ('e', '2025-01-15 12:00:00')")).await;
    let rs = poll_n(&mut task, 1).await;
    assert_eq!(names(&rs), ["e"]);
    assert_eq!(rs[0].source_offset, json!({"timestamp": 1_736_938_800_000i64, "timestamp_nanos": 0}));
    task.stop().await.unwrap();

    // Resume from b's offset (01:30Z = 03:30 in Berlin): c, d and e follow, b is not read again (in UTC the
    // comparison would be with 01:30 and b would come back).
    let offsets: BTreeMap<_, _> =
        [(partition_key(&partition(&d, &t)), json!({"timestamp": 1_711_848_600_000i64, "timestamp_nanos": 0}))].into();
    let mut task = start(&cfg, offsets).await;
    let rs = poll_n(&mut task, 3).await;
    assert_eq!(names(&rs), ["c", "d", "e"]);
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn pg_timestamp_in_zone() {
    timestamp_in_zone(Kind::Pg).await
}
#[tokio::test]
async fn mariadb_timestamp_in_zone() {
    timestamp_in_zone(Kind::My).await
}

/// A zone Java does not know: a config error on `db.timezone` in Kafka Connect's format. SHORT_IDS and offsets
/// are accepted (`JdbcSourceConnectorConfig.zoneId()` falls back to them).
#[test]
fn source_zone_validation() {
    let mut c: ConfigMap = BTreeMap::new();
    c.insert("connection.url".into(), "jdbc:postgresql://127.0.0.1:5432/db".into());
    c.insert("mode".into(), "bulk".into());
    c.insert("topic.prefix".into(), "p.".into());
    c.insert("db.timezone".into(), "Europe/Atlantis".into());
    assert_eq!(
        JdbcSourceConnector.validate_extra(&c),
        vec![(
            "db.timezone".to_string(),
            "Invalid value Europe/Atlantis for configuration db.timezone: Invalid time zone. See the list of valid time zones at https://docs.oracle.com/javase/8/docs/api/java/time/ZoneId.html#shortIds".to_string()
        )]
    );
    for ok in ["America/New_York", "GMT+2", "-03:30", "UTC", "PST", "Z"] {
        c.insert("db.timezone".into(), ok.into());
        assert!(JdbcSourceConnector.validate_extra(&c).is_empty(), "{ok}");
    }
}

#[tokio::test]
async fn pg_incrementing() {
    incrementing(Kind::Pg).await
}
#[tokio::test]
async fn mariadb_incrementing() {
    incrementing(Kind::My).await
}
#[tokio::test]
async fn pg_timestamp() {
    timestamp_modes(Kind::Pg, "timestamp").await
}
#[tokio::test]
async fn mariadb_timestamp() {
    timestamp_modes(Kind::My, "timestamp").await
}
#[tokio::test]
async fn pg_timestamp_incrementing() {
    timestamp_modes(Kind::Pg, "timestamp+incrementing").await
}
#[tokio::test]
async fn mariadb_timestamp_incrementing() {
    timestamp_modes(Kind::My, "timestamp+incrementing").await
}
#[tokio::test]
async fn pg_bulk_and_query() {
    bulk_and_query(Kind::Pg).await
}
#[tokio::test]
async fn mariadb_bulk_and_query() {
    bulk_and_query(Kind::My).await
}
#[tokio::test]
async fn pg_nullable_incrementing_refused() {
    nullable_incrementing_refused(Kind::Pg).await
}
#[tokio::test]
async fn mariadb_nullable_incrementing_refused() {
    nullable_incrementing_refused(Kind::My).await
}

/// A column of the type table: name, Connect type, logical name, value of the first row.
type Expected = (&'static str, SchemaType, Option<&'static str>, Value);

/// The type table: every common column type, one row of values and one of NULLs, bulk mode with
/// `numeric.mapping=best_fit` (schemas as Confluent's dialects map pgjdbc's / Connector/J's JDBC types).
async fn type_table(kind: Kind) {
    let Some(d) = db(kind) else { return };
    let t = unique("src_types");
    let (ddl, row, expected): (String, String, Vec<Expected>) = match kind {
        Kind::Pg => (
            format!(
                "CREATE TABLE {t} (b bool, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision, \
                 n5 numeric(5,0), n12 numeric(12,3), tx text, vc varchar(10), ch char(3), by bytea, dt date, \
                 tm time(3), ts timestamp(6), tz timestamptz, u uuid, j json, jb jsonb)"
            ),
            format!(
                "INSERT INTO {t} VALUES (true, -2, 40000, 5000000000, 1.5, 2.25, 12345, 123456789.123, 'héllo', 'v', \
                 'ab', '\\x00ff', '2024-02-29', '13:14:15.678', '2024-01-01 00:00:00.5', '2024-01-01 01:00:00+01', \
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{\"a\": 1}}', '{{\"a\": 1}}')"
            ),
            vec![
                ("b", SchemaType::Boolean, None, Value::Boolean(true)),
                ("i2", SchemaType::Int16, None, Value::Int16(-2)),
                ("i4", SchemaType::Int32, None, Value::Int32(40000)),
                ("i8", SchemaType::Int64, None, Value::Int64(5_000_000_000)),
                ("f4", SchemaType::Float32, None, Value::Float32(1.5)),
                ("f8", SchemaType::Float64, None, Value::Float64(2.25)),
                ("n5", SchemaType::Int32, None, Value::Int32(12345)),
                ("n12", SchemaType::Float64, None, Value::Float64(123456789.123)),
                ("tx", SchemaType::String, None, Value::String("héllo".into())),
                ("vc", SchemaType::String, None, Value::String("v".into())),
                ("ch", SchemaType::String, None, Value::String("ab ".into())),
                ("by", SchemaType::Bytes, None, Value::Bytes(vec![0u8, 255].into())),
                ("dt", SchemaType::Int32, Some("org.apache.kafka.connect.data.Date"), Value::Int32(19782)),
                ("tm", SchemaType::Int32, Some("org.apache.kafka.connect.data.Time"), Value::Int32(47_655_678)),
                (
                    "ts",
                    SchemaType::Int64,
                    Some("org.apache.kafka.connect.data.Timestamp"),
                    Value::Int64(1_704_067_200_500),
                ),
                (
                    "tz",
                    SchemaType::Int64,
                    Some("org.apache.kafka.connect.data.Timestamp"),
                    Value::Int64(1_704_067_200_000),
                ),
                ("u", SchemaType::String, None, Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())),
                ("j", SchemaType::String, None, Value::String("{\"a\": 1}".into())),
                ("jb", SchemaType::String, None, Value::String("{\"a\": 1}".into())),
            ],
        ),
        Kind::My => (
            format!(
                "CREATE TABLE {t} (b tinyint(1), i1 tinyint, u1 tinyint unsigned, i2 smallint, i4 int, u4 int unsigned, \
                 i8 bigint, f4 float, f8 double, d12 decimal(12,3), tx text, vc varchar(10), vb varbinary(4), \
                 bl blob, dt date, tm time(3), ts datetime(6), tsp timestamp(3) NULL, e enum('x','y'))"
            ),
            format!(
                "INSERT INTO {t} VALUES (1, -2, 200, -300, 40000, 4000000000, 5000000000, 1.5, 2.25, 123456789.123, \
                 'héllo', 'v', x'00ff', x'01', '2024-02-29', '13:14:15.678', '2024-01-01 00:00:00.5', \
                 '2024-01-01 00:00:00.250', 'y')"
            ),
            vec![
                ("b", SchemaType::Int8, None, Value::Int8(1)),
                ("i1", SchemaType::Int8, None, Value::Int8(-2)),
                ("u1", SchemaType::Int16, None, Value::Int16(200)),
                ("i2", SchemaType::Int16, None, Value::Int16(-300)),
                ("i4", SchemaType::Int32, None, Value::Int32(40000)),
                ("u4", SchemaType::Int64, None, Value::Int64(4_000_000_000)),
                ("i8", SchemaType::Int64, None, Value::Int64(5_000_000_000)),
                ("f4", SchemaType::Float32, None, Value::Float32(1.5)),
                ("f8", SchemaType::Float64, None, Value::Float64(2.25)),
                (
                    "d12",
                    SchemaType::Bytes,
                    Some("org.apache.kafka.connect.data.Decimal"),
                    Value::Bytes(123456789123i64.to_be_bytes()[3..].to_vec().into()),
                ),
                ("tx", SchemaType::String, None, Value::String("héllo".into())),
                ("vc", SchemaType::String, None, Value::String("v".into())),
                ("vb", SchemaType::Bytes, None, Value::Bytes(vec![0u8, 255].into())),
                ("bl", SchemaType::Bytes, None, Value::Bytes(vec![1u8].into())),
                ("dt", SchemaType::Int32, Some("org.apache.kafka.connect.data.Date"), Value::Int32(19782)),
                ("tm", SchemaType::Int32, Some("org.apache.kafka.connect.data.Time"), Value::Int32(47_655_678)),
                (
                    "ts",
                    SchemaType::Int64,
                    Some("org.apache.kafka.connect.data.Timestamp"),
                    Value::Int64(1_704_067_200_500),
                ),
                (
                    "tsp",
                    SchemaType::Int64,
                    Some("org.apache.kafka.connect.data.Timestamp"),
                    Value::Int64(1_704_067_200_250),
                ),
                ("e", SchemaType::String, None, Value::String("y".into())),
            ],
        ),
    };
    exec(&d, &ddl).await;
    exec(&d, &row).await;
    let nulls = vec!["NULL"; expected.len()].join(",");
    exec(&d, &format!("INSERT INTO {t} VALUES ({nulls})")).await;
    let cfg = config(
        &d,
        &[
            ("mode", "bulk"),
            ("topic.prefix", "t-"),
            ("table.whitelist", &t),
            ("numeric.mapping", "best_fit"),
            ("poll.interval.ms", "60000"),
        ],
    );
    let mut task = start(&cfg, BTreeMap::new()).await;
    let rs = poll_n(&mut task, 2).await;
    task.stop().await.unwrap();
    exec(&d, &format!("DROP TABLE {t}")).await;
    assert_eq!(rs.len(), 2);
    let schema = rs[0].value_schema.as_ref().unwrap();
    let got: Vec<_> = schema
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.schema.schema_type, f.schema.name.as_deref(), f.schema.optional))
        .collect();
    let want: Vec<_> = expected.iter().map(|(n, t, l, _)| (*n, *t, *l, true)).collect();
    assert_eq!(got, want);
    for (name, _, _, v) in &expected {
        assert_eq!(field(&rs[0], name), v, "column {name}");
        assert_eq!(field(&rs[1], name), &Value::Null, "column {name} NULL");
    }
}

#[tokio::test]
async fn pg_type_table() {
    type_table(Kind::Pg).await
}
#[tokio::test]
async fn mariadb_type_table() {
    type_table(Kind::My).await
}
