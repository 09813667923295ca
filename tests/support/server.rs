//! The one server driver: spawn the built `tether` binary (a [`Builder`] says
//! how), speak newline-delimited JSON to it, and observe what it writes.
//!
//! Every wait has a timeout so that a broken server fails a test instead of
//! hanging it. Every process a test starts through the server carries the
//! environment variable `TETHER_TEST_MARKER=<unique per server>`, so lifetime
//! tests can find survivors by scanning `/proc/*/environ`, and `Drop` runs the
//! orphan check (and cleans up whatever a failing test left behind).
//!
//! The filesystem tests use it through the adapter in [`super::fs`]; the
//! services tests through the presets in [`super::services`].

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fixtures::{bin, unb64, unique};
use super::orphans;
use super::procs::MARKER_VAR;
use super::wire::{error_of, Run};

/// Default timeout for any single wait on the server.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// One line the server wrote: the raw text, its decoded value, and its
/// position in the output stream (1 for the first line).
#[derive(Clone, Debug)]
pub struct Line {
    pub raw: String,
    pub value: Value,
    pub seq: u64,
}

impl Line {
    /// What is wrong with the line, if the server wrote something other than
    /// one complete line of UTF-8 JSON (the reader keeps such lines, marked).
    pub fn malformed(&self) -> Option<&'static str> {
        let v = &self.value;
        if v.get("__unterminated_line").is_some() {
            Some("a last line without a newline")
        } else if v.get("__invalid_utf8_line").is_some() {
            Some("a line that is not UTF-8")
        } else if v.get("__unparsable_line").is_some() {
            Some("a line that is not JSON")
        } else {
            None
        }
    }
}

/// How [`Server`]'s `Drop` ends the server before the orphan check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// End of stdin and SIGTERM at once, as a parent that is done would
    /// (docs/protocol.md "Lifetime"); SIGKILL after 3 s.
    CloseStdinAndTerm,
    /// End of stdin only, and wait for the server to exit by itself (it must:
    /// docs/protocol.md "Lifetime"); SIGKILL after 5 s.
    CloseStdin,
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
    mark_server: bool,
    umask: Option<u32>,
    setup: Option<Setup>,
    shutdown: Shutdown,
    strict: bool,
}

/// Code run in the child between fork and exec (async-signal-safe calls only).
pub type Setup = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

impl Builder {
    /// Give the server itself the marker variable too (by default only the
    /// processes started through [`Server::start_params`] carry it), so that
    /// what it starts with its own environment (`codex-fs` helpers, tool
    /// sessions) is covered by the orphan check. Lifetime tests that count
    /// marked processes while the server runs leave this off.
    pub fn mark_server(mut self) -> Self {
        self.mark_server = true;
        self
    }

