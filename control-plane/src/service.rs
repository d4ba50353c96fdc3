//! [`ConnectService`]: the one implementation of [`ConnectApi`], on top of a [`KvStore`]. Every write is one guarded
//! transaction (config, target state and task configs of a connector change together), so a concurrent writer
//! gets Kafka Connect's 409 instead of a half-applied change. Reads go to the store, never to a cache, so a client
//! always sees its own writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sluice_connectors::config::{ConfigKeyInfo, parse_list};
use sluice_connectors::registry::{self, PluginInfo};
use sluice_connectors::{ConfigInfos, ConfigMap, ConnectorType};

use crate::api::{
    ApiError, ApiErrorKind, ConnectApi, ConnectorInfo, ConnectorOffset, ConnectorOffsets, ConnectorState,
    ConnectorStateInfo, ConnectorTaskId, CreateConnector, LoggerLevel, LoggerScope, Message, ServerInfo, TargetState,
    TaskInfo, TaskStateInfo,
};
use crate::logging::LogLevels;
use crate::model::{
    AssignedTask, AssignmentRecord, Keys, TaskStatusRecord, decode_task_configs, encode_task_configs,
    expand_task_configs, unescape,
};
use crate::secrets;
use crate::sink_offsets::{SinkOffsets, SinkPosition, SinkTopics};
use crate::store::{Compare, KeyValue, KvStore, Op, StoreError};

/// Longest connector name, in bytes. Kafka Connect sets none, but a name is part of several store keys, of the
/// sink's consumer group `connect-<name>` and of transactional ids; a longer one is a 400, not a store error.
pub const MAX_NAME_BYTES: usize = 1024;

/// Highest `tasks.max`. Checked before the connector splits its work, so no request can make the control plane
/// allocate in proportion to a number in it.
pub const MAX_TASKS: usize = 4096;

/// Largest connector config, as stored (JSON). etcd refuses requests over `--max-request-bytes` (1.5 MiB by
/// default); a config above this is a 413 before anything is written.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Largest write of one connector (config, task configs, target) in one transaction, below etcd's 1.5 MiB.
const MAX_WRITE_BYTES: usize = 1400 * 1024;

/// Most task statuses deleted key by key in a config write; beyond it the connector's status prefix goes at once
/// (a config change restarts every task with a new epoch, which reports its status again), so that a transaction
/// stays within etcd's 128 operations.
const MAX_STATUS_DELETES: usize = 64;

/// Most keys written by one transaction of the service (etcd's `--max-txn-ops` is 128).
const MAX_TXN_OPS: usize = 100;

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
    /// The consumer groups of sink connectors; absent when the control plane was not told where Kafka is.
    sink_offsets: Option<Arc<dyn SinkOffsets>>,
    log_levels: Arc<LogLevels>,
    /// The defaults validate shows for `key.converter`, `value.converter` and `header.converter`.
    worker_converters: registry::WorkerConverters,
}

