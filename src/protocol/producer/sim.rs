// Compiled only in tests: the parent declares this module under #[cfg(test)].
//! A deterministic simulation of [`ProducerCore`] against a model broker, in simulated time: no
//! sockets, no sleeps, no clock.
//!
//! The core's frames are decoded with [`crate::wire::decode`] and handled by [`Broker`], a model
//! of Apache Pulsar's broker with deduplication on: PRODUCER gets PRODUCER_SUCCESS with the last
//! stored sequence id; a SEND whose (highest) sequence id is above the last stored one is stored
//! with the next entry id; one at or below it is a duplicate and gets a receipt with the id
//! (-1, -1), as `PersistentTopic.publishMessage` answers `MessageDupStatus.Dup`. The broker's
//! replies are encoded as frames and go back through [`ConnectionCore::handle_frame`], whose
//! `Inbound::Producer` events feed [`ProducerCore::handle_event`] and whose replies feed
//! [`ProducerCore::handle_attached`].
//!
//! A seeded xorshift picks the network latency, connection drops, broker restarts (what is in
//! flight is lost, what is stored is kept), duplicate and out-of-order receipts, SEND_ERRORs and
//! errors at attach (ServiceNotReady, ProducerBusy, TopicTerminated).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::batch::BatchLimits;
use super::{Action, Attached, Completion, PartitionConfig, ProducerCore, Waiter};
use crate::compression::Compression;
use crate::error::{ConnectionError, Error, ServerErrorCode};
use crate::message::ProducerMessage;
use crate::producer::AccessMode;
use crate::protocol::backoff::Backoff;
use crate::protocol::clock::WallClock;
use crate::protocol::commands;
use crate::protocol::connection::{ConnectionCore, Inbound, ProducerEvent};
use crate::wire::proto::{self, base_command::Type, BaseCommand};
use crate::wire::{self, MessageId};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// The simulation's time zero: the one clock reading, from which only simulated time flows.
#[cfg(test)]
fn start_of_time() -> Instant {
    Instant::now()
}
const MAX_FRAME: usize = wire::DEFAULT_MAX_FRAME_SIZE;

// ---- randomness ---------------------------------------------------------------------------------

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.below(span + 1))
    }
}

// ---- recorders ----------------------------------------------------------------------------------

/// Every send's outcome and when it came, in the order they came.
#[derive(Debug, Default)]
struct Log {
    now: Option<Instant>,
    results: Vec<Option<(Instant, crate::error::Result<MessageId>)>>,
    order: Vec<usize>,
    completed_twice: usize,
}

type Shared<T> = Rc<RefCell<T>>;

#[derive(Debug)]
struct Rec {
    index: usize,
    log: Shared<Log>,
}

