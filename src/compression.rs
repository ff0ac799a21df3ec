//! Payload compression, as the official Java and C++ clients write it: the whole payload (a
//! batch: all its entries) compressed once, `uncompressed_size` always set.
//!
//! | codec | wire form | crate | why |
//! |---|---|---|---|
//! | LZ4 | raw block (no frame) | `lz4_flex` | pure Rust, as fast as the C library |
//! | ZLIB | zlib stream (RFC 1950) | `flate2` (miniz_oxide) | pure Rust, the standard choice |
//! | ZSTD | zstd frame | `zstd` (the C library) | pure-Rust zstd encoders are not mature yet |
//! | SNAPPY | raw block (no framing) | `snap` | pure Rust, as fast as the C++ library |
//!
//! Decompression never trusts the sender: an `uncompressed_size` above the caller's limit is
//! refused before anything is allocated, at most that size is ever allocated, and the output
//! must have exactly that size.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use bytes::Bytes;

/// A compression codec of Pulsar messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// LZ4 raw block.
    Lz4,
    /// zlib stream.
    Zlib,
    /// zstd frame.
    Zstd,
    /// Snappy raw block.
    Snappy,
}

impl Compression {
    /// The codec for a number on the wire (`MessageMetadata.compression`).
    pub fn from_wire(value: i32) -> Option<Self> {
        Some(match value {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Zlib,
            3 => Compression::Zstd,
            4 => Compression::Snappy,
            _ => return None,
        })
    }

    /// The number on the wire.
    pub fn to_wire(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zlib => 2,
            Compression::Zstd => 3,
            Compression::Snappy => 4,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        })
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Compression::None,
            "lz4" => Compression::Lz4,
            "zlib" => Compression::Zlib,
            "zstd" => Compression::Zstd,
            "snappy" => Compression::Snappy,
            other => {
                return Err(format!(
                    "unknown compression {other:?}: expected none, lz4, zlib, zstd or snappy"
                ))
            }
        })
    }
}

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The claimed uncompressed size is above the limit (the max message size).
    #[error("uncompressed size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// The claimed size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The output does not have the claimed size.
    #[error("the payload decompressed to {actual} bytes, not the {expected} its metadata claims")]
    SizeMismatch {
        /// The claimed size.
        expected: usize,
        /// The size found (at most `expected + 1`: decoding stops past the claim).
        actual: usize,
    },
    /// The input is not valid for the codec.
    #[error("corrupt {codec} payload: {reason}")]
    Corrupt {
        /// The codec.
        codec: Compression,
        /// The decoder's reason.
        reason: String,
    },
    /// The codec number is unknown.
    #[error("unknown compression codec {0}")]
    Unsupported(i32),
}

/// Compresses `input` with `codec` (for `None`, a copy).
pub fn compress(codec: Compression, input: &[u8]) -> Bytes {
    match codec {
        Compression::None => Bytes::copy_from_slice(input),
        Compression::Lz4 => Bytes::from(lz4_flex::block::compress(input)),
        Compression::Zlib => {
            let mut out = Vec::with_capacity(input.len() / 2 + 64);
            let mut enc = flate2::read::ZlibEncoder::new(input, flate2::Compression::default());
            // Reading from a slice cannot fail.
            let _ = enc.read_to_end(&mut out);
            Bytes::from(out)
        }
        Compression::Zstd => match zstd::bulk::compress(input, 3) {
            Ok(out) => Bytes::from(out),
            // zstd fails only on allocation failure; send uncompressed data would be wrong, so
            // fall back to a stored (level 1) attempt and finally an empty frame never happens.
            Err(_) => Bytes::from(zstd::bulk::compress(input, 1).unwrap_or_default()),
        },
        Compression::Snappy => Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(input)
                .unwrap_or_default(),
        ),
    }
}

