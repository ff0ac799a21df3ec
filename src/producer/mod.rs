//! Producers: [`Producer`] publishes to a topic (all its partitions), each send resolving to the
//! message's id once the broker's receipt arrives.
//!
//! Each partition has its own task, which owns the sequence ids and the queue of pending sends
//! ([`crate::protocol::pending`]), and re-attaches to a new connection when its connection
//! drops, resending what is pending in order with the same sequence ids.

mod builder;
mod partition;
mod typed;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use builder::{AccessMode, ProducerBuilder};
pub(crate) use partition::PartitionHandle;
pub use typed::{TypedProducer, TypedProducerBuilder};

use crate::error::{Error, Result};
use crate::message::ProducerMessage;
use crate::protocol::hash::{partition_for_key, HashingScheme};
use crate::protocol::topic::TopicName;
use crate::stats::{ProducerRecorder, ProducerStats};
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

/// How messages are spread over the partitions of a partitioned topic.
#[derive(Debug, Clone, Default)]
pub enum RoutingMode {
    /// Keyed messages go where the key hashes; the others rotate over the partitions. With
    /// batching on, the rotation moves on once per ten batch delays (as the Java client), so
    /// that consecutive messages fill one partition's batch.
    #[default]
    RoundRobin,
    /// Keyed messages go where the key hashes; the others all go to one partition, chosen at
    /// random when the producer is created.
    SinglePartition,
    /// The router decides for every message.
    Custom(Arc<dyn MessageRouter>),
}

/// Chooses the partition of each message ([`RoutingMode::Custom`]).
pub trait MessageRouter: Send + Sync + std::fmt::Debug {
    /// The partition (0-based, below `partitions`) for `msg`.
    fn choose_partition(&self, msg: &ProducerMessage, partitions: u32) -> u32;
}

/// One partition's producer: started when the producer is created, or on its first message
/// (lazy start).
#[derive(Debug)]
struct Slot {
    topic: TopicName,
    index: Option<i32>,
    handle: tokio::sync::OnceCell<PartitionHandle>,
}

impl Slot {
    fn new(topic: TopicName, index: Option<i32>) -> Arc<Slot> {
        Arc::new(Slot {
            topic,
            index,
            handle: tokio::sync::OnceCell::new(),
        })
    }

    /// The partition's producer, if started.
    fn handle(&self) -> Option<&PartitionHandle> {
        self.handle.get()
    }

    /// The partition's producer, started now if it is not yet (once, whoever asks first).
    async fn start(
        &self,
        session: &Arc<crate::session::Session>,
        config: &partition::PartitionConfig,
    ) -> Result<&PartitionHandle> {
        self.handle
            .get_or_try_init(|| {
                partition::start(
                    session.clone(),
                    self.topic.clone(),
                    self.index,
                    config.clone(),
                )
            })
            .await
    }
}

#[derive(Debug)]
struct ProducerInner {
    topic: TopicName,
    partitioned: bool,
    /// The one partition task of a non-partitioned topic: sends skip the lock and the routing.
    single: Option<PartitionHandle>,
    partitions: RwLock<Vec<Arc<Slot>>>,
    /// With lazy start: what starts a partition's producer on its first message.
    lazy: Option<(Arc<crate::session::Session>, partition::PartitionConfig)>,
    /// Set by `close`: no partition starts after it.
    closed: std::sync::atomic::AtomicBool,
    hashing: HashingScheme,
    routing: RoutingMode,
    round_robin: AtomicUsize,
    /// Random start of the rotation, and the SinglePartition choice.
    start: usize,
    /// How long the batch-aware rotation stays on one partition (None: per message).
    switch_every: Option<Duration>,
    created: Instant,
    /// Called around every send, in order.
    interceptors: crate::interceptor::ProducerInterceptors,
    /// Write a trace context into messages without one.
    propagate: bool,
    /// Dropped with the producer: stops the partition watcher at once.
    _watcher: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ProducerInner {
    /// The started partitions' producers, in partition order.
    fn handles(&self) -> Vec<PartitionHandle> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|s| s.handle().cloned())
            .collect()
    }

    /// How many partitions (started or not).
    fn partition_count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The producer of the partition `msg` goes to, started now if it is lazy and not yet.
    async fn route(&self, msg: &ProducerMessage) -> Result<PartitionHandle> {
        let slot = self.route_slot(msg).ok_or(Error::Closed("producer"))?;
        if let Some(h) = slot.handle() {
            return Ok(h.clone());
        }
        let (session, config) = self.lazy.as_ref().ok_or(Error::Closed("producer"))?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("producer"));
        }
        let handle = slot.start(session, config).await?.clone();
        if self.closed.load(Ordering::Acquire) {
            // Closed while this partition started: close it too.
            let _ = handle.close().await;
            return Err(Error::Closed("producer"));
        }
        tracing::debug!(topic = %slot.topic, "lazily started the partition's producer");
        Ok(handle)
    }

    fn route_slot(&self, msg: &ProducerMessage) -> Option<Arc<Slot>> {
        let partitions = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let n = partitions.len();
        if n <= 1 {
            return partitions.first().cloned();
        }
        let index = match (&self.routing, &msg.partition_key) {
            (RoutingMode::Custom(router), _) => router.choose_partition(msg, n as u32) as usize,
            (_, Some(key)) => partition_for_key(key, n as u32, self.hashing) as usize,
            (RoutingMode::SinglePartition, None) => self.start,
            (RoutingMode::RoundRobin, None) => match self.switch_every {
                Some(every) => {
                    let ticks = self.created.elapsed().as_micros() / every.as_micros().max(1);
                    (ticks as usize).wrapping_add(self.start)
                }
                None => self
                    .round_robin
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(self.start),
            },
        };
        partitions.get(index % n).cloned()
    }
}

