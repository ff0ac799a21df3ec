//! Tracing against the broker: the `send`, `receive`, `lookup` and `connect` spans and their
//! fields (captured by a small layer of this file), and W3C trace-context propagation in
//! message properties (`traceparent`, `tracestate`), on and off, with the Java client as the
//! other side. (`TraceContext` parsing and formatting are tested in src/trace.rs.)
//!
//! Each test runs on a current-thread runtime with its capturing subscriber as the thread's
//! default: every task of its client runs on that thread, so it sees its own spans only.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulsar_wire::{
    Consumer, InitialPosition, Message, MessageId, ProducerMessage, PulsarClient, SubscriptionType,
    TraceContext, SPAN_TARGET, TRACEPARENT, TRACESTATE,
};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

// --- a layer that keeps the client's spans ------------------------------------------------------

/// One span of the client: its name and fields as text.
#[derive(Debug, Clone)]
struct Captured {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    fn field(&self, field: &str) -> &str {
        self.get(field)
            .unwrap_or_else(|| panic!("no {field} on {self:?}"))
    }
}

/// The spans of target [`SPAN_TARGET`]: open ones by id, then closed ones in order.
#[derive(Debug, Clone, Default)]
struct Capture {
    open: Arc<Mutex<HashMap<u64, Captured>>>,
    closed: Arc<Mutex<Vec<Captured>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().target() != SPAN_TARGET {
            return;
        }
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let span = Captured {
            name: attrs.metadata().name(),
            fields,
        };
        self.open.lock().expect("lock").insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().expect("lock").get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let span = self.open.lock().expect("lock").remove(&id.into_u64());
        if let Some(span) = span {
            self.closed.lock().expect("lock").push(span);
        }
    }
}

impl Capture {
    /// Sets a new capture as this thread's default subscriber (until the guard drops).
    fn start() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// The closed spans named `name` whose `field` is `value`.
    fn closed(&self, name: &str, field: &str, value: &str) -> Vec<Captured> {
        self.closed
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name == name && s.get(field) == Some(value))
            .cloned()
            .collect()
    }

    /// Every closed span named `name`.
    fn all_closed(&self, name: &str) -> Vec<Captured> {
        self.closed
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
}

// --- helpers ------------------------------------------------------------------------------------

fn client(url: &str, propagate: bool) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(15))
        .propagate_trace_context(propagate)
        .build()
        .expect("client")
}

async fn subscribe(client: &PulsarClient, topic: &str, sub: &str) -> Consumer {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe")
}

async fn receive(consumer: &mut Consumer) -> Message {
    tokio::time::timeout(Duration::from_secs(30), consumer.receive())
        .await
        .expect("a message within 30 s (liveness guard)")
        .expect("receive")
}

/// Receives `n` messages, acknowledging each, by id.
async fn receive_n(consumer: &mut Consumer, n: usize) -> BTreeMap<MessageId, Message> {
    let mut got = BTreeMap::new();
    while got.len() < n {
        let msg = receive(consumer).await;
        consumer.ack(&msg).await.expect("ack");
        got.insert(msg.id(), msg);
    }
    got
}

const USER_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const USER_TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

// --- spans --------------------------------------------------------------------------------------

