// Compiled only in tests: the parent declares this module under #[cfg(test)].
//! The consumer core in simulated time against a model broker: frames both ways through the
//! wire codec and [`ConnectionCore`], seeded latency and faults (connection drops, broker
//! restarts, attach errors, pushes past the permits, duplicate deliveries), no socket, no
//! sleep. Each schedule is checked for the consumer's promises: nothing delivered is lost,
//! nothing stalls, unacked messages come back, the client never grants more permits than its
//! queue, and a reader yields no duplicate and no gap.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::error::{ConnectionError, ServerError};
use crate::protocol::connection::{ConnectionCore, Inbound};
use crate::protocol::fuzz::message_event;
use crate::wire::proto::base_command::Type;

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Acks have no receipts in the simulation.
#[derive(Debug)]
struct NoWaiter;

impl AckWaiter for NoWaiter {
    fn answer(self, _: Result<(), Error>) {}
}

/// How hostile a schedule is.
#[derive(Debug, Clone, Copy)]
struct Faults {
    /// Per mille, per simulated millisecond of the fault phase.
    disconnect: u64,
    restart: u64,
    /// Per mille, per attach.
    attach_error: u64,
    /// Per mille, per dispatch: one more message past the permits.
    overshoot: u64,
    /// Per mille, per dispatch: an entry sent twice.
    duplicate: u64,
    /// Per mille, per received message: negatively acknowledged instead of acknowledged.
    nack: u64,
}

const CALM: Faults = Faults {
    disconnect: 0,
    restart: 0,
    attach_error: 0,
    overshoot: 0,
    duplicate: 0,
    nack: 0,
};

/// The model broker's view of one subscription on a topic of `entries` messages.
struct Broker {
    entries: u64,
    durable: bool,
    acked: BTreeSet<u64>,
    /// Dispatched to the consumer and not acknowledged.
    dispatched: BTreeSet<u64>,
    /// To dispatch again before reading on.
    replay: BTreeSet<u64>,
    read_pos: u64,
    permits: i64,
    deliveries: HashMap<u64, u32>,
    /// The connection and consumer id subscribed, if any.
    consumer: Option<(u64, u64)>,
    up: bool,
    /// The most permits the client ever had outstanding.
    max_permits: i64,
}

impl Broker {
    fn new(entries: u64, durable: bool) -> Self {
        Broker {
            entries,
            durable,
            acked: BTreeSet::new(),
            dispatched: BTreeSet::new(),
            replay: BTreeSet::new(),
            read_pos: 0,
            permits: 0,
            deliveries: HashMap::new(),
            consumer: None,
            up: true,
            max_permits: 0,
        }
    }

    /// The consumer is gone: what it had and did not acknowledge is dispatched again.
    fn drop_consumer(&mut self) {
        self.consumer = None;
        self.permits = 0;
        let back = std::mem::take(&mut self.dispatched);
        if self.durable {
            self.replay.extend(back);
        }
    }

    fn subscribe(&mut self, conn: u64, consumer_id: u64, start: Option<&proto::MessageIdData>) {
        self.drop_consumer();
        if !self.durable {
            // A non-durable cursor starts at the id given (the client filters what it saw).
            self.replay.clear();
            self.read_pos = start.map_or(0, |s| {
                if s.entry_id == u64::MAX {
                    0
                } else {
                    s.entry_id
                }
            });
        }
        self.consumer = Some((conn, consumer_id));
    }

    fn next_entry(&mut self) -> Option<u64> {
        if let Some(e) = self.replay.pop_first() {
            return Some(e);
        }
        while self.read_pos < self.entries {
            let e = self.read_pos;
            self.read_pos += 1;
            if !self.acked.contains(&e) {
                return Some(e);
            }
        }
        None
    }

