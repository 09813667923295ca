//! A minimal exec-server client for the bench: spawns any server command, writes
//! requests to its stdin, and has one reader thread that splits stdout into lines,
//! decodes `process/output` chunks as they arrive (counting decoded bytes per
//! process) and files responses by id for the waiting caller.

use super::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, String>;

/// How long any single wait may take before the figure is reported as failed.
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Default, Debug, Clone)]
pub struct ProcStat {
    pub bytes: u64,
    pub closed: bool,
}

#[derive(Default)]
struct St {
    responses: HashMap<i64, Vec<u8>>,
    procs: HashMap<Vec<u8>, ProcStat>,
    closed_count: u64,
    last_closed: Option<Instant>,
    eof: bool,
}

#[derive(Default)]
struct Shared {
    st: Mutex<St>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Server {
    pub pid: i32,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    next_id: i64,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Split a command line on whitespace (no quoting: benchmark commands are simple).
pub fn split_cmd(cmd: &str) -> Vec<String> {
    cmd.split_whitespace().map(str::to_string).collect()
}

fn reader_loop(out: std::process::ChildStdout, shared: Arc<Shared>) {
    let mut r = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::with_capacity(1 << 17);
    let mut scratch = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let (mut id, mut method, mut params) = (None, None, None);
        json::members(&line, |k, v| match k {
            b"id" => id = Some(v),
            b"method" => method = Some(v),
            b"params" => params = Some(v),
            _ => {}
        });
        if let Some(m) = method.and_then(json::plain_str) {
            let Some(p) = params else { continue };
            let pid = json::get(p, "processId")
                .and_then(json::plain_str)
                .unwrap_or_default();
            match m {
                b"process/output" => {
                    let chunk = json::get(p, "chunk")
                        .and_then(json::plain_str)
                        .unwrap_or_default();
                    scratch.resize(chunk.len() / 4 * 3 + 3, 0);
                    let n = base64_simd::STANDARD
                        .decode(chunk, base64_simd::Out::from_slice(&mut scratch))
                        .map_or(0, |d| d.len());
                    let mut st = shared.lock();
                    st.procs.entry(pid.to_vec()).or_default().bytes += n as u64;
                }
                b"process/closed" => {
                    let mut st = shared.lock();
                    st.procs.entry(pid.to_vec()).or_default().closed = true;
                    st.closed_count += 1;
                    st.last_closed = Some(Instant::now());
                    drop(st);
                    shared.cv.notify_all();
                }
                _ => {}
            }
            continue;
        }
        if let Some(id) = id.and_then(json::int) {
            let msg = std::mem::replace(&mut line, Vec::with_capacity(1 << 17));
            shared.lock().responses.insert(id, msg);
            shared.cv.notify_all();
        }
    }
    shared.lock().eof = true;
    shared.cv.notify_all();
}

impl Server {
    /// Spawn `argv` with piped stdin/stdout (stderr discarded).
    pub fn spawn(argv: &[String]) -> Res<Server> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", argv[0]))?;
        let shared = Arc::new(Shared::default());
        let out = child.stdout.take().expect("piped stdout");
        let sh = shared.clone();
        let reader = std::thread::spawn(move || reader_loop(out, sh));
        Ok(Server {
            pid: child.id() as i32,
            stdin: child.stdin.take(),
            child,
            shared,
            next_id: 1,
            reader: Some(reader),
        })
    }

    /// `initialize` (waiting for its result), then `initialized`.
    pub fn handshake(&mut self) -> Res<()> {
        self.call("initialize", r#"{"clientName":"tether-bench"}"#)?;
        self.send(b"{\"method\":\"initialized\",\"params\":{}}\n")
    }

    pub fn send(&mut self, bytes: &[u8]) -> Res<()> {
        self.stdin
            .as_mut()
            .ok_or("stdin closed")?
            .write_all(bytes)
            .map_err(|e| format!("writing the server's stdin: {e}"))
    }

    /// The line of a request, and its id.
    pub fn request_line(&mut self, method: &str, params: &str) -> (i64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}\n");
        (id, line.into_bytes())
    }

    pub fn request(&mut self, method: &str, params: &str) -> Res<i64> {
        let (id, line) = self.request_line(method, params);
        self.send(&line)?;
        Ok(id)
    }

    /// Wait for the response to `id`; `Ok(line)` for a result, `Err` for an error.
    pub fn wait(&self, id: i64) -> Res<Vec<u8>> {
        let deadline = Instant::now() + TIMEOUT;
        let mut st = self.shared.lock();
        loop {
            if let Some(line) = st.responses.remove(&id) {
                drop(st);
                if json::get(&line, "result").is_some() {
                    return Ok(line);
                }
                let msg = json::get(&line, "error")
                    .and_then(|e| json::get(e, "message"))
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_else(|| "malformed response".into());
                return Err(msg);
            }
            if st.eof {
                return Err("the server closed its stdout".into());
            }
            st = self.wait_cv(st, deadline)?;
        }
    }

    /// Wait for all of `ids` and drop their lines; the first error wins.
    pub fn wait_all(&self, ids: impl IntoIterator<Item = i64>) -> Res<()> {
        for id in ids {
            self.wait(id)?;
        }
        Ok(())
    }

    pub fn call(&mut self, method: &str, params: &str) -> Res<Vec<u8>> {
        let id = self.request(method, params)?;
        self.wait(id)
    }

    fn wait_cv<'a>(&self, st: MutexGuard<'a, St>, deadline: Instant) -> Res<MutexGuard<'a, St>> {
        let now = Instant::now();
        if now >= deadline {
            return Err("timed out".into());
        }
        let (st, _) = self
            .shared
            .cv
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|e| e.into_inner());
        Ok(st)
    }

    /// Wait for `process/closed` of `id`; the decoded bytes it sent.
    pub fn wait_closed(&self, id: &str) -> Res<u64> {
        let deadline = Instant::now() + TIMEOUT;
        let mut st = self.shared.lock();
        loop {
            if let Some(p) = st.procs.get(id.as_bytes()) {
                if p.closed {
                    return Ok(st.procs.remove(id.as_bytes()).unwrap().bytes);
                }
            }
            if st.eof {
                return Err("the server closed its stdout".into());
            }
            st = self.wait_cv(st, deadline)?;
        }
    }

    /// How many `process/closed` have arrived, and when the last one did.
    pub fn closed_count(&self) -> (u64, Option<Instant>) {
        let st = self.shared.lock();
        (st.closed_count, st.last_closed)
    }

    /// Wait until `n` processes have closed in total; when the last one did.
    pub fn wait_closed_count(&self, n: u64) -> Res<Instant> {
        let deadline = Instant::now() + TIMEOUT;
        let mut st = self.shared.lock();
        loop {
            if st.closed_count >= n {
                st.procs.clear();
                return Ok(st.last_closed.unwrap_or_else(Instant::now));
            }
            if st.eof {
                return Err("the server closed its stdout".into());
            }
            st = self.wait_cv(st, deadline)?;
        }
    }

    /// Peak resident set (VmHWM) of the server process, in MiB.
    pub fn peak_rss_mib(&self) -> Res<f64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("reading /proc/{}/status: {e}", self.pid))?;
        let kb: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or("no VmHWM")?;
        Ok(kb / 1024.0)
    }

    /// CPU time (user + system) the server process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return 0.0;
        };
        // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
        let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (tick(11) + tick(12)) / hz
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// CPU time (user + system) this bench process has used, in seconds.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
