//! One producer (one partition of it) as a state machine without I/O: sequence ids, batching,
//! compression, chunking, the queue of sends awaiting a receipt, send timeouts, flush and close,
//! and (through [`Attachment`]) when to attach to a broker again.
//!
//! # The contract (as quinn-proto's `Connection`)
//!
//! Nothing here does I/O or reads a clock: every input carries `now`, and the shell (the tokio
//! task in `producer::partition`) performs what the outputs ask for.
//!
//! - **Inputs.** Application commands: [`ProducerCore::send`], [`ProducerCore::flush`],
//!   [`ProducerCore::close`]. Network: [`ProducerCore::handle_event`] (what the attached
//!   connection routed to this producer) and [`ProducerCore::handle_attached`] (the result of an
//!   [`Action::Attach`] the shell carried out). Time: [`ProducerCore::handle_timeout`].
//! - **Outputs**, to drain after every input, in this order:
//!   1. [`ProducerCore::poll_action`]: what the shell must do ([`Action`]): attach (lookup,
//!      register, PRODUCER: beside its loop, feeding the result back), detach, close the
//!      producer on the broker, or stop because the producer failed;
//!   2. [`ProducerCore::poll_transmit`]: the encoded SEND frames to write on the attached
//!      connection, in order (after an attach, every pending frame again, in its original
//!      order and with its original sequence id);
//!   3. [`ProducerCore::poll_timeout`]: when to call [`ProducerCore::handle_timeout`] next: the
//!      earliest of the first send-timeout deadline, the batch timer and the attach retry time.
//!
//! The core allocates no request ids: the shell builds PRODUCER and CLOSE_PRODUCER with the
//! client's ids from the [`ProducerArgs`] it is given. Whoever waits for a send is a
//! [`Completion`]; whoever waits for a flush or a close is a [`Waiter`]. The shell uses oneshot
//! senders (with the queue permits), tests use recorders.
//!
//! The first attach retries transient errors with backoff until the operation timeout, then the
//! producer fails ([`Action::Failed`]) with the last error; once attached, it re-attaches
//! without end, except on a permanent error (`TopicTerminatedError`, `ProducerFenced`, or what
//! [`crate::protocol::attach::is_permanent`] says), which fails everything pending with it.

pub(crate) mod batch;
#[cfg(test)]
mod sim;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use self::batch::{Batch, BatchLimits, Batchers};
use crate::compression::{self, Compression};
use crate::error::{Error, Result, ServerErrorCode};
use crate::message::ProducerMessage;
use crate::producer::AccessMode;
use crate::protocol::attach::{AttachOutcome, Attachment};
use crate::protocol::backoff::Backoff;
use crate::protocol::clock::WallClock;
use crate::protocol::commands::{self, ProducerArgs};
use crate::protocol::connection::ProducerEvent;
use crate::protocol::pending::{PendingQueue, PendingSend, ReceiptMatch};
use crate::wire::{self, proto, MessageId};

/// Server errors that end a producer once it was attached (beyond `attach::is_permanent`'s).
pub(crate) const PERMANENT: &[ServerErrorCode] = &[
    ServerErrorCode::TopicTerminatedError,
    ServerErrorCode::ProducerFenced,
];

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
    /// End-to-end encryption: the key reader and names.
    #[cfg(feature = "encryption")]
    pub encryption: Option<crate::crypto::ProducerEncryption>,
}

/// Whoever waits for one send: told its message id, or the error that failed it, exactly once.
pub(crate) trait Completion {
    /// The send is over.
    fn complete(self, result: Result<MessageId>);
}

/// Whoever waits for a flush or a close: told once, when it is over.
pub(crate) trait Waiter {
    /// The flush or close is over.
    fn finish(self, result: Result<()>);
}

/// What a successful attach brought: PRODUCER_SUCCESS's fields and the connection's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attached {
    /// The producer's name (the broker's choice unless the user gave one).
    pub producer_name: String,
    /// The last sequence id the broker stored for this producer name (-1 or none: none).
    pub last_sequence_id: Option<i64>,
    /// The topic epoch (exclusive access modes).
    pub topic_epoch: Option<u64>,
    /// The connection's max message size.
    pub max_message_size: usize,
    /// The version the registry gave the producer's schema (on every message it sends).
    pub schema_version: Option<Bytes>,
}

