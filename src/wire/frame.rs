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

    /// Appends this frame's bytes to `dst`; see [`encode_command`] and [`encode_payload_command`].
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
/// Protobuf sections are refused with [`FrameError::TooComplex`] when their decoded forms
/// together could exceed `max_frame_size` bytes of memory; the payload stays a slice of `frame`.
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
    let spent = budget::charge(Section::Command, &command_bytes, max_frame_size, 0)?;
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
    let payload = decode_payload(&mut r, max_frame_size, spent)?;
    Ok(Frame {
        command,
        payload: Some(payload),
    })
}

/// `spent`: the memory budget already charged for the command, which stays alive with the payload
/// section's protobufs.
fn decode_payload(
    r: &mut Reader,
    max_frame_size: usize,
    mut spent: u64,
) -> Result<Payload, FrameError> {
    let mut broker_entry_metadata = None;
    if r.peek_u16() == Some(MAGIC_BROKER_ENTRY_METADATA) {
        r.pos += 2;
        let size = r.u32(Section::BrokerEntryMetadata)?;
        let bytes = r.take_sized(size, Section::BrokerEntryMetadata)?;
        spent = budget::charge(Section::BrokerEntryMetadata, &bytes, max_frame_size, spent)?;
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
    budget::charge(Section::Metadata, &metadata_bytes, max_frame_size, spent)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto::{
        self, CommandAck, CommandConnect, CommandFlow, CommandMessage, CommandPing, CommandSend,
        KeyValue, MessageIdData, SingleMessageMetadata,
    };

    /// The max frame size most tests run with: small, so that limits are cheap to reach.
    const MAX: usize = 64 * 1024;

    /// Bitwise CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and xor-out all ones):
    /// an independent reference for the `crc32c` crate the code uses.
    fn reference_crc32c(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Appends a length-delimited field (wire type 2).
    fn ld(field: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// `[total size][command size][command]` followed by `rest` (a payload section or garbage).
    fn frame_bytes(command: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + command.len() + rest.len()) as u32).to_be_bytes());
        out.extend_from_slice(&(command.len() as u32).to_be_bytes());
        out.extend_from_slice(command);
        out.extend_from_slice(rest);
        out
    }

    fn dec(bytes: &[u8]) -> Result<Frame, FrameError> {
        decode_frame(Bytes::copy_from_slice(bytes), MAX)
    }

    fn enc(frame: &Frame) -> Vec<u8> {
        let mut dst = BytesMut::new();
        let res = frame.encode(&mut dst, MAX);
        assert_eq!(res, Ok(()));
        dst.to_vec()
    }

    // ---- golden frames, written out by hand from the protobuf wire format ----
    // A protobuf key is (field number << 3 | wire type) as a varint; wire type 0 is a varint,
    // 2 a length-delimited field (key, length varint, bytes).

    const PING: &[u8] = &[
        0, 0, 0, 9, // total size: 4 (command size field) + 5
        0, 0, 0, 5, // command size
        0x08, 0x12, // field 1 (type), varint: 18 = PING
        0x92, 0x01, 0x00, // field 18 (ping) = 146 = varint 0x92 0x01, length 0
    ];

    const CONNECT: &[u8] = &[
        0, 0, 0, 23, // total size: 4 + 19
        0, 0, 0, 19, // command size
        0x08, 0x02, // field 1 (type): 2 = CONNECT
        0x12, 15, // field 2 (connect), 15 bytes:
        0x0a, 11, // field 1 (client_version), 11 bytes
        b'p', b'u', b'l', b's', b'a', b'r', b'-', b'w', b'i', b'r', b'e', //
        0x20, 21, // field 4 (protocol_version), varint 21
    ];

    const FLOW: &[u8] = &[
        0, 0, 0, 13, // total size: 4 + 9
        0, 0, 0, 9, // command size
        0x08, 0x0b, // field 1 (type): 11 = FLOW
        0x5a, 5, // field 11 (flow) = 11 << 3 | 2 = 0x5a, 5 bytes:
        0x08, 7, // field 1 (consumer_id): 7
        0x10, 0xe8, 0x07, // field 2 (message_permits): 1000 = 0x68 | 0x80, 7
    ];

    /// The metadata shared by the payload frames: producer "p", sequence 2, published at 1000.
    const METADATA: &[u8] = &[
        0x0a, 1, b'p', // field 1 (producer_name): "p"
        0x10, 2, // field 2 (sequence_id): 2
        0x18, 0xe8, 0x07, // field 3 (publish_time): 1000
    ];

    /// CRC32C of `[0, 0, 0, 8] ++ METADATA ++ "hello"`, computed with a bitwise CRC32C in Python
    /// (and checked against [`reference_crc32c`] below).
    const SEND_CRC: u32 = 0x3434_f651;
    /// CRC32C of `[0, 0, 0, 8] ++ METADATA ++ "hi"`, computed the same way.
    const MESSAGE_CRC: u32 = 0xcd7e_5234;

    const SEND: &[u8] = &[
        0, 0, 0, 35, // total size: 4 + 8 (command) + 6 (checksum block) + 4 + 8 + 5
        0, 0, 0, 8, // command size
        0x08, 0x06, // field 1 (type): 6 = SEND
        0x32, 4, // field 6 (send), 4 bytes:
        0x08, 1, // field 1 (producer_id): 1
        0x10, 2, // field 2 (sequence_id): 2
        0x0e, 0x01, // magic 0x0e01: a checksum follows
        0x34, 0x34, 0xf6, 0x51, // SEND_CRC, big-endian
        0, 0, 0, 8, // metadata size
        0x0a, 1, b'p', 0x10, 2, 0x18, 0xe8, 0x07, // METADATA
        b'h', b'e', b'l', b'l', b'o', // payload
    ];

    /// A MESSAGE without the checksum block, as pulsar-lite and some proxies send it.
    const MESSAGE_NO_CHECKSUM: &[u8] = &[
        0, 0, 0, 30, // total size: 4 + 12 + 4 + 8 + 2
        0, 0, 0, 12, // command size
        0x08, 0x09, // field 1 (type): 9 = MESSAGE
        0x4a, 8, // field 9 (message), 8 bytes:
        0x08, 3, // field 1 (consumer_id): 3
        0x12, 4, // field 2 (message_id), 4 bytes:
        0x08, 10, // field 1 (ledger_id): 10
        0x10, 20, // field 2 (entry_id): 20
        0, 0, 0, 8, // metadata size (no magic: first byte 0)
        0x0a, 1, b'p', 0x10, 2, 0x18, 0xe8, 0x07, // METADATA
        b'h', b'i', // payload
    ];

    /// The same MESSAGE as the encoder writes it: with the checksum block.
    const MESSAGE_WITH_CHECKSUM: &[u8] = &[
        0, 0, 0, 36, // total size: 30 + 6
        0, 0, 0, 12, // command size
        0x08, 0x09, 0x4a, 8, 0x08, 3, 0x12, 4, 0x08, 10, 0x10, 20, // the same command
        0x0e, 0x01, // magic 0x0e01
        0xcd, 0x7e, 0x52, 0x34, // MESSAGE_CRC
        0, 0, 0, 8, // metadata size
        0x0a, 1, b'p', 0x10, 2, 0x18, 0xe8, 0x07, // METADATA
        b'h', b'i', // payload
    ];

    /// A MESSAGE with the broker entry metadata block, then the checksum block.
    const MESSAGE_WITH_ENTRY_METADATA: &[u8] = &[
        0, 0, 0, 47, // total size: 4 + 12 + 11 + 6 + 4 + 8 + 2
        0, 0, 0, 12, // command size
        0x08, 0x09, 0x4a, 8, 0x08, 3, 0x12, 4, 0x08, 10, 0x10, 20, // the same command
        0x0e, 0x02, // magic 0x0e02: broker entry metadata follows
        0, 0, 0, 5, // its size
        0x08, 0xe8, 0x07, // field 1 (broker_timestamp): 1000
        0x10, 5, // field 2 (index): 5
        0x0e, 0x01, // magic 0x0e01
        0xcd, 0x7e, 0x52, 0x34, // MESSAGE_CRC: the broker entry metadata is not covered
        0, 0, 0, 8, // metadata size
        0x0a, 1, b'p', 0x10, 2, 0x18, 0xe8, 0x07, // METADATA
        b'h', b'i', // payload
    ];

    fn ping() -> BaseCommand {
        BaseCommand {
            r#type: Type::Ping as i32,
            ping: Some(CommandPing {}),
            ..Default::default()
        }
    }

    fn send_command() -> BaseCommand {
        BaseCommand {
            r#type: Type::Send as i32,
            send: Some(CommandSend {
                producer_id: 1,
                sequence_id: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn message_command() -> BaseCommand {
        BaseCommand {
            r#type: Type::Message as i32,
            message: Some(CommandMessage {
                consumer_id: 3,
                message_id: MessageIdData {
                    ledger_id: 10,
                    entry_id: 20,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn metadata() -> MessageMetadata {
        MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 2,
            publish_time: 1000,
            ..Default::default()
        }
    }

    fn entry_metadata() -> BrokerEntryMetadata {
        BrokerEntryMetadata {
            broker_timestamp: Some(1000),
            index: Some(5),
        }
    }

    fn payload_frame(
        command: BaseCommand,
        broker_entry_metadata: Option<BrokerEntryMetadata>,
        checksum: Option<u32>,
        data: &'static [u8],
    ) -> Frame {
        Frame {
            command,
            payload: Some(Payload {
                broker_entry_metadata,
                checksum,
                metadata: metadata(),
                data: Bytes::from_static(data),
            }),
        }
    }

    #[test]
    fn reference_crc32c_gives_the_standard_check_value() {
        // The CRC-32C catalogue check value.
        assert_eq!(reference_crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn golden_crc_constants_match_the_reference() {
        let mut send = vec![0, 0, 0, 8];
        send.extend_from_slice(METADATA);
        send.extend_from_slice(b"hello");
        assert_eq!(reference_crc32c(&send), SEND_CRC);
        let mut message = vec![0, 0, 0, 8];
        message.extend_from_slice(METADATA);
        message.extend_from_slice(b"hi");
        assert_eq!(reference_crc32c(&message), MESSAGE_CRC);
        // The checksum covers the bytes after the checksum field up to the end of the frame.
        assert_eq!(reference_crc32c(&SEND[22..]), SEND_CRC);
        assert_eq!(
            reference_crc32c(&MESSAGE_WITH_ENTRY_METADATA[37..]),
            MESSAGE_CRC
        );
    }

    #[test]
    fn golden_ping() {
        assert_eq!(dec(PING), Ok(Frame::command(ping())));
        assert_eq!(enc(&Frame::command(ping())), PING);
    }

    #[test]
    fn golden_connect() {
        let connect = BaseCommand {
            r#type: Type::Connect as i32,
            connect: Some(Box::new(CommandConnect {
                client_version: "pulsar-wire".into(),
                protocol_version: Some(21),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(dec(CONNECT), Ok(Frame::command(connect.clone())));
        assert_eq!(enc(&Frame::command(connect)), CONNECT);
    }

    #[test]
    fn golden_flow() {
        let flow = BaseCommand {
            r#type: Type::Flow as i32,
            flow: Some(CommandFlow {
                consumer_id: 7,
                message_permits: 1000,
            }),
            ..Default::default()
        };
        assert_eq!(dec(FLOW), Ok(Frame::command(flow.clone())));
        assert_eq!(enc(&Frame::command(flow)), FLOW);
    }

    #[test]
    fn golden_send_with_checksum() {
        let expected = payload_frame(send_command(), None, Some(SEND_CRC), b"hello");
        assert_eq!(dec(SEND), Ok(expected.clone()));
        assert_eq!(enc(&expected), SEND);
        // The encoder ignores `checksum` and computes it.
        let without = payload_frame(send_command(), None, None, b"hello");
        assert_eq!(enc(&without), SEND);
        let mut dst = BytesMut::new();
        let res =
            encode_payload_command(&send_command(), None, &metadata(), b"hello", &mut dst, MAX);
        assert_eq!(res, Ok(()));
        assert_eq!(&dst[..], SEND);
    }

    #[test]
    fn golden_message_without_checksum() {
        let expected = payload_frame(message_command(), None, None, b"hi");
        assert_eq!(dec(MESSAGE_NO_CHECKSUM), Ok(expected.clone()));
        // The encoder always writes the checksum block.
        assert_eq!(enc(&expected), MESSAGE_WITH_CHECKSUM);
        let expected = payload_frame(message_command(), None, Some(MESSAGE_CRC), b"hi");
        assert_eq!(dec(MESSAGE_WITH_CHECKSUM), Ok(expected));
    }

    #[test]
    fn golden_message_with_broker_entry_metadata_then_checksum() {
        let expected = payload_frame(
            message_command(),
            Some(entry_metadata()),
            Some(MESSAGE_CRC),
            b"hi",
        );
        assert_eq!(dec(MESSAGE_WITH_ENTRY_METADATA), Ok(expected.clone()));
        assert_eq!(enc(&expected), MESSAGE_WITH_ENTRY_METADATA);
    }

    #[test]
    fn broker_entry_metadata_without_checksum_is_accepted() {
        // MESSAGE_WITH_ENTRY_METADATA without its checksum block (bytes 31..37).
        let mut bytes = MESSAGE_WITH_ENTRY_METADATA[..31].to_vec();
        bytes.extend_from_slice(&MESSAGE_WITH_ENTRY_METADATA[37..]);
        bytes[3] -= 6;
        let expected = payload_frame(message_command(), Some(entry_metadata()), None, b"hi");
        assert_eq!(dec(&bytes), Ok(expected));
    }

    /// A command of (nearly) every type, with typical fields set.
    fn sample_commands() -> Vec<BaseCommand> {
        let id = |ledger, entry| MessageIdData {
            ledger_id: ledger,
            entry_id: entry,
            ..Default::default()
        };
        let base = |t: Type| BaseCommand {
            r#type: t as i32,
            ..Default::default()
        };
        vec![
            ping(),
            BaseCommand {
                pong: Some(proto::CommandPong {}),
                ..base(Type::Pong)
            },
            BaseCommand {
                connect: Some(Box::new(CommandConnect {
                    client_version: "pulsar-wire 0.1".into(),
                    auth_method_name: Some("token".into()),
                    auth_data: Some(Bytes::from_static(b"secret")),
                    protocol_version: Some(21),
                    ..Default::default()
                })),
                ..base(Type::Connect)
            },
            BaseCommand {
                connected: Some(Box::new(proto::CommandConnected {
                    server_version: "Pulsar Server 4.0".into(),
                    protocol_version: Some(21),
                    max_message_size: Some(5 * 1024 * 1024),
                    ..Default::default()
                })),
                ..base(Type::Connected)
            },
            BaseCommand {
                subscribe: Some(Box::new(proto::CommandSubscribe {
                    topic: "persistent://public/default/t".into(),
                    subscription: "sub".into(),
                    sub_type: proto::command_subscribe::SubType::Shared as i32,
                    consumer_id: 1,
                    request_id: 2,
                    consumer_name: Some("c".into()),
                    metadata: vec![KeyValue {
                        key: "k".into(),
                        value: "v".into(),
                    }],
                    start_message_id: Some(id(u64::MAX, u64::MAX)),
                    ..Default::default()
                })),
                ..base(Type::Subscribe)
            },
            BaseCommand {
                producer: Some(Box::new(proto::CommandProducer {
                    topic: "t".into(),
                    producer_id: 4,
                    request_id: 5,
                    producer_name: Some("p".into()),
                    ..Default::default()
                })),
                ..base(Type::Producer)
            },
            BaseCommand {
                send_receipt: Some(proto::CommandSendReceipt {
                    producer_id: 1,
                    sequence_id: 2,
                    message_id: Some(id(3, 4)),
                    highest_sequence_id: Some(2),
                }),
                ..base(Type::SendReceipt)
            },
            BaseCommand {
                send_error: Some(Box::new(proto::CommandSendError {
                    producer_id: 1,
                    sequence_id: 2,
                    error: proto::ServerError::ChecksumError as i32,
                    message: "bad checksum".into(),
                })),
                ..base(Type::SendError)
            },
            BaseCommand {
                ack: Some(CommandAck {
                    consumer_id: 1,
                    ack_type: proto::command_ack::AckType::Individual as i32,
                    message_id: vec![
                        MessageIdData {
                            ack_set: vec![-1, 0x7fff, i64::MIN],
                            batch_size: Some(10),
                            ..id(1, 2)
                        },
                        id(3, 4),
                    ],
                    request_id: Some(9),
                    ..Default::default()
                }),
                ..base(Type::Ack)
            },
            BaseCommand {
                flow: Some(CommandFlow {
                    consumer_id: 1,
                    message_permits: u32::MAX,
                }),
                ..base(Type::Flow)
            },
            BaseCommand {
                unsubscribe: Some(Box::new(proto::CommandUnsubscribe {
                    consumer_id: 1,
                    request_id: 2,
                    force: Some(true),
                })),
                ..base(Type::Unsubscribe)
            },
            BaseCommand {
                success: Some(Box::new(proto::CommandSuccess {
                    request_id: 2,
                    schema: None,
                })),
                ..base(Type::Success)
            },
            BaseCommand {
                error: Some(Box::new(proto::CommandError {
                    request_id: 2,
                    error: proto::ServerError::TopicNotFound as i32,
                    message: "no such topic".into(),
                })),
                ..base(Type::Error)
            },
            BaseCommand {
                close_producer: Some(Box::new(proto::CommandCloseProducer {
                    producer_id: 1,
                    request_id: 2,
                    ..Default::default()
                })),
                ..base(Type::CloseProducer)
            },
            BaseCommand {
                close_consumer: Some(Box::new(proto::CommandCloseConsumer {
                    consumer_id: 1,
                    request_id: 2,
                    assigned_broker_service_url: Some("pulsar://b:6650".into()),
                    ..Default::default()
                })),
                ..base(Type::CloseConsumer)
            },
            BaseCommand {
                producer_success: Some(Box::new(proto::CommandProducerSuccess {
                    request_id: 5,
                    producer_name: "standalone-0-1".into(),
                    last_sequence_id: Some(-1),
                    ..Default::default()
                })),
                ..base(Type::ProducerSuccess)
            },
            BaseCommand {
                redeliver_unacknowledged_messages: Some(Box::new(
                    proto::CommandRedeliverUnacknowledgedMessages {
                        consumer_id: 1,
                        message_ids: vec![id(1, 2), id(1, 3)],
                        consumer_epoch: Some(0),
                    },
                )),
                ..base(Type::RedeliverUnacknowledgedMessages)
            },
            BaseCommand {
                lookup_topic: Some(Box::new(proto::CommandLookupTopic {
                    topic: "t".into(),
                    request_id: 7,
                    authoritative: Some(false),
                    ..Default::default()
                })),
                ..base(Type::Lookup)
            },
            BaseCommand {
                lookup_topic_response: Some(Box::new(proto::CommandLookupTopicResponse {
                    broker_service_url: Some("pulsar://localhost:6650".into()),
                    response: Some(
                        proto::command_lookup_topic_response::LookupType::Connect as i32,
                    ),
                    request_id: 7,
                    authoritative: Some(true),
                    ..Default::default()
                })),
                ..base(Type::LookupResponse)
            },
            BaseCommand {
                seek: Some(Box::new(proto::CommandSeek {
                    consumer_id: 1,
                    request_id: 2,
                    message_id: Some(id(0, 0)),
                    message_publish_time: None,
                })),
                ..base(Type::Seek)
            },
            BaseCommand {
                get_last_message_id_response: Some(Box::new(
                    proto::CommandGetLastMessageIdResponse {
                        last_message_id: id(5, 6),
                        request_id: 3,
                        consumer_mark_delete_position: Some(id(5, 5)),
                    },
                )),
                ..base(Type::GetLastMessageIdResponse)
            },
            BaseCommand {
                active_consumer_change: Some(Box::new(proto::CommandActiveConsumerChange {
                    consumer_id: 1,
                    is_active: Some(true),
                })),
                ..base(Type::ActiveConsumerChange)
            },
            BaseCommand {
                get_topics_of_namespace_response: Some(Box::new(
                    proto::CommandGetTopicsOfNamespaceResponse {
                        request_id: 1,
                        topics: vec!["a".into(), "b".into()],
                        ..Default::default()
                    },
                )),
                ..base(Type::GetTopicsOfNamespaceResponse)
            },
            BaseCommand {
                consumer_stats_response: Some(Box::new(proto::CommandConsumerStatsResponse {
                    request_id: 1,
                    msg_rate_out: Some(1.5),
                    ..Default::default()
                })),
                ..base(Type::ConsumerStatsResponse)
            },
            // A type this build may not know, with nothing else: still a valid simple frame.
            BaseCommand {
                r#type: 99,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn every_simple_command_round_trips() {
        let commands = sample_commands();
        assert!(commands.len() >= 25);
        for command in commands {
            let frame = Frame::command(command);
            let bytes = enc(&frame);
            assert_eq!(dec(&bytes), Ok(frame.clone()));
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(decode(&mut buf, MAX), Ok(Some(frame)));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn every_payload_frame_kind_round_trips() {
        let mut batch = BytesMut::new();
        for (i, body) in [&b"one"[..], b"", b"three"].into_iter().enumerate() {
            let mut single = SingleMessageMetadata {
                sequence_id: Some(i as u64),
                ..Default::default()
            };
            crate::wire::encode_entry(&mut single, body, &mut batch);
        }
        let batch = batch.freeze();
        let batch_metadata = MessageMetadata {
            num_messages_in_batch: Some(3),
            properties: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
            }],
            ..metadata()
        };
        let cases = [
            (
                send_command(),
                None,
                metadata(),
                Bytes::from_static(b"hello"),
            ),
            (send_command(), None, metadata(), Bytes::new()),
            (send_command(), None, batch_metadata.clone(), batch.clone()),
            (
                message_command(),
                None,
                metadata(),
                Bytes::from_static(b"hi"),
            ),
            (
                message_command(),
                Some(entry_metadata()),
                batch_metadata,
                batch,
            ),
            (
                message_command(),
                Some(BrokerEntryMetadata::default()),
                metadata(),
                Bytes::from(vec![0u8; 1000]),
            ),
        ];
        for (command, entry, metadata, data) in cases {
            let frame = Frame {
                command,
                payload: Some(Payload {
                    broker_entry_metadata: entry,
                    checksum: None,
                    metadata,
                    data,
                }),
            };
            let bytes = enc(&frame);
            let decoded = dec(&bytes);
            let Ok(decoded) = decoded else {
                panic!("{decoded:?}");
            };
            let Some(payload) = &decoded.payload else {
                panic!("no payload in {decoded:?}");
            };
            // The checksum is the one the encoder wrote, over everything after it.
            let crc_at = bytes.len() - 4 - payload.metadata.encoded_len() - payload.data.len();
            assert_eq!(
                payload.checksum,
                Some(reference_crc32c(&bytes[crc_at..])),
                "{frame:?}"
            );
            let mut expected = frame;
            if let Some(p) = expected.payload.as_mut() {
                p.checksum = payload.checksum;
            }
            assert_eq!(decoded, expected);
        }
    }

    // ---- errors, reached through the public functions ----

    #[test]
    fn too_large_is_refused_from_the_size_field_before_buffering() {
        // Only the size field has arrived; it announces 4 + 65533 bytes = MAX + 1.
        let mut src = BytesMut::with_capacity(4);
        src.extend_from_slice(&((MAX - 3) as u32).to_be_bytes());
        let capacity = src.capacity();
        let err = FrameError::TooLarge {
            size: MAX as u64 + 1,
            max: MAX,
        };
        assert_eq!(decode(&mut src, MAX), Err(err.clone()));
        assert_eq!(check(&src, MAX), Err(err));
        // Nothing consumed, nothing reserved.
        assert_eq!(&src[..], &((MAX - 3) as u32).to_be_bytes());
        assert_eq!(src.capacity(), capacity);
        // One byte less is acceptable: more bytes are needed.
        let mut src = BytesMut::from(&((MAX - 4) as u32).to_be_bytes()[..]);
        assert_eq!(decode(&mut src, MAX), Ok(None));
        assert_eq!(src.len(), 4);
        // The largest size field of all.
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decode(&mut src, MAX),
            Err(FrameError::TooLarge {
                size: 4 + u64::from(u32::MAX),
                max: MAX
            })
        );
    }

    #[test]
    fn too_large_is_refused_by_decode_frame() {
        let bytes = Bytes::from(vec![0u8; MAX + 1]);
        assert_eq!(
            decode_frame(bytes, MAX),
            Err(FrameError::TooLarge {
                size: MAX as u64 + 1,
                max: MAX
            })
        );
        // A frame of exactly the max is decoded, one byte over is not.
        let data = vec![b'x'; MAX - SEND.len() + 5];
        let mut exact = BytesMut::new();
        let res =
            encode_payload_command(&send_command(), None, &metadata(), &data, &mut exact, MAX);
        assert_eq!(res, Ok(()));
        assert_eq!(exact.len(), MAX);
        let exact = exact.freeze();
        let res = decode_frame(exact.clone(), MAX);
        assert!(matches!(&res, Ok(Frame { payload: Some(p), .. }) if p.data.len() == data.len()));
        assert_eq!(
            decode_frame(exact, MAX - 1),
            Err(FrameError::TooLarge {
                size: MAX as u64,
                max: MAX - 1
            })
        );
    }

    #[test]
    fn too_large_on_encode_leaves_dst_unchanged() {
        let big = BaseCommand {
            r#type: Type::Connect as i32,
            connect: Some(Box::new(CommandConnect {
                client_version: "x".repeat(MAX),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut dst = BytesMut::from(&b"keep"[..]);
        let res = encode_command(&big, &mut dst, MAX);
        assert!(
            matches!(res, Err(FrameError::TooLarge { size, max: MAX }) if size > MAX as u64),
            "{res:?}"
        );
        assert_eq!(&dst[..], b"keep");

        let payload = vec![7u8; MAX];
        let res = encode_payload_command(
            &send_command(),
            Some(&entry_metadata()),
            &metadata(),
            &payload,
            &mut dst,
            MAX,
        );
        assert!(
            matches!(res, Err(FrameError::TooLarge { size, max: MAX }) if size > MAX as u64),
            "{res:?}"
        );
        assert_eq!(&dst[..], b"keep");

        // The boundary: a frame of exactly the max is written, one byte more is not.
        let res = encode_payload_command(
            &send_command(),
            None,
            &metadata(),
            b"hello",
            &mut dst,
            SEND.len(),
        );
        assert_eq!(res, Ok(()));
        assert_eq!(&dst[4..], SEND);
        let mut dst = BytesMut::new();
        let res = encode_payload_command(
            &send_command(),
            None,
            &metadata(),
            b"hello",
            &mut dst,
            SEND.len() - 1,
        );
        assert_eq!(
            res,
            Err(FrameError::TooLarge {
                size: SEND.len() as u64,
                max: SEND.len() - 1
            })
        );
        assert!(dst.is_empty());
        assert_eq!(
            encode_command(&ping(), &mut dst, PING.len() - 1),
            Err(FrameError::TooLarge { size: 13, max: 12 })
        );
        assert!(dst.is_empty());
    }

    #[test]
    fn truncated_command_size() {
        // A total size under 4 cannot even hold the command size field.
        let mut src = BytesMut::from(&[0, 0, 0, 3, 0, 0, 0][..]);
        let err = FrameError::Truncated {
            section: Section::CommandSize,
            needed: 4,
            available: 3,
        };
        assert_eq!(decode(&mut src, MAX), Err(err.clone()));
        assert_eq!(dec(&[0, 0, 0, 3, 0, 0, 0]), Err(err));
        // decode_frame given fewer than 4 bytes.
        assert_eq!(
            dec(&[0, 0]),
            Err(FrameError::Truncated {
                section: Section::CommandSize,
                needed: 4,
                available: 2
            })
        );
        // decode_frame given a frame shorter than its size field says.
        assert_eq!(
            dec(&PING[..12]),
            Err(FrameError::Truncated {
                section: Section::CommandSize,
                needed: 9,
                available: 8
            })
        );
        // ... or longer.
        let mut long = PING.to_vec();
        long.push(0);
        assert_eq!(
            dec(&long),
            Err(FrameError::Truncated {
                section: Section::CommandSize,
                needed: 9,
                available: 10
            })
        );
        // A total size of 4 to 7 holds a partial command size field.
        assert_eq!(
            dec(&[0, 0, 0, 2, 0, 0]),
            Err(FrameError::Truncated {
                section: Section::CommandSize,
                needed: 4,
                available: 2
            })
        );
    }

    /// SEND's command (8 bytes) followed by the payload section `rest`.
    fn send_with(rest: &[u8]) -> Vec<u8> {
        frame_bytes(&SEND[8..16], rest)
    }

    #[test]
    fn truncated_broker_entry_metadata() {
        // The size field is cut short.
        assert_eq!(
            dec(&send_with(&[0x0e, 0x02, 0, 0])),
            Err(FrameError::Truncated {
                section: Section::BrokerEntryMetadata,
                needed: 4,
                available: 2
            })
        );
        // The size points past the end.
        assert_eq!(
            dec(&send_with(&[0x0e, 0x02, 0, 0, 0, 100, 0x08, 1])),
            Err(FrameError::Truncated {
                section: Section::BrokerEntryMetadata,
                needed: 100,
                available: 2
            })
        );
        assert_eq!(
            dec(&send_with(&[0x0e, 0x02, 0xff, 0xff, 0xff, 0xff])),
            Err(FrameError::Truncated {
                section: Section::BrokerEntryMetadata,
                needed: u64::from(u32::MAX),
                available: 0
            })
        );
    }

    #[test]
    fn truncated_checksum() {
        assert_eq!(
            dec(&send_with(&[0x0e, 0x01, 0, 0, 0])),
            Err(FrameError::Truncated {
                section: Section::Checksum,
                needed: 4,
                available: 3
            })
        );
        // After a broker entry metadata block.
        assert_eq!(
            dec(&send_with(&[0x0e, 0x02, 0, 0, 0, 0, 0x0e, 0x01, 0])),
            Err(FrameError::Truncated {
                section: Section::Checksum,
                needed: 4,
                available: 1
            })
        );
    }

    #[test]
    fn truncated_metadata_size() {
        // One byte of payload section: neither a magic nor a size.
        assert_eq!(
            dec(&send_with(&[0])),
            Err(FrameError::Truncated {
                section: Section::MetadataSize,
                needed: 4,
                available: 1
            })
        );
        assert_eq!(
            dec(&send_with(&[0, 0, 0])),
            Err(FrameError::Truncated {
                section: Section::MetadataSize,
                needed: 4,
                available: 3
            })
        );
        // After a valid checksum over the 2 bytes that follow it.
        let crc = reference_crc32c(&[0, 0]);
        let mut rest = vec![0x0e, 0x01];
        rest.extend_from_slice(&crc.to_be_bytes());
        rest.extend_from_slice(&[0, 0]);
        assert_eq!(
            dec(&send_with(&rest)),
            Err(FrameError::Truncated {
                section: Section::MetadataSize,
                needed: 4,
                available: 2
            })
        );
        // After the checksum block, nothing at all.
        let mut rest = vec![0x0e, 0x01];
        rest.extend_from_slice(&reference_crc32c(&[]).to_be_bytes());
        assert_eq!(
            dec(&send_with(&rest)),
            Err(FrameError::Truncated {
                section: Section::MetadataSize,
                needed: 4,
                available: 0
            })
        );
    }

    #[test]
    fn truncated_metadata() {
        // The metadata size says 50, 8 bytes follow.
        let mut rest = vec![0, 0, 0, 50];
        rest.extend_from_slice(METADATA);
        assert_eq!(
            dec(&send_with(&rest)),
            Err(FrameError::Truncated {
                section: Section::Metadata,
                needed: 50,
                available: 8
            })
        );
    }

    #[test]
    fn command_size_too_large() {
        // The total size leaves 4 bytes after the command size field, which says 5.
        assert_eq!(
            dec(&[0, 0, 0, 8, 0, 0, 0, 5, 0x08, 0x12, 0x92, 0x01]),
            Err(FrameError::CommandSizeTooLarge {
                command_size: 5,
                available: 4
            })
        );
        let mut src = BytesMut::from(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decode(&mut src, MAX),
            Err(FrameError::CommandSizeTooLarge {
                command_size: u32::MAX,
                available: 0
            })
        );
    }

    #[test]
    fn empty_command() {
        assert_eq!(
            dec(&[0, 0, 0, 4, 0, 0, 0, 0]),
            Err(FrameError::EmptyCommand)
        );
        assert_eq!(
            dec(&[0, 0, 0, 6, 0, 0, 0, 0, 1, 2]),
            Err(FrameError::EmptyCommand)
        );
    }

    #[test]
    fn bad_magic() {
        assert_eq!(
            dec(&send_with(&[0x0e, 0x03, 0, 0, 0, 0])),
            Err(FrameError::BadMagic { found: 0x0e03 })
        );
        assert_eq!(
            dec(&send_with(&[0xff, 0xff, 0, 0, 0, 0])),
            Err(FrameError::BadMagic { found: 0xffff })
        );
        // A second broker entry metadata block where the checksum or metadata should be.
        assert_eq!(
            dec(&send_with(&[
                0x0e, 0x02, 0, 0, 0, 0, 0x0e, 0x02, 0, 0, 0, 0
            ])),
            Err(FrameError::BadMagic { found: 0x0e02 })
        );
    }

    #[test]
    fn checksum_mismatch() {
        let mut bytes = SEND.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // "hellp"
        assert_eq!(
            dec(&bytes),
            Err(FrameError::ChecksumMismatch {
                expected: SEND_CRC,
                computed: reference_crc32c(&bytes[22..]),
            })
        );
        // A corrupt checksum field.
        let mut bytes = MESSAGE_WITH_ENTRY_METADATA.to_vec();
        assert_eq!(&bytes[31..33], &[0x0e, 0x01]);
        bytes[34] ^= 0x80;
        assert_eq!(
            dec(&bytes),
            Err(FrameError::ChecksumMismatch {
                expected: MESSAGE_CRC ^ 0x0080_0000,
                computed: MESSAGE_CRC,
            })
        );
    }

    fn protobuf_section(res: Result<Frame, FrameError>) -> Option<Section> {
        match res {
            Err(FrameError::Protobuf { section, reason }) => {
                assert!(!reason.is_empty());
                Some(section)
            }
            _ => None,
        }
    }

    #[test]
    fn protobuf_errors_name_their_section() {
        // Command: a varint cut short.
        assert_eq!(
            protobuf_section(dec(&frame_bytes(&[0x08, 0x80], &[]))),
            Some(Section::Command)
        );
        // Command: field number 0.
        assert_eq!(
            protobuf_section(dec(&frame_bytes(&[0x08, 0x12, 0x00], &[]))),
            Some(Section::Command)
        );
        // Command: `flow` with the wrong wire type (varint instead of a message).
        assert_eq!(
            protobuf_section(dec(&frame_bytes(&[0x08, 0x0b, 0x58, 0x01], &[]))),
            Some(Section::Command)
        );
        // Metadata: a string of 5 bytes with 1 present.
        assert_eq!(
            protobuf_section(dec(&send_with(&[0, 0, 0, 3, 0x0a, 0x05, b'p']))),
            Some(Section::Metadata)
        );
        // Metadata: invalid UTF-8 in producer_name.
        assert_eq!(
            protobuf_section(dec(&send_with(&[0, 0, 0, 3, 0x0a, 0x01, 0xff]))),
            Some(Section::Metadata)
        );
        // Broker entry metadata: a varint cut short.
        assert_eq!(
            protobuf_section(dec(&send_with(&[0x0e, 0x02, 0, 0, 0, 1, 0x08, 0, 0, 0, 0]))),
            Some(Section::BrokerEntryMetadata)
        );
    }

    /// A CommandAck (field 10 of BaseCommand) holding `n` empty message ids.
    fn ack_of_empty_ids(n: usize) -> Vec<u8> {
        let mut ack = vec![0x08, 0x01, 0x10, 0x00];
        for _ in 0..n {
            ack.extend_from_slice(&[0x1a, 0x00]);
        }
        let mut command = vec![0x08, 0x0a];
        ld(10, &ack, &mut command);
        command
    }

    #[test]
    fn too_complex_command() {
        // 30k message ids of 2 bytes each: 60 kB of frame, megabytes of MessageIdData.
        let bytes = frame_bytes(&ack_of_empty_ids(30_000), &[]);
        assert!(bytes.len() <= MAX);
        let res = dec(&bytes);
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex { section: Section::Command, estimate, budget: MAX })
                    if estimate > MAX as u64
            ),
            "{res:?}"
        );
        // A handful of them decode.
        let res = dec(&frame_bytes(&ack_of_empty_ids(10), &[]));
        assert!(
            matches!(&res, Ok(f) if f.command.ack.as_ref().map(|a| a.message_id.len()) == Some(10)),
            "{res:?}"
        );
    }

    #[test]
    fn too_complex_metadata() {
        // 30k empty properties (field 4, length 0).
        let mut meta = METADATA.to_vec();
        for _ in 0..30_000 {
            meta.extend_from_slice(&[0x22, 0x00]);
        }
        let mut rest = (meta.len() as u32).to_be_bytes().to_vec();
        rest.extend_from_slice(&meta);
        let res = dec(&send_with(&rest));
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex {
                    section: Section::Metadata,
                    budget: MAX,
                    ..
                })
            ),
            "{res:?}"
        );
    }

    #[test]
    fn too_complex_broker_entry_metadata() {
        // 30k occurrences of an unknown varint field: the estimate charges every field.
        let mut entry = Vec::new();
        for _ in 0..30_000 {
            entry.extend_from_slice(&[0x18, 0x00]);
        }
        let mut rest = vec![0x0e, 0x02];
        rest.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        rest.extend_from_slice(&entry);
        rest.extend_from_slice(&[0, 0, 0, 8]);
        rest.extend_from_slice(METADATA);
        let res = dec(&send_with(&rest));
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex {
                    section: Section::BrokerEntryMetadata,
                    budget: MAX,
                    ..
                })
            ),
            "{res:?}"
        );
    }

    #[test]
    fn command_and_payload_sections_share_one_budget() {
        // Regression: each protobuf section was checked against the whole budget alone, but the
        // command stays alive while the metadata decodes. A MESSAGE whose packed ack_set (field 4
        // of CommandMessage, 2600 one-byte varints) is charged about 62 KiB, then a metadata with
        // a 60 kB string: each within 64 KiB alone, not together.
        let mut message = vec![0x08, 1, 0x12, 4, 0x08, 1, 0x10, 1];
        ld(4, &[0x01; 2600], &mut message);
        let mut command = vec![0x08, 0x09];
        ld(9, &message, &mut command);
        // The string starts with 'g' (wire type 7): it does not read as a message.
        let mut text = vec![b'x'; 60_000];
        text[0] = b'g';
        let mut metadata = Vec::new();
        ld(1, &text, &mut metadata);
        let mut rest = (metadata.len() as u32).to_be_bytes().to_vec();
        rest.extend_from_slice(&metadata);
        let both = frame_bytes(&command, &rest);
        assert!(both.len() <= MAX);
        let res = dec(&both);
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex { section: Section::Metadata, estimate, budget: MAX })
                    if estimate > MAX as u64
            ),
            "{res:?}"
        );
        // Each alone decodes.
        let mut small = (METADATA.len() as u32).to_be_bytes().to_vec();
        small.extend_from_slice(METADATA);
        assert!(dec(&frame_bytes(&command, &small)).is_ok());
        assert!(dec(&send_with(&rest)).is_ok());
        // The broker entry metadata is charged too: the command (estimated 64,192 bytes) and the
        // small metadata (1,024) fit in 64 KiB, but not with the 2 fields of the entry metadata
        // (512) as well.
        let mut with_entry = vec![0x0e, 0x02, 0, 0, 0, 5, 0x08, 0xe8, 0x07, 0x10, 5];
        with_entry.extend_from_slice(&small);
        assert_eq!(
            dec(&frame_bytes(&command, &with_entry)),
            Err(FrameError::TooComplex {
                section: Section::Metadata,
                estimate: 64_192 + 512 + 1024,
                budget: MAX
            })
        );
    }

    #[test]
    fn an_unknown_group_does_not_hide_the_rest_of_the_command() {
        // Regression: a group (unknown field 100, which prost skips) before 30k empty message ids
        // made the memory estimate 0.
        let mut command = vec![0xa3, 0x06, 0xa4, 0x06];
        command.extend_from_slice(&ack_of_empty_ids(30_000));
        let res = dec(&frame_bytes(&command, &[]));
        assert!(
            matches!(
                res,
                Err(FrameError::TooComplex {
                    section: Section::Command,
                    ..
                })
            ),
            "{res:?}"
        );
        // A small command after a group decodes: prost skips the group.
        let mut command = vec![0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06];
        command.extend_from_slice(&PING[8..]);
        assert_eq!(dec(&frame_bytes(&command, &[])), Ok(Frame::command(ping())));
    }

    #[test]
    fn missing_payload() {
        assert_eq!(
            dec(&send_with(&[])),
            Err(FrameError::MissingPayload { command_type: 6 })
        );
        assert_eq!(
            dec(&frame_bytes(&MESSAGE_NO_CHECKSUM[8..20], &[])),
            Err(FrameError::MissingPayload { command_type: 9 })
        );
    }

    #[test]
    fn unexpected_payload() {
        assert_eq!(
            dec(&frame_bytes(&PING[8..], &[1, 2, 3])),
            Err(FrameError::UnexpectedPayload {
                command_type: 18,
                extra: 3
            })
        );
        // A checksummed payload section after FLOW is refused too.
        assert_eq!(
            dec(&frame_bytes(&FLOW[8..], &SEND[16..])),
            Err(FrameError::UnexpectedPayload {
                command_type: 11,
                extra: SEND.len() - 16
            })
        );
    }

    // ---- streaming ----

    #[test]
    fn every_strict_prefix_needs_more_bytes() {
        let stream = [SEND, PING].concat();
        for cut in 0..stream.len() {
            let mut src = BytesMut::from(&stream[..cut]);
            let first = decode(&mut src, MAX);
            if cut < SEND.len() {
                assert_eq!(first, Ok(None), "cut at {cut}");
                assert_eq!(&src[..], &stream[..cut], "nothing consumed at {cut}");
                assert_eq!(check(&stream[..cut], MAX), Ok(None));
            } else {
                assert!(
                    matches!(&first, Ok(Some(f)) if f.payload.is_some()),
                    "cut at {cut}"
                );
                assert_eq!(decode(&mut src, MAX), Ok(None), "cut at {cut}");
                assert_eq!(&src[..], &stream[SEND.len()..cut]);
            }
        }
    }

    #[test]
    fn frames_back_to_back_decode_in_order() {
        let stream = [SEND, PING, MESSAGE_WITH_ENTRY_METADATA, FLOW].concat();
        assert_eq!(check(&stream, MAX), Ok(Some(SEND.len())));
        let mut src = BytesMut::from(&stream[..]);
        let mut types = Vec::new();
        while let Ok(Some(frame)) = decode(&mut src, MAX) {
            types.push(frame.command_type());
        }
        assert_eq!(
            types,
            [
                Ok(Type::Send),
                Ok(Type::Ping),
                Ok(Type::Message),
                Ok(Type::Flow)
            ]
        );
        assert!(src.is_empty());

        // Byte by byte, as a slow socket would deliver them.
        let mut src = BytesMut::new();
        let mut frames = Vec::new();
        for &byte in &stream {
            src.extend_from_slice(&[byte]);
            if let Some(frame) = decode(&mut src, MAX).ok().flatten() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 4);
        assert_eq!(
            frames[0],
            payload_frame(send_command(), None, Some(SEND_CRC), b"hello")
        );
        assert_eq!(frames[1], Frame::command(ping()));
        assert!(src.is_empty());
    }

    #[test]
    fn payload_data_is_a_slice_of_the_input() {
        let mut src = BytesMut::from(&[SEND, MESSAGE_WITH_ENTRY_METADATA].concat()[..]);
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        let in_input = |data: &Bytes| {
            let p = data.as_ptr() as usize;
            !data.is_empty() && p >= start && p + data.len() <= end
        };
        let first = decode(&mut src, MAX);
        let Ok(Some(Frame {
            payload: Some(p1), ..
        })) = &first
        else {
            panic!("{first:?}");
        };
        assert_eq!(&p1.data[..], b"hello");
        assert!(in_input(&p1.data));
        assert_eq!(p1.data.as_ptr() as usize, start + SEND.len() - 5);
        let second = decode(&mut src, MAX);
        let Ok(Some(Frame {
            payload: Some(p2), ..
        })) = &second
        else {
            panic!("{second:?}");
        };
        assert_eq!(&p2.data[..], b"hi");
        assert!(in_input(&p2.data));
        assert_eq!(p2.data.as_ptr() as usize, end - 2);

        // decode_frame slices the Bytes it is given.
        let bytes = Bytes::from(SEND.to_vec());
        let frame = decode_frame(bytes.clone(), MAX);
        let Ok(Frame {
            payload: Some(p), ..
        }) = &frame
        else {
            panic!("{frame:?}");
        };
        assert_eq!(p.data.as_ptr(), bytes[SEND.len() - 5..].as_ptr());
    }

    // ---- helpers ----

    #[test]
    fn command_type_and_carries_payload() {
        assert_eq!(Frame::command(ping()).command_type(), Ok(Type::Ping));
        let unknown = Frame::command(BaseCommand {
            r#type: 99,
            ..Default::default()
        });
        assert_eq!(unknown.command_type(), Err(99));
        assert!(carries_payload(Type::Send as i32));
        assert!(carries_payload(Type::Message as i32));
        assert!(!carries_payload(Type::Ping as i32));
        assert!(!carries_payload(0));
    }

    #[test]
    fn max_frame_size_for_adds_the_padding() {
        assert_eq!(
            max_frame_size_for(DEFAULT_MAX_MESSAGE_SIZE),
            DEFAULT_MAX_FRAME_SIZE
        );
        assert_eq!(DEFAULT_MAX_FRAME_SIZE, 5 * 1024 * 1024 + 10 * 1024);
        assert_eq!(max_frame_size_for(usize::MAX), usize::MAX);
    }
}
