//! The task behind one partition (or one topic) of a consumer: the subscription on the broker,
//! flow permits, batch unpacking, acks, negative-ack timers, and resubscribing when the
//! connection drops.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::builder::{InitialPosition, SubscriptionType};
use super::chunks::{ChunkAssembler, ChunkInfo, ChunkOutcome};
use crate::client::PulsarClient;
use crate::compression::{self, Compression, CompressionError};
use crate::connection::Connection;
use crate::error::{Error, Result, ServerErrorCode};
use crate::message::Message;
use crate::protocol::acks::{
    cumulative_ack_set, is_unacked, AckGroup, AckProgress, BatchAckTracker,
};
use crate::protocol::backoff::Backoff;
use crate::protocol::commands::{self, SubscribeArgs};
use crate::protocol::connection::ConsumerEvent;
use crate::protocol::flow::FlowControl;
use crate::protocol::topic::TopicName;
use crate::task::{is_permanent, next_event, queued_event, sleep_until_opt, DRAIN};
use crate::wire::{self, proto, MessageId};

/// Per-partition consumer settings.
#[derive(Debug, Clone)]
pub(crate) struct ChildConfig {
    pub subscription: String,
    pub sub_type: SubscriptionType,
    pub initial_position: InitialPosition,
    pub consumer_name: Option<String>,
    pub receiver_queue_size: u32,
    pub nack_delay: Duration,
    pub priority_level: Option<i32>,
    pub properties: Vec<(String, String)>,
    /// For readers: a non-durable subscription starting at this id (inclusive or not). After a
    /// reconnect it resumes after the last message handed to the application.
    pub start: Option<StartPosition>,
    /// Whether the subscription is durable (false for readers).
    pub durable: bool,
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
}

/// Where a non-durable subscription (a reader) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartPosition {
    pub id: MessageId,
    pub inclusive: bool,
}

impl StartPosition {
    /// Whether a message with this id comes before the start and must be skipped.
    fn skips(&self, id: &MessageId) -> bool {
        if self.id == MessageId::EARLIEST || self.id.ledger_id == i64::MAX {
            return false;
        }
        let key = |m: &MessageId| (m.ledger_id, m.entry_id, m.batch_index.max(-1));
        if self.inclusive {
            key(id) < key(&self.id)
        } else {
            key(id) <= key(&self.id)
        }
    }
}

/// A message on its way to the application, stamped with the connection epoch it came on.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub child: usize,
    epoch: u64,
    msg: Message,
}

#[derive(Debug)]
enum Cmd {
    Flow(u32),
    Ack {
        id: MessageId,
        cumulative: bool,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Nack {
        id: MessageId,
        redelivery_count: u32,
    },
    /// The application received this entry (ack-timeout tracking).
    Received(MessageId),
    Seek(SeekTarget, oneshot::Sender<Result<()>>),
    LastMessageId(oneshot::Sender<Result<LastMessageId>>),
    RedeliverAll,
    Unsubscribe(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

/// Where a seek moves the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekTarget {
    /// To this message (it is the next one delivered).
    Id(MessageId),
    /// To the first message published at or after this time (ms since the epoch).
    PublishTime(u64),
}

/// The broker's answer to GET_LAST_MESSAGE_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastMessageId {
    pub last: MessageId,
    pub mark_delete: Option<MessageId>,
}

/// State shared by the handle and the task.
#[derive(Debug)]
struct ChildShared {
    flow: FlowControl,
    /// Bumped whenever queued deliveries become stale (resubscribe, redeliver-all).
    epoch: AtomicU64,
    /// Deliveries of the current epoch not yet taken by the application.
    in_queue: AtomicU32,
    reached_end: AtomicBool,
    active: AtomicBool,
    /// The last message handed to the application (readers resume after it).
    last_dequeued: std::sync::Mutex<Option<MessageId>>,
    /// Whether `ack` waits for the broker's confirmation.
    ack_receipts: bool,
    /// Whether the task wants to know what the application received (ack timeout).
    track_received: bool,
}

/// The handle on one partition's task.
#[derive(Debug, Clone)]
pub(crate) struct ChildHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<ChildShared>,
    partition: i32,
    start: Option<StartPosition>,
}

