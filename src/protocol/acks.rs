//! Acknowledgement of batched messages without batch-index acks: the broker only knows whole
//! entries, so the entry is acknowledged once every message of its batch is.

use std::collections::HashMap;

use crate::wire::MessageId;

/// Which messages of each partly acknowledged batch are still unacknowledged.
#[derive(Debug, Default)]
pub struct BatchAckTracker {
    /// (ledger, entry, partition) → bit set of unacknowledged indexes (a set bit is unacked,
    /// as in the protocol's `ack_set`).
    entries: HashMap<(i64, i64, i32), Vec<u64>>,
}

fn full_set(size: usize) -> Vec<u64> {
    let mut words = vec![u64::MAX; size.div_ceil(64)];
    if size % 64 != 0 {
        if let Some(last) = words.last_mut() {
            *last = (1u64 << (size % 64)) - 1;
        }
    }
    words
}

impl BatchAckTracker {
    /// Starts tracking a batch as delivered: `size` messages, minus those the broker says are
    /// already acknowledged (`ack_set`: set bits are the unacknowledged ones; empty = none acked).
    pub fn on_delivery(&mut self, entry: MessageId, size: usize, ack_set: &[i64]) {
        let key = (entry.ledger_id, entry.entry_id, entry.partition);
        let mut bits = full_set(size);
        if !ack_set.is_empty() {
            for (i, word) in bits.iter_mut().enumerate() {
                *word &= ack_set.get(i).map_or(0, |w| *w as u64);
            }
        }
        self.entries.entry(key).or_insert(bits);
    }

    /// Acknowledges one message. Returns the entry to acknowledge on the broker when it is
    /// complete (at once for a message that is not in a batch).
    pub fn ack(&mut self, id: &MessageId) -> Option<MessageId> {
        if !id.is_batch() || id.batch_size <= 1 {
            return Some(id.entry());
        }
        let key = (id.ledger_id, id.entry_id, id.partition);
        let size = id.batch_size as usize;
        let bits = self.entries.entry(key).or_insert_with(|| full_set(size));
        let index = id.batch_index as usize;
        if let Some(word) = bits.get_mut(index / 64) {
            *word &= !(1u64 << (index % 64));
        }
        if bits.iter().all(|w| *w == 0) {
            self.entries.remove(&key);
            return Some(id.entry());
        }
        None
    }

    /// Forgets an entry (acknowledged cumulatively, or redelivered).
    pub fn forget(&mut self, entry: &MessageId) {
        self.entries
            .remove(&(entry.ledger_id, entry.entry_id, entry.partition));
    }

    /// Forgets every entry up to and including `entry` (a cumulative ack).
    pub fn forget_up_to(&mut self, entry: &MessageId) {
        self.entries
            .retain(|(l, e, _), _| (*l, *e) > (entry.ledger_id, entry.entry_id));
    }

    /// Forgets everything (the connection was replaced: the broker redelivers).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many batches are partly acknowledged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no batch is partly acknowledged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether message `index` of a batch is still unacknowledged per the broker's `ack_set`
/// (an empty set means nothing was acknowledged).
pub fn is_unacked(ack_set: &[i64], index: usize) -> bool {
    if ack_set.is_empty() {
        return true;
    }
    ack_set
        .get(index / 64)
        .is_some_and(|w| (*w as u64) & (1u64 << (index % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: i32, n: i32) -> MessageId {
        MessageId::new(3, 7).with_batch(i, n)
    }

    #[test]
    fn the_entry_is_acked_when_every_index_is() {
        let mut t = BatchAckTracker::default();
        t.on_delivery(MessageId::new(3, 7), 3, &[]);
        assert_eq!(t.ack(&id(0, 3)), None);
        assert_eq!(t.ack(&id(2, 3)), None);
        assert_eq!(t.ack(&id(2, 3)), None, "acking twice completes nothing");
        assert_eq!(t.ack(&id(1, 3)), Some(MessageId::new(3, 7)));
        assert!(t.is_empty());
    }

    #[test]
    fn plain_messages_are_acked_at_once() {
        let mut t = BatchAckTracker::default();
        assert_eq!(t.ack(&MessageId::new(1, 2)), Some(MessageId::new(1, 2)));
        assert_eq!(t.ack(&id(0, 1)), Some(MessageId::new(3, 7)));
    }

    #[test]
    fn indexes_the_broker_already_has_count_as_acked() {
        let mut t = BatchAckTracker::default();
        // Bits 1 and 3 of 4 unacked: 0b1010.
        t.on_delivery(MessageId::new(3, 7), 4, &[0b1010]);
        assert_eq!(t.ack(&id(1, 4)), None);
        assert_eq!(t.ack(&id(3, 4)), Some(MessageId::new(3, 7)));
        assert!(is_unacked(&[0b1010], 1));
        assert!(!is_unacked(&[0b1010], 0));
        assert!(is_unacked(&[], 5));
        assert!(!is_unacked(&[0b1], 64));
    }

    #[test]
    fn large_batches_use_several_words() {
        let mut t = BatchAckTracker::default();
        for i in 0..129 {
            let done = t.ack(&id(i, 130));
            assert_eq!(done, None, "index {i}");
        }
        assert_eq!(t.ack(&id(129, 130)), Some(MessageId::new(3, 7)));
        t.ack(&id(0, 130));
        t.forget_up_to(&MessageId::new(3, 7));
        assert!(t.is_empty());
    }
}
