//! [`ProducerBuilder`]: producer options, then [`ProducerBuilder::create`].

use std::sync::Arc;
use std::time::Duration;

use super::partition::PartitionConfig;
use crate::compression::Compression;
use crate::protocol::producer::batch::BatchLimits;

const DEFAULT_BATCHING: BatchLimits = BatchLimits {
    max_messages: 1000,
    max_bytes: 128 * 1024,
    max_delay: Duration::from_millis(10),
};
use std::sync::atomic::AtomicUsize;
use std::sync::RwLock;
use std::time::Instant;

use super::{Producer, ProducerInner, RoutingMode};
use crate::error::{Error, Result};
use crate::protocol::hash::HashingScheme;
use crate::protocol::topic::TopicName;
use crate::session::Session;

/// Producer access modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    /// Many producers may publish (the default).
    #[default]
    Shared,
    /// Only this producer may publish; creation fails if another holds the topic.
    Exclusive,
    /// Wait until this producer can be the exclusive one.
    WaitForExclusive,
    /// Take exclusive access, fencing out the current holder.
    ExclusiveWithFencing,
}

impl AccessMode {
    pub(crate) fn as_i32(self) -> i32 {
        match self {
            AccessMode::Shared => 0,
            AccessMode::Exclusive => 1,
            AccessMode::WaitForExclusive => 2,
            AccessMode::ExclusiveWithFencing => 3,
        }
    }
}

/// Builds a [`crate::Producer`]. Defaults as the official clients: send timeout 30 s, 1000
/// pending messages, fail fast when the queue is full (like the C++ and Python clients), key
/// routing with Murmur3.
#[derive(Debug, Clone)]
pub struct ProducerBuilder {
    pub(super) session: std::sync::Arc<Session>,
    pub(super) topic: String,
    config: PartitionConfig,
    hashing: HashingScheme,
    routing: RoutingMode,
    discovery_period: Duration,
    /// The bound of pending messages over all partitions (split evenly), if any.
    max_pending_across: Option<usize>,
    lazy_start: bool,

    interceptors: crate::interceptor::ProducerInterceptors,
    /// Trace-context propagation (`None`: the client's setting).
    propagate_trace_context: Option<bool>,
}

impl ProducerBuilder {
    pub(crate) fn new(session: std::sync::Arc<Session>, topic: String) -> Self {
        ProducerBuilder {
            session,
            topic,
            config: PartitionConfig {
                name: None,
                send_timeout: Some(Duration::from_secs(30)),
                max_pending: 1000,
                block_if_queue_full: false,
                properties: Vec::new(),
                access_mode: AccessMode::Shared,
                initial_sequence_id: None,
                batching: Some(DEFAULT_BATCHING),
                compression: Compression::None,
                key_based_batching: false,
                initial_subscription_name: None,
                chunking: false,
                chunk_max_size: None,
                schema: None,
                #[cfg(feature = "encryption")]
                encryption: None,
            },
            hashing: HashingScheme::JavaString,
            routing: RoutingMode::RoundRobin,
            discovery_period: Duration::from_secs(60),
            max_pending_across: None,
            lazy_start: false,

            interceptors: Default::default(),
            propagate_trace_context: None,
        }
    }

