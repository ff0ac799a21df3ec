//! Readers: read a topic from a chosen position without a durable subscription, as the official
//! clients' `Reader`. A reader is an Exclusive consumer on a non-durable subscription named
//! `reader-<random>`; after a reconnect it resumes right after the last message it handed out,
//! with no duplicate and no gap.

use std::time::Duration;

use crate::consumer::ConsumerBuilder;
use crate::consumer::{random_name, Consumer, StartPosition, SubscriptionType, TypedMessage};
use crate::error::Result;
use crate::message::Message;
use crate::schema::Schema;
use crate::session::Session;
use crate::wire::MessageId;

/// Builds a [`Reader`].
#[derive(Debug, Clone)]
pub struct ReaderBuilder {
    session: std::sync::Arc<Session>,
    topic: String,
    start: MessageId,
    inclusive: bool,
    name: Option<String>,
    receiver_queue_size: u32,
    schema: Option<crate::schema::SchemaInfo>,
    read_compacted: bool,
    discovery_period: Option<Duration>,
    crypto_failure_action: crate::consumer::ConsumerCryptoFailureAction,
    #[cfg(feature = "encryption")]
    crypto_key_reader: Option<std::sync::Arc<dyn crate::crypto::CryptoKeyReader>>,
}

impl ReaderBuilder {
    pub(crate) fn new(session: std::sync::Arc<Session>, topic: String) -> Self {
        ReaderBuilder {
            session,
            topic,
            start: MessageId::LATEST,
            inclusive: false,
            name: None,
            receiver_queue_size: 1000,
            schema: None,
            read_compacted: false,
            discovery_period: None,
            crypto_failure_action: Default::default(),
            #[cfg(feature = "encryption")]
            crypto_key_reader: None,
        }
    }

    /// Where to start: [`MessageId::EARLIEST`], [`MessageId::LATEST`] (the default) or the id of
    /// a message.
    pub fn start_message_id(mut self, id: MessageId) -> Self {
        self.start = id;
        self
    }

    /// Whether the start message itself is read (default false: reading starts after it).
    pub fn start_message_id_inclusive(mut self, inclusive: bool) -> Self {
        self.inclusive = inclusive;
        self
    }

    /// The reader's subscription name (default `reader-<random>`).
    pub fn reader_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many messages the broker may push ahead (default 1000).
    pub fn receiver_queue_size(mut self, size: u32) -> Self {
        self.receiver_queue_size = size.max(1);
        self
    }

    /// A typed reader: messages decoded with `schema`, which is declared to the broker. Set
    /// the other options before this.
    pub fn schema<S: Schema>(self, schema: S) -> TypedReaderBuilder<S> {
        TypedReaderBuilder {
            builder: self,
            schema,
        }
    }

    /// Reads the compacted view of the topic (off by default): the latest message of each key
    /// up to the compaction horizon, tombstoned keys left out, then everything after it (see
    /// [`ConsumerBuilder::read_compacted`]). Persistent topics only: [`create`](Self::create)
    /// fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig) on a non-persistent one.
    pub fn read_compacted(mut self, enabled: bool) -> Self {
        self.read_compacted = enabled;
        self
    }

    /// How often a partitioned topic is checked for new partitions, which are then read from
    /// their start (default 60 s, at least 100 ms).
    pub fn auto_update_partitions_interval(mut self, period: Duration) -> Self {
        self.discovery_period = Some(period);
        self
    }

    /// Where the private keys of encrypted messages come from (see
    /// [`ConsumerBuilder::crypto_key_reader`]).
    #[cfg(feature = "encryption")]
    pub fn crypto_key_reader(
        mut self,
        reader: impl crate::crypto::CryptoKeyReader + 'static,
    ) -> Self {
        self.crypto_key_reader = Some(std::sync::Arc::new(reader));
        self
    }

    /// What to do with encrypted messages the reader cannot decrypt (see
    /// [`ConsumerBuilder::crypto_failure_action`]; default Fail).
    pub fn crypto_failure_action(
        mut self,
        action: crate::consumer::ConsumerCryptoFailureAction,
    ) -> Self {
        self.crypto_failure_action = action;
        self
    }

