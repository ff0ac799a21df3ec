//! Script-driven fuzzing of the sans-IO cores and of the crypto key parsers (compiled in tests
//! and with the `unstable` feature, for `fuzz/fuzz_targets/core_events.rs` and
//! `fuzz/fuzz_targets/crypto_keys.rs`; no stability promise).
//!
//! [`consumer_events`] and [`producer_events`] read their input as a script: the first bytes
//! choose the core's settings, then each op byte picks an event and the bytes after it give
//! its arguments; running out of bytes ends the script, and a script runs at most
//! [`MAX_OPS`] ops, with small payloads, so that one input takes well under a millisecond.
//! Time is simulated: a base `Instant` plus offsets the script gives; nothing sleeps. The
//! driver plays the shell (it carries out the outputs, answers waiters, hands messages to the
//! application), the application (its commands reach the core through a channel, as in the
//! client, so they may arrive late) and a broker that sends anything: messages with arbitrary
//! ids, batch metadata, redelivery counts, ack sets, compression, chunk and encryption fields
//! and garbage payloads; receipts right, early, duplicated or for sequence ids never sent; send
//! errors and attach failures with arbitrary codes; CLOSE_PRODUCER / CLOSE_CONSUMER and lost
//! connections.
//!
//! After every step (one op, with every output drained) it asserts, for the consumer:
//!
//! - nothing panics (no arithmetic overflow in debug builds, no slice out of bounds);
//! - **permits**: per attachment, the FLOW permits written minus the permits the broker's
//!   messages consumed (`num_messages_in_batch`, at least 1, per MESSAGE) never exceed the
//!   receiver queue size;
//! - **no permit leak**: while attached, written permits + permits on their way from the
//!   application (same attachment) − consumed + messages queued for the application + permits
//!   counted and not yet given back = the receiver queue size: every message the broker pushed
//!   is queued, or its permit comes back;
//! - the count of queued messages (`in_queue`) is exactly the queued deliveries of the
//!   current epoch;
//! - commands are written only while attached, all for this consumer id; deliveries name this
//!   consumer's partition and topic, and a batch index is within its batch size;
//! - a reader (non-durable subscription) hands the application strictly increasing ids
//!   between seeks: no duplicate;
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than `now` (everything
//!   due was done);
//! - `Ready` comes at most once, nothing is asked after `Failed`; at the end (the channel
//!   drained, the core closed) every ack waiter was answered exactly once.
//!
//! For the producer:
//!
//! - nothing panics; every send completes at most once; a send after close completes at once
//!   with an error;
//! - successful completions follow the order of the sends (for key-based batching: per key);
//!   a batch's ids have their index within the batch size;
//! - frames are written only while attached, and each is a valid SEND of this producer;
//!   nothing is asked after the last action (`Close` or `Failed`);
//! - after `handle_timeout(now)`, `poll_timeout()` is `None` or later than `now`;
//! - at the end the script's connection drops, the producer is closed and a broker that
//!   answers every attach and every SEND in order takes over: the producer must end, and then
//!   every send has completed (a receipt or an error: nothing silently dropped) and every flush
//!   and close waiter was answered exactly once.
//!
//! [`crypto_keys`] reads its input as PEM text, as DER inside PEM armour, as a `data:` URL of a
//! [`DefaultCryptoKeyReader`](crate::crypto::DefaultCryptoKeyReader), as a key pair for an
//! encrypt-decrypt round trip, or as the encryption fields of a message for the decryptor (with
//! a valid data key sometimes, so that AES-GCM sees arbitrary IVs and payloads): nothing
//! panics, errors are typed and say something, and whatever decrypts is the plaintext.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::compression::{self, Compression};
use crate::consumer::{ConsumerCryptoFailureAction, InitialPosition, SubscriptionType};
use crate::error::{ConnectionError, Error, ServerError, ServerErrorCode};
use crate::message::{Message, ProducerMessage};
use crate::producer::AccessMode;
use crate::protocol::backoff::Backoff;
use crate::protocol::clock::WallClock;
use crate::protocol::connection::{ConsumerEvent, ProducerEvent};
use crate::protocol::consumer::{
    AckWaiter, ChildConfig, ConsumerCore, ConsumerShared, CoreCommand, Delivery, Output,
    SeekTarget, StartPosition,
};
use crate::protocol::producer::batch::BatchLimits;
use crate::protocol::producer::{
    Action, Attached, Completion, PartitionConfig, ProducerCore, Waiter,
};
use crate::protocol::topic::TopicName;
use crate::wire::{self, proto, MessageId};

/// The most ops one script runs.
pub const MAX_OPS: usize = 256;

/// The topic of the fuzzed cores.
const TOPIC: &str = "persistent://public/default/fuzz";
/// The consumer's id.
const CONSUMER_ID: u64 = 1;
/// The producer's id.
const PRODUCER_ID: u64 = 7;
/// At most this many sends await completion; more sends are skipped (bounds the work of a
/// reconnect, which writes every pending SEND again).
const MAX_OUTSTANDING: usize = 32;
/// The end of a producer script: at most this many steps of the cooperative broker.
const WIND_DOWN_STEPS: usize = 20_000;

/// In tests with `FUZZ_TRACE` set: prints what a script does.
fn trace(args: std::fmt::Arguments<'_>) {
    #[cfg(test)]
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("{args}");
    }
    #[cfg(not(test))]
    let _ = args;
}

/// A MESSAGE for entry `1:entry` of the fuzzed consumer (id 1), as the connection routes it
/// (also the consumer core's simulated-time tests' builder).
pub(crate) fn message_event(
    entry: u64,
    metadata: proto::MessageMetadata,
    data: Bytes,
) -> ConsumerEvent {
    ConsumerEvent::Message {
        command: proto::CommandMessage {
            consumer_id: CONSUMER_ID,
            message_id: proto::MessageIdData {
                ledger_id: 1,
                entry_id: entry,
                ..Default::default()
            },
            ..Default::default()
        },
        payload: wire::Payload {
            broker_entry_metadata: None,
            checksum: None,
            metadata,
            data,
        },
    }
}

// ---- the script ---------------------------------------------------------------------------------

/// The bytes of a script, read front to back; every read is `None` once they run out.
struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    fn new(data: &'a [u8]) -> Self {
        Script { data }
    }

    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    fn u64(&mut self) -> Option<u64> {
        Some((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    /// A byte below `n`.
    fn below(&mut self, n: u8) -> Option<u8> {
        Some(self.u8()? % n.max(1))
    }

    fn flag(&mut self) -> Option<bool> {
        Some(self.u8()? & 1 == 1)
    }

    /// Up to `max` bytes: a length byte, then that many.
    fn bytes(&mut self, max: usize) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?) % (max + 1);
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    /// A number, mostly small: the top bits of the first byte pick 6 bits, 1, 2 or 8 bytes.
    fn number(&mut self) -> Option<u64> {
        let b = self.u8()?;
        Some(match b >> 6 {
            0 => u64::from(b & 0x3f),
            1 => u64::from(self.u8()?),
            2 => u64::from(self.u16()?),
            _ => self.u64()?,
        })
    }

    /// A number as an `i32` (large ones wrap to negative values).
    fn int(&mut self) -> Option<i32> {
        Some(self.number()? as i32)
    }

    /// How far the clock moves: milliseconds to hours.
    fn advance(&mut self) -> Option<Duration> {
        let b = self.u8()?;
        let v = u64::from(b & 0x3f);
        Some(match b >> 6 {
            0 => Duration::from_millis(v),
            1 => Duration::from_millis(v * 50),
            2 => Duration::from_secs(v * 2),
            _ => Duration::from_secs(u64::from(self.u16()?)),
        })
    }

    /// A message id, mostly on a few ledgers and small entries.
    fn message_id(&mut self) -> Option<MessageId> {
        let shape = self.u8()?;
        let mut id = MessageId::new(i64::from(shape & 3), self.number()? as i64);
        if shape & 4 != 0 {
            id.ledger_id = self.number()? as i64;
        }
        if shape & 8 != 0 {
            id = id.with_batch(self.int()?, self.int()?);
        }
        if shape & 16 != 0 {
            id.partition = self.int()?;
        }
        if shape & 32 != 0 {
            id.first_chunk = Some(wire::ChunkStart {
                ledger_id: id.ledger_id,
                entry_id: self.number()? as i64,
            });
        }
        Some(id)
    }

    /// A server error code: a known one mostly, any number sometimes.
    fn server_code(&mut self) -> Option<ServerErrorCode> {
        let b = self.u8()?;
        Some(if b & 0x80 == 0 {
            ServerErrorCode::from_i32(i32::from(b % 32))
        } else {
            ServerErrorCode::from_i32(self.int()?)
        })
    }

    /// A connection error, as a connection reports its end.
    fn connection_error(&mut self) -> Option<ConnectionError> {
        Some(match self.below(4)? {
            0 => ConnectionError::ClosedByBroker,
            1 => ConnectionError::Closed,
            2 => ConnectionError::KeepaliveTimeout(Duration::from_secs(30)),
            _ => ConnectionError::Protocol("fuzz".into()),
        })
    }
}

fn server_error(operation: &'static str, code: ServerErrorCode) -> Error {
    Error::Server {
        operation,
        error: ServerError {
            code,
            message: "fuzz".into(),
        },
    }
}

// ---- encryption fixtures ------------------------------------------------------------------------

/// The private key of a P-256 key pair made from a fixed scalar, messages encrypted for it, and
/// encryptors for its public key.
#[cfg(feature = "encryption")]
struct CryptoFixture {
    private_pem: String,
    /// A single message's metadata, sealed payload and plaintext.
    single: (proto::MessageMetadata, Bytes, Vec<u8>),
    /// A batch of two.
    batch: (proto::MessageMetadata, Bytes, Vec<u8>),
    /// Producer encryptors for the public key, with crypto failure action Fail and Send
    /// (cloned: making one costs an ECIES encryption).
    encryptors: [crate::crypto::MessageEncryptor; 2],
}

/// What the fixture's single message says.
#[cfg(feature = "encryption")]
const PLAINTEXT: &[u8] = b"hello, fuzz";

#[cfg(feature = "encryption")]
fn fixture() -> Option<&'static CryptoFixture> {
    static FIXTURE: std::sync::OnceLock<Option<CryptoFixture>> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(make_fixture).as_ref()
}

