//! [`PulsarClient`]: the entry point. It holds the connection pool, looks topics up and creates
//! producers and consumers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Authentication, TlsAuth, TokenAuth};
use crate::connection::pool::Pool;
use crate::connection::tls::{self, TlsOptions};
use crate::connection::ConnectionConfig;
use crate::consumer::ConsumerBuilder;
use crate::error::{Error, Result};
use crate::producer::ProducerBuilder;
use crate::protocol::topic::TopicName;
use crate::session::{MemoryLimit, Session};
use crate::url::ServiceUrl;
use crate::wire::DEFAULT_MAX_FRAME_SIZE;

/// Builds a [`PulsarClient`]. Defaults are the official clients': operation timeout 30 s,
/// connect timeout 10 s, keepalive 30 s, 20 lookup redirects.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    auth: Option<Arc<dyn Authentication>>,
    operation_timeout: Duration,
    connect_timeout: Duration,
    keepalive: Duration,
    max_lookup_redirects: u32,
    listener_name: Option<String>,
    memory_limit: usize,
    tls: TlsOptions,
}

impl ClientBuilder {
    /// Authenticates with a fixed token.
    pub fn token(self, token: impl Into<String>) -> Self {
        self.authentication(TokenAuth::new(token))
    }

    /// Authenticates with the token in an environment variable (read on every use).
    pub fn token_from_env(self, var: impl Into<String>) -> Self {
        self.authentication(TokenAuth::from_env(var))
    }

