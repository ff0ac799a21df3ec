//! The wire layer against a live broker: CONNECT/CONNECTED, PING/PONG and LOOKUP, once with the
//! free functions over a raw `TcpStream` and once through `Framed` with `PulsarCodec`; and the
//! test support's kill and restart of a private pulsar-lite.

mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use pulsar_wire::wire::{self, proto, Frame, PulsarCodec, DEFAULT_MAX_FRAME_SIZE};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use proto::base_command::Type;

/// A liveness guard: a broken broker fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect_command() -> proto::BaseCommand {
    proto::BaseCommand {
        r#type: Type::Connect as i32,
        connect: Some(Box::new(proto::CommandConnect {
            client_version: "pulsar-wire-test".to_string(),
            protocol_version: Some(21),
            auth_method_name: Some("token".to_string()),
            auth_data: Some(Bytes::from_static(b"not-a-real-token")),
            feature_flags: Some(proto::FeatureFlags {
                supports_auth_refresh: Some(true),
                supports_broker_entry_metadata: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn ping_command() -> proto::BaseCommand {
    proto::BaseCommand {
        r#type: Type::Ping as i32,
        ping: Some(proto::CommandPing {}),
        ..Default::default()
    }
}

fn lookup_command(topic: &str, request_id: u64) -> proto::BaseCommand {
    proto::BaseCommand {
        r#type: Type::Lookup as i32,
        lookup_topic: Some(Box::new(proto::CommandLookupTopic {
            topic: topic.to_string(),
            request_id,
            authoritative: Some(false),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn assert_connected(frame: &Frame) {
    assert_eq!(frame.command_type(), Ok(Type::Connected), "{frame:?}");
    let connected = frame
        .command
        .connected
        .as_ref()
        .expect("CONNECTED carries `connected`");
    assert!(!connected.server_version.is_empty(), "{connected:?}");
    let protocol = connected.protocol_version.unwrap_or(0);
    assert!(protocol >= 1, "{connected:?}");
    assert!(frame.payload.is_none());
}

fn assert_lookup_response(frame: &Frame, request_id: u64) {
    assert_eq!(frame.command_type(), Ok(Type::LookupResponse), "{frame:?}");
    let response = frame
        .command
        .lookup_topic_response
        .as_ref()
        .expect("LOOKUP_RESPONSE carries `lookupTopicResponse`");
    assert_eq!(response.request_id, request_id, "{response:?}");
    use proto::command_lookup_topic_response::LookupType;
    let kind = response.response.and_then(|r| LookupType::try_from(r).ok());
    assert!(
        matches!(kind, Some(LookupType::Redirect | LookupType::Connect)),
        "{response:?}"
    );
    let url = response.broker_service_url.as_deref().unwrap_or("");
    assert!(url.starts_with("pulsar://"), "{response:?}");
}

/// A raw connection driven by `wire::encode_command` and `wire::decode`.
struct Raw {
    stream: TcpStream,
    read_buf: BytesMut,
}

impl Raw {
    async fn connect(addr: &str) -> Raw {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Raw {
            stream,
            read_buf: BytesMut::with_capacity(4096),
        }
    }

    async fn send(&mut self, command: &proto::BaseCommand) {
        let mut out = BytesMut::new();
        wire::encode_command(command, &mut out, DEFAULT_MAX_FRAME_SIZE).expect("encode");
        tokio::time::timeout(IO_TIMEOUT, self.stream.write_all(&out))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Reads until one whole frame is decoded.
    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(frame) =
                wire::decode(&mut self.read_buf, DEFAULT_MAX_FRAME_SIZE).expect("decode")
            {
                return frame;
            }
            let n = tokio::time::timeout(IO_TIMEOUT, self.stream.read_buf(&mut self.read_buf))
                .await
                .expect("no frame from the broker within the liveness timeout")
                .expect("read");
            assert!(n > 0, "the broker closed the connection");
        }
    }

    /// Reads until a frame that is not a broker PING (answered with PONG on the way).
    async fn recv_skipping_pings(&mut self) -> Frame {
        loop {
            let frame = self.recv().await;
            if frame.command_type() == Ok(Type::Ping) {
                self.send(&proto::BaseCommand {
                    r#type: Type::Pong as i32,
                    pong: Some(proto::CommandPong {}),
                    ..Default::default()
                })
                .await;
                continue;
            }
            return frame;
        }
    }
}

async fn handshake_raw(addr: &str) -> Raw {
    let mut conn = Raw::connect(addr).await;
    conn.send(&connect_command()).await;
    let connected = conn.recv().await;
    assert_connected(&connected);
    conn
}

#[tokio::test]
async fn connect_ping_lookup_with_free_functions() {
    let broker = support::broker();
    let mut conn = handshake_raw(broker.addr()).await;

    conn.send(&ping_command()).await;
    let pong = conn.recv_skipping_pings().await;
    assert_eq!(pong.command_type(), Ok(Type::Pong), "{pong:?}");

    let topic = support::unique_topic("handshake");
    conn.send(&lookup_command(&topic, 7)).await;
    let response = conn.recv_skipping_pings().await;
    assert_lookup_response(&response, 7);
}

#[tokio::test]
async fn connect_ping_lookup_with_framed_codec() {
    let broker = support::broker();
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(broker.addr()))
        .await
        .expect("connect timed out")
        .expect("connect");
    let mut framed = Framed::new(stream, PulsarCodec::default());

    async fn next(framed: &mut Framed<TcpStream, PulsarCodec>) -> Frame {
        loop {
            let frame = tokio::time::timeout(IO_TIMEOUT, framed.next())
                .await
                .expect("no frame from the broker within the liveness timeout")
                .expect("the broker closed the connection")
                .expect("a valid frame");
            if frame.command_type() == Ok(Type::Ping) {
                framed
                    .send(Frame::command(proto::BaseCommand {
                        r#type: Type::Pong as i32,
                        pong: Some(proto::CommandPong {}),
                        ..Default::default()
                    }))
                    .await
                    .expect("send PONG");
                continue;
            }
            return frame;
        }
    }

    framed
        .send(Frame::command(connect_command()))
        .await
        .expect("send CONNECT");
    let connected = next(&mut framed).await;
    assert_connected(&connected);
    if let Some(max) = connected
        .command
        .connected
        .as_ref()
        .and_then(|c| c.max_message_size)
    {
        let max = usize::try_from(max).expect("a positive max_message_size");
        framed
            .codec_mut()
            .set_max_frame_size(wire::max_frame_size_for(max));
    }

    framed
        .send(Frame::command(ping_command()))
        .await
        .expect("send PING");
    let pong = next(&mut framed).await;
    assert_eq!(pong.command_type(), Ok(Type::Pong), "{pong:?}");

    let topic = support::unique_topic("handshake-framed");
    framed
        .send(Frame::command(lookup_command(&topic, 42)))
        .await
        .expect("send LOOKUP");
    let response = next(&mut framed).await;
    assert_lookup_response(&response, 42);
}

/// The support module's kill -9 and restart of a private pulsar-lite: same port, same database,
/// and a connection made before the kill is closed by it.
#[tokio::test]
async fn private_broker_kill_and_restart() {
    // pulsar-lite-specific: it checks pulsar-lite's config file and log lines.
    let broker = support::Broker::start_local();
    let port = broker.port().expect("a local broker has a port");
    let dir = broker
        .dir()
        .expect("a local broker has a directory")
        .to_path_buf();
    assert!(broker.config_path().is_some_and(|p| p.is_file()));
    assert!(broker.url().ends_with(&format!(":{port}")));
    let mut before = handshake_raw(broker.addr()).await;

    broker.kill();
    assert!(!broker.is_running());
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(IO_TIMEOUT, before.stream.read(&mut rest))
        .await
        .expect("the killed broker's connection neither closed nor answered");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a connection to a killed broker must end, got {read:?}"
    );

    broker.restart();
    assert!(broker.is_running());
    assert_eq!(broker.port(), Some(port));
    let mut after = handshake_raw(broker.addr()).await;
    after.send(&ping_command()).await;
    let pong = after.recv_skipping_pings().await;
    assert_eq!(pong.command_type(), Ok(Type::Pong), "{pong:?}");
    assert!(
        broker.log_tail(200).matches("listening on").count() >= 2,
        "{}",
        broker.log_tail(40)
    );

    drop(broker);
    assert!(
        !dir.exists(),
        "dropping the broker removes {}",
        dir.display()
    );
}
