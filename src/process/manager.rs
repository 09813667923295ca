//! The [`ProcessManager`]: records keyed by `processId` and the `process/*`
//! operations on them (docs/protocol.md "Processes").
//!
//! Near 600 lines, on purpose: one type's operations over its private record
//! table; the start path (`spawn_record`) is the longest and shares the table's
//! locking with the others. The pieces that stand alone are beside it
//! (`record.rs`, `pump.rs`, `retention.rs`, `error.rs`).

use crate::escalate::broker::Escalation;
use crate::protocol::handshake::HostSandbox;
use crate::protocol::process::*;
use crate::rpc::outbound::Outbound;
use crate::rpc::requests::ServerRequests;
use crate::sandbox::plan::{plan_process, Mode, Report};
use crate::spawn::env_policy;
use crate::spawn::group::{self, Reaper};
use crate::spawn::spawner::{SpawnError, Spawner};
use crate::spawn::spec::SpawnSpec;
use crate::sys::pty;
use super::pump::{self, Pump};
use super::snapshot;
use crate::sandbox::policy::Context;
use crate::spawn::env_policy::Env;
use super::error::ProcessError;
use super::record::{self, InboxMsg, Phase, Record};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Open (not closed) records allowed at once (docs/protocol.md "Processes").
pub const MAX_OPEN: usize = 1_024;
/// How long a closed record stays readable (docs/protocol.md "Processes").
pub const EVICT_AFTER: Duration = Duration::from_secs(30);
/// `waitMs` cap (docs/protocol.md "Processes").
pub const MAX_WAIT_MS: u64 = 86_400_000;
/// `graceMs` cap (docs/protocol.md "Processes").
pub const MAX_GRACE_MS: u64 = 60_000;

#[derive(Default)]
struct Records {
    map: HashMap<String, Arc<Record>>,
    open: usize,
}

pub struct ProcessManager {
    /// What this host can enforce, probed at start.
    host: HostSandbox,
    records: Mutex<Records>,
    out: Outbound,
    spawner: Spawner,
    /// Requests to the client (`process/approveExec`).
    requests: Arc<ServerRequests>,
    /// Shell snapshots of this connection.
    snapshots: snapshot::Cache,
}

