//! The offsets API end to end (`GET/PATCH/DELETE /connectors/{name}/offsets`), for a source (offsets in the store)
//! and a sink (offsets in the Kafka consumer group `connect-<name>`): changes are refused unless the connector is
//! STOPPED, and a resumed connector really starts from the altered offsets. Also: the topics a connector used,
//! secrets hidden in every answer, and a connector deleted and created again under its name starts from scratch.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::read_topic;
use sluice_integration_tests::*;

const N: usize = 200;
const K: usize = 150;
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_offsets() {
    let env = TestEnv::new("rest_offsets").await;
    env.finish(run(&env).await);
}

async fn wait_topic_count(kafka: &str, topic: &str, count: usize) -> anyhow::Result<Vec<String>> {
    wait_until(WAIT, format!("{count} records in {topic}"), || async {
        let records = read_topic(kafka, topic).await?;
        Ok(if records.len() >= count { Some(records) } else { None })
    })
    .await
}

async fn wait_file_lines(path: &std::path::Path, count: usize) -> anyhow::Result<Vec<String>> {
    wait_until(WAIT, format!("{count} lines in {}", path.display()), || async {
        let lines = read_complete_lines(path).unwrap_or_default();
        Ok(if lines.len() >= count { Some(lines) } else { None })
    })
    .await
}

fn offsets_of(reply: &Reply) -> anyhow::Result<Vec<Value>> {
    reply.expect_status(200, "GET offsets")?;
    Ok(reply.json()?["offsets"].as_array().context("no offsets array")?.clone())
}

async fn stop(rest: &RestClient, name: &str) -> anyhow::Result<()> {
    let reply = rest.put(&format!("/connectors/{name}/stop"), &json!(null)).await?;
    reply.expect_status(204, "stop")?;
    rest.wait_for_status_matching(name, "STOPPED", WAIT, |s| s["connector"]["state"] == "STOPPED").await?;
    Ok(())
}

