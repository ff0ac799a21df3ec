//! OAuth2 client credentials (RFC 6749 section 4.4), as the official clients'
//! `AuthenticationOAuth2` / `AuthenticationFactoryOAuth2.clientCredentials`: the client trades
//! a client id and secret for an access token at the issuer's token endpoint, and sends the
//! token to the broker with the `token` method (the broker checks it with its token provider).
//!
//! What happens, in order:
//!
//! 1. the token endpoint is found once through `{issuer}/.well-known/openid-configuration`
//!    (its `token_endpoint`), and kept;
//! 2. the credentials (`client_id`, `client_secret`) are read from their file on every fetch, so
//!    a rotated key file is picked up, or taken from the `data:` URL or the code;
//! 3. a form POST `grant_type=client_credentials&client_id=..&client_secret=..` (with
//!    `audience` and `scope` when set) answers `access_token` and `expires_in`;
//! 4. the token is cached and handed to every connection until it nears its end (see
//!    [`OAuth2ClientCredentials`] for when exactly), and a fresh one is fetched for each
//!    AUTH_CHALLENGE.
//!
//! Every fetch goes through one lock: connections that need a token at the same time share one
//! request to the token server.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use tracing::{debug, warn};

use super::{AuthChallenge, AuthError, AuthFuture, Authentication};
use crate::connection::tls::{self, TlsOptions};

const WELL_KNOWN_PATH: &str = OAuth2ClientCredentials::WELL_KNOWN_PATH;
const DEFAULT_FETCH_TIMEOUT: Duration = OAuth2ClientCredentials::DEFAULT_FETCH_TIMEOUT;

/// The least time before its end at which a cached token is replaced.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(2);
/// The most time before its end at which a cached token is replaced.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Lifetimes above this are taken as this (no `Instant` overflow, whatever a server says).
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
/// The most bytes read of a token server's answer.
const MAX_BODY: usize = 256 * 1024;
/// The most characters of a token server's text quoted in an error.
const MAX_QUOTED: usize = 200;

/// How long before its end a token of `lifetime` is replaced: a tenth of its lifetime (the
/// Java client uses its token until 90% of `expires_in`), but at least 2 s (the time a CONNECT
/// takes to reach the broker, and some clock difference between the token server and the
/// broker) and at most 5 minutes (long-lived tokens are not thrown away hours early). A token
/// living 2 s or less is never reused by time, only shared by the connections that asked for
/// it while it was fetched.
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).clamp(MIN_REFRESH_MARGIN, MAX_REFRESH_MARGIN)
}

/// The cached access token, with the instants that decide whether it can be used. Pure: time
/// is an input.
#[derive(Default)]
pub(crate) struct TokenCache {
    current: Option<CachedToken>,
}

struct CachedToken {
    token: String,
    /// When the answer arrived: a caller that asked before this shares the fetch.
    received_at: Instant,
    /// From when the token is replaced (its end minus the refresh margin).
    refresh_at: Instant,
    /// When it ends, as far as this client knows (`None`: the server did not say).
    expires_at: Option<Instant>,
}

impl TokenCache {
    /// The cached token, if a caller that asked at `asked_at` may use it at `now`: a token
    /// fetched while the caller waited (received after `asked_at`) and not yet ended; else,
    /// unless `newer_only` (an AUTH_CHALLENGE, which wants a token fetched after it), a token
    /// before its refresh time.
    pub(crate) fn usable(&self, now: Instant, asked_at: Instant, newer_only: bool) -> Option<&str> {
        let c = self.current.as_ref()?;
        if c.received_at >= asked_at {
            return c
                .expires_at
                .is_none_or(|end| now < end)
                .then_some(c.token.as_str());
        }
        (!newer_only && now < c.refresh_at).then_some(c.token.as_str())
    }

    /// The cached token if it has not ended at `now` (a fallback when a refresh fails).
    pub(crate) fn unexpired(&self, now: Instant) -> Option<&str> {
        let c = self.current.as_ref()?;
        c.expires_at
            .is_some_and(|end| now < end)
            .then_some(c.token.as_str())
    }

    /// Keeps `token`, requested at `requested_at` (its lifetime counts from there: the server
    /// made it after that) and received at `received_at`, living `lifetime` (`None`: unknown,
    /// so it is only shared by the callers waiting for it, never reused by time).
    pub(crate) fn store(
        &mut self,
        token: String,
        lifetime: Option<Duration>,
        requested_at: Instant,
        received_at: Instant,
    ) {
        let (refresh_at, expires_at) = match lifetime {
            Some(lifetime) => {
                let lifetime = lifetime.min(MAX_LIFETIME);
                let keep = lifetime.saturating_sub(refresh_margin(lifetime));
                (
                    requested_at.checked_add(keep).unwrap_or(requested_at),
                    Some(requested_at.checked_add(lifetime).unwrap_or(requested_at)),
                )
            }
            None => (requested_at, None),
        };
        self.current = Some(CachedToken {
            token,
            received_at,
            refresh_at,
            expires_at,
        });
    }
}

/// A client id and its secret. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    client_id: String,
    client_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Where the credentials come from.
#[derive(Clone, PartialEq, Eq)]
enum CredentialsSource {
    /// A JSON key file, read on every fetch.
    File(PathBuf),
    /// Given inline: a `data:` URL, or the code.
    Inline {
        credentials: Credentials,
        from: &'static str,
    },
}

