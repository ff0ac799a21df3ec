//! A fault-injecting TCP proxy between pulsar-wire and one or more brokers, for the network
//! chaos tests (tests/chaos_network.rs) and the soak (tests/soak.rs).
//!
//! [`FaultProxy::start`] opens one loopback listener per upstream broker. Every frame the
//! brokers send is decoded, and every broker URL in it is rewritten to the matching local
//! listener: LOOKUP answers (`brokerServiceUrl`), TOPIC_MIGRATED and the
//! `assignedBrokerServiceUrl` of CLOSE_PRODUCER / CLOSE_CONSUMER (the TLS URLs are dropped). A
//! client given [`FaultProxy::service_url`] therefore makes every connection through the proxy,
//! whichever broker it is sent to. A URL naming a broker the proxy does not front is matched by
//! port, then (with a single upstream) sent to the only listener; failing that it is recorded
//! in [`FaultProxy::errors`] and passed on as it is.
//!
//! # Faults
//!
//! Faults are switched at run time, most per [`Direction`] (towards the broker, towards the
//! client, or both), and stay until [`FaultProxy::heal`] (or the switch's own `clear`):
//!
//! - **latency** ([`FaultProxy::latency`]): every chunk read is delivered `fixed + U(0,
//!   jitter)` after it was read (the jitter from the proxy's seeded RNG), never before an earlier
//!   chunk of the same direction: order is kept, as TCP does;
//! - **stall** ([`FaultProxy::stall`]): the direction passes nothing while the stall lasts,
//!   every socket stays open, new connections stall too; what was read is held (up to a bounded
//!   queue, then TCP pushes back) and delivered when the stall ends: a network partition that
//!   heals. A client whose keepalive gave up on the connection in the meantime has closed it;
//!   that close is delivered after the held bytes;
//! - **reset** ([`FaultProxy::reset`]): a one-shot: every open connection is closed with a TCP
//!   RST on both sides (the client's and the broker's);
//! - **half-open** ([`FaultProxy::half_open`]): every open connection becomes a black hole for
//!   the client: its socket stays open, what it writes is read and thrown away, nothing ever
//!   comes back; the broker's side is closed (FIN), as when the broker's host vanished and its
//!   replacement never heard of the connection. New connections while the fault is on are
//!   accepted and black-holed the same way (the TCP connect succeeds, the CONNECT is never
//!   answered). Healing lets new connections pass; the half-open ones stay dead until the
//!   client closes them: only the client's keepalive (or operation timeouts) can find out;
//! - **byte at a time** ([`FaultProxy::byte_at_a_time`]): every byte is written in its own
//!   `write` with a pause after it, so the peer's reads see frames cut at every possible place;
//! - **refuse** ([`FaultProxy::refuse`]): new connections are accepted and reset at once (a
//!   broker port that answers SYN with a connection that dies); open connections pass.
//!
//! The proxy is deterministic where it can be: the jitter comes from a seeded RNG ([`Rng`],
//! also used by the tests to pick faults); which chunk gets which jitter depends on how the
//! reads fall, which the proxy does not control.
//!
//! Dropping the proxy closes every listener and connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pulsar_wire::wire::proto::{base_command::Type, BaseCommand};
use pulsar_wire::wire::{self, Frame};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The largest frame the proxy decodes (above the broker's 5 MiB max message size).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Chunks held per direction of a connection before the proxy stops reading (backpressure).
const QUEUE: usize = 1024;

/// A small seeded RNG (SplitMix64): the same seed gives the same numbers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// An RNG seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A duration in `0..=max`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.below(micros.saturating_add(1)))
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the broker.
    ToBroker,
    /// From the broker to the client.
    ToClient,
    /// Both ways.
    Both,
}

impl Direction {
    fn has(self, towards_broker: bool) -> bool {
        match self {
            Direction::Both => true,
            Direction::ToBroker => towards_broker,
            Direction::ToClient => !towards_broker,
        }
    }
}

