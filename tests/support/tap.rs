//! A TCP relay between a pulsar-wire client and the broker that decodes every frame passing
//! through, both ways, so that a test can assert what was on the wire (a peer's producer really
//! compressed with a codec, really sent chunks), not only that payloads arrived. The same relay
//! as tests/interop_codecs.rs has, shared here for the Java interop tests.

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

/// A TCP relay between pulsar-wire and the broker that decodes every frame both ways and keeps
/// its command and metadata. It rewrites the broker URL of LOOKUP answers to its own, so that
/// the client's every connection goes through it. Dropping it stops it.
pub struct Tap {
    url: String,
    log: Arc<Mutex<TapLog>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
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
    pub async fn start(broker_addr: &str) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the tap");
        let url = format!("pulsar://{}", listener.local_addr().expect("tap address"));
        let log = Arc::new(Mutex::new(TapLog::default()));
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let broker = broker_addr.to_string();
        let accept = tokio::spawn({
            let (url, log, tasks) = (url.clone(), log.clone(), tasks.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(upstream) = TcpStream::connect(&broker).await else {
                        lock(&log)
                            .errors
                            .push(format!("cannot connect to {broker}"));
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (crd, cwr) = client.into_split();
                    let (brd, bwr) = upstream.into_split();
                    let up = tokio::spawn(relay(crd, bwr, true, log.clone(), url.clone()));
                    let down = tokio::spawn(relay(brd, cwr, false, log.clone(), url.clone()));
                    let mut t = lock(&tasks);
                    t.push(up.abort_handle());
                    t.push(down.abort_handle());
                }
            }
        });
        lock(&tasks).push(accept.abort_handle());
        Tap { url, log, tasks }
    }

    pub fn url(&self) -> &str {
        &self.url
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

/// Copies one direction, frame by frame, recording each; LOOKUP answers get the tap's URL.
async fn relay(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    from_client: bool,
    log: Arc<Mutex<TapLog>>,
    tap_url: String,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        match rd.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => break,
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
                    let rewritten = rewrite_lookup(&frame, &tap_url);
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
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
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
