//! `sandbox` members (docs/protocol.md "Sandbox"): any JSON value through the policy parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        tether::fuzzing::check_policy(&v);
    }
});
