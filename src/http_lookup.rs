//! Lookup through the brokers' REST API, for `http://` and `https://` service URLs (feature
//! `http`), as the Java client's `HttpLookupService`: the broker of a topic from
//! `GET /lookup/v2/topic/{domain}/{tenant}/{namespace}/{topic}`, the partition count from
//! `GET /admin/v2/{domain}/{tenant}/{namespace}/{topic}/partitions`, the topics of a namespace
//! from `GET /admin/v2/namespaces/{tenant}/{namespace}/topics`. Everything else (producers,
//! consumers, schemas, transactions) then speaks the binary protocol to the broker named.
//!
//! Redirects (a broker that does not own the topic answers 307 with the owner's web address)
//! are followed here, up to the client's `max_lookup_redirects`, with the credentials sent
//! again to the new host (an HTTP library drops them on a redirect to another host). The
//! credentials go in the `Authorization` header as the official clients send them: a token
//! (method `token`, OAuth2 included) as `Bearer`, `basic` as `Basic`; a TLS client certificate
//! in the TLS handshake. HTTPS uses the client's own TLS settings (trusted CA, client
//! certificate, insecure and hostname options), the same as `pulsar+ssl://`.
//!
//! Connection failures and 5xx answers are retried on the next host of the service URL, with
//! backoff, until the lookup timeout; a failed host is quarantined as for the binary protocol.
//! Credentials that cannot be produced fail at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tracing::debug;

use crate::auth::Authentication;
use crate::error::{ConnectionError, Error, HttpError, Result, ServerError, ServerErrorCode};
use crate::protocol::backoff::Backoff;
use crate::protocol::hosts::HostSelector;
use crate::protocol::topic::TopicName;
use crate::url::{BrokerAddress, ServiceUrl};

/// The REST lookup of one client.
#[derive(Debug)]
pub(crate) struct HttpLookup {
    http: reqwest::Client,
    service: ServiceUrl,
    hosts: Arc<Mutex<HostSelector>>,
    auth: Option<Arc<dyn Authentication>>,
    max_redirects: u32,
}

/// The broker's answer to a topic lookup (`LookupData`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupData {
    broker_url: Option<String>,
    broker_url_tls: Option<String>,
    /// The pre-2.0 name of `brokerUrl`.
    native_url: Option<String>,
}

/// The broker's answer to a partitions query (`PartitionedTopicMetadata`).
#[derive(Debug, Deserialize)]
struct PartitionedMetadata {
    #[serde(default)]
    partitions: u32,
}

/// What a broker's REST error body usually holds.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    message: Option<String>,
}

impl HttpLookup {
    /// The REST lookup of `service` (an HTTP service URL), over `tls` (the client's rustls
    /// configuration, used for `https://` hosts and redirects).
    pub(crate) fn new(
        service: ServiceUrl,
        hosts: Arc<Mutex<HostSelector>>,
        tls: &tokio_rustls::rustls::ClientConfig,
        auth: Option<Arc<dyn Authentication>>,
        connect_timeout: Duration,
        max_redirects: u32,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .user_agent(concat!("pulsar-wire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::InvalidConfig(format!("cannot set up the HTTP client for lookups: {e}"))
            })?;
        Ok(HttpLookup {
            http,
            service,
            hosts,
            auth,
            max_redirects,
        })
    }

    /// The binary protocol address of the broker that serves `topic` (its TLS address for an
    /// `https://` service URL).
    pub(crate) async fn lookup(
        &self,
        topic: &TopicName,
        listener: Option<&str>,
        timeout: Duration,
    ) -> Result<BrokerAddress> {
        let mut path = format!("lookup/v2/topic/{}", topic_path(topic));
        if let Some(listener) = listener {
            path.push_str("?listenerName=");
            path.push_str(&encode(listener));
        }
        let data: LookupData = self.get_json("lookup", &path, timeout).await?;
        let tls = self.service.tls();
        let url = if tls {
            data.broker_url_tls
        } else {
            data.broker_url.or(data.native_url)
        };
        let url = url.filter(|u| !u.is_empty()).ok_or_else(|| {
            Error::Connection(ConnectionError::Protocol(format!(
                "the REST lookup of {} named no {} broker URL{}",
                topic.full_name(),
                if tls {
                    "TLS (brokerUrlTls)"
                } else {
                    "plain (brokerUrl)"
                },
                if tls {
                    ": with an https:// service URL the brokers must have brokerServicePortTls"
                } else {
                    ""
                }
            )))
        })?;
        BrokerAddress::parse(&url)
    }

