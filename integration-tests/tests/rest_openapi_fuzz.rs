//! The REST gateway against its own OpenAPI document (`GET /openapi.json`, kept in control-plane/openapi.json):
//! schemathesis (a third-party fuzzer from PyPI, installed by integration-tests/tools/install-schemathesis) generates
//! requests for every operation from the document and checks that no answer is a 5xx and every answer matches the
//! document. A connector with a running task is there too, so the fuzzer meets real state, not only 404s.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use sluice_integration_tests::tools::{Output, python_tools};
use sluice_integration_tests::*;

/// Test cases per operation and phase: enough to find shape mismatches, small enough for well under 2 minutes.
const MAX_EXAMPLES: &str = "40";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_openapi_fuzz() {
    let env = TestEnv::new("rest_openapi_fuzz").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let bin = python_tools().await?;
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("fuzz"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("fuzz", 0, 10))?;
    let name = env.unique("fuzzed");
    cp.rest.create_connector(&name, &file_source(&input, &env.unique("topic"))).await?;
    cp.rest.wait_for_status(&name, "RUNNING", Duration::from_secs(60)).await?;

    let document = cp.rest.get("/openapi.json").await?;
    document.expect_status(200, "GET /openapi.json")?;
    ensure!(
        document.json()?["openapi"] == "3.1.0",
        "not an OpenAPI 3.1 document: {}",
        &document.body[..100.min(document.body.len())]
    );

    let base = cp.rest.base().to_string();
    let started = std::time::Instant::now();
    let report_dir = env.path("schemathesis-report");
    let workdir = env.dir().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin.join("schemathesis"))
            // schemathesis keeps a `.schemathesis` cache in its working directory: the test's own.
            .current_dir(workdir)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--max-examples", MAX_EXAMPLES, "--workers", "2", "--request-timeout", "35"])
            .arg("--report-dir")
            .arg(&report_dir)
            .env("NO_COLOR", "1")
            .output()
    })
    .await?
    .context("cannot run schemathesis")?;
    let out = Output::of(output);
    let summary: String =
        out.stdout.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    env.note(format!("schemathesis ran {:.0?}:\n{summary}", started.elapsed()));
    ensure!(out.success, "schemathesis found problems:\n{}\n{}", out.stdout, out.stderr);
    ensure!(
        out.stdout.contains("passed") && !out.stdout.contains("Errored:"),
        "unexpected schemathesis output:\n{}",
        out.stdout
    );
    Ok(())
}