impl Completion for Rec {
    fn complete(self, result: crate::error::Result<MessageId>) {
        let mut log = self.log.borrow_mut();
        let now = log.now.expect("the sim sets the time");
        if log.results[self.index].is_some() {
            log.completed_twice += 1;
        } else {
            log.results[self.index] = Some((now, result));
            log.order.push(self.index);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Done(Shared<Option<crate::error::Result<()>>>);

impl Waiter for Done {
    fn finish(self, result: crate::error::Result<()>) {
        let mut slot = self.0.borrow_mut();
        assert!(slot.is_none(), "a waiter was answered twice");
        *slot = Some(result);
    }
}

// ---- the model broker ---------------------------------------------------------------------------

/// One stored entry.
#[derive(Debug, Clone)]
struct Stored {
    first: u64,
    highest: u64,
    /// The entry's schema version and whether its key is base64 (metadata).
    schema_version: Option<Bytes>,
    key_b64: bool,
}

/// How the broker answers, per seed.
#[derive(Debug, Clone)]
struct Script {
    /// Per mille of PRODUCER requests answered with a transient error.
    attach_error: u64,
    /// Per mille of PRODUCER requests after the first success answered TopicTerminated.
    terminate: u64,
    /// Per mille of SENDs answered with SEND_ERROR (not stored).
    send_error: u64,
    /// Per mille of receipts sent twice.
    duplicate_receipt: u64,
    /// Per mille of receipts that overtake or fall behind the frames around them.
    reorder_receipt: u64,
    /// The SEND with this sequence id is answered SEND_ERROR, once.
    fail_once: Option<u64>,
    /// Per mille of events after which the connection drops.
    drop_connection: u64,
    /// Per mille of events after which the broker restarts.
    restart: u64,
    /// Answers to the first PRODUCER requests, in order, before the random ones.
    first_answers: Vec<Option<ServerErrorCode>>,
    /// The latency of one frame.
    latency: (Duration, Duration),
}

#[derive(Debug, Default)]
struct Broker {
    ledger: u64,
    next_entry: u64,
    /// The highest sequence id stored, per producer name.
    persisted: HashMap<String, u64>,
    stored: Vec<Stored>,
    /// The producers on each connection: producer id -> (name, whether a write failed). After a
    /// failed write every later SEND of that producer fails too (as a broker's managed ledger
    /// fails every pending add), until the producer is created again.
    producers: HashMap<usize, HashMap<u64, (String, bool)>>,
    producer_requests: usize,
    ever_attached: bool,
}

fn encode(command: &BaseCommand) -> Bytes {
    let mut buf = BytesMut::new();
    wire::encode_command(command, &mut buf, MAX_FRAME).expect("encodes");
    buf.freeze()
}

fn base(kind: Type) -> BaseCommand {
    BaseCommand {
        r#type: kind as i32,
        ..Default::default()
    }
}

fn receipt(producer_id: u64, sequence_id: u64, highest: u64, ledger: u64, entry: u64) -> Bytes {
    let mut c = base(Type::SendReceipt);
    c.send_receipt = Some(proto::CommandSendReceipt {
        producer_id,
        sequence_id,
        highest_sequence_id: Some(highest),
        message_id: Some(proto::MessageIdData {
            ledger_id: ledger,
            entry_id: entry,
            ..Default::default()
        }),
    });
    encode(&c)
}

impl Broker {
    /// Handles one frame from connection `conn`: the frames to send back, receipts marked.
    fn handle(
        &mut self,
        conn: usize,
        frame: Bytes,
        script: &mut Script,
        rng: &mut Rng,
    ) -> Vec<(bool, Bytes)> {
        let frame = wire::decode_frame(frame, MAX_FRAME).expect("the core writes valid frames");
        let metadata = frame.payload.as_ref().map(|p| p.metadata.clone());
        let command = frame.command;
        let mut out = Vec::new();
        match Type::try_from(command.r#type) {
            Ok(Type::Producer) => {
                let p = command.producer.expect("PRODUCER body");
                self.producer_requests += 1;
                let scripted = if script.first_answers.is_empty() {
                    None
                } else {
                    Some(script.first_answers.remove(0))
                };
                let error = match scripted {
                    Some(answer) => answer,
                    None if self.ever_attached && rng.chance(script.terminate) => {
                        Some(ServerErrorCode::TopicTerminatedError)
                    }
                    None if rng.chance(script.attach_error) => Some(if rng.chance(500) {
                        ServerErrorCode::ServiceNotReady
                    } else {
                        ServerErrorCode::ProducerBusy
                    }),
                    None => None,
                };
                match error {
                    Some(code) => {
                        let mut c = base(Type::Error);
                        c.error = Some(Box::new(proto::CommandError {
                            request_id: p.request_id,
                            error: code.as_i32(),
                            message: format!("{code:?}"),
                        }));
                        out.push((false, encode(&c)));
                    }
                    None => {
                        self.ever_attached = true;
                        let name = p.producer_name.clone().unwrap_or_else(|| "sim-0".into());
                        let last = self.persisted.get(&name).map_or(-1, |s| *s as i64);
                        self.producers
                            .entry(conn)
                            .or_default()
                            .insert(p.producer_id, (name.clone(), false));
                        let mut c = base(Type::ProducerSuccess);
                        c.producer_success = Some(Box::new(proto::CommandProducerSuccess {
                            request_id: p.request_id,
                            producer_name: name,
                            last_sequence_id: Some(last),
                            schema_version: Some(Bytes::from_static(&SCHEMA_VERSION)),
                            ..Default::default()
                        }));
                        out.push((false, encode(&c)));
                    }
                }
            }
            Ok(Type::Send) => {
                let s = command.send.expect("SEND body");
                let Some((name, failed)) = self
                    .producers
                    .get_mut(&conn)
                    .and_then(|p| p.get_mut(&s.producer_id))
                else {
                    return out; // not (or no longer) a producer of this connection
                };
                let highest = s.highest_sequence_id.unwrap_or(s.sequence_id);
                let last = self.persisted.get(name.as_str()).copied();
                let fail = *failed
                    || script.fail_once == Some(s.sequence_id)
                    || rng.chance(script.send_error);
                if last.is_some_and(|l| highest <= l) {
                    // MessageDupStatus.Dup: acknowledged at once with (-1, -1).
                    out.push((
                        true,
                        receipt(s.producer_id, s.sequence_id, highest, u64::MAX, u64::MAX),
                    ));
                } else if fail {
                    *failed = true;
                    script.fail_once = None;
                    let mut c = base(Type::SendError);
                    c.send_error = Some(Box::new(proto::CommandSendError {
                        producer_id: s.producer_id,
                        sequence_id: s.sequence_id,
                        error: ServerErrorCode::PersistenceError.as_i32(),
                        message: "simulated".into(),
                    }));
                    out.push((false, encode(&c)));
                } else {
                    self.persisted.insert(name.clone(), highest);
                    self.stored.push(Stored {
                        first: s.sequence_id,
                        highest,
                        schema_version: metadata.as_ref().and_then(|m| m.schema_version.clone()),
                        key_b64: metadata
                            .as_ref()
                            .and_then(|m| m.partition_key_b64_encoded)
                            .unwrap_or(false),
                    });
                    let entry = self.next_entry;
                    self.next_entry += 1;
                    let r = receipt(s.producer_id, s.sequence_id, highest, self.ledger, entry);
                    if rng.chance(script.duplicate_receipt) {
                        out.push((true, r.clone()));
                    }
                    out.push((true, r));
                }
            }
            Ok(Type::CloseProducer) => {
                let c = command.close_producer.expect("CLOSE_PRODUCER body");
                if let Some(p) = self.producers.get_mut(&conn) {
                    p.remove(&c.producer_id);
                }
                let mut s = base(Type::Success);
                s.success = Some(Box::new(proto::CommandSuccess {
                    request_id: c.request_id,
                    ..Default::default()
                }));
                out.push((false, encode(&s)));
            }
            other => panic!("the producer sent {other:?}"),
        }
        out
    }

    fn restart(&mut self) {
        self.producers.clear();
        self.ledger += 1;
        self.next_entry = 0;
    }
}

// ---- the world ----------------------------------------------------------------------------------

#[derive(Debug)]
enum Ev {
    ToBroker { conn: usize, frame: Bytes },
    ToClient { conn: usize, frame: Bytes },
    Send(usize),
    Flush,
    Close,
    Drop(usize),
    Restart,
}

/// The client side of one simulated connection.
struct Conn {
    core: ConnectionCore<u64>,
    open: bool,
    /// When the last frame each way arrives: frames on a connection keep their order.
    to_broker_at: Instant,
    to_client_at: Instant,
}

/// A PRODUCER request's reply marker for a CLOSE_PRODUCER (not an attach epoch).
const CLOSING: u64 = u64::MAX;

struct Sim {
    rng: Rng,
    script: Script,
    t0: Instant,
    now: Instant,
    core: ProducerCore<Rec, Done>,
    log: Shared<Log>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Ev>,
    next_event: u64,
    conns: Vec<Conn>,
    attached: Option<usize>,
    broker: Broker,
    request_id: u64,
    sent_at: Vec<Instant>,
    /// Timeouts that fired while not attached.
    timeouts_detached: usize,
    attach_attempts: usize,
    created: Option<crate::error::Result<()>>,
    ended: Option<Result<(), Error>>,
    close: Done,
    steps: usize,
    /// The workload's message `i`.
    message: fn(usize) -> ProducerMessage,
}

/// The schema version the model broker gives every producer.
const SCHEMA_VERSION: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 7];

fn keyed_message(i: usize) -> ProducerMessage {
    ProducerMessage::new(format!("message {i}")).partition_key(format!("k{}", i % 3))
}

impl Sim {
    fn new(seed: u64, config: PartitionConfig, script: Script, operation_timeout: Duration) -> Sim {
        let t0 = start_of_time();
        let log: Shared<Log> = Rc::default();
        log.borrow_mut().now = Some(t0);
        let core = ProducerCore::new(
            "persistent://public/default/sim".into(),
            None,
            7,
            config,
            operation_timeout,
            Backoff::with_seed(MS(100), Duration::from_secs(60), seed),
            WallClock::new(t0, 1_700_000_000_000),
            Duration::ZERO,
            t0,
        );
        Sim {
            rng: Rng::new(seed),
            script,
            t0,
            now: t0,
            core,
            log,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            conns: Vec::new(),
            attached: None,
            broker: Broker::default(),
            request_id: 0,
            sent_at: Vec::new(),
            timeouts_detached: 0,
            attach_attempts: 0,
            created: None,
            ended: None,
            close: Done::default(),
            steps: 0,
            message: keyed_message,
        }
    }

    fn at(&mut self, at: Instant, ev: Ev) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((at, id)));
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.script.latency;
        self.rng.between(lo, hi)
    }