    /// Start the server with this umask.
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Run `f` in the child first, between fork and exec (before the umask,
    /// the user switch and everything else): e.g. a private mount namespace.
    pub fn pre_exec(mut self, f: Setup) -> Self {
        self.setup = Some(f);
        self
    }

    /// How `Drop` ends the server (default [`Shutdown::CloseStdinAndTerm`]).
    pub fn shutdown(mut self, how: Shutdown) -> Self {
        self.shutdown = how;
        self
    }

    /// Fail the test (in the test thread, on the next read) when the server
    /// writes a line that is not complete UTF-8 JSON, instead of handing such
    /// lines over marked (see [`Line::malformed`]).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

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
        // Unless asked, never let the marker leak into the server's own
        // environment: a scan while the server runs would find the server itself.
        if self.mark_server {
            cmd.env(MARKER_VAR, &marker);
        } else {
            cmd.env_remove(MARKER_VAR);
        }
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
            || self.umask.is_some()
            || self.setup.is_some()
        {
            use std::os::unix::process::CommandExt;
            let setup = self.setup.clone();
            let umask = self.umask;
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
                    if let Some(f) = &setup {
                        f()?;
                    }
                    if let Some(m) = umask {
                        libc::umask(m as libc::mode_t);
                    }
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
        let stdout_fd = std::os::fd::AsRawFd::as_raw_fd(&stdout);
        let (tx, rx) = mpsc::channel();
        let paused = Arc::new(AtomicBool::new(false));
        let paused_r = paused.clone();
        let reader = thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, stdout);
            let mut buf = Vec::new();
            let mut seq = 0u64;
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
                seq += 1;
                if buf.last() != Some(&b'\n') {
                    // A partial last line: the server must end every line with \n.
                    let raw = String::from_utf8_lossy(&buf).into_owned();
                    let value = json!({ "__unterminated_line": raw.clone() });
                    let _ = tx.send(Event::Line(Line { raw, value, seq }));
                    let _ = tx.send(Event::Eof);
                    return;
                }
                buf.pop();
                let raw = match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(s) => s,
                    Err(e) => {
                        let raw = String::from_utf8_lossy(e.as_bytes()).into_owned();
                        let value = json!({ "__invalid_utf8_line": raw.clone() });
                        if tx.send(Event::Line(Line { raw, value, seq })).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let value = serde_json::from_str::<Value>(&raw).unwrap_or_else(
                    |e| json!({ "__unparsable_line": raw.clone(), "error": e.to_string() }),
                );
                if tx.send(Event::Line(Line { raw, value, seq })).is_err() {
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
            shutdown: self.shutdown,
            strict: self.strict,
            stdout_fd,
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
    shutdown: Shutdown,
    strict: bool,
    /// The read end of the server's stdout (owned by the reader thread).
    stdout_fd: std::os::fd::RawFd,
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
            mark_server: false,
            umask: None,
            setup: None,
            shutdown: Shutdown::CloseStdinAndTerm,
            strict: false,
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
            Ok(Event::Line(l)) => {
                if self.strict {
                    if let Some(what) = l.malformed() {
                        panic!("the server wrote {what}: {:.300}", l.raw);
                    }
                }
                Some(l)
            }
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

    /// Reads every line that arrives within `window` into the buffer.
    pub fn buffer_for(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        while let Some(l) = self.recv_channel(deadline) {
            self.pending.push_back(l);
        }
    }

    /// Reads lines into the buffer until none arrives for `quiet`.
    pub fn buffer_until_quiet(&mut self, quiet: Duration) {
        while let Some(l) = self.recv_channel(Instant::now() + quiet) {
            self.pending.push_back(l);
        }
    }

    /// Removes and returns the buffered lines matching `pred`, in order.
    pub fn take_buffered(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Line> {
        let mut taken = Vec::new();
        let mut rest = VecDeque::new();
        for l in self.pending.drain(..) {
            if pred(&l.value) {
                taken.push(l);
            } else {
                rest.push_back(l);
            }
        }
        self.pending = rest;
        taken
    }

    /// Waits until a line matching `pred` has arrived, leaving it (and
    /// everything before it) buffered for the reads that follow. Panics on
    /// timeout.
    pub fn wait_buffered(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) {
        if self.pending.iter().any(|l| pred(&l.value)) {
            return;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_channel(deadline) {
                Some(l) => {
                    let hit = pred(&l.value);
                    self.pending.push_back(l);
                    if hit {
                        return;
                    }
                }
                None => panic!(
                    "timed out after {timeout:?} waiting for {what} (eof={}); buffered: {}\n{}",
                    self.eof,
                    self.pending_summary(),
                    self.stderr_tail()
                ),
            }
        }
    }

    /// `(unread, capacity)` of the server's stdout pipe: bytes written but not
    /// yet taken by the reader thread, and the pipe's size (the server enlarges
    /// it). With reading paused, `unread` near `capacity` means the server's
    /// writes block.
    pub fn stdout_pipe_fill(&self) -> (usize, usize) {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD and F_GETPIPE_SZ on the pipe's read end, which the
        // reader thread keeps open while the server runs; FIONREAD writes one
        // c_int into `unread`.
        let (rc, size) = unsafe {
            (
                libc::ioctl(self.stdout_fd, libc::FIONREAD, &mut unread),
                libc::fcntl(self.stdout_fd, libc::F_GETPIPE_SZ),
            )
        };
        assert!(
            rc == 0 && size > 0,
            "stdout pipe: {}",
            std::io::Error::last_os_error()
        );
        (unread as usize, size as usize)
    }

    /// Whether the server's stdout has ended (lines may still be buffered).
    pub fn stdout_ended(&self) -> bool {
        self.eof
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
    /// Ends the server as its parent would (end of stdin, and SIGTERM unless
    /// [`Shutdown::CloseStdin`]; the server then kills what it owns,
    /// docs/protocol.md "Lifetime"), SIGKILL only if it does not exit in time;
    /// then the orphan check: no process carrying this test's marker may be left.
    fn drop(&mut self) {
        self.paused.store(false, Ordering::SeqCst);
        self.stdin.take();
        let grace = match self.shutdown {
            Shutdown::CloseStdinAndTerm => {
                if self.try_wait().is_none() {
                    self.signal(libc::SIGTERM);
                }
                Duration::from_secs(3)
            }
            Shutdown::CloseStdin => Duration::from_secs(5),
        };
        if self.wait_exit(grace).is_none() {
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
