//! Secrets never leave the control plane in clear: values of PASSWORD-type keys (from the plugin's and the common
//! config definitions) and of keys whose name says password or secret are shown as `[hidden]` in every answer
//! that carries a config. A config-provider reference such as `${file:/etc/sluice/db.properties:password}` is
//! not a secret (the agent resolves it) and is shown as it is.

use sluice_connectors::config::ConfigType;
use sluice_connectors::{ConfigMap, registry};

/// What a hidden value is replaced with (Kafka Connect's own placeholder for passwords in validate answers).
pub const HIDDEN: &str = "[hidden]";

/// Whether `key` of a connector config holds a secret.
fn is_secret(config: &ConfigMap, key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("secret") {
        return true;
    }
    let Some(plugin) = config.get("connector.class").and_then(|c| registry::connector(c)) else { return false };
    let common = registry::common_config_def(plugin.connector_type());
    let own = plugin.config_def();
    common.key(key).or_else(|| own.key(key)).is_some_and(|k| k.config_type == ConfigType::Password)
}

/// A whole-value config-provider reference (`${provider:path:key}`), which is safe to show.
fn is_provider_reference(value: &str) -> bool {
    let value = value.trim();
    value.starts_with("${") && value.ends_with('}') && value[2..value.len() - 1].chars().all(|c| c != '{' && c != '}')
}

/// `config` with every secret value replaced by [`HIDDEN`]. Task configs are redacted with the connector's config
/// (they are derived from it and carry the same keys).
pub fn redact(config: &ConfigMap, connector_config: &ConfigMap) -> ConfigMap {
    config
        .iter()
        .map(|(k, v)| {
            let hide = !v.is_empty() && !is_provider_reference(v) && is_secret(connector_config, k);
            (k.clone(), if hide { HIDDEN.to_string() } else { v.clone() })
        })
        .collect()
}

/// A client that read a config (secrets hidden) and writes it back must not replace its secrets with the text
/// `[hidden]`: such values keep the stored value.
pub fn keep_hidden(new: &mut ConfigMap, stored: &ConfigMap) {
    for (key, value) in new.iter_mut() {
        if value == HIDDEN
            && let Some(old) = stored.get(key)
        {
            value.clone_from(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str)]) -> ConfigMap {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn hides_secret_names_but_not_provider_references() {
        let c = config(&[
            ("connector.class", "FileStreamSource"),
            ("connection.password", "hunter2"),
            ("aws.secret.access.key", "s3cr3t"),
            ("db.password", "${file:/etc/db.properties:password}"),
            ("file", "/tmp/in"),
            ("empty.password", ""),
        ]);
        let shown = redact(&c, &c);
        assert_eq!(shown["connection.password"], HIDDEN);
        assert_eq!(shown["aws.secret.access.key"], HIDDEN);
        assert_eq!(shown["db.password"], "${file:/etc/db.properties:password}");
        assert_eq!(shown["file"], "/tmp/in");
        assert_eq!(shown["empty.password"], "");
    }

    #[test]
    fn an_echoed_placeholder_keeps_the_stored_secret() {
        let stored = config(&[("connection.password", "hunter2")]);
        let mut new = config(&[("connection.password", HIDDEN), ("other", HIDDEN)]);
        keep_hidden(&mut new, &stored);
        assert_eq!(new["connection.password"], "hunter2");
        assert_eq!(new["other"], HIDDEN);
    }
}
