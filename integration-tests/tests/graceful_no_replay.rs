//! Graceful events replay nothing (issue 11, part 4): FileStreamSource -> topic -> FileStreamSink on one agent, then
//! two, with `offset.flush.interval.ms=60000` so that a source task that did not commit what Kafka acknowledged before
//! it stopped would produce everything since its start again. A writer appends lines the whole time; the source
//! is stopped and resumed, restarted (`includeTasks=true`, then the task alone), reconfigured, moved to a second
//! agent that joins (the scheduler rebalances; connector names are chosen so that the source is the task that
//! moves), and its agent is stopped with SIGTERM. After each event the duplicates in the topic and in the sink file are counted; every
//! event must add none, and in the end every line is in the sink file exactly once.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::read_topic;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_no_replay() {
    let env = TestEnv::new("graceful_no_replay").await;
    env.finish(run(&env).await);
}

const WORKER: &[(&str, &str)] = &[("offset.flush.interval.ms", "60000")];

async fn start_agent(env: &TestEnv, cp: &ControlPlane, id: &str) -> anyhow::Result<Agent> {
    Agent::start_with_worker(env, &[cp.grpc_endpoint()], id, &env.services.kafka, WORKER, &[]).await
}

/// Waits until the source's task 0 runs (with an epoch the status shows as RUNNING).
async fn source_running(cp: &ControlPlane, name: &str) -> anyhow::Result<Value> {
    cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await
}

struct Counts {
    topic: usize,
    sink: usize,
}

/// Waits until every line appended so far is in the topic and in the sink file, then counts duplicates.
async fn settle(env: &TestEnv, written: usize, lines: &[String], topic: &str) -> anyhow::Result<Counts> {
    let expected = &lines[..written];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let in_topic = read_topic(&env.services.kafka, topic).await?;
        let topic_report = analyze(expected, &in_topic);
        let sink_report = analyze(expected, &read_complete_lines(&env.path("output.txt")).unwrap_or_default());
        if topic_report.missing.is_empty() && sink_report.missing.is_empty() {
            return Ok(Counts { topic: topic_report.duplicates, sink: sink_report.duplicates });
        }
        ensure!(
            Instant::now() < deadline,
            "lines did not arrive within 60 s: topic {topic_report}; sink file {sink_report}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let cp = ControlPlane::start(env, &env.unique("graceful"), &env.services.etcd).await?;
    let mut agents = vec![start_agent(env, &cp, &env.unique("agent-a")).await?];

    let topic = env.unique("lines");
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("line", 0, 12_000);
    append_lines(&input, &lines[..100])?;
    // With one task each on one agent, a joining agent takes the task of the connector whose name sorts first.
    let source = env.unique("a-source");
    let sink = env.unique("b-sink");
    cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    source_running(&cp, &source).await?;
    cp.rest.wait_for_status(&sink, "RUNNING", Duration::from_secs(60)).await?;
    // 5 lines every 20 ms while the events happen: records are in flight at every event.
    let writer = LineWriter::start(&input, lines[100..].to_vec(), 5, Duration::from_millis(20));
    let start = Instant::now();
    let mut before = settle(env, 100 + writer.written(), &lines, &topic).await?;
    ensure!(before.topic == 0 && before.sink == 0, "duplicates before any event");

    let events = [
        "stop+resume",
        "restart includeTasks",
        "task restart",
        "config update",
        "rebalance: a second agent joins",
        "SIGTERM of the agent",
    ];
    let mut results = Vec::new();
    let mut problems = Vec::new();
    for event in events {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        match event {
            "stop+resume" => {
                cp.rest.put(&format!("/connectors/{source}/stop"), &json!({})).await?.expect_status(204, "stop")?;
                cp.rest
                    .wait_for_status_matching(&source, "STOPPED", Duration::from_secs(30), |s| {
                        s["connector"]["state"] == "STOPPED" && s["tasks"].as_array().is_some_and(Vec::is_empty)
                    })
                    .await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let offsets = cp.rest.get(&format!("/connectors/{source}/offsets")).await?;
                let offsets = offsets.json()?.clone();
                env.note(format!("offsets while STOPPED: {offsets}"));
                if offsets["offsets"].as_array().is_none_or(|o| o.is_empty()) {
                    problems.push(format!("no source offsets while STOPPED: {offsets}"));
                }
                cp.rest.put(&format!("/connectors/{source}/resume"), &json!({})).await?.expect_status(202, "resume")?;
            }
            "restart includeTasks" => {
                cp.rest
                    .post(&format!("/connectors/{source}/restart?includeTasks=true"), &json!({}))
                    .await?
                    .expect_status(202, "restart")?;
            }
            "task restart" => {
                cp.rest
                    .post(&format!("/connectors/{source}/tasks/0/restart"), &json!({}))
                    .await?
                    .expect_status(204, "task restart")?;
            }
            "config update" => {
                let mut config = file_source(&input, &topic);
                config["batch.size"] = Value::from("500");
                cp.rest
                    .put(&format!("/connectors/{source}/config"), &config)
                    .await?
                    .expect_status(200, "config update")?;
            }
            "rebalance: a second agent joins" => {
                let before = task_worker(&source_running(&cp, &source).await?, 0);
                let joined = Instant::now();
                agents.push(start_agent(env, &cp, &env.unique("agent-b")).await?);
                let moved = cp
                    .rest
                    .wait_for_status_matching(&source, "moved to the new agent", Duration::from_secs(60), |s| {
                        all_in_state(s, "RUNNING") && task_worker(s, 0) != before
                    })
                    .await;
                match moved {
                    Ok(status) => env.note(format!(
                        "source moved from {before:?} to {:?}, running there {:?} after the agent started",
                        task_worker(&status, 0),
                        joined.elapsed()
                    )),
                    Err(e) => problems.push(format!("the source did not move to the new agent: {e}")),
                }
            }
            "SIGTERM of the agent" => {
                let status = source_running(&cp, &source).await?;
                let worker = task_worker(&status, 0).context("source task has no worker")?;
                let agent = agents.iter_mut().find(|a| a.id == worker).context("the source's worker is no agent")?;
                agent.process.terminate(Duration::from_secs(30)).await?;
                env.note(format!("SIGTERM to {worker}, which ran the source"));
            }
            _ => unreachable!(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        source_running(&cp, &source).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = settle(env, 100 + writer.written(), &lines, &topic).await?;
        let added = (after.topic - before.topic, after.sink - before.sink);
        env.note(format!("{event}: {} duplicates in the topic, {} in the sink file", added.0, added.1));
        results.push((event, added));
        before = after;
    }
    writer.finish().await?;
    env.note(format!("{} lines in {:?}; per event (topic, sink): {results:?}", lines.len(), start.elapsed()));
    let replayed: Vec<_> = results.iter().filter(|(_, (t, s))| *t > 0 || *s > 0).collect();
    ensure!(replayed.is_empty() && problems.is_empty(), "graceful events replayed records: {replayed:?} {problems:?}");
    let report = wait_for_lines(&output, &lines, Duration::from_secs(60)).await?;
    report.check_exact("sink file")?;
    Ok(())
}
