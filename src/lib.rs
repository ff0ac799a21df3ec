//! # pulsar-wire
//!
//! An Apache Pulsar client written from scratch on the Pulsar binary protocol.
//!
//! The crate is built in layers. The bottom one, [`wire`], is public and usable alone: the frame
//! codec, batch payloads and message ids, as pure functions over bytes with no socket and no
//! runtime, hardened against hostile input. The client (connections, lookup, producers and
//! consumers) is built on it.
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod wire;

pub mod compression;

/// The sans-IO protocol core: the connection, producer and consumer state machines, command
/// builders, topic names, key hashing, backoff. Public only with the `unstable` feature (no
/// stability promise); the client's own types are re-exported at the crate root.
#[cfg(feature = "unstable")]
pub mod protocol;
#[cfg(not(feature = "unstable"))]
#[allow(dead_code, unreachable_pub)]
mod protocol;

mod auth;
mod channel;
mod client;
mod connection;
mod consumer;
#[cfg(feature = "encryption")]
pub mod crypto;
mod error;
#[cfg(feature = "http")]
mod http_lookup;
mod interceptor;
mod message;
mod metrics;
mod producer;
mod reader;
mod registry;
mod session;
mod stats;
mod table_view;
mod task;
mod trace;
mod transaction;
mod url;

pub use self::metrics::MetricsCardinality;
pub use auth::{
    AsyncTokenSupplier, AuthChallenge, AuthError, AuthFuture, Authentication, BasicAuth, TlsAuth,
    TokenAuth, TokenFuture, TokenSupplier,
};
#[cfg(feature = "http")]
pub use auth::{OAuth2ClientCredentials, OAuth2ClientCredentialsBuilder};
pub use client::{ClientBuilder, ProxyProtocol, PulsarClient};
pub use consumer::{
    java_message_id, key_shared_slot, Consumer, ConsumerBuilder, ConsumerCryptoFailureAction,
    DeadLetterPolicy, InitialPosition, KeySharedPolicy, KeySharedPolicyError, Range,
    SubscriptionMode, SubscriptionType, TypedConsumer, TypedConsumerBuilder, TypedMessage,
    DELAY_TIME, KEY_SHARED_HASH_RANGE_SIZE, ORIGIN_MESSAGE_ID, ORIGIN_MESSAGE_ID_LEGACY,
    REAL_SUBSCRIPTION, REAL_TOPIC, RECONSUME_TIMES,
};
#[cfg(feature = "encryption")]
pub use crypto::{
    CryptoError, CryptoKeyReader, DefaultCryptoKeyReader, EncryptionContext, EncryptionKeyInfo,
    ProducerCryptoFailureAction,
};
pub use error::{
    ConnectionError, Error, HttpError, IoError, Result, SchemaCheck, ServerError, ServerErrorCode,
};
pub use interceptor::{ConsumerInterceptor, MessageListener, ProducerInterceptor};
pub use message::{Message, ProducerMessage};
pub use producer::{
    AccessMode, MessageRouter, Producer, ProducerBuilder, RoutingMode, SendReceipt, TypedProducer,
    TypedProducerBuilder,
};
pub use protocol::hash::{partition_for_key, HashingScheme};
pub use protocol::topic::{Domain, TopicName, TopicNameError};
pub use reader::{Reader, ReaderBuilder, TypedReader, TypedReaderBuilder};
pub use registry::RegisteredSchema;
pub mod schema;
pub use schema::{Schema, SchemaInfo, SchemaType, SchemaVersion};
pub use stats::{ConsumerStats, ProducerStats};
pub use table_view::{TableUpdate, TableUpdates, TableView, TableViewBuilder};
pub use trace::{InvalidTraceContext, TraceContext, SPAN_TARGET, TRACEPARENT, TRACESTATE};
pub use transaction::{
    Transaction, TransactionBuilder, TxnId, TxnState, DEFAULT_TRANSACTION_TIMEOUT,
};
pub use wire::MessageId;

/// The README's Rust example, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
