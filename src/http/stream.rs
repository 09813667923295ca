//! Streamed response bodies (docs/protocol.md "http/request"): the set of active `requestId`s and
//! the task that sends `http/request/bodyDelta` frames after the response.

use super::error_chain;
use crate::protocol::bytes::ByteChunk;
use crate::protocol::http::BodyDeltaParams;
use crate::protocol::{self, methods, NotificationOut};
use crate::rpc::outbound::Outbound;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Largest body frame.
pub const MAX_DELTA: usize = 1024 * 1024;

/// `requestId`s of streams that have not sent their last frame.
#[derive(Default, Clone)]
pub struct ActiveStreams(Arc<Mutex<HashSet<String>>>);

/// Holds a `requestId` active; frees it when dropped.
pub struct StreamId {
    active: ActiveStreams,
    id: String,
}

impl ActiveStreams {
    /// Mark `id` active; `None` when it already is.
    pub fn claim(&self, id: &str) -> Option<StreamId> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_string()).then(|| StreamId {
            active: self.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for StreamId {
    fn drop(&mut self) {
        let mut set = self.active.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.id);
    }
}

async fn frame(out: &Outbound, params: BodyDeltaParams) {
    let line = protocol::to_line(&NotificationOut {
        method: methods::HTTP_REQUEST_BODY_DELTA,
        params,
    });
    out.send(line, None).await;
}

/// Send the body as frames of at most 1 MiB with `seq` from 1, then the last frame
/// (`done: true`, empty delta, `error` null or the failure text).
pub async fn send_body(out: Outbound, mut resp: reqwest::Response, id: StreamId) {
    let mut seq = 0u64;
    let error = loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                for part in bytes.chunks(MAX_DELTA) {
                    seq += 1;
                    let params = BodyDeltaParams {
                        request_id: id.id.clone(),
                        seq,
                        delta_base64: ByteChunk(part.to_vec()),
                        done: false,
                        error: None,
                    };
                    frame(&out, params).await;
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(error_chain(&e)),
        }
    };
    let request_id = id.id.clone();
    // Free the id before the last frame can reach the client, so a client that
    // reuses it as soon as it sees `done` is never refused.
    drop(id);
    let last = BodyDeltaParams {
        request_id,
        seq: seq + 1,
        delta_base64: ByteChunk::default(),
        done: true,
        error,
    };
    frame(&out, last).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_claimed_once_and_freed_on_drop() {
        let a = ActiveStreams::default();
        let first = a.claim("r").unwrap();
        assert!(a.claim("r").is_none());
        assert!(a.claim("s").is_some());
        drop(first);
        assert!(a.claim("r").is_some());
    }
}
