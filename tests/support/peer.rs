//! A scripted Pulsar broker for protocol tests, built only on the public wire layer
//! (`wire::decode`, `wire::encode_command`, `wire::encode_payload_command`).
//!
//! [`Peer::start`] listens on `127.0.0.1:0`; every accepted connection gets a task that decodes
//! the client's frames, records them and answers them. The default answers make the real client
//! work against a minimal fake broker:
//!
//! | client sends           | peer answers                                                   |
//! |------------------------|----------------------------------------------------------------|
//! | CONNECT                | CONNECTED (protocol 21, [`Peer::set_max_message_size`]), or an AUTH_CHALLENGE first with [`Peer::challenge_in_handshake`] (then CONNECTED after the AUTH_RESPONSE) |
//! | PING                   | PONG                                                           |
//! | LOOKUP                 | as [`Peer::set_lookup`] says: Connect to itself by default     |
//! | PARTITIONED_METADATA   | [`Peer::set_partitions`] partitions (0 by default)             |
//! | PRODUCER               | PRODUCER_SUCCESS (its name, or `peer-producer-ID`; last sequence id [`Peer::set_last_sequence_id`], −1 by default) |
//! | SEND                   | SEND_RECEIPT (ledger 1, entry = a counter from 0)              |
//! | SUBSCRIBE, UNSUBSCRIBE, CLOSE_PRODUCER, CLOSE_CONSUMER | SUCCESS                         |
//! | anything else (FLOW, ACK, REDELIVER, PONG, ...) | nothing (recorded only)               |
//!
//! A test scripts other behaviour with [`Peer::ignore`] (record, never answer a command type)
//! or a handler ([`Peer::set_handler`]) that sees every frame first and returns the bytes to
//! answer with (`Some(vec![])`: stay silent) or `None` for the default answer. It pushes frames
//! at any time with [`Peer::push`] (the builders below make them), and asserts on what the
//! client sent with [`Peer::expect`], [`Peer::next_frame`] and [`Peer::received`].
//!
//! Every wait is bounded by [`WAIT`] (a liveness guard): a missing frame fails the test instead
//! of hanging it. A frame the peer cannot decode fails the next `expect`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use pulsar_wire::wire::proto::{
    self, command_lookup_topic_response::LookupType, command_partitioned_topic_metadata_response,
    BaseCommand, MessageIdData, MessageMetadata, SingleMessageMetadata,
};
use pulsar_wire::wire::{self, Frame, DEFAULT_MAX_FRAME_SIZE};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub use pulsar_wire::wire::proto::base_command::Type;

/// How long any wait of the peer may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// How the peer answers LOOKUP.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Connect, to this peer's own URL (authoritative).
    Connect,
    /// Connect, to this broker TLS URL (`broker_service_url_tls`; the plain URL is the
    /// peer's own).
    ConnectTls(String),
    /// Redirect to another broker URL.
    Redirect {
        /// Where to.
        url: String,
        /// The `authoritative` flag of the answer.
        authoritative: bool,
    },
    /// Failed, with a `proto::ServerError` code and a message.
    Failed {
        /// The error code number.
        code: i32,
        /// The error message.
        message: String,
    },
}

/// What happened on the peer's side, in order.
// Test code: a boxed frame would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    /// A connection was accepted (its index, from 0).
    Accepted(usize),
    /// A frame came from the client on a connection.
    Frame(usize, Frame),
    /// The client closed the connection (end of file or an I/O error).
    Closed(usize),
    /// The client sent bytes that are not a valid frame (the peer closed the connection).
    Invalid(usize, String),
}

/// A handler: sees `(connection index, frame)` before the default rules; returns the frames to
/// answer with (`Some(vec![])` for silence) or `None` for the default answer.
pub type Handler = Box<dyn FnMut(usize, &Frame) -> Option<Vec<Bytes>> + Send>;

struct Script {
    max_message_size: Option<i32>,
    lookup: Lookup,
    partitions: u32,
    last_sequence_id: i64,
    challenge_in_handshake: bool,
    ignored: HashSet<i32>,
    handler: Option<Handler>,
    next_entry: u64,
}

enum Out {
    Bytes(Bytes),
    Close,
}

struct Shared {
    url: String,
    script: Mutex<Script>,
    conns: Mutex<Vec<mpsc::UnboundedSender<Out>>>,
    log: Mutex<Vec<(usize, Frame)>>,
    events: mpsc::UnboundedSender<Event>,
    tasks: Mutex<Vec<AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes to one connection of a [`Peer`] from any task (see [`Peer::pusher`]).
#[derive(Debug, Clone)]
pub struct Pusher {
    tx: Option<mpsc::UnboundedSender<Out>>,
}

impl Pusher {
    /// Writes bytes to the connection (ignored once it is closed).
    pub fn push(&self, bytes: Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Out::Bytes(bytes));
        }
    }
}

