//! Whole trees under the helper's checks: checking, removing and copying them
//! through directory descriptors (never following a link inside), and `fs/walk`.

use super::guard::{denied, Guard};
use crate::fs::fdio;
use crate::fs::mounts::{self, TreeOp};
use crate::fs::tree::{self, open_subdir, sorted, too_deep, MAX_TREE_DEPTH};
use crate::fs::walk::{walk_with, DirSource, FileId, Seen};
use crate::fs::FsError;
use crate::protocol::fs::{WalkOptions, WalkResult};
use crate::sandbox::policy::Access;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every entry below `dir` (at real path `real`) must allow `need`.
pub fn check_tree(
    g: &Guard,
    dir: BorrowedFd<'_>,
    real: &Path,
    need: Access,
    depth: usize,
) -> Result<(), FsError> {
    if depth > MAX_TREE_DEPTH {
        return Err(too_deep());
    }
    for name in sorted(dir)? {
        let path = real.join(&name);
        if !g.allows(&path, need) {
            return Err(denied());
        }
        let Ok(st) = fdio::stat_at(dir, &name, false) else {
            continue;
        };
        if fdio::is_dir_mode(st.st_mode) {
            let sub = open_subdir(dir, &name)?;
            check_tree(g, sub.as_fd(), &path, need, depth + 1)?;
        }
    }
    Ok(())
}

/// Remove everything below `dir` (shown as `shown`); links are unlinked, never
/// followed, and no other filesystem is entered (checked again for each entry, in
/// case one was mounted after the caller's `mounts::scan`).
pub fn remove_tree(dir: BorrowedFd<'_>, shown: &Path, depth: usize) -> Result<(), FsError> {
    if depth > MAX_TREE_DEPTH {
        return Err(too_deep());
    }
    let dev = mounts::statx_at(dir, OsStr::new(""))?.dev;
    for name in fdio::list(dir)? {
        let st = match mounts::statx_at(dir, &name) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let path = shown.join(&name);
        if mounts::crosses(dev, &st) {
            return Err(mounts::crossing(TreeOp::Remove, &path));
        }
        let is_dir = st.is_dir();
        if is_dir {
            match open_subdir(dir, &name) {
                Ok(sub) => {
                    if mounts::crosses(dev, &mounts::statx_at(sub.as_fd(), OsStr::new(""))?) {
                        return Err(mounts::crossing(TreeOp::Remove, &path));
                    }
                    remove_tree(sub.as_fd(), &path, depth + 1)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match fdio::unlink_at(dir, &name, is_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Copy the contents of `from` into the new, empty `to` (the one
/// `crate::fs::tree::copy_tree`), each source entry readable and each destination
/// writable under the guard.
pub fn copy_tree(
    g: &Guard,
    from: BorrowedFd<'_>,
    from_real: &Path,
    to: BorrowedFd<'_>,
    to_real: &Path,
) -> Result<(), FsError> {
    let allow = |src: &Path, dst: &Path| {
        if g.allows(src, Access::Read) && g.allows(dst, Access::Write) {
            Ok(())
        } else {
            Err(denied())
        }
    };
    tree::copy_tree(&allow, from, from_real, to, to_real, 0)
}

/// `fs/walk` (the one `crate::fs::walk::walk_with`), every directory opened
/// through the guard.
pub fn walk(g: &Guard, root: &Path, o: &WalkOptions) -> Result<WalkResult, FsError> {
    walk_with(&mut Guarded { g, root_fd: None }, root, o)
}

/// Directories read through descriptors the guard opened; a queued directory is
/// reached by its real path, checked again when it is read.
struct Guarded<'a> {
    g: &'a Guard,
    /// The root's descriptor, opened once and used for its listing.
    root_fd: Option<OwnedFd>,
}

impl DirSource for Guarded<'_> {
    type Loc = PathBuf;
    type Dir = OwnedFd;

    fn root(&mut self, root: &Path) -> Result<(PathBuf, Option<FileId>), FsError> {
        let top = self.g.open(root, Access::Read, true, false, 0)?;
        let meta = fdio::metadata(top.fd.as_fd())?;
        self.root_fd = Some(top.fd);
        Ok((top.real, meta.is_dir().then(|| (meta.dev(), meta.ino()))))
    }

    fn list(&mut self, real: &PathBuf) -> Result<(OwnedFd, Vec<OsString>), String> {
        let fd = match self.root_fd.take() {
            Some(fd) => Ok(fd),
            None => self
                .g
                .open(real, Access::Read, true, false, 0)
                .map(|o| o.fd),
        };
        let listed = fd.and_then(|fd| Ok((sorted(fd.as_fd())?, fd)));
        match listed {
            Ok((names, fd)) => Ok((fd, names)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn entry(&self, fd: &OwnedFd, name: &OsStr) -> Option<Seen> {
        let lst = fdio::stat_at(fd.as_fd(), name, false).ok()?;
        let is_link = fdio::is_lnk_mode(lst.st_mode);
        let target = if is_link {
            fdio::stat_at(fd.as_fd(), name, true).ok()
        } else {
            Some(lst)
        };
        Some(Seen {
            is_link,
            target: target.map(|t| (t.st_dev, t.st_ino, fdio::is_dir_mode(t.st_mode))),
        })
    }

    fn child(
        &self,
        fd: &OwnedFd,
        real: &PathBuf,
        name: &OsStr,
        is_link: bool,
    ) -> Result<PathBuf, String> {
        // Where it really is, for the checks when it is read.
        if !is_link {
            return Ok(real.join(name));
        }
        fdio::openat(fd.as_fd(), name, libc::O_PATH | libc::O_DIRECTORY, 0)
            .and_then(|c| fdio::real_path(c.as_fd()))
            .map_err(|e| e.to_string())
    }
}
