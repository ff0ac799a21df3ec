//! Subscription options against the broker: Key_Shared sticky hash ranges (two of our
//! consumers, and ours beside the Java client's), subscription properties, non-durable
//! subscriptions and their start position (inclusive or not), `reconsume_later` with custom
//! properties, and a forced unsubscribe. Tests named `apache_only_*` run on Apache Pulsar
//! whatever the default broker is (they read the admin API, or drive the Java client).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use pulsar_wire::{
    key_shared_slot, Consumer, DeadLetterPolicy, Error, InitialPosition, KeySharedPolicy,
    KeySharedPolicyError, Message, MessageId, ProducerMessage, PulsarClient, Range,
    ServerErrorCode, SubscriptionMode, SubscriptionType, DELAY_TIME, REAL_TOPIC, RECONSUME_TIMES,
};
use serde_json::{json, Value};
use support::java::Peer;

/// How long a receive may wait for a message that must come (a liveness bound).
const GUARD: Duration = Duration::from_secs(20);
/// How long to wait for messages that must not come.
const QUIET: Duration = Duration::from_secs(2);

fn client(url: &str) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

async fn receive(c: &mut Consumer, what: &str) -> Message {
    tokio::time::timeout(GUARD, c.receive())
        .await
        .unwrap_or_else(|_| panic!("{what}: no message within {GUARD:?}"))
        .unwrap_or_else(|e| panic!("{what}: receive failed: {e}"))
}

async fn assert_quiet(c: &mut Consumer, what: &str) {
    let more = c.receive_timeout(QUIET).await.expect("receive");
    assert!(
        more.is_none(),
        "{what}: an unexpected message came: {:?}",
        more.map(|m| (m.id(), m.payload_str().map(str::to_owned)))
    );
}

/// The key the broker hashes: the ordering key if there is one, else the partition key.
fn sticky_key(m: &Message) -> Vec<u8> {
    match m.ordering_key() {
        Some(k) => k.to_vec(),
        None => m.partition_key().unwrap_or_default().as_bytes().to_vec(),
    }
}

const LOW: Range = Range::of(0, 32767);
const HIGH: Range = Range::of(32768, 65535);

/// `n` keyed messages, batching off (the broker hashes an entry's key): every third one has an
/// ordering key unlike its partition key, which decides. Returns (payload, slot) of each.
async fn send_keyed(client: &PulsarClient, topic: &str, n: usize) -> Vec<(String, u32)> {
    let producer = client
        .producer(topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut sent = Vec::new();
    for i in 0..n {
        let payload = format!("m{i}");
        let mut msg =
            ProducerMessage::new(payload.clone().into_bytes()).partition_key(format!("key-{i}"));
        let slot = if i % 3 == 0 {
            let ordering = format!("order-{}", i * 7);
            msg = msg.ordering_key(ordering.clone().into_bytes());
            key_shared_slot(ordering.as_bytes())
        } else {
            key_shared_slot(format!("key-{i}").as_bytes())
        };
        producer.send(msg).await.expect("send");
        sent.push((payload, slot));
    }
    sent
}

async fn sticky_consumer(
    client: &PulsarClient,
    topic: &str,
    sub: &str,
    ranges: Vec<Range>,
) -> Consumer {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::KeyShared)
        .initial_position(InitialPosition::Earliest)
        .key_shared_policy(KeySharedPolicy::sticky(ranges).expect("valid ranges"))
        .subscribe()
        .await
        .expect("subscribe sticky")
}

