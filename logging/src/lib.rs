//! Log levels changed at run time, like Kafka Connect's `/admin/loggers`: the tracing subscriber every Sluice binary
//! installs, the table of levels behind it, and [`ClusterLevels`], which decides which cluster-wide levels (`PUT
//! /admin/loggers/{name}?scope=cluster`) a process applies. Shared by the control plane and the agents, so a level
//! means the same on both.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The level of one logger, as `GET /admin/loggers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggerLevel {
    /// Kafka Connect's (log4j) level names: OFF, ERROR, WARN, INFO, DEBUG, TRACE.
    pub level: String,
    /// Milliseconds since the epoch of the last change through the API; `null` when never changed.
    pub last_modified: Option<i64>,
}

/// Why a level could not be read or changed; the messages are the API's answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("Logger {0} not found.")]
    NotFound(String),
    #[error(
        "Invalid logger name {0:?}: use a module path such as sluice_control_plane::rest (letters, digits, '_', '-', \
         '.', ':')"
    )]
    InvalidName(String),
    #[error("Invalid log level '{0}'. Valid levels: OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE")]
    InvalidLevel(String),
    #[error("the log level table is poisoned")]
    Poisoned,
    #[error("Cannot change the log filter: {0}")]
    Reload(String),
}

impl LevelError {
    /// True when the request was wrong (an API answers 400), not the process.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, LevelError::InvalidName(_) | LevelError::InvalidLevel(_))
    }
}

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

mod modules;
pub use modules::MODULES;

/// The crates whose modules this process lists as loggers; unset: every crate of [`MODULES`].
static CRATES: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Names the crates this process is built from (`sluice_control_plane`, `sluice_agent`, ...): `GET /admin/loggers`
/// lists their modules. Call once, at startup; later calls are ignored.
pub fn set_crates(crates: &[&'static str]) {
    let _ = CRATES.set(crates.to_vec());
}

/// The crates of the connector API, converters, transforms, registry and connectors (every crate of [`MODULES`]
/// but the agent's, the control plane's and this one): both processes link them all.
pub fn plugin_crates() -> Vec<&'static str> {
    let mut crates: Vec<&'static str> = MODULES
        .iter()
        .map(|(krate, _)| *krate)
        .filter(|k| !matches!(*k, "sluice_agent" | "sluice_control_plane" | "sluice_logging"))
        .collect();
    crates.dedup();
    crates
}

fn known_modules() -> impl Iterator<Item = &'static str> {
    let crates = CRATES.get();
    MODULES
        .iter()
        .filter(move |(krate, _)| crates.is_none_or(|crates| crates.contains(krate)))
        .map(|(_, module)| *module)
}

/// Kafka Connect's (log4j) level name for a tracing level name, or `None` when it is not a level.
pub fn kafka_level(level: &str) -> Option<&'static str> {
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

