//! The path-based methods: readFile, writeFile, createDirectory, getMetadata,
//! readDirectory, remove, copy, canonicalize.

use super::fdio;
use super::mounts::{self, TreeOp};
use super::tree;
use super::{display, refuse_symlinks, FsError, MAX_DIR_ENTRIES, MAX_READ_FILE};
use crate::protocol::fs::{DirEntry, Metadata};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn open_flags(follow: bool) -> i32 {
    libc::O_NONBLOCK | libc::O_CLOEXEC | if follow { 0 } else { libc::O_NOFOLLOW }
}

/// Map ELOOP from O_NOFOLLOW on the final component to the symlink error.
fn nofollow_err(e: io::Error, follow: bool, path: &Path) -> FsError {
    if !follow && e.raw_os_error() == Some(libc::ELOOP) {
        FsError::Symlink(display(path))
    } else {
        FsError::Io(e)
    }
}

/// Refuse what is not a regular file before opening it (opening a socket fails
/// with ENXIO, and a FIFO must never be waited on).
fn require_file(path: &Path, follow: bool) -> Result<(), FsError> {
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match meta {
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() => {
            Err(FsError::NotAFile(display(path)))
        }
        _ => Ok(()),
    }
}

pub fn read_file(path: &Path, follow: bool) -> Result<Vec<u8>, FsError> {
    read_regular(open_regular(path, follow)?, path)
}

/// Files at least this large are streamed by `fs/readFile` ([`FileData::Stream`]).
pub const STREAM_MIN: u64 = 1 << 20;

/// What `fs/readFile` answers with: a small file read whole, or a large regular
/// file opened and checked, with its size, for the writer to read and encode as
/// it writes the result (never holding the file or its encoding whole).
pub enum FileData {
    Whole(Vec<u8>),
    Stream(File, u64),
}

/// Open `path` for `fs/readFile`: every check of [`read_file`], then a file of at
/// least [`STREAM_MIN`] bytes is handed back open instead of read.
pub fn read_file_data(path: &Path, follow: bool) -> Result<FileData, FsError> {
    let file = open_regular(path, follow)?;
    let len = check_regular(&file, path)?;
    if len >= STREAM_MIN {
        return Ok(FileData::Stream(file, len));
    }
    read_checked(file, len).map(FileData::Whole)
}

fn open_regular(path: &Path, follow: bool) -> Result<File, FsError> {
    if !follow {
        refuse_symlinks(path, true)?;
    }
    require_file(path, follow)?;
    OpenOptions::new()
        .read(true)
        .custom_flags(open_flags(follow))
        .open(path)
        .map_err(|e| nofollow_err(e, follow, path))
}

/// Read an opened file to its end: a regular file only, within the size limit.
pub fn read_regular(file: File, path: &Path) -> Result<Vec<u8>, FsError> {
    let len = check_regular(&file, path)?;
    read_checked(file, len)
}

/// The size of an opened file that is regular and within the size limit.
fn check_regular(file: &File, path: &Path) -> Result<u64, FsError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FsError::NotAFile(display(path)));
    }
    if meta.len() > MAX_READ_FILE {
        return Err(FsError::TooLarge);
    }
    Ok(meta.len())
}

