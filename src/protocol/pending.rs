//! The producer's queue of sends awaiting a receipt: FIFO, matched against SEND_RECEIPT by
//! sequence id, resent unchanged after a reconnect, failed when their send timeout passes.
//!
//! Receipts normally come in the order of the sends. A broker may answer a later send first
//! when an earlier one waits for something else: a send in a transaction waits for the topic's
//! transaction buffer (its first transactional write takes a snapshot first), while a plain
//! send after it goes straight to the ledger. Such an early receipt is kept on its send, and
//! completed once everything before it is: receipts still complete in send order.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use crate::wire::MessageId;

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
    /// A receipt that came before those of earlier sends: the entry id the broker gave.
    pub receipt: Option<MessageId>,
}

/// How a receipt matched the queue.
#[derive(Debug)]
pub enum ReceiptMatch<T> {
    /// The head of the queue, and after it the sends whose receipts came early: completed, in
    /// order, each with the entry id its receipt gave.
    Completed(Vec<(PendingSend<T>, MessageId)>),
    /// A send behind the head: its receipt is kept until the sends before it complete.
    Early,
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

    /// Matches a SEND_RECEIPT for `sequence_id` that gave entry `id`.
    pub fn on_receipt(&mut self, sequence_id: u64, id: MessageId) -> ReceiptMatch<T> {
        match self.items.front() {
            Some(head) if head.sequence_id == sequence_id => match self.items.pop_front() {
                Some(p) => {
                    let mut done = vec![(p, id)];
                    done.extend(self.take_ready());
                    ReceiptMatch::Completed(done)
                }
                None => ReceiptMatch::Stale,
            },
            Some(head) if sequence_id < head.sequence_id => ReceiptMatch::Stale,
            head => {
                let expected = head.map(|h| h.sequence_id);
                match self
                    .items
                    .iter_mut()
                    .find(|p| p.sequence_id == sequence_id && p.receipt.is_none())
                {
                    Some(p) => {
                        p.receipt = Some(id);
                        ReceiptMatch::Early
                    }
                    None => ReceiptMatch::OutOfSync {
                        expected,
                        received: sequence_id,
                    },
                }
            }
        }
    }

    /// Removes the sends at the head whose receipts came early, with their entry ids.
    pub fn take_ready(&mut self) -> Vec<(PendingSend<T>, MessageId)> {
        let mut ready = Vec::new();
        while let Some(id) = self.items.front().and_then(|p| p.receipt) {
            if let Some(p) = self.items.pop_front() {
                ready.push((p, id));
            }
        }
        ready
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
    /// the queue (one send timeout per producer), so only the front needs looking at. Stops at
    /// a send that has its receipt already ([`PendingQueue::take_ready`] takes those).
    pub fn expire(&mut self, now: Instant) -> Vec<PendingSend<T>> {
        let mut expired = Vec::new();
        while self
            .items
            .front()
            .is_some_and(|p| p.receipt.is_none() && p.deadline.is_some_and(|d| d <= now))
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

    /// The frames to write again after a reconnect, in their original order (not those the
    /// broker has already answered).
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        self.items
            .iter()
            .filter(|p| p.receipt.is_none())
            .map(|p| &p.frame)
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
            receipt: None,
        }
    }

    fn id(entry: i64) -> MessageId {
        MessageId::new(1, entry)
    }

    #[test]
    fn receipts_complete_in_order() {
        let mut q = PendingQueue::default();
        for s in 0..3 {
            q.push(send(s, None));
        }
        for s in 0..3 {
            match q.on_receipt(s, id(s as i64)) {
                ReceiptMatch::Completed(done) => {
                    assert_eq!(done.len(), 1);
                    assert_eq!(done[0].0.completion, s);
                    assert_eq!(done[0].1, id(s as i64));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(q.is_empty());
    }

    #[test]
    fn old_receipts_are_stale_and_future_ones_out_of_sync() {
        let mut q = PendingQueue::default();
        q.push(send(5, None));
        assert!(matches!(q.on_receipt(4, id(4)), ReceiptMatch::Stale));
        assert!(matches!(
            q.on_receipt(9, id(9)),
            ReceiptMatch::OutOfSync {
                expected: Some(5),
                received: 9
            }
        ));
        assert_eq!(q.len(), 1);
        let mut empty: PendingQueue<u64> = PendingQueue::default();
        assert!(matches!(
            empty.on_receipt(0, id(0)),
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

    #[test]
    fn an_early_receipt_waits_for_the_sends_before_it_and_is_not_resent() {
        let now = Instant::now();
        let mut q = PendingQueue::default();
        q.push(send(0, Some(now)));
        q.push(send(3, Some(now)));
        q.push(send(4, None));
        // The broker answers 3 (a plain send) before 0 (a send in a transaction).
        assert!(matches!(q.on_receipt(3, id(8)), ReceiptMatch::Early));
        // A second receipt for 3 matches nothing: out of sync.
        assert!(matches!(
            q.on_receipt(3, id(8)),
            ReceiptMatch::OutOfSync { .. }
        ));
        let frames: Vec<u8> = q.frames().map(|f| f[0]).collect();
        assert_eq!(frames, vec![0, 4], "an answered send is not written again");
        match q.on_receipt(0, id(7)) {
            ReceiptMatch::Completed(done) => {
                let got: Vec<(u64, MessageId)> =
                    done.iter().map(|(p, i)| (p.sequence_id, *i)).collect();
                assert_eq!(got, vec![(0, id(7)), (3, id(8))]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.first_sequence_id(), Some(4));
    }

    #[test]
    fn a_send_with_its_receipt_does_not_time_out_behind_one_that_does() {
        let now = Instant::now();
        let mut q = PendingQueue::default();
        q.push(send(0, Some(now)));
        q.push(send(1, Some(now)));
        q.push(send(2, Some(now)));
        assert!(matches!(q.on_receipt(1, id(1)), ReceiptMatch::Early));
        let expired: Vec<u64> = q.expire(now).into_iter().map(|p| p.sequence_id).collect();
        assert_eq!(expired, vec![0]);
        let ready: Vec<u64> = q
            .take_ready()
            .into_iter()
            .map(|(p, _)| p.sequence_id)
            .collect();
        assert_eq!(ready, vec![1]);
        let expired: Vec<u64> = q.expire(now).into_iter().map(|p| p.sequence_id).collect();
        assert_eq!(expired, vec![2]);
        assert!(q.is_empty());
    }
}
