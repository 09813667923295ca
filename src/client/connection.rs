//! The connection to a server over two byte streams: one thread owns the server's
//! input and writes whole lines; one thread owns its output, matches responses to
//! pending calls by id, routes process notifications to their streams, and hands
//! server requests to the caller's handler. When the output ends, every pending
//! call and every stream fails with [`ClientError::Disconnected`].

use super::requests::{RequestHandler, ServerRequest};
use super::ClientError;
use crate::protocol::process::{ClosedParams, ExitedParams, OutputParams};
use crate::protocol::{codes, methods, ErrorObject, RequestId};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

/// How many events a process stream buffers before the connection waits for the
/// reader of that stream (back-pressure reaches the server, and its children).
pub const EVENT_BUFFER: usize = 256;

/// A notification that is not a process event (or a process event nobody
/// subscribed to is dropped instead).
#[derive(Debug, Clone)]
pub struct Notification {
    pub method: String,
    pub params: Value,
}

/// An event of one process. The stream of a process delivers them in `seq`
/// order, and `Closed` is the last.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    Output(OutputParams),
    Exited(ExitedParams),
    Closed(ClosedParams),
}

impl ProcessEvent {
    pub fn seq(&self) -> u64 {
        match self {
            ProcessEvent::Output(p) => p.seq,
            ProcessEvent::Exited(p) => p.seq,
            ProcessEvent::Closed(p) => p.seq,
        }
    }

    pub fn process_id(&self) -> &str {
        match self {
            ProcessEvent::Output(p) => &p.process_id,
            ProcessEvent::Exited(p) => &p.process_id,
            ProcessEvent::Closed(p) => &p.process_id,
        }
    }
}

type Reply = Result<Box<RawValue>, ErrorObject>;

#[derive(Default)]
struct Pending {
    calls: HashMap<RequestId, oneshot::Sender<Reply>>,
    closed: bool,
}

struct Route {
    tx: mpsc::Sender<ProcessEvent>,
    generation: u64,
    last_seq: u64,
}

#[derive(Default)]
struct Routes {
    by_process: HashMap<String, Route>,
    notifications: Option<mpsc::UnboundedSender<Notification>>,
    generation: u64,
    closed: bool,
}

/// State shared by the client handle, its streams and the two I/O threads.
pub(crate) struct Shared {
    out: Mutex<Option<std_mpsc::Sender<Vec<u8>>>>,
    pending: Mutex<Pending>,
    routes: Mutex<Routes>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Queue one line (without its `\n`) for the server.
    pub(crate) fn send(&self, mut line: Vec<u8>) -> Result<(), ClientError> {
        line.push(b'\n');
        lock(&self.out)
            .as_ref()
            .ok_or(ClientError::Disconnected)?
            .send(line)
            .map_err(|_| ClientError::Disconnected)
    }

    /// Stop sending: the writer thread closes the server's input once the lines
    /// already queued are written.
    pub(crate) fn close_input(&self) {
        lock(&self.out).take();
    }

    pub(crate) fn register(&self, id: RequestId) -> Result<oneshot::Receiver<Reply>, ClientError> {
        let mut p = lock(&self.pending);
        if p.closed {
            return Err(ClientError::Disconnected);
        }
        let (tx, rx) = oneshot::channel();
        p.calls.insert(id, tx);
        Ok(rx)
    }

    pub(crate) fn forget(&self, id: &RequestId) {
        lock(&self.pending).calls.remove(id);
    }

    pub(crate) fn is_disconnected(&self) -> bool {
        lock(&self.pending).closed
    }

    pub(crate) fn subscribe(self: &Arc<Self>, process_id: &str) -> ProcessEvents {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut r = lock(&self.routes);
        r.generation += 1;
        let generation = r.generation;
        if !r.closed {
            r.by_process.insert(
                process_id.to_string(),
                Route {
                    tx,
                    generation,
                    last_seq: 0,
                },
            );
        }
        ProcessEvents {
            rx,
            shared: self.clone(),
            process_id: process_id.to_string(),
            generation,
            done: false,
        }
    }

    pub(crate) fn take_notifications(&self) -> mpsc::UnboundedReceiver<Notification> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = lock(&self.routes);
        if !r.closed {
            r.notifications = Some(tx);
        }
        rx
    }

    fn unsubscribe(&self, process_id: &str, generation: u64) {
        let mut r = lock(&self.routes);
        if r.by_process
            .get(process_id)
            .is_some_and(|x| x.generation == generation)
        {
            r.by_process.remove(process_id);
        }
    }
}

