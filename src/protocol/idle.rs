//! When a connection nobody uses is let go (`connection_max_idle`, the Java client's
//! `connectionMaxIdleSeconds`): a connection with no producer, consumer, topic watcher or
//! request under way is idle; once it has been idle for the maximum it is closed, and the next
//! user of that broker opens a new one. Time is an input.

use std::time::{Duration, Instant};

/// The default maximum idle time: 60 s, as in the Java client.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(60);

/// Tracks how long a connection has been unused.
#[derive(Debug, Clone)]
pub struct IdleTimer {
    max: Option<Duration>,
    since: Option<Instant>,
}

impl IdleTimer {
    /// A timer that lets a connection go after `max` unused (None: never), starting busy.
    pub fn new(max: Option<Duration>) -> Self {
        IdleTimer { max, since: None }
    }

    /// Records whether the connection is in use at `now`; an idle period starts at the first
    /// update that finds it unused and ends at the first that finds it used.
    pub fn update(&mut self, now: Instant, in_use: bool) {
        if in_use {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
    }

    /// When the connection is to be let go, if it stays unused.
    pub fn deadline(&self) -> Option<Instant> {
        Some(self.since? + self.max?)
    }

    /// Whether it has been unused for the maximum at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn expires_after_the_max_unused_and_restarts_when_used() {
        let t0 = Instant::now();
        let mut idle = IdleTimer::new(Some(S(60)));
        idle.update(t0, true);
        assert_eq!(idle.deadline(), None);
        idle.update(t0 + S(1), false);
        idle.update(t0 + S(30), false);
        assert_eq!(
            idle.deadline(),
            Some(t0 + S(61)),
            "the first unused moment counts"
        );
        assert!(!idle.expired(t0 + S(60)));
        assert!(idle.expired(t0 + S(61)));
        idle.update(t0 + S(40), true);
        assert!(!idle.expired(t0 + S(100)));
        idle.update(t0 + S(100), false);
        assert_eq!(idle.deadline(), Some(t0 + S(160)));
    }

    #[test]
    fn without_a_max_never_expires() {
        let t0 = Instant::now();
        let mut idle = IdleTimer::new(None);
        idle.update(t0, false);
        assert_eq!(idle.deadline(), None);
        assert!(!idle.expired(t0 + S(1_000_000)));
    }
}
