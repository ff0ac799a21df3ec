//! Compiles `proto/PulsarApi.proto` with prost. The schema is parsed by `protox`, a pure-Rust
//! protobuf compiler, so no `protoc` binary is needed on the machine.

/// The sub-messages of `BaseCommand` that stay inline (`Option<CommandX>`): the per-message
/// commands of the produce and consume paths, and the keepalive.
const BASE_COMMAND_INLINE: &[&str] = &[
    "send",
    "send_receipt",
    "message",
    "ack",
    "flow",
    "ping",
    "pong",
];

/// The other message fields of `BaseCommand`, boxed (`Option<Box<CommandX>>`). Inline, these
/// ~50 cold commands made `BaseCommand` about 5 KB, and every frame, inbound event and queued
/// command moved that by value (memmove was about a quarter of the consumer's CPU). Boxed, a
/// cold command costs one allocation when it is decoded or built, which its rarity pays for.
/// Names as in the proto file; `main` checks that the two lists cover every message field of
/// `BaseCommand` (prost ignores a `boxed` path that matches nothing).
const BASE_COMMAND_BOXED: &[&str] = &[
    "connect",
    "connected",
    "subscribe",
    "producer",
    "send_error",
    "unsubscribe",
    "success",
    "error",
    "close_producer",
    "close_consumer",
    "producer_success",
    "redeliverUnacknowledgedMessages",
    "partitionMetadata",
    "partitionMetadataResponse",
    "lookupTopic",
    "lookupTopicResponse",
    "consumerStats",
    "consumerStatsResponse",
    "reachedEndOfTopic",
    "seek",
    "getLastMessageId",
    "getLastMessageIdResponse",
    "active_consumer_change",
    "getTopicsOfNamespace",
    "getTopicsOfNamespaceResponse",
    "getSchema",
    "getSchemaResponse",
    "authChallenge",
    "authResponse",
    "ackResponse",
    "getOrCreateSchema",
    "getOrCreateSchemaResponse",
    "newTxn",
    "newTxnResponse",
    "addPartitionToTxn",
    "addPartitionToTxnResponse",
    "addSubscriptionToTxn",
    "addSubscriptionToTxnResponse",
    "endTxn",
    "endTxnResponse",
    "endTxnOnPartition",
    "endTxnOnPartitionResponse",
    "endTxnOnSubscription",
    "endTxnOnSubscriptionResponse",
    "tcClientConnectRequest",
    "tcClientConnectResponse",
    "watchTopicList",
    "watchTopicListSuccess",
    "watchTopicUpdate",
    "watchTopicListClose",
    "topicMigrated",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/PulsarApi.proto");
    let descriptors = protox::compile(["proto/PulsarApi.proto"], ["proto"])?;

    // Every message field of BaseCommand is in exactly one of the two lists.
    let base_command = descriptors
        .file
        .iter()
        .filter(|file| file.package() == "pulsar.proto")
        .flat_map(|file| &file.message_type)
        .find(|message| message.name() == "BaseCommand")
        .ok_or("proto/PulsarApi.proto: no message pulsar.proto.BaseCommand")?;
    let mut message_fields: Vec<&str> = base_command
        .field
        .iter()
        .filter(|field| field.r#type().as_str_name() == "TYPE_MESSAGE")
        .map(|field| field.name())
        .collect();
    let mut listed: Vec<&str> = BASE_COMMAND_INLINE
        .iter()
        .chain(BASE_COMMAND_BOXED)
        .copied()
        .collect();
    message_fields.sort_unstable();
    listed.sort_unstable();
    if message_fields != listed {
        return Err(format!(
            "build.rs: BASE_COMMAND_INLINE + BASE_COMMAND_BOXED must list each message field of \
             BaseCommand once; the proto has {message_fields:?}, the lists have {listed:?}"
        )
        .into());
    }

    let mut config = prost_build::Config::new();
    // `bytes` fields become `bytes::Bytes`: decoding from a `Bytes` buffer slices it, no copy.
    config.bytes(["."]);
    for field in BASE_COMMAND_BOXED {
        config.boxed(format!(".pulsar.proto.BaseCommand.{field}"));
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