    fn handle(&mut self, command: &proto::BaseCommand) {
        let Ok(kind) = Type::try_from(command.r#type) else {
            return;
        };
        match kind {
            Type::Flow => {
                if let Some(f) = &command.flow {
                    self.permits += i64::from(f.message_permits);
                    self.max_permits = self.max_permits.max(self.permits);
                }
            }
            Type::Ack => {
                if let Some(a) = &command.ack {
                    for id in &a.message_id {
                        if a.validation_error.is_none() || self.durable {
                            self.acked.insert(id.entry_id);
                            self.dispatched.remove(&id.entry_id);
                        }
                    }
                }
            }
            Type::RedeliverUnacknowledgedMessages => {
                if let Some(r) = &command.redeliver_unacknowledged_messages {
                    if r.message_ids.is_empty() {
                        let all = std::mem::take(&mut self.dispatched);
                        self.replay.extend(all);
                    } else {
                        for id in &r.message_ids {
                            if self.dispatched.remove(&id.entry_id) {
                                self.replay.insert(id.entry_id);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The MESSAGE frame of one entry.
    fn message(&mut self, consumer_id: u64, entry: u64) -> Bytes {
        let count = self.deliveries.entry(entry).or_insert(0);
        let redelivery_count = *count;
        *count += 1;
        let command = proto::BaseCommand {
            r#type: Type::Message as i32,
            message: Some(proto::CommandMessage {
                consumer_id,
                message_id: proto::MessageIdData {
                    ledger_id: 1,
                    entry_id: entry,
                    ..Default::default()
                },
                redelivery_count: Some(redelivery_count),
                ..Default::default()
            }),
            ..Default::default()
        };
        let metadata = proto::MessageMetadata {
            producer_name: "sim".into(),
            sequence_id: entry,
            publish_time: 1,
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        wire::encode_payload_command(
            &command,
            None,
            &metadata,
            &entry.to_be_bytes(),
            &mut buf,
            wire::DEFAULT_MAX_FRAME_SIZE,
        )
        .expect("a small MESSAGE encodes");
        buf.freeze()
    }
}

#[derive(Debug)]
enum Event {
    /// A frame reaches the broker over connection `conn`.
    ToBroker(u64, Bytes),
    /// A frame reaches the client over connection `conn`.
    ToClient(u64, Bytes),
    /// The attach of `epoch` ends: the connection it got, or an error.
    Attached(u64, Result<u64, Error>),
    /// The application takes what is queued.
    App,
    /// The broker comes back after a restart.
    BrokerUp,
}

/// One simulated run.
struct Sim {
    rng: Rng,
    t0: Instant,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    events: HashMap<usize, Event>,
    next_event: usize,
    broker: Broker,
    core: ConsumerCore<NoWaiter>,
    shared: Arc<ConsumerShared>,
    /// The client's side of the current connection.
    conn: Option<(u64, ConnectionCore<()>)>,
    next_conn: u64,
    /// Deliveries on their way to the application (the shell's channel).
    app_queue: VecDeque<Delivery>,
    /// What the application received, in order, and what it acknowledged.
    received: Vec<u64>,
    acked: BTreeSet<u64>,
    faults: Faults,
    fault_phase_ends: Instant,
    failed: Option<Error>,
    latency: Duration,
    /// When the last frame each way arrives: TCP keeps the order of a connection's frames.
    last_to_broker: Instant,
    last_to_client: Instant,
}

const QUEUE: u32 = 50;

impl Sim {
    fn new(
        seed: u64,
        entries: u64,
        sub_type: SubscriptionType,
        durable: bool,
        faults: Faults,
    ) -> Sim {
        let t0 = Instant::now();
        let config = ChildConfig {
            subscription: "sim".into(),
            sub_type,
            initial_position: InitialPosition::Earliest,
            consumer_name: None,
            receiver_queue_size: QUEUE,
            auto_scaled_queue: false,
            nack_delay: Duration::from_millis(50),
            priority_level: None,
            properties: Vec::new(),
            start: (!durable).then_some(StartPosition {
                id: MessageId::EARLIEST,
                inclusive: true,
            }),
            durable,
            reader: !durable,
            extras: Default::default(),
            ack_group_delay: Duration::from_millis(10),
            ack_group_max: 20,
            batch_index_ack: false,
            ack_receipts: false,
            nack_backoff: None,
            ack_timeout: None,
            schema: None,
            max_pending_chunked: 10,
            chunk_expiry: Duration::from_secs(60),
            max_chunked_size: 1 << 20,
            crypto_failure_action: ConsumerCryptoFailureAction::Fail,
            #[cfg(feature = "encryption")]
            crypto_key_reader: None,
            operation_timeout: Duration::from_secs(30),
            read_compacted: false,
            start_paused: false,
            paused: Default::default(),
            report_redeliveries: false,
            interceptors: Default::default(),
        };
        let stats = crate::stats::ConsumerRecorder::new(STATS_INTERVAL, t0, t0);
        let shared = Arc::new(ConsumerShared::new(&config).with_stats(stats));
        let topic = TopicName::parse("persistent://public/default/sim").expect("valid");
        let backoff = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(2), seed);
        let core = ConsumerCore::new(topic, -1, 0, 1, config, shared.clone(), backoff, t0);
        let mut rng = Rng::new(seed);
        let latency = Duration::from_micros(100 + rng.below(2000));
        Sim {
            rng,
            t0,
            now: t0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_event: 0,
            broker: Broker::new(entries, durable),
            core,
            shared,
            conn: None,
            next_conn: 1,
            app_queue: VecDeque::new(),
            received: Vec::new(),
            acked: BTreeSet::new(),
            faults,
            fault_phase_ends: t0 + Duration::from_secs(2),
            failed: None,
            latency,
            last_to_broker: t0,
            last_to_client: t0,
        }
    }

    fn at(&mut self, delay: Duration, event: Event) {
        self.seq += 1;
        let key = self.next_event;
        self.next_event += 1;
        self.events.insert(key, event);
        self.queue.push(Reverse((self.now + delay, self.seq, key)));
    }

    fn jitter(&mut self) -> Duration {
        self.latency + Duration::from_micros(self.rng.below(500))
    }

    /// A delay that keeps a connection's frames in order, one way.
    fn in_order(&mut self, to_broker: bool) -> Duration {
        let arrival = self.now + self.jitter();
        let last = if to_broker {
            &mut self.last_to_broker
        } else {
            &mut self.last_to_client
        };
        *last = arrival.max(*last);
        *last - self.now
    }

    fn in_fault_phase(&self) -> bool {
        self.now < self.fault_phase_ends
    }

    /// Carries out what the core asked, as the shell does.
    fn carry_out(&mut self) {
        loop {
            while let Some(command) = self.core.poll_transmit() {
                if let Some((id, _)) = &self.conn {
                    let id = *id;
                    let mut buf = BytesMut::new();
                    wire::encode_command(&command, &mut buf, wire::DEFAULT_MAX_FRAME_SIZE)
                        .expect("commands encode");
                    let delay = self.in_order(true);
                    self.at(delay, Event::ToBroker(id, buf.freeze()));
                }
            }
            let Some(output) = self.core.poll_output() else {
                return;
            };
            match output {
                Output::Deliver(d) => self.app_queue.push_back(d),
                Output::Attach { epoch, args } => {
                    let delay = self.jitter() * 2;
                    let result = if !self.broker.up {
                        Err(Error::Connection(ConnectionError::Connect {
                            addr: "sim".into(),
                            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
                                .into(),
                        }))
                    } else if self.in_fault_phase() && self.rng.chance(self.faults.attach_error) {
                        Err(Error::Server {
                            operation: "subscribe",
                            error: ServerError {
                                code: ServerErrorCode::ServiceNotReady,
                                message: "sim".into(),
                            },
                        })
                    } else {
                        let conn = self.next_conn;
                        self.next_conn += 1;
                        self.broker.subscribe(
                            conn,
                            args.consumer_id,
                            args.start_message_id.as_ref(),
                        );
                        Ok(conn)
                    };
                    self.at(delay, Event::Attached(epoch, result));
                }
                Output::Detach => self.conn = None,
                Output::CloseOnBroker => {
                    if let Some((id, _)) = self.conn.take() {
                        if self.broker.consumer.is_some_and(|(c, _)| c == id) {
                            self.broker.drop_consumer();
                        }
                    }
                }
                Output::AckRequests { .. } => unreachable!("no ack receipts in the simulation"),
                Output::TxnAck { .. } => unreachable!("no transactions in the simulation"),
                Output::Ready | Output::Redelivered { .. } => {}
                Output::Failed(e) => self.failed = Some(e),
            }
        }
    }

    /// The broker sends what the permits allow (and, when hostile, more).
    fn dispatch(&mut self) {
        let Some((conn, consumer_id)) = self.broker.consumer else {
            return;
        };
        loop {
            let overshoot = self.in_fault_phase() && self.rng.chance(self.faults.overshoot);
            if self.broker.permits <= 0 && !overshoot {
                return;
            }
            let duplicate = self.in_fault_phase() && self.rng.chance(self.faults.duplicate);
            let entry = match self.broker.dispatched.iter().next().copied() {
                Some(e) if duplicate => e,
                _ => match self.broker.next_entry() {
                    Some(e) => e,
                    None => return,
                },
            };
            self.broker.permits -= 1;
            self.broker.dispatched.insert(entry);
            let frame = self.broker.message(consumer_id, entry);
            let delay = self.in_order(false);
            self.at(delay, Event::ToClient(conn, frame));
        }
    }

    /// The connection drops: both sides see it.
    fn disconnect(&mut self) {
        if let Some((id, _)) = self.conn.take() {
            if self.broker.consumer.is_some_and(|(c, _)| c == id) {
                self.broker.drop_consumer();
            }
            self.core.handle_event(
                ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
                self.now,
            );
        }
    }

    fn app(&mut self) {
        let take = 1 + self.rng.below(20);
        for _ in 0..take {
            let Some(d) = self.app_queue.pop_front() else {
                break;
            };
            // As `ChildHandle::accept`.
            if d.epoch != self.shared.epoch.load(Ordering::Acquire) {
                continue;
            }
            let msg = match d.item {
                Ok(msg) => msg,
                Err(e) => {
                    self.failed = Some(e);
                    continue;
                }
            };
            if let Ok(mut last) = self.shared.last_dequeued.lock() {
                *last = Some(msg.id);
            }
            self.shared.in_queue.fetch_sub(1, Ordering::AcqRel);
            if let Some(r) = self.shared.flow.on_consumed(1) {
                self.core.handle_command(
                    CoreCommand::Flow {
                        permits: r.permits,
                        generation: r.generation,
                    },
                    self.now,
                );
            }
            self.received.push(msg.id.entry_id as u64);
            if self.in_fault_phase() && self.rng.chance(self.faults.nack) {
                self.core.handle_command(
                    CoreCommand::Nack {
                        id: msg.id,
                        redelivery_count: msg.redelivery_count,
                    },
                    self.now,
                );
            } else {
                self.acked.insert(msg.id.entry_id as u64);
                self.core.handle_command(
                    CoreCommand::Ack {
                        id: msg.id,
                        cumulative: false,
                        waiter: None,
                    },
                    self.now,
                );
            }
            self.carry_out();
        }
        let next = Duration::from_micros(200 + self.rng.below(3000));
        self.at(next, Event::App);
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::ToBroker(conn, frame) => {
                if !self.broker.up || self.broker.consumer.map(|c| c.0) != Some(conn) {
                    return;
                }
                let mut buf = BytesMut::from(&frame[..]);
                let decoded = wire::decode(&mut buf, wire::DEFAULT_MAX_FRAME_SIZE);
                if let Ok(Some(frame)) = decoded {
                    self.broker.handle(&frame.command);
                }
                assert!(
                    self.broker.max_permits <= i64::from(QUEUE),
                    "the client granted {} permits for a queue of {QUEUE}",
                    self.broker.max_permits
                );
                self.dispatch();
            }
            Event::ToClient(conn, frame) => {
                let Some((id, core)) = self.conn.as_mut() else {
                    return;
                };
                if *id != conn {
                    return;
                }
                let mut buf = BytesMut::from(&frame[..]);
                let Ok(Some(frame)) = wire::decode(&mut buf, wire::DEFAULT_MAX_FRAME_SIZE) else {
                    panic!("the model broker's frame does not decode");
                };
                match core.handle_frame(frame) {
                    Ok(Inbound::Consumer(_, event)) => self.core.handle_event(event, self.now),
                    other => panic!("unexpected inbound {other:?}"),
                }
            }
            Event::Attached(epoch, result) => {
                let conn = result.as_ref().ok().copied();
                let keep = self.core.handle_attached(
                    epoch,
                    result.map(|_| wire::DEFAULT_MAX_MESSAGE_SIZE),
                    self.now,
                );
                match conn {
                    Some(id)
                        if keep
                            && self.broker.up
                            && self.broker.consumer.map(|c| c.0) == Some(id) =>
                    {
                        let mut core = ConnectionCore::new(self.now, Duration::from_secs(30));
                        let connected = proto::BaseCommand {
                            r#type: Type::Connected as i32,
                            connected: Some(Box::new(proto::CommandConnected {
                                server_version: "sim".into(),
                                protocol_version: Some(21),
                                ..Default::default()
                            })),
                            ..Default::default()
                        };
                        let _ = core.handle_frame(wire::Frame {
                            command: connected,
                            payload: None,
                        });
                        self.conn = Some((id, core));
                    }
                    Some(_) if keep => {
                        // Subscribed on a connection that dropped meanwhile.
                        self.conn =
                            Some((0, ConnectionCore::new(self.now, Duration::from_secs(30))));
                        self.disconnect();
                    }
                    Some(id) if self.broker.consumer.is_some_and(|(c, _)| c == id) => {
                        self.broker.drop_consumer();
                    }
                    Some(_) => {}
                    None => {}
                }
            }
            Event::App => self.app(),
            Event::BrokerUp => self.broker.up = true,
        }
    }

    /// Runs until every message was acknowledged by the application, or the time runs out.
    fn run(&mut self, limit: Duration) {
        self.carry_out();
        self.at(Duration::ZERO, Event::App);
        let mut last_fault_check = self.now;
        while self.acked.len() < self.broker.entries as usize && self.failed.is_none() {
            let next_event = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.core.poll_timeout();
            let t = match (next_event, next_timer) {
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            assert!(t >= self.now, "time never goes back");
            self.now = t;
            if self.now > self.t0 + limit {
                break;
            }
            // Faults, once per simulated millisecond of the fault phase.
            while self.in_fault_phase() && self.now >= last_fault_check + Duration::from_millis(1) {
                last_fault_check += Duration::from_millis(1);
                if self.rng.chance(self.faults.disconnect) {
                    self.disconnect();
                }
                if self.broker.up && self.rng.chance(self.faults.restart) {
                    self.broker.up = false;
                    self.broker.drop_consumer();
                    self.disconnect();
                    let down = Duration::from_millis(50 + self.rng.below(500));
                    self.at(down, Event::BrokerUp);
                }
            }
            if next_timer.is_some_and(|timer| timer <= self.now) {
                self.core.handle_timeout(self.now);
            }
            if next_event.is_some_and(|e| e <= self.now) {
                if let Some(Reverse((_, _, key))) = self.queue.pop() {
                    if let Some(event) = self.events.remove(&key) {
                        self.step(event);
                    }
                }
            }
            self.carry_out();
            assert!(
                self.shared.in_queue.load(Ordering::Acquire) <= self.core.queue_limit + 1,
                "the local queue grew past its bound"
            );
        }
    }
}

fn hostile() -> Faults {
    Faults {
        disconnect: 3,
        restart: 1,
        attach_error: 200,
        overshoot: 100,
        duplicate: 20,
        nack: 30,
    }
}

fn check_everything_acked(sim: &Sim, seed: u64) {
    assert!(
        sim.failed.is_none(),
        "seed {seed}: failed: {:?}",
        sim.failed
    );
    let missing: Vec<u64> = (0..sim.broker.entries)
        .filter(|e| !sim.acked.contains(e))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: never acknowledged: {missing:?}... (received {}, broker acked {})",
        sim.received.len(),
        sim.broker.acked.len()
    );
}

#[test]
fn calm_exclusive_consumer_gets_everything_once() {
    let mut sim = Sim::new(1, 500, SubscriptionType::Exclusive, true, CALM);
    sim.run(Duration::from_secs(60));
    check_everything_acked(&sim, 1);
    assert_eq!(sim.received.len(), 500, "no duplicate without faults");
    assert_eq!(sim.received, (0..500).collect::<Vec<_>>(), "in order");
}

#[test]
fn a_broker_that_pushes_past_the_permits_loses_nothing_and_stalls_nothing() {
    // The pulsar-lite restart bug: hundreds of messages past the grant. Before the core
    // handed them back, the consumer dropped them and stalled.
    let faults = Faults {
        overshoot: 900,
        ..CALM
    };
    for seed in 0..20 {
        for sub in [SubscriptionType::Exclusive, SubscriptionType::Shared] {
            let mut sim = Sim::new(seed, 300, sub, true, faults);
            sim.run(Duration::from_secs(120));
            check_everything_acked(&sim, seed);
        }
    }
}

#[test]
fn every_message_is_acknowledged_under_seeded_faults() {
    for seed in 0..400 {
        for sub in [
            SubscriptionType::Exclusive,
            SubscriptionType::Shared,
            SubscriptionType::Failover,
            SubscriptionType::KeyShared,
        ] {
            let mut sim = Sim::new(seed, 200, sub, true, hostile());
            sim.run(Duration::from_secs(600));
            check_everything_acked(&sim, seed);
        }
    }
}

#[test]
fn a_reader_yields_no_duplicate_and_no_gap_under_seeded_faults() {
    for seed in 0..500 {
        let faults = Faults {
            nack: 0,
            ..hostile()
        };
        let mut sim = Sim::new(seed, 200, SubscriptionType::Exclusive, false, faults);
        sim.run(Duration::from_secs(600));
        assert!(sim.failed.is_none(), "seed {seed}: {:?}", sim.failed);
        assert_eq!(
            sim.received,
            (0..200).collect::<Vec<_>>(),
            "seed {seed}: a reader's messages in order, each once"
        );
    }
}

#[test]
fn timers_fire_while_an_attach_is_in_flight() {
    // Acks grouped before the connection dropped, and a negative ack due while the next
    // subscribe is still in flight: the core's timeout comes, and is not held up by it.
    let mut sim = Sim::new(3, 10, SubscriptionType::Shared, true, CALM);
    sim.core.handle_command(
        CoreCommand::Nack {
            id: MessageId::new(1, 0),
            redelivery_count: 0,
        },
        sim.now,
    );
    sim.carry_out();
    // The attach is in flight (Attached not yet delivered): the nack timer is still due.
    let due = sim.core.poll_timeout().expect("a timer");
    assert!(due <= sim.t0 + Duration::from_millis(50));
    sim.core.handle_timeout(due);
    assert!(sim.core.poll_timeout().is_none_or(|t| t > due));
}

#[test]
fn a_lost_subscription_reaches_the_application_as_a_typed_error() {
    let mut sim = Sim::new(5, 10, SubscriptionType::Shared, true, CALM);
    sim.carry_out();
    // Attach once.
    while let Some(Reverse((t, _, key))) = sim.queue.pop() {
        sim.now = t;
        if let Some(event) = sim.events.remove(&key) {
            let attach = matches!(event, Event::Attached(..));
            sim.step(event);
            sim.carry_out();
            if attach {
                break;
            }
        }
    }
    assert!(sim.core.is_attached());
    sim.disconnect();
    // The first retry is at once.
    let retry = sim.now;
    let epoch = loop {
        match sim.core.poll_output() {
            Some(Output::Attach { epoch, .. }) => break epoch,
            Some(_) => {}
            None => panic!("no attach after the retry time"),
        }
    };
    let gone = Error::Server {
        operation: "subscribe",
        error: ServerError {
            code: ServerErrorCode::SubscriptionNotFound,
            message: "deleted".into(),
        },
    };
    assert!(!sim.core.handle_attached(epoch, Err(gone), retry));
    let failed = std::iter::from_fn(|| sim.core.poll_output())
        .find_map(|o| match o {
            Output::Failed(e) => Some(e),
            _ => None,
        })
        .expect("the failure is reported");
    assert_eq!(
        failed.server_error().map(|s| s.code),
        Some(ServerErrorCode::SubscriptionNotFound)
    );
    assert!(sim.core.is_over());
}

/// A core attached at once to nothing (its transmits are inspected), with this action.
fn attached_core(action: ConsumerCryptoFailureAction) -> (ConsumerCore<NoWaiter>, Instant) {
    attached_core_of(action, true)
}

fn attached_core_of(
    action: ConsumerCryptoFailureAction,
    durable: bool,
) -> (ConsumerCore<NoWaiter>, Instant) {
    let sub = if durable {
        SubscriptionType::Shared
    } else {
        SubscriptionType::Exclusive
    };
    let mut sim = Sim::new(9, 1, sub, durable, CALM);
    sim.core.config.crypto_failure_action = action;
    let now = sim.now;
    let epoch = loop {
        match sim.core.poll_output() {
            Some(Output::Attach { epoch, .. }) => break epoch,
            Some(_) => {}
            None => panic!("no attach"),
        }
    };
    assert!(sim
        .core
        .handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
    while sim.core.poll_transmit().is_some() {}
    while sim.core.poll_output().is_some() {}
    (sim.core, now)
}

fn encrypted_message(entry: u64) -> ConsumerEvent {
    message_event(
        entry,
        proto::MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 0,
            publish_time: 1,
            // Compressed too: the ciphertext must not be taken for a corrupt LZ4 block.
            compression: Some(proto::CompressionType::Lz4 as i32),
            uncompressed_size: Some(100),
            encryption_keys: vec![proto::EncryptionKeys {
                key: "rsa".into(),
                value: Bytes::from_static(b"wrapped key"),
                metadata: Vec::new(),
            }],
            encryption_algo: Some("RSA".into()),
            encryption_param: Some(Bytes::from_static(&[0; 12])),
            ..Default::default()
        },
        Bytes::from_static(b"ciphertext, not lz4"),
    )
}

fn acks_sent(core: &mut ConsumerCore<NoWaiter>) -> Vec<proto::CommandAck> {
    std::iter::from_fn(|| core.poll_transmit())
        .filter_map(|c| c.ack)
        .collect()
}

#[test]
fn an_encrypted_message_is_neither_delivered_nor_acknowledged_by_default() {
    // Before: the ciphertext failed to decompress and was acknowledged away as a
    // decompression error; the key holder then found nothing on the subscription.
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.handle_event(encrypted_message(7), now);
    core.flush_acks_now();
    assert!(acks_sent(&mut core).is_empty(), "not acknowledged");
    let delivered: Vec<Output<NoWaiter>> = std::iter::from_fn(|| core.poll_output()).collect();
    match delivered.as_slice() {
        [Output::Deliver(Delivery {
            item: Err(Error::Encrypted { id, .. }),
            ..
        })] => assert_eq!(id.entry_id, 7),
        other => panic!("expected one encryption error, got {other:?}"),
    }
    let text = Error::Encrypted {
        topic: "t".into(),
        id: MessageId::new(1, 7),
        reason: "no private key".into(),
    }
    .to_string();
    assert!(
        text.contains("encrypted") && text.contains("no private key"),
        "{text}"
    );
}

#[test]
fn discard_acknowledges_an_encrypted_message_with_a_decryption_error() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Discard);
    core.handle_event(encrypted_message(3), now);
    let acks = acks_sent(&mut core);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].validation_error,
        Some(proto::command_ack::ValidationError::DecryptionError as i32)
    );
    assert!(
        std::iter::from_fn(|| core.poll_output()).next().is_none(),
        "not delivered"
    );
}

#[test]
fn consume_delivers_an_encrypted_message_flagged_and_untouched() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Consume);
    core.handle_event(encrypted_message(4), now);
    assert!(acks_sent(&mut core).is_empty());
    match core.poll_output() {
        Some(Output::Deliver(Delivery { item: Ok(msg), .. })) => {
            assert!(msg.is_encrypted());
            assert_eq!(&msg.payload()[..], b"ciphertext, not lz4");
        }
        other => panic!("{other:?}"),
    }
}

