//! The Kafka Connect-compatible REST gateway: a thin axum adapter over [`ConnectApi`] that answers with Kafka
//! Connect's paths, status codes and bodies, so existing scripts and UIs work unchanged. Every error, including
//! axum's own (unknown path, wrong method, unreadable body), has Kafka Connect's shape
//! `{"error_code": <status>, "message": "..."}`.

mod body;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    HOST, LOCATION, ORIGIN, VARY, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use tower::ServiceExt;

use crate::api::{ApiError, ApiErrorKind, ConnectApi, ConnectorInfo, ConnectorStateInfo, LoggerScope};
use crate::auth::Credentials;
use crate::connections::{ConnectionLimits, LimitedListener};

pub(crate) use body::create_request;

type Api = Arc<dyn ConnectApi>;
/// Query parameters as pairs: repeatable (`expand`) and never a typed rejection.
type QueryPairs = Query<Vec<(String, String)>>;

/// The REST API on top of `api`, with Kafka Connect's error bodies everywhere and a trailing `/` tolerated as
/// Kafka Connect (JAX-RS) does.
pub fn router(api: Arc<dyn ConnectApi>) -> Router {
    let routes = Router::new()
        .route("/", get(server_info))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route("/connectors/{name}", get(connector_info).delete(delete_connector))
        .route(
            "/connectors/{name}/config",
            get(connector_config).put(put_connector_config).patch(patch_connector_config),
        )
        .route("/connectors/{name}/status", get(connector_status))
        .route("/connectors/{name}/tasks", get(connector_tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route("/connectors/{name}/tasks/{task}/restart", post(restart_task))
        .route("/connectors/{name}/restart", post(restart_connector))
        .route("/connectors/{name}/pause", put(pause_connector))
        .route("/connectors/{name}/resume", put(resume_connector))
        .route("/connectors/{name}/stop", put(stop_connector))
        .route(
            "/connectors/{name}/offsets",
            get(connector_offsets).patch(alter_connector_offsets).delete(reset_connector_offsets),
        )
        .route("/connectors/{name}/topics", get(connector_topics))
        .route("/connectors/{name}/topics/reset", put(reset_connector_topics))
        .route("/connector-plugins", get(connector_plugins))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route("/connector-plugins/{plugin}/config/validate", put(validate_config))
        .route("/admin/loggers", get(loggers))
        .route("/admin/loggers/{name}", get(logger).put(set_logger_level))
        .route("/openapi.json", get(openapi))
        .with_state(api);
    let without_slash = routes.clone().fallback(not_found);
    routes
        .fallback(move |request: Request| retry_without_trailing_slash(without_slash.clone(), request))
        .layer(map_response(json_errors))
        .layer(from_fn(trace_request))
}

/// [`router`] behind an authentication check when `credentials` is set (`GET /health` and `GET /metrics` stay open
/// for probes and scrapers).
pub fn router_with_auth(api: Arc<dyn ConnectApi>, credentials: Option<Credentials>) -> Router {
    router_with(api, credentials, Cors::default())
}

/// [`router_with_auth`] with Kafka Connect's cross-origin settings.
pub fn router_with(api: Arc<dyn ConnectApi>, credentials: Option<Credentials>, cors: Cors) -> Router {
    let routes = router(api);
    let routes = match credentials {
        None => routes,
        Some(credentials) => routes.layer(from_fn(move |request: Request, next: Next| {
            let credentials = credentials.clone();
            async move { authenticate(&credentials, request, next).await }
        })),
    };
    let cors = Arc::new(cors);
    // Around the whole router, not around each route: `Router::layer` would run after the method dispatch.
    Router::new().fallback_service(routes).layer(from_fn(move |request: Request, next: Next| {
        let cors = cors.clone();
        async move { options_cors_and_accept(&cors, request, next).await }
    }))
}

/// Kafka Connect's worker settings `access.control.allow.origin` and `access.control.allow.methods` (Jetty's
/// cross-origin filter): off while the origin is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// `*`, or a comma-separated list of origins allowed to call the API from a browser; empty: none.
    pub allow_origin: String,
    /// The methods a preflight answer allows; empty: Kafka Connect's default, `GET,POST,HEAD`.
    pub allow_methods: String,
}

impl Cors {
    /// From worker properties, as Kafka Connect reads them.
    pub fn from_worker_config(worker: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| worker.get(key).map(|v| v.trim().to_string()).unwrap_or_default();
        Cors { allow_origin: get("access.control.allow.origin"), allow_methods: get("access.control.allow.methods") }
    }

    fn allows(&self, origin: &str) -> bool {
        self.allow_origin.split(',').map(str::trim).any(|allowed| allowed == "*" || allowed == origin)
    }

    fn methods(&self) -> &str {
        if self.allow_methods.is_empty() { "GET,POST,HEAD" } else { &self.allow_methods }
    }
}

/// What Kafka Connect's Jersey and Jetty do before any resource runs:
/// - `OPTIONS` answers 200 with the path's methods in `Allow` (and as text), or 404 for an unknown path;
/// - with cross-origin access configured, a browser's preflight gets `Access-Control-Allow-*` and an allowed
///   origin gets `Access-Control-Allow-Origin` on every answer;
/// - a request that accepts no JSON (`Accept: text/html`) gets 406: every answer is JSON.
async fn options_cors_and_accept(cors: &Cors, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|origin| !cors.allow_origin.is_empty() && cors.allows(origin));
    let is_options = request.method() == Method::OPTIONS;
    let preflight = is_options && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let request_headers = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    let mut request = request;
    if is_options {
        // No route has OPTIONS or TRACE: asked with TRACE, the router answers 405 with the path's methods in
        // `Allow` (for OPTIONS itself axum leaves `Allow` empty), or 404 for an unknown path.
        *request.method_mut() = Method::TRACE;
    }
    if !is_options && !accepts_json(&request) {
        let mut response = error_response(StatusCode::NOT_ACCEPTABLE, "HTTP 406 Not Acceptable".to_string());
        if let Some(origin) = &origin {
            allow_origin(&mut response, origin);
        }
        return response;
    }
    let mut response = next.run(request).await;
    if is_options && response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let mut methods: Vec<String> = response
            .headers()
            .get(ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        methods.push("OPTIONS".to_string());
        if !cors.allow_origin.is_empty() {
            // Jetty's cross-origin filter answers every OPTIONS itself once it is configured: no body.
            response = StatusCode::OK.into_response();
            if preflight && origin.is_some() {
                if let Ok(value) = HeaderValue::from_str(cors.methods()) {
                    response.headers_mut().insert(ACCESS_CONTROL_ALLOW_METHODS, value);
                }
                if let Some(headers) = request_headers {
                    response.headers_mut().insert(ACCESS_CONTROL_ALLOW_HEADERS, headers);
                }
            }
        } else {
            response = (StatusCode::OK, [(CONTENT_TYPE, "text/plain")], methods.join(", ")).into_response();
        }
        if let Ok(value) = HeaderValue::from_str(&methods.join(",")) {
            response.headers_mut().insert(ALLOW, value);
        }
    }
    if let Some(origin) = &origin {
        allow_origin(&mut response, origin);
    }
    response
}

