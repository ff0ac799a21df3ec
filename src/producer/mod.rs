//! Producers: [`Producer`] publishes to a topic (all its partitions), each send resolving to the
//! message's id once the broker's receipt arrives.
//!
//! Each partition has its own task, which owns the sequence ids and the queue of pending sends
//! ([`crate::protocol::pending`]), and re-attaches to a new connection when its connection
//! drops, resending what is pending in order with the same sequence ids.

mod batch;
mod builder;
mod partition;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

pub use builder::{AccessMode, ProducerBuilder};
pub(crate) use partition::PartitionHandle;

use crate::error::{Error, Result};
use crate::message::ProducerMessage;
use crate::protocol::hash::{partition_for_key, HashingScheme};
use crate::protocol::topic::TopicName;
use crate::wire::MessageId;

/// The receipt of one message: resolves to its [`MessageId`] when the broker has stored it, or
/// to the error that failed it (send timeout, broker error, producer closed).
#[derive(Debug)]
#[must_use = "a receipt does nothing unless awaited or dropped knowingly"]
pub struct SendReceipt {
    rx: oneshot::Receiver<Result<MessageId>>,
}

impl Future for SendReceipt {
    type Output = Result<MessageId>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed("producer"))))
    }
}

/// A producer on one topic. Cheap to clone; clones share the same producer.
#[derive(Debug, Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

#[derive(Debug)]
struct ProducerInner {
    topic: TopicName,
    partitions: Vec<PartitionHandle>,
    hashing: HashingScheme,
    round_robin: AtomicUsize,
}

impl ProducerInner {
    fn new(topic: TopicName, partitions: Vec<PartitionHandle>, hashing: HashingScheme) -> Self {
        ProducerInner {
            topic,
            partitions,
            hashing,
            round_robin: AtomicUsize::new(0),
        }
    }

    fn route(&self, msg: &ProducerMessage) -> &PartitionHandle {
        let n = self.partitions.len();
        let index = match (&msg.partition_key, n) {
            (_, 0 | 1) => 0,
            (Some(key), n) => partition_for_key(key, n as u32, self.hashing) as usize,
            (None, n) => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.partitions[index.min(n.saturating_sub(1))]
    }
}

impl Producer {
    /// The topic, as given (normalized).
    pub fn topic(&self) -> &str {
        self.inner.topic.full_name()
    }

    /// The number of partitions (0 for a non-partitioned topic).
    pub fn partitions(&self) -> usize {
        match self.inner.partitions.len() {
            1 if !self.inner.partitions[0].is_partition() => 0,
            n => n,
        }
    }

    /// The producer's name (the first partition's; the broker's choice when none was given).
    pub fn name(&self) -> String {
        self.inner
            .partitions
            .first()
            .map(|p| p.name())
            .unwrap_or_default()
    }

    /// Sends a message and waits for its receipt.
    pub async fn send(&self, msg: impl Into<ProducerMessage>) -> Result<MessageId> {
        self.send_async(msg).await?.await
    }

    /// Queues a message and returns its receipt without waiting for the broker. Waits only for
    /// room in the pending queue when the producer blocks if full; otherwise a full queue fails
    /// at once with [`Error::ProducerQueueFull`]. Receipts of one producer complete in the order
    /// of the sends (per partition).
    pub async fn send_async(&self, msg: impl Into<ProducerMessage>) -> Result<SendReceipt> {
        let msg = msg.into();
        let partition = self.inner.route(&msg);
        let rx = partition.enqueue(msg).await?;
        Ok(SendReceipt { rx })
    }

    /// Queues a message and calls `callback` with its result when the receipt (or the error)
    /// comes, like the Python client's `send_async(msg, callback)`. The callback runs on a tokio
    /// task.
    pub async fn send_with_callback<F>(
        &self,
        msg: impl Into<ProducerMessage>,
        callback: F,
    ) -> Result<()>
    where
        F: FnOnce(Result<MessageId>) + Send + 'static,
    {
        let receipt = self.send_async(msg).await?;
        tokio::spawn(async move { callback(receipt.await) });
        Ok(())
    }

    /// Waits until every message queued before this call has its receipt or its error.
    pub async fn flush(&self) -> Result<()> {
        for p in &self.inner.partitions {
            p.flush().await?;
        }
        Ok(())
    }

    /// Flushes, then closes the producer on the broker. Sends after this fail with
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        let mut first_error = None;
        for p in &self.inner.partitions {
            if let Err(e) = p.close().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
