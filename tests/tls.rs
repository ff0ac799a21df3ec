//! `pulsar+ssl://` end to end: the client talks TLS to a TLS-terminating proxy
//! (`support::tls::TlsProxy`) in front of the plain default broker (pulsar-lite, or Apache
//! Pulsar with `PULSAR_WIRE_BROKER=apache`), with certificates made in the test. The broker's
//! own TLS port is tested on Apache Pulsar in tests/apache_security.rs. Server verification (trusted CA, host name, IP address names), mutual TLS, the
//! insecure option, and the errors a user sees when something does not match.

mod support;

use std::time::Duration;

use pulsar_wire::{
    ConnectionError, Error, InitialPosition, ProducerMessage, PulsarClient, SubscriptionType,
};
use support::tls::{Pki, TlsProxy};

/// Failures come after this (the client retries connection failures until then).
const OP_TIMEOUT: Duration = Duration::from_secs(3);

fn backend() -> &'static str {
    support::broker().addr()
}

/// Produces and consumes one message through `client`; the topic is new.
async fn round_trip(client: &PulsarClient) {
    let topic = support::unique_topic("tls");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe over TLS");
    let producer = client
        .producer(&topic)
        .create()
        .await
        .expect("producer over TLS");
    let id = producer
        .send(ProducerMessage::new("over tls").property("k", "v"))
        .await
        .expect("send over TLS");
    let msg = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
        .await
        .expect("a message within 10 s")
        .expect("receive over TLS");
    assert_eq!(msg.payload_str(), Some("over tls"));
    assert_eq!(msg.properties().get("k").map(String::as_str), Some("v"));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack over TLS");
    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
}

/// The TLS error of a failed operation, or a panic saying what came instead.
fn tls_message(result: Result<u32, Error>) -> String {
    match result {
        Err(Error::Connection(ConnectionError::Tls(message))) => message,
        other => panic!("expected a TLS connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn produce_and_consume_over_tls_with_the_ca_file() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.ca)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    round_trip(&client).await;
    assert!(
        proxy.handshakes() >= 1,
        "no TLS connection reached the proxy"
    );
    // The lookup names the broker's plain address: the client must not have gone there (a
    // plain connection beside the proxy). Every connection it holds went through the proxy.
    assert!(
        client.open_connections() <= proxy.handshakes(),
        "{} connections, {} through the proxy",
        client.open_connections(),
        proxy.handshakes()
    );
    if support::broker().is_lite() {
        // pulsar-lite answers without `proxy_through_service_url`: the client stays on its one
        // TLS connection. An Apache Pulsar standalone sets it on every answer (TopicLookupBase:
        // `isRunningStandalone()`), so the topic gets a second connection, keyed by the
        // broker's name and reached through the service URL (the proxy) too.
        assert_eq!(client.open_connections(), 1);
    }
    client.close().await.expect("close");
}

#[tokio::test]
async fn an_ip_address_host_is_checked_against_the_certificate_ip_names() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    let client = PulsarClient::builder(proxy.url("127.0.0.1"))
        .tls_trust_certs_file(&pki.ca)
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let topic = support::unique_topic("tls-ip");
    assert_eq!(client.partitions(&topic).await.expect("over TLS by IP"), 0);
}

#[tokio::test]
async fn mutual_tls_works_with_the_client_certificate() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, true, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.ca)
        .tls_certificate_and_key(&pki.client_cert, &pki.client_key)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    round_trip(&client).await;
    assert!(proxy.handshakes() >= 1);
}

#[tokio::test]
async fn mutual_tls_without_a_client_certificate_fails_clearly() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, true, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.ca)
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let message = tls_message(client.partitions(&support::unique_topic("mtls")).await);
    assert!(message.contains("client certificate"), "{message}");
    assert!(message.contains("tls_certificate_and_key"), "{message}");
    assert_eq!(
        proxy.handshakes(),
        0,
        "the proxy let a client in without a certificate"
    );
}

#[tokio::test]
async fn mutual_tls_with_a_certificate_of_another_ca_fails_clearly() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, true, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.ca)
        .tls_certificate_and_key(&pki.untrusted_client_cert, &pki.untrusted_client_key)
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let message = tls_message(client.partitions(&support::unique_topic("mtls")).await);
    assert!(message.contains("client certificate refused"), "{message}");
    assert_eq!(proxy.handshakes(), 0);
}

