//! The one place that turns typed errors into JSON-RPC codes (docs/protocol.md
//! "Transport"). These are the `From` conversions into [`RpcError`], which lives
//! in `rpc/`; no service names a code itself.

use crate::envconfig::EnvConfigError;
use crate::fs::FsError;
use crate::http::HttpError;
use crate::process::ProcessError;
use crate::protocol::codes;
use crate::protocol::paths::PathError;
use crate::rpc::error::RpcError;
use crate::sandbox::policy::PolicyError;
use crate::tools::ToolsError;

impl From<serde_json::Error> for RpcError {
    /// Params that do not decode: -32602 with the decoder's text.
    fn from(e: serde_json::Error) -> Self {
        RpcError::invalid_params(e.to_string())
    }
}

impl From<PathError> for RpcError {
    fn from(e: PathError) -> Self {
        let code = match e {
            PathError::Host(_) => codes::INVALID_REQUEST,
            _ => codes::INVALID_PARAMS,
        };
        RpcError::new(code, e.to_string())
    }
}

impl From<PolicyError> for RpcError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Params(m) => RpcError::new(codes::INVALID_PARAMS, m),
            PolicyError::NeedsCwd | PolicyError::Unenforceable(_) => {
                RpcError::new(codes::INVALID_REQUEST, e.to_string())
            }
        }
    }
}

impl From<ProcessError> for RpcError {
    fn from(e: ProcessError) -> Self {
        let code = match &e {
            ProcessError::ArgvEmpty
            | ProcessError::ManagedNetwork
            | ProcessError::InvalidParams(_) => codes::INVALID_PARAMS,
            ProcessError::AlreadyExists(_)
            | ProcessError::TooMany
            | ProcessError::Cancelled(_)
            | ProcessError::Unknown(_)
            | ProcessError::Starting(_)
            | ProcessError::NoTerminal(_)
            | ProcessError::UsesTerminal(_)
            | ProcessError::SandboxContext(_) => codes::INVALID_REQUEST,
            // A failed start says what kind of failure it was (docs/protocol.md
            // "process/start"), as the reference does.
            ProcessError::SandboxUnavailable(_) => {
                return RpcError::new(codes::INVALID_REQUEST, e.to_string())
                    .with_kind("sandboxUnavailable")
            }
            ProcessError::SandboxPreparation(_) => {
                return RpcError::new(codes::INVALID_REQUEST, e.to_string())
                    .with_kind("sandboxPreparation")
            }
            ProcessError::Spawn(io) => {
                let kind = match io.raw_os_error() {
                    Some(libc::ENOENT) => "spawnNotFound",
                    Some(libc::EACCES | libc::EPERM) => "spawnPermissionDenied",
                    _ => "spawnFailed",
                };
                return RpcError::new(codes::INTERNAL, e.to_string()).with_kind(kind);
            }
            ProcessError::Signal(_) | ProcessError::Resize(_) => codes::INTERNAL,
            ProcessError::Path(p) => return RpcError::from(p.clone()),
        };
        RpcError::new(code, e.to_string())
    }
}

impl From<FsError> for RpcError {
    fn from(e: FsError) -> Self {
        let code = match &e {
            FsError::Io(io) => match io.raw_os_error() {
                Some(libc::ENOENT) => codes::NOT_FOUND,
                Some(libc::EACCES | libc::EPERM | libc::EINVAL) => codes::INVALID_REQUEST,
                _ => codes::INTERNAL,
            },
            FsError::Path(p) => return RpcError::from(p.clone()),
            // Relayed as the helper's own mapping made it.
            FsError::HelperAnswer(r) => return r.clone(),
            FsError::HelperFailed(_) => codes::INTERNAL,
            FsError::HelperRefused(_) => codes::INVALID_REQUEST,
            FsError::InvalidParams(_) => codes::INVALID_PARAMS,
            FsError::UnknownHandle(_) => codes::NOT_FOUND,
            FsError::TooManyEntries(_) => codes::INTERNAL,
            FsError::NotAFile(_)
            | FsError::Symlink(_)
            | FsError::TooLarge
            | FsError::BadBase64(_)
            | FsError::CopyNeedsRecursive
            | FsError::CopyIntoItself
            | FsError::CopyUnsupported
            | FsError::RemoveRoot
            | FsError::RemoveMountPoint(_)
            | FsError::RemoveCrossesMount(_)
            | FsError::CopyCrossesMount(_)
            | FsError::WalkLimits
            | FsError::HandleTooLong
            | FsError::HandleEmpty
            | FsError::HandleExists(_)
            | FsError::TooManyHandles
            | FsError::BlockLength
            | FsError::NotForReading(_)
            | FsError::NotForWriting(_)
            | FsError::TooManyWatches
            | FsError::TooManyWatchPaths
            | FsError::SandboxContext(_)
            | FsError::SandboxUnenforceable(_) => codes::INVALID_REQUEST,
        };
        RpcError::new(code, e.to_string())
    }
}

