//! Requests the server sends to the client (docs/protocol.md "Transport",
//! "Exec escalation"): integer ids 1, 2, 3, … in their own id space (the Codex
//! client refuses any other id), and the table that matches the client's
//! responses to them. A client request with the same id is unrelated: answers
//! are told apart by direction (a response has no `method`).

use super::outbound::Outbound;
use crate::protocol::{self, RequestId};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Server requests that may wait for an answer at once (docs/protocol.md
/// "Exec escalation").
pub const MAX_PENDING: usize = 256;

/// What the client answered: `Ok(result)` or `Err(error)`.
pub type Outcome = Result<Value, Value>;

/// `{"id":<n>,"method":...,"params":...}`
#[derive(Serialize)]
struct RequestOut<'a, P: Serialize> {
    id: i64,
    method: &'a str,
    params: P,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("too many pending approvals")]
    TooMany,
    #[error("the connection is closing")]
    Closed,
}

/// Outstanding server requests of one connection.
pub struct ServerRequests {
    out: Outbound,
    next: AtomicI64,
    pending: Mutex<HashMap<i64, oneshot::Sender<Outcome>>>,
}

impl ServerRequests {
    pub fn new(out: Outbound) -> Self {
        ServerRequests {
            out,
            next: AtomicI64::new(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<i64, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send a request; returns its id and where its answer arrives. The entry
    /// stays until answered or [`ServerRequests::forget`] is called.
    pub async fn send<P: Serialize>(
        &self,
        method: &str,
        params: P,
    ) -> Result<(i64, oneshot::Receiver<Outcome>), RequestError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut p = self.pending();
            if p.len() >= MAX_PENDING {
                return Err(RequestError::TooMany);
            }
            let id = self.next.fetch_add(1, Ordering::SeqCst);
            p.insert(id, tx);
            id
        };
        let line = protocol::to_line(&RequestOut {
            id,
            method,
            params,
        });
        if !self.out.send(line, None).await {
            self.forget(id);
            return Err(RequestError::Closed);
        }
        Ok((id, rx))
    }

    /// Drop a request nobody waits for any more; a later answer is unmatched.
    pub fn forget(&self, id: i64) {
        self.pending().remove(&id);
    }

    /// Deliver a client response; `false` when it matches no outstanding request.
    pub fn complete(&self, id: &RequestId, outcome: Outcome) -> bool {
        let RequestId::Int(n) = id else {
            return false;
        };
        match self.pending().remove(n) {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn ids_count_up_and_answers_are_matched_once() {
        let (buf, out) = capture();
        let r = ServerRequests::new(out);
        let (a, rx_a) = r.send("x/y", serde_json::json!({"k":1})).await.unwrap();
        let (b, _rx_b) = r.send("x/y", serde_json::json!({})).await.unwrap();
        assert_eq!((a, b), (1, 2));
        // Only the integer matches: a string "1" (or the old "s-1") is another id.
        assert!(!r.complete(&RequestId::Str("1".into()), Ok(Value::Null)));
        assert!(!r.complete(&RequestId::Str("s-1".into()), Ok(Value::Null)));
        assert!(r.complete(&RequestId::Int(1), Ok(serde_json::json!(7))));
        assert!(!r.complete(&RequestId::Int(1), Ok(Value::Null)));
        assert_eq!(rx_a.await.unwrap().unwrap(), serde_json::json!(7));
        r.forget(b);
        assert!(!r.complete(&RequestId::Int(b), Ok(Value::Null)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(
            text.starts_with(r#"{"id":1,"method":"x/y","params":{"k":1}}"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn at_most_256_are_pending() {
        let (_buf, out) = capture();
        let r = ServerRequests::new(out);
        let mut keep = Vec::new();
        for _ in 0..MAX_PENDING {
            keep.push(r.send("m", Value::Null).await.unwrap());
        }
        assert!(matches!(
            r.send("m", Value::Null).await,
            Err(RequestError::TooMany)
        ));
        r.forget(keep[0].0);
        assert!(r.send("m", Value::Null).await.is_ok());
    }

    /// An outbound queue drained into a buffer (what the stdout writer would
    /// write, message after message).
    fn capture() -> (Arc<Mutex<Vec<u8>>>, Outbound) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (out, mut rx) = super::super::outbound::queue();
        let sink = buf.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let mut b = sink.lock().unwrap();
                for part in msg.parts() {
                    b.extend_from_slice(part);
                }
            }
        });
        (buf, out)
    }
}
