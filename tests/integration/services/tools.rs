//! `tools/list` and `tools/call` (docs/protocol.md "Unified-exec tools").

use crate::support::services::server;
use crate::support::Server;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `exec_command` without a login shell unless the test asks for one: a login
/// shell runs the user's profile, which on some machines (pyenv's rehash lock)
/// leaves a stale lock behind when it is killed during startup, and then every
/// later login shell waits a minute.
fn exec(s: &mut Server, mut args: Value) -> Value {
    if args.get("login").is_none() {
        args["login"] = json!(false);
    }
    s.call(
        "tools/call",
        json!({"name": "exec_command", "arguments": args}),
    )
}

fn write(s: &mut Server, args: Value) -> Value {
    s.call(
        "tools/call",
        json!({"name": "write_stdin", "arguments": args}),
    )
}

fn text(r: &Value) -> String {
    let c = r["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content: {r}"));
    assert_eq!(c.len(), 1, "{r}");
    assert_eq!(c[0]["type"], "text", "{r}");
    c[0]["text"].as_str().unwrap().to_string()
}

/// Poll a session with empty `chars` until it reports its exit; returns the text
/// of every call (the first one included) and the exit code.
fn drive_to_exit(s: &mut Server, first: Value) -> (String, i64) {
    let mut out = text(&first);
    let mut r = first;
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.get("exitCode").is_none() {
        assert!(Instant::now() < deadline, "session never exited: {r}");
        let id = r["sessionId"]
            .as_i64()
            .unwrap_or_else(|| panic!("no sessionId: {r}"));
        r = write(s, json!({"session_id": id, "yield_time_ms": 2000}));
        assert_eq!(r["isError"], false, "{r}");
        out.push_str(&text(&r));
    }
    assert!(r.get("sessionId").is_none(), "{r}");
    (out, r["exitCode"].as_i64().unwrap())
}

#[test]
fn tools_list_advertises_both_tools_with_their_schemas() {
    let mut s = server();
    for params in [Value::Null, json!({})] {
        let r = s.call("tools/list", params);
        let tools = r["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2, "{r}");
        assert_eq!(tools[0]["name"], "exec_command");
        assert!(tools[0]["description"].as_str().unwrap().len() > 10);
        assert_eq!(
            tools[0]["inputSchema"],
            json!({"type":"object","required":["cmd"],"properties":{
                "cmd":{"type":"string"},
                "workdir":{"type":"string"},
                "tty":{"type":"boolean"},
                "yield_time_ms":{"type":"integer"},
                "max_output_tokens":{"type":"integer"},
                "env":{"type":"object","additionalProperties":{"type":"string"}},
                "login":{"type":"boolean"}}})
        );
        assert_eq!(tools[1]["name"], "write_stdin");
        assert_eq!(
            tools[1]["inputSchema"],
            json!({"type":"object","required":["session_id"],"properties":{
                "session_id":{"type":"integer"},
                "chars":{"type":"string"},
                "yield_time_ms":{"type":"integer"},
                "max_output_tokens":{"type":"integer"}}})
        );
    }
    let (code, _) = s.call_err("tools/list", json!({"x": 1}));
    assert_eq!(code, -32602);
}

#[test]
fn exec_command_that_finishes_inside_the_yield() {
    let mut s = server();
    let t0 = Instant::now();
    // `login` absent means a login shell (`-lc`); this command runs to its end.
    let r = s.call(
        "tools/call",
        json!({"name": "exec_command", "arguments": {
            "cmd": "shopt -q login_shell && echo login; echo hello; echo oops >&2; exit 3"}}),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "waited for the whole yield"
    );
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["exitCode"], 3, "{r}");
    assert!(r.get("sessionId").is_none(), "{r}");
    let t = text(&r);
    assert!(t.contains("hello\n") && t.contains("oops\n"), "{t:?}");
    assert!(t.contains("login\n"), "not a login shell: {t:?}");
    assert_eq!(r["originalTokenCount"], json!(t.len().div_ceil(4)), "{r}");
    assert!(r["wallTimeMs"].as_u64().unwrap() < 5_000, "{r}");
    // Member order as documented.
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{r}");
}

