//! The JDBC sink task against the real PostgreSQL and MariaDB of `deploy/local/postgres|mysql` (variables
//! `SLUICE_TEST_PG=postgres://user:pw@host:port/db` and `SLUICE_TEST_MYSQL=mysql://user:pw@host:port/db`, which
//! `deploy/local/<db> env` and deploy/test export). A test whose database variable is unset says so and passes.

use std::sync::Arc;

use bytes::Bytes;
use mysql_async::prelude::Queryable;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::Connector;
use sluice_connect_api::connector::{SinkTask, SinkTaskContext};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Field, Schema, SchemaType, SinkRecord, Value};
use sluice_connector_jdbc::sink::{Flavor, JdbcSinkConnector};

struct Db {
    jdbc: String,
    user: String,
    password: String,
    url: String,
}

fn db(var: &str, scheme: &str) -> Option<Db> {
    let url = std::env::var(var).ok()?;
    let rest = url.split_once("://")?.1;
    let (cred, hostdb) = rest.rsplit_once('@')?;
    let (user, password) = cred.split_once(':')?;
    Some(Db { jdbc: format!("jdbc:{scheme}://{hostdb}"), user: user.into(), password: password.into(), url })
}

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), n % 1_000_000_000)
}

fn field(name: &str, index: usize, schema: Schema) -> Field {
    Field { name: name.into(), index, schema: Arc::new(schema) }
}

fn prim(t: SchemaType, optional: bool) -> Schema {
    Schema::primitive(t, optional)
}

fn logical(t: SchemaType, name: &str, params: &[(&str, &str)]) -> Schema {
    let mut s = Schema::primitive(t, true);
    s.name = Some(name.into());
    if !params.is_empty() {
        s.parameters = Some(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    }
    s
}

fn structure(fields: Vec<Field>) -> Arc<Schema> {
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.name = Some("row".into());
    s.fields = fields;
    Arc::new(s)
}

fn key_schema() -> Arc<Schema> {
    structure(vec![field("id", 0, prim(SchemaType::Int32, false))])
}

/// The type table: every Connect type and logical type.
fn typed_schema(pg: bool) -> Arc<Schema> {
    let mut fields = vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("i8", 1, prim(SchemaType::Int8, true)),
        field("i16", 2, prim(SchemaType::Int16, true)),
        field("i64", 3, prim(SchemaType::Int64, true)),
        field("f32", 4, prim(SchemaType::Float32, true)),
        field("f64", 5, prim(SchemaType::Float64, true)),
        field("b", 6, prim(SchemaType::Boolean, true)),
        field("s", 7, prim(SchemaType::String, true)),
        field("raw", 8, prim(SchemaType::Bytes, true)),
        field("dec", 9, logical(SchemaType::Bytes, "org.apache.kafka.connect.data.Decimal", &[("scale", "2")])),
        field("d", 10, logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date", &[])),
        field("t", 11, logical(SchemaType::Int32, "org.apache.kafka.connect.data.Time", &[])),
        field("ts", 12, logical(SchemaType::Int64, "org.apache.kafka.connect.data.Timestamp", &[])),
    ];
    if pg {
        let mut arr = Schema::primitive(SchemaType::Array, true);
        arr.value_schema = Some(Arc::new(prim(SchemaType::String, true)));
        fields.push(field("tags", 13, arr));
    }
    structure(fields)
}

fn typed_value(id: i32, pg: bool) -> Value {
    let mut v = vec![
        Value::Int32(id),
        Value::Int8(-8),
        Value::Int16(1600),
        Value::Int64(1 << 40),
        Value::Float32(1.5),
        Value::Float64(-2.25),
        Value::Boolean(true),
        Value::String(format!("tab\there \"q\" \\ é {id}")),
        Value::Bytes(Bytes::from_static(&[0, 1, 255])),
        Value::Bytes(Bytes::from_static(&[0xcf, 0xc7])), // -123.45
        Value::Int32(19_723),                            // 2024-01-01
        Value::Int32(45_296_789),                        // 12:34:56.789
        Value::Int64(1_704_067_200_123),                 // 2024-01-01 00:00:00.123 UTC
    ];
    if pg {
        v.push(Value::Array(vec![Value::String("a b".into()), Value::Null, Value::String("c\"d".into())]));
    }
    Value::Struct(v)
}

fn record(
    topic: &str,
    offset: i64,
    key: Option<(Arc<Schema>, Value)>,
    vs: Option<Arc<Schema>>,
    value: Value,
) -> SinkRecord {
    let (key_schema, key) = key.map(|(s, v)| (Some(s), v)).unwrap_or((None, Value::Null));
    SinkRecord {
        topic: topic.into(),
        partition: 0,
        offset,
        key_schema,
        key,
        value_schema: vs,
        value,
        timestamp: None,
        headers: Vec::new(),
    }
}

async fn task(flavor: Flavor, d: &Db, extra: &[(&str, &str)], name: &str) -> Box<dyn SinkTask> {
    let mut config = ConfigMap::new();
    config.insert("connection.url".into(), d.jdbc.clone());
    let user_key = if flavor == Flavor::Confluent { "connection.user" } else { "connection.username" };
    config.insert(user_key.into(), d.user.clone());
    config.insert("connection.password".into(), d.password.clone());
    for (k, v) in extra {
        config.insert(k.to_string(), v.to_string());
    }
    let connector = JdbcSinkConnector { flavor };
    let tasks = connector.task_configs(&config, 1).expect("valid config");
    let mut t = connector.create_sink_task().unwrap();
    t.start(SinkTaskContext { connector: name.into(), task: 0, config: tasks[0].clone() }).await.expect("start");
    t
}

async fn pg_rows(d: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    let (client, conn) = tokio_postgres::connect(&d.url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let rows = client.simple_query(sql).await.expect(sql);
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn my_rows(d: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    let pool = mysql_async::Pool::new(d.url.as_str());
    let mut conn = pool.get_conn().await.expect("connect");
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.expect(sql);
    let out = rows
        .into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match r.as_ref(i).unwrap() {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                })
                .collect()
        })
        .collect();
    drop(conn);
    pool.disconnect().await.ok();
    out
}

