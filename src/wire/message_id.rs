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
