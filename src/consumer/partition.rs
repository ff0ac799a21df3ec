//! The task behind one partition (or one topic) of a consumer: a thin tokio shell around the
//! sans-IO [`ConsumerCore`]. It owns the connection and the channels, feeds the core what the
//! handles ask, what the connection routes and the time, and carries out what the core hands
//! back. The attach (lookup, SUBSCRIBE) and the requests (ack receipts, seek, last message id)
//! run beside the loop, owned by the task, so timers keep firing while they are in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use crate::channel as mpsc;
use tokio::task::JoinSet;
use tracing::debug;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::protocol::commands::{self, SubscribeArgs};
use crate::protocol::connection::ConsumerEvent;
use crate::protocol::consumer::{AckWaiter, ConsumerCore, ConsumerShared, CoreCommand, Output};
pub(crate) use crate::protocol::consumer::{ChildConfig, Delivery, SeekTarget, StartPosition};
use crate::protocol::topic::TopicName;
use crate::session::Session;
use crate::task::{next_event, queued_event, sleep_until_opt, DRAIN};
use crate::wire::MessageId;

/// The broker's answer to GET_LAST_MESSAGE_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastMessageId {
    pub last: MessageId,
    pub mark_delete: Option<MessageId>,
}

/// Who waits for an ack's confirmation.
type AckReply = oneshot::Sender<Result<()>>;

impl AckWaiter for AckReply {
    fn answer(self, result: Result<(), Error>) {
        let _ = self.send(result);
    }
}

#[derive(Debug)]
enum Cmd {
    Core(CoreCommand<AckReply>),
    Seek(SeekTarget, oneshot::Sender<Result<()>>),
    LastMessageId(oneshot::Sender<Result<LastMessageId>>),
    /// UNSUBSCRIBE, forced or not.
    Unsubscribe(bool, oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

/// The handle on one partition's task.
#[derive(Debug, Clone)]
pub(crate) struct ChildHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<ConsumerShared>,
    /// The partition's (topic's) full name.
    topic: Arc<str>,
    partition: i32,
    start: Option<StartPosition>,
    /// The `receive` spans' topic: the partitioned topic's name for a partition.
    destination: Arc<str>,
    subscription: Arc<str>,
}

fn closed() -> Error {
    Error::Closed("consumer")
}

impl ChildHandle {
    /// Accepts a delivery taken by the application: `None` if it is stale. Counts the permit.
    pub fn accept(&self, d: Delivery) -> Option<Result<Message>> {
        let (msg, refill) = {
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
            match d.item {
                Ok(msg) => {
                    *last = Some(msg.id);
                    // Under the lock too: an epoch bump resets the count, and must not come
                    // between the check and this.
                    self.shared.in_queue.fetch_sub(1, Ordering::AcqRel);
                    self.shared
                        .in_queue_bytes
                        .fetch_sub(msg.payload.len() as u64, Ordering::AcqRel);
                    // And the permit: counted before a resubscription (which bumps the epoch
                    // under this lock first) starts a new flow-control generation, so that a
                    // message of the old connection never counts on the new one.
                    (msg, self.shared.flow.on_consumed(1))
                }
                Err(e) => {
                    drop(last);
                    if let Some(stats) = &self.shared.stats {
                        stats.receive_failed(Instant::now());
                    }
                    return Some(Err(e));
                }
            }
        };
        if let Some(stats) = &self.shared.stats {
            stats.received(Instant::now(), msg.payload.len());
        }
        if let Some(m) = &self.shared.metrics {
            m.received(msg.payload.len());
            self.shared.update_queue_metrics();
        }
        self.receive_span(&msg);
        if self.shared.track_received {
            let _ = self.tx.send(Cmd::Core(CoreCommand::Received(msg.id)));
        }
        if let Some(r) = refill {
            let _ = self.tx.send(Cmd::Core(CoreCommand::Flow {
                permits: r.permits,
                generation: r.generation,
            }));
        }
        Some(Ok(msg))
    }

