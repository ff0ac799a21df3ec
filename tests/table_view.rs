//! Compacted reads and table views.
//!
//! On Apache Pulsar (compaction is triggered through the admin API, see
//! `support::apache::Apache::compact`): a compacted reader sees the last value of each key and
//! no tombstoned key while a plain reader sees everything; a table view holds the last value
//! per key with tombstones applied, on compacted and non-compacted topics, partitioned or not;
//! updates published while it runs reach its listeners once each, in order per key.
//!
//! On pulsar-lite (which has no compaction): a table view of a plain topic still gives the
//! last value per key, tombstones applied, and counts values its schema cannot decode.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use pulsar_wire::schema::StringSchema;
use pulsar_wire::{MessageId, ProducerMessage, PulsarClient, TableView};
use tokio::sync::mpsc;

/// How long anything may take before a test fails saying what it waited for.
const WAIT: Duration = Duration::from_secs(60);

/// One message: a key and its value, or a tombstone (`None`, an empty payload).
type Op = (&'static str, Option<&'static str>);

fn apache() -> &'static support::Broker {
    support::apache()
}

fn client(broker: &support::Broker) -> PulsarClient {
    PulsarClient::builder(broker.url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

/// Publishes the ops in order (unbatched, so that every message is its own entry).
async fn publish(client: &PulsarClient, topic: &str, ops: &[Op]) {
    let producer = within("producer", client.producer(topic).create())
        .await
        .expect("producer");
    for (key, value) in ops {
        let msg = ProducerMessage::new(value.unwrap_or("").as_bytes().to_vec()).partition_key(*key);
        within("send", producer.send(msg)).await.expect("send");
    }
    producer.close().await.expect("close producer");
}

/// The last value of each key after the ops, tombstones applied.
fn expected(ops: &[Op]) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for (key, value) in ops {
        match value {
            Some(v) => table.insert(key.to_string(), v.to_string()),
            None => table.remove(*key),
        };
    }
    table
}

/// A table view's content as plain strings.
fn content(view: &TableView<StringSchema>) -> BTreeMap<String, String> {
    view.iter()
        .map(|(k, v)| (k, v.as_str().to_owned()))
        .collect()
}

/// Several values per key and tombstones; the last message is a tombstone, and one key comes
/// back after its tombstone.
const HISTORY: &[Op] = &[
    ("a", Some("a1")),
    ("b", Some("b1")),
    ("c", Some("c1")),
    ("a", Some("a2")),
    ("d", Some("d1")),
    ("b", None),
    ("c", Some("c2")),
    ("e", Some("e1")),
    ("a", Some("a3")),
    ("c", None),
    ("c", Some("c3")),
    ("e", Some("e2")),
    ("d", None),
];

async fn compact(topic: &str) {
    let topic = topic.to_owned();
    let broker = apache();
    tokio::task::spawn_blocking(move || broker.apache().compact(&topic))
        .await
        .expect("compaction helper");
}

/// Reads a reader until it has nothing more: (key, payload) of each message.
async fn read_all(reader: &mut pulsar_wire::Reader) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while within("has_message_available", reader.has_message_available())
        .await
        .expect("has_message_available")
    {
        let msg = within("next", reader.next()).await.expect("next");
        seen.push((
            msg.partition_key().unwrap_or_default().to_owned(),
            msg.payload_str().unwrap_or_default().to_owned(),
        ));
    }
    seen
}

