//! Consumers: [`Consumer`] receives from one or more topics (every partition of partitioned
//! ones) on a subscription, and acknowledges or negatively acknowledges what it received.
//!
//! Each partition has its own task that owns the subscription on the broker, the flow permits,
//! batch unpacking and negative-ack timers, and resubscribes when its connection drops. All of
//! them feed one queue that [`Consumer::receive`] reads.

mod builder;
pub(crate) mod chunks;
mod dead_letter;
mod discovery;
mod key_shared;
mod partition;
pub(crate) mod typed;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::channel as mpsc;

pub(crate) use builder::random_name;
pub use builder::{
    ConsumerBuilder, ConsumerCryptoFailureAction, InitialPosition, SubscriptionMode,
    SubscriptionType,
};
pub(crate) use dead_letter::DeadLetters;
pub use dead_letter::{
    java_message_id, DeadLetterPolicy, DELAY_TIME, ORIGIN_MESSAGE_ID, ORIGIN_MESSAGE_ID_LEGACY,
    REAL_SUBSCRIPTION, REAL_TOPIC, RECONSUME_TIMES,
};
pub(crate) use discovery::Children;
pub use key_shared::{
    key_shared_slot, KeySharedPolicy, KeySharedPolicyError, Range, KEY_SHARED_HASH_RANGE_SIZE,
};
pub(crate) use partition::{ChildHandle, Delivery, LastMessageId, SeekTarget, StartPosition};
pub use typed::{TypedConsumer, TypedConsumerBuilder, TypedMessage};

use crate::error::{Error, Result};
use crate::interceptor::ConsumerInterceptors;
use crate::message::Message;
use crate::stats::{ConsumerRecorder, ConsumerStats};
use crate::transaction::Transaction;
use crate::wire::MessageId;

