//! The session behind a [`PulsarClient`](crate::PulsarClient): what producers, consumers and
//! their tasks need of the client (the connection pool, lookup, request ids, the operation
//! timeout, the memory limit), without the client's public API. The tasks and builders hold an
//! `Arc<Session>`; nothing below the client imports it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;

use crate::connection::pool::Pool;
use crate::connection::Connection;
use crate::error::{ConnectionError, Error, Result, ServerErrorCode};
use crate::protocol::backoff::Backoff;
use crate::protocol::commands;
use crate::protocol::hosts::HostSelector;
use crate::protocol::topic::TopicName;
use crate::url::{BrokerAddress, ServiceUrl};
use crate::wire::proto::command_lookup_topic_response::LookupType;

#[derive(Debug)]
/// The shared state of one client.
pub(crate) struct Session {
    pub(crate) service: ServiceUrl,
    /// Which host of the service URL to try next (shared with the REST lookup).
    pub(crate) hosts: Arc<Mutex<HostSelector>>,
    /// The REST lookup, for an `http://` or `https://` service URL.
    #[cfg(feature = "http")]
    pub(crate) http: Option<crate::http_lookup::HttpLookup>,
    pub(crate) pool: Pool,
    pub(crate) operation_timeout: Duration,
    /// The bound of a lookup (LOOKUP with its redirects, PARTITIONED_METADATA, the topics of
    /// a namespace), apart from the operation timeout.
    pub(crate) lookup_timeout: Duration,
    /// The first and the longest delay of producers' and consumers' reconnection backoff.
    pub(crate) backoff: (Duration, Duration),
    pub(crate) max_lookup_redirects: u32,
    /// The broker listener LOOKUP asks for (`advertisedListeners`), if any.
    pub(crate) listener_name: Option<String>,
    pub(crate) ids: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) memory_limit: Option<Arc<MemoryLimit>>,
    /// The stats interval of producers and consumers (zero: no stats).
    pub(crate) stats_interval: Duration,
    /// Producers write a trace context into messages without one (unless they say otherwise).
    pub(crate) propagate_trace_context: bool,
    /// Where every stats interval of this client is counted from (the client's creation).
    pub(crate) stats_origin: std::time::Instant,
    /// Where metrics go (none: metrics off).
    pub(crate) metrics: Option<crate::metrics::MetricsSink>,
    /// The transaction coordinators, found on the first transaction.
    pub(crate) coordinators: crate::transaction::CoordinatorCell,
    /// The schemas of the versions fetched from the registry.
    pub(crate) schemas: crate::registry::SchemaCache,
}

/// The client-wide budget of payload bytes awaiting receipts.
#[derive(Debug)]
pub(crate) struct MemoryLimit {
    limit: usize,
    bytes: Arc<tokio::sync::Semaphore>,
}

