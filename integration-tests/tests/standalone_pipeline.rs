//! Standalone mode, the Kafka Connect standalone experience: `sluice-standalone worker.properties
//! source.properties sink.properties`. Lines flow; after a graceful stop (SIGTERM) and more lines appended, a
//! restart with the same offsets file resumes the source at its committed byte position: the new lines arrive and
//! the old ones are not read again.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_pipeline() {
    let env = TestEnv::new("standalone_pipeline").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let port = free_port();
    let offsets = env.path("standalone.offsets");
    let listeners = format!("http://127.0.0.1:{port}");
    let offsets_path = offsets.display().to_string();
    let worker = write_properties(
        &env.path("worker.properties"),
        &[
            ("bootstrap.servers", kafka),
            ("key.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("value.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("offset.flush.interval.ms", "500"),
            ("listeners", &listeners),
            ("offset.storage.file.filename", &offsets_path),
        ],
    )?;
    let topic = env.unique("standalone");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let output = env.path("output.txt");
    let (input_path, output_path) = (input.display().to_string(), output.display().to_string());
    let source = env.unique("file-source");
    let sink = env.unique("file-sink");
    let connectors: Vec<PathBuf> = vec![
        write_properties(
            &env.path("file-source.properties"),
            &[
                ("name", &source),
                ("connector.class", "FileStreamSource"),
                ("tasks.max", "1"),
                ("file", &input_path),
                ("topic", &topic),
            ],
        )?,
        write_properties(
            &env.path("file-sink.properties"),
            &[
                ("name", &sink),
                ("connector.class", "FileStreamSink"),
                ("tasks.max", "1"),
                ("file", &output_path),
                ("topics", &topic),
            ],
        )?,
    ];

    let lines = numbered_lines("entry", 0, 800);
    append_lines(&input, &lines[..300])?;
    let mut standalone = Standalone::start(env, "standalone", port, &worker, &connectors).await?;
    for name in [&source, &sink] {
        let status = standalone.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("first run: {status}"));
    }
    append_lines(&input, &lines[300..500])?;
    let report = wait_for_lines(&output, &lines[..500], Duration::from_secs(60)).await?;
    env.note(format!("first run, sink file: {report}"));
    report.check_exact("sink file (first run)")?;

    let status = standalone.process.terminate(Duration::from_secs(30)).await?;
    env.note(format!("standalone stopped by SIGTERM: {status}"));
    ensure!(status.success(), "a graceful stop should exit with 0, got {status}");
    ensure!(offsets.exists(), "no offsets file at {} after a graceful stop", offsets.display());
    let first_run_topic = read_topic(kafka, &topic).await?;
    analyze(&lines[..500], &first_run_topic).check_exact("topic after the first run")?;

    append_lines(&input, &lines[500..])?;
    let mut standalone = Standalone::start(env, "standalone-restarted", port, &worker, &connectors).await?;
    for name in [&source, &sink] {
        let status = standalone.rest.wait_for_status(name, "RUNNING", Duration::from_secs(60)).await?;
        env.note(format!("second run: {status}"));
    }
    let report = wait_for_lines(&output, &lines, Duration::from_secs(60)).await?;
    env.note(format!("second run, sink file: {report}"));
    report.check_complete_at_least_once("sink file (second run)")?;

    // The source resumed at its committed position: the topic holds the 300 new lines once, and none of the 500
    // old ones again. A graceful stop commits the final offsets, so there is nothing after the last flush to
    // re-read: any re-read line is a bug.
    let topic_report = analyze(&lines, &read_topic(kafka, &topic).await?);
    env.note(format!(
        "topic: {topic_report}; re-read by the source after the restart: {}; duplicates in the sink file: {}",
        topic_report.duplicates, report.duplicates
    ));
    topic_report.check_exact("topic after the restart (source must resume from the committed byte position)")?;

    standalone.process.terminate(Duration::from_secs(30)).await?;
    Ok(())
}

/// The seed's own commands, verbatim, against standalone mode: `curl -X POST -H "Content-Type: application/json"
/// --data @file-source.properties http://localhost:PORT/connectors` (curl strips the newlines), then
/// `curl -X GET .../status`, and appended lines reach the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_seed_curl_commands() {
    let env = TestEnv::new("standalone_seed_curl").await;
    env.finish(seed_curl(&env).await);
}