impl CredentialsSource {
    fn describe(&self) -> String {
        match self {
            CredentialsSource::File(path) => format!("the credentials file {}", path.display()),
            CredentialsSource::Inline { from, .. } => (*from).to_owned(),
        }
    }
}

impl fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsSource::File(path) => write!(f, "file {}", path.display()),
            CredentialsSource::Inline { credentials, from } => {
                write!(f, "{from} (client_id {:?})", credentials.client_id)
            }
        }
    }
}

/// How the builder was given the credentials (resolved by `build`).
#[derive(Clone)]
enum CredentialsSpec {
    Url(String),
    File(PathBuf),
    Pair(Credentials),
}

/// The credentials of a key file's JSON: `client_id` and `client_secret`, non-empty strings.
/// Other members (`type`, `issuer_url`, `client_email`, ...) are ignored, as the Java client
/// ignores them. Error messages never quote the JSON (it holds the secret).
fn parse_credentials_json(json: &[u8], from: &str) -> Result<Credentials, AuthError> {
    let expected = "expected {\"client_id\":\"...\",\"client_secret\":\"...\"}";
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
        // serde_json's syntax errors name a line and column, never the text.
        AuthError::new(format!(
            "OAuth2: {from} is not valid JSON ({e}): {expected}"
        ))
    })?;
    let Some(object) = value.as_object() else {
        return Err(AuthError::new(format!(
            "OAuth2: {from} is not a JSON object: {expected}"
        )));
    };
    let field = |name: &str| match object.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(serde_json::Value::String(_)) => Err(AuthError::new(format!(
            "OAuth2: the {name} of {from} is empty: {expected}"
        ))),
        Some(_) => Err(AuthError::new(format!(
            "OAuth2: the {name} of {from} is not a string: {expected}"
        ))),
        None => Err(AuthError::new(format!(
            "OAuth2: {from} has no {name}: {expected}"
        ))),
    };
    Ok(Credentials {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
    })
}

/// Decodes `%XX` escapes; anything else is kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The credentials source of the Java client's `privateKey` forms: `data:application/json;
/// base64,...` (or a percent-encoded `data:application/json,...`), `file:///path` (also
/// `file:/path`, `file://localhost/path`, percent-escapes decoded), or a plain path.
fn parse_credentials_url(url: &str) -> Result<CredentialsSource, AuthError> {
    let url = url.trim();
    let hint = "give file:///path/to/credentials.json, \
                data:application/json;base64,... or a path";
    if url.is_empty() {
        return Err(AuthError::new(format!(
            "OAuth2: the credentials URL is empty: {hint}"
        )));
    }
    if let Some(rest) = strip_prefix_ignore_case(url, "data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(AuthError::new(format!(
                "OAuth2: the credentials data: URL has no ',' before its data: {hint}"
            )));
        };
        let mut parts = meta.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let base64 = parts.any(|p| p.eq_ignore_ascii_case("base64"));
        if media != "application/json" {
            let shown = if media.is_empty() { "none" } else { &media };
            return Err(AuthError::new(format!(
                "OAuth2: the credentials data: URL has media type {shown}, not application/json \
                 (write data:application/json;base64,...)"
            )));
        }
        let json = if base64 {
            decode_base64(data.trim()).ok_or_else(|| {
                AuthError::new(
                    "OAuth2: the credentials data: URL is not valid base64 after \
                     'data:application/json;base64,'",
                )
            })?
        } else {
            percent_decode(data)
        };
        let credentials = parse_credentials_json(&json, "the credentials data: URL")?;
        return Ok(CredentialsSource::Inline {
            credentials,
            from: "the credentials data: URL",
        });
    }
    if let Some(rest) = strip_prefix_ignore_case(url, "file:") {
        let path = match rest.strip_prefix("//") {
            Some(after) => {
                let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                    return Err(AuthError::new(format!(
                        "OAuth2: the credentials URL {url} names host {host:?}: a file URL \
                         names a local file (file:///path/to/credentials.json)"
                    )));
                }
                path
            }
            None => rest,
        };
        if path.is_empty() {
            return Err(AuthError::new(format!(
                "OAuth2: the credentials URL {url} names no file: {hint}"
            )));
        }
        let path = String::from_utf8_lossy(&percent_decode(path)).into_owned();
        return Ok(CredentialsSource::File(PathBuf::from(path)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(AuthError::new(format!(
            "OAuth2: credentials URLs of scheme {scheme:?} are not supported: {hint}"
        )));
    }
    Ok(CredentialsSource::File(PathBuf::from(url)))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
}

/// The seconds of a JSON `expires_in` (a number, or a number in a string, as some servers
/// send it); `None` when absent, negative or not a number.
fn expires_in(value: Option<&serde_json::Value>) -> Option<Duration> {
    let secs = match value? {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_LIFETIME, |d| d.min(MAX_LIFETIME)))
}

/// The lifetime left at `now_unix` (seconds since the epoch) of a JWT's `exp` claim, when the
/// token is a JWT that has one (the fallback when the server sends no `expires_in`).
fn jwt_lifetime(token: &str, now_unix: u64) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let claims: serde_json::Value = serde_json::from_slice(&decode_base64(payload)?).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    if !exp.is_finite() {
        return None;
    }
    let left = exp - now_unix as f64;
    Some(Duration::try_from_secs_f64(left.max(0.0)).map_or(MAX_LIFETIME, |d| d.min(MAX_LIFETIME)))
}

/// An access token the token server answered, with its lifetime when known.
#[derive(Debug, PartialEq, Eq)]
struct TokenAnswer {
    token: String,
    lifetime: Option<Duration>,
}

