//! The server's side of the `codex-fs` helper (docs/protocol.md "Sandboxed filesystem requests"): build the effective
//! context, start `/proc/self/exe` as `codex-fs` through the project's spawner (own
//! process group, empty environment, cwd `/`, PDEATHSIG SIGKILL, no descriptors but
//! the three pipes; its exit status comes from the server's reaper, so nothing else
//! calls `waitpid` on it), at most 16 at once, and map what it answers.

use super::FsError;
use crate::protocol::paths::to_uri;
use crate::rpc::error::RpcError;
use crate::sandbox::policy::Resolved;
use crate::spawn::env_policy::Env;
use crate::spawn::group::{signal_name, WaitStatus};
use crate::spawn::spawner::{SpawnError, Spawner};
use crate::spawn::spec::SpawnSpec;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use crate::protocol::EmptyResult;
use crate::sys::fd::set_nonblocking;
use crate::sys::socket::{recv_raw, socketpair};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::Semaphore;

/// Helpers running at once (docs/protocol.md "Filesystem"); further requests wait.
pub const MAX_HELPERS: usize = 16;
/// Most stdout accepted from a helper (a 512 MiB file in base64, plus framing).
const MAX_STDOUT: u64 = 768 * 1024 * 1024;
/// Most stderr kept from a helper.
const MAX_STDERR: u64 = 64 * 1024;

/// The effective context of docs/protocol.md "Sandboxed filesystem requests": a managed, restricted profile whose entries use
/// only `path` and `glob_pattern`, network restricted.
pub fn effective_context(r: &Resolved) -> Value {
    let mut entries: Vec<Value> = r
        .entries
        .iter()
        .map(|e| {
            json!({"path": {"type": "path", "path": to_uri(&e.path)}, "access": e.access.as_str()})
        })
        .collect();
    entries.extend(
        r.globs
            .iter()
            .map(|g| json!({"path": {"type": "glob_pattern", "pattern": g}, "access": "deny"})),
    );
    json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {
        "type": "restricted", "entries": entries, "glob_scan_max_depth": r.glob_depth}}})
}

#[derive(Clone)]
pub struct HelperRunner {
    spawner: Spawner,
    slots: Arc<Semaphore>,
}

fn codec_error(detail: impl std::fmt::Display) -> FsError {
    FsError::HelperFailed(format!(
        "failed to encode or decode fs sandbox helper message: {detail}"
    ))
}

fn internal(detail: impl std::fmt::Display) -> FsError {
    FsError::HelperFailed(detail.to_string())
}

async fn read_limited<R: AsyncRead + Unpin>(r: R, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit).read_to_end(&mut buf).await?;
    Ok(buf)
}

/// `exit status: <n>` or `signal: <n> (<NAME>)`, as Rust's ExitStatus prints them.
pub fn describe(status: WaitStatus) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status: {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        match signal_name(sig) {
            Some(name) => format!("signal: {sig} ({name})"),
            None => format!("signal: {sig}"),
        }
    } else {
        format!("wait status: {status}")
    }
}

impl HelperRunner {
    pub fn new(spawner: Spawner) -> Self {
        HelperRunner {
            spawner,
            slots: Arc::new(Semaphore::new(MAX_HELPERS)),
        }
    }

    /// Run `operation` with `params` (paths as URIs) under `policy`.
    pub async fn run<T: DeserializeOwned>(
        &self,
        operation: &str,
        params: Value,
        policy: &Resolved,
    ) -> Result<T, FsError> {
        self.run_with(operation, params, policy, None).await
    }

    /// `fs/open` in the helper: it opens the file after its lock-down, with the
    /// checks of `fs/readFile` (mode read) or `fs/writeFile` (mode replace), and
    /// passes the descriptor back over a socket at its fd 3 (`SCM_RIGHTS`).
    pub async fn open(&self, params: Value, policy: &Resolved) -> Result<OwnedFd, FsError> {
        let (ours, theirs) = socketpair(libc::SOCK_STREAM).map_err(internal)?;
        let _: EmptyResult = self
            .run_with("fs/open", params, policy, Some(theirs))
            .await?;
        // The helper sent the descriptor before it answered, and it has exited:
        // the message is waiting, or it never comes.
        set_nonblocking(ours.as_raw_fd()).map_err(internal)?;
        let mut byte = [0u8; 1];
        match recv_raw(ours.as_raw_fd(), &mut byte) {
            Ok((_, mut fds)) if fds.len() == 1 => Ok(fds.remove(0)),
            _ => Err(codec_error("the helper answered fs/open without a descriptor")),
        }
    }