/// Receives `count` messages, acknowledging each; checks each one's key is in `range`.
async fn take_range(c: &mut Consumer, count: usize, range: Range, what: &str) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..count {
        let m = receive(c, what).await;
        let slot = key_shared_slot(&sticky_key(&m));
        assert!(
            range.contains(slot),
            "{what}: {:?} has slot {slot}, outside {range}",
            m.payload_str()
        );
        got.push(m.payload_str().expect("text").to_owned());
        c.ack(&m).await.expect("ack");
    }
    assert_quiet(c, what).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_ranges_give_each_consumer_exactly_the_keys_of_its_range() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("sticky");
    let mut low = sticky_consumer(&client, &topic, "ks", vec![LOW]).await;
    let mut high = sticky_consumer(&client, &topic, "ks", vec![HIGH]).await;
    let sent = send_keyed(&client, &topic, 120).await;
    let in_low = sent.iter().filter(|(_, s)| LOW.contains(*s)).count();
    assert!(
        in_low > 0 && in_low < sent.len(),
        "both ranges get keys: {in_low}"
    );
    let (got_low, got_high) = tokio::join!(
        take_range(&mut low, in_low, LOW, "low"),
        take_range(&mut high, sent.len() - in_low, HIGH, "high"),
    );
    let all: Vec<String> = got_low.into_iter().chain(got_high).collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a message came twice: {all:?}");
    let expected: BTreeSet<&String> = sent.iter().map(|(p, _)| p).collect();
    assert_eq!(unique, expected, "every message exactly once");
}

/// pulsar-lite accepts overlapping ranges of different consumers; Apache's
/// `HashRangeExclusiveStickyKeyConsumerSelector` refuses them.
#[tokio::test]
async fn apache_only_a_range_overlapping_another_consumers_is_refused() {
    let client = client(support::apache().url());
    let topic = support::unique_topic("sticky-overlap");
    let _low = sticky_consumer(&client, &topic, "ks", vec![LOW]).await;
    let overlapping = client
        .consumer(&topic)
        .subscription("ks")
        .subscription_type(SubscriptionType::KeyShared)
        .key_shared_policy(KeySharedPolicy::Sticky(vec![Range::of(100, 40000)]))
        .subscribe()
        .await;
    match overlapping {
        Err(Error::Server { error, .. }) => {
            assert_eq!(error.code, ServerErrorCode::ConsumerAssignError, "{error}")
        }
        other => panic!("an overlapping sticky range: {other:?}"),
    }
}

