//! NDJSON transport: one thread owns stdin and splits it into lines (with the 64 MiB
//! cap), one thread owns stdout and writes queued messages. Everything else talks to
//! them through bounded channels: the services through the outbound queue of
//! `rpc::outbound`, which this writer drains.
//!
//! Longer than 500 lines because of its tests (the second third of the file): the
//! splitter's and writer's edge cases sit next to the code they pin down.

use crate::rpc::outbound::{self, Base64File, Body, OutMsg, Outbound};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Input line limit, not counting the terminator (docs/protocol.md "Transport").
pub const MAX_LINE: usize = 64 * 1024 * 1024;

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

/// Input already read from stdin before the reader thread started (the early
/// handshake): the splitter with its partial line, the events it produced that
/// were not handled, and whether stdin already ended.
pub struct Prefill {
    pub split: LineSplitter,
    pub pending: Vec<InputEvent>,
    pub eof: bool,
}

impl Default for Prefill {
    fn default() -> Self {
        Prefill {
            split: LineSplitter::new(MAX_LINE),
            pending: Vec::new(),
            eof: false,
        }
    }
}

/// Start the stdin reader thread. Lines go to `tx`; the channel is small so that a
/// dispatcher that waits (the in-flight limit) stops the reading. `prefill`'s
/// events go first, then the reading goes on where it stopped.
pub fn spawn_reader<R: Read + Send + 'static>(
    mut input: R,
    tx: mpsc::Sender<InputEvent>,
    prefill: Prefill,
) {
    std::thread::Builder::new()
        .name("tether-stdin".into())
        .spawn(move || {
            let Prefill {
                mut split,
                pending,
                eof,
            } = prefill;
            for ev in pending {
                if tx.blocking_send(ev).is_err() {
                    return;
                }
            }
            if eof {
                return;
            }
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

/// Raw bytes per block of a [`Base64File`]: a multiple of 3, so that every block
/// but the last encodes without padding; its encoding is exactly 256 KiB.
const B64_BLOCK: usize = 3 << 16;

/// Write `f`'s bytes as base64. `Err` if writing failed; `Ok(Err)` if reading did
/// (what was written so far stays written). A helper thread reads and encodes
/// the next blocks while this one waits for the client to drain stdout, so the
/// pipe is not left empty while a block is prepared.
fn stream_base64<W: Write>(out: &mut W, f: &Base64File) -> io::Result<Result<(), io::Error>> {
    const SPARE: usize = 3;
    std::thread::scope(|scope| {
        let (full_tx, full_rx) =
            std::sync::mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(SPARE);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..SPARE {
            let _ = free_tx.send(vec![0u8; B64_BLOCK / 3 * 4]);
        }
        let (file, len) = (&f.file, f.len);
        let encoder = std::thread::Builder::new()
            .name("tether-b64".into())
            .spawn_scoped(scope, move || encode_blocks(file, len, &full_tx, &free_rx));
        if let Err(e) = encoder {
            return Ok(Err(e));
        }
        for block in full_rx {
            match block {
                Ok((buf, n)) => {
                    out.write_all(&buf[..n])?;
                    let _ = free_tx.send(buf);
                }
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    })
}

/// The encoder side of [`stream_base64`]: blocks of the file, encoded into the
/// free buffers it is given, in order; a read error ends the stream.
fn encode_blocks(
    file: &std::fs::File,
    len: u64,
    full: &std::sync::mpsc::SyncSender<io::Result<(Vec<u8>, usize)>>,
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut buf = vec![0u8; B64_BLOCK];
    let mut left = len;
    let mut have = 0usize;
    loop {
        // Fill the block (or what is left of the file).
        let want = (B64_BLOCK as u64).min(left + have as u64) as usize;
        let mut eof = false;
        while have < want {
            match (&*file).read(&mut buf[have..want]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    have += n;
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = full.send(Err(e));
                    return;
                }
            }
        }
        let last = eof || left == 0;
        let take = if last { have } else { have - have % 3 };
        if take > 0 {
            let Ok(mut enc) = free.recv() else { return };
            let n = base64_simd::STANDARD
                .encode(&buf[..take], base64_simd::Out::from_slice(&mut enc))
                .len();
            if full.send(Ok((enc, n))).is_err() {
                return;
            }
        }
        if last {
            return;
        }
        buf.copy_within(take..have, 0);
        have -= take;
    }
}

/// Messages the writer takes from the queue for one `writev`, at most.
const BATCH_MESSAGES: usize = 64;
/// Stop adding messages to a batch past this many bytes.
const BATCH_BYTES: usize = 1 << 20;

/// Write every part of `batch` in order, whole, with as few `writev` calls as the
/// kernel allows. Messages stay contiguous: nothing else writes stdout. A
/// [`Base64File`] body is streamed between its head and its tail.
fn write_batch<W: Write>(out: &mut W, batch: &[OutMsg]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(batch.len() * 3);
    for m in batch {
        let Body::Base64File(f) = &m.body else {
            parts.extend(m.parts().into_iter().filter(|p| !p.is_empty()));
            continue;
        };
        parts.push(&m.data);
        write_parts(out, &mut parts)?;
        match stream_base64(out, f)? {
            Ok(()) => parts.push(m.tail),
            Err(e) => {
                tracing::warn!("reading a file failed while its result was written: {e}");
                out.write_all(b"\n")?;
                out.write_all(&(f.error_line)(&e))?;
            }
        }
    }
    write_parts(out, &mut parts)?;
    out.flush()
}

/// `writev` all of `parts` (emptying it), looping over partial writes.
fn write_parts<W: Write>(out: &mut W, parts: &mut Vec<&[u8]>) -> io::Result<()> {
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
    parts.clear();
    Ok(())
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
    let (sender, mut rx) = outbound::queue();
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
                // A streamed file result is written after the messages that are
                // ready with it (a stable sort: their order is kept), so that short
                // lines do not wait for it; it is a response, which has no place in
                // the order of notifications.
                batch.sort_by_key(|m| matches!(m.body, Body::Base64File(_)));
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
    sender
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

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

    fn file_with(bytes: &[u8]) -> std::fs::File {
        let p = std::env::temp_dir().join(format!(
            "tether-b64-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&p, bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }

    fn streamed(file: std::fs::File, len: u64) -> String {
        let msg = OutMsg {
            data: b"{\"r\":\"".to_vec(),
            body: Body::Base64File(Base64File {
                file,
                len,
                error_line: Box::new(|e| format!("{{\"error\":\"{e}\"}}\n").into_bytes()),
            }),
            tail: b"\"}\n",
            permit: None,
        };
        let mut w = Trickle(Vec::new());
        write_batch(
            &mut w,
            &[
                msg,
                OutMsg {
                    data: b"{}\n".to_vec(),
                    body: Body::None,
                    tail: b"",
                    permit: None,
                },
            ],
        )
        .unwrap();
        String::from_utf8(w.0).unwrap()
    }

    #[test]
    fn streamed_file_bodies_encode_exactly() {
        let data: Vec<u8> = (0..3 * B64_BLOCK as u32 + 7)
            .map(|i| (u64::from(i) * 7919 % 251) as u8)
            .collect();
        for n in [
            0,
            1,
            2,
            3,
            B64_BLOCK - 1,
            B64_BLOCK,
            B64_BLOCK + 1,
            2 * B64_BLOCK + 2,
            data.len(),
        ] {
            let out = streamed(file_with(&data[..n]), n as u64);
            assert_eq!(
                out,
                format!("{{\"r\":\"{}\"}}\n{{}}\n", STANDARD.encode(&data[..n])),
                "{n} bytes"
            );
        }
    }

    /// The size is taken when the file is opened: a file that shrinks gives what
    /// is left, one that grows gives only the bytes it had.
    #[test]
    fn streamed_file_that_shrank_or_grew() {
        let data = vec![7u8; 2 * B64_BLOCK + 5];
        let out = streamed(file_with(&data[..1000]), data.len() as u64);
        assert_eq!(
            out,
            format!("{{\"r\":\"{}\"}}\n{{}}\n", STANDARD.encode(&data[..1000]))
        );
        let out = streamed(file_with(&data), B64_BLOCK as u64 + 1);
        assert_eq!(
            out,
            format!(
                "{{\"r\":\"{}\"}}\n{{}}\n",
                STANDARD.encode(&data[..B64_BLOCK + 1])
            )
        );
    }

    /// A read that fails part way: the partial line ends unterminated (never a
    /// valid result), then the request's error line, then the rest of the batch.
    #[test]
    fn streamed_file_read_error_ends_the_line_and_sends_the_error() {
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let out = streamed(dir, 10);
        assert!(out.starts_with("{\"r\":\"\n{\"error\":\""), "{out}");
        assert!(out.ends_with("\"}\n{}\n"), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(lines[0]).is_err());
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_ok());
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
