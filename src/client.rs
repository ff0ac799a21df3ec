//! [`PulsarClient`]: the entry point. It holds the connection pool, looks topics up and creates
//! producers and consumers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{Authentication, TlsAuth, TokenAuth};
use crate::connection::pool::Pool;
use crate::connection::tls::{self, TlsOptions};
use crate::connection::{ConnectionConfig, ProxyRoute};
use crate::consumer::ConsumerBuilder;
use crate::error::{Error, Result};
use crate::producer::ProducerBuilder;
use crate::protocol::backoff::{DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY};
use crate::protocol::hosts::{HostSelector, DEFAULT_MAX_QUARANTINE, DEFAULT_QUARANTINE};
use crate::protocol::idle::DEFAULT_MAX_IDLE;
use crate::protocol::topic::TopicName;
use crate::session::{MemoryLimit, Session};
use crate::url::{BrokerAddress, ServiceUrl};
use crate::wire::DEFAULT_MAX_FRAME_SIZE;

/// Builds a [`PulsarClient`]. Defaults are the Java client's: operation timeout 30 s, lookup
/// timeout the operation timeout, connect timeout 10 s, keepalive 30 s, 20 lookup redirects,
/// one connection per broker, closed after 60 s unused, reconnection backoff from 100 ms to
/// 60 s, a failed service URL host set aside for 60 s (doubling per failure in a row, up to an
/// hour).
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    auth: Option<Arc<dyn Authentication>>,
    operation_timeout: Duration,
    lookup_timeout: Option<Duration>,
    connect_timeout: Duration,
    keepalive: Duration,
    max_lookup_redirects: u32,
    listener_name: Option<String>,
    memory_limit: usize,
    tls: TlsOptions,
    connections_per_broker: usize,
    connection_max_idle: Duration,
    backoff: (Duration, Duration),
    quarantine: (Duration, Duration),
    proxy: Option<(String, ProxyProtocol)>,
    stats_interval: Duration,
    metrics: Option<crate::metrics::MetricsTarget>,
    metrics_cardinality: crate::metrics::MetricsCardinality,
    propagate_trace_context: bool,
}

