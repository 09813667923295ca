//! A minimal exec-server client for the bench: spawns any server command, writes
//! requests to its stdin, and has one reader thread that splits stdout into lines,
//! decodes `process/output` chunks as they arrive (counting decoded bytes per
//! process) and files responses by id for the waiting caller.

use super::json;
use std::collections::HashMap;
use std::io::Write;
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
    /// The big strings of responses, decoded on arrival (see [`Lines`]).
    decoded: HashMap<i64, Result<Vec<u8>, String>>,
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

/// Buffers the client keeps for reuse across servers and samples, so that the
/// page faults of first touching hundreds of megabytes (a large `fs/readFile`
/// line and its decoding) are not counted against whichever server comes first.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer from the pool (the largest), or a new one: for data of a size
/// not known yet (a decoded result).
pub fn take_buf() -> Vec<u8> {
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    p.sort_by_key(|b| b.capacity());
    let mut b = p.pop().unwrap_or_else(|| Vec::with_capacity(1 << 20));
    b.clear();
    b
}

/// An empty buffer for `len` bytes: from the pool if one holds them without
/// being more than 16 times larger (the large ones are kept for results), else
/// a new one.
pub fn take_buf_for(len: usize) -> Vec<u8> {
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    p.sort_by_key(|b| b.capacity());
    let at = p
        .iter()
        .position(|b| b.capacity() >= len && b.capacity() / 16 <= len.max(1 << 20));
    let mut b = at
        .map(|i| p.remove(i))
        .unwrap_or_else(|| Vec::with_capacity(len));
    b.clear();
    b
}

/// Give a buffer back (the pool keeps the four largest).
pub fn put_buf(b: Vec<u8>) {
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    p.push(b);
    p.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
    p.truncate(6);
}

/// A big string decoded on arrival, or why it could not be.
type Decoded = Result<Vec<u8>, String>;

/// The string of a response being decoded while it arrives.
struct Streaming {
    /// Where its undecoded content starts in the line buffer.
    start: usize,
    decoded: Vec<u8>,
    failed: Option<String>,
}

/// Lines of `out`, read straight into the line buffer (one copy from the pipe).
/// A response whose result starts with a large string (`fs/readFile`'s
/// `dataBase64`, `fs/readBlock`'s `chunk`) has that string base64-decoded as it
/// arrives, while it is still in the cache, and taken out of the line (which then
/// holds `""` in its place): the client then costs no extra pass over hundreds of
/// megabytes, whichever server sent them.
struct Lines {
    fd: std::process::ChildStdout,
    buf: Vec<u8>,
    /// Where the current line starts in `buf`, and where the next one will.
    start: usize,
    consumed: usize,
    scanned: usize,
    stream: Option<Streaming>,
    done: Option<Result<Vec<u8>, String>>,
}

/// A line this long without its end is checked for a big string to stream.
const STREAM_AFTER: usize = 1 << 18;

impl Streaming {
    /// Decode `text` (whole 4-character groups, or the end of the string).
    fn decode(&mut self, text: &[u8]) {
        if self.failed.is_some() || text.is_empty() {
            return;
        }
        self.decoded.reserve(text.len() / 4 * 3 + 3);
        let spare = self.decoded.spare_capacity_mut();
        match base64_simd::STANDARD.decode(text, base64_simd::Out::from_uninit_slice(spare)) {
            Ok(d) => {
                let n = d.len();
                // SAFETY: the decoder initialised the first `n` spare bytes.
                unsafe { self.decoded.set_len(self.decoded.len() + n) };
            }
            Err(e) => self.failed = Some(e.to_string()),
        }
    }
}

impl Lines {
    fn new(fd: std::process::ChildStdout) -> Lines {
        Lines {
            fd,
            buf: take_buf_for(4 << 20),
            start: 0,
            consumed: 0,
            scanned: 0,
            stream: None,
            done: None,
        }
    }

    /// The next line (without its `\n`) as a range of `self.buf`, valid until the
    /// next call, and its decoded big string if it had one; `None` at end of input.
    fn next(&mut self) -> Option<(std::ops::Range<usize>, Option<Decoded>)> {
        use std::os::fd::AsRawFd;
        self.start = self.consumed;
        loop {
            if let Some(st) = &mut self.stream {
                let region = &self.buf[st.start..];
                let cut = match memchr::memchr(b'"', region) {
                    Some(q) => {
                        st.decode(&region[..q]);
                        Some(q)
                    }
                    None => {
                        let k = region.len() / 4 * 4;
                        st.decode(&region[..k]);
                        self.buf.drain(st.start..st.start + k);
                        None
                    }
                };
                if let Some(q) = cut {
                    let at = st.start;
                    self.buf.drain(at..at + q);
                    let st = self.stream.take().expect("streaming");
                    self.done = Some(match st.failed {
                        None => Ok(st.decoded),
                        Some(e) => Err(e),
                    });
                    self.scanned = at;
                    continue;
                }
                self.scanned = self.buf.len();
            } else if let Some(k) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + k;
                self.consumed = end + 1;
                self.scanned = end + 1;
                return Some((self.start..end, self.done.take()));
            } else {
                self.scanned = self.buf.len();
                if self.done.is_none() && self.buf.len() - self.start >= STREAM_AFTER {
                    if let Some(at) = json::big_string_start(&self.buf[self.start..]) {
                        self.stream = Some(Streaming {
                            start: self.start + at,
                            decoded: take_buf(),
                            failed: None,
                        });
                        continue;
                    }
                }
            }
            // Move the partial line to the front before reading more.
            if self.start > 0 {
                let s = self.start;
                self.buf.drain(..s);
                self.scanned -= s;
                if let Some(st) = &mut self.stream {
                    st.start -= s;
                }
                self.start = 0;
                self.consumed = 0;
            }
            if self.buf.capacity() - self.buf.len() < 1 << 20 {
                self.buf.reserve(self.buf.len().max(2 << 20));
            }
            let spare = self.buf.capacity() - self.buf.len();
            // SAFETY: read writes at most `spare` bytes into the reserved, unused
            // tail of the buffer; only what it wrote becomes part of the vector.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().add(self.buf.len()).cast(),
                    spare,
                )
            };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                return None;
            }
            // SAFETY: the kernel initialised these `n` bytes.
            unsafe { self.buf.set_len(self.buf.len() + n as usize) };
        }
    }
}

