//! Path members (docs/protocol.md "Transport"): `file:` URIs and plain absolute paths.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        tether::fuzzing::check_path(s);
    }
});
