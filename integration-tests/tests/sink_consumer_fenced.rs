//! A sink task whose Kafka consumer is fenced by another member with the task's static `group.instance.id` (the
//! way a zombie agent's rejoining consumer fences the new owner's: `FencedInstanceId`, fatal for the client) while
//! the task's agent holds its lease must take the identity back with a new consumer in place: never FAILED, never
//! stuck RUNNING while moving nothing, nothing put twice. (Any other fatal consumer error still fails the task.)

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sluice_integration_tests::kafka::{create_topic, produce};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_sink_consumer_rejoins_in_place_and_delivers() {
    let env = TestEnv::new("sink_consumer_fenced").await;
    env.finish(run(&env).await);
}

/// Joins `group` as static member `instance` until it owns a partition, then leaves the process's hands (dropped:
/// a static member does not send LeaveGroup, the task's new consumer takes its place).
fn join_as(kafka: &str, group: &str, instance: &str, topic: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("session.timeout.ms", "10000")
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create the intruding consumer")?;
    consumer.subscribe(&[topic])?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let _ = consumer.poll(Duration::from_millis(200));
        if consumer.assignment().map(|a| a.count() > 0).unwrap_or(false) {
            return Ok(());
        }
    }
    anyhow::bail!("the intruding consumer got no partition in 30 s")
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.clone();
    let cp = ControlPlane::start(env, &env.unique("fenced"), &env.services.etcd).await?;
    let agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), &kafka).await?;
    let topic = env.unique("fenced");
    create_topic(&kafka, &topic, 1).await?;
    let output = env.path("output.txt");
    let sink = env.unique("sink");
    cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    cp.rest.wait_for_status(&sink, "RUNNING", Duration::from_secs(60)).await?;

    let first = numbered_lines("before", 0, 100);
    let values: Vec<&[u8]> = first.iter().map(|l| l.as_bytes()).collect();
    produce(&kafka, &topic, &values).await?;
    wait_for_lines(&output, &first, Duration::from_secs(60)).await?;

    let (group, instance) = (format!("connect-{sink}"), format!("connect-{sink}-0"));
    let (k, t) = (kafka.clone(), topic.clone());
    tokio::task::spawn_blocking(move || join_as(&k, &group, &instance, &t)).await??;
    env.note("an intruder joined with the task's group.instance.id and got the partition");

    // The task's agent holds a live lease, so the task is the rightful owner: it takes the identity back with a new
    // consumer, in place, and never goes FAILED (no restart backoff, nothing put twice).
    let saw_failed = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let fenced_at = Instant::now();
    wait_until(Duration::from_secs(30), "the task to rejoin with a new consumer", || {
        let status = cp.rest.status(&sink);
        let log = agent.process.log_text();
        let saw = saw_failed.clone();
        async move {
            let status = status.await?;
            if task_state(&status, 0).as_deref() != Some("RUNNING") {
                *saw.lock().unwrap_or_else(|e| e.into_inner()) = Some(status.to_string());
            }
            Ok(log.contains("rejoining with a new consumer").then_some(()))
        }
    })
    .await?;
    env.note(format!("rejoined {:?} after the intruder got the partition", fenced_at.elapsed()));
    let saw = saw_failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    ensure!(saw.is_none(), "the task left RUNNING: {saw:?}");
    let log = agent.process.log_text();
    ensure!(!log.lines().any(|l| l.contains("task failed")), "the task failed:\n{log}");

    let second = numbered_lines("after", 0, 100);
    let values: Vec<&[u8]> = second.iter().map(|l| l.as_bytes()).collect();
    produce(&kafka, &topic, &values).await?;
    let mut all = first.clone();
    all.extend(second);
    let report = wait_for_lines(&output, &all, Duration::from_secs(60)).await?;
    env.note(format!("sink file after the rejoin: {report}"));
    report.check_complete_at_least_once("sink file")?;
    ensure!(report.duplicates == 0, "the rejoin put records again: {report}");
    let status = cp.rest.status(&sink).await?;
    ensure!(all_in_state(&status, "RUNNING"), "{status}");
    Ok(())
}
