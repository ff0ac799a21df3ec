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
