//! Process plumbing shared by the binaries: the tracing subscriber (with log levels that the admin API changes at
//! run time, like Kafka Connect's `/admin/loggers`) and SIGTERM/SIGINT handling.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::api::{ApiError, LoggerLevel};

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The log levels of this process: `root` (the filter's default) plus one level per logger (a tracing target such
/// as `sluice_control_plane::rest`, or any prefix of one). Changes rebuild the subscriber's filter at once.
pub struct LogLevels {
    state: Mutex<LevelState>,
    /// Absent when another subscriber was installed first (tests): levels are then only recorded.
    handle: Option<FilterHandle>,
}

#[derive(Debug, Clone)]
struct LevelState {
    root: LoggerLevel,
    loggers: BTreeMap<String, LoggerLevel>,
    /// Directives of the startup filter that are not plain `target=level` (span filters): kept as they are.
    raw: Vec<String>,
}

static LEVELS: OnceLock<Arc<LogLevels>> = OnceLock::new();

/// Kafka Connect's (log4j) level name for a tracing level name, or `None` when it is not a level.
fn kafka_level(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_uppercase().as_str() {
        "OFF" => "OFF",
        "FATAL" | "ERROR" => "ERROR",
        "WARN" | "WARNING" => "WARN",
        "INFO" => "INFO",
        "DEBUG" => "DEBUG",
        "TRACE" | "ALL" => "TRACE",
        _ => return None,
    })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// `child` is `parent` or below it (`a::b` is below `a`; Kafka-style dotted names work too).
fn is_descendant(child: &str, parent: &str) -> bool {
    child == parent || child.strip_prefix(parent).is_some_and(|rest| rest.starts_with("::") || rest.starts_with('.'))
}

impl LevelState {
    fn parse(filter: &str) -> LevelState {
        let mut state = LevelState {
            root: LoggerLevel { level: "INFO".into(), last_modified: None },
            loggers: BTreeMap::new(),
            raw: Vec::new(),
        };
        for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                None => match kafka_level(directive) {
                    Some(level) => state.root = LoggerLevel { level: level.into(), last_modified: None },
                    None => state.raw.push(directive.to_string()),
                },
                Some((target, level)) => match kafka_level(level) {
                    Some(level) if !target.contains('[') => {
                        state
                            .loggers
                            .insert(target.to_string(), LoggerLevel { level: level.into(), last_modified: None });
                    }
                    _ => state.raw.push(directive.to_string()),
                },
            }
        }
        state
    }

    fn filter(&self) -> EnvFilter {
        let mut directives = vec![self.root.level.to_ascii_lowercase()];
        directives.extend(self.loggers.iter().map(|(name, l)| format!("{name}={}", l.level.to_ascii_lowercase())));
        directives.extend(self.raw.iter().cloned());
        // One directive that does not parse must not take the others down with it.
        directives.retain(|d| d.parse::<tracing_subscriber::filter::Directive>().is_ok());
        EnvFilter::try_new(directives.join(",")).unwrap_or_else(|_| EnvFilter::new("info"))
    }
}

impl LogLevels {
    fn new(filter: &str, handle: Option<FilterHandle>) -> Self {
        LogLevels { state: Mutex::new(LevelState::parse(filter)), handle }
    }

