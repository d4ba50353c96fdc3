//! Starting a control-plane replica: store, mirror, leader election, agent streams, admin gRPC (with
//! reflection) and the REST gateway, all stopped by one cancellation token. Distributed mode runs it on etcd;
//! standalone mode on the embedded store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sluice_proto::admin::admin_service_server::AdminServiceServer;
use sluice_proto::agent::agent_service_server::AgentServiceServer;
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

use crate::agent_auth::AgentAuth;
use crate::api::ConnectApi;
use crate::connections::{ConnectionLimits, LimitedListener};
use crate::deadline::Deadline;
use crate::leader::{self, LeaderSettings};
use crate::model::Keys;
use crate::service::{ClusterIdSource, ConnectService};
use crate::sink_offsets::KafkaSinkOffsets;
use crate::store::{KvStore, mirror};
use crate::stream::{AgentStreamService, SessionSettings};

/// Everything a replica needs besides its store and listeners.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub cluster: String,
    pub replica_id: String,
    pub session: SessionSettings,
    pub leader_lease_ttl: Duration,
    /// Kafka bootstrap servers: `kafka_cluster_id` in `GET /`, and the consumer groups that hold sink offsets.
    pub kafka_bootstrap_servers: Option<String>,
    /// Time limit of one admin request (REST or gRPC).
    pub request_timeout: Duration,
    /// Credentials the REST gateway and the admin gRPC service require; `None`: no authentication.
    pub credentials: Option<crate::auth::Credentials>,
    /// The converters validate shows as defaults: the workers' (standalone knows them; a distributed control plane
    /// shows Sluice's defaults, which agents use unless their worker properties name others).
    pub worker_converters: sluice_connectors::registry::WorkerConverters,
    /// Cross-origin access to the REST gateway (Kafka Connect's `access.control.allow.*`); default: none.
    pub cors: crate::rest::Cors,
    /// TLS for the REST gateway; `None`: plain HTTP.
    pub rest_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// TLS for the gRPC port (agent streams, admin API, reflection); `None`: plaintext HTTP/2.
    pub grpc_tls: Option<tonic::transport::ServerTlsConfig>,
    /// Who may open an agent stream (the default refuses every one).
    pub agent_auth: AgentAuth,
    /// Connection limits and read timeouts of both ports.
    pub connection_limits: ConnectionLimits,
}

/// Connection limits of the REST and gRPC ports (see [`ConnectionLimits`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionOptions {
    /// Most connections open at once on each port (REST, gRPC); more are closed as soon as they are accepted.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// A connection that sends nothing for this long while the server waits for it is closed (idle keep-alive,
    /// half-sent request, no bytes at all), in milliseconds.
    #[arg(long, env = "SLUICE_CONNECTION_IDLE_TIMEOUT_MS", default_value_t = 60000)]
    pub connection_idle_timeout_ms: u64,
    /// Time to receive a REST request's headers, in milliseconds.
    #[arg(long, env = "SLUICE_HEADER_READ_TIMEOUT_MS", default_value_t = 10000)]
    pub header_read_timeout_ms: u64,
    /// Time to receive a REST request's body, in milliseconds (408 past it).
    #[arg(long, env = "SLUICE_BODY_READ_TIMEOUT_MS", default_value_t = 30000)]
    pub body_read_timeout_ms: u64,
}

impl ConnectionOptions {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections.max(1),
            idle_timeout: Duration::from_millis(self.connection_idle_timeout_ms.max(1)),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms.max(1)),
        }
    }
}

/// A running replica: where it listens and whether it leads.
pub struct Replica {
    pub rest_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub is_leader: watch::Receiver<bool>,
    pub api: Arc<dyn ConnectApi>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Replica {
    /// Waits until every part stopped (after the shutdown token was cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Looks the Kafka cluster id up once, lazily, off the async threads.
struct KafkaClusterId {
    bootstrap: String,
    id: OnceCell<String>,
}

#[async_trait]
impl ClusterIdSource for KafkaClusterId {
    async fn cluster_id(&self) -> Option<String> {
        if let Some(id) = self.id.get() {
            return Some(id.clone());
        }
        let bootstrap = self.bootstrap.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().ok()?;
            consumer.client().fetch_cluster_id(Duration::from_secs(2))
        })
        .await
        .ok()
        .flatten()?;
        let _ = self.id.set(fetched.clone());
        Some(fetched)
    }
}

