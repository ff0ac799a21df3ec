//! The batch container: messages accumulated into one entry in the official batch format
//! (`[u32 size][SingleMessageMetadata][payload]` repeated), closed when it reaches its message
//! or byte limit, or when its delay expires. Sans-IO: the producer core drives it.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::message::ProducerMessage;
use crate::protocol::transaction::TxnId;
use crate::schema::SchemaVersion;
use crate::wire::{self, proto};

/// Batching limits. Defaults as the official C++ and Go clients: 1000 messages, 128 KiB, 10 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_delay: std::time::Duration,
}

/// A closed batch, ready to become one SEND.
#[derive(Debug)]
pub(crate) struct Batch<T> {
    /// The concatenated entries (uncompressed).
    pub entries: Bytes,
    pub first_sequence_id: u64,
    pub last_sequence_id: u64,
    /// The first message's key and ordering key, copied to the entry's metadata (the broker
    /// dispatches Key_Shared subscriptions on them).
    pub partition_key: Option<String>,
    pub ordering_key: Option<Bytes>,
    /// The transaction all its messages are in (a batch never mixes transactions).
    pub txn: Option<TxnId>,
    /// The first message's key is base64 of bytes.
    pub partition_key_b64_encoded: bool,
    /// The schema version of all its messages, when not the producer's (a batch never mixes
    /// versions).
    pub schema_version: Option<SchemaVersion>,
    /// One item per message, in order: item `i` is batch index `i`.
    pub items: Vec<T>,
}

/// Messages accumulating into the next batch.
#[derive(Debug)]
pub(crate) struct BatchBuilder<T> {
    limits: BatchLimits,
    entries: BytesMut,
    items: Vec<T>,
    first_sequence_id: u64,
    last_sequence_id: u64,
    partition_key: Option<String>,
    ordering_key: Option<Bytes>,
    txn: Option<TxnId>,
    partition_key_b64_encoded: bool,
    schema_version: Option<SchemaVersion>,
    started: Option<Instant>,
}

impl<T> BatchBuilder<T> {
    pub fn new(limits: BatchLimits) -> Self {
        BatchBuilder {
            limits,
            entries: BytesMut::new(),
            items: Vec::new(),
            first_sequence_id: 0,
            last_sequence_id: 0,
            partition_key: None,
            ordering_key: None,
            txn: None,
            partition_key_b64_encoded: false,
            schema_version: None,
            started: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the open batch must be closed by its delay.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| s + self.limits.max_delay)
    }

    /// Whether a message of `payload_len` bytes written with schema `version` still fits (an
    /// empty batch takes anything; a batch holds one schema version).
    pub fn fits(
        &self,
        payload_len: usize,
        version: Option<&SchemaVersion>,
        max_message_size: usize,
    ) -> bool {
        if self.is_empty() {
            return true;
        }
        if self.schema_version.as_ref() != version {
            return false;
        }
        let after = self.entries.len() + payload_len + 64;
        self.items.len() < self.limits.max_messages
            && after <= self.limits.max_bytes
            && after <= max_message_size
    }