impl From<ToolsError> for RpcError {
    fn from(e: ToolsError) -> Self {
        match e {
            ToolsError::UnknownTool(_) | ToolsError::Arguments { .. } => {
                RpcError::invalid_params(e.to_string())
            }
            ToolsError::Process(p) => p.into(),
        }
    }
}

impl From<EnvConfigError> for RpcError {
    fn from(e: EnvConfigError) -> Self {
        let code = match &e {
            // Every path error is invalid params here, a foreign host too.
            EnvConfigError::Path(_) | EnvConfigError::NoPaths | EnvConfigError::EmptyPath => {
                codes::INVALID_PARAMS
            }
            EnvConfigError::CodexHome(_)
            | EnvConfigError::Load(_)
            | EnvConfigError::Serialize(_)
            | EnvConfigError::Task(_) => codes::INTERNAL,
        };
        RpcError::new(code, e.to_string())
    }
}

impl From<HttpError> for RpcError {
    fn from(e: HttpError) -> Self {
        let code = match &e {
            HttpError::Method(_)
            | HttpError::Url(_)
            | HttpError::Scheme(_)
            | HttpError::HeaderName(_)
            | HttpError::HeaderValue { .. }
            | HttpError::EnvVarDenied { .. }
            | HttpError::EnvVarMissing { .. }
            | HttpError::EnvVarEmpty { .. }
            | HttpError::StreamActive(_) => codes::INVALID_PARAMS,
            HttpError::Failed(_) | HttpError::BodyRead(_) | HttpError::BodyTooLarge => {
                codes::INTERNAL
            }
        };
        RpcError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_host_is_invalid_request() {
        let e: RpcError = PathError::Host("file://h/x".into()).into();
        assert_eq!(e.code, -32600);
        let e: RpcError = PathError::Query.into();
        assert_eq!(e.code, -32602);
    }

    #[test]
    fn fs_errors_map_by_errno() {
        let code =
            |errno| RpcError::from(FsError::Io(std::io::Error::from_raw_os_error(errno))).code;
        assert_eq!(code(libc::ENOENT), -32004);
        assert_eq!(code(libc::EACCES), -32600);
        assert_eq!(code(libc::EPERM), -32600);
        assert_eq!(code(libc::EINVAL), -32600);
        assert_eq!(code(libc::EISDIR), -32603);
        assert_eq!(code(libc::ELOOP), -32603);
        assert_eq!(
            RpcError::from(FsError::UnknownHandle("h".into())).code,
            -32004
        );
        assert_eq!(
            RpcError::from(FsError::HelperFailed("x".into())).code,
            -32603
        );
        assert_eq!(
            RpcError::from(FsError::HelperRefused("x".into())).code,
            -32600
        );
        let relayed = RpcError::new(-32004, "gone");
        assert_eq!(
            RpcError::from(FsError::HelperAnswer(relayed.clone())),
            relayed
        );
        assert_eq!(
            RpcError::from(FsError::Io(std::io::Error::from_raw_os_error(2))).message,
            "No such file or directory (os error 2)"
        );
    }

    #[test]
    fn tool_and_http_errors_map_to_their_codes() {
        let e: RpcError = ToolsError::UnknownTool("x".into()).into();
        assert_eq!((e.code, e.message.as_str()), (-32602, "unknown tool `x`"));
        let e: RpcError = HttpError::StreamActive("r".into()).into();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                -32602,
                "http/request streamResponse requestId `r` is already active"
            )
        );
        let e: RpcError = HttpError::BodyTooLarge.into();
        assert_eq!(e.code, -32603);
        assert_eq!(RpcError::from(HttpError::Failed("x".into())).code, -32603);
    }

    #[test]
    fn spawn_errors_are_internal_with_os_text() {
        let e: RpcError = ProcessError::Spawn(std::io::Error::from_raw_os_error(2)).into();
        assert_eq!(e.code, -32603);
        assert_eq!(e.message, "No such file or directory (os error 2)");
    }
}
