//! Text files as FileStream sources and sinks: numbered lines written over time, and what arrived at the end.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;

use crate::wait::wait_until;

/// `count` lines `"{prefix}-{n:06}"` for n in `from..from+count`: unique, and their order is visible in the text.
pub fn numbered_lines(prefix: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count).map(|n| format!("{prefix}-{n:06}")).collect()
}

/// Appends `lines` (each followed by `\n`) to `path` in one write, creating the file if needed.
pub fn append_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(())
}

/// The complete (newline-terminated) lines of `path`; a last line still being written is left out.
/// A missing file has no lines.
pub fn read_complete_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Ok(Vec::new()),
    };
    Ok(complete.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect())
}

/// What arrived compared with what was written.
#[derive(Debug, Clone, Default)]
pub struct LineReport {
    /// Lines received (with duplicates).
    pub received: usize,
    /// Distinct expected lines received.
    pub unique: usize,
    /// Expected lines that never arrived, in expected order.
    pub missing: Vec<String>,
    /// Extra copies of expected lines (received - unique, over expected lines).
    pub duplicates: usize,
    /// Received lines that were never written.
    pub unexpected: Vec<String>,
    /// True when the first occurrences of the received lines come in the order they were written.
    pub first_occurrences_in_order: bool,
    /// True when the received lines are exactly the expected ones, each once, in order.
    pub exact: bool,
}

impl LineReport {
    /// Fails unless every expected line arrived, nothing unexpected did, and first occurrences are in order.
    /// Duplicates are allowed (at-least-once).
    pub fn check_complete_at_least_once(&self, what: &str) -> anyhow::Result<()> {
        if !self.missing.is_empty() || !self.unexpected.is_empty() || !self.first_occurrences_in_order {
            bail!("{what}: {self}");
        }
        Ok(())
    }

    /// Fails unless the lines are exactly the expected ones, each once, in order.
    pub fn check_exact(&self, what: &str) -> anyhow::Result<()> {
        if !self.exact {
            bail!("{what}: expected every line exactly once and in order, but {self}");
        }
        Ok(())
    }
}

impl fmt::Display for LineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} lines, {} distinct expected, {} missing{}, {} duplicates, {} unexpected{}, first occurrences {}",
            self.received,
            self.unique,
            self.missing.len(),
            sample(&self.missing),
            self.duplicates,
            self.unexpected.len(),
            sample(&self.unexpected),
            if self.first_occurrences_in_order { "in order" } else { "OUT OF ORDER" }
        )
    }
}

fn sample(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = lines.iter().take(5).map(String::as_str).collect();
    format!(" (e.g. {}{})", shown.join(", "), if lines.len() > 5 { ", ..." } else { "" })
}

/// Compares what arrived (`received`, in arrival order) with what was written (`expected`, in write order).
pub fn analyze(expected: &[String], received: &[String]) -> LineReport {
    let position: HashMap<&str, usize> = expected.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut unexpected = Vec::new();
    let mut duplicates = 0;
    let mut last_first = None::<usize>;
    let mut in_order = true;
    for line in received {
        match position.get(line.as_str()) {
            None => unexpected.push(line.clone()),
            Some(&pos) => {
                if seen.insert(line.as_str()) {
                    if last_first.is_some_and(|last| pos < last) {
                        in_order = false;
                    }
                    last_first = Some(pos);
                } else {
                    duplicates += 1;
                }
            }
        }
    }
    let missing: Vec<String> = expected.iter().filter(|l| !seen.contains(l.as_str())).cloned().collect();
    LineReport {
        received: received.len(),
        unique: seen.len(),
        exact: received == expected,
        missing,
        duplicates,
        unexpected,
        first_occurrences_in_order: in_order,
    }
}

/// Polls `path` until every line of `expected` is in it (duplicates allowed), then returns the comparison.
pub async fn wait_for_lines(path: &Path, expected: &[String], timeout: Duration) -> anyhow::Result<LineReport> {
    let last = std::sync::Mutex::new(LineReport::default());
    let result = wait_until(timeout, format!("all {} lines in {}", expected.len(), path.display()), || {
        let report = read_complete_lines(path).map(|got| analyze(expected, &got));
        let last = &last;
        async move {
            let report = report?;
            let done = report.missing.is_empty();
            *last.lock().unwrap_or_else(|e| e.into_inner()) = report.clone();
            Ok(done.then_some(report))
        }
    })
    .await;
    result.map_err(|e| e.context(format!("last seen: {}", last.lock().unwrap_or_else(|e| e.into_inner()))))
}

/// Appends lines to a file in batches from a background task, like an application writing a log.
pub struct LineWriter {
    handle: JoinHandle<anyhow::Result<()>>,
    written: Arc<AtomicUsize>,
    total: usize,
    path: PathBuf,
}

impl LineWriter {
    /// Starts appending `lines` to `path`, `batch` lines every `interval`.
    pub fn start(path: &Path, lines: Vec<String>, batch: usize, interval: Duration) -> LineWriter {
        let written = Arc::new(AtomicUsize::new(0));
        let total = lines.len();
        let progress = written.clone();
        let file = path.to_path_buf();
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for chunk in lines.chunks(batch.max(1)) {
                ticker.tick().await;
                append_lines(&file, chunk)?;
                progress.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            Ok(())
        });
        LineWriter { handle, written, total, path: path.to_path_buf() }
    }

    /// Lines appended so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` lines have been appended.
    pub async fn wait_written(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let path = self.path.display().to_string();
        wait_until(timeout, format!("{n} lines appended to {path}"), || async {
            Ok((self.written() >= n || self.handle.is_finished()).then_some(()))
        })
        .await?;
        if self.written() < n {
            bail!("the writer stopped after {} of {n} lines", self.written());
        }
        Ok(())
    }

    /// Waits for the writer to append everything.
    pub async fn finish(self) -> anyhow::Result<()> {
        let LineWriter { handle, written, total, .. } = self;
        handle.await.context("writer task panicked")??;
        let written = written.load(Ordering::SeqCst);
        if written != total {
            bail!("writer wrote {written} of {total} lines");
        }
        Ok(())
    }
}