    /// The partition count of `topic` (0: not partitioned).
    pub(crate) async fn partitions(&self, topic: &TopicName, timeout: Duration) -> Result<u32> {
        let path = format!(
            "admin/v2/{}/partitions?checkAllowAutoCreation=true",
            topic_path(topic)
        );
        let meta: PartitionedMetadata = self
            .get_json("partitioned metadata", &path, timeout)
            .await?;
        Ok(meta.partitions)
    }

    /// The topics of `namespace` (`tenant/namespace`), persistent or not.
    pub(crate) async fn topics_of_namespace(
        &self,
        namespace: &str,
        persistent: bool,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let mode = if persistent {
            "PERSISTENT"
        } else {
            "NON_PERSISTENT"
        };
        let path = format!(
            "admin/v2/namespaces/{}/topics?mode={mode}",
            namespace
                .split('/')
                .map(encode)
                .collect::<Vec<_>>()
                .join("/")
        );
        self.get_json("get topics of namespace", &path, timeout)
            .await
    }

    /// GETs `path` (relative to a host of the service URL) and decodes its JSON, retrying
    /// connection failures and 5xx answers on the next host until `timeout`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        timeout: Duration,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let (index, base) = {
                let mut hosts = self
                    .hosts
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let i = hosts.pick(std::time::Instant::now()).unwrap_or(0);
                let host =
                    self.service.hosts.get(i).ok_or_else(|| {
                        Error::InvalidConfig("the service URL has no host".into())
                    })?;
                (i, ServiceUrl::http_base(host))
            };
            let url = format!("{base}/{path}");
            let attempt = tokio::time::timeout_at(deadline, self.get_following(operation, &url));
            let result = match attempt.await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Error::Timeout {
                        operation,
                        after: timeout,
                    })
                }
            };
            let failure = match result {
                Ok(body) => {
                    self.mark(index, true);
                    return serde_json::from_slice(&body).map_err(|e| {
                        Error::Connection(ConnectionError::Protocol(format!(
                            "the broker's answer to {operation} ({url}) is not the JSON \
                             expected: {e}"
                        )))
                    });
                }
                Err(e) => e,
            };
            // A host that answers is up, whatever it answered.
            let host_down = matches!(failure, Error::Connection(ConnectionError::Http(_)));
            self.mark(index, !host_down);
            // Credentials that cannot be produced (a token server refusing the client secret,
            // an unreadable key file) fail the lookup at once, as on the binary protocol.
            let credentials = matches!(failure, Error::Connection(ConnectionError::Credentials(_)));
            if credentials || !failure.is_retriable() {
                return Err(failure);
            }
            let delay = backoff.next_delay_random();
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(failure);
            }
            debug!(error = %failure, operation, ?delay, "REST lookup failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    fn mark(&self, index: usize, up: bool) {
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

    /// GETs `url`, following redirects with the credentials, and gives the body of the final
    /// 2xx answer.
    async fn get_following(&self, operation: &'static str, url: &str) -> Result<bytes::Bytes> {
        let mut url = reqwest::Url::parse(url).map_err(|e| Error::InvalidServiceUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let authorization = self.authorization().await?;
        for _ in 0..=self.max_redirects {
            let mut request = self
                .http
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(value) = &authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value.as_str());
            }
            let response = request
                .send()
                .await
                .map_err(|e| http_error(url.as_str(), e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        Error::Connection(ConnectionError::Protocol(format!(
                            "{url} answered {status} without a Location"
                        )))
                    })?;
                let next = url.join(location).map_err(|e| {
                    Error::Connection(ConnectionError::Protocol(format!(
                        "{url} redirected to {location:?}, not a URL: {e}"
                    )))
                })?;
                if url.scheme() == "https" && next.scheme() != "https" {
                    return Err(Error::Connection(ConnectionError::Protocol(format!(
                        "{url} redirected to {next}, off TLS: refused (the brokers' \
                         advertised web service URLs must be https:// too)"
                    ))));
                }
                debug!(from = %url, to = %next, operation, "following a lookup redirect");
                url = next;
                continue;
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| http_error(url.as_str(), e))?;
            if status.is_success() {
                return Ok(body);
            }
            return Err(status_error(
                operation,
                url.as_str(),
                status.as_u16(),
                &body,
            ));
        }
        Err(Error::TooManyRedirects {
            topic: url.path().to_owned(),
            max: self.max_redirects,
        })
    }

    /// The `Authorization` header value for the client's credentials, if they have one.
    async fn authorization(&self) -> Result<Option<String>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let method = auth.method_name().to_owned();
        let scheme = match method.as_str() {
            "token" => "Bearer",
            "basic" => "Basic",
            _ => return Ok(None),
        };
        let data = auth.auth_data().await.map_err(|e| {
            Error::Connection(ConnectionError::Credentials(format!(
                "{method} authentication: {e}"
            )))
        })?;
        let value = if scheme == "Basic" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&data)
        } else {
            String::from_utf8(data.to_vec()).map_err(|_| {
                Error::Connection(ConnectionError::Credentials(
                    "token authentication: the token is not UTF-8".into(),
                ))
            })?
        };
        Ok(Some(format!("{scheme} {value}")))
    }
}

