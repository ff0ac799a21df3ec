//! Reassembly of chunked messages: a message larger than the max message size travels as
//! several entries sharing a `uuid`, with `chunk_id` 0..n−1. The assembler keeps a bounded
//! number of incomplete messages, expires old ones, and remembers every chunk's id so that
//! acknowledging the whole message acknowledges all of its chunks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::wire::MessageId;

/// One incomplete chunked message.
#[derive(Debug)]
struct Partial {
    uuid: String,
    expected: u32,
    next: u32,
    total: usize,
    data: BytesMut,
    ids: Vec<MessageId>,
    started: Instant,
}

/// Where a chunk belongs: its message's uuid, its index, the chunk count and the total size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkInfo<'a> {
    pub uuid: &'a str,
    pub chunk_id: u32,
    pub num_chunks: u32,
    pub total: usize,
}

/// What a chunk did.
#[derive(Debug, PartialEq)]
pub(crate) enum ChunkOutcome {
    /// Buffered; more chunks are needed.
    Pending,
    /// The last chunk: the whole payload and the id of every chunk, first to last.
    Complete { payload: Bytes, ids: Vec<MessageId> },
    /// The chunk cannot be used (out of order, too large, inconsistent): these chunk ids
    /// (including this one) will never make a message and should be redelivered or dropped.
    Discarded { ids: Vec<MessageId>, reason: String },
}

/// The incomplete chunked messages of one consumer partition.
#[derive(Debug)]
pub(crate) struct ChunkAssembler {
    max_pending: usize,
    expiry: Duration,
    max_size: usize,
    partials: VecDeque<Partial>,
}

impl ChunkAssembler {
    pub fn new(max_pending: usize, expiry: Duration, max_size: usize) -> Self {
        ChunkAssembler {
            max_pending: max_pending.max(1),
            expiry,
            max_size,
            partials: VecDeque::new(),
        }
    }

    /// Adds chunk `chunk_id` of `num_chunks` of message `uuid` (`total` bytes in all).
    /// Returns the outcome, and the ids of older messages evicted to make room.
    pub fn add(
        &mut self,
        chunk: ChunkInfo<'_>,
        id: MessageId,
        data: &[u8],
        now: Instant,
    ) -> (ChunkOutcome, Vec<MessageId>) {
        let ChunkInfo {
            uuid,
            chunk_id,
            num_chunks,
            total,
        } = chunk;
        let mut evicted = Vec::new();
        let discard = |mut ids: Vec<MessageId>, reason: String| {
            ids.push(id);
            ChunkOutcome::Discarded { ids, reason }
        };
        if total > self.max_size {
            return (
                discard(
                    Vec::new(),
                    format!("{total} bytes exceed the limit of {}", self.max_size),
                ),
                evicted,
            );
        }
        let at = self.partials.iter().position(|p| p.uuid == uuid);
        let index = match (at, chunk_id) {
            (Some(i), _) => i,
            (None, 0) => {
                while self.partials.len() >= self.max_pending {
                    if let Some(old) = self.partials.pop_front() {
                        evicted.extend(old.ids);
                    }
                }
                self.partials.push_back(Partial {
                    uuid: uuid.to_owned(),
                    expected: num_chunks,
                    next: 0,
                    total,
                    data: BytesMut::new(),
                    ids: Vec::new(),
                    started: now,
                });
                self.partials.len() - 1
            }
            (None, _) => {
                return (
                    discard(
                        Vec::new(),
                        format!("chunk {chunk_id} of an unknown message"),
                    ),
                    evicted,
                )
            }
        };
        let p = &mut self.partials[index];
        let consistent = p.next == chunk_id
            && p.expected == num_chunks
            && p.total == total
            && p.data.len() + data.len() <= total;
        if !consistent {
            let reason = format!(
                "chunk {chunk_id}/{num_chunks} does not follow chunk {}/{}",
                p.next, p.expected
            );
            let old = self
                .partials
                .remove(index)
                .map(|p| p.ids)
                .unwrap_or_default();
            return (discard(old, reason), evicted);
        }
        p.data.extend_from_slice(data);
        p.ids.push(id);
        p.next += 1;
        if p.next < p.expected {
            return (ChunkOutcome::Pending, evicted);
        }
        let Some(done) = self.partials.remove(index) else {
            return (ChunkOutcome::Pending, evicted);
        };
        if done.data.len() != done.total {
            let reason = format!(
                "{} bytes, not the {} announced",
                done.data.len(),
                done.total
            );
            return (
                ChunkOutcome::Discarded {
                    ids: done.ids,
                    reason,
                },
                evicted,
            );
        }
        (
            ChunkOutcome::Complete {
                payload: done.data.freeze(),
                ids: done.ids,
            },
            evicted,
        )
    }