/// A copy of `b` in a pooled buffer.
fn owned(b: &[u8]) -> Vec<u8> {
    let mut v = take_buf_for(b.len());
    v.extend_from_slice(b);
    v
}

fn reader_loop(mut lines: Lines, shared: Arc<Shared>) {
    let mut scratch = Vec::new();
    while let Some((range, decoded)) = lines.next() {
        let line = &lines.buf[range];
        // A response: filed by id without skimming its (possibly huge) result.
        if let Some(id) = json::response_id(line) {
            let mut st = shared.lock();
            st.responses.insert(id, owned(line));
            if let Some(d) = decoded {
                st.decoded.insert(id, d);
            }
            drop(st);
            shared.cv.notify_all();
            continue;
        }
        // A notification: `method` comes first from both servers; its params are
        // then walked once (the chunk's only scan before decoding, which refuses
        // anything that is not plain base64).
        if let Some(m) = json::find(line, "method").and_then(|v| json::str_at(&line[v..], &[])) {
            let (mut pid, mut chunk) = (&b""[..], &b""[..]);
            if let Some(p) = json::find(line, "params") {
                json::members(&line[p..], |k, v| match k {
                    b"processId" => pid = json::plain_str(v).unwrap_or_default(),
                    b"chunk" => chunk = v.get(1..v.len().saturating_sub(1)).unwrap_or_default(),
                    _ => {}
                });
            }
            match m {
                b"process/output" => {
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
        } else if let Some(id) = json::find(line, "id").and_then(|v| json::int_at(&line[v..])) {
            shared.lock().responses.insert(id, owned(line));
            shared.cv.notify_all();
            continue;
        }
    }
    put_buf(std::mem::take(&mut lines.buf));
    shared.lock().eof = true;
    shared.cv.notify_all();
}

impl Server {
    /// Spawn `argv` with piped stdin/stdout (stderr discarded).
    pub fn spawn(argv: &[String]) -> Res<Server> {
        Self::spawn_reading(argv, Vec::new(), None).map(|(s, _)| s)
    }

    /// Spawn `argv`, write `first` to it, and read its stdout on this thread until
    /// a whole line has come (timed from before the spawn) before the reader thread
    /// takes over: the handshake figure then holds no client thread start-up.
    pub fn spawn_timed(argv: &[String], first: &[u8]) -> Res<(Server, f64)> {
        Self::spawn_reading(argv, first.to_vec(), Some(Instant::now()))
            .map(|(s, t)| (s, t.unwrap_or_default()))
    }

    fn spawn_reading(
        argv: &[String],
        first: Vec<u8>,
        timed: Option<Instant>,
    ) -> Res<(Server, Option<f64>)> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn {}: {e}", argv[0]))?;
        let shared = Arc::new(Shared::default());
        let mut lines = Lines::new(child.stdout.take().expect("piped stdout"));
        let mut stdin = child.stdin.take();
        let mut took = None;
        if let Some(t0) = timed {
            let w = stdin.as_mut().expect("piped stdin");
            w.write_all(&first)
                .map_err(|e| format!("writing the server's stdin: {e}"))?;
            let (range, _) = lines.next().ok_or("the server closed its stdout")?;
            took = Some(t0.elapsed().as_secs_f64() * 1e3);
            let line = &lines.buf[range];
            if let Some(id) = json::response_id(line) {
                shared.lock().responses.insert(id, owned(line));
            }
        }
        let sh = shared.clone();
        let reader = std::thread::spawn(move || reader_loop(lines, sh));
        let server = Server {
            pid: child.id() as i32,
            stdin,
            child,
            shared,
            next_id: 1,
            reader: Some(reader),
        };
        Ok((server, took))
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
                if json::find(&line, "result").is_some() {
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

    /// The decoded big string of response `id` (after [`Server::wait`]), if its
    /// line had one.
    pub fn take_decoded(&self, id: i64) -> Option<Result<Vec<u8>, String>> {
        self.shared.lock().decoded.remove(&id)
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
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
