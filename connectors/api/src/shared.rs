//! State shared by the tasks of one connector, whichever agents (hosts) they run on: a small map of JSON values per
//! connector that every task can read, watch and write. In distributed mode the control plane keeps it in etcd under
//! the connector (deleted with it, so a new connector of the same name starts empty) and pushes every change down
//! the agents' session streams; a write goes up the stream and is taken only from the task's current incarnation
//! (its assignment epoch), so a zombie cannot write. Standalone mode runs the same protocol on its embedded store;
//! [`SharedState::in_memory`] serves tests and single-process use.
//!
//! Meant for coordination (a plan, a "done" flag), not data: keep values small. A write is asynchronous: it is
//! visible once [`SharedState::watch`] shows it (the runtime re-sends it after a reconnect until then).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::ConnectError;

/// The values of one connector by key.
pub type SharedValues = BTreeMap<String, serde_json::Value>;

/// Where a task's writes go (the agent sends them to the control plane).
pub trait SharedStateWriter: Send + Sync {
    /// Sets `key` to `value`; `Value::Null` removes the key.
    fn put(&self, key: &str, value: serde_json::Value);
}

/// A task's handle on its connector's shared state. Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    /// `None` until the values were received once (distributed mode: before the task starts, in practice).
    values: watch::Receiver<Option<Arc<SharedValues>>>,
    writer: Arc<dyn SharedStateWriter>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").field("values", &*self.values.borrow()).finish()
    }
}

impl Default for SharedState {
    /// A state of its own, in memory (shared with nobody but its clones).
    fn default() -> Self {
        SharedState::in_memory()
    }
}

struct InMemory(watch::Sender<Option<Arc<SharedValues>>>);

impl SharedStateWriter for InMemory {
    fn put(&self, key: &str, value: serde_json::Value) {
        self.0.send_modify(|values| {
            let mut next = values.as_deref().cloned().unwrap_or_default();
            if value.is_null() {
                next.remove(key);
            } else {
                next.insert(key.to_string(), value);
            }
            *values = Some(Arc::new(next));
        });
    }
}

impl SharedState {
    pub fn new(values: watch::Receiver<Option<Arc<SharedValues>>>, writer: Arc<dyn SharedStateWriter>) -> Self {
        SharedState { values, writer }
    }

    /// A state kept in this process: every clone (e.g. the contexts of several tasks started in one test) sees
    /// every write at once.
    pub fn in_memory() -> Self {
        let (tx, rx) = watch::channel(Some(Arc::new(SharedValues::new())));
        SharedState { values: rx, writer: Arc::new(InMemory(tx)) }
    }

    /// Sets `key` to `value` (`Value::Null` removes it). Asynchronous: see the module doc.
    pub fn put(&self, key: &str, value: serde_json::Value) {
        self.writer.put(key, value);
    }

    /// The values as last received, `None` if nothing was received yet.
    pub fn current(&self) -> Option<Arc<SharedValues>> {
        self.values.borrow().clone()
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.values.borrow().as_ref().and_then(|v| v.get(key).cloned())
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<SharedValues>>> {
        self.values.clone()
    }

    /// Waits until `check` returns `Some` for the current values (checked at once, then on every change).
    pub async fn wait_for<T>(&self, mut check: impl FnMut(&SharedValues) -> Option<T>) -> Result<T, ConnectError> {
        let mut rx = self.values.clone();
        loop {
            if let Some(values) = rx.borrow_and_update().as_deref()
                && let Some(out) = check(values)
            {
                return Ok(out);
            }
            rx.changed().await.map_err(|_| ConnectError::Other("the connector's shared state was closed".into()))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_see_each_others_writes() {
        let a = SharedState::in_memory();
        let b = a.clone();
        assert_eq!(b.get("k"), None);
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.wait_for(|v| v.get("k").and_then(|k| k.as_u64())).await }
        });
        a.put("k", serde_json::json!(7));
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
        a.put("k", serde_json::Value::Null);
        assert_eq!(b.get("k"), None);
        assert_eq!(b.current().map(|v| v.len()), Some(0));
    }
}
