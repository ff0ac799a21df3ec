//! Producer and consumer statistics, as the Java client's `ProducerStats` and `ConsumerStats`.
//!
//! # Intervals without a timer
//!
//! Interval values (the per-interval counts, the rates and the latency percentiles) cover the
//! last *complete* stats interval ([`ClientBuilder::stats_interval`], 60 s by default). No task
//! ticks: a recorder rolls its interval over lazily, whenever something is recorded or a
//! snapshot is taken, from the time it is given. Every recorder of a client counts its
//! intervals from the same origin (the client's creation), so the partitions of one producer
//! or consumer close their intervals at the same instants and their sums cover one window.
//!
//! The recorders take `now` as a parameter and never read a clock: the shells (the producer
//! and consumer tasks and handles) pass the time, and the tests pass simulated time.
//!
//! # Cost
//!
//! With stats on, recording a message takes one short lock of its partition's recorder (taken
//! by that partition's task, and by the application on the consumer's receive path), a few
//! additions, and for a producer's receipt one histogram slot: no allocation. With a stats
//! interval of zero there is no recorder at all.
//!
//! [`ClientBuilder::stats_interval`]: crate::ClientBuilder::stats_interval

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The default stats interval (the Java client's `statsIntervalSeconds`).
pub(crate) const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(60);

/// The longest send latency the histogram tells apart (10 minutes, in µs); longer ones count
/// as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Significant digits of the latency histogram: percentiles within 1 %, about 12 KiB each.
const LATENCY_SIGFIG: u8 = 2;

/// A producer's statistics (one partition's, or the sum over its partitions), as the Java
/// client's `ProducerStats`.
///
/// The `num_*` counts, the rates and the latency percentiles cover the last complete stats
/// interval; the `total_*` counts everything since the producer was created.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Messages given to the producer to send in the last interval (each counted once, however
    /// often it is written again after a reconnection).
    pub num_msgs_sent: u64,
    /// Payload bytes of those messages (the application's payloads, before compression and
    /// batching; the Java client counts the bytes of each SEND's payload instead).
    pub num_bytes_sent: u64,
    /// Messages that failed in the last interval (send timeout, broker error, a full queue,
    /// the producer closed).
    pub num_send_failed: u64,
    /// Messages the broker confirmed in the last interval.
    pub num_acks_received: u64,
    /// Messages sent per second over the last interval.
    pub send_msgs_rate: f64,
    /// Payload bytes sent per second over the last interval.
    pub send_bytes_rate: f64,
    /// Median send latency (from the send call to the broker's receipt) in the last interval,
    /// in milliseconds; 0 when nothing was confirmed.
    pub send_latency_ms_50: f64,
    /// The 75th percentile of the send latency, in milliseconds.
    pub send_latency_ms_75: f64,
    /// The 95th percentile of the send latency, in milliseconds.
    pub send_latency_ms_95: f64,
    /// The 99th percentile of the send latency, in milliseconds.
    pub send_latency_ms_99: f64,
    /// The 99.9th percentile of the send latency, in milliseconds.
    pub send_latency_ms_999: f64,
    /// The longest send latency, in milliseconds.
    pub send_latency_ms_max: f64,
    /// Messages queued and not yet confirmed or failed, now.
    pub pending_queue_size: usize,
    /// Messages sent since the producer was created.
    pub total_msgs_sent: u64,
    /// Payload bytes sent since the producer was created.
    pub total_bytes_sent: u64,
    /// Messages failed since the producer was created.
    pub total_send_failed: u64,
    /// Messages confirmed since the producer was created.
    pub total_acks_received: u64,
}

