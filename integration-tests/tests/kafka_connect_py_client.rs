//! A Kafka Connect client we did not write: the `kafka-connect` CLI of kafka-connect-py (PyPI, installed by
//! integration-tests/tools/install-kafka-connect-py) drives a connector through its whole life against Sluice's
//! REST gateway: info, plugins, create, list, get, config, status, pause, resume, restart, tasks, topics, delete.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::tools::{Output, python_tools};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_connect_py_client() {
    let env = TestEnv::new("kafka_connect_py_client").await;
    env.finish(run(&env).await);
}

struct Cli {
    program: std::path::PathBuf,
    url: String,
}

impl Cli {
    /// Runs `kafka-connect ARGS...`, expecting success; returns stdout.
    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new(&self.program);
        command.args(args).env("KAFKA_CONNECT_URL", &self.url).env("NO_COLOR", "1");
        let what = format!("kafka-connect {}", args.join(" "));
        let out = Output::of(
            tokio::task::spawn_blocking(move || command.output()).await?.context("cannot run kafka-connect")?,
        );
        ensure!(out.success, "{what} failed: {}{}", out.stdout, out.stderr);
        ensure!(!out.stdout.contains("Client Error") && !out.stdout.contains("Server Error"), "{what}: {}", out.stdout);
        Ok(out.stdout)
    }

    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = self.run(args).await?;
        serde_json::from_str(out.trim()).with_context(|| format!("kafka-connect {}: not JSON: {out}", args.join(" ")))
    }

    async fn wait_state(&self, name: &str, state: &str) -> anyhow::Result<Value> {
        wait_until(Duration::from_secs(60), format!("kafka-connect status {name} to show {state}"), || async {
            let status = self.json(&["status", name]).await?;
            Ok(all_in_state(&status, state).then_some(status))
        })
        .await
    }
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let bin = python_tools().await?;
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("kcpy"), &env.services.etcd).await?;
    let agent_id = env.unique("agent");
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &agent_id, kafka).await?;
    let cli = Cli { program: bin.join("kafka-connect"), url: cp.rest.base().to_string() };

    let info = cli.json(&["info"]).await?;
    ensure!(info["version"].is_string() && info["kafka_cluster_id"].is_string(), "info: {info}");
    let plugins = cli.run(&["list-plugins"]).await?;
    ensure!(plugins.contains("org.apache.kafka.connect.file.FileStreamSourceConnector"), "list-plugins: {plugins}");

    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("py", 0, 10))?;
    let name = env.unique("py-source");
    let topic = env.unique("py-topic");
    let create = json!({"name": name, "config": file_source(&input, &topic)}).to_string();
    let created = cli.json(&["create", "-d", &create]).await?;
    ensure!(created["name"] == name.as_str() && created["type"] == "source", "create: {created}");
    let list = cli.json(&["list"]).await?;
    ensure!(list == json!([name]), "list: {list}");
    let expanded = cli.json(&["list", "-e", "status"]).await?;
    ensure!(expanded[name.as_str()]["status"]["name"] == name.as_str(), "list -e status: {expanded}");
    let got = cli.json(&["get", &name]).await?;
    ensure!(got["config"]["topic"] == topic.as_str(), "get: {got}");
    let config = cli.json(&["config", &name]).await?;
    ensure!(config["connector.class"] == "FileStreamSource", "config: {config}");

    let status = cli.wait_state(&name, "RUNNING").await?;
    ensure!(task_worker(&status, 0).as_deref() == Some(agent_id.as_str()), "status: {status}");
    cli.run(&["pause", &name]).await?;
    cli.wait_state(&name, "PAUSED").await?;
    cli.run(&["resume", &name]).await?;
    cli.wait_state(&name, "RUNNING").await?;
    cli.run(&["restart", &name]).await?;
    cli.run(&["restart", "--include-tasks", &name]).await?;
    cli.wait_state(&name, "RUNNING").await?;
    let tasks = cli.json(&["list-tasks", &name]).await?;
    ensure!(tasks[0]["id"]["task"] == 0, "list-tasks: {tasks}");
    let task = cli.json(&["task-status", &name, "0"]).await?;
    ensure!(task["state"] == "RUNNING", "task-status: {task}");
    let topics = wait_until(Duration::from_secs(30), "list-topics to show the topic", || async {
        let topics = cli.json(&["list-topics", &name]).await?;
        Ok((topics[name.as_str()]["topics"] == json!([topic])).then_some(topics))
    })
    .await?;
    env.note(format!("list-topics: {topics}"));

    cli.run(&["delete", &name]).await?;
    let list = cli.json(&["list"]).await?;
    ensure!(list == json!([]), "list after delete: {list}");
    Ok(())
}
