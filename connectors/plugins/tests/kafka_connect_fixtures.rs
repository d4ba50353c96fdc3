//! Byte-level compatibility with Apache Kafka Connect's own converters.
//!
//! The fixtures in `tests/fixtures/*.json` were written by Kafka Connect's real `JsonConverter` (with and without
//! `schemas.enable`), `StringConverter`, `ByteArrayConverter`, `SimpleHeaderConverter`, and the primitive
//! `BooleanConverter`, `ShortConverter`, `IntegerConverter`, `LongConverter`, `FloatConverter` and `DoubleConverter`
//! (also as header converters) (`tests/fixtures/regenerate` recreates them). For
//! every case Sluice's `from_connect` must give the very same bytes, and Sluice's `to_connect` of Kafka Connect's
//! bytes must give the schema and value Kafka Connect reads back. The few places where Sluice deliberately differs
//! (Kafka Connect silently corrupts the value) are listed in [`DEVIATIONS`] with the reason. Non-finite floats and
//! -0.0 are read as Kafka Connect reads them (0.0), so a JSON topic gives the same values in both.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;
use sluice_connectors::{
    ConfigMap, ConnectError, Converter, Field, HeaderConverter, Schema, SchemaType, Value, registry,
};

/// `(fixture file, case name or read text, reason)`: where Sluice reads differently from Kafka Connect on purpose.
const DEVIATIONS: &[(&str, &str, &str)] = &[
    (
        "json_schemas_disabled.json",
        "-0",
        "Kafka Connect infers INT64 0 for the JSON number -0; serde_json parses it as a double, so Sluice infers \
         FLOAT64 0.0 (no other integer is affected)",
    ),
    (
        "json_schemas_enabled.json",
        r#"{"schema":{"type":"int32","optional":false},"payload":"12"}"#,
        "Kafka Connect reads a JSON string as the integer 0; Sluice rejects it instead of inventing a value",
    ),
    (
        "json_schemas_enabled.json",
        r#"{"schema":{"type":"int32","optional":false},"payload":1.9}"#,
        "Kafka Connect truncates 1.9 to the integer 1; Sluice rejects a fractional number for an integer schema",
    ),
    (
        "json_schemas_enabled.json",
        r#"{"schema":{"type":"int8","optional":false},"payload":300}"#,
        "Kafka Connect wraps 300 to the INT8 44; Sluice rejects a number out of the schema's range",
    ),
    (
        "simple_header.json",
        "null",
        "Kafka Connect's SimpleHeaderConverter fails with a NullPointerException on the header text `null`; Sluice \
         reads a null header",
    ),
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn load(file: &str) -> Json {
    let path = fixtures_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn deviation(file: &str, name: &str) -> Option<&'static str> {
    DEVIATIONS.iter().find(|(f, n, _)| *f == file && *n == name).map(|(_, _, reason)| *reason)
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64 symbol") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Rebuilds a schema from the generator's neutral description.
fn schema_of(json: &Json) -> Option<Arc<Schema>> {
    let obj = json.as_object()?;
    let schema_type = match obj["type"].as_str().expect("type") {
        "INT8" => SchemaType::Int8,
        "INT16" => SchemaType::Int16,
        "INT32" => SchemaType::Int32,
        "INT64" => SchemaType::Int64,
        "FLOAT32" => SchemaType::Float32,
        "FLOAT64" => SchemaType::Float64,
        "BOOLEAN" => SchemaType::Boolean,
        "STRING" => SchemaType::String,
        "BYTES" => SchemaType::Bytes,
        "ARRAY" => SchemaType::Array,
        "MAP" => SchemaType::Map,
        "STRUCT" => SchemaType::Struct,
        other => panic!("unknown schema type {other}"),
    };
    let mut schema = Schema::primitive(schema_type, obj["optional"].as_bool().expect("optional"));
    schema.name = obj.get("name").and_then(Json::as_str).map(str::to_string);
    schema.version = obj.get("version").and_then(Json::as_i64).map(|v| v as i32);
    schema.doc = obj.get("doc").and_then(Json::as_str).map(str::to_string);
    schema.parameters = obj.get("parameters").and_then(Json::as_object).map(|p| {
        p.iter().map(|(k, v)| (k.clone(), v.as_str().expect("string parameter").to_string())).collect::<Vec<_>>()
    });
    schema.default = obj.get("default").map(|d| Box::new(value_of(d)));
    schema.value_schema = obj.get("items").or_else(|| obj.get("values")).and_then(schema_of);
    schema.key_schema = obj.get("keys").and_then(schema_of);
    if let Some(fields) = obj.get("fields").and_then(Json::as_array) {
        schema.fields = fields
            .iter()
            .enumerate()
            .map(|(index, f)| Field {
                name: f["name"].as_str().expect("field name").to_string(),
                index,
                schema: schema_of(&f["schema"]).expect("field schema"),
            })
            .collect();
    }
    Some(Arc::new(schema))
}

/// Rebuilds a value from the generator's neutral, typed description (`{"int32": 5}`, `{"struct": [...]}`, ...).
fn value_of(json: &Json) -> Value {
    let Some(obj) = json.as_object() else { return Value::Null };
    let (tag, v) = obj.iter().next().expect("one tag");
    let int = |v: &Json| v.as_i64().expect("integer");
    match tag.as_str() {
        "int8" => Value::Int8(int(v) as i8),
        "int16" => Value::Int16(int(v) as i16),
        "int32" => Value::Int32(int(v) as i32),
        "int64" => Value::Int64(v.as_str().expect("decimal text").parse().expect("i64")),
        "float32" => Value::Float32(f32::from_bits(u32::from_str_radix(v.as_str().expect("hex"), 16).expect("bits"))),
        "float64" => Value::Float64(f64::from_bits(u64::from_str_radix(v.as_str().expect("hex"), 16).expect("bits"))),
        "boolean" => Value::Boolean(v.as_bool().expect("bool")),
        "string" => Value::String(v.as_str().expect("string").to_string()),
        "bytes" => Value::Bytes(Bytes::from(base64_decode(v.as_str().expect("base64")))),
        "array" => Value::Array(v.as_array().expect("array").iter().map(value_of).collect()),
        "map" => Value::Map(
            v.as_array().expect("pairs").iter().map(|pair| (value_of(&pair[0]), value_of(&pair[1]))).collect(),
        ),
        "struct" => Value::Struct(v.as_array().expect("fields").iter().map(value_of).collect()),
        other => panic!("unknown value tag {other}"),
    }
}

/// A comparable text of a value: map entries sorted (Kafka Connect reads JSON objects into a `HashMap`), floats by
/// their exact text (`NaN` and `-0.0` compare as themselves).
fn canonical(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(", ")),
        Value::Struct(items) => format!("Struct({})", items.iter().map(canonical).collect::<Vec<_>>().join(", ")),
        Value::Map(entries) => {
            let mut entries: Vec<String> =
                entries.iter().map(|(k, v)| format!("{} => {}", canonical(k), canonical(v))).collect();
            entries.sort();
            format!("Map{{{}}}", entries.join(", "))
        }
        Value::Float32(v) => format!("Float32({:#x})", v.to_bits()),
        Value::Float64(v) => format!("Float64({:#x})", v.to_bits()),
        other => format!("{other:?}"),
    }
}

