//! Invariants of the input decoders, in one place: the fuzz targets (`fuzz/`), the
//! property tests (below) and the crash regression tests all call these checks, so a
//! crash found by the fuzzer replays in `cargo test` through the same code.
//!
//! Every `check_*` function panics when an invariant does not hold; a decoder that
//! panics by itself is a bug too. Nothing here writes to the filesystem or starts a
//! process: the decoders only read (sandbox resolution looks at existing paths).
//! Not part of the supported API.

use crate::client::environments::{
    DefaultEnvironment, Environments, Selected, Transport, LOCAL_ID,
};
use crate::modes::exec_server::decode::{classify, Incoming};
use crate::modes::exec_server::transport::{InputEvent, LineSplitter};
use crate::protocol::paths::{parse_path, to_uri};
use crate::protocol::{self, fs, handshake, http, methods, process, tools, ErrorObject};
use crate::protocol::{ErrorOut, RequestId, MALFORMED_ID};
use crate::rpc::error::RpcError;
use crate::sandbox::policy::{self, Policy};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What the reader hands on, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Line(Vec<u8>),
    TooLong,
}

/// Run `data` through a [`LineSplitter`] with line limit `max`, fed in pieces whose
/// lengths cycle through `cuts` (0 means "the rest"), then `finish`.
pub fn split(data: &[u8], max: usize, cuts: &[usize]) -> Vec<Event> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut emit = |e: InputEvent| {
        out.push(match e {
            InputEvent::Line(l) => Event::Line(l),
            InputEvent::TooLong => Event::TooLong,
            InputEvent::Eof => panic!("the splitter never emits Eof"),
        });
        true
    };
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match cuts.get(i % cuts.len().max(1)).copied().unwrap_or(0) {
            0 => rest.len(),
            n => n.min(rest.len()),
        };
        assert!(s.feed(&rest[..n], &mut emit));
        rest = &rest[n..];
        i += 1;
    }
    s.finish(&mut emit);
    out
}

/// docs/protocol.md "Transport" written as plainly as possible: lines end with `\n`, one `\r`
/// before it is removed, blank lines are skipped, a line over `max` bytes (the
/// terminator not counted) is one `TooLong`. A last line without `\n` still counts.
pub fn split_model(data: &[u8], max: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let last = pieces.pop().unwrap_or(&[]);
    let mut judge = |line: &[u8]| {
        if line.len() > max {
            out.push(Event::TooLong);
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(Event::Line(line.to_vec()));
        }
    };
    for p in pieces {
        judge(p.strip_suffix(b"\r").unwrap_or(p));
    }
    judge(last);
    out
}

/// Splitting `data` in any pieces gives what the plain model says.
pub fn check_split(data: &[u8], max: usize, cuts: &[usize]) {
    let got = split(data, max, cuts);
    let want = split_model(data, max);
    assert_eq!(
        got, want,
        "splitter and model differ (max {max}, cuts {cuts:?})"
    );
}

/// The typed params of a method, decoded as its handler decodes them. `None` for a
/// method without typed params.
pub fn decode_params(method: &str, params: Value) -> Option<Result<(), String>> {
    fn d<T: DeserializeOwned>(v: Value) -> Option<Result<(), String>> {
        Some(
            serde_json::from_value::<T>(v)
                .map(drop)
                .map_err(|e| e.to_string()),
        )
    }
    match method {
        methods::INITIALIZE => d::<handshake::InitializeParams>(params),
        methods::PROCESS_START => d::<process::StartParams>(params),
        methods::PROCESS_READ => d::<process::ReadParams>(params),
        methods::PROCESS_WRITE => d::<process::WriteParams>(params),
        methods::PROCESS_SIGNAL => d::<process::SignalParams>(params),
        methods::PROCESS_TERMINATE => d::<process::TerminateParams>(params),
        methods::PROCESS_RESIZE => d::<process::ResizeParams>(params),
        methods::PROCESS_CLOSE_STDIN => d::<process::ProcessIdParams>(params),
        methods::FS_READ_FILE => d::<fs::ReadFileParams>(params),
        methods::FS_WRITE_FILE => d::<fs::WriteFileParams>(params),
        methods::FS_CREATE_DIRECTORY => d::<fs::CreateDirectoryParams>(params),
        methods::FS_GET_METADATA | methods::FS_READ_DIRECTORY | methods::FS_CANONICALIZE => {
            d::<fs::PathParams>(params)
        }
        methods::FS_REMOVE => d::<fs::RemoveParams>(params),
        methods::FS_COPY => d::<fs::CopyParams>(params),
        methods::FS_WALK => d::<fs::WalkParams>(params),
        methods::FS_OPEN => d::<fs::OpenParams>(params),
        methods::FS_READ_BLOCK => d::<fs::ReadBlockParams>(params),
        methods::FS_WRITE_BLOCK => d::<fs::WriteBlockParams>(params),
        methods::FS_CLOSE => d::<fs::HandleParams>(params),
        methods::FS_WATCH_MISSING => d::<fs::WatchMissingParams>(params),
        methods::TOOLS_CALL => d::<tools::CallParams>(params),
        methods::HTTP_REQUEST => d::<http::RequestParams>(params),
        _ => None,
    }
}

