//! Authentication: where credentials come from, as the official clients' `Authentication` and
//! `AuthenticationDataProvider`.
//!
//! Credentials are asked for again on every connection and every AUTH_CHALLENGE, so a rotated
//! token file or environment variable is picked up without a restart. They may come
//! asynchronously ([`TokenAuth::from_async_fn`], or any [`Authentication`] whose futures wait):
//! the handshake awaits them within the connect timeout, and a challenge is answered by the
//! connection's task without holding up the other traffic of the connection.
//!
//! Built in: [`TokenAuth`] (method `token`), [`TlsAuth`] (method `tls`), [`BasicAuth`]
//! (method `basic`) and, with the `http` feature (on by default), `OAuth2ClientCredentials`
//! (method `token`, the token fetched from an OAuth2 token server). Other methods implement
//! [`Authentication`]; its
//! [`on_challenge`](Authentication::on_challenge) receives the broker's challenge data for
//! multi-step methods (SASL-style), and by default answers with fresh credentials.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

#[cfg(feature = "http")]
mod oauth2;
#[cfg(feature = "http")]
pub use oauth2::{OAuth2ClientCredentials, OAuth2ClientCredentialsBuilder};

/// Why credentials could not be produced. The message says what to check (a file, a variable,
/// a supplier's own error); it never contains the credentials themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    message: String,
}

impl AuthError {
    /// An error with this message (say what to check; never include a secret).
    pub fn new(message: impl Into<String>) -> Self {
        AuthError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for AuthError {
    fn from(message: String) -> Self {
        AuthError::new(message)
    }
}

impl From<&str> for AuthError {
    fn from(message: &str) -> Self {
        AuthError::new(message)
    }
}

/// The future of credentials: the auth data of CONNECT or of an AUTH_RESPONSE.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, AuthError>> + Send + 'a>>;

/// The data the broker sent with an AUTH_CHALLENGE (`CommandAuthChallenge.challenge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthChallenge<'a> {
    /// The method the broker names (`challenge.auth_method_name`; empty if it sent none).
    pub method: &'a str,
    /// The challenge bytes (`challenge.auth_data`; empty if it sent none).
    pub data: &'a [u8],
}

impl AuthChallenge<'_> {
    /// The data the broker sends when it only wants fresh credentials (its credentials
    /// expired): `PulsarAuthRefresh`, the Java `AuthData.REFRESH_AUTH_DATA`.
    pub const REFRESH: &'static [u8] = b"PulsarAuthRefresh";

    /// Whether this is a refresh request (the data is [`AuthChallenge::REFRESH`]) rather than
    /// a step of a multi-step method.
    pub fn is_refresh(&self) -> bool {
        self.data == Self::REFRESH
    }
}

/// A source of credentials for the CONNECT handshake and for AUTH_CHALLENGE answers, as the
/// official clients' `Authentication` with its `AuthenticationDataProvider`.
///
/// ```
/// use bytes::Bytes;
/// use pulsar_wire::{AuthChallenge, AuthError, AuthFuture, Authentication};
///
/// #[derive(Debug)]
/// struct Echo;
///
/// impl Authentication for Echo {
///     fn method_name(&self) -> &str {
///         "echo"
///     }
///     fn auth_data(&self) -> AuthFuture<'_> {
///         Box::pin(async { Ok(Bytes::from_static(b"hello")) })
///     }
///     fn on_challenge<'a>(&'a self, challenge: AuthChallenge<'a>) -> AuthFuture<'a> {
///         let answer = Bytes::copy_from_slice(challenge.data);
///         Box::pin(async move { Ok::<_, AuthError>(answer) })
///     }
/// }
/// ```
pub trait Authentication: Send + Sync + fmt::Debug {
    /// The method name sent to the broker (`"token"`, `"tls"`, `"basic"`, ...).
    fn method_name(&self) -> &str;