    fn send_to_broker(&mut self, conn: usize, frame: Bytes) {
        let at = (self.now + self.latency()).max(self.conns[conn].to_broker_at);
        self.conns[conn].to_broker_at = at;
        self.at(at, Ev::ToBroker { conn, frame });
    }

    fn send_to_client(&mut self, conn: usize, frame: Bytes) {
        let at = (self.now + self.latency()).max(self.conns[conn].to_client_at);
        self.conns[conn].to_client_at = at;
        self.at(at, Ev::ToClient { conn, frame });
    }

    fn request(&mut self, conn: usize, marker: u64, command: impl FnOnce(u64) -> BaseCommand) {
        self.request_id += 1;
        let id = self.request_id;
        self.conns[conn]
            .core
            .register_request(id, "sim", marker, None);
        let frame = encode(&command(id));
        self.send_to_broker(conn, frame);
    }

    /// Performs the core's actions and writes its frames.
    fn drain(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Attach { epoch, args } => {
                    self.attach_attempts += 1;
                    // The lookup: a new connection, CONNECTED at once.
                    let mut core = ConnectionCore::new(self.now, Duration::from_secs(3600));
                    let mut connected = base(Type::Connected);
                    connected.connected = Some(Box::new(proto::CommandConnected {
                        server_version: "sim".into(),
                        protocol_version: Some(21),
                        max_message_size: Some(wire::DEFAULT_MAX_MESSAGE_SIZE as i32),
                        ..Default::default()
                    }));
                    let mut buf = BytesMut::from(&encode(&connected)[..]);
                    let frame = wire::decode(&mut buf, MAX_FRAME).unwrap().unwrap();
                    assert!(matches!(
                        core.handle_frame(frame),
                        Ok(Inbound::Connected(_))
                    ));
                    let conn = self.conns.len();
                    self.conns.push(Conn {
                        core,
                        open: true,
                        to_broker_at: self.now,
                        to_client_at: self.now,
                    });
                    self.request(conn, epoch, |id| commands::producer(&args, id));
                }
                Action::Detach { close_on_broker } => {
                    let conn = self.attached.take().expect("detached while attached");
                    if close_on_broker && self.conns[conn].open {
                        let pid = self.core.producer_id();
                        self.request(conn, CLOSING, |id| commands::close_producer(pid, id));
                    }
                }
                Action::Attached { .. } => {
                    if self.created.is_none() {
                        self.created = Some(Ok(()));
                    }
                }
                Action::Close { waiter } => {
                    if let Some(w) = waiter {
                        w.finish(Ok(()));
                    }
                    self.ended = Some(Ok(()));
                }
                Action::Failed(e) => {
                    if self.created.is_none() {
                        self.created = Some(Err(e.clone()));
                    }
                    self.ended = Some(Err(e));
                }
            }
        }
        while let Some(frame) = self.core.poll_transmit() {
            let conn = self.attached.expect("frames only while attached");
            self.send_to_broker(conn, frame);
        }
    }

    fn set_now(&mut self, now: Instant) {
        assert!(now >= self.now, "time goes forward");
        self.now = now;
        self.log.borrow_mut().now = Some(now);
    }

    /// Runs until nothing is left to do, or `until` says stop.
    fn run(&mut self, mut until: impl FnMut(&Sim) -> bool) {
        loop {
            self.drain();
            if until(self) {
                return;
            }
            self.steps += 1;
            assert!(self.steps < 2_000_000, "the simulation does not end");
            let timer = self.core.poll_timeout();
            let next = self.queue.peek().map(|Reverse((at, _))| *at);
            match (timer, next) {
                (None, None) => return,
                (Some(t), n) if n.is_none_or(|n| t < n) => {
                    self.set_now(t.max(self.now));
                    let attached = self.core.is_attached();
                    let before = self.log.borrow().order.len();
                    self.core.handle_timeout(self.now);
                    if !attached && self.log.borrow().order.len() > before {
                        self.timeouts_detached += 1;
                    }
                }
                _ => {
                    let Some(Reverse((at, id))) = self.queue.pop() else {
                        return;
                    };
                    self.set_now(at);
                    let ev = self.events.remove(&id).expect("scheduled");
                    self.handle(ev);
                }
            }
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ToBroker { conn, frame } => {
                if !self.conns[conn].open {
                    return; // lost with its connection
                }
                let replies = self
                    .broker
                    .handle(conn, frame, &mut self.script, &mut self.rng);
                for (is_receipt, r) in replies {
                    if is_receipt && self.rng.chance(self.script.reorder_receipt) {
                        // Out of order: this receipt ignores the connection's order.
                        let at = self.now + self.latency() + self.latency();
                        self.at(at, Ev::ToClient { conn, frame: r });
                    } else {
                        self.send_to_client(conn, r);
                    }
                }
                self.faults();
            }
            Ev::ToClient { conn, frame } => {
                if !self.conns[conn].open {
                    return;
                }
                let frame = wire::decode_frame(frame, MAX_FRAME).expect("valid frames");
                match self.conns[conn].core.handle_frame(frame) {
                    Ok(Inbound::Producer(pid, event)) => {
                        assert_eq!(pid, self.core.producer_id());
                        if self.attached == Some(conn) {
                            self.core.handle_event(event, self.now);
                        }
                    }
                    Ok(Inbound::Reply { reply: CLOSING, .. }) => {}
                    Ok(Inbound::Reply { reply, result, .. }) => {
                        let created = result.is_ok();
                        let result = result
                            .map(|c| {
                                Attached::from_success(
                                    &c.producer_success.unwrap_or_default(),
                                    wire::DEFAULT_MAX_MESSAGE_SIZE,
                                )
                            })
                            .map_err(|error| Error::Server {
                                operation: "create producer",
                                error,
                            });
                        if self.core.handle_attached(reply, result, self.now) {
                            self.attached = Some(conn);
                        } else if created {
                            // Stale: the broker created it, so it is told to drop it.
                            let pid = self.core.producer_id();
                            self.request(conn, CLOSING, |id| commands::close_producer(pid, id));
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            Ev::Send(i) => {
                let msg = (self.message)(i);
                let rec = Rec {
                    index: i,
                    log: self.log.clone(),
                };
                self.core.send(msg, rec, self.now);
            }
            Ev::Flush => self.core.flush(Done::default(), self.now),
            Ev::Close => self.core.close(Some(self.close.clone()), self.now),
            Ev::Drop(conn) => self.drop_connection(conn),
            Ev::Restart => {
                for conn in 0..self.conns.len() {
                    self.drop_connection(conn);
                }
                self.broker.restart();
            }
        }
    }

    /// After a frame reached the broker: maybe a connection drop or a restart, a moment later.
    fn faults(&mut self) {
        if self.rng.chance(self.script.drop_connection) {
            if let Some(conn) = self.conns.iter().rposition(|c| c.open) {
                let at = self.now + self.latency();
                self.at(at, Ev::Drop(conn));
            }
        }
        if self.rng.chance(self.script.restart) {
            let at = self.now + self.latency();
            self.at(at, Ev::Restart);
        }
    }

    fn drop_connection(&mut self, conn: usize) {
        if !self.conns[conn].open {
            return;
        }
        self.conns[conn].open = false;
        self.broker.producers.remove(&conn);
        for (reply, _) in self.conns[conn].core.close() {
            if reply != CLOSING {
                self.core.handle_attached(
                    reply,
                    Err(Error::Connection(ConnectionError::Closed)),
                    self.now,
                );
            }
        }
        if self.attached == Some(conn) {
            self.core.handle_event(
                crate::protocol::connection::ProducerEvent::ConnectionClosed(
                    ConnectionError::Closed,
                ),
                self.now,
            );
        }
        self.drain();
    }

    /// Creates the producer: runs until the first attach's outcome.
    fn create(&mut self) -> crate::error::Result<()> {
        self.run(|s| s.created.is_some());
        self.created.clone().expect("an outcome")
    }

    /// Schedules `n` sends (and some flushes), then a close, from now.
    fn workload(&mut self, n: usize, gap: Duration) {
        let mut at = self.now;
        for i in 0..n {
            at += self.rng.between(Duration::ZERO, gap);
            self.log.borrow_mut().results.push(None);
            self.sent_at.push(at);
            self.at(at, Ev::Send(i));
            if self.rng.chance(20) {
                self.at(at, Ev::Flush);
            }
        }
        self.at(at + MS(1), Ev::Close);
    }
}

fn config(
    send_timeout: Option<Duration>,
    batching: Option<BatchLimits>,
    key_based: bool,
) -> PartitionConfig {
    PartitionConfig {
        name: None,
        send_timeout,
        max_pending: 1000,
        block_if_queue_full: true,
        properties: Vec::new(),
        access_mode: AccessMode::Shared,
        initial_sequence_id: None,
        batching,
        compression: Compression::None,
        key_based_batching: key_based,
        initial_subscription_name: None,
        chunking: false,
        chunk_max_size: None,
        schema: None,
        #[cfg(feature = "encryption")]
        encryption: None,
    }
}

fn quiet_script() -> Script {
    Script {
        attach_error: 0,
        terminate: 0,
        send_error: 0,
        duplicate_receipt: 0,
        reorder_receipt: 0,
        fail_once: None,
        drop_connection: 0,
        restart: 0,
        first_answers: Vec::new(),
        latency: (MS(1), MS(1)),
    }
}

fn code(e: &Error) -> Option<ServerErrorCode> {
    e.server_error().map(|s| s.code)
}

// ---- the properties -----------------------------------------------------------------------------

/// What one seeded schedule showed, for the totals.
#[derive(Debug, Default)]
struct Totals {
    sends: usize,
    ok: usize,
    timed_out: usize,
    timeouts_detached: usize,
    duplicates_acked: usize,
    attach_attempts: usize,
    failed_producers: usize,
    not_created: usize,
    steps: usize,
    frames: usize,
}

fn run_seed(seed: u64, sends: usize, totals: &mut Totals) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let send_timeout = if rng.chance(400) {
        Some(rng.between(MS(20), MS(500)))
    } else {
        None
    };
    let batching = if rng.chance(500) {
        Some(BatchLimits {
            max_messages: 1 + rng.below(8) as usize,
            max_bytes: 128 * 1024,
            max_delay: MS(1 + rng.below(10)),
        })
    } else {
        None
    };
    let max_delay = batching.map(|b| b.max_delay).unwrap_or_default();
    // Not key-based: with deduplication, a later key's batch whose sequence ids are below an
    // earlier key's highest would be taken for a duplicate (as on a real broker).
    let key_based = false;
    let terminate = if rng.chance(100) { 100 } else { 0 };
    let script = Script {
        attach_error: rng.below(400),
        terminate,
        send_error: if rng.chance(200) { 20 } else { 0 },
        duplicate_receipt: rng.below(50),
        reorder_receipt: rng.below(30),
        fail_once: None,
        drop_connection: rng.below(30),
        restart: rng.below(10),
        first_answers: Vec::new(),
        latency: (Duration::from_micros(100), MS(1 + rng.below(20))),
    };
    let mut sim = Sim::new(
        seed,
        config(send_timeout, batching, key_based),
        script,
        Duration::from_secs(30),
    );
    if let Err(e) = sim.create() {
        // Transient errors until the operation timeout, or a permanent one (the topic was
        // terminated after a PRODUCER_SUCCESS the client never saw).
        assert!(
            e.is_retriable() || code(&e) == Some(ServerErrorCode::TopicTerminatedError),
            "seed {seed}: {e:?}"
        );
        assert!(sim.now <= sim.t0 + Duration::from_secs(30), "seed {seed}");
        totals.not_created += 1;
        return;
    }
    let gap = Duration::from_micros(200 + rng.below(5000));
    sim.workload(sends, gap);
    sim.run(|_| false);

    let log = sim.log.borrow();
    assert_eq!(
        log.completed_twice, 0,
        "seed {seed}: a send completed twice"
    );
    assert!(sim.ended.is_some(), "seed {seed}: the producer did not end");
    let failed_for_good = matches!(&sim.ended, Some(Err(_)));
    if !failed_for_good {
        assert!(
            matches!(&*sim.close.0.borrow(), Some(Ok(()))),
            "seed {seed}: close answered"
        );
    }

    // The broker stored each sequence id at most once, in increasing order.
    for w in sim.broker.stored.windows(2) {
        assert!(
            w[1].first > w[0].highest,
            "seed {seed}: stored out of order or twice: {w:?}"
        );
    }
    let stored: BTreeMap<u64, &Stored> = sim.broker.stored.iter().map(|s| (s.first, s)).collect();
    let stored_seq = |seq: u64| {
        stored
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, s)| s.first <= seq && seq <= s.highest)
    };

    // Sequence ids are the send order (a fresh broker: from 0), so message i has sequence id i.
    let mut last_id: Option<MessageId> = None;
    let mut last_ok_seq: Option<u64> = None;
    for &i in log.order.iter() {
        let (at, result) = log.results[i].as_ref().expect("recorded");
        let seq = i as u64;
        match result {
            Ok(id) => {
                assert!(
                    stored_seq(seq),
                    "seed {seed}: message {i} completed but not stored"
                );
                assert!(
                    last_ok_seq.is_none_or(|l| l < seq),
                    "seed {seed}: receipts out of order"
                );
                last_ok_seq = Some(seq);
                if id.ledger_id == -1 {
                    totals.duplicates_acked += 1;
                } else {
                    assert!(
                        last_id.is_none_or(|l| l < *id),
                        "seed {seed}: ids not increasing: {last_id:?} then {id:?}"
                    );
                    last_id = Some(*id);
                }
                if let Some(t) = send_timeout {
                    assert!(
                        *at <= sim.sent_at[i] + max_delay + t,
                        "seed {seed}: completed after its timeout"
                    );
                }
                totals.ok += 1;
            }
            Err(Error::SendTimeout(t)) => {
                let timeout = send_timeout.expect("a send timeout was set");
                assert_eq!(*t, timeout);
                let deadline = sim.sent_at[i] + timeout;
                assert!(*at >= deadline, "seed {seed}: timed out early");
                assert!(*at <= deadline + max_delay, "seed {seed}: timed out late");
                totals.timed_out += 1;
            }
            Err(e @ Error::Server { .. }) => {
                let c = code(e);
                assert!(
                    c == Some(ServerErrorCode::PersistenceError)
                        || c == Some(ServerErrorCode::TopicTerminatedError),
                    "seed {seed}: {e:?}"
                );
                if c == Some(ServerErrorCode::PersistenceError) {
                    assert!(!stored_seq(seq), "seed {seed}: a failed send was stored");
                }
            }
            Err(Error::Closed(_)) => assert!(failed_for_good, "seed {seed}: closed while open"),
            Err(e) => panic!("seed {seed}: message {i}: {e:?}"),
        }
    }
    // Every send completed, and with deduplication nothing stored is lost: a stored message
    // completed ok, unless its receipt was overtaken by its timeout or the producer's end.
    for i in 0..sends {
        let (_, result) = log.results[i]
            .as_ref()
            .unwrap_or_else(|| panic!("seed {seed}: message {i} never completed"));
        if stored_seq(i as u64) && !failed_for_good {
            assert!(
                result.is_ok() || matches!(result, Err(Error::SendTimeout(_))),
                "seed {seed}: message {i} stored but failed: {result:?}"
            );
        }
    }
    if send_timeout.is_none() && !failed_for_good {
        assert_eq!(
            log.results
                .iter()
                .filter(|r| matches!(r, Some((_, Ok(_)))))
                .count(),
            sends,
            "seed {seed}: without timeouts every message is stored and acknowledged"
        );
    }
    totals.sends += sends;
    totals.steps += sim.steps;
    totals.frames += sim.next_event as usize;
    totals.timeouts_detached += sim.timeouts_detached;
    totals.attach_attempts += sim.attach_attempts;
    totals.failed_producers += usize::from(failed_for_good);
}

