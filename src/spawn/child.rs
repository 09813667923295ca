//! The child between `fork` (or the `CLONE_VM | CLONE_VFORK` clone) and `execve`:
//! only what runs in the child is here, so that everything in this file is read
//! with the child's rules in mind. No allocation, no locks, async-signal-safe
//! calls only; when started by `clone_vfork` the child shares the server's memory
//! until it execs, so it must write no memory the server uses (a child with a
//! mount layer is forked instead, see `fork_exec` in `spawner.rs`). A failure is
//! reported as (stage, errno) through the close-on-exec error pipe, which the
//! parent turns into a `SpawnError`.

use super::spawner::MAX_CHILD_FDS;
#[cfg(doc)]
use super::spawner::MAX_TARGET_FD;
use std::os::fd::RawFd;

/// Stages reported through the error pipe.
const STAGE_OS: u32 = 0;
pub(super) const STAGE_MOUNT: u32 = 1;
pub(super) const STAGE_NNP: u32 = 2;
pub(super) const STAGE_LANDLOCK: u32 = 3;
pub(super) const STAGE_SECCOMP: u32 = 4;
pub(super) const STAGE_CAPS: u32 = 5;

pub(super) extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildCtx` of `clone_vfork`, alive until the child execs.
    unsafe { child_main(&*(arg as *const ChildCtx<'_>)) }
}

/// What the child needs, prepared by the parent before the fork.
pub(super) struct ChildCtx<'a> {
    pub(super) parent: libc::pid_t,
    /// (target number, source descriptor), at most [`MAX_CHILD_FDS`].
    pub(super) fds: &'a [(RawFd, RawFd)],
    /// The target numbers, sorted, unique, below [`MAX_TARGET_FD`].
    pub(super) targets: &'a [RawFd],
    pub(super) ctty: Option<RawFd>,
    pub(super) cwd: *const libc::c_char,
    pub(super) candidates: &'a [*const libc::c_char],
    pub(super) search: bool,
    pub(super) argv: *const *const libc::c_char,
    pub(super) envp: *const *const libc::c_char,
    pub(super) err_fd: RawFd,
    pub(super) mount: Option<&'a crate::sandbox::mount::MountPlan>,
    pub(super) landlock: Option<RawFd>,
    pub(super) no_new_privs: bool,
    pub(super) seccomp: Option<&'a libc::sock_fprog>,
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
fn fail(err_fd: RawFd, errno: i32) -> ! {
    fail_at(err_fd, STAGE_OS, errno)
}

/// Report a failing stage and `errno` to the parent and exit. Async-signal-safe.
fn fail_at(err_fd: RawFd, stage: u32, errno: i32) -> ! {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&stage.to_ne_bytes());
    b[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write reads 8 bytes of a local buffer; _exit ends the process
    // without running anything of the parent's (no atexit handlers, no flushing).
    unsafe {
        libc::write(err_fd, b.as_ptr().cast(), 8);
        libc::_exit(127)
    }
}

/// This thread's errno. Async-signal-safe.
fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The child between `fork` and `execve`. Async-signal-safe calls only.
///
/// # Safety
/// Only in the child of `clone_vfork`/`fork`, between the fork and `execve`: `c` and everything it points to (NUL-terminated strings, argv/envp arrays ending in NULL, the seccomp program) must stay valid until then, and the child may call only async-signal-safe functions and write no memory the parent uses.
pub(super) unsafe fn child_main(c: &ChildCtx<'_>) -> ! {
    // SAFETY: we are that child (this function's contract); the pointers in `c` are valid until exec, and every call below is an async-signal-safe raw syscall.
    unsafe {
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
        super::limits::restore_in_child();
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
}

/// Mark `from..=to` close-on-exec (in the child).
///
/// # Safety
/// Async-signal-safe (raw syscalls only); for the forked child before exec.
unsafe fn cloexec_range(from: RawFd, to: RawFd, err_fd: RawFd, targets: &[RawFd]) {
    // SAFETY: close_range and fcntl(F_SETFD) only change descriptor flags of this process; no memory is touched.
    unsafe {
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
}
