//! `fs/walk`: breadth-first listing with depth, directory and entry limits.

use super::FsError;
use crate::protocol::fs::{WalkEntry, WalkError, WalkKind, WalkOptions, WalkResult};
use crate::protocol::paths::to_uri;
use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const MAX_DEPTH: u64 = 64;
pub const MAX_DIRECTORIES: u64 = 10_000;
pub const MAX_ENTRIES: u64 = 50_000;

pub fn walk(root: &Path, o: &WalkOptions) -> Result<WalkResult, FsError> {
    if o.max_depth > MAX_DEPTH || o.max_directories > MAX_DIRECTORIES || o.max_entries > MAX_ENTRIES
    {
        return Err(FsError::WalkLimits);
    }
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(FsError::Io(io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let prune = o.prune_hidden_directories.unwrap_or(false);
    let mut seen: HashSet<(u64, u64)> = HashSet::from([(meta.dev(), meta.ino())]);
    let mut queue: VecDeque<(PathBuf, u64)> = VecDeque::from([(root.to_path_buf(), 0)]);
    let mut out = WalkResult {
        entries: Vec::new(),
        errors: Vec::new(),
        truncated: false,
    };
    let mut dirs_read: u64 = 0;

    'walk: while let Some((dir, depth)) = queue.pop_front() {
        // Only directories above maxDepth are read: their children are at most maxDepth.
        if depth >= o.max_depth {
            continue;
        }
        if dirs_read >= o.max_directories {
            out.truncated = true;
            break;
        }
        dirs_read += 1;
        let mut names: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
            Err(e) => {
                out.errors.push(WalkError {
                    path: to_uri(&dir),
                    message: e.to_string(),
                });
                continue;
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let Ok(lmeta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let is_link = lmeta.file_type().is_symlink();
            let target = if is_link {
                fs::metadata(&path).ok()
            } else {
                Some(lmeta)
            };
            let is_dir = target.as_ref().is_some_and(|m| m.is_dir());
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
                let m = target.expect("a directory has metadata");
                if seen.insert((m.dev(), m.ino())) {
                    queue.push_back((path, depth + 1));
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
