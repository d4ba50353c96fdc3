//! etcd's limits and requests that must be refused as the client's fault (4xx), checked before anything is
//! written, against a real etcd: a 1.9 MB config value (413), a 1,000,000-character name (400), a `tasks.max` far
//! above the maximum (400, without the control plane allocating for it), and a connector with 1,000 tasks, which
//! one etcd transaction per task config could not store (etcd allows 128 operations per transaction).

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::{Value, json};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_limits() {
    let env = TestEnv::new("rest_limits").await;
    env.finish(run(&env).await);
}

fn sink(env: &TestEnv, tasks: u64) -> Value {
    json!({
        "connector.class": "FileStreamSink",
        "file": env.path("out.txt").display().to_string(),
        "topics": env.unique("topic"),
        "tasks.max": tasks.to_string(),
    })
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let cp = ControlPlane::start(env, &env.unique("limits"), &env.services.etcd).await?;
    let rest = &cp.rest;

    // A 1.9 MB value: 413 with Kafka Connect's error body, nothing stored.
    let big = env.unique("big");
    let mut config = sink(env, 1);
    config["padding"] = Value::from("x".repeat(1_900_000));
    let reply = rest.post("/connectors", &json!({"name": big, "config": config})).await?;
    let message = reply.expect_error(413, "POST /connectors with a 1.9 MB value")?;
    ensure!(message.contains("too large") && message.contains("padding"), "413 message: {message}");
    env.note(format!("1.9 MB config value -> 413 {:.120}", message));
    let reply = rest.put(&format!("/connectors/{big}/config"), &config).await?;
    reply.expect_error(413, "PUT config with a 1.9 MB value")?;
    rest.get(&format!("/connectors/{big}")).await?.expect_error(404, "nothing was stored")?;

    // A 1,000,000-character name: 400.
    let long = "n".repeat(1_000_000);
    let reply = rest.post("/connectors", &json!({"name": long, "config": sink(env, 1)})).await?;
    let message = reply.expect_error(400, "POST /connectors with a 1,000,000-character name")?;
    ensure!(message.contains("too long"), "400 message: {message}");
    env.note(format!("1,000,000-character name -> 400 {message}"));
    ensure!(rest.connector_names().await?.is_empty(), "nothing was stored");

    // tasks.max=1000000: 400 at once.
    let started = Instant::now();
    let reply =
        rest.post("/connectors", &json!({"name": env.unique("million"), "config": sink(env, 1_000_000)})).await?;
    let message = reply.expect_error(400, "tasks.max=1000000")?;
    ensure!(message.contains("tasks.max") && message.contains("4096"), "400 message: {message}");
    ensure!(started.elapsed() < Duration::from_secs(2), "tasks.max=1000000 took {:?}", started.elapsed());
    env.note(format!("tasks.max=1000000 -> 400 in {:?}: {message}", started.elapsed()));

    // 1,000 tasks: created, listed, restarted, stopped, resumed and deleted through etcd.
    let wide = env.unique("wide");
    let started = Instant::now();
    let reply = rest.post("/connectors", &json!({"name": wide, "config": sink(env, 1000)})).await?;
    reply.expect_status(201, "a sink with tasks.max=1000")?;
    ensure!(reply.json()?["tasks"].as_array().map_or(0, Vec::len) == 1000, "1000 task ids in the answer");
    let tasks = rest.get(&format!("/connectors/{wide}/tasks")).await?;
    tasks.expect_status(200, "GET tasks")?;
    ensure!(tasks.json()?.as_array().map_or(0, Vec::len) == 1000, "GET /tasks lists 1000 tasks");
    let status = rest.status(&wide).await?;
    ensure!(status["tasks"].as_array().map_or(0, Vec::len) == 1000, "status lists 1000 tasks");
    rest.post(&format!("/connectors/{wide}/restart?includeTasks=true"), &json!({}))
        .await?
        .expect_status(202, "restart 1000 tasks")?;
    rest.put(&format!("/connectors/{wide}/stop"), &json!({})).await?.expect_status(204, "stop")?;
    rest.put(&format!("/connectors/{wide}/resume"), &json!({})).await?.expect_status(202, "resume")?;
    let tasks = rest.get(&format!("/connectors/{wide}/tasks")).await?;
    ensure!(tasks.json()?.as_array().map_or(0, Vec::len) == 1000, "1000 tasks after resume");
    rest.delete(&format!("/connectors/{wide}")).await?.expect_status(204, "delete")?;
    env.note(format!("tasks.max=1000: create, list, restart, stop, resume, delete in {:?}", started.elapsed()));
    Ok(())
}
