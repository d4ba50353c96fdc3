//! An agent dies (SIGKILL) while its source task is streaming: the task must move to the other agent within a
//! few seconds (Kafka Connect can leave it UNASSIGNED for 5 minutes) and no line may be lost. Duplicates are
//! allowed (at-least-once: lines read after the last offset flush are read again) and reported.
//! The same with a graceful stop (SIGTERM): the tasks hand over at once, and with their final offsets committed
//! nothing is read twice.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

const TOTAL: usize = 3000;
const BATCH: usize = 20;
const INTERVAL: Duration = Duration::from_millis(50);
/// Generous upper bound; the lease TTL is 3 s, so a healthy failover takes a few seconds.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    /// SIGKILL: a crash.
    Kill9,
    /// SIGTERM: a graceful stop.
    Terminate,
}

/// Which task's agent is stopped.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Victim {
    SourceAgent,
    SinkAgent,
}

/// After a sink task moved, records must flow into the sink file again within this: its new consumer takes the
/// old one's place in the group at once (static membership) instead of waiting out a session timeout.
const SINK_RESUME_LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_kill9_failover() {
    let env = TestEnv::new("agent_kill9_failover").await;
    env.finish(run(&env, Stop::Kill9, Victim::SourceAgent).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_kill9_sink_failover() {
    let env = TestEnv::new("agent_kill9_sink_failover").await;
    env.finish(run(&env, Stop::Kill9, Victim::SinkAgent).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_sigterm_handover() {
    let env = TestEnv::new("agent_sigterm_handover").await;
    env.finish(run(&env, Stop::Terminate, Victim::SourceAgent).await);
}

async fn run(env: &TestEnv, stop: Stop, victim_task: Victim) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("failover"), &env.services.etcd).await?;
    let mut agents = [
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-a"), kafka).await?,
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-b"), kafka).await?,
    ];

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
        let status = cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("{name}: {status}"));
    }

    let lines = numbered_lines("event", 0, TOTAL);
    let writer = LineWriter::start(&input, lines.clone(), BATCH, INTERVAL);
    // Mid-stream: a third written, and the sink has seen some of it (the pipeline is really flowing).
    writer.wait_written(TOTAL / 3, Duration::from_secs(30)).await?;
    wait_until(Duration::from_secs(30), "the sink to receive lines before the kill", || async {
        Ok((read_complete_lines(&output)?.len() >= 100).then_some(()))
    })
    .await?;

    let status = cp.rest.status(if victim_task == Victim::SourceAgent { &source } else { &sink }).await?;
    let Some(victim_id) = task_worker(&status, 0) else { bail!("task has no worker_id: {status}") };
    let Some(victim) = agents.iter().position(|a| a.id == victim_id) else {
        bail!("source task worker_id `{victim_id}` is none of the agent ids: {status}");
    };
    let survivor_id = agents[1 - victim].id.clone();
    let sink_status = cp.rest.status(&sink).await?;
    env.note(format!(
        "stopping {victim_id} with {stop:?} (victim chosen as the {victim_task:?}; source task on {:?}, sink task on \
         {:?}) after {} lines written",
        task_worker(&status, 0),
        task_worker(&sink_status, 0),
        writer.written()
    ));
    let sink_lines_at_kill = read_complete_lines(&output)?.len();
    let killed_at = Instant::now();
    match stop {
        Stop::Kill9 => agents[victim].process.kill9(),
        Stop::Terminate => {
            let status = agents[victim].process.terminate(Duration::from_secs(30)).await?;
            env.note(format!("{victim_id} exited {:?} after SIGTERM: {status}", killed_at.elapsed()));
            ensure!(status.success(), "a graceful stop should exit with 0, got {status}");
        }
    }

    let on_survivor = |s: &serde_json::Value| {
        task_state(s, 0).as_deref() == Some("RUNNING") && task_worker(s, 0).as_deref() == Some(survivor_id.as_str())
    };
    let status =
        cp.rest.wait_for_status_matching(&source, "RUNNING on the survivor", FAILOVER_LIMIT, on_survivor).await?;
    let failover = killed_at.elapsed();
    env.note(format!(
        "FAILOVER ({stop:?}): source task RUNNING on {survivor_id} {failover:?} after the stop ({status})"
    ));
    let status =
        cp.rest.wait_for_status_matching(&sink, "RUNNING on the survivor", FAILOVER_LIMIT, on_survivor).await?;
    env.note(format!("sink task RUNNING on the survivor {:?} after the stop ({status})", killed_at.elapsed()));
    if victim_task == Victim::SinkAgent {
        // The writer is still appending: the sink file must grow again soon after the move.
        wait_until(SINK_RESUME_LIMIT, "the moved sink task to write new lines", || async {
            Ok((read_complete_lines(&output)?.len() > sink_lines_at_kill + 100).then_some(()))
        })
        .await?;
        env.note(format!("SINK RESUMED: new lines in the sink file {:?} after the stop", killed_at.elapsed()));
    }
    ensure!(agents[1 - victim].process.is_running(), "the surviving agent exited");

    writer.finish().await?;
    let report = wait_for_lines(&output, &lines, Duration::from_secs(90)).await?;
    env.note(format!("sink file: {report}"));
    report.check_complete_at_least_once("sink file")?;
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!("topic: {topic_report}"));
    topic_report.check_complete_at_least_once("topic")?;
    env.note(format!(
        "duplicates ({stop:?}): {} in the topic (source re-read after failover), {} in the sink file; failover {failover:?}",
        topic_report.duplicates, report.duplicates
    ));
    if stop == Stop::Terminate {
        // A graceful stop commits the final offsets (source: byte position; sink: consumer group) before the
        // tasks start elsewhere, so nothing may be read twice.
        topic_report.check_exact("topic after a graceful handover (source must resume at its final offset)")?;
        report.check_exact("sink file after a graceful handover (sink must resume at its committed offset)")?;
    }
    Ok(())
}