    /// Adds an interceptor (the Java client's `intercept`): it sees every message before it is
    /// sent, and its outcome. Several may be added; they are called in the order added.
    pub fn interceptor(mut self, interceptor: impl crate::ProducerInterceptor + 'static) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// How often a producer on a partitioned topic checks for partitions added later (default
    /// 60 s, as the official clients).
    pub fn partition_discovery_period(mut self, period: Duration) -> Self {
        self.discovery_period = period.max(Duration::from_millis(100));
        self
    }

    /// Whether this producer writes a W3C trace context (the `traceparent` property, as the
    /// Java client's tracing) into every message that has none: a new trace (random ids,
    /// sampled). A `traceparent` already in the properties is kept; a
    /// [`ProducerMessage::trace_context`](crate::ProducerMessage) set on a message is written
    /// whatever this says. Default: the
    /// client's [`ClientBuilder::propagate_trace_context`](crate::ClientBuilder::propagate_trace_context)
    /// (off).
    pub fn propagate_trace_context(mut self, on: bool) -> Self {
        self.propagate_trace_context = Some(on);
        self
    }

    /// How messages are spread over partitions (default: round robin, keys by hash).
    pub fn routing_mode(mut self, mode: RoutingMode) -> Self {
        self.routing = mode;
        self
    }

    /// The producer name (default: the broker chooses a unique one).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// How long a message may wait for its receipt before failing with
    /// [`Error::SendTimeout`]; `Duration::ZERO` waits forever.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// How many messages may await a receipt at once (per partition).
    pub fn max_pending_messages(mut self, max: usize) -> Self {
        self.config.max_pending = max.max(1);
        self
    }

    /// How many messages may await a receipt at once over all the partitions of a partitioned
    /// topic (the Java client's `maxPendingMessagesAcrossPartitions`): each partition gets an
    /// even share, at least 1, and never more than
    /// [`max_pending_messages`](Self::max_pending_messages). No bound by default.
    pub fn max_pending_messages_across_partitions(mut self, max: usize) -> Self {
        self.max_pending_across = Some(max.max(1));
        self
    }

    /// Starts the producers of a partitioned topic's partitions on demand, each on the first
    /// message routed to it (the Java client's `enableLazyStartPartitionedProducers`): `create`
    /// starts one (checking that the topic can be produced to), the others cost nothing until
    /// used. For topics of many partitions where each producer writes to few (keyed messages,
    /// [`RoutingMode::SinglePartition`]). As in the Java client, only with the Shared access
    /// mode (the default); other modes start every partition. Off by default.
    pub fn lazy_start_partitioned_producers(mut self, lazy: bool) -> Self {
        self.lazy_start = lazy;
        self
    }

    /// Whether `send` waits for room when the pending queue is full (true) or fails at once
    /// with [`Error::ProducerQueueFull`] (false, the default).
    pub fn block_if_queue_full(mut self, block: bool) -> Self {
        self.config.block_if_queue_full = block;
        self
    }

    /// Adds a producer property (sent on PRODUCER).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.properties.push((key.into(), value.into()));
        self
    }

    /// The access mode.
    pub fn access_mode(mut self, mode: AccessMode) -> Self {
        self.config.access_mode = mode;
        self
    }

    /// The sequence id of the message before the first one this producer sends (the first gets
    /// `id + 1`). Default: the broker's last stored id for this producer name, or −1.
    pub fn initial_sequence_id(mut self, id: u64) -> Self {
        self.config.initial_sequence_id = Some(id);
        self
    }

    /// Turns batching on (the default) or off. Batched messages share one entry on the broker;
    /// each keeps its own id (with its batch index) and receipt.
    pub fn batching(mut self, enabled: bool) -> Self {
        self.config.batching = if enabled {
            Some(self.config.batching.unwrap_or(DEFAULT_BATCHING))
        } else {
            None
        };
        self
    }

    /// The most messages in one batch (default 1000).
    pub fn batching_max_messages(mut self, max: usize) -> Self {
        if let Some(b) = self.config.batching.as_mut() {
            b.max_messages = max.max(1);
        }
        self
    }

    /// The most payload bytes in one batch (default 128 KiB).
    pub fn batching_max_bytes(mut self, max: usize) -> Self {
        if let Some(b) = self.config.batching.as_mut() {
            b.max_bytes = max.max(1);
        }
        self
    }

    /// How long a batch may wait for more messages before it is sent (default 10 ms). The
    /// timer is set up to 2 ms (and at most a fifth of the delay) early, as tokio's
    /// millisecond-grained timers fire about that late: the wait is at most `delay`.
    pub fn batching_max_publish_delay(mut self, delay: Duration) -> Self {
        if let Some(b) = self.config.batching.as_mut() {
            b.max_delay = delay;
        }
        self
    }

