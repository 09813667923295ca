//! docs/protocol.md "Transport" transport, docs/protocol.md "Handshake" handshake, docs/protocol.md "Environment methods" environment methods.

use std::collections::HashSet;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// One known method per family, with the exact `<family>` text of docs/protocol.md "Handshake".
const FAMILIES: &[(&str, &str)] = &[
    ("process/start", "exec"),
    ("process/read", "exec"),
    ("process/write", "exec"),
    ("process/signal", "exec"),
    ("process/terminate", "exec"),
    ("process/resize", "exec"),
    ("process/closeStdin", "exec"),
    ("fs/readFile", "filesystem"),
    ("fs/getMetadata", "filesystem"),
    ("fs/writeFile", "filesystem"),
    ("http/request", "http"),
    ("environment/info", "environment info"),
    ("environment/status", "environment status"),
    ("tools/list", "tools"),
    ("tools/call", "tools"),
];

fn status_ok(s: &mut Server) {
    let r = s.call("environment/status", json!({}));
    assert_eq!(r, json!({"status": "ready"}));
}

#[test]
fn nothing_is_written_before_the_first_response() {
    let mut s = Server::start();
    assert!(
        s.recv_timeout(Duration::from_millis(500)).is_none(),
        "server wrote before any request"
    );
    let r = s.initialize();
    assert!(r["sessionId"].is_string());
}