/// A partitioned topic: one `send` span per message, whose topic, partition and message id are
/// the receipt's; one `receive` span per message with the same id, the subscription and the
/// partition; `lookup` spans for the partitions and a `connect` span to the broker.
#[tokio::test]
async fn send_and_receive_spans_carry_the_topic_partition_and_message_id() {
    const N: usize = 6;
    let (capture, _guard) = Capture::start();
    let broker = support::Broker::partitioned(2);
    let topic = broker.partitioned_topic("tracing-spans", 2);
    let client = client(broker.url(), false);
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), 2);
    let mut consumer = subscribe(&client, &topic, "tracing-sub").await;

    let mut ids = Vec::new();
    for i in 0..N {
        let payload = format!("message {i}").into_bytes();
        ids.push(
            producer
                .send(ProducerMessage::new(payload).partition_key(format!("key-{i}")))
                .await
                .expect("send"),
        );
    }
    let sends = capture.closed("send", "messaging.destination.name", &topic);
    assert_eq!(sends.len(), N, "one send span per message: {sends:#?}");
    for id in &ids {
        let mine: Vec<_> = sends
            .iter()
            .filter(|s| s.get("messaging.message.id") == Some(id.to_string().as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "one send span for {id}: {sends:#?}");
        let span = mine[0];
        assert_eq!(span.field("messaging.system"), "pulsar");
        assert_eq!(span.field("messaging.operation"), "publish");
        assert_eq!(span.field("otel.kind"), "producer");
        assert_eq!(span.field("otel.name"), format!("send {topic}"));
        assert_eq!(
            span.field("messaging.destination.partition.id"),
            id.partition.to_string(),
            "the receipt's partition"
        );
        assert_eq!(span.field("messaging.message.body.size"), "9");
        assert_eq!(span.get("error"), None, "no error: {span:?}");
        assert_eq!(
            span.get("trace_id"),
            None,
            "propagation off: no trace context"
        );
    }
    let partitions: std::collections::BTreeSet<i32> = ids.iter().map(|id| id.partition).collect();
    assert_eq!(
        partitions.len(),
        2,
        "the keys spread over both partitions: {ids:?}"
    );

    let got = receive_n(&mut consumer, N).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), {
        let mut sorted = ids.clone();
        sorted.sort();
        sorted
    });
    let receives = capture.closed("receive", "messaging.destination.name", &topic);
    assert_eq!(
        receives.len(),
        N,
        "one receive span per message: {receives:#?}"
    );
    for id in &ids {
        let mine: Vec<_> = receives
            .iter()
            .filter(|s| s.get("messaging.message.id") == Some(id.to_string().as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "one receive span for {id}: {receives:#?}");
        let span = mine[0];
        assert_eq!(span.field("messaging.operation"), "receive");
        assert_eq!(span.field("otel.kind"), "consumer");
        assert_eq!(
            span.field("messaging.destination.subscription.name"),
            "tracing-sub"
        );
        assert_eq!(
            span.field("messaging.destination.partition.id"),
            id.partition.to_string()
        );
        assert_eq!(span.get("trace_id"), None, "no traceparent, no trace id");
    }

    // The producer and the consumer looked up each partition; the lookups found a broker.
    for p in 0..2 {
        let partition = format!("{topic}-partition-{p}");
        let lookups = capture.closed("lookup", "messaging.destination.name", &partition);
        assert!(
            lookups.len() >= 2,
            "lookups of {partition} by the producer and the consumer: {lookups:#?}"
        );
        for l in &lookups {
            assert!(
                l.field("pulsar.broker").starts_with("pulsar://"),
                "the broker found: {l:?}"
            );
            assert_eq!(l.field("pulsar.lookup.redirects"), "0", "{l:?}");
            assert_eq!(l.get("error"), None, "{l:?}");
        }
    }
    // This client's connection to the broker.
    let connects: Vec<_> = capture
        .all_closed("connect")
        .into_iter()
        .filter(|c| c.field("server.address").contains(broker.addr()))
        .collect();
    assert!(!connects.is_empty(), "a connect span to {}", broker.addr());
    for c in &connects {
        assert_eq!(c.field("outcome"), "connected", "{c:?}");
        assert!(c.get("pulsar.connection.id").is_some(), "{c:?}");
    }

    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}

/// A send that fails has its error on its span.
#[tokio::test]
async fn a_failed_send_records_its_error() {
    let (capture, _guard) = Capture::start();
    let client = client(support::broker().url(), false);
    let topic = support::unique_topic("tracing-failed");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.close().await.expect("close");
    let err = producer
        .send("too late")
        .await
        .expect_err("a closed producer");
    let sends = capture.closed("send", "messaging.destination.name", &topic);
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0].field("error"), err.to_string());
    assert_eq!(sends[0].field("otel.status_code"), "ERROR");
    assert_eq!(sends[0].get("messaging.message.id"), None);
    client.close().await.expect("close client");
}

/// A connection that cannot be made has a `connect` span saying so.
#[tokio::test]
async fn a_failed_connect_records_its_error() {
    let (capture, _guard) = Capture::start();
    // A port nothing listens on: bound, then freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let client = PulsarClient::builder(format!("pulsar://127.0.0.1:{port}"))
        .operation_timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    client
        .producer(support::unique_topic("tracing-noconnect"))
        .create()
        .await
        .expect_err("nothing listens");
    let connects = capture.all_closed("connect");
    assert!(!connects.is_empty(), "a connect span");
    for c in &connects {
        assert_eq!(c.field("outcome"), "failed", "{c:?}");
        assert_eq!(c.field("otel.status_code"), "ERROR", "{c:?}");
        assert!(c.field("server.address").contains(&port.to_string()));
        assert!(c.get("error").is_some(), "{c:?}");
    }
}

