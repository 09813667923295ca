//! A Rust client for a Tether (or any Codex-dialect) exec-server.
//!
//! [`Client::connect`] starts a server program behind a [`ChildGuard`] (own
//! process group, stdin/stdout piped, stderr forwarded to `tracing` at debug
//! level), performs the handshake within a timeout, and then offers typed async
//! calls for the methods of docs/protocol.md "Handshake", "Environment methods", "Processes" ([`Client::call`] speaks any other
//! method). Responses are matched by id, so calls may run concurrently and
//! finish in any order. Each process's notifications arrive on its own
//! [`ProcessEvents`] stream, in `seq` order, ending with `Closed`. Requests the
//! server sends (such as `process/approveExec`) go to the [`RequestHandler`] in
//! [`ConnectOptions`]. When the server goes away, every pending call and every
//! stream fails with [`ClientError::Disconnected`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether::client::ClientError> {
//! use tether::client::{start_params, Client, ConnectOptions, ProcessEvent, ServerCommand};
//! let (client, _info) = Client::connect(
//!     &ServerCommand::new("tether").arg("exec-server"),
//!     ConnectOptions::new("my-agent"),
//! )
//! .await?;
//! let params = start_params("p1", ["echo", "hi"], std::path::Path::new("/tmp"));
//! let (_, mut events) = client.start_with_events(&params).await?;
//! while let Some(ev) = events.recv().await? {
//!     if let ProcessEvent::Output(o) = ev {
//!         print!("{}", String::from_utf8_lossy(&o.chunk.0));
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! `environments.toml` (the Codex CLI's list of executors) is read by
//! [`environments`].

mod calls;
mod command;
mod connection;
pub mod environments;
mod guard;
mod requests;
mod stderr;

pub use calls::start_params;
pub use command::ServerCommand;
pub use connection::{Notification, ProcessEvent, ProcessEvents, EVENT_BUFFER};
pub use guard::{ChildGuard, DEFAULT_GRACE};
pub use requests::{
    ApproveExecParams, ApproveExecResult, ExecDecision, HandlerFuture, RequestHandler,
    ServerRequest, APPROVE_EXEC,
};

use crate::protocol::handshake::{InitializeParams, InitializeResult};
use crate::protocol::{methods, ErrorObject, RequestId};
use connection::Shared;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The default handshake timeout.
pub const DEFAULT_INITIALIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a client call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the server: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the server went away")]
    Disconnected,
    #[error("server error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    #[error("cannot decode the result of {method}: {source}")]
    Decode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the params of {method}: {source}")]
    Encode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no answer to {what} within {after:?}")]
    Timeout { what: String, after: Duration },
}

/// How to connect: the name sent in `initialize`, the handshake timeout, the
/// guard's grace period, and the handler for server requests.
#[derive(Clone)]
pub struct ConnectOptions {
    pub client_name: String,
    pub initialize_timeout: Duration,
    pub grace: Duration,
    pub handler: Option<Arc<dyn RequestHandler>>,
}

impl ConnectOptions {
    pub fn new(client_name: impl Into<String>) -> Self {
        ConnectOptions {
            client_name: client_name.into(),
            initialize_timeout: DEFAULT_INITIALIZE_TIMEOUT,
            grace: DEFAULT_GRACE,
            handler: None,
        }
    }

    pub fn initialize_timeout(mut self, t: Duration) -> Self {
        self.initialize_timeout = t;
        self
    }

    pub fn grace(mut self, g: Duration) -> Self {
        self.grace = g;
        self
    }

    pub fn handler(mut self, h: impl RequestHandler) -> Self {
        self.handler = Some(Arc::new(h));
        self
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions::new("tether-client")
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("client_name", &self.client_name)
            .field("initialize_timeout", &self.initialize_timeout)
            .field("grace", &self.grace)
            .field("handler", &self.handler.is_some())
            .finish()
    }
}

/// A connection to a server. Dropping it closes the server's input and then
/// drops the [`ChildGuard`], which stops the server (see there).
pub struct Client {
    shared: Arc<Shared>,
    next_id: AtomicI64,
    stderr: Option<stderr::Tail>,
    server_pid: Option<u32>,
    // Declared last: dropped after `Drop::drop` closed the server's input.
    guard: Option<ChildGuard>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.close_input();
    }
}

impl Client {
    /// Start the server and perform the handshake (`initialize`, then
    /// `initialized`) within `opts.initialize_timeout`. On failure the server is
    /// stopped before this returns.
    pub async fn connect(
        cmd: &ServerCommand,
        opts: ConnectOptions,
    ) -> Result<(Client, InitializeResult), ClientError> {
        let client = Client::spawn(cmd, &opts)?;
        let info = client.handshake(&opts).await?;
        Ok((client, info))
    }

