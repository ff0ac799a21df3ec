//! The task behind one partition of a producer: sequence ids, the pending queue, receipts, send
//! timeouts, and re-attaching to a new connection (resending what is pending) when the old one
//! drops.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::batch::{Batch, BatchLimits, Batchers};
use super::builder::AccessMode;
use crate::client::MemoryLimit;
use crate::client::PulsarClient;
use crate::compression::{self, Compression};
use crate::connection::Connection;
use crate::error::{Error, Result, ServerErrorCode};
use crate::message::ProducerMessage;
use crate::protocol::backoff::Backoff;
use crate::protocol::commands::{self, ProducerArgs};
use crate::protocol::connection::ProducerEvent;
use crate::protocol::pending::{PendingQueue, PendingSend, ReceiptMatch};
use crate::protocol::topic::TopicName;
use crate::task::{early, is_permanent, next_event, queued_event, sleep_until_opt, DRAIN};
use crate::wire::{self, proto, MessageId};

/// Per-partition producer settings.
#[derive(Debug, Clone)]
pub(crate) struct PartitionConfig {
    pub name: Option<String>,
    pub send_timeout: Option<Duration>,
    pub max_pending: usize,
    pub block_if_queue_full: bool,
    pub properties: Vec<(String, String)>,
    pub access_mode: AccessMode,
    pub initial_sequence_id: Option<u64>,
    /// Batching limits; `None` sends every message on its own.
    pub batching: Option<BatchLimits>,
    /// Payload compression.
    pub compression: Compression,
    /// One batch per key (for Key_Shared consumers) instead of one batch.
    pub key_based_batching: bool,
    /// A subscription the broker creates with the producer.
    pub initial_subscription_name: Option<String>,
    /// Split messages larger than the max message size into chunks.
    pub chunking: bool,
    /// The largest chunk, when below the max message size.
    pub chunk_max_size: Option<usize>,
    /// The schema declared on PRODUCER.
    pub schema: Option<proto::Schema>,
}

// Sends dominate; boxing the message would add an allocation per send.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Cmd {
    Send {
        msg: ProducerMessage,
        reply: oneshot::Sender<Result<MessageId>>,
        permit: OwnedSemaphorePermit,
        memory: Option<OwnedSemaphorePermit>,
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
}