/// The 2xx answer of the token endpoint: `access_token` and `expires_in` (else the JWT's
/// `exp`).
fn parse_token_answer(body: &[u8], url: &str, now_unix: u64) -> Result<TokenAnswer, AuthError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        AuthError::new(format!(
            "OAuth2: the token endpoint {url} answered a body that is not JSON ({e}): check that \
             the issuer's discovery document names an OAuth2 token endpoint"
        ))
    })?;
    let token = match value.get("access_token") {
        Some(serde_json::Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => {
            return Err(AuthError::new(format!(
                "OAuth2: the token endpoint {url} answered without an access_token (check that it \
                 is an OAuth2 token endpoint that grants client_credentials)"
            )))
        }
    };
    let lifetime = expires_in(value.get("expires_in")).or_else(|| jwt_lifetime(&token, now_unix));
    Ok(TokenAnswer { token, lifetime })
}

/// Some text of a server's answer, fit for an error message: printable, at most
/// [`MAX_QUOTED`] characters, with `secret` (if the server echoed it) replaced.
fn quote(text: &str, secret: &str) -> String {
    let text = if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "<redacted>")
    };
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED)
        .collect();
    if text.chars().count() > MAX_QUOTED {
        out.push_str("...");
    }
    out.trim().to_owned()
}

/// What a refusing answer says: `error: error_description` of an OAuth2 error body (RFC 6749
/// section 5.2), else the start of the body; empty when there is nothing.
fn answer_text(body: &[u8], secret: &str) -> (Option<String>, String) {
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(body) {
        let get = |k: &str| o.get(k).and_then(|v| v.as_str()).map(|s| quote(s, secret));
        let error = get("error").filter(|s| !s.is_empty());
        let text = match (&error, get("error_description").filter(|s| !s.is_empty())) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.clone(),
            (None, Some(d)) => d,
            (None, None) => quote(&String::from_utf8_lossy(body), secret),
        };
        return (error, text);
    }
    (None, quote(&String::from_utf8_lossy(body), secret))
}

