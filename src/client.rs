//! [`PulsarClient`]: the entry point. It holds the connection pool, looks topics up and creates
//! producers and consumers.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

use crate::auth::{Authentication, TlsAuth, TokenAuth};
use crate::connection::pool::Pool;
use crate::connection::tls::{self, TlsOptions};
use crate::connection::{Connection, ConnectionConfig};
use crate::consumer::ConsumerBuilder;
use crate::error::{ConnectionError, Error, Result, ServerErrorCode};
use crate::producer::ProducerBuilder;
use crate::protocol::backoff::Backoff;
use crate::protocol::commands;
use crate::protocol::topic::TopicName;
use crate::url::{BrokerAddress, ServiceUrl};
use crate::wire::proto::command_lookup_topic_response::LookupType;
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
            inner: Arc::new(ClientInner {
                service,
                next_host: AtomicUsize::new(0),
                pool,
                operation_timeout: self.operation_timeout,
                max_lookup_redirects: self.max_lookup_redirects,
                ids: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                memory_limit: MemoryLimit::new(self.memory_limit),
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
    pub(crate) inner: Arc<ClientInner>,
}

#[derive(Debug)]
pub(crate) struct ClientInner {
    service: ServiceUrl,
    next_host: AtomicUsize,
    pub(crate) pool: Pool,
    pub(crate) operation_timeout: Duration,
    max_lookup_redirects: u32,
    ids: AtomicU64,
    closed: AtomicBool,
    pub(crate) memory_limit: Option<Arc<MemoryLimit>>,
}

/// The client-wide budget of payload bytes awaiting receipts.
#[derive(Debug)]
pub(crate) struct MemoryLimit {
    limit: usize,
    bytes: Arc<tokio::sync::Semaphore>,
}

impl MemoryLimit {
    fn new(limit: usize) -> Option<Arc<Self>> {
        // The semaphore counts in bytes; a single reservation is capped at the limit (u32).
        let limit = limit.min(u32::MAX as usize);
        (limit > 0).then(|| {
            Arc::new(MemoryLimit {
                limit,
                bytes: Arc::new(tokio::sync::Semaphore::new(limit)),
            })
        })
    }

    /// Reserves `size` bytes until the returned permit drops; a message larger than the whole
    /// limit reserves all of it.
    pub(crate) async fn reserve(
        &self,
        size: usize,
        block: bool,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let n = size.min(self.limit).max(1) as u32;
        if block {
            self.bytes
                .clone()
                .acquire_many_owned(n)
                .await
                .map_err(|_| Error::Closed("client"))
        } else {
            self.bytes
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| Error::MemoryLimitExceeded(self.limit))
        }
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.limit - self.bytes.available_permits()
    }
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
        ProducerBuilder::new(self.clone(), topic.into())
    }

    /// Starts building a consumer on `topic` (add more topics with
    /// [`ConsumerBuilder::topic`]).
    pub fn consumer(&self, topic: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), topic.into())
    }

    /// Starts building a consumer on every topic of a namespace whose name matches `pattern`, a
    /// regex over full names (`persistent://tenant/ns/orders-.*`); topics created or deleted
    /// later are found by a check every minute.
    pub fn pattern_consumer(&self, pattern: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), String::new()).topics_pattern(pattern)
    }

    /// Starts building a reader on `topic`.
    pub fn reader(&self, topic: impl Into<String>) -> crate::reader::ReaderBuilder {
        crate::reader::ReaderBuilder::new(self.clone(), topic.into())
    }

    /// The number of partitions of a topic (0 for a non-partitioned topic).
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let topic = TopicName::parse(topic)?;
        self.inner.partitioned_metadata(&topic).await
    }

    /// The partition topic names of a topic: itself when it is not partitioned.
    pub async fn partition_names(&self, topic: &str) -> Result<Vec<TopicName>> {
        let topic = TopicName::parse(topic)?;
        let n = self.inner.partitioned_metadata(&topic).await?;
        Ok(if n == 0 {
            vec![topic]
        } else {
            (0..n).map(|i| topic.partition(i)).collect()
        })
    }

    /// Payload bytes of this client's producers awaiting receipts (0 without a memory limit).
    pub fn pending_memory(&self) -> usize {
        self.inner.memory_limit.as_ref().map_or(0, |m| m.used())
    }

    /// How many broker connections are open (for monitoring and tests).
    pub fn open_connections(&self) -> usize {
        self.inner.pool.live_connections()
    }

    /// Closes every connection. Producers and consumers of this client fail from then on; close
    /// them first to flush what they hold.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.pool.close_all();
        Ok(())
    }
}

impl ClientInner {
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn service_host(&self) -> Result<BrokerAddress> {
        let hosts = &self.service.hosts;
        if hosts.is_empty() {
            return Err(Error::InvalidConfig("the service URL has no host".into()));
        }
        let i = self.next_host.fetch_add(1, Ordering::Relaxed) % hosts.len();
        Ok(hosts[i].clone())
    }