/// A scripted broker listening on a loopback port. Dropping it stops every task and closes
/// every connection.
pub struct Peer {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for task in lock(&self.shared.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Peer {
    /// Starts a peer with the default behaviour.
    pub async fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            url: format!("pulsar://{addr}"),
            script: Mutex::new(Script {
                max_message_size: Some(wire::DEFAULT_MAX_MESSAGE_SIZE as i32),
                lookup: Lookup::Connect,
                partitions: 0,
                last_sequence_id: -1,
                challenge_in_handshake: false,
                ignored: HashSet::new(),
                handler: None,
                next_entry: 0,
            }),
            conns: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            events: events_tx,
            tasks: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        lock(&shared.tasks).push(accept.abort_handle());
        Peer { shared, events }
    }

    /// `pulsar://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        lock(&self.shared.script)
    }

    /// The `max_message_size` of CONNECTED (`None`: the field is left out).
    pub fn set_max_message_size(&self, size: Option<i32>) {
        self.script().max_message_size = size;
    }

    /// How LOOKUP is answered from now on.
    pub fn set_lookup(&self, lookup: Lookup) {
        self.script().lookup = lookup;
    }

    /// The partition count PARTITIONED_METADATA answers.
    pub fn set_partitions(&self, partitions: u32) {
        self.script().partitions = partitions;
    }

    /// The `last_sequence_id` of PRODUCER_SUCCESS.
    pub fn set_last_sequence_id(&self, id: i64) {
        self.script().last_sequence_id = id;
    }

    /// Answers CONNECT with an AUTH_CHALLENGE, and the AUTH_RESPONSE with CONNECTED.
    pub fn challenge_in_handshake(&self, on: bool) {
        self.script().challenge_in_handshake = on;
    }

    /// Records commands of this type but never answers them.
    pub fn ignore(&self, kind: Type) {
        self.script().ignored.insert(kind as i32);
    }

    /// Answers commands of this type again (undoes [`Peer::ignore`]).
    pub fn answer(&self, kind: Type) {
        self.script().ignored.remove(&(kind as i32));
    }

    /// Installs a handler that sees every frame before the default rules (see [`Handler`]).
    pub fn set_handler(
        &self,
        handler: impl FnMut(usize, &Frame) -> Option<Vec<Bytes>> + Send + 'static,
    ) {
        self.script().handler = Some(Box::new(handler));
    }

