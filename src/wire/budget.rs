//! A bound on the memory a protobuf section can decode into, computed before prost runs.
//!
//! prost allocates only for what is present in its input, never from a claimed length, so the
//! decoded size of a section is bounded by its bytes. The bound is not 1:1, though: a repeated
//! message element encoded in 2 bytes (tag, length 0) becomes an in-memory struct of up to 80
//! bytes, held in a `Vec` that may grow to twice its length. A 5 MiB frame of such elements would
//! decode into hundreds of MiB. This module walks the protobuf wire format without a schema and
//! adds up a conservative estimate, so that [`super::frame`] can refuse such a section with
//! [`FrameError::TooComplex`](super::FrameError::TooComplex) before anything is allocated.
//!
//! The estimate, per field occurrence at any depth:
//! - [`PER_FIELD`] bytes, which covers the largest repeated element type of `PulsarApi.proto`
//!   (`MessageIdData` and `EncryptionKeys`, 80 bytes) three times over: the `Vec` doubling and the
//!   old buffer alive while it moves;
//! - plus, for a length-delimited field that does not itself parse as a message (a string, bytes,
//!   or packed scalars), its length, times [`PACKED_FACTOR`] when its field number is one that a
//!   packed repeated scalar uses in the schema (4, 5 and 31: `ack_set` and
//!   `compacted_batch_indexes`), since one byte of packed varints can become an 8-byte `i64`
//!   (24 bytes with `Vec` growth).
//!
//! A nested length-delimited field is walked as a message when it parses as one. The walk is
//! linear in the input per nesting level and stops nesting at [`MAX_DEPTH`].

use super::error::{FrameError, Section};

/// Heap bytes charged per field occurrence.
pub(crate) const PER_FIELD: u64 = 256;
/// Heap bytes charged per byte of a length-delimited leaf that could be packed scalars.
pub(crate) const PACKED_FACTOR: u64 = 24;
/// Nesting depth walked (Pulsar's deepest path is 4: command, ack, message id, first chunk id).
pub(crate) const MAX_DEPTH: usize = 8;

/// Field numbers used by packed-capable repeated scalars in `PulsarApi.proto`.
fn may_be_packed(field: u64) -> bool {
    matches!(field, 4 | 5 | 31)
}

/// Refuses `bytes` when its decoded form could exceed `budget` bytes.
pub(crate) fn check(section: Section, bytes: &[u8], budget: usize) -> Result<(), FrameError> {
    // Cheap accept: even if every byte were its own field, the estimate stays under budget.
    let worst = (bytes.len() as u64).saturating_mul(PER_FIELD);
    if worst <= budget as u64 {
        return Ok(());
    }
    let estimate = walk(bytes, 0).unwrap_or_else(|partial| partial);
    if estimate > budget as u64 {
        return Err(FrameError::TooComplex {
            section,
            estimate,
            budget,
        });
    }
    Ok(())
}

/// Estimates the decoded size of `bytes` read as a message. `Err(partial)` when the bytes are not
/// a well-formed message: `partial` is the estimate of what parsed before the error.
fn walk(bytes: &[u8], depth: usize) -> Result<u64, u64> {
    let mut pos = 0usize;
    let mut total = 0u64;
    while pos < bytes.len() {
        let key = read_varint(bytes, &mut pos).ok_or(total)?;
        let field = key >> 3;
        if field == 0 {
            return Err(total);
        }
        total = total.saturating_add(PER_FIELD);
        match key & 7 {
            0 => {
                read_varint(bytes, &mut pos).ok_or(total)?;
            }
            1 => pos = skip(bytes, pos, 8).ok_or(total)?,
            5 => pos = skip(bytes, pos, 4).ok_or(total)?,
            2 => {
                let len = read_varint(bytes, &mut pos).ok_or(total)?;
                let start = pos;
                pos = skip(bytes, pos, len).ok_or(total)?;
                let inner = &bytes[start..pos];
                let nested = if depth + 1 < MAX_DEPTH {
                    walk(inner, depth + 1).ok()
                } else {
                    None
                };
                let cost = nested.unwrap_or_else(|| {
                    let factor = if may_be_packed(field) {
                        PACKED_FACTOR
                    } else {
                        1
                    };
                    (inner.len() as u64).saturating_mul(factor)
                });
                total = total.saturating_add(cost);
            }
            // Groups (3, 4) and the reserved wire types are not used by Pulsar: prost will reject
            // what follows, so stop here.
            _ => return Err(total),
        }
    }
    Ok(total)
}

fn skip(bytes: &[u8], pos: usize, len: u64) -> Option<usize> {
    let end = (pos as u64).checked_add(len)?;
    if end > bytes.len() as u64 {
        return None;
    }
    Some(end as usize)
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        if shift < 64 {
            value |= u64::from(byte & 0x7f) << shift;
        }
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto;

    #[test]
    fn per_field_covers_the_largest_repeated_element_three_times() {
        let largest = [
            std::mem::size_of::<proto::MessageIdData>(),
            std::mem::size_of::<proto::EncryptionKeys>(),
            std::mem::size_of::<proto::KeyValue>(),
            std::mem::size_of::<proto::KeyLongValue>(),
            std::mem::size_of::<proto::IntRange>(),
            std::mem::size_of::<String>(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        assert!(
            3 * largest as u64 <= PER_FIELD,
            "largest element {largest} bytes"
        );
    }

    #[test]
    fn small_sections_are_accepted_without_a_walk() {
        assert!(check(Section::Command, &[0xff; 16], 4096).is_ok());
    }

    #[test]
    fn many_empty_elements_are_refused() {
        // CommandAck (field 10 of BaseCommand) holding 100k empty message ids (field 3, length 0).
        let mut ack = Vec::new();
        for _ in 0..100_000 {
            ack.extend_from_slice(&[0x1a, 0x00]);
        }
        let mut cmd = vec![0x08, 0x0a, 0x52];
        let mut len = ack.len();
        while len >= 0x80 {
            cmd.push((len as u8) | 0x80);
            len >>= 7;
        }
        cmd.push(len as u8);
        cmd.extend_from_slice(&ack);
        let err = check(Section::Command, &cmd, 1 << 20);
        assert!(matches!(err, Err(FrameError::TooComplex { .. })), "{err:?}");
    }

    #[test]
    fn a_long_string_costs_its_length() {
        // One string field of 100k bytes that does not parse as a message.
        let mut msg = vec![0x12, 0xa0, 0x8d, 0x06];
        msg.extend(std::iter::repeat_n(0xffu8, 100_000));
        assert_eq!(walk(&msg, 0), Ok(PER_FIELD + 100_000));
    }

    #[test]
    fn truncated_input_gives_a_partial_estimate() {
        assert_eq!(walk(&[0x08, 0x80], 0), Err(PER_FIELD));
        assert_eq!(walk(&[0x00], 0), Err(0));
    }
}