#[cfg(feature = "encryption")]
fn make_fixture() -> Option<CryptoFixture> {
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    let secret = p256::SecretKey::from_slice(&[0x42; 32]).ok()?;
    let private_pem = secret.to_sec1_pem(LineEnding::LF).ok()?.to_string();
    let public_pem = secret.public_key().to_public_key_pem(LineEnding::LF).ok()?;
    let now = Instant::now();
    let encryptor = |failure_action| {
        crate::crypto::MessageEncryptor::new(
            crate::crypto::ProducerEncryption {
                reader: Arc::new(
                    crate::crypto::DefaultCryptoKeyReader::new().default_public_key(&public_pem),
                ),
                key_names: vec!["fuzz".into()],
                failure_action,
            },
            now,
        )
        .ok()
    };
    let encryptors = [
        encryptor(crate::crypto::ProducerCryptoFailureAction::Fail)?,
        encryptor(crate::crypto::ProducerCryptoFailureAction::Send)?,
    ];
    let mut enc = encryptors[0].clone();
    let mut seal = |payload: &[u8], batch: Option<i32>| {
        let mut md = proto::MessageMetadata {
            producer_name: "fuzz".into(),
            num_messages_in_batch: batch,
            ..Default::default()
        };
        enc.prepare(&mut md, now);
        enc.seal(&mut md, payload)
            .ok()
            .map(|sealed| (md, sealed, payload.to_vec()))
    };
    let single = seal(PLAINTEXT, None)?;
    let mut entries = BytesMut::new();
    for p in [&b"one"[..], b"two"] {
        wire::encode_entry(
            &mut proto::SingleMessageMetadata::default(),
            p,
            &mut entries,
        );
    }
    let batch = seal(&entries, Some(2))?;
    Some(CryptoFixture {
        private_pem,
        single,
        batch,
        encryptors,
    })
}

// ---- the consumer -------------------------------------------------------------------------------

/// How the waiters (acks; the producer's flushes and closes) fared.
#[derive(Debug, Default)]
struct WaiterLog {
    created: usize,
    answered: usize,
    dropped_unanswered: usize,
}

/// A waiter (for an ack, a flush or a close) that records its answer, and its drop without one.
#[derive(Debug)]
struct Recorder {
    log: Rc<RefCell<WaiterLog>>,
    answered: bool,
}

impl Recorder {
    fn new(log: &Rc<RefCell<WaiterLog>>) -> Self {
        log.borrow_mut().created += 1;
        Recorder {
            log: log.clone(),
            answered: false,
        }
    }
}

impl AckWaiter for Recorder {
    fn answer(mut self, _result: Result<(), Error>) {
        self.answered = true;
        self.log.borrow_mut().answered += 1;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.answered {
            if let Ok(mut log) = self.log.try_borrow_mut() {
                log.dropped_unanswered += 1;
            }
        }
    }
}

/// Deliveries queued for the application past this many: messages are no longer sent (the
/// core hands messages back beyond 10,000, which the permit accounting does not model).
const QUEUE_GUARD: u32 = 9_000;

/// The consumer core, its shell, its application and a hostile broker. See the module docs.
struct ConsumerHarness {
    now: Instant,
    core: ConsumerCore<Recorder>,
    shared: Arc<ConsumerShared>,
    queue_size: u32,
    durable: bool,
    ack_receipts: bool,
    log: Rc<RefCell<WaiterLog>>,
    /// The attach asked for and not answered yet.
    attach_epoch: Option<u64>,
    attached: bool,
    /// FLOW permits written and permits consumed by the broker's messages, this attachment.
    granted: i64,
    consumed: i64,
    /// A message came while not attached (the shell never routes one then): the permit
    /// accounting is off until the next attach.
    stray: bool,
    /// Deliveries on their way to the application (the shell's channel).
    app_queue: VecDeque<Delivery>,
    /// The application's commands on their way to the core.
    channel: VecDeque<CoreCommand<Recorder>>,
    /// Messages the application has, to acknowledge.
    taken: VecDeque<Message>,
    /// Waiters the shell holds (ack requests, transactional acks) until the broker answers.
    held: Vec<Recorder>,
    /// A reader's last id handed to the application since the last seek.
    last_taken: Option<(i64, i64, i32)>,
    ready: bool,
    failed: bool,
}

/// A consumer core from the script's first bytes.
fn consumer_setup(s: &mut Script<'_>, now: Instant) -> Option<ConsumerHarness> {
    let b0 = s.u8()?;
    let b1 = s.u8()?;
    let b2 = s.u8()?;
    let sub_type = [
        SubscriptionType::Exclusive,
        SubscriptionType::Shared,
        SubscriptionType::Failover,
        SubscriptionType::KeyShared,
    ][usize::from(b0 & 3)];
    let durable = b0 & 4 == 0;
    let queue_size = [1, 2, 3, 10, 50, 1000][usize::from(b1 % 6)];
    let ack_group = [
        (Duration::ZERO, 1),
        (Duration::from_millis(10), 2),
        (Duration::from_millis(100), 20),
    ][usize::from((b1 >> 3) % 3)];
    let start = if durable {
        None
    } else if b2 & 1 == 0 {
        Some(StartPosition {
            id: MessageId::EARLIEST,
            inclusive: true,
        })
    } else {
        Some(StartPosition {
            id: s.message_id()?,
            inclusive: b2 & 2 != 0,
        })
    };
    let key_reader = b0 & 0x80 != 0;
    #[cfg(not(feature = "encryption"))]
    let _ = key_reader;
    #[cfg(feature = "encryption")]
    let crypto_key_reader: Option<Arc<dyn crate::crypto::CryptoKeyReader>> = match fixture() {
        Some(f) if key_reader => Some(Arc::new(
            crate::crypto::DefaultCryptoKeyReader::new().default_private_key(&f.private_pem),
        )),
        _ => None,
    };
    let config = ChildConfig {
        subscription: "fuzz".into(),
        sub_type,
        initial_position: if b2 & 4 == 0 {
            InitialPosition::Latest
        } else {
            InitialPosition::Earliest
        },
        consumer_name: None,
        receiver_queue_size: queue_size,
        auto_scaled_queue: false,
        nack_delay: Duration::from_millis(u64::from(b2 >> 3) * 10),
        priority_level: None,
        properties: Vec::new(),
        start,
        durable,
        reader: !durable,
        extras: Default::default(),
        ack_group_delay: ack_group.0,
        ack_group_max: ack_group.1,
        batch_index_ack: b0 & 8 != 0,
        ack_receipts: b0 & 16 != 0,
        nack_backoff: (b0 & 64 != 0).then_some((Duration::from_millis(10), Duration::from_secs(1))),
        ack_timeout: (b0 & 32 != 0).then_some(Duration::from_millis(500)),
        schema: None,
        max_pending_chunked: usize::from(b2 & 3) + 1,
        chunk_expiry: Duration::from_secs(1 + u64::from(b1 >> 6) * 20),
        max_chunked_size: [64, 1024, 1 << 20][usize::from((b2 >> 2) % 3)],
        crypto_failure_action: [
            ConsumerCryptoFailureAction::Fail,
            ConsumerCryptoFailureAction::Discard,
            ConsumerCryptoFailureAction::Consume,
        ][usize::from((b1 >> 5) % 3)],
        #[cfg(feature = "encryption")]
        crypto_key_reader,
        operation_timeout: [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(30),
        ][usize::from(b2 % 3)],
        read_compacted: false,
        start_paused: false,
        paused: Default::default(),
        report_redeliveries: false,
        interceptors: Default::default(),
    };
    let ack_receipts = config.ack_receipts;
    let shared = Arc::new(ConsumerShared::new(&config));
    let topic = TopicName::parse(TOPIC).ok()?;
    let backoff = Backoff::with_seed(
        Duration::from_millis(100),
        Duration::from_secs(2),
        u64::from(b2),
    );
    let core = ConsumerCore::new(
        topic,
        -1,
        0,
        CONSUMER_ID,
        config,
        shared.clone(),
        backoff,
        now,
    );
    let mut h = ConsumerHarness {
        now,
        core,
        shared,
        queue_size: queue_size.max(1),
        durable,
        ack_receipts,
        log: Rc::default(),
        attach_epoch: None,
        attached: false,
        granted: 0,
        consumed: 0,
        stray: false,
        app_queue: VecDeque::new(),
        channel: VecDeque::new(),
        taken: VecDeque::new(),
        held: Vec::new(),
        last_taken: None,
        ready: false,
        failed: false,
    };
    h.drain();
    Some(h)
}

