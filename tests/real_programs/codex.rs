//! The real Codex CLI 0.169.0 drives Tether through `environments.toml`, offline.
//!
//! Setup installs `@openai/codex@0.169.0` from npm into a cache outside the
//! repository (`$TETHER_CACHE`, default `~/.cache/tether`), starts a mock
//! Responses API on 127.0.0.1 (SSE), writes a temporary CODEX_HOME whose only
//! environment is the built `tether exec-server`, and runs `codex exec` once per
//! scenario. The mock records every request, so each test reads back the tool
//! output Codex sent to the "model". When Codex cannot be installed the tests
//! skip (`support::skip`: loud at exit, a failure in CI).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::npm::{cache_dir, codex};
use crate::support::{procs, skip};

/// A model slug from Codex's bundled catalog (needed for apply_patch to be offered).
const MODEL: &str = "gpt-5.5";

// ---------------------------------------------------------------- mock model

/// One model turn: given the raw request body, the output item to answer with.
pub(crate) type Turn = Box<dyn Fn(&str) -> Value + Send + Sync>;

pub(crate) struct Mock {
    pub(crate) port: u16,
    /// Every POSTed body (the model requests), in arrival order.
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((method, path, body))
}

fn sse(events: &[(&str, Value)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    out.into_bytes()
}

impl Mock {
    /// Serve `turns` in order, then a final assistant message.
    pub(crate) fn start(turns: Vec<Turn>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock");
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
        let turns = Arc::new(turns);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (reqs, turns) = (reqs.clone(), turns.clone());
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Some((method, _path, body)) = read_request(&mut r) {
                        let (ctype, payload) = if method == "POST" {
                            let raw = String::from_utf8_lossy(&body).into_owned();
                            let parsed: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                            let n = {
                                let mut g = reqs.lock().unwrap();
                                g.push(parsed);
                                g.len()
                            };
                            let item = match turns.get(n - 1) {
                                Some(t) => t(&raw),
                                None => {
                                    json!({"type":"message","id":format!("msg_{n}"),"role":"assistant",
                                    "content":[{"type":"output_text","text":"done"}]})
                                }
                            };
                            let id = format!("resp_{n}");
                            let usage = json!({"input_tokens":1,"output_tokens":1,"total_tokens":2,
                                "input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}});
                            let body = sse(&[
                                (
                                    "response.created",
                                    json!({"type":"response.created","response":{"id":id}}),
                                ),
                                (
                                    "response.output_item.done",
                                    json!({"type":"response.output_item.done","output_index":0,"item":item}),
                                ),
                                (
                                    "response.completed",
                                    json!({"type":"response.completed","response":{"id":id,"usage":usage}}),
                                ),
                            ]);
                            ("text/event-stream", body)
                        } else {
                            ("application/json", br#"{"models":[]}"#.to_vec())
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
                            payload.len()
                        );
                        if w.write_all(head.as_bytes())
                            .and_then(|()| w.write_all(&payload))
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Mock { port, requests }
    }

    /// Every tool output Codex sent back, by call id.
    pub(crate) fn outputs(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for req in self.requests.lock().unwrap().iter() {
            for item in req["input"].as_array().into_iter().flatten() {
                let ty = item["type"].as_str().unwrap_or("");
                if ty.ends_with("_call_output") {
                    let text = match &item["output"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.insert(item["call_id"].as_str().unwrap_or("").to_string(), text);
                }
            }
        }
        out
    }
}

/// An `exec_command` call. `login: false` unless given: a login shell runs the
/// machine's profile, which can take seconds on a loaded machine; commands that
/// should finish get the largest yield unless they say otherwise.
pub(crate) fn exec_call(call_id: &str, mut args: Value) -> Turn {
    let call_id = call_id.to_string();
    if args.get("login").is_none() {
        args["login"] = json!(false);
    }
    if args.get("yield_time_ms").is_none() {
        args["yield_time_ms"] = json!(30_000);
    }
    Box::new(move |_| {
        json!({"type":"function_call","id":format!("fc_{call_id}"),"call_id":call_id,
               "name":"exec_command","arguments":args.to_string()})
    })
}

// ---------------------------------------------------------------- one codex run

pub(crate) struct Run {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) marker: String,
    /// The server's log (`TETHER_LOG_FILE`), shown when a check fails.
    pub(crate) server_log: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(home) = self.server_log.parent() {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    // Under $HOME so that Codex sets up its helper links (it refuses under /tmp).
    let d = cache_dir().join("e2e-tmp").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The host's CODEX_HOME: the mock model, and Tether as the only environment,
/// started with `server_env` added to its environment. With `tap`, every line
/// Codex sends to Tether is also appended to that file (`tee` before Tether).
fn write_codex_home(
    home: &Path,
    port: u16,
    server_env: &[(&str, &str)],
    tap: Option<&Path>,
    include_local: bool,
) {
    let config = format!(
        r#"model = "{MODEL}"
model_provider = "mock"
approval_policy = "never"
check_for_update_on_startup = false

[model_providers.mock]
name = "mock"
base_url = "http://127.0.0.1:{port}/v1"
wire_api = "responses"
env_key = "TETHER_E2E_API_KEY"

[analytics]
enabled = false

[features]
plugins = false
apps = false

[feedback]
enabled = false
"#
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let envs = format!(
        r#"default = "tether"
include_local = {include_local}

[[environments]]
id = "tether"
{}
env = {{ RUST_LOG = "debug", TETHER_LOG_FILE = "{}"{} }}
"#,
        match tap {
            None => format!(
                "program = {}\nargs = [\"exec-server\"]",
                Value::from(env!("CARGO_BIN_EXE_tether"))
            ),
            Some(tap) => format!(
                "program = \"/bin/sh\"\nargs = [\"-c\", \"tee -a \\\"$0\\\" | exec \\\"$1\\\" exec-server\", {}, {}]",
                Value::from(tap.display().to_string()),
                Value::from(env!("CARGO_BIN_EXE_tether"))
            ),
        },
        home.join("server.log").display(),
        server_env
            .iter()
            .map(|(k, v)| format!(", {k} = {}", Value::from(*v)))
            .collect::<String>()
    );
    std::fs::write(home.join("environments.toml"), envs).unwrap();
}

/// Run `codex exec` in `workspace` against `mock` with the given sandbox mode.
fn codex_exec(codex: &Path, mock: &Mock, workspace: &Path, sandbox: &str) -> Run {
    codex_exec_marked(codex, mock, workspace, sandbox, &new_marker())
}

pub(crate) fn new_marker() -> String {
    format!("tether-e2e-{}", uuid::Uuid::new_v4())
}

/// As [`codex_exec`], with a chosen marker (inherited by every process Codex and
/// Tether start, through Codex's environment).
fn codex_exec_marked(
    codex: &Path,
    mock: &Mock,
    workspace: &Path,
    sandbox: &str,
    marker: &str,
) -> Run {
    codex_exec_with(codex, mock, workspace, sandbox, marker, &[], &[])
}

/// As [`codex_exec_marked`], with `server_env` added to Tether's environment
/// (environments.toml) and `args` before the prompt (`--enable x`, `-c k=v`).
pub(crate) fn codex_exec_with(
    codex: &Path,
    mock: &Mock,
    workspace: &Path,
    sandbox: &str,
    marker: &str,
    server_env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    codex_exec_tapped(
        codex, mock, workspace, sandbox, marker, server_env, args, None, false,
    )
}

/// As [`codex_exec_with`]; with `tap`, Codex's requests to Tether are also
/// appended to that file, one JSON-RPC message a line; with `include_local`,
/// Codex's own local environment (`local`) exists beside Tether (the default).
#[allow(clippy::too_many_arguments)]
pub(crate) fn codex_exec_tapped(
    codex: &Path,
    mock: &Mock,
    workspace: &Path,
    sandbox: &str,
    marker: &str,
    server_env: &[(&str, &str)],
    args: &[&str],
    tap: Option<&Path>,
    include_local: bool,
) -> Run {
    let marker = marker.to_string();
    let home = temp_dir("codex-home");
    write_codex_home(&home, mock.port, server_env, tap, include_local);
    let mut child = Command::new(codex)
        .args(["exec", "--skip-git-repo-check", "-s", sandbox])
        .args(args)
        .arg("do the task")
        .current_dir(workspace)
        .env("CODEX_HOME", &home)
        .env("TETHER_E2E_API_KEY", "dummy")
        .env("TETHER_E2E_MARKER", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start codex");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("codex exec did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
        marker,
        server_log: home.join("server.log"),
    }
}

/// Pids of live processes whose environment carries `marker`.
fn alive_with_marker(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    procs::with_env("TETHER_E2E_MARKER", marker)
        .into_iter()
        .map(|p| p.pid)
        .filter(|p| *p != me)
        .collect()
}

pub(crate) fn assert_no_survivors(run: &Run) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive = alive_with_marker(&run.marker);
        if alive.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let cmds: Vec<String> = alive
                .iter()
                .map(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                })
                .collect();
            let log = std::fs::read_to_string(&run.server_log).unwrap_or_default();
            panic!("processes survived codex exec: {alive:?} {cmds:?}\nserver log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn check_ok(run: &Run) {
    assert!(
        run.status.success(),
        "codex exec failed: {}\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
}

// ---------------------------------------------------------------- scenarios

#[test]
fn shell_command_output_and_exit_code() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let mock = Mock::start(vec![exec_call(
        "c1",
        json!({"cmd": "echo hello-from-tether; echo to-stderr >&2; exit 3"}),
    )]);
    let ws = temp_dir("ws-shell");
    let run = codex_exec(&codex, &mock, &ws, "danger-full-access");
    check_ok(&run);
    let out = &mock.outputs()["c1"];
    assert!(out.contains("hello-from-tether"), "{out}");
    assert!(out.contains("to-stderr"), "{out}");
    assert!(out.contains("Process exited with code 3"), "{out}");
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn interactive_command_fed_through_write_stdin() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let write: Turn = Box::new(|raw: &str| {
        // The session id comes from the previous tool output.
        let sid = raw
            .split("session ID ")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u64>().ok())
            .expect("a session id in the exec_command output");
        json!({"type":"function_call","id":"fc_w","call_id":"w1","name":"write_stdin",
               "arguments":json!({"session_id": sid, "chars": "tether-typed\n", "yield_time_ms": 15000}).to_string()})
    });
    let mock = Mock::start(vec![
        exec_call(
            "s1",
            json!({"cmd": "read line; echo got-$line", "tty": true, "yield_time_ms": 500}),
        ),
        write,
    ]);
    let ws = temp_dir("ws-stdin");
    let run = codex_exec(&codex, &mock, &ws, "danger-full-access");
    check_ok(&run);
    let outs = mock.outputs();
    assert!(
        outs["s1"].contains("Process running with session ID"),
        "{}",
        outs["s1"]
    );
    assert!(outs["w1"].contains("got-tether-typed"), "{}", outs["w1"]);
    assert!(
        outs["w1"].contains("Process exited with code 0"),
        "{}",
        outs["w1"]
    );
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn apply_patch_adds_updates_and_deletes() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let patch = "*** Begin Patch\n*** Add File: new/nested/dir/added.txt\n+added by tether\n*** Update File: upd.txt\n@@\n-old line\n+new line\n*** Delete File: del.txt\n*** End Patch\n";
    let mock = Mock::start(vec![Box::new(
        move |_| json!({"type":"custom_tool_call","id":"ctc_1","call_id":"p1","name":"apply_patch","input":patch}),
    )]);
    let ws = temp_dir("ws-patch");
    std::fs::write(ws.join("upd.txt"), "old line\n").unwrap();
    std::fs::write(ws.join("del.txt"), "bye\n").unwrap();
    let run = codex_exec(&codex, &mock, &ws, "danger-full-access");
    check_ok(&run);
    let out = &mock.outputs()["p1"];
    assert!(out.contains("Success"), "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.join("new/nested/dir/added.txt")).unwrap(),
        "added by tether\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("upd.txt")).unwrap(),
        "new line\n"
    );
    assert!(!ws.join("del.txt").exists());
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn tty_command_runs_on_a_terminal() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let mock = Mock::start(vec![exec_call(
        "t1",
        json!({"cmd": "tty; stty size", "tty": true}),
    )]);
    let ws = temp_dir("ws-tty");
    let run = codex_exec(&codex, &mock, &ws, "danger-full-access");
    check_ok(&run);
    let out = &mock.outputs()["t1"];
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("Process exited with code 0"), "{out}");
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn nothing_survives_codex_exit() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    // Still running when the turn ends: a sleeper, a setsid grandchild, one that
    // ignores SIGTERM. Codex sends SIGTERM to the group, closes stdin, and does not wait.
    let marker = new_marker();
    let seen_alive = Arc::new(Mutex::new(Vec::new()));
    let (m, seen) = (marker.clone(), seen_alive.clone());
    let mock = Mock::start(vec![
        exec_call(
            "k1",
            json!({"cmd": "setsid sleep 300 & (trap '' TERM; sleep 301) & sleep 302", "yield_time_ms": 500}),
        ),
        // While Codex waits for this answer the commands are running: prove the
        // marker finds them, so the check after exit means something.
        Box::new(move |_| {
            // The login shell's profile can be slow on a loaded machine: wait for them.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let cmds: Vec<String> = alive_with_marker(&m)
                    .iter()
                    .map(|p| {
                        std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                            .unwrap_or_default()
                            .replace('\0', " ")
                    })
                    .collect();
                let all = ["sleep 300", "sleep 301", "sleep 302"]
                    .iter()
                    .all(|s| cmds.iter().any(|c| c.trim() == *s));
                if all || Instant::now() > deadline {
                    *seen.lock().unwrap() = cmds;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            json!({"type":"message","id":"msg_k","role":"assistant","content":[{"type":"output_text","text":"done"}]})
        }),
    ]);
    let ws = temp_dir("ws-kill");
    let run = codex_exec_marked(&codex, &mock, &ws, "danger-full-access", &marker);
    check_ok(&run);
    let seen = seen_alive.lock().unwrap().clone();
    for sleeper in ["sleep 300", "sleep 301", "sleep 302"] {
        assert!(
            seen.iter().any(|c| c.trim() == sleeper),
            "{sleeper} was not running mid-turn: {seen:?}"
        );
    }
    assert!(
        mock.outputs()["k1"].contains("Process running with session ID"),
        "{:?}",
        mock.outputs()
    );
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
}

#[test]
fn workspace_write_sandbox_allows_inside_and_refuses_outside() {
    let codex = match codex() {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let outside = temp_dir("outside");
    let cmd = format!(
        "echo in > inside.txt; echo out > {}/outside.txt; echo cfg >> .git/config; cat inside.txt",
        outside.display()
    );
    let mock = Mock::start(vec![exec_call("w1", json!({ "cmd": cmd }))]);
    let ws = temp_dir("ws-sandbox");
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
    let run = codex_exec(&codex, &mock, &ws, "workspace-write");
    check_ok(&run);
    let out = &mock.outputs()["w1"];
    assert_eq!(
        std::fs::read_to_string(ws.join("inside.txt")).unwrap(),
        "in\n",
        "{out}"
    );
    assert!(
        !outside.join("outside.txt").exists(),
        "a write outside the workspace got through: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/config")).unwrap(),
        "[core]\n",
        "{out}"
    );
    assert!(
        out.contains("Permission denied") || out.contains("Read-only file system"),
        "{out}"
    );
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
    let _ = std::fs::remove_dir_all(&outside);
}
