//! `fs/walk`: breadth-first listing with depth, directory and entry limits. One
//! algorithm ([`walk_with`]) for the direct and the sandboxed path; each supplies
//! a [`DirSource`].

use super::FsError;
use crate::protocol::fs::{WalkEntry, WalkError, WalkKind, WalkOptions, WalkResult};
use crate::protocol::paths::to_uri;
use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const MAX_DEPTH: u64 = 64;
pub const MAX_DIRECTORIES: u64 = 10_000;
pub const MAX_ENTRIES: u64 = 50_000;

/// A file's identity: (device, inode).
pub type FileId = (u64, u64);

/// One directory entry as the walk sees it: whether it is a link, and what it (or
/// the directory it points to) is, when that could be read.
pub struct Seen {
    pub is_link: bool,
    /// (device, inode, is a directory) of the entry, or of its target for a link.
    pub target: Option<(u64, u64, bool)>,
}

/// Where the walk reads directories from: straight by path ([`Direct`]), or through
/// descriptors under a sandbox's checks (the codex-fs helper). The breadth-first
/// order, the limits, pruning and the loop check are [`walk_with`]'s alone.
pub trait DirSource {
    /// What a queued directory is reached by (for [`Direct`], its path).
    type Loc;
    /// A directory that has been read, for looking at its entries.
    type Dir;
    /// Open the root: where it is and its (device, inode), when it is a directory.
    fn root(&mut self, root: &Path) -> Result<(Self::Loc, Option<FileId>), FsError>;
    /// Read a directory: its entry names, sorted bytewise, or the error message to
    /// report for it.
    fn list(&mut self, loc: &Self::Loc) -> Result<(Self::Dir, Vec<OsString>), String>;
    /// Look at one entry; `None` skips it (it went away).
    fn entry(&self, dir: &Self::Dir, name: &OsStr) -> Option<Seen>;
    /// How to reach the subdirectory `name` (a link to one, when it is followed), or
    /// the error message to report at `shown`.
    fn child(
        &self,
        dir: &Self::Dir,
        loc: &Self::Loc,
        name: &OsStr,
        is_link: bool,
    ) -> Result<Self::Loc, String>;
}

/// `fs/walk` straight through the filesystem.
pub fn walk(root: &Path, o: &WalkOptions) -> Result<WalkResult, FsError> {
    walk_with(&mut Direct, root, o)
}

/// The exec-server's own view: paths as given, links followed by the kernel.
pub struct Direct;

impl DirSource for Direct {
    type Loc = PathBuf;
    type Dir = PathBuf;

    fn root(&mut self, root: &Path) -> Result<(PathBuf, Option<FileId>), FsError> {
        let meta = fs::metadata(root)?;
        Ok((
            root.to_path_buf(),
            meta.is_dir().then(|| (meta.dev(), meta.ino())),
        ))
    }

    fn list(&mut self, dir: &PathBuf) -> Result<(PathBuf, Vec<OsString>), String> {
        let mut names: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
            Err(e) => return Err(e.to_string()),
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok((dir.clone(), names))
    }

    fn entry(&self, dir: &PathBuf, name: &OsStr) -> Option<Seen> {
        let path = dir.join(name);
        let lmeta = fs::symlink_metadata(&path).ok()?;
        let is_link = lmeta.file_type().is_symlink();
        let target = if is_link {
            fs::metadata(&path).ok()
        } else {
            Some(lmeta)
        };
        Some(Seen {
            is_link,
            target: target.map(|m| (m.dev(), m.ino(), m.is_dir())),
        })
    }

    fn child(&self, dir: &PathBuf, _: &PathBuf, name: &OsStr, _: bool) -> Result<PathBuf, String> {
        Ok(dir.join(name))
    }
}