/// Feeds the core a script of broker events, application commands and time (see the module
/// docs), checking its invariants after every step: panics when one breaks. Never panics on
/// a script that ends early or says nothing sensible.
#[doc(hidden)]
pub fn consumer_events(data: &[u8]) {
    let mut s = Script::new(data);
    let Some(mut h) = consumer_setup(&mut s, Instant::now()) else {
        return;
    };
    for _ in 0..MAX_OPS {
        let Some(go_on) = h.step(&mut s) else {
            break;
        };
        h.check();
        if !go_on {
            break;
        }
    }
    h.finish();
}

impl ConsumerHarness {
    /// One op; `Some(false)` when the script closed the consumer.
    fn step(&mut self, s: &mut Script<'_>) -> Option<bool> {
        let op = s.below(32)?;
        trace(format_args!(
            "consumer op {op}: attached {}, {} granted, {} consumed, {} queued",
            self.attached,
            self.granted,
            self.consumed,
            self.shared.in_queue.load(Ordering::Acquire)
        ));
        match op {
            0..=6 | 29 | 30 => {
                let event = self.message(s)?;
                self.feed(event);
            }
            7 => self.chunked(s)?,
            8 => {
                let event = match s.below(4)? {
                    0 => ConsumerEvent::ReachedEndOfTopic,
                    1 => ConsumerEvent::ActiveConsumerChange(s.flag()?),
                    2 => ConsumerEvent::Closed {
                        assigned_broker_url: s.flag()?.then(|| "pulsar://other:6650".into()),
                    },
                    _ => ConsumerEvent::Migrated {
                        broker_url: s.flag()?.then(|| "pulsar://other:6650".into()),
                    },
                };
                self.core.handle_event(event, self.now);
            }
            9 => {
                let e = s.connection_error()?;
                self.core
                    .handle_event(ConsumerEvent::ConnectionClosed(e), self.now);
            }
            10..=12 => self.attach_result(s)?,
            13 => {
                self.now += s.advance()?;
                self.timeout();
            }
            14 => {
                if let Some(t) = self.core.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            15..=17 => {
                let n = s.below(16)? + 1;
                self.take(n);
            }
            18 | 19 => {
                let n = s.below(8)? + 1;
                for _ in 0..n {
                    let Some(cmd) = self.channel.pop_front() else {
                        break;
                    };
                    self.core.handle_command(cmd, self.now);
                    self.drain();
                }
            }
            20 | 21 => {
                let id = self.pick_id(s)?;
                let cumulative = s.flag()?;
                // The shell gives an ack a waiter when acks have receipts.
                let waiter = self.ack_receipts.then(|| Recorder::new(&self.log));
                self.command(CoreCommand::Ack {
                    id,
                    cumulative,
                    waiter,
                });
            }
            22 => {
                let id = self.pick_id(s)?;
                let redelivery_count = s.number()? as u32;
                self.command(CoreCommand::Nack {
                    id,
                    redelivery_count,
                });
            }
            23 => self.command(CoreCommand::RedeliverAll),
            24 => {
                let id = self.pick_id(s)?;
                let cumulative = s.flag()?;
                let txn = crate::protocol::transaction::TxnId {
                    most_bits: s.number()?,
                    least_bits: s.number()?,
                };
                let waiter = Recorder::new(&self.log);
                self.command(CoreCommand::TxnAck {
                    id,
                    cumulative,
                    txn,
                    waiter,
                });
            }
            25 => {
                let target = if s.flag()? {
                    SeekTarget::Id(self.pick_id(s)?)
                } else {
                    SeekTarget::PublishTime(s.number()?)
                };
                self.last_taken = None;
                self.core.handle_seek(target, self.now);
            }
            26 => self.core.flush_acks_now(),
            27 => {
                // The broker answers the ack requests the shell sent.
                let ok = s.flag()?;
                for w in self.held.drain(..) {
                    w.answer(if ok {
                        Ok(())
                    } else {
                        Err(Error::Connection(ConnectionError::Closed))
                    });
                }
            }
            28 => self.stray_message(s)?,
            _ => {
                self.close();
                return Some(false);
            }
        }
        self.drain();
        Some(true)
    }

    /// An application command, through the channel.
    fn command(&mut self, cmd: CoreCommand<Recorder>) {
        self.channel.push_back(cmd);
    }

    /// A message the application has, or any id.
    fn pick_id(&mut self, s: &mut Script<'_>) -> Option<MessageId> {
        let b = s.u8()?;
        if b & 0x80 == 0 && !self.taken.is_empty() {
            let i = usize::from(b) % self.taken.len();
            return self.taken.get(i).map(|m| m.id);
        }
        s.message_id()
    }

    /// A MESSAGE from the broker: any id, metadata and payload.
    fn message(&mut self, s: &mut Script<'_>) -> Option<ConsumerEvent> {
        let shape = s.u8()?;
        let mut command = proto::CommandMessage {
            consumer_id: CONSUMER_ID,
            message_id: proto::MessageIdData {
                ledger_id: u64::from(shape & 1),
                entry_id: s.number()?,
                ..Default::default()
            },
            ..Default::default()
        };
        if shape & 2 != 0 {
            let id = &mut command.message_id;
            id.ledger_id = s.number()?;
            id.partition = Some(s.int()?);
            id.batch_index = Some(s.int()?);
            id.batch_size = Some(s.int()?);
        }
        if shape & 4 != 0 {
            command.redelivery_count = Some(s.number()? as u32);
        }
        if shape & 8 != 0 {
            let words = s.below(3)?;
            for _ in 0..words {
                command.ack_set.push(s.u64()? as i64);
            }
        }
        let mut md = proto::MessageMetadata {
            producer_name: "fuzz".into(),
            sequence_id: s.number()?,
            publish_time: 1,
            ..Default::default()
        };
        if shape & 16 != 0 {
            md.partition_key = Some("k".into());
            md.partition_key_b64_encoded = Some(s.flag()?);
            md.schema_version = Some(Bytes::copy_from_slice(s.bytes(8)?));
            md.event_time = Some(s.number()?);
            md.properties.push(proto::KeyValue {
                key: "p".into(),
                value: "v".into(),
            });
        }
        let data = match (shape >> 5) & 7 {
            // A message of its own.
            0 | 1 => Bytes::copy_from_slice(s.bytes(32)?),
            // A well-formed batch, its count maybe wrong.
            2 => {
                let (entries, n) = batch_entries(s)?;
                md.num_messages_in_batch = Some(match s.below(4)? {
                    0 => n.saturating_sub(1),
                    1 => n + 1,
                    _ => n,
                });
                entries
            }
            // Any batch count over any bytes.
            3 => {
                md.num_messages_in_batch = Some(s.int()?);
                Bytes::copy_from_slice(s.bytes(64)?)
            }
            // Compressed, rightly (a message or a batch).
            4 => {
                let codec = [
                    Compression::Lz4,
                    Compression::Zlib,
                    Compression::Zstd,
                    Compression::Snappy,
                ][usize::from(s.below(4)?)];
                let plain = if s.flag()? {
                    let (entries, n) = batch_entries(s)?;
                    md.num_messages_in_batch = Some(n);
                    entries
                } else {
                    Bytes::copy_from_slice(s.bytes(32)?)
                };
                md.compression = Some(codec.to_wire());
                md.uncompressed_size = Some(if s.below(4)? == 0 {
                    s.number()? as u32
                } else {
                    plain.len() as u32
                });
                compression::compress(codec, &plain)
            }
            // Any codec, any size, any bytes.
            5 => {
                md.compression = Some(s.int()?);
                md.uncompressed_size = Some(s.number()? as u32);
                Bytes::copy_from_slice(s.bytes(48)?)
            }
            // Encrypted: the fixture's messages, or keys that open nothing.
            6 => self.encrypted(s, &mut md)?,
            // Metadata from raw protobuf bytes.
            _ => {
                let raw = s.bytes(64)?;
                if let Ok(m) = <proto::MessageMetadata as prost::Message>::decode(raw) {
                    md = m;
                }
                Bytes::copy_from_slice(s.bytes(32)?)
            }
        };
        Some(ConsumerEvent::Message {
            command,
            payload: wire::Payload {
                broker_entry_metadata: None,
                checksum: None,
                metadata: md,
                data,
            },
        })
    }

    #[cfg(feature = "encryption")]
    fn encrypted(&self, s: &mut Script<'_>, md: &mut proto::MessageMetadata) -> Option<Bytes> {
        let choice = s.below(4)?;
        if let (Some(f), 0 | 1) = (fixture(), choice) {
            let (m, sealed, _) = if choice == 0 { &f.single } else { &f.batch };
            *md = m.clone();
            let mut sealed = sealed.to_vec();
            if s.flag()? {
                // One byte flipped.
                let at = usize::from(s.u8()?) % sealed.len().max(1);
                if let Some(b) = sealed.get_mut(at) {
                    *b ^= 0x55;
                }
            }
            return Some(Bytes::from(sealed));
        }
        garbage_encryption(s, md)
    }

    #[cfg(not(feature = "encryption"))]
    fn encrypted(&self, s: &mut Script<'_>, md: &mut proto::MessageMetadata) -> Option<Bytes> {
        garbage_encryption(s, md)
    }

    /// Gives a MESSAGE to the core, as the connection routes it, and counts its permits.
    fn feed(&mut self, event: ConsumerEvent) {
        if self.shared.in_queue.load(Ordering::Acquire) >= QUEUE_GUARD {
            return;
        }
        if let ConsumerEvent::Message { payload, command } = &event {
            trace(format_args!("  {command:?} {:?}", payload.metadata));
            let entries = payload.metadata.num_messages_in_batch.unwrap_or(1).max(1);
            if self.attached {
                self.consumed += i64::from(entries);
            } else {
                self.stray = true;
            }
        }
        self.core.handle_event(event, self.now);
    }

    /// A MESSAGE while not attached (which the shell never routes): must not break the core.
    fn stray_message(&mut self, s: &mut Script<'_>) -> Option<()> {
        let event = self.message(s)?;
        if self.shared.in_queue.load(Ordering::Acquire) < QUEUE_GUARD {
            self.stray = true;
            self.core.handle_event(event, self.now);
        }
        Some(())
    }

    /// A chunked message as a producer splits it, with a chunk dropped or repeated sometimes.
    fn chunked(&mut self, s: &mut Script<'_>) -> Option<()> {
        let uuid = format!("p-{}", s.below(3)?);
        let n = usize::from(s.below(4)?) + 2;
        let payload = s.bytes(48)?;
        let fault = s.u8()?;
        let mut entry = s.number()?;
        let size = payload.len().div_ceil(n).max(1);
        let chunks: Vec<&[u8]> = payload.chunks(size).collect();
        let count = chunks.len().max(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let skip = fault & 0x80 != 0 && usize::from(fault & 7) == i;
            let repeat = fault & 0x40 != 0 && usize::from(fault & 7) == i;
            for _ in 0..(1 + usize::from(repeat)) {
                if skip {
                    continue;
                }
                let md = proto::MessageMetadata {
                    producer_name: "fuzz".into(),
                    sequence_id: 1,
                    publish_time: 1,
                    uuid: Some(uuid.clone()),
                    chunk_id: Some(i as i32),
                    num_chunks_from_msg: Some(count as i32),
                    total_chunk_msg_size: Some(payload.len() as i32),
                    ..Default::default()
                };
                let event = message_event(entry, md, Bytes::copy_from_slice(chunk));
                entry = entry.wrapping_add(1);
                self.feed(event);
                self.drain();
            }
        }
        Some(())
    }

    /// The result of the attach asked for (or of a stale one).
    fn attach_result(&mut self, s: &mut Script<'_>) -> Option<()> {
        let kind = s.below(8)?;
        let current = self.attach_epoch;
        let epoch = match current {
            Some(e) if kind != 7 => e,
            Some(e) => e.wrapping_add(u64::from(s.u8()?) + 1),
            None => s.number()?,
        };
        let result = match kind {
            0..=3 | 7 => Ok(match s.below(4)? {
                0 => wire::DEFAULT_MAX_MESSAGE_SIZE,
                1 => 1024,
                2 => 1,
                _ => s.number()? as usize % (i32::MAX as usize) + 1,
            }),
            4 | 5 => Err(server_error("subscribe", s.server_code()?)),
            _ => Err(Error::Connection(s.connection_error()?)),
        };
        let ok = result.is_ok();
        let keep = self.core.handle_attached(epoch, result, self.now);
        if current == Some(epoch) {
            self.attach_epoch = None;
        }
        assert!(
            !keep || (ok && current == Some(epoch)),
            "the shell was told to keep a connection of a failed or stale attach"
        );
        if keep {
            self.attached = true;
            self.granted = 0;
            self.consumed = 0;
        }
        Some(())
    }

    fn timeout(&mut self) {
        self.core.handle_timeout(self.now);
        self.drain();
        if let Some(t) = self.core.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout is due {:?} after handle_timeout(now)",
                self.now - t
            );
        }
    }

    /// The application takes up to `n` deliveries, as `ChildHandle::accept` does.
    fn take(&mut self, n: u8) {
        for _ in 0..n {
            let Some(d) = self.app_queue.pop_front() else {
                break;
            };
            if d.epoch != self.shared.epoch.load(Ordering::Acquire) {
                continue;
            }
            let Ok(msg) = d.item else {
                continue;
            };
            if let Ok(mut last) = self.shared.last_dequeued.lock() {
                *last = Some(msg.id);
            }
            self.shared.in_queue.fetch_sub(1, Ordering::AcqRel);
            if !self.durable {
                let key = (
                    msg.id.ledger_id,
                    msg.id.entry_id,
                    msg.id.batch_index.max(-1),
                );
                if let Some(last) = self.last_taken {
                    assert!(
                        key > last,
                        "a reader handed out {key:?} after {last:?}: a duplicate or a step back"
                    );
                }
                self.last_taken = Some(key);
            }
            if self.shared.track_received {
                self.command(CoreCommand::Received(msg.id));
            }
            if let Some(r) = self.shared.flow.on_consumed(1) {
                self.command(CoreCommand::Flow {
                    permits: r.permits,
                    generation: r.generation,
                });
            }
            if self.taken.len() >= 32 {
                self.taken.pop_front();
            }
            self.taken.push_back(msg);
        }
    }

    /// Carries out everything the core asked for.
    fn drain(&mut self) {
        loop {
            while let Some(command) = self.core.poll_transmit() {
                assert!(self.attached, "a command written while not attached");
                self.written(&command);
            }
            let Some(output) = self.core.poll_output() else {
                return;
            };
            match output {
                Output::Deliver(d) => {
                    assert_eq!(d.child, 0);
                    assert!(d.epoch <= self.shared.epoch.load(Ordering::Acquire));
                    if let Ok(msg) = &d.item {
                        assert_eq!(&*msg.topic, TOPIC);
                        assert_eq!(msg.id.partition, -1, "the consumer's partition");
                        assert!(
                            msg.id.batch_index < 0 || msg.id.batch_index < msg.id.batch_size,
                            "batch index {} of a batch of {}",
                            msg.id.batch_index,
                            msg.id.batch_size
                        );
                        assert!(msg.encrypted || msg.encryption_context_is_none());
                    }
                    self.app_queue.push_back(d);
                }
                Output::Attach { epoch, args } => {
                    assert!(!self.failed, "an attach asked for after Failed");
                    assert!(!self.attached, "an attach asked for while attached");
                    assert_eq!(args.consumer_id, CONSUMER_ID);
                    self.attach_epoch = Some(epoch);
                    // The epoch moved on (the queued deliveries went stale).
                    self.stray = false;
                }
                Output::Redelivered { .. } => {}
                Output::Detach | Output::CloseOnBroker => self.attached = false,
                Output::AckRequests { acks, waiters } => {
                    assert!(self.ack_receipts, "ack requests without ack receipts");
                    assert!(self.attached, "ack requests while not attached");
                    assert!(!acks.is_empty() && acks.iter().all(|(ids, _)| !ids.is_empty()));
                    self.held.extend(waiters);
                }
                Output::TxnAck { ids, waiter, .. } => {
                    assert!(!ids.is_empty(), "a transactional ack of nothing");
                    self.held.push(waiter);
                }
                Output::Ready => {
                    assert!(!self.ready, "Ready twice");
                    assert!(self.attached, "Ready while not attached");
                    self.ready = true;
                }
                Output::Failed(e) => {
                    assert!(!e.to_string().is_empty());
                    self.failed = true;
                    self.attached = false;
                }
            }
        }
    }

    /// A command the core wrote: for this consumer; FLOW counted.
    fn written(&mut self, command: &proto::BaseCommand) {
        if let Some(f) = &command.flow {
            assert_eq!(f.consumer_id, CONSUMER_ID);
            self.granted += i64::from(f.message_permits);
        }
        if let Some(a) = &command.ack {
            assert_eq!(a.consumer_id, CONSUMER_ID);
            assert!(!a.message_id.is_empty(), "an ACK of nothing");
        }
        if let Some(r) = &command.redeliver_unacknowledged_messages {
            assert_eq!(r.consumer_id, CONSUMER_ID);
        }
    }

    /// The invariants that hold between steps.
    fn check(&self) {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let queued = self
            .app_queue
            .iter()
            .filter(|d| d.epoch == epoch && d.item.is_ok())
            .count();
        let in_queue = self.shared.in_queue.load(Ordering::Acquire);
        assert_eq!(
            in_queue as usize, queued,
            "in_queue counts {in_queue}, the queue holds {queued} of the current epoch"
        );
        if !self.attached || self.stray {
            return;
        }
        let queue = i64::from(self.queue_size);
        let outstanding = self.granted - self.consumed;
        assert!(
            outstanding <= queue,
            "{} permits outstanding ({} granted, {} consumed) for a queue of {queue}",
            outstanding,
            self.granted,
            self.consumed
        );
        let generation = self.shared.flow.generation();
        let on_the_way: i64 = self
            .channel
            .iter()
            .map(|c| match c {
                CoreCommand::Flow {
                    permits,
                    generation: g,
                } if *g == generation => i64::from(*permits),
                _ => 0,
            })
            .sum();
        let pending = i64::from(self.shared.flow.pending());
        let total = outstanding + on_the_way + i64::from(in_queue) + pending;
        assert_eq!(
            total, queue,
            "permits leaked or made up: {} outstanding + {on_the_way} on the way + {in_queue} \
             queued + {pending} counted != queue of {queue}",
            outstanding
        );
    }

    /// The end of the script: what the application sent arrives, the consumer closes; every
    /// ack waiter must have been answered once.
    fn close(&mut self) {
        while let Some(cmd) = self.channel.pop_front() {
            self.core.handle_command(cmd, self.now);
            self.drain();
            self.check();
        }
        self.core.close();
        self.drain();
        for w in self.held.drain(..) {
            w.answer(Ok(()));
        }
    }

    fn finish(mut self) {
        self.close();
        let log = self.log.clone();
        drop(self);
        let log = log.borrow();
        assert_eq!(
            log.dropped_unanswered, 0,
            "{} ack waiters dropped without an answer",
            log.dropped_unanswered
        );
        assert_eq!(log.created, log.answered, "ack waiters left unanswered");
    }
}

