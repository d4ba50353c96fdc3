//! A child process owned by a test: output to a log file in the test's directory, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::env::TestEnv;

/// A running child process. Dropping it sends SIGKILL (so a failing test never leaks processes).
pub struct Process {
    label: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdin closed and stdout+stderr appended to a fresh log file named after `label`.
    pub fn spawn(env: &TestEnv, label: &str, mut command: Command) -> anyhow::Result<Process> {
        let log = env.new_log_path(label);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = file.try_clone()?;
        command.stdin(Stdio::null()).stdout(file).stderr(err);
        // Plain text logs (no ANSI colours), so tests and people can search them.
        command.env("NO_COLOR", "1").env("RUST_BACKTRACE", "1");
        let child = command.spawn().with_context(|| format!("cannot start {label}: {command:?}"))?;
        env.register_log(label, &log);
        Ok(Process { label: label.to_string(), child, log, exit: None })
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Fails if the process has exited (with the exit status), for use inside polling loops.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => bail!("{} exited unexpectedly ({status}); log: {}", self.label, self.log.display()),
        }
    }

    /// SIGKILL (a crash), and reap it.
    pub fn kill9(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        let _ = self.child.kill();
        self.exit = self.child.wait().ok();
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) with `kill`.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let sent = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status()?;
        if !sent.success() {
            bail!("kill -{name} {} ({}) failed", self.pid(), self.label);
        }
        Ok(())
    }

    /// SIGTERM (a graceful stop), then waits up to `timeout` for the exit. SIGKILLs and fails if it does not exit.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Ok(status);
        }
        // `kill` instead of libc: the workspace forbids unsafe code.
        let sent = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status()?;
        if !sent.success() {
            bail!("kill -TERM {} ({}) failed", self.pid(), self.label);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                self.kill9();
                bail!("{} did not exit within {timeout:?} after SIGTERM (killed it)", self.label);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
