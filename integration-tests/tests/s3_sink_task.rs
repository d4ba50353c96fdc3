//! The S3 sink task against the real local S3 server (SeaweedFS, `deploy/local/s3`): object keys and bytes as
//! Confluent's for each format and partitioner, rotation by size / record time / schedule, multipart uploads,
//! retried and rewound batches, a crash in the middle of a multipart upload, many partitions under a small
//! buffer budget, and the failures (missing bucket, bucket created while the task retries, wrong credentials,
//! unreachable endpoint). The task is driven directly (start/put/pre_commit), as the agent's sink loop does.
//!
//! Compatibility fixtures, from the originals' source:
//! - key layout and zero padding: confluentinc/kafka-connect-storage-cloud@v12.1.9
//!   `kafka-connect-s3/src/main/java/io/confluent/connect/s3/TopicPartitionWriter.java` (`getCommitFilename`:
//!   topicsDir + dirDelim + topic + dirDelim + encodedPartition + dirDelim + topic + fileDelim + partition +
//!   fileDelim + zero-padded start offset + extension);
//! - JSON lines: `format/json/JsonRecordWriterProvider.java` (value then `\n`, Structs through JsonConverter with
//!   schemas.enable=false); ByteArray: `format/bytearray/ByteArrayRecordWriterProvider.java` (bytes + separator,
//!   `.bin`);
//! - partitioner paths: confluentinc/kafka-connect-storage-common@v12.0.12 `partitioner/DefaultPartitioner.java`
//!   (`partition=N`), `FieldPartitioner.java` (`name=value` joined by the directory delimiter),
//!   `HourlyPartitioner.java` / `DailyPartitioner.java` (`'year'=YYYY/'month'=MM/'day'=dd[/'hour'=HH]`);
//! - tags: `TopicPartitionWriter.tagFile` (`startOffset`, `endOffset`, `recordCount`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{Connector, SinkTask, SinkTaskContext, TopicPartition};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::record::{Field, Schema, SchemaType, SinkRecord, Value};
use sluice_connector_s3::S3SinkConnector;
use sluice_connector_s3::client::S3Client;
use sluice_integration_tests::s3::{S3Server, bucket_name};

fn unique(base: &str) -> String {
    bucket_name(&format!("{base}-{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// The bucket every test here writes to, each under its own prefix (SeaweedFS gives every bucket its own set of
/// volumes: a bucket per test would exhaust a small server).
const BUCKET: &str = "sluice-s3-sink-tests";

/// A config writing to [`BUCKET`] under `prefix` (`topics.dir` = `<prefix>/<topics.dir or "topics">`).
fn config(server: &S3Server, prefix: &str, extra: &[(&str, &str)]) -> ConfigMap {
    let mut c = config_bucket(server, BUCKET, extra);
    let dir = c.get("topics.dir").cloned().unwrap_or_else(|| "topics".into());
    c.insert("topics.dir".into(), format!("{prefix}/{dir}"));
    c
}

fn config_bucket(server: &S3Server, bucket: &str, extra: &[(&str, &str)]) -> ConfigMap {
    let mut c: ConfigMap = [
        ("name", "s3-sink"),
        ("connector.class", "io.confluent.connect.s3.S3SinkConnector"),
        ("tasks.max", "1"),
        ("topics", "t"),
        ("s3.bucket.name", bucket),
        ("s3.region", server.region.as_str()),
        ("store.url", server.endpoint.as_str()),
        ("aws.access.key.id", server.access_key.as_str()),
        ("aws.secret.access.key", server.secret_key.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        c.insert(k.to_string(), v.to_string());
    }
    c
}

/// A test's view of [`BUCKET`]: keys relative to its prefix.
struct Store {
    client: S3Client,
    prefix: String,
}

impl Store {
    async fn new(server: &S3Server, prefix: &str) -> anyhow::Result<Store> {
        Ok(Store { client: server.bucket(BUCKET).await?, prefix: format!("{prefix}/") })
    }
    async fn get_object(&self, key: &str) -> anyhow::Result<String> {
        Ok(self.client.get_object(&format!("{}{key}", self.prefix)).await?)
    }
    async fn get_tags(&self, key: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self.client.get_tags(&format!("{}{key}", self.prefix)).await?)
    }
    async fn list_multipart(&self, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self.client.list_multipart(&format!("{}{prefix}", self.prefix)).await?)
    }
}

/// Waits for the task's uploads in the background: objects are in the store once a commit point passed
/// (`pre_commit`, here with no offsets to hand back).
async fn settle(task: &mut Box<dyn SinkTask>) -> anyhow::Result<()> {
    task.pre_commit(&BTreeMap::new()).await?;
    Ok(())
}

async fn start(config: &ConfigMap) -> anyhow::Result<Box<dyn SinkTask>> {
    let mut task = S3SinkConnector.create_sink_task().context("a sink task")?;
    task.start(SinkTaskContext { connector: "s3-sink".into(), task: 0, config: config.clone() }).await?;
    Ok(task)
}

fn rec(topic: &str, partition: i32, offset: i64, value: &str) -> SinkRecord {
    SinkRecord {
        topic: topic.into(),
        partition,
        offset,
        key_schema: None,
        key: Value::Null,
        value_schema: Some(Schema::string()),
        value: Value::String(value.into()),
        timestamp: Some(1_700_000_000_000 + offset * 1000),
        headers: Vec::new(),
    }
}

fn recs(topic: &str, partition: i32, offsets: std::ops::Range<i64>) -> Vec<SinkRecord> {
    offsets.map(|o| rec(topic, partition, o, &format!("{topic}-{partition}-{o}"))).collect()
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition { topic: topic.into(), partition }
}

fn json_lines(values: impl IntoIterator<Item = String>) -> String {
    values.into_iter().map(|v| format!("\"{v}\"\n")).collect()
}

async fn keys(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut k: Vec<String> =
        store.client.list_keys(&store.prefix).await?.into_iter().map(|k| k[store.prefix.len()..].to_string()).collect();
    k.sort();
    Ok(k)
}

#[tokio::test]
async fn json_default_partitioner_keys_bytes_and_pre_commit() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-json");
    let client = Store::new(&server, &bucket).await?;
    let mut task = start(&config(&server, &bucket, &[("flush.size", "3"), ("s3.object.tagging", "true")])).await?;
    let mut batch = recs("t", 0, 0..7);
    batch.extend(recs("t", 1, 0..2));
    task.put(&batch).await?;
    let offsets: BTreeMap<_, _> = [(tp("t", 0), 7), (tp("t", 1), 2)].into_iter().collect();
    let safe = task.pre_commit(&offsets).await?;
    ensure!(safe == [(tp("t", 0), 6), (tp("t", 1), 0)].into_iter().collect(), "pre_commit answered {safe:?}");
    let k = keys(&client).await?;
    ensure!(
        k == ["topics/t/partition=0/t+0+0000000000.json", "topics/t/partition=0/t+0+0000000003.json"],
        "keys {k:?}"
    );
    let body = client.get_object(&k[1]).await?;
    ensure!(body == json_lines((3..6).map(|o| format!("t-0-{o}"))), "contents {body:?}");
    let tags = client.get_tags(&k[1]).await?;
    for (name, value) in [("startOffset", "3"), ("endOffset", "5"), ("recordCount", "3")] {
        ensure!(tags.iter().any(|(k, v)| k == name && v == value), "tags {tags:?}");
    }
    task.stop().await?;
    Ok(())
}

#[tokio::test]
async fn bytearray_format_topics_dir_delimiters_and_padding() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-bytes");
    let client = Store::new(&server, &bucket).await?;
    let extra = [
        ("format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
        ("flush.size", "2"),
        ("topics.dir", "raw"),
        ("file.delim", "_"),
        ("filename.offset.zero.pad.width", "4"),
    ];
    let mut task = start(&config(&server, &bucket, &extra)).await?;
    let mut r = rec("t", 3, 40, "");
    r.value_schema = None;
    r.value = Value::Bytes(bytes::Bytes::from_static(b"\x00\x01bin"));
    let mut r2 = r.clone();
    r2.offset = 41;
    r2.value = Value::Bytes(bytes::Bytes::from_static(b"two"));
    task.put(&[r, r2]).await?;
    settle(&mut task).await?;
    let k = keys(&client).await?;
    ensure!(k == ["raw/t/partition=3/t_3_0040.bin"], "keys {k:?}");
    let body = client.get_object(&k[0]).await?;
    ensure!(body.as_bytes() == b"\x00\x01bin\ntwo\n", "contents {body:?}");
    Ok(())
}

fn struct_schema() -> Arc<Schema> {
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.fields = vec![
        Field { name: "region".into(), index: 0, schema: Arc::new(Schema::primitive(SchemaType::String, false)) },
        Field { name: "n".into(), index: 1, schema: Arc::new(Schema::primitive(SchemaType::Int32, false)) },
    ];
    Arc::new(s)
}

#[tokio::test]
async fn field_partitioner_paths_and_struct_json() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-field");
    let client = Store::new(&server, &bucket).await?;
    let extra = [
        ("partitioner.class", "io.confluent.connect.storage.partitioner.FieldPartitioner"),
        ("partition.field.name", "region,n"),
        ("flush.size", "3"),
    ];
    let mut task = start(&config(&server, &bucket, &extra)).await?;
    let batch: Vec<SinkRecord> = (0..3)
        .map(|o| {
            let mut r = rec("t", 0, o, "");
            r.value_schema = Some(struct_schema());
            r.value = Value::Struct(vec![Value::String(if o == 1 { "us" } else { "eu" }.into()), Value::Int32(7)]);
            r
        })
        .collect();
    task.put(&batch).await?;
    settle(&mut task).await?;
    let k = keys(&client).await?;
    ensure!(
        k == ["topics/t/region=eu/n=7/t+0+0000000000.json", "topics/t/region=us/n=7/t+0+0000000001.json"],
        "keys {k:?}"
    );
    let body = client.get_object(&k[0]).await?;
    ensure!(body == "{\"region\":\"eu\",\"n\":7}\n{\"region\":\"eu\",\"n\":7}\n", "contents {body:?}");
    Ok(())
}