impl MemoryLimit {
    pub(crate) fn new(limit: usize) -> Option<Arc<Self>> {
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

impl Session {
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether lookups go through the brokers' REST API (an `http://` or `https://` URL).
    pub(crate) fn is_http(&self) -> bool {
        self.service.http
    }

    /// The REST lookup, for an HTTP service URL.
    #[cfg(feature = "http")]
    fn http(&self) -> Option<&crate::http_lookup::HttpLookup> {
        self.http.as_ref()
    }

    /// A fresh reconnection backoff with the client's settings.
    pub(crate) fn reconnect_backoff(&self) -> Backoff {
        Backoff::new(self.backoff.0, self.backoff.1)
    }

    fn service_host(&self) -> Result<(usize, BrokerAddress)> {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let i = hosts
            .pick(std::time::Instant::now())
            .ok_or_else(|| Error::InvalidConfig("the service URL has no host".into()))?;
        let host = self
            .service
            .hosts
            .get(i)
            .ok_or_else(|| Error::InvalidConfig("the service URL has no host".into()))?;
        Ok((i, host.clone()))
    }

    fn mark_host(&self, index: usize, up: bool) {
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if up {
            hosts.succeeded(index);
        } else {
            hosts.failed(index, std::time::Instant::now());
        }
    }

    /// A connection to any broker of the service URL, retried with backoff until `deadline`;
    /// a host that cannot be reached is set aside for a while (see
    /// [`HostSelector`]) and the next one tried at once.
    async fn service_connection(&self, deadline: tokio::time::Instant) -> Result<Connection> {
        if self.is_http() {
            return Err(Error::InvalidConfig(
                "this operation needs a binary protocol service URL (pulsar:// or \
                 pulsar+ssl://); the client has an HTTP one"
                    .into(),
            ));
        }
        // Retries inside one operation: short waits, the operation timeout bounds them.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut attempts = 0usize;
        loop {
            if self.is_closed() {
                return Err(Error::Closed("client"));
            }
            let (index, host) = self.service_host()?;
            match self.pool.get(&host, &host).await {
                Ok(conn) => {
                    self.mark_host(index, true);
                    return Ok(conn);
                }
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
                    if matches!(
                        e,
                        ConnectionError::Connect { .. } | ConnectionError::ConnectTimeout { .. }
                    ) {
                        self.mark_host(index, false);
                    }
                    // With several hosts, each is tried once before a wait.
                    attempts += 1;
                    let delay = if attempts % self.service.hosts.len().max(1) != 0 {
                        Duration::ZERO
                    } else {
                        backoff.next_delay_random()
                    };
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(Error::Connection(e));
                    }
                    debug!(error = %e, ?delay, host = %host, "service connection failed, retrying");
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
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
        self.request_any_unless(operation, self.operation_timeout, make, |_| false)
            .await
    }

    /// [`Session::request_any`] within `timeout`, but an error `fatal` picks out is returned
    /// at once, not retried.
    async fn request_any_unless(
        &self,
        operation: &'static str,
        timeout: Duration,
        make: impl Fn(u64) -> crate::wire::proto::BaseCommand,
        fatal: impl Fn(&Error) -> bool,
    ) -> Result<(Connection, crate::wire::proto::BaseCommand)> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Retries inside one operation: short waits, the operation timeout bounds them.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let conn = self.service_connection(deadline).await?;
            let id = self.next_id();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn.request(id, operation, make(id), Some(left)).await {
                Ok(resp) => return Ok((conn, resp)),
                // The request had what was left of the operation's time: the error names all
                // of it (what was left may be next to nothing after retries).
                Err(Error::Timeout { operation, .. }) => {
                    return Err(Error::Timeout {
                        operation,
                        after: timeout,
                    })
                }
                Err(e) if e.is_retriable() && !fatal(&e) => {
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

    /// Runs a lookup of `kind`, recording its duration with metrics on.
    pub(crate) async fn timed<T>(
        &self,
        kind: crate::metrics::LookupKind,
        lookup: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(metrics) = &self.metrics else {
            return lookup.await;
        };
        let start = std::time::Instant::now();
        let result = lookup.await;
        metrics.lookup(kind, self.is_http(), result.is_ok(), start.elapsed());
        result
    }

    /// PARTITIONED_METADATA: the partition count (0: not partitioned).
    pub(crate) async fn partitioned_metadata(&self, topic: &TopicName) -> Result<u32> {
        if topic.is_partition() {
            return Ok(0);
        }
        self.timed(
            crate::metrics::LookupKind::Metadata,
            self.partitioned_metadata_of(topic),
        )
        .await
    }

    async fn partitioned_metadata_of(&self, topic: &TopicName) -> Result<u32> {
        #[cfg(feature = "http")]
        if let Some(http) = self.http() {
            return http.partitions(topic, self.lookup_timeout).await;
        }
        let name = topic.full_name().to_owned();
        let (_, resp) = self
            .request_any_unless(
                "partitioned metadata",
                self.lookup_timeout,
                |id| commands::partitioned_metadata(&name, id),
                |_| false,
            )
            .await?;
        Ok(resp
            .partition_metadata_response
            .and_then(|r| r.partitions)
            .unwrap_or(0))
    }

    /// The topics of `namespace` (`tenant/namespace`), persistent or not, partitions listed
    /// one by one (GET_TOPICS_OF_NAMESPACE, or the REST API for an HTTP service URL).
    pub(crate) async fn topics_of_namespace(
        &self,
        namespace: &str,
        persistent: bool,
    ) -> Result<Vec<String>> {
        self.timed(
            crate::metrics::LookupKind::ListTopics,
            self.topics_of_namespace_of(namespace, persistent),
        )
        .await
    }

    async fn topics_of_namespace_of(
        &self,
        namespace: &str,
        persistent: bool,
    ) -> Result<Vec<String>> {
        #[cfg(feature = "http")]
        if let Some(http) = self.http() {
            return http
                .topics_of_namespace(namespace, persistent, self.lookup_timeout)
                .await;
        }
        let resp = self
            .request_any_unless(
                "get topics of namespace",
                self.lookup_timeout,
                |id| commands::get_topics_of_namespace(namespace, persistent, id),
                |_| false,
            )
            .await?
            .1;
        Ok(resp
            .get_topics_of_namespace_response
            .map(|r| r.topics)
            .unwrap_or_default())
    }

    /// Runs a request that any broker can answer about `topic` (GET_SCHEMA): on any broker of
    /// a binary service URL, on the topic's own broker with an HTTP service URL (which names
    /// no broker to ask otherwise).
    pub(crate) async fn request_about(
        &self,
        topic: &TopicName,
        operation: &'static str,
        make: impl Fn(u64) -> crate::wire::proto::BaseCommand,
    ) -> Result<crate::wire::proto::BaseCommand> {
        if !self.is_http() {
            return Ok(self.request_any(operation, make).await?.1);
        }
        let conn = self.lookup(topic).await?;
        let id = self.next_id();
        conn.request(id, operation, make(id), Some(self.operation_timeout))
            .await
    }

    /// LOOKUP: the connection to the broker that owns `topic`, following redirects; in a
    /// `lookup` span (target [`SPAN_TARGET`](crate::SPAN_TARGET), INFO level) with the topic,
    /// the broker found, the redirects followed, or the error.
    pub(crate) async fn lookup(&self, topic: &TopicName) -> Result<Connection> {
        use tracing::Instrument as _;
        let span = tracing::info_span!(
            target: crate::trace::SPAN_TARGET,
            "lookup",
            otel.status_code = tracing::field::Empty,
            messaging.system = "pulsar",
            messaging.destination.name = topic.full_name(),
            pulsar.broker = tracing::field::Empty,
            pulsar.lookup.redirects = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let mut redirects = 0u32;
        let result = self
            .timed(
                crate::metrics::LookupKind::Topic,
                self.lookup_redirects(topic, &mut redirects),
            )
            .instrument(span.clone())
            .await;
        if !span.is_disabled() {
            span.record("pulsar.lookup.redirects", redirects);
            match &result {
                Ok(conn) => {
                    span.record("pulsar.broker", tracing::field::display(conn.logical()));
                }
                Err(e) => crate::trace::record_error(&span, e),
            }
        }
        result
    }

    /// [`Session::lookup`], without its span; counts the redirects followed.
    async fn lookup_redirects(&self, topic: &TopicName, followed: &mut u32) -> Result<Connection> {
        #[cfg(feature = "http")]
        if let Some(http) = self.http() {
            let broker = http
                .lookup(topic, self.listener_name.as_deref(), self.lookup_timeout)
                .await
                .map_err(|e| {
                    unknown_listener(topic.full_name(), self.listener_name.as_deref(), &e)
                        .unwrap_or(e)
                })?;
            return self
                .pool
                .get(&broker, &broker)
                .await
                .map_err(Error::Connection);
        }
        let name = topic.full_name().to_owned();
        let tls = self.service.tls();
        let listener = self.listener_name.as_deref();
        let unknown_listener = |e: &Error| unknown_listener(&name, listener, e);
        let (mut conn, mut resp) = self
            .request_any_unless(
                "lookup",
                self.lookup_timeout,
                |id| commands::lookup(&name, id, false, listener),
                |e| unknown_listener(e).is_some(),
            )
            .await
            .map_err(|e| unknown_listener(&e).unwrap_or(e))?;
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
                            commands::lookup(&name, id, authoritative, listener),
                            Some(self.lookup_timeout),
                        )
                        .await
                        .map_err(|e| unknown_listener(&e).unwrap_or(e))?;
                    conn = target;
                    *followed = redirects + 1;
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

/// The typed error of a lookup refused because the broker has no listener named `listener`
/// (Apache Pulsar answers "the broker do not have NAME listener"), if `e` is one.
fn unknown_listener(topic: &str, listener: Option<&str>, e: &Error) -> Option<Error> {
    let listener = listener?;
    let Error::Server { error, .. } = e else {
        return None;
    };
    let message = &error.message;
    (message.contains("listener") && message.contains(listener)).then(|| Error::UnknownListener {
        topic: topic.to_owned(),
        listener: listener.to_owned(),
        message: message.clone(),
    })
}
