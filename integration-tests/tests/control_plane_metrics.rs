//! `GET /metrics` on a running control plane with one agent and one connector: the Prometheus text shows this
//! replica leading, the agent and its stream, the connector's task configured and assigned, at least one
//! assignment transaction and timed store calls. Also: the source path converts record headers with the
//! connector's `header.converter` (here `JsonConverter` without schemas) before producing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use sluice_integration_tests::kafka::read_records;
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_metrics() {
    let env = TestEnv::new("control_plane_metrics").await;
    env.finish(run(&env).await);
}

/// The unlabelled samples of a Prometheus text body, plus `name{labels}` keys for labelled ones.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("metrics"), &env.services.etcd).await?;
    let agent_id = env.unique("agent");
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &agent_id, kafka).await?;

    let topic = env.unique("lines");
    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("line", 0, 3))?;
    let mut config = file_source(&input, &topic);
    let extra = [
        ("transforms", "origin"),
        ("transforms.origin.type", "org.apache.kafka.connect.transforms.InsertHeader"),
        ("transforms.origin.header", "origin"),
        ("transforms.origin.value.literal", "file"),
        ("header.converter", "JsonConverter"),
        ("header.converter.schemas.enable", "false"),
    ];
    for (key, value) in extra {
        config[key] = value.into();
    }
    let source = env.unique("file-source");
    cp.rest.create_connector(&source, &config).await?;
    cp.rest.wait_for_status(&source, "RUNNING", Duration::from_secs(60)).await?;

    let want = [
        ("sluice_control_plane_is_leader", 1.0),
        ("sluice_control_plane_agents", 1.0),
        ("sluice_control_plane_connectors", 1.0),
        ("sluice_control_plane_tasks", 1.0),
        ("sluice_control_plane_tasks_assigned", 1.0),
        ("sluice_control_plane_agent_sessions", 1.0),
    ];
    let rest = &cp.rest;
    let body = wait_until(Duration::from_secs(30), "metrics of one agent and one task", || async move {
        let reply = rest.get("/metrics").await?;
        reply.expect_status(200, "GET /metrics")?;
        let got = samples(&reply.body);
        Ok(want.iter().all(|(name, value)| got.get(*name) == Some(value)).then(|| reply.body.clone()))
    })
    .await?;
    env.note(format!("metrics:\n{body}"));
    let got = samples(&body);
    let value = |name: &str| got.get(name).copied().with_context(|| format!("{name} missing from /metrics"));
    ensure!(value("sluice_control_plane_rebalances_total")? >= 1.0, "no assignment transaction counted");
    ensure!(value("sluice_control_plane_rejected_reports_total")? == 0.0, "stale reports in a quiet cluster");
    ensure!(value("sluice_control_plane_etcd_request_seconds_count{op=\"txn\"}")? >= 1.0, "no txn timed");
    ensure!(value("sluice_control_plane_etcd_request_seconds_count{op=\"list\"}")? >= 1.0, "no list timed");
    ensure!(body.contains("# TYPE sluice_control_plane_etcd_request_seconds histogram"), "no histogram type");

    // The records carry the inserted header as JsonConverter wrote it: the JSON string "file".
    let records = wait_until(Duration::from_secs(30), "3 records in the topic", || {
        let topic = topic.clone();
        async move {
            let records = read_records(kafka, &topic).await?;
            Ok((records.len() >= 3).then_some(records))
        }
    })
    .await?;
    for record in &records {
        ensure!(record.header("origin") == Some("\"file\""), "header `origin` of {record:?}");
    }
    Ok(())
}
