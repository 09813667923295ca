//! The orphan check every test harness runs when a test ends: no process that
//! carries the test's marker variable may still be alive.
//!
//! Each harness gives every process it starts through a server (and, where the
//! server passes its own environment on, the server itself) a variable such as
//! `TETHER_TEST_MARKER=<unique per test>`. When the test's server is gone, the
//! harness calls [`check`]: it waits a little for stragglers, then SIGKILLs the
//! survivors and fails the test, listing them. While the test is already failing
//! it only reports, so the first failure stays the one shown.
//!
//! Included with `#[path]` by each harness (tests/it, tests/fs, tests/services,
//! tests/client), so it lives outside `tests/*.rs` and is no test binary itself.

#![allow(dead_code)]

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// How long a process may take to die after its server went away (the server
/// must finish its shutdown within 1 s; PDEATHSIG is immediate).
pub const GRACE: Duration = Duration::from_millis(2500);

/// One surviving process, for the failure message.
#[derive(Debug, Clone)]
pub struct Survivor {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    pub cmdline: String,
}

/// Live (not zombie) processes whose environment holds `var=marker`.
pub fn survivors(var: &str, marker: &str) -> Vec<Survivor> {
    let needle = format!("{var}={marker}");
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut it = after.split_whitespace();
        let state = it.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if state == 'Z' || state == 'X' {
            continue;
        }
        let ppid = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push(Survivor {
            pid,
            ppid,
            state,
            cmdline,
        });
    }
    out
}

/// Wait up to [`GRACE`] for every process marked `var=marker` to die. Survivors
/// are SIGKILLed and the test fails with their list (or, when the test is
/// already panicking, the list is printed).
pub fn check(var: &str, marker: &str, test: &str) {
    let deadline = Instant::now() + GRACE;
    let left = loop {
        let s = survivors(var, marker);
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
