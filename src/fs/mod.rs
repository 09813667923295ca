//! The filesystem RPCs (docs/protocol.md "Filesystem"). Requests without a
//! sandbox, or with one that allows what they do, run in the server itself
//! (blocking work on the blocking pool); the others run in the `codex-fs` helper
//! ([`sandboxed`], docs/protocol.md "Sandboxed filesystem requests"). Handles and
//! watches belong to the connection.

pub mod fdio;
pub mod handles;
pub mod mounts;
pub mod ops;
pub mod sandboxed;
pub mod tree;
pub mod walk;
pub mod watch;

use crate::protocol::paths::PathError;
use std::io;
use std::path::{Path, PathBuf};

/// Largest file `fs/readFile` returns.
pub const MAX_READ_FILE: u64 = 536_870_912;
/// Most entries `fs/readDirectory` returns.
pub const MAX_DIR_ENTRIES: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An OS error; the message is the OS text without the path.
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}")]
    InvalidParams(String),
    #[error("path `{0}` is not a file")]
    NotAFile(String),
    #[error("path `{0}` contains a symbolic link")]
    Symlink(String),
    #[error("file is too large to read: limit is {MAX_READ_FILE} bytes")]
    TooLarge,
    #[error("fs/writeFile requires valid base64 dataBase64: {0}")]
    BadBase64(String),
    #[error("fs/copy requires recursive: true when sourcePath is a directory")]
    CopyNeedsRecursive,
    #[error("fs/copy cannot copy a directory to itself or one of its descendants")]
    CopyIntoItself,
    #[error("fs/copy only supports regular files, directories, and symlinks")]
    CopyUnsupported,
    #[error("fs/remove refuses to remove the root directory")]
    RemoveRoot,
    #[error("fs/remove refuses to remove mount point `{0}`")]
    RemoveMountPoint(String),
    #[error("fs/remove refuses to cross into another filesystem at `{0}`")]
    RemoveCrossesMount(String),
    #[error("fs/copy refuses to cross into another filesystem at `{0}`")]
    CopyCrossesMount(String),
    #[error(
        "filesystem walk limits exceed maximums: depth={}, directories={}, entries={}",
        walk::MAX_DEPTH,
        walk::MAX_DIRECTORIES,
        walk::MAX_ENTRIES
    )]
    WalkLimits,
    #[error("fs/readDirectory returned {0} entries; limit is {MAX_DIR_ENTRIES}")]
    TooManyEntries(usize),
    #[error("file read handle ID must not exceed {} bytes", handles::MAX_HANDLE_ID)]
    HandleTooLong,
    #[error("file read handle ID must not be empty")]
    HandleEmpty,
    #[error("file handle `{0}` already exists")]
    HandleExists(String),
    #[error(
        "at most {} file reads may be open per connection",
        handles::MAX_HANDLES
    )]
    TooManyHandles,
    #[error("file read block length must be between 1 and {}", handles::MAX_BLOCK)]
    BlockLength,
    #[error("unknown file handle `{0}`")]
    UnknownHandle(String),
    #[error("file handle `{0}` is not open for reading")]
    NotForReading(String),
    #[error("file handle `{0}` is not open for writing")]
    NotForWriting(String),
    #[error("at most {} watches may be active per connection", watch::MAX_WATCHES)]
    TooManyWatches,
    #[error("fs/watchMissing accepts at most {} paths", watch::MAX_WATCH_PATHS)]
    TooManyWatchPaths,
    /// The `codex-fs` helper answered with an error: relayed with its code and
    /// text as the helper's own mapping (errors.rs) made them (docs/protocol.md
    /// "Sandboxed filesystem requests").
    #[error("{}", .0.message)]
    HelperAnswer(crate::rpc::error::RpcError),
    /// The helper refused its request before doing it (exit status 2).
    #[error("{0}")]
    HelperRefused(String),
    /// Running the helper, or encoding or decoding its messages, failed.
    #[error("{0}")]
    HelperFailed(String),
    /// A sandbox context refused with its exact message (-32600).
    #[error("{0}")]
    SandboxContext(String),
    #[error("sandbox cannot be enforced: {0}")]
    SandboxUnenforceable(String),
}

/// A path for messages: native, non-UTF-8 bytes replaced.
pub fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Where a filesystem request runs (docs/protocol.md "Sandboxed filesystem requests").
pub enum Route {
    /// The server does it with its own rights.
    Direct,
    /// It needs the `codex-fs` helper under this policy.
    Helper(crate::sandbox::policy::Resolved),
}

