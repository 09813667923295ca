//! What `process/read` can return (docs/protocol.md "Processes"): a head that is never dropped
//! and a tail that drops its oldest chunks, with the loss counted.

use crate::protocol::process::{ReadChunk, Stream};
use std::collections::VecDeque;
use std::sync::Arc;

pub const HEAD_BYTES: usize = 65_536;
pub const HEAD_CHUNKS: usize = 1_000;
pub const TAIL_BYTES: usize = 983_040;
pub const TAIL_CHUNKS: usize = 49_000;

/// One retained chunk: its raw length and its base64 text, shared with the
/// notification that carried it.
#[derive(Debug, Clone)]
pub struct Retained {
    pub seq: u64,
    pub stream: Stream,
    pub len: usize,
    pub b64: Arc<str>,
}

#[derive(Debug)]
pub struct Retention {
    head: Vec<Retained>,
    head_bytes: usize,
    head_open: bool,
    tail: VecDeque<Retained>,
    tail_bytes: usize,
    pub dropped_bytes: u64,
    pub first_retained_seq: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            head: Vec::new(),
            head_bytes: 0,
            head_open: true,
            tail: VecDeque::new(),
            tail_bytes: 0,
            dropped_bytes: 0,
            first_retained_seq: 1,
        }
    }
}

impl Retention {
    pub fn push(&mut self, c: Retained) {
        if self.head_open && self.head_bytes + c.len <= HEAD_BYTES && self.head.len() < HEAD_CHUNKS
        {
            self.head_bytes += c.len;
            self.head.push(c);
            return;
        }
        self.head_open = false;
        self.tail_bytes += c.len;
        self.tail.push_back(c);
        while self.tail_bytes > TAIL_BYTES || self.tail.len() > TAIL_CHUNKS {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.len;
            self.dropped_bytes += old.len as u64;
            self.first_retained_seq = old.seq + 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Retained> {
        self.head.iter().chain(self.tail.iter())
    }

    /// Chunks with `seq > after`, adding each while the total stays within `max`;
    /// the first is always included.
    pub fn select(&self, after: u64, max: Option<u64>) -> Vec<ReadChunk> {
        let mut out = Vec::new();
        let mut total: u64 = 0;
        let start = self.head.partition_point(|c| c.seq <= after);
        let tail_start = self.tail.partition_point(|c| c.seq <= after);
        for c in self.head[start..]
            .iter()
            .chain(self.tail.range(tail_start..))
        {
            if let Some(max) = max {
                if !out.is_empty() && total + c.len as u64 > max {
                    break;
                }
            }
            total += c.len as u64;
            out.push(ReadChunk {
                seq: c.seq,
                stream: c.stream,
                chunk: c.b64.clone(),
            });
        }
        out
    }

    /// All retained bytes, decoded, for the `sandboxDenied` heuristic.
    pub fn text_lossy(&self) -> String {
        let mut bytes = Vec::new();
        for c in self.iter() {
            if let Ok(b) = crate::protocol::bytes::decode(&c.b64) {
                bytes.extend_from_slice(&b);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, len: usize) -> Retained {
        Retained {
            seq,
            stream: Stream::Stdout,
            len,
            b64: Arc::from(format!("c{seq}")),
        }
    }

    #[test]
    fn head_then_tail_with_counted_loss() {
        let mut r = Retention::default();
        for seq in 1..=40 {
            r.push(chunk(seq, 60_000));
        }
        // Head: chunk 1 only (a second 60 000-byte chunk would pass 65 536).
        assert_eq!(r.head.len(), 1);
        // Tail: 16 chunks of 60 000 fit in 983 040.
        assert_eq!(r.tail.len(), 16);
        assert_eq!(r.first_retained_seq, 25);
        assert_eq!(r.dropped_bytes, 23 * 60_000);
        let seqs: Vec<u64> = r.select(0, None).iter().map(|c| c.seq).collect();
        assert_eq!(seqs[0], 1);
        assert_eq!(seqs[1], 25);
        assert_eq!(*seqs.last().unwrap(), 40);
    }

    #[test]
    fn select_honours_after_and_max_bytes() {
        let mut r = Retention::default();
        for seq in 1..=5 {
            r.push(chunk(seq, 10));
        }
        let s: Vec<u64> = r.select(2, None).iter().map(|c| c.seq).collect();
        assert_eq!(s, [3, 4, 5]);
        let s: Vec<u64> = r.select(0, Some(25)).iter().map(|c| c.seq).collect();
        assert_eq!(s, [1, 2]);
        let s: Vec<u64> = r.select(0, Some(0)).iter().map(|c| c.seq).collect();
        assert_eq!(s, [1]);
        assert!(r.select(5, Some(0)).is_empty());
    }

    #[test]
    fn many_small_chunks_hit_the_chunk_limits() {
        let mut r = Retention::default();
        for seq in 1..=60_000 {
            r.push(chunk(seq, 1));
        }
        assert_eq!(r.head.len(), HEAD_CHUNKS);
        assert_eq!(r.tail.len(), TAIL_CHUNKS);
        assert_eq!(r.first_retained_seq, 60_000 - TAIL_CHUNKS as u64 + 1);
    }
}
