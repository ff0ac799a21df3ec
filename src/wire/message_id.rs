//! The message id model and its serialized form.

use std::fmt;

use prost::Message as _;

use super::budget;
use super::error::{FrameError, Section};
use super::proto::MessageIdData;

/// Where a chunked message starts: the id of its first chunk (the id itself names the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkStart {
    /// Ledger of the first chunk.
    pub ledger_id: i64,
    /// Entry of the first chunk.
    pub entry_id: i64,
}

/// The id of a message: the broker's (ledger, entry), plus the partition and the message's
/// place in its batch, which the client adds.
///
/// Ids order by ledger, entry, batch index, then partition. [`MessageId::EARLIEST`] sorts
/// before every real id and [`MessageId::LATEST`] after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Ledger id (−1 only in [`MessageId::EARLIEST`]).
    pub ledger_id: i64,
    /// Entry id within the ledger.
    pub entry_id: i64,
    /// Index within the batch, −1 when the entry is not a batch.
    pub batch_index: i32,
    /// Partition index, −1 for a non-partitioned topic.
    pub partition: i32,
    /// Number of messages in the batch, 0 when unknown or not a batch.
    pub batch_size: i32,
    /// For a chunked message, its first chunk.
    pub first_chunk: Option<ChunkStart>,
}

impl MessageId {
    /// Before the first message of a topic: (−1, −1).
    pub const EARLIEST: MessageId = MessageId::new(-1, -1);
    /// After the last message of a topic: (i64::MAX, i64::MAX).
    pub const LATEST: MessageId = MessageId::new(i64::MAX, i64::MAX);

    /// A plain id: no partition, not in a batch.
    pub const fn new(ledger_id: i64, entry_id: i64) -> Self {
        MessageId {
            ledger_id,
            entry_id,
            batch_index: -1,
            partition: -1,
            batch_size: 0,
            first_chunk: None,
        }
    }

    /// This id with its partition set.
    pub const fn with_partition(mut self, partition: i32) -> Self {
        self.partition = partition;
        self
    }

    /// This id as message `index` of a batch of `size`.
    pub const fn with_batch(mut self, index: i32, size: i32) -> Self {
        self.batch_index = index;
        self.batch_size = size;
        self
    }

    /// Whether this id names one message of a batch.
    pub const fn is_batch(&self) -> bool {
        self.batch_index >= 0
    }

    /// The id of the whole entry: the same ledger, entry and partition, no batch index.
    pub const fn entry(&self) -> MessageId {
        MessageId::new(self.ledger_id, self.entry_id).with_partition(self.partition)
    }

    /// Reads an id from its protobuf form. Absent optional fields take their proto defaults.
    pub fn from_proto(data: &MessageIdData) -> Self {
        MessageId {
            ledger_id: data.ledger_id as i64,
            entry_id: data.entry_id as i64,
            batch_index: data.batch_index.unwrap_or(-1),
            partition: data.partition.unwrap_or(-1),
            batch_size: data.batch_size.unwrap_or(0),
            first_chunk: data.first_chunk_message_id.as_ref().map(|c| ChunkStart {
                ledger_id: c.ledger_id as i64,
                entry_id: c.entry_id as i64,
            }),
        }
    }

    /// The protobuf form as the Java client writes it: `partition` only when ≥ 0, `batch_index`
    /// only when ≠ −1, `batch_size` always, the first chunk for chunked messages.
    pub fn to_proto(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id as u64,
            entry_id: self.entry_id as u64,
            partition: (self.partition >= 0).then_some(self.partition),
            batch_index: (self.batch_index != -1).then_some(self.batch_index),
            ack_set: Vec::new(),
            batch_size: Some(self.batch_size),
            first_chunk_message_id: self.first_chunk.map(|c| {
                Box::new(MessageIdData {
                    ledger_id: c.ledger_id as u64,
                    entry_id: c.entry_id as u64,
                    partition: (self.partition >= 0).then_some(self.partition),
                    ..Default::default()
                })
            }),
        }
    }

    /// The ledger and entry only, as commands that name whole entries carry them
    /// (REDELIVER_UNACKNOWLEDGED_MESSAGES, ACK without batch index).
    pub fn to_entry_proto(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id as u64,
            entry_id: self.entry_id as u64,
            ..Default::default()
        }
    }

    /// The serialized form (`MessageId::toByteArray` in Java, `serialize()` in Python): the
    /// protobuf `MessageIdData` written by [`MessageId::to_proto`]. Readable by every official
    /// client.
    pub fn serialize(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Reads a serialized id written by any official client.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, FrameError> {
        // An id is a handful of varints; 64 KiB of decoded memory is plenty.
        budget::check(Section::MessageId, bytes, 64 * 1024)?;
        let data = MessageIdData::decode(bytes)
            .map_err(|e| FrameError::protobuf(Section::MessageId, e))?;
        Ok(Self::from_proto(&data))
    }
}

