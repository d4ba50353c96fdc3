//! Request bodies of the REST gateway that carry a connector configuration. Kafka Connect only takes JSON, but
//! the most common first attempt is `curl --data @file.properties`: curl sends it as `application/json` *and*
//! strips every newline, so a properties file arrives as `name=file-sourceconnector.class=FileStreamSource...`.
//! We accept JSON, Java properties, and that flattened form when it can be split back into `key=value` pairs in
//! exactly one sensible way; anything else is a 400 that explains the pitfall. The content type is not trusted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};
use sluice_connectors::config::{ConfigKey, ConfigType, Validator};
use sluice_connectors::{ConfigMap, ConnectorType, registry};

use crate::api::{ApiError, ConnectorOffset, ConnectorOffsets, CreateConnector, TargetState};

const NOT_JSON_NOR_PROPERTIES: &str = "Request body is not valid JSON, nor a Java properties file. Note: curl \
     --data @file strips newlines; send properties files with --data-binary @file (or send JSON)";

/// What a handler knows from the URL, used to recognize a flattened properties body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UrlContext<'a> {
    /// `PUT /connectors/{name}/config`: the body may omit `name`.
    pub name: Option<&'a str>,
    /// `PUT /connector-plugins/{plugin}/config/validate`: the body may omit `connector.class`.
    pub plugin: Option<&'a str>,
}

/// A body after recognizing its format, before it is interpreted for one endpoint.
#[derive(Debug)]
enum Body {
    Json(Value),
    Properties(ConfigMap),
}

/// Body of `PUT /connectors/{name}/config` and of the validate endpoint: a flat string map.
pub(crate) fn parse_config(body: &[u8], url: UrlContext<'_>) -> Result<ConfigMap, ApiError> {
    match recognize(body, url)? {
        Body::Properties(config) => Ok(config),
        Body::Json(Value::Object(map)) => json_config(map),
        Body::Json(_) => Err(ApiError::bad_request("Request body must be a JSON object of configuration keys")),
    }
}

/// Body of `POST /connectors`: `{"name", "config", "initial_state"}`, or a flat config (JSON or properties) whose
/// `name` key names the connector.
pub(crate) fn parse_create(body: &[u8]) -> Result<CreateConnector, ApiError> {
    match recognize(body, UrlContext::default())? {
        Body::Properties(config) => create_request(None, config, TargetState::default()),
        Body::Json(Value::Object(mut map)) => {
            if !map.contains_key("config") {
                return create_request(None, json_config(map)?, TargetState::default());
            }
            let name = match map.remove("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => Some(name),
                Some(_) => return Err(ApiError::bad_request("Connector name must be a string")),
            };
            let config = match map.remove("config") {
                Some(Value::Object(config)) => json_config(config)?,
                Some(Value::Null) | None => ConfigMap::new(),
                Some(_) => return Err(ApiError::bad_request("Connector config must be a JSON object")),
            };
            let initial_state = match map.remove("initial_state") {
                None | Some(Value::Null) => TargetState::default(),
                Some(Value::String(state)) => parse_target_state(&state)?,
                Some(_) => return Err(ApiError::bad_request("initial_state must be RUNNING, PAUSED or STOPPED")),
            };
            create_request(name, config, initial_state)
        }
        Body::Json(_) => {
            Err(ApiError::bad_request("Request body must be a JSON object: {\"name\": \"...\", \"config\": {...}}"))
        }
    }
}

/// Body of `PATCH /connectors/{name}/config`: a JSON object whose `null` values delete keys.
pub(crate) fn parse_patch(body: &[u8]) -> Result<BTreeMap<String, Option<String>>, ApiError> {
    let text = body_text(body)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request("Request body must be a JSON object of configuration keys"));
    };
    map.into_iter()
        .map(|(key, value)| match value {
            Value::Null => Ok((key, None)),
            other => json_scalar(&key, other).map(|v| (key, Some(v))),
        })
        .collect()
}

const NO_OFFSETS: &str = "Partitions / offsets need to be provided for an alter offsets request";

