//! [`ChildGuard`]: owns a server process and stops it, with everything in its
//! process group, when dropped.

use super::command::{self, ServerCommand};
use std::io;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

/// The default time between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);

/// Owns a server process that runs as the leader of its own process group.
///
/// Dropping it (normally, from async code, or while a panic unwinds) closes the
/// server's stdin if the guard still holds it, sends SIGTERM to the server's
/// process group, waits up to [`grace`](ChildGuard::set_grace) for the server to
/// exit, sends SIGKILL to the group, and reaps the server. A Tether server kills
/// everything it started when it gets SIGTERM or end of input; the guard's SIGKILL
/// covers servers that do not. Drop blocks the calling thread for at most the
/// grace period (the server usually exits within milliseconds).
///
/// The server also gets `PR_SET_PDEATHSIG = SIGTERM`, and its stdin reaches end of
/// input when this process dies, so a client that is SIGKILLed (no Drop runs)
/// still stops its server.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Start `cmd` with stdin, stdout and stderr piped, in a new process group.
    pub fn spawn(cmd: &ServerCommand) -> io::Result<ChildGuard> {
        let child = command::spawn(cmd.to_command())?;
        Ok(ChildGuard {
            child,
            grace: DEFAULT_GRACE,
            status: None,
        })
    }

    /// The server's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Take the server's stdin; the guard no longer closes it on drop.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The server's exit status if it has exited (reaps it).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Stop the server now, as Drop does, and return its exit status.
    pub fn shutdown(mut self) -> io::Result<ExitStatus> {
        self.terminate()
    }

    /// Stop the server now, as Drop does (a second call returns the same status).
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        if let Some(st) = self.status {
            return Ok(st);
        }
        drop(self.child.stdin.take());
        let pgid = self.child.id() as libc::pid_t;
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while !exited_unreaped(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // The leader is a zombie at worst (not reaped yet), so the group id cannot
        // have been reused: anything still in the group is the server's.
        signal_group(pgid, libc::SIGKILL);
        let st = self.child.wait()?;
        self.status = Some(st);
        Ok(st)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            tracing::warn!("cannot reap the server (pid {}): {e}", self.child.id());
        }
    }
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is
    // touched. ESRCH (group already empty) is expected and ignored.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether `pid` (our child) has exited, without reaping it.
fn exited_unreaped(pid: libc::pid_t) -> bool {
    // SAFETY: waitid writes only into `info`, which we own and zero-initialise.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // An error (ECHILD) means there is nothing left to wait for.
        r != 0 || info.si_pid() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_kills_a_server_that_ignores_sigterm() {
        let cmd = ServerCommand::new("sh").args(["-c", "trap '' TERM; while :; do sleep 1; done"]);
        let mut g = ChildGuard::spawn(&cmd).unwrap();
        g.set_grace(Duration::from_millis(200));
        // Let the shell install its trap.
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let st = g.shutdown().unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn drop_stops_a_server_at_sigterm_without_waiting_the_grace() {
        let mut g = ChildGuard::spawn(&ServerCommand::new("sleep").arg("100")).unwrap();
        g.set_grace(Duration::from_secs(30));
        let t = Instant::now();
        drop(g);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