impl Message {
    /// Whether no encryption context is attached (only undecrypted messages carry one).
    fn encryption_context_is_none(&self) -> bool {
        #[cfg(feature = "encryption")]
        {
            self.encryption.is_none()
        }
        #[cfg(not(feature = "encryption"))]
        true
    }
}

/// Encryption keys that open nothing, with any IV.
fn garbage_encryption(s: &mut Script<'_>, md: &mut proto::MessageMetadata) -> Option<Bytes> {
    let n = s.below(3)? + 1;
    for _ in 0..n {
        md.encryption_keys.push(proto::EncryptionKeys {
            key: ["fuzz", "other", ""][usize::from(s.below(3)?)].into(),
            value: Bytes::copy_from_slice(s.bytes(48)?),
            metadata: Vec::new(),
        });
    }
    md.encryption_param = Some(Bytes::copy_from_slice(s.bytes(16)?));
    if s.flag()? {
        md.num_messages_in_batch = Some(s.int()?);
    }
    Some(Bytes::copy_from_slice(s.bytes(48)?))
}

/// Up to 8 well-formed batch entries: the payload and how many.
fn batch_entries(s: &mut Script<'_>) -> Option<(Bytes, i32)> {
    let n = s.below(8)? + 1;
    let mut entries = BytesMut::new();
    for _ in 0..n {
        let flags = s.u8()?;
        let mut single = proto::SingleMessageMetadata {
            partition_key: (flags & 1 != 0).then(|| "k".into()),
            compacted_out: (flags & 2 != 0).then_some(true),
            event_time: (flags & 4 != 0).then_some(u64::from(flags)),
            sequence_id: (flags & 8 != 0).then_some(u64::from(flags)),
            partition_key_b64_encoded: (flags & 16 != 0).then_some(true),
            ..Default::default()
        };
        let payload = s.bytes(8)?;
        wire::encode_entry(&mut single, payload, &mut entries);
    }
    Some((entries.freeze(), i32::from(n)))
}