fn allow_origin(response: &mut Response, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        response.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response.headers_mut().append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// Whether the `Accept` header (absent: anything) admits `application/json`. `/metrics` answers text and is
/// exempt.
fn accepts_json(request: &Request) -> bool {
    if request.uri().path().trim_end_matches('/') == "/metrics" {
        return true;
    }
    let Some(accept) = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok()) else { return true };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        media.is_empty() || matches!(media.as_str(), "*/*" | "application/*" | "application/json")
    })
}

async fn authenticate(credentials: &Credentials, request: Request, next: Next) -> Response {
    // OPTIONS (asked as TRACE, see `options_cors_and_accept`) reaches no resource, it only learns the allowed
    // methods; browsers send preflights without credentials.
    if matches!(request.uri().path().trim_end_matches('/'), "/health" | "/metrics")
        || matches!(*request.method(), Method::OPTIONS | Method::TRACE)
    {
        return next.run(request).await;
    }
    let header = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    match credentials.check(header) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(credentials.challenge()));
            response
        }
    }
}

/// Serves the REST API on `listener` until `shutdown` completes, then lets in-flight requests finish. Connections
/// are bounded in number and in how long they may stay idle or take to send a request ([`ConnectionLimits`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn ConnectApi>,
    credentials: Option<Credentials>,
    cors: Cors,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, authentication = credentials.is_some(), tls = tls.is_some(), cors = %cors.allow_origin,
            max_connections = limits.max_connections, "rest api listening");
    }
    let scheme = RestScheme(if tls.is_some() { "https" } else { "http" });
    let app = router_with(api, credentials, cors).layer(Extension(scheme));
    let listener = LimitedListener::new(listener, limits, "rest");
    match tls {
        None => crate::connections::serve_http(listener, app, limits, shutdown).await,
        Some(config) => {
            let listener = crate::tls::TlsListener::new(listener, config)?;
            crate::connections::serve_http(listener, app, limits, shutdown).await
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// Kafka Connect's `ErrorMessage` entity.
#[derive(Debug, Serialize)]
struct ErrorBody {
    error_code: u16,
    message: String,
}

fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error_code: status.as_u16(), message })).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), message = %self.message, "rest request failed");
        }
        error_response(status, self.message)
    }
}

