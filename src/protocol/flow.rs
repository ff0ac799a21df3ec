//! Consumer flow control as a counter: the broker may push as many messages as the permits
//! granted; the client grants the whole receiver queue after subscribing, then gives permits
//! back in batches of half the queue as the application takes messages (and for messages
//! dropped locally, which the application never sees).
//!
//! An auto-scaled queue (the Java client's `autoScaledReceiverQueueSizeEnabled`) starts at one
//! message and doubles, up to the receiver queue size, each time the application asks for a
//! message and finds none queued; the refill threshold follows the current size.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Permits to grant: counted messages, for the connection of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    /// How many permits.
    pub permits: u32,
    /// The generation (see [`FlowControl::generation`]) they were counted in: grant them only
    /// on that generation's connection.
    pub generation: u32,
}

/// Permit accounting for one consumer, shared by the application-facing handle (which counts
/// consumed messages) and the consumer task (which sends FLOW).
///
/// Each (re)subscription starts a generation: the count of consumed messages and the generation
/// live in one atomic word, so that permits counted for a connection are never granted on the
/// next one (which already had the whole queue granted).
#[derive(Debug)]
pub struct FlowControl {
    queue_size: u32,
    /// The current queue size: the whole queue, or with auto-scaling from 1 up to it.
    current: AtomicU32,
    auto_scaled: bool,
    /// The generation in the high 32 bits, the consumed count in the low 32.
    state: AtomicU64,
}

fn split(state: u64) -> (u32, u32) {
    ((state >> 32) as u32, state as u32)
}

fn join(generation: u32, consumed: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(consumed)
}

impl FlowControl {
    /// Flow control for a receiver queue of `queue_size` messages (at least 1).
    pub fn new(queue_size: u32) -> Self {
        let queue_size = queue_size.max(1);
        FlowControl {
            queue_size,
            current: AtomicU32::new(queue_size),
            auto_scaled: false,
            state: AtomicU64::new(0),
        }
    }

    /// Flow control for a queue that starts at one message and grows up to `queue_size` as
    /// the application waits for messages (see [`FlowControl::scale_up`]).
    pub fn auto_scaled(queue_size: u32) -> Self {
        let f = FlowControl::new(queue_size);
        FlowControl {
            current: AtomicU32::new(1),
            auto_scaled: true,
            ..f
        }
    }

    /// The receiver queue size (the most the queue grows to).
    pub fn queue_size(&self) -> u32 {
        self.queue_size
    }

    /// The current queue size (below [`FlowControl::queue_size`] while an auto-scaled queue
    /// grows).
    pub fn current_size(&self) -> u32 {
        self.current.load(Ordering::Acquire)
    }