    /// Fresh credentials for CONNECT. Called on every connection; the handshake waits for them
    /// within the connect timeout.
    fn auth_data(&self) -> AuthFuture<'_>;

    /// The answer to an AUTH_CHALLENGE, sent as AUTH_RESPONSE (the Java
    /// `AuthenticationDataProvider.authenticate(AuthData)`). The default answers with fresh
    /// [`auth_data`](Authentication::auth_data), which is what a refresh
    /// ([`AuthChallenge::is_refresh`]) asks for. An error closes the connection with
    /// [`ConnectionError::Credentials`](crate::ConnectionError::Credentials).
    fn on_challenge<'a>(&'a self, challenge: AuthChallenge<'a>) -> AuthFuture<'a> {
        let _ = challenge;
        self.auth_data()
    }
}

/// A function that returns a fresh token.
pub type TokenSupplier = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The future of a token from an [`AsyncTokenSupplier`].
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// An asynchronous function that returns a fresh token.
pub type AsyncTokenSupplier = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Where a token comes from.
#[derive(Clone)]
enum TokenSource {
    Static(String),
    Env(String),
    File(PathBuf),
    Supplier(TokenSupplier),
    AsyncSupplier(AsyncTokenSupplier),
}

/// Token authentication (method `token`), as `AuthenticationToken` in the official clients.
///
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct TokenAuth {
    source: TokenSource,
}

impl TokenAuth {
    /// A fixed token.
    pub fn new(token: impl Into<String>) -> Self {
        TokenAuth {
            source: TokenSource::Static(token.into()),
        }
    }

    /// The token in an environment variable, read on every use.
    pub fn from_env(var: impl Into<String>) -> Self {
        TokenAuth {
            source: TokenSource::Env(var.into()),
        }
    }

    /// The token in a file (surrounding white space ignored), read on every use.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        TokenAuth {
            source: TokenSource::File(path.into()),
        }
    }

    /// A token from a function, called on every use (for example to refresh it). It runs on
    /// the connection's task: a supplier that waits (on a token server, say) should be
    /// [`from_async_fn`](TokenAuth::from_async_fn).
    pub fn from_fn(supplier: impl Fn() -> Result<String, String> + Send + Sync + 'static) -> Self {
        TokenAuth {
            source: TokenSource::Supplier(Arc::new(supplier)),
        }
    }

    /// A token from an asynchronous function, called on every use; its future is awaited
    /// (within the connect timeout for CONNECT) without holding up the connection's other
    /// traffic.
    ///
    /// ```
    /// # use pulsar_wire::TokenAuth;
    /// let auth = TokenAuth::from_async_fn(|| async {
    ///     // ask a token service...
    ///     Ok("a-token".to_string())
    /// });
    /// ```
    pub fn from_async_fn<F, Fut>(supplier: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        TokenAuth {
            source: TokenSource::AsyncSupplier(Arc::new(move || Box::pin(supplier()))),
        }
    }

    /// The token now (read from its source again).
    pub async fn token(&self) -> Result<String, AuthError> {
        let token = match &self.source {
            TokenSource::Static(t) => t.clone(),
            TokenSource::Env(var) => std::env::var(var).map_err(|e| {
                AuthError::new(format!(
                    "token environment variable {var}: {e} (check that it is set)"
                ))
            })?,
            TokenSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                AuthError::new(format!(
                    "token file {}: {e} (check the path and its permissions)",
                    path.display()
                ))
            })?,
            TokenSource::Supplier(f) => {
                f().map_err(|e| AuthError::new(format!("the token supplier failed: {e}")))?
            }
            TokenSource::AsyncSupplier(f) => f()
                .await
                .map_err(|e| AuthError::new(format!("the token supplier failed: {e}")))?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::new(format!(
                "the token from {} is empty",
                self.source_name()
            )));
        }
        Ok(token.to_owned())
    }

    fn source_name(&self) -> String {
        match &self.source {
            TokenSource::Static(_) => "the client configuration".to_owned(),
            TokenSource::Env(var) => format!("environment variable {var}"),
            TokenSource::File(path) => format!("file {}", path.display()),
            TokenSource::Supplier(_) => "the token function".to_owned(),
            TokenSource::AsyncSupplier(_) => "the async token function".to_owned(),
        }
    }
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            TokenSource::Static(_) => "static".to_owned(),
            TokenSource::Env(var) => format!("env {var}"),
            TokenSource::File(path) => format!("file {}", path.display()),
            TokenSource::Supplier(_) => "function".to_owned(),
            TokenSource::AsyncSupplier(_) => "async function".to_owned(),
        };
        f.debug_struct("TokenAuth")
            .field("source", &source)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Authentication for TokenAuth {
    fn method_name(&self) -> &str {
        "token"
    }

    fn auth_data(&self) -> AuthFuture<'_> {
        Box::pin(async move { self.token().await.map(Bytes::from) })
    }
}

