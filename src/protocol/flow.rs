//! Consumer flow control as a counter: the broker may push as many messages as the permits
//! granted; the client grants the whole receiver queue after subscribing, then gives permits
//! back in batches of half the queue as the application takes messages (and for messages
//! dropped locally, which the application never sees).

use std::sync::atomic::{AtomicU32, Ordering};

/// Permit accounting for one consumer, shared by the application-facing handle (which counts
/// consumed messages) and the consumer task (which sends FLOW).
#[derive(Debug)]
pub struct FlowControl {
    queue_size: u32,
    threshold: u32,
    consumed: AtomicU32,
}

impl FlowControl {
    /// Flow control for a receiver queue of `queue_size` messages (at least 1).
    pub fn new(queue_size: u32) -> Self {
        let queue_size = queue_size.max(1);
        FlowControl {
            queue_size,
            threshold: (queue_size / 2).max(1),
            consumed: AtomicU32::new(0),
        }
    }

    /// The receiver queue size.
    pub fn queue_size(&self) -> u32 {
        self.queue_size
    }

    /// The permits to grant after (re)subscribing: the whole queue. Forgets what was counted
    /// on the previous connection.
    pub fn initial_permits(&self) -> u32 {
        self.consumed.store(0, Ordering::Release);
        self.queue_size
    }

    /// Counts `n` messages consumed (or dropped); returns the permits to send now, if the
    /// refill threshold (half the queue) was reached.
    pub fn on_consumed(&self, n: u32) -> Option<u32> {
        let now = self
            .consumed
            .fetch_add(n, Ordering::AcqRel)
            .saturating_add(n);
        if now < self.threshold {
            return None;
        }
        // Take what has accumulated; a concurrent taker may have got it first.
        let taken = self.consumed.swap(0, Ordering::AcqRel);
        (taken > 0).then_some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_the_queue_then_refills_at_half() {
        let f = FlowControl::new(10);
        assert_eq!(f.initial_permits(), 10);
        for _ in 0..4 {
            assert_eq!(f.on_consumed(1), None);
        }
        assert_eq!(f.on_consumed(1), Some(5));
        assert_eq!(f.on_consumed(3), None);
        assert_eq!(f.on_consumed(3), Some(6));
    }

    #[test]
    fn resubscribing_forgets_old_counts() {
        let f = FlowControl::new(4);
        assert_eq!(f.on_consumed(1), None);
        assert_eq!(f.initial_permits(), 4);
        assert_eq!(f.on_consumed(1), None);
        assert_eq!(f.on_consumed(1), Some(2));
    }

    #[test]
    fn a_queue_of_one_refills_every_message() {
        let f = FlowControl::new(1);
        assert_eq!(f.on_consumed(1), Some(1));
        assert_eq!(f.on_consumed(1), Some(1));
        let zero = FlowControl::new(0);
        assert_eq!(zero.queue_size(), 1);
    }
}