#[tokio::test]
async fn a_compacted_reader_sees_the_last_value_per_key_and_a_plain_one_everything() {
    let client = client(apache());
    let topic = support::unique_topic("compacted-reader");
    publish(&client, &topic, HISTORY).await;
    compact(&topic).await;

    let mut compacted = within(
        "compacted reader",
        client
            .reader(&topic)
            .start_message_id(MessageId::EARLIEST)
            .read_compacted(true)
            .create(),
    )
    .await
    .expect("compacted reader");
    let seen = read_all(&mut compacted).await;
    let want = expected(HISTORY);
    let got: BTreeMap<String, String> = seen.iter().cloned().collect();
    assert_eq!(got, want, "the compacted view: {seen:?}");
    assert_eq!(seen.len(), want.len(), "one message per key: {seen:?}");
    assert!(
        seen.iter().all(|(_, v)| !v.is_empty()),
        "no tombstone in the compacted view: {seen:?}"
    );
    compacted.close().await.expect("close");

    let mut plain = within(
        "plain reader",
        client
            .reader(&topic)
            .start_message_id(MessageId::EARLIEST)
            .create(),
    )
    .await
    .expect("plain reader");
    let everything = read_all(&mut plain).await;
    let published: Vec<(String, String)> = HISTORY
        .iter()
        .map(|(k, v)| (k.to_string(), v.unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        everything, published,
        "a plain reader reads the whole history"
    );
    plain.close().await.expect("close");
}

#[tokio::test]
async fn a_table_view_holds_the_last_value_per_key_with_tombstones_applied() {
    let client = client(apache());
    let topic = support::unique_topic("table-view");
    publish(&client, &topic, HISTORY).await;
    // Not compacted yet: the view reads the whole history.
    let plain = within(
        "table view",
        client.table_view(&topic).schema(StringSchema).create(),
    )
    .await
    .expect("table view of a plain topic");
    assert_eq!(content(&plain), expected(HISTORY), "plain topic");
    plain.close().await.expect("close");

    compact(&topic).await;
    // After the compaction horizon: more updates, read from the topic itself.
    let after: &[Op] = &[("a", Some("a4")), ("e", None), ("f", Some("f1"))];
    publish(&client, &topic, after).await;
    let all: Vec<Op> = HISTORY.iter().chain(after).copied().collect();
    let view = within(
        "table view",
        client.table_view(&topic).schema(StringSchema).create(),
    )
    .await
    .expect("table view of a compacted topic");
    let want = expected(&all);
    assert_eq!(content(&view), want, "compacted topic, then more");
    assert_eq!(view.len(), want.len());
    assert_eq!(view.get("a").as_deref().map(String::as_str), Some("a4"));
    assert!(!view.contains_key("b"), "tombstoned before the compaction");
    assert!(!view.contains_key("e"), "tombstoned after the compaction");
    assert_eq!(view.decode_failures(), 0);
    assert!(view.is_running());
    assert!(view.last_error().is_none(), "{:?}", view.last_error());
    view.close().await.expect("close");

    // The default schema: the payloads as bytes.
    let bytes = within("bytes table view", client.table_view(&topic).create())
        .await
        .expect("bytes table view");
    assert_eq!(
        bytes.get("f").map(|v| v.to_vec()),
        Some(b"f1".to_vec()),
        "BytesSchema values"
    );
    bytes.close().await.expect("close");
}

/// Waits until `n` updates came through the channel.
async fn take_updates(
    rx: &mut mpsc::UnboundedReceiver<(String, Option<String>)>,
    n: usize,
) -> Vec<(String, Option<String>)> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(update)) => got.push(update),
            Ok(None) => panic!(
                "the listener went away after {} updates: {got:?}",
                got.len()
            ),
            Err(_) => panic!(
                "only {} of {n} updates reached the listener within {WAIT:?}: {got:?}",
                got.len()
            ),
        }
    }
    got
}

/// The ops of each key, in order.
fn per_key(
    ops: impl IntoIterator<Item = (String, Option<String>)>,
) -> HashMap<String, Vec<Option<String>>> {
    let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for (k, v) in ops {
        out.entry(k).or_default().push(v);
    }
    out
}

fn owned(ops: &[Op]) -> Vec<(String, Option<String>)> {
    ops.iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
        .collect()
}

