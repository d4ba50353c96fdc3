//! Process plumbing shared by the binaries: the tracing subscriber (with log levels that the admin API changes at
//! run time, like Kafka Connect's `/admin/loggers`; see `sluice-logging`), the replica's side of cluster-wide log
//! levels, and SIGTERM/SIGINT handling.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_logging::{ClusterLevel, ClusterLevels, LevelError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, LoggerLevel};
use crate::model::{Keys, unescape};
use crate::store::mirror::Snapshot;

impl From<LevelError> for ApiError {
    fn from(e: LevelError) -> Self {
        match e {
            LevelError::NotFound(_) => ApiError::not_found(e.to_string()),
            e if e.is_bad_request() => ApiError::bad_request(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

/// The log levels of this process, answering in the API's errors.
pub struct LogLevels {
    inner: Arc<sluice_logging::LogLevels>,
}

impl LogLevels {
    /// Levels that only record changes (no subscriber behind them), for tests.
    pub fn detached(filter: &str) -> Self {
        LogLevels { inner: Arc::new(sluice_logging::LogLevels::detached(filter)) }
    }

    /// `root` and every logger with an explicit level.
    pub fn all(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError> {
        Ok(self.inner.all()?.into_iter().map(|(name, level)| (name, level.into())).collect())
    }

    /// `Logger X not found.` (404) for a logger without an explicit level.
    pub fn get(&self, name: &str) -> Result<LoggerLevel, ApiError> {
        Ok(self.inner.get(name)?.into())
    }

    /// Sets `name` (and every logger below it) to `level`, as log4j does; answers the names that changed.
    pub fn set(&self, name: &str, level: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.inner.set(name, level)?)
    }

    /// The underlying table, for applying cluster-wide levels.
    pub fn table(&self) -> Arc<sluice_logging::LogLevels> {
        self.inner.clone()
    }
}

/// The log levels of this process (recorded only, when [`init`] did not install the subscriber).
pub fn levels() -> Arc<LogLevels> {
    Arc::new(LogLevels { inner: sluice_logging::levels() })
}

/// Installs a fmt subscriber with the given filter (falls back to `info` when the filter does not parse), whose
/// levels [`levels`] changes at run time.
pub fn init(filter: &str) {
    sluice_logging::init(filter, false);
}

/// `loggers/<name>` as stored by `PUT /admin/loggers/{name}?scope=cluster`: Kafka Connect's config-topic record.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ClusterLevelRecord {
    pub level: String,
}

/// The cluster-scope levels in a mirror snapshot, with the revision each was written at.
pub fn cluster_levels(keys: &Keys, snapshot: &Snapshot) -> Vec<ClusterLevel> {
    let prefix = keys.loggers();
    snapshot
        .kvs
        .range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, kv)| {
            let record: ClusterLevelRecord = serde_json::from_slice(&kv.value).ok()?;
            let logger = unescape(key.strip_prefix(&prefix)?);
            Some(ClusterLevel { logger, level: record.level, revision: kv.mod_revision })
        })
        .collect()
}

/// Applies the cluster-scope levels set while this replica runs (Kafka Connect's workers apply the levels they read
/// from the config topic after their start), until `shutdown`.
pub fn follow_cluster_levels(
    keys: Keys,
    mut mirror: watch::Receiver<Arc<Snapshot>>,
    levels: Arc<sluice_logging::LogLevels>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut cluster = ClusterLevels::default();
        loop {
            let snapshot = mirror.borrow_and_update().clone();
            // Revision 0: the mirror has not listed the store yet, so there is no baseline to take.
            if snapshot.revision > 0 {
                cluster.apply(cluster_levels(&keys, &snapshot), &levels);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = mirror.changed() => if changed.is_err() { return },
            }
        }
    })
}

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}