    /// Authenticates with the token in a file (read on every use).
    pub fn token_from_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.authentication(TokenAuth::from_file(path))
    }

    /// Authenticates with any provider.
    pub fn authentication(mut self, auth: impl Authentication + 'static) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// How long a request (lookup, producer or consumer creation, ...) may wait for its answer.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long opening a connection (TCP and handshake) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often to ping an idle broker; a ping unanswered for this long ends the connection.
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive = interval;
        self
    }

    /// How many lookup redirects to follow.
    pub fn max_lookup_redirects(mut self, max: u32) -> Self {
        self.max_lookup_redirects = max;
        self
    }

    /// The broker listener to be directed to (the official clients' `listenerName`): brokers
    /// with several `advertisedListeners` (an internal and an external address, say) answer
    /// each LOOKUP with the address of the listener named here. Without it the broker's
    /// default (internal) listener is used. A broker without a listener of this name fails
    /// the lookup with [`Error::UnknownListener`]. [`build`](Self::build) refuses an empty
    /// name.
    pub fn listener_name(mut self, name: impl Into<String>) -> Self {
        self.listener_name = Some(name.into());
        self
    }

    /// The most payload bytes all producers of this client may hold awaiting receipts (like the
    /// Java client's `memoryLimitBytes`, 64 MiB by default); 0 means no limit. A send past the
    /// limit waits or fails with [`Error::MemoryLimitExceeded`], as the producer's
    /// block-if-queue-full setting says.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// For `pulsar+ssl://`: the PEM file of the CA certificates that signed the brokers'
    /// certificates (like the official clients' `tlsTrustCertsFilePath`). Without it the
    /// system's trusted roots are used. [`build`](Self::build) reads the file and fails with
    /// [`Error::InvalidConfig`] when it cannot be read or holds no certificate.
    pub fn tls_trust_certs_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.trust_certs_file = Some(path.into());
        self
    }

    /// **Dangerous.** With `true`, any broker certificate is accepted: neither the chain nor the
    /// host name is checked, so anyone on the network path can impersonate the broker and read
    /// or change everything, tokens included. The traffic is still encrypted. For tests only;
    /// off by default (like the official clients' `tlsAllowInsecureConnection`).
    pub fn tls_allow_insecure_connection(mut self, allow: bool) -> Self {
        self.tls.allow_insecure_connection = allow;
        self
    }

    /// Whether the broker certificate must name the host connected to (on by default; the
    /// Java client's `enableTlsHostnameVerification` is off by default). With `false`, the
    /// certificate chain is still verified against the trusted CAs, but a certificate for
    /// another name is accepted.
    pub fn tls_validate_hostname(mut self, validate: bool) -> Self {
        self.tls.validate_hostname = validate;
        self
    }

    /// A client certificate for brokers that require one (mutual TLS, the official clients'
    /// `AuthenticationTls`): a PEM file with the certificate chain (the client's certificate
    /// first) and a PEM file with its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn tls_certificate_and_key(
        mut self,
        cert_pem_path: impl Into<std::path::PathBuf>,
        key_pem_path: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls.certificate_and_key = Some((cert_pem_path.into(), key_pem_path.into()));
        self
    }

    /// Authenticates with a TLS client certificate (method `tls`, the broker's
    /// `AuthenticationProviderTls`; the official clients' `AuthenticationTls`): the certificate
    /// is sent in the TLS handshake, as with [`ClientBuilder::tls_certificate_and_key`], and the
    /// broker takes the role from it. Needs a `pulsar+ssl://` service URL.
    pub fn tls_authentication(
        self,
        cert_pem_path: impl Into<std::path::PathBuf>,
        key_pem_path: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls_certificate_and_key(cert_pem_path, key_pem_path)
            .authentication(TlsAuth::new())
    }

    /// Checks the settings and makes the client. Connections open on first use.
    pub fn build(self) -> Result<PulsarClient> {
        let service = ServiceUrl::parse(&self.url)?;
        if self.operation_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfig("timeouts must be above zero".into()));
        }
        if self.keepalive < Duration::from_millis(100) {
            return Err(Error::InvalidConfig(
                "the keepalive interval must be at least 100 ms".into(),
            ));
        }
        if self
            .listener_name
            .as_ref()
            .is_some_and(|l| l.trim().is_empty())
        {
            return Err(Error::InvalidConfig(
                "the listener name is empty: give one of the broker's advertisedListeners names"
                    .into(),
            ));
        }
        if self.auth.as_ref().is_some_and(|a| a.method_name() == "tls") && !service.tls() {
            return Err(Error::InvalidConfig(
                "TLS authentication sends the client certificate in the TLS handshake: it needs \
                 a pulsar+ssl:// service URL"
                    .into(),
            ));
        }
        // Built once (files read, roots loaded) and shared by every connection.
        let tls = if service.tls() || self.tls.is_customized() {
            Some(tls::client_config(&self.tls)?)
        } else {
            None
        };
        let pool = Pool::new(ConnectionConfig {
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive,
            auth: self.auth,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            tls,
        });
        Ok(PulsarClient {
            session: Arc::new(Session {
                service,
                next_host: AtomicUsize::new(0),
                pool,
                operation_timeout: self.operation_timeout,
                max_lookup_redirects: self.max_lookup_redirects,
                listener_name: self.listener_name,
                ids: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                memory_limit: MemoryLimit::new(self.memory_limit),
                coordinators: Default::default(),
                schemas: Default::default(),
            }),
        })
    }
}

/// A Pulsar client: a pool of broker connections shared by its producers and consumers.
/// Cheap to clone.
///
/// ```no_run
/// # async fn run() -> pulsar_wire::Result<()> {
/// use pulsar_wire::{PulsarClient, ProducerMessage};
/// let client = PulsarClient::builder("pulsar://localhost:6650").token("my-token").build()?;
/// let producer = client.producer("persistent://public/default/t").create().await?;
/// let id = producer.send(ProducerMessage::new("hello").property("k", "v")).await?;
/// println!("stored as {id}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PulsarClient {
    pub(crate) session: Arc<Session>,
}

