//! Topic creation for source connectors (KIP-158): `topic.creation.groups` and `topic.creation.<group>.*` decide
//! with which partitions, replication factor and topic configs a topic is created before the first record is
//! written to it. Parsing and matching are pure; the agent does the creating.

use regex::Regex;

use crate::config::{ConfigMap, invalid_value, parse_list};

/// Every topic creation key starts with this.
pub const TOPIC_CREATION_PREFIX: &str = "topic.creation.";
pub const TOPIC_CREATION_GROUPS: &str = "topic.creation.groups";
/// The group every topic falls into when no other group claims it; it must name partitions and replication factor.
pub const DEFAULT_GROUP: &str = "default";
const INCLUDE: &str = "include";
const EXCLUDE: &str = "exclude";
const REPLICATION_FACTOR: &str = "replication.factor";
const PARTITIONS: &str = "partitions";
/// `-1`: let the broker choose (its `default.replication.factor` / `num.partitions`).
pub const BROKER_DEFAULT: i32 = -1;

/// How a topic of one group is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopicSpec {
    pub group: String,
    /// `-1` for the broker's default.
    pub partitions: i32,
    /// `-1` for the broker's default.
    pub replication_factor: i32,
    /// Topic-level configs (`cleanup.policy`, `retention.ms`, ...), in key order.
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct TopicCreationGroup {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    spec: NewTopicSpec,
}

/// The topic creation groups of a source connector, in the order they are tried (`default` last).
#[derive(Debug, Clone)]
pub struct TopicCreationGroups {
    groups: Vec<TopicCreationGroup>,
}

/// Whether a connector configuration asks for topic creation at all: as in Kafka Connect, any `topic.creation.*`
/// key does (and the worker's `topic.creation.enable` must allow it).
pub fn uses_topic_creation(config: &ConfigMap) -> bool {
    config.keys().any(|k| k.starts_with(TOPIC_CREATION_PREFIX))
}

impl TopicCreationGroups {
    /// Parses the groups of a configuration that [uses topic creation](uses_topic_creation). Errors are
    /// `(key, message)` pairs with Kafka Connect's wording, every problem at once.
    pub fn from_config(config: &ConfigMap) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let key = |group: &str, name: &str| format!("{TOPIC_CREATION_PREFIX}{group}.{name}");
        let int = |errors: &mut Vec<(String, String)>, k: String, required: Option<i32>, what: &str| -> i32 {
            match config.get(&k).map(|v| v.trim()) {
                None | Some("") => match required {
                    Some(default) => default,
                    None => {
                        errors.push((
                            k.clone(),
                            format!("Missing required configuration \"{k}\" which has no default value."),
                        ));
                        BROKER_DEFAULT
                    }
                },
                Some(raw) => match raw.parse::<i32>() {
                    Ok(v) if v == BROKER_DEFAULT || v >= 1 => v,
                    Ok(_) => {
                        let message = if what == PARTITIONS {
                            "Number of partitions must be positive, or -1 to use the broker's default"
                        } else {
                            "Replication factor must be positive and not larger than the number of brokers in the Kafka cluster, or -1 to use the broker's default"
                        };
                        errors.push((k.clone(), invalid_value(&k, raw, message)));
                        BROKER_DEFAULT
                    }
                    Err(_) => {
                        let type_name = if what == PARTITIONS { "INT" } else { "SHORT" };
                        errors.push((k.clone(), invalid_value(&k, raw, &format!("Not a number of type {type_name}"))));
                        BROKER_DEFAULT
                    }
                },
            }
        };
        let default_partitions = int(&mut errors, key(DEFAULT_GROUP, PARTITIONS), None, PARTITIONS);
        let default_replication = int(&mut errors, key(DEFAULT_GROUP, REPLICATION_FACTOR), None, REPLICATION_FACTOR);

        let names: Vec<&str> = config.get(TOPIC_CREATION_GROUPS).map(|v| parse_list(v)).unwrap_or_default();
        let mut groups = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for name in names {
            // Kafka Connect drops duplicates and ignores `default` in the list: it is always the last group.
            if name.is_empty() || name == DEFAULT_GROUP || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let include = regex_list(config, &key(name, INCLUDE), &mut errors);
            let exclude = regex_list(config, &key(name, EXCLUDE), &mut errors);
            let partitions = int(&mut errors, key(name, PARTITIONS), Some(default_partitions), PARTITIONS);
            let replication_factor =
                int(&mut errors, key(name, REPLICATION_FACTOR), Some(default_replication), REPLICATION_FACTOR);
            groups.push(TopicCreationGroup {
                include,
                exclude,
                spec: NewTopicSpec {
                    group: name.to_string(),
                    partitions,
                    replication_factor,
                    configs: topic_configs(config, name),
                },
            });
        }
        // The default group's own include/exclude are ignored: it takes every topic no other group took.
        let everything = Regex::new("^(?:.*)$").expect("a valid regex");
        groups.push(TopicCreationGroup {
            include: vec![everything],
            exclude: Vec::new(),
            spec: NewTopicSpec {
                group: DEFAULT_GROUP.to_string(),
                partitions: default_partitions,
                replication_factor: default_replication,
                configs: topic_configs(config, DEFAULT_GROUP),
            },
        });
        if errors.is_empty() { Ok(TopicCreationGroups { groups }) } else { Err(errors) }
    }

    /// How `topic` is created: the first group whose `include` matches it and whose `exclude` does not.
    pub fn spec_for(&self, topic: &str) -> &NewTopicSpec {
        let group = self
            .groups
            .iter()
            .find(|g| g.include.iter().any(|r| r.is_match(topic)) && !g.exclude.iter().any(|r| r.is_match(topic)));
        // The default group matches everything, so `find` always succeeds; the fallback only keeps this total.
        &group.unwrap_or_else(|| self.groups.last().expect("the default group is always there")).spec
    }
}

