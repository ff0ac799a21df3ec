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

/// The most messages a batch is taken to hold: a larger size (in a hostile MESSAGE's metadata,
/// or in a message id the application made up) is clamped to it, so that one bit set never takes
/// more than 128 KiB. A real batch is far smaller: each of its messages takes at least 6 bytes of
/// an entry of at most the max message size (5 MiB by default).
pub const MAX_BATCH_SIZE: usize = 1 << 20;

fn full_set(size: usize) -> Vec<u64> {
    let size = size.min(MAX_BATCH_SIZE);
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
        match self.ack_index(id) {
            AckProgress::Entry(entry) => Some(entry),
            AckProgress::Partial { .. } => None,
        }
    }

    /// Acknowledges one message and tells how far its entry is: complete, or the bit set of its
    /// still-unacknowledged indexes (what a batch-index ack sends as `ack_set`).
    pub fn ack_index(&mut self, id: &MessageId) -> AckProgress {
        if !id.is_batch() || id.batch_size <= 1 {
            return AckProgress::Entry(id.entry());
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
            return AckProgress::Entry(id.entry());
        }
        AckProgress::Partial {
            entry: id.entry(),
            ack_set: bits.iter().map(|w| *w as i64).collect(),
        }
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

/// How far an acknowledgement took its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckProgress {
    /// Every message of the entry is acknowledged: acknowledge the entry.
    Entry(MessageId),
    /// Some messages of the batch are not: these bits (set = unacknowledged) remain.
    Partial {
        /// The entry.
        entry: MessageId,
        /// The unacknowledged indexes, as the protocol's `ack_set` words.
        ack_set: Vec<i64>,
    },
}

/// The `ack_set` that acknowledges batch index `index` alone of a batch of `size` (every bit set
/// but that one), as a transactional acknowledgement of one message of a batch sends it.
pub fn individual_ack_set(index: usize, size: usize) -> Vec<i64> {
    let mut bits = full_set(size);
    if let Some(word) = bits.get_mut(index / 64) {
        *word &= !(1u64 << (index % 64));
    }
    bits.into_iter().map(|w| w as i64).collect()
}

/// The `ack_set` of a cumulative acknowledgement at batch index `index` of a batch of `size`:
/// indexes `0..=index` cleared, the rest set.
pub fn cumulative_ack_set(index: usize, size: usize) -> Vec<i64> {
    let mut bits = full_set(size);
    let size = size.min(MAX_BATCH_SIZE);
    if size > 0 {
        // Whole words, then the low bits of the next: no loop over every index.
        let cleared = index.min(size - 1) + 1;
        for word in bits.iter_mut().take(cleared / 64) {
            *word = 0;
        }
        if cleared % 64 != 0 {
            if let Some(word) = bits.get_mut(cleared / 64) {
                *word &= !((1u64 << (cleared % 64)) - 1);
            }
        }
    }
    bits.into_iter().map(|w| w as i64).collect()
}

/// Acknowledgements waiting to be sent together: every `delay`, or as soon as `max` are
/// pending (the official clients group for 100 ms or 1000 acks). Individual acks of the same
/// entry merge; only the latest cumulative ack is kept.
#[derive(Debug)]
pub struct AckGroup {
    delay: std::time::Duration,
    max: usize,
    individual: std::collections::BTreeMap<(i64, i64), Vec<i64>>,
    cumulative: Option<(MessageId, Vec<i64>)>,
    since: Option<std::time::Instant>,
}

/// What an [`AckGroup`] flush sends: individual ids (with `ack_set` for partial batches) and
/// at most one cumulative id.
#[derive(Debug, Default, PartialEq)]
pub struct AckFlush {
    /// Entries (or partial batches) acknowledged individually.
    pub individual: Vec<crate::wire::proto::MessageIdData>,
    /// The cumulative acknowledgement, if any.
    pub cumulative: Option<crate::wire::proto::MessageIdData>,
}

impl AckGroup {
    /// A group sent every `delay` or at `max` pending acks; a zero delay or a max of at most 1
    /// sends every ack at once.
    pub fn new(delay: std::time::Duration, max: usize) -> Self {
        AckGroup {
            delay,
            max,
            individual: std::collections::BTreeMap::new(),
            cumulative: None,
            since: None,
        }
    }

    fn immediate(&self) -> bool {
        self.delay.is_zero() || self.max <= 1
    }

    fn touch(&mut self, now: std::time::Instant) {
        self.since.get_or_insert(now);
    }

    /// Adds an individual ack of an entry (`ack_set` empty) or of part of a batch.
    pub fn individual(&mut self, entry: MessageId, ack_set: Vec<i64>, now: std::time::Instant) {
        self.individual
            .insert((entry.ledger_id, entry.entry_id), ack_set);
        self.touch(now);
    }

    /// Sets the cumulative ack (a later one replaces an earlier one).
    pub fn cumulative(&mut self, entry: MessageId, ack_set: Vec<i64>, now: std::time::Instant) {
        let newer = self.cumulative.as_ref().is_none_or(|(old, _)| {
            (entry.ledger_id, entry.entry_id) >= (old.ledger_id, old.entry_id)
        });
        if newer {
            self.cumulative = Some((entry, ack_set));
        }
        self.touch(now);
    }