/// Rewrites every error response that is not already JSON (axum's rejections, 404s, 405s) into Kafka Connect's
/// error body, keeping its status and headers (such as `Allow`). Jersey's texts for empty bodies are reused.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!("HTTP {} {}", status.as_u16(), status.canonical_reason().unwrap_or_default())
    } else {
        text
    };
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    (parts, Json(ErrorBody { error_code: status.as_u16(), message })).into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "HTTP 404 Not Found".to_string())
}

/// `GET /connectors/` is `GET /connectors` in Kafka Connect; axum routes paths exactly, so unmatched paths get
/// one more try without the trailing slash.
async fn retry_without_trailing_slash(routes: Router, mut request: Request) -> Response {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = path_and_query.parse::<Uri>() {
            *request.uri_mut() = uri;
            return match routes.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
    }
    not_found().await
}

async fn trace_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "rest request"
    );
    response
}

// ---------------------------------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------------------------------

/// A boolean query parameter. Kafka Connect (JAX-RS) reads anything but `true` as false; we accept `true` and
/// `false` in any case and reject the rest, because `includeTasks=1` silently meaning false helps nobody.
fn query_flag(query: &[(String, String)], name: &str, default: bool) -> Result<bool, ApiError> {
    let Some((_, value)) = query.iter().find(|(key, _)| key == name) else { return Ok(default) };
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") || value.is_empty() {
        Ok(false)
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid value {value:?} for query parameter {name}: expected true or false"
        )))
    }
}

/// Task ids in paths are numbers; Kafka Connect (JAX-RS) answers 404 for anything else, so do we.
fn task_id(name: &str, task: &str) -> Result<u32, ApiError> {
    task.parse().map_err(|_| ApiError::not_found(format!("Unknown task: {name}-{task} (task ids are numbers)")))
}

/// `201 Created` with `Location`: as Kafka Connect's, the absolute URL of the connector on the address the client
/// used (`Host`); just the path `/connectors/{name}` without a `Host` header.
fn created(info: ConnectorInfo, headers: &HeaderMap, scheme: Option<Extension<RestScheme>>) -> Response {
    let path = format!("/connectors/{}", percent_encode_segment(&info.name));
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.parse::<axum::http::uri::Authority>().is_ok());
    let location = match host {
        Some(host) => format!("{}://{host}{path}", scheme.map(|Extension(s)| s.0).unwrap_or("http")),
        None => path,
    };
    (StatusCode::CREATED, [(LOCATION, location)], Json(info)).into_response()
}

/// `http` or `https`: how the REST API is served, for absolute URLs.
#[derive(Debug, Clone, Copy)]
pub struct RestScheme(pub &'static str);

fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------------------------

async fn server_info(State(api): State<Api>) -> Result<Response, ApiError> {
    Ok(Json(api.server_info().await?).into_response())
}

/// Kafka Connect's `{"status","message"}` health answer (not an error body, even when unhealthy).
/// `GET /metrics`: the control plane's Prometheus metrics ([`crate::metrics`]).
/// The connectors' statuses come from the store, as `GET /connectors?expand=status` reads them; if that fails the
/// other series are still served.
async fn metrics(State(api): State<Api>) -> Response {
    let headers = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    let statuses = api.connector_statuses().await.ok();
    (headers, crate::metrics::global().render_with(statuses.as_ref())).into_response()
}

async fn health(State(api): State<Api>) -> Response {
    let health = crate::api::health(api.as_ref()).await;
    let code = match health.status {
        "healthy" => StatusCode::OK,
        "starting" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(health)).into_response()
}

/// One entry of `GET /connectors?expand=...`.
#[derive(Debug, Serialize)]
struct Expanded {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ConnectorStateInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<ConnectorInfo>,
}

async fn list_connectors(State(api): State<Api>, Query(query): QueryPairs) -> Result<Response, ApiError> {
    let names = api.list_connectors().await?;
    let expand: Vec<&str> =
        query.iter().filter(|(key, _)| key == "expand").flat_map(|(_, value)| value.split(',')).collect();
    if expand.is_empty() {
        return Ok(Json(names).into_response());
    }
    let want_status = expand.iter().any(|e| e.trim().eq_ignore_ascii_case("status"));
    let want_info = expand.iter().any(|e| e.trim().eq_ignore_ascii_case("info"));
    let mut out = BTreeMap::new();
    // Read in one pass, not once per connector (which reads every assignment each time).
    let mut statuses = if want_status { api.connector_statuses().await? } else { BTreeMap::new() };
    for name in names {
        // A connector deleted between the listing and now is left out rather than failing the whole answer.
        let status = if want_status {
            match statuses.remove(&name) {
                Some(status) => Some(status),
                None => continue,
            }
        } else {
            None
        };
        let info = if want_info {
            match api.connector_info(&name).await {
                Ok(info) => Some(info),
                Err(e) if e.kind == ApiErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        out.insert(name, Expanded { status, info });
    }
    Ok(Json(out).into_response())
}

async fn create_connector(
    State(api): State<Api>,
    scheme: Option<Extension<RestScheme>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = body::parse_create(&body)?;
    Ok(created(api.create_connector(request).await?, &headers, scheme))
}

async fn connector_info(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.connector_info(&name).await?).into_response())
}

async fn connector_config(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.connector_config(&name).await?).into_response())
}