/// Checks the partition count every `period` (a minute by default) and adds producers for new
/// partitions.
async fn watch_partitions(
    inner: std::sync::Weak<ProducerInner>,
    session: std::sync::Arc<crate::session::Session>,
    config: partition::PartitionConfig,
    period: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = &mut stop => return,
        }
        let Some(producer) = inner.upgrade() else {
            return;
        };
        let Ok(n) = session.partitioned_metadata(&producer.topic).await else {
            continue;
        };
        let have = producer.partition_count() as u32;
        for i in have..n {
            let slot = Slot::new(producer.topic.partition(i), Some(i as i32));
            // Lazily: started on its first message, as the others.
            let started = match producer.lazy {
                Some(_) => Ok(()),
                None => slot.start(&session, &config).await.map(|_| ()),
            };
            match started {
                Ok(()) => {
                    if let Ok(mut p) = producer.partitions.write() {
                        p.push(slot);
                    }
                    tracing::info!(topic = %producer.topic, partition = i, "producing to a new partition");
                }
                Err(e) => {
                    tracing::warn!(topic = %producer.topic, partition = i, error = %e, "cannot produce to a new partition yet");
                    break;
                }
            }
        }
    }
}

impl Producer {
    /// The topic, as given (normalized).
    pub fn topic(&self) -> &str {
        self.inner.topic.full_name()
    }

    /// The number of partitions (0 for a non-partitioned topic).
    pub fn partitions(&self) -> usize {
        if self.inner.partitioned {
            self.inner.partition_count()
        } else {
            0
        }
    }

    /// The producer's name (the first partition's; the broker's choice when none was given).
    pub fn name(&self) -> String {
        self.inner
            .handles()
            .first()
            .map(|p| p.name())
            .unwrap_or_default()
    }

    /// The producer's statistics (the Java client's `getStats`): the counts, rates and send
    /// latency percentiles of the last complete stats interval
    /// ([`ClientBuilder::stats_interval`](crate::ClientBuilder::stats_interval)), and totals
    /// since creation. A partitioned producer's are the sum over its partitions: counts, rates
    /// and pending messages added, latency percentiles from the partitions' merged histograms.
    /// With stats off, only [`ProducerStats::pending_queue_size`] is filled in.
    pub fn stats(&self) -> ProducerStats {
        let handles = self.inner.handles();
        if handles.iter().all(|h| h.recorder().is_none()) {
            return ProducerStats {
                pending_queue_size: handles.iter().map(|h| h.pending()).sum(),
                ..Default::default()
            };
        }
        let now = tokio::time::Instant::now().into_std();
        ProducerRecorder::sum(
            now,
            handles
                .iter()
                .filter_map(|h| h.recorder().map(|r| (r, h.pending()))),
        )
    }

    /// Each partition's statistics, by its full topic name, in partition order (the Java
    /// client's `PartitionedTopicProducerStats.getPartitionStats`); one entry, the topic's,
    /// for a non-partitioned topic.
    pub fn partition_stats(&self) -> Vec<(String, ProducerStats)> {
        self.inner
            .handles()
            .iter()
            .map(|h| (h.topic().to_owned(), h.stats()))
            .collect()
    }

    /// Whether every partition is attached to a broker connection now (false while one
    /// reconnects, and after [`close`](Self::close)).
    pub fn is_connected(&self) -> bool {
        let handles = self.inner.handles();
        !handles.is_empty() && handles.iter().all(|h| h.is_connected())
    }

    /// The highest sequence id the broker confirmed for this producer: by a receipt, or, when
    /// the producer attached, as the last one it stored for the producer's name (message
    /// deduplication). The highest over the partitions of a partitioned topic. `None` before
    /// any (where the Java client's `getLastSequenceId` returns -1).
    pub fn last_sequence_id(&self) -> Option<u64> {
        self.inner
            .handles()
            .iter()
            .filter_map(|h| h.last_sequence_id())
            .max()
    }

    /// Sends a message and waits for its receipt.
    pub async fn send(&self, msg: impl Into<ProducerMessage>) -> Result<MessageId> {
        self.send_async(msg).await?.await
    }