/// Runs the seeds `from..from + n` (`n` from `SIM_SEEDS` when set: `SIM_SEEDS=2000` runs 2,000
/// seeds per test), 200 sends each, and checks that they exercised what they claim to.
fn run_seeds(from: u64, default: u64) {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let mut totals = Totals::default();
    for seed in from..from + seeds {
        run_seed(seed, 200, &mut totals);
    }
    eprintln!("{seeds} seeds: {totals:?}");
    assert_eq!(
        totals.sends + totals.not_created * 200,
        seeds as usize * 200,
        "{totals:?}"
    );
    assert!(totals.ok > seeds as usize * 100, "{totals:?}");
    assert!(totals.timed_out > 0, "{totals:?}");
    assert!(totals.timeouts_detached > 0, "{totals:?}");
    assert!(totals.duplicates_acked > 0, "{totals:?}");
    assert!(totals.failed_producers > 0, "{totals:?}");
    assert!(totals.attach_attempts > 2 * seeds as usize, "{totals:?}");
}

// Two tests, so that the test harness runs them on two threads.
#[test]
fn seeded_schedules_keep_every_send_exactly_once_and_in_order() {
    run_seeds(1, 75);
}

#[test]
fn more_seeded_schedules_keep_every_send_exactly_once_and_in_order() {
    run_seeds(1_000_001, 75);
}