    /// Batches by key: one batch per ordering key (or key), so that every entry holds one key
    /// and Key_Shared consumers get each key's messages (the official clients' `KeyBased`
    /// batcher).
    pub fn key_based_batching(mut self, enabled: bool) -> Self {
        self.config.key_based_batching = enabled;
        self
    }

    /// Compresses payloads (whole batches) with this codec (default none).
    pub fn compression(mut self, codec: Compression) -> Self {
        self.config.compression = codec;
        self
    }

    /// Encrypts every message end to end for the key `name` (the Java client's
    /// `addEncryptionKey`; call it again for more keys: each can open the messages). Needs a
    /// [`crypto_key_reader`](Self::crypto_key_reader) that has the public key of each name.
    #[cfg(feature = "encryption")]
    pub fn encryption_key(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let e = self.encryption_settings();
        if !e.key_names.contains(&name) {
            e.key_names.push(name);
        }
        self
    }

    /// Where the public keys of the encryption keys come from (the Java client's
    /// `cryptoKeyReader`), for example a [`DefaultCryptoKeyReader`](crate::DefaultCryptoKeyReader)
    /// of PEM files.
    #[cfg(feature = "encryption")]
    pub fn crypto_key_reader(
        mut self,
        reader: impl crate::crypto::CryptoKeyReader + 'static,
    ) -> Self {
        self.encryption_settings().reader = std::sync::Arc::new(reader);
        self
    }

    /// What to do when a message cannot be encrypted: fail its send (the default) or send it
    /// unencrypted (the Java client's `cryptoFailureAction`). Encryption keys that cannot be
    /// read fail the producer's creation either way, as in the Java client.
    #[cfg(feature = "encryption")]
    pub fn crypto_failure_action(
        mut self,
        action: crate::crypto::ProducerCryptoFailureAction,
    ) -> Self {
        self.encryption_settings().failure_action = action;
        self
    }

    #[cfg(feature = "encryption")]
    fn encryption_settings(&mut self) -> &mut crate::crypto::ProducerEncryption {
        self.config
            .encryption
            .get_or_insert_with(|| crate::crypto::ProducerEncryption {
                reader: std::sync::Arc::new(crate::crypto::DefaultCryptoKeyReader::new()),
                key_names: Vec::new(),
                failure_action: crate::crypto::ProducerCryptoFailureAction::Fail,
            })
    }

    /// Splits messages larger than the broker's max message size into chunks that consumers
    /// reassemble (off by default, as in the official clients). Turns batching off: chunking
    /// and batching do not mix.
    pub fn chunking(mut self, enabled: bool) -> Self {
        self.config.chunking = enabled;
        if enabled {
            self.config.batching = None;
        }
        self
    }

    /// Caps each chunk at this many bytes (metadata included) when chunking, below the max
    /// message size.
    pub fn chunk_max_size(mut self, bytes: usize) -> Self {
        self.config.chunk_max_size = Some(bytes.max(1024));
        self
    }

    /// Declares the schema of what this producer sends (checked by a broker with a schema
    /// registry).
    pub fn schema_info(mut self, schema: crate::schema::SchemaInfo) -> Self {
        self.config.schema = schema.to_proto();
        self
    }

    /// Creates this subscription on the topic together with the producer (as the dead-letter
    /// producers of the official clients do), so that messages wait for their consumer.
    pub fn initial_subscription_name(mut self, name: impl Into<String>) -> Self {
        self.config.initial_subscription_name = Some(name.into());
        self
    }

    /// The hash that routes keyed messages to partitions (default
    /// [`HashingScheme::JavaString`], the Java client's default `JavaStringHash`; Murmur3 is its
    /// `Murmur3_32Hash`).
    pub fn hashing_scheme(mut self, scheme: HashingScheme) -> Self {
        self.hashing = scheme;
        self
    }

    /// Looks the topic up, creates the producer on every partition and returns it.
    pub async fn create(self) -> Result<Producer> {
        let kind = crate::registry::declared_kind(self.config.schema.as_ref());
        let topic = self.topic.clone();
        self.create_untyped()
            .await
            .map_err(|e| crate::registry::incompatible(e, &topic, kind))
    }

