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

/// The large middle part of a message, written between its head and its tail
/// without being copied into a line.
pub enum Body {
    None,
    /// Shared with another owner (a retained output chunk).
    Shared(Arc<str>),
    Owned(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::None => b"",
            Body::Shared(s) => s.as_bytes(),
            Body::Owned(v) => v,
        }
    }
}

/// One serialized message, `data` + `body` + `tail` (ending in `\n`), and the output
/// budget it holds until it has been written.
pub struct OutMsg {
    pub data: Vec<u8>,
    pub body: Body,
    pub tail: &'static [u8],
    pub permit: Option<OwnedSemaphorePermit>,
}

impl OutMsg {
    fn parts(&self) -> [&[u8]; 3] {
        [&self.data, self.body.bytes(), self.tail]
    }

    fn len(&self) -> usize {
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

/// Messages the writer takes from the queue for one `writev`, at most.
const BATCH_MESSAGES: usize = 64;
/// Stop adding messages to a batch past this many bytes.
const BATCH_BYTES: usize = 1 << 20;

/// Write every part of `batch` in order, whole, with as few `writev` calls as the
/// kernel allows. Messages stay contiguous: nothing else writes stdout.
fn write_batch<W: Write>(out: &mut W, batch: &[OutMsg]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = batch
        .iter()
        .flat_map(|m| m.parts())
        .filter(|p| !p.is_empty())
        .collect();
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<io::IoSlice<'_>> =
            parts[first..].iter().map(|p| io::IoSlice::new(p)).collect();
        let mut n = match out.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while first < parts.len() && n >= parts[first].len() {
            n -= parts[first].len();
            first += 1;
        }
        if n > 0 {
            parts[first] = &parts[first][n..];
        }
    }
    out.flush()
}

/// Start the stdout writer thread. `stop` silences it (shutdown writes nothing more);
/// `on_fail` runs once if a write fails. Messages that are ready together go out in
/// one `writev` (each still whole and in queue order); their budget permits are
/// released once they are written.
pub fn spawn_writer<W: Write + Send + 'static>(
    mut out: W,
    stop: Arc<AtomicBool>,
    on_fail: impl FnOnce() + Send + 'static,
) -> Outbound {
    let (tx, mut rx) = mpsc::channel::<OutMsg>(OUTBOUND_QUEUE);
    std::thread::Builder::new()
        .name("tether-stdout".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_MESSAGES);
            while let Some(msg) = rx.blocking_recv() {
                let mut bytes = msg.len();
                batch.push(msg);
                while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(m) => {
                            bytes += m.len();
                            batch.push(m);
                        }
                        Err(_) => break,
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    batch.clear();
                    continue;
                }
                if let Err(e) = write_batch(&mut out, &batch) {
                    tracing::info!("writing stdout failed: {e}; shutting down");
                    stop.store(true, Ordering::SeqCst);
                    on_fail();
                    batch.clear();
                    // Keep draining so producers never block on a dead writer.
                    while rx.blocking_recv().is_some() {}
                    return;
                }
                batch.clear();
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

    /// A writer that takes at most 5 bytes per call, to exercise partial writes.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(5);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batches_write_every_part_in_order_across_partial_writes() {
        let msg = |h: &str, b: Body, t: &'static [u8]| OutMsg {
            data: h.as_bytes().to_vec(),
            body: b,
            tail: t,
            permit: None,
        };
        let batch = [
            msg("{\"a\":\"", Body::Shared("xyz".into()), b"\"}\n"),
            msg("{}\n", Body::None, b""),
            msg("{\"b\":\"", Body::Owned(b"0123456789".to_vec()), b"\"}\n"),
        ];
        let mut w = Trickle(Vec::new());
        write_batch(&mut w, &batch).unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "{\"a\":\"xyz\"}\n{}\n{\"b\":\"0123456789\"}\n"
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
