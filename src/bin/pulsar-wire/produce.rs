//! `pulsar-wire produce`: sends messages, many in flight, and prints a summary.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use pulsar_wire::compression::Compression as Codec;
use pulsar_wire::schema::{AvroSchema, JsonSchema, Schema as _, SchemaInfo};
use pulsar_wire::{DefaultCryptoKeyReader, Error, MessageId, ProducerMessage, SendReceipt};
use tokio::sync::mpsc;

use crate::common::{
    abort_after_failure, context, end_transaction, CliError, CliResult, ConnectArgs, TxnArgs,
};

/// What `{i}` in a message text, key or property value becomes: the message's index.
const INDEX: &str = "{i}";

/// `pulsar-wire produce`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("payload").required(true).args(["message", "size", "value_json"])))]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The topic, e.g. persistent://public/default/my-topic (or just my-topic).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// The message text; `{i}` becomes the message's index (0-based).
    #[arg(short = 'm', long = "message", value_name = "TEXT")]
    pub message: Option<String>,

    /// Send payloads of this many bytes instead of a text.
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,

    /// The value of each message as JSON (with `--schema json` or `avro`): written as JSON
    /// text, or as the Avro binary record of the schema's definition; `{i}` becomes the
    /// message's index.
    #[arg(long, value_name = "JSON")]
    pub value_json: Option<String>,

    /// The schema to declare (the topic's registry checks it): `string` (the message text),
    /// `json` or `avro` (with `--schema-definition` and `--value-json`). Default: none (bytes).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub schema: Option<SchemaKind>,

    /// The schema's definition: an Avro record in JSON (the form the Java client registers for
    /// JSON and Avro schemas), or `@FILE` to read it from a file.
    #[arg(long, value_name = "DEFINITION")]
    pub schema_definition: Option<String>,

    /// How many messages to send.
    #[arg(
        short = 'n',
        long = "num-messages",
        value_name = "COUNT",
        default_value_t = 1
    )]
    pub count: u64,

    /// A message property (repeatable); `{i}` in the value becomes the message's index.
    #[arg(long = "property", short = 'p', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,

    /// The message key (routes to a partition); `{i}` becomes the message's index.
    #[arg(long, short = 'k', value_name = "KEY")]
    pub key: Option<String>,

    /// The ordering key (Key_Shared ordering); `{i}` becomes the message's index.
    #[arg(long, value_name = "KEY")]
    pub ordering_key: Option<String>,

    /// Send at most this many messages per second (default: as fast as possible).
    #[arg(long, short = 'r', value_name = "MSGS_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Send every message on its own (batching is on by default).
    #[arg(long)]
    pub no_batching: bool,

    /// Split messages larger than the max message size into chunks (turns batching off).
    #[arg(long)]
    pub chunking: bool,

    /// Compression codec (raw LZ4 and Snappy blocks, zlib, zstd, as the official clients).
    #[arg(long, value_enum, value_name = "CODEC", default_value_t = Compression::None)]
    pub compression: Compression,

    /// Encrypt every message end to end for this key name (repeatable: each name's private
    /// key opens it); needs `--crypto-public-key`.
    #[arg(
        long = "encryption-key",
        value_name = "NAME",
        requires = "crypto_public_keys"
    )]
    pub encryption_keys: Vec<String>,

    /// The PEM public key of the `--encryption-key` names: one for every name, or one per
    /// name, in the order of the names (SubjectPublicKeyInfo or PKCS#1 RSA public keys).
    #[arg(
        long = "crypto-public-key",
        value_name = "FILE",
        requires = "encryption_keys"
    )]
    pub crypto_public_keys: Vec<String>,

    /// Print the id of every message sent (and every failure, on stderr).
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// `--transaction commit|abort`: send every message in one transaction, then commit or
    /// abort it (a failed send aborts it).
    #[command(flatten)]
    pub txn: TxnArgs,
}

/// The schemas `produce --schema` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// UTF-8 text.
    String,
    /// JSON text, described by an Avro record definition.
    Json,
    /// Avro binary records.
    Avro,
}