fn converter_of(fixture: &Json) -> Box<dyn Converter> {
    let config: ConfigMap = fixture["config"]
        .as_object()
        .expect("config")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect();
    let class = fixture["converter"].as_str().expect("class");
    // Header converter fixtures: SimpleHeaderConverter's, and converters driven as header converters (the worker
    // configures those with `converter.type=header`).
    if class == registry::SIMPLE_HEADER_CONVERTER || config.get("converter.type").is_some_and(|t| t == "header") {
        let header = registry::new_header_converter(class, &config).expect("configures");
        return Box::new(AsConverter(header));
    }
    registry::new_converter(class, &config, false).expect("configures")
}

/// A header converter seen as a converter (header key `h`), as the Java generator drives it.
struct AsConverter(Box<dyn HeaderConverter>);

impl Converter for AsConverter {
    fn configure(&mut self, config: &ConfigMap, _is_key: bool) -> Result<(), ConnectError> {
        self.0.configure(config)
    }

    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, ConnectError> {
        out.clear();
        let bytes = self.0.from_connect_header(topic, "h", schema, value)?;
        out.extend_from_slice(bytes.as_deref().unwrap_or_default());
        Ok(bytes.is_some())
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<(Option<Arc<Schema>>, Value), ConnectError> {
        self.0.to_connect_header(topic, "h", bytes)
    }
}

/// Checks Sluice's reading of `bytes` against Kafka Connect's (`expected` is the fixture's `read_back`).
fn check_read(
    converter: &dyn Converter,
    topic: &str,
    bytes: Option<&[u8]>,
    expected: &Json,
    label: &str,
) -> Result<(), String> {
    let got = converter.to_connect(topic, bytes);
    match (got, expected.get("error")) {
        (Err(_), Some(_)) => Ok(()),
        (Err(err), None) => Err(format!("{label}: Sluice cannot read Kafka Connect's bytes: {err}")),
        (Ok(got), Some(err)) => Err(format!("{label}: Kafka Connect fails ({err}) but Sluice reads {got:?}")),
        (Ok((schema, value)), None) => {
            let want_schema = schema_of(&expected["schema"]);
            let want_value = value_of(&expected["value"]);
            if schema != want_schema {
                return Err(format!("{label}: schema differs\n  sluice: {schema:?}\n  kafka:  {want_schema:?}"));
            }
            if canonical(&value) != canonical(&want_value) {
                return Err(format!(
                    "{label}: value differs\n  sluice: {}\n  kafka:  {}",
                    canonical(&value),
                    canonical(&want_value)
                ));
            }
            Ok(())
        }
    }
}

/// Runs every case and read of one fixture file; returns the list of differences.
fn check_fixture(file: &str) -> Vec<String> {
    let fixture = load(file);
    let converter = converter_of(&fixture);
    let topic = fixture["topic"].as_str().expect("topic");
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{file} has no cases");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let schema = schema_of(&case["schema"]);
        let value = value_of(&case["value"]);
        let label = format!("{file} / {name}");
        let written = converter.from_connect(topic, schema.as_deref(), &value, &mut out);
        if case.get("error").is_some() {
            if let Ok(wrote) = written {
                problems.push(format!("{label}: Kafka Connect fails ({}) but Sluice writes {wrote}", case["error"]));
            }
            continue;
        }
        let want = case["bytes"].as_str().map(base64_decode);
        match written {
            Err(err) => problems.push(format!("{label}: Sluice cannot write it: {err}")),
            Ok(wrote) => {
                let got = wrote.then(|| out.clone());
                if got != want {
                    problems.push(format!(
                        "{label}: bytes differ\n  sluice: {:?}\n  kafka:  {:?}",
                        got.as_deref().map(String::from_utf8_lossy),
                        want.as_deref().map(String::from_utf8_lossy)
                    ));
                }
            }
        }
        if deviation(file, name).is_none()
            && let Err(problem) = check_read(converter.as_ref(), topic, want.as_deref(), &case["read_back"], &label)
        {
            problems.push(problem);
        }
    }
    for read in fixture["reads"].as_array().expect("reads") {
        let text = read["text"].as_str().expect("text");
        let bytes = base64_decode(read["bytes"].as_str().expect("bytes"));
        let label = format!("{file} / read {text}");
        if deviation(file, text).is_none()
            && let Err(problem) = check_read(converter.as_ref(), topic, Some(&bytes), &read["read_back"], &label)
        {
            problems.push(problem);
        }
    }
    problems
}

