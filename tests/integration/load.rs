//! Load (issue 9): a thousand processes writing at once, 256 terminals, thousands of
//! pipelined requests mixed with long polls. Everything is answered, nothing
//! deadlocks, and the server's memory stays bounded (the peaks are printed).
//! The default variants keep `cargo test` short; `just soak` runs the long ones.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// Per-process totals while reading a stream of notifications.
#[derive(Default, Debug)]
struct Tally {
    bytes: usize,
    bad: usize,
    next_seq: i64,
    exited: Option<i64>,
    closed: bool,
    text: Vec<u8>,
}

/// Reads lines until every id in `ids` is closed; returns the tallies and the
/// responses seen (by id). Checks that seq numbers have no gaps.
fn collect(
    s: &mut Server,
    ids: &[String],
    keep_text: bool,
    mut hwm: impl FnMut(&Server),
) -> (HashMap<String, Tally>, HashMap<String, Value>) {
    let mut t: HashMap<String, Tally> = ids.iter().map(|i| (i.clone(), Tally::default())).collect();
    let mut responses = HashMap::new();
    let mut open = ids.len();
    let mut n = 0u64;
    while open > 0 {
        let l = s
            .recv_line_timeout(Duration::from_secs(60))
            .unwrap_or_else(|| {
                let left: Vec<_> = t
                    .iter()
                    .filter(|(_, v)| !v.closed)
                    .map(|(k, _)| k)
                    .take(5)
                    .collect();
                panic!("{open} processes not closed after 60 s of silence, e.g. {left:?}")
            });
        n += 1;
        if n % 500 == 0 {
            hwm(s);
        }
        let v = l.value;
        let Some(method) = v.get("method").and_then(Value::as_str) else {
            responses.insert(v["id"].to_string(), v);
            continue;
        };
        let p = &v["params"];
        let Some(e) = p["processId"].as_str().and_then(|id| t.get_mut(id)) else {
            continue;
        };
        let seq = p["seq"].as_i64().unwrap();
        assert_eq!(seq, e.next_seq + 1, "seq without gaps: {v:.200}");
        e.next_seq = seq;
        match method {
            "process/output" => {
                let b = unb64(p["chunk"].as_str().unwrap());
                e.bytes += b.len();
                e.bad += b.iter().filter(|c| **c != 0).count();
                if keep_text {
                    e.text.extend(b);
                }
            }
            "process/exited" => e.exited = p["exitCode"].as_i64(),
            "process/closed" => {
                assert!(e.exited.is_some(), "closed after exited");
                e.closed = true;
                open -= 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    (t, responses)
}

/// `n` processes start, wait on stdin for a byte (so that they really run at the
/// same time), then each writes `bytes` zero bytes.
fn many_processes_writing(n: usize, bytes: usize) {
    let mut s = Server::ready();
    let script = format!("head -c 1 >/dev/null; exec head -c {bytes} /dev/zero");
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let t0 = Instant::now();
    let mut reqs = Vec::new();
    for id in &ids {
        let p = s.start_params(id, &["/bin/sh", "-c", &script], json!({"pipeStdin": true}));
        reqs.push(s.send_request("process/start", Some(p)));
    }
    for r in reqs {
        let resp = s.wait_response(&json!(r));
        assert!(resp.get("result").is_some(), "start failed: {resp}");
    }
    let started = t0.elapsed();
    // All are running now; let them go at once.
    let mut writes = Vec::new();
    for id in &ids {
        let p = json!({"processId": id, "chunk": b64(b"x")});
        writes.push(s.send_request("process/write", Some(p)));
    }
    let mut peak = 0;
    let (tally, responses) = collect(&mut s, &ids, false, |s| {
        if let Some((rss, _)) = s.memory_kib() {
            peak = peak.max(rss);
        }
    });
    for w in writes {
        let r = responses
            .get(&json!(w).to_string())
            .cloned()
            .unwrap_or_else(|| s.wait_response(&json!(w)));
        assert_eq!(r["result"]["status"], "accepted", "{r}");
    }
    for (id, t) in &tally {
        assert_eq!(t.bytes, bytes, "{id}: every byte delivered");
        assert_eq!(t.bad, 0, "{id}: bytes unchanged");
        assert_eq!(t.exited, Some(0), "{id}");
    }
    let (_, hwm) = s.memory_kib().unwrap();
    eprintln!(
        "{n} processes x {bytes} bytes: started in {started:?}, all closed after {:?}; server VmRSS peak {peak} KiB, VmHWM {hwm} KiB",
        t0.elapsed()
    );
    // Retention keeps up to 1 MiB per process (docs/protocol.md "Processes") until 30 s after closed, so
    // the bound grows with the number of processes; the rest is small.
    let retention_kib = (n * bytes.min(1 << 20) / 1024) as u64;
    assert!(
        hwm < retention_kib + 768 * 1024,
        "server VmHWM {hwm} KiB (retention alone may hold {retention_kib} KiB)"
    );
}

#[test]
fn a_thousand_processes_writing_at_once() {
    many_processes_writing(1000, 16 * 1024);
}

#[test]
#[ignore = "long: run by `just soak`"]
fn a_thousand_processes_writing_a_mebibyte_each() {
    many_processes_writing(1000, 1 << 20);
}

fn terminals(n: usize) {
    let mut s = Server::ready();
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let t0 = Instant::now();
    let mut reqs = Vec::new();
    for id in &ids {
        let p = s.start_params(
            id,
            &["/bin/sh", "-c", "read l; echo \"got:$l\""],
            json!({"tty": true, "size": {"rows": 10, "cols": 40}}),
        );
        reqs.push(s.send_request("process/start", Some(p)));
    }
    for r in reqs {
        let resp = s.wait_response(&json!(r));
        assert!(resp.get("result").is_some(), "start failed: {resp}");
    }
    for id in &ids {
        let p =
            json!({"processId": id, "chunk": b64(format!("{id}\r").as_bytes()), "writeId": "w"});
        s.send_request("process/write", Some(p));
    }
    let (tally, _) = collect(&mut s, &ids, true, |_| {});
    for (id, t) in &tally {
        let text = String::from_utf8_lossy(&t.text);
        assert!(text.contains(&format!("got:{id}")), "{id}: {text:?}");
        assert_eq!(t.exited, Some(0), "{id}");
    }
    let (_, hwm) = s.memory_kib().unwrap();
    eprintln!(
        "{n} terminals: all closed after {:?}; server VmHWM {hwm} KiB",
        t0.elapsed()
    );
    assert!(hwm < 512 * 1024, "server VmHWM {hwm} KiB");
}

#[test]
fn two_hundred_fifty_six_terminals() {
    terminals(256);
}

/// `n` pipelined requests, every `every`-th one a long poll on a process that
/// prints only after `delay`: the quick ones are all answered before any long poll,
/// and every one is answered.
fn pipelined_with_long_polls(n: usize, every: usize, delay_s: u32) {
    let mut s = Server::ready();
    let procs: Vec<String> = (0..10).map(|i| format!("slow{i}")).collect();
    for id in &procs {
        s.start_ok(
            id,
            &["/bin/sh", "-c", &format!("sleep {delay_s}; echo done")],
            json!({}),
        );
    }
    let mut stdin = s.take_stdin().unwrap();
    let long: Vec<bool> = (0..n).map(|i| i % every == 0).collect();
    let lines: Vec<u8> = (0..n)
        .flat_map(|i| {
            let line = if long[i] {
                format!(
                    r#"{{"id":{i},"method":"process/read","params":{{"processId":"slow{}","afterSeq":0,"waitMs":{}}}}}"#,
                    i % 10,
                    delay_s * 1000 + 20_000
                )
            } else if i % 2 == 0 {
                format!(r#"{{"id":{i},"method":"environment/status"}}"#)
            } else {
                format!(
                    r#"{{"id":{i},"method":"process/read","params":{{"processId":"slow{}","waitMs":0}}}}"#,
                    i % 10
                )
            };
            format!("{line}\n").into_bytes()
        })
        .collect();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&lines).unwrap();
        stdin
    });
    let mut answered = vec![false; n];
    let mut quick_left = long.iter().filter(|l| !**l).count();
    let mut long_before_quick = 0;
    let mut quick_done_at = None;
    let mut count = 0;
    while count < n {
        let l = s
            .recv_line_timeout(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("only {count} of {n} answered"));
        let v = l.value;
        if v.get("method").is_some() {
            continue;
        }
        let id = v["id"].as_u64().unwrap() as usize;
        assert!(!answered[id], "{id} answered twice");
        answered[id] = true;
        count += 1;
        assert!(v.get("result").is_some(), "{v}");
        if long[id] {
            if quick_left > 0 {
                long_before_quick += 1;
            }
            assert!(!v["result"]["chunks"].as_array().unwrap().is_empty(), "{v}");
        } else {
            quick_left -= 1;
            if quick_left == 0 {
                quick_done_at = Some(t0.elapsed());
            }
        }
    }
    let stdin = writer.join().unwrap();
    drop(stdin);
    let (_, hwm) = s.memory_kib().unwrap_or((0, 0));
    eprintln!(
        "{n} pipelined requests ({} long polls): quick ones done after {:?}, all after {:?}; server VmHWM {hwm} KiB",
        long.iter().filter(|l| **l).count(),
        quick_done_at,
        t0.elapsed()
    );
    // Long polls hold a permit, not memory (20 MiB measured, docs/hardening.md).
    if hwm > 0 {
        assert!(hwm < 128 * 1024, "server VmHWM {hwm} KiB");
    }
    if n / every < 1000 {
        // Fewer long polls than the in-flight limit: they never hold up the rest.
        assert_eq!(
            long_before_quick, 0,
            "long polls answered before quick requests"
        );
    }
}

#[test]
fn ten_thousand_pipelined_requests_mixed_with_long_polls() {
    pipelined_with_long_polls(10_000, 25, 4);
}

#[test]
#[ignore = "long: run by `just soak`"]
fn a_hundred_thousand_pipelined_requests_with_more_long_polls_than_the_in_flight_limit() {
    // 2,000 long polls > 1,024 in flight: the server stops reading until the
    // processes print, then serves the rest. No deadlock, all answered.
    pipelined_with_long_polls(100_000, 50, 5);
}
