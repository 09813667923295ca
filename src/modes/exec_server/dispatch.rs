//! Handshake gate and method routing (docs/protocol.md "Transport", "Handshake"). Lines are classified
//! and gated in wire order; each admitted request then runs in its own task.

use super::decode::{classify, Incoming};
use super::transport::InputEvent;
use crate::fs::{FsError, FsService, ReadFileOut};
use crate::http::HttpService;
use crate::process::ProcessManager;
use crate::protocol::handshake::{
    EnvironmentInfo, InitializeParams, InitializeResult, StatusResult,
};
use crate::protocol::process::*;
use crate::protocol::{
    self, methods, EmptyResult, ErrorOut, NoParams, RequestId, ResponseOut, MALFORMED_ID,
};
use crate::rpc::error::RpcError;
use crate::rpc::outbound::{Base64File, Body, Outbound};
use crate::tools::ToolsService;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Requests in flight at once (docs/protocol.md "Transport").
pub const MAX_IN_FLIGHT: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    New,
    Initialized,
    Ready,
}

/// The gate's `<family>` of a known method; `None` for an unknown method.
pub fn family(method: &str) -> Option<&'static str> {
    match method {
        methods::INITIALIZE => Some("initialize"),
        methods::ENVIRONMENT_INFO => Some("environment info"),
        methods::ENVIRONMENT_STATUS => Some("environment status"),
        methods::ENVIRONMENT_CONFIG_READ => Some("environment config"),
        methods::PROCESS_START
        | methods::PROCESS_READ
        | methods::PROCESS_WRITE
        | methods::PROCESS_SIGNAL
        | methods::PROCESS_TERMINATE
        | methods::PROCESS_RESIZE
        | methods::PROCESS_CLOSE_STDIN => Some("exec"),
        methods::FS_READ_FILE
        | methods::FS_WRITE_FILE
        | methods::FS_CREATE_DIRECTORY
        | methods::FS_GET_METADATA
        | methods::FS_READ_DIRECTORY
        | methods::FS_REMOVE
        | methods::FS_COPY
        | methods::FS_CANONICALIZE
        | methods::FS_WALK
        | methods::FS_OPEN
        | methods::FS_READ_BLOCK
        | methods::FS_WRITE_BLOCK
        | methods::FS_CLOSE
        | methods::FS_WATCH_MISSING => Some("filesystem"),
        methods::TOOLS_LIST | methods::TOOLS_CALL => Some("tools"),
        methods::HTTP_REQUEST => Some("http"),
        methods::CAPABILITIES_DISCOVER_V2 => Some("capability discovery"),
        _ => None,
    }
}

/// What request handlers work on: one per connection.
pub struct Services {
    pub procs: Arc<ProcessManager>,
    pub fs: FsService,
    pub tools: ToolsService,
    pub http: HttpService,
    pub info: EnvironmentInfo,
}

/// Work to do after a response has been queued (e.g. arming a watch, so that its
/// notifications follow the response).
pub type After = Box<dyn FnOnce() + Send>;

pub struct Dispatcher {
    out: Outbound,
    services: Arc<Services>,
    session_id: String,
    state: Handshake,
    in_flight: Arc<Semaphore>,
}

/// Encode a response line.
pub fn response_line(id: &RequestId, result: Result<Box<RawValue>, RpcError>) -> Vec<u8> {
    match result {
        Ok(v) => protocol::to_line(&ResponseOut { id, result: v }),
        Err(e) => protocol::to_line(&ErrorOut {
            error: &e.to_object(),
            id,
        }),
    }
}

fn decode<T: DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    Ok(serde_json::from_value(params)?)
}

/// Serialize a result now, so that members keep the order of their struct.
fn ok<T: Serialize>(v: T) -> Result<Box<RawValue>, RpcError> {
    Ok(serde_json::value::to_raw_value(&v).expect("results always serialize"))
}

