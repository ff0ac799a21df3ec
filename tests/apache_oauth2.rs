//! OAuth2 client credentials on a real Apache Pulsar: the test support's token server issues
//! HS256 JWTs signed with the broker's token key, so the broker's `AuthenticationProviderToken`
//! accepts them. Tokens from it produce and consume; a wrong client secret, an unreachable
//! token server, a token server answering 500 and a bad key file each end in one typed error
//! (`ConnectionError::Credentials`) naming the cause, after one attempt; a token living a few
//! seconds is replaced through the broker's AUTH_CHALLENGE on the same connection; an
//! `http://` service URL's REST lookup carries the same token; the command line's
//! `AuthenticationOAuth2` and `AuthenticationFactoryOAuth2` plugins.
//!
//! One standalone for the whole binary, started by `scripts/apache-pulsar.sh start --auth token
//! --config authenticationRefreshCheckSeconds=1` (run `scripts/apache-pulsar.sh install` once):
//! the broker checks every connection's token for expiry each second, which only the
//! expiring-token test notices (the other tests' tokens live an hour). `admin` is a super user.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use pulsar_wire::{
    ConnectionError, Error, InitialPosition, OAuth2ClientCredentials, ProducerMessage,
    PulsarClient, SubscriptionType,
};
use support::oauth2::{TempDir, TokenServer};
use support::{ApacheOptions, Broker};

/// The broker checks every connection's credentials for expiry this often (seconds).
const REFRESH_CHECK_SECS: u64 = 1;

const HOUR: Duration = Duration::from_secs(3600);

const OAUTH2_PLUGIN: &str = "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationOAuth2";
const OAUTH2_FACTORY: &str =
    "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationFactoryOAuth2";

fn broker() -> &'static Broker {
    support::apache_with(&ApacheOptions::plain().token().config(
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

fn client(b: &Broker, auth: OAuth2ClientCredentials) -> PulsarClient {
    PulsarClient::builder(b.url())
        .authentication(auth)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The credentials error of `err` (what the user sees), or a panic saying what came instead.
fn credentials_error(err: &Error) -> &str {
    match err {
        Error::Connection(ConnectionError::Credentials(message)) => message,
        other => panic!("expected a credentials error, got {other:?}"),
    }
}

/// Creating a producer with `auth` fails with one credentials error, whose message is
/// returned; `secret` appears nowhere in it.
async fn refused(b: &Broker, auth: OAuth2ClientCredentials, secret: &str) -> String {
    let client = client(b, auth);
    let err = client
        .producer(support::unique_topic("oauth2-refused"))
        .create()
        .await
        .expect_err("no token, no producer");
    let message = credentials_error(&err).to_string();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(secret),
        "the secret is never shown: {shown}"
    );
    assert!(shown.contains("token authentication"), "{shown}");
    assert_eq!(client.open_connections(), 0, "no connection was opened");
    message
}

#[tokio::test]
async fn tokens_from_the_token_server_produce_and_consume() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    let dir = TempDir::new();
    let key = server.write_credentials(dir.path(), "key.json");
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_url(format!("file://{}", key.display()))
        .audience("urn:pulsar:standalone")
        .scope("pulsar")
        .build()
        .expect("oauth2");
    let client = client(b, auth);
    let topic = support::unique_topic("oauth2");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe with an OAuth2 token");
    let producer = client
        .producer(&topic)
        .create()
        .await
        .expect("producer with an OAuth2 token");
    let id = producer
        .send(ProducerMessage::new("through oauth2"))
        .await
        .expect("send");
    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("the message came back within 30 s");
    assert_eq!(msg.payload_str(), Some("through oauth2"));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack");
    // One discovery, and one token shared by every connection of the client (the standalone
    // is one broker: one connection, or a few if lookups went elsewhere).
    assert_eq!(server.discovery_requests(), 1);
    assert_eq!(server.tokens_issued(), 1, "the cached token was reused");
    let form = &server.forms()[0];
    assert_eq!(form["audience"], "urn:pulsar:standalone");
    assert_eq!(form["scope"], "pulsar");
    client.close().await.expect("close");
}

#[tokio::test]
async fn a_wrong_client_secret_is_one_credentials_error_with_the_token_servers_answer() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    let dir = TempDir::new();
    let key = server.write_credentials_with(dir.path(), "key.json", "not-the-secret-42");
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_file(&key)
        .build()
        .expect("oauth2");
    let message = refused(b, auth, "not-the-secret-42").await;
    assert!(message.contains("HTTP 401 Unauthorized"), "{message}");
    assert!(
        message.contains("invalid_client: client authentication failed"),
        "{message}"
    );
    assert!(
        message.contains("check the client_id and client_secret"),
        "{message}"
    );
    assert_eq!(server.token_requests(), 1, "asked once, not retried");
}