    /// Whether the batch reached a limit and should be closed now.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.limits.max_messages || self.entries.len() >= self.limits.max_bytes
    }

    /// Adds a message with its sequence id. `now` is called only for a batch's first message
    /// (its delay starts then), so the clock is read once per batch, not once per message.
    pub fn add(
        &mut self,
        msg: ProducerMessage,
        sequence_id: u64,
        now: impl FnOnce() -> Instant,
        item: T,
    ) {
        if self.items.is_empty() {
            self.first_sequence_id = sequence_id;
            self.partition_key.clone_from(&msg.partition_key);
            self.ordering_key.clone_from(&msg.ordering_key);
            self.txn = msg.transaction.as_ref().map(|t| t.id());
            self.partition_key_b64_encoded = msg.partition_key_b64_encoded;
            self.schema_version.clone_from(&msg.schema_version);
            self.started = Some(now());
        }
        self.last_sequence_id = sequence_id;
        let mut single = proto::SingleMessageMetadata {
            properties: msg
                .properties
                .into_iter()
                .map(|(key, value)| proto::KeyValue { key, value })
                .collect(),
            partition_key: msg.partition_key,
            ordering_key: msg.ordering_key,
            event_time: msg.event_time.filter(|t| *t > 0),
            sequence_id: Some(sequence_id),
            partition_key_b64_encoded: msg.partition_key_b64_encoded.then_some(true),
            ..Default::default()
        };
        wire::encode_entry(&mut single, &msg.payload, &mut self.entries);
        self.items.push(item);
    }

    /// Closes the batch, if anything is in it.
    pub fn take(&mut self) -> Option<Batch<T>> {
        if self.items.is_empty() {
            return None;
        }
        self.started = None;
        Some(Batch {
            entries: self.entries.split().freeze(),
            first_sequence_id: self.first_sequence_id,
            last_sequence_id: self.last_sequence_id,
            partition_key: self.partition_key.take(),
            ordering_key: self.ordering_key.take(),
            txn: self.txn.take(),
            partition_key_b64_encoded: std::mem::take(&mut self.partition_key_b64_encoded),
            schema_version: self.schema_version.take(),
            items: std::mem::take(&mut self.items),
        })
    }
}

/// The open batches of a producer: one, or one per key (the key-based batcher, for Key_Shared
/// subscriptions, where the broker dispatches a whole entry on its first message's key); and
/// in either case one per transaction, since an entry belongs to one transaction or none.
#[derive(Debug)]
pub(crate) struct Batchers<T> {
    limits: BatchLimits,
    by_key: bool,
    batches: std::collections::HashMap<(Option<TxnId>, Option<Bytes>), BatchBuilder<T>>,
}

impl<T> Batchers<T> {
    pub fn new(limits: BatchLimits, by_key: bool) -> Self {
        Batchers {
            limits,
            by_key,
            batches: std::collections::HashMap::new(),
        }
    }

    fn key_of(&self, msg: &ProducerMessage) -> (Option<TxnId>, Option<Bytes>) {
        let txn = msg.transaction.as_ref().map(|t| t.id());
        if !self.by_key {
            return (txn, None);
        }
        let key = msg.ordering_key.clone().or_else(|| {
            msg.partition_key
                .as_ref()
                .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        });
        (txn, key)
    }

    /// When the oldest open batch must be closed by its delay.
    pub fn deadline(&self) -> Option<Instant> {
        self.batches.values().filter_map(|b| b.deadline()).min()
    }

    /// Whether `msg` does not fit its batch, which must be closed first.
    pub fn must_flush_before(&self, msg: &ProducerMessage, max_message_size: usize) -> bool {
        self.batches.get(&self.key_of(msg)).is_some_and(|b| {
            !b.fits(
                msg.payload.len(),
                msg.schema_version.as_ref(),
                max_message_size,
            )
        })
    }

    /// Adds a message to its batch; returns whether that batch is now full.
    pub fn add(
        &mut self,
        msg: ProducerMessage,
        sequence_id: u64,
        now: impl FnOnce() -> Instant,
        item: T,
    ) -> bool {
        let key = self.key_of(&msg);
        let limits = self.limits;
        let batch = self
            .batches
            .entry(key)
            .or_insert_with(|| BatchBuilder::new(limits));
        batch.add(msg, sequence_id, now, item);
        batch.is_full()
    }

