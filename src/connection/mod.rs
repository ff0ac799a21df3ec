//! Connections to brokers: one task owns each socket ([`driver`]); [`Connection`] handles talk
//! to it over a channel; [`pool`] shares them between the producers and consumers of a client.

pub(crate) mod driver;
pub(crate) mod pool;
pub(crate) mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::channel as mpsc;

use crate::auth::Authentication;
use crate::error::{ConnectionError, Error};
use crate::protocol::connection::{ConsumerEvent, ProducerEvent, TopicListUpdate};
use crate::url::BrokerAddress;
use crate::wire::proto::BaseCommand;

/// Settings every connection of a client shares.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionConfig {
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub auth: Option<Arc<dyn Authentication>>,
    pub max_frame_size: usize,
    /// The rustls configuration for `pulsar+ssl://` addresses, built once by the client (None
    /// when the client has no TLS service URL and no TLS option).
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Close a connection unused (no producer, consumer, watcher or request) this long.
    pub max_idle: Option<Duration>,
    /// The Pulsar proxy every connection goes through, if any (`proxy_service_url`).
    pub proxy: Option<ProxyRoute>,
    /// The connection counters, with metrics on.
    pub metrics: Option<crate::metrics::ConnectionMetrics>,
}

/// How connections reach brokers through a proxy given apart from the service URL
/// (`ClientBuilder::proxy_service_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyRoute {
    /// Where every TCP connection goes.
    pub address: BrokerAddress,
    /// How the proxy learns the broker.
    pub protocol: crate::client::ProxyProtocol,
}

/// A reply handle for one request.
pub(crate) type Reply = oneshot::Sender<Result<BaseCommand, Error>>;

/// A request's reply handle as the protocol core stores it, with the timeout for the error.
#[derive(Debug)]
pub(crate) struct PendingReply {
    pub tx: Reply,
    pub timeout: Option<Duration>,
}

/// What handles ask of the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a request and answer `reply` when its response (or timeout) comes.
    Request {
        request_id: u64,
        operation: &'static str,
        command: BaseCommand,
        reply: Reply,
        timeout: Option<Duration>,
    },
    /// Send a command that has no response.
    Send(BaseCommand),
    /// Write an already encoded frame (a SEND with its payload).
    Frame(Bytes),
    /// Route the events of this producer id to this channel (None: stop routing).
    Producer(u64, Option<mpsc::UnboundedSender<ProducerEvent>>),
    /// Route the events of this consumer id to this channel (None: stop routing).
    Consumer(u64, Option<mpsc::UnboundedSender<ConsumerEvent>>),
    /// Route the updates of this topic-list watcher to this channel (None: stop routing).
    Watcher(u64, Option<mpsc::UnboundedSender<TopicListUpdate>>),
    /// Close the connection.
    Close,
}

#[derive(Debug)]
struct Shared {
    id: u64,
    logical: BrokerAddress,
    physical: BrokerAddress,
    tx: mpsc::UnboundedSender<Command>,
    closed: Arc<AtomicBool>,
    max_message_size: usize,
    server_version: String,
    topic_watchers: bool,
}

/// A cheap, cloneable handle on one broker connection.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
}

impl Connection {
    /// The connection's id (for logs).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The broker this connection serves (the lookup's answer).
    pub fn logical(&self) -> &BrokerAddress {
        &self.shared.logical
    }

    /// Where the TCP connection goes (the broker, or a proxy).
    #[allow(dead_code)]
    pub fn physical(&self) -> &BrokerAddress {
        &self.shared.physical
    }

    /// The max message size in force (the broker's, or the default).
    pub fn max_message_size(&self) -> usize {
        self.shared.max_message_size
    }

    /// The broker's version string.
    #[allow(dead_code)]
    pub fn server_version(&self) -> &str {
        &self.shared.server_version
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.shared.tx.is_closed()
    }

    fn closed_error() -> Error {
        Error::Connection(ConnectionError::Closed)
    }

    /// Sends a request and waits for its response; the broker's errors and the operation timeout
    /// come back as [`Error`]s. Only this request fails on timeout; the connection stays up.
    pub async fn request(
        &self,
        request_id: u64,
        operation: &'static str,
        command: BaseCommand,
        timeout: Option<Duration>,
    ) -> Result<BaseCommand, Error> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Request {
                request_id,
                operation,
                command,
                reply,
                timeout,
            })
            .map_err(|_| Self::closed_error())?;
        rx.await.unwrap_or_else(|_| Err(Self::closed_error()))
    }

    /// Sends a command that has no response.
    pub fn send(&self, command: BaseCommand) -> Result<(), Error> {
        self.shared
            .tx
            .send(Command::Send(command))
            .map_err(|_| Self::closed_error())
    }

    /// Writes an encoded frame.
    pub fn send_frame(&self, frame: Bytes) -> Result<(), Error> {
        self.shared
            .tx
            .send(Command::Frame(frame))
            .map_err(|_| Self::closed_error())
    }

    /// Routes a producer's events to `events`.
    pub fn register_producer(
        &self,
        producer_id: u64,
        events: mpsc::UnboundedSender<ProducerEvent>,
    ) -> Result<(), Error> {
        self.shared
            .tx
            .send(Command::Producer(producer_id, Some(events)))
            .map_err(|_| Self::closed_error())
    }

    /// Stops routing a producer's events.
    pub fn unregister_producer(&self, producer_id: u64) {
        let _ = self.shared.tx.send(Command::Producer(producer_id, None));
    }

    /// Routes a consumer's events to `events`.
    pub fn register_consumer(
        &self,
        consumer_id: u64,
        events: mpsc::UnboundedSender<ConsumerEvent>,
    ) -> Result<(), Error> {
        self.shared
            .tx
            .send(Command::Consumer(consumer_id, Some(events)))
            .map_err(|_| Self::closed_error())
    }

    /// Whether the broker offers topic-list watchers.
    pub fn supports_topic_watchers(&self) -> bool {
        self.shared.topic_watchers
    }

    /// Routes a topic-list watcher's updates to `updates`.
    pub fn register_watcher(
        &self,
        watcher_id: u64,
        updates: mpsc::UnboundedSender<TopicListUpdate>,
    ) -> Result<(), Error> {
        self.shared
            .tx
            .send(Command::Watcher(watcher_id, Some(updates)))
            .map_err(|_| Self::closed_error())
    }

    /// Stops routing a watcher's updates.
    pub fn unregister_watcher(&self, watcher_id: u64) {
        let _ = self.shared.tx.send(Command::Watcher(watcher_id, None));
    }

    /// Stops routing a consumer's events.
    pub fn unregister_consumer(&self, consumer_id: u64) {
        let _ = self.shared.tx.send(Command::Consumer(consumer_id, None));
    }

    /// Asks the connection task to close.
    pub fn close(&self) {
        let _ = self.shared.tx.send(Command::Close);
    }
}
