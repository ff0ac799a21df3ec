//! Exponential reconnection backoff with jitter, as in the official clients.
//!
//! After a [`Backoff::reset`] (and on a fresh `Backoff`) the first retry is immediate, like the
//! Go client's first reconnection attempt. The following delays start at the initial delay
//! (100 ms by default) and double up to the maximum (60 s by default). Each non-zero delay gets
//! a jitter of up to +20 % of itself, like the Go client, so that many clients cut off at the
//! same moment do not all come back at the same moment. A delay therefore never exceeds
//! 1.2 times the maximum.
//!
//! The jitter is drawn either from a value the caller supplies ([`Backoff::next_delay`], fully
//! deterministic) or from a small xorshift generator inside the `Backoff`
//! ([`Backoff::next_delay_random`]), seeded per process by [`Backoff::new`] or explicitly by
//! [`Backoff::with_seed`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The first non-zero delay of a default [`Backoff`]: 100 ms.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The largest delay, before jitter, of a default [`Backoff`]: 60 s.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// The jitter added to a delay `d` is `d * JITTER_PERCENT / 100 * random`, `random` in `[0, 1)`.
const JITTER_PERCENT: u128 = 20;
/// Resolution at which the random draw is applied.
const RANDOM_STEPS: u128 = 1_000_000;

/// Exponential backoff state for one reconnecting connection, producer or consumer.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The base (jitter-free) delay of the next non-immediate attempt; `None` when the next
    /// attempt is the immediate one.
    next_base: Option<Duration>,
    attempts: u32,
    rng: XorShift64,
}

impl Backoff {
    /// A backoff whose delays go 0, `initial`, `2 * initial`, ... up to `max`, plus jitter,
    /// with its internal generator seeded differently in every process and every call.
    ///
    /// An `initial` larger than `max` is lowered to `max`. A zero `initial` makes every retry
    /// immediate.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff::with_seed(initial, max, process_seed())
    }

    /// Like [`Backoff::new`], with the internal generator used by
    /// [`Backoff::next_delay_random`] seeded with `seed`, so the jittered sequence is
    /// reproducible.
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial: initial.min(max),
            max,
            next_base: None,
            attempts: 0,
            rng: XorShift64::new(seed),
        }
    }

    /// The first non-zero delay, before jitter.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The largest delay, before jitter; with jitter a delay stays below `1.2 * max`.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How many delays have been handed out since construction or the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay to wait before the next attempt, with a jitter of `base * 0.2 * random`.
    ///
    /// `random` should be uniform in `[0, 1)`; values outside are clamped into it and NaN
    /// counts as 0. The first delay after a reset is [`Duration::ZERO`] with no jitter.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        let Some(base) = self.next_base else {
            self.next_base = Some(self.initial);
            return Duration::ZERO;
        };
        self.next_base = Some(base.saturating_mul(2).min(self.max));
        base.saturating_add(jitter(base, random))
    }

    /// The delay to wait before the next attempt, with the jitter drawn from the internal
    /// generator. Otherwise the same as [`Backoff::next_delay`].
    pub fn next_delay_random(&mut self) -> Duration {
        let random = self.rng.next_f64();
        self.next_delay(random)
    }

    /// Starts over after a success: the next attempt is immediate, then `initial`, and so on.
    pub fn reset(&mut self) {
        self.next_base = None;
        self.attempts = 0;
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 60 s, the defaults of the official clients.
    fn default() -> Backoff {
        Backoff::new(DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY)
    }
}

/// `base * JITTER_PERCENT% * random`, in integer nanoseconds so it cannot overflow or panic.
fn jitter(base: Duration, random: f64) -> Duration {
    let steps = if random.is_nan() || random <= 0.0 {
        0
    } else {
        // `as` saturates; the clamp keeps the draw strictly below 1.
        ((random * RANDOM_STEPS as f64) as u128).min(RANDOM_STEPS - 1)
    };
    let nanos = base.as_nanos() * JITTER_PERCENT * steps / (100 * RANDOM_STEPS);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9 and fits.
    let subsec = (nanos % 1_000_000_000) as u32;
    Duration::new(secs, subsec)
}

/// A per-process, per-call seed from std's randomly keyed hasher (its keys are drawn at random
/// per process and change with every `RandomState`) and a call counter: no clock read.
fn process_seed() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
}