    /// Closes every open batch, oldest first (so SENDs keep sequence-id order).
    pub fn take_all(&mut self) -> Vec<Batch<T>> {
        let mut out: Vec<Batch<T>> = self.batches.values_mut().filter_map(|b| b.take()).collect();
        out.sort_by_key(|b| b.first_sequence_id);
        if self.batches.len() > 64 {
            // Forget idle keys so a stream of distinct keys does not grow the map.
            self.batches.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_messages: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_messages,
            max_bytes,
            max_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn a_batch_parses_back_into_its_messages_with_their_fields() {
        let now = Instant::now();
        let mut b = BatchBuilder::new(limits(10, 1 << 20));
        assert_eq!(b.deadline(), None);
        b.add(
            ProducerMessage::new("a")
                .property("k", "v")
                .partition_key("key0"),
            7,
            || now,
            0,
        );
        b.add(ProducerMessage::new("bb").event_time(5), 8, || now, 1);
        assert_eq!(b.deadline(), Some(now + Duration::from_millis(10)));
        let batch = b.take().expect("a batch");
        assert!(b.is_empty() && b.take().is_none());
        assert_eq!((batch.first_sequence_id, batch.last_sequence_id), (7, 8));
        assert_eq!(batch.partition_key.as_deref(), Some("key0"));
        assert_eq!(batch.items, vec![0, 1]);
        let parsed: Vec<_> = wire::parse_batch(batch.entries, 2, 1 << 20)
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(parsed[0].payload, Bytes::from("a"));
        assert_eq!(parsed[0].metadata.properties[0].key, "k");
        assert_eq!(parsed[0].metadata.partition_key.as_deref(), Some("key0"));
        assert_eq!(parsed[0].metadata.sequence_id, Some(7));
        assert_eq!(parsed[1].payload, Bytes::from("bb"));
        assert_eq!(parsed[1].metadata.event_time, Some(5));
        assert_eq!(parsed[1].metadata.sequence_id, Some(8));
    }

    #[test]
    fn the_key_based_batcher_keeps_one_batch_per_key_and_closes_them_in_order() {
        let now = Instant::now();
        let mut b = Batchers::new(limits(3, 1 << 20), true);
        assert!(!b.add(ProducerMessage::new("a0").partition_key("a"), 0, || now, 0));
        assert!(!b.add(ProducerMessage::new("b1").partition_key("b"), 1, || now, 1));
        assert!(!b.add(ProducerMessage::new("a2").partition_key("a"), 2, || now, 2));
        // "b3" has ordering key "a": it joins a's batch (the ordering key wins), which is full.
        assert!(b.add(ProducerMessage::new("b3").ordering_key("a"), 3, || now, 3));
        let batches = b.take_all();
        let keys: Vec<(Option<String>, Vec<i32>)> = batches
            .into_iter()
            .map(|x| (x.partition_key, x.items))
            .collect();
        assert_eq!(
            keys,
            vec![
                (Some("a".into()), vec![0, 2, 3]),
                (Some("b".into()), vec![1])
            ]
        );
        let mut single = Batchers::new(limits(3, 1 << 20), false);
        single.add(ProducerMessage::new("x").partition_key("a"), 0, || now, 0);
        single.add(ProducerMessage::new("y").partition_key("b"), 1, || now, 1);
        assert_eq!(single.take_all().len(), 1);
    }

    #[test]
    fn limits_close_the_batch() {
        let now = Instant::now();
        let mut b = BatchBuilder::new(limits(2, 1 << 20));
        b.add(ProducerMessage::new("x"), 0, || now, ());
        assert!(!b.is_full());
        b.add(ProducerMessage::new("y"), 1, || now, ());
        assert!(b.is_full());
        assert!(
            !b.fits(1, None, 1 << 20),
            "a third message exceeds max messages"
        );

        let mut b = BatchBuilder::new(limits(100, 1000));
        assert!(
            b.fits(10_000, None, 1 << 20),
            "an empty batch takes anything"
        );
        b.add(ProducerMessage::new(vec![0u8; 600]), 0, || now, ());
        assert!(!b.fits(600, None, 1 << 20), "over max bytes");
        assert!(b.fits(100, None, 1 << 20));
        assert!(!b.fits(100, None, 700), "over the max message size");
    }
}