// ---- the producer -------------------------------------------------------------------------------

/// Every send's outcome, and what broke.
#[derive(Debug, Default)]
struct SendLog {
    /// Per send: its batching key, and its outcome once it came (`true`: a receipt).
    sends: Vec<(Option<Bytes>, Option<bool>)>,
    /// Per batching key: the last send that succeeded.
    last_ok: HashMap<Option<Bytes>, usize>,
    dropped_unanswered: usize,
    violations: Vec<String>,
}

/// Whoever waits for one send: records its outcome.
#[derive(Debug)]
struct SendRecorder {
    index: usize,
    log: Rc<RefCell<SendLog>>,
    done: bool,
}

impl Completion for SendRecorder {
    fn complete(mut self, result: crate::error::Result<MessageId>) {
        self.done = true;
        let mut log = self.log.borrow_mut();
        let log = &mut *log;
        let Some((key, outcome)) = log.sends.get_mut(self.index) else {
            log.violations.push(format!("send {} unknown", self.index));
            return;
        };
        if outcome.is_some() {
            log.violations
                .push(format!("send {} completed twice", self.index));
            return;
        }
        *outcome = Some(result.is_ok());
        match result {
            Ok(id) => {
                if id.batch_index >= 0 && id.batch_index >= id.batch_size {
                    log.violations.push(format!(
                        "send {}: batch index {} of {}",
                        self.index, id.batch_index, id.batch_size
                    ));
                }
                if id.partition != -1 {
                    log.violations
                        .push(format!("send {}: partition {}", self.index, id.partition));
                }
                let key = key.clone();
                if let Some(&last) = log.last_ok.get(&key) {
                    if last > self.index {
                        log.violations.push(format!(
                            "send {} succeeded after send {last} (key {key:?}): out of order",
                            self.index
                        ));
                    }
                }
                log.last_ok.insert(key, self.index);
            }
            Err(e) => {
                if e.to_string().is_empty() {
                    log.violations.push("an error that says nothing".into());
                }
            }
        }
    }
}

impl Drop for SendRecorder {
    fn drop(&mut self) {
        if !self.done {
            if let Ok(mut log) = self.log.try_borrow_mut() {
                log.dropped_unanswered += 1;
            }
        }
    }
}

impl Waiter for Recorder {
    fn finish(mut self, _result: crate::error::Result<()>) {
        self.answered = true;
        self.log.borrow_mut().answered += 1;
    }
}

/// The producer core, its shell, its application and a hostile broker. See the module docs.
struct ProducerHarness {
    now: Instant,
    core: ProducerCore<SendRecorder, Recorder>,
    sends: Rc<RefCell<SendLog>>,
    waits: Rc<RefCell<WaiterLog>>,
    key_based: bool,
    attach_epoch: Option<u64>,
    attached: bool,
    max_message_size: usize,
    /// The SENDs written on this attachment and not answered by the script: (sequence id,
    /// highest sequence id).
    written: VecDeque<(u64, u64)>,
    last_receipt: Option<(u64, u64)>,
    ended: bool,
    closing: bool,
    next_entry: u64,
}

