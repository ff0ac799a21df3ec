//! Metrics, named as the Java client's OpenTelemetry metrics (PIP-342: the `pulsar.client.*`
//! family, with the `pulsar.tenant`, `pulsar.namespace`, `pulsar.topic`, `pulsar.partition` and
//! `pulsar.subscription` attributes), recorded through the [`metrics`](::metrics) facade.
//!
//! # Opt-in, and free when off
//!
//! A client records metrics only when asked ([`ClientBuilder::metrics`] for the process's
//! global recorder, [`ClientBuilder::metrics_recorder`] for one of its own). Without that the
//! client has no [`MetricsSink`], producers and consumers hold no handles, and every recording
//! point is one `None` test. With it, each producer and consumer partition registers its
//! handles once, when it is created, so a message costs a few calls on registered handles (no
//! key building, no lookup, no allocation).
//!
//! Any `metrics` exporter serves them: with `metrics-exporter-prometheus` the names come out
//! as `pulsar_client_producer_message_send_size` and so on, with the topic as a label
//! (`examples/metrics.rs`).
//!
//! # What is recorded
//!
//! | name | kind | unit |
//! |---|---|---|
//! | `pulsar.client.connection.opened`, `.closed`, `.failed` | counter | connections |
//! | `pulsar.client.lookup.duration` (`pulsar.lookup.type`, `pulsar.lookup.transport-type`, `pulsar.response.status`) | histogram | seconds |
//! | `pulsar.client.producer.opened`, `.closed` | counter | sessions |
//! | `pulsar.client.producer.message.send.duration` (`pulsar.response.status`) | histogram | seconds |
//! | `pulsar.client.producer.message.send.size` | counter | bytes |
//! | `pulsar.client.producer.message.pending.count`, `.pending.size` | gauge (up-down) | messages, bytes |
//! | `pulsar.client.consumer.opened`, `.closed` | counter | sessions |
//! | `pulsar.client.consumer.message.received.count`, `.received.size` | counter | messages, bytes |
//! | `pulsar.client.consumer.receive_queue.count`, `.receive_queue.size` | gauge (up-down) | messages, bytes |
//! | `pulsar.client.consumer.message.ack`, `.nack`, `.dlq`, `.ack.timeout` | counter | messages |
//!
//! Sizes are the application's payload bytes (before compression and batching), as the
//! Java client counts them. `pulsar.client.producer.rpc.send.duration` is not recorded: the
//! client's receipts do not keep when their frame was written.
//!
//! [`ClientBuilder::metrics`]: crate::ClientBuilder::metrics
//! [`ClientBuilder::metrics_recorder`]: crate::ClientBuilder::metrics_recorder

use std::sync::Arc;
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};

use crate::protocol::topic::TopicName;

/// Which topic attributes the metrics carry (the Java client records all of them and, by
/// default, has OpenTelemetry aggregate to the namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsCardinality {
    /// `pulsar.tenant` and `pulsar.namespace` only: one series per namespace.
    Namespace,
    /// And `pulsar.topic` (the partitioned topic's name, for a partition): one series per topic.
    Topic,
    /// And `pulsar.partition` for a partition of a partitioned topic (the default).
    #[default]
    Partition,
}

const META: Metadata<'static> = Metadata::new("pulsar_wire", Level::INFO, Some(module_path!()));

/// Names of the metrics, as the Java client's.
pub(crate) mod names {
    pub const CONNECTION_OPENED: &str = "pulsar.client.connection.opened";
    pub const CONNECTION_CLOSED: &str = "pulsar.client.connection.closed";
    pub const CONNECTION_FAILED: &str = "pulsar.client.connection.failed";
    pub const LOOKUP_DURATION: &str = "pulsar.client.lookup.duration";
    pub const PRODUCER_OPENED: &str = "pulsar.client.producer.opened";
    pub const PRODUCER_CLOSED: &str = "pulsar.client.producer.closed";
    pub const SEND_DURATION: &str = "pulsar.client.producer.message.send.duration";
    pub const SEND_SIZE: &str = "pulsar.client.producer.message.send.size";
    pub const PENDING_COUNT: &str = "pulsar.client.producer.message.pending.count";
    pub const PENDING_SIZE: &str = "pulsar.client.producer.message.pending.size";
    pub const CONSUMER_OPENED: &str = "pulsar.client.consumer.opened";
    pub const CONSUMER_CLOSED: &str = "pulsar.client.consumer.closed";
    pub const RECEIVED_COUNT: &str = "pulsar.client.consumer.message.received.count";
    pub const RECEIVED_SIZE: &str = "pulsar.client.consumer.message.received.size";
    pub const QUEUE_COUNT: &str = "pulsar.client.consumer.receive_queue.count";
    pub const QUEUE_SIZE: &str = "pulsar.client.consumer.receive_queue.size";
    pub const ACK: &str = "pulsar.client.consumer.message.ack";
    pub const NACK: &str = "pulsar.client.consumer.message.nack";
    pub const DLQ: &str = "pulsar.client.consumer.message.dlq";
    pub const ACK_TIMEOUT: &str = "pulsar.client.consumer.message.ack.timeout";
}

