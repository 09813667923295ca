//! /proc scans: the processes a test started, found by a marker variable in
//! their environment (`/proc/PID/environ`), whoever their parent is now.

use std::fs;
use std::thread;
use std::time::Duration;

/// The marker variable of every process a test starts through a server (and
/// of the server itself where a harness marks it, see
/// [`Builder::mark_server`](super::server::Builder::mark_server)).
pub const MARKER_VAR: &str = "TETHER_TEST_MARKER";

#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub state: char,
    pub cmdline: String,
}

pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let mut it = after.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgid = it.next()?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        state,
        cmdline,
    })
}

/// Live (not zombie) processes whose environment holds `var=value`.
pub fn with_env(var: &str, value: &str) -> Vec<ProcInfo> {
    let needle = format!("{var}={value}");
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
        if let Some(info) = proc_info(pid) {
            if info.state != 'Z' && info.state != 'X' {
                out.push(info);
            }
        }
    }
    out
}

/// Live processes carrying `TETHER_TEST_MARKER=<marker>`.
pub fn marked_processes(marker: &str) -> Vec<ProcInfo> {
    with_env(MARKER_VAR, marker)
}

/// Pids of live (non-zombie) processes whose environment contains
/// `TETHER_TEST_MARKER=<marker>`.
pub fn alive_with_marker(marker: &str) -> Vec<i32> {
    marked_processes(marker)
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

/// SIGKILLs every live process carrying the marker (test cleanup).
pub fn kill_marked(marker: &str) {
    for _ in 0..5 {
        let pids = alive_with_marker(marker);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // SAFETY: kill(2) on a process this test started.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a zombie (or gone: no readable stat).
pub fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid as i32, 0) == 0 };
    exists && !is_zombie(pid)
}

/// Whether `pid` has a handler installed for `sig` (its `SigCgt` mask in
/// /proc/PID/status).
pub fn catches_signal(pid: i32, sig: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// The children of `pid` (of all its threads).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(list) = fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}
