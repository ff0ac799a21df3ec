//! A TCP relay between a pulsar-wire client and the broker that decodes every frame passing
//! through, both ways, so that a test can assert what was on the wire (a peer's producer really
//! compressed with a codec, really sent chunks), not only that payloads arrived. The same relay
//! as tests/interop_codecs.rs has, shared here for the Java interop tests.
//!
//! It also injects faults: [`Tap::reset_connections`] resets every connection open (TCP RST
//! both ways), [`Tap::stall_connections`] makes them pass nothing more while they stay open
//! (new connections pass). [`Tap::forward`] is a tap that rewrites nothing, for a peer that
//! must see what the client sends as it is (a Pulsar proxy, whose LOOKUP answers name the
//! broker the client reaches through its service URL).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use pulsar_wire::wire::proto::{base_command::Type, BaseCommand, MessageMetadata};
use pulsar_wire::wire::{self, Frame};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// The largest frame the tap decodes (above the broker's 5 MiB max message size and padding).
const TAP_MAX_FRAME: usize = 16 * 1024 * 1024;

/// A frame seen by the [`Tap`] (payload bytes left out).
#[derive(Debug, Clone)]
pub struct Seen {
    /// Sent by the client (true) or by the broker (false).
    pub from_client: bool,
    pub command: BaseCommand,
    pub metadata: Option<MessageMetadata>,
}

#[derive(Debug, Default)]
struct TapLog {
    frames: Vec<Seen>,
    errors: Vec<String>,
}

/// The faults of one relayed connection.
#[derive(Debug, Default)]
struct Faults {
    /// Pass nothing more (the sockets stay open).
    stalled: AtomicBool,
    /// Reset both sockets.
    reset: tokio::sync::Notify,
    reset_requested: AtomicBool,
}