impl PartitionHandle {
    pub fn name(&self) -> String {
        self.name
            .lock()
            .map(|n| n.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub async fn enqueue(
        &self,
        msg: ProducerMessage,
    ) -> Result<oneshot::Receiver<Result<MessageId>>> {
        let permit = if self.block {
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Closed("producer"))?
        } else {
            self.permits
                .clone()
                .try_acquire_owned()
                .map_err(|e| match e {
                    TryAcquireError::NoPermits => Error::ProducerQueueFull(self.max_pending),
                    TryAcquireError::Closed => Error::Closed("producer"),
                })?
        };
        let memory = match &self.memory {
            None => None,
            Some(limit) => Some(limit.reserve(msg.payload.len(), self.block).await?),
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Send {
                msg,
                reply,
                permit,
                memory,
            })
            .map_err(|_| Error::Closed("producer"))?;
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
struct Completion {
    reply: oneshot::Sender<Result<MessageId>>,
    _permit: OwnedSemaphorePermit,
    _memory: Option<OwnedSemaphorePermit>,
}

impl Completion {
    /// Frees the queue slot and the memory first, then answers: whoever awaits the receipt
    /// sees the room already made.
    fn complete(self, result: Result<MessageId>) {
        let Completion {
            reply,
            _permit,
            _memory,
        } = self;
        drop(_permit);
        drop(_memory);
        let _ = reply.send(result);
    }
}

/// Whoever waits for one SEND: one message, or every message of a batch in index order.
#[derive(Debug)]
enum Completions {
    One(Completion),
    Batch(Vec<Completion>),
    /// A chunk before the last: the first one records its id for the message's id.
    ChunkPart {
        first: bool,
        slot: Arc<Mutex<Option<MessageId>>>,
    },
    /// The last chunk: completes the message with (first chunk, last chunk).
    ChunkLast {
        completion: Completion,
        slot: Arc<Mutex<Option<MessageId>>>,
    },
}

impl Completions {
    fn succeed(self, id: MessageId) {
        match self {
            Completions::One(c) => c.complete(Ok(id)),
            Completions::ChunkPart { first, slot } => {
                if first {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(id);
                    }
                }
            }
            Completions::ChunkLast { completion, slot } => {
                let first = slot.lock().ok().and_then(|mut s| s.take()).unwrap_or(id);
                let mut id = id;
                id.first_chunk = Some(crate::wire::ChunkStart {
                    ledger_id: first.ledger_id,
                    entry_id: first.entry_id,
                });
                completion.complete(Ok(id));
            }
            Completions::Batch(items) => {
                let n = items.len() as i32;
                for (i, c) in items.into_iter().enumerate() {
                    c.complete(Ok(id.with_batch(i as i32, n)));
                }
            }
        }
    }

    fn fail(self, e: &Error) {
        match self {
            Completions::One(c) => c.complete(Err(e.clone())),
            Completions::ChunkPart { .. } => {}
            Completions::ChunkLast { completion, .. } => completion.complete(Err(e.clone())),
            Completions::Batch(items) => {
                for c in items {
                    c.complete(Err(e.clone()));
                }
            }
        }
    }
}

/// Creates the producer on the broker, then starts its task.
pub(crate) async fn start(
    client: PulsarClient,
    topic: TopicName,
    partition: Option<i32>,
    config: PartitionConfig,
) -> Result<PartitionHandle> {
    let producer_id = client.inner.next_id();
    let memory = client.inner.memory_limit.clone();
    let name = Arc::new(Mutex::new(config.name.clone().unwrap_or_default()));
    let mut task = PartitionTask {
        client,
        topic: topic.clone(),
        partition: partition.unwrap_or(-1),
        producer_id,
        user_provided_name: config.name.is_some(),
        producer_name: config.name.clone(),
        shared_name: name.clone(),
        next_sequence_id: config.initial_sequence_id.map(|s| s.wrapping_add(1)),
        config: config.clone(),
        epoch: 0,
        topic_epoch: None,
        connection: None,
        events: None,
        max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
        pending: PendingQueue::default(),
        batchers: Batchers::new(
            config.batching.unwrap_or(BatchLimits {
                max_messages: 1,
                max_bytes: 0,
                max_delay: Duration::ZERO,
            }),
            config.key_based_batching,
        ),
        flush_waiters: Vec::new(),
        buf: BytesMut::new(),
        backoff: Backoff::default(),
        reconnect_at: None,
        closing: None,
    };
    task.attach().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(task.run(rx));
    Ok(PartitionHandle {
        tx,
        permits: Arc::new(Semaphore::new(config.max_pending)),
        block: config.block_if_queue_full,
        max_pending: config.max_pending,
        name,
        memory,
    })
}

struct PartitionTask {
    client: PulsarClient,
    topic: TopicName,
    partition: i32,
    producer_id: u64,
    user_provided_name: bool,
    producer_name: Option<String>,
    shared_name: Arc<Mutex<String>>,
    next_sequence_id: Option<u64>,
    config: PartitionConfig,
    epoch: u64,
    topic_epoch: Option<u64>,
    connection: Option<Connection>,
    events: Option<mpsc::UnboundedReceiver<ProducerEvent>>,
    max_message_size: usize,
    pending: PendingQueue<Completions>,
    batchers: Batchers<Completion>,
    flush_waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
    buf: BytesMut,
    backoff: Backoff,
    reconnect_at: Option<Instant>,
    /// Set when closing: the reply to send once everything pending is done (None: dropped).
    closing: Option<Option<oneshot::Sender<Result<()>>>>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PartitionTask {
    /// Looks the topic up and (re-)creates the producer on its broker; on success, resends
    /// everything pending in its original order.
    async fn attach(&mut self) -> Result<()> {
        let inner = self.client.inner.clone();
        let conn = inner.lookup(&self.topic).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        conn.register_producer(self.producer_id, tx)?;
        let request_id = inner.next_id();
        let args = ProducerArgs {
            topic: self.topic.full_name().to_owned(),
            producer_id: self.producer_id,
            producer_name: self.producer_name.clone(),
            user_provided_name: self.user_provided_name,
            epoch: self.epoch,
            properties: self.config.properties.clone(),
            access_mode: self.config.access_mode.as_i32(),
            topic_epoch: self.topic_epoch,
            initial_subscription_name: self.config.initial_subscription_name.clone(),
            schema: self.config.schema.clone(),
        };
        self.epoch += 1;
        let result = conn
            .request(
                request_id,
                "create producer",
                commands::producer(&args, request_id),
                Some(inner.operation_timeout),
            )
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, Error::Timeout { .. }) {
                    // The broker may still create it: tell it to drop it before retrying.
                    let close_id = inner.next_id();
                    let _ = conn.send(commands::close_producer(self.producer_id, close_id));
                }
                conn.unregister_producer(self.producer_id);
                return Err(e);
            }
        };
        let success = response.producer_success.unwrap_or_default();
        if self.producer_name.is_none() || !self.user_provided_name {
            self.producer_name = Some(success.producer_name.clone());
        }
        if let Ok(mut n) = self.shared_name.lock() {
            n.clone_from(&success.producer_name);
        }
        if self.next_sequence_id.is_none() {
            let last = success.last_sequence_id.unwrap_or(-1);
            self.next_sequence_id = Some(if last >= 0 { last as u64 + 1 } else { 0 });
        }
        if success.topic_epoch.is_some() {
            self.topic_epoch = success.topic_epoch;
        }
        self.max_message_size = conn.max_message_size();
        info!(
            topic = %self.topic,
            producer = %success.producer_name,
            connection = conn.id(),
            resend = self.pending.len(),
            "producer ready"
        );
        for frame in self.pending.frames() {
            conn.send_frame(frame.clone())?;
        }
        self.connection = Some(conn);
        self.events = Some(rx);
        self.backoff.reset();
        self.reconnect_at = None;
        Ok(())
    }

