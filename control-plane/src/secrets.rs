//! Secrets never leave the control plane in clear: values of PASSWORD-type keys are shown as `[hidden]` in every
//! answer that carries a config, as Kafka Connect does. PASSWORD-type keys are the plugin's and the common config
//! definitions' own, the Kafka clients' (`sasl.jaas.config`, `ssl.key.password`, ...) and the converters' (`basic.auth.user.info`,
//! ...) behind every prefix that passes them on (`producer.override.`, `consumer.override.`, `admin.override.`,
//! `key.converter.`, `value.converter.`, `header.converter.`, ...), plus any key whose name says password, secret
//! or private key. A config-provider reference such as `${file:/etc/sluice/db.properties:password}` is
//! not a secret (the agent resolves it) and is shown as it is.

use sluice_connectors::config::ConfigType;
use sluice_connectors::{ConfigMap, registry};

/// What a hidden value is replaced with (Kafka Connect's own placeholder for passwords in validate answers).
pub const HIDDEN: &str = "[hidden]";

/// PASSWORD-type configs of the Kafka clients (Java names, as in Kafka's `CommonClientConfigs`, `SslConfigs` and
/// `SaslConfigs`, and librdkafka's), of the Confluent converters' schema registry clients, and of Kafka Connect's
/// worker, in lower case.
const PASSWORD_KEYS: &[&str] = &[
    // Kafka clients (Java)
    "sasl.jaas.config",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.client.callback.handler.class.password",
    // librdkafka
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
    "ssl_key",
    "ssl.keystore.location.password",
    // schema registry clients of the Confluent converters
    "basic.auth.user.info",
    "schema.registry.basic.auth.user.info",
    "bearer.auth.token",
    "bearer.auth.client.secret",
    "schema.registry.ssl.key.password",
    "schema.registry.ssl.keystore.password",
    "schema.registry.ssl.truststore.password",
    // Kafka Connect worker and connectors
    "connection.password",
    "aws.secret.access.key",
];

/// Prefixes under which a connector config passes keys on to a Kafka client or a converter.
const PASS_ON_PREFIXES: &[&str] = &[
    "producer.override.",
    "consumer.override.",
    "admin.override.",
    "producer.",
    "consumer.",
    "admin.",
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "errors.deadletterqueue.producer.",
];

/// Whether a key name is a Kafka client or converter PASSWORD key, with or without the prefixes that pass it on.
pub fn is_password_key_name(key: &str) -> bool {
    let lower = key.trim().to_ascii_lowercase();
    if lower.contains("password")
        || lower.contains("secret")
        || lower.contains("passphrase")
        || lower.contains("private.key")
        || lower.ends_with("jaas.config")
        || lower.ends_with("user.info")
    {
        return true;
    }
    let mut name = lower.as_str();
    // Prefixes may stack (`value.converter.` inside nothing, `producer.override.` only once): strip until none.
    while let Some(rest) = PASS_ON_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        name = rest;
    }
    PASSWORD_KEYS.contains(&name)
}

/// Whether `key` of a connector config holds a secret.
fn is_secret(config: &ConfigMap, key: &str) -> bool {
    if is_password_key_name(key) {
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

    /// Issue 13, finding 3: Kafka client and converter PASSWORD keys behind every prefix that passes them on.
    #[test]
    fn hides_client_and_converter_passwords_behind_every_prefix() {
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p\";";
        let secret_keys = [
            "producer.override.sasl.jaas.config",
            "consumer.override.sasl.jaas.config",
            "admin.override.sasl.jaas.config",
            "producer.override.ssl.key.password",
            "consumer.override.ssl.keystore.password",
            "admin.override.ssl.truststore.password",
            "consumer.override.ssl.keystore.key",
            "producer.override.sasl.password",
            "producer.override.ssl.key.pem",
            "value.converter.basic.auth.user.info",
            "key.converter.basic.auth.user.info",
            "header.converter.basic.auth.user.info",
            "value.converter.schema.registry.basic.auth.user.info",
            "value.converter.bearer.auth.token",
            "key.converter.schema.registry.ssl.keystore.password",
            "errors.deadletterqueue.producer.sasl.jaas.config",
            "sasl.jaas.config",
            "Producer.Override.SASL.JAAS.Config",
        ];
        let mut entries: Vec<(&str, &str)> = vec![("connector.class", "FileStreamSource"), ("file", "/tmp/in")];
        entries.extend(secret_keys.iter().map(|k| (*k, jaas)));
        entries.extend([
            ("producer.override.linger.ms", "5"),
            ("value.converter.schemas.enable", "false"),
            ("consumer.override.ssl.truststore.location", "/etc/ssl/ts.jks"),
            ("value.converter.basic.auth.credentials.source", "USER_INFO"),
        ]);
        let c = config(&entries);
        let shown = redact(&c, &c);
        for key in secret_keys {
            assert_eq!(shown[key], HIDDEN, "{key}");
        }
        assert_eq!(shown["producer.override.linger.ms"], "5");
        assert_eq!(shown["value.converter.schemas.enable"], "false");
        assert_eq!(shown["consumer.override.ssl.truststore.location"], "/etc/ssl/ts.jks");
        assert_eq!(shown["value.converter.basic.auth.credentials.source"], "USER_INFO");
        assert_eq!(shown["file"], "/tmp/in");
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
