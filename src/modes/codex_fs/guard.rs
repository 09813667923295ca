//! The helper's own path checks (docs/protocol.md "Sandboxed filesystem requests"): every path is opened beneath
//! the root of an entry that grants the needed access, with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` (`RESOLVE_IN_ROOT` when that root is
//! `/`, plus `RESOLVE_NO_SYMLINKS` without followSymlinks), and the real path of
//! what was opened is checked against the whole policy, narrowing paths included.
//! Operations then work on the opened descriptors only.

use crate::fs::fdio;
use crate::fs::{display, FsError};
use crate::sandbox::policy::{Access, Resolved};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub fn denied() -> FsError {
    FsError::Io(io::Error::from_raw_os_error(libc::EACCES))
}

/// Does `a` allow `need` (read or write)?
pub fn allows(a: Option<Access>, need: Access) -> bool {
    matches!(
        (a, need),
        (Some(Access::Write), _) | (Some(Access::Read), Access::Read)
    )
}

/// An opened path: an `O_PATH` descriptor and the real path the kernel records.
pub struct Opened {
    pub fd: OwnedFd,
    pub real: PathBuf,
}

/// A directory opened for work on one of its children.
pub struct Parent {
    pub fd: OwnedFd,
    pub real: PathBuf,
    /// The child's name.
    pub name: std::ffi::OsString,
}

impl Parent {
    /// The real path of the child.
    pub fn child(&self) -> PathBuf {
        self.real.join(&self.name)
    }
}

pub struct Guard {
    pub policy: Resolved,
}

impl Guard {
    pub fn allows(&self, p: &Path, need: Access) -> bool {
        allows(self.policy.access(p), need)
    }

    fn check(&self, p: &Path, need: Access) -> Result<(), FsError> {
        if self.allows(p, need) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// Entries that grant `need` and contain `p` (or are `p` itself when
    /// `self_ok`), most specific first.
    fn anchors(&self, p: &Path, need: Access, self_ok: bool) -> Vec<&Path> {
        let mut v: Vec<&Path> = self
            .policy
            .entries
            .iter()
            .filter(|e| allows(Some(e.access), need))
            .map(|e| e.path.as_path())
            .filter(|a| p.starts_with(a) && (self_ok || *a != p))
            .collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.components().count()));
        v.dedup();
        v
    }

    /// Open `p` as `O_PATH` (plus `extra` flags such as `O_DIRECTORY`), resolving
    /// beneath an anchor granting `need`. `follow_final` false opens a final link
    /// itself; `no_symlinks` refuses a link in any other component (and in the
    /// final one when it is followed).
    pub fn open(
        &self,
        p: &Path,
        need: Access,
        follow_final: bool,
        no_symlinks: bool,
        extra: i32,
    ) -> Result<Opened, FsError> {
        self.check(p, need)?;
        let fd = self.open_beneath(p, need, true, follow_final, no_symlinks, extra)?;
        let real = fdio::real_path(fd.as_fd())?;
        self.check(&real, need)?;
        Ok(Opened { fd, real })
    }

    /// Open the parent directory of `p` for a change to `p` (which needs `need`).
    /// The anchor must contain `p` strictly, so that the parent is beneath it.
    pub fn parent(&self, p: &Path, need: Access, no_symlinks: bool) -> Result<Parent, FsError> {
        self.check(p, need)?;
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            // `/` itself: nothing may change it.
            return Err(denied());
        };
        let fd = self.open_beneath_of(
            parent,
            self.anchors(p, need, false),
            true,
            no_symlinks,
            libc::O_DIRECTORY,
        )?;
        let real = fdio::real_path(fd.as_fd())?;
        let out = Parent {
            fd,
            real,
            name: name.to_os_string(),
        };
        self.check(&out.child(), need)?;
        Ok(out)
    }

    fn open_beneath(
        &self,
        p: &Path,
        need: Access,
        self_ok: bool,
        follow_final: bool,
        no_symlinks: bool,
        extra: i32,
    ) -> Result<OwnedFd, FsError> {
        self.open_beneath_of(
            p,
            self.anchors(p, need, self_ok),
            follow_final,
            no_symlinks,
            extra,
        )
    }

    fn open_beneath_of(
        &self,
        p: &Path,
        anchors: Vec<&Path>,
        follow_final: bool,
        no_symlinks: bool,
        extra: i32,
    ) -> Result<OwnedFd, FsError> {
        let mut resolve = libc::RESOLVE_NO_MAGICLINKS;
        if no_symlinks {
            resolve |= libc::RESOLVE_NO_SYMLINKS;
        }
        let mut flags = libc::O_PATH | extra;
        if !follow_final {
            flags |= libc::O_NOFOLLOW;
        }
        let map = |e: io::Error| -> FsError {
            if no_symlinks && e.raw_os_error() == Some(libc::ELOOP) {
                FsError::Symlink(display(p))
            } else {
                FsError::Io(e)
            }
        };
        let mut first_err: Option<FsError> = None;
        for anchor in anchors {
            let rel = p.strip_prefix(anchor).unwrap_or(Path::new(""));
            let r = if rel.as_os_str().is_empty() {
                // The entry path itself: roots are canonical (docs/protocol.md "Sandbox" step 4).
                fdio::openat2(libc::AT_FDCWD, anchor, flags, resolve, 0)
            } else {
                let root = match fdio::openat2(
                    libc::AT_FDCWD,
                    anchor,
                    libc::O_PATH | libc::O_DIRECTORY,
                    libc::RESOLVE_NO_MAGICLINKS,
                    0,
                ) {
                    Ok(fd) => fd,
                    Err(e) => {
                        // A missing root grants nothing; a broader one may still.
                        first_err.get_or_insert(FsError::Io(e));
                        continue;
                    }
                };
                let how = if anchor == Path::new("/") {
                    libc::RESOLVE_IN_ROOT
                } else {
                    libc::RESOLVE_BENEATH
                };
                fdio::openat2(root.as_raw_fd(), rel, flags, resolve | how, 0)
            };
            match r {
                Ok(fd) => return Ok(fd),
                // Resolution left this anchor's tree: try a broader one.
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => continue,
                Err(e) => return Err(map(e)),
            }
        }
        Err(first_err.unwrap_or_else(denied))
    }

    /// With followSymlinks false: a link in an existing component of `p` (the final
    /// one only when `final_too`) fails with the symlink error.
    pub fn refuse_symlinks(&self, p: &Path, final_too: bool) -> Result<(), FsError> {
        match self.open_beneath(p, Access::Read, true, false, true, 0) {
            Ok(fd) => {
                if final_too && fdio::metadata(fd.as_fd())?.file_type().is_symlink() {
                    return Err(FsError::Symlink(display(p)));
                }
                Ok(())
            }
            Err(e @ FsError::Symlink(_)) => Err(e),
            // Missing, or not readable: the operation reports its own error.
            Err(_) => Ok(()),
        }
    }

    /// Refuse a tree at `paths` (lexical and real spellings) that contains a
    /// narrowing path (docs/protocol.md "Sandboxed filesystem requests"): removing or copying it would touch a carve-out.
    pub fn refuse_narrowing_inside(&self, paths: &[&Path]) -> Result<(), FsError> {
        for e in self.policy.narrowing() {
            if paths.iter().any(|t| e.path.starts_with(t)) {
                return Err(denied());
            }
        }
        Ok(())
    }
}

/// `dir/target` for a link read in `dir`, normalised lexically.
pub fn link_target(dir: &Path, target: &Path) -> PathBuf {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        dir.join(target)
    };
    crate::protocol::paths::normalize(joined.as_os_str().as_encoded_bytes())
}