// ---- scripted cases -----------------------------------------------------------------------------

fn server(code: ServerErrorCode) -> Option<ServerErrorCode> {
    Some(code)
}

#[test]
fn create_retries_transient_errors_until_the_producer_is_created() {
    let mut script = quiet_script();
    script.first_answers = vec![
        server(ServerErrorCode::ServiceNotReady),
        server(ServerErrorCode::ProducerBusy),
        server(ServerErrorCode::TooManyRequests),
        None,
    ];
    let mut sim = Sim::new(
        1,
        config(None, None, false),
        script,
        Duration::from_secs(30),
    );
    assert!(sim.create().is_ok());
    assert_eq!(sim.attach_attempts, 4);
    assert_eq!(sim.broker.producer_requests, 4);
    // And it works: one send, one receipt.
    sim.workload(1, MS(1));
    sim.run(|_| false);
    let log = sim.log.borrow();
    assert!(
        matches!(log.results[0], Some((_, Ok(_)))),
        "{:?}",
        log.results[0]
    );
}

#[test]
fn create_fails_with_the_last_error_once_the_operation_timeout_is_over() {
    let mut script = quiet_script();
    script.attach_error = 1000;
    let timeout = Duration::from_secs(10);
    let mut sim = Sim::new(2, config(None, None, false), script, timeout);
    let err = sim.create().expect_err("every attach fails");
    let c = code(&err);
    assert!(
        c == Some(ServerErrorCode::ServiceNotReady) || c == Some(ServerErrorCode::ProducerBusy),
        "{err:?}"
    );
    assert!(sim.attach_attempts > 3, "{} attempts", sim.attach_attempts);
    assert!(sim.now <= sim.t0 + timeout);
    assert!(sim.core.is_ended());
    assert_eq!(sim.core.poll_timeout(), None, "no more attempts");
}