/// Both gate states for the given families, then the handshake completes.
fn check_gate(families: &[&str]) {
    let methods: Vec<(&str, &str)> = FAMILIES
        .iter()
        .copied()
        .filter(|(_, f)| families.contains(f))
        .collect();
    let mut s = Server::start();
    for (method, family) in &methods {
        // Params that would not decode: the gate is checked first (docs/protocol.md "Transport").
        let resp = s.request(method, json!({}));
        assert_error(
            &resp,
            -32600,
            &format!("client must call initialize before using {family} methods"),
        );
        let resp = s.request_no_params(method);
        assert_error(
            &resp,
            -32600,
            &format!("client must call initialize before using {family} methods"),
        );
    }
    s.call("initialize", json!({"clientName": "it"}));
    for (method, family) in &methods {
        let resp = s.request(method, json!({}));
        assert_error(
            &resp,
            -32600,
            &format!("client must send initialized before using {family} methods"),
        );
    }
    s.send_line(r#"{"method":"initialized","params":{}}"#);
    status_ok(&mut s);
    // After the handshake the gate is gone, and the method is known.
    for (method, _) in &methods {
        let resp = s.request(method, json!({}));
        if let Some((code, m)) = error_of(&resp) {
            assert!(
                !m.starts_with("client must"),
                "{method} still gated: {resp}"
            );
            assert_ne!(code, -32601, "{method} is a known method: {resp}");
        }
    }
}

#[test]
fn gate_exec_methods() {
    check_gate(&["exec"]);
}

#[test]
fn gate_environment_methods() {
    check_gate(&["environment info", "environment status"]);
}

#[test]
fn gate_filesystem_methods() {
    check_gate(&["filesystem"]);
}

#[test]
fn gate_http_methods() {
    check_gate(&["http"]);
}

#[test]
fn gate_tools_methods() {
    check_gate(&["tools"]);
}

#[test]
fn gate_applies_in_wire_order_when_pipelined() {
    let mut s = Server::start();
    // initialize, initialized and a request in one write, without waiting.
    s.send_raw(
        b"{\"id\":1,\"method\":\"initialize\",\"params\":{\"clientName\":\"it\"}}\n\
          {\"method\":\"initialized\"}\n\
          {\"id\":2,\"method\":\"environment/status\"}\n",
    );
    let r1 = s.wait_response(&json!(1));
    assert!(r1["result"]["sessionId"].is_string(), "{r1}");
    let r2 = s.wait_response(&json!(2));
    assert_eq!(r2, json!({"id": 2, "result": {"status": "ready"}}));
}

#[test]
fn unknown_method_in_every_state() {
    let mut s = Server::start();
    let check = |s: &mut Server| {
        let resp = s.request("foo/bar", json!({}));
        assert_error(
            &resp,
            -32601,
            "exec-server stub does not implement `foo/bar` yet",
        );
        for m in ["capabilityRoots/discoverV1", "process/nope", "initialize2"] {
            let resp = s.request(m, json!({}));
            assert_error(
                &resp,
                -32601,
                &format!("exec-server stub does not implement `{m}` yet"),
            );
        }
    };
    check(&mut s);
    s.call("initialize", json!({"clientName": "it"}));
    check(&mut s);
    s.send_line(r#"{"method":"initialized"}"#);
    check(&mut s);
}

#[test]
fn initialized_before_initialize_is_answered_and_ignored() {
    let mut s = Server::start();
    s.send_line(r#"{"method":"initialized"}"#);
    let e = s.recv();
    assert_error(
        &e,
        -32600,
        "client must call initialize before sending initialized",
    );
    assert_eq!(e["id"], json!(-1));
    // Ignored: initialize still works, and the early initialized did not count.
    s.call("initialize", json!({"clientName": "it"}));
    let resp = s.request("environment/status", Value::Null);
    assert_error(
        &resp,
        -32600,
        "client must send initialized before using environment status methods",
    );
    s.send_line(r#"{"method":"initialized","params":[1,2,3]}"#);
    status_ok(&mut s);
    // A second initialized is accepted silently.
    s.send_line(r#"{"method":"initialized"}"#);
    status_ok(&mut s);
    let extra = s.drain_for(Duration::from_millis(200));
    assert!(
        extra.is_empty(),
        "unexpected output: {:?}",
        extra.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
}

#[test]
fn second_initialize_is_refused() {
    let mut s = Server::start();
    let first = s.call("initialize", json!({"clientName": "it"}));
    let resp = s.request("initialize", json!({"clientName": "it"}));
    assert_error(
        &resp,
        -32600,
        "initialize may only be sent once per connection",
    );
    s.send_line(r#"{"method":"initialized"}"#);
    let resp = s.request("initialize", json!({"clientName": "it"}));
    assert_error(
        &resp,
        -32600,
        "initialize may only be sent once per connection",
    );
    let info = without_lifetime(s.call("environment/info", Value::Null));
    assert_eq!(info, first["environmentInfo"]);
}

/// `environment/info` minus `tether.lifetime`, which only it carries (the
/// handshake does not wait for the lifetime guard).
fn without_lifetime(mut info: Value) -> Value {
    let t = info["tether"].as_object_mut().expect("tether member");
    let lt = t
        .remove("lifetime")
        .expect("environment/info has tether.lifetime");
    assert!(
        lt["guard"] == "cgroup" || lt["guard"] == "processGroups",
        "{lt}"
    );
    info
}

#[test]
fn initialize_failures_do_not_count() {
    let mut s = Server::start();
    let resp = s.request(
        "initialize",
        json!({"clientName": "it", "resumeSessionId": "abc-123"}),
    );
    assert_error(&resp, -32600, "unknown session id abc-123");
    let resp = s.request("initialize", Value::Null);
    assert_eq!(
        error_of(&resp).map(|e| e.0),
        Some(-32602),
        "params null: {resp}"
    );
    let resp = s.request_no_params("initialize");
    assert_eq!(
        error_of(&resp).map(|e| e.0),
        Some(-32602),
        "params absent: {resp}"
    );
    let resp = s.request("initialize", json!({}));
    assert_eq!(
        error_of(&resp).map(|e| e.0),
        Some(-32602),
        "clientName missing: {resp}"
    );
    // A failed initialize leaves the gate in the "before initialize" state.
    let resp = s.request("environment/status", Value::Null);
    assert_error(
        &resp,
        -32600,
        "client must call initialize before using environment status methods",
    );
    // resumeSessionId null is fine; unknown members are ignored.
    let r = s.call(
        "initialize",
        json!({"clientName": "it", "resumeSessionId": null, "somethingNew": {"x": 1}}),
    );
    assert!(r["sessionId"].is_string());
    s.send_line(r#"{"method":"initialized"}"#);
    status_ok(&mut s);
}

#[test]
fn malformed_lines_are_answered_and_the_server_keeps_serving() {
    let mut s = Server::ready();
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"{not json", None),
        (b"{\"id\":1,\"method\":\"environment/status\"", None),
        (b"\xff\xfe{}", Some("line is not valid UTF-8")),
        (
            b"{\"id\":1,\"method\":\"environment/status\",\"x\":\"\xc3\x28\"}",
            Some("line is not valid UTF-8"),
        ),
        (b"42", Some("expected a JSON-RPC object")),
        (b"\"str\"", Some("expected a JSON-RPC object")),
        (b"null", Some("expected a JSON-RPC object")),
        (b"true", Some("expected a JSON-RPC object")),
        (b"[]", Some("expected a JSON-RPC object")),
        (
            b"{\"id\":1,\"method\":5}",
            Some("\"method\" must be a string"),
        ),
        (b"{\"method\":[\"x\"]}", Some("\"method\" must be a string")),
        (
            b"{}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
        (
            b"{\"id\":1}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
        (
            b"{\"foo\":1}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
        (
            b"{\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"x\"}}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
        (
            b"{\"id\":null,\"result\":{}}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
        (
            b"{\"id\":1.5,\"result\":{}}",
            Some("message has neither \"method\" nor \"result\"/\"error\""),
        ),
    ];
    for (line, detail) in cases {
        let mut v = line.to_vec();
        v.push(b'\n');
        s.send_raw(&v);
        let e = s.recv();
        match detail {
            Some(d) => assert_malformed(&e, d),
            None => {
                assert_eq!(e["id"], json!(-1), "{e}");
                assert_error_prefix(&e, -32600, MALFORMED_PREFIX);
                let (_, m) = error_of(&e).unwrap();
                assert!(
                    m.len() > MALFORMED_PREFIX.len(),
                    "decoder text missing: {m:?}"
                );
            }
        }
        status_ok(&mut s);
    }
}

#[test]
fn batch_gets_one_error_per_line() {
    let mut s = Server::ready();
    s.send_line(
        r#"[{"id":2,"method":"environment/status"},{"id":3,"method":"environment/status"}]"#,
    );
    s.send_line(r#"{"id":"after","method":"environment/status"}"#);
    s.wait_response(&json!("after"));
    let mut all = s.drain_for(Duration::from_millis(300));
    all.retain(|l| l.value.get("method").is_none());
    let errors: Vec<&Value> = all.iter().map(|l| &l.value).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error for the batch line: {errors:?}"
    );
    assert_malformed(errors[0], "expected a JSON-RPC object");
}

#[test]
fn invalid_ids_are_malformed() {
    let mut s = Server::ready();
    for id in [
        "null",
        "1.5",
        "1e3",
        "1.0",
        "true",
        "false",
        "{}",
        "{\"a\":1}",
        "[]",
        "[1]",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
    ] {
        s.send_line(&format!(r#"{{"id":{id},"method":"environment/status"}}"#));
        let e = s.recv();
        assert_malformed(&e, "id must be a string or a 64-bit signed integer");
        status_ok(&mut s);
    }
}

#[test]
fn ids_are_echoed_exactly() {
    let mut s = Server::ready();
    let ids = [
        "\"\"",
        "\"7\"",
        "7",
        "0",
        "-1",
        "-42",
        "9223372036854775807",
        "-9223372036854775808",
        "\"a\\\"b\\\\c\"",
        "\"\\u00e9t\u{e9} \u{1f600}\"",
        "\" spaced \"",
    ];
    for id in ids {
        s.send_line(&format!(r#"{{"id":{id},"method":"environment/status"}}"#));
        let expect: Value = serde_json::from_str(id).unwrap();
        let resp = s.wait_response(&expect);
        assert_eq!(resp, json!({"id": expect, "result": {"status": "ready"}}));
        let raw = s.last_raw.clone().unwrap();
        if expect.is_i64() {
            assert_eq!(
                raw,
                format!(r#"{{"id":{id},"result":{{"status":"ready"}}}}"#)
            );
        }
    }
    // "7" and 7 are different ids; both get exactly one response each.
    s.send_line(r#"{"id":"7","method":"environment/status"}"#);
    s.send_line(r#"{"id":7,"method":"foo/bar"}"#);
    let a = s.wait_response(&json!("7"));
    let b = s.wait_response(&json!(7));
    assert!(a.get("result").is_some(), "{a}");
    assert_error(
        &b,
        -32601,
        "exec-server stub does not implement `foo/bar` yet",
    );
    // And no second response to either comes later.
    let later = s.drain_for(Duration::from_millis(300));
    assert!(
        later
            .iter()
            .all(|l| l.value.get("id") != Some(&json!(7)) && l.value.get("id") != Some(&json!("7"))),
        "a second response: {:?}",
        later.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
    // Reusing an id in flight: each request still gets its own response.
    s.send_line(r#"{"id":"dup","method":"environment/status"}"#);
    s.send_line(r#"{"id":"dup","method":"environment/status"}"#);
    s.wait_response(&json!("dup"));
    s.wait_response(&json!("dup"));
}

#[test]
fn notifications_other_than_initialized_are_refused() {
    let mut s = Server::ready();
    for m in [
        "fs/readFile",
        "environment/status",
        "process/start",
        "foo/bar",
        "initialize",
    ] {
        s.send_line(&format!(
            r#"{{"method":"{m}","params":{{"path":"file:///tmp/a"}}}}"#
        ));
        let e = s.recv();
        assert_error(
            &e,
            -32600,
            &format!("client notification `{m}` is not supported (only `initialized` may be sent without an id)"),
        );
        assert_eq!(e["id"], json!(-1));
        status_ok(&mut s);
    }
    // Also before the handshake.
    let mut s = Server::start();
    s.send_line(r#"{"method":"environment/status"}"#);
    let e = s.recv();
    assert_error(
        &e,
        -32600,
        "client notification `environment/status` is not supported (only `initialized` may be sent without an id)",
    );
    s.initialize();
    status_ok(&mut s);
}

#[test]
fn unmatched_client_responses_are_ignored() {
    let mut s = Server::ready();
    s.send_line(r#"{"id":"s-999","result":{"decision":"approve"}}"#);
    s.send_line(r#"{"id":12345,"error":{"code":1,"message":"x"}}"#);
    s.send_line(r#"{"id":"q","method":"environment/status"}"#);
    s.wait_response(&json!("q"));
    let rest = s.drain_for(Duration::from_millis(300));
    assert!(
        rest.is_empty(),
        "no reply to unmatched responses: {:?}",
        rest.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
}

#[test]
fn jsonrpc_and_trace_members_are_accepted_and_never_written() {
    let mut s = Server::start();
    s.send_line(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientName":"it"},"trace":{"traceparent":"00-abc"}}"#);
    s.wait_response(&json!(1));
    let raw = s.last_raw.clone().unwrap();
    assert!(!raw.contains("\"jsonrpc\""), "{raw}");
    s.send_line(r#"{"jsonrpc":"1.0","method":"initialized","trace":null}"#);
    s.send_line(r#"{"jsonrpc":2,"id":2,"method":"environment/status","unknownTop":{"deep":[1,{"x":null}]}}"#);
    let r = s.wait_response(&json!(2));
    assert_eq!(r, json!({"id": 2, "result": {"status": "ready"}}));
    assert!(!s.last_raw.clone().unwrap().contains("jsonrpc"));
    s.send_line(r#"{"jsonrpc":"2.0","id":3,"method":"nope/nope"}"#);
    s.wait_response(&json!(3));
    assert!(!s.last_raw.clone().unwrap().contains("jsonrpc"));
}

#[test]
fn duplicate_keys_are_malformed_at_any_depth() {
    let mut s = Server::ready();
    s.send_line(r#"{"id":1,"id":2,"method":"environment/status"}"#);
    assert_malformed(&s.recv(), "duplicate JSON object key `id`");
    s.send_line(r#"{"id":1,"method":"environment/status","params":{"a":{"b":1,"b":2}}}"#);
    assert_malformed(&s.recv(), "duplicate JSON object key `b`");
    s.send_line(r#"{"id":1,"method":"environment/status","x":[{"k":1},{"deep":{"k":1,"k":1}}]}"#);
    assert_malformed(&s.recv(), "duplicate JSON object key `k`");
    // Same key in sibling objects is fine.
    s.send_line(r#"{"id":4,"method":"environment/status","x":[{"k":1},{"k":2}]}"#);
    let r = s.wait_response(&json!(4));
    assert_eq!(r, json!({"id": 4, "result": {"status": "ready"}}));
}

#[test]
fn nesting_deeper_than_128_is_malformed() {
    let mut s = Server::ready();
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    // Far beyond the limit: malformed (decoder text), id -1.
    for n in [200usize, 1000, 100_000] {
        s.send_line(&format!(
            r#"{{"id":1,"method":"environment/status","x":{}}}"#,
            deep(n)
        ));
        let e = s.recv();
        assert_eq!(e["id"], json!(-1), "{e}");
        assert_error_prefix(&e, -32600, MALFORMED_PREFIX);
    }
    // Comfortably inside the limit: accepted.
    s.send_line(&format!(
        r#"{{"id":5,"method":"environment/status","x":{}}}"#,
        deep(100)
    ));
    let r = s.wait_response(&json!(5));
    assert_eq!(r, json!({"id": 5, "result": {"status": "ready"}}));
}

#[test]
fn crlf_and_blank_lines() {
    let mut s = Server::start();
    s.send_raw(b"\n\r\n   \t \n\t\r\n");
    s.send_raw(b"{\"id\":1,\"method\":\"initialize\",\"params\":{\"clientName\":\"it\"}}\r\n");
    s.wait_response(&json!(1));
    s.send_raw(b"{\"method\":\"initialized\"}\r\n\r\n\n");
    s.send_raw(b"{\"id\":\"crlf\",\"method\":\"environment/status\"}\r\n");
    let r = s.wait_response(&json!("crlf"));
    assert_eq!(r, json!({"id": "crlf", "result": {"status": "ready"}}));
    // An escaped \r inside a string is not a line terminator.
    s.send_raw(b"   \n{\"id\":\"x\\r\",\"method\":\"environment/status\"}\r\n");
    s.wait_response(&json!("x\r"));
    let rest = s.drain_for(Duration::from_millis(300));
    assert!(
        rest.is_empty(),
        "blank lines get no reply: {:?}",
        rest.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
}

#[test]
fn line_over_the_limit_is_refused_and_discarded() {
    const LIMIT: usize = 67_108_864;
    let mut s = Server::ready();
    let head = br#"{"id":"big","method":"environment/status","pad":""#;
    let tail = br#""}"#;
    let total = 65 * 1024 * 1024;
    let mut line = Vec::with_capacity(total + 1);
    line.extend_from_slice(head);
    line.resize(total - tail.len(), b'a');
    line.extend_from_slice(tail);
    line.push(b'\n');
    assert!(line.len() - 1 > LIMIT);
    s.send_raw(&line);
    let e = s
        .wait_line("over-long line error", Duration::from_secs(60), |v| {
            v.get("method").is_none()
        })
        .value;
    assert_malformed(&e, "line exceeds the limit of 67108864 bytes");
    // The rest of that line was discarded: no response for id "big".
    s.send_line(r#"{"id":"after","method":"environment/status"}"#);
    let r = s.wait_response(&json!("after"));
    assert_eq!(r, json!({"id": "after", "result": {"status": "ready"}}));
    let rest = s.drain_for(Duration::from_millis(300));
    assert!(
        rest.is_empty(),
        "{:?}",
        rest.iter()
            .map(|l| l.raw.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
    );
}

#[test]
fn line_at_exactly_the_limit_is_accepted() {
    const LIMIT: usize = 67_108_864;
    let mut s = Server::ready();
    let head = br#"{"id":"edge","method":"environment/status","pad":""#;
    let tail = br#""}"#;
    let mut line = Vec::with_capacity(LIMIT + 2);
    line.extend_from_slice(head);
    line.resize(LIMIT - tail.len(), b'b');
    line.extend_from_slice(tail);
    assert_eq!(line.len(), LIMIT);
    line.push(b'\n');
    s.send_raw(&line);
    let r = s.wait_response_timeout(&json!("edge"), Duration::from_secs(60));
    assert_eq!(r, json!({"id": "edge", "result": {"status": "ready"}}));
}

#[test]
fn a_thousand_pipelined_requests_are_all_answered() {
    let mut s = Server::ready();
    let mut buf = Vec::new();
    for i in 0..1000 {
        writeln!(buf, r#"{{"id":"p{i}","method":"environment/status"}}"#).unwrap();
    }
    s.send_raw(&buf);
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        let l = s
            .recv_line_timeout(left)
            .unwrap_or_else(|| panic!("only {} of 1000 answered", seen.len()));
        let id = l.value["id"]
            .as_str()
            .unwrap_or_else(|| panic!("unexpected {}", l.raw))
            .to_string();
        assert_eq!(l.value["result"], json!({"status": "ready"}), "{}", l.raw);
        assert!(seen.insert(id.clone()), "duplicate response for {id}");
    }
    assert!(s.drain_for(Duration::from_millis(200)).is_empty());
}

#[test]
fn wire_shapes_and_member_order() {
    let mut s = Server::start();
    let id = s.send_request("initialize", Some(json!({"clientName": "it"})));
    s.wait_response(&json!(id));
    let raw = s.last_raw.clone().unwrap();
    assert!(
        raw.starts_with(&format!(r#"{{"id":{id},"result":{{"sessionId":""#)),
        "{raw}"
    );
    assert!(
        !raw.contains(": ") && !raw.contains(", "),
        "compact JSON: {raw}"
    );
    s.send_line(r#"{"method":"initialized"}"#);
    s.send_line(r#"{"id":"e","method":"foo/bar"}"#);
    s.wait_response(&json!("e"));
    assert_eq!(
        s.last_raw.clone().unwrap(),
        r#"{"error":{"code":-32601,"message":"exec-server stub does not implement `foo/bar` yet"},"id":"e"}"#
    );
    let p = s.start_params("order", &["/bin/sh", "-c", "echo hi"], json!({}));
    s.send(&json!({"id": "st", "method": "process/start", "params": p}));
    let resp = s.wait_response(&json!("st"));
    assert_eq!(
        resp,
        json!({"id": "st", "result": {"processId": "order", "sandboxType": "none"}})
    );
    assert_eq!(
        s.last_raw.clone().unwrap(),
        r#"{"id":"st","result":{"processId":"order","sandboxType":"none"}}"#
    );
    let out = s.wait_line("output", TIMEOUT, |v| v["method"] == "process/output");
    assert_eq!(
        out.raw,
        r#"{"method":"process/output","params":{"processId":"order","seq":1,"stream":"stdout","chunk":"aGkK"}}"#
    );
    let ex = s.wait_line("exited", TIMEOUT, |v| v["method"] == "process/exited");
    assert_eq!(
        ex.raw,
        r#"{"method":"process/exited","params":{"processId":"order","seq":2,"exitCode":0,"sandboxDenied":false}}"#
    );
    let cl = s.wait_line("closed", TIMEOUT, |v| v["method"] == "process/closed");
    assert_eq!(
        cl.raw,
        r#"{"method":"process/closed","params":{"processId":"order","seq":3}}"#
    );
}

const CAPABILITIES: [&str; 15] = [
    "networkProxyLaunch",
    "networkProxyReviewDomains",
    "credentialMasking",
    "credentialMaskingCustomProviders",
    "capabilityDiscoverySandbox",
    "fsWatchMissing",
    "capabilityDiscoveryV2",
    "environmentConfigRead",
    "httpHeaderEnvVars",
    "sandboxedFileStreaming",
    "fileWriteStreaming",
    "shellSnapshotV2",
    "windowsMxc",
    "linuxRootWritePreservesDevices",
    "linuxApprovedRootWritePreservesRestrictions",
];

/// The extensions this build implements and advertises (docs/protocol.md): an
/// extension is listed only once it works.
const EXTENSIONS: [&str; 15] = [
    "paths.plain",
    "process/start.size",
    "process/start.sandboxMode",
    "process/start.sandboxReport",
    "process/write.optionalWriteId",
    "process/read.loss",
    "process/signal.signals",
    "process/terminate.graceMs",
    "process/exited.signal",
    "process/resize",
    "process/closeStdin",
    "process/start.escalation",
    "process/approveExec",
    "fs/readDirectory.isSymlink",
    "tools",
];

#[test]
fn initialize_result_shape() {
    let home = temp_dir("home dir%#");
    let mut s = Server::builder()
        .cwd("/tmp")
        .env("HOME", &home)
        .env_remove("TMPDIR")
        .env("SHELL", "/bin/bash")
        .env_remove("TETHER_SANDBOX_MODE")
        .spawn();
    let id = s.send_request(
        "initialize",
        Some(json!({"clientName": "it", "resumeSessionId": null})),
    );
    let resp = s.wait_response(&json!(id));
    let raw = s.last_raw.clone().unwrap();
    let r = &resp["result"];
    assert_eq!(
        r.as_object().unwrap().len(),
        2,
        "result is sessionId + environmentInfo: {r}"
    );

    let sid = r["sessionId"].as_str().expect("sessionId");
    let u = uuid::Uuid::parse_str(sid).expect("sessionId is a UUID");
    assert_eq!(u.get_version_num(), 4, "UUID v4: {sid}");
    assert_eq!(
        sid,
        u.hyphenated().to_string(),
        "lowercase hyphenated: {sid}"
    );

    let info = &r["environmentInfo"];
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expect_keys = vec![
        "shell",
        "executorVersion",
        "cwd",
        "userHomeDir",
        "platformOs",
        "temporaryDirectories",
        "tempDir",
        "capabilities",
        "tether",
    ];
    let mut sorted = keys.clone();
    sorted.sort();
    expect_keys.sort();
    assert_eq!(
        sorted, expect_keys,
        "environmentInfo members (no providerId/prependPathDirs)"
    );

    assert_eq!(info["shell"], json!({"name": "bash", "path": "/bin/bash"}));
    assert_eq!(info["executorVersion"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(info["cwd"], json!("file:///tmp"));
    let home_uri = format!(
        "file://{}",
        home.to_str()
            .unwrap()
            .replace('%', "%25")
            .replace(' ', "%20")
            .replace('#', "%23")
    );
    assert_eq!(info["userHomeDir"], json!(home_uri));
    assert_eq!(info["platformOs"], json!("linux"));
    assert_eq!(info["temporaryDirectories"], json!([]));
    assert_eq!(info["tempDir"], json!("file:///tmp"));

    // The bits Tether sets: each has its own tests.
    const ADVERTISED: &[&str] = &[
        "fsWatchMissing",
        "environmentConfigRead",
        "httpHeaderEnvVars",
        "capabilityDiscoveryV2",
        "sandboxedFileStreaming",
        "fileWriteStreaming",
        "shellSnapshotV2",
        "linuxRootWritePreservesDevices",
    ];
    let caps = info["capabilities"].as_object().unwrap();
    assert_eq!(caps.len(), CAPABILITIES.len(), "{caps:?}");
    for c in CAPABILITIES {
        assert_eq!(
            caps.get(c),
            Some(&json!(ADVERTISED.contains(&c))),
            "capability {c}"
        );
    }
    let caps_at = raw.find("\"capabilities\":{").expect("capabilities in raw");
    assert_key_order(&raw[caps_at..], &CAPABILITIES);

    let t = &info["tether"];
    assert_eq!(t["protocolVersion"], json!(1));
    assert_eq!(t["version"], info["executorVersion"]);
    let ext = t["extensions"].as_object().expect("extensions");
    for e in EXTENSIONS {
        assert_eq!(ext.get(e), Some(&json!(1)), "extension {e}");
    }
    assert_eq!(ext.len(), EXTENSIONS.len(), "{ext:?}");
    let sb = &t["sandbox"];
    assert!(sb["landlockAbi"].is_u64(), "{sb}");
    assert!(sb["seccomp"].is_boolean(), "{sb}");
    assert!(sb["userNamespaces"].is_boolean(), "{sb}");
    assert!(sb["mountNamespaces"].is_boolean(), "{sb}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(sb["kernel"], json!(release.trim()));
    assert_eq!(sb["defaultMode"], json!("strict"));

    s.send_line(r#"{"method":"initialized"}"#);
    let info2 = without_lifetime(s.call("environment/info", Value::Null));
    assert_eq!(
        &info2, info,
        "environment/info equals initialize environmentInfo, but for tether.lifetime"
    );
    assert!(t.get("lifetime").is_none(), "{t}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn environment_info_follows_the_server_environment() {
    let tmp = temp_dir("tmpdir");
    let mut s = Server::builder()
        .cwd(&tmp)
        .env("TMPDIR", &tmp)
        .env("SHELL", "/usr/bin/fish-not-here")
        .env("HOME", "relative/home")
        .env("TETHER_SANDBOX_MODE", "best-effort")
        .spawn();
    let r = s.initialize();
    let info = &r["environmentInfo"];
    let uri = format!("file://{}", tmp.to_str().unwrap());
    assert_eq!(info["tempDir"], json!(uri));
    assert_eq!(info["temporaryDirectories"], json!([uri]));
    assert_eq!(info["cwd"], json!(uri));
    // $SHELL not usable: /bin/bash (executable here).
    assert_eq!(info["shell"], json!({"name": "bash", "path": "/bin/bash"}));
    // $HOME not absolute: the password database entry of our uid.
    // SAFETY: getpwuid on our own uid; the pointer is read immediately.
    let pw_home = unsafe {
        let pw = libc::getpwuid(libc::getuid());
        assert!(!pw.is_null());
        std::ffi::CStr::from_ptr((*pw).pw_dir)
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(info["userHomeDir"], json!(format!("file://{pw_home}")));
    assert_eq!(
        info["tether"]["sandbox"]["defaultMode"],
        json!("best-effort")
    );
    let sid1 = r["sessionId"].as_str().unwrap().to_string();
    drop(s);
    let _ = std::fs::remove_dir_all(&tmp);
    // One fresh session id per server process.
    let mut s2 = Server::start();
    let r2 = s2.initialize();
    assert_ne!(r2["sessionId"].as_str().unwrap(), sid1);
}

#[test]
fn shell_from_env_when_named_sh() {
    let mut s = Server::builder().env("SHELL", "/bin/sh").spawn();
    let r = s.initialize();
    assert_eq!(
        r["environmentInfo"]["shell"],
        json!({"name": "sh", "path": "/bin/sh"})
    );
}

#[test]
fn environment_methods_params() {
    let mut s = Server::ready();
    for params in [None, Some(Value::Null), Some(json!({}))] {
        let id = s.send_request("environment/status", params.clone());
        let r = s.wait_response(&json!(id));
        assert_eq!(r["result"], json!({"status": "ready"}), "{params:?}: {r}");
        let id = s.send_request("environment/info", params.clone());
        let r = s.wait_response(&json!(id));
        assert!(r["result"]["shell"].is_object(), "{params:?}: {r}");
    }
    for bad in [
        json!([]),
        json!([1]),
        json!(5),
        json!("x"),
        json!(true),
        json!(1.5),
    ] {
        for m in ["environment/status", "environment/info"] {
            let (code, _) = s.call_err(m, bad.clone());
            assert_eq!(code, -32602, "{m} with params {bad}");
        }
    }
}

#[test]
fn requests_are_served_concurrently_with_slow_ones() {
    // A long poll must not delay other requests (docs/protocol.md "Transport"); here with a silent
    // process and a 10 s wait.
    let mut s = Server::ready();
    s.start_ok("quiet", &["sleep", "30"], json!({}));
    let poll = s.send_request(
        "process/read",
        Some(json!({"processId": "quiet", "waitMs": 10000})),
    );
    thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    status_ok(&mut s);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t.elapsed()
    );
    assert!(
        !s.pending_values().iter().any(|v| v["id"] == json!(poll)),
        "the long poll returned early"
    );
    s.call("process/terminate", json!({"processId": "quiet"}));
    let r = s.wait_response(&json!(poll));
    assert!(r.get("result").is_some(), "{r}");
}

/// The first line is read before the server's runtime starts (the early
/// handshake): an `initialize` that is the whole of stdin, without a final
/// newline, is still answered, and the server then exits on the end of input.
#[test]
fn initialize_as_the_whole_input_is_answered_then_the_server_exits() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    for input in [
        &b"{\"id\":7,\"method\":\"initialize\",\"params\":{\"clientName\":\"it\"}}"[..],
        b"{\"id\":7,\"method\":\"initialize\",\"params\":{\"clientName\":\"it\"}}\n{\"id\":8,\"method\":\"environment/status\"}\n",
        b"\n\n{\"id\":7,\"method\":\"initialize\",\"params\":{\"clientName\":\"it\"}}\r\n",
    ] {
        let mut child = Command::new(bin())
            .arg("exec-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["id"], json!(7), "{text}");
        assert!(lines[0]["result"]["sessionId"].is_string(), "{text}");
        // (A request after it may go unanswered: the end of input came with it.)
        for l in &lines[1..] {
            assert_eq!(l["id"], json!(8), "{text}");
        }
    }
}

/// A shutdown signal before the first line (while the server waits for its
/// handshake on the main thread) still ends it with status 0, at once.
#[test]
fn signal_before_the_first_line_exits_zero() {
    use std::process::{Command, Stdio};
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut child = Command::new(bin())
            .arg("exec-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Started: the signal is caught, and the main thread sleeps (in the
        // read of the first line).
        let pid = child.id() as i32;
        let waiting = wait_until(TIMEOUT, || {
            catches_signal(pid, sig) && proc_info(pid).is_some_and(|p| p.state == 'S')
        });
        assert!(waiting, "the server never waited for its first line");
        let t = Instant::now();
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid, sig) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "signal {sig}: {status:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "signal {sig}");
    }
}