async fn put_connector_config(
    State(api): State<Api>,
    Path(name): Path<String>,
    scheme: Option<Extension<RestScheme>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = body::parse_config(&body, body::UrlContext { name: Some(&name), plugin: None })?;
    match api.put_connector_config(&name, config).await? {
        (true, info) => Ok(created(info, &headers, scheme)),
        (false, info) => Ok(Json(info).into_response()),
    }
}

async fn patch_connector_config(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch = body::parse_patch(&body)?;
    Ok(Json(api.patch_connector_config(&name, patch).await?).into_response())
}

async fn delete_connector(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.delete_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn connector_status(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.connector_status(&name).await?).into_response())
}

async fn connector_tasks(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.connector_tasks(&name).await?).into_response())
}

async fn task_status(State(api): State<Api>, Path((name, task)): Path<(String, String)>) -> Result<Response, ApiError> {
    let task = task_id(&name, &task)?;
    Ok(Json(api.task_status(&name, task).await?).into_response())
}

async fn restart_task(
    State(api): State<Api>,
    Path((name, task)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let task = task_id(&name, &task)?;
    api.restart_task(&name, task).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart_connector(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): QueryPairs,
) -> Result<Response, ApiError> {
    let include_tasks = query_flag(&query, "includeTasks", false)?;
    let only_failed = query_flag(&query, "onlyFailed", false)?;
    match api.restart_connector(&name, include_tasks, only_failed).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(status) => Ok((StatusCode::ACCEPTED, Json(status)).into_response()),
    }
}

async fn pause_connector(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.pause_connector(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn resume_connector(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.resume_connector(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn stop_connector(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.stop_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn connector_plugins(State(api): State<Api>, Query(query): QueryPairs) -> Result<Response, ApiError> {
    let connectors_only = query_flag(&query, "connectorsOnly", true)?;
    Ok(Json(api.connector_plugins(!connectors_only).await?).into_response())
}

async fn validate_config(
    State(api): State<Api>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config = body::parse_config(&body, body::UrlContext { name: None, plugin: Some(&plugin) })?;
    Ok(Json(api.validate_config(&plugin, config).await?).into_response())
}

async fn plugin_config(State(api): State<Api>, Path(plugin): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.plugin_config(&plugin).await?).into_response())
}

async fn connector_offsets(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.connector_offsets(&name).await?).into_response())
}

async fn alter_connector_offsets(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let offsets = body::parse_offsets(&body)?;
    Ok(Json(api.alter_connector_offsets(&name, offsets).await?).into_response())
}

async fn reset_connector_offsets(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.reset_connector_offsets(&name).await?).into_response())
}

/// `{"<name>": {"topics": [...]}}`, Kafka Connect's `ActiveTopicsInfo` shape.
async fn connector_topics(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Topics {
        topics: Vec<String>,
    }
    let topics = api.connector_topics(&name).await?;
    Ok(Json(BTreeMap::from([(name, Topics { topics })])).into_response())
}

async fn reset_connector_topics(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.reset_connector_topics(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn loggers(State(api): State<Api>) -> Result<Response, ApiError> {
    Ok(Json(api.loggers().await?).into_response())
}

async fn logger(State(api): State<Api>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(api.logger(&name).await?).into_response())
}

/// `scope=worker` (default) answers 200 with the loggers that changed; `scope=cluster` answers 204. Kafka Connect
/// treats an unknown scope as `worker`, and so do we.
async fn set_logger_level(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): QueryPairs,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = body::parse_level(&body)?;
    let scope = match query.iter().find(|(key, _)| key == "scope").map(|(_, v)| v.to_ascii_lowercase()) {
        Some(scope) if scope == "cluster" => LoggerScope::Cluster,
        _ => LoggerScope::Worker,
    };
    let changed = api.set_logger_level(&name, &level, scope).await?;
    Ok(match scope {
        LoggerScope::Worker => Json(changed).into_response(),
        LoggerScope::Cluster => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The OpenAPI 3 document of this gateway, kept in the repository next to the code it describes.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
