//! Escalation frames (docs/protocol.md "Exec escalation"): length-prefixed JSON read from a stream socket.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tether::fuzzing::check_frames(data);
});