/// TLS client-certificate authentication (method `tls`, the broker's
/// `AuthenticationProviderTls`), as `AuthenticationTls` in the official clients: the credentials
/// are the client certificate of the TLS connection, so CONNECT carries the method name and no
/// data. The certificate itself is set with
/// [`ClientBuilder::tls_certificate_and_key`](crate::ClientBuilder::tls_certificate_and_key),
/// or both at once with [`ClientBuilder::tls_authentication`](crate::ClientBuilder::tls_authentication).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsAuth;

impl TlsAuth {
    /// TLS authentication (the certificate comes from the client's TLS settings).
    pub fn new() -> Self {
        TlsAuth
    }
}

impl Authentication for TlsAuth {
    fn method_name(&self) -> &str {
        "tls"
    }

    fn auth_data(&self) -> AuthFuture<'_> {
        Box::pin(std::future::ready(Ok(Bytes::new())))
    }
}

/// Basic authentication (method `basic`, the broker's `AuthenticationProviderBasic`), as
/// `AuthenticationBasic` in the official clients: the auth data is `user:password`.
///
/// The broker splits the data at `:`, so neither the user id nor the password may contain one
/// (nor be empty): such credentials fail with a
/// [`ConnectionError::Credentials`](crate::ConnectionError::Credentials) before anything is sent.
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    user: String,
    password: String,
}

