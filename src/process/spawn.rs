//! Starting a child: everything is prepared before `fork` (no allocation after it),
//! the child sets itself up with async-signal-safe calls only, and reports a failure
//! through a close-on-exec pipe. Forks happen on one long-lived thread, because
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits.

use super::env_policy::Env;
use super::group::{Reaper, WaitStatus};
use crate::protocol::process::TermSize;
use crate::sys::fd::{dev_null, dup, pipe, set_nonblocking};
use crate::sys::pty;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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
    /// Extra descriptors the child gets at the given numbers (the escalation
    /// socket at 3), or with [`SpawnSpec::exact`] all of its descriptors.
    pub inherit: Vec<(RawFd, OwnedFd)>,
    /// The child's stdio comes from `inherit` (fds 0–2 it does not name are
    /// `/dev/null`) instead of new pipes or a terminal.
    given_stdio: bool,
}

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
            inherit: Vec::new(),
            given_stdio: false,
        })
    }

    /// A command run exactly as given: `program` (no search), `argv` with its
    /// `argv[0]`, and the descriptors in `fds` at their numbers; nothing else is
    /// inherited and fds 0–2 not in `fds` are `/dev/null` (escalated commands).
    pub fn exact(
        program: &Path,
        argv: &[String],
        env: &Env,
        cwd: &Path,
        fds: Vec<(RawFd, OwnedFd)>,
    ) -> Result<Self, SpecError> {
        let prog = program.to_string_lossy().into_owned();
        let mut full = vec![prog.clone()];
        full.extend(argv.iter().skip(1).cloned());
        let arg0 = argv.first().cloned().unwrap_or(prog);
        let mut s = SpawnSpec::new(&full, Some(&arg0), env, cwd, None, false)?;
        s.candidates = vec![CString::new(program.as_os_str().as_bytes())
            .map_err(|_| SpecError("file must not contain NUL bytes".into()))?];
        s.search = false;
        s.inherit = fds;
        s.given_stdio = true;
        Ok(s)
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

/// The long-lived thread that forks, started on the first spawn (a server that
/// only answers the handshake never creates it).
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
/// suspended while its vfork child runs up to its exec).
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

/// Stages reported through the error pipe.
const STAGE_OS: u32 = 0;
const STAGE_MOUNT: u32 = 1;
const STAGE_NNP: u32 = 2;
const STAGE_LANDLOCK: u32 = 3;
const STAGE_SECCOMP: u32 = 4;
const STAGE_CAPS: u32 = 5;

/// Fork and exec a managed process on the spawner thread: new pipes or a terminal.
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
    /// Stack for children started with [`clone_vfork`]; only the spawner thread
    /// starts children, one at a time, and each is done with it when `clone`
    /// returns (the child has exec'd or exited by then).
    static CHILD_STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 256 * 1024]);
}

extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildCtx` of `clone_vfork`, alive until the child execs.
    unsafe { child_main(&*(arg as *const ChildCtx<'_>)) }
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
                // server uses; the spawner thread is suspended until the child execs.
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

struct ChildCtx<'a> {
    parent: libc::pid_t,
    /// (target number, source descriptor), at most [`MAX_CHILD_FDS`].
    fds: &'a [(RawFd, RawFd)],
    /// The target numbers, sorted, unique, below [`MAX_TARGET_FD`].
    targets: &'a [RawFd],
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
    let mut err_fd = c.err_fd;
    if libc::setsid() < 0 {
        fail(err_fd, errno());
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
            fail(err_fd, errno());
        }
    }
    // Descriptors still needed after the moves go above every target first.
    let max_target = c.targets.last().copied().unwrap_or(2);
    let lowest = (max_target + 1).max(10);
    if err_fd < lowest {
        let n = libc::fcntl(err_fd, libc::F_DUPFD_CLOEXEC, lowest);
        if n < 0 {
            fail(err_fd, errno());
        }
        err_fd = n;
    }
    let mut landlock = c.landlock;
    if let Some(fd) = landlock.filter(|fd| *fd < lowest) {
        let n = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest);
        if n < 0 {
            fail(err_fd, errno());
        }
        landlock = Some(n);
    }
    // Move the sources above every target, then into place.
    let mut high = [0; MAX_CHILD_FDS];
    for (i, (_, fd)) in c.fds.iter().enumerate() {
        high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, lowest);
        if high[i] < 0 {
            fail(err_fd, errno());
        }
    }
    for (i, (target, _)) in c.fds.iter().enumerate() {
        if libc::dup2(high[i], *target) < 0 {
            fail(err_fd, errno());
        }
    }
    // Everything else above 2 closes at exec (the error pipe is already
    // close-on-exec; dup2 cleared the flag on the targets).
    let mut from: RawFd = 3;
    for t in c.targets.iter().copied().chain(std::iter::once(RawFd::MAX)) {
        if t < from {
            continue;
        }
        if t > from {
            cloexec_range(from, t - 1, err_fd, c.targets);
        }
        if t == RawFd::MAX {
            break;
        }
        from = t + 1;
    }
    if let Some(plan) = c.mount {
        if let Err(e) = crate::sandbox::mount::apply(plan, landlock) {
            fail_at(err_fd, STAGE_MOUNT, e);
        }
    }
    if libc::chdir(c.cwd) < 0 {
        fail(err_fd, errno());
    }
    crate::escalate::limits::restore_in_child();
    if c.no_new_privs {
        if let Err(e) = crate::sandbox::caps::drop_dangerous() {
            fail_at(err_fd, STAGE_CAPS, e);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail_at(err_fd, STAGE_NNP, errno());
        }
    }
    if let Some(fd) = landlock {
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) < 0 {
            fail_at(err_fd, STAGE_LANDLOCK, errno());
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
            fail_at(err_fd, STAGE_SECCOMP, errno());
        }
    }
    let mut saw_eacces = false;
    for cand in c.candidates {
        libc::execve(*cand, c.argv, c.envp);
        let e = errno();
        if !c.search {
            fail(err_fd, e);
        }
        match e {
            libc::EACCES => saw_eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => fail(err_fd, e),
        }
    }
    fail(
        err_fd,
        if saw_eacces {
            libc::EACCES
        } else {
            libc::ENOENT
        },
    )
}

/// Mark `from..=to` close-on-exec (in the child).
unsafe fn cloexec_range(from: RawFd, to: RawFd, err_fd: RawFd, targets: &[RawFd]) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
    if libc::syscall(
        libc::SYS_close_range,
        from as u32,
        to as u32,
        CLOSE_RANGE_CLOEXEC,
    ) < 0
    {
        for fd in from..=to.min(65_535) {
            if fd != err_fd && !targets.contains(&fd) {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
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
