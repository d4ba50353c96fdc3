//! Issue 12: what real Kafka Connect clients rely on, against a real control plane and agent: `GET /` reports the
//! Kafka Connect API level (4.1.2) with Sluice's own version apart, statuses carry the plugin version, a restart
//! shows RESTARTING from the moment it is accepted (never the pre-restart state, never UNASSIGNED) until the task
//! runs again, task configs are Kafka Connect's (connector config plus `task.class`), OPTIONS and CORS as Kafka
//! Connect's `access.control.allow.*` settings, 406 for `Accept: text/html`, and the loggers of the process listed
//! per module. The side-by-side comparison with the real Kafka Connect is `deploy/compat/rest-compare`.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_kafka_connect_fidelity() {
    let env = TestEnv::new("rest_kafka_connect_fidelity").await;
    env.finish(run(&env).await);
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let args = ["--access-control-allow-origin", "http://console.example", "--access-control-allow-methods", "GET,PUT"]
        .map(String::from);
    let cp =
        ControlPlane::start_replica_with_args(env, &env.unique("fidelity"), &env.services.etcd, "cp", &args).await?;
    let _agent = Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka).await?;
    let rest = cp.rest.clone();

    // Item 1: the Kafka Connect API level, as Kafka Connect answers it, and Sluice's own version apart.
    let info = rest.get("/").await?.json()?.clone();
    ensure!(info["version"] == "4.1.2", "GET / version: {info}");
    ensure!(info["sluice_version"] == env!("CARGO_PKG_VERSION"), "GET / sluice_version: {info}");
    let plugins = rest.get("/connector-plugins").await?.json()?.clone();
    ensure!(
        // Kafka Connect's own plugins report 4.1.2; drop-ins for other projects' connectors report those versions.
        plugins.as_array().is_some_and(|p| p
            .iter()
            .filter(|p| p["class"].as_str().is_some_and(|c| c.starts_with("org.apache.kafka.")))
            .all(|p| p["version"] == "4.1.2")),
        "plugin versions: {plugins}"
    );

    let input = env.path("input.txt");
    append_lines(&input, &numbered_lines("fidelity", 0, 5))?;
    let topic = env.unique("fidelity");
    let source = env.unique("source");
    let sink = env.unique("sink");
    rest.create_connector(&source, &file_source(&input, &topic)).await?;
    let mut sink_config = file_sink(&env.path("out.txt"), &topic);
    sink_config["tasks.max"] = json!("2");
    rest.create_connector(&sink, &sink_config).await?;
    for name in [&source, &sink] {
        rest.wait_for_status_matching(name, "RUNNING", WAIT, |s| all_in_state(s, "RUNNING")).await?;
    }

    // Item 4: the plugin version in every status.
    let status = rest.status(&source).await?;
    ensure!(status["connector"]["version"] == "4.1.2", "connector status version: {status}");
    ensure!(status["tasks"][0]["version"] == "4.1.2", "task status version: {status}");
    let task = rest.get(&format!("/connectors/{sink}/tasks/1/status")).await?.json()?.clone();
    ensure!(task["version"] == "4.1.2", "task status: {task}");
    let expanded = rest.get("/connectors?expand=status").await?.json()?.clone();
    ensure!(expanded[sink.as_str()]["status"]["tasks"][1]["version"] == "4.1.2", "expand=status: {expanded}");

    // Item 7: task configs are the connector's config plus task.class, as Kafka Connect's.
    let tasks = rest.get(&format!("/connectors/{source}/tasks")).await?.json()?.clone();
    let mut expected = rest.get(&format!("/connectors/{source}/config")).await?.json()?.clone();
    expected["task.class"] = json!("org.apache.kafka.connect.file.FileStreamSourceTask");
    ensure!(tasks[0]["config"] == expected, "source task config: {tasks}");
    let tasks = rest.get(&format!("/connectors/{sink}/tasks")).await?.json()?.clone();
    let sink_tasks = tasks.as_array().context("sink tasks")?;
    ensure!(
        sink_tasks.len() == 2
            && sink_tasks
                .iter()
                .all(|t| t["config"]["task.class"] == "org.apache.kafka.connect.file.FileStreamSinkTask"
                    && t["config"]["topics"] == topic.as_str()),
        "sink task configs: {tasks}"
    );

    // Item 3: RESTARTING from the 202 on, until the restarted tasks run; never the pre-restart state.
    let reply = rest.post(&format!("/connectors/{sink}/restart?includeTasks=true"), &json!(null)).await?;
    reply.expect_status(202, "restart with tasks")?;
    let body = reply.json()?.clone();
    ensure!(body["tasks"].as_array().is_some_and(|t| t.len() == 2), "202 body: {body}");
    ensure!(all_in_state(&body, "RESTARTING"), "202 body: {body}");
    ensure!(body["tasks"][0]["version"] == "4.1.2", "202 body carries versions: {body}");
    let seen = states_until_running(&rest, &sink, None).await?;
    env.note(format!("task states after the restart: {seen:?}"));

    let reply = rest.post(&format!("/connectors/{source}/tasks/0/restart"), &json!(null)).await?;
    reply.expect_status(204, "restart task")?;
    let seen = states_until_running(&rest, &source, Some(0)).await?;
    env.note(format!("task states after the task restart: {seen:?}"));

    // Item 8: OPTIONS, CORS and 406.
    let http = reqwest::Client::new();
    let url = format!("{}/connectors", rest.base());
    let reply = http.request(reqwest::Method::OPTIONS, &url).send().await?;
    ensure!(reply.status() == 200, "OPTIONS: {}", reply.status());
    let allow = reply.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort();
    ensure!(methods == ["GET", "HEAD", "OPTIONS", "POST"], "Allow: {allow}");
    let reply = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "http://console.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await?;
    let header = |name: &str| reply.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
    ensure!(header("access-control-allow-origin").as_deref() == Some("http://console.example"), "preflight");
    ensure!(header("access-control-allow-methods").as_deref() == Some("GET,PUT"), "preflight methods");
    let reply = http.get(&url).header("Origin", "http://elsewhere.example").send().await?;
    ensure!(reply.headers().get("access-control-allow-origin").is_none(), "an origin not allowed gets no CORS");
    let reply = http.get(&url).header("Accept", "text/html").send().await?;
    ensure!(reply.status() == 406, "Accept: text/html: {}", reply.status());
    let body: Value = reply.json().await?;
    ensure!(body == json!({"error_code": 406, "message": "HTTP 406 Not Acceptable"}), "406 body: {body}");

    // Item 9: the control plane's loggers, per module, without the agent's (another process).
    let loggers = rest.get("/admin/loggers").await?.json()?.clone();
    let names: Vec<&String> = loggers.as_object().context("loggers")?.keys().collect();
    for module in ["root", "sluice_control_plane::rest", "sluice_control_plane::scheduler", "sluice_connector_file"] {
        ensure!(names.iter().any(|n| *n == module), "{module} not among the loggers: {names:?}");
    }
    ensure!(!names.iter().any(|n| n.starts_with("sluice_agent")), "agent modules listed by the control plane");
    let logger = rest.get("/admin/loggers/sluice_control_plane::leader").await?;
    logger.expect_status(200, "a module's level")?;

    // Item 10: an unknown connector.class is a 400 (Kafka Connect 4.1.2 answers 400 too).
    let bad = json!({"name": env.unique("bad"), "config": {"connector.class": "NoSuchConnector"}});
    rest.post("/connectors", &bad).await?.expect_error(400, "unknown connector.class")?;
    Ok(())
}

/// Polls a connector's status as fast as it answers until the tasks (or `task`) run again, checking that every
/// state seen on the way is RESTARTING: the first answer after the restart request included.
async fn states_until_running(rest: &RestClient, name: &str, task: Option<usize>) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let status = rest.status(name).await?;
        let tasks = status["tasks"].as_array().context("tasks")?.clone();
        let watched: Vec<&Value> = match task {
            Some(t) => tasks.iter().filter(|s| s["id"] == t).collect(),
            None => tasks.iter().collect(),
        };
        let states: Vec<String> = watched.iter().map(|t| t["state"].as_str().unwrap_or_default().to_string()).collect();
        let summary = states.join(",");
        if seen.last() != Some(&summary) {
            seen.push(summary);
        }
        if seen.len() == 1 {
            ensure!(states.iter().all(|s| s == "RESTARTING"), "first status after the restart: {status}");
        }
        if states.iter().all(|s| s == "RUNNING") {
            return Ok(seen);
        }
        ensure!(
            states.iter().all(|s| s == "RESTARTING" || s == "RUNNING"),
            "a restarted task must show RESTARTING until it runs again, not {status}"
        );
        ensure!(started.elapsed() < WAIT, "tasks of {name} not RUNNING again: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
