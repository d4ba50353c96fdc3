//! The transforms that route or drop whole records: Filter, RegexRouter and TimestampRouter.

use regex::Regex;

use crate::config::{ConfigDef, ConfigType, Importance};
use crate::error::ConnectError;

use super::date_format::DateFormat;
use super::plugin_config::{PluginConfig, key};
use super::support::data_error;
use super::{ConnectRecord, Transformation};

// ---------------------------------------------------------------------------------------------------------------
// Filter

pub fn build_filter(_: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    Ok(Box::new(Filter))
}

/// Drops every record; used with a predicate.
struct Filter;

impl Transformation for Filter {
    fn apply(&self, _: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RegexRouter

const REGEX: &str = "regex";
const REPLACEMENT: &str = "replacement";

pub fn regex_router_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(REGEX, ConfigType::String, None, Importance::High, "Regular expression to use for matching."))
        .define(key(REPLACEMENT, ConfigType::String, None, Importance::High, "Replacement string."))
}

/// A regular expression that must match a whole string, like Java's `Matcher.matches()`.
pub fn whole_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| match e {
        regex::Error::Syntax(text) => text,
        other => other.to_string(),
    })
}

/// A piece of a Java replacement string (`Matcher.appendReplacement` syntax: `$1`, `${name}`, `\$`).
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Group(usize),
    Named(String),
}

/// Parses a Java replacement string against the regex's groups; the error is Java's message.
fn parse_replacement(replacement: &str, regex: &Regex) -> Result<Vec<Piece>, String> {
    let group_count = regex.captures_len() - 1;
    let chars: Vec<char> = replacement.chars().collect();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let escaped = chars.get(i + 1).ok_or("character to be escaped is missing")?;
                literal.push(*escaped);
                i += 2;
            }
            '$' => {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                match chars.get(i + 1) {
                    None => return Err("Illegal group reference: group index is missing".to_string()),
                    Some('{') => {
                        let close = chars[i + 2..]
                            .iter()
                            .position(|c| *c == '}')
                            .ok_or("named capturing group is missing trailing '}'")?;
                        let name: String = chars[i + 2..i + 2 + close].iter().collect();
                        if name.is_empty() {
                            return Err("named capturing group has 0 length name".to_string());
                        }
                        if !regex.capture_names().flatten().any(|n| n == name) {
                            return Err(format!("No group with name {{{name}}}"));
                        }
                        pieces.push(Piece::Named(name));
                        i += 3 + close;
                    }
                    Some(d) if d.is_ascii_digit() => {
                        // The first digit always belongs to the reference; later ones only while the number
                        // still names a group.
                        let mut group = d.to_digit(10).unwrap_or(0) as usize;
                        i += 2;
                        while let Some(next) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            let longer = group * 10 + next as usize;
                            if longer > group_count {
                                break;
                            }
                            group = longer;
                            i += 1;
                        }
                        if group > group_count {
                            return Err(format!("No group {group}"));
                        }
                        pieces.push(Piece::Group(group));
                    }
                    Some(_) => return Err("Illegal group reference".to_string()),
                }
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

pub fn build_regex_router(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    let pattern = c.string(REGEX).unwrap_or_default();
    let regex = whole_match_regex(&pattern).map_err(|e| c.invalid(REGEX, &pattern, &format!("Invalid regex: {e}")))?;
    let replacement = c.string(REPLACEMENT).unwrap_or_default();
    let pieces = parse_replacement(&replacement, &regex).map_err(|e| c.invalid(REPLACEMENT, &replacement, &e))?;
    Ok(Box::new(RegexRouter { regex, pieces }))
}

