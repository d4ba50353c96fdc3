//! [`ConnectService`]: the one implementation of [`ConnectApi`], on top of a [`KvStore`]. Every write is one guarded
//! transaction (config, target state and task configs of a connector change together), so a concurrent writer
//! gets Kafka Connect's 409 instead of a half-applied change. Reads go to the store, never to a cache, so a client
//! always sees its own writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use sluice_connectors::registry::{self, PluginInfo};
use sluice_connectors::{ConfigInfos, ConfigMap, ConnectorType};

use crate::api::{
    ApiError, ApiErrorKind, ConnectApi, ConnectorInfo, ConnectorState, ConnectorStateInfo, ConnectorTaskId,
    CreateConnector, ServerInfo, TargetState, TaskInfo, TaskStateInfo,
};
use crate::model::{AssignedTask, AssignmentRecord, Keys, TaskStatusRecord, unescape};
use crate::store::{Compare, KeyValue, KvStore, Op, StoreError};

const STALE_CONFIG: &str =
    "Cannot complete request momentarily due to stale configuration (typically caused by a concurrent config change)";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::unavailable(format!("The configuration store is unavailable: {e}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Answers `GET /`'s `kafka_cluster_id`; looked up lazily because the broker may start after the control plane.
#[async_trait]
pub trait ClusterIdSource: Send + Sync + 'static {
    async fn cluster_id(&self) -> Option<String>;
}

/// The service layer over a store.
pub struct ConnectService {
    store: Arc<dyn KvStore>,
    keys: Keys,
    /// Shown as the connector's `worker_id` when no agent runs its first task.
    replica_id: String,
    cluster_id: Option<Arc<dyn ClusterIdSource>>,
}

/// One connector as read from the store.
struct StoredConnector {
    config: ConfigMap,
    config_kv: KeyValue,
    target: TargetState,
    tasks: BTreeMap<u32, ConfigMap>,
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing maps of strings and plain records cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn connector_type_of(config: &ConfigMap) -> Option<ConnectorType> {
    let class = config.get("connector.class")?;
    registry::connector(class).map(|c| c.connector_type())
}

fn type_name(config: &ConfigMap) -> String {
    connector_type_of(config).map(|t| t.as_str().to_string()).unwrap_or_else(|| "unknown".into())
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request("Connector name cannot be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "Connector name \"{}\" contains ISO control characters, which are not allowed",
            name.escape_debug()
        )));
    }
    Ok(())
}

impl ConnectService {
    pub fn new(store: Arc<dyn KvStore>, keys: Keys, replica_id: impl Into<String>) -> Self {
        ConnectService { store, keys, replica_id: replica_id.into(), cluster_id: None }
    }

    pub fn with_cluster_id_source(mut self, source: Arc<dyn ClusterIdSource>) -> Self {
        self.cluster_id = Some(source);
        self
    }

    async fn load(&self, name: &str) -> Result<Option<StoredConnector>, ApiError> {
        let (kvs, _) = self.store.list(&self.keys.connector(name)).await?;
        let config_key = self.keys.config(name);
        let target_key = self.keys.target(name);
        let tasks_prefix = self.keys.tasks(name);
        let mut config_kv = None;
        let mut target = TargetState::Running;
        let mut tasks = BTreeMap::new();
        for kv in kvs {
            if kv.key == config_key {
                config_kv = Some(kv);
            } else if kv.key == target_key {
                target = serde_json::from_slice(&kv.value).unwrap_or(TargetState::Running);
            } else if let Some(n) = kv.key.strip_prefix(&tasks_prefix).and_then(|n| n.parse::<u32>().ok()) {
                let config: ConfigMap = serde_json::from_slice(&kv.value)
                    .map_err(|e| ApiError::internal(format!("corrupt task config at {}: {e}", kv.key)))?;
                tasks.insert(n, config);
            }
        }
        let Some(config_kv) = config_kv else { return Ok(None) };
        let config: ConfigMap = serde_json::from_slice(&config_kv.value)
            .map_err(|e| ApiError::internal(format!("corrupt connector config at {}: {e}", config_kv.key)))?;
        Ok(Some(StoredConnector { config, config_kv, target, tasks }))
    }