/// Updates interleaved over keys, with tombstones and a key that comes back.
const LIVE: &[Op] = &[
    ("x", Some("x1")),
    ("y", Some("y1")),
    ("x", Some("x2")),
    ("z", Some("z1")),
    ("y", None),
    ("x", Some("x3")),
    ("y", Some("y2")),
    ("z", Some("z2")),
    ("x", None),
    ("z", Some("z3")),
];

/// Runs the live part on a view of `topic` that already holds `before`: a listener, the
/// snapshot-and-listen variant and the update stream each see every update once, in order
/// per key, and the view ends with the expected table.
async fn live_updates(client: &PulsarClient, topic: &str, before: &[Op]) {
    let view = within(
        "table view",
        client.table_view(topic).schema(StringSchema).create(),
    )
    .await
    .expect("table view");
    assert_eq!(
        content(&view),
        expected(before),
        "loaded before create returned"
    );

    let (tx, mut listened) = mpsc::unbounded_channel();
    view.listen(move |k, v| {
        let _ = tx.send((k.to_owned(), v.cloned()));
    });
    let (tx, mut all) = mpsc::unbounded_channel();
    view.for_each_and_listen(move |k, v| {
        let _ = tx.send((k.to_owned(), v.cloned()));
    });
    let mut stream = view.updates();

    publish(client, topic, LIVE).await;
    let want = per_key(owned(LIVE));
    let got = take_updates(&mut listened, LIVE.len()).await;
    assert_eq!(
        per_key(got),
        want,
        "listen: each update once, in order per key"
    );

    let initial = take_updates(&mut all, expected(before).len()).await;
    let initial: BTreeMap<String, String> = initial
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    assert_eq!(
        initial,
        expected(before),
        "for_each_and_listen: the table first"
    );
    let got = take_updates(&mut all, LIVE.len()).await;
    assert_eq!(
        per_key(got),
        want,
        "for_each_and_listen: then each update once"
    );

    let mut streamed = Vec::new();
    while streamed.len() < LIVE.len() {
        let update = within("the update stream", stream.next())
            .await
            .expect("the stream ends only with the view");
        streamed.push((update.key, update.value.map(|v| v.as_str().to_owned())));
    }
    assert_eq!(
        per_key(streamed),
        want,
        "updates(): each once, in order per key"
    );

    // Nothing more than what was published.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(listened.try_recv().is_err(), "no update twice");

    let all_ops: Vec<Op> = before.iter().chain(LIVE).copied().collect();
    assert_eq!(
        content(&view),
        expected(&all_ops),
        "the table after the updates"
    );
    view.close().await.expect("close");
    assert!(
        within("the stream's end", stream.next()).await.is_none(),
        "the update stream ends when the view is closed"
    );
}

#[tokio::test]
async fn updates_published_while_a_table_view_runs_reach_its_listeners_once_in_order() {
    let client = client(apache());
    let topic = support::unique_topic("table-view-live");
    let before: &[Op] = &[
        ("x", Some("x0")),
        ("w", Some("w0")),
        ("w", None),
        ("v", Some("v0")),
    ];
    publish(&client, &topic, before).await;
    compact(&topic).await;
    live_updates(&client, &topic, before).await;
}

#[tokio::test]
async fn a_table_view_of_a_partitioned_topic_reads_every_partition() {
    let broker = apache();
    let client = client(broker);
    let topic = broker.partitioned_topic("table-view-partitioned", 3);
    assert_eq!(client.partitions(&topic).await.expect("partitions"), 3);
    publish(&client, &topic, HISTORY).await;
    // Keys are spread over the partitions; each is compacted.
    for i in 0..3 {
        compact(&format!("{topic}-partition-{i}")).await;
    }
    let mut reader = within(
        "compacted reader",
        client
            .reader(&topic)
            .start_message_id(MessageId::EARLIEST)
            .read_compacted(true)
            .create(),
    )
    .await
    .expect("compacted reader");
    let seen = read_all(&mut reader).await;
    assert_eq!(
        seen.len(),
        expected(HISTORY).len(),
        "one message per live key over the partitions: {seen:?}"
    );
    reader.close().await.expect("close");
    live_updates(&client, &topic, HISTORY).await;
}

