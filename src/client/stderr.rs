//! The server's stderr: each line is logged through `tracing` at debug level
//! (target `tether::client::server`), and the last few are kept so that a caller
//! can show why a server failed (an ssh error, for example).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

const KEEP_LINES: usize = 32;
const MAX_LINE: usize = 1024;

/// The last lines a server wrote to stderr.
#[derive(Clone, Default)]
pub(crate) struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == KEEP_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }
}

/// Read `stderr` on a thread until it ends.
pub(crate) fn forward<R: Read + Send + 'static>(stderr: R, pid: u32) -> Tail {
    let tail = Tail::default();
    let t = tail.clone();
    let spawned = std::thread::Builder::new()
        .name("tether-client-stderr".into())
        .spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let end = buf.len().min(MAX_LINE);
                let line = String::from_utf8_lossy(&buf[..end]);
                let line = line.trim_end_matches(['\n', '\r']);
                tracing::debug!(target: "tether::client::server", pid, "{line}");
                t.push(line.to_string());
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the stderr thread: {e}");
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("line {i}\n"));
        }
        let tail = forward(std::io::Cursor::new(text.into_bytes()), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while tail.lines().last().map(String::as_str) != Some("line 39") {
            assert!(std::time::Instant::now() < deadline, "{:?}", tail.lines());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), KEEP_LINES);
        assert_eq!(lines[0], "line 8");
    }
}
