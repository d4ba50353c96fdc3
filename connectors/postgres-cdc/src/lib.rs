//! Change data capture from PostgreSQL, event for event Debezium's `io.debezium.connector.postgresql.PostgresConnector`
//! (3.6.1.Final, the version it reports and was compared with): logical replication with the built-in `pgoutput`
//! plugin over a replication connection of our own ([`repl`]), a consistent initial snapshot read in the snapshot
//! the slot exports at creation (no gap, no duplicate at the hand-over), Debezium's envelope, `source` block,
//! topics, offsets, heartbeats and transaction metadata (from `sluice-debezium`). The slot's confirmed position
//! only advances to what Kafka acknowledged (`SourceTask::commit`).

use std::sync::Arc;

use sluice_connect_api::config::{ConfigDef, ConfigMap};
use sluice_connect_api::connector::{Connector, ConnectorType, SourceTask};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::ConnectorPlugin;

pub mod config;
pub mod defaults;
pub mod message;
pub mod pgoutput;
pub mod repl;
pub mod snapshot;
pub mod split;
pub mod task;
pub mod types;

pub const CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[ConnectorPlugin {
    class: CLASS,
    aliases: &["PostgresConnector", "Postgres"],
    connector_type: ConnectorType::Source,
    version: task::VERSION,
    build: || Arc::new(PostgresConnector),
}];

/// Debezium's PostgreSQL connector. Debezium runs one task; Sluice runs `tasks.max` tasks when the connector may
/// take a snapshot, the extra ones only to read parts of the initial snapshot (see [`split`]). Task 0 does
/// everything Debezium's task does.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresConnector;

impl Connector for PostgresConnector {
    fn class_name(&self) -> &'static str {
        CLASS
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn version(&self) -> &'static str {
        task::VERSION
    }
    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }
    fn validate_extra(&self, config: &ConfigMap) -> Vec<(String, String)> {
        let mut problems = match config::PgSettings::from_config(config) {
            Ok(_) => Vec::new(),
            Err(ConnectError::Config { key, message }) => vec![(key, message)],
            Err(e) => vec![("topic.prefix".to_string(), e.to_string())],
        };
        if config.contains_key(split::TASKS_KEY) {
            problems.push((
                split::TASKS_KEY.to_string(),
                "is set by the connector for its tasks; set tasks.max to split the initial snapshot across tasks"
                    .to_string(),
            ));
        }
        problems
    }
    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        let settings = config::PgSettings::from_config(config)?;
        let mut task = config.clone();
        task.insert("task.class".into(), "io.debezium.connector.postgresql.PostgresConnectorTask".into());
        task.remove(split::TASKS_KEY);
        // Extra tasks only ever read snapshot shares: none for a connector that never snapshots.
        let tasks = if settings.snapshot_mode == config::SnapshotMode::NoData { 1 } else { max_tasks.max(1) };
        if tasks > 1 {
            task.insert(split::TASKS_KEY.into(), tasks.to_string());
        }
        Ok(vec![task; tasks])
    }
    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(task::PostgresCdcTask::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        let mut c: ConfigMap =
            [("topic.prefix", "p"), ("database.hostname", "h"), ("database.user", "u"), ("database.dbname", "d")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        c.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c
    }

    #[test]
    fn extra_tasks_only_for_snapshots() {
        let one = PostgresConnector.task_configs(&config(&[]), 1).unwrap();
        assert_eq!(one.len(), 1);
        assert!(!one[0].contains_key(split::TASKS_KEY));
        let three = PostgresConnector.task_configs(&config(&[]), 3).unwrap();
        assert_eq!(three.len(), 3);
        assert!(three.iter().all(|t| t.get(split::TASKS_KEY).map(String::as_str) == Some("3")));
        assert_eq!(PostgresConnector.task_configs(&config(&[("snapshot.mode", "no_data")]), 3).unwrap().len(), 1);
        // The tasks' own key is the connector's to set.
        let sneaky = config(&[(split::TASKS_KEY, "4")]);
        assert!(!PostgresConnector.task_configs(&sneaky, 1).unwrap()[0].contains_key(split::TASKS_KEY));
        assert_eq!(PostgresConnector.validate_extra(&sneaky)[0].0, split::TASKS_KEY);
        assert!(PostgresConnector.validate_extra(&config(&[])).is_empty());
    }
}
