//! The hosts of a multi-host service URL (`pulsar://a:6650,b:6650,c:6650`): which one to try
//! next, as the official clients' service name resolver. Hosts are taken in turn; one that
//! fails is set aside (quarantined) for a while, then tried again; a quarantine doubles with
//! every failure in a row, up to a maximum, and ends on the first success. When every host is
//! quarantined, the one whose quarantine ends first is tried: a client never refuses to try.
//! Time is an input; nothing here reads a clock.

use std::time::{Duration, Instant};

/// The quarantine of a host after its first failure in a row: 60 s, as in the Java client
/// (`serviceUrlQuarantineInitDuration`).
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(60);
/// The longest quarantine: 1 hour (the Java client allows up to a day; a host back after a
/// long outage is then found within the hour even with others up).
pub const DEFAULT_MAX_QUARANTINE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
struct Host {
    /// Until when it is set aside (None: believed up).
    down_until: Option<Instant>,
    /// Its current quarantine (doubles per failure in a row).
    quarantine: Duration,
}

/// The rotation over the hosts of a service URL, with quarantines.
#[derive(Debug, Clone)]
pub struct HostSelector {
    hosts: Vec<Host>,
    next: usize,
    initial: Duration,
    max: Duration,
}

impl HostSelector {
    /// A rotation over `count` hosts (at least one is assumed by [`HostSelector::pick`]), with
    /// quarantines from `initial` doubling up to `max`. A zero `initial` disables them.
    pub fn new(count: usize, initial: Duration, max: Duration) -> Self {
        HostSelector {
            hosts: vec![
                Host {
                    down_until: None,
                    quarantine: Duration::ZERO,
                };
                count
            ],
            next: 0,
            initial: initial.min(max),
            max,
        }
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there is no host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The index of the host to try at `now`: the next one in turn that is not quarantined,
    /// or, when all are, the one whose quarantine ends first. `None` without hosts.
    pub fn pick(&mut self, now: Instant) -> Option<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        for step in 0..n {
            let i = (self.next + step) % n;
            let host = &mut self.hosts[i];
            if host.down_until.is_some_and(|until| until <= now) {
                host.down_until = None;
            }
            if host.down_until.is_none() {
                self.next = (i + 1) % n;
                return Some(i);
            }
        }
        let soonest = (0..n).min_by_key(|&i| self.hosts[i].down_until)?;
        self.next = (soonest + 1) % n;
        Some(soonest)
    }

    /// Host `i` failed at `now` (connection refused, timed out, handshake failed): it is set
    /// aside for its quarantine, twice as long as the last if it failed just before.
    pub fn failed(&mut self, i: usize, now: Instant) {
        let (initial, max) = (self.initial, self.max);
        let Some(host) = self.hosts.get_mut(i) else {
            return;
        };
        if initial.is_zero() {
            return;
        }
        host.quarantine = if host.quarantine.is_zero() {
            initial
        } else {
            host.quarantine.saturating_mul(2).min(max)
        };
        host.down_until = Some(now + host.quarantine);
    }

    /// Host `i` answered: its quarantine ends and the next failure starts from the initial one.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(host) = self.hosts.get_mut(i) {
            host.down_until = None;
            host.quarantine = Duration::ZERO;
        }
    }

    /// Whether host `i` is quarantined at `now`.
    pub fn is_quarantined(&self, i: usize, now: Instant) -> bool {
        self.hosts
            .get(i)
            .and_then(|h| h.down_until)
            .is_some_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    //! The rotation in simulated time.
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn takes_the_hosts_in_turn() {
        let t0 = Instant::now();
        let mut hosts = HostSelector::new(3, S(60), S(3600));
        let picks: Vec<_> = (0..6).map(|_| hosts.pick(t0).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(HostSelector::new(0, S(1), S(1)).pick(t0), None);
    }

    #[test]
    fn skips_a_failed_host_until_its_quarantine_ends() {
        let t0 = Instant::now();
        let mut hosts = HostSelector::new(3, S(60), S(3600));
        assert_eq!(hosts.pick(t0), Some(0));
        hosts.failed(0, t0);
        assert!(hosts.is_quarantined(0, t0));
        let picks: Vec<_> = (0..4).map(|_| hosts.pick(t0 + S(10)).unwrap()).collect();
        assert_eq!(picks, [1, 2, 1, 2], "host 0 is set aside");
        // After 60 s it is tried again.
        let later = t0 + S(60);
        let picks: Vec<_> = (0..3).map(|_| hosts.pick(later).unwrap()).collect();
        assert!(picks.contains(&0), "{picks:?}");
        assert!(!hosts.is_quarantined(0, later));
    }

    #[test]
    fn a_quarantine_doubles_per_failure_in_a_row_up_to_the_max_and_resets_on_success() {
        let t0 = Instant::now();
        let mut hosts = HostSelector::new(2, S(60), S(200));
        hosts.failed(0, t0);
        assert!(hosts.is_quarantined(0, t0 + S(59)));
        assert!(!hosts.is_quarantined(0, t0 + S(60)));
        hosts.failed(0, t0 + S(60)); // 120 s
        assert!(hosts.is_quarantined(0, t0 + S(179)));
        assert!(!hosts.is_quarantined(0, t0 + S(180)));
        hosts.failed(0, t0 + S(180)); // 240 s capped at 200 s
        assert!(hosts.is_quarantined(0, t0 + S(379)));
        assert!(!hosts.is_quarantined(0, t0 + S(380)));
        hosts.succeeded(0);
        assert!(!hosts.is_quarantined(0, t0 + S(380)));
        hosts.failed(0, t0 + S(400)); // back to 60 s
        assert!(!hosts.is_quarantined(0, t0 + S(460)));
    }

    #[test]
    fn with_every_host_down_the_one_back_soonest_is_tried() {
        let t0 = Instant::now();
        let mut hosts = HostSelector::new(3, S(60), S(3600));
        hosts.failed(1, t0);
        hosts.failed(2, t0 + S(1));
        hosts.failed(0, t0 + S(2));
        assert_eq!(hosts.pick(t0 + S(3)), Some(1));
        assert_eq!(hosts.pick(t0 + S(3)), Some(1), "still the soonest");
    }

    #[test]
    fn a_zero_quarantine_never_sets_a_host_aside() {
        let t0 = Instant::now();
        let mut hosts = HostSelector::new(2, Duration::ZERO, S(60));
        hosts.failed(0, t0);
        assert!(!hosts.is_quarantined(0, t0));
        assert_eq!(hosts.pick(t0), Some(0));
        assert_eq!(hosts.pick(t0), Some(1));
    }
}
