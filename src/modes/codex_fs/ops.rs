//! The operations of docs/protocol.md "Sandboxed filesystem requests" under the helper's checks, on descriptors opened by the
//! [`Guard`]. Results and errors are those of the direct versions (`crate::fs::ops`).

use super::guard::{denied, link_target, Guard, Parent};
use crate::fs::fdio;
use crate::fs::mounts::{self, TreeOp};
use crate::fs::{display, ops as direct, FsError};
use crate::protocol::fs::{DirEntry, Metadata};
use crate::sandbox::policy::Access;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Most symbolic links followed for one final component (as the kernel's 40).
const MAX_HOPS: usize = 40;

fn eloop() -> FsError {
    FsError::Io(io::Error::from_raw_os_error(libc::ELOOP))
}

fn os(errno: i32) -> FsError {
    FsError::Io(io::Error::from_raw_os_error(errno))
}

pub fn read_file(g: &Guard, p: &Path, follow: bool) -> Result<Vec<u8>, FsError> {
    let o = g.open(p, Access::Read, true, !follow, 0)?;
    let meta = fdio::metadata(o.fd.as_fd())?;
    if !meta.is_file() {
        return Err(FsError::NotAFile(display(p)));
    }
    let file = fdio::reopen(o.fd.as_fd(), libc::O_RDONLY | libc::O_NONBLOCK)?;
    direct::read_regular(file, p)
}

/// Open `p` for writing without truncating it, after every check: a final link is
/// followed (when `follow`) by checking its target as a new path; a missing file is
/// created with `O_NOFOLLOW` in its checked parent. The real path of the opened
/// file is checked again before the caller truncates or writes.
pub fn open_for_write(g: &Guard, p: &Path, follow: bool) -> Result<File, FsError> {
    let mut cur: PathBuf = p.to_path_buf();
    for _ in 0..MAX_HOPS {
        match g.open(&cur, Access::Write, false, !follow, 0) {
            Ok(o) => {
                let meta = fdio::metadata(o.fd.as_fd())?;
                if meta.file_type().is_symlink() {
                    if !follow {
                        return Err(FsError::Symlink(display(p)));
                    }
                    let target = fdio::readlink_at(o.fd.as_fd(), std::ffi::OsStr::new(""))?;
                    let dir = o.real.parent().unwrap_or(Path::new("/"));
                    cur = link_target(dir, &target);
                    continue;
                }
                let file = fdio::reopen(o.fd.as_fd(), libc::O_WRONLY | libc::O_NONBLOCK)?;
                return Ok(file);
            }
            Err(FsError::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = g.parent(&cur, Access::Write, !follow)?;
                match fdio::openat(
                    parent.fd.as_fd(),
                    &parent.name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                    0o666,
                ) {
                    Ok(fd) => {
                        let real = fdio::real_path(fd.as_fd())?;
                        if !g.allows(&real, Access::Write) {
                            return Err(denied());
                        }
                        return Ok(File::from(fd));
                    }
                    // A link appeared meanwhile: look again.
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                        if !follow {
                            return Err(FsError::Symlink(display(p)));
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(eloop())
}

/// Truncate an opened regular file (other files, such as devices, are written as is).
fn truncate(f: &File) -> Result<(), FsError> {
    if f.metadata()?.is_file() {
        f.set_len(0)?;
    }
    Ok(())
}

/// `fs/open` mode read: a regular file, with `fs/readFile`'s checks.
pub fn open_read(g: &Guard, p: &Path) -> Result<File, FsError> {
    let o = g.open(p, Access::Read, true, false, 0)?;
    let meta = fdio::metadata(o.fd.as_fd())?;
    if !meta.is_file() {
        return Err(FsError::NotAFile(display(p)));
    }
    Ok(fdio::reopen(o.fd.as_fd(), libc::O_RDONLY | libc::O_NONBLOCK)?)
}

/// `fs/open` mode replace: `fs/writeFile`'s checks, created or truncated now.
pub fn open_replace(g: &Guard, p: &Path) -> Result<File, FsError> {
    let f = open_for_write(g, p, true)?;
    truncate(&f)?;
    Ok(f)
}

pub fn write_file(g: &Guard, p: &Path, data: &[u8], follow: bool) -> Result<(), FsError> {
    let mut f = open_for_write(g, p, follow)?;
    truncate(&f)?;
    f.write_all(data)?;
    Ok(())
}

fn mkdir_one(g: &Guard, p: &Path, follow: bool) -> Result<(), FsError> {
    let parent: Parent = g.parent(p, Access::Write, !follow)?;
    fdio::mkdir_at(parent.fd.as_fd(), &parent.name, 0o777)?;
    Ok(())
}

/// Is `p` an existing directory the policy lets us see?
fn is_dir(g: &Guard, p: &Path, follow: bool) -> bool {
    g.open(p, Access::Read, true, !follow, 0)
        .ok()
        .and_then(|o| fdio::metadata(o.fd.as_fd()).ok())
        .is_some_and(|m| m.is_dir())
}

fn exists_nofollow(g: &Guard, p: &Path) -> bool {
    g.open(p, Access::Read, false, false, 0).is_ok()
}

fn is_not_found(e: &FsError) -> bool {
    matches!(e, FsError::Io(io) if io.kind() == io::ErrorKind::NotFound)
}

/// `create_dir_all` of std, one checked level at a time.
fn create_all(g: &Guard, p: &Path, follow: bool, depth: usize) -> Result<(), FsError> {
    if depth > 4096 {
        return Err(eloop());
    }
    match mkdir_one(g, p, follow) {
        Ok(()) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(_) if is_dir(g, p, follow) => return Ok(()),
        Err(e) => return Err(e),
    }
    match p.parent() {
        Some(parent) => create_all(g, parent, follow, depth + 1)?,
        None => return Err(os(libc::ENOENT)),
    }
    match mkdir_one(g, p, follow) {
        Ok(()) => Ok(()),
        Err(_) if is_dir(g, p, follow) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn create_directory(g: &Guard, p: &Path, recursive: bool, follow: bool) -> Result<(), FsError> {
    if !follow {
        g.refuse_symlinks(p, true)?;
    }
    if recursive {
        return create_all(g, p, follow, 0);
    }
    // mkdir reports an existing entry before any permission (EEXIST, not EACCES).
    if exists_nofollow(g, p) {
        return Err(os(libc::EEXIST));
    }
    mkdir_one(g, p, follow)
}

pub fn get_metadata(g: &Guard, p: &Path, follow: bool) -> Result<Metadata, FsError> {
    let l = g.open(p, Access::Read, false, !follow, 0)?;
    let lmeta = fdio::metadata(l.fd.as_fd())?;
    let is_symlink = lmeta.file_type().is_symlink();
    if follow && is_symlink {
        let t = g.open(p, Access::Read, true, false, 0)?;
        let meta = fdio::metadata(t.fd.as_fd())?;
        return Ok(direct::metadata_result(true, &meta));
    }
    Ok(direct::metadata_result(is_symlink, &lmeta))
}

/// The entries of an opened directory, each examined relative to it.
pub fn entries_of(dir: std::os::fd::BorrowedFd<'_>) -> Result<Vec<DirEntry>, FsError> {
    let mut out = Vec::new();
    for name in fdio::list(dir)? {
        let is_symlink =
            fdio::stat_at(dir, &name, false).is_ok_and(|st| fdio::is_lnk_mode(st.st_mode));
        let (is_directory, is_file) = match fdio::stat_at(dir, &name, true) {
            Ok(st) => (fdio::is_dir_mode(st.st_mode), fdio::is_reg_mode(st.st_mode)),
            Err(_) => (false, false),
        };
        out.push((name, is_directory, is_file, is_symlink));
    }
    direct::sorted_entries(out)
}

pub fn read_directory(g: &Guard, p: &Path) -> Result<Vec<DirEntry>, FsError> {
    let o = g.open(p, Access::Read, true, false, 0)?;
    if !fdio::metadata(o.fd.as_fd())?.is_dir() {
        return Err(os(libc::ENOTDIR));
    }
    entries_of(o.fd.as_fd())
}

pub fn canonicalize(g: &Guard, p: &Path) -> Result<PathBuf, FsError> {
    Ok(g.open(p, Access::Read, true, false, 0)?.real)
}

pub fn remove(
    g: &Guard,
    p: &Path,
    recursive: bool,
    force: bool,
    follow: bool,
) -> Result<(), FsError> {
    if p.parent().is_none() {
        return Err(FsError::RemoveRoot);
    }
    if !follow {
        g.refuse_symlinks(p, false)?;
    }
    // Missing (as far as the policy lets us look): `force` makes it a success.
    match g.open(p, Access::Read, false, false, 0) {
        Ok(_) => {}
        Err(e) if is_not_found(&e) && force => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = g.parent(p, Access::Write, !follow)?;
    let st = match mounts::statx_at(parent.fd.as_fd(), &parent.name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound && force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let parent_dev = mounts::statx_at(parent.fd.as_fd(), std::ffi::OsStr::new(""))?.dev;
    mounts::check_remove_target(p, &st, parent_dev)?;
    let r = if st.is_dir() {
        if recursive {
            let real = parent.child();
            g.refuse_narrowing_inside(&[p, &real])?;
            let dir = fdio::openat(
                parent.fd.as_fd(),
                &parent.name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            if !g.policy.globs.is_empty() {
                super::tree::check_tree(g, dir.as_fd(), &real, Access::Write, 0)?;
            }
            mounts::scan(dir.as_fd(), p, TreeOp::Remove)?;
            super::tree::remove_tree(dir.as_fd(), p, 0)?;
        }
        fdio::unlink_at(parent.fd.as_fd(), &parent.name, true)
    } else {
        fdio::unlink_at(parent.fd.as_fd(), &parent.name, false)
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound && force => Ok(()),
        r => Ok(r?),
    }
}

/// Where `dst` really is: its real path when it exists, else its parent's real
/// path joined with its name, else `dst` (as `resolve_existing` of the direct copy).
fn real_destination(g: &Guard, dst: &Path) -> PathBuf {
    if let Ok(o) = g.open(dst, Access::Read, true, false, 0) {
        return o.real;
    }
    if let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) {
        if let Ok(o) = g.open(parent, Access::Read, true, false, 0) {
            return o.real.join(name);
        }
    }
    dst.to_path_buf()
}

pub fn copy(g: &Guard, src: &Path, dst: &Path, recursive: bool) -> Result<(), FsError> {
    let s = g.open(src, Access::Read, false, false, 0)?;
    let meta = fdio::metadata(s.fd.as_fd())?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fdio::readlink_at(s.fd.as_fd(), std::ffi::OsStr::new(""))?;
        let d = g.parent(dst, Access::Write, false)?;
        fdio::symlink_at(&target, d.fd.as_fd(), &d.name)?;
        return Ok(());
    }
    if ft.is_dir() && !recursive {
        return Err(FsError::CopyNeedsRecursive);
    }
    if !ft.is_dir() && !ft.is_file() {
        return Err(FsError::CopyUnsupported);
    }
    let real_dst = real_destination(g, dst);
    if real_dst == s.real || (ft.is_dir() && real_dst.starts_with(&s.real)) {
        return Err(FsError::CopyIntoItself);
    }
    if ft.is_file() {
        let mut from = fdio::reopen(s.fd.as_fd(), libc::O_RDONLY | libc::O_NONBLOCK)?;
        let mut to = open_for_write(g, dst, true)?;
        truncate(&to)?;
        io::copy(&mut from, &mut to)?;
        to.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode()))?;
        return Ok(());
    }
    g.refuse_narrowing_inside(&[src, &s.real, dst, &real_dst])?;
    let d = g.parent(dst, Access::Write, false)?;
    let from = fdio::openat(
        s.fd.as_fd(),
        std::ffi::OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )?;
    super::tree::check_tree(g, from.as_fd(), &s.real, Access::Read, 0)?;
    // The whole source is checked before the destination is created.
    mounts::scan(from.as_fd(), src, TreeOp::Copy)?;
    fdio::mkdir_at(d.fd.as_fd(), &d.name, 0o777)?;
    let to = fdio::openat(
        d.fd.as_fd(),
        &d.name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    let to_real = fdio::real_path(to.as_fd())?;
    if !g.allows(&to_real, Access::Write) {
        return Err(denied());
    }
    super::tree::copy_tree(g, from.as_fd(), &s.real, to.as_fd(), &to_real)
}