    /// Queues a message and returns its receipt without waiting for the broker. Waits only for
    /// room in the pending queue when the producer blocks if full; otherwise a full queue fails
    /// at once with [`Error::ProducerQueueFull`]. Receipts of one producer complete in the order
    /// of the sends (per partition).
    ///
    /// Each message has a `send` span (target [`SPAN_TARGET`](crate::SPAN_TARGET), DEBUG
    /// level) from this call to its receipt, with OpenTelemetry's messaging fields: the topic,
    /// the partition, the payload size, the message id when the receipt comes, the error when
    /// it fails, and the ids of the message's trace context, if it has one.
    pub async fn send_async(&self, msg: impl Into<ProducerMessage>) -> Result<SendReceipt> {
        let mut msg = msg.into();
        let interceptors = &self.inner.interceptors;
        if interceptors.is_empty() {
            return self.enqueue(msg).await.map(|rx| SendReceipt { rx });
        }
        interceptors.each("before_send", |i| i.before_send(&mut msg));
        let sent = msg.clone();
        match self.enqueue(msg).await {
            Ok(inner) => {
                // The receipt passes through a task that tells the interceptors first, so
                // that they hear of every message even if its receipt is dropped.
                let (tx, rx) = oneshot::channel();
                let interceptors = interceptors.clone();
                tokio::spawn(async move {
                    let result = inner.await.unwrap_or(Err(Error::Closed("producer")));
                    interceptors.each("on_send_acknowledgement", |i| {
                        i.on_send_acknowledgement(&sent, result.as_ref())
                    });
                    let _ = tx.send(result);
                });
                Ok(SendReceipt { rx })
            }
            Err(e) => {
                interceptors.each("on_send_acknowledgement", |i| {
                    i.on_send_acknowledgement(&sent, Err(&e))
                });
                Err(e)
            }
        }
    }

    /// Routes and queues a message on its partition; the receiver of its outcome.
    async fn enqueue(
        &self,
        mut msg: ProducerMessage,
    ) -> Result<oneshot::Receiver<Result<MessageId>>> {
        let routed;
        let partition = match &self.inner.single {
            Some(p) => p,
            None => {
                routed = self.inner.route(&msg).await?;
                &routed
            }
        };
        let span = self.send_span(partition, &msg);
        self.add_trace_context(&mut msg, &span);
        let op = match &msg.transaction {
            // As the Java client: the commit waits for this send, and the partition is added
            // to the transaction before its first message in it.
            Some(txn) => {
                let added = match txn.start_op() {
                    Ok(op) => txn.add_partition(partition.topic()).await.map(|()| op),
                    Err(e) => Err(e),
                };
                match added {
                    Ok(op) => Some(op),
                    Err(e) => {
                        crate::trace::record_error(&span, &e);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        partition.enqueue(msg, op, span).await
    }

    /// The `send` span of `msg` to `partition`: nothing is formatted or allocated unless a
    /// subscriber wants it.
    fn send_span(&self, partition: &PartitionHandle, msg: &ProducerMessage) -> tracing::Span {
        let topic = self.inner.topic.full_name();
        let span = tracing::debug_span!(
            target: crate::trace::SPAN_TARGET,
            "send",
            otel.name = tracing::field::Empty,
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            messaging.system = "pulsar",
            messaging.operation = "publish",
            messaging.operation.name = "send",
            messaging.destination.name = topic,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.message.id = tracing::field::Empty,
            messaging.message.body.size = msg.payload.len(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        if !span.is_disabled() {
            span.record(
                "otel.name",
                tracing::field::display(crate::trace::OtelName("send", topic)),
            );
            if let Some(p) = partition.partition() {
                span.record("messaging.destination.partition.id", p);
            }
        }
        span
    }

    /// Trace-context propagation: the message's own [`TraceContext`](crate::TraceContext) is
    /// written into its properties; else, with propagation on, a new one when it has no
    /// `traceparent`. The context goes on the span (its trace id, and its span id: the
    /// consumer's parent).
    fn add_trace_context(&self, msg: &mut ProducerMessage, span: &tracing::Span) {
        use crate::trace::{record_ids, TraceContext, TRACEPARENT};
        if let Some(ctx) = msg.trace_context.take() {
            ctx.write_to(&mut msg.properties);
            if !span.is_disabled() {
                record_ids(span, &ctx, "span_id");
            }
            return;
        }
        match msg.properties.get(TRACEPARENT) {
            None if self.inner.propagate => {
                let ctx = TraceContext::random();
                ctx.write_to(&mut msg.properties);
                if !span.is_disabled() {
                    record_ids(span, &ctx, "span_id");
                }
            }
            Some(traceparent) if !span.is_disabled() => {
                if let Ok(ctx) = TraceContext::parse(traceparent) {
                    record_ids(span, &ctx, "span_id");
                }
            }
            _ => {}
        }
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
        for p in &self.inner.handles() {
            p.flush().await?;
        }
        Ok(())
    }

    /// Flushes, then closes the producer on the broker. Sends after this fail with
    /// [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        let mut first_error = None;
        for p in &self.inner.handles() {
            if let Err(e) = p.close().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
