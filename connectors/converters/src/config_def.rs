//! The configuration each converter defines, as its `config()` returns it in Kafka Connect 4.1.2
//! (`ConverterConfig`, `StringConverterConfig`, `JsonConverterConfig`, ...): validate lists these keys, prefixed,
//! for a converter a connector config names, and `GET /connector-plugins/{converter}/config` describes them.

pub use crate::config::java_hash_map_order;
use crate::config::{ConfigDef, ConfigKey, ConfigType, DefaultValue, Importance, Validator, Width};

const TYPE_DOC: &str = "How this converter will be used.";
const ENCODING_DOC: &str = "The name of the Java character set to use for encoding strings as byte arrays.";
const SCHEMAS_ENABLE_DOC: &str = "Include schemas within each of the serialized values and keys.";
const SCHEMAS_CACHE_SIZE_DOC: &str = "The maximum number of schemas that can be cached in this converter instance.";
const DECIMAL_FORMAT_DOC: &str = "Controls which format this converter will serialize decimals in. This value is case insensitive and can be either 'BASE64' (default) or 'NUMERIC'";
const REPLACE_NULL_WITH_DEFAULT_DOC: &str = "Whether to replace fields that have a default value and that are null to the default value. When set to true, the default value is used, otherwise null is used.";

/// `ConverterConfig.newConfigDef()`: `converter.type`, one of key, value, header, set by the runtime.
fn converter_base() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new("converter.type", ConfigType::String, DefaultValue::Required, Importance::Low, TYPE_DOC)
            .with_validator(Validator::ValidString(vec!["key", "value", "header"])),
    )
}

/// The definition of a converter or header converter by its full class name; `None` for a class that is not one.
pub fn converter_config_def(class: &str) -> Option<ConfigDef> {
    let def = match class {
        "org.apache.kafka.connect.storage.StringConverter" => converter_base().define(
            ConfigKey::new(
                "converter.encoding",
                ConfigType::String,
                DefaultValue::Value("UTF-8".into()),
                Importance::High,
                ENCODING_DOC,
            )
            .with_width(Width::Medium, "Encoding"),
        ),
        "org.apache.kafka.connect.json.JsonConverter" => converter_base()
            .define(
                ConfigKey::new(
                    "schemas.enable",
                    ConfigType::Boolean,
                    DefaultValue::Value("true".into()),
                    Importance::High,
                    SCHEMAS_ENABLE_DOC,
                )
                .in_group("Schemas", 0, Width::Medium, "Enable Schemas"),
            )
            .define(
                ConfigKey::new(
                    "schemas.cache.size",
                    ConfigType::Int,
                    DefaultValue::Value("1000".into()),
                    Importance::High,
                    SCHEMAS_CACHE_SIZE_DOC,
                )
                .in_group("Schemas", 1, Width::Medium, "Schema Cache Size"),
            )
            .define(
                ConfigKey::new(
                    "decimal.format",
                    ConfigType::String,
                    DefaultValue::Value("BASE64".into()),
                    Importance::Low,
                    DECIMAL_FORMAT_DOC,
                )
                .with_validator(Validator::OneOf(vec!["BASE64", "NUMERIC"]))
                .in_group("Serialization", 0, Width::Medium, "Decimal Format"),
            )
            .define(
                ConfigKey::new(
                    "replace.null.with.default",
                    ConfigType::Boolean,
                    DefaultValue::Value("true".into()),
                    Importance::Low,
                    REPLACE_NULL_WITH_DEFAULT_DOC,
                )
                .in_group("Serialization", 1, Width::Medium, "Replace null with default"),
            ),
        "org.apache.kafka.connect.converters.ByteArrayConverter"
        | "org.apache.kafka.connect.converters.BooleanConverter"
        | "org.apache.kafka.connect.converters.DoubleConverter"
        | "org.apache.kafka.connect.converters.FloatConverter"
        | "org.apache.kafka.connect.converters.IntegerConverter"
        | "org.apache.kafka.connect.converters.LongConverter"
        | "org.apache.kafka.connect.converters.ShortConverter" => converter_base(),
        // Its config() is an empty ConfigDef.
        "org.apache.kafka.connect.storage.SimpleHeaderConverter" => ConfigDef::new(),
        _ => return None,
    };
    Some(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_converter_has_a_definition() {
        let json = converter_config_def("org.apache.kafka.connect.json.JsonConverter").unwrap();
        assert_eq!(json.keys.len(), 5);
        assert!(
            converter_config_def("org.apache.kafka.connect.storage.SimpleHeaderConverter").unwrap().keys.is_empty()
        );
        assert!(converter_config_def("org.example.Nope").is_none());
    }
}