impl Attached {
    /// The fields of a PRODUCER_SUCCESS, on a connection whose max message size is given.
    pub fn from_success(success: &proto::CommandProducerSuccess, max_message_size: usize) -> Self {
        Attached {
            producer_name: success.producer_name.clone(),
            last_sequence_id: success.last_sequence_id,
            topic_epoch: success.topic_epoch,
            max_message_size,
            schema_version: success.schema_version.clone().filter(|v| !v.is_empty()),
        }
    }
}

/// What the shell must do for the core.
#[derive(Debug)]
pub(crate) enum Action<W> {
    /// Look the topic up, register the producer on the connection and send PRODUCER with
    /// `args` (and a fresh request id); feed the result to [`ProducerCore::handle_attached`].
    Attach {
        /// The attempt's epoch, to give back with its result.
        epoch: u64,
        /// What PRODUCER carries.
        args: ProducerArgs,
    },
    /// Leave the attached connection (stop routing its events; frames not yet written are
    /// dropped, they are resent after the next attach).
    Detach {
        /// Send CLOSE_PRODUCER first: the producer is re-created (send error, receipts out of
        /// sequence), so the broker must drop the old one.
        close_on_broker: bool,
    },
    /// Attached (again): the producer's name is now this.
    Attached {
        /// The producer's name.
        producer_name: String,
        /// How many pending SENDs are written again.
        resent: usize,
    },
    /// Everything is done: close the producer on the broker (if attached), answer the waiter
    /// with the outcome, and stop. The last action.
    Close {
        /// Who waits for the close, if anyone.
        waiter: Option<W>,
    },
    /// The producer failed for good with this error: every pending send failed with it. The
    /// last action.
    Failed(Error),
}

/// Whoever waits for one SEND: one message, or every message of a batch in index order.
#[derive(Debug)]
enum Completions<C> {
    One(C),
    Batch(Vec<C>),
    /// A chunk before the last: the first one records its id for the message's id.
    ChunkPart {
        first: bool,
        slot: Arc<Mutex<Option<MessageId>>>,
    },
    /// The last chunk: completes the message with (first chunk, last chunk).
    ChunkLast {
        completion: C,
        slot: Arc<Mutex<Option<MessageId>>>,
    },
}

impl<C: Completion> Completions<C> {
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

/// Where the producer stands, beside its attachment.
#[derive(Debug)]
enum Phase<W> {
    Open,
    /// Closing: the waiter to answer once everything pending is done (None: nobody waits).
    Closing(Option<W>),
    /// Closed or failed: the last action is out.
    Ended,
}

/// The state machine of one producer partition. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ProducerCore<C, W> {
    topic: String,
    partition: i32,
    producer_id: u64,
    config: PartitionConfig,
    user_provided_name: bool,
    producer_name: Option<String>,
    next_sequence_id: Option<u64>,
    /// The highest sequence id the broker confirmed: by a receipt, or as the last one it
    /// stored for this producer name (PRODUCER_SUCCESS), plus one; 0 before any. Shared with
    /// the shell's handles, and set before the completions are told: whoever sees a receipt
    /// sees its sequence id here.
    last_confirmed: Arc<AtomicU64>,
    topic_epoch: Option<u64>,
    /// The version the registry gave the producer's schema (PRODUCER_SUCCESS).
    schema_version: Option<Bytes>,
    max_message_size: usize,
    pending: PendingQueue<Completions<C>>,
    batchers: Batchers<C>,
    flush_waiters: Vec<(u64, W)>,
    buf: BytesMut,
    attachment: Attachment,
    clock: WallClock,
    /// How much earlier than its deadline the batch timer is due (the shell's timer lateness).
    timer_slack: Duration,
    transmit: VecDeque<Bytes>,
    actions: VecDeque<Action<W>>,
    phase: Phase<W>,
    /// End-to-end encryption of every payload, if the producer has encryption keys.
    #[cfg(feature = "encryption")]
    encryptor: Option<crate::crypto::MessageEncryptor>,
}