fn assert_compatible(file: &str) {
    let problems = check_fixture(file);
    assert!(problems.is_empty(), "{} difference(s) from Kafka Connect:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn json_converter_with_schemas_matches_kafka_connect() {
    assert_compatible("json_schemas_enabled.json");
}

#[test]
fn json_converter_without_schemas_matches_kafka_connect() {
    assert_compatible("json_schemas_disabled.json");
}

#[test]
fn string_converter_matches_kafka_connect() {
    assert_compatible("string.json");
}

#[test]
fn simple_header_converter_matches_kafka_connect() {
    assert_compatible("simple_header.json");
}

#[test]
fn byte_array_converter_matches_kafka_connect() {
    assert_compatible("byte_array.json");
}

#[test]
fn boolean_converter_matches_kafka_connect() {
    assert_compatible("boolean.json");
    assert_compatible("boolean_header.json");
}

#[test]
fn number_converters_match_kafka_connect() {
    for file in ["short.json", "integer.json", "long.json", "float.json", "double.json", "integer_header.json"] {
        assert_compatible(file);
    }
}

/// The deviations are real: Kafka Connect's fixture still shows the behaviour Sluice avoids; and where Kafka Connect
/// wrote the bytes itself with the schema envelope, Sluice reads back exactly the value that was written.
#[test]
fn deviations_are_still_deviations() {
    for (file, name, reason) in DEVIATIONS {
        let fixture = load(file);
        let converter = converter_of(&fixture);
        let topic = fixture["topic"].as_str().expect("topic");
        let entry = fixture["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .find(|c| c["name"] == *name)
            .or_else(|| fixture["reads"].as_array().expect("reads").iter().find(|r| r["text"] == *name))
            .unwrap_or_else(|| panic!("deviation {file} / {name} names no fixture entry"));
        let bytes = base64_decode(entry["bytes"].as_str().expect("bytes"));
        let result = check_read(converter.as_ref(), topic, Some(&bytes), &entry["read_back"], name);
        assert!(result.is_err(), "{file} / {name} is no longer a deviation ({reason}); remove it from DEVIATIONS");
        // Only the schema envelope carries the type to read the written value back exactly.
        if let Some(written) =
            entry.get("value").map(value_of).filter(|_| fixture["config"]["schemas.enable"] == "true")
        {
            let (_, read) = converter.to_connect(topic, Some(&bytes)).expect("Sluice reads its own value back");
            assert_eq!(canonical(&read), canonical(&written), "{file} / {name}");
        }
    }
}

/// `GET /connector-plugins?connectorsOnly=false` lists what Kafka Connect 4.1.2 lists, in its order
/// (`fixtures/connector_plugins.json`, read from a running worker). Versions are Sluice's own.
#[test]
fn plugin_list_matches_kafka_connect() {
    let fixture = load("connector_plugins.json");
    let want: Vec<(String, String)> = fixture["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| (p["type"].as_str().expect("type").to_string(), p["class"].as_str().expect("class").to_string()))
        .collect();
    // Kafka Connect's own plugins (the connector crates' plugins, which a bare worker does not have, left out).
    let got: Vec<(String, String)> = registry::plugins(true)
        .into_iter()
        .filter(|p| !p.class.starts_with("io."))
        .map(|p| (p.plugin_type, p.class))
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 50);
}