/// A consumer's statistics (one partition's, or the sum over its partitions), as the Java
/// client's `ConsumerStats`.
///
/// The `num_*` counts and the rates cover the last complete stats interval; the `total_*`
/// counts everything since the consumer was created.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Messages the application received in the last interval (taken off the receiver queue;
    /// with a dead-letter policy, also those it sent to the dead-letter topic instead).
    pub num_msgs_received: u64,
    /// Payload bytes of those messages (as delivered: decompressed and decrypted).
    pub num_bytes_received: u64,
    /// Receives that returned an error in the last interval (a message that cannot be
    /// decrypted, a subscription that is gone).
    pub num_receive_failed: u64,
    /// Acknowledgements in the last interval (individual or cumulative, each counted once).
    pub num_acks_sent: u64,
    /// Acknowledgements that failed in the last interval.
    pub num_acks_failed: u64,
    /// Negative acknowledgements in the last interval.
    pub num_nacks: u64,
    /// Entries whose redelivery the consumer asked the broker for in the last interval, after
    /// a negative ack's delay or the ack timeout (on Exclusive and Failover subscriptions such
    /// a request brings back everything unacknowledged; the entries that caused it are
    /// counted). Not a Java field.
    pub num_redeliveries: u64,
    /// Messages received per second over the last interval.
    pub receive_msgs_rate: f64,
    /// Payload bytes received per second over the last interval.
    pub receive_bytes_rate: f64,
    /// Messages received from the broker and not yet taken by the application, now.
    pub msgs_in_receiver_queue: usize,
    /// Messages received since the consumer was created.
    pub total_msgs_received: u64,
    /// Payload bytes received since the consumer was created.
    pub total_bytes_received: u64,
    /// Receive errors since the consumer was created.
    pub total_receive_failed: u64,
    /// Acknowledgements since the consumer was created.
    pub total_acks_sent: u64,
    /// Failed acknowledgements since the consumer was created.
    pub total_acks_failed: u64,
    /// Negative acknowledgements since the consumer was created.
    pub total_nacks: u64,
    /// Redeliveries asked for since the consumer was created.
    pub total_redeliveries: u64,
}

/// Counters that add up.
trait Counts: Copy + Default {
    fn add(&mut self, other: &Self);
}

/// How an interval moved on at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roll {
    /// Still in the current interval.
    Same,
    /// The current interval just ended: it is now the last complete one.
    One,
    /// More than one interval ended: the last complete one saw nothing.
    Many,
}

/// The current interval's counts, the last complete one's and the totals.
#[derive(Debug)]
struct Window<C> {
    /// When the current interval began.
    start: Instant,
    current: C,
    last: C,
    total: C,
}

impl<C: Counts> Window<C> {
    fn new(origin: Instant, interval: Duration, now: Instant) -> Self {
        let mut w = Window {
            start: origin.min(now),
            current: C::default(),
            last: C::default(),
            total: C::default(),
        };
        w.roll(interval, now);
        w
    }

    /// Moves the interval on to the one `now` is in (never back: an earlier `now` is taken as
    /// the current interval's).
    fn roll(&mut self, interval: Duration, now: Instant) -> Roll {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < interval {
            return Roll::Same;
        }
        let len = interval.as_nanos().max(1);
        let ended = elapsed.as_nanos() / len;
        let advance = u64::try_from(ended * len).unwrap_or(u64::MAX);
        self.start = self
            .start
            .checked_add(Duration::from_nanos(advance))
            .unwrap_or(now);
        let roll = if ended == 1 { Roll::One } else { Roll::Many };
        self.last = if roll == Roll::One {
            self.current
        } else {
            C::default()
        };
        self.current = C::default();
        roll
    }

    fn record(&mut self, counts: C) {
        self.current.add(&counts);
        self.total.add(&counts);
    }
}

/// A rate per second over `interval`.
fn rate(count: u64, interval: Duration) -> f64 {
    let secs = interval.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ProducerCounts {
    msgs_sent: u64,
    bytes_sent: u64,
    send_failed: u64,
    acks_received: u64,
}

impl Counts for ProducerCounts {
    fn add(&mut self, o: &Self) {
        self.msgs_sent += o.msgs_sent;
        self.bytes_sent += o.bytes_sent;
        self.send_failed += o.send_failed;
        self.acks_received += o.acks_received;
    }
}

#[derive(Debug)]
struct ProducerState {
    window: Window<ProducerCounts>,
    /// Send latencies of the current interval, in µs; made at the first receipt (an idle
    /// producer holds none).
    latency: Option<Histogram<u32>>,
    /// Send latencies of the last complete interval; none when it had no receipt.
    last_latency: Option<Histogram<u32>>,
}

impl ProducerState {
    fn roll(&mut self, interval: Duration, now: Instant) {
        match self.window.roll(interval, now) {
            Roll::Same => {}
            Roll::One => {
                std::mem::swap(&mut self.latency, &mut self.last_latency);
                if self.last_latency.as_ref().is_some_and(|h| !h.is_empty()) {
                    // A busy interval ended: the older histogram is the current one's again.
                    if let Some(h) = self.latency.as_mut() {
                        h.reset();
                    }
                } else {
                    // An interval without receipts ended: both given back (an idle producer
                    // holds none one interval after its last receipt's).
                    self.latency = None;
                    self.last_latency = None;
                }
            }
            Roll::Many => {
                self.latency = None;
                self.last_latency = None;
            }
        }
    }
}

/// The recorder of one producer partition. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ProducerRecorder {
    interval: Duration,
    state: Mutex<ProducerState>,
}

