//! Third-party clients the tests drive Sluice with, installed on first use by the scripts in
//! `integration-tests/tools/`: grpcurl, and a Python venv with schemathesis and kafka-connect-py.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::services::repo_root;

/// Runs `integration-tests/tools/<script>` and returns the path it prints on its last line.
pub fn install(script: &str) -> anyhow::Result<PathBuf> {
    let script = repo_root().join("integration-tests/tools").join(script);
    let output = Command::new(&script).output().with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    ensure!(path.exists(), "{} printed {path:?}, which does not exist", script.display());
    Ok(path)
}

/// The `bin` directory of the Python venv with schemathesis and kafka-connect-py (installed on first use).
pub async fn python_tools() -> anyhow::Result<PathBuf> {
    tokio::task::spawn_blocking(|| install("install-python-tools")).await?
}

/// What a command printed.
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn of(output: std::process::Output) -> Output {
        Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// grpcurl against one plaintext address.
pub struct Grpcurl {
    pub program: PathBuf,
    pub address: String,
}

impl Grpcurl {
    pub async fn new(address: String) -> anyhow::Result<Grpcurl> {
        let program = tokio::task::spawn_blocking(|| install("install-grpcurl")).await??;
        Ok(Grpcurl { program, address })
    }

    /// `grpcurl -plaintext [-d body] ADDRESS METHOD`.
    pub fn run(&self, method: &str, body: &Value) -> anyhow::Result<Output> {
        let output = Command::new(&self.program)
            .args(["-plaintext", "-max-time", "20", "-d", &body.to_string()])
            .arg(&self.address)
            .arg(method)
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        Ok(Output::of(output))
    }

    /// Expects success and a JSON answer.
    pub fn call(&self, method: &str, body: &Value) -> anyhow::Result<Value> {
        let out = self.run(method, body)?;
        if !out.success {
            bail!("grpcurl {method} {body} failed: {}{}", out.stdout, out.stderr);
        }
        serde_json::from_str(&out.stdout).with_context(|| format!("grpcurl {method}: not JSON: {}", out.stdout))
    }

    /// Expects failure; returns grpcurl's report (`Code: NotFound`, `Message: ...`).
    pub fn fail(&self, method: &str, body: &Value) -> anyhow::Result<String> {
        let out = self.run(method, body)?;
        ensure!(!out.success, "grpcurl {method} {body} should have failed: {}", out.stdout);
        Ok(format!("{}{}", out.stdout, out.stderr))
    }
}
