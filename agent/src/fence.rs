//! The lease fence that tasks check where their effects happen: before each batch is produced or put, and before
//! each offset commit.
//!
//! The session knows when the lease may expire (`LeaseClock::fence_at`); it publishes that deadline here. A task
//! holds a [`FenceTicket`] taken when it started and asks it, on the monotonic clock, right before acting — never
//! trusting a wish that may have been sitting in a channel or a socket while the process was paused (SIGSTOP, a
//! long GC-like stall, a VM migration): after such a pause the deadline is simply found in the past.
//!
//! A ticket is also tied to the fence's generation. Once the deadline lapsed (or the session fenced for any other
//! reason) the generation moves on, so a later renewal — a new session, or a heartbeat acknowledged after the
//! pause — never brings the tasks started before the lapse back: their successors get new tickets.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
struct State {
    /// Until when the lease is known to be alive (minus the safety margin); `None` before the first renewal.
    deadline: Option<Instant>,
    /// Moves on at every fence: tickets of an older generation never allow anything again.
    generation: u64,
    /// How long before the deadline a renewal is overdue (heartbeats are missing): from then on sinks commit what
    /// they wrote at once, so that little is left uncommitted if the deadline passes.
    warning: Duration,
}

/// Shared between the session (which moves the deadline) and every task (which checks it).
#[derive(Debug, Default)]
pub(crate) struct LeaseFence {
    state: Mutex<State>,
}

impl LeaseFence {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the two plain fields inconsistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A ticket for a task starting now.
    pub fn ticket(self: &Arc<Self>) -> FenceTicket {
        FenceTicket { fence: self.clone(), generation: self.state().generation }
    }

    /// The lease lives (at least) until `deadline`.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.state().deadline = deadline;
    }

    /// A renewal is overdue once the deadline is less than `warning` away (see [`FenceTicket::at_risk_from`]).
    pub fn set_warning(&self, warning: Duration) {
        self.state().warning = warning;
    }

    /// Voids every ticket handed out so far (the session fenced: the tasks may already run elsewhere).
    pub fn close(&self) {
        self.state().generation += 1;
    }
}

/// A task's right to act, as long as its generation is current and the deadline has not passed.
#[derive(Debug, Clone)]
pub(crate) struct FenceTicket {
    fence: Arc<LeaseFence>,
    generation: u64,
}

impl FenceTicket {
    /// True while the task may produce, put or commit. Read the clock here, right before the effect.
    pub fn allows(&self) -> bool {
        let state = self.fence.state();
        state.generation == self.generation && state.deadline.is_some_and(|deadline| Instant::now() < deadline)
    }

    /// From when on the lease is at risk: renewals are overdue and the deadline is near (`None` before the first
    /// renewal, or when no warning window is set). A sink commits what it wrote at once from then on, while it still
    /// may: after a self-fence only what was in flight is read again.
    pub fn at_risk_from(&self) -> Option<Instant> {
        let state = self.fence.state();
        if state.warning.is_zero() {
            return None;
        }
        state.deadline.map(|deadline| deadline.checked_sub(state.warning).unwrap_or(deadline))
    }

    /// A ticket that always allows (unit tests of the task loops, which have no session).
    #[cfg(test)]
    pub fn unfenced() -> FenceTicket {
        let fence = Arc::new(LeaseFence::default());
        fence.set_deadline(Some(Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)));
        fence.ticket()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ticket_allows_until_the_deadline() {
        let fence = Arc::new(LeaseFence::default());
        let ticket = fence.ticket();
        assert!(!ticket.allows(), "nothing before the first renewal");
        fence.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
        assert!(ticket.allows());
        // A pause of the whole process looks like this to the task: time jumped past the deadline.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!ticket.allows());
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_at_risk_a_warning_window_before_the_deadline() {
        let fence = Arc::new(LeaseFence::default());
        let ticket = fence.ticket();
        let deadline = Instant::now() + Duration::from_secs(2);
        fence.set_deadline(Some(deadline));
        assert_eq!(ticket.at_risk_from(), None, "no window set");
        fence.set_warning(Duration::from_millis(1500));
        assert_eq!(ticket.at_risk_from(), Some(deadline - Duration::from_millis(1500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_after_a_fence_does_not_revive_old_tickets() {
        let fence = Arc::new(LeaseFence::default());
        fence.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
        let old = fence.ticket();
        tokio::time::advance(Duration::from_secs(3)).await;
        fence.close();
        fence.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
        assert!(!old.allows(), "a task from before the fence stays fenced");
        assert!(fence.ticket().allows(), "a task started after the renewal may act");
    }
}
