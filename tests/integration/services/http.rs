//! `http/request` (docs/protocol.md "http/request") against the local test server.

use super::httpd::Httpd;
use crate::support::services::{server, server_with_env};
use crate::support::{b64, unb64, Server, TIMEOUT};
use serde_json::{json, Value};
use std::sync::OnceLock;

fn httpd() -> &'static Httpd {
    static H: OnceLock<Httpd> = OnceLock::new();
    H.get_or_init(Httpd::start)
}

fn get(url: &str, id: &str) -> Value {
    json!({"method": "GET", "url": url, "requestId": id})
}

fn header<'a>(r: &'a Value, name: &str) -> Vec<&'a str> {
    r["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == name)
        .map(|h| h["value"].as_str().unwrap())
        .collect()
}

/// Collect the body frames of stream `id` up to the last one; checks `seq` runs
/// from 1 without gaps and that only the last frame is `done`.
fn frames(s: &mut Server, id: &str) -> (Vec<u8>, Value) {
    let mut body = Vec::new();
    let mut seq = 0;
    loop {
        let n = s
            .wait_line("a body frame", TIMEOUT, |v| {
                v["method"] == "http/request/bodyDelta" && v["params"]["requestId"] == id
            })
            .value;
        let p = &n["params"];
        seq += 1;
        assert_eq!(p["seq"], seq, "{n}");
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{n}");
        if p["done"] == true {
            assert_eq!(p["deltaBase64"], "", "{n}");
            return (body, p["error"].clone());
        }
        assert_eq!(p["error"], Value::Null, "{n}");
        let delta = unb64(p["deltaBase64"].as_str().unwrap());
        assert!(
            !delta.is_empty() && delta.len() <= 1024 * 1024,
            "{} bytes",
            delta.len()
        );
        body.extend_from_slice(&delta);
    }
}

/// Send a streamed request and return its response, checking that no body frame
/// came before it (docs/protocol.md "Transport").
fn streamed(s: &mut Server, params: Value) -> Value {
    let rid = params["requestId"].clone();
    let id = s.send_request("http/request", Some(params));
    let r = s.wait_response(&json!(id));
    assert!(
        !s.pending_values()
            .iter()
            .any(|v| v["method"] == "http/request/bodyDelta" && v["params"]["requestId"] == rid),
        "a body frame came before the response"
    );
    r
}

#[test]
fn buffered_get_with_ordered_headers() {
    let mut s = server();
    let r = s.call("http/request", get(&httpd().url("/hello#frag"), "r1"));
    assert_eq!(r["status"], 200);
    assert_eq!(unb64(r["bodyBase64"].as_str().unwrap()), b"hello world");
    assert_eq!(header(&r, "x-test"), ["one", "two"]);
    assert_eq!(header(&r, "content-type"), ["text/plain"]);
    for h in r["headers"].as_array().unwrap() {
        let n = h["name"].as_str().unwrap();
        assert_eq!(n, n.to_ascii_lowercase());
    }
    let r = s.call("http/request", get(&httpd().url("/missing"), "r2"));
    assert_eq!(r["status"], 404);
}

#[test]
fn post_sends_method_headers_and_body() {
    let mut s = server();
    let r = s.call(
        "http/request",
        json!({
            "method": "POST",
            "url": httpd().url("/echo"),
            "headers": [{"name": "X-One", "value": "1"}, {"name": "X-Two", "value": "2"}, {"name": "X-One", "value": "again"}],
            "bodyBase64": b64(b"payload \x00\xff"),
            "requestId": "p",
        }),
    );
    assert_eq!(r["status"], 201);
    let body = unb64(r["bodyBase64"].as_str().unwrap());
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("POST /echo HTTP/1.1\n"), "{text}");
    assert!(
        text.contains("x-one: 1\n") && text.contains("x-one: again\n"),
        "{text}"
    );
    assert!(text.contains("x-two: 2\n"), "{text}");
    assert!(body.ends_with(b"\n\npayload \x00\xff"), "{text}");
}

#[test]
fn streamed_body_comes_in_ordered_frames_after_the_response() {
    let mut s = server();
    let r = streamed(
        &mut s,
        json!({"method": "GET", "url": httpd().url("/stream"), "requestId": "st", "streamResponse": true}),
    );
    let result = &r["result"];
    assert_eq!(result["status"], 200, "{r}");
    assert_eq!(result["bodyBase64"], "", "{r}");
    let (body, error) = frames(&mut s, "st");
    assert_eq!(body, b"part1;part2;part3");
    assert_eq!(error, Value::Null);
    // The id is free again after the last frame.
    let r = streamed(
        &mut s,
        json!({"method": "GET", "url": httpd().url("/big"), "requestId": "st", "streamResponse": true}),
    );
    assert_eq!(r["result"]["status"], 200, "{r}");
    let (body, error) = frames(&mut s, "st");
    assert_eq!(error, Value::Null);
    assert_eq!(body.len(), 3 * 1024 * 1024 + 512 * 1024);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn a_duplicate_active_stream_id_is_refused() {
    let mut s = server();
    let r = streamed(
        &mut s,
        json!({"method": "GET", "url": httpd().url("/stall"), "requestId": "dup", "streamResponse": true}),
    );
    assert_eq!(r["result"]["status"], 200, "{r}");
    let (code, msg) = s.call_err(
        "http/request",
        json!({"method": "GET", "url": httpd().url("/hello"), "requestId": "dup", "streamResponse": true}),
    );
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "http/request streamResponse requestId `dup` is already active"
        )
    );
    // A buffered request does not claim the id; another id streams meanwhile.
    let r = s.call("http/request", get(&httpd().url("/hello"), "dup"));
    assert_eq!(r["status"], 200);
    let r = streamed(
        &mut s,
        json!({"method": "GET", "url": httpd().url("/stream"), "requestId": "other", "streamResponse": true}),
    );
    assert_eq!(r["result"]["status"], 200);
    assert_eq!(frames(&mut s, "other").0, b"part1;part2;part3");
    let (body, error) = frames(&mut s, "dup");
    assert_eq!((body.as_slice(), error), (&b"firstlate"[..], Value::Null));
}

