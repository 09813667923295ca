//! Typed calls for the methods of docs/protocol.md "Handshake", "Environment methods", "Processes". Filesystem, tools and http
//! methods go through [`Client::call`] until they get typed helpers.

use super::{Client, ClientError, ProcessEvents};
use crate::protocol::bytes::ByteChunk;
use crate::protocol::handshake::{EnvironmentInfo, StatusResult};
use crate::protocol::process::*;
use crate::protocol::{methods, EmptyResult};
use std::path::Path;

/// `process/start` params with the defaults: pipes, stdin piped, no sandbox, an
/// empty environment (set `env`, or `env_policy` to inherit the server's).
pub fn start_params<I, S>(process_id: &str, argv: I, cwd: &Path) -> StartParams
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    StartParams {
        pipe_stdin: Some(true),
        ..StartParams::new(process_id, argv, cwd)
    }
}

impl Client {
    /// `environment/info`.
    pub async fn environment_info(&self) -> Result<EnvironmentInfo, ClientError> {
        self.call(methods::ENVIRONMENT_INFO, ()).await
    }

    /// `environment/status`: `"ready"` for a working server.
    pub async fn environment_status(&self) -> Result<String, ClientError> {
        let r: StatusResult = self.call(methods::ENVIRONMENT_STATUS, ()).await?;
        Ok(r.status)
    }

    /// `process/start`. Subscribe first if you want the events
    /// (or use [`start_with_events`](Client::start_with_events)).
    pub async fn start(&self, params: &StartParams) -> Result<StartResult, ClientError> {
        self.call(methods::PROCESS_START, params).await
    }

    /// Subscribe to the process's events, then `process/start` it.
    pub async fn start_with_events(
        &self,
        params: &StartParams,
    ) -> Result<(StartResult, ProcessEvents), ClientError> {
        let events = self.subscribe(&params.process_id);
        let r = self.start(params).await?;
        Ok((r, events))
    }

    /// `process/read`.
    pub async fn read(&self, params: &ReadParams) -> Result<ReadResult, ClientError> {
        self.call(methods::PROCESS_READ, params).await
    }

    /// `process/write` without a `writeId`.
    pub async fn write(&self, process_id: &str, bytes: &[u8]) -> Result<WriteStatus, ClientError> {
        self.write_with(&WriteParams {
            process_id: process_id.into(),
            chunk: ByteChunk(bytes.to_vec()),
            write_id: None,
        })
        .await
    }

    /// `process/write` with all its params (including `writeId`).
    pub async fn write_with(&self, params: &WriteParams) -> Result<WriteStatus, ClientError> {
        let r: WriteResult = self.call(methods::PROCESS_WRITE, params).await?;
        Ok(r.status)
    }

    /// `process/closeStdin`.
    pub async fn close_stdin(&self, process_id: &str) -> Result<WriteStatus, ClientError> {
        let p = ProcessIdParams {
            process_id: process_id.into(),
        };
        let r: WriteResult = self.call(methods::PROCESS_CLOSE_STDIN, p).await?;
        Ok(r.status)
    }

    /// `process/signal`.
    pub async fn signal(&self, process_id: &str, signal: SignalName) -> Result<(), ClientError> {
        let p = SignalParams {
            process_id: process_id.into(),
            signal,
        };
        let _: EmptyResult = self.call(methods::PROCESS_SIGNAL, p).await?;
        Ok(())
    }

    /// `process/terminate`; `true` when the process was still running.
    pub async fn terminate(
        &self,
        process_id: &str,
        grace_ms: Option<u64>,
    ) -> Result<bool, ClientError> {
        let p = TerminateParams {
            process_id: process_id.into(),
            grace_ms,
        };
        let r: TerminateResult = self.call(methods::PROCESS_TERMINATE, p).await?;
        Ok(r.running)
    }

    /// `process/resize` (a terminal process only).
    pub async fn resize(&self, process_id: &str, rows: u32, cols: u32) -> Result<(), ClientError> {
        let p = ResizeParams {
            process_id: process_id.into(),
            rows,
            cols,
        };
        let _: EmptyResult = self.call(methods::PROCESS_RESIZE, p).await?;
        Ok(())
    }
}
