//! Payload compression, as the official Java, C++ and Go clients write it: the whole payload (a
//! batch: all its entries, concatenated) compressed once, with `MessageMetadata.compression`
//! naming the codec and `uncompressed_size` always set.
//!
//! | codec | wire form | crate | why |
//! |---|---|---|---|
//! | LZ4 | raw block (not the LZ4 frame format) | `lz4_flex`, safe encoder and decoder | pure Rust without `unsafe`, about as fast as the C library, raw-block API |
//! | ZLIB | zlib stream (RFC 1950: header, deflate, Adler-32) | `flate2` on `miniz_oxide` | pure Rust, the standard choice; its low-level API decodes into a buffer of fixed size |
//! | ZSTD | standard zstd frame | `zstd` (the C library through `zstd-sys`) | the reference implementation; pure-Rust zstd encoders are not mature yet |
//! | SNAPPY | raw block (not the framed stream format) | `snap` | pure Rust, as fast as the C++ library, raw-block API |
//!
//! LZ4 and Snappy carry no checksum; zlib checks its Adler-32 and zstd its content checksum
//! when the frame has one. The levels are the Java client's: zlib's default (6), zstd 3.
//!
//! # Hostile input
//!
//! [`decompress`] never trusts the sender:
//! - an `uncompressed_size` above the caller's limit (the max message size) is refused before
//!   anything is allocated or decoded;
//! - the output buffer is allocated once, with exactly the claimed size, and never grows: a
//!   payload that decodes to more is refused as soon as decoding passes the claim, and one
//!   whose own header announces more (a zstd frame's content size, Snappy's length) before
//!   anything is decoded;
//! - the output must have exactly the claimed size;
//! - corrupt input of every codec is an error, never a panic.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// A compression codec of Pulsar messages (`MessageMetadata.compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// LZ4 raw block (1).
    Lz4,
    /// zlib stream (2).
    Zlib,
    /// zstd frame (3).
    Zstd,
    /// Snappy raw block (4).
    Snappy,
}

impl Compression {
    /// Every codec, in wire order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Lz4,
        Compression::Zlib,
        Compression::Zstd,
        Compression::Snappy,
    ];

    /// The codec for a number on the wire (`MessageMetadata.compression`), `None` if unknown.
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

    /// The name that [`FromStr`] reads and [`Display`](fmt::Display) writes.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zlib => "zlib",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = String;

    /// Reads `none`, `lz4`, `zlib`, `zstd` or `snappy`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown compression {s:?}: expected none, lz4, zlib, zstd or snappy")
            })
    }
}

/// Why a payload could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The claimed uncompressed size is above the limit (the max message size); refused before
    /// anything was allocated or decoded.
    #[error("the metadata claims an uncompressed size of {size} bytes, above the limit of {max}")]
    TooLarge {
        /// The claimed size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The payload does not decompress to the size its metadata claims.
    #[error("{}", size_mismatch(*expected, *actual))]
    SizeMismatch {
        /// The size the metadata claims.
        expected: usize,
        /// The size found: exact when it is smaller than `expected` or when the codec's own
        /// header announced it; otherwise `expected + 1`, as decoding stops past the claim.
        actual: usize,
    },
    /// The input is not valid for the codec.
    #[error("corrupt {codec} payload: {reason}")]
    Corrupt {
        /// The codec.
        codec: Compression,
        /// What the decoder found.
        reason: String,
    },
    /// The codec number on the wire is unknown.
    #[error("unknown compression codec {0} (known: 0 none, 1 lz4, 2 zlib, 3 zstd, 4 snappy)")]
    Unsupported(i32),
}

fn size_mismatch(expected: usize, actual: usize) -> String {
    if actual > expected {
        format!(
            "the payload decompresses to more than the {expected} bytes its metadata claims \
             (at least {actual})"
        )
    } else {
        format!(
            "the payload decompresses to {actual} bytes, not the {expected} its metadata claims"
        )
    }
}

/// The zstd level of the Java client.
const ZSTD_LEVEL: i32 = 3;