/// A producer core from the script's first bytes.
fn producer_setup(s: &mut Script<'_>, now: Instant) -> Option<ProducerHarness> {
    let b0 = s.u8()?;
    let b1 = s.u8()?;
    let b2 = s.u8()?;
    let chunking = b0 & 2 != 0;
    let batching = (b0 & 1 != 0 && !chunking).then_some(BatchLimits {
        max_messages: usize::from(b1 & 7) + 1,
        max_bytes: [1, 64, 512, 128 * 1024][usize::from((b1 >> 3) & 3)],
        max_delay: [0, 1, 10, 100].map(Duration::from_millis)[usize::from((b1 >> 5) & 3)],
    });
    let key_based = b0 & 4 != 0;
    let initial_sequence_id = match b2 & 3 {
        0 => None,
        1 => Some(u64::from(b2 >> 2)),
        2 => Some(u64::MAX - u64::from(b2 >> 2)),
        _ => Some(s.number()?),
    };
    let config = PartitionConfig {
        name: (b2 & 4 != 0).then(|| "fuzz-producer".into()),
        send_timeout: (b0 & 8 != 0).then(|| {
            [1, 10, 100, 1000, 30_000].map(Duration::from_millis)[usize::from(b1 >> 3) % 5]
        }),
        max_pending: 1000,
        block_if_queue_full: false,
        properties: Vec::new(),
        access_mode: [
            AccessMode::Shared,
            AccessMode::Exclusive,
            AccessMode::WaitForExclusive,
            AccessMode::ExclusiveWithFencing,
        ][usize::from((b2 >> 3) & 3)],
        initial_sequence_id,
        batching,
        compression: [
            Compression::None,
            Compression::Lz4,
            Compression::Zlib,
            Compression::Zstd,
            Compression::Snappy,
        ][usize::from((b0 >> 4) % 5)],
        key_based_batching: key_based,
        initial_subscription_name: None,
        chunking,
        chunk_max_size: (b1 & 0x80 != 0).then_some(usize::from(b1 & 0x3f) * 4 + 1),
        schema: None,
        #[cfg(feature = "encryption")]
        encryption: None,
    };
    let operation_timeout = [
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_secs(30),
    ][usize::from((b2 >> 5) % 3)];
    #[cfg_attr(not(feature = "encryption"), allow(unused_mut))]
    let mut core = ProducerCore::new(
        TOPIC.into(),
        None,
        PRODUCER_ID,
        config,
        operation_timeout,
        Backoff::with_seed(
            Duration::from_millis(100),
            Duration::from_secs(60),
            u64::from(b1),
        ),
        WallClock::new(now, 1_700_000_000_000),
        Duration::from_millis(u64::from(b2 >> 7)),
        now,
    );
    #[cfg(feature = "encryption")]
    if b0 & 0x80 != 0 {
        // Crypto failure action Fail or Send.
        if let Some(f) = fixture() {
            core.set_encryptor(f.encryptors[usize::from(b2 & 0x40 != 0)].clone());
        }
    }
    let mut h = ProducerHarness {
        now,
        core,
        sends: Rc::default(),
        waits: Rc::default(),
        key_based: key_based && batching.is_some(),
        attach_epoch: None,
        attached: false,
        max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
        written: VecDeque::new(),
        last_receipt: None,
        ended: false,
        closing: false,
        next_entry: 0,
    };
    h.drain();
    Some(h)
}

/// Feeds the core a script of sends, flushes, closes, broker events and time (see the module
/// docs), checking its invariants after every step, and at the end that a cooperative broker
/// completes everything: panics when an invariant breaks. Never panics on a script that ends
/// early or says nothing sensible.
#[doc(hidden)]
pub fn producer_events(data: &[u8]) {
    let mut s = Script::new(data);
    let Some(mut h) = producer_setup(&mut s, Instant::now()) else {
        return;
    };
    for _ in 0..MAX_OPS {
        if h.step(&mut s).is_none() {
            break;
        }
        h.check();
    }
    h.finish();
}

