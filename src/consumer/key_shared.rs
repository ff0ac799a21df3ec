//! Key_Shared policies: how the broker spreads the keys of a Key_Shared subscription over its
//! consumers (the Java client's `KeySharedPolicy`), sent in SUBSCRIBE's `keySharedMeta`.
//!
//! The broker hashes each message's sticky key, its ordering key if it has one, else its
//! partition key, else the bytes `NONE_KEY`, with Murmur3 x86 32-bit (seed 0), keeps the low 31
//! bits, and takes the result modulo [`KEY_SHARED_HASH_RANGE_SIZE`]: [`key_shared_slot`].
//! A sticky consumer receives exactly the keys whose slot lies in one of its ranges.

use crate::protocol::hash::murmur3_32;
use crate::wire::proto;

/// The number of hash slots of a Key_Shared subscription (the broker's `2 << 15`): slots are
/// `0..=65535`.
pub const KEY_SHARED_HASH_RANGE_SIZE: u32 = 65536;

/// The Key_Shared slot of a sticky key, as the broker computes it
/// (`Murmur3_32Hash.makeHash(key) % 65536`): pass the ordering key if the message has one, else
/// its partition key (UTF-8).
pub fn key_shared_slot(key: &[u8]) -> u32 {
    (murmur3_32(key, 0) & 0x7fff_ffff) % KEY_SHARED_HASH_RANGE_SIZE
}

/// A range of Key_Shared hash slots, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range {
    /// The first slot.
    pub start: u32,
    /// The last slot (included).
    pub end: u32,
}

impl Range {
    /// The slots `start..=end`.
    pub const fn of(start: u32, end: u32) -> Self {
        Range { start, end }
    }

    /// Whether `slot` lies in this range.
    pub const fn contains(&self, slot: u32) -> bool {
        self.start <= slot && slot <= self.end
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.start, self.end)
    }
}

/// Why a [`KeySharedPolicy`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySharedPolicyError {
    /// A sticky policy needs at least one range.
    #[error("a sticky Key_Shared policy needs at least one hash range")]
    EmptyRanges,
    /// A range starts after its end.
    #[error("Key_Shared hash range {0} starts after its end")]
    StartAfterEnd(Range),
    /// A range goes past the last slot, 65535.
    #[error("Key_Shared hash range {0} is outside [0, 65535]")]
    OutOfBounds(Range),
    /// Two ranges share slots.
    #[error("Key_Shared hash ranges {0} and {1} overlap")]
    Overlap(Range, Range),
}

/// How a Key_Shared subscription's keys are spread over its consumers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeySharedPolicy {
    /// The broker splits the hash space among the consumers as they come and go (the default).
    #[default]
    AutoSplit,
    /// This consumer takes exactly these slots (see [`key_shared_slot`]); the broker refuses a
    /// consumer whose ranges overlap another's. Messages whose slot no consumer holds wait.
    Sticky(Vec<Range>),
}

impl KeySharedPolicy {
    /// A sticky policy, checked: see [`KeySharedPolicy::validate`].
    pub fn sticky(ranges: Vec<Range>) -> Result<Self, KeySharedPolicyError> {
        let policy = KeySharedPolicy::Sticky(ranges);
        policy.validate()?;
        Ok(policy)
    }

    /// Checks a sticky policy's ranges as the Java client does: at least one, each with
    /// `start <= end` within `0..=65535`, no two overlapping. Auto-split is always valid.
    pub fn validate(&self) -> Result<(), KeySharedPolicyError> {
        let KeySharedPolicy::Sticky(ranges) = self else {
            return Ok(());
        };
        if ranges.is_empty() {
            return Err(KeySharedPolicyError::EmptyRanges);
        }
        for r in ranges {
            if r.start > r.end {
                return Err(KeySharedPolicyError::StartAfterEnd(*r));
            }
            if r.end >= KEY_SHARED_HASH_RANGE_SIZE {
                return Err(KeySharedPolicyError::OutOfBounds(*r));
            }
        }
        let mut sorted = ranges.clone();
        sorted.sort();
        for pair in sorted.windows(2) {
            if pair[0].overlaps(&pair[1]) {
                return Err(KeySharedPolicyError::Overlap(pair[0], pair[1]));
            }
        }
        Ok(())
    }

    /// SUBSCRIBE's `keySharedMeta` (ranges already validated, so they fit an i32).
    pub(crate) fn to_proto(&self, allow_out_of_order_delivery: bool) -> proto::KeySharedMeta {
        let (mode, ranges) = match self {
            KeySharedPolicy::AutoSplit => (proto::KeySharedMode::AutoSplit, Vec::new()),
            KeySharedPolicy::Sticky(ranges) => (proto::KeySharedMode::Sticky, ranges.clone()),
        };
        proto::KeySharedMeta {
            key_shared_mode: mode as i32,
            hash_ranges: ranges
                .iter()
                .map(|r| proto::IntRange {
                    start: r.start.min(i32::MAX as u32) as i32,
                    end: r.end.min(i32::MAX as u32) as i32,
                })
                .collect(),
            allow_out_of_order_delivery: Some(allow_out_of_order_delivery),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_ranges_are_checked() {
        assert_eq!(
            KeySharedPolicy::sticky(vec![]),
            Err(KeySharedPolicyError::EmptyRanges)
        );
        assert_eq!(
            KeySharedPolicy::sticky(vec![Range::of(10, 5)]),
            Err(KeySharedPolicyError::StartAfterEnd(Range::of(10, 5)))
        );
        assert_eq!(
            KeySharedPolicy::sticky(vec![Range::of(0, 65536)]),
            Err(KeySharedPolicyError::OutOfBounds(Range::of(0, 65536)))
        );
        assert_eq!(
            KeySharedPolicy::sticky(vec![Range::of(100, 200), Range::of(0, 100)]),
            Err(KeySharedPolicyError::Overlap(
                Range::of(0, 100),
                Range::of(100, 200)
            ))
        );
        let ok = KeySharedPolicy::sticky(vec![Range::of(32768, 65535), Range::of(0, 32767)]);
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(KeySharedPolicy::AutoSplit.validate(), Ok(()));
    }

    #[test]
    fn sticky_meta_carries_the_ranges() {
        let meta =
            KeySharedPolicy::Sticky(vec![Range::of(0, 99), Range::of(200, 299)]).to_proto(true);
        assert_eq!(meta.key_shared_mode, proto::KeySharedMode::Sticky as i32);
        assert_eq!(meta.hash_ranges.len(), 2);
        assert_eq!(
            (meta.hash_ranges[1].start, meta.hash_ranges[1].end),
            (200, 299)
        );
        assert_eq!(meta.allow_out_of_order_delivery, Some(true));
        let auto = KeySharedPolicy::AutoSplit.to_proto(false);
        assert_eq!(auto.key_shared_mode, proto::KeySharedMode::AutoSplit as i32);
        assert!(auto.hash_ranges.is_empty());
    }

    #[test]
    fn slots_are_the_brokers() {
        // Murmur3 x86 32 of "" with seed 0 is 0; of "a" it is 0x3c2569b2.
        assert_eq!(key_shared_slot(b""), 0);
        assert_eq!(key_shared_slot(b"a"), 0x3c25_69b2 % 65536);
        assert!((0..1000).all(|i| key_shared_slot(format!("k{i}").as_bytes()) < 65536));
    }
}
