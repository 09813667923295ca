//! Helpers for the client-library and `tether run` tests: the orphan check as a
//! guard value (these tests start servers through `tether::client`, not
//! through [`super::Server`]), marker scans with the client tests' own
//! variable, commands run with a deadline, and the server command for the
//! built binary. Every wait has a timeout so a broken build fails instead of
//! hanging.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use super::fixtures::{bin, temp_dir, unique};
use super::orphans;
pub use super::procs::pid_alive;
use super::procs::{self as scan, MARKER_VAR};
pub use super::server::TIMEOUT;

/// The suite-wide orphan marker (see `OrphanCheck`); distinct from `MARKER`, which
/// some tests count processes by.
pub const ORPHAN_VAR: &str = MARKER_VAR;

thread_local! {
    static TEST_MARKER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The orphan marker of the test running on this thread, if it made an `OrphanCheck`.
pub fn test_marker() -> Option<String> {
    TEST_MARKER.with(|m| m.borrow().clone())
}

/// Marks what this test starts: servers from `server()` and commands run with
/// `run_with_input`/`tether` get `ORPHAN_VAR` (and pass it on to what they run).
/// Dropped at the end of the test, after its servers: the orphan check.
pub struct OrphanCheck(String);

impl OrphanCheck {
    #[allow(clippy::new_without_default)]
    pub fn new() -> OrphanCheck {
        let m = unique("orphans");
        TEST_MARKER.with(|t| *t.borrow_mut() = Some(m.clone()));
        OrphanCheck(m)
    }
}

impl Drop for OrphanCheck {
    fn drop(&mut self) {
        TEST_MARKER.with(|t| t.borrow_mut().take());
        let test = thread::current().name().unwrap_or("the test").to_string();
        orphans::check(ORPHAN_VAR, &self.0, &test);
    }
}
/// The variable that marks every process a test starts through a server.
pub const MARKER: &str = "TETHER_CLIENT_TEST_MARKER";

/// Pids of live processes whose environment has `MARKER=<marker>`.
pub fn marked(marker: &str) -> Vec<u32> {
    scan::with_env(MARKER, marker)
        .into_iter()
        .map(|p| p.pid as u32)
        .collect()
}

/// Wait until `marked(marker)` has at least `n` processes; panics after TIMEOUT.
pub fn wait_marked(marker: &str, n: usize) -> Vec<u32> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let p = marked(marker);
        if p.len() >= n {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "only {p:?} of {n} marked processes appeared"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until no process carries `marker`; returns how long that took, or the
/// survivors after `within` (which it then SIGKILLs).
pub fn gone_within(marker: &str, within: Duration) -> Result<Duration, Vec<u32>> {
    let t = Instant::now();
    loop {
        let p = marked(marker);
        if p.is_empty() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > within {
            for pid in &p {
                // SAFETY: cleaning up our own test's leftovers.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            return Err(p);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Run `cmd` with `input` on stdin; kill it and panic after `TIMEOUT`.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    if let Some(m) = test_marker() {
        cmd.env(ORPHAN_VAR, m);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let o = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let e = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not finish within {TIMEOUT:?}: {cmd:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let _ = w.join();
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// `tether ARGS` with no input.
pub fn tether(args: &[&str]) -> Output {
    run_with_input(Command::new(bin()).args(args), b"")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A multi-threaded runtime for library tests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The server command for the built binary.
pub fn server() -> tether::client::ServerCommand {
    let cmd = tether::client::ServerCommand::new(bin()).arg("exec-server");
    match test_marker() {
        Some(m) => cmd.env(ORPHAN_VAR, m),
        None => cmd,
    }
}
