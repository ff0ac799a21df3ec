//! Batch payloads: `[u32 size][SingleMessageMetadata][payload]` repeated, as the official
//! clients write them. The broker never looks inside; producers and consumers must agree.
//!
//! A batch travels as one entry whose `MessageMetadata.num_messages_in_batch` is the count. The
//! whole concatenation is what gets compressed, so parse it after decompressing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::budget;
use super::error::{FrameError, Section};
use super::proto::SingleMessageMetadata;

/// One message taken out of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    /// The message's own metadata (properties, keys, event time, sequence id, ...).
    pub metadata: SingleMessageMetadata,
    /// The message's payload: a slice of the batch, not a copy.
    pub payload: Bytes,
}

/// Appends one batch entry to `dst`. Sets `metadata.payload_size` to `payload.len()`.
pub fn encode_entry(metadata: &mut SingleMessageMetadata, payload: &[u8], dst: &mut BytesMut) {
    metadata.payload_size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let metadata_size = metadata.encoded_len();
    dst.reserve(4 + metadata_size + payload.len());
    dst.put_u32(metadata_size as u32);
    metadata.encode_raw(dst);
    dst.put_slice(payload);
}

/// The size [`encode_entry`] will append for this metadata and payload length.
pub fn entry_len(metadata: &SingleMessageMetadata, payload_len: usize) -> usize {
    let mut m = metadata.clone();
    m.payload_size = i32::try_from(payload_len).unwrap_or(i32::MAX);
    4 + m.encoded_len() + payload_len
}

/// Iterates over the `num_messages` entries of a batch payload.
///
/// Each item is an entry or the error that ends the iteration: a truncated entry, a protobuf
/// that does not decode, or a count that does not match the bytes
/// ([`FrameError::BatchCountMismatch`]: fewer entries than announced, or bytes left after the
/// last one). Nothing is allocated from the announced count; payloads are slices of `data`.
/// `max_frame_size` bounds the memory each entry's metadata may decode into.
pub fn parse_batch(data: Bytes, num_messages: u32, max_frame_size: usize) -> BatchIter {
    BatchIter {
        data,
        expected: num_messages,
        index: 0,
        max_frame_size,
        done: false,
    }
}

/// The iterator returned by [`parse_batch`].
#[derive(Debug, Clone)]
pub struct BatchIter {
    data: Bytes,
    expected: u32,
    index: u32,
    max_frame_size: usize,
    done: bool,
}

impl BatchIter {
    fn entry(&mut self) -> Result<BatchEntry, FrameError> {
        if self.data.is_empty() {
            return Err(FrameError::BatchCountMismatch {
                expected: self.expected,
                found: self.index,
            });
        }
        if self.data.len() < 4 {
            return Err(FrameError::truncated(
                Section::BatchEntry,
                4,
                self.data.len(),
            ));
        }
        let metadata_size = self.data.get_u32() as usize;
        if metadata_size > self.data.len() {
            return Err(FrameError::truncated(
                Section::BatchEntry,
                metadata_size as u64,
                self.data.len(),
            ));
        }
        let metadata_bytes = self.data.split_to(metadata_size);
        budget::check(Section::BatchEntry, &metadata_bytes, self.max_frame_size)?;
        let metadata = SingleMessageMetadata::decode(metadata_bytes)
            .map_err(|e| FrameError::protobuf(Section::BatchEntry, e))?;
        let payload_size = usize::try_from(metadata.payload_size).map_err(|_| {
            FrameError::Protobuf {
                section: Section::BatchEntry,
                reason: format!("negative payload size {}", metadata.payload_size),
            }
        })?;
        if payload_size > self.data.len() {
            return Err(FrameError::truncated(
                Section::BatchEntry,
                payload_size as u64,
                self.data.len(),
            ));
        }
        let payload = self.data.split_to(payload_size);
        Ok(BatchEntry { metadata, payload })
    }
}

impl Iterator for BatchIter {
    type Item = Result<BatchEntry, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.index == self.expected {
            self.done = true;
            if self.data.is_empty() {
                return None;
            }
            return Some(Err(FrameError::BatchCountMismatch {
                expected: self.expected,
                found: self.expected.saturating_add(1),
            }));
        }
        let item = self.entry();
        match item {
            Ok(_) => self.index += 1,
            Err(_) => self.done = true,
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Every entry takes at least 4 + 2 bytes (size field, payload_size field), so the count
        // is also bounded by the bytes (plus one for a trailing error).
        let by_bytes = self.data.len() / 6 + 1;
        let left = (self.expected - self.index) as usize + 1;
        (0, Some(left.min(by_bytes)))
    }
}
