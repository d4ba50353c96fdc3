//! Configuration definitions (like Kafka Connect's `ConfigDef`) and the validation answer (`ConfigInfos`),
//! serialized exactly as Kafka Connect's REST API shows them.

use std::collections::BTreeMap;

use serde::Serialize;

/// A connector or task configuration: string keys to string values, as in Kafka Connect.
pub type ConfigMap = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// Kafka Connect's name (`STRING`, `INT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn as_str(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    None,
    Short,
    Medium,
    Long,
}

impl Width {
    pub fn as_str(self) -> &'static str {
        match self {
            Width::None => "NONE",
            Width::Short => "SHORT",
            Width::Medium => "MEDIUM",
            Width::Long => "LONG",
        }
    }
}

/// The default of a key: Kafka Connect distinguishes "no default" (required) from a default of null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultValue {
    Required,
    Null,
    Value(String),
}

/// Extra checks on a value beyond its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Validator {
    /// Integer at least this.
    AtLeast(i64),
    /// Integer within the range, inclusive.
    Between(i64, i64),
    /// One of these strings (case-insensitive), Kafka Connect's `CaseInsensitiveValidString`.
    OneOf(Vec<&'static str>),
    /// One of these strings exactly, Kafka Connect's `ValidString`.
    ValidString(Vec<&'static str>),
    /// A non-empty string.
    NonEmptyString,
    /// A non-empty string without ISO control characters (Kafka Connect's rule for connector names).
    NonEmptyStringWithoutControlChars,
}

/// One key of a configuration definition.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: DefaultValue,
    pub validator: Option<Validator>,
    pub importance: Importance,
    pub documentation: &'static str,
    pub group: Option<&'static str>,
    pub order: i32,
    pub width: Width,
    pub display_name: &'static str,
}

/// A plugin's configuration definition: its keys, in order.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> Self {
        ConfigDef::default()
    }

    /// Adds a key (builder style).
    pub fn define(mut self, key: ConfigKey) -> Self {
        self.keys.push(key);
        self
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// The answer of `PUT /connector-plugins/{plugin}/config/validate`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigInfos {
    pub name: String,
    pub error_count: usize,
    pub groups: Vec<String>,
    pub configs: Vec<ConfigInfo>,
}