#[test]
fn create_fails_at_once_on_a_permanent_error() {
    let mut script = quiet_script();
    script.first_answers = vec![server(ServerErrorCode::TopicTerminatedError), None];
    let mut sim = Sim::new(
        3,
        config(None, None, false),
        script,
        Duration::from_secs(30),
    );
    let err = sim.create().expect_err("terminated");
    assert_eq!(code(&err), Some(ServerErrorCode::TopicTerminatedError));
    assert_eq!(sim.attach_attempts, 1);
    assert_eq!(sim.now, sim.t0 + MS(2), "one round trip");
}

#[test]
fn a_send_times_out_while_a_re_attach_is_in_flight() {
    let mut script = quiet_script();
    let timeout = MS(300);
    let mut sim = Sim::new(
        4,
        config(Some(timeout), None, false),
        script.clone(),
        Duration::from_secs(30),
    );
    sim.create().expect("created");
    // The broker drops the connection before the SEND arrives, then takes 5 s to answer the
    // next PRODUCER.
    script.latency = (Duration::from_secs(5), Duration::from_secs(5));
    sim.workload(1, Duration::ZERO);
    let sent = sim.sent_at[0];
    let conn = sim.attached.expect("attached");
    sim.run(|s| s.core.pending_len() == 1);
    sim.script = script;
    sim.drop_connection(conn);
    assert_eq!(sim.attach_attempts, 2, "re-attaching at once");
    sim.run(|s| s.log.borrow().results[0].is_some());
    let log = sim.log.borrow();
    let (at, result) = log.results[0].as_ref().expect("completed");
    assert!(
        matches!(result, Err(Error::SendTimeout(t)) if *t == timeout),
        "{result:?}"
    );
    assert_eq!(*at, sent + timeout, "at its deadline");
    assert!(
        !sim.core.is_attached(),
        "while the re-attach is still in flight"
    );
    assert_eq!(sim.attach_attempts, 2);
}