/// The faults of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DirectionFaults {
    latency: Duration,
    jitter: Duration,
    stalled: bool,
    byte_pause: Option<Duration>,
}

/// The faults switched on now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Config {
    to_broker: DirectionFaults,
    to_client: DirectionFaults,
    /// New connections are black-holed (see [`FaultProxy::half_open`]).
    black_hole: bool,
    /// New connections are reset at once.
    refuse: bool,
}

impl Config {
    fn direction(&self, towards_broker: bool) -> &DirectionFaults {
        if towards_broker {
            &self.to_broker
        } else {
            &self.to_client
        }
    }

    fn each(&mut self, dir: Direction, f: impl Fn(&mut DirectionFaults)) {
        if dir.has(true) {
            f(&mut self.to_broker);
        }
        if dir.has(false) {
            f(&mut self.to_client);
        }
    }
}

/// What happens to one relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Reset,
    HalfOpen,
}

/// One relayed connection.
#[derive(Debug)]
struct Conn {
    mode: watch::Sender<Mode>,
    /// The client's write half of a half-open connection, held open until the client closes.
    parked: Mutex<Option<OwnedWriteHalf>>,
}

/// One local listener and the broker behind it.
#[derive(Debug, Clone)]
struct Route {
    local: String,
    upstream: String,
}

#[derive(Debug)]
struct Shared {
    config: watch::Sender<Config>,
    conns: Mutex<Vec<Arc<Conn>>>,
    rng: Mutex<Rng>,
    routes: Vec<Route>,
    errors: Mutex<Vec<String>>,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    black_holed: AtomicUsize,
}

/// The fault-injecting proxy (see the [module docs](self)). Dropping it stops it.
pub struct FaultProxy {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        for c in lock(&self.shared.conns).drain(..) {
            lock(&c.parked).take();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `host:port` of a `pulsar://host:port[/...]` URL.
fn hostport(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', ',']).next().unwrap_or(rest)
}

fn port_of(hostport: &str) -> Option<&str> {
    hostport.rsplit_once(':').map(|(_, p)| p)
}

impl FaultProxy {
    /// A proxy in front of the brokers at `upstreams` (`host:port` each), one loopback listener
    /// per broker, its jitter drawn from an RNG seeded with `seed`.
    pub async fn start(upstreams: &[&str], seed: u64) -> FaultProxy {
        assert!(!upstreams.is_empty(), "a proxy needs a broker to front");
        let mut listeners = Vec::new();
        let mut routes = Vec::new();
        for upstream in upstreams {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a proxy listener");
            let local = listener.local_addr().expect("proxy address").to_string();
            routes.push(Route {
                local,
                upstream: upstream.to_string(),
            });
            listeners.push(listener);
        }
        let shared = Arc::new(Shared {
            config: watch::Sender::new(Config::default()),
            conns: Mutex::default(),
            rng: Mutex::new(Rng::new(seed)),
            routes,
            errors: Mutex::default(),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            black_holed: AtomicUsize::new(0),
        });
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        for (i, listener) in listeners.into_iter().enumerate() {
            let accept = tokio::spawn(accept_loop(listener, i, shared.clone(), tasks.clone()));
            lock(&tasks).push(accept.abort_handle());
        }
        FaultProxy { shared, tasks }
    }

    /// How many brokers the proxy fronts.
    pub fn brokers(&self) -> usize {
        self.shared.routes.len()
    }

    /// `pulsar://127.0.0.1:P`: the listener in front of broker `i`.
    pub fn url(&self, i: usize) -> String {
        format!("pulsar://{}", self.shared.routes[i].local)
    }

    /// `127.0.0.1:P`: the listener in front of broker `i`.
    pub fn addr(&self, i: usize) -> &str {
        &self.shared.routes[i].local
    }

