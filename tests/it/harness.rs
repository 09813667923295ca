//! A synchronous black-box harness: spawn the built `tether` binary, speak
//! newline-delimited JSON to it, and observe what it writes.
//!
//! Every wait has a timeout so that a broken server fails a test instead of
//! hanging it. Every process a test starts through the server carries the
//! environment variable `TETHER_TEST_MARKER=<unique per server>`, so lifetime
//! tests can find survivors by scanning `/proc/*/environ`, and `Drop` can clean
//! up whatever a failing test left behind.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};

#[path = "../support/orphans.rs"]
pub mod orphans;

/// The marker variable of every process a test starts through the server.
pub const MARKER_VAR: &str = "TETHER_TEST_MARKER";

/// Default timeout for any single wait on the server.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The exact prefix of every malformed-message error (docs/protocol.md "Transport").
pub const MALFORMED_PREFIX: &str = "failed to parse JSON-RPC message from exec-server stdio: ";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tether"))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique within this test run (and across concurrent runs).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("tether-it-{prefix}")));
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("invalid base64 from server ({e}): {s:.80}"))
}

/// One line the server wrote: the raw text and its decoded value.
#[derive(Clone, Debug)]
pub struct Line {
    pub raw: String,
    pub value: Value,
}

enum Event {
    Line(Line),
    Eof,
}

/// How to spawn the server.
pub struct Builder {
    program: PathBuf,
    args: Vec<OsString>,
    env_clear: bool,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    cwd: Option<PathBuf>,
    ignore_signals: Vec<i32>,
    user: Option<(u32, u32)>,
    nofile: Option<u64>,
    cgroup: Option<PathBuf>,
    own_group: bool,
}

impl Builder {
    /// Start the server with `RLIMIT_NOFILE` set to `n` (soft and hard).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Start the server as the leader of a process group of its own (as a
    /// client that signals the group does), so [`Server::signal_group`] reaches
    /// it and not the test.
    pub fn own_process_group(mut self) -> Self {
        self.own_group = true;
        self
    }

    /// Start the server inside this cgroup v2 directory (moved in before it
    /// drops to [`run_as`](Self::run_as)'s user; the test must be root).
    pub fn cgroup(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cgroup = Some(dir.into());
        self
    }

