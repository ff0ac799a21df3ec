//! `http://` and `https://` service URLs on a real Apache Pulsar: lookups and partition counts
//! through the broker's REST API (`/lookup/v2/topic/...`, `/admin/v2/.../partitions`), then the
//! binary protocol to the broker named (its TLS port for https://), with token authentication
//! sent as `Authorization: Bearer`. Also a pattern consumer (the topics of a namespace over
//! REST), the schema registry through the topic's broker, a multi-host HTTP URL with a dead
//! host, and the typed errors of a wrong token, an untrusted CA and an unreachable host.
//!
//! One standalone for the whole binary: `scripts/apache-pulsar.sh start --auth token --tls`
//! (run `scripts/apache-pulsar.sh install` once).

mod support;

use std::time::Duration;

use pulsar_wire::{
    ConnectionError, Error, InitialPosition, ProducerMessage, PulsarClient, ServerErrorCode,
    SubscriptionType,
};
use support::{ApacheOptions, Broker};

fn broker() -> &'static Broker {
    support::apache_with(&ApacheOptions::plain().token().tls())
}

fn http_client(url: &str) -> pulsar_wire::ClientBuilder {
    let b = broker();
    PulsarClient::builder(url)
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(30))
}

/// Produces `n` messages with a key and a property, and receives them all, on `topic`.
async fn round_trip(client: &PulsarClient, topic: &str, n: usize) {
    let mut consumer = client
        .consumer(topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .unwrap_or_else(|e| panic!("subscribe to {topic}: {e:?}"));
    let producer = client
        .producer(topic)
        .create()
        .await
        .unwrap_or_else(|e| panic!("producer on {topic}: {e:?}"));
    for i in 0..n {
        producer
            .send(
                ProducerMessage::new(format!("m{i}"))
                    .partition_key(format!("k{i}"))
                    .property("via", "http"),
            )
            .await
            .unwrap_or_else(|e| panic!("send {i}: {e:?}"));
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < n {
        let msg = consumer
            .receive_timeout(Duration::from_secs(30))
            .await
            .expect("receive")
            .unwrap_or_else(|| panic!("only {} of {n} messages came", got.len()));
        assert_eq!(
            msg.properties().get("via").map(String::as_str),
            Some("http")
        );
        got.insert(msg.payload_str().unwrap_or_default().to_owned());
        consumer.ack(&msg).await.expect("ack");
    }
    assert_eq!(got.len(), n);
    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
}

#[tokio::test]
async fn an_http_service_url_looks_up_over_rest_and_serves_producers_and_consumers() {
    let b = broker();
    let client = http_client(b.env("PULSAR_HTTP_URL"))
        .build()
        .expect("client");
    let topic = support::unique_topic("http-lookup");
    assert_eq!(
        client
            .partitions(&topic)
            .await
            .expect("partitions over REST"),
        0
    );
    round_trip(&client, &topic, 5).await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn a_partitioned_topic_through_an_http_service_url() {
    let b = broker();
    let topic = b.partitioned_topic("http-partitioned", 3);
    let client = http_client(b.env("PULSAR_HTTP_URL"))
        .build()
        .expect("client");
    assert_eq!(client.partitions(&topic).await.expect("partitions"), 3);
    assert_eq!(
        client.partition_names(&topic).await.expect("names").len(),
        3
    );
    round_trip(&client, &topic, 12).await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn an_https_service_url_uses_the_brokers_tls_ports() {
    let b = broker();
    let client = http_client(b.env("PULSAR_HTTPS_URL"))
        .build()
        .expect("client");
    round_trip(&client, &support::unique_topic("https-lookup"), 3).await;
    client.close().await.expect("close");

    // The binary connection is TLS too: a client that trusts another CA cannot reach the
    // broker, over REST or otherwise.
    let other = support::tls::Pki::new(&["localhost"]);
    let client = PulsarClient::builder(b.env("PULSAR_HTTPS_URL"))
        .tls_trust_certs_file(&other.other_ca)
        .token(b.env("PULSAR_TOKEN"))
        .lookup_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    match client.partitions(&support::unique_topic("https-ca")).await {
        Err(Error::Connection(ConnectionError::Http(e))) => {
            let message = e.to_string();
            assert!(message.contains(b.env("PULSAR_HTTPS_URL")), "{message}");
            assert!(
                message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"),
                "says it is the certificate: {message}"
            );
        }
        other => panic!("expected an HTTP (TLS) error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_token_over_http_is_one_typed_authentication_error() {
    let b = broker();
    let client = PulsarClient::builder(b.env("PULSAR_HTTP_URL"))
        .token("not-a-token")
        .lookup_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let err = client
        .producer(support::unique_topic("http-bad-token"))
        .create()
        .await
        .expect_err("a wrong token");
    let server = err
        .server_error()
        .unwrap_or_else(|| panic!("a broker error, got {err:?}"));
    assert_eq!(server.code, ServerErrorCode::AuthenticationError, "{err}");
    assert!(server.message.contains("HTTP 401"), "{err}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn an_unreachable_http_service_url_fails_with_the_url_after_the_lookup_timeout() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let url = format!("http://127.0.0.1:{port}");
    let client = PulsarClient::builder(&url)
        .lookup_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    match client.partitions(&support::unique_topic("http-dead")).await {
        Err(Error::Connection(ConnectionError::Http(e))) => {
            assert!(e.url().starts_with(&url), "{e}");
            assert!(e.to_string().contains("refused"), "says why: {e}");
        }
        other => panic!("expected an HTTP connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dead_host_of_a_multi_host_http_url_is_skipped() {
    let b = broker();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let live = b.env("PULSAR_HTTP_URL").trim_start_matches("http://");
    let client = http_client(&format!("http://127.0.0.1:{port},{live}"))
        .build()
        .expect("client");
    for _ in 0..3 {
        let topic = support::unique_topic("http-failover");
        assert_eq!(client.partitions(&topic).await.expect("partitions"), 0);
    }
    round_trip(&client, &support::unique_topic("http-failover"), 2).await;
}

#[tokio::test]
async fn a_pattern_consumer_lists_the_namespace_over_rest() {
    let b = broker();
    let client = http_client(b.env("PULSAR_HTTP_URL"))
        .build()
        .expect("client");
    let prefix = support::unique_name("http-pattern");
    let topics: Vec<String> = (0..2)
        .map(|i| format!("persistent://public/default/{prefix}-{i}"))
        .collect();
    // The topics exist before the consumer looks.
    for t in &topics {
        let p = client.producer(t).create().await.expect("producer");
        p.close().await.expect("close");
    }
    let mut consumer = client
        .pattern_consumer(format!("persistent://public/default/{prefix}-.*"))
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("pattern consumer over http");
    for t in &topics {
        let p = client.producer(t).create().await.expect("producer");
        p.send(ProducerMessage::new(t.clone())).await.expect("send");
    }
    let mut got = std::collections::BTreeSet::new();
    while got.len() < topics.len() {
        let msg = consumer
            .receive_timeout(Duration::from_secs(30))
            .await
            .expect("receive")
            .unwrap_or_else(|| panic!("only {got:?} came"));
        got.insert(msg.payload_str().unwrap_or_default().to_owned());
        consumer.ack(&msg).await.expect("ack");
    }
    assert_eq!(got, topics.iter().cloned().collect());
}

#[tokio::test]
async fn the_schema_registry_through_an_http_service_url() {
    let b = broker();
    let client = http_client(b.env("PULSAR_HTTP_URL"))
        .build()
        .expect("client");
    let topic = support::unique_topic("http-schema");
    // The registry answers for topics that exist.
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.close().await.expect("close");
    assert!(client
        .get_schema(&topic, None)
        .await
        .expect("no schema yet")
        .is_none());
    let info = pulsar_wire::SchemaInfo::json(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
    );
    let version = client
        .get_or_create_schema(&topic, &info)
        .await
        .expect("register over the topic's broker");
    let got = client
        .get_schema(&topic, None)
        .await
        .expect("get schema")
        .expect("the schema is there");
    assert_eq!(got.version, version);
    assert_eq!(got.info.kind, pulsar_wire::SchemaType::Json);
}
