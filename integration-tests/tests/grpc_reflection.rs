//! The gRPC side with a stock client: `grpcurl` lists the services through server reflection, describes the admin
//! API, creates a connector and reads its status, and gets gRPC status codes with Kafka Connect's messages.
//! grpcurl is installed on first use by integration-tests/tools/install-grpcurl (cached under ~/.cache/sluice/bin).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::create_topic;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_reflection() {
    let env = TestEnv::new("grpc_reflection").await;
    env.finish(run(&env).await);
}

struct Grpcurl {
    program: PathBuf,
    address: String,
}

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Grpcurl {
    /// `grpcurl -plaintext FLAGS... ADDRESS VERB_OR_METHOD...` (grpcurl wants its flags before the address).
    fn run(&self, flags: &[&str], positional: &[&str]) -> anyhow::Result<Output> {
        let output = Command::new(&self.program)
            .args(["-plaintext", "-max-time", "10"])
            .args(flags)
            .arg(&self.address)
            .args(positional)
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        Ok(Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// `grpcurl -plaintext [-d body] ADDRESS METHOD`, expecting success and a JSON answer.
    fn call(&self, method: &str, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let out = self.run(&["-d", &body], &[method])?;
        if !out.success {
            bail!("grpcurl {method} {body} failed: {}{}", out.stdout, out.stderr);
        }
        serde_json::from_str(&out.stdout).with_context(|| format!("grpcurl {method}: not JSON: {}", out.stdout))
    }
}

fn install_grpcurl() -> anyhow::Result<PathBuf> {
    let script = repo_root().join("integration-tests/tools/install-grpcurl");
    let output = Command::new(&script).output().with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    ensure!(Path::new(&path).is_file(), "install-grpcurl printed {path:?}, which is not a file");
    Ok(path)
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let program = tokio::task::spawn_blocking(install_grpcurl).await??;
    env.note(format!("grpcurl: {}", program.display()));
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("grpc"), &env.services.etcd).await?;
    let agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let grpcurl = Grpcurl { program, address: format!("127.0.0.1:{}", cp.grpc_port) };

    let list = grpcurl.run(&[], &["list"])?;
    ensure!(list.success, "grpcurl list failed: {}{}", list.stdout, list.stderr);
    let services: Vec<&str> = list.stdout.lines().map(str::trim).collect();
    for service in ["sluice.admin.v1.AdminService", "sluice.agent.v1.AgentService"] {
        ensure!(services.contains(&service), "grpcurl list does not show {service}: {services:?}");
    }

    let describe = grpcurl.run(&[], &["describe", "sluice.admin.v1.AdminService"])?;
    ensure!(describe.success, "grpcurl describe failed: {}{}", describe.stdout, describe.stderr);
    for rpc in ["rpc CreateConnector", "rpc GetConnectorStatus", "rpc ListConnectors"] {
        ensure!(describe.stdout.contains(rpc), "describe lacks `{rpc}`:\n{}", describe.stdout);
    }
    let describe = grpcurl.run(&[], &["describe", "sluice.admin.v1.CreateConnectorRequest"])?;
    ensure!(
        describe.success && describe.stdout.contains("config"),
        "describe CreateConnectorRequest: {}{}",
        describe.stdout,
        describe.stderr
    );

    let topic = env.unique("grpc");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("grpc", 0, 100);
    append_lines(&input, &lines)?;
    let source = env.unique("grpc-source");
    let sink = env.unique("grpc-sink");
    let info = grpcurl.call(
        "sluice.admin.v1.AdminService/CreateConnector",
        &json!({"name": source, "config": file_source(&input, &topic)}),
    )?;
    env.note(format!("CreateConnector -> {info}"));
    ensure!(info["name"] == source.as_str(), "CreateConnector answer: {info}");
    ensure!(info["type"] == "source", "CreateConnector answer type: {info}");
    ensure!(info["config"]["topic"] == topic.as_str(), "CreateConnector answer config: {info}");
    grpcurl.call(
        "sluice.admin.v1.AdminService/CreateConnector",
        &json!({"name": sink, "config": file_sink(&output, &topic)}),
    )?;

    // Poll GetConnectorStatus over gRPC until the source task runs on our agent.
    let status = wait_until(Duration::from_secs(60), "GetConnectorStatus to show the task RUNNING", || async {
        let status = grpcurl.call("sluice.admin.v1.AdminService/GetConnectorStatus", &json!({"name": source}))?;
        let task = &status["tasks"][0];
        let worker = task.get("workerId").or_else(|| task.get("worker_id"));
        let running = status["connector"]["state"] == "RUNNING"
            && task["state"] == "RUNNING"
            && worker.and_then(Value::as_str) == Some(agent.id.as_str());
        Ok(running.then_some(status))
    })
    .await?;
    env.note(format!("GetConnectorStatus -> {status}"));
    ensure!(status["name"] == source.as_str() && status["type"] == "source", "GetConnectorStatus: {status}");

    // Same service layer behind REST: the connector is there and the data flows.
    let rest_status = cp.rest.wait_for_status(&sink, "RUNNING", Duration::from_secs(60)).await?;
    env.note(format!("REST status of the gRPC-created sink: {rest_status}"));
    wait_for_lines(&output, &lines, Duration::from_secs(60)).await?.check_exact("sink file")?;

    // Errors carry gRPC codes and Kafka Connect's messages.
    let body = json!({"name": source, "config": file_source(&input, &topic)}).to_string();
    let dup = grpcurl.run(&["-d", &body], &["sluice.admin.v1.AdminService/CreateConnector"])?;
    ensure!(!dup.success, "a duplicate CreateConnector succeeded: {}", dup.stdout);
    ensure!(
        dup.stderr.contains("AlreadyExists") && dup.stderr.contains(&format!("Connector {source} already exists")),
        "duplicate CreateConnector: expected AlreadyExists / `Connector {source} already exists`, got: {}",
        dup.stderr
    );
    let ghost = env.unique("ghost");
    let body = json!({"name": ghost}).to_string();
    let missing = grpcurl.run(&["-d", &body], &["sluice.admin.v1.AdminService/GetConnectorStatus"])?;
    ensure!(!missing.success, "GetConnectorStatus of an unknown connector succeeded: {}", missing.stdout);
    ensure!(
        missing.stderr.contains("NotFound")
            && missing.stderr.contains(&format!("No status found for connector {ghost}")),
        "unknown connector: expected NotFound / `No status found for connector {ghost}`, got: {}",
        missing.stderr
    );
    Ok(())
}
