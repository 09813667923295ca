//! The client library against the real server: typed calls, ordered per-process
//! event streams, responses out of order, Disconnected, handshake failures.

use crate::support::client::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tether::client::{
    start_params, Client, ClientError, ConnectOptions, ProcessEvent, ProcessEvents, ServerCommand,
};
use tether::protocol::process::{
    EnvPolicy, Inherit, ReadParams, SignalName, Stream, TermSize, WriteStatus,
};

async fn connect() -> Client {
    let (c, info) = tokio::time::timeout(
        TIMEOUT,
        Client::connect(&server(), ConnectOptions::new("lib-test")),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    assert!(!info.session_id.is_empty());
    c
}

/// All events of a stream until it ends; panics after TIMEOUT.
async fn drain(events: &mut ProcessEvents) -> Vec<ProcessEvent> {
    let mut all = Vec::new();
    loop {
        match tokio::time::timeout(TIMEOUT, events.recv()).await {
            Ok(Ok(Some(ev))) => all.push(ev),
            Ok(Ok(None)) => return all,
            Ok(Err(e)) => panic!("stream failed after {} events: {e}", all.len()),
            Err(_) => panic!("stream stalled after {} events", all.len()),
        }
    }
}

fn path_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]);
    if let Some(m) = test_marker() {
        env.insert(ORPHAN_VAR.to_string(), m);
    }
    env
}

#[test]
fn events_arrive_per_process_in_seq_order_and_end_at_closed() {
    let _orphans = OrphanCheck::new();
    runtime().block_on(async {
        let client = connect().await;
        let script = "i=0; while [ $i -lt 400 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
        // Each stream is read from the moment it exists: a stream that is not
        // read holds the connection once its buffer (EVENT_BUFFER) is full, and
        // each of these processes sends ~800 events.
        let mut drains = Vec::new();
        for n in 0..3 {
            let mut p = start_params(
                &format!("p{n}"),
                ["/bin/sh", "-c", script],
                &std::env::temp_dir(),
            );
            p.env = path_env();
            let (r, mut ev) = client.start_with_events(&p).await.unwrap();
            assert_eq!(r.process_id, format!("p{n}"));
            drains.push(tokio::spawn(async move { drain(&mut ev).await }));
        }
        for (n, d) in drains.into_iter().enumerate() {
            let all = d.await.unwrap();
            let seqs: Vec<u64> = all.iter().map(|e| e.seq()).collect();
            let want: Vec<u64> = (1..=all.len() as u64).collect();
            assert_eq!(seqs, want, "p{n}: seq strictly increasing without gaps");
            assert!(all.iter().all(|e| e.process_id() == format!("p{n}")));
            assert!(
                matches!(all.last(), Some(ProcessEvent::Closed(_))),
                "closed is last"
            );
            let exited: Vec<_> = all
                .iter()
                .filter_map(|e| match e {
                    ProcessEvent::Exited(x) => Some(x.exit_code),
                    _ => None,
                })
                .collect();
            assert_eq!(exited, vec![0]);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            for e in &all {
                if let ProcessEvent::Output(o) = e {
                    match o.stream {
                        Stream::Stdout => out.extend_from_slice(&o.chunk.0),
                        Stream::Stderr => err.extend_from_slice(&o.chunk.0),
                        Stream::Pty => panic!("pty output in pipe mode"),
                    }
                }
            }
            let want_out: String = (0..400).map(|i| format!("out{i}\n")).collect();
            let want_err: String = (0..400).map(|i| format!("err{i}\n")).collect();
            assert_eq!(text(&out), want_out);
            assert_eq!(text(&err), want_err);
        }
    });
}

