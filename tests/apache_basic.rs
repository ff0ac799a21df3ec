//! Basic authentication (`AuthenticationProviderBasic`) on a real Apache Pulsar: the right user
//! and password produce and consume; a wrong password, an unknown user and no credentials are
//! each refused with one typed error; a user without permission is refused by authorization.
//! The same through the Pulsar proxy, which checks the password itself and forwards the user to
//! the broker.
//!
//! One standalone (and a proxy) for the whole binary, started by `scripts/apache-pulsar.sh
//! start --auth basic --proxy` (run `scripts/apache-pulsar.sh install` once). Its users: `admin` (password
//! `PULSAR_BASIC_PASSWORD`), a super user, and `nobody` (password `nobody-password`), with no
//! permission.

mod support;

use std::time::Duration;

use pulsar_wire::{
    BasicAuth, ConnectionError, Error, InitialPosition, ProducerMessage, PulsarClient,
    ServerErrorCode,
};
use support::{ApacheOptions, Broker};

fn broker() -> &'static Broker {
    support::apache_with(&ApacheOptions::plain().basic().proxy())
}

fn client(b: &Broker, auth: BasicAuth) -> PulsarClient {
    PulsarClient::builder(b.url())
        .authentication(auth)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The broker's refusal of the handshake, or a panic saying what came instead.
fn refused_handshake(err: &Error) -> &pulsar_wire::ServerError {
    match err {
        Error::Connection(ConnectionError::Handshake(e)) => e,
        other => panic!("expected a refused handshake, got {other:?}"),
    }
}

/// Asserts `err` is the broker's AuthenticationError, final, saying what to check.
fn assert_authentication_error(err: &Error, what: &str) {
    let refused = refused_handshake(err);
    assert_eq!(refused.code, ServerErrorCode::AuthenticationError, "{what}");
    assert!(!refused.message.is_empty(), "{what}: the broker's message");
    assert!(!err.is_retriable(), "{what}: {err:?}");
    let shown = err.to_string();
    assert!(shown.contains(&refused.message), "{what}: {shown}");
    assert!(shown.contains("check the"), "{what}: {shown}");
}

#[tokio::test]
async fn the_right_user_and_password_produce_and_consume() {
    let b = broker();
    // As the CLI's --auth-params give them.
    let params = format!(
        r#"{{"userId":"{}","password":"{}"}}"#,
        b.env("PULSAR_BASIC_USER"),
        b.env("PULSAR_BASIC_PASSWORD")
    );
    let auth = BasicAuth::from_params(&params).expect("params");
    let client = PulsarClient::builder(b.url())
        .authentication(auth)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let topic = support::unique_topic("basic");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe as admin");
    let producer = client
        .producer(&topic)
        .create()
        .await
        .expect("producer as admin");
    let id = producer
        .send(ProducerMessage::new("basic auth"))
        .await
        .expect("send");
    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("the message came back within 30 s");
    assert_eq!(msg.payload_str(), Some("basic auth"));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack");
    client.close().await.expect("close");
    // The same user on the admin API (HTTP basic auth): the topic is there.
    let (status, body) = b.apache().admin(
        "GET",
        &format!("/admin/v2/{}/stats", support::apache::topic_path(&topic)),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"sub\""),
        "the subscription is in the stats: {body}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_an_authentication_error() {
    let b = broker();
    let client = client(
        b,
        BasicAuth::new(b.env("PULSAR_BASIC_USER"), "not-the-password"),
    );
    let err = client
        .producer(support::unique_topic("wrong-password"))
        .create()
        .await
        .expect_err("a wrong password");
    assert_authentication_error(&err, "wrong password");
    assert!(
        !format!("{err:?}").contains("not-the-password"),
        "the password is never shown: {err:?}"
    );
}

#[tokio::test]
async fn an_unknown_user_is_refused_with_an_authentication_error() {
    let b = broker();
    let client = client(b, BasicAuth::new("mallory", b.env("PULSAR_BASIC_PASSWORD")));
    let err = client
        .producer(support::unique_topic("unknown-user"))
        .create()
        .await
        .expect_err("an unknown user");
    assert_authentication_error(&err, "unknown user");
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
    assert_authentication_error(&err, "no credentials");
}

#[tokio::test]
async fn a_user_without_permission_is_refused_with_an_authorization_error() {
    let b = broker();
    let client = client(b, BasicAuth::new("nobody", "nobody-password"));
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

#[tokio::test]
async fn a_user_id_the_broker_cannot_split_fails_before_it_is_sent() {
    let b = broker();
    let client = client(b, BasicAuth::new("ad:min", "x"));
    let err = client
        .partitions(&support::unique_topic("colon"))
        .await
        .expect_err("a ':' in the user id");
    match &err {
        Error::Connection(ConnectionError::Credentials(message)) => {
            assert!(message.contains("basic authentication"), "{message}");
            assert!(message.contains("user id contains ':'"), "{message}");
        }
        other => panic!("expected a credentials error, got {other:?}"),
    }
}

// --- the command line -------------------------------------------------------------------------

/// `--auth-plugin ...AuthenticationBasic --auth-params` in the official CLI's JSON form: the
/// right password produces and consumes; a wrong one fails with one error line carrying the
/// broker's AuthenticationError, and never shows the password.
#[tokio::test]
async fn the_cli_authenticates_with_the_basic_plugin() {
    let b = broker();
    let password = b.env("PULSAR_BASIC_PASSWORD").to_owned();
    let topic = support::unique_topic("cli-basic");
    let run = |args: &[&str], params: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pulsar-wire"));
        cmd.args(args).args([
            "--url",
            b.url(),
            "--auth-plugin",
            "org.apache.pulsar.client.impl.auth.AuthenticationBasic",
            "--auth-params",
            params,
        ]);
        support::cli::run_command(cmd, Duration::from_secs(120))
    };
    let good = format!(r#"{{"userId":"admin","password":"{password}"}}"#);
    let produced = run(
        &["produce", "--topic", &topic, "-m", "basic {i}", "-n", "2"],
        &good,
    );
    assert!(
        produced.status.success(),
        "{}",
        support::cli::text(&produced.stderr)
    );
    let consumed = run(
        &[
            "consume",
            "--topic",
            &topic,
            "-s",
            "s",
            "--initial",
            "earliest",
            "-n",
            "2",
        ],
        &good,
    );
    assert!(
        consumed.status.success(),
        "{}",
        support::cli::text(&consumed.stderr)
    );
    assert_eq!(support::cli::text(&consumed.stdout), "basic 0\nbasic 1\n");
    let bad = r#"{"userId":"admin","password":"not-the-password-42"}"#;
    let refused = run(&["produce", "--topic", &topic, "-m", "x"], bad);
    let line = support::cli::failed(&refused);
    assert!(line.contains("AuthenticationError"), "{line}");
    assert!(!line.contains("not-the-password-42"), "{line}");
}

/// Through the proxy: the right password produces and consumes; a wrong one is refused by the
/// proxy (AuthenticationError); `nobody`, whom the proxy authenticates, is refused by the
/// broker, to which the proxy forwards the user (AuthorizationError).
#[tokio::test]
async fn basic_credentials_through_the_proxy() {
    let b = broker();
    let proxy = b.apache().proxy_url();
    let admin = BasicAuth::new(b.env("PULSAR_BASIC_USER"), b.env("PULSAR_BASIC_PASSWORD"));
    let client = PulsarClient::builder(proxy)
        .authentication(admin)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let topic = support::unique_topic("basic-proxy");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe through the proxy");
    let producer = client.producer(&topic).create().await.expect("producer");
    let id = producer.send("through the proxy").await.expect("send");
    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("the message came back within 30 s");
    assert_eq!(
        (msg.payload_str(), msg.id()),
        (Some("through the proxy"), id)
    );
    client.close().await.expect("close");

    let wrong = PulsarClient::builder(proxy)
        .authentication(BasicAuth::new(
            b.env("PULSAR_BASIC_USER"),
            "not-the-password",
        ))
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = wrong
        .producer(support::unique_topic("basic-proxy-wrong"))
        .create()
        .await
        .expect_err("a wrong password");
    assert_authentication_error(&err, "wrong password through the proxy");

    let nobody = PulsarClient::builder(proxy)
        .authentication(BasicAuth::new("nobody", "nobody-password"))
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = nobody
        .producer(support::unique_topic("basic-proxy-nobody"))
        .create()
        .await
        .expect_err("no permission on public/default");
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::AuthorizationError),
        "{err:?}"
    );
}