    async fn require(&self, name: &str, not_found: impl FnOnce(&str) -> ApiError) -> Result<StoredConnector, ApiError> {
        self.load(name).await?.ok_or_else(|| not_found(name))
    }

    /// Validates a config for storing: the plugin exists and every key is valid. Returns the task configs.
    fn validate_for_write(&self, config: &ConfigMap) -> Result<Vec<ConfigMap>, ApiError> {
        let class = config.get("connector.class").map(String::as_str).unwrap_or_default();
        let Some(plugin) = registry::connector(class) else {
            let known = registry::plugins(false).into_iter().map(|p| p.class).collect::<Vec<_>>().join(", ");
            let message = if class.is_empty() {
                format!(
                    "Connector config is missing the required key \"connector.class\"; known connector plugins: {known}"
                )
            } else {
                format!(
                    "Failed to find any class that implements Connector and which name matches {class}; \
                     known connector plugins: {known} (their short names, like FileStreamSource, work too)"
                )
            };
            return Err(ApiError::bad_request(message));
        };
        let infos = registry::validate(config);
        if infos.error_count > 0 {
            let errors = infos.error_messages();
            return Err(ApiError::bad_request(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\n\
                 You can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                errors.len(),
                errors.join("\n")
            )));
        }
        let max_tasks = config.get("tasks.max").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).max(1);
        let tasks = plugin.task_configs(config, max_tasks).map_err(|e| {
            ApiError::bad_request(format!("Connector {class} could not split its work into tasks: {e}"))
        })?;
        if tasks.len() > max_tasks {
            return Err(ApiError::internal(format!(
                "Connector {class} produced {} task configs, more than tasks.max={max_tasks}",
                tasks.len()
            )));
        }
        Ok(tasks)
    }

    /// Ops that replace a connector's task configs: write the new ones, drop extra ones and their statuses.
    fn task_ops(&self, name: &str, tasks: &[ConfigMap], old_count: usize) -> Vec<Op> {
        let mut ops: Vec<Op> =
            tasks.iter().enumerate().map(|(n, t)| Op::put(self.keys.task(name, n as u32), to_json(t))).collect();
        for n in tasks.len()..old_count {
            ops.push(Op::delete(self.keys.task(name, n as u32)));
            ops.push(Op::delete(self.keys.task_status(name, n as u32)));
        }
        ops
    }

    fn info(name: &str, config: ConfigMap, task_count: usize) -> ConnectorInfo {
        let connector_type = type_name(&config);
        ConnectorInfo {
            name: name.to_string(),
            tasks: (0..task_count as u32).map(|task| ConnectorTaskId { connector: name.to_string(), task }).collect(),
            config,
            connector_type,
        }
    }

    async fn write_config(
        &self,
        name: &str,
        config: ConfigMap,
        existing: Option<&StoredConnector>,
        initial_state: TargetState,
    ) -> Result<ConnectorInfo, ApiError> {
        let tasks = self.validate_for_write(&config)?;
        let stopped = existing.map(|e| e.target).unwrap_or(initial_state) == TargetState::Stopped;
        let task_list: &[ConfigMap] = if stopped { &[] } else { &tasks };
        let mut compares = Vec::new();
        let mut ops = vec![Op::put(self.keys.config(name), to_json(&config))];
        match existing {
            Some(e) => compares.push(Compare::ModRevision(self.keys.config(name), e.config_kv.mod_revision)),
            None => {
                compares.push(Compare::Missing(self.keys.config(name)));
                ops.push(Op::put(self.keys.target(name), to_json(&initial_state)));
                // A previous connector of the same name may have left statuses behind.
                ops.push(Op::delete_prefix(self.keys.status_prefix(name)));
            }
        }
        let old_count = existing.map(|e| e.tasks.len()).unwrap_or(0);
        ops.extend(self.task_ops(name, task_list, old_count));
        let outcome = self.store.txn(compares, ops).await?;
        if !outcome.succeeded {
            return Err(match existing {
                None => ApiError::new(ApiErrorKind::AlreadyExists, format!("Connector {name} already exists")),
                Some(_) => ApiError::new(ApiErrorKind::Conflict, STALE_CONFIG),
            });
        }
        tracing::info!(connector = %name, tasks = task_list.len(), revision = outcome.revision, "connector config written");
        Ok(Self::info(name, config, task_list.len()))
    }

    async fn set_target(
        &self,
        name: &str,
        target: TargetState,
        not_found: fn(&str) -> ApiError,
    ) -> Result<(), ApiError> {
        for _ in 0..3 {
            let existing = self.require(name, not_found).await?;
            let mut ops = vec![Op::put(self.keys.target(name), to_json(&target))];
            match (existing.target, target) {
                (_, TargetState::Stopped) => {
                    // Stopping removes the task configs, as Kafka Connect does; the scheduler then revokes them.
                    ops.extend(self.task_ops(name, &[], existing.tasks.len()));
                }
                (TargetState::Stopped, _) => {
                    let tasks = self.validate_for_write(&existing.config)?;
                    ops.extend(self.task_ops(name, &tasks, 0));
                }
                _ => {}
            }
            let compare = Compare::ModRevision(self.keys.config(name), existing.config_kv.mod_revision);
            if self.store.txn(vec![compare], ops).await?.succeeded {
                tracing::info!(connector = %name, target = target.as_str(), "target state changed");
                return Ok(());
            }
        }
        Err(ApiError::new(ApiErrorKind::Conflict, STALE_CONFIG))
    }

    /// Status of every task of a connector, derived from where the task is assigned and what its agent reported
    /// for the current epoch (a report of an older epoch is history, not the present).
    async fn task_states(&self, name: &str, task_count: usize) -> Result<Vec<TaskStateInfo>, ApiError> {
        let (assignment_kvs, _) = self.store.list(&self.keys.assignments()).await?;
        let mut placements: BTreeMap<u32, (String, AssignedTask)> = BTreeMap::new();
        for kv in assignment_kvs {
            let Ok(record) = serde_json::from_slice::<AssignmentRecord>(&kv.value) else { continue };
            let agent = unescape(kv.key.rsplit('/').next().unwrap_or_default());
            for t in record.tasks.into_iter().filter(|t| t.connector == name) {
                placements.insert(t.task, (agent.clone(), t));
            }
        }
        let (status_kvs, _) = self.store.list(&self.keys.status_prefix(name)).await?;
        let prefix = self.keys.status_prefix(name);
        let statuses: BTreeMap<u32, TaskStatusRecord> = status_kvs
            .into_iter()
            .filter_map(|kv| {
                let n = kv.key.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, serde_json::from_slice(&kv.value).ok()?))
            })
            .collect();
        Ok((0..task_count as u32)
            .map(|id| {
                let placement = placements.get(&id);
                match (placement, statuses.get(&id)) {
                    (Some((_, assigned)), Some(s)) if s.epoch == assigned.epoch => TaskStateInfo {
                        id,
                        state: s.state.clone(),
                        worker_id: s.worker_id.clone(),
                        trace: s.trace.clone().filter(|t| !t.is_empty()),
                    },
                    (Some((agent, _)), _) => {
                        TaskStateInfo { id, state: "UNASSIGNED".into(), worker_id: agent.clone(), trace: None }
                    }
                    (None, _) => {
                        TaskStateInfo { id, state: "UNASSIGNED".into(), worker_id: String::new(), trace: None }
                    }
                }
            })
            .collect())
    }

    async fn status_of(&self, name: &str, stored: &StoredConnector) -> Result<ConnectorStateInfo, ApiError> {
        let tasks = self.task_states(name, stored.tasks.len()).await?;
        let worker_id = tasks
            .first()
            .map(|t| t.worker_id.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| self.replica_id.clone());
        Ok(ConnectorStateInfo {
            name: name.to_string(),
            connector: ConnectorState { state: stored.target.as_str().to_string(), worker_id, trace: None },
            tasks,
            connector_type: type_name(&stored.config),
        })
    }

    async fn request_restarts(&self, name: &str, tasks: &[u32]) -> Result<(), ApiError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let ops = tasks.iter().map(|&t| Op::put(self.keys.restart(name, t), b"{}".to_vec())).collect();
        self.store.txn(Vec::new(), ops).await?;
        Ok(())
    }
}