/// How connections reach the brokers through a proxy named apart from the service URL
/// ([`ClientBuilder::proxy_service_url`]), as the Java client's `ProxyProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyProtocol {
    /// A TLS proxy that routes on the TLS server name (SNI), such as Apache Traffic Server:
    /// every connection goes to the proxy, and its TLS handshake names the broker the lookup
    /// found (the broker's certificate is checked against that name).
    Sni,
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

    /// How long a lookup may take in all (the Java client's `lookupTimeout`): LOOKUP with its
    /// redirects, the partition count, the topics of a namespace, or their REST forms for an
    /// HTTP service URL, retries included. The operation timeout by default.
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.lookup_timeout = Some(timeout);
        self
    }

    /// How many connections to keep to each broker (the Java client's `connectionsPerBroker`,
    /// 1 by default): producers, consumers and lookups take them in turn, which spreads the
    /// traffic of a busy client over several sockets. [`build`](Self::build) refuses 0.
    pub fn connections_per_broker(mut self, connections: usize) -> Self {
        self.connections_per_broker = connections;
        self
    }

    /// Closes a connection that has had no producer, consumer or request for this long (the
    /// Java client's `connectionMaxIdleSeconds`, 60 s by default); the next user of that
    /// broker opens a new one. `Duration::ZERO` keeps idle connections open.
    pub fn connection_max_idle(mut self, idle: Duration) -> Self {
        self.connection_max_idle = idle;
        self
    }

    /// The first delay before a producer or consumer reconnects after losing its broker (the
    /// Java client's `startingBackoffInterval`, 100 ms by default); later delays double up to
    /// [`max_backoff_interval`](Self::max_backoff_interval), each with up to 20 % jitter. The
    /// first reconnection attempt is immediate.
    pub fn starting_backoff_interval(mut self, delay: Duration) -> Self {
        self.backoff.0 = delay;
        self
    }

    /// The longest delay between reconnection attempts (the Java client's
    /// `maxBackoffInterval`, 60 s by default).
    pub fn max_backoff_interval(mut self, delay: Duration) -> Self {
        self.backoff.1 = delay;
        self
    }

    /// How long a host of a multi-host service URL (`pulsar://a:6650,b:6650`) that could not
    /// be reached is set aside before it is tried again, and the longest such quarantine (it
    /// doubles with every failure in a row): the Java client's
    /// `serviceUrlQuarantineInitDuration` and `...MaxDuration`; 60 s and 1 hour by default.
    /// `Duration::ZERO` tries every host in turn always. With every host set aside, the one
    /// back soonest is tried.
    pub fn service_url_quarantine(mut self, initial: Duration, max: Duration) -> Self {
        self.quarantine = (initial, max);
        self
    }

    /// Sends every connection through a proxy (the Java client's `proxyServiceUrl` and
    /// `proxyProtocol`): with [`ProxyProtocol::Sni`], `url` (`pulsar+ssl://proxy:4443`) is
    /// where every TCP connection goes, and the TLS handshake names the broker that the
    /// lookup found, for the proxy to route on. Needs a `pulsar+ssl://` or `https://` service
    /// URL. (For the Pulsar proxy, give its address as the service URL instead: the brokers'
    /// lookup answers say to go through it.)
    pub fn proxy_service_url(mut self, url: impl Into<String>, protocol: ProxyProtocol) -> Self {
        self.proxy = Some((url.into(), protocol));
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

    /// The stats interval of producers and consumers (the Java client's
    /// `statsIntervalSeconds`; 60 s by default): [`Producer::stats`](crate::Producer::stats)
    /// and [`Consumer::stats`](crate::Consumer::stats) show the counts, rates and latency
    /// percentiles of the last complete interval, and totals since creation. Intervals roll
    /// over lazily (no timer runs). [`Duration::ZERO`] turns stats off: nothing is recorded,
    /// and the stats show only the queue sizes.
    pub fn stats_interval(mut self, interval: Duration) -> Self {
        self.stats_interval = interval;
        self
    }

    /// Records the client's metrics (the Java client's OpenTelemetry metrics, named
    /// `pulsar.client.*`: connections, lookups, producers' sends, consumers' receives, acks,
    /// nacks, dead letters and ack timeouts) into the process's global recorder of the
    /// [`metrics`](::metrics) facade, which any exporter serves (Prometheus, OpenTelemetry,
    /// StatsD). Off by default, and then free: nothing is registered or recorded. See
    /// [`MetricsCardinality`](crate::MetricsCardinality) for their attributes.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled.then_some(crate::metrics::MetricsTarget::Global);
        self
    }

    /// Records the client's metrics (as [`metrics`](Self::metrics)) into this recorder rather
    /// than the global one: several clients can keep theirs apart, and tests can read them.
    pub fn metrics_recorder(
        mut self,
        recorder: impl ::metrics::Recorder + Send + Sync + 'static,
    ) -> Self {
        self.metrics = Some(crate::metrics::MetricsTarget::Own(Arc::new(recorder)));
        self
    }

    /// Which topic attributes the metrics carry ([`MetricsCardinality::Partition`], all of
    /// them, by default).
    ///
    /// [`MetricsCardinality::Partition`]: crate::MetricsCardinality::Partition
    pub fn metrics_cardinality(mut self, cardinality: crate::MetricsCardinality) -> Self {
        self.metrics_cardinality = cardinality;
        self
    }

    /// Whether producers write a W3C trace context into every message that has none (off by
    /// default; each producer may say otherwise with
    /// [`ProducerBuilder::propagate_trace_context`](crate::ProducerBuilder::propagate_trace_context)).
    /// The Java client's `enableTracing` propagates so: a message without a `traceparent`
    /// property gets a new trace (random ids, sampled); a `traceparent` already there is kept.
    /// (A [`ProducerMessage::trace_context`](crate::ProducerMessage) set on a message is
    /// written whatever this says.) Consumers read it back with
    /// [`Message::trace_context`](crate::Message::trace_context) and record it on their
    /// `receive` spans in any case.
    pub fn propagate_trace_context(mut self, on: bool) -> Self {
        self.propagate_trace_context = on;
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
        if self.connections_per_broker == 0 {
            return Err(Error::InvalidConfig(
                "connections_per_broker must be at least 1".into(),
            ));
        }
        let proxy = match &self.proxy {
            None => None,
            Some((url, protocol)) => {
                let address = BrokerAddress::parse(url)?;
                if !address.tls || !service.tls() {
                    return Err(Error::InvalidConfig(
                        "an SNI proxy routes on the TLS server name: the proxy URL and the \
                         service URL must both use TLS (pulsar+ssl://, or https:// for the \
                         service URL)"
                            .into(),
                    ));
                }
                Some(ProxyRoute {
                    address,
                    protocol: *protocol,
                })
            }
        };
        #[cfg(not(feature = "http"))]
        if service.http {
            return Err(Error::InvalidServiceUrl {
                url: self.url.clone(),
                reason: "http:// and https:// service URLs need the `http` feature of \
                         pulsar-wire (on by default)"
                    .into(),
            });
        }
        // Built once (files read, roots loaded) and shared by every connection; an HTTP
        // service URL always needs one (for https:// hosts and redirects).
        let tls = if service.tls() || service.http || self.tls.is_customized() {
            Some(tls::client_config(&self.tls)?)
        } else {
            None
        };
        let hosts = Arc::new(Mutex::new(HostSelector::new(
            service.hosts.len(),
            self.quarantine.0,
            self.quarantine.1.max(self.quarantine.0),
        )));
        let lookup_timeout = self.lookup_timeout.unwrap_or(self.operation_timeout);
        if lookup_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "the lookup timeout must be above zero".into(),
            ));
        }
        #[cfg(feature = "http")]
        let http = match (&tls, service.http) {
            (Some(tls), true) => Some(crate::http_lookup::HttpLookup::new(
                service.clone(),
                hosts.clone(),
                tls,
                self.auth.clone(),
                self.connect_timeout,
                self.max_lookup_redirects,
            )?),
            _ => None,
        };
        let metrics = self
            .metrics
            .map(|target| crate::metrics::MetricsSink::new(target, self.metrics_cardinality));
        let pool = Pool::new(
            ConnectionConfig {
                metrics: metrics.as_ref().map(|m| m.connections()),
                connect_timeout: self.connect_timeout,
                keepalive: self.keepalive,
                auth: self.auth,
                max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                tls,
                max_idle: (!self.connection_max_idle.is_zero()).then_some(self.connection_max_idle),
                proxy,
            },
            self.connections_per_broker,
        );
        Ok(PulsarClient {
            session: Arc::new(Session {
                service,
                hosts,
                #[cfg(feature = "http")]
                http,
                pool,
                operation_timeout: self.operation_timeout,
                lookup_timeout,
                backoff: (self.backoff.0, self.backoff.1.max(self.backoff.0)),
                max_lookup_redirects: self.max_lookup_redirects,
                listener_name: self.listener_name,
                ids: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                memory_limit: MemoryLimit::new(self.memory_limit),
                stats_interval: self.stats_interval,
                propagate_trace_context: self.propagate_trace_context,
                stats_origin: tokio::time::Instant::now().into_std(),
                metrics,
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
    /// Starts building a client for a service URL: `pulsar://host:6650` or
    /// `pulsar+ssl://host:6651` (the binary protocol), or `http://host:8080` or
    /// `https://host:8443` (lookups through the brokers' REST API, feature `http`); several
    /// hosts separated by commas (`pulsar://a:6650,b:6650`) are tried in turn.
    pub fn builder(service_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: service_url.into(),
            auth: None,
            operation_timeout: Duration::from_secs(30),
            lookup_timeout: None,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            max_lookup_redirects: 20,
            listener_name: None,
            memory_limit: 64 * 1024 * 1024,
            tls: TlsOptions::default(),
            connections_per_broker: 1,
            connection_max_idle: DEFAULT_MAX_IDLE,
            backoff: (DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY),
            quarantine: (DEFAULT_QUARANTINE, DEFAULT_MAX_QUARANTINE),
            proxy: None,
            stats_interval: crate::stats::DEFAULT_STATS_INTERVAL,
            metrics: None,
            metrics_cardinality: Default::default(),
            propagate_trace_context: false,
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
