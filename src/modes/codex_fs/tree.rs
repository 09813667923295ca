//! Whole trees under the helper's checks: checking, removing and copying them
//! through directory descriptors (never following a link inside), and `fs/walk`.

use super::guard::{denied, Guard};
use crate::fs::fdio;
use crate::fs::mounts::{self, TreeOp};
use crate::fs::walk::{MAX_DEPTH, MAX_DIRECTORIES, MAX_ENTRIES};
use crate::fs::FsError;
use crate::protocol::fs::{WalkEntry, WalkError, WalkKind, WalkOptions, WalkResult};
use crate::protocol::paths::to_uri;
use crate::sandbox::policy::Access;
use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Deeper trees are refused rather than risk running out of descriptors.
const MAX_TREE_DEPTH: usize = 512;

fn too_deep() -> FsError {
    FsError::Io(io::Error::from_raw_os_error(libc::ELOOP))
}

fn sorted(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>, FsError> {
    let mut names = fdio::list(dir)?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::os::fd::OwnedFd> {
    fdio::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

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

/// Copy the contents of `from` into the new, empty `to`: directories created, files
/// copied with their permission bits, links recreated, other files skipped.
pub fn copy_tree(
    g: &Guard,
    from: BorrowedFd<'_>,
    from_real: &Path,
    to: BorrowedFd<'_>,
    to_real: &Path,
    depth: usize,
) -> Result<(), FsError> {
    if depth > MAX_TREE_DEPTH {
        return Err(too_deep());
    }
    let dev = mounts::statx_at(from, OsStr::new(""))?.dev;
    for name in sorted(from)? {
        let (src, dst) = (from_real.join(&name), to_real.join(&name));
        if !g.allows(&src, Access::Read) || !g.allows(&dst, Access::Write) {
            return Err(denied());
        }
        // Checked again as it is copied: a mount may have appeared since the scan.
        if mounts::crosses(dev, &mounts::statx_at(from, &name)?) {
            return Err(mounts::crossing(TreeOp::Copy, &src));
        }
        let st = fdio::stat_at(from, &name, false)?;
        if fdio::is_lnk_mode(st.st_mode) {
            let target = fdio::readlink_at(from, &name)?;
            fdio::symlink_at(&target, to, &name)?;
        } else if fdio::is_dir_mode(st.st_mode) {
            fdio::mkdir_at(to, &name, 0o777)?;
            let a = open_subdir(from, &name)?;
            if mounts::crosses(dev, &mounts::statx_at(a.as_fd(), OsStr::new(""))?) {
                return Err(mounts::crossing(TreeOp::Copy, &src));
            }
            let b = open_subdir(to, &name)?;
            copy_tree(g, a.as_fd(), &src, b.as_fd(), &dst, depth + 1)?;
        } else if fdio::is_reg_mode(st.st_mode) {
            let a = fdio::openat(
                from,
                &name,
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                0,
            )?;
            let b = fdio::openat(
                to,
                &name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                0o666,
            )?;
            let (mut a, mut b) = (std::fs::File::from(a), std::fs::File::from(b));
            io::copy(&mut a, &mut b)?;
            b.set_permissions(std::fs::Permissions::from_mode(st.st_mode & 0o7777))?;
        }
        // FIFOs, sockets and devices are skipped silently.
    }
    Ok(())
}

/// `fs/walk` (as `crate::fs::walk::walk`), every directory opened through the guard.
pub fn walk(g: &Guard, root: &Path, o: &WalkOptions) -> Result<WalkResult, FsError> {
    if o.max_depth > MAX_DEPTH || o.max_directories > MAX_DIRECTORIES || o.max_entries > MAX_ENTRIES
    {
        return Err(FsError::WalkLimits);
    }
    let top = g.open(root, Access::Read, true, false, 0)?;
    let meta = fdio::metadata(top.fd.as_fd())?;
    if !meta.is_dir() {
        return Err(FsError::Io(io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let prune = o.prune_hidden_directories.unwrap_or(false);
    let mut seen: HashSet<(u64, u64)> = HashSet::from([(meta.dev(), meta.ino())]);
    // (path as listed, real path, depth); the root's descriptor is used as is.
    let mut queue: VecDeque<(PathBuf, PathBuf, u64)> =
        VecDeque::from([(root.to_path_buf(), top.real.clone(), 0)]);
    let mut root_fd = Some(top.fd);
    let mut out = WalkResult {
        entries: Vec::new(),
        errors: Vec::new(),
        truncated: false,
    };
    let mut dirs_read: u64 = 0;

    'walk: while let Some((dir, real, depth)) = queue.pop_front() {
        if depth >= o.max_depth {
            continue;
        }
        if dirs_read >= o.max_directories {
            out.truncated = true;
            break;
        }
        dirs_read += 1;
        let fd = match root_fd.take() {
            Some(fd) => Ok(fd),
            None => g.open(&real, Access::Read, true, false, 0).map(|o| o.fd),
        };
        let listed = fd.and_then(|fd| Ok((sorted(fd.as_fd())?, fd)));
        let (names, fd) = match listed {
            Ok(x) => x,
            Err(e) => {
                out.errors.push(WalkError {
                    path: to_uri(&dir),
                    message: e.to_string(),
                });
                continue;
            }
        };
        for name in names {
            let path = dir.join(&name);
            let Ok(lst) = fdio::stat_at(fd.as_fd(), &name, false) else {
                continue;
            };
            let is_link = fdio::is_lnk_mode(lst.st_mode);
            let target = if is_link {
                fdio::stat_at(fd.as_fd(), &name, true).ok()
            } else {
                Some(lst)
            };
            let is_dir = target.is_some_and(|t| fdio::is_dir_mode(t.st_mode));
            if is_dir && prune && name.as_bytes().first() == Some(&b'.') {
                continue;
            }
            if out.entries.len() as u64 >= o.max_entries {
                out.truncated = true;
                break 'walk;
            }
            out.entries.push(WalkEntry {
                path: to_uri(&path),
                kind: if is_dir {
                    WalkKind::Directory
                } else {
                    WalkKind::File
                },
            });
            if is_dir && (!is_link || o.follow_directory_symlinks) {
                let t = target.expect("a directory has metadata");
                if !seen.insert((t.st_dev, t.st_ino)) {
                    continue;
                }
                // Where it really is, for the checks when it is read.
                let child_real = if is_link {
                    match fdio::openat(fd.as_fd(), &name, libc::O_PATH | libc::O_DIRECTORY, 0)
                        .and_then(|c| fdio::real_path(c.as_fd()))
                    {
                        Ok(r) => r,
                        Err(e) => {
                            out.errors.push(WalkError {
                                path: to_uri(&path),
                                message: e.to_string(),
                            });
                            continue;
                        }
                    }
                } else {
                    real.join(&name)
                };
                queue.push_back((path, child_real, depth + 1));
            }
        }
    }
    Ok(out)
}
