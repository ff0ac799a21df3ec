//! `pulsar-wire consume`: receives messages, prints them (as text or JSON lines) and
//! acknowledges each one once printed.

use std::io::Write as _;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pulsar_wire::{
    ConsumerCryptoFailureAction, DefaultCryptoKeyReader, EncryptionContext, InitialPosition,
    Message, SubscriptionType, Transaction,
};

use crate::common::{
    abort_after_failure, context, end_transaction, parse_secs, secs, CliError, CliResult,
    ConnectArgs, TxnArgs, TxnEnd,
};
use crate::json;

/// `pulsar-wire consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The topic, e.g. persistent://public/default/my-topic (or just my-topic).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// The subscription name.
    #[arg(long, short = 's', value_name = "NAME")]
    pub subscription: String,

    /// The subscription type.
    #[arg(long = "type", short = 't', value_enum, value_name = "TYPE", default_value_t = SubType::Exclusive)]
    pub sub_type: SubType,

    /// Where a new subscription starts.
    #[arg(long, value_enum, value_name = "POSITION", default_value_t = Initial::Latest)]
    pub initial: Initial,

    /// How many messages to receive before exiting (0: until interrupted or timed out).
    #[arg(
        short = 'n',
        long = "num-messages",
        value_name = "COUNT",
        default_value_t = 1
    )]
    pub count: u64,

    /// How long to wait for each message, in seconds, before failing (0: forever).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub timeout: Duration,

    /// Print one JSON object per message instead of the payload text.
    #[arg(long)]
    pub json: bool,

    /// A PEM private key to decrypt end-to-end encrypted messages with (PKCS#1 or PKCS#8 RSA):
    /// `FILE` for every key name, `NAME=FILE` for one name (repeatable).
    #[arg(long = "crypto-private-key", value_name = "[NAME=]FILE")]
    pub crypto_private_keys: Vec<String>,

    /// What to do with a message that cannot be decrypted (no key, a wrong key): `fail` (an
    /// error; the message stays on the subscription), `discard` (acknowledge it, never print
    /// it), `consume` (print it undecrypted: `--json` shows `"encrypted": true` and its
    /// encryption context).
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = CryptoFailure::Fail)]
    pub crypto_failure_action: CryptoFailure,

    /// `--transaction commit|abort`: acknowledge every message received in one transaction
    /// and end it once COUNT messages came (a failure aborts it); needs a COUNT above 0.
    #[command(flatten)]
    pub txn: TxnArgs,
}

/// Subscription types, as the official CLI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubType {
    /// One consumer at a time.
    Exclusive,
    /// Messages spread over all consumers.
    Shared,
    /// One active consumer, the others standing by.
    Failover,
    /// Messages spread by key.
    #[value(name = "key_shared", alias = "key-shared")]
    KeyShared,
}

impl From<SubType> for SubscriptionType {
    fn from(t: SubType) -> Self {
        match t {
            SubType::Exclusive => SubscriptionType::Exclusive,
            SubType::Shared => SubscriptionType::Shared,
            SubType::Failover => SubscriptionType::Failover,
            SubType::KeyShared => SubscriptionType::KeyShared,
        }
    }
}

/// What a consumer does with a message it cannot decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CryptoFailure {
    /// Fail the receive; the message stays on the subscription.
    Fail,
    /// Acknowledge the message without delivering it.
    Discard,
    /// Deliver it undecrypted, with its encryption context.
    Consume,
}

impl From<CryptoFailure> for ConsumerCryptoFailureAction {
    fn from(a: CryptoFailure) -> Self {
        match a {
            CryptoFailure::Fail => ConsumerCryptoFailureAction::Fail,
            CryptoFailure::Discard => ConsumerCryptoFailureAction::Discard,
            CryptoFailure::Consume => ConsumerCryptoFailureAction::Consume,
        }
    }
}

/// The key reader of `--crypto-private-key`: `FILE` (the default key, at most one) or
/// `NAME=FILE`; `None` without any.
fn private_keys(keys: &[String]) -> CliResult<Option<DefaultCryptoKeyReader>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let mut reader = DefaultCryptoKeyReader::new();
    let mut default = false;
    for k in keys {
        match k.split_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => {
                reader = reader.private_key(name, file);
            }
            Some(_) => {
                return Err(CliError(format!(
                    "--crypto-private-key {k:?}: give FILE or NAME=FILE"
                )))
            }
            None if default => {
                return Err(CliError(
                    "more than one --crypto-private-key FILE without a NAME=: name all but one"
                        .into(),
                ))
            }
            None => {
                default = true;
                reader = reader.default_private_key(k.as_str());
            }
        }
    }
    Ok(Some(reader))
}

