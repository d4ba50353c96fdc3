//! Topic creation for source connectors (`topic.creation.*`), against real Kafka: the source task creates its
//! topic before the first record with the settings of the first matching group.
//! - default group: `topic.creation.default.partitions=3`, replication factor 1 → the topic has 3 partitions and
//!   every line arrives.
//! - a group `audit` including `audit-.*` with `cleanup.policy=compact` → the audit topic is compacted (its
//!   records get keys through transforms, as a compacted topic requires), the other group settings apply.
//! - worker `topic.creation.enable=false` → the connector's `topic.creation.*` keys are ignored: the topic is
//!   created by the broker's auto-creation with one partition, not three.

use std::time::Duration;

use anyhow::ensure;
use serde_json::json;
use sluice_integration_tests::kafka::{count_records, topic_config, topic_exists, topic_partitions};
use sluice_integration_tests::*;

const TIMEOUT: Duration = Duration::from_secs(60);
const LINES: usize = 50;

async fn wait_for_records(kafka: &str, topic: &str, expected: usize) -> anyhow::Result<()> {
    wait_until(TIMEOUT, format!("{expected} records in {topic}"), || async {
        if !topic_exists(kafka, topic).await? {
            return Ok(None);
        }
        let count = count_records(kafka, topic).await?;
        Ok((count >= expected as i64).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn source_creates_its_topics_with_the_matching_group_settings() {
    let env = TestEnv::new("source_creates_its_topics_with_the_matching_group_settings").await;
    env.finish(creates_topics(&env).await);
}

async fn creates_topics(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("topics"), &env.services.etcd).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;

    // Default group only: three partitions.
    let topic = env.unique("created");
    ensure!(!topic_exists(kafka, &topic).await?, "{topic} must not exist before the test");
    let input = env.path("default.txt");
    append_lines(&input, &numbered_lines("default", 0, LINES))?;
    let mut config = file_source(&input, &topic);
    config["topic.creation.default.replication.factor"] = json!("1");
    config["topic.creation.default.partitions"] = json!("3");
    let name = env.unique("default-source");
    cp.rest.create_connector(&name, &config).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    wait_for_records(kafka, &topic, LINES).await?;
    let partitions = topic_partitions(kafka, &topic).await?;
    env.note(format!("{topic}: partitions {partitions:?}"));
    ensure!(partitions.len() == 3, "{topic} should have 3 partitions, has {partitions:?}");
    ensure!(count_records(kafka, &topic).await? == LINES as i64, "every line once in {topic}");

    // A group for audit topics: compacted, one partition; the default group would give three.
    let audit = format!("audit-{}", env.unique("log"));
    let input = env.path("audit.txt");
    append_lines(&input, &numbered_lines("audit", 0, LINES))?;
    let mut config = file_source(&input, &audit);
    config["topic.creation.groups"] = json!("audit");
    config["topic.creation.default.replication.factor"] = json!("1");
    config["topic.creation.default.partitions"] = json!("3");
    config["topic.creation.audit.include"] = json!("audit-.*");
    config["topic.creation.audit.partitions"] = json!("1");
    config["topic.creation.audit.cleanup.policy"] = json!("compact");
    // A compacted topic refuses records without a key: the line becomes the key too.
    config["transforms"] = json!("hoist,key,unhoist");
    config["transforms.hoist.type"] = json!("org.apache.kafka.connect.transforms.HoistField$Value");
    config["transforms.hoist.field"] = json!("line");
    config["transforms.key.type"] = json!("org.apache.kafka.connect.transforms.ValueToKey");
    config["transforms.key.fields"] = json!("line");
    config["transforms.unhoist.type"] = json!("org.apache.kafka.connect.transforms.ExtractField$Value");
    config["transforms.unhoist.field"] = json!("line");
    let name = env.unique("audit-source");
    cp.rest.create_connector(&name, &config).await?;
    cp.rest.wait_for_status(&name, "RUNNING", TIMEOUT).await?;
    wait_for_records(kafka, &audit, LINES).await?;
    let policy = topic_config(kafka, &audit, "cleanup.policy").await?;
    let partitions = topic_partitions(kafka, &audit).await?;
    env.note(format!("{audit}: cleanup.policy {policy:?}, partitions {partitions:?}"));
    ensure!(policy.as_deref() == Some("compact"), "{audit} should be compacted, has cleanup.policy {policy:?}");
    ensure!(partitions.len() == 1, "{audit} should have the audit group's 1 partition, has {partitions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_can_disable_topic_creation() {
    let env = TestEnv::new("worker_can_disable_topic_creation").await;
    env.finish(disabled(&env).await);
}

async fn disabled(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cp = ControlPlane::start(env, &env.unique("notopics"), &env.services.etcd).await?;
    let worker = [("topic.creation.enable", "false")];
    let _agent =
        Agent::start_with_worker(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &worker, &[]).await?;
    let topic = env.unique("auto");
    let input = env.path("in.txt");
    append_lines(&input, &numbered_lines("auto", 0, LINES))?;
    let mut config = file_source(&input, &topic);
    config["topic.creation.default.replication.factor"] = json!("1");
    config["topic.creation.default.partitions"] = json!("3");
    let name = env.unique("source");
    cp.rest.create_connector(&name, &config).await?;
    wait_for_records(kafka, &topic, LINES).await?;
    let partitions = topic_partitions(kafka, &topic).await?;
    env.note(format!("{topic}: partitions {partitions:?} (broker auto-creation)"));
    ensure!(partitions.len() == 1, "with topic.creation.enable=false the broker's default (1) applies: {partitions:?}");
    Ok(())
}