#[test]
fn timeouts_fail_the_request_or_end_the_stream_with_an_error() {
    let mut s = server();
    let started = std::time::Instant::now();
    let mut p = get(&httpd().url("/slow"), "t");
    p["timeoutMs"] = json!(300);
    let (code, msg) = s.call_err("http/request", p);
    assert_eq!(code, -32603);
    assert!(msg.starts_with("http/request failed: "), "{msg}");
    assert!(msg.contains("timed out"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Streamed: the headers come in time, the body does not.
    let r = streamed(
        &mut s,
        json!({"method": "GET", "url": httpd().url("/stall"), "requestId": "ts", "streamResponse": true, "timeoutMs": 500}),
    );
    assert_eq!(r["result"]["status"], 200, "{r}");
    let (body, error) = frames(&mut s, "ts");
    assert_eq!(body, b"first");
    let error = error
        .as_str()
        .unwrap_or_else(|| panic!("no error in the last frame: {error}"));
    assert!(error.contains("timed out"), "{error}");
}

#[test]
fn redirects_are_followed_or_returned() {
    let mut s = server();
    let r = s.call("http/request", get(&httpd().url("/redirect"), "f"));
    assert_eq!(r["status"], 200);
    assert_eq!(unb64(r["bodyBase64"].as_str().unwrap()), b"hello world");
    let mut p = get(&httpd().url("/redirect"), "s");
    p["redirectPolicy"] = json!("stop");
    let r = s.call("http/request", p);
    assert_eq!(r["status"], 302);
    assert_eq!(header(&r, "location"), ["/hello"]);
    assert_eq!(unb64(r["bodyBase64"].as_str().unwrap()), b"moved");
    // More than 10 redirects fail.
    let (code, msg) = s.call_err("http/request", get(&httpd().url("/loop"), "l"));
    assert_eq!(code, -32603);
    assert!(msg.starts_with("http/request failed: "), "{msg}");
    let mut p = get(&httpd().url("/redirect"), "x");
    p["redirectPolicy"] = json!("sometimes");
    assert_eq!(s.call_err("http/request", p).0, -32602);
}

#[test]
fn bad_requests_are_refused_with_exact_messages() {
    let mut s = server();
    let mut err = |p: Value| s.call_err("http/request", p);
    let (code, msg) = err(get("not a url", "a"));
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "http/request url is invalid: relative URL without a base"
        )
    );
    let (code, msg) = err(get("ftp://127.0.0.1/x", "a"));
    assert_eq!(
        (code, msg.as_str()),
        (
            -32602,
            "http/request only supports http and https URLs, got ftp"
        )
    );
    let (code, msg) =
        err(json!({"method": "GE T", "url": httpd().url("/hello"), "requestId": "a"}));
    assert_eq!(code, -32602);
    assert!(msg.starts_with("http/request method is invalid: "), "{msg}");
    let (code, msg) = err(json!({"method": "", "url": httpd().url("/hello"), "requestId": "a"}));
    assert_eq!(code, -32602);
    assert!(msg.starts_with("http/request method is invalid: "), "{msg}");
    let mut p = get(&httpd().url("/hello"), "a");
    p["headers"] = json!([{"name": "bad name", "value": "v"}]);
    let (code, msg) = err(p);
    assert_eq!(code, -32602);
    assert!(
        msg.starts_with("http/request header name is invalid: "),
        "{msg}"
    );
    let mut p = get(&httpd().url("/hello"), "a");
    p["headers"] = json!([{"name": "x-ok", "value": "a\r\nb"}]);
    let (code, msg) = err(p);
    assert_eq!(code, -32602);
    assert!(
        msg.starts_with("http/request header value is invalid for x-ok: "),
        "{msg}"
    );
    // Params that do not decode.
    for bad in [
        json!({"method": "GET", "url": httpd().url("/hello")}),
        json!({"method": "GET", "url": httpd().url("/hello"), "requestId": "a", "bodyBase64": "!!"}),
        json!(null),
    ] {
        assert_eq!(err(bad.clone()).0, -32602, "{bad}");
    }
    // Nothing listens on port 1 of 127.0.0.1.
    let (code, msg) = err(get("http://127.0.0.1:1/", "a"));
    assert_eq!(code, -32603);
    assert!(msg.starts_with("http/request failed: "), "{msg}");
}

#[test]
fn a_buffered_body_over_64_mib_is_refused() {
    let mut s = server();
    let (code, msg) = s.call_err("http/request", get(&httpd().url("/huge"), "h"));
    assert_eq!(
        (code, msg.as_str()),
        (
            -32603,
            "http/request response body exceeds 67108864 bytes; use streamResponse"
        )
    );
}

#[test]
fn proxy_variables_of_the_server_are_honoured() {
    // The test server acts as the proxy: it sees an absolute request target.
    let proxy = format!("http://127.0.0.1:{}", httpd().port);
    let mut s = server_with_env(&[("HTTP_PROXY", &proxy), ("http_proxy", &proxy)]);
    let r = s.call("http/request", get("http://proxied.invalid/echo", "px"));
    assert_eq!(r["status"], 200, "{r}");
    let body = String::from_utf8(unb64(r["bodyBase64"].as_str().unwrap())).unwrap();
    assert!(
        body.starts_with("GET http://proxied.invalid/echo HTTP/1.1\n"),
        "{body}"
    );
}