    /// Run the server as this uid and gid (the test must be root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Start the server with these signals set to `SIG_IGN` (as a parent
    /// such as a background job would leave them).
    pub fn ignore_signals(mut self, sigs: &[i32]) -> Self {
        self.ignore_signals.extend_from_slice(sigs);
        self
    }
    /// Program `argv[0]` (default: the built binary).
    pub fn program(mut self, p: impl Into<PathBuf>) -> Self {
        self.program = p.into();
        self
    }
    /// Replace the argument list (default: `["exec-server"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
    /// Start the server with an empty environment (then add with `env`).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn env_remove(mut self, k: impl Into<OsString>) -> Self {
        self.env_remove.push(k.into());
        self
    }
    pub fn cwd(mut self, p: impl Into<PathBuf>) -> Self {
        self.cwd = Some(p.into());
        self
    }

    pub fn spawn(self) -> Server {
        let marker = unique("tt");
        let stderr_path = std::env::temp_dir().join(format!("tether-it-{marker}.stderr"));
        let stderr_file = fs::File::create(&stderr_path).expect("create stderr capture");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        if self.env_clear {
            cmd.env_clear();
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Never let the marker leak into the server's own environment: the
        // orphan scan would find the server itself.
        cmd.env_remove("TETHER_TEST_MARKER");
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        if self.own_group {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        if !self.ignore_signals.is_empty()
            || self.user.is_some()
            || self.nofile.is_some()
            || self.cgroup.is_some()
        {
            use std::os::unix::process::CommandExt;
            let sigs = self.ignore_signals.clone();
            let user = self.user;
            let nofile = self.nofile;
            let procs = self.cgroup.as_ref().map(|d| {
                std::ffi::CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes())
                    .expect("cgroup path without NUL")
            });
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if let Some(n) = nofile {
                        let lim = libc::rlimit {
                            rlim_cur: n as libc::rlim_t,
                            rlim_max: n as libc::rlim_t,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    for s in &sigs {
                        libc::signal(*s, libc::SIG_IGN);
                    }
                    if let Some(p) = &procs {
                        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        libc::close(fd);
                    }
                    if let Some((uid, gid)) = user {
                        if libc::setgroups(0, std::ptr::null()) != 0
                            || libc::setgid(gid) != 0
                            || libc::setuid(uid) != 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.program));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let paused = Arc::new(AtomicBool::new(false));
        let paused_r = paused.clone();
        let reader = thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, stdout);
            let mut buf = Vec::new();
            loop {
                while paused_r.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(10));
                }
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Event::Eof);
                        return;
                    }
                    Ok(_) => {}
                }
                if buf.last() != Some(&b'\n') {
                    // A partial last line: the server must end every line with \n.
                    let raw = String::from_utf8_lossy(&buf).into_owned();
                    let value = json!({ "__unterminated_line": raw.clone() });
                    let _ = tx.send(Event::Line(Line { raw, value }));
                    let _ = tx.send(Event::Eof);
                    return;
                }
                buf.pop();
                let raw = match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(s) => s,
                    Err(e) => {
                        let raw = String::from_utf8_lossy(e.as_bytes()).into_owned();
                        let value = json!({ "__invalid_utf8_line": raw.clone() });
                        if tx.send(Event::Line(Line { raw, value })).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let value = serde_json::from_str::<Value>(&raw).unwrap_or_else(
                    |e| json!({ "__unparsable_line": raw.clone(), "error": e.to_string() }),
                );
                if tx.send(Event::Line(Line { raw, value })).is_err() {
                    return;
                }
            }
        });
        Server {
            child,
            stdin,
            rx,
            pending: VecDeque::new(),
            eof: false,
            next_id: 1,
            marker,
            stderr_path,
            paused,
            _reader: Some(reader),
            last_raw: None,
        }
    }
}

/// A running `tether exec-server`.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Event>,
    /// Lines received but not yet consumed, in arrival order.
    pending: VecDeque<Line>,
    eof: bool,
    next_id: i64,
    /// `TETHER_TEST_MARKER` value of every process this test starts.
    pub marker: String,
    stderr_path: PathBuf,
    paused: Arc<AtomicBool>,
    _reader: Option<thread::JoinHandle<()>>,
    /// Raw text of the last response returned by `request`/`wait_response`.
    pub last_raw: Option<String>,
}

impl Server {
    pub fn builder() -> Builder {
        Builder {
            program: bin(),
            args: vec!["exec-server".into()],
            env_clear: false,
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            ignore_signals: Vec::new(),
            user: None,
            nofile: None,
            cgroup: None,
            own_group: false,
        }
    }

    /// `tether exec-server` with the test's environment.
    pub fn start() -> Server {
        Server::builder().spawn()
    }

    /// Started and past the handshake.
    pub fn ready() -> Server {
        let mut s = Server::start();
        s.initialize();
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr_text(&self) -> String {
        fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    // ---- writing -------------------------------------------------------

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).expect("write to server stdin");
        stdin.flush().expect("flush server stdin");
    }

    /// Writes `line` followed by `\n`.
    pub fn send_line(&mut self, line: &str) {
        let mut v = Vec::with_capacity(line.len() + 1);
        v.extend_from_slice(line.as_bytes());
        v.push(b'\n');
        self.send_raw(&v);
    }

    pub fn send(&mut self, msg: &Value) {
        let s = serde_json::to_string(msg).unwrap();
        self.send_line(&s);
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Hand the server's stdin to the caller (e.g. a writer thread that pipelines
    /// while the test reads). Dropping it closes the server's stdin.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The next automatic request id.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request with an automatic id (params omitted when `Value::Null`
    /// is passed as `None`), returns the id.
    pub fn send_request(&mut self, method: &str, params: Option<Value>) -> i64 {
        let id = self.next_id();
        let mut msg = json!({ "id": id, "method": method });
        if let Some(p) = params {
            msg["params"] = p;
        }
        self.send(&msg);
        id
    }

    /// Sends a request and waits for its response (result or error), buffering
    /// everything else. Returns the whole response message.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, Some(params));
        self.wait_response(&json!(id))
    }

