//! A whole connection through the Dispatcher over in-memory pipes: every request is
//! answered, every malformed line gets its error, every line written is one JSON
//! message. Bit 0 of the first byte puts a handshake in front. Requests for methods
//! with effects outside the server (process/start, fs writes, tools/call, http) are
//! left out by the harness.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};
use tether::fuzzing::DispatchHarness;

static HARNESS: OnceLock<Mutex<DispatchHarness>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&b0, rest)) = data.split_first() else {
        return;
    };
    let h = HARNESS.get_or_init(|| Mutex::new(DispatchHarness::new()));
    h.lock().unwrap().run(rest, b0 & 1 == 1);
});