/// Body of `PATCH /connectors/{name}/offsets`: `{"offsets": [{"partition": {...}, "offset": {...} | null}]}`.
/// Unlike Kafka Connect, an entry must spell its `offset` out: a forgotten key does not silently remove one.
pub(crate) fn parse_offsets(body: &[u8]) -> Result<ConnectorOffsets, ApiError> {
    let text = body_text(body)?.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(NO_OFFSETS));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")))?;
    let entries = match value {
        Value::Object(mut map) => match map.remove("offsets") {
            Some(Value::Array(entries)) => entries,
            None | Some(Value::Null) => return Err(ApiError::bad_request(NO_OFFSETS)),
            Some(_) => return Err(ApiError::bad_request("\"offsets\" must be a JSON array")),
        },
        _ => return Err(ApiError::bad_request("Request body must be a JSON object: {\"offsets\": [...]}")),
    };
    let mut offsets = Vec::with_capacity(entries.len());
    for entry in entries {
        let shape = || {
            ApiError::bad_request(
                "Each entry of \"offsets\" must be {\"partition\": {...}, \"offset\": {...}} (an offset of null \
                 removes the partition's offset)",
            )
        };
        let Value::Object(mut entry) = entry else { return Err(shape()) };
        let partition = match entry.remove("partition") {
            Some(Value::Object(partition)) => partition,
            Some(Value::Null) => return Err(ApiError::bad_request("Partitions may not be null")),
            _ => return Err(shape()),
        };
        let offset = match entry.remove("offset") {
            Some(Value::Object(offset)) => Some(offset),
            Some(Value::Null) => None,
            _ => return Err(shape()),
        };
        offsets.push(ConnectorOffset { partition, offset });
    }
    if offsets.is_empty() {
        return Err(ApiError::bad_request(NO_OFFSETS));
    }
    Ok(ConnectorOffsets { offsets })
}

/// Body of `PUT /admin/loggers/{name}`: `{"level": "DEBUG"}`.
pub(crate) fn parse_level(body: &[u8]) -> Result<String, ApiError> {
    let missing = || ApiError::bad_request("Desired 'level' parameter was not specified in request.");
    let text = body_text(body)?.trim();
    if text.is_empty() {
        return Err(missing());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")))?;
    match value.get("level") {
        Some(Value::String(level)) => Ok(level.clone()),
        _ => Err(missing()),
    }
}

/// Completes a create request as Kafka Connect does: the name is trimmed, copied into the config when absent, and
/// must match the config's `name` when present. Shared with the gRPC adapter so both answer alike.
pub(crate) fn create_request(
    name: Option<String>,
    mut config: ConfigMap,
    initial_state: TargetState,
) -> Result<CreateConnector, ApiError> {
    let name = match name {
        Some(name) => name.trim().to_string(),
        // A flat config names itself; its `name` is trimmed like the request's would be.
        None => {
            let name = config.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
            if !name.is_empty() {
                config.insert("name".to_string(), name.clone());
            }
            name
        }
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("Connector config is missing the name"));
    }
    match config.get("name") {
        Some(included) if *included != name => {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({included}) doesn't match connector name in the URL ({name})"
            )));
        }
        Some(_) => {}
        None => {
            config.insert("name".to_string(), name.clone());
        }
    }
    Ok(CreateConnector { name, config, initial_state })
}

fn parse_target_state(state: &str) -> Result<TargetState, ApiError> {
    match state.to_ascii_uppercase().as_str() {
        "RUNNING" => Ok(TargetState::Running),
        "PAUSED" => Ok(TargetState::Paused),
        "STOPPED" => Ok(TargetState::Stopped),
        _ => {
            Err(ApiError::bad_request(format!("Invalid initial_state {state:?}: expected RUNNING, PAUSED or STOPPED")))
        }
    }
}

