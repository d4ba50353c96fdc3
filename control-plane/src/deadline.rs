//! [`Deadline`]: no admin request ever hangs. Every call of the service layer gets a time limit; one that runs past
//! it (etcd unreachable, Kafka slow) answers 503 with what it was doing, instead of blocking the client — and,
//! unlike Kafka Connect, never blocks other requests, which run concurrently anyway.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_connectors::config::ConfigKeyInfo;
use sluice_connectors::registry::PluginInfo;
use sluice_connectors::{ConfigInfos, ConfigMap};

use crate::api::{
    ApiError, ConnectApi, ConnectorInfo, ConnectorOffsets, ConnectorStateInfo, CreateConnector, LoggerLevel,
    LoggerScope, Message, ServerInfo, TaskInfo, TaskStateInfo,
};

/// The default time limit of one admin request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`ConnectApi`] whose every call ends within `limit`.
pub struct Deadline {
    inner: Arc<dyn ConnectApi>,
    limit: Duration,
}

impl Deadline {
    pub fn new(inner: Arc<dyn ConnectApi>, limit: Duration) -> Self {
        Deadline { inner, limit }
    }

    async fn within<T>(&self, what: String, call: impl Future<Output = Result<T, ApiError>>) -> Result<T, ApiError> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(request = %what, limit_ms = self.limit.as_millis() as u64, "admin request timed out");
                Err(ApiError::unavailable(format!(
                    "Request timed out after {} ms while {what}; the configuration store or Kafka may be slow or \
                     unreachable. The request may still take effect: check before retrying",
                    self.limit.as_millis()
                )))
            }
        }
    }
}

#[async_trait]
impl ConnectApi for Deadline {
    async fn server_info(&self) -> Result<ServerInfo, ApiError> {
        self.within("reading the server info".to_string(), self.inner.server_info()).await
    }
    async fn list_connectors(&self) -> Result<Vec<String>, ApiError> {
        self.within("listing connectors".to_string(), self.inner.list_connectors()).await
    }
    async fn create_connector(&self, request: CreateConnector) -> Result<ConnectorInfo, ApiError> {
        self.within("creating a connector".to_string(), self.inner.create_connector(request)).await
    }
    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, ApiError> {
        self.within(format!("reading connector {name}"), self.inner.connector_info(name)).await
    }
    async fn connector_config(&self, name: &str) -> Result<ConfigMap, ApiError> {
        self.within(format!("reading the config of connector {name}"), self.inner.connector_config(name)).await
    }
    async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<(bool, ConnectorInfo), ApiError> {
        self.within(format!("writing the config of connector {name}"), self.inner.put_connector_config(name, config))
            .await
    }
    async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, ApiError> {
        self.within(format!("patching the config of connector {name}"), self.inner.patch_connector_config(name, patch))
            .await
    }
    async fn delete_connector(&self, name: &str) -> Result<(), ApiError> {
        self.within(format!("deleting connector {name}"), self.inner.delete_connector(name)).await
    }
    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, ApiError> {
        self.within(format!("reading the status of connector {name}"), self.inner.connector_status(name)).await
    }
    async fn connector_statuses(&self) -> Result<BTreeMap<String, ConnectorStateInfo>, ApiError> {
        self.within("reading the status of every connector".to_string(), self.inner.connector_statuses()).await
    }
    async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>, ApiError> {
        self.within(format!("reading the tasks of connector {name}"), self.inner.connector_tasks(name)).await
    }
    async fn task_status(&self, name: &str, task: u32) -> Result<TaskStateInfo, ApiError> {
        self.within(format!("reading the status of task {name}-{task}"), self.inner.task_status(name, task)).await
    }
    async fn pause_connector(&self, name: &str) -> Result<(), ApiError> {
        self.within(format!("pausing connector {name}"), self.inner.pause_connector(name)).await
    }
    async fn resume_connector(&self, name: &str) -> Result<(), ApiError> {
        self.within(format!("resuming connector {name}"), self.inner.resume_connector(name)).await
    }
    async fn stop_connector(&self, name: &str) -> Result<(), ApiError> {
        self.within(format!("stopping connector {name}"), self.inner.stop_connector(name)).await
    }
    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, ApiError> {
        self.within(
            format!("restarting connector {name}"),
            self.inner.restart_connector(name, include_tasks, only_failed),
        )
        .await
    }
    async fn restart_task(&self, name: &str, task: u32) -> Result<(), ApiError> {
        self.within(format!("restarting task {name}-{task}"), self.inner.restart_task(name, task)).await
    }
    async fn connector_plugins(&self, include_all: bool) -> Result<Vec<PluginInfo>, ApiError> {
        self.within("listing plugins".to_string(), self.inner.connector_plugins(include_all)).await
    }
    async fn validate_config(&self, plugin: &str, config: ConfigMap) -> Result<ConfigInfos, ApiError> {
        self.within(format!("validating a config of {plugin}"), self.inner.validate_config(plugin, config)).await
    }
    async fn plugin_config(&self, plugin: &str) -> Result<Vec<ConfigKeyInfo>, ApiError> {
        self.within(format!("reading the config definition of {plugin}"), self.inner.plugin_config(plugin)).await
    }
    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, ApiError> {
        self.within(format!("reading the offsets of connector {name}"), self.inner.connector_offsets(name)).await
    }
    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<Message, ApiError> {
        self.within(
            format!("altering the offsets of connector {name}"),
            self.inner.alter_connector_offsets(name, offsets),
        )
        .await
    }
    async fn reset_connector_offsets(&self, name: &str) -> Result<Message, ApiError> {
        self.within(format!("resetting the offsets of connector {name}"), self.inner.reset_connector_offsets(name))
            .await
    }
    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, ApiError> {
        self.within(format!("reading the topics of connector {name}"), self.inner.connector_topics(name)).await
    }
    async fn reset_connector_topics(&self, name: &str) -> Result<(), ApiError> {
        self.within(format!("resetting the topics of connector {name}"), self.inner.reset_connector_topics(name)).await
    }
    async fn loggers(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError> {
        self.within("listing loggers".to_string(), self.inner.loggers()).await
    }
    async fn logger(&self, name: &str) -> Result<LoggerLevel, ApiError> {
        self.within(format!("reading logger {name}"), self.inner.logger(name)).await
    }
    async fn set_logger_level(&self, name: &str, level: &str, scope: LoggerScope) -> Result<Vec<String>, ApiError> {
        self.within(format!("setting the level of logger {name}"), self.inner.set_logger_level(name, level, scope))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiErrorKind;
    use crate::rest::testing::FakeApi;

    #[tokio::test]
    async fn a_call_that_hangs_answers_503_naming_what_it_did() {
        let fake = Arc::new(FakeApi::with(&["a"]));
        *fake.hang.lock().expect("lock") = true;
        let api = Deadline::new(fake, Duration::from_millis(50));
        let error = api.connector_info("a").await.expect_err("hangs");
        assert_eq!(error.kind, ApiErrorKind::Unavailable);
        assert!(error.message.contains("reading connector a"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_quick_call_passes_through() {
        let api = Deadline::new(Arc::new(FakeApi::with(&["a"])), Duration::from_secs(30));
        assert_eq!(api.list_connectors().await.expect("list"), vec!["a".to_string()]);
    }
}