    /// Every listener in one service URL: `pulsar://127.0.0.1:A,127.0.0.1:B`.
    pub fn service_url(&self) -> String {
        let hosts: Vec<&str> = self
            .shared
            .routes
            .iter()
            .map(|r| r.local.as_str())
            .collect();
        format!("pulsar://{}", hosts.join(","))
    }

    /// How many connections the proxy accepted so far (refused and black-holed ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many new connections [`FaultProxy::refuse`] reset so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// How many new connections [`FaultProxy::half_open`] black-holed so far.
    pub fn black_holed(&self) -> usize {
        self.shared.black_holed.load(Ordering::SeqCst)
    }

    /// How many relayed connections are open (passing, not reset or half-open).
    pub fn open_connections(&self) -> usize {
        let mut conns = lock(&self.shared.conns);
        conns.retain(|c| *c.mode.borrow() == Mode::Pass && c.mode.receiver_count() > 0);
        conns.len()
    }

    /// What the proxy could not do (an upstream it could not reach, a frame it could not
    /// read, a broker URL it could not map).
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    fn update(&self, f: impl FnOnce(&mut Config)) {
        self.shared.config.send_modify(f);
    }

    /// Delivers every chunk going `dir` `fixed + U(0, jitter)` after it was read (order kept).
    pub fn latency(&self, dir: Direction, fixed: Duration, jitter: Duration) {
        self.update(|c| {
            c.each(dir, |d| {
                d.latency = fixed;
                d.jitter = jitter;
            })
        });
    }

    /// Passes nothing going `dir` (sockets stay open, bytes are held) until cleared.
    pub fn stall(&self, dir: Direction) {
        self.update(|c| c.each(dir, |d| d.stalled = true));
    }

    /// Ends a stall going `dir`: what was held is delivered.
    pub fn unstall(&self, dir: Direction) {
        self.update(|c| c.each(dir, |d| d.stalled = false));
    }

    /// Writes every byte going `dir` on its own, `pause` after each (until cleared).
    pub fn byte_at_a_time(&self, dir: Direction, pause: Duration) {
        self.update(|c| c.each(dir, |d| d.byte_pause = Some(pause)));
    }

    /// Resets new connections at once (`true`) or lets them pass again (`false`).
    pub fn refuse(&self, on: bool) {
        self.update(|c| c.refuse = on);
    }

    /// Resets every open connection, both sides (TCP RST): how many there were.
    pub fn reset(&self) -> usize {
        self.switch_all(Mode::Reset)
    }

    /// Makes every open connection half-open (see the module docs) and black-holes new ones
    /// until [`FaultProxy::heal`]: how many open connections it took.
    pub fn half_open(&self) -> usize {
        self.update(|c| c.black_hole = true);
        self.switch_all(Mode::HalfOpen)
    }

    fn switch_all(&self, mode: Mode) -> usize {
        let open: Vec<Arc<Conn>> = lock(&self.shared.conns).drain(..).collect();
        let mut n = 0;
        for c in &open {
            if *c.mode.borrow() == Mode::Pass && c.mode.receiver_count() > 0 {
                n += 1;
            }
            c.mode.send_replace(mode);
        }
        n
    }

    /// Clears every fault that lasts (latency, stall, byte at a time, refusal, black-holing of
    /// new connections). Reset and half-open connections stay as they are.
    pub fn heal(&self) {
        self.update(|c| *c = Config::default());
    }

