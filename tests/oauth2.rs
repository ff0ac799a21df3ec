//! `OAuth2ClientCredentials` against the test support's token server, with no broker: the
//! discovery and the token request as sent, the cache, one fetch shared by concurrent callers,
//! a new token for each AUTH_CHALLENGE, the errors of a wrong secret, an unreachable server, a
//! failing server, a wrong issuer and a bad key file, a rotated key file, and an https token
//! server with its own CA. (tests/apache_oauth2.rs shows the tokens on Apache Pulsar.)

mod support;

use std::time::Duration;

use base64::Engine as _;
use pulsar_wire::{AuthChallenge, AuthError, Authentication, OAuth2ClientCredentials};
use support::oauth2::{TempDir, TokenServer, CLIENT_ID};

const HOUR: Duration = Duration::from_secs(3600);

fn server() -> TokenServer {
    TokenServer::start(b"a test key of at least 32 bytes!".to_vec(), "admin", HOUR)
}

fn auth_for(server: &TokenServer, dir: &TempDir) -> OAuth2ClientCredentials {
    let key = server.write_credentials(dir.path(), "key.json");
    OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_url(format!("file://{}", key.display()))
        .audience("urn:pulsar:test")
        .scope("produce consume")
        .build()
        .expect("oauth2")
}

fn refresh() -> AuthChallenge<'static> {
    AuthChallenge {
        method: "token",
        data: AuthChallenge::REFRESH,
    }
}

/// The error's message, checked to never show `secret`.
fn message(err: AuthError, secret: &str) -> String {
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(secret),
        "the secret is never shown: {shown}"
    );
    eprintln!("{err}");
    err.to_string()
}

#[tokio::test]
async fn the_token_request_is_a_client_credentials_form_and_its_token_is_cached() {
    let server = server();
    let dir = TempDir::new();
    let auth = auth_for(&server, &dir);
    let first = auth.token().await.expect("a token");
    let again = auth.auth_data().await.expect("auth data");
    assert_eq!(again, first.as_bytes(), "the cached token");
    assert_eq!(server.discovery_requests(), 1);
    assert_eq!(server.token_requests(), 1, "one fetch for both");
    assert_eq!(server.issued(), vec![first.clone()]);
    let forms = server.forms();
    let form = &forms[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["client_secret"], server.client_secret());
    assert_eq!(form["audience"], "urn:pulsar:test");
    assert_eq!(form["scope"], "produce consume", "form-encoded and decoded");
    // An HS256 JWT of the configured role.
    let claims = first.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url claims");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
    assert_eq!(claims["sub"], "admin");
    let shown = format!("{auth:?}");
    assert!(
        !shown.contains(server.client_secret()) && !shown.contains(&first),
        "{shown}"
    );
}

