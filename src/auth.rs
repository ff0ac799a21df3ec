//! Authentication: where credentials come from. Tokens are read again each time the broker asks
//! (each connection, and each AUTH_CHALLENGE), so a rotated token file or environment variable is
//! picked up without a restart.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

/// A source of credentials for the CONNECT handshake and for AUTH_CHALLENGE refreshes.
pub trait Authentication: Send + Sync + fmt::Debug {
    /// The method name sent to the broker (`"token"` for tokens).
    fn method_name(&self) -> &str;
    /// Fresh credentials. Called on every connection and every AUTH_CHALLENGE.
    fn auth_data(&self) -> Result<Bytes, String>;
}

/// A function that returns a fresh token.
pub type TokenSupplier = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Where a token comes from.
#[derive(Clone)]
enum TokenSource {
    Static(String),
    Env(String),
    File(PathBuf),
    Supplier(TokenSupplier),
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

    /// A token from a function, called on every use (for example to refresh it).
    pub fn from_fn(supplier: impl Fn() -> Result<String, String> + Send + Sync + 'static) -> Self {
        TokenAuth {
            source: TokenSource::Supplier(Arc::new(supplier)),
        }
    }

    /// The token now.
    pub fn token(&self) -> Result<String, String> {
        let token = match &self.source {
            TokenSource::Static(t) => t.clone(),
            TokenSource::Env(var) => {
                std::env::var(var).map_err(|e| format!("token environment variable {var}: {e}"))?
            }
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("token file {}: {e}", path.display()))?,
            TokenSource::Supplier(f) => f()?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(token.to_owned())
    }
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            TokenSource::Static(_) => "static".to_owned(),
            TokenSource::Env(var) => format!("env {var}"),
            TokenSource::File(path) => format!("file {}", path.display()),
            TokenSource::Supplier(_) => "function".to_owned(),
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

    fn auth_data(&self) -> Result<Bytes, String> {
        self.token().map(Bytes::from)
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

    fn auth_data(&self) -> Result<Bytes, String> {
        Ok(Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_auth_names_the_tls_method_and_sends_no_data() {
        let auth = TlsAuth::new();
        assert_eq!(auth.method_name(), "tls");
        assert_eq!(auth.auth_data().unwrap(), Bytes::new());
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
        assert_eq!(auth.auth_data().unwrap(), Bytes::from("first"));
        std::fs::write(&path, "second").unwrap();
        assert_eq!(auth.auth_data().unwrap(), Bytes::from("second"));
        std::fs::remove_file(&path).unwrap();
        assert!(auth.auth_data().is_err());
    }

    #[test]
    fn a_missing_env_var_is_an_error_naming_it() {
        let auth = TokenAuth::from_env("PULSAR_WIRE_SURELY_UNSET_VAR");
        let err = auth.auth_data().unwrap_err();
        assert!(err.contains("PULSAR_WIRE_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn suppliers_are_called_each_time() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let auth = TokenAuth::from_fn(move || {
            let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(format!("t{i}"))
        });
        assert_eq!(auth.auth_data().unwrap(), Bytes::from("t0"));
        assert_eq!(auth.auth_data().unwrap(), Bytes::from("t1"));
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