impl ConfigInfos {
    /// Every error as `key: message` lines, as in Kafka Connect's "Connector configuration is invalid" message.
    pub fn error_messages(&self) -> Vec<String> {
        self.configs
            .iter()
            .flat_map(|c| c.value.errors.iter().map(move |e| format!("{}: {}", c.value.name, e)))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigInfo {
    pub definition: Option<ConfigKeyInfo>,
    pub value: ConfigValueInfo,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigKeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub config_type: String,
    pub required: bool,
    pub default_value: Option<String>,
    pub importance: String,
    pub documentation: String,
    pub group: Option<String>,
    pub order: i32,
    pub width: String,
    pub display_name: String,
    pub dependents: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConfigValueInfo {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

impl DefaultValue {
    /// The default as shown in `default_value` (`None` both for "required" and for a null default).
    pub fn as_option(&self) -> Option<&str> {
        match self {
            DefaultValue::Value(v) => Some(v),
            DefaultValue::Required | DefaultValue::Null => None,
        }
    }
}

impl ConfigKey {
    /// A key outside any group, as Kafka Connect's short `define(name, type, default, importance, doc)` makes it:
    /// no group, order -1, width NONE, the display name is the key's name.
    pub fn new(
        name: &'static str,
        config_type: ConfigType,
        default: DefaultValue,
        importance: Importance,
        documentation: &'static str,
    ) -> Self {
        ConfigKey {
            name,
            config_type,
            default,
            validator: None,
            importance,
            documentation,
            group: None,
            order: -1,
            width: Width::None,
            display_name: name,
        }
    }

    /// Adds a validator (builder style).
    pub fn with_validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Sets the width and display name of a key outside any group (builder style), as Kafka Connect's
    /// `define(name, type, default, importance, doc, null, -1, width, display)`.
    pub fn with_width(mut self, width: Width, display_name: &'static str) -> Self {
        self.width = width;
        self.display_name = display_name;
        self
    }

    /// Places the key in a group, with its order in that group, width and display name (builder style).
    pub fn in_group(mut self, group: &'static str, order: i32, width: Width, display_name: &'static str) -> Self {
        self.group = Some(group);
        self.order = order;
        self.width = width;
        self.display_name = display_name;
        self
    }

    /// The definition as the REST API shows it.
    pub fn info(&self) -> ConfigKeyInfo {
        ConfigKeyInfo {
            name: self.name.to_string(),
            config_type: self.config_type.as_str().to_string(),
            required: self.default == DefaultValue::Required,
            default_value: self.default.as_option().map(str::to_string),
            importance: self.importance.as_str().to_string(),
            documentation: self.documentation.to_string(),
            group: self.group.map(str::to_string),
            order: self.order,
            width: self.width.as_str().to_string(),
            display_name: self.display_name.to_string(),
            dependents: Vec::new(),
        }
    }

    /// Parses and validates a raw value (or the default when `raw` is `None`) like Kafka Connect's
    /// `ConfigDef.validate`: the answer carries the normalized value (`"[hidden]"` for passwords) and every error,
    /// worded as Kafka Connect words them.
    pub fn validate_value(&self, raw: Option<&str>) -> ConfigValueInfo {
        let mut errors = Vec::new();
        let value = match (raw, &self.default) {
            (Some(raw), _) => match parse_value(self.name, self.config_type, raw) {
                Ok(normalized) => {
                    if let Some(validator) = &self.validator
                        && let Err(message) = validator.check(&normalized)
                    {
                        errors.push(invalid_value(self.name, &normalized, &message));
                    }
                    Some(normalized)
                }
                Err(message) => {
                    // As Kafka Connect: a value that does not parse is null, and a range check then fails on it too.
                    errors.push(message);
                    if matches!(self.validator, Some(Validator::AtLeast(_) | Validator::Between(..))) {
                        errors.push(invalid_value(self.name, "null", "Value must be non-null"));
                    }
                    None
                }
            },
            (None, DefaultValue::Required) => {
                errors.push(format!("Missing required configuration \"{}\" which has no default value.", self.name));
                None
            }
            (None, DefaultValue::Null) => None,
            (None, DefaultValue::Value(default)) => Some(default.clone()),
        };
        let value = match (self.config_type, value) {
            (ConfigType::Password, Some(_)) => Some("[hidden]".to_string()),
            (_, value) => value,
        };
        ConfigValueInfo { name: self.name.to_string(), value, recommended_values: Vec::new(), errors, visible: true }
    }
}

/// The order in which Java's `HashMap` (default capacity 16, grown past 3/4 full) iterates these keys:
/// Kafka Connect's `ConfigDef.validate` returns its values in that order, so validate lists a converter's keys so.
pub fn java_hash_map_order<'a>(keys: &[&'a str]) -> Vec<&'a str> {
    let mut capacity = 16usize;
    while keys.len() > capacity * 3 / 4 {
        capacity *= 2;
    }
    let hash = |s: &str| {
        // String.hashCode over UTF-16 code units, then HashMap.hash's spread.
        let h = s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32)) as u32;
        h ^ (h >> 16)
    };
    let mut ordered: Vec<(usize, usize, &str)> =
        keys.iter().enumerate().map(|(i, k)| (hash(k) as usize & (capacity - 1), i, *k)).collect();
    ordered.sort();
    ordered.into_iter().map(|(_, _, k)| k).collect()
}