impl ProducerHarness {
    fn step(&mut self, s: &mut Script<'_>) -> Option<()> {
        let op = s.below(20)?;
        trace(format_args!(
            "producer op {op}: attached {}, written {:?}",
            self.attached, self.written
        ));
        match op {
            0..=4 => self.send(s)?,
            5 => {
                let w = Recorder::new(&self.waits);
                self.core.flush(w, self.now);
            }
            6 => {
                let w = s.flag()?.then(|| Recorder::new(&self.waits));
                self.closing = true;
                self.core.close(w, self.now);
            }
            7 | 8 => {
                // The receipt of the oldest SEND written.
                if let Some((seq, highest)) = self.written.pop_front() {
                    let id = self.receipt_id(s)?;
                    self.receipt(seq, Some(highest), id);
                }
            }
            9 => {
                // A receipt out of order.
                let k = usize::from(s.u8()?);
                if !self.written.is_empty() {
                    let i = k % self.written.len();
                    if let Some((seq, highest)) = self.written.remove(i) {
                        let id = self.receipt_id(s)?;
                        self.receipt(seq, Some(highest), id);
                    }
                }
            }
            10 => {
                // A receipt for any sequence id.
                let seq = match (s.below(3)?, self.written.front()) {
                    (0, Some((seq, _))) => seq.wrapping_add(s.number()?),
                    (1, Some((seq, _))) => seq.wrapping_sub(s.number()?),
                    _ => s.number()?,
                };
                let highest = if s.flag()? { Some(s.number()?) } else { None };
                let id = self.receipt_id(s)?;
                self.receipt(seq, highest, id);
            }
            11 => {
                if let Some((seq, highest)) = self.last_receipt {
                    let id = self.receipt_id(s)?;
                    self.receipt(seq, Some(highest), id);
                }
            }
            12 => {
                let seq = match (s.flag()?, self.written.front()) {
                    (true, Some((seq, _))) => *seq,
                    _ => s.number()?,
                };
                let code = s.server_code()?;
                self.core.handle_event(
                    ProducerEvent::SendError {
                        sequence_id: seq,
                        error: ServerError {
                            code,
                            message: "fuzz".into(),
                        },
                    },
                    self.now,
                );
            }
            13 => {
                let event = match s.below(3)? {
                    0 => ProducerEvent::Closed {
                        assigned_broker_url: s.flag()?.then(|| "pulsar://other:6650".into()),
                    },
                    1 => ProducerEvent::Migrated {
                        broker_url: s.flag()?.then(|| "pulsar://other:6650".into()),
                    },
                    _ => ProducerEvent::ConnectionClosed(s.connection_error()?),
                };
                self.core.handle_event(event, self.now);
            }
            14 | 15 => self.attach_result(s)?,
            16 | 17 => {
                self.now += s.advance()?;
                self.timeout();
            }
            _ => {
                if let Some(t) = self.core.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
        }
        self.drain();
        Some(())
    }

    /// The id a receipt names: mostly in order, anything sometimes.
    fn receipt_id(&mut self, s: &mut Script<'_>) -> Option<MessageId> {
        Some(match s.below(4)? {
            0 => s.message_id()?,
            // A duplicate the broker dropped.
            1 => MessageId::new(-1, -1),
            _ => {
                self.next_entry += 1;
                MessageId::new(3, self.next_entry as i64)
            }
        })
    }

    fn receipt(&mut self, sequence_id: u64, highest: Option<u64>, message_id: MessageId) {
        self.last_receipt = Some((sequence_id, highest.unwrap_or(sequence_id)));
        self.core.handle_event(
            ProducerEvent::Receipt {
                sequence_id,
                highest_sequence_id: highest,
                message_id,
            },
            self.now,
        );
    }

    fn send(&mut self, s: &mut Script<'_>) -> Option<()> {
        let flags = s.u8()?;
        let more = s.u8()?;
        let payload = if more & 0x80 != 0 {
            Bytes::from(vec![more; usize::from(s.u8()?) % 48])
        } else {
            Bytes::copy_from_slice(s.bytes(48)?)
        };
        let mut msg = ProducerMessage::new(payload);
        msg.partition_key =
            [None, Some("a"), Some("b"), Some("c")][usize::from(flags & 3)].map(str::to_owned);
        if flags & 4 != 0 {
            msg.ordering_key = Some(Bytes::from_static(b"o"));
        }
        if flags & 8 != 0 {
            msg.sequence_id = Some(s.number()?);
        }
        if flags & 16 != 0 {
            msg.deliver_at = Some(s.number()?);
        }
        if flags & 32 != 0 {
            msg.event_time = Some(s.number()?);
            msg.properties.insert("k".into(), "v".into());
        }
        if flags & 64 != 0 {
            msg.schema_version = Some(crate::schema::SchemaVersion::new(vec![more & 3]));
        }
        msg.partition_key_b64_encoded = more & 1 != 0 && msg.partition_key.is_some();
        let outstanding = {
            let log = self.sends.borrow();
            log.sends.iter().filter(|(_, o)| o.is_none()).count()
        };
        if outstanding >= MAX_OUTSTANDING {
            return Some(());
        }
        let key = self
            .key_based
            .then(|| {
                msg.ordering_key.clone().or_else(|| {
                    msg.partition_key
                        .as_ref()
                        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
                })
            })
            .flatten();
        let index = {
            let mut log = self.sends.borrow_mut();
            log.sends.push((key, None));
            log.sends.len() - 1
        };
        let closing = self.core.is_closing();
        let completion = SendRecorder {
            index,
            log: self.sends.clone(),
            done: false,
        };
        self.core.send(msg, completion, self.now);
        if closing {
            let log = self.sends.borrow();
            assert_eq!(
                log.sends.get(index).and_then(|(_, o)| *o),
                Some(false),
                "a send after close must fail at once"
            );
        }
        Some(())
    }

    /// The result of the attach asked for (or of a stale one).
    fn attach_result(&mut self, s: &mut Script<'_>) -> Option<()> {
        let kind = s.below(8)?;
        let current = self.attach_epoch;
        let epoch = match current {
            Some(e) if kind != 7 => e,
            Some(e) => e.wrapping_add(u64::from(s.u8()?) + 1),
            None => s.number()?,
        };
        let result = match kind {
            0..=3 | 7 => {
                let max_message_size = match s.below(4)? {
                    0 => wire::DEFAULT_MAX_MESSAGE_SIZE,
                    1 => 1024,
                    2 => usize::from(s.u8()?) + 1,
                    _ => s.number()? as usize % (i32::MAX as usize) + 1,
                };
                let name = ["fuzz-producer", "other", ""][usize::from(s.below(3)?)];
                let last_sequence_id = match s.below(3)? {
                    0 => None,
                    1 => Some(-1),
                    _ => Some(s.number()? as i64),
                };
                Ok(Attached {
                    producer_name: name.into(),
                    last_sequence_id,
                    topic_epoch: s.flag()?.then_some(1),
                    max_message_size,
                    schema_version: s.flag()?.then(|| Bytes::from_static(&[0, 0, 0, 1])),
                })
            }
            4 | 5 => Err(server_error("create producer", s.server_code()?)),
            _ => Err(Error::Connection(s.connection_error()?)),
        };
        let size = result.as_ref().ok().map(|a| a.max_message_size);
        self.attach_with(epoch, result, size);
        Some(())
    }

    fn attach_with(
        &mut self,
        epoch: u64,
        result: Result<Attached, Error>,
        max_message_size: Option<usize>,
    ) {
        let current = self.attach_epoch;
        let ok = result.is_ok();
        let keep = self.core.handle_attached(epoch, result, self.now);
        if current == Some(epoch) {
            self.attach_epoch = None;
        }
        assert!(
            !keep || (ok && current == Some(epoch)),
            "the shell was told to keep a connection of a failed or stale attach"
        );
        if keep {
            if let Some(size) = max_message_size {
                self.max_message_size = size;
            }
        }
        self.drain();
    }

    fn timeout(&mut self) {
        self.core.handle_timeout(self.now);
        self.drain();
        if let Some(t) = self.core.poll_timeout() {
            assert!(
                t > self.now,
                "poll_timeout is due {:?} after handle_timeout(now)",
                self.now - t
            );
        }
    }

    /// Carries out what the core asked for, and reads the frames it wrote.
    fn drain(&mut self) {
        while let Some(action) = self.core.poll_action() {
            assert!(!self.ended, "an action after the last one: {action:?}");
            match action {
                Action::Attach { epoch, args } => {
                    assert!(!self.attached, "an attach asked for while attached");
                    assert_eq!(args.producer_id, PRODUCER_ID);
                    self.attach_epoch = Some(epoch);
                }
                Action::Detach { .. } => {
                    self.attached = false;
                    self.written.clear();
                }
                Action::Attached { .. } => {
                    assert!(!self.attached, "attached twice");
                    self.attached = true;
                    self.written.clear();
                }
                Action::Close { waiter } => {
                    self.ended = true;
                    self.attached = false;
                    if let Some(w) = waiter {
                        w.finish(Ok(()));
                    }
                }
                Action::Failed(e) => {
                    assert!(!e.to_string().is_empty());
                    self.ended = true;
                    self.attached = false;
                }
            }
        }
        while let Some(frame) = self.core.poll_transmit() {
            assert!(self.attached, "a frame written while not attached");
            let max = wire::max_frame_size_for(self.max_message_size);
            let decoded = wire::decode_frame(frame, max);
            let Ok(wire::Frame {
                command,
                payload: Some(_),
            }) = decoded
            else {
                panic!("the core wrote a frame that does not decode: {decoded:?}");
            };
            let Some(send) = command.send else {
                panic!("the core wrote a frame that is not a SEND");
            };
            assert_eq!(send.producer_id, PRODUCER_ID);
            let highest = send.highest_sequence_id.unwrap_or(send.sequence_id);
            self.written.push_back((send.sequence_id, highest));
        }
    }

    fn check(&self) {
        let log = self.sends.borrow();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
        assert_eq!(
            log.dropped_unanswered, 0,
            "a send was dropped without completing"
        );
        let waits = self.waits.borrow();
        assert_eq!(
            waits.dropped_unanswered, 0,
            "a flush or close waiter was dropped without an answer"
        );
        if self.ended {
            if let Some(i) = log.sends.iter().position(|(_, o)| o.is_none()) {
                panic!("the producer ended with send {i} not completed");
            }
        }
    }

    /// The end: the script's connection drops, the producer is closed, and a broker that
    /// answers everything in order takes over until the producer ends.
    fn finish(mut self) {
        if self.attached {
            self.core.handle_event(
                ProducerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
                self.now,
            );
            self.drain();
        }
        if !self.closing {
            let w = Recorder::new(&self.waits);
            self.closing = true;
            self.core.close(Some(w), self.now);
            self.drain();
        }
        for _ in 0..WIND_DOWN_STEPS {
            self.check();
            if self.ended {
                break;
            }
            if let Some(epoch) = self.attach_epoch {
                let attached = Attached {
                    producer_name: "fuzz-producer".into(),
                    last_sequence_id: None,
                    topic_epoch: None,
                    max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
                    schema_version: None,
                };
                self.attach_with(epoch, Ok(attached), Some(wire::DEFAULT_MAX_MESSAGE_SIZE));
                continue;
            }
            if self.attached {
                if let Some((seq, highest)) = self.written.pop_front() {
                    self.next_entry += 1;
                    let id = MessageId::new(9, self.next_entry as i64);
                    self.receipt(seq, Some(highest), id);
                    self.drain();
                    continue;
                }
            }
            if let Some(t) = self.core.poll_timeout() {
                self.now = self.now.max(t);
                self.timeout();
                continue;
            }
            break;
        }
        self.check();
        assert!(
            self.ended,
            "the producer did not end after close with a broker answering everything \
             (attached: {}, frames unanswered: {})",
            self.attached,
            self.written.len()
        );
        let sends = self.sends.clone();
        let waits = self.waits.clone();
        drop(self);
        let log = sends.borrow();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
        assert_eq!(log.dropped_unanswered, 0, "a send was dropped");
        let waits = waits.borrow();
        assert_eq!(waits.dropped_unanswered, 0, "a waiter was dropped");
        assert_eq!(waits.created, waits.answered, "a waiter was never answered");
    }
}

// ---- the crypto key parsers ---------------------------------------------------------------------

/// The PEM labels of the key forms the client reads (and one it refuses).
#[cfg(feature = "encryption")]
const LABELS: [&str; 6] = [
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
];

/// Reads arbitrary bytes as keys and encryption fields: PEM text, DER in PEM armour, `data:`
/// URLs, a key pair to round-trip a message through, and message encryption fields for the
/// decryptor (the first byte picks which). Panics only when an invariant breaks: an error that
/// says nothing, or a decryption that yields something other than the plaintext.
#[cfg(feature = "encryption")]
#[doc(hidden)]
pub fn crypto_keys(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => pem_text(rest),
        1 => {
            let label = LABELS[usize::from(mode / 5) % LABELS.len()];
            pem_text(&armour(label, rest));
            if mode & 0x80 != 0 {
                // SEC1 with an EC PARAMETERS block before it.
                let mut both = armour("EC PARAMETERS", &rest[..rest.len().min(16)]);
                both.extend(armour("EC PRIVATE KEY", rest));
                pem_text(&both);
            }
        }
        2 => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(rest);
            key_pair(&format!("data:application/x-pem-file;base64,{b64}"), rest);
            if let Ok(text) = std::str::from_utf8(rest) {
                key_pair(&format!("data:,{text}"), rest);
            }
        }
        3 => decryptor(rest),
        _ => {
            // Inline PEM only: anything else would be read as a file path.
            if let Ok(text) = std::str::from_utf8(rest) {
                if text.contains("-----BEGIN ")
                    && !text.starts_with("file:")
                    && !text.starts_with("data:")
                {
                    key_pair(text, rest);
                }
            }
        }
    }
}

/// `der` in PEM armour.
#[cfg(feature = "encryption")]
fn armour(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n").into_bytes()
}

/// Both key parsers on `pem`; a key that parses encrypts or decrypts without panicking.
#[cfg(feature = "encryption")]
fn pem_text(pem: &[u8]) {
    use crate::crypto::keys::{PrivateKey, PublicKey};
    match PublicKey::from_pem(pem) {
        Ok(key) => {
            if let Err(e) = key.encrypt(&[7; 32]) {
                assert!(!e.is_empty());
            }
        }
        Err(e) => assert!(!e.is_empty(), "a public key error that says nothing"),
    }
    match PrivateKey::from_pem(pem) {
        Ok(key) => {
            let tail = &pem[pem.len().saturating_sub(256)..];
            if let Err(e) = key.decrypt(tail) {
                assert!(!e.is_empty());
            }
        }
        Err(e) => assert!(!e.is_empty(), "a private key error that says nothing"),
    }
}

