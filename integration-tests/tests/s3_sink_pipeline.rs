//! The seed's S3 sink config, verbatim but for the topic and bucket names (the Kafka and S3 servers are shared),
//! in a real cluster: one control plane, an agent started with the standard AWS variables of the local S3 server
//! (`deploy/local/s3 env`; no `store.url` in the config), records produced to Kafka, objects in the bucket with
//! Confluent's keys and bytes. Then the agent is killed with SIGKILL while records stream, a new agent takes over,
//! and every record is in the bucket exactly once (objects rewritten under the same keys, no duplicates).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;
use sluice_integration_tests::kafka::{create_topic, produce};
use sluice_integration_tests::s3::S3Server;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_sink_seed_config_and_kill9_exactly_once() {
    let env = TestEnv::new("s3_sink_pipeline").await;
    env.finish(run(&env).await);
}

async fn produce_lines(kafka: &str, topic: &str, range: std::ops::Range<usize>) -> anyhow::Result<()> {
    let values: Vec<String> = range.map(|i| format!("line-{i:05}")).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    produce(kafka, topic, &refs).await
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let s3 = S3Server::ensure()?;
    // One bucket shared by the S3 tests (SeaweedFS gives each bucket its own volumes: a bucket per run would
    // exhaust a small server); this run's objects are under its own topic's directory.
    let bucket = "sluice-s3-sink-tests".to_string();
    let client = s3.bucket(&bucket).await?;
    let aws = s3.aws_env();
    let vars: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cp = ControlPlane::start(env, &env.unique("s3"), &env.services.etcd).await?;
    let agent_id = env.unique("agent-a");
    let mut agent = Agent::start_with_env(env, &[cp.grpc_endpoint()], &agent_id, kafka, &[], &[], &vars, &[]).await?;

    let topic = env.unique("file-input-topic");
    let prefix = format!("topics/{topic}/");
    create_topic(kafka, &topic, 1).await?;
    produce_lines(kafka, &topic, 0..2500).await?;

    // The seed's six lines (topic and bucket made unique).
    let config = json!({
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "s3.bucket.name": bucket,
        "s3.region": "us-east-1",
    });
    cp.rest.create_connector("s3-sink", &config).await?;
    cp.rest.wait_for_status("s3-sink", "RUNNING", Duration::from_secs(60)).await?;
    let shown = cp.rest.get("/connectors/s3-sink/config").await?;
    env.note(format!("GET /connectors/s3-sink/config: {}", shown.body));
    let tasks = cp.rest.get("/connectors/s3-sink/tasks").await?;
    env.note(format!("GET /connectors/s3-sink/tasks: {}", tasks.body));
    ensure!(
        tasks.body.contains("\"format.class\":\"io.confluent.connect.s3.format.json.JsonFormat\"")
            && tasks.body.contains("\"flush.size\":\"1000\""),
        "the task config shows the defaults in force: {}",
        tasks.body
    );

    // flush.size defaults to 1000: objects at offsets 0 and 1000; 500 records wait for the next rotation.
    let first = [
        format!("topics/{topic}/partition=0/{topic}+0+0000000000.json"),
        format!("topics/{topic}/partition=0/{topic}+0+0000001000.json"),
    ];
    wait_until(Duration::from_secs(60), "the first two objects", || {
        let (client, prefix) = (client.clone(), prefix.clone());
        async move {
            let keys = client.list_keys(&prefix).await?;
            Ok((keys.len() >= 2).then_some(keys))
        }
    })
    .await?;
    let mut keys = client.list_keys(&prefix).await?;
    keys.sort();
    ensure!(keys == first, "keys {keys:?}");
    let body = client.get_object(&first[1]).await?;
    let expected: String = (1000..2000).map(|i| format!("\"line-{i:05}\"\n")).collect();
    ensure!(body == expected, "object {} differs from Confluent's JSON lines", first[1]);

    // SIGKILL while records stream in, then a new agent.
    let producer = {
        let (kafka, topic) = (kafka.to_string(), topic.clone());
        tokio::spawn(async move { produce_lines(&kafka, &topic, 2500..8000).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.process.kill9();
    env.note("agent killed with SIGKILL while records stream");
    producer.await??;
    let _agent_b =
        Agent::start_with_env(env, &[cp.grpc_endpoint()], &env.unique("agent-b"), kafka, &[], &[], &vars, &[]).await?;

    wait_until(Duration::from_secs(120), "8 objects (offsets 0..8000)", || {
        let (client, prefix) = (client.clone(), prefix.clone());
        async move { Ok((client.list_keys(&prefix).await?.len() >= 8).then_some(())) }
    })
    .await?;
    let mut keys = client.list_keys(&prefix).await?;
    keys.sort();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for key in &keys {
        for line in client.get_object(key).await?.lines() {
            *seen.entry(line.to_string()).or_default() += 1;
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    ensure!(dups.is_empty(), "records written twice: {dups:?}");
    ensure!(seen.len() == 8000, "{} distinct records in {} objects, expected 8000", seen.len(), keys.len());
    ensure!(keys.len() == 8, "keys {keys:?}");
    let unfinished = client.list_multipart(&prefix).await.context("listing multipart uploads")?;
    ensure!(unfinished.is_empty(), "unfinished multipart uploads: {unfinished:?}");
    env.note(format!("after SIGKILL and takeover: {} objects, 8000 records exactly once", keys.len()));
    cp.rest.delete("/connectors/s3-sink").await?;
    for key in &keys {
        client.delete_object(key).await?;
    }
    Ok(())
}
