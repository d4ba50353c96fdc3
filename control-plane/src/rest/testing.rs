//! A small in-memory [`ConnectApi`] for the adapters' tests: just enough behaviour to exercise routing, status
//! codes and message mapping. The real service is tested end to end elsewhere.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sluice_connectors::ConfigInfos;
use sluice_connectors::ConfigMap;
use sluice_connectors::registry::PluginInfo;

use sluice_connectors::config::ConfigKeyInfo;

use crate::api::{
    ApiError, ApiErrorKind, ConnectApi, ConnectorInfo, ConnectorOffsets, ConnectorState, ConnectorStateInfo,
    ConnectorTaskId, CreateConnector, LoggerLevel, LoggerScope, Message, ServerInfo, TaskInfo, TaskStateInfo,
};
use crate::logging::LogLevels;

pub(crate) struct FakeApi {
    pub connectors: Mutex<BTreeMap<String, ConfigMap>>,
    /// The last arguments seen by calls whose effect the fake does not model.
    pub calls: Mutex<Vec<String>>,
    /// The config passed to the last validate call.
    pub validated: Mutex<Option<(String, ConfigMap)>>,
    /// When set, every call fails with this error.
    pub fail_with: Mutex<Option<ApiError>>,
    /// When set, `connector_info` never answers.
    pub hang: Mutex<bool>,
    /// Offsets by connector, as altered.
    pub offsets: Mutex<BTreeMap<String, ConnectorOffsets>>,
    pub log_levels: LogLevels,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi {
            connectors: Mutex::default(),
            calls: Mutex::default(),
            validated: Mutex::default(),
            fail_with: Mutex::default(),
            hang: Mutex::default(),
            offsets: Mutex::default(),
            log_levels: LogLevels::detached("info,sluice_control_plane=debug"),
        }
    }
}

impl FakeApi {
    pub fn with(names: &[&str]) -> Self {
        let fake = FakeApi::default();
        if let Ok(mut connectors) = fake.connectors.lock() {
            for name in names {
                let config = [("name", *name), ("connector.class", "FileStreamSource")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                connectors.insert(name.to_string(), config);
            }
        }
        fake
    }

    fn check(&self) -> Result<(), ApiError> {
        match self.fail_with.lock().map(|e| e.clone()) {
            Ok(Some(error)) => Err(error),
            _ => Ok(()),
        }
    }

    fn record(&self, call: String) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }

    fn config(&self, name: &str) -> Result<ConfigMap, ApiError> {
        self.check()?;
        let connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        connectors.get(name).cloned().ok_or_else(|| ApiError::connector_not_found(name))
    }

    fn info(name: &str, config: ConfigMap) -> ConnectorInfo {
        ConnectorInfo {
            name: name.to_string(),
            config,
            tasks: vec![ConnectorTaskId { connector: name.to_string(), task: 0 }],
            connector_type: "source".to_string(),
        }
    }

    fn status(name: &str, state: &str) -> ConnectorStateInfo {
        ConnectorStateInfo {
            name: name.to_string(),
            connector: ConnectorState {
                state: state.to_string(),
                worker_id: "w1:8083".to_string(),
                trace: None,
                version: Some("4.1.2".to_string()),
            },
            tasks: vec![TaskStateInfo {
                id: 0,
                state: state.to_string(),
                worker_id: "w1:8083".to_string(),
                trace: Some("boom".to_string()),
                version: Some("4.1.2".to_string()),
            }],
            connector_type: "source".to_string(),
        }
    }
}

#[async_trait]
impl ConnectApi for FakeApi {
    async fn server_info(&self) -> Result<ServerInfo, ApiError> {
        self.check()?;
        Ok(ServerInfo {
            version: "4.1.2".to_string(),
            commit: "abc".to_string(),
            kafka_cluster_id: None,
            sluice_version: "0.1.0".to_string(),
        })
    }

    async fn list_connectors(&self) -> Result<Vec<String>, ApiError> {
        self.check()?;
        let connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        Ok(connectors.keys().cloned().collect())
    }

    async fn create_connector(&self, request: CreateConnector) -> Result<ConnectorInfo, ApiError> {
        self.check()?;
        self.record(format!("create {} {}", request.name, request.initial_state.as_str()));
        let mut connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        if connectors.contains_key(&request.name) {
            return Err(ApiError::new(
                ApiErrorKind::AlreadyExists,
                format!("Connector {} already exists", request.name),
            ));
        }
        connectors.insert(request.name.clone(), request.config.clone());
        Ok(Self::info(&request.name, request.config))
    }

    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, ApiError> {
        if self.hang.lock().is_ok_and(|h| *h) {
            std::future::pending::<()>().await;
        }
        Ok(Self::info(name, self.config(name)?))
    }

    async fn connector_config(&self, name: &str) -> Result<ConfigMap, ApiError> {
        self.config(name)
    }

    async fn put_connector_config(&self, name: &str, config: ConfigMap) -> Result<(bool, ConnectorInfo), ApiError> {
        self.check()?;
        let mut connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        let created = connectors.insert(name.to_string(), config.clone()).is_none();
        Ok((created, Self::info(name, config)))
    }

    async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, ApiError> {
        let mut config = self.config(name)?;
        for (key, value) in patch {
            match value {
                Some(value) => config.insert(key, value),
                None => config.remove(&key),
            };
        }
        let mut connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        connectors.insert(name.to_string(), config.clone());
        Ok(Self::info(name, config))
    }

