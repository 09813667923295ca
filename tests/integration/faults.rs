//! Faults (issue 9): a client that stops reading, children that close stdout early,
//! ignore SIGTERM or daemonize, descriptor exhaustion, a full disk, and a server
//! killed mid-stream. The server keeps serving and loses nothing; nothing outlives
//! it (the harness's orphan check runs after every test).

use crate::support::*;
use serde_json::json;
use std::thread;
use std::time::{Duration, Instant};

const PATTERN: &[u8] = b"0123456789abcdef\n";

/// A client that stops reading stdout for `stall` while a child writes `total`
/// bytes: every byte arrives, in order, and the server's memory stays bounded.
fn stalled_reader(total: usize, stall: Duration) {
    let mut s = Server::ready();
    let script = format!("yes 0123456789abcdef | head -c {total}");
    s.start_ok("flood", &["/bin/sh", "-c", &script], json!({}));
    // The flood has started (its first output stays buffered for the count below).
    s.wait_buffered("output of flood", TIMEOUT, |v| {
        v["method"] == "process/output" && v["params"]["processId"] == "flood"
    });
    s.pause_reading(true);
    let t0 = Instant::now();
    let mut peak = 0;
    while t0.elapsed() < stall {
        peak = peak.max(s.memory_kib().unwrap().0);
        thread::sleep(Duration::from_millis(100));
    }
    s.pause_reading(false);
    let mut offset = 0usize;
    let mut bad = None;
    let mut n = 0u64;
    let pid = s.pid();
    let mut exit = None;
    s.for_each_until_closed("flood", |e| {
        n += 1;
        if n % 256 == 0 {
            if let Ok(st) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                if let Some(v) = st
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    peak = peak.max(v);
                }
            }
        }
        match e["method"].as_str().unwrap() {
            "process/output" => {
                let b = unb64(e["params"]["chunk"].as_str().unwrap());
                for (i, c) in b.iter().enumerate() {
                    if bad.is_none() && *c != PATTERN[(offset + i) % PATTERN.len()] {
                        bad = Some(offset + i);
                    }
                }
                offset += b.len();
            }
            "process/exited" => exit = e["params"]["exitCode"].as_i64(),
            _ => {}
        }
    });
    let (_, hwm) = s.memory_kib().unwrap();
    eprintln!(
        "stalled {stall:?} during {total} bytes: all delivered after {:?}; server VmRSS peak {peak} KiB, VmHWM {hwm} KiB",
        t0.elapsed()
    );
    assert_eq!(bad, None, "output differs at byte offset {bad:?}");
    assert_eq!(offset, total, "every byte delivered");
    assert_eq!(exit, Some(0));
    assert!(hwm < 96 * 1024, "server VmHWM {hwm} KiB");
}

#[test]
fn a_client_that_stalls_reading_loses_nothing() {
    stalled_reader(64 << 20, Duration::from_secs(3));
}

#[test]
#[ignore = "long: run by `just soak`"]
fn a_client_that_stalls_30_s_during_a_gigabyte_loses_nothing() {
    stalled_reader(1 << 30, Duration::from_secs(30));
}

#[test]
fn a_child_that_closes_stdout_early_and_keeps_running() {
    let mut s = Server::ready();
    s.start_ok(
        "c",
        &[
            "/bin/sh",
            "-c",
            "echo before; exec 1>&-; echo closed >&2; sleep 1; echo still-here >&2; exit 3",
        ],
        json!({}),
    );
    // stdout is at end-of-file, stderr still open: running, not closed.
    assert!(wait_until(TIMEOUT, || {
        let r = s.call("process/read", json!({"processId": "c"}));
        r["chunks"].as_array().unwrap().len() >= 2
    }));
    let r = s.call("process/read", json!({"processId": "c"}));
    assert_eq!(r["exited"], false, "{r}");
    assert_eq!(r["closed"], false, "{r}");
    let run = Run::from_events(s.collect_until_closed("c"));
    assert_eq!(run.exit_code(), 3);
    assert_eq!(run.stdout_str(), "before\n");
    assert_eq!(run.stderr_str(), "closed\nstill-here\n");
    // Both streams closed early: exited and closed still come, in order.
    let run = s.run(
        "both",
        &["/bin/sh", "-c", "exec >&- 2>&-; sleep 0.5; exit 4"],
        json!({}),
    );
    assert_eq!(run.exit_code(), 4);
    assert!(run.stdout.is_empty() && run.stderr.is_empty());
}

