//! Bytes from stdin through the line splitter and the line classifier (docs/protocol.md "Transport"),
//! then the typed params of the method. The first byte picks the line limit (64 bytes
//! or 1 MiB) and the size of the pieces the stream arrives in.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&b0, rest)) = data.split_first() else {
        return;
    };
    let max = if b0 & 1 == 1 { 64 } else { 1 << 20 };
    tether::fuzzing::check_stream(rest, max, &[(b0 >> 1) as usize]);
});
