//! The data model in the store: where every key lives under the cluster prefix (see DESIGN.md) and the JSON
//! records stored there, plus [`ClusterState`], the parsed view of a mirror snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_connectors::ConfigMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::TargetState;
use crate::store::KeyValue;
use crate::store::mirror::Snapshot;

/// Key layout of one cluster: everything lives under `/sluice/<cluster>/`.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
    cluster: String,
}

/// Escapes a name for use as one key segment: `%` and `/` are percent-encoded so names cannot collide.
pub fn escape(segment: &str) -> String {
    segment.replace('%', "%25").replace('/', "%2F")
}

pub fn unescape(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%25", "%")
}

impl Keys {
    pub fn new(cluster: &str) -> Self {
        Keys { root: format!("/sluice/{}/", escape(cluster)), cluster: cluster.to_string() }
    }
    pub fn root(&self) -> &str {
        &self.root
    }
    /// The cluster name (`--cluster`) these keys belong to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
    pub fn connectors(&self) -> String {
        format!("{}connectors/", self.root)
    }
    pub fn connector(&self, name: &str) -> String {
        format!("{}connectors/{}/", self.root, escape(name))
    }
    pub fn config(&self, name: &str) -> String {
        format!("{}config", self.connector(name))
    }
    pub fn target(&self, name: &str) -> String {
        format!("{}target", self.connector(name))
    }
    pub fn tasks(&self, name: &str) -> String {
        format!("{}tasks/", self.connector(name))
    }
    /// `connectors/<name>/offsets-generation`: a new value whenever the source offsets in the store were set from
    /// outside the tasks (create, REST alter or reset); exactly-once tasks then take the store's offsets over their
    /// offsets topic's. Deleted with the connector.
    pub fn offsets_generation(&self, name: &str) -> String {
        format!("{}offsets-generation", self.connector(name))
    }
    /// `connectors/<name>/shared/`: the state the connector's tasks share (`SharedStatePut`), one key per entry.
    /// Under the connector, so deleting it deletes them.
    pub fn shared_prefix(&self, name: &str) -> String {
        format!("{}shared/", self.connector(name))
    }
    pub fn shared(&self, name: &str, key: &str) -> String {
        format!("{}{}", self.shared_prefix(name), escape(key))
    }
    /// Legacy layout (one key per task), still read; written configs go to [`Keys::task_configs`].
    pub fn task(&self, name: &str, task: u32) -> String {
        format!("{}tasks/{}", self.connector(name), task)
    }
    /// `connectors/<name>/task-configs`: every task config of the connector in one key (see [`encode_task_configs`]),
    /// so writing a connector is a fixed number of etcd operations whatever its task count (etcd allows 128 per
    /// transaction).
    pub fn task_configs(&self, name: &str) -> String {
        format!("{}task-configs", self.connector(name))
    }
    pub fn agents(&self) -> String {
        format!("{}agents/", self.root)
    }
    pub fn agent(&self, id: &str) -> String {
        format!("{}agents/{}", self.root, escape(id))
    }
    pub fn assignments(&self) -> String {
        format!("{}assignments/", self.root)
    }
    pub fn assignment(&self, agent: &str) -> String {
        format!("{}assignments/{}", self.root, escape(agent))
    }
    pub fn statuses(&self) -> String {
        format!("{}status/", self.root)
    }
    pub fn status_prefix(&self, name: &str) -> String {
        format!("{}status/{}/", self.root, escape(name))
    }
    pub fn task_status(&self, name: &str, task: u32) -> String {
        format!("{}{}", self.status_prefix(name), task)
    }
    pub fn offsets(&self) -> String {
        format!("{}offsets/", self.root)
    }
    pub fn offsets_prefix(&self, name: &str) -> String {
        format!("{}offsets/{}/", self.root, escape(name))
    }
    pub fn offset(&self, name: &str, partition_key: &str) -> String {
        format!("{}{}", self.offsets_prefix(name), escape(partition_key))
    }
    pub fn topics(&self) -> String {
        format!("{}topics/", self.root)
    }
    /// `topics/<connector>/`: the topics a connector's tasks reported producing to (`GET /connectors/{n}/topics`).
    pub fn topics_prefix(&self, name: &str) -> String {
        format!("{}topics/{}/", self.root, escape(name))
    }
    pub fn topic(&self, name: &str, topic: &str) -> String {
        format!("{}{}", self.topics_prefix(name), escape(topic))
    }
    /// `handovers/<connector>/<task>`: a source task the scheduler took from a live agent, not given to another
    /// one until that agent reported the task's final offsets (see [`HandoverRecord`]).
    pub fn handover(&self, name: &str, task: u32) -> String {
        format!("{}handovers/{}/{}", self.root, escape(name), task)
    }
    pub fn restarts(&self) -> String {
        format!("{}restarts/", self.root)
    }
    pub fn restart_prefix(&self, name: &str) -> String {
        format!("{}restarts/{}/", self.root, escape(name))
    }
    pub fn restart(&self, name: &str, task: u32) -> String {
        format!("{}{}", self.restart_prefix(name), task)
    }
    /// `loggers/`: log levels set with `PUT /admin/loggers/{name}?scope=cluster`, applied by every replica and agent.
    pub fn loggers(&self) -> String {
        format!("{}loggers/", self.root)
    }
    pub fn logger(&self, name: &str) -> String {
        format!("{}{}", self.loggers(), escape(name))
    }
    pub fn leader(&self) -> String {
        format!("{}leader", self.root)
    }
}