/// The commands the core wants written now.
fn transmitted(core: &mut ConsumerCore<NoWaiter>) -> Vec<proto::BaseCommand> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn redelivered(commands: &[proto::BaseCommand]) -> Vec<u64> {
    commands
        .iter()
        .filter_map(|c| c.redeliver_unacknowledged_messages.as_ref())
        .flat_map(|r| r.message_ids.iter().map(|id| id.entry_id))
        .collect()
}

#[test]
fn negative_ack_delays_grow_with_the_redelivery_count() {
    let (mut core, t0) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.config.nack_backoff = Some((Duration::from_millis(100), Duration::from_secs(1)));
    for (entry, count) in [(1, 0), (2, 1), (3, 2), (4, 10)] {
        core.handle_command(
            CoreCommand::Nack {
                id: MessageId::new(1, entry),
                redelivery_count: count,
            },
            t0,
        );
    }
    // 100 ms, 200 ms, 400 ms, then capped at 1 s: each entry comes back at its own time.
    let mut seen = Vec::new();
    while let Some(t) = core.poll_timeout() {
        core.handle_timeout(t);
        for e in redelivered(&transmitted(&mut core)) {
            seen.push((e, t - t0));
        }
    }
    assert_eq!(
        seen,
        vec![
            (1, Duration::from_millis(100)),
            (2, Duration::from_millis(200)),
            (3, Duration::from_millis(400)),
            (4, Duration::from_secs(1)),
        ]
    );
}

