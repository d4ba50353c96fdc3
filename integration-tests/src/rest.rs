//! A small client for the Kafka Connect-compatible REST API.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use crate::wait::wait_until;

/// An HTTP answer: status, raw body, the body parsed as JSON when it is JSON, and the `Location` header.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub json: Option<Value>,
    pub location: Option<String>,
}

impl Reply {
    /// The JSON body, or an error that shows what came back instead.
    pub fn json(&self) -> anyhow::Result<&Value> {
        self.json.as_ref().with_context(|| format!("expected a JSON body, got HTTP {}: {:?}", self.status, self.body))
    }

    /// Fails unless the status is `status`.
    pub fn expect_status(&self, status: u16, what: &str) -> anyhow::Result<&Self> {
        if self.status != status {
            bail!("{what}: expected HTTP {status}, got {}: {}", self.status, self.body);
        }
        Ok(self)
    }

    /// Checks a Kafka Connect error answer: HTTP `status`, body `{"error_code": status, "message": ...}`;
    /// returns the message.
    pub fn expect_error(&self, status: u16, what: &str) -> anyhow::Result<String> {
        self.expect_status(status, what)?;
        let json = self.json().with_context(|| format!("{what}: error body"))?;
        if json["error_code"].as_u64() != Some(u64::from(status)) {
            bail!("{what}: expected error_code {status} in the body, got {json}");
        }
        let Some(message) = json["message"].as_str() else {
            bail!("{what}: error body has no string `message`: {json}");
        };
        Ok(message.to_string())
    }
}

/// REST client bound to one base URL, e.g. `http://127.0.0.1:8083`.
#[derive(Clone)]
pub struct RestClient {
    base: String,
    http: reqwest::Client,
}

impl RestClient {
    pub fn new(base: impl Into<String>) -> RestClient {
        // Longer than the control plane's own 30 s request deadline, so a slow request shows the server's answer.
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(35)).build().expect("cannot build an HTTP client");
        RestClient { base: base.into().trim_end_matches('/').to_string(), http }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional JSON body.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {}{path}", self.base))?;
        Self::reply(response).await
    }

    /// Sends raw bytes with the given content type (for malformed bodies).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body.into())
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        Self::reply(response).await
    }

    async fn reply(response: reqwest::Response) -> anyhow::Result<Reply> {
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(String::from);
        let body = response.text().await?;
        let json = serde_json::from_str(&body).ok();
        Ok(Reply { status, body, json, location })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::DELETE, path, None).await
    }

    /// `POST /connectors` with `{"name", "config"}`; expects 201 and returns the ConnectorInfo.
    pub async fn create_connector(&self, name: &str, config: &Value) -> anyhow::Result<Value> {
        let reply = self.post("/connectors", &serde_json::json!({"name": name, "config": config})).await?;
        reply.expect_status(201, &format!("POST /connectors {name}"))?;
        Ok(reply.json()?.clone())
    }

    /// `GET /connectors` as a list of names.
    pub async fn connector_names(&self) -> anyhow::Result<Vec<String>> {
        let reply = self.get("/connectors").await?;
        reply.expect_status(200, "GET /connectors")?;
        let names = reply.json()?.as_array().context("GET /connectors: not an array")?;
        Ok(names.iter().filter_map(|n| n.as_str().map(String::from)).collect())
    }

    /// `GET /connectors/{name}/status` if it answers 200.
    pub async fn status(&self, name: &str) -> anyhow::Result<Value> {
        let reply = self.get(&format!("/connectors/{name}/status")).await?;
        reply.expect_status(200, &format!("GET /connectors/{name}/status"))?;
        Ok(reply.json()?.clone())
    }

    /// Polls the status until the connector and all of its (at least one) tasks are in `state`.
    pub async fn wait_for_status(&self, name: &str, state: &str, timeout: Duration) -> anyhow::Result<Value> {
        self.wait_for_status_matching(name, &format!("{state} (connector and tasks)"), timeout, |status| {
            all_in_state(status, state)
        })
        .await
    }

    /// Polls the status until `accept` returns true; the last status seen is part of the timeout error.
    pub async fn wait_for_status_matching(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let last = std::sync::Mutex::new(None::<Value>);
        let result = wait_until(timeout, format!("connector {name} at {} to be {what}", self.base), || {
            let accept = &accept;
            let last = &last;
            async move {
                let status = self.status(name).await?;
                let ok = accept(&status);
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(status.clone());
                Ok(ok.then_some(status))
            }
        })
        .await;
        result.map_err(|e| {
            let last = last.lock().unwrap_or_else(|e| e.into_inner()).take();
            e.context(format!("last status seen: {}", last.map(|v| v.to_string()).unwrap_or_else(|| "none".into())))
        })
    }
}

/// True when the connector state and every task state (at least one task) equal `state`.
pub fn all_in_state(status: &Value, state: &str) -> bool {
    let tasks = status["tasks"].as_array();
    status["connector"]["state"] == state
        && tasks.is_some_and(|t| !t.is_empty() && t.iter().all(|task| task["state"] == state))
}

/// The `worker_id` of task `task` in a ConnectorStateInfo.
pub fn task_worker(status: &Value, task: u64) -> Option<String> {
    status["tasks"].as_array()?.iter().find(|t| t["id"].as_u64() == Some(task))?["worker_id"].as_str().map(String::from)
}

/// The `state` of task `task` in a ConnectorStateInfo.
pub fn task_state(status: &Value, task: u64) -> Option<String> {
    status["tasks"].as_array()?.iter().find(|t| t["id"].as_u64() == Some(task))?["state"].as_str().map(String::from)
}