    /// Like `request` but without a `params` member.
    pub fn request_no_params(&mut self, method: &str) -> Value {
        let id = self.send_request(method, None);
        self.wait_response(&json!(id))
    }

    /// `request`, asserting success; returns `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let resp = self.request(method, params.clone());
        match resp.get("result") {
            Some(r) => r.clone(),
            None => panic!("{method} {params} failed: {resp}"),
        }
    }

    /// `request`, asserting an error; returns `(code, message)`.
    pub fn call_err(&mut self, method: &str, params: Value) -> (i64, String) {
        let resp = self.request(method, params.clone());
        error_of(&resp)
            .unwrap_or_else(|| panic!("{method} {params}: expected an error, got {resp}"))
    }

    // ---- reading -------------------------------------------------------

    fn recv_channel(&mut self, deadline: Instant) -> Option<Line> {
        if self.eof {
            return None;
        }
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        match self.rx.recv_timeout(left) {
            Ok(Event::Line(l)) => Some(l),
            Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                None
            }
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// The next line in arrival order (buffered lines first), or `None` after
    /// `timeout` or at end of stdout.
    pub fn recv_line_timeout(&mut self, timeout: Duration) -> Option<Line> {
        if let Some(l) = self.pending.pop_front() {
            return Some(l);
        }
        self.recv_channel(Instant::now() + timeout)
    }

    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Value> {
        self.recv_line_timeout(timeout).map(|l| l.value)
    }

    /// The next message; panics after the default timeout.
    pub fn recv(&mut self) -> Value {
        match self.recv_timeout(TIMEOUT) {
            Some(v) => v,
            None => panic!(
                "no message from server within {TIMEOUT:?} (eof={})\n{}",
                self.eof,
                self.stderr_tail()
            ),
        }
    }

    /// Waits for the first line matching `pred`, buffering the rest. Panics on
    /// timeout.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Line {
        if let Some(pos) = self.pending.iter().position(|l| pred(&l.value)) {
            return self.pending.remove(pos).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_channel(deadline) {
                Some(l) if pred(&l.value) => return l,
                Some(l) => self.pending.push_back(l),
                None => panic!(
                    "timed out after {timeout:?} waiting for {what} (eof={}); buffered: {}\n{}",
                    self.eof,
                    self.pending_summary(),
                    self.stderr_tail()
                ),
            }
        }
    }

    /// Like `wait_line` but returns `None` on timeout.
    pub fn try_wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Line> {
        if let Some(pos) = self.pending.iter().position(|l| pred(&l.value)) {
            return self.pending.remove(pos);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_channel(deadline) {
                Some(l) if pred(&l.value) => return Some(l),
                Some(l) => self.pending.push_back(l),
                None => return None,
            }
        }
    }

    pub fn wait_notification(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.wait_line("notification", timeout, |v| {
            v.get("id").is_none() && pred(v)
        })
        .value
    }

    /// Waits for the response whose `id` equals `id` (compared as JSON values,
    /// so `7` and `"7"` differ).
    pub fn wait_response(&mut self, id: &Value) -> Value {
        self.wait_response_timeout(id, TIMEOUT)
    }

    pub fn wait_response_timeout(&mut self, id: &Value, timeout: Duration) -> Value {
        let id = id.clone();
        let line = self.wait_line(&format!("response to id {id}"), timeout, move |v| {
            v.get("method").is_none() && v.get("id") == Some(&id)
        });
        self.last_raw = Some(line.raw);
        line.value
    }

    /// Drains whatever arrives within `quiet` (useful to assert that nothing
    /// else was written).
    pub fn drain_for(&mut self, quiet: Duration) -> Vec<Line> {
        let mut out: Vec<Line> = self.pending.drain(..).collect();
        let deadline = Instant::now() + quiet;
        while let Some(l) = self.recv_channel(deadline) {
            out.push(l);
        }
        out
    }

    /// Buffered lines that have not been consumed (does not wait).
    pub fn pending_values(&self) -> Vec<Value> {
        self.pending.iter().map(|l| l.value.clone()).collect()
    }

    /// Streams every notification about `process_id` (from the buffer first,
    /// then as it arrives) to `f`, until `process/closed` for it has been seen.
    /// Each wait has the default timeout.
    pub fn for_each_until_closed(&mut self, process_id: &str, mut f: impl FnMut(&Value)) {
        let is_ours = |v: &Value| {
            v.get("id").is_none()
                && matches!(
                    v.get("method").and_then(Value::as_str),
                    Some("process/output" | "process/exited" | "process/closed")
                )
                && v["params"]["processId"].as_str() == Some(process_id)
        };
        let mut rest = VecDeque::new();
        let mut done = false;
        while let Some(l) = self.pending.pop_front() {
            if done || !is_ours(&l.value) {
                rest.push_back(l);
                continue;
            }
            if l.value["method"] == "process/closed" {
                done = true;
            }
            f(&l.value);
        }
        self.pending = rest;
        while !done {
            let deadline = Instant::now() + TIMEOUT;
            match self.recv_channel(deadline) {
                Some(l) if is_ours(&l.value) => {
                    if l.value["method"] == "process/closed" {
                        done = true;
                    }
                    f(&l.value);
                }
                Some(l) => self.pending.push_back(l),
                None => panic!(
                    "timed out waiting for process/closed of {process_id:?} (eof={})\n{}",
                    self.eof,
                    self.stderr_tail()
                ),
            }
        }
    }

    /// All `process/output`, `process/exited` and `process/closed`
    /// notifications for `process_id`, in arrival order, up to and including
    /// `process/closed`.
    pub fn collect_until_closed(&mut self, process_id: &str) -> Vec<Value> {
        let mut v = Vec::new();
        self.for_each_until_closed(process_id, |n| v.push(n.clone()));
        v
    }

    /// Waits until the concatenated output of `process_id` contains `needle`
    /// (notifications stay consumed; returns the ones seen).
    pub fn wait_output_contains(
        &mut self,
        process_id: &str,
        needle: &str,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut acc = Vec::new();
        loop {
            if String::from_utf8_lossy(&acc).contains(needle) {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let pid = process_id.to_string();
            let line = self.try_wait_line(left, move |v| {
                v.get("id").is_none()
                    && v["method"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("process/"))
                    && v["params"]["processId"].as_str() == Some(&pid)
            });
            match line {
                Some(l) => {
                    if l.value["method"] == "process/output" {
                        acc.extend(unb64(l.value["params"]["chunk"].as_str().unwrap_or("")));
                    }
                    seen.push(l.value);
                }
                None => panic!(
                    "timed out waiting for {needle:?} in output of {process_id}; got {:?}; events {seen:?}\n{}",
                    String::from_utf8_lossy(&acc),
                    self.stderr_tail()
                ),
            }
        }
    }

    // ---- protocol helpers ---------------------------------------------

    /// `initialize` + `initialized`; returns the initialize result.
    pub fn initialize(&mut self) -> Value {
        let r = self.call("initialize", json!({ "clientName": "tether-it" }));
        self.send_line(r#"{"method":"initialized"}"#);
        r
    }

    /// process/start params with cwd `/tmp`, env `{PATH, TETHER_TEST_MARKER}`,
    /// tty false. Members of `extra` replace the defaults, except `env`, which
    /// is merged into the default env.
    pub fn start_params(&self, id: &str, argv: &[&str], extra: Value) -> Value {
        let mut p = json!({
            "processId": id,
            "argv": argv,
            "cwd": "/tmp",
            "env": { "PATH": "/usr/bin:/bin", "TETHER_TEST_MARKER": self.marker },
            "tty": false,
        });
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                if k == "env" {
                    if let (Value::Object(dst), Value::Object(src)) = (&mut p["env"], v.clone()) {
                        for (ek, ev) in src {
                            dst.insert(ek, ev);
                        }
                        continue;
                    }
                }
                p[k] = v;
            }
        }
        p
    }

    /// Sends process/start and returns the whole response.
    pub fn start_process(&mut self, id: &str, argv: &[&str], extra: Value) -> Value {
        let p = self.start_params(id, argv, extra);
        self.request("process/start", p)
    }

    /// process/start that must succeed; returns the result.
    pub fn start_ok(&mut self, id: &str, argv: &[&str], extra: Value) -> Value {
        let resp = self.start_process(id, argv, extra);
        match resp.get("result") {
            Some(r) => r.clone(),
            None => panic!("process/start {id} {argv:?} failed: {resp}"),
        }
    }

    /// Starts a process and collects it to the end.
    pub fn run(&mut self, id: &str, argv: &[&str], extra: Value) -> Run {
        self.start_ok(id, argv, extra);
        Run::from_events(self.collect_until_closed(id))
    }

    // ---- lifetime --------------------------------------------------------

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the server to exit; `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// `sig` to the server's process group (see [`Builder::own_process_group`]).
    pub fn signal_group(&self, sig: i32) {
        // SAFETY: getpgid and kill(2) of a group; refused unless the server
        // leads its own group, so the test never signals itself.
        unsafe {
            assert_eq!(
                libc::getpgid(self.pid()),
                self.pid(),
                "server leads its group"
            );
            libc::kill(-self.pid(), sig);
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Stops (true) or resumes (false) reading the server's stdout. While
    /// paused the pipe fills up and the server's writes block.
    pub fn pause_reading(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// `VmRSS` and `VmHWM` of the server in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    fn pending_summary(&self) -> String {
        let mut s = String::new();
        for l in self.pending.iter().take(10) {
            let r: String = l.raw.chars().take(300).collect();
            s.push_str(&r);
            s.push('\n');
        }
        if self.pending.len() > 10 {
            s.push_str(&format!("... and {} more\n", self.pending.len() - 10));
        }
        s
    }

    pub fn stderr_tail(&self) -> String {
        let t = self.stderr_text();
        let tail: String = if t.len() > 4000 {
            let mut start = t.len() - 4000;
            while !t.is_char_boundary(start) {
                start += 1;
            }
            t[start..].to_string()
        } else {
            t
        };
        format!("--- server stderr (tail) ---\n{tail}")
    }
}

impl Drop for Server {
    /// Ends the server as its parent would (end of stdin and SIGTERM, so that it
    /// kills what it owns, docs/protocol.md "Lifetime"), SIGKILL only if it does not exit in time; then the
    /// orphan check: no process carrying this test's marker may be left.
    fn drop(&mut self) {
        self.paused.store(false, Ordering::SeqCst);
        self.stdin.take();
        if self.try_wait().is_none() {
            self.signal(libc::SIGTERM);
        }
        if self.wait_exit(Duration::from_secs(3)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.stderr_tail());
        }
        let _ = fs::remove_file(&self.stderr_path);
        let test = thread::current().name().unwrap_or("the test").to_string();
        orphans::check(MARKER_VAR, &self.marker, &test);
    }
}

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

// ---- /proc scanning -----------------------------------------------------

/// Pids of live (non-zombie) processes whose environment contains
/// `TETHER_TEST_MARKER=<marker>`.
pub fn alive_with_marker(marker: &str) -> Vec<i32> {
    marked_processes(marker)
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub state: char,
    pub cmdline: String,
}

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut it = after.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgid = it.next()?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        state,
        cmdline,
    })
}

pub fn marked_processes(marker: &str) -> Vec<ProcInfo> {
    let needle = format!("TETHER_TEST_MARKER={marker}");
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(mut f) = fs::File::open(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let mut env = Vec::new();
        if f.read_to_end(&mut env).is_err() {
            continue;
        }
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        if let Some(info) = proc_info(pid) {
            if info.state != 'Z' && info.state != 'X' {
                out.push(info);
            }
        }
    }
    out
}

/// SIGKILLs every live process carrying the marker (test cleanup).
pub fn kill_marked(marker: &str) {
    for _ in 0..5 {
        let pids = alive_with_marker(marker);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // SAFETY: kill(2) on a process this test started.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Writes an executable (or not) file.
pub fn write_file(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, contents).expect("write fixture");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod fixture");
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
