//! A small synchronous harness: spawn `tether exec-server`, shake hands, send
//! requests with automatic ids, and wait for answers with a timeout. stdin stays
//! open until the harness is dropped (end of stdin shuts the server down).

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(20);

#[path = "../support/orphans.rs"]
mod orphans;

/// Carried by the server and so by the tool sessions it starts (they inherit its
/// environment); checked when the server is dropped.
const MARKER_VAR: &str = "TETHER_TEST_MARKER";

/// Proxy variables are removed from the server's environment unless a test sets
/// them, so that requests to the local test server go straight to it.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    /// Lines that arrived while waiting for something else, in arrival order.
    pending: VecDeque<Value>,
    next_id: i64,
    marker: String,
}

impl Server {
    /// A server past the handshake.
    pub fn ready() -> Server {
        Server::ready_with_env(&[])
    }

    pub fn ready_with_env(env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tether"));
        cmd.arg("exec-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for k in PROXY_VARS {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let marker = format!("services-{}-{n}", std::process::id());
        cmd.env(MARKER_VAR, &marker);
        let mut child = cmd.spawn().expect("spawn tether exec-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("server wrote invalid JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            stdin: child.stdin.take(),
            child,
            rx,
            pending: VecDeque::new(),
            next_id: 1,
            marker,
        };
        s.call("initialize", json!({"clientName": "services-test"}));
        s.send(&json!({"method": "initialized"}));
        s
    }

    pub fn send(&mut self, v: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let mut line = serde_json::to_vec(v).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).expect("write to the server");
        stdin.flush().unwrap();
    }

    /// Send a request; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}));
        id
    }

    fn recv_until(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(v) => Some(v),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed stdout"),
        }
    }

    /// The first line (buffered or new) matching `pred`; the others stay buffered.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.recv_until(deadline) {
                Some(v) if pred(&v) => return v,
                Some(v) => self.pending.push_back(v),
                None => panic!("timed out waiting for {what}; buffered: {:?}", self.pending),
            }
        }
    }

    /// The whole response message to request `id`.
    pub fn response(&mut self, id: i64) -> Value {
        self.wait_for(&format!("the response to {id}"), |v| {
            v.get("method").is_none() && v["id"] == json!(id)
        })
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(id)
    }

    /// A successful request's `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params.clone());
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method} {params} failed: {r}"),
        }
    }

    /// A failed request's `(code, message)`.
    pub fn error(&mut self, method: &str, params: Value) -> (i64, String) {
        let r = self.request(method, params.clone());
        let e = r
            .get("error")
            .unwrap_or_else(|| panic!("{method} {params}: expected an error, got {r}"));
        (
            e["code"].as_i64().unwrap(),
            e["message"].as_str().unwrap().to_string(),
        )
    }

    /// Buffered notifications so far, without removing them.
    pub fn pending(&self) -> &VecDeque<Value> {
        &self.pending
    }

    /// Read whatever arrives within `quiet` into the buffer.
    pub fn settle(&mut self, quiet: Duration) {
        while let Ok(v) = self.rx.recv_timeout(quiet) {
            self.pending.push_back(v);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let test = std::thread::current()
            .name()
            .unwrap_or("the test")
            .to_string();
        orphans::check(MARKER_VAR, &self.marker, &test);
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("invalid base64 ({e}): {s:.80}"))
}