thread_local! {
    // zstd contexts are costly to set up (the compressor's tables are hundreds of KiB): one of
    // each per thread, created on first use. Neither holds data between calls.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `input` with `codec`, in the wire form of the official clients (for
/// [`Compression::None`], a copy).
///
/// It cannot fail on the inputs a producer has: payloads are bounded by the max message size,
/// far below the 4 GiB where Snappy gives up, and zlib writes to memory. Were a codec's library
/// to fail anyway (zstd out of memory), the result would be empty, which every consumer refuses
/// as a size mismatch rather than misreading it.
pub fn compress(codec: Compression, input: &[u8]) -> Bytes {
    let out = match codec {
        Compression::None => input.to_vec(),
        Compression::Lz4 => lz4_flex::block::compress(input),
        Compression::Zlib => zlib_compress(input),
        Compression::Zstd => with_zstd_compressor(|c| c.compress(input)).unwrap_or_default(),
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(input)
            .unwrap_or_default(),
    };
    Bytes::from(out)
}

fn zlib_compress(input: &[u8]) -> Vec<u8> {
    use flate2::{Compress, FlushCompress, Status};
    let mut c = Compress::new(flate2::Compression::default(), true);
    // Deflate's worst case (stored blocks) plus the zlib header and trailer: one call suffices
    // in the common case; the loop covers the rest.
    let mut out = Vec::with_capacity(input.len() + input.len() / 1000 + 64);
    loop {
        let consumed = usize::try_from(c.total_in()).unwrap_or(input.len());
        let rest = input.get(consumed..).unwrap_or_default();
        match c.compress_vec(rest, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return out,
            Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
            // Only an invalid flush sequence fails, which this is not.
            Err(_) => return Vec::new(),
        }
    }
}

fn with_zstd_compressor(
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Vec<u8>> {
    ZSTD_COMPRESSOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
            }
            match slot.as_mut() {
                Some(c) => f(c),
                None => f(&mut zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            }
        }
        Err(_) => f(&mut zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
    })
}

fn with_zstd_decompressor<T>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    ZSTD_DECOMPRESSOR.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            match slot.as_mut() {
                Some(d) => f(d),
                None => f(&mut zstd::bulk::Decompressor::new()?),
            }
        }
        Err(_) => f(&mut zstd::bulk::Decompressor::new()?),
    })
}

/// Decompresses a payload compressed with `codec` whose metadata claims `uncompressed_size`
/// bytes, refusing any claim above `max_size` (the max message size).
///
/// Refuses a claim above `max_size` before anything else ([`CompressionError::TooLarge`]),
/// allocates at most `uncompressed_size` bytes for the output, and refuses an output of any
/// other size ([`CompressionError::SizeMismatch`]) or an input the codec cannot decode
/// ([`CompressionError::Corrupt`]). [`Compression::None`] copies the input, which must then
/// have the claimed size.
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
    let expected = uncompressed_size;
    let out = match codec {
        Compression::None => {
            if input.len() != expected {
                return Err(CompressionError::SizeMismatch {
                    expected,
                    actual: input.len(),
                });
            }
            input.to_vec()
        }
        Compression::Lz4 => lz4_decompress(input, expected)?,
        Compression::Zlib => zlib_decompress(input, expected)?,
        Compression::Zstd => zstd_decompress(input, expected)?,
        Compression::Snappy => snappy_decompress(input, expected)?,
    };
    if out.len() != expected {
        return Err(CompressionError::SizeMismatch {
            expected,
            actual: out.len(),
        });
    }
    Ok(Bytes::from(out))
}

