//! The task that owns one broker socket: it performs the handshake, then loops over the
//! handles' commands, the socket's frames and the protocol core's timers, writing everything
//! queued in one turn with a single write (write coalescing).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::channel as mpsc;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Command, Connection, ConnectionConfig, PendingReply, Shared};
use crate::error::{ConnectionError, Error};
use crate::protocol::commands;
use crate::protocol::connection::{
    ConnectionCore, ConsumerEvent, Inbound, ProducerEvent, TopicListUpdate,
};
use crate::url::BrokerAddress;
use crate::wire::proto::CommandAuthChallenge;
use crate::wire::{self, proto::BaseCommand, DEFAULT_MAX_MESSAGE_SIZE};

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// How many handle commands one turn of the loop takes before it writes.
const COMMANDS_PER_TURN: usize = 4096;
/// The least free space the read buffer keeps before a read.
const READ_CHUNK: usize = 64 * 1024;

fn io_error(e: std::io::Error) -> ConnectionError {
    ConnectionError::Io(e.into())
}

/// Opens a connection to `physical` for the broker `logical` (they differ through a proxy),
/// performs the handshake within the connect timeout, and starts its task; in a `connect` span
/// (target [`SPAN_TARGET`](crate::SPAN_TARGET), INFO level) with the addresses and the outcome.
pub(crate) async fn connect(
    logical: &BrokerAddress,
    physical: &BrokerAddress,
    config: &ConnectionConfig,
) -> Result<Connection, ConnectionError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        target: crate::trace::SPAN_TARGET,
        "connect",
        otel.status_code = tracing::field::Empty,
        server.address = %physical,
        pulsar.broker = %logical,
        pulsar.connection.id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let result = open(logical, physical, config)
        .instrument(span.clone())
        .await;
    if !span.is_disabled() {
        match &result {
            Ok(conn) => {
                span.record("pulsar.connection.id", conn.id());
                span.record("outcome", "connected");
            }
            Err(e) => {
                span.record("outcome", "failed");
                span.record("error", tracing::field::display(e));
                span.record("otel.status_code", "ERROR");
            }
        }
    }
    result
}

/// [`connect`], without its span.
async fn open(
    logical: &BrokerAddress,
    physical: &BrokerAddress,
    config: &ConnectionConfig,
) -> Result<Connection, ConnectionError> {
    use super::tls::{self, MaybeTlsStream};
    // Through an SNI proxy the TCP connection goes to the proxy, and the TLS handshake names
    // the broker (SNI), which the proxy routes on.
    let addr = match &config.proxy {
        Some(route) if route.protocol == crate::client::ProxyProtocol::Sni => {
            route.address.host_port()
        }
        _ => physical.host_port(),
    };
    let attempt = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| ConnectionError::Connect {
                addr: addr.clone(),
                source: e.into(),
            })?;
        let _ = tcp.set_nodelay(true);
        let proxy_to = (logical != physical).then(|| logical.host_port());
        if !physical.tls {
            return handshake(MaybeTlsStream::Plain(tcp), proxy_to, config).await;
        }
        let tls_config = config.tls.clone().ok_or_else(|| {
            ConnectionError::Tls(format!(
                "{physical} needs TLS but the client has no TLS configuration \
                 (use a pulsar+ssl:// service URL)"
            ))
        })?;
        let stream = tls::connect(tcp, physical, tls_config).await?;
        // A broker that refuses the client certificate may say so only on the first read
        // (TLS 1.3): report that as the TLS error it is, not as an I/O error.
        let failure = stream.failure();
        handshake(MaybeTlsStream::Tls(stream), proxy_to, config)
            .await
            .map_err(|e| failure.get().cloned().unwrap_or(e))
    };
    let result = tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| ConnectionError::ConnectTimeout {
            addr: addr.clone(),
            after: config.connect_timeout,
        })
        .and_then(|r| r);
    if let Some(m) = &config.metrics {
        match &result {
            Ok(_) => m.opened.increment(1),
            Err(_) => m.failed.increment(1),
        }
    }
    let (stream, rbuf, core) = result?;

    let max_message_size = core.max_message_size().unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
    let max_frame_size = wire::max_frame_size_for(max_message_size).max(config.max_frame_size);
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed),
        logical: logical.clone(),
        physical: physical.clone(),
        tx,
        closed: Arc::new(AtomicBool::new(false)),
        max_message_size,
        server_version: core.server_version().unwrap_or_default().to_owned(),
        topic_watchers: core.supports_topic_watchers(),
    });
    info!(
        connection = shared.id,
        broker = %logical,
        via = %physical,
        server_version = %shared.server_version,
        protocol = core.protocol_version(),
        "connected"
    );
    let driver = Driver {
        id: shared.id,
        closed: shared.closed.clone(),
        core,
        rx,
        rbuf,
        wbuf: BytesMut::with_capacity(READ_CHUNK),
        out: std::collections::VecDeque::new(),
        producers: HashMap::new(),
        consumers: HashMap::new(),
        watchers: HashMap::new(),
        auth: config.auth.clone(),
        challenge: None,
        challenge_timeout: config.connect_timeout,
        max_frame_size,
        idle: crate::protocol::idle::IdleTimer::new(config.max_idle),
        closed_counter: config.metrics.as_ref().map(|m| m.closed.clone()),
    };
    tokio::spawn(driver.run(stream));
    Ok(Connection { shared })
}

