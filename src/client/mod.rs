//! A Rust client for a Tether (or any Codex-dialect) exec-server: spawn the server
//! behind a [`ChildGuard`], call methods, receive notifications per process.
//!
//! This is the first cut used by `tether run`; it speaks the protocol in full
//! through [`Client::call`] and has typed helpers for the common calls.

use crate::protocol::handshake::{InitializeParams, InitializeResult};
use crate::protocol::process::*;
use crate::protocol::{methods, ErrorObject, RequestId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Errors a client call can end with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the server: {0}")]
    Spawn(std::io::Error),
    #[error("the server went away")]
    Disconnected,
    #[error("server error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    #[error("unexpected answer from the server: {0}")]
    Decode(serde_json::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// A notification from the server.
#[derive(Debug, Clone)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

/// Events of one process, in the order the server sent them.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    Output(OutputParams),
    Exited(ExitedParams),
    Closed(ClosedParams),
}

/// How to start a server: a program (no shell), its arguments, env overlay, cwd.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub program: OsString,
    pub arg0: Option<OsString>,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<std::path::PathBuf>,
}

impl ServerCommand {
    /// This very binary in `exec-server` mode, found through `/proc/self/exe`.
    pub fn this_exe() -> Self {
        ServerCommand {
            program: "/proc/self/exe".into(),
            arg0: Some("tether".into()),
            args: vec!["exec-server".into()],
            env: Vec::new(),
            cwd: None,
        }
    }
}

/// Owns the server process. Dropping it closes the server's stdin, sends SIGTERM to
/// the server's process group, waits up to `grace`, then SIGKILLs the group and reaps.
pub struct ChildGuard {
    child: Child,
    pub grace: Duration,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let pgid = self.child.id() as i32;
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above; the group may be empty by now, which is fine.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

type Pending = Arc<Mutex<HashMap<RequestId, oneshot::Sender<Result<Value, ErrorObject>>>>>;
type Routes = Arc<Mutex<Routing>>;

#[derive(Default)]
struct Routing {
    by_process: HashMap<String, mpsc::UnboundedSender<ProcessEvent>>,
    /// Events that arrived before anyone subscribed to their process.
    early: HashMap<String, Vec<ProcessEvent>>,
    other: Option<mpsc::UnboundedSender<Notification>>,
    disconnected: bool,
}

/// A connection to a running server.
pub struct Client {
    lines: Mutex<Option<std::sync::mpsc::Sender<Vec<u8>>>>,
    pending: Pending,
    routes: Routes,
    next_id: AtomicI64,
    _guard: ChildGuard,
}

fn route(routes: &Routes, n: Notification) {
    let mut r = routes.lock().unwrap_or_else(|e| e.into_inner());
    let event = match n.method.as_str() {
        methods::PROCESS_OUTPUT => serde_json::from_value(n.params.clone())
            .ok()
            .map(ProcessEvent::Output),
        methods::PROCESS_EXITED => serde_json::from_value(n.params.clone())
            .ok()
            .map(ProcessEvent::Exited),
        methods::PROCESS_CLOSED => serde_json::from_value(n.params.clone())
            .ok()
            .map(ProcessEvent::Closed),
        _ => None,
    };
    let Some(event) = event else {
        if let Some(tx) = &r.other {
            let _ = tx.send(n);
        }
        return;
    };
    let id = match &event {
        ProcessEvent::Output(p) => p.process_id.clone(),
        ProcessEvent::Exited(p) => p.process_id.clone(),
        ProcessEvent::Closed(p) => p.process_id.clone(),
    };
    let closed = matches!(event, ProcessEvent::Closed(_));
    match r.by_process.get(&id) {
        Some(tx) => {
            let _ = tx.send(event);
            if closed {
                r.by_process.remove(&id);
            }
        }
        None => r.early.entry(id).or_default().push(event),
    }
}

impl Client {
    /// Spawn the server (own process group, stdin/stdout piped, stderr inherited).
    pub fn spawn(cmd: &ServerCommand) -> Result<Client, ClientError> {
        let mut c = Command::new(&cmd.program);
        if let Some(a0) = &cmd.arg0 {
            c.arg0(a0);
        }
        c.args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        if let Some(cwd) = &cmd.cwd {
            c.current_dir(cwd);
        }
        let mut child = c.spawn().map_err(ClientError::Spawn)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");

        let (line_tx, line_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            while let Ok(line) = line_rx.recv() {
                if stdin.write_all(&line).is_err() {
                    break;
                }
            }
        });