/// The value of `connectors/<name>/task-configs`: a JSON array with one entry per task, `null` where the task config
/// equals the connector config (every task of a FileStreamSink, for example), else the task config itself. A
/// thousand identical tasks take five thousand bytes instead of a thousand copies of the config.
pub fn encode_task_configs(config: &ConfigMap, tasks: &[ConfigMap]) -> Vec<u8> {
    let entries: Vec<Option<&ConfigMap>> = tasks.iter().map(|t| if t == config { None } else { Some(t) }).collect();
    serde_json::to_vec(&entries).unwrap_or_default()
}

/// The entries of a `task-configs` value, as stored.
type TaskConfigEntries = Arc<Vec<Option<ConfigMap>>>;

/// Reads a `task-configs` value back (see [`encode_task_configs`]) without the connector config: `None` entries
/// are "same as the connector config".
pub fn decode_task_configs(value: &[u8]) -> Result<Vec<Option<ConfigMap>>, serde_json::Error> {
    serde_json::from_slice(value)
}

/// The task configs of a decoded `task-configs` value, given the connector config.
pub fn expand_task_configs(config: &ConfigMap, entries: &[Option<ConfigMap>]) -> Vec<ConfigMap> {
    entries.iter().map(|e| e.clone().unwrap_or_else(|| config.clone())).collect()
}

/// `agents/<id>`: a live agent, attached to its lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    pub agent_id: String,
    pub host: String,
    pub capacity: u32,
    pub worker_id: String,
    pub version: String,
    pub lease: i64,
    /// Replica holding the agent's stream.
    pub replica: String,
    /// The agent process (`Hello.instance_id`) the record belongs to; empty for agents that do not send one.
    #[serde(default)]
    pub instance: String,
    /// True while a replica holds the stream of `instance`; false once that stream closed without Goodbye (the
    /// lease lives on until it expires, so a quick reconnect keeps the tasks). A connected record makes the control
    /// plane refuse another instance of the same agent id.
    #[serde(default)]
    pub connected: bool,
}

/// One task placed on an agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct AssignedTask {
    pub connector: String,
    pub task: u32,
    /// Grows whenever the task is (re)started: moved, restarted, or its config changed.
    pub epoch: u64,
    /// Store revision of the task config this epoch runs with; a newer config needs a new epoch.
    pub config_revision: i64,
}

/// `assignments/<agent>`: every task an agent must run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AssignmentRecord {
    pub tasks: Vec<AssignedTask>,
}