fn corrupt(codec: Compression, reason: impl fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

fn lz4_decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, CompressionError> {
    use lz4_flex::block::DecompressError;
    // A fresh, zeroed buffer: a bad match offset cannot show anything but zeros or this
    // payload's own bytes.
    let mut out = vec![0u8; expected];
    match lz4_flex::block::decompress_into(input, &mut out) {
        Ok(n) => {
            out.truncate(n);
            Ok(out)
        }
        // The block goes on past the claimed size.
        Err(DecompressError::OutputTooSmall { .. }) => Err(CompressionError::SizeMismatch {
            expected,
            actual: expected.saturating_add(1),
        }),
        Err(e) => Err(corrupt(Compression::Lz4, e)),
    }
}

fn zlib_decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, CompressionError> {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut d = Decompress::new(true);
    let mut out = vec![0u8; expected];
    // Once `out` is full, one more byte of output proves the stream longer than claimed.
    let mut probe = [0u8; 1];
    loop {
        let (consumed, written) = (d.total_in(), d.total_out());
        let at = usize::try_from(consumed).unwrap_or(usize::MAX);
        let rest = input.get(at..).unwrap_or_default();
        let filled = usize::try_from(written).unwrap_or(usize::MAX);
        let status = match out.get_mut(filled..) {
            Some(free) if !free.is_empty() => d.decompress(rest, free, FlushDecompress::Finish),
            _ => d.decompress(rest, &mut probe, FlushDecompress::Finish),
        }
        .map_err(|e| corrupt(Compression::Zlib, e))?;
        let now = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
        if now > expected {
            return Err(CompressionError::SizeMismatch {
                expected,
                actual: now,
            });
        }
        if status == Status::StreamEnd {
            out.truncate(now);
            return Ok(out);
        }
        if d.total_in() == consumed && d.total_out() == written {
            // The Java client never finishes its zlib streams: it deflates with SYNC_FLUSH (no
            // final block, no Adler-32) and inflates just the uncompressed size. All the input
            // read and exactly the claimed size out is such a stream, whole.
            let all_read = usize::try_from(consumed).is_ok_and(|n| n == input.len());
            if all_read && now == expected {
                out.truncate(now);
                return Ok(out);
            }
            // No progress with all the input given: the stream is cut short.
            return Err(corrupt(
                Compression::Zlib,
                format!("the stream ends early, after {now} bytes of output"),
            ));
        }
    }
}

fn zstd_decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, CompressionError> {
    // A frame that announces more than the claim is refused before decoding. (One that
    // announces less may be the first of several frames: decoding tells.)
    match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(announced)) if announced > expected as u64 => {
            return Err(CompressionError::SizeMismatch {
                expected,
                actual: usize::try_from(announced).unwrap_or(usize::MAX),
            })
        }
        Ok(_) => {}
        Err(_) => return Err(corrupt(Compression::Zstd, "not a zstd frame")),
    }
    let mut out = Vec::with_capacity(expected);
    // zstd writes into the spare capacity and never grows the vector.
    with_zstd_decompressor(|d| d.decompress_to_buffer(input, &mut out)).map_err(|e| {
        if e.to_string().contains("too small") {
            // The frames go on past the claimed size.
            CompressionError::SizeMismatch {
                expected,
                actual: expected.saturating_add(1),
            }
        } else {
            corrupt(Compression::Zstd, e)
        }
    })?;
    Ok(out)
}

