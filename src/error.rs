//! The client's errors: [`ServerError`] (what the broker said), [`ConnectionError`] (what
//! happened to a connection) and [`Error`] (what an operation of the public API fails with).

use std::fmt;
use std::time::Duration;

use crate::protocol::topic::TopicNameError;
use crate::wire::{proto, FrameError};

macro_rules! server_error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// The error codes a broker sends in ERROR, SEND_ERROR and failed lookup responses.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ServerErrorCode {
            $($(#[$doc])* $name,)*
            /// A code this client does not know.
            Other(i32),
        }

        impl ServerErrorCode {
            /// The code for a number on the wire.
            pub fn from_i32(value: i32) -> Self {
                match value {
                    $($value => ServerErrorCode::$name,)*
                    other => ServerErrorCode::Other(other),
                }
            }

            /// The number on the wire.
            pub fn as_i32(self) -> i32 {
                match self {
                    $(ServerErrorCode::$name => $value,)*
                    ServerErrorCode::Other(other) => other,
                }
            }
        }
    };
}

server_error_codes! {
    /// The broker did not say.
    UnknownError = 0,
    /// Metadata store error.
    MetadataError = 1,
    /// Storage (BookKeeper) error.
    PersistenceError = 2,
    /// The credentials are not valid.
    AuthenticationError = 3,
    /// The role may not use this resource.
    AuthorizationError = 4,
    /// Other consumers hold the subscription (for example a second Exclusive consumer).
    ConsumerBusy = 5,
    /// The broker cannot serve the topic now; look it up again and retry.
    ServiceNotReady = 6,
    /// The backlog quota is exceeded (producer creation refused).
    ProducerBlockedQuotaExceededError = 7,
    /// The backlog quota is exceeded.
    ProducerBlockedQuotaExceededException = 8,
    /// The message checksum did not match.
    ChecksumError = 9,
    /// The broker needs a newer client feature.
    UnsupportedVersionError = 10,
    /// The topic does not exist.
    TopicNotFound = 11,
    /// The subscription does not exist.
    SubscriptionNotFound = 12,
    /// The consumer does not exist.
    ConsumerNotFound = 13,
    /// Too many concurrent requests.
    TooManyRequests = 14,
    /// The topic was terminated.
    TopicTerminatedError = 15,
    /// A producer with the same name is connected.
    ProducerBusy = 16,
    /// The topic name is not valid.
    InvalidTopicName = 17,
    /// The schema is incompatible with the topic's.
    IncompatibleSchema = 18,
    /// The dispatcher could not assign the consumer.
    ConsumerAssignError = 19,
    /// No transaction coordinator.
    TransactionCoordinatorNotFound = 20,
    /// Invalid transaction status.
    InvalidTxnStatus = 21,
    /// The operation is not allowed.
    NotAllowedError = 22,
    /// Transaction conflict.
    TransactionConflict = 23,
    /// Transaction not found.
    TransactionNotFound = 24,
    /// The producer lost exclusive access for good; create a new one.
    ProducerFenced = 25,
}

impl ServerErrorCode {
    /// Whether retrying (after a fresh lookup) may succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ServerErrorCode::ServiceNotReady
                | ServerErrorCode::TooManyRequests
                | ServerErrorCode::MetadataError
                | ServerErrorCode::PersistenceError
                | ServerErrorCode::ProducerBusy
                | ServerErrorCode::ConsumerBusy
                | ServerErrorCode::ProducerBlockedQuotaExceededException
                | ServerErrorCode::UnknownError
        )
    }
}

impl From<proto::ServerError> for ServerErrorCode {
    fn from(value: proto::ServerError) -> Self {
        ServerErrorCode::from_i32(value as i32)
    }
}

/// An error the broker answered with: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The broker's error code.
    pub code: ServerErrorCode,
    /// The broker's message.
    pub message: String,
}

