//! A small synchronous harness for the filesystem tests: spawn the built
//! `tether exec-server`, write requests as JSON lines, and read what it writes
//! on a reader thread. Every wait has a timeout, so a broken server fails a
//! test instead of hanging it. stdin stays open until the `Server` is dropped
//! (end of stdin shuts the server down).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::ffi::{CString, OsStr};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

#[path = "../support/orphans.rs"]
mod orphans;

/// Carried by the server and so by everything it starts with its environment
/// (the `codex-fs` helpers); checked when the server is dropped.
const MARKER_VAR: &str = "TETHER_TEST_MARKER";

/// Default timeout for one answer.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub const NOBODY: u32 = 65534;

/// One line the server wrote, with its position in the output stream.
#[derive(Clone, Debug)]
pub struct Msg {
    pub raw: String,
    pub value: Value,
    pub seq: u64,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Opts {
    /// Run the server as `nobody` (only meaningful when the tests run as root).
    pub as_nobody: bool,
    /// umask to set in the child before exec.
    pub umask: Option<u32>,
    pub cwd: Option<PathBuf>,
    /// Run in the child first, between fork and exec (async-signal-safe calls
    /// only): the private mount namespace of `tests/fs/ns.rs`.
    pub setup: Option<std::sync::Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>>,
    /// The program to run instead of the built binary (its path after `setup`,
    /// inside a chroot).
    pub program: Option<PathBuf>,
}

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Option<Msg>>,
    eof: bool,
    next_id: i64,
    responses: HashMap<String, Msg>,
    notifications: VecDeque<Msg>,
    marker: String,
}

fn new_marker() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("fs-{}-{n}", std::process::id())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Server {
    /// Spawn and complete the handshake.
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Server {
        let mut s = Self::spawn(opts);
        let r = s.request("initialize", json!({"clientName": "tether-fs-tests"}));
        assert!(r.get("result").is_some(), "initialize failed: {r}");
        s.notify("initialized", json!({}));
        s
    }

    /// Spawn without the handshake.
    pub fn spawn(opts: Opts) -> Server {
        let mut cmd = match &opts.program {
            Some(p) => Command::new(p),
            None => Command::new(env!("CARGO_BIN_EXE_tether")),
        };
        cmd.arg("exec-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env_remove("RUST_LOG")
            .env_remove("TETHER_SANDBOX_MODE");
        let marker = new_marker();
        cmd.env(MARKER_VAR, &marker);
        if let Some(cwd) = &opts.cwd {
            cmd.current_dir(cwd);
        }
        let nobody = opts.as_nobody && is_root();
        let umask = opts.umask;
        let setup = opts.setup.clone();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(f) = &setup {
                    f()?;
                }
                if let Some(m) = umask {
                    libc::umask(m as libc::mode_t);
                }
                if nobody
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(NOBODY) != 0
                        || libc::setuid(NOBODY) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn tether exec-server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 20, stdout);
            let mut buf = Vec::new();
            let mut seq = 0u64;
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(_) => {}
                }
                assert_eq!(buf.last(), Some(&b'\n'), "server line without newline");
                buf.pop();
                let raw = String::from_utf8(std::mem::take(&mut buf))
                    .expect("server wrote a line that is not UTF-8");
                let value: Value = serde_json::from_str(&raw)
                    .unwrap_or_else(|e| panic!("server wrote invalid JSON ({e}): {raw:.200}"));
                seq += 1;
                if tx.send(Some(Msg { raw, value, seq })).is_err() {
                    return;
                }
            }
        });
        Server {
            child,
            stdin,
            rx,
            eof: false,
            next_id: 1,
            responses: HashMap::new(),
            notifications: VecDeque::new(),
            marker,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send_value(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).expect("encode");
        line.push(b'\n');
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(&line).expect("write to server stdin");
        stdin.flush().expect("flush server stdin");
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send_value(&json!({"method": method, "params": params}));
    }

    /// Send a request without waiting; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_value(&json!({"id": id, "method": method, "params": params}));
        id
    }

    /// Take one line from the reader, sorting it into responses or notifications.
    fn pump(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(Some(m)) => {
                let v = &m.value;
                let is_response = v.get("method").is_none()
                    && (v.get("result").is_some() || v.get("error").is_some());
                if is_response {
                    let key = v.get("id").cloned().unwrap_or(Value::Null).to_string();
                    self.responses.insert(key, m);
                } else {
                    self.notifications.push_back(m);
                }
                true
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                self.eof = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// Wait for the response to `id` (as the full message).
    pub fn wait_msg_timeout(&mut self, id: &Value, timeout: Duration) -> Msg {
        let key = id.to_string();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.responses.remove(&key) {
                return m;
            }
            if Instant::now() >= deadline {
                panic!("no response to id {key} within {timeout:?}");
            }
            if !self.pump(deadline) && self.eof {
                panic!("server closed stdout before answering id {key}");
            }
        }
    }

    pub fn wait_msg(&mut self, id: i64) -> Msg {
        self.wait_msg_timeout(&json!(id), TIMEOUT)
    }

    pub fn wait(&mut self, id: i64) -> Value {
        self.wait_msg(id).value
    }

    pub fn request_msg(&mut self, method: &str, params: Value) -> Msg {
        let id = self.send(method, params);
        self.wait_msg(id)
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_msg(method, params).value
    }

    pub fn request_timeout(&mut self, method: &str, params: Value, t: Duration) -> Value {
        let id = self.send(method, params);
        self.wait_msg_timeout(&json!(id), t).value
    }

    /// A request that must succeed; returns `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let params_s = short(&params);
        let r = self.request(method, params);
        result_of(&r, method, &params_s)
    }

    /// A request that must fail; returns (code, message).
    pub fn fail(&mut self, method: &str, params: Value) -> (i64, String) {
        let params_s = short(&params);
        let r = self.request(method, params);
        error_of(&r, method, &params_s)
    }

    /// A request that must fail with exactly this code and message.
    pub fn expect_err(&mut self, method: &str, params: Value, code: i64, message: &str) {
        let params_s = short(&params);
        let (c, m) = self.fail(method, params);
        assert_eq!(
            (c, m.as_str()),
            (code, message),
            "{method} {params_s}: wrong error"
        );
    }

    /// A request that must fail with this code and exactly the OS text of
    /// `errno` (`<strerror> (os error <errno>)`, no path; docs/protocol.md "Transport").
    pub fn expect_os_err(&mut self, method: &str, params: Value, code: i64, errno: i32) {
        self.expect_err(method, params, code, &os_text(errno));
    }

    /// The next notification, if one arrives within `timeout`.
    pub fn next_notification(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Some(n);
            }
            if Instant::now() >= deadline || (!self.pump(deadline) && self.eof) {
                return None;
            }
        }
    }

    /// Every notification that arrives within `window`.
    pub fn notifications_for(&mut self, window: Duration) -> Vec<Msg> {
        let deadline = Instant::now() + window;
        while Instant::now() < deadline {
            if !self.pump(deadline) && self.eof {
                break;
            }
        }
        self.notifications.drain(..).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        let test = thread::current().name().unwrap_or("the test").to_string();
        orphans::check(MARKER_VAR, &self.marker, &test);
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(300).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

pub fn result_of(r: &Value, method: &str, params: &str) -> Value {
    match r.get("result") {
        Some(v) => v.clone(),
        None => panic!("{method} {params}: expected success, got {r}"),
    }
}

pub fn error_of(r: &Value, method: &str, params: &str) -> (i64, String) {
    let Some(e) = r.get("error") else {
        panic!("{method} {params}: expected an error, got {}", short(r));
    };
    assert!(e.get("data").is_none(), "error has a data member: {r}");
    (
        e["code"].as_i64().expect("error code"),
        e["message"].as_str().expect("error message").to_string(),
    )
}

/// Member names of a JSON object in the order they appear in `raw`, for the
/// object found at the key path `keys` (serde_json's Value does not keep order).
pub fn member_order(raw: &str, keys: &[&str]) -> Vec<String> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let ordered: OrderedValue = serde::Deserialize::deserialize(&mut de).expect("reparse");
    let mut cur = &ordered;
    for k in keys {
        cur = match cur {
            OrderedValue::Object(m) => &m.iter().find(|(n, _)| n == k).expect("key").1,
            OrderedValue::Array(a) => &a[k.parse::<usize>().expect("index")],
            OrderedValue::Other => panic!("not an object at {k}"),
        };
    }
    match cur {
        OrderedValue::Object(m) => m.iter().map(|(n, _)| n.clone()).collect(),
        _ => panic!("not an object"),
    }
}

