//! One partition (or one topic) of a consumer as a sans-IO state machine: the subscription's
//! attachment, flow permits, the message pipeline (start filter, chunks, encryption,
//! decompression, batches), acknowledgements, negative acks, the ack timeout and redelivery.
//!
//! The contract, in the manner of quinn-proto's `Connection`:
//!
//! - inputs: [`ConsumerCore::handle_command`] (what the application asked),
//!   [`ConsumerCore::handle_event`] (what the attached connection routed to this consumer),
//!   [`ConsumerCore::handle_attached`] (the result of an attach the core asked for),
//!   [`ConsumerCore::handle_seek`] (a seek the broker accepted) and
//!   [`ConsumerCore::handle_timeout`]; every one takes the time `now`;
//! - outputs, drained after every input: [`ConsumerCore::poll_transmit`] (commands to write on
//!   the attached connection), [`ConsumerCore::poll_output`] (deliveries and what the shell must
//!   do: attach, detach, send acks as requests, give up), and [`ConsumerCore::poll_timeout`]
//!   (when to call `handle_timeout` next).
//!
//! Nothing here reads a clock, awaits or touches a socket: the shell
//! (`consumer/partition.rs`) owns the connection and the channels. A message handed to the
//! application, queued, or dropped always leaves a trace the broker can act on: it is
//! delivered, acknowledged with a validation error, or asked for again (REDELIVER); never
//! dropped in silence.
//!
//! ```text
//!   new --poll_output: Attach--> (shell subscribes) --handle_attached(Ok)--> FLOW(queue size)
//!        ^                                                                      |
//!        |  connection lost / CLOSE_CONSUMER: Detach, retry after the backoff   v
//!        +------------------------------------------------------------ MESSAGE... ACK/FLOW
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::compression::{self, Compression, CompressionError};
use crate::consumer::chunks::{ChunkAssembler, ChunkInfo, ChunkOutcome};
use crate::consumer::{ConsumerCryptoFailureAction, InitialPosition, SubscriptionType};
use crate::error::{Error, ServerErrorCode};
use crate::message::Message;
use crate::protocol::acks::{
    cumulative_ack_set, is_unacked, AckGroup, AckProgress, BatchAckTracker,
};
use crate::protocol::attach::{AttachOutcome, Attachment};
use crate::protocol::backoff::Backoff;
use crate::protocol::commands::{self, SubscribeArgs};
use crate::protocol::connection::ConsumerEvent;
use crate::protocol::flow::FlowControl;
use crate::protocol::topic::TopicName;
use crate::wire::{self, proto, MessageId};

#[cfg(test)]
mod sim;

/// Errors that end a consumer's attachment beyond [`crate::protocol::attach::is_permanent`]'s.
const PERMANENT: &[ServerErrorCode] = &[ServerErrorCode::SubscriptionNotFound];

/// Per-partition consumer settings.
#[derive(Debug, Clone)]
pub(crate) struct ChildConfig {
    pub subscription: String,
    pub sub_type: SubscriptionType,
    pub initial_position: InitialPosition,
    pub consumer_name: Option<String>,
    pub receiver_queue_size: u32,
    /// Whether the receiver queue starts at one message and grows up to its size.
    pub auto_scaled_queue: bool,
    pub nack_delay: Duration,
    pub priority_level: Option<i32>,
    pub properties: Vec<(String, String)>,
    /// For readers: a non-durable subscription starting at this id (inclusive or not). After a
    /// reconnect it resumes after the last message handed to the application.
    pub start: Option<StartPosition>,
    /// Whether the subscription is durable (false for readers and non-durable consumers).
    pub durable: bool,
    /// A reader: its stream only moves forward, anything at or before what it delivered is a
    /// duplicate (a non-durable consumer takes redeliveries).
    pub reader: bool,
    /// SUBSCRIBE options only the broker acts on.
    pub extras: SubscribeExtras,
    /// Acks are grouped for this long, or until this many are pending.
    pub ack_group_delay: Duration,
    pub ack_group_max: usize,
    /// Acknowledge single messages of batches on the broker (`ack_set`).
    pub batch_index_ack: bool,
    /// Ask the broker to confirm every ack (ACK with a request id, ACK_RESPONSE).
    pub ack_receipts: bool,
    /// Negative-ack delay growing with the redelivery count: min, max.
    pub nack_backoff: Option<(Duration, Duration)>,
    /// Redeliver messages not acknowledged this long after the application received them.
    pub ack_timeout: Option<Duration>,
    /// The schema declared on SUBSCRIBE.
    pub schema: Option<proto::Schema>,
    /// Chunked messages: how many may be incomplete at once, for how long, and how large.
    pub max_pending_chunked: usize,
    pub chunk_expiry: Duration,
    pub max_chunked_size: usize,
    /// What to do with an encrypted message this client cannot decrypt.
    pub crypto_failure_action: ConsumerCryptoFailureAction,
    /// Where the private keys of encrypted messages come from.
    #[cfg(feature = "encryption")]
    pub crypto_key_reader: Option<Arc<dyn crate::crypto::CryptoKeyReader>>,
    /// Retry a failed first subscribe until this long after the start.
    pub operation_timeout: Duration,
    /// Read the compacted view of the topic (SUBSCRIBE's `read_compacted`): the latest message
    /// of each key up to the compaction horizon, then everything after it.
    pub read_compacted: bool,
    /// Subscribe paused: no permits are granted until the application resumes.
    pub start_paused: bool,
    /// Whether the consumer is paused now, shared by its partitions: one added later (by
    /// partition discovery) starts paused when the others are.
    pub paused: Arc<AtomicBool>,
    /// Report what the negative acks and the ack timeout redeliver
    /// ([`Output::Redelivered`]; the consumer has interceptors).
    pub report_redeliveries: bool,
    /// The consumer's interceptors (the shell tells them of redeliveries).
    pub interceptors: crate::interceptor::ConsumerInterceptors,
}

