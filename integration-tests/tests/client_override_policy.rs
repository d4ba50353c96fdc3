//! The worker's `connector.client.config.override.policy`, against real Kafka: with `None`, a connector that sets
//! `producer.override.*` cannot start its task, which FAILS with Kafka Connect's message; without overrides the
//! same worker runs the connector normally.

use std::time::Duration;

use anyhow::ensure;
use serde_json::json;
use sluice_integration_tests::kafka::count_records;
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_none_fails_a_task_that_overrides_client_settings() {
    let env = TestEnv::new("policy_none_fails_a_task_that_overrides_client_settings").await;
    env.finish(policy_none(&env).await);
}

async fn policy_none(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("policy"), &env.services.etcd).await?;
    let worker = [("connector.client.config.override.policy", "None")];
    let _agent =
        Agent::start_with_worker(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &worker, &[]).await?;

    let input = env.path("in.txt");
    append_lines(&input, &numbered_lines("line", 0, 10))?;
    let topic = env.unique("policy-topic");
    let mut config = file_source(&input, &topic);
    config["producer.override.linger.ms"] = json!("10");
    config["task.restart.on.failure"] = json!("false");
    let name = env.unique("overriding-source");
    cp.rest.create_connector(&name, &config).await?;
    let status = cp
        .rest
        .wait_for_status_matching(&name, "task 0 FAILED", TIMEOUT, |s| task_state(s, 0).as_deref() == Some("FAILED"))
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    env.note(format!("FAILED trace:\n{trace}"));
    let expected = "The 'None' policy does not allow 'linger.ms' to be overridden in the connector configuration.";
    ensure!(trace.contains(expected), "the trace should carry Kafka Connect's message `{expected}`: {trace}");

    // The same worker runs a connector without overrides.
    let other = env.unique("plain-topic");
    let name = env.unique("plain-source");
    cp.rest.create_connector(&name, &file_source(&input, &other)).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    wait_until(TIMEOUT, format!("10 records in {other}"), || async {
        Ok((count_records(kafka, &other).await.unwrap_or(0) >= 10).then_some(()))
    })
    .await?;
    Ok(())
}