async fn rows(pg: bool, d: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    if pg { pg_rows(d, sql).await } else { my_rows(d, sql).await }
}

fn s(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|x| if *x == "NULL" { None } else { Some(x.to_string()) }).collect()
}

async fn type_table(pg: bool, d: &Db) {
    let topic = unique("jdbc_types");
    let mut t = task(
        Flavor::Confluent,
        d,
        &[("auto.create", "true"), ("pk.mode", "record_value"), ("pk.fields", "id")],
        &topic,
    )
    .await;
    let schema = typed_schema(pg);
    let recs: Vec<SinkRecord> =
        (1..=3).map(|i| record(&topic, i as i64, None, Some(schema.clone()), typed_value(i, pg))).collect();
    t.put(&recs).await.expect("put");
    t.flush(&Default::default()).await.expect("flush");
    let cols = if pg {
        pg_rows(d, &format!("SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{topic}' ORDER BY ordinal_position")).await
    } else {
        my_rows(d, &format!("SELECT column_name, column_type, is_nullable FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{topic}' ORDER BY ordinal_position")).await
    };
    let types: Vec<String> =
        cols.iter().map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap())).collect();
    let expected: Vec<&str> = if pg {
        vec![
            "id integer",
            "i8 smallint",
            "i16 smallint",
            "i64 bigint",
            "f32 real",
            "f64 double precision",
            "b boolean",
            "s text",
            "raw bytea",
            "dec numeric",
            "d date",
            "t time without time zone",
            "ts timestamp without time zone",
            "tags ARRAY",
        ]
    } else {
        vec![
            "id int(11)",
            "i8 tinyint(4)",
            "i16 smallint(6)",
            "i64 bigint(20)",
            "f32 float",
            "f64 double",
            "b tinyint(4)",
            "s text",
            "raw varbinary(1024)",
            "dec decimal(65,2)",
            "d date",
            "t time(3)",
            "ts datetime(3)",
        ]
    };
    assert_eq!(types, expected);
    let got = if pg {
        pg_rows(d, &format!("SELECT id, i8, i16, i64, f32, f64, b, s, encode(raw,'hex'), dec, d, t, ts, tags FROM \"{topic}\" ORDER BY id")).await
    } else {
        my_rows(
            d,
            &format!("SELECT id, i8, i16, i64, f32, f64, b, s, hex(raw), `dec`, d, t, ts FROM `{topic}` ORDER BY id"),
        )
        .await
    };
    assert_eq!(got.len(), 3);
    let mut want = if pg {
        s(&[
            "1",
            "-8",
            "1600",
            "1099511627776",
            "1.5",
            "-2.25",
            "t",
            "tab\there \"q\" \\ é 1",
            "0001ff",
            "-123.45",
            "2024-01-01",
            "12:34:56.789",
            "2024-01-01 00:00:00.123",
        ])
    } else {
        s(&[
            "1",
            "-8",
            "1600",
            "1099511627776",
            "1.5",
            "-2.25",
            "1",
            "tab\there \"q\" \\ é 1",
            "0001FF",
            "-123.45",
            "2024-01-01",
            "12:34:56.789",
            "2024-01-01 00:00:00.123",
        ])
    };
    if pg {
        want.push(Some("{\"a b\",NULL,\"c\\\"d\"}".into()));
    }
    assert_eq!(got[0], want);
    t.stop().await.unwrap();
}