// --- trace-context propagation ------------------------------------------------------------------

/// Propagation on: a message without a `traceparent` gets a new one (sampled), which the
/// consumer reads back exactly and its receive span records; a user's `TraceContext` (with its
/// `tracestate`) is written as given; a `traceparent` already in the properties is kept.
#[tokio::test]
async fn with_propagation_on_the_consumer_reads_the_producers_trace_context() {
    let (capture, _guard) = Capture::start();
    let client = client(support::broker().url(), true);
    let topic = support::unique_topic("tracing-propagate");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut consumer = subscribe(&client, &topic, "propagate-sub").await;

    let user = TraceContext::parse(USER_TRACEPARENT)
        .expect("valid")
        .with_state(USER_TRACESTATE);
    let fresh = producer.send("fresh").await.expect("send");
    let given = producer
        .send(ProducerMessage::new("given").trace_context(user.clone()))
        .await
        .expect("send");
    let kept_value = "00-11111111111111111111111111111111-2222222222222222-00";
    let kept = producer
        .send(ProducerMessage::new("kept").property(TRACEPARENT, kept_value))
        .await
        .expect("send");

    let got = receive_n(&mut consumer, 3).await;
    let send_span = |id: MessageId| {
        let spans = capture.closed("send", "messaging.message.id", &id.to_string());
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans[0].clone()
    };
    let receive_span = |id: MessageId| {
        let spans = capture.closed("receive", "messaging.message.id", &id.to_string());
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans[0].clone()
    };

    // A new trace: valid, sampled; the send span has its ids, the receive span too.
    let msg = &got[&fresh];
    let written = msg.properties()[TRACEPARENT].clone();
    let ctx = msg.trace_context().expect("a valid traceparent");
    assert_eq!(ctx.to_string(), written, "read back exactly");
    assert!(ctx.is_sampled());
    assert_eq!(ctx.state(), None);
    assert!(!msg.properties().contains_key(TRACESTATE));
    let sent = send_span(fresh);
    assert_eq!(sent.field("trace_id"), ctx.trace_id_hex().to_string());
    assert_eq!(sent.field("span_id"), ctx.span_id_hex().to_string());
    let received = receive_span(fresh);
    assert_eq!(received.field("trace_id"), ctx.trace_id_hex().to_string());
    assert_eq!(
        received.field("parent_span_id"),
        ctx.span_id_hex().to_string()
    );

    // The user's context, as given.
    let msg = &got[&given];
    assert_eq!(msg.properties()[TRACEPARENT], USER_TRACEPARENT);
    assert_eq!(msg.properties()[TRACESTATE], USER_TRACESTATE);
    assert_eq!(msg.trace_context(), Some(user.clone()));
    assert_eq!(
        receive_span(given).field("trace_id"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        receive_span(given).field("parent_span_id"),
        "b7ad6b7169203331"
    );
    assert_eq!(send_span(given).field("span_id"), "b7ad6b7169203331");

    // A traceparent property already there: kept, not replaced.
    let msg = &got[&kept];
    assert_eq!(msg.properties()[TRACEPARENT], kept_value);
    assert_eq!(
        msg.trace_context().map(|c| c.to_string()),
        Some(kept_value.to_owned())
    );
    assert_eq!(
        receive_span(kept).field("trace_id"),
        "11111111111111111111111111111111"
    );

    // New traces differ from message to message.
    let again = producer.send("again").await.expect("send");
    let msg = receive_n(&mut consumer, 1)
        .await
        .remove(&again)
        .expect("it");
    assert_ne!(msg.trace_context().expect("one").trace_id(), ctx.trace_id());

    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}

/// Propagation off (the default), or turned off on a producer of a client that has it on: no
/// `traceparent` is added; a `TraceContext` set on a message is written all the same; an
/// invalid `traceparent` is no context (and no panic).
#[tokio::test]
async fn with_propagation_off_no_traceparent_is_added() {
    let (capture, _guard) = Capture::start();
    let topic = support::unique_topic("tracing-off");
    let off = client(support::broker().url(), false);
    let on = client(support::broker().url(), true);
    let default_off = off.producer(&topic).create().await.expect("producer");
    let turned_off = on
        .producer(&topic)
        .propagate_trace_context(false)
        .create()
        .await
        .expect("producer");
    let mut consumer = subscribe(&off, &topic, "off-sub").await;

    let a = default_off.send("a").await.expect("send");
    let b = turned_off.send("b").await.expect("send");
    let user = TraceContext::parse(USER_TRACEPARENT).expect("valid");
    let c = default_off
        .send(ProducerMessage::new("c").trace_context(user.clone()))
        .await
        .expect("send");
    let d = default_off
        .send(ProducerMessage::new("d").property(TRACEPARENT, "00-not-a-traceparent-01"))
        .await
        .expect("send");

    let got = receive_n(&mut consumer, 4).await;
    for id in [a, b] {
        let msg = &got[&id];
        assert!(
            !msg.properties().contains_key(TRACEPARENT),
            "{:?}",
            msg.properties()
        );
        assert!(msg.properties().is_empty(), "{:?}", msg.properties());
        assert_eq!(msg.trace_context(), None);
        let spans = capture.closed("receive", "messaging.message.id", &id.to_string());
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].get("trace_id"), None);
    }
    assert_eq!(got[&c].trace_context(), Some(user));
    assert_eq!(got[&d].properties()[TRACEPARENT], "00-not-a-traceparent-01");
    assert_eq!(got[&d].trace_context(), None);
    let spans = capture.closed("receive", "messaging.message.id", &d.to_string());
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].get("trace_id"), None, "an invalid traceparent");

    default_off.close().await.expect("close");
    turned_off.close().await.expect("close");
    consumer.close().await.expect("close");
    off.close().await.expect("close client");
    on.close().await.expect("close client");
}

