//! Typed producers: [`TypedProducer`] encodes application values with a [`Schema`] and sends
//! them with the schema declared to the broker, as the Java client's `Producer<T>`.

use std::sync::{Arc, Mutex};

use super::{Producer, ProducerBuilder, SendReceipt};
use crate::error::{Error, Result};
use crate::message::ProducerMessage;
use crate::protocol::topic::TopicName;
use crate::schema::{Schema, SchemaError, SchemaInfo, SchemaVersion};
use crate::session::Session;
use crate::wire::MessageId;

/// How the builder gets its schema.
enum Source<S> {
    /// Given by the application.
    Given(S),
    /// Made at creation from the topic's schema in the registry (AUTO_PRODUCE).
    FromTopic(fn(Option<SchemaInfo>) -> std::result::Result<S, SchemaError>),
}

/// Builds a [`TypedProducer`]: [`ProducerBuilder::schema`] gives one. Set the other producer
/// options on the [`ProducerBuilder`] before the schema.
pub struct TypedProducerBuilder<S: Schema> {
    builder: ProducerBuilder,
    source: Source<S>,
}

impl<S: Schema> std::fmt::Debug for TypedProducerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducerBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

impl<S: Schema> TypedProducerBuilder<S> {
    pub(crate) fn new(builder: ProducerBuilder, schema: S) -> Self {
        TypedProducerBuilder {
            builder,
            source: Source::Given(schema),
        }
    }

    pub(crate) fn from_topic(
        builder: ProducerBuilder,
        make: fn(Option<SchemaInfo>) -> std::result::Result<S, SchemaError>,
    ) -> Self {
        TypedProducerBuilder {
            builder,
            source: Source::FromTopic(make),
        }
    }

    /// Creates the producer, its schema declared on PRODUCER: a schema the topic's registry
    /// refuses fails with [`Error::IncompatibleSchema`].
    pub async fn create(self) -> Result<TypedProducer<S>> {
        let session = self.builder.session.clone();
        let topic = TopicName::parse(&self.builder.topic)?;
        let schema = match self.source {
            Source::Given(schema) => schema,
            Source::FromTopic(make) => {
                let registered = session.get_schema(&topic, None).await?;
                make(registered.map(|r| r.info)).map_err(Error::Schema)?
            }
        };
        let info = schema.info();
        let producer = self.builder.schema_info(info).create().await?;
        Ok(TypedProducer {
            producer,
            schema: Arc::new(schema),
            session,
            topic,
            registered: Arc::new(Mutex::new(Vec::new())),
        })
    }
}

/// A producer of typed values: each value is encoded with the producer's [`Schema`], and every
/// message carries the schema version the registry gave it. Cheap to clone; clones share the
/// same producer.
pub struct TypedProducer<S: Schema> {
    producer: Producer,
    schema: Arc<S>,
    session: Arc<Session>,
    topic: TopicName,
    /// The versions of other schemas registered for [`TypedProducer::message_with_schema`].
    registered: Arc<Mutex<Vec<(SchemaInfo, SchemaVersion)>>>,
}

impl<S: Schema> Clone for TypedProducer<S> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            schema: self.schema.clone(),
            session: self.session.clone(),
            topic: self.topic.clone(),
            registered: self.registered.clone(),
        }
    }
}

impl<S: Schema> std::fmt::Debug for TypedProducer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .field("schema", &self.schema.info().kind)
            .finish_non_exhaustive()
    }
}

/// `value` encoded with `schema` as a message (a KeyValue SEPARATED key as the message key).
fn encode<T: Schema + ?Sized>(schema: &T, value: &T::Value) -> Result<ProducerMessage> {
    let encoded = schema.encode(value).map_err(Error::Schema)?;
    let msg = ProducerMessage::new(encoded.payload);
    Ok(match encoded.key {
        Some(key) => msg.key_bytes(key),
        None => msg,
    })
}

impl<S: Schema> TypedProducer<S> {
    /// The untyped producer underneath (its name, partitions, flush, close).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The schema.
    pub fn schema(&self) -> &S {
        &self.schema
    }

    /// `value` encoded as a message, to add properties, a key, an event time... and send with
    /// [`TypedProducer::send_message`]. A KeyValue schema with the SEPARATED encoding sets the
    /// message key (base64 of the encoded key); setting a partition key afterwards replaces it.
    pub fn message(&self, value: &S::Value) -> Result<ProducerMessage> {
        encode(&*self.schema, value)
    }

    /// `value` encoded with another schema as a message of this producer, as the Java
    /// client's `newMessage(Schema)`: the schema is registered on the topic
    /// (GET_OR_CREATE_SCHEMA, once per schema) and the message carries its version. A schema
    /// the registry refuses fails with [`Error::IncompatibleSchema`].
    pub async fn message_with_schema<T: Schema>(
        &self,
        schema: &T,
        value: &T::Value,
    ) -> Result<ProducerMessage> {
        let msg = encode(schema, value)?;
        let info = schema.info();
        let known = {
            let registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
            registered
                .iter()
                .find(|(i, _)| *i == info)
                .map(|(_, v)| v.clone())
        };
        let version = match known {
            Some(v) => v,
            None => {
                let v = self
                    .session
                    .get_or_create_schema(&self.topic, &info)
                    .await?;
                let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
                registered.push((info, v.clone()));
                v
            }
        };
        Ok(ProducerMessage {
            schema_version: Some(version),
            ..msg
        })
    }

    /// Encodes and sends `value`, and waits for its receipt.
    pub async fn send(&self, value: &S::Value) -> Result<MessageId> {
        self.producer.send(self.message(value)?).await
    }

    /// Encodes and queues `value`; the receipt resolves when the broker has stored it (see
    /// [`Producer::send_async`]).
    pub async fn send_async(&self, value: &S::Value) -> Result<SendReceipt> {
        self.producer.send_async(self.message(value)?).await
    }

    /// Sends a message made by [`TypedProducer::message`], and waits for its receipt.
    pub async fn send_message(&self, msg: ProducerMessage) -> Result<MessageId> {
        self.producer.send(msg).await
    }

    /// Queues a message made by [`TypedProducer::message`]; see [`Producer::send_async`].
    pub async fn send_message_async(&self, msg: ProducerMessage) -> Result<SendReceipt> {
        self.producer.send_async(msg).await
    }

    /// Waits until every message queued so far has its receipt or its error.
    pub async fn flush(&self) -> Result<()> {
        self.producer.flush().await
    }

    /// Flushes, then closes the producer on the broker.
    pub async fn close(&self) -> Result<()> {
        self.producer.close().await
    }
}