/// An error line as the server writes it: one line of JSON with exactly
/// `error.code`, `error.message` and `id`.
fn check_error_line(id: &RequestId, e: &RpcError) {
    let line = protocol::to_line(&ErrorOut {
        error: &e.to_object(),
        id,
    });
    assert_eq!(memchr::memchr(b'\n', &line), Some(line.len() - 1));
    let back: Value = serde_json::from_slice(&line).expect("error lines are JSON");
    let obj = back.as_object().expect("an object");
    assert_eq!(obj.len(), 2);
    let err: ErrorObject = serde_json::from_value(back["error"].clone()).expect("error object");
    assert_eq!(err.code, e.code);
    assert_eq!(err.message, e.message);
    let echoed: RequestId = serde_json::from_value(back["id"].clone()).expect("id");
    assert_eq!(&echoed, id, "ids are echoed exactly");
}

/// Classify one line and check the result against a plain `serde_json` parse.
pub fn check_line(line: &[u8]) -> Incoming {
    let got = classify(line);
    // What serde_json alone makes of it (no duplicate-key check; its own depth limit).
    let plain = std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    match &got {
        Incoming::Malformed(detail) => {
            assert!(!detail.is_empty(), "a malformed line has a detail");
            check_error_line(&MALFORMED_ID, &RpcError::malformed(detail));
        }
        Incoming::Request { id, method, params } => {
            let v = plain.expect("a request is valid JSON");
            assert_eq!(v["method"].as_str(), Some(method.as_str()));
            assert_eq!(v.get("params").unwrap_or(&Value::Null), params);
            check_id(&v["id"], id);
            check_error_line(id, &RpcError::method_not_found(method));
            if let Some(Err(e)) = decode_params(method, params.clone()) {
                check_error_line(id, &RpcError::invalid_params(e));
            }
        }
        Incoming::Notification { method, params } => {
            let v = plain.expect("a notification is valid JSON");
            assert!(v.get("id").is_none());
            assert_eq!(v["method"].as_str(), Some(method.as_str()));
            assert_eq!(v.get("params").unwrap_or(&Value::Null), params);
        }
        Incoming::Response { id, outcome } => {
            let v = plain.expect("a response is valid JSON");
            assert!(v.get("method").is_none());
            check_id(&v["id"], id);
            match outcome {
                Ok(r) => assert_eq!(&v["result"], r),
                Err(e) => assert_eq!(&v["error"], e),
            }
        }
    }
    got
}

fn check_id(raw: &Value, id: &RequestId) {
    match id {
        RequestId::Int(n) => assert_eq!(raw.as_i64(), Some(*n), "integer ids echo as sent"),
        RequestId::Str(s) => assert_eq!(raw.as_str(), Some(s.as_str()), "string ids echo"),
    }
}

/// Feed a byte stream as the reader does (line limit `max`, pieces `cuts`), and
/// classify every line.
pub fn check_stream(data: &[u8], max: usize, cuts: &[usize]) {
    check_split(data, max, cuts);
    for ev in split(data, max, cuts) {
        if let Event::Line(l) = ev {
            check_line(&l);
        }
    }
}