struct RegexRouter {
    regex: Regex,
    pieces: Vec<Piece>,
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        // The pattern is anchored: a match is a match of the whole topic, which the replacement then replaces.
        if let Some(captures) = self.regex.captures(&record.topic) {
            let mut topic = String::new();
            for piece in &self.pieces {
                match piece {
                    Piece::Literal(text) => topic.push_str(text),
                    Piece::Group(i) => topic.push_str(captures.get(*i).map_or("", |m| m.as_str())),
                    Piece::Named(name) => topic.push_str(captures.name(name).map_or("", |m| m.as_str())),
                }
            }
            tracing::trace!(from = %record.topic, to = %topic, "rerouting record");
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TimestampRouter

const TOPIC_FORMAT: &str = "topic.format";
const TIMESTAMP_FORMAT: &str = "timestamp.format";

pub fn timestamp_router_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(key(
            TOPIC_FORMAT,
            ConfigType::String,
            Some("${topic}-${timestamp}"),
            Importance::High,
            "Format string which can contain <code>${topic}</code> and <code>${timestamp}</code> as placeholders for the topic and timestamp, respectively.",
        ))
        .define(key(
            TIMESTAMP_FORMAT,
            ConfigType::String,
            Some("yyyyMMdd"),
            Importance::High,
            "Format string for the timestamp that is compatible with <code>java.text.SimpleDateFormat</code>.",
        ))
}

pub fn build_timestamp_router(c: &PluginConfig) -> Result<Box<dyn Transformation>, ConnectError> {
    let pattern = c.string(TIMESTAMP_FORMAT).unwrap_or_default();
    let timestamp_format = DateFormat::new(&pattern).map_err(|e| c.invalid(TIMESTAMP_FORMAT, &pattern, &e))?;
    Ok(Box::new(TimestampRouter { topic_format: c.string(TOPIC_FORMAT).unwrap_or_default(), timestamp_format }))
}

struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, ConnectError> {
        let Some(timestamp) = record.timestamp else {
            return Err(data_error(format!("Timestamp missing on record: {record}")));
        };
        let formatted = self.timestamp_format.format(timestamp);
        record.topic = self.topic_format.replace("${topic}", &record.topic).replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn topic(t: &dyn Transformation, name: &str) -> String {
        let mut record = with_value(None, s("v"));
        record.topic = name.to_string();
        apply(t, record).topic
    }

    #[test]
    fn filter_drops_everything() {
        let t = transform("org.apache.kafka.connect.transforms.Filter", &[]);
        assert_eq!(t.apply(with_value(None, s("v"))).expect("ok"), None);
    }

    #[test]
    fn regex_router_rewrites_whole_matches_only() {
        let t = transform("RegexRouter", &[("regex", "(.*)-(\\d+)"), ("replacement", "$2_$1")]);
        assert_eq!(topic(&*t, "orders-42"), "42_orders");
        assert_eq!(topic(&*t, "orders"), "orders");
        let t = transform("RegexRouter", &[("regex", "db\\.(?<table>\\w+)"), ("replacement", "${table}\\$x")]);
        assert_eq!(topic(&*t, "db.users"), "users$x");
        assert_eq!(topic(&*t, "xdb.users"), "xdb.users", "the match must cover the whole topic");
        let t = transform("RegexRouter", &[("regex", "(a)(b)?"), ("replacement", "$1$2$10")]);
        assert_eq!(topic(&*t, "a"), "aa0", "$10 is $1 then 0 with two groups; unmatched groups are empty");
    }

    #[test]
    fn regex_router_config_errors() {
        let err = build_error("RegexRouter", &[("regex", "(unclosed"), ("replacement", "x")]);
        assert!(err.starts_with("Invalid value (unclosed for configuration regex: Invalid regex: "), "{err}");
        assert_eq!(
            build_error("RegexRouter", &[("regex", "(.*)"), ("replacement", "$2")]),
            "Invalid value $2 for configuration replacement: No group 2"
        );
        assert_eq!(
            build_error("RegexRouter", &[("regex", "(.*)"), ("replacement", "$x")]),
            "Invalid value $x for configuration replacement: Illegal group reference"
        );
        assert_eq!(
            build_error("RegexRouter", &[("regex", ".*")]),
            "Missing required configuration \"replacement\" which has no default value."
        );
    }

    #[test]
    fn timestamp_router() {
        let t = transform("TimestampRouter", &[]);
        let mut record = with_value(None, s("v"));
        record.topic = "events".into();
        record.timestamp = Some(1_500_000_000_123);
        assert_eq!(apply(&*t, record.clone()).topic, "events-20170714");
        let t = transform(
            "TimestampRouter",
            &[("topic.format", "${timestamp}/${topic}"), ("timestamp.format", "yyyy-MM-dd'T'HH")],
        );
        assert_eq!(apply(&*t, record.clone()).topic, "2017-07-14T02/events");
        record.timestamp = None;
        let err = apply_error(&*t, record);
        assert!(err.starts_with("Timestamp missing on record: ConnectRecord{topic='events'"), "{err}");
        assert_eq!(
            build_error("TimestampRouter", &[("timestamp.format", "yyyyqq")]),
            "Invalid value yyyyqq for configuration timestamp.format: Illegal pattern character 'q'"
        );
    }
}
