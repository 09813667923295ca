//! The escalation server of one managed shell (docs/protocol.md "Exec escalation"): it receives
//! stream ends on the shell's seqpacket socket, answers each wrapper
//! concurrently (at most [`MAX_STREAMS`] at once), asks the client for `prompt`
//! decisions (docs/protocol.md "Exec escalation") and runs escalated commands itself, outside the shell's
//! sandbox, through the same spawner and reaper as every other child.

use super::policy::{resolve, Confinement, Decision, Policy};
use super::wire::{
    Action, AsyncDatagram, AsyncStream, ExecRequest, ExecResponse, ExitMessage, FdsMessage, MAX_FDS,
};
use crate::protocol::escalation::{
    ApproveExecParams, ApproveExecResult, EscalationParams, ExecDecision, APPROVE_EXEC,
};
use crate::protocol::paths::to_uri;
use crate::rpc::requests::{RequestError, ServerRequests};
use crate::spawn::env_policy::Env;
use crate::spawn::group::{exit_code, kill_group};
use crate::spawn::spawner::{SpawnError, Spawner, MAX_TARGET_FD};
use crate::spawn::spec::SpawnSpec;
use std::collections::HashSet;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{watch, Semaphore};

pub const REASON_FORBIDDEN: &str = "Execution forbidden by policy";
pub const REASON_DECLINED: &str = "User declined execution";
pub const REASON_CANCELLED: &str = "User cancelled execution";
/// Wrapper streams of one shell served at once; a handshake beyond them gets
/// [`reason_busy`] and its stream is closed.
pub const MAX_STREAMS: usize = 64;
fn reason_busy() -> String {
    format!("too many escalation requests at once (at most {MAX_STREAMS} per shell)")
}

/// Escalation state of one managed process.
pub struct Escalation {
    process_id: String,
    policy: Policy,
    /// Where the shell could write: which programs are trusted or
    /// shell-writable.
    confinement: Confinement,
    /// The environment the shell was started with (the source of the variables
    /// an escalated command never takes from the shell's request).
    start_env: Env,
    /// Permits for wrapper streams in flight.
    streams: Arc<Semaphore>,
    spawner: Spawner,
    requests: Arc<ServerRequests>,
    /// Process groups of the escalated commands that are running.
    running: Mutex<HashSet<i32>>,
    /// Set when the managed process is terminated or closed: pending approvals
    /// are abandoned and no new ones are asked for.
    abandoned: watch::Sender<bool>,
    /// Set when the record is evicted or the server shuts down.
    stopped: watch::Sender<bool>,
}

impl std::fmt::Debug for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalation")
            .field("process_id", &self.process_id)
            .field("running", &self.groups())
            .finish_non_exhaustive()
    }
}

fn deny(reason: impl Into<String>) -> Action {
    Action::Deny {
        reason: Some(reason.into()),
    }
}