/// Validation for `registry::validate`: the problems of a source configuration's topic creation keys, if it uses
/// topic creation.
pub fn validate(config: &ConfigMap) -> Vec<(String, String)> {
    if !uses_topic_creation(config) {
        return Vec::new();
    }
    TopicCreationGroups::from_config(config).err().unwrap_or_default()
}

/// A list of Java regular expressions that must match a whole topic name (`Pattern.matches`).
fn regex_list(config: &ConfigMap, key: &str, errors: &mut Vec<(String, String)>) -> Vec<Regex> {
    let Some(raw) = config.get(key) else { return Vec::new() };
    let mut out = Vec::new();
    for pattern in parse_list(raw) {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => out.push(regex),
            Err(err) => errors.push((
                key.to_string(),
                invalid_value(key, raw.trim(), &format!("Syntax error in regular expression: {err}")),
            )),
        }
    }
    out
}

/// `topic.creation.<group>.<topic config>`: every key of the group that is not one of the group's own settings.
fn topic_configs(config: &ConfigMap, group: &str) -> Vec<(String, String)> {
    let prefix = format!("{TOPIC_CREATION_PREFIX}{group}.");
    config
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|name| (name, v)))
        .filter(|(name, _)| ![INCLUDE, EXCLUDE, REPLICATION_FACTOR, PARTITIONS].contains(name))
        .map(|(name, v)| (name.to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn first_matching_group_wins_and_default_takes_the_rest() {
        let config = map(&[
            ("topic.creation.groups", "audit, compacted, audit"),
            ("topic.creation.default.replication.factor", "1"),
            ("topic.creation.default.partitions", "3"),
            ("topic.creation.default.include", "nothing"),
            ("topic.creation.default.retention.ms", "1000"),
            ("topic.creation.audit.include", "audit-.*, secure"),
            ("topic.creation.audit.exclude", "audit-tmp.*"),
            ("topic.creation.audit.cleanup.policy", "compact"),
            ("topic.creation.audit.partitions", "1"),
            ("topic.creation.compacted.include", ".*-state"),
            ("topic.creation.compacted.replication.factor", "-1"),
        ]);
        let groups = TopicCreationGroups::from_config(&config).expect("valid");
        let audit = groups.spec_for("audit-log");
        assert_eq!(audit.group, "audit");
        assert_eq!((audit.partitions, audit.replication_factor), (1, 1), "replication falls back to default's");
        assert_eq!(audit.configs, vec![("cleanup.policy".to_string(), "compact".to_string())]);
        assert_eq!(groups.spec_for("secure").group, "audit");
        assert_eq!(groups.spec_for("xaudit-log").group, "default", "regexes match whole names");
        assert_eq!(groups.spec_for("audit-tmp-1").group, "default", "excluded");
        let state = groups.spec_for("orders-state");
        assert_eq!((state.group.as_str(), state.partitions, state.replication_factor), ("compacted", 3, -1));
        let other = groups.spec_for("orders");
        assert_eq!(other.group, "default");
        assert_eq!(other.configs, vec![("retention.ms".to_string(), "1000".to_string())]);
    }

    #[test]
    fn default_group_needs_partitions_and_replication_factor() {
        let config = map(&[("topic.creation.default.replication.factor", "1")]);
        assert!(uses_topic_creation(&config));
        let errors = validate(&config);
        assert_eq!(
            errors,
            vec![(
                "topic.creation.default.partitions".to_string(),
                "Missing required configuration \"topic.creation.default.partitions\" which has no default value."
                    .to_string()
            )]
        );
        let errors = validate(&map(&[
            ("topic.creation.default.replication.factor", "0"),
            ("topic.creation.default.partitions", "x"),
            ("topic.creation.groups", "g"),
            ("topic.creation.g.include", "a(["),
        ]));
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "topic.creation.default.partitions",
                "topic.creation.default.replication.factor",
                "topic.creation.g.include"
            ]
        );
        assert!(errors[1].1.contains("Replication factor must be positive"), "{errors:?}");
        assert!(validate(&map(&[("name", "x")])).is_empty(), "no topic creation keys, nothing to check");
    }
}
