//! Frame decode and encode: free functions over `bytes`, no I/O.
//!
//! ```text
//! simple:  [total size u32][command size u32][BaseCommand]
//! payload: [total size u32][command size u32][BaseCommand]
//!          ([0x0e02][entry metadata size u32][BrokerEntryMetadata])   optional, broker to client
//!          ([0x0e01][crc32c u32])                                      optional on receive
//!          [metadata size u32][MessageMetadata][payload ...]
//! ```
//!
//! All sizes are big-endian. `total size` counts every byte after itself. The CRC32C covers
//! everything from the metadata size field to the end of the frame. The encoder always writes the
//! checksum; the decoder verifies it when present and accepts a payload section without it (as
//! the official C++ and Java clients do), reporting that in [`Payload::checksum`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::budget;
use super::error::{FrameError, Section};
use super::proto::{base_command::Type, BaseCommand, BrokerEntryMetadata, MessageMetadata};

/// Magic number that starts the checksum block of a payload section.
pub const MAGIC_CRC32C: u16 = 0x0e01;
/// Magic number that starts the optional broker entry metadata block.
pub const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;
/// The default max message size of Pulsar brokers and clients: 5 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 * 1024 * 1024;
/// What a frame may add to the max message size (the official clients' frame padding): 10 KiB.
pub const FRAME_PADDING: usize = 10 * 1024;
/// The default max frame size: [`DEFAULT_MAX_MESSAGE_SIZE`] + [`FRAME_PADDING`].
pub const DEFAULT_MAX_FRAME_SIZE: usize = DEFAULT_MAX_MESSAGE_SIZE + FRAME_PADDING;

/// The max frame size that goes with a max message size (for example the broker's
/// `CommandConnected.max_message_size`).
pub fn max_frame_size_for(max_message_size: usize) -> usize {
    max_message_size.saturating_add(FRAME_PADDING)
}

/// One Pulsar frame: a command, and for SEND and MESSAGE its payload section.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The command.
    pub command: BaseCommand,
    /// The payload section, present exactly on SEND and MESSAGE frames.
    pub payload: Option<Payload>,
}

/// The payload section of a SEND or MESSAGE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The broker entry metadata block, when the broker exposes it (only on MESSAGE frames).
    pub broker_entry_metadata: Option<BrokerEntryMetadata>,
    /// The CRC32C the frame carried, already verified; `None` when the frame had no checksum
    /// block. The encoder ignores this field and always computes and writes a fresh checksum.
    pub checksum: Option<u32>,
    /// The message metadata.
    pub metadata: MessageMetadata,
    /// The payload: a slice of the read buffer, not a copy. For a batch, the concatenated entries
    /// (see [`super::batch`]); when `metadata.compression` is set, compressed.
    pub data: Bytes,
}

impl Frame {
    /// A frame with a command only.
    pub fn command(command: BaseCommand) -> Self {
        Frame {
            command,
            payload: None,
        }
    }

