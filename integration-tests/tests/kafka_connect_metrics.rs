//! Every Kafka Connect metric Sluice promises (README, *Metrics*) is served with a plausible value: a FileStreamSource
//! (exactly-once on, so transactions are measured) and a FileStreamSink move lines through one agent, then the
//! agent's `/metrics` must show the connector-task, source-task, sink-task, task-error and worker metrics of both
//! tasks, and the control plane's `/metrics` the connector, worker and rebalance metrics of both connectors.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use sluice_integration_tests::kafka::create_topic;
use sluice_integration_tests::*;

const LINES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_connect_metrics() {
    let env = TestEnv::new("kafka_connect_metrics").await;
    env.finish(run(&env).await);
}

/// Samples of a Prometheus text body by `name{labels}` (or `name`).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().ok()?,
            };
            Some((name.to_string(), value))
        })
        .collect()
}

/// Per-task series of the agent and what each must read once all lines went through (`any finite`, `0`, ...).
#[derive(Clone, Copy)]
enum Expect {
    /// Exactly this value.
    Is(f64),
    /// At least this value, finite.
    AtLeast(f64),
    /// Within [lo, hi].
    Between(f64, f64),
}

impl Expect {
    fn holds(self, value: f64) -> bool {
        match self {
            Expect::Is(v) => value == v,
            Expect::AtLeast(v) => value.is_finite() && value >= v,
            Expect::Between(lo, hi) => value >= lo && value <= hi,
        }
    }
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("kcmetrics"), &env.services.etcd).await?;
    let port = free_port();
    let args = vec!["--metrics-listen".to_string(), format!("127.0.0.1:{port}")];
    let worker = [("exactly.once.source.support", "enabled")];
    let _agent =
        Agent::start_with_worker(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &worker, &args).await?;
    let agent_metrics = RestClient::new(format!("http://127.0.0.1:{port}"));

    let topic = env.unique("lines");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let lines = numbered_lines("metric-line", 0, LINES);
    append_lines(&input, &lines)?;
    let source = env.unique("src");
    let sink = env.unique("sink");
    cp.rest.create_connector(&source, &file_source(&input, &topic)).await?;
    cp.rest.create_connector(&sink, &file_sink(&output, &topic)).await?;
    wait_for_lines(&output, &lines, Duration::from_secs(90)).await?;

    let n = LINES as f64;
    let src = |name: &str| format!("{name}{{connector=\"{source}\",task=\"0\"}}");
    let snk = |name: &str| format!("{name}{{connector=\"{sink}\",task=\"0\"}}");
    let mut agent_want: Vec<(String, Expect)> = vec![
        ("sluice_task_count".into(), Expect::Is(2.0)),
        // An exactly-once task may fail its first start while its new offsets topic is not readable yet (and is
        // restarted): startups are checked for consistency below rather than for zero failures.
        ("sluice_task_startup_attempts_total".into(), Expect::AtLeast(2.0)),
        ("sluice_task_startup_success_total".into(), Expect::AtLeast(2.0)),
        ("sluice_task_startup_success_percentage".into(), Expect::Between(0.01, 1.0)),
        ("sluice_task_startup_failure_total".into(), Expect::AtLeast(0.0)),
        ("sluice_task_startup_failure_percentage".into(), Expect::Between(0.0, 0.99)),
        // source-task-metrics
        (src("sluice_source_record_poll_total"), Expect::Is(n)),
        (src("sluice_source_record_write_total"), Expect::Is(n)),
        (src("sluice_poll_batch_avg_time_ms"), Expect::AtLeast(0.0)),
        (src("sluice_poll_batch_max_time_ms"), Expect::AtLeast(0.0)),
        // Everything was acknowledged: nothing is in flight any more.
        (src("sluice_source_record_active_count"), Expect::Is(0.0)),
        (src("sluice_source_record_active_count_avg"), Expect::Between(0.0, n)),
        (src("sluice_source_record_active_count_max"), Expect::Between(0.0, n)),
        (src("sluice_transaction_size_avg"), Expect::Between(1.0, n)),
        (src("sluice_transaction_size_max"), Expect::Between(1.0, n)),
        (src("sluice_transaction_size_min"), Expect::Between(1.0, n)),
        // sink-task-metrics
        (snk("sluice_sink_record_read_total"), Expect::Is(n)),
        (snk("sluice_sink_record_send_total"), Expect::Is(n)),
        (snk("sluice_offset_commit_completion_total"), Expect::AtLeast(1.0)),
        (snk("sluice_offset_commit_skip_total"), Expect::Is(0.0)),
        (snk("sluice_offset_commit_seq_no"), Expect::AtLeast(1.0)),
        (snk("sluice_partition_count"), Expect::Is(1.0)),
        (snk("sluice_put_batch_avg_time_ms"), Expect::AtLeast(0.0)),
        (snk("sluice_put_batch_max_time_ms"), Expect::AtLeast(0.0)),
        (snk("sluice_sink_record_active_count"), Expect::Between(0.0, n)),
        (snk("sluice_sink_record_active_count_avg"), Expect::Between(0.0, n)),
        (snk("sluice_sink_record_active_count_max"), Expect::Between(1.0, n)),
    ];
    for task in [&src as &dyn Fn(&str) -> String, &snk] {
        agent_want.extend([
            // connector-task-metrics
            (task("sluice_running_ratio"), Expect::Between(0.01, 1.0)),
            (task("sluice_pause_ratio"), Expect::Is(0.0)),
            (task("sluice_offset_commit_avg_time_ms"), Expect::AtLeast(0.0)),
            (task("sluice_offset_commit_max_time_ms"), Expect::AtLeast(0.0)),
            (task("sluice_offset_commit_success_percentage"), Expect::Is(1.0)),
            (task("sluice_offset_commit_failure_percentage"), Expect::Is(0.0)),
            (task("sluice_batch_size_avg"), Expect::Between(1.0, n)),
            (task("sluice_batch_size_max"), Expect::Between(1.0, n)),
            // task-error-metrics
            (task("sluice_total_record_failures"), Expect::Is(0.0)),
            (task("sluice_total_record_errors"), Expect::Is(0.0)),
            (task("sluice_total_records_skipped"), Expect::Is(0.0)),
            (task("sluice_total_retries"), Expect::Is(0.0)),
            (task("sluice_total_errors_logged"), Expect::Is(0.0)),
            (task("sluice_deadletterqueue_produce_requests"), Expect::Is(0.0)),
            (task("sluice_deadletterqueue_produce_failures"), Expect::Is(0.0)),
            (task("sluice_last_error_timestamp"), Expect::Is(0.0)),
        ]);
    }

    // Commits and transactions come at their own pace: wait until every value is in its range.
    let agent_rest = &agent_metrics;
    let want = &agent_want;
    let waited = wait_until(Duration::from_secs(30), "every agent metric in range", || async move {
        let reply = agent_rest.get("/metrics").await?;
        reply.expect_status(200, "GET /metrics of the agent")?;
        let got = samples(&reply.body);
        let all = want.iter().all(|(name, expect)| got.get(name).is_some_and(|v| expect.holds(*v)));
        Ok(all.then(|| reply.body.clone()))
    })
    .await;
    let body = match waited {
        Ok(body) => body,
        Err(err) => {
            // Say which series are missing or out of range.
            let reply = agent_metrics.get("/metrics").await?;
            let got = samples(&reply.body);
            let wrong: Vec<String> = agent_want
                .iter()
                .filter(|(name, expect)| !got.get(name).is_some_and(|v| expect.holds(*v)))
                .map(|(name, _)| format!("{name} = {:?}", got.get(name)))
                .collect();
            env.note(format!("agent metrics:\n{}", reply.body));
            anyhow::bail!("{err:#}: {}", wrong.join(", "));
        }
    };
    env.note(format!("agent metrics:\n{body}"));
    let got = samples(&body);
    for (avg, max) in [
        (src("sluice_poll_batch_avg_time_ms"), src("sluice_poll_batch_max_time_ms")),
        (snk("sluice_put_batch_avg_time_ms"), snk("sluice_put_batch_max_time_ms")),
        (src("sluice_offset_commit_avg_time_ms"), src("sluice_offset_commit_max_time_ms")),
        (src("sluice_transaction_size_avg"), src("sluice_transaction_size_max")),
        (src("sluice_batch_size_avg"), src("sluice_batch_size_max")),
    ] {
        ensure!(got[&avg] <= got[&max], "{avg} = {} above {max} = {}", got[&avg], got[&max]);
    }
    ensure!(got[&src("sluice_transaction_size_min")] <= got[&src("sluice_transaction_size_avg")], "min above avg");
    let startups = ["attempts", "success", "failure"].map(|s| got[&format!("sluice_task_startup_{s}_total")]);
    ensure!(startups[0] == startups[1] + startups[2], "task startups: attempts != successes + failures: {startups:?}");
    let shares = ["success", "failure"].map(|s| got[&format!("sluice_task_startup_{s}_percentage")]);
    ensure!((shares[0] + shares[1] - 1.0).abs() < 1e-9, "task startup percentages do not add up: {shares:?}");
    for (name, connector, class, converter) in [
        (
            &source,
            "source",
            "org.apache.kafka.connect.file.FileStreamSource",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        (
            &sink,
            "sink",
            "org.apache.kafka.connect.file.FileStreamSink",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ] {
        let status = format!("sluice_connector_task_status{{connector=\"{name}\",task=\"0\",status=\"running\"}} 1");
        ensure!(body.contains(&status), "missing `{status}`");
        let info = body
            .lines()
            .find(|l| l.starts_with(&format!("sluice_connector_task_info{{connector=\"{name}\",task=\"0\",")))
            .with_context(|| format!("no sluice_connector_task_info of {name}"))?;
        for label in [
            format!("connector_class=\"{class}Connector\""),
            format!("connector_type=\"{connector}\""),
            format!("task_class=\"{class}Task\""),
            format!("key_converter_class=\"{converter}\""),
            format!("value_converter_class=\"{converter}\""),
            "header_converter_class=\"org.apache.kafka.connect.storage.SimpleHeaderConverter\"".to_string(),
        ] {
            ensure!(info.contains(&label), "{info} lacks {label}");
        }
        for label in ["connector_version", "task_version", "key_converter_version", "value_converter_version"] {
            ensure!(!info.contains(&format!("{label}=\"\"")), "{info}: empty {label}");
        }
    }
    // Names Kafka Connect does not have are gone, and a source task shows no sink series (and the reverse).
    ensure!(
        !body.contains("sluice_offset_commit_success_total"),
        "offset-commit-success-total is not a Kafka Connect metric"
    );
    ensure!(
        !body.contains("sluice_offset_commit_failure_total"),
        "offset-commit-failure-total is not a Kafka Connect metric"
    );
    ensure!(!got.contains_key(&src("sluice_sink_record_read_total")), "a source task with sink metrics");
    ensure!(!got.contains_key(&snk("sluice_source_record_poll_total")), "a sink task with source metrics");

    // The control plane: connector-metrics, worker metrics, rebalance metrics.
    let reply = cp.rest.get("/metrics").await?;
    reply.expect_status(200, "GET /metrics of the control plane")?;
    env.note(format!("control plane metrics:\n{}", reply.body));
    let body = &reply.body;
    let got = samples(body);
    let per_connector = |series: &str, name: &str| format!("{series}{{connector=\"{name}\"}}");
    let mut cp_want: Vec<(String, Expect)> = vec![
        ("sluice_connector_count".into(), Expect::Is(2.0)),
        ("sluice_connector_startup_attempts_total".into(), Expect::AtLeast(2.0)),
        ("sluice_connector_startup_success_total".into(), Expect::AtLeast(2.0)),
        ("sluice_connector_startup_success_percentage".into(), Expect::Is(1.0)),
        ("sluice_connector_startup_failure_total".into(), Expect::Is(0.0)),
        ("sluice_connector_startup_failure_percentage".into(), Expect::Is(0.0)),
        ("sluice_completed_rebalances_total".into(), Expect::AtLeast(1.0)),
        ("sluice_rebalancing".into(), Expect::Between(0.0, 1.0)),
        ("sluice_rebalance_avg_time_ms".into(), Expect::AtLeast(0.0)),
        ("sluice_rebalance_max_time_ms".into(), Expect::AtLeast(0.0)),
        ("sluice_time_since_last_rebalance_ms".into(), Expect::AtLeast(0.0)),
        ("sluice_epoch".into(), Expect::AtLeast(1.0)),
    ];
    for name in [&source, &sink] {
        cp_want.extend([
            (per_connector("sluice_connector_total_task_count", name), Expect::Is(1.0)),
            (per_connector("sluice_connector_running_task_count", name), Expect::Is(1.0)),
            (per_connector("sluice_connector_paused_task_count", name), Expect::Is(0.0)),
            (per_connector("sluice_connector_failed_task_count", name), Expect::Is(0.0)),
            (per_connector("sluice_connector_unassigned_task_count", name), Expect::Is(0.0)),
            (per_connector("sluice_connector_restarting_task_count", name), Expect::Is(0.0)),
        ]);
    }
    let wrong: Vec<String> = cp_want
        .iter()
        .filter(|(name, expect)| !got.get(name).is_some_and(|v| expect.holds(*v)))
        .map(|(name, _)| format!("{name} = {:?}", got.get(name)))
        .collect();
    ensure!(wrong.is_empty(), "control plane metrics missing or out of range: {}", wrong.join(", "));
    for (name, kind, class) in [
        (&source, "source", "org.apache.kafka.connect.file.FileStreamSourceConnector"),
        (&sink, "sink", "org.apache.kafka.connect.file.FileStreamSinkConnector"),
    ] {
        let status = format!("sluice_connector_status{{connector=\"{name}\",status=\"running\"}} 1");
        ensure!(body.contains(&status), "missing `{status}`");
        let info = format!(
            "sluice_connector_info{{connector=\"{name}\",connector_class=\"{class}\",connector_type=\"{kind}\","
        );
        ensure!(body.contains(&info), "missing `{info}...`");
    }
    let rebalance = body
        .lines()
        .find(|l| l.starts_with("sluice_connect_worker_rebalance_info{"))
        .context("no sluice_connect_worker_rebalance_info")?;
    ensure!(!rebalance.contains("leader_name=\"\""), "no leader name: {rebalance}");
    ensure!(rebalance.contains("connect_protocol=\"sluice\""), "{rebalance}");
    Ok(())
}
