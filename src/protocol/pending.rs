//! The producer's queue of sends awaiting a receipt: FIFO, matched against SEND_RECEIPT by
//! sequence id, resent unchanged after a reconnect, failed when their send timeout passes.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

/// One SEND awaiting its receipt.
#[derive(Debug)]
pub struct PendingSend<T> {
    /// Sequence id of the (first) message.
    pub sequence_id: u64,
    /// Sequence id of the last message (the same as `sequence_id` unless batched).
    pub highest_sequence_id: u64,
    /// The encoded SEND frame, written again unchanged after a reconnect.
    pub frame: Bytes,
    /// When the send times out.
    pub deadline: Option<Instant>,
    /// Whoever waits for the receipt.
    pub completion: T,
}

/// How a receipt matched the queue.
#[derive(Debug)]
pub enum ReceiptMatch<T> {
    /// The head of the queue: completed.
    Completed(PendingSend<T>),
    /// Older than the head: a receipt for a send that already failed (timed out). Ignore it.
    Stale,
    /// Newer than the head, or the queue is empty: the broker and client disagree. Reconnect
    /// (which resends everything pending).
    OutOfSync {
        /// The head's sequence id, if any.
        expected: Option<u64>,
        /// The receipt's sequence id.
        received: u64,
    },
}

/// The FIFO of pending sends.
#[derive(Debug)]
pub struct PendingQueue<T> {
    items: VecDeque<PendingSend<T>>,
}

impl<T> Default for PendingQueue<T> {
    fn default() -> Self {
        PendingQueue {
            items: VecDeque::new(),
        }
    }
}

impl<T> PendingQueue<T> {
    /// How many sends are pending.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a send (before it is written).
    pub fn push(&mut self, send: PendingSend<T>) {
        self.items.push_back(send);
    }

    /// The highest sequence id pending, if any.
    pub fn last_sequence_id(&self) -> Option<u64> {
        self.items.back().map(|p| p.highest_sequence_id)
    }

    /// The sequence id at the head, if any.
    pub fn first_sequence_id(&self) -> Option<u64> {
        self.items.front().map(|p| p.sequence_id)
    }

    /// Matches a SEND_RECEIPT for `sequence_id`.
    pub fn on_receipt(&mut self, sequence_id: u64) -> ReceiptMatch<T> {
        match self.items.front() {
            Some(head) if head.sequence_id == sequence_id => match self.items.pop_front() {
                Some(p) => ReceiptMatch::Completed(p),
                None => ReceiptMatch::Stale,
            },
            Some(head) if sequence_id < head.sequence_id => ReceiptMatch::Stale,
            head => ReceiptMatch::OutOfSync {
                expected: head.map(|h| h.sequence_id),
                received: sequence_id,
            },
        }
    }

    /// Removes the send with this sequence id (a SEND_ERROR for it), wherever it is.
    pub fn remove(&mut self, sequence_id: u64) -> Option<PendingSend<T>> {
        let at = self
            .items
            .iter()
            .position(|p| p.sequence_id == sequence_id)?;
        self.items.remove(at)
    }

    /// Removes and returns the sends whose deadline is at or before `now`. Deadlines grow along
    /// the queue (one send timeout per producer), so only the front needs looking at.
    pub fn expire(&mut self, now: Instant) -> Vec<PendingSend<T>> {
        let mut expired = Vec::new();
        while self
            .items
            .front()
            .is_some_and(|p| p.deadline.is_some_and(|d| d <= now))
        {
            if let Some(p) = self.items.pop_front() {
                expired.push(p);
            }
        }
        expired
    }

    /// The earliest deadline: the front's.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.items.front().and_then(|p| p.deadline)
    }

    /// The frames to write again after a reconnect, in their original order.
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        self.items.iter().map(|p| &p.frame)
    }

    /// Removes everything (to fail it).
    pub fn drain(&mut self) -> impl Iterator<Item = PendingSend<T>> + '_ {
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn send(seq: u64, deadline: Option<Instant>) -> PendingSend<u64> {
        PendingSend {
            sequence_id: seq,
            highest_sequence_id: seq,
            frame: Bytes::from(vec![seq as u8]),
            deadline,
            completion: seq,
        }
    }

    #[test]
    fn receipts_complete_in_order() {
        let mut q = PendingQueue::default();
        for s in 0..3 {
            q.push(send(s, None));
        }
        for s in 0..3 {
            match q.on_receipt(s) {
                ReceiptMatch::Completed(p) => assert_eq!(p.completion, s),
                other => panic!("{other:?}"),
            }
        }
        assert!(q.is_empty());
    }

    #[test]
    fn old_receipts_are_stale_and_future_ones_out_of_sync() {
        let mut q = PendingQueue::default();
        q.push(send(5, None));
        assert!(matches!(q.on_receipt(4), ReceiptMatch::Stale));
        assert!(matches!(
            q.on_receipt(9),
            ReceiptMatch::OutOfSync {
                expected: Some(5),
                received: 9
            }
        ));
        assert_eq!(q.len(), 1);
        let mut empty: PendingQueue<u64> = PendingQueue::default();
        assert!(matches!(
            empty.on_receipt(0),
            ReceiptMatch::OutOfSync {
                expected: None,
                received: 0
            }
        ));
    }

    #[test]
    fn expiry_takes_only_what_is_due_and_keeps_order() {
        let now = Instant::now();
        let mut q = PendingQueue::default();
        q.push(send(0, Some(now)));
        q.push(send(1, Some(now + Duration::from_secs(5))));
        q.push(send(2, Some(now + Duration::from_secs(6))));
        let expired: Vec<u64> = q.expire(now).into_iter().map(|p| p.sequence_id).collect();
        assert_eq!(expired, vec![0]);
        assert_eq!(q.next_deadline(), Some(now + Duration::from_secs(5)));
        let frames: Vec<u8> = q.frames().map(|f| f[0]).collect();
        assert_eq!(frames, vec![1, 2]);
        assert_eq!(q.remove(2).map(|p| p.sequence_id), Some(2));
        assert_eq!(q.last_sequence_id(), Some(1));
    }
}