/// A histogram for send latencies in µs.
fn latency_histogram() -> Option<Histogram<u32>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_SIGFIG).ok()
}

impl ProducerRecorder {
    /// A recorder of intervals of `interval` counted from `origin`; `None` (no stats) when
    /// `interval` is zero.
    pub fn new(interval: Duration, origin: Instant, now: Instant) -> Option<Self> {
        if interval.is_zero() {
            return None;
        }
        Some(ProducerRecorder {
            interval,
            state: Mutex::new(ProducerState {
                window: Window::new(origin, interval, now),
                latency: None,
                last_latency: None,
            }),
        })
    }

    fn with<R>(&self, now: Instant, f: impl FnOnce(&mut ProducerState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.roll(self.interval, now);
        f(&mut state)
    }

    /// A message of `bytes` payload bytes was given to the producer to send.
    pub fn sent(&self, now: Instant, bytes: usize) {
        self.with(now, |s| {
            s.window.record(ProducerCounts {
                msgs_sent: 1,
                bytes_sent: bytes as u64,
                ..Default::default()
            })
        });
    }

    /// The broker confirmed a message `latency` after its send call.
    pub fn acked(&self, now: Instant, latency: Duration) {
        self.with(now, |s| {
            s.window.record(ProducerCounts {
                acks_received: 1,
                ..Default::default()
            });
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            if s.latency.is_none() {
                s.latency = latency_histogram();
            }
            if let Some(h) = s.latency.as_mut() {
                h.saturating_record(us.max(1));
            }
        });
    }

    /// A message failed.
    pub fn failed(&self, now: Instant) {
        self.with(now, |s| {
            s.window.record(ProducerCounts {
                send_failed: 1,
                ..Default::default()
            })
        });
    }

    /// The stats at `now`, and the last complete interval's latencies (to merge partitions).
    fn read(&self, now: Instant) -> (ProducerCounts, ProducerCounts, Option<Histogram<u32>>) {
        self.with(now, |s| {
            (s.window.last, s.window.total, s.last_latency.clone())
        })
    }

    /// The stats at `now` (`pending`: the messages pending now).
    pub fn snapshot(&self, now: Instant, pending: usize) -> ProducerStats {
        let (last, total, latency) = self.read(now);
        producer_stats(self.interval, &last, &total, latency.as_ref(), pending)
    }

    /// The sum of several partitions' stats at `now`, each with its pending count: counts and
    /// rates summed, latency percentiles from the merged histograms.
    pub fn sum<'a>(
        now: Instant,
        parts: impl IntoIterator<Item = (&'a ProducerRecorder, usize)>,
    ) -> ProducerStats {
        let mut last = ProducerCounts::default();
        let mut total = ProducerCounts::default();
        let mut pending = 0;
        let mut merged: Option<Histogram<u32>> = None;
        let mut interval = Duration::ZERO;
        let mut seen = false;
        for (recorder, p) in parts {
            let (l, t, h) = recorder.read(now);
            last.add(&l);
            total.add(&t);
            pending += p;
            interval = recorder.interval;
            match (merged.as_mut(), h) {
                // Same bounds: adding never fails (a failure would only drop those samples).
                (Some(m), Some(h)) => {
                    let _ = m.add(&h);
                }
                (None, h) => merged = h,
                (Some(_), None) => {}
            }
            seen = true;
        }
        if !seen {
            return ProducerStats {
                pending_queue_size: pending,
                ..Default::default()
            };
        }
        producer_stats(interval, &last, &total, merged.as_ref(), pending)
    }
}

fn producer_stats(
    interval: Duration,
    last: &ProducerCounts,
    total: &ProducerCounts,
    latency: Option<&Histogram<u32>>,
    pending: usize,
) -> ProducerStats {
    let latency = latency.filter(|h| !h.is_empty());
    let ms = |q: f64| latency.map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0);
    ProducerStats {
        num_msgs_sent: last.msgs_sent,
        num_bytes_sent: last.bytes_sent,
        num_send_failed: last.send_failed,
        num_acks_received: last.acks_received,
        send_msgs_rate: rate(last.msgs_sent, interval),
        send_bytes_rate: rate(last.bytes_sent, interval),
        send_latency_ms_50: ms(0.5),
        send_latency_ms_75: ms(0.75),
        send_latency_ms_95: ms(0.95),
        send_latency_ms_99: ms(0.99),
        send_latency_ms_999: ms(0.999),
        send_latency_ms_max: latency.map_or(0.0, |h| h.max() as f64 / 1000.0),
        pending_queue_size: pending,
        total_msgs_sent: total.msgs_sent,
        total_bytes_sent: total.bytes_sent,
        total_send_failed: total.send_failed,
        total_acks_received: total.acks_received,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ConsumerCounts {
    msgs_received: u64,
    bytes_received: u64,
    receive_failed: u64,
    acks_sent: u64,
    acks_failed: u64,
    nacks: u64,
    redeliveries: u64,
}

impl Counts for ConsumerCounts {
    fn add(&mut self, o: &Self) {
        self.msgs_received += o.msgs_received;
        self.bytes_received += o.bytes_received;
        self.receive_failed += o.receive_failed;
        self.acks_sent += o.acks_sent;
        self.acks_failed += o.acks_failed;
        self.nacks += o.nacks;
        self.redeliveries += o.redeliveries;
    }
}

/// The recorder of one consumer partition. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ConsumerRecorder {
    interval: Duration,
    window: Mutex<Window<ConsumerCounts>>,
}

impl ConsumerRecorder {
    /// A recorder of intervals of `interval` counted from `origin`; `None` (no stats) when
    /// `interval` is zero.
    pub fn new(interval: Duration, origin: Instant, now: Instant) -> Option<Self> {
        (!interval.is_zero()).then(|| ConsumerRecorder {
            interval,
            window: Mutex::new(Window::new(origin, interval, now)),
        })
    }