/// A path member: accepted paths are absolute, lexically normal, free of NUL, and
/// survive the trip through a result URI; plain absolute paths are always accepted.
pub fn check_path(input: &str) {
    let r = parse_path(input);
    if input.starts_with('/') && !input.contains('\0') {
        assert!(r.is_ok(), "plain absolute path {input:?} refused: {r:?}");
    }
    match r {
        Ok(p) => {
            let b = p.as_os_str().as_bytes();
            assert!(b.starts_with(b"/"), "{p:?} is absolute");
            assert!(!b.contains(&0), "{p:?} has no NUL");
            if b != b"/" {
                assert!(!b.ends_with(b"/"), "{p:?} has no trailing slash");
                for seg in b[1..].split(|c| *c == b'/') {
                    assert!(!matches!(seg, b"" | b"." | b".."), "{p:?} is normal");
                }
            }
            let uri = to_uri(&p);
            assert!(uri.starts_with("file:///"), "{uri}");
            assert_eq!(parse_path(&uri).as_ref(), Ok(&p), "round trip via {uri}");
            if let Some(s) = p.to_str() {
                assert_eq!(
                    parse_path(s).as_ref(),
                    Ok(&p),
                    "normal paths are fixed points"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A `sandbox` member: parsing never panics, and what it resolves is absolute.
pub fn check_policy(v: &Value) {
    match policy::parse(Some(v)) {
        Ok(None) => assert!(v.is_null()),
        Ok(Some(ctx)) => {
            if let Policy::Restricted(r) = ctx.policy {
                for e in &r.entries {
                    assert!(e.path.is_absolute(), "entry {e:?} is absolute");
                }
                for g in &r.globs {
                    assert!(g.starts_with('/'), "glob {g} is absolute");
                }
                assert!(r.glob_depth >= 1);
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Escalation frames (docs/protocol.md "Exec escalation") read from a stream: the reader never panics and
/// never yields a frame over the limit; every message it decodes encodes to a
/// frame that decodes to the same message. Input beyond 64 KiB is ignored (it is
/// written to the socket before reading starts).
pub fn check_frames(data: &[u8]) {
    use crate::escalate::wire::{
        self, ExecRequest, ExecResponse, ExitMessage, FdsMessage, FrameReader, MAX_FRAME,
    };
    use crate::sys::socket;
    use std::os::fd::AsRawFd;
    fn round_trip<T>(m: &T)
    where
        T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let frame = wire::encode(m);
        let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4, "length prefix of {m:?}");
        let back: T = serde_json::from_slice(&frame[4..]).expect("an encoded frame decodes");
        assert_eq!(&back, m);
    }
    let data = &data[..data.len().min(64 * 1024)];
    let (w, r) = socket::socketpair(libc::SOCK_STREAM).expect("socketpair");
    let mut off = 0;
    while off < data.len() {
        off += socket::send_raw(w.as_raw_fd(), &data[off..], &[]).expect("send to the pair");
    }
    drop(w);
    loop {
        let mut reader = FrameReader::default();
        let frame = loop {
            match reader.step(r.as_raw_fd()) {
                Ok(Some(f)) => break Some(f),
                Ok(None) => continue,
                Err(_) => break None,
            }
        };
        let Some((body, fds)) = frame else { break };
        assert!(body.len() <= MAX_FRAME);
        assert!(fds.is_empty(), "no descriptors were sent");
        if let Ok(m) = serde_json::from_slice::<ExecRequest>(&body) {
            round_trip(&m);
        }
        if let Ok(m) = serde_json::from_slice::<ExecResponse>(&body) {
            round_trip(&m);
        }
        if let Ok(m) = serde_json::from_slice::<FdsMessage>(&body) {
            round_trip(&m);
        }
        if let Ok(m) = serde_json::from_slice::<ExitMessage>(&body) {
            round_trip(&m);
        }
    }
}

/// An environments.toml text: when it loads, every id is valid and unique, the
/// default can be selected, and program working directories are absolute.
pub fn check_environments(text: &str) {
    let Ok(envs) = Environments::parse(text, Some(Path::new("/cfg"))) else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for e in &envs.environments {
        assert!((1..=64).contains(&e.id.len()), "id length: {:?}", e.id);
        assert!(
            e.id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "id characters: {:?}",
            e.id
        );
        assert!(e.id != LOCAL_ID && !e.id.eq_ignore_ascii_case("none"));
        assert!(seen.insert(e.id.clone()), "duplicate id {:?}", e.id);
        match &e.transport {
            Transport::Program(cmd) => {
                if let Some(cwd) = &cmd.cwd {
                    assert!(cwd.is_absolute(), "cwd {cwd:?} is absolute");
                }
            }
            Transport::Url { url, .. } => {
                assert!(
                    url.starts_with("ws://") || url.starts_with("wss://"),
                    "{url}"
                )
            }
        }
        assert!(matches!(envs.select(&e.id), Ok(Selected::Configured(_))));
    }
    if let DefaultEnvironment::Id(d) = &envs.default {
        assert!(envs.select(d).is_ok(), "default {d} can be selected");
    }
}

#[cfg(test)]
mod tests;

pub use dispatch::DispatchHarness;

/// A [`crate::modes::exec_server::dispatch::Dispatcher`] over an in-memory connection.
mod dispatch {
    use super::{split, Event};
    use crate::modes::exec_server::decode::{classify, Incoming};
    use crate::modes::exec_server::dispatch::Dispatcher;
    use crate::modes::exec_server::env_info;
    use crate::modes::exec_server::transport::{self, InputEvent};
    use crate::process::ProcessManager;
    use crate::protocol::handshake::EnvironmentInfo;
    use crate::protocol::{methods, RequestId};
    use crate::rpc::outbound::Outbound;
    use serde_json::Value;
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// Methods the harness lets through: none of them changes anything outside the
    /// server (no process is ever started, so the process methods only ever see
    /// unknown ids). Requests for other known methods are left out of the input.
    const HARMLESS: &[&str] = &[
        methods::INITIALIZE,
        methods::ENVIRONMENT_INFO,
        methods::ENVIRONMENT_STATUS,
        methods::PROCESS_READ,
        methods::PROCESS_WRITE,
        methods::PROCESS_SIGNAL,
        methods::PROCESS_TERMINATE,
        methods::PROCESS_RESIZE,
        methods::PROCESS_CLOSE_STDIN,
        methods::FS_GET_METADATA,
        methods::FS_CANONICALIZE,
        methods::FS_READ_BLOCK,
        methods::FS_WRITE_BLOCK,
        methods::FS_CLOSE,
        methods::TOOLS_LIST,
    ];

    /// Where the writer thread puts its lines.
    #[derive(Clone, Default)]
    struct Sink(Arc<(Mutex<Vec<u8>>, Condvar)>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                 .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
            self.0 .1.notify_all();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    pub struct DispatchHarness {
        rt: tokio::runtime::Runtime,
        out: Outbound,
        procs: Arc<ProcessManager>,
        info: EnvironmentInfo,
        sink: Sink,
    }

    impl Default for DispatchHarness {
        fn default() -> Self {
            Self::new()
        }
    }

    impl DispatchHarness {
        pub fn new() -> Self {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let _g = rt.enter();
            let sink = Sink::default();
            let out =
                transport::spawn_writer(sink.clone(), Arc::new(AtomicBool::new(false)), || {
                    panic!("the in-memory writer never fails")
                });
            let info = env_info::compute();
            let host = info.tether.as_ref().expect("tether info").sandbox.clone();
            let procs = ProcessManager::new(out.clone(), host);
            DispatchHarness {
                rt,
                out,
                procs,
                info,
                sink,
            }
        }

        /// Serve `data` as one connection (after a handshake when `handshake`), and
        /// check that every request is answered, every malformed line gets its
        /// error, and every line written is one JSON message.
        pub fn run(&mut self, data: &[u8], handshake: bool) {
            let mut input = Vec::new();
            if handshake {
                input.extend_from_slice(
                    b"{\"id\":\"hs\",\"method\":\"initialize\",\"params\":{\"clientName\":\"fuzz\"}}\n{\"method\":\"initialized\"}\n",
                );
            }
            input.extend_from_slice(data);
            let mut events = Vec::new();
            let mut min = 0usize;
            let mut max = 0usize;
            let mut ids: HashMap<RequestId, usize> = HashMap::new();
            for ev in split(&input, 1 << 20, &[]) {
                match ev {
                    Event::TooLong => {
                        events.push(InputEvent::TooLong);
                        min += 1;
                        max += 1;
                    }
                    Event::Line(l) => {
                        match classify(&l) {
                            Incoming::Request { id, method, params } => {
                                let fs_sandboxed = method.starts_with("fs/")
                                    && params.get("sandbox").is_some_and(|s| !s.is_null());
                                let known =
                                    crate::modes::exec_server::dispatch::family(&method).is_some();
                                if fs_sandboxed || (known && !HARMLESS.contains(&&*method)) {
                                    continue;
                                }
                                // Id -1 is also the id of malformed-line errors.
                                if id != crate::protocol::MALFORMED_ID {
                                    *ids.entry(id).or_default() += 1;
                                }
                                min += 1;
                                max += 1;
                            }
                            Incoming::Malformed(_) => {
                                min += 1;
                                max += 1;
                            }
                            Incoming::Notification { method, .. } => {
                                if method != methods::INITIALIZED {
                                    min += 1;
                                }
                                max += 1;
                            }
                            Incoming::Response { .. } => {}
                        }
                        events.push(InputEvent::Line(l));
                    }
                }
            }
            self.sink
                .0
                 .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            let dispatcher =
                Dispatcher::new(self.out.clone(), self.procs.clone(), self.info.clone());
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            self.rt.block_on(async move {
                let serve = tokio::spawn(dispatcher.run(rx));
                for ev in events {
                    tx.send(ev).await.expect("dispatcher alive");
                }
                tx.send(InputEvent::Eof).await.expect("dispatcher alive");
                serve.await.expect("the dispatcher does not panic");
            });
            // Wait until every request is answered: a line count alone is not
            // enough, since `initialized` is answered only before `initialize`.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut want = min;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let lines = self.wait_lines(want, left);
                assert!(
                    lines.len() <= max,
                    "{} lines written, at most {max} expected",
                    lines.len()
                );
                let mut left_ids = ids.clone();
                for line in &lines {
                    let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                        panic!(
                            "server wrote non-JSON ({e}): {}",
                            String::from_utf8_lossy(line)
                        )
                    });
                    let obj = v.as_object().expect("every message is an object");
                    assert!(!obj.contains_key("jsonrpc"));
                    if obj.contains_key("method") {
                        continue;
                    }
                    assert!(
                        obj.contains_key("result") ^ obj.contains_key("error"),
                        "{v}"
                    );
                    let id: RequestId = serde_json::from_value(v["id"].clone()).expect("id");
                    if let Some(n) = left_ids.get_mut(&id) {
                        *n = n.saturating_sub(1);
                    }
                }
                let missing: Vec<_> = left_ids.iter().filter(|(_, n)| **n > 0).collect();
                if missing.is_empty() {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "requests without a response after 10 s: {missing:?}"
                );
                want = lines.len() + 1;
            }
        }

        /// The lines written so far, once there are at least `n` (panics after `t`).
        fn wait_lines(&self, n: usize, t: Duration) -> Vec<Vec<u8>> {
            let deadline = Instant::now() + t;
            let (lock, cv) = &*self.sink.0;
            let mut buf = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let count = memchr::memchr_iter(b'\n', &buf).count();
                if count >= n {
                    if buf.is_empty() {
                        return Vec::new();
                    }
                    assert_eq!(buf.last(), Some(&b'\n'), "whole lines only");
                    return buf[..buf.len() - 1]
                        .split(|b| *b == b'\n')
                        .map(<[u8]>::to_vec)
                        .collect();
                }
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "only {count} of {n} answers within {t:?}");
                buf = cv
                    .wait_timeout(buf, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}