/// SUBSCRIBE options only the broker acts on.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubscribeExtras {
    /// Properties of the subscription (set when the broker creates it).
    pub subscription_properties: Vec<(String, String)>,
    /// Replicate the subscription state to the other clusters of a geo-replicated topic.
    pub replicate_subscription_state: bool,
    /// Key_Shared only: the policy (validated) and whether out-of-order delivery is allowed.
    pub key_shared: Option<proto::KeySharedMeta>,
}

/// Where a non-durable subscription (a reader) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartPosition {
    pub id: MessageId,
    pub inclusive: bool,
}

impl StartPosition {
    /// Whether a message with this id comes before the start and must be skipped.
    pub fn skips(&self, id: &MessageId) -> bool {
        // Latest: nothing stored comes after it. (Earliest needs no case of its own: every id
        // a broker gives is after it. A hostile broker's id equal to it, ledger and entry
        // u64::MAX on the wire, is then a position like any other, and what comes at or
        // before it is skipped as well.)
        if self.id.ledger_id == i64::MAX {
            return false;
        }
        let key = |m: &MessageId| (m.ledger_id, m.entry_id, m.batch_index.max(-1));
        if self.inclusive {
            key(id) < key(&self.id)
        } else if self.id.batch_index < 0 {
            // After a whole entry: nothing of that entry, whatever its batch index (the
            // broker's cursor starts at the next entry; an entry sent again as a batch, or a
            // batch delivered whole and sent again, is a duplicate).
            (id.ledger_id, id.entry_id) <= (self.id.ledger_id, self.id.entry_id)
        } else {
            key(id) <= key(&self.id)
        }
    }
}

/// Where a seek moves the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekTarget {
    /// To this message (it is the next one delivered).
    Id(MessageId),
    /// To the first message published at or after this time (ms since the epoch).
    PublishTime(u64),
}

/// State shared by the application-side handle and the core.
#[derive(Debug)]
pub(crate) struct ConsumerShared {
    pub flow: FlowControl,
    /// Bumped whenever queued deliveries become stale (resubscribe, redeliver-all).
    pub epoch: AtomicU64,
    /// Deliveries of the current epoch not yet taken by the application.
    pub in_queue: AtomicU32,
    /// Their payload bytes.
    pub in_queue_bytes: AtomicU64,
    pub reached_end: AtomicBool,
    pub active: AtomicBool,
    /// The last message handed to the application (readers resume after it).
    pub last_dequeued: Mutex<Option<MessageId>>,
    /// Whether `ack` waits for the broker's confirmation.
    pub ack_receipts: bool,
    /// Whether the core wants to know what the application received (ack timeout).
    pub track_received: bool,
    /// The partition's stats (none with a stats interval of zero).
    pub stats: Option<crate::stats::ConsumerRecorder>,
    /// The partition's metrics handles (none with metrics off).
    pub metrics: Option<crate::metrics::ConsumerMetrics>,
    /// Whether the shell is attached to a connection now.
    pub connected: AtomicBool,
}

impl ConsumerShared {
    /// Shared state for a consumer with these settings.
    pub fn new(config: &ChildConfig) -> Self {
        ConsumerShared {
            flow: if config.auto_scaled_queue {
                FlowControl::auto_scaled(config.receiver_queue_size)
            } else {
                FlowControl::new(config.receiver_queue_size)
            },
            epoch: AtomicU64::new(0),
            in_queue: AtomicU32::new(0),
            in_queue_bytes: AtomicU64::new(0),
            reached_end: AtomicBool::new(false),
            active: AtomicBool::new(false),
            last_dequeued: Mutex::new(None),
            ack_receipts: config.ack_receipts,
            track_received: config.ack_timeout.is_some(),
            stats: None,
            metrics: None,
            connected: AtomicBool::new(false),
        }
    }

    /// With this stats recorder.
    pub fn with_stats(mut self, stats: Option<crate::stats::ConsumerRecorder>) -> Self {
        self.stats = stats;
        self
    }

    /// With these metrics handles.
    pub fn with_metrics(mut self, metrics: Option<crate::metrics::ConsumerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Tells the metrics the receive queue's size now.
    pub fn update_queue_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.queue(
                self.in_queue.load(Ordering::Acquire),
                self.in_queue_bytes.load(Ordering::Acquire),
            );
        }
    }

    /// The last message handed to the application.
    pub fn last_dequeued(&self) -> Option<MessageId> {
        *self.last_dequeued.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the core hands the application, stamped with the epoch it belongs to.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// Which partition of the consumer.
    pub child: usize,
    /// The epoch it was queued in: stale (and skipped) once the epoch moved on.
    pub epoch: u64,
    /// A message, or an error the application must see (the subscription is gone, a message
    /// cannot be decrypted).
    pub item: Result<Message, Error>,
}

/// What the application asks of the core.
#[derive(Debug)]
pub(crate) enum CoreCommand<W> {
    /// Permits freed by the application, counted in this flow-control generation (granted
    /// only if it is still the current one: a resubscription granted the whole queue again).
    Flow { permits: u32, generation: u32 },
    /// Acknowledge (with a waiter when acks have receipts).
    Ack {
        id: MessageId,
        cumulative: bool,
        waiter: Option<W>,
    },
    /// Acknowledge in a transaction: sent at once as a request (never grouped), answered to
    /// the waiter; it takes effect when the transaction commits.
    TxnAck {
        id: MessageId,
        cumulative: bool,
        txn: crate::protocol::transaction::TxnId,
        waiter: W,
    },
    /// Negative ack: redeliver after the delay.
    Nack {
        id: MessageId,
        redelivery_count: u32,
    },
    /// The application received this entry (ack-timeout tracking).
    Received(MessageId),
    /// Redeliver everything unacknowledged.
    RedeliverAll,
    /// Stop granting permits: they are withheld until [`CoreCommand::Resume`].
    Pause,
    /// Grant the withheld permits, and go on granting.
    Resume,
}

/// Something waiting for acks to be confirmed.
pub(crate) trait AckWaiter {
    /// Answers the waiter.
    fn answer(self, result: Result<(), Error>);
}

