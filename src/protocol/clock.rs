//! Wall-clock time for the sans-IO cores, derived from the monotonic instants they are given:
//! the cores read no clock, yet stamp messages with a publish time in ms since the Unix epoch.

use std::time::Instant;

/// Maps monotonic instants to Unix milliseconds from one reading of both clocks taken by the
/// shell when it builds a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    base: Instant,
    base_unix_ms: u64,
}

impl WallClock {
    /// `base_unix_ms` is the wall clock (ms since the Unix epoch) at the instant `base`.
    pub fn new(base: Instant, base_unix_ms: u64) -> Self {
        WallClock { base, base_unix_ms }
    }

    /// The wall clock at `now` (never before the base reading).
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.base).as_millis();
        self.base_unix_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn follows_the_monotonic_clock_from_its_base() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0 + Duration::from_secs(1), 1_000_000);
        assert_eq!(clock.unix_ms(t0 + Duration::from_millis(3500)), 1_002_500);
        assert_eq!(clock.unix_ms(t0), 1_000_000, "never before the base");
    }
}