async fn modes_and_evolution(pg: bool, d: &Db) {
    let topic = unique("jdbc_modes");
    let q = |n: &str| if pg { format!("\"{n}\"") } else { format!("`{n}`") };
    let vs = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("name", 1, prim(SchemaType::String, true)),
    ]);
    let vs2 = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("name", 1, prim(SchemaType::String, true)),
        field("score", 2, prim(SchemaType::Float64, true)),
    ]);
    let key = |i: i32| Some((key_schema(), Value::Struct(vec![Value::Int32(i)])));
    let mut t = task(
        Flavor::Confluent,
        d,
        &[
            ("auto.create", "true"),
            ("auto.evolve", "true"),
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
        ],
        &topic,
    )
    .await;
    let v = |i: i32, n: &str| Value::Struct(vec![Value::Int32(i), Value::String(n.into())]);
    t.put(&[
        record(&topic, 0, key(1), Some(vs.clone()), v(1, "a")),
        record(&topic, 1, key(2), Some(vs.clone()), v(2, "b")),
        record(&topic, 2, key(1), Some(vs.clone()), v(1, "a2")), // same key twice in one batch
        record(&topic, 3, key(3), Some(vs.clone()), v(3, "c")),
        record(&topic, 4, key(3), None, Value::Null), // tombstone: delete
    ])
    .await
    .expect("put");
    // Mid-stream: a new optional field (auto.evolve).
    t.put(&[record(
        &topic,
        5,
        key(2),
        Some(vs2.clone()),
        Value::Struct(vec![Value::Int32(2), Value::String("b2".into()), Value::Float64(0.5)]),
    )])
    .await
    .expect("evolve");
    t.flush(&Default::default()).await.expect("flush");
    let got =
        rows(pg, d, &format!("SELECT {}, {}, {} FROM {} ORDER BY 1", q("id"), q("name"), q("score"), q(&topic))).await;
    assert_eq!(got, vec![s(&["1", "a2", "NULL"]), s(&["2", "b2", "0.5"])]);
    // Replay of the same offsets (as after a crash): nothing changes.
    t.put(&[
        record(&topic, 4, key(3), None, Value::Null),
        record(
            &topic,
            5,
            key(2),
            Some(vs2.clone()),
            Value::Struct(vec![Value::Int32(2), Value::String("zz".into()), Value::Float64(0.5)]),
        ),
    ])
    .await
    .expect("replay");
    t.flush(&Default::default()).await.expect("flush");
    let again =
        rows(pg, d, &format!("SELECT {}, {}, {} FROM {} ORDER BY 1", q("id"), q("name"), q("score"), q(&topic))).await;
    assert_eq!(again, got, "replayed offsets are skipped");
    t.stop().await.unwrap();

    // update mode
    let mut u = task(
        Flavor::Confluent,
        d,
        &[("insert.mode", "update"), ("pk.mode", "record_key"), ("table.name.format", &topic)],
        &unique("upd"),
    )
    .await;
    u.put(&[
        record("other", 0, key(1), Some(vs.clone()), v(1, "updated")),
        record("other", 1, key(9), Some(vs.clone()), v(9, "absent")),
    ])
    .await
    .expect("update");
    u.flush(&Default::default()).await.expect("flush");
    let got = rows(pg, d, &format!("SELECT {}, {} FROM {} ORDER BY 1", q("id"), q("name"), q(&topic))).await;
    assert_eq!(got, vec![s(&["1", "updated"]), s(&["2", "b2"])]);
    u.stop().await.unwrap();
}

async fn rejected_row(pg: bool, d: &Db) {
    let topic = unique("jdbc_reject");
    let q = |n: &str| if pg { format!("\"{n}\"") } else { format!("`{n}`") };
    let vs = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("name", 1, prim(SchemaType::String, true)),
    ]);
    let mut t = task(
        Flavor::Confluent,
        d,
        &[("auto.create", "true"), ("pk.mode", "record_value"), ("pk.fields", "id")],
        &topic,
    )
    .await;
    let v = |i: i32| Value::Struct(vec![Value::Int32(i), Value::String(format!("n{i}"))]);
    t.put(&[record(&topic, 0, None, Some(vs.clone()), v(1))]).await.expect("first");
    // Batch with a duplicate primary key in the middle: the whole batch is rolled back and reported as Data.
    let batch = [
        record(&topic, 1, None, Some(vs.clone()), v(2)),
        record(&topic, 2, None, Some(vs.clone()), v(1)),
        record(&topic, 3, None, Some(vs.clone()), v(3)),
    ];
    let err = t.put(&batch).await.expect_err("duplicate key");
    assert!(matches!(err, ConnectError::Data(_)), "{err:?}");
    t.flush(&Default::default()).await.expect("flush");
    assert!(err.to_string().to_lowercase().contains("duplicate"), "{err}");
    let got = rows(pg, d, &format!("SELECT {} FROM {} ORDER BY 1", q("id"), q(&topic))).await;
    assert_eq!(got, vec![s(&["1"])], "nothing of the failed batch was written");
    // The runtime then puts record by record: the good ones land, the bad one fails alone.
    t.put(&batch[0..1]).await.expect("good");
    assert!(matches!(t.put(&batch[1..2]).await, Err(ConnectError::Data(_))));
    t.put(&batch[2..3]).await.expect("good");
    t.flush(&Default::default()).await.expect("flush");
    let got = rows(pg, d, &format!("SELECT {} FROM {} ORDER BY 1", q("id"), q(&topic))).await;
    assert_eq!(got, vec![s(&["1"]), s(&["2"]), s(&["3"])]);
    t.stop().await.unwrap();
}

