//! Key hashing for partition routing.
//!
//! The official Java and C++ clients pick the partition of a keyed message as
//! `hash(key) & 0x7fff_ffff` modulo the number of partitions, with one of two hash functions
//! (`HashingScheme` in the Java API):
//!
//! * Murmur3 x86 32-bit over the UTF-8 bytes of the key, seed 0 (the default);
//! * Java's `String.hashCode()` over the UTF-16 code units of the key.
//!
//! Producers written in different languages only agree on where a key lands if they use the
//! same scheme, so both are reproduced here bit for bit.

/// The hash function used to route a keyed message to a partition.
///
/// Mirrors `HashingScheme` of the Java client. [`HashingScheme::JavaString`] is the default, as
/// in the Java and Go clients (a Java producer with default settings and a pulsar-wire producer
/// send a key to the same partition); the C++ and Python clients default to a Boost hash,
/// which pulsar-wire does not have: set their `hashing_scheme` to Murmur3 or JavaString to agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashingScheme {
    /// Murmur3 x86 32-bit over the UTF-8 bytes of the key, seed 0 (`Murmur3_32Hash`).
    Murmur3,
    /// Java `String.hashCode()` over the UTF-16 code units of the key (`JavaStringHash`), the
    /// default.
    #[default]
    JavaString,
}

impl HashingScheme {
    /// The non-negative 31-bit routing hash of `key` under this scheme.
    pub fn hash(self, key: &str) -> u32 {
        match self {
            HashingScheme::Murmur3 => murmur3_partition_hash(key),
            HashingScheme::JavaString => java_partition_hash(key),
        }
    }
}

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k1(mut k1: u32) -> u32 {
    k1 = k1.wrapping_mul(C1);
    k1 = k1.rotate_left(15);
    k1.wrapping_mul(C2)
}

/// Murmur3 x86 32-bit hash of `data` with `seed` (Austin Appleby's `MurmurHash3_x86_32`).
///
/// Blocks are read little-endian, so the result does not depend on the host's byte order.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    let mut h1 = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k1 = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h1 ^= mix_k1(k1);
        h1 = h1.rotate_left(13);
        h1 = h1.wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    let tail = blocks.remainder();
    let mut k1: u32 = 0;
    if tail.len() >= 3 {
        k1 ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k1 ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        k1 ^= u32::from(tail[0]);
        h1 ^= mix_k1(k1);
    }

    // The reference implementation takes the length as a 32-bit int; keep its wrapping.
    h1 ^= data.len() as u32;
    fmix32(h1)
}

#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Java's `String.hashCode()` of `s`: `h = 31 * h + c` with wrapping 32-bit arithmetic over the
/// UTF-16 code units of the string (characters outside the BMP count as two surrogates).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The Murmur3 routing hash of the Java client: `murmur3_32(utf8(key), 0) & 0x7fff_ffff`.
pub fn murmur3_partition_hash(key: &str) -> u32 {
    murmur3_32(key.as_bytes(), 0) & 0x7fff_ffff
}

/// The Java-string routing hash of the Java client: `key.hashCode() & 0x7fff_ffff`.
pub fn java_partition_hash(key: &str) -> u32 {
    (java_string_hash(key) as u32) & 0x7fff_ffff
}

/// The partition, in `0..partitions`, that a message with `key` is routed to under `scheme`:
/// `hash(key) % partitions`.
///
/// A topic always has at least one partition; for the degenerate `partitions == 0` this returns
/// 0 rather than dividing by zero.
pub fn partition_for_key(key: &str, partitions: u32, scheme: HashingScheme) -> u32 {
    if partitions == 0 {
        return 0;
    }
    scheme.hash(key) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_reference_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn murmur3_every_tail_length() {
        // Published SMHasher-style vectors covering 0..=3 trailing bytes and full blocks.
        assert_eq!(murmur3_32(&[0, 0, 0, 0], 0), 0x2362_f9de);
        assert_eq!(murmur3_32(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
        assert_eq!(
            murmur3_32(&[0x21, 0x43, 0x65, 0x87], 0x5082_edee),
            0x2362_f9de
        );
        assert_eq!(murmur3_32(&[0x21, 0x43, 0x65], 0), 0x7e4a_8634);
        assert_eq!(murmur3_32(&[0x21, 0x43], 0), 0xa0f7_b07a);
        assert_eq!(murmur3_32(&[0x21], 0), 0x7266_1cf4);
        assert_eq!(murmur3_32(&[0xff, 0xff, 0xff, 0xff], 0), 0x7629_3b50);
        assert_eq!(murmur3_32(&[0, 0, 0], 0), 0x85f0_b427);
        assert_eq!(murmur3_32(&[0, 0], 0), 0x30f4_c306);
        assert_eq!(murmur3_32(&[0], 0), 0x514e_28b7);
    }

    #[test]
    fn murmur3_routing_hash_matches_java_and_cpp_clients() {
        for (key, expected) in [
            ("k1", 2_110_152_746u32),
            ("k2", 1_479_966_664),
            ("key1", 462_881_061),
            ("key2", 1_936_800_180),
            ("key01", 39_696_932),
            ("key02", 751_761_803),
        ] {
            assert_eq!(murmur3_partition_hash(key), expected, "key {key:?}");
            assert_eq!(HashingScheme::Murmur3.hash(key), expected, "key {key:?}");
        }
    }

    #[test]
    fn java_routing_hash_matches_java_and_cpp_clients() {
        assert_eq!(java_partition_hash("keykeykeykeykey1"), 434_058_482);
        assert_eq!(java_partition_hash("keykeykey2"), 42_978_643);
        assert_eq!(
            HashingScheme::JavaString.hash("keykeykey2"),
            java_partition_hash("keykeykey2")
        );
    }

    #[test]
    fn java_string_hash_basics() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        // "hello".hashCode() in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Long strings overflow and wrap like Java's int; the famous
        // "polygenelubricants".hashCode() is Integer.MIN_VALUE, whose masked routing hash is 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_partition_hash("polygenelubricants"), 0);
    }

    #[test]
    fn java_string_hash_uses_utf16_code_units() {
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(java_string_hash("€"), 0x20ac);
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16.
        assert_eq!(java_string_hash("😀"), 31 * 0xd83d + 0xde00);
        assert_eq!(java_string_hash("😀"), 1_772_899);
        // Not the same as hashing the UTF-8 bytes or the code point.
        assert_ne!(java_string_hash("😀"), 0x1f600);
        assert_eq!(java_string_hash("aé"), 97 * 31 + 233);
    }

    #[test]
    fn partition_for_key_is_hash_modulo_partitions() {
        assert_eq!(
            partition_for_key("k1", 7, HashingScheme::Murmur3),
            2_110_152_746 % 7
        );
        assert_eq!(
            partition_for_key("keykeykey2", 10, HashingScheme::JavaString),
            42_978_643 % 10
        );
        for key in ["", "a", "key01", "😀", "some longer routing key"] {
            for scheme in [HashingScheme::Murmur3, HashingScheme::JavaString] {
                assert_eq!(partition_for_key(key, 1, scheme), 0);
                assert!(partition_for_key(key, 5, scheme) < 5);
            }
        }
    }

    #[test]
    fn partition_for_key_with_zero_partitions_is_zero() {
        assert_eq!(partition_for_key("k1", 0, HashingScheme::Murmur3), 0);
        assert_eq!(partition_for_key("k1", 0, HashingScheme::JavaString), 0);
    }

    #[test]
    fn default_scheme_is_the_java_clients_java_string_hash() {
        assert_eq!(HashingScheme::default(), HashingScheme::JavaString);
    }
}
