//! `PUT /admin/loggers/{name}?scope=cluster` changes the log level of every process of the cluster for real: both
//! control-plane replicas (whichever answered) and the agents connected to either, seen in their logs (debug lines
//! of a known logger appear, then stop after the level is set back) and in `GET /admin/loggers` (the agents' on
//! their metrics port). As in Kafka Connect, a process started after the change keeps its own level, and
//! `scope=worker` changes only the replica that answers.

use std::time::Duration;

use anyhow::ensure;
use serde_json::{Value, json};
use sluice_integration_tests::*;

const WAIT: Duration = Duration::from_secs(30);
/// A debug line the control plane writes for every REST request (logger `sluice_control_plane::rest`).
const CP_DEBUG: &str = "rest request";
/// A debug line an agent writes for every acknowledged heartbeat, twice a second (logger `sluice_agent::session`).
const AGENT_DEBUG: &str = "heartbeat acknowledged";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_log_levels() {
    let env = TestEnv::new("cluster_log_levels").await;
    env.finish(run(&env).await);
}

/// An agent with its metrics port (where `/admin/loggers` is served).
async fn agent(env: &TestEnv, control_plane: &ControlPlane, id: &str) -> anyhow::Result<(Agent, RestClient)> {
    let port = free_port();
    let args = vec!["--metrics-listen".to_string(), format!("127.0.0.1:{port}")];
    let agent = Agent::start_with_args(env, &[control_plane.grpc_endpoint()], id, &env.services.kafka, &args).await?;
    wait_until(WAIT, format!("{id} to establish its session"), || {
        let established = agent.process.log_text().contains("session established");
        async move { Ok(established.then_some(())) }
    })
    .await?;
    Ok((agent, RestClient::new(format!("http://127.0.0.1:{port}"))))
}

fn count(log: &str, line: &str) -> usize {
    log.matches(line).count()
}

/// The level `name` has in `GET /admin/loggers` of `rest`, if it has one.
async fn level_of(rest: &RestClient, name: &str) -> anyhow::Result<Option<String>> {
    let reply = rest.get("/admin/loggers").await?;
    reply.expect_status(200, "GET /admin/loggers")?;
    Ok(reply.json()?[name]["level"].as_str().map(str::to_string))
}