/// Decide the route of a request; `write` for write-class operations.
pub fn route(sandbox: &Option<serde_json::Value>, write: bool) -> Result<Route, FsError> {
    use crate::sandbox::policy::{parse, Policy, PolicyError};
    let ctx = parse(sandbox.as_ref()).map_err(|e| match e {
        PolicyError::Params(m) => FsError::InvalidParams(m),
        PolicyError::NeedsCwd => FsError::SandboxContext(e.to_string()),
        PolicyError::Unenforceable(m) => FsError::SandboxUnenforceable(m),
    })?;
    let Some(ctx) = ctx else {
        return Ok(Route::Direct);
    };
    match ctx.policy {
        Policy::Disabled | Policy::External { .. } | Policy::Unrestricted { .. } => {
            Ok(Route::Direct)
        }
        Policy::Restricted(r) if r.full_write() => Ok(Route::Direct),
        Policy::Restricted(r) if !write && r.full_read() => Ok(Route::Direct),
        Policy::Restricted(r) => Ok(Route::Helper(r)),
    }
}

/// With `followSymlinks: false`: fail if any existing component of `path` is a
/// symbolic link; the final component is checked only when `final_too`.
pub fn refuse_symlinks(path: &Path, final_too: bool) -> Result<(), FsError> {
    let mut cur = PathBuf::from("/");
    let comps: Vec<_> = path.components().skip(1).collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let last = i + 1 == comps.len();
        if last && !final_too {
            break;
        }
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(FsError::Symlink(display(path))),
            Ok(_) => {}
            // Missing: nothing below it can be a link.
            Err(_) => break,
        }
    }
    Ok(())
}

/// Run blocking filesystem work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(FsError::Io(io::Error::other(format!(
            "filesystem task failed: {e}"
        ))))
    })
}

use crate::protocol::fs::*;

/// The result of `fs/readFile` on its way out.
pub enum ReadFileOut {
    /// The data, base64-encoded.
    Base64(String),
    /// A regular file of this many bytes, to be encoded while it is written.
    Stream(std::fs::File, u64),
}

use crate::protocol::paths::to_uri;
use crate::protocol::EmptyResult;
use crate::rpc::outbound::Outbound;

/// The filesystem side of one connection: its handles and watches.
pub struct FsService {
    pub handles: handles::Handles,
    pub watches: watch::Watches,
    helper: sandboxed::HelperRunner,
}

/// The params of a request for the helper: paths as URIs, `sandbox` replaced later.
fn helper_params<T: serde::Serialize>(p: &T) -> Result<serde_json::Value, FsError> {
    serde_json::to_value(p).map_err(|e| {
        FsError::HelperFailed(format!(
            "failed to encode or decode fs sandbox helper message: {e}"
        ))
    })
}

fn uri_arg(p: &Path) -> crate::protocol::paths::PathArg {
    crate::protocol::paths::PathArg(to_uri(p))
}

impl FsService {
    pub fn new(out: Outbound, spawner: crate::spawn::spawner::Spawner) -> Self {
        FsService {
            handles: handles::Handles::default(),
            watches: watch::Watches::new(out),
            helper: sandboxed::HelperRunner::new(spawner),
        }
    }

    /// Run `method` in the helper with `params`.
    async fn in_helper<T: serde::de::DeserializeOwned, P: serde::Serialize>(
        &self,
        method: &str,
        params: &P,
        policy: &crate::sandbox::policy::Resolved,
    ) -> Result<T, FsError> {
        self.helper
            .run(method, helper_params(params)?, policy)
            .await
    }