// --- the Java client ----------------------------------------------------------------------------

/// On Apache Pulsar with the Java client: the Java consumer sees the `traceparent` (and
/// `tracestate`) we wrote unchanged; a `traceparent` a Java producer wrote is our message's
/// trace context.
#[tokio::test]
async fn the_java_client_reads_and_writes_the_same_traceparent() {
    use support::java::{events, text};
    let broker = support::apache();
    let client = client(broker.url(), true);
    let topic = support::unique_topic("tracing-java");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("fresh").await.expect("send");
    let user = TraceContext::parse(USER_TRACEPARENT)
        .expect("valid")
        .with_state(USER_TRACESTATE);
    producer
        .send(ProducerMessage::new("given").trace_context(user))
        .await
        .expect("send");
    let mut consumer = subscribe(&client, &topic, "wire-sub").await;
    let ours = receive_n(&mut consumer, 2).await;
    let ours: Vec<&Message> = ours.values().collect();

    let lines = support::java::run(
        broker.url(),
        "consume",
        json!({"topic": topic, "subscription": "java-sub", "count": 2, "quiet_ms": 1000}),
    )
    .await;
    let messages = events(&lines, "message");
    assert_eq!(messages.len(), 2, "{lines:?}");
    for (line, msg) in messages.iter().zip(&ours) {
        let props = &line["properties"];
        assert_eq!(
            text(props, TRACEPARENT),
            msg.properties()[TRACEPARENT],
            "the Java consumer's traceparent: {line}"
        );
        assert_eq!(
            props[TRACESTATE].as_str(),
            msg.properties().get(TRACESTATE).map(String::as_str),
            "{line}"
        );
    }
    assert_eq!(
        text(&messages[1]["properties"], TRACEPARENT),
        USER_TRACEPARENT
    );
    assert_eq!(
        text(&messages[1]["properties"], TRACESTATE),
        USER_TRACESTATE
    );

    // The other way: a Java producer's traceparent.
    let java_traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let sent = support::java::run(
        broker.url(),
        "produce",
        json!({"topic": topic, "messages": [{
            "payload_hex": "6a617661",
            "properties": {TRACEPARENT: java_traceparent},
        }]}),
    )
    .await;
    assert_eq!(events(&sent, "sent").len(), 1, "{sent:?}");
    let msg = receive(&mut consumer).await;
    assert_eq!(msg.payload_str(), Some("java"));
    assert_eq!(
        msg.trace_context().map(|c| c.to_string()),
        Some(java_traceparent.to_owned())
    );
    consumer.ack(&msg).await.expect("ack");

    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}