#[test]
fn exec_command_environment_and_workdir() {
    let mut s = server();
    let dir = std::env::temp_dir().join(format!("tether-services-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let r = exec(
        &mut s,
        json!({
            "cmd": "printf '%s|%s|%s|%s|%s|%s|%s\\n' \"$TERM\" \"$NO_COLOR\" \"$PAGER\" \"$LC_ALL\" \"$COLORTERM\" \"$MINE\" \"$(pwd)\"",
            "workdir": dir.to_str().unwrap(),
            "env": {"MINE": "x y", "PAGER": "less"},
        }),
    );
    assert_eq!(r["exitCode"], 0, "{r}");
    let want = format!("dumb|1|less|C.UTF-8||x y|{}\n", dir.display());
    assert_eq!(text(&r), want);
    // A file: URI, and a relative workdir (against the server's cwd).
    let uri = format!("file://{}/sub", dir.display());
    let r = exec(&mut s, json!({"cmd": "pwd", "workdir": uri}));
    assert_eq!(text(&r), format!("{}/sub\n", dir.display()));
    let r = exec(&mut s, json!({"cmd": "pwd", "workdir": "."}));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(text(&r), format!("{}\n", cwd.display()));
    // A workdir that does not exist is a spawn failure: isError with the OS text.
    let r = exec(
        &mut s,
        json!({"cmd": "true", "workdir": dir.join("missing").to_str().unwrap()}),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(text(&r), "No such file or directory (os error 2)");
    assert!(
        r.get("sessionId").is_none() && r.get("exitCode").is_none(),
        "{r}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exec_command_that_outlives_the_yield_is_driven_by_write_stdin() {
    let mut s = server();
    let r = exec(
        &mut s,
        json!({"cmd": "for i in 1 2 3 4; do echo tick $i; sleep 0.4; done", "yield_time_ms": 250}),
    );
    assert_eq!(r["isError"], false, "{r}");
    assert!(r.get("exitCode").is_none(), "{r}");
    let id = r["sessionId"]
        .as_i64()
        .expect("a running session has an id");
    // The session is a process record `tool-<id>`: process/read sees it.
    let read = s.call("process/read", json!({"processId": format!("tool-{id}")}));
    assert_eq!(read["exited"], false, "{read}");
    let (out, code) = drive_to_exit(&mut s, r);
    assert_eq!(code, 0);
    assert_eq!(out, "tick 1\ntick 2\ntick 3\ntick 4\n");
    // Tool sessions send no notifications.
    s.buffer_until_quiet(Duration::from_millis(200));
    assert!(
        s.pending_values().iter().all(|v| v.get("method").is_none()),
        "notifications from a tool session: {:?}",
        s.pending_values()
    );
}

#[test]
fn yield_time_is_clamped_to_at_least_250_ms() {
    let mut s = server();
    let t0 = Instant::now();
    let r = exec(&mut s, json!({"cmd": "sleep 5", "yield_time_ms": 1}));
    let took = t0.elapsed();
    assert!(r["sessionId"].is_i64(), "{r}");
    assert!(took >= Duration::from_millis(240), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let id = r["sessionId"].as_i64().unwrap();
    s.call(
        "process/terminate",
        json!({"processId": format!("tool-{id}")}),
    );
    let r = write(&mut s, json!({"session_id": id}));
    assert_eq!(r["exitCode"], 137, "{r}");
}

#[test]
fn output_over_the_budget_keeps_head_and_tail_with_a_marker() {
    let mut s = server();
    let total: usize = (1..=20_000).map(|i: usize| i.to_string().len() + 1).sum();
    let r = exec(
        &mut s,
        json!({"cmd": "seq 1 20000", "max_output_tokens": 100}),
    );
    assert_eq!(r["exitCode"], 0, "{r}");
    let t = text(&r);
    let marker = format!("\n[... {} bytes truncated ...]\n", total - 400);
    let (head, tail) = t
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no marker {marker:?} in {t:?}"));
    assert_eq!(head.len(), 200);
    assert_eq!(tail.len(), 200);
    assert!(head.starts_with("1\n2\n3\n"), "{head:?}");
    assert!(tail.ends_with("19999\n20000\n"), "{tail:?}");
    assert_eq!(r["originalTokenCount"], json!(total.div_ceil(4)));
    // Within the default budget (10,000 tokens) nothing is cut.
    let r = exec(&mut s, json!({"cmd": "seq 1 1000"}));
    assert!(!text(&r).contains("truncated"));
    assert!(text(&r).ends_with("999\n1000\n"));
}

#[test]
fn an_interactive_python_repl_driven_by_write_stdin() {
    let mut s = server();
    let r = exec(
        &mut s,
        json!({"cmd": "python3 -q -i", "tty": true, "yield_time_ms": 1500}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let id = r["sessionId"]
        .as_i64()
        .unwrap_or_else(|| panic!("python exited: {r}"));
    let mut seen = text(&r);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.contains(">>> ") {
        assert!(Instant::now() < deadline, "no prompt: {seen:?}");
        seen.push_str(&text(&write(
            &mut s,
            json!({"session_id": id, "yield_time_ms": 500}),
        )));
    }
    let r = write(
        &mut s,
        json!({"session_id": id, "chars": "x = 6 * 7\nprint(x, 'answer')\n", "yield_time_ms": 1000}),
    );
    let mut seen = text(&r);
    while !seen.contains("42 answer") {
        assert!(Instant::now() < deadline, "no answer: {seen:?}");
        seen.push_str(&text(&write(
            &mut s,
            json!({"session_id": id, "yield_time_ms": 500}),
        )));
    }
    let r = write(
        &mut s,
        json!({"session_id": id, "chars": "raise SystemExit(5)\n", "yield_time_ms": 3000}),
    );
    let (_, code) = drive_to_exit(&mut s, r);
    assert_eq!(code, 5);
}

#[test]
fn sessions_are_released_once_the_exit_is_reported() {
    let mut s = server();
    // A client's own process named like a session: that id is skipped.
    s.call(
        "process/start",
        json!({"processId": "tool-1", "argv": ["true"], "cwd": "/", "env": {}, "tty": false}),
    );
    let r = exec(
        &mut s,
        json!({"cmd": "sleep 0.3; echo done", "yield_time_ms": 250}),
    );
    let id = r["sessionId"].as_i64().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(id, 2, "{r}");
    let (out, code) = drive_to_exit(&mut s, r);
    assert_eq!((out.as_str(), code), ("done\n", 0));
    // Gone: the id is unknown now, and it is never handed out again.
    let r = write(&mut s, json!({"session_id": id}));
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(text(&r), format!("unknown session_id {id}"));
    let r = exec(&mut s, json!({"cmd": "sleep 1", "yield_time_ms": 250}));
    assert_eq!(r["sessionId"], 3, "{r}");
    let r = write(&mut s, json!({"session_id": 99}));
    assert_eq!(text(&r), "unknown session_id 99");
    let r = write(&mut s, json!({"session_id": -1}));
    assert_eq!(text(&r), "unknown session_id -1");
}

#[test]
fn background_jobs_end_with_their_session() {
    let mut s = server();
    let r = exec(&mut s, json!({"cmd": "sleep 60 >/dev/null 2>&1 & echo $!"}));
    assert_eq!(r["exitCode"], 0, "{r}");
    let pid: i32 = text(&r).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for the server (its subreaper) to reap it.
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background job {pid} survived: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn write_stdin_without_a_terminal_and_bad_arguments() {
    let mut s = server();
    let r = exec(&mut s, json!({"cmd": "sleep 2", "yield_time_ms": 250}));
    let id = r["sessionId"].as_i64().unwrap();
    let r = write(&mut s, json!({"session_id": id, "chars": "hi\n"}));
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        text(&r),
        "stdin is closed for this session; rerun exec_command with tty=true to keep stdin open"
    );
    // Still running: empty chars only polls.
    let r = write(&mut s, json!({"session_id": id, "chars": ""}));
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["sessionId"], id, "{r}");

    let call_err = |s: &mut Server, p: Value| s.call_err("tools/call", p);
    let (code, msg) = call_err(&mut s, json!({"name": "nope", "arguments": {}}));
    assert_eq!((code, msg.as_str()), (-32602, "unknown tool `nope`"));
    for bad in [
        json!({"name": "exec_command", "arguments": {}}),
        json!({"name": "exec_command", "arguments": {"cmd": 5}}),
        json!({"name": "exec_command", "arguments": {"cmd": "true", "yield_time_ms": 1.5}}),
        json!({"name": "exec_command"}),
        json!({"name": "write_stdin", "arguments": {"session_id": "1"}}),
        json!({"arguments": {}}),
        json!([]),
    ] {
        let (code, _) = call_err(&mut s, bad.clone());
        assert_eq!(code, -32602, "{bad}");
    }
    let (code, _) = call_err(
        &mut s,
        json!({"name": "exec_command", "arguments": {"cmd": "true", "env": {"A=B": "x"}}}),
    );
    assert_eq!(code, -32602);
}

#[test]
fn at_most_64_sessions_run_at_once() {
    let mut s = server();
    let ids: Vec<i64> = (0..65)
        .map(|_| {
            s.send_request(
                "tools/call",
                Some(json!({"name": "exec_command", "arguments": {"cmd": "sleep 30", "login": false, "yield_time_ms": 250}})),
            )
        })
        .collect();
    let mut refused = 0;
    for id in ids {
        let r = s.wait_response(&json!(id));
        let r = &r["result"];
        if r["isError"] == true {
            assert_eq!(text(r), "too many running sessions (limit 64)");
            refused += 1;
        } else {
            assert!(r["sessionId"].is_i64(), "{r}");
        }
    }
    assert_eq!(refused, 1);
}