/// `fs/walk` over any [`DirSource`]: breadth first, entries of a directory in
/// bytewise order, each directory read once (by device and inode), within the
/// request's depth, directory and entry limits (refused above [`MAX_DEPTH`],
/// [`MAX_DIRECTORIES`], [`MAX_ENTRIES`]).
pub fn walk_with<S: DirSource>(
    src: &mut S,
    root: &Path,
    o: &WalkOptions,
) -> Result<WalkResult, FsError> {
    if o.max_depth > MAX_DEPTH || o.max_directories > MAX_DIRECTORIES || o.max_entries > MAX_ENTRIES
    {
        return Err(FsError::WalkLimits);
    }
    let (loc, id) = src.root(root)?;
    let Some(id) = id else {
        return Err(FsError::Io(io::Error::from_raw_os_error(libc::ENOTDIR)));
    };
    let prune = o.prune_hidden_directories.unwrap_or(false);
    let mut seen: HashSet<FileId> = HashSet::from([id]);
    // (path as listed, how to reach it, depth)
    let mut queue: VecDeque<(PathBuf, S::Loc, u64)> =
        VecDeque::from([(root.to_path_buf(), loc, 0)]);
    let mut out = WalkResult {
        entries: Vec::new(),
        errors: Vec::new(),
        truncated: false,
    };
    let mut dirs_read: u64 = 0;

    'walk: while let Some((dir, loc, depth)) = queue.pop_front() {
        // Only directories above maxDepth are read: their children are at most maxDepth.
        if depth >= o.max_depth {
            continue;
        }
        if dirs_read >= o.max_directories {
            out.truncated = true;
            break;
        }
        dirs_read += 1;
        let (handle, names) = match src.list(&loc) {
            Ok(x) => x,
            Err(message) => {
                out.errors.push(WalkError {
                    path: to_uri(&dir),
                    message,
                });
                continue;
            }
        };
        for name in names {
            let path = dir.join(&name);
            let Some(entry) = src.entry(&handle, &name) else {
                continue;
            };
            let is_dir = entry.target.is_some_and(|(_, _, d)| d);
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
            if is_dir && (!entry.is_link || o.follow_directory_symlinks) {
                let (dev, ino, _) = entry.target.expect("a directory has metadata");
                if !seen.insert((dev, ino)) {
                    continue;
                }
                match src.child(&handle, &loc, &name, entry.is_link) {
                    Ok(child) => queue.push_back((path, child, depth + 1)),
                    Err(message) => out.errors.push(WalkError {
                        path: to_uri(&path),
                        message,
                    }),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(depth: u64, dirs: u64, entries: u64) -> WalkOptions {
        WalkOptions {
            max_depth: depth,
            max_directories: dirs,
            max_entries: entries,
            follow_directory_symlinks: false,
            prune_hidden_directories: None,
        }
    }

    #[test]
    fn limits_over_the_maximum_are_refused() {
        assert!(matches!(
            walk(Path::new("/"), &opts(65, 1, 1)),
            Err(FsError::WalkLimits)
        ));
        assert!(matches!(
            walk(Path::new("/"), &opts(1, 10_001, 1)),
            Err(FsError::WalkLimits)
        ));
        assert!(matches!(
            walk(Path::new("/"), &opts(1, 1, 50_001)),
            Err(FsError::WalkLimits)
        ));
    }

    #[test]
    fn breadth_first_sorted_with_depth() {
        let t = std::env::temp_dir().join(format!("tether-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        fs::create_dir_all(t.join("b/deep/deeper")).unwrap();
        fs::write(t.join("a.txt"), "").unwrap();
        fs::write(t.join("b/x"), "").unwrap();
        fs::create_dir_all(t.join(".hidden")).unwrap();
        let r = walk(&t, &opts(2, 100, 100)).unwrap();
        let names: Vec<String> = r
            .entries
            .iter()
            .map(|e| e.path.trim_start_matches(&to_uri(&t)).to_string())
            .collect();
        assert_eq!(names, ["/.hidden", "/a.txt", "/b", "/b/deep", "/b/x"]);
        assert!(!r.truncated);
        let mut o = opts(2, 100, 100);
        o.prune_hidden_directories = Some(true);
        assert_eq!(walk(&t, &o).unwrap().entries.len(), 4);
        let r = walk(&t, &opts(5, 100, 2)).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert!(r.truncated);
        let r = walk(&t, &opts(5, 1, 100)).unwrap();
        assert_eq!(r.entries.len(), 3);
        assert!(r.truncated);
        fs::remove_dir_all(&t).unwrap();
    }
}
