//! Issue 13, end to end with the real binaries: agents authenticate on their streams by mutual TLS, with the
//! certificates `deploy/tls/make-certs` makes (a CA, the control plane's server certificate, one client certificate
//! per agent, CN = agent id). A real agent with its certificate runs its task; a stock client (grpcurl) that opens
//! the agent stream without a client certificate, or with another agent's certificate, gets no Welcome, no
//! assignment (so no secret), and changes no status and no offset. An agent whose certificate does not cover its
//! id, and one pointed at a control plane that serves a bare self-signed (CA:TRUE) certificate, stop at once with a
//! message that says what to fix. The agent's metrics port: not reachable from other hosts without credentials.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use sluice_integration_tests::kafka::create_topic;
use sluice_integration_tests::tools::install;
use sluice_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_auth() {
    let env = TestEnv::new("agent_auth").await;
    env.finish(run(&env).await);
}

/// `deploy/tls/make-certs` for `agents`; returns the directory.
fn make_certs(env: &TestEnv, agents: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = env.path("tls");
    let script = repo_root().join("deploy/tls/make-certs");
    let mut command = Command::new(&script);
    command.arg("--dir").arg(&dir).args(["--days", "2"]);
    for agent in agents {
        command.args(["--agent", agent]);
    }
    let out = command.output().with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(out.status.success(), "make-certs: {}", String::from_utf8_lossy(&out.stderr));
    Ok(dir)
}