    async fn delete_connector(&self, name: &str) -> Result<(), ApiError> {
        self.config(name)?;
        let mut connectors = self.connectors.lock().map_err(|_| ApiError::internal("poisoned"))?;
        connectors.remove(name);
        Ok(())
    }

    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("No status found for connector {name}")))?;
        Ok(Self::status(name, "RUNNING"))
    }

    async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>, ApiError> {
        let config = self.config(name)?;
        Ok(vec![TaskInfo { id: ConnectorTaskId { connector: name.to_string(), task: 0 }, config }])
    }

    async fn task_status(&self, name: &str, task: u32) -> Result<TaskStateInfo, ApiError> {
        self.check()?;
        let status = Self::status(name, "RUNNING");
        status
            .tasks
            .into_iter()
            .find(|t| t.id == task && self.config(name).is_ok())
            .ok_or_else(|| ApiError::not_found(format!("No status found for task {name}-{task}")))
    }

    async fn pause_connector(&self, name: &str) -> Result<(), ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("Unknown connector {name}")))?;
        self.record(format!("pause {name}"));
        Ok(())
    }

    async fn resume_connector(&self, name: &str) -> Result<(), ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("Unknown connector {name}")))?;
        self.record(format!("resume {name}"));
        Ok(())
    }

    async fn stop_connector(&self, name: &str) -> Result<(), ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("Unknown connector {name}")))?;
        self.record(format!("stop {name}"));
        Ok(())
    }

    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("Unknown connector: {name}")))?;
        self.record(format!("restart {name} {include_tasks} {only_failed}"));
        Ok((include_tasks || only_failed).then(|| Self::status(name, "RESTARTING")))
    }

    async fn restart_task(&self, name: &str, task: u32) -> Result<(), ApiError> {
        self.config(name).map_err(|_| ApiError::not_found(format!("Unknown connector: {name}")))?;
        if task != 0 {
            return Err(ApiError::not_found(format!("Task {name}-{task} not found")));
        }
        self.record(format!("restart task {name} {task}"));
        Ok(())
    }

    async fn connector_plugins(&self, include_all: bool) -> Result<Vec<PluginInfo>, ApiError> {
        self.check()?;
        let mut plugins = vec![PluginInfo {
            class: "org.apache.kafka.connect.file.FileStreamSourceConnector".to_string(),
            plugin_type: "source".to_string(),
            version: "0.1.0".to_string(),
        }];
        if include_all {
            plugins.push(PluginInfo {
                class: "org.apache.kafka.connect.storage.StringConverter".to_string(),
                plugin_type: "converter".to_string(),
                version: "0.1.0".to_string(),
            });
        }
        Ok(plugins)
    }

    async fn validate_config(&self, plugin: &str, config: ConfigMap) -> Result<ConfigInfos, ApiError> {
        self.check()?;
        if let Ok(mut validated) = self.validated.lock() {
            *validated = Some((plugin.to_string(), config));
        }
        Ok(ConfigInfos {
            name: plugin.to_string(),
            error_count: 0,
            groups: vec!["Common".to_string()],
            configs: vec![],
        })
    }

    async fn plugin_config(&self, plugin: &str) -> Result<Vec<ConfigKeyInfo>, ApiError> {
        self.check()?;
        match sluice_connectors::registry::connector(plugin) {
            Some(c) => Ok(c.config_def().keys.iter().map(|k| k.info()).collect()),
            None => Err(ApiError::not_found(format!("Unknown plugin {plugin}."))),
        }
    }

    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, ApiError> {
        self.config(name)?;
        let offsets = self.offsets.lock().map_err(|_| ApiError::internal("poisoned"))?;
        Ok(offsets.get(name).cloned().unwrap_or_default())
    }

    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<Message, ApiError> {
        self.config(name)?;
        if offsets.offsets.is_empty() {
            return Err(ApiError::bad_request("Partitions / offsets need to be provided for an alter offsets request"));
        }
        self.offsets.lock().map_err(|_| ApiError::internal("poisoned"))?.insert(name.to_string(), offsets);
        Ok(Message { message: "The offsets for this connector have been altered successfully".to_string() })
    }

    async fn reset_connector_offsets(&self, name: &str) -> Result<Message, ApiError> {
        self.config(name)?;
        self.offsets.lock().map_err(|_| ApiError::internal("poisoned"))?.remove(name);
        Ok(Message { message: "The offsets for this connector have been reset successfully".to_string() })
    }

    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let config = self.config(name)?;
        Ok(config.get("topic").cloned().into_iter().collect())
    }

    async fn reset_connector_topics(&self, name: &str) -> Result<(), ApiError> {
        self.config(name)?;
        self.record(format!("reset topics {name}"));
        Ok(())
    }

    async fn loggers(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError> {
        self.log_levels.all()
    }

    async fn logger(&self, name: &str) -> Result<LoggerLevel, ApiError> {
        self.log_levels.get(name)
    }

    async fn set_logger_level(&self, name: &str, level: &str, scope: LoggerScope) -> Result<Vec<String>, ApiError> {
        self.record(format!("logger {name} {level} {scope:?}"));
        self.log_levels.set(name, level)
    }
}
