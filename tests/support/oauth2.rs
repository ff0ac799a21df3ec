//! A small OAuth2 token server for the tests: the discovery document
//! (`/.well-known/openid-configuration`, naming `/oauth/token`) and a client-credentials token
//! endpoint that checks the client id and secret and issues HS256 JWTs (`{"alg":"HS256"}`,
//! `sub` = the configured role, `exp` = now + the configured lifetime) signed with a key of raw
//! bytes: the Apache broker's `DIR/secret.key` ([`TokenServer::for_broker`]), so the broker's
//! `AuthenticationProviderToken` accepts them.
//!
//! It answers a wrong secret with 401 `{"error":"invalid_client",...}`, can be told to answer
//! with an error status ([`TokenServer::fail_with`]), to hold its token answers until released
//! ([`TokenServer::hold`]), to issue opaque tokens without `expires_in`
//! ([`TokenServer::set_opaque`]), and counts requests. HTTP/1.1 by hand, one request per
//! connection (`Connection: close`), plain or TLS ([`TokenServer::start_tls`]).
//!
//! It runs on a thread of its own (with its own runtime), so one server may serve several
//! tests, and stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::lock;

/// The client id the server knows.
pub const CLIENT_ID: &str = "pulsar-wire-test-client";

/// The path of the token endpoint the discovery document names.
pub const TOKEN_PATH: &str = "/oauth/token";

/// A request's form, as the token endpoint received it.
pub type Form = HashMap<String, String>;

struct State {
    key: Vec<u8>,
    secret: String,
    role: Mutex<String>,
    lifetime_secs: AtomicU64,
    fail_with: Mutex<Option<u16>>,
    opaque: Mutex<bool>,
    hold: tokio::sync::watch::Sender<bool>,
    discovery_requests: AtomicUsize,
    token_requests: AtomicUsize,
    tokens_issued: AtomicUsize,
    forms: Mutex<Vec<Form>>,
    issued: Mutex<Vec<String>>,
}

/// The token server. Stops when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 JWT for `sub`, expiring at `exp`, signed with `key` (raw bytes), as Pulsar's
/// token provider validates it; `jti` tells apart tokens made in the same second.
pub fn hs256_jwt(key: &[u8], sub: &str, exp: u64, jti: usize) -> String {
    let header = b64url(br#"{"alg":"HS256"}"#);
    let claims = serde_json::json!({ "sub": sub, "exp": exp, "jti": jti.to_string() });
    let payload = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(tag.as_ref()))
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> Form {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
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
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (headers, then a `Content-Length` body).
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Request { method, path, body })
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, body: &serde_json::Value) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<State>, base: String) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let (status, body) = answer(&state, &base, request).await;
    respond(&mut stream, status, &body).await;
}

async fn answer(state: &State, base: &str, request: Request) -> (u16, serde_json::Value) {
    use serde_json::json;
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => {
            state.discovery_requests.fetch_add(1, Ordering::SeqCst);
            (
                200,
                json!({
                    "issuer": base,
                    "token_endpoint": format!("{base}{TOKEN_PATH}"),
                    "grant_types_supported": ["client_credentials"],
                }),
            )
        }
        ("POST", TOKEN_PATH) => {
            state.token_requests.fetch_add(1, Ordering::SeqCst);
            let form = parse_form(&request.body);
            lock(&state.forms).push(form.clone());
            let mut open = state.hold.subscribe();
            let _ = open.wait_for(|open| *open).await;
            if let Some(status) = *lock(&state.fail_with) {
                return (
                    status,
                    json!({
                        "error": "server_error",
                        "error_description": "the test token server was told to fail",
                    }),
                );
            }
            if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
                return (400, json!({ "error": "unsupported_grant_type" }));
            }
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
                || form.get("client_secret") != Some(&state.secret)
            {
                return (
                    401,
                    json!({
                        "error": "invalid_client",
                        "error_description": "client authentication failed",
                    }),
                );
            }
            let lifetime = state.lifetime_secs.load(Ordering::SeqCst);
            let n = state.tokens_issued.fetch_add(1, Ordering::SeqCst);
            if *lock(&state.opaque) {
                let token = format!("opaque-token-{n}");
                lock(&state.issued).push(token.clone());
                return (
                    200,
                    json!({ "access_token": token, "token_type": "Bearer" }),
                );
            }
            let role = lock(&state.role).clone();
            let token = hs256_jwt(&state.key, &role, now_secs() + lifetime, n);
            lock(&state.issued).push(token.clone());
            (
                200,
                json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": lifetime,
                }),
            )
        }
        (_, "/.well-known/openid-configuration") | (_, TOKEN_PATH) => {
            (405, json!({ "error": "method_not_allowed" }))
        }
        _ => (404, json!({ "error": "not_found" })),
    }
}