/// `HTTP 401 Unauthorized`.
fn status_text(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// The error of a token endpoint that refused: its status and its words, and what to check.
fn token_refused(
    url: &str,
    status: reqwest::StatusCode,
    body: &[u8],
    credentials: &Credentials,
    source: &str,
) -> AuthError {
    let (error, text) = answer_text(body, &credentials.client_secret);
    let advice = match (status.as_u16(), error.as_deref()) {
        (_, Some("invalid_client" | "unauthorized_client")) | (401, _) => format!(
            "check the client_id and client_secret in {source}, and that the client may use \
             the client_credentials grant"
        ),
        (_, Some("invalid_scope")) => "check the scope".to_owned(),
        (_, Some("invalid_target" | "invalid_audience")) => "check the audience".to_owned(),
        (404 | 405, _) => format!(
            "check the issuer URL: its discovery document names {url} as the token endpoint"
        ),
        (400..=499, _) => format!("check the credentials in {source}, the audience and the scope"),
        (500..=599, _) => {
            "the token server failed: try again later, or ask its operator".to_owned()
        }
        _ => "check the issuer URL and the token server".to_owned(),
    };
    let said = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    AuthError::new(format!(
        "OAuth2: the token endpoint {url} answered client_id {:?} with {}{said} ({advice})",
        credentials.client_id,
        status_text(status)
    ))
}

/// The causes of an HTTP client error, innermost last ("tcp connect error: Connection refused
/// (os error 111)"), without the top error's own text (which repeats the URL).
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// The error of a token server that could not be reached or whose answer could not be read.
fn unreachable(what: &str, url: &str, e: &reqwest::Error) -> AuthError {
    let cause = causes(e);
    let hint = if cause.to_ascii_lowercase().contains("certificate") {
        "the token server's TLS certificate was refused: for one signed by a private CA, set \
         the OAuth2 trust_certs_file (trustCertsFilePath) to that CA"
    } else if e.is_timeout() {
        "no answer in time: check that the server is up and reachable from here"
    } else {
        "check the issuer URL, that the token server is up and reachable from here, and any \
         HTTP proxy settings (HTTPS_PROXY, NO_PROXY)"
    };
    AuthError::new(format!(
        "OAuth2: cannot reach the {what} {url}: {cause} ({hint})"
    ))
}

/// Reads at most [`MAX_BODY`] bytes of an answer.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(body)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The shared state of one [`OAuth2ClientCredentials`] and its clones.
struct Inner {
    issuer_url: String,
    discovery_url: String,
    credentials: CredentialsSource,
    audience: Option<String>,
    scope: Option<String>,
    trust_certs_file: Option<PathBuf>,
    fetch_timeout: Duration,
    http: reqwest::Client,
    /// Held while a token is fetched: callers that come meanwhile wait, then share it.
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The discovery document's `token_endpoint`, once found.
    token_endpoint: Option<String>,
    cache: TokenCache,
}

impl Inner {
    fn load_credentials(&self) -> Result<Credentials, AuthError> {
        match &self.credentials {
            CredentialsSource::Inline { credentials, .. } => Ok(credentials.clone()),
            CredentialsSource::File(path) => {
                let json = std::fs::read(path).map_err(|e| {
                    AuthError::new(format!(
                        "OAuth2: cannot read the credentials file {}: {e} (check the path given \
                         as privateKey or credentials_file, and its permissions)",
                        path.display()
                    ))
                })?;
                parse_credentials_json(&json, &self.credentials.describe())
            }
        }
    }

    /// The token endpoint named by the issuer's discovery document.
    async fn discover(&self) -> Result<String, AuthError> {
        let url = &self.discovery_url;
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable("issuer's discovery document", url, &e))?;
        let status = response.status();
        let body = read_body(response)
            .await
            .map_err(|e| unreachable("issuer's discovery document", url, &e))?;
        if !status.is_success() {
            let (_, text) = answer_text(&body, "");
            let said = if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            };
            return Err(AuthError::new(format!(
                "OAuth2: the issuer's discovery document {url} answered {}{said} (check the \
                 issuer URL {}: {WELL_KNOWN_PATH} under it must name the token_endpoint)",
                status_text(status),
                self.issuer_url
            )));
        }
        let document: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            AuthError::new(format!(
                "OAuth2: the issuer's discovery document {url} is not JSON ({e}): check the \
                 issuer URL {}",
                self.issuer_url
            ))
        })?;
        let endpoint = document
            .get("token_endpoint")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AuthError::new(format!(
                    "OAuth2: the issuer's discovery document {url} names no token_endpoint \
                     (check the issuer URL {})",
                    self.issuer_url
                ))
            })?;
        match reqwest::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(endpoint.to_owned()),
            _ => Err(AuthError::new(format!(
                "OAuth2: the issuer's discovery document {url} names token_endpoint {:?}, not \
                 an http(s) URL",
                quote(endpoint, "")
            ))),
        }
    }

    /// One fetch: the credentials, the token endpoint (discovered once), the token request.
    async fn fetch(&self, token_endpoint: &mut Option<String>) -> Result<TokenAnswer, AuthError> {
        // Before any request: a bad credentials file fails without bothering the server.
        let credentials = self.load_credentials()?;
        let url = match token_endpoint {
            Some(url) => url.clone(),
            None => {
                let url = self.discover().await?;
                debug!(issuer = %self.issuer_url, token_endpoint = %url, "OAuth2 token endpoint");
                *token_endpoint = Some(url.clone());
                url
            }
        };
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &credentials.client_id),
            ("client_secret", &credentials.client_secret),
        ];
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let sent = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                // Perhaps the endpoint moved: ask the discovery document again next time.
                *token_endpoint = None;
                return Err(unreachable("token endpoint", &url, &e));
            }
        };
        let status = response.status();
        let body = read_body(response)
            .await
            .map_err(|e| unreachable("token endpoint", &url, &e))?;
        if !status.is_success() {
            return Err(token_refused(
                &url,
                status,
                &body,
                &credentials,
                &self.credentials.describe(),
            ));
        }
        parse_token_answer(&body, &url, now_unix())
    }

    /// A token for a caller that asks now: the cached one if it may be used, else a new one.
    /// `newer_only`: a token fetched after this call (an AUTH_CHALLENGE).
    async fn token(&self, newer_only: bool) -> Result<String, AuthError> {
        let asked_at = Instant::now();
        let mut state = self.state.lock().await;
        if let Some(token) = state.cache.usable(Instant::now(), asked_at, newer_only) {
            return Ok(token.to_owned());
        }
        let requested_at = Instant::now();
        let State {
            token_endpoint,
            cache,
        } = &mut *state;
        let fetched =
            match tokio::time::timeout(self.fetch_timeout, self.fetch(token_endpoint)).await {
                Ok(result) => result,
                Err(_) => Err(AuthError::new(format!(
                "OAuth2: no token from the token server of {} within {:?} (check that it is up \
                 and reachable from here; the fetch timeout is set by \
                 OAuth2ClientCredentialsBuilder::fetch_timeout)",
                self.issuer_url, self.fetch_timeout
            ))),
            };
        match fetched {
            Ok(answer) => {
                debug!(
                    issuer = %self.issuer_url,
                    lifetime = ?answer.lifetime,
                    "OAuth2 access token fetched"
                );
                let token = answer.token.clone();
                cache.store(answer.token, answer.lifetime, requested_at, Instant::now());
                Ok(token)
            }
            Err(e) => {
                // On CONNECT, a token that has not ended yet still opens the connection (the
                // broker checks it); an AUTH_CHALLENGE wants a new one.
                if !newer_only {
                    if let Some(token) = cache.unexpired(Instant::now()) {
                        warn!(
                            issuer = %self.issuer_url,
                            error = %e,
                            "OAuth2 token refresh failed: using the cached token until it ends"
                        );
                        return Ok(token.to_owned());
                    }
                }
                Err(e)
            }
        }
    }
}

