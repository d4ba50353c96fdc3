//! Standalone mode: one replica on the embedded store plus one embedded agent that connects to it over loopback
//! gRPC (the very same protocol as in distributed mode, so nothing behaves differently).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_connectors::ConfigMap;
use tokio_util::sync::CancellationToken;

use crate::model::Keys;
use crate::server::{self, ReplicaSettings, RestSecurityOptions};
use crate::store::KvStore;
use crate::store::embedded::EmbeddedStore;
use crate::stream::SessionSettings;

const CLUSTER: &str = "standalone";

/// The REST address from Kafka Connect's `listeners` (first entry; `http://:8083` means all interfaces), and
/// whether it is an `https://` listener.
pub fn rest_listener(worker: &ConfigMap) -> anyhow::Result<(SocketAddr, bool)> {
    let listeners = worker.get("listeners").map(String::as_str).unwrap_or("http://:8083");
    let first = listeners.split(',').next().unwrap_or_default().trim();
    let (rest, https) = match (first.strip_prefix("http://"), first.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => bail!("listeners: only http:// and https:// listeners are supported, got `{first}`"),
    };
    let (host, port) = rest.rsplit_once(':').with_context(|| format!("listeners: `{first}` has no port"))?;
    let host = match host.trim_matches(['[', ']']) {
        "" | "0.0.0.0" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h,
    };
    let address = format!("{host}:{port}").parse().with_context(|| format!("listeners: cannot parse `{first}`"))?;
    Ok((address, https))
}

fn read_properties(path: &Path) -> anyhow::Result<ConfigMap> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sluice_agent::parse_properties(&text).into_iter().collect())
}

/// Runs until `shutdown`. `security`: the REST API's authentication and TLS, as for `sluice-control-plane`; TLS
/// goes with an `https://` listener.
pub async fn run(
    worker_path: &Path,
    connector_paths: &[PathBuf],
    security: &RestSecurityOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker = read_properties(worker_path)?;
    let (rest_addr, https) = rest_listener(&worker)?;
    let credentials = security.credentials()?;
    let rest_tls = security.tls()?;
    match (https, rest_tls.is_some()) {
        (true, false) => bail!("listeners: an https:// listener needs --tls-cert and --tls-key"),
        (false, true) => bail!("--tls-cert/--tls-key serve the REST API over HTTPS: make the listener https://"),
        _ => {}
    }
    let keys = Keys::new(CLUSTER);
    let store: Arc<dyn KvStore> = match worker.get("offset.storage.file.filename") {
        Some(path) if !path.trim().is_empty() => Arc::new(
            EmbeddedStore::with_file(path.trim(), vec![keys.offsets()])
                .with_context(|| format!("offset.storage.file.filename: cannot open {path}"))?,
        ),
        _ => Arc::new(EmbeddedStore::in_memory()),
    };
    let mut connectors = Vec::new();
    for path in connector_paths {
        connectors.push((path.clone(), read_properties(path)?));
    }

    let rest = tokio::net::TcpListener::bind(rest_addr)
        .await
        .with_context(|| format!("cannot listen on {rest_addr} (listeners)"))?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let agent_token = format!("{:032x}", rand::random::<u128>());
    // The worker's id in status answers, as Kafka Connect's (its REST host:port): the agent's and, for connectors
    // without running tasks, the control plane's.
    let worker_id = format!(
        "{}:{}",
        if rest_addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { rest_addr.ip().to_string() },
        rest_addr.port()
    );
    let settings = ReplicaSettings {
        cluster: CLUSTER.into(),
        replica_id: worker_id.clone(),
        session: SessionSettings { lease_ttl: Duration::from_secs(5), heartbeat_interval: Duration::from_millis(500) },
        leader_lease_ttl: Duration::from_secs(5),
        kafka_bootstrap_servers: worker.get("bootstrap.servers").cloned(),
        request_timeout: crate::deadline::DEFAULT_REQUEST_TIMEOUT,
        credentials,
        cors: crate::rest::Cors::from_worker_config(&worker),
        worker_converters: sluice_connectors::registry::WorkerConverters::from_worker_config(&worker),
        rest_tls,
        grpc_tls: None,
        // The embedded agent is the only one meant to connect: a token made up for this process keeps out
        // anything else that finds the loopback port.
        agent_auth: crate::agent_auth::AgentAuth::new(Some(agent_token.clone()), false, &[])
            .map_err(anyhow::Error::msg)?,
        connection_limits: crate::connections::ConnectionLimits::default(),
    };
    // The control plane outlives the agent, so the agent's final offsets and Goodbye still land at shutdown.
    let control_plane_shutdown = CancellationToken::new();
    let replica = server::start(store, settings, rest, grpc, control_plane_shutdown.clone()).await?;

    for (path, config) in connectors {
        let Some(name) = config.get("name").cloned() else {
            bail!("{}: connector properties need a `name`", path.display());
        };
        replica
            .api
            .put_connector_config(&name, config)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
        tracing::info!(connector = %name, file = %path.display(), "connector created");
    }

    let agent = sluice_agent::AgentOptions {
        control_plane: vec![format!("http://{}", replica.grpc_addr)],
        tls_ca: None,
        client_identity: None,
        agent_token: Some(sluice_agent::AgentToken::new(agent_token)),
        agent_id: "standalone".into(),
        worker_config: worker.clone(),
        capacity: 0,
        worker_id: Some(worker_id),
        metrics_listen: None,
        metrics_auth: None,
    };
    let agent_result = sluice_agent::run(agent, shutdown.clone()).await;
    // The agent returns after a graceful stop (offsets committed); only then stop the control plane.
    control_plane_shutdown.cancel();
    replica.join().await;
    agent_result.map_err(|e| anyhow::anyhow!("agent: {e}"))
}
