//! What a `process/*` operation can fail with; `errors.rs` maps each to its
//! JSON-RPC code (docs/protocol.md "Processes").

use super::manager::MAX_OPEN;
use crate::protocol::paths::PathError;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("argv must not be empty")]
    ArgvEmpty,
    #[error("managed network is not supported by this executor")]
    ManagedNetwork,
    #[error("{0}")]
    InvalidParams(String),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("process {0} already exists")]
    AlreadyExists(String),
    #[error("too many processes: at most {MAX_OPEN} may be open per connection")]
    TooMany,
    #[error("process {0} start was cancelled")]
    Cancelled(String),
    #[error("unknown process id {0}")]
    Unknown(String),
    #[error("process id {0} is starting")]
    Starting(String),
    #[error("process {0} has no terminal")]
    NoTerminal(String),
    #[error("process {0} uses a terminal; write the end-of-file character instead")]
    UsesTerminal(String),
    #[error("sandbox cannot be enforced: {0}")]
    SandboxUnavailable(String),
    /// A sandbox step failed in the child.
    #[error("sandbox cannot be enforced: {0}")]
    SandboxPreparation(String),
    /// A sandbox context the server refuses (-32600), with its exact message.
    #[error("{0}")]
    SandboxContext(String),
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("failed to signal process: {0}")]
    Signal(std::io::Error),
    #[error("failed to resize terminal: {0}")]
    Resize(std::io::Error),
}