/// Decompresses a payload whose metadata claims `uncompressed_size` bytes, refusing anything
/// above `max_size`.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    uncompressed_size: usize,
    max_size: usize,
) -> Result<Bytes, CompressionError> {
    if uncompressed_size > max_size {
        return Err(CompressionError::TooLarge {
            size: uncompressed_size,
            max: max_size,
        });
    }
    let corrupt = |reason: String| CompressionError::Corrupt { codec, reason };
    let out = match codec {
        Compression::None => input.to_vec(),
        Compression::Lz4 => {
            let mut out = vec![0u8; uncompressed_size];
            let n = lz4_flex::block::decompress_into(input, &mut out)
                .map_err(|e| corrupt(e.to_string()))?;
            out.truncate(n);
            out
        }
        Compression::Zlib => {
            let mut out = Vec::with_capacity(uncompressed_size);
            let limit = uncompressed_size as u64 + 1;
            flate2::read::ZlibDecoder::new(input)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(e.to_string()))?;
            out
        }
        Compression::Zstd => {
            // A frame that announces more than the claim is refused by the bounded decoder.
            zstd::bulk::decompress(input, uncompressed_size).map_err(|e| corrupt(e.to_string()))?
        }
        Compression::Snappy => {
            let claimed = snap::raw::decompress_len(input).map_err(|e| corrupt(e.to_string()))?;
            if claimed != uncompressed_size {
                return Err(CompressionError::SizeMismatch {
                    expected: uncompressed_size,
                    actual: claimed,
                });
            }
            let mut out = vec![0u8; claimed];
            let n = snap::raw::Decoder::new()
                .decompress(input, &mut out)
                .map_err(|e| corrupt(e.to_string()))?;
            out.truncate(n);
            out
        }
    };
    if out.len() != uncompressed_size {
        return Err(CompressionError::SizeMismatch {
            expected: uncompressed_size,
            actual: out.len(),
        });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Lz4,
        Compression::Zlib,
        Compression::Zstd,
        Compression::Snappy,
    ];

    fn inputs() -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let random: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        vec![
            Vec::new(),
            b"Hello python client, this is a msg.".to_vec(),
            b"abc".repeat(350_000),
            random,
        ]
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for input in inputs() {
                let packed = compress(codec, &input);
                let back = decompress(codec, &packed, input.len(), 8 << 20)
                    .unwrap_or_else(|e| panic!("{codec}: {e}"));
                assert_eq!(back.as_ref(), input.as_slice(), "{codec}");
            }
        }
    }

    #[test]
    fn wire_forms_are_the_raw_ones() {
        let input = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(4);
        let lz4 = compress(Compression::Lz4, &input);
        assert_ne!(
            &lz4[..4],
            &[0x04, 0x22, 0x4d, 0x18],
            "not the LZ4 frame format"
        );
        let snappy = compress(Compression::Snappy, &input);
        assert_eq!(
            snappy[0], 208,
            "snappy raw starts with the varint length (208 = 0xd0)"
        );
        assert_eq!(snappy[1], 1);
        let zlib = compress(Compression::Zlib, &input);
        assert_eq!(zlib[0], 0x78, "zlib header");
        let zstd = compress(Compression::Zstd, &input);
        assert_eq!(&zstd[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
    }

    #[test]
    fn a_lying_size_is_an_error() {
        let input = b"some payload that compresses, some payload that compresses".repeat(10);
        for codec in ALL {
            let packed = compress(codec, &input);
            for wrong in [input.len() - 1, input.len() + 1, 0] {
                let r = decompress(codec, &packed, wrong, 1 << 20);
                assert!(
                    r.is_err(),
                    "{codec} accepted size {wrong} for {}",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn sizes_above_the_limit_are_refused_first() {
        for codec in ALL {
            let r = decompress(codec, b"whatever", 10 << 20, 5 << 20);
            assert_eq!(
                r,
                Err(CompressionError::TooLarge {
                    size: 10 << 20,
                    max: 5 << 20
                })
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 7;
        for round in 0..3000 {
            let len = (round % 200) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for codec in ALL {
                let _ = decompress(codec, &data, (x % 5000) as usize, 1 << 20);
            }
        }
    }

    #[test]
    fn names_parse_and_print() {
        for codec in ALL {
            assert_eq!(codec.to_string().parse::<Compression>(), Ok(codec));
            assert_eq!(Compression::from_wire(codec.to_wire()), Some(codec));
        }
        assert!("LZ4".parse::<Compression>().is_ok());
        assert!("brotli".parse::<Compression>().is_err());
        assert_eq!(Compression::from_wire(9), None);
    }
}