/// The events of one process, from [`Client::subscribe`](super::Client::subscribe).
/// Dropping it unsubscribes.
///
/// Up to [`EVENT_BUFFER`] events wait here for [`recv`](ProcessEvents::recv);
/// when the buffer is full the connection waits (responses to other calls wait
/// too), so read the stream steadily or drop it.
pub struct ProcessEvents {
    rx: mpsc::Receiver<ProcessEvent>,
    shared: Arc<Shared>,
    process_id: String,
    generation: u64,
    done: bool,
}

impl ProcessEvents {
    pub fn process_id(&self) -> &str {
        &self.process_id
    }

    /// The next event; `Ok(None)` after `Closed` was returned;
    /// `Err(Disconnected)` if the server went away before the process closed.
    pub async fn recv(&mut self) -> Result<Option<ProcessEvent>, ClientError> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(ev) => {
                if matches!(ev, ProcessEvent::Closed(_)) {
                    self.done = true;
                }
                Ok(Some(ev))
            }
            None => {
                self.done = true;
                Err(ClientError::Disconnected)
            }
        }
    }
}

impl Drop for ProcessEvents {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.process_id, self.generation);
    }
}

/// One line from the server, decoded just enough to route it.
#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// Start the writer and reader threads over `input` (the server's stdin) and
/// `output` (its stdout).
pub(crate) fn start<R, W>(
    output: R,
    input: W,
    handler: Option<Arc<dyn RequestHandler>>,
) -> Arc<Shared>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let (tx, rx) = std_mpsc::channel::<Vec<u8>>();
    let shared = Arc::new(Shared {
        out: Mutex::new(Some(tx)),
        pending: Mutex::default(),
        routes: Mutex::default(),
    });
    let spawned = std::thread::Builder::new()
        .name("tether-client-writer".into())
        .spawn(move || write_lines(input, rx));
    if let Err(e) = spawned {
        tracing::warn!("cannot start the client writer thread: {e}");
    }
    let runtime = tokio::runtime::Handle::try_current().ok();
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("tether-client-reader".into())
        .spawn(move || {
            read_lines(output, &s, handler, runtime);
            disconnect(&s);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the client reader thread: {e}");
        disconnect(&shared);
    }
    shared
}

fn write_lines<W: Write>(mut input: W, rx: std_mpsc::Receiver<Vec<u8>>) {
    while let Ok(line) = rx.recv() {
        if let Err(e) = input.write_all(&line).and_then(|()| input.flush()) {
            tracing::debug!("writing to the server failed: {e}");
            return;
        }
    }
    // All senders are gone: dropping `input` closes the server's stdin.
}

/// Fail every pending call, end every stream, refuse new calls.
fn disconnect(shared: &Shared) {
    let calls = {
        let mut p = lock(&shared.pending);
        p.closed = true;
        std::mem::take(&mut p.calls)
    };
    drop(calls);
    let routes = {
        let mut r = lock(&shared.routes);
        r.closed = true;
        r.notifications = None;
        std::mem::take(&mut r.by_process)
    };
    drop(routes);
}

fn read_lines<R: Read>(
    output: R,
    shared: &Arc<Shared>,
    handler: Option<Arc<dyn RequestHandler>>,
    runtime: Option<tokio::runtime::Handle>,
) {
    let mut reader = BufReader::with_capacity(1 << 20, output);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("reading from the server failed: {e}");
                return;
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg: Incoming = match serde_json::from_slice(&line) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(
                    "the server wrote a line that is not a JSON-RPC message ({e}): {:.200}",
                    String::from_utf8_lossy(&line)
                );
                continue;
            }
        };
        match (msg.method, msg.id) {
            (Some(method), None) => notification(shared, method, msg.params),
            (Some(method), Some(id)) => {
                let Ok(id) = serde_json::from_value::<RequestId>(id) else {
                    tracing::warn!("the server sent a request with an invalid id");
                    continue;
                };
                let params = msg
                    .params
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or(Value::Null);
                server_request(
                    shared,
                    handler.clone(),
                    runtime.as_ref(),
                    ServerRequest { id, method, params },
                );
            }
            (None, Some(id)) => {
                let reply = match (msg.error, msg.result) {
                    (Some(e), _) => Err(e),
                    (None, Some(r)) => Ok(r),
                    (None, None) => Ok(null_value()),
                };
                response(shared, id, reply);
            }
            (None, None) => tracing::warn!("the server wrote a message without method or id"),
        }
    }
}

