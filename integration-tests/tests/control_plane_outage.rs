//! Every control-plane replica goes away at once (SIGKILL of both) for much longer than the agent lease, while lines
//! stream through file source -> topic -> file sink. The agent keeps its tasks until its lease may have expired,
//! then stops them (self-fence, ~2.4 s in with the harness's 3 s lease), and keeps reconnecting. When the replicas
//! are back (same ports), the same agent gets its tasks back and resumes from what it had reached.
//!
//! Duplicates are measured, and bounded by what was in flight at the fence: the source keeps the offsets Kafka
//! acknowledged up to the fence and commits them when the task comes back; the sink, once heartbeats are overdue,
//! commits its Kafka offsets after every batch while its lease still allows it, so the fence leaves at most the
//! batch it was putting uncommitted — not a whole `offset.flush.interval.ms`.

use std::time::{Duration, Instant};

use anyhow::ensure;
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

/// Five times the agent lease (3 s): every lease in etcd expires, agents must have fenced themselves.
const OUTAGE: Duration = Duration::from_secs(15);
/// The bar for duplicates per place: what can be in flight at the fence (the writer appends 20 lines per 50 ms,
/// so a batch is a few dozen lines), far below a flush interval's worth plus the outage's backlog (thousands).
const IN_FLIGHT_BOUND: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_every_control_plane_replica() {
    let env = TestEnv::new("control_plane_outage").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cluster = env.unique("cp-outage");
    let mut replicas = [
        ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp1").await?,
        ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp2").await?,
    ];
    let endpoints: Vec<String> = replicas.iter().map(ControlPlane::grpc_endpoint).collect();
    let mut agent = Agent::start(env, &endpoints, &env.unique("agent"), kafka).await?;

    let topic = env.unique("lines");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    append_lines(&input, &[])?;
    let source = env.unique("file-source");
    let sink = env.unique("file-sink");
    replicas[0].rest.create_connector(&source, &file_source(&input, &topic)).await?;
    replicas[0].rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    for name in [&source, &sink] {
        replicas[0].rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
    }

    let lines = numbered_lines("msg", 0, 12_000);
    let writer = LineWriter::start(&input, lines.clone(), 20, Duration::from_millis(50));
    writer.wait_written(600, Duration::from_secs(30)).await?;
    wait_until(Duration::from_secs(30), "the sink to receive lines", || async {
        Ok((read_complete_lines(&output).map(|l| l.len()).unwrap_or(0) >= 300).then_some(()))
    })
    .await?;

    let log_before = agent.process.log_text().len();
    for replica in replicas.iter_mut() {
        replica.process.kill9();
    }
    let outage_start = Instant::now();
    env.note(format!(
        "every control-plane replica killed after {} lines written; down for {OUTAGE:?}",
        writer.written()
    ));
    let fenced = wait_until(OUTAGE, "the agent to fence itself", || {
        let log = agent.process.log_text();
        async move { Ok(log[log_before.min(log.len())..].contains("mode=Fenced").then(|| outage_start.elapsed())) }
    })
    .await?;
    env.note(format!("the agent fenced itself {fenced:?} into the outage"));
    let sink_lines_at_fence = read_complete_lines(&output)?.len();
    tokio::time::sleep(OUTAGE.saturating_sub(outage_start.elapsed())).await;
    ensure!(agent.process.is_running(), "the agent exited during the outage (it should wait and reconnect)");
    let sink_lines_during = read_complete_lines(&output)?.len() - sink_lines_at_fence;
    ensure!(sink_lines_during == 0, "the sink wrote {sink_lines_during} lines after the agent fenced itself");

    for replica in replicas.iter_mut() {
        replica.restart(env).await?;
    }
    let back_at = Instant::now();
    env.note(format!("control planes back after {:?}", outage_start.elapsed()));

    writer.finish().await?;
    for name in [&source, &sink] {
        let status = replicas[0].rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("{:?} after the control planes came back: {status}", back_at.elapsed()));
    }
    let report = wait_for_lines(&output, &lines, Duration::from_secs(120)).await?;
    env.note(format!("sink file: {report} ({:?} after the control planes came back)", back_at.elapsed()));
    report.check_complete_at_least_once("sink file")?;
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!("topic: {topic_report}"));
    topic_report.check_complete_at_least_once("topic")?;
    agent.process.ensure_running()?;
    env.note(format!(
        "OUTAGE ROUND: fenced {:.1} s in; duplicates: {} in the topic, {} in the sink file",
        fenced.as_secs_f64(),
        topic_report.duplicates,
        report.duplicates
    ));
    ensure!(
        topic_report.duplicates <= IN_FLIGHT_BOUND,
        "the source produced {} lines again after the outage: more than was in flight at the fence",
        topic_report.duplicates
    );
    ensure!(
        report.duplicates <= IN_FLIGHT_BOUND,
        "the sink wrote {} lines again after the outage: more than was in flight at the fence",
        report.duplicates
    );
    Ok(())
}