impl fmt::Display for MessageId {
    /// `ledger:entry:partition:batch_index`, the form `pulsar-wire consume --json` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.ledger_id, self.entry_id, self.partition, self.batch_index
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// −1 as a protobuf varint: a negative int32/int64 (or u64::MAX) takes 10 bytes.
    const MINUS_ONE: [u8; 10] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    /// i64::MAX as a varint: 63 bits, 9 bytes.
    const I64_MAX: [u8; 9] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn golden_plain_id() {
        let bytes = [
            0x08, 10, // field 1 (ledger_id): 10
            0x10, 20, // field 2 (entry_id): 20
            0x30, 0, // field 6 (batch_size): 0, always written in the Java form
        ];
        let id = MessageId::new(10, 20);
        assert_eq!(id.serialize(), bytes);
        assert_eq!(MessageId::deserialize(&bytes), Ok(id));
    }

    #[test]
    fn golden_partitioned_batch_id() {
        let bytes = [
            0x08, 10, // ledger_id 10
            0x10, 20, // entry_id 20
            0x18, 1, // field 3 (partition): 1, written when >= 0
            0x20, 2, // field 4 (batch_index): 2, written when != -1
            0x30, 5, // field 6 (batch_size): 5
        ];
        let id = MessageId::new(10, 20).with_partition(1).with_batch(2, 5);
        assert_eq!(id.serialize(), bytes);
        assert_eq!(MessageId::deserialize(&bytes), Ok(id));
        assert!(id.is_batch());
        assert_eq!(id.entry(), MessageId::new(10, 20).with_partition(1));
    }

    #[test]
    fn golden_earliest_uses_ten_byte_varints() {
        let bytes = cat(&[
            &[0x08],
            &MINUS_ONE, // ledger_id -1 (u64::MAX on the wire)
            &[0x10],
            &MINUS_ONE, // entry_id -1
            &[0x30, 0], // batch_size 0
        ]);
        assert_eq!(bytes.len(), 24);
        assert_eq!(MessageId::EARLIEST.serialize(), bytes);
        assert_eq!(MessageId::deserialize(&bytes), Ok(MessageId::EARLIEST));
    }

    #[test]
    fn golden_latest() {
        let bytes = cat(&[&[0x08], &I64_MAX, &[0x10], &I64_MAX, &[0x30, 0]]);
        assert_eq!(MessageId::LATEST.serialize(), bytes);
        assert_eq!(MessageId::deserialize(&bytes), Ok(MessageId::LATEST));
    }

    #[test]
    fn golden_chunk_id() {
        let bytes = [
            0x08, 10, 0x10, 20, // ledger 10, entry 20: the last chunk
            0x18, 2, // partition 2
            0x30, 0, // batch_size 0
            0x3a, 6, // field 7 (first_chunk_message_id), 6 bytes:
            0x08, 8, 0x10, 9, // ledger 8, entry 9
            0x18, 2, // partition 2, repeated in the first chunk id
        ];
        let id = MessageId {
            first_chunk: Some(ChunkStart {
                ledger_id: 8,
                entry_id: 9,
            }),
            ..MessageId::new(10, 20).with_partition(2)
        };
        assert_eq!(id.serialize(), bytes);
        assert_eq!(MessageId::deserialize(&bytes), Ok(id));
    }

    #[test]
    fn reads_the_go_form_with_every_field() {
        // The Go client writes partition and batch_index even when they are -1.
        let bytes = cat(&[
            &[0x08, 10, 0x10, 20],
            &[0x18],
            &MINUS_ONE, // partition -1
            &[0x20],
            &MINUS_ONE, // batch_index -1
            &[0x30, 0], // batch_size 0
        ]);
        assert_eq!(MessageId::deserialize(&bytes), Ok(MessageId::new(10, 20)));
        let earliest = cat(&[
            &[0x08],
            &MINUS_ONE,
            &[0x10],
            &MINUS_ONE,
            &[0x18],
            &MINUS_ONE,
            &[0x20],
            &MINUS_ONE,
            &[0x30, 0],
        ]);
        assert_eq!(MessageId::deserialize(&earliest), Ok(MessageId::EARLIEST));
    }

