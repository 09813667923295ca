//! `process/*` params, results and notifications (docs/protocol.md "Processes").

use super::bytes::ByteChunk;
use super::paths::{to_uri, PathArg};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `process/start` params. [`StartParams::new`] fills the three required members;
/// the rest default to pipes without stdin, an empty environment, no sandbox.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartParams {
    pub process_id: String,
    pub argv: Vec<String>,
    pub cwd: PathArg,
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub env_policy: Option<EnvPolicy>,
    pub tty: bool,
    #[serde(default)]
    pub pipe_stdin: Option<bool>,
    #[serde(default)]
    pub arg0: Option<String>,
    #[serde(default)]
    pub sandbox: Option<serde_json::Value>,
    #[serde(default)]
    pub enforce_managed_network: Option<bool>,
    #[serde(default)]
    pub size: Option<TermSize>,
    #[serde(default)]
    pub sandbox_mode: Option<String>,
    #[serde(default)]
    pub escalation: Option<super::escalation::EscalationParams>,
    /// Run `SHELL -lc CMD` with the login shell's state captured once per scope
    /// (docs/protocol.md "Shell snapshots").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_snapshot: Option<ShellSnapshot>,
}

/// `shellSnapshot` on `process/start` (docs/protocol.md "Shell snapshots").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellSnapshot {
    /// What the snapshot is kept for (the Codex client sends `<thread>:<environment>`).
    pub scope_id: String,
    /// The shell: `bash`, `zsh` or `sh`, and its path (which must equal `argv[0]`).
    pub shell: super::handshake::Shell,
}

impl StartParams {
    /// Start `argv` in `cwd` as `process_id`; every other member at its default
    /// (set them with struct update syntax: `StartParams { tty: true, ..new }`).
    pub fn new<I, S>(process_id: impl Into<String>, argv: I, cwd: &Path) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StartParams {
            process_id: process_id.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: PathArg(to_uri(cwd)),
            ..StartParams::default()
        }
    }
}

/// A terminal size; each member 1…65,535 (checked after decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct TermSize {
    pub rows: u32,
    pub cols: u32,
}

impl TermSize {
    pub const DEFAULT: TermSize = TermSize { rows: 24, cols: 80 };

    /// `Err` with decoder-style text when a member is out of range.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [("rows", self.rows), ("cols", self.cols)] {
            if !(1..=65_535).contains(&v) {
                return Err(format!("{name} must be between 1 and 65535, got {v}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Inherit {
    #[default]
    All,
    Core,
    None,
}

/// `envPolicy` (docs/protocol.md "Processes"); every member optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    #[serde(default)]
    pub inherit: Option<Inherit>,
    #[serde(default)]
    pub ignore_default_excludes: Option<bool>,
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
    #[serde(default)]
    pub set: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub include_only: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    pub process_id: String,
    pub sandbox_type: String,
    /// Tether extension: what was enforced; present when the request had a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessIdParams {
    pub process_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    pub process_id: String,
    #[serde(default)]
    pub after_seq: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    Pty,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Pty => "pty",
        }
    }
}

/// One retained chunk in a `process/read` result. `chunk` is already base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadChunk {
    pub seq: u64,
    pub stream: Stream,
    pub chunk: std::sync::Arc<str>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResult {
    pub chunks: Vec<ReadChunk>,
    pub next_seq: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub closed: bool,
    pub failure: Option<String>,
    pub sandbox_denied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default)]
    pub dropped_bytes: u64,
    #[serde(default = "one")]
    pub first_retained_seq: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteParams {
    pub process_id: String,
    pub chunk: ByteChunk,
    #[serde(default)]
    pub write_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    Accepted,
    UnknownProcess,
    Starting,
    StdinClosed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteResult {
    pub status: WriteStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalName {
    Interrupt,
    Terminate,
    Kill,
    Hangup,
    Quit,
    User1,
    User2,
}

impl SignalName {
    pub fn signo(self) -> i32 {
        match self {
            SignalName::Interrupt => libc::SIGINT,
            SignalName::Terminate => libc::SIGTERM,
            SignalName::Kill => libc::SIGKILL,
            SignalName::Hangup => libc::SIGHUP,
            SignalName::Quit => libc::SIGQUIT,
            SignalName::User1 => libc::SIGUSR1,
            SignalName::User2 => libc::SIGUSR2,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalParams {
    pub process_id: String,
    pub signal: SignalName,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    pub process_id: String,
    #[serde(default)]
    pub grace_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminateResult {
    pub running: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizeParams {
    pub process_id: String,
    pub rows: u32,
    pub cols: u32,
}

/// `process/exited` params. `signal` is present only for a signal death.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitedParams {
    pub process_id: String,
    pub seq: u64,
    pub exit_code: i32,
    pub sandbox_denied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedParams {
    pub process_id: String,
    pub seq: u64,
}

/// `process/output` params as the client decodes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParams {
    pub process_id: String,
    pub seq: u64,
    pub stream: Stream,
    pub chunk: ByteChunk,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_params_minimal_and_nulls() {
        let p: StartParams = serde_json::from_str(
            r#"{"processId":"p","argv":["true"],"cwd":"/tmp","env":{},"tty":false,
               "pipeStdin":null,"arg0":null,"sandbox":null,"envPolicy":null,"size":null}"#,
        )
        .unwrap();
        assert_eq!(p.pipe_stdin, None);
        assert!(p.env_policy.is_none());
        assert!(serde_json::from_str::<StartParams>(r#"{"processId":"p"}"#).is_err());
    }

    #[test]
    fn env_policy_members_are_optional() {
        let p: EnvPolicy = serde_json::from_str(r#"{"inherit":"core"}"#).unwrap();
        assert_eq!(p.inherit, Some(Inherit::Core));
        assert!(serde_json::from_str::<EnvPolicy>(r#"{"inherit":"some"}"#).is_err());
    }

    #[test]
    fn read_result_member_order() {
        let r = ReadResult {
            chunks: vec![],
            next_seq: 1,
            exited: false,
            exit_code: None,
            closed: false,
            failure: None,
            sandbox_denied: false,
            signal: None,
            dropped_bytes: 0,
            first_retained_seq: 1,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"chunks":[],"nextSeq":1,"exited":false,"exitCode":null,"closed":false,"failure":null,"sandboxDenied":false,"droppedBytes":0,"firstRetainedSeq":1}"#
        );
    }

    #[test]
    fn write_status_spelling() {
        let s = serde_json::to_string(&WriteResult {
            status: WriteStatus::StdinClosed,
        })
        .unwrap();
        assert_eq!(s, r#"{"status":"stdinClosed"}"#);
        assert_eq!(
            serde_json::to_string(&WriteStatus::UnknownProcess).unwrap(),
            "\"unknownProcess\""
        );
    }

    #[test]
    fn signal_names() {
        let p: SignalParams =
            serde_json::from_str(r#"{"processId":"a","signal":"interrupt"}"#).unwrap();
        assert_eq!(p.signal.signo(), libc::SIGINT);
        assert!(serde_json::from_str::<SignalParams>(r#"{"processId":"a","signal":"x"}"#).is_err());
    }

    #[test]
    fn exited_signal_only_when_present() {
        let e = ExitedParams {
            process_id: "a".into(),
            seq: 2,
            exit_code: 0,
            sandbox_denied: false,
            signal: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"processId":"a","seq":2,"exitCode":0,"sandboxDenied":false}"#
        );
    }
}