    /// Removes the handler.
    pub fn clear_handler(&self) {
        self.script().handler = None;
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Writes bytes (frames from the builders below, or anything) to connection `conn`.
    pub fn push_to(&self, conn: usize, bytes: Bytes) {
        let conns = lock(&self.shared.conns);
        let tx = conns.get(conn).expect("no such connection");
        let _ = tx.send(Out::Bytes(bytes));
    }

    /// A handle that writes to the latest connection of now, from another task.
    pub fn pusher(&self) -> Pusher {
        let conns = lock(&self.shared.conns);
        Pusher {
            tx: conns.last().cloned(),
        }
    }

    /// Writes bytes to the latest connection.
    pub fn push(&self, bytes: Bytes) {
        let n = self.connections();
        assert!(n > 0, "no connection to push to");
        self.push_to(n - 1, bytes);
    }

    /// Closes connection `conn` from the peer's side.
    pub fn disconnect(&self, conn: usize) {
        if let Some(tx) = lock(&self.shared.conns).get(conn) {
            let _ = tx.send(Out::Close);
        }
    }

    /// Every frame received so far of this type, in order (from all connections).
    pub fn received(&self, kind: Type) -> Vec<Frame> {
        lock(&self.shared.log)
            .iter()
            .filter(|(_, f)| f.command.r#type == kind as i32)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The next event; panics after [`WAIT`].
    pub async fn next_event(&mut self) -> Event {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the peer stopped"),
            Err(_) => panic!("no event from the client within {WAIT:?}"),
        }
    }

    /// The next frame from the client (skipping accepts); panics on a close, an invalid frame
    /// or after [`WAIT`].
    pub async fn next_frame(&mut self) -> (usize, Frame) {
        loop {
            match self.next_event().await {
                Event::Accepted(_) => {}
                Event::Frame(conn, frame) => return (conn, frame),
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next frame of this type and its connection, skipping frames of other types (still
    /// in [`Peer::received`]) and accepts; panics on a close, an invalid frame or after
    /// [`WAIT`].
    pub async fn expect_on(&mut self, kind: Type) -> (usize, Frame) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind:?} from the client within {WAIT:?}"))
                .expect("the peer stopped");
            match event {
                Event::Frame(conn, frame) if frame.command.r#type == kind as i32 => {
                    return (conn, frame)
                }
                Event::Frame(..) | Event::Accepted(_) => {}
                other => panic!("expected {kind:?}, got {other:?}"),
            }
        }
    }

    /// The next frame of this type (see [`Peer::expect_on`]).
    pub async fn expect(&mut self, kind: Type) -> Frame {
        self.expect_on(kind).await.1
    }

    /// Waits until a connection is closed by the client (skipping frames); returns its index.
    pub async fn expect_closed(&mut self) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no connection closed within {WAIT:?}"))
                .expect("the peer stopped");
            match event {
                Event::Closed(conn) => return conn,
                Event::Invalid(conn, e) => panic!("invalid frame on connection {conn}: {e}"),
                _ => {}
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = {
            let mut conns = lock(&shared.conns);
            conns.push(tx);
            conns.len() - 1
        };
        let _ = shared.events.send(Event::Accepted(conn));
        let task = tokio::spawn(serve(shared.clone(), conn, stream, rx));
        lock(&shared.tasks).push(task.abort_handle());
    }
}

/// One connection: reads, records and answers frames; writes what the test pushes.
async fn serve(
    shared: Arc<Shared>,
    conn: usize,
    stream: TcpStream,
    mut pushed: mpsc::UnboundedReceiver<Out>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut connected = false;
    loop {
        tokio::select! {
            out = pushed.recv() => match out {
                Some(Out::Bytes(b)) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => break,
            },
            read = rd.read_buf(&mut rbuf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
                let mut replies = BytesMut::new();
                loop {
                    match wire::decode(&mut rbuf, DEFAULT_MAX_FRAME_SIZE) {
                        Ok(Some(frame)) => {
                            lock(&shared.log).push((conn, frame.clone()));
                            for b in respond(&shared, conn, &mut connected, &frame) {
                                replies.extend_from_slice(&b);
                            }
                            let _ = shared.events.send(Event::Frame(conn, frame));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = shared.events.send(Event::Invalid(conn, e.to_string()));
                            return;
                        }
                    }
                }
                if !replies.is_empty() && wr.write_all(&replies).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = shared.events.send(Event::Closed(conn));
}

/// The answer to one frame: the handler's, or nothing for an ignored type, or the default.
fn respond(shared: &Shared, conn: usize, connected: &mut bool, frame: &Frame) -> Vec<Bytes> {
    let mut script = lock(&shared.script);
    if let Some(handler) = script.handler.as_mut() {
        if let Some(replies) = handler(conn, frame) {
            return replies;
        }
    }
    let c = &frame.command;
    if script.ignored.contains(&c.r#type) {
        return Vec::new();
    }
    let Ok(kind) = Type::try_from(c.r#type) else {
        return Vec::new();
    };
    let reply = match kind {
        Type::Connect if script.challenge_in_handshake => auth_challenge("token"),
        Type::Connect => {
            *connected = true;
            connected_command(script.max_message_size)
        }
        Type::AuthResponse if !*connected => {
            *connected = true;
            connected_command(script.max_message_size)
        }
        Type::Ping => command(Type::Pong),
        Type::Lookup => {
            let l = c.lookup_topic.clone().unwrap_or_default();
            lookup_response(l.request_id, &script.lookup, &shared.url)
        }
        Type::PartitionedMetadata => {
            let m = c.partition_metadata.clone().unwrap_or_default();
            BaseCommand {
                partition_metadata_response: Some(Box::new(
                    proto::CommandPartitionedTopicMetadataResponse {
                        partitions: Some(script.partitions),
                        request_id: m.request_id,
                        response: Some(
                            command_partitioned_topic_metadata_response::LookupType::Success as i32,
                        ),
                        ..Default::default()
                    },
                )),
                ..command(Type::PartitionedMetadataResponse)
            }
        }
        Type::Producer => {
            let p = c.producer.clone().unwrap_or_default();
            BaseCommand {
                producer_success: Some(Box::new(proto::CommandProducerSuccess {
                    request_id: p.request_id,
                    producer_name: p
                        .producer_name
                        .unwrap_or_else(|| format!("peer-producer-{}", p.producer_id)),
                    last_sequence_id: Some(script.last_sequence_id),
                    producer_ready: Some(true),
                    ..Default::default()
                })),
                ..command(Type::ProducerSuccess)
            }
        }
        Type::Send => {
            let s = c.send.clone().unwrap_or_default();
            let entry = script.next_entry;
            script.next_entry += 1;
            let mut r = send_receipt(s.producer_id, s.sequence_id, 1, entry);
            if let Some(receipt) = r.send_receipt.as_mut() {
                receipt.highest_sequence_id = s.highest_sequence_id;
            }
            r
        }
        Type::Subscribe => success(c.subscribe.as_ref().map_or(0, |s| s.request_id)),
        Type::Unsubscribe => success(c.unsubscribe.as_ref().map_or(0, |s| s.request_id)),
        Type::CloseProducer => success(c.close_producer.as_ref().map_or(0, |s| s.request_id)),
        Type::CloseConsumer => success(c.close_consumer.as_ref().map_or(0, |s| s.request_id)),
        _ => return Vec::new(),
    };
    vec![encode(&reply)]
}

fn lookup_response(request_id: u64, lookup: &Lookup, own_url: &str) -> BaseCommand {
    let r = match lookup {
        Lookup::Connect => proto::CommandLookupTopicResponse {
            broker_service_url: Some(own_url.to_owned()),
            response: Some(LookupType::Connect as i32),
            request_id,
            authoritative: Some(true),
            ..Default::default()
        },
        Lookup::ConnectTls(url) => proto::CommandLookupTopicResponse {
            broker_service_url: Some(own_url.to_owned()),
            broker_service_url_tls: Some(url.clone()),
            response: Some(LookupType::Connect as i32),
            request_id,
            authoritative: Some(true),
            ..Default::default()
        },
        Lookup::Redirect { url, authoritative } => proto::CommandLookupTopicResponse {
            broker_service_url: Some(url.clone()),
            response: Some(LookupType::Redirect as i32),
            request_id,
            authoritative: Some(*authoritative),
            ..Default::default()
        },
        Lookup::Failed { code, message } => proto::CommandLookupTopicResponse {
            response: Some(LookupType::Failed as i32),
            request_id,
            error: Some(*code),
            message: Some(message.clone()),
            ..Default::default()
        },
    };
    BaseCommand {
        lookup_topic_response: Some(Box::new(r)),
        ..command(Type::LookupResponse)
    }
}

// ---------------------------------------------------------------------------------------------
// Frame builders.

/// A command of this type with no body (set the body with struct update syntax).
pub fn command(kind: Type) -> BaseCommand {
    BaseCommand {
        r#type: kind as i32,
        ..Default::default()
    }
}

/// The bytes of a simple frame.
pub fn encode(command: &BaseCommand) -> Bytes {
    let mut buf = BytesMut::new();
    wire::encode_command(command, &mut buf, DEFAULT_MAX_FRAME_SIZE).expect("encode");
    buf.freeze()
}

/// A simple frame with a command type number this build may not know (for example 200).
pub fn unknown_command(type_number: i32) -> Bytes {
    encode(&BaseCommand {
        r#type: type_number,
        ..Default::default()
    })
}

/// CONNECTED, protocol 21.
pub fn connected_command(max_message_size: Option<i32>) -> BaseCommand {
    BaseCommand {
        connected: Some(Box::new(proto::CommandConnected {
            server_version: "scripted-peer".into(),
            protocol_version: Some(21),
            max_message_size,
            ..Default::default()
        })),
        ..command(Type::Connected)
    }
}

/// PING.
pub fn ping() -> Bytes {
    encode(&BaseCommand {
        ping: Some(proto::CommandPing {}),
        ..command(Type::Ping)
    })
}

/// AUTH_CHALLENGE for `method`.
pub fn auth_challenge(method: &str) -> BaseCommand {
    auth_challenge_with(method, b"refresh")
}

/// AUTH_CHALLENGE for `method` with this challenge data.
pub fn auth_challenge_with(method: &str, data: &[u8]) -> BaseCommand {
    BaseCommand {
        auth_challenge: Some(Box::new(proto::CommandAuthChallenge {
            server_version: Some("scripted-peer".into()),
            challenge: Some(proto::AuthData {
                auth_method_name: Some(method.to_owned()),
                auth_data: Some(Bytes::copy_from_slice(data)),
            }),
            protocol_version: Some(21),
        })),
        ..command(Type::AuthChallenge)
    }
}

/// SUCCESS for a request.
pub fn success(request_id: u64) -> BaseCommand {
    BaseCommand {
        success: Some(Box::new(proto::CommandSuccess {
            request_id,
            schema: None,
        })),
        ..command(Type::Success)
    }
}

/// SEND_RECEIPT for `sequence_id`, stored at `ledger:entry`.
pub fn send_receipt(producer_id: u64, sequence_id: u64, ledger: u64, entry: u64) -> BaseCommand {
    BaseCommand {
        send_receipt: Some(proto::CommandSendReceipt {
            producer_id,
            sequence_id,
            message_id: Some(MessageIdData {
                ledger_id: ledger,
                entry_id: entry,
                ..Default::default()
            }),
            highest_sequence_id: None,
        }),
        ..command(Type::SendReceipt)
    }
}

/// SEND_ERROR for `sequence_id` with a `proto::ServerError` code.
pub fn send_error(producer_id: u64, sequence_id: u64, code: i32, message: &str) -> BaseCommand {
    BaseCommand {
        send_error: Some(Box::new(proto::CommandSendError {
            producer_id,
            sequence_id,
            error: code,
            message: message.to_owned(),
        })),
        ..command(Type::SendError)
    }
}

/// CLOSE_PRODUCER from the broker.
pub fn close_producer(producer_id: u64) -> BaseCommand {
    BaseCommand {
        close_producer: Some(Box::new(proto::CommandCloseProducer {
            producer_id,
            request_id: 0,
            ..Default::default()
        })),
        ..command(Type::CloseProducer)
    }
}

/// CLOSE_CONSUMER from the broker.
pub fn close_consumer(consumer_id: u64) -> BaseCommand {
    BaseCommand {
        close_consumer: Some(Box::new(proto::CommandCloseConsumer {
            consumer_id,
            request_id: 0,
            ..Default::default()
        })),
        ..command(Type::CloseConsumer)
    }
}

/// REACHED_END_OF_TOPIC.
pub fn reached_end_of_topic(consumer_id: u64) -> BaseCommand {
    BaseCommand {
        reached_end_of_topic: Some(Box::new(proto::CommandReachedEndOfTopic { consumer_id })),
        ..command(Type::ReachedEndOfTopic)
    }
}

/// ACTIVE_CONSUMER_CHANGE.
pub fn active_consumer_change(consumer_id: u64, is_active: bool) -> BaseCommand {
    BaseCommand {
        active_consumer_change: Some(Box::new(proto::CommandActiveConsumerChange {
            consumer_id,
            is_active: Some(is_active),
        })),
        ..command(Type::ActiveConsumerChange)
    }
}

/// The MESSAGE command for `ledger:entry` (set `ack_set` or `redelivery_count` on its
/// `message` body when needed).
pub fn message(consumer_id: u64, ledger: u64, entry: u64) -> BaseCommand {
    BaseCommand {
        message: Some(proto::CommandMessage {
            consumer_id,
            message_id: MessageIdData {
                ledger_id: ledger,
                entry_id: entry,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..command(Type::Message)
    }
}

/// Message metadata as a producer named `producer` writes it for `sequence_id`.
pub fn metadata(producer: &str, sequence_id: u64) -> MessageMetadata {
    MessageMetadata {
        producer_name: producer.to_owned(),
        sequence_id,
        publish_time: 1_700_000_000_000,
        ..Default::default()
    }
}

/// A payload frame (MESSAGE), with the checksum block.
pub fn with_payload(command: &BaseCommand, metadata: &MessageMetadata, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    wire::encode_payload_command(
        command,
        None,
        metadata,
        payload,
        &mut buf,
        DEFAULT_MAX_FRAME_SIZE,
    )
    .expect("encode");
    buf.freeze()
}

/// A payload frame without the checksum block, by hand (as pulsar-lite sends MESSAGE):
/// `[total][command size][command][metadata size][metadata][payload]`.
pub fn with_payload_unchecked(
    command: &BaseCommand,
    metadata: &MessageMetadata,
    payload: &[u8],
) -> Bytes {
    let cmd = command.encode_to_vec();
    let meta = metadata.encode_to_vec();
    let total = 4 + cmd.len() + 4 + meta.len() + payload.len();
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_u32(total as u32);
    buf.put_u32(cmd.len() as u32);
    buf.put_slice(&cmd);
    buf.put_u32(meta.len() as u32);
    buf.put_slice(&meta);
    buf.put_slice(payload);
    buf.freeze()
}

/// A batch payload of these messages (entry `i` has sequence id `i`), built with
/// `wire::encode_entry`; send it with `num_messages_in_batch` set in the metadata.
pub fn batch_payload(payloads: &[&[u8]]) -> Bytes {
    let mut buf = BytesMut::new();
    for (i, p) in payloads.iter().enumerate() {
        let mut single = SingleMessageMetadata {
            sequence_id: Some(i as u64),
            ..Default::default()
        };
        wire::encode_entry(&mut single, p, &mut buf);
    }
    buf.freeze()
}
