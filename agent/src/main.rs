//! `sluice-agent`: runs an agent until SIGTERM/SIGINT, then stops its tasks gracefully (final offsets, Goodbye).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sluice agent: the stateless data plane that runs the source and sink tasks the control plane assigns to it.
#[derive(Debug, Parser)]
#[command(name = "sluice-agent", version, about, long_about = None)]
struct Args {
    /// Control-plane replicas to connect to, comma-separated (e.g. `http://cp1:9090,http://cp2:9090`).
    /// The agent picks any of them and rotates on failure. `https://` when the control plane serves TLS.
    #[arg(long, env = "SLUICE_CONTROL_PLANE", value_delimiter = ',', required = true)]
    control_plane: Vec<String>,

    /// PEM file with the CA certificate(s) that signed the control plane's gRPC certificate, trusted for
    /// `https://` addresses. Without it, `https://` addresses are checked against the bundled Mozilla roots.
    #[arg(long, env = "SLUICE_TLS_CA")]
    tls_ca: Option<PathBuf>,

    /// PEM client certificate (with --tls-key) presented to `https://` control planes that authenticate agents by
    /// mutual TLS (`--agent-tls-client-ca`); its subject CN must be allowed this agent's id.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The cluster's join token, for control planes started with `--agent-token`.
    #[arg(long, env = "SLUICE_AGENT_TOKEN", hide_env_values = true)]
    agent_token: Option<String>,

    /// Stable identity of this agent; reconnecting with the same id gets its assignment back. Default: host name.
    #[arg(long, env = "SLUICE_AGENT_ID")]
    agent_id: Option<String>,

    /// Worker properties file (Kafka Connect's `worker.properties`: bootstrap.servers, converters,
    /// offset.flush.interval.ms, producer.*, consumer.*).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,

    /// Most tasks this agent accepts; 0 means unlimited.
    #[arg(long, env = "SLUICE_CAPACITY", default_value_t = 0)]
    capacity: u32,

    /// Reported as `worker_id` in Kafka Connect status answers (e.g. `10.0.0.5:8083`). Default: the agent id.
    #[arg(long, env = "SLUICE_WORKER_ID")]
    worker_id: Option<String>,

    /// Address to serve Prometheus `/metrics`, `/health` and `/admin/loggers` on (e.g. `0.0.0.0:9464`). Off when
    /// absent.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,

    /// Require `Authorization: Bearer <token>` on the metrics port (every path but `/health`). A --metrics-listen
    /// address other than loopback needs this or --metrics-basic-auth.
    #[arg(long, env = "SLUICE_METRICS_AUTH_TOKEN", hide_env_values = true)]
    metrics_auth_token: Option<String>,

    /// Require HTTP basic credentials `user:password` on the metrics port (every path but `/health`).
    #[arg(long, env = "SLUICE_METRICS_BASIC_AUTH", hide_env_values = true)]
    metrics_basic_auth: Option<String>,

    /// Log filter in RUST_LOG syntax (e.g. `info`, `sluice_agent=debug,rdkafka=warn`).
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    sluice_agent::allocator::tune();
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(run());
    // By now the graceful stop is done (tasks stopped, offsets committed, goodbye said). A Kafka client still closing
    // on a blocking thread (librdkafka leaving a group it has not finished joining can take tens of seconds) must not
    // keep the process alive: dropping the runtime would wait for it without end.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    EnvFilter::try_new(&args.log).with_context(|| format!("invalid log filter `{}`", args.log))?;
    // Levels change at run time when the control plane pushes cluster-wide ones (`?scope=cluster`).
    sluice_logging::set_crates(&[vec!["sluice_agent", "sluice_logging"], sluice_logging::plugin_crates()].concat());
    sluice_logging::init(&args.log, true);

    let worker_config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the worker config {}", path.display()))?;
            sluice_agent::parse_properties(&text)
        }
        None => Default::default(),
    };
    let agent_id = match args.agent_id {
        Some(id) => id,
        None => hostname::get().context("cannot read the host name; pass --agent-id")?.to_string_lossy().into_owned(),
    };
    let tls_ca = match &args.tls_ca {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("cannot read the TLS CA file {}", path.display()))?;
            // Without a certificate nothing would be trusted and every connection would fail later, less clearly.
            anyhow::ensure!(
                String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"),
                "the TLS CA file {} holds no PEM certificate",
                path.display()
            );
            Some(pem)
        }
        None => None,
    };
    let client_identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read(cert).with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
            let key_pem = std::fs::read(key).with_context(|| format!("cannot read --tls-key {}", key.display()))?;
            anyhow::ensure!(
                String::from_utf8_lossy(&cert_pem).contains("-----BEGIN CERTIFICATE-----"),
                "--tls-cert {} holds no PEM certificate",
                cert.display()
            );
            anyhow::ensure!(
                String::from_utf8_lossy(&key_pem).contains("PRIVATE KEY-----"),
                "--tls-key {} holds no PEM private key",
                key.display()
            );
            Some(sluice_agent::ClientIdentity { cert_pem, key_pem })
        }
        _ => None,
    };
    let opts = sluice_agent::AgentOptions {
        control_plane: args.control_plane,
        tls_ca,
        client_identity,
        agent_token: args.agent_token.map(sluice_agent::AgentToken::new),
        agent_id,
        worker_config,
        capacity: args.capacity,
        worker_id: args.worker_id,
        metrics_listen: args.metrics_listen,
        metrics_auth: sluice_agent::MetricsAuth::new(args.metrics_auth_token, args.metrics_basic_auth)
            .map_err(anyhow::Error::msg)?,
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    sluice_agent::run(opts, shutdown).await?;
    Ok(())
}

/// SIGTERM or SIGINT → graceful shutdown; a second signal exits at once.
async fn cancel_on_signal(shutdown: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("signal received, shutting down gracefully");
    shutdown.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal received, exiting now");
    std::process::exit(130);
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the agent");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
