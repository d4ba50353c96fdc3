//! The data model in the store: where every key lives under the cluster prefix (see DESIGN.md) and the JSON
//! records stored there, plus [`ClusterState`], the parsed view of a mirror snapshot.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sluice_connectors::ConfigMap;

use crate::api::TargetState;
use crate::store::mirror::Snapshot;

/// Key layout of one cluster: everything lives under `/sluice/<cluster>/`.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
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
        Keys { root: format!("/sluice/{}/", escape(cluster)) }
    }
    pub fn root(&self) -> &str {
        &self.root
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
    pub fn task(&self, name: &str, task: u32) -> String {
        format!("{}tasks/{}", self.connector(name), task)
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
    pub fn restarts(&self) -> String {
        format!("{}restarts/", self.root)
    }
    pub fn restart_prefix(&self, name: &str) -> String {
        format!("{}restarts/{}/", self.root, escape(name))
    }
    pub fn restart(&self, name: &str, task: u32) -> String {
        format!("{}{}", self.restart_prefix(name), task)
    }
    pub fn leader(&self) -> String {
        format!("{}leader", self.root)
    }
}

/// `agents/<id>`: a live agent, attached to its lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    pub agent_id: String,
    pub host: String,
    pub capacity: u32,
    pub worker_id: String,
    pub version: String,
    pub lease: i64,
    /// Replica holding the agent's stream.
    pub replica: String,
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

/// The parsed control data of a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub revision: i64,
    pub connectors: BTreeMap<String, ConnectorEntry>,
    pub agents: BTreeMap<String, AgentRecord>,
    /// Per agent: its assignment and the revision of the key.
    pub assignments: BTreeMap<String, (AssignmentRecord, i64)>,
    pub restarts: BTreeSet<(String, u32)>,
    pub leader: Option<String>,
}

impl ClusterState {
    /// Parses a mirror snapshot; keys it cannot parse are skipped with a warning (they never block the cluster).
    pub fn from_snapshot(keys: &Keys, snapshot: &Snapshot) -> Self {
        let mut state = ClusterState { revision: snapshot.revision, ..Default::default() };
        let root = keys.root();
        let mut targets: BTreeMap<String, TargetState> = BTreeMap::new();
        let mut tasks: BTreeMap<String, BTreeMap<u32, (ConfigMap, i64)>> = BTreeMap::new();
        for (key, kv) in &snapshot.kvs {
            let Some(rest) = key.strip_prefix(root) else { continue };
            let parts: Vec<&str> = rest.split('/').collect();
            let parsed: Result<(), String> = (|| {
                match parts.as_slice() {
                    ["connectors", name, "config"] => {
                        let config: ConfigMap = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                        state.connectors.insert(
                            unescape(name),
                            ConnectorEntry {
                                config,
                                config_revision: kv.mod_revision,
                                target: TargetState::Running,
                                tasks: BTreeMap::new(),
                            },
                        );
                    }
                    ["connectors", name, "target"] => {
                        let target = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                        targets.insert(unescape(name), target);
                    }
                    ["connectors", name, "tasks", n] => {
                        let n: u32 = n.parse().map_err(|_| "bad task number".to_string())?;
                        let config: ConfigMap = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                        tasks.entry(unescape(name)).or_default().insert(n, (config, kv.mod_revision));
                    }
                    ["agents", id] => {
                        let agent: AgentRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                        state.agents.insert(unescape(id), agent);
                    }
                    ["assignments", id] => {
                        let a: AssignmentRecord = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
                        state.assignments.insert(unescape(id), (a, kv.mod_revision));
                    }
                    ["restarts", name, n] => {
                        let n: u32 = n.parse().map_err(|_| "bad task number".to_string())?;
                        state.restarts.insert((unescape(name), n));
                    }
                    ["leader"] => state.leader = Some(String::from_utf8_lossy(&kv.value).into_owned()),
                    _ => {}
                }
                Ok(())
            })();
            if let Err(e) = parsed {
                tracing::warn!(key = %key, error = %e, "skipping unreadable key");
            }
        }
        for (name, entry) in state.connectors.iter_mut() {
            if let Some(t) = targets.remove(name) {
                entry.target = t;
            }
            if let Some(t) = tasks.remove(name) {
                entry.tasks = t;
            }
        }
        state
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_do_not_collide() {
        let keys = Keys::new("c");
        assert_ne!(keys.connector("a/b"), format!("{}b/", keys.connector("a")).replace("//", "/"));
        assert_eq!(unescape(&escape("a/%2F")), "a/%2F");
        assert!(!keys.config("a/config").starts_with(&keys.connector("a")));
    }
}
