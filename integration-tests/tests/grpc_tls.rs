//! TLS on the gRPC port, off by default: started with `--grpc-tls-cert`/`--grpc-tls-key` (a server certificate for
//! 127.0.0.1/localhost signed by the test's own CA, made by deploy/tls/make-certs), the control plane serves the agent
//! streams, the admin API and reflection over TLS only. An agent given `--tls-ca` and an `https://` address runs a
//! FileStreamSource whose records reach Kafka; grpcurl with `-cacert` (a client we did not write) lists the
//! services; a plaintext grpcurl, a plaintext agent and an agent that does not trust the CA all fail.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use sluice_integration_tests::kafka::{count_records, create_topic};
use sluice_integration_tests::tools::{Output, install};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_tls() {
    let env = TestEnv::new("grpc_tls").await;
    env.finish(run(&env).await);
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it, made by `deploy/tls/make-certs` (the
/// script the README tells operators to use): (ca.pem, control-plane.pem, control-plane.key).
fn certificates(env: &TestEnv) -> anyhow::Result<(String, String, String)> {
    let dir = env.path("tls");
    let script = repo_root().join("deploy/tls/make-certs");
    let out = Command::new(&script)
        .arg("--dir")
        .arg(&dir)
        .args(["--days", "1", "--san", "IP:127.0.0.1,DNS:localhost"])
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(out.status.success(), "make-certs: {}", String::from_utf8_lossy(&out.stderr));
    let path = |file: &str| dir.join(file).display().to_string();
    Ok((path("ca.pem"), path("control-plane.pem"), path("control-plane.key")))
}

/// Waits until the agent's log shows a failed connection attempt, then checks it never established a session.
async fn expect_rejected(agent: &mut Agent, what: &str) -> anyhow::Result<String> {
    let failure = wait_until(Duration::from_secs(30), format!("{what} to fail connecting"), || {
        let log = agent.process.log_text();
        async move {
            let failed = log.lines().find(|l| {
                l.contains("cannot connect to the control plane")
                    || l.contains("refused this agent")
                    || l.contains("session refused")
                    || l.contains("session handshake failed")
            });
            Ok(failed.map(str::to_string))
        }
    })
    .await?;
    ensure!(!agent.process.log_text().contains("session established"), "{what} established a session");
    Ok(failure)
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let (ca, cert, key) = certificates(env)?;
    let kafka = env.services.kafka.as_str();
    let args: Vec<String> = ["--grpc-tls-cert", &cert, "--grpc-tls-key", &key].iter().map(|s| s.to_string()).collect();
    let cp =
        ControlPlane::start_replica_with_args(env, &env.unique("tls"), &env.services.etcd, "cp-tls", &args).await?;
    let https = format!("https://127.0.0.1:{}", cp.grpc_port);
    let agent_id = env.unique("agent");
    let ca_args = vec!["--tls-ca".to_string(), ca.clone()];
    let agent = Agent::start_with_args(env, std::slice::from_ref(&https), &agent_id, kafka, &ca_args).await?;

    let topic = env.unique("tls");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let lines = numbered_lines("tls", 0, 50);
    append_lines(&input, &lines)?;
    let source = env.unique("tls-source");
    cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    let status = cp
        .rest
        .wait_for_status_matching(&source, "the task RUNNING on the TLS agent", Duration::from_secs(60), |s| {
            all_in_state(s, "RUNNING") && task_worker(s, 0).as_deref() == Some(agent_id.as_str())
        })
        .await?;
    env.note(format!("status over a TLS agent stream: {status}"));
    let count = wait_until(Duration::from_secs(60), "all records in Kafka", || async {
        let count = count_records(kafka, &topic).await?;
        Ok((count >= lines.len() as i64).then_some(count))
    })
    .await?;
    ensure!(count == lines.len() as i64, "{count} records in {topic}, expected {}", lines.len());
    ensure!(agent.process.log_text().contains("session established"), "the TLS agent logged no session");

    // A stock client: grpcurl trusting the CA lists the services over TLS; without TLS it gets nothing.
    let grpcurl = tokio::task::spawn_blocking(|| install("install-grpcurl")).await??;
    let address = format!("127.0.0.1:{}", cp.grpc_port);
    let grpcurl_run = |flags: &[&str]| -> anyhow::Result<Output> {
        let out = Command::new(&grpcurl).args(["-max-time", "10"]).args(flags).arg(&address).arg("list").output()?;
        Ok(Output::of(out))
    };
    let list = grpcurl_run(&["-cacert", &ca])?;
    ensure!(list.success, "grpcurl -cacert list failed: {}{}", list.stdout, list.stderr);
    let services: Vec<&str> = list.stdout.lines().map(str::trim).collect();
    for service in ["sluice.admin.v1.AdminService", "sluice.agent.v1.AgentService"] {
        ensure!(services.contains(&service), "grpcurl list does not show {service}: {services:?}");
    }
    let localhost = Command::new(&grpcurl)
        .args(["-max-time", "10", "-cacert", &ca])
        .arg(format!("localhost:{}", cp.grpc_port))
        .arg("list")
        .output()?;
    ensure!(localhost.status.success(), "grpcurl via localhost: {}", String::from_utf8_lossy(&localhost.stderr));
    let plain = grpcurl_run(&["-plaintext"])?;
    ensure!(!plain.success, "plaintext grpcurl against the TLS port succeeded: {}", plain.stdout);
    env.note(format!("plaintext grpcurl: {}", plain.stderr.trim()));
    let untrusted = grpcurl_run(&[])?;
    ensure!(!untrusted.success, "grpcurl without the CA succeeded: {}", untrusted.stdout);

    // Agents that speak plaintext, or do not trust the CA (https:// with the default roots), never get a session.
    let http = format!("http://127.0.0.1:{}", cp.grpc_port);
    let mut plain_agent = Agent::start(env, &[http], &env.unique("plain-agent"), kafka).await?;
    let mut untrusting_agent = Agent::start(env, &[https], &env.unique("no-ca-agent"), kafka).await?;
    let failure = expect_rejected(&mut plain_agent, "the plaintext agent").await?;
    env.note(format!("plaintext agent: {failure}"));
    let failure = expect_rejected(&mut untrusting_agent, "the agent without --tls-ca").await?;
    env.note(format!("agent without --tls-ca: {failure}"));
    ensure!(
        failure.to_lowercase().contains("certificate") || failure.contains("UnknownIssuer"),
        "the agent without --tls-ca should fail on the certificate: {failure}"
    );
    let status = cp.rest.status(&source).await?;
    ensure!(task_worker(&status, 0).as_deref() == Some(agent_id.as_str()), "the task moved: {status}");
    drop(agent);
    Ok(())
}