fn null_value() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

fn response(shared: &Shared, id: Value, reply: Reply) {
    let tx = serde_json::from_value::<RequestId>(id.clone())
        .ok()
        .and_then(|id| lock(&shared.pending).calls.remove(&id));
    match (tx, reply) {
        (Some(tx), reply) => {
            let _ = tx.send(reply);
        }
        (None, Err(e)) => tracing::warn!(
            "server error for id {id} that matches no pending call: {} {}",
            e.code,
            e.message
        ),
        (None, Ok(_)) => tracing::debug!("response for id {id} that matches no pending call"),
    }
}

fn notification(shared: &Shared, method: String, params: Option<Box<RawValue>>) {
    let raw = params.unwrap_or_else(null_value);
    let event = match method.as_str() {
        methods::PROCESS_OUTPUT => serde_json::from_str(raw.get()).map(ProcessEvent::Output),
        methods::PROCESS_EXITED => serde_json::from_str(raw.get()).map(ProcessEvent::Exited),
        methods::PROCESS_CLOSED => serde_json::from_str(raw.get()).map(ProcessEvent::Closed),
        _ => {
            let tx = lock(&shared.routes).notifications.clone();
            if let Some(tx) = tx {
                let params = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                let _ = tx.send(Notification { method, params });
            }
            return;
        }
    };
    match event {
        Ok(ev) => route_event(shared, ev),
        Err(e) => tracing::warn!("cannot decode a {method} notification: {e}"),
    }
}

fn route_event(shared: &Shared, ev: ProcessEvent) {
    let (seq, closed) = (ev.seq(), matches!(ev, ProcessEvent::Closed(_)));
    let target = {
        let mut r = lock(&shared.routes);
        match r.by_process.get_mut(ev.process_id()) {
            Some(route) => {
                if seq <= route.last_seq {
                    tracing::warn!(
                        "process {} event seq {seq} after seq {}",
                        ev.process_id(),
                        route.last_seq
                    );
                }
                route.last_seq = seq;
                Some((route.tx.clone(), route.generation))
            }
            None => None,
        }
    };
    let Some((tx, generation)) = target else {
        tracing::trace!("no subscriber for process {}", ev.process_id());
        return;
    };
    let id = ev.process_id().to_string();
    // Waits while the stream's buffer is full: back-pressure, never loss.
    let gone = tx.blocking_send(ev).is_err();
    if gone || closed {
        shared.unsubscribe(&id, generation);
    }
}

fn server_request(
    shared: &Arc<Shared>,
    handler: Option<Arc<dyn RequestHandler>>,
    runtime: Option<&tokio::runtime::Handle>,
    req: ServerRequest,
) {
    let id = req.id.clone();
    let Some(handler) = handler else {
        let e = ErrorObject {
            code: codes::METHOD_NOT_FOUND,
            data: None,
            message: format!("client does not handle `{}`", req.method),
        };
        answer(shared, &id, Err(e));
        return;
    };
    let fut = handler.handle(req);
    let s = shared.clone();
    let task = async move {
        let r = fut.await;
        answer(&s, &id, r);
    };
    match runtime {
        Some(rt) => {
            rt.spawn(task);
        }
        None => {
            // Created outside a runtime: give the handler a small one of its own.
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(task),
                    Err(e) => tracing::warn!("cannot run a request handler: {e}"),
                }
            });
        }
    }
}

fn answer(shared: &Shared, id: &RequestId, r: Result<Value, ErrorObject>) {
    let msg = match r {
        Ok(result) => serde_json::json!({"id": id, "result": result}),
        Err(error) => serde_json::json!({"id": id, "error": error}),
    };
    let line = serde_json::to_vec(&msg).expect("a JSON value always serializes");
    if shared.send(line).is_err() {
        tracing::debug!("cannot answer server request {id}: disconnected");
    }
}

#[cfg(test)]
impl Shared {
    pub(crate) fn pending_is_empty(&self) -> bool {
        lock(&self.pending).calls.is_empty()
    }
}