impl ProcessManager {
    /// A manager whose notifications go to `out`. Starts the reaper (which must run
    /// inside a tokio runtime); the spawner's threads start with the first spawn.
    pub fn new(out: Outbound, host: HostSandbox) -> Arc<Self> {
        let reaper = Arc::new(Reaper::default());
        let r = reaper.clone();
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
            .expect("install the SIGCHLD handler");
        tokio::spawn(async move {
            loop {
                r.reap();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Arc::new(ProcessManager {
            records: Mutex::new(Records::default()),
            requests: Arc::new(ServerRequests::new(out.clone())),
            out,
            spawner: Spawner::new(reaper),
            host,
            snapshots: snapshot::Cache::default(),
        })
    }

    /// The spawner, shared with the `codex-fs` helper runner (same reaper).
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// The connection's outstanding server requests.
    pub fn requests(&self) -> &Arc<ServerRequests> {
        &self.requests
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<Record>> {
        self.records().map.get(id).cloned()
    }

    /// The record of `id`, for owners of silent records (tool sessions) that
    /// collect output and wait on it themselves.
    pub fn lookup(&self, id: &str) -> Option<Arc<Record>> {
        self.get(id)
    }

    /// Forget a record whose start failed.
    fn abandon(&self, rec: &Arc<Record>) {
        let mut r = self.records();
        if r.map.get(&rec.id).is_some_and(|cur| Arc::ptr_eq(cur, rec)) {
            r.map.remove(&rec.id);
            r.open -= 1;
        }
    }

    /// A record closed: it no longer counts as open, and is evicted later.
    /// Its pending approvals are abandoned now; its escalation server stops at
    /// eviction (or when the manager goes away).
    fn closed(self: &Arc<Self>, rec: Arc<Record>) {
        self.records().open -= 1;
        let esc = rec.lock().escalation.clone();
        if let Some(e) = &esc {
            e.abandon();
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(EVICT_AFTER).await;
            if let Some(e) = &esc {
                e.stop();
            }
            if let Some(me) = me.upgrade() {
                let mut r = me.records();
                if r.map.get(&rec.id).is_some_and(|cur| Arc::ptr_eq(cur, &rec)) {
                    r.map.remove(&rec.id);
                }
            }
        });
    }

    pub async fn start(self: &Arc<Self>, p: StartParams) -> Result<StartResult, ProcessError> {
        self.start_record(p, false).await
    }

    /// Start a silent record: no notifications; output is kept for `process/read`
    /// and in the record's collection window (tool sessions, docs/protocol.md "Unified-exec tools").
    pub async fn start_silent(
        self: &Arc<Self>,
        p: StartParams,
    ) -> Result<StartResult, ProcessError> {
        self.start_record(p, true).await
    }

    async fn start_record(
        self: &Arc<Self>,
        p: StartParams,
        silent: bool,
    ) -> Result<StartResult, ProcessError> {
        if let Some(s) = &p.shell_snapshot {
            snapshot::validate(s).map_err(ProcessError::InvalidParams)?;
        }
        if let Some(size) = &p.size {
            size.check().map_err(ProcessError::InvalidParams)?;
        }
        if p.argv.iter().any(|a| a.contains('\0'))
            || p.arg0.as_deref().is_some_and(|a| a.contains('\0'))
        {
            return Err(ProcessError::InvalidParams(
                "argv must not contain NUL bytes".into(),
            ));
        }
        env_policy::validate("env", &p.env).map_err(ProcessError::InvalidParams)?;
        if let Some(e) = &p.escalation {
            e.check().map_err(ProcessError::InvalidParams)?;
        }
        if let Some(set) = p.env_policy.as_ref().and_then(|e| e.set.as_ref()) {
            env_policy::validate("envPolicy.set", set).map_err(ProcessError::InvalidParams)?;
        }
        let cwd = p.cwd.to_path()?;
        if p.argv.is_empty() {
            return Err(ProcessError::ArgvEmpty);
        }
        if let Some(mode) = p.sandbox_mode.as_deref() {
            if mode != "strict" && mode != "best-effort" {
                return Err(ProcessError::InvalidParams(format!(
                    "unknown variant `{mode}`, expected `strict` or `best-effort`"
                )));
            }
        }
        if p.enforce_managed_network == Some(true) {
            return Err(ProcessError::ManagedNetwork);
        }

        let rec = {
            let mut r = self.records();
            if let Some(old) = r.map.get(&p.process_id) {
                if old.lock().phase != Phase::Closed {
                    return Err(ProcessError::AlreadyExists(p.process_id));
                }
            }
            if r.open >= MAX_OPEN {
                return Err(ProcessError::TooMany);
            }
            let rec = Record::new(p.process_id.clone(), p.tty, silent);
            r.map.insert(p.process_id.clone(), rec.clone());
            r.open += 1;
            rec
        };
        match self.spawn_record(&rec, &p, &cwd).await {
            Ok(report) => Ok(StartResult {
                process_id: p.process_id,
                sandbox_type: if report.as_ref().is_some_and(|r| r.seccomp) {
                    "linuxSeccomp".into()
                } else {
                    "none".into()
                },
                sandbox: report.map(|r| serde_json::to_value(r).expect("a report serializes")),
            }),
            Err(e) => {
                self.abandon(&rec);
                Err(e)
            }
        }
    }

    async fn spawn_record(
        self: &Arc<Self>,
        rec: &Arc<Record>,
        p: &StartParams,
        cwd: &std::path::Path,
    ) -> Result<Option<Report>, ProcessError> {
        use crate::sandbox::policy::PolicyError;
        let ctx = crate::sandbox::policy::parse(p.sandbox.as_ref()).map_err(|e| match e {
            PolicyError::Params(m) => ProcessError::InvalidParams(m),
            PolicyError::NeedsCwd => ProcessError::SandboxContext(e.to_string()),
            PolicyError::Unenforceable(m) => ProcessError::SandboxUnavailable(m),
        })?;
        let mode = match p.sandbox_mode.as_deref() {
            Some(m) => Mode::parse(m).unwrap_or(Mode::Strict),
            None => Mode::parse(&self.host.default_mode).unwrap_or(Mode::Strict),
        };
        let mut plan = match &ctx {
            Some(ctx) => {
                plan_process(ctx, mode, &self.host).map_err(ProcessError::SandboxUnavailable)?
            }
            None => None,
        };
        let report = match (&ctx, &plan) {
            (_, Some(plan)) => Some(plan.report.clone()),
            (Some(_), None) => Some(Report {
                mode: mode.as_str().into(),
                landlock: "none".into(),
                landlock_abi: self.host.landlock_abi,
                seccomp: false,
                no_new_privs: false,
                mount_namespace: false,
                network: "enabled".into(),
                unenforced: Vec::new(),
            }),
            (None, None) => None,
        };
        // Released when dropped: on every early return below, or when the
        // process has closed.
        let placeholders = plan
            .as_mut()
            .map(|p| std::mem::take(&mut p.placeholders))
            .unwrap_or_default();
        let mut env = env_policy::build(p.env_policy.as_ref(), &p.env, std::env::vars_os());
        let mut argv = std::borrow::Cow::Borrowed(&p.argv);
        if let Some(s) = p.shell_snapshot.as_ref() {
            if snapshot::applies(s, &p.argv) {
                if let Some(snap) = self.snapshot(s, p, ctx.as_ref(), mode, &env, cwd).await {
                    argv = std::borrow::Cow::Owned(snap.restore_argv(s, &p.argv));
                    snap.apply_env(&mut env, p.env_policy.as_ref(), &p.env);
                }
            }
        }
        // The escalation socket pair: the child's end goes to its fd 3 (docs/protocol.md "Exec escalation").
        let escalation = match &p.escalation {
            Some(params) => match self.prepare_escalation(&rec.id, params, plan.as_ref(), &mut env)
            {
                Ok(e) => Some(e),
                Err(e) => return Err(e),
            },
            None => None,
        };
        let tty = p.tty.then(|| p.size.unwrap_or(TermSize::DEFAULT));
        let pipe_stdin = p.pipe_stdin.unwrap_or(false);
        let mut spec = match SpawnSpec::new(&argv, p.arg0.as_deref(), &env, cwd, tty, pipe_stdin)
        {
            Ok(s) => s,
            Err(e) => return Err(ProcessError::InvalidParams(e.0)),
        };
        let sandboxed = plan.is_some();
        spec.sandbox = plan;
        spec.landlock_abi = self.host.landlock_abi;
        let escalation = escalation.map(|(esc, server_end, child_end)| {
            spec.inherit.push((3, child_end));
            (esc, server_end)
        });
        let child = match self.spawner.spawn(spec).await {
            Ok(c) => c,
            Err(e) => {
                return Err(match e {
                    SpawnError::Os(e) => ProcessError::Spawn(e),
                    SpawnError::Sandbox(m) => ProcessError::SandboxPreparation(m),
                });
            }
        };

        let stdin_rx = {
            let mut st = rec.lock();
            if st.cancelled {
                drop(st);
                let _ = group::kill_group(child.pid, libc::SIGKILL);
                return Err(ProcessError::Cancelled(rec.id.clone()));
            }
            st.phase = Phase::Running;
            st.sandboxed = sandboxed;
            if let Some((esc, server_end)) = escalation {
                esc.serve(server_end);
                st.escalation = Some(esc);
            }
            st.pid = child.pid;
            st.pty = child.pty.map(Arc::new);
            if child.stdin.is_some() {
                let (tx, rx) = mpsc::channel(record::WRITE_QUEUE);
                st.stdin = Some(tx);
                Some(rx)
            } else {
                None
            }
        };
        rec.changed.notify_waiters();
        if let (Some(fd), Some(rx)) = (child.stdin, stdin_rx) {
            tokio::spawn(pump::stdin_task(rec.clone(), fd, rx));
        }
        let mut outputs = vec![(
            if p.tty { Stream::Pty } else { Stream::Stdout },
            child.stdout,
        )];
        if let Some(err) = child.stderr {
            outputs.push((Stream::Stderr, err));
        }
        let me = self.clone();
        let closed_rec = rec.clone();
        let pump = Pump::new(rec.clone(), self.out.clone());
        tokio::spawn(pump.run(
            outputs,
            child.exit,
            Box::new(move || {
                drop(placeholders);
                me.closed(closed_rec)
            }),
        ));
        Ok(report)
    }

    /// The snapshot for this start: the cached one, or one captured now. `None`
    /// when the capture fails (the command then runs as sent).
    async fn snapshot(
        &self,
        s: &ShellSnapshot,
        p: &StartParams,
        ctx: Option<&Context>,
        mode: Mode,
        env: &Env,
        cwd: &Path,
    ) -> Option<Arc<snapshot::Snapshot>> {
        let key = snapshot::Key::new(s, cwd, p.env_policy.as_ref(), p.sandbox.as_ref());
        if let Some(hit) = self.snapshots.get(&key) {
            return Some(hit);
        }
        match self.capture(s, p, ctx, mode, env, cwd).await {
            Ok(snap) => {
                let snap = Arc::new(snap);
                self.snapshots.insert(key, snap.clone());
                Some(snap)
            }
            Err(e) => {
                tracing::warn!(
                    process = %p.process_id,
                    "shell snapshot not taken, the command runs as sent: {e}"
                );
                None
            }
        }
    }

    /// Run the capture: the request's shell with `-lc` and the capture script,
    /// with the command's environment, cwd and sandbox; stdin and stderr
    /// `/dev/null`, stdout read here (docs/protocol.md "Shell snapshots").
    async fn capture(
        &self,
        s: &ShellSnapshot,
        p: &StartParams,
        ctx: Option<&Context>,
        mode: Mode,
        env: &Env,
        cwd: &Path,
    ) -> Result<snapshot::Snapshot, String> {
        let plan = match ctx {
            Some(ctx) => plan_process(ctx, mode, &self.host)?,
            None => None,
        };
        let argv = [
            p.arg0.clone().unwrap_or_else(|| p.argv[0].clone()),
            "-lc".into(),
            snapshot::capture_script(&s.shell.name),
        ];
        let (read, write) = crate::sys::fd::pipe().map_err(|e| e.to_string())?;
        let mut spec = SpawnSpec::exact(Path::new(&p.argv[0]), &argv, env, cwd, vec![(1, write)])
            .map_err(|e| e.0)?;
        spec.sandbox = plan;
        spec.landlock_abi = self.host.landlock_abi;
        let child = self.spawner.spawn_exact(spec).await.map_err(|e| match e {
            SpawnError::Os(e) => e.to_string(),
            SpawnError::Sandbox(m) => m,
        })?;
        let run = async {
            let out = snapshot::read_capture(read).await;
            let status = child.exit.await;
            (out, status)
        };
        match tokio::time::timeout(snapshot::CAPTURE_TIMEOUT, run).await {
            Err(_) => {
                let _ = group::kill_group(child.pid, libc::SIGKILL);
                Err(format!(
                    "the capture took longer than {} s",
                    snapshot::CAPTURE_TIMEOUT.as_secs()
                ))
            }
            Ok((out, status)) => {
                let _ = group::kill_group(child.pid, libc::SIGKILL);
                let out = out.map_err(|e| e.to_string())?;
                match status.map(group::exit_code) {
                    Ok((0, _)) => snapshot::parse_capture(&out)
                        .ok_or_else(|| "the capture printed no snapshot".to_string()),
                    Ok((code, signal)) => Err(match signal {
                        Some(sig) => format!("the capture was killed by {sig}"),
                        None => format!("the capture exited with {code}"),
                    }),
                    Err(_) => Err("the capture's exit was not seen".into()),
                }
            }
        }
    }

    /// The escalation server of a new process, its socket end, and the child's
    /// end; sets the three variables last (docs/protocol.md "Processes").
    fn prepare_escalation(
        &self,
        id: &str,
        params: &crate::protocol::escalation::EscalationParams,
        plan: Option<&crate::sandbox::plan::ProcessPlan>,
        env: &mut env_policy::Env,
    ) -> Result<(Arc<Escalation>, std::os::fd::OwnedFd, std::os::fd::OwnedFd), ProcessError> {
        use crate::escalate::policy::Confinement;
        let confinement = match plan {
            None => Confinement::Unsandboxed,
            Some(plan) => Confinement::sandboxed(plan.landlock.clone()),
        };
        let start_env = env.clone();
        let wrapper = match &params.wrapper_path {
            Some(w) => w.to_path()?,
            None => crate::escalate::broker::default_wrapper().map_err(ProcessError::Spawn)?,
        };
        // Seqpacket, not datagram: the kernel ignores a destination address on a
        // seqpacket send, so the sandbox cannot use fd 3 to reach other sockets.
        let (server_end, child_end) =
            crate::sys::socket::socketpair(libc::SOCK_SEQPACKET).map_err(ProcessError::Spawn)?;
        env.insert("CODEX_ESCALATE_SOCKET".into(), "3".into());
        env.insert("BASH_EXEC_WRAPPER".into(), wrapper.clone().into_os_string());
        env.insert("EXEC_WRAPPER".into(), wrapper.into_os_string());
        let esc = Escalation::new(
            id.to_string(),
            params,
            confinement,
            start_env,
            self.spawner.clone(),
            self.requests.clone(),
        );
        Ok((esc, server_end, child_end))
    }

    pub async fn read(&self, p: ReadParams) -> Result<ReadResult, ProcessError> {
        let rec = self
            .get(&p.process_id)
            .ok_or_else(|| ProcessError::Unknown(p.process_id.clone()))?;
        let after = p.after_seq.unwrap_or(0);
        let wait = Duration::from_millis(p.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = rec.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (result, ready) = {
                let st = rec.lock();
                if st.phase == Phase::Starting {
                    return Err(ProcessError::Starting(p.process_id));
                }
                let chunks = st.retention.select(after, p.max_bytes);
                let next_seq = match (p.max_bytes, chunks.last()) {
                    (Some(_), Some(last)) => last.seq + 1,
                    _ => st.next_seq,
                };
                let exited = st.phase >= Phase::Exited;
                let closed = st.phase == Phase::Closed;
                let ready = !chunks.is_empty() || closed || (exited && after < next_seq - 1);
                let exit = st.exit.as_ref();
                let result = ReadResult {
                    chunks,
                    next_seq,
                    exited,
                    exit_code: exit.map(|e| e.code),
                    closed,
                    failure: None,
                    sandbox_denied: exit.is_some_and(|e| e.sandbox_denied),
                    signal: exit.and_then(|e| e.signal).map(str::to_string),
                    dropped_bytes: st.retention.dropped_bytes,
                    first_retained_seq: st.retention.first_retained_seq,
                };
                (result, ready)
            };
            if ready || tokio::time::Instant::now() >= deadline {
                return Ok(result);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Queue a `process/write` behind earlier writes and closes of the same process;
    /// called in wire order, the returned future is the answer.
    pub fn write(
        &self,
        p: WriteParams,
    ) -> impl std::future::Future<Output = Result<WriteResult, ProcessError>> + Send + 'static {
        let early = if p.write_id.as_deref() == Some("") {
            Some(Err(ProcessError::InvalidParams(
                "writeId must not be empty".into(),
            )))
        } else {
            None
        };
        let queued = early
            .is_none()
            .then(|| self.enqueue(&p.process_id.clone(), InboxMsg::Write(p)));
        async move {
            match (early, queued) {
                (Some(e), _) => e,
                (None, Some(Some(rx))) => rx.await.unwrap_or(Ok(WriteResult {
                    status: WriteStatus::StdinClosed,
                })),
                _ => Ok(WriteResult {
                    status: WriteStatus::UnknownProcess,
                }),
            }
        }
    }

    /// Queue a `process/closeStdin`, ordered with writes like [`ProcessManager::write`].
    pub fn close_stdin(
        &self,
        p: ProcessIdParams,
    ) -> impl std::future::Future<Output = Result<WriteResult, ProcessError>> + Send + 'static {
        let queued = self.enqueue(&p.process_id, InboxMsg::Close);
        async move {
            match queued {
                Some(rx) => rx.await.unwrap_or(Ok(WriteResult {
                    status: WriteStatus::StdinClosed,
                })),
                None => Ok(WriteResult {
                    status: WriteStatus::UnknownProcess,
                }),
            }
        }
    }

    fn enqueue(
        &self,
        id: &str,
        msg: InboxMsg,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<WriteResult, ProcessError>>> {
        let rec = self.get(id)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        rec.inbox.send((msg, tx)).ok()?;
        Some(rx)
    }

    pub fn signal(&self, p: SignalParams) -> Result<(), ProcessError> {
        let Some(rec) = self.get(&p.process_id) else {
            return Ok(());
        };
        let (target, esc) = {
            let st = rec.lock();
            if matches!(st.phase, Phase::Starting | Phase::Closed) {
                return Ok(());
            }
            let fg = st
                .pty
                .as_ref()
                .and_then(|m| pty::foreground_pgrp(std::os::fd::AsRawFd::as_raw_fd(&**m)));
            (fg.unwrap_or(st.pid), st.escalation.clone())
        };
        if let Some(e) = esc {
            e.signal(p.signal.signo());
        }
        group::kill_group(target, p.signal.signo()).map_err(ProcessError::Signal)
    }

    pub fn terminate(&self, p: TerminateParams) -> Result<TerminateResult, ProcessError> {
        let running = |r| Ok(TerminateResult { running: r });
        let Some(rec) = self.get(&p.process_id) else {
            return running(false);
        };
        let grace = Duration::from_millis(p.grace_ms.unwrap_or(0).min(MAX_GRACE_MS));
        let mut st = rec.lock();
        match st.phase {
            Phase::Starting => {
                st.cancelled = true;
                running(true)
            }
            Phase::Running => {
                let again = std::mem::replace(&mut st.terminating, true);
                let pid = st.pid;
                let esc = st.escalation.clone();
                drop(st);
                rec.force_close.notify_one();
                let kill = move |sig| {
                    if let Some(e) = &esc {
                        e.abandon();
                        e.signal(sig);
                    }
                    let _ = group::kill_group(pid, sig);
                };
                if grace.is_zero() || again {
                    kill(libc::SIGKILL);
                } else {
                    kill(libc::SIGTERM);
                    let mut exited = rec.exited.subscribe();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(grace, exited.wait_for(|e| *e)).await;
                        kill(libc::SIGKILL);
                    });
                }
                running(true)
            }
            Phase::Exited => {
                st.terminating = true;
                let pid = st.pid;
                let esc = st.escalation.clone();
                drop(st);
                if let Some(e) = esc {
                    e.abandon();
                    e.signal(libc::SIGKILL);
                }
                let _ = group::kill_group(pid, libc::SIGKILL);
                rec.force_close.notify_one();
                running(false)
            }
            Phase::Closed => running(false),
        }
    }

    pub fn resize(&self, p: ResizeParams) -> Result<(), ProcessError> {
        let size = TermSize {
            rows: p.rows,
            cols: p.cols,
        };
        size.check().map_err(ProcessError::InvalidParams)?;
        let rec = self
            .get(&p.process_id)
            .ok_or_else(|| ProcessError::Unknown(p.process_id.clone()))?;
        let st = rec.lock();
        if st.phase == Phase::Starting {
            return Err(ProcessError::Starting(p.process_id));
        }
        if !rec.tty {
            return Err(ProcessError::NoTerminal(p.process_id));
        }
        match &st.pty {
            Some(m) if st.phase == Phase::Running => {
                pty::resize(std::os::fd::AsRawFd::as_raw_fd(&**m), size)
                    .map_err(ProcessError::Resize)
            }
            _ => Ok(()),
        }
    }

    /// Shutdown: SIGKILL the process group of every managed process and of
    /// every escalated command, and stop the escalation servers.
    pub fn kill_all(&self) {
        let r = self.records();
        for rec in r.map.values() {
            let st = rec.lock();
            if let Some(e) = &st.escalation {
                e.stop();
                e.signal(libc::SIGKILL);
            }
            if st.pid > 0 && st.phase != Phase::Closed {
                let _ = group::kill_group(st.pid, libc::SIGKILL);
            }
        }
    }
}
