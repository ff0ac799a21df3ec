//! [`ConsumerBuilder`]: subscription options, then [`ConsumerBuilder::subscribe`].

use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;

use crate::channel as mpsc;

use super::discovery::{Children, Discovery, TopicPattern};
use super::key_shared::KeySharedPolicy;
use super::{Consumer, DeadLetterPolicy, DeadLetters};
use crate::error::{Error, Result};
use crate::protocol::consumer::{ChildConfig, StartPosition, SubscribeExtras};
use crate::protocol::topic::TopicName;
use crate::session::Session;
use std::sync::Arc as SessionArc;

/// `len` random lowercase letters.
pub(crate) fn random_name(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut x = seed.finish() | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Subscription types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionType {
    /// One consumer at a time (the default).
    #[default]
    Exclusive,
    /// Messages spread over all consumers, round robin.
    Shared,
    /// One active consumer, the others take over if it goes.
    Failover,
    /// Messages spread by key: one key always goes to the same consumer, in order.
    KeyShared,
}

impl SubscriptionType {
    pub(crate) fn as_i32(self) -> i32 {
        match self {
            SubscriptionType::Exclusive => 0,
            SubscriptionType::Shared => 1,
            SubscriptionType::Failover => 2,
            SubscriptionType::KeyShared => 3,
        }
    }

    /// Whether redelivery requests name message ids (Shared, Key_Shared) rather than asking for
    /// everything unacknowledged (Exclusive, Failover).
    pub(crate) fn redelivers_by_id(self) -> bool {
        matches!(self, SubscriptionType::Shared | SubscriptionType::KeyShared)
    }
}

/// What a consumer does with an encrypted message it cannot decrypt (the Java client's
/// `ConsumerCryptoFailureAction`): one for which it has no
/// [`crypto_key_reader`](ConsumerBuilder::crypto_key_reader), no private key of any of its
/// key names, or a wrong one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumerCryptoFailureAction {
    /// The default: the message is not delivered and not acknowledged (it stays on the
    /// subscription for a consumer that can decrypt it); `receive` returns
    /// [`Error::Encrypted`](crate::Error::Encrypted) in its place.
    #[default]
    Fail,
    /// The message is acknowledged with a decryption error and never delivered.
    Discard,
    /// The message is delivered as it is, encrypted (and, if so, compressed and batched), with
    /// [`Message::is_encrypted`](crate::Message::is_encrypted) true.
    Consume,
}

/// Whether the subscription is kept by the broker (the Java client's `SubscriptionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// The broker keeps the subscription and its position until it is unsubscribed (the
    /// default).
    #[default]
    Durable,
    /// The position lives in the broker's memory only: the subscription goes away when its
    /// last consumer disconnects, and nothing of it survives a broker restart. A consumer
    /// starts at its [`start_message_id`](ConsumerBuilder::start_message_id), or its initial
    /// position; after a reconnect it goes on after the last message it handed out, as the
    /// Java client's.
    NonDurable,
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialPosition {
    /// After the last message (the default).
    #[default]
    Latest,
    /// At the first message kept on the topic.
    Earliest,
}

/// The Java client's rule for `readCompacted`: persistent topics only (a non-persistent topic
/// keeps nothing to compact), and one consumer reading at a time (Exclusive or Failover), since
/// the compacted view is read in order from one cursor.
fn check_read_compacted(
    sub_type: SubscriptionType,
    targets: &[TopicName],
    pattern: Option<&TopicPattern>,
) -> Result<()> {
    if !matches!(
        sub_type,
        SubscriptionType::Exclusive | SubscriptionType::Failover
    ) {
        return Err(Error::InvalidConfig(format!(
            "read_compacted can only be used with Exclusive or Failover subscriptions on \
             persistent topics, not a {sub_type:?} subscription"
        )));
    }
    let non_persistent = targets
        .iter()
        .find(|t| t.domain() != crate::protocol::topic::Domain::Persistent)
        .map(|t| t.full_name().to_owned())
        .or_else(|| {
            pattern
                .filter(|p| !p.is_persistent())
                .map(|p| p.source().to_owned())
        });
    if let Some(topic) = non_persistent {
        return Err(Error::InvalidConfig(format!(
            "read_compacted can only be used on persistent topics, not on {topic}"
        )));
    }
    Ok(())
}

