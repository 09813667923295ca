//! File handles (docs/protocol.md "Filesystem"): `fs/open`, `fs/readBlock`, `fs/writeBlock`,
//! `fs/close`. A handle keeps the opened file, so renames and replacements of the
//! path do not affect it.

use super::{blocking, ops, FsError};
use crate::protocol::fs::OpenMode;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const MAX_HANDLES: usize = 128;
pub const MAX_HANDLE_ID: usize = 32;
pub const MAX_BLOCK: u64 = 1_048_576;

struct Handle {
    file: Arc<File>,
    mode: OpenMode,
}

#[derive(Default)]
pub struct Handles {
    map: Mutex<HashMap<String, Handle>>,
}

impl Handles {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_id(id: &str) -> Result<(), FsError> {
        if id.is_empty() {
            return Err(FsError::HandleEmpty);
        }
        if id.len() > MAX_HANDLE_ID {
            return Err(FsError::HandleTooLong);
        }
        Ok(())
    }

    fn check_room(&self, id: &str) -> Result<(), FsError> {
        let map = self.lock();
        if map.contains_key(id) {
            return Err(FsError::HandleExists(id.to_string()));
        }
        if map.len() >= MAX_HANDLES {
            return Err(FsError::TooManyHandles);
        }
        Ok(())
    }

    /// Whether `id` can name a new handle now (its length, not in use, a free slot).
    pub fn check_new(&self, id: &str) -> Result<(), FsError> {
        Self::check_id(id)?;
        self.check_room(id)
    }

    pub async fn open(&self, id: String, path: PathBuf, mode: OpenMode) -> Result<(), FsError> {
        self.check_new(&id)?;
        let file = blocking(move || match mode {
            OpenMode::Read => ops::open_read(&path),
            OpenMode::Replace => ops::open_replace(&path),
        })
        .await?;
        self.insert(id, file, mode)
    }

    /// Keep an opened `file` as handle `id` (checked again: a concurrent open may
    /// have taken the id or the last slot).
    pub fn insert(&self, id: String, file: File, mode: OpenMode) -> Result<(), FsError> {
        self.check_new(&id)?;
        self.lock().insert(
            id,
            Handle {
                file: Arc::new(file),
                mode,
            },
        );
        Ok(())
    }

    /// The file of handle `id`, opened for `want`. A handle used in the wrong
    /// mode is forgotten, as after any failed block call.
    fn get(&self, id: &str, want: OpenMode) -> Result<Arc<File>, FsError> {
        let mut map = self.lock();
        let h = map
            .get(id)
            .ok_or_else(|| FsError::UnknownHandle(id.to_string()))?;
        if h.mode != want {
            map.remove(id);
            return Err(match want {
                OpenMode::Read => FsError::NotForReading(id.to_string()),
                OpenMode::Replace => FsError::NotForWriting(id.to_string()),
            });
        }
        Ok(h.file.clone())
    }

    /// Up to `len` bytes at `offset`, and whether the block reaches end of file.
    pub async fn read_block(
        &self,
        id: &str,
        offset: u64,
        len: u64,
    ) -> Result<(Vec<u8>, bool), FsError> {
        if !(1..=MAX_BLOCK).contains(&len) {
            return Err(FsError::BlockLength);
        }
        let file = self.get(id, OpenMode::Read)?;
        let held = file.clone();
        let r = blocking(move || {
            let mut buf = vec![0u8; len as usize];
            let mut got = 0usize;
            while got < buf.len() {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            buf.truncate(got);
            let size = file.metadata()?.len();
            Ok((buf, offset + got as u64 >= size))
        })
        .await;
        self.forget_on_error(id, &held, r)
    }

    pub async fn write_block(&self, id: &str, offset: u64, data: Vec<u8>) -> Result<(), FsError> {
        let file = self.get(id, OpenMode::Replace)?;
        let held = file.clone();
        let r = blocking(move || Ok(file.write_all_at(&data, offset)?)).await;
        self.forget_on_error(id, &held, r)
    }

    /// After a failed block call the handle is gone (docs/protocol.md "File
    /// handles"), unless `id` names another file by now (closed and reopened).
    fn forget_on_error<T>(
        &self,
        id: &str,
        file: &Arc<File>,
        r: Result<T, FsError>,
    ) -> Result<T, FsError> {
        if r.is_err() {
            let mut map = self.lock();
            if map.get(id).is_some_and(|h| Arc::ptr_eq(&h.file, file)) {
                map.remove(id);
            }
        }
        r
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}
