//! The JDBC sink: drop-in for Confluent's `io.confluent.connect.jdbc.JdbcSinkConnector` (10.x keys) and Debezium's
//! `io.debezium.connector.jdbc.JdbcSinkConnector` (3.6 keys, native change-event envelopes), on PostgreSQL and
//! MySQL/MariaDB.
//!
//! Each `put` is one database transaction: DDL first (`auto.create`/`auto.evolve`, autocommitted), then the rows
//! grouped in runs of consecutive records with the same table, operation and columns (PostgreSQL: COPY into the
//! table for inserts, COPY into a temporary staging table then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`,
//! `UPDATE ... FROM` or `DELETE ... USING` for the other modes; MySQL: multi-row `INSERT ... ON DUPLICATE KEY
//! UPDATE`), then the Kafka offsets in `__sluice_sink_offsets` (when enabled) and COMMIT. A rejected row rolls
//! the whole transaction back and returns [`ConnectError::Data`], so the runtime re-puts record by record and the
//! bad ones go to the DLQ; a lost connection is retriable and the batch is redone.

mod config;
mod types;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use sluice_connect_api::config::{ConfigDef, ConfigMap};
use sluice_connect_api::connector::{Connector, ConnectorType, SinkTask, SinkTaskContext, TopicPartition};
use sluice_connect_api::error::ConnectError;
use sluice_connect_api::plugin::ConnectorPlugin;
use sluice_connect_api::record::SinkRecord;

pub use config::{InsertMode, PkMode, SinkSettings};
pub use types::Flavor;

use crate::connection::{ConnectionParams, Pool};

pub const CONFLUENT_CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";
pub const DEBEZIUM_CLASS: &str = "io.debezium.connector.jdbc.JdbcSinkConnector";
/// The Confluent JDBC connector release whose keys and behaviour this sink follows.
pub const CONFLUENT_VERSION: &str = "10.9.7";
/// The Debezium JDBC sink release whose keys and behaviour this sink follows.
pub const DEBEZIUM_VERSION: &str = "3.6.0.Final";

/// The sink plugins (both class names).
pub const SINK_PLUGINS: [ConnectorPlugin; 2] = [
    ConnectorPlugin {
        class: CONFLUENT_CLASS,
        aliases: &["JdbcSinkConnector", "JdbcSink"],
        connector_type: ConnectorType::Sink,
        version: CONFLUENT_VERSION,
        build: || Arc::new(JdbcSinkConnector { flavor: Flavor::Confluent }),
    },
    ConnectorPlugin {
        class: DEBEZIUM_CLASS,
        // The simple names are Confluent's too; Kafka Connect resolves an ambiguous alias to neither, so the
        // Debezium class is reached by its full name.
        aliases: &[],
        connector_type: ConnectorType::Sink,
        version: DEBEZIUM_VERSION,
        build: || Arc::new(JdbcSinkConnector { flavor: Flavor::Debezium }),
    },
];

/// The JDBC sink connector (either flavour).
pub struct JdbcSinkConnector {
    pub flavor: Flavor,
}

impl Connector for JdbcSinkConnector {
    fn class_name(&self) -> &'static str {
        match self.flavor {
            Flavor::Confluent => CONFLUENT_CLASS,
            Flavor::Debezium => DEBEZIUM_CLASS,
        }
    }

    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn version(&self) -> &'static str {
        match self.flavor {
            Flavor::Confluent => CONFLUENT_VERSION,
            Flavor::Debezium => DEBEZIUM_VERSION,
        }
    }

    fn config_def(&self) -> ConfigDef {
        config::config_def(self.flavor)
    }

    fn validate_extra(&self, config: &ConfigMap) -> Vec<(String, String)> {
        match SinkSettings::from_config(config, self.flavor) {
            Ok(_) => Vec::new(),
            Err(ConnectError::Config { key, message }) => vec![(key, message)],
            Err(other) => vec![("connection.url".to_string(), other.to_string())],
        }
    }

    fn task_configs(&self, config: &ConfigMap, max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        SinkSettings::from_config(config, self.flavor)?;
        let mut task = config.clone();
        let class = match self.flavor {
            Flavor::Confluent => "io.confluent.connect.jdbc.sink.JdbcSinkTask",
            Flavor::Debezium => "io.debezium.connector.jdbc.JdbcSinkConnectorTask",
        };
        task.insert("task.class".to_string(), class.to_string());
        Ok(vec![task; max_tasks.max(1)])
    }

    fn create_sink_task(&self) -> Option<Box<dyn SinkTask>> {
        Some(Box::new(JdbcSinkTask { flavor: self.flavor, state: None }))
    }
}

/// The sink task.
pub struct JdbcSinkTask {
    flavor: Flavor,
    state: Option<write::Writer>,
}

#[async_trait]
impl SinkTask for JdbcSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let settings = SinkSettings::from_config(&context.config, self.flavor)?;
        if let Some(e) = &settings.zone_error {
            return Err(ConnectError::Other(e.clone()));
        }
        let params = ConnectionParams::from_config(&context.config)?;
        let pool = Pool::connect(&params)?;
        tracing::info!(connector = %context.connector, task = context.task, dialect = params.dialect.name(),
            host = %params.host, port = params.port, database = %params.database, "JDBC sink task starting");
        self.state = Some(write::Writer::new(settings, pool, context.connector));
        Ok(())
    }

    async fn put(&mut self, records: &[SinkRecord]) -> Result<(), ConnectError> {
        let writer = self.state.as_mut().ok_or_else(|| ConnectError::Other("task not started".into()))?;
        if records.is_empty() {
            return Ok(());
        }
        match writer.put(records).await {
            Ok(()) => {
                writer.retries = 0;
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                writer.retries += 1;
                // The metadata read before the failure may be stale (a restarted or replaced database).
                writer.tables.clear();
                writer.offsets_table_ready = false;
                writer.stored.clear();
                if writer.retries > writer.settings.max_retries {
                    tracing::error!(error = %e.trace(), retries = writer.retries, "giving up after max.retries");
                    return Err(ConnectError::Other(format!(
                        "exceeded max.retries ({}) writing to the database: {}",
                        writer.settings.max_retries,
                        e.trace()
                    )));
                }
                Err(e)
            }
            Err(e) => {
                writer.tables.clear();
                Err(e)
            }
        }
    }

    async fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        // Every put is its own transaction; the last one's COMMIT may still be in flight (PostgreSQL).
        match self.state.as_mut() {
            Some(writer) => writer.settle().await,
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(mut writer) = self.state.take() {
            // Not needed for the guarantees (the offsets of an unconfirmed put are not committed), but it saves
            // writing the batch again after a restart.
            if let Err(e) = writer.settle().await {
                tracing::warn!(error = %e.trace(), "the last batch's COMMIT failed while stopping");
            }
            writer.pool.close().await;
        }
        Ok(())
    }
}
