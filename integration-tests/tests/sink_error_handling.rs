//! Kafka Connect's error handling on a sink, against real Kafka: a FileStreamSink with the JsonConverter
//! (`schemas.enable=false`) reads a topic where some records are not JSON.
//! - `errors.tolerance=none`: the task FAILS with a trace that names the conversion (and, with
//!   `task.restart.on.failure=false`, stays FAILED).
//! - `errors.tolerance=all` + dead letter queue: the good records reach the file, the bad ones are in the DLQ topic
//!   byte for byte with Kafka Connect's `__connect.errors.*` headers, and the agent's metrics count them.
//! - automatic restart: a sink whose output directory does not exist FAILS, and once the directory is created it
//!   becomes RUNNING by itself (FAILED → RESTARTING → RUNNING), without any REST call.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;
use sluice_integration_tests::kafka::{create_topic, produce, read_records};
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Good records are JSON strings (the sink writes `good-N`), bad ones are not JSON at all.
fn mixed_records() -> (Vec<Vec<u8>>, Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in 0..30 {
        if i % 10 == 4 {
            let text = format!("not json {{{i}");
            all.push(text.clone().into_bytes());
            bad.push(text);
        } else {
            all.push(format!("\"good-{i}\"").into_bytes());
            good.push(format!("good-{i}"));
        }
    }
    (all, good, bad)
}