/// A JSON value that remembers object member order.
pub enum OrderedValue {
    Object(Vec<(String, OrderedValue)>),
    Array(Vec<OrderedValue>),
    Other,
}

impl<'de> serde::Deserialize<'de> for OrderedValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_unit<E>(self) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OrderedValue, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(OrderedValue::Array(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OrderedValue, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, OrderedValue>()? {
                    v.push((k, x));
                }
                Ok(OrderedValue::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------- helpers

/// A fresh directory, removed (with whatever is inside) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tether-fs-{}-{test}", std::process::id()));
        if path.exists() {
            fix_perms(&path);
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path).expect("create temp dir");
        // The server may run as nobody: let it traverse the directory.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        fix_perms(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Make every directory below `p` accessible again so it can be removed.
fn fix_perms(p: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(p) {
        if m.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    fix_perms(&e.path());
                }
            }
        }
    }
}

/// `file://` URI of an absolute path, encoded as docs/protocol.md "Transport" describes.
pub fn uri(p: &Path) -> String {
    let bytes = p.as_os_str().as_bytes();
    assert!(bytes.starts_with(b"/"), "not absolute: {p:?}");
    let mut s = String::from("file://");
    for &b in bytes {
        let plain = (0x21..=0x7e).contains(&b) && !b"\"#%<>?`{}".contains(&b);
        if plain {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The OS text of an errno, as Rust formats it.
pub fn os_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// Native path string as it appears in messages (non-UTF-8 replaced).
pub fn native(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(v: &Value) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a base64 string: {v}"));
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("invalid base64 from server: {e}"))
}

pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {p:?}: {}", std::io::Error::last_os_error());
}

pub fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target.as_ref(), link.as_ref())
        .unwrap_or_else(|e| panic!("symlink {:?}: {e}", link.as_ref()));
}

pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Rewrite `file:///...` to `file://localhost/...`.
pub fn localhost(u: &str) -> String {
    u.replacen("file://", "file://localhost", 1)
}
