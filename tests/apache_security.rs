//! Security on a real Apache Pulsar (Apache-specific: pulsar-lite has no TLS and never checks
//! credentials): the broker's own TLS port, mutual TLS with the `tls` authentication method
//! (`AuthenticationProviderTls`), token authentication refusing a wrong, an expired and an
//! unauthorized token with typed errors, and the AUTH_CHALLENGE refresh of an expiring token.
//!
//! One standalone for the whole binary, started by `scripts/apache-pulsar.sh start --auth token
//! --tls --config authenticationRefreshCheckSeconds=2` (run `scripts/apache-pulsar.sh install`
//! once). Its roles: `admin` (the `PULSAR_TOKEN` subject) and `client` (the CN of
//! `PULSAR_CLIENT_CERT`) are super users; any other role has no permission.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pulsar_wire::{
    ConnectionError, Error, InitialPosition, ProducerMessage, PulsarClient, ServerErrorCode,
    SubscriptionType, TlsAuth, TokenAuth,
};
use support::{ApacheOptions, Broker};

/// The broker checks every connection's credentials for expiry this often (seconds).
const REFRESH_CHECK_SECS: u64 = 2;

fn broker() -> &'static Broker {
    support::apache_with(&ApacheOptions::plain().token().tls().config(
        "authenticationRefreshCheckSeconds",
        &REFRESH_CHECK_SECS.to_string(),
    ))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Produces and consumes one message through `client` on a new topic.