#[tokio::test]
async fn hourly_daily_and_time_based_partitioners_with_record_time_rotation() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    // Record timestamps: 1_700_000_000_000 + offset s = 2023-11-14T22:13:20Z + offset s.
    for (class, extra, expected) in [
        (
            "io.confluent.connect.storage.partitioner.HourlyPartitioner",
            vec![],
            vec![
                "topics/t/year=2023/month=11/day=14/hour=22/t+0+0000000000.json",
                "topics/t/year=2023/month=11/day=14/hour=23/t+0+0000002800.json",
            ],
        ),
        (
            "io.confluent.connect.storage.partitioner.DailyPartitioner",
            vec![],
            vec![
                "topics/t/year=2023/month=11/day=14/t+0+0000000000.json",
                "topics/t/year=2023/month=11/day=14/t+0+0000001800.json",
                "topics/t/year=2023/month=11/day=14/t+0+0000003600.json",
            ],
        ),
        (
            "io.confluent.connect.storage.partitioner.TimeBasedPartitioner",
            vec![
                ("path.format", "'dt'=YYYY-MM-dd/'h'=HH"),
                ("partition.duration.ms", "3600000"),
                ("timezone", "+02:00"),
            ],
            vec!["topics/t/dt=2023-11-15/h=00/t+0+0000000000.json", "topics/t/dt=2023-11-15/h=01/t+0+0000002800.json"],
        ),
    ] {
        let bucket = unique("s3-time");
        let client = Store::new(&server, &bucket).await?;
        let mut c = config(
            &server,
            &bucket,
            &[("partitioner.class", class), ("timestamp.extractor", "Record"), ("flush.size", "100000")],
        );
        if class.ends_with("DailyPartitioner") {
            c.insert("rotate.interval.ms".into(), "1800000".into());
        } else {
            c.insert("rotate.interval.ms".into(), "7200000".into());
        }
        for (k, v) in &extra {
            c.insert(k.to_string(), v.to_string());
        }
        let mut task = start(&c).await?;
        // 4000 records one second apart: 2023-11-14T22:13:20Z .. 23:20:00Z.
        task.put(&recs("t", 0, 0..4000)).await?;
        // One more record far later closes what is open (record-time rotation fires on arrival).
        let mut late = rec("t", 0, 4000, "late");
        late.timestamp = Some(1_700_000_000_000 + 86_400_000 * 3);
        task.put(&[late]).await?;
        settle(&mut task).await?;
        let k: Vec<String> = keys(&client).await?;
        ensure!(k == expected, "{class}: keys {k:?}");
        let safe = task.pre_commit(&[(tp("t", 0), 4001)].into_iter().collect()).await?;
        ensure!(safe[&tp("t", 0)] == 4000, "{class}: pre_commit {safe:?}");
    }
    Ok(())
}

#[tokio::test]
async fn scheduled_rotation_writes_idle_partitions() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-sched");
    let client = Store::new(&server, &bucket).await?;
    let mut task = start(&config(&server, &bucket, &[("rotate.schedule.interval.ms", "500")])).await?;
    task.put(&recs("t", 0, 0..2)).await?;
    let offsets: BTreeMap<_, _> = [(tp("t", 0), 2)].into_iter().collect();
    ensure!(task.pre_commit(&offsets).await?[&tp("t", 0)] == 0, "nothing is durable yet");
    tokio::time::sleep(Duration::from_millis(700)).await;
    ensure!(task.pre_commit(&offsets).await?[&tp("t", 0)] == 2, "the scheduled rotation made it durable");
    ensure!(keys(&client).await? == ["topics/t/partition=0/t+0+0000000000.json"], "one object");
    Ok(())
}

fn big(topic: &str, offset: i64, size: usize) -> SinkRecord {
    let fill = char::from(b'a' + (offset % 26) as u8).to_string().repeat(size);
    rec(topic, 0, offset, &fill)
}