const NOT_STOPPED_SUFFIX: &str = "/stop' endpoint";

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
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "Connector name is too long: {} bytes, at most {MAX_NAME_BYTES} are allowed",
            name.len()
        )));
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
        ConnectService {
            store,
            keys,
            replica_id: replica_id.into(),
            cluster_id: None,
            sink_offsets: None,
            log_levels: crate::logging::levels(),
            worker_converters: registry::WorkerConverters::default(),
        }
    }

    pub fn with_sink_offsets(mut self, sink_offsets: Arc<dyn SinkOffsets>) -> Self {
        self.sink_offsets = Some(sink_offsets);
        self
    }

    pub fn with_worker_converters(mut self, converters: registry::WorkerConverters) -> Self {
        self.worker_converters = converters;
        self
    }

    pub fn with_log_levels(mut self, log_levels: Arc<LogLevels>) -> Self {
        self.log_levels = log_levels;
        self
    }

    fn sink_offsets(&self) -> Result<&Arc<dyn SinkOffsets>, ApiError> {
        self.sink_offsets.as_ref().ok_or_else(|| {
            ApiError::internal(
                "Sink connector offsets live in Kafka (consumer group connect-<name>), and this control plane was \
                 started without --kafka-bootstrap-servers (SLUICE_KAFKA_BOOTSTRAP_SERVERS)",
            )
        })
    }

    /// The connector, if it is STOPPED and none of its tasks is still assigned (a task that is still stopping may
    /// still commit offsets). 400 with Kafka Connect's message when it is not stopped.
    async fn require_stopped(&self, name: &str) -> Result<StoredConnector, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        if stored.target != TargetState::Stopped || !stored.tasks.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for \
                 the specified connector by issuing a 'PUT' request to the '/connectors/{name}{NOT_STOPPED_SUFFIX}"
            )));
        }
        if self.wait_unassigned(name).await? {
            Ok(stored)
        } else {
            Err(ApiError::new(
                ApiErrorKind::Conflict,
                format!("The tasks of connector {name} are still stopping; try again in a few seconds"),
            ))
        }
    }

    /// Waits up to 10 s until no agent is assigned a task of `name` (tasks that are stopping still commit offsets);
    /// `false` when some still are.
    async fn wait_unassigned(&self, name: &str) -> Result<bool, ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (kvs, _) = self.store.list(&self.keys.assignments()).await?;
            let assigned = kvs.iter().any(|kv| {
                serde_json::from_slice::<AssignmentRecord>(&kv.value)
                    .is_ok_and(|r| r.tasks.iter().any(|t| t.connector == name))
            });
            if !assigned {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The committed source offsets of a connector: key (escaped partition JSON) and entry.
    async fn source_offsets(&self, name: &str) -> Result<Vec<(String, ConnectorOffset)>, ApiError> {
        let prefix = self.keys.offsets_prefix(name);
        let (kvs, _) = self.store.list(&prefix).await?;
        let mut out = Vec::new();
        for kv in kvs {
            let Some(escaped) = kv.key.strip_prefix(&prefix) else { continue };
            let partition = serde_json::from_str::<Map<String, Value>>(&unescape(escaped));
            let offset = serde_json::from_slice::<Map<String, Value>>(&kv.value);
            match (partition, offset) {
                (Ok(partition), Ok(offset)) => {
                    out.push((kv.key.clone(), ConnectorOffset { partition, offset: Some(offset) }))
                }
                _ => tracing::warn!(key = %kv.key, "skipping an unreadable source offset"),
            }
        }
        Ok(out)
    }

    fn sink_topics(config: &ConfigMap) -> SinkTopics {
        SinkTopics {
            topics: config
                .get("topics")
                .map(|t| parse_list(t).into_iter().map(String::from).collect())
                .unwrap_or_default(),
            regex: config.get("topics.regex").map(|r| r.trim().to_string()).filter(|r| !r.is_empty()),
        }
    }

    fn connector_kind(name: &str, config: &ConfigMap) -> Result<ConnectorType, ApiError> {
        connector_type_of(config).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Connector {name} has an unknown connector.class, so whether its offsets are source or sink offsets \
                 is unknown"
            ))
        })
    }

    async fn alter_source_offsets(&self, name: &str, offsets: Vec<ConnectorOffset>) -> Result<(), ApiError> {
        let existing = self.source_offsets(name).await?;
        // One write per partition: a partition listed twice takes its last entry, as Kafka Connect's map of
        // offsets does (etcd refuses a transaction that names a key twice).
        let mut ops = BTreeMap::new();
        for entry in offsets {
            // The same partition may be stored with its keys in another order: reuse the stored key then.
            let key = existing
                .iter()
                .find(|(_, e)| e.partition == entry.partition)
                .map(|(key, _)| key.clone())
                .unwrap_or_else(|| self.keys.offset(name, &sluice_connectors::record::partition_key(&entry.partition)));
            let op = match entry.offset {
                Some(offset) => Op::put(key.clone(), to_json(&offset)),
                None => Op::delete(key.clone()),
            };
            ops.insert(key, op);
        }
        let mut ops: Vec<Op> = ops.into_values().collect();
        ops.push(self.new_offsets_generation(name));
        self.store.txn(Vec::new(), ops).await?;
        Ok(())
    }

    /// Marks the store's source offsets of `name` as set from outside its tasks (see `Keys::offsets_generation`),
    /// in the transaction that sets them: exactly-once tasks then resume from them, not from their offsets topic.
    fn new_offsets_generation(&self, name: &str) -> Op {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        Op::put(self.keys.offsets_generation(name), format!("{nanos:x}-{:x}", std::process::id()))
    }

    async fn alter_sink_offsets(
        &self,
        name: &str,
        config: &ConfigMap,
        offsets: Vec<ConnectorOffset>,
    ) -> Result<(), ApiError> {
        let mut set: Vec<SinkPosition> = Vec::new();
        let mut remove = Vec::new();
        for entry in offsets {
            let (topic, partition) = sink_partition(&entry.partition)?;
            match entry.offset {
                None => remove.push((topic, partition)),
                Some(offset) => set.push((topic, partition, sink_offset(&offset)?)),
            }
        }
        self.sink_offsets()?
            .alter(&format!("connect-{name}"), &Self::sink_topics(config), set, remove)
            .await
            .map_err(|e| ApiError::internal(format!("Failed to alter the offsets of sink connector {name}: {e}")))
    }

    pub fn with_cluster_id_source(mut self, source: Arc<dyn ClusterIdSource>) -> Self {
        self.cluster_id = Some(source);
        self
    }

    async fn load(&self, name: &str) -> Result<Option<StoredConnector>, ApiError> {
        if name.len() > MAX_NAME_BYTES {
            // No connector can have this name (creating one is a 400): not found, without asking the store.
            return Ok(None);
        }
        let (kvs, _) = self.store.list(&self.keys.connector(name)).await?;
        let config_key = self.keys.config(name);
        let target_key = self.keys.target(name);
        let tasks_prefix = self.keys.tasks(name);
        let task_configs_key = self.keys.task_configs(name);
        let mut config_kv = None;
        let mut target = TargetState::Running;
        let mut tasks = BTreeMap::new();
        let mut task_list = None;
        for kv in kvs {
            if kv.key == task_configs_key {
                let entries = decode_task_configs(&kv.value)
                    .map_err(|e| ApiError::internal(format!("corrupt task configs at {}: {e}", kv.key)))?;
                task_list = Some(entries);
            } else if kv.key == config_key {
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
        if let Some(entries) = task_list {
            tasks =
                expand_task_configs(&config, &entries).into_iter().enumerate().map(|(n, t)| (n as u32, t)).collect();
        }
        Ok(Some(StoredConnector { config, config_kv, target, tasks }))
    }

    async fn require(&self, name: &str, not_found: impl FnOnce(&str) -> ApiError) -> Result<StoredConnector, ApiError> {
        self.load(name).await?.ok_or_else(|| not_found(name))
    }

    /// Validates a config for storing: the plugin exists and every key is valid. Returns the task configs.
    fn validate_for_write(&self, config: &ConfigMap) -> Result<Vec<ConfigMap>, ApiError> {
        check_limits(config)?;
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
            // Kafka Connect lists the messages alone (they name their key).
            let errors: Vec<&str> =
                infos.configs.iter().flat_map(|c| c.value.errors.iter().map(String::as_str)).collect();
            return Err(ApiError::bad_request(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\n\
                 You can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                errors.len(),
                errors.join("\n")
            )));
        }
        let max_tasks =
            config.get("tasks.max").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).clamp(1, MAX_TASKS);
        // Splitting a valid config into task configs is where Sluice starts a connector (connector-startup-*).
        let metrics = crate::metrics::global();
        metrics.connector_startup_attempt();
        let tasks = plugin.task_configs(config, max_tasks).map_err(|e| {
            metrics.connector_startup(false);
            ApiError::bad_request(format!("Connector {class} could not split its work into tasks: {e}"))
        })?;
        if tasks.len() > max_tasks {
            metrics.connector_startup(false);
            return Err(ApiError::internal(format!(
                "Connector {class} produced {} task configs, more than tasks.max={max_tasks}",
                tasks.len()
            )));
        }
        metrics.connector_startup(true);
        Ok(tasks)
    }

    /// Ops that replace a connector's task configs: all of them in one key (and the legacy per-task keys gone),
    /// the statuses of tasks that no longer exist dropped. At most `3 + MAX_STATUS_DELETES` operations, whatever
    /// the task count.
    fn task_ops(&self, name: &str, config: &ConfigMap, tasks: &[ConfigMap], old_count: usize) -> Vec<Op> {
        let mut ops = vec![Op::delete_prefix(self.keys.tasks(name))];
        if tasks.is_empty() {
            ops.push(Op::delete(self.keys.task_configs(name)));
        } else {
            ops.push(Op::put(self.keys.task_configs(name), encode_task_configs(config, tasks)));
        }
        let removed = old_count.saturating_sub(tasks.len());
        if removed > MAX_STATUS_DELETES {
            ops.push(Op::delete_prefix(self.keys.status_prefix(name)));
        } else {
            for n in tasks.len()..old_count {
                ops.push(Op::delete(self.keys.task_status(name, n as u32)));
            }
        }
        ops
    }

    /// The info answer, secrets hidden.
    fn info(name: &str, config: ConfigMap, task_count: usize) -> ConnectorInfo {
        let connector_type = type_name(&config);
        ConnectorInfo {
            name: name.to_string(),
            tasks: (0..task_count as u32).map(|task| ConnectorTaskId { connector: name.to_string(), task }).collect(),
            config: secrets::redact(&config, &config),
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
        // As Kafka Connect: a STOPPED connector has no tasks, nor has one created PAUSED until it first runs (one
        // paused while running keeps its tasks, PAUSED).
        let no_tasks = match existing.map(|e| e.target).unwrap_or(initial_state) {
            TargetState::Stopped => true,
            TargetState::Paused => existing.is_none_or(|e| e.tasks.is_empty()),
            TargetState::Running => false,
        };
        let task_list: &[ConfigMap] = if no_tasks { &[] } else { &tasks };
        let mut compares = Vec::new();
        let mut ops = vec![Op::put(self.keys.config(name), to_json(&config))];
        match existing {
            Some(e) => compares.push(Compare::ModRevision(self.keys.config(name), e.config_kv.mod_revision)),
            None => {
                compares.push(Compare::Missing(self.keys.config(name)));
                ops.push(Op::put(self.keys.target(name), to_json(&initial_state)));
                // A previous connector of the same name may have left statuses behind.
                ops.push(Op::delete_prefix(self.keys.status_prefix(name)));
                // A new connector starts from the store's offsets (none, or those PATCHed while it is STOPPED), never
                // from what an earlier connector of the same name left in an exactly-once offsets topic.
                ops.push(self.new_offsets_generation(name));
            }
        }
        let old_count = existing.map(|e| e.tasks.len()).unwrap_or(0);
        ops.extend(self.task_ops(name, &config, task_list, old_count));
        check_write_size(&ops)?;
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
                    ops.extend(self.task_ops(name, &existing.config, &[], existing.tasks.len()));
                }
                (TargetState::Stopped, _) => {
                    let tasks = self.validate_for_write(&existing.config)?;
                    ops.extend(self.task_ops(name, &existing.config, &tasks, 0));
                    check_write_size(&ops)?;
                }
                // Created PAUSED: its tasks come with the first resume.
                (TargetState::Paused, TargetState::Running) if existing.tasks.is_empty() => {
                    let tasks = self.validate_for_write(&existing.config)?;
                    ops.extend(self.task_ops(name, &existing.config, &tasks, 0));
                    check_write_size(&ops)?;
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
    async fn task_states(
        &self,
        name: &str,
        task_count: usize,
        version: Option<String>,
    ) -> Result<Vec<TaskStateInfo>, ApiError> {
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
        Ok(derive_task_states(task_count, &placements, &statuses, version))
    }

    /// The status of every connector in three prefix reads (connectors, assignments, statuses), however many there
    /// are: `GET /connectors?expand=status` must not read every assignment once per connector.
    async fn all_statuses(&self) -> Result<BTreeMap<String, ConnectorStateInfo>, ApiError> {
        let (connector_kvs, _) = self.store.list(&self.keys.connectors()).await?;
        let (assignment_kvs, _) = self.store.list(&self.keys.assignments()).await?;
        let (status_kvs, _) = self.store.list(&self.keys.statuses()).await?;
        // name → (config, target, task count)
        let mut connectors: BTreeMap<String, (Option<ConfigMap>, TargetState, usize)> = BTreeMap::new();
        let prefix = self.keys.connectors();
        for kv in &connector_kvs {
            let Some(rest) = kv.key.strip_prefix(&prefix) else { continue };
            let parts: Vec<&str> = rest.split('/').collect();
            let entry = |name: &str| unescape(name);
            match parts.as_slice() {
                [name, "config"] => {
                    let config = serde_json::from_slice(&kv.value).ok();
                    connectors.entry(entry(name)).or_insert((None, TargetState::Running, 0)).0 = config;
                }
                [name, "target"] => {
                    let target = serde_json::from_slice(&kv.value).unwrap_or(TargetState::Running);
                    connectors.entry(entry(name)).or_insert((None, TargetState::Running, 0)).1 = target;
                }
                [name, "tasks", n] if n.parse::<u32>().is_ok() => {
                    connectors.entry(entry(name)).or_insert((None, TargetState::Running, 0)).2 += 1;
                }
                [name, "task-configs"] => {
                    let count = decode_task_configs(&kv.value).map(|t| t.len()).unwrap_or(0);
                    connectors.entry(entry(name)).or_insert((None, TargetState::Running, 0)).2 = count;
                }
                _ => {}
            }
        }
        let mut placements: BTreeMap<String, BTreeMap<u32, (String, AssignedTask)>> = BTreeMap::new();
        for kv in assignment_kvs {
            let Ok(record) = serde_json::from_slice::<AssignmentRecord>(&kv.value) else { continue };
            let agent = unescape(kv.key.rsplit('/').next().unwrap_or_default());
            for t in record.tasks {
                placements.entry(t.connector.clone()).or_default().insert(t.task, (agent.clone(), t));
            }
        }
        let mut statuses: BTreeMap<String, BTreeMap<u32, TaskStatusRecord>> = BTreeMap::new();
        let prefix = self.keys.statuses();
        for kv in status_kvs {
            let Some((name, n)) = kv.key.strip_prefix(&prefix).and_then(|rest| rest.rsplit_once('/')) else { continue };
            let (Ok(n), Ok(record)) = (n.parse::<u32>(), serde_json::from_slice(&kv.value)) else { continue };
            statuses.entry(unescape(name)).or_default().insert(n, record);
        }
        let (no_placements, no_statuses) = (BTreeMap::new(), BTreeMap::new());
        Ok(connectors
            .into_iter()
            .filter_map(|(name, (config, target, task_count))| {
                let config = config?;
                let tasks = derive_task_states(
                    task_count,
                    placements.get(&name).unwrap_or(&no_placements),
                    statuses.get(&name).unwrap_or(&no_statuses),
                    plugin_version(&config),
                );
                let info = self.state_info(&name, &config, target, tasks);
                Some((name, info))
            })
            .collect())
    }

    async fn status_of(&self, name: &str, stored: &StoredConnector) -> Result<ConnectorStateInfo, ApiError> {
        let tasks = self.task_states(name, stored.tasks.len(), plugin_version(&stored.config)).await?;
        Ok(self.state_info(name, &stored.config, stored.target, tasks))
    }

    fn state_info(
        &self,
        name: &str,
        config: &ConfigMap,
        target: TargetState,
        tasks: Vec<TaskStateInfo>,
    ) -> ConnectorStateInfo {
        let worker_id = tasks
            .first()
            .map(|t| t.worker_id.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| self.replica_id.clone());
        ConnectorStateInfo {
            name: name.to_string(),
            connector: ConnectorState {
                state: target.as_str().to_string(),
                worker_id,
                trace: None,
                version: plugin_version(config),
            },
            tasks,
            connector_type: type_name(config),
        }
    }

    /// Asks the leader to restart `tasks` and, in the same transaction, records them as RESTARTING at the epoch
    /// they run at: status shows RESTARTING from the moment the request is accepted until the agent reports on
    /// the new epoch, as Kafka Connect shows it at once (see [`derive_task_states`]).
    async fn request_restarts(&self, name: &str, tasks: &[u32]) -> Result<(), ApiError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let (assignment_kvs, _) = self.store.list(&self.keys.assignments()).await?;
        let mut placements: BTreeMap<u32, (String, u64)> = BTreeMap::new();
        for kv in assignment_kvs {
            let Ok(record) = serde_json::from_slice::<AssignmentRecord>(&kv.value) else { continue };
            let agent = unescape(kv.key.rsplit('/').next().unwrap_or_default());
            for t in record.tasks.into_iter().filter(|t| t.connector == name) {
                placements.insert(t.task, (agent.clone(), t.epoch));
            }
        }
        // A task's restart mark and its RESTARTING status go in one transaction; a connector with many tasks is
        // marked in several (restart marks are idempotent).
        for chunk in tasks.chunks(MAX_TXN_OPS / 2) {
            let mut ops = Vec::new();
            for &task in chunk {
                ops.push(Op::put(self.keys.restart(name, task), b"{}".to_vec()));
                let Some((agent, epoch)) = placements.get(&task) else { continue };
                let status_key = self.keys.task_status(name, task);
                let worker_id = match self.store.get(&status_key).await? {
                    Some(kv) => serde_json::from_slice::<TaskStatusRecord>(&kv.value)
                        .map(|r| r.worker_id)
                        .unwrap_or_else(|_| agent.clone()),
                    None => agent.clone(),
                };
                let record = TaskStatusRecord {
                    state: RESTARTING.to_string(),
                    worker_id,
                    trace: None,
                    epoch: *epoch,
                    agent_id: agent.clone(),
                };
                ops.push(Op::put(status_key, to_json(&record)));
            }
            self.store.txn(Vec::new(), ops).await?;
        }
        Ok(())
    }
}

