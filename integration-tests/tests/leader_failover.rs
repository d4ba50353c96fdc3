//! Two control-plane replicas of one cluster, one agent connected to both. The leader replica is killed with
//! SIGKILL: the other replica must keep answering REST with the same config and status, the running pipeline must
//! keep moving lines, and a connector created after the kill must be scheduled (which needs a new leader).

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sluice_integration_tests::kafka::create_topic;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover() {
    let env = TestEnv::new("leader_failover").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cluster = env.unique("leader");
    let mut replicas = [
        ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp1").await?,
        ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp2").await?,
    ];
    // Exactly one replica leads.
    let leader = wait_until(Duration::from_secs(30), "exactly one replica to log `became leader`", || {
        let leading: Vec<usize> = (0..replicas.len()).filter(|&i| replicas[i].logs_leadership()).collect();
        async move {
            if leading.len() > 1 {
                bail!("several replicas lead at once: {leading:?}");
            }
            Ok(leading.first().copied())
        }
    })
    .await?;
    let survivor = 1 - leader;
    env.note(format!("leader is {}, survivor {}", replicas[leader].replica_id, replicas[survivor].replica_id));
    // The leader's endpoint first: the agent most likely holds its stream there, so the kill also cuts the
    // agent's session and the agent must move to the other replica.
    let endpoints = vec![replicas[leader].grpc_endpoint(), replicas[survivor].grpc_endpoint()];
    let agent = Agent::start(env, &endpoints, &env.unique("agent"), kafka).await?;

    let topic = env.unique("lines");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("row", 0, 600);
    append_lines(&input, &lines[..300])?;
    let source = env.unique("file-source");
    let sink = env.unique("file-sink");
    // Created through the replica that will survive: any replica serves writes, leader or not.
    replicas[survivor].rest.create_connector(&source, &file_source(&input, &topic)).await?;
    replicas[leader].rest.create_connector(&sink, &file_sink(&output, &topic)).await?;

    let mut configs_before = Vec::new();
    for name in [&source, &sink] {
        for replica in &replicas {
            replica.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        }
        let a = replicas[0].rest.get(&format!("/connectors/{name}/config")).await?;
        let b = replicas[1].rest.get(&format!("/connectors/{name}/config")).await?;
        a.expect_status(200, "GET config from cp1")?;
        b.expect_status(200, "GET config from cp2")?;
        ensure!(a.json()? == b.json()?, "the replicas disagree on {name}'s config: {} vs {}", a.body, b.body);
        configs_before.push(a.json()?.clone());
    }
    let report = wait_for_lines(&output, &lines[..300], Duration::from_secs(60)).await?;
    env.note(format!("before the kill: {report}"));

    replicas[leader].process.kill9();
    let killed_at = Instant::now();
    env.note(format!("killed the leader {} (SIGKILL)", replicas[leader].replica_id));
    let alive = &replicas[survivor];

    // The survivor answers, with everything intact.
    let reply = alive.rest.get("/").await?;
    reply.expect_status(200, "GET / on the survivor")?;
    let mut names = alive.rest.connector_names().await?;
    names.sort();
    let mut want = vec![source.clone(), sink.clone()];
    want.sort();
    ensure!(names == want, "survivor GET /connectors = {names:?}, expected {want:?}");
    for (name, before) in [&source, &sink].into_iter().zip(&configs_before) {
        let reply = alive.rest.get(&format!("/connectors/{name}/config")).await?;
        reply.expect_status(200, "GET config on the survivor")?;
        ensure!(reply.json()? == before, "{name}'s config changed: {} (was {before})", reply.body);
    }

    // Lines appended after the kill still flow (the agent's tasks kept running or were resumed).
    append_lines(&input, &lines[300..])?;
    let report = wait_for_lines(&output, &lines, Duration::from_secs(60)).await?;
    env.note(format!("after the kill ({:?}): {report}", killed_at.elapsed()));
    report.check_complete_at_least_once("sink file")?;
    for name in [&source, &sink] {
        let status = alive.rest.wait_for_status(name, "RUNNING", Duration::from_secs(30)).await?;
        ensure!(
            task_worker(&status, 0).as_deref() == Some(agent.id.as_str()),
            "{name} should still run on {}: {status}",
            agent.id
        );
    }

    // A new leader takes over and schedules new work.
    let survivor_label = alive.replica_id.clone();
    wait_until(Duration::from_secs(30), format!("{survivor_label} to become leader"), || async {
        Ok(alive.logs_leadership().then_some(()))
    })
    .await?;
    env.note(format!("{survivor_label} became leader {:?} after the kill", killed_at.elapsed()));
    let output2 = env.path("output2.txt");
    let sink2 = env.unique("file-sink-2");
    alive.rest.create_connector(&sink2, &file_sink(&output2, &topic)).await?;
    let status =
        alive.rest.wait_for_status(&sink2, "RUNNING", Duration::from_secs(60)).await.context("new connector")?;
    env.note(format!("connector created after the kill: {status}"));
    let report2 = wait_for_lines(&output2, &lines, Duration::from_secs(60)).await?;
    report2.check_complete_at_least_once("second sink file")?;
    env.note(format!("second sink: {report2}; first sink duplicates {}", report.duplicates));
    // Informational: which replicas the agent held its session with (log text is not an interface, no assertion).
    let sessions: Vec<String> =
        agent.process.log_text().lines().filter(|l| l.contains("session")).map(String::from).collect();
    env.note(format!("agent session log lines:\n  {}", sessions.join("\n  ")));
    Ok(())
}
