//! The Sluice agent: the stateless data plane. It holds one session with the control plane, runs the source and
//! sink tasks assigned over it, and reports their state and offsets back. Used by the `sluice-agent` binary and
//! embedded in the standalone mode.

pub mod allocator;
mod fence;
mod instance_lock;
mod lease;
mod metrics;
mod properties;
mod runtime;
mod session;
mod supervisor;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use metrics::MetricsAuth;
pub use properties::parse_properties;
pub use session::ClientIdentity;

/// The join token an agent presents (`--agent-token`); never printed.
#[derive(Clone)]
pub struct AgentToken(String);

impl AgentToken {
    pub fn new(token: impl Into<String>) -> AgentToken {
        AgentToken(token.into())
    }
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentToken([hidden])")
    }
}

/// How to run an agent.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Control-plane replicas (`http://host:port`, or `https://host:port` when the control plane serves its gRPC
    /// port over TLS); the agent connects to any of them, rotating on failure.
    pub control_plane: Vec<String>,
    /// PEM of the CA(s) that signed the control plane's certificate, for `https://` addresses; without it the
    /// bundled Mozilla (webpki) roots are trusted. Unused for `http://` addresses.
    pub tls_ca: Option<Vec<u8>>,
    /// The client certificate for `https://` control planes that authenticate agents by mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// The cluster's join token, for control planes that authenticate agents by token.
    pub agent_token: Option<AgentToken>,
    /// Stable identity: an agent that reconnects with the same id gets its assignment back.
    pub agent_id: String,
    /// The worker properties (`bootstrap.servers`, converters, `producer.*`, `consumer.*`, ...).
    pub worker_config: BTreeMap<String, String>,
    /// Most tasks accepted; 0 means unlimited.
    pub capacity: u32,
    /// Shown as `worker_id` in Kafka Connect status answers; defaults to the agent id.
    pub worker_id: Option<String>,
    /// Where to serve `/metrics`, `/health` and `/admin/loggers`; none when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// Credentials the metrics port requires (all but `/health`); a non-loopback `metrics_listen` needs them.
    pub metrics_auth: Option<MetricsAuth>,
}

/// Why an agent could not start. Once running, an agent never fails: it keeps reconnecting until shutdown.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no control-plane address given")]
    NoControlPlane,
    #[error("the agent id must not be empty")]
    EmptyAgentId,
    #[error("invalid control-plane address `{address}`")]
    InvalidAddress {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("invalid TLS settings for `{address}` (check --tls-ca)")]
    TlsConfig {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the agent token must be printable ASCII without spaces")]
    InvalidToken,
    #[error("the control plane refused this agent: {0}")]
    Refused(String),
    #[error("invalid worker configuration `{key}`: {message}")]
    WorkerConfig { key: String, message: String },
    #[error(
        "--metrics-listen {address} is reachable from other hosts: set --metrics-auth-token or --metrics-basic-auth, \
         or listen on a loopback address (127.0.0.1)"
    )]
    MetricsUnauthenticated { address: SocketAddr },
    #[error("cannot listen for metrics on {address}")]
    MetricsListen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs an agent until `shutdown` is cancelled, then stops its tasks, reports their final offsets, says Goodbye
/// and returns. Errors only for invalid options.
pub async fn run(opts: AgentOptions, shutdown: CancellationToken) -> Result<(), AgentError> {
    if opts.agent_id.trim().is_empty() {
        return Err(AgentError::EmptyAgentId);
    }
    let endpoints = opts
        .control_plane
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|address| {
            // Plain parsing first, so a malformed address is reported as such and not as a TLS problem.
            session::endpoint(address, None, None)
                .map_err(|source| AgentError::InvalidAddress { address: address.clone(), source })?;
            session::endpoint(address, opts.tls_ca.as_deref(), opts.client_identity.as_ref())
                .map_err(|source| AgentError::TlsConfig { address: address.clone(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(AgentError::NoControlPlane);
    }
    if opts.tls_ca.is_some() && !endpoints.iter().any(|e| e.uri().scheme_str() == Some("https")) {
        tracing::warn!("a TLS CA is given but no control-plane address is https://; it is not used");
    }
    if opts.client_identity.is_some() && !endpoints.iter().any(|e| e.uri().scheme_str() == Some("https")) {
        tracing::warn!("a client certificate is given but no control-plane address is https://; it is not used");
    }
    let authorization = match &opts.agent_token {
        Some(AgentToken(token)) => {
            let token = token.trim();
            if token.is_empty() || token.contains(' ') {
                return Err(AgentError::InvalidToken);
            }
            Some(format!("Bearer {token}").parse().map_err(|_| AgentError::InvalidToken)?)
        }
        None => None,
    };
    let worker = Arc::new(runtime::WorkerConfig::from_properties(opts.worker_config)?);
    let metrics = Arc::new(metrics::Metrics::default());
    // Stops the metrics endpoint when the agent returns, also on the error-free early exits.
    let metrics_shutdown = shutdown.child_token();
    let _metrics_guard = metrics_shutdown.clone().drop_guard();
    if let Some(address) = opts.metrics_listen {
        if !address.ip().is_loopback() && opts.metrics_auth.is_none() {
            return Err(AgentError::MetricsUnauthenticated { address });
        }
        let bound = metrics::serve(address, metrics.clone(), opts.metrics_auth.clone(), metrics_shutdown)
            .await
            .map_err(|source| AgentError::MetricsListen { address, source })?;
        info!(address = %bound, "serving /metrics, /health and /admin/loggers");
    }
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    // Once per process: a reconnect keeps it, a second process with the same --agent-id has another.
    let instance_id = format!("{:032x}", rand::random::<u128>());
    let replaces_instance = instance_lock::take(&opts.agent_id, &instance_id).unwrap_or_default();
    let identity = session::Identity {
        worker_id: opts.worker_id.filter(|w| !w.trim().is_empty()).unwrap_or_else(|| opts.agent_id.clone()),
        agent_id: opts.agent_id,
        host,
        capacity: opts.capacity,
        instance_id,
        replaces_instance,
    };
    info!(agent = %identity.agent_id, instance = %identity.instance_id, control_plane = ?opts.control_plane, "agent starting");
    let result = session::Agent::new(identity, authorization, endpoints, worker, metrics, shutdown).run().await;
    info!("agent stopped");
    result.map_err(AgentError::Refused)
}