/// `key` (inline PEM or a `data:` URL) as a reader's public and private key: the reader's
/// answers parse or fail with a reason; a producer's encryptor made of it seals a payload, and
/// what the decryptor opens of it is that payload.
#[cfg(feature = "encryption")]
fn key_pair(key: &str, payload: &[u8]) {
    use crate::crypto::{
        CryptoKeyReader, DefaultCryptoKeyReader, MessageDecryptor, MessageEncryptor,
        ProducerCryptoFailureAction, ProducerEncryption,
    };
    let reader = Arc::new(
        DefaultCryptoKeyReader::new()
            .default_public_key(key)
            .default_private_key(key),
    );
    let none = std::collections::BTreeMap::new();
    for info in [
        CryptoKeyReader::public_key(&*reader, "k", &none),
        CryptoKeyReader::private_key(&*reader, "k", &none),
    ] {
        match info {
            Ok(info) => pem_text(&info.key),
            Err(e) => assert!(!e.is_empty()),
        }
    }
    let now = Instant::now();
    let settings = ProducerEncryption {
        reader: reader.clone(),
        key_names: vec!["k".into()],
        failure_action: ProducerCryptoFailureAction::Fail,
    };
    let mut enc = match MessageEncryptor::new(settings, now) {
        Ok(enc) => enc,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let payload = &payload[..payload.len().min(64)];
    let mut md = proto::MessageMetadata::default();
    enc.prepare(&mut md, now);
    let sealed = match enc.seal(&mut md, payload) {
        Ok(sealed) => sealed,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut dec = MessageDecryptor::new(reader);
    match dec.decrypt(&md, &sealed, now) {
        Ok(plain) => assert_eq!(&plain[..], payload, "decrypted to something else"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The decryptor with the fixture's private key, on encryption fields from the script (the
/// fixture's valid data key, IV and payload sometimes, mangled or not).
#[cfg(feature = "encryption")]
fn decryptor(data: &[u8]) {
    use crate::crypto::{DefaultCryptoKeyReader, EncryptionContext, MessageDecryptor};
    let Some(f) = fixture() else {
        return;
    };
    let mut s = Script::new(data);
    let Some(shape) = s.u8() else {
        return;
    };
    let (valid_md, valid_payload, plain) = if shape & 1 == 0 { &f.single } else { &f.batch };
    let mut md = proto::MessageMetadata::default();
    let n = (shape >> 1) & 3;
    for i in 0..n {
        let Some(b) = s.u8() else {
            return;
        };
        let name = match b & 3 {
            0 => "fuzz".to_owned(),
            1 => "other".to_owned(),
            _ => match s.bytes(8) {
                Some(raw) => String::from_utf8_lossy(raw).into_owned(),
                None => return,
            },
        };
        let value = if b & 4 != 0 {
            valid_md
                .encryption_keys
                .first()
                .map(|k| k.value.clone())
                .unwrap_or_default()
        } else {
            match s.bytes(160) {
                Some(raw) => Bytes::copy_from_slice(raw),
                None => return,
            }
        };
        let metadata = if b & 8 != 0 {
            vec![proto::KeyValue {
                key: format!("m{i}"),
                value: "v".into(),
            }]
        } else {
            Vec::new()
        };
        md.encryption_keys.push(proto::EncryptionKeys {
            key: name,
            value,
            metadata,
        });
    }
    md.encryption_param = if shape & 8 != 0 {
        valid_md.encryption_param.clone()
    } else {
        match s.bytes(16) {
            Some(raw) => Some(Bytes::copy_from_slice(raw)),
            None => return,
        }
    };
    md.num_messages_in_batch = valid_md.num_messages_in_batch;
    let payload: Vec<u8> = if shape & 16 != 0 {
        let mut p = valid_payload.to_vec();
        if shape & 32 != 0 {
            let at = s.u8().map_or(0, usize::from) % p.len().max(1);
            if let Some(b) = p.get_mut(at) {
                *b ^= 1;
            }
        }
        p
    } else {
        match s.bytes(96) {
            Some(raw) => raw.to_vec(),
            None => return,
        }
    };
    let _ = EncryptionContext::from_metadata(&md);
    let reader = DefaultCryptoKeyReader::new().default_private_key(&f.private_pem);
    let mut dec = MessageDecryptor::new(Arc::new(reader));
    let now = Instant::now();
    // Twice: the second time the data key comes from the cache.
    for _ in 0..2 {
        match dec.decrypt(&md, &payload, now) {
            Ok(opened) => assert_eq!(
                &opened[..],
                &plain[..],
                "decrypted to something other than the plaintext"
            ),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[cfg(test)]
mod tests_rng {

    /// xorshift64*, seeded.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// A pseudo-random script of `len` bytes; encryption (slow in debug builds) is turned off
    /// in all but one script of 16.
    pub fn script(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.next() % 16 != 0 {
            if let Some(b) = out.first_mut() {
                *b &= 0x7f;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::tests_rng::*;
    use super::*;

    #[test]
    fn seeded_scripts_keep_the_consumer_invariants() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let len = 8 + (rng.next() % 600) as usize;
            consumer_events(&script(&mut rng, len));
        }
    }

    #[test]
    fn seeded_scripts_keep_the_producer_invariants() {
        let mut rng = Rng::new(2);
        for _ in 0..10_000 {
            let len = 8 + (rng.next() % 600) as usize;
            producer_events(&script(&mut rng, len));
        }
    }

    #[test]
    fn short_and_empty_scripts_end_quietly() {
        for len in 0..8 {
            consumer_events(&vec![0; len]);
            producer_events(&vec![0xff; len]);
            #[cfg(feature = "encryption")]
            crypto_keys(&vec![3; len]);
        }
    }
}

#[cfg(test)]
mod crashes {
    use super::*;

    /// Inputs that once broke an invariant (the first byte, even, picked the consumer core).
    #[test]
    fn reader_hands_out_no_id_twice_b11a28c4() {
        consumer_events(&[
            0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae, 0xae,
            0xae, 0xae, 0xae, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc8, 0x00, 0xe5, 0xe5, 0xe5,
            0xe5, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x2d, 0x2d, 0x2d, 0x2d, 0x2d, 0x10, 0x10,
            0x10, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0xc0, 0x00,
        ]);
    }

    #[test]
    fn reader_hands_out_no_id_twice_4a82cf49() {
        consumer_events(&[
            0x44, 0x20, 0x50, 0x55, 0x42, 0x5c, 0x20, 0x45, 0x49, 0x14, 0x14, 0x14, 0x14, 0xdd,
            0x14, 0x49, 0x49, 0x50, 0x55, 0x42, 0x5c, 0x20, 0x45, 0x49, 0x14, 0x14, 0x11, 0x14,
            0xdd, 0x14, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49,
            0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49,
            0x49, 0x49, 0x49, 0x49, 0x14, 0x14, 0x14, 0x00, 0x43, 0x5c, 0x49, 0x00, 0xff, 0xc3,
            0xff, 0xe5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01,
            0x39, 0x39, 0x39, 0x38, 0x39, 0x39, 0x39, 0x00, 0x00, 0x00, 0x00, 0x51, 0x5c, 0x5c,
            0x5c, 0x5c, 0x12, 0x00, 0x00, 0x00, 0x5c, 0x5c, 0x12, 0x00, 0x00, 0xff, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x5c,
            0x5c, 0x45, 0x74, 0x74, 0x40, 0x02, 0x00, 0x00, 0x00, 0x00, 0x55, 0x55, 0x55, 0x55,
            0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49,
            0x49, 0x49, 0x49, 0x49, 0x49, 0x00, 0x00, 0x00, 0x00, 0x00, 0x49, 0x49, 0x49, 0x49,
            0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x49, 0x14, 0x14, 0x14,
            0x00, 0x43, 0x5c, 0x49, 0x00, 0xff, 0xc3, 0xff, 0xe5, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x39, 0x39, 0x39, 0x38, 0x39, 0x39, 0x39,
            0x00, 0x00, 0x00, 0x00, 0x51, 0x5c, 0x5c, 0x5c, 0x5c, 0x12, 0x00, 0x00, 0x00, 0x5c,
            0x5c, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x0a, 0x00, 0x00, 0x71, 0x71, 0x71,
            0x71, 0x71, 0x71, 0x71, 0x71, 0x71, 0x5c, 0x5c, 0x45, 0x74, 0x74, 0x40, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
            0x55, 0x55, 0x55, 0x55, 0x01, 0x14, 0x31, 0xf4, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
            0x00, 0x00, 0x00, 0x01, 0x00, 0x5c, 0x5c, 0x04, 0x63, 0x74, 0x14, 0x74, 0xda, 0x5c,
        ]);
    }
}