fn envelope_schema(row: Arc<Schema>) -> Arc<Schema> {
    let mut opt_row = (*row).clone();
    opt_row.optional = true;
    let opt_row = Arc::new(opt_row);
    let mut source = Schema::primitive(SchemaType::Struct, false);
    source.fields = vec![field("table", 0, prim(SchemaType::String, false))];
    let mut s = Schema::primitive(SchemaType::Struct, true);
    s.name = Some("dbserver1.public.customers.Envelope".into());
    s.fields = vec![
        Field { name: "before".into(), index: 0, schema: opt_row.clone() },
        Field { name: "after".into(), index: 1, schema: opt_row },
        field("source", 2, source),
        field("op", 3, prim(SchemaType::String, false)),
    ];
    Arc::new(s)
}

async fn debezium_envelopes(pg: bool, d: &Db) {
    let prefix = unique("dbz");
    let topic = format!("{prefix}.public.customers");
    let table = format!("{prefix}_public_customers");
    let row = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("name", 1, prim(SchemaType::String, false)),
    ]);
    let es = envelope_schema(row);
    let ev = |op: &str, before: Option<(i32, &str)>, after: Option<(i32, &str)>| {
        let r = |x: Option<(i32, &str)>| {
            x.map(|(i, n)| Value::Struct(vec![Value::Int32(i), Value::String(n.into())])).unwrap_or(Value::Null)
        };
        Value::Struct(vec![
            r(before),
            r(after),
            Value::Struct(vec![Value::String("customers".into())]),
            Value::String(op.into()),
        ])
    };
    let key = |i: i32| Some((key_schema(), Value::Struct(vec![Value::Int32(i)])));
    let mut t = task(
        Flavor::Debezium,
        d,
        &[
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("delete.enabled", "true"),
            ("schema.evolution", "basic"),
        ],
        &prefix,
    )
    .await;
    t.put(&[
        record(&topic, 0, key(1), Some(es.clone()), ev("r", None, Some((1, "snap")))),
        record(&topic, 1, key(2), Some(es.clone()), ev("c", None, Some((2, "new")))),
        record(&topic, 2, key(1), Some(es.clone()), ev("u", Some((1, "snap")), Some((1, "upd")))),
        record(&topic, 3, key(2), Some(es.clone()), ev("d", Some((2, "new")), None)),
        record(&topic, 4, key(2), None, Value::Null),
    ])
    .await
    .expect("put");
    t.flush(&Default::default()).await.expect("flush");
    let got = rows(pg, d, &format!("SELECT id, name FROM {table} ORDER BY 1")).await;
    assert_eq!(got, vec![s(&["1", "upd"])]);
    t.stop().await.unwrap();
}

