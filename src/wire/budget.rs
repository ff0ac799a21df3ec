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
//! A nested length-delimited field is walked as a message, and charged the larger of that and its
//! cost as a leaf: prost may read it either way, and when it is not a well-formed message prost
//! may still decode (and allocate for) its start before failing. The walk is linear in the input
//! per nesting level and stops nesting at [`MAX_DEPTH`]; a field deeper than that (Pulsar has none)
//! is charged [`PER_FIELD`] per byte, which bounds anything it can hold. Groups (unused by Pulsar)
//! are walked past: prost skips them as unknown fields, allocating nothing, or fails on them.
//!
//! The sections of one frame are decoded into memory that stays alive together, so they share one
//! budget: [`charge`] adds a section's estimate to what earlier sections spent.

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
    charge(section, bytes, budget, 0).map(drop)
}

/// Adds the estimated decoded size of `bytes` to `spent`, the estimate for the sections of the
/// same frame decoded before it, and returns the sum; refuses `bytes` when the sum could exceed
/// `budget` bytes (the error's `estimate` is that sum).
pub(crate) fn charge(
    section: Section,
    bytes: &[u8],
    budget: usize,
    spent: u64,
) -> Result<u64, FrameError> {
    let own = walk(bytes, 0).unwrap_or_else(|partial| partial);
    let estimate = spent.saturating_add(own);
    if estimate > budget as u64 {
        return Err(FrameError::TooComplex {
            section,
            estimate,
            budget,
        });
    }
    Ok(estimate)
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
                let cost = if depth + 1 < MAX_DEPTH {
                    let factor = if may_be_packed(field) {
                        PACKED_FACTOR
                    } else {
                        1
                    };
                    let as_leaf = (inner.len() as u64).saturating_mul(factor);
                    let as_message = walk(inner, depth + 1).unwrap_or_else(|partial| partial);
                    as_leaf.max(as_message)
                } else {
                    (inner.len() as u64).saturating_mul(PER_FIELD)
                };
                total = total.saturating_add(cost);
            }
            // A group: prost skips it as an unknown field, or fails on it.
            3 => skip_group(bytes, &mut pos).ok_or(total)?,
            // An end-group key without its start and the reserved wire types: prost fails here.
            _ => return Err(total),
        }
    }
    Ok(total)
}

