//! The outbound queue: the neutral reply sink every service writes to. A
//! message is queued whole ([`OutMsg`]: head, [`Body`], tail) and the queue is
//! bounded, so a producer waits while it is full (back-pressure, not loss:
//! docs/protocol.md "Transport"). Who drains it is not this module's business:
//! the exec-server's stdout writer thread (`modes/exec_server/transport.rs`) in the binary,
//! a test's receiver elsewhere.

use std::io;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Outbound queue length in messages (docs/protocol.md "Transport").
pub const OUTBOUND_QUEUE: usize = 256;

/// The large middle part of a message, written between its head and its tail
/// without being copied into a line.
pub enum Body {
    None,
    /// Shared with another owner (a retained output chunk).
    Shared(Arc<str>),
    Owned(Vec<u8>),
    /// A file's bytes, read and base64-encoded by the writer as it writes them.
    Base64File(Base64File),
}

impl Body {
    /// The bytes written as they are (none for a [`Body::Base64File`]).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Body::None | Body::Base64File(_) => b"",
            Body::Shared(s) => s.as_bytes(),
            Body::Owned(v) => v,
        }
    }
}

/// A file the writer streams as base64: up to `len` bytes from its current
/// offset (fewer if it ends sooner). The writer reads and encodes it in blocks
/// through two small buffers, so that a 512 MiB `fs/readFile` result needs neither the file nor its
/// 716 MB encoding in memory, and encoding overlaps the client's reading.
pub struct Base64File {
    pub file: std::fs::File,
    pub len: u64,
    /// The whole error line for the same request, used if reading fails part way:
    /// the partial line is then ended unterminated (invalid JSON, so never taken
    /// for a result) and this line follows it.
    pub error_line: ErrorLine,
}

/// Builds the error line of a [`Base64File`] whose read failed.
pub type ErrorLine = Box<dyn Fn(&io::Error) -> Vec<u8> + Send>;

/// One serialized message, `data` + `body` + `tail` (ending in `\n`), and the output
/// budget it holds until it has been written.
pub struct OutMsg {
    pub data: Vec<u8>,
    pub body: Body,
    pub tail: &'static [u8],
    /// Held, never read: dropping the message after its write releases the budget.
    #[allow(
        dead_code,
        reason = "an RAII holder: released when the message is dropped"
    )]
    pub permit: Option<OwnedSemaphorePermit>,
}

impl OutMsg {
    pub(crate) fn parts(&self) -> [&[u8]; 3] {
        [&self.data, self.body.bytes(), self.tail]
    }

    pub(crate) fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }
}

/// The sending side of the outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<OutMsg>,
}

impl Outbound {
    /// Queue a message; waits while the queue is full. `false` once the writer is gone.
    pub async fn send(&self, data: Vec<u8>, permit: Option<OwnedSemaphorePermit>) -> bool {
        self.send_parts(data, Body::None, b"", permit).await
    }

    /// Queue the message `head` + `body` + `tail`, written whole as one line.
    pub async fn send_parts(
        &self,
        head: Vec<u8>,
        body: Body,
        tail: &'static [u8],
        permit: Option<OwnedSemaphorePermit>,
    ) -> bool {
        let msg = OutMsg {
            data: head,
            body,
            tail,
            permit,
        };
        self.tx.send(msg).await.is_ok()
    }
}

/// A new outbound queue of [`OUTBOUND_QUEUE`] messages: the sending side for
/// the services, the receiving side for whoever writes the messages out.
pub fn queue() -> (Outbound, mpsc::Receiver<OutMsg>) {
    let (tx, rx) = mpsc::channel::<OutMsg>(OUTBOUND_QUEUE);
    (Outbound { tx }, rx)
}