    fn record(&self, now: Instant, counts: ConsumerCounts) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(self.interval, now);
        w.record(counts);
    }

    /// The application received a message of `bytes` payload bytes.
    pub fn received(&self, now: Instant, bytes: usize) {
        self.record(
            now,
            ConsumerCounts {
                msgs_received: 1,
                bytes_received: bytes as u64,
                ..Default::default()
            },
        );
    }

    /// A receive returned an error.
    pub fn receive_failed(&self, now: Instant) {
        self.record(
            now,
            ConsumerCounts {
                receive_failed: 1,
                ..Default::default()
            },
        );
    }

    /// An acknowledgement went out (`ok`) or failed.
    pub fn acked(&self, now: Instant, ok: bool) {
        self.record(
            now,
            ConsumerCounts {
                acks_sent: ok as u64,
                acks_failed: !ok as u64,
                ..Default::default()
            },
        );
    }

    /// A negative acknowledgement.
    pub fn nacked(&self, now: Instant) {
        self.record(
            now,
            ConsumerCounts {
                nacks: 1,
                ..Default::default()
            },
        );
    }

    /// The consumer asked the broker to redeliver `entries` entries.
    pub fn redelivery(&self, now: Instant, entries: usize) {
        self.record(
            now,
            ConsumerCounts {
                redeliveries: entries as u64,
                ..Default::default()
            },
        );
    }

