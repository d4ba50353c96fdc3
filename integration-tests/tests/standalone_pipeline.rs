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
