//! The task behind one partition of a producer: a thin tokio shell around
//! [`ProducerCore`](crate::protocol::producer::ProducerCore), which holds every rule (sequence
//! ids, batching, the pending queue, receipts, send timeouts, when to re-attach). The task feeds
//! it commands from the handles, events from the attached connection, the results of attach
//! attempts (run beside its loop, so timers keep firing meanwhile) and the clock, and performs
//! what it asks for.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::channel as mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::connection::Connection;
use crate::error::{ConnectionError, Error, Result};
use crate::message::ProducerMessage;
use crate::metrics::ProducerMetrics;
use crate::protocol::clock::WallClock;
use crate::protocol::commands::{self, ProducerArgs};
use crate::protocol::connection::ProducerEvent;
pub(crate) use crate::protocol::producer::PartitionConfig;
use crate::protocol::producer::{self as core, Action, Attached, ProducerCore};
use crate::protocol::topic::TopicName;
use crate::session::{MemoryLimit, Session};
use crate::stats::{ProducerRecorder, ProducerStats};
use crate::task::{early, next_event, queued_event, sleep_until_opt, DRAIN};
use crate::transaction::TxnOp;
use crate::wire::MessageId;

// Sends dominate; boxing the message would add an allocation per send.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Cmd {
    Send {
        msg: ProducerMessage,
        reply: oneshot::Sender<Result<MessageId>>,
        permit: OwnedSemaphorePermit,
        memory: Option<OwnedSemaphorePermit>,
        txn_op: Option<TxnOp>,
        /// When the send was called (stats or metrics on only).
        queued_at: Option<std::time::Instant>,
        /// The message's `send` span (disabled when no subscriber wants it), closed with the
        /// receipt.
        span: tracing::Span,
    },
    Flush(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

/// The handle on one partition's task.
#[derive(Debug, Clone)]
pub(crate) struct PartitionHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    permits: Arc<Semaphore>,
    block: bool,
    max_pending: usize,
    name: Arc<Mutex<String>>,
    memory: Option<Arc<MemoryLimit>>,
    topic: Arc<str>,
    /// The partition index (`None`: the topic is not partitioned).
    partition: Option<i32>,
    /// The partition's stats (none with a stats interval of zero).
    stats: Option<Arc<ProducerRecorder>>,
    /// The partition's metrics handles (none with metrics off).
    metrics: Option<Arc<ProducerMetrics>>,
    /// Attached to a connection now.
    connected: Arc<AtomicBool>,
    /// The highest sequence id the broker confirmed, plus one (0: none yet).
    last_sequence_id: Arc<AtomicU64>,
}