    fn detach(&mut self, why: &str) {
        if let Some(conn) = self.connection.take() {
            conn.unregister_producer(self.producer_id);
            warn!(topic = %self.topic, reason = why, pending = self.pending.len(), "producer disconnected, reconnecting");
        }
        self.events = None;
        if self.reconnect_at.is_none() {
            self.reconnect_at = Some(Instant::now() + self.backoff.next_delay_random());
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            if let Some(reply) = self.closing.take() {
                self.flush_batches();
                if self.pending.is_empty() {
                    let result = self.close_on_broker().await;
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                    return;
                }
                self.closing = Some(reply);
            }
            let deadline = self.pending.next_deadline().map(Instant::from_std);
            let batch_at = self.batch_timer();
            tokio::select! {
                cmd = commands.recv(), if self.closing.is_none() => match cmd {
                    Some(cmd) => {
                        self.handle_command(cmd);
                        // Take what else is queued in this turn: the select's timers are
                        // re-armed once per turn, not once per message.
                        for _ in 1..DRAIN {
                            if self.closing.is_some() {
                                break;
                            }
                            match commands.try_recv() {
                                Ok(cmd) => self.handle_command(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: finish what is pending, then close.
                    None => self.closing = Some(None),
                },
                event = next_event(&mut self.events, ProducerEvent::ConnectionClosed) => {
                    self.handle_event(event);
                    for _ in 1..DRAIN {
                        let Some(event) = queued_event(&mut self.events) else { break };
                        self.handle_event(event);
                    }
                }
                _ = sleep_until_opt(deadline) => self.expire(),
                _ = sleep_until_opt(batch_at) => self.flush_batches(),
                _ = sleep_until_opt(self.reconnect_at), if self.connection.is_none() => {
                    self.reconnect_at = None;
                    if let Err(e) = self.attach().await {
                        if is_permanent(&e, &[ServerErrorCode::TopicTerminatedError, ServerErrorCode::ProducerFenced]) {
                            warn!(topic = %self.topic, error = %e, "producer cannot reconnect: failing pending sends");
                            self.fail_all(&e);
                            if let Some(Some(reply)) = self.closing.take() {
                                let _ = reply.send(Err(e));
                            }
                            return;
                        }
                        let delay = self.backoff.next_delay_random();
                        debug!(topic = %self.topic, error = %e, ?delay, "producer reconnect failed");
                        self.reconnect_at = Some(Instant::now() + delay);
                    }
                }
            }
        }
    }

    fn handle_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Send {
                msg,
                reply,
                permit,
                memory,
            } => self.send(
                msg,
                Completion {
                    reply,
                    _permit: permit,
                    _memory: memory,
                },
            ),
            Cmd::Flush(reply) => {
                self.flush_batches();
                match self.pending.last_sequence_id() {
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                    Some(last) => self.flush_waiters.push((last, reply)),
                }
            }
            Cmd::Close(reply) => self.closing = Some(Some(reply)),
        }
    }

    fn send(&mut self, msg: ProducerMessage, completion: Completion) {
        let sequence_id = match msg.sequence_id {
            Some(s) => {
                let next = self.next_sequence_id.unwrap_or(0).max(s.wrapping_add(1));
                self.next_sequence_id = Some(next);
                s
            }
            None => {
                let s = self.next_sequence_id.unwrap_or(0);
                self.next_sequence_id = Some(s + 1);
                s
            }
        };
        let batchable = msg.deliver_at.is_none() && msg.replicate_to.is_none();
        if self.config.batching.is_some() && batchable {
            if msg.payload.len() > self.max_message_size && !self.config.chunking {
                completion.complete(Err(Error::MessageTooLarge {
                    size: msg.payload.len(),
                    max: self.max_message_size,
                }));
                return;
            }
            if self.batchers.must_flush_before(&msg, self.max_message_size) {
                self.flush_batches();
            }
            let full = self
                .batchers
                .add(msg, sequence_id, std::time::Instant::now, completion);
            if full {
                self.flush_batches();
            }
            return;
        }
        // Sent on its own: what is batched so far goes first, to keep the order.
        self.flush_batches();
        let payload = msg.payload.clone();
        let metadata = proto::MessageMetadata {
            producer_name: self.producer_name.clone().unwrap_or_default(),
            sequence_id,
            publish_time: now_millis(),
            properties: msg
                .properties
                .into_iter()
                .map(|(key, value)| proto::KeyValue { key, value })
                .collect(),
            partition_key: msg.partition_key,
            ordering_key: msg.ordering_key,
            event_time: msg.event_time.filter(|t| *t > 0),
            deliver_at_time: msg.deliver_at.map(|t| t as i64),
            replicate_to: msg.replicate_to.unwrap_or_default(),
            ..Default::default()
        };
        self.write_send(
            metadata,
            payload,
            sequence_id,
            sequence_id,
            None,
            Completions::One(completion),
        );
    }

    /// Closes the open batches and sends them.
    /// When the batch timer fires: the open batches' deadline, brought forward by what tokio's
    /// millisecond timers add (see [`early`]).
    fn batch_timer(&self) -> Option<Instant> {
        let wait = self
            .config
            .batching
            .map(|b| b.max_delay)
            .unwrap_or_default();
        self.batchers
            .deadline()
            .map(|d| early(Instant::from_std(d), wait))
    }

    fn flush_batches(&mut self) {
        for batch in self.batchers.take_all() {
            self.send_batch(batch);
        }
    }

    fn send_batch(&mut self, batch: Batch<Completion>) {
        let count = batch.items.len() as i32;
        let metadata = proto::MessageMetadata {
            producer_name: self.producer_name.clone().unwrap_or_default(),
            sequence_id: batch.first_sequence_id,
            publish_time: now_millis(),
            partition_key: batch.partition_key,
            ordering_key: batch.ordering_key,
            num_messages_in_batch: Some(count),
            highest_sequence_id: Some(batch.last_sequence_id),
            ..Default::default()
        };
        self.write_send(
            metadata,
            batch.entries,
            batch.first_sequence_id,
            batch.last_sequence_id,
            Some(count),
            Completions::Batch(batch.items),
        );
    }

    /// Compresses, frames, writes and queues one SEND.
    fn write_send(
        &mut self,
        mut metadata: proto::MessageMetadata,
        payload: Bytes,
        sequence_id: u64,
        highest_sequence_id: u64,
        num_messages: Option<i32>,
        completions: Completions,
    ) {
        metadata.uncompressed_size = Some(payload.len() as u32);
        let payload = match self.config.compression {
            Compression::None => payload,
            codec => {
                metadata.compression = Some(codec.to_wire());
                compression::compress(codec, &payload)
            }
        };
        let size = payload.len() + prost::Message::encoded_len(&metadata);
        let chunk_limit = self.chunk_limit();
        if size > self.max_message_size || (self.config.chunking && size > chunk_limit) {
            match completions {
                Completions::One(completion) if self.config.chunking && num_messages.is_none() => {
                    self.send_chunks(metadata, payload, sequence_id, completion);
                }
                completions => completions.fail(&Error::MessageTooLarge {
                    size,
                    max: self.max_message_size,
                }),
            }
            return;
        }
        let mut command = commands::send(self.producer_id, sequence_id, num_messages);
        if let (Some(send), true) = (command.send.as_mut(), num_messages.is_some()) {
            send.highest_sequence_id = Some(highest_sequence_id);
        }
        self.push_frame(
            command,
            &metadata,
            &payload,
            sequence_id,
            highest_sequence_id,
            completions,
        );
    }

    /// Splits a message larger than the max message size into chunks: one SEND each, all with
    /// the message's sequence id and `uuid = <producer name>-<sequence id>`.
    fn send_chunks(
        &mut self,
        metadata: proto::MessageMetadata,
        payload: Bytes,
        sequence_id: u64,
        completion: Completion,
    ) {
        // Room for the chunk fields added to the metadata.
        let overhead = prost::Message::encoded_len(&metadata)
            + 64
            + self.producer_name.as_ref().map_or(0, |n| n.len());
        let chunk_size = self.chunk_limit().saturating_sub(overhead).max(1);
        let count = payload.len().div_ceil(chunk_size).max(1);
        let uuid = format!(
            "{}-{}",
            self.producer_name.as_deref().unwrap_or_default(),
            sequence_id
        );
        let slot = Arc::new(Mutex::new(None));
        let mut completion = Some(completion);
        for i in 0..count {
            let part = payload.slice(i * chunk_size..((i + 1) * chunk_size).min(payload.len()));
            let mut md = metadata.clone();
            md.uuid = Some(uuid.clone());
            md.chunk_id = Some(i as i32);
            md.num_chunks_from_msg = Some(count as i32);
            md.total_chunk_msg_size = Some(payload.len() as i32);
            let mut command = commands::send(self.producer_id, sequence_id, None);
            if let Some(send) = command.send.as_mut() {
                send.is_chunk = Some(true);
            }
            let done = if i + 1 == count {
                match completion.take() {
                    Some(completion) => Completions::ChunkLast {
                        completion,
                        slot: slot.clone(),
                    },
                    None => return,
                }
            } else {
                Completions::ChunkPart {
                    first: i == 0,
                    slot: slot.clone(),
                }
            };
            self.push_frame(command, &md, &part, sequence_id, sequence_id, done);
        }
    }

    /// The most bytes one chunk (with its metadata) may take.
    fn chunk_limit(&self) -> usize {
        self.config
            .chunk_max_size
            .map_or(self.max_message_size, |c| c.min(self.max_message_size))
    }

    /// Frames, writes and queues one SEND.
    fn push_frame(
        &mut self,
        command: proto::BaseCommand,
        metadata: &proto::MessageMetadata,
        payload: &[u8],
        sequence_id: u64,
        highest_sequence_id: u64,
        completions: Completions,
    ) {
        let max_frame = wire::max_frame_size_for(self.max_message_size);
        if let Err(e) = wire::encode_payload_command(
            &command,
            None,
            metadata,
            payload,
            &mut self.buf,
            max_frame,
        ) {
            completions.fail(&Error::Decode(e));
            return;
        }
        let frame: Bytes = self.buf.split().freeze();
        if let Some(conn) = &self.connection {
            if conn.send_frame(frame.clone()).is_err() {
                self.detach("connection closed");
            }
        }
        self.pending.push(PendingSend {
            sequence_id,
            highest_sequence_id,
            frame,
            deadline: self
                .config
                .send_timeout
                .map(|t| std::time::Instant::now() + t),
            completion: completions,
        });
    }

    fn handle_event(&mut self, event: ProducerEvent) {
        match event {
            ProducerEvent::Receipt {
                sequence_id,
                message_id,
                ..
            } => match self.pending.on_receipt(sequence_id) {
                ReceiptMatch::Completed(p) => {
                    let id = message_id.entry().with_partition(self.partition);
                    p.completion.succeed(id);
                    self.wake_flushers();
                }
                ReceiptMatch::Stale => {
                    debug!(topic = %self.topic, sequence_id, "receipt for a send that already failed")
                }
                ReceiptMatch::OutOfSync { expected, received } => {
                    warn!(topic = %self.topic, ?expected, received, "receipt out of sequence: re-creating the producer to resend");
                    self.reattach();
                }
            },
            ProducerEvent::SendError { sequence_id, error } => {
                warn!(topic = %self.topic, sequence_id, %error, "send error");
                if let Some(p) = self.pending.remove(sequence_id) {
                    p.completion.fail(&Error::Server {
                        operation: "send",
                        error,
                    });
                    self.wake_flushers();
                }
                self.reattach();
            }
            ProducerEvent::Closed { .. } => self.detach("closed by the broker"),
            ProducerEvent::Migrated { .. } => self.detach("topic migrated"),
            ProducerEvent::ConnectionClosed(e) => self.detach(&e.to_string()),
        }
    }

    /// Drops this producer from its connection and creates it again (which resends).
    fn reattach(&mut self) {
        if let Some(conn) = &self.connection {
            let id = self.client.inner.next_id();
            let _ = conn.send(commands::close_producer(self.producer_id, id));
        }
        self.detach("re-creating the producer");
        self.reconnect_at = Some(Instant::now());
    }

    fn expire(&mut self) {
        let expired = self.pending.expire(std::time::Instant::now());
        if expired.is_empty() {
            return;
        }
        let timeout = self.config.send_timeout.unwrap_or_default();
        warn!(topic = %self.topic, count = expired.len(), "sends timed out");
        for p in expired {
            p.completion.fail(&Error::SendTimeout(timeout));
        }
        self.wake_flushers();
    }

    fn fail_all(&mut self, e: &Error) {
        for p in self.pending.drain() {
            p.completion.fail(e);
        }
        self.wake_flushers();
    }

    /// Answers the flush waiters whose last message is no longer pending.
    fn wake_flushers(&mut self) {
        let head = self.pending.first_sequence_id();
        let mut i = 0;
        while i < self.flush_waiters.len() {
            if head.is_some_and(|h| h <= self.flush_waiters[i].0) {
                i += 1;
            } else {
                let (_, reply) = self.flush_waiters.swap_remove(i);
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn close_on_broker(&mut self) -> Result<()> {
        for (_, reply) in self.flush_waiters.drain(..) {
            let _ = reply.send(Ok(()));
        }
        let Some(conn) = self.connection.take() else {
            return Ok(());
        };
        let inner = self.client.inner.clone();
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
        result.map(|_| ())
    }
}
