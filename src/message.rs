//! Messages: [`ProducerMessage`] to send, [`Message`] received.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::schema::SchemaVersion;
use crate::trace::TraceContext;
use crate::wire::MessageId;

/// A message to send, built like the official clients' `send(content, properties=...,
/// partition_key=...)`.
///
/// ```
/// use pulsar_wire::ProducerMessage;
/// let msg = ProducerMessage::new("Hello python client, this is a msg.")
///     .property("k", "v")
///     .partition_key("yourKey");
/// assert_eq!(msg.properties["k"], "v");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerMessage {
    /// The payload.
    pub payload: Bytes,
    /// Application properties.
    pub properties: BTreeMap<String, String>,
    /// The key: routes the message to a partition and to a Key_Shared consumer.
    pub partition_key: Option<String>,
    /// The ordering key: overrides the key for Key_Shared ordering.
    pub ordering_key: Option<Bytes>,
    /// The event time, in milliseconds since the epoch (0 or `None`: unset).
    pub event_time: Option<u64>,
    /// A sequence id chosen by the application (for broker deduplication); `None`: the producer
    /// assigns the next one.
    pub sequence_id: Option<u64>,
    /// Deliver no earlier than this time (ms since the epoch); such messages are never batched.
    pub deliver_at: Option<u64>,
    /// The clusters to replicate to, overriding the namespace's; `["__local__"]` disables
    /// replication. Such messages are never batched.
    pub replicate_to: Option<Vec<String>>,
    /// Send in this transaction: the message becomes visible when the transaction commits,
    /// never if it aborts. Batched only with messages of the same transaction.
    pub transaction: Option<crate::transaction::Transaction>,
    /// The partition key is the base64 of the key's bytes (`partition_key_b64_encoded`): set by
    /// [`ProducerMessage::key_bytes`] and by KeyValue schemas with the SEPARATED encoding.
    pub partition_key_b64_encoded: bool,
    /// The schema version of this message's payload, when it is not the producer's own (a
    /// message written with another schema, registered with GET_OR_CREATE_SCHEMA); `None`:
    /// the version the broker gave the producer's schema. Messages of different versions are
    /// never batched together.
    pub schema_version: Option<SchemaVersion>,
    /// The trace context to write into the message's `traceparent` (and `tracestate`)
    /// properties, replacing any there: the caller's current context, to link the consumer's
    /// work to it. Written whether or not the producer propagates trace contexts on its own
    /// ([`ProducerBuilder::propagate_trace_context`](crate::ProducerBuilder::propagate_trace_context)).
    pub trace_context: Option<TraceContext>,
}