#[tokio::test]
async fn multipart_uploads_and_a_crash_in_the_middle_of_one() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-multi");
    let client = Store::new(&server, &bucket).await?;
    let c = config(&server, &bucket, &[("s3.part.size", "5242880"), ("flush.size", "60")]);
    // Task A takes 30 records of 200 KB: one 5 MiB part is uploaded, the upload is in flight; then it "crashes"
    // (dropped without stop: nothing aborts the upload, nothing was committed).
    let mut a = start(&c).await?;
    a.put(&(0..30).map(|o| big("t", o, 200_000)).collect::<Vec<_>>()).await?;
    ensure!(a.pre_commit(&[(tp("t", 0), 30)].into_iter().collect()).await?[&tp("t", 0)] == 0, "nothing durable");
    drop(a);
    let stale = client.list_multipart("topics/").await?;
    ensure!(stale.len() == 1, "one unfinished upload after the crash: {stale:?}");
    // Task B resumes from the committed offset 0: the stale upload is aborted and the object written once.
    let mut b = start(&c).await?;
    b.put(&(0..61).map(|o| big("t", o, 200_000)).collect::<Vec<_>>()).await?;
    ensure!(b.pre_commit(&[(tp("t", 0), 61)].into_iter().collect()).await?[&tp("t", 0)] == 60, "60 durable");
    let stale = client.list_multipart("topics/").await?;
    ensure!(stale.is_empty(), "the crashed task's upload was aborted: {stale:?}");
    let k = keys(&client).await?;
    ensure!(k == ["topics/t/partition=0/t+0+0000000000.json"], "keys {k:?}");
    let body = client.get_object(&k[0]).await?;
    let expected: String = (0..60).map(|o| format!("\"{}\"\n", big("t", o, 200_000).value_as_str())).collect();
    ensure!(
        body.len() == expected.len() && body == expected,
        "contents: {} bytes, expected {}",
        body.len(),
        expected.len()
    );
    // A new file past a part size is in flight again; stop aborts it.
    b.put(&(61..100).map(|o| big("t", o, 200_000)).collect::<Vec<_>>()).await?;
    ensure!(client.list_multipart("topics/").await?.len() == 1, "an upload in flight");
    b.stop().await?;
    ensure!(client.list_multipart("topics/").await?.is_empty(), "stop aborts the open upload");
    Ok(())
}

trait ValueStr {
    fn value_as_str(&self) -> String;
}
impl ValueStr for SinkRecord {
    fn value_as_str(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            _ => String::new(),
        }
    }
}

#[tokio::test]
async fn retried_and_rewound_batches_are_written_once() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-rewind");
    let client = Store::new(&server, &bucket).await?;
    let mut task = start(&config(&server, &bucket, &[("flush.size", "10")])).await?;
    task.put(&recs("t", 0, 0..6)).await?;
    // The runtime puts a batch again after a retriable failure: the records already taken are skipped.
    task.put(&recs("t", 0, 3..8)).await?;
    // A rewind (rebalance, seek) to the committed offset 0: the partition's buffer restarts there.
    task.put(&recs("t", 0, 0..12)).await?;
    settle(&mut task).await?;
    let k = keys(&client).await?;
    ensure!(k == ["topics/t/partition=0/t+0+0000000000.json"], "keys {k:?}");
    let body = client.get_object(&k[0]).await?;
    ensure!(body == json_lines((0..10).map(|o| format!("t-0-{o}"))), "contents {body:?}");
    // A batch put again that spans a rotation already done: the written part is skipped, the next file starts at
    // the same offset as before.
    task.put(&recs("t", 0, 5..25)).await?;
    settle(&mut task).await?;
    let k = keys(&client).await?;
    ensure!(
        k == ["topics/t/partition=0/t+0+0000000000.json", "topics/t/partition=0/t+0+0000000010.json"],
        "keys {k:?}"
    );
    let body = client.get_object(&k[1]).await?;
    ensure!(body == json_lines((10..20).map(|o| format!("t-0-{o}"))), "contents {body:?}");
    // Put again while a rotation's upload still runs in the background: once more the retried part (within the
    // upload) is skipped, and a rewind to its start waits for it and skips what it completed.
    task.put(&recs("t", 0, 25..32)).await?;
    task.put(&recs("t", 0, 22..33)).await?;
    task.put(&recs("t", 0, 20..34)).await?;
    settle(&mut task).await?;
    task.put(&recs("t", 0, 34..40)).await?;
    settle(&mut task).await?;
    let k = keys(&client).await?;
    ensure!(k.len() == 4, "keys {k:?}");
    for (i, first) in [0, 10, 20, 30].into_iter().enumerate() {
        ensure!(k[i] == format!("topics/t/partition=0/t+0+{first:010}.json"), "keys {k:?}");
        let body = client.get_object(&k[i]).await?;
        ensure!(body == json_lines((first..first + 10).map(|o| format!("t-0-{o}"))), "{}: {body:?}", k[i]);
    }
    Ok(())
}

#[tokio::test]
async fn many_partitions_under_a_small_buffer_budget() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-budget");
    let client = Store::new(&server, &bucket).await?;
    let budget = 64 * 1024;
    let mut task =
        start(&config(&server, &bucket, &[("flush.size", "100000"), ("sluice.s3.buffer.budget.bytes", "65536")]))
            .await?;
    let mut offsets = BTreeMap::new();
    let value = "x".repeat(1000);
    for round in 0..5i64 {
        let batch: Vec<SinkRecord> = (0..200)
            .flat_map(|p| (0..4).map(move |i| (p, round * 4 + i)))
            .map(|(p, o)| rec("t", p, o, &value))
            .collect();
        task.put(&batch).await?;
        for p in 0..200 {
            offsets.insert(tp("t", p), round * 4 + 4);
        }
    }
    let safe = task.pre_commit(&offsets).await?;
    // Everything below each partition's safe offset is in objects, exactly once; the rest is within the budget.
    let k = keys(&client).await?;
    let mut lines_per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for key in &k {
        let p: i32 = key.split("partition=").nth(1).and_then(|s| s.split('/').next()).context("key")?.parse()?;
        let n = client.get_object(key).await?.lines().count() as i64;
        *lines_per_partition.entry(p).or_default() += n;
    }
    let mut in_memory = 0i64;
    for p in 0..200 {
        let durable = lines_per_partition.get(&p).copied().unwrap_or(0);
        ensure!(
            durable == safe[&tp("t", p)],
            "partition {p}: {durable} records in objects, pre_commit {}",
            safe[&tp("t", p)]
        );
        in_memory += 20 - durable;
    }
    ensure!(in_memory * 1003 <= budget as i64, "{in_memory} records still buffered exceed the budget");
    ensure!(!k.is_empty(), "the budget forced early uploads");
    println!("budget 64 KiB, 200 partitions x 20 KB: {} objects written early, {in_memory} records buffered", k.len());
    Ok(())
}

#[tokio::test]
async fn a_bucket_created_while_the_task_retries() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-late");
    let c = config_bucket(&server, &bucket, &[("sluice.s3.start.timeout.ms", "30000")]);
    let started = tokio::spawn(async move { start(&c).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(!started.is_finished(), "the task waits for the bucket");
    server.bucket(&bucket).await?;
    let t0 = Instant::now();
    started.await??;
    println!("task started {:?} after the bucket was created", t0.elapsed());
    Ok(())
}

#[tokio::test]
async fn missing_bucket_wrong_credentials_unreachable_endpoint_fail_with_what_to_do() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-missing");
    let err = start(&config_bucket(&server, &bucket, &[("sluice.s3.start.timeout.ms", "500")]))
        .await
        .err()
        .context("missing bucket must fail")?;
    let msg = format!("{err:#}");
    ensure!(
        msg.contains(&bucket) && msg.contains(&server.endpoint) && msg.contains("create it"),
        "missing bucket: {msg}"
    );

    let bucket = BUCKET.to_string();
    server.bucket(&bucket).await?;
    let mut c = config_bucket(&server, &bucket, &[("sluice.s3.start.timeout.ms", "500")]);
    c.insert("aws.secret.access.key".into(), "wrong".into());
    let err = start(&c).await.err().context("wrong credentials must fail")?;
    let msg = format!("{err:#}");
    ensure!(
        msg.contains(&bucket) && (msg.contains("credentials") || msg.contains("access denied")),
        "wrong credentials: {msg}"
    );

    let c =
        config_bucket(&server, &bucket, &[("sluice.s3.start.timeout.ms", "500"), ("store.url", "http://127.0.0.1:9")]);
    let err = start(&c).await.err().context("unreachable endpoint must fail")?;
    let msg = format!("{err:#}");
    ensure!(msg.contains("http://127.0.0.1:9") && msg.contains("unreachable"), "unreachable: {msg}");
    println!("messages OK, e.g. {msg}");
    Ok(())
}