/// Initial positions of a new subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Initial {
    /// The first message kept on the topic.
    Earliest,
    /// After the last message.
    Latest,
}

impl From<Initial> for InitialPosition {
    fn from(p: Initial) -> Self {
        match p {
            Initial::Earliest => InitialPosition::Earliest,
            Initial::Latest => InitialPosition::Latest,
        }
    }
}

/// A message's value decoded with the writer's schema (`value`), or why it could not be
/// (`value_error`); `None` when the message has no schema version (the topic has no schema).
pub enum Value {
    /// The value as JSON text.
    Json(String),
    /// Why there is none.
    Error(String),
}

/// The value of `msg` from the registry's schema of its version, as AUTO_CONSUME decodes it.
pub async fn value_of(client: &pulsar_wire::PulsarClient, msg: &Message) -> Option<Value> {
    use pulsar_wire::schema::{AutoConsumeSchema, Decoding, Schema as _};
    let version = msg.schema_version()?;
    let writer = match client.get_schema(msg.topic(), Some(version)).await {
        Ok(Some(registered)) => registered.info,
        Ok(None) => {
            return Some(Value::Error(format!(
                "the registry has no schema version {version}"
            )))
        }
        Err(e) => {
            return Some(Value::Error(format!(
                "cannot fetch schema version {version}: {e}"
            )))
        }
    };
    let key = msg.key_bytes();
    let input = Decoding {
        payload: msg.payload(),
        key: key.as_deref(),
        version: Some(version),
        writer: Some(&writer),
    };
    Some(match AutoConsumeSchema::new().decode(&input) {
        Ok(value) => Value::Json(value.to_json().to_string()),
        Err(e) => Value::Error(e.to_string()),
    })
}

/// One message as a JSON object on one line (no newline): `payload` when the payload is UTF-8,
/// else `payload_base64`; the same for `ordering_key`/`ordering_key_base64`; `null` for what
/// the message does not have; with a schema version, `schema_version` and the decoded `value`
/// (or `value_error`).
pub fn message_json(msg: &Message, value: Option<&Value>) -> String {
    let mut o = json::Object::new();
    o.string("message_id", &msg.id().to_string())
        .string("topic", msg.topic());
    match msg.payload_str() {
        Some(text) => o.string("payload", text),
        None => o.string("payload_base64", &json::base64(msg.payload())),
    };
    o.string_map("properties", msg.properties())
        .opt_string("key", msg.partition_key());
    match msg.ordering_key() {
        None => o.null("ordering_key"),
        Some(k) => match std::str::from_utf8(k) {
            Ok(text) => o.string("ordering_key", text),
            Err(_) => o.string("ordering_key_base64", &json::base64(k)),
        },
    };
    o.opt_number("event_time", msg.event_time())
        .number("publish_time", msg.publish_time())
        .string("producer_name", msg.producer_name())
        .number("redelivery_count", u64::from(msg.redelivery_count()));
    match msg.schema_version() {
        Some(v) => match v.as_u64() {
            Some(n) => o.number("schema_version", n),
            None => o.string("schema_version", &v.to_string()),
        },
        None => o.null("schema_version"),
    };
    match value {
        Some(Value::Json(json)) => o.raw("value", json),
        Some(Value::Error(e)) => o.null("value").string("value_error", e),
        None => o.null("value"),
    };
    o.raw(
        "encrypted",
        if msg.is_encrypted() { "true" } else { "false" },
    );
    if msg.is_encrypted() {
        match msg.encryption_context() {
            Some(ctx) => o.raw("encryption_context", &encryption_context_json(ctx)),
            None => o.null("encryption_context"),
        };
    }
    o.finish()
}

