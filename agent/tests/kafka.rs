//! Source and sink loops against a real Kafka broker, driven by the scripted control plane: a file goes through
//! FileStreamSource → Kafka → FileStreamSink, offsets are reported only for acknowledged records, and a restart
//! resumes from the reported offset.
//!
//! Needs a broker: `deploy/test` starts one (or `deploy/local/kafka up`); `SLUICE_TEST_KAFKA` overrides the
//! default `127.0.0.1:9092`. Without a broker the test fails, it is never skipped.

mod support;

use std::time::Duration;

use sluice_proto::agent::agent_message::Kind as Up;
use sluice_proto::agent::{SourceOffset, TaskState};
use support::{FakeControlPlane, start_agent, task};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn file_source_to_kafka_to_file_sink() {
    let bootstrap = std::env::var("SLUICE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines: Vec<String> = (0..2_000).map(|i| format!("line-{i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let input_len = std::fs::metadata(&input).expect("metadata").len();
    let topic = format!("agent-smoke-{}-{}", std::process::id(), rand_suffix());
    let (input, output) = (input.to_str().expect("utf-8").to_string(), output.to_str().expect("utf-8").to_string());

    let mut cp = FakeControlPlane::start().await;
    let agent = start_agent(
        &cp,
        &[
            ("bootstrap.servers", bootstrap.as_str()),
            ("key.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("value.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("offset.flush.interval.ms", "200"),
        ],
        None,
    );
    let source = task(
        "smoke-source",
        0,
        1,
        "source",
        &[("connector.class", "FileStreamSource"), ("file", &input), ("topic", &topic)],
    );
    let sink = task(
        "smoke-sink",
        0,
        1,
        "sink",
        &[("connector.class", "FileStreamSink"), ("file", &output), ("topics", &topic)],
    );

    let mut session = cp.next_session(WAIT).await;
    let Up::Hello(_) = session.next(true, WAIT).await else { panic!("expected Hello") };
    session.welcome(10_000, 200).await;
    session.assign(1, vec![source.clone(), sink]).await;

    // Offsets only ever name positions of acknowledged records; wait until the whole file is acknowledged.
    let mut running = 0;
    let mut last_position = 0u64;
    while last_position < input_len {
        match session.next(true, WAIT).await {
            Up::TaskStatus(status) => {
                assert_eq!(status.state, TaskState::Running as i32, "{}", status.trace);
                running += 1;
            }
            Up::OffsetCommit(commit) => {
                let id = commit.id.expect("task id");
                assert_eq!((id.connector.as_str(), commit.epoch), ("smoke-source", 1));
                for SourceOffset { partition_json, offset_json } in commit.offsets {
                    assert_eq!(partition_json, serde_json::json!({ "filename": input }).to_string());
                    let offset: serde_json::Value = serde_json::from_str(&offset_json).expect("offset json");
                    let position = offset["position"].as_u64().expect("position");
                    assert!(position >= last_position, "offsets never go back");
                    last_position = position;
                }
            }
            // The source reports the topic it produces to (`GET /connectors/{name}/topics`).
            Up::TopicsUsed(used) => assert_eq!(used.topics, vec![topic.clone()]),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(running, 2);

    // The sink writes every line, in order (one partition).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let written = std::fs::read_to_string(&output).unwrap_or_default();
        if written.lines().count() >= lines.len() {
            assert_eq!(written.lines().collect::<Vec<_>>(), lines);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sink wrote {} lines", written.lines().count());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    agent.shutdown.cancel();
    loop {
        match session.next(true, WAIT).await {
            Up::Goodbye(_) => break,
            Up::OffsetCommit(_) | Up::TaskStatus(_) | Up::TopicsUsed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    tokio::time::timeout(WAIT, agent.join).await.expect("agent exits").expect("no panic").expect("clean exit");
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}
