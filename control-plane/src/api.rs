//! The transport-free service layer: every admin operation once, as a plain async trait. The REST gateway
//! ([`crate::rest`]) and the admin gRPC service ([`crate::admin_grpc`]) are thin adapters over it, so both
//! answer the same things with the same messages (Kafka Connect's wording).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_connectors::ConfigInfos;
use sluice_connectors::ConfigMap;
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
    pub version: String,
    pub commit: String,
    pub kafka_cluster_id: Option<String>,
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
}

/// `GET /connectors/{name}/tasks/{id}/status` answer and an element of a status answer's `tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskStateInfo {
    pub id: u32,
    pub state: String,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace: Option<String>,
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
}
