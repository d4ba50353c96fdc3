//! Tests of body recognition: JSON, Java properties, and the flattened properties curl's `--data @file` sends.

use std::collections::HashMap;

use sluice_connectors::ConfigMap;
use sluice_connectors::config::{ConfigKey, ConfigType, DefaultValue, Importance, Width};

use super::*;
use crate::api::ApiErrorKind;

fn map(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn key(name: &'static str, config_type: ConfigType) -> ConfigKey {
    ConfigKey {
        name,
        config_type,
        default: DefaultValue::Null,
        validator: None,
        importance: Importance::High,
        documentation: "",
        group: None,
        order: 0,
        width: Width::None,
        display_name: name,
    }
}

/// A catalog independent of the registry: `tasks.max` and `batch.size` are ints, the rest strings.
fn catalog(names: &[&'static str]) -> KeyCatalog {
    let mut keys: HashMap<String, Option<ConfigKey>> = HashMap::new();
    for name in names {
        let config_type = match *name {
            "tasks.max" | "batch.size" => ConfigType::Int,
            _ => ConfigType::String,
        };
        keys.insert(name.to_string(), Some(key(name, config_type)));
    }
    KeyCatalog {
        keys,
        prefixes: KEY_PREFIXES.iter().map(|p| p.to_string()).collect(),
        value_check: Box::new(|key, value| key != "connector.class" || value == "FileStreamSource"),
    }
}

const FILE_KEYS: &[&str] = &["name", "connector.class", "tasks.max", "file", "topic", "batch.size", "value.converter"];

/// The exact body of the seed's quickstart: `curl --data @file-source.properties`.
const SEED: &str =
    "name=file-sourceconnector.class=FileStreamSourcetasks.max=1file=/tmp/input.txttopic=file-input-topic";

fn seed_config() -> ConfigMap {
    map(&[
        ("name", "file-source"),
        ("connector.class", "FileStreamSource"),
        ("tasks.max", "1"),
        ("file", "/tmp/input.txt"),
        ("topic", "file-input-topic"),
    ])
}

fn has_topic(config: &ConfigMap) -> bool {
    config.contains_key("topic") && config.contains_key("connector.class")
}

// ---- Java properties ------------------------------------------------------------------------------------------

#[test]
fn properties_basic_separators_and_comments() {
    let text = "# comment\n! also a comment\n\nname=a\nconnector.class : FileStreamSource\ntopic   t1\n  \
                tasks.max=2\r\nempty=\n";
    assert_eq!(
        parse_properties(text),
        Ok(map(&[
            ("name", "a"),
            ("connector.class", "FileStreamSource"),
            ("topic", "t1"),
            ("tasks.max", "2"),
            ("empty", "")
        ]))
    );
}

#[test]
fn properties_continuations_and_escapes() {
    let text = concat!(
        "list=a,\\\n    b,\\\n    c\n",
        "key\\=with\\:seps=v\\tx\\u0041\\\\\n",
        "value.has=equals=inside\n",
        "# comment \\\nnot.continued=1",
    );
    assert_eq!(
        parse_properties(text),
        Ok(map(&[
            ("list", "a,b,c"),
            ("key=with:seps", "v\txA\\"),
            ("value.has", "equals=inside"),
            ("not.continued", "1"),
        ]))
    );
}

#[test]
fn properties_last_value_wins_and_bad_unicode_fails() {
    assert_eq!(parse_properties("a=1\na=2"), Ok(map(&[("a", "2")])));
    assert!(parse_properties("a=\\u12").is_err());
    assert!(parse_properties("a=\\uZZZZ").is_err());
}

#[test]
fn properties_body_for_every_endpoint() {
    let body = b"name=file-source\nconnector.class=FileStreamSource\ntasks.max=1\n\
                 file=/tmp/input.txt\ntopic=file-input-topic\n";
    assert_eq!(parse_config(body, UrlContext::default()), Ok(seed_config()));
    let create = parse_create(body).expect("create");
    assert_eq!(
        (create.name.as_str(), create.config, create.initial_state),
        ("file-source", seed_config(), TargetState::Running)
    );
    // Windows line ends, a BOM, and a name that needs trimming.
    let create = parse_create("\u{feff}name= x \r\nconnector.class=FileStreamSource\r\n".as_bytes()).expect("create");
    assert_eq!(create.name, "x");
}

// ---- JSON -----------------------------------------------------------------------------------------------------

#[test]
fn json_create_structured_and_flat() {
    let body = br#"{"name":"a","config":{"connector.class":"X","tasks.max":2,"x":true,"gone":null},
                    "initial_state":"stopped"}"#;
    let create = parse_create(body).expect("create");
    assert_eq!(create.name, "a");
    assert_eq!(create.config, map(&[("connector.class", "X"), ("name", "a"), ("tasks.max", "2"), ("x", "true")]));
    assert_eq!(create.initial_state, TargetState::Stopped);

    let flat = parse_create(br#"{"name":"b","connector.class":"X"}"#).expect("flat");
    assert_eq!((flat.name.as_str(), flat.config), ("b", map(&[("connector.class", "X"), ("name", "b")])));

    // The name inside the config is enough.
    let inner = parse_create(br#"{"config":{"name":"c"}}"#).expect("inner name");
    assert_eq!(inner.name, "c");
}

/// Asserts that a create body is a 400 whose message contains `text`.
fn assert_create_rejected(body: &[u8], text: &str) {
    match parse_create(body) {
        Err(ApiError { kind: ApiErrorKind::BadRequest, message }) => assert!(message.contains(text), "{message}"),
        other => panic!("expected a 400 containing {text:?}, got {other:?}"),
    }
}

#[test]
fn json_errors_are_bad_requests() {
    assert_create_rejected(b"{\"name\":", "Request body is not valid JSON");
    assert_create_rejected(br#"{"name":"a","config":{"k":{"nested":1}}}"#, "key k must be a string");
    assert_create_rejected(br#"{"name":"a","config":[]}"#, "must be a JSON object");
    assert_create_rejected(br#"{"name":"a","config":{},"initial_state":"SLEEPING"}"#, "SLEEPING");
    assert_create_rejected(br#"["a"]"#, "must be a JSON object");
    assert_create_rejected(b"   ", "Request body is empty");
    assert_create_rejected(&[0xff, 0xfe, 0x00], "UTF-8");
}

#[test]
fn create_name_rules() {
    let mismatch = create_request(Some("a".into()), map(&[("name", "b")]), TargetState::Running).map(|_| ());
    assert_eq!(
        mismatch,
        Err(ApiError::bad_request("Connector name configuration (b) doesn't match connector name in the URL (a)"))
    );
    let missing = create_request(Some("  ".into()), ConfigMap::new(), TargetState::Running).map(|_| ());
    assert_eq!(missing, Err(ApiError::bad_request("Connector config is missing the name")));
    let trimmed = create_request(Some(" a ".into()), map(&[("name", "a")]), TargetState::Running).expect("ok");
    assert_eq!(trimmed.config, map(&[("name", "a")]));
}

#[test]
fn patch_null_deletes() {
    let patch = parse_patch(br#"{"a":"1","b":null,"c":3}"#).expect("patch");
    assert_eq!(patch.get("a"), Some(&Some("1".to_string())));
    assert_eq!(patch.get("b"), Some(&None));
    assert_eq!(patch.get("c"), Some(&Some("3".to_string())));
    assert!(parse_patch(b"a=1").is_err());
}

// ---- flattened properties, with a catalog independent of the registry ------------------------------------------

#[test]
fn flattened_seed_splits_with_a_fixed_catalog() {
    assert_eq!(segment(SEED, &catalog(FILE_KEYS), &has_topic), Segmentation::One(seed_config()));
}

#[test]
fn flattened_longest_key_wins_at_each_equals() {
    let catalog = catalog(&["name", "s3.bucket.name", "connector.class", "topic"]);
    let text = "connector.class=FileStreamSources3.bucket.name=bkttopic=t";
    let expected = map(&[("connector.class", "FileStreamSource"), ("s3.bucket.name", "bkt"), ("topic", "t")]);
    assert_eq!(segment(text, &catalog, &has_topic), Segmentation::One(expected));
}

#[test]
fn flattened_values_may_contain_equals_and_prefixed_keys() {
    let text = "name=aconnector.class=FileStreamSourcetopic=tfile=/x?a=b==value.converter=J\
                value.converter.schemas.enable=false";
    let expected = map(&[
        ("name", "a"),
        ("connector.class", "FileStreamSource"),
        ("topic", "t"),
        ("file", "/x?a=b=="),
        ("value.converter", "J"),
        ("value.converter.schemas.enable", "false"),
    ]);
    assert_eq!(segment(text, &catalog(FILE_KEYS), &has_topic), Segmentation::One(expected));
}

#[test]
fn flattened_ambiguous_split_is_rejected() {
    // `file` takes any string, so the second `file=` could be part of the first value or start the real one;
    // both splits validate.
    let text = "connector.class=FileStreamSourcetopic=tname=afile=/tmp/afile=/tmp/b";
    assert_eq!(segment(text, &catalog(FILE_KEYS), &has_topic), Segmentation::Ambiguous(2));
}

#[test]
fn flattened_types_prune_impossible_splits() {
    // One `tasks.max=` must stay inside a value. Inside `tasks.max` itself (`1tasks.max=2`) is not an int, so
    // the only split is the one where the topic swallows it.
    let text = "connector.class=FileStreamSourcetopic=ttasks.max=1tasks.max=2";
    let expected = map(&[("connector.class", "FileStreamSource"), ("topic", "ttasks.max=1"), ("tasks.max", "2")]);
    assert_eq!(segment(text, &catalog(FILE_KEYS), &|_: &ConfigMap| true), Segmentation::One(expected));
}

#[test]
fn flattened_prefers_choosing_every_key() {
    // `file` takes any string, so it could swallow the optional `batch.size=100`; a real file rarely has that.
    let text = "name=aconnector.class=FileStreamSourcetopic=tfile=/tmp/abatch.size=100";
    let expected = map(&[
        ("name", "a"),
        ("connector.class", "FileStreamSource"),
        ("topic", "t"),
        ("file", "/tmp/a"),
        ("batch.size", "100"),
    ]);
    assert_eq!(segment(text, &catalog(FILE_KEYS), &has_topic), Segmentation::One(expected));
}

#[test]
fn flattened_single_fitting_split_is_kept_for_the_service_to_judge() {
    // Nothing validates (no topic), but only one split fits: the service will report the missing topic.
    let text = "name=aconnector.class=FileStreamSourcefile=/a";
    let expected = map(&[("name", "a"), ("connector.class", "FileStreamSource"), ("file", "/a")]);
    assert_eq!(segment(text, &catalog(FILE_KEYS), &has_topic), Segmentation::One(expected));
}

#[test]
fn flattened_leading_comment_is_skipped() {
    let text = "# Licensed to the ASF. See the NOTICE file distributed with this work.\
                name=aconnector.class=FileStreamSourcetopic=t";
    let expected = map(&[("name", "a"), ("connector.class", "FileStreamSource"), ("topic", "t")]);
    assert_eq!(segment(text, &catalog(FILE_KEYS), &has_topic), Segmentation::One(expected));
}

#[test]
fn flattened_garbage_does_not_split() {
    assert_eq!(segment("hello world", &catalog(FILE_KEYS), &has_topic), Segmentation::None);
    // Must start with a key.
    assert_eq!(segment("xname=a", &catalog(FILE_KEYS), &has_topic), Segmentation::None);
    // A repeated key cannot be split into distinct keys when the first must open the text.
    assert_eq!(segment("tasks.max=1tasks.max=2", &catalog(FILE_KEYS), &has_topic), Segmentation::None);
}

// ---- flattened properties through the registry (the connectors crate's real definitions) ----------------------

#[test]
fn seed_body_through_the_registry() {
    assert_eq!(parse_config(SEED.as_bytes(), UrlContext::default()), Ok(seed_config()));
    let create = parse_create(SEED.as_bytes()).expect("create");
    assert_eq!((create.name.as_str(), create.config), ("file-source", seed_config()));
}

#[test]
fn seed_body_with_license_header_and_aliases_through_the_registry() {
    let body = "# Licensed to the Apache Software Foundation (ASF) under one or more# contributor license agreements.\
                name=local-file-sinkconnector.class=FileStreamSinkConnectortasks.max=1file=test.sink.txt\
                topics=connect-test";
    let expected = map(&[
        ("name", "local-file-sink"),
        ("connector.class", "FileStreamSinkConnector"),
        ("tasks.max", "1"),
        ("file", "test.sink.txt"),
        ("topics", "connect-test"),
    ]);
    assert_eq!(parse_config(body.as_bytes(), UrlContext::default()), Ok(expected));
}

#[test]
fn flattened_config_for_put_and_validate_through_the_registry() {
    let put = "connector.class=FileStreamSourcefile=/tmp/input.txttopic=file-input-topic";
    let expected =
        map(&[("connector.class", "FileStreamSource"), ("file", "/tmp/input.txt"), ("topic", "file-input-topic")]);
    assert_eq!(parse_config(put.as_bytes(), UrlContext { name: Some("file-source"), plugin: None }), Ok(expected));

    let validate = "file=/tmp/input.txttopic=file-input-topic";
    let expected = map(&[("file", "/tmp/input.txt"), ("topic", "file-input-topic")]);
    let url = UrlContext { name: None, plugin: Some("FileStreamSource") };
    assert_eq!(parse_config(validate.as_bytes(), url), Ok(expected));
}

#[test]
fn flattened_unsplittable_body_explains_the_curl_pitfall() {
    let error = parse_config(b"this is not a config", UrlContext::default()).expect_err("rejected");
    assert_eq!(error.kind, ApiErrorKind::BadRequest);
    assert!(error.message.contains("--data-binary"), "{}", error.message);
    assert!(error.message.contains("strips newlines"), "{}", error.message);
}

#[test]
fn flattened_body_with_an_unknown_class_reaches_the_service() {
    // The service answers with the list of known plugins, which says more than "cannot parse".
    let body = "name=aconnector.class=com.example.Missingtasks.max=2";
    let expected = map(&[("name", "a"), ("connector.class", "com.example.Missing"), ("tasks.max", "2")]);
    assert_eq!(parse_config(body.as_bytes(), UrlContext::default()), Ok(expected));
}

#[test]
fn flattened_ambiguous_body_through_the_registry_is_rejected() {
    // Two `file=`: either the first file value swallows the second key, or the name swallows the first.
    let body = "connector.class=FileStreamSourcetopic=tname=afile=/tmp/afile=/tmp/b";
    let error = parse_config(body.as_bytes(), UrlContext::default()).expect_err("ambiguous");
    assert_eq!(error.kind, ApiErrorKind::BadRequest);
    assert!(error.message.contains("unambiguously"), "{}", error.message);
}