/// Starts every part of a replica on the given listeners and returns at once.
pub async fn start(
    store: Arc<dyn KvStore>,
    settings: ReplicaSettings,
    rest_listener: TcpListener,
    grpc_listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<Replica> {
    let store = crate::metrics::timed_store(store);
    let keys = Keys::new(&settings.cluster);
    let rest_addr = rest_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    // Statuses and offsets change often and neither the scheduler nor the streams need them from the mirror.
    let mirror = mirror::spawn(
        store.clone(),
        keys.root().to_string(),
        vec![keys.statuses(), keys.offsets(), keys.topics()],
        shutdown.clone(),
    );

    // Parsed once per change for the whole replica: the scheduler and every agent stream read it.
    let view = crate::model::spawn_view(keys.clone(), mirror.clone(), shutdown.clone());

    let mut service = ConnectService::new(store.clone(), keys.clone(), settings.replica_id.clone())
        .with_worker_converters(settings.worker_converters.clone());
    if let Some(bootstrap) = &settings.kafka_bootstrap_servers {
        service = service
            .with_cluster_id_source(Arc::new(KafkaClusterId { bootstrap: bootstrap.clone(), id: OnceCell::new() }))
            .with_sink_offsets(Arc::new(KafkaSinkOffsets::new(bootstrap.clone())));
    }
    let api: Arc<dyn ConnectApi> = Arc::new(Deadline::new(Arc::new(service), settings.request_timeout));

    let (leader_tx, is_leader) = watch::channel(false);
    crate::metrics::global().register_replica(&keys, mirror.clone(), is_leader.clone(), shutdown.clone());
    let mut tasks = Vec::new();
    tasks.push(crate::logging::follow_cluster_levels(
        keys.clone(),
        mirror.clone(),
        crate::logging::levels().table(),
        shutdown.clone(),
    ));
    tasks.push(tokio::spawn(leader::run(
        store.clone(),
        keys.clone(),
        settings.replica_id.clone(),
        view.clone(),
        LeaderSettings { lease_ttl: settings.leader_lease_ttl },
        leader_tx,
        shutdown.clone(),
    )));

    let streams = AgentStreamService::new(
        store.clone(),
        keys.clone(),
        settings.replica_id.clone(),
        mirror.clone(),
        view.clone(),
        settings.session.clone(),
        shutdown.clone(),
    )
    .with_auth(settings.agent_auth.clone());
    if !settings.agent_auth.accepts_anyone() {
        tracing::warn!(
            "no agent authentication configured: every agent stream is refused (use --agent-token, \
             --agent-tls-client-ca, or --insecure-agents on loopback)"
        );
    }
    let reflection = crate::admin_grpc::reflection_service();
    let mut grpc = tonic::transport::Server::builder();
    if let Some(tls) = settings.grpc_tls.clone() {
        grpc = grpc.tls_config(tls).map_err(|e| std::io::Error::other(format!("gRPC TLS: {e}")))?;
    }
    let grpc = grpc
        .http2_keepalive_interval(Some(Duration::from_secs(2)))
        .http2_keepalive_timeout(Some(Duration::from_secs(2)))
        .add_service(AgentServiceServer::new(streams))
        .add_service(AdminServiceServer::with_interceptor(
            crate::admin_grpc::AdminGrpc::new(api.clone()),
            crate::auth::grpc_interceptor(settings.credentials.clone()),
        ))
        .add_service(reflection);
    let grpc_shutdown = shutdown.clone();
    let limits = settings.connection_limits;
    tasks.push(tokio::spawn(async move {
        let incoming = LimitedListener::new(grpc_listener, limits, "grpc").into_stream();
        if let Err(e) = grpc.serve_with_incoming_shutdown(incoming, grpc_shutdown.cancelled()).await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));
    let rest_api = api.clone();
    let rest_credentials = settings.credentials.clone();
    let rest_tls = settings.rest_tls.clone();
    let rest_cors = settings.cors.clone();
    let rest_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let stop = async move { rest_shutdown.cancelled().await };
        let serve = crate::rest::serve(rest_listener, rest_api, rest_credentials, rest_cors, rest_tls, limits, stop);
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "REST server failed");
        }
    }));
    tracing::info!(replica = %settings.replica_id, cluster = %settings.cluster, %rest_addr, %grpc_addr, "control plane started");
    Ok(Replica { rest_addr, grpc_addr, is_leader, api, tasks })
}

/// A replica id unique per process: host, port and a random suffix, so a restarted process never mistakes the old
/// leader key for its own.
pub fn default_replica_id(rest_addr: SocketAddr) -> String {
    let host = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into());
    let nonce: u32 = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default());
    format!("{host}:{}-{nonce:08x}", rest_addr.port())
}

/// The REST gateway's authentication and TLS flags, the same for `sluice-control-plane` and `sluice-standalone`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RestSecurityOptions {
    /// Require `Authorization: Bearer <token>` on the REST API and the admin gRPC API (`GET /health` stays open).
    #[arg(long, env = "SLUICE_REST_AUTH_TOKEN", hide_env_values = true)]
    pub rest_auth_token: Option<String>,
    /// Require HTTP basic credentials `user:password` on the REST API and the admin gRPC API (either this or the
    /// token is accepted when both are set).
    #[arg(long, env = "SLUICE_REST_BASIC_AUTH", hide_env_values = true)]
    pub rest_basic_auth: Option<String>,
    /// PEM certificate chain: the REST API is served over HTTPS (with --tls-key).
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