#[tokio::test]
async fn an_unreachable_token_server_is_one_credentials_error_naming_it() {
    let b = broker();
    let issuer = format!("http://127.0.0.1:{}", support::cli::closed_port());
    let auth = OAuth2ClientCredentials::builder(&issuer)
        .client_credentials("pulsar-wire-test-client", "a-secret-value")
        .build()
        .expect("oauth2");
    let message = refused(b, auth, "a-secret-value").await;
    assert!(message.contains("cannot reach"), "{message}");
    assert!(message.contains(&issuer), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(message.contains("check the issuer URL"), "{message}");
}

#[tokio::test]
async fn a_token_server_answering_500_is_one_credentials_error_with_the_status() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    server.fail_with(Some(500));
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(support::oauth2::CLIENT_ID, server.client_secret())
        .build()
        .expect("oauth2");
    let message = refused(b, auth, server.client_secret()).await;
    assert!(
        message.contains("HTTP 500 Internal Server Error"),
        "{message}"
    );
    assert!(message.contains(&server.token_url()), "{message}");
    assert!(message.contains("try again later"), "{message}");
    assert_eq!(server.token_requests(), 1, "asked once, not retried");
}

#[tokio::test]
async fn a_bad_credentials_file_is_one_credentials_error_naming_it() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    let dir = TempDir::new();
    let key = dir.path().join("key.json");
    std::fs::write(&key, r#"{"client_id":"x","clientSecret":"camel-s3cret"}"#).unwrap();
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_url(format!("file://{}", key.display()))
        .build()
        .expect("oauth2");
    let message = refused(b, auth, "camel-s3cret").await;
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(message.contains("has no client_secret"), "{message}");
    assert_eq!(
        server.discovery_requests() + server.token_requests(),
        0,
        "nothing was asked of the token server"
    );
}

/// An `http://` service URL: the REST lookup sends the OAuth2 token as `Authorization:
/// Bearer`, the binary protocol the same cached token; a wrong secret is the same one
/// credentials error there too.
#[tokio::test]
async fn an_http_service_url_looks_up_with_the_same_oauth2_token() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(support::oauth2::CLIENT_ID, server.client_secret())
        .build()
        .expect("oauth2");
    let client = PulsarClient::builder(b.env("PULSAR_HTTP_URL"))
        .authentication(auth)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let topic = support::unique_topic("oauth2-http");
    let producer = client
        .producer(&topic)
        .create()
        .await
        .expect("producer through the REST lookup");
    producer.send("over http lookup").await.expect("send");
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe through the REST lookup");
    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("the message within 30 s");
    assert_eq!(msg.payload_str(), Some("over http lookup"));
    assert_eq!(server.tokens_issued(), 1, "one token for REST and binary");
    client.close().await.expect("close");

    let wrong = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(support::oauth2::CLIENT_ID, "not-the-secret-42")
        .build()
        .expect("oauth2");
    let client = PulsarClient::builder(b.env("PULSAR_HTTP_URL"))
        .authentication(wrong)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let requests_before = server.token_requests();
    let err = client
        .producer(support::unique_topic("oauth2-http-refused"))
        .create()
        .await
        .expect_err("a wrong secret");
    let message = credentials_error(&err);
    assert!(message.contains("HTTP 401 Unauthorized"), "{message}");
    assert!(!format!("{err:?}").contains("not-the-secret-42"), "{err:?}");
    assert_eq!(
        server.token_requests(),
        requests_before + 1,
        "asked once, not retried"
    );
}

