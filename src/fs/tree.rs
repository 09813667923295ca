//! Whole directory trees through descriptors: the one `copy_tree` of `fs/copy`,
//! for the direct path and the sandboxed one (which adds its checks per entry).
//! Links inside a tree are recreated, never followed, and no other filesystem is
//! entered.

use super::fdio;
use super::mounts::{self, TreeOp};
use super::FsError;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Deeper trees are refused (ELOOP) rather than risk running out of descriptors.
pub const MAX_TREE_DEPTH: usize = 512;

pub fn too_deep() -> FsError {
    FsError::Io(io::Error::from_raw_os_error(libc::ELOOP))
}

/// The entry names of `dir`, sorted bytewise.
pub fn sorted(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, FsError> {
    let mut names = fdio::list(dir)?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Open the subdirectory `name` of `dir` for reading, never through a link.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    fdio::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// Copy the contents of `from` (shown as `from_path`) into the new, empty `to`
/// (shown as `to_path`): directories created, files copied with their permission
/// bits, links recreated, FIFOs, sockets and devices skipped. `allow(src, dst)`
/// is asked before each entry is copied (the sandboxed path checks its policy
/// there; the direct path allows everything).
pub fn copy_tree(
    allow: &dyn Fn(&Path, &Path) -> Result<(), FsError>,
    from: BorrowedFd<'_>,
    from_path: &Path,
    to: BorrowedFd<'_>,
    to_path: &Path,
    depth: usize,
) -> Result<(), FsError> {
    if depth > MAX_TREE_DEPTH {
        return Err(too_deep());
    }
    let dev = mounts::statx_at(from, OsStr::new(""))?.dev;
    for name in sorted(from)? {
        let (src, dst) = (from_path.join(&name), to_path.join(&name));
        allow(&src, &dst)?;
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
            copy_tree(allow, a.as_fd(), &src, b.as_fd(), &dst, depth + 1)?;
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
