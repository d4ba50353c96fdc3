//! Authentication of the admin APIs, off by default: started with `--rest-auth-token` and `--rest-basic-auth`, the
//! control plane answers 401 in Kafka Connect's error format without credentials or with wrong ones, on REST and on
//! the admin gRPC service (UNAUTHENTICATED), accepts either credential, keeps `GET /health` open for probes, and
//! agents keep working (their stream is not an admin API). With `--tls-cert`/`--tls-key` the REST API is HTTPS
//! (checked with curl, a client we did not write, trusting the test's own self-signed certificate).
//! `sluice-standalone` takes the same flags: HTTPS on an `https://` listener, the same 401 answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::cluster::worker_entries;
use sluice_integration_tests::tools::Grpcurl;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_auth() {
    let env = TestEnv::new("rest_auth").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let args: Vec<String> =
        ["--rest-auth-token", "t0ken", "--rest-basic-auth", "admin:pa55"].iter().map(|s| s.to_string()).collect();
    let cp = ControlPlane::start_replica_with_args(env, &env.unique("auth"), &env.services.etcd, "cp", &args).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), &env.services.kafka).await?;
    let base = cp.rest.base().to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(35)).build()?;

    let reply = http.get(format!("{base}/connectors")).send().await?;
    ensure!(reply.status() == 401, "no credentials: {}", reply.status());
    ensure!(reply.headers().get("www-authenticate").is_some(), "401 without WWW-Authenticate");
    let body: Value = reply.json().await?;
    ensure!(body["error_code"] == 401 && body["message"].is_string(), "401 body: {body}");
    let reply = http.get(format!("{base}/connectors")).bearer_auth("wrong").send().await?;
    ensure!(reply.status() == 401, "wrong token: {}", reply.status());
    let reply = http.get(format!("{base}/connectors")).basic_auth("admin", Some("nope")).send().await?;
    ensure!(reply.status() == 401, "wrong password: {}", reply.status());
    let reply = http.get(format!("{base}/health")).send().await?;
    ensure!(reply.status() == 200, "GET /health must stay open: {}", reply.status());

    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("auth", 0, 5))?;
    let name = env.unique("authed");
    let create = json!({"name": name, "config": file_source(&input, &env.unique("topic"))});
    let reply = http.post(format!("{base}/connectors")).bearer_auth("t0ken").json(&create).send().await?;
    ensure!(reply.status() == 201, "create with the token: {}", reply.status());
    let status = wait_until(Duration::from_secs(60), "the task to run", || async {
        let reply =
            http.get(format!("{base}/connectors/{name}/status")).basic_auth("admin", Some("pa55")).send().await?;
        let status: Value = reply.json().await?;
        Ok(all_in_state(&status, "RUNNING").then_some(status))
    })
    .await?;
    env.note(format!("status with basic credentials: {status}"));

    let grpcurl = Grpcurl::new(format!("127.0.0.1:{}", cp.grpc_port)).await?;
    let failure = grpcurl.fail("sluice.admin.v1.AdminService/ListConnectors", &json!({}))?;
    ensure!(failure.contains("Unauthenticated"), "gRPC without credentials: {failure}");
    let out = std::process::Command::new(&grpcurl.program)
        .args(["-plaintext", "-max-time", "20", "-H", "authorization: Bearer t0ken", "-d", "{}"])
        .arg(&grpcurl.address)
        .arg("sluice.admin.v1.AdminService/ListConnectors")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.contains(&name),
        "gRPC with the token: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tls(env).await
}

/// curl `ARGS...`; returns (HTTP status, body) or the failure.
fn curl(args: &[&str]) -> anyhow::Result<(u16, String)> {
    let out = Command::new("curl").args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Ok((code.trim().parse()?, body.to_string()))
}

/// A self-signed certificate for 127.0.0.1 and its key (PEM files).
fn self_signed(env: &TestEnv) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("cannot run openssl")?;
    ensure!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    Ok((cert, key))
}

