//! Self-fencing: the agent's own view of its lease, and the reconnect backoff.
//!
//! The control plane keeps the agent's etcd lease alive only when heartbeats arrive. The agent cannot see the lease,
//! but it knows when it sent each heartbeat: once acknowledged, the lease was alive at (at least) that send time,
//! so it lives until `send time + lease_ttl`. Past that (minus a safety margin for clock rates and the control
//! plane's own latency) the agent's tasks may already run elsewhere, and it must stop them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::fence::LeaseFence;

/// At most this many unacknowledged heartbeats are remembered (a silent control plane must not grow memory).
const MAX_UNACKED: usize = 1024;

/// Tracks heartbeats and acks and says when the lease must be presumed expired.
#[derive(Debug)]
pub(crate) struct LeaseClock {
    ttl: Duration,
    margin: Duration,
    /// Send times of heartbeats not yet acknowledged, oldest first.
    unacked: VecDeque<(u64, Instant)>,
    /// Latest send time of an acknowledged heartbeat (or Hello): the lease was alive then.
    renewed_at: Option<Instant>,
    /// Where the tasks read [`LeaseClock::fence_at`] (kept equal to it).
    fence: Arc<LeaseFence>,
}

/// What a renewal means for the tasks already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The lease was known alive without a gap: the tasks may go on.
    Continuous,
    /// The renewal came after the deadline had passed: for a while the lease may have been gone and the tasks may
    /// run elsewhere. The fence was closed before the deadline moved, so tasks from before stay fenced.
    AfterLapse,
}

impl LeaseClock {
    pub fn new(ttl: Duration, fence: Arc<LeaseFence>) -> Self {
        LeaseClock { ttl, margin: safety_margin(ttl), unacked: VecDeque::new(), renewed_at: None, fence }
    }

    /// Takes the TTL of a new session's Welcome; the renewal time carries over (the lease may be the same one).
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
        self.margin = safety_margin(ttl);
        self.unacked.clear();
        self.fence.set_deadline(self.fence_at());
    }

    /// Takes the heartbeat interval of a new session's Welcome: once two heartbeats in a row are overdue the lease
    /// is at risk (sinks then commit what they wrote at once, see `FenceTicket::at_risk_from`).
    pub fn set_heartbeat_interval(&mut self, every: Duration) {
        self.fence.set_warning(warning_window(self.ttl.saturating_sub(self.margin), every));
    }

    pub fn heartbeat_sent(&mut self, seq: u64, at: Instant) {
        if self.unacked.len() == MAX_UNACKED {
            self.unacked.pop_front();
        }
        self.unacked.push_back((seq, at));
    }

    /// An ack confirms its heartbeat and, since the control plane answers in order, every earlier one.
    pub fn acked(&mut self, seq: u64) -> Renewal {
        let mut confirmed = None;
        while let Some(&(sent_seq, at)) = self.unacked.front() {
            if sent_seq > seq {
                break;
            }
            self.unacked.pop_front();
            if sent_seq == seq {
                confirmed = Some(at);
            }
        }
        match confirmed {
            Some(at) => self.renewed(at),
            None => Renewal::Continuous,
        }
    }

    /// The lease was alive at `at` (a heartbeat sent then was acknowledged, or a Welcome answered a Hello sent then).
    pub fn renewed(&mut self, at: Instant) -> Renewal {
        // Judged on the clock now, not at `at`: a process paused after sending must not count the pause as covered.
        let lapsed = self.fence_at().is_some_and(|deadline| Instant::now() >= deadline);
        if lapsed {
            self.fence.close();
        }
        self.renewed_at = Some(self.renewed_at.map_or(at, |prev| prev.max(at)));
        self.fence.set_deadline(self.fence_at());
        if lapsed { Renewal::AfterLapse } else { Renewal::Continuous }
    }

    /// When the agent must consider itself fenced; `None` before any renewal (nothing runs then).
    pub fn fence_at(&self) -> Option<Instant> {
        self.renewed_at.map(|at| at + self.ttl.saturating_sub(self.margin))
    }

    #[cfg(test)]
    pub fn is_expired(&self, now: Instant) -> bool {
        self.fence_at().is_some_and(|deadline| now >= deadline)
    }
}

/// 20% of the TTL but at least 500 ms, and never more than half the TTL.
fn safety_margin(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(500)).min(ttl / 2)
}

