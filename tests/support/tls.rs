//! TLS for the tests, since pulsar-lite has none: certificates made on the spot with rcgen
//! ([`Pki`]), and a TLS-terminating proxy ([`TlsProxy`]) that accepts `pulsar+ssl://`
//! connections on a loopback port (optionally requiring client certificates) and pipes the bytes
//! to the plain broker.
//!
//! pulsar-lite answers a LOOKUP with its own plain `brokerServiceUrl` and no
//! `brokerServiceUrlTls`; with a `pulsar+ssl://` service URL the client then stays on its TLS
//! connection to the proxy (see `ClientInner::lookup`), so everything goes through the proxy.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A certificate authority: its certificate and key, to sign others.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate signed by this CA for the names (DNS names or IP addresses), as
    /// `(certificate PEM, key PEM)`.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// The certificates of one test, as PEM files in a temporary directory (removed on drop):
/// a CA and a server certificate it signed for the given names, an unrelated CA, and a client
/// CA with a client certificate it signed.
pub struct Pki {
    dir: PathBuf,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing the server uses.
    pub other_ca: PathBuf,
    /// The CA the proxy trusts for client certificates.
    pub client_ca: PathBuf,
    /// A client certificate signed by the client CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A client certificate signed by the server's CA, which the proxy does not trust for
    /// clients.
    pub untrusted_client_cert: PathBuf,
    /// Its key.
    pub untrusted_client_key: PathBuf,
    server_cert: String,
    server_key: String,
    client_ca_pem: String,
}

impl Pki {
    /// New certificates; the server certificate is valid for `server_names`.
    pub fn new(server_names: &[&str]) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("pulsar-wire-test-{}", super::unique_name("tls")));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let ca = Ca::new("pulsar-wire test CA");
        let other = Ca::new("pulsar-wire unrelated CA");
        let client_ca = Ca::new("pulsar-wire client CA");
        let (server_cert, server_key) = ca.issue(server_names);
        let (client_cert, client_key) = client_ca.issue(&["client.example"]);
        let (untrusted_cert, untrusted_key) = ca.issue(&["client.example"]);
        let write = |name: &str, text: &str| -> PathBuf {
            let path = dir.join(name);
            fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        Pki {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other.pem()),
            client_ca: write("client-ca.pem", &client_ca.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            untrusted_client_cert: write("untrusted-client.pem", &untrusted_cert),
            untrusted_client_key: write("untrusted-client.key", &untrusted_key),
            server_cert,
            server_key,
            client_ca_pem: client_ca.pem(),
            dir,
        }
    }

    /// The temporary directory of the PEM files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rustls server configuration of the server certificate (with `require_client_cert`,
    /// clients need a certificate signed by the client CA).
    pub fn server_config(&self, require_client_cert: bool) -> ServerConfig {
        let provider = Arc::new(ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server certificate PEM");
        let key =
            PrivateKeyDer::from_pem_slice(self.server_key.as_bytes()).expect("server key PEM");
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.client_ca_pem.as_bytes()) {
                roots.add(cert.expect("client CA PEM")).expect("client CA");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(chain, key)
            .expect("server certificate and key")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A TLS terminator on a loopback port in front of a plain broker. It runs on the runtime of
/// the test that started it and stops when dropped (or when that runtime ends).
pub struct TlsProxy {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    server_names: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Starts a proxy to `backend` (`host:port`) with the server certificate of `pki`; with
    /// `require_client_cert`, only clients with a certificate signed by the client CA get in.
    pub async fn start(pki: &Pki, require_client_cert: bool, backend: &str) -> TlsProxy {
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config(require_client_cert)));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = handshakes.clone();
        let server_names = Arc::new(std::sync::Mutex::new(Vec::new()));
        let names = server_names.clone();
        let backend = backend.to_string();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts the connections too.
            let mut connections = JoinSet::new();
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                };
                let acceptor = acceptor.clone();
                let backend = backend.clone();
                let counter = counter.clone();
                let names = names.clone();
                connections.spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Some(name) = tls.get_ref().1.server_name() {
                        names
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(name.to_owned());
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut plain) = TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsProxy {
            addr,
            handshakes,
            server_names,
            task,
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `pulsar+ssl://HOST:PORT` for this proxy, with `host` as the name the client checks.
    pub fn url(&self, host: &str) -> String {
        format!("pulsar+ssl://{host}:{}", self.port())
    }

    /// The TLS server names (SNI) of the handshakes completed, in order.
    pub fn server_names(&self) -> Vec<String> {
        self.server_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many TLS handshakes the proxy completed.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