    /// A connection to any broker of the service URL, retried with backoff until `deadline`.
    async fn service_connection(&self, deadline: tokio::time::Instant) -> Result<Connection> {
        // Retries inside one operation: short waits, the operation timeout bounds them.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if self.is_closed() {
                return Err(Error::Closed("client"));
            }
            let host = self.service_host()?;
            match self.pool.get(&host, &host).await {
                Ok(conn) => return Ok(conn),
                // A refused handshake (bad credentials, ...) will not succeed by retrying.
                Err(ConnectionError::Handshake(e)) if !e.code.is_retriable() => {
                    return Err(Error::Connection(ConnectionError::Handshake(e)));
                }
                Err(ConnectionError::Credentials(e)) => {
                    return Err(Error::Connection(ConnectionError::Credentials(e)));
                }
                // A certificate problem does not go away by retrying.
                Err(ConnectionError::Tls(e)) => {
                    return Err(Error::Connection(ConnectionError::Tls(e)));
                }
                Err(e) => {
                    let delay = backoff.next_delay_random();
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(Error::Connection(e));
                    }
                    debug!(error = %e, ?delay, "service connection failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// A connection to any broker of the service URL, retried until the operation timeout.
    pub(crate) async fn any_connection(&self) -> Result<Connection> {
        self.service_connection(tokio::time::Instant::now() + self.operation_timeout)
            .await
    }

    /// Runs a request against any broker, retrying connection failures and retriable broker
    /// errors with backoff until the operation timeout.
    pub(crate) async fn request_any(
        &self,
        operation: &'static str,
        make: impl Fn(u64) -> crate::wire::proto::BaseCommand,
    ) -> Result<(Connection, crate::wire::proto::BaseCommand)> {
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        // Retries inside one operation: short waits, the operation timeout bounds them.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let conn = self.service_connection(deadline).await?;
            let id = self.next_id();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn.request(id, operation, make(id), Some(left)).await {
                Ok(resp) => return Ok((conn, resp)),
                Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                    let delay = backoff.next_delay_random();
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    debug!(error = %e, operation, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// PARTITIONED_METADATA: the partition count (0: not partitioned).
    pub(crate) async fn partitioned_metadata(&self, topic: &TopicName) -> Result<u32> {
        if topic.is_partition() {
            return Ok(0);
        }
        let name = topic.full_name().to_owned();
        let (_, resp) = self
            .request_any("partitioned metadata", |id| {
                commands::partitioned_metadata(&name, id)
            })
            .await?;
        Ok(resp
            .partition_metadata_response
            .and_then(|r| r.partitions)
            .unwrap_or(0))
    }

    /// LOOKUP: the connection to the broker that owns `topic`, following redirects.
    pub(crate) async fn lookup(&self, topic: &TopicName) -> Result<Connection> {
        let name = topic.full_name().to_owned();
        let tls = self.service.tls();
        let (mut conn, mut resp) = self
            .request_any("lookup", |id| commands::lookup(&name, id, false))
            .await?;
        for redirects in 0..=self.max_lookup_redirects {
            let r = resp.lookup_topic_response.unwrap_or_default();
            let proxy = r.proxy_through_service_url.unwrap_or(false);
            let lookup_type = LookupType::try_from(r.response.unwrap_or(0));
            let url = if tls {
                r.broker_service_url_tls
                    .clone()
                    .or(r.broker_service_url.clone())
            } else {
                r.broker_service_url.clone()
            };
            let url = url.ok_or_else(|| {
                Error::Connection(crate::error::ConnectionError::Protocol(format!(
                    "lookup of {name} answered without a broker URL"
                )))
            })?;
            let logical = BrokerAddress::parse(&url)?;
            let target = if tls && !logical.tls && !proxy {
                // A TLS service URL, and a lookup answer without a TLS URL (no
                // `brokerServiceUrlTls`): pulsar-lite, or a single broker behind a TLS
                // terminator, advertises only its plain address. Going there would drop TLS
                // (and bypass the terminator), so the client stays on the connection's own
                // (TLS) address, taking the answer to name the broker that connection already
                // reaches. A redirect elsewhere cannot be followed without TLS: it fails.
                if matches!(lookup_type, Ok(LookupType::Redirect)) {
                    return Err(Error::Connection(ConnectionError::Protocol(format!(
                        "lookup of {name} redirected to {logical}, which has no TLS URL: with \
                         a pulsar+ssl:// service URL the brokers must advertise \
                         brokerServiceUrlTls"
                    ))));
                }
                conn.clone()
            } else {
                let physical = if proxy {
                    conn.logical().clone()
                } else {
                    logical.clone()
                };
                self.pool
                    .get(&logical, &physical)
                    .await
                    .map_err(Error::Connection)?
            };
            match lookup_type {
                Ok(LookupType::Connect) => return Ok(target),
                Ok(LookupType::Redirect) => {
                    if redirects == self.max_lookup_redirects {
                        break;
                    }
                    let id = self.next_id();
                    let authoritative = r.authoritative.unwrap_or(false);
                    resp = target
                        .request(
                            id,
                            "lookup",
                            commands::lookup(&name, id, authoritative),
                            Some(self.operation_timeout),
                        )
                        .await?;
                    conn = target;
                }
                _ => {
                    return Err(Error::Server {
                        operation: "lookup",
                        error: crate::error::ServerError {
                            code: ServerErrorCode::UnknownError,
                            message: "lookup failed".into(),
                        },
                    })
                }
            }
        }
        Err(Error::TooManyRedirects {
            topic: name,
            max: self.max_lookup_redirects,
        })
    }
}