async fn round_trip(client: &PulsarClient, what: &str) {
    let topic = support::unique_topic("secure");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .unwrap_or_else(|e| panic!("{what}: subscribe: {e:?}"));
    let producer = client
        .producer(&topic)
        .create()
        .await
        .unwrap_or_else(|e| panic!("{what}: producer: {e:?}"));
    let id = producer
        .send(ProducerMessage::new(what.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{what}: send: {e:?}"));
    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{what}: receive: {e:?}"))
        .unwrap_or_else(|| panic!("{what}: the message came back within 30 s"));
    assert_eq!(msg.payload_str(), Some(what));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack");
}

/// The broker's error code of a refused handshake, or a panic saying what came instead.
fn handshake_code(err: &Error) -> ServerErrorCode {
    match err {
        Error::Connection(ConnectionError::Handshake(e)) => e.code,
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn the_brokers_own_tls_port_serves_a_token_client() {
    let b = broker();
    let client = PulsarClient::builder(b.env("PULSAR_TLS_URL"))
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    round_trip(&client, "tls + token").await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn the_brokers_tls_port_is_refused_with_an_untrusted_ca() {
    let b = broker();
    let other = support::tls::Pki::new(&["localhost"]);
    let client = PulsarClient::builder(b.env("PULSAR_TLS_URL"))
        .tls_trust_certs_file(&other.other_ca)
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    match client.partitions(&support::unique_topic("ca")).await {
        Err(Error::Connection(ConnectionError::Tls(message))) => {
            assert!(message.contains("certificate not trusted"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn mutual_tls_with_the_tls_authentication_method() {
    let b = broker();
    let client = PulsarClient::builder(b.env("PULSAR_TLS_URL"))
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .tls_authentication(b.env("PULSAR_CLIENT_CERT"), b.env("PULSAR_CLIENT_KEY"))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // The role is the certificate's CN, "client", a super user: without the certificate the
    // broker would refuse (next test).
    round_trip(&client, "mtls + tls auth").await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn the_tls_authentication_method_without_a_certificate_is_refused() {
    let b = broker();
    let client = PulsarClient::builder(b.env("PULSAR_TLS_URL"))
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .authentication(TlsAuth::new())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .partitions(&support::unique_topic("no-cert"))
        .await
        .expect_err("no client certificate, no role");
    assert_eq!(handshake_code(&err), ServerErrorCode::AuthenticationError);
    assert!(!err.is_retriable(), "{err:?}");
}

#[test]
fn the_tls_authentication_method_needs_a_tls_url() {
    let err = PulsarClient::builder("pulsar://127.0.0.1:6650")
        .authentication(TlsAuth::new())
        .build()
        .expect_err("tls auth over a plain URL");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("pulsar+ssl://"), "{err}");
}

#[tokio::test]
async fn no_credentials_are_refused() {
    let b = broker();
    let client = PulsarClient::builder(b.url())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .producer(support::unique_topic("anonymous"))
        .create()
        .await
        .expect_err("anonymous");
    assert_eq!(handshake_code(&err), ServerErrorCode::AuthenticationError);
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_an_authentication_error() {
    let b = broker();
    // The admin token with its signature changed: well formed, but not signed by the key.
    let good = b.env("PULSAR_TOKEN");
    let (unsigned, signature) = good.rsplit_once('.').expect("a JWT");
    let flipped: String = signature
        .chars()
        .rev()
        .map(|c| if c == 'A' { 'B' } else { 'A' })
        .collect();
    let client = PulsarClient::builder(b.url())
        .token(format!("{unsigned}.{flipped}"))
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .producer(support::unique_topic("wrong-token"))
        .create()
        .await
        .expect_err("a wrong token");
    assert_eq!(handshake_code(&err), ServerErrorCode::AuthenticationError);
    assert!(!err.is_retriable(), "{err:?}");
}

#[tokio::test]
async fn an_expired_token_is_refused_with_an_authentication_error() {
    let b = broker();
    let expired = b.apache().mint_token("admin", Some(now_secs() - 60));
    let client = PulsarClient::builder(b.url())
        .token(expired)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .producer(support::unique_topic("expired-token"))
        .create()
        .await
        .expect_err("an expired token");
    assert_eq!(handshake_code(&err), ServerErrorCode::AuthenticationError);
}

#[tokio::test]
async fn a_role_without_permission_is_refused_with_an_authorization_error() {
    let b = broker();
    let nobody = b.apache().mint_token("nobody", None);
    let client = PulsarClient::builder(b.url())
        .token(nobody)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .producer(support::unique_topic("unauthorized"))
        .create()
        .await
        .expect_err("no permission on public/default");
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::AuthorizationError),
        "{err:?}"
    );
}

/// The client's token provider hands out tokens that expire 5 s after they are made. The broker
/// (checking every 2 s) finds the first one expired and sends AUTH_CHALLENGE; the client answers
/// with a fresh token from the provider, on the same connection, and the producer keeps
/// working past the first token's expiry.
#[tokio::test]
async fn an_expiring_token_is_refreshed_by_auth_challenge_and_the_producer_keeps_working() {
    let b = broker();
    let minted = Arc::new(AtomicU32::new(0));
    // A super user. Its other tokens never expire: only this test's connection is refreshed.
    let role = "admin";
    let provider = {
        let minted = minted.clone();
        let apache = b.apache();
        TokenAuth::from_fn(move || {
            minted.fetch_add(1, Ordering::SeqCst);
            Ok(apache.mint_token(role, Some(now_secs() + 5)))
        })
    };
    let client = PulsarClient::builder(b.url())
        .authentication(provider)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let topic = support::unique_topic("refresh");
    let producer = client.producer(&topic).create().await.expect("producer");
    let first_token_expiry = now_secs() + 5;
    producer.send("before").await.expect("send before");

    // Wait (liveness guard: 60 s) until the broker says it refreshed this role's credentials.
    let refreshed = format!("Refreshed authentication credentials for role {role}");
    let guard = Instant::now() + Duration::from_secs(60);
    while !support::apache::read_log(b.apache()).contains(&refreshed) {
        assert!(
            Instant::now() < guard,
            "no AUTH_CHALLENGE refresh within 60 s; broker log tail:\n{}",
            b.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while now_secs() <= first_token_expiry {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    producer
        .send("after")
        .await
        .expect("send after the first token expired");
    assert!(
        minted.load(Ordering::SeqCst) >= 2,
        "the provider was asked again for the refresh"
    );
    let log = support::apache::read_log(b.apache());
    assert!(
        !log.contains("Principal cannot change during an authentication refresh"),
        "the broker saw another role in the refresh"
    );
    assert_eq!(
        client.open_connections(),
        1,
        "the same connection throughout"
    );

    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = consumer
            .receive_timeout(Duration::from_secs(30))
            .await
            .expect("receive")
            .expect("both messages are on the topic");
        got.push(m.payload_str().unwrap_or_default().to_owned());
    }
    assert_eq!(got, ["before", "after"]);
}
