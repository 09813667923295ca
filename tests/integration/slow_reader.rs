//! docs/protocol.md "Transport" flow control: a client that stops reading stdout must not make the
//! server buffer without bound, and no output may be lost.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const TOTAL: usize = 200_000_000;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// The bytes `seq 1 N` prints, generated incrementally for comparison.
struct SeqStream {
    next: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl SeqStream {
    fn new() -> Self {
        SeqStream {
            next: 1,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn push_number(&mut self) {
        let mut digits = [0u8; 20];
        let mut n = self.next;
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[i..]);
        self.buf.push(b'\n');
        self.next += 1;
    }

    /// Compares `data` with the next bytes of the stream.
    fn matches(&mut self, data: &[u8]) -> bool {
        if self.pos > 1 << 20 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        while self.buf.len() - self.pos < data.len() {
            self.push_number();
        }
        let ok = &self.buf[self.pos..self.pos + data.len()] == data;
        self.pos += data.len();
        ok
    }
}

#[test]
fn slow_reader_bounded_memory_and_no_loss() {
    let mut s = Server::ready();
    let script = format!("seq 1 30000000 | head -c {TOTAL}");
    s.start_ok("flood", &["/bin/sh", "-c", &script], json!({}));
    s.pause_reading(true);
    let mut max_rss = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let (rss, _) = s.memory_kib().expect("server status");
        max_rss = max_rss.max(rss);
        assert!(
            rss < RSS_LIMIT_KIB,
            "server RSS {rss} KiB while the client is not reading"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // Back-pressure reached the child: it is still blocked writing.
    let procs = marked_processes(&s.marker);
    assert!(
        procs.iter().any(|p| p.cmdline.starts_with("head -c")),
        "the child should still be blocked after 5 s without a reader: {procs:?}"
    );
    s.pause_reading(false);

    let mut stream = SeqStream::new();
    let mut bytes = 0usize;
    let mut exit_code = None;
    let mut n = 0u64;
    let mut bad_at = None;
    let server_pid = s.pid();
    let sample = |max_rss: &mut u64| {
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{server_pid}/status")) {
            if let Some(v) = st
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                *max_rss = (*max_rss).max(v);
            }
        }
    };
    s.for_each_until_closed("flood", |e| {
        n += 1;
        if n % 200 == 0 {
            sample(&mut max_rss);
        }
        match e["method"].as_str().unwrap() {
            "process/output" => {
                let b = unb64(e["params"]["chunk"].as_str().unwrap());
                if bad_at.is_none() && !stream.matches(&b) {
                    bad_at = Some(bytes);
                }
                bytes += b.len();
            }
            "process/exited" => exit_code = e["params"]["exitCode"].as_i64(),
            _ => {}
        }
    });
    assert_eq!(
        bad_at, None,
        "output differs from `seq` starting at byte offset {bad_at:?}"
    );
    assert_eq!(bytes, TOTAL, "every byte delivered");
    assert_eq!(exit_code, Some(0));
    let (_, hwm) = s.memory_kib().expect("server status");
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "server RSS peaked at {max_rss} KiB"
    );
    assert!(hwm < RSS_LIMIT_KIB, "server VmHWM {hwm} KiB");
}

#[test]
fn slow_reader_does_not_lose_requests_or_responses() {
    // Pipelined requests while stdout is not read: all answered afterwards.
    let mut s = Server::ready();
    s.start_ok(
        "noisy",
        &["/bin/sh", "-c", "head -c 20000000 /dev/zero"],
        json!({}),
    );
    s.pause_reading(true);
    let ids: Vec<i64> = (0..300)
        .map(|_| s.send_request("environment/status", None))
        .collect();
    thread::sleep(Duration::from_secs(1));
    let (rss, _) = s.memory_kib().unwrap();
    assert!(rss < RSS_LIMIT_KIB, "{rss} KiB");
    s.pause_reading(false);
    let mut bytes = 0;
    s.for_each_until_closed("noisy", |e| {
        if e["method"] == "process/output" {
            bytes += unb64(e["params"]["chunk"].as_str().unwrap()).len();
        }
    });
    assert_eq!(bytes, 20_000_000);
    for id in ids {
        let r = s.wait_response(&json!(id));
        assert_eq!(r["result"], json!({"status": "ready"}));
    }
}
