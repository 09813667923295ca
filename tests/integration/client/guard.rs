//! `ChildGuard` stops the server and everything it started: on drop from sync
//! and async code, while a panic unwinds, and when the client process itself is
//! SIGKILLed (no Drop runs at all).
//!
//! What Drop promises (src/client/guard.rs): the server's stdin is closed and it
//! gets SIGTERM, and then time (the grace) to shut down by itself, killing what
//! it started, before the guard SIGKILLs its group. The drop tests hold it to
//! that: their servers run in process-group mode (`TETHER_CGROUP=off`), where a
//! process that left its group (TREE's `setsid sleep`) is killed by the
//! server's own shutdown only, not when the server is SIGKILLed
//! (docs/protocol.md "Lifetime"); and the server's log must show a shutdown
//! that began on end of input or SIGTERM and completed. A guard that SIGKILLed
//! at once would fail both.

use crate::support::client::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tether::client::{start_params, Client, ConnectOptions, ServerCommand};

/// A command that leaves a child, a grandchild in its own session, and itself.
const TREE: &str = "sleep 1000 & setsid sleep 1000 & exec sleep 1000";

/// The server for the drop tests: process-group mode, logging its shutdown to
/// `log` (see the module comment).
fn logged_server(log: &Path) -> ServerCommand {
    server()
        .env("TETHER_CGROUP", "off")
        .env("RUST_LOG", "tether=info")
        .env("TETHER_LOG_FILE", log)
}

/// A log file for [`logged_server`].
fn log_file(name: &str) -> PathBuf {
    temp_dir(name).join("server.log")
}

/// Connect and start TREE with `marker`; returns the client once all three
/// processes are up.
async fn start_tree(marker: &str) -> Client {
    start_tree_on(&server(), marker).await
}

async fn start_tree_on(cmd: &ServerCommand, marker: &str) -> Client {
    let (client, _) = Client::connect(cmd, ConnectOptions::new("guard-test"))
        .await
        .expect("connect");
    let mut p = start_params("tree", ["/bin/sh", "-c", TREE], &std::env::temp_dir());
    p.env.insert(MARKER.into(), marker.into());
    p.env.insert("PATH".into(), "/usr/bin:/bin".into());
    client.start(&p).await.expect("start");
    let m = marker.to_string();
    tokio::task::spawn_blocking(move || {
        // Until all three are `sleep`: a process in the middle of its exec has no
        // readable environment yet, so a count taken then can come out short.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let p = wait_marked(&m, 3);
            let all_sleep = p.iter().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            });
            if p.len() == 3 && all_sleep {
                break;
            }
            assert!(Instant::now() < deadline, "the tree never settled: {p:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .unwrap();
    client
}

fn assert_gone(marker: &str, server_pid: u32) {
    if let Err(left) = gone_within(marker, Duration::from_secs(2)) {
        panic!("processes survived the guard: {left:?}");
    }
    // The server kills its children first, then exits.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pid_alive(server_pid) {
        assert!(Instant::now() < deadline, "server {server_pid} survived");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The server was stopped the way the guard promises: nothing of TREE is left
/// (in process-group mode the `setsid` sleeper dies only by the server's own
/// shutdown), and the server's log shows that shutdown, begun on end of input
/// or SIGTERM, completed.
fn assert_stopped_gracefully(marker: &str, server_pid: u32, log: &Path) {
    assert_gone(marker, server_pid);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        text.contains("shutting down: end of input") || text.contains("shutting down: SIGTERM"),
        "the server did not begin a shutdown of its own (end of input or SIGTERM); log:\n{text}"
    );
    assert!(
        text.contains("shutdown complete"),
        "the server was not given time to finish its shutdown; log:\n{text}"
    );
    if let Some(dir) = log.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn drop_in_sync_code_kills_server_and_all_its_children() {
    let marker = unique("sync");
    let log = log_file("guard-sync");
    let rt = runtime();
    let client = rt.block_on(start_tree_on(&logged_server(&log), &marker));
    let pid = client.server_pid().unwrap();
    let t = Instant::now();
    drop(client); // outside the runtime
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_stopped_gracefully(&marker, pid, &log);
}

#[test]
fn drop_in_async_code_kills_server_and_all_its_children() {
    let marker = unique("async");
    let log = log_file("guard-async");
    let rt = runtime();
    let pid = rt.block_on(async {
        let client = start_tree_on(&logged_server(&log), &marker).await;
        let pid = client.server_pid().unwrap();
        drop(client);
        pid
    });
    assert_stopped_gracefully(&marker, pid, &log);
}

#[test]
fn panic_unwinding_kills_server_and_all_its_children() {
    let marker = unique("panic");
    let log = log_file("guard-panic");
    let rt = runtime();
    let pid = std::sync::Mutex::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let client = start_tree_on(&logged_server(&log), &marker).await;
            *pid.lock().unwrap() = client.server_pid().unwrap();
            panic!("test panic with a live client");
        })
    }));
    assert!(r.is_err());
    let pid = *pid.lock().unwrap();
    assert_ne!(pid, 0);
    assert_stopped_gracefully(&marker, pid, &log);
}

/// Run by `sigkill_of_the_client_process_kills_the_server_tree` in a child
/// process: connect, start TREE, say "ready <server pid>", and wait to be killed.
#[test]
#[ignore = "helper process for sigkill_of_the_client_process_kills_the_server_tree"]
fn helper_client_process() {
    let Ok(marker) = std::env::var("TETHER_CLIENT_HELPER_MARKER") else {
        panic!("only run by sigkill_of_the_client_process_kills_the_server_tree");
    };
    let rt = runtime();
    rt.block_on(async {
        let client = start_tree(&marker).await;
        println!("ready {}", client.server_pid().unwrap());
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(client);
    });
}

#[test]
fn sigkill_of_the_client_process_kills_the_server_tree() {
    let marker = unique("sigkill");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "client::guard::helper_client_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TETHER_CLIENT_HELPER_MARKER", &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = helper.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may print "test NAME ... " on the same line first.
            if let Some((_, pid)) = line.split_once("ready ") {
                let _ = tx.send(pid.trim().parse::<u32>().unwrap());
            }
        }
    });
    let server_pid = match rx.recv_timeout(TIMEOUT) {
        Ok(p) => p,
        Err(_) => {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("the helper never became ready");
        }
    };
    assert_eq!(marked(&marker).len(), 3);
    helper.kill().unwrap(); // SIGKILL: no destructor runs in the helper
    helper.wait().unwrap();
    assert_gone(&marker, server_pid);
}
