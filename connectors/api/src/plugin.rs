//! What a connector crate exports so the plugin registry can link it in: one [`ConnectorPlugin`] per connector
//! class, with Kafka Connect's aliases, its type, its version and a factory. The registry (`sluice-connectors`)
//! holds the one explicit list of these lists; a connector crate never depends on the registry.

use std::sync::Arc;

use crate::connector::{Connector, ConnectorType};

/// The Kafka Connect release whose REST API and plugins Sluice implements. `GET /` reports it as `version` (clients
/// switch features on by it), and Kafka Connect's own plugins that Sluice reimplements (file connectors, converters,
/// transforms) report it as their version, as they do in Kafka Connect.
pub const KAFKA_CONNECT_VERSION: &str = "4.1.2";

/// The version the reimplemented Kafka Connect plugins report: [`KAFKA_CONNECT_VERSION`] (so
/// `connector.plugin.version=4.1.2` configs keep working).
pub const PLUGIN_VERSION: &str = KAFKA_CONNECT_VERSION;

/// A connector plugin: its canonical class, the aliases Kafka Connect accepts for it (the simple name and the simple
/// name without the `Connector` suffix), its type, the version it reports and its constructor.
#[derive(Clone, Copy)]
pub struct ConnectorPlugin {
    pub class: &'static str,
    pub aliases: &'static [&'static str],
    pub connector_type: ConnectorType,
    /// What `GET /connector-plugins` shows and `connector.plugin.version` matches.
    pub version: &'static str,
    pub build: fn() -> Arc<dyn Connector>,
}

impl ConnectorPlugin {
    /// Whether `name` (trimmed) is this plugin's class or one of its aliases.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim();
        self.class == name || self.aliases.contains(&name)
    }
}

impl std::fmt::Debug for ConnectorPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorPlugin")
            .field("class", &self.class)
            .field("aliases", &self.aliases)
            .field("connector_type", &self.connector_type)
            .field("version", &self.version)
            .finish()
    }
}