#[tokio::test]
async fn no_audience_or_scope_leaves_them_out_of_the_request() {
    let server = server();
    let auth = OAuth2ClientCredentials::builder(format!("{}/", server.issuer_url()))
        .client_credentials(CLIENT_ID, server.client_secret())
        .audience("  ")
        .build()
        .expect("oauth2");
    auth.token().await.expect("a token");
    let form = &server.forms()[0];
    assert!(!form.contains_key("audience"), "{form:?}");
    assert!(!form.contains_key("scope"), "{form:?}");
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let server = server();
    // Opaque tokens without expires_in are never reused by time: only callers that asked
    // while a fetch was under way share it.
    server.set_opaque(true);
    server.hold(true);
    let dir = TempDir::new();
    let auth = auth_for(&server, &dir);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let auth = auth.clone();
        callers.spawn(async move { auth.auth_data().await });
    }
    // Liveness bound only: the first caller's request reaches the held server.
    let guard = std::time::Instant::now() + Duration::from_secs(30);
    while server.token_requests() == 0 {
        assert!(std::time::Instant::now() < guard, "no token request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every caller has asked by now (they all ran up to the lock before the test task ran
    // again); let the answer go.
    tokio::task::yield_now().await;
    server.hold(false);
    let mut tokens = Vec::new();
    while let Some(joined) = callers.join_next().await {
        tokens.push(joined.expect("caller task").expect("a token"));
    }
    assert_eq!(tokens.len(), 8);
    assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
    assert_eq!(server.token_requests(), 1, "one fetch for 8 callers");
    // A later caller gets a new one: the opaque token was not cached by time.
    let later = auth.token().await.expect("a later token");
    assert_ne!(later.as_bytes(), &tokens[0][..]);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn each_auth_challenge_gets_a_new_token_and_simultaneous_ones_share_it() {
    let server = server();
    let dir = TempDir::new();
    let auth = auth_for(&server, &dir);
    let connect = auth.auth_data().await.expect("CONNECT token");
    let answer = auth
        .on_challenge(refresh())
        .await
        .expect("challenge answer");
    assert_ne!(
        answer, connect,
        "a new token, though the cached one is fresh"
    );
    assert_eq!(server.tokens_issued(), 2);
    // The new one is cached for the next CONNECT.
    assert_eq!(auth.auth_data().await.expect("CONNECT token"), answer);
    assert_eq!(server.tokens_issued(), 2);

    // Three connections challenged at once: one fetch.
    server.hold(true);
    let mut challenged = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let auth = auth.clone();
        challenged.spawn(async move { auth.on_challenge(refresh()).await });
    }
    let guard = std::time::Instant::now() + Duration::from_secs(30);
    while server.token_requests() < 3 {
        assert!(std::time::Instant::now() < guard, "no third token request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::yield_now().await;
    server.hold(false);
    let mut answers = Vec::new();
    while let Some(joined) = challenged.join_next().await {
        answers.push(joined.expect("challenge task").expect("a token"));
    }
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "one shared answer"
    );
    assert_ne!(answers[0], answer);
    assert_eq!(server.token_requests(), 3, "one fetch for three challenges");
}

#[tokio::test]
async fn without_expires_in_the_jwt_exp_says_how_long_the_token_lives() {
    // Tokens without expires_in but with exp an hour away are cached.
    let server = server();
    let dir = TempDir::new();
    let auth = auth_for(&server, &dir);
    let a = auth.token().await.expect("token");
    let b = auth.token().await.expect("token");
    assert_eq!(a, b);
    assert_eq!(server.tokens_issued(), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_with_the_token_servers_answer() {
    let server = server();
    let dir = TempDir::new();
    let key = server.write_credentials_with(dir.path(), "wrong.json", "not-the-secret-42");
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_file(&key)
        .build()
        .expect("oauth2");
    let err = message(
        auth.token().await.expect_err("refused"),
        "not-the-secret-42",
    );
    assert!(err.contains("HTTP 401 Unauthorized"), "{err}");
    assert!(
        err.contains("invalid_client: client authentication failed"),
        "{err}"
    );
    assert!(err.contains(&server.token_url()), "{err}");
    assert!(
        err.contains("check the client_id and client_secret"),
        "{err}"
    );
    assert!(
        err.contains(&key.display().to_string()),
        "names the file: {err}"
    );
    assert_eq!(server.token_requests(), 1);
    assert_eq!(server.tokens_issued(), 0);
}

#[tokio::test]
async fn a_rotated_key_file_is_read_again() {
    let server = server();
    let dir = TempDir::new();
    let key = server.write_credentials_with(dir.path(), "key.json", "an-old-secret");
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_file(&key)
        .build()
        .expect("oauth2");
    auth.token().await.expect_err("the old secret");
    server.write_credentials(dir.path(), "key.json");
    auth.token().await.expect("the rotated secret");
    assert_eq!(server.tokens_issued(), 1);
}

#[tokio::test]
async fn an_unreachable_token_server_is_named_with_the_cause() {
    let port = support::cli::closed_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let auth = OAuth2ClientCredentials::builder(&issuer)
        .client_credentials(CLIENT_ID, "a-secret-value")
        .build()
        .expect("oauth2");
    let err = message(
        auth.token().await.expect_err("unreachable"),
        "a-secret-value",
    );
    assert!(
        err.contains(&format!("{issuer}/.well-known/openid-configuration")),
        "{err}"
    );
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(err.contains("check the issuer URL"), "{err}");
}

#[tokio::test]
async fn a_failing_token_server_is_named_with_its_status() {
    let server = server();
    server.fail_with(Some(500));
    let dir = TempDir::new();
    let auth = auth_for(&server, &dir);
    let err = message(auth.token().await.expect_err("500"), server.client_secret());
    assert!(err.contains("HTTP 500 Internal Server Error"), "{err}");
    assert!(
        err.contains("server_error: the test token server was told to fail"),
        "{err}"
    );
    assert!(err.contains("try again later"), "{err}");
    // It recovers: errors are not cached.
    server.fail_with(None);
    auth.token().await.expect("served again");
}

#[tokio::test]
async fn a_wrong_issuer_url_fails_on_the_discovery_document() {
    let server = server();
    let auth = OAuth2ClientCredentials::builder(format!("{}/no/such/issuer", server.issuer_url()))
        .client_credentials(CLIENT_ID, server.client_secret())
        .build()
        .expect("oauth2");
    let err = message(auth.token().await.expect_err("404"), server.client_secret());
    assert!(err.contains("discovery document"), "{err}");
    assert!(err.contains("HTTP 404 Not Found"), "{err}");
    assert!(err.contains("check the issuer URL"), "{err}");
    assert_eq!(server.token_requests(), 0);
}

#[tokio::test]
async fn a_bad_key_file_fails_before_any_request() {
    let server = server();
    let dir = TempDir::new();
    let missing = dir.path().join("missing.json");
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_url(format!("file://{}", missing.display()))
        .build()
        .expect("oauth2");
    let err = auth.token().await.expect_err("missing").to_string();
    assert!(err.contains("cannot read the credentials file"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"client_id":"c","client_secret":"s3cr3t-in-file""#,
    )
    .unwrap();
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_file(&broken)
        .build()
        .expect("oauth2");
    let err = message(auth.token().await.expect_err("broken"), "s3cr3t-in-file");
    assert!(err.contains("is not valid JSON"), "{err}");
    assert!(err.contains(&broken.display().to_string()), "{err}");
    assert_eq!(server.discovery_requests() + server.token_requests(), 0);
}

#[tokio::test]
async fn an_inline_data_url_holds_the_key_file() {
    let server = server();
    let json = server.credentials_json(server.client_secret());
    let url = format!(
        "data:application/json;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(json)
    );
    let auth = OAuth2ClientCredentials::builder(server.issuer_url())
        .credentials_url(&url)
        .build()
        .expect("oauth2");
    auth.token().await.expect("a token");
    assert_eq!(server.tokens_issued(), 1);
    assert!(!format!("{auth:?}").contains(server.client_secret()));
}

#[tokio::test]
async fn an_https_token_server_is_trusted_through_its_ca_file() {
    let pki = support::tls::Pki::new(&["127.0.0.1", "localhost"]);
    let server = TokenServer::start_tls(b"k".to_vec(), "admin", HOUR, &pki);
    assert!(server.issuer_url().starts_with("https://"));
    let trusted = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(CLIENT_ID, server.client_secret())
        .trust_certs_file(&pki.ca)
        .build()
        .expect("oauth2");
    trusted.token().await.expect("a token over https");
    assert_eq!(server.tokens_issued(), 1);

    // The system's roots do not know the test CA.
    let untrusted = OAuth2ClientCredentials::builder(server.issuer_url())
        .client_credentials(CLIENT_ID, server.client_secret())
        .build()
        .expect("oauth2");
    let err = message(
        untrusted.token().await.expect_err("untrusted"),
        server.client_secret(),
    );
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(err.contains("trust_certs_file"), "{err}");
    assert_eq!(server.tokens_issued(), 1);
}