fn closed() -> Error {
    Error::Closed("consumer")
}

impl ChildHandle {
    /// Accepts a delivery taken by the application: `None` if it is stale. Counts the permit.
    pub fn accept(&self, d: Delivery) -> Option<Message> {
        {
            // The epoch check and the last-dequeued update happen under the lock the task
            // takes to bump the epoch, so a reader never resumes before a message it handed out.
            let mut last = self
                .shared
                .last_dequeued
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if d.epoch != self.shared.epoch.load(Ordering::Acquire) {
                return None;
            }
            *last = Some(d.msg.id);
        }
        self.shared.in_queue.fetch_sub(1, Ordering::AcqRel);
        if self.shared.track_received {
            let _ = self.tx.send(Cmd::Received(d.msg.id));
        }
        if let Some(permits) = self.shared.flow.on_consumed(1) {
            let _ = self.tx.send(Cmd::Flow(permits));
        }
        Some(d.msg)
    }

    /// Queues an ack; with ack receipts on, waits for the broker's answer.
    pub async fn ack(&self, id: MessageId, cumulative: bool) -> Result<()> {
        if !self.shared.ack_receipts {
            return self
                .tx
                .send(Cmd::Ack {
                    id,
                    cumulative,
                    reply: None,
                })
                .map_err(|_| closed());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Ack {
                id,
                cumulative,
                reply: Some(reply),
            })
            .map_err(|_| closed())?;
        rx.await.unwrap_or(Err(closed()))
    }

    pub fn nack(&self, id: MessageId, redelivery_count: u32) -> Result<()> {
        self.tx
            .send(Cmd::Nack {
                id,
                redelivery_count,
            })
            .map_err(|_| closed())
    }

    pub fn redeliver_all(&self) -> Result<()> {
        self.tx.send(Cmd::RedeliverAll).map_err(|_| closed())
    }

    pub async fn seek(&self, target: SeekTarget) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Seek(target, reply))
            .map_err(|_| closed())?;
        rx.await.unwrap_or(Err(closed()))
    }

    pub async fn last_message_id(&self) -> Result<LastMessageId> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::LastMessageId(reply))
            .map_err(|_| closed())?;
        rx.await.unwrap_or(Err(closed()))
    }

    /// The partition index (−1 for a non-partitioned topic).
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// A reader's start position.
    pub fn start(&self) -> Option<StartPosition> {
        self.start
    }

    /// The last message handed to the application.
    pub fn last_dequeued(&self) -> Option<MessageId> {
        self.shared.last_dequeued.lock().map_or(None, |l| *l)
    }

    pub async fn unsubscribe(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Unsubscribe(reply))
            .map_err(|_| closed())?;
        rx.await.unwrap_or(Err(closed()))
    }

    pub async fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Close(reply)).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    pub fn queued(&self) -> usize {
        self.shared.in_queue.load(Ordering::Acquire) as usize
    }

    pub fn reached_end(&self) -> bool {
        self.shared.reached_end.load(Ordering::Acquire)
    }

    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }
}