/// Every metric with its kind, unit and description (told to the recorder once per client).
const DESCRIPTIONS: &[(&str, Kind, Unit, &str)] = &[
    (
        names::CONNECTION_OPENED,
        Kind::Counter,
        Unit::Count,
        "The number of connections opened",
    ),
    (
        names::CONNECTION_CLOSED,
        Kind::Counter,
        Unit::Count,
        "The number of connections closed",
    ),
    (
        names::CONNECTION_FAILED,
        Kind::Counter,
        Unit::Count,
        "The number of failed connection attempts",
    ),
    (
        names::LOOKUP_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Duration of lookup operations",
    ),
    (
        names::PRODUCER_OPENED,
        Kind::Counter,
        Unit::Count,
        "The number of producer sessions opened",
    ),
    (
        names::PRODUCER_CLOSED,
        Kind::Counter,
        Unit::Count,
        "The number of producer sessions closed",
    ),
    (
        names::SEND_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Publish latency experienced by the application, includes client batching time",
    ),
    (
        names::SEND_SIZE,
        Kind::Counter,
        Unit::Bytes,
        "The number of bytes published",
    ),
    (
        names::PENDING_COUNT,
        Kind::Gauge,
        Unit::Count,
        "The number of messages in the producer internal send queue, waiting to be sent",
    ),
    (
        names::PENDING_SIZE,
        Kind::Gauge,
        Unit::Bytes,
        "The size of the messages in the producer internal queue, waiting to sent",
    ),
    (
        names::CONSUMER_OPENED,
        Kind::Counter,
        Unit::Count,
        "The number of consumer sessions opened",
    ),
    (
        names::CONSUMER_CLOSED,
        Kind::Counter,
        Unit::Count,
        "The number of consumer sessions closed",
    ),
    (
        names::RECEIVED_COUNT,
        Kind::Counter,
        Unit::Count,
        "The number of messages explicitly received by the consumer application",
    ),
    (
        names::RECEIVED_SIZE,
        Kind::Counter,
        Unit::Bytes,
        "The number of bytes explicitly received by the consumer application",
    ),
    (
        names::QUEUE_COUNT,
        Kind::Gauge,
        Unit::Count,
        "Number of messages currently sitting in the consumer receive queue",
    ),
    (
        names::QUEUE_SIZE,
        Kind::Gauge,
        Unit::Bytes,
        "Total number of bytes currently sitting in the consumer receive queue",
    ),
    (
        names::ACK,
        Kind::Counter,
        Unit::Count,
        "The number of acknowledged messages",
    ),
    (
        names::NACK,
        Kind::Counter,
        Unit::Count,
        "The number of negatively acknowledged messages",
    ),
    (
        names::DLQ,
        Kind::Counter,
        Unit::Count,
        "The number of messages sent to DLQ",
    ),
    (
        names::ACK_TIMEOUT,
        Kind::Counter,
        Unit::Count,
        "The number of messages that were not acknowledged in the configured timeout period, \
         hence, were requested by the client to be redelivered",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Where a client's metrics go, as the builder was told.
#[derive(Clone)]
pub(crate) enum MetricsTarget {
    /// The process's global recorder (`metrics::set_global_recorder`).
    Global,
    /// A recorder of the client's own.
    Own(Arc<dyn Recorder + Send + Sync>),
}

impl std::fmt::Debug for MetricsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsTarget::Global => "Global",
            MetricsTarget::Own(_) => "Own",
        })
    }
}

/// Where one client's metrics go: a recorder of its own, or the process's global one.
#[derive(Clone)]
pub(crate) struct MetricsSink {
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
    cardinality: MetricsCardinality,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink")
            .field("own_recorder", &self.recorder.is_some())
            .field("cardinality", &self.cardinality)
            .finish()
    }
}

