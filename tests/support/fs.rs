//! The filesystem tests' view of the server: [`FsServer`], a thin adapter over
//! the one driver ([`Server`]) with the request helpers those tests are
//! written in (`call`, `fail`, `expect_err`, `expect_os_err`, responses as
//! [`Msg`] with their position in the output stream), and the filesystem
//! fixtures (scratch directories, `file://` URIs, OS error texts, member order).
//!
//! An `FsServer` marks the server itself (so the orphan check covers whatever
//! inherits its environment), fails on any line that is not
//! complete UTF-8 JSON, and is ended by end of stdin alone (no SIGTERM): every
//! filesystem test also checks that the server shuts down cleanly at EOF.

use std::ffi::{CString, OsStr};
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

pub use super::fixtures::b64;
pub use super::procs::{children, proc_info};
pub use super::server::TIMEOUT;
use super::server::{Line, Server, Setup, Shutdown};
pub use super::skip::skip;
pub use super::wait::wait_until;

pub const NOBODY: u32 = 65534;

/// One line the server wrote, with its position in the output stream.
pub type Msg = Line;

/// How to start a server.
#[derive(Default, Clone)]
pub struct Opts {
    /// Run the server as `nobody` (only meaningful when the tests run as root).
    pub as_nobody: bool,
    /// umask to set in the child before exec.
    pub umask: Option<u32>,
    pub cwd: Option<PathBuf>,
    /// Run in the child first, between fork and exec (async-signal-safe calls
    /// only): the private mount namespace of `support/ns.rs`.
    pub setup: Option<Setup>,
    /// The program to run instead of the built binary (its path after `setup`,
    /// inside a chroot).
    pub program: Option<PathBuf>,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A [`Server`] with the filesystem tests' helpers; derefs to the server.
pub struct FsServer(Server);

impl Deref for FsServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl DerefMut for FsServer {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

impl FsServer {
    /// Spawn and complete the handshake.
    pub fn start() -> FsServer {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> FsServer {
        let mut s = Self::spawn(opts);
        let r = s.request("initialize", json!({"clientName": "tether-fs-tests"}));
        assert!(r.get("result").is_some(), "initialize failed: {r}");
        s.notify("initialized", json!({}));
        s
    }

    /// Spawn without the handshake.
    pub fn spawn(opts: Opts) -> FsServer {
        let mut b = Server::builder()
            .env_remove("RUST_LOG")
            .env_remove("TETHER_SANDBOX_MODE")
            .mark_server()
            .strict()
            .shutdown(Shutdown::CloseStdin);
        if let Some(p) = opts.program {
            b = b.program(p);
        }
        if let Some(cwd) = opts.cwd {
            b = b.cwd(cwd);
        }
        if let Some(f) = opts.setup {
            b = b.pre_exec(f);
        }
        if let Some(m) = opts.umask {
            b = b.umask(m);
        }
        if opts.as_nobody && is_root() {
            b = b.run_as(NOBODY, NOBODY);
        }
        FsServer(b.spawn())
    }

    pub fn pid(&self) -> u32 {
        self.0.pid() as u32
    }

    pub fn send_value(&mut self, v: &Value) {
        self.0.send(v);
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send_value(&json!({"method": method, "params": params}));
    }

    /// Send a request without waiting; returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> i64 {
        self.0.send_request(method, Some(params))
    }

    /// Wait for the response to `id` (as the full message).
    pub fn wait_msg_timeout(&mut self, id: &Value, timeout: Duration) -> Msg {
        let key = id.clone();
        let found = self.0.try_wait_line(timeout, move |v| {
            v.get("method").is_none()
                && (v.get("result").is_some() || v.get("error").is_some())
                && v.get("id").unwrap_or(&Value::Null) == &key
        });
        match found {
            Some(m) => m,
            None if self.0.stdout_ended() => {
                panic!("server closed stdout before answering id {id}")
            }
            None => panic!("no response to id {id} within {timeout:?}"),
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

    /// A request that must fail with exactly this code and the OS text of
    /// `errno` (`<strerror> (os error <errno>)`, no path; docs/protocol.md "Transport").
    pub fn expect_os_err(&mut self, method: &str, params: Value, code: i64, errno: i32) {
        self.expect_err(method, params, code, &os_text(errno));
    }

    /// The next notification (anything but a response), if one arrives
    /// within `timeout`.
    pub fn next_notification(&mut self, timeout: Duration) -> Option<Msg> {
        self.0.try_wait_line(timeout, |v| !is_response(v))
    }

    /// Every notification that arrives within `window` (and those buffered).
    pub fn notifications_for(&mut self, window: Duration) -> Vec<Msg> {
        self.0.buffer_for(window);
        self.0.take_buffered(|v| !is_response(v))
    }
}

/// A response: no method, and a result or an error.
fn is_response(v: &Value) -> bool {
    v.get("method").is_none() && (v.get("result").is_some() || v.get("error").is_some())
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
