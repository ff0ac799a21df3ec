//! Metrics against the broker: the client's `pulsar.client.*` metrics count exactly what was
//! sent, received, acknowledged, negatively acknowledged, dead-lettered and timed out, with
//! the Java client's names and attributes (tenant, namespace, topic, partition, subscription),
//! into a recorder of the client's own or the process's global one.

mod support;

use support::{payload, receive};

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use pulsar_wire::{
    DeadLetterPolicy, InitialPosition, Message, MetricsCardinality, ProducerMessage, PulsarClient,
    SubscriptionType,
};

/// What a client recorded, read once (reading resets the recorder's counters).
struct Recorded {
    /// (kind, name, labels) -> value.
    values: Vec<(MetricKind, String, HashMap<String, String>, DebugValue)>,
}

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        let values = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (kind, key.name().to_owned(), labels, value)
            })
            .collect();
        Recorded { values }
    }

    /// The series of `name` whose labels include all of `labels`.
    fn series<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (MetricKind, String, HashMap<String, String>, DebugValue)> + 'a
    {
        self.values.iter().filter(move |(_, n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the counters `name` with these labels.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.series(name, labels)
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The sum of the gauges `name` with these labels.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series(name, labels)
            .map(|(_, _, _, v)| match v {
                DebugValue::Gauge(g) => g.into_inner(),
                other => panic!("{name} is not a gauge: {other:?}"),
            })
            .sum()
    }

    /// How many values the histograms `name` with these labels hold.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.series(name, labels)
            .map(|(_, _, _, v)| match v {
                DebugValue::Histogram(values) => values.len(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// Every label set of `name`.
    fn label_sets<'a>(&'a self, name: &'a str) -> Vec<&'a HashMap<String, String>> {
        self.series(name, &[]).map(|(_, _, l, _)| l).collect()
    }
}

fn client_with(recorder: DebuggingRecorder, cardinality: MetricsCardinality) -> PulsarClient {
    client_at(support::broker().url(), recorder, cardinality)
}

fn client_at(
    url: &str,
    recorder: DebuggingRecorder,
    cardinality: MetricsCardinality,
) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(10))
        .metrics_recorder(recorder)
        .metrics_cardinality(cardinality)
        .build()
        .expect("client")
}

/// `persistent://tenant/ns/topic` -> ("tenant", "tenant/ns").
fn tenant_namespace(topic: &str) -> (String, String) {
    let path = topic.trim_start_matches("persistent://");
    let mut parts = path.splitn(3, '/');
    let tenant = parts.next().unwrap_or_default().to_owned();
    let ns = parts.next().unwrap_or_default();
    (tenant.clone(), format!("{tenant}/{ns}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_and_a_consumer_count_exactly_what_they_did() {
    const N: usize = 20;
    const SIZE: usize = 100;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let client = client_with(recorder, MetricsCardinality::Partition);
    let topic = support::unique_topic("metrics");
    let (tenant, namespace) = tenant_namespace(&topic);
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .subscribe()
        .await
        .expect("consumer");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    for i in 0..N {
        producer.send(payload(i, SIZE)).await.expect("send");
    }
    // Every message received; the first two negatively acknowledged, received again, and
    // then everything acknowledged.
    let mut nacked = 0;
    let mut received = 0;
    let mut acked = std::collections::HashSet::new();
    while acked.len() < N {
        let m = receive(&mut consumer).await;
        received += 1;
        if nacked < 2 && m.redelivery_count() == 0 {
            consumer.nack(&m).await.expect("nack");
            nacked += 1;
        } else {
            consumer.ack(&m).await.expect("ack");
            acked.insert(m.id());
        }
    }
    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");

    let r = Recorded::take(&snapshotter);
    let t: &[(&str, &str)] = &[
        ("pulsar.topic", topic.as_str()),
        ("pulsar.tenant", tenant.as_str()),
        ("pulsar.namespace", namespace.as_str()),
    ];
    // The producer.
    assert_eq!(r.counter("pulsar.client.producer.opened", t), 1);
    assert_eq!(r.counter("pulsar.client.producer.closed", t), 1);
    assert_eq!(
        r.counter("pulsar.client.producer.message.send.size", t),
        (N * SIZE) as u64
    );
    let ok: Vec<(&str, &str)> = [t, &[("pulsar.response.status", "success")]].concat();
    let failed: Vec<(&str, &str)> = [t, &[("pulsar.response.status", "failed")]].concat();
    assert_eq!(
        r.histogram_count("pulsar.client.producer.message.send.duration", &ok),
        N
    );
    assert_eq!(
        r.histogram_count("pulsar.client.producer.message.send.duration", &failed),
        0
    );
    assert_eq!(
        r.gauge("pulsar.client.producer.message.pending.count", t),
        0.0,
        "nothing pending after the receipts"
    );
    assert_eq!(
        r.gauge("pulsar.client.producer.message.pending.size", t),
        0.0
    );
    // The consumer.
    let s: Vec<(&str, &str)> = [t, &[("pulsar.subscription", "sub")]].concat();
    assert_eq!(r.counter("pulsar.client.consumer.opened", &s), 1);
    assert_eq!(r.counter("pulsar.client.consumer.closed", &s), 1);
    assert_eq!(
        r.counter("pulsar.client.consumer.message.received.count", &s),
        received as u64
    );
    assert_eq!(received, N + 2, "the two nacked messages came back");
    assert_eq!(
        r.counter("pulsar.client.consumer.message.received.size", &s),
        (received * SIZE) as u64
    );
    assert_eq!(
        r.counter("pulsar.client.consumer.message.ack", &s),
        N as u64
    );
    assert_eq!(r.counter("pulsar.client.consumer.message.nack", &s), 2);
    assert_eq!(r.counter("pulsar.client.consumer.message.dlq", &s), 0);
    assert_eq!(
        r.gauge("pulsar.client.consumer.receive_queue.count", &s),
        0.0
    );
    assert_eq!(
        r.gauge("pulsar.client.consumer.receive_queue.size", &s),
        0.0
    );
    // The connection and the lookups.
    assert!(r.counter("pulsar.client.connection.opened", &[]) >= 1);
    assert_eq!(r.counter("pulsar.client.connection.failed", &[]), 0);
    let lookups: &[(&str, &str)] = &[
        ("pulsar.lookup.type", "topic"),
        ("pulsar.lookup.transport-type", "binary"),
        ("pulsar.response.status", "success"),
    ];
    assert!(
        r.histogram_count("pulsar.client.lookup.duration", lookups) >= 2,
        "the producer's and the consumer's lookups"
    );
    // No partition attribute on a topic that is not partitioned.
    assert!(r
        .label_sets("pulsar.client.producer.opened")
        .iter()
        .all(|l| !l.contains_key("pulsar.partition")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_topic_is_counted_per_partition_under_its_own_name() {
    const N: usize = 30;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let broker = support::Broker::partitioned(3);
    let client = client_at(broker.url(), recorder, MetricsCardinality::Partition);
    let topic = broker.partitioned_topic("metrics-partitioned", 3);
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("consumer");
    let producer = client.producer(&topic).create().await.expect("producer");
    let mut receipts = Vec::new();
    for i in 0..N {
        receipts.push(
            producer
                .send_async(ProducerMessage::new(payload(i, 10)).partition_key(format!("k{i}")))
                .await
                .expect("send"),
        );
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    for _ in 0..N {
        let m = receive(&mut consumer).await;
        consumer.ack(&m).await.expect("ack");
    }
    let r = Recorded::take(&snapshotter);
    let t: &[(&str, &str)] = &[("pulsar.topic", topic.as_str())];
    assert_eq!(
        r.counter("pulsar.client.producer.message.send.size", t),
        (N * 10) as u64
    );
    assert_eq!(r.counter("pulsar.client.producer.opened", t), 3);
    assert_eq!(r.counter("pulsar.client.consumer.opened", t), 3);
    assert_eq!(
        r.counter("pulsar.client.consumer.message.received.count", t),
        N as u64
    );
    assert_eq!(r.counter("pulsar.client.consumer.message.ack", t), N as u64);
    let mut partitions: Vec<String> = r
        .label_sets("pulsar.client.producer.opened")
        .iter()
        .filter_map(|l| l.get("pulsar.partition").cloned())
        .collect();
    partitions.sort();
    assert_eq!(partitions, ["0", "1", "2"]);
    for p in ["0", "1", "2"] {
        let labels = [("pulsar.topic", topic.as_str()), ("pulsar.partition", p)];
        assert_eq!(r.counter("pulsar.client.producer.opened", &labels), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_cardinality_leaves_the_topic_out() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let client = client_with(recorder, MetricsCardinality::Namespace);
    let topic = support::unique_topic("metrics-namespace");
    let (tenant, namespace) = tenant_namespace(&topic);
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send(payload(0, 7)).await.expect("send");
    let r = Recorded::take(&snapshotter);
    let sets = r.label_sets("pulsar.client.producer.message.send.size");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let mut keys: Vec<&str> = sets[0].keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["pulsar.namespace", "pulsar.tenant"]);
    assert_eq!(sets[0]["pulsar.tenant"], tenant);
    assert_eq!(sets[0]["pulsar.namespace"], namespace);
    assert_eq!(
        r.counter("pulsar.client.producer.message.send.size", &[]),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_timeouts_and_dead_letters_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let client = client_with(recorder, MetricsCardinality::Partition);
    let topic = support::unique_topic("metrics-redelivery");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    // The ack timeout: three messages received and left unacknowledged come back.
    let mut timed = client
        .consumer(&topic)
        .subscription("timed")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .ack_timeout(Duration::from_secs(1))
        .subscribe()
        .await
        .expect("consumer");
    // The dead letters: one message nacked past its limit.
    let mut dead = client
        .consumer(&topic)
        .subscription("dead")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .dead_letter_policy(DeadLetterPolicy::new(1))
        .subscribe()
        .await
        .expect("consumer");
    for i in 0..3 {
        producer.send(payload(i, 5)).await.expect("send");
    }
    let first: Vec<Message> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(receive(&mut timed).await);
        }
        v
    };
    let mut again = Vec::new();
    for _ in 0..3 {
        let m = receive(&mut timed).await;
        assert!(first.iter().any(|f| f.id() == m.id()), "a redelivery");
        again.push(m);
    }
    for m in &again {
        timed.ack(m).await.expect("ack");
    }
    // Redelivery counts 0 and 1 nacked; the second nack sends each away.
    let mut sent_away = 0;
    while sent_away < 3 {
        let m = receive(&mut dead).await;
        if m.redelivery_count() >= 1 {
            sent_away += 1;
        }
        dead.nack(&m).await.expect("nack");
    }
    let r = Recorded::take(&snapshotter);
    let timed_labels = [
        ("pulsar.topic", topic.as_str()),
        ("pulsar.subscription", "timed"),
    ];
    assert_eq!(
        r.counter("pulsar.client.consumer.message.ack.timeout", &timed_labels),
        3
    );
    assert_eq!(
        r.counter("pulsar.client.consumer.message.ack", &timed_labels),
        3
    );
    let dead_labels = [
        ("pulsar.topic", topic.as_str()),
        ("pulsar.subscription", "dead"),
    ];
    assert_eq!(
        r.counter("pulsar.client.consumer.message.dlq", &dead_labels),
        3
    );
    assert_eq!(
        r.counter("pulsar.client.consumer.message.nack", &dead_labels),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_go_to_the_global_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only test of this binary that installs the global recorder");
    let client = PulsarClient::builder(support::broker().url())
        .metrics(true)
        .build()
        .expect("client");
    let quiet = PulsarClient::builder(support::broker().url())
        .build()
        .expect("client");
    let topic = support::unique_topic("metrics-global");
    let quiet_topic = support::unique_topic("metrics-off");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send(payload(0, 11)).await.expect("send");
    let off = quiet
        .producer(&quiet_topic)
        .create()
        .await
        .expect("producer");
    off.send(payload(0, 13)).await.expect("send");
    let r = Recorded::take(&snapshotter);
    assert_eq!(
        r.counter(
            "pulsar.client.producer.message.send.size",
            &[("pulsar.topic", topic.as_str())]
        ),
        11
    );
    assert!(
        r.series(
            "pulsar.client.producer.opened",
            &[("pulsar.topic", quiet_topic.as_str())]
        )
        .next()
        .is_none(),
        "a client without metrics records nothing"
    );
}