fn body_text(body: &[u8]) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("Request body is not UTF-8 text"))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Decides between JSON, properties and flattened properties. A body that starts like JSON is JSON (its parse
/// error is the useful message); a body with line breaks is a properties file; a single line is what curl's
/// `--data @file` made of one.
fn recognize(body: &[u8], url: UrlContext<'_>) -> Result<Body, ApiError> {
    let text = body_text(body)?.trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "Request body is empty; send the connector configuration as JSON (or a Java properties file with \
             curl --data-binary @file)",
        ));
    }
    if text.starts_with(['{', '[', '"']) {
        return serde_json::from_str(text)
            .map(Body::Json)
            .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}")));
    }
    if text.contains(['\n', '\r']) {
        let config =
            parse_properties(text).map_err(|e| ApiError::bad_request(format!("{NOT_JSON_NOR_PROPERTIES} ({e})")))?;
        if config.is_empty() {
            return Err(ApiError::bad_request(NOT_JSON_NOR_PROPERTIES));
        }
        return Ok(Body::Properties(config));
    }
    unflatten(text, url).map(Body::Properties)
}

/// A JSON config object as a string map. Scalars are accepted as strings (Kafka Connect's Jackson coerces them
/// too); a `null` value means "not set", which is what Kafka Connect makes of it.
fn json_config(map: Map<String, Value>) -> Result<ConfigMap, ApiError> {
    let mut config = ConfigMap::new();
    for (key, value) in map {
        if !value.is_null() {
            let value = json_scalar(&key, value)?;
            config.insert(key, value);
        }
    }
    Ok(config)
}