#[test]
fn the_ack_timeout_redelivers_what_was_received_and_not_acknowledged() {
    let (mut core, t0) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.config.ack_timeout = Some(Duration::from_secs(1));
    core.handle_command(CoreCommand::Received(MessageId::new(1, 5)), t0);
    core.handle_command(CoreCommand::Received(MessageId::new(1, 6)), t0);
    core.handle_command(
        CoreCommand::Ack {
            id: MessageId::new(1, 6),
            cumulative: false,
            waiter: None,
        },
        t0 + Duration::from_millis(500),
    );
    let due = core.poll_timeout().expect("timers");
    // The ack group's flush comes first (100 ms); then the ack timeout at 1 s.
    core.handle_timeout(due);
    let acked: Vec<u64> = transmitted(&mut core)
        .iter()
        .filter_map(|c| c.ack.as_ref())
        .flat_map(|a| a.message_id.iter().map(|id| id.entry_id))
        .collect();
    assert_eq!(acked, vec![6]);
    let due = core.poll_timeout().expect("the ack timeout");
    assert_eq!(due, t0 + Duration::from_secs(1));
    core.handle_timeout(due);
    assert_eq!(
        redelivered(&transmitted(&mut core)),
        vec![5],
        "only the unacknowledged one"
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn an_incomplete_chunked_message_expires_and_is_asked_for_again() {
    let (mut core, t0) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.chunks = ChunkAssembler::new(10, Duration::from_secs(60), 1 << 20);
    let chunk = message_event(
        9,
        proto::MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 0,
            publish_time: 1,
            uuid: Some("p-0".into()),
            chunk_id: Some(0),
            num_chunks_from_msg: Some(2),
            total_chunk_msg_size: Some(8),
            ..Default::default()
        },
        Bytes::from_static(b"half"),
    );
    core.handle_event(chunk, t0);
    transmitted(&mut core);
    assert!(core.poll_output().is_none(), "nothing delivered yet");
    let due = core.poll_timeout().expect("the chunk expiry");
    assert_eq!(due, t0 + Duration::from_secs(60));
    core.handle_timeout(due);
    assert_eq!(redelivered(&transmitted(&mut core)), vec![9]);
}

#[test]
fn a_reader_acknowledges_what_it_skips_before_its_start() {
    // pulsar-lite, after a restart, may send a reader's non-durable subscription entries from
    // before its start, and send them again and again while they stay unacknowledged: the
    // reader skipped them, gave their permits back, and got them once more, without end.
    let (mut core, t0) = attached_core_of(ConsumerCryptoFailureAction::Fail, false);
    core.filter = Some(StartPosition {
        id: MessageId::new(1, 5),
        inclusive: false,
    });
    let mut sim_broker = Broker::new(10, false);
    let frame = sim_broker.message(1, 3);
    let mut buf = BytesMut::from(&frame[..]);
    let Ok(Some(wire::Frame {
        command,
        payload: Some(payload),
    })) = wire::decode(&mut buf, wire::DEFAULT_MAX_FRAME_SIZE)
    else {
        panic!("a MESSAGE frame");
    };
    let message = command.message.expect("MESSAGE");
    core.handle_event(
        ConsumerEvent::Message {
            command: message,
            payload,
        },
        t0,
    );
    assert!(
        core.poll_output().is_none(),
        "not delivered: before the start"
    );
    core.flush_acks_now();
    let acked: Vec<u64> = transmitted(&mut core)
        .iter()
        .filter_map(|c| c.ack.as_ref())
        .flat_map(|a| a.message_id.iter().map(|id| id.entry_id))
        .collect();
    assert_eq!(acked, vec![3]);
}

#[test]
fn an_ack_in_a_transaction_is_a_request_of_its_own_with_the_batch_index_as_ack_set() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    let txn = crate::protocol::transaction::TxnId {
        most_bits: 2,
        least_bits: 9,
    };
    // Message 3 of a batch of 5, without batch-index acks configured (the default).
    let mut id = MessageId::new(1, 4);
    id.batch_index = 3;
    id.batch_size = 5;
    core.handle_command(
        CoreCommand::TxnAck {
            id,
            cumulative: false,
            txn,
            waiter: NoWaiter,
        },
        now,
    );
    core.flush_acks_now();
    assert!(
        acks_sent(&mut core).is_empty(),
        "not grouped with plain acks"
    );
    match core.poll_output() {
        Some(Output::TxnAck {
            ids,
            cumulative: false,
            txn: t,
            ..
        }) => {
            assert_eq!(t, txn);
            assert_eq!(ids.len(), 1);
            assert_eq!((ids[0].ledger_id, ids[0].entry_id), (1, 4));
            assert_eq!(ids[0].batch_size, Some(5));
            // Every index still to acknowledge but 3.
            assert_eq!(ids[0].ack_set, vec![0b10111]);
        }
        other => panic!("expected a transactional ack, got {other:?}"),
    }
    // Cumulatively at index 1: indexes 0 and 1 cleared.
    id.batch_index = 1;
    core.handle_command(
        CoreCommand::TxnAck {
            id,
            cumulative: true,
            txn,
            waiter: NoWaiter,
        },
        now,
    );
    match core.poll_output() {
        Some(Output::TxnAck {
            ids,
            cumulative: true,
            ..
        }) => assert_eq!(ids[0].ack_set, vec![0b11100]),
        other => panic!("expected a cumulative transactional ack, got {other:?}"),
    }
}