/// Marsaglia's xorshift64: small, fast and good enough for jitter (not for cryptography).
#[derive(Debug, Clone)]
struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    fn new(seed: u64) -> XorShift64 {
        // The all-zero state is a fixed point; replace it with an arbitrary odd constant.
        let state = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        XorShift64 { state }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn default_sequence_without_jitter() {
        let mut b = Backoff::default();
        assert_eq!(b.initial(), MS(100));
        assert_eq!(b.max(), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..13).map(|_| b.next_delay(0.0)).collect();
        let expected: Vec<Duration> = [
            0, 100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 60_000, 60_000,
        ]
        .into_iter()
        .map(MS)
        .collect();
        assert_eq!(delays, expected);
        assert_eq!(b.attempts(), 13);
    }

    #[test]
    fn capped_at_max_for_good() {
        let mut b = Backoff::with_seed(MS(100), Duration::from_secs(60), 1);
        for _ in 0..10_000 {
            b.next_delay(0.0);
        }
        assert_eq!(b.next_delay(0.0), Duration::from_secs(60));
        assert_eq!(b.attempts(), 10_001);
    }

    #[test]
    fn custom_initial_and_max() {
        let mut b = Backoff::new(MS(30), MS(100));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(delays, [0, 30, 60, 100, 100, 100].map(MS));
    }

    #[test]
    fn initial_above_max_is_lowered() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.initial(), Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::ZERO);
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1));
    }

    #[test]
    fn zero_initial_means_always_immediate() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        for _ in 0..5 {
            assert_eq!(b.next_delay(0.99), Duration::ZERO);
        }
    }

    #[test]
    fn reset_starts_over_with_an_immediate_attempt() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(0.5);
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(0.5), Duration::ZERO);
        assert_eq!(b.next_delay(0.0), MS(100));
        assert_eq!(b.next_delay(0.0), MS(200));
        b.reset();
        assert_eq!(b.next_delay_random(), Duration::ZERO);
        assert_eq!(b.next_delay(0.0), MS(100));
    }

    #[test]
    fn jitter_is_up_to_twenty_percent() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.9), Duration::ZERO);
        assert_eq!(b.next_delay(0.5), MS(110));
        assert_eq!(b.next_delay(0.25), MS(210));
        assert_eq!(
            b.next_delay(0.999_999),
            MS(400) + Duration::from_nanos(79_999_920)
        );
    }

    #[test]
    fn random_outside_unit_interval_is_clamped() {
        let mut b = Backoff::default();
        b.next_delay(0.0);
        assert_eq!(b.next_delay(-3.0), MS(100));
        assert_eq!(b.next_delay(f64::NAN), MS(200));
        let d = b.next_delay(7.0);
        assert!(d < MS(480) && d > MS(479), "{d:?}");
        let d = b.next_delay(f64::INFINITY);
        assert!(d < MS(960) && d > MS(959), "{d:?}");
        assert_eq!(b.next_delay(f64::NEG_INFINITY), MS(1_600));
    }

    #[test]
    fn jitter_bounds_over_many_draws() {
        for seed in [0, 1, 42, u64::MAX] {
            let mut b = Backoff::with_seed(MS(100), Duration::from_secs(60), seed);
            let mut jitter_sum = 0f64;
            let mut jitter_n = 0u32;
            for round in 0..50 {
                assert_eq!(b.next_delay_random(), Duration::ZERO);
                let mut base = MS(100);
                for _ in 0..40 {
                    let d = b.next_delay_random();
                    assert!(d >= base, "seed {seed} round {round}: {d:?} < {base:?}");
                    assert!(
                        d < base.mul_f64(1.2),
                        "seed {seed} round {round}: {d:?} >= 1.2 * {base:?}"
                    );
                    assert!(d < Duration::from_secs(72));
                    jitter_sum += (d - base).as_secs_f64() / base.as_secs_f64();
                    jitter_n += 1;
                    base = (base * 2).min(Duration::from_secs(60));
                }
                b.reset();
            }
            // The mean relative jitter of a uniform draw is 10 %.
            let mean = jitter_sum / f64::from(jitter_n);
            assert!(
                (0.09..0.11).contains(&mean),
                "seed {seed}: mean jitter {mean}"
            );
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Backoff::with_seed(MS(100), Duration::from_secs(60), 7);
        let mut b = Backoff::with_seed(MS(100), Duration::from_secs(60), 7);
        let mut c = Backoff::with_seed(MS(100), Duration::from_secs(60), 8);
        let da: Vec<Duration> = (0..20).map(|_| a.next_delay_random()).collect();
        let db: Vec<Duration> = (0..20).map(|_| b.next_delay_random()).collect();
        let dc: Vec<Duration> = (0..20).map(|_| c.next_delay_random()).collect();
        assert_eq!(da, db);
        assert_ne!(da, dc);
    }

    #[test]
    fn huge_max_does_not_overflow() {
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::MAX, 3);
        for _ in 0..200 {
            let d = b.next_delay(0.999);
            assert!(d <= Duration::MAX);
        }
        assert_eq!(b.next_delay(0.999), Duration::MAX);
    }

    #[test]
    fn generator_stays_in_unit_interval() {
        let mut rng = XorShift64::new(0);
        for _ in 0..100_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