/// The limits checked before a config is validated or written: its stored size (413 above
/// [`MAX_CONFIG_BYTES`]) and `tasks.max` (400 above [`MAX_TASKS`]).
fn check_limits(config: &ConfigMap) -> Result<(), ApiError> {
    let size = to_json(config).len();
    if size > MAX_CONFIG_BYTES {
        let largest = config.iter().max_by_key(|(k, v)| k.len() + v.len()).map(|(k, _)| k.as_str()).unwrap_or("");
        return Err(ApiError::new(
            ApiErrorKind::PayloadTooLarge,
            format!(
                "Connector configuration is too large: {size} bytes as stored, at most {MAX_CONFIG_BYTES} are \
                 allowed (largest value: `{largest}`)"
            ),
        ));
    }
    if let Some(value) = config.get("tasks.max")
        && let Ok(n) = value.trim().parse::<u64>()
        && n > MAX_TASKS as u64
    {
        return Err(ApiError::bad_request(format!(
            "Invalid value {} for configuration tasks.max: at most {MAX_TASKS} tasks per connector are allowed",
            value.trim()
        )));
    }
    Ok(())
}

/// 413 when one write would exceed what etcd takes in one request (the task configs of many distinct tasks).
fn check_write_size(ops: &[Op]) -> Result<(), ApiError> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
            Op::DeletePrefix { prefix } => prefix.len(),
        })
        .sum();
    if size > MAX_WRITE_BYTES {
        return Err(ApiError::new(
            ApiErrorKind::PayloadTooLarge,
            format!(
                "Connector configuration and task configurations are too large to store: {size} bytes, at most \
                 {MAX_WRITE_BYTES} are allowed in one write"
            ),
        ));
    }
    Ok(())
}