#[tokio::test]
async fn a_server_certificate_of_an_untrusted_ca_is_refused() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.other_ca)
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let message = tls_message(client.partitions(&support::unique_topic("ca")).await);
    assert!(message.contains("certificate not trusted"), "{message}");
    assert!(message.contains("tls_trust_certs_file"), "{message}");
}

#[tokio::test]
async fn the_system_roots_do_not_trust_a_test_ca() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let message = tls_message(client.partitions(&support::unique_topic("roots")).await);
    assert!(message.contains("certificate not trusted"), "{message}");
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_unless_hostname_validation_is_off() {
    let pki = Pki::new(&["foo.example"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    for host in ["localhost", "127.0.0.1"] {
        let client = PulsarClient::builder(proxy.url(host))
            .tls_trust_certs_file(&pki.ca)
            .operation_timeout(OP_TIMEOUT)
            .build()
            .expect("client");
        let message = tls_message(client.partitions(&support::unique_topic("name")).await);
        assert!(message.contains("hostname mismatch"), "{host}: {message}");
        assert!(message.contains(host), "{host}: {message}");
        assert!(
            message.contains("tls_validate_hostname(false)"),
            "{host}: {message}"
        );
    }

    // Without the name check the chain is still verified: the right CA connects...
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.ca)
        .tls_validate_hostname(false)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    round_trip(&client).await;

    // ...and a wrong CA is still refused.
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_trust_certs_file(&pki.other_ca)
        .tls_validate_hostname(false)
        .operation_timeout(OP_TIMEOUT)
        .build()
        .expect("client");
    let message = tls_message(client.partitions(&support::unique_topic("name")).await);
    assert!(message.contains("certificate not trusted"), "{message}");
}

#[tokio::test]
async fn an_insecure_connection_accepts_any_certificate() {
    let pki = Pki::new(&["foo.example"]);
    let proxy = TlsProxy::start(&pki, false, backend()).await;
    let client = PulsarClient::builder(proxy.url("localhost"))
        .tls_allow_insecure_connection(true)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    round_trip(&client).await;
    assert!(proxy.handshakes() >= 1);
}

#[tokio::test]
async fn tls_to_a_plain_port_fails() {
    // The plain broker port does not speak TLS: the handshake cannot succeed.
    let client = PulsarClient::builder(format!("pulsar+ssl://{}", backend()))
        .tls_allow_insecure_connection(true)
        .operation_timeout(OP_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    match client.partitions(&support::unique_topic("plain")).await {
        Err(Error::Connection(ConnectionError::Tls(message))) => {
            assert!(message.contains("pulsar+ssl://"), "{message}");
        }
        // A server that waits for more bytes of what it takes for a frame never answers.
        Err(Error::Connection(ConnectionError::ConnectTimeout { .. })) => {}
        other => panic!("expected a TLS error or a connect timeout, got {other:?}"),
    }
}

#[test]
fn unreadable_or_invalid_tls_files_fail_the_build_with_the_path() {
    let pki = Pki::new(&["localhost"]);
    let missing = pki.dir().join("missing.pem");
    let err = PulsarClient::builder("pulsar+ssl://localhost:6651")
        .tls_trust_certs_file(&missing)
        .build()
        .expect_err("a missing CA file");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("tls_trust_certs_file"), "{text}");
    assert!(text.contains("missing.pem"), "{text}");

    // A key file given as the CA file: no certificate in it.
    let err = PulsarClient::builder("pulsar+ssl://localhost:6651")
        .tls_trust_certs_file(&pki.client_key)
        .build()
        .expect_err("a CA file without certificates");
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(text.contains("no certificate"), "{text}");

    // A certificate with a key that is not its own.
    let err = PulsarClient::builder("pulsar+ssl://localhost:6651")
        .tls_certificate_and_key(&pki.client_cert, &pki.untrusted_client_key)
        .build()
        .expect_err("a mismatched key");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");

    // A certificate file given as the key.
    let err = PulsarClient::builder("pulsar+ssl://localhost:6651")
        .tls_certificate_and_key(&pki.client_cert, &pki.client_cert)
        .build()
        .expect_err("no key in the key file");
    let text = err.to_string();
    assert!(text.contains("private key"), "{text}");
    assert!(text.contains("client.pem"), "{text}");

    // Options given with a plain URL are checked too.
    let err = PulsarClient::builder("pulsar://localhost:6650")
        .tls_trust_certs_file(&missing)
        .build()
        .expect_err("a missing CA file with a plain URL");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}
