//! How the client reaches brokers, against the scripted peer (`support::peer`): several
//! connections per broker, idle connections let go, a multi-host service URL with a dead host,
//! and routing through an SNI proxy. No broker can show these on one machine.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsar_wire::{ProducerMessage, ProxyProtocol, PulsarClient};
use support::peer::{self, Lookup, Peer, Type};
use support::tls::{Pki, TlsProxy};

const TOPIC: &str = "persistent://public/default/connectivity";

/// A liveness guard for operations of the client.
async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(peer::WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", peer::WAIT))
}

#[tokio::test]
async fn several_connections_per_broker_are_opened_and_shared() {
    let mut peer = Peer::start().await;
    let client = PulsarClient::builder(peer.url())
        .connections_per_broker(3)
        .build()
        .expect("client");
    let mut producers = Vec::new();
    for i in 0..6 {
        let p = guard("producer", client.producer(format!("{TOPIC}-{i}")).create())
            .await
            .expect("producer");
        producers.push(p);
    }
    let mut on = std::collections::HashSet::new();
    for _ in 0..6 {
        let (conn, _) = peer.expect_on(Type::Producer).await;
        on.insert(conn);
    }
    assert!(on.len() > 1, "the producers share the connections: {on:?}");
    assert_eq!(peer.connections(), 3, "never more than 3 connections");
    assert_eq!(client.open_connections(), 3);
    for p in &producers {
        guard("send", p.send(ProducerMessage::new("x")))
            .await
            .expect("send on a pooled connection");
    }
}

#[tokio::test]
async fn connections_per_broker_must_be_at_least_one() {
    let err = PulsarClient::builder("pulsar://127.0.0.1:6650")
        .connections_per_broker(0)
        .build()
        .expect_err("0 connections");
    assert!(err.to_string().contains("connections_per_broker"), "{err}");
}

#[tokio::test]
async fn an_unused_connection_is_closed_after_the_max_idle_time_and_a_used_one_is_kept() {
    let mut peer = Peer::start().await;
    let client = PulsarClient::builder(peer.url())
        .connection_max_idle(Duration::from_millis(300))
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    assert_eq!(client.open_connections(), 1);
    let closed = peer.expect_closed().await;
    assert_eq!(closed, 0, "the lookup's connection, unused, is let go");
    assert_eq!(client.open_connections(), 0);

    // A producer keeps its connection in use: it stays open past the max idle time.
    let producer = guard("producer", client.producer(TOPIC).create())
        .await
        .expect("a producer on a new connection");
    let before = peer.connections();
    assert_eq!(before, 2, "a new connection replaced the idle one");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        client.open_connections(),
        1,
        "the producer's connection stays"
    );
    guard("send", producer.send(ProducerMessage::new("still here")))
        .await
        .expect("send after the idle time");
    assert_eq!(peer.connections(), before, "no reconnection was needed");
    // Once the producer is closed, the connection is unused and goes too.
    producer.close().await.expect("close");
    peer.expect_closed().await;
}

#[tokio::test]
async fn a_zero_max_idle_keeps_unused_connections() {
    let peer = Peer::start().await;
    let client = PulsarClient::builder(peer.url())
        .connection_max_idle(Duration::ZERO)
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.open_connections(), 1);
}

/// A host that accepts TCP connections and never answers: each attempt on it costs a connect
/// timeout. Counts the attempts.
async fn silent_host() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    (addr.to_string(), accepted, task)
}

#[tokio::test]
async fn a_dead_host_of_the_service_url_is_set_aside_and_the_next_one_used() {
    let peer = Peer::start().await;
    let (silent, attempts, task) = silent_host().await;
    let live = peer.url().trim_start_matches("pulsar://").to_owned();
    let client = PulsarClient::builder(format!("pulsar://{silent},{live}"))
        .connect_timeout(Duration::from_millis(300))
        // No pooled connection may hide the host choice: each lookup opens one.
        .connection_max_idle(Duration::from_millis(50))
        .build()
        .expect("client");
    for i in 0..5 {
        guard("partitions", client.partitions(&format!("{TOPIC}-{i}")))
            .await
            .expect("answered by the live host");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "the silent host is tried once, then set aside"
    );
    task.abort();
}

#[tokio::test]
async fn without_quarantine_every_host_is_tried_in_turn() {
    let peer = Peer::start().await;
    let (silent, attempts, task) = silent_host().await;
    let live = peer.url().trim_start_matches("pulsar://").to_owned();
    let client = PulsarClient::builder(format!("pulsar://{silent},{live}"))
        .connect_timeout(Duration::from_millis(200))
        .connection_max_idle(Duration::from_millis(50))
        .service_url_quarantine(Duration::ZERO, Duration::ZERO)
        .build()
        .expect("client");
    for i in 0..4 {
        guard("partitions", client.partitions(&format!("{TOPIC}-{i}")))
            .await
            .expect("answered by the live host");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        attempts.load(Ordering::SeqCst) >= 2,
        "the silent host keeps being tried: {}",
        attempts.load(Ordering::SeqCst)
    );
    task.abort();
}

#[tokio::test]
async fn through_an_sni_proxy_every_connection_names_its_broker_in_the_tls_handshake() {
    let mut peer = Peer::start().await;
    let pki = Pki::new(&["service.example", "broker-1.example"]);
    let backend = peer.url().trim_start_matches("pulsar://").to_owned();
    let proxy = TlsProxy::start(&pki, false, &backend).await;
    peer.set_lookup(Lookup::ConnectTls(
        "pulsar+ssl://broker-1.example:6651".into(),
    ));
    // Neither name resolves: every TCP connection goes to the proxy.
    let client = PulsarClient::builder("pulsar+ssl://service.example:6651")
        .tls_trust_certs_file(&pki.ca)
        .proxy_service_url(
            format!("pulsar+ssl://127.0.0.1:{}", proxy.port()),
            ProxyProtocol::Sni,
        )
        .build()
        .expect("client");
    let producer = guard("producer", client.producer(TOPIC).create())
        .await
        .expect("a producer through the SNI proxy");
    guard("send", producer.send(ProducerMessage::new("via sni")))
        .await
        .expect("send through the SNI proxy");
    assert_eq!(
        proxy.server_names(),
        ["service.example", "broker-1.example"],
        "the lookup's connection names the service host, the producer's the broker"
    );
    let connects = peer.received(Type::Connect);
    assert_eq!(connects.len(), 2);
    for c in connects {
        let connect = c.command.connect.expect("connect");
        assert_eq!(
            connect.proxy_to_broker_url, None,
            "an SNI proxy routes on the TLS name, not on CONNECT"
        );
    }
    let _ = peer.expect(Type::Send).await;
}

#[tokio::test]
async fn an_sni_proxy_needs_tls() {
    let err = PulsarClient::builder("pulsar://broker:6650")
        .proxy_service_url("pulsar+ssl://proxy:4443", ProxyProtocol::Sni)
        .build()
        .expect_err("no TLS");
    assert!(err.to_string().contains("TLS"), "{err}");
}
