//! Two processes with the same `--agent-id`: the second is refused while the first is connected (with a message
//! that says why), so no task runs twice; a restart under the same id right after a crash (kill -9) is accepted
//! at once and takes the tasks over without waiting for the lease to expire.

use std::time::{Duration, Instant};

use anyhow::ensure;
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

const REFUSAL: &str = "another agent process with this --agent-id is connected";

struct Pipeline {
    cp: ControlPlane,
    input: std::path::PathBuf,
    output: std::path::PathBuf,
    topic: String,
    source: String,
    sink: String,
}

async fn pipeline(env: &TestEnv, cp: ControlPlane) -> anyhow::Result<Pipeline> {
    let topic = env.unique("dup");
    create_topic(&env.services.kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    append_lines(&input, &[])?;
    let source = env.unique("source");
    let sink = env.unique("sink");
    cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    for name in [&source, &sink] {
        cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
    }
    Ok(Pipeline { cp, input, output, topic, source, sink })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_agent_with_a_connected_id_is_refused() {
    let env = TestEnv::new("duplicate_agent_id").await;
    env.finish(second_agent_refused(&env).await);
}

async fn second_agent_refused(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("dup"), &env.services.etcd).await?;
    let id = env.unique("agent");
    let mut first = Agent::start(env, &[cp.grpc_endpoint()], &id, kafka).await?;
    let p = pipeline(env, cp).await?;
    let second = Agent::start(env, &[p.cp.grpc_endpoint()], &id, kafka).await?;
    // Checked after the data, so that a build that accepts the second agent shows what it costs.
    let refused = wait_until(Duration::from_secs(10), "the second agent to be refused", || async {
        Ok(second.process.log_text().contains(REFUSAL).then_some(()))
    })
    .await;
    env.note(format!("the second agent with the same id was refused: {}", refused.is_ok()));

    let lines = numbered_lines("dup", 0, 1000);
    let writer = LineWriter::start(&p.input, lines.clone(), 50, Duration::from_millis(50));
    writer.finish().await?;
    let report = wait_for_lines(&p.output, &lines, Duration::from_secs(60)).await?;
    // Let a second copy of the tasks, if any, write its duplicates.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report_after = analyze(&lines, &read_complete_lines(&p.output)?);
    let topic = analyze(&lines, &read_topic(kafka, &p.topic).await?);
    env.note(format!(
        "DUPLICATE ID: sink file {report_after} (at arrival: {report}); topic {topic}; the second agent started {} tasks",
        second.process.log_text().matches("starting task").count()
    ));
    ensure!(!second.process.log_text().contains("starting task"), "the refused agent started tasks");
    refused?;
    report_after.check_exact("sink file with two agents under one id")?;
    topic.check_exact("topic with two agents under one id")?;
    first.process.ensure_running()?;
    for name in [&p.source, &p.sink] {
        let status = p.cp.rest.status(name).await?;
        ensure!(all_in_state(&status, "RUNNING"), "{name}: {status}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_under_the_same_id_after_a_crash_works_at_once() {
    let env = TestEnv::new("agent_id_restart_after_crash").await;
    env.finish(restart_after_crash(&env).await);
}

async fn restart_after_crash(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("dup"), &env.services.etcd).await?;
    let id = env.unique("agent");
    let mut first = Agent::start(env, &[cp.grpc_endpoint()], &id, kafka).await?;
    let p = pipeline(env, cp).await?;
    let lines = numbered_lines("restart", 0, 2000);
    let writer = LineWriter::start(&p.input, lines.clone(), 20, Duration::from_millis(50));
    writer.wait_written(400, Duration::from_secs(30)).await?;
    wait_until(Duration::from_secs(30), "lines in the sink", || async {
        Ok((read_complete_lines(&p.output)?.len() >= 100).then_some(()))
    })
    .await?;

    first.process.kill9();
    let crashed_at = Instant::now();
    let second = Agent::start(env, &[p.cp.grpc_endpoint()], &id, kafka).await?;
    wait_until(Duration::from_secs(20), "the restarted agent to start its tasks", || async {
        Ok((second.process.log_text().matches("starting task").count() >= 2).then_some(()))
    })
    .await?;
    let restarted = crashed_at.elapsed();
    let refusals = second.process.log_text().matches(REFUSAL).count();
    let at_kill = read_complete_lines(&p.output)?.len();
    wait_until(Duration::from_secs(30), "new lines in the sink after the restart", || async {
        Ok((read_complete_lines(&p.output)?.len() > at_kill + 100).then_some(()))
    })
    .await?;
    env.note(format!(
        "RESTART AFTER CRASH: tasks started by the new process {restarted:?} after the kill -9 ({refusals} refusals \
         first); lease TTL 3 s"
    ));
    // "At once": well before the old session's lease (3 s) could have expired.
    ensure!(restarted < Duration::from_secs(2), "the restart took {restarted:?}: it waited for the old lease");
    writer.finish().await?;
    let report = wait_for_lines(&p.output, &lines, Duration::from_secs(60)).await?;
    env.note(format!("sink file: {report}"));
    report.check_complete_at_least_once("sink file")?;
    for name in [&p.source, &p.sink] {
        let status = p.cp.rest.status(name).await?;
        ensure!(all_in_state(&status, "RUNNING"), "{name}: {status}");
    }
    Ok(())
}
