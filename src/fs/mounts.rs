//! The guards of destructive requests (docs/protocol.md, "Destructive requests"):
//! `fs/remove` never removes `/` or a mount point, and a recursive `fs/remove` or
//! `fs/copy` never crosses into another filesystem (as `rm --preserve-root
//! --one-file-system`). Used by the direct versions ([`super::ops`]) and by the
//! `codex-fs` helper (the codex-fs mode), on directory descriptors, never
//! following a link.
//!
//! An entry is *another filesystem* when `statx` marks it the root of a mount
//! (`STATX_ATTR_MOUNT_ROOT`: any mount, a bind mount of the same device included),
//! or when it is a directory on another device than the directory holding it (a
//! kernel without that attribute; btrfs subvolumes). A tree is scanned whole before
//! anything is removed or copied, so a refused request changes nothing; the
//! removal and the copies check every directory again as they enter it.

use super::fdio;
use super::{display, FsError};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What `statx` says about one entry.
#[derive(Clone, Copy, Debug)]
pub struct Stx {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    /// `Some(root of a mount)` when the kernel reports the attribute.
    pub mount_root: Option<bool>,
}

impl Stx {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// `statx(dirfd, name, AT_SYMLINK_NOFOLLOW)`; an empty name describes `dirfd`.
pub fn statx_at(dirfd: BorrowedFd<'_>, name: &OsStr) -> io::Result<Stx> {
    statx_raw(dirfd.as_raw_fd(), name.as_bytes())
}

/// `statx` of a path, the final component not followed.
pub fn statx_path(p: &Path) -> io::Result<Stx> {
    statx_raw(libc::AT_FDCWD, p.as_os_str().as_bytes())
}

fn statx_raw(dirfd: i32, name: &[u8]) -> io::Result<Stx> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: zeroed plain data filled by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a buffer of the right type.
    let rc = unsafe {
        libc::statx(
            dirfd,
            c.as_ptr(),
            flags,
            libc::STATX_TYPE | libc::STATX_INO,
            &mut st,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok(Stx {
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mode: st.stx_mode as u32,
        mount_root: (st.stx_attributes_mask & bit != 0).then_some(st.stx_attributes & bit != 0),
    })
}

/// Is `child`, held by a directory on device `parent_dev`, another filesystem?
pub fn crosses(parent_dev: u64, child: &Stx) -> bool {
    child.mount_root == Some(true) || (child.is_dir() && child.dev != parent_dev)
}

/// Is `p` (the final component not followed) `/` itself, whatever the spelling?
pub fn is_root(p: &Path, st: &Stx) -> bool {
    if p.parent().is_none() {
        return true;
    }
    statx_path(Path::new("/")).is_ok_and(|r| r.dev == st.dev && r.ino == st.ino)
}

/// The checks of `fs/remove` on its target `p` (`st` its own `statx`, `parent_dev`
/// the device of the directory holding it): not `/`, not a mount point.
pub fn check_remove_target(p: &Path, st: &Stx, parent_dev: u64) -> Result<(), FsError> {
    if is_root(p, st) {
        return Err(FsError::RemoveRoot);
    }
    if crosses(parent_dev, st) {
        return Err(FsError::RemoveMountPoint(display(p)));
    }
    Ok(())
}

/// Which request a crossing refuses.
#[derive(Clone, Copy, Debug)]
pub enum TreeOp {
    Remove,
    Copy,
}

/// The error for a tree of `op` that holds another filesystem at `at`.
pub fn crossing(op: TreeOp, at: &Path) -> FsError {
    match op {
        TreeOp::Remove => FsError::RemoveCrossesMount(display(at)),
        TreeOp::Copy => FsError::CopyCrossesMount(display(at)),
    }
}

fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    fdio::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// One directory of a walk: its descriptor, how it is shown, its device, and the
/// names not yet visited.
struct Level {
    fd: OwnedFd,
    shown: PathBuf,
    dev: u64,
    name: OsString,
    left: Vec<OsString>,
}

impl Level {
    fn new(fd: OwnedFd, shown: PathBuf, name: OsString) -> io::Result<Level> {
        let dev = statx_at(fd.as_fd(), OsStr::new(""))?.dev;
        let mut left = fdio::list(fd.as_fd())?;
        // Visited from the end: sorted descending, entries come in byte order.
        left.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(Level {
            fd,
            shown,
            dev,
            name,
            left,
        })
    }
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Open the subdirectory `name` of `parent` and check what was opened is still on
/// the parent's filesystem (a mount may have appeared since it was examined).
/// `None` when it is gone.
fn enter(
    parent: &Level,
    name: OsString,
    shown: PathBuf,
    op: TreeOp,
) -> Result<Option<Level>, FsError> {
    let sub = match open_subdir(parent.fd.as_fd(), &name) {
        Ok(fd) => fd,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if crosses(parent.dev, &statx_at(sub.as_fd(), OsStr::new(""))?) {
        return Err(crossing(op, &shown));
    }
    Ok(Some(Level::new(sub, shown, name)?))
}

/// Refuse a tree (the open directory `top`, shown as `shown`) that holds another
/// filesystem anywhere below it; nothing is changed. Iterative: the depth is
/// bounded by descriptors only.
pub fn scan(top: BorrowedFd<'_>, shown: &Path, op: TreeOp) -> Result<(), FsError> {
    let top = fdio::openat(top, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut stack = vec![Level::new(top, shown.to_path_buf(), OsString::new())?];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.left.pop() else {
            stack.pop();
            continue;
        };
        let st = match statx_at(level.fd.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        if crosses(level.dev, &st) {
            return Err(crossing(op, &level.shown.join(&name)));
        }
        if st.is_dir() {
            let shown = level.shown.join(&name);
            if let Some(sub) = enter(level, name, shown, op)? {
                stack.push(sub);
            }
        }
    }
    Ok(())
}

/// Remove everything below the open directory `top` (shown as `shown`), links
/// unlinked and never followed, never entering another filesystem (checked again
/// for each directory, in case one was mounted after [`scan`]). Each entry is
/// first unlinked as a file: a directory answers `EISDIR` and is entered, a mount
/// point `EBUSY`.
pub fn remove_tree(top: BorrowedFd<'_>, shown: &Path) -> Result<(), FsError> {
    let top = fdio::openat(top, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut stack = vec![Level::new(top, shown.to_path_buf(), OsString::new())?];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.left.pop() else {
            let done = stack.pop().expect("a level");
            if let Some(parent) = stack.last() {
                match fdio::unlink_at(parent.fd.as_fd(), &done.name, true) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(crossing(TreeOp::Remove, &done.shown))
                    }
                    Err(e) if !gone(&e) => return Err(e.into()),
                    _ => {}
                }
            }
            continue;
        };
        match fdio::unlink_at(level.fd.as_fd(), &name, false) {
            Ok(()) => {}
            Err(e) if gone(&e) => {}
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                let shown = level.shown.join(&name);
                if let Some(sub) = enter(level, name, shown, TreeOp::Remove)? {
                    stack.push(sub);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(crossing(TreeOp::Remove, &level.shown.join(&name)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// In a forked child with its own mount namespace (root only): a tmpfs inside a
    /// scratch tree. `scan` refuses it up front; `remove_tree` without the scan (a
    /// mount made after it) stops at it and leaves what is on it.
    #[test]
    fn scan_and_removal_stop_at_a_mount() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED scan_and_removal_stop_at_a_mount: not root");
            return;
        }
        let t = std::env::temp_dir().join(format!("tether-mounts-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        fs::create_dir_all(t.join("tree/inner")).unwrap();
        fs::create_dir_all(t.join("tree/a")).unwrap();
        fs::write(t.join("tree/a/f"), b"f").unwrap();
        let inner = CString::new(t.join("tree/inner").as_os_str().as_bytes()).unwrap();
        // SAFETY: the child makes system calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = (|| -> Option<()> {
                // SAFETY: system calls with valid C strings.
                unsafe {
                    (libc::unshare(libc::CLONE_NEWNS) == 0).then_some(())?;
                    (libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) == 0)
                        .then_some(())?;
                    (libc::mount(
                        c"tmpfs".as_ptr(),
                        inner.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        std::ptr::null(),
                    ) == 0)
                        .then_some(())?;
                }
                fs::write(t.join("tree/inner/keep"), b"k").ok()?;
                // SAFETY: AT_FDCWD is a sentinel the *at calls accept, never closed.
                let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
                let top = fdio::openat(
                    fdio::openat(
                        cwd,
                        t.join("tree").as_os_str(),
                        libc::O_RDONLY | libc::O_DIRECTORY,
                        0,
                    )
                    .ok()?
                    .as_fd(),
                    OsStr::new("."),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
                .ok()?;
                let want = format!(
                    "fs/remove refuses to cross into another filesystem at `{}`",
                    t.join("tree/inner").display()
                );
                let e = scan(top.as_fd(), &t.join("tree"), TreeOp::Remove).err()?;
                (e.to_string() == want).then_some(())?;
                // Nothing was removed by the scan.
                fs::metadata(t.join("tree/a/f")).ok()?;
                let e = remove_tree(top.as_fd(), &t.join("tree")).err()?;
                (e.to_string() == want).then_some(())?;
                // What is on the other filesystem is still there.
                fs::metadata(t.join("tree/inner/keep")).ok()?;
                Some(())
            })()
            .map_or(1, |()| 0);
            // SAFETY: ends the forked child without running the parent's handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = fs::remove_dir_all(&t);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child status {status}"
        );
    }
}
