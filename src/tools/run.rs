//! Running the tools: start a session, write to it, wait and collect its output
//! (docs/protocol.md "Unified-exec tools").

use super::output::{self, Collected};
use super::sessions::Session;
use super::{clamp_yield, failed, ToolsError, ToolsService, AFTER_EXIT_WAIT};
use super::{EXEC_DEFAULT_YIELD_MS, WRITE_DEFAULT_YIELD_MS};
use crate::process::record::{Phase, Record};
use crate::process::retention::Retention;
use crate::process::ProcessError;
use crate::protocol::bytes::ByteChunk;
use crate::protocol::paths::{parse_path, PathError};
use crate::protocol::process::{EnvPolicy, Inherit, StartParams, TerminateParams, WriteParams};
use crate::protocol::tools::{CallResult, ExecCommandArgs, TextContent, WriteStdinArgs};
use crate::spawn::group;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The unified-exec environment defaults, applied over the server's environment
/// and under the call's `env`.
const ENV_DEFAULTS: &[(&str, &str)] = &[
    ("NO_COLOR", "1"),
    ("TERM", "dumb"),
    ("LANG", "C.UTF-8"),
    ("LC_CTYPE", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
    ("COLORTERM", ""),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("GH_PAGER", "cat"),
];

const STDIN_CLOSED: &str =
    "stdin is closed for this session; rerun exec_command with tty=true to keep stdin open";

impl ToolsService {
    /// `workdir`: absolute path or `file:` URI; relative to the server's cwd otherwise.
    fn workdir(&self, w: Option<&str>) -> Result<PathBuf, PathError> {
        match w {
            None | Some("") => Ok(self.cwd.clone()),
            Some(s)
                if s.starts_with('/')
                    || s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("file:")) =>
            {
                parse_path(s)
            }
            Some(s) => Ok(self.cwd.join(s)),
        }
    }

    fn start_params(&self, process_id: String, a: &ExecCommandArgs, cwd: &Path) -> StartParams {
        let mut env: BTreeMap<String, String> = ENV_DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(a.env.clone().unwrap_or_default());
        let flag = if a.login.unwrap_or(true) { "-lc" } else { "-c" };
        StartParams {
            env,
            // The server's whole environment, nothing filtered out by default.
            env_policy: Some(EnvPolicy {
                inherit: Some(Inherit::All),
                ignore_default_excludes: Some(true),
                ..EnvPolicy::default()
            }),
            tty: a.tty.unwrap_or(false),
            pipe_stdin: Some(false),
            ..StartParams::new(process_id, [self.shell.as_str(), flag, &a.cmd], cwd)
        }
    }

    pub(super) async fn exec_command(
        &self,
        a: ExecCommandArgs,
        started: Instant,
    ) -> Result<CallResult, ToolsError> {
        let Some(slot) = self.sessions.reserve() else {
            return Ok(failed(
                format!(
                    "too many running sessions (limit {})",
                    super::sessions::MAX_RUNNING
                ),
                started,
            ));
        };
        let cwd = match self.workdir(a.workdir.as_deref()) {
            Ok(c) => c,
            Err(e) => return Ok(failed(e.to_string(), started)),
        };
        let (id, process_id) = loop {
            let id = self.sessions.next_id();
            let process_id = format!("tool-{id}");
            // A client's own process (even a closed one) keeps its id.
            if self.procs.lookup(&process_id).is_some() {
                continue;
            }
            match self
                .procs
                .start_silent(self.start_params(process_id.clone(), &a, &cwd))
                .await
            {
                Ok(_) => break (id, process_id),
                Err(ProcessError::AlreadyExists(_)) => continue,
                Err(e @ (ProcessError::InvalidParams(_) | ProcessError::Path(_))) => {
                    return Err(e.into())
                }
                Err(e) => return Ok(failed(e.to_string(), started)),
            }
        };
        let Some(rec) = self.procs.lookup(&process_id) else {
            return Ok(failed(format!("unknown session_id {id}"), started));
        };
        let session = Arc::new(Session {
            id,
            process_id,
            rec,
            turn: tokio::sync::Mutex::new(false),
        });
        slot.fill(session.clone());
        let mut ended = session.turn.lock().await;
        let yield_for = clamp_yield(a.yield_time_ms, EXEC_DEFAULT_YIELD_MS);
        let budget = output::budget(a.max_output_tokens);
        Ok(self
            .collect(&session, &mut ended, yield_for, budget, started)
            .await)
    }

    pub(super) async fn write_stdin(&self, a: WriteStdinArgs, started: Instant) -> CallResult {
        let unknown = || failed(format!("unknown session_id {}", a.session_id), started);
        let Some(session) = u64::try_from(a.session_id)
            .ok()
            .and_then(|id| self.sessions.get(id))
        else {
            return unknown();
        };
        let mut ended = session.turn.lock().await;
        if *ended {
            return unknown();
        }
        let chars = a.chars.unwrap_or_default();
        if !chars.is_empty() {
            if !session.rec.tty {
                return failed(STDIN_CLOSED, started);
            }
            // A terminal that went away with its process is reported by the
            // collection below (exitCode), not as a write failure.
            let _ = self
                .procs
                .write(WriteParams {
                    process_id: session.process_id.clone(),
                    chunk: ByteChunk(chars.into_bytes()),
                    write_id: None,
                })
                .await;
        }
        let yield_for = clamp_yield(a.yield_time_ms, WRITE_DEFAULT_YIELD_MS);
        let budget = output::budget(a.max_output_tokens);
        self.collect(&session, &mut ended, yield_for, budget, started)
            .await
    }

    /// Wait as docs/protocol.md "Unified-exec tools" says, take the output since the previous call, and end the
    /// session when its exit is reported.
    async fn collect(
        &self,
        s: &Session,
        ended: &mut bool,
        yield_for: Duration,
        budget: u64,
        started: Instant,
    ) -> CallResult {
        wait(&s.rec, yield_for).await;
        let (window, exit, pid) = {
            let mut st = s.rec.lock();
            let window = st.window.replace(Retention::default()).unwrap_or_default();
            let exit = (st.phase >= Phase::Exited)
                .then(|| st.exit.as_ref().map(|e| e.code))
                .flatten();
            (window, exit, st.pid)
        };
        let collected = Collected::from_window(&window);
        if exit.is_some() {
            *ended = true;
            self.sessions.remove(s.id);
            // Background jobs go with the session; a record whose output is still
            // held open by escaped descendants is closed now.
            let _ = group::kill_group(pid, libc::SIGKILL);
            let _ = self.procs.terminate(TerminateParams {
                process_id: s.process_id.clone(),
                grace_ms: None,
            });
        }
        CallResult {
            content: vec![TextContent::text(output::render(&collected, budget))],
            is_error: false,
            session_id: exit.is_none().then_some(s.id),
            exit_code: exit,
            wall_time_ms: started.elapsed().as_millis() as u64,
            original_token_count: collected.token_count(),
        }
    }
}

/// Return when the record closed, `AFTER_EXIT_WAIT` after the direct child exited,
/// or when `yield_for` has passed, whichever comes first.
async fn wait(rec: &Record, yield_for: Duration) {
    let deadline = tokio::time::Instant::now() + yield_for;
    let mut exit_deadline = None;
    loop {
        let notified = rec.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let phase = rec.lock().phase;
        if phase == Phase::Closed {
            return;
        }
        let now = tokio::time::Instant::now();
        if phase == Phase::Exited && exit_deadline.is_none() {
            exit_deadline = Some(now + AFTER_EXIT_WAIT);
        }
        let until = exit_deadline.map_or(deadline, |e| e.min(deadline));
        if now >= until {
            return;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(until) => {}
        }
    }
}
