//! HTTP-layer tests of the REST gateway against [`FakeApi`]: routing, status codes, headers and error bodies.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::router;
use super::testing::FakeApi;
use crate::api::{ApiError, ApiErrorKind};

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts Kafka Connect's error body and returns its message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.headers["content-type"], "application/json");
        let body = self.json();
        assert_eq!(body["error_code"], status, "body: {}", self.body);
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "body: {}", self.body);
        body["message"].as_str().unwrap_or_default().to_string()
    }
}

async fn call(app: &Router, method: &str, uri: &str, body: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn app_with(names: &[&str]) -> (Router, Arc<FakeApi>) {
    let fake = Arc::new(FakeApi::with(names));
    (router(fake.clone()), fake)
}

fn calls(fake: &FakeApi) -> Vec<String> {
    fake.calls.lock().map(|c| c.clone()).unwrap_or_default()
}

#[tokio::test]
async fn server_info_at_root() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "GET", "/", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"version": "4.1.2", "commit": "abc", "kafka_cluster_id": null, "sluice_version": "0.1.0"})
    );
}

#[tokio::test]
async fn health_reports_starting_when_unavailable() {
    let (app, fake) = app_with(&[]);
    assert_eq!(call(&app, "GET", "/health", "").await.json()["status"], "healthy");
    *fake.fail_with.lock().expect("lock") = Some(ApiError::unavailable("no leader"));
    let reply = call(&app, "GET", "/health", "").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json(), json!({"status": "starting", "message": "no leader"}));
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "GET", "/no/such/path", "").await;
    assert_eq!(reply.error(404), "HTTP 404 Not Found");
}

#[tokio::test]
async fn wrong_method_is_a_json_405_with_allow() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "DELETE", "/connectors", "").await;
    assert_eq!(reply.error(405), "HTTP 405 Method Not Allowed");
    assert!(reply.headers.contains_key("allow"));
}

#[tokio::test]
async fn malformed_json_is_a_json_400() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "POST", "/connectors", r#"{"name": "a", "config": {"#).await;
    assert!(reply.error(400).starts_with("Request body is not valid JSON"));
}

#[tokio::test]
async fn malformed_query_is_a_json_400() {
    let (app, _) = app_with(&["a"]);
    let reply = call(&app, "POST", "/connectors/a/restart?includeTasks=yes", "").await;
    assert!(reply.error(400).contains("includeTasks"));
}

#[tokio::test]
async fn service_errors_keep_status_and_message() {
    let (app, fake) = app_with(&[]);
    assert_eq!(call(&app, "GET", "/connectors/missing", "").await.error(404), "Connector missing not found");
    *fake.fail_with.lock().expect("lock") = Some(ApiError::new(ApiErrorKind::Conflict, "stale"));
    assert_eq!(call(&app, "GET", "/connectors", "").await.error(409), "stale");
    *fake.fail_with.lock().expect("lock") = Some(ApiError::internal("boom"));
    assert_eq!(call(&app, "GET", "/", "").await.error(500), "boom");
}

#[tokio::test]
async fn list_connectors_plain_and_expanded() {
    let (app, _) = app_with(&["b", "a"]);
    assert_eq!(call(&app, "GET", "/connectors", "").await.json(), json!(["a", "b"]));
    assert_eq!(call(&app, "GET", "/connectors/", "").await.json(), json!(["a", "b"]));

    let expanded = call(&app, "GET", "/connectors?expand=status&expand=info&forward=true", "").await.json();
    assert_eq!(expanded["a"]["status"]["connector"]["state"], "RUNNING");
    assert_eq!(expanded["a"]["info"]["type"], "source");
    assert_eq!(expanded["b"]["info"]["name"], "b");

    let status_only = call(&app, "GET", "/connectors?expand=status", "").await.json();
    assert!(status_only["a"].get("info").is_none());
    assert_eq!(call(&app, "GET", "/connectors?expand=bogus", "").await.json(), json!({"a": {}, "b": {}}));
}

