//! Latency of sandboxed filesystem requests (each runs a `codex-fs` helper) against
//! the same requests without a sandbox, through the real server, in one run.
//!
//! `cargo bench --bench sandboxed_fs` (N defaults to 300; `TETHER_BENCH_N=1000`).
//! Prints median, p90 and max per operation and the sandboxed/direct ratio.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next: i64,
}

impl Server {
    fn start(cwd: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg("exec-server")
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tether");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut s = Server {
            child,
            stdin,
            stdout,
            next: 1,
        };
        s.call("initialize", json!({"clientName": "bench"}));
        s.send_line(&json!({"method": "initialized", "params": {}}));
        s
    }

    fn send_line(&mut self, v: &Value) {
        let mut l = serde_json::to_vec(v).unwrap();
        l.push(b'\n');
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&l).unwrap();
        stdin.flush().unwrap();
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send_line(&json!({"id": id, "method": method, "params": params}));
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "server exited"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("result").is_some(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // End of stdin shuts the server down.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// The workspace-write context of docs/protocol.md "Sandbox" plus one deny entry, so that
/// reads need the helper too (without a deny entry they run directly: docs/protocol.md "Sandboxed filesystem requests").
fn context(cwd: &Path) -> Value {
    let special = |kind: &str| json!({"type": "special", "value": {"kind": kind}});
    json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
        {"path": special("root"), "access": "read"},
        {"path": special("project_roots"), "access": "write"},
        {"path": {"type": "special", "value": {"kind": "project_roots", "subpath": ".git"}}, "access": "read"},
        {"path": {"type": "path", "path": cwd.join("secrets").to_str().unwrap()}, "access": "deny"}]}},
        "cwd": cwd.to_str().unwrap(), "workspaceRoots": [cwd.to_str().unwrap()]})
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 9 / 10).min(v.len() - 1)]),
        ms(*v.last().unwrap()),
    )
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    for i in 0..10.min(n) {
        f(i); // warm-up
    }
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let n: usize = std::env::var("TETHER_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = PathBuf::from(format!("/var/tmp/tether-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/a.txt"), vec![b'a'; 4096]).unwrap();
    let mut s = Server::start(&dir);
    let sb = context(&dir);
    let data = base64_4k();
    let file = |i: usize| format!("file://{}/src/w{}.txt", dir.display(), i % 16);
    let read = format!("file://{}/src/a.txt", dir.display());

    println!("sandboxed fs latency, {n} sequential requests each, 4 KiB files");
    println!(
        "{:<22} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9}   {:>7}",
        "operation", "sb p50", "sb p90", "sb max", "dir p50", "dir p90", "dir max", "ratio"
    );
    for op in ["fs/readFile", "fs/writeFile"] {
        let mut run = |sandbox: &Value| {
            time(n, |i| {
                let params = if op == "fs/readFile" {
                    json!({"path": read, "sandbox": sandbox})
                } else {
                    json!({"path": file(i), "dataBase64": data, "sandbox": sandbox})
                };
                s.call(op, params);
            })
        };
        let direct = stats(run(&Value::Null));
        let sandboxed = stats(run(&sb));
        println!(
            "{:<22} {:>7.2}ms {:>7.2}ms {:>7.2}ms   {:>7.3}ms {:>7.3}ms {:>7.3}ms   {:>6.1}x",
            op,
            sandboxed.0,
            sandboxed.1,
            sandboxed.2,
            direct.0,
            direct.1,
            direct.2,
            sandboxed.0 / direct.0
        );
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_4k() -> String {
    // 4 KiB of 'b' (0x62): "YmJi" repeated, 4096 bytes → 5464 characters.
    let mut s = "YmJi".repeat(1365);
    s.push_str("Yg==");
    s
}