#[test]
fn a_message_keeps_its_schema_version_and_its_base64_key_single_and_batched() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    let version = Bytes::copy_from_slice(&3u64.to_be_bytes());
    // A message of its own, its key the base64 of 0xff 0x00.
    core.handle_event(
        message_event(
            1,
            proto::MessageMetadata {
                producer_name: "p".into(),
                partition_key: Some("/wA=".into()),
                partition_key_b64_encoded: Some(true),
                schema_version: Some(version.clone()),
                ..Default::default()
            },
            Bytes::from_static(b"v"),
        ),
        now,
    );
    // A batch of two: the entry's version applies to both; the keys' flags are their own.
    let mut entries = BytesMut::new();
    for (key, b64) in [("AQI=", true), ("plain", false)] {
        let mut single = proto::SingleMessageMetadata {
            partition_key: Some(key.into()),
            partition_key_b64_encoded: b64.then_some(true),
            ..Default::default()
        };
        wire::encode_entry(&mut single, b"x", &mut entries);
    }
    core.handle_event(
        message_event(
            2,
            proto::MessageMetadata {
                producer_name: "p".into(),
                num_messages_in_batch: Some(2),
                schema_version: Some(version.clone()),
                ..Default::default()
            },
            entries.freeze(),
        ),
        now,
    );
    let mut got = Vec::new();
    while let Some(Output::Deliver(Delivery { item: Ok(msg), .. })) = core.poll_output() {
        got.push((
            msg.schema_version().and_then(|v| v.as_u64()),
            msg.key_bytes().map(|k| k.into_owned()),
            msg.has_base64_encoded_key(),
        ));
    }
    assert_eq!(
        got,
        vec![
            (Some(3), Some(vec![0xff, 0x00]), true),
            (Some(3), Some(vec![1, 2]), true),
            (Some(3), Some(b"plain".to_vec()), false),
        ]
    );
}