/// Subscribes on the broker, then starts the task.
pub(crate) async fn start(
    client: PulsarClient,
    topic: TopicName,
    partition: i32,
    index: usize,
    config: ChildConfig,
    out: mpsc::UnboundedSender<Delivery>,
) -> Result<ChildHandle> {
    let shared = Arc::new(ChildShared {
        flow: FlowControl::new(config.receiver_queue_size),
        epoch: AtomicU64::new(0),
        in_queue: AtomicU32::new(0),
        reached_end: AtomicBool::new(false),
        active: AtomicBool::new(false),
        last_dequeued: std::sync::Mutex::new(None),
        ack_receipts: config.ack_receipts,
        track_received: config.ack_timeout.is_some(),
    });
    let consumer_id = client.inner.next_id();
    let config_group = (config.ack_group_delay, config.ack_group_max);
    let task_start = config.start;
    let task_chunks = (
        config.max_pending_chunked,
        config.chunk_expiry,
        config.max_chunked_size,
    );
    let mut task = ChildTask {
        topic_str: Arc::from(topic.full_name()),
        topic,
        partition,
        index,
        consumer_id,
        client,
        config,
        shared: shared.clone(),
        out,
        connection: None,
        events: None,
        acks: BatchAckTracker::default(),
        nacks: BTreeMap::new(),
        backoff: Backoff::default(),
        reconnect_at: None,
        max_frame_size: wire::DEFAULT_MAX_FRAME_SIZE,
        filter: None,
        group: AckGroup::new(config_group.0, config_group.1),
        ack_waiters: Vec::new(),
        unacked: std::collections::HashMap::new(),
        chunks: ChunkAssembler::new(task_chunks.0, task_chunks.1, task_chunks.2),
        chunk_ids: std::collections::HashMap::new(),
    };
    task.attach().await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(task.run(rx));
    Ok(ChildHandle {
        tx,
        shared,
        partition,
        start: task_start,
    })
}

struct ChildTask {
    client: PulsarClient,
    topic: TopicName,
    topic_str: Arc<str>,
    partition: i32,
    index: usize,
    consumer_id: u64,
    config: ChildConfig,
    shared: Arc<ChildShared>,
    out: mpsc::UnboundedSender<Delivery>,
    connection: Option<Connection>,
    events: Option<mpsc::UnboundedReceiver<ConsumerEvent>>,
    acks: BatchAckTracker,
    nacks: BTreeMap<Instant, Vec<MessageId>>,
    backoff: Backoff,
    reconnect_at: Option<Instant>,
    max_frame_size: usize,
    /// Readers: messages before this position are dropped (the broker may resend them).
    filter: Option<StartPosition>,
    /// Acks waiting to be sent together.
    group: AckGroup,
    /// Callers waiting for the broker to confirm the acks in `group`.
    ack_waiters: Vec<oneshot::Sender<Result<()>>>,
    /// Ack timeout: entries the application received and has not acknowledged, by deadline.
    unacked: std::collections::HashMap<(i64, i64), Instant>,
    /// Incomplete chunked messages.
    chunks: ChunkAssembler,
    /// The chunk ids of delivered chunked messages (by their last chunk), acked together.
    chunk_ids: std::collections::HashMap<(i64, i64), Vec<MessageId>>,
}

