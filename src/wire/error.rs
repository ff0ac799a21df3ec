//! [`FrameError`]: every way a frame, a batch or a serialized message id read from the network
//! can be wrong.

use std::fmt;

/// The part of a frame a size, a protobuf or a budget check refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The 4-byte command size field.
    CommandSize,
    /// The `BaseCommand` protobuf.
    Command,
    /// The broker entry metadata block (`0x0e02`, size, `BrokerEntryMetadata`).
    BrokerEntryMetadata,
    /// The checksum block (`0x0e01`, CRC32C).
    Checksum,
    /// The 4-byte metadata size field.
    MetadataSize,
    /// The `MessageMetadata` protobuf.
    Metadata,
    /// One entry of a batch (`[u32 size][SingleMessageMetadata][payload]`).
    BatchEntry,
    /// A serialized `MessageIdData`.
    MessageId,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::CommandSize => "command size",
            Section::Command => "command",
            Section::BrokerEntryMetadata => "broker entry metadata",
            Section::Checksum => "checksum",
            Section::MetadataSize => "metadata size",
            Section::Metadata => "message metadata",
            Section::BatchEntry => "batch entry",
            Section::MessageId => "message id",
        })
    }
}

/// A frame (or a payload part that clients must agree on) that cannot be decoded or encoded.
///
/// Every variant is a protocol violation by the peer (or, for [`FrameError::TooLarge`] on encode,
/// a message too big for the negotiated limit). A connection that reads one should be closed:
/// after a bad frame the byte stream can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is larger than the max frame size (the broker's max message size plus 10 KiB of
    /// padding, 5 MiB + 10 KiB by default). Nothing was allocated for it.
    #[error("frame of {size} bytes exceeds the max frame size of {max} bytes (raise the max message size on both broker and client, or enable chunking)")]
    TooLarge {
        /// The frame size, size field included, as announced or as encoded.
        size: u64,
        /// The max frame size in force.
        max: usize,
    },
    /// A size field points past the end of the frame, or the frame ends inside a fixed-size field.
    #[error("truncated frame: the {section} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// What was being read.
        section: Section,
        /// How many bytes it needs.
        needed: u64,
        /// How many bytes the frame still has.
        available: usize,
    },
    /// The command size is larger than what the total size leaves for it.
    #[error(
        "command size {command_size} is larger than the {available} bytes the frame has for it"
    )]
    CommandSizeTooLarge {
        /// The command size field.
        command_size: u32,
        /// The bytes that follow the command size field in the frame.
        available: usize,
    },
    /// The command size is zero: every frame carries a `BaseCommand` with at least its type.
    #[error("empty command: the command size is 0")]
    EmptyCommand,
    /// A payload section starts with a magic number that is neither `0x0e01` (checksum) nor
    /// `0x0e02` (broker entry metadata), and cannot be a metadata size either.
    #[error("bad magic number {found:#06x} at the start of the payload section")]
    BadMagic {
        /// The two bytes found.
        found: u16,
    },
    /// The CRC32C of metadata size, metadata and payload does not match the frame's checksum.
    #[error("checksum mismatch: the frame says {expected:#010x}, the bytes give {computed:#010x}")]
    ChecksumMismatch {
        /// The checksum carried by the frame.
        expected: u32,
        /// The checksum computed over the received bytes.
        computed: u32,
    },
    /// A protobuf section does not decode.
    #[error("cannot decode the {section} protobuf: {reason}")]
    Protobuf {
        /// Which protobuf.
        section: Section,
        /// prost's description of the problem.
        reason: String,
    },
    /// A protobuf section would decode into more memory than the frame-size budget allows (many
    /// tiny repeated elements each become a large in-memory struct). Refused before decoding.
    #[error("the {section} protobuf would need up to {estimate} bytes of memory to decode, over the budget of {budget}")]
    TooComplex {
        /// Which protobuf.
        section: Section,
        /// The upper bound computed for its decoded size.
        estimate: u64,
        /// The budget (the max frame size).
        budget: usize,
    },
    /// A SEND or MESSAGE command came without the metadata and payload it must carry.
    #[error(
        "command type {command_type} must carry a payload but the frame ends after the command"
    )]
    MissingPayload {
        /// The command type number.
        command_type: i32,
    },
    /// A command that carries no payload is followed by extra bytes.
    #[error("command type {command_type} carries no payload but {extra} bytes follow it")]
    UnexpectedPayload {
        /// The command type number.
        command_type: i32,
        /// How many bytes follow the command.
        extra: usize,
    },
    /// A batch holds fewer or more entries than `num_messages_in_batch` says.
    #[error("batch says {expected} messages but holds {found}")]
    BatchCountMismatch {
        /// `num_messages_in_batch` from the metadata.
        expected: u32,
        /// How many entries were found before the payload ended (or `expected + 1` if it did not).
        found: u32,
    },
}

impl FrameError {
    pub(crate) fn protobuf(section: Section, err: prost::DecodeError) -> Self {
        FrameError::Protobuf {
            section,
            reason: err.to_string(),
        }
    }

    pub(crate) fn truncated(section: Section, needed: u64, available: usize) -> Self {
        FrameError::Truncated {
            section,
            needed,
            available,
        }
    }
}