/// Checks a logger name and a level: the trimmed name and Kafka Connect's name of the level.
pub fn validate<'a>(name: &'a str, level: &str) -> Result<(&'a str, &'static str), LevelError> {
    let name = name.trim();
    // Logger names become filter directives: anything beyond a module path (`a::b`, `org.apache.x`) could inject
    // other directives.
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-');
    if name.is_empty() || !name.chars().all(valid) {
        return Err(LevelError::InvalidName(name.to_string()));
    }
    let level = kafka_level(level).ok_or_else(|| LevelError::InvalidLevel(level.to_string()))?;
    Ok((name, level))
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
    /// The level `logger` logs at: its nearest ancestor's with an explicit level, else root's.
    fn effective(&self, logger: &str) -> LoggerLevel {
        self.loggers
            .iter()
            .filter(|(name, _)| is_descendant(logger, name))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, level)| level.clone())
            .unwrap_or_else(|| self.root.clone())
    }

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

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LevelState>, LevelError> {
        self.state.lock().map_err(|_| LevelError::Poisoned)
    }

    /// `root`, every logger with an explicit level, and every module of this process's crates (see
    /// [`set_crates`]) with the level it logs at, as Kafka Connect lists every logger it has.
    pub fn all(&self) -> Result<BTreeMap<String, LoggerLevel>, LevelError> {
        let state = self.lock()?;
        let mut out: BTreeMap<String, LoggerLevel> =
            known_modules().map(|module| (module.to_string(), state.effective(module))).collect();
        out.extend(state.loggers.clone());
        out.insert("root".into(), state.root.clone());
        Ok(out)
    }

    /// The level of a logger with an explicit level or of a module of this process; `NotFound` otherwise.
    pub fn get(&self, name: &str) -> Result<LoggerLevel, LevelError> {
        let state = self.lock()?;
        if name == "root" {
            return Ok(state.root.clone());
        }
        if let Some(level) = state.loggers.get(name) {
            return Ok(level.clone());
        }
        if known_modules().any(|module| module == name) {
            return Ok(state.effective(name));
        }
        Err(LevelError::NotFound(name.to_string()))
    }

    /// Sets `name` (and every logger below it) to `level`, as log4j does; answers the names that changed.
    pub fn set(&self, name: &str, level: &str) -> Result<Vec<String>, LevelError> {
        let (name, level) = validate(name, level)?;
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
        changed.extend(known_modules().filter(|m| name == "root" || is_descendant(m, name)).map(str::to_string));
        changed.sort();
        changed.dedup();
        if let Some(handle) = &self.handle
            && let Err(e) = handle.reload(state.filter())
        {
            return Err(LevelError::Reload(e.to_string()));
        }
        drop(state);
        tracing::info!(logger = %name, level, "log level changed");
        Ok(changed)
    }
}

/// One level set at cluster scope, as stored: the logger, its level and the store revision it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLevel {
    pub logger: String,
    pub level: String,
    pub revision: i64,
}

/// Which cluster-scope levels a process applies. As in Kafka Connect (whose workers ignore the logging levels
/// written to the config topic before they finished starting), a process applies the levels set while it runs, not
/// those set before it started: the first set of levels it learns is its baseline; after that, every level whose
/// revision it has not seen is applied, oldest first (so `root` then `a::b` ends with `a::b` at its own level).
#[derive(Debug, Default)]
pub struct ClusterLevels {
    /// Revision last seen per logger; `None` until the baseline.
    seen: Option<BTreeMap<String, i64>>,
}

impl ClusterLevels {
    /// Takes the current cluster-scope levels (all of them, each time) and answers those to apply now.
    pub fn update(&mut self, current: impl IntoIterator<Item = ClusterLevel>) -> Vec<ClusterLevel> {
        let current: Vec<ClusterLevel> = current.into_iter().collect();
        let Some(seen) = &mut self.seen else {
            self.seen = Some(current.into_iter().map(|l| (l.logger, l.revision)).collect());
            return Vec::new();
        };
        let mut apply: Vec<ClusterLevel> =
            current.into_iter().filter(|l| seen.get(&l.logger).is_none_or(|r| *r < l.revision)).collect();
        apply.sort_by_key(|l| l.revision);
        for level in &apply {
            seen.insert(level.logger.clone(), level.revision);
        }
        apply
    }

    /// Applies what [`ClusterLevels::update`] answers to `levels`, logging what cannot be applied.
    pub fn apply(&mut self, current: impl IntoIterator<Item = ClusterLevel>, levels: &LogLevels) {
        for level in self.update(current) {
            match levels.set(&level.logger, &level.level) {
                Ok(_) => tracing::info!(logger = %level.logger, level = %level.level, "cluster log level applied"),
                Err(e) => tracing::warn!(logger = %level.logger, error = %e, "cannot apply a cluster log level"),
            }
        }
    }
}

/// The log levels of this process (recorded only, when [`init`] did not install the subscriber).
pub fn levels() -> Arc<LogLevels> {
    LEVELS.get_or_init(|| Arc::new(LogLevels::new("info", None))).clone()
}

