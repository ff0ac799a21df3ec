//! Thin `tokio_util::codec` wrappers over [`super::frame`], for users who drive a socket with
//! `Framed`. The client's own connection task uses the free functions directly.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::error::FrameError;
use super::frame::{self, Frame, DEFAULT_MAX_FRAME_SIZE};

/// What [`PulsarCodec`] fails with: a bad frame, or the socket under it.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid Pulsar frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading or writing the transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// A `Decoder`/`Encoder` of Pulsar [`Frame`]s with a max frame size that can change at run time
/// (set it from the broker's `max_message_size` with [`frame::max_frame_size_for`]).
#[derive(Debug, Clone)]
pub struct PulsarCodec {
    max_frame_size: usize,
}

impl Default for PulsarCodec {
    fn default() -> Self {
        PulsarCodec::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl PulsarCodec {
    /// A codec that refuses frames larger than `max_frame_size` bytes, both ways.
    pub fn new(max_frame_size: usize) -> Self {
        PulsarCodec { max_frame_size }
    }

    /// The max frame size in force.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Changes the max frame size; frames already buffered are checked against the new value.
    pub fn set_max_frame_size(&mut self, max_frame_size: usize) {
        self.max_frame_size = max_frame_size;
    }
}

impl Decoder for PulsarCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(frame::decode(src, self.max_frame_size)?)
    }
}

impl Encoder<&Frame> for PulsarCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.encode(dst, self.max_frame_size)?)
    }
}

impl Encoder<Frame> for PulsarCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(item.encode(dst, self.max_frame_size)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto::{base_command::Type, BaseCommand, CommandPing, MessageMetadata};
    use crate::wire::{FrameError, Payload};
    use bytes::Bytes;

    fn ping() -> Frame {
        Frame::command(BaseCommand {
            r#type: Type::Ping as i32,
            ping: Some(CommandPing {}),
            ..Default::default()
        })
    }

    /// A SEND frame whose encoded size is exactly `len` bytes (len >= 32).
    fn send_of_len(len: usize) -> Frame {
        // Around the payload: 8 (sizes) + 8 (command: type, and `send` holding its two required
        // ids, written even when 0) + 6 (checksum block) + 4 (metadata size) + 6 (metadata: the
        // three required fields, empty or 0) = 32 bytes.
        Frame {
            command: BaseCommand {
                r#type: Type::Send as i32,
                send: Some(Default::default()),
                ..Default::default()
            },
            payload: Some(Payload {
                broker_entry_metadata: None,
                checksum: None,
                metadata: MessageMetadata::default(),
                data: Bytes::from(vec![b'x'; len - 32]),
            }),
        }
    }

    fn encoded(frame: &Frame) -> BytesMut {
        let mut dst = BytesMut::new();
        let res = frame.encode(&mut dst, usize::MAX);
        assert_eq!(res, Ok(()));
        dst
    }

    #[test]
    fn sizes_of_the_test_frame() {
        assert_eq!(encoded(&send_of_len(32)).len(), 32);
        assert_eq!(encoded(&send_of_len(5000)).len(), 5000);
    }

    #[test]
    fn default_uses_the_default_max_frame_size() {
        assert_eq!(
            PulsarCodec::default().max_frame_size(),
            DEFAULT_MAX_FRAME_SIZE
        );
        assert_eq!(PulsarCodec::new(1234).max_frame_size(), 1234);
    }

    #[test]
    fn encodes_and_decodes_through_the_traits() {
        let mut codec = PulsarCodec::default();
        let mut buf = BytesMut::new();
        let send = send_of_len(100);
        assert!(Encoder::<&Frame>::encode(&mut codec, &send, &mut buf).is_ok());
        assert!(Encoder::<Frame>::encode(&mut codec, ping(), &mut buf).is_ok());
        assert_eq!(&buf[..100], &encoded(&send)[..]);
        let first = codec.decode(&mut buf);
        let Ok(Some(Frame {
            payload: Some(p), ..
        })) = &first
        else {
            panic!("{first:?}");
        };
        assert_eq!(p.data.len(), 68);
        assert!(p.checksum.is_some());
        assert!(matches!(codec.decode(&mut buf), Ok(Some(f)) if f == ping()));
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn decode_errors_are_frame_errors() {
        let mut codec = PulsarCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 4, 0, 0, 0, 0][..]);
        let res = codec.decode(&mut buf);
        assert!(
            matches!(res, Err(CodecError::Frame(FrameError::EmptyCommand))),
            "{res:?}"
        );
    }

    #[test]
    fn a_smaller_max_set_at_run_time_refuses_what_the_old_one_accepted() {
        let frame = send_of_len(5000);
        let bytes = encoded(&frame);
        let mut codec = PulsarCodec::new(8192);

        // Accepted under the old limit, both ways.
        let mut src = bytes.clone();
        assert!(matches!(codec.decode(&mut src), Ok(Some(_))));
        let mut dst = BytesMut::new();
        assert!(codec.encode(&frame, &mut dst).is_ok());
        assert_eq!(dst, bytes);

        codec.set_max_frame_size(4096);
        assert_eq!(codec.max_frame_size(), 4096);
        // Refused from its size field, already buffered or not.
        let mut src = bytes.clone();
        let res = codec.decode(&mut src);
        assert!(
            matches!(
                res,
                Err(CodecError::Frame(FrameError::TooLarge {
                    size: 5000,
                    max: 4096
                }))
            ),
            "{res:?}"
        );
        assert_eq!(src, bytes, "nothing consumed");
        let mut src = BytesMut::from(&bytes[..4]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(CodecError::Frame(FrameError::TooLarge { .. }))
        ));
        // And on encode, leaving the buffer alone.
        let mut dst = BytesMut::from(&b"keep"[..]);
        let res = codec.encode(&frame, &mut dst);
        assert!(
            matches!(
                res,
                Err(CodecError::Frame(FrameError::TooLarge {
                    size: 5000,
                    max: 4096
                }))
            ),
            "{res:?}"
        );
        assert_eq!(&dst[..], b"keep");

        // Raised again, the same frame passes.
        codec.set_max_frame_size(5000);
        let mut src = bytes.clone();
        assert!(matches!(codec.decode(&mut src), Ok(Some(f)) if f.payload.is_some()));
    }

    #[test]
    fn codec_error_display() {
        let err = CodecError::from(FrameError::EmptyCommand);
        assert_eq!(err.to_string(), FrameError::EmptyCommand.to_string());
        let err = CodecError::from(std::io::Error::other("reset"));
        assert_eq!(err.to_string(), "transport error: reset");
    }
}