impl TokenServer {
    /// A server issuing tokens for `role` signed with `key`, living `lifetime`; the client
    /// secret is a new random-looking one.
    pub fn start(key: Vec<u8>, role: &str, lifetime: Duration) -> TokenServer {
        Self::start_with(key, role, lifetime, None)
    }

    /// The same over TLS, with the server certificate of `pki` (valid for `127.0.0.1`, say).
    pub fn start_tls(
        key: Vec<u8>,
        role: &str,
        lifetime: Duration,
        pki: &super::tls::Pki,
    ) -> TokenServer {
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config(false)));
        Self::start_with(key, role, lifetime, Some(acceptor))
    }

    /// A server signing with the secret key of the Apache broker `b` (started with token
    /// auth), so the broker accepts its tokens.
    pub fn for_broker(b: &super::Broker, role: &str, lifetime: Duration) -> TokenServer {
        let path = b.apache().dir().join("secret.key");
        let key = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the broker's token key {}: {e} (start it with --auth token)",
                path.display()
            )
        });
        Self::start(key, role, lifetime)
    }

    fn start_with(
        key: Vec<u8>,
        role: &str,
        lifetime: Duration,
        tls: Option<TlsAcceptor>,
    ) -> TokenServer {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        std_listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = std_listener
            .local_addr()
            .expect("the token server's address");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let state = Arc::new(State {
            key,
            secret: format!("secret-{}", super::unique_name("oauth2")),
            role: Mutex::new(role.to_string()),
            lifetime_secs: AtomicU64::new(lifetime.as_secs()),
            fail_with: Mutex::new(None),
            opaque: Mutex::new(false),
            hold: tokio::sync::watch::channel(true).0,
            discovery_requests: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            tokens_issued: AtomicUsize::new(0),
            forms: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name("oauth2-token-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the token server's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
                    let mut connections = tokio::task::JoinSet::new();
                    loop {
                        let tcp = tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => match accepted {
                                Ok((tcp, _)) => tcp,
                                Err(_) => continue,
                            },
                            Some(_) = connections.join_next(), if !connections.is_empty() => {
                                continue
                            }
                        };
                        let state = served.clone();
                        let base = base.clone();
                        let tls = tls.clone();
                        connections.spawn(async move {
                            match tls {
                                None => serve(tcp, state, base).await,
                                Some(acceptor) => {
                                    if let Ok(stream) = acceptor.accept(tcp).await {
                                        serve(stream, state, base).await;
                                    }
                                }
                            }
                        });
                    }
                });
            })
            .expect("start the token server's thread");
        TokenServer {
            addr,
            scheme,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub fn issuer_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.issuer_url())
    }

    /// The client secret the server accepts.
    pub fn client_secret(&self) -> &str {
        &self.state.secret
    }

    /// The credentials JSON of a key file, with `secret` as the client secret.
    pub fn credentials_json(&self, secret: &str) -> String {
        serde_json::json!({
            "type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "issuer_url": self.issuer_url(),
        })
        .to_string()
    }

    /// Writes a key file with the right secret to `dir/name`.
    pub fn write_credentials(&self, dir: &Path, name: &str) -> PathBuf {
        self.write_credentials_with(dir, name, &self.state.secret.clone())
    }

    /// Writes a key file with `secret` to `dir/name`.
    pub fn write_credentials_with(&self, dir: &Path, name: &str, secret: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.credentials_json(secret))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// From now on, answer token requests with `status` (`None`: serve again).
    pub fn fail_with(&self, status: Option<u16>) {
        *lock(&self.state.fail_with) = status;
    }

    /// From now on, issue opaque tokens without `expires_in` (or JWTs again).
    pub fn set_opaque(&self, opaque: bool) {
        *lock(&self.state.opaque) = opaque;
    }

    /// From now on, tokens live this long.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.state
            .lifetime_secs
            .store(lifetime.as_secs(), Ordering::SeqCst);
    }

    /// Holds token answers (`true`) until released (`false`): requests are counted on
    /// arrival, answered on release.
    pub fn hold(&self, hold: bool) {
        self.state.hold.send_replace(!hold);
    }

    /// Discovery documents served.
    pub fn discovery_requests(&self) -> usize {
        self.state.discovery_requests.load(Ordering::SeqCst)
    }

    /// Token requests received (answered or not).
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Tokens issued.
    pub fn tokens_issued(&self) -> usize {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// The tokens issued, oldest first.
    pub fn issued(&self) -> Vec<String> {
        lock(&self.state.issued).clone()
    }

    /// The forms of the token requests, oldest first.
    pub fn forms(&self) -> Vec<Form> {
        lock(&self.state.forms).clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Release held requests so that their tasks end with the runtime.
        self.state.hold.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A temporary directory for key files, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory.
    pub fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("pulsar-wire-test-{}", super::unique_name("oauth2")));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