    /// Switches on one fault of `kind` (the chaos tests' and the soak's vocabulary), with its
    /// parameters drawn from the proxy's RNG: the fault stays until [`FaultProxy::heal`] (a
    /// reset is over at once).
    pub fn inject(&self, kind: NetFault) {
        let mut guard = lock(&self.shared.rng);
        let rng = &mut *guard;
        let dir = match rng.below(3) {
            0 => Direction::ToBroker,
            1 => Direction::ToClient,
            _ => Direction::Both,
        };
        let fixed = Duration::from_millis(50 + rng.below(150));
        let jitter = Duration::from_millis(rng.below(100));
        // No pause (a yield between writes) or about a millisecond (the timer's granularity).
        let pause = Duration::from_micros(if rng.chance(50) { 0 } else { 500 });
        drop(guard);
        match kind {
            NetFault::Latency => self.latency(dir, fixed, jitter),
            NetFault::Stall => self.stall(Direction::Both),
            NetFault::Reset => {
                self.reset();
            }
            NetFault::HalfOpen => {
                self.half_open();
            }
            NetFault::ByteAtATime => self.byte_at_a_time(Direction::Both, pause),
            NetFault::Refuse => {
                self.refuse(true);
                self.reset();
            }
        }
    }
}

/// The kinds of network fault [`FaultProxy::inject`] switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetFault {
    /// Added latency (50-200 ms fixed, up to 100 ms jitter) one way or both.
    Latency,
    /// Nothing passes either way; sockets stay open.
    Stall,
    /// Every open connection is reset (a one-shot).
    Reset,
    /// Open connections become half-open, new ones black holes.
    HalfOpen,
    /// Byte-at-a-time delivery both ways.
    ByteAtATime,
    /// Open connections are reset and new ones refused (reset at once).
    Refuse,
}

impl NetFault {
    /// Every kind.
    pub const ALL: [NetFault; 6] = [
        NetFault::Latency,
        NetFault::Stall,
        NetFault::Reset,
        NetFault::HalfOpen,
        NetFault::ByteAtATime,
        NetFault::Refuse,
    ];

    /// Its name in the tests' output (`half-open`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NetFault::Latency => "latency",
            NetFault::Stall => "stall",
            NetFault::Reset => "reset",
            NetFault::HalfOpen => "half-open",
            NetFault::ByteAtATime => "byte-at-a-time",
            NetFault::Refuse => "refuse",
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    route: usize,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let config = shared.config.borrow().clone();
        if config.refuse {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        if config.black_hole {
            shared.black_holed.fetch_add(1, Ordering::SeqCst);
            let t = tokio::spawn(async move {
                let (mut rd, wr) = client.into_split();
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
                drop(wr);
            });
            lock(&tasks).push(t.abort_handle());
            continue;
        }
        let upstream_addr = shared.routes[route].upstream.clone();
        let upstream = match TcpStream::connect(&upstream_addr).await {
            Ok(s) => s,
            Err(_) => {
                // A broker that is down: the client sees its connection closed, as it would
                // see a refused connect.
                drop(client);
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let conn = Arc::new(Conn {
            mode: watch::Sender::new(Mode::Pass),
            parked: Mutex::new(None),
        });
        lock(&shared.conns).push(conn.clone());
        let (crd, cwr) = client.into_split();
        let (brd, bwr) = upstream.into_split();
        let (up_tx, up_rx) = mpsc::channel(QUEUE);
        let (down_tx, down_rx) = mpsc::channel(QUEUE);
        let handles = [
            tokio::spawn(read_side(crd, up_tx, true, conn.clone(), shared.clone())),
            tokio::spawn(write_side(bwr, up_rx, true, conn.clone(), shared.clone())),
            tokio::spawn(read_side(brd, down_tx, false, conn.clone(), shared.clone())),
            tokio::spawn(write_side(cwr, down_rx, false, conn, shared.clone())),
        ];
        let mut t = lock(&tasks);
        t.retain(|h| !h.is_finished());
        t.extend(handles.iter().map(|h| h.abort_handle()));
    }
}

/// What a reader hands its writer.
enum Chunk {
    Bytes(Instant, Bytes),
    Eof,
}

/// Reads one socket (the client's when `from_client`) and queues what it read for the other
/// side's writer; frames from the broker are decoded and their broker URLs rewritten.
async fn read_side(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    from_client: bool,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
) {
    let mut mode = conn.mode.subscribe();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Pass => {}
            Mode::Reset => {
                let _ = rd.as_ref().set_zero_linger();
                return;
            }
            Mode::HalfOpen => {
                if from_client {
                    // Swallow what the client writes until it gives up on the connection.
                    let mut sink = vec![0u8; 64 * 1024];
                    loop {
                        tokio::select! {
                            read = rd.read(&mut sink) => match read {
                                Ok(n) if n > 0 => {}
                                _ => break,
                            },
                            changed = mode.changed() => if changed.is_err() { break },
                        }
                    }
                    lock(&conn.parked).take();
                }
                return;
            }
        }
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(n) if n > 0 => {}
                _ => {
                    let _ = tx.send(Chunk::Eof).await;
                    return;
                }
            },
            _ = mode.changed() => continue,
        }
        let now = Instant::now();
        let out = if from_client {
            buf.split().freeze()
        } else {
            match frames_rewritten(&mut buf, &shared) {
                Some(out) => out,
                None => return,
            }
        };
        if out.is_empty() {
            continue;
        }
        tokio::select! {
            sent = tx.send(Chunk::Bytes(now, out)) => if sent.is_err() { return },
            _ = mode.changed() => {}
        }
    }
}

