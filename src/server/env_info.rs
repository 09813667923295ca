//! `environmentInfo` (PROTOCOL.md §4.4–§4.6), computed once when the server starts.

use crate::protocol::handshake::*;
use crate::protocol::paths::to_uri;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const PROTOCOL_VERSION: u32 = 1;

/// Extensions this build implements, each at version 1. Names are added here only
/// when the feature works end to end.
pub const EXTENSIONS: &[&str] = &[
    "paths.plain",
    "process/start.size",
    "process/start.sandboxMode",
    "process/start.sandboxReport",
    "process/write.optionalWriteId",
    "process/read.loss",
    "process/signal.signals",
    "process/terminate.graceMs",
    "process/exited.signal",
    "process/resize",
    "process/closeStdin",
    "process/start.escalation",
    "process/approveExec",
    "fs/readDirectory.isSymlink",
    "tools",
];

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// First of: `$SHELL` if absolute, executable and bash/zsh/sh; `/bin/bash`; `/bin/sh`.
pub fn pick_shell(shell_var: Option<OsString>) -> Shell {
    let from_env = shell_var.map(PathBuf::from).filter(|p| {
        p.is_absolute()
            && matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("bash" | "zsh" | "sh")
            )
            && is_executable(p)
    });
    let path = from_env.unwrap_or_else(|| {
        if is_executable(Path::new("/bin/bash")) {
            PathBuf::from("/bin/bash")
        } else {
            PathBuf::from("/bin/sh")
        }
    });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Shell {
        name,
        path: path.to_string_lossy().into_owned(),
    }
}

fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(h);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

fn tmpdir() -> Option<PathBuf> {
    std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

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

/// Compute the whole object. Call before the runtime starts children.
pub fn compute() -> EnvironmentInfo {
    compute_with(NamespaceProbe::start())
}

/// Compute the whole object with a probe started earlier.
pub fn compute_with(probe: NamespaceProbe) -> EnvironmentInfo {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let tmp = tmpdir();
    let extensions: BTreeMap<String, u32> = EXTENSIONS.iter().map(|e| (e.to_string(), 1)).collect();
    EnvironmentInfo {
        shell: pick_shell(std::env::var_os("SHELL")),
        executor_version: Some(VERSION.into()),
        cwd: Some(to_uri(&cwd)),
        user_home_dir: home_dir().map(|h| to_uri(&h)),
        platform_os: Some("linux".into()),
        temporary_directories: tmp.iter().map(|t| to_uri(t)).collect(),
        temp_dir: Some(to_uri(tmp.as_deref().unwrap_or(Path::new("/tmp")))),
        capabilities: Capabilities {
            fs_watch_missing: true,
            ..Capabilities::default()
        },
        tether: Some(TetherInfo {
            protocol_version: PROTOCOL_VERSION,
            version: VERSION.into(),
            extensions,
            sandbox: probe.finish(),
            // Filled in by `environment/info` once the guard has reported.
            lifetime: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_choice() {
        assert_eq!(pick_shell(Some("/bin/sh".into())).path, "/bin/sh");
        // Not absolute, or not a known shell: fall back.
        let fallback = pick_shell(None).path;
        assert_eq!(pick_shell(Some("sh".into())).path, fallback);
        assert_eq!(pick_shell(Some("/usr/bin/env".into())).path, fallback);
        assert!(fallback == "/bin/bash" || fallback == "/bin/sh");
    }

    #[test]
    fn info_has_every_member() {
        let info = compute();
        let v = serde_json::to_value(&info).unwrap();
        for m in [
            "shell",
            "executorVersion",
            "cwd",
            "platformOs",
            "temporaryDirectories",
            "tempDir",
            "capabilities",
            "tether",
        ] {
            assert!(v.get(m).is_some(), "{m}");
        }
        assert_eq!(v["capabilities"].as_object().unwrap().len(), 15);
        assert!(v["cwd"].as_str().unwrap().starts_with("file:///"));
    }
}