    /// The `receive` span of a message the application takes (closed at once): OpenTelemetry's
    /// messaging fields, and the ids of the trace context its producer wrote. Nothing is
    /// formatted, parsed or allocated unless a subscriber wants it.
    fn receive_span(&self, msg: &Message) {
        let span = tracing::debug_span!(
            target: crate::trace::SPAN_TARGET,
            "receive",
            otel.name = tracing::field::Empty,
            otel.kind = "consumer",
            messaging.system = "pulsar",
            messaging.operation = "receive",
            messaging.operation.name = "receive",
            messaging.destination.name = &*self.destination,
            messaging.destination.partition.id = tracing::field::Empty,
            messaging.destination.subscription.name = &*self.subscription,
            messaging.message.id = tracing::field::display(&msg.id),
            messaging.message.body.size = msg.payload.len(),
            messaging.pulsar.redelivery_count = msg.redelivery_count,
            trace_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        if span.is_disabled() {
            return;
        }
        span.record(
            "otel.name",
            tracing::field::display(crate::trace::OtelName("receive", &self.destination)),
        );
        if self.partition >= 0 {
            span.record("messaging.destination.partition.id", self.partition);
        }
        if let Some(traceparent) = msg.properties.get(crate::trace::TRACEPARENT) {
            if let Ok(ctx) = crate::trace::TraceContext::parse(traceparent) {
                crate::trace::record_ids(&span, &ctx, "parent_span_id");
            }
        }
    }

    /// Queues an ack; with ack receipts on, waits for the broker's answer.
    pub async fn ack(&self, id: MessageId, cumulative: bool) -> Result<()> {
        let result = self.send_ack(id, cumulative).await;
        self.count_ack(result.is_ok());
        result
    }

    fn count_ack(&self, ok: bool) {
        if let Some(stats) = &self.shared.stats {
            stats.acked(Instant::now(), ok);
        }
        if let (Some(m), true) = (&self.shared.metrics, ok) {
            m.acked(1);
        }
    }

    async fn send_ack(&self, id: MessageId, cumulative: bool) -> Result<()> {
        if !self.shared.ack_receipts {
            return self
                .tx
                .send(Cmd::Core(CoreCommand::Ack {
                    id,
                    cumulative,
                    waiter: None,
                }))
                .map_err(|_| closed());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Core(CoreCommand::Ack {
                id,
                cumulative,
                waiter: Some(reply),
            }))
            .map_err(|_| closed())?;
        rx.await.unwrap_or(Err(closed()))
    }

    /// Acknowledges in a transaction (the subscription already added to it): sent at once,
    /// answered when the broker has it; `op` is told the outcome.
    pub async fn ack_in_transaction(
        &self,
        id: MessageId,
        cumulative: bool,
        txn: crate::transaction::TxnId,
        op: crate::transaction::TxnOp,
    ) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Cmd::Core(CoreCommand::TxnAck {
            id,
            cumulative,
            txn,
            waiter: reply,
        }));
        let result = match sent {
            Ok(()) => rx.await.unwrap_or(Err(closed())),
            Err(_) => Err(closed()),
        };
        op.finish(result.is_ok());
        self.count_ack(result.is_ok());
        result
    }

    pub fn nack(&self, id: MessageId, redelivery_count: u32) -> Result<()> {
        self.tx
            .send(Cmd::Core(CoreCommand::Nack {
                id,
                redelivery_count,
            }))
            .map_err(|_| closed())?;
        if let Some(stats) = &self.shared.stats {
            stats.nacked(Instant::now());
        }
        if let Some(m) = &self.shared.metrics {
            m.nacked();
        }
        Ok(())
    }

    /// The application found nothing queued: an auto-scaled receiver queue with nothing in it
    /// grows, and the permits it grew by are granted.
    pub fn expect_more(&self) {
        if self.shared.in_queue.load(Ordering::Acquire) > 0 {
            return;
        }
        if let Some(r) = self.shared.flow.scale_up() {
            let _ = self.tx.send(Cmd::Core(CoreCommand::Flow {
                permits: r.permits,
                generation: r.generation,
            }));
        }
    }

    /// Counts a message sent to the dead letter topic.
    pub fn dead_lettered(&self) {
        if let Some(m) = &self.shared.metrics {
            m.dead_lettered();
        }
    }

    /// The partition's full topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition's stats recorder, if stats are on.
    pub fn recorder(&self) -> Option<&crate::stats::ConsumerRecorder> {
        self.shared.stats.as_ref()
    }