/// The whole frames at the start of `buf` (taken out of it), broker URLs rewritten; `None`
/// when the stream is not Pulsar frames.
fn frames_rewritten(buf: &mut BytesMut, shared: &Shared) -> Option<Bytes> {
    let mut out = BytesMut::new();
    loop {
        let len = match wire::check(buf, MAX_FRAME) {
            Ok(Some(len)) => len,
            Ok(None) => break,
            Err(e) => {
                lock(&shared.errors).push(format!("bad frame from the broker: {e}"));
                return None;
            }
        };
        let raw = buf.split_to(len).freeze();
        match wire::decode_frame(raw.clone(), MAX_FRAME) {
            Ok(frame) => match rewrite_urls(&frame, shared) {
                Some(rewritten) => out.extend_from_slice(&rewritten),
                None => out.extend_from_slice(&raw),
            },
            Err(e) => {
                lock(&shared.errors).push(format!("undecodable frame from the broker: {e}"));
                out.extend_from_slice(&raw);
            }
        }
    }
    Some(out.freeze())
}

/// The local listener URL for a broker URL.
fn map_url(url: &str, shared: &Shared) -> Option<String> {
    let hp = hostport(url);
    let routes = &shared.routes;
    let found = routes
        .iter()
        .find(|r| r.upstream == hp)
        .or_else(|| {
            let port = port_of(hp)?;
            let mut same_port = routes.iter().filter(|r| port_of(&r.upstream) == Some(port));
            match (same_port.next(), same_port.next()) {
                (Some(r), None) => Some(r),
                _ => None,
            }
        })
        .or_else(|| (routes.len() == 1).then(|| &routes[0]));
    match found {
        Some(r) => Some(format!("pulsar://{}", r.local)),
        None => {
            lock(&shared.errors).push(format!("no listener for the broker URL {url}"));
            None
        }
    }
}

/// Points `url` at the proxy's listener for it (and drops the TLS URL); whether it changed.
fn remap(url: &mut Option<String>, tls: &mut Option<String>, shared: &Shared) -> bool {
    match url.as_deref().and_then(|u| map_url(u, shared)) {
        Some(mapped) => {
            *url = Some(mapped);
            *tls = None;
            true
        }
        None => false,
    }
}

