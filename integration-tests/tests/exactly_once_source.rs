//! Exactly-once source delivery (KIP-618): two agents with `exactly.once.source.support=enabled` run a
//! FileStreamSource (`exactly.once.support=required`) under steady load while the agent running it is killed with
//! SIGKILL four times (and started again under the same id). Records and source offsets are committed in one Kafka
//! transaction, and a new task incarnation fences the old producer and resumes from the offsets topic, so a
//! `read_committed` consumer must see every line exactly once and in order. A `read_uncommitted` consumer may also
//! see the records of aborted transactions; how many is reported.
//!
//! Between the kills, the agent running the source is frozen (SIGSTOP) until the task runs on the other agent, then
//! thawed (SIGCONT): a zombie with an open transaction and records in flight. The new incarnation's
//! `init_transactions` fenced its producer, so nothing it still sends or commits becomes visible.
//!
//! Also: misconfigurations fail the task at start with a clear trace (`required` on a worker without exactly-once
//! support; `transaction.boundary=connector`, which FileStreamSource does not support).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rand::Rng;
use serde_json::{Value, json};
use sluice_integration_tests::kafka::{create_topic, read_transactional};
use sluice_integration_tests::*;

const TOTAL: usize = 9000;
const BATCH: usize = 20;
/// 20 lines every 100 ms: about 45 s of load, so every kill and the freeze land while lines are flowing.
const INTERVAL: Duration = Duration::from_millis(100);
const KILLS: usize = 4;
const EOS_WORKER: &[(&str, &str)] = &[("exactly.once.source.support", "enabled")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_source_survives_repeated_kill9() {
    let env = TestEnv::new("exactly_once_source_survives_repeated_kill9").await;
    env.finish(run(&env).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_misconfigurations_fail_the_task() {
    let env = TestEnv::new("exactly_once_misconfigurations_fail_the_task").await;
    env.finish(misconfigurations(&env).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_interval_boundary() {
    let env = TestEnv::new("exactly_once_interval_boundary").await;
    env.finish(interval_boundary(&env).await);
}

async fn start_agent(env: &TestEnv, endpoints: &[String], id: &str, kafka: &str) -> anyhow::Result<Agent> {
    Agent::start_with_worker(env, endpoints, id, kafka, EOS_WORKER, &[]).await
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("eos"), &env.services.etcd).await?;
    let endpoints = [cp.grpc_endpoint()];
    let ids = [env.unique("agent-a"), env.unique("agent-b")];
    let mut agents =
        [start_agent(env, &endpoints, &ids[0], kafka).await?, start_agent(env, &endpoints, &ids[1], kafka).await?];

    let topic = env.unique("eos-stream");
    create_topic(kafka, &topic, 1).await?;
    let offsets_topic = env.unique("eos-offsets");
    let input = env.path("input.txt");
    append_lines(&input, &[])?;
    let source = env.unique("eos-source");
    let mut config = file_source(&input, &topic);
    config["exactly.once.support"] = json!("required");
    config["offsets.storage.topic"] = json!(offsets_topic);
    cp.rest.create_connector(&source, &config).await?;
    cp.rest.wait_for_status(&source, "RUNNING", Duration::from_secs(60)).await?;

    let lines = numbered_lines("event", 0, TOTAL);
    let writer = LineWriter::start(&input, lines.clone(), BATCH, INTERVAL);
    let started = Instant::now();
    for kill in 1..=KILLS {
        if kill == 3 {
            freeze_source_agent(env, &cp, &source, &ids, &mut agents, &writer).await?;
        }
        // Random moments, about 2-5 s apart, so kills land at different points of a transaction.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(2000..5000))).await;
        let status = cp.rest.status(&source).await?;
        let running_on = task_worker(&status, 0);
        let victim = running_on.as_ref().and_then(|w| ids.iter().position(|id| id == w)).unwrap_or(kill % 2);
        env.note(format!(
            "kill {kill}/{KILLS} at {:?}: SIGKILL {} ({} lines written, source on {running_on:?})",
            started.elapsed(),
            ids[victim],
            writer.written(),
        ));
        agents[victim].process.kill9();
        // Back after a moment: sometimes before its lease expired (same id reconnects), sometimes after.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..2500))).await;
        agents[victim] = start_agent(env, &endpoints, &ids[victim], kafka).await?;
    }
    writer.finish().await?;
    env.note(format!("all {TOTAL} lines written after {:?}", started.elapsed()));
    cp.rest.wait_for_status(&source, "RUNNING", Duration::from_secs(60)).await?;

    // read_committed: every line exactly once, in order.
    let deadline = Instant::now() + Duration::from_secs(120);
    let committed = loop {
        let values = read_values(kafka, &topic, "read_committed").await?;
        let report = analyze(&lines, &values);
        if report.missing.is_empty() || Instant::now() >= deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    env.note(format!("read_committed: {committed}"));
    ensure!(committed.duplicates == 0, "read_committed saw {} duplicates: {committed}", committed.duplicates);
    ensure!(committed.missing.is_empty(), "read_committed is missing {} lines: {committed}", committed.missing.len());
    committed.check_exact("read_committed")?;

    // read_uncommitted: records of aborted transactions (written before a kill, never committed) show up too.
    let uncommitted = analyze(&lines, &read_values(kafka, &topic, "read_uncommitted").await?);
    env.note(format!("read_uncommitted (for comparison): {uncommitted}"));

    // The offsets went into the offsets topic (Kafka Connect's layout) and up to the control plane.
    let size = std::fs::metadata(&input)?.len();
    let partition = json!({"filename": input.display().to_string()});
    let key = serde_json::to_string(&json!([source, partition]))?;
    let stored = read_transactional(kafka, &offsets_topic, "read_committed").await?;
    let last = stored.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    env.note(format!("offsets topic: {} records, latest for {key}: {last:?}", stored.len()));
    let last: Value = serde_json::from_str(&last.context("no offsets record for the file in the offsets topic")?)?;
    ensure!(last == json!({"position": size}), "offsets topic: {last} but the file has {size} bytes");
    wait_until(Duration::from_secs(30), "the control plane's source offsets at the end of the file", || async {
        let reply = cp.rest.get(&format!("/connectors/{source}/offsets")).await?;
        reply.expect_status(200, "GET offsets")?;
        let offsets = reply.json()?["offsets"].clone();
        Ok((offsets[0]["offset"]["position"] == size).then_some(()))
    })
    .await?;
    for agent in &mut agents {
        ensure!(agent.process.is_running(), "agent {} exited", agent.id);
    }
    Ok(())
}

/// SIGSTOP the agent running the source until the task runs on the other agent, then SIGCONT it.
async fn freeze_source_agent(
    env: &TestEnv,
    cp: &ControlPlane,
    source: &str,
    ids: &[String; 2],
    agents: &mut [Agent; 2],
    writer: &LineWriter,
) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(rand::rng().random_range(1000..3000))).await;
    let status = cp.rest.status(source).await?;
    let running_on = task_worker(&status, 0).context("the source task has no worker")?;
    let frozen = ids.iter().position(|id| *id == running_on).context("the source runs on an unknown agent")?;
    let other = ids[1 - frozen].clone();
    let pid = agents[frozen].process.pid().to_string();
    env.note(format!("freezing {running_on} (SIGSTOP, {} lines written)", writer.written()));
    ensure!(std::process::Command::new("kill").args(["-STOP", &pid]).status()?.success(), "kill -STOP failed");
    let moved = cp
        .rest
        .wait_for_status_matching(source, &format!("RUNNING on {other}"), Duration::from_secs(60), |s| {
            task_state(s, 0).as_deref() == Some("RUNNING") && task_worker(s, 0).as_deref() == Some(other.as_str())
        })
        .await;
    ensure!(std::process::Command::new("kill").args(["-CONT", &pid]).status()?.success(), "kill -CONT failed");
    moved?;
    env.note(format!("the source moved to {other}; thawed {running_on} (SIGCONT, {} lines written)", writer.written()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let zombie_log = agents[frozen].process.log_text();
    let fenced: Vec<&str> =
        zombie_log.lines().filter(|l| l.contains("enced") || l.contains("abort")).rev().take(3).collect();
    env.note(format!("zombie log after the thaw (fencing/abort lines, newest first): {fenced:#?}"));
    Ok(())
}

async fn misconfigurations(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("eos-bad"), &env.services.etcd).await?;
    let endpoints = [cp.grpc_endpoint()];
    let topic = env.unique("eos-bad-stream");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("line", 0, 3))?;
    let failed_with = |status: &Value, text: &str| {
        task_state(status, 0).as_deref() == Some("FAILED")
            && status["tasks"][0]["trace"].as_str().is_some_and(|t| t.contains(text))
    };

    // A worker without exactly-once support cannot run a connector that requires it.
    let mut plain = Agent::start(env, &endpoints, &env.unique("plain"), kafka).await?;
    let required = env.unique("requires-eos");
    let mut config = file_source(&input, &topic);
    config["exactly.once.support"] = json!("required");
    cp.rest.create_connector(&required, &config).await?;
    let text = "exactly.once.source.support=enabled";
    let status = cp
        .rest
        .wait_for_status_matching(&required, "FAILED (exactly-once required)", Duration::from_secs(60), |s| {
            failed_with(s, text)
        })
        .await?;
    env.note(format!("required on a worker without support: {}", status["tasks"][0]["trace"]));
    cp.rest.delete(&format!("/connectors/{required}")).await?.expect_status(204, "DELETE connector")?;
    plain.process.kill9();

    // Connector-defined transaction boundaries: FileStreamSource does not define any.
    let _eos = start_agent(env, &endpoints, &env.unique("eos"), kafka).await?;
    let boundary = env.unique("connector-boundary");
    let mut config = file_source(&input, &topic);
    config["transaction.boundary"] = json!("connector");
    cp.rest.create_connector(&boundary, &config).await?;
    let text = "connector-defined transaction boundaries not supported";
    let status = cp
        .rest
        .wait_for_status_matching(&boundary, "FAILED (connector boundary)", Duration::from_secs(60), |s| {
            failed_with(s, text)
        })
        .await?;
    env.note(format!("transaction.boundary=connector: {}", status["tasks"][0]["trace"]));
    Ok(())
}

/// `transaction.boundary=interval`: transactions span the polls of one interval; still exactly once.
async fn interval_boundary(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("eos-interval"), &env.services.etcd).await?;
    let endpoints = [cp.grpc_endpoint()];
    let _agent = start_agent(env, &endpoints, &env.unique("agent"), kafka).await?;
    let topic = env.unique("eos-interval-stream");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let lines = numbered_lines("tick", 0, 1000);
    append_lines(&input, &lines[..500])?;
    let source = env.unique("eos-interval-source");
    let mut config = file_source(&input, &topic);
    config["transaction.boundary"] = json!("interval");
    config["transaction.boundary.interval.ms"] = json!("1000");
    config["offsets.storage.topic"] = json!(env.unique("eos-interval-offsets"));
    cp.rest.create_connector(&source, &config).await?;
    cp.rest.wait_for_status(&source, "RUNNING", Duration::from_secs(60)).await?;
    append_lines(&input, &lines[500..])?;
    let report = wait_until(Duration::from_secs(60), "all lines committed", || async {
        let report = analyze(&lines, &read_values(kafka, &topic, "read_committed").await?);
        Ok(report.missing.is_empty().then_some(report))
    })
    .await?;
    env.note(format!("interval boundary, read_committed: {report}"));
    report.check_exact("read_committed")
}

/// Every value of partition 0 of `topic` from the beginning up to the current end, as `isolation` sees it.
async fn read_values(bootstrap: &str, topic: &str, isolation: &str) -> anyhow::Result<Vec<String>> {
    Ok(read_transactional(bootstrap, topic, isolation).await?.into_iter().map(|(_, v)| v).collect())
}
