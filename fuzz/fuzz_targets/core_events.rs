//! The sans-IO consumer and producer cores driven by a script of broker events, application
//! commands and simulated time: the first byte picks the core (even: the consumer, odd: the
//! producer), the rest is the script. The drivers (`pulsar_wire::protocol::fuzz`) assert the
//! cores' invariants after every step; see that module's docs for the list.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pulsar_wire::protocol::fuzz;

fuzz_target!(|data: &[u8]| {
    if let Some((which, script)) = data.split_first() {
        if which & 1 == 0 {
            fuzz::consumer_events(script);
        } else {
            fuzz::producer_events(script);
        }
    }
});
