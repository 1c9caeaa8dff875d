//! When to restart the mixer. Pure policy: the driver reports starts, exits and the age of the
//! newest HLS part, and asks how long to wait and whether the running mixer is stuck.

use std::time::{Duration, Instant};

/// Restart and stall limits.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Delay before the second restart in a row; it doubles with each further one. The first
    /// restart is immediate so a single crash costs viewers as little as possible.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A mixer that ran this long had recovered: its next crash counts as the first again.
    pub stable_after: Duration,
    /// The LL-HLS part target: a mixer with no new part for 3 × this is stuck.
    pub part_target: Duration,
    /// ... but never sooner than this: with 1/3 s parts, 3 × is 1 s, and a mixer sharing two busy
    /// cores with browsers can be that late without being stuck (a restart would only add a
    /// discontinuity to the delay).
    pub min_stall: Duration,
    /// Time a fresh mixer gets to produce its first part.
    pub startup_grace: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(30),
            part_target: Duration::from_millis(500),
            min_stall: Duration::from_millis(1500),
            startup_grace: Duration::from_secs(10),
        }
    }
}

/// The restart history of one broadcast's mixer.
#[derive(Debug, Clone)]
pub struct Supervision {
    policy: RestartPolicy,
    /// Crashes in a row.
    failures: u32,
    started_at: Option<Instant>,
    /// Parts published when the current mixer started: stall detection waits for a new one.
    parts_at_start: u64,
}

impl Supervision {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            started_at: None,
            parts_at_start: 0,
        }
    }

    /// Crashes in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A mixer process started; `parts` is the session's published-part count now.
    pub fn started(&mut self, now: Instant, parts: u64) {
        self.started_at = Some(now);
        self.parts_at_start = parts;
    }

    /// The mixer exited or was killed: how long to wait before starting the next one.
    pub fn exited(&mut self, now: Instant) -> Duration {
        let ran = self
            .started_at
            .take()
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        if ran >= self.policy.stable_after {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures <= 1 {
            return Duration::ZERO;
        }
        let shift = (self.failures - 2).min(16);
        self.policy
            .min_backoff
            .saturating_mul(1 << shift)
            .min(self.policy.max_backoff)
    }

    /// Whether the running mixer is stuck: no new part for 3 × the part target (at least
    /// `min_stall`), or none at all
    /// within the start-up grace. `parts` and `last_part_age` come from the HLS session.
    pub fn stalled(&self, now: Instant, parts: u64, last_part_age: Option<Duration>) -> bool {
        let Some(started) = self.started_at else {
            return false;
        };
        let running = now.saturating_duration_since(started);
        if parts <= self.parts_at_start {
            return running > self.policy.startup_grace;
        }
        let limit = (self.policy.part_target * 3).max(self.policy.min_stall);
        last_part_age.is_some_and(|age| age > limit) && running > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_crash_restarts_at_once_then_backs_off_to_the_cap() {
        let mut s = Supervision::new(RestartPolicy::default());
        let t0 = Instant::now();
        let mut delays = Vec::new();
        for i in 0..8 {
            let t = t0 + MS * (i * 100);
            s.started(t, 0);
            delays.push(s.exited(t + MS * 50).as_millis());
        }
        assert_eq!(delays, vec![0, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(s.failures(), 8);
    }

    #[test]
    fn a_long_run_forgives_earlier_crashes() {
        let mut s = Supervision::new(RestartPolicy::default());
        let t0 = Instant::now();
        s.started(t0, 0);
        s.exited(t0);
        s.started(t0, 0);
        assert_eq!(s.exited(t0 + MS), MS * 500);
        s.started(t0, 0);
        assert_eq!(s.exited(t0 + Duration::from_secs(31)), Duration::ZERO);
    }

    #[test]
    fn stall_needs_three_part_targets_without_a_new_part() {
        let mut s = Supervision::new(RestartPolicy::default());
        let t0 = Instant::now();
        assert!(!s.stalled(t0, 0, None), "not running");
        s.started(t0, 10);
        // Start-up: no part yet is fine for the grace period, not after.
        assert!(!s.stalled(
            t0 + Duration::from_secs(9),
            10,
            Some(Duration::from_secs(60))
        ));
        assert!(s.stalled(
            t0 + Duration::from_secs(11),
            10,
            Some(Duration::from_secs(60))
        ));
        // Producing: a 1.4 s gap is fine, 1.6 s is a stall.
        let later = t0 + Duration::from_secs(20);
        assert!(!s.stalled(later, 50, Some(MS * 1400)));
        assert!(s.stalled(later, 50, Some(MS * 1600)));
    }

    #[test]
    fn short_parts_still_get_the_minimum_stall_time() {
        let mut s = Supervision::new(RestartPolicy {
            part_target: MS * 334,
            ..RestartPolicy::default()
        });
        let t0 = Instant::now();
        s.started(t0, 0);
        let later = t0 + Duration::from_secs(20);
        // 3 × 334 ms = 1 s would call a 1.2 s gap a stall; the 1.5 s floor does not.
        assert!(!s.stalled(later, 50, Some(MS * 1200)));
        assert!(s.stalled(later, 50, Some(MS * 1600)));
    }
}
