//! The lifetime guard: nothing the server started outlives it, not even when the
//! server itself is SIGKILLed (docs/protocol.md "Lifetime").
//!
//! Over 500 lines, on purpose: the guard is one forked process with two modes
//! (cgroup v2 and process group) whose setup, protocol with the server and kill
//! sweep must be read together to see that nothing escapes.
//!
//! A clean shutdown kills and reaps everything itself (`group::sweep_children`).
//! A SIGKILL gives the server no chance, and `PR_SET_PDEATHSIG` reaches only
//! direct children: a `setsid` daemon or a double fork reparents to init. So at
//! start the server leaves behind a small **guard process** that outlives it:
//!
//! - The guard is forked right after the handshake's answer, while the server
//!   is still single-threaded; it makes its own session, ignores the shutdown
//!   signals, keeps only two pipes, and has `/dev/null` as stdin, stdout and
//!   stderr (a client reading the server's output until EOF never waits for it).
//! - **cgroup mode** (cgroup v2 writable by the server's user): the guard makes
//!   `tether.<server pid>` below the server's own cgroup and moves the server
//!   into it, so every process the server starts afterwards, and every
//!   descendant of those, is in it (moving a process takes an RCU grace period,
//!   5–15 ms here, which is why the guard does it and the server never waits).
//!   `TETHER_CGROUP=off` turns this mode off.
//! - **process-group mode** (always on until the server is known to be in its
//!   cgroup): for every spawn the server writes `+<pgid>` on the lifeline pipe;
//!   the guard keeps the group with its leader's start time (so a reused pid is
//!   never mistaken for ours) and forgets groups that have become empty.
//! - When the lifeline pipe reaches EOF (the server is gone, however it ended),
//!   the guard writes `1` to the cgroup's `cgroup.kill`, SIGKILLs every group it
//!   holds, waits for the cgroup to empty, removes it and exits.
//!
//! What process-group mode cannot catch: a process that left its group (setsid,
//! setpgid) and whose server was SIGKILLed. `environmentInfo.tether.lifetime`
//! says which mode is in force and why.
//!
//! Why one file of about 590 lines: the server's side (`start`, `mode`,
//! `track`) and the guard process's (`guard_main`, its cgroup and groups) share
//! the two pipes' message format and are read together; about 70 lines are
//! these notes and the tests.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Set to `off` (or `0`, `false`) to keep the guard out of cgroups.
pub const CGROUP_ENV: &str = "TETHER_CGROUP";

/// The guard's pid, so the shutdown sweep leaves it alone (0: none).
static GUARD_PID: AtomicI32 = AtomicI32::new(0);

/// What the server knows of the guard.
static LINK: OnceLock<Link> = OnceLock::new();

const STATE_UNKNOWN: u8 = 0;
const STATE_CGROUP: u8 = 1;
const STATE_GROUPS: u8 = 2;

/// Report codes the guard writes on its report pipe.
const R_CGROUP_MADE: u8 = b'c';
const R_MOVED: u8 = b'C';
const R_GROUPS: u8 = b'g';
const R_MOVE_FAILED: u8 = b'F';

/// How the server's descendants are held, for `environmentInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A cgroup of the server's own, killed whole when the server is gone.
    Cgroup { path: String },
    /// The process groups of the server's spawns only.
    ProcessGroups { reason: String },
}

/// The server's end of the guard: the lifeline (write end, non-blocking) and
/// the report pipe (read end, non-blocking), with what was read from it.
struct Link {
    lifeline: RawFd,
    report: RawFd,
    state: AtomicU8,
    first: Mutex<Report>,
    /// The move into the cgroup was waited for once in vain: do not wait again.
    gave_up: std::sync::atomic::AtomicBool,
}

/// How long the first spawns wait for the guard to move the server into its
/// cgroup (it takes one RCU grace period; 5-15 ms measured).
const MOVE_WAIT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Report {
    buf: Vec<u8>,
    mode: Option<Mode>,
}

