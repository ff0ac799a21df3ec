//! The wire layer: Pulsar frames, batches and message ids as bytes, with no socket and no runtime.
//!
//! Everything here is a pure function of its input, so tests, fuzzers and protocol tools can use
//! it alone:
//!
//! - [`frame`]: [`decode`]/[`encode_command`]/[`encode_payload_command`] of simple and payload
//!   frames, with the CRC32C check, the optional broker entry metadata block and a max frame size;
//! - [`batch`]: the batch payload format, built with [`encode_entry`] and read with [`parse_batch`];
//! - [`MessageId`]: the id model and its serialized protobuf form;
//! - [`codec`]: `tokio_util::codec` wrappers for `Framed` users;
//! - [`proto`]: the prost types generated from the vendored `PulsarApi.proto` (protocol v21).
//!
//! Bytes from the network are treated as hostile: every size is checked against the frame and
//! the max frame size before anything is allocated, a protobuf section whose decoded form could
//! outgrow the max frame size is refused before decoding, and every failure is a typed
//! [`FrameError`].
//!
//! ```
//! use bytes::BytesMut;
//! use pulsar_wire::wire::{self, proto, Frame, DEFAULT_MAX_FRAME_SIZE};
//!
//! let ping = proto::BaseCommand {
//!     r#type: proto::base_command::Type::Ping as i32,
//!     ping: Some(proto::CommandPing {}),
//!     ..Default::default()
//! };
//! let mut buf = BytesMut::new();
//! wire::encode_command(&ping, &mut buf, DEFAULT_MAX_FRAME_SIZE)?;
//! // total size 9, command size 5, then type = PING (field 1 = 18) and an empty `ping` (field 18).
//! assert_eq!(&buf[..], &[0, 0, 0, 9, 0, 0, 0, 5, 0x08, 0x12, 0x92, 0x01, 0x00]);
//!
//! // A whole frame is buffered: it decodes, and nothing is left.
//! let frame = wire::decode(&mut buf, DEFAULT_MAX_FRAME_SIZE)?;
//! assert_eq!(frame, Some(Frame::command(ping)));
//! assert!(buf.is_empty());
//! # Ok::<(), wire::FrameError>(())
//! ```

pub mod batch;
mod budget;
pub mod codec;
mod error;
pub mod frame;
mod message_id;

/// The prost types generated from `proto/PulsarApi.proto` (package `pulsar.proto`, v21), for raw
/// protocol users. The rest of the crate's public API speaks hand-written types.
///
/// In [`proto::BaseCommand`], the per-message commands (`send`, `send_receipt`, `message`, `ack`,
/// `flow`) and `ping`/`pong` are inline (`Option<CommandX>`); every other sub-command is boxed
/// (`Option<Box<CommandX>>`), which keeps `BaseCommand` small enough to move cheaply.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/pulsar.proto.rs"));
}

pub use batch::{encode_entry, parse_batch, BatchEntry, BatchIter};
pub use codec::{CodecError, PulsarCodec};
pub use error::{FrameError, Section};
pub use frame::{
    carries_payload, check, decode, decode_frame, encode_command, encode_payload_command,
    max_frame_size_for, Frame, Payload, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE,
    FRAME_PADDING, MAGIC_BROKER_ENTRY_METADATA, MAGIC_CRC32C,
};
pub use message_id::{ChunkStart, MessageId};