/// What the shell must do, besides writing [`ConsumerCore::poll_transmit`].
// Deliver, the largest, is the variant of every message: boxing it would allocate once per
// message to save moving a few hundred bytes through a queue that holds one output at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Output<W> {
    /// Hand this to the application.
    Deliver(Delivery),
    /// Look the topic up and subscribe with these arguments (beside the loop); feed the result
    /// to [`ConsumerCore::handle_attached`] with this epoch.
    Attach {
        epoch: u64,
        args: Box<SubscribeArgs>,
    },
    /// Stop using the connection (unregister from it); an attach follows after the backoff.
    Detach,
    /// Send CLOSE_CONSUMER on the connection (with a request id of the shell's), then detach.
    CloseOnBroker,
    /// Send these acks as requests (ack receipts) and answer the waiters with the outcome.
    AckRequests {
        acks: Vec<(Vec<proto::MessageIdData>, bool)>,
        waiters: Vec<W>,
    },
    /// Send this acknowledgement in a transaction as a request; answer the waiter with its
    /// outcome (a TransactionConflict when another transaction holds the message).
    TxnAck {
        ids: Vec<proto::MessageIdData>,
        cumulative: bool,
        txn: crate::protocol::transaction::TxnId,
        waiter: W,
    },
    /// These messages (entries) were asked for again because they were negatively
    /// acknowledged (`ack_timeout` false) or their ack timeout passed (true). Only with
    /// [`ChildConfig::report_redeliveries`].
    Redelivered {
        ack_timeout: bool,
        ids: Vec<MessageId>,
    },
    /// The first attach succeeded: the consumer is ready.
    Ready,
    /// The consumer cannot go on (a permanent error, or the first attach ran out of time).
    Failed(Error),
}

/// One partition of a consumer. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ConsumerCore<W> {
    topic: TopicName,
    topic_str: Arc<str>,
    partition: i32,
    index: usize,
    consumer_id: u64,
    config: ChildConfig,
    shared: Arc<ConsumerShared>,
    attach: Attachment,
    max_frame_size: usize,
    /// Readers: messages before this position are dropped (the broker may resend them).
    filter: Option<StartPosition>,
    /// A reader's last entry delivered whole as one message (an undecryptable batch with
    /// crypto failure action Consume): its id at the batch's last index, where the reader
    /// resumes after it (the message's own id names no index).
    last_whole_batch: Option<MessageId>,
    acks: BatchAckTracker,
    /// Acks waiting to be sent together.
    group: AckGroup,
    /// Callers waiting for the broker to confirm the acks in `group`.
    ack_waiters: Vec<W>,
    nacks: BTreeMap<Instant, Vec<MessageId>>,
    /// Ack timeout: entries the application received and has not acknowledged, by deadline.
    unacked: HashMap<(i64, i64), Instant>,
    chunks: ChunkAssembler,
    /// Decrypts encrypted entries, with the consumer's key reader.
    #[cfg(feature = "encryption")]
    decryptor: Option<crate::crypto::MessageDecryptor>,
    /// The chunk ids of delivered chunked messages (by their last chunk), acked together.
    chunk_ids: HashMap<(i64, i64), Vec<MessageId>>,
    transmit: VecDeque<proto::BaseCommand>,
    output: VecDeque<Output<W>>,
    /// Messages queued past this many are handed back to the broker (a broker that ignores
    /// the permits cannot make the queue grow without bound).
    queue_limit: u32,
    /// Paused by the application: permits are counted in `withheld`, not granted.
    paused: bool,
    /// Permits not granted while paused, on the current connection: granted on resume.
    withheld: u32,
}

