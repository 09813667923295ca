//! Owning the process tree: the reaper of every child (managed ones and orphans that
//! come back to the server as subreaper), group signals, and the final sweep.

use super::lifeguard;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Raw wait status of a reaped child.
pub type WaitStatus = i32;

/// Reaps children. A spawn calls [`Reaper::begin_spawn`] before it forks and
/// [`Reaper::register`] after: a child that exits (and is reaped) in between has
/// its status kept until it is registered, so no exit can be missed, and spawns
/// on several threads do not wait for each other.
#[derive(Default)]
pub struct Reaper {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<i32, oneshot::Sender<WaitStatus>>,
    /// Spawns between `begin_spawn` and `register`.
    spawning: usize,
    /// Statuses of unregistered children reaped while a spawn was in progress,
    /// with the reap's number (pids are reused: a status reaped before a spawn
    /// began is never its child's).
    unclaimed: HashMap<i32, (u64, WaitStatus)>,
    reaps: u64,
}

/// What [`Reaper::begin_spawn`] hands to [`Reaper::register`]: the reap count
/// when the spawn began, and whether the lifetime guard must be told the new
/// group (decided before the fork, see [`lifeguard::must_track`]).
pub struct SpawnToken(u64, bool);

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fork is about to happen.
    pub fn begin_spawn(&self) -> SpawnToken {
        let track = lifeguard::must_track();
        let mut g = self.lock();
        g.spawning += 1;
        SpawnToken(g.reaps, track)
    }

    /// The fork that [`begin_spawn`](Self::begin_spawn) announced is done: `pid`
    /// (none if it failed) gets its exit status on `tx`.
    pub fn register(&self, token: SpawnToken, pid: Option<i32>, tx: oneshot::Sender<WaitStatus>) {
        if let (Some(pid), true) = (pid, token.1) {
            // Every spawn leads a group (or session) of its own.
            lifeguard::track(pid);
        }
        let mut g = self.lock();
        if let Some(pid) = pid {
            match g.unclaimed.remove(&pid) {
                Some((at, status)) if at > token.0 => {
                    let _ = tx.send(status);
                }
                _ => {
                    g.waiting.insert(pid, tx);
                }
            }
        }
        g.spawning -= 1;
        if g.spawning == 0 {
            // Whatever is left was an orphaned descendant's.
            g.unclaimed.clear();
        }
    }

    /// Reap every child that has exited; deliver statuses of registered ones.
    pub fn reap(&self) {
        let mut reg = self.lock();
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid with an out-pointer to a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            reg.reaps += 1;
            match reg.waiting.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(status);
                }
                None if reg.spawning > 0 => {
                    let at = reg.reaps;
                    reg.unclaimed.insert(pid, (at, status));
                }
                None => tracing::debug!(pid, "reaped an orphaned descendant"),
            }
        }
    }
}

/// `(exit code, signal name)` of a wait status: 128+N for a death by signal N.
pub fn exit_code(status: WaitStatus) -> (i32, Option<&'static str>) {
    if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, signal_name(sig))
    } else {
        (128, None)
    }
}

pub fn signal_name(sig: i32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(sig)
        .ok()
        .map(|s| s.as_str())
}

/// Send `sig` to process group `pgid`. A group that no longer exists is not an error.
pub fn kill_group(pgid: i32, sig: i32) -> std::io::Result<()> {
    if pgid <= 1 {
        return Ok(());
    }
    // SAFETY: kill(2) with a negative pid signals a process group.
    if unsafe { libc::kill(-pgid, sig) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Pids whose parent is `parent`, from /proc.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for ent in dir.flatten() {
        let name = ent.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command, which is in parentheses and may contain spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let _state = fields.next();
        if fields.next().and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Kill every child of this process (orphans that came back to the subreaper
/// included) and reap until none is left or `budget` runs out. The lifetime
/// guard is spared: it cleans up after the server has exited.
pub fn sweep_children(budget: Duration) {
    // SAFETY: getpid never fails.
    let me = unsafe { libc::getpid() };
    let guard = lifeguard::guard_pid();
    let deadline = Instant::now() + budget;
    loop {
        let children = children_of(me);
        if children.iter().all(|&p| p == guard) {
            // Reap what has died; the guard is all that is left.
            // SAFETY: as in `Reaper::reap`.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
            return;
        }
        for pid in children.into_iter().filter(|&p| p != guard) {
            tracing::debug!(pid, "shutdown: killing child");
            // SAFETY: signalling a child of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        loop {
            let mut status = 0;
            // SAFETY: as in `Reaper::reap`.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                continue;
            }
            if pid < 0 {
                // ECHILD: nothing is left.
                return;
            }
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!("shutdown: children still alive after the sweep budget");
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_statuses() {
        assert_eq!(exit_code(3 << 8), (3, None));
        assert_eq!(exit_code(libc::SIGKILL), (137, Some("SIGKILL")));
        assert_eq!(exit_code(libc::SIGINT), (130, Some("SIGINT")));
    }
}
