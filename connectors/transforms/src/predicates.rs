//! The built-in predicates: TopicNameMatches, HasHeaderKey and RecordIsTombstone.

use regex::Regex;

use crate::config::{ConfigDef, ConfigType, Importance, Validator};
use crate::error::ConnectError;
use crate::record::Value;

use super::plugin_config::{PluginConfig, key};
use super::routing::whole_match_regex;
use super::{ConnectRecord, Predicate};

const PATTERN: &str = "pattern";
const NAME: &str = "name";

pub fn topic_name_matches_config_def() -> ConfigDef {
    ConfigDef::new().define(
        key(
            PATTERN,
            ConfigType::String,
            None,
            Importance::Medium,
            "A Java regular expression for matching against the name of a record's topic.",
        )
        .with_validator(Validator::NonEmptyString),
    )
}

pub fn build_topic_name_matches(c: &PluginConfig) -> Result<Box<dyn Predicate>, ConnectError> {
    let pattern = c.string(PATTERN).unwrap_or_default();
    let regex = whole_match_regex(&pattern).map_err(|e| {
        c.invalid(PATTERN, &pattern, &format!("entry must be a Java-compatible regular expression: {e}"))
    })?;
    Ok(Box::new(TopicNameMatches { regex }))
}

/// True for records whose whole topic name matches the pattern.
struct TopicNameMatches {
    regex: Regex,
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.regex.is_match(&record.topic)
    }
}

pub fn has_header_key_config_def() -> ConfigDef {
    ConfigDef::new().define(
        key(NAME, ConfigType::String, None, Importance::Medium, "The header name.")
            .with_validator(Validator::NonEmptyString),
    )
}

pub fn build_has_header_key(c: &PluginConfig) -> Result<Box<dyn Predicate>, ConnectError> {
    Ok(Box::new(HasHeaderKey { name: c.string(NAME).unwrap_or_default() }))
}

/// True for records with at least one header of the name.
struct HasHeaderKey {
    name: String,
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.headers.iter().any(|(name, _)| *name == self.name)
    }
}

pub fn build_record_is_tombstone(_: &PluginConfig) -> Result<Box<dyn Predicate>, ConnectError> {
    Ok(Box::new(RecordIsTombstone))
}

/// True for records with a null value.
struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        matches!(record.value, Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{ConfigMap, new_predicate};
    use super::*;

    fn predicate(class: &str, pairs: &[(&str, &str)]) -> Box<dyn Predicate> {
        new_predicate(class, &map(pairs)).expect("builds")
    }

    fn error(class: &str, pairs: &[(&str, &str)]) -> String {
        match new_predicate(class, &map(pairs)) {
            Ok(_) => panic!("should not build"),
            Err(ConnectError::Config { message, .. }) => message,
            Err(other) => other.to_string(),
        }
    }

    #[test]
    fn topic_name_matches() {
        let p = predicate("TopicNameMatches", &[("pattern", "orders-.*")]);
        let mut record = ConnectRecord::new("orders-eu");
        assert!(p.test(&record));
        record.topic = "my-orders-eu".into();
        assert!(!p.test(&record), "the whole topic must match");
        assert_eq!(
            error("TopicNameMatches", &[("pattern", "")]),
            "Invalid value  for configuration pattern: String must be non-empty"
        );
        assert!(error("TopicNameMatches", &[("pattern", "(")]).starts_with(
            "Invalid value ( for configuration pattern: entry must be a Java-compatible regular expression: "
        ));
        assert!(new_predicate("Nope", &ConfigMap::new()).is_err());
    }

    #[test]
    fn has_header_key() {
        let p = predicate("org.apache.kafka.connect.transforms.predicates.HasHeaderKey", &[("name", "trace")]);
        let mut record = ConnectRecord::new("t");
        assert!(!p.test(&record));
        record.headers.push(("trace".into(), None));
        assert!(p.test(&record));
        assert_eq!(error("HasHeaderKey", &[]), "Missing required configuration \"name\" which has no default value.");
    }

    #[test]
    fn record_is_tombstone() {
        let p = predicate("RecordIsTombstone", &[]);
        let mut record = ConnectRecord::new("t");
        assert!(p.test(&record));
        record.value = s("v");
        assert!(!p.test(&record));
    }
}