    /// Levels that only record changes (no subscriber behind them), for tests.
    pub fn detached(filter: &str) -> Self {
        Self::new(filter, None)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LevelState>, ApiError> {
        self.state.lock().map_err(|_| ApiError::internal("the log level table is poisoned"))
    }

    /// `root` and every logger with an explicit level.
    pub fn all(&self) -> Result<BTreeMap<String, LoggerLevel>, ApiError> {
        let state = self.lock()?;
        let mut out = state.loggers.clone();
        out.insert("root".into(), state.root.clone());
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<LoggerLevel, ApiError> {
        let state = self.lock()?;
        if name == "root" {
            return Ok(state.root.clone());
        }
        state.loggers.get(name).cloned().ok_or_else(|| ApiError::not_found(format!("Logger {name} not found.")))
    }

    /// Sets `name` (and every logger below it) to `level`, as log4j does; answers the names that changed.
    pub fn set(&self, name: &str, level: &str) -> Result<Vec<String>, ApiError> {
        let name = name.trim();
        // Logger names become filter directives: anything beyond a module path (`a::b`, `org.apache.x`) could
        // inject other directives.
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-');
        if name.is_empty() || !name.chars().all(valid) {
            return Err(ApiError::bad_request(format!(
                "Invalid logger name {name:?}: use a module path such as sluice_control_plane::rest (letters, digits, \
                 '_', '-', '.', ':')"
            )));
        }
        let Some(level) = kafka_level(level) else {
            return Err(ApiError::bad_request(format!(
                "Invalid log level '{level}'. Valid levels: OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE"
            )));
        };
        let mut state = self.lock()?;
        let changed_at = LoggerLevel { level: level.to_string(), last_modified: Some(now_millis()) };
        let mut changed: Vec<String> = if name == "root" {
            state.root = changed_at.clone();
            let mut names = vec!["root".to_string()];
            for (logger, value) in state.loggers.iter_mut() {
                *value = changed_at.clone();
                names.push(logger.clone());
            }
            names
        } else {
            let mut names = vec![name.to_string()];
            state.loggers.insert(name.to_string(), changed_at.clone());
            for (logger, value) in
                state.loggers.iter_mut().filter(|(l, _)| l.as_str() != name && is_descendant(l, name))
            {
                *value = changed_at.clone();
                names.push(logger.clone());
            }
            names
        };
        changed.sort();
        if let Some(handle) = &self.handle
            && let Err(e) = handle.reload(state.filter())
        {
            return Err(ApiError::internal(format!("Cannot change the log filter: {e}")));
        }
        drop(state);
        tracing::info!(logger = %name, level, "log level changed");
        Ok(changed)
    }
}

/// The log levels of this process (recorded only, when [`init`] did not install the subscriber).
pub fn levels() -> Arc<LogLevels> {
    LEVELS.get_or_init(|| Arc::new(LogLevels::new("info", None))).clone()
}

/// Installs a fmt subscriber with the given filter (falls back to `info` when the filter does not parse), whose
/// levels [`levels`] changes at run time.
pub fn init(filter: &str) {
    let filter = if EnvFilter::try_new(filter).is_ok() { filter } else { "info" };
    let state = LevelState::parse(filter);
    let (layer, handle) = reload::Layer::new(state.filter());
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(std::io::stdout().is_terminal()))
        .try_init()
        .is_ok();
    let _ = LEVELS.set(Arc::new(LogLevels::new(filter, installed.then_some(handle))));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_startup_filter_and_sets_levels_like_log4j() {
        let levels = LogLevels::new("debug,sluice_control_plane::rest=warn,tower[span]=trace", None);
        let all = levels.all().expect("all");
        assert_eq!(all["root"].level, "DEBUG");
        assert_eq!(all["sluice_control_plane::rest"].level, "WARN");
        assert_eq!(all.len(), 2);
        assert!(levels.get("nope").is_err_and(|e| e.message == "Logger nope not found."));

        let changed = levels.set("sluice_control_plane", "trace").expect("set");
        assert_eq!(changed, vec!["sluice_control_plane", "sluice_control_plane::rest"]);
        let rest = levels.get("sluice_control_plane::rest").expect("rest");
        assert_eq!(rest.level, "TRACE");
        assert!(rest.last_modified.is_some());
        assert_eq!(levels.get("root").expect("root").last_modified, None);

        let changed = levels.set("root", "Error").expect("root");
        assert_eq!(changed.len(), 3);
        assert_eq!(levels.get("sluice_control_plane").expect("cp").level, "ERROR");
        let error = levels.set("x", "LOUD").expect_err("bad level");
        assert_eq!(error.kind, crate::api::ApiErrorKind::BadRequest);
        assert!(levels.lock().expect("lock").filter().to_string().contains("tower[span]=trace"));
        levels.set("org.apache.kafka-connect", "debug").expect("dotted name");
        assert!(levels.lock().expect("lock").filter().to_string().contains("org.apache.kafka-connect=debug"));
        for bad in ["a,b", "x=y", "t[s]", ""] {
            assert!(levels.set(bad, "debug").is_err(), "{bad:?} accepted");
        }
    }
}