/// The next attach the core asks for: its epoch and SUBSCRIBE arguments.
fn next_attach(core: &mut ConsumerCore<NoWaiter>) -> (u64, Box<SubscribeArgs>) {
    loop {
        match core.poll_output() {
            Some(Output::Attach { epoch, args }) => break (epoch, args),
            Some(_) => {}
            None => panic!("no attach"),
        }
    }
}

#[test]
fn read_compacted_is_asked_on_every_subscribe_including_after_a_reconnect() {
    for wanted in [false, true] {
        let sim = Sim::new(11, 1, SubscriptionType::Exclusive, false, CALM);
        let mut config = sim.core.config.clone();
        config.read_compacted = wanted;
        let now = sim.now;
        let shared = Arc::new(ConsumerShared::new(&config));
        let topic = TopicName::parse("persistent://public/default/sim").expect("valid");
        let backoff = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(2), 11);
        let mut core: ConsumerCore<NoWaiter> =
            ConsumerCore::new(topic, -1, 0, 1, config, shared, backoff, now);
        let (epoch, args) = next_attach(&mut core);
        assert_eq!(args.read_compacted, wanted, "first SUBSCRIBE");
        assert!(core.handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
        while core.poll_transmit().is_some() {}
        while core.poll_output().is_some() {}
        // The connection drops: the resubscription asks for the compacted view again.
        core.handle_event(
            ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
            now,
        );
        core.handle_timeout(now + Duration::from_secs(5));
        let (_, again) = next_attach(&mut core);
        assert_eq!(
            again.read_compacted, wanted,
            "SUBSCRIBE after the reconnect"
        );
        let subscribe = commands::subscribe(&again, 1);
        assert_eq!(
            subscribe.subscribe.and_then(|s| s.read_compacted),
            Some(wanted),
            "the frame carries it"
        );
    }
}

#[test]
fn a_batch_that_claims_no_message_gives_its_permit_back() {
    // Found by fuzz/fuzz_targets/core_events.rs: an entry whose num_messages_in_batch is 0 (or
    // negative) took a permit, delivered nothing, and gave none back.
    for count in [0, -3] {
        let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
        assert_eq!(core.shared.flow.pending(), 0);
        let mut entry = BytesMut::new();
        wire::encode_entry(
            &mut proto::SingleMessageMetadata::default(),
            b"x",
            &mut entry,
        );
        core.handle_event(
            message_event(
                5,
                proto::MessageMetadata {
                    producer_name: "p".into(),
                    num_messages_in_batch: Some(count),
                    ..Default::default()
                },
                entry.freeze(),
            ),
            now,
        );
        assert!(core.poll_output().is_none(), "nothing delivered");
        assert_eq!(
            core.shared.flow.pending(),
            1,
            "count {count}: the permit is counted to be given back"
        );
    }
}

#[test]
fn an_undecryptable_batch_consumed_as_one_message_gives_the_other_permits_back() {
    // Found by fuzz/fuzz_targets/core_events.rs: with ConsumerCryptoFailureAction::Consume, an
    // encrypted batch of 3 is delivered as one message, which gives one permit back when the
    // application takes it; the other two were never given back.
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Consume);
    let ConsumerEvent::Message {
        command,
        mut payload,
    } = encrypted_message(4)
    else {
        unreachable!("a message");
    };
    payload.metadata.num_messages_in_batch = Some(3);
    core.handle_event(ConsumerEvent::Message { command, payload }, now);
    let delivered: Vec<Output<NoWaiter>> = std::iter::from_fn(|| core.poll_output()).collect();
    assert!(
        matches!(delivered.as_slice(), [Output::Deliver(Delivery { item: Ok(m), .. })] if m.is_encrypted()),
        "{delivered:?}"
    );
    assert_eq!(core.shared.in_queue.load(Ordering::Acquire), 1);
    assert_eq!(
        core.shared.flow.pending(),
        2,
        "the permits of the other two"
    );
}