/// `auto.create` and `auto.evolve` write each field's default as the column's `DEFAULT` (Confluent's writeColumnSpec):
/// a row inserted by hand without those columns gets them.
async fn column_defaults(pg: bool, d: &Db) {
    let topic = unique("jdbc_defaults");
    let q = |n: &str| if pg { format!("\"{n}\"") } else { format!("`{n}`") };
    let with_default = |mut schema: Schema, v: Value| {
        schema.default = Some(Box::new(v));
        schema
    };
    let vs = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("n", 1, with_default(prim(SchemaType::Int64, false), Value::Int64(-42))),
        field("txt", 2, with_default(prim(SchemaType::String, true), Value::String("it's".into()))),
        field("flag", 3, with_default(prim(SchemaType::Boolean, false), Value::Boolean(true))),
        field(
            "dec",
            4,
            with_default(
                logical(SchemaType::Bytes, "org.apache.kafka.connect.data.Decimal", &[("scale", "2")]),
                Value::Bytes(vec![0x04, 0xd2].into()),
            ),
        ),
        field(
            "day",
            5,
            with_default(logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date", &[]), Value::Int32(19_723)),
        ),
        field("raw", 6, with_default(prim(SchemaType::Bytes, true), Value::Bytes(vec![0x01, 0xff].into()))),
    ]);
    let mut t = task(Flavor::Confluent, d, &[("auto.create", "true"), ("auto.evolve", "true")], &topic).await;
    let v = Value::Struct(vec![
        Value::Int32(1),
        Value::Int64(7),
        Value::String("x".into()),
        Value::Boolean(false),
        Value::Bytes(vec![0x00, 0x01].into()),
        Value::Int32(0),
        Value::Bytes(vec![0xab].into()),
    ]);
    t.put(&[record(&topic, 0, None, Some(vs.clone()), v)]).await.expect("put");
    t.flush(&Default::default()).await.expect("flush");
    // A field added later with a default: auto.evolve adds the column with it.
    let mut fields = vs.fields.clone();
    fields.push(field("later", 7, with_default(prim(SchemaType::String, false), Value::String("zz".into()))));
    let vs2 = structure(fields);
    let v2 = Value::Struct(vec![
        Value::Int32(2),
        Value::Int64(8),
        Value::String("y".into()),
        Value::Boolean(true),
        Value::Bytes(vec![0x00, 0x02].into()),
        Value::Int32(1),
        Value::Bytes(vec![0xcd].into()),
        Value::String("w".into()),
    ]);
    t.put(&[record(&topic, 1, None, Some(vs2), v2)]).await.expect("put after evolution");
    t.flush(&Default::default()).await.expect("flush");
    rows(pg, d, &format!("INSERT INTO {} ({}) VALUES (99)", q(&topic), q("id"))).await;
    let raw = if pg { format!("encode({}, 'hex')", q("raw")) } else { format!("LOWER(HEX({}))", q("raw")) };
    let text = |c: &str| if pg { format!("CAST({} AS text)", q(c)) } else { format!("CAST({} AS CHAR)", q(c)) };
    let (flag, dec, day) = (text("flag"), text("dec"), text("day"));
    let got = rows(
        pg,
        d,
        &format!(
            "SELECT {}, {}, {flag}, {dec}, {day}, {raw}, {} FROM {} WHERE {} = 99",
            q("n"),
            q("txt"),
            q("later"),
            q(&topic),
            q("id")
        ),
    )
    .await;
    let flag_true = if pg { "true" } else { "1" };
    assert_eq!(got, vec![s(&["-42", "it's", flag_true, "12.34", "2024-01-01", "01ff", "zz"])], "defaults");
    t.stop().await.unwrap();
}