/// Installs a fmt subscriber with the given filter (falls back to `info` when the filter does not parse), whose
/// levels [`levels`] changes at run time. `with_target` prints each event's target (its logger).
pub fn init(filter: &str, with_target: bool) {
    let filter = if EnvFilter::try_new(filter).is_ok() { filter } else { "info" };
    let state = LevelState::parse(filter);
    let (layer, handle) = reload::Layer::new(state.filter());
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_target(with_target).with_ansi(std::io::stdout().is_terminal()))
        .try_init()
        .is_ok();
    let _ = LEVELS.set(Arc::new(LogLevels::new(filter, installed.then_some(handle))));
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
        assert_eq!(all.len(), MODULES.len() + 1, "root and every module: {:?}", all.keys());
        assert_eq!(all["sluice_agent::supervisor"].level, "DEBUG", "from root");
        assert!(levels.get("nope").is_err_and(|e| e.to_string() == "Logger nope not found."));

        let changed = levels.set("sluice_control_plane", "trace").expect("set");
        assert!(changed.contains(&"sluice_control_plane::rest".to_string()), "{changed:?}");
        assert!(changed.contains(&"sluice_control_plane::store::etcd".to_string()), "modules below change too");
        assert!(changed.iter().all(|c| c.starts_with("sluice_control_plane")), "{changed:?}");
        assert_eq!(levels.get("sluice_control_plane::store::etcd").expect("module").level, "TRACE");
        assert_eq!(levels.all().expect("all")["sluice_control_plane::leader"].level, "TRACE");
        let rest = levels.get("sluice_control_plane::rest").expect("rest");
        assert_eq!(rest.level, "TRACE");
        assert!(rest.last_modified.is_some());
        assert_eq!(levels.get("root").expect("root").last_modified, None);

        let changed = levels.set("root", "Error").expect("root");
        assert_eq!(changed.len(), MODULES.len() + 1, "root and every module (the explicit loggers are modules)");
        assert_eq!(levels.get("sluice_control_plane").expect("cp").level, "ERROR");
        let error = levels.set("x", "LOUD").expect_err("bad level");
        assert!(error.is_bad_request() && error.to_string().contains("LOUD"));
        assert!(levels.lock().expect("lock").filter().to_string().contains("tower[span]=trace"));
        levels.set("org.apache.kafka-connect", "debug").expect("dotted name");
        assert!(levels.lock().expect("lock").filter().to_string().contains("org.apache.kafka-connect=debug"));
        for bad in ["a,b", "x=y", "t[s]", ""] {
            assert!(levels.set(bad, "debug").is_err_and(|e| e.is_bad_request()), "{bad:?} accepted");
        }
    }

    fn level(logger: &str, level: &str, revision: i64) -> ClusterLevel {
        ClusterLevel { logger: logger.into(), level: level.into(), revision }
    }

    #[test]
    fn cluster_levels_set_before_the_start_are_a_baseline_later_ones_apply_oldest_first() {
        let mut cluster = ClusterLevels::default();
        assert!(cluster.update([level("a", "DEBUG", 5)]).is_empty(), "set before this process started");
        assert!(cluster.update([level("a", "DEBUG", 5)]).is_empty(), "seen already");
        let apply = cluster.update([level("b::c", "WARN", 9), level("a", "TRACE", 7), level("root", "INFO", 8)]);
        assert_eq!(apply, vec![level("a", "TRACE", 7), level("root", "INFO", 8), level("b::c", "WARN", 9)]);
        assert!(cluster.update([level("a", "TRACE", 7), level("b::c", "WARN", 9)]).is_empty());

        let levels = LogLevels::detached("info");
        let mut cluster = ClusterLevels::default();
        cluster.apply([], &levels);
        cluster.apply([level("sluice_agent", "DEBUG", 3), level("bad name", "DEBUG", 4)], &levels);
        assert_eq!(levels.get("sluice_agent").expect("applied").level, "DEBUG");
    }
}
