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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_agent_arriving_while_the_first_is_cut_off_waits_for_its_fence() {
    let env = TestEnv::new("agent_id_while_cut_off").await;
    env.finish(second_while_cut_off(&env).await);
}

/// The first process reaches the control plane through a TCP forwarder; killing the forwarder closes its stream
/// (the control plane notes it disconnected) while the process lives on, reconnecting in vain. A second process
/// with the same id on the same host cannot take the id's lock (the first holds it), so it proves nothing: it must
/// not start a task before the first has fenced itself (both logs on one clock).
async fn second_while_cut_off(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("dup"), &env.services.etcd).await?;
    let id = env.unique("agent");
    let port = free_port();
    let mut forward = std::process::Command::new(binary("sluice-test-forward")?);
    forward.arg(format!("127.0.0.1:{port}")).arg(format!("127.0.0.1:{}", cp.grpc_port));
    let mut forwarder = Process::spawn(env, "forward", forward)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut first = Agent::start(env, &[format!("http://127.0.0.1:{port}")], &id, kafka).await?;
    let p = pipeline(env, cp).await?;
    let lines = numbered_lines("cut", 0, 2000);
    let writer = LineWriter::start(&p.input, lines.clone(), 20, Duration::from_millis(50));
    writer.wait_written(400, Duration::from_secs(30)).await?;
    wait_until(Duration::from_secs(30), "lines in the sink", || async {
        Ok((read_complete_lines(&p.output)?.len() >= 100).then_some(()))
    })
    .await?;

    forwarder.kill9();
    let cut_at = Instant::now();
    let second = Agent::start(env, &[p.cp.grpc_endpoint()], &id, kafka).await?;
    wait_until(Duration::from_secs(20), "the second agent to start the tasks", || async {
        Ok((second.process.log_text().matches("starting task").count() >= 2).then_some(()))
    })
    .await?;
    let took_over = cut_at.elapsed();
    let timestamp = |log: &str, needle: &str| {
        log.lines().find(|l| l.contains(needle)).and_then(|l| l.split_whitespace().next()).map(str::to_string)
    };
    let first_log = first.process.log_text();
    let fenced = timestamp(&first_log, "mode=Fenced");
    let started = timestamp(&second.process.log_text(), "starting task");
    env.note(format!(
        "CUT OFF: the second process started the tasks {took_over:?} after the first's stream closed; first fenced \
         at {fenced:?}, second started at {started:?}"
    ));
    let (Some(fenced), Some(started)) = (fenced.clone(), started) else {
        anyhow::bail!("no fence of the first process before the second started (fenced {fenced:?})");
    };
    // RFC 3339 UTC timestamps of one clock, same width: ordered as strings.
    ensure!(fenced < started, "the second process started tasks at {started}, before the first fenced at {fenced}");
    first.process.ensure_running()?;
    writer.finish().await?;
    let report = wait_for_lines(&p.output, &lines, Duration::from_secs(60)).await?;
    let topic = analyze(&lines, &read_topic(kafka, &p.topic).await?);
    env.note(format!("DUPID ROUND: sink file {report}; topic {topic}"));
    report.check_complete_at_least_once("sink file")?;
    Ok(())
}