async fn resume(rest: &RestClient, name: &str) -> anyhow::Result<()> {
    let reply = rest.put(&format!("/connectors/{name}/resume"), &json!(null)).await?;
    reply.expect_status(202, "resume")?;
    Ok(())
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("offsets"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let rest = &cp.rest;

    let topic = env.unique("lines");
    kafka::create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("line", 0, N);
    append_lines(&input, &lines)?;
    let source = env.unique("source");
    let sink = env.unique("sink");
    rest.create_connector(&source, &file_source(&input, &topic)).await?;
    rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    wait_topic_count(kafka, &topic, N).await?;
    wait_file_lines(&output, N).await?;

    // Source offsets: the byte position after the last line, under the file's partition.
    let size = std::fs::metadata(&input)?.len();
    let source_offsets = wait_until(WAIT, "source offsets at the end of the file", || async {
        let offsets = offsets_of(&rest.get(&format!("/connectors/{source}/offsets")).await?)?;
        Ok((offsets.len() == 1 && offsets[0]["offset"]["position"] == size).then_some(offsets))
    })
    .await?;
    ensure!(
        source_offsets[0]["partition"] == json!({"filename": input.display().to_string()}),
        "source partition: {source_offsets:?}"
    );

    // Changes are refused while the connector runs, with Kafka Connect's message.
    let rewind = K * (lines[0].len() + 1);
    let patch =
        json!({"offsets": [{"partition": {"filename": input.display().to_string()}, "offset": {"position": rewind}}]});
    let message =
        rest.patch(&format!("/connectors/{source}/offsets"), &patch).await?.expect_error(400, "PATCH running")?;
    ensure!(message.starts_with("Connectors must be in the STOPPED state"), "PATCH running: {message}");
    let message = rest.delete(&format!("/connectors/{source}/offsets")).await?.expect_error(400, "DELETE running")?;
    ensure!(message.contains(&format!("/connectors/{source}/stop")), "DELETE running: {message}");

    // Stop, rewind the source to line K, resume: lines K.. are read and produced again.
    stop(rest, &source).await?;
    let reply = rest.patch(&format!("/connectors/{source}/offsets"), &patch).await?;
    reply.expect_status(200, "PATCH source offsets")?;
    ensure!(
        reply.json()?["message"] == "The offsets for this connector have been altered successfully",
        "PATCH answer: {}",
        reply.body
    );
    let offsets = offsets_of(&rest.get(&format!("/connectors/{source}/offsets")).await?)?;
    ensure!(offsets.len() == 1 && offsets[0]["offset"]["position"] == rewind, "after PATCH: {offsets:?}");
    resume(rest, &source).await?;
    let records = wait_topic_count(kafka, &topic, N + (N - K)).await?;
    ensure!(records[N..] == lines[K..], "re-read lines differ: {:?}", &records[N..]);
    env.note(format!("source rewound to line {K}: {} records in the topic", records.len()));

    // Sink offsets live in the consumer group: committed at the topic's end, rewound to N they replay N..end.
    let total = N + (N - K);
    wait_file_lines(&output, total).await?;
    stop(rest, &sink).await?;
    let sink_offsets = wait_until(WAIT, "sink offsets at the end of the topic", || async {
        let offsets = offsets_of(&rest.get(&format!("/connectors/{sink}/offsets")).await?)?;
        Ok((offsets.len() == 1 && offsets[0]["offset"]["kafka_offset"] == total).then_some(offsets))
    })
    .await?;
    ensure!(
        sink_offsets[0]["partition"] == json!({"kafka_topic": topic, "kafka_partition": 0}),
        "sink partition: {sink_offsets:?}"
    );
    let patch = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0}, "offset": {"kafka_offset": N}}]});
    rest.patch(&format!("/connectors/{sink}/offsets"), &patch).await?.expect_status(200, "PATCH sink offsets")?;
    let offsets = offsets_of(&rest.get(&format!("/connectors/{sink}/offsets")).await?)?;
    ensure!(offsets.len() == 1 && offsets[0]["offset"]["kafka_offset"] == N, "sink after PATCH: {offsets:?}");
    let bad = json!({"offsets": [{"partition": {"kafka_topic": topic}, "offset": {"kafka_offset": 1}}]});
    rest.patch(&format!("/connectors/{sink}/offsets"), &bad)
        .await?
        .expect_error(400, "sink partition without number")?;
    resume(rest, &sink).await?;
    let written = wait_file_lines(&output, total + (N - K)).await?;
    ensure!(written[total..] == lines[K..], "the sink did not replay from offset {N}: {:?}", &written[total..]);

    // Topics: the sink's configured topic.
    let reply = rest.get(&format!("/connectors/{sink}/topics")).await?;
    reply.expect_status(200, "GET topics")?;
    ensure!(reply.json()? == &json!({ sink.clone(): {"topics": [topic]} }), "topics: {}", reply.body);
    rest.put(&format!("/connectors/{sink}/topics/reset"), &json!(null)).await?.expect_status(202, "reset topics")?;

    // Reset: a stopped source forgets its offsets; a stopped sink's consumer group is deleted.
    stop(rest, &source).await?;
    let reply = rest.delete(&format!("/connectors/{source}/offsets")).await?;
    reply.expect_status(200, "DELETE source offsets")?;
    ensure!(
        reply.json()?["message"] == "The offsets for this connector have been reset successfully",
        "{}",
        reply.body
    );
    ensure!(offsets_of(&rest.get(&format!("/connectors/{source}/offsets")).await?)?.is_empty(), "source offsets left");
    stop(rest, &sink).await?;
    rest.delete(&format!("/connectors/{sink}/offsets")).await?.expect_status(200, "DELETE sink offsets")?;
    ensure!(offsets_of(&rest.get(&format!("/connectors/{sink}/offsets")).await?)?.is_empty(), "sink offsets left");

    // A deleted connector's offsets go with it: the same name starts from scratch.
    let again = env.unique("again");
    rest.create_connector(&again, &file_source(&input, &env.unique("other"))).await?;
    wait_until(WAIT, "offsets of the first incarnation", || async {
        let offsets = offsets_of(&rest.get(&format!("/connectors/{again}/offsets")).await?)?;
        Ok((!offsets.is_empty()).then_some(()))
    })
    .await?;
    rest.delete(&format!("/connectors/{again}")).await?.expect_status(204, "DELETE connector")?;
    let mut config = file_source(&input, &topic);
    config["connection.password"] = json!("hunter2");
    let reply = rest.post("/connectors", &json!({"name": again, "config": config, "initial_state": "STOPPED"})).await?;
    reply.expect_status(201, "create again")?;
    ensure!(
        offsets_of(&rest.get(&format!("/connectors/{again}/offsets")).await?)?.is_empty(),
        "a new connector under an old name inherited offsets"
    );
    // Secrets are hidden everywhere a config is shown; writing the placeholder back keeps the secret.
    for path in [format!("/connectors/{again}/config"), format!("/connectors/{again}")] {
        let body = rest.get(&path).await?.body;
        ensure!(!body.contains("hunter2") && body.contains("[hidden]"), "GET {path} shows the password: {body}");
    }
    let tasks = rest.get(&format!("/connectors/{again}/tasks")).await?.body;
    ensure!(!tasks.contains("hunter2"), "GET tasks shows the password: {tasks}");
    let shown = rest.get(&format!("/connectors/{again}/config")).await?.json()?.clone();
    rest.put(&format!("/connectors/{again}/config"), &shown).await?.expect_status(200, "PUT config back")?;

    ensure!(
        rest.get("/connectors/nope/offsets").await?.expect_error(404, "offsets of unknown")?
            == "Connector nope not found",
        "unknown connector"
    );
    Ok(())
}
