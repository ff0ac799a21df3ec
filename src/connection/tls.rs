//! `pulsar+ssl://`: the rustls client configuration (built once per client from the
//! [`TlsOptions`] of the `ClientBuilder`), the TLS handshake of a new connection, and the stream
//! the connection task runs over (plain TCP or TLS).
//!
//! TLS failures become [`ConnectionError::Tls`] with a message saying what to check. Some
//! failures show only after the client's side of the handshake is done (in TLS 1.3 a broker
//! that refuses the client certificate says so on the first read), so the TLS stream also
//! translates the TLS errors of later reads and writes, and records the first one for
//! [`TlsStream::failure`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use crate::error::{ConnectionError, Error};
use crate::url::BrokerAddress;

/// The TLS settings of a client, as the `ClientBuilder` collects them.
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    /// A PEM file of the CA certificates to trust instead of the system's.
    pub trust_certs_file: Option<PathBuf>,
    /// Accept any server certificate (no verification at all).
    pub allow_insecure_connection: bool,
    /// Check that the server certificate names the host connected to.
    pub validate_hostname: bool,
    /// A PEM certificate chain and its PEM private key, for client authentication (mTLS).
    pub certificate_and_key: Option<(PathBuf, PathBuf)>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            trust_certs_file: None,
            allow_insecure_connection: false,
            validate_hostname: true,
            certificate_and_key: None,
        }
    }
}

