//! `listener_name` on a real Apache Pulsar with two listeners: `advertisedListeners` names an
//! `internal` listener (the broker's own port, `internalListenerName`) and an `external` one on
//! another port, where a relay in this test forwards to the broker. A client asking for
//! `external` is answered with the external address (and one whose service URL is the external
//! address stays on it); an unknown name fails with [`Error::UnknownListener`].
//!
//! One standalone for the binary, started by `scripts/apache-pulsar.sh start --config
//! advertisedListeners=... --config internalListenerName=internal` (run
//! `scripts/apache-pulsar.sh install` once).

mod support;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pulsar_wire::wire::proto::base_command::Type;
use pulsar_wire::{Error, PulsarClient};
use support::tap::Tap;
use support::{ApacheOptions, Broker};

/// A blocking TCP relay on a loopback port to an address known later (the broker's, once it
/// runs), counting the connections it accepted.
struct Relay {
    port: u16,
    backend: Arc<OnceLock<String>>,
    accepted: Arc<AtomicUsize>,
}

impl Relay {
    fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("the relay's address").port();
        let backend: Arc<OnceLock<String>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let (to, count) = (backend.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let Some(addr) = to.get() else { continue };
                let Ok(upstream) = TcpStream::connect(addr) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    continue;
                };
                pipe(client, upstream);
                pipe(u2, c2);
            }
        });
        Relay {
            port,
            backend,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

struct TwoListeners {
    broker: &'static Broker,
    external: Relay,
}

fn setup() -> &'static TwoListeners {
    static SETUP: OnceLock<TwoListeners> = OnceLock::new();
    SETUP.get_or_init(|| {
        let external = Relay::start();
        let listeners = format!(
            "internal:pulsar://127.0.0.1:{{BROKER_PORT}},external:{}",
            external.url()
        );
        let broker = support::apache_with(
            &ApacheOptions::plain()
                .config("advertisedListeners", &listeners)
                .config("internalListenerName", "internal"),
        );
        let _ = external.backend.set(broker.addr().to_string());
        TwoListeners { broker, external }
    })
}

/// One test at a time: the broker shares one answer among concurrent lookups of a namespace
/// bundle whatever listener each asks for (NamespaceService's lookups in progress are keyed by
/// the bundle alone), so a lookup for an unknown listener racing one for `external` may get
/// the `external` answer.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn client(url: &str, listener: Option<&str>) -> PulsarClient {
    let mut b = PulsarClient::builder(url).operation_timeout(Duration::from_secs(30));
    if let Some(name) = listener {
        b = b.listener_name(name);
    }
    b.build().expect("client")
}

/// The broker URLs of the LOOKUP answers the tap saw.
fn answered_urls(tap: &Tap) -> Vec<String> {
    tap.seen(false, Type::LookupResponse)
        .into_iter()
        .filter_map(|s| s.command.lookup_topic_response)
        .filter_map(|r| r.broker_service_url)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_external_listener_is_answered_with_the_external_address() {
    let _serial = SERIAL.lock().await;
    let s = setup();
    // What the broker answers, seen by a tap between the client and the broker's own port.
    let tap = Tap::start(s.broker.addr()).await;
    let c = client(tap.url(), Some("external"));
    let topic = support::unique_topic("listener");
    let producer = c.producer(&topic).create().await.expect("producer");
    producer.send("via external").await.expect("send");
    let urls = answered_urls(&tap);
    assert!(!urls.is_empty(), "a LOOKUP answer");
    assert!(
        urls.iter().all(|u| *u == s.external.url()),
        "answered {urls:?}, want {}",
        s.external.url()
    );
    c.close().await.expect("close");

    // A standalone answers every LOOKUP with proxy_through_service_url (TopicLookupBase:
    // isRunningStandalone()): the client, like the Java client, then reaches the named broker
    // through its service URL rather than the answered address.
    let proxied = tap
        .seen(false, Type::LookupResponse)
        .into_iter()
        .filter_map(|s| s.command.lookup_topic_response)
        .all(|r| r.proxy_through_service_url == Some(true));
    assert!(proxied, "the standalone proxies through the service URL");

    // An external client: its service URL is the external address, and every connection it
    // opens (the lookup's and the producer's) lands on the external port.
    let before = s.external.accepted();
    let c = client(&s.external.url(), Some("external"));
    let producer = c.producer(&topic).create().await.expect("producer");
    producer.send("landed on external").await.expect("send");
    let landed = s.external.accepted() - before;
    assert!(landed >= 1, "no connection reached the external port");
    assert!(
        c.open_connections() <= landed,
        "{} connections open, {landed} through the external port",
        c.open_connections()
    );
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_listener_name_the_internal_address_is_answered() {
    let _serial = SERIAL.lock().await;
    let s = setup();
    let tap = Tap::start(s.broker.addr()).await;
    let c = client(tap.url(), None);
    let producer = c
        .producer(support::unique_topic("listener-internal"))
        .create()
        .await
        .expect("producer");
    producer.send("internal").await.expect("send");
    let urls = answered_urls(&tap);
    assert!(!urls.is_empty(), "a LOOKUP answer");
    assert!(
        urls.iter().all(|u| *u == s.broker.url()),
        "answered {urls:?}, want {}",
        s.broker.url()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_listener_fails_with_a_typed_error_naming_it() {
    let _serial = SERIAL.lock().await;
    let s = setup();
    let c = client(s.broker.url(), Some("nowhere"));
    let started = std::time::Instant::now();
    let err = c
        .producer(support::unique_topic("listener-unknown"))
        .create()
        .await
        .expect_err("no such listener");
    match &err {
        Error::UnknownListener { listener, .. } => assert_eq!(listener, "nowhere"),
        other => panic!("expected UnknownListener, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("\"nowhere\"") && text.contains("advertisedListeners"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried until the 30 s timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_lookup_with_the_external_listener_connects_to_the_external_address() {
    let _serial = SERIAL.lock().await;
    let s = setup();
    let http = s.broker.env("PULSAR_HTTP_URL");
    // The REST answer names the listener's address and has no proxy-through flag: the binary
    // connections go to the external port itself.
    let before = s.external.accepted();
    let c = client(http, Some("external"));
    let producer = c
        .producer(support::unique_topic("listener-http"))
        .create()
        .await
        .expect("producer");
    producer
        .send("over http, then external")
        .await
        .expect("send");
    let landed = s.external.accepted() - before;
    assert!(landed >= 1, "no connection reached the external port");
    assert_eq!(
        c.open_connections(),
        landed,
        "every binary connection went to the external address"
    );
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_lookup_of_an_unknown_listener_fails_with_a_typed_error_naming_it() {
    let _serial = SERIAL.lock().await;
    let s = setup();
    let c = client(s.broker.env("PULSAR_HTTP_URL"), Some("nowhere"));
    let err = c
        .producer(support::unique_topic("listener-http-unknown"))
        .create()
        .await
        .expect_err("no such listener");
    match &err {
        Error::UnknownListener { listener, .. } => assert_eq!(listener, "nowhere"),
        other => panic!("expected UnknownListener, got {other:?}"),
    }
    assert!(err.to_string().contains("nowhere"), "{err}");
}
