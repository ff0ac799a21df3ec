//! `perf produce --partitions N`: creates each topic as a partitioned topic through the
//! broker's admin REST API first, as pulsar-perf does (`PUT
//! /admin/v2/{domain}/{tenant}/{namespace}/{topic}/partitions` with the count as its body; 409,
//! the topic exists, is fine when it has that many partitions).

use std::sync::Arc;
use std::time::Duration;

use pulsar_wire::TopicName;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

use crate::common::{CliError, CliResult, ConnectArgs};

/// How many admin requests run at once (1,000 topics are created in parallel, not serially).
const CONCURRENT_REQUESTS: usize = 16;

/// The default admin URL for a service URL: `http://HOST:8080` of its first host, or the
/// service URL itself when it is already an `http://` or `https://` one.
pub fn default_admin_url(service_url: &str) -> CliResult<String> {
    let url = service_url.trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| CliError(format!("{url:?} is not a service URL: give --admin-url")))?;
    let first = rest
        .split([',', '/'])
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| CliError(format!("{url:?} names no host: give --admin-url")))?;
    let host = match first.rsplit_once(':') {
        // host:port, not the inside of an IPv6 address without a port.
        Some((host, port)) if !port.contains(']') => host,
        _ => first,
    };
    Ok(format!("http://{host}:8080"))
}

/// The admin REST path of `topic`'s partitioned metadata.
fn partitions_path(topic: &TopicName) -> String {
    format!(
        "/admin/v2/{}/{}/{}/{}/partitions",
        topic.domain().as_str(),
        topic.tenant(),
        topic.namespace(),
        topic.local_name()
    )
}

/// A bearer token for the admin API from `--token` or `--token-file`, if one was given.
fn bearer(connect: &ConnectArgs) -> CliResult<Option<String>> {
    if let Some(token) = &connect.token {
        return Ok(Some(token.trim().to_string()));
    }
    match &connect.token_file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| {
                CliError(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            }),
        None => Ok(None),
    }
}

/// An HTTP client over rustls with the ring provider and the Mozilla roots (for `https://`
/// admin URLs).
fn http_client(timeout: Duration) -> CliResult<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError(format!("cannot set up TLS for the admin API: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .user_agent(concat!("pulsar-wire-perf/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            CliError(format!(
                "cannot set up the HTTP client for the admin API: {e}"
            ))
        })
}

/// Creates every topic of `topics` with `partitions` partitions at `admin_url`.
pub async fn create_partitioned(
    connect: &ConnectArgs,
    admin_url: &str,
    topics: &[String],
    partitions: u32,
) -> CliResult<()> {
    let http = http_client(connect.operation_timeout)?;
    let token = bearer(connect)?;
    let base = admin_url.trim_end_matches('/').to_string();
    let permits = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
    let mut tasks = tokio::task::JoinSet::new();
    for topic in topics {
        let name = TopicName::parse(topic)
            .map_err(|e| CliError(format!("{topic:?} is not a topic name: {e}")))?;
        let url = format!("{base}{}", partitions_path(&name));
        let (http, token, permits) = (http.clone(), token.clone(), permits.clone());
        let topic = topic.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            create_one(&http, token.as_deref(), &url, partitions)
                .await
                .map_err(|e| {
                    CliError(format!(
                        "cannot create {topic} with {partitions} partitions: {e}"
                    ))
                })
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| CliError(format!("an admin request task failed: {e}")))??;
    }
    Ok(())
}

/// PUT `url` with `partitions`; on 409, checks that the existing topic has as many.
async fn create_one(
    http: &reqwest::Client,
    token: Option<&str>,
    url: &str,
    partitions: u32,
) -> Result<(), String> {
    let with_auth = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let response = with_auth(http.put(url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(partitions.to_string())
        .send()
        .await
        .map_err(|e| format!("PUT {url}: {}", causes(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status != reqwest::StatusCode::CONFLICT {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("PUT {url} answered {status}: {}", body.trim()));
    }
    // It exists: with how many partitions?
    let response = with_auth(http.get(url))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", causes(&e)))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {}", causes(&e)))?;
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}: {}", body.trim()));
    }
    let existing = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("partitions").and_then(serde_json::Value::as_u64));
    match existing {
        Some(n) if n == u64::from(partitions) => Ok(()),
        Some(n) => Err(format!(
            "it exists with {n} partitions (0: not partitioned), not {partitions}"
        )),
        None => Err(format!(
            "GET {url} answered an unexpected body: {}",
            body.trim()
        )),
    }
}

/// An error and its sources on one line.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_url_is_port_8080_of_the_first_host() {
        let d = |u: &str| default_admin_url(u).unwrap();
        assert_eq!(d("pulsar://localhost:6650"), "http://localhost:8080");
        assert_eq!(d("pulsar+ssl://b1:6651,b2:6651"), "http://b1:8080");
        assert_eq!(d("pulsar://broker"), "http://broker:8080");
        assert_eq!(d("http://web:8080/"), "http://web:8080");
        assert!(default_admin_url("localhost").is_err());
    }

    #[test]
    fn the_path_names_domain_tenant_namespace_and_topic() {
        let t = TopicName::parse("perf").unwrap();
        assert_eq!(
            partitions_path(&t),
            "/admin/v2/persistent/public/default/perf/partitions"
        );
        let t = TopicName::parse("non-persistent://a/b/c").unwrap();
        assert_eq!(
            partitions_path(&t),
            "/admin/v2/non-persistent/a/b/c/partitions"
        );
    }
}
