//! Thin wrappers over the descriptor-relative syscalls the `codex-fs` helper
//! (`modes/codex_fs/`) and the direct operations ([`super::ops`],
//! [`super::mounts`]) use: `openat2`, `openat`, `fstatat`, `readlinkat`,
//! `mkdirat`, `unlinkat`, `symlinkat`, listing a directory, and the real path of a
//! descriptor. It sits in fs/ so both can use it without fs importing a mode.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn c_path(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

fn cvt(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `openat2(dirfd, path, flags, resolve)`; retried on EAGAIN and EINTR (a rename
/// raced with `..` resolution).
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    resolve: u64,
    mode: u32,
) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: plain data; zero is valid for every member.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    let mut tries = 0;
    loop {
        // SAFETY: a valid C string and `open_how` of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt(rc) {
            // SAFETY: a fresh descriptor.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) && tries < 64 =>
            {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `openat(dirfd, name, flags)`; close-on-exec always.
pub fn openat(dirfd: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name.as_bytes())?;
    loop {
        // SAFETY: a valid C string.
        let rc = unsafe {
            libc::openat(
                dirfd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        match cvt(rc as libc::c_long) {
            // SAFETY: a fresh descriptor.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reopen what an `O_PATH` descriptor refers to, with real access flags, through
/// `/proc/self/fd` (the same inode; no other path is resolved).
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<File> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let c = cstr(p.as_bytes())?;
    // SAFETY: a valid C string.
    let rc = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor.
    cvt(rc as libc::c_long).map(|fd| unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Metadata of what `fd` refers to (statx / fstat on the descriptor itself, so an
/// `O_PATH | O_NOFOLLOW` descriptor of a link describes the link).
pub fn metadata(fd: BorrowedFd<'_>) -> io::Result<std::fs::Metadata> {
    // SAFETY: the File is never dropped, so the borrowed descriptor stays open.
    let f = ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f.metadata()
}

/// `fstatat(dirfd, name)`; `follow` false means `AT_SYMLINK_NOFOLLOW`.
pub fn stat_at(dirfd: BorrowedFd<'_>, name: &OsStr, follow: bool) -> io::Result<libc::stat> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: zeroed plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: valid pointers.
    let rc = unsafe { libc::fstatat(dirfd.as_raw_fd(), c.as_ptr(), &mut st, flags) };
    cvt(rc as libc::c_long).map(|_| st)
}

pub fn is_dir_mode(m: libc::mode_t) -> bool {
    m & libc::S_IFMT == libc::S_IFDIR
}
pub fn is_reg_mode(m: libc::mode_t) -> bool {
    m & libc::S_IFMT == libc::S_IFREG
}
pub fn is_lnk_mode(m: libc::mode_t) -> bool {
    m & libc::S_IFMT == libc::S_IFLNK
}

/// `readlinkat(dirfd, name)`; an empty name reads the link an `O_PATH` descriptor
/// refers to.
pub fn readlink_at(dirfd: BorrowedFd<'_>, name: &OsStr) -> io::Result<PathBuf> {
    let c = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: the buffer is as large as passed.
        let n = unsafe {
            libc::readlinkat(
                dirfd.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = cvt(n as libc::c_long)? as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(PathBuf::from(OsString::from_vec(buf)));
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// The path the kernel records for an open descriptor (`/proc/self/fd/N`).
pub fn real_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    // Anything that is not a plain absolute path (" (deleted)", pseudo files) cannot
    // be checked against the policy.
    let b = p.as_os_str().as_bytes();
    if !b.starts_with(b"/") || b.ends_with(b" (deleted)") {
        return Err(io::Error::from_raw_os_error(libc::EACCES));
    }
    Ok(p)
}

pub fn mkdir_at(dirfd: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: a valid C string.
    cvt(
        unsafe { libc::mkdirat(dirfd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }
            as libc::c_long,
    )
    .map(|_| ())
}

pub fn unlink_at(dirfd: BorrowedFd<'_>, name: &OsStr, dir: bool) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: a valid C string.
    cvt(unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), flags) } as libc::c_long).map(|_| ())
}

pub fn symlink_at(target: &Path, dirfd: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let t = c_path(target)?;
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dirfd.as_raw_fd(), c.as_ptr()) } as libc::c_long)
        .map(|_| ())
}

/// Names in a directory (no `.` or `..`), in directory order.
pub fn list(dirfd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let fd = openat(
        dirfd,
        OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )?;
    let raw = fd.into_raw_fd();
    // SAFETY: fdopendir takes ownership of the descriptor on success.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: still ours on failure.
        unsafe { libc::close(raw) };
        return Err(e);
    }
    let mut out = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `dir` is a valid DIR stream.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            // SAFETY: as above.
            let err = unsafe { *libc::__errno_location() };
            break if err == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(err))
            };
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
    };
    // SAFETY: closes the stream and its descriptor.
    unsafe { libc::closedir(dir) };
    result.map(|()| out)
}