/// Status of every task of one connector, from where each task is assigned and what its agent reported for the
/// current epoch (a report of an older epoch is history, not the present).
///
/// A restart writes RESTARTING with the epoch the task ran at (see `ConnectService::request_restarts`); it stands
/// until the agent reports on the new epoch, so status never falls back to the pre-restart state, nor to
/// UNASSIGNED while the task moves to its new epoch, after the restart was accepted.
fn derive_task_states(
    task_count: usize,
    placements: &BTreeMap<u32, (String, AssignedTask)>,
    statuses: &BTreeMap<u32, TaskStatusRecord>,
    version: Option<String>,
) -> Vec<TaskStateInfo> {
    let state = |id, state: &str, worker_id: &str, trace: Option<String>| TaskStateInfo {
        id,
        state: state.to_string(),
        worker_id: worker_id.to_string(),
        trace,
        version: version.clone(),
    };
    (0..task_count as u32)
        .map(|id| match (placements.get(&id), statuses.get(&id)) {
            (Some((_, assigned)), Some(s))
                if s.epoch == assigned.epoch || (s.state == RESTARTING && s.epoch < assigned.epoch) =>
            {
                state(id, &s.state, &s.worker_id, s.trace.clone().filter(|t| !t.is_empty()))
            }
            (Some((agent, _)), _) => state(id, "UNASSIGNED", agent, None),
            (None, _) => state(id, "UNASSIGNED", "", None),
        })
        .collect()
}

const RESTARTING: &str = "RESTARTING";

/// The version of the connector plugin a config names, as status answers show it.
fn plugin_version(config: &ConfigMap) -> Option<String> {
    let class = config.get("connector.class")?;
    registry::connector(class).map(|c| c.version().to_string())
}

