//! One process record: its state under a short lock, and its inbox (writes and
//! closes in wire order). The pump that fills it is in `pump.rs`.

use super::error::ProcessError;
use super::retention::Retention;
use crate::protocol::process::{WriteParams, WriteResult, WriteStatus};
use std::collections::{HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Remembered `writeId`s per process (docs/protocol.md "Processes").
pub const WRITE_IDS: usize = 4_096;
/// Queued stdin chunks per process (docs/protocol.md "Processes").
pub const WRITE_QUEUE: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Starting,
    Running,
    Exited,
    Closed,
}

#[derive(Debug, Clone)]
pub struct ExitInfo {
    pub code: i32,
    pub signal: Option<&'static str>,
    pub sandbox_denied: bool,
}

/// A bounded set of the most recent accepted `writeId`s.
#[derive(Debug, Default)]
pub struct WriteIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl WriteIds {
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    pub fn remember(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > WRITE_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

pub enum StdinCmd {
    Data(Vec<u8>),
    Close,
}

#[derive(Debug)]
pub struct State {
    pub phase: Phase,
    pub pid: i32,
    pub next_seq: u64,
    pub retention: Retention,
    pub exit: Option<ExitInfo>,
    pub write_ids: WriteIds,
    pub stdin: Option<mpsc::Sender<StdinCmd>>,
    pub stdin_closed: bool,
    pub cancelled: bool,
    pub terminating: bool,
    pub pty: Option<Arc<OwnedFd>>,
    pub sandboxed: bool,
    /// Silent records only: output not yet collected by the owner (a tool
    /// session), bounded like [`Retention`]; the owner takes it whole.
    pub window: Option<Retention>,
    /// The escalation server of a shell started with `escalation` (docs/protocol.md "Exec escalation").
    pub escalation: Option<Arc<crate::escalate::broker::Escalation>>,
}

/// A `process/write` or `process/closeStdin`, queued in wire order.
pub enum InboxMsg {
    Write(crate::protocol::process::WriteParams),
    Close,
}

pub type InboxReply =
    oneshot::Sender<Result<crate::protocol::process::WriteResult, ProcessError>>;

pub struct Record {
    pub id: String,
    pub tty: bool,
    /// A silent record (a tool session, docs/protocol.md "Unified-exec tools") sends no notifications; its output is
    /// retained for `process/read` and collected through [`State::window`].
    pub silent: bool,
    /// Writes and closes are handled one at a time in the order they arrived, so
    /// pipelined writes reach the child in wire order.
    pub inbox: mpsc::UnboundedSender<(InboxMsg, InboxReply)>,
    state: Mutex<State>,
    /// Woken on every event, for long-polling readers.
    pub changed: Notify,
    /// Asks the pump to close once the direct child has been reaped.
    pub force_close: Notify,
    /// `true` once the direct child has been reaped.
    pub exited: watch::Sender<bool>,
}

impl Record {
    pub fn new(id: String, tty: bool, silent: bool) -> Arc<Self> {
        let (inbox, rx) = mpsc::unbounded_channel();
        let rec = Arc::new(Record {
            id,
            tty,
            silent,
            inbox,
            state: Mutex::new(State {
                phase: Phase::Starting,
                pid: 0,
                next_seq: 1,
                retention: Retention::default(),
                exit: None,
                write_ids: WriteIds::default(),
                stdin: None,
                stdin_closed: false,
                cancelled: false,
                terminating: false,
                pty: None,
                sandboxed: false,
                window: silent.then(Retention::default),
                escalation: None,
            }),
            changed: Notify::new(),
            force_close: Notify::new(),
            exited: watch::channel(false).0,
        });
        tokio::spawn(inbox_task(Arc::downgrade(&rec), rx));
        rec
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serve a record's inbox until the record is dropped. Holds only a weak reference
/// between messages, so the record can go away.
async fn inbox_task(
    rec: std::sync::Weak<Record>,
    mut rx: mpsc::UnboundedReceiver<(InboxMsg, InboxReply)>,
) {
    while let Some((msg, reply)) = rx.recv().await {
        let Some(rec) = rec.upgrade() else { break };
        let r = match msg {
            InboxMsg::Write(p) => write_one(&rec, p).await,
            InboxMsg::Close => close_one(&rec).await,
        };
        let _ = reply.send(r);
    }
}

/// One `process/write`, in the record's inbox order (docs/protocol.md "Processes").
async fn write_one(rec: &Arc<Record>, p: WriteParams) -> Result<WriteResult, ProcessError> {
    let status = |s| Ok(WriteResult { status: s });
    let tx = {
        let mut st = rec.lock();
        if st.phase == Phase::Starting {
            return status(WriteStatus::Starting);
        }
        if p.write_id
            .as_deref()
            .is_some_and(|w| st.write_ids.contains(w))
        {
            return status(WriteStatus::Accepted);
        }
        match &st.stdin {
            Some(tx) if !st.stdin_closed && st.phase == Phase::Running => {
                if p.chunk.0.is_empty() {
                    if let Some(w) = p.write_id {
                        st.write_ids.remember(w);
                    }
                    return status(WriteStatus::Accepted);
                }
                tx.clone()
            }
            _ => return status(WriteStatus::StdinClosed),
        }
    };
    if tx.send(StdinCmd::Data(p.chunk.0)).await.is_err() {
        return status(WriteStatus::StdinClosed);
    }
    if let Some(w) = p.write_id {
        rec.lock().write_ids.remember(w);
    }
    status(WriteStatus::Accepted)
}

/// One `process/closeStdin` (docs/protocol.md "Processes").
async fn close_one(rec: &Arc<Record>) -> Result<WriteResult, ProcessError> {
    let status = |s| Ok(WriteResult { status: s });
    let tx = {
        let mut st = rec.lock();
        if st.phase == Phase::Starting {
            return status(WriteStatus::Starting);
        }
        if rec.tty {
            return Err(ProcessError::UsesTerminal(rec.id.clone()));
        }
        match st.stdin.take() {
            Some(tx) if !st.stdin_closed && st.phase == Phase::Running => {
                st.stdin_closed = true;
                tx
            }
            _ => return status(WriteStatus::StdinClosed),
        }
    };
    let _ = tx.send(StdinCmd::Close).await;
    status(WriteStatus::Accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_ids_are_bounded() {
        let mut w = WriteIds::default();
        for i in 0..(WRITE_IDS + 10) {
            w.remember(format!("w{i}"));
        }
        assert!(!w.contains("w0"));
        assert!(w.contains("w10"));
        assert!(w.contains(&format!("w{}", WRITE_IDS + 9)));
    }
}