#[tokio::test]
async fn null_values_fail_by_default_and_are_skipped_with_ignore() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-null");
    let client = Store::new(&server, &bucket).await?;
    let mut null = rec("t", 0, 0, "");
    null.value = Value::Null;
    null.value_schema = None;
    let mut task = start(&config(&server, &bucket, &[("flush.size", "1")])).await?;
    // S3SinkTask.maybeSkipOnNullValue throws a ConnectException: the task fails whatever errors.tolerance says.
    match task.put(std::slice::from_ref(&null)).await {
        Err(ConnectError::Other(m)) if m.contains("Null valued records are not writeable") => {}
        other => anyhow::bail!("behavior.on.null.values=fail: {other:?}"),
    }
    let mut task =
        start(&config(&server, &bucket, &[("flush.size", "1"), ("behavior.on.null.values", "ignore")])).await?;
    task.put(&[null.clone(), rec("t", 0, 1, "v")]).await?;
    settle(&mut task).await?;
    ensure!(keys(&client).await? == ["topics/t/partition=0/t+0+0000000001.json"], "null skipped");
    // With an errant record reporter (a DLQ topic) and report.null.values.to.dlq (default true), an ignored null
    // goes to Kafka Connect's error handling as a bad record (DataException "Skipping null value record.").
    let dlq = [("behavior.on.null.values", "ignore"), ("errors.deadletterqueue.topic.name", "dlq")];
    let mut task = start(&config(&server, &bucket, &dlq)).await?;
    match task.put(std::slice::from_ref(&null)).await {
        Err(ConnectError::Data(m)) if m == "Skipping null value record." => {}
        other => anyhow::bail!("reported to the DLQ: {other:?}"),
    }
    let mut task = start(&config(&server, &bucket, &[dlq[0], dlq[1], ("report.null.values.to.dlq", "false")])).await?;
    task.put(std::slice::from_ref(&null)).await?;
    Ok(())
}

/// `behavior.on.null.values=write` (kafka-connect-storage-cloud v12.1.9 `TombstoneSupportedPartitioner`,
/// `KeyValueHeaderRecordWriterProvider`, `TopicPartitionWriter`): tombstones go to the encoded partition
/// `tombstone.encoded.partition`, where only the keys (and headers) objects are written; they count towards
/// `flush.size`; going to or from the tombstone partition does not rotate on `rotate.interval.ms`; a tombstone
/// with a null key fails ("Key cannot be null"); pre_commit stops at the first open file, tombstone or not.
#[tokio::test]
async fn tombstones_are_written_to_their_own_partition_with_keys_only() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-tomb");
    let store = Store::new(&server, &bucket).await?;
    let c = config(
        &server,
        &bucket,
        &[
            ("flush.size", "5"),
            ("behavior.on.null.values", "write"),
            ("tombstone.encoded.partition", "deleted"),
            ("store.kafka.keys", "true"),
            ("keys.format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
            ("rotate.interval.ms", "3600000"),
            ("timestamp.extractor", "Record"),
        ],
    );
    let record = |offset: i64, tombstone: bool| {
        let mut r = keyed("t", offset);
        r.headers.clear();
        if tombstone {
            r.value = Value::Null;
        }
        r
    };
    let mut task = start(&c).await?;
    // 0 v, 1 null, 2 v, 3 null, 4 null: one rotation at 5 records, no rotation between the partitions.
    let batch: Vec<SinkRecord> = (0..7).map(|o| record(o, matches!(o, 1 | 3 | 4))).collect();
    task.put(&batch).await?;
    let safe = task.pre_commit(&[(tp("t", 0), 7)].into_iter().collect()).await?;
    ensure!(safe[&tp("t", 0)] == 5, "pre_commit {safe:?}");
    let k = keys(&store).await?;
    ensure!(
        k == [
            "topics/t/deleted/t+0+0000000001.keys.bin",
            "topics/t/partition=0/t+0+0000000000.json",
            "topics/t/partition=0/t+0+0000000000.keys.bin",
        ],
        "keys {k:?}"
    );
    ensure!(store.get_object("topics/t/deleted/t+0+0000000001.keys.bin").await? == "k1\nk3\nk4\n", "tombstone keys");
    ensure!(
        store.get_object("topics/t/partition=0/t+0+0000000000.json").await? == json_lines(["v0".into(), "v2".into()]),
        "values"
    );
    ensure!(store.get_object("topics/t/partition=0/t+0+0000000000.keys.bin").await? == "k0\nk2\n", "keys");
    // A tombstone without a key cannot be written: nothing of it is.
    let mut bad = record(7, true);
    bad.key = Value::Null;
    let err = task.put(&[bad]).await.err().context("a null key must fail")?;
    ensure!(format!("{err:#}").contains("Key cannot be null"), "{err:#}");
    Ok(())
}

/// Runs a command with `input` on stdin and returns its stdout (fails on a non-zero exit).
fn pipe(program: &str, args: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("writer thread"))??;
    ensure!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

/// The Python that has the standard readers: deploy/test's venv (`SLUICE_PYTHON`), else `python3`.
fn python() -> String {
    std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The object decompressed by `gzip -dc` and by Python's `gzip` module; both must agree.
fn gunzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let by_tool = pipe("gzip", &["-dc"], bytes)?;
    let by_python = pipe(
        &python(),
        &["-c", "import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"],
        bytes,
    )?;
    ensure!(by_tool == by_python, "gzip -d and python gzip disagree");
    Ok(by_tool)
}

