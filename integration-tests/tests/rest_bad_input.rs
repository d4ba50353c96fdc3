//! The REST gateway answers bad input the way Kafka Connect does (same status codes, same messages, error body
//! `{"error_code", "message"}`), or better where Kafka Connect is unhelpful, and stores nothing for a bad request.
//! Also the quickstart's literal `curl --data @file-source.properties`, which users copy from Kafka Connect docs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_bad_input() {
    let env = TestEnv::new("rest_bad_input").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let cp = ControlPlane::start(env, &env.unique("rest"), &env.services.etcd).await?;
    let rest = &cp.rest;
    ensure!(rest.connector_names().await?.is_empty(), "a fresh cluster should have no connectors");
    let input = env.path("input.txt");
    let topic = env.unique("topic");

    // Malformed JSON.
    let reply = rest.raw(Method::POST, "/connectors", "application/json", r#"{"name": "broken", "config": {"#).await?;
    let message = reply.expect_error(400, "POST /connectors with malformed JSON")?;
    env.note(format!("malformed JSON -> 400 {message:?}"));

    // Unknown connector.class: Kafka Connect answers 500; Sluice answers 400 and lists what it knows.
    let bad_class = env.unique("bad-class");
    let reply = rest
        .post(
            "/connectors",
            &json!({"name": bad_class, "config": {"connector.class": "com.example.NoSuchConnector", "topic": topic}}),
        )
        .await?;
    let message = reply.expect_error(400, "unknown connector.class")?;
    ensure!(message.contains("FileStreamSource"), "unknown class: the message should list known plugins: {message}");
    ensure!(
        message.contains("com.example.NoSuchConnector"),
        "unknown class: the message should name the class: {message}"
    );

    // Missing required key: a source without `topic`.
    let no_topic = env.unique("no-topic");
    let reply = rest
        .post(
            "/connectors",
            &json!({"name": no_topic, "config": {"connector.class": "FileStreamSource", "file": input.display().to_string()}}),
        )
        .await?;
    let message = reply.expect_error(400, "FileStreamSource without topic")?;
    ensure!(message.contains("topic"), "missing topic: the message should name `topic`: {message}");

    // Duplicate name.
    let existing = env.unique("existing");
    let created = rest.post("/connectors", &json!({"name": existing, "config": file_source(&input, &topic)})).await?;
    created.expect_status(201, "create")?;
    ensure!(
        created.location.as_deref().is_some_and(|l| l.ends_with(&format!("/connectors/{existing}"))),
        "201 without Location: /connectors/{existing}: {:?}",
        created.location
    );
    let reply = rest.post("/connectors", &json!({"name": existing, "config": file_sink(&input, &topic)})).await?;
    let message = reply.expect_error(409, "duplicate name")?;
    ensure!(message == format!("Connector {existing} already exists"), "duplicate: {message}");
    let config = rest.get(&format!("/connectors/{existing}/config")).await?;
    ensure!(
        config.json()?["connector.class"] == "FileStreamSource",
        "the duplicate POST changed the config: {}",
        config.body
    );

    // PUT config whose `name` differs from the URL.
    let url_name = env.unique("url-name");
    let mut body = file_source(&input, &topic);
    body["name"] = json!("other-name");
    let reply = rest.put(&format!("/connectors/{url_name}/config"), &body).await?;
    let message = reply.expect_error(400, "PUT config with a different name")?;
    let want =
        format!("Connector name configuration (other-name) doesn't match connector name in the URL ({url_name})");
    ensure!(message == want, "name mismatch: got {message:?}, expected {want:?}");

    // Unknown connector on every endpoint, with Kafka Connect's messages.
    let ghost = env.unique("ghost");
    let cases: Vec<(Method, String, Option<Value>, String)> = vec![
        (Method::GET, format!("/connectors/{ghost}"), None, format!("Connector {ghost} not found")),
        (Method::GET, format!("/connectors/{ghost}/config"), None, format!("Connector {ghost} not found")),
        (Method::GET, format!("/connectors/{ghost}/status"), None, format!("No status found for connector {ghost}")),
        (Method::GET, format!("/connectors/{ghost}/tasks"), None, format!("Connector {ghost} not found")),
        (
            Method::GET,
            format!("/connectors/{ghost}/tasks/0/status"),
            None,
            format!("No status found for task {ghost}-0"),
        ),
        (Method::PUT, format!("/connectors/{ghost}/pause"), None, format!("Unknown connector {ghost}")),
        (Method::PUT, format!("/connectors/{ghost}/resume"), None, format!("Unknown connector {ghost}")),
        (Method::PUT, format!("/connectors/{ghost}/stop"), None, format!("Unknown connector {ghost}")),
        (Method::POST, format!("/connectors/{ghost}/restart"), None, format!("Unknown connector: {ghost}")),
        (Method::POST, format!("/connectors/{ghost}/tasks/0/restart"), None, format!("Unknown connector: {ghost}")),
        (Method::DELETE, format!("/connectors/{ghost}"), None, format!("Connector {ghost} not found")),
        (
            Method::PATCH,
            format!("/connectors/{ghost}/config"),
            Some(json!({"tasks.max": "2"})),
            format!("Connector {ghost} not found"),
        ),
        // A task that does not exist on a connector that does.
        (
            Method::GET,
            format!("/connectors/{existing}/tasks/7/status"),
            None,
            format!("No status found for task {existing}-7"),
        ),
        (Method::POST, format!("/connectors/{existing}/tasks/7/restart"), None, format!("Task {existing}-7 not found")),
    ];
    let mut failures = Vec::new();
    for (method, path, body, want) in &cases {
        let reply = rest.request(method.clone(), path, body.as_ref()).await?;
        match reply.expect_error(404, &format!("{method} {path}")) {
            Ok(message) if &message == want => {}
            Ok(message) => failures.push(format!("{method} {path}: message {message:?}, expected {want:?}")),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{} of {} not-found cases wrong:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
    }

    // Nothing from the bad requests was stored.
    let names = rest.connector_names().await?;
    ensure!(
        names == vec![existing.clone()],
        "after the bad requests GET /connectors = {names:?}, expected [{existing}]"
    );
    for name in [&bad_class, &no_topic, &url_name, &ghost, &"broken".to_string()] {
        let reply = rest.get(&format!("/connectors/{name}")).await?;
        ensure!(reply.status == 404, "{name} exists after a bad request: {} {}", reply.status, reply.body);
    }

    curl_properties_file(env, &cp, &input, &topic).await
}

/// `curl -X POST -H "Content-Type: application/json" --data @file-source.properties .../connectors`, literally.
async fn curl_properties_file(env: &TestEnv, cp: &ControlPlane, input: &Path, topic: &str) -> anyhow::Result<()> {
    let properties = env.path("file-source.properties");
    let text = format!(
        "name=file-source\nconnector.class=FileStreamSource\ntasks.max=1\nfile={}\ntopic={topic}\n",
        input.display()
    );
    std::fs::write(&properties, &text)?;
    let url = format!("{}/connectors", cp.rest.base());
    let want = json!({
        "name": "file-source",
        "connector.class": "FileStreamSource",
        "tasks.max": "1",
        "file": input.display().to_string(),
        "topic": topic,
    });

    // --data strips the newlines: the body is one run-on line of key=value pairs.
    for flag in ["--data", "--data-binary"] {
        let (status, body) = curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            flag,
            &format!("@{}", properties.display()),
            &url,
        ])?;
        env.note(format!("curl {flag} @file-source.properties -> {status} {body}"));
        ensure!(status == 201, "curl {flag} @file-source.properties: expected 201, got {status}: {body}");
        let reply = cp.rest.get("/connectors/file-source/config").await?;
        reply.expect_status(200, "GET /connectors/file-source/config")?;
        ensure!(reply.json()? == &want, "curl {flag}: stored config {} differs from the file's {want}", reply.body);
        let reply = cp.rest.delete("/connectors/file-source").await?;
        reply.expect_status(204, "DELETE /connectors/file-source")?;
    }

    // Garbage that is neither JSON nor properties: 400, with a hint about --data-binary.
    let garbage = env.path("garbage.txt");
    std::fs::write(&garbage, "this is neither json nor properties\n")?;
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", garbage.display()),
        &url,
    ])?;
    env.note(format!("curl garbage -> {status} {body}"));
    ensure!(status == 400, "garbage body: expected 400, got {status}: {body}");
    let json: Value =
        serde_json::from_str(&body).with_context(|| format!("garbage body: error is not JSON: {body}"))?;
    ensure!(json["error_code"] == 400, "garbage body: error_code: {json}");
    let message = json["message"].as_str().unwrap_or_default();
    ensure!(message.contains("--data-binary"), "garbage body: the message should mention --data-binary: {message}");
    let names = cp.rest.connector_names().await?;
    ensure!(!names.iter().any(|n| n == "file-source"), "file-source still listed: {names:?}");
    Ok(())
}

/// Runs the real curl; returns the HTTP status and the body.
fn curl(args: &[&str]) -> anyhow::Result<(u16, String)> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .context("cannot run curl")?;
    if !output.status.success() {
        bail!("curl {args:?} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').context("curl printed no status")?;
    Ok((code.trim().parse().with_context(|| format!("curl status {code:?}"))?, body.to_string()))
}
