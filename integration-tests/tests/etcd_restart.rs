//! etcd (the source of truth) restarts while lines stream through a pipeline. The test runs its own private etcd
//! so restarting it disturbs no other test. Afterwards the system must converge: REST answers, the connectors are
//! RUNNING, new connectors get scheduled, and no line is lost (duplicates allowed and reported).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_restart() {
    let env = TestEnv::new("etcd_restart").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let mut etcd = EtcdServer::start(env, "etcd").await?;
    let cp = ControlPlane::start(env, &env.unique("etcd-restart"), &etcd.endpoint()).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    let topic = env.unique("lines");
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

    let lines = numbered_lines("msg", 0, 2000);
    let writer = LineWriter::start(&input, lines.clone(), 20, Duration::from_millis(50));
    writer.wait_written(600, Duration::from_secs(30)).await?;

    let restart_at = Instant::now();
    etcd.restart(env).await?;
    env.note(format!("etcd restarted (SIGTERM + start, healthy again) in {:?}", restart_at.elapsed()));

    let mut names = wait_until(Duration::from_secs(30), "REST to list the connectors again", || async {
        let names = cp.rest.connector_names().await?;
        Ok((names.len() == 2).then_some(names))
    })
    .await?;
    names.sort();
    let mut want = vec![source.clone(), sink.clone()];
    want.sort();
    ensure!(names == want, "GET /connectors after the restart = {names:?}, expected {want:?}");

    writer.finish().await?;
    for name in [&source, &sink] {
        let status = cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("after the restart: {status}"));
    }
    let report = wait_for_lines(&output, &lines, Duration::from_secs(90)).await?;
    env.note(format!("sink file: {report} ({:?} after the restart began)", restart_at.elapsed()));
    report.check_complete_at_least_once("sink file")?;
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!("topic: {topic_report}"));
    topic_report.check_complete_at_least_once("topic")?;

    // The control plane writes and schedules again (leader re-elected, store writable).
    let output2 = env.path("output2.txt");
    let sink2 = env.unique("file-sink-2");
    cp.rest.create_connector(&sink2, &file_sink(&output2, &topic)).await?;
    cp.rest.wait_for_status(&sink2, "RUNNING", Duration::from_secs(60)).await?;
    wait_for_lines(&output2, &lines, Duration::from_secs(60)).await?.check_complete_at_least_once("second sink")?;
    Ok(())
}

/// How long etcd stays down in the outage test: twice the agent lease TTL (3 s), so every lease would have expired
/// and agents must have fenced themselves (stopped their tasks) before etcd returns.
const OUTAGE: Duration = Duration::from_secs(6);

/// etcd crashes (SIGKILL) and stays away longer than the agent lease TTL, while lines stream. During the outage the
/// REST API must still answer promptly (data or a clean JSON error, never a hang); afterwards everything converges
/// and no line is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_outage_longer_than_lease() {
    let env = TestEnv::new("etcd_outage_longer_than_lease").await;
    env.finish(outage(&env).await);
}

async fn outage(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let mut etcd = EtcdServer::start(env, "etcd").await?;
    let cp = ControlPlane::start(env, &env.unique("etcd-outage"), &etcd.endpoint()).await?;
    let mut agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    let topic = env.unique("lines");
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

    let lines = numbered_lines("msg", 0, 3000);
    let writer = LineWriter::start(&input, lines.clone(), 20, Duration::from_millis(50));
    writer.wait_written(500, Duration::from_secs(30)).await?;

    etcd.kill9();
    let outage_start = Instant::now();
    env.note(format!("etcd killed (SIGKILL) after {} lines written; down for {OUTAGE:?}", writer.written()));
    // Throughout the outage, REST answers within the client timeout: data, or an error in Kafka Connect's shape.
    let mut answers: Vec<u16> = Vec::new();
    while outage_start.elapsed() < OUTAGE {
        let asked = Instant::now();
        let reply = cp.rest.get("/connectors").await.context("REST did not answer during the etcd outage")?;
        ensure!(
            asked.elapsed() < Duration::from_secs(10),
            "GET /connectors took {:?} during the outage",
            asked.elapsed()
        );
        if reply.status != 200 {
            let message = reply.expect_error(reply.status, "GET /connectors during the outage")?;
            ensure!(reply.status >= 500, "GET /connectors during the outage: {} {message}", reply.status);
        }
        answers.push(reply.status);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    answers.dedup();
    env.note(format!("GET /connectors during the outage answered {answers:?}"));
    ensure!(agent.process.is_running(), "the agent exited during the etcd outage (it should wait and reconnect)");

    etcd.start_again(env).await?;
    let back_at = Instant::now();
    env.note(format!("etcd back after {:?}", outage_start.elapsed()));

    writer.finish().await?;
    for name in [&source, &sink] {
        let status = cp.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("{:?} after etcd came back: {status}", back_at.elapsed()));
    }
    let report = wait_for_lines(&output, &lines, Duration::from_secs(90)).await?;
    env.note(format!("sink file: {report} ({:?} after etcd came back)", back_at.elapsed()));
    report.check_complete_at_least_once("sink file")?;
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!("topic: {topic_report}"));
    topic_report.check_complete_at_least_once("topic")?;
    // The agent fenced itself with offsets it could not commit (etcd was down); given its tasks back with the same
    // epoch, it resumes from where it was, so only what was read after its last offset report (at most one
    // `offset.flush.interval.ms` of lines, 500 ms = 200 lines here, plus records in flight) is read again, not
    // everything since the last commit that landed before the outage.
    anyhow::ensure!(
        topic_report.duplicates <= 300,
        "the source re-read {} lines after the outage: it did not resume from its progress before the fence",
        topic_report.duplicates
    );
    // The sink commits its Kafka offsets after every batch once heartbeats are overdue, while its lease allows it:
    // at the fence at most the batch it was putting is uncommitted (a few dozen lines here), not a flush interval.
    anyhow::ensure!(
        report.duplicates <= 100,
        "the sink wrote {} lines again after the outage: more than was in flight at the fence",
        report.duplicates
    );

    let output2 = env.path("output2.txt");
    let sink2 = env.unique("file-sink-2");
    cp.rest.create_connector(&sink2, &file_sink(&output2, &topic)).await?;
    cp.rest.wait_for_status(&sink2, "RUNNING", Duration::from_secs(60)).await?;
    wait_for_lines(&output2, &lines, Duration::from_secs(60)).await?.check_complete_at_least_once("second sink")?;
    Ok(())
}