/// OAuth2 client credentials authentication (method `token`), as the official clients'
/// `AuthenticationOAuth2` (`AuthenticationFactoryOAuth2.clientCredentials(issuerUrl,
/// credentialsUrl, audience, scope)`): the client trades its client id and secret for an
/// access token at the issuer's token endpoint and sends the token on CONNECT; the broker
/// checks it with its token provider (`AuthenticationProviderToken`, or an OAuth2-aware one).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use pulsar_wire::{OAuth2ClientCredentials, PulsarClient};
/// let auth = OAuth2ClientCredentials::builder("https://auth.example.com")
///     .credentials_url("file:///etc/pulsar/credentials.json")
///     .audience("urn:pulsar:my-cluster")
///     .build()?;
/// let client = PulsarClient::builder("pulsar+ssl://pulsar.example.com:6651")
///     .authentication(auth)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// **Caching and refresh.** The token is cached and used for every new connection until a
/// tenth of its lifetime (`expires_in`, else the JWT's `exp`) is left, at least 2 s and at most
/// 5 minutes before its end; then the next connection fetches a new one. (The Java client uses
/// its token until 90% of `expires_in`, with no floor or cap.) Each AUTH_CHALLENGE, which the
/// broker sends when a connection's token has expired, is answered with a token fetched after
/// the challenge came. Connections that need a token at the same time share one request. A
/// failed refresh falls back to the cached token while it has not ended (for CONNECT only).
///
/// **Errors** are [`AuthError`]s, reaching the user as
/// [`ConnectionError::Credentials`](crate::ConnectionError::Credentials): what the token
/// server answered (HTTP status, `error`, `error_description`) or why it could not be reached
/// (the URL, the cause), and what to check. They are final: the client does not retry them.
///
/// Clones share the cache. `Debug` never shows the client secret or the token, and neither do
/// the errors and the logs.
#[derive(Clone)]
pub struct OAuth2ClientCredentials {
    inner: Arc<Inner>,
}

impl fmt::Debug for OAuth2ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("OAuth2ClientCredentials")
            .field("issuer_url", &i.issuer_url)
            .field("credentials", &i.credentials)
            .field("audience", &i.audience)
            .field("scope", &i.scope)
            .field("trust_certs_file", &i.trust_certs_file)
            .field("fetch_timeout", &i.fetch_timeout)
            .finish_non_exhaustive()
    }
}

impl OAuth2ClientCredentials {
    /// The path of the discovery document under the issuer URL (OpenID Connect Discovery; the
    /// official clients look there too).
    pub const WELL_KNOWN_PATH: &'static str = "/.well-known/openid-configuration";

    /// How long one fetch of a token (the discovery document and the token request) may take
    /// by default: 8 s, below the client's default connect timeout (10 s), which bounds the
    /// whole handshake, so that a token server that does not answer is reported as such
    /// rather than as a connect timeout.
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(8);

    /// Starts building OAuth2 client credentials for the issuer at `issuer_url` (the
    /// official clients' `issuerUrl`, e.g. `https://auth.streamnative.cloud`): its token
    /// endpoint is found through `{issuer_url}/.well-known/openid-configuration`. Give the
    /// credentials next.
    pub fn builder(issuer_url: impl Into<String>) -> OAuth2ClientCredentialsBuilder {
        OAuth2ClientCredentialsBuilder {
            issuer_url: issuer_url.into(),
            credentials: None,
            audience: None,
            scope: None,
            trust_certs_file: None,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    /// The issuer URL.
    pub fn issuer_url(&self) -> &str {
        &self.inner.issuer_url
    }

    /// The access token now: the cached one while it is good, else a new one from the token
    /// server.
    pub async fn token(&self) -> Result<String, AuthError> {
        self.inner.token(false).await
    }
}

impl Authentication for OAuth2ClientCredentials {
    fn method_name(&self) -> &str {
        "token"
    }

    fn auth_data(&self) -> AuthFuture<'_> {
        Box::pin(async move { self.inner.token(false).await.map(Bytes::from) })
    }

    fn on_challenge<'a>(&'a self, challenge: AuthChallenge<'a>) -> AuthFuture<'a> {
        debug!(
            refresh = challenge.is_refresh(),
            "AUTH_CHALLENGE: fetching a new OAuth2 access token"
        );
        Box::pin(async move { self.inner.token(true).await.map(Bytes::from) })
    }
}

/// Builds an [`OAuth2ClientCredentials`]: the issuer URL, the credentials (a key file, a
/// `data:` URL or the pair itself), the audience and scope, the token server's CA.
#[derive(Clone)]
pub struct OAuth2ClientCredentialsBuilder {
    issuer_url: String,
    credentials: Option<CredentialsSpec>,
    audience: Option<String>,
    scope: Option<String>,
    trust_certs_file: Option<PathBuf>,
    fetch_timeout: Duration,
}

impl fmt::Debug for OAuth2ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = match &self.credentials {
            None => "none".to_owned(),
            Some(CredentialsSpec::File(path)) => format!("file {}", path.display()),
            // A data: URL holds the secret.
            Some(CredentialsSpec::Url(url))
                if strip_prefix_ignore_case(url.trim_start(), "data:").is_some() =>
            {
                "data: URL".to_owned()
            }
            Some(CredentialsSpec::Url(url)) => format!("url {url}"),
            Some(CredentialsSpec::Pair(c)) => format!("client_id {:?}", c.client_id),
        };
        f.debug_struct("OAuth2ClientCredentialsBuilder")
            .field("issuer_url", &self.issuer_url)
            .field("credentials", &credentials)
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .field("trust_certs_file", &self.trust_certs_file)
            .field("fetch_timeout", &self.fetch_timeout)
            .finish()
    }
}

