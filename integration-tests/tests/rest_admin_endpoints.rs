//! The rest of Kafka Connect's REST API against a real control plane and agent, and the same operations through
//! the admin gRPC API (grpcurl): config providers resolved on the agent only, the topics a connector used,
//! plugin config definitions, log levels of the running process changed for real, `initial_state`, restart codes.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::{create_topic, produce, read_topic};
use sluice_integration_tests::tools::Grpcurl;
use sluice_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_admin_endpoints() {
    let env = TestEnv::new("rest_admin_endpoints").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let mut cp = ControlPlane::start(env, &env.unique("admin"), &env.services.etcd).await?;
    // Config providers are off unless the worker lists them; this one may read the test's directory only.
    let allowed = env.dir().display().to_string();
    let providers = [
        ("config.providers", "file"),
        ("config.providers.file.class", "org.apache.kafka.common.config.provider.FileConfigProvider"),
        ("config.providers.file.param.allowed.paths", allowed.as_str()),
    ];
    let _agent =
        Agent::start_with_worker(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &providers, &[]).await?;
    let rest = cp.rest.clone();

    // Config providers: the input path and a password come from a properties file that only the agent reads.
    let input = env.path("input.txt");
    let lines = numbered_lines("secret-line", 0, 20);
    append_lines(&input, &lines)?;
    let secrets = write_properties(
        &env.path("secrets.properties"),
        &[("input", &input.display().to_string()), ("password", "hunter2")],
    )?;
    let topic = env.unique("provided");
    let source = env.unique("provided-source");
    let file_ref = format!("${{file:{}:input}}", secrets.display());
    let password_ref = format!("${{file:{}:password}}", secrets.display());
    let mut config = file_source(&input, &topic);
    config["file"] = json!(file_ref);
    config["connection.password"] = json!(password_ref);
    rest.create_connector(&source, &config).await?;
    let records = wait_until(WAIT, format!("20 records in {topic}"), || async {
        let records = read_topic(kafka, &topic).await?;
        Ok((records.len() >= lines.len()).then_some(records))
    })
    .await?;
    ensure!(records == lines, "records read through ${{file:...}}: {records:?}");
    let shown = rest.get(&format!("/connectors/{source}/config")).await?.json()?.clone();
    ensure!(shown["file"] == file_ref.as_str(), "the stored config must keep the reference: {shown}");
    ensure!(shown["connection.password"] == password_ref.as_str(), "a reference is not a secret: {shown}");
    ensure!(!cp.process.log_text().contains("hunter2"), "the control plane saw the resolved secret");

    // Issue 13, finding 2: a connector config cannot read a host file outside the allowed paths (before: the
    // agent host's /etc/passwd line went into every record). The task fails saying why; nothing reaches Kafka.
    let passwd_topic = env.unique("passwd");
    let passwd_source = env.unique("passwd-source");
    let mut config = file_source(&input, &passwd_topic);
    config["transforms"] = json!("leak");
    config["transforms.leak.type"] = json!("org.apache.kafka.connect.transforms.InsertField$Value");
    config["transforms.leak.static.field"] = json!("root");
    config["transforms.leak.static.value"] = json!("${file:/etc/passwd:root}");
    config["value.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
    config["value.converter.schemas.enable"] = json!("false");
    config["task.restart.on.failure"] = json!("false");
    rest.create_connector(&passwd_source, &config).await?;
    let status = rest
        .wait_for_status_matching(&passwd_source, "the task FAILED", WAIT, |s| s["tasks"][0]["state"] == "FAILED")
        .await?;
    let trace = status["tasks"][0]["trace"].as_str().unwrap_or_default().to_string();
    ensure!(trace.contains("outside the allowed paths"), "the task should fail on the allowed paths: {status}");
    ensure!(!trace.contains("/bin/"), "the trace shows what was read: {trace}");
    let leaked = read_topic(kafka, &passwd_topic).await.unwrap_or_default();
    ensure!(leaked.is_empty(), "records with a host file's content reached Kafka: {leaked:?}");
    rest.delete(&format!("/connectors/{passwd_source}")).await?;

    // Topics: a source's topics are those its tasks produced to, reported by the agent.
    let topics = wait_until(WAIT, "the source's topics", || async {
        let reply = rest.get(&format!("/connectors/{source}/topics")).await?;
        reply.expect_status(200, "GET topics")?;
        let topics = reply.json()?[source.as_str()]["topics"].clone();
        Ok((topics != json!([])).then_some(topics))
    })
    .await?;
    ensure!(topics == json!([topic]), "source topics: {topics}");
    rest.put(&format!("/connectors/{source}/topics/reset"), &json!(null)).await?.expect_status(202, "reset topics")?;
    let reply = rest.get(&format!("/connectors/{source}/topics")).await?;
    ensure!(reply.json()?[source.as_str()]["topics"] == json!([]), "after reset: {}", reply.body);
    let message = rest.get("/connectors/nope/topics").await?.expect_error(404, "topics of unknown connector")?;
    ensure!(message == "Connector nope not found", "topics 404: {message}");

    // A sink with `topics.regex`: its topics are those it consumed from, reported by the agent.
    let prefix = env.unique("regex");
    let regex_topics = [format!("{prefix}-one"), format!("{prefix}-two")];
    for topic in &regex_topics {
        create_topic(kafka, topic, 1).await?;
        produce(kafka, topic, &[b"regex-line"]).await?;
    }
    let sink = env.unique("regex-sink");
    let mut config = file_sink(&env.path("regex-out.txt"), "");
    config.as_object_mut().context("sink config")?.remove("topics");
    config["topics.regex"] = json!(format!("{prefix}-.*"));
    rest.create_connector(&sink, &config).await?;
    let topics = wait_until(WAIT, "the regex sink's topics", || async {
        let reply = rest.get(&format!("/connectors/{sink}/topics")).await?;
        let topics = reply.json()?[sink.as_str()]["topics"].clone();
        Ok((topics.as_array().is_some_and(|t| t.len() == 2)).then_some(topics))
    })
    .await?;
    ensure!(topics == json!(regex_topics), "topics.regex sink topics: {topics}");
    rest.put(&format!("/connectors/{sink}/topics/reset"), &json!(null)).await?.expect_status(202, "reset sink")?;
    let reply = rest.get(&format!("/connectors/{sink}/topics")).await?;
    ensure!(reply.json()?[sink.as_str()]["topics"] == json!([]), "sink topics after reset: {}", reply.body);
    rest.delete(&format!("/connectors/{sink}")).await?.expect_status(204, "delete the regex sink")?;

    // Plugins: every type is listed with connectorsOnly=false; config definitions of connectors and transforms.
    let plugins = rest.get("/connector-plugins?connectorsOnly=false").await?;
    let types: Vec<String> =
        plugins.json()?.as_array().context("plugins")?.iter().map(|p| p["type"].to_string()).collect();
    for wanted in ["source", "sink", "converter", "header_converter", "transformation", "predicate"] {
        ensure!(types.iter().any(|t| t.trim_matches('"') == wanted), "no {wanted} plugin in {}", plugins.body);
    }
    let keys = rest.get("/connector-plugins/FileStreamSource/config").await?;
    keys.expect_status(200, "plugin config")?;
    let names: Vec<&str> = keys.json()?.as_array().context("keys")?.iter().filter_map(|k| k["name"].as_str()).collect();
    ensure!(names.contains(&"file") && names.contains(&"tasks.max"), "FileStreamSource keys: {names:?}");
    let transform = rest.get("/connector-plugins/org.apache.kafka.connect.transforms.InsertField$Value/config").await?;
    transform.expect_status(200, "transform config")?;
    let message = rest.get("/connector-plugins/NoSuchPlugin/config").await?.expect_error(404, "unknown plugin")?;
    ensure!(message == "Unknown plugin NoSuchPlugin.", "unknown plugin: {message}");

    // initial_state and restart codes.
    let paused = env.unique("paused");
    let body = json!({"name": paused, "config": file_source(&input, &env.unique("t")), "initial_state": "PAUSED"});
    let reply = rest.post("/connectors", &body).await?;
    reply.expect_status(201, "create PAUSED")?;
    // As Kafka Connect 4.1.2: created PAUSED, a connector has no tasks until it first runs.
    ensure!(reply.json()?["tasks"] == json!([]), "created PAUSED: {}", reply.body);
    let status = rest.status(&paused).await?;
    ensure!(status["connector"]["state"] == "PAUSED" && status["tasks"] == json!([]), "created PAUSED: {status}");
    rest.put(&format!("/connectors/{paused}/resume"), &json!(null)).await?.expect_status(202, "resume")?;
    rest.wait_for_status(&paused, "RUNNING", WAIT).await?;
    rest.put(&format!("/connectors/{paused}/pause"), &json!(null)).await?.expect_status(202, "pause")?;
    rest.wait_for_status(&paused, "PAUSED", WAIT).await?;
    rest.request(reqwest::Method::POST, &format!("/connectors/{paused}/restart"), None)
        .await?
        .expect_status(204, "restart connector only")?;
    let reply =
        rest.request(reqwest::Method::POST, &format!("/connectors/{paused}/restart?includeTasks=true"), None).await?;
    reply.expect_status(202, "restart with tasks")?;
    ensure!(reply.json()?["tasks"][0]["state"] == "RESTARTING", "restart answer: {}", reply.body);

    // Log levels of the running process: debug lines appear after the change and stop after the change back.
    let loggers = rest.get("/admin/loggers").await?;
    ensure!(loggers.json()?["root"]["level"] == "INFO", "loggers: {}", loggers.body);
    let debug_lines = |cp: &mut ControlPlane| cp.process.log_text().matches("rest request").count();
    ensure!(debug_lines(&mut cp) == 0, "debug lines before the change");
    let reply = rest.put("/admin/loggers/sluice_control_plane", &json!({"level": "DEBUG"})).await?;
    reply.expect_status(200, "set DEBUG")?;
    // The logger and every module below it, as log4j changes the loggers below (issue 12 item 9).
    let changed = reply.json()?.as_array().context("changed loggers")?.clone();
    ensure!(
        changed.first() == Some(&json!("sluice_control_plane"))
            && changed.contains(&json!("sluice_control_plane::rest"))
            && changed.iter().all(|c| c.as_str().is_some_and(|c| c.starts_with("sluice_control_plane"))),
        "changed loggers: {}",
        reply.body
    );
    rest.get("/connectors").await?;
    wait_until(Duration::from_secs(10), "debug lines in the control plane's log", || {
        let n = debug_lines(&mut cp);
        async move { Ok((n > 0).then_some(())) }
    })
    .await?;
    let level = rest.get("/admin/loggers/sluice_control_plane").await?;
    ensure!(level.json()?["level"] == "DEBUG" && level.json()?["last_modified"].is_i64(), "{}", level.body);
    let reply = rest.put("/admin/loggers/sluice_control_plane?scope=cluster", &json!({"level": "INFO"})).await?;
    reply.expect_status(204, "set INFO, cluster scope")?;
    let before = debug_lines(&mut cp);
    for _ in 0..3 {
        rest.get("/connectors").await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(debug_lines(&mut cp) == before, "debug lines kept coming after the level went back to INFO");

    // The same operations over gRPC, with the same answers (once the source committed an offset).
    wait_until(WAIT, "a committed source offset", || async {
        let reply = rest.get(&format!("/connectors/{source}/offsets")).await?;
        Ok((reply.json()?["offsets"] != json!([])).then_some(()))
    })
    .await?;
    let grpcurl = Grpcurl::new(format!("127.0.0.1:{}", cp.grpc_port)).await?;
    let health = grpcurl.call("sluice.admin.v1.AdminService/GetHealth", &json!({}))?;
    ensure!(health["status"] == "healthy", "GetHealth: {health}");
    let offsets = grpcurl.call("sluice.admin.v1.AdminService/GetConnectorOffsets", &json!({"name": source}))?;
    let first = offsets["offsets"][0]["partitionJson"].as_str().unwrap_or_default();
    ensure!(first.contains("input.txt"), "GetConnectorOffsets: {offsets}");
    let failure = grpcurl.fail("sluice.admin.v1.AdminService/ResetConnectorOffsets", &json!({"name": source}))?;
    ensure!(
        failure.contains("InvalidArgument") && failure.contains("Connectors must be in the STOPPED state"),
        "ResetConnectorOffsets on a running connector: {failure}"
    );
    let topics = grpcurl.call("sluice.admin.v1.AdminService/GetConnectorTopics", &json!({"name": source}))?;
    ensure!(topics["name"] == source.as_str(), "GetConnectorTopics: {topics}");
    let keys =
        grpcurl.call("sluice.admin.v1.AdminService/GetConnectorPluginConfig", &json!({"plugin": "FileStreamSink"}))?;
    ensure!(
        keys["configs"].as_array().is_some_and(|k| k.iter().any(|k| k["name"] == "topics")),
        "plugin config: {keys}"
    );
    let failure = grpcurl.fail("sluice.admin.v1.AdminService/GetConnectorPluginConfig", &json!({"plugin": "Nope"}))?;
    ensure!(failure.contains("NotFound") && failure.contains("Unknown plugin Nope."), "{failure}");
    let changed = grpcurl.call(
        "sluice.admin.v1.AdminService/SetLoggerLevel",
        &json!({"name": "sluice_control_plane::leader", "level": "WARN"}),
    )?;
    ensure!(changed["changed"] == json!(["sluice_control_plane::leader"]), "SetLoggerLevel: {changed}");
    let loggers = grpcurl.call("sluice.admin.v1.AdminService/ListLoggers", &json!({}))?;
    ensure!(loggers["loggers"]["sluice_control_plane::leader"]["level"] == "WARN", "ListLoggers: {loggers}");
    let level: Value = rest.get("/admin/loggers/sluice_control_plane::leader").await?.json()?.clone();
    ensure!(level["level"] == "WARN", "REST sees the gRPC change: {level}");
    Ok(())
}
