//! What the server writes, checked: JSON-RPC error shapes, member order, and a
//! process's notifications (`Run`, the event-sequence rules of docs/protocol.md
//! "Processes").

use serde_json::{json, Map, Value};

use super::fixtures::unb64;

/// The exact prefix of every malformed-message error (docs/protocol.md "Transport").
pub const MALFORMED_PREFIX: &str = "failed to parse JSON-RPC message from exec-server stdio: ";

/// The error `(code, message)` of a response, if it is an error.
pub fn error_of(resp: &Value) -> Option<(i64, String)> {
    let e = resp.get("error")?;
    Some((
        e["code"].as_i64().expect("error.code is an integer"),
        e["message"]
            .as_str()
            .expect("error.message is a string")
            .to_string(),
    ))
}

/// Asserts `resp` is exactly the error `{"error":{"code","message"},"id"}`.
#[track_caller]
pub fn assert_error(resp: &Value, code: i64, message: &str) {
    let (c, m) =
        error_of(resp).unwrap_or_else(|| panic!("expected error {code} {message:?}, got {resp}"));
    assert_eq!((c, m.as_str()), (code, message), "response: {resp}");
    let obj = resp.as_object().unwrap();
    assert_eq!(
        obj.len(),
        2,
        "error response has exactly error and id: {resp}"
    );
    assert_eq!(
        resp["error"].as_object().unwrap().len(),
        2,
        "no data member: {resp}"
    );
}

/// Asserts `resp` is the error of a failed `process/start`:
/// `{"error":{"code","message","data":{"kind"}},"id"}` (docs/protocol.md
/// "What the server writes": only these errors have `data`).
#[track_caller]
pub fn assert_start_error(resp: &Value, code: i64, message: &str, kind: &str) {
    let (c, m) =
        error_of(resp).unwrap_or_else(|| panic!("expected error {code} {message:?}, got {resp}"));
    assert_eq!((c, m.as_str()), (code, message), "response: {resp}");
    assert_eq!(resp.as_object().unwrap().len(), 2, "error and id: {resp}");
    assert_eq!(resp["error"]["data"], json!({ "kind": kind }), "{resp}");
    assert_eq!(resp["error"].as_object().unwrap().len(), 3, "{resp}");
}

/// Asserts `resp` is an error with `code` whose message starts with `prefix`.
#[track_caller]
pub fn assert_error_prefix(resp: &Value, code: i64, prefix: &str) {
    let (c, m) =
        error_of(resp).unwrap_or_else(|| panic!("expected error {code} {prefix:?}..., got {resp}"));
    assert_eq!(c, code, "response: {resp}");
    assert!(
        m.starts_with(prefix),
        "message {m:?} should start with {prefix:?}"
    );
}

/// Asserts a malformed-message error (id -1) with the given exact detail.
#[track_caller]
pub fn assert_malformed(resp: &Value, detail: &str) {
    assert_eq!(resp["id"], json!(-1), "malformed errors have id -1: {resp}");
    assert_error(resp, -32600, &format!("{MALFORMED_PREFIX}{detail}"));
}

/// Asserts that the keys appear in `raw` in the given order (each as `"key":`).
#[track_caller]
pub fn assert_key_order(raw: &str, keys: &[&str]) {
    let mut last = 0usize;
    let mut last_key = "";
    for k in keys {
        let pat = format!("\"{k}\":");
        let pos = raw[last..]
            .find(&pat)
            .map(|p| p + last)
            .unwrap_or_else(|| panic!("key {k:?} not found after {last_key:?} in {raw}"));
        last = pos + pat.len();
        last_key = k;
    }
}

/// A finished process: its notifications and decoded output.
#[derive(Debug, Default)]
pub struct Run {
    pub events: Vec<Value>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub pty: Vec<u8>,
    pub exited: Value,
}

impl Run {
    pub fn from_events(events: Vec<Value>) -> Run {
        check_event_sequence(&events);
        let mut r = Run {
            events,
            ..Default::default()
        };
        for e in &r.events {
            match e["method"].as_str().unwrap() {
                "process/output" => {
                    let bytes = unb64(e["params"]["chunk"].as_str().expect("chunk"));
                    match e["params"]["stream"].as_str().expect("stream") {
                        "stdout" => r.stdout.extend(bytes),
                        "stderr" => r.stderr.extend(bytes),
                        "pty" => r.pty.extend(bytes),
                        other => panic!("unknown stream {other}"),
                    }
                }
                "process/exited" => r.exited = e["params"].clone(),
                _ => {}
            }
        }
        r
    }
    pub fn exit_code(&self) -> i64 {
        self.exited["exitCode"].as_i64().expect("exitCode")
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn pty_str(&self) -> String {
        String::from_utf8_lossy(&self.pty).into_owned()
    }
    pub fn signal(&self) -> Option<&str> {
        self.exited.get("signal").and_then(Value::as_str)
    }
}

/// Concatenated decoded output of `process/output` notifications (optionally
/// one stream only).
pub fn output_bytes(events: &[Value], stream: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        let stream_ok = match stream {
            None => true,
            Some(s) => e["params"]["stream"] == s,
        };
        if e["method"] == "process/output" && stream_ok {
            out.extend(unb64(e["params"]["chunk"].as_str().expect("chunk")));
        }
    }
    out
}

/// docs/protocol.md "Processes": seq starts at 1, strictly increasing without gaps; one `exited`
/// (after every output chunk it follows) and one `closed`, which is last;
/// every chunk holds 1..=65536 bytes; exact member sets.
#[track_caller]
pub fn check_event_sequence(events: &[Value]) {
    assert!(!events.is_empty(), "no events");
    let mut exited = 0;
    for (i, e) in events.iter().enumerate() {
        let p = &e["params"];
        let seq = p["seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("seq missing in {e}"));
        assert_eq!(
            seq,
            i as i64 + 1,
            "seq must start at 1 and have no gaps: event {i} is {e}"
        );
        let obj = p.as_object().unwrap();
        match e["method"].as_str().unwrap() {
            "process/output" => {
                assert_eq!(
                    obj.len(),
                    4,
                    "output params are processId, seq, stream, chunk: {e}"
                );
                let n = unb64(p["chunk"].as_str().unwrap()).len();
                assert!((1..=65536).contains(&n), "chunk of {n} bytes: {e:.200}");
            }
            "process/exited" => {
                exited += 1;
                assert!(p["exitCode"].is_i64(), "exitCode: {e}");
                assert!(p["sandboxDenied"].is_boolean(), "sandboxDenied: {e}");
                let expected = if obj.contains_key("signal") { 5 } else { 4 };
                assert_eq!(obj.len(), expected, "exited params: {e}");
            }
            "process/closed" => {
                assert_eq!(i, events.len() - 1, "closed must be the last event");
                assert_eq!(obj.len(), 2, "closed params are processId and seq: {e}");
                assert_eq!(exited, 1, "exactly one exited before closed");
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(
            e.as_object().unwrap().len(),
            2,
            "notification has method and params only: {e}"
        );
    }
    assert_eq!(events.last().unwrap()["method"], "process/closed");
}

/// Parses `env` output lines into a sorted list of `NAME=value` lines.
pub fn env_lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

/// Sorted `NAME=value` lines for the given map.
pub fn expected_env(pairs: &Map<String, Value>) -> Vec<String> {
    let mut v: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    v.sort();
    v
}