impl Validator {
    /// Checks a parsed (normalized) value; the error is the part after "Invalid value X for configuration K: ".
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            Validator::AtLeast(min) => match value.trim().parse::<f64>() {
                Ok(n) if n < *min as f64 => Err(format!("Value must be at least {min}")),
                Ok(_) => Ok(()),
                Err(_) => Err("Value must be a number".to_string()),
            },
            Validator::Between(min, max) => match value.trim().parse::<f64>() {
                Ok(n) if n < *min as f64 => Err(format!("Value must be at least {min}")),
                Ok(n) if n > *max as f64 => Err(format!("Value must be no more than {max}")),
                Ok(_) => Ok(()),
                Err(_) => Err("Value must be a number".to_string()),
            },
            Validator::OneOf(allowed) => {
                if allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                    Ok(())
                } else {
                    // Kafka's CaseInsensitiveValidString keeps them upper-cased in a HashSet and lists them so.
                    let upper: Vec<String> = allowed.iter().map(|a| a.to_ascii_uppercase()).collect();
                    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
                    Err(format!("String must be one of (case insensitive): {}", java_hash_map_order(&upper).join(", ")))
                }
            }
            Validator::ValidString(allowed) => {
                if allowed.contains(&value) {
                    Ok(())
                } else {
                    Err(format!("String must be one of: {}", allowed.join(", ")))
                }
            }
            Validator::NonEmptyString => {
                if value.is_empty() {
                    Err("String must be non-empty".to_string())
                } else {
                    Ok(())
                }
            }
            Validator::NonEmptyStringWithoutControlChars => {
                if value.is_empty() {
                    return Err("String may not be empty".to_string());
                }
                let control: Vec<String> =
                    value.chars().filter(|c| c.is_control()).map(|c| u32::from(c).to_string()).collect();
                if control.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "String may not contain control sequences but had the following ASCII chars: {}",
                        control.join(", ")
                    ))
                }
            }
        }
    }
}

/// Kafka Connect's `ConfigException(name, value, message)` text.
pub fn invalid_value(key: &str, value: &str, message: &str) -> String {
    format!("Invalid value {value} for configuration {key}: {message}")
}

/// Parses a raw value of a type like Kafka Connect's `ConfigDef.parseType` (values are trimmed) and returns its
/// normalized string form (`" 007 "` as INT is `"7"`, a LIST `"a, b"` is `"a,b"`), or the error message.
pub fn parse_value(key: &str, config_type: ConfigType, raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let not_a_number = |type_name: &str| invalid_value(key, trimmed, &format!("Not a number of type {type_name}"));
    match config_type {
        ConfigType::String | ConfigType::Class | ConfigType::Password => Ok(trimmed.to_string()),
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok("true".to_string())
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok("false".to_string())
            } else {
                Err(invalid_value(key, trimmed, "Expected value to be either true or false"))
            }
        }
        ConfigType::Int => trimmed.parse::<i32>().map(|v| v.to_string()).map_err(|_| not_a_number("INT")),
        ConfigType::Short => trimmed.parse::<i16>().map(|v| v.to_string()).map_err(|_| not_a_number("SHORT")),
        ConfigType::Long => trimmed.parse::<i64>().map(|v| v.to_string()).map_err(|_| not_a_number("LONG")),
        // Shown as given: Rust and Java print doubles differently (`1` vs `1.0`).
        ConfigType::Double => trimmed.parse::<f64>().map(|_| trimmed.to_string()).map_err(|_| not_a_number("DOUBLE")),
        ConfigType::List => Ok(parse_list(trimmed).join(",")),
    }
}

/// Splits a LIST value on commas, trimming each item; a blank value is the empty list.
pub fn parse_list(raw: &str) -> Vec<&str> {
    let trimmed = raw.trim();
    if trimmed.is_empty() { Vec::new() } else { trimmed.split(',').map(str::trim).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_map_order_is_javas() {
        // As Kafka Connect 4.1.2 lists StringConverter's keys in validate.
        assert_eq!(
            java_hash_map_order(&["converter.type", "converter.encoding"]),
            ["converter.type", "converter.encoding"]
        );
        // Java: new HashMap<>() with these five puts iterates them in this order.
        let json =
            ["converter.type", "schemas.enable", "schemas.cache.size", "decimal.format", "replace.null.with.default"];
        assert_eq!(
            java_hash_map_order(&json),
            ["decimal.format", "converter.type", "schemas.cache.size", "replace.null.with.default", "schemas.enable"]
        );
    }

    #[test]
    fn case_insensitive_choices_are_listed_as_kafka_lists_them() {
        let err = Validator::OneOf(vec!["BASE64", "NUMERIC"]).check("bogus").unwrap_err();
        assert_eq!(err, "String must be one of (case insensitive): NUMERIC, BASE64");
    }
}