    /// A typed producer: values encoded with `schema`, which is declared to the broker (as the
    /// Java client's `newProducer(Schema)`). Set the other options before this.
    pub fn schema<S: crate::schema::Schema>(self, schema: S) -> super::TypedProducerBuilder<S> {
        super::TypedProducerBuilder::new(self, schema)
    }

    /// A producer of bytes validated against the topic's schema, which it declares (the Java
    /// client's `Schema.AUTO_PRODUCE_BYTES()`): the topic's schema is read from the registry
    /// when the producer is created; on a topic without a schema, bytes pass as they are.
    pub fn auto_produce_schema(
        self,
    ) -> super::TypedProducerBuilder<crate::schema::AutoProduceBytesSchema> {
        super::TypedProducerBuilder::from_topic(self, crate::schema::AutoProduceBytesSchema::new)
    }

    async fn create_untyped(self) -> Result<Producer> {
        let topic = TopicName::parse(&self.topic)?;
        let inner = &self.session;
        if inner.is_closed() {
            return Err(Error::Closed("client"));
        }
        let partitions = inner.partitioned_metadata(&topic).await?;
        let topics: Vec<TopicName> = if partitions == 0 {
            vec![topic.clone()]
        } else {
            (0..partitions).map(|i| topic.partition(i)).collect()
        };
        let mut config = self.config.clone();
        if let (Some(across), true) = (self.max_pending_across, partitions > 0) {
            config.max_pending = per_partition_pending(config.max_pending, across, partitions);
        }
        let n = topics.len().max(1);
        let start = usize::from_str_radix(&crate::consumer::random_name(4), 36).unwrap_or(0) % n;
        let lazy = self.lazy_start && partitions > 0 && config.access_mode == AccessMode::Shared;
        let mut slots = Vec::with_capacity(topics.len());
        for (i, t) in topics.into_iter().enumerate() {
            let slot = super::Slot::new(t, (partitions > 0).then_some(i as i32));
            // Lazily: one partition now (the one unkeyed messages start on), to check that the
            // topic can be produced to; the others on their first message.
            if !lazy || i == start {
                slot.start(&self.session, &config).await?;
            }
            slots.push(slot);
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let single = (partitions == 0)
            .then(|| slots.first().and_then(|s| s.handle().cloned()))
            .flatten();
        let inner = Arc::new(ProducerInner {
            topic,
            partitioned: partitions > 0,
            single,
            partitions: RwLock::new(slots),
            lazy: lazy.then(|| (self.session.clone(), config.clone())),
            closed: std::sync::atomic::AtomicBool::new(false),
            hashing: self.hashing,
            routing: self.routing,
            round_robin: AtomicUsize::new(0),
            start,
            switch_every: self
                .config
                .batching
                .map(|b| (b.max_delay * 10).max(Duration::from_millis(1))),
            created: Instant::now(),
            interceptors: self.interceptors,
            propagate: self
                .propagate_trace_context
                .unwrap_or(self.session.propagate_trace_context),
            _watcher: (partitions > 0).then_some(stop),
        });
        if partitions > 0 {
            tokio::spawn(super::watch_partitions(
                Arc::downgrade(&inner),
                self.session.clone(),
                config,
                self.discovery_period,
                stopped,
            ));
        }
        Ok(Producer { inner })
    }
}

/// Each partition's bound of pending messages under a bound over all of them (as the Java
/// client: an even share, at least 1, at most the per-partition bound).
fn per_partition_pending(max_pending: usize, across: usize, partitions: u32) -> usize {
    max_pending.min((across / partitions.max(1) as usize).max(1))
}

#[cfg(test)]
mod tests {
    use super::per_partition_pending;

    #[test]
    fn the_bound_across_partitions_is_shared_evenly() {
        assert_eq!(per_partition_pending(1000, 100, 4), 25);
        assert_eq!(
            per_partition_pending(10, 100, 4),
            10,
            "never above the partition's own"
        );
        assert_eq!(per_partition_pending(1000, 3, 4), 1, "at least one each");
        assert_eq!(per_partition_pending(1000, 100, 0), 100);
    }
}