#[tokio::test]
async fn create_answers_201_with_location() {
    let (app, fake) = app_with(&[]);
    let body = r#"{"name": "  my conn ", "config": {"connector.class": "FileStreamSource", "tasks.max": 1},
                   "initial_state": "PAUSED"}"#;
    let reply = call(&app, "POST", "/connectors", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.headers["location"], "/connectors/my%20conn");
    let info = reply.json();
    assert_eq!(info["name"], "my conn");
    assert_eq!(info["config"], json!({"connector.class": "FileStreamSource", "name": "my conn", "tasks.max": "1"}));
    assert_eq!(calls(&fake), vec!["create my conn PAUSED"]);

    let again = call(&app, "POST", "/connectors", body).await;
    assert_eq!(again.error(409), "Connector my conn already exists");
}

#[tokio::test]
async fn create_rejects_a_mismatched_or_missing_name() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "POST", "/connectors", r#"{"name": "a", "config": {"name": "b"}}"#).await;
    assert_eq!(reply.error(400), "Connector name configuration (b) doesn't match connector name in the URL (a)");
    let reply = call(&app, "POST", "/connectors", r#"{"config": {"connector.class": "X"}}"#).await;
    assert_eq!(reply.error(400), "Connector config is missing the name");
    let reply = call(&app, "POST", "/connectors", "").await;
    assert!(reply.error(400).starts_with("Request body is empty"));
}

#[tokio::test]
async fn create_from_a_properties_body() {
    let (app, _) = app_with(&[]);
    let body = "# my connector\nname=props\nconnector.class=FileStreamSource\ntopic=t\n";
    let reply = call(&app, "POST", "/connectors/", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.json()["config"], json!({"connector.class": "FileStreamSource", "name": "props", "topic": "t"}));
}

#[tokio::test]
async fn put_config_creates_then_updates() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "PUT", "/connectors/c/config", r#"{"connector.class": "FileStreamSource"}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["location"], "/connectors/c");
    let reply = call(&app, "PUT", "/connectors/c/config", r#"{"connector.class": "FileStreamSink"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("location").is_none());
    assert_eq!(
        call(&app, "GET", "/connectors/c/config", "").await.json(),
        json!({"connector.class": "FileStreamSink"})
    );
}

#[tokio::test]
async fn patch_config_null_deletes() {
    let (app, _) = app_with(&["a"]);
    let reply = call(&app, "PATCH", "/connectors/a/config", r#"{"connector.class": null, "topic": "t"}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["config"], json!({"name": "a", "topic": "t"}));
    assert_eq!(
        call(&app, "PATCH", "/connectors/a/config", "[1]").await.error(400),
        "Request body must be a JSON object of configuration keys"
    );
    assert_eq!(call(&app, "PATCH", "/connectors/zz/config", "{}").await.error(404), "Connector zz not found");
}

#[tokio::test]
async fn status_tasks_and_task_status() {
    let (app, _) = app_with(&["a"]);
    let status = call(&app, "GET", "/connectors/a/status", "").await.json();
    assert_eq!(
        status["tasks"][0],
        json!({"id": 0, "state": "RUNNING", "worker_id": "w1:8083", "trace": "boom", "version": "4.1.2"})
    );
    assert_eq!(status["connector"]["version"], "4.1.2");
    assert!(status["connector"].get("trace").is_none());
    let tasks = call(&app, "GET", "/connectors/a/tasks", "").await.json();
    assert_eq!(tasks[0]["id"], json!({"connector": "a", "task": 0}));
    assert_eq!(call(&app, "GET", "/connectors/a/tasks/0/status", "").await.json()["state"], "RUNNING");
    assert_eq!(call(&app, "GET", "/connectors/a/tasks/7/status", "").await.error(404), "No status found for task a-7");
    assert!(call(&app, "GET", "/connectors/a/tasks/x/status", "").await.error(404).contains("task ids are numbers"));
    assert_eq!(call(&app, "GET", "/connectors/zz/status", "").await.error(404), "No status found for connector zz");
}

#[tokio::test]
async fn lifecycle_status_codes() {
    let (app, fake) = app_with(&["a"]);
    let pause = call(&app, "PUT", "/connectors/a/pause", "").await;
    assert_eq!((pause.status, pause.body.as_str()), (StatusCode::ACCEPTED, ""));
    assert_eq!(call(&app, "PUT", "/connectors/a/resume", "").await.status, StatusCode::ACCEPTED);
    assert_eq!(call(&app, "PUT", "/connectors/a/stop", "").await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "PUT", "/connectors/zz/pause", "").await.error(404), "Unknown connector zz");
    assert_eq!(call(&app, "POST", "/connectors/a/tasks/0/restart", "").await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "POST", "/connectors/a/tasks/3/restart", "").await.error(404), "Task a-3 not found");

    let plain = call(&app, "POST", "/connectors/a/restart", "").await;
    assert_eq!((plain.status, plain.body.as_str()), (StatusCode::NO_CONTENT, ""));
    let with_tasks = call(&app, "POST", "/connectors/a/restart?includeTasks=true&onlyFailed=FALSE", "").await;
    assert_eq!(with_tasks.status, StatusCode::ACCEPTED);
    assert_eq!(with_tasks.json()["connector"]["state"], "RESTARTING");
    assert_eq!(
        calls(&fake),
        vec!["pause a", "resume a", "stop a", "restart task a 0", "restart a false false", "restart a true false"]
    );

    assert_eq!(call(&app, "DELETE", "/connectors/a", "").await.status, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "GET", "/connectors/a", "").await.error(404), "Connector a not found");
}