/// `s3.compression.type=gzip` (CompressionType.GZIP of kafka-connect-storage-cloud v12.1.9): `.json.gz` / `.bin.gz`
/// object keys (`JsonRecordWriterProvider.getExtension` = ".json" + compression extension), one gzip stream per
/// object; also across a multipart upload (the compressed stream split into parts).
#[tokio::test]
async fn gzip_json_and_bytearray_objects_read_back_with_gzip_and_python() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-gzip");
    let client = Store::new(&server, &bucket).await?;
    let mut task = start(&config(&server, &bucket, &[("flush.size", "3"), ("s3.compression.type", "gzip")])).await?;
    task.put(&recs("t", 0, 0..7)).await?;
    let safe = task.pre_commit(&[(tp("t", 0), 7)].into_iter().collect()).await?;
    ensure!(safe[&tp("t", 0)] == 6, "pre_commit {safe:?}");
    let k = keys(&client).await?;
    ensure!(
        k == ["topics/t/partition=0/t+0+0000000000.json.gz", "topics/t/partition=0/t+0+0000000003.json.gz"],
        "keys {k:?}"
    );
    for (key, range) in k.iter().zip([0..3, 3..6]) {
        let raw = client.client.get_object_bytes(&format!("{}{key}", client.prefix)).await?;
        ensure!(raw.starts_with(&[0x1f, 0x8b]), "{key} is not gzip: {:?}", &raw[..raw.len().min(8)]);
        let text = String::from_utf8(gunzip(&raw)?)?;
        ensure!(text == json_lines(range.map(|o| format!("t-0-{o}"))), "{key}: {text:?}");
    }
    task.stop().await?;

    // ByteArray, level 9.
    let extra = [
        ("format.class", "io.confluent.connect.s3.format.bytearray.ByteArrayFormat"),
        ("flush.size", "2"),
        ("s3.compression.type", "gzip"),
        ("s3.compression.level", "9"),
        ("topics.dir", "raw"),
    ];
    let mut task = start(&config(&server, &bucket, &extra)).await?;
    let mut r = rec("b", 0, 0, "");
    r.value_schema = None;
    r.value = Value::Bytes(bytes::Bytes::from_static(b"\x00\x01bin"));
    let mut r2 = r.clone();
    r2.offset = 1;
    r2.value = Value::Bytes(bytes::Bytes::from_static(b"two"));
    task.put(&[r, r2]).await?;
    settle(&mut task).await?;
    let key = "raw/b/partition=0/b+0+0000000000.bin.gz";
    ensure!(keys(&client).await?.contains(&key.to_string()), "keys {:?}", keys(&client).await?);
    let raw = client.client.get_object_bytes(&format!("{}{key}", client.prefix)).await?;
    ensure!(gunzip(&raw)? == b"\x00\x01bin\ntwo\n", "bytearray contents");

    // Multipart: ~12 MB of hard-to-compress text gives more than one 5 MiB part of gzip stream.
    let mut task = start(&config(
        &server,
        &bucket,
        &[("flush.size", "40"), ("s3.compression.type", "gzip"), ("s3.part.size", "5242880"), ("topics.dir", "big")],
    ))
    .await?;
    let alphabet: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let values: Vec<String> = (0..40)
        .map(|_| (0..300_000).map(|_| alphabet[rand::random::<u32>() as usize % alphabet.len()]).collect())
        .collect();
    let batch: Vec<SinkRecord> = values.iter().enumerate().map(|(o, v)| rec("m", 0, o as i64, v)).collect();
    task.put(&batch[..30]).await?;
    ensure!(client.list_multipart("big/").await?.len() == 1, "a multipart upload of the gzip stream is in flight");
    task.put(&batch[30..]).await?;
    settle(&mut task).await?;
    let key = "big/m/partition=0/m+0+0000000000.json.gz";
    let raw = client.client.get_object_bytes(&format!("{}{key}", client.prefix)).await?;
    let text = String::from_utf8(gunzip(&raw)?)?;
    ensure!(text == json_lines(values.iter().cloned()), "multipart gzip contents differ ({} bytes)", text.len());
    println!("gzip multipart: {} bytes of JSON in a {} byte object", text.len(), raw.len());
    Ok(())
}

/// A record with a string key and two headers (values in SimpleHeaderConverter's text form, as Sluice carries them).
fn keyed(topic: &str, offset: i64) -> SinkRecord {
    let mut r = rec(topic, 0, offset, &format!("v{offset}"));
    r.key_schema = Some(Schema::string());
    r.key = Value::String(format!("k{offset}"));
    r.headers = vec![
        ("trace".into(), Some(bytes::Bytes::from(format!("id-{offset}")))),
        ("n".into(), Some(bytes::Bytes::from(offset.to_string()))),
    ];
    r
}

fn keyed_objects(range: std::ops::Range<i64>) -> (String, String, String) {
    let values = json_lines(range.clone().map(|o| format!("v{o}")));
    let keys = json_lines(range.clone().map(|o| format!("k{o}")));
    let headers = range
        .map(|o| {
            format!(
                "{{\"headers\":[{{\"key\":\"trace\",\"value\":\"id-{o}\"}},{{\"key\":\"n\",\"value\":\"{o}\"}}]}}\n"
            )
        })
        .collect();
    (values, keys, headers)
}

/// `store.kafka.keys` / `store.kafka.headers` (kafka-connect-storage-cloud v12.1.9 `KeyValueHeaderRecordWriterProvider`,
/// `RecordViews`, `Utils.getAdjustedFilename`): next to `<file>.json`, `<file>.keys.json` holds one key per line
/// and `<file>.headers.json` one `{"headers":[{"key","value"}]}` per line, record for record; a null key or a
/// record without headers fails before anything of it is written; a crash and a replay from the committed offset
/// rewrite the same three objects with the same bytes.
#[tokio::test]
async fn keys_and_headers_side_objects_stay_aligned_across_rotation_and_replay() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-kh");
    let store = Store::new(&server, &bucket).await?;
    let c = config(
        &server,
        &bucket,
        &[
            ("flush.size", "3"),
            ("store.kafka.keys", "true"),
            ("keys.format.class", "io.confluent.connect.s3.format.json.JsonFormat"),
            ("store.kafka.headers", "true"),
            ("headers.format.class", "io.confluent.connect.s3.format.json.JsonFormat"),
        ],
    );
    // Task A takes 0..5: file 0..2 is written, 3..4 are open; then it "crashes".
    let mut a = start(&c).await?;
    a.put(&(0..5).map(|o| keyed("t", o)).collect::<Vec<_>>()).await?;
    let safe = a.pre_commit(&[(tp("t", 0), 5)].into_iter().collect()).await?;
    ensure!(safe[&tp("t", 0)] == 3, "pre_commit {safe:?}");
    // A null key fails the record before any of its objects gets a byte.
    let mut bad = keyed("t", 5);
    bad.key = Value::Null;
    let err = a.put(&[bad]).await.err().context("a null key must fail")?;
    ensure!(format!("{err:#}").contains("Key cannot be null"), "{err:#}");
    let mut bad = keyed("t", 5);
    bad.headers.clear();
    let err = a.put(&[bad]).await.err().context("no headers must fail")?;
    ensure!(format!("{err:#}").contains("Headers cannot be null"), "{err:#}");
    drop(a);
    let dir = "topics/t/partition=0/";
    let k = keys(&store).await?;
    ensure!(
        k == [
            format!("{dir}t+0+0000000000.headers.json"),
            format!("{dir}t+0+0000000000.json"),
            format!("{dir}t+0+0000000000.keys.json"),
        ],
        "keys {k:?}"
    );
    let first: Vec<String> = {
        let mut v = Vec::new();
        for key in &k {
            v.push(store.get_object(key).await?);
        }
        v
    };
    // Task B replays from the committed offset 3 (and a second time from 0, as after a lost commit).
    let mut b = start(&c).await?;
    b.put(&(3..9).map(|o| keyed("t", o)).collect::<Vec<_>>()).await?;
    settle(&mut b).await?;
    let mut again = start(&c).await?;
    again.put(&(0..3).map(|o| keyed("t", o)).collect::<Vec<_>>()).await?;
    settle(&mut again).await?;
    let k = keys(&store).await?;
    ensure!(k.len() == 9, "three files of three objects: {k:?}");
    for (start, range) in [(0, 0..3), (3, 3..6), (6, 6..9)] {
        let (values, keys_text, headers) = keyed_objects(range);
        let name = format!("{dir}t+0+{start:010}");
        ensure!(store.get_object(&format!("{name}.json")).await? == values, "{name}.json");
        ensure!(store.get_object(&format!("{name}.keys.json")).await? == keys_text, "{name}.keys.json");
        let h = store.get_object(&format!("{name}.headers.json")).await?;
        ensure!(h == headers, "{name}.headers.json: {h:?}");
    }
    for (key, before) in [
        format!("{dir}t+0+0000000000.headers.json"),
        format!("{dir}t+0+0000000000.json"),
        format!("{dir}t+0+0000000000.keys.json"),
    ]
    .iter()
    .zip(&first)
    {
        ensure!(&store.get_object(key).await? == before, "{key} rewritten with other bytes");
    }

    // Gzip applies to the JSON side objects too; a schema change of the value rotates all three.
    let mut c = c.clone();
    c.insert("s3.compression.type".into(), "gzip".into());
    c.insert("flush.size".into(), "100".into());
    c.insert("topics.dir".into(), format!("{bucket}/gz"));
    let mut g = start(&c).await?;
    let mut batch: Vec<SinkRecord> = (0..4).map(|o| keyed("g", o)).collect();
    for r in &mut batch[2..] {
        r.value_schema = Some(Arc::new(Schema::primitive(SchemaType::String, true)));
    }
    g.put(&batch).await?;
    g.pre_commit(&[(tp("g", 0), 4)].into_iter().collect()).await?;
    let k: Vec<String> = keys(&store).await?.into_iter().filter(|k| k.starts_with("gz/")).collect();
    ensure!(
        k == [
            "gz/g/partition=0/g+0+0000000000.headers.json.gz",
            "gz/g/partition=0/g+0+0000000000.json.gz",
            "gz/g/partition=0/g+0+0000000000.keys.json.gz",
        ],
        "gzip side objects, rotated at the schema change: {k:?}"
    );
    let raw = store.client.get_object_bytes(&format!("{}{}", store.prefix, k[2])).await?;
    ensure!(gunzip(&raw)? == b"\"k0\"\n\"k1\"\n", "gzip keys object");
    Ok(())
}

