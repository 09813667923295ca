//! The pump: reads a child's output, numbers every event and sends the
//! notifications in order, within a per-process budget of unsent bytes; and the
//! stdin task that feeds a child what `process/write` queued.

use super::record::{ExitInfo, Phase, Record, StdinCmd};
use super::retention::Retained;
use crate::protocol::process::{ClosedParams, ExitedParams, Stream};
use crate::protocol::{self, methods, NotificationOut};
use crate::rpc::outbound::{Body, Outbound};
use crate::spawn::group::{exit_code, WaitStatus};
use crate::sys::reactor::register;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Raw output bytes read but not yet written to stdout, per process (docs/protocol.md "Transport").
pub const UNSENT_BUDGET: usize = 256 * 1024;
/// Largest output chunk (docs/protocol.md "Processes").
pub const MAX_CHUNK: usize = 65_536;
/// Pipe buffer asked for once a child fills a whole chunk in one read: a fast
/// producer then hands over full chunks with far fewer wake-ups. Only streams that
/// prove fast get it, so many quiet children do not use up the user's pipe quota.
const FAST_PIPE_SIZE: libc::c_int = 1 << 20;

/// `sandboxDenied` (docs/protocol.md "Processes"), from the output retained when `exited` is numbered.
pub fn sandbox_denied(sandboxed: bool, code: i32, output: &str) -> bool {
    if !sandboxed || code == 0 {
        return false;
    }
    let lower = output.to_lowercase();
    const WORDS: &[&str] = &[
        "operation not permitted",
        "permission denied",
        "read-only file system",
        "seccomp",
        "sandbox",
        "landlock",
        "failed to write file",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    if matches!(code, 2 | 126 | 127) {
        return false;
    }
    code == 128 + libc::SIGSYS
}

/// A readable output source of the child.
struct Source {
    stream: Stream,
    fd: AsyncFd<OwnedFd>,
    open: bool,
    /// The pipe buffer was already enlarged (or that was tried).
    grown: bool,
}

enum ReadOutcome {
    Data(usize),
    Eof,
}

fn raw_read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Ok(ReadOutcome::Data(n as usize));
        }
        if n == 0 {
            return Ok(ReadOutcome::Eof);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A PTY master reads EIO once every slave descriptor is closed.
            Some(libc::EIO) => return Ok(ReadOutcome::Eof),
            _ => return Err(e),
        }
    }
}