fn path_arg(dir: &std::path::Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// Opens the agent stream with grpcurl (TLS, trusting the CA, plus `extra` flags), sends `messages` and returns
/// (success, stdout, stderr).
fn grpcurl_session(
    grpcurl: &std::path::Path,
    address: &str,
    extra: &[String],
    messages: &[serde_json::Value],
) -> anyhow::Result<(bool, String, String)> {
    let mut child = Command::new(grpcurl)
        .args(["-max-time", "8"])
        .args(extra)
        .args(["-d", "@", address, "sluice.agent.v1.AgentService/Session"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run grpcurl")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    for message in messages {
        writeln!(stdin, "{message}")?;
    }
    drop(stdin);
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Waits until `process` exited, then returns its log.
async fn exited_log(process: &mut Process, what: &str) -> anyhow::Result<String> {
    wait_until(Duration::from_secs(30), format!("{what} to exit"), || {
        let running = process.is_running();
        let log = process.log_text();
        async move { Ok((!running).then_some(log)) }
    })
    .await
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let agent_id = env.unique("agent");
    let other_id = env.unique("other");
    let tls = make_certs(env, &[&agent_id, &other_id])?;
    let args: Vec<String> = vec![
        "--grpc-tls-cert".into(),
        path_arg(&tls, "control-plane.pem"),
        "--grpc-tls-key".into(),
        path_arg(&tls, "control-plane.key"),
        "--agent-tls-client-ca".into(),
        path_arg(&tls, "ca.pem"),
    ];
    let cp =
        ControlPlane::start_replica_with_args(env, &env.unique("mtls"), &env.services.etcd, "cp-mtls", &args).await?;
    let https = format!("https://127.0.0.1:{}", cp.grpc_port);
    let client_args = |id: &str| -> Vec<String> {
        vec![
            "--tls-ca".into(),
            path_arg(&tls, "ca.pem"),
            "--tls-cert".into(),
            path_arg(&tls, &format!("{id}.pem")),
            "--tls-key".into(),
            path_arg(&tls, &format!("{id}.key")),
        ]
    };
    let agent =
        Agent::start_with_args(env, std::slice::from_ref(&https), &agent_id, kafka, &client_args(&agent_id)).await?;

    let topic = env.unique("mtls");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("mtls", 0, 20))?;
    let source = env.unique("mtls-source");
    let mut config = file_source(&input, &topic);
    config["connection.password"] = serde_json::json!("hunter2");
    cp.rest.create_connector(&source, &config).await?;
    cp.rest
        .wait_for_status_matching(&source, "the task RUNNING on the mTLS agent", WAIT, |s| {
            all_in_state(s, "RUNNING") && task_worker(s, 0).as_deref() == Some(agent_id.as_str())
        })
        .await?;
    let offsets_path = format!("/connectors/{source}/offsets");
    let offsets = wait_until(WAIT, "the source's offsets", || async {
        let body = cp.rest.get(&offsets_path).await?.json()?.clone();
        Ok(body.to_string().contains("position").then_some(body))
    })
    .await?;
    env.note(format!("offsets before the rogue clients: {offsets}"));

    // Rogue clients: grpcurl over TLS (it trusts the CA, as anyone may) without a client certificate, then with
    // another agent's certificate, both claiming the live agent's id, reporting FAILED, committing offset 424242 and
    // saying Goodbye for it.
    let grpcurl = tokio::task::spawn_blocking(|| install("install-grpcurl")).await??;
    let address = format!("127.0.0.1:{}", cp.grpc_port);
    let rogue = vec![
        serde_json::json!({"hello": {"agentId": agent_id, "host": "rogue"}}),
        serde_json::json!({"taskStatus": {"id": {"connector": source, "task": 0}, "epoch": "1",
                                          "state": "TASK_STATE_FAILED"}}),
        serde_json::json!({"offsetCommit": {"id": {"connector": source, "task": 0}, "epoch": "1",
            "offsets": [{"partitionJson": format!("{{\"filename\":\"{}\"}}", input.display()),
                         "offsetJson": "{\"position\":424242}"}]}}),
        serde_json::json!({"goodbye": {"reason": "rogue"}}),
    ];
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no client certificate", vec!["-cacert".into(), path_arg(&tls, "ca.pem")], "Unauthenticated"),
        (
            "another agent's certificate",
            vec![
                "-cacert".into(),
                path_arg(&tls, "ca.pem"),
                "-cert".into(),
                path_arg(&tls, &format!("{other_id}.pem")),
                "-key".into(),
                path_arg(&tls, &format!("{other_id}.key")),
            ],
            "PermissionDenied",
        ),
    ];
    for (what, flags, code) in cases {
        let (grpcurl, address, rogue) = (grpcurl.clone(), address.clone(), rogue.clone());
        let (success, stdout, stderr) =
            tokio::task::spawn_blocking(move || grpcurl_session(&grpcurl, &address, &flags, &rogue)).await??;
        env.note(format!("rogue stream with {what}: {}", stderr.trim()));
        ensure!(!success, "the rogue stream with {what} succeeded: {stdout}");
        ensure!(stderr.contains(code), "the rogue stream with {what} should fail with {code}: {stderr}");
        ensure!(
            !stdout.contains("welcome") && !stdout.contains("assignment") && !stdout.contains("hunter2"),
            "the rogue stream with {what} received something: {stdout}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = cp.rest.status(&source).await?;
    ensure!(
        all_in_state(&status, "RUNNING") && task_worker(&status, 0).as_deref() == Some(agent_id.as_str()),
        "the rogue streams changed the status: {status}"
    );
    let after = cp.rest.get(&offsets_path).await?.json()?.clone();
    ensure!(!after.to_string().contains("424242"), "the rogue offset was committed: {after}");
    ensure!(!cp.process.log_text().contains("hunter2"), "the control plane logged the secret");

    // An agent whose certificate is another agent's stops at once, saying why.
    let impostor_id = env.unique("impostor");
    let mut impostor =
        Agent::start_with_args(env, std::slice::from_ref(&https), &impostor_id, kafka, &client_args(&other_id)).await?;
    let log = exited_log(&mut impostor.process, "the agent with another agent's certificate").await?;
    ensure!(log.contains("refused this agent") && log.contains("may not act as agent"), "{log}");
    ensure!(!log.contains("session established"), "the impostor got a session: {log}");
    let status = cp.rest.status(&source).await?;
    ensure!(task_worker(&status, 0).as_deref() == Some(agent_id.as_str()), "the task moved: {status}");
    drop(agent);

    self_signed_ca_fails_fast(env).await?;
    metrics_port(env, &cp).await
}

/// Issue 13, finding 5: a control plane serving the certificate a bare `openssl req -x509` makes (CA:TRUE); the
/// agent trusting it stops within seconds with a message that names the problem and the fix, instead of retrying.
async fn self_signed_ca_fails_fast(env: &TestEnv) -> anyhow::Result<()> {
    let (cert, key) = (env.path("self-signed.pem"), env.path("self-signed.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    ensure!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let args: Vec<String> = vec!["--grpc-tls-cert".into(), cert.clone(), "--grpc-tls-key".into(), key];
    let cp = ControlPlane::start_replica_with_args(env, &env.unique("selfsigned"), &env.services.etcd, "cp-ss", &args)
        .await?;
    let https = format!("https://127.0.0.1:{}", cp.grpc_port);
    let mut agent = Agent::start_with_args(
        env,
        &[https],
        &env.unique("ss-agent"),
        &env.services.kafka,
        &["--tls-ca".to_string(), cert],
    )
    .await?;
    let log = exited_log(&mut agent.process, "the agent trusting a CA:TRUE server certificate").await?;
    ensure!(log.contains("CaUsedAsEndEntity") && log.contains("deploy/tls/make-certs"), "{log}");
    Ok(())
}

/// Issue 13, finding 4: the metrics port refuses to listen beyond loopback without credentials; with a token it
/// requires it everywhere but `/health`.
async fn metrics_port(env: &TestEnv, cp: &ControlPlane) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let port = free_port();
    let mut open = Agent::start_with_args(
        env,
        &[cp.grpc_endpoint()],
        &env.unique("metrics-open"),
        kafka,
        &["--metrics-listen".to_string(), format!("0.0.0.0:{port}")],
    )
    .await?;
    let log = exited_log(&mut open.process, "the agent with an open metrics port").await?;
    ensure!(log.contains("--metrics-auth-token"), "{log}");

    let port = free_port();
    let tls = env.path("tls");
    let mut args = vec![
        "--tls-ca".to_string(),
        path_arg(&tls, "ca.pem"),
        "--metrics-listen".to_string(),
        format!("0.0.0.0:{port}"),
        "--metrics-auth-token".to_string(),
        "m3trics".to_string(),
    ];
    let other = env.unique("other");
    args.extend(["--tls-cert".into(), path_arg(&tls, &format!("{other}.pem"))]);
    args.extend(["--tls-key".into(), path_arg(&tls, &format!("{other}.key"))]);
    let _agent =
        Agent::start_with_args(env, &[format!("https://127.0.0.1:{}", cp.grpc_port)], &other, kafka, &args).await?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = wait_until(Duration::from_secs(30), "the agent's /health", || {
        let (client, base) = (client.clone(), base.clone());
        async move { Ok(client.get(format!("{base}/health")).send().await.ok().map(|r| r.status().as_u16())) }
    })
    .await?;
    ensure!(health == 200 || health == 503, "/health without credentials: {health}");
    for path in ["/metrics", "/admin/loggers"] {
        let status = client.get(format!("{base}{path}")).send().await?.status().as_u16();
        ensure!(status == 401, "{path} without credentials: {status}");
        let status = client.get(format!("{base}{path}")).bearer_auth("wrong").send().await?.status().as_u16();
        ensure!(status == 401, "{path} with a wrong token: {status}");
        let status = client.get(format!("{base}{path}")).bearer_auth("m3trics").send().await?.status().as_u16();
        ensure!(status == 200, "{path} with the token: {status}");
    }
    Ok(())
}