/// `handovers/<connector>/<task>`: the task was taken from `agent_id`, where it ran with `epoch`, at `since_ms`
/// (milliseconds since the Unix epoch). Like Kafka Connect's incremental cooperative rebalancing, the task is
/// revoked first and assigned again only when the old owner released it (its final offsets are committed with the
/// deletion of this key), its agent is gone, or the handover timed out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HandoverRecord {
    pub agent_id: String,
    pub epoch: u64,
    pub since_ms: u64,
}

/// `status/<connector>/<task>`: the last state an agent reported for a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskStatusRecord {
    pub state: String,
    pub worker_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub epoch: u64,
    pub agent_id: String,
}

/// A connector as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorEntry {
    pub config: ConfigMap,
    pub config_revision: i64,
    pub target: TargetState,
    /// Task configs by task number, with the revision they were written at.
    pub tasks: BTreeMap<u32, (ConfigMap, i64)>,
}

/// The parsed control data of a cluster. Connectors, agents and assignments sit behind `Arc`s: a new state after a
/// change shares every entry that did not change, so cloning it is cheap and a reader can tell what changed by
/// pointer (see [`ClusterStateBuilder`]).
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub revision: i64,
    pub connectors: BTreeMap<String, Arc<ConnectorEntry>>,
    pub agents: BTreeMap<String, Arc<AgentRecord>>,
    /// Per agent: its assignment and the revision of the key.
    pub assignments: BTreeMap<String, (Arc<AssignmentRecord>, i64)>,
    pub restarts: BTreeSet<(String, u32)>,
    /// Source tasks being handed over from a live agent (see [`HandoverRecord`]).
    pub handovers: BTreeMap<(String, u32), HandoverRecord>,
    /// Per connector, the state its tasks share: key -> JSON (see [`Keys::shared`]). A connector without any
    /// shared key has no entry.
    pub shared: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    pub leader: Option<String>,
    /// Grows whenever a connector that was already there changes or goes away (not when one is added): a reader
    /// whose connectors all existed last time and whose assignment key did not change has nothing new while this
    /// stays the same. Only meaningful between states of one [`ClusterStateBuilder`].
    pub connectors_changed: u64,
}

impl ClusterState {
    /// Parses a mirror snapshot; keys it cannot parse are skipped with a warning (they never block the cluster).
    pub fn from_snapshot(keys: &Keys, snapshot: &Snapshot) -> Self {
        let mut builder = ClusterStateBuilder::default();
        for (key, kv) in &snapshot.kvs {
            builder.put(keys, key, kv);
        }
        builder.state(snapshot.revision).clone()
    }

    /// Where each task currently runs: (connector, task) → (agent, assigned task).
    pub fn placements(&self) -> BTreeMap<(String, u32), (String, AssignedTask)> {
        let mut out = BTreeMap::new();
        for (agent, (record, _)) in &self.assignments {
            for t in &record.tasks {
                out.insert((t.connector.clone(), t.task), (agent.clone(), t.clone()));
            }
        }
        out
    }
}

/// Keeps a [`ClusterState`] current key by key. A connector's config, target and task keys may arrive in any
/// order, so they are kept apart and a connector's entry is re-derived only when one of its keys changed.
#[derive(Debug, Default)]
pub struct ClusterStateBuilder {
    configs: BTreeMap<String, (ConfigMap, i64)>,
    targets: BTreeMap<String, TargetState>,
    tasks: BTreeMap<String, BTreeMap<u32, (ConfigMap, i64)>>,
    /// `task-configs` keys: the entries as stored (expanded with the config when the state is derived) and revision.
    task_lists: BTreeMap<String, (TaskConfigEntries, i64)>,
    /// Connectors with a key changed since the last [`ClusterStateBuilder::state`].
    touched: BTreeSet<String>,
    state: ClusterState,
}