    async fn run_with<T: DeserializeOwned>(
        &self,
        operation: &str,
        mut params: Value,
        policy: &Resolved,
        pass: Option<OwnedFd>,
    ) -> Result<T, FsError> {
        if let Some(obj) = params.as_object_mut() {
            obj.insert("sandbox".into(), effective_context(policy));
        }
        let mut body = serde_json::to_vec(&json!({"operation": operation, "params": params}))
            .map_err(codec_error)?;
        body.push(b'\n');

        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| internal("fs sandbox helper slots are closed"))?;
        let mut spec = SpawnSpec::new(
            &["/proc/self/exe".to_string()],
            Some("codex-fs"),
            &Env::new(),
            Path::new("/"),
            None,
            true,
        )
        .map_err(|e| internal(e.0))?;
        if let Some(fd) = pass {
            spec.inherit.push((3, fd));
        }
        let child = self.spawner.spawn(spec).await.map_err(|e| match e {
            SpawnError::Os(e) => internal(e),
            SpawnError::Sandbox(m) => internal(m),
        })?;
        let stdin = child
            .stdin
            .ok_or_else(|| internal("fs sandbox helper has no stdin"))?;
        let stderr = child
            .stderr
            .ok_or_else(|| internal("fs sandbox helper has no stderr"))?;
        let mut tx = pipe::Sender::from_owned_fd(stdin).map_err(internal)?;
        let rx_out = pipe::Receiver::from_owned_fd(child.stdout).map_err(internal)?;
        let rx_err = pipe::Receiver::from_owned_fd(stderr).map_err(internal)?;
        let write = async move {
            // A helper that stops reading (it failed) shows in its status and stderr.
            let _ = tx.write_all(&body).await;
            drop(tx);
        };
        let (_, out, err) = tokio::join!(
            write,
            read_limited(rx_out, MAX_STDOUT),
            read_limited(rx_err, MAX_STDERR)
        );
        // The reaper delivers the status; a lost sender means shutdown killed it.
        let status = child.exit.await.unwrap_or(libc::SIGKILL);
        let out = out.map_err(codec_error)?;
        let err = String::from_utf8_lossy(&err.unwrap_or_default())
            .trim()
            .to_string();
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 2 {
                let msg = err.strip_prefix("codex-fs: ").unwrap_or(&err);
                return Err(FsError::HelperRefused(msg.to_string()));
            }
            return Err(internal(format!(
                "fs sandbox helper failed with status {}: {err}",
                describe(status)
            )));
        }
        decode(&out)
    }
}

/// Decode the helper's one line.
fn decode<T: DeserializeOwned>(out: &[u8]) -> Result<T, FsError> {
    let v: Value = serde_json::from_slice(out).map_err(codec_error)?;
    let payload = v
        .get("payload")
        .ok_or_else(|| codec_error("missing field `payload`"))?;
    match v.get("status").and_then(Value::as_str) {
        Some("ok") => {
            let response = payload
                .get("response")
                .ok_or_else(|| codec_error("missing field `response`"))?;
            T::deserialize(response).map_err(codec_error)
        }
        Some("error") => {
            let code = payload
                .get("code")
                .and_then(Value::as_i64)
                .ok_or_else(|| codec_error("missing field `code`"))?;
            let message = payload
                .get("message")
                .and_then(Value::as_str)
                .ok_or_else(|| codec_error("missing field `message`"))?;
            Err(FsError::HelperAnswer(RpcError::new(
                code,
                message.to_string(),
            )))
        }
        other => Err(codec_error(format!("unknown status {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes;

    #[test]
    fn statuses_are_described_like_rust() {
        assert_eq!(describe(1 << 8), "exit status: 1");
        assert_eq!(describe(libc::SIGKILL), "signal: 9 (SIGKILL)");
    }

    #[test]
    fn answers_decode() {
        let r: Result<EmptyResult, _> =
            decode(br#"{"status":"ok","payload":{"operation":"fs/writeFile","response":{}}}"#);
        assert!(r.is_ok());
        let e = decode::<EmptyResult>(
            br#"{"status":"error","payload":{"code":-32600,"message":"Permission denied (os error 13)"}}"#,
        )
        .unwrap_err();
        assert!(
            matches!(e, FsError::HelperAnswer(ref r) if r.code == codes::INVALID_REQUEST && r.message == "Permission denied (os error 13)")
        );
        let e = decode::<EmptyResult>(b"garbage").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("failed to encode or decode fs sandbox helper message: "));
    }
}
