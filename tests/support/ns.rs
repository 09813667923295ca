//! Private mount namespaces for the destructive-request tests (`fs::guard`): a
//! server started with [`Ns::setup`] runs in its own mount namespace (every
//! mount private, so nothing reaches the machine), with tmpfs and bind mounts
//! made for it, and optionally chrooted into a scratch tmpfs. As root the namespace is made
//! directly; otherwise inside a new user namespace that maps the test's own user
//! ([`Ns::new`] is `None` when the kernel refuses one: the caller skips loudly).
//!
//! Every path and buffer is prepared before the fork; the child only makes
//! system calls.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

enum Step {
    /// Write `data` to an existing file (the id maps of the user namespace).
    Proc(CString, Vec<u8>),
    Private,
    Mount {
        src: CString,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    Mkdir(CString, u32),
    Write(CString, Vec<u8>),
    Symlink(CString, CString),
    Chown(CString, u32),
    Chroot(CString),
}

/// Bind mount flags that a read-only remount must keep (locked in a user
/// namespace).
fn kept_flags(src: &Path) -> libc::c_ulong {
    let c = c(src);
    // SAFETY: zeroed plain data filled by the kernel; a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs fills the local from a NUL-terminated path.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut out = 0;
    for (st_bit, ms_bit) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_bit != 0 {
            out |= ms_bit;
        }
    }
    out
}

pub struct Ns {
    steps: Vec<Step>,
    /// In a user namespace (the test is not root).
    pub userns: bool,
}

/// Can this user make a user + mount namespace?
fn userns_works() -> bool {
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: one system call between fork and exec.
    unsafe {
        cmd.pre_exec(|| check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)));
    }
    cmd.status().is_ok_and(|s| s.success())
}

impl Ns {
    /// A private mount namespace, or `None` (with the reason) when none can be made.
    pub fn new() -> Result<Ns, String> {
        let root = super::fs::is_root();
        if !root && !userns_works() {
            return Err("not root and user namespaces are not available".into());
        }
        let mut steps = Vec::new();
        if !root {
            // SAFETY: no preconditions.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            steps.push(Step::Proc(
                c(Path::new("/proc/self/setgroups")),
                b"deny".to_vec(),
            ));
            steps.push(Step::Proc(
                c(Path::new("/proc/self/uid_map")),
                format!("{uid} {uid} 1\n").into_bytes(),
            ));
            steps.push(Step::Proc(
                c(Path::new("/proc/self/gid_map")),
                format!("{gid} {gid} 1\n").into_bytes(),
            ));
        }
        steps.push(Step::Private);
        Ok(Ns {
            steps,
            userns: !root,
        })
    }

    pub fn tmpfs(mut self, target: &Path, mode: u32) -> Ns {
        self.steps.push(Step::Mount {
            src: CString::new("tmpfs").unwrap(),
            target: c(target),
            fstype: Some(CString::new("tmpfs").unwrap()),
            flags: 0,
            data: Some(CString::new(format!("mode={mode:o},size=16m")).unwrap()),
        });
        self
    }

    /// A fresh `proc` (root only: a user namespace would need its own pid one).
    pub fn proc(mut self, target: &Path) -> Ns {
        self.steps.push(Step::Mount {
            src: CString::new("proc").unwrap(),
            target: c(target),
            fstype: Some(CString::new("proc").unwrap()),
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: None,
        });
        self
    }

    /// Bind `src` (not its submounts) onto `target`, read-only when asked.
    pub fn bind(mut self, src: &Path, target: &Path, read_only: bool) -> Ns {
        self.steps.push(Step::Mount {
            src: c(src),
            target: c(target),
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
        if read_only {
            self.steps.push(Step::Mount {
                src: CString::new("none").unwrap(),
                target: c(target),
                fstype: None,
                flags: libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept_flags(src),
                data: None,
            });
        }
        self
    }

    pub fn mkdir(mut self, p: &Path, mode: u32) -> Ns {
        self.steps.push(Step::Mkdir(c(p), mode));
        self
    }

    pub fn write(mut self, p: &Path, data: &[u8]) -> Ns {
        self.steps.push(Step::Write(c(p), data.to_vec()));
        self
    }

    pub fn symlink(mut self, target: &Path, link: &Path) -> Ns {
        self.steps.push(Step::Symlink(c(target), c(link)));
        self
    }

    /// Give `p` to `uid` (and its group); nothing in a user namespace, where the
    /// files already belong to the test's user.
    pub fn chown(mut self, p: &Path, uid: u32) -> Ns {
        if !self.userns {
            self.steps.push(Step::Chown(c(p), uid));
        }
        self
    }

    pub fn chroot(mut self, dir: &Path) -> Ns {
        self.steps.push(Step::Chroot(c(dir)));
        self
    }

    /// The `Opts::setup` hook that makes it all in the child.
    pub fn setup(self) -> Arc<dyn Fn() -> io::Result<()> + Send + Sync> {
        let userns = self.userns;
        let steps = self.steps;
        Arc::new(move || {
            // SAFETY: system calls on prepared C strings and buffers only.
            unsafe {
                let flags = if userns {
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNS
                } else {
                    libc::CLONE_NEWNS
                };
                check(libc::unshare(flags))?;
                for s in &steps {
                    match s {
                        Step::Proc(p, data) | Step::Write(p, data) => {
                            let create = matches!(s, Step::Write(..));
                            let oflags = libc::O_WRONLY
                                | libc::O_CLOEXEC
                                | if create {
                                    libc::O_CREAT | libc::O_TRUNC
                                } else {
                                    0
                                };
                            let fd = libc::open(p.as_ptr(), oflags, 0o644);
                            check(fd)?;
                            let n = libc::write(fd, data.as_ptr().cast(), data.len());
                            libc::close(fd);
                            if n != data.len() as isize {
                                return Err(io::Error::last_os_error());
                            }
                        }
                        Step::Private => check(libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ))?,
                        Step::Mount {
                            src,
                            target,
                            fstype,
                            flags,
                            data,
                        } => check(libc::mount(
                            src.as_ptr(),
                            target.as_ptr(),
                            fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                            *flags,
                            data.as_ref()
                                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
                        ))?,
                        Step::Mkdir(p, mode) => check(libc::mkdir(p.as_ptr(), *mode))?,
                        Step::Symlink(t, l) => check(libc::symlink(t.as_ptr(), l.as_ptr()))?,
                        Step::Chown(p, uid) => check(libc::lchown(p.as_ptr(), *uid, *uid))?,
                        Step::Chroot(d) => {
                            check(libc::chroot(d.as_ptr()))?;
                            check(libc::chdir(c"/".as_ptr()))?;
                        }
                    }
                }
            }
            Ok(())
        })
    }
}
