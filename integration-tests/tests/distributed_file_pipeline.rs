//! Distributed mode end to end: one control plane, one agent, a FileStreamSource and a FileStreamSink connected by
//! a Kafka topic. 1000 lines written (some before the connectors exist, most after) must reach the sink file
//! exactly once and in order, and the REST status must show who runs what.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use sluice_integration_tests::kafka::read_topic;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_file_pipeline() {
    let env = TestEnv::new("distributed_file_pipeline").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("pipeline"), &env.services.etcd).await?;
    let agent_id = env.unique("agent");
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &agent_id, kafka).await?;

    // The topic is deliberately not created beforehand: like the Kafka Connect quickstart, the source's first
    // records create it, and the sink must pick it up.
    let topic = env.unique("lines");
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("line", 0, 1000);
    append_lines(&input, &lines[..250])?;

    let source = env.unique("file-source");
    let sink = env.unique("file-sink");
    let info = cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    check_info(&info, &source, "source", "topic", &topic)?;
    let info = cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    check_info(&info, &sink, "sink", "topics", &topic)?;

    for (name, kind) in [(&source, "source"), (&sink, "sink")] {
        let status = cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("{kind} status: {status}"));
        ensure!(status["name"] == name.as_str(), "status of {name} names {}", status["name"]);
        ensure!(status["type"] == kind, "status of {name}: type {} instead of {kind}", status["type"]);
        let tasks = status["tasks"].as_array().context("status without tasks")?;
        ensure!(tasks.len() == 1, "{name}: expected 1 task (tasks.max=1), got {}", tasks.len());
        ensure!(tasks[0]["id"] == 0, "{name}: task id {}", tasks[0]["id"]);
        ensure!(
            task_worker(&status, 0).as_deref() == Some(agent_id.as_str()),
            "{name}: task 0 worker_id should be the agent `{agent_id}`, status: {status}"
        );
        let connector_worker = status["connector"]["worker_id"].as_str().unwrap_or_default();
        ensure!(!connector_worker.is_empty(), "{name}: connector worker_id is empty: {status}");
        ensure!(status["connector"].get("trace").is_none(), "{name}: trace present while RUNNING: {status}");
        let task_status = cp.rest.get(&format!("/connectors/{name}/tasks/0/status")).await?;
        task_status.expect_status(200, "GET task status")?;
        let task_status = task_status.json()?;
        ensure!(
            task_status["id"] == 0
                && task_status["state"] == "RUNNING"
                && task_status["worker_id"] == agent_id.as_str(),
            "{name}: GET /tasks/0/status = {task_status}"
        );
    }

    // The rest arrives while the pipeline runs: a few appends, then a steady writer.
    append_lines(&input, &lines[250..400])?;
    let writer = LineWriter::start(&input, lines[400..].to_vec(), 50, Duration::from_millis(20));
    writer.finish().await?;

    let report = wait_for_lines(&output, &lines, Duration::from_secs(60)).await?;
    env.note(format!("sink file: {report}"));
    report.check_exact("sink file")?;

    let in_topic = read_topic(kafka, &topic).await?;
    let topic_report = analyze(&lines, &in_topic);
    env.note(format!("topic {topic}: {topic_report}"));
    topic_report.check_exact("topic")?;

    let mut names = cp.rest.connector_names().await?;
    names.sort();
    let mut want = vec![source.clone(), sink.clone()];
    want.sort();
    ensure!(names == want, "GET /connectors = {names:?}, expected {want:?}");

    // Still exactly once after everything settled (a late duplicate would show up here).
    let report = analyze(&lines, &read_complete_lines(&output)?);
    report.check_exact("sink file after settling")?;
    Ok(())
}

fn check_info(info: &Value, name: &str, kind: &str, topic_key: &str, topic: &str) -> anyhow::Result<()> {
    ensure!(info["name"] == name, "ConnectorInfo name: {info}");
    ensure!(info["config"]["name"] == name, "ConnectorInfo config.name should be the connector name: {info}");
    ensure!(info["config"][topic_key] == topic, "ConnectorInfo config.{topic_key}: {info}");
    ensure!(info["tasks"].is_array(), "ConnectorInfo tasks: {info}");
    // Kafka Connect answers "unknown" type only when it cannot tell; for FileStream it knows.
    ensure!(info["type"] == kind, "ConnectorInfo type should be {kind}: {info}");
    Ok(())
}
