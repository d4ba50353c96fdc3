//! Kafka and etcd: the shared instances started by the project's own scripts (`deploy/local/kafka up`,
//! `deploy/local/etcd up`), and private etcd servers for tests that must restart etcd without disturbing others.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::env::TestEnv;
use crate::net::{free_port, reachable};
use crate::process::Process;
use crate::wait::wait_until;

/// Addresses of the shared services.
#[derive(Debug, Clone)]
pub struct Services {
    /// Kafka bootstrap servers, e.g. `127.0.0.1:9092`.
    pub kafka: String,
    /// etcd endpoint URL, e.g. `http://127.0.0.1:2379`.
    pub etcd: String,
}

/// The repository root (the workspace), found from this crate's manifest directory: the one `cargo test` names at
/// run time, else the one at build time. (Cargo may reuse a test binary built from another checkout of the same
/// code in a shared target dir, whose build-time path can be gone.)
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

static SERVICES: OnceLock<Result<Services, String>> = OnceLock::new();

/// Once per test process: uses `SLUICE_TEST_KAFKA` / `SLUICE_TEST_ETCD` when both are set and reachable,
/// otherwise runs `deploy/local/kafka up` and `deploy/local/etcd up` (idempotent; they return when ready).
pub fn ensure_services() -> anyhow::Result<&'static Services> {
    SERVICES.get_or_init(|| start_services().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn start_services() -> anyhow::Result<Services> {
    let kafka_env = env_var("SLUICE_TEST_KAFKA");
    let etcd_env = env_var("SLUICE_TEST_ETCD");
    if let (Some(kafka), Some(etcd)) = (&kafka_env, &etcd_env)
        && reachable(kafka)
        && reachable(etcd)
    {
        return Ok(Services { kafka: kafka.clone(), etcd: etcd.clone() });
    }
    let kafka = kafka_env
        .unwrap_or_else(|| format!("127.0.0.1:{}", env_var("SLUICE_KAFKA_PORT").unwrap_or_else(|| "9092".into())));
    let etcd = etcd_env.unwrap_or_else(|| {
        format!("http://127.0.0.1:{}", env_var("SLUICE_ETCD_PORT").unwrap_or_else(|| "2379".into()))
    });
    run_script("kafka")?;
    run_script("etcd")?;
    if !reachable(&kafka) {
        bail!(
            "deploy/local/kafka up succeeded but nothing answers on {kafka} (SLUICE_TEST_KAFKA / SLUICE_KAFKA_PORT?)"
        );
    }
    if !reachable(&etcd) {
        bail!("deploy/local/etcd up succeeded but nothing answers on {etcd} (SLUICE_TEST_ETCD / SLUICE_ETCD_PORT?)");
    }
    Ok(Services { kafka, etcd })
}

fn run_script(service: &str) -> anyhow::Result<()> {
    let script = repo_root().join("deploy/local").join(service);
    eprintln!("[harness] {} up", script.display());
    let output =
        Command::new(&script).arg("up").output().with_context(|| format!("cannot run {} up", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} up failed ({}):\n{}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A private single-node etcd (`etcd` from PATH, Debian's etcd-server) on free ports with its data in the test's
/// directory: a test can stop, kill and restart it without touching the shared etcd other tests use.
pub struct EtcdServer {
    process: Option<Process>,
    label: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
}

impl EtcdServer {
    /// Starts it and returns once `/health` answers healthy.
    pub async fn start(env: &TestEnv, label: &str) -> anyhow::Result<EtcdServer> {
        let mut server = EtcdServer {
            process: None,
            label: label.to_string(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: env.path(&format!("{label}-data")),
        };
        // A free port may be taken between finding it and etcd binding it: then try other ports.
        for attempt in 1.. {
            match server.start_again(env).await {
                Ok(()) => break,
                Err(e) => {
                    let log = server.process.as_ref().map(Process::log_text).unwrap_or_default();
                    if attempt >= 3 || !log.contains("address already in use") {
                        return Err(e);
                    }
                    server.kill9();
                    let _ = std::fs::remove_dir_all(&server.data_dir);
                    (server.client_port, server.peer_port) = (free_port(), free_port());
                }
            }
        }
        Ok(server)
    }

    /// Client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts it (again) on the same ports with the same data; returns once healthy.
    pub async fn start_again(&mut self, env: &TestEnv) -> anyhow::Result<()> {
        if self.process.as_mut().is_some_and(|p| p.is_running()) {
            bail!("{} is already running", self.label);
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let program = std::env::var("ETCD").unwrap_or_else(|_| "etcd".into());
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&program);
        command.args([
            format!("--name={}", self.label),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}={peer}", self.label),
            "--initial-cluster-state=new".into(),
            format!("--initial-cluster-token={}", env.unique("it")),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ]);
        // ETCD_* variables would override flags (or make etcd refuse to start).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        self.process =
            Some(Process::spawn(env, &self.label, command).with_context(|| format!("cannot run `{program}`"))?);
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/health", self.endpoint());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let label = self.label.clone();
        let process = self.process.as_mut().context("not started")?;
        // A process that exited is a final answer (Some(Err)), not a "not yet".
        wait_until(Duration::from_secs(30), format!("{label} healthy at {url}"), || {
            let running = process.ensure_running();
            let http = http.clone();
            let url = url.clone();
            async move {
                if let Err(e) = running {
                    return Ok(Some(Err(e)));
                }
                let body: serde_json::Value = http.get(&url).send().await?.json().await?;
                Ok((body["health"] == "true").then_some(Ok(())))
            }
        })
        .await?
    }

    /// Graceful stop (SIGTERM) and wait for the exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.process.as_mut() {
            process.terminate(Duration::from_secs(30)).await?;
        }
        Ok(())
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(process) = self.process.as_mut() {
            process.kill9();
        }
    }

    /// Stop (SIGTERM) and start again with the same data, returning once healthy.
    pub async fn restart(&mut self, env: &TestEnv) -> anyhow::Result<()> {
        self.stop().await?;
        self.start_again(env).await
    }
}