impl MetricsSink {
    /// A sink into `target`; describes every metric to its recorder.
    pub fn new(target: MetricsTarget, cardinality: MetricsCardinality) -> Self {
        let recorder = match target {
            MetricsTarget::Global => None,
            MetricsTarget::Own(r) => Some(r),
        };
        let sink = MetricsSink {
            recorder,
            cardinality,
        };
        sink.with(|r| {
            for (name, kind, unit, description) in DESCRIPTIONS {
                let key = KeyName::from_const_str(name);
                let description = (*description).into();
                match kind {
                    Kind::Counter => r.describe_counter(key, Some(*unit), description),
                    Kind::Gauge => r.describe_gauge(key, Some(*unit), description),
                    Kind::Histogram => r.describe_histogram(key, Some(*unit), description),
                }
            }
        });
        sink
    }

    fn with<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(r) => f(r.as_ref()),
            None => ::metrics::with_recorder(|r| f(r)),
        }
    }

    fn counter(&self, name: &'static str, labels: &[Label]) -> Counter {
        let key = Key::from_parts(name, labels.to_vec());
        self.with(|r| r.register_counter(&key, &META))
    }

    fn gauge(&self, name: &'static str, labels: &[Label]) -> Gauge {
        let key = Key::from_parts(name, labels.to_vec());
        self.with(|r| r.register_gauge(&key, &META))
    }

    fn histogram(&self, name: &'static str, labels: &[Label]) -> Histogram {
        let key = Key::from_parts(name, labels.to_vec());
        self.with(|r| r.register_histogram(&key, &META))
    }

    /// The topic attributes of `topic` at this sink's cardinality.
    fn topic_labels(&self, topic: &TopicName) -> Vec<Label> {
        let mut labels = vec![
            Label::new("pulsar.tenant", topic.tenant().to_owned()),
            Label::new("pulsar.namespace", topic.namespace_path().to_owned()),
        ];
        if self.cardinality != MetricsCardinality::Namespace {
            labels.push(Label::new(
                "pulsar.topic",
                topic.base().full_name().to_owned(),
            ));
        }
        if self.cardinality == MetricsCardinality::Partition {
            if let Some(p) = topic.partition_index() {
                labels.push(Label::new("pulsar.partition", p.to_string()));
            }
        }
        labels
    }

    /// The handles of a connection's events.
    pub fn connections(&self) -> ConnectionMetrics {
        ConnectionMetrics {
            opened: self.counter(names::CONNECTION_OPENED, &[]),
            closed: self.counter(names::CONNECTION_CLOSED, &[]),
            failed: self.counter(names::CONNECTION_FAILED, &[]),
        }
    }

    /// Records a lookup of `kind` that took `elapsed`.
    pub fn lookup(&self, kind: LookupKind, http: bool, ok: bool, elapsed: Duration) {
        let labels = [
            Label::from_static_parts("pulsar.lookup.type", kind.as_str()),
            Label::from_static_parts(
                "pulsar.lookup.transport-type",
                if http { "http" } else { "binary" },
            ),
            status(ok),
        ];
        self.histogram(names::LOOKUP_DURATION, &labels)
            .record(elapsed.as_secs_f64());
    }

    /// The handles of one producer partition (or non-partitioned producer) on `topic`.
    pub fn producer(&self, topic: &TopicName) -> ProducerMetrics {
        let labels = self.topic_labels(topic);
        let mut ok = labels.clone();
        ok.push(status(true));
        let mut failed = labels.clone();
        failed.push(status(false));
        ProducerMetrics {
            opened: self.counter(names::PRODUCER_OPENED, &labels),
            closed: self.counter(names::PRODUCER_CLOSED, &labels),
            send_ok: self.histogram(names::SEND_DURATION, &ok),
            send_failed: self.histogram(names::SEND_DURATION, &failed),
            send_size: self.counter(names::SEND_SIZE, &labels),
            pending_count: self.gauge(names::PENDING_COUNT, &labels),
            pending_size: self.gauge(names::PENDING_SIZE, &labels),
        }
    }

    /// The handles of one consumer partition (or non-partitioned consumer) on `topic`.
    pub fn consumer(&self, topic: &TopicName, subscription: &str) -> ConsumerMetrics {
        let mut labels = self.topic_labels(topic);
        labels.push(Label::new("pulsar.subscription", subscription.to_owned()));
        ConsumerMetrics {
            opened: self.counter(names::CONSUMER_OPENED, &labels),
            closed: self.counter(names::CONSUMER_CLOSED, &labels),
            received_count: self.counter(names::RECEIVED_COUNT, &labels),
            received_size: self.counter(names::RECEIVED_SIZE, &labels),
            queue_count: self.gauge(names::QUEUE_COUNT, &labels),
            queue_size: self.gauge(names::QUEUE_SIZE, &labels),
            ack: self.counter(names::ACK, &labels),
            nack: self.counter(names::NACK, &labels),
            dlq: self.counter(names::DLQ, &labels),
            ack_timeout: self.counter(names::ACK_TIMEOUT, &labels),
        }
    }
}