impl ServerError {
    /// A server error from the wire's code number and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        ServerError {
            code: ServerErrorCode::from_i32(code),
            message: message.into(),
        }
    }

    fn advice(&self) -> &'static str {
        match self.code {
            ServerErrorCode::AuthenticationError => "check the token or credentials",
            ServerErrorCode::AuthorizationError => "grant the role permission on the namespace or topic",
            ServerErrorCode::TopicNotFound => "create the topic or enable topic auto-creation",
            ServerErrorCode::InvalidTopicName => "use persistent://tenant/namespace/topic",
            ServerErrorCode::ConsumerBusy => "another consumer holds the subscription: use a Shared or Failover subscription, or another name",
            ServerErrorCode::ProducerBusy => "another producer with this name is connected: use another name",
            ServerErrorCode::ProducerFenced => "this producer lost exclusive access: create a new one",
            ServerErrorCode::TopicTerminatedError => "the topic was terminated: no more messages can be published",
            ServerErrorCode::TransactionConflict => "another transaction holds this acknowledgement: abort this transaction and redo the work in a new one",
            ServerErrorCode::TransactionNotFound => "the coordinator does not know the transaction (it ended or timed out): start a new transaction",
            ServerErrorCode::InvalidTxnStatus => "the transaction is no longer open on the coordinator: start a new transaction",
            ServerErrorCode::TransactionCoordinatorNotFound => "the transaction coordinator is not ready here (it may be moving): retry; if it lasts, check transactionCoordinatorEnabled on the brokers",
            c if c.is_retriable() => "retry later",
            _ => "see the broker log",
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {} ({})", self.code, self.message, self.advice())
    }
}

impl std::error::Error for ServerError {}

/// An I/O error of a connection, shared by every request, producer and consumer it reaches:
/// `Clone` (one failure fans out), with the operating system's [`std::io::ErrorKind`] and the
/// original error as its [`source`](std::error::Error::source). Two are equal when their kind
/// and message are.
#[derive(Debug, Clone)]
pub struct IoError(std::sync::Arc<std::io::Error>);