#[tokio::test]
async fn bad_key_shared_options_are_refused_before_anything_is_sent() {
    // Nothing listens here: an error other than the policy's would be a connection error.
    let client = client("pulsar://127.0.0.1:1");
    let bad = [
        (
            vec![Range::of(0, 10), Range::of(5, 20)],
            KeySharedPolicyError::Overlap(Range::of(0, 10), Range::of(5, 20)),
        ),
        (
            vec![Range::of(9, 3)],
            KeySharedPolicyError::StartAfterEnd(Range::of(9, 3)),
        ),
        (
            vec![Range::of(60000, 70000)],
            KeySharedPolicyError::OutOfBounds(Range::of(60000, 70000)),
        ),
        (vec![], KeySharedPolicyError::EmptyRanges),
    ];
    for (ranges, want) in bad {
        let r = client
            .consumer("persistent://public/default/never")
            .subscription("s")
            .subscription_type(SubscriptionType::KeyShared)
            .key_shared_policy(KeySharedPolicy::Sticky(ranges))
            .subscribe()
            .await;
        match r {
            Err(Error::InvalidKeySharedPolicy(e)) => assert_eq!(e, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    let r = client
        .consumer("persistent://public/default/never")
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .key_shared_policy(KeySharedPolicy::AutoSplit)
        .subscribe()
        .await;
    assert!(
        matches!(r, Err(Error::InvalidConfig(_))),
        "a Key_Shared policy on Shared: {r:?}"
    );
    let r = client
        .consumer("persistent://public/default/never")
        .subscription("s")
        .start_message_id(MessageId::EARLIEST)
        .subscribe()
        .await;
    assert!(
        matches!(r, Err(Error::InvalidConfig(_))),
        "a start id on a durable subscription: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_only_java_and_wire_sticky_consumers_share_one_subscription() {
    let broker = support::apache();
    let client = client(broker.url());
    let topic = support::unique_topic("sticky-java");
    let mut ours = sticky_consumer(&client, &topic, "ks", vec![LOW]).await;
    let sent = send_keyed(&client, &topic, 90).await;
    let in_low = sent.iter().filter(|(_, s)| LOW.contains(*s)).count();
    let in_high = sent.len() - in_low;
    assert!(in_low > 0 && in_high > 0, "both ranges get keys: {in_low}");
    let java = Peer::start(
        broker.url(),
        "consume",
        json!({
            "topic": topic,
            "subscription": "ks",
            "subscription_type": "Key_Shared",
            "sticky_ranges": [[HIGH.start, HIGH.end]],
            "count": in_high,
            "quiet_ms": QUIET.as_millis() as u64,
        }),
    )
    .await;
    let got_ours = take_range(&mut ours, in_low, LOW, "ours").await;
    let lines = java.finish().await;
    let got_java: Vec<String> = lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| {
            let payload = hex_text(&l["payload_hex"]);
            let key = l["ordering_key_hex"]
                .as_str()
                .map(hex_bytes)
                .unwrap_or_else(|| l["key"].as_str().unwrap_or_default().as_bytes().to_vec());
            let slot = key_shared_slot(&key);
            assert!(HIGH.contains(slot), "java got {payload} of slot {slot}");
            payload
        })
        .collect();
    let done = lines
        .iter()
        .find(|l| l["event"] == "done")
        .expect("java done");
    assert_eq!(done["extras"], 0, "java got more than its range: {done}");
    let all: Vec<&String> = got_ours.iter().chain(&got_java).collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "nothing twice: {all:?}");
    let expected: BTreeSet<&String> = sent.iter().map(|(p, _)| p).collect();
    assert_eq!(unique, expected, "every message once, to ours or Java's");
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn hex_text(v: &Value) -> String {
    String::from_utf8(hex_bytes(v.as_str().expect("hex string"))).expect("utf-8")
}

/// The topic's stats from the admin API.
fn topic_stats(broker: &support::Broker, topic: &str) -> Value {
    let path = format!("/admin/v2/{}/stats", support::apache::topic_path(topic));
    let (status, body) = broker.apache().admin("GET", &path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("stats JSON")
}

#[tokio::test]
async fn apache_only_subscription_properties_are_in_the_topic_stats() {
    let broker = support::apache();
    let client = client(broker.url());
    let topic = support::unique_topic("subprops");
    let props = HashMap::from([
        ("team".to_owned(), "billing".to_owned()),
        ("tier".to_owned(), "gold".to_owned()),
    ]);
    let consumer = client
        .consumer(&topic)
        .subscription("with-props")
        .subscription_properties(props)
        .replicate_subscription_state(false)
        .subscribe()
        .await
        .expect("subscribe");
    let stats = topic_stats(broker, &topic);
    let got = &stats["subscriptions"]["with-props"]["subscriptionProperties"];
    assert_eq!(got, &json!({"team": "billing", "tier": "gold"}), "{stats}");
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn apache_only_a_non_durable_subscription_is_gone_after_close() {
    let broker = support::apache();
    let client = client(broker.url());
    let topic = support::unique_topic("nondurable");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("before").await.expect("send");
    let mut c = client
        .consumer(&topic)
        .subscription("ephemeral")
        .subscription_mode(SubscriptionMode::NonDurable)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let m = receive(&mut c, "non-durable").await;
    assert_eq!(m.payload_str(), Some("before"));
    let stats = topic_stats(broker, &topic);
    let sub = &stats["subscriptions"]["ephemeral"];
    assert_eq!(sub["isDurable"], false, "{stats}");
    c.close().await.expect("close");
    // The broker removes it once the cursor is closed, just after answering the close: wait
    // for that (a liveness bound, not a timing assertion).
    let mut stats = topic_stats(broker, &topic);
    for _ in 0..100 {
        if stats["subscriptions"].get("ephemeral").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = topic_stats(broker, &topic);
    }
    assert!(
        stats["subscriptions"].get("ephemeral").is_none(),
        "the non-durable subscription outlived its consumer: {stats}"
    );
}

/// Sends `n` messages one by one (batching off); their ids.
async fn send_numbered(client: &PulsarClient, topic: &str, n: usize) -> Vec<MessageId> {
    let producer = client
        .producer(topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(producer.send(format!("n{i}")).await.expect("send"));
    }
    ids
}

async fn non_durable_from(
    client: &PulsarClient,
    topic: &str,
    start: MessageId,
    inclusive: bool,
) -> Consumer {
    client
        .consumer(topic)
        .subscription(support::unique_name("nd"))
        .subscription_mode(SubscriptionMode::NonDurable)
        .start_message_id(start)
        .start_message_id_inclusive(inclusive)
        .subscribe()
        .await
        .expect("subscribe non-durable")
}

#[tokio::test]
async fn a_non_durable_consumer_starts_at_its_start_id_inclusive_or_not() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("start-incl");
    let ids = send_numbered(&client, &topic, 5).await;

    let mut inclusive = non_durable_from(&client, &topic, ids[2], true).await;
    let first = receive(&mut inclusive, "inclusive").await;
    assert_eq!(
        first.payload_str(),
        Some("n2"),
        "inclusive starts at the id"
    );
    assert_eq!(
        receive(&mut inclusive, "inclusive").await.payload_str(),
        Some("n3")
    );

    let mut exclusive = non_durable_from(&client, &topic, ids[2], false).await;
    let first = receive(&mut exclusive, "exclusive").await;
    assert_eq!(
        first.payload_str(),
        Some("n3"),
        "exclusive starts after the id"
    );

    let mut last = non_durable_from(&client, &topic, MessageId::LATEST, true).await;
    let first = receive(&mut last, "latest inclusive").await;
    assert_eq!(
        first.payload_str(),
        Some("n4"),
        "latest inclusive: the last message"
    );
    assert_quiet(&mut last, "latest inclusive").await;

    let mut earliest = client
        .consumer(&topic)
        .subscription(support::unique_name("nd"))
        .subscription_mode(SubscriptionMode::NonDurable)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let first = receive(&mut earliest, "earliest").await;
    assert_eq!(
        first.payload_str(),
        Some("n0"),
        "no start id: the initial position"
    );
}

#[tokio::test]
async fn reconsume_later_with_properties_adds_them_to_the_retried_message() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("retry-props");
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .enable_retry(true)
        .dead_letter_policy(DeadLetterPolicy::new(3))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer
        .send(ProducerMessage::new("again").property("own", "kept"))
        .await
        .expect("send");
    let m = receive(&mut c, "first").await;
    let custom = HashMap::from([
        ("reason".to_owned(), "busy".to_owned()),
        ("own".to_owned(), "replaced".to_owned()),
    ]);
    c.reconsume_later_with_properties(&m, Duration::from_millis(50), custom)
        .await
        .expect("reconsume later");
    let again = receive(&mut c, "retried").await;
    assert_eq!(again.payload_str(), Some("again"));
    assert!(again.topic().ends_with("-s-RETRY"), "{}", again.topic());
    let p = again.properties();
    assert_eq!(p.get("reason").map(String::as_str), Some("busy"), "{p:?}");
    assert_eq!(p.get("own").map(String::as_str), Some("replaced"), "{p:?}");
    assert_eq!(
        p.get(RECONSUME_TIMES).map(String::as_str),
        Some("1"),
        "{p:?}"
    );
    assert_eq!(p.get(DELAY_TIME).map(String::as_str), Some("50"), "{p:?}");
    assert_eq!(p.get(REAL_TOPIC), Some(&topic), "{p:?}");
    c.ack(&again).await.expect("ack");
}

async fn shared(client: &PulsarClient, topic: &str, sub: &str) -> Consumer {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .subscribe()
        .await
        .expect("subscribe shared")
}

/// pulsar-lite lets a plain unsubscribe through with other consumers connected; Apache's
/// `PersistentSubscription.doUnsubscribe` refuses it unless forced.
#[tokio::test]
async fn apache_only_unsubscribe_with_others_connected_needs_force() {
    let broker = support::apache();
    let client = client(broker.url());
    let topic = support::unique_topic("unsub-force");
    let a = shared(&client, &topic, "busy").await;
    let b = shared(&client, &topic, "busy").await;
    let plain = a.unsubscribe().await;
    match plain {
        Err(Error::Server { error, .. }) => assert_eq!(
            error.code,
            ServerErrorCode::MetadataError,
            "the broker's refusal: {error}"
        ),
        other => panic!("a plain unsubscribe with another consumer connected: {other:?}"),
    }
    let c = shared(&client, &topic, "busy").await;
    b.unsubscribe_force()
        .await
        .expect("a forced unsubscribe with another consumer connected");
    drop(c);
}

#[tokio::test]
async fn last_message_ids_are_per_partition_and_seek_topic_moves_one_topic() {
    let broker = support::broker();
    let client = client(broker.url());
    let first = support::unique_topic("last-a");
    let second = support::unique_topic("last-b");
    let a = send_numbered(&client, &first, 3).await;
    let b = send_numbered(&client, &second, 2).await;
    let mut c = client
        .consumer(&first)
        .topic(&second)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let last = c.get_last_message_ids().await.expect("last ids");
    let of = |t: &str| {
        last.iter()
            .find(|(topic, _)| topic == t)
            .map(|(_, id)| (id.ledger_id, id.entry_id))
    };
    assert_eq!(last.len(), 2, "{last:?}");
    assert_eq!(
        of(&first),
        Some((a[2].ledger_id, a[2].entry_id)),
        "{last:?}"
    );
    assert_eq!(
        of(&second),
        Some((b[1].ledger_id, b[1].entry_id)),
        "{last:?}"
    );
    // Read everything, then move only the first topic back to its second message.
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
        let m = receive(&mut c, "all").await;
        seen.insert((
            m.topic().to_owned(),
            m.payload_str().expect("text").to_owned(),
        ));
        c.ack(&m).await.expect("ack");
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    c.seek_topic(&first, a[1]).await.expect("seek one topic");
    let mut again = BTreeSet::new();
    for _ in 0..2 {
        let m = receive(&mut c, "after the seek").await;
        assert_eq!(m.topic(), first, "only the first topic moved");
        again.insert(m.payload_str().expect("text").to_owned());
    }
    assert_eq!(
        again,
        BTreeSet::from(["n1".to_owned(), "n2".to_owned()]),
        "the first topic again from its second message"
    );
    assert_quiet(&mut c, "after the seek").await;
    // An id names no topic: a consumer of several topics refuses to move all to it.
    let ambiguous = c.seek(a[1]).await;
    assert!(
        matches!(ambiguous, Err(Error::NotAllowed(_))),
        "{ambiguous:?}"
    );
    let unknown = c
        .seek_topic(
            "persistent://public/default/not-consumed",
            MessageId::EARLIEST,
        )
        .await;
    assert!(matches!(unknown, Err(Error::NotAllowed(_))), "{unknown:?}");
}

#[tokio::test]
async fn a_reader_is_a_stream_of_messages() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("reader-stream");
    send_numbered(&client, &topic, 3).await;
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(GUARD, futures_util::StreamExt::next(&mut reader))
            .await
            .expect("a message in time")
            .expect("the stream goes on")
            .expect("a message");
        got.push(m.payload_str().expect("text").to_owned());
    }
    assert_eq!(got, ["n0", "n1", "n2"]);
}