impl Escalation {
    pub fn new(
        process_id: String,
        params: &EscalationParams,
        confinement: Confinement,
        start_env: Env,
        spawner: Spawner,
        requests: Arc<ServerRequests>,
    ) -> Arc<Self> {
        Arc::new(Escalation {
            process_id,
            policy: Policy::new(params),
            confinement,
            start_env,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            spawner,
            requests,
            running: Mutex::new(HashSet::new()),
            abandoned: watch::channel(false).0,
            stopped: watch::channel(false).0,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Process groups of the running escalated commands.
    pub fn groups(&self) -> Vec<i32> {
        self.running().iter().copied().collect()
    }

    /// Send `sig` to every running escalated command's group.
    pub fn signal(&self, sig: i32) {
        for pgid in self.groups() {
            let _ = kill_group(pgid, sig);
        }
    }

    /// Abandon pending approvals (terminate, close).
    pub fn abandon(&self) {
        self.abandoned.send_replace(true);
    }

    /// Stop serving (eviction, shutdown).
    pub fn stop(&self) {
        self.abandon();
        self.stopped.send_replace(true);
    }

    /// Serve the server's end of the shell's socket until [`Escalation::stop`].
    pub fn serve(self: &Arc<Self>, sock: OwnedFd) {
        let sock = match AsyncDatagram::new(sock) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(process = %self.process_id, "escalation socket: {e}");
                return;
            }
        };
        let me = self.clone();
        let mut stopped = self.stopped.subscribe();
        tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    r = sock.recv() => r,
                    _ = stopped.wait_for(|s| *s) => break,
                };
                match got {
                    Ok((_, mut fds)) if fds.len() == 1 => {
                        let stream = fds.remove(0);
                        if !is_stream_socket(&stream) {
                            tracing::debug!(process = %me.process_id, "escalation handshake without a stream socket ignored");
                            continue;
                        }
                        let Ok(permit) = me.streams.clone().try_acquire_owned() else {
                            refuse_busy(&stream);
                            continue;
                        };
                        let me = me.clone();
                        tokio::spawn(async move {
                            me.serve_stream(stream).await;
                            drop(permit);
                        });
                    }
                    // Every holder of the shell's end closed it.
                    Ok((0, fds)) if fds.is_empty() => break,
                    Ok((n, fds)) => tracing::debug!(
                        process = %me.process_id,
                        "escalation datagram of {n} bytes with {} descriptors ignored",
                        fds.len()
                    ),
                    Err(e) => {
                        tracing::warn!(process = %me.process_id, "escalation socket: {e}");
                        break;
                    }
                }
            }
        });
    }

    /// One wrapper: request, decision, and the escalated command if any.
    async fn serve_stream(self: Arc<Self>, fd: OwnedFd) {
        let id = &self.process_id;
        let stream = match AsyncStream::new(fd) {
            Ok(s) => s,
            Err(e) => return tracing::warn!(process = %id, "escalation stream: {e}"),
        };
        // The request carries no descriptors: any that come are closed at once.
        let req: ExecRequest = match stream.recv_frame(0).await {
            Ok((body, _fds)) => match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return tracing::warn!(process = %id, "bad exec request: {e}"),
            },
            Err(e) => return tracing::debug!(process = %id, "exec request: {e}"),
        };
        let workdir = Path::new("/").join(&req.workdir);
        let file = resolve(&workdir, &req.file);
        let prog = self.confinement.judge(&file);
        let action = match self.policy.decide(&prog, &req.argv) {
            Decision::Run => Action::Run,
            Decision::Escalate => Action::Escalate,
            Decision::Forbidden => deny(REASON_FORBIDDEN),
            Decision::Prompt => self.ask(&stream, &file, &workdir, &req.argv).await,
        };
        tracing::debug!(process = %id, file = %file.display(), real = ?prog.real, trusted = prog.trusted, shell_writable = prog.shell_writable, argv = ?req.argv, ?action, "exec decision");
        let escalate = action == Action::Escalate;
        if let Err(e) = stream.send_frame(&ExecResponse { action }).await {
            return tracing::debug!(process = %id, "sending the decision: {e}");
        }
        if escalate {
            self.run_escalated(&stream, &file, &workdir, req).await;
        }
    }

    /// Ask the client (docs/protocol.md "Exec escalation") and turn its answer into an action.
    async fn ask(
        &self,
        stream: &AsyncStream,
        file: &Path,
        workdir: &Path,
        argv: &[String],
    ) -> Action {
        let failed = |d: &dyn std::fmt::Display| deny(format!("Execution approval failed: {d}"));
        if *self.abandoned.borrow() {
            return failed(&format!("process {} is no longer running", self.process_id));
        }
        let params = ApproveExecParams {
            process_id: self.process_id.clone(),
            file: to_uri(file),
            argv: argv.to_vec(),
            workdir: to_uri(workdir),
        };
        let (req_id, rx) = match self.requests.send(APPROVE_EXEC, params).await {
            Ok(r) => r,
            Err(e @ (RequestError::TooMany | RequestError::Closed)) => return failed(&e),
        };
        let mut abandoned = self.abandoned.subscribe();
        let outcome = tokio::select! {
            r = rx => r,
            _ = abandoned.wait_for(|a| *a) => {
                self.requests.forget(req_id);
                return failed(&format!("process {} is no longer running", self.process_id));
            }
            _ = stream.closed() => {
                self.requests.forget(req_id);
                return failed(&"the wrapper went away");
            }
        };
        match outcome {
            Err(_) => failed(&"the connection is closing"),
            Ok(Err(error)) => {
                let msg = error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| error.to_string());
                failed(&msg)
            }
            Ok(Ok(result)) => match serde_json::from_value::<ApproveExecResult>(result) {
                Ok(r) => match r.decision {
                    ExecDecision::Approve => Action::Escalate,
                    ExecDecision::Deny => deny(REASON_DECLINED),
                    ExecDecision::Cancel => deny(REASON_CANCELLED),
                },
                Err(e) => failed(&e),
            },
        }
    }

    /// Receive the wrapper's descriptors, run the command, report its status.
    async fn run_escalated(
        &self,
        stream: &AsyncStream,
        file: &Path,
        workdir: &Path,
        req: ExecRequest,
    ) {
        let id = &self.process_id;
        let (body, fds) = match stream.recv_frame(MAX_FDS).await {
            Ok(f) => f,
            Err(e) => return tracing::debug!(process = %id, "descriptor message: {e}"),
        };
        let msg: FdsMessage = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => return tracing::warn!(process = %id, "bad descriptor message: {e}"),
        };
        if msg.fds.len() != fds.len() {
            return tracing::warn!(
                process = %id,
                "descriptor message lists {} descriptors but carries {}",
                msg.fds.len(),
                fds.len()
            );
        }
        let mut seen = HashSet::new();
        if msg
            .fds
            .iter()
            .any(|t| !(0..MAX_TARGET_FD).contains(t) || !seen.insert(*t))
        {
            return tracing::warn!(process = %id, "bad descriptor numbers {:?}", msg.fds);
        }
        let mut stderr = msg
            .fds
            .iter()
            .position(|t| *t == 2)
            .and_then(|i| fds[i].try_clone().ok());
        let given: Vec<(i32, OwnedFd)> = msg.fds.iter().copied().zip(fds).collect();
        let env = super::env::escalated_env(std::env::vars_os(), &req.env, &self.start_env);
        let code = match SpawnSpec::exact(file, &req.argv, &env, workdir, given) {
            Err(e) => report_failure(stderr, file, &e.0, 126),
            Ok(spec) => match self.spawner.spawn_exact(spec).await {
                Err(SpawnError::Os(e)) => {
                    let code = if e.raw_os_error() == Some(libc::ENOENT) {
                        127
                    } else {
                        126
                    };
                    report_failure(stderr, file, &e.to_string(), code)
                }
                Err(SpawnError::Sandbox(m)) => report_failure(stderr, file, &m, 126),
                Ok(child) => {
                    // Only a failure writes to it; hold no descriptor while it runs.
                    stderr.take();
                    self.running().insert(child.pid);
                    let mut exit = child.exit;
                    let status = tokio::select! {
                        st = &mut exit => st.ok(),
                        _ = stream.closed() => None,
                    };
                    let status = match status {
                        Some(st) => st,
                        None => {
                            // The wrapper went away: its command goes too.
                            let _ = kill_group(child.pid, libc::SIGKILL);
                            exit.await.unwrap_or(libc::SIGKILL)
                        }
                    };
                    self.running().remove(&child.pid);
                    exit_code(status).0
                }
            },
        };
        if let Err(e) = stream.send_frame(&ExitMessage { exit_code: code }).await {
            tracing::debug!(process = %id, "sending the exit status: {e}");
        }
    }
}