impl IoError {
    /// The kind of the I/O error (`ConnectionRefused`, `ConnectionReset`, `TimedOut`, ...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The original error.
    pub fn get_ref(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        IoError(std::sync::Arc::new(e))
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoError {}

/// A failed HTTP request of a REST lookup or a token server: the URL and the HTTP library's
/// error as its [`source`](std::error::Error::source). `Clone` and comparable (by URL and
/// message), like [`IoError`].
#[derive(Debug, Clone)]
pub struct HttpError {
    url: String,
    source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
}

impl HttpError {
    /// An error of the request to `url`.
    pub fn new(
        url: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        HttpError {
            url: url.into(),
            source: std::sync::Arc::new(source),
        }
    }

    /// The URL requested.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request to {} failed: {}", self.url, self.source)?;
        // The HTTP library's message is often only "error sending request": the causes say
        // what happened (connection refused, a certificate problem, ...).
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl PartialEq for HttpError {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.source.to_string() == other.source.to_string()
    }
}

impl Eq for HttpError {}

/// Why a connection to a broker failed or ended. `Clone`, so that one failure can be handed to
/// every request, producer and consumer that used the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TCP connection could not be opened.
    #[error(
        "cannot connect to {addr}: {source} (is the broker running and the service URL right?)"
    )]
    Connect {
        /// The address tried.
        addr: String,
        /// The operating system's error.
        source: IoError,
    },
    /// Connecting (TCP and the CONNECT/CONNECTED handshake) took longer than the connect timeout.
    #[error("connecting to {addr} timed out after {after:?} (is the broker reachable?)")]
    ConnectTimeout {
        /// The address tried.
        addr: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The broker refused the handshake.
    #[error("the broker refused the connection: {0}")]
    Handshake(ServerError),
    /// The authentication provider could not produce credentials.
    #[error("cannot get credentials: {0}")]
    Credentials(String),
    /// The TLS handshake (`pulsar+ssl://`) failed: the message says what to check (the
    /// trusted CA, the host name, the client certificate, whether the port speaks TLS).
    #[error("TLS error: {0}")]
    Tls(String),
    /// Reading or writing the socket failed.
    #[error("connection I/O error: {0}")]
    Io(#[source] IoError),
    /// The broker sent bytes that are not a valid frame; the connection was closed.
    #[error("the broker sent an invalid frame: {0}")]
    Frame(#[from] FrameError),
    /// The broker broke the protocol in a way the frame layer cannot see.
    #[error("protocol violation by the broker: {0}")]
    Protocol(String),
    /// A ping went unanswered for a keepalive interval.
    #[error("the broker stopped answering (no pong within {0:?})")]
    KeepaliveTimeout(Duration),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    ClosedByBroker,
    /// The client closed the connection.
    #[error("the connection was closed by the client")]
    Closed,
    /// An HTTP request (a REST lookup of an `http://` or `https://` service URL) failed before
    /// the broker answered.
    #[error("{0} (is the service URL right and the broker's web service up? with https://, check the trusted CA and the host name)")]
    Http(HttpError),
}

/// What an operation of the client fails with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service URL cannot be used.
    #[error("invalid service URL {url:?}: {reason} (expected pulsar://host:port)")]
    InvalidServiceUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The topic name cannot be used.
    #[error(transparent)]
    InvalidTopic(#[from] TopicNameError),
    /// A configuration value cannot be used.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A Key_Shared policy's hash ranges cannot be used (checked before subscribing).
    #[error(transparent)]
    InvalidKeySharedPolicy(#[from] crate::consumer::KeySharedPolicyError),
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The broker answered with an error.
    #[error("{operation} failed: {error}")]
    Server {
        /// What was being done.
        operation: &'static str,
        /// The broker's error.
        error: ServerError,
    },
    /// No answer within the operation timeout.
    #[error(
        "{operation} timed out after {after:?} (raise the operation timeout, or check the broker)"
    )]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// A lookup followed more redirects than allowed.
    #[error("lookup of {topic} exceeded {max} redirects")]
    TooManyRedirects {
        /// The topic.
        topic: String,
        /// The limit.
        max: u32,
    },
    /// The broker has no listener of the name given to
    /// [`ClientBuilder::listener_name`](crate::ClientBuilder::listener_name): its
    /// `advertisedListeners` do not name it.
    #[error(
        "lookup of {topic} failed: the broker has no listener named {listener:?} (check the \
         listener name against the broker's advertisedListeners; the broker said: {message})"
    )]
    UnknownListener {
        /// The topic looked up.
        topic: String,
        /// The listener name asked for.
        listener: String,
        /// What the broker answered.
        message: String,
    },
    /// The message got no receipt within the producer's send timeout.
    #[error("send timed out after {0:?} without a receipt (the message may or may not have been stored)")]
    SendTimeout(Duration),
    /// The producer's queue of pending messages is full and the producer fails fast.
    #[error("the producer queue is full ({0} pending messages): wait for receipts, or enable block-if-queue-full")]
    ProducerQueueFull(usize),
    /// The client's memory limit for pending sends is reached and the producer fails fast.
    #[error("the client memory limit of {0} bytes for pending messages is reached: wait for receipts, raise the limit, or enable block-if-queue-full")]
    MemoryLimitExceeded(usize),
    /// The message is larger than the max message size.
    #[error("message of {size} bytes exceeds the max message size of {max} bytes (enable chunking or send smaller messages)")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The producer, consumer or client was closed.
    #[error("the {0} is closed")]
    Closed(&'static str),
    /// The consumer lost its attachment to the broker (the broker closed it for a topic unload
    /// or move, or the connection dropped) before the broker confirmed this request: its
    /// outcome is unknown.
    #[error("the consumer was detached from the broker before the broker confirmed the {0} (a topic unload or move, or a lost connection): the message may be delivered again")]
    Unconfirmed(&'static str),
    /// A message from the broker could not be read.
    #[error("cannot read a message from the broker: {0}")]
    Decode(#[source] FrameError),
    /// A message could not be encoded into a frame (it does not fit the frame limits).
    #[error("cannot encode the message into a frame: {0}")]
    Encode(#[source] FrameError),
    /// A message is encrypted and this consumer cannot decrypt it: it was not delivered and
    /// not acknowledged (the consumer's crypto failure action is Fail). It stays on the
    /// subscription; set the action to Consume to receive it encrypted, or Discard to drop it.
    #[error("message {id} on {topic} is encrypted and cannot be decrypted here ({reason}): not delivered, not acknowledged (give the consumer a crypto key reader with the private key, or set its crypto failure action to Consume or Discard)")]
    Encrypted {
        /// The topic (partition).
        topic: String,
        /// The entry's id.
        id: crate::wire::MessageId,
        /// Why it cannot be decrypted (no key reader, no private key for its names, a wrong
        /// key, a corrupted payload).
        reason: String,
    },
    /// A message could not be encrypted or decrypted, or an encryption key could not be had
    /// (feature `encryption`): the reason names the key and what to check.
    #[cfg(feature = "encryption")]
    #[error("end-to-end encryption: {0}")]
    Crypto(#[source] crate::crypto::CryptoError),
    /// The operation is not possible in this state or with these settings.
    #[error("{0}")]
    NotAllowed(String),
    /// A send, acknowledgement, commit or abort in a transaction that is no longer open.
    #[error("transaction {txn} is {state:?}: {}", state.advice())]
    TransactionNotOpen {
        /// The transaction.
        txn: crate::protocol::transaction::TxnId,
        /// Its state.
        state: crate::protocol::transaction::TxnState,
    },
    /// A commit found failed sends or acknowledgements in the transaction, so it aborted the
    /// transaction instead: none of its work took effect. Redo the work in a new transaction.
    #[error("transaction {txn} was aborted instead of committed: {failed} of its sends or acknowledgements failed (their own errors said why); redo the work in a new transaction")]
    TransactionAborted {
        /// The transaction.
        txn: crate::protocol::transaction::TxnId,
        /// How many operations failed.
        failed: usize,
    },
    /// A value could not be encoded with the schema, or a schema definition cannot be used.
    #[error("schema: {0}")]
    Schema(#[source] crate::schema::SchemaError),
    /// A received message could not be decoded with the consumer's schema. It was delivered
    /// and is not acknowledged: it is in [`Error::undecoded_message`]; acknowledge it to skip
    /// it, or negatively acknowledge it to have it redelivered (to a consumer with a schema
    /// that reads it).
    #[error("message {id} on {topic} cannot be decoded: {source} (it is not acknowledged: ack it to skip it, nack it to have it redelivered)", id = message.id(), topic = message.topic())]
    SchemaDecode {
        /// The message, undecoded.
        message: Box<crate::message::Message>,
        /// Why it could not be decoded.
        #[source]
        source: crate::schema::SchemaError,
    },
    /// The topic's schema registry refused the schema of a producer, consumer or registration.
    #[error("the {schema:?} schema is incompatible with the schema of {topic}: {check} (the broker said: {})", error.message)]
    IncompatibleSchema {
        /// The topic.
        topic: String,
        /// The type of the schema refused.
        schema: crate::schema::SchemaType,
        /// Which check refused it.
        check: SchemaCheck,
        /// The broker's error (code IncompatibleSchema, and its message).
        error: ServerError,
    },
    /// The cluster has no transaction coordinator.
    #[error("transactions are not available: {0} (enable transactionCoordinatorEnabled=true, with systemTopicEnabled=true, on the brokers, and initialize the coordinator metadata)")]
    TransactionsUnavailable(String),
}

impl Error {
    /// The broker's error, when the broker answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server { error, .. } => Some(error),
            Error::Connection(ConnectionError::Handshake(error)) => Some(error),
            Error::IncompatibleSchema { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether retrying the operation later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connection(ConnectionError::Handshake(e)) | Error::Server { error: e, .. } => {
                e.code.is_retriable()
            }
            Error::Connection(_) | Error::Timeout { .. } | Error::SendTimeout(_) => true,
            _ => false,
        }
    }
}

impl Error {
    /// The message a consumer could not decode ([`Error::SchemaDecode`]), to acknowledge or
    /// negatively acknowledge.
    pub fn undecoded_message(&self) -> Option<&crate::message::Message> {
        match self {
            Error::SchemaDecode { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Which schema compatibility check of the broker refused a schema
/// ([`Error::IncompatibleSchema`]), read from the broker's message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaCheck {
    /// The topic's schema has another type (the broker never converts between types).
    Type,
    /// The Avro compatibility check (Avro and JSON schemas) under the namespace's
    /// compatibility strategy: the new schema cannot read, or cannot be read by, the topic's.
    Avro,
    /// The protobuf-native descriptor check.
    ProtobufNative,
    /// The topic has no such schema and the namespace does not let producers add one
    /// (`isAllowAutoUpdateSchema` is false).
    AutoUpdateDisabled,
    /// The namespace's strategy (ALWAYS_INCOMPATIBLE) refuses every new schema.
    AlwaysIncompatible,
    /// A check this client does not recognize.
    Other,
}

impl SchemaCheck {
    /// The check named by the broker's IncompatibleSchema message.
    pub fn from_broker_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("auto updat") || m.contains("autoupdate") {
            SchemaCheck::AutoUpdateDisabled
        } else if m.contains("always_incompatible") || m.contains("never compatible") {
            SchemaCheck::AlwaysIncompatible
        } else if m.contains("schema type") || m.contains("type is not") {
            SchemaCheck::Type
        } else if m.contains("protobuf") {
            SchemaCheck::ProtobufNative
        } else if m.contains("avro") || m.contains("unable to read schema") {
            SchemaCheck::Avro
        } else {
            SchemaCheck::Other
        }
    }
}

impl fmt::Display for SchemaCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaCheck::Type => "the topic's schema has another type; use a schema of the topic's type, or another topic",
            SchemaCheck::Avro => "the Avro compatibility check under the namespace's compatibility strategy refused it; evolve the schema compatibly (add fields with defaults), or change the strategy",
            SchemaCheck::ProtobufNative => "the protobuf-native compatibility check refused it; keep the root message and field numbers",
            SchemaCheck::AutoUpdateDisabled => "the namespace does not let producers register new schemas (isAllowAutoUpdateSchema is false); register it through the admin API",
            SchemaCheck::AlwaysIncompatible => "the namespace's compatibility strategy is ALWAYS_INCOMPATIBLE",
            SchemaCheck::Other => "the schema registry refused it",
        })
    }
}

/// A result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_connection_io_error_keeps_its_kind_and_source_through_the_public_error() {
        let os = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e: Error = ConnectionError::Io(os.into()).into();
        let shared = e.clone();
        let Error::Connection(ConnectionError::Io(io)) = &shared else {
            panic!("{shared:?}");
        };
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        // Error -> ConnectionError -> IoError -> io::Error.
        let mut chain = Vec::new();
        let mut next = e.source();
        while let Some(s) = next {
            chain.push(s.to_string());
            next = s.source();
        }
        assert!(chain.iter().any(|s| s == "reset by peer"), "{chain:?}");
        assert!(e.is_retriable());
    }

    #[test]
    fn an_encode_failure_is_not_a_decode_failure() {
        let e = Error::Encode(FrameError::TooLarge { size: 10, max: 5 });
        assert!(e.to_string().starts_with("cannot encode"), "{e}");
    }
}