/// A TCP relay between pulsar-wire and the broker that decodes every frame both ways and keeps
/// its command and metadata. [`Tap::start`] rewrites the broker URL of LOOKUP answers to its
/// own, so that the client's every connection goes through it; [`Tap::forward`] rewrites
/// nothing. Dropping it stops it.
pub struct Tap {
    url: String,
    log: Arc<Mutex<TapLog>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    connections: Arc<Mutex<Vec<Arc<Faults>>>>,
    accepted: Arc<AtomicUsize>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tap {
    /// A tap in front of `broker_addr` that points LOOKUP answers at itself.
    pub async fn start(broker_addr: &str) -> Tap {
        Tap::start_with(broker_addr, true).await
    }

    /// A tap in front of `addr` that passes every frame as it is.
    pub async fn forward(addr: &str) -> Tap {
        Tap::start_with(addr, false).await
    }

    async fn start_with(broker_addr: &str, rewrite: bool) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the tap");
        let url = format!("pulsar://{}", listener.local_addr().expect("tap address"));
        let log = Arc::new(Mutex::new(TapLog::default()));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let connections: Arc<Mutex<Vec<Arc<Faults>>>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let broker = broker_addr.to_string();
        let accept = tokio::spawn({
            let (log, tasks) = (log.clone(), tasks.clone());
            let (connections, accepted) = (connections.clone(), accepted.clone());
            let rewrite_to = rewrite.then(|| url.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let Ok(upstream) = TcpStream::connect(&broker).await else {
                        lock(&log)
                            .errors
                            .push(format!("cannot connect to {broker}"));
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let faults = Arc::new(Faults::default());
                    lock(&connections).push(faults.clone());
                    let (crd, cwr) = client.into_split();
                    let (brd, bwr) = upstream.into_split();
                    let up = tokio::spawn(relay(
                        crd,
                        bwr,
                        true,
                        log.clone(),
                        rewrite_to.clone(),
                        faults.clone(),
                    ));
                    let down = tokio::spawn(relay(
                        brd,
                        cwr,
                        false,
                        log.clone(),
                        rewrite_to.clone(),
                        faults,
                    ));
                    let mut t = lock(&tasks);
                    t.push(up.abort_handle());
                    t.push(down.abort_handle());
                }
            }
        });
        lock(&tasks).push(accept.abort_handle());
        Tap {
            url,
            log,
            tasks,
            connections,
            accepted,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many connections the tap accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Resets every connection open now, both ways (TCP RST to the client and to the peer):
    /// how many there were.
    pub fn reset_connections(&self) -> usize {
        let open: Vec<Arc<Faults>> = lock(&self.connections).drain(..).collect();
        for faults in &open {
            faults.reset_requested.store(true, Ordering::SeqCst);
            faults.reset.notify_waiters();
        }
        open.len()
    }

    /// Every connection open now stops passing bytes, both ways, and stays open (a peer that
    /// went silent, a dead path): how many there were. Connections made later pass.
    pub fn stall_connections(&self) -> usize {
        let open: Vec<Arc<Faults>> = lock(&self.connections).drain(..).collect();
        for faults in &open {
            faults.stalled.store(true, Ordering::SeqCst);
        }
        open.len()
    }

    /// Frames of this type, in order, sent by the client (`from_client`) or by the broker.
    pub fn seen(&self, from_client: bool, kind: Type) -> Vec<Seen> {
        let log = lock(&self.log);
        assert!(
            log.errors.is_empty(),
            "the tap could not read the traffic: {:?}",
            log.errors
        );
        log.frames
            .iter()
            .filter(|s| s.from_client == from_client && s.command.r#type == kind as i32)
            .cloned()
            .collect()
    }
}

/// Copies one direction, frame by frame, recording each; LOOKUP answers get the tap's URL when
/// `rewrite_to` is one. A reset of `faults` ends it with an RST; a stall makes it hold
/// everything until then.
async fn relay(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    from_client: bool,
    log: Arc<Mutex<TapLog>>,
    rewrite_to: Option<String>,
    faults: Arc<Faults>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let reset = faults.reset.notified();
        tokio::pin!(reset);
        reset.as_mut().enable();
        if faults.reset_requested.load(Ordering::SeqCst) {
            return abort(&rd, &wr);
        }
        if faults.stalled.load(Ordering::SeqCst) {
            // Hold the sockets, pass nothing, until a reset or the tap's end.
            reset.await;
            return abort(&rd, &wr);
        }
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(n) if n > 0 => {}
                _ => break,
            },
            () = &mut reset => return abort(&rd, &wr),
        }
        if faults.stalled.load(Ordering::SeqCst) {
            continue;
        }
        let mut out = BytesMut::new();
        loop {
            let len = match wire::check(&buf, TAP_MAX_FRAME) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    lock(&log).errors.push(format!("bad frame: {e}"));
                    return;
                }
            };
            let raw = buf.split_to(len).freeze();
            match wire::decode_frame(raw.clone(), TAP_MAX_FRAME) {
                Ok(frame) => {
                    let rewritten = rewrite_to
                        .as_deref()
                        .and_then(|url| rewrite_lookup(&frame, url));
                    let Frame { command, payload } = frame;
                    lock(&log).frames.push(Seen {
                        from_client,
                        command,
                        metadata: payload.map(|p| p.metadata),
                    });
                    out.extend_from_slice(rewritten.as_ref().unwrap_or(&raw));
                }
                Err(e) => {
                    lock(&log).errors.push(format!("undecodable frame: {e}"));
                    out.extend_from_slice(&raw);
                }
            }
        }
        if !out.is_empty() {
            tokio::select! {
                written = wr.write_all(&out) => if written.is_err() { break },
                () = &mut reset => return abort(&rd, &wr),
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// Makes the sockets of both halves close with an RST when they are dropped.
fn abort(rd: &OwnedReadHalf, wr: &OwnedWriteHalf) {
    let _ = rd.as_ref().set_zero_linger();
    let _ = wr.as_ref().set_zero_linger();
}

/// A LOOKUP answer pointing at the tap instead of the broker.
fn rewrite_lookup(frame: &Frame, tap_url: &str) -> Option<Bytes> {
    if frame.command.r#type != Type::LookupResponse as i32 {
        return None;
    }
    let mut command = frame.command.clone();
    let lookup = command.lookup_topic_response.as_mut()?;
    lookup.broker_service_url = Some(tap_url.to_string());
    lookup.broker_service_url_tls = None;
    let mut buf = BytesMut::new();
    wire::encode_command(&command, &mut buf, TAP_MAX_FRAME).expect("encode LOOKUP answer");
    Some(buf.freeze())
}

/// The metadata of a payload frame.
pub fn metadata(seen: &Seen) -> &MessageMetadata {
    seen.metadata.as_ref().expect("a payload frame")
}
