//! `sluice-standalone worker.properties connector1.properties [connector2.properties ...]`: the Kafka Connect
//! standalone experience in one process — the control plane on an embedded store (source offsets persisted in
//! `offset.storage.file.filename`), one embedded agent, and the REST API on the worker's `listeners` (with the
//! same authentication and TLS flags as `sluice-control-plane`; TLS needs an `https://` listener).

use std::path::PathBuf;

use clap::Parser;
use sluice_control_plane::server::RestSecurityOptions;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sluice standalone mode.
#[derive(Parser, Debug)]
#[command(name = "sluice-standalone", version, about)]
struct Options {
    /// Worker properties (bootstrap.servers, converters, listeners, offset.storage.file.filename, ...).
    worker: PathBuf,
    /// Connector properties files, each creating (or updating) one connector at start.
    connectors: Vec<PathBuf>,
    #[command(flatten)]
    rest_security: RestSecurityOptions,
    /// Log filter.
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
    let options = Options::parse();
    sluice_control_plane::logging::init(&options.log);
    let shutdown = CancellationToken::new();
    sluice_control_plane::logging::cancel_on_signal(shutdown.clone());
    sluice_control_plane::standalone::run(&options.worker, &options.connectors, &options.rest_security, shutdown).await
}