/// A consumer on a subscription. Receive with [`Consumer::receive`] or as a
/// `futures_core::Stream`; acknowledge each message with [`Consumer::ack`], or
/// [`Consumer::nack`] it to have the broker redeliver it after the negative-ack delay.
#[derive(Debug)]
pub struct Consumer {
    topics: Vec<String>,
    subscription: String,
    sub_type: SubscriptionType,
    children: Children,
    rx: mpsc::UnboundedReceiver<Delivery>,
    dead_letters: Option<Arc<DeadLetters>>,
    /// Messages past the dead-letter policy's limit, on their way to the dead-letter topic (a
    /// task of the consumer's sends them there, then acknowledges them).
    to_dead_letter: Option<mpsc::UnboundedSender<(Message, ChildHandle)>>,
    /// An error taken off the queue by `batch_receive` behind messages: the next receive
    /// returns it.
    pending_error: Option<Error>,
    /// Dropped with the consumer: stops topic and partition discovery at once.
    _discovery: Option<tokio::sync::oneshot::Sender<()>>,
    /// Called on every message before the application gets it, and on every ack.
    interceptors: ConsumerInterceptors,
    /// Whether paused, shared with the partitions (and those partition discovery adds).
    paused: Arc<std::sync::atomic::AtomicBool>,
    /// The message listener receives: `receive` is not allowed here.
    listener: bool,
    /// Auto-scaled receiver queues: grown when the application finds nothing queued.
    pub(crate) auto_scaled: bool,
    /// Dropped with the consumer: stops the message listener's task.
    _listener: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Consumer {
    fn new(
        topics: Vec<String>,
        subscription: String,
        sub_type: SubscriptionType,
        children: Children,
        rx: mpsc::UnboundedReceiver<Delivery>,
        dead_letters: Option<DeadLetters>,
        discovery: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Self {
        let dead_letters = dead_letters.map(Arc::new);
        let to_dead_letter = dead_letters.clone().map(|dl| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(dead_letter_task(dl, rx));
            tx
        });
        Consumer {
            topics,
            subscription,
            sub_type,
            children,
            rx,
            dead_letters,
            to_dead_letter,
            pending_error: None,
            _discovery: discovery,
            interceptors: ConsumerInterceptors::default(),
            paused: Default::default(),
            listener: false,
            auto_scaled: false,
            _listener: None,
        }
    }

    /// For a message listener: the consumer the application keeps (it acknowledges, pauses,
    /// closes; dropping it stops the listener), the one the listener's task receives with,
    /// and the signal that stops that task.
    fn split_for_listener(mut self) -> (Consumer, Consumer, tokio::sync::oneshot::Receiver<()>) {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (_, closed_rx) = mpsc::unbounded_channel();
        let user = Consumer {
            topics: self.topics.clone(),
            subscription: self.subscription.clone(),
            sub_type: self.sub_type,
            children: self.children.clone(),
            rx: closed_rx,
            dead_letters: self.dead_letters.clone(),
            to_dead_letter: self.to_dead_letter.clone(),
            pending_error: None,
            _discovery: self._discovery.take(),
            interceptors: self.interceptors.clone(),
            paused: self.paused.clone(),
            listener: true,
            auto_scaled: self.auto_scaled,
            _listener: Some(stop),
        };
        (user, self, stopped)
    }

    /// A snapshot of the partition tasks.
    fn handles(&self) -> Vec<ChildHandle> {
        self.children
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The topics (partitions) this consumer receives from now.
    pub fn subscribed_topics(&self) -> usize {
        self.handles().len()
    }

    /// Dead-letter policy: whether a message was redelivered more than allowed (or reconsumed
    /// more than allowed), so that it goes to the dead-letter topic instead of the application.
    fn is_dead(&self, msg: &Message) -> bool {
        self.dead_letters.as_ref().is_some_and(|dl| {
            let limit = dl.policy.max_redeliver_count;
            msg.redelivery_count > limit || DeadLetters::reconsume_times(msg) > limit
        })
    }

    /// Takes a delivery off the queue, on every receive path: `None` when it is stale (from a
    /// connection that was replaced, so the broker redelivers it) or went to the dead-letter
    /// topic.
    fn take(&self, delivery: Delivery) -> Option<Result<Message>> {
        let item = self.accept(delivery)?;
        if let (Ok(msg), Some(to_dlq)) = (&item, &self.to_dead_letter) {
            if self.is_dead(msg) {
                let child = self.child(msg).ok()?;
                // The task acknowledges it once it is on the dead-letter topic, or hands it
                // back (negative ack) if that fails: never dropped.
                if let Err(mpsc::error::SendError((msg, child))) = to_dlq.send((msg.clone(), child))
                {
                    let _ = child.nack(msg.id, msg.redelivery_count);
                }
                return None;
            }
        }
        match item {
            Ok(mut msg) if !self.interceptors.is_empty() => {
                self.interceptors
                    .each("before_consume", |i| i.before_consume(&mut msg));
                Some(Ok(msg))
            }
            item => Some(item),
        }
    }

    /// Fails the receive paths of a consumer with a message listener.
    fn check_receive(&self) -> Result<()> {
        if self.listener {
            return Err(Error::NotAllowed(
                "the consumer has a message listener: it receives the messages".into(),
            ));
        }
        Ok(())
    }

    /// The topics, as given.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The subscription name.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The subscription type.
    pub fn subscription_type(&self) -> SubscriptionType {
        self.sub_type
    }

    /// Whether every topic (partition) was terminated and fully consumed
    /// (REACHED_END_OF_TOPIC).
    pub fn has_reached_end_of_topic(&self) -> bool {
        let handles = self.handles();
        !handles.is_empty() && handles.iter().all(|c| c.reached_end())
    }

    /// Messages received from the broker and not yet taken by the application. Flow control
    /// keeps it at most the receiver queue size per partition (plus the rest of a batch).
    pub fn queued_messages(&self) -> usize {
        self.handles().iter().map(|c| c.queued()).sum()
    }

    /// The consumer's statistics (the Java client's `getStats`): the counts and rates of the
    /// last complete stats interval
    /// ([`ClientBuilder::stats_interval`](crate::ClientBuilder::stats_interval)), and totals
    /// since creation, summed over its topics and partitions. With stats off, only
    /// [`ConsumerStats::msgs_in_receiver_queue`] is filled in.
    pub fn stats(&self) -> ConsumerStats {
        let handles = self.handles();
        let now = std::time::Instant::now();
        let mut stats = ConsumerRecorder::sum(
            now,
            handles
                .iter()
                .filter_map(|c| c.recorder().map(|r| (r, c.queued()))),
        );
        stats.msgs_in_receiver_queue = handles.iter().map(|c| c.queued()).sum();
        stats
    }

    /// Each topic's (partition's) statistics, by its full name, in the order the consumer
    /// subscribed to them (the Java client's `getPartitionStats`).
    pub fn partition_stats(&self) -> Vec<(String, ConsumerStats)> {
        let now = std::time::Instant::now();
        self.handles()
            .iter()
            .map(|c| {
                let mut stats = ConsumerRecorder::sum(now, c.recorder().map(|r| (r, 0)));
                stats.msgs_in_receiver_queue = c.queued();
                (c.topic().to_owned(), stats)
            })
            .collect()
    }

    /// Whether every topic (partition) is attached to a broker connection now (false while
    /// one resubscribes).
    pub fn is_connected(&self) -> bool {
        let handles = self.handles();
        !handles.is_empty() && handles.iter().all(|c| c.is_connected())
    }

    /// Whether this consumer is the active one of a Failover subscription (on any partition).
    pub fn is_active(&self) -> bool {
        self.handles().iter().any(|c| c.is_active())
    }

    /// Takes a delivery off its partition's queue: `None` when it is stale.
    fn accept(&self, delivery: Delivery) -> Option<Result<Message>> {
        let children = self.children.read().unwrap_or_else(|p| p.into_inner());
        children.get(delivery.child)?.accept(delivery)
    }

    /// Waits for the next message. An error says why a partition stopped (its subscription
    /// is gone) or that a message could not be delivered (it is encrypted); the consumer can
    /// go on receiving after it.
    pub async fn receive(&mut self) -> Result<Message> {
        self.check_receive()?;
        loop {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            self.expect_more();
            let delivery = self.rx.recv().await.ok_or(Error::Closed("consumer"))?;
            if let Some(item) = self.take(delivery) {
                return item;
            }
        }
    }

    /// Nothing is queued and the application waits: auto-scaled receiver queues of partitions
    /// with nothing queued grow (as the Java client's `expectMoreIncomingMessages`).
    fn expect_more(&self) {
        if self.auto_scaled && self.rx.is_empty() {
            for c in &self.handles() {
                c.expect_more();
            }
        }
    }

    /// Waits for the next message at most `timeout`; `Ok(None)` when none came.
    pub async fn receive_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    fn child(&self, msg: &Message) -> Result<ChildHandle> {
        self.children
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(msg.child)
            .cloned()
            .ok_or_else(|| Error::NotAllowed("the message is not from this consumer".into()))
    }

    /// Acknowledges a message: the broker will not deliver it again on this subscription.
    pub async fn ack(&self, msg: &Message) -> Result<()> {
        let result = match self.child(msg) {
            Ok(child) => child.ack(msg.id, false).await,
            Err(e) => Err(e),
        };
        self.interceptors.acknowledged(&msg.id, false, &result);
        result
    }

    /// The partition task a message id belongs to: the one of its partition, or the only one;
    /// `topic` picks among the topics of a multi-topic consumer (a full name, or as given).
    fn child_of(&self, topic: Option<&str>, id: &MessageId) -> Result<ChildHandle> {
        let handles = self.handles();
        let wanted = topic.map(|t| {
            crate::protocol::topic::TopicName::parse(t)
                .map(|n| n.base().full_name().to_owned())
                .unwrap_or_else(|_| t.to_owned())
        });
        let mut found = handles.iter().filter(|c| {
            let topic_ok = wanted.as_deref().is_none_or(|w| {
                crate::protocol::topic::TopicName::parse(c.topic())
                    .is_ok_and(|n| n.base().full_name() == w)
            });
            topic_ok && (c.partition() == id.partition || handles.len() == 1)
        });
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(c.clone()),
            (None, _) => Err(Error::NotAllowed(format!(
                "message id {id} is not from a topic (partition) of this consumer"
            ))),
            (Some(_), Some(_)) => Err(Error::NotAllowed(format!(
                "message id {id} names a partition of several topics of this consumer: \
                 acknowledge it with ack_id_in (naming its topic) or by its message"
            ))),
        }
    }

    async fn ack_routed(
        &self,
        topic: Option<&str>,
        id: &MessageId,
        cumulative: bool,
    ) -> Result<()> {
        let result = match self.child_of(topic, id) {
            Ok(child) => child.ack(*id, cumulative).await,
            Err(e) => Err(e),
        };
        self.interceptors.acknowledged(id, cumulative, &result);
        result
    }

    /// Acknowledges a message by its id (the Java client's `acknowledge(MessageId)`). The id's
    /// partition picks the partition of a partitioned topic; on a consumer of several topics
    /// whose partitions share that index, name the topic with [`Consumer::ack_id_in`].
    pub async fn ack_id(&self, id: &MessageId) -> Result<()> {
        self.ack_routed(None, id, false).await
    }

    /// Acknowledges a message by its id and the topic (or partition) it came from, as
    /// [`Message::topic`] names it: for consumers of several topics.
    pub async fn ack_id_in(&self, topic: &str, id: &MessageId) -> Result<()> {
        self.ack_routed(Some(topic), id, false).await
    }

    /// Acknowledges messages by their ids (the Java client's `acknowledge(List<MessageId>)`),
    /// each routed as [`Consumer::ack_id`]. Every id is tried; the first error is returned.
    pub async fn ack_ids(&self, ids: &[MessageId]) -> Result<()> {
        let mut first = None;
        for id in ids {
            if let Err(e) = self.ack_routed(None, id, false).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Acknowledges messages, as [`Consumer::ack`] each. Every one is tried; the first error
    /// is returned.
    pub async fn ack_all(&self, msgs: &[Message]) -> Result<()> {
        let mut first = None;
        for msg in msgs {
            if let Err(e) = self.ack(msg).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Acknowledges a message and everything before it on its partition, by its id (routed
    /// as [`Consumer::ack_id`]). Not allowed on Shared and Key_Shared subscriptions.
    pub async fn ack_cumulative_id(&self, id: &MessageId) -> Result<()> {
        self.check_cumulative()?;
        self.ack_routed(None, id, true).await
    }

    /// Negatively acknowledges a message by its id (routed as [`Consumer::ack_id`]): the
    /// broker redelivers it after the negative-ack delay. Without the message, its
    /// redelivery count is taken as 0 (for [`ConsumerBuilder::negative_ack_backoff`]) and the
    /// dead-letter policy is not applied here (it is when the message comes back).
    pub fn nack_id(&self, id: &MessageId) -> Result<()> {
        self.child_of(None, id)?.nack(*id, 0)
    }

    /// [`Consumer::nack_id`] naming the topic (or partition) the message came from.
    pub fn nack_id_in(&self, topic: &str, id: &MessageId) -> Result<()> {
        self.child_of(Some(topic), id)?.nack(*id, 0)
    }

    /// Negatively acknowledges messages by their ids, each as [`Consumer::nack_id`]. Every
    /// id is tried; the first error is returned.
    pub fn nack_ids(&self, ids: &[MessageId]) -> Result<()> {
        let mut first = None;
        for id in ids {
            if let Err(e) = self.nack_id(id) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Stops asking the broker for messages (the Java client's `pause`): no more flow permits
    /// are granted, on every partition (and on those partition discovery adds while paused);
    /// messages already queued can still be received.
    pub fn pause(&self) -> Result<()> {
        self.paused
            .store(true, std::sync::atomic::Ordering::Release);
        for c in &self.handles() {
            c.pause(true)?;
        }
        Ok(())
    }

    /// Asks for messages again after [`Consumer::pause`]: the permits withheld meanwhile are
    /// granted.
    pub fn resume(&self) -> Result<()> {
        self.paused
            .store(false, std::sync::atomic::Ordering::Release);
        for c in &self.handles() {
            c.pause(false)?;
        }
        Ok(())
    }

    /// Whether the consumer is paused ([`Consumer::pause`],
    /// [`ConsumerBuilder::start_paused`]).
    pub fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::Acquire)
    }

    fn check_cumulative(&self) -> Result<()> {
        if self.sub_type.redelivers_by_id() {
            return Err(Error::NotAllowed(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Acknowledges a message and everything before it on its topic (partition). Not allowed on
    /// Shared and Key_Shared subscriptions.
    pub async fn ack_cumulative(&self, msg: &Message) -> Result<()> {
        self.check_cumulative()?;
        let result = match self.child(msg) {
            Ok(child) => child.ack(msg.id, true).await,
            Err(e) => Err(e),
        };
        self.interceptors.acknowledged(&msg.id, true, &result);
        result
    }

    /// Acknowledges a message in a transaction: the acknowledgement takes effect when `txn`
    /// commits, and is undone if it aborts (the broker then delivers the message again). The
    /// subscription is added to the transaction before its first acknowledgement in it. Fails
    /// with the broker's TransactionConflict when another transaction holds the message, and
    /// with [`Error::TransactionNotOpen`] when `txn` has ended or timed out.
    pub async fn ack_with_transaction(&self, msg: &Message, txn: &Transaction) -> Result<()> {
        self.ack_in(msg, txn, false).await
    }

    /// Acknowledges a message and everything before it on its topic (partition) in a
    /// transaction. Not allowed on Shared and Key_Shared subscriptions.
    pub async fn ack_cumulative_with_transaction(
        &self,
        msg: &Message,
        txn: &Transaction,
    ) -> Result<()> {
        if self.sub_type.redelivers_by_id() {
            return Err(Error::NotAllowed(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions"
                    .into(),
            ));
        }
        self.ack_in(msg, txn, true).await
    }

    async fn ack_in(&self, msg: &Message, txn: &Transaction, cumulative: bool) -> Result<()> {
        let result = self.ack_in_txn(msg, txn, cumulative).await;
        self.interceptors.acknowledged(&msg.id, cumulative, &result);
        result
    }

    async fn ack_in_txn(&self, msg: &Message, txn: &Transaction, cumulative: bool) -> Result<()> {
        let child = self.child(msg)?;
        let op = txn.start_op()?;
        txn.add_subscription(&msg.topic, &self.subscription).await?;
        child
            .ack_in_transaction(msg.id, cumulative, txn.id(), op)
            .await
    }

    /// Negatively acknowledges a message: the broker redelivers it (its whole batch) after the
    /// negative-ack delay, with its redelivery count raised.
    pub async fn nack(&self, msg: &Message) -> Result<()> {
        if let Some(dl) = &self.dead_letters {
            // Delivered for the last time allowed: to the dead-letter topic rather than back.
            if msg.redelivery_count >= dl.policy.max_redeliver_count {
                dl.send_to_dlq(msg).await?;
                let child = self.child(msg)?;
                child.dead_lettered();
                return child.ack(msg.id, false).await;
            }
        }
        self.child(msg)?.nack(msg.id, msg.redelivery_count)
    }

    /// Republishes the message to the retry topic, to be delivered again after `delay`, and
    /// acknowledges it here (`reconsumeLater` of the Java client). Past the dead-letter policy's
    /// limit it goes to the dead-letter topic instead. Needs
    /// [`ConsumerBuilder::enable_retry`].
    pub async fn reconsume_later(&self, msg: &Message, delay: std::time::Duration) -> Result<()> {
        self.reconsume_later_with_properties(msg, delay, HashMap::new())
            .await
    }

    /// [`reconsume_later`](Self::reconsume_later) with `properties` added to the republished
    /// message, over its own (the Java client's `reconsumeLater(message, customProperties,
    /// delay, unit)`); the retry keys ([`RECONSUME_TIMES`], [`DELAY_TIME`], the origin keys)
    /// are set as by `reconsume_later`. Past the dead-letter policy's limit the message goes
    /// to the dead-letter topic, with the properties too.
    pub async fn reconsume_later_with_properties(
        &self,
        msg: &Message,
        delay: std::time::Duration,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        let dl = self.dead_letters.as_ref().ok_or_else(|| {
            Error::NotAllowed("reconsume_later needs enable_retry on the consumer builder".into())
        })?;
        if DeadLetters::reconsume_times(msg) >= dl.policy.max_redeliver_count {
            dl.send_to_dlq_with(msg, &properties).await?;
            self.child(msg)?.dead_lettered();
        } else {
            dl.send_to_retry(msg, delay, &properties).await?;
        }
        self.child(msg)?.ack(msg.id, false).await
    }

    /// Asks the broker to redeliver every message received and not yet acknowledged.
    pub async fn redeliver_unacknowledged(&self) -> Result<()> {
        for c in &self.handles() {
            c.redeliver_all()?;
        }
        Ok(())
    }

    /// Receives up to `max_messages`: waits up to `max_wait` for the first, then takes what else
    /// is already queued (the official clients' `batch_receive`).
    pub async fn batch_receive(
        &mut self,
        max_messages: usize,
        max_wait: std::time::Duration,
    ) -> Result<Vec<Message>> {
        self.check_receive()?;
        let mut out = Vec::new();
        let Some(first) = self.receive_timeout(max_wait).await? else {
            return Ok(out);
        };
        out.push(first);
        while out.len() < max_messages.max(1) {
            match self.rx.try_recv() {
                Ok(delivery) => match self.take(delivery) {
                    Some(Ok(msg)) => out.push(msg),
                    // Reported at the next receive: the messages so far go first.
                    Some(Err(e)) => {
                        self.pending_error = Some(e);
                        break;
                    }
                    None => {}
                },
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Moves one topic (partition) of the consumer, named by its full name as in
    /// [`Message::topic`] (or as given, for a non-partitioned topic), to a message: it is the
    /// next one delivered there; the other topics are not moved. Fails with
    /// [`Error::NotAllowed`] when the consumer has no such topic.
    pub async fn seek_topic(&mut self, topic: &str, id: crate::wire::MessageId) -> Result<()> {
        let full = crate::protocol::topic::TopicName::parse(topic)?;
        let handle = self
            .handles()
            .into_iter()
            .find(|c| c.topic() == full.full_name())
            .ok_or_else(|| {
                Error::NotAllowed(format!("the consumer does not consume from {topic}"))
            })?;
        handle.seek(SeekTarget::Id(id)).await
    }

    /// Moves the subscription to a message: it is the next one delivered. Queued messages are
    /// dropped and the consumer subscribes again. On a partitioned topic the id's partition is
    /// moved; [`MessageId::EARLIEST`](crate::wire::MessageId::EARLIEST) and
    /// [`MessageId::LATEST`](crate::wire::MessageId::LATEST) move every partition. An id does
    /// not name its topic: on a consumer of several topics only those two are allowed, as in
    /// the Java client (anything else is [`Error::NotAllowed`]); move one topic with
    /// [`seek_topic`](Self::seek_topic).
    pub async fn seek(&mut self, id: crate::wire::MessageId) -> Result<()> {
        let handles = self.handles();
        let ends = id == crate::wire::MessageId::EARLIEST || id == crate::wire::MessageId::LATEST;
        if !ends {
            let bases: std::collections::BTreeSet<String> = handles
                .iter()
                .filter_map(|c| crate::protocol::topic::TopicName::parse(c.topic()).ok())
                .map(|t| t.base().full_name().to_owned())
                .collect();
            if bases.len() > 1 {
                return Err(Error::NotAllowed(
                    "a consumer of several topics seeks to EARLIEST or LATEST only: move one \
                     topic with seek_topic"
                        .into(),
                ));
            }
        }
        let everywhere = id.partition < 0 || handles.len() == 1;
        for c in &handles {
            if everywhere || c.partition() == id.partition {
                c.seek(SeekTarget::Id(id)).await?;
            }
        }
        Ok(())
    }

    /// Moves every partition to its last message (a reader from Latest, inclusive); an empty
    /// partition stays at its end.
    pub(crate) async fn seek_each_to_last(&mut self) -> Result<()> {
        for c in &self.handles() {
            let last = c.last_message_id().await?.last;
            if last.entry_id >= 0 {
                c.seek(SeekTarget::Id(last)).await?;
            }
        }
        Ok(())
    }

    /// Moves the subscription (every partition) to the first message published at or after
    /// `publish_time_ms` (ms since the epoch).
    pub async fn seek_by_time(&mut self, publish_time_ms: u64) -> Result<()> {
        for c in &self.handles() {
            c.seek(SeekTarget::PublishTime(publish_time_ms)).await?;
        }
        Ok(())
    }

    /// The id of the last message on the topic (the highest over its partitions).
    pub async fn get_last_message_id(&self) -> Result<crate::wire::MessageId> {
        let mut last = None;
        for c in &self.handles() {
            let id = c.last_message_id().await?.last;
            if last.is_none_or(|l| id > l) {
                last = Some(id);
            }
        }
        last.ok_or(Error::Closed("consumer"))
    }

    /// The id of the last message of each topic (partition), by its full name, in the order
    /// the consumer subscribed to them (the Java client's `getLastMessageIds`). An empty topic's
    /// id has entry −1.
    pub async fn get_last_message_ids(&self) -> Result<Vec<(String, crate::wire::MessageId)>> {
        let handles = self.handles();
        if handles.is_empty() {
            return Err(Error::Closed("consumer"));
        }
        let mut out = Vec::with_capacity(handles.len());
        for c in &handles {
            out.push((c.topic().to_owned(), c.last_message_id().await?.last));
        }
        Ok(out)
    }

    /// Whether a message is there to read: queued locally, or on the broker after the last
    /// message received (or after the start position of a reader).
    pub async fn has_message_available(&mut self) -> Result<bool> {
        if self.queued_messages() > 0 {
            return Ok(true);
        }
        for c in &self.handles() {
            let LastMessageId { last, mark_delete } = c.last_message_id().await?;
            if last.entry_id < 0 {
                continue;
            }
            let entry =
                |m: &crate::wire::MessageId| (m.ledger_id, m.entry_id, m.batch_index.max(-1));
            let available = match (c.last_dequeued(), c.start()) {
                (Some(seen), _) => entry(&last) > entry(&seen),
                (None, Some(start)) if start.id == crate::wire::MessageId::LATEST => mark_delete
                    .is_some_and(|m| (m.ledger_id, m.entry_id) < (last.ledger_id, last.entry_id)),
                (None, Some(start)) if start.inclusive => entry(&last) >= entry(&start.id),
                (None, Some(start)) => entry(&last) > entry(&start.id),
                (None, None) => match mark_delete {
                    Some(m) => (m.ledger_id, m.entry_id) < (last.ledger_id, last.entry_id),
                    None => true,
                },
            };
            if available {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes the subscription on the broker (every partition), then closes the consumer.
    /// The broker refuses while other consumers are connected to a shared subscription (an
    /// [`Error::Server`]): see [`unsubscribe_force`](Self::unsubscribe_force).
    pub async fn unsubscribe(self) -> Result<()> {
        self.unsubscribe_with(false).await
    }

    /// Deletes the subscription on the broker (every partition) even while other consumers are
    /// connected to it: the broker disconnects them (UNSUBSCRIBE's `force`, the Java client's
    /// `unsubscribe(true)`). Then closes the consumer.
    pub async fn unsubscribe_force(self) -> Result<()> {
        self.unsubscribe_with(true).await
    }

    async fn unsubscribe_with(self, force: bool) -> Result<()> {
        let mut first = None;
        for c in &self.handles() {
            if let Err(e) = c.unsubscribe(force).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Closes the consumer on the broker. Messages received and not acknowledged are
    /// redelivered to other consumers (or to the next one to subscribe).
    pub async fn close(self) -> Result<()> {
        let mut first = None;
        for c in &self.handles() {
            if let Err(e) = c.close().await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl futures_core::Stream for Consumer {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.listener {
            return Poll::Ready(None);
        }
        if let Some(e) = self.pending_error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(delivery)) => {
                    if let Some(item) = self.take(delivery) {
                        return Poll::Ready(Some(item));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    self.expect_more();
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Sends the messages past the dead-letter policy's limit to the dead-letter topic, then
/// acknowledges them; one that cannot be sent there is negatively acknowledged (it comes back
/// and is tried again). Ends when the consumer is dropped.
async fn dead_letter_task(
    dl: Arc<DeadLetters>,
    mut rx: mpsc::UnboundedReceiver<(Message, ChildHandle)>,
) {
    while let Some((msg, child)) = rx.recv().await {
        match dl.send_to_dlq(&msg).await {
            Ok(_) => {
                child.dead_lettered();
                if let Err(e) = child.ack(msg.id, false).await {
                    tracing::warn!(id = %msg.id, error = %e, "dead-lettered message not acknowledged: it will come back");
                }
            }
            Err(e) => {
                tracing::warn!(id = %msg.id, error = %e, "cannot send to the dead-letter topic: the message comes back later");
                let _ = child.nack(msg.id, msg.redelivery_count);
            }
        }
    }
}

/// The task of a message listener: receives every message and hands it to the listener, one
/// at a time; ends when the consumer's queue closes (every partition ended) or the consumer
/// the application keeps is dropped or closed.
pub(crate) async fn listen<L: crate::MessageListener>(
    mut consumer: Consumer,
    listener: Arc<L>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let item = tokio::select! {
            _ = &mut stop => return,
            item = consumer.receive() => item,
        };
        match item {
            Ok(msg) => {
                let back = consumer
                    .child(&msg)
                    .ok()
                    .map(|child| (child, msg.id, msg.redelivery_count));
                let handled = CatchUnwind(Box::pin(listener.received(&consumer, msg))).await;
                if handled.is_err() {
                    // As the Java client, a failing listener does not stop the consumer; the
                    // message is handed back (negative ack) rather than left to an ack
                    // timeout there may not be.
                    match back {
                        Some((child, id, redelivery_count)) => {
                            tracing::warn!(%id, "message listener panicked: the message is negatively acknowledged");
                            let _ = child.nack(id, redelivery_count);
                        }
                        None => tracing::warn!("message listener panicked"),
                    }
                }
            }
            Err(Error::Closed(_)) => return,
            // A partition stopped, or a message could not be decrypted: the others go on.
            Err(e) => tracing::warn!(error = %e, "message listener: receive failed"),
        }
    }
}

/// A future whose panic is caught: `Err` when it panicked (as `futures`' `catch_unwind`).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwind<F> {
    type Output = std::result::Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
