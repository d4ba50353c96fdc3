//! Polling instead of sleeping: every wait in these tests is "until this is observed, or fail after a timeout".

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Ok(Some(value))`, and returns that value.
///
/// `Ok(None)` means "not yet". An `Err` also counts as "not yet" (a process may be restarting, a port not open yet),
/// but the last error is reported if the timeout passes, together with `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: impl Display, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error: Option<anyhow::Error> = None;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() >= timeout {
            match last_error {
                Some(e) => {
                    bail!("timed out after {timeout:?} ({attempts} checks) waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} ({attempts} checks) waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