/// Reads an Avro object container file from stdin with fastavro (a standard reader) and prints
/// `{"schema", "codec", "records"}` as JSON, logical types normalised: decimals as strings, dates as ISO
/// text, timestamps as epoch milliseconds, bytes as hex.
const FASTAVRO_READ: &str = r#"
import sys, json, io, datetime, decimal
import fastavro
def norm(v):
    if isinstance(v, decimal.Decimal): return str(v)
    if isinstance(v, datetime.datetime): return int(v.timestamp() * 1000)
    if isinstance(v, datetime.date): return v.isoformat()
    if isinstance(v, datetime.time): return v.isoformat()
    if isinstance(v, (bytes, bytearray)): return v.hex()
    if isinstance(v, dict): return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list): return [norm(x) for x in v]
    return v
r = fastavro.reader(io.BytesIO(sys.stdin.buffer.read()))
print(json.dumps({"schema": r.writer_schema, "codec": r.codec, "records": [norm(x) for x in r]}))
"#;

fn fastavro(bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    let probe = std::process::Command::new(python()).args(["-c", "import fastavro, cramjam"]).output()?;
    ensure!(
        probe.status.success(),
        "the Python Avro reader fastavro (with cramjam for snappy) is missing: deploy/test installs it into a venv and names its python in SLUICE_PYTHON"
    );
    Ok(serde_json::from_slice(&pipe(&python(), &["-c", FASTAVRO_READ], bytes)?)?)
}

fn order_schema(extra_field: bool) -> Arc<Schema> {
    let logical = |t: SchemaType, optional: bool, name: &str, params: Option<Vec<(String, String)>>| {
        let mut s = Schema::primitive(t, optional);
        s.name = Some(name.into());
        s.version = Some(1);
        s.parameters = params;
        Arc::new(s)
    };
    let prim = |t: SchemaType, optional: bool| Arc::new(Schema::primitive(t, optional));
    let mut tags = Schema::primitive(SchemaType::Array, false);
    tags.value_schema = Some(prim(SchemaType::String, false));
    let mut attrs = Schema::primitive(SchemaType::Map, false);
    attrs.key_schema = Some(prim(SchemaType::String, false));
    attrs.value_schema = Some(prim(SchemaType::Int64, false));
    let mut nested = Schema::primitive(SchemaType::Struct, true);
    nested.fields = vec![Field { name: "a".into(), index: 0, schema: prim(SchemaType::String, false) }];
    let mut fields = vec![
        ("id", prim(SchemaType::Int32, false)),
        ("note", prim(SchemaType::String, true)),
        ("tiny", prim(SchemaType::Int8, false)),
        (
            "amount",
            logical(
                SchemaType::Bytes,
                false,
                "org.apache.kafka.connect.data.Decimal",
                Some(vec![("scale".into(), "2".into())]),
            ),
        ),
        ("day", logical(SchemaType::Int32, true, "org.apache.kafka.connect.data.Date", None)),
        ("at", logical(SchemaType::Int64, false, "org.apache.kafka.connect.data.Timestamp", None)),
        ("tags", Arc::new(tags)),
        ("attrs", Arc::new(attrs)),
        ("nested", Arc::new(nested)),
        ("ratio", prim(SchemaType::Float64, false)),
        ("raw", prim(SchemaType::Bytes, false)),
    ];
    if extra_field {
        fields.push(("flag", prim(SchemaType::Boolean, true)));
    }
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.name = Some("shop.Order".into());
    s.version = Some(2);
    s.fields = fields
        .into_iter()
        .enumerate()
        .map(|(index, (name, schema))| Field { name: name.into(), index, schema })
        .collect();
    Arc::new(s)
}

/// A record of [`order_schema`] and the JSON fastavro should read back for it.
fn order(topic: &str, offset: i64, extra_field: bool) -> (SinkRecord, serde_json::Value) {
    let cents = offset * 137 - 5000;
    let day = 19_675 + offset as i32; // 2023-11-14 + offset days
    let at = 1_700_000_000_123 + offset;
    let mut values = vec![
        Value::Int32(offset as i32),
        if offset % 2 == 0 { Value::Null } else { Value::String(format!("note {offset}")) },
        Value::Int8((offset % 100) as i8),
        Value::Bytes(bytes::Bytes::from(cents.to_be_bytes().to_vec())),
        if offset % 3 == 0 { Value::Null } else { Value::Int32(day) },
        Value::Int64(at),
        Value::Array(vec![Value::String("x".into()), Value::String(format!("t{offset}"))]),
        Value::Map(vec![(Value::String("n".into()), Value::Int64(offset))]),
        if offset % 5 == 0 { Value::Null } else { Value::Struct(vec![Value::String(format!("a{offset}"))]) },
        Value::Float64(offset as f64 / 4.0),
        Value::Bytes(bytes::Bytes::from(vec![0u8, 0xff, offset as u8])),
    ];
    let date = |d: i32| {
        let (y, m, dd) = sluice_connect_api::date_format::civil_from_days(i64::from(d));
        format!("{y:04}-{m:02}-{dd:02}")
    };
    let mut expected = serde_json::json!({
        "id": offset,
        "note": if offset % 2 == 0 { serde_json::Value::Null } else { format!("note {offset}").into() },
        "tiny": offset % 100,
        "amount": format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100),
        "day": if offset % 3 == 0 { serde_json::Value::Null } else { date(day).into() },
        "at": at,
        "tags": ["x", format!("t{offset}")],
        "attrs": {"n": offset},
        "nested": if offset % 5 == 0 { serde_json::Value::Null } else { serde_json::json!({"a": format!("a{offset}")}) },
        "ratio": offset as f64 / 4.0,
        "raw": format!("00ff{:02x}", offset as u8),
    });
    if extra_field {
        values.push(Value::Boolean(true));
        expected["flag"] = true.into();
    }
    let mut r = rec(topic, 0, offset, "");
    r.value_schema = Some(order_schema(extra_field));
    r.value = Value::Struct(values);
    r.key_schema = Some(Schema::string());
    r.key = Value::String(format!("k{offset}"));
    r.headers = vec![("h".into(), Some(bytes::Bytes::from(format!("{offset}"))))];
    (r, expected)
}