/// The frame with its broker URLs pointing at the proxy (None: nothing to rewrite).
fn rewrite_urls(frame: &Frame, shared: &Shared) -> Option<Bytes> {
    let kind = frame.command.r#type;
    let mut command: BaseCommand = frame.command.clone();
    let changed = if kind == Type::LookupResponse as i32 {
        let c = command.lookup_topic_response.as_mut()?;
        remap(
            &mut c.broker_service_url,
            &mut c.broker_service_url_tls,
            shared,
        )
    } else if kind == Type::TopicMigrated as i32 {
        let c = command.topic_migrated.as_mut()?;
        remap(
            &mut c.broker_service_url,
            &mut c.broker_service_url_tls,
            shared,
        )
    } else if kind == Type::CloseProducer as i32 {
        let c = command.close_producer.as_mut()?;
        remap(
            &mut c.assigned_broker_service_url,
            &mut c.assigned_broker_service_url_tls,
            shared,
        )
    } else if kind == Type::CloseConsumer as i32 {
        let c = command.close_consumer.as_mut()?;
        remap(
            &mut c.assigned_broker_service_url,
            &mut c.assigned_broker_service_url_tls,
            shared,
        )
    } else {
        false
    };
    if !changed || frame.payload.is_some() {
        return None;
    }
    let mut buf = BytesMut::new();
    wire::encode_command(&command, &mut buf, MAX_FRAME).expect("encode a rewritten command");
    Some(buf.freeze())
}

/// Writes what the reader of the other side queued to this socket (the broker's when
/// `to_broker`), with the direction's faults, until the connection ends or its mode changes.
async fn write_side(
    mut wr: OwnedWriteHalf,
    rx: mpsc::Receiver<Chunk>,
    to_broker: bool,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
) {
    let mut mode = conn.mode.subscribe();
    if !pump(&mut wr, rx, to_broker, &mut mode, &shared).await {
        return;
    }
    let now = *mode.borrow();
    match now {
        Mode::Pass => {}
        Mode::Reset => {
            let _ = wr.as_ref().set_zero_linger();
        }
        Mode::HalfOpen => {
            if !to_broker {
                // The client's socket stays open; nothing is written to it any more.
                *lock(&conn.parked) = Some(wr);
            }
            // The broker's write half is dropped here: its side is closed.
        }
    }
}

/// The writer's loop: false when the connection ended (the socket was shut down or failed),
/// true when the mode left [`Mode::Pass`].
async fn pump(
    wr: &mut OwnedWriteHalf,
    mut rx: mpsc::Receiver<Chunk>,
    to_broker: bool,
    mode: &mut watch::Receiver<Mode>,
    shared: &Shared,
) -> bool {
    let mut config = shared.config.subscribe();
    let mut last_due = Instant::now();
    // `None` when the mode changed before the future was done.
    macro_rules! or_mode {
        ($fut:expr) => {
            tokio::select! {
                r = $fut => Some(r),
                _ = mode.changed() => None,
            }
        };
    }
    loop {
        if *mode.borrow_and_update() != Mode::Pass {
            return true;
        }
        let Some(chunk) = or_mode!(rx.recv()) else {
            continue;
        };
        let (read_at, bytes) = match chunk {
            Some(Chunk::Bytes(at, b)) => (at, b),
            Some(Chunk::Eof) | None => {
                let _ = wr.shutdown().await;
                return false;
            }
        };
        let faults = config.borrow_and_update().direction(to_broker).clone();
        let jitter = lock(&shared.rng).duration(faults.jitter);
        let due = (read_at + faults.latency + jitter).max(last_due);
        last_due = due;
        if or_mode!(tokio::time::sleep_until(due)).is_none() {
            return true;
        }
        // Held while the direction is stalled.
        while config.borrow_and_update().direction(to_broker).stalled {
            match or_mode!(config.changed()) {
                Some(Ok(())) => {}
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        let pause = config.borrow().direction(to_broker).byte_pause;
        let written = match pause {
            None => or_mode!(wr.write_all(&bytes)),
            Some(pause) => {
                let config = &config;
                or_mode!(async {
                    for (i, b) in bytes.iter().enumerate() {
                        // Healed in the middle of a chunk: the rest goes at once.
                        let now = config.borrow().direction(to_broker).byte_pause;
                        if now.is_none() {
                            return wr.write_all(&bytes[i..]).await;
                        }
                        wr.write_all(std::slice::from_ref(b)).await?;
                        if pause.is_zero() {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    Ok::<(), std::io::Error>(())
                })
            }
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(_)) => return false,
            None => return true,
        }
    }
}
