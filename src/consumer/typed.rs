//! Typed consumers: [`TypedConsumer`] decodes each message with a [`Schema`] (fetching the
//! writer's schema of the message's version from the registry where the format needs it), as
//! the Java client's `Consumer<T>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Consumer, ConsumerBuilder};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::protocol::topic::TopicName;
use crate::schema::{Decoding, Schema, SchemaError, SchemaInfo, SchemaVersion};
use crate::session::Session;

/// A received message and its value, decoded with the consumer's schema. Derefs to the
/// [`Message`] (id, key, properties, payload), so acknowledge it with `consumer.ack(&msg)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedMessage<T> {
    message: Message,
    value: T,
}

impl<T> TypedMessage<T> {
    /// The decoded value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The decoded value, taken.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message and the value.
    pub fn into_parts(self) -> (Message, T) {
        (self.message, self.value)
    }
}

impl<T> std::ops::Deref for TypedMessage<T> {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl<T> AsRef<Message> for TypedMessage<T> {
    fn as_ref(&self) -> &Message {
        &self.message
    }
}

/// The writers' schemas a consumer has met, per topic (partition) and version: found without
/// parsing the topic name or allocating once known. Versions are few, topics are the
/// consumer's own; a bound keeps a consumer of very many topics from growing it forever.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    known: Mutex<HashMap<Arc<str>, Versions>>,
}

/// The schemas of one topic's versions.
type Versions = HashMap<SchemaVersion, Arc<SchemaInfo>>;

impl Writers {
    fn get(&self, topic: &str, version: &SchemaVersion) -> Option<Arc<SchemaInfo>> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(topic)?.get(version).cloned()
    }

    fn put(&self, topic: &str, version: &SchemaVersion, info: Arc<SchemaInfo>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 1024 {
            known.clear();
        }
        known
            .entry(Arc::from(topic))
            .or_default()
            .insert(version.clone(), info);
    }
}

/// The writer's schema of `version` on `topic`: from `writers`, else from the registry.
async fn writer_of(
    session: &Session,
    writers: &Writers,
    topic: &str,
    version: &SchemaVersion,
) -> Result<Option<Arc<SchemaInfo>>> {
    if let Some(info) = writers.get(topic, version) {
        return Ok(Some(info));
    }
    let fetched = session
        .writer_schema(&TopicName::parse(topic)?, version)
        .await?;
    if let Some(info) = &fetched {
        writers.put(topic, version, info.clone());
    }
    Ok(fetched)
}

/// Decodes `msg` with `schema`: the writer's schema of the message's version comes from the
/// registry (once per version per client) when the schema wants it. A message that cannot be
/// decoded, or whose writer's schema cannot be fetched, is handed back in
/// [`Error::SchemaDecode`]: never dropped.
pub(crate) async fn decode<S: Schema + ?Sized>(
    session: &Session,
    writers: &Writers,
    schema: &S,
    msg: Message,
) -> Result<TypedMessage<S::Value>> {
    let writer = match (schema.wants_writer_schema(), msg.schema_version()) {
        (true, Some(version)) => {
            let fetched = writer_of(session, writers, msg.topic(), version).await;
            match fetched {
                Ok(writer) => writer,
                Err(e) => {
                    let source = SchemaError::Definition {
                        kind: schema.info().kind,
                        reason: format!(
                            "the writer's schema (version {version}) could not be fetched from the registry: {e}"
                        ),
                    };
                    return Err(Error::SchemaDecode {
                        message: Box::new(msg),
                        source,
                    });
                }
            }
        }
        _ => None,
    };
    let decoded = {
        let key = msg.key_bytes();
        let input = Decoding {
            payload: msg.payload(),
            key: key.as_deref(),
            version: msg.schema_version(),
            writer: writer.as_deref(),
        };
        schema.decode(&input)
    };
    match decoded {
        Ok(value) => Ok(TypedMessage {
            message: msg,
            value,
        }),
        Err(source) => Err(Error::SchemaDecode {
            message: Box::new(msg),
            source,
        }),
    }
}

/// Builds a [`TypedConsumer`]: [`ConsumerBuilder::schema`] gives one. Set the other consumer
/// options on the [`ConsumerBuilder`] before the schema.
pub struct TypedConsumerBuilder<S: Schema> {
    builder: ConsumerBuilder,
    schema: S,
}

impl<S: Schema> std::fmt::Debug for TypedConsumerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumerBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedConsumerBuilder<S> {
    pub(crate) fn new(builder: ConsumerBuilder, schema: S) -> Self {
        TypedConsumerBuilder { builder, schema }
    }

    /// Subscribes, the schema declared on SUBSCRIBE: a schema the topic's registry refuses
    /// fails with [`Error::IncompatibleSchema`].
    pub async fn subscribe(self) -> Result<TypedConsumer<S>> {
        let session = self.builder.session.clone();
        let consumer = self
            .builder
            .schema_info(self.schema.info())
            .subscribe()
            .await?;
        Ok(TypedConsumer {
            consumer,
            schema: Arc::new(self.schema),
            session,
            writers: Writers::default(),
        })
    }
}

/// A consumer of typed values. Derefs to the untyped [`Consumer`] for acknowledgements, seeks
/// and the rest; its own [`TypedConsumer::receive`] decodes.
pub struct TypedConsumer<S: Schema> {
    consumer: Consumer,
    schema: Arc<S>,
    session: Arc<Session>,
    writers: Writers,
}

impl<S: Schema> std::fmt::Debug for TypedConsumer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("consumer", &self.consumer)
            .field("schema", &self.schema.info().kind)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedConsumer<S> {
    /// Waits for the next message and decodes it. A message that cannot be decoded is
    /// returned in [`Error::SchemaDecode`] (not acknowledged: ack or nack it from there); the
    /// consumer goes on after it.
    pub async fn receive(&mut self) -> Result<TypedMessage<S::Value>> {
        let msg = self.consumer.receive().await?;
        decode(&self.session, &self.writers, &*self.schema, msg).await
    }

    /// Waits for the next message at most `timeout`; `Ok(None)` when none came.
    pub async fn receive_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<TypedMessage<S::Value>>> {
        match self.consumer.receive_timeout(timeout).await? {
            Some(msg) => decode(&self.session, &self.writers, &*self.schema, msg)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &S {
        &self.schema
    }

    /// The untyped consumer.
    pub fn into_inner(self) -> Consumer {
        self.consumer
    }
}

impl<S: Schema> std::ops::Deref for TypedConsumer<S> {
    type Target = Consumer;

    fn deref(&self) -> &Consumer {
        &self.consumer
    }
}

impl<S: Schema> std::ops::DerefMut for TypedConsumer<S> {
    fn deref_mut(&mut self) -> &mut Consumer {
        &mut self.consumer
    }
}
