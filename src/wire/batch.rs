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
        let payload_size =
            usize::try_from(metadata.payload_size).map_err(|_| FrameError::Protobuf {
                section: Section::BatchEntry,
                reason: format!("negative payload size {}", metadata.payload_size),
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
        // Every entry takes at least its 4-byte size field (an empty metadata is valid: payload
        // size 0), so the count is also bounded by the bytes (plus one for a trailing error).
        let by_bytes = self.data.len() / 4 + 1;
        let left = (self.expected - self.index) as usize + 1;
        (0, Some(left.min(by_bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto::KeyValue;

    const MAX: usize = 64 * 1024;

    /// Three entries, written out by hand. A protobuf key is (field << 3 | wire type).
    const BATCH: &[u8] = &[
        0, 0, 0, 10, // metadata size of entry 0
        0x0a, 6, // field 1 (properties), 6 bytes: a KeyValue
        0x0a, 1, b'a', // field 1 (key): "a"
        0x12, 1, b'b', // field 2 (value): "b"
        0x18, 3, // field 3 (payload_size): 3
        b'o', b'n', b'e', // payload of entry 0
        0, 0, 0, 4, // metadata size of entry 1
        0x18, 3, // field 3 (payload_size): 3
        0x40, 7, // field 8 (sequence_id): 7
        b't', b'w', b'o', // payload of entry 1
        0, 0, 0, 2, // metadata size of entry 2
        0x18, 0, // payload_size 0: required, so written even when 0
    ];

    fn golden_entries() -> Vec<(SingleMessageMetadata, &'static [u8])> {
        vec![
            (
                SingleMessageMetadata {
                    properties: vec![KeyValue {
                        key: "a".into(),
                        value: "b".into(),
                    }],
                    payload_size: 3,
                    ..Default::default()
                },
                b"one",
            ),
            (
                SingleMessageMetadata {
                    payload_size: 3,
                    sequence_id: Some(7),
                    ..Default::default()
                },
                b"two",
            ),
            (SingleMessageMetadata::default(), b""),
        ]
    }

    fn parse(data: &[u8], n: u32) -> Vec<Result<BatchEntry, FrameError>> {
        parse_batch(Bytes::copy_from_slice(data), n, MAX).collect()
    }

    #[test]
    fn golden_batch_encodes_and_parses() {
        let mut dst = BytesMut::new();
        for (mut metadata, payload) in golden_entries() {
            // payload_size is set by encode_entry whatever it was.
            metadata.payload_size = 99;
            let before = dst.len();
            encode_entry(&mut metadata, payload, &mut dst);
            assert_eq!(metadata.payload_size as usize, payload.len());
            assert_eq!(dst.len() - before, entry_len(&metadata, payload.len()));
        }
        assert_eq!(&dst[..], BATCH);

        let parsed = parse(BATCH, 3);
        let expected: Vec<Result<BatchEntry, FrameError>> = golden_entries()
            .into_iter()
            .map(|(metadata, payload)| {
                Ok(BatchEntry {
                    metadata,
                    payload: Bytes::from_static(payload),
                })
            })
            .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn entry_len_does_not_depend_on_the_metadata_payload_size() {
        let metadata = SingleMessageMetadata {
            payload_size: 1,
            ..Default::default()
        };
        // payload_size 300 needs a 2-byte varint: 4 + (1 + 2) + 300.
        assert_eq!(entry_len(&metadata, 300), 307);
        assert_eq!(entry_len(&metadata, 0), 6);
    }

    #[test]
    fn payloads_are_slices_of_the_batch() {
        let data = Bytes::from_static(BATCH);
        let entries: Vec<_> = parse_batch(data.clone(), 3, MAX).collect();
        let Some(Ok(first)) = entries.first() else {
            panic!("{entries:?}");
        };
        assert_eq!(first.payload.as_ptr(), data[14..].as_ptr());
        let Some(Ok(second)) = entries.get(1) else {
            panic!("{entries:?}");
        };
        assert_eq!(second.payload.as_ptr(), data[25..].as_ptr());
    }

    #[test]
    fn batches_round_trip() {
        for n in [0usize, 1, 2, 17, 200] {
            let mut dst = BytesMut::new();
            let mut expected = Vec::new();
            for i in 0..n {
                let payload = vec![i as u8; i % 7];
                let mut metadata = SingleMessageMetadata {
                    partition_key: (i % 2 == 0).then(|| format!("key-{i}")),
                    event_time: (i % 3 == 0).then_some(i as u64 * 1000),
                    sequence_id: Some(i as u64),
                    null_value: (i % 5 == 0).then_some(true),
                    ordering_key: (i % 4 == 0).then(|| Bytes::from(vec![1, 2, 3])),
                    properties: (0..i % 3)
                        .map(|p| KeyValue {
                            key: format!("k{p}"),
                            value: "v".repeat(p),
                        })
                        .collect(),
                    ..Default::default()
                };
                encode_entry(&mut metadata, &payload, &mut dst);
                expected.push(Ok(BatchEntry {
                    metadata,
                    payload: Bytes::from(payload),
                }));
            }
            let parsed: Vec<_> = parse_batch(dst.freeze(), n as u32, MAX).collect();
            assert_eq!(parsed, expected, "{n} entries");
        }
    }

    #[test]
    fn fewer_entries_than_announced() {
        let parsed = parse(BATCH, 4);
        assert_eq!(parsed.len(), 4);
        assert!(parsed[..3].iter().all(Result::is_ok));
        assert_eq!(
            parsed[3],
            Err(FrameError::BatchCountMismatch {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            parse(&[], 2),
            [Err(FrameError::BatchCountMismatch {
                expected: 2,
                found: 0
            })]
        );
        // A huge count allocates nothing up front.
        let parsed = parse(BATCH, u32::MAX);
        assert_eq!(
            parsed.last(),
            Some(&Err(FrameError::BatchCountMismatch {
                expected: u32::MAX,
                found: 3
            }))
        );
    }

    #[test]
    fn more_entries_than_announced() {
        let parsed = parse(BATCH, 2);
        assert_eq!(parsed.len(), 3);
        assert!(parsed[..2].iter().all(Result::is_ok));
        assert_eq!(
            parsed[2],
            Err(FrameError::BatchCountMismatch {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            parse(BATCH, 0),
            [Err(FrameError::BatchCountMismatch {
                expected: 0,
                found: 1
            })]
        );
        assert_eq!(parse(&[], 0), []);
    }

    #[test]
    fn truncated_entries() {
        let truncated = |needed, available| {
            Err(FrameError::Truncated {
                section: Section::BatchEntry,
                needed,
                available,
            })
        };
        // The size field is cut short.
        assert_eq!(parse(&[0, 0, 0], 1), [truncated(4, 3)]);
        // After a whole entry.
        let mut data = BATCH[..14].to_vec();
        data.extend_from_slice(b"one");
        data.push(0);
        let parsed = parse(&data, 2);
        assert!(parsed[0].is_ok());
        assert_eq!(parsed[1], truncated(4, 1));
        // The metadata size points past the end.
        assert_eq!(parse(&[0, 0, 0, 16, 0x18, 0], 1), [truncated(16, 2)]);
        assert_eq!(
            parse(&[0xff, 0xff, 0xff, 0xff], 1),
            [truncated(u64::from(u32::MAX), 0)]
        );
        // The payload size points past the end.
        assert_eq!(parse(&[0, 0, 0, 2, 0x18, 5, b'a'], 1), [truncated(5, 1)]);
    }

    #[test]
    fn protobuf_errors() {
        // A varint cut short.
        let parsed = parse(&[0, 0, 0, 2, 0x18, 0x80], 1);
        assert!(
            matches!(
                parsed.as_slice(),
                [Err(FrameError::Protobuf {
                    section: Section::BatchEntry,
                    ..
                })]
            ),
            "{parsed:?}"
        );
        // payload_size -1, as a 10-byte varint.
        let mut data = vec![0, 0, 0, 11, 0x18];
        data.extend_from_slice(&[0xff; 9]);
        data.push(0x01);
        assert_eq!(
            parse(&data, 1),
            [Err(FrameError::Protobuf {
                section: Section::BatchEntry,
                reason: "negative payload size -1".into()
            })]
        );
    }

    #[test]
    fn too_complex_entry_metadata() {
        // 30k empty properties (field 1, length 0).
        let mut metadata = Vec::new();
        for _ in 0..30_000 {
            metadata.extend_from_slice(&[0x0a, 0x00]);
        }
        let mut data = (metadata.len() as u32).to_be_bytes().to_vec();
        data.extend_from_slice(&metadata);
        let parsed = parse(&data, 1);
        assert!(
            matches!(
                parsed.as_slice(),
                [Err(FrameError::TooComplex {
                    section: Section::BatchEntry,
                    budget: MAX,
                    ..
                })]
            ),
            "{parsed:?}"
        );
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut iter = parse_batch(Bytes::from_static(&[0, 0, 0]), 5, MAX);
        assert!(matches!(iter.next(), Some(Err(_))));
        assert_eq!(iter.size_hint(), (0, Some(0)));
        assert!(iter.next().is_none());
        assert!(iter.next().is_none());
    }

    #[test]
    fn size_hint_bounds_the_items() {
        // Empty entries (`[0, 0, 0, 0]`: metadata size 0, payload size 0 by default) are 4 bytes.
        let empty = [0u8; 4 * 3];
        assert_eq!(parse(&empty, 3).len(), 3);
        for (data, n) in [
            (&empty[..], 3),
            (&empty[..], 4),
            (&empty[..], 2),
            (&empty[..], 100),
            (BATCH, 3),
            (BATCH, 5),
            (BATCH, 1),
            (&[][..], 0),
            (&[][..], 1),
        ] {
            let mut iter = parse_batch(Bytes::copy_from_slice(data), n, MAX);
            loop {
                let (low, high) = iter.size_hint();
                let left = iter.clone().count();
                assert!(low <= left, "{n} entries announced in {data:?}");
                assert!(
                    high.is_some_and(|h| left <= h),
                    "{left} items left but size_hint says {high:?} ({n} announced in {data:?})"
                );
                if iter.next().is_none() {
                    break;
                }
            }
        }
    }
}
