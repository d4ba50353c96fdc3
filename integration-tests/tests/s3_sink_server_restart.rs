//! The local S3 server killed (SIGKILL) and started again while the S3 sink task streams: the failed rotation is a
//! retriable error, the runtime's retry of the same batch succeeds once the server is back, and every record is
//! in the bucket exactly once. Its own test binary: it restarts the shared server (`deploy/local/s3 kill`, `up`).

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{Connector, SinkTaskContext, TopicPartition};
use sluice_connect_api::record::{Schema, SinkRecord, Value};
use sluice_connector_s3::S3SinkConnector;
use sluice_integration_tests::s3::S3Server;

fn recs(range: std::ops::Range<i64>) -> Vec<SinkRecord> {
    range
        .map(|o| SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: o,
            key_schema: None,
            key: Value::Null,
            value_schema: Some(Schema::string()),
            value: Value::String(format!("v{o}")),
            timestamp: Some(o),
            headers: Vec::new(),
        })
        .collect()
}

#[tokio::test]
async fn s3_server_restart_mid_stream() -> anyhow::Result<()> {
    let server = S3Server::ensure()?;
    let bucket = "sluice-s3-sink-tests";
    let client = server.bucket(bucket).await?;
    let prefix = format!("restart-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let config: ConfigMap = [
        ("connector.class", "io.confluent.connect.s3.S3SinkConnector"),
        ("topics", "t"),
        ("s3.bucket.name", bucket),
        ("s3.region", server.region.as_str()),
        ("store.url", server.endpoint.as_str()),
        ("aws.access.key.id", server.access_key.as_str()),
        ("aws.secret.access.key", server.secret_key.as_str()),
        ("flush.size", "10"),
        ("topics.dir", prefix.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut task = S3SinkConnector.create_sink_task().context("task")?;
    task.start(SinkTaskContext { connector: "s3-sink".into(), task: 0, config }).await?;
    task.put(&recs(0..15)).await?;

    S3Server::run("kill")?;
    let down = task.put(&recs(15..25)).await;
    let result = async {
        let err = down.err().context("a rotation with the server down must fail")?;
        ensure!(err.is_retriable(), "a down server is retriable: {err}");
        println!("with the server down: {err}");
        Ok(())
    }
    .await;
    S3Server::run("up")?;
    result?;
    // The runtime puts the same batch again after a retriable error.
    task.put(&recs(15..25)).await?;
    let tp = TopicPartition { topic: "t".into(), partition: 0 };
    let safe = task.pre_commit(&[(tp.clone(), 25)].into_iter().collect::<BTreeMap<_, _>>()).await?;
    ensure!(safe[&tp] == 20, "pre_commit {safe:?}");
    let mut keys = client.list_keys(&format!("{prefix}/")).await?;
    keys.sort();
    ensure!(
        keys == [
            format!("{prefix}/t/partition=0/t+0+0000000000.json"),
            format!("{prefix}/t/partition=0/t+0+0000000010.json")
        ],
        "keys {keys:?}"
    );
    let body = client.get_object(&keys[1]).await?;
    let expected: String = (10..20).map(|o| format!("\"v{o}\"\n")).collect();
    ensure!(body == expected, "contents {body:?}");
    task.stop().await?;
    Ok(())
}