    /// Start the server without the handshake (for callers that want to send
    /// `initialize` themselves).
    pub fn spawn(cmd: &ServerCommand, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let mut guard = ChildGuard::spawn(cmd).map_err(ClientError::Spawn)?;
        guard.set_grace(opts.grace);
        let stdin = guard.take_stdin().expect("stdin is piped");
        let stdout = guard.take_stdout().expect("stdout is piped");
        let pid = guard.pid();
        let tail = guard.take_stderr().map(|e| stderr::forward(e, pid));
        let mut client = Client::over(stdout, stdin, opts);
        client.stderr = tail;
        client.server_pid = Some(pid);
        client.guard = Some(guard);
        Ok(client)
    }

    /// A client over any pair of byte streams (`output` is what the server
    /// writes, `input` what it reads), with no process to own.
    pub fn over<R, W>(output: R, input: W, opts: &ConnectOptions) -> Client
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        Client {
            shared: connection::start(output, input, opts.handler.clone()),
            next_id: AtomicI64::new(1),
            stderr: None,
            server_pid: None,
            guard: None,
        }
    }

    /// `initialize` then `initialized`, within `opts.initialize_timeout`.
    pub async fn handshake(&self, opts: &ConnectOptions) -> Result<InitializeResult, ClientError> {
        let t = opts.initialize_timeout;
        let info = tokio::time::timeout(t, self.initialize(&opts.client_name))
            .await
            .map_err(|_| ClientError::Timeout {
                what: methods::INITIALIZE.into(),
                after: t,
            })??;
        self.initialized()?;
        Ok(info)
    }

    /// The `initialize` request alone.
    pub async fn initialize(&self, client_name: &str) -> Result<InitializeResult, ClientError> {
        let params = InitializeParams {
            client_name: client_name.into(),
            resume_session_id: None,
        };
        self.call(methods::INITIALIZE, params).await
    }

    /// The `initialized` notification alone.
    pub fn initialized(&self) -> Result<(), ClientError> {
        self.notify(methods::INITIALIZED, serde_json::json!({}))
    }

    /// The server's pid (and process group id), when this client started it.
    pub fn server_pid(&self) -> Option<u32> {
        self.server_pid
    }

    /// The last lines the server wrote to stderr (at most 32).
    pub fn server_stderr_tail(&self) -> Vec<String> {
        self.stderr.as_ref().map(|t| t.lines()).unwrap_or_default()
    }

    /// Whether the server's output has ended.
    pub fn is_disconnected(&self) -> bool {
        self.shared.is_disconnected()
    }

    /// The guard of the server process, to stop it early or read its status.
    pub fn guard_mut(&mut self) -> Option<&mut ChildGuard> {
        self.guard.as_mut()
    }

    /// Call any method and decode its result. Dropping the future forgets the call
    /// (a late response is ignored).
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R, ClientError> {
        #[derive(Serialize)]
        struct Request<'a, P> {
            id: &'a RequestId,
            method: &'a str,
            params: P,
        }
        struct Forget<'a>(&'a Shared, &'a RequestId);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget(self.1);
            }
        }

        let id = RequestId::Int(self.next_id.fetch_add(1, Ordering::Relaxed));
        let line = serde_json::to_vec(&Request {
            id: &id,
            method,
            params,
        })
        .map_err(|source| ClientError::Encode {
            method: method.into(),
            source,
        })?;
        let rx = self.shared.register(id.clone())?;
        let _forget = Forget(&self.shared, &id);
        self.shared.send(line)?;
        match rx.await {
            Ok(Ok(raw)) => serde_json::from_str(raw.get()).map_err(|source| ClientError::Decode {
                method: method.into(),
                source,
            }),
            Ok(Err(e)) => Err(ClientError::Rpc(e)),
            Err(_) => Err(ClientError::Disconnected),
        }
    }

    /// Send a notification.
    pub fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), ClientError> {
        let line = serde_json::to_vec(&serde_json::json!({"method": method, "params": params}))
            .map_err(|source| ClientError::Encode {
                method: method.into(),
                source,
            })?;
        self.shared.send(line)
    }

    /// The events of one process. Subscribe **before** `process/start`: the server
    /// may send events before its response, and events of a process nobody
    /// subscribed to are dropped. A second subscription to the same id replaces
    /// the first (whose stream then ends with `Disconnected`).
    pub fn subscribe(&self, process_id: &str) -> ProcessEvents {
        self.shared.subscribe(process_id)
    }

    /// Notifications that are not process events (e.g. `fs/missingChanged`), from
    /// now on. A second call replaces the first receiver.
    pub fn notifications(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notification> {
        self.shared.take_notifications()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Client {
    fn shared_pending_is_empty(&self) -> bool {
        self.shared.pending_is_empty()
    }
}