impl PartitionHandle {
    /// The partition's full topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn name(&self) -> String {
        self.name
            .lock()
            .map(|n| n.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The partition index (`None`: the topic is not partitioned).
    pub fn partition(&self) -> Option<i32> {
        self.partition
    }

    /// The partition's stats now.
    pub fn stats(&self) -> ProducerStats {
        match &self.stats {
            Some(s) => s.snapshot(now(), self.pending()),
            None => ProducerStats {
                pending_queue_size: self.pending(),
                ..Default::default()
            },
        }
    }

    /// The partition's stats recorder, if stats are on.
    pub fn recorder(&self) -> Option<&ProducerRecorder> {
        self.stats.as_deref()
    }

    /// Messages queued and not yet confirmed or failed.
    pub fn pending(&self) -> usize {
        self.max_pending
            .saturating_sub(self.permits.available_permits())
    }

    /// Whether attached to a connection now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The highest sequence id the broker confirmed.
    pub fn last_sequence_id(&self) -> Option<u64> {
        self.last_sequence_id.load(Ordering::Acquire).checked_sub(1)
    }

    /// Queues a send; `txn_op` (a send in a transaction) is told its outcome, `span` gets the
    /// message id or the error.
    pub async fn enqueue(
        &self,
        msg: ProducerMessage,
        txn_op: Option<TxnOp>,
        span: tracing::Span,
    ) -> Result<oneshot::Receiver<Result<MessageId>>> {
        let queued_at = (self.stats.is_some() || self.metrics.is_some()).then(now);
        let result = self.enqueue_at(msg, txn_op, queued_at, span).await;
        if result.is_err() {
            let now = now();
            if let Some(stats) = &self.stats {
                stats.failed(now);
            }
            if let (Some(metrics), Some(at)) = (&self.metrics, queued_at) {
                metrics.refused(now.saturating_duration_since(at));
            }
        }
        result
    }

    async fn enqueue_at(
        &self,
        msg: ProducerMessage,
        txn_op: Option<TxnOp>,
        queued_at: Option<std::time::Instant>,
        span: tracing::Span,
    ) -> Result<oneshot::Receiver<Result<MessageId>>> {
        let fail = |e: Error| {
            crate::trace::record_error(&span, &e);
            e
        };
        let permit = if self.block {
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| fail(Error::Closed("producer")))?
        } else {
            self.permits.clone().try_acquire_owned().map_err(|e| {
                fail(match e {
                    TryAcquireError::NoPermits => Error::ProducerQueueFull(self.max_pending),
                    TryAcquireError::Closed => Error::Closed("producer"),
                })
            })?
        };
        let memory = match &self.memory {
            None => None,
            Some(limit) => Some(
                limit
                    .reserve(msg.payload.len(), self.block)
                    .await
                    .map_err(fail)?,
            ),
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Send {
                msg,
                reply,
                permit,
                memory,
                txn_op,
                queued_at,
                span,
            })
            .map_err(|e| {
                if let Cmd::Send { span, .. } = e.0 {
                    crate::trace::record_error(&span, &Error::Closed("producer"));
                }
                Error::Closed("producer")
            })?;
        Ok(rx)
    }

    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(reply))
            .map_err(|_| Error::Closed("producer"))?;
        rx.await.unwrap_or(Err(Error::Closed("producer")))
    }

    pub async fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(reply)).is_err() {
            return Ok(());
        }
        self.permits.close();
        rx.await.unwrap_or(Ok(()))
    }
}

/// Who waits for one pending send, and the queue slot it holds.
#[derive(Debug)]
struct Receipt {
    reply: oneshot::Sender<Result<MessageId>>,
    _permit: OwnedSemaphorePermit,
    _memory: Option<OwnedSemaphorePermit>,
    /// A send in a transaction: its commit waits for this.
    txn_op: Option<TxnOp>,
    /// When the send was called (stats or metrics on only).
    queued_at: Option<std::time::Instant>,
    /// The stats to tell the outcome.
    stats: Option<Arc<ProducerRecorder>>,
    /// The metrics to tell the outcome, and the message's payload bytes.
    metrics: Option<(Arc<ProducerMetrics>, usize)>,
    /// The message's `send` span: it gets the message id or the error, and closes with this.
    /// Kept here, in the shell, rather than in the core: the core holds the receipt as an
    /// opaque completion and stays free of tracing state.
    span: tracing::Span,
}

impl core::Completion for Receipt {
    /// Frees the queue slot and the memory first, then answers: whoever awaits the receipt
    /// sees the room already made.
    fn complete(self, result: Result<MessageId>) {
        let Receipt {
            reply,
            _permit,
            _memory,
            txn_op,
            queued_at,
            stats,
            metrics,
            span,
        } = self;
        drop(_permit);
        drop(_memory);
        if let Some(at) = queued_at {
            let now = now();
            let latency = now.saturating_duration_since(at);
            if let Some(stats) = stats {
                match &result {
                    Ok(_) => stats.acked(now, latency),
                    Err(_) => stats.failed(now),
                }
            }
            if let Some((metrics, bytes)) = metrics {
                metrics.done(bytes, result.is_ok(), latency);
            }
        }
        if let Some(op) = txn_op {
            op.finish(result.is_ok());
        }
        if !span.is_disabled() {
            match &result {
                Ok(id) => {
                    span.record("messaging.message.id", tracing::field::display(id));
                }
                Err(e) => crate::trace::record_error(&span, e),
            }
        }
        // Closed before the sender sees the receipt.
        drop(span);
        let _ = reply.send(result);
    }
}