impl ClusterStateBuilder {
    /// A key was written (or first seen). An unreadable value counts as absent, with a warning.
    pub fn put(&mut self, keys: &Keys, key: &str, kv: &KeyValue) {
        let Some(rest) = key.strip_prefix(keys.root()) else { return };
        let parts: Vec<&str> = rest.split('/').collect();
        let parsed: Result<(), String> = (|| {
            match parts.as_slice() {
                ["connectors", name, "config"] => {
                    let config: ConfigMap = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    let name = unescape(name);
                    self.configs.insert(name.clone(), (config, kv.mod_revision));
                    self.touched.insert(name);
                }
                ["connectors", name, "target"] => {
                    let target = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    let name = unescape(name);
                    self.targets.insert(name.clone(), target);
                    self.touched.insert(name);
                }
                ["connectors", name, "task-configs"] => {
                    let entries = decode_task_configs(&kv.value).map_err(|e| e.to_string())?;
                    let name = unescape(name);
                    self.task_lists.insert(name.clone(), (Arc::new(entries), kv.mod_revision));
                    self.touched.insert(name);
                }
                ["connectors", name, "tasks", n] => {
                    let n: u32 = n.parse().map_err(|_| "bad task number".to_string())?;
                    let config: ConfigMap = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    let name = unescape(name);
                    self.tasks.entry(name.clone()).or_default().insert(n, (config, kv.mod_revision));
                    self.touched.insert(name);
                }
                ["agents", id] => {
                    let agent: AgentRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    self.state.agents.insert(unescape(id), Arc::new(agent));
                }
                ["assignments", id] => {
                    let a: AssignmentRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    self.state.assignments.insert(unescape(id), (Arc::new(a), kv.mod_revision));
                }
                ["restarts", name, n] => {
                    let n: u32 = n.parse().map_err(|_| "bad task number".to_string())?;
                    self.state.restarts.insert((unescape(name), n));
                }
                ["handovers", name, n] => {
                    let n: u32 = n.parse().map_err(|_| "bad task number".to_string())?;
                    let record: HandoverRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                    self.state.handovers.insert((unescape(name), n), record);
                }
                ["connectors", name, "shared", key] => {
                    let value = String::from_utf8(kv.value.clone()).map_err(|e| e.to_string())?;
                    let values = self.state.shared.entry(unescape(name)).or_default();
                    Arc::make_mut(values).insert(unescape(key), value);
                }
                ["leader"] => self.state.leader = Some(String::from_utf8_lossy(&kv.value).into_owned()),
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            tracing::warn!(key = %key, error = %e, "skipping unreadable key");
            self.delete(keys, key);
        }
    }

    /// A key was deleted.
    pub fn delete(&mut self, keys: &Keys, key: &str) {
        let Some(rest) = key.strip_prefix(keys.root()) else { return };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["connectors", name, "config"] => {
                let name = unescape(name);
                self.configs.remove(&name);
                self.touched.insert(name);
            }
            ["connectors", name, "target"] => {
                let name = unescape(name);
                self.targets.remove(&name);
                self.touched.insert(name);
            }
            ["connectors", name, "task-configs"] => {
                let name = unescape(name);
                self.task_lists.remove(&name);
                self.touched.insert(name);
            }
            ["connectors", name, "tasks", n] => {
                let name = unescape(name);
                if let (Ok(n), Some(tasks)) = (n.parse::<u32>(), self.tasks.get_mut(&name)) {
                    tasks.remove(&n);
                    if tasks.is_empty() {
                        self.tasks.remove(&name);
                    }
                }
                self.touched.insert(name);
            }
            ["agents", id] => {
                self.state.agents.remove(&unescape(id));
            }
            ["assignments", id] => {
                self.state.assignments.remove(&unescape(id));
            }
            ["restarts", name, n] => {
                if let Ok(n) = n.parse::<u32>() {
                    self.state.restarts.remove(&(unescape(name), n));
                }
            }
            ["handovers", name, n] => {
                if let Ok(n) = n.parse::<u32>() {
                    self.state.handovers.remove(&(unescape(name), n));
                }
            }
            ["connectors", name, "shared", key] => {
                let name = unescape(name);
                if let Some(values) = self.state.shared.get_mut(&name) {
                    Arc::make_mut(values).remove(&unescape(key));
                    if values.is_empty() {
                        self.state.shared.remove(&name);
                    }
                }
            }
            ["leader"] => self.state.leader = None,
            _ => {}
        }
    }

    /// The state with every change applied so far, at `revision`.
    pub fn state(&mut self, revision: i64) -> &ClusterState {
        for name in std::mem::take(&mut self.touched) {
            match self.configs.get(&name) {
                Some((config, config_revision)) => {
                    let entry = ConnectorEntry {
                        config: config.clone(),
                        config_revision: *config_revision,
                        target: self.targets.get(&name).copied().unwrap_or(TargetState::Running),
                        tasks: match self.task_lists.get(&name) {
                            Some((entries, revision)) => expand_task_configs(config, entries)
                                .into_iter()
                                .enumerate()
                                .map(|(n, task)| (n as u32, (task, *revision)))
                                .collect(),
                            None => self.tasks.get(&name).cloned().unwrap_or_default(),
                        },
                    };
                    if self.state.connectors.insert(name, Arc::new(entry)).is_some() {
                        self.state.connectors_changed += 1;
                    }
                }
                None => {
                    if self.state.connectors.remove(&name).is_some() {
                        self.state.connectors_changed += 1;
                    }
                }
            }
        }
        self.state.revision = revision;
        &self.state
    }
}

/// Follows the mirror and keeps one parsed [`ClusterState`] for the whole replica (the scheduler and every agent
/// stream read it), re-parsing only the keys that changed between two snapshots.
pub fn spawn_view(
    keys: Keys,
    mut mirror: watch::Receiver<Arc<Snapshot>>,
    shutdown: CancellationToken,
) -> watch::Receiver<Arc<ClusterState>> {
    let (tx, rx) = watch::channel(Arc::new(ClusterState::default()));
    tokio::spawn(async move {
        let mut builder = ClusterStateBuilder::default();
        let mut previous = Arc::new(Snapshot::default());
        loop {
            let snapshot = mirror.borrow_and_update().clone();
            if !Arc::ptr_eq(&snapshot, &previous) {
                apply_diff(&keys, &mut builder, &previous, &snapshot);
                tx.send_replace(Arc::new(builder.state(snapshot.revision).clone()));
                previous = snapshot;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = mirror.changed() => if changed.is_err() { return },
            }
        }
    });
    rx
}

/// Feeds `builder` every key that differs between two snapshots (both sorted by key: one merge pass).
fn apply_diff(keys: &Keys, builder: &mut ClusterStateBuilder, old: &Snapshot, new: &Snapshot) {
    let mut a = old.kvs.iter().peekable();
    let mut b = new.kvs.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some((ka, _)), None) => {
                builder.delete(keys, ka);
                a.next();
            }
            (None, Some((kb, vb))) => {
                builder.put(keys, kb, vb);
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    builder.delete(keys, ka);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    builder.put(keys, kb, vb);
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(va, vb) && (va.mod_revision != vb.mod_revision || va.value != vb.value) {
                        builder.put(keys, kb, vb);
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, revision: i64) -> Arc<KeyValue> {
        Arc::new(KeyValue {
            key: key.to_string(),
            value: value.as_bytes().to_vec(),
            mod_revision: revision,
            create_revision: revision,
            lease: 0,
        })
    }

    #[test]
    fn builder_rederives_only_touched_connectors() {
        let keys = Keys::new("c");
        let mut b = ClusterStateBuilder::default();
        // A task key may come before its connector's config: the connector appears with the config.
        b.put(&keys, &keys.task("a", 0), &kv(&keys.task("a", 0), r#"{"k":"v"}"#, 2));
        assert!(b.state(2).connectors.is_empty());
        b.put(&keys, &keys.config("a"), &kv(&keys.config("a"), r#"{"connector.class":"X"}"#, 3));
        b.put(&keys, &keys.target("a"), &kv(&keys.target("a"), r#""PAUSED""#, 3));
        let before = b.state(3).clone();
        assert_eq!(before.connectors["a"].tasks.len(), 1);
        assert_eq!(before.connectors["a"].target, TargetState::Paused);
        b.put(&keys, &keys.config("b"), &kv(&keys.config("b"), r#"{"connector.class":"Y"}"#, 4));
        let after = b.state(4).clone();
        assert!(Arc::ptr_eq(&before.connectors["a"], &after.connectors["a"]), "untouched entry was rebuilt");
        assert_eq!(after.connectors_changed, before.connectors_changed, "adding a connector changes no other");
        b.put(&keys, &keys.config("a"), &kv(&keys.config("a"), "not json", 5));
        assert!(!b.state(5).connectors.contains_key("a"), "an unreadable config counts as absent");
        assert!(b.state(5).connectors_changed > after.connectors_changed);
        b.delete(&keys, &keys.config("b"));
        assert!(b.state(6).connectors.is_empty());
    }

    #[test]
    fn task_configs_in_one_key_expand_with_the_connector_config() {
        let keys = Keys::new("c");
        let config: ConfigMap = [("connector.class".to_string(), "X".to_string())].into();
        let own: ConfigMap = [("file".to_string(), "/tmp/a".to_string())].into();
        let tasks: Vec<ConfigMap> = vec![config.clone(); 999].into_iter().chain([own.clone()]).collect();
        let value = encode_task_configs(&config, &tasks);
        assert!(value.len() < 6_000, "identical tasks are not copied: {} bytes", value.len());
        let mut b = ClusterStateBuilder::default();
        let key = keys.task_configs("a");
        b.put(&keys, &key, &kv(&key, std::str::from_utf8(&value).expect("json"), 7));
        b.put(&keys, &keys.config("a"), &kv(&keys.config("a"), r#"{"connector.class":"X"}"#, 7));
        let state = b.state(7).clone();
        let entry = &state.connectors["a"];
        assert_eq!(entry.tasks.len(), 1000);
        assert_eq!(entry.tasks[&0], (config.clone(), 7));
        assert_eq!(entry.tasks[&999], (own, 7));
        b.delete(&keys, &key);
        assert!(b.state(8).connectors["a"].tasks.is_empty(), "stopping removes the key, and the tasks with it");
    }

    #[test]
    fn diffs_give_the_same_state_as_a_full_parse() {
        let keys = Keys::new("c");
        let snapshot = |revision: i64, kvs: Vec<Arc<KeyValue>>| Snapshot {
            revision,
            kvs: kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
        };
        let agent =
            r#"{"agent_id":"a1","host":"h","capacity":0,"worker_id":"a1","version":"v","lease":7,"replica":"r"}"#;
        let assignment = r#"{"tasks":[{"connector":"x","task":0,"epoch":3,"config_revision":2}]}"#;
        let first = snapshot(
            3,
            vec![
                kv(&keys.config("x"), r#"{"connector.class":"X"}"#, 2),
                kv(&keys.task("x", 0), "{}", 2),
                kv(&keys.config("y"), r#"{"connector.class":"Y"}"#, 2),
                kv(&keys.agent("a1"), agent, 1),
                kv(&keys.assignment("a1"), assignment, 3),
            ],
        );
        let second = snapshot(
            5,
            vec![
                kv(&keys.config("x"), r#"{"connector.class":"X","k":"v"}"#, 4),
                kv(&keys.task("x", 0), "{}", 2),
                kv(&keys.task("x", 1), "{}", 4),
                kv(&keys.assignment("a1"), assignment, 3),
                kv(&keys.restart("x", 0), "{}", 5),
            ],
        );
        let mut b = ClusterStateBuilder::default();
        apply_diff(&keys, &mut b, &Snapshot::default(), &first);
        apply_diff(&keys, &mut b, &first, &second);
        let incremental = b.state(second.revision).clone();
        let full = ClusterState::from_snapshot(&keys, &second);
        assert_eq!(incremental.connectors, full.connectors);
        assert_eq!(incremental.agents, full.agents);
        assert_eq!(incremental.assignments, full.assignments);
        assert_eq!(incremental.restarts, full.restarts);
        assert_eq!(incremental.connectors.keys().collect::<Vec<_>>(), vec!["x"]);
        assert!(incremental.agents.is_empty());
    }

    #[test]
    fn names_with_slashes_do_not_collide() {
        let keys = Keys::new("c");
        assert_ne!(keys.connector("a/b"), format!("{}b/", keys.connector("a")).replace("//", "/"));
        assert_eq!(unescape(&escape("a/%2F")), "a/%2F");
        assert!(!keys.config("a/config").starts_with(&keys.connector("a")));
    }
}