/// Read a checked file (of `len` bytes when opened) to its end.
fn read_checked(file: File, len: u64) -> Result<Vec<u8>, FsError> {
    // Read to end of file (files in /proc report size 0), never past the limit.
    let mut data = Vec::with_capacity(len as usize);
    file.take(MAX_READ_FILE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_READ_FILE {
        return Err(FsError::TooLarge);
    }
    Ok(data)
}

pub fn write_file(path: &Path, data: &[u8], follow: bool) -> Result<(), FsError> {
    if !follow {
        refuse_symlinks(path, true)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .custom_flags(open_flags(follow))
        .open(path)
        .map_err(|e| nofollow_err(e, follow, path))?;
    file.write_all(data)?;
    Ok(())
}

pub fn create_directory(path: &Path, recursive: bool, follow: bool) -> Result<(), FsError> {
    if !follow {
        refuse_symlinks(path, true)?;
    }
    if recursive {
        fs::create_dir_all(path)?;
        // create_dir_all accepts an existing directory only; an existing file fails
        // with EEXIST, as the protocol wants.
        Ok(())
    } else {
        Ok(fs::create_dir(path)?)
    }
}

fn ms(t: io::Result<SystemTime>) -> i64 {
    t.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn get_metadata(path: &Path, follow: bool) -> Result<Metadata, FsError> {
    let lmeta = fs::symlink_metadata(path)?;
    let is_symlink = lmeta.file_type().is_symlink();
    if !follow {
        refuse_symlinks(path, false)?;
    }
    let meta = if follow && is_symlink {
        fs::metadata(path)?
    } else {
        lmeta
    };
    Ok(metadata_result(is_symlink, &meta))
}

/// The `fs/getMetadata` result for a final component (`is_symlink`) and the
/// metadata of what it names.
pub fn metadata_result(is_symlink: bool, meta: &fs::Metadata) -> Metadata {
    Metadata {
        is_directory: meta.is_dir(),
        is_file: meta.is_file(),
        is_symlink,
        size: meta.len(),
        created_at_ms: ms(meta.created()),
        modified_at_ms: ms(meta.modified()),
    }
}

pub fn read_directory(path: &Path) -> Result<Vec<DirEntry>, FsError> {
    let mut entries = Vec::new();
    for ent in fs::read_dir(path)? {
        let ent = ent?;
        let name = ent.file_name();
        let is_symlink = ent.file_type().is_ok_and(|t| t.is_symlink());
        let (is_directory, is_file) = match fs::metadata(ent.path()) {
            Ok(m) => (m.is_dir(), m.is_file()),
            Err(_) => (false, false),
        };
        entries.push((name, is_directory, is_file, is_symlink));
    }
    sorted_entries(entries)
}

/// `(name, isDirectory, isFile, isSymlink)` tuples → the sorted, limited result.
pub fn sorted_entries(
    mut entries: Vec<(std::ffi::OsString, bool, bool, bool)>,
) -> Result<Vec<DirEntry>, FsError> {
    if entries.len() > MAX_DIR_ENTRIES {
        return Err(FsError::TooManyEntries(entries.len()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries
        .into_iter()
        .map(|(name, is_directory, is_file, is_symlink)| DirEntry {
            file_name: name.to_string_lossy().into_owned(),
            is_directory,
            is_file,
            is_symlink,
        })
        .collect())
}

/// `fs/remove`: the entry is examined and removed through its parent directory
/// (opened once, links on the way followed); never `/`, never a mount point, and
/// a recursive removal never crosses into another filesystem ([`mounts`]).
pub fn remove(path: &Path, recursive: bool, force: bool, follow: bool) -> Result<(), FsError> {
    if !follow {
        refuse_symlinks(path, false)?;
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(FsError::RemoveRoot);
    };
    let missing = |e: io::Error| -> Result<(), FsError> {
        if e.kind() == io::ErrorKind::NotFound && force {
            Ok(())
        } else {
            Err(e.into())
        }
    };
    let dir = match fs_open_dir(parent, libc::O_PATH) {
        Ok(d) => d,
        Err(e) => return missing(e),
    };
    let st = match mounts::statx_at(dir.as_fd(), name) {
        Ok(st) => st,
        Err(e) => return missing(e),
    };
    let parent_dev = mounts::statx_at(dir.as_fd(), OsStr::new(""))?.dev;
    mounts::check_remove_target(path, &st, parent_dev)?;
    let r = if st.is_dir() {
        if recursive {
            let top = match fdio::openat(
                dir.as_fd(),
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(t) => t,
                Err(e) => return missing(e),
            };
            mounts::scan(top.as_fd(), path, TreeOp::Remove)?;
            mounts::remove_tree(top.as_fd(), path)?;
        }
        fdio::unlink_at(dir.as_fd(), name, true)
    } else {
        fdio::unlink_at(dir.as_fd(), name, false)
    };
    r.or_else(missing)
}

/// Open a directory by path (links followed), with `flags` added (`O_PATH` makes
/// it a descriptor that needs no read permission).
fn fs_open_dir(p: &Path, flags: i32) -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | flags)
            .open(p)?,
    ))
}

/// Resolve links in the longest existing prefix of `path`, keep the rest as is.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(&existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

pub fn copy(src: &Path, dst: &Path, recursive: bool) -> Result<(), FsError> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src)?;
        std::os::unix::fs::symlink(target, dst)?;
        return Ok(());
    }
    if ft.is_dir() && !recursive {
        return Err(FsError::CopyNeedsRecursive);
    }
    if !ft.is_dir() && !ft.is_file() {
        return Err(FsError::CopyUnsupported);
    }
    let real_src = fs::canonicalize(src)?;
    let real_dst = resolve_existing(dst);
    if real_dst == real_src || (ft.is_dir() && real_dst.starts_with(&real_src)) {
        return Err(FsError::CopyIntoItself);
    }
    if ft.is_file() {
        fs::copy(src, dst)?;
        return Ok(());
    }
    // The whole source is checked before the destination is created.
    let top = fs_open_dir(src, libc::O_NOFOLLOW)?;
    mounts::scan(top.as_fd(), src, TreeOp::Copy)?;
    fs::create_dir(dst)?;
    let to = fs_open_dir(dst, libc::O_NOFOLLOW)?;
    tree::copy_tree(&|_, _| Ok(()), top.as_fd(), src, to.as_fd(), dst, 0)
}

pub fn canonicalize(path: &Path) -> Result<PathBuf, FsError> {
    Ok(fs::canonicalize(path)?)
}

/// Open for `fs/open` mode read: a regular file only.
pub fn open_read(path: &Path) -> Result<File, FsError> {
    require_file(path, true)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(open_flags(true))
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(FsError::NotAFile(display(path)));
    }
    Ok(file)
}

/// Open for `fs/open` mode replace: create or truncate.
pub fn open_replace(path: &Path) -> Result<File, FsError> {
    if let Ok(m) = fs::metadata(path) {
        if !m.is_file() {
            return Err(FsError::NotAFile(display(path)));
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .custom_flags(open_flags(true))
        .open(path)?;
    Ok(file)
}
