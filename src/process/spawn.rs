//! Starting a child: everything is prepared before `fork` (no allocation after it),
//! the child sets itself up with async-signal-safe calls only, and reports a failure
//! through a close-on-exec pipe. Forks happen on one long-lived thread, because
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits; that thread does
//! not wait for the exec, so concurrent starts overlap.

use super::env_policy::Env;
use super::group::{Reaper, WaitStatus};
use super::pty;
use crate::protocol::process::TermSize;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The search path used when neither the child nor the server has `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the child needs, as C strings.
pub struct SpawnSpec {
    /// Program paths to try in order (one when `argv[0]` has a `/`).
    candidates: Vec<CString>,
    search: bool,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    /// `Some` for a terminal.
    tty: Option<TermSize>,
    pipe_stdin: bool,
    /// The sandbox to apply in the child, if any.
    pub sandbox: Option<crate::sandbox::plan::ProcessPlan>,
    /// Landlock ABI of the kernel (probed at start).
    pub landlock_abi: u32,
}

/// Why a start failed.
#[derive(Debug)]
pub enum SpawnError {
    /// An OS error (-32603 with the OS text).
    Os(io::Error),
    /// The sandbox could not be applied (-32600 `sandbox cannot be enforced: ...`).
    Sandbox(String),
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> Self {
        SpawnError::Os(e)
    }
}

/// Why a spec could not be built (NUL bytes): decoder-style text.
#[derive(Debug)]
pub struct SpecError(pub String);

impl SpawnSpec {
    pub fn new(
        argv: &[String],
        arg0: Option<&str>,
        env: &Env,
        cwd: &Path,
        tty: Option<TermSize>,
        pipe_stdin: bool,
    ) -> Result<Self, SpecError> {
        let cstr = |b: &[u8], what: &str| {
            CString::new(b).map_err(|_| SpecError(format!("{what} must not contain NUL bytes")))
        };
        let program = &argv[0];
        let (candidates, search) = if program.contains('/') {
            (vec![cstr(program.as_bytes(), "argv")?], false)
        } else {
            let path: OsString = env
                .get(OsStr::new("PATH"))
                .cloned()
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_else(|| DEFAULT_PATH.into());
            let mut c = Vec::new();
            for dir in path.as_bytes().split(|b| *b == b':') {
                let mut full = if dir.is_empty() {
                    b".".to_vec()
                } else {
                    dir.to_vec()
                };
                full.push(b'/');
                full.extend_from_slice(program.as_bytes());
                c.push(cstr(&full, "argv")?);
            }
            (c, true)
        };
        let mut args = Vec::with_capacity(argv.len());
        args.push(cstr(arg0.unwrap_or(program).as_bytes(), "arg0")?);
        for a in &argv[1..] {
            args.push(cstr(a.as_bytes(), "argv")?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(cstr(&kv, "env")?);
        }
        Ok(SpawnSpec {
            candidates,
            search,
            argv: args,
            envp,
            cwd: cstr(cwd.as_os_str().as_bytes(), "cwd")?,
            tty,
            pipe_stdin,
            sandbox: None,
            landlock_abi: 0,
        })
    }
}

/// A started child and the server's ends of its stdio.
pub struct Spawned {
    pub pid: i32,
    /// Where `process/write` goes: the stdin pipe, or a duplicate of the PTY master.
    pub stdin: Option<OwnedFd>,
    /// stdout pipe, or the PTY master.
    pub stdout: OwnedFd,
    pub stderr: Option<OwnedFd>,
    /// A duplicate of the PTY master for resize and the foreground group.
    pub pty: Option<OwnedFd>,
    pub exit: oneshot::Receiver<WaitStatus>,
}

type Job = (SpawnSpec, oneshot::Sender<Result<Forked, SpawnError>>);

/// The long-lived thread that forks.
#[derive(Clone)]
pub struct Spawner {
    tx: std::sync::mpsc::Sender<Job>,
}

impl Spawner {
    pub fn start(reaper: Arc<Reaper>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tether-spawner".into())
            .spawn(move || {
                let mut stack = vec![0u8; CHILD_STACK];
                while let Ok((spec, reply)) = rx.recv() {
                    let _ = reply.send(spawn(&spec, &reaper, &mut stack));
                }
            })
            .expect("spawn the spawner thread");
        Spawner { tx }
    }

    pub async fn spawn(&self, spec: SpawnSpec) -> Result<Spawned, SpawnError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((spec, tx))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        let forked = rx
            .await
            .map_err(|_| io::Error::other("spawner thread is gone"))??;
        forked.finish().await
    }
}

/// A forked child whose `execve` has not been confirmed yet. The spawner thread
/// hands it over right after `fork`, so it can fork the next child while this one
/// execs; the start request waits for the error pipe here instead.
pub struct Forked {
    pid: i32,
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    err_r: OwnedFd,
    exit: oneshot::Receiver<WaitStatus>,
}

impl Forked {
    /// Wait until the child has exec'd (the close-on-exec error pipe reads EOF) or
    /// reported the stage that failed.
    async fn finish(self) -> Result<Spawned, SpawnError> {
        set_nonblocking(self.err_r.as_raw_fd())?;
        // SAFETY: an OwnedFd stays valid until the AsyncFd that owns it is dropped.
        let err_r = unsafe { tokio::io::unix::AsyncFd::register(self.err_r) }
            .map_err(|e| e.into_parts().1)?;
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            let mut guard = err_r.readable().await?;
            // SAFETY: reading into a local buffer.
            let n = unsafe {
                libc::read(
                    err_r.get_ref().as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    8 - got,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        continue;
                    }
                    _ => return Err(e.into()),
                }
            }
            if n == 0 {
                break;
            }
            got += n as usize;
        }
        report_stage(&buf, got)?;
        set_nonblocking(self.stdout.as_raw_fd())?;
        if let Some(e) = &self.stderr {
            set_nonblocking(e.as_raw_fd())?;
        }
        if let Some(i) = &self.stdin {
            set_nonblocking(i.as_raw_fd())?;
        }
        Ok(Spawned {
            pid: self.pid,
            stdin: self.stdin,
            stdout: self.stdout,
            stderr: self.stderr,
            pty: self.pty,
            exit: self.exit,
        })
    }
}

/// Turn what the error pipe carried into the start error, if the child failed.
fn report_stage(buf: &[u8; 8], got: usize) -> Result<(), SpawnError> {
    if got < 8 {
        return Ok(());
    }
    // The child failed before exec and exits 127; the reaper collects it.
    let stage = u32::from_ne_bytes(buf[..4].try_into().unwrap());
    let err = io::Error::from_raw_os_error(i32::from_ne_bytes(buf[4..].try_into().unwrap()));
    let step = match stage {
        STAGE_MOUNT => "the mount layer",
        STAGE_NNP => "PR_SET_NO_NEW_PRIVS",
        STAGE_LANDLOCK => "Landlock restrict_self",
        STAGE_SECCOMP => "installing the seccomp filter",
        _ => return Err(err.into()),
    };
    Err(SpawnError::Sandbox(format!("{step} failed: {err}")))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptors, owned from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = cvt(libc::fcntl(fd, libc::F_GETFL))?;
        cvt(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    }
    Ok(())
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor.
    let n = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn dev_null() -> io::Result<OwnedFd> {
    // SAFETY: open with a static C string.
    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where the child's fds 0, 1, 2 come from, and the server's ends.
struct Stdio {
    child: [OwnedFd; 3],
    /// Extra child-side descriptor that must stay open until the fork (the PTY slave).
    ctty: Option<RawFd>,
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: Option<OwnedFd>,
    pty: Option<OwnedFd>,
}

fn make_stdio(spec: &SpawnSpec) -> io::Result<Stdio> {
    if let Some(size) = spec.tty {
        let (master, slave) = pty::open(size)?;
        let s1 = dup(&slave)?;
        let s2 = dup(&slave)?;
        let writer = dup(&master)?;
        let ctl = dup(&master)?;
        let ctty = Some(slave.as_raw_fd());
        return Ok(Stdio {
            child: [slave, s1, s2],
            ctty,
            stdin: Some(writer),
            stdout: master,
            stderr: None,
            pty: Some(ctl),
        });
    }
    let (stdin_child, stdin_parent) = if spec.pipe_stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (dev_null()?, None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(Stdio {
        child: [stdin_child, out_w, err_w],
        ctty: None,
        stdin: stdin_parent,
        stdout: out_r,
        stderr: Some(err_r),
        pty: None,
    })
}

/// What the child applies, ready before `fork`.
struct ChildSandbox<'a> {
    mount: Option<&'a crate::sandbox::mount::MountPlan>,
    landlock: Option<OwnedFd>,
    seccomp: Option<Vec<seccompiler::sock_filter>>,
}

fn prepare_sandbox<'a>(
    spec: &'a SpawnSpec,
    tty_path: Option<&Path>,
) -> Result<Option<ChildSandbox<'a>>, SpawnError> {
    let Some(plan) = &spec.sandbox else {
        return Ok(None);
    };
    let landlock = match &plan.landlock {
        Some(r) => Some(
            crate::sandbox::landlock::prepare(r, spec.landlock_abi, tty_path)
                .map_err(SpawnError::Sandbox)?
                .fd,
        ),
        None => None,
    };
    let seccomp = crate::sandbox::seccomp::prepare(plan.network).map_err(SpawnError::Sandbox)?;
    Ok(Some(ChildSandbox {
        mount: plan.mount.as_ref(),
        landlock,
        seccomp: Some(seccomp),
    }))
}

/// Stages reported through the error pipe.
const STAGE_OS: u32 = 0;
const STAGE_MOUNT: u32 = 1;
const STAGE_NNP: u32 = 2;
const STAGE_LANDLOCK: u32 = 3;
const STAGE_SECCOMP: u32 = 4;

/// Stack for a child started with [`clone_vfork`]; reused, as the spawner thread
/// starts one child at a time and each is done with it when `clone` returns.
const CHILD_STACK: usize = 256 * 1024;

extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildCtx` of `clone_vfork`, alive until the child execs.
    unsafe { child_main(&*(arg as *const ChildCtx<'_>)) }
}

/// Start the child like `posix_spawn` does: `CLONE_VM | CLONE_VFORK` shares the
/// server's memory until the child execs, so no page tables are copied and no
/// copy-on-write faults follow (a fork cost that grows with the server's size and
/// made 1000 concurrent starts take seconds). The spawner thread is suspended
/// meanwhile. Every signal is blocked around the clone, so no handler of the
/// server ever runs in the child; `child_main` resets the dispositions, then clears
/// the mask. Descriptors, cwd and signal handlers are not shared (no `CLONE_FILES`,
/// `CLONE_FS`, `CLONE_SIGHAND`), so the child's setup changes only the child.
///
/// # Safety
/// `ctx` must describe a child setup that touches no memory the server uses,
/// which `child_main` guarantees when there is no mount layer.
unsafe fn clone_vfork(ctx: &ChildCtx<'_>, stack: &mut [u8]) -> libc::pid_t {
    let mut all: libc::sigset_t = std::mem::zeroed();
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    // The stack grows down on every architecture Tether runs on; keep it aligned.
    let top = (stack.as_mut_ptr().add(stack.len()) as usize & !15) as *mut libc::c_void;
    let pid = libc::clone(
        vfork_child,
        top,
        libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
        ctx as *const ChildCtx<'_> as *mut libc::c_void,
    );
    let e = io::Error::last_os_error();
    libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    if pid < 0 {
        *libc::__errno_location() = e.raw_os_error().unwrap_or(libc::EAGAIN);
    }
    pid
}

/// Start the child on the spawner thread; the child execs on its own.
fn spawn(spec: &SpawnSpec, reaper: &Reaper, stack: &mut [u8]) -> Result<Forked, SpawnError> {
    let stdio = make_stdio(spec)?;
    let tty_path = stdio
        .ctty
        .and_then(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok());
    let sandbox = prepare_sandbox(spec, tty_path.as_deref())?;
    let fprog = sandbox
        .as_ref()
        .and_then(|s| s.seccomp.as_ref())
        .map(|prog| libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        });
    let (err_r, err_w) = pipe()?;

    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let cands: Vec<*const libc::c_char> = spec.candidates.iter().map(|a| a.as_ptr()).collect();
    let child_fds = [
        stdio.child[0].as_raw_fd(),
        stdio.child[1].as_raw_fd(),
        stdio.child[2].as_raw_fd(),
    ];
    let ctx = ChildCtx {
        // SAFETY: getpid never fails.
        parent: unsafe { libc::getpid() },
        fds: child_fds,
        ctty: stdio.ctty,
        cwd: spec.cwd.as_ptr(),
        candidates: &cands,
        search: spec.search,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        err_fd: err_w.as_raw_fd(),
        mount: sandbox.as_ref().and_then(|s| s.mount),
        landlock: sandbox
            .as_ref()
            .and_then(|s| s.landlock.as_ref())
            .map(|f| f.as_raw_fd()),
        no_new_privs: sandbox.is_some(),
        seccomp: fprog.as_ref(),
    };

    let (exit_tx, exit_rx) = oneshot::channel();
    let pid = {
        let mut reg = reaper.lock();
        // SAFETY: the child only runs `child_main`, which makes async-signal-safe calls.
        let pid = unsafe {
            if ctx.mount.is_none() {
                clone_vfork(&ctx, stack)
            } else {
                // The mount layer makes the child dumpable, which is a property of
                // the address space: it must not share the server's.
                let pid = libc::fork();
                if pid == 0 {
                    child_main(&ctx)
                }
                pid
            }
        };
        if pid < 0 {
            return Err(io::Error::last_os_error().into());
        }
        reg.insert(pid, exit_tx);
        pid
    };
    drop(stdio.child);
    drop(err_w);
    Ok(Forked {
        pid,
        stdin: stdio.stdin,
        stdout: stdio.stdout,
        stderr: stdio.stderr,
        pty: stdio.pty,
        err_r,
        exit: exit_rx,
    })
}

struct ChildCtx<'a> {
    parent: libc::pid_t,
    fds: [RawFd; 3],
    ctty: Option<RawFd>,
    cwd: *const libc::c_char,
    candidates: &'a [*const libc::c_char],
    search: bool,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    err_fd: RawFd,
    mount: Option<&'a crate::sandbox::mount::MountPlan>,
    landlock: Option<RawFd>,
    no_new_privs: bool,
    seccomp: Option<&'a libc::sock_fprog>,
}

