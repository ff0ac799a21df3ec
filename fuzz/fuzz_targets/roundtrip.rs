//! Decode; when the frame decodes, encode it and decode that again: the same frame comes back,
//! but for `Payload::checksum`, which the encoder always writes.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pulsar_wire::wire::{self, Frame, FrameError};

const MAX: usize = 64 * 1024;

/// Equality, with a NaN (possible in the consumer stats response) equal to itself: the
/// encodings are compared when the frames are not `==`.
fn same(a: &Frame, b: &Frame) -> bool {
    if a == b {
        return true;
    }
    let (mut x, mut y) = (BytesMut::new(), BytesMut::new());
    a.command.consumer_stats_response.is_some()
        && a.encode(&mut x, usize::MAX).is_ok()
        && b.encode(&mut y, usize::MAX).is_ok()
        && x == y
}

fuzz_target!(|data: &[u8]| {
    let Ok(first) = wire::decode_frame(Bytes::copy_from_slice(data), MAX) else {
        return;
    };
    let mut dst = BytesMut::new();
    match first.encode(&mut dst, MAX) {
        Ok(()) => {}
        // A checksum block (6 bytes) is added when the input had none, and the protobufs are
        // re-encoded in canonical form, which can be longer.
        Err(FrameError::TooLarge { .. }) => return,
        Err(e) => panic!("a decoded frame does not encode: {e:?}"),
    }
    // The re-encoded protobufs can be larger than the input's (a packed ack_set is written
    // unpacked), so the second decode runs without a budget: its input is ours.
    let second = wire::decode_frame(dst.freeze(), usize::MAX);
    let Ok(mut second) = second else {
        panic!("a re-encoded frame does not decode: {second:?}\n{first:?}");
    };
    match (second.payload.as_mut(), first.payload.as_ref()) {
        (Some(b), Some(a)) => {
            assert!(b.checksum.is_some());
            b.checksum = a.checksum;
        }
        (None, None) => {}
        _ => panic!("payload lost or gained: {first:?} {second:?}"),
    }
    assert!(same(&second, &first), "{first:?}\n{second:?}");
});