/// `{domain}/{tenant}/{namespace}/{topic}` (or with the cluster, for a v1 name), each part
/// percent-encoded.
fn topic_path(topic: &TopicName) -> String {
    let mut parts = vec![topic.domain().as_str(), topic.tenant()];
    if let Some(cluster) = topic.cluster() {
        parts.push(cluster);
    }
    parts.push(topic.namespace());
    parts.push(topic.local_name());
    parts.into_iter().map(encode).collect::<Vec<_>>().join("/")
}

/// Percent-encodes everything but the URL's unreserved characters (as Java's `Codec.encode`
/// for the parts of a topic name).
fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A transport failure (the host is unreachable, TLS failed, the answer was cut off).
fn http_error(url: &str, e: reqwest::Error) -> Error {
    Error::Connection(ConnectionError::Http(HttpError::new(url, e)))
}

/// The typed error of a non-2xx answer: the broker's reason with the status, under the server
/// error code the binary protocol would have given.
fn status_error(operation: &'static str, url: &str, status: u16, body: &[u8]) -> Error {
    let reason = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.reason.or(b.message))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            text.chars().take(300).collect()
        });
    let code = match status {
        401 => ServerErrorCode::AuthenticationError,
        403 => ServerErrorCode::AuthorizationError,
        404 => ServerErrorCode::TopicNotFound,
        429 => ServerErrorCode::TooManyRequests,
        503 => ServerErrorCode::ServiceNotReady,
        500..=599 => ServerErrorCode::UnknownError,
        _ => ServerErrorCode::NotAllowedError,
    };
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    Error::Server {
        operation,
        error: ServerError {
            code,
            message: format!("HTTP {status} from {url}{reason}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_paths_are_encoded_part_by_part() {
        let t = TopicName::parse("persistent://public/default/my topic?x").unwrap();
        assert_eq!(topic_path(&t), "persistent/public/default/my%20topic%3Fx");
        let t = TopicName::parse("non-persistent://t/n/a-partition-2").unwrap();
        assert_eq!(topic_path(&t), "non-persistent/t/n/a-partition-2");
    }

    #[test]
    fn statuses_map_to_the_binary_protocols_codes() {
        let e = status_error("lookup", "http://b/x", 401, br#"{"reason":"bad token"}"#);
        let s = e.server_error().unwrap();
        assert_eq!(s.code, ServerErrorCode::AuthenticationError);
        assert!(
            s.message.contains("HTTP 401 from http://b/x: bad token"),
            "{s}"
        );
        assert!(!e.is_retriable());
        let e = status_error("lookup", "http://b/x", 503, b"busy");
        assert!(e.is_retriable());
        assert!(e.to_string().contains("busy"), "{e}");
        let e = status_error("lookup", "http://b/x", 404, b"");
        assert_eq!(
            e.server_error().unwrap().code,
            ServerErrorCode::TopicNotFound
        );
    }
}