#[tokio::test]
async fn connector_plugins_default_to_connectors_only() {
    let (app, _) = app_with(&[]);
    let only = call(&app, "GET", "/connector-plugins", "").await.json();
    assert_eq!(only.as_array().map(Vec::len), Some(1));
    assert_eq!(only[0]["type"], "source");
    let all = call(&app, "GET", "/connector-plugins?connectorsOnly=false", "").await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn validate_takes_a_flat_config() {
    let (app, fake) = app_with(&[]);
    let body = r#"{"connector.class": "FileStreamSource", "topic": "t"}"#;
    let reply = call(&app, "PUT", "/connector-plugins/FileStreamSource/config/validate", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["error_count"], 0);
    let validated = fake.validated.lock().expect("lock").clone().expect("validated");
    assert_eq!(validated.0, "FileStreamSource");
    assert_eq!(validated.1.get("topic").map(String::as_str), Some("t"));

    let props = "connector.class=FileStreamSource\ntopic=u\n";
    let reply = call(&app, "PUT", "/connector-plugins/FileStreamSource/config/validate/", props).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let validated = fake.validated.lock().expect("lock").clone().expect("validated");
    assert_eq!(validated.1.get("topic").map(String::as_str), Some("u"));
}

#[tokio::test]
async fn serve_answers_until_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = crate::connections::ConnectionLimits::default();
    let api = Arc::new(FakeApi::with(&["a"]));
    let server = tokio::spawn(super::serve(listener, api, None, Default::default(), None, limits, async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"["a"]"#), "{answer}");
    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}

#[tokio::test]
async fn offsets_get_alter_and_reset() {
    let (app, _) = app_with(&["a"]);
    let reply = call(&app, "GET", "/connectors/a/offsets", "").await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"offsets": []})));
    let body = r#"{"offsets":[{"partition":{"filename":"/tmp/in"},"offset":{"position":3}}]}"#;
    let reply = call(&app, "PATCH", "/connectors/a/offsets", body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"message": "The offsets for this connector have been altered successfully"}));
    let reply = call(&app, "GET", "/connectors/a/offsets", "").await;
    assert_eq!(reply.json()["offsets"][0]["offset"]["position"], 3);
    let reply = call(&app, "DELETE", "/connectors/a/offsets", "").await;
    assert_eq!(reply.json()["message"], "The offsets for this connector have been reset successfully");
    assert_eq!(call(&app, "GET", "/connectors/nope/offsets", "").await.error(404), "Connector nope not found");
}