fn snappy_decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, CompressionError> {
    // A raw block starts with its uncompressed length: check it before allocating.
    let announced =
        snap::raw::decompress_len(input).map_err(|e| corrupt(Compression::Snappy, e))?;
    if announced != expected {
        return Err(CompressionError::SizeMismatch {
            expected,
            actual: announced,
        });
    }
    let mut out = vec![0u8; expected];
    let n = snap::raw::Decoder::new()
        .decompress(input, &mut out)
        .map_err(|e| corrupt(Compression::Snappy, e))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Lz4,
        Compression::Zlib,
        Compression::Zstd,
        Compression::Snappy,
    ];

    /// A deterministic xorshift64 generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Something like a batch: JSON records, each behind a small binary header.
    fn batch_like(size: usize, rng: &mut Rng) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 256);
        while out.len() < size {
            let record = format!(
                r#"{{"id":{},"user":"user-{:04}","event":"{}","ts":{},"amount":{}.{:02}}}"#,
                rng.next() % 1_000_000,
                rng.below(500),
                ["click", "view", "purchase", "login"][rng.below(4)],
                1_700_000_000_000u64 + rng.next() % 10_000_000,
                rng.below(1000),
                rng.below(100),
            );
            out.extend_from_slice(&(record.len() as u32).to_be_bytes());
            out.extend_from_slice(&[0x0a, 0x0c, 0x18, rng.below(256) as u8]);
            out.extend_from_slice(record.as_bytes());
        }
        out.truncate(size);
        out
    }

    fn inputs() -> Vec<(&'static str, Vec<u8>)> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        vec![
            ("empty", Vec::new()),
            ("one byte", vec![0x42]),
            ("small", b"Hello python client, this is a msg.".to_vec()),
            ("1 MiB repetitive", b"abcdefgh".repeat(128 * 1024)),
            ("1 MiB zeros", vec![0; 1 << 20]),
            ("1 MiB random", rng.bytes(1 << 20)),
            ("128 KiB batch", batch_like(128 << 10, &mut rng)),
        ]
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in Compression::ALL {
            for (name, input) in inputs() {
                let packed = compress(codec, &input);
                let back = decompress(codec, &packed, input.len(), 4 << 20)
                    .unwrap_or_else(|e| panic!("{codec} {name}: {e}"));
                assert_eq!(back.as_ref(), input.as_slice(), "{codec} {name}");
                // With the claim at the limit, too.
                assert!(decompress(codec, &packed, input.len(), input.len()).is_ok());
            }
        }
    }

    #[test]
    fn repetitive_input_shrinks() {
        let input = b"abcdefgh".repeat(128 * 1024);
        for codec in CODECS {
            let packed = compress(codec, &input);
            assert!(
                packed.len() < input.len() / 10,
                "{codec}: {} bytes",
                packed.len()
            );
        }
    }

    /// A minimal LZ4 block decoder written from the format description: the encoder's output
    /// is a raw block, readable without `lz4_flex`.
    fn reference_lz4_block(input: &[u8]) -> Option<Vec<u8>> {
        fn length(input: &[u8], p: &mut usize, mut n: usize) -> Option<usize> {
            if n == 15 {
                loop {
                    let b = *input.get(*p)?;
                    *p += 1;
                    n += b as usize;
                    if b != 255 {
                        break;
                    }
                }
            }
            Some(n)
        }
        let mut out = Vec::new();
        let mut p = 0;
        loop {
            let token = *input.get(p)?;
            p += 1;
            let literals = length(input, &mut p, (token >> 4) as usize)?;
            out.extend_from_slice(input.get(p..p + literals)?);
            p += literals;
            if p == input.len() {
                return Some(out);
            }
            let offset = u16::from_le_bytes([*input.get(p)?, *input.get(p + 1)?]) as usize;
            p += 2;
            let len = length(input, &mut p, (token & 15) as usize)? + 4;
            if offset == 0 || offset > out.len() {
                return None;
            }
            for _ in 0..len {
                out.push(out[out.len() - offset]);
            }
        }
    }

    /// A minimal Snappy raw-block decoder written from the format description.
    fn reference_snappy_raw(input: &[u8]) -> Option<Vec<u8>> {
        let mut p = 0;
        let mut len = 0usize;
        for shift in (0..35).step_by(7) {
            let b = *input.get(p)?;
            p += 1;
            len |= ((b & 0x7f) as usize) << shift;
            if b < 0x80 {
                break;
            }
        }
        let mut out = Vec::with_capacity(len);
        while p < input.len() {
            let tag = input[p];
            p += 1;
            let (n, offset) = match tag & 3 {
                0 => {
                    let mut n = (tag >> 2) as usize;
                    if n >= 60 {
                        let extra = n - 59;
                        n = 0;
                        for i in 0..extra {
                            n |= (*input.get(p + i)? as usize) << (8 * i);
                        }
                        p += extra;
                    }
                    out.extend_from_slice(input.get(p..p + n + 1)?);
                    p += n + 1;
                    continue;
                }
                1 => {
                    let o = (((tag >> 5) as usize) << 8) | *input.get(p)? as usize;
                    p += 1;
                    (((tag >> 2) & 7) as usize + 4, o)
                }
                2 => {
                    let o = u16::from_le_bytes([*input.get(p)?, *input.get(p + 1)?]) as usize;
                    p += 2;
                    ((tag >> 2) as usize + 1, o)
                }
                _ => {
                    let o = u32::from_le_bytes(input.get(p..p + 4)?.try_into().ok()?) as usize;
                    p += 4;
                    ((tag >> 2) as usize + 1, o)
                }
            };
            if offset == 0 || offset > out.len() {
                return None;
            }
            for _ in 0..n {
                out.push(out[out.len() - offset]);
            }
        }
        (out.len() == len).then_some(out)
    }

    #[test]
    fn lz4_is_a_raw_block() {
        // Hand-assembled: 1 literal 'a', a match of 8 at offset 1, then 5 literals.
        let block = [0x14, b'a', 0x01, 0x00, 0x50, b'h', b'e', b'l', b'l', b'o'];
        let out = decompress(Compression::Lz4, &block, 14, 1 << 20);
        assert_eq!(out.as_deref(), Ok(&b"aaaaaaaaahello"[..]));

        // Written by the C library (the lz4 1.9 command line, its legacy container removed).
        let c_block = [
            0xff, 0x14, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e,
            0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x2c, 0x20, 0x74, 0x68, 0x69, 0x73, 0x20,
            0x69, 0x73, 0x20, 0x61, 0x20, 0x6d, 0x73, 0x67, 0x2e, 0x23, 0x00, 0x2e, 0x50, 0x20,
            0x6d, 0x73, 0x67, 0x2e,
        ];
        let out = decompress(Compression::Lz4, &c_block, HELLO_3.len(), 1 << 20);
        assert_eq!(out.as_deref(), Ok(HELLO_3));
        assert_eq!(reference_lz4_block(&c_block).as_deref(), Some(HELLO_3));

        for (name, input) in inputs() {
            let packed = compress(Compression::Lz4, &input);
            assert_ne!(
                packed.get(..4),
                Some(&[0x04, 0x22, 0x4d, 0x18][..]),
                "no frame magic"
            );
            assert_eq!(
                reference_lz4_block(&packed).as_deref(),
                Some(input.as_slice()),
                "{name}"
            );
        }
        // 64 'a': one literal, then a long match, then the last 5 bytes as literals.
        let packed = compress(Compression::Lz4, &[b'a'; 64]);
        assert_eq!(packed[0] >> 4, 1, "token: one literal");
        assert_eq!(&packed[1..4], &[b'a', 0x01, 0x00], "literal, then offset 1");
    }

    #[test]
    fn snappy_is_a_raw_block() {
        // Hand-assembled: length 20, literal 'a', copy 11 at offset 1, copy 8 at offset 1.
        let block = [0x14, 0x00, b'a', 0x1d, 0x01, 0x11, 0x01];
        let out = decompress(Compression::Snappy, &block, 20, 1 << 20);
        assert_eq!(out.as_deref(), Ok(&[b'a'; 20][..]));

        for (name, input) in inputs() {
            let packed = compress(Compression::Snappy, &input);
            assert_ne!(packed.first(), Some(&0xff), "no stream identifier");
            assert_eq!(
                reference_snappy_raw(&packed).as_deref(),
                Some(input.as_slice()),
                "{name}"
            );
        }
        // It starts with the varint of the length: 208 = 0xd0 0x01.
        let packed = compress(Compression::Snappy, &[b'a'; 208]);
        assert_eq!(&packed[..2], &[0xd0, 0x01]);
    }

    const HELLO_3: &[u8] =
        b"Hello python client, this is a msg.Hello python client, this is a msg.\
Hello python client, this is a msg.";

    #[test]
    fn zlib_is_a_zlib_stream() {
        // Written by Python's zlib (the C zlib) at its default level.
        let golden = [
            0x78, 0x9c, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x28, 0xa8, 0x2c, 0xc9, 0xc8, 0xcf,
            0x53, 0x48, 0xce, 0xc9, 0x4c, 0xcd, 0x2b, 0xd1, 0x51, 0x28, 0xc9, 0xc8, 0x2c, 0x56,
            0x00, 0xa2, 0x44, 0x85, 0xdc, 0xe2, 0x74, 0x3d, 0x0f, 0xaa, 0x28, 0x01, 0x00, 0xcf,
            0x71, 0x25, 0x42,
        ];
        let out = decompress(Compression::Zlib, &golden, HELLO_3.len(), 1 << 20);
        assert_eq!(out.as_deref(), Ok(HELLO_3));
        // A wrong Adler-32 is caught.
        let mut bad = golden;
        bad[golden.len() - 1] ^= 1;
        assert!(matches!(
            decompress(Compression::Zlib, &bad, HELLO_3.len(), 1 << 20),
            Err(CompressionError::Corrupt { .. })
        ));

        for (name, input) in inputs() {
            let packed = compress(Compression::Zlib, &input);
            assert_eq!(packed[0], 0x78, "{name}: deflate, 32 KiB window");
            assert_eq!(
                u16::from_be_bytes([packed[0], packed[1]]) % 31,
                0,
                "header check"
            );
            let adler = packed[packed.len() - 4..].to_vec();
            let mut a = 1u32;
            let mut b = 0u32;
            for &byte in &input {
                a = (a + byte as u32) % 65521;
                b = (b + a) % 65521;
            }
            assert_eq!(
                adler,
                ((b << 16) | a).to_be_bytes(),
                "{name}: Adler-32 trailer"
            );
        }
        assert_eq!(&compress(Compression::Zlib, HELLO_3)[..2], &[0x78, 0x9c]);
    }

    #[test]
    fn zlib_reads_the_java_clients_unfinished_streams() {
        // The Java client's CompressionCodecZLib deflates with SYNC_FLUSH and never finishes:
        // no final block, no Adler-32 (the C zlib, Z_SYNC_FLUSH, wrote these). An empty payload
        // is no bytes at all (Deflater.needsInput() holds from the start).
        let hello = [
            0x78, 0x9c, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x90, 0x00, 0x00, 0x00,
            0x00, 0xff, 0xff,
        ];
        let text = b"hello hello hello";
        let out = decompress(Compression::Zlib, &hello, text.len(), 1 << 20);
        assert_eq!(out.as_deref(), Ok(&text[..]));
        let empty = [0x78, 0x9c, 0x00, 0x00, 0x00, 0xff, 0xff];
        assert_eq!(
            decompress(Compression::Zlib, &empty, 0, 1 << 20).as_deref(),
            Ok(&b""[..])
        );
        assert_eq!(
            decompress(Compression::Zlib, &[], 0, 1 << 20).as_deref(),
            Ok(&b""[..])
        );
        // Cut short, or claiming more than it holds, it is still refused.
        assert!(decompress(Compression::Zlib, &hello[..9], text.len(), 1 << 20).is_err());
        assert!(decompress(Compression::Zlib, &hello, text.len() + 1, 1 << 20).is_err());
        assert!(decompress(Compression::Zlib, &hello, text.len() - 1, 1 << 20).is_err());
    }

    #[test]
    fn zstd_is_a_zstd_frame() {
        // Written by the zstd command line (with and without the content size).
        let with_size = [
            0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x69, 0x5d, 0x01, 0x00, 0x34, 0x02, 0x48, 0x65, 0x6c,
            0x6c, 0x6f, 0x20, 0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x20, 0x63, 0x6c, 0x69, 0x65,
            0x6e, 0x74, 0x2c, 0x20, 0x74, 0x68, 0x69, 0x73, 0x20, 0x69, 0x73, 0x20, 0x61, 0x20,
            0x6d, 0x73, 0x67, 0x2e, 0x01, 0x00, 0x1b, 0x83, 0xaa, 0x27, 0x1a, 0x59, 0xb6, 0xbe,
        ];
        let mut without_size = with_size.to_vec();
        without_size.splice(4..6, [0x04, 0x58]);
        for golden in [&with_size[..], &without_size] {
            let out = decompress(Compression::Zstd, golden, HELLO_3.len(), 1 << 20);
            assert_eq!(out.as_deref(), Ok(HELLO_3));
            for wrong in [HELLO_3.len() - 1, HELLO_3.len() + 1, 0] {
                assert!(decompress(Compression::Zstd, golden, wrong, 1 << 20).is_err());
            }
        }
        // Without a recorded size, decoding stops at the claim.
        assert_eq!(
            decompress(Compression::Zstd, &without_size, 50, 1 << 20),
            Err(CompressionError::SizeMismatch {
                expected: 50,
                actual: 51
            })
        );
        // With one, a larger size is refused before decoding.
        assert_eq!(
            decompress(Compression::Zstd, &with_size, 50, 1 << 20),
            Err(CompressionError::SizeMismatch {
                expected: 50,
                actual: HELLO_3.len()
            })
        );
        // A wrong content checksum is caught.
        let mut bad = with_size;
        bad[with_size.len() - 1] ^= 1;
        assert!(decompress(Compression::Zstd, &bad, HELLO_3.len(), 1 << 20).is_err());

        for (name, input) in inputs() {
            let packed = compress(Compression::Zstd, &input);
            assert_eq!(
                &packed[..4],
                &[0x28, 0xb5, 0x2f, 0xfd],
                "{name}: frame magic"
            );
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(&packed).ok(),
                Some(Some(input.len() as u64)),
                "{name}: the frame records its size"
            );
        }
    }

    #[test]
    fn a_lying_size_is_an_error() {
        let mut rng = Rng(42);
        for (name, input) in [
            ("text", b"some payload that compresses, ".repeat(40)),
            ("random", rng.bytes(3000)),
        ] {
            for codec in Compression::ALL {
                let packed = compress(codec, &input);
                let truth = input.len();
                for claim in [0, 1, truth / 2, truth - 1] {
                    match decompress(codec, &packed, claim, 1 << 20) {
                        Err(CompressionError::SizeMismatch { expected, actual }) => {
                            assert_eq!(expected, claim);
                            assert!(actual > claim, "{codec} {name}: {actual} for {claim}");
                        }
                        Err(CompressionError::Corrupt { .. }) => {}
                        other => panic!("{codec} {name}: claim {claim}: {other:?}"),
                    }
                }
                for claim in [truth + 1, truth * 2, 1 << 20] {
                    match decompress(codec, &packed, claim, 1 << 20) {
                        Err(CompressionError::SizeMismatch { expected, actual }) => {
                            assert_eq!(expected, claim);
                            assert_eq!(actual, truth, "{codec} {name}");
                        }
                        Err(CompressionError::Corrupt { .. }) => {}
                        other => panic!("{codec} {name}: claim {claim}: {other:?}"),
                    }
                }
            }
        }
    }

    type Decoder = fn(&[u8], usize) -> Result<Vec<u8>, CompressionError>;

    #[test]
    fn the_output_buffer_has_the_claimed_size_and_never_grows() {
        let input = batch_like(1 << 20, &mut Rng(3));
        let decoders: [(Compression, Decoder); 4] = [
            (Compression::Lz4, lz4_decompress),
            (Compression::Zlib, zlib_decompress),
            (Compression::Zstd, zstd_decompress),
            (Compression::Snappy, snappy_decompress),
        ];
        for (codec, decode) in decoders {
            let packed = compress(codec, &input);
            let out = decode(&packed, input.len()).unwrap_or_else(|e| panic!("{codec}: {e}"));
            assert_eq!(out.capacity(), input.len(), "{codec}");
            assert_eq!(out, input, "{codec}");
            // A larger claim: the buffer has that size and the data is shorter.
            let claim = input.len() + 4096;
            if let Ok(out) = decode(&packed, claim) {
                assert_eq!(out.capacity(), claim, "{codec}");
                assert_eq!(out.len(), input.len(), "{codec}");
            }
            // A smaller claim is refused without reading on (LZ4 and zstd stop at the end of
            // the buffer, zlib after one byte more, Snappy and zstd from their headers).
            assert!(decode(&packed, 1000).is_err(), "{codec}");
        }
    }

    #[test]
    fn the_size_mismatch_message_says_which_way() {
        let more = CompressionError::SizeMismatch {
            expected: 10,
            actual: 11,
        };
        assert!(
            more.to_string().contains("more than the 10 bytes"),
            "{more}"
        );
        let less = CompressionError::SizeMismatch {
            expected: 10,
            actual: 3,
        };
        assert!(
            less.to_string().contains("to 3 bytes, not the 10"),
            "{less}"
        );
    }

    #[test]
    fn claims_above_the_limit_are_refused_first() {
        for codec in Compression::ALL {
            for (claim, max) in [(10 << 20, 5 << 20), (usize::MAX, 5 << 20), (1, 0)] {
                // The input is garbage: it is never looked at.
                let r = decompress(codec, b"\xff\xff\xff garbage", claim, max);
                assert_eq!(
                    r,
                    Err(CompressionError::TooLarge { size: claim, max }),
                    "{codec}"
                );
            }
        }
        let e = CompressionError::TooLarge { size: 9, max: 5 };
        assert!(
            e.to_string().contains("9 bytes, above the limit of 5"),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage: [&[u8]; 6] = [
            b"",
            b"\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"not compressed at all, just some text",
            &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7],
            &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff],
        ];
        for codec in CODECS {
            for g in garbage {
                for claim in [1, 37, 1000] {
                    assert!(
                        decompress(codec, g, claim, 1 << 20).is_err(),
                        "{codec} accepted {g:?} as {claim} bytes"
                    );
                }
            }
        }
        // The LZ4 frame format and Snappy's framed format are not what Pulsar sends.
        let snappy_stream = b"\xff\x06\x00\x00sNaPpY\x01\x09\x00\x00\xbb\x1f\x1c\x19abcde";
        assert!(decompress(Compression::Snappy, snappy_stream, 5, 1 << 20).is_err());
    }

    #[test]
    fn unsupported_codec_numbers() {
        for n in [-1, 5, 99, i32::MAX] {
            assert_eq!(Compression::from_wire(n), None);
        }
        let e = CompressionError::Unsupported(7);
        assert!(e.to_string().contains("unknown compression codec 7"), "{e}");
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let mut rng = Rng(0x5eed);
        let seeds: Vec<Vec<u8>> = vec![
            b"Hello python client, this is a msg.".repeat(20),
            batch_like(4096, &mut rng),
            rng.bytes(700),
        ];
        for codec in CODECS {
            let packed: Vec<Vec<u8>> = seeds.iter().map(|s| compress(codec, s).to_vec()).collect();
            for round in 0..3000 {
                let which = round % seeds.len();
                let truth = seeds[which].len();
                let mut data = packed[which].clone();
                match rng.below(5) {
                    // Random bytes.
                    0 => {
                        let n = rng.below(300);
                        data = rng.bytes(n);
                    }
                    // A few flipped bytes.
                    1 | 2 => {
                        for _ in 0..=rng.below(4) {
                            let at = rng.below(data.len());
                            data[at] ^= 1 << rng.below(8);
                        }
                    }
                    // Cut short.
                    3 => data.truncate(rng.below(data.len())),
                    // Random bytes spliced in.
                    _ => {
                        let at = rng.below(data.len());
                        let n = rng.below(16) + 1;
                        let extra = rng.bytes(n);
                        data.splice(at..at, extra);
                    }
                }
                let claim = match rng.below(3) {
                    0 => truth,
                    1 => rng.below(2 * truth + 1),
                    _ => rng.below(1 << 16),
                };
                if let Ok(out) = decompress(codec, &data, claim, 1 << 20) {
                    assert_eq!(out.len(), claim, "{codec}");
                }
            }
        }
    }

    #[test]
    fn names_parse_and_print() {
        for codec in Compression::ALL {
            assert_eq!(codec.to_string().parse::<Compression>(), Ok(codec));
            assert_eq!(
                codec.to_string().to_uppercase().parse::<Compression>(),
                Ok(codec)
            );
            assert_eq!(Compression::from_wire(codec.to_wire()), Some(codec));
        }
        assert_eq!("ZStd".parse::<Compression>(), Ok(Compression::Zstd));
        assert!("brotli".parse::<Compression>().is_err());
        assert!("".parse::<Compression>().is_err());
        assert_eq!(Compression::default(), Compression::None);
        let wire: Vec<i32> = Compression::ALL.iter().map(|c| c.to_wire()).collect();
        assert_eq!(wire, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn zstd_contexts_are_reused_across_calls() {
        let input = b"reuse ".repeat(1000);
        for _ in 0..50 {
            let packed = compress(Compression::Zstd, &input);
            let out = decompress(Compression::Zstd, &packed, input.len(), 1 << 20);
            assert_eq!(out.as_deref(), Ok(input.as_slice()));
            // A failure in between leaves the context usable.
            assert!(decompress(Compression::Zstd, &packed[..10], input.len(), 1 << 20).is_err());
        }
    }
}