/// Tokens live 4 s. The broker (checking each second) finds the connection's token expired
/// and sends AUTH_CHALLENGE; the client answers with a token fetched for it, on the same
/// connection, and the producer and consumer keep working past the first token's end.
#[tokio::test]
async fn an_expiring_token_is_replaced_through_auth_challenge_on_the_same_connection() {
    let b = broker();
    let lifetime = Duration::from_secs(4);
    let server = TokenServer::for_broker(b, "admin", lifetime);
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(support::oauth2::CLIENT_ID, server.client_secret())
        .build()
        .expect("oauth2");
    let client = client(b, auth);
    let topic = support::unique_topic("oauth2-refresh");
    let producer = client.producer(&topic).create().await.expect("producer");
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let first_token_end = now_secs() + lifetime.as_secs();
    producer.send("before").await.expect("send before");
    let connections = client.open_connections();
    let issued_at_start = server.tokens_issued();

    // Wait (liveness bound: 90 s) until the broker has refreshed this connection's
    // credentials twice and the token server has issued tokens for it.
    let refreshed = "Refreshed authentication credentials for role admin";
    let guard = Instant::now() + Duration::from_secs(90);
    while support::apache::read_log(b.apache())
        .matches(refreshed)
        .count()
        < 2
        || server.tokens_issued() < issued_at_start + 2
        || now_secs() <= first_token_end
    {
        assert!(
            Instant::now() < guard,
            "no two AUTH_CHALLENGE refreshes within 90 s (tokens issued: {}); broker log tail:\n{}",
            server.tokens_issued(),
            b.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    producer
        .send("after")
        .await
        .expect("send after the first token ended");
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = consumer
            .receive_timeout(Duration::from_secs(30))
            .await
            .expect("receive")
            .expect("both messages within 30 s");
        got.push(m.payload_str().unwrap_or_default().to_string());
        consumer.ack(&m).await.expect("ack");
    }
    assert_eq!(got, ["before", "after"]);
    assert!(
        server.tokens_issued() >= 3,
        "the token server issued new tokens: {}",
        server.tokens_issued()
    );
    assert_eq!(
        client.open_connections(),
        connections,
        "the same connections throughout"
    );
    let log = support::apache::read_log(b.apache());
    assert!(
        !log.contains("Principal cannot change during an authentication refresh"),
        "the broker saw another role in the refresh"
    );
    client.close().await.expect("close");
}

// --- the command line -------------------------------------------------------------------------

fn run_cli(b: &Broker, plugin: &str, params: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pulsar-wire"));
    cmd.args(args).args([
        "--url",
        b.url(),
        "--auth-plugin",
        plugin,
        "--auth-params",
        params,
    ]);
    support::cli::run_command(cmd, Duration::from_secs(120))
}

/// `--auth-plugin ...oauth2.AuthenticationOAuth2` with the official CLI's JSON params (a
/// `file:///` key file) produces; `...AuthenticationFactoryOAuth2` with an inline `data:` key
/// consumes; a wrong secret is one error line with the token server's answer, without the
/// secret.
#[tokio::test]
async fn the_cli_authenticates_with_the_oauth2_plugins() {
    let b = broker();
    let server = TokenServer::for_broker(b, "admin", HOUR);
    let dir = TempDir::new();
    let key = server.write_credentials(dir.path(), "key.json");
    let topic = support::unique_topic("cli-oauth2");
    let params = serde_json::json!({
        "type": "client_credentials",
        "issuerUrl": server.issuer_url(),
        "privateKey": format!("file://{}", key.display()),
        "audience": "urn:pulsar:standalone",
        "scope": "pulsar",
    })
    .to_string();
    let produced = run_cli(
        b,
        OAUTH2_PLUGIN,
        &params,
        &["produce", "--topic", &topic, "-m", "oauth2 {i}", "-n", "2"],
    );
    assert!(
        produced.status.success(),
        "{}",
        support::cli::text(&produced.stderr)
    );
    let inline = format!(
        "data:application/json;base64,{}",
        base64::engine::general_purpose::STANDARD
            .encode(server.credentials_json(server.client_secret()))
    );
    let params = serde_json::json!({
        "issuerUrl": server.issuer_url(),
        "privateKey": inline,
        "audience": "urn:pulsar:standalone",
    })
    .to_string();
    let consumed = run_cli(
        b,
        OAUTH2_FACTORY,
        &params,
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
    );
    assert!(
        consumed.status.success(),
        "{}",
        support::cli::text(&consumed.stderr)
    );
    assert_eq!(support::cli::text(&consumed.stdout), "oauth2 0\noauth2 1\n");
    assert!(server.tokens_issued() >= 2, "one per command at least");
    assert_eq!(server.forms()[0]["audience"], "urn:pulsar:standalone");

    let wrong = server.write_credentials_with(dir.path(), "wrong.json", "not-the-secret-42");
    let params = serde_json::json!({
        "issuerUrl": server.issuer_url(),
        "privateKey": format!("file://{}", wrong.display()),
    })
    .to_string();
    let refused = run_cli(
        b,
        OAUTH2_PLUGIN,
        &params,
        &["produce", "--topic", &topic, "-m", "x"],
    );
    let line = support::cli::failed(&refused);
    assert!(line.contains("HTTP 401 Unauthorized"), "{line}");
    assert!(line.contains("invalid_client"), "{line}");
    assert!(!line.contains("not-the-secret-42"), "{line}");
}