#[test]
fn a_transient_send_error_re_creates_the_producer_which_resends_everything_pending() {
    // A PersistenceError (the broker's topic fenced for an unload, say) fails nothing: as the
    // Java client, the producer is re-created and every pending send goes again.
    let mut script = quiet_script();
    script.fail_once = Some(0);
    let mut sim = Sim::new(
        5,
        config(None, None, false),
        script,
        Duration::from_secs(30),
    );
    sim.create().expect("created");
    sim.workload(3, Duration::ZERO);
    sim.run(|_| false);
    let log = sim.log.borrow();
    for (i, r) in log.results.iter().enumerate().take(3) {
        assert!(matches!(r, Some((_, Ok(_)))), "send {i}: {r:?}");
    }
    assert_eq!(sim.attach_attempts, 2, "re-created once");
    // 0 failed on the broker, and 1 and 2 after it; all three were stored once resent.
    let stored: Vec<u64> = sim.broker.stored.iter().map(|s| s.first).collect();
    assert_eq!(stored, vec![0, 1, 2]);
    assert_eq!(log.order, vec![0, 1, 2]);
}

#[test]
fn a_re_attach_resends_pending_frames_in_order_with_their_sequence_ids() {
    let mut sim = Sim::new(
        6,
        config(None, None, false),
        quiet_script(),
        Duration::from_secs(30),
    );
    sim.create().expect("created");
    sim.workload(5, Duration::ZERO);
    let conn = sim.attached.expect("attached");
    // Every SEND reaches the broker (and is stored), but the connection drops before a
    // receipt comes back.
    sim.run(|s| s.broker.stored.len() == 5);
    sim.drop_connection(conn);
    sim.run(|_| false);
    let log = sim.log.borrow();
    let ids: Vec<MessageId> = (0..5)
        .map(|i| log.results[i].as_ref().unwrap().1.clone().expect("ok"))
        .collect();
    // The resent ones were duplicates: acknowledged with (-1, -1), stored once.
    assert!(ids.iter().all(|id| id.ledger_id == -1), "{ids:?}");
    let stored: Vec<u64> = sim.broker.stored.iter().map(|s| s.first).collect();
    assert_eq!(stored, vec![0, 1, 2, 3, 4]);
    assert_eq!(log.order, vec![0, 1, 2, 3, 4]);
}

#[test]
fn close_waits_for_pending_sends_then_closes() {
    let mut sim = Sim::new(
        7,
        config(
            None,
            Some(BatchLimits {
                max_messages: 100,
                max_bytes: 1 << 20,
                max_delay: Duration::from_secs(600),
            }),
            false,
        ),
        quiet_script(),
        Duration::from_secs(30),
    );
    sim.create().expect("created");
    sim.workload(3, Duration::ZERO);
    sim.run(|_| false);
    let log = sim.log.borrow();
    // The close flushed the open batch: one entry of three.
    assert_eq!(sim.broker.stored.len(), 1);
    assert_eq!(
        (sim.broker.stored[0].first, sim.broker.stored[0].highest),
        (0, 2)
    );
    for i in 0..3 {
        let id = log.results[i].as_ref().unwrap().1.clone().expect("ok");
        assert_eq!((id.batch_index, id.batch_size), (i as i32, 3));
    }
    assert!(matches!(&*sim.close.0.borrow(), Some(Ok(()))));
    assert!(matches!(sim.ended, Some(Ok(()))));
}

#[test]
fn create_fails_at_once_on_an_error_no_retry_can_fix() {
    let mut sim = Sim::new(
        8,
        config(None, None, false),
        quiet_script(),
        Duration::from_secs(30),
    );
    let Some(Action::Attach { epoch, .. }) = sim.core.poll_action() else {
        panic!("the first attach is due at once");
    };
    let redirects = Error::TooManyRedirects {
        topic: "sim".into(),
        max: 20,
    };
    assert!(!sim.core.handle_attached(epoch, Err(redirects), sim.t0));
    assert!(matches!(
        sim.core.poll_action(),
        Some(Action::Failed(Error::TooManyRedirects { max: 20, .. }))
    ));
    assert!(sim.core.is_ended());
    assert_eq!(sim.core.poll_timeout(), None, "no retry");
}

