//! Starting a child: everything is prepared before `fork` (no allocation after it),
//! the child sets itself up with async-signal-safe calls only, and reports a failure
//! through a close-on-exec pipe (the child's side is `child.rs`, what to start is
//! a [`SpawnSpec`] from `spec.rs`). Forks happen on
//! long-lived spawner threads (at most [`SPAWNER_THREADS`]), because
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits.

use super::child::{
    child_main, vfork_child, ChildCtx, STAGE_CAPS, STAGE_LANDLOCK, STAGE_MOUNT, STAGE_NNP,
    STAGE_SECCOMP,
};
use super::group::{Reaper, WaitStatus};
use super::spec::SpawnSpec;
use crate::sys::fd::{dev_null, dup, pipe, set_nonblocking};
use crate::sys::pty;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Most descriptors a child can be given (16 passed plus stdio and slack).
pub const MAX_CHILD_FDS: usize = 32;
/// Descriptor numbers a child can be given are below this.
pub const MAX_TARGET_FD: RawFd = 1024;

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

/// A started child whose descriptors were given, not created (escalated commands).
pub struct SpawnedExact {
    pub pid: i32,
    pub exit: oneshot::Receiver<WaitStatus>,
}

enum Job {
    Managed(SpawnSpec, oneshot::Sender<Result<Spawned, SpawnError>>),
    Exact(SpawnSpec, oneshot::Sender<Result<SpawnedExact, SpawnError>>),
}

/// The long-lived threads that fork, started on the first spawn (a server that
/// only answers the handshake never creates them).
#[derive(Clone)]
pub struct Spawner {
    inner: Arc<SpawnerInner>,
}

struct SpawnerInner {
    reaper: Arc<Reaper>,
    threads: std::sync::OnceLock<Vec<std::sync::mpsc::Sender<Job>>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Spawner threads: two forks can be under way at once (each thread is
/// suspended while its vfork child runs up to its exec). A host with one CPU
/// gets one thread.
const SPAWNER_THREADS: usize = 2;

impl Spawner {
    /// A spawner whose threads start on the first spawn.
    pub fn new(reaper: Arc<Reaper>) -> Self {
        Spawner {
            inner: Arc::new(SpawnerInner {
                reaper,
                threads: std::sync::OnceLock::new(),
                next: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    /// Hand `job` to a spawner thread (in turn), starting them the first time.
    fn submit(&self, job: Job) -> io::Result<()> {
        let threads = self.inner.threads.get_or_init(|| {
            let n = if crate::sys::cpus() > 1 {
                SPAWNER_THREADS
            } else {
                1
            };
            (0..n).map(|_| self.start_thread()).collect()
        });
        let i = self
            .inner
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        threads[i % threads.len()]
            .send(job)
            .map_err(|_| io::Error::other("spawner thread is gone"))
    }

    /// One spawner thread. It lives as long as the server: a child's
    /// PR_SET_PDEATHSIG follows the thread that forked it.
    fn start_thread(&self) -> std::sync::mpsc::Sender<Job> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let reaper = self.inner.reaper.clone();
        let started = std::thread::Builder::new()
            .name("tether-spawner".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Managed(spec, reply) => {
                            let _ = reply.send(spawn(spec, &reaper));
                        }
                        Job::Exact(spec, reply) => {
                            let _ = reply.send(spawn_exact(spec, &reaper));
                        }
                    }
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start a spawner thread: {e}");
        }
        tx
    }

    pub async fn spawn(&self, spec: SpawnSpec) -> Result<Spawned, SpawnError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Managed(spec, tx))?;
        rx.await
            .map_err(|_| io::Error::other("spawner thread is gone"))?
    }

    /// Start a [`SpawnSpec::exact`] command.
    pub async fn spawn_exact(&self, spec: SpawnSpec) -> Result<SpawnedExact, SpawnError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Job::Exact(spec, tx))?;
        rx.await
            .map_err(|_| io::Error::other("spawner thread is gone"))?
    }
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

/// Fork and exec a child with new pipes or a terminal (managed processes, tool
/// sessions, `codex-fs` helpers), on a spawner thread.
fn spawn(mut spec: SpawnSpec, reaper: &Reaper) -> Result<Spawned, SpawnError> {
    let stdio = make_stdio(&spec)?;
    let inherit = std::mem::take(&mut spec.inherit);
    let mut fds: Vec<(RawFd, RawFd)> = (0..3)
        .map(|i| (i as RawFd, stdio.child[i].as_raw_fd()))
        .collect();
    fds.extend(inherit.iter().map(|(t, f)| (*t, f.as_raw_fd())));
    let (pid, exit_rx) = fork_exec(&spec, &fds, stdio.ctty, reaper)?;
    drop(stdio.child);
    drop(inherit);

    set_nonblocking(stdio.stdout.as_raw_fd())?;
    if let Some(e) = &stdio.stderr {
        set_nonblocking(e.as_raw_fd())?;
    }
    if let Some(i) = &stdio.stdin {
        set_nonblocking(i.as_raw_fd())?;
    }
    Ok(Spawned {
        pid,
        stdin: stdio.stdin,
        stdout: stdio.stdout,
        stderr: stdio.stderr,
        pty: stdio.pty,
        exit: exit_rx,
    })
}

/// Fork and exec a command whose descriptors are all given.
fn spawn_exact(mut spec: SpawnSpec, reaper: &Reaper) -> Result<SpawnedExact, SpawnError> {
    debug_assert!(spec.given_stdio);
    let inherit = std::mem::take(&mut spec.inherit);
    let mut fds: Vec<(RawFd, RawFd)> = inherit.iter().map(|(t, f)| (*t, f.as_raw_fd())).collect();
    let mut nulls = Vec::new();
    for target in 0..3 {
        if !fds.iter().any(|(t, _)| *t == target) {
            let n = dev_null()?;
            fds.push((target, n.as_raw_fd()));
            nulls.push(n);
        }
    }
    let (pid, exit) = fork_exec(&spec, &fds, None, reaper)?;
    drop(inherit);
    drop(nulls);
    Ok(SpawnedExact { pid, exit })
}

thread_local! {
    /// Stack for children started with [`clone_vfork`], one per spawner thread
    /// (there are up to `SPAWNER_THREADS` of them, and only they start
    /// children). Each thread starts its children one at a time, and a child is
    /// done with the stack when `clone` returns (it has exec'd or exited by then).
    static CHILD_STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
}

/// Start the child like `posix_spawn` does: `CLONE_VM | CLONE_VFORK` shares the
/// server's memory until the child execs, so no page tables are copied and no
/// copy-on-write faults follow (the cost of `fork` grows with the server's size and
/// made 1,000 concurrent starts take seconds). The calling thread is suspended
/// meanwhile. Every signal is blocked around the clone, so no handler of the server
/// ever runs in the child; `child_main` resets the dispositions, then clears the
/// mask. Descriptors, cwd and signal handlers are not shared (no `CLONE_FILES`,
/// `CLONE_FS`, `CLONE_SIGHAND`), and credentials, seccomp, Landlock and
/// no_new_privs are per task, so the child's setup changes only the child.
///
/// # Safety
/// `ctx` must describe a child setup that writes no memory the server uses, which
/// `child_main` guarantees when there is no mount layer.
unsafe fn clone_vfork(ctx: &ChildCtx<'_>, stack: &mut [u8]) -> libc::pid_t {
    // SAFETY: the caller upholds this function's contract for `ctx`; the signal sets are locals, `stack` is an exclusive buffer whose top we pass aligned, and the parent is suspended (CLONE_VFORK) until the child execs or exits.
    unsafe {
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
        // The child shares this thread's errno; keep the clone's own error.
        let e = *libc::__errno_location();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            *libc::__errno_location() = e;
        }
        pid
    }
}

