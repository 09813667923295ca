//! Unified-exec tools (docs/protocol.md "Unified-exec tools", Tether extension): `tools/list` and
//! `tools/call` with `exec_command` and `write_stdin`.
//!
//! A tool session is a silent process record `tool-<sessionId>` in the process
//! manager: it sends no notifications, `process/read`, `process/signal` and
//! `process/terminate` work on it, and each call collects the output produced since
//! the previous one. Sessions run without a sandbox.

pub mod output;
mod run;
pub mod schema;
pub mod sessions;

use crate::process::{ProcessError, ProcessManager};
use crate::protocol::tools::{CallParams, CallResult, ListResult, TextContent};
use serde::de::DeserializeOwned;
use sessions::Sessions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `yield_time_ms` bounds and defaults.
pub const MIN_YIELD_MS: i64 = 250;
pub const MAX_YIELD_MS: i64 = 30_000;
pub const EXEC_DEFAULT_YIELD_MS: i64 = 10_000;
pub const WRITE_DEFAULT_YIELD_MS: i64 = 250;
/// How long a call waits for descendants that keep the output open after the
/// direct child exited.
pub const AFTER_EXIT_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// `arguments` that do not fit the tool's schema.
    #[error("invalid arguments for {tool}: {detail}")]
    Arguments { tool: &'static str, detail: String },
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// The tools of one connection.
pub struct ToolsService {
    procs: Arc<ProcessManager>,
    /// `environmentInfo.shell.path`: what runs `cmd`.
    shell: String,
    /// The server's working directory: the default `workdir`, and the base of a
    /// relative one.
    cwd: PathBuf,
    sessions: Sessions,
}

fn clamp_yield(ms: Option<i64>, default: i64) -> Duration {
    let ms = ms.unwrap_or(default).clamp(MIN_YIELD_MS, MAX_YIELD_MS);
    Duration::from_millis(ms as u64)
}

fn arguments<T: DeserializeOwned>(
    tool: &'static str,
    v: serde_json::Value,
) -> Result<T, ToolsError> {
    serde_json::from_value(v).map_err(|e| ToolsError::Arguments {
        tool,
        detail: e.to_string(),
    })
}

/// A call that failed at run time: `isError` with the text.
fn failed(text: impl Into<String>, started: Instant) -> CallResult {
    CallResult {
        content: vec![TextContent::text(text.into())],
        is_error: true,
        session_id: None,
        exit_code: None,
        wall_time_ms: started.elapsed().as_millis() as u64,
        original_token_count: 0,
    }
}

impl ToolsService {
    pub fn new(procs: Arc<ProcessManager>, shell: String, cwd: PathBuf) -> Self {
        ToolsService {
            procs,
            shell,
            cwd,
            sessions: Sessions::default(),
        }
    }

    pub fn list(&self) -> ListResult {
        schema::list()
    }

    pub async fn call(&self, p: CallParams) -> Result<CallResult, ToolsError> {
        let started = Instant::now();
        match p.name.as_str() {
            schema::EXEC_COMMAND => {
                let a = arguments(schema::EXEC_COMMAND, p.arguments)?;
                self.exec_command(a, started).await
            }
            schema::WRITE_STDIN => {
                let a = arguments(schema::WRITE_STDIN, p.arguments)?;
                Ok(self.write_stdin(a, started).await)
            }
            _ => Err(ToolsError::UnknownTool(p.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yield_is_clamped() {
        assert_eq!(clamp_yield(None, 10_000), Duration::from_millis(10_000));
        assert_eq!(clamp_yield(Some(1), 10_000), Duration::from_millis(250));
        assert_eq!(clamp_yield(Some(-1), 250), Duration::from_millis(250));
        assert_eq!(
            clamp_yield(Some(i64::MAX), 250),
            Duration::from_millis(30_000)
        );
    }
}