#[tokio::test]
async fn offset_bodies_are_checked_before_the_service_sees_them() {
    let (app, _) = app_with(&["a"]);
    let needed = "Partitions / offsets need to be provided for an alter offsets request";
    for body in ["", "{}", r#"{"offsets":[]}"#, r#"{"offsets":null}"#] {
        assert_eq!(call(&app, "PATCH", "/connectors/a/offsets", body).await.error(400), needed, "body {body:?}");
    }
    let message =
        call(&app, "PATCH", "/connectors/a/offsets", r#"{"offsets":[{"partition":{"f":1}}]}"#).await.error(400);
    assert!(message.contains("null"), "{message}");
    assert!(call(&app, "PATCH", "/connectors/a/offsets", "{").await.error(400).contains("not valid JSON"));
    let null_partition = r#"{"offsets":[{"partition":null,"offset":null}]}"#;
    assert_eq!(
        call(&app, "PATCH", "/connectors/a/offsets", null_partition).await.error(400),
        "Partitions may not be null"
    );
}

#[tokio::test]
async fn topics_plugin_config_and_loggers() {
    let (app, fake) = app_with(&["a"]);
    let reply = call(&app, "GET", "/connectors/a/topics", "").await;
    assert_eq!((reply.status, reply.json()), (StatusCode::OK, json!({"a": {"topics": []}})));
    assert_eq!(call(&app, "PUT", "/connectors/a/topics/reset", "").await.status, StatusCode::ACCEPTED);
    assert_eq!(call(&app, "PUT", "/connectors/b/topics/reset", "").await.error(404), "Connector b not found");

    let reply = call(&app, "GET", "/connector-plugins/FileStreamSource/config", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json().as_array().is_some_and(|keys| keys.iter().any(|k| k["name"] == "file")), "{}", reply.body);
    assert_eq!(call(&app, "GET", "/connector-plugins/Nope/config", "").await.error(404), "Unknown plugin Nope.");

    let reply = call(&app, "GET", "/admin/loggers", "").await;
    assert_eq!(reply.json()["root"], json!({"level": "INFO", "last_modified": null}));
    // Issue 12 item 9: every module is a logger, listed with the level it logs at.
    // (Other tests change the process's levels meanwhile: only the listing is checked.)
    assert!(reply.json()["sluice_control_plane::service"]["level"].is_string(), "{}", reply.body);
    let reply = call(&app, "PUT", "/admin/loggers/sluice_control_plane::rest", r#"{"level":"debug"}"#).await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::OK, json!(["sluice_control_plane::rest", "sluice_control_plane::rest::body"]))
    );
    let reply = call(&app, "PUT", "/admin/loggers/sluice_control_plane?scope=cluster", r#"{"level":"WARN"}"#).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::NO_CONTENT, ""));
    let reply = call(&app, "GET", "/admin/loggers/sluice_control_plane::rest", "").await;
    assert_eq!(reply.json()["level"], "WARN");
    assert!(reply.json()["last_modified"].is_i64());
    assert_eq!(call(&app, "GET", "/admin/loggers/x.y", "").await.error(404), "Logger x.y not found.");
    let missing = call(&app, "PUT", "/admin/loggers/x", "{}").await.error(400);
    assert_eq!(missing, "Desired 'level' parameter was not specified in request.");
    assert!(call(&app, "PUT", "/admin/loggers/x", r#"{"level":"LOUD"}"#).await.error(400).contains("LOUD"));
    assert!(calls(&fake).contains(&"logger sluice_control_plane WARN Cluster".to_string()), "{:?}", calls(&fake));
}

#[tokio::test]
async fn openapi_document_is_served_and_lists_every_route() {
    let (app, _) = app_with(&[]);
    let reply = call(&app, "GET", "/openapi.json", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.json();
    assert_eq!(document["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/",
        "/health",
        "/metrics",
        "/connectors",
        "/connectors/{name}",
        "/connectors/{name}/config",
        "/connectors/{name}/status",
        "/connectors/{name}/tasks",
        "/connectors/{name}/tasks/{task}/status",
        "/connectors/{name}/tasks/{task}/restart",
        "/connectors/{name}/restart",
        "/connectors/{name}/pause",
        "/connectors/{name}/resume",
        "/connectors/{name}/stop",
        "/connectors/{name}/offsets",
        "/connectors/{name}/topics",
        "/connectors/{name}/topics/reset",
        "/connector-plugins",
        "/connector-plugins/{plugin}/config",
        "/connector-plugins/{plugin}/config/validate",
        "/admin/loggers",
        "/admin/loggers/{name}",
    ] {
        assert!(paths.contains_key(path), "openapi.json lacks {path}");
    }
}

#[tokio::test]
async fn authentication_when_configured() {
    let fake = Arc::new(FakeApi::with(&["a"]));
    let credentials = crate::auth::Credentials::new(Some("tok".into()), Some("u:p".into())).expect("ok");
    let app = super::router_with_auth(fake, credentials);
    let reply = call(&app, "GET", "/connectors", "").await;
    assert!(reply.error(401).starts_with("Authentication required"));
    assert_eq!(reply.headers["www-authenticate"], "Basic realm=\"sluice\"");
    assert_eq!(call(&app, "GET", "/health", "").await.status, StatusCode::OK);
    let metrics = call(&app, "GET", "/metrics", "").await;
    assert_eq!(metrics.status, StatusCode::OK, "GET /metrics stays open for scrapers");
    assert!(metrics.body.contains("# TYPE sluice_control_plane_is_leader gauge"), "{}", metrics.body);
    for (header, status) in [("Bearer tok", 200), ("Basic dTpw", 200), ("Bearer nope", 401), ("Basic dTpx", 401)] {
        let request =
            Request::builder().uri("/connectors").header("authorization", header).body(Body::empty()).expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status().as_u16(), status, "{header}");
    }
}

async fn call_with(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

fn methods(value: &str) -> Vec<String> {
    let mut methods: Vec<String> = value.split(',').map(|m| m.trim().to_string()).collect();
    methods.sort();
    methods
}

/// Issue 12 item 8: OPTIONS answers 200 with `Allow` (Kafka Connect's Jersey does), CORS as Kafka Connect's
/// `access.control.allow.*` settings configure it, and 406 for a client that accepts no JSON.
#[tokio::test]
async fn options_cors_and_not_acceptable_as_kafka_connect() {
    let fake = Arc::new(FakeApi::with(&["a"]));
    let app = super::router_with(fake.clone(), None, super::Cors::default());
    let reply = call_with(&app, "OPTIONS", "/connectors", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(methods(reply.headers["allow"].to_str().expect("ascii")), ["GET", "HEAD", "OPTIONS", "POST"]);
    assert_eq!(methods(&reply.body), ["GET", "HEAD", "OPTIONS", "POST"]);
    let reply = call_with(&app, "OPTIONS", "/connectors/a/config/", &[]).await;
    assert_eq!(methods(reply.headers["allow"].to_str().expect("ascii")), ["GET", "HEAD", "OPTIONS", "PATCH", "PUT"]);
    assert_eq!(call_with(&app, "OPTIONS", "/nope", &[]).await.error(404), "HTTP 404 Not Found");
    // No CORS configured: no CORS headers.
    let reply = call_with(&app, "GET", "/connectors", &[("origin", "http://console.example")]).await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));

    let reply = call_with(&app, "GET", "/connectors", &[("accept", "text/html")]).await;
    assert_eq!(reply.error(406), "HTTP 406 Not Acceptable");
    for accept in ["application/json", "*/*", "text/html, application/json;q=0.9", "application/*"] {
        assert_eq!(
            call_with(&app, "GET", "/connectors", &[("accept", accept)]).await.status,
            StatusCode::OK,
            "{accept}"
        );
    }
    assert_eq!(call_with(&app, "GET", "/metrics", &[("accept", "text/plain")]).await.status, StatusCode::OK);

    let cors = super::Cors {
        allow_origin: "http://console.example".to_string(),
        allow_methods: "GET,POST,PUT,DELETE,OPTIONS".to_string(),
    };
    let app = super::router_with(fake, None, cors);
    let preflight = [
        ("origin", "http://console.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let reply = call_with(&app, "OPTIONS", "/connectors", &preflight).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["access-control-allow-origin"], "http://console.example");
    assert_eq!(reply.headers["access-control-allow-methods"], "GET,POST,PUT,DELETE,OPTIONS");
    assert_eq!(reply.headers["access-control-allow-headers"], "content-type");
    let reply = call_with(&app, "GET", "/connectors", &[("origin", "http://console.example")]).await;
    assert_eq!(reply.headers["access-control-allow-origin"], "http://console.example");
    assert_eq!(reply.json(), json!(["a"]));
    let reply = call_with(&app, "GET", "/connectors", &[("origin", "http://evil.example")]).await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"), "an origin not allowed gets nothing");
}

/// As Kafka Connect's: `Location` is the absolute URL on the address the client used.
#[tokio::test]
async fn location_is_absolute_on_the_clients_host() {
    let (app, _) = app_with(&[]);
    let request = Request::builder()
        .method("POST")
        .uri("/connectors")
        .header("host", "connect.example:8083")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name":"c 1","config":{"connector.class":"FileStreamSource"}}"#))
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "http://connect.example:8083/connectors/c%201");
}