/// Moves `pos` past the group whose start key was just read, up to its end key. `None` when the
/// group does not end well (prost fails on it too).
fn skip_group(bytes: &[u8], pos: &mut usize) -> Option<()> {
    let mut open = 1usize;
    while open > 0 {
        let key = read_varint(bytes, pos)?;
        if key >> 3 == 0 {
            return None;
        }
        match key & 7 {
            0 => {
                read_varint(bytes, pos)?;
            }
            1 => *pos = skip(bytes, *pos, 8)?,
            2 => {
                let len = read_varint(bytes, pos)?;
                *pos = skip(bytes, *pos, len)?;
            }
            3 => open += 1,
            4 => open -= 1,
            5 => *pos = skip(bytes, *pos, 4)?,
            _ => return None,
        }
    }
    Some(())
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
    fn small_malformed_sections_are_left_to_prost() {
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

    fn ld(field: u8, body: &[u8]) -> Vec<u8> {
        assert!(field < 16 && body.len() < 0x4000);
        let mut out = vec![field << 3 | 2];
        if body.len() >= 0x80 {
            out.extend_from_slice(&[(body.len() as u8) | 0x80, (body.len() >> 7) as u8]);
        } else {
            out.push(body.len() as u8);
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn charge_adds_to_what_earlier_sections_spent() {
        // One varint field: PER_FIELD.
        assert_eq!(
            charge(Section::Command, &[0x08, 0x01], 1000, 0),
            Ok(PER_FIELD)
        );
        assert_eq!(
            charge(Section::Metadata, &[0x08, 0x01], 1000, 700),
            Ok(700 + PER_FIELD)
        );
        assert_eq!(
            charge(Section::Metadata, &[0x08, 0x01], 1000, 800),
            Err(FrameError::TooComplex {
                section: Section::Metadata,
                estimate: 800 + PER_FIELD,
                budget: 1000
            })
        );
        assert_eq!(
            check(Section::Command, &[0x08, 0x01], 255).map_err(|_| ()),
            Err(())
        );
    }

    #[test]
    fn groups_are_walked_past() {
        // Regression: the walk stopped at a group (wire type 3) and returned what it had so far,
        // but prost skips an unknown group and decodes what follows it.
        // Group of field 100 (start 0xa3 0x06, end 0xa4 0x06) holding a varint, then an empty
        // message field.
        let bytes = [0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06, 0x1a, 0x00];
        assert_eq!(walk(&bytes, 0), Ok(2 * PER_FIELD));
        // Nested groups, and every wire type inside.
        let bytes = [
            0x1b, 0x23, 0x08, 0x01, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x01, 0xff, 0x25, 0, 0, 0,
            0, 0x24, 0x1c, 0x08, 0x01,
        ];
        assert_eq!(walk(&bytes, 0), Ok(2 * PER_FIELD));
        // Groups that do not end well, and an end without a start.
        assert_eq!(walk(&[0x1b, 0x08, 0x01], 0), Err(PER_FIELD));
        assert_eq!(walk(&[0x1b, 0x00], 0), Err(PER_FIELD));
        assert_eq!(walk(&[0x1b, 0x0f], 0), Err(PER_FIELD));
        assert_eq!(walk(&[0x08, 0x01, 0x1c], 0), Err(2 * PER_FIELD));
        // A group first no longer hides 100k empty message ids.
        let mut ack = Vec::new();
        for _ in 0..100_000 {
            ack.extend_from_slice(&[0x1a, 0x00]);
        }
        let mut cmd = vec![0xa3, 0x06, 0xa4, 0x06, 0x08, 0x0a, 0x52];
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
    fn a_nested_field_costs_at_least_its_leaf_cost() {
        // Regression: a length-delimited field that parsed as a message was charged as one only,
        // but a group hides its content from the walk while prost may read the same bytes as
        // packed scalars (field 5: `ack_set`): 1002 bytes, 500 of them one-byte varints.
        let mut group = vec![0x1b];
        for _ in 0..500 {
            group.extend_from_slice(&[0x08, 0x01]);
        }
        group.push(0x1c);
        assert_eq!(walk(&group, 1), Ok(PER_FIELD));
        let field = ld(5, &group);
        assert_eq!(walk(&field, 0), Ok(PER_FIELD + 1002 * PACKED_FACTOR));
        // The same as field 6 (not packed-capable): the leaf cost is its length.
        let field = ld(6, &group);
        assert_eq!(walk(&field, 0), Ok(PER_FIELD + 1002));
    }

    #[test]
    fn a_malformed_nested_message_costs_what_parsed_before_the_error() {
        // Regression: a nested field that did not parse as a message was charged its length only,
        // but prost decodes (and allocates for) the part before the error: here 1000 repeated
        // varints (`ack_set` entries of a message id) before a field number 0.
        let mut id = Vec::new();
        for _ in 0..1000 {
            id.extend_from_slice(&[0x28, 0x00]);
        }
        id.push(0x00);
        assert_eq!(walk(&id, 1), Err(1000 * PER_FIELD));
        let field = ld(3, &id);
        assert_eq!(walk(&field, 0), Ok(PER_FIELD + 1000 * PER_FIELD));
    }

    #[test]
    fn nesting_deeper_than_the_walk_costs_per_field_per_byte() {
        // Regression: past MAX_DEPTH a field was charged its length, but a chain of boxed
        // first-chunk ids (field 7) or a packed ack_set down there decodes into far more.
        let innermost = vec![0x08; 100];
        let mut bytes = innermost.clone();
        for _ in 0..MAX_DEPTH {
            bytes = ld(7, &bytes);
        }
        let estimate = walk(&bytes, 0);
        // MAX_DEPTH fields, each charged PER_FIELD; the content of the deepest one, which the walk
        // does not enter, charged PER_FIELD per byte.
        assert_eq!(
            estimate,
            Ok(MAX_DEPTH as u64 * PER_FIELD + innermost.len() as u64 * PER_FIELD)
        );
    }
}
