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

pub mod error;
pub mod protocol;

pub use error::{ConnectionError, Error, Result, ServerError, ServerErrorCode};
pub mod auth;
pub mod client;
pub mod compression;
mod connection;
pub mod consumer;
pub mod message;
pub mod producer;
pub mod reader;
pub mod schema;
mod task;
pub mod url;

pub use auth::{Authentication, TlsAuth, TokenAuth};
pub use client::{ClientBuilder, PulsarClient};
pub use consumer::{
    Consumer, ConsumerBuilder, DeadLetterPolicy, InitialPosition, SubscriptionType,
};
pub use message::{Message, ProducerMessage};
pub use producer::{
    AccessMode, MessageRouter, Producer, ProducerBuilder, RoutingMode, SendReceipt,
};
pub use reader::{Reader, ReaderBuilder};
pub use schema::{Schema, SchemaType};
pub use wire::MessageId;

/// The README's Rust example, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