impl BasicAuth {
    /// The user id and its password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        BasicAuth {
            user: user.into(),
            password: password.into(),
        }
    }

    /// From the official CLI's `--auth-params` for `AuthenticationBasic`: the JSON form
    /// `{"userId":"u","password":"p"}` (what the Java `AuthenticationBasic.configure` reads), or
    /// the `key:value,key:value` form `userId:u,password:p`. Other keys are ignored.
    pub fn from_params(params: &str) -> Result<Self, AuthError> {
        let params = params.trim();
        let pairs = if params.starts_with('{') {
            parse_flat_json_object(params).map_err(|e| {
                AuthError::new(format!(
                    "basic auth params: {e} (expected {{\"userId\":\"...\",\"password\":\"...\"}})"
                ))
            })?
        } else {
            params
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.split_once(':')
                        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            AuthError::new(
                                "basic auth params: expected userId:USER,password:PASSWORD \
                                 or {\"userId\":\"USER\",\"password\":\"PASSWORD\"}",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let get = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| AuthError::new(format!("basic auth params: no {key}")))
        };
        Ok(BasicAuth::new(get("userId")?, get("password")?))
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn data(&self) -> Result<Bytes, AuthError> {
        for (what, value) in [("user id", &self.user), ("password", &self.password)] {
            if value.is_empty() {
                return Err(AuthError::new(format!("the basic auth {what} is empty")));
            }
            if value.contains(':') {
                return Err(AuthError::new(format!(
                    "the basic auth {what} contains ':', which the broker's \
                     AuthenticationProviderBasic cannot accept"
                )));
            }
        }
        Ok(Bytes::from(format!("{}:{}", self.user, self.password)))
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Authentication for BasicAuth {
    fn method_name(&self) -> &str {
        "basic"
    }

    fn auth_data(&self) -> AuthFuture<'_> {
        Box::pin(std::future::ready(self.data()))
    }
}

/// The members of a JSON object whose values are strings (numbers and booleans are kept as
/// their text; nested values are refused).
fn parse_flat_json_object(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = JsonCursor {
        chars: s.chars().collect(),
        at: 0,
    };
    let mut out = Vec::new();
    p.eat('{')?;
    if p.peek_skip_ws() == Some('}') {
        p.at += 1;
    } else {
        loop {
            let key = p.string()?;
            p.eat(':')?;
            let value = match p.peek_skip_ws() {
                Some('"') => p.string()?,
                Some(c) if c == '-' || c.is_ascii_alphanumeric() => p.bare(),
                Some(c) => return Err(format!("unexpected '{c}' in the value of {key}")),
                None => return Err("the JSON ends early".into()),
            };
            out.push((key, value));
            match p.next_skip_ws() {
                Some(',') => continue,
                Some('}') => break,
                Some(c) => return Err(format!("unexpected '{c}' (expected ',' or '}}')")),
                None => return Err("the JSON ends early".into()),
            }
        }
    }
    if p.peek_skip_ws().is_some() {
        return Err("text after the JSON object".into());
    }
    Ok(out)
}

struct JsonCursor {
    chars: Vec<char>,
    at: usize,
}

impl JsonCursor {
    fn peek_skip_ws(&mut self) -> Option<char> {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
        self.chars.get(self.at).copied()
    }

    fn next_skip_ws(&mut self) -> Option<char> {
        let c = self.peek_skip_ws();
        if c.is_some() {
            self.at += 1;
        }
        c
    }

    fn eat(&mut self, want: char) -> Result<(), String> {
        match self.next_skip_ws() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("unexpected '{c}' (expected '{want}')")),
            None => Err(format!("the JSON ends early (expected '{want}')")),
        }
    }

    fn bare(&mut self) -> String {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits: String = self
            .chars
            .get(self.at..self.at + 4)
            .ok_or("a short \\u escape")?
            .iter()
            .collect();
        self.at += 4;
        u32::from_str_radix(&digits, 16).map_err(|_| format!("a bad \\u escape: {digits}"))
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat('"')?;
        let mut out = String::new();
        loop {
            let c = *self.chars.get(self.at).ok_or("an unterminated string")?;
            self.at += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = *self.chars.get(self.at).ok_or("an unterminated string")?;
                    self.at += 1;
                    match e {
                        '"' | '\\' | '/' => out.push(e),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code)
                                && self.chars.get(self.at) == Some(&'\\')
                                && self.chars.get(self.at + 1) == Some(&'u')
                            {
                                self.at += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err("a bad surrogate pair".into());
                                }
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            }
                            out.push(char::from_u32(code).ok_or("a bad \\u escape")?);
                        }
                        other => return Err(format!("a bad escape \\{other}")),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn tls_auth_names_the_tls_method_and_sends_no_data() {
        let auth = TlsAuth::new();
        assert_eq!(auth.method_name(), "tls");
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::new());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let auth = TokenAuth::new("secret-token-value");
        let shown = format!("{auth:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn file_tokens_are_read_on_every_use_and_trimmed() {
        let path = std::env::temp_dir().join(format!("pulsar-wire-token-{}", std::process::id()));
        std::fs::write(&path, "first\n").unwrap();
        let auth = TokenAuth::from_file(&path);
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("first"));
        std::fs::write(&path, "second").unwrap();
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("second"));
        std::fs::remove_file(&path).unwrap();
        let err = now(auth.auth_data()).unwrap_err();
        assert!(err.message().contains("check the path"), "{err}");
    }

    #[test]
    fn a_missing_env_var_is_an_error_naming_it() {
        let auth = TokenAuth::from_env("PULSAR_WIRE_SURELY_UNSET_VAR");
        let err = now(auth.auth_data()).unwrap_err();
        assert!(
            err.message().contains("PULSAR_WIRE_SURELY_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn suppliers_are_called_each_time() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let auth = TokenAuth::from_fn(move || {
            let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(format!("t{i}"))
        });
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("t0"));
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("t1"));
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn async_suppliers_are_awaited_each_time_and_their_errors_say_where() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let auth = TokenAuth::from_async_fn(move || {
            let n = n2.clone();
            async move {
                tokio::task::yield_now().await;
                match n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    2 => Err("token service unreachable".to_string()),
                    i => Ok(format!(" async-{i}\n")),
                }
            }
        });
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("async-0"));
        let challenge = AuthChallenge {
            method: "token",
            data: AuthChallenge::REFRESH,
        };
        assert!(challenge.is_refresh());
        assert_eq!(
            now(auth.on_challenge(challenge)).unwrap(),
            Bytes::from("async-1"),
            "the default challenge answer is fresh credentials"
        );
        let err = now(auth.auth_data()).unwrap_err();
        assert!(err.message().contains("token service unreachable"), "{err}");
        assert!(err.message().contains("supplier"), "{err}");
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn an_empty_token_is_an_error_naming_its_source() {
        let auth = TokenAuth::from_async_fn(|| async { Ok("  ".to_string()) });
        let err = now(auth.auth_data()).unwrap_err();
        assert!(err.message().contains("empty"), "{err}");
        assert!(err.message().contains("async token function"), "{err}");
    }

    #[test]
    fn basic_auth_sends_user_colon_password_with_the_basic_method() {
        let auth = BasicAuth::new("alice", "s3cret");
        assert_eq!(auth.method_name(), "basic");
        assert_eq!(now(auth.auth_data()).unwrap(), Bytes::from("alice:s3cret"));
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }

    #[test]
    fn basic_auth_refuses_what_the_broker_cannot_split() {
        let err = now(BasicAuth::new("a:b", "p").auth_data()).unwrap_err();
        assert!(err.message().contains("user id contains ':'"), "{err}");
        let err = now(BasicAuth::new("a", "p:q").auth_data()).unwrap_err();
        assert!(err.message().contains("password contains ':'"), "{err}");
        assert!(!err.message().contains("p:q"), "never the password: {err}");
        let err = now(BasicAuth::new("a", "").auth_data()).unwrap_err();
        assert!(err.message().contains("password is empty"), "{err}");
    }

    #[test]
    fn basic_auth_params_in_both_cli_forms() {
        let json =
            BasicAuth::from_params(r#" {"userId": "alice", "password":"p\u00e9\"x"} "#).unwrap();
        assert_eq!(json, BasicAuth::new("alice", "pé\"x"));
        let kv = BasicAuth::from_params("userId:alice,password:pw").unwrap();
        assert_eq!(kv, BasicAuth::new("alice", "pw"));
        let extra = BasicAuth::from_params(r#"{"userId":"u","other":1,"password":"p"}"#).unwrap();
        assert_eq!(extra, BasicAuth::new("u", "p"));
    }

    #[test]
    fn bad_basic_auth_params_say_what_is_missing() {
        let err = BasicAuth::from_params(r#"{"userId":"alice"}"#).unwrap_err();
        assert!(err.message().contains("no password"), "{err}");
        let err = BasicAuth::from_params("password:pw").unwrap_err();
        assert!(err.message().contains("no userId"), "{err}");
        let err = BasicAuth::from_params("alice").unwrap_err();
        assert!(err.message().contains("userId:USER"), "{err}");
        let err = BasicAuth::from_params(r#"{"userId":"alice""#).unwrap_err();
        assert!(err.message().contains("ends early"), "{err}");
        let err = BasicAuth::from_params(r#"{"userId":{"a":1}}"#).unwrap_err();
        assert!(err.message().contains("unexpected '{'"), "{err}");
    }
}