impl ProducerMessage {
    /// A message with this payload.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        ProducerMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// Adds a property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the partition key.
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// Sets the key as bytes: sent as their base64 with `partition_key_b64_encoded`, as the
    /// Java client's `keyBytes` (routing and Key_Shared use the base64 text).
    pub fn key_bytes(mut self, key: impl AsRef<[u8]>) -> Self {
        use base64::Engine as _;
        self.partition_key = Some(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
        self.partition_key_b64_encoded = true;
        self
    }

    /// Sets the ordering key.
    pub fn ordering_key(mut self, key: impl Into<Bytes>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Sets the event time (milliseconds since the epoch).
    pub fn event_time(mut self, millis: u64) -> Self {
        self.event_time = Some(millis);
        self
    }

    /// Sets the sequence id.
    pub fn sequence_id(mut self, id: u64) -> Self {
        self.sequence_id = Some(id);
        self
    }

    /// Delivers the message no earlier than `millis` (ms since the epoch).
    pub fn deliver_at(mut self, millis: u64) -> Self {
        self.deliver_at = Some(millis);
        self
    }

    /// Delivers the message no earlier than `delay` from now.
    pub fn deliver_after(self, delay: std::time::Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.deliver_at(now.saturating_add(delay.as_millis() as u64))
    }

    /// Replicates the message to these clusters only.
    pub fn replication_clusters(mut self, clusters: Vec<String>) -> Self {
        self.replicate_to = Some(clusters);
        self
    }

    /// Sends the message in `txn` (the Java client's `newMessage(txn)`).
    pub fn transaction(mut self, txn: &crate::transaction::Transaction) -> Self {
        self.transaction = Some(txn.clone());
        self
    }

    /// Sets the trace context written into the message's `traceparent` and `tracestate`
    /// properties (see [`ProducerMessage::trace_context`](Self#structfield.trace_context)).
    pub fn trace_context(mut self, ctx: TraceContext) -> Self {
        self.trace_context = Some(ctx);
        self
    }

    /// Keeps the message in the local cluster (no geo-replication).
    pub fn disable_replication(mut self) -> Self {
        self.replicate_to = Some(vec!["__local__".to_owned()]);
        self
    }
}

impl From<&str> for ProducerMessage {
    fn from(s: &str) -> Self {
        ProducerMessage::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ProducerMessage {
    fn from(s: String) -> Self {
        ProducerMessage::new(s)
    }
}

impl From<Vec<u8>> for ProducerMessage {
    fn from(v: Vec<u8>) -> Self {
        ProducerMessage::new(v)
    }
}

impl From<Bytes> for ProducerMessage {
    fn from(b: Bytes) -> Self {
        ProducerMessage::new(b)
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub(crate) id: MessageId,
    pub(crate) topic: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) partition_key: Option<String>,
    pub(crate) ordering_key: Option<Bytes>,
    pub(crate) event_time: Option<u64>,
    pub(crate) publish_time: u64,
    pub(crate) producer_name: Arc<str>,
    pub(crate) sequence_id: u64,
    pub(crate) redelivery_count: u32,
    /// Which partition task of the consumer delivered it.
    pub(crate) child: usize,
    /// Delivered encrypted (crypto failure action Consume): the payload is the entry as
    /// published, still encrypted.
    pub(crate) encrypted: bool,
    /// The partition key is base64 of bytes.
    pub(crate) key_b64: bool,
    /// The schema version the producer wrote it with.
    pub(crate) schema_version: Option<SchemaVersion>,
    /// How it is encrypted, when delivered undecrypted.
    #[cfg(feature = "encryption")]
    pub(crate) encryption: Option<Arc<crate::crypto::EncryptionContext>>,
}

impl Message {
    /// How the message is encrypted, when it was delivered undecrypted
    /// ([`is_encrypted`](Self::is_encrypted)): its key names with the data key encrypted for
    /// each, the IV, and the compression and batching to undo after decrypting (the Java
    /// `getEncryptionCtx`).
    #[cfg(feature = "encryption")]
    pub fn encryption_context(&self) -> Option<&crate::crypto::EncryptionContext> {
        self.encryption.as_deref()
    }

    /// The message id (with partition and batch index).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The topic (the partition's name on a partitioned topic).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the payload is still encrypted: the message carried encryption keys, this
    /// consumer could not decrypt it (no key reader, or no private key for its names), and its
    /// crypto failure action is Consume. Its payload is then the whole entry as published
    /// (compressed and batched as the producer sent it); see `encryption_context`.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload as UTF-8 text, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The properties, to change (for a [`ConsumerInterceptor`](crate::ConsumerInterceptor)'s
    /// `before_consume`).
    pub fn properties_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.properties
    }

    /// Replaces the payload (for a [`ConsumerInterceptor`](crate::ConsumerInterceptor)'s
    /// `before_consume`).
    pub fn set_payload(&mut self, payload: impl Into<Bytes>) {
        self.payload = payload.into();
    }

    /// Application properties.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// The W3C trace context its producer wrote (the `traceparent` property, with the
    /// `tracestate` one), as the Java client's OpenTelemetry tracing writes it; `None` when
    /// there is none or it is not valid.
    pub fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::from_properties(&self.properties)
    }

    /// The partition key.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }

    /// The key as bytes: the base64-decoded partition key when the producer marked it so
    /// (`partition_key_b64_encoded`, as the Java client's `getKeyBytes`), else the key's UTF-8
    /// bytes. A key marked base64 that is not valid base64 is returned as its text's bytes.
    pub fn key_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        let key = self.partition_key.as_deref()?;
        if self.key_b64 {
            use base64::Engine as _;
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(key) {
                return Some(std::borrow::Cow::Owned(bytes));
            }
        }
        Some(std::borrow::Cow::Borrowed(key.as_bytes()))
    }

    /// Whether the partition key is the base64 of bytes ([`Message::key_bytes`] decodes it).
    pub fn has_base64_encoded_key(&self) -> bool {
        self.key_b64
    }

    /// The schema version the producer wrote it with (`None`: the topic has no schema, or
    /// the producer declared none).
    pub fn schema_version(&self) -> Option<&SchemaVersion> {
        self.schema_version.as_ref()
    }

    /// The ordering key.
    pub fn ordering_key(&self) -> Option<&[u8]> {
        self.ordering_key.as_deref()
    }

    /// The event time (ms since the epoch), when the producer set one.
    pub fn event_time(&self) -> Option<u64> {
        self.event_time
    }

    /// When the broker received it (ms since the epoch).
    pub fn publish_time(&self) -> u64 {
        self.publish_time
    }

    /// The producer's name.
    pub fn producer_name(&self) -> &str {
        &self.producer_name
    }

    /// The sequence id the producer gave it.
    pub fn sequence_id(&self) -> u64 {
        self.sequence_id
    }

    /// How many times the broker delivered it before (0 on the first delivery).
    pub fn redelivery_count(&self) -> u32 {
        self.redelivery_count
    }
}