    /// When the group must be sent.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.since.map(|s| s + self.delay)
    }

    /// Whether the group must be sent now (full, immediate mode, or due).
    pub fn is_due(&self, now: std::time::Instant) -> bool {
        if self.is_empty() {
            return false;
        }
        self.immediate()
            || self.individual.len() >= self.max
            || self.deadline().is_some_and(|d| d <= now)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.individual.is_empty() && self.cumulative.is_none()
    }

    /// Takes everything pending.
    pub fn take(&mut self) -> AckFlush {
        self.since = None;
        let individual = std::mem::take(&mut self.individual)
            .into_iter()
            .map(
                |((ledger, entry), ack_set)| crate::wire::proto::MessageIdData {
                    ledger_id: ledger as u64,
                    entry_id: entry as u64,
                    ack_set,
                    ..Default::default()
                },
            )
            .collect();
        let cumulative = self.cumulative.take().map(|(id, ack_set)| {
            let mut data = id.to_entry_proto();
            data.ack_set = ack_set;
            data
        });
        AckFlush {
            individual,
            cumulative,
        }
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
    fn partial_batches_report_their_remaining_bits() {
        let mut t = BatchAckTracker::default();
        assert_eq!(
            t.ack_index(&id(1, 3)),
            AckProgress::Partial {
                entry: MessageId::new(3, 7),
                ack_set: vec![0b101]
            }
        );
        assert_eq!(
            t.ack_index(&id(0, 3)),
            AckProgress::Partial {
                entry: MessageId::new(3, 7),
                ack_set: vec![0b100]
            }
        );
        assert_eq!(
            t.ack_index(&id(2, 3)),
            AckProgress::Entry(MessageId::new(3, 7))
        );
        assert_eq!(cumulative_ack_set(1, 4), vec![0b1100]);
        assert_eq!(cumulative_ack_set(3, 4), vec![0]);
    }

    #[test]
    fn the_ack_group_merges_and_flushes_when_due() {
        let now = std::time::Instant::now();
        let mut g = AckGroup::new(std::time::Duration::from_millis(100), 3);
        assert!(!g.is_due(now) && g.deadline().is_none());
        g.individual(MessageId::new(1, 1), vec![], now);
        g.individual(MessageId::new(1, 2), vec![0b10], now);
        g.individual(MessageId::new(1, 2), vec![], now);
        g.cumulative(MessageId::new(1, 5), vec![], now);
        g.cumulative(MessageId::new(1, 4), vec![], now);
        assert!(!g.is_due(now));
        assert!(g.is_due(now + std::time::Duration::from_millis(100)));
        let flush = g.take();
        assert_eq!(flush.individual.len(), 2, "two entries, the second merged");
        assert!(
            flush.individual[1].ack_set.is_empty(),
            "the later full ack wins"
        );
        assert_eq!(
            flush.cumulative.map(|c| c.entry_id),
            Some(5),
            "the latest cumulative"
        );
        assert!(g.is_empty());
        for e in 0..3 {
            g.individual(MessageId::new(2, e), vec![], now);
        }
        assert!(g.is_due(now), "full at max");
        let mut now_mode = AckGroup::new(std::time::Duration::ZERO, 1000);
        now_mode.individual(MessageId::new(1, 1), vec![], now);
        assert!(now_mode.is_due(now));
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

    #[test]
    fn cumulative_ack_sets_clear_exactly_the_indexes_up_to_the_one_acked() {
        for size in [0usize, 1, 2, 63, 64, 65, 130] {
            for index in 0..size + 2 {
                let set = cumulative_ack_set(index, size);
                assert_eq!(set.len(), size.div_ceil(64));
                for i in 0..size {
                    let unacked = (set[i / 64] as u64 >> (i % 64)) & 1 == 1;
                    assert_eq!(
                        unacked,
                        i > index,
                        "index {i} of {size}, acked up to {index}"
                    );
                }
            }
        }
    }

    #[test]
    fn made_up_batch_sizes_are_clamped() {
        // Found by fuzz/fuzz_targets/core_events.rs: a transactional cumulative ack of an id
        // claiming a batch of 961,369,252 messages built a 120 MB bit set one bit at a time
        // (seconds); a MESSAGE claiming i32::MAX messages made the tracker allocate 256 MiB.
        let words = MAX_BATCH_SIZE / 64;
        assert_eq!(cumulative_ack_set(1_090_472_210, 961_369_252).len(), words);
        assert_eq!(individual_ack_set(3, usize::MAX).len(), words);
        let mut t = BatchAckTracker::default();
        t.on_delivery(MessageId::new(3, 7), i32::MAX as usize, &[]);
        match t.ack_index(&id(5, i32::MAX)) {
            AckProgress::Partial { ack_set, .. } => assert_eq!(ack_set.len(), words),
            other => panic!("{other:?}"),
        }
    }
}
