//! At-least-once under repeated crashes: two agents run a FileStreamSource → Kafka → FileStreamSink pipeline under
//! steady load while agents are killed with SIGKILL five times at random moments over about 30 seconds (each
//! killed agent is started again under the same id). Source offsets are committed only after Kafka acknowledged
//! the records, sink offsets only after the sink flushed, so no line may be lost: every line must reach the topic
//! and the sink file at least once. Duplicates are allowed and reported.

use std::time::{Duration, Instant};

use anyhow::ensure;
use rand::Rng;
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

const TOTAL: usize = 8000;
const BATCH: usize = 20;
/// 20 lines every 100 ms: about 40 s of load, so all five kills land while lines are flowing.
const INTERVAL: Duration = Duration::from_millis(100);
const KILLS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_repeated_kill9_loses_nothing() {
    let env = TestEnv::new("agent_repeated_kill9_loses_nothing").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("kills"), &env.services.etcd).await?;
    let endpoints = [cp.grpc_endpoint()];
    let ids = [env.unique("agent-a"), env.unique("agent-b")];
    let mut agents =
        [Agent::start(env, &endpoints, &ids[0], kafka).await?, Agent::start(env, &endpoints, &ids[1], kafka).await?];

    let topic = env.unique("stream");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    append_lines(&input, &[])?;
    let source = env.unique("file-source");
    let sink = env.unique("file-sink");
    cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    for name in [&source, &sink] {
        cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
    }

    let lines = numbered_lines("event", 0, TOTAL);
    let writer = LineWriter::start(&input, lines.clone(), BATCH, INTERVAL);
    let started = Instant::now();
    for kill in 1..=KILLS {
        // Random moments, about 2-5 s apart, so kills land at different points of the flush/commit cycle.
        let pause = Duration::from_millis(rand::rng().random_range(2000..5000));
        tokio::time::sleep(pause).await;
        // Mostly the agent running the source task (the interesting one), sometimes the other.
        let status = cp.rest.status(&source).await?;
        let source_agent = task_worker(&status, 0);
        let victim = match source_agent.and_then(|w| ids.iter().position(|id| *id == w)) {
            Some(i) if rand::rng().random_bool(0.7) => i,
            _ => rand::rng().random_range(0..2),
        };
        env.note(format!(
            "kill {kill}/{KILLS} at {:?}: SIGKILL {} ({} lines written, source on {:?})",
            started.elapsed(),
            ids[victim],
            writer.written(),
            task_worker(&status, 0)
        ));
        agents[victim].process.kill9();
        // Back after a moment: sometimes before its lease expired (same id reconnects), sometimes after.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..2500))).await;
        agents[victim] = Agent::start(env, &endpoints, &ids[victim], kafka).await?;
    }
    writer.finish().await?;
    env.note(format!("all {TOTAL} lines written after {:?}", started.elapsed()));

    for name in [&source, &sink] {
        cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
    }
    let report = wait_for_lines(&output, &lines, Duration::from_secs(120)).await?;
    env.note(format!("sink file: {report}"));
    report.check_complete_at_least_once("sink file")?;
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!("topic: {topic_report}"));
    topic_report.check_complete_at_least_once("topic")?;
    env.note(format!(
        "duplicates after {KILLS} kills: {} in the topic, {} in the sink file",
        topic_report.duplicates, report.duplicates
    ));
    for agent in &mut agents {
        ensure!(agent.process.is_running(), "agent {} exited", agent.id);
    }
    Ok(())
}