#[async_trait]
impl ConnectApi for ConnectService {
    async fn server_info(&self) -> Result<ServerInfo, ApiError> {
        let kafka_cluster_id = match &self.cluster_id {
            Some(source) => source.cluster_id().await,
            None => None,
        };
        Ok(ServerInfo {
            version: registry::KAFKA_CONNECT_VERSION.to_string(),
            commit: option_env!("SLUICE_GIT_COMMIT").unwrap_or("unknown").to_string(),
            kafka_cluster_id,
            sluice_version: env!("CARGO_PKG_VERSION").to_string(),
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
        let config = self.require(name, ApiError::connector_not_found).await?.config;
        Ok(secrets::redact(&config, &config))
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
        if let Some(existing) = &existing {
            secrets::keep_hidden(&mut config, &existing.config);
        }
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
                Some(v) if v == secrets::HIDDEN && existing.config.contains_key(&key) => {}
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
        // Unlike Kafka Connect, deleting a connector deletes its offsets: a new connector of the same name starts
        // from the beginning instead of silently resuming where an unrelated old one stopped.
        let ops = vec![
            Op::delete_prefix(self.keys.connector(name)),
            Op::delete_prefix(self.keys.status_prefix(name)),
            Op::delete_prefix(self.keys.restart_prefix(name)),
            Op::delete_prefix(self.keys.offsets_prefix(name)),
            Op::delete_prefix(self.keys.topics_prefix(name)),
        ];
        let compare = Compare::ModRevision(self.keys.config(name), existing.config_kv.mod_revision);
        if !self.store.txn(vec![compare], ops).await?.succeeded {
            return Err(ApiError::new(ApiErrorKind::Conflict, STALE_CONFIG));
        }
        tracing::info!(connector = %name, "connector deleted");
        if connector_type_of(&existing.config) == Some(ConnectorType::Sink)
            && let Some(sink_offsets) = self.sink_offsets.clone()
        {
            // The sink's consumer group goes too, once its tasks have left it (they stop within seconds).
            let group = format!("connect-{name}");
            tokio::spawn(async move {
                let mut last_error = String::new();
                for _ in 0..30 {
                    match sink_offsets.delete_group(&group).await {
                        Ok(()) => {
                            tracing::info!(%group, "consumer group of deleted sink connector deleted");
                            return;
                        }
                        Err(e) => last_error = e,
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                tracing::warn!(%group, error = %last_error, "cannot delete the consumer group of a deleted sink connector");
            });
        }
        Ok(())
    }

    async fn connector_status(&self, name: &str) -> Result<ConnectorStateInfo, ApiError> {
        let stored = self.require(name, |n| ApiError::not_found(format!("No status found for connector {n}"))).await?;
        self.status_of(name, &stored).await
    }

    async fn connector_statuses(&self) -> Result<BTreeMap<String, ConnectorStateInfo>, ApiError> {
        self.all_statuses().await
    }

    async fn connector_tasks(&self, name: &str) -> Result<Vec<TaskInfo>, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        Ok(stored
            .tasks
            .into_iter()
            .map(|(task, config)| TaskInfo {
                id: ConnectorTaskId { connector: name.to_string(), task },
                config: secrets::redact(&config, &stored.config),
            })
            .collect())
    }

    async fn task_status(&self, name: &str, task: u32) -> Result<TaskStateInfo, ApiError> {
        let not_found = || ApiError::not_found(format!("No status found for task {name}-{task}"));
        let stored = self.load(name).await?.ok_or_else(not_found)?;
        if !stored.tasks.contains_key(&task) {
            return Err(not_found());
        }
        let states = self.task_states(name, stored.tasks.len(), plugin_version(&stored.config)).await?;
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
            return Err(ApiError::not_found(format!("Task {name}-{task} not found")));
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
        let mut infos = registry::validate_with(&config, &self.worker_converters);
        for info in infos.configs.iter_mut() {
            if let Some(value) = &info.value.value {
                let single = ConfigMap::from([(info.value.name.clone(), value.clone())]);
                info.value.value = secrets::redact(&single, &config).remove(&info.value.name);
            }
        }
        Ok(infos)
    }

    async fn plugin_config(&self, plugin: &str) -> Result<Vec<ConfigKeyInfo>, ApiError> {
        let unknown = || ApiError::not_found(format!("Unknown plugin {plugin}."));
        let def = if let Some(connector) = registry::connector(plugin) {
            // Kafka Connect answers the connector's own keys, then the common ones it does not redefine.
            let mut def = connector.config_def();
            let common = registry::common_config_def(connector.connector_type());
            def.keys.extend(common.keys.into_iter().filter(|k| def.key(k.name).is_none()).collect::<Vec<_>>());
            def
        } else if let Some(def) = sluice_connectors::transforms::plugin_config_def(plugin) {
            def
        } else if let Some(def) = registry::converter_class_name(plugin)
            .or_else(|| registry::header_converter_class_name(plugin))
            .and_then(sluice_connectors::converters_config_def)
        {
            // A converter's own definition (Kafka Connect 4.1.2 answers 500 there).
            def
        } else if registry::plugins(true).iter().any(|p| p.class == plugin.trim()) {
            sluice_connectors::ConfigDef::new()
        } else {
            return Err(unknown());
        };
        Ok(def.keys.iter().map(|k| k.info()).collect())
    }

    async fn connector_offsets(&self, name: &str) -> Result<ConnectorOffsets, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        let offsets = match Self::connector_kind(name, &stored.config)? {
            ConnectorType::Source => self.source_offsets(name).await?.into_iter().map(|(_, e)| e).collect(),
            ConnectorType::Sink => {
                let group = format!("connect-{name}");
                let positions =
                    self.sink_offsets()?.committed(&group, &Self::sink_topics(&stored.config)).await.map_err(|e| {
                        ApiError::internal(format!("Failed to read the offsets of sink connector {name}: {e}"))
                    })?;
                positions
                    .into_iter()
                    .map(|(topic, partition, offset)| ConnectorOffset {
                        partition: Map::from_iter([
                            ("kafka_topic".to_string(), Value::from(topic)),
                            ("kafka_partition".to_string(), Value::from(partition)),
                        ]),
                        offset: Some(Map::from_iter([("kafka_offset".to_string(), Value::from(offset))])),
                    })
                    .collect()
            }
        };
        Ok(ConnectorOffsets { offsets })
    }

    async fn alter_connector_offsets(&self, name: &str, offsets: ConnectorOffsets) -> Result<Message, ApiError> {
        if offsets.offsets.is_empty() {
            return Err(ApiError::bad_request("Partitions / offsets need to be provided for an alter offsets request"));
        }
        let stored = self.require_stopped(name).await?;
        match Self::connector_kind(name, &stored.config)? {
            ConnectorType::Source => self.alter_source_offsets(name, offsets.offsets).await?,
            ConnectorType::Sink => self.alter_sink_offsets(name, &stored.config, offsets.offsets).await?,
        }
        tracing::info!(connector = %name, "offsets altered");
        Ok(Message { message: "The offsets for this connector have been altered successfully".into() })
    }

    async fn reset_connector_offsets(&self, name: &str) -> Result<Message, ApiError> {
        let stored = self.require_stopped(name).await?;
        match Self::connector_kind(name, &stored.config)? {
            ConnectorType::Source => {
                let ops = vec![Op::delete_prefix(self.keys.offsets_prefix(name)), self.new_offsets_generation(name)];
                self.store.txn(Vec::new(), ops).await?;
            }
            ConnectorType::Sink => {
                self.sink_offsets()?.delete_group(&format!("connect-{name}")).await.map_err(|e| {
                    ApiError::internal(format!("Failed to reset the offsets of sink connector {name}: {e}"))
                })?;
            }
        }
        tracing::info!(connector = %name, "offsets reset");
        Ok(Message { message: "The offsets for this connector have been reset successfully".into() })
    }

    async fn connector_topics(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let stored = self.require(name, ApiError::connector_not_found).await?;
        let prefix = self.keys.topics_prefix(name);
        let (kvs, _) = self.store.list(&prefix).await?;
        let mut topics: BTreeSet<String> =
            kvs.iter().filter_map(|kv| kv.key.strip_prefix(&prefix).map(unescape)).collect();
        if connector_type_of(&stored.config) == Some(ConnectorType::Sink) {
            topics.extend(Self::sink_topics(&stored.config).topics);
        }
        Ok(topics.into_iter().collect())
    }

    async fn reset_connector_topics(&self, name: &str) -> Result<(), ApiError> {
        self.require(name, ApiError::connector_not_found).await?;
        self.store.txn(Vec::new(), vec![Op::delete_prefix(self.keys.topics_prefix(name))]).await?;
        Ok(())
    }

    async fn loggers(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError> {
        self.log_levels.all()
    }

    async fn logger(&self, name: &str) -> Result<LoggerLevel, ApiError> {
        self.log_levels.get(name)
    }

    async fn set_logger_level(&self, name: &str, level: &str, scope: LoggerScope) -> Result<Vec<String>, ApiError> {
        if scope == LoggerScope::Cluster {
            // Like Kafka Connect's config-topic record: every replica applies it from its mirror
            // (`logging::follow_cluster_levels`) and pushes it to its agents (`stream.rs`).
            let (name, level) = sluice_logging::validate(name, level)?;
            let record = crate::logging::ClusterLevelRecord { level: level.to_string() };
            self.store.txn(Vec::new(), vec![Op::put(self.keys.logger(name), to_json(&record))]).await?;
            tracing::info!(logger = %name, level, "cluster log level stored");
        }
        // This replica at once, so the next GET here shows it.
        self.log_levels.set(name, level)
    }
}

/// `{"kafka_topic": "t", "kafka_partition": 0}` of a sink offset.
fn sink_partition(partition: &Map<String, Value>) -> Result<(String, i32), ApiError> {
    let topic = partition.get("kafka_topic").and_then(Value::as_str).filter(|t| !t.trim().is_empty());
    let number = partition.get("kafka_partition").and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok());
    match (topic, number) {
        (Some(topic), Some(number)) if number >= 0 => Ok((topic.to_string(), number)),
        _ => Err(ApiError::bad_request(format!(
            "Invalid sink partition {}: a sink connector's partition must be {{\"kafka_topic\": <topic name>, \
             \"kafka_partition\": <non-negative integer>}}",
            Value::Object(partition.clone())
        ))),
    }
}

/// `{"kafka_offset": 42}` of a sink offset.
fn sink_offset(offset: &Map<String, Value>) -> Result<i64, ApiError> {
    match offset.get("kafka_offset").and_then(Value::as_i64) {
        Some(o) if o >= 0 => Ok(o),
        _ => Err(ApiError::bad_request(format!(
            "Invalid sink offset {}: a sink connector's offset must be {{\"kafka_offset\": <non-negative integer>}} \
             or null",
            Value::Object(offset.clone())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn service() -> (ConnectService, Arc<dyn KvStore>, Keys) {
        let store: Arc<dyn KvStore> = Arc::new(EmbeddedStore::in_memory());
        let keys = Keys::new("test");
        let service = ConnectService::new(store.clone(), keys.clone(), "cp")
            .with_log_levels(Arc::new(LogLevels::detached("info")));
        (service, store, keys)
    }

    fn source_config(extra: &[(&str, &str)]) -> ConfigMap {
        let mut config: ConfigMap = [("connector.class", "FileStreamSource"), ("file", "/tmp/in"), ("topic", "t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        config
    }

    fn offsets(position: u64) -> ConnectorOffsets {
        let partition = Map::from_iter([("filename".to_string(), Value::from("/tmp/in"))]);
        let offset = Map::from_iter([("position".to_string(), Value::from(position))]);
        ConnectorOffsets { offsets: vec![ConnectorOffset { partition, offset: Some(offset) }] }
    }

    fn sink_config(tasks: usize) -> ConfigMap {
        [("connector.class", "FileStreamSink"), ("file", "/tmp/out"), ("topics", "t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("tasks.max".to_string(), tasks.to_string())])
            .collect()
    }

    fn create(name: &str, config: ConfigMap) -> CreateConnector {
        CreateConnector { name: name.into(), config, initial_state: TargetState::Running }
    }

    /// The embedded store refuses transactions of more than 128 operations, as etcd does.
    #[tokio::test]
    async fn a_thousand_tasks_fit_in_a_fixed_number_of_store_operations() {
        let (service, _, _) = service();
        let info = service.create_connector(create("wide", sink_config(1000))).await.expect("1000 tasks");
        assert_eq!(info.tasks.len(), 1000);
        let tasks = service.connector_tasks("wide").await.expect("tasks");
        assert_eq!(tasks.len(), 1000);
        assert_eq!(tasks[999].config.get("file").map(String::as_str), Some("/tmp/out"));
        assert_eq!(service.connector_status("wide").await.expect("status").tasks.len(), 1000);
        // Shrinking drops 999 statuses, growing back writes 1000 configs again: still within the limit.
        let (created, info) = service.put_connector_config("wide", sink_config(1)).await.expect("shrink");
        assert!(!created);
        assert_eq!(info.tasks.len(), 1);
        service.put_connector_config("wide", sink_config(1000)).await.expect("grow");
        service.restart_connector("wide", true, false).await.expect("restart 1000 tasks");
        service.stop_connector("wide").await.expect("stop");
        assert!(service.connector_tasks("wide").await.expect("tasks").is_empty());
        service.resume_connector("wide").await.expect("resume");
        assert_eq!(service.connector_tasks("wide").await.expect("tasks").len(), 1000);
        service.delete_connector("wide").await.expect("delete");
    }

    #[tokio::test]
    async fn limits_answer_400_and_413_before_anything_is_written() {
        let (service, store, keys) = service();
        let error = service.create_connector(create("huge-tasks", sink_config(1_000_000))).await.expect_err("400");
        assert_eq!(error.kind, ApiErrorKind::BadRequest, "{}", error.message);
        assert!(error.message.contains("tasks.max"), "{}", error.message);
        service.create_connector(create("max-tasks", sink_config(MAX_TASKS))).await.expect("the maximum itself");

        let long_name = "n".repeat(1_000_000);
        let error = service.create_connector(create(&long_name, sink_config(1))).await.expect_err("400");
        assert_eq!(error.kind, ApiErrorKind::BadRequest, "{}", error.message);
        assert!(error.message.contains("too long"), "{}", error.message);
        let error = service.put_connector_config(&long_name, sink_config(1)).await.expect_err("400");
        assert_eq!(error.kind, ApiErrorKind::BadRequest);
        assert_eq!(service.connector_info(&long_name).await.expect_err("404").kind, ApiErrorKind::NotFound);

        let mut big = source_config(&[]);
        big.insert("padding".into(), "x".repeat(1_900_000));
        let error = service.create_connector(create("big", big.clone())).await.expect_err("413");
        assert_eq!(error.kind, ApiErrorKind::PayloadTooLarge, "{}", error.message);
        assert!(error.message.contains("`padding`"), "{}", error.message);
        let error = service.put_connector_config("big", big).await.expect_err("413");
        assert_eq!(error.kind, ApiErrorKind::PayloadTooLarge);
        let (kvs, _) = store.list(&keys.connector("big")).await.expect("list");
        assert!(kvs.is_empty(), "nothing written");
        let (kvs, _) = store.list(&keys.connector("huge-tasks")).await.expect("list");
        assert!(kvs.is_empty(), "nothing written");
    }

    #[tokio::test]
    async fn source_offsets_change_only_while_stopped_and_go_with_the_connector() {
        let (service, store, keys) = service();
        let create =
            CreateConnector { name: "s".into(), config: source_config(&[]), initial_state: TargetState::Running };
        service.create_connector(create).await.expect("create");
        // As an agent commits it: the partition JSON as the key.
        store
            .txn(vec![], vec![Op::put(keys.offset("s", r#"{"filename":"/tmp/in"}"#), br#"{"position":10}"#.to_vec())])
            .await
            .expect("commit");
        assert_eq!(service.connector_offsets("s").await.expect("get"), offsets(10));

        let error = service.alter_connector_offsets("s", offsets(3)).await.expect_err("running");
        assert_eq!(error.kind, ApiErrorKind::BadRequest);
        assert!(error.message.contains("'/connectors/s/stop'"), "{}", error.message);
        assert!(service.reset_connector_offsets("s").await.is_err());

        service.stop_connector("s").await.expect("stop");
        service.alter_connector_offsets("s", offsets(3)).await.expect("alter");
        assert_eq!(service.connector_offsets("s").await.expect("get"), offsets(3));
        let mut twice = offsets(4);
        twice.offsets.extend(offsets(6).offsets);
        service.alter_connector_offsets("s", twice).await.expect("a partition listed twice: the last entry wins");
        assert_eq!(service.connector_offsets("s").await.expect("get"), offsets(6));
        service.alter_connector_offsets("s", offsets(3)).await.expect("alter");
        let mut remove = offsets(0);
        remove.offsets[0].offset = None;
        service.alter_connector_offsets("s", remove).await.expect("remove");
        assert!(service.connector_offsets("s").await.expect("get").offsets.is_empty());
        service.alter_connector_offsets("s", offsets(5)).await.expect("alter");
        service.reset_connector_offsets("s").await.expect("reset");
        assert!(service.connector_offsets("s").await.expect("get").offsets.is_empty());

        service.alter_connector_offsets("s", offsets(5)).await.expect("alter");
        service.delete_connector("s").await.expect("delete");
        let (left, _) = store.list(&keys.offsets_prefix("s")).await.expect("list");
        assert!(left.is_empty(), "offsets outlived their connector");
        let error = service.connector_offsets("s").await.expect_err("gone");
        assert_eq!(error.message, "Connector s not found");
    }

    /// Issue 12 item 3: RESTARTING from the accepted restart until the agent reports on the new epoch; never the
    /// pre-restart state, never UNASSIGNED while the leader moves the task to its new epoch.
    #[tokio::test]
    async fn a_restarted_task_shows_restarting_until_it_reports_on_its_new_epoch() {
        let (service, store, keys) = service();
        let create =
            CreateConnector { name: "r".into(), config: source_config(&[]), initial_state: TargetState::Running };
        service.create_connector(create).await.expect("create");
        let assign = |epoch: u64| {
            let record = AssignmentRecord {
                tasks: vec![AssignedTask { connector: "r".into(), task: 0, epoch, config_revision: 1 }],
            };
            Op::put(keys.assignment("agent-1"), to_json(&record))
        };
        let report = |state: &str, epoch: u64| {
            let record = TaskStatusRecord {
                state: state.into(),
                worker_id: "host:9464".into(),
                trace: None,
                epoch,
                agent_id: "agent-1".into(),
            };
            Op::put(keys.task_status("r", 0), to_json(&record))
        };
        store.txn(vec![], vec![assign(5), report("RUNNING", 5)]).await.expect("running");
        let task_state = || async { service.task_status("r", 0).await.expect("status").state };
        assert_eq!(task_state().await, "RUNNING");
        assert_eq!(service.connector_status("r").await.expect("status").tasks[0].version.as_deref(), Some("4.1.2"));

        let answer = service.restart_connector("r", true, false).await.expect("restart").expect("202 body");
        assert_eq!(answer.tasks[0].state, "RESTARTING");
        assert_eq!(task_state().await, "RESTARTING", "at once after the 202");
        assert!(store.get(&keys.restart("r", 0)).await.expect("get").is_some(), "the leader is asked to restart it");
        // The leader moves it to a new epoch: still RESTARTING, not UNASSIGNED.
        store.txn(vec![], vec![assign(6), Op::delete(keys.restart("r", 0))]).await.expect("new epoch");
        assert_eq!(task_state().await, "RESTARTING");
        store.txn(vec![], vec![report("RUNNING", 6)]).await.expect("reported");
        assert_eq!(task_state().await, "RUNNING");

        // A single task's restart, too.
        service.restart_task("r", 0).await.expect("restart task");
        assert_eq!(task_state().await, "RESTARTING");
        // Without a restart, a stale report is history: the task is UNASSIGNED until it reports on its epoch.
        store.txn(vec![], vec![assign(8), report("RUNNING", 7)]).await.expect("moved");
        assert_eq!(task_state().await, "UNASSIGNED");
    }

    /// As Kafka Connect 4.1.2: created PAUSED, a connector has no tasks (also after a config change) until it is
    /// resumed; paused while running, it keeps them.
    #[tokio::test]
    async fn a_connector_created_paused_gets_its_tasks_when_resumed() {
        let (service, _, _) = service();
        let create =
            CreateConnector { name: "p".into(), config: source_config(&[]), initial_state: TargetState::Paused };
        assert!(service.create_connector(create).await.expect("create").tasks.is_empty());
        assert!(service.connector_status("p").await.expect("status").tasks.is_empty());
        let (_, info) = service.put_connector_config("p", source_config(&[("batch.size", "10")])).await.expect("put");
        assert!(info.tasks.is_empty(), "still no tasks while paused");
        service.resume_connector("p").await.expect("resume");
        assert_eq!(service.connector_tasks("p").await.expect("tasks").len(), 1);
        service.pause_connector("p").await.expect("pause");
        assert_eq!(service.connector_tasks("p").await.expect("tasks").len(), 1, "paused while running: kept");
    }

    #[tokio::test]
    async fn cluster_scope_levels_are_stored_for_every_process_worker_scope_is_not() {
        let (service, store, keys) = service();
        let changed = service.set_logger_level("sluice_agent", "debug", LoggerScope::Cluster).await.expect("cluster");
        assert_eq!(changed[0], "sluice_agent");
        assert!(changed.iter().all(|c| c.starts_with("sluice_agent")), "{changed:?}");
        let stored = store.get(&keys.logger("sluice_agent")).await.expect("get").expect("stored");
        assert_eq!(stored.value, br#"{"level":"DEBUG"}"#.to_vec());
        assert_eq!(service.logger("sluice_agent").await.expect("applied here too").level, "DEBUG");
        service.set_logger_level("sluice_control_plane", "warn", LoggerScope::Worker).await.expect("worker");
        assert!(store.get(&keys.logger("sluice_control_plane")).await.expect("get").is_none());
        let bad = service.set_logger_level("a,b", "debug", LoggerScope::Cluster).await.expect_err("bad name");
        assert_eq!(bad.kind, ApiErrorKind::BadRequest);
        let (kvs, _) = store.list(&keys.loggers()).await.expect("list");
        assert_eq!(kvs.len(), 1, "a refused level is not stored");
    }

    #[tokio::test]
    async fn sink_offsets_without_kafka_say_what_is_missing() {
        let (service, _, _) = service();
        let config: ConfigMap = [("connector.class", "FileStreamSink"), ("file", "/tmp/out"), ("topics", "t")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        service
            .create_connector(CreateConnector { name: "k".into(), config, initial_state: TargetState::Stopped })
            .await
            .expect("create");
        let error = service.connector_offsets("k").await.expect_err("no kafka");
        assert_eq!(error.kind, ApiErrorKind::Internal);
        assert!(error.message.contains("--kafka-bootstrap-servers"), "{}", error.message);
        assert_eq!(service.connector_topics("k").await.expect("topics"), vec!["t".to_string()]);
    }

    #[tokio::test]
    async fn secrets_are_hidden_and_an_echoed_placeholder_keeps_them() {
        let (service, store, keys) = service();
        let config = source_config(&[("connection.password", "hunter2")]);
        let info = service
            .create_connector(CreateConnector { name: "p".into(), config, initial_state: TargetState::Running })
            .await
            .expect("create");
        assert_eq!(info.config["connection.password"], secrets::HIDDEN);
        let shown = service.connector_config("p").await.expect("config");
        assert_eq!(shown["connection.password"], secrets::HIDDEN);
        let tasks = service.connector_tasks("p").await.expect("tasks");
        assert!(tasks.iter().all(|t| t.config.values().all(|v| v != "hunter2")));

        service.put_connector_config("p", shown).await.expect("put back");
        service
            .patch_connector_config(
                "p",
                BTreeMap::from([("connection.password".to_string(), Some(secrets::HIDDEN.to_string()))]),
            )
            .await
            .expect("patch");
        let stored = store.get(&keys.config("p")).await.expect("get").expect("stored");
        let stored: ConfigMap = serde_json::from_slice(&stored.value).expect("json");
        assert_eq!(stored["connection.password"], "hunter2");

        let infos = service
            .validate_config("FileStreamSource", source_config(&[("connection.password", "hunter2")]))
            .await
            .expect("validate");
        // FileStreamSource does not define the key, so validate does not list it (as Kafka Connect); nothing shows it.
        assert!(infos.configs.iter().all(|c| c.value.value.as_deref() != Some("hunter2")));
    }

    /// Issue 13, finding 3: Kafka client and converter passwords behind the override and converter prefixes are
    /// hidden in every answer that carries a config (info, config, tasks, validate, the list with expand=info).
    #[tokio::test]
    async fn prefixed_client_and_converter_passwords_are_hidden_in_every_answer() {
        let (service, _, _) = service();
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"pw1\";";
        let secrets_in = [
            ("producer.override.sasl.jaas.config", jaas),
            ("admin.override.ssl.key.password", "pw2"),
            ("value.converter.basic.auth.user.info", "user:pw3"),
            ("key.converter.basic.auth.user.info", "user:pw4"),
        ];
        let config = source_config(&secrets_in);
        let leaks = |text: String| ["pw1", "pw2", "pw3", "pw4"].into_iter().filter(|s| text.contains(s)).count();
        let info = service
            .create_connector(CreateConnector {
                name: "s".into(),
                config: config.clone(),
                initial_state: TargetState::Stopped,
            })
            .await
            .expect("create");
        assert_eq!(leaks(format!("{:?}", info.config)), 0, "{:?}", info.config);
        assert_eq!(leaks(format!("{:?}", service.connector_info("s").await.expect("info"))), 0);
        assert_eq!(leaks(format!("{:?}", service.connector_config("s").await.expect("config"))), 0);
        assert_eq!(leaks(format!("{:?}", service.connector_tasks("s").await.expect("tasks"))), 0);
        let validated = service.validate_config("FileStreamSource", config).await.expect("validate");
        assert_eq!(leaks(format!("{validated:?}")), 0, "{validated:?}");
        let shown = service.connector_config("s").await.expect("config");
        for (key, _) in secrets_in {
            assert_eq!(shown[key], secrets::HIDDEN, "{key}");
        }
    }

    #[tokio::test]
    async fn plugin_config_answers_connectors_transforms_and_404() {
        let (service, _, _) = service();
        let keys = service.plugin_config("FileStreamSink").await.expect("sink");
        assert!(keys.iter().any(|k| k.name == "topics") && keys.iter().any(|k| k.name == "file"));
        assert!(
            !service
                .plugin_config("org.apache.kafka.connect.transforms.InsertField$Value")
                .await
                .expect("smt")
                .is_empty()
        );
        assert!(service.plugin_config("JsonConverter").await.is_ok());
        let error = service.plugin_config("Nope").await.expect_err("unknown");
        assert_eq!((error.kind, error.message.as_str()), (ApiErrorKind::NotFound, "Unknown plugin Nope."));
    }
}