/// `format.class=...avro.AvroFormat` (kafka-connect-storage-cloud v12.1.9 `AvroRecordWriterProvider`: `.avro`,
/// schema from `AvroData.fromConnectSchema` of the first record, `avro.codec`): objects read back by fastavro with
/// every record equal, for the codecs null, deflate and snappy, several blocks per object; the key and headers
/// objects in Avro (the default `keys.format.class` / `headers.format.class`); a schema change starts a new
/// object; a replay writes the same bytes.
#[tokio::test]
async fn avro_objects_read_back_with_fastavro() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-avro");
    let store = Store::new(&server, &bucket).await?;
    let records: Vec<(SinkRecord, serde_json::Value)> = (0..1000).map(|o| order("o", o, false)).collect();
    for codec in ["null", "deflate", "snappy"] {
        let c = config(
            &server,
            &bucket,
            &[
                ("format.class", "io.confluent.connect.s3.format.avro.AvroFormat"),
                ("avro.codec", codec),
                ("flush.size", "500"),
                ("store.kafka.keys", "true"),
                ("store.kafka.headers", "true"),
                ("s3.compression.type", "gzip"), // ignored by AvroFormat, as Confluent's
                ("topics.dir", codec),
            ],
        );
        let mut task = start(&c).await?;
        task.put(&records.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()).await?;
        settle(&mut task).await?;
        let dir = format!("{codec}/o/partition=0/");
        let k: Vec<String> = keys(&store).await?.into_iter().filter(|k| k.starts_with(&dir)).collect();
        let names: Vec<&str> = k.iter().map(|k| &k[dir.len()..]).collect();
        ensure!(
            names
                == [
                    "o+0+0000000000.avro",
                    "o+0+0000000000.headers.avro",
                    "o+0+0000000000.keys.avro",
                    "o+0+0000000500.avro",
                    "o+0+0000000500.headers.avro",
                    "o+0+0000000500.keys.avro"
                ],
            "{codec}: keys {names:?}"
        );
        for (start, chunk) in [(0usize, &records[..500]), (500, &records[500..])] {
            let name = format!("{dir}o+0+{start:010}");
            let raw = store.client.get_object_bytes(&format!("{}{name}.avro", store.prefix)).await?;
            let read = fastavro(&raw)?;
            ensure!(read["codec"] == codec, "{codec}: codec {}", read["codec"]);
            let schema = &read["schema"];
            ensure!(
                schema["name"] == "shop.Order" || (schema["name"] == "Order" && schema["namespace"] == "shop"),
                "{codec}: record name {}",
                schema["name"]
            );
            ensure!(schema["connect.name"] == "shop.Order" && schema["connect.version"] == 2, "{schema}");
            let got = read["records"].as_array().context("records")?;
            ensure!(got.len() == chunk.len(), "{codec}: {} records", got.len());
            for (g, (r, want)) in got.iter().zip(chunk) {
                ensure!(g == want, "{codec} offset {}: read {g}, expected {want}", r.offset);
            }
            let keys_read =
                fastavro(&store.client.get_object_bytes(&format!("{}{name}.keys.avro", store.prefix)).await?)?;
            ensure!(keys_read["schema"] == "string", "keys schema {}", keys_read["schema"]);
            let want: Vec<serde_json::Value> = chunk.iter().map(|(r, _)| format!("k{}", r.offset).into()).collect();
            ensure!(keys_read["records"] == serde_json::Value::Array(want), "{codec}: keys");
            let headers_read =
                fastavro(&store.client.get_object_bytes(&format!("{}{name}.headers.avro", store.prefix)).await?)?;
            ensure!(headers_read["schema"]["type"] == "array", "headers schema {}", headers_read["schema"]);
            let want: Vec<serde_json::Value> =
                chunk.iter().map(|(r, _)| serde_json::json!([{"key": "h", "value": r.offset.to_string()}])).collect();
            ensure!(headers_read["records"] == serde_json::Value::Array(want), "{codec}: headers");
        }
        // A replay (new task, same records) writes the same bytes.
        let first = store.client.get_object_bytes(&format!("{}{dir}o+0+0000000000.avro", store.prefix)).await?;
        let mut again = start(&c).await?;
        again.put(&records[..500].iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()).await?;
        settle(&mut again).await?;
        let second = store.client.get_object_bytes(&format!("{}{dir}o+0+0000000000.avro", store.prefix)).await?;
        ensure!(first == second, "{codec}: a replay wrote other bytes");
        println!("{codec}: 500 records in {} bytes", first.len());
    }

    // A big file (~180 KB: several 64,000-byte blocks) and a schema change (one more optional field) mid-stream.
    let c = config(
        &server,
        &bucket,
        &[
            ("format.class", "io.confluent.connect.s3.format.avro.AvroFormat"),
            ("avro.codec", "deflate"),
            ("flush.size", "100000"),
            ("topics.dir", "change"),
        ],
    );
    let mut task = start(&c).await?;
    let mut batch: Vec<(SinkRecord, serde_json::Value)> = (0..3000).map(|o| order("c", o, false)).collect();
    batch.extend((3000..3010).map(|o| order("c", o, true)));
    task.put(&batch.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()).await?;
    let safe = task.pre_commit(&[(tp("c", 0), 3010)].into_iter().collect()).await?;
    ensure!(safe[&tp("c", 0)] == 3000, "the schema change committed the first file: {safe:?}");
    let raw =
        store.client.get_object_bytes(&format!("{}change/c/partition=0/c+0+0000000000.avro", store.prefix)).await?;
    let read = fastavro(&raw)?;
    let got = read["records"].as_array().context("records")?;
    ensure!(got.len() == 3000 && got[2999] == batch[2999].1, "3000 records read back");
    println!("3000 records, deflate: {} bytes", raw.len());

    // Schemaless values cannot be written as Avro: the record fails with what to do.
    let mut task = start(&config(
        &server,
        &bucket,
        &[("format.class", "io.confluent.connect.s3.format.avro.AvroFormat"), ("topics.dir", "schemaless")],
    ))
    .await?;
    let mut r = rec("s", 0, 0, "x");
    r.value_schema = None;
    let err = task.put(&[r]).await.err().context("schemaless must fail")?;
    ensure!(format!("{err:#}").contains("schemas"), "{err:#}");
    Ok(())
}

/// Reads a Parquet file from stdin with pyarrow and prints `{"schema", "codec", "row_groups", "avro_schema",
/// "records"}` as JSON, values normalised as [`FASTAVRO_READ`] does (maps as objects).
const PYARROW_READ: &str = r#"
import sys, json, io, datetime, decimal
import pyarrow.parquet as pq
def norm(v):
    if isinstance(v, decimal.Decimal): return str(v)
    if isinstance(v, datetime.datetime): return int(v.timestamp() * 1000)
    if isinstance(v, datetime.date): return v.isoformat()
    if isinstance(v, (bytes, bytearray)): return v.hex()
    if isinstance(v, dict): return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v): return {k: norm(x) for k, x in v}
        return [norm(x) for x in v]
    return v
f = pq.ParquetFile(io.BytesIO(sys.stdin.buffer.read()))
md = f.metadata
print(json.dumps({
    "schema": str(f.schema),
    "codec": md.row_group(0).column(0).compression,
    "row_groups": md.num_row_groups,
    "avro_schema": (md.metadata or {}).get(b"parquet.avro.schema", b"").decode(),
    "records": [norm(r) for r in f.read().to_pylist()],
}))
"#;