impl PulsarClient {
    /// Starts building a client for a service URL (`pulsar://host:6650`, several hosts
    /// separated by commas).
    pub fn builder(service_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: service_url.into(),
            auth: None,
            operation_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            max_lookup_redirects: 20,
            listener_name: None,
            memory_limit: 64 * 1024 * 1024,
            tls: TlsOptions::default(),
        }
    }

    /// A client with default settings and no authentication.
    pub fn new(service_url: impl Into<String>) -> Result<Self> {
        Self::builder(service_url).build()
    }

    /// Starts building a producer on `topic`.
    pub fn producer(&self, topic: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder::new(self.session.clone(), topic.into())
    }

    /// Starts building a consumer on `topic` (add more topics with
    /// [`ConsumerBuilder::topic`]).
    pub fn consumer(&self, topic: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.session.clone(), topic.into())
    }

    /// Starts building a consumer on every topic of a namespace whose name matches `pattern`, a
    /// regex over full names (`persistent://tenant/ns/orders-.*`); topics created or deleted
    /// later are found by a check every minute.
    pub fn pattern_consumer(&self, pattern: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.session.clone(), String::new()).topics_pattern(pattern)
    }

    /// Starts building a reader on `topic`.
    pub fn reader(&self, topic: impl Into<String>) -> crate::reader::ReaderBuilder {
        crate::reader::ReaderBuilder::new(self.session.clone(), topic.into())
    }

    /// Starts building a table view of `topic`: the latest value of every key, loaded from the
    /// compacted topic and kept current (`.schema(..)`, then `.create().await`; the values are
    /// the payloads as [`bytes::Bytes`] by default).
    pub fn table_view(&self, topic: impl Into<String>) -> crate::table_view::TableViewBuilder {
        crate::table_view::TableViewBuilder::new(self.session.clone(), topic.into())
    }

    /// Starts building a transaction (`.timeout(..).build().await`): sends and
    /// acknowledgements made in it take effect together on commit, or not at all. The broker
    /// must run the transaction coordinator (`transactionCoordinatorEnabled=true`).
    pub fn new_transaction(&self) -> crate::transaction::TransactionBuilder {
        crate::transaction::TransactionBuilder::new(self.session.clone())
    }

    /// The topic's schema in the registry (GET_SCHEMA): the latest, or that of `version`;
    /// `Ok(None)` when the topic has no schema (or no such version).
    pub async fn get_schema(
        &self,
        topic: &str,
        version: Option<&crate::schema::SchemaVersion>,
    ) -> Result<Option<crate::registry::RegisteredSchema>> {
        let topic = TopicName::parse(topic)?;
        self.session.get_schema(&topic, version).await
    }

    /// Registers `schema` on the topic if it does not have it yet (GET_OR_CREATE_SCHEMA, on
    /// the broker that owns the topic), and gives its version. A schema the registry refuses
    /// fails with [`crate::Error::IncompatibleSchema`].
    pub async fn get_or_create_schema(
        &self,
        topic: &str,
        schema: &crate::schema::SchemaInfo,
    ) -> Result<crate::schema::SchemaVersion> {
        let topic = TopicName::parse(topic)?;
        self.session.get_or_create_schema(&topic, schema).await
    }

    /// The number of partitions of a topic (0 for a non-partitioned topic).
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let topic = TopicName::parse(topic)?;
        self.session.partitioned_metadata(&topic).await
    }

    /// The partition topic names of a topic: itself when it is not partitioned.
    pub async fn partition_names(&self, topic: &str) -> Result<Vec<TopicName>> {
        let topic = TopicName::parse(topic)?;
        let n = self.session.partitioned_metadata(&topic).await?;
        Ok(if n == 0 {
            vec![topic]
        } else {
            (0..n).map(|i| topic.partition(i)).collect()
        })
    }

    /// Payload bytes of this client's producers awaiting receipts (0 without a memory limit).
    pub fn pending_memory(&self) -> usize {
        self.session.memory_limit.as_ref().map_or(0, |m| m.used())
    }

    /// How many broker connections are open (for monitoring and tests).
    pub fn open_connections(&self) -> usize {
        self.session.pool.live_connections()
    }

    /// Closes every connection. Producers and consumers of this client fail from then on; close
    /// them first to flush what they hold.
    pub async fn close(&self) -> Result<()> {
        self.session.closed.store(true, Ordering::Release);
        self.session.pool.close_all();
        Ok(())
    }
}
