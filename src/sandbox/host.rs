//! What this host can enforce (`environmentInfo.tether.sandbox`): the Landlock
//! ABI, seccomp filter support, whether a child can make user and mount
//! namespaces, the kernel release and the default sandbox mode. The exec-server
//! probes once at start; the codex-fs child checks Landlock and seccomp before it
//! locks itself down.

use crate::protocol::handshake::HostSandbox;

pub fn sandbox_mode_default() -> String {
    match std::env::var("TETHER_SANDBOX_MODE").as_deref() {
        Ok("best-effort") => "best-effort".into(),
        _ => "strict".into(),
    }
}

/// Probe what this host can enforce.
pub fn probe_sandbox() -> HostSandbox {
    NamespaceProbe::start().finish()
}

fn host_sandbox(ns: u8) -> HostSandbox {
    HostSandbox {
        landlock_abi: landlock_abi(),
        seccomp: seccomp_available(),
        user_namespaces: ns & NS_USER != 0,
        mount_namespaces: ns & NS_MOUNT != 0,
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        default_mode: sandbox_mode_default(),
    }
}

pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with this flag the syscall only returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        v as u32
    } else {
        0
    }
}

pub fn seccomp_available() -> bool {
    // With filter support, PR_SET_SECCOMP(SECCOMP_MODE_FILTER, NULL) fails with
    // EFAULT (the missing program) before installing anything; without it, EINVAL.
    // (The usual probe; cheaper than reading /proc/self/status at every start.)
    // SAFETY: a NULL program is never installed: the call can only fail.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
            0,
            0,
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

const NS_USER: u8 = 1;
const NS_MOUNT: u8 = 2;

/// Can a child create a user namespace (`NS_USER`), and a private mount namespace,
/// through a user namespace or directly (`NS_MOUNT`)? Tried in one throwaway forked
/// child, so the server itself never changes namespace. The child reports through a
/// pipe before it exits, and the server does not wait for its exit: tearing down a
/// mount namespace waits for an RCU grace period. The zombie is collected by the
/// reaper like any orphan. [`NamespaceProbe::start`] forks the child and returns at
/// once, so that the server builds its runtime while the child works; `finish`
/// reads the answer.
pub struct NamespaceProbe {
    /// Read end of the report pipe; -1 when the probe could not start.
    fd: libc::c_int,
}

impl NamespaceProbe {
    pub fn start() -> NamespaceProbe {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors; the child only calls unshare, write and
        // _exit (async-signal-safe) on values prepared before the fork.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
                return NamespaceProbe { fd: -1 };
            }
            let pid = libc::fork();
            if pid == 0 {
                libc::close(fds[0]);
                let mut bits = 0u8;
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0 {
                    bits = NS_USER | NS_MOUNT;
                } else {
                    if libc::unshare(libc::CLONE_NEWNS) == 0 {
                        bits |= NS_MOUNT;
                    }
                    if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                        bits |= NS_USER;
                    }
                }
                libc::write(fds[1], (&bits as *const u8).cast(), 1);
                libc::_exit(0);
            }
            libc::close(fds[1]);
            if pid < 0 {
                libc::close(fds[0]);
                return NamespaceProbe { fd: -1 };
            }
            NamespaceProbe { fd: fds[0] }
        }
    }

    /// Wait for the child's answer and put the host's sandbox facts together.
    pub fn finish(mut self) -> HostSandbox {
        host_sandbox(self.read_bits())
    }

    fn read_bits(&mut self) -> u8 {
        if self.fd < 0 {
            return 0;
        }
        let mut bits = 0u8;
        // SAFETY: a one-byte read into a local from our own pipe descriptor.
        unsafe {
            loop {
                let n = libc::read(self.fd, (&mut bits as *mut u8).cast(), 1);
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                if n != 1 {
                    bits = 0;
                }
                break;
            }
            libc::close(self.fd);
        }
        self.fd = -1;
        bits
    }
}

impl Drop for NamespaceProbe {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(self.fd) };
        }
    }
}