/// Fork the guard. Call once, while the server is still single-threaded (after
/// the handshake's answer, so that the fork is not part of it).
pub fn start() {
    let mut lifeline = [-1; 2];
    let mut report = [-1; 2];
    // SAFETY: pipe2 fills the arrays; fork in a single-threaded process, the
    // child runs the guard and never returns; the parent closes the child's ends.
    unsafe {
        if libc::pipe2(lifeline.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            return;
        }
        if libc::pipe2(report.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            libc::close(lifeline[0]);
            libc::close(lifeline[1]);
            return;
        }
        let server = libc::getpid();
        let pid = libc::fork();
        if pid == 0 {
            let code = guard_main(server, lifeline[0], report[1]);
            libc::_exit(code);
        }
        libc::close(lifeline[0]);
        libc::close(report[1]);
        if pid < 0 {
            tracing::warn!(
                "lifetime guard: fork failed; only direct children die with a killed server"
            );
            libc::close(lifeline[1]);
            libc::close(report[0]);
            return;
        }
        GUARD_PID.store(pid, Ordering::SeqCst);
        for fd in [lifeline[1], report[0]] {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    let _ = LINK.set(Link {
        lifeline: lifeline[1],
        report: report[0],
        state: AtomicU8::new(STATE_UNKNOWN),
        first: Mutex::new(Report::default()),
        gave_up: std::sync::atomic::AtomicBool::new(false),
    });
}

impl Link {
    /// Read what the guard has reported so far (non-blocking).
    fn pump(&self, r: &mut Report) {
        let mut chunk = [0u8; 512];
        loop {
            // SAFETY: non-blocking read into a local buffer from our own pipe.
            let n = unsafe { libc::read(self.report, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                break;
            }
            r.buf.extend_from_slice(&chunk[..n as usize]);
        }
        if r.mode.is_none() {
            if let Some((code, text, used)) = parse_first(&r.buf) {
                r.mode = Some(match code {
                    R_CGROUP_MADE => Mode::Cgroup { path: text },
                    _ => {
                        self.state.store(STATE_GROUPS, Ordering::SeqCst);
                        Mode::ProcessGroups { reason: text }
                    }
                });
                r.buf.drain(..used);
            }
        }
        if r.mode.is_some() {
            for c in std::mem::take(&mut r.buf) {
                match c {
                    R_MOVED => self.state.store(STATE_CGROUP, Ordering::SeqCst),
                    R_MOVE_FAILED => {
                        tracing::warn!(
                            "lifetime guard: moving the server into its cgroup failed; \
                             holding process groups only"
                        );
                        r.mode = Some(Mode::ProcessGroups {
                            reason: "moving the server into its cgroup failed".into(),
                        });
                        self.state.store(STATE_GROUPS, Ordering::SeqCst)
                    }
                    _ => {}
                }
            }
        }
    }

    /// Read reports until `done` holds (true) or `wait` has passed (false).
    fn wait(&self, wait: Duration, done: impl Fn(&Report) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            {
                let mut r = self.lock();
                self.pump(&mut r);
                if done(&r) {
                    return true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: self.report,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one descriptor of ours.
            let r =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, 20) as libc::c_int) };
            if r == 1 && pfd.revents & libc::POLLIN == 0 {
                // The guard closed its end: nothing more will come.
                let mut r = self.lock();
                self.pump(&mut r);
                return done(&r);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Report> {
        self.first.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The guard's mode, waiting at most `wait` for its first report (none: no
/// guard, or it did not answer in time).
pub fn mode(wait: Duration) -> Option<Mode> {
    let link = LINK.get()?;
    link.wait(wait, |r| r.mode.is_some());
    link.lock().mode.clone()
}

/// `(code, text, bytes used)` of the guard's first report `code (u8) len (u16)
/// text`, once it is whole.
fn parse_first(buf: &[u8]) -> Option<(u8, String, usize)> {
    if buf.len() < 3 {
        return None;
    }
    let len = u16::from_ne_bytes([buf[1], buf[2]]) as usize;
    let text = buf.get(3..3 + len)?;
    Some((buf[0], String::from_utf8_lossy(text).into_owned(), 3 + len))
}

/// Whether a spawn about to fork must tell the guard its group: yes until the
/// guard reported that the server is inside its cgroup. Call before the fork (a
/// child forked after that report is in the cgroup).
pub fn must_track() -> bool {
    let Some(link) = LINK.get() else {
        return false;
    };
    match link.state.load(Ordering::SeqCst) {
        STATE_CGROUP => false,
        STATE_GROUPS => true,
        _ => {
            // The move into the cgroup is under way (a few ms after start):
            // wait for it once, so that even the first spawns are inside.
            if !link.gave_up.load(Ordering::SeqCst) {
                let moved = link.wait(MOVE_WAIT, |_| {
                    link.state.load(Ordering::SeqCst) != STATE_UNKNOWN
                });
                if !moved {
                    link.gave_up.store(true, Ordering::SeqCst);
                }
            }
            link.state.load(Ordering::SeqCst) != STATE_CGROUP
        }
    }
}

/// A spawn made process group `pgid` (its leader's pid): hand it to the guard.
pub fn track(pgid: i32) {
    let Some(link) = LINK.get() else {
        return;
    };
    let mut rec = [0u8; 5];
    rec[0] = b'+';
    rec[1..].copy_from_slice(&pgid.to_ne_bytes());
    // SAFETY: a 5-byte write (atomic: below PIPE_BUF) on our own non-blocking pipe.
    let n = unsafe { libc::write(link.lifeline, rec.as_ptr().cast(), rec.len()) };
    if n != rec.len() as isize {
        tracing::warn!(pgid, "lifetime guard: could not hand over a process group");
    }
}

/// The guard's pid (0 when there is none): the shutdown sweep spares it.
pub fn guard_pid() -> i32 {
    GUARD_PID.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// The guard process.

/// The guard's whole life. Returns its exit code.
fn guard_main(server: libc::pid_t, lifeline: RawFd, report: RawFd) -> i32 {
    // SAFETY: plain calls on this new, single-threaded process.
    unsafe {
        libc::setsid();
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_NAME, c"tether-guard".as_ptr(), 0, 0, 0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        // Keep only the two pipes: move them to 3 and 4, close everything above.
        let l = libc::fcntl(lifeline, libc::F_DUPFD_CLOEXEC, 100);
        let r = libc::fcntl(report, libc::F_DUPFD_CLOEXEC, 100);
        if l < 0 || r < 0 {
            return 1;
        }
        libc::dup3(l, 3, libc::O_CLOEXEC);
        libc::dup3(r, 4, libc::O_CLOEXEC);
        libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
    }
    let (lifeline, report) = (3, 4);
    let mut out = Reporter { fd: report };
    let cgroup = match cgroup_disabled() {
        true => Err(format!("{CGROUP_ENV} is set to off")),
        false => make_cgroup(server),
    };
    let dir = match cgroup {
        Ok((dir, rel)) => {
            out.first(R_CGROUP_MADE, &rel);
            match std::fs::write(dir.join("cgroup.procs"), server.to_string()) {
                Ok(()) => out.byte(R_MOVED),
                Err(_) => out.byte(R_MOVE_FAILED),
            }
            Some(dir)
        }
        Err(reason) => {
            out.first(R_GROUPS, &reason);
            None
        }
    };
    let mut groups = Groups::default();
    wait_for_eof(lifeline, &mut groups);
    // The server is gone: kill what it left.
    if let Some(dir) = &dir {
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    }
    groups.kill_all();
    if let Some(dir) = &dir {
        remove_when_empty(dir);
    }
    0
}

struct Reporter {
    fd: RawFd,
}

impl Reporter {
    fn first(&mut self, code: u8, text: &str) {
        let text = &text.as_bytes()[..text.len().min(4096)];
        let mut msg = Vec::with_capacity(3 + text.len());
        msg.push(code);
        msg.extend_from_slice(&(text.len() as u16).to_ne_bytes());
        msg.extend_from_slice(text);
        self.write(&msg);
    }

    fn byte(&mut self, b: u8) {
        self.write(&[b]);
    }

    fn write(&mut self, b: &[u8]) {
        // SAFETY: a write of a local buffer to our own pipe; errors are ignored
        // (a server that is gone will find out nothing more).
        unsafe { libc::write(self.fd, b.as_ptr().cast(), b.len()) };
    }
}

fn cgroup_disabled() -> bool {
    matches!(
        std::env::var(CGROUP_ENV).as_deref().map(str::trim),
        Ok("off" | "0" | "false" | "no")
    )
}

/// Make `tether.<server>` below the server's cgroup v2 cgroup: (directory,
/// path relative to the cgroup root), or why not.
fn make_cgroup(server: libc::pid_t) -> Result<(PathBuf, String), String> {
    let own = std::fs::read_to_string(format!("/proc/{server}/cgroup"))
        .map_err(|e| format!("cannot read /proc/{server}/cgroup: {e}"))?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| "no cgroup v2 hierarchy (cgroup v1 only)".to_string())?
        .trim()
        .to_string();
    if rel.contains(" (deleted)") {
        return Err("the server's cgroup was deleted".into());
    }
    let mnt = cgroup2_mount().ok_or_else(|| "cgroup v2 is not mounted".to_string())?;
    let parent = mnt.join(rel.trim_start_matches('/'));
    let name = format!("tether.{server}");
    let dir = parent.join(&name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A stale one of an earlier server with the same pid.
            std::fs::remove_dir(&dir)
                .and_then(|_| std::fs::create_dir(&dir))
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        }
        Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
    }
    // Moving in needs write access to both cgroup.procs files.
    let probe = |p: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p.join("cgroup.procs"))
            .map(|_| ())
            .map_err(|e| format!("cannot write {}: {e}", p.join("cgroup.procs").display()))
    };
    if let Err(e) = probe(&parent).and_then(|_| probe(&dir)) {
        let _ = std::fs::remove_dir(&dir);
        return Err(e);
    }
    let rel = format!("{}/{name}", rel.trim_end_matches('/'));
    Ok((dir, rel))
}

/// Where cgroup v2 is mounted (the unified hierarchy), from mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Only a mount of the hierarchy's root: field 4 is the root within it.
        let mut f = pre.split_whitespace();
        let root = f.nth(3)?;
        let point = f.next()?;
        (root == "/").then(|| PathBuf::from(unescape_mount(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Process groups handed over by the server: pgid → its leader's start time
/// (0 if the leader was already gone when the guard looked).
#[derive(Default)]
struct Groups {
    held: HashMap<i32, u64>,
    added: usize,
}

impl Groups {
    fn add(&mut self, pgid: i32) {
        if pgid <= 1 {
            return;
        }
        self.held.insert(pgid, start_time(pgid).unwrap_or(0));
        self.added += 1;
        if self.added % 1024 == 0 {
            // An empty group's id can be reused by anyone: forget it.
            self.held.retain(|&g, _| group_exists(g));
        }
    }

    fn kill_all(&self) {
        for (&pgid, &started) in &self.held {
            // A live process with this pid that is not the leader we saw is a
            // new owner of the number: leave its group alone.
            if let Some(now) = start_time(pgid) {
                if started != 0 && now != started {
                    continue;
                }
            }
            // SAFETY: kill(2) with a negative pid signals a group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(-pgid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Field 22 of /proc/PID/stat.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Read `+pgid` records until EOF (or an error other than EINTR).
fn wait_for_eof(fd: RawFd, groups: &mut Groups) {
    let mut buf = [0u8; 4096];
    let mut have = 0usize;
    loop {
        // SAFETY: read into the unused tail of a local buffer.
        let n = unsafe { libc::read(fd, buf[have..].as_mut_ptr().cast(), buf.len() - have) };
        if n < 0 {
            // SAFETY: errno of this thread.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        have += n as usize;
        let mut at = 0;
        while have - at >= 5 {
            if buf[at] == b'+' {
                let g = i32::from_ne_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]);
                groups.add(g);
            }
            at += 5;
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
}

/// Wait (at most 2 s) until nothing is left in the cgroup, then remove it.
fn remove_when_empty(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let populated = std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false);
        if !populated || Instant::now() >= deadline {
            break;
        }
        // Without cgroup.kill (kernels before 5.14), kill what is listed.
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: SIGKILL to a member of the server's cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_dir(dir);
    let _ = std::io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/a\\"), r"/a\\");
    }

    #[test]
    fn first_report_round_trip() {
        let mut fds = [0; 2];
        // SAFETY: a pipe for this test.
        unsafe { assert_eq!(libc::pipe(fds.as_mut_ptr()), 0) };
        let mut r = Reporter { fd: fds[1] };
        r.first(R_GROUPS, "no cgroup v2 hierarchy");
        r.byte(R_MOVED);
        let mut buf = [0u8; 64];
        // SAFETY: reading and closing the test's pipe.
        let n = unsafe {
            let n = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
            libc::close(fds[0]);
            libc::close(fds[1]);
            n as usize
        };
        let (code, text, used) = parse_first(&buf[..n]).unwrap();
        assert_eq!(code, R_GROUPS);
        assert_eq!(text, "no cgroup v2 hierarchy");
        assert_eq!(&buf[used..n], [R_MOVED]);
        assert!(parse_first(&buf[..used - 1]).is_none());
    }
}