#[test]
fn permits_counted_before_a_resubscription_are_not_granted_after_it() {
    // Found by fuzz/fuzz_targets/core_events.rs: the application's FLOW command travels
    // through a channel; one counted on the old connection reached the core after it had
    // subscribed again (granting the whole queue), and was granted on top: more permits than
    // the receiver queue.
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    let mut counted = None;
    for _ in 0..QUEUE {
        counted = counted.or(core.shared.flow.on_consumed(1));
    }
    let counted = counted.expect("a refill at half the queue");
    core.handle_event(
        ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
        now,
    );
    core.handle_timeout(now + Duration::from_secs(5));
    let (epoch, _) = next_attach(&mut core);
    assert!(core.handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
    let granted = |commands: Vec<proto::BaseCommand>| -> u32 {
        commands
            .iter()
            .filter_map(|c| c.flow.as_ref())
            .map(|f| f.message_permits)
            .sum()
    };
    assert_eq!(granted(transmitted(&mut core)), QUEUE, "the whole queue");
    core.handle_command(
        CoreCommand::Flow {
            permits: counted.permits,
            generation: counted.generation,
        },
        now,
    );
    assert_eq!(
        granted(transmitted(&mut core)),
        0,
        "stale permits not granted"
    );
    // Permits counted on this connection are.
    let fresh = core.shared.flow.on_consumed(QUEUE).expect("a refill");
    core.handle_command(
        CoreCommand::Flow {
            permits: fresh.permits,
            generation: fresh.generation,
        },
        now,
    );
    assert_eq!(granted(transmitted(&mut core)), QUEUE);
}

#[test]
fn a_batch_whose_sequence_id_is_the_largest_does_not_overflow() {
    // Found by fuzz/fuzz_targets/core_events.rs: the messages of a batch without sequence ids of
    // their own get the entry's plus their index, which overflowed (a panic in debug builds)
    // for an entry's sequence id near u64::MAX.
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    let mut entries = BytesMut::new();
    for p in [&b"a"[..], b"b"] {
        wire::encode_entry(
            &mut proto::SingleMessageMetadata::default(),
            p,
            &mut entries,
        );
    }
    core.handle_event(
        message_event(
            6,
            proto::MessageMetadata {
                producer_name: "p".into(),
                sequence_id: u64::MAX,
                num_messages_in_batch: Some(2),
                ..Default::default()
            },
            entries.freeze(),
        ),
        now,
    );
    let mut seqs = Vec::new();
    while let Some(Output::Deliver(Delivery { item: Ok(msg), .. })) = core.poll_output() {
        seqs.push(msg.sequence_id);
    }
    assert_eq!(seqs, vec![u64::MAX, 0]);
}

#[test]
fn a_reader_delivers_an_undecryptable_batch_once() {
    // Found while writing the reader invariant of the core_events fuzz driver (no duplicate):
    // with ConsumerCryptoFailureAction::Consume an encrypted batch is delivered whole, with
    // the entry's id (no batch index); a reader's filter then stood before the batch's own
    // indexes, so the same entry sent again (pulsar-lite's Exclusive dispatch sends some twice)
    // was delivered again.
    let (mut core, now) = attached_core_of(ConsumerCryptoFailureAction::Consume, false);
    for _ in 0..2 {
        let ConsumerEvent::Message {
            command,
            mut payload,
        } = encrypted_message(4)
        else {
            unreachable!("a message");
        };
        payload.metadata.num_messages_in_batch = Some(3);
        core.handle_event(ConsumerEvent::Message { command, payload }, now);
    }
    let delivered: Vec<MessageId> = std::iter::from_fn(|| core.poll_output())
        .filter_map(|o| match o {
            Output::Deliver(Delivery { item: Ok(m), .. }) => Some(m.id),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1, "the entry once");
    // The application took it; after a reconnect the reader resumes after the whole batch.
    *core.shared.last_dequeued.lock().unwrap() = Some(delivered[0]);
    core.handle_event(
        ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
        now,
    );
    core.handle_timeout(now + Duration::from_secs(5));
    let (epoch, args) = next_attach(&mut core);
    let start = args.start_message_id.expect("a reader's start");
    assert_eq!((start.entry_id, start.batch_index), (4, Some(2)));
    assert!(core.handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
    let ConsumerEvent::Message {
        command,
        mut payload,
    } = encrypted_message(4)
    else {
        unreachable!("a message");
    };
    payload.metadata.num_messages_in_batch = Some(3);
    core.handle_event(ConsumerEvent::Message { command, payload }, now);
    assert!(
        std::iter::from_fn(|| core.poll_output()).all(|o| !matches!(o, Output::Deliver(_))),
        "not again after the reconnect"
    );
}

#[test]
fn after_a_whole_entry_a_reader_skips_every_index_of_it() {
    // The fuzzer's core_events-b11a28c4: entry (0, 0) delivered unbatched, then sent again as
    // a batch and delivered whole (undecryptable, Consume): the reader handed (0, 0) out twice.
    let after = |id: MessageId| StartPosition {
        id,
        inclusive: false,
    };
    let entry = MessageId::new(3, 7);
    assert!(after(entry).skips(&entry));
    assert!(after(entry).skips(&entry.with_batch(0, 2)));
    assert!(after(entry).skips(&entry.with_batch(1, 2)));
    assert!(!after(entry).skips(&MessageId::new(3, 8)));
    // After one index of a batch: the later indexes of that entry still come.
    let first = entry.with_batch(0, 2);
    assert!(after(first).skips(&first));
    assert!(after(first).skips(&entry));
    assert!(!after(first).skips(&entry.with_batch(1, 2)));
    // From a whole entry, inclusive: all of it.
    let from = StartPosition {
        id: entry,
        inclusive: true,
    };
    assert!(!from.skips(&entry.with_batch(0, 2)));
    assert!(from.skips(&MessageId::new(3, 6)));
    // core_events-4a82cf49: a hostile broker's id of ledger and entry u64::MAX reads as
    // (-1, -1), Earliest's value; after it was delivered, a lower id is still a step back.
    let max = MessageId::new(-1, -1);
    assert!(after(max).skips(&MessageId::new(-1, -7_318_349_394_477_057)));
    assert!(!after(max).skips(&MessageId::new(0, 0)));
    assert!(!StartPosition {
        id: MessageId::EARLIEST,
        inclusive: true
    }
    .skips(&MessageId::new(0, 0)));
}

/// The stats interval of the simulated consumers.
const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// The core's redeliveries asked for, in the interval that ended at `at`, and in all.
fn redeliveries(core: &ConsumerCore<NoWaiter>, at: Instant) -> (u64, u64) {
    let stats = core.shared().stats.as_ref().expect("stats on");
    let s = crate::stats::ConsumerRecorder::sum(at, [(stats, 0)]);
    (s.num_redeliveries, s.total_redeliveries)
}

#[test]
fn redeliveries_after_nacks_and_the_ack_timeout_are_counted_when_asked_for() {
    let (mut core, t0) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.config.ack_timeout = Some(Duration::from_secs(3));
    for entry in [1, 2, 3] {
        core.handle_command(
            CoreCommand::Nack {
                id: MessageId::new(1, entry),
                redelivery_count: 0,
            },
            t0,
        );
    }
    // Not before the nack delay (50 ms).
    core.handle_timeout(t0 + Duration::from_millis(49));
    assert_eq!(redeliveries(&core, t0 + Duration::from_millis(49)), (0, 0));
    core.handle_timeout(t0 + Duration::from_millis(50));
    assert_eq!(redelivered(&transmitted(&mut core)), vec![1, 2, 3]);
    assert_eq!(redeliveries(&core, t0 + Duration::from_millis(50)).1, 3);
    // One received and never acknowledged: the ack timeout asks for it again.
    core.handle_command(
        CoreCommand::Received(MessageId::new(1, 9)),
        t0 + Duration::from_secs(1),
    );
    core.handle_timeout(t0 + Duration::from_secs(4));
    assert_eq!(redelivered(&transmitted(&mut core)), vec![9]);
    // All in the first interval: it shows 4 once over, the totals at once.
    assert_eq!(redeliveries(&core, t0 + Duration::from_secs(5)), (0, 4));
    assert_eq!(redeliveries(&core, t0 + STATS_INTERVAL), (4, 4));
    // An interval with none: 0 in it, the total stays.
    assert_eq!(redeliveries(&core, t0 + 2 * STATS_INTERVAL), (0, 4));
}

/// The permits granted in these commands.
fn granted(commands: &[proto::BaseCommand]) -> u32 {
    commands
        .iter()
        .filter_map(|c| c.flow.as_ref())
        .map(|f| f.message_permits)
        .sum()
}

/// The application takes `n` messages: the permits it counts reach the core.
fn consume(core: &mut ConsumerCore<NoWaiter>, n: u32, now: Instant) {
    for _ in 0..n {
        if let Some(r) = core.shared.flow.on_consumed(1) {
            core.handle_command(
                CoreCommand::Flow {
                    permits: r.permits,
                    generation: r.generation,
                },
                now,
            );
        }
    }
}

#[test]
fn paused_consumer_sends_no_flow_and_resume_sends_them() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.handle_command(CoreCommand::Pause, now);
    assert!(core.is_paused());
    // The application takes the whole queue: twice half the queue counted, nothing granted.
    consume(&mut core, QUEUE, now);
    assert_eq!(granted(&transmitted(&mut core)), 0, "paused: no FLOW");
    // Pausing twice changes nothing; resume grants what was withheld, once.
    core.handle_command(CoreCommand::Pause, now);
    core.handle_command(CoreCommand::Resume, now);
    assert_eq!(granted(&transmitted(&mut core)), QUEUE);
    core.handle_command(CoreCommand::Resume, now);
    assert_eq!(granted(&transmitted(&mut core)), 0, "nothing more withheld");
    // Unpaused, permits go out as before.
    consume(&mut core, QUEUE / 2, now);
    assert_eq!(granted(&transmitted(&mut core)), QUEUE / 2);
}

#[test]
fn a_paused_consumer_that_resubscribes_withholds_the_new_queue_not_the_old_permits() {
    let (mut core, now) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.handle_command(CoreCommand::Pause, now);
    consume(&mut core, QUEUE / 2, now);
    assert_eq!(granted(&transmitted(&mut core)), 0);
    core.handle_event(
        ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
        now,
    );
    core.handle_timeout(now + Duration::from_secs(5));
    let (epoch, _) = next_attach(&mut core);
    assert!(core.handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
    assert_eq!(granted(&transmitted(&mut core)), 0, "still paused");
    core.handle_command(CoreCommand::Resume, now);
    // The new connection's whole queue; what was withheld on the old one is not added.
    assert_eq!(granted(&transmitted(&mut core)), QUEUE);
}

#[test]
fn a_consumer_started_paused_subscribes_without_permits() {
    let mut sim = Sim::new(3, 20, SubscriptionType::Shared, true, CALM);
    sim.core.config.start_paused = true;
    sim.core.paused = true;
    sim.run(Duration::from_secs(5));
    assert!(sim.received.is_empty(), "nothing came: {:?}", sim.received);
    assert_eq!(sim.broker.max_permits, 0, "no permit granted");
    sim.core.handle_command(CoreCommand::Resume, sim.now);
    sim.carry_out();
    sim.run(Duration::from_secs(10));
    check_everything_acked(&sim, 3);
}

/// The redeliveries the core reports (with interceptors).
fn reported(core: &mut ConsumerCore<NoWaiter>) -> Vec<(bool, Vec<MessageId>)> {
    std::iter::from_fn(|| core.poll_output())
        .filter_map(|o| match o {
            Output::Redelivered { ack_timeout, ids } => Some((ack_timeout, ids)),
            _ => None,
        })
        .collect()
}

#[test]
fn nacked_and_timed_out_ids_are_reported_when_they_are_asked_for_again() {
    let (mut core, t0) = attached_core(ConsumerCryptoFailureAction::Fail);
    core.config.ack_timeout = Some(Duration::from_secs(2));
    core.handle_command(
        CoreCommand::Nack {
            id: MessageId::new(1, 4).with_batch(1, 3),
            redelivery_count: 0,
        },
        t0,
    );
    assert!(
        reported(&mut core).is_empty(),
        "not reported without interceptors"
    );
    core.handle_timeout(t0 + Duration::from_millis(50));
    assert!(reported(&mut core).is_empty());
    core.config.report_redeliveries = true;
    let nacked = [MessageId::new(1, 5), MessageId::new(1, 6).with_batch(0, 2)];
    for id in nacked {
        core.handle_command(
            CoreCommand::Nack {
                id,
                redelivery_count: 0,
            },
            t0,
        );
    }
    core.handle_command(CoreCommand::Received(MessageId::new(1, 9)), t0);
    core.handle_timeout(t0 + Duration::from_millis(49));
    assert!(reported(&mut core).is_empty(), "not before the delay");
    core.handle_timeout(t0 + Duration::from_millis(50));
    assert_eq!(reported(&mut core), vec![(false, nacked.to_vec())]);
    core.handle_timeout(t0 + Duration::from_secs(2));
    assert_eq!(
        reported(&mut core),
        vec![(true, vec![MessageId::new(1, 9)])],
        "the ack timeout's entry"
    );
}

/// The MESSAGE event the model broker sends for `entry`.
fn model_message(entry: u64) -> ConsumerEvent {
    let frame = Broker::new(10, false).message(1, entry);
    let mut buf = BytesMut::from(&frame[..]);
    let Ok(Some(wire::Frame {
        command,
        payload: Some(payload),
    })) = wire::decode(&mut buf, wire::DEFAULT_MAX_FRAME_SIZE)
    else {
        panic!("a MESSAGE frame");
    };
    ConsumerEvent::Message {
        command: command.message.expect("MESSAGE"),
        payload,
    }
}

fn delivered_entries(core: &mut ConsumerCore<NoWaiter>) -> Vec<u64> {
    std::iter::from_fn(|| core.poll_output())
        .filter_map(|o| match o {
            Output::Deliver(Delivery { item: Ok(msg), .. }) => Some(msg.id.entry_id as u64),
            _ => None,
        })
        .collect()
}

#[test]
fn a_non_durable_consumer_takes_a_redelivery_that_a_reader_drops() {
    // A reader's stream only moves forward: an entry sent again is a duplicate. A non-durable
    // consumer (SubscriptionMode::NonDurable) nacks and gets redeliveries like any consumer.
    for reader in [false, true] {
        let (mut core, t0) = attached_core_of(ConsumerCryptoFailureAction::Fail, false);
        core.config.reader = reader;
        core.filter = Some(StartPosition {
            id: MessageId::EARLIEST,
            inclusive: false,
        });
        core.handle_event(model_message(3), t0);
        assert_eq!(delivered_entries(&mut core), vec![3], "reader {reader}");
        // The broker sends it again (after a negative ack, or a redelivery request).
        core.handle_event(model_message(3), t0);
        let again = delivered_entries(&mut core);
        if reader {
            assert!(again.is_empty(), "a reader drops the duplicate: {again:?}");
        } else {
            assert_eq!(
                again,
                vec![3],
                "a non-durable consumer takes the redelivery"
            );
        }
    }
}

#[test]
fn subscription_options_are_sent_on_every_subscribe_including_after_a_reconnect() {
    let sim = Sim::new(12, 1, SubscriptionType::KeyShared, true, CALM);
    let mut config = sim.core.config.clone();
    config.extras = SubscribeExtras {
        subscription_properties: vec![("team".into(), "billing".into())],
        replicate_subscription_state: true,
        key_shared: Some(
            crate::consumer::KeySharedPolicy::Sticky(vec![crate::consumer::Range::of(0, 99)])
                .to_proto(true),
        ),
    };
    let now = sim.now;
    let shared = Arc::new(ConsumerShared::new(&config));
    let topic = TopicName::parse("persistent://public/default/sim").expect("valid");
    let backoff = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(2), 12);
    let mut core: ConsumerCore<NoWaiter> =
        ConsumerCore::new(topic, -1, 0, 1, config, shared, backoff, now);
    let check = |args: &SubscribeArgs, what: &str| {
        let frame = commands::subscribe(args, 1);
        let s = frame.subscribe.expect("SUBSCRIBE");
        assert_eq!(s.subscription_properties.len(), 1, "{what}");
        assert_eq!(s.subscription_properties[0].key, "team", "{what}");
        assert_eq!(s.replicate_subscription_state, Some(true), "{what}");
        let meta = s.key_shared_meta.expect("keySharedMeta");
        assert_eq!(
            meta.key_shared_mode,
            proto::KeySharedMode::Sticky as i32,
            "{what}"
        );
        assert_eq!(
            (meta.hash_ranges[0].start, meta.hash_ranges[0].end),
            (0, 99),
            "{what}"
        );
        assert_eq!(meta.allow_out_of_order_delivery, Some(true), "{what}");
    };
    let (epoch, args) = next_attach(&mut core);
    check(&args, "first SUBSCRIBE");
    assert!(core.handle_attached(epoch, Ok(wire::DEFAULT_MAX_MESSAGE_SIZE), now));
    while core.poll_transmit().is_some() {}
    while core.poll_output().is_some() {}
    core.handle_event(
        ConsumerEvent::ConnectionClosed(ConnectionError::ClosedByBroker),
        now,
    );
    core.handle_timeout(now + Duration::from_secs(5));
    let (_, again) = next_attach(&mut core);
    check(&again, "SUBSCRIBE after the reconnect");
}