async fn tls(env: &TestEnv) -> anyhow::Result<()> {
    let (cert, key) = self_signed(env)?;
    let (rest_port, grpc_port) = (free_port(), free_port());
    let mut command = Command::new(binary("sluice-control-plane")?);
    command
        .args(["--etcd-endpoints", &env.services.etcd, "--cluster", &env.unique("tls"), "--replica-id", "tls"])
        .args(["--rest-listen", &format!("127.0.0.1:{rest_port}"), "--grpc-listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--rest-auth-token", "t0ken", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    let mut process = Process::spawn(env, "cp-tls", command)?;
    let url = format!("https://127.0.0.1:{rest_port}");
    let cacert = cert.display().to_string();
    let (status, body) = wait_until(Duration::from_secs(30), "the HTTPS REST API to answer", || {
        let running = process.ensure_running();
        let (url, cacert) = (url.clone(), cacert.clone());
        async move {
            running?;
            let out = tokio::task::spawn_blocking(move || {
                curl(&["--cacert", &cacert, "-H", "Authorization: Bearer t0ken", &format!("{url}/connectors")])
            })
            .await?;
            Ok(out.ok())
        }
    })
    .await?;
    ensure!(status == 200 && body.trim() == "[]", "GET /connectors over HTTPS: {status} {body}");
    let insecure = format!("http://127.0.0.1:{rest_port}/connectors");
    let plain = tokio::task::spawn_blocking(move || curl(&[&insecure])).await?;
    ensure!(!matches!(plain, Ok((200, _))), "plain HTTP must not be served: {plain:?}");
    let unauthenticated = format!("{url}/connectors");
    let (status, _) = tokio::task::spawn_blocking(move || curl(&["--cacert", &cacert, &unauthenticated])).await??;
    ensure!(status == 401, "HTTPS without the token: {status}");
    process.terminate(Duration::from_secs(10)).await?;
    standalone(env, &cert, &key).await
}

/// `sluice-standalone` with the control plane's auth and TLS flags and an `https://` listener.
async fn standalone(env: &TestEnv, cert: &Path, key: &Path) -> anyhow::Result<()> {
    let port = free_port();
    let offsets = env.path("standalone.offsets").display().to_string();
    let listener = format!("https://127.0.0.1:{port}");
    let mut entries: Vec<(&str, String)> = worker_entries(&env.services.kafka);
    entries.push(("listeners", listener.clone()));
    entries.push(("offset.storage.file.filename", offsets));
    let entries: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let worker = write_properties(&env.path("standalone.properties"), &entries)?;

    // An https:// listener without a certificate is refused at start, saying what is missing.
    let out = Command::new(binary("sluice-standalone")?).arg(&worker).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && stderr.contains("--tls-cert"), "https:// without a certificate: {stderr}");

    let mut command = Command::new(binary("sluice-standalone")?);
    command.args(["--rest-auth-token", "t0ken", "--rest-basic-auth", "admin:pa55", "--tls-cert"]);
    command.arg(cert).arg("--tls-key").arg(key).arg(&worker);
    let mut process = Process::spawn(env, "standalone-auth", command)?;
    let cacert = cert.display().to_string();
    let https = |path: &str, extra: &[&str]| {
        let mut args: Vec<String> = vec!["--cacert".into(), cacert.clone()];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(format!("{listener}{path}"));
        async move {
            let reply = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                curl(&args)
            });
            reply.await?
        }
    };
    let (status, body) = wait_until(Duration::from_secs(30), "the standalone HTTPS REST API to answer", || {
        let running = process.ensure_running();
        let reply = https("/connectors", &["-H", "Authorization: Bearer t0ken"]);
        async move {
            running?;
            Ok(reply.await.ok())
        }
    })
    .await?;
    ensure!(status == 200 && body.trim() == "[]", "standalone GET /connectors with the token: {status} {body}");
    let headers = env.path("standalone-401.headers").display().to_string();
    let (status, body) = https("/connectors", &["-D", &headers]).await?;
    let error: Value = serde_json::from_str(&body).with_context(|| format!("401 body: {body}"))?;
    ensure!(status == 401 && error["error_code"] == 401 && error["message"].is_string(), "no credentials: {body}");
    let sent = std::fs::read_to_string(&headers)?.to_ascii_lowercase();
    ensure!(sent.contains("www-authenticate:"), "401 without WWW-Authenticate: {sent}");
    let (status, _) = https("/connectors", &["-H", "Authorization: Bearer wrong"]).await?;
    ensure!(status == 401, "standalone, wrong token: {status}");
    let (status, _) = https("/connectors", &["-u", "admin:nope"]).await?;
    ensure!(status == 401, "standalone, wrong password: {status}");
    let (status, body) = https("/connectors", &["-u", "admin:pa55"]).await?;
    ensure!(status == 200 && body.trim() == "[]", "standalone with basic credentials: {status} {body}");
    let (status, _) = https("/health", &[]).await?;
    ensure!(status == 200, "standalone GET /health must stay open: {status}");
    let plain = format!("http://127.0.0.1:{port}/connectors");
    let plain = tokio::task::spawn_blocking(move || curl(&[&plain])).await?;
    ensure!(!matches!(plain, Ok((200, _))), "standalone: plain HTTP must not be served: {plain:?}");
    process.terminate(Duration::from_secs(20)).await?;
    Ok(())
}