/// Whether `fd` is a stream socket (a handshake's descriptor must be one; the
/// server touches nothing else the shell passes).
fn is_stream_socket(fd: &OwnedFd) -> bool {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into a local int of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && ty == libc::SOCK_STREAM
}

/// A handshake beyond [`MAX_STREAMS`]: the decision `Deny` with
/// [`reason_busy`], written without waiting (a fresh stream's buffer takes it,
/// else it is dropped), then the stream is closed.
fn refuse_busy(stream: &OwnedFd) {
    let frame = super::wire::encode(&ExecResponse {
        action: deny(reason_busy()),
    });
    // SAFETY: a non-blocking send on a descriptor we own.
    unsafe {
        libc::send(
            stream.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// `execve-wrapper: <F>: <text>` on the passed stderr; returns `code`.
fn report_failure(stderr: Option<OwnedFd>, file: &Path, text: &str, code: i32) -> i32 {
    if let Some(fd) = stderr {
        let mut f = std::fs::File::from(fd);
        let _ = writeln!(f, "execve-wrapper: {}: {text}", file.display());
    }
    code
}

/// The private directory holding the `execve-wrapper` link, if one was made.
static LINK_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The wrapper to advertise when the request names none: `execve-wrapper`
/// beside the server's executable, else a link to the server's executable in a
/// private directory (made once, removed by [`remove_link_dir`]).
pub fn default_wrapper() -> std::io::Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    if let Some(dir) = exe.parent() {
        let beside = dir.join("execve-wrapper");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    let dir = LINK_DIR.get_or_init(|| match make_link_dir(&exe) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!("cannot create the execve-wrapper link: {e}");
            None
        }
    });
    match dir {
        Some(d) => Ok(d.join("execve-wrapper")),
        None => Err(std::io::Error::other(
            "cannot create the execve-wrapper link",
        )),
    }
}

fn make_link_dir(exe: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("tether-wrapper-{}", uuid::Uuid::new_v4()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    std::os::unix::fs::symlink(exe, dir.join("execve-wrapper"))?;
    Ok(dir)
}

/// Shutdown: remove the link directory, if one was made.
pub fn remove_link_dir() {
    if let Some(Some(d)) = LINK_DIR.get() {
        let _ = std::fs::remove_dir_all(d);
    }
}