fn json_scalar(key: &str, value: Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => {
            Err(ApiError::bad_request(format!("Value of configuration key {key} must be a string")))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Java properties (java.util.Properties#load)
// ---------------------------------------------------------------------------------------------------------------

/// Parses a Java properties file: `#`/`!` comments, `=`, `:` or whitespace separators, backslash line
/// continuations and escapes (`\t`, `\n`, `\uXXXX`, ...). A repeated key keeps its last value, as in Java.
pub(crate) fn parse_properties(text: &str) -> Result<ConfigMap, String> {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n');
    let mut config = ConfigMap::new();
    while let Some(line) = lines.next() {
        let line = line.trim_start_matches(is_properties_space);
        // A comment line never continues, even when it ends with a backslash.
        if line.is_empty() || line.starts_with(['#', '!']) {
            continue;
        }
        let mut logical = String::new();
        let mut current = line;
        loop {
            let trailing_backslashes = current.chars().rev().take_while(|c| *c == '\\').count();
            if trailing_backslashes % 2 == 1 {
                logical.push_str(&current[..current.len() - 1]);
                match lines.next() {
                    Some(next) => current = next.trim_start_matches(is_properties_space),
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let (key, value) = split_property(&logical);
        config.insert(unescape(key)?, unescape(value)?);
    }
    Ok(config)
}

fn is_properties_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Splits a logical line at the first unescaped separator; returns the still escaped key and value.
fn split_property(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_properties_space(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches(is_properties_space);
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start_matches(is_properties_space);
    }
    (key, rest)
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| format!("malformed \\uxxxx escape: \\u{hex}"))?;
                // A lone surrogate half cannot be a char; Java would keep it, we substitute.
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Flattened properties (curl --data @file)
// ---------------------------------------------------------------------------------------------------------------

/// Longest body we try to unflatten; a properties file for one connector is far smaller.
const MAX_FLATTENED_LEN: usize = 64 * 1024;
/// Complete segmentations we are willing to validate before calling the body ambiguous.
const MAX_CANDIDATES: usize = 256;
/// Longest connector class name we probe for when looking for `connector.class=<class>`.
const MAX_CLASS_LEN: usize = 256;

/// Keys every connector may have, in case the registry's common definition leaves some out. Unknown to the
/// registry means no type check, nothing more.
const COMMON_KEYS: &[&str] = &[
    "name",
    "connector.class",
    "tasks.max",
    "key.converter",
    "value.converter",
    "header.converter",
    "transforms",
    "predicates",
    "config.action.reload",
    "errors.retry.timeout",
    "errors.retry.delay.max.ms",
    "errors.tolerance",
    "errors.log.enable",
    "errors.log.include.messages",
    "topics",
    "topics.regex",
    "errors.deadletterqueue.topic.name",
    "errors.deadletterqueue.topic.replication.factor",
    "errors.deadletterqueue.context.headers.enable",
    "exactly.once.support",
    "transaction.boundary",
    "transaction.boundary.interval.ms",
    "offsets.storage.topic",
    "topic.creation.groups",
];

/// Families of keys whose suffix is free (`value.converter.schemas.enable`, `transforms.route.type`, ...).
const KEY_PREFIXES: &[&str] = &[
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "transforms.",
    "predicates.",
    "producer.override.",
    "consumer.override.",
    "admin.override.",
    "topic.creation.",
];

/// Whether a `(key, value)` pair can be right, beyond the key's type.
pub(crate) type ValueCheck = Box<dyn Fn(&str, &str) -> bool>;

/// What keys to look for in a flattened body, and what each key's value may look like.
pub(crate) struct KeyCatalog {
    /// Known keys with their definition when the registry has one.
    pub keys: HashMap<String, Option<ConfigKey>>,
    pub prefixes: Vec<String>,
    /// An extra check of a `(key, value)` (e.g. that `connector.class` names a known plugin).
    pub value_check: ValueCheck,
}

/// Recovers a properties file from which curl stripped the newlines, using the known keys of the connector it
/// names: every key must be followed by `=`, values run up to the next key. Values may contain `=` or text that
/// looks like a key, so every way of splitting is tried (pruned by the keys' types) and the answer must be the
/// single best one (see [`segment`]).
fn unflatten(text: &str, url: UrlContext<'_>) -> Result<ConfigMap, ApiError> {
    if text.len() > MAX_FLATTENED_LEN {
        return Err(ApiError::bad_request(NOT_JSON_NOR_PROPERTIES));
    }
    let catalog = registry_catalog(text, url);
    let validates = |config: &ConfigMap| {
        let mut config = config.clone();
        if let Some(name) = url.name {
            config.entry("name".to_string()).or_insert_with(|| name.to_string());
        }
        if let Some(plugin) = url.plugin {
            config.entry("connector.class".to_string()).or_insert_with(|| plugin.to_string());
        }
        registry::validate(&config).error_count == 0
    };
    match segment(text, &catalog, &validates) {
        Segmentation::One(config) => Ok(config),
        Segmentation::None => Err(ApiError::bad_request(NOT_JSON_NOR_PROPERTIES)),
        Segmentation::Ambiguous(ways) => Err(ApiError::bad_request(format!(
            "Request body looks like a Java properties file whose newlines were stripped (curl --data @file does \
             that), but it cannot be split into key=value pairs unambiguously ({ways} ways fit). Send properties \
             files with --data-binary @file (or send JSON)"
        ))),
    }
}

/// The catalog for a flattened body: common keys of both connector types, plus the own keys of every plugin
/// that the text after a `connector.class=` (or the URL) could name.
fn registry_catalog(text: &str, url: UrlContext<'_>) -> KeyCatalog {
    let mut keys: HashMap<String, Option<ConfigKey>> = HashMap::new();
    let mut add = |key: &ConfigKey| {
        keys.insert(key.name.to_string(), Some(key.clone()));
    };
    for connector_type in [ConnectorType::Source, ConnectorType::Sink] {
        registry::common_config_def(connector_type).keys.iter().for_each(&mut add);
    }
    let mut classes: BTreeSet<&str> = url.plugin.into_iter().collect();
    let marker = "connector.class";
    for (at, _) in text.match_indices(marker) {
        let rest = text[at + marker.len()..].trim_start_matches([' ', '\t']);
        let Some(rest) = rest.strip_prefix('=') else { continue };
        let rest = rest.trim_start_matches([' ', '\t']);
        classes.extend(
            rest.char_indices()
                .map(|(i, c)| &rest[..i + c.len_utf8()])
                .take_while(|prefix| prefix.len() <= MAX_CLASS_LEN)
                .filter(|prefix| registry::connector(prefix).is_some()),
        );
    }
    let known_class = !classes.is_empty();
    let mut seen = BTreeSet::new();
    for class in classes {
        if let Some(connector) = registry::connector(class)
            && seen.insert(connector.class_name())
        {
            connector.config_def().keys.iter().for_each(&mut add);
        }
    }
    for key in COMMON_KEYS {
        keys.entry(key.to_string()).or_insert(None);
    }
    KeyCatalog {
        keys,
        prefixes: KEY_PREFIXES.iter().map(|p| p.to_string()).collect(),
        // With no known class in sight, let the split through: the service's "unknown connector class" answer
        // is the helpful one.
        value_check: Box::new(move |key, value| {
            key != "connector.class" || !known_class || registry::connector(value).is_some()
        }),
    }
}

/// The outcome of splitting a flattened body.
#[derive(Debug, PartialEq)]
pub(crate) enum Segmentation {
    /// No split fits.
    None,
    /// The one best split: of the splits that validate, the only one that leaves the fewest `key=` texts inside
    /// values. When none validates, the best split that fits the keys' types, if only one is best (then the
    /// service's validation tells the user the precise problems, which beats a generic 400).
    One(ConfigMap),
    /// This many splits (at least) are equally good.
    Ambiguous(usize),
}

/// A place in the text where a known key followed by `=` starts.
#[derive(Debug)]
struct KeyAt {
    start: usize,
    key: String,
    value_start: usize,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Every `<key>=` in the text, taking at each `=` the longest key that ends there (so `s3.bucket.name=` is one
/// key, not `name=` glued to a value ending in `s3.bucket.`).
fn find_keys(text: &str, catalog: &KeyCatalog) -> Vec<KeyAt> {
    let mut found = Vec::new();
    for (eq, _) in text.match_indices('=') {
        let key_end = text[..eq].trim_end_matches([' ', '\t']).len();
        let before = &text[..key_end];
        let mut best: Option<usize> =
            catalog.keys.keys().filter(|key| before.ends_with(key.as_str())).map(|key| key_end - key.len()).min();
        // A prefixed key: `<prefix><suffix>` where the suffix is made of key characters.
        let run_start = before.trim_end_matches(is_key_char).len();
        let run = &before[run_start..];
        for prefix in &catalog.prefixes {
            if let Some((offset, _)) =
                run.match_indices(prefix.as_str()).find(|(offset, _)| offset + prefix.len() < run.len())
            {
                let start = run_start + offset;
                best = Some(best.map_or(start, |b| b.min(start)));
            }
        }
        if let Some(start) = best {
            let value_start = eq + 1 + text[eq + 1..].len() - text[eq + 1..].trim_start_matches([' ', '\t']).len();
            found.push(KeyAt { start, key: text[start..key_end].to_string(), value_start });
        }
    }
    found
}

/// Could `value` be a value of `key`? Only checks that are certain: numbers, booleans, enumerations, class names.
fn plausible(catalog: &KeyCatalog, key: &str, value: &str) -> bool {
    if !(catalog.value_check)(key, value) {
        return false;
    }
    let Some(Some(def)) = catalog.keys.get(key) else { return true };
    let value = value.trim();
    // An empty value means "unset" to Kafka Connect's parser for most types; leave it to validation.
    if value.is_empty() {
        return true;
    }
    let typed = match def.config_type {
        ConfigType::Int | ConfigType::Short | ConfigType::Long => value.parse::<i64>().is_ok(),
        ConfigType::Double => value.parse::<f64>().is_ok(),
        ConfigType::Boolean => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
        ConfigType::Class => !value.contains(['=', ' ', '\t']),
        ConfigType::String | ConfigType::List | ConfigType::Password => true,
    };
    let allowed = match &def.validator {
        Some(Validator::OneOf(options)) => options.iter().any(|o| o.eq_ignore_ascii_case(value)),
        Some(Validator::ValidString(options)) => options.contains(&value),
        _ => true,
    };
    typed && allowed
}

/// Splits a flattened properties text. A split starts with a key at the very beginning (after a leading
/// comment, if the text starts with `#` or `!`), uses every key at most once, and lets each value run to the
/// next chosen key; unchosen keys are text inside a value. Such text is rare in real files while optional keys
/// after free-form values are common, so the best split is the one that leaves the fewest keys unchosen.
pub(crate) fn segment(text: &str, catalog: &KeyCatalog, validates: &dyn Fn(&ConfigMap) -> bool) -> Segmentation {
    let keys = find_keys(text, catalog);
    let may_skip_comment = text.starts_with(['#', '!']);
    let mut search =
        Search { text, catalog, keys: &keys, validates, visited: 0, valid: Best::default(), fitting: Best::default() };
    for (first, key) in keys.iter().enumerate() {
        if key.start == 0 || may_skip_comment {
            // Keys before the first chosen one are inside the comment.
            search.extend(&mut vec![first], first);
        }
    }
    let exhaustive = search.visited < MAX_CANDIDATES;
    // Choosing every key is a single split, so a best split at level 0 is unique even if the search was cut.
    match (search.valid, search.fitting) {
        (Best { count: 1, skipped, config: Some(config) }, _) if exhaustive || skipped == 0 => {
            Segmentation::One(config)
        }
        (Best { count: 0, .. }, Best { count: 1, skipped, config: Some(config) }) if exhaustive || skipped == 0 => {
            Segmentation::One(config)
        }
        (_, Best { count: 0, .. }) => Segmentation::None,
        (Best { count: 0, .. }, fitting) => Segmentation::Ambiguous(fitting.count.max(2)),
        (valid, _) => Segmentation::Ambiguous(valid.count.max(2)),
    }
}

/// The best splits seen so far: fewest skipped keys, how many share that, and the first of them.
#[derive(Debug)]
struct Best {
    skipped: usize,
    count: usize,
    config: Option<ConfigMap>,
}

impl Default for Best {
    fn default() -> Self {
        Best { skipped: usize::MAX, count: 0, config: None }
    }
}

impl Best {
    fn offer(&mut self, skipped: usize, config: &ConfigMap) {
        if skipped < self.skipped {
            *self = Best { skipped, count: 1, config: Some(config.clone()) };
        } else if skipped == self.skipped {
            self.count += 1;
        }
    }
}

/// Depth-first search over splits, nearest next key first, cut off where it cannot match the best valid split.
struct Search<'a> {
    text: &'a str,
    catalog: &'a KeyCatalog,
    keys: &'a [KeyAt],
    validates: &'a dyn Fn(&ConfigMap) -> bool,
    /// Complete splits looked at; bounded by [`MAX_CANDIDATES`].
    visited: usize,
    valid: Best,
    fitting: Best,
}

impl Search<'_> {
    /// `chosen` holds indexes into `keys`, the last one's value still open; `skipped` counts unchosen keys so far.
    fn extend(&mut self, chosen: &mut Vec<usize>, skipped: usize) {
        let Some(&last) = chosen.last() else { return };
        let current = &self.keys[last];
        for next in last + 1..self.keys.len() {
            let skipped = skipped + (next - last - 1);
            if self.visited >= MAX_CANDIDATES || skipped > self.valid.skipped {
                return;
            }
            let candidate = &self.keys[next];
            if candidate.start < current.value_start || chosen.iter().any(|&i| self.keys[i].key == candidate.key) {
                continue;
            }
            let value = self.text[current.value_start..candidate.start].trim_end();
            if plausible(self.catalog, &current.key, value) {
                chosen.push(next);
                self.extend(chosen, skipped);
                chosen.pop();
            }
        }
        // Or the value runs to the end of the text.
        let skipped = skipped + (self.keys.len() - 1 - last);
        if self.visited < MAX_CANDIDATES && skipped <= self.valid.skipped {
            let value = self.text[current.value_start..].trim_end();
            if plausible(self.catalog, &current.key, value) {
                self.complete(chosen, skipped);
            }
        }
    }

    fn complete(&mut self, chosen: &[usize], skipped: usize) {
        let mut config = ConfigMap::new();
        for (n, &i) in chosen.iter().enumerate() {
            let key = &self.keys[i];
            let end = chosen.get(n + 1).map_or(self.text.len(), |&next| self.keys[next].start);
            config.insert(key.key.clone(), self.text[key.value_start..end].trim_end().to_string());
        }
        self.visited += 1;
        self.fitting.offer(skipped, &config);
        if (self.validates)(&config) {
            self.valid.offer(skipped, &config);
        }
    }
}

#[cfg(test)]
mod tests;
