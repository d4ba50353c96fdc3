//! The transport-free service layer: every admin operation once, as a plain async trait. The REST gateway
//! ([`crate::rest`]) and the admin gRPC service ([`crate::admin_grpc`]) are thin adapters over it, so both
//! answer the same things with the same messages (Kafka Connect's wording).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_connectors::ConfigInfos;
use sluice_connectors::ConfigMap;
use sluice_connectors::config::ConfigKeyInfo;
use sluice_connectors::registry::PluginInfo;

/// An error of the admin API, with the HTTP status Kafka Connect would answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 400 / INVALID_ARGUMENT
    BadRequest,
    /// 401 / UNAUTHENTICATED
    Unauthorized,
    /// 403 / PERMISSION_DENIED
    Forbidden,
    /// 404 / NOT_FOUND
    NotFound,
    /// 409 on create / ALREADY_EXISTS
    AlreadyExists,
    /// 409 / FAILED_PRECONDITION (rebalance in progress, stale config)
    Conflict,
    /// 413 / INVALID_ARGUMENT (a config larger than the store takes): the client must send less, not retry
    PayloadTooLarge,
    /// 500 / INTERNAL
    Internal,
    /// 503 / UNAVAILABLE (store unreachable, no leader)
    Unavailable,
}

impl ApiErrorKind {
    pub fn http_status(self) -> u16 {
        match self {
            ApiErrorKind::BadRequest => 400,
            ApiErrorKind::Unauthorized => 401,
            ApiErrorKind::Forbidden => 403,
            ApiErrorKind::NotFound => 404,
            ApiErrorKind::AlreadyExists | ApiErrorKind::Conflict => 409,
            ApiErrorKind::PayloadTooLarge => 413,
            ApiErrorKind::Internal => 500,
            ApiErrorKind::Unavailable => 503,
        }
    }
}

impl ApiError {
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::BadRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Internal, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Unavailable, message)
    }
    /// `Connector X not found` (info, config, delete, patch).
    pub fn connector_not_found(name: &str) -> Self {
        Self::not_found(format!("Connector {name} not found"))
    }
}

/// `GET /` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// The Kafka Connect release whose REST API Sluice implements (`4.1.2`): clients read this field as the Kafka
    /// Connect version and switch features off below a version.
    pub version: String,
    pub commit: String,
    pub kafka_cluster_id: Option<String>,
    /// Sluice's own version.
    pub sluice_version: String,
}

/// Task id as Kafka Connect shows it: `{"connector":"n","task":0}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnectorTaskId {
    pub connector: String,
    pub task: u32,
}

/// `GET /connectors/{name}` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: ConfigMap,
    pub tasks: Vec<ConnectorTaskId>,
    /// "source", "sink" or "unknown".
    #[serde(rename = "type")]
    pub connector_type: String,
}

/// An entry of `GET /connectors/{name}/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskInfo {
    pub id: ConnectorTaskId,
    pub config: ConfigMap,
}

/// State of the connector itself in a status answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorState {
    pub state: String,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<String>,
    /// The connector plugin's version (Kafka Connect 4.1 adds it); absent when the class is unknown.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

/// `GET /connectors/{name}/tasks/{id}/status` answer and an element of a status answer's `tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskStateInfo {
    pub id: u32,
    pub state: String,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<String>,
    /// The connector plugin's version (Kafka Connect 4.1 adds it); absent when the class is unknown.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

/// `GET /connectors/{name}/status` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorStateInfo {
    pub name: String,
    pub connector: ConnectorState,
    pub tasks: Vec<TaskStateInfo>,
    #[serde(rename = "type")]
    pub connector_type: String,
}

/// What the user asks a new connector to start in (`initial_state` of `POST /connectors`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetState {
    #[default]
    Running,
    Paused,
    Stopped,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Running => "RUNNING",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }
}

/// A request to create a connector.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateConnector {
    pub name: String,
    pub config: ConfigMap,
    pub initial_state: TargetState,
}

/// One entry of a connector's offsets: a source partition and its offset as the connector reports them (e.g.
/// `{"filename": "/tmp/in.txt"}` and `{"position": 1234}`), or for sinks `{"kafka_topic", "kafka_partition"}` and
/// `{"kafka_offset"}`. In an alter request a `null` offset removes the partition's offset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorOffset {
    pub partition: serde_json::Map<String, serde_json::Value>,
    pub offset: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `GET /connectors/{name}/offsets` answer and `PATCH` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ConnectorOffsets {
    pub offsets: Vec<ConnectorOffset>,
}

/// `{"message": ...}`, the answer of the offset-changing endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub message: String,
}

/// The level of one logger, as `GET /admin/loggers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggerLevel {
    /// Kafka Connect's (log4j) level names: OFF, ERROR, WARN, INFO, DEBUG, TRACE.
    pub level: String,
    /// Milliseconds since the epoch of the last change through the API; `null` when never changed.
    pub last_modified: Option<i64>,
}