    /// The application waits for a message and none is queued: an auto-scaled queue doubles
    /// (up to the receiver queue size), and the permits it grew by are to be granted. `None`
    /// when the queue is not auto-scaled or already whole.
    pub fn scale_up(&self) -> Option<Refill> {
        if !self.auto_scaled {
            return None;
        }
        // The generation first: should a resubscription come between, these permits are
        // stale and dropped, and its initial grant may miss the growth (fewer permits than the
        // queue, never more).
        let generation = self.generation();
        let mut grown = 0;
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                let next = cur.saturating_mul(2).min(self.queue_size);
                grown = next.saturating_sub(cur);
                (next > cur).then_some(next)
            })
            .ok()?;
        Some(Refill {
            permits: grown,
            generation,
        })
    }

    /// The permits to grant after (re)subscribing: the whole queue. Starts a new generation,
    /// forgetting what was counted on the previous connection.
    pub fn initial_permits(&self) -> u32 {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(join(split(s).0.wrapping_add(1), 0))
            });
        self.current_size()
    }

    /// The current generation: bumped by every [`FlowControl::initial_permits`].
    pub fn generation(&self) -> u32 {
        split(self.state.load(Ordering::Acquire)).0
    }

    /// Messages counted as consumed (or dropped) since permits were last given back: what the
    /// next refill grants.
    pub fn pending(&self) -> u32 {
        split(self.state.load(Ordering::Acquire)).1
    }

    /// Counts `n` messages consumed (or dropped); returns the permits to send now, if the
    /// refill threshold (half the queue) was reached, with the generation they belong to.
    pub fn on_consumed(&self, n: u32) -> Option<Refill> {
        let threshold = (self.current_size() / 2).max(1);
        let mut refill = None;
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let (generation, consumed) = split(s);
                let now = consumed.saturating_add(n);
                if now < threshold {
                    refill = None;
                    Some(join(generation, now))
                } else {
                    refill = Some(Refill {
                        permits: now,
                        generation,
                    });
                    Some(join(generation, 0))
                }
            });
        refill
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(r: Option<Refill>) -> Option<u32> {
        r.map(|r| r.permits)
    }

    #[test]
    fn grants_the_queue_then_refills_at_half() {
        let f = FlowControl::new(10);
        assert_eq!(f.initial_permits(), 10);
        for _ in 0..4 {
            assert_eq!(f.on_consumed(1), None);
        }
        assert_eq!(permits(f.on_consumed(1)), Some(5));
        assert_eq!(f.on_consumed(3), None);
        assert_eq!(permits(f.on_consumed(3)), Some(6));
    }

    #[test]
    fn an_auto_scaled_queue_starts_at_one_and_doubles_up_to_the_queue_size() {
        let f = FlowControl::auto_scaled(10);
        assert_eq!(f.initial_permits(), 1);
        assert_eq!(
            permits(f.on_consumed(1)),
            Some(1),
            "a queue of one refills each"
        );
        assert_eq!(permits(f.scale_up()), Some(1));
        assert_eq!(f.current_size(), 2);
        assert_eq!(permits(f.scale_up()), Some(2));
        assert_eq!(permits(f.scale_up()), Some(4));
        assert_eq!(permits(f.scale_up()), Some(2), "capped at the queue size");
        assert_eq!(f.current_size(), 10);
        assert_eq!(f.scale_up(), None);
        // The threshold follows the current size.
        for _ in 0..4 {
            assert_eq!(f.on_consumed(1), None);
        }
        assert_eq!(permits(f.on_consumed(1)), Some(5));
        // A resubscription grants the grown queue.
        assert_eq!(f.initial_permits(), 10);
        // A plain queue never scales.
        assert_eq!(FlowControl::new(10).scale_up(), None);
    }

    #[test]
    fn scaled_permits_belong_to_their_generation() {
        let f = FlowControl::auto_scaled(8);
        f.initial_permits();
        let grown = f.scale_up().expect("grows");
        f.initial_permits();
        assert_ne!(
            grown.generation,
            f.generation(),
            "stale after a resubscription"
        );
    }

    #[test]
    fn resubscribing_forgets_old_counts() {
        let f = FlowControl::new(4);
        assert_eq!(f.on_consumed(1), None);
        assert_eq!(f.initial_permits(), 4);
        assert_eq!(f.on_consumed(1), None);
        assert_eq!(permits(f.on_consumed(1)), Some(2));
    }

    #[test]
    fn a_queue_of_one_refills_every_message() {
        let f = FlowControl::new(1);
        assert_eq!(permits(f.on_consumed(1)), Some(1));
        assert_eq!(permits(f.on_consumed(1)), Some(1));
        let zero = FlowControl::new(0);
        assert_eq!(zero.queue_size(), 1);
    }

    #[test]
    fn permits_are_tagged_with_the_generation_they_were_counted_in() {
        // Found by fuzz/fuzz_targets/core_events.rs: permits the application counted on one
        // connection reached the consumer task after it had subscribed again and granted the
        // whole queue, and were granted on top of it: more permits than the queue.
        let f = FlowControl::new(2);
        f.initial_permits();
        let old = f.on_consumed(1).expect("a refill");
        assert_eq!(f.initial_permits(), 2);
        assert_ne!(old.generation, f.generation(), "stale: not to be granted");
        let new = f.on_consumed(1).expect("a refill");
        assert_eq!(new.generation, f.generation());
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let f = FlowControl::new(u32::MAX);
        assert_eq!(f.on_consumed(u32::MAX / 2 - 1), None);
        assert_eq!(permits(f.on_consumed(u32::MAX)), Some(u32::MAX));
        assert_eq!(f.pending(), 0);
    }
}
