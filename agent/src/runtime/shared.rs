//! The agent's side of connectors' shared state (see `sluice_connect_api::shared`): the values the control plane
//! pushed for each connector this agent runs tasks of, handed to tasks as [`SharedState`] handles whose writes go up
//! the session stream as task events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sluice_connectors::shared::{SharedState, SharedStateWriter, SharedValues};
use tokio::sync::{mpsc, watch};

use super::{TaskEvent, TaskEventKind, TaskKey};

type Values = watch::Sender<Option<Arc<SharedValues>>>;

/// The latest values per connector, as pushed by the control plane (`SharedState` messages).
#[derive(Clone, Default)]
pub(crate) struct SharedStates {
    connectors: Arc<Mutex<HashMap<String, Values>>>,
}

impl SharedStates {
    fn sender(&self, connector: &str) -> Values {
        let mut connectors = self.connectors.lock().unwrap_or_else(PoisonError::into_inner);
        connectors.entry(connector.to_string()).or_insert_with(|| watch::channel(None).0).clone()
    }

    /// The control plane sent every value of a connector; a value that is not JSON is left out (with a warning).
    pub fn update(&self, connector: &str, values: impl IntoIterator<Item = (String, String)>) {
        let values: SharedValues = values
            .into_iter()
            .filter_map(|(key, json)| match serde_json::from_str(&json) {
                Ok(value) => Some((key, value)),
                Err(err) => {
                    tracing::warn!(connector, key, error = %err, "ignoring a shared-state value that is not JSON");
                    None
                }
            })
            .collect();
        self.sender(connector).send_if_modified(|current| {
            if current.as_deref() == Some(&values) {
                return false;
            }
            *current = Some(Arc::new(values));
            true
        });
    }

    /// Forgets connectors this agent runs no task of any more (their handles see no further changes).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.connectors.lock().unwrap_or_else(PoisonError::into_inner).retain(|name, _| keep(name));
    }

    /// A handle for one incarnation of a task: it reads the connector's values, its writes carry the task's epoch.
    pub fn handle(&self, id: &TaskKey, epoch: u64, events: mpsc::UnboundedSender<TaskEvent>) -> SharedState {
        let values = self.sender(&id.connector).subscribe();
        SharedState::new(values, Arc::new(TaskWriter { id: id.clone(), epoch, events }))
    }
}

struct TaskWriter {
    id: TaskKey,
    epoch: u64,
    events: mpsc::UnboundedSender<TaskEvent>,
}

impl SharedStateWriter for TaskWriter {
    fn put(&self, key: &str, value: serde_json::Value) {
        let value_json = if value.is_null() { String::new() } else { value.to_string() };
        let kind = TaskEventKind::SharedPut { key: key.to_string(), value_json };
        let _ = self.events.send(TaskEvent { id: self.id.clone(), epoch: self.epoch, kind });
    }
}