impl From<sluice_logging::LoggerLevel> for LoggerLevel {
    fn from(l: sluice_logging::LoggerLevel) -> Self {
        LoggerLevel { level: l.level, last_modified: l.last_modified }
    }
}

/// `scope` of `PUT /admin/loggers/{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoggerScope {
    /// This process only; the answer lists the loggers that changed.
    #[default]
    Worker,
    /// Every control-plane replica and every agent of the cluster (the ones running now, as in Kafka Connect).
    Cluster,
}

/// `GET /health` answer (also when unhealthy: it is not an error body).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// `healthy`, `starting` (the store is unavailable: REST 503) or `unhealthy` (REST 500).
    pub status: &'static str,
    pub message: String,
}

/// The health of the replica behind `api`: healthy when it can answer from its store.
pub async fn health(api: &dyn ConnectApi) -> Health {
    match api.list_connectors().await {
        Ok(_) => Health {
            status: "healthy",
            message: "Worker has completed startup and is ready to handle requests.".to_string(),
        },
        Err(error) => Health {
            status: if error.kind == ApiErrorKind::Unavailable { "starting" } else { "unhealthy" },
            message: error.message,
        },
    }
}

/// Every admin operation. Implemented by [`crate::service::ConnectService`] on top of a store.
#[async_trait]
pub trait ConnectApi: Send + Sync + 'static {
    async fn server_info(&self) -> Result<ServerInfo, ApiError>;
    /// Names, sorted.
    async fn list_connectors(&self) -> Result<Vec<String>, ApiError>;
    /// Validates, stores, and answers the stored info. `AlreadyExists` with `Connector X already exists`.
    async fn create_connector(&self, request: CreateConnector) -> Result<ConnectorInfo, ApiError>;
    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, ApiError>;
    async fn connector_config(&self, name: &str) -> Result<ConfigMap, ApiError>;
    /// Upsert; `true` when created. The config's `name`, if present, must equal `name`.
    async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<(bool, ConnectorInfo), ApiError>;
    /// `None` deletes the key.
    async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, ApiError>;
    async fn delete_connector(&self, name: &str) -> Result<(), ApiError>;
    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, ApiError>;
    /// The status of every connector (`GET /connectors?expand=status`). Implementations should read it in one pass;
    /// this default asks for each connector in turn and leaves out those deleted meanwhile.
    async fn connector_statuses(&self) -> Result<BTreeMap<String, ConnectorStateInfo>, ApiError> {
        let mut out = BTreeMap::new();
        for name in self.list_connectors().await? {
            match self.connector_status(&name).await {
                Ok(status) => {
                    out.insert(name, status);
                }
                Err(e) if e.kind == ApiErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
    async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>, ApiError>;
    async fn task_status(&self, name: &str, task: u32) -> Result<TaskStateInfo, ApiError>;
    async fn pause_connector(&self, name: &str) -> Result<(), ApiError>;
    async fn resume_connector(&self, name: &str) -> Result<(), ApiError>;
    async fn stop_connector(&self, name: &str) -> Result<(), ApiError>;
    /// `None` when only the connector restarted (REST 204), else the status with RESTARTING states (REST 202).
    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, ApiError>;
    async fn restart_task(&self, name: &str, task: u32) -> Result<(), ApiError>;
    async fn connector_plugins(&self, include_all: bool) -> Result<Vec<PluginInfo>, ApiError>;
    /// `plugin` is the class name or alias from the URL; the config's `connector.class`, if set, must match it.
    async fn validate_config(&self, plugin: &str, config: ConfigMap) -> Result<ConfigInfos, ApiError>;
    /// The config definition of any plugin (connector, converter, transformation, predicate), given by class or
    /// alias. `Unknown plugin X.` (404) otherwise.
    async fn plugin_config(&self, plugin: &str) -> Result<Vec<ConfigKeyInfo>, ApiError>;
    /// Source: the committed source offsets; sink: the committed offsets of the consumer group `connect-<name>`.
    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, ApiError>;
    /// Only while the connector is STOPPED (400 otherwise).
    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<Message, ApiError>;
    /// Only while the connector is STOPPED (400 otherwise).
    async fn reset_connector_offsets(&self, name: &str) -> Result<Message, ApiError>;
    /// The topics the connector used: a sink's configured topics and those its tasks consumed from, the topics a
    /// source's tasks produced to.
    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, ApiError>;
    /// Forgets the topics the tasks reported; a sink's configured topics stay.
    async fn reset_connector_topics(&self, name: &str) -> Result<(), ApiError>;
    /// Every logger with an explicit level, and `root`.
    async fn loggers(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError>;
    /// `Logger X not found.` (404) for a logger without an explicit level.
    async fn logger(&self, name: &str) -> Result<LoggerLevel, ApiError>;
    /// Sets the level of `name` and its descendants; answers the names that changed, sorted.
    async fn set_logger_level(&self, name: &str, level: &str, scope: LoggerScope) -> Result<Vec<String>, ApiError>;
}