/// Who waits for a flush or a close.
type Reply = oneshot::Sender<Result<()>>;

impl core::Waiter for Reply {
    fn finish(self, result: Result<()>) {
        let _ = self.send(result);
    }
}

/// An attach attempt's result: the connection with its event channel, and what the broker
/// said; or the error.
type AttachResult = Result<(Connection, mpsc::UnboundedReceiver<ProducerEvent>, Attached)>;

/// An attach attempt running beside the task's loop, with its epoch.
type Attaching = Pin<Box<dyn Future<Output = (u64, AttachResult)> + Send>>;

/// Creates the producer on the broker (retrying transient errors until the operation timeout),
/// then hands back the handle on its task.
pub(crate) async fn start(
    session: Arc<Session>,
    topic: TopicName,
    partition: Option<i32>,
    config: PartitionConfig,
) -> Result<PartitionHandle> {
    let producer_id = session.next_id();
    let memory = session.memory_limit.clone();
    let name = Arc::new(Mutex::new(config.name.clone().unwrap_or_default()));
    let now = Instant::now().into_std();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    // The batch timer's slack as `task::early` computes it: tokio's timers fire late.
    let max_delay = config.batching.map(|b| b.max_delay).unwrap_or_default();
    let slack = {
        let at = Instant::now();
        at - early(at, max_delay)
    };
    #[allow(unused_mut)]
    let mut core = ProducerCore::new(
        topic.full_name().to_owned(),
        partition,
        producer_id,
        config.clone(),
        session.operation_timeout,
        session.reconnect_backoff(),
        WallClock::new(now, unix_ms),
        slack,
        now,
    );
    #[cfg(feature = "encryption")]
    if let Some(settings) = config
        .encryption
        .clone()
        .filter(|e| !e.key_names.is_empty())
    {
        // Each partition has its own data key, as each Java partition producer has.
        // Keys that cannot be loaded fail the producer whatever its crypto failure action,
        // as in the Java client: Send covers a message that cannot be encrypted, not a
        // producer that never could encrypt.
        match crate::crypto::MessageEncryptor::new(settings, now) {
            Ok(enc) => core.set_encryptor(enc),
            Err(e) => return Err(Error::Crypto(e)),
        }
    }
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let topic_name: Arc<str> = Arc::from(topic.full_name());
    let stats =
        ProducerRecorder::new(session.stats_interval, session.stats_origin, now).map(Arc::new);
    let metrics = session
        .metrics
        .as_ref()
        .map(|m| Arc::new(m.producer(&topic)));
    let connected = Arc::new(AtomicBool::new(false));
    let last_sequence_id = core.last_sequence_id_cell();
    let task = PartitionTask {
        session,
        topic,
        producer_id,
        core,
        connection: None,
        events: None,
        attaching: None,
        shared_name: name.clone(),
        ready: Some(ready_tx),
        stats: stats.clone(),
        metrics: metrics.clone(),
        connected: connected.clone(),
    };
    tokio::spawn(task.run(rx));
    ready_rx.await.unwrap_or(Err(Error::Closed("producer")))?;
    if let Some(m) = &metrics {
        m.opened.increment(1);
    }
    Ok(PartitionHandle {
        tx,
        permits: Arc::new(Semaphore::new(config.max_pending)),
        block: config.block_if_queue_full,
        max_pending: config.max_pending,
        name,
        memory,
        topic: topic_name,
        partition,
        stats,
        metrics,
        connected,
        last_sequence_id,
    })
}

/// How the task's loop ended.
enum Exit {
    /// Close the producer on the broker, then answer the waiter.
    Close(Option<Reply>),
    /// The producer failed; everything pending was failed by the core.
    Failed,
}

struct PartitionTask {
    session: Arc<Session>,
    topic: TopicName,
    producer_id: u64,
    core: ProducerCore<Receipt, Reply>,
    connection: Option<Connection>,
    events: Option<mpsc::UnboundedReceiver<ProducerEvent>>,
    attaching: Option<Attaching>,
    shared_name: Arc<Mutex<String>>,
    /// Answered on the first attach's outcome: what `create()` waits for.
    ready: Option<oneshot::Sender<Result<()>>>,
    stats: Option<Arc<ProducerRecorder>>,
    metrics: Option<Arc<ProducerMetrics>>,
    /// Set while attached (the handles' `is_connected`).
    connected: Arc<AtomicBool>,
}

