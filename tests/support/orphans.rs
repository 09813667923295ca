//! The orphan check every test harness runs when a test ends: no process that
//! carries the test's marker variable may still be alive.
//!
//! Each harness gives every process it starts through a server (and, where the
//! server passes its own environment on, the server itself) a variable such as
//! `TETHER_TEST_MARKER=<unique per test>`. When the test's server is gone, the
//! harness calls [`check`]: it waits a little for stragglers, then SIGKILLs the
//! survivors and fails the test, listing them. While the test is already failing
//! it only reports, so the first failure stays the one shown.

use std::thread;
use std::time::{Duration, Instant};

use super::procs;

/// How long a process may take to die after its server went away (the server
/// must finish its shutdown within 1 s; PDEATHSIG is immediate).
pub const GRACE: Duration = Duration::from_millis(2500);

/// Wait up to [`GRACE`] for every process marked `var=marker` to die. Survivors
/// are SIGKILLed and the test fails with their list (or, when the test is
/// already panicking, the list is printed).
pub fn check(var: &str, marker: &str, test: &str) {
    let deadline = Instant::now() + GRACE;
    let left = loop {
        let s = procs::with_env(var, marker);
        if s.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            break s;
        }
        thread::sleep(Duration::from_millis(20));
    };
    for s in &left {
        // SAFETY: kill(2) on a process this test started (it carries its marker).
        unsafe {
            libc::kill(s.pid, libc::SIGKILL);
        }
    }
    let list: Vec<String> = left
        .iter()
        .map(|s| {
            format!(
                "  pid {} ppid {} state {} `{}`",
                s.pid, s.ppid, s.state, s.cmdline
            )
        })
        .collect();
    let msg = format!(
        "orphan check: {} process(es) with {var}={marker} outlived {test} by {GRACE:?} (now killed):\n{}",
        left.len(),
        list.join("\n")
    );
    if thread::panicking() {
        eprintln!("{msg}");
    } else {
        panic!("{msg}");
    }
}