    /// The command type, or the raw number when this build does not know it.
    pub fn command_type(&self) -> Result<Type, i32> {
        Type::try_from(self.command.r#type).map_err(|_| self.command.r#type)
    }

    /// Appends this frame's bytes to `dst`; see [`encode`].
    pub fn encode(&self, dst: &mut BytesMut, max_frame_size: usize) -> Result<(), FrameError> {
        match &self.payload {
            None => encode_command(&self.command, dst, max_frame_size),
            Some(p) => encode_payload_command(
                &self.command,
                p.broker_entry_metadata.as_ref(),
                &p.metadata,
                &p.data,
                dst,
                max_frame_size,
            ),
        }
    }
}

/// Whether a command type carries a payload section.
pub fn carries_payload(command_type: i32) -> bool {
    command_type == Type::Send as i32 || command_type == Type::Message as i32
}

/// Checks the frame at the start of `src` without consuming anything.
///
/// `Ok(Some(n))`: a whole frame of `n` bytes (size field included) is buffered.
/// `Ok(None)`: more bytes are needed. A frame larger than `max_frame_size` is refused as soon as
/// its size field is read, before any byte of it is buffered or allocated for.
pub fn check(src: &[u8], max_frame_size: usize) -> Result<Option<usize>, FrameError> {
    let Some(size_field) = src.get(..4) else {
        return Ok(None);
    };
    let total = u32::from_be_bytes([size_field[0], size_field[1], size_field[2], size_field[3]]);
    let frame_len = 4 + u64::from(total);
    if frame_len > max_frame_size as u64 {
        return Err(FrameError::TooLarge {
            size: frame_len,
            max: max_frame_size,
        });
    }
    if total < 4 {
        return Err(FrameError::truncated(
            Section::CommandSize,
            4,
            total as usize,
        ));
    }
    let frame_len = frame_len as usize;
    Ok((src.len() >= frame_len).then_some(frame_len))
}

/// Decodes one frame from the front of `src`, consuming it.
///
/// `Ok(None)` means more bytes are needed: nothing is consumed and nothing is allocated (the
/// caller's read loop grows the buffer; [`check`] tells how large the frame is). After an error
/// the connection should be closed: its peer is broken or hostile. A frame whose size field was
/// acceptable has been consumed by then; one refused on its size field has not.
pub fn decode(src: &mut BytesMut, max_frame_size: usize) -> Result<Option<Frame>, FrameError> {
    match check(src, max_frame_size)? {
        None => Ok(None),
        Some(len) => decode_frame(src.split_to(len).freeze(), max_frame_size).map(Some),
    }
}

/// Decodes exactly one complete frame, size field included.
///
/// Protobuf sections are refused with [`FrameError::TooComplex`] when their decoded form could
/// exceed `max_frame_size` bytes of memory; the payload stays a slice of `frame`.
pub fn decode_frame(frame: Bytes, max_frame_size: usize) -> Result<Frame, FrameError> {
    if frame.len() as u64 > max_frame_size as u64 {
        return Err(FrameError::TooLarge {
            size: frame.len() as u64,
            max: max_frame_size,
        });
    }
    let mut r = Reader {
        bytes: frame,
        pos: 0,
    };
    let total = r.u32(Section::CommandSize)?;
    if u64::from(total) != (r.remaining() as u64) {
        return Err(FrameError::truncated(
            Section::CommandSize,
            u64::from(total),
            r.remaining(),
        ));
    }
    let command_size = r.u32(Section::CommandSize)?;
    if command_size == 0 {
        return Err(FrameError::EmptyCommand);
    }
    if command_size as usize > r.remaining() {
        return Err(FrameError::CommandSizeTooLarge {
            command_size,
            available: r.remaining(),
        });
    }
    let command_bytes = r.take(command_size as usize, Section::Command)?;
    budget::check(Section::Command, &command_bytes, max_frame_size)?;
    let command = BaseCommand::decode(command_bytes)
        .map_err(|e| FrameError::protobuf(Section::Command, e))?;

    let command_type = command.r#type;
    if r.remaining() == 0 {
        if carries_payload(command_type) {
            return Err(FrameError::MissingPayload { command_type });
        }
        return Ok(Frame::command(command));
    }
    if !carries_payload(command_type) {
        return Err(FrameError::UnexpectedPayload {
            command_type,
            extra: r.remaining(),
        });
    }
    let payload = decode_payload(&mut r, max_frame_size)?;
    Ok(Frame {
        command,
        payload: Some(payload),
    })
}

fn decode_payload(r: &mut Reader, max_frame_size: usize) -> Result<Payload, FrameError> {
    let mut broker_entry_metadata = None;
    if r.peek_u16() == Some(MAGIC_BROKER_ENTRY_METADATA) {
        r.pos += 2;
        let size = r.u32(Section::BrokerEntryMetadata)?;
        let bytes = r.take_sized(size, Section::BrokerEntryMetadata)?;
        budget::check(Section::BrokerEntryMetadata, &bytes, max_frame_size)?;
        broker_entry_metadata = Some(
            BrokerEntryMetadata::decode(bytes)
                .map_err(|e| FrameError::protobuf(Section::BrokerEntryMetadata, e))?,
        );
    }

    let mut checksum = None;
    match r.peek_u16() {
        Some(MAGIC_CRC32C) => {
            r.pos += 2;
            let expected = r.u32(Section::Checksum)?;
            let computed = crc32c::crc32c(r.rest());
            if computed != expected {
                return Err(FrameError::ChecksumMismatch { expected, computed });
            }
            checksum = Some(expected);
        }
        // A metadata size always fits in 24 bits (frames are far below 16 MiB), so a first byte
        // that is not zero and not a known magic is a corrupt or foreign payload section.
        Some(found) if found >> 8 != 0 => return Err(FrameError::BadMagic { found }),
        _ => {}
    }

    let metadata_size = r.u32(Section::MetadataSize)?;
    let metadata_bytes = r.take_sized(metadata_size, Section::Metadata)?;
    budget::check(Section::Metadata, &metadata_bytes, max_frame_size)?;
    let metadata = MessageMetadata::decode(metadata_bytes)
        .map_err(|e| FrameError::protobuf(Section::Metadata, e))?;
    let data = r.bytes.slice(r.pos..);
    Ok(Payload {
        broker_entry_metadata,
        checksum,
        metadata,
        data,
    })
}

/// Appends a simple frame (a command without payload) to `dst`.
///
/// Fails with [`FrameError::TooLarge`] if the frame would exceed `max_frame_size`; `dst` is then
/// left as it was.
pub fn encode_command(
    command: &BaseCommand,
    dst: &mut BytesMut,
    max_frame_size: usize,
) -> Result<(), FrameError> {
    let command_size = command.encoded_len();
    let frame_len = 8 + command_size as u64;
    if frame_len > max_frame_size as u64 {
        return Err(FrameError::TooLarge {
            size: frame_len,
            max: max_frame_size,
        });
    }
    dst.reserve(frame_len as usize);
    dst.put_u32((4 + command_size) as u32);
    dst.put_u32(command_size as u32);
    command.encode_raw(dst);
    Ok(())
}

/// Appends a payload frame (SEND, or MESSAGE from a scripted broker) to `dst`, with the checksum
/// block always written and the broker entry metadata block when given.
///
/// Fails with [`FrameError::TooLarge`] if the frame would exceed `max_frame_size`; `dst` is then
/// left as it was.
pub fn encode_payload_command(
    command: &BaseCommand,
    broker_entry_metadata: Option<&BrokerEntryMetadata>,
    metadata: &MessageMetadata,
    payload: &[u8],
    dst: &mut BytesMut,
    max_frame_size: usize,
) -> Result<(), FrameError> {
    let command_size = command.encoded_len();
    let entry_size = broker_entry_metadata.map(|m| m.encoded_len());
    let metadata_size = metadata.encoded_len();
    let total = 4
        + command_size as u64
        + entry_size.map_or(0, |s| 6 + s as u64)
        + 6
        + 4
        + metadata_size as u64
        + payload.len() as u64;
    let frame_len = 4 + total;
    if frame_len > max_frame_size as u64 || total > u64::from(u32::MAX) {
        return Err(FrameError::TooLarge {
            size: frame_len,
            max: max_frame_size,
        });
    }
    dst.reserve(frame_len as usize);
    dst.put_u32(total as u32);
    dst.put_u32(command_size as u32);
    command.encode_raw(dst);
    if let (Some(m), Some(size)) = (broker_entry_metadata, entry_size) {
        dst.put_u16(MAGIC_BROKER_ENTRY_METADATA);
        dst.put_u32(size as u32);
        m.encode_raw(dst);
    }
    dst.put_u16(MAGIC_CRC32C);
    let checksum_at = dst.len();
    dst.put_u32(0);
    let checked_from = dst.len();
    dst.put_u32(metadata_size as u32);
    metadata.encode_raw(dst);
    dst.put_slice(payload);
    let crc = crc32c::crc32c(&dst[checked_from..]);
    dst[checksum_at..checksum_at + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// A cursor over one frame that never reads past its end.
struct Reader {
    bytes: Bytes,
    pos: usize,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn rest(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    fn peek_u16(&self) -> Option<u16> {
        let b = self.bytes.get(self.pos..self.pos + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, section: Section) -> Result<u32, FrameError> {
        let mut b = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| FrameError::truncated(section, 4, self.remaining()))?;
        self.pos += 4;
        Ok(b.get_u32())
    }

    fn take(&mut self, len: usize, section: Section) -> Result<Bytes, FrameError> {
        if len > self.remaining() {
            return Err(FrameError::truncated(section, len as u64, self.remaining()));
        }
        let out = self.bytes.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    fn take_sized(&mut self, len: u32, section: Section) -> Result<Bytes, FrameError> {
        self.take(len as usize, section)
    }
}
