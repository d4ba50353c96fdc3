//! The local S3 server (SeaweedFS, `deploy/local/s3`) for the S3 sink's tests: its endpoint and credentials
//! (`SLUICE_TEST_S3_*` from `deploy/local/s3 env`, else the script is run), and a signed client to look at buckets.

use std::process::Command;

use anyhow::{Context, bail};
use sluice_connector_s3::client::{Credentials, S3Client};

use crate::services::repo_root;

/// Endpoint, credentials and region of the S3 server.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The script: this repo's `deploy/local/s3`, or `SLUICE_S3_SCRIPT`.
pub fn s3_script() -> String {
    var("SLUICE_S3_SCRIPT").unwrap_or_else(|| repo_root().join("deploy/local/s3").display().to_string())
}

impl S3Server {
    /// `SLUICE_TEST_S3_ENDPOINT` and friends when set, else `deploy/local/s3 up` and its `env`.
    pub fn ensure() -> anyhow::Result<S3Server> {
        if let Some(endpoint) = var("SLUICE_TEST_S3_ENDPOINT") {
            return Ok(S3Server {
                endpoint,
                access_key: var("SLUICE_TEST_S3_ACCESS_KEY").unwrap_or_else(|| "sluice".into()),
                secret_key: var("SLUICE_TEST_S3_SECRET_KEY").unwrap_or_else(|| "sluice-secret".into()),
                region: var("SLUICE_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            });
        }
        let script = s3_script();
        let up = Command::new(&script).arg("up").status().with_context(|| format!("running {script} up"))?;
        if !up.success() {
            bail!("{script} up failed");
        }
        let out = Command::new(&script).arg("env").output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut found = std::collections::HashMap::new();
        for word in text.split_whitespace() {
            if let Some((k, v)) = word.split_once('=') {
                found.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        let get = |k: &str| found.get(k).cloned().with_context(|| format!("{script} env printed no {k}"));
        Ok(S3Server {
            endpoint: get("SLUICE_TEST_S3_ENDPOINT")?,
            access_key: get("SLUICE_TEST_S3_ACCESS_KEY")?,
            secret_key: get("SLUICE_TEST_S3_SECRET_KEY")?,
            region: get("SLUICE_TEST_S3_REGION")?,
        })
    }

    /// The standard AWS variables an agent needs to reach this server with a config without `store.url`.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", self.region.clone()),
        ]
    }

    pub fn client(&self, bucket: &str) -> anyhow::Result<S3Client> {
        let creds = Credentials {
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            session_token: None,
        };
        Ok(S3Client::new(self.endpoint.clone(), self.region.clone(), bucket.to_string(), creds)?)
    }

    /// A new bucket (created).
    pub async fn bucket(&self, bucket: &str) -> anyhow::Result<S3Client> {
        let client = self.client(bucket)?;
        client.create_bucket().await.with_context(|| format!("creating bucket {bucket}"))?;
        Ok(client)
    }

    /// Deletes a bucket with everything in it (SeaweedFS gives each bucket its own volumes: tests clean up).
    pub async fn delete_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let client = self.client(bucket)?;
        for (key, id) in client.list_multipart("").await? {
            client.abort_multipart(&key, &id).await?;
        }
        for key in client.list_keys("").await? {
            client.delete_object(&key).await?;
        }
        client.delete_bucket().await?;
        Ok(())
    }

    /// Runs `deploy/local/s3 <command>` (restart, kill, up).
    pub fn run(command: &str) -> anyhow::Result<()> {
        let script = s3_script();
        let status = Command::new(&script).arg(command).status()?;
        if !status.success() {
            bail!("{script} {command} failed");
        }
        Ok(())
    }
}

/// An S3 bucket name from a test's unique name: lowercase letters, digits and dashes, 3-63 characters.
pub fn bucket_name(unique: &str) -> String {
    let mut s: String =
        unique.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    s.truncate(63);
    s.trim_matches('-').to_string()
}