    fn read(&self, now: Instant) -> (ConsumerCounts, ConsumerCounts) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(self.interval, now);
        (w.last, w.total)
    }

    /// The sum of several partitions' stats at `now`, each with its receiver queue count (one
    /// partition: its own stats).
    pub fn sum<'a>(
        now: Instant,
        parts: impl IntoIterator<Item = (&'a ConsumerRecorder, usize)>,
    ) -> ConsumerStats {
        let mut last = ConsumerCounts::default();
        let mut total = ConsumerCounts::default();
        let mut queued = 0;
        let mut interval = Duration::ZERO;
        for (recorder, q) in parts {
            let (l, t) = recorder.read(now);
            last.add(&l);
            total.add(&t);
            queued += q;
            interval = recorder.interval;
        }
        ConsumerStats {
            num_msgs_received: last.msgs_received,
            num_bytes_received: last.bytes_received,
            num_receive_failed: last.receive_failed,
            num_acks_sent: last.acks_sent,
            num_acks_failed: last.acks_failed,
            num_nacks: last.nacks,
            num_redeliveries: last.redeliveries,
            receive_msgs_rate: rate(last.msgs_received, interval),
            receive_bytes_rate: rate(last.bytes_received, interval),
            msgs_in_receiver_queue: queued,
            total_msgs_received: total.msgs_received,
            total_bytes_received: total.bytes_received,
            total_receive_failed: total.receive_failed,
            total_acks_sent: total.acks_sent,
            total_acks_failed: total.acks_failed,
            total_nacks: total.nacks,
            total_redeliveries: total.redeliveries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn producer(t0: Instant) -> ProducerRecorder {
        ProducerRecorder::new(10 * SEC, t0, t0).expect("stats on")
    }

    #[test]
    fn a_zero_interval_means_no_recorder() {
        let t0 = Instant::now();
        assert!(ProducerRecorder::new(Duration::ZERO, t0, t0).is_none());
        assert!(ConsumerRecorder::new(Duration::ZERO, t0, t0).is_none());
    }

    #[test]
    fn interval_values_show_the_last_complete_interval_and_totals_everything() {
        let t0 = Instant::now();
        let r = producer(t0);
        for i in 0..20 {
            r.sent(t0 + Duration::from_millis(100 * i), 100);
        }
        r.failed(t0 + 3 * SEC);
        // Still in the first interval: nothing complete yet, totals counted.
        let s = r.snapshot(t0 + 9 * SEC, 7);
        assert_eq!(s.num_msgs_sent, 0);
        assert_eq!(s.send_msgs_rate, 0.0);
        assert_eq!(s.total_msgs_sent, 20);
        assert_eq!(s.total_bytes_sent, 2000);
        assert_eq!(s.total_send_failed, 1);
        assert_eq!(s.pending_queue_size, 7);
        // The first interval is over: its counts and rates.
        let s = r.snapshot(t0 + 10 * SEC, 0);
        assert_eq!(s.num_msgs_sent, 20);
        assert_eq!(s.num_bytes_sent, 2000);
        assert_eq!(s.num_send_failed, 1);
        assert_eq!(s.send_msgs_rate, 2.0);
        assert_eq!(s.send_bytes_rate, 200.0);
        // Sends in the second interval do not change what the first one shows.
        r.sent(t0 + 12 * SEC, 50);
        let s = r.snapshot(t0 + 19 * SEC, 0);
        assert_eq!(s.num_msgs_sent, 20);
        assert_eq!(s.total_msgs_sent, 21);
        // The second interval ends: it shows one message.
        let s = r.snapshot(t0 + 20 * SEC, 0);
        assert_eq!((s.num_msgs_sent, s.num_bytes_sent), (1, 50));
        assert_eq!(s.send_bytes_rate, 5.0);
        assert_eq!(s.total_bytes_sent, 2050);
    }

    #[test]
    fn after_an_idle_interval_the_last_interval_is_empty() {
        let t0 = Instant::now();
        let r = producer(t0);
        r.sent(t0 + SEC, 10);
        r.acked(t0 + SEC, Duration::from_millis(5));
        // Two intervals later (the second empty): zeros, the totals stay.
        let s = r.snapshot(t0 + 25 * SEC, 0);
        assert_eq!(s.num_msgs_sent, 0);
        assert_eq!(s.num_acks_received, 0);
        assert_eq!(s.send_latency_ms_max, 0.0);
        assert_eq!(s.send_latency_ms_50, 0.0);
        assert_eq!(s.total_msgs_sent, 1);
        assert_eq!(s.total_acks_received, 1);
        // Recording after a long idle time lands in the interval `now` is in.
        r.sent(t0 + 1005 * SEC, 10);
        assert_eq!(r.snapshot(t0 + 1009 * SEC, 0).num_msgs_sent, 0);
        assert_eq!(r.snapshot(t0 + 1010 * SEC, 0).num_msgs_sent, 1);
    }

    #[test]
    fn histograms_are_made_at_the_first_receipt_and_given_back_when_idle() {
        let t0 = Instant::now();
        let r = producer(t0);
        let held = |r: &ProducerRecorder, now| {
            r.with(now, |s| (s.latency.is_some(), s.last_latency.is_some()))
        };
        r.sent(t0, 10);
        assert_eq!(held(&r, t0), (false, false), "no receipt: no histogram");
        r.acked(t0 + SEC, Duration::from_millis(5));
        assert_eq!(held(&r, t0 + SEC), (true, false));
        // The next interval: that one is the last interval's; the current has none.
        assert_eq!(held(&r, t0 + 11 * SEC), (false, true));
        assert!(r.snapshot(t0 + 11 * SEC, 0).send_latency_ms_max > 0.0);
        // One more interval without receipts: both given back.
        assert_eq!(held(&r, t0 + 21 * SEC), (false, false));
        r.acked(t0 + 22 * SEC, Duration::from_millis(7));
        assert_eq!(held(&r, t0 + 22 * SEC), (true, false));
        // Busy intervals one after another keep (and reuse) both.
        r.acked(t0 + 32 * SEC, Duration::from_millis(8));
        assert_eq!(held(&r, t0 + 32 * SEC), (true, true));
        let max = r.snapshot(t0 + 32 * SEC, 0).send_latency_ms_max;
        assert!(
            (max - 7.0).abs() <= 0.07,
            "the last interval's max is its one receipt: {max}"
        );
    }

    #[test]
    fn intervals_count_from_the_origin_not_from_the_first_record() {
        let t0 = Instant::now();
        // Created 7 s into the client's first interval: it ends 3 s later.
        let r = ProducerRecorder::new(10 * SEC, t0, t0 + 7 * SEC).expect("stats on");
        r.sent(t0 + 8 * SEC, 1);
        assert_eq!(r.snapshot(t0 + 10 * SEC, 0).num_msgs_sent, 1);
    }

    #[test]
    fn latency_percentiles_of_the_last_interval() {
        let t0 = Instant::now();
        let r = producer(t0);
        // 1..=1000 ms, one each.
        for ms in 1..=1000u64 {
            r.acked(t0 + SEC, Duration::from_millis(ms));
        }
        let s = r.snapshot(t0 + 10 * SEC, 0);
        assert_eq!(s.num_acks_received, 1000);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.01 + 0.001;
        assert!(near(s.send_latency_ms_50, 500.0), "{s:?}");
        assert!(near(s.send_latency_ms_75, 750.0), "{s:?}");
        assert!(near(s.send_latency_ms_95, 950.0), "{s:?}");
        assert!(near(s.send_latency_ms_99, 990.0), "{s:?}");
        assert!(near(s.send_latency_ms_999, 999.0), "{s:?}");
        assert!(near(s.send_latency_ms_max, 1000.0), "{s:?}");
        // The next interval's latencies replace them.
        r.acked(t0 + 11 * SEC, Duration::from_millis(2));
        let s = r.snapshot(t0 + 20 * SEC, 0);
        assert!(near(s.send_latency_ms_max, 2.0), "{s:?}");
        assert!(near(s.send_latency_ms_50, 2.0), "{s:?}");
        // Longer than the histogram's range: counted at its top.
        r.acked(t0 + 21 * SEC, Duration::from_secs(3600));
        let s = r.snapshot(t0 + 30 * SEC, 0);
        assert!(s.send_latency_ms_max >= 599_000.0, "{s:?}");
    }

    #[test]
    fn a_sum_adds_counts_and_rates_and_merges_latencies() {
        let t0 = Instant::now();
        let a = producer(t0);
        let b = producer(t0);
        for _ in 0..10 {
            a.sent(t0 + SEC, 10);
            a.acked(t0 + SEC, Duration::from_millis(1));
        }
        for _ in 0..30 {
            b.sent(t0 + SEC, 20);
            b.acked(t0 + SEC, Duration::from_millis(100));
        }
        b.failed(t0 + SEC);
        let now = t0 + 10 * SEC;
        let sum = ProducerRecorder::sum(now, [(&a, 1), (&b, 2)]);
        assert_eq!(sum.num_msgs_sent, 40);
        assert_eq!(sum.num_bytes_sent, 700);
        assert_eq!(sum.total_acks_received, 40);
        assert_eq!(sum.total_send_failed, 1);
        assert_eq!(sum.pending_queue_size, 3);
        assert_eq!(
            sum.send_msgs_rate,
            a.snapshot(now, 0).send_msgs_rate + b.snapshot(now, 0).send_msgs_rate
        );
        // 10 of 40 at 1 ms, 30 at 100 ms: the median is 100 ms, the 25th percentile 1 ms.
        assert!((sum.send_latency_ms_50 - 100.0).abs() < 1.0, "{sum:?}");
        assert!((sum.send_latency_ms_max - 100.0).abs() < 1.0, "{sum:?}");
        assert!(a.snapshot(now, 0).send_latency_ms_max < 1.1);
        // No partition: zeros.
        assert_eq!(ProducerRecorder::sum(now, []), ProducerStats::default());
    }

    #[test]
    fn consumer_counts_rates_and_totals() {
        let t0 = Instant::now();
        let r = ConsumerRecorder::new(5 * SEC, t0, t0).expect("stats on");
        for _ in 0..10 {
            r.received(t0 + SEC, 4);
        }
        r.receive_failed(t0 + SEC);
        r.acked(t0 + 2 * SEC, true);
        r.acked(t0 + 2 * SEC, true);
        r.acked(t0 + 2 * SEC, false);
        r.nacked(t0 + 3 * SEC);
        r.redelivery(t0 + 4 * SEC, 3);
        let s = ConsumerRecorder::sum(t0 + 4 * SEC, [(&r, 2)]);
        assert_eq!(s.num_msgs_received, 0);
        assert_eq!(s.total_msgs_received, 10);
        assert_eq!(s.msgs_in_receiver_queue, 2);
        let s = ConsumerRecorder::sum(t0 + 5 * SEC, [(&r, 0)]);
        assert_eq!(s.num_msgs_received, 10);
        assert_eq!(s.num_bytes_received, 40);
        assert_eq!(s.num_receive_failed, 1);
        assert_eq!((s.num_acks_sent, s.num_acks_failed), (2, 1));
        assert_eq!((s.num_nacks, s.num_redeliveries), (1, 3));
        assert_eq!(s.receive_msgs_rate, 2.0);
        assert_eq!(s.receive_bytes_rate, 8.0);
        assert_eq!(s.total_redeliveries, 3);
        // Two partitions: summed.
        let other = ConsumerRecorder::new(5 * SEC, t0, t0).expect("stats on");
        other.received(t0 + SEC, 6);
        let s = ConsumerRecorder::sum(t0 + 5 * SEC, [(&r, 1), (&other, 1)]);
        assert_eq!(s.num_msgs_received, 11);
        assert_eq!(s.total_bytes_received, 46);
        assert_eq!(s.receive_msgs_rate, 2.2);
        assert_eq!(s.msgs_in_receiver_queue, 2);
        // An interval with nothing: zero rates, the totals stay.
        let s = ConsumerRecorder::sum(t0 + 15 * SEC, [(&r, 0)]);
        assert_eq!(s.receive_msgs_rate, 0.0);
        assert_eq!(s.total_acks_failed, 1);
    }

    #[test]
    fn an_earlier_now_counts_in_the_current_interval() {
        let t0 = Instant::now();
        let r = producer(t0);
        r.sent(t0 + 12 * SEC, 1);
        // A time before the current interval (threads reading the clock in another order).
        r.sent(t0 + 5 * SEC, 1);
        let s = r.snapshot(t0 + 20 * SEC, 0);
        assert_eq!(s.num_msgs_sent, 2);
    }
}