impl TlsOptions {
    /// Whether any option differs from the defaults.
    pub fn is_customized(&self) -> bool {
        self.trust_certs_file.is_some()
            || self.allow_insecure_connection
            || !self.validate_hostname
            || self.certificate_and_key.is_some()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn config_error(what: &str, path: &Path, reason: impl fmt::Display) -> Error {
    Error::InvalidConfig(format!("{what} {}: {reason}", path.display()))
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| config_error(what, path, format!("cannot read it: {e}")))
}

/// The certificates of a PEM file (at least one).
fn load_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(what, path, format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(
            what,
            path,
            "no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let what = "tls_certificate_and_key private key file";
    let pem = read_file(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        config_error(
            what,
            path,
            format!("no usable private key in it ({e}; expected a PEM PRIVATE KEY block)"),
        )
    })
}

/// The trusted roots: the CA file when given, else the system's store, else (a system without
/// one) the Mozilla roots built into this library.
fn root_store(options: &TlsOptions) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = &options.trust_certs_file {
        let what = "tls_trust_certs_file";
        for cert in load_certs(what, path)? {
            roots.add(cert).map_err(|e| {
                config_error(what, path, format!("not a usable CA certificate: {e}"))
            })?;
        }
        return Ok(roots);
    }
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        debug!(error = %e, "while loading the system's trusted certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        warn!("no trusted certificates in the system store: using the built-in Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(roots)
}

/// Builds the rustls client configuration of a client: the trusted roots, the hostname check,
/// the client certificate. Unreadable or invalid files are [`Error::InvalidConfig`] naming the
/// file and the reason.
pub(crate) fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?;
    let builder = if options.allow_insecure_connection {
        warn!("tls_allow_insecure_connection: broker certificates are not verified");
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
    } else {
        let roots = Arc::new(root_store(options)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("TLS trusted certificates: {e}")))?;
        if options.validate_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipHostnameCheck { inner: webpki }))
        }
    };
    let config = match &options.certificate_and_key {
        None => builder.with_no_client_auth(),
        Some((cert_path, key_path)) => {
            let certs = load_certs("tls_certificate_and_key certificate file", cert_path)?;
            let key = load_key(key_path)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::InvalidConfig(format!(
                    "tls_certificate_and_key {} and {}: {e} (is the key the certificate's?)",
                    cert_path.display(),
                    key_path.display()
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

/// The chain is verified as usual; only a name mismatch is forgiven
/// (`tls_validate_hostname(false)`). webpki checks the chain before the name, so a
/// name error means the chain was good.
#[derive(Debug)]
struct SkipHostnameCheck {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for SkipHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `tls_allow_insecure_connection(true)`: any certificate is accepted (the handshake
/// signatures are still checked against it, which proves nothing about who the server is).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a rustls error means for the user, and what to check.
fn explain(e: &rustls::Error, host: &str) -> String {
    use rustls::Error as E;
    use CertificateError as C;
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => format!(
            "certificate not trusted: the certificate of {host} is not signed by a trusted CA: \
             set tls_trust_certs_file to the CA that signed the broker's certificate"
        ),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "hostname mismatch: the broker's certificate is not valid for {host:?}: connect with \
             a name the certificate lists, or turn the check off with \
             tls_validate_hostname(false) ({e})"
        ),
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => format!(
            "certificate expired or not yet valid: check the dates of the broker's certificate \
             and this machine's clock ({e})"
        ),
        E::InvalidCertificate(C::Revoked) => {
            format!("certificate revoked: the broker's certificate of {host} was revoked")
        }
        E::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => format!(
            "certificate not for a TLS server: the broker's certificate lacks the server \
             authentication purpose ({e})"
        ),
        E::InvalidCertificate(other) => format!(
            "invalid broker certificate ({other:?}): check the broker's certificate and \
             tls_trust_certs_file"
        ),
        E::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied),
        ) => format!(
            "client certificate refused: {host} rejected the TLS handshake ({alert:?}): it \
             requires a client certificate signed by a CA it trusts: set \
             tls_certificate_and_key"
        ),
        E::AlertReceived(alert) => format!(
            "{host} rejected the TLS handshake ({alert:?}): check that its TLS versions and \
             ciphers allow TLS 1.2 or 1.3, and whether it requires a client certificate"
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "not a TLS server: {host} did not answer with TLS ({e}): is the port a \
             pulsar+ssl:// port (plain pulsar:// ports are usually 6650, TLS ones 6651)?"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// The rustls error inside an I/O error, if that is what it is.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Maps a failed TLS handshake to a [`ConnectionError`].
fn handshake_error(e: io::Error, host: &str, addr: &str) -> ConnectionError {
    if let Some(tls) = rustls_error(&e) {
        return ConnectionError::Tls(explain(tls, host));
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ConnectionError::Tls(format!(
            "{addr} closed the connection during the TLS handshake ({e}): is it a \
             pulsar+ssl:// port, and does it require a client certificate \
             (tls_certificate_and_key)?"
        )),
        _ => ConnectionError::Tls(format!("TLS handshake with {addr} failed: {e}")),
    }
}

/// Runs the TLS handshake over a connected socket, with SNI and the certificate check for the
/// physical host (an IP address host is checked as an IP address and sends no SNI).
pub(crate) async fn connect(
    tcp: TcpStream,
    physical: &BrokerAddress,
    config: Arc<ClientConfig>,
) -> Result<TlsStream, ConnectionError> {
    let addr = physical.host_port();
    let name = ServerName::try_from(physical.host.clone()).map_err(|e| {
        ConnectionError::Tls(format!(
            "{:?} is not a valid TLS server name: {e}",
            physical.host
        ))
    })?;
    let inner = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| handshake_error(e, &physical.host, &addr))?;
    Ok(TlsStream {
        inner: Box::new(inner),
        host: physical.host.clone(),
        failure: Arc::new(OnceLock::new()),
    })
}

/// A TLS connection. Its TLS errors (for example a client certificate refused after the
/// handshake) come out of reads and writes with the explained message, and the first one is
/// kept for [`TlsStream::failure`].
pub(crate) struct TlsStream {
    inner: Box<tokio_rustls::client::TlsStream<TcpStream>>,
    host: String,
    failure: Arc<OnceLock<ConnectionError>>,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl TlsStream {
    /// Where the first TLS failure of this stream will be (it stays readable after the stream
    /// has been moved into a task).
    pub fn failure(&self) -> Arc<OnceLock<ConnectionError>> {
        self.failure.clone()
    }

    fn translate(&self, e: io::Error) -> io::Error {
        match rustls_error(&e) {
            Some(tls) => {
                let message = explain(tls, &self.host);
                let _ = self.failure.set(ConnectionError::Tls(message.clone()));
                io::Error::new(e.kind(), message)
            }
            None => e,
        }
    }
}

fn translated<T>(stream: &TlsStream, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    match poll {
        Poll::Ready(Err(e)) => Poll::Ready(Err(stream.translate(e))),
        other => other,
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut *self.inner).poll_read(cx, buf);
        translated(&self, poll)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut *self.inner).poll_write(cx, buf);
        translated(&self, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs);
        translated(&self, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut *self.inner).poll_flush(cx);
        translated(&self, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut *self.inner).poll_shutdown(cx);
        translated(&self, poll)
    }
}

/// The socket a connection task runs over: plain TCP (`pulsar://`) or TLS (`pulsar+ssl://`).
#[derive(Debug)]
pub(crate) enum MaybeTlsStream {
    /// `pulsar://`.
    Plain(TcpStream),
    /// `pulsar+ssl://`.
    Tls(TlsStream),
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    // Forwarded, not left to the trait's default, which writes only the first slice: the
    // connection task writes every frame of a turn with one vectored write.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One vectored write of small slices goes out whole: `MaybeTlsStream` forwards vectored
    /// writes instead of writing only the first slice.
    #[tokio::test]
    async fn plain_streams_write_every_slice_at_once() -> io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut stream = MaybeTlsStream::Plain(client?);
        assert!(stream.is_write_vectored());
        let parts: [&[u8]; 3] = [b"one", b"two", b"three"];
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let written = stream.write_vectored(&slices).await?;
        assert_eq!(written, 11);
        let (mut peer, _) = accepted?;
        let mut got = [0u8; 11];
        peer.read_exact(&mut got).await?;
        assert_eq!(&got, b"onetwothree");
        Ok(())
    }

    #[test]
    fn defaults_verify_everything() {
        let o = TlsOptions::default();
        assert!(o.validate_hostname);
        assert!(!o.allow_insecure_connection);
        assert!(!o.is_customized());
    }

    #[test]
    fn missing_files_name_the_option_and_path() {
        let options = TlsOptions {
            trust_certs_file: Some(PathBuf::from("no-such-dir/ca.pem")),
            ..TlsOptions::default()
        };
        let err = client_config(&options).unwrap_err().to_string();
        assert!(err.contains("tls_trust_certs_file"), "{err}");
        assert!(err.contains("ca.pem"), "{err}");
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn the_default_config_has_roots() {
        // The system store or the built-in fallback: never an empty trust store.
        let roots = root_store(&TlsOptions::default()).unwrap();
        assert!(!roots.is_empty());
    }

    #[test]
    fn explains_errors_by_kind() {
        let untrusted = explain(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "b",
        );
        assert!(untrusted.contains("certificate not trusted"), "{untrusted}");
        assert!(untrusted.contains("tls_trust_certs_file"), "{untrusted}");
        let name = explain(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "b",
        );
        assert!(name.contains("hostname mismatch"), "{name}");
        assert!(name.contains("tls_validate_hostname(false)"), "{name}");
        let client = explain(
            &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            "b",
        );
        assert!(client.contains("tls_certificate_and_key"), "{client}");
        let eof = handshake_error(io::ErrorKind::UnexpectedEof.into(), "b", "b:1");
        assert!(
            matches!(&eof, ConnectionError::Tls(m) if m.contains("pulsar+ssl://")),
            "{eof}"
        );
    }
}