impl<W: AckWaiter> ConsumerCore<W> {
    /// A core whose first attach starts at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: TopicName,
        partition: i32,
        index: usize,
        consumer_id: u64,
        config: ChildConfig,
        shared: Arc<ConsumerShared>,
        backoff: Backoff,
        now: Instant,
    ) -> Self {
        let queue = shared.flow.queue_size();
        ConsumerCore {
            topic_str: Arc::from(topic.full_name()),
            topic,
            partition,
            index,
            consumer_id,
            attach: Attachment::new(now, config.operation_timeout, backoff, PERMANENT),
            max_frame_size: wire::DEFAULT_MAX_FRAME_SIZE,
            filter: None,
            last_whole_batch: None,
            acks: BatchAckTracker::default(),
            group: AckGroup::new(config.ack_group_delay, config.ack_group_max),
            ack_waiters: Vec::new(),
            nacks: BTreeMap::new(),
            unacked: HashMap::new(),
            chunks: ChunkAssembler::new(
                config.max_pending_chunked,
                config.chunk_expiry,
                config.max_chunked_size,
            ),
            chunk_ids: HashMap::new(),
            transmit: VecDeque::new(),
            output: VecDeque::new(),
            queue_limit: queue.saturating_mul(4).max(10_000),
            paused: config.start_paused || config.paused.load(Ordering::Acquire),
            withheld: 0,
            #[cfg(feature = "encryption")]
            decryptor: config
                .crypto_key_reader
                .clone()
                .map(crate::crypto::MessageDecryptor::new),
            config,
            shared,
        }
        .started(now)
    }

    fn started(mut self, now: Instant) -> Self {
        self.drive(now);
        self
    }

    /// The state shared with the application-side handle.
    pub fn shared(&self) -> &ConsumerShared {
        &self.shared
    }

    /// The consumer's interceptors.
    pub fn interceptors(&self) -> &crate::interceptor::ConsumerInterceptors {
        &self.config.interceptors
    }

    /// The index of this partition in its consumer.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The current delivery epoch.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Whether attached to a connection now.
    #[cfg(test)]
    pub fn is_attached(&self) -> bool {
        self.attach.is_attached()
    }

    /// Whether the core has ended (closed, or failed for good).
    #[cfg(test)]
    pub fn is_over(&self) -> bool {
        self.attach.is_over()
    }

    /// The next command to write on the attached connection.
    pub fn poll_transmit(&mut self) -> Option<proto::BaseCommand> {
        let command = self.transmit.pop_front();
        if self.transmit.is_empty() {
            // Commands are few (subscribe, a flow per half a queue, seeks) and large: an idle
            // consumer holds no queue of them.
            self.transmit = VecDeque::new();
        }
        command
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output<W>> {
        self.output.pop_front()
    }

    /// When [`ConsumerCore::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.attach.poll_timeout(),
            self.nacks.keys().next().copied(),
            self.group.deadline(),
            self.unacked.values().min().copied(),
            self.chunks.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Timers: redeliveries due, grouped acks, the ack timeout, chunk expiry, re-attaching.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.redeliver_nacked(now);
        self.redeliver_timed_out(now);
        let ids = self.chunks.expire(now);
        self.drop_chunks(ids, "incomplete chunked message expired");
        self.drive(now);
    }

    /// What the application asked.
    pub fn handle_command(&mut self, cmd: CoreCommand<W>, now: Instant) {
        match cmd {
            CoreCommand::Flow {
                permits,
                generation,
            } => {
                if generation == self.shared.flow.generation() {
                    self.grant(permits);
                } else {
                    debug!(topic = %self.topic, permits, "permits of an earlier subscription: not granted");
                }
            }
            CoreCommand::Ack {
                id,
                cumulative,
                waiter,
            } => self.ack(id, cumulative, waiter, now),
            CoreCommand::TxnAck {
                id,
                cumulative,
                txn,
                waiter,
            } => self.txn_ack(id, cumulative, txn, waiter),
            CoreCommand::Nack {
                id,
                redelivery_count,
            } => {
                let delay = match self.config.nack_backoff {
                    Some((min, max)) => min
                        .saturating_mul(1u32 << redelivery_count.min(20))
                        .min(max),
                    None => self.config.nack_delay,
                };
                self.acks.forget(&id.entry());
                self.unacked.remove(&(id.ledger_id, id.entry_id));
                self.nacks.entry(now + delay).or_default().push(id);
            }
            CoreCommand::Received(id) => {
                if let Some(timeout) = self.config.ack_timeout {
                    self.unacked
                        .entry((id.ledger_id, id.entry_id))
                        .or_insert(now + timeout);
                }
            }
            CoreCommand::RedeliverAll => self.redeliver_everything(),
            CoreCommand::Pause => self.paused = true,
            CoreCommand::Resume => {
                self.paused = false;
                let withheld = std::mem::take(&mut self.withheld);
                if withheld > 0 {
                    self.send(commands::flow(self.consumer_id, withheld));
                }
            }
        }
        self.drive(now);
    }

    /// What the attached connection routed to this consumer.
    pub fn handle_event(&mut self, event: ConsumerEvent, now: Instant) {
        match event {
            ConsumerEvent::Message { command, payload } => {
                self.handle_message(command, payload, now)
            }
            ConsumerEvent::ReachedEndOfTopic => {
                info!(topic = %self.topic, "reached the end of the topic");
                self.shared.reached_end.store(true, Ordering::Release);
            }
            ConsumerEvent::ActiveConsumerChange(active) => {
                debug!(topic = %self.topic, active, "active consumer change");
                self.shared.active.store(active, Ordering::Release);
            }
            ConsumerEvent::Closed { .. } => self.lost("closed by the broker", now),
            ConsumerEvent::Migrated { .. } => self.lost("topic migrated", now),
            ConsumerEvent::ConnectionClosed(e) => self.lost(&e.to_string(), now),
        }
        self.drive(now);
    }

    /// The result of the attach of `epoch`: `Ok(max message size of the connection)` once
    /// subscribed. Returns whether the shell keeps the connection (false: drop it, the attempt
    /// is stale or failed).
    pub fn handle_attached(
        &mut self,
        epoch: u64,
        result: Result<usize, Error>,
        now: Instant,
    ) -> bool {
        let first = !self.attach.ever_attached();
        let outcome = self
            .attach
            .attached(epoch, now, result.as_ref().map(|_| ()));
        let keep = match outcome {
            AttachOutcome::Attached => {
                let max_message_size = result.unwrap_or(wire::DEFAULT_MAX_MESSAGE_SIZE);
                self.max_frame_size = wire::max_frame_size_for(max_message_size);
                let permits = self.shared.flow.initial_permits();
                info!(topic = %self.topic, subscription = %self.config.subscription, permits, paused = self.paused, "subscribed");
                // A new connection: what was withheld on the old one is granted again here.
                self.withheld = 0;
                self.grant(permits);
                if first {
                    self.output.push_back(Output::Ready);
                }
                true
            }
            AttachOutcome::Retry { retry_in } => {
                if let Err(e) = &result {
                    debug!(topic = %self.topic, error = %e, ?retry_in, "subscribe failed, retrying");
                }
                false
            }
            AttachOutcome::Failed(e) => {
                warn!(topic = %self.topic, error = %e, "consumer cannot subscribe");
                self.give_up(e);
                false
            }
            AttachOutcome::Stale => false,
        };
        self.drive(now);
        keep
    }

    /// The broker accepted a seek: drop what is queued and subscribe again from the new
    /// position (the broker disconnects a consumer after a seek; pulsar-lite does not, so the
    /// client does).
    pub fn handle_seek(&mut self, target: SeekTarget, now: Instant) {
        self.nacks.clear();
        self.unacked.clear();
        if let Ok(mut last) = self.shared.last_dequeued.lock() {
            *last = None;
        }
        if !self.config.durable {
            self.config.start = Some(match target {
                SeekTarget::Id(id) => StartPosition {
                    id,
                    inclusive: true,
                },
                // The broker moved the cursor; start from the beginning and let it serve.
                SeekTarget::PublishTime(_) => StartPosition {
                    id: MessageId::EARLIEST,
                    inclusive: true,
                },
            });
        }
        self.transmit.clear();
        self.output.push_back(Output::CloseOnBroker);
        self.bump_epoch();
        self.attach.reattach_now(now);
        self.drive(now);
    }

    /// Takes the acks grouped so far for sending now (before a seek, a close, an unsubscribe).
    pub fn flush_acks_now(&mut self) {
        self.flush_acks();
    }

    /// Closed by the application: no more attaching.
    pub fn close(&mut self) {
        self.flush_acks();
        self.attach.close();
    }

    /// Gives up: everything waiting is answered with `e`, and the application sees it.
    fn give_up(&mut self, e: Error) {
        self.attach.fail();
        for w in std::mem::take(&mut self.ack_waiters) {
            w.answer(Err(e.clone()));
        }
        self.output.push_back(Output::Failed(e));
    }

    /// Starts an attach when one is due, and sends the grouped acks when they are due.
    fn drive(&mut self, now: Instant) {
        if self.group.is_due(now) {
            self.flush_acks();
        }
        if let Some(epoch) = self.attach.poll_attach(now) {
            let args = self.subscribe_args();
            self.output.push_back(Output::Attach {
                epoch,
                args: Box::new(args),
            });
        }
    }

    /// The SUBSCRIBE of a new attach. What is queued now came on the old connection: the
    /// broker sends it again. A reader resumes after the last message it handed out: no
    /// duplicate, no gap.
    fn subscribe_args(&mut self) -> SubscribeArgs {
        self.bump_epoch();
        let last = self.shared.last_dequeued();
        let start = match (self.config.start, last) {
            (Some(_), Some(id)) => Some(StartPosition {
                // After the whole batch, when the last message was one.
                id: match self.last_whole_batch {
                    Some(whole) if whole.entry() == id => whole,
                    _ => id,
                },
                inclusive: false,
            }),
            (start, _) => start,
        };
        self.filter = start;
        SubscribeArgs {
            topic: self.topic.full_name().to_owned(),
            subscription: self.config.subscription.clone(),
            sub_type: self.config.sub_type.as_i32(),
            consumer_id: self.consumer_id,
            consumer_name: self.config.consumer_name.clone(),
            priority_level: self.config.priority_level,
            durable: self.config.durable,
            start_message_id: start.map(|s| {
                let mut id = s.id.to_proto();
                id.batch_size = None;
                id
            }),
            initial_position: match self.config.initial_position {
                InitialPosition::Latest => 0,
                InitialPosition::Earliest => 1,
            },
            properties: self.config.properties.clone(),
            read_compacted: self.config.read_compacted,
            replicate_subscription_state: self.config.extras.replicate_subscription_state,
            schema: self.config.schema.clone(),
            subscription_properties: self.config.extras.subscription_properties.clone(),
            key_shared_meta: self.config.extras.key_shared.clone(),
        }
    }

    /// The connection is gone or the broker closed the consumer: detach, attach again later.
    fn lost(&mut self, why: &str, now: Instant) {
        if self.attach.lost(now) {
            warn!(topic = %self.topic, reason = why, "consumer disconnected, resubscribing");
            self.transmit.clear();
            self.output.push_back(Output::Detach);
        }
    }

    /// Makes queued deliveries stale; returns how many there were (their permits come back).
    fn bump_epoch(&mut self) -> u32 {
        let _guard = self
            .shared
            .last_dequeued
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        self.acks.clear();
        self.chunks.clear();
        self.chunk_ids.clear();
        self.shared.in_queue_bytes.store(0, Ordering::Release);
        self.shared.in_queue.swap(0, Ordering::AcqRel)
    }

    /// Queues a command for the attached connection (dropped while detached: what it asked
    /// for is redone by the next SUBSCRIBE).
    fn send(&mut self, command: proto::BaseCommand) {
        if self.attach.is_attached() {
            self.transmit.push_back(command);
        }
    }

    /// Grants permits on the attached connection, or withholds them while paused (as the
    /// Java client: a paused consumer sends no FLOW; messages already queued are still
    /// received).
    fn grant(&mut self, permits: u32) {
        if !self.attach.is_attached() {
            return;
        }
        if self.paused {
            self.withheld = self.withheld.saturating_add(permits);
        } else {
            self.send(commands::flow(self.consumer_id, permits));
        }
    }

    /// Whether the application paused the consumer.
    #[cfg(test)]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn ack(&mut self, id: MessageId, cumulative: bool, waiter: Option<W>, now: Instant) {
        let batch_index_ack = self.config.batch_index_ack;
        if cumulative {
            let inside_batch = id.is_batch() && id.batch_index < id.batch_size.saturating_sub(1);
            let target = if inside_batch && batch_index_ack {
                let set = cumulative_ack_set(id.batch_index as usize, id.batch_size as usize);
                self.group.cumulative(id.entry(), set, now);
                Some(id.entry())
            } else if inside_batch {
                // Without batch-index acks, everything before this entry is done; the batch
                // is not.
                (id.entry_id > 0).then(|| {
                    let previous = MessageId::new(id.ledger_id, id.entry_id - 1);
                    self.group.cumulative(previous, Vec::new(), now);
                    previous
                })
            } else {
                self.group.cumulative(id.entry(), Vec::new(), now);
                Some(id.entry())
            };
            if let Some(target) = target {
                if !inside_batch {
                    self.acks.forget_up_to(&target);
                }
                self.unacked
                    .retain(|(l, e), _| (*l, *e) > (target.ledger_id, target.entry_id));
            }
        } else if id.first_chunk.is_some() {
            let ids = self
                .chunk_ids
                .remove(&(id.ledger_id, id.entry_id))
                .unwrap_or_else(|| vec![id.entry()]);
            for chunk in ids {
                self.unacked.remove(&(chunk.ledger_id, chunk.entry_id));
                self.group.individual(chunk.entry(), Vec::new(), now);
            }
        } else {
            match self.acks.ack_index(&id) {
                AckProgress::Entry(entry) => {
                    self.unacked.remove(&(entry.ledger_id, entry.entry_id));
                    self.group.individual(entry, Vec::new(), now);
                }
                AckProgress::Partial { entry, ack_set } if batch_index_ack => {
                    self.group.individual(entry, ack_set, now);
                }
                AckProgress::Partial { .. } => {}
            }
        }
        if let Some(waiter) = waiter {
            if self.group.is_empty() {
                waiter.answer(Ok(()));
            } else {
                self.ack_waiters.push(waiter);
            }
        }
    }

    /// An acknowledgement in a transaction, as the Java client sends it: at once, with a
    /// request id, and for a message of a batch always as a batch-index ack (`ack_set` and
    /// `batch_size`), whatever the consumer's batch-index setting. Locally the message counts
    /// as acknowledged (no ack-timeout redelivery); if the transaction aborts, the broker
    /// redelivers what it acknowledged.
    fn txn_ack(
        &mut self,
        id: MessageId,
        cumulative: bool,
        txn: crate::protocol::transaction::TxnId,
        waiter: W,
    ) {
        if !self.attach.is_attached() {
            waiter.answer(Err(Error::Connection(
                crate::error::ConnectionError::Closed,
            )));
            return;
        }
        let size = id.batch_size.max(0) as usize;
        let batched = id.is_batch() && size > 1;
        let index = id.batch_index.max(0) as usize;
        let ids = if cumulative {
            let mut data = id.to_entry_proto();
            if batched {
                data.ack_set = cumulative_ack_set(index, size);
                data.batch_size = Some(size as i32);
            }
            if !batched || index + 1 == size {
                self.acks.forget_up_to(&id.entry());
            }
            self.unacked
                .retain(|(l, e), _| (*l, *e) > (id.ledger_id, id.entry_id));
            vec![data]
        } else if id.first_chunk.is_some() {
            let chunks = self
                .chunk_ids
                .remove(&(id.ledger_id, id.entry_id))
                .unwrap_or_else(|| vec![id.entry()]);
            chunks
                .iter()
                .map(|c| {
                    self.unacked.remove(&(c.ledger_id, c.entry_id));
                    c.to_entry_proto()
                })
                .collect()
        } else {
            let mut data = id.to_entry_proto();
            if batched {
                data.ack_set = crate::protocol::acks::individual_ack_set(index, size);
                data.batch_size = Some(size as i32);
            }
            if let AckProgress::Entry(entry) = self.acks.ack_index(&id) {
                self.unacked.remove(&(entry.ledger_id, entry.entry_id));
            }
            vec![data]
        };
        self.output.push_back(Output::TxnAck {
            ids,
            cumulative,
            txn,
            waiter,
        });
    }

    /// Sends the grouped acks (with receipts: as requests whose answers go to the waiters).
    fn flush_acks(&mut self) {
        let flush = self.group.take();
        let waiters = std::mem::take(&mut self.ack_waiters);
        if flush.individual.is_empty() && flush.cumulative.is_none() {
            for w in waiters {
                w.answer(Ok(()));
            }
            return;
        }
        if !self.attach.is_attached() {
            // Not acknowledged on the broker: it redelivers them after the resubscription.
            for w in waiters {
                w.answer(Err(Error::Connection(
                    crate::error::ConnectionError::Closed,
                )));
            }
            return;
        }
        let mut acks = Vec::new();
        if !flush.individual.is_empty() {
            acks.push((flush.individual, false));
        }
        if let Some(c) = flush.cumulative {
            acks.push((vec![c], true));
        }
        if self.config.ack_receipts {
            self.output.push_back(Output::AckRequests { acks, waiters });
        } else {
            for (ids, cumulative) in acks {
                self.send(commands::ack(self.consumer_id, ids, cumulative, None));
            }
        }
    }

    /// Ack timeout: redelivers what the application received and left unacknowledged.
    fn redeliver_timed_out(&mut self, now: Instant) {
        let due: Vec<(i64, i64)> = self
            .unacked
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(k, _)| *k)
            .collect();
        if due.is_empty() {
            return;
        }
        for k in &due {
            self.unacked.remove(k);
            self.acks.forget(&MessageId::new(k.0, k.1));
        }
        debug!(topic = %self.topic, count = due.len(), "ack timeout: redelivering");
        if let Some(stats) = &self.shared.stats {
            stats.redelivery(now, due.len());
        }
        if let Some(m) = &self.shared.metrics {
            m.ack_timed_out(due.len() as u64);
        }
        if self.config.report_redeliveries {
            let mut ids: Vec<MessageId> = due
                .iter()
                .map(|(l, e)| MessageId::new(*l, *e).with_partition(self.partition))
                .collect();
            ids.sort();
            self.output.push_back(Output::Redelivered {
                ack_timeout: true,
                ids,
            });
        }
        self.redeliver(due);
    }

    fn redeliver_nacked(&mut self, now: Instant) {
        let mut due = BTreeSet::new();
        let mut nacked = BTreeSet::new();
        while let Some(entry) = self.nacks.first_entry() {
            if *entry.key() > now {
                break;
            }
            for id in entry.remove() {
                due.insert((id.ledger_id, id.entry_id));
                if self.config.report_redeliveries {
                    nacked.insert(id);
                }
            }
        }
        if !due.is_empty() {
            if let Some(stats) = &self.shared.stats {
                stats.redelivery(now, due.len());
            }
            if self.config.report_redeliveries {
                self.output.push_back(Output::Redelivered {
                    ack_timeout: false,
                    ids: nacked.into_iter().collect(),
                });
            }
            self.redeliver(due.into_iter().collect());
        }
    }

    /// Asks for these entries again: by id on Shared and Key_Shared, everything unacked
    /// otherwise.
    fn redeliver(&mut self, entries: Vec<(i64, i64)>) {
        if self.config.sub_type.redelivers_by_id() {
            let ids = entries
                .into_iter()
                .map(|(l, e)| MessageId::new(l, e).to_entry_proto())
                .collect();
            self.send(commands::redeliver(self.consumer_id, ids));
        } else {
            self.redeliver_everything();
        }
    }

    /// Exclusive and Failover: the broker redelivers every unacknowledged message, so what is
    /// queued locally is dropped (and its permits given back).
    fn redeliver_everything(&mut self) {
        self.flush_acks();
        let dropped = self.bump_epoch();
        self.nacks.clear();
        self.unacked.clear();
        self.send(commands::redeliver(self.consumer_id, Vec::new()));
        if dropped > 0 {
            self.grant(dropped);
        }
    }

    fn deliver(&mut self, item: Result<Message, Error>) {
        if let Ok(msg) = &item {
            if self.config.reader {
                // A reader's stream only moves forward: anything at or before what it already
                // delivered is a duplicate (pulsar-lite's Exclusive dispatch sends some twice).
                self.filter = Some(StartPosition {
                    id: msg.id,
                    inclusive: false,
                });
            }
            self.shared
                .in_queue_bytes
                .fetch_add(msg.payload.len() as u64, Ordering::AcqRel);
            self.shared.in_queue.fetch_add(1, Ordering::AcqRel);
        }
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        self.output.push_back(Output::Deliver(Delivery {
            child: self.index,
            epoch,
            item,
        }));
    }

    /// Chunks that will never make a message: ask the broker to send them again (Shared and
    /// Key_Shared; on Exclusive and Failover they come back with the next resubscription).
    fn drop_chunks(&mut self, ids: Vec<MessageId>, reason: &str) {
        if ids.is_empty() {
            return;
        }
        warn!(topic = %self.topic, count = ids.len(), reason, "chunks dropped");
        if self.config.sub_type.redelivers_by_id() {
            let ids = ids.iter().map(|i| i.to_entry_proto()).collect();
            self.send(commands::redeliver(self.consumer_id, ids));
        }
    }

    /// Gives back the permits of messages the application will never see.
    fn return_permits(&mut self, n: u32) {
        if n > 0 {
            if let Some(r) = self.shared.flow.on_consumed(n) {
                self.grant(r.permits);
            }
        }
    }

    /// Acknowledges an entry the application must never see, with the reason, so that it is
    /// not redelivered forever (as the official clients do).
    fn discard(&mut self, entry: MessageId, reason: proto::command_ack::ValidationError) {
        let mut ack = commands::ack(self.consumer_id, vec![entry.to_entry_proto()], false, None);
        if let Some(a) = ack.ack.as_mut() {
            a.validation_error = Some(reason as i32);
        }
        self.send(ack);
    }

    /// A message the broker pushed while the queue is past its bound: handed back, not
    /// dropped. Shared and Key_Shared ask for that entry again; Exclusive and Failover cannot
    /// redeliver one entry alone, so everything unacknowledged comes back (the local queue
    /// is dropped, and its permits returned).
    fn hand_back(&mut self, entry: MessageId) {
        warn!(topic = %self.topic, id = %entry, limit = self.queue_limit, "the broker pushed beyond the granted permits: handing the message back");
        if self.config.sub_type.redelivers_by_id() {
            self.send(commands::redeliver(
                self.consumer_id,
                vec![entry.to_entry_proto()],
            ));
        } else {
            self.redeliver_everything();
        }
    }

    /// Decrypts an entry's payload with the consumer's key reader; the reason when it cannot.
    #[cfg(feature = "encryption")]
    fn decrypt(
        &mut self,
        md: &proto::MessageMetadata,
        data: &bytes::Bytes,
        now: Instant,
    ) -> std::result::Result<bytes::Bytes, String> {
        match self.decryptor.as_mut() {
            Some(d) => d.decrypt(md, data, now).map_err(|e| e.to_string()),
            None => Err("the consumer has no crypto key reader".into()),
        }
    }

    #[cfg(not(feature = "encryption"))]
    fn decrypt(
        &mut self,
        _md: &proto::MessageMetadata,
        _data: &bytes::Bytes,
        _now: Instant,
    ) -> std::result::Result<bytes::Bytes, String> {
        Err("pulsar-wire was built without the `encryption` feature".into())
    }

    /// An entry this consumer cannot decrypt, handled as its crypto failure action says.
    fn undecryptable(
        &mut self,
        entry: MessageId,
        entries: u32,
        data: bytes::Bytes,
        md: proto::MessageMetadata,
        redelivery_count: u32,
        reason: String,
    ) {
        match self.config.crypto_failure_action {
            ConsumerCryptoFailureAction::Fail => {
                // Not delivered, not acknowledged: it stays on the subscription for a consumer
                // that can decrypt it. The application is told.
                warn!(topic = %self.topic, id = %entry, %reason, "encrypted message not delivered: cannot decrypt it");
                self.return_permits(entries);
                self.deliver(Err(Error::Encrypted {
                    topic: self.topic.full_name().to_owned(),
                    id: entry,
                    reason,
                }));
            }
            ConsumerCryptoFailureAction::Discard => {
                warn!(topic = %self.topic, id = %entry, %reason, "encrypted message discarded (crypto failure action Discard)");
                self.discard(entry, proto::command_ack::ValidationError::DecryptionError);
                self.return_permits(entries);
            }
            ConsumerCryptoFailureAction::Consume => {
                // Delivered as it is: the encrypted (and maybe compressed) entry, batch and
                // all, flagged for the application to decrypt.
                #[cfg(feature = "encryption")]
                let context = crate::crypto::EncryptionContext::from_metadata(&md).map(Arc::new);
                let batch = md.num_messages_in_batch.filter(|n| *n > 0);
                let mut msg = message_from(
                    entry,
                    &self.topic_str,
                    data,
                    md,
                    redelivery_count,
                    self.index,
                );
                msg.encrypted = true;
                #[cfg(feature = "encryption")]
                {
                    msg.encryption = context;
                }
                self.deliver(Ok(msg));
                if let (Some(n), true) = (batch, self.config.reader) {
                    // The whole batch was delivered: a reader goes on after its last index,
                    // not before its first (the entry sent again is a duplicate).
                    let whole = entry.with_batch(n - 1, n);
                    self.filter = Some(StartPosition {
                        id: whole,
                        inclusive: false,
                    });
                    self.last_whole_batch = Some(whole);
                }
                // One message stands for the whole entry: the permits of the others come back.
                self.return_permits(entries.saturating_sub(1));
            }
        }
    }

    fn handle_message(
        &mut self,
        command: proto::CommandMessage,
        payload: wire::Payload,
        now: Instant,
    ) {
        let entry = MessageId::from_proto(&command.message_id)
            .entry()
            .with_partition(self.partition);
        let entries = payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32;
        if let Some(filter) = self.filter {
            // A whole entry before the start (a batch's last index decides).
            let last_index = payload.metadata.num_messages_in_batch.map_or(-1, |n| n - 1);
            if filter.skips(&entry.with_batch(last_index, 0)) {
                if !self.config.durable {
                    // Before a reader's start (or what it already delivered): acknowledged on
                    // its non-durable cursor, so that a broker does not send it again.
                    self.group.individual(entry, Vec::new(), now);
                }
                self.return_permits(entries);
                return;
            }
        }
        if self.shared.in_queue.load(Ordering::Acquire) >= self.queue_limit {
            self.hand_back(entry);
            return;
        }
        let redelivery_count = command.redelivery_count.unwrap_or(0);
        let md = payload.metadata;
        let mut data = payload.data;
        if !md.encryption_keys.is_empty() {
            match self.decrypt(&md, &data, now) {
                Ok(plain) => data = plain,
                Err(reason) => {
                    self.undecryptable(entry, entries, data, md, redelivery_count, reason);
                    return;
                }
            }
        }
        let mut entry = entry;
        let mut max_size = self.max_frame_size;
        if let (Some(uuid), Some(n)) = (md.uuid.as_deref(), md.num_chunks_from_msg) {
            if n > 1 {
                let (outcome, evicted) = self.chunks.add(
                    ChunkInfo {
                        uuid,
                        chunk_id: md.chunk_id.unwrap_or(0).max(0) as u32,
                        num_chunks: n as u32,
                        total: md.total_chunk_msg_size.unwrap_or(0).max(0) as usize,
                    },
                    entry,
                    &data,
                    now,
                );
                self.drop_chunks(evicted, "too many incomplete chunked messages");
                match outcome {
                    ChunkOutcome::Pending => {
                        self.return_permits(1);
                        return;
                    }
                    ChunkOutcome::Discarded { ids, reason } => {
                        self.drop_chunks(ids, &reason);
                        self.return_permits(1);
                        return;
                    }
                    ChunkOutcome::Complete { payload, ids } => {
                        if let Some(first) = ids.first() {
                            entry.first_chunk = Some(crate::wire::ChunkStart {
                                ledger_id: first.ledger_id,
                                entry_id: first.entry_id,
                            });
                        }
                        self.chunk_ids
                            .insert((entry.ledger_id, entry.entry_id), ids);
                        data = payload;
                        max_size = self.config.max_chunked_size;
                    }
                }
            }
        }
        let data = match md.compression.unwrap_or(0) {
            0 => data,
            wire_codec => {
                let decoded = Compression::from_wire(wire_codec)
                    .ok_or(CompressionError::Unsupported(wire_codec))
                    .and_then(|codec| {
                        compression::decompress(
                            codec,
                            &data,
                            md.uncompressed_size.unwrap_or(0) as usize,
                            max_size,
                        )
                    });
                match decoded {
                    Ok(data) => data,
                    Err(e) => {
                        // As the official clients: discard it on the broker (ack with a
                        // validation error), so that it is not redelivered forever.
                        warn!(topic = %self.topic, id = %entry, error = %e, "undecodable message discarded");
                        self.discard(
                            entry,
                            proto::command_ack::ValidationError::DecompressionError,
                        );
                        self.return_permits(entries);
                        return;
                    }
                }
            }
        };
        let Some(count) = md.num_messages_in_batch else {
            let msg = message_from(
                entry,
                &self.topic_str,
                data,
                md,
                redelivery_count,
                self.index,
            );
            self.deliver(Ok(msg));
            return;
        };
        let count = u32::try_from(count).unwrap_or(0);
        self.acks
            .on_delivery(entry, count as usize, &command.ack_set);
        let producer_name: Arc<str> = Arc::from(md.producer_name.as_str());
        let schema_version = md
            .schema_version
            .clone()
            .filter(|v| !v.is_empty())
            .map(crate::schema::SchemaVersion::new);
        let mut delivered = 0u32;
        for (i, item) in wire::parse_batch(data, count, self.max_frame_size).enumerate() {
            let single = match item {
                Ok(single) => single,
                Err(e) => {
                    warn!(topic = %self.topic, id = %entry, error = %e, "corrupt batch: rest dropped");
                    break;
                }
            };
            if !is_unacked(&command.ack_set, i) || single.metadata.compacted_out == Some(true) {
                continue;
            }
            if self
                .filter
                .is_some_and(|f| f.skips(&entry.with_batch(i as i32, count as i32)))
            {
                continue;
            }
            let sm = single.metadata;
            let msg = Message {
                id: entry.with_batch(i as i32, count as i32),
                topic: self.topic_str.clone(),
                payload: single.payload,
                properties: sm
                    .properties
                    .into_iter()
                    .map(|kv| (kv.key, kv.value))
                    .collect(),
                partition_key: sm.partition_key,
                ordering_key: sm.ordering_key,
                event_time: sm.event_time.filter(|t| *t > 0),
                publish_time: md.publish_time,
                producer_name: producer_name.clone(),
                // Wrapping: the broker's metadata may name any sequence id.
                sequence_id: sm
                    .sequence_id
                    .unwrap_or(md.sequence_id.wrapping_add(i as u64)),
                redelivery_count,
                child: self.index,
                encrypted: false,
                key_b64: sm.partition_key_b64_encoded.unwrap_or(false),
                schema_version: schema_version.clone(),
                #[cfg(feature = "encryption")]
                encryption: None,
            };
            self.deliver(Ok(msg));
            delivered += 1;
        }
        // `entries`, not `count`: a batch that claims no message (0, or negative) still took
        // a permit.
        self.return_permits(entries.saturating_sub(delivered));
    }
}

/// A message (not from a batch) from its entry's metadata.
fn message_from(
    id: MessageId,
    topic: &Arc<str>,
    payload: bytes::Bytes,
    md: proto::MessageMetadata,
    redelivery_count: u32,
    child: usize,
) -> Message {
    Message {
        id,
        topic: topic.clone(),
        payload,
        properties: md
            .properties
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect(),
        partition_key: md.partition_key,
        ordering_key: md.ordering_key,
        event_time: md.event_time.filter(|t| *t > 0),
        publish_time: md.publish_time,
        producer_name: Arc::from(md.producer_name.as_str()),
        sequence_id: md.sequence_id,
        redelivery_count,
        child,
        encrypted: false,
        key_b64: md.partition_key_b64_encoded.unwrap_or(false),
        schema_version: md
            .schema_version
            .filter(|v| !v.is_empty())
            .map(crate::schema::SchemaVersion::new),
        #[cfg(feature = "encryption")]
        encryption: None,
    }
}