type AuthRef = Option<Arc<dyn crate::auth::Authentication>>;

/// What to tell the user when credentials cannot be produced: the method and what to check.
fn credentials_error(method: &str, e: crate::auth::AuthError) -> ConnectionError {
    ConnectionError::Credentials(format!("{method} authentication: {e}"))
}

/// The method and data of CONNECT (none without authentication).
async fn connect_auth(auth: &AuthRef) -> Result<(Option<&str>, Option<Bytes>), ConnectionError> {
    match auth {
        None => Ok((None, None)),
        Some(a) => {
            let data = a
                .auth_data()
                .await
                .map_err(|e| credentials_error(a.method_name(), e))?;
            Ok((Some(a.method_name()), Some(data)))
        }
    }
}

/// The answer to an AUTH_CHALLENGE, owning what it needs so that the connection's task can
/// poll it beside its other work.
type ChallengeAnswer = Pin<Box<dyn Future<Output = Result<BaseCommand, ConnectionError>> + Send>>;

/// Starts answering `challenge` with `auth` (or, without authentication, with the `none`
/// method and no data, as before), within `within`.
fn answer_challenge(
    auth: &AuthRef,
    challenge: CommandAuthChallenge,
    within: Duration,
) -> ChallengeAnswer {
    let Some(auth) = auth.clone() else {
        return Box::pin(std::future::ready(Ok(commands::auth_response(
            "none",
            Bytes::new(),
        ))));
    };
    let (method, data) = challenge
        .challenge
        .map(|c| {
            (
                c.auth_method_name.unwrap_or_default(),
                c.auth_data.unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    Box::pin(async move {
        let name = auth.method_name();
        let challenge = crate::auth::AuthChallenge {
            method: &method,
            data: &data,
        };
        match tokio::time::timeout(within, auth.on_challenge(challenge)).await {
            Ok(Ok(answer)) => Ok(commands::auth_response(name, answer)),
            Ok(Err(e)) => Err(credentials_error(name, e)),
            Err(_) => Err(ConnectionError::Credentials(format!(
                "{name} authentication: no answer to the broker's AUTH_CHALLENGE within \
                 {within:?} (check the credentials provider)"
            ))),
        }
    })
}

/// The challenge answer under way, or never.
async fn challenge_answered(
    answer: &mut Option<ChallengeAnswer>,
) -> Result<BaseCommand, ConnectionError> {
    match answer.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Sends CONNECT and reads until CONNECTED, answering AUTH_CHALLENGE and PING on the way.
pub(crate) async fn handshake<S>(
    mut stream: S,
    proxy_to: Option<String>,
    config: &ConnectionConfig,
) -> Result<(S, BytesMut, ConnectionCore<PendingReply>), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (method, data) = connect_auth(&config.auth).await?;
    let mut wbuf = BytesMut::new();
    encode(
        &commands::connect(method, data, proxy_to),
        &mut wbuf,
        config.max_frame_size,
    )?;
    stream.write_all(&wbuf).await.map_err(io_error)?;
    wbuf.clear();
    let mut core = ConnectionCore::new(std::time::Instant::now(), config.keepalive);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        while let Some(frame) = wire::decode(&mut rbuf, config.max_frame_size)? {
            match core.handle_frame(frame)? {
                Inbound::Connected(_) => return Ok((stream, rbuf, core)),
                // Nothing else to do before CONNECTED: the answer is awaited here, within the
                // connect timeout around the handshake.
                Inbound::AuthChallenge(challenge) => {
                    let cmd =
                        answer_challenge(&config.auth, challenge, config.connect_timeout).await?;
                    encode(&cmd, &mut wbuf, config.max_frame_size)?;
                }
                Inbound::Ignored(reason) => debug!(%reason, "ignored during handshake"),
                _ => {}
            }
            while let Some(cmd) = core.poll_transmit() {
                encode(&cmd, &mut wbuf, config.max_frame_size)?;
            }
            if !wbuf.is_empty() {
                stream.write_all(&wbuf).await.map_err(io_error)?;
                wbuf.clear();
            }
        }
        reserve_for_read(&mut rbuf, config.max_frame_size)?;
        let n = stream.read_buf(&mut rbuf).await.map_err(io_error)?;
        if n == 0 {
            return Err(ConnectionError::ClosedByBroker);
        }
    }
}

/// Writes every chunk, in order, with vectored writes (at most 64 slices a call).
async fn write_all_chunks<W: AsyncWrite + Unpin>(
    wr: &mut W,
    chunks: &mut std::collections::VecDeque<bytes::Bytes>,
) -> std::io::Result<()> {
    use bytes::Buf;
    while !chunks.is_empty() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks
            .iter()
            .take(64)
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(front) = chunks.front_mut() else {
                break;
            };
            if front.len() <= written {
                written -= front.len();
                chunks.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    wr.flush().await
}

fn encode(
    command: &BaseCommand,
    dst: &mut BytesMut,
    max_frame_size: usize,
) -> Result<(), ConnectionError> {
    wire::encode_command(command, dst, max_frame_size).map_err(ConnectionError::Frame)
}

/// Makes room for the next read without ever holding more than one max-size frame: when the
/// buffered frame header announces a frame larger than the capacity, the buffer is grown to
/// exactly that size (the size was already checked against the max frame size).
fn reserve_for_read(rbuf: &mut BytesMut, max_frame_size: usize) -> Result<(), ConnectionError> {
    let needed = match wire::check(rbuf, max_frame_size)? {
        Some(_) => 0,
        None if rbuf.len() >= 4 => {
            let total = u32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]) as usize;
            4 + total
        }
        None => 0,
    };
    let want = needed.max(rbuf.len() + READ_CHUNK.min(max_frame_size));
    if rbuf.capacity() < want {
        let mut bigger = BytesMut::with_capacity(want);
        bigger.extend_from_slice(rbuf);
        *rbuf = bigger;
    }
    Ok(())
}

/// The socket task's state. It holds no sender of its own command channel, so the channel (and
/// the task) ends when the last [`Connection`] handle is dropped.
struct Driver {
    id: u64,
    closed: Arc<AtomicBool>,
    core: ConnectionCore<PendingReply>,
    rx: mpsc::UnboundedReceiver<Command>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// What this turn writes, in order: sealed parts of `wbuf` and encoded frames.
    out: std::collections::VecDeque<bytes::Bytes>,
    producers: HashMap<u64, mpsc::UnboundedSender<ProducerEvent>>,
    consumers: HashMap<u64, mpsc::UnboundedSender<ConsumerEvent>>,
    watchers: HashMap<u64, mpsc::UnboundedSender<TopicListUpdate>>,
    auth: AuthRef,
    /// The answer to the last AUTH_CHALLENGE while it is produced (polled by the loop, so
    /// the rest of the connection's traffic goes on meanwhile).
    challenge: Option<ChallengeAnswer>,
    /// How long a challenge answer may take (the connect timeout).
    challenge_timeout: Duration,
    max_frame_size: usize,
    /// How long the connection has gone unused (closed at its maximum).
    idle: crate::protocol::idle::IdleTimer,
    /// `pulsar.client.connection.closed`, with metrics on.
    closed_counter: Option<::metrics::Counter>,
}

impl Driver {
    async fn run<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let reason = self.run_loop(&mut rd, &mut wr).await;
        let _ = wr.shutdown().await;
        let closed = self.closed_counter.take();
        self.shutdown(reason);
        if let Some(c) = closed {
            c.increment(1);
        }
    }

    async fn run_loop<R, W>(&mut self, rd: &mut R, wr: &mut W) -> ConnectionError
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if let Err(e) = self.flush_transmit(wr).await {
                return e;
            }
            let now = std::time::Instant::now();
            let in_use = !self.producers.is_empty()
                || !self.consumers.is_empty()
                || !self.watchers.is_empty()
                || self.core.pending_requests() > 0
                || self.challenge.is_some();
            self.idle.update(now, in_use);
            if self.idle.expired(now) {
                info!(
                    connection = self.id,
                    "closing the connection: unused for the max idle time"
                );
                return ConnectionError::Closed;
            }
            let wake = [self.core.poll_timeout(), self.idle.deadline()]
                .into_iter()
                .flatten()
                .min()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Err(e) = reserve_for_read(&mut self.rbuf, self.max_frame_size) {
                return e;
            }
            tokio::select! {
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return ConnectionError::Closed };
                    if let Err(e) = self.apply(cmd) { return e; }
                    for _ in 0..COMMANDS_PER_TURN {
                        match self.rx.try_recv() {
                            Ok(cmd) => if let Err(e) = self.apply(cmd) { return e; },
                            Err(_) => break,
                        }
                    }
                }
                read = rd.read_buf(&mut self.rbuf) => {
                    match read {
                        Ok(0) => return ConnectionError::ClosedByBroker,
                        Ok(_) => if let Err(e) = self.read_frames() { return e; },
                        Err(e) => return io_error(e),
                    }
                }
                answer = challenge_answered(&mut self.challenge) => {
                    self.challenge = None;
                    match answer {
                        Ok(response) => {
                            self.core.queue(response);
                            debug!(connection = self.id, "answered the broker's auth challenge");
                        }
                        Err(e) => return e,
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    match self.core.handle_timeout(std::time::Instant::now()) {
                        Ok(expired) => {
                            for (reply, operation) in expired {
                                let after = reply.timeout.unwrap_or_default();
                                let _ = reply.tx.send(Err(Error::Timeout { operation, after }));
                            }
                        }
                        Err(e) => return e,
                    }
                }
            }
        }
    }

    async fn flush_transmit<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
    ) -> Result<(), ConnectionError> {
        while let Some(cmd) = self.core.poll_transmit() {
            encode(&cmd, &mut self.wbuf, self.max_frame_size)?;
        }
        self.seal_wbuf();
        write_all_chunks(wr, &mut self.out).await.map_err(io_error)
    }

    /// Moves what is encoded in `wbuf` to the end of the write queue, keeping the order.
    fn seal_wbuf(&mut self) {
        if !self.wbuf.is_empty() {
            self.out.push_back(self.wbuf.split().freeze());
        }
    }

    fn apply(&mut self, cmd: Command) -> Result<(), ConnectionError> {
        match cmd {
            Command::Request {
                request_id,
                operation,
                command,
                reply,
                timeout,
            } => {
                if let Err(e) = wire::encode_command(&command, &mut self.wbuf, self.max_frame_size)
                {
                    let _ = reply.send(Err(Error::Connection(ConnectionError::Frame(e))));
                    return Ok(());
                }
                let deadline = timeout.map(|t| std::time::Instant::now() + t);
                let pending = PendingReply { tx: reply, timeout };
                self.core
                    .register_request(request_id, operation, pending, deadline);
            }
            Command::Send(command) => {
                if let Err(e) = wire::encode_command(&command, &mut self.wbuf, self.max_frame_size)
                {
                    warn!(connection = self.id, error = %e, "command not sent");
                }
            }
            // Encoded frames (SENDs with their payloads) are written as they are, by a vectored
            // write: no copy into the write buffer.
            Command::Frame(bytes) => {
                self.seal_wbuf();
                self.out.push_back(bytes);
            }
            Command::Producer(id, Some(tx)) => {
                self.producers.insert(id, tx);
            }
            Command::Producer(id, None) => {
                self.producers.remove(&id);
            }
            Command::Consumer(id, Some(tx)) => {
                self.consumers.insert(id, tx);
            }
            Command::Consumer(id, None) => {
                self.consumers.remove(&id);
            }
            Command::Watcher(id, Some(tx)) => {
                self.watchers.insert(id, tx);
            }
            Command::Watcher(id, None) => {
                self.watchers.remove(&id);
            }
            Command::Close => return Err(ConnectionError::Closed),
        }
        Ok(())
    }

    fn read_frames(&mut self) -> Result<(), ConnectionError> {
        while let Some(frame) = wire::decode(&mut self.rbuf, self.max_frame_size)? {
            match self.core.handle_frame(frame)? {
                Inbound::Reply {
                    reply,
                    operation,
                    result,
                } => {
                    let _ = reply
                        .tx
                        .send(result.map_err(|error| Error::Server { operation, error }));
                }
                Inbound::Producer(id, event) => match self.producers.get(&id) {
                    Some(tx) => {
                        let _ = tx.send(event);
                    }
                    None => debug!(
                        connection = self.id,
                        producer = id,
                        ?event,
                        "event for an unknown producer"
                    ),
                },
                Inbound::Consumer(id, event) => match self.consumers.get(&id) {
                    Some(tx) => {
                        let _ = tx.send(event);
                    }
                    None => warn!(
                        connection = self.id,
                        consumer = id,
                        "event for an unknown consumer dropped"
                    ),
                },
                Inbound::Watcher(id, update) => match self.watchers.get(&id) {
                    Some(tx) => {
                        let _ = tx.send(update);
                    }
                    None => debug!(
                        connection = self.id,
                        watcher = id,
                        "update for an unknown watcher"
                    ),
                },
                Inbound::AuthChallenge(challenge) => {
                    if self.challenge.is_some() {
                        debug!(
                            connection = self.id,
                            "a new auth challenge replaces the one still being answered"
                        );
                    }
                    self.challenge = Some(answer_challenge(
                        &self.auth,
                        challenge,
                        self.challenge_timeout,
                    ));
                }
                Inbound::Ignored(reason) => {
                    warn!(connection = self.id, %reason, "inbound command ignored")
                }
                Inbound::Connected(_) | Inbound::Nothing => {}
            }
        }
        Ok(())
    }

    fn shutdown(mut self, reason: ConnectionError) {
        self.closed.store(true, Ordering::Release);
        match &reason {
            ConnectionError::Closed => debug!(connection = self.id, "connection closed"),
            other => warn!(connection = self.id, reason = %other, "connection lost"),
        }
        for (reply, _) in self.core.close() {
            let _ = reply.tx.send(Err(Error::Connection(reason.clone())));
        }
        for (_, tx) in self.producers.drain() {
            let _ = tx.send(ProducerEvent::ConnectionClosed(reason.clone()));
        }
        for (_, tx) in self.consumers.drain() {
            let _ = tx.send(ConsumerEvent::ConnectionClosed(reason.clone()));
        }
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Request { reply, .. } = cmd {
                let _ = reply.send(Err(Error::Connection(reason.clone())));
            }
        }
    }
}