async fn seed_curl(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let port = free_port();
    let listeners = format!("http://127.0.0.1:{port}");
    let offsets_path = env.path("standalone.offsets").display().to_string();
    let worker = write_properties(
        &env.path("worker.properties"),
        &[
            ("bootstrap.servers", kafka),
            ("key.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("value.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("offset.flush.interval.ms", "500"),
            ("listeners", &listeners),
            ("offset.storage.file.filename", &offsets_path),
        ],
    )?;
    let topic = env.unique("file-input-topic");
    let input = env.path("input.txt");
    let name = env.unique("file-source");
    // Exactly the seed's file, with this test's unique name, file and topic.
    let seed = format!(
        "name={name}\nconnector.class=FileStreamSource\ntasks.max=1\nfile={}\ntopic={topic}\n",
        input.display()
    );
    std::fs::write(env.path("file-source.properties"), seed)?;
    let mut standalone = Standalone::start(env, "standalone", port, &worker, &[]).await?;

    let post = std::process::Command::new("curl")
        .current_dir(env.dir())
        .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json", "--data", "@file-source.properties"])
        .arg(format!("http://localhost:{port}/connectors"))
        .output()?;
    let body = String::from_utf8_lossy(&post.stdout).into_owned();
    ensure!(post.status.success(), "curl POST failed: {}", String::from_utf8_lossy(&post.stderr));
    let created: serde_json::Value = serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{e}: {body}"))?;
    ensure!(created["name"] == name.as_str(), "created: {created}");
    ensure!(created["config"]["topic"] == topic.as_str(), "created: {created}");

    let lines = numbered_lines("seed", 0, 200);
    append_lines(&input, &lines)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let get = std::process::Command::new("curl")
            .args(["-sS", "-X", "GET"])
            .arg(format!("http://localhost:{port}/connectors/{name}/status"))
            .output()?;
        let status: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap_or_default();
        if status["connector"]["state"] == "RUNNING" && status["tasks"][0]["state"] == "RUNNING" {
            env.note(format!("curl GET status: {status}"));
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "not RUNNING in time: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = loop {
        let report = analyze(&lines, &read_topic(kafka, &topic).await.unwrap_or_default());
        if report.missing.is_empty() || tokio::time::Instant::now() >= deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    env.note(format!("topic {topic}: {report}"));
    report.check_exact("topic fed by the seed's curl-created connector")?;
    standalone.process.terminate(Duration::from_secs(30)).await?;
    Ok(())
}

/// SIGTERM right after a sink task started, while its consumer is still joining the group: librdkafka's close then
/// blocks for long (it leaves a group it has not finished joining), and the process used to stay alive after it had
/// logged its graceful stop, until the bench killed it 30 s later. The process exits promptly, with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_exits_promptly_when_stopped_while_a_sink_joins() {
    let env = TestEnv::new("standalone_prompt_exit").await;
    env.finish(prompt_exit(&env).await);
}

async fn prompt_exit(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    for round in 0..3 {
        let port = free_port();
        let listeners = format!("http://127.0.0.1:{port}");
        let offsets_path = env.path(&format!("standalone-{round}.offsets")).display().to_string();
        let worker = write_properties(
            &env.path(&format!("worker-{round}.properties")),
            &[
                ("bootstrap.servers", kafka),
                ("key.converter", "org.apache.kafka.connect.storage.StringConverter"),
                ("value.converter", "org.apache.kafka.connect.storage.StringConverter"),
                ("listeners", &listeners),
                ("offset.storage.file.filename", &offsets_path),
            ],
        )?;
        let topic = env.unique("prompt-exit");
        create_topic(kafka, &topic, 1).await?;
        let output = env.path(&format!("output-{round}.txt")).display().to_string();
        let name = env.unique("sink");
        let sink = write_properties(
            &env.path(&format!("sink-{round}.properties")),
            &[
                ("name", &name),
                ("connector.class", "FileStreamSink"),
                ("tasks.max", "1"),
                ("file", &output),
                ("topics", &topic),
            ],
        )?;
        let mut standalone =
            Standalone::start(env, &format!("standalone-{round}"), port, &worker, std::slice::from_ref(&sink)).await?;
        standalone.rest.wait_for_status(&name, "RUNNING", Duration::from_secs(30)).await?;
        let started = std::time::Instant::now();
        let status = standalone.process.terminate(Duration::from_secs(15)).await?;
        env.note(format!("round {round}: exited {status} {:?} after SIGTERM", started.elapsed()));
        ensure!(status.success(), "a graceful stop should exit with 0, got {status}");
    }
    Ok(())
}