impl Dispatcher {
    pub fn new(out: Outbound, procs: Arc<ProcessManager>, info: EnvironmentInfo) -> Self {
        let fs = FsService::new(out.clone(), procs.spawner());
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        let tools = ToolsService::new(procs.clone(), info.shell.path.clone(), cwd);
        let http = HttpService::new(out.clone());
        Dispatcher {
            out,
            services: Arc::new(Services {
                procs,
                fs,
                tools,
                http,
                info,
            }),
            session_id: uuid::Uuid::new_v4().to_string(),
            state: Handshake::New,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Serve input until end of file.
    pub async fn run(mut self, mut input: mpsc::Receiver<InputEvent>) {
        while let Some(ev) = input.recv().await {
            match ev {
                InputEvent::Line(line) => self.line(&line).await,
                InputEvent::TooLong => {
                    let e = RpcError::malformed(format!(
                        "line exceeds the limit of {} bytes",
                        super::transport::MAX_LINE
                    ));
                    self.send_error(&MALFORMED_ID, e).await;
                }
                InputEvent::Eof => break,
            }
        }
    }

    async fn send_error(&self, id: &RequestId, e: RpcError) {
        self.out.send(response_line(id, Err(e)), None).await;
    }

    async fn line(&mut self, line: &[u8]) {
        match classify(line) {
            Incoming::Malformed(detail) => {
                self.send_error(&MALFORMED_ID, RpcError::malformed(detail))
                    .await
            }
            Incoming::Notification { method, .. } => self.notification(&method).await,
            Incoming::Response { id, outcome } => {
                if !self.services.procs.requests().complete(&id, outcome) {
                    tracing::info!(%id, "ignoring a response that matches no server request");
                }
            }
            Incoming::Request { id, method, params } => self.request(id, method, params).await,
        }
    }

    async fn notification(&mut self, method: &str) {
        if method == methods::INITIALIZED {
            match self.state {
                Handshake::New => {
                    let e = RpcError::invalid_request(
                        "client must call initialize before sending initialized",
                    );
                    self.send_error(&MALFORMED_ID, e).await;
                }
                _ => self.state = Handshake::Ready,
            }
            return;
        }
        let e = RpcError::invalid_request(format!(
            "client notification `{method}` is not supported (only `initialized` may be sent without an id)"
        ));
        self.send_error(&MALFORMED_ID, e).await;
    }

    async fn request(&mut self, id: RequestId, method: String, params: Value) {
        let Some(family) = family(&method) else {
            return self
                .send_error(&id, RpcError::method_not_found(&method))
                .await;
        };
        if method == methods::INITIALIZE {
            let r = self.initialize(params);
            self.out.send(response_line(&id, r), None).await;
            return;
        }
        let gate = match self.state {
            Handshake::New => Some(format!(
                "client must call initialize before using {family} methods"
            )),
            Handshake::Initialized => Some(format!(
                "client must send initialized before using {family} methods"
            )),
            Handshake::Ready => None,
        };
        if let Some(msg) = gate {
            return self.send_error(&id, RpcError::invalid_request(msg)).await;
        }
        // Waiting here stops reading stdin while 1,024 requests are unanswered.
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        // Writes and closes of a process are queued here, in wire order.
        if method == methods::PROCESS_WRITE || method == methods::PROCESS_CLOSE_STDIN {
            let procs = &self.services.procs;
            let fut: Pin<Box<dyn Future<Output = Result<Box<RawValue>, RpcError>> + Send>> =
                if method == methods::PROCESS_WRITE {
                    match decode::<WriteParams>(params) {
                        Ok(p) => {
                            let f = procs.write(p);
                            Box::pin(async move { ok(f.await?) })
                        }
                        Err(e) => Box::pin(std::future::ready(Err(e))),
                    }
                } else {
                    match decode::<ProcessIdParams>(params) {
                        Ok(p) => {
                            let f = procs.close_stdin(p);
                            Box::pin(async move { ok(f.await?) })
                        }
                        Err(e) => Box::pin(std::future::ready(Err(e))),
                    }
                };
            let out = self.out.clone();
            tokio::spawn(async move {
                let result = fut.await;
                out.send(response_line(&id, result), None).await;
                drop(permit);
            });
            return;
        }
        let out = self.out.clone();
        let services = self.services.clone();
        tokio::spawn(async move {
            if method == methods::FS_READ_FILE {
                read_file(&id, params, &services, &out).await;
                drop(permit);
                return;
            }
            let mut after = None;
            let result = handle(&method, params, &services, &mut after).await;
            out.send(response_line(&id, result), None).await;
            drop(permit);
            if let Some(after) = after {
                after();
            }
        });
    }

    fn initialize(&mut self, params: Value) -> Result<Box<RawValue>, RpcError> {
        if self.state != Handshake::New {
            return Err(RpcError::invalid_request(
                "initialize may only be sent once per connection",
            ));
        }
        let r = initialize_result(params, &self.session_id, &self.services.info)?;
        self.state = Handshake::Initialized;
        Ok(r)
    }

    /// Continue a connection whose first line, `initialize`, was answered before
    /// the dispatcher started (see `super::early_handshake`).
    pub fn after_early_initialize(mut self, e: EarlyHandshake) -> Self {
        self.session_id = e.session_id;
        if e.initialized {
            self.state = Handshake::Initialized;
        }
        self
    }
}

/// An `initialize` answered before the dispatcher existed: the session id it
/// gave, and whether it succeeded (a failed one leaves the handshake to do).
pub struct EarlyHandshake {
    pub session_id: String,
    pub initialized: bool,
}

/// The result of a first `initialize` with `params`.
pub fn initialize_result(
    params: Value,
    session_id: &str,
    info: &EnvironmentInfo,
) -> Result<Box<RawValue>, RpcError> {
    let p: InitializeParams = decode(params)?;
    if let Some(resume) = p.resume_session_id {
        return Err(RpcError::invalid_request(format!(
            "unknown session id {resume}"
        )));
    }
    tracing::info!(client = %p.client_name, "initialize");
    ok(InitializeResult {
        session_id: session_id.to_string(),
        environment_info: info.clone(),
    })
}

/// `fs/readFile`: the result line is its head, then the base64 data as it is, then
/// its tail, so a result of hundreds of megabytes is neither escaped nor copied
/// into a line again. The bytes on the wire are what serializing the result gives.
async fn read_file(id: &RequestId, params: Value, s: &Services, out: &Outbound) {
    let r = match decode(params) {
        Ok(p) => s.fs.read_file_out(p).await.map_err(RpcError::from),
        Err(e) => Err(e),
    };
    match r {
        Ok(res) => {
            let data = match res {
                ReadFileOut::Base64(text) => Body::Owned(text.into_bytes()),
                ReadFileOut::Stream(file, len) => {
                    let id = id.clone();
                    Body::Base64File(Base64File {
                        file,
                        len,
                        error_line: Box::new(move |e| {
                            let e = FsError::Io(std::io::Error::new(e.kind(), e.to_string()));
                            response_line(&id, Err(RpcError::from(e)))
                        }),
                    })
                }
            };
            let head = protocol::read_file_head(id);
            out.send_parts(head, data, protocol::READ_FILE_TAIL, None)
                .await;
        }
        Err(e) => {
            out.send(response_line(id, Err(e)), None).await;
        }
    }
}

/// Params for methods without any: absent, `null` or `{}`.
fn no_params(params: Value) -> Result<(), RpcError> {
    match params {
        Value::Null => Ok(()),
        Value::Object(m) if m.is_empty() => Ok(()),
        Value::Object(_) => decode::<NoParams>(params).map(|_| ()),
        other => Err(RpcError::invalid_params(format!(
            "invalid type: {}, expected no params (none, null or {{}})",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

async fn handle(
    method: &str,
    params: Value,
    s: &Services,
    after: &mut Option<After>,
) -> Result<Box<RawValue>, RpcError> {
    let procs = &s.procs;
    let fs = &s.fs;
    match method {
        methods::ENVIRONMENT_INFO => {
            no_params(params)?;
            let mut info = s.info.clone();
            if let Some(t) = info.tether.as_mut() {
                t.lifetime = lifetime_guard().await;
            }
            ok(&info)
        }
        methods::ENVIRONMENT_STATUS => {
            no_params(params)?;
            ok(StatusResult {
                status: "ready".into(),
            })
        }
        methods::ENVIRONMENT_CONFIG_READ => {
            ok(crate::envconfig::read_blocking(decode(params)?).await?)
        }
        methods::PROCESS_START => ok(procs.start(decode(params)?).await?),
        methods::PROCESS_READ => ok(procs.read(decode(params)?).await?),
        methods::PROCESS_SIGNAL => {
            procs.signal(decode(params)?)?;
            ok(EmptyResult {})
        }
        methods::PROCESS_TERMINATE => ok(procs.terminate(decode(params)?)?),
        methods::PROCESS_RESIZE => {
            procs.resize(decode(params)?)?;
            ok(EmptyResult {})
        }
        methods::CAPABILITIES_DISCOVER_V2 => {
            let p: crate::protocol::discovery::DiscoverV2Params = decode(params)?;
            p.cwd.to_path()?;
            let homes = crate::discovery::Homes::from_env();
            let r = tokio::task::spawn_blocking(move || {
                crate::discovery::discover_v2(&homes, p.sandbox.as_ref())
            })
            .await
            .map_err(|e| RpcError::internal(e.to_string()))??;
            ok(r)
        }
        methods::FS_READ_FILE => ok(fs.read_file(decode(params)?).await?),
        methods::FS_WRITE_FILE => ok(fs.write_file(decode(params)?).await?),
        methods::FS_CREATE_DIRECTORY => ok(fs.create_directory(decode(params)?).await?),
        methods::FS_GET_METADATA => ok(fs.get_metadata(decode(params)?).await?),
        methods::FS_READ_DIRECTORY => ok(fs.read_directory(decode(params)?).await?),
        methods::FS_REMOVE => ok(fs.remove(decode(params)?).await?),
        methods::FS_COPY => ok(fs.copy(decode(params)?).await?),
        methods::FS_CANONICALIZE => ok(fs.canonicalize(decode(params)?).await?),
        methods::FS_WALK => ok(fs.walk(decode(params)?).await?),
        methods::FS_OPEN => ok(fs.open(decode(params)?).await?),
        methods::FS_READ_BLOCK => ok(fs.read_block(decode(params)?).await?),
        methods::FS_WRITE_BLOCK => ok(fs.write_block(decode(params)?).await?),
        methods::FS_CLOSE => ok(fs.close(decode(params)?)),
        methods::FS_WATCH_MISSING => {
            let p: crate::protocol::fs::WatchMissingParams = decode(params)?;
            let id = p.watch_id;
            let r = fs.watch_missing(p)?;
            let watches = fs.watches.clone();
            *after = Some(Box::new(move || watches.arm(id)));
            ok(r)
        }
        methods::TOOLS_LIST => {
            no_params(params)?;
            ok(s.tools.list())
        }
        methods::TOOLS_CALL => ok(s.tools.call(decode(params)?).await?),
        methods::HTTP_REQUEST => {
            // Body frames of a streamed response must follow the response (docs/protocol.md "Transport").
            let (r, frames) = s.http.request(decode(params)?).await?;
            *after = frames;
            ok(r)
        }
        other => Err(RpcError::method_not_found(other)),
    }
}

/// `tether.lifetime` of `environment/info`: the guard's mode, once it has
/// reported (it is not waited for in `initialize`, which stays fast).
async fn lifetime_guard() -> Option<crate::protocol::handshake::LifetimeGuard> {
    use crate::spawn::lifeguard::{self, Mode};
    let mode = tokio::task::spawn_blocking(|| lifeguard::mode(std::time::Duration::from_secs(1)))
        .await
        .ok()??;
    Some(match mode {
        Mode::Cgroup { path } => crate::protocol::handshake::LifetimeGuard {
            guard: "cgroup".into(),
            cgroup: Some(path),
            reason: None,
        },
        Mode::ProcessGroups { reason } => crate::protocol::handshake::LifetimeGuard {
            guard: "processGroups".into(),
            cgroup: None,
            reason: Some(reason),
        },
    })
}
