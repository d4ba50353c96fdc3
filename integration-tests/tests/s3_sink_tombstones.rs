//! `behavior.on.null.values=write` end to end: a control plane, an agent with the standard AWS variables of the
//! local S3 server (SeaweedFS), keyed records with headers and tombstones produced to Kafka, and the objects
//! Confluent's S3 sink writes for them (confluentinc/kafka-connect-storage-cloud v12.1.9: `S3SinkTask`
//! wraps the partitioner in `TombstoneSupportedPartitioner`, every tombstone goes to the encoded partition
//! `tombstone.encoded.partition` (default `tombstone`), where `KeyValueHeaderRecordWriterProvider` has no value
//! writer: only `<file>.keys.<ext>` and `<file>.headers.<ext>`; tombstones count towards `flush.size`).
//! Also `S3SinkConnectorValidator.validateTombstoneWriter`: `write` without `store.kafka.keys=true` is refused
//! at validation and creation, with the message on both keys.

use std::time::Duration;

use anyhow::{Context, ensure};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sluice_integration_tests::kafka::create_topic;
use sluice_integration_tests::s3::S3Server;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_sink_writes_tombstones_to_their_own_partition() {
    let env = TestEnv::new("s3_sink_tombstones").await;
    env.finish(run(&env).await);
}

/// Record `i`: key `k<i>`, header `n=<i>`, value `v<i>` or (every third record) a tombstone.
fn is_tombstone(i: usize) -> bool {
    i % 3 == 2
}

async fn produce_keyed(kafka: &str, topic: &str, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", kafka).set("acks", "all").create().context("producer")?;
    for i in range {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let n = i.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: "n", value: Some(n.as_bytes()) });
        let mut record = FutureRecord::<str, str>::to(topic).partition(0).key(&key).headers(headers);
        if !is_tombstone(i) {
            record = record.payload(&value);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    }
    Ok(())
}

fn lines(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().map(|s| format!("{s}\n")).collect()
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let s3 = S3Server::ensure()?;
    let bucket = "sluice-s3-sink-tests".to_string();
    let client = s3.bucket(&bucket).await?;
    let aws = s3.aws_env();
    let vars: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cp = ControlPlane::start(env, &env.unique("s3t"), &env.services.etcd).await?;
    let _agent =
        Agent::start_with_env(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &[], &[], &vars, &[]).await?;

    let topic = env.unique("tomb-topic");
    create_topic(kafka, &topic, 1).await?;
    produce_keyed(kafka, &topic, 0..12).await?;

    let json_format = "io.confluent.connect.s3.format.json.JsonFormat";
    let mut config = json!({
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "s3.bucket.name": bucket,
        "s3.region": "us-east-1",
        "flush.size": "6",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "behavior.on.null.values": "write",
        "store.kafka.headers": "true",
        "headers.format.class": json_format,
        "keys.format.class": json_format,
    });

    // S3SinkConnectorValidator.validateTombstoneWriter: without store.kafka.keys, the message on both keys.
    let message = "Writing Kafka record keys to storage is mandatory when tombstone writing is enabled.";
    let mut named = config.clone();
    named["name"] = json!("s3-tomb");
    let validated = cp.rest.put("/connector-plugins/S3SinkConnector/config/validate", &named).await?;
    let body = validated.json.clone().context("validate answers JSON")?;
    ensure!(body["error_count"] == 2, "two errors: {}", validated.body);
    for key in ["store.kafka.keys", "behavior.on.null.values"] {
        let entry = body["configs"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["value"]["name"] == key))
            .with_context(|| format!("{key} in {}", validated.body))?;
        ensure!(entry["value"]["errors"] == json!([message]), "{key}: {entry}");
    }
    let refused = cp.rest.post("/connectors", &json!({"name": "s3-tomb", "config": config})).await?;
    ensure!(refused.status == 400, "creation refused: {} {}", refused.status, refused.body);
    ensure!(
        refused.body.contains("contains the following 2 error(s)") && refused.body.contains(message),
        "Kafka Connect's message: {}",
        refused.body
    );
    env.note(format!("write without store.kafka.keys: {}", refused.body));

    config["store.kafka.keys"] = json!("true");
    cp.rest.create_connector("s3-tomb", &config).await?;
    cp.rest.wait_for_status("s3-tomb", "RUNNING", Duration::from_secs(60)).await?;

    // flush.size=6 counts tombstones: files start at offsets 0 and 6, each split between the partition
    // directory (values, keys, headers) and the tombstone directory (keys, headers).
    let prefix = format!("topics/{topic}/");
    let name = |dir: &str, start: usize, ext: &str| format!("{prefix}{dir}/{topic}+0+{start:010}{ext}");
    let mut expected = Vec::new();
    for start in [0, 6] {
        for ext in [".json", ".keys.json", ".headers.json"] {
            expected.push(name("partition=0", start, ext));
        }
        for ext in [".keys.json", ".headers.json"] {
            expected.push(name("tombstone", start + 2, ext));
        }
    }
    expected.sort();
    wait_until(Duration::from_secs(60), "the objects of 12 records", || {
        let (client, prefix, n) = (client.clone(), prefix.clone(), expected.len());
        async move { Ok((client.list_keys(&prefix).await?.len() >= n).then_some(())) }
    })
    .await?;
    let mut keys = client.list_keys(&prefix).await?;
    keys.sort();
    ensure!(keys == expected, "keys {keys:#?}");
    for start in [0usize, 6] {
        let range = start..start + 6;
        let (tombstones, records): (Vec<usize>, Vec<usize>) = range.partition(|i| is_tombstone(*i));
        let quoted = |prefix: &'static str, set: &[usize]| lines(set.iter().map(|i| format!("\"{prefix}{i}\"")));
        let headers =
            |set: &[usize]| lines(set.iter().map(|i| format!("{{\"headers\":[{{\"key\":\"n\",\"value\":\"{i}\"}}]}}")));
        let checks = [
            (name("partition=0", start, ".json"), quoted("v", &records)),
            (name("partition=0", start, ".keys.json"), quoted("k", &records)),
            (name("partition=0", start, ".headers.json"), headers(&records)),
            (name("tombstone", start + 2, ".keys.json"), quoted("k", &tombstones)),
            (name("tombstone", start + 2, ".headers.json"), headers(&tombstones)),
        ];
        for (key, want) in checks {
            let got = client.get_object(&key).await?;
            ensure!(got == want, "{key}: {got:?}, expected {want:?}");
        }
    }
    env.note(format!("12 records (4 tombstones) in {} objects as Confluent's", keys.len()));

    let unfinished = client.list_multipart(&prefix).await?;
    ensure!(unfinished.is_empty(), "unfinished multipart uploads: {unfinished:?}");
    cp.rest.delete("/connectors/s3-tomb").await?;
    for key in &keys {
        client.delete_object(key).await?;
    }
    Ok(())
}