async fn set_cluster_level(rest: &RestClient, name: &str, level: &str) -> anyhow::Result<()> {
    let reply = rest.put(&format!("/admin/loggers/{name}?scope=cluster"), &json!({ "level": level })).await?;
    reply.expect_status(204, &format!("PUT {name}={level} at cluster scope"))?;
    ensure!(reply.body.is_empty(), "204 with a body: {}", reply.body);
    Ok(())
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let cluster = env.unique("loggers");
    let cp_a = ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp-a").await?;
    let cp_b = ControlPlane::start_replica(env, &cluster, &env.services.etcd, "cp-b").await?;
    // Each agent on its own replica: a level set through A must reach B's agent through B.
    let (agent_a, agent_a_rest) = agent(env, &cp_a, &env.unique("agent-a")).await?;
    let (agent_b, agent_b_rest) = agent(env, &cp_b, &env.unique("agent-b")).await?;
    ensure!(count(&cp_b.process.log_text(), CP_DEBUG) == 0, "control-plane debug lines before the change");
    for agent in [&agent_a, &agent_b] {
        ensure!(count(&agent.process.log_text(), AGENT_DEBUG) == 0, "{}: debug lines before the change", agent.id);
    }
    // Every module is listed (issue 12 item 9), at the level it logs at: the startup level before the change.
    let before = level_of(&agent_a_rest, "sluice_agent").await?;
    ensure!(before.as_deref() != Some("DEBUG"), "agent logger at DEBUG before the change: {before:?}");

    // DEBUG at cluster scope, asked of replica A.
    set_cluster_level(&cp_a.rest, "sluice_control_plane", "DEBUG").await?;
    set_cluster_level(&cp_a.rest, "sluice_agent", "DEBUG").await?;
    ensure!(level_of(&cp_a.rest, "sluice_control_plane").await?.as_deref() == Some("DEBUG"), "replica A's level");
    wait_until(WAIT, "replica B to apply the cluster level", || async {
        Ok((level_of(&cp_b.rest, "sluice_control_plane").await?.as_deref() == Some("DEBUG")).then_some(()))
    })
    .await?;
    let level: Value = cp_b.rest.get("/admin/loggers/sluice_control_plane").await?.json()?.clone();
    ensure!(level["last_modified"].is_i64(), "replica B's level has no last_modified: {level}");
    wait_until(WAIT, "debug lines in replica B's log", || async {
        cp_b.rest.get("/connectors").await?;
        Ok((count(&cp_b.process.log_text(), CP_DEBUG) > 0).then_some(()))
    })
    .await?;
    for (agent, rest) in [(&agent_a, &agent_a_rest), (&agent_b, &agent_b_rest)] {
        wait_until(WAIT, format!("debug lines in {}'s log", agent.id), || async {
            Ok((count(&agent.process.log_text(), AGENT_DEBUG) > 0).then_some(()))
        })
        .await?;
        let level = level_of(rest, "sluice_agent").await?;
        ensure!(level.as_deref() == Some("DEBUG"), "{}'s GET /admin/loggers: {level:?}", agent.id);
    }
    env.note("DEBUG at cluster scope reached both replicas and both agents");

    // A process that starts later keeps its own level, as a Kafka Connect worker does.
    let (late, late_rest) = agent(env, &cp_a, &env.unique("agent-late")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(count(&late.process.log_text(), AGENT_DEBUG) == 0, "the late agent applied a level set before it started");
    let late_level = level_of(&late_rest, "sluice_agent").await?;
    ensure!(late_level.as_deref() != Some("DEBUG"), "the late agent has the cluster level: {late_level:?}");

    // scope=worker: only the replica that answers.
    let reply = cp_b.rest.put("/admin/loggers/sluice_control_plane::leader", &json!({"level": "WARN"})).await?;
    reply.expect_status(200, "PUT at worker scope")?;
    ensure!(reply.json()? == &json!(["sluice_control_plane::leader"]), "changed loggers: {}", reply.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Replica A lists the module too (every module is a logger), at the level it had: DEBUG from the cluster-wide
    // change above, not WARN.
    let on_a = cp_a.rest.get("/admin/loggers/sluice_control_plane::leader").await?;
    ensure!(
        on_a.status == 200 && on_a.json()?["level"] != "WARN",
        "worker scope reached replica A: {} {}",
        on_a.status,
        on_a.body
    );

    // Back to INFO at cluster scope, asked of replica B this time; the late agent applies this one.
    set_cluster_level(&cp_b.rest, "sluice_agent", "INFO").await?;
    set_cluster_level(&cp_b.rest, "sluice_control_plane", "INFO").await?;
    for rest in [&cp_a.rest, &cp_b.rest] {
        wait_until(WAIT, format!("{} back at INFO", rest.base()), || async {
            Ok((level_of(rest, "sluice_control_plane").await?.as_deref() == Some("INFO")).then_some(()))
        })
        .await?;
    }
    for (agent, rest) in [(&agent_a, &agent_a_rest), (&agent_b, &agent_b_rest), (&late, &late_rest)] {
        wait_until(WAIT, format!("{} back at INFO", agent.id), || async {
            Ok((level_of(rest, "sluice_agent").await?.as_deref() == Some("INFO")).then_some(()))
        })
        .await?;
    }
    // A line that passed the filter just before the change may still be on its way to the file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<usize> = [&agent_a, &agent_b].iter().map(|a| count(&a.process.log_text(), AGENT_DEBUG)).collect();
    let cp_before = count(&cp_a.process.log_text(), CP_DEBUG);
    for _ in 0..3 {
        cp_a.rest.get("/connectors").await?;
    }
    // Four heartbeats' time: at DEBUG each agent would have written more lines.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after: Vec<usize> = [&agent_a, &agent_b].iter().map(|a| count(&a.process.log_text(), AGENT_DEBUG)).collect();
    ensure!(before == after, "agent debug lines kept coming after INFO: {before:?} -> {after:?}");
    ensure!(count(&cp_a.process.log_text(), CP_DEBUG) == cp_before, "replica A's debug lines kept coming after INFO");
    Ok(())
}