/// How the payload of each message is made from the value, with the schema declared.
#[derive(Debug)]
enum Encoder {
    /// The payload as given (no schema, or the string schema).
    Plain(Option<SchemaInfo>),
    /// JSON text checked against nothing but JSON itself (the broker checks the schema).
    Json(JsonSchema<serde_json::Value>),
    /// The value as the Avro record of the definition.
    Avro(Box<AvroSchema<serde_json::Value>>),
}

impl Encoder {
    fn new(args: &ProduceArgs) -> CliResult<Self> {
        let definition = || -> CliResult<String> {
            let def = args.schema_definition.as_deref().ok_or_else(|| {
                CliError("--schema json and --schema avro need --schema-definition".into())
            })?;
            match def.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| {
                    CliError(format!("cannot read the schema definition {path}: {e}"))
                }),
                None => Ok(def.to_owned()),
            }
        };
        let needs_value = |kind: &str| -> CliResult<()> {
            match args.value_json {
                Some(_) => Ok(()),
                None => Err(CliError(format!("--schema {kind} needs --value-json"))),
            }
        };
        let invalid =
            |e: pulsar_wire::schema::SchemaError| CliError(format!("invalid schema: {e}"));
        Ok(match args.schema {
            None => Encoder::Plain(None),
            Some(SchemaKind::String) => Encoder::Plain(Some(SchemaInfo::string())),
            Some(SchemaKind::Json) => {
                needs_value("json")?;
                Encoder::Json(JsonSchema::with_definition(definition()?).map_err(invalid)?)
            }
            Some(SchemaKind::Avro) => {
                needs_value("avro")?;
                Encoder::Avro(Box::new(
                    AvroSchema::with_definition(definition()?).map_err(invalid)?,
                ))
            }
        })
    }

    fn info(&self) -> Option<SchemaInfo> {
        match self {
            Encoder::Plain(info) => info.clone(),
            Encoder::Json(s) => Some(s.info()),
            Encoder::Avro(s) => Some(s.info()),
        }
    }

    /// The payload of a `--value-json` text.
    fn encode(&self, text: &str) -> CliResult<Bytes> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CliError(format!("--value-json is not JSON: {e}")))?;
        let encoded = match self {
            Encoder::Plain(_) => return Ok(Bytes::from(text.to_owned())),
            Encoder::Json(s) => s.encode(&value),
            Encoder::Avro(s) => s.encode(&value),
        };
        encoded
            .map(|e| e.payload)
            .map_err(|e| CliError(format!("the value does not fit the schema: {e}")))
    }
}

/// The compression codecs of the official clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4.
    Lz4,
    /// zlib.
    Zlib,
    /// Zstandard.
    Zstd,
    /// Snappy.
    Snappy,
}

impl From<Compression> for Codec {
    fn from(c: Compression) -> Codec {
        match c {
            Compression::None => Codec::None,
            Compression::Lz4 => Codec::Lz4,
            Compression::Zlib => Codec::Zlib,
            Compression::Zstd => Codec::Zstd,
            Compression::Snappy => Codec::Snappy,
        }
    }
}

/// Parses `key=value`.
fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Parses a rate: a number of messages per second, zero meaning no limit.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a number of messages per second")),
    }
}

/// `template` with `{i}` replaced by `i`.
fn fill(template: &str, i: u64) -> String {
    if template.contains(INDEX) {
        template.replace(INDEX, &i.to_string())
    } else {
        template.to_string()
    }
}

/// Makes message `i` from the options.
#[derive(Debug)]
struct Messages {
    /// The payload when it is the same for every message.
    fixed: Option<Bytes>,
    text: Option<String>,
    /// `--value-json`, encoded with the schema.
    value: Option<(String, std::sync::Arc<Encoder>)>,
    properties: Vec<(String, String)>,
    key: Option<String>,
    ordering_key: Option<String>,
}