    /// Creates the reader.
    pub async fn create(self) -> Result<Reader> {
        let name = self
            .name
            .unwrap_or_else(|| format!("reader-{}", random_name(10)));
        let mut builder = ConsumerBuilder::new(self.session, self.topic)
            .subscription(name)
            .subscription_type(SubscriptionType::Exclusive)
            .receiver_queue_size(self.receiver_queue_size)
            .read_compacted(self.read_compacted)
            .crypto_failure_action(self.crypto_failure_action)
            .reader_start(StartPosition {
                id: self.start,
                inclusive: self.inclusive,
            });
        if let Some(period) = self.discovery_period {
            builder = builder.auto_discovery_period(period);
        }
        if let Some(schema) = self.schema {
            builder = builder.schema_info(schema);
        }
        #[cfg(feature = "encryption")]
        if let Some(reader) = self.crypto_key_reader {
            builder = builder.crypto_key_reader_arc(reader);
        }
        let mut consumer = builder.subscribe().await?;
        if self.start == MessageId::LATEST && self.inclusive {
            // Latest, inclusive: the last message is the first one read. As the official
            // clients: ask the broker for the last id, then seek there (an empty topic has
            // none and starts at its end).
            consumer.seek_each_to_last().await?;
        }
        Ok(Reader { consumer })
    }
}

/// Reads a topic in order from a start position, with [`Reader::next`] or as a
/// `futures_core::Stream` of messages.
#[derive(Debug)]
pub struct Reader {
    consumer: Consumer,
}

impl Reader {
    /// The next message.
    pub async fn next(&mut self) -> Result<Message> {
        self.consumer.receive().await
    }

    /// The next message, or `None` if none comes within `timeout`.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.consumer.receive_timeout(timeout).await
    }

    /// Whether a message is there to read after the last one read (or after the start).
    pub async fn has_message_available(&mut self) -> Result<bool> {
        self.consumer.has_message_available().await
    }

    /// The id of the last message on the topic.
    pub async fn get_last_message_id(&self) -> Result<MessageId> {
        self.consumer.get_last_message_id().await
    }

    /// Moves the reader to a message: it is the next one read.
    pub async fn seek(&mut self, id: MessageId) -> Result<()> {
        self.consumer.seek(id).await
    }

    /// The reader's statistics (those of its consumer): see [`Consumer::stats`].
    pub fn stats(&self) -> crate::ConsumerStats {
        self.consumer.stats()
    }

    /// Whether every partition is attached to a broker connection now.
    pub fn is_connected(&self) -> bool {
        self.consumer.is_connected()
    }

    /// Whether the topic was terminated and everything was read.
    pub fn has_reached_end_of_topic(&self) -> bool {
        self.consumer.has_reached_end_of_topic()
    }

    /// Closes the reader (its non-durable subscription goes away).
    pub async fn close(self) -> Result<()> {
        self.consumer.close().await
    }
}

impl futures_core::Stream for Reader {
    type Item = Result<Message>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut self.consumer), cx)
    }
}

/// Builds a [`TypedReader`]: [`ReaderBuilder::schema`] gives one.
pub struct TypedReaderBuilder<S: Schema> {
    builder: ReaderBuilder,
    schema: S,
}

impl<S: Schema> std::fmt::Debug for TypedReaderBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReaderBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedReaderBuilder<S> {
    /// Creates the reader, the schema declared on SUBSCRIBE.
    pub async fn create(self) -> Result<TypedReader<S>> {
        let session = self.builder.session.clone();
        let mut builder = self.builder;
        builder.schema = Some(self.schema.info());
        let reader = builder.create().await?;
        Ok(TypedReader {
            reader,
            schema: std::sync::Arc::new(self.schema),
            session,
            writers: Default::default(),
        })
    }
}

/// A reader of typed values. Derefs to the untyped [`Reader`] for seeks and the rest; its own
/// [`TypedReader::next`] decodes.
pub struct TypedReader<S: Schema> {
    reader: Reader,
    schema: std::sync::Arc<S>,
    session: std::sync::Arc<Session>,
    writers: crate::consumer::typed::Writers,
}

impl<S: Schema> std::fmt::Debug for TypedReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReader")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedReader<S> {
    /// The next message, decoded. One that cannot be decoded comes in
    /// [`crate::Error::SchemaDecode`]; the reader goes on after it.
    pub async fn next(&mut self) -> Result<TypedMessage<S::Value>> {
        let msg = self.reader.next().await?;
        crate::consumer::typed::decode(&self.session, &self.writers, &*self.schema, msg).await
    }

    /// The next message, decoded, or `None` if none comes within `timeout`.
    pub async fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<TypedMessage<S::Value>>> {
        match self.reader.next_timeout(timeout).await? {
            Some(msg) => {
                crate::consumer::typed::decode(&self.session, &self.writers, &*self.schema, msg)
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// The untyped reader.
    pub fn into_inner(self) -> Reader {
        self.reader
    }
}

impl<S: Schema> std::ops::Deref for TypedReader<S> {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl<S: Schema> std::ops::DerefMut for TypedReader<S> {
    fn deref_mut(&mut self) -> &mut Reader {
        &mut self.reader
    }
}
