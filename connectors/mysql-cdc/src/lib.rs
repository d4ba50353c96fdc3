//! TODO(connector): see the crate description.

use sluice_connect_api::plugin::ConnectorPlugin;

/// The plugins of this crate, for the registry.
pub const PLUGINS: &[ConnectorPlugin] = &[];