/// How long before the fence the lease counts as at risk: what is left of the lease once two heartbeat intervals
/// passed without an acknowledgement (normally the deadline is at most one interval plus a round trip old), or half
/// the lease when heartbeats are so sparse that this leaves too little.
fn warning_window(usable: Duration, every: Duration) -> Duration {
    let window = usable.saturating_sub(every * 2);
    if window < usable / 4 { usable / 2 } else { window }
}

/// Exponential reconnect backoff with jitter, so a fleet of agents does not reconnect in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    cap: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Backoff { initial, cap, current: initial }
    }

    /// The next delay: uniformly between half and all of the current step; the step doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.cap);
        let half = step / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_window_leaves_two_heartbeats() {
        let ms = Duration::from_millis;
        assert_eq!(warning_window(ms(2400), ms(500)), ms(1400), "3 s lease, 500 ms heartbeats");
        assert_eq!(warning_window(ms(2400), ms(1000)), ms(1200), "too sparse: half the lease");
    }

    #[test]
    fn margin_bounds() {
        assert_eq!(safety_margin(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(safety_margin(Duration::from_secs(1)), Duration::from_millis(500));
        assert_eq!(safety_margin(Duration::from_millis(600)), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn fences_when_no_heartbeat_is_acknowledged_in_time() {
        let mut lease = LeaseClock::new(Duration::from_secs(10), Arc::default());
        assert_eq!(lease.fence_at(), None, "nothing to fence before the first renewal");
        let hello = Instant::now();
        lease.renewed(hello);
        assert_eq!(lease.fence_at(), Some(hello + Duration::from_secs(8)));

        // Heartbeats keep going out but are never acknowledged: the deadline stays put.
        for seq in 1..=7 {
            tokio::time::advance(Duration::from_secs(1)).await;
            lease.heartbeat_sent(seq, Instant::now());
        }
        assert!(!lease.is_expired(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(lease.is_expired(Instant::now()), "8 s after the last renewal with a 10 s TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_extends_from_the_send_time_not_the_ack_time() {
        let mut lease = LeaseClock::new(Duration::from_secs(10), Arc::default());
        let start = Instant::now();
        lease.renewed(start);
        lease.heartbeat_sent(1, start + Duration::from_secs(1));
        lease.heartbeat_sent(2, start + Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(7)).await;
        // A late ack for heartbeat 1 only proves the lease alive at its send time.
        lease.acked(1);
        assert_eq!(lease.fence_at(), Some(start + Duration::from_secs(9)));
        lease.acked(2);
        assert_eq!(lease.fence_at(), Some(start + Duration::from_secs(10)));
        // Stale or repeated acks never move the deadline back.
        lease.acked(1);
        assert_eq!(lease.fence_at(), Some(start + Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_acks_do_not_renew() {
        let mut lease = LeaseClock::new(Duration::from_secs(10), Arc::default());
        let start = Instant::now();
        lease.renewed(start);
        tokio::time::advance(Duration::from_secs(5)).await;
        lease.acked(42);
        assert_eq!(lease.fence_at(), Some(start + Duration::from_secs(8)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_session_keeps_the_renewal_but_forgets_old_heartbeats() {
        let mut lease = LeaseClock::new(Duration::from_secs(10), Arc::default());
        let start = Instant::now();
        lease.renewed(start);
        lease.heartbeat_sent(1, start + Duration::from_secs(1));
        lease.set_ttl(Duration::from_secs(5));
        lease.acked(1);
        assert_eq!(lease.fence_at(), Some(start + Duration::from_secs(4)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ack_after_the_deadline_closes_the_fence_before_extending_it() {
        let fence = Arc::new(LeaseFence::default());
        let mut lease = LeaseClock::new(Duration::from_secs(10), fence.clone());
        let start = Instant::now();
        assert_eq!(lease.renewed(start), Renewal::Continuous);
        let running = fence.ticket();
        assert!(running.allows());
        // Sent just before a 12 s pause of the process, acknowledged right after it.
        lease.heartbeat_sent(1, start + Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(13)).await;
        assert!(!running.allows(), "the deadline passed during the pause");
        lease.heartbeat_sent(2, Instant::now());
        assert_eq!(lease.acked(2), Renewal::AfterLapse);
        assert!(!running.allows(), "a renewal after the lapse must not revive a task from before it");
        assert!(fence.ticket().allows());
        assert_eq!(lease.acked(2), Renewal::Continuous);
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay <= Duration::from_secs(5), "{delay:?}");
        }
        let capped = backoff.next_delay();
        assert!(capped >= Duration::from_millis(2500), "{capped:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