#[test]
fn children_that_ignore_sigterm() {
    let mut s = Server::ready();
    let argv = [
        "/bin/sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ];
    s.start_ok("stubborn", &argv, json!({}));
    s.wait_output_contains("stubborn", "ready", TIMEOUT);
    // SIGTERM alone does nothing.
    s.call(
        "process/signal",
        json!({"processId": "stubborn", "signal": "terminate"}),
    );
    thread::sleep(Duration::from_millis(300));
    let r = s.call("process/read", json!({"processId": "stubborn"}));
    assert_eq!(r["exited"], false, "{r}");
    // A graceful terminate ends with SIGKILL when the grace runs out.
    let t0 = Instant::now();
    let r = s.call(
        "process/terminate",
        json!({"processId": "stubborn", "graceMs": 400}),
    );
    assert_eq!(r["running"], true);
    let ev = s.collect_until_closed("stubborn");
    let exited = ev.iter().find(|e| e["method"] == "process/exited").unwrap();
    assert_eq!(exited["params"]["exitCode"], 137, "{exited}");
    assert_eq!(exited["params"]["signal"], "SIGKILL", "{exited}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // And one still running at shutdown is killed with everything else.
    s.start_ok("stubborn2", &argv, json!({}));
    s.wait_output_contains("stubborn2", "ready", TIMEOUT);
    s.close_stdin();
    assert!(s
        .wait_exit(Duration::from_secs(2))
        .is_some_and(|st| st.success()));
    assert!(
        wait_until(Duration::from_secs(1), || alive_with_marker(&s.marker)
            .is_empty()),
        "survivors: {:?}",
        marked_processes(&s.marker)
    );
}

#[test]
fn daemonizing_grandchildren_are_killed_at_shutdown() {
    let mut s = Server::ready();
    let dir = temp_dir("daemon");
    let pidfile = dir.join("pid");
    // Double fork + setsid; the daemon keeps the pipes in one case and not in the
    // other.
    let keep = format!(
        "setsid sh -c 'sh -c \"echo \\$\\$ > {p}.keep; exec sleep 60\" &' ; echo parent-done",
        p = pidfile.display()
    );
    let detach = format!(
        "setsid sh -c 'sh -c \"echo \\$\\$ > {p}.detach; exec sleep 60\" </dev/null >/dev/null 2>&1 &' ; echo parent-done",
        p = pidfile.display()
    );
    let run = s.run("detach", &["/bin/sh", "-c", &detach], json!({}));
    assert_eq!(run.exit_code(), 0);
    s.start_ok("keep", &["/bin/sh", "-c", &keep], json!({}));
    let ev = s.wait_output_contains("keep", "parent-done", TIMEOUT);
    assert!(ev.iter().all(|e| e["method"] != "process/closed"));
    let read_pid = |suffix: &str| -> i32 {
        let f = dir.join(format!("pid.{suffix}"));
        assert!(wait_until(TIMEOUT, || std::fs::read_to_string(&f)
            .is_ok_and(|t| t.ends_with('\n'))));
        std::fs::read_to_string(&f).unwrap().trim().parse().unwrap()
    };
    let (d1, d2) = (read_pid("detach"), read_pid("keep"));
    let alive = |p: i32| proc_info(p).is_some_and(|i| i.state != 'Z');
    assert!(alive(d1) && alive(d2));
    // The parent exited; the daemon holds the pipes, so the record is not closed
    // until terminate, which cannot reach the daemon (it left the group).
    let r = s.call("process/read", json!({"processId": "keep", "waitMs": 3000}));
    assert_eq!(r["closed"], false, "{r}");
    let r = s.call("process/terminate", json!({"processId": "keep"}));
    assert_eq!(r["running"], false);
    let ev = s.collect_until_closed("keep");
    assert_eq!(ev.last().unwrap()["method"], "process/closed");
    assert!(alive(d1) && alive(d2), "daemons are outside every group");
    // Shutdown (the server is their subreaper) kills them.
    s.close_stdin();
    assert!(s
        .wait_exit(Duration::from_secs(2))
        .is_some_and(|st| st.success()));
    assert!(
        wait_until(Duration::from_secs(1), || !alive(d1) && !alive(d2)),
        "daemons survived the server: {:?} {:?}",
        proc_info(d1),
        proc_info(d2)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn descriptor_exhaustion_gives_clear_errors_and_the_server_keeps_serving() {
    let mut s = Server::builder().nofile(64).spawn();
    s.initialize();
    let dir = temp_dir("fds");
    let file = dir.join("f");
    std::fs::write(&file, b"data").unwrap();
    let mut started = Vec::new();
    let mut errors = Vec::new();
    for i in 0..40 {
        let id = format!("s{i}");
        let r = s.start_process(&id, &["/bin/sleep", "30"], json!({"pipeStdin": true}));
        match error_of(&r) {
            None => started.push(id),
            Some(e) => errors.push(e),
        }
    }
    eprintln!(
        "with 64 descriptors: {} started, errors {:?}",
        started.len(),
        errors.first()
    );
    assert!(
        !errors.is_empty(),
        "64 descriptors cannot hold 40 processes"
    );
    for (code, msg) in &errors {
        assert_eq!(*code, -32603, "{msg}");
        assert_eq!(msg, "Too many open files (os error 24)");
    }
    // A request that needs a descriptor either gets one or fails the same clear way.
    let r = s.request("fs/readFile", json!({"path": file}));
    if error_of(&r).is_some() {
        assert_error(&r, -32603, "Too many open files (os error 24)");
    }
    let r = s.request("environment/status", json!({}));
    assert_eq!(r["result"]["status"], "ready");
    // Free them: everything works again.
    for id in &started {
        s.call("process/terminate", json!({"processId": id}));
        s.collect_until_closed(id);
    }
    let r = s.call("fs/readFile", json!({"path": file}));
    assert_eq!(unb64(r["dataBase64"].as_str().unwrap()), b"data");
    let run = s.run("after", &["/bin/echo", "ok"], json!({}));
    assert_eq!(run.stdout_str(), "ok\n");
    assert!(!s.stderr_text().contains("panicked"), "{}", s.stderr_text());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 1 MiB tmpfs, unmounted (and removed) on drop.
struct SmallTmpfs(std::path::PathBuf);

impl SmallTmpfs {
    fn mount() -> Result<SmallTmpfs, String> {
        let dir = temp_dir("tmpfs");
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "tether-test",
                dir.to_str().unwrap(),
            ])
            .status();
        match st {
            Ok(st) if st.success() => Ok(SmallTmpfs(dir)),
            other => {
                let _ = std::fs::remove_dir(&dir);
                Err(format!("cannot mount a tmpfs ({other:?})"))
            }
        }
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn disk_full_during_write_file() {
    let fs = match SmallTmpfs::mount() {
        Ok(fs) => fs,
        Err(why) => return skip(why),
    };
    let mut s = Server::ready();
    let path = fs.0.join("big");
    let r = s.request(
        "fs/writeFile",
        json!({"path": path, "dataBase64": b64(&vec![1u8; 2 << 20])}),
    );
    assert_error(&r, -32603, "No space left on device (os error 28)");
    // fs/writeBlock into the full disk: the same clear error.
    s.call("fs/remove", json!({"path": path}));
    s.call(
        "fs/open",
        json!({"handleId": "h", "path": path, "mode": "replace"}),
    );
    let r = s.request(
        "fs/writeBlock",
        json!({"handleId": "h", "offset": 0, "chunk": b64(&vec![2u8; 2 << 20])}),
    );
    assert_error(&r, -32603, "No space left on device (os error 28)");
    s.call("fs/close", json!({"handleId": "h"}));
    // After freeing the space, a small write works.
    s.call("fs/remove", json!({"path": path}));
    s.call(
        "fs/writeFile",
        json!({"path": path, "dataBase64": b64(b"ok")}),
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"ok");
    let r = s.request("environment/status", json!({}));
    assert_eq!(r["result"]["status"], "ready");
    drop(s);
    drop(fs);
}

#[test]
fn a_server_killed_mid_stream_disconnects_the_client_and_leaves_no_child() {
    use tether::client::{start_params, Client, ClientError, ConnectOptions, ServerCommand};
    let marker = unique("sigkill");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cmd = ServerCommand::new(bin()).arg("exec-server");
        let (client, _) = Client::connect(&cmd, ConnectOptions::new("faults"))
            .await
            .expect("connect");
        let mut ids = Vec::new();
        let mut streams = Vec::new();
        for i in 0..4 {
            let id = format!("y{i}");
            let mut p = start_params(&id, ["/usr/bin/yes", "stream"], &std::env::temp_dir());
            p.env.insert("PATH".into(), "/usr/bin:/bin".into());
            p.env.insert(MARKER_VAR.into(), marker.clone());
            let (_, ev) = client.start_with_events(&p).await.expect("start");
            ids.push(id);
            streams.push(ev);
        }
        // Mid-stream: output is flowing.
        for ev in &mut streams {
            let e = tokio::time::timeout(TIMEOUT, ev.recv())
                .await
                .expect("output");
            assert!(matches!(e, Ok(Some(_))), "{e:?}");
        }
        assert_eq!(alive_with_marker(&marker).len(), 4);
        let pid = client.server_pid().unwrap() as i32;
        // SAFETY: killing the server this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        for ev in &mut streams {
            let end = tokio::time::timeout(TIMEOUT, async {
                loop {
                    match ev.recv().await {
                        Ok(Some(_)) => continue,
                        other => return other,
                    }
                }
            })
            .await
            .expect("the stream ends");
            assert!(matches!(end, Err(ClientError::Disconnected)), "{end:?}");
        }
        let r = client.environment_status().await;
        assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
    });
    // PDEATHSIG: every direct child died with the server.
    assert!(
        wait_until(Duration::from_secs(2), || alive_with_marker(&marker)
            .is_empty()),
        "children outlived a SIGKILLed server: {:?}",
        marked_processes(&marker)
    );
    orphans::check(MARKER_VAR, &marker, "the SIGKILL test");
}