fn json_sink(file: &std::path::Path, topic: &str) -> serde_json::Value {
    let mut config = file_sink(file, topic);
    config["value.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
    config["value.converter.schemas.enable"] = json!("false");
    config
}

async fn cluster(env: &TestEnv, metrics_port: Option<u16>) -> anyhow::Result<(ControlPlane, Agent)> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("errors"), &env.services.etcd).await?;
    let args = metrics_port.map(|p| vec!["--metrics-listen".to_string(), format!("127.0.0.1:{p}")]).unwrap_or_default();
    let agent = Agent::start_with_args(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &args).await?;
    Ok((cp, agent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_tolerance_none_fails_the_task_with_a_readable_trace() {
    let env = TestEnv::new("sink_tolerance_none_fails_the_task_with_a_readable_trace").await;
    env.finish(tolerance_none(&env).await);
}

async fn tolerance_none(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, _agent) = cluster(env, None).await?;
    let topic = env.unique("mixed");
    create_topic(kafka, &topic, 1).await?;
    let (records, _, _) = mixed_records();
    let values: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    produce(kafka, &topic, &values).await?;

    let name = env.unique("strict-sink");
    let mut config = json_sink(&env.path("out.txt"), &topic);
    config["task.restart.on.failure"] = json!("false");
    cp.rest.create_connector(&name, &config).await?;
    let status = cp
        .rest
        .wait_for_status_matching(&name, "task 0 FAILED", TIMEOUT, |s| task_state(s, 0).as_deref() == Some("FAILED"))
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    env.note(format!("FAILED trace:\n{trace}"));
    ensure!(trace.contains("Failed to convert record value"), "the trace should name the conversion: {trace}");
    ensure!(trace.contains(&topic) && trace.contains("offset 4"), "the trace should name the record: {trace}");
    ensure!(trace.contains("JsonConverter"), "the trace should name the converter: {trace}");
    // With restarts off it stays FAILED (no RESTARTING after the first backoff would have passed).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cp.rest.status(&name).await?;
    ensure!(task_state(&status, 0).as_deref() == Some("FAILED"), "restart is off, expected FAILED: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_tolerance_all_sends_bad_records_to_the_dead_letter_queue() {
    let env = TestEnv::new("sink_tolerance_all_sends_bad_records_to_the_dead_letter_queue").await;
    env.finish(tolerance_all(&env).await);
}

async fn tolerance_all(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let metrics_port = free_port();
    let (cp, agent) = cluster(env, Some(metrics_port)).await?;
    let topic = env.unique("mixed");
    let dlq = env.unique("dlq");
    create_topic(kafka, &topic, 1).await?;
    let (records, good, bad) = mixed_records();
    let values: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    produce(kafka, &topic, &values).await?;

    let name = env.unique("tolerant-sink");
    let output = env.path("out.txt");
    let mut config = json_sink(&output, &topic);
    config["errors.tolerance"] = json!("all");
    config["errors.log.enable"] = json!("true");
    config["errors.log.include.messages"] = json!("true");
    config["errors.deadletterqueue.topic.name"] = json!(dlq);
    config["errors.deadletterqueue.topic.replication.factor"] = json!("1");
    config["errors.deadletterqueue.context.headers.enable"] = json!("true");
    cp.rest.create_connector(&name, &config).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;

    let report = wait_for_lines(&output, &good, TIMEOUT).await?;
    env.note(format!("sink file: {report}"));
    report.check_exact("sink file (good records only)")?;

    let dead = wait_until(TIMEOUT, format!("{} records in the DLQ {dlq}", bad.len()), || async {
        let dead = read_records(kafka, &dlq).await?;
        Ok((dead.len() >= bad.len()).then_some(dead))
    })
    .await?;
    ensure!(dead.len() == bad.len(), "DLQ holds {} records, expected {}: {dead:?}", dead.len(), bad.len());
    for (record, original) in dead.iter().zip(&bad) {
        ensure!(record.value == *original, "DLQ value must be the original bytes: {record:?} vs {original:?}");
        let offset = original.trim_start_matches("not json {");
        let expect = [
            ("__connect.errors.topic", topic.as_str()),
            ("__connect.errors.partition", "0"),
            ("__connect.errors.offset", offset),
            ("__connect.errors.connector.name", name.as_str()),
            ("__connect.errors.task.id", "0"),
            ("__connect.errors.stage", "VALUE_CONVERTER"),
            ("__connect.errors.class.name", "org.apache.kafka.connect.json.JsonConverter"),
            ("__connect.errors.exception.class.name", "org.apache.kafka.connect.errors.DataException"),
        ];
        for (key, value) in expect {
            ensure!(record.header(key) == Some(value), "header {key} should be {value:?}: {record:?}");
        }
        ensure!(
            record.header("__connect.errors.exception.message").is_some_and(|m| !m.is_empty()),
            "exception message header: {record:?}"
        );
        ensure!(
            record.header("__connect.errors.exception.stacktrace").is_some_and(|m| m.contains("DataException")),
            "stacktrace header: {record:?}"
        );
    }
    env.note(format!("DLQ record headers: {:?}", dead[0].headers));

    // The log reporter: one ERROR line per bad record, in Kafka Connect's words, with the record's coordinates.
    let log = agent.process.log_text();
    let logged = log.lines().filter(|l| l.contains("Error encountered in task")).count();
    ensure!(logged == bad.len(), "expected {} error log lines, found {logged}", bad.len());
    ensure!(log.contains(&format!("where consumed record is {{topic='{topic}', partition=0, offset=4")), "log: {log}");

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await?.text().await?;
    let series = |metric: &str| {
        let prefix = format!("{metric}{{connector=\"{name}\",task=\"0\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse::<u64>().ok())
    };
    for (metric, expected) in [
        ("sluice_total_record_errors", bad.len() as u64),
        ("sluice_total_records_skipped", bad.len() as u64),
        ("sluice_deadletterqueue_produce_requests", bad.len() as u64),
        ("sluice_deadletterqueue_produce_failures", 0),
        ("sluice_total_errors_logged", bad.len() as u64),
        ("sluice_sink_record_read_total", records.len() as u64),
        ("sluice_sink_record_send_total", good.len() as u64),
    ] {
        let value = series(metric).with_context(|| format!("{metric} missing from /metrics:\n{metrics}"))?;
        ensure!(value == expected, "{metric} = {value}, expected {expected}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_task_restarts_by_itself_once_the_cause_is_gone() {
    let env = TestEnv::new("failed_task_restarts_by_itself_once_the_cause_is_gone").await;
    env.finish(auto_restart(&env).await);
}

async fn auto_restart(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let (cp, agent) = cluster(env, None).await?;
    let topic = env.unique("lines");
    create_topic(kafka, &topic, 1).await?;
    produce(kafka, &topic, &[b"one", b"two", b"three"]).await?;

    let dir = env.path("not-yet");
    let output = dir.join("out.txt");
    let name = env.unique("late-dir-sink");
    let mut config = file_sink(&output, &topic);
    config["task.restart.backoff.max.ms"] = json!("2000");
    cp.rest.create_connector(&name, &config).await?;
    let status = cp
        .rest
        .wait_for_status_matching(&name, "task 0 FAILED", TIMEOUT, |s| task_state(s, 0).as_deref() == Some("FAILED"))
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default();
    env.note(format!("FAILED while the directory is missing: {trace}"));
    ensure!(trace.contains("sink task failed to start"), "trace: {trace}");

    // It keeps trying while the directory is missing: at least two restarts (RESTARTING, then FAILED again).
    wait_until(TIMEOUT, "two automatic restart attempts in the agent log", || async {
        Ok((agent.process.log_text().matches("restarting failed task").count() >= 2).then_some(()))
    })
    .await?;
    let status = cp.rest.status(&name).await?;
    ensure!(task_state(&status, 0).as_deref() != Some("RUNNING"), "cannot run without its directory: {status}");

    std::fs::create_dir_all(&dir)?;
    let created = std::time::Instant::now();
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    env.note(format!("RUNNING by itself {:?} after the directory was created", created.elapsed()));
    let report = wait_for_lines(&output, &["one".into(), "two".into(), "three".into()], TIMEOUT).await?;
    report.check_exact("sink file after the automatic restart")?;
    Ok(())
}
