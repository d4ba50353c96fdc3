//! JDBC sink and source connectors for PostgreSQL and MySQL/MariaDB, drop-in for Confluent's
//! `io.confluent.connect.jdbc.JdbcSinkConnector` / `JdbcSourceConnector` and Debezium's
//! `io.debezium.connector.jdbc.JdbcSinkConnector`: same class names, keys, defaults, SQL and offsets.

pub mod connection;
pub mod sink;
pub mod source;
pub mod zone;

use sluice_connect_api::plugin::ConnectorPlugin;

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[sink::SINK_PLUGINS[0], sink::SINK_PLUGINS[1], source::SOURCE_PLUGIN];