impl<C: Completion, W: Waiter> ProducerCore<C, W> {
    /// Encrypts every payload from now on (after compression; a batch as a whole, a chunked
    /// message chunk by chunk).
    #[cfg(feature = "encryption")]
    pub fn set_encryptor(&mut self, encryptor: crate::crypto::MessageEncryptor) {
        self.encryptor = Some(encryptor);
    }

    /// A producer of `topic` (its full name; `partition` for the ids it hands out) whose first
    /// attach is due at `now` (see [`ProducerCore::poll_action`]) and retried until `now +
    /// operation_timeout`. Publish times come from `clock`; the batch timer is due
    /// `timer_slack` early (at most a fifth of the batching delay).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        partition: Option<i32>,
        producer_id: u64,
        config: PartitionConfig,
        operation_timeout: Duration,
        backoff: Backoff,
        clock: WallClock,
        timer_slack: Duration,
        now: Instant,
    ) -> Self {
        let batchers = Batchers::new(
            config.batching.unwrap_or(BatchLimits {
                max_messages: 1,
                max_bytes: 0,
                max_delay: Duration::ZERO,
            }),
            config.key_based_batching,
        );
        let mut core = ProducerCore {
            topic,
            partition: partition.unwrap_or(-1),
            producer_id,
            user_provided_name: config.name.is_some(),
            producer_name: config.name.clone(),
            next_sequence_id: config.initial_sequence_id.map(|s| s.wrapping_add(1)),
            last_confirmed: Arc::new(AtomicU64::new(0)),
            config,
            topic_epoch: None,
            schema_version: None,
            max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
            pending: PendingQueue::default(),
            batchers,
            flush_waiters: Vec::new(),
            buf: BytesMut::new(),
            attachment: Attachment::new(now, operation_timeout, backoff, PERMANENT),
            clock,
            timer_slack,
            transmit: VecDeque::new(),
            actions: VecDeque::new(),
            phase: Phase::Open,
            #[cfg(feature = "encryption")]
            encryptor: None,
        };
        core.poll_attach(now);
        core
    }

    // ---- getters ----------------------------------------------------------------------------

    /// Whether a close was asked for (commands are no longer taken) or the producer ended.
    pub fn is_closing(&self) -> bool {
        !matches!(self.phase, Phase::Open)
    }

    /// Whether the producer ended (closed or failed): its last action is out.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// The highest sequence id the broker confirmed (by a receipt, or as the last one it
    /// stored for this producer name when the producer attached); `None` before any.
    #[cfg(test)]
    pub fn last_sequence_id(&self) -> Option<u64> {
        self.last_confirmed.load(Ordering::Acquire).checked_sub(1)
    }

    /// Where [`ProducerCore::last_sequence_id`] is kept (plus one; 0: none), for the handles.
    pub fn last_sequence_id_cell(&self) -> Arc<AtomicU64> {
        self.last_confirmed.clone()
    }

    /// Whether attached to a connection.
    #[cfg(test)]
    pub fn is_attached(&self) -> bool {
        self.attachment.is_attached()
    }

    /// How many SENDs await a receipt.
    #[cfg(test)]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The producer's id.
    #[cfg(test)]
    pub fn producer_id(&self) -> u64 {
        self.producer_id
    }

    // ---- application commands ---------------------------------------------------------------

    /// Sends `msg`: batched, or framed at once; `completion` is told its id (or error).
    pub fn send(&mut self, msg: ProducerMessage, completion: C, now: Instant) {
        if self.is_closing() {
            completion.complete(Err(Error::Closed("producer")));
            return;
        }
        let sequence_id = match msg.sequence_id {
            Some(s) => {
                let next = self.next_sequence_id.unwrap_or(0).max(s.wrapping_add(1));
                self.next_sequence_id = Some(next);
                s
            }
            None => {
                let s = self.next_sequence_id.unwrap_or(0);
                // Wrapping, as after an application's sequence id: one of u64::MAX - 1 makes
                // the next automatic one u64::MAX.
                self.next_sequence_id = Some(s.wrapping_add(1));
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
                self.flush_batches(now);
            }
            let full = self.batchers.add(msg, sequence_id, || now, completion);
            if full {
                self.flush_batches(now);
            }
            return;
        }
        // Sent on its own: what is batched so far goes first, to keep the order.
        self.flush_batches(now);
        let payload = msg.payload.clone();
        let metadata = proto::MessageMetadata {
            producer_name: self.producer_name.clone().unwrap_or_default(),
            sequence_id,
            publish_time: self.clock.unix_ms(now),
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
            txnid_least_bits: msg.transaction.as_ref().map(|t| t.id().least_bits),
            txnid_most_bits: msg.transaction.as_ref().map(|t| t.id().most_bits),
            partition_key_b64_encoded: msg.partition_key_b64_encoded.then_some(true),
            schema_version: msg
                .schema_version
                .map(|v| v.as_bytes().clone())
                .or_else(|| self.schema_version.clone()),
            ..Default::default()
        };
        self.write_send(
            metadata,
            payload,
            sequence_id,
            sequence_id,
            None,
            Completions::One(completion),
            now,
        );
    }

    /// Sends the open batches; `waiter` is told once every message sent so far is done.
    pub fn flush(&mut self, waiter: W, now: Instant) {
        self.flush_batches(now);
        match self.pending.last_sequence_id() {
            None => waiter.finish(Ok(())),
            Some(last) => self.flush_waiters.push((last, waiter)),
        }
    }

    /// Closes the producer once everything pending is done ([`Action::Close`] then carries
    /// `waiter`). Sends after this fail with [`Error::Closed`].
    pub fn close(&mut self, waiter: Option<W>, now: Instant) {
        if self.is_closing() {
            if let Some(w) = waiter {
                w.finish(Ok(()));
            }
            return;
        }
        self.phase = Phase::Closing(waiter);
        self.flush_batches(now);
        self.check_closed();
    }

    // ---- network and time -------------------------------------------------------------------

    /// What the attached connection routed to this producer. Ignored while not attached (the
    /// shell stops routing at [`Action::Detach`]).
    pub fn handle_event(&mut self, event: ProducerEvent, now: Instant) {
        if !self.attachment.is_attached() || self.is_ended() {
            return;
        }
        match event {
            ProducerEvent::Receipt {
                sequence_id,
                message_id,
                ..
            } => match self.pending.on_receipt(
                sequence_id,
                message_id.entry().with_partition(self.partition),
            ) {
                ReceiptMatch::Completed(done) => {
                    for (p, id) in done {
                        self.confirmed(p.highest_sequence_id);
                        p.completion.succeed(id);
                    }
                    self.wake_flushers();
                }
                ReceiptMatch::Early => {
                    tracing::debug!(topic = %self.topic, sequence_id, "receipt before those of earlier sends (a transactional send waits for the transaction buffer): kept until they complete")
                }
                ReceiptMatch::Stale => {
                    tracing::debug!(topic = %self.topic, sequence_id, "receipt for a send that already failed")
                }
                ReceiptMatch::OutOfSync { expected, received } => {
                    tracing::warn!(topic = %self.topic, ?expected, received, "receipt out of sequence: re-creating the producer to resend");
                    self.reattach(now);
                }
            },
            ProducerEvent::SendError { sequence_id, error }
                if !matches!(
                    error.code,
                    ServerErrorCode::ChecksumError
                        | ServerErrorCode::NotAllowedError
                        | ServerErrorCode::TopicTerminatedError
                ) =>
            {
                // A transient failure of the broker (a PersistenceError while its topic is
                // fenced for an unload, say): as the Java client, re-create the producer and
                // send what is pending again (deduplication keeps each once); the send fails
                // only if it times out.
                tracing::warn!(topic = %self.topic, sequence_id, %error, "send error: re-creating the producer to resend");
                self.reattach(now);
            }
            ProducerEvent::SendError { sequence_id, error } => {
                tracing::warn!(topic = %self.topic, sequence_id, %error, "send error");
                if let Some(p) = self.pending.remove(sequence_id) {
                    p.completion.fail(&Error::Server {
                        operation: "send",
                        error,
                    });
                    for (p, id) in self.pending.take_ready() {
                        self.confirmed(p.highest_sequence_id);
                        p.completion.succeed(id);
                    }
                    self.wake_flushers();
                }
                self.reattach(now);
            }
            ProducerEvent::Closed { .. } => self.lost(now, "closed by the broker"),
            ProducerEvent::Migrated { .. } => self.lost(now, "topic migrated"),
            ProducerEvent::ConnectionClosed(e) => self.lost(now, &e.to_string()),
        }
        self.check_closed();
        self.poll_attach(now);
    }

    /// The result of the [`Action::Attach`] of `epoch`. Returns whether the shell keeps the
    /// connection: `false` for an attempt no longer current (drop the connection, sending
    /// CLOSE_PRODUCER, since the broker created the producer) and for failures.
    pub fn handle_attached(
        &mut self,
        epoch: u64,
        result: Result<Attached, Error>,
        now: Instant,
    ) -> bool {
        let outcome = self
            .attachment
            .attached(epoch, now, result.as_ref().map(|_| ()));
        let keep = match (outcome, result) {
            (AttachOutcome::Attached, Ok(attached)) => {
                self.on_attached(attached);
                true
            }
            (AttachOutcome::Retry { retry_in }, Err(e)) => {
                tracing::debug!(topic = %self.topic, error = %e, ?retry_in, "producer attach failed, retrying");
                false
            }
            (AttachOutcome::Failed(e), _) => {
                tracing::warn!(topic = %self.topic, error = %e, "producer cannot attach: failing pending sends");
                self.fail(e);
                false
            }
            _ => false,
        };
        self.poll_attach(now);
        keep
    }

    /// Advances the clock: fails the sends whose timeout passed, closes batches whose delay is
    /// over, and starts an attach that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_ended() {
            return;
        }
        loop {
            let expired = self.pending.expire(now);
            if expired.is_empty() {
                break;
            }
            let timeout = self.config.send_timeout.unwrap_or_default();
            tracing::warn!(topic = %self.topic, count = expired.len(), "sends timed out");
            for p in expired {
                p.completion.fail(&Error::SendTimeout(timeout));
            }
            // Sends behind them that the broker already answered complete now.
            for (p, id) in self.pending.take_ready() {
                self.confirmed(p.highest_sequence_id);
                p.completion.succeed(id);
            }
            self.wake_flushers();
        }
        if self.batch_due().is_some_and(|at| at <= now) {
            self.flush_batches(now);
        }
        self.check_closed();
        self.poll_attach(now);
    }

    // ---- outputs ----------------------------------------------------------------------------

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<Action<W>> {
        let action = self.actions.pop_front();
        if self.actions.is_empty() {
            // Actions are rare (attach, detach, close): an idle producer holds no queue.
            self.actions = VecDeque::new();
        }
        action
    }

    /// The next frame to write on the attached connection.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// When [`ProducerCore::handle_timeout`] is due: the earliest of the first send timeout,
    /// the batch timer and the next attach attempt.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_ended() {
            return None;
        }
        [
            self.pending.next_deadline(),
            self.batch_due(),
            self.attachment.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals --------------------------------------------------------------------------

    fn args(&self, epoch: u64) -> ProducerArgs {
        ProducerArgs {
            topic: self.topic.clone(),
            producer_id: self.producer_id,
            producer_name: self.producer_name.clone(),
            user_provided_name: self.user_provided_name,
            // PRODUCER's epoch counts the attempts from 0; the attachment's from 1.
            epoch: epoch.saturating_sub(1),
            properties: self.config.properties.clone(),
            access_mode: self.config.access_mode.as_i32(),
            topic_epoch: self.topic_epoch,
            initial_subscription_name: self.config.initial_subscription_name.clone(),
            schema: self.config.schema.clone(),
        }
    }

    fn poll_attach(&mut self, now: Instant) {
        if self.is_ended() {
            return;
        }
        if let Some(epoch) = self.attachment.poll_attach(now) {
            let args = self.args(epoch);
            self.actions.push_back(Action::Attach { epoch, args });
        }
    }

    fn on_attached(&mut self, attached: Attached) {
        if self.producer_name.is_none() || !self.user_provided_name {
            self.producer_name = Some(attached.producer_name.clone());
        }
        if let Some(last) = attached.last_sequence_id.filter(|l| *l >= 0) {
            self.confirmed(last as u64);
        }
        if self.next_sequence_id.is_none() {
            let last = attached.last_sequence_id.unwrap_or(-1);
            self.next_sequence_id = Some(if last >= 0 { last as u64 + 1 } else { 0 });
        }
        if attached.topic_epoch.is_some() {
            self.topic_epoch = attached.topic_epoch;
        }
        self.max_message_size = attached.max_message_size;
        if attached.schema_version.is_some() {
            self.schema_version = attached.schema_version;
        }
        self.transmit.clear();
        self.transmit.extend(self.pending.frames().cloned());
        self.actions.push_back(Action::Attached {
            producer_name: attached.producer_name,
            resent: self.pending.len(),
        });
    }

    /// The connection is gone, or the broker closed the producer: attach again after the
    /// backoff.
    fn lost(&mut self, now: Instant, why: &str) {
        if self.attachment.lost(now) {
            tracing::warn!(topic = %self.topic, reason = why, pending = self.pending.len(), "producer disconnected, reconnecting");
            self.transmit.clear();
            self.actions.push_back(Action::Detach {
                close_on_broker: false,
            });
        }
    }

    /// Drops this producer from its connection and creates it again at once (which resends).
    fn reattach(&mut self, now: Instant) {
        self.transmit.clear();
        self.actions.push_back(Action::Detach {
            close_on_broker: true,
        });
        self.attachment.reattach_now(now);
    }

    /// Fails everything pending with `e` and ends the producer.
    fn fail(&mut self, e: Error) {
        self.attachment.fail();
        for batch in self.batchers.take_all() {
            for c in batch.items {
                c.complete(Err(e.clone()));
            }
        }
        for p in self.pending.drain() {
            p.completion.fail(&e);
        }
        // As a drained queue: a flush is over once nothing it waited for is pending.
        for (_, w) in self.flush_waiters.drain(..) {
            w.finish(Ok(()));
        }
        if let Phase::Closing(Some(w)) = std::mem::replace(&mut self.phase, Phase::Ended) {
            w.finish(Err(e.clone()));
        }
        self.transmit.clear();
        self.actions.push_back(Action::Failed(e));
    }

    /// When closing and nothing is pending any more: the close action.
    fn check_closed(&mut self) {
        if !matches!(self.phase, Phase::Closing(_)) || !self.pending.is_empty() {
            return;
        }
        let Phase::Closing(waiter) = std::mem::replace(&mut self.phase, Phase::Ended) else {
            return;
        };
        for (_, w) in self.flush_waiters.drain(..) {
            w.finish(Ok(()));
        }
        self.attachment.close();
        self.actions.push_back(Action::Close { waiter });
    }

    /// When the batch timer is due: the open batches' deadline, brought forward by the timer
    /// slack or a fifth of the batching delay, whichever is less.
    fn batch_due(&self) -> Option<Instant> {
        let wait = self
            .config
            .batching
            .map(|b| b.max_delay)
            .unwrap_or_default();
        self.batchers
            .deadline()
            .map(|d| d.checked_sub(self.timer_slack.min(wait / 5)).unwrap_or(d))
    }

    fn flush_batches(&mut self, now: Instant) {
        for batch in self.batchers.take_all() {
            self.send_batch(batch, now);
        }
    }

    fn send_batch(&mut self, batch: Batch<C>, now: Instant) {
        let count = batch.items.len() as i32;
        let metadata = proto::MessageMetadata {
            producer_name: self.producer_name.clone().unwrap_or_default(),
            sequence_id: batch.first_sequence_id,
            publish_time: self.clock.unix_ms(now),
            partition_key: batch.partition_key,
            ordering_key: batch.ordering_key,
            num_messages_in_batch: Some(count),
            highest_sequence_id: Some(batch.last_sequence_id),
            txnid_least_bits: batch.txn.map(|t| t.least_bits),
            txnid_most_bits: batch.txn.map(|t| t.most_bits),
            partition_key_b64_encoded: batch.partition_key_b64_encoded.then_some(true),
            schema_version: batch
                .schema_version
                .map(|v| v.as_bytes().clone())
                .or_else(|| self.schema_version.clone()),
            ..Default::default()
        };
        self.write_send(
            metadata,
            batch.entries,
            batch.first_sequence_id,
            batch.last_sequence_id,
            Some(count),
            Completions::Batch(batch.items),
            now,
        );
    }

    /// Sets the metadata's encryption keys, if the producer encrypts: `Ok(true)` when the
    /// payload is to be sealed, `Ok(false)` to send it as it is, `Err` when it must fail.
    #[cfg(feature = "encryption")]
    fn prepare_encryption(
        &mut self,
        metadata: &mut proto::MessageMetadata,
        now: Instant,
    ) -> Result<bool> {
        match self.encryptor.as_mut() {
            Some(enc) => {
                enc.prepare(metadata, now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    #[cfg(not(feature = "encryption"))]
    fn prepare_encryption(
        &mut self,
        _metadata: &mut proto::MessageMetadata,
        _now: Instant,
    ) -> Result<bool> {
        Ok(false)
    }

    /// The bytes encryption adds to a SEND beyond its metadata's encryption keys (the tag).
    fn encryption_tag_len(&self, encrypted: bool) -> usize {
        #[cfg(feature = "encryption")]
        if encrypted {
            return crate::crypto::TAG_LEN + crate::crypto::IV_LEN + 2;
        }
        let _ = encrypted;
        0
    }

    /// Seals one payload (a message, a batch or a chunk) under a fresh IV; with crypto failure
    /// action Send, a failure sends it unencrypted (the metadata's encryption fields cleared).
    #[cfg(feature = "encryption")]
    fn seal(&self, metadata: &mut proto::MessageMetadata, payload: Bytes) -> Result<Bytes> {
        let Some(enc) = self.encryptor.as_ref() else {
            return Ok(payload);
        };
        match enc.seal(metadata, &payload) {
            Ok(sealed) => Ok(sealed),
            Err(e) if enc.failure_action() == crate::crypto::ProducerCryptoFailureAction::Send => {
                tracing::warn!(topic = %self.topic, error = %e, "encryption failed: sending unencrypted (crypto failure action Send)");
                metadata.encryption_keys.clear();
                metadata.encryption_param = None;
                Ok(payload)
            }
            Err(e) => Err(Error::Crypto(e)),
        }
    }

    #[cfg(not(feature = "encryption"))]
    fn seal(&self, _metadata: &mut proto::MessageMetadata, payload: Bytes) -> Result<Bytes> {
        Ok(payload)
    }

    /// Compresses, encrypts, frames and queues one SEND (or its chunks).
    #[allow(clippy::too_many_arguments)]
    fn write_send(
        &mut self,
        mut metadata: proto::MessageMetadata,
        payload: Bytes,
        sequence_id: u64,
        highest_sequence_id: u64,
        num_messages: Option<i32>,
        completions: Completions<C>,
        now: Instant,
    ) {
        metadata.uncompressed_size = Some(payload.len() as u32);
        let payload = match self.config.compression {
            Compression::None => payload,
            codec => {
                metadata.compression = Some(codec.to_wire());
                compression::compress(codec, &payload)
            }
        };
        let encrypted = match self.prepare_encryption(&mut metadata, now) {
            Ok(e) => e,
            Err(e) => {
                completions.fail(&e);
                return;
            }
        };
        let size = payload.len()
            + prost::Message::encoded_len(&metadata)
            + self.encryption_tag_len(encrypted);
        let chunk_limit = self.chunk_limit();
        if size > self.max_message_size || (self.config.chunking && size > chunk_limit) {
            match completions {
                Completions::One(completion) if self.config.chunking && num_messages.is_none() => {
                    self.send_chunks(metadata, payload, sequence_id, completion, encrypted, now);
                }
                completions => completions.fail(&Error::MessageTooLarge {
                    size,
                    max: self.max_message_size,
                }),
            }
            return;
        }
        let payload = match self.seal(&mut metadata, payload) {
            Ok(p) => p,
            Err(e) => {
                completions.fail(&e);
                return;
            }
        };
        let mut command = commands::send(self.producer_id, sequence_id, num_messages);
        if let (Some(send), true) = (command.send.as_mut(), num_messages.is_some()) {
            send.highest_sequence_id = Some(highest_sequence_id);
        }
        with_txn(&mut command, &metadata);
        self.push_frame(
            command,
            &metadata,
            &payload,
            sequence_id,
            highest_sequence_id,
            completions,
            now,
        );
    }

    /// Splits a message larger than the max message size into chunks: one SEND each, all with
    /// the message's sequence id and `uuid = <producer name>-<sequence id>`. An encrypting
    /// producer seals each chunk on its own (its own IV), as the Java client does.
    fn send_chunks(
        &mut self,
        metadata: proto::MessageMetadata,
        payload: Bytes,
        sequence_id: u64,
        completion: C,
        encrypted: bool,
        now: Instant,
    ) {
        // Room for the chunk fields added to the metadata (and the IV and tag).
        let overhead = prost::Message::encoded_len(&metadata)
            + 64
            + self.producer_name.as_ref().map_or(0, |n| n.len())
            + self.encryption_tag_len(encrypted);
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
            let part = match self.seal(&mut md, part) {
                Ok(p) => p,
                Err(e) => {
                    // Chunks already queued stay (the consumer drops an incomplete message);
                    // the message fails.
                    if let Some(c) = completion.take() {
                        c.complete(Err(e));
                    }
                    return;
                }
            };
            let mut command = commands::send(self.producer_id, sequence_id, None);
            if let Some(send) = command.send.as_mut() {
                send.is_chunk = Some(true);
            }
            with_txn(&mut command, &md);
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
            self.push_frame(command, &md, &part, sequence_id, sequence_id, done, now);
        }
    }

    /// The most bytes one chunk (with its metadata) may take.
    fn chunk_limit(&self) -> usize {
        self.config
            .chunk_max_size
            .map_or(self.max_message_size, |c| c.min(self.max_message_size))
    }

    /// Frames one SEND, queues it for the attached connection and in the pending queue.
    #[allow(clippy::too_many_arguments)]
    fn push_frame(
        &mut self,
        command: proto::BaseCommand,
        metadata: &proto::MessageMetadata,
        payload: &[u8],
        sequence_id: u64,
        highest_sequence_id: u64,
        completions: Completions<C>,
        now: Instant,
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
            completions.fail(&Error::Encode(e));
            return;
        }
        let frame: Bytes = self.buf.split().freeze();
        if self.attachment.is_attached() {
            self.transmit.push_back(frame.clone());
        }
        self.pending.push(PendingSend {
            sequence_id,
            highest_sequence_id,
            frame,
            deadline: self.config.send_timeout.map(|t| now + t),
            completion: completions,
            receipt: None,
        });
    }

    /// The broker confirmed everything up to `sequence_id`.
    fn confirmed(&mut self, sequence_id: u64) {
        self.last_confirmed
            .fetch_max(sequence_id.wrapping_add(1), Ordering::AcqRel);
    }

    /// Answers the flush waiters whose last message is no longer pending.
    fn wake_flushers(&mut self) {
        let head = self.pending.first_sequence_id();
        let mut i = 0;
        while i < self.flush_waiters.len() {
            if head.is_some_and(|h| h <= self.flush_waiters[i].0) {
                i += 1;
            } else {
                let (_, w) = self.flush_waiters.swap_remove(i);
                w.finish(Ok(()));
            }
        }
    }
}

/// A SEND in a transaction names it, as its metadata does (the Java client sets both).
fn with_txn(command: &mut proto::BaseCommand, metadata: &proto::MessageMetadata) {
    if let (Some(send), Some(least), Some(most)) = (
        command.send.as_mut(),
        metadata.txnid_least_bits,
        metadata.txnid_most_bits,
    ) {
        send.txnid_least_bits = Some(least);
        send.txnid_most_bits = Some(most);
    }
}