/// `db.timezone` (Confluent): Timestamp and Time values are written as wall-clock times in the zone, as the original
/// binds them with a `Calendar` (pgjdbc sends the zone's offset too, so a `timestamptz` column keeps the instant);
/// Date values in `date.timezone` (default: db.timezone, so a zone west of UTC writes the day before, as the
/// original). Instants on both sides of the 2024 DST changes in Berlin.
async fn time_zones(pg: bool, d: &Db) {
    let mut fields = vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("d", 1, logical(SchemaType::Int32, "org.apache.kafka.connect.data.Date", &[])),
        field("t", 2, logical(SchemaType::Int32, "org.apache.kafka.connect.data.Time", &[])),
        field("ts", 3, logical(SchemaType::Int64, "org.apache.kafka.connect.data.Timestamp", &[])),
    ];
    if pg {
        fields.push(field("tstz", 4, logical(SchemaType::Int64, "org.apache.kafka.connect.data.Timestamp", &[])));
    }
    let schema = structure(fields);
    let value = |id: i32, ts: i64| {
        let mut v = vec![Value::Int32(id), Value::Int32(19_723), Value::Int32(45_296_789), Value::Int64(ts)];
        if pg {
            v.push(Value::Int64(ts));
        }
        Value::Struct(v)
    };
    // Instants (ms) and their expected wall-clock times.
    type Instants<'a> = &'a [(i64, &'a str)];
    let berlin: &[(i64, &str)] = &[
        (1_711_845_000_123, "2024-03-31 01:30:00.123"), // 00:30Z, CET
        (1_711_848_600_000, "2024-03-31 03:30:00"),     // 01:30Z, CEST: one hour later, two on the wall clock
        (1_729_989_000_000, "2024-10-27 02:30:00"),     // 00:30Z, CEST
        (1_729_992_600_000, "2024-10-27 02:30:00"),     // 01:30Z, CET: the same wall-clock time again
    ];
    let new_york: &[(i64, &str)] =
        &[(1_719_835_200_000, "2024-07-01 08:00:00"), (1_704_067_200_000, "2023-12-31 19:00:00")];
    // (db.timezone, date.timezone, instants, expected d, expected t)
    let cases: [(&str, Option<&str>, Instants<'_>, &str, &str); 3] = [
        ("Europe/Berlin", None, berlin, "2024-01-01", "13:34:56.789"),
        ("America/New_York", None, new_york, "2023-12-31", "07:34:56.789"),
        ("America/New_York", Some("UTC"), new_york, "2024-01-01", "07:34:56.789"),
    ];
    for (zone, date_zone, instants, want_d, want_t) in cases {
        let topic = unique("jdbc_tz");
        if pg {
            pg_rows(d, &format!("CREATE TABLE \"{topic}\" (id int PRIMARY KEY, d date, t time(3), ts timestamp(3), tstz timestamptz(3))")).await;
        }
        let mut extra =
            vec![("auto.create", "true"), ("pk.mode", "record_value"), ("pk.fields", "id"), ("db.timezone", zone)];
        if let Some(z) = date_zone {
            extra.push(("date.timezone", z));
        }
        let mut t = task(Flavor::Confluent, d, &extra, &topic).await;
        let recs: Vec<SinkRecord> = instants
            .iter()
            .enumerate()
            .map(|(i, (ts, _))| record(&topic, i as i64, None, Some(schema.clone()), value(i as i32 + 1, *ts)))
            .collect();
        t.put(&recs).await.expect("put");
        t.stop().await.unwrap();
        let got = if pg {
            pg_rows(
                d,
                &format!("SELECT id, d, t, ts, (extract(epoch FROM tstz) * 1000)::int8 FROM \"{topic}\" ORDER BY id"),
            )
            .await
        } else {
            my_rows(d, &format!("SELECT id, d, t, ts FROM `{topic}` ORDER BY id")).await
        };
        let want: Vec<Vec<Option<String>>> = instants
            .iter()
            .enumerate()
            .map(|(i, (ms, wall))| {
                let id = (i + 1).to_string();
                let mut wall = wall.to_string();
                if !pg && !wall.contains('.') {
                    wall.push_str(".000");
                }
                let mut row = [id.as_str(), want_d, want_t, wall.as_str()]
                    .iter()
                    .map(|x| Some(x.to_string()))
                    .collect::<Vec<_>>();
                if pg {
                    // The timestamptz column keeps the instant.
                    row.push(Some(ms.to_string()));
                }
                row
            })
            .collect();
        assert_eq!(got, want, "db.timezone={zone} date.timezone={date_zone:?}");
    }
}

/// A zone Java does not know is a config error on `db.timezone` in Kafka Connect's format; `PST` passes Confluent's
/// validator (a SHORT_IDS name) but the sink resolves with plain `ZoneId.of`: the task fails to start.
#[test]
fn sink_zone_validation() {
    let mut c = ConfigMap::new();
    c.insert("connection.url".into(), "jdbc:postgresql://127.0.0.1:5432/db".into());
    c.insert("db.timezone".into(), "Mars/Olympus".into());
    let connector = JdbcSinkConnector { flavor: Flavor::Confluent };
    assert_eq!(
        connector.validate_extra(&c),
        vec![(
            "db.timezone".to_string(),
            "Invalid value Mars/Olympus for configuration db.timezone: Invalid time zone. See the list of valid time zones at https://docs.oracle.com/javase/8/docs/api/java/time/ZoneId.html#shortIds".to_string()
        )]
    );
    for ok in ["Europe/Berlin", "GMT+2", "+05:30", "UTC", "PST"] {
        c.insert("db.timezone".into(), ok.into());
        assert!(connector.validate_extra(&c).is_empty(), "{ok}");
    }
    // Debezium: `use.time.zone` (alias `database.time_zone`), UTC+0 only in Sluice; an unknown zone passes
    // validation (Debezium has no validator) and fails the task when it starts.
    let dbz = JdbcSinkConnector { flavor: Flavor::Debezium };
    let mut c2 = ConfigMap::new();
    c2.insert("connection.url".into(), "jdbc:postgresql://127.0.0.1:5432/db".into());
    for (k, v, ok) in [
        ("use.time.zone", "Etc/UTC", true),
        ("database.time_zone", "Z", true),
        ("use.time.zone", "CEST", true),
        ("use.time.zone", "Europe/Berlin", false),
        ("database.time_zone", "+01:00", false),
    ] {
        c2.retain(|k, _| k == "connection.url");
        c2.insert(k.into(), v.into());
        assert_eq!(dbz.validate_extra(&c2).is_empty(), ok, "{k}={v}");
    }
    c.insert("date.timezone".into(), "Utc".into());
    assert_eq!(
        connector.validate_extra(&c)[0].1,
        "Invalid value Utc for configuration date.timezone: Invalid enumerator"
    );
}

#[tokio::test]
async fn sink_short_zone_id_fails_the_task() {
    let mut c = ConfigMap::new();
    c.insert("connection.url".into(), "jdbc:postgresql://127.0.0.1:1/db".into());
    c.insert("db.timezone".into(), "PST".into());
    let connector = JdbcSinkConnector { flavor: Flavor::Confluent };
    let tasks = connector.task_configs(&c, 1).expect("valid config");
    let mut t = connector.create_sink_task().unwrap();
    let err = t.start(SinkTaskContext { connector: "tz".into(), task: 0, config: tasks[0].clone() }).await.err();
    let err = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("Unknown time-zone ID: PST"), "{err}");
}

/// PostgreSQL's binary COPY (used when every cell's binary form is exact): edge values of every plain type, widened
/// integers and floats, a null taking the field's default, varchar's length check, the upsert's staging table, and
/// a column the binary form does not cover (int4 from an int64 field) falling back to the text COPY.
async fn binary_copy(d: &Db) {
    let topic = unique("jdbc_binary");
    pg_rows(
        d,
        &format!(
            "CREATE TABLE \"{topic}\" (id int4 PRIMARY KEY, a int2, b int8, c float4, d float8, w float8, e bool, f text, \
             g varchar(5), h bytea, i int4, j int8)"
        ),
    )
    .await;
    let mut with_default = prim(SchemaType::Int32, true);
    with_default.default = Some(Box::new(Value::Int32(7)));
    let schema = structure(vec![
        field("id", 0, prim(SchemaType::Int32, false)),
        field("a", 1, prim(SchemaType::Int8, true)),
        field("b", 2, prim(SchemaType::Int32, true)),
        field("c", 3, prim(SchemaType::Float32, true)),
        field("d", 4, prim(SchemaType::Float64, true)),
        field("w", 5, prim(SchemaType::Float32, true)),
        field("e", 6, prim(SchemaType::Boolean, true)),
        field("f", 7, prim(SchemaType::String, true)),
        field("g", 8, prim(SchemaType::String, true)),
        field("h", 9, prim(SchemaType::Bytes, true)),
        field("i", 10, with_default),
        field("j", 11, prim(SchemaType::Int64, true)),
    ]);
    let row = |id: i32, c: f32, d: f64, f: &str, g: Option<&str>, h: &'static [u8], i: Option<i32>, j: i64| {
        Value::Struct(vec![
            Value::Int32(id),
            Value::Int8(-128),
            Value::Int32(i32::MIN),
            Value::Float32(c),
            Value::Float64(d),
            Value::Float32(1.1),
            Value::Boolean(id % 2 == 0),
            Value::String(f.into()),
            g.map_or(Value::Null, |g| Value::String(g.into())),
            Value::Bytes(Bytes::from_static(h)),
            i.map_or(Value::Null, Value::Int32),
            Value::Int64(j),
        ])
    };
    let recs = vec![
        record(
            &topic,
            0,
            None,
            Some(schema.clone()),
            row(1, 1.1, f64::NAN, "", Some("héllo"), &[0, 255], None, i64::MIN),
        ),
        record(
            &topic,
            1,
            None,
            Some(schema.clone()),
            row(2, -0.0, f64::INFINITY, "tab\t\\ \n\r end", None, &[], Some(5), i64::MAX),
        ),
        record(
            &topic,
            2,
            None,
            Some(schema.clone()),
            row(3, f32::MAX, f64::NEG_INFINITY, "ünïcødé ✓", Some(""), b"\\x", Some(0), 0),
        ),
    ];
    let mut t = task(Flavor::Confluent, d, &[("auto.create", "false")], &topic).await;
    t.put(&recs).await.expect("put");
    t.flush(&Default::default()).await.expect("flush");
    let select = format!("SELECT id, a, b, c, d, w, e, f, g, encode(h, 'hex'), i, j FROM \"{topic}\" ORDER BY id");
    let got = pg_rows(d, &select).await;
    let want = vec![
        s(&[
            "1",
            "-128",
            "-2147483648",
            "1.1",
            "NaN",
            "1.100000023841858",
            "f",
            "",
            "héllo",
            "00ff",
            "7",
            "-9223372036854775808",
        ]),
        s(&[
            "2",
            "-128",
            "-2147483648",
            "-0",
            "Infinity",
            "1.100000023841858",
            "t",
            "tab\t\\ \n\r end",
            "NULL",
            "",
            "5",
            "9223372036854775807",
        ]),
        s(&[
            "3",
            "-128",
            "-2147483648",
            "3.4028235e+38",
            "-Infinity",
            "1.100000023841858",
            "f",
            "ünïcødé ✓",
            "",
            "5c78",
            "0",
            "0",
        ]),
    ];
    assert_eq!(got, want);
    // varchar(5)'s length is checked as with the text COPY.
    let long = record(&topic, 3, None, Some(schema.clone()), row(4, 0.0, 0.0, "", Some("toolong"), &[], None, 0));
    let err = t.put(&[long]).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("too long"), "{err}");
    t.stop().await.unwrap();
    // Upsert: through the staging table (same column types), binary as well.
    let mut t = task(
        Flavor::Confluent,
        d,
        &[("auto.create", "false"), ("insert.mode", "upsert"), ("pk.mode", "record_value"), ("pk.fields", "id")],
        &topic,
    )
    .await;
    let update = record(&topic, 4, None, Some(schema.clone()), row(1, 2.5, 0.5, "new", Some("x"), &[1], Some(9), 42));
    t.put(&[update]).await.expect("upsert");
    t.flush(&Default::default()).await.expect("flush");
    let got = pg_rows(d, &select).await;
    assert_eq!(
        got[0],
        s(&["1", "-128", "-2147483648", "2.5", "0.5", "1.100000023841858", "f", "new", "x", "01", "9", "42"])
    );
    assert_eq!(got.len(), 3);
    t.stop().await.unwrap();
    // An int64 field into an int4 column: not the binary form's (it would need a range check), the text COPY's.
    let narrow = unique("jdbc_binary_narrow");
    pg_rows(d, &format!("CREATE TABLE \"{narrow}\" (id int4, n int4)")).await;
    let schema =
        structure(vec![field("id", 0, prim(SchemaType::Int32, false)), field("n", 1, prim(SchemaType::Int64, false))]);
    let mut t = task(Flavor::Confluent, d, &[("auto.create", "false")], &narrow).await;
    let ok = record(&narrow, 0, None, Some(schema.clone()), Value::Struct(vec![Value::Int32(1), Value::Int64(123)]));
    t.put(&[ok]).await.expect("put");
    t.flush(&Default::default()).await.expect("flush");
    assert_eq!(pg_rows(d, &format!("SELECT id, n FROM \"{narrow}\"")).await, vec![s(&["1", "123"])]);
    let big = record(&narrow, 1, None, Some(schema), Value::Struct(vec![Value::Int32(2), Value::Int64(1 << 40)]));
    let err = t.put(&[big]).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("out of range"), "{err}");
    t.stop().await.unwrap();
}