        let pending: Pending = Arc::default();
        let routes: Routes = Arc::default();
        let (p2, r2) = (pending.clone(), routes.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                    tracing::warn!("server wrote a line that is not JSON");
                    continue;
                };
                if let Some(method) = v.get("method").and_then(Value::as_str) {
                    if v.get("id").is_none() {
                        let params = v.get("params").cloned().unwrap_or(Value::Null);
                        route(
                            &r2,
                            Notification {
                                method: method.to_string(),
                                params,
                            },
                        );
                    }
                    continue;
                }
                let Some(id) = v
                    .get("id")
                    .cloned()
                    .and_then(|i| serde_json::from_value::<RequestId>(i).ok())
                else {
                    continue;
                };
                let outcome = match (v.get("result"), v.get("error")) {
                    (Some(r), _) => Ok(r.clone()),
                    (None, Some(e)) => {
                        Err(serde_json::from_value(e.clone()).unwrap_or(ErrorObject {
                            code: -32603,
                            message: e.to_string(),
                        }))
                    }
                    (None, None) => continue,
                };
                let tx = p2.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.send(outcome);
                }
            }
            // Disconnected: fail every pending call and end every event stream.
            p2.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let mut r = r2.lock().unwrap_or_else(|e| e.into_inner());
            r.by_process.clear();
            r.other = None;
            r.disconnected = true;
        });

        Ok(Client {
            lines: Mutex::new(Some(line_tx)),
            pending,
            routes,
            next_id: AtomicI64::new(1),
            _guard: ChildGuard {
                child,
                grace: Duration::from_secs(2),
            },
        })
    }

    /// Call a method and wait for its result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R, ClientError> {
        let id = RequestId::Int(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.send_line(&msg)?;
        match rx.await {
            Ok(Ok(v)) => serde_json::from_value(v).map_err(ClientError::Decode),
            Ok(Err(e)) => Err(ClientError::Rpc(e)),
            Err(_) => Err(ClientError::Disconnected),
        }
    }

    fn send_line(&self, msg: &Value) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(msg).map_err(ClientError::Decode)?;
        line.push(b'\n');
        let guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .ok_or(ClientError::Disconnected)?
            .send(line)
            .map_err(|_| ClientError::Disconnected)
    }

    /// Send a notification.
    pub fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), ClientError> {
        self.send_line(&serde_json::json!({"method": method, "params": params}))
    }

    /// `initialize` then `initialized`, within `timeout`.
    pub async fn initialize(
        &self,
        client_name: &str,
        timeout: Duration,
    ) -> Result<InitializeResult, ClientError> {
        let params = InitializeParams {
            client_name: client_name.into(),
            resume_session_id: None,
        };
        let r = tokio::time::timeout(timeout, self.call(methods::INITIALIZE, params))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        self.notify(methods::INITIALIZED, serde_json::json!({}))?;
        Ok(r)
    }

    /// The events of one process, in seq order, ending after `process/closed`.
    /// Subscribe before `process/start`: events may arrive before its response.
    pub fn subscribe(&self, process_id: &str) -> mpsc::UnboundedReceiver<ProcessEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut closed = false;
        for ev in r.early.remove(process_id).unwrap_or_default() {
            closed |= matches!(ev, ProcessEvent::Closed(_));
            let _ = tx.send(ev);
        }
        if !closed && !r.disconnected {
            r.by_process.insert(process_id.to_string(), tx);
        }
        rx
    }

    pub async fn start(&self, p: &StartParams) -> Result<StartResult, ClientError> {
        self.call(methods::PROCESS_START, p).await
    }

    pub async fn write(&self, process_id: &str, bytes: &[u8]) -> Result<WriteStatus, ClientError> {
        let p = serde_json::json!({"processId": process_id, "chunk": crate::protocol::bytes::encode(bytes)});
        let r: WriteResult = self.call(methods::PROCESS_WRITE, p).await?;
        Ok(r.status)
    }

    pub async fn close_stdin(&self, process_id: &str) -> Result<WriteStatus, ClientError> {
        let r: WriteResult = self
            .call(
                methods::PROCESS_CLOSE_STDIN,
                ProcessIdParams {
                    process_id: process_id.into(),
                },
            )
            .await?;
        Ok(r.status)
    }

    pub async fn signal(&self, process_id: &str, signal: SignalName) -> Result<(), ClientError> {
        let p = SignalParams {
            process_id: process_id.into(),
            signal,
        };
        let _: Value = self.call(methods::PROCESS_SIGNAL, p).await?;
        Ok(())
    }

    pub async fn terminate(&self, process_id: &str) -> Result<bool, ClientError> {
        let p = TerminateParams {
            process_id: process_id.into(),
            grace_ms: None,
        };
        let r: TerminateResult = self.call(methods::PROCESS_TERMINATE, p).await?;
        Ok(r.running)
    }
}
