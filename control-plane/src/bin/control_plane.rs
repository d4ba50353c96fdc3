//! `sluice-control-plane`: one replica of the distributed control plane (etcd store, scheduler when leader, agent
//! streams, admin gRPC API with reflection, Kafka Connect REST gateway).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sluice_control_plane::server::{self, AgentSecurityOptions, ReplicaSettings, RestSecurityOptions};
use sluice_control_plane::store::etcd::EtcdStore;
use sluice_control_plane::stream::SessionSettings;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sluice control plane. Every flag can also be given as the environment variable shown.
#[derive(Parser, Debug)]
#[command(name = "sluice-control-plane", version, about)]
struct Options {
    /// etcd endpoints, comma-separated.
    #[arg(long, env = "SLUICE_ETCD_ENDPOINTS", value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Cluster name: all state lives under /sluice/<cluster>/ in etcd, so clusters can share an etcd.
    #[arg(long, env = "SLUICE_CLUSTER", default_value = "default")]
    cluster: String,
    /// Address of the Kafka Connect-compatible REST API.
    #[arg(long, env = "SLUICE_REST_LISTEN", default_value = "127.0.0.1:8083")]
    rest_listen: SocketAddr,
    /// Address of the gRPC server (agent streams and the admin API, with server reflection).
    #[arg(long, env = "SLUICE_GRPC_LISTEN", default_value = "127.0.0.1:9083")]
    grpc_listen: SocketAddr,
    /// This replica's id in leader election and status answers (default: host:port plus a random suffix).
    #[arg(long, env = "SLUICE_REPLICA_ID")]
    replica_id: Option<String>,
    /// How long an agent that stopped heartbeating keeps its tasks, in milliseconds (etcd rounds to seconds).
    #[arg(long, env = "SLUICE_AGENT_LEASE_TTL_MS", default_value_t = 3000)]
    agent_lease_ttl_ms: u64,
    /// How often agents heartbeat, in milliseconds.
    #[arg(long, env = "SLUICE_HEARTBEAT_INTERVAL_MS", default_value_t = 500)]
    heartbeat_interval_ms: u64,
    /// How long a dead leader blocks scheduling at most, in milliseconds (etcd rounds to seconds).
    #[arg(long, env = "SLUICE_LEADER_LEASE_TTL_MS", default_value_t = 3000)]
    leader_lease_ttl_ms: u64,
    /// Kafka bootstrap servers: to report `kafka_cluster_id` in `GET /` and to read and change sink connectors'
    /// offsets (their consumer groups `connect-<name>`). Without it, sink offset requests answer 500.
    #[arg(long, env = "SLUICE_KAFKA_BOOTSTRAP_SERVERS")]
    kafka_bootstrap_servers: Option<String>,
    /// Time limit of one admin request (REST or gRPC), in milliseconds; a request past it answers 503.
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT_MS", default_value_t = 30000)]
    request_timeout_ms: u64,
    #[command(flatten)]
    rest_security: RestSecurityOptions,
    /// Kafka Connect's `access.control.allow.origin`: `*` or comma-separated origins that browsers may call the
    /// REST API from (CORS). Default: none.
    #[arg(long, env = "SLUICE_ACCESS_CONTROL_ALLOW_ORIGIN", default_value = "")]
    access_control_allow_origin: String,
    /// Kafka Connect's `access.control.allow.methods`: the methods a CORS preflight allows. Default: GET,POST,HEAD.
    #[arg(long, env = "SLUICE_ACCESS_CONTROL_ALLOW_METHODS", default_value = "")]
    access_control_allow_methods: String,
    #[command(flatten)]
    connections: server::ConnectionOptions,
    /// PEM certificate chain: the gRPC port (agent streams, admin API, reflection) is served over TLS (with
    /// --grpc-tls-key). May be the same files as --tls-cert/--tls-key. Agents then need `https://` addresses.
    #[arg(long, env = "SLUICE_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    grpc_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "SLUICE_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    grpc_tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    agent_security: AgentSecurityOptions,
    /// Log filter, e.g. `info` or `sluice_control_plane=debug,info`.
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    // The loggers `GET /admin/loggers` lists: the modules of the crates this binary is built from.
    sluice_logging::set_crates(
        &[vec!["sluice_control_plane", "sluice_logging"], sluice_logging::plugin_crates()].concat(),
    );
    sluice_control_plane::logging::init(&options.log);
    let shutdown = CancellationToken::new();
    sluice_control_plane::logging::cancel_on_signal(shutdown.clone());

    let grpc_tls = match (&options.grpc_tls_cert, &options.grpc_tls_key) {
        (Some(cert), Some(key)) => Some(server::grpc_tls_config(cert, key)?),
        _ => None,
    };
    let agent_auth = options.agent_security.agent_auth(grpc_tls.is_some())?;
    let grpc_tls = options.agent_security.client_ca(grpc_tls)?;
    let store = Arc::new(EtcdStore::connect(&options.etcd_endpoints).await?);
    let rest = tokio::net::TcpListener::bind(options.rest_listen).await?;
    let grpc = tokio::net::TcpListener::bind(options.grpc_listen).await?;
    let replica_id = options.replica_id.clone().unwrap_or_else(|| server::default_replica_id(options.rest_listen));
    let settings = ReplicaSettings {
        cluster: options.cluster.clone(),
        replica_id,
        session: SessionSettings {
            lease_ttl: Duration::from_millis(options.agent_lease_ttl_ms),
            heartbeat_interval: Duration::from_millis(options.heartbeat_interval_ms),
        },
        leader_lease_ttl: Duration::from_millis(options.leader_lease_ttl_ms),
        kafka_bootstrap_servers: options.kafka_bootstrap_servers.clone(),
        request_timeout: Duration::from_millis(options.request_timeout_ms),
        credentials: options.rest_security.credentials()?,
        worker_converters: Default::default(),
        cors: sluice_control_plane::rest::Cors {
            allow_origin: options.access_control_allow_origin.clone(),
            allow_methods: options.access_control_allow_methods.clone(),
        },
        rest_tls: options.rest_security.tls()?,
        grpc_tls,
        agent_auth,
        connection_limits: options.connections.limits(),
    };
    let replica = server::start(store, settings, rest, grpc, shutdown.clone()).await?;
    shutdown.cancelled().await;
    replica.join().await;
    Ok(())
}