    /// Removes the messages incomplete for longer than the expiry; returns their chunk ids.
    pub fn expire(&mut self, now: Instant) -> Vec<MessageId> {
        let mut ids = Vec::new();
        while self
            .partials
            .front()
            .is_some_and(|p| now.duration_since(p.started) >= self.expiry)
        {
            if let Some(p) = self.partials.pop_front() {
                ids.extend(p.ids);
            }
        }
        ids
    }

    /// When the oldest incomplete message expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.partials.front().map(|p| p.started + self.expiry)
    }

    /// Forgets everything (the connection was replaced: the broker sends it all again).
    pub fn clear(&mut self) {
        self.partials.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(e: i64) -> MessageId {
        MessageId::new(1, e)
    }

    #[test]
    fn chunks_in_order_make_the_message() {
        let now = Instant::now();
        let mut a = ChunkAssembler::new(10, Duration::from_secs(60), 1 << 20);
        assert_eq!(
            a.add(
                ChunkInfo {
                    uuid: "u",
                    chunk_id: 0,
                    num_chunks: 3,
                    total: 6
                },
                id(0),
                b"ab",
                now
            )
            .0,
            ChunkOutcome::Pending
        );
        assert_eq!(
            a.add(
                ChunkInfo {
                    uuid: "u",
                    chunk_id: 1,
                    num_chunks: 3,
                    total: 6
                },
                id(1),
                b"cd",
                now
            )
            .0,
            ChunkOutcome::Pending
        );
        assert_eq!(
            a.add(
                ChunkInfo {
                    uuid: "u",
                    chunk_id: 2,
                    num_chunks: 3,
                    total: 6
                },
                id(2),
                b"ef",
                now
            )
            .0,
            ChunkOutcome::Complete {
                payload: Bytes::from_static(b"abcdef"),
                ids: vec![id(0), id(1), id(2)]
            }
        );
        assert!(a.next_expiry().is_none());
    }

    #[test]
    fn out_of_order_unknown_and_oversized_chunks_are_discarded() {
        let now = Instant::now();
        let mut a = ChunkAssembler::new(10, Duration::from_secs(60), 100);
        a.add(
            ChunkInfo {
                uuid: "u",
                chunk_id: 0,
                num_chunks: 3,
                total: 6,
            },
            id(0),
            b"ab",
            now,
        );
        let (out, _) = a.add(
            ChunkInfo {
                uuid: "u",
                chunk_id: 2,
                num_chunks: 3,
                total: 6,
            },
            id(2),
            b"ef",
            now,
        );
        assert!(
            matches!(out, ChunkOutcome::Discarded { ref ids, .. } if ids == &vec![id(0), id(2)])
        );
        let (out, _) = a.add(
            ChunkInfo {
                uuid: "v",
                chunk_id: 1,
                num_chunks: 3,
                total: 6,
            },
            id(5),
            b"xx",
            now,
        );
        assert!(matches!(out, ChunkOutcome::Discarded { .. }));
        let (out, _) = a.add(
            ChunkInfo {
                uuid: "w",
                chunk_id: 0,
                num_chunks: 2,
                total: 1000,
            },
            id(6),
            b"xx",
            now,
        );
        assert!(matches!(out, ChunkOutcome::Discarded { .. }));
        let (out, _) = a.add(
            ChunkInfo {
                uuid: "x",
                chunk_id: 0,
                num_chunks: 2,
                total: 3,
            },
            id(7),
            b"xxxx",
            now,
        );
        assert!(
            matches!(out, ChunkOutcome::Discarded { .. }),
            "more bytes than announced"
        );
    }

    #[test]
    fn the_oldest_is_evicted_past_the_limit_and_old_ones_expire() {
        let now = Instant::now();
        let mut a = ChunkAssembler::new(2, Duration::from_secs(60), 1 << 20);
        a.add(
            ChunkInfo {
                uuid: "a",
                chunk_id: 0,
                num_chunks: 2,
                total: 2,
            },
            id(0),
            b"a",
            now,
        );
        a.add(
            ChunkInfo {
                uuid: "b",
                chunk_id: 0,
                num_chunks: 2,
                total: 2,
            },
            id(1),
            b"b",
            now,
        );
        let (_, evicted) = a.add(
            ChunkInfo {
                uuid: "c",
                chunk_id: 0,
                num_chunks: 2,
                total: 2,
            },
            id(2),
            b"c",
            now,
        );
        assert_eq!(evicted, vec![id(0)]);
        assert_eq!(a.next_expiry(), Some(now + Duration::from_secs(60)));
        assert_eq!(a.expire(now + Duration::from_secs(61)), vec![id(1), id(2)]);
    }
}