#[tokio::test]
async fn postgres_sink() {
    let Some(d) = db("SLUICE_TEST_PG", "postgresql") else {
        eprintln!("SLUICE_TEST_PG unset: run `eval \"$(deploy/local/postgres env)\"` first; skipped");
        return;
    };
    type_table(true, &d).await;
    modes_and_evolution(true, &d).await;
    rejected_row(true, &d).await;
    debezium_envelopes(true, &d).await;
    column_defaults(true, &d).await;
    time_zones(true, &d).await;
    binary_copy(&d).await;
}

#[tokio::test]
async fn mariadb_sink() {
    let Some(d) = db("SLUICE_TEST_MYSQL", "mariadb") else {
        eprintln!("SLUICE_TEST_MYSQL unset: run `eval \"$(deploy/local/mysql env)\"` first; skipped");
        return;
    };
    type_table(false, &d).await;
    modes_and_evolution(false, &d).await;
    rejected_row(false, &d).await;
    debezium_envelopes(false, &d).await;
    column_defaults(false, &d).await;
    time_zones(false, &d).await;
}

/// The task's own write path into PostgreSQL, 100,000 records in puts of 500 (no Kafka, no converter):
/// `MODE=insert|upsert cargo test -p sluice-connector-jdbc --test sink_databases put_speed -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn put_speed() {
    let d = db("SLUICE_TEST_PG", "postgresql").unwrap();
    let topic = unique("speed");
    let vs = structure(vec![
        field("id", 0, prim(SchemaType::Int64, false)),
        field("name", 1, prim(SchemaType::String, true)),
        field("note", 2, prim(SchemaType::String, true)),
    ]);
    let mode = std::env::var("MODE").unwrap_or("insert".into());
    let mut t = task(
        Flavor::Confluent,
        &d,
        &[
            ("auto.create", "true"),
            ("insert.mode", &mode),
            ("pk.mode", if mode == "insert" { "none" } else { "record_value" }),
            ("pk.fields", "id"),
        ],
        &topic,
    )
    .await;
    let recs: Vec<SinkRecord> = (0..100_000)
        .map(|i| {
            record(
                &topic,
                i,
                None,
                Some(vs.clone()),
                Value::Struct(vec![
                    Value::Int64(i),
                    Value::String(format!("customer-{i:08}")),
                    Value::String("lorem ipsum dolor sit amet consectetur".into()),
                ]),
            )
        })
        .collect();
    let start = std::time::Instant::now();
    for chunk in recs.chunks(500) {
        t.put(chunk).await.unwrap();
    }
    t.flush(&Default::default()).await.unwrap();
    eprintln!("{mode}: {:.0} rows/s", 100_000.0 / start.elapsed().as_secs_f64());
}