/// The next result of the attach attempt in flight; pending forever when there is none.
async fn attach_result(attaching: &mut Option<Attaching>) -> (u64, AttachResult) {
    match attaching {
        Some(fut) => {
            let out = fut.await;
            *attaching = None;
            out
        }
        None => std::future::pending().await,
    }
}

/// One attach attempt: looks the topic up, routes the producer's events of that connection to
/// a new channel and sends PRODUCER. On a timeout the broker may still create the producer, so
/// it is told to drop it.
async fn attach(
    session: Arc<Session>,
    topic: TopicName,
    producer_id: u64,
    args: ProducerArgs,
) -> AttachResult {
    let inner = session.clone();
    let conn = inner.lookup(&topic).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    conn.register_producer(producer_id, tx)?;
    let request_id = inner.next_id();
    let result = conn
        .request(
            request_id,
            "create producer",
            commands::producer(&args, request_id),
            Some(inner.operation_timeout),
        )
        .await;
    match result {
        Ok(response) => {
            let success = response.producer_success.unwrap_or_default();
            let attached = Attached::from_success(&success, conn.max_message_size());
            Ok((conn, rx, attached))
        }
        Err(e) => {
            if matches!(e, Error::Timeout { .. }) {
                let close_id = inner.next_id();
                let _ = conn.send(commands::close_producer(producer_id, close_id));
            }
            conn.unregister_producer(producer_id);
            Err(e)
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl PartitionTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Cmd>) {
        let exit = loop {
            if let Some(exit) = self.drive() {
                break exit;
            }
            let deadline = self.core.poll_timeout().map(Instant::from_std);
            tokio::select! {
                cmd = commands.recv(), if !self.core.is_closing() => {
                    let now = now();
                    match cmd {
                        Some(cmd) => {
                            self.handle_command(cmd, now);
                            // Take what else is queued in this turn: the timer is re-armed
                            // once per turn, not once per message.
                            for _ in 1..DRAIN {
                                if self.core.is_closing() {
                                    break;
                                }
                                match commands.try_recv() {
                                    Ok(cmd) => self.handle_command(cmd, now),
                                    Err(_) => break,
                                }
                            }
                        }
                        // Every handle is gone: finish what is pending, then close.
                        None => self.core.close(None, now),
                    }
                }
                event = next_event(&mut self.events, ProducerEvent::ConnectionClosed) => {
                    let now = now();
                    self.core.handle_event(event, now);
                    for _ in 1..DRAIN {
                        let Some(event) = queued_event(&mut self.events) else { break };
                        self.core.handle_event(event, now);
                    }
                }
                (epoch, result) = attach_result(&mut self.attaching) => {
                    self.handle_attached(epoch, result);
                }
                _ = sleep_until_opt(deadline) => self.core.handle_timeout(now()),
            }
        };
        self.connected.store(false, Ordering::Release);
        match exit {
            Exit::Close(waiter) => {
                // Boxed: the close is once, and its future kept inline would enlarge every idle task.
                let result = Box::pin(self.close_on_broker()).await;
                if let Some(m) = &self.metrics {
                    m.closed.increment(1);
                }
                if let Some(w) = waiter {
                    let _ = w.send(result);
                }
            }
            Exit::Failed => self.detach(false),
        }
    }

    fn handle_command(&mut self, cmd: Cmd, now: std::time::Instant) {
        match cmd {
            Cmd::Send {
                msg,
                reply,
                permit,
                memory,
                txn_op,
                queued_at,
                span,
            } => {
                let stats = self.stats.clone();
                if let Some(stats) = &stats {
                    stats.sent(now, msg.payload.len());
                }
                let metrics = self.metrics.clone().map(|m| {
                    m.queued(msg.payload.len());
                    (m, msg.payload.len())
                });
                self.core.send(
                    msg,
                    Receipt {
                        reply,
                        _permit: permit,
                        _memory: memory,
                        txn_op,
                        queued_at,
                        stats,
                        metrics,
                        span,
                    },
                    now,
                )
            }
            Cmd::Flush(reply) => self.core.flush(reply, now),
            Cmd::Close(reply) => self.core.close(Some(reply), now),
        }
    }

    fn handle_attached(&mut self, epoch: u64, result: AttachResult) {
        let now = now();
        match result {
            Ok((conn, rx, attached)) => {
                if self.core.handle_attached(epoch, Ok(attached), now) {
                    self.connection = Some(conn);
                    self.events = Some(rx);
                } else {
                    // Stale: the broker created it, so tell it to drop it.
                    let id = self.session.next_id();
                    let _ = conn.send(commands::close_producer(self.producer_id, id));
                    conn.unregister_producer(self.producer_id);
                }
            }
            Err(e) => {
                self.core.handle_attached(epoch, Err(e), now);
            }
        }
    }

    /// Performs what the core asks for, then writes its frames; returns how the loop ends
    /// when it does.
    fn drive(&mut self) -> Option<Exit> {
        loop {
            while let Some(action) = self.core.poll_action() {
                match action {
                    Action::Attach { epoch, args } => {
                        let fut = attach(
                            self.session.clone(),
                            self.topic.clone(),
                            self.producer_id,
                            args,
                        );
                        self.attaching = Some(Box::pin(async move { (epoch, fut.await) }));
                    }
                    Action::Detach { close_on_broker } => {
                        self.connected.store(false, Ordering::Release);
                        self.detach(close_on_broker)
                    }
                    Action::Attached {
                        producer_name,
                        resent,
                    } => {
                        info!(
                            topic = %self.topic,
                            producer = %producer_name,
                            connection = self.connection.as_ref().map(|c| c.id()),
                            resend = resent,
                            "producer ready"
                        );
                        if let Ok(mut n) = self.shared_name.lock() {
                            *n = producer_name;
                        }
                        self.connected.store(true, Ordering::Release);
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    Action::Close { waiter } => return Some(Exit::Close(waiter)),
                    Action::Failed(e) => {
                        match self.ready.take() {
                            Some(ready) => {
                                let _ = ready.send(Err(e));
                            }
                            None => {
                                warn!(topic = %self.topic, error = %e, "producer failed: pending sends failed")
                            }
                        }
                        return Some(Exit::Failed);
                    }
                }
            }
            let Some(conn) = &self.connection else {
                while self.core.poll_transmit().is_some() {}
                return None;
            };
            let mut broken = false;
            while let Some(frame) = self.core.poll_transmit() {
                if conn.send_frame(frame).is_err() {
                    broken = true;
                    break;
                }
            }
            if !broken {
                return None;
            }
            self.core.handle_event(
                ProducerEvent::ConnectionClosed(ConnectionError::Closed),
                now(),
            );
        }
    }

    fn detach(&mut self, close_on_broker: bool) {
        if let Some(conn) = self.connection.take() {
            if close_on_broker {
                let id = self.session.next_id();
                let _ = conn.send(commands::close_producer(self.producer_id, id));
            }
            conn.unregister_producer(self.producer_id);
        }
        self.events = None;
    }

    async fn close_on_broker(&mut self) -> Result<()> {
        self.attaching = None;
        let Some(conn) = self.connection.take() else {
            return Ok(());
        };
        let inner = self.session.clone();
        let id = inner.next_id();
        let result = conn
            .request(
                id,
                "close producer",
                commands::close_producer(self.producer_id, id),
                Some(inner.operation_timeout),
            )
            .await;
        conn.unregister_producer(self.producer_id);
        match result {
            // The connection went while CLOSE_PRODUCER awaited its answer: the broker drops the
            // producers of a connection that goes, so the producer is closed all the same.
            Err(Error::Connection(e)) => {
                tracing::debug!(error = %e, "the connection went during the close: closed with it");
                Ok(())
            }
            result => result.map(|_| ()),
        }
    }
}