#[async_trait]
impl ConnectApi for ConnectService {
    async fn server_info(&self) -> Result<ServerInfo, ApiError> {
        let kafka_cluster_id = match &self.cluster_id {
            Some(source) => source.cluster_id().await,
            None => None,
        };
        Ok(ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: option_env!("SLUICE_GIT_COMMIT").unwrap_or("unknown").to_string(),
            kafka_cluster_id,
        })
    }

    async fn list_connectors(&self) -> Result<Vec<String>, ApiError> {
        let (kvs, _) = self.store.list(&self.keys.connectors()).await?;
        let prefix = self.keys.connectors();
        let names: BTreeSet<String> =
            kvs.iter().filter_map(|kv| kv.key.strip_prefix(&prefix)?.strip_suffix("/config").map(unescape)).collect();
        Ok(names.into_iter().collect())
    }

    async fn create_connector(&self, request: CreateConnector) -> Result<ConnectorInfo, ApiError> {
        let name = request.name.trim().to_string();
        check_name(&name)?;
        let mut config = request.config;
        match config.get("name") {
            Some(n) if n != &name => {
                return Err(ApiError::bad_request(format!(
                    "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
                )));
            }
            _ => {
                config.insert("name".into(), name.clone());
            }
        }
        if self.load(&name).await?.is_some() {
            return Err(ApiError::new(ApiErrorKind::AlreadyExists, format!("Connector {name} already exists")));
        }
        self.write_config(&name, config, None, request.initial_state).await
    }

    async fn connector_info(&self, name: &str) -> Result<ConnectorInfo, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        let count = stored.tasks.len();
        Ok(Self::info(name, stored.config, count))
    }

    async fn connector_config(&self, name: &str) -> Result<ConfigMap, ApiError> {
        Ok(self.require(name, ApiError::connector_not_found).await?.config)
    }

    async fn put_connector_config(&self, name: &str, mut config: ConfigMap) -> Result<(bool, ConnectorInfo), ApiError> {
        check_name(name)?;
        match config.get("name") {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
                )));
            }
            _ => {
                config.insert("name".into(), name.to_string());
            }
        }
        let existing = self.load(name).await?;
        let created = existing.is_none();
        let info = self.write_config(name, config, existing.as_ref(), TargetState::Running).await?;
        Ok((created, info))
    }

    async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, ApiError> {
        let existing = self.require(name, ApiError::connector_not_found).await?;
        let mut config = existing.config.clone();
        for (key, value) in patch {
            match value {
                Some(v) => {
                    config.insert(key, v);
                }
                None => {
                    config.remove(&key);
                }
            }
        }
        if let Some(n) = config.get("name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
            )));
        }
        config.insert("name".into(), name.to_string());
        self.write_config(name, config, Some(&existing), TargetState::Running).await
    }

    async fn delete_connector(&self, name: &str) -> Result<(), ApiError> {
        let existing = self.require(name, ApiError::connector_not_found).await?;
        let ops = vec![
            Op::delete_prefix(self.keys.connector(name)),
            Op::delete_prefix(self.keys.status_prefix(name)),
            Op::delete_prefix(self.keys.restart_prefix(name)),
        ];
        let compare = Compare::ModRevision(self.keys.config(name), existing.config_kv.mod_revision);
        if !self.store.txn(vec![compare], ops).await?.succeeded {
            return Err(ApiError::new(ApiErrorKind::Conflict, STALE_CONFIG));
        }
        tracing::info!(connector = %name, "connector deleted");
        Ok(())
    }

    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, ApiError> {
        let stored = self.require(name, |n| ApiError::not_found(format!("No status found for connector {n}"))).await?;
        self.status_of(name, &stored).await
    }

    async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        Ok(stored
            .tasks
            .into_iter()
            .map(|(task, config)| TaskInfo { id: ConnectorTaskId { connector: name.to_string(), task }, config })
            .collect())
    }

    async fn task_status(&self, name: &str, task: u32) -> Result<TaskStateInfo, ApiError> {
        let not_found = || ApiError::not_found(format!("No status found for task {name}-{task}"));
        let stored = self.load(name).await?.ok_or_else(not_found)?;
        if !stored.tasks.contains_key(&task) {
            return Err(not_found());
        }
        let states = self.task_states(name, stored.tasks.len()).await?;
        states.into_iter().find(|t| t.id == task).ok_or_else(not_found)
    }

    async fn pause_connector(&self, name: &str) -> Result<(), ApiError> {
        self.set_target(name, TargetState::Paused, |n| ApiError::not_found(format!("Unknown connector {n}"))).await
    }

    async fn resume_connector(&self, name: &str) -> Result<(), ApiError> {
        self.set_target(name, TargetState::Running, |n| ApiError::not_found(format!("Unknown connector {n}"))).await
    }

    async fn stop_connector(&self, name: &str) -> Result<(), ApiError> {
        self.set_target(name, TargetState::Stopped, |n| ApiError::not_found(format!("Unknown connector {n}"))).await
    }

    async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStateInfo>, ApiError> {
        let stored = self.require(name, |n| ApiError::not_found(format!("Unknown connector: {n}"))).await?;
        // The connector itself is a pure task split in Sluice: "restarting" it means nothing runs to restart.
        if !include_tasks && !only_failed {
            return Ok(None);
        }
        let mut status = self.status_of(name, &stored).await?;
        let restart: Vec<u32> = if include_tasks {
            status.tasks.iter().filter(|t| !only_failed || t.state == "FAILED").map(|t| t.id).collect()
        } else {
            Vec::new()
        };
        self.request_restarts(name, &restart).await?;
        for t in status.tasks.iter_mut().filter(|t| restart.contains(&t.id)) {
            t.state = "RESTARTING".into();
            t.trace = None;
        }
        if !only_failed || status.connector.state == "FAILED" {
            status.connector.state = "RESTARTING".into();
        }
        Ok(Some(status))
    }

    async fn restart_task(&self, name: &str, task: u32) -> Result<(), ApiError> {
        let stored = self.require(name, |n| ApiError::not_found(format!("Unknown connector: {n}"))).await?;
        if !stored.tasks.contains_key(&task) {
            return Err(ApiError::not_found(format!("Unknown task: {name}-{task}")));
        }
        self.request_restarts(name, &[task]).await
    }

    async fn connector_plugins(&self, include_all: bool) -> Result<Vec<PluginInfo>, ApiError> {
        Ok(registry::plugins(include_all))
    }

    async fn validate_config(&self, plugin: &str, mut config: ConfigMap) -> Result<ConfigInfos, ApiError> {
        let Some(by_url) = registry::connector(plugin) else {
            let known = registry::plugins(false).into_iter().map(|p| p.class).collect::<Vec<_>>().join(", ");
            return Err(ApiError::bad_request(format!(
                "Failed to find any class that implements Connector and which name matches {plugin}; known connector plugins: {known}"
            )));
        };
        match config.get("connector.class") {
            Some(class) => {
                let same = registry::connector(class).is_some_and(|c| c.class_name() == by_url.class_name());
                if !same {
                    return Err(ApiError::bad_request(
                        "Connector class in the URL must match connector.class in the configuration",
                    ));
                }
            }
            None => {
                config.insert("connector.class".into(), plugin.to_string());
            }
        }
        Ok(registry::validate(&config))
    }
}