/// Builds a [`Consumer`]. Defaults as the official clients: Exclusive, Latest, a receiver queue
/// of 1000, negative acks redelivered after 60 s.
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    pub(super) session: SessionArc<Session>,
    topics: Vec<String>,
    subscription: Option<String>,
    config: ChildConfig,
    dead_letter: Option<DeadLetterPolicy>,
    retry: bool,
    pattern: Option<String>,
    discovery_period: Duration,
    key_shared_policy: Option<KeySharedPolicy>,
    allow_out_of_order_delivery: bool,
    mode: SubscriptionMode,
    start_message_id: Option<crate::wire::MessageId>,
    start_inclusive: Option<bool>,
    /// The bound of queued messages over all partitions (split evenly).
    max_total_queue: u32,
    listener: Option<ListenerStart>,
}

/// Starts a message listener's task on a consumer; it ends when the receiver fires (or its
/// sender is dropped).
#[derive(Clone)]
struct ListenerStart(Arc<dyn Fn(Consumer, oneshot::Receiver<()>) + Send + Sync>);

impl std::fmt::Debug for ListenerStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerStart")
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(session: SessionArc<Session>, topic: String) -> Self {
        ConsumerBuilder {
            topics: vec![topic],
            subscription: None,
            dead_letter: None,
            retry: false,
            pattern: None,
            discovery_period: Duration::from_secs(60),
            key_shared_policy: None,
            allow_out_of_order_delivery: false,
            mode: SubscriptionMode::Durable,
            start_message_id: None,
            start_inclusive: None,
            max_total_queue: 50_000,
            config: ChildConfig {
                subscription: String::new(),
                sub_type: SubscriptionType::Exclusive,
                initial_position: InitialPosition::Latest,
                consumer_name: None,
                receiver_queue_size: 1000,
                auto_scaled_queue: false,
                nack_delay: Duration::from_secs(60),
                priority_level: None,
                properties: Vec::new(),
                start: None,
                durable: true,
                reader: false,
                extras: SubscribeExtras::default(),
                ack_group_delay: Duration::from_millis(100),
                ack_group_max: 1000,
                batch_index_ack: false,
                ack_receipts: false,
                nack_backoff: None,
                ack_timeout: None,
                schema: None,
                max_pending_chunked: 10,
                chunk_expiry: Duration::from_secs(60),
                max_chunked_size: 512 * 1024 * 1024,
                crypto_failure_action: ConsumerCryptoFailureAction::Fail,
                #[cfg(feature = "encryption")]
                crypto_key_reader: None,
                operation_timeout: session.operation_timeout,
                read_compacted: false,
                start_paused: false,
                paused: Default::default(),
                report_redeliveries: false,
                interceptors: Default::default(),
            },
            listener: None,
            session,
        }
    }

    /// What to do with encrypted messages this consumer cannot decrypt (default
    /// [`ConsumerCryptoFailureAction::Fail`]).
    pub fn crypto_failure_action(mut self, action: ConsumerCryptoFailureAction) -> Self {
        self.config.crypto_failure_action = action;
        self
    }

    /// Where the private keys of encrypted messages come from (the Java client's
    /// `cryptoKeyReader`): each message's data key is decrypted with the private key of one of
    /// its key names, then its payload. Messages that still cannot be decrypted go the way of
    /// the [`crypto_failure_action`](Self::crypto_failure_action).
    #[cfg(feature = "encryption")]
    pub fn crypto_key_reader(self, reader: impl crate::crypto::CryptoKeyReader + 'static) -> Self {
        self.crypto_key_reader_arc(Arc::new(reader))
    }

    /// [`crypto_key_reader`](Self::crypto_key_reader) with a shared reader.
    #[cfg(feature = "encryption")]
    pub(crate) fn crypto_key_reader_arc(
        mut self,
        reader: Arc<dyn crate::crypto::CryptoKeyReader>,
    ) -> Self {
        self.config.crypto_key_reader = Some(reader);
        self
    }

    /// Adds another topic to consume from.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// The subscription name (required).
    pub fn subscription(mut self, name: impl Into<String>) -> Self {
        self.subscription = Some(name.into());
        self
    }

    /// The subscription type.
    pub fn subscription_type(mut self, sub_type: SubscriptionType) -> Self {
        self.config.sub_type = sub_type;
        self
    }

    /// Where a new subscription starts.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.config.initial_position = position;
        self
    }

    /// The consumer name (Failover orders consumers by name).
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.config.consumer_name = Some(name.into());
        self
    }

    /// Starts each partition's receiver queue at one message and doubles it, up to
    /// [`receiver_queue_size`](Self::receiver_queue_size), whenever the application asks for a
    /// message and finds none queued (the Java client's `autoScaledReceiverQueueSizeEnabled`):
    /// a slow consumer holds few messages (and other consumers of a Shared subscription get the
    /// rest), a fast one soon has its whole queue. Off by default.
    pub fn auto_scaled_receiver_queue_size(mut self, enabled: bool) -> Self {
        self.config.auto_scaled_queue = enabled;
        self
    }

    /// The most messages queued over all partitions of a consumer of several partitions or
    /// topics (the Java client's `maxTotalReceiverQueueSizeAcrossPartitions`, 50,000 by
    /// default): each partition's queue is the receiver queue size or an even share of this,
    /// whichever is smaller (at least 1), counted over the partitions there are at subscribe.
    pub fn max_total_receiver_queue_size_across_partitions(mut self, max: u32) -> Self {
        self.max_total_queue = max.max(1);
        self
    }

    /// How many messages the broker may push ahead of the application (per partition).
    pub fn receiver_queue_size(mut self, size: u32) -> Self {
        self.config.receiver_queue_size = size.max(1);
        self
    }

    /// How long after a negative ack the message is redelivered (at least 100 ms).
    pub fn negative_ack_redelivery_delay(mut self, delay: Duration) -> Self {
        self.config.nack_delay = delay.max(Duration::from_millis(100));
        self
    }

    /// Groups acks for this long (default 100 ms, as the official clients); zero sends each
    /// ack at once. Pending acks are always sent before close.
    pub fn ack_group_time(mut self, delay: Duration) -> Self {
        self.config.ack_group_delay = delay;
        self
    }

    /// Sends grouped acks as soon as this many are pending (default 1000).
    pub fn ack_group_max_size(mut self, max: usize) -> Self {
        self.config.ack_group_max = max;
        self
    }

    /// Acknowledges single messages of a batch on the broker, so that acking one message does
    /// not leave the broker to redeliver the whole batch (needs the broker's
    /// `acknowledgmentAtBatchIndexLevelEnabled`). Off by default, as in the official clients.
    pub fn batch_index_ack(mut self, enabled: bool) -> Self {
        self.config.batch_index_ack = enabled;
        self
    }

    /// Makes [`Consumer::ack`] wait for the broker's confirmation (ACK_RESPONSE) and report its
    /// real result. Off by default.
    pub fn ack_receipts(mut self, enabled: bool) -> Self {
        self.config.ack_receipts = enabled;
        self
    }

    /// Grows the negative-ack delay with the redelivery count: `min × 2^count`, at most `max`
    /// (instead of the fixed delay).
    pub fn negative_ack_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.nack_backoff = Some((min.max(Duration::from_millis(100)), max.max(min)));
        self
    }

    /// Redelivers messages the application received but did not acknowledge within `timeout`
    /// (at least 1 s). Off by default, as in the official clients.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = Some(timeout.max(Duration::from_secs(1)));
        self
    }

    /// Consumes every topic whose full name matches this regex instead of a list of topics
    /// (see [`crate::PulsarClient::pattern_consumer`]).
    pub fn topics_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self.topics.retain(|t| !t.is_empty());
        self
    }

    /// How often a pattern subscription looks for new topics and a partitioned topic for new
    /// partitions (default 60 s).
    pub fn auto_discovery_period(mut self, period: Duration) -> Self {
        self.discovery_period = period.max(Duration::from_millis(100));
        self
    }

    /// Sends messages redelivered more than the policy allows to a dead-letter topic.
    pub fn dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letter = Some(policy);
        self
    }

    /// Also subscribes to the retry topic, so that [`Consumer::reconsume_later`] can republish
    /// messages there (without a dead-letter policy, at most 16 times as the Go client).
    pub fn enable_retry(mut self, enabled: bool) -> Self {
        self.retry = enabled;
        self
    }

    /// Declares the schema this consumer reads (checked by a broker with a schema registry).
    pub fn schema_info(mut self, schema: crate::schema::SchemaInfo) -> Self {
        self.config.schema = schema.to_proto();
        self
    }

    /// How many chunked messages may be incomplete at once (default 10, as the Java and C++
    /// clients); past it the oldest is dropped and redelivered.
    pub fn max_pending_chunked_messages(mut self, max: usize) -> Self {
        self.config.max_pending_chunked = max.max(1);
        self
    }

    /// How long an incomplete chunked message is kept (default 60 s).
    pub fn expire_incomplete_chunked_message_after(mut self, after: Duration) -> Self {
        self.config.chunk_expiry = after;
        self
    }

    /// The largest chunked message accepted, in bytes (default 512 MiB); larger ones are
    /// refused before their chunks are buffered.
    pub fn max_chunked_message_size(mut self, bytes: usize) -> Self {
        self.config.max_chunked_size = bytes;
        self
    }

    /// The priority level (Shared: consumers with a lower level are served first).
    pub fn priority_level(mut self, level: i32) -> Self {
        self.config.priority_level = Some(level);
        self
    }

    /// Adds a consumer property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.properties.push((key.into(), value.into()));
        self
    }

    /// Reads the compacted view of the topic (off by default): the latest message of each key
    /// up to the compaction horizon (keys whose latest message is a tombstone, an empty
    /// payload, are left out), then every message after it, as the official clients'
    /// `readCompacted`. A topic never compacted is read in full.
    ///
    /// As the Java client, only allowed on persistent topics with an Exclusive or Failover
    /// subscription: [`subscribe`](Self::subscribe) fails with
    /// [`Error::InvalidConfig`] otherwise.
    pub fn read_compacted(mut self, enabled: bool) -> Self {
        self.config.read_compacted = enabled;
        self
    }

    /// Adds an interceptor (the Java client's `intercept`): it sees every message before the
    /// application, every acknowledgement and every redelivery. Several may be added; they are
    /// called in the order added.
    pub fn interceptor(mut self, interceptor: impl crate::ConsumerInterceptor + 'static) -> Self {
        self.config.interceptors.push(Arc::new(interceptor));
        self.config.report_redeliveries = true;
        self
    }

    /// Subscribes paused (the Java client's `startPaused`): no permits are granted, so no
    /// message comes, until [`Consumer::resume`].
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.config.start_paused = paused;
        self
    }

    /// Makes this a callback consumer (the Java client's `messageListener`): a task of the
    /// consumer's receives every message and hands it to `listener`, one at a time, in order;
    /// the listener acknowledges through the consumer it is given. The consumer
    /// [`subscribe`](Self::subscribe) returns still acknowledges, pauses, seeks and closes, but
    /// its `receive` fails with [`Error::NotAllowed`]. Dropping or closing it stops the
    /// listener.
    pub fn message_listener(mut self, listener: impl crate::MessageListener) -> Self {
        let listener = Arc::new(listener);
        self.listener = Some(ListenerStart(Arc::new(move |consumer, stop| {
            tokio::spawn(super::listen(consumer, listener.clone(), stop));
        })));
        self
    }

    /// How a Key_Shared subscription's keys are spread (default
    /// [`KeySharedPolicy::AutoSplit`]). Only for [`SubscriptionType::KeyShared`]:
    /// [`subscribe`](Self::subscribe) fails with [`Error::InvalidConfig`] on another type, and
    /// with [`Error::InvalidKeySharedPolicy`] on bad sticky ranges, before anything is sent.
    pub fn key_shared_policy(mut self, policy: KeySharedPolicy) -> Self {
        self.key_shared_policy = Some(policy);
        self
    }

    /// Key_Shared: lets the broker deliver a key's messages to a new consumer before the
    /// previous consumer acknowledged the earlier ones (off by default: per-key order kept).
    pub fn allow_out_of_order_delivery(mut self, allow: bool) -> Self {
        self.allow_out_of_order_delivery = allow;
        self
    }

    /// Properties of the subscription, kept by the broker when it creates the subscription (and
    /// shown in the topic's stats as `subscriptionProperties`); a consumer joining an existing
    /// subscription does not change them.
    pub fn subscription_properties(mut self, properties: HashMap<String, String>) -> Self {
        let mut properties: Vec<_> = properties.into_iter().collect();
        properties.sort();
        self.config.extras.subscription_properties = properties;
        self
    }

    /// Asks the broker to replicate the subscription's position to the other clusters of a
    /// geo-replicated topic (off by default; the namespace must allow it).
    pub fn replicate_subscription_state(mut self, replicate: bool) -> Self {
        self.config.extras.replicate_subscription_state = replicate;
        self
    }

    /// Durable (the default) or non-durable: see [`SubscriptionMode`].
    pub fn subscription_mode(mut self, mode: SubscriptionMode) -> Self {
        self.mode = mode;
        self
    }

    /// Where a [`SubscriptionMode::NonDurable`] subscription starts:
    /// [`MessageId::EARLIEST`](crate::MessageId::EARLIEST),
    /// [`MessageId::LATEST`](crate::MessageId::LATEST) or the id of a message (reading starts
    /// after it, unless [`start_message_id_inclusive`](Self::start_message_id_inclusive)).
    /// Without it, the [`initial_position`](Self::initial_position). A durable subscription's
    /// position is the broker's: [`subscribe`](Self::subscribe) fails with
    /// [`Error::InvalidConfig`] if this is set on one.
    pub fn start_message_id(mut self, id: crate::wire::MessageId) -> Self {
        self.start_message_id = Some(id);
        self
    }

    /// Whether a [`SubscriptionMode::NonDurable`] subscription's start message is itself
    /// delivered (default false; the Java client's `startMessageIdInclusive`). With
    /// [`MessageId::LATEST`](crate::MessageId::LATEST) the topic's last message is the first
    /// delivered. Not for durable subscriptions ([`Error::InvalidConfig`]).
    pub fn start_message_id_inclusive(mut self, inclusive: bool) -> Self {
        self.start_inclusive = Some(inclusive);
        self
    }

    /// Makes this a reader's subscription: non-durable, starting at `start`.
    pub(crate) fn reader_start(mut self, start: StartPosition) -> Self {
        self.config.start = Some(start);
        self.config.durable = false;
        self.config.reader = true;
        self
    }

    /// The subscription options checked and put into the configuration, before anything goes
    /// on the wire. Returns whether the consumer must move to the last message once subscribed
    /// (non-durable from Latest, inclusive).
    fn apply_subscription_options(&mut self) -> Result<bool> {
        let key_shared = self.config.sub_type == SubscriptionType::KeyShared;
        if let Some(policy) = &self.key_shared_policy {
            if !key_shared {
                return Err(Error::InvalidConfig(format!(
                    "a Key_Shared policy needs a KeyShared subscription, not {:?}",
                    self.config.sub_type
                )));
            }
            policy.validate()?;
        }
        self.config.extras.key_shared = key_shared.then(|| {
            self.key_shared_policy
                .clone()
                .unwrap_or_default()
                .to_proto(self.allow_out_of_order_delivery)
        });
        if self.config.reader {
            return Ok(false);
        }
        match self.mode {
            SubscriptionMode::Durable => {
                if self.start_message_id.is_some() || self.start_inclusive.is_some() {
                    return Err(Error::InvalidConfig(
                        "start_message_id and start_message_id_inclusive need                          SubscriptionMode::NonDurable (a durable subscription's position is                          the broker's)"
                            .into(),
                    ));
                }
                Ok(false)
            }
            SubscriptionMode::NonDurable => {
                let id = self
                    .start_message_id
                    .unwrap_or(match self.config.initial_position {
                        InitialPosition::Latest => crate::wire::MessageId::LATEST,
                        InitialPosition::Earliest => crate::wire::MessageId::EARLIEST,
                    });
                let inclusive = self.start_inclusive.unwrap_or(false);
                self.config.durable = false;
                self.config.start = Some(StartPosition { id, inclusive });
                Ok(id == crate::wire::MessageId::LATEST && inclusive)
            }
        }
    }

    /// Subscribes on every topic (every partition of partitioned ones) and returns the consumer.
    pub async fn subscribe(self) -> Result<Consumer> {
        let kind = crate::registry::declared_kind(self.config.schema.as_ref());
        let topic = self.topics.first().cloned().unwrap_or_default();
        self.subscribe_untyped()
            .await
            .map_err(|e| crate::registry::incompatible(e, &topic, kind))
    }

    /// A typed consumer: messages decoded with `schema`, which is declared to the broker (as
    /// the Java client's `newConsumer(Schema)`). Set the other options before this.
    pub fn schema<S: crate::schema::Schema>(self, schema: S) -> super::TypedConsumerBuilder<S> {
        super::TypedConsumerBuilder::new(self, schema)
    }

    async fn subscribe_untyped(mut self) -> Result<Consumer> {
        let to_last = self.apply_subscription_options()?;
        let subscription = self
            .subscription
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidConfig("a consumer needs a subscription name".into()))?;
        let mut config = self.config;
        config.subscription = subscription;
        // This consumer's own (builders are cloned).
        config.paused = Arc::new(std::sync::atomic::AtomicBool::new(config.start_paused));
        if config.consumer_name.is_none() {
            // Like the official clients: a random name (Failover orders consumers by name).
            config.consumer_name = Some(random_name(5));
        }
        let inner = &self.session;
        if inner.is_closed() {
            return Err(Error::Closed("client"));
        }
        let mut dead_letters = match (self.dead_letter, self.retry) {
            (None, false) => None,
            (policy, _) => Some(DeadLetters::new(
                self.session.clone(),
                config.subscription.clone(),
                policy.unwrap_or_else(|| DeadLetterPolicy::new(16)),
            )),
        };
        let pattern = self
            .pattern
            .as_deref()
            .map(TopicPattern::parse)
            .transpose()?;
        if config.read_compacted {
            // Before any lookup: the topics named are checked once they are parsed.
            check_read_compacted(config.sub_type, &[], pattern.as_ref())?;
        }
        let mut topics = self.topics.clone();
        if self.retry {
            if let Some(dl) = dead_letters.as_mut() {
                // One retry topic per subscription, as the Java client: from the first topic,
                // or in a pattern's namespace; subscribed here, and where every retry goes.
                let retry = match (self.topics.iter().find(|t| !t.is_empty()), &pattern) {
                    (Some(first), _) => dl.retry_topic(first),
                    (None, Some(p)) => dl
                        .policy
                        .retry_letter_topic
                        .clone()
                        .unwrap_or_else(|| p.legacy_topic(&config.subscription, "RETRY")),
                    (None, None) => String::new(),
                };
                if !retry.is_empty() {
                    dl.set_retry_topic(retry.clone());
                    topics.push(retry);
                }
            }
        }
        let mut targets: Vec<TopicName> = Vec::new();
        if let Some(p) = &pattern {
            targets.extend(p.list(&self.session).await?);
        }
        for t in topics.iter().filter(|t| !t.is_empty()) {
            targets.push(TopicName::parse(t)?);
        }
        if targets.is_empty() && pattern.is_none() {
            return Err(Error::InvalidConfig("a consumer needs a topic".into()));
        }
        if config.read_compacted {
            check_read_compacted(config.sub_type, &targets, pattern.as_ref())?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let children: Children = Arc::new(RwLock::new(Vec::new()));
        let mut discovery = Discovery {
            session: self.session.clone(),
            config: config.clone(),
            out: tx,
            children: Arc::downgrade(&children),
            topics: HashMap::new(),
            fixed: if pattern.is_some() {
                topics
                    .iter()
                    .filter_map(|t| TopicName::parse(t).ok())
                    .map(|t| t.base().full_name().to_owned())
                    .collect()
            } else {
                Default::default()
            },
            pattern,
            period: self.discovery_period,
        };
        let mut counts = Vec::with_capacity(targets.len());
        for topic in &targets {
            counts.push(inner.partitioned_metadata(topic).await?);
        }
        let total: u32 = counts.iter().map(|n| (*n).max(1)).sum();
        if total > 1 {
            let size = per_partition_queue(config.receiver_queue_size, self.max_total_queue, total);
            config.receiver_queue_size = size;
            discovery.config.receiver_queue_size = size;
        }
        for (topic, n) in targets.iter().zip(counts) {
            let started = discovery.start_topic(&children, topic, n, 0).await;
            if let Err(e) = started {
                let handles: Vec<_> = children.read().map(|c| c.clone()).unwrap_or_default();
                for c in handles {
                    let _ = c.close().await;
                }
                return Err(e);
            }
        }
        let discover =
            discovery.pattern.is_some() || discovery.topics.values().any(|(n, _)| *n > 0);
        let stop = if discover {
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(discovery.run(stopped));
            Some(stop)
        } else {
            None
        };
        let mut consumer = Consumer::new(
            self.topics,
            config.subscription,
            config.sub_type,
            children,
            rx,
            dead_letters,
            stop,
        );
        consumer.interceptors = config.interceptors;
        consumer.auto_scaled = config.auto_scaled_queue;
        consumer.paused = config.paused;
        if to_last {
            // Latest, inclusive: as a reader, the last message is the first one delivered.
            consumer.seek_each_to_last().await?;
        }
        Ok(match self.listener {
            Some(ListenerStart(start)) => {
                let (user, worker, stop) = consumer.split_for_listener();
                start(worker, stop);
                user
            }
            None => consumer,
        })
    }
}

/// Each partition's receiver queue under a bound over all of them (as the Java client: the
/// smaller of the queue size and an even share, at least 1).
fn per_partition_queue(queue_size: u32, max_total: u32, partitions: u32) -> u32 {
    queue_size.min(max_total / partitions.max(1)).max(1)
}

#[cfg(test)]
mod queue_tests {
    use super::per_partition_queue;

    #[test]
    fn the_total_queue_is_shared_evenly_between_partitions() {
        assert_eq!(per_partition_queue(1000, 50_000, 4), 1000);
        assert_eq!(per_partition_queue(1000, 50_000, 100), 500);
        assert_eq!(per_partition_queue(1000, 8, 4), 2);
        assert_eq!(per_partition_queue(1000, 3, 4), 1, "at least one");
    }
}