fn pyarrow(bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    let probe = std::process::Command::new(python()).args(["-c", "import pyarrow.parquet"]).output()?;
    ensure!(
        probe.status.success(),
        "the Python Parquet reader pyarrow is missing: deploy/test installs it into a venv and names its python in SLUICE_PYTHON"
    );
    Ok(serde_json::from_slice(&pipe(&python(), &["-c", PYARROW_READ], bytes)?)?)
}

/// `format.class=...parquet.ParquetFormat` (kafka-connect-storage-cloud v12.1.9 `ParquetRecordWriterProvider`:
/// `<codec>.parquet`, parquet-avro over AvroData's schema, keys/headers enveloped as `RecordKey` /
/// `RecordHeaders`): objects read back by pyarrow with every record equal for the codecs none, snappy and gzip;
/// a replay writes the same bytes; a 16 MB file has several row groups and goes up in multipart parts.
#[tokio::test]
async fn parquet_objects_read_back_with_pyarrow() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = unique("s3-parquet");
    let store = Store::new(&server, &bucket).await?;
    let records: Vec<(SinkRecord, serde_json::Value)> = (0..1000).map(|o| order("p", o, false)).collect();
    for (codec, ext, pyarrow_codec) in
        [("none", ".parquet", "UNCOMPRESSED"), ("snappy", ".snappy.parquet", "SNAPPY"), ("gzip", ".gz.parquet", "GZIP")]
    {
        let parquet = "io.confluent.connect.s3.format.parquet.ParquetFormat";
        let c = config(
            &server,
            &bucket,
            &[
                ("format.class", parquet),
                ("parquet.codec", codec),
                ("flush.size", "500"),
                ("store.kafka.keys", "true"),
                ("keys.format.class", parquet),
                ("store.kafka.headers", "true"),
                ("headers.format.class", parquet),
                ("topics.dir", codec),
            ],
        );
        let mut task = start(&c).await?;
        task.put(&records.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()).await?;
        settle(&mut task).await?;
        let dir = format!("{codec}/p/partition=0/");
        let k: Vec<String> = keys(&store).await?.into_iter().filter(|k| k.starts_with(&dir)).collect();
        let names: Vec<String> = k.iter().map(|k| k[dir.len()..].to_string()).collect();
        let mut expected: Vec<String> =
            [0, 500].iter().flat_map(|s| ["", ".headers", ".keys"].map(|v| format!("p+0+{s:010}{v}{ext}"))).collect();
        expected.sort();
        ensure!(names == expected, "{codec}: keys {names:?}, expected {expected:?}");
        for (start, chunk) in [(0usize, &records[..500]), (500, &records[500..])] {
            let name = format!("{}{dir}p+0+{start:010}", store.prefix);
            let read = pyarrow(&store.client.get_object_bytes(&format!("{name}{ext}")).await?)?;
            ensure!(read["codec"] == pyarrow_codec, "{codec}: codec {}", read["codec"]);
            let schema = read["schema"].as_str().unwrap_or_default();
            ensure!(schema.contains("shop.Order"), "{codec}: message name in {schema}");
            ensure!(
                read["avro_schema"].as_str().unwrap_or_default().contains("\"connect.name\":\"shop.Order\""),
                "{codec}: parquet.avro.schema"
            );
            let got = read["records"].as_array().context("records")?;
            ensure!(got.len() == chunk.len(), "{codec}: {} records", got.len());
            for (g, (r, want)) in got.iter().zip(chunk) {
                ensure!(g == want, "{codec} offset {}: read {g}, expected {want}", r.offset);
            }
            let keys_read = pyarrow(&store.client.get_object_bytes(&format!("{name}.keys{ext}")).await?)?;
            let want: Vec<serde_json::Value> =
                chunk.iter().map(|(r, _)| serde_json::json!({"key": format!("k{}", r.offset)})).collect();
            ensure!(keys_read["records"] == serde_json::Value::Array(want), "{codec}: keys {}", keys_read["records"]);
            let headers_read = pyarrow(&store.client.get_object_bytes(&format!("{name}.headers{ext}")).await?)?;
            let want: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(r, _)| serde_json::json!({"headers": [{"key": "h", "value": r.offset.to_string()}]}))
                .collect();
            ensure!(headers_read["records"] == serde_json::Value::Array(want), "{codec}: headers");
        }
        let first = store.client.get_object_bytes(&format!("{}{dir}p+0+0000000000{ext}", store.prefix)).await?;
        let mut again = start(&c).await?;
        again.put(&records[..500].iter().map(|(r, _)| r.clone()).collect::<Vec<_>>()).await?;
        settle(&mut again).await?;
        let second = store.client.get_object_bytes(&format!("{}{dir}p+0+0000000000{ext}", store.prefix)).await?;
        ensure!(first == second, "{codec}: a replay wrote other bytes");
        println!("{codec}: 500 records in {} bytes", first.len());
    }

    // 16 MB of text: two row groups of 8 MiB, uploaded as parts while the file grows.
    let c = config(
        &server,
        &bucket,
        &[
            ("format.class", "io.confluent.connect.s3.format.parquet.ParquetFormat"),
            ("parquet.codec", "none"),
            ("flush.size", "4000"),
            ("s3.part.size", "5242880"),
            ("topics.dir", "bigparquet"),
        ],
    );
    let mut task = start(&c).await?;
    let mut s = Schema::primitive(SchemaType::Struct, false);
    s.name = Some("Blob".into());
    s.fields = vec![
        Field { name: "id".into(), index: 0, schema: Arc::new(Schema::primitive(SchemaType::Int64, false)) },
        Field { name: "payload".into(), index: 1, schema: Schema::string() },
    ];
    let s = Arc::new(s);
    let alphabet: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    let batch: Vec<SinkRecord> = (0..4000)
        .map(|o| {
            let mut r = rec("b", 0, o, "");
            r.value_schema = Some(s.clone());
            let payload: String =
                (0..4000).map(|_| alphabet[rand::random::<u32>() as usize % alphabet.len()]).collect();
            r.value = Value::Struct(vec![Value::Int64(o), Value::String(payload)]);
            r
        })
        .collect();
    task.put(&batch[..3000]).await?;
    ensure!(store.list_multipart("bigparquet/").await?.len() == 1, "the first row group went up as a part");
    task.put(&batch[3000..]).await?;
    settle(&mut task).await?;
    let raw = store
        .client
        .get_object_bytes(&format!("{}bigparquet/b/partition=0/b+0+0000000000.parquet", store.prefix))
        .await?;
    let read = pyarrow(&raw)?;
    let got = read["records"].as_array().context("records")?;
    ensure!(
        got.len() == 4000 && read["row_groups"].as_i64() >= Some(2),
        "{} records in {} row groups",
        got.len(),
        read["row_groups"]
    );
    for (g, r) in got.iter().zip(&batch) {
        let Value::Struct(v) = &r.value else { anyhow::bail!("struct") };
        let Value::String(p) = &v[1] else { anyhow::bail!("payload") };
        ensure!(g["id"] == r.offset && g["payload"] == p.as_str(), "record {} differs", r.offset);
    }
    println!("parquet: 4000 records, {} row groups, {} bytes", read["row_groups"], raw.len());

    // Non-struct values cannot be written as Parquet (parquet-avro needs a record).
    let mut task = start(&config(
        &server,
        &bucket,
        &[("format.class", "io.confluent.connect.s3.format.parquet.ParquetFormat"), ("topics.dir", "flat")],
    ))
    .await?;
    let err = task.put(&[rec("f", 0, 0, "x")]).await.err().context("a string value must fail")?;
    ensure!(format!("{err:#}").contains("Struct"), "{err:#}");
    Ok(())
}
