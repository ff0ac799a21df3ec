//! Builders for the commands a client sends. Each returns a `BaseCommand` with its type and
//! body set; the caller encodes it.

use bytes::Bytes;

use crate::wire::proto::{
    self, base_command::Type, command_ack::AckType, BaseCommand, FeatureFlags, KeyValue,
    MessageIdData,
};

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: i32 = 21;

/// The client version string sent in CONNECT.
pub fn client_version() -> String {
    format!("Pulsar-Rust-pulsar-wire-v{}", env!("CARGO_PKG_VERSION"))
}

fn base(kind: Type) -> BaseCommand {
    BaseCommand {
        r#type: kind as i32,
        ..Default::default()
    }
}

/// CONNECT with the feature flags the official clients send (auth refresh, broker entry
/// metadata) and, through a proxy, the logical broker to reach.
pub fn connect(
    auth_method: Option<&str>,
    auth_data: Option<Bytes>,
    proxy_to_broker_url: Option<String>,
) -> BaseCommand {
    let mut c = base(Type::Connect);
    c.connect = Some(Box::new(proto::CommandConnect {
        client_version: client_version(),
        auth_method_name: auth_method.map(str::to_owned),
        auth_data,
        protocol_version: Some(PROTOCOL_VERSION),
        proxy_to_broker_url,
        feature_flags: Some(FeatureFlags {
            supports_auth_refresh: Some(true),
            supports_broker_entry_metadata: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }));
    c
}

/// AUTH_RESPONSE with fresh credentials.
pub fn auth_response(auth_method: &str, auth_data: Bytes) -> BaseCommand {
    let mut c = base(Type::AuthResponse);
    c.auth_response = Some(Box::new(proto::CommandAuthResponse {
        client_version: Some(client_version()),
        response: Some(proto::AuthData {
            auth_method_name: Some(auth_method.to_owned()),
            auth_data: Some(auth_data),
        }),
        protocol_version: Some(PROTOCOL_VERSION),
    }));
    c
}

/// PING.
pub fn ping() -> BaseCommand {
    let mut c = base(Type::Ping);
    c.ping = Some(proto::CommandPing {});
    c
}

/// PONG.
pub fn pong() -> BaseCommand {
    let mut c = base(Type::Pong);
    c.pong = Some(proto::CommandPong {});
    c
}

/// LOOKUP; `listener` is the broker listener (`advertisedListeners`) whose address the answer
/// should name, as the Java client's `listenerName`.
pub fn lookup(
    topic: &str,
    request_id: u64,
    authoritative: bool,
    listener: Option<&str>,
) -> BaseCommand {
    let mut c = base(Type::Lookup);
    c.lookup_topic = Some(Box::new(proto::CommandLookupTopic {
        topic: topic.to_owned(),
        request_id,
        authoritative: Some(authoritative),
        advertised_listener_name: listener.map(str::to_owned),
        ..Default::default()
    }));
    c
}

/// PARTITIONED_METADATA.
pub fn partitioned_metadata(topic: &str, request_id: u64) -> BaseCommand {
    let mut c = base(Type::PartitionedMetadata);
    c.partition_metadata = Some(Box::new(proto::CommandPartitionedTopicMetadata {
        topic: topic.to_owned(),
        request_id,
        ..Default::default()
    }));
    c
}

/// The fields of a PRODUCER command.
#[derive(Debug, Clone, Default)]
pub struct ProducerArgs {
    /// Full topic name (one partition).
    pub topic: String,
    /// Client-chosen producer id.
    pub producer_id: u64,
    /// Producer name: the user's, or the broker's from an earlier PRODUCER_SUCCESS.
    pub producer_name: Option<String>,
    /// Whether the name was given by the user.
    pub user_provided_name: bool,
    /// Reconnect epoch, 0 on the first attempt.
    pub epoch: u64,
    /// Producer properties.
    pub properties: Vec<(String, String)>,
    /// Access mode number (Shared 0, Exclusive 1, WaitForExclusive 2, ExclusiveWithFencing 3).
    pub access_mode: i32,
    /// The topic epoch returned by an earlier PRODUCER_SUCCESS.
    pub topic_epoch: Option<u64>,
    /// A subscription to create with the producer.
    pub initial_subscription_name: Option<String>,
    /// The schema, when declared.
    pub schema: Option<proto::Schema>,
}

/// PRODUCER.
pub fn producer(args: &ProducerArgs, request_id: u64) -> BaseCommand {
    let mut c = base(Type::Producer);
    c.producer = Some(Box::new(proto::CommandProducer {
        topic: args.topic.clone(),
        producer_id: args.producer_id,
        request_id,
        producer_name: args.producer_name.clone(),
        user_provided_producer_name: Some(args.user_provided_name),
        epoch: Some(args.epoch),
        metadata: key_values(&args.properties),
        producer_access_mode: Some(args.access_mode),
        topic_epoch: args.topic_epoch,
        initial_subscription_name: args.initial_subscription_name.clone(),
        schema: args.schema.clone(),
        ..Default::default()
    }));
    c
}

/// The fields of a SUBSCRIBE command.
#[derive(Debug, Clone, Default)]
pub struct SubscribeArgs {
    /// Full topic name (one partition).
    pub topic: String,
    /// Subscription name.
    pub subscription: String,
    /// Subscription type number (Exclusive 0, Shared 1, Failover 2, Key_Shared 3).
    pub sub_type: i32,
    /// Client-chosen consumer id.
    pub consumer_id: u64,
    /// Consumer name.
    pub consumer_name: Option<String>,
    /// Priority level (Shared: lower is served first).
    pub priority_level: Option<i32>,
    /// Durable (false for readers).
    pub durable: bool,
    /// Start id, for non-durable subscriptions only.
    pub start_message_id: Option<MessageIdData>,
    /// Initial position number (Latest 0, Earliest 1).
    pub initial_position: i32,
    /// Consumer properties.
    pub properties: Vec<(String, String)>,
    /// Read the compacted view of the topic.
    pub read_compacted: bool,
    /// Replicate the subscription state to other clusters.
    pub replicate_subscription_state: bool,
    /// The schema, when declared.
    pub schema: Option<proto::Schema>,
    /// Properties of the subscription (kept by the broker when it creates it).
    pub subscription_properties: Vec<(String, String)>,
    /// Key_Shared only: how keys are spread over the consumers.
    pub key_shared_meta: Option<proto::KeySharedMeta>,
}

/// SUBSCRIBE.
pub fn subscribe(args: &SubscribeArgs, request_id: u64) -> BaseCommand {
    let mut c = base(Type::Subscribe);
    c.subscribe = Some(Box::new(proto::CommandSubscribe {
        topic: args.topic.clone(),
        subscription: args.subscription.clone(),
        sub_type: args.sub_type,
        consumer_id: args.consumer_id,
        request_id,
        consumer_name: args.consumer_name.clone(),
        priority_level: args.priority_level,
        durable: Some(args.durable),
        start_message_id: args.start_message_id.clone(),
        metadata: key_values(&args.properties),
        read_compacted: Some(args.read_compacted),
        initial_position: Some(args.initial_position),
        replicate_subscription_state: Some(args.replicate_subscription_state),
        force_topic_creation: Some(true),
        schema: args.schema.clone(),
        key_shared_meta: args.key_shared_meta.clone(),
        subscription_properties: key_values(&args.subscription_properties),
        ..Default::default()
    }));
    c
}

/// FLOW: `permits` more messages may be pushed.
pub fn flow(consumer_id: u64, permits: u32) -> BaseCommand {
    let mut c = base(Type::Flow);
    c.flow = Some(proto::CommandFlow {
        consumer_id,
        message_permits: permits,
    });
    c
}

/// ACK, individual or cumulative, of the given ids.
pub fn ack(
    consumer_id: u64,
    ids: Vec<MessageIdData>,
    cumulative: bool,
    request_id: Option<u64>,
) -> BaseCommand {
    let mut c = base(Type::Ack);
    c.ack = Some(proto::CommandAck {
        consumer_id,
        ack_type: if cumulative {
            AckType::Cumulative as i32
        } else {
            AckType::Individual as i32
        },
        message_id: ids,
        request_id,
        ..Default::default()
    });
    c
}

/// REDELIVER_UNACKNOWLEDGED_MESSAGES: the given entries, or everything unacked when empty.
pub fn redeliver(consumer_id: u64, ids: Vec<MessageIdData>) -> BaseCommand {
    let mut c = base(Type::RedeliverUnacknowledgedMessages);
    c.redeliver_unacknowledged_messages =
        Some(Box::new(proto::CommandRedeliverUnacknowledgedMessages {
            consumer_id,
            message_ids: ids,
            ..Default::default()
        }));
    c
}

/// UNSUBSCRIBE; `force` deletes the subscription even while other consumers are connected to
/// it (the broker disconnects them).
pub fn unsubscribe(consumer_id: u64, request_id: u64, force: bool) -> BaseCommand {
    let mut c = base(Type::Unsubscribe);
    c.unsubscribe = Some(Box::new(proto::CommandUnsubscribe {
        consumer_id,
        request_id,
        force: force.then_some(true),
    }));
    c
}

/// CLOSE_PRODUCER.
pub fn close_producer(producer_id: u64, request_id: u64) -> BaseCommand {
    let mut c = base(Type::CloseProducer);
    c.close_producer = Some(Box::new(proto::CommandCloseProducer {
        producer_id,
        request_id,
        ..Default::default()
    }));
    c
}

/// CLOSE_CONSUMER.
pub fn close_consumer(consumer_id: u64, request_id: u64) -> BaseCommand {
    let mut c = base(Type::CloseConsumer);
    c.close_consumer = Some(Box::new(proto::CommandCloseConsumer {
        consumer_id,
        request_id,
        ..Default::default()
    }));
    c
}

/// SEND (the command part; the metadata and payload go in the payload section).
pub fn send(producer_id: u64, sequence_id: u64, num_messages: Option<i32>) -> BaseCommand {
    let mut c = base(Type::Send);
    c.send = Some(proto::CommandSend {
        producer_id,
        sequence_id,
        num_messages,
        ..Default::default()
    });
    c
}

/// SEEK (set `message_id` or `message_publish_time` on the result).
pub fn seek(consumer_id: u64, request_id: u64) -> BaseCommand {
    let mut c = base(Type::Seek);
    c.seek = Some(Box::new(proto::CommandSeek {
        consumer_id,
        request_id,
        ..Default::default()
    }));
    c
}

/// GET_TOPICS_OF_NAMESPACE: the topics of `namespace` (`tenant/ns`), persistent ones or
/// non-persistent ones.
pub fn get_topics_of_namespace(namespace: &str, persistent: bool, request_id: u64) -> BaseCommand {
    let mut c = base(Type::GetTopicsOfNamespace);
    c.get_topics_of_namespace = Some(Box::new(proto::CommandGetTopicsOfNamespace {
        request_id,
        namespace: namespace.to_owned(),
        mode: Some(if persistent {
            proto::command_get_topics_of_namespace::Mode::Persistent as i32
        } else {
            proto::command_get_topics_of_namespace::Mode::NonPersistent as i32
        }),
        ..Default::default()
    }));
    c
}

/// WATCH_TOPIC_LIST: follow the topics of `namespace` matching `pattern`.
pub fn watch_topic_list(
    request_id: u64,
    watcher_id: u64,
    namespace: &str,
    pattern: &str,
    topics_hash: Option<String>,
) -> BaseCommand {
    let mut c = base(Type::WatchTopicList);
    c.watch_topic_list = Some(Box::new(proto::CommandWatchTopicList {
        request_id,
        watcher_id,
        namespace: namespace.to_owned(),
        topics_pattern: pattern.to_owned(),
        topics_hash,
    }));
    c
}

/// WATCH_TOPIC_LIST_CLOSE.
pub fn watch_topic_list_close(request_id: u64, watcher_id: u64) -> BaseCommand {
    let mut c = base(Type::WatchTopicListClose);
    c.watch_topic_list_close = Some(Box::new(proto::CommandWatchTopicListClose {
        request_id,
        watcher_id,
    }));
    c
}

/// GET_SCHEMA: the registry's schema of `topic` at `version` (`None`: the latest).
pub fn get_schema(request_id: u64, topic: &str, version: Option<&[u8]>) -> BaseCommand {
    let mut c = base(Type::GetSchema);
    c.get_schema = Some(Box::new(proto::CommandGetSchema {
        request_id,
        topic: topic.to_owned(),
        schema_version: version.map(Bytes::copy_from_slice),
    }));
    c
}

/// GET_OR_CREATE_SCHEMA: registers `schema` on `topic` if it is new and compatible; the
/// answer carries its version.
pub fn get_or_create_schema(
    request_id: u64,
    topic: &str,
    schema: proto::Schema,
    producer_name: Option<&str>,
) -> BaseCommand {
    let mut c = base(Type::GetOrCreateSchema);
    c.get_or_create_schema = Some(Box::new(proto::CommandGetOrCreateSchema {
        request_id,
        topic: topic.to_owned(),
        schema,
        producer_name: producer_name.map(str::to_owned),
    }));
    c
}

/// GET_LAST_MESSAGE_ID.
pub fn get_last_message_id(consumer_id: u64, request_id: u64) -> BaseCommand {
    let mut c = base(Type::GetLastMessageId);
    c.get_last_message_id = Some(Box::new(proto::CommandGetLastMessageId {
        consumer_id,
        request_id,
    }));
    c
}

/// TC_CLIENT_CONNECT_REQUEST: opens this connection's session with transaction coordinator
/// `tc_id` (the partition of `transaction_coordinator_assign` it serves).
pub fn tc_client_connect(request_id: u64, tc_id: u64) -> BaseCommand {
    let mut c = base(Type::TcClientConnectRequest);
    c.tc_client_connect_request = Some(Box::new(proto::CommandTcClientConnectRequest {
        request_id,
        tc_id,
    }));
    c
}

/// NEW_TXN on coordinator `tc_id`, timing out after `ttl_millis` (the field has always carried
/// milliseconds, whatever its old name said).
pub fn new_txn(request_id: u64, tc_id: u64, ttl_millis: u64) -> BaseCommand {
    let mut c = base(Type::NewTxn);
    c.new_txn = Some(Box::new(proto::CommandNewTxn {
        request_id,
        txn_ttl_millis: Some(ttl_millis),
        tc_id: Some(tc_id),
    }));
    c
}

/// ADD_PARTITION_TO_TXN: these partitions will be written in the transaction.
pub fn add_partition_to_txn(
    request_id: u64,
    txn: crate::protocol::transaction::TxnId,
    partitions: Vec<String>,
) -> BaseCommand {
    let mut c = base(Type::AddPartitionToTxn);
    c.add_partition_to_txn = Some(Box::new(proto::CommandAddPartitionToTxn {
        request_id,
        txnid_least_bits: Some(txn.least_bits),
        txnid_most_bits: Some(txn.most_bits),
        partitions,
    }));
    c
}

/// ADD_SUBSCRIPTION_TO_TXN: this subscription of this topic will be acknowledged on in the
/// transaction.
pub fn add_subscription_to_txn(
    request_id: u64,
    txn: crate::protocol::transaction::TxnId,
    topic: &str,
    subscription: &str,
) -> BaseCommand {
    let mut c = base(Type::AddSubscriptionToTxn);
    c.add_subscription_to_txn = Some(Box::new(proto::CommandAddSubscriptionToTxn {
        request_id,
        txnid_least_bits: Some(txn.least_bits),
        txnid_most_bits: Some(txn.most_bits),
        subscription: vec![proto::Subscription {
            topic: topic.to_owned(),
            subscription: subscription.to_owned(),
        }],
    }));
    c
}

/// END_TXN: commit or abort.
pub fn end_txn(
    request_id: u64,
    txn: crate::protocol::transaction::TxnId,
    commit: bool,
) -> BaseCommand {
    let mut c = base(Type::EndTxn);
    c.end_txn = Some(Box::new(proto::CommandEndTxn {
        request_id,
        txnid_least_bits: Some(txn.least_bits),
        txnid_most_bits: Some(txn.most_bits),
        txn_action: Some(if commit {
            proto::TxnAction::Commit as i32
        } else {
            proto::TxnAction::Abort as i32
        }),
    }));
    c
}

/// Converts string pairs into protobuf key-values.
pub fn key_values(pairs: &[(String, String)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}
