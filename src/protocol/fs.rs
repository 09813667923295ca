//! `fs/*` params and results (docs/protocol.md "Filesystem").

use super::bytes::ByteChunk;
use super::paths::PathArg;
use serde::{Deserialize, Serialize};

pub type Sandbox = Option<serde_json::Value>;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileParams {
    pub path: PathArg,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResult {
    pub data_base64: String,
}

/// `dataBase64` stays a string here: invalid base64 is -32600, not -32602.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFileParams {
    pub path: PathArg,
    pub data_base64: String,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDirectoryParams {
    pub path: PathArg,
    #[serde(default)]
    pub recursive: Option<bool>,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathParams {
    pub path: PathArg,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
    pub size: u64,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirEntry {
    pub file_name: String,
    pub is_directory: bool,
    pub is_file: bool,
    pub is_symlink: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReadDirectoryResult {
    pub entries: Vec<DirEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveParams {
    pub path: PathArg,
    #[serde(default)]
    pub recursive: Option<bool>,
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyParams {
    pub source_path: PathArg,
    pub destination_path: PathArg,
    pub recursive: bool,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CanonicalizeResult {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalkOptions {
    pub max_depth: u64,
    pub max_directories: u64,
    pub max_entries: u64,
    pub follow_directory_symlinks: bool,
    #[serde(default)]
    pub prune_hidden_directories: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalkParams {
    pub path: PathArg,
    pub options: WalkOptions,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WalkKind {
    File,
    Directory,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WalkEntry {
    pub path: String,
    pub kind: WalkKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WalkError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WalkResult {
    pub entries: Vec<WalkEntry>,
    pub errors: Vec<WalkError>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenMode {
    #[default]
    Read,
    Replace,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    pub handle_id: String,
    pub path: PathArg,
    #[serde(default)]
    pub mode: Option<OpenMode>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleParams {
    pub handle_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub len: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReadBlockResult {
    pub chunk: ByteChunk,
    pub eof: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteBlockParams {
    pub handle_id: String,
    pub offset: u64,
    pub chunk: ByteChunk,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchMissingParams {
    pub watch_id: i64,
    pub missing: Vec<PathArg>,
    #[serde(default)]
    pub present: Option<String>,
    #[serde(default)]
    pub sandbox: Sandbox,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WatchMissingResult {
    pub watching: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingChangedParams {
    pub watch_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_members_may_be_absent_or_null() {
        let p: RemoveParams =
            serde_json::from_str(r#"{"path":"/x","recursive":null,"sandbox":null}"#).unwrap();
        assert_eq!(p.recursive, None);
        assert_eq!(p.force, None);
        let p: OpenParams = serde_json::from_str(r#"{"handleId":"h","path":"/x"}"#).unwrap();
        assert_eq!(p.mode, None);
    }

    #[test]
    fn copy_requires_recursive() {
        assert!(serde_json::from_str::<CopyParams>(
            r#"{"sourcePath":"/a","destinationPath":"/b"}"#
        )
        .is_err());
    }

    #[test]
    fn metadata_member_order() {
        let m = Metadata {
            is_directory: true,
            is_file: false,
            is_symlink: false,
            size: 1,
            created_at_ms: 2,
            modified_at_ms: 3,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"isDirectory":true,"isFile":false,"isSymlink":false,"size":1,"createdAtMs":2,"modifiedAtMs":3}"#
        );
    }

    #[test]
    fn walk_kind_spelling() {
        let e = WalkEntry {
            path: "file:///a".into(),
            kind: WalkKind::Directory,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"path":"file:///a","kind":"directory"}"#
        );
    }
}