/// The kernel's `struct sigaction` for `rt_sigaction(2)` on x86_64 and aarch64.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: libc::c_ulong,
    mask: u64,
}

/// Report `errno` to the parent and exit.
unsafe fn fail(err_fd: RawFd, errno: i32) -> ! {
    fail_at(err_fd, STAGE_OS, errno)
}

/// Report a failing stage and `errno` to the parent and exit.
unsafe fn fail_at(err_fd: RawFd, stage: u32, errno: i32) -> ! {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&stage.to_ne_bytes());
    b[4..].copy_from_slice(&errno.to_ne_bytes());
    libc::write(err_fd, b.as_ptr().cast(), 8);
    libc::_exit(127)
}

unsafe fn errno() -> i32 {
    *libc::__errno_location()
}

/// The child between `fork` and `execve`. Async-signal-safe calls only.
unsafe fn child_main(c: &ChildCtx<'_>) -> ! {
    if libc::setsid() < 0 {
        fail(c.err_fd, errno());
    }
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    if libc::getppid() != c.parent {
        libc::_exit(127);
    }
    // Default dispositions and an empty mask: the server ignores SIGPIPE, the child
    // must not. The raw syscall reaches signals 32 and 33 too, which glibc's
    // sigaction refuses (it reserves them), so no inherited disposition survives.
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    let empty: u64 = 0;
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty,
        std::ptr::null_mut::<u64>(),
        8usize,
    );

    if let Some(slave) = c.ctty {
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
            fail(c.err_fd, errno());
        }
    }
    // Move the sources out of the 0..=2 range first, then into place.
    let mut high = [0; 3];
    for (i, fd) in c.fds.iter().enumerate() {
        high[i] = libc::fcntl(*fd, libc::F_DUPFD, 10);
        if high[i] < 0 {
            fail(c.err_fd, errno());
        }
    }
    for (target, fd) in high.iter().enumerate() {
        if libc::dup2(*fd, target as RawFd) < 0 {
            fail(c.err_fd, errno());
        }
    }
    // Everything above 2 closes at exec (the error pipe is already close-on-exec).
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) < 0 {
        for fd in 3..65_536 {
            if fd != c.err_fd {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
    if let Some(plan) = c.mount {
        if let Err(e) = crate::sandbox::mount::apply(plan) {
            fail_at(c.err_fd, STAGE_MOUNT, e);
        }
    }
    if libc::chdir(c.cwd) < 0 {
        fail(c.err_fd, errno());
    }
    if c.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
        fail_at(c.err_fd, STAGE_NNP, errno());
    }
    if let Some(fd) = c.landlock {
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) < 0 {
            fail_at(c.err_fd, STAGE_LANDLOCK, errno());
        }
    }
    if let Some(prog) = c.seccomp {
        const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
        if libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0u32,
            prog as *const libc::sock_fprog,
        ) < 0
        {
            fail_at(c.err_fd, STAGE_SECCOMP, errno());
        }
    }
    let mut saw_eacces = false;
    for cand in c.candidates {
        libc::execve(*cand, c.argv, c.envp);
        let e = errno();
        if !c.search {
            fail(c.err_fd, e);
        }
        match e {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => fail(c.err_fd, e),
        }
    }
    fail(
        c.err_fd,
        if saw_eacces {
            libc::EACCES
        } else {
            libc::ENOENT
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_search_candidates_and_arg0() {
        let env: Env = [(OsString::from("PATH"), OsString::from("/a::/b"))]
            .into_iter()
            .collect();
        let s = SpawnSpec::new(
            &["ls".into(), "-l".into()],
            Some("LS"),
            &env,
            Path::new("/"),
            None,
            false,
        )
        .unwrap();
        let c: Vec<_> = s
            .candidates
            .iter()
            .map(|c| c.to_str().unwrap().to_string())
            .collect();
        assert_eq!(c, ["/a/ls", "./ls", "/b/ls"]);
        assert!(s.search);
        assert_eq!(s.argv[0].to_str().unwrap(), "LS");
        let s = SpawnSpec::new(&["./x".into()], None, &env, Path::new("/"), None, false).unwrap();
        assert!(!s.search);
        assert!(SpawnSpec::new(&["a\0".into()], None, &env, Path::new("/"), None, false).is_err());
    }
}