fn non_blank(s: String) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl OAuth2ClientCredentialsBuilder {
    /// The credentials as the official clients' `privateKey` parameter gives them: a
    /// `file:///path/to/credentials.json` URL, a `data:application/json;base64,...` URL, or a
    /// plain path. The JSON holds `client_id` and `client_secret`; other members (`type`,
    /// `issuer_url`, `client_email`, as in StreamNative key files) are ignored. A file is read
    /// on every fetch, so a rotated one is picked up.
    pub fn credentials_url(mut self, url: impl Into<String>) -> Self {
        self.credentials = Some(CredentialsSpec::Url(url.into()));
        self
    }

    /// The credentials in a JSON key file (as [`credentials_url`](Self::credentials_url)
    /// with a path), read on every fetch.
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials = Some(CredentialsSpec::File(path.into()));
        self
    }

    /// The client id and secret themselves.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(CredentialsSpec::Pair(Credentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }));
        self
    }

    /// The audience of the token (`audience` of the token request; StreamNative Cloud
    /// names the cluster with it, `urn:sn:pulsar:ORG:INSTANCE`). Not sent when empty.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = non_blank(audience.into());
        self
    }

    /// The scope of the token (`scope` of the token request). Not sent when empty.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = non_blank(scope.into());
        self
    }

    /// The PEM file of the CA certificates that signed the token server's certificate (the
    /// official clients' `trustCertsFilePath` of OAuth2). Without it the system's trusted roots
    /// are used (the Mozilla roots where the system has none).
    pub fn trust_certs_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust_certs_file = Some(path.into());
        self
    }

    /// How long one fetch (the discovery document and the token request) may take
    /// ([`OAuth2ClientCredentials::DEFAULT_FETCH_TIMEOUT`] by default). Keep it below the client's connect timeout,
    /// which bounds the whole handshake.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Checks the settings (the issuer URL, the credentials' form, a `data:` URL's JSON, the
    /// CA file) and makes the authentication. Nothing is sent until the first connection.
    pub fn build(self) -> Result<OAuth2ClientCredentials, AuthError> {
        let issuer = self.issuer_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&issuer).map_err(|e| {
            AuthError::new(format!(
                "OAuth2: the issuer URL {issuer:?} is not a URL ({e}): give it as \
                 https://host[/path]"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(AuthError::new(format!(
                "OAuth2: the issuer URL {issuer:?} is not an http(s) URL: give it as \
                 https://host[/path]"
            )));
        }
        if parsed.scheme() == "http" && !is_loopback(&parsed) {
            warn!(
                issuer = %issuer,
                "OAuth2 over plain http: the client secret and the tokens cross the network \
                 unencrypted (use an https issuer URL)"
            );
        }
        if self.fetch_timeout.is_zero() {
            return Err(AuthError::new(
                "OAuth2: the fetch timeout must be above zero",
            ));
        }
        let credentials = match self.credentials {
            None => {
                return Err(AuthError::new(
                    "OAuth2: no credentials: give a key file (credentials_url or \
                     credentials_file, the privateKey parameter) or client_credentials",
                ))
            }
            Some(CredentialsSpec::Url(url)) => parse_credentials_url(&url)?,
            Some(CredentialsSpec::File(path)) => CredentialsSource::File(path),
            Some(CredentialsSpec::Pair(c)) => {
                if c.client_id.trim().is_empty() || c.client_secret.is_empty() {
                    return Err(AuthError::new(
                        "OAuth2: the client_id or the client_secret is empty",
                    ));
                }
                CredentialsSource::Inline {
                    credentials: c,
                    from: "the client credentials given to the OAuth2 builder",
                }
            }
        };
        let tls_options = TlsOptions {
            trust_certs_file: self.trust_certs_file.clone(),
            ..TlsOptions::default()
        };
        let tls_config = tls::client_config(&tls_options).map_err(|e| {
            AuthError::new(format!(
                "OAuth2: the token server's trusted certificates (trust_certs_file): {e}"
            ))
        })?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls_config).clone())
            .connect_timeout(self.fetch_timeout)
            .user_agent(concat!("pulsar-wire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::new(format!("OAuth2: cannot make the HTTP client: {e}")))?;
        Ok(OAuth2ClientCredentials {
            inner: Arc::new(Inner {
                discovery_url: format!("{issuer}{WELL_KNOWN_PATH}"),
                issuer_url: issuer,
                credentials,
                audience: self.audience,
                scope: self.scope,
                trust_certs_file: self.trust_certs_file,
                fetch_timeout: self.fetch_timeout,
                http,
                state: tokio::sync::Mutex::new(State::default()),
            }),
        })
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_refresh_margin_is_a_tenth_of_the_lifetime_between_2_s_and_5_minutes() {
        assert_eq!(refresh_margin(SECS(60)), SECS(6));
        assert_eq!(refresh_margin(SECS(600)), SECS(60));
        assert_eq!(refresh_margin(SECS(3600)), SECS(300), "capped");
        assert_eq!(refresh_margin(SECS(86_400)), SECS(300), "capped");
        assert_eq!(refresh_margin(SECS(5)), SECS(2), "floored");
        assert_eq!(refresh_margin(Duration::ZERO), SECS(2), "floored");
    }

    #[test]
    fn a_cached_token_is_used_until_its_refresh_time_and_kept_as_a_fallback_until_its_end() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        assert_eq!(cache.usable(t0, t0, false), None, "nothing cached yet");
        cache.store("a".into(), Some(SECS(100)), t0, t0 + SECS(1));
        // Asked later than it came: reused by time until 100 - 10 s after the request.
        let at = |s: u64| t0 + SECS(s);
        assert_eq!(cache.usable(at(2), at(2), false), Some("a"));
        assert_eq!(cache.usable(at(89), at(89), false), Some("a"));
        assert_eq!(cache.usable(at(90), at(90), false), None, "refresh time");
        assert_eq!(
            cache.unexpired(at(95)),
            Some("a"),
            "still good as a fallback"
        );
        assert_eq!(cache.unexpired(at(100)), None, "ended");
        // A new one replaces it.
        cache.store("b".into(), Some(SECS(100)), at(95), at(96));
        assert_eq!(cache.usable(at(97), at(97), false), Some("b"));
    }

    #[test]
    fn a_challenge_wants_a_token_received_after_it_and_shares_one_fetched_meanwhile() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        cache.store("old".into(), Some(SECS(3600)), t0, t0 + SECS(1));
        let challenge_at = t0 + SECS(10);
        assert_eq!(
            cache.usable(challenge_at, challenge_at, true),
            None,
            "a token from before the challenge is not good enough, however fresh"
        );
        // Another challenge's fetch, under way when this one came, answered after it.
        cache.store("new".into(), Some(SECS(3600)), t0 + SECS(9), t0 + SECS(11));
        assert_eq!(
            cache.usable(t0 + SECS(11), challenge_at, true),
            Some("new"),
            "shared"
        );
    }

    #[test]
    fn a_token_of_unknown_or_tiny_lifetime_is_only_shared_by_the_callers_that_waited_for_it() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        cache.store("x".into(), None, t0 + SECS(1), t0 + SECS(2));
        assert_eq!(cache.usable(t0 + SECS(2), t0, false), Some("x"), "waited");
        assert_eq!(cache.usable(t0 + SECS(3), t0 + SECS(3), false), None);
        assert_eq!(
            cache.unexpired(t0 + SECS(3)),
            None,
            "no fallback: its end is unknown"
        );
        cache.store("y".into(), Some(SECS(1)), t0 + SECS(5), t0 + SECS(5));
        assert_eq!(cache.usable(t0 + SECS(5), t0 + SECS(4), false), Some("y"));
        assert_eq!(cache.usable(t0 + SECS(5), t0 + SECS(5), false), Some("y"));
        assert_eq!(
            cache.usable(t0 + SECS(6), t0 + SECS(4), false),
            None,
            "ended"
        );
    }

    #[test]
    fn absurd_lifetimes_do_not_overflow() {
        let t0 = Instant::now();
        let mut cache = TokenCache::default();
        cache.store("x".into(), Some(Duration::MAX), t0, t0);
        assert_eq!(
            cache.usable(t0 + SECS(86_400), t0 + SECS(1), false),
            Some("x")
        );
        assert_eq!(
            expires_in(Some(&serde_json::json!(1e300))),
            Some(MAX_LIFETIME)
        );
    }

    #[test]
    fn credentials_urls_take_the_java_private_key_forms() {
        let file = |s: &str| match parse_credentials_url(s) {
            Ok(CredentialsSource::File(p)) => p,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            file("file:///etc/pulsar/key.json"),
            PathBuf::from("/etc/pulsar/key.json")
        );
        assert_eq!(file("file:/etc/key.json"), PathBuf::from("/etc/key.json"));
        assert_eq!(file("FILE://localhost/k.json"), PathBuf::from("/k.json"));
        assert_eq!(
            file("file:///my%20dir/k.json"),
            PathBuf::from("/my dir/k.json")
        );
        assert_eq!(
            file(" /plain/path.json "),
            PathBuf::from("/plain/path.json")
        );
        assert_eq!(file("relative.json"), PathBuf::from("relative.json"));

        let json = r#"{"type":"client_credentials","client_id":"id-1","client_secret":"s3cr3t","issuer_url":"https://i"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        let want = Credentials {
            client_id: "id-1".into(),
            client_secret: "s3cr3t".into(),
        };
        for url in [
            format!("data:application/json;base64,{b64}"),
            format!("DATA:Application/JSON;charset=utf-8;base64,{b64}"),
            format!(
                "data:application/json,{}",
                json.replace('{', "%7B").replace('}', "%7D")
            ),
        ] {
            match parse_credentials_url(&url) {
                Ok(CredentialsSource::Inline { credentials, .. }) => assert_eq!(credentials, want),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_credentials_urls_say_what_is_wrong() {
        let err = |s: &str| parse_credentials_url(s).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("file://host/k.json").contains("local file"));
        assert!(err("file://").contains("names no file"));
        assert!(err("https://example.com/k.json").contains("not supported"));
        let e = err("data:text/plain;base64,e30=");
        assert!(
            e.contains("text/plain") && e.contains("application/json"),
            "{e}"
        );
        assert!(err("data:application/json;base64,@@@").contains("not valid base64"));
        assert!(err("data:application/json").contains("no ','"));
    }

    #[test]
    fn credentials_json_errors_never_quote_the_secret() {
        let from = "the credentials file k.json";
        let cases = [
            (r#"{"client_secret":"s3cr3t-value""#, "not valid JSON"),
            (
                r#"{"client_id":"a","client_secret":"s3cr3t-value",}"#,
                "not valid JSON",
            ),
            (r#"["s3cr3t-value"]"#, "not a JSON object"),
            (r#"{"client_secret":"s3cr3t-value"}"#, "has no client_id"),
            (
                r#"{"client_id":7,"client_secret":"s3cr3t-value"}"#,
                "client_id of",
            ),
            (
                r#"{"client_id":"a","client_secret":"  "}"#,
                "client_secret of",
            ),
            (
                r#"{"client_id":"a","secret":"s3cr3t-value"}"#,
                "has no client_secret",
            ),
        ];
        for (json, want) in cases {
            let e = parse_credentials_json(json.as_bytes(), from)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{json}: {e}");
            assert!(e.contains(from), "{json}: {e}");
            assert!(!e.contains("s3cr3t"), "{json}: {e}");
        }
    }

    #[test]
    fn token_answers_give_the_token_and_its_lifetime() {
        let parse = |body: &str| parse_token_answer(body.as_bytes(), "http://t/token", 1_000);
        assert_eq!(
            parse(r#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#),
            Ok(TokenAnswer {
                token: "tok".into(),
                lifetime: Some(SECS(3600))
            })
        );
        assert_eq!(
            parse(r#"{"access_token":"tok","expires_in":"60"}"#).map(|a| a.lifetime),
            Ok(Some(SECS(60)))
        );
        assert_eq!(
            parse(r#"{"access_token":"tok"}"#).map(|a| a.lifetime),
            Ok(None)
        );
        assert_eq!(
            parse(r#"{"access_token":"tok","expires_in":-5}"#).map(|a| a.lifetime),
            Ok(None)
        );
        // No expires_in: the JWT's exp, counted from now (1000).
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"sub":"r","exp":1090}"#)
        );
        assert_eq!(
            parse(&format!(r#"{{"access_token":"{jwt}"}}"#)).map(|a| a.lifetime),
            Ok(Some(SECS(90)))
        );
        let e = parse("<html>").unwrap_err().to_string();
        assert!(
            e.contains("not JSON") && e.contains("http://t/token"),
            "{e}"
        );
        let e = parse(r#"{"token":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("without an access_token"), "{e}");
    }

    fn creds() -> Credentials {
        Credentials {
            client_id: "my-client".into(),
            client_secret: "s3cr3t-value".into(),
        }
    }

    #[test]
    fn a_refusal_names_the_status_the_servers_words_and_what_to_check() {
        let url = "https://auth.example/oauth/token";
        let e = token_refused(
            url,
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"bad secret s3cr3t-value"}"#,
            &creds(),
            "the credentials file k.json",
        )
        .to_string();
        assert!(e.contains("HTTP 401 Unauthorized"), "{e}");
        assert!(e.contains("invalid_client: bad secret <redacted>"), "{e}");
        assert!(e.contains(url) && e.contains("\"my-client\""), "{e}");
        assert!(
            e.contains("check the client_id and client_secret in the credentials file k.json"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "the echoed secret is redacted: {e}");

        let e = token_refused(
            url,
            reqwest::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_scope"}"#,
            &creds(),
            "x",
        )
        .to_string();
        assert!(e.contains("HTTP 400 Bad Request: invalid_scope"), "{e}");
        assert!(e.ends_with("(check the scope)"), "{e}");

        let html = format!("<html>{}</html>", "x".repeat(1000));
        let e = token_refused(
            url,
            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            html.as_bytes(),
            &creds(),
            "x",
        )
        .to_string();
        assert!(
            e.contains("HTTP 500 Internal Server Error: <html>xxx"),
            "{e}"
        );
        assert!(e.contains("...") && e.len() < 600, "quoted, cut short: {e}");
        assert!(e.contains("try again later"), "{e}");

        let e = token_refused(url, reqwest::StatusCode::NOT_FOUND, b"", &creds(), "x").to_string();
        assert!(
            e.contains("with HTTP 404 Not Found (check the issuer URL: its discovery"),
            "{e}"
        );
        assert!(e.contains("(check the issuer URL"), "{e}");
    }

    #[test]
    fn debug_shows_neither_secret_nor_token() {
        let auth = OAuth2ClientCredentials::builder("https://auth.example/")
            .client_credentials("my-client", "s3cr3t-value")
            .audience("aud")
            .build()
            .unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("my-client") && shown.contains("aud"),
            "{shown}"
        );
        assert_eq!(auth.issuer_url(), "https://auth.example", "no trailing '/'");
        assert_eq!(auth.method_name(), "token");

        let json = r#"{"client_id":"c","client_secret":"s3cr3t-value"}"#;
        let url = format!(
            "data:application/json;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(json)
        );
        let builder = OAuth2ClientCredentials::builder("https://a").credentials_url(&url);
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains(&url[30..]) && shown.contains("data: URL"),
            "{shown}"
        );
        let shown = format!("{:?}", builder.build().unwrap());
        assert!(
            !shown.contains("s3cr3t") && shown.contains("data: URL"),
            "{shown}"
        );
    }

    #[test]
    fn the_builder_refuses_what_cannot_work() {
        let err = |b: OAuth2ClientCredentialsBuilder| b.build().unwrap_err().to_string();
        let b =
            |issuer: &str| OAuth2ClientCredentials::builder(issuer).client_credentials("c", "s");
        assert!(err(b("not a url")).contains("is not a URL"));
        assert!(err(b("ftp://auth.example")).contains("not an http(s) URL"));
        assert!(err(OAuth2ClientCredentials::builder("https://a")).contains("no credentials"));
        assert!(err(b("https://a").fetch_timeout(Duration::ZERO)).contains("above zero"));
        let e = err(b("https://a").trust_certs_file("no-such-dir/ca.pem"));
        assert!(
            e.contains("trust_certs_file") && e.contains("ca.pem"),
            "{e}"
        );
        assert!(
            err(OAuth2ClientCredentials::builder("https://a").client_credentials("", "s"))
                .contains("empty")
        );
    }

    #[test]
    fn loopback_hosts_are_recognized() {
        let l = |u: &str| is_loopback(&reqwest::Url::parse(u).unwrap());
        assert!(l("http://127.0.0.1:8080"));
        assert!(l("http://localhost/x"));
        assert!(l("http://[::1]:80"));
        assert!(!l("http://auth.example"));
        assert!(!l("http://10.0.0.1"));
    }
}
