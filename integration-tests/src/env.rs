//! One test's world: the shared services, a private temp dir, unique names, and the logs of every process it
//! started (printed when the test fails).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng;
use tempfile::TempDir;

use crate::services::{Services, ensure_services};

/// How many lines of each process log are printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// Create it first in a test (it must outlive every process the test starts), finish with [`TestEnv::finish`].
pub struct TestEnv {
    /// The test's name, used in messages.
    pub name: String,
    /// Random suffix that makes this test's names unique (clusters, topics, connectors, agents).
    pub id: String,
    /// Kafka and etcd addresses.
    pub services: &'static Services,
    dir: Mutex<Option<TempDir>>,
    path: PathBuf,
    logs: Arc<Mutex<Vec<(String, PathBuf)>>>,
}

impl TestEnv {
    /// Brings Kafka and etcd up (once per test process) and creates the test's temp dir.
    pub async fn new(name: &str) -> TestEnv {
        let services = tokio::task::spawn_blocking(ensure_services)
            .await
            .expect("ensure_services panicked")
            .unwrap_or_else(|e| panic!("{name}: cannot get Kafka and etcd up: {e:#}"));
        let id = random_suffix();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-it-{name}-{id}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("{name}: cannot create a temp dir: {e}"));
        let path = dir.path().to_path_buf();
        eprintln!("[{name}] id {id}, temp dir {}, kafka {}, etcd {}", path.display(), services.kafka, services.etcd);
        TestEnv { name: name.to_string(), id, services, dir: Mutex::new(Some(dir)), path, logs: Arc::default() }
    }

    /// The test's private directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// `file` inside the test's directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.path.join(file)
    }

    /// `base` made unique for this test run, e.g. `orders-1a2b3c4d`.
    pub fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    /// Records a process log, printed if the test fails.
    pub fn register_log(&self, label: &str, path: &Path) {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).push((label.to_string(), path.to_path_buf()));
    }

    /// A log file path for a process labelled `label` that is not used yet (restarts get `label.2.log`, ...).
    pub fn new_log_path(&self, label: &str) -> PathBuf {
        let dir = self.path.join("logs");
        let _ = std::fs::create_dir_all(&dir);
        let mut n = 1;
        loop {
            let file = if n == 1 { format!("{label}.log") } else { format!("{label}.{n}.log") };
            let path = dir.join(file);
            if !path.exists() {
                return path;
            }
            n += 1;
        }
    }

    /// Prints to the test output (shown by cargo for failed tests, or always with `--nocapture`).
    pub fn note(&self, message: impl std::fmt::Display) {
        eprintln!("[{}] {message}", self.name);
    }

    /// Turns the test body's result into a pass or a panic (which makes the drop print the logs).
    pub fn finish(&self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            panic!("[{}] FAILED: {e:#}", self.name);
        }
        self.note("passed");
    }

    fn dump_logs(&self) {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (label, path) in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("<cannot read: {e}>"));
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            eprintln!(
                "----- {label}: last {} of {} lines of {} -----",
                lines.len() - from,
                lines.len(),
                path.display()
            );
            for line in &lines[from..] {
                eprintln!("{line}");
            }
        }
        eprintln!("----- end of logs -----");
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump_logs();
        }
        // SLUICE_TEST_KEEP=1 keeps the directory (logs, files) of passing tests too.
        let keep = failed || std::env::var_os("SLUICE_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
        if keep && let Some(dir) = self.dir.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let kept = dir.keep();
            eprintln!("[{}] kept the test directory for inspection: {}", self.name, kept.display());
        }
    }
}

fn random_suffix() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}