impl Messages {
    fn new(args: &ProduceArgs, encoder: std::sync::Arc<Encoder>) -> CliResult<Self> {
        let value = args.value_json.clone().map(|v| (v, encoder));
        let fixed = match (&args.message, args.size, &value) {
            (_, _, Some((text, encoder))) if !text.contains(INDEX) => Some(encoder.encode(text)?),
            (_, _, Some(_)) => None,
            (Some(text), _, _) if !text.contains(INDEX) => Some(Bytes::from(text.clone())),
            (Some(_), _, _) => None,
            // Printable, so that `consume` shows it as text.
            (None, Some(size), _) => Some(Bytes::from(
                (0..size)
                    .map(|j| b"0123456789abcdefghijklmnopqrstuvwxyz"[j % 36])
                    .collect::<Vec<u8>>(),
            )),
            (None, None, _) => Some(Bytes::new()),
        };
        Ok(Messages {
            fixed,
            value,
            text: args.message.clone(),
            properties: args.properties.clone(),
            key: args.key.clone(),
            ordering_key: args.ordering_key.clone(),
        })
    }

    fn make(&self, i: u64) -> CliResult<ProducerMessage> {
        let payload = match (&self.fixed, &self.value, &self.text) {
            (Some(p), _, _) => p.clone(),
            (None, Some((value, encoder)), _) => encoder.encode(&fill(value, i))?,
            (None, None, Some(text)) => Bytes::from(fill(text, i)),
            (None, None, None) => Bytes::new(),
        };
        let mut msg = ProducerMessage::new(payload);
        for (k, v) in &self.properties {
            msg = msg.property(k.clone(), fill(v, i));
        }
        if let Some(key) = &self.key {
            msg = msg.partition_key(fill(key, i));
        }
        if let Some(key) = &self.ordering_key {
            msg = msg.ordering_key(fill(key, i));
        }
        Ok(msg)
    }
}

/// What the receipts said.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    bytes: u64,
    failed: u64,
    first_error: Option<(u64, Error)>,
}

impl Tally {
    fn fail(&mut self, i: u64, e: Error, verbose: bool) {
        if verbose {
            let _ = writeln!(std::io::stderr().lock(), "message {i} failed: {e}");
        }
        self.failed += 1;
        self.first_error.get_or_insert((i, e));
    }
}

/// One queued send: its index, its payload size and its receipt.
type Pending = (u64, usize, SendReceipt);

/// Awaits the receipts in the order of the sends, printing ids with `verbose`.
async fn collect(mut rx: mpsc::UnboundedReceiver<Pending>, verbose: bool) -> Tally {
    let mut tally = Tally::default();
    let mut stdout_ok = true;
    while let Some((i, size, receipt)) = rx.recv().await {
        match receipt.await {
            Ok(id) => {
                tally.sent += 1;
                tally.bytes += size as u64;
                if verbose && stdout_ok {
                    stdout_ok = print_id(&mut std::io::stdout().lock(), id).is_ok();
                }
            }
            Err(e) => tally.fail(i, e, verbose),
        }
    }
    let _ = std::io::stdout().flush();
    tally
}

/// The key reader of `--encryption-key` and `--crypto-public-key`: one public key for every
/// name, or one per name in order; `None` without names.
fn public_keys(names: &[String], files: &[String]) -> CliResult<Option<DefaultCryptoKeyReader>> {
    match (names.len(), files.len()) {
        (0, 0) => Ok(None),
        (_, 1) => Ok(Some(
            DefaultCryptoKeyReader::new().default_public_key(files[0].as_str()),
        )),
        (n, f) if n == f => Ok(Some(
            names
                .iter()
                .zip(files)
                .fold(DefaultCryptoKeyReader::new(), |r, (name, file)| {
                    r.public_key(name.as_str(), file.as_str())
                }),
        )),
        (n, f) => Err(CliError(format!(
            "{n} --encryption-key names and {f} --crypto-public-key files: give one public key \
             for every name, or one per name in the order of the names"
        ))),
    }
}

fn print_id(out: &mut impl std::io::Write, id: MessageId) -> std::io::Result<()> {
    writeln!(out, "{id}")
}