fn status(ok: bool) -> Label {
    Label::from_static_parts(
        "pulsar.response.status",
        if ok { "success" } else { "failed" },
    )
}

/// Which kind of lookup (`pulsar.lookup.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupKind {
    /// LOOKUP: the broker owning a topic.
    Topic,
    /// PARTITIONED_METADATA: a topic's partition count.
    Metadata,
    /// GET_SCHEMA.
    Schema,
    /// GET_TOPICS_OF_NAMESPACE.
    ListTopics,
}

impl LookupKind {
    fn as_str(self) -> &'static str {
        match self {
            LookupKind::Topic => "topic",
            LookupKind::Metadata => "metadata",
            LookupKind::Schema => "schema",
            LookupKind::ListTopics => "list-topics",
        }
    }
}

/// A client's connection counters.
#[derive(Clone)]
pub(crate) struct ConnectionMetrics {
    pub opened: Counter,
    pub closed: Counter,
    pub failed: Counter,
}

impl std::fmt::Debug for ConnectionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionMetrics")
    }
}

/// One producer partition's handles.
pub(crate) struct ProducerMetrics {
    pub opened: Counter,
    pub closed: Counter,
    send_ok: Histogram,
    send_failed: Histogram,
    send_size: Counter,
    pending_count: Gauge,
    pending_size: Gauge,
}

impl std::fmt::Debug for ProducerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProducerMetrics")
    }
}

impl ProducerMetrics {
    /// A message of `bytes` payload bytes was queued.
    pub fn queued(&self, bytes: usize) {
        self.pending_count.increment(1.0);
        self.pending_size.increment(bytes as f64);
    }

    /// A queued message of `bytes` got its outcome `latency` after its send call.
    pub fn done(&self, bytes: usize, ok: bool, latency: Duration) {
        self.pending_count.decrement(1.0);
        self.pending_size.decrement(bytes as f64);
        if ok {
            self.send_ok.record(latency.as_secs_f64());
            self.send_size.increment(bytes as u64);
        } else {
            self.send_failed.record(latency.as_secs_f64());
        }
    }

    /// A send failed before it was queued (a full queue, the memory limit, a closed producer).
    pub fn refused(&self, latency: Duration) {
        self.send_failed.record(latency.as_secs_f64());
    }
}

/// One consumer partition's handles.
pub(crate) struct ConsumerMetrics {
    pub opened: Counter,
    pub closed: Counter,
    received_count: Counter,
    received_size: Counter,
    queue_count: Gauge,
    queue_size: Gauge,
    ack: Counter,
    nack: Counter,
    dlq: Counter,
    ack_timeout: Counter,
}

impl std::fmt::Debug for ConsumerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsumerMetrics")
    }
}

impl ConsumerMetrics {
    /// The application took a message of `bytes` payload bytes.
    pub fn received(&self, bytes: usize) {
        self.received_count.increment(1);
        self.received_size.increment(bytes as u64);
    }

    /// The receive queue holds `count` messages of `bytes` payload bytes now.
    pub fn queue(&self, count: u32, bytes: u64) {
        self.queue_count.set(count as f64);
        self.queue_size.set(bytes as f64);
    }

    /// `n` messages were acknowledged.
    pub fn acked(&self, n: u64) {
        self.ack.increment(n);
    }

    /// A message was negatively acknowledged.
    pub fn nacked(&self) {
        self.nack.increment(1);
    }

    /// A message went to the dead letter topic.
    pub fn dead_lettered(&self) {
        self.dlq.increment(1);
    }

    /// `n` messages were asked back by the ack timeout.
    pub fn ack_timed_out(&self, n: u64) {
        self.ack_timeout.increment(n);
    }
}
