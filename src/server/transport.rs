//! NDJSON transport: one thread owns stdin and splits it into lines (with the 64 MiB
//! cap), one thread owns stdout and writes queued messages. Everything else talks to
//! them through bounded channels.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Input line limit, not counting the terminator (PROTOCOL.md §2.1).
pub const MAX_LINE: usize = 64 * 1024 * 1024;
/// Outbound queue length in messages (§2.5).
pub const OUTBOUND_QUEUE: usize = 256;

/// What the reader thread hands to the dispatcher.
#[derive(Debug)]
pub enum InputEvent {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

/// Splits a byte stream into lines: `\n` terminated, a `\r` before it removed, blank
/// lines skipped, lines over `max` reported once and discarded up to the next `\n`.
pub struct LineSplitter {
    max: usize,
    cur: Vec<u8>,
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max,
            cur: Vec::new(),
            discarding: false,
        }
    }

    /// Feed bytes; `emit` gets each complete event.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(InputEvent) -> bool) -> bool {
        while !data.is_empty() {
            let nl = memchr::memchr(b'\n', data);
            let (part, rest, complete) = match nl {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            if !self.discarding {
                // `+ 1` lets a line of exactly `max` bytes plus a `\r` through.
                if self.cur.len() + part.len() > self.max + 1 {
                    self.discarding = true;
                    self.cur = Vec::new();
                    if !emit(InputEvent::TooLong) {
                        return false;
                    }
                } else {
                    self.cur.extend_from_slice(part);
                }
            }
            if complete {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let mut line = std::mem::take(&mut self.cur);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > self.max {
                        if !emit(InputEvent::TooLong) {
                            return false;
                        }
                    } else if !line.iter().all(u8::is_ascii_whitespace)
                        && !emit(InputEvent::Line(line))
                    {
                        return false;
                    }
                }
            }
            data = rest;
        }
        true
    }

    /// End of input: a final unterminated line still counts.
    pub fn finish(&mut self, emit: &mut impl FnMut(InputEvent) -> bool) {
        if !self.discarding && !self.cur.is_empty() {
            let line = std::mem::take(&mut self.cur);
            // `feed` let one byte over the limit through (for a `\r` that never came).
            if line.len() > self.max {
                emit(InputEvent::TooLong);
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                emit(InputEvent::Line(line));
            }
        }
    }
}

/// Start the stdin reader thread. Lines go to `tx`; the channel is small so that a
/// dispatcher that waits (the in-flight limit) stops the reading.
pub fn spawn_reader<R: Read + Send + 'static>(mut input: R, tx: mpsc::Sender<InputEvent>) {
    std::thread::Builder::new()
        .name("tether-stdin".into())
        .spawn(move || {
            let mut split = LineSplitter::new(MAX_LINE);
            let mut buf = vec![0u8; 256 * 1024];
            let mut emit = |ev: InputEvent| tx.blocking_send(ev).is_ok();
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !split.feed(&buf[..n], &mut emit) {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!("reading stdin failed: {e}");
                        break;
                    }
                }
            }
            split.finish(&mut emit);
            let _ = tx.blocking_send(InputEvent::Eof);
        })
        .expect("spawn stdin thread");
}

/// One serialized message (with its trailing `\n`) and the output budget it holds.
pub struct OutMsg {
    pub data: Vec<u8>,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// The sending side of the outbound queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<OutMsg>,
}

impl Outbound {
    /// Queue a message; waits while the queue is full. `false` once the writer is gone.
    pub async fn send(&self, data: Vec<u8>, permit: Option<OwnedSemaphorePermit>) -> bool {
        self.tx.send(OutMsg { data, permit }).await.is_ok()
    }
}

/// Start the stdout writer thread. `stop` silences it (shutdown writes nothing more);
/// `on_fail` runs once if a write fails.
pub fn spawn_writer<W: Write + Send + 'static>(
    mut out: W,
    stop: Arc<AtomicBool>,
    on_fail: impl FnOnce() + Send + 'static,
) -> Outbound {
    let (tx, mut rx) = mpsc::channel::<OutMsg>(OUTBOUND_QUEUE);
    std::thread::Builder::new()
        .name("tether-stdout".into())
        .spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                if let Err(e) = out.write_all(&msg.data).and_then(|()| out.flush()) {
                    tracing::info!("writing stdout failed: {e}; shutting down");
                    stop.store(true, Ordering::SeqCst);
                    on_fail();
                    // Keep draining so producers never block on a dead writer.
                    while rx.blocking_recv().is_some() {}
                    return;
                }
                drop(msg);
            }
        })
        .expect("spawn stdout thread");
    Outbound { tx }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |e: InputEvent| {
            out.push(match e {
                InputEvent::Line(l) => String::from_utf8_lossy(&l).into_owned(),
                InputEvent::TooLong => "<too long>".into(),
                InputEvent::Eof => "<eof>".into(),
            });
            true
        };
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn splits_crlf_and_skips_blank_lines() {
        assert_eq!(
            split(100, &[b"a\r\n\n  \t\r\nb", b"c\nd"]),
            ["a", "bc", "d"]
        );
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        assert_eq!(
            split(4, &[b"1234\nabcdefgh", b"ijk\nok\n"]),
            ["1234", "<too long>", "ok"]
        );
        assert_eq!(split(4, &[b"1234\r\n12345\r\n"]), ["1234", "<too long>"]);
    }

    /// Found by the property test of the splitter: an unterminated last line one
    /// byte over the limit was passed on instead of refused.
    #[test]
    fn regression_unterminated_last_line_one_over_the_limit() {
        assert_eq!(split(4, &[b"12345"]), ["<too long>"]);
        assert_eq!(split(4, &[b"ok\n123", b"45"]), ["ok", "<too long>"]);
        assert_eq!(split(4, &[b"1234"]), ["1234"]);
    }
}