/// The encryption context of an undecrypted message: what it takes to decrypt it.
fn encryption_context_json(ctx: &EncryptionContext) -> String {
    let keys: Vec<String> = ctx
        .keys
        .iter()
        .map(|k| {
            let mut o = json::Object::new();
            o.string("name", &k.name)
                .string("value_base64", &json::base64(&k.value))
                .string_map("metadata", &k.metadata);
            o.finish()
        })
        .collect();
    let mut o = json::Object::new();
    o.raw("keys", &format!("[{}]", keys.join(",")))
        .string("param_base64", &json::base64(&ctx.param))
        .opt_string("algorithm", ctx.algorithm.as_deref())
        .string("compression", ctx.compression.name())
        .number("uncompressed_size", u64::from(ctx.uncompressed_size));
    match ctx.batch_size {
        Some(n) => o.number("batch_size", u64::try_from(n).unwrap_or(0)),
        None => o.null("batch_size"),
    };
    o.finish()
}

/// Runs `consume`.
pub async fn run(args: ConsumeArgs) -> CliResult<()> {
    if args.txn.transaction.is_some() && args.count == 0 {
        return Err(CliError(
            "--transaction needs -n COUNT above 0: the transaction ends after COUNT messages"
                .into(),
        ));
    }
    let keys = private_keys(&args.crypto_private_keys)?;
    let client = args.connect.client()?;
    let mut builder = client
        .consumer(args.topic.as_str())
        .subscription(args.subscription.as_str())
        .subscription_type(args.sub_type.into())
        .initial_position(args.initial.into())
        .crypto_failure_action(args.crypto_failure_action.into());
    if let Some(keys) = keys {
        builder = builder.crypto_key_reader(keys);
    }
    let mut consumer = builder.subscribe().await.map_err(context(format_args!(
        "cannot subscribe to {} as {}",
        args.topic, args.subscription
    )))?;
    let result = match args.txn.open(&client).await {
        Ok(txn) => {
            let received = receive_loop(&args, &client, &mut consumer, txn.as_ref()).await;
            match (txn, args.txn.transaction) {
                (Some(txn), Some(end)) => finish_transaction(&txn, end, received).await,
                _ => received.map(|_| ()),
            }
        }
        Err(e) => Err(e),
    };
    // Closing sends nothing that matters for the result: the acks went out before it.
    if let Err(e) = consumer.close().await {
        tracing::warn!("closing the consumer failed: {e}");
    }
    let _ = client.close().await;
    result
}

/// Ends the transaction of `consume --transaction` after the receive loop: as `end` says when
/// the loop succeeded (reported on stderr, stdout being the messages), aborted when it failed.
async fn finish_transaction(
    txn: &Transaction,
    end: TxnEnd,
    received: CliResult<u64>,
) -> CliResult<()> {
    match received {
        Ok(n) => {
            let done = end_transaction(txn, end).await?;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{done} ({n} messages acknowledged in it)"
            );
            Ok(())
        }
        Err(CliError(text)) => {
            let note = abort_after_failure(txn).await;
            Err(CliError(format!("{text}{note}")))
        }
    }
}

/// Receives, prints and acknowledges (in `txn` if given) until the count; how many came.
async fn receive_loop(
    args: &ConsumeArgs,
    client: &pulsar_wire::PulsarClient,
    consumer: &mut pulsar_wire::Consumer,
    txn: Option<&Transaction>,
) -> CliResult<u64> {
    let mut received = 0u64;
    while args.count == 0 || received < args.count {
        let msg = if args.timeout.is_zero() {
            consumer.receive().await
        } else {
            match consumer.receive_timeout(args.timeout).await {
                Ok(Some(msg)) => Ok(msg),
                Ok(None) => {
                    let of = if args.count == 0 {
                        String::new()
                    } else {
                        format!(" of {}", args.count)
                    };
                    return Err(CliError(format!(
                        "timed out after {} waiting for a message on {} (received {received}{of})",
                        secs(args.timeout),
                        args.topic
                    )));
                }
                Err(e) => Err(e),
            }
        }
        .map_err(context("receiving failed"))?;
        let line = if args.json {
            let value = value_of(client, &msg).await;
            message_json(&msg, value.as_ref())
        } else {
            String::from_utf8_lossy(msg.payload()).into_owned()
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError(format!("cannot write to stdout: {e}")))?;
        drop(out);
        match txn {
            Some(txn) => consumer.ack_with_transaction(&msg, txn).await,
            None => consumer.ack(&msg).await,
        }
        .map_err(context(format_args!("acknowledging {} failed", msg.id())))?;
        received += 1;
    }
    Ok(received)
}