impl ChildTask {
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
        self.shared.in_queue.swap(0, Ordering::AcqRel)
    }

    fn send(&mut self, command: proto::BaseCommand) {
        if let Some(conn) = &self.connection {
            if conn.send(command).is_err() {
                self.detach("connection closed");
            }
        }
    }

    /// Looks the topic up and subscribes; then grants the whole receiver queue.
    async fn attach(&mut self) -> Result<()> {
        let inner = self.client.inner.clone();
        let conn = inner.lookup(&self.topic).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        conn.register_consumer(self.consumer_id, tx)?;
        // What is queued now came on the old connection: the broker sends it again. A reader
        // resumes after the last message it handed out: no duplicate, no gap.
        self.bump_epoch();
        let last = self.shared.last_dequeued.lock().map_or(None, |l| *l);
        let start = match (self.config.start, last) {
            (Some(_), Some(id)) => Some(StartPosition {
                id,
                inclusive: false,
            }),
            (start, _) => start,
        };
        self.filter = start;
        let request_id = inner.next_id();
        let args = SubscribeArgs {
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
            read_compacted: false,
            replicate_subscription_state: false,
            schema: self.config.schema.clone(),
        };
        let result = conn
            .request(
                request_id,
                "subscribe",
                commands::subscribe(&args, request_id),
                Some(inner.operation_timeout),
            )
            .await;
        if let Err(e) = result {
            if matches!(e, Error::Timeout { .. }) {
                let close_id = inner.next_id();
                let _ = conn.send(commands::close_consumer(self.consumer_id, close_id));
            }
            conn.unregister_consumer(self.consumer_id);
            return Err(e);
        }
        let permits = self.shared.flow.initial_permits();
        conn.send(commands::flow(self.consumer_id, permits))?;
        self.max_frame_size = wire::max_frame_size_for(conn.max_message_size());
        info!(
            topic = %self.topic,
            subscription = %self.config.subscription,
            connection = conn.id(),
            permits,
            "subscribed"
        );
        self.connection = Some(conn);
        self.events = Some(rx);
        self.backoff.reset();
        self.reconnect_at = None;
        Ok(())
    }

    fn detach(&mut self, why: &str) {
        if let Some(conn) = self.connection.take() {
            conn.unregister_consumer(self.consumer_id);
            warn!(topic = %self.topic, reason = why, "consumer disconnected, resubscribing");
        }
        self.events = None;
        if self.reconnect_at.is_none() {
            self.reconnect_at = Some(Instant::now() + self.backoff.next_delay_random());
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let nack_due = self.nacks.keys().next().copied();
            let ack_timeout_due = self.unacked.values().min().copied();
            tokio::select! {
                cmd = commands.recv() => {
                    if self.on_command(cmd).await.is_break() {
                        return;
                    }
                    // Take what else is queued in this turn: the select's timers are re-armed
                    // once per turn, not once per message.
                    for _ in 1..DRAIN {
                        let Ok(cmd) = commands.try_recv() else { break };
                        if self.on_command(Some(cmd)).await.is_break() {
                            return;
                        }
                    }
                }
                event = next_event(&mut self.events, ConsumerEvent::ConnectionClosed) => {
                    self.handle_event(event);
                    for _ in 1..DRAIN {
                        let Some(event) = queued_event(&mut self.events) else { break };
                        self.handle_event(event);
                    }
                }
                _ = sleep_until_opt(nack_due) => self.redeliver_nacked(),
                _ = sleep_until_opt(self.group.deadline().map(Instant::from_std)) => self.flush_acks(),
                _ = sleep_until_opt(ack_timeout_due) => self.redeliver_timed_out(),
                _ = sleep_until_opt(self.chunks.next_expiry().map(Instant::from_std)) => {
                    let ids = self.chunks.expire(std::time::Instant::now());
                    self.drop_chunks(ids, "incomplete chunked message expired");
                }
                _ = sleep_until_opt(self.reconnect_at), if self.connection.is_none() => {
                    self.reconnect_at = None;
                    if let Err(e) = self.attach().await {
                        if is_permanent(&e, &[ServerErrorCode::SubscriptionNotFound]) {
                            warn!(topic = %self.topic, error = %e, "consumer cannot resubscribe");
                            return;
                        }
                        let delay = self.backoff.next_delay_random();
                        debug!(topic = %self.topic, error = %e, ?delay, "resubscribe failed");
                        self.reconnect_at = Some(Instant::now() + delay);
                    }
                }
            }
        }
    }

    /// One command from the handles; `Break` when the task must end (closed or unsubscribed).
    async fn on_command(&mut self, cmd: Option<Cmd>) -> ControlFlow<()> {
        match cmd {
            Some(Cmd::Close(reply)) => {
                let _ = reply.send(self.close_on_broker(false).await);
                return ControlFlow::Break(());
            }
            Some(Cmd::Unsubscribe(reply)) => {
                let result = self.close_on_broker(true).await;
                let failed = result.is_err();
                let _ = reply.send(result);
                if !failed {
                    return ControlFlow::Break(());
                }
            }
            Some(Cmd::Seek(target, reply)) => {
                let _ = reply.send(self.seek(target).await);
            }
            Some(Cmd::LastMessageId(reply)) => self.last_message_id(reply),
            Some(cmd) => self.handle_command(cmd),
            None => {
                let _ = self.close_on_broker(false).await;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn handle_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Flow(permits) => self.send(commands::flow(self.consumer_id, permits)),
            Cmd::Ack {
                id,
                cumulative,
                reply,
            } => self.ack(id, cumulative, reply),
            Cmd::Nack {
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
                self.nacks
                    .entry(Instant::now() + delay)
                    .or_default()
                    .push(id.entry());
            }
            Cmd::Received(id) => {
                if let Some(timeout) = self.config.ack_timeout {
                    self.unacked
                        .entry((id.ledger_id, id.entry_id))
                        .or_insert_with(|| Instant::now() + timeout);
                }
            }
            Cmd::RedeliverAll => self.redeliver_everything(),
            Cmd::Unsubscribe(_) | Cmd::Close(_) | Cmd::Seek(..) | Cmd::LastMessageId(_) => {}
        }
    }

    fn ack(&mut self, id: MessageId, cumulative: bool, reply: Option<oneshot::Sender<Result<()>>>) {
        let now = std::time::Instant::now();
        let batch_index_ack = self.config.batch_index_ack;
        if cumulative {
            let inside_batch = id.is_batch() && id.batch_index < id.batch_size - 1;
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
        if let Some(reply) = reply {
            if self.group.is_empty() {
                let _ = reply.send(Ok(()));
            } else {
                self.ack_waiters.push(reply);
            }
        }
        if self.group.is_due(now) {
            self.flush_acks();
        }
    }

    /// Sends the grouped acks (with receipts: as requests whose answers go to the waiters).
    fn flush_acks(&mut self) {
        let flush = self.group.take();
        let waiters = std::mem::take(&mut self.ack_waiters);
        if flush.individual.is_empty() && flush.cumulative.is_none() {
            for w in waiters {
                let _ = w.send(Ok(()));
            }
            return;
        }
        let Some(conn) = self.connection.clone() else {
            for w in waiters {
                let _ = w.send(Err(Error::Connection(
                    crate::error::ConnectionError::Closed,
                )));
            }
            return;
        };
        let mut commands_out = Vec::new();
        if !flush.individual.is_empty() {
            commands_out.push((flush.individual, false));
        }
        if let Some(c) = flush.cumulative {
            commands_out.push((vec![c], true));
        }
        if !self.config.ack_receipts {
            for (ids, cumulative) in commands_out {
                if conn
                    .send(commands::ack(self.consumer_id, ids, cumulative, None))
                    .is_err()
                {
                    self.detach("connection closed");
                    return;
                }
            }
            return;
        }
        let inner = self.client.inner.clone();
        let consumer_id = self.consumer_id;
        tokio::spawn(async move {
            let mut result = Ok(());
            for (ids, cumulative) in commands_out {
                let id = inner.next_id();
                let command = commands::ack(consumer_id, ids, cumulative, Some(id));
                if let Err(e) = conn
                    .request(id, "acknowledge", command, Some(inner.operation_timeout))
                    .await
                {
                    result = Err(e);
                }
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
        });
    }

    /// SEEK: moves the subscription, drops what is queued locally and subscribes again (the
    /// broker disconnects a consumer after a seek; pulsar-lite does not, so the client does).
    async fn seek(&mut self, target: SeekTarget) -> Result<()> {
        self.flush_acks();
        let conn = self.connection.clone().ok_or_else(|| {
            Error::NotAllowed("not connected: seek again after reconnecting".into())
        })?;
        let inner = self.client.inner.clone();
        let request_id = inner.next_id();
        let mut command = commands::seek(self.consumer_id, request_id);
        if let Some(seek) = command.seek.as_mut() {
            match target {
                SeekTarget::Id(id) => {
                    let mut data = id.to_proto();
                    data.batch_size = None;
                    seek.message_id = Some(data);
                }
                SeekTarget::PublishTime(t) => seek.message_publish_time = Some(t),
            }
        }
        conn.request(request_id, "seek", command, Some(inner.operation_timeout))
            .await?;
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
        let close_id = inner.next_id();
        let _ = conn.send(commands::close_consumer(self.consumer_id, close_id));
        conn.unregister_consumer(self.consumer_id);
        self.connection = None;
        self.events = None;
        self.bump_epoch();
        self.reconnect_at = Some(Instant::now());
        Ok(())
    }

    /// GET_LAST_MESSAGE_ID, answered without blocking the task.
    fn last_message_id(&mut self, reply: oneshot::Sender<Result<LastMessageId>>) {
        let Some(conn) = self.connection.clone() else {
            let _ = reply.send(Err(Error::NotAllowed(
                "not connected: retry after reconnecting".into(),
            )));
            return;
        };
        let inner = self.client.inner.clone();
        let consumer_id = self.consumer_id;
        let partition = self.partition;
        tokio::spawn(async move {
            let id = inner.next_id();
            let result = conn
                .request(
                    id,
                    "get last message id",
                    commands::get_last_message_id(consumer_id, id),
                    Some(inner.operation_timeout),
                )
                .await
                .map(|resp| {
                    let r = resp.get_last_message_id_response.unwrap_or_default();
                    LastMessageId {
                        last: MessageId::from_proto(&r.last_message_id).with_partition(partition),
                        mark_delete: r
                            .consumer_mark_delete_position
                            .as_ref()
                            .map(|m| MessageId::from_proto(m).with_partition(partition)),
                    }
                });
            let _ = reply.send(result);
        });
    }

    /// Ack timeout: redelivers what the application received and left unacknowledged.
    fn redeliver_timed_out(&mut self) {
        let now = Instant::now();
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
        self.redeliver(due);
    }

    fn redeliver_nacked(&mut self) {
        let now = Instant::now();
        let mut due = BTreeSet::new();
        while let Some(entry) = self.nacks.first_entry() {
            if *entry.key() > now {
                break;
            }
            for id in entry.remove() {
                due.insert((id.ledger_id, id.entry_id));
            }
        }
        if due.is_empty() {
            return;
        }
        self.redeliver(due.into_iter().collect());
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
            self.send(commands::flow(self.consumer_id, dropped));
        }
    }

    fn handle_event(&mut self, event: ConsumerEvent) {
        match event {
            ConsumerEvent::Message { command, payload } => self.handle_message(command, payload),
            ConsumerEvent::ReachedEndOfTopic => {
                info!(topic = %self.topic, "reached the end of the topic");
                self.shared.reached_end.store(true, Ordering::Release);
            }
            ConsumerEvent::ActiveConsumerChange(active) => {
                debug!(topic = %self.topic, active, "active consumer change");
                self.shared.active.store(active, Ordering::Release);
            }
            ConsumerEvent::Closed { .. } => self.detach("closed by the broker"),
            ConsumerEvent::Migrated { .. } => self.detach("topic migrated"),
            ConsumerEvent::ConnectionClosed(e) => self.detach(&e.to_string()),
        }
    }

    fn deliver(&mut self, msg: Message) {
        if !self.config.durable {
            // A reader's stream only moves forward: anything at or before what it already
            // delivered is a duplicate (pulsar-lite's Exclusive dispatch sends some twice).
            self.filter = Some(StartPosition {
                id: msg.id,
                inclusive: false,
            });
        }
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        self.shared.in_queue.fetch_add(1, Ordering::AcqRel);
        let _ = self.out.send(Delivery {
            child: self.index,
            epoch,
            msg,
        });
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
            if let Some(p) = self.shared.flow.on_consumed(n) {
                self.send(commands::flow(self.consumer_id, p));
            }
        }
    }

    fn handle_message(&mut self, command: proto::CommandMessage, payload: wire::Payload) {
        let entry = MessageId::from_proto(&command.message_id)
            .entry()
            .with_partition(self.partition);
        if let Some(filter) = self.filter {
            // A whole entry before the start (a batch's last index decides).
            let last_index = payload.metadata.num_messages_in_batch.map_or(-1, |n| n - 1);
            if filter.skips(&entry.with_batch(last_index, 0)) {
                self.return_permits(
                    payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32
                );
                return;
            }
        }
        let redelivery_count = command.redelivery_count.unwrap_or(0);
        // A broker that ignores flow control cannot make the queue grow without bound.
        let limit = self
            .shared
            .flow
            .queue_size()
            .saturating_mul(2)
            .saturating_add(1000);
        if self.shared.in_queue.load(Ordering::Acquire) >= limit {
            warn!(topic = %self.topic, "the broker pushed beyond the granted permits: message dropped");
            return;
        }
        let md = payload.metadata;
        let entries = md.num_messages_in_batch.unwrap_or(1).max(1) as u32;
        let mut data = payload.data;
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
                    std::time::Instant::now(),
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
                let max = max_size;
                let decoded = Compression::from_wire(wire_codec)
                    .ok_or(CompressionError::Unsupported(wire_codec))
                    .and_then(|codec| {
                        compression::decompress(
                            codec,
                            &data,
                            md.uncompressed_size.unwrap_or(0) as usize,
                            max,
                        )
                    });
                match decoded {
                    Ok(data) => data,
                    Err(e) => {
                        // As the official clients: discard it on the broker (ack with a
                        // validation error), so that it is not redelivered forever.
                        warn!(topic = %self.topic, id = %entry, error = %e, "undecodable message discarded");
                        let mut ack = commands::ack(
                            self.consumer_id,
                            vec![entry.to_entry_proto()],
                            false,
                            None,
                        );
                        if let Some(a) = ack.ack.as_mut() {
                            a.validation_error = Some(
                                proto::command_ack::ValidationError::DecompressionError as i32,
                            );
                        }
                        self.send(ack);
                        self.return_permits(entries);
                        return;
                    }
                }
            }
        };
        let producer_name: Arc<str> = Arc::from(md.producer_name.as_str());
        let Some(count) = md.num_messages_in_batch else {
            let msg = Message {
                id: entry,
                topic: self.topic_str.clone(),
                payload: data,
                properties: md
                    .properties
                    .into_iter()
                    .map(|kv| (kv.key, kv.value))
                    .collect(),
                partition_key: md.partition_key,
                ordering_key: md.ordering_key,
                event_time: md.event_time.filter(|t| *t > 0),
                publish_time: md.publish_time,
                producer_name,
                sequence_id: md.sequence_id,
                redelivery_count,
                child: self.index,
            };
            self.deliver(msg);
            return;
        };
        let count = u32::try_from(count).unwrap_or(0);
        self.acks
            .on_delivery(entry, count as usize, &command.ack_set);
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
                sequence_id: sm.sequence_id.unwrap_or(md.sequence_id + i as u64),
                redelivery_count,
                child: self.index,
            };
            self.deliver(msg);
            delivered += 1;
        }
        self.return_permits(count.saturating_sub(delivered));
    }

    async fn close_on_broker(&mut self, unsubscribe: bool) -> Result<()> {
        self.flush_acks();
        let Some(conn) = self.connection.clone() else {
            return if unsubscribe {
                Err(Error::NotAllowed(
                    "not connected: cannot unsubscribe now".into(),
                ))
            } else {
                Ok(())
            };
        };
        let inner = self.client.inner.clone();
        let id = inner.next_id();
        let (operation, command) = if unsubscribe {
            ("unsubscribe", commands::unsubscribe(self.consumer_id, id))
        } else {
            (
                "close consumer",
                commands::close_consumer(self.consumer_id, id),
            )
        };
        let result = conn
            .request(id, operation, command, Some(inner.operation_timeout))
            .await;
        if result.is_ok() || !unsubscribe {
            conn.unregister_consumer(self.consumer_id);
            self.connection = None;
        }
        result.map(|_| ())
    }
}
