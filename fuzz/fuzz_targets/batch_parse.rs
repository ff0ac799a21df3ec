//! A batch payload: the first two bytes choose `num_messages`, the rest is parsed with
//! `parse_batch` and collected; the whole input is also read as a serialized `MessageId`.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pulsar_wire::wire::{self, FrameError, MessageId};

#[path = "heap.rs"]
mod heap;

#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

const MAX: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if let [a, b, rest @ ..] = data {
        let n = u32::from(u16::from_be_bytes([*a, *b]));
        let batch = Bytes::copy_from_slice(rest);
        let mut iter = wire::parse_batch(batch.clone(), n, MAX);
        let mut items = 0u64;
        loop {
            let (_, upper) = iter.size_hint();
            // Each entry's metadata decodes within the budget.
            let (item, grown) = heap::measured(|| iter.next());
            assert!(grown <= MAX, "parse_batch grew the heap by {grown} bytes");
            let Some(item) = item else { break };
            items += 1;
            assert!(upper.is_some_and(|u| u >= 1));
            match item {
                Ok(entry) => {
                    // The payload is a slice of the batch.
                    let start = batch.as_ptr() as usize;
                    let p = entry.payload.as_ptr() as usize;
                    assert!(
                        entry.payload.is_empty()
                            || (p >= start && p + entry.payload.len() <= start + batch.len())
                    );
                }
                Err(FrameError::BatchCountMismatch { expected, found }) => {
                    assert_eq!(expected, n);
                    assert_ne!(found, n);
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        assert!(items <= u64::from(n) + 1);
        // An error ends the iteration.
        assert!(iter.next().is_none());
    }

    let (res, grown) = heap::measured(|| MessageId::deserialize(data));
    assert!(
        grown <= 64 * 1024,
        "MessageId::deserialize grew the heap by {grown} bytes"
    );
    if let Ok(id) = res {
        // It serializes back to a form that reads the same (a partition below -1 is not
        // written, as in the Java client).
        let expected = MessageId {
            partition: id.partition.max(-1),
            ..id
        };
        assert_eq!(MessageId::deserialize(&id.serialize()), Ok(expected));
    }
});