/// Fork and exec with `fds` (target number, source descriptor) placed in the
/// child; returns the pid once the child has exec'd.
fn fork_exec(
    spec: &SpawnSpec,
    fds: &[(RawFd, RawFd)],
    ctty: Option<RawFd>,
    reaper: &Reaper,
) -> Result<(i32, oneshot::Receiver<WaitStatus>), SpawnError> {
    let bad = || io::Error::from_raw_os_error(libc::EBADF);
    if fds.len() > MAX_CHILD_FDS {
        return Err(io::Error::from_raw_os_error(libc::EMFILE).into());
    }
    let mut targets: Vec<RawFd> = fds.iter().map(|(t, _)| *t).collect();
    targets.sort_unstable();
    if targets.windows(2).any(|w| w[0] == w[1])
        || targets.iter().any(|t| !(0..MAX_TARGET_FD).contains(t))
    {
        return Err(bad().into());
    }
    let tty_path = ctty.and_then(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok());
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
    let ctx = ChildCtx {
        // SAFETY: getpid never fails.
        parent: unsafe { libc::getpid() },
        fds,
        targets: &targets,
        ctty,
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
    let vforked = ctx.mount.is_none();
    let pid = {
        let token = reaper.begin_spawn();
        let pid = if !vforked {
            // The mount layer makes the child dumpable, which is a property of the
            // address space: it needs a copy, not the server's.
            // SAFETY: the child only runs `child_main`, which makes async-signal-safe calls.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: in the child; never returns.
                unsafe { child_main(&ctx) }
            }
            pid
        } else {
            CHILD_STACK.with(|stack| {
                let mut stack = stack.borrow_mut();
                // SAFETY: without a mount layer `child_main` touches no memory the
                // server uses; this spawner thread is suspended until the child execs.
                unsafe { clone_vfork(&ctx, &mut stack) }
            })
        };
        if pid < 0 {
            let e = io::Error::last_os_error();
            reaper.register(token, None, exit_tx);
            return Err(e.into());
        }
        reaper.register(token, Some(pid), exit_tx);
        pid
    };
    drop(err_w);

    let mut buf = [0u8; 8];
    let mut got = 0;
    if vforked {
        // This thread was suspended until the child exec'd or exited, so the
        // outcome is known now: a failing child wrote its 8 bytes before it
        // exited. Waiting for end of file instead would wait for the child's exec
        // to close every close-on-exec descriptor it inherited (thousands with
        // many processes running), one spawn after another.
        set_nonblocking(err_r.as_raw_fd())?;
        // SAFETY: reading into a local buffer; the child's 8-byte write is atomic.
        let n = unsafe { libc::read(err_r.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        got = if n == 8 { 8 } else { 0 };
    }
    while !vforked && got < 8 {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(err_r.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 8 - got) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    if got == 8 {
        // The child failed before exec and exits 127; the reaper collects it.
        let stage = u32::from_ne_bytes(buf[..4].try_into().unwrap());
        let err = io::Error::from_raw_os_error(i32::from_ne_bytes(buf[4..].try_into().unwrap()));
        let step = match stage {
            STAGE_MOUNT => "the mount layer",
            STAGE_NNP => "PR_SET_NO_NEW_PRIVS",
            STAGE_LANDLOCK => "Landlock restrict_self",
            STAGE_SECCOMP => "installing the seccomp filter",
            STAGE_CAPS => "dropping capabilities",
            _ => return Err(err.into()),
        };
        return Err(SpawnError::Sandbox(format!("{step} failed: {err}")));
    }
    Ok((pid, exit_rx))
}