/// Runs `produce`.
pub async fn run(args: ProduceArgs) -> CliResult<()> {
    let encoder = std::sync::Arc::new(Encoder::new(&args)?);
    let messages = Messages::new(&args, encoder.clone())?;
    let client = args.connect.client()?;
    let mut builder = client.producer(args.topic.as_str());
    if let Some(info) = encoder.info() {
        builder = builder.schema_info(info);
    }
    if let Some(reader) = public_keys(&args.encryption_keys, &args.crypto_public_keys)? {
        for name in &args.encryption_keys {
            builder = builder.encryption_key(name.as_str());
        }
        builder = builder.crypto_key_reader(reader);
    }
    let producer = builder
        .block_if_queue_full(true)
        .batching(!args.no_batching)
        .chunking(args.chunking)
        .compression(args.compression.into())
        .create()
        .await
        .map_err(context(format_args!(
            "cannot create a producer on {}",
            args.topic
        )))?;
    let txn = args.txn.open(&client).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(rx, args.verbose));
    let start = Instant::now();
    let rate = args.rate.filter(|r| *r > 0.0);
    let mut stopped = None;
    for i in 0..args.count {
        if let Some(rate) = rate {
            // Message i is due i / rate seconds after the start.
            if let Some(due) = Duration::try_from_secs_f64(i as f64 / rate)
                .ok()
                .and_then(|d| start.checked_add(d))
            {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let mut msg = match messages.make(i) {
            Ok(msg) => msg,
            Err(CliError(text)) => {
                stopped = Some((i, Error::InvalidConfig(text)));
                break;
            }
        };
        if let Some(txn) = &txn {
            msg = msg.transaction(txn);
        }
        let size = msg.payload.len();
        match producer.send_async(msg).await {
            Ok(receipt) => {
                if tx.send((i, size, receipt)).is_err() {
                    break;
                }
            }
            Err(e) => {
                // The producer cannot take more (closed, message too large): stop sending.
                stopped = Some((i, e));
                break;
            }
        }
    }
    drop(tx);
    let mut tally = collector
        .await
        .map_err(|e| CliError(format!("the receipt task failed: {e}")))?;
    let elapsed = start.elapsed();
    let not_sent = match stopped {
        Some((i, e)) => {
            tally.fail(i, e, args.verbose);
            args.count - i - 1
        }
        None => 0,
    };
    let mut summary = writeln!(
        std::io::stdout().lock(),
        "produced {} messages ({} bytes) in {:.3} s, {} failed",
        tally.sent,
        tally.bytes,
        elapsed.as_secs_f64(),
        tally.failed
    );
    // The transaction ends after the last receipt: with a failed send it is aborted whatever
    // --transaction says (a commit would abort it anyway).
    let mut txn_note = String::new();
    let mut txn_error = None;
    if let (Some(txn), Some(end)) = (&txn, args.txn.transaction) {
        if tally.first_error.is_some() {
            txn_note = abort_after_failure(txn).await;
        } else {
            match end_transaction(txn, end).await {
                Ok(done) => {
                    if summary.is_ok() {
                        summary = writeln!(std::io::stdout().lock(), "{done}");
                    }
                }
                Err(e) => txn_error = Some(e),
            }
        }
    }
    if let Err(e) = producer.close().await {
        tracing::warn!("closing the producer failed: {e}");
    }
    let _ = client.close().await;
    if let Some(e) = txn_error {
        return Err(e);
    }
    match tally.first_error {
        None => summary.map_err(|e| CliError(format!("cannot write to stdout: {e}"))),
        Some((i, e)) => {
            let mut text = format!(
                "{} of {} messages failed (first: message {i}: {e})",
                tally.failed, args.count
            );
            if not_sent > 0 {
                text.push_str(&format!("; stopped, {not_sent} messages not sent"));
            }
            text.push_str(&txn_note);
            Err(CliError(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_templates() {
        assert_eq!(fill("msg-{i}", 7), "msg-7");
        assert_eq!(fill("{i}/{i}", 12), "12/12");
        assert_eq!(fill("plain", 3), "plain");
    }

    #[test]
    fn properties_parse() {
        assert_eq!(parse_property("k=v=w"), Ok(("k".into(), "v=w".into())));
        assert_eq!(parse_property("k="), Ok(("k".into(), String::new())));
        assert!(parse_property("=v").is_err());
        assert!(parse_property("kv").is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("NaN").is_err());
    }
}
