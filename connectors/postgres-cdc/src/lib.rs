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

/// Debezium's PostgreSQL connector: one task (as Debezium's).
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
        match config::PgSettings::from_config(config) {
            Ok(_) => Vec::new(),
            Err(ConnectError::Config { key, message }) => vec![(key, message)],
            Err(e) => vec![("topic.prefix".to_string(), e.to_string())],
        }
    }
    fn task_configs(&self, config: &ConfigMap, _max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        config::PgSettings::from_config(config)?;
        let mut task = config.clone();
        task.insert("task.class".into(), "io.debezium.connector.postgresql.PostgresConnectorTask".into());
        Ok(vec![task])
    }
    fn create_source_task(&self) -> Option<Box<dyn SourceTask>> {
        Some(Box::new(task::PostgresCdcTask::default()))
    }
}
