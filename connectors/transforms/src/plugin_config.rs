//! The configuration of one transform or predicate: its own keys with the `transforms.<alias>.` /
//! `predicates.<alias>.` prefix stripped, read through its `ConfigDef` (types, defaults, required keys) like Kafka
//! Connect's `SimpleConfig`. Errors name the full, prefixed key so the user knows what to fix.

use crate::config::{ConfigDef, ConfigMap, ConfigType, DefaultValue, invalid_value, parse_list, parse_value};
use crate::error::ConnectError;

pub struct PluginConfig {
    prefix: String,
    values: ConfigMap,
    def: ConfigDef,
}

impl PluginConfig {
    /// `values` holds the plugin's keys without `prefix`.
    pub fn new(prefix: impl Into<String>, values: ConfigMap, def: ConfigDef) -> Self {
        PluginConfig { prefix: prefix.into(), values, def }
    }

    /// The full key (`transforms.mask.fields`) of one of the plugin's keys.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Every type, validator and missing-key problem of the defined keys, as (full key, Kafka Connect's message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for key in &self.def.keys {
            let full = self.key(key.name);
            match (self.values.get(key.name), &key.default) {
                (Some(raw), _) => match parse_value(&full, key.config_type, raw) {
                    Ok(normalized) => {
                        if let Some(validator) = &key.validator
                            && let Err(message) = validator.check(&normalized)
                        {
                            problems.push((full.clone(), invalid_value(&full, &normalized, &message)));
                        }
                    }
                    Err(message) => problems.push((full.clone(), message)),
                },
                (None, DefaultValue::Required) => problems.push((
                    full.clone(),
                    format!("Missing required configuration \"{full}\" which has no default value."),
                )),
                (None, _) => {}
            }
        }
        problems
    }

    /// The first problem, as a configuration error.
    pub fn check(&self) -> Result<(), ConnectError> {
        match self.problems().into_iter().next() {
            Some((key, message)) => Err(ConnectError::config(key, message)),
            None => Ok(()),
        }
    }

    /// The trimmed value, or the default; `None` for a null default.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(raw) => Some(raw.trim().to_string()),
            None => self.def.key(name).and_then(|k| k.default.as_option()).map(str::to_string),
        }
    }

    /// The raw value exactly as given (Kafka Connect trims STRING values; a few keys are better read untrimmed).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.string(name).map(|v| parse_list(&v).into_iter().map(str::to_string).collect()).unwrap_or_default()
    }

    pub fn boolean(&self, name: &str) -> bool {
        self.string(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn int(&self, name: &str) -> Option<i32> {
        self.string(name).and_then(|v| v.parse().ok())
    }

    /// A configuration error on one of the plugin's keys.
    pub fn error(&self, name: &str, message: impl Into<String>) -> ConnectError {
        ConnectError::config(self.key(name), message)
    }

    /// Kafka Connect's `ConfigException(name, value, message)` on one of the plugin's keys.
    pub fn invalid(&self, name: &str, value: &str, message: &str) -> ConnectError {
        let key = self.key(name);
        let text = invalid_value(&key, value, message);
        ConnectError::Config { key, message: text }
    }

    /// `NonEmptyListValidator`: a LIST key that must have at least one item.
    pub fn non_empty_list(&self, name: &str) -> Result<Vec<String>, ConnectError> {
        let list = self.list(name);
        if list.is_empty() {
            return Err(self.invalid(name, "[]", "Empty list"));
        }
        Ok(list)
    }
}

/// The keys of `config` under `prefix`, with the prefix stripped, leaving out `skip` (the runtime's own keys:
/// `type`, `predicate`, `negate`).
pub fn sub_config(config: &ConfigMap, prefix: &str, skip: &[&str]) -> ConfigMap {
    config
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (&k[prefix.len()..], v))
        .filter(|(k, _)| !skip.contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Shorthand for defining a key in a transform's `ConfigDef`.
pub fn key(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    importance: crate::config::Importance,
    documentation: &'static str,
) -> crate::config::ConfigKey {
    let default = match default {
        Some(value) => DefaultValue::Value(value.to_string()),
        None => DefaultValue::Required,
    };
    crate::config::ConfigKey::new(name, config_type, default, importance, documentation)
}

/// A key whose default is null.
pub fn optional_key(
    name: &'static str,
    config_type: ConfigType,
    importance: crate::config::Importance,
    documentation: &'static str,
) -> crate::config::ConfigKey {
    crate::config::ConfigKey::new(name, config_type, DefaultValue::Null, importance, documentation)
}

pub const REPLACE_NULL_WITH_DEFAULT: &str = "replace.null.with.default";
pub const REPLACE_NULL_WITH_DEFAULT_DOC: &str = "Whether to replace fields that have a default value and that are null to the default value. When set to true, the default value is used, otherwise null is used.";

/// The `replace.null.with.default` key most field transforms have.
pub fn replace_null_with_default_key() -> crate::config::ConfigKey {
    key(
        REPLACE_NULL_WITH_DEFAULT,
        ConfigType::Boolean,
        Some("true"),
        crate::config::Importance::Medium,
        REPLACE_NULL_WITH_DEFAULT_DOC,
    )
}