impl Source {
    async fn read(&self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| raw_read(fd.get_ref(), buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Read without waiting: `None` when nothing is buffered.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<Option<ReadOutcome>> {
        match raw_read(self.fd.get_ref(), buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What the pump tells its owner when the record closes.
pub type OnClosed = Box<dyn FnOnce() + Send>;

pub struct Pump {
    rec: Arc<Record>,
    out: Outbound,
    budget: Arc<Semaphore>,
}

impl Pump {
    pub fn new(rec: Arc<Record>, out: Outbound) -> Self {
        Pump {
            rec,
            out,
            budget: Arc::new(Semaphore::new(UNSENT_BUDGET)),
        }
    }

    async fn emit_output(&self, stream: Stream, bytes: &[u8]) {
        // Silent records send nothing, so they need no unsent budget (docs/protocol.md "Transport").
        let permit = if self.rec.silent {
            None
        } else {
            let p = self.budget.clone().acquire_many_owned(bytes.len() as u32);
            Some(p.await.expect("the budget semaphore is never closed"))
        };
        let b64 = protocol::bytes::encode_shared(bytes);
        let seq = {
            let mut st = self.rec.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            let chunk = Retained {
                seq,
                stream,
                len: bytes.len(),
                b64: b64.clone(),
            };
            if let Some(w) = st.window.as_mut() {
                w.push(chunk.clone());
            }
            st.retention.push(chunk);
            seq
        };
        self.rec.changed.notify_waiters();
        if self.rec.silent {
            return;
        }
        let head = protocol::output_head(&self.rec.id, seq, stream);
        self.out
            .send_parts(head, Body::Shared(b64), protocol::OUTPUT_TAIL, permit)
            .await;
    }

    async fn handle(&self, src: &mut Source, r: io::Result<ReadOutcome>, buf: &[u8]) {
        match r {
            Ok(ReadOutcome::Data(n)) => {
                if n == buf.len() && !src.grown {
                    src.grown = true;
                    // SAFETY: fcntl on a descriptor we own; a PTY or a refusal is harmless.
                    unsafe { libc::fcntl(src.fd.as_raw_fd(), libc::F_SETPIPE_SZ, FAST_PIPE_SIZE) };
                }
                self.emit_output(src.stream, &buf[..n]).await
            }
            Ok(ReadOutcome::Eof) => src.open = false,
            Err(e) => {
                tracing::warn!(process = %self.rec.id, "reading {} failed: {e}", src.stream.as_str());
                src.open = false;
            }
        }
    }

    /// Read what is already buffered in every open source.
    async fn drain(&self, sources: &mut [&mut Option<Source>], buf: &mut [u8]) {
        for slot in sources.iter_mut() {
            let Some(src) = slot.as_mut() else { continue };
            while src.open {
                match src.read_now(buf) {
                    Ok(None) => break,
                    Ok(Some(r)) => self.handle(src, Ok(r), buf).await,
                    Err(e) => self.handle(src, Err(e), buf).await,
                }
            }
        }
    }

    async fn emit_exited(&self, status: WaitStatus) {
        let (code, signal) = exit_code(status);
        let (seq, denied) = {
            let mut st = self.rec.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            let denied = st.sandboxed && sandbox_denied(true, code, &st.retention.text_lossy());
            st.exit = Some(ExitInfo {
                code,
                signal,
                sandbox_denied: denied,
            });
            st.phase = Phase::Exited;
            st.stdin_closed = true;
            st.stdin = None;
            (seq, denied)
        };
        let _ = self.rec.exited.send(true);
        self.rec.changed.notify_waiters();
        if self.rec.silent {
            return;
        }
        let params = ExitedParams {
            process_id: self.rec.id.clone(),
            seq,
            exit_code: code,
            sandbox_denied: denied,
            signal: signal.map(str::to_string),
        };
        let line = protocol::to_line(&NotificationOut {
            method: methods::PROCESS_EXITED,
            params,
        });
        self.out.send(line, None).await;
    }

    /// Number and send `process/closed`. The record stops counting as open (and the
    /// id becomes reusable) before the client can see the notification.
    async fn emit_closed(&self, on_closed: OnClosed) {
        let seq = {
            let mut st = self.rec.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            st.phase = Phase::Closed;
            st.pty = None;
            seq
        };
        self.rec.changed.notify_waiters();
        on_closed();
        if self.rec.silent {
            return;
        }
        let params = ClosedParams {
            process_id: self.rec.id.clone(),
            seq,
        };
        let line = protocol::to_line(&NotificationOut {
            method: methods::PROCESS_CLOSED,
            params,
        });
        self.out.send(line, None).await;
    }

    /// Run until `process/closed` has been sent.
    pub async fn run(
        self,
        outputs: Vec<(Stream, OwnedFd)>,
        mut exit: oneshot::Receiver<WaitStatus>,
        on_closed: OnClosed,
    ) {
        let mut it = outputs.into_iter().map(|(stream, fd)| match register(fd) {
            Ok(fd) => Some(Source {
                stream,
                fd,
                open: true,
                grown: false,
            }),
            Err(e) => {
                tracing::error!("cannot poll an output descriptor: {e}");
                None
            }
        });
        let mut a = it.next().flatten();
        let mut b = it.next().flatten();
        let mut buf_a = vec![0u8; MAX_CHUNK];
        let mut buf_b = vec![0u8; MAX_CHUNK];
        let mut exited = false;
        let mut force = false;
        loop {
            let a_open = a.as_ref().is_some_and(|s| s.open);
            let b_open = b.as_ref().is_some_and(|s| s.open);
            if exited && (force || (!a_open && !b_open)) {
                break;
            }
            tokio::select! {
                r = async { a.as_ref().unwrap().read(&mut buf_a).await }, if a_open => {
                    self.handle(a.as_mut().unwrap(), r, &buf_a).await;
                }
                r = async { b.as_ref().unwrap().read(&mut buf_b).await }, if b_open => {
                    self.handle(b.as_mut().unwrap(), r, &buf_b).await;
                }
                st = &mut exit, if !exited => {
                    exited = true;
                    // A lost sender means the reaper is gone (shutdown); report a kill.
                    let status = st.unwrap_or(libc::SIGKILL);
                    self.drain(&mut [&mut a, &mut b], &mut buf_a).await;
                    self.emit_exited(status).await;
                }
                _ = self.rec.force_close.notified(), if !force => {
                    force = true;
                    if exited {
                        self.drain(&mut [&mut a, &mut b], &mut buf_a).await;
                    }
                }
            }
        }
        drop(a);
        drop(b);
        self.emit_closed(on_closed).await;
    }
}

/// Feed queued chunks to the child's stdin until it is closed, the child exits, or
/// a write fails.
pub async fn stdin_task(rec: Arc<Record>, fd: OwnedFd, mut rx: mpsc::Receiver<StdinCmd>) {
    let mut exited = rec.exited.subscribe();
    let fd = match register(fd) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!("cannot poll a stdin descriptor: {e}");
            return;
        }
    };
    'outer: loop {
        let cmd = tokio::select! {
            c = rx.recv() => c,
            _ = exited.wait_for(|e| *e) => None,
        };
        let data = match cmd {
            Some(StdinCmd::Data(d)) => d,
            Some(StdinCmd::Close) | None => break,
        };
        let mut off = 0;
        while off < data.len() {
            let r = tokio::select! {
                r = write_some(&fd, &data[off..]) => r,
                _ = exited.wait_for(|e| *e) => break 'outer,
            };
            match r {
                Ok(n) => off += n,
                Err(e) => {
                    tracing::debug!(process = %rec.id, "stdin write failed: {e}");
                    break 'outer;
                }
            }
        }
    }
    rx.close();
    rec.lock().stdin_closed = true;
}

async fn write_some(fd: &AsyncFd<OwnedFd>, data: &[u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.writable().await?;
        match guard.try_io(|fd| {
            // SAFETY: writing from a slice we borrow.
            let n =
                unsafe { libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_denied_rules() {
        assert!(!sandbox_denied(false, 1, "Permission denied"));
        assert!(!sandbox_denied(true, 0, "Permission denied"));
        assert!(sandbox_denied(
            true,
            2,
            "sh: cannot create x: Permission denied"
        ));
        assert!(sandbox_denied(true, 1, "LANDLOCK said no"));
        assert!(!sandbox_denied(true, 127, "not found"));
        assert!(sandbox_denied(true, 159, ""));
        assert!(!sandbox_denied(true, 1, "plain failure"));
    }
}
