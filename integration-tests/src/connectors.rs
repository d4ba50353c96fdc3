//! Connector configs used by the tests (the FileStream connectors, by their Kafka Connect aliases).

use std::path::Path;

use serde_json::{Value, json};

/// `FileStreamSource` reading `file` into `topic`.
pub fn file_source(file: &Path, topic: &str) -> Value {
    json!({
        "connector.class": "FileStreamSource",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topic": topic,
    })
}

/// `FileStreamSink` writing `topics` into `file`.
pub fn file_sink(file: &Path, topics: &str) -> Value {
    json!({
        "connector.class": "FileStreamSink",
        "tasks.max": "1",
        "file": file.display().to_string(),
        "topics": topics,
    })
}