#[test]
fn every_entry_carries_the_producers_schema_version_and_a_batch_holds_one_version() {
    let mut sim = Sim::new(
        9,
        config(
            None,
            Some(BatchLimits {
                max_messages: 100,
                max_bytes: 1 << 20,
                max_delay: Duration::from_secs(600),
            }),
            false,
        ),
        quiet_script(),
        Duration::from_secs(30),
    );
    // Messages 2 and 3 were written with another schema (version 9); message 4 has a byte key.
    sim.message = |i| {
        let msg = ProducerMessage::new(format!("message {i}"));
        match i {
            2 | 3 => ProducerMessage {
                schema_version: Some(crate::schema::SchemaVersion::from_u64(9)),
                ..msg
            },
            4 => msg.key_bytes([0xff, 0x00]),
            _ => msg,
        }
    };
    sim.create().expect("created");
    sim.workload(6, Duration::ZERO);
    sim.run(|_| false);
    let v7 = Some(Bytes::from_static(&SCHEMA_VERSION));
    let v9 = Some(Bytes::copy_from_slice(&9u64.to_be_bytes()));
    let entries: Vec<(u64, u64, Option<Bytes>, bool)> = sim
        .broker
        .stored
        .iter()
        .map(|s| (s.first, s.highest, s.schema_version.clone(), s.key_b64))
        .collect();
    assert_eq!(
        entries,
        vec![
            (0, 1, v7.clone(), false),
            (2, 3, v9, false),
            (4, 5, v7, true),
        ],
        "a change of version closes the batch; the first message's key flag is the entry's"
    );
    let log = sim.log.borrow();
    assert!(log.results.iter().all(|r| matches!(r, Some((_, Ok(_))))));
}

#[test]
fn sequence_ids_wrap_after_the_largest_instead_of_overflowing() {
    // Found by fuzz/fuzz_targets/core_events.rs: an application's sequence id of u64::MAX - 1
    // made the next automatic one u64::MAX, and the one after it overflowed (a panic in debug
    // builds).
    let t0 = start_of_time();
    let log: Shared<Log> = Rc::default();
    log.borrow_mut().now = Some(t0);
    let mut core: ProducerCore<Rec, Done> = ProducerCore::new(
        "persistent://public/default/sim".into(),
        None,
        7,
        config(None, None, false),
        Duration::from_secs(30),
        Backoff::with_seed(MS(100), Duration::from_secs(60), 1),
        WallClock::new(t0, 1_700_000_000_000),
        Duration::ZERO,
        t0,
    );
    let epoch = match core.poll_action() {
        Some(Action::Attach { epoch, .. }) => epoch,
        other => panic!("expected an attach, got {other:?}"),
    };
    let attached = Attached {
        producer_name: "p".into(),
        last_sequence_id: None,
        topic_epoch: None,
        max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
        schema_version: None,
    };
    assert!(core.handle_attached(epoch, Ok(attached), t0));
    for (i, seq) in [Some(u64::MAX - 1), None, None].into_iter().enumerate() {
        log.borrow_mut().results.push(None);
        let mut msg = ProducerMessage::new("x");
        msg.sequence_id = seq;
        let rec = Rec {
            index: i,
            log: log.clone(),
        };
        core.send(msg, rec, t0);
    }
    let sent: Vec<u64> = std::iter::from_fn(|| core.poll_transmit())
        .filter_map(|f| wire::decode_frame(f, MAX_FRAME).ok())
        .filter_map(|f| f.command.send.map(|s| s.sequence_id))
        .collect();
    assert_eq!(sent, vec![u64::MAX - 1, u64::MAX, 0]);
}

#[test]
fn the_last_sequence_id_is_the_highest_the_broker_confirmed() {
    let t0 = start_of_time();
    let log: Shared<Log> = Rc::default();
    log.borrow_mut().now = Some(t0);
    let mut core: ProducerCore<Rec, Done> = ProducerCore::new(
        "persistent://public/default/sim".into(),
        None,
        7,
        config(None, None, false),
        Duration::from_secs(30),
        Backoff::with_seed(MS(100), Duration::from_secs(60), 1),
        WallClock::new(t0, 1_700_000_000_000),
        Duration::ZERO,
        t0,
    );
    // Nothing confirmed before the attach.
    assert_eq!(core.last_sequence_id(), None);
    let cell = core.last_sequence_id_cell();
    let epoch = match core.poll_action() {
        Some(Action::Attach { epoch, .. }) => epoch,
        other => panic!("expected an attach, got {other:?}"),
    };
    // The broker stored up to 41 for this producer name (deduplication): confirmed.
    let attached = Attached {
        producer_name: "p".into(),
        last_sequence_id: Some(41),
        topic_epoch: None,
        max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
        schema_version: None,
    };
    assert!(core.handle_attached(epoch, Ok(attached), t0));
    assert_eq!(core.last_sequence_id(), Some(41));
    for i in 0..3 {
        log.borrow_mut().results.push(None);
        let rec = Rec {
            index: i,
            log: log.clone(),
        };
        core.send(ProducerMessage::new("x"), rec, t0);
    }
    // Sent as 42, 43, 44; not confirmed while no receipt came.
    assert_eq!(core.last_sequence_id(), Some(41));
    let receipt = |sequence_id: u64, entry: i64| ProducerEvent::Receipt {
        sequence_id,
        highest_sequence_id: None,
        message_id: MessageId::new(1, entry),
    };
    core.handle_event(receipt(42, 0), t0);
    assert_eq!(core.last_sequence_id(), Some(42));
    core.handle_event(receipt(43, 1), t0);
    core.handle_event(receipt(44, 2), t0);
    assert_eq!(core.last_sequence_id(), Some(44));
    // The handles' cell holds it plus one.
    assert_eq!(cell.load(std::sync::atomic::Ordering::Acquire), 45);
    let log = log.borrow();
    assert!(log.results.iter().all(|r| matches!(r, Some((_, Ok(_))))));
}