    #[test]
    fn reads_the_cpp_form_with_defaults_omitted() {
        // The C++ client omits the fields that hold their proto defaults.
        assert_eq!(
            MessageId::deserialize(&[0x08, 10, 0x10, 20]),
            Ok(MessageId::new(10, 20))
        );
        assert_eq!(
            MessageId::deserialize(&[0x08, 10, 0x10, 20, 0x20, 3]),
            Ok(MessageId::new(10, 20).with_batch(3, 0))
        );
        // Fields in another order, and a repeated field (the last one wins).
        assert_eq!(
            MessageId::deserialize(&[0x30, 4, 0x10, 20, 0x08, 10, 0x20, 1, 0x20, 3]),
            Ok(MessageId::new(10, 20).with_batch(3, 4))
        );
    }

    #[test]
    fn ids_round_trip() {
        let chunk = |id: MessageId| MessageId {
            first_chunk: Some(ChunkStart {
                ledger_id: id.ledger_id - 1,
                entry_id: 0,
            }),
            ..id
        };
        let ids = [
            MessageId::EARLIEST,
            MessageId::LATEST,
            MessageId::new(0, 0),
            MessageId::new(1, 2),
            MessageId::new(i64::MAX, 0),
            MessageId::new(i64::MIN, i64::MIN),
            MessageId::new(7, 8).with_partition(0),
            MessageId::new(7, 8).with_partition(i32::MAX),
            MessageId::new(7, 8).with_batch(0, 1),
            MessageId::new(7, 8).with_batch(99, 100).with_partition(3),
            MessageId::new(7, 8).with_batch(i32::MAX, i32::MAX),
            MessageId::new(7, 8).with_batch(-5, 0),
            chunk(MessageId::new(100, 5)),
            chunk(MessageId::new(100, 5).with_partition(4)),
        ];
        for id in ids {
            assert_eq!(MessageId::deserialize(&id.serialize()), Ok(id), "{id}");
            assert_eq!(MessageId::from_proto(&id.to_proto()), id, "{id}");
        }
    }

    #[test]
    fn entry_proto_has_ledger_and_entry_only() {
        let id = MessageId::new(10, 20).with_partition(1).with_batch(2, 5);
        assert_eq!(id.to_entry_proto().encode_to_vec(), [0x08, 10, 0x10, 20]);
    }

    #[test]
    fn protobuf_errors() {
        for bytes in [
            &[0x08][..],                 // a key without its value
            &[0x08, 0x80],               // a varint cut short
            &[0x00, 0x00],               // field number 0
            &[0x3a, 5, 0x08],            // first chunk of 5 bytes, 1 present
            &[0x0a, 1, 0],               // ledger_id with the wrong wire type
            &[0x08, 10, 0x10, 20, 0x0f], // wire type 7
        ] {
            let res = MessageId::deserialize(bytes);
            assert!(
                matches!(&res, Err(FrameError::Protobuf { section: Section::MessageId, reason }) if !reason.is_empty()),
                "{bytes:?}: {res:?}"
            );
        }
    }

    #[test]
    fn too_complex_ids_are_refused() {
        // 30k ack_set entries of 2 bytes (field 5, varint 0): 60 kB of input, 64 KiB of budget.
        let mut bytes = vec![0x08, 10, 0x10, 20];
        for _ in 0..30_000 {
            bytes.extend_from_slice(&[0x28, 0x00]);
        }
        let res = MessageId::deserialize(&bytes);
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex {
                    section: Section::MessageId,
                    budget: 65536,
                    ..
                })
            ),
            "{res:?}"
        );
        // A packed ack_set (field 5 as length-delimited) of 3000 one-byte varints: 3 kB that
        // decode into 3000 i64.
        let mut bytes = vec![0x08, 10, 0x10, 20, 0x2a, 0xb8, 0x17];
        bytes.extend(std::iter::repeat_n(0x01, 3000));
        let res = MessageId::deserialize(&bytes);
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex {
                    section: Section::MessageId,
                    ..
                })
            ),
            "{res:?}"
        );
        // A short packed ack_set is fine.
        let res = MessageId::deserialize(&[0x08, 10, 0x10, 20, 0x2a, 2, 0x01, 0x02]);
        assert_eq!(res, Ok(MessageId::new(10, 20)));
    }

    #[test]
    fn ordering_and_display() {
        let plain = MessageId::new(5, 6);
        assert!(MessageId::EARLIEST < MessageId::new(0, 0));
        assert!(MessageId::new(0, 0) < plain);
        assert!(plain < MessageId::LATEST);
        assert!(plain.with_batch(0, 2) > plain);
        assert!(plain.with_batch(0, 2) < plain.with_batch(1, 2));
        assert!(plain.with_batch(1, 2) < MessageId::new(5, 7));
        assert_eq!(plain.to_string(), "5:6:-1:-1");
        assert_eq!(
            plain.with_partition(2).with_batch(3, 4).to_string(),
            "5:6:2:3"
        );
        assert!(!plain.is_batch());
    }
}