#[test]
fn typed_calls_for_processes_and_the_environment() {
    let _orphans = OrphanCheck::new();
    runtime().block_on(async {
        let client = connect().await;
        assert_eq!(client.environment_status().await.unwrap(), "ready");
        let info = client.environment_info().await.unwrap();
        assert_eq!(info.platform_os.as_deref(), Some("linux"));

        // stdin: write, closeStdin; read with retention.
        let mut p = start_params("cat", ["cat"], &std::env::temp_dir());
        p.env = path_env();
        let (_, mut ev) = client.start_with_events(&p).await.unwrap();
        assert_eq!(
            client.write("cat", b"abc").await.unwrap(),
            WriteStatus::Accepted
        );
        assert_eq!(
            client.close_stdin("cat").await.unwrap(),
            WriteStatus::Accepted
        );
        drain(&mut ev).await;
        let r = client
            .read(&ReadParams {
                process_id: "cat".into(),
                after_seq: None,
                max_bytes: None,
                wait_ms: None,
            })
            .await
            .unwrap();
        assert!(r.closed && r.exited);
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.chunks.len(), 1);
        assert_eq!(
            client.write("cat", b"x").await.unwrap(),
            WriteStatus::StdinClosed
        );
        assert!(!client.terminate("cat", None).await.unwrap());

        // A terminal: initial size, resize, interrupt.
        let mut p = start_params(
            "tty",
            [
                "/bin/sh",
                "-c",
                "stty size; trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done",
            ],
            &std::env::temp_dir(),
        );
        p.env = path_env();
        p.tty = true;
        p.size = Some(TermSize {
            rows: 33,
            cols: 101,
        });
        let (_, mut ev) = client.start_with_events(&p).await.unwrap();
        let mut out = String::new();
        let mut resized = false;
        let mut interrupted = false;
        let deadline = Instant::now() + TIMEOUT;
        let code = loop {
            assert!(Instant::now() < deadline, "terminal output so far: {out:?}");
            match tokio::time::timeout(TIMEOUT, ev.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Some(ProcessEvent::Output(o)) => {
                    assert_eq!(o.stream, Stream::Pty);
                    out.push_str(&text(&o.chunk.0));
                    // Resize once the trap is in place.
                    if out.contains("33 101") && out.contains("ready") && !resized {
                        resized = true;
                        client.resize("tty", 40, 120).await.unwrap();
                    }
                    if out.contains("40 120") && !interrupted {
                        interrupted = true;
                        client.signal("tty", SignalName::Interrupt).await.unwrap();
                    }
                }
                Some(ProcessEvent::Exited(e)) => break e.exit_code,
                Some(ProcessEvent::Closed(_)) | None => panic!("closed before exit: {out:?}"),
            }
        };
        assert_eq!(code, 130, "{out:?}");
        drain(&mut ev).await;
        // Errors are typed and carry the server's message.
        match client.resize("nope", 1, 1).await {
            Err(ClientError::Rpc(e)) => assert_eq!(e.message, "unknown process id nope"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn responses_are_matched_by_id_when_they_come_out_of_order() {
    let _orphans = OrphanCheck::new();
    runtime().block_on(async {
        let client = std::sync::Arc::new(connect().await);
        let mut p = start_params("slow", ["sleep", "5"], &std::env::temp_dir());
        p.env = path_env();
        client.start(&p).await.unwrap();
        let c = client.clone();
        let t = Instant::now();
        let long_poll = tokio::spawn(async move {
            let r = c
                .read(&ReadParams {
                    process_id: "slow".into(),
                    after_seq: None,
                    max_bytes: None,
                    wait_ms: Some(1500),
                })
                .await;
            (r, t.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Sent after the long poll, answered before it.
        assert_eq!(client.environment_status().await.unwrap(), "ready");
        let quick = t.elapsed();
        let (r, slow) = long_poll.await.unwrap();
        let r = r.unwrap();
        assert!(!r.exited && r.chunks.is_empty());
        assert!(quick < Duration::from_millis(1200), "status took {quick:?}");
        assert!(
            slow >= Duration::from_millis(1400),
            "long poll returned after {slow:?}"
        );
        client.terminate("slow", None).await.unwrap();
    });
}

#[test]
fn a_server_crash_fails_pending_calls_and_streams_with_disconnected() {
    let _orphans = OrphanCheck::new();
    runtime().block_on(async {
        let client = std::sync::Arc::new(connect().await);
        let mut p = start_params("s", ["sleep", "100"], &std::env::temp_dir());
        p.env = path_env();
        let (_, mut ev) = client.start_with_events(&p).await.unwrap();
        let c = client.clone();
        let pending = tokio::spawn(async move {
            c.read(&ReadParams {
                process_id: "s".into(),
                after_seq: None,
                max_bytes: None,
                wait_ms: Some(60_000),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        // SAFETY: killing the server this test started.
        unsafe { libc::kill(client.server_pid().unwrap() as i32, libc::SIGKILL) };
        let r = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("pending call ended")
            .unwrap();
        assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let e = tokio::time::timeout(Duration::from_secs(5), ev.recv())
            .await
            .unwrap();
        assert!(matches!(e, Err(ClientError::Disconnected)), "{e:?}");
        assert!(client.is_disconnected());
        let r = client.environment_status().await;
        assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
    });
}

#[test]
fn server_command_args_env_overlay_and_cwd() {
    let _orphans = OrphanCheck::new();
    let dir = temp_dir("server-cwd");
    runtime().block_on(async {
        let cmd = ServerCommand::new(bin())
            .arg("exec-server")
            .env("TETHER_TEST_OVERLAY", "from-overlay")
            .cwd(&dir);
        let (client, info) = Client::connect(&cmd, ConnectOptions::new("lib-test"))
            .await
            .unwrap();
        let cwd =
            tether::protocol::paths::parse_path(info.environment_info.cwd.as_deref().unwrap())
                .unwrap();
        assert_eq!(cwd, dir);
        let mut p = start_params(
            "env",
            ["/bin/sh", "-c", "echo $TETHER_TEST_OVERLAY; pwd"],
            &dir,
        );
        p.env_policy = Some(EnvPolicy {
            inherit: Some(Inherit::All),
            ..EnvPolicy::default()
        });
        let (_, mut ev) = client.start_with_events(&p).await.unwrap();
        let mut out = Vec::new();
        for e in drain(&mut ev).await {
            if let ProcessEvent::Output(o) = e {
                out.extend(o.chunk.0);
            }
        }
        assert_eq!(text(&out), format!("from-overlay\n{}\n", dir.display()));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn handshake_timeout_spawn_errors_and_server_stderr() {
    let _orphans = OrphanCheck::new();
    runtime().block_on(async {
        // A program that never answers: the handshake times out and it is stopped.
        let opts = ConnectOptions::new("t").initialize_timeout(Duration::from_millis(300));
        let client = Client::spawn(&ServerCommand::new("sleep").arg("30"), &opts).unwrap();
        let pid = client.server_pid().unwrap();
        let t = Instant::now();
        match client.handshake(&opts).await {
            Err(ClientError::Timeout { what, after }) => {
                assert_eq!(
                    (what.as_str(), after),
                    ("initialize", Duration::from_millis(300))
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(3));
        drop(client);
        assert!(!pid_alive(pid), "the silent server was stopped");
        // connect() returns the same error, after stopping the server.
        let r = Client::connect(&ServerCommand::new("sleep").arg("30"), opts.clone()).await;
        assert!(matches!(r, Err(ClientError::Timeout { .. })));

        // A program that cannot be started.
        match Client::connect(&ServerCommand::new("/nonexistent/tether"), opts.clone()).await {
            Err(ClientError::Spawn(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("connected to nothing"),
        }

        // A program that exits: Disconnected, and its stderr is kept.
        let cmd = ServerCommand::new("sh").args(["-c", "echo 'no such host' >&2; exit 255"]);
        let client = Client::spawn(&cmd, &opts).unwrap();
        let r = client.handshake(&ConnectOptions::new("t")).await;
        assert!(matches!(r, Err(ClientError::Disconnected)), "{r:?}");
        let deadline = Instant::now() + TIMEOUT;
        while client.server_stderr_tail().is_empty() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(client.server_stderr_tail(), vec!["no such host"]);
    });
}