    /// Whether attached to a connection now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Pauses (true) or resumes (false) the granting of permits.
    pub fn pause(&self, paused: bool) -> Result<()> {
        let cmd = if paused {
            CoreCommand::Pause
        } else {
            CoreCommand::Resume
        };
        self.tx.send(Cmd::Core(cmd)).map_err(|_| closed())
    }

    pub fn redeliver_all(&self) -> Result<()> {
        self.tx
            .send(Cmd::Core(CoreCommand::RedeliverAll))
            .map_err(|_| closed())
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
        self.shared.last_dequeued()
    }

    pub async fn unsubscribe(&self, force: bool) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Unsubscribe(force, reply))
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

/// Starts the task and waits for the first subscription: retried on transient errors until
/// the operation timeout, failed at once on a permanent one.
pub(crate) async fn start(
    session: Arc<Session>,
    topic: TopicName,
    partition: i32,
    index: usize,
    config: ChildConfig,
    out: mpsc::UnboundedSender<Delivery>,
) -> Result<ChildHandle> {
    let now = Instant::now();
    let stats =
        crate::stats::ConsumerRecorder::new(session.stats_interval, session.stats_origin, now);
    let metrics = session
        .metrics
        .as_ref()
        .map(|m| m.consumer(&topic, &config.subscription));
    let shared = Arc::new(
        ConsumerShared::new(&config)
            .with_stats(stats)
            .with_metrics(metrics),
    );
    let topic_name: Arc<str> = Arc::from(topic.full_name());
    let consumer_id = session.next_id();
    let start = config.start;
    let destination: Arc<str> = if partition >= 0 {
        Arc::from(topic.base().full_name())
    } else {
        topic_name.clone()
    };
    let subscription: Arc<str> = Arc::from(config.subscription.as_str());
    let core = ConsumerCore::new(
        topic.clone(),
        partition,
        index,
        consumer_id,
        config,
        shared.clone(),
        session.reconnect_backoff(),
        now,
    );
    let (ready, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = ChildTask {
        core,
        session,
        topic,
        partition,
        consumer_id,
        out,
        connection: None,
        events: None,
        attaching: None,
        requests: JoinSet::new(),
        ready: Some(ready),
        detaches: None,
    };
    tokio::spawn(task.run(rx));
    ready_rx.await.unwrap_or(Err(closed()))?;
    if let Some(m) = &shared.metrics {
        m.opened.increment(1);
    }
    Ok(ChildHandle {
        tx,
        shared,
        topic: topic_name,
        partition,
        start,
        destination,
        subscription,
    })
}

/// A subscription in progress: its epoch, then the connection and its event channel.
type Attaching = Pin<
    Box<
        dyn Future<
                Output = (
                    u64,
                    Result<(Connection, mpsc::UnboundedReceiver<ConsumerEvent>)>,
                ),
            > + Send,
    >,
>;

/// A request run beside the loop, and what it tells the core when it ends.
enum Done {
    Nothing,
    Seek(SeekTarget, oneshot::Sender<Result<()>>, Result<()>),
}

struct ChildTask {
    core: ConsumerCore<AckReply>,
    session: Arc<Session>,
    topic: TopicName,
    partition: i32,
    consumer_id: u64,
    out: mpsc::UnboundedSender<Delivery>,
    connection: Option<Connection>,
    events: Option<mpsc::UnboundedReceiver<ConsumerEvent>>,
    attaching: Option<Attaching>,
    /// Requests in flight (ack receipts, seeks, last message ids): ended with the task.
    requests: JoinSet<Done>,
    /// Answered with the first attach's outcome.
    ready: Option<oneshot::Sender<Result<()>>>,
    /// Counts the detaches: an ack request in flight when the consumer detaches ends at once
    /// with [`Error::Unconfirmed`] (the broker that closed the consumer may never answer it).
    /// Made with the first ack request: an idle consumer holds none.
    detaches: Option<watch::Sender<u64>>,
}

/// Waits for the attach in progress; pending forever when there is none.
async fn attached(attaching: &mut Option<Attaching>) -> <Attaching as Future>::Output {
    match attaching {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Waits for the next request to end; pending forever when there is none.
async fn request_done(requests: &mut JoinSet<Done>) -> Done {
    match requests.join_next().await {
        Some(Ok(done)) => done,
        Some(Err(_)) => Done::Nothing,
        None => std::future::pending().await,
    }
}

impl ChildTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            if self.carry_out() {
                return;
            }
            let timeout = self.core.poll_timeout();
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else {
                        let _ = Box::pin(self.close_on_broker(None)).await;
                        return;
                    };
                    if self.on_command(cmd).await {
                        return;
                    }
                    // Take what else is queued in this turn: the select's timers are re-armed
                    // once per turn, not once per message.
                    for _ in 1..DRAIN {
                        let Ok(cmd) = commands.try_recv() else { break };
                        if self.on_command(cmd).await {
                            return;
                        }
                    }
                }
                event = next_event(&mut self.events, ConsumerEvent::ConnectionClosed) => {
                    let now = Instant::now();
                    self.core.handle_event(event, now);
                    for _ in 1..DRAIN {
                        if self.events.is_none() {
                            break;
                        }
                        let Some(event) = queued_event(&mut self.events) else { break };
                        self.core.handle_event(event, now);
                        self.write();
                    }
                }
                (epoch, result) = attached(&mut self.attaching) => {
                    self.attaching = None;
                    self.on_attached(epoch, result);
                }
                done = request_done(&mut self.requests) => {
                    if let Done::Seek(target, reply, result) = done {
                        if result.is_ok() {
                            self.core.handle_seek(target, Instant::now());
                        }
                        let _ = reply.send(result);
                    }
                }
                _ = sleep_until_opt(timeout.map(tokio::time::Instant::from_std)) => {
                    self.core.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Writes what the core wants written on the attached connection.
    fn write(&mut self) {
        while let Some(command) = self.core.poll_transmit() {
            if let Some(conn) = &self.connection {
                if conn.send(command).is_err() {
                    // The connection's task ended; its ConnectionClosed event follows.
                    debug!(topic = %self.topic, "write to a closed connection");
                }
            }
        }
    }

    /// Carries out everything the core asked; returns whether the task must end.
    fn carry_out(&mut self) -> bool {
        self.write();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Deliver(d) => {
                    let _ = self.out.send(d);
                    self.core.shared().update_queue_metrics();
                }
                Output::Attach { epoch, args } => self.attach(epoch, *args),
                Output::Detach => self.drop_connection(false),
                Output::CloseOnBroker => self.drop_connection(true),
                Output::AckRequests { acks, waiters } => self.ack_requests(acks, waiters),
                Output::TxnAck {
                    ids,
                    cumulative,
                    txn,
                    waiter,
                } => self.txn_ack(ids, cumulative, txn, waiter),
                Output::Redelivered { ack_timeout, ids } => {
                    let interceptors = self.core.interceptors();
                    if ack_timeout {
                        interceptors.each("on_ack_timeout_send", |i| i.on_ack_timeout_send(&ids));
                    } else {
                        interceptors
                            .each("on_negative_acks_send", |i| i.on_negative_acks_send(&ids));
                    }
                }
                Output::Ready => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Output::Failed(e) => {
                    self.drop_connection(false);
                    match self.ready.take() {
                        Some(ready) => {
                            let _ = ready.send(Err(e));
                        }
                        // The application sees why the consumer stopped.
                        None => {
                            let epoch = self.core.epoch();
                            let _ = self.out.send(Delivery {
                                child: self.core.index(),
                                epoch,
                                item: Err(e),
                            });
                        }
                    }
                    return true;
                }
            }
            self.write();
        }
        false
    }

    fn drop_connection(&mut self, close_on_broker: bool) {
        self.core.shared().connected.store(false, Ordering::Release);
        if let Some(d) = &self.detaches {
            d.send_modify(|n| *n += 1);
        }
        if let Some(conn) = self.connection.take() {
            if close_on_broker {
                let id = self.session.next_id();
                let _ = conn.send(commands::close_consumer(self.consumer_id, id));
            }
            conn.unregister_consumer(self.consumer_id);
        }
        self.events = None;
    }

    /// Starts a lookup and SUBSCRIBE beside the loop.
    fn attach(&mut self, epoch: u64, args: SubscribeArgs) {
        let inner = self.session.clone();
        let topic = self.topic.clone();
        let consumer_id = self.consumer_id;
        self.attaching = Some(Box::pin(async move {
            let result = async {
                let conn = inner.lookup(&topic).await?;
                let (tx, rx) = mpsc::unbounded_channel();
                conn.register_consumer(consumer_id, tx)?;
                let request_id = inner.next_id();
                let result = conn
                    .request(
                        request_id,
                        "subscribe",
                        commands::subscribe(&args, request_id),
                        Some(inner.operation_timeout),
                    )
                    .await;
                match result {
                    Ok(_) => Ok((conn, rx)),
                    Err(e) => {
                        if matches!(e, Error::Timeout { .. }) {
                            // The broker may still subscribe it: tell it to drop it.
                            let close_id = inner.next_id();
                            let _ = conn.send(commands::close_consumer(consumer_id, close_id));
                        }
                        conn.unregister_consumer(consumer_id);
                        Err(e)
                    }
                }
            }
            .await;
            (epoch, result)
        }));
    }

    fn on_attached(
        &mut self,
        epoch: u64,
        result: Result<(Connection, mpsc::UnboundedReceiver<ConsumerEvent>)>,
    ) {
        let now = Instant::now();
        match result {
            Ok((conn, rx)) => {
                if self
                    .core
                    .handle_attached(epoch, Ok(conn.max_message_size()), now)
                {
                    self.connection = Some(conn);
                    self.events = Some(rx);
                    self.core.shared().connected.store(true, Ordering::Release);
                } else {
                    let id = self.session.next_id();
                    let _ = conn.send(commands::close_consumer(self.consumer_id, id));
                    conn.unregister_consumer(self.consumer_id);
                }
            }
            Err(e) => {
                self.core.handle_attached(epoch, Err(e), now);
            }
        }
    }

    /// Sends acks as requests (ack receipts) beside the loop; the waiters get the outcome.
    fn ack_requests(
        &mut self,
        acks: Vec<(Vec<crate::wire::proto::MessageIdData>, bool)>,
        waiters: Vec<AckReply>,
    ) {
        let Some(conn) = self.connection.clone() else {
            for w in waiters {
                w.answer(Err(Error::Connection(
                    crate::error::ConnectionError::Closed,
                )));
            }
            return;
        };
        let inner = self.session.clone();
        let consumer_id = self.consumer_id;
        let mut detaches = self
            .detaches
            .get_or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        self.requests.spawn(async move {
            let mut result = Ok(());
            for (ids, cumulative) in acks {
                let id = inner.next_id();
                let command = commands::ack(consumer_id, ids, cumulative, Some(id));
                let request =
                    conn.request(id, "acknowledge", command, Some(inner.operation_timeout));
                tokio::select! {
                    answer = request => {
                        if let Err(e) = answer {
                            result = Err(e);
                        }
                    }
                    // The broker closed the consumer (or the connection went): it may never
                    // answer; the message comes again if the ack did not land.
                    _ = detaches.changed() => {
                        result = Err(Error::Unconfirmed("acknowledgement"));
                        break;
                    }
                }
            }
            for w in waiters {
                w.answer(result.clone());
            }
            Done::Nothing
        });
    }

    /// Sends an acknowledgement in a transaction as a request beside the loop.
    fn txn_ack(
        &mut self,
        ids: Vec<crate::wire::proto::MessageIdData>,
        cumulative: bool,
        txn: crate::transaction::TxnId,
        waiter: AckReply,
    ) {
        let Some(conn) = self.connection.clone() else {
            waiter.answer(Err(Error::Connection(
                crate::error::ConnectionError::Closed,
            )));
            return;
        };
        let session = self.session.clone();
        let consumer_id = self.consumer_id;
        self.requests.spawn(async move {
            let id = session.next_id();
            let mut command = commands::ack(consumer_id, ids, cumulative, Some(id));
            if let Some(ack) = command.ack.as_mut() {
                ack.txnid_least_bits = Some(txn.least_bits);
                ack.txnid_most_bits = Some(txn.most_bits);
            }
            let result = conn
                .request(
                    id,
                    "acknowledge in a transaction",
                    command,
                    Some(session.operation_timeout),
                )
                .await
                .map(|_| ());
            waiter.answer(result);
            Done::Nothing
        });
    }

    /// One command from the handles; returns whether the task must end.
    async fn on_command(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Core(cmd) => self.core.handle_command(cmd, Instant::now()),
            Cmd::Close(reply) => {
                let result = Box::pin(self.close_on_broker(None)).await;
                if let Some(m) = &self.core.shared().metrics {
                    m.closed.increment(1);
                }
                let _ = reply.send(result);
                return true;
            }
            Cmd::Unsubscribe(force, reply) => {
                let result = Box::pin(self.close_on_broker(Some(force))).await;
                let done = result.is_ok();
                if let (Some(m), true) = (&self.core.shared().metrics, done) {
                    m.closed.increment(1);
                }
                let _ = reply.send(result);
                if done {
                    return true;
                }
            }
            Cmd::Seek(target, reply) => self.seek(target, reply),
            Cmd::LastMessageId(reply) => self.last_message_id(reply),
        }
        false
    }

    /// SEEK, beside the loop: acks so far go first; the core drops what is queued and
    /// subscribes again once the broker accepted it.
    fn seek(&mut self, target: SeekTarget, reply: oneshot::Sender<Result<()>>) {
        self.core.flush_acks_now();
        self.write();
        let Some(conn) = self.connection.clone() else {
            let _ = reply.send(Err(Error::NotAllowed(
                "not connected: seek again after reconnecting".into(),
            )));
            return;
        };
        let inner = self.session.clone();
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
        self.requests.spawn(async move {
            let result = conn
                .request(request_id, "seek", command, Some(inner.operation_timeout))
                .await
                .map(|_| ());
            Done::Seek(target, reply, result)
        });
    }

    /// GET_LAST_MESSAGE_ID, beside the loop.
    fn last_message_id(&mut self, reply: oneshot::Sender<Result<LastMessageId>>) {
        let Some(conn) = self.connection.clone() else {
            let _ = reply.send(Err(Error::NotAllowed(
                "not connected: retry after reconnecting".into(),
            )));
            return;
        };
        let inner = self.session.clone();
        let consumer_id = self.consumer_id;
        let partition = self.partition;
        self.requests.spawn(async move {
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
            Done::Nothing
        });
    }

    /// Ends the subscription on the broker: CLOSE_CONSUMER, or UNSUBSCRIBE (`Some(force)`).
    /// Grouped acks go first, and acks awaiting receipts are waited for.
    async fn close_on_broker(&mut self, unsubscribe: Option<bool>) -> Result<()> {
        let force = unsubscribe.unwrap_or(false);
        let unsubscribe = unsubscribe.is_some();
        self.core.flush_acks_now();
        let _ = self.carry_out();
        while let Some(done) = self.requests.join_next().await {
            if let Ok(Done::Seek(_, reply, _)) = done {
                let _ = reply.send(Err(closed()));
            }
        }
        let Some(conn) = self.connection.clone() else {
            if !unsubscribe {
                self.core.close();
            }
            return if unsubscribe {
                Err(Error::NotAllowed(
                    "not connected: cannot unsubscribe now".into(),
                ))
            } else {
                Ok(())
            };
        };
        let inner = self.session.clone();
        let id = inner.next_id();
        let (operation, command) = if unsubscribe {
            (
                "unsubscribe",
                commands::unsubscribe(self.consumer_id, id, force),
            )
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
            self.core.close();
            conn.unregister_consumer(self.consumer_id);
            self.core.shared().connected.store(false, Ordering::Release);
            self.connection = None;
            self.events = None;
        }
        match result {
            // The connection went while CLOSE_CONSUMER awaited its answer: the broker drops the
            // consumers of a connection that goes, so the consumer is closed all the same. (An
            // UNSUBSCRIBE cut off that way did not happen: its error stays.)
            Err(Error::Connection(e)) if !unsubscribe => {
                debug!(error = %e, "the connection went during the close: closed with it");
                Ok(())
            }
            result => result.map(|_| ()),
        }
    }
}
