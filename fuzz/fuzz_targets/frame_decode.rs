//! Bytes from the network: `wire::decode` in a loop over a `BytesMut` until it needs more bytes
//! or fails, and `wire::decode_frame` on the whole input. No panic, no call growing the heap past
//! the max frame size, and `decode` consumes exactly what `check` announces.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pulsar_wire::wire::{self, FrameError};

#[path = "heap.rs"]
mod heap;

#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let announced = wire::check(&buf, MAX);
        let (res, grown) = heap::measured(|| wire::decode(&mut buf, MAX));
        assert!(grown <= MAX, "decode grew the heap by {grown} bytes");
        match (res, announced) {
            (Ok(Some(frame)), Ok(Some(n))) => {
                assert_eq!(buf.len(), before - n);
                assert_eq!(
                    frame.payload.is_some(),
                    wire::carries_payload(frame.command.r#type)
                );
            }
            (Ok(None), Ok(None)) => {
                assert_eq!(buf.len(), before);
                break;
            }
            // Refused from the size field: nothing consumed.
            (Err(e), Err(a)) => {
                assert_eq!(e, a);
                assert_eq!(buf.len(), before);
                break;
            }
            // Refused after the size field was accepted: the frame is consumed.
            (Err(e), Ok(Some(n))) => {
                assert!(!matches!(e, FrameError::TooLarge { .. }));
                assert_eq!(buf.len(), before - n);
                break;
            }
            (res, announced) => panic!("decode gave {res:?} where check gave {announced:?}"),
        }
    }

    let bytes = Bytes::copy_from_slice(data);
    let (res, grown) = heap::measured(|| wire::decode_frame(bytes, MAX));
    assert!(grown <= MAX, "decode_frame grew the heap by {grown} bytes");
    if let Err(e) = res {
        assert!(!e.to_string().is_empty());
    }
});