impl RestSecurityOptions {
    /// The credentials to require; `None`: authentication off.
    pub fn credentials(&self) -> anyhow::Result<Option<crate::auth::Credentials>> {
        crate::auth::Credentials::new(self.rest_auth_token.clone(), self.rest_basic_auth.clone())
            .map_err(anyhow::Error::msg)
    }

    /// The REST gateway's TLS config; `None`: plain HTTP.
    pub fn tls(&self) -> anyhow::Result<Option<Arc<tokio_rustls::rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(tls_config(cert, key)?)),
            _ => Ok(None),
        }
    }
}

/// The REST gateway's TLS config from PEM files (`--tls-cert`, `--tls-key`).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    crate::tls::server_config(cert, key).map_err(anyhow::Error::msg)
}

/// The gRPC port's TLS config from PEM files (`--grpc-tls-cert`, `--grpc-tls-key`), checked at once so a bad file
/// stops the start-up with a clear message. Handshakes are bounded in time.
pub fn grpc_tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    use anyhow::Context;
    let cert_pem = std::fs::read(cert).with_context(|| format!("--grpc-tls-cert {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("--grpc-tls-key {}", key.display()))?;
    let config = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem))
        .timeout(Duration::from_secs(10));
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .context("--grpc-tls-cert/--grpc-tls-key: not a usable certificate and private key")?;
    Ok(config)
}

/// How agents authenticate on their streams, the same for every replica of a cluster (see [`AgentAuth`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentSecurityOptions {
    /// Shared join token agents present (`sluice-agent --agent-token`); whoever holds it may act as any agent id.
    #[arg(long, env = "SLUICE_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,
    /// PEM of the CA that signs agents' client certificates (mutual TLS, needs --grpc-tls-cert). A certificate's
    /// subject CN is the agent id it may use, unless --agent-cert-ids says otherwise. Admin clients without a
    /// certificate still connect.
    #[arg(long, env = "SLUICE_AGENT_TLS_CLIENT_CA")]
    pub agent_tls_client_ca: Option<std::path::PathBuf>,
    /// `CN=pattern` entries, comma-separated: the agent ids a client certificate with that CN may use (`*` matches
    /// any characters), e.g. `fleet-a=agent-a-*`. A CN without an entry may use exactly its own name.
    #[arg(long, env = "SLUICE_AGENT_CERT_IDS", value_delimiter = ',')]
    pub agent_cert_ids: Vec<String>,
    /// Accept agent streams without any credential. Anyone who reaches the gRPC port then receives task configs
    /// (with their secrets) and can change statuses and offsets: for loopback and tests only.
    #[arg(long, env = "SLUICE_INSECURE_AGENTS")]
    pub insecure_agents: bool,
}

impl AgentSecurityOptions {
    /// The policy, checked against the gRPC TLS settings (client certificates need TLS).
    pub fn agent_auth(&self, grpc_tls: bool) -> anyhow::Result<AgentAuth> {
        if self.insecure_agents {
            // Checked here, not by clap: `SLUICE_INSECURE_AGENTS=false` counts as given for clap's conflicts.
            anyhow::ensure!(
                self.agent_token.is_none() && self.agent_tls_client_ca.is_none(),
                "--insecure-agents accepts every agent: drop it, or drop --agent-token/--agent-tls-client-ca"
            );
            return Ok(AgentAuth::insecure());
        }
        anyhow::ensure!(
            self.agent_tls_client_ca.is_none() || grpc_tls,
            "--agent-tls-client-ca needs --grpc-tls-cert/--grpc-tls-key: client certificates are part of TLS"
        );
        AgentAuth::new(self.agent_token.clone(), self.agent_tls_client_ca.is_some(), &self.agent_cert_ids)
            .map_err(anyhow::Error::msg)
    }

    /// Adds client-certificate verification to the gRPC port's TLS config when --agent-tls-client-ca is given.
    /// Certificates stay optional at the TLS level (admin clients and token agents have none); the stream service
    /// decides what a stream without one may do.
    pub fn client_ca(
        &self,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        use anyhow::Context;
        let (Some(path), Some(tls)) = (&self.agent_tls_client_ca, &tls) else { return Ok(tls) };
        let pem = std::fs::read(path).with_context(|| format!("--agent-tls-client-ca {}", path.display()))?;
        anyhow::ensure!(
            String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----"),
            "--agent-tls-client-ca {}: no PEM certificate in the file",
            path.display()
        );
        let config =
            tls.clone().client_ca_root(tonic::transport::Certificate::from_pem(pem)).client_auth_optional(true);
        tonic::transport::Server::builder()
            .tls_config(config.clone())
            .with_context(|| format!("--agent-tls-client-ca {}: not a usable CA certificate", path.display()))?;
        Ok(Some(config))
    }
}