    /// `fs/readFile` as the dispatcher sends it: the base64 text, or a large file
    /// opened for the writer to stream (see [`ops::FileData`]).
    pub async fn read_file_out(&self, mut p: ReadFileParams) -> Result<ReadFileOut, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            let res: ReadFileResult = self.in_helper("fs/readFile", &p, &r).await?;
            return Ok(ReadFileOut::Base64(res.data_base64));
        }
        let follow = p.follow_symlinks.unwrap_or(true);
        blocking(move || {
            Ok(match ops::read_file_data(&path, follow)? {
                ops::FileData::Whole(data) => {
                    ReadFileOut::Base64(crate::protocol::bytes::encode(&data))
                }
                ops::FileData::Stream(file, len) => ReadFileOut::Stream(file, len),
            })
        })
        .await
    }

    pub async fn read_file(&self, mut p: ReadFileParams) -> Result<ReadFileResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/readFile", &p, &r).await;
        }
        let follow = p.follow_symlinks.unwrap_or(true);
        blocking(move || {
            let data = ops::read_file(&path, follow)?;
            Ok(ReadFileResult {
                data_base64: crate::protocol::bytes::encode(&data),
            })
        })
        .await
    }

    pub async fn write_file(&self, mut p: WriteFileParams) -> Result<EmptyResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, true)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/writeFile", &p, &r).await;
        }
        let follow = p.follow_symlinks.unwrap_or(true);
        let b64 = p.data_base64;
        blocking(move || {
            let data = crate::protocol::bytes::decode(&b64)
                .map_err(|e| FsError::BadBase64(e.to_string()))?;
            ops::write_file(&path, &data, follow)?;
            Ok(EmptyResult {})
        })
        .await
    }

    pub async fn create_directory(
        &self,
        mut p: CreateDirectoryParams,
    ) -> Result<EmptyResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, true)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/createDirectory", &p, &r).await;
        }
        let recursive = p.recursive.unwrap_or(true);
        let follow = p.follow_symlinks.unwrap_or(true);
        blocking(move || ops::create_directory(&path, recursive, follow).map(|()| EmptyResult {}))
            .await
    }

    pub async fn get_metadata(&self, mut p: PathParams) -> Result<Metadata, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/getMetadata", &p, &r).await;
        }
        let follow = p.follow_symlinks.unwrap_or(true);
        blocking(move || ops::get_metadata(&path, follow)).await
    }

    pub async fn read_directory(&self, mut p: PathParams) -> Result<ReadDirectoryResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/readDirectory", &p, &r).await;
        }
        blocking(move || ops::read_directory(&path).map(|entries| ReadDirectoryResult { entries }))
            .await
    }

    pub async fn remove(&self, mut p: RemoveParams) -> Result<EmptyResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, true)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/remove", &p, &r).await;
        }
        let (recursive, force) = (p.recursive.unwrap_or(true), p.force.unwrap_or(true));
        let follow = p.follow_symlinks.unwrap_or(true);
        blocking(move || ops::remove(&path, recursive, force, follow).map(|()| EmptyResult {}))
            .await
    }

    pub async fn copy(&self, mut p: CopyParams) -> Result<EmptyResult, FsError> {
        let src = p.source_path.to_path()?;
        let dst = p.destination_path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, true)? {
            p.source_path = uri_arg(&src);
            p.destination_path = uri_arg(&dst);
            return self.in_helper("fs/copy", &p, &r).await;
        }
        blocking(move || ops::copy(&src, &dst, p.recursive).map(|()| EmptyResult {})).await
    }

    pub async fn canonicalize(&self, mut p: PathParams) -> Result<CanonicalizeResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/canonicalize", &p, &r).await;
        }
        blocking(move || ops::canonicalize(&path).map(|r| CanonicalizeResult { path: to_uri(&r) }))
            .await
    }

    pub async fn walk(&self, mut p: WalkParams) -> Result<WalkResult, FsError> {
        let path = p.path.to_path()?;
        if let Route::Helper(r) = route(&p.sandbox, false)? {
            p.path = uri_arg(&path);
            return self.in_helper("fs/walk", &p, &r).await;
        }
        blocking(move || walk::walk(&path, &p.options)).await
    }

    pub async fn open(&self, p: OpenParams) -> Result<HandleParams, FsError> {
        let path = p.path.to_path()?;
        let write = p.mode == Some(OpenMode::Replace);
        if let Route::Helper(r) = route(&p.sandbox, write)? {
            // The id and a free slot are checked first: a refused handle must not
            // create or truncate the file.
            self.handles.check_new(&p.handle_id)?;
            let params = OpenParams {
                handle_id: p.handle_id.clone(),
                path: uri_arg(&path),
                mode: p.mode,
                sandbox: None,
            };
            let fd = self
                .helper
                .open(helper_params(&params)?, &r)
                .await?;
            self.handles.insert(
                p.handle_id.clone(),
                std::fs::File::from(fd),
                p.mode.unwrap_or_default(),
            )?;
            return Ok(HandleParams {
                handle_id: p.handle_id,
            });
        }
        self.handles
            .open(p.handle_id.clone(), path, p.mode.unwrap_or_default())
            .await?;
        Ok(HandleParams {
            handle_id: p.handle_id,
        })
    }

    pub async fn read_block(&self, p: ReadBlockParams) -> Result<ReadBlockResult, FsError> {
        let (data, eof) = self
            .handles
            .read_block(&p.handle_id, p.offset, p.len)
            .await?;
        Ok(ReadBlockResult {
            chunk: crate::protocol::bytes::ByteChunk(data),
            eof,
        })
    }

    pub async fn write_block(&self, p: WriteBlockParams) -> Result<EmptyResult, FsError> {
        self.handles
            .write_block(&p.handle_id, p.offset, p.chunk.0)
            .await?;
        Ok(EmptyResult {})
    }

    pub fn close(&self, p: HandleParams) -> EmptyResult {
        self.handles.close(&p.handle_id);
        EmptyResult {}
    }

    /// Set up a watch; the caller arms it after queueing the response.
    pub fn watch_missing(&self, p: WatchMissingParams) -> Result<WatchMissingResult, FsError> {
        let paths = p
            .missing
            .iter()
            .map(|m| m.to_path())
            .collect::<Result<Vec<_>, _>>()?;
        self.watches.watch(p.watch_id, paths)?;
        Ok(WatchMissingResult { watching: true })
    }
}