/// pulsar-lite: no compaction, but a table view of a plain topic is the last value per key,
/// and a value the schema cannot decode is counted, its key keeping its previous value.
#[tokio::test]
async fn on_pulsar_lite_a_table_view_of_a_plain_topic_is_the_last_value_per_key() {
    let broker = support::Broker::start_local();
    let client = client(&broker);
    let topic = support::unique_topic("table-view-lite");
    publish(&client, &topic, HISTORY).await;
    let producer = client.producer(&topic).create().await.expect("producer");
    // Not UTF-8: StringSchema cannot decode it.
    producer
        .send(ProducerMessage::new(vec![0xff, 0xfe]).partition_key("a"))
        .await
        .expect("send");
    // No key: skipped.
    producer
        .send(ProducerMessage::new("no key"))
        .await
        .expect("send");
    let view = within(
        "table view",
        client.table_view(&topic).schema(StringSchema).create(),
    )
    .await
    .expect("table view");
    assert_eq!(content(&view), expected(HISTORY));
    assert_eq!(
        view.decode_failures(),
        1,
        "the undecodable value is counted"
    );
    assert_eq!(view.messages_without_key(), 1);
    assert_eq!(view.get("a").as_deref().map(String::as_str), Some("a3"));

    let (tx, mut rx) = mpsc::unbounded_channel();
    view.listen(move |k, v| {
        let _ = tx.send((k.to_owned(), v.cloned()));
    });
    producer
        .send(ProducerMessage::new("a9").partition_key("a"))
        .await
        .expect("send");
    producer
        .send(ProducerMessage::new("").partition_key("e"))
        .await
        .expect("send");
    // pulsar-lite may deliver an entry more than once on Exclusive subscriptions: wait for
    // both updates, however many come.
    let mut got = Vec::new();
    while !(got.contains(&("a".to_string(), Some("a9".to_string())))
        && got.contains(&("e".to_string(), None)))
    {
        got.extend(take_updates(&mut rx, 1).await);
    }
    assert_eq!(view.get("a").as_deref().map(String::as_str), Some("a9"));
    assert!(!view.contains_key("e"));
    view.close().await.expect("close");
}

#[tokio::test]
async fn a_table_view_picks_up_a_partition_added_later() {
    let broker = apache();
    let client = client(broker);
    let topic = broker.partitioned_topic("table-view-grow", 2);
    publish(&client, &topic, &[("a", Some("a1"))]).await;
    let view = within(
        "table view",
        client
            .table_view(&topic)
            .schema(StringSchema)
            .auto_update_partitions_interval(Duration::from_millis(500))
            .create(),
    )
    .await
    .expect("table view");
    assert_eq!(view.get("a").as_deref().map(String::as_str), Some("a1"));
    let (tx, mut rx) = mpsc::unbounded_channel();
    view.listen(move |k, v| {
        let _ = tx.send((k.to_owned(), v.cloned()));
    });
    let local = topic.trim_start_matches("persistent://").to_owned();
    let (status, body) = tokio::task::spawn_blocking(move || {
        broker.apache().admin(
            "POST",
            &format!("/admin/v2/persistent/{local}/partitions"),
            Some("3"),
        )
    })
    .await
    .expect("admin call");
    assert!(
        (200..300).contains(&status),
        "adding a partition: HTTP {status} {body}"
    );
    // Published on the new partition before the view found it: read from its start.
    publish(
        &client,
        &format!("{topic}-partition-2"),
        &[("new", Some("n1"))],
    )
    .await;
    let got = take_updates(&mut rx, 1).await;
    assert_eq!(got, vec![("new".to_string(), Some("n1".to_string()))]);
    assert_eq!(view.len(), 2);
    view.close().await.expect("close");
}
