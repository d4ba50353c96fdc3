//! Exactly-once sources and offsets set from outside their tasks. An exactly-once task keeps its offsets in a
//! Kafka offsets topic (committed with its records), yet what the REST API does while the connector is STOPPED must
//! be what it resumes from, as in Kafka Connect:
//!
//! - `PATCH /connectors/{n}/offsets` to an earlier position: the resumed task reads the file again from there
//!   (`read_committed` shows the re-read lines once more, nothing else);
//! - `DELETE /connectors/{n}/offsets`: the resumed task starts from the beginning;
//! - a plain stop and resume: the task goes on where it was (no line twice);
//! - delete and create again under the same name: a fresh start, not the old connector's position;
//! - `GET .../offsets` shows the position the task resumes from.
//!
//! Also: two clusters on one Kafka with a connector of the same name do not fence each other (the transactional ids
//! and the default offsets topic carry the cluster name).

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::{create_topic, read_transactional, topic_exists};
use sluice_integration_tests::*;

const N: usize = 100;
const K: usize = 60;
const WAIT: Duration = Duration::from_secs(90);
/// One partition for the offsets topics these tests create (the worker default is Kafka Connect's 25).
const EOS_WORKER: &[(&str, &str)] = &[("exactly.once.source.support", "enabled"), ("offsets.storage.partitions", "1")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_source_resumes_from_offsets_set_through_rest() {
    let env = TestEnv::new("exactly_once_source_resumes_from_offsets_set_through_rest").await;
    env.finish(rest_offsets(&env).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_clusters_sharing_kafka_do_not_fence_each_other() {
    let env = TestEnv::new("exactly_once_clusters_sharing_kafka_do_not_fence_each_other").await;
    env.finish(two_clusters(&env).await);
}

fn offsets_of(reply: &Reply) -> anyhow::Result<Vec<Value>> {
    reply.expect_status(200, "GET offsets")?;
    Ok(reply.json()?["offsets"].as_array().context("no offsets array")?.clone())
}

async fn source_position(rest: &RestClient, name: &str) -> anyhow::Result<Option<Value>> {
    let offsets = offsets_of(&rest.get(&format!("/connectors/{name}/offsets")).await?)?;
    Ok(offsets.first().map(|o| o["offset"]["position"].clone()))
}

async fn stop(rest: &RestClient, name: &str) -> anyhow::Result<()> {
    rest.put(&format!("/connectors/{name}/stop"), &json!(null)).await?.expect_status(204, "stop")?;
    rest.wait_for_status_matching(name, "STOPPED", WAIT, |s| s["connector"]["state"] == "STOPPED").await?;
    Ok(())
}

async fn resume(rest: &RestClient, name: &str) -> anyhow::Result<()> {
    rest.put(&format!("/connectors/{name}/resume"), &json!(null)).await?.expect_status(202, "resume")?;
    Ok(())
}

/// Waits until `read_committed` shows `count` records in `topic`, then a moment longer to catch any extra one.
async fn committed_values(kafka: &str, topic: &str, count: usize) -> anyhow::Result<Vec<String>> {
    wait_until(WAIT, format!("{count} committed records in {topic}"), || async {
        let values = read_committed(kafka, topic).await?;
        Ok((values.len() >= count).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    read_committed(kafka, topic).await
}

async fn rest_offsets(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let cluster = env.unique("eos-rest");
    let cp = ControlPlane::start(env, &cluster, &env.services.etcd).await?;
    let agent =
        Agent::start_with_worker(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, EOS_WORKER, &[]).await?;
    let rest = &cp.rest;

    let topic = env.unique("eos-lines");
    create_topic(kafka, &topic, 1).await?;
    let input = env.path("input.txt");
    let lines = numbered_lines("line", 0, N);
    append_lines(&input, &lines)?;
    let size = std::fs::metadata(&input)?.len();
    let source = env.unique("eos-source");
    let mut config = file_source(&input, &topic);
    config["exactly.once.support"] = json!("required");
    rest.create_connector(&source, &config).await?;
    let values = committed_values(kafka, &topic, N).await?;
    ensure!(values == lines, "first run: {} records, expected the {N} lines once", values.len());
    wait_until(WAIT, "GET offsets at the end of the file", || async {
        Ok((source_position(rest, &source).await? == Some(json!(size))).then_some(()))
    })
    .await?;

    // The transactional id and the default offsets topic carry the cluster name.
    let offsets_topic = format!("sluice-{cluster}-offsets");
    ensure!(topic_exists(kafka, &offsets_topic).await?, "no default offsets topic {offsets_topic}");
    let transactional_id = format!("sluice-{cluster}-{source}-0");
    ensure!(agent.process.log_text().contains(&transactional_id), "the agent never used `{transactional_id}`");
    env.note(format!("transactional id {transactional_id}, offsets topic {offsets_topic}"));

    // Stop and resume without a change: the task goes on where it was.
    stop(rest, &source).await?;
    resume(rest, &source).await?;
    let more = numbered_lines("more", 0, 10);
    append_lines(&input, &more)?;
    let mut expected: Vec<String> = lines.iter().chain(&more).cloned().collect();
    let values = committed_values(kafka, &topic, expected.len()).await?;
    ensure!(values == expected, "after stop + resume: {} records, expected {}", values.len(), expected.len());

    // PATCH to line K while STOPPED: GET shows it, and the resumed task re-reads from there.
    stop(rest, &source).await?;
    let rewind = K * (lines[0].len() + 1);
    let patch =
        json!({"offsets": [{"partition": {"filename": input.display().to_string()}, "offset": {"position": rewind}}]});
    rest.patch(&format!("/connectors/{source}/offsets"), &patch).await?.expect_status(200, "PATCH offsets")?;
    let shown = source_position(rest, &source).await?;
    ensure!(shown == Some(json!(rewind)), "GET after PATCH: {shown:?}, expected {rewind}");
    resume(rest, &source).await?;
    expected.extend(lines[K..].iter().chain(&more).cloned());
    let values = committed_values(kafka, &topic, expected.len()).await?;
    ensure!(values == expected, "after PATCH to line {K}: {} records, expected {}", values.len(), expected.len());
    let size = std::fs::metadata(&input)?.len();
    wait_until(WAIT, "GET offsets at the end of the file after the PATCH", || async {
        Ok((source_position(rest, &source).await? == Some(json!(size))).then_some(()))
    })
    .await?;
    env.note(format!("PATCH to line {K}: {} committed records", values.len()));

    // DELETE while STOPPED: GET shows nothing, and the resumed task reads the whole file again.
    stop(rest, &source).await?;
    rest.delete(&format!("/connectors/{source}/offsets")).await?.expect_status(200, "DELETE offsets")?;
    let shown = source_position(rest, &source).await?;
    ensure!(shown.is_none(), "GET after DELETE: {shown:?}");
    resume(rest, &source).await?;
    expected.extend(lines.iter().chain(&more).cloned());
    let values = committed_values(kafka, &topic, expected.len()).await?;
    ensure!(values == expected, "after DELETE: {} records, expected {}", values.len(), expected.len());
    env.note(format!("DELETE offsets: {} committed records", values.len()));
    // Created, PATCHed, DELETEd: three times task 0 wrote the control plane's offsets into the offsets topic.
    let written = agent.process.log_text().matches("new offsets generation in the offsets topic").count();
    ensure!(written == 3, "the task took over new offsets {written} times, expected 3");

    // Delete and create again under the same name (to a new topic): a fresh start from the beginning of the file.
    rest.delete(&format!("/connectors/{source}")).await?.expect_status(204, "DELETE connector")?;
    let again = env.unique("eos-lines-again");
    create_topic(kafka, &again, 1).await?;
    let mut config = file_source(&input, &again);
    config["exactly.once.support"] = json!("required");
    rest.create_connector(&source, &config).await?;
    let all: Vec<String> = lines.iter().chain(&more).cloned().collect();
    let values = committed_values(kafka, &again, all.len()).await?;
    ensure!(values == all, "recreated connector: {} records, expected the whole file ({})", values.len(), all.len());
    ensure!(read_committed(kafka, &topic).await?.len() == expected.len(), "the old topic got records again");
    Ok(())
}

/// Two clusters, one Kafka, the same connector name: both deliver every line exactly once and never fence each other.
async fn two_clusters(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let name = env.unique("same-name");
    let mut runs = Vec::new();
    for side in ["east", "west"] {
        let cluster = env.unique(side);
        let cp = ControlPlane::start(env, &cluster, &env.services.etcd).await?;
        let agent_id = env.unique(&format!("{side}-agent"));
        let agent = Agent::start_with_worker(env, &[cp.grpc_endpoint()], &agent_id, kafka, EOS_WORKER, &[]).await?;
        let topic = env.unique(&format!("{side}-lines"));
        create_topic(kafka, &topic, 1).await?;
        let input = env.path(&format!("{side}.txt"));
        append_lines(&input, &[])?;
        let mut config = file_source(&input, &topic);
        config["exactly.once.support"] = json!("required");
        cp.rest.create_connector(&name, &config).await?;
        cp.rest.wait_for_status(&name, "RUNNING", WAIT).await?;
        runs.push((cluster, cp, agent, topic, input));
    }
    // Both produce at the same time, in many small transactions.
    let lines = numbered_lines("tick", 0, 400);
    let writers: Vec<LineWriter> = runs
        .iter()
        .map(|(_, _, _, _, input)| LineWriter::start(input, lines.clone(), 10, Duration::from_millis(50)))
        .collect();
    for writer in writers {
        writer.finish().await?;
    }
    for (cluster, cp, agent, topic, _) in &mut runs {
        let values = committed_values(kafka, topic, lines.len()).await?;
        analyze(&lines, &values).check_exact(&format!("cluster {cluster}"))?;
        let status = cp.rest.status(&name).await?;
        ensure!(task_state(&status, 0).as_deref() == Some("RUNNING"), "cluster {cluster}: {status}");
        let log = agent.process.log_text();
        ensure!(log.contains(&format!("sluice-{cluster}-{name}-0")), "cluster {cluster}: transactional id not used");
        for sign in ["failed to commit the transaction", "task failed"] {
            if let Some(line) = log.lines().find(|l| l.contains(sign)) {
                bail!("cluster {cluster}: the task was disturbed: {line}");
            }
        }
        ensure!(topic_exists(kafka, &format!("sluice-{cluster}-offsets")).await?, "no offsets topic of {cluster}");
    }
    env.note(format!("two clusters, connector {name}: {} lines each, exactly once, no fencing", lines.len()));
    Ok(())
}

/// Every value of `topic` (all partitions) from the beginning up to the current end, as `read_committed` sees it.
async fn read_committed(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<String>> {
    Ok(read_transactional(bootstrap, topic, "read_committed").await?.into_iter().map(|(_, v)| v).collect())
}
