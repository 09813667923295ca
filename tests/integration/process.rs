//! docs/protocol.md "Processes" processes: start, events, read, write, signal, terminate, resize.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::support::*;

const SH: &str = "/bin/sh";

fn sh(script: &str) -> Vec<&str> {
    vec![SH, "-c", script]
}

// ---- start and events ----------------------------------------------------

#[test]
fn echo_stdout_and_stderr() {
    let mut s = Server::ready();
    let r = s.start_ok("echo", &sh("echo out; echo err >&2"), json!({}));
    assert_eq!(r, json!({"processId": "echo", "sandboxType": "none"}));
    let run = Run::from_events(s.collect_until_closed("echo"));
    assert_eq!(run.stdout_str(), "out\n");
    assert_eq!(run.stderr_str(), "err\n");
    assert!(run.pty.is_empty());
    assert_eq!(run.exited["exitCode"], json!(0));
    assert_eq!(run.exited["sandboxDenied"], json!(false));
    assert!(run.exited.get("signal").is_none(), "{}", run.exited);
    // The Codex client terminates after closed and expects running:false.
    let t = s.call("process/terminate", json!({"processId": "echo"}));
    assert_eq!(t, json!({"running": false}));
}

#[test]
fn exit_codes() {
    let mut s = Server::ready();
    for (i, code) in [0, 1, 3, 42, 255].into_iter().enumerate() {
        let id = format!("exit-{i}");
        let script = format!("exit {code}");
        let run = s.run(&id, &sh(&script), json!({}));
        assert_eq!(run.exit_code(), code, "{script}");
        assert!(run.signal().is_none());
        assert_eq!(
            run.events.len(),
            2,
            "exited and closed only: {:?}",
            run.events
        );
    }
}

#[test]
fn signal_deaths_report_128_plus_n_and_the_name() {
    let mut s = Server::ready();
    let cases = [
        ("kill", 137, "SIGKILL"),
        ("terminate", 143, "SIGTERM"),
        ("interrupt", 130, "SIGINT"),
        ("hangup", 129, "SIGHUP"),
        ("user1", 138, "SIGUSR1"),
    ];
    for (name, code, sig) in cases {
        let id = format!("sig-{name}");
        s.start_ok(&id, &["sleep", "60"], json!({}));
        let r = s.call("process/signal", json!({"processId": id, "signal": name}));
        assert_eq!(r, json!({}));
        let run = Run::from_events(s.collect_until_closed(&id));
        assert_eq!(run.exit_code(), code, "{name}");
        assert_eq!(run.signal(), Some(sig), "{name}");
        assert_eq!(run.exited["sandboxDenied"], json!(false));
    }
    // A shell reporting 137 itself is not a signal death.
    let run = s.run("fake137", &sh("exit 137"), json!({}));
    assert_eq!(run.exit_code(), 137);
    assert!(run.signal().is_none());
}

#[test]
fn quit_signal() {
    let mut s = Server::ready();
    s.start_ok("q", &["sleep", "60"], json!({}));
    s.call(
        "process/signal",
        json!({"processId": "q", "signal": "quit"}),
    );
    let run = Run::from_events(s.collect_until_closed("q"));
    assert_eq!(run.exit_code(), 131);
    assert_eq!(run.signal(), Some("SIGQUIT"));
}

#[test]
fn signal_goes_to_the_process_group() {
    let mut s = Server::ready();
    // The shell waits for a background child; both are in the group.
    s.start_ok("grp", &sh("sleep 60 & wait; echo after"), json!({}));
    assert!(
        wait_until(TIMEOUT, || marked_processes(&s.marker)
            .iter()
            .any(|p| p.cmdline == "sleep 60")),
        "the background child never started"
    );
    s.call(
        "process/signal",
        json!({"processId": "grp", "signal": "kill"}),
    );
    let run = Run::from_events(s.collect_until_closed("grp"));
    assert_eq!(run.exit_code(), 137);
    assert!(wait_until(Duration::from_secs(3), || alive_with_marker(
        &s.marker
    )
    .is_empty()));
}

#[test]
fn terminate_kills_at_once() {
    let mut s = Server::ready();
    s.start_ok("t", &sh("trap '' TERM; sleep 60"), json!({}));
    let t0 = Instant::now();
    let r = s.call("process/terminate", json!({"processId": "t"}));
    assert_eq!(r, json!({"running": true}));
    let run = Run::from_events(s.collect_until_closed("t"));
    assert_eq!(run.exit_code(), 137);
    assert_eq!(run.signal(), Some("SIGKILL"));
    assert!(t0.elapsed() < Duration::from_secs(5));
    let again = s.call("process/terminate", json!({"processId": "t"}));
    assert_eq!(again, json!({"running": false}));
}

#[test]
fn terminate_with_grace_lets_a_term_trap_run() {
    let mut s = Server::ready();
    s.start_ok(
        "g",
        &sh("trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done"),
        json!({}),
    );
    s.wait_output_contains("g", "ready", TIMEOUT);
    let r = s.call(
        "process/terminate",
        json!({"processId": "g", "graceMs": 10000}),
    );
    assert_eq!(r, json!({"running": true}));
    let t0 = Instant::now();
    let events = s.collect_until_closed("g");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "child exited on TERM; no need to wait out the grace"
    );
    let exited = events
        .iter()
        .find(|e| e["method"] == "process/exited")
        .unwrap();
    assert_eq!(exited["params"]["exitCode"], json!(5), "{exited}");
    assert!(exited["params"].get("signal").is_none());
    // "ready" may have been consumed by wait_output_contains; got-term comes after.
    assert!(String::from_utf8_lossy(&output_bytes(&events, Some("stdout"))).contains("got-term"));
}

#[test]
fn terminate_with_grace_kills_after_the_grace() {
    let mut s = Server::ready();
    s.start_ok(
        "gi",
        &sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"),
        json!({}),
    );
    s.wait_output_contains("gi", "ready", TIMEOUT);
    let t0 = Instant::now();
    let r = s.call(
        "process/terminate",
        json!({"processId": "gi", "graceMs": 700}),
    );
    assert_eq!(r, json!({"running": true}));
    let events = s.collect_until_closed("gi");
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(600),
        "killed before the grace ended: {el:?}"
    );
    assert!(el < Duration::from_secs(6), "{el:?}");
    let exited = events
        .iter()
        .find(|e| e["method"] == "process/exited")
        .unwrap();
    assert_eq!(exited["params"]["exitCode"], json!(137));
    assert_eq!(exited["params"]["signal"], json!("SIGKILL"));
}

#[test]
fn second_terminate_during_grace_kills_at_once() {
    let mut s = Server::ready();
    s.start_ok(
        "g2",
        &sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"),
        json!({}),
    );
    s.wait_output_contains("g2", "ready", TIMEOUT);
    let t0 = Instant::now();
    let first = s.send_request(
        "process/terminate",
        Some(json!({"processId": "g2", "graceMs": 30000})),
    );
    // The first terminate has been served (SIGTERM sent, the grace running)
    // when its answer arrives.
    let r1 = s.wait_response(&json!(first));
    assert_eq!(r1["result"], json!({"running": true}));
    let second = s.send_request("process/terminate", Some(json!({"processId": "g2"})));
    let events = s.collect_until_closed("g2");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let exited = events
        .iter()
        .find(|e| e["method"] == "process/exited")
        .unwrap();
    assert_eq!(exited["params"]["exitCode"], json!(137));
    let r2 = s.wait_response(&json!(second));
    assert!(r2["result"]["running"].is_boolean(), "{r2}");
}

#[test]
fn seq_is_strictly_increasing_and_closed_is_last() {
    let mut s = Server::ready();
    let run = s.run(
        "seq",
        &sh("for i in 1 2 3 4 5 6 7 8 9 10; do echo o$i; echo e$i >&2; done; exit 4"),
        json!({}),
    );
    // check_event_sequence ran in Run::from_events.
    let out: String = (1..=10).map(|i| format!("o{i}\n")).collect();
    let err: String = (1..=10).map(|i| format!("e{i}\n")).collect();
    assert_eq!(run.stdout_str(), out);
    assert_eq!(run.stderr_str(), err);
    assert_eq!(run.exit_code(), 4);
    let n = run.events.len();
    assert_eq!(run.events[n - 2]["method"], "process/exited");
}

#[test]
fn many_sequential_processes_keep_their_own_counters() {
    let mut s = Server::ready();
    for i in 0..20 {
        let id = format!("p{i}");
        let run = s.run(&id, &sh(&format!("echo {i}")), json!({}));
        assert_eq!(run.stdout_str(), format!("{i}\n"));
        assert_eq!(run.events[0]["params"]["seq"], json!(1));
    }
}

#[test]
fn process_id_may_be_any_string_and_reused_after_closed() {
    let mut s = Server::ready();
    for id in ["", "with space", "ünï/cødé", "\"quoted\""] {
        let run = s.run(id, &sh("echo x"), json!({}));
        assert_eq!(run.stdout_str(), "x\n");
        assert_eq!(run.events[0]["params"]["processId"], json!(id));
    }
    // Reuse after closed replaces the record (Appendix B).
    let run = s.run("", &sh("echo again"), json!({}));
    assert_eq!(run.stdout_str(), "again\n");
    let r = s.call("process/read", json!({"processId": ""}));
    let chunks = r["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1, "old output discarded: {r}");
    assert_eq!(unb64(chunks[0]["chunk"].as_str().unwrap()), b"again\n");
}

#[test]
fn duplicate_process_id_while_running() {
    let mut s = Server::ready();
    s.start_ok("dup", &["sleep", "60"], json!({}));
    let resp = s.start_process("dup", &sh("echo no"), json!({}));
    assert_error(&resp, -32600, "process dup already exists");
    // The existing process is unaffected.
    s.call("process/terminate", json!({"processId": "dup"}));
    let run = Run::from_events(s.collect_until_closed("dup"));
    assert_eq!(run.exit_code(), 137);
    assert!(run.stdout.is_empty());
}

#[test]
fn duplicate_process_id_while_exited_but_not_closed() {
    let mut s = Server::ready();
    // The direct child exits; a background child keeps stdout open.
    s.start_ok("half", &sh("sleep 60 & echo bg"), json!({}));
    s.wait_notification(
        |v| v["method"] == "process/exited" && v["params"]["processId"] == "half",
        TIMEOUT,
    );
    let resp = s.start_process("half", &sh("echo no"), json!({}));
    assert_error(&resp, -32600, "process half already exists");
    // Terminate on an exited-but-not-closed process kills the group.
    let r = s.call("process/terminate", json!({"processId": "half"}));
    assert_eq!(r, json!({"running": false}));
    s.wait_notification(
        |v| v["method"] == "process/closed" && v["params"]["processId"] == "half",
        TIMEOUT,
    );
    assert!(wait_until(Duration::from_secs(3), || alive_with_marker(
        &s.marker
    )
    .is_empty()));
}

#[test]
fn start_param_errors() {
    let mut s = Server::ready();
    let resp = s.start_process("e1", &[], json!({}));
    assert_error(&resp, -32602, "argv must not be empty");
    let resp = s.start_process("e2", &["true"], json!({"enforceManagedNetwork": true}));
    assert_error(
        &resp,
        -32602,
        "managed network is not supported by this executor",
    );
    let resp = s.start_process("e3", &["true"], json!({"cwd": "tmp"}));
    assert_error(&resp, -32602, "invalid URI: relative URL without a base");
    for (name, params) in [
        (
            "missing argv",
            json!({"processId": "e4", "cwd": "/tmp", "env": {}, "tty": false}),
        ),
        (
            "missing cwd",
            json!({"processId": "e4", "argv": ["true"], "env": {}, "tty": false}),
        ),
        (
            "missing env",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "tty": false}),
        ),
        (
            "missing tty",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {}}),
        ),
        (
            "missing processId",
            json!({"argv": ["true"], "cwd": "/tmp", "env": {}, "tty": false}),
        ),
        (
            "argv not strings",
            json!({"processId": "e4", "argv": [1], "cwd": "/tmp", "env": {}, "tty": false}),
        ),
        (
            "NUL in argv",
            json!({"processId": "e4", "argv": ["tr\u{0}ue"], "cwd": "/tmp", "env": {}, "tty": false}),
        ),
        (
            "NUL in env value",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {"A": "b\u{0}"}, "tty": false}),
        ),
        (
            "= in env name",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {"A=B": "c"}, "tty": false}),
        ),
        (
            "empty env name",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {"": "c"}, "tty": false}),
        ),
        (
            "size 0",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {}, "tty": true, "size": {"rows": 0, "cols": 80}}),
        ),
        (
            "size too big",
            json!({"processId": "e4", "argv": ["true"], "cwd": "/tmp", "env": {}, "tty": true, "size": {"rows": 24, "cols": 65536}}),
        ),
        ("params null", Value::Null),
    ] {
        let (code, _) = s.call_err("process/start", params);
        assert_eq!(code, -32602, "{name}");
    }
    // None of the failed starts left a record or a notification.
    let r = s.request("process/read", json!({"processId": "e4"}));
    assert_error(&r, -32600, "unknown process id e4");
    status_ok_and_no_notifications(&mut s);
}

fn status_ok_and_no_notifications(s: &mut Server) {
    let r = s.call("environment/status", json!({}));
    assert_eq!(r, json!({"status": "ready"}));
    let rest = s.drain_for(Duration::from_millis(300));
    assert!(
        rest.is_empty(),
        "no notification for failed starts: {:?}",
        rest.iter().map(|l| &l.raw).collect::<Vec<_>>()
    );
}

#[test]
fn spawn_failures() {
    let mut s = Server::ready();
    let dir = temp_dir("spawn");
    let noexec = dir.join("noexec.sh");
    write_file(&noexec, "#!/bin/sh\necho hi\n", 0o644);
    let noshebang = dir.join("noshebang");
    write_file(&noshebang, "echo hi\n", 0o755);
    let file = dir.join("plainfile");
    write_file(&file, "x", 0o644);
    let cases: Vec<(&str, Vec<String>, Value, &str, &str)> = vec![
        (
            "abs missing",
            vec!["/no/such/program".into()],
            json!({}),
            "No such file or directory (os error 2)",
            "spawnNotFound",
        ),
        (
            "bare missing",
            vec!["tether-no-such-program-xyz".into()],
            json!({}),
            "No such file or directory (os error 2)",
            "spawnNotFound",
        ),
        (
            "not executable",
            vec![noexec.to_str().unwrap().into()],
            json!({}),
            "Permission denied (os error 13)",
            "spawnPermissionDenied",
        ),
        (
            "no shebang",
            vec![noshebang.to_str().unwrap().into()],
            json!({}),
            "Exec format error (os error 8)",
            "spawnFailed",
        ),
        (
            "directory",
            vec!["/tmp".into()],
            json!({}),
            "Permission denied (os error 13)",
            "spawnPermissionDenied",
        ),
        (
            "cwd missing",
            vec!["/bin/true".into()],
            json!({"cwd": "/no/such/dir"}),
            "No such file or directory (os error 2)",
            "spawnNotFound",
        ),
        (
            "cwd not a dir",
            vec!["/bin/true".into()],
            json!({"cwd": file.to_str().unwrap()}),
            "Not a directory (os error 20)",
            "spawnFailed",
        ),
        (
            "relative missing",
            vec!["./nope".into()],
            json!({"cwd": dir.to_str().unwrap()}),
            "No such file or directory (os error 2)",
            "spawnNotFound",
        ),
    ];
    for (i, (name, argv, extra, msg, kind)) in cases.into_iter().enumerate() {
        let id = format!("fail-{i}");
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let resp = s.start_process(&id, &argv, extra);
        assert_eq!(
            error_of(&resp),
            Some((-32603, msg.to_string())),
            "{name}: {resp}"
        );
        // The kind of failure, as the reference says it (docs/protocol.md
        // "process/start").
        assert_eq!(
            resp["error"]["data"],
            json!({"kind": kind}),
            "{name}: {resp}"
        );
        // No record is left behind.
        let r = s.request("process/read", json!({"processId": id}));
        assert_error(&r, -32600, &format!("unknown process id {id}"));
    }
    status_ok_and_no_notifications(&mut s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn program_lookup() {
    let mut s = Server::ready();
    let dir = temp_dir("lookup");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_file(
        &bin.join("hello-tether"),
        "#!/bin/sh\necho found \"$0\"\n",
        0o755,
    );
    write_file(&dir.join("rel.sh"), "#!/bin/sh\necho rel\n", 0o755);
    // A non-executable match earlier in PATH is skipped for an executable one.
    let bin0 = dir.join("bin0");
    std::fs::create_dir(&bin0).unwrap();
    write_file(&bin0.join("hello-tether"), "#!/bin/sh\necho wrong\n", 0o644);
    let path = format!("{}:{}:/usr/bin:/bin", bin0.display(), bin.display());
    let run = s.run("lk1", &["hello-tether"], json!({"env": {"PATH": path}}));
    assert_eq!(
        run.stdout_str(),
        format!("found {}\n", bin.join("hello-tether").display())
    );
    // argv[0] with a slash is relative to cwd.
    let run = s.run("lk2", &["./rel.sh"], json!({"cwd": dir.to_str().unwrap()}));
    assert_eq!(run.stdout_str(), "rel\n");
    // A cwd given as a file: URI.
    let run = s.run("lk3", &["/bin/pwd"], json!({"cwd": "file:///tmp"}));
    assert_eq!(run.stdout_str(), "/tmp\n");
    // Only a non-executable match: that error.
    let only = format!("{}:/usr/bin:/bin", bin0.display());
    let resp = s.start_process("lk4", &["hello-tether"], json!({"env": {"PATH": only}}));
    assert_eq!(
        error_of(&resp),
        Some((-32603, "Permission denied (os error 13)".to_string())),
        "{resp}"
    );
    assert_eq!(resp["error"]["data"]["kind"], "spawnPermissionDenied");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arg0_replaces_what_the_program_sees() {
    let mut s = Server::ready();
    let run = s.run(
        "a0",
        &sh("cat /proc/$$/cmdline | tr '\\0' ' '"),
        json!({"arg0": "custom-name"}),
    );
    assert!(
        run.stdout_str().starts_with("custom-name -c "),
        "{:?}",
        run.stdout_str()
    );
    let run = s.run(
        "a0null",
        &sh("cat /proc/$$/cmdline | tr '\\0' ' '"),
        json!({"arg0": null}),
    );
    assert!(
        run.stdout_str().starts_with("/bin/sh -c "),
        "{:?}",
        run.stdout_str()
    );
}

#[test]
fn ignored_start_members_are_accepted() {
    let mut s = Server::ready();
    let run = s.run(
        "ign",
        &sh("echo ok"),
        json!({
            "metadata": {"threadId": "t"},
            "managedNetwork": {"x": 1},
            "networkProxy": null,
            "shellSnapshot": null,
            "enforceManagedNetwork": false,
            "sandbox": null,
            "escalation": null,
            "pipeStdin": false,
            "size": {"rows": 10, "cols": 10},
            "futureMember": [1, 2, 3],
        }),
    );
    assert_eq!(run.stdout_str(), "ok\n");
}

#[test]
fn stdin_is_dev_null_without_pipe_stdin() {
    let mut s = Server::ready();
    let run = s.run(
        "nul",
        &sh("cat; echo rc=$?; readlink /proc/self/fd/0"),
        json!({}),
    );
    assert_eq!(run.stdout_str(), "rc=0\n/dev/null\n");
}

#[test]
fn only_fds_0_1_2_are_inherited() {
    let mut s = Server::ready();
    let run = s.run("fds", &sh("ls /proc/self/fd"), json!({}));
    // ls itself opens one descriptor for the directory listing.
    let fds: Vec<i32> = run
        .stdout_str()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(fds.len() <= 4 && fds[..3] == [0, 1, 2], "{fds:?}");
}

#[test]
fn child_is_session_and_group_leader_with_default_signals() {
    let mut s = Server::ready();
    // No shell in between: the program itself reads its own /proc entries.
    let run = s.run(
        "sess",
        &["cut", "-d", " ", "-f", "1,5,6", "/proc/self/stat"],
        json!({}),
    );
    let out = run.stdout_str();
    let ids: Vec<&str> = out.trim_end().split(' ').collect();
    assert_eq!(ids.len(), 3, "{out}");
    assert_eq!(ids[0], ids[1], "pid == pgid: {out}");
    assert_eq!(ids[0], ids[2], "pid == sid: {out}");
    let run = s.run(
        "sigs",
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
        json!({}),
    );
    assert_standard_signals_default(&run.stdout_str());
}

/// Signals 1..=31 default and unblocked (the strict check of all 64 is
/// `signals_ignored_by_the_server_parent_are_reset_in_children`).
#[track_caller]
fn assert_standard_signals_default(out: &str) {
    assert_eq!(out.lines().count(), 2, "{out}");
    for l in out.lines() {
        let mask = u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(
            mask & 0x7fff_ffff,
            0,
            "signals 1..=31 default (SIGPIPE not ignored), mask empty: {l}"
        );
    }
}

#[track_caller]
fn assert_signals_default(out: &str) {
    assert_eq!(out.lines().count(), 2, "{out}");
    for l in out.lines() {
        let mask = l.split_whitespace().nth(1).unwrap();
        assert!(
            mask.chars().all(|c| c == '0'),
            "all signal dispositions default, mask empty: {l}"
        );
    }
}

#[test]
fn signals_ignored_by_the_server_parent_are_reset_in_children() {
    // A server started from a background job inherits ignored SIGINT/SIGQUIT
    // (and glibc-reserved signals may be ignored too); children start clean.
    let mut s = Server::builder()
        .ignore_signals(&[
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGRTMIN() + 2,
        ])
        .spawn();
    s.initialize();
    let run = s.run(
        "sigs2",
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
        json!({}),
    );
    assert_signals_default(&run.stdout_str());
    let run = s.run(
        "sigs3",
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
        json!({"tty": true}),
    );
    assert_signals_default(&run.pty_str().replace('\r', ""));
}

// ---- environment -----------------------------------------------------------

fn env_of(s: &mut Server, id: &str, extra: Value) -> Vec<String> {
    let run = s.run(id, &["/usr/bin/env"], extra);
    assert_eq!(run.exit_code(), 0, "{}", run.stderr_str());
    env_lines(&run.stdout_str())
}

fn marker_env(s: &Server, more: &[(&str, &str)]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("PATH".into(), json!("/usr/bin:/bin"));
    m.insert("TETHER_TEST_MARKER".into(), json!(s.marker));
    for (k, v) in more {
        m.insert((*k).into(), json!(v));
    }
    m
}

/// A server with a fully known environment.
fn env_server() -> Server {
    let mut s = Server::builder()
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("USER", "tester")
        .env("SRV_PLAIN", "plain")
        .env("SRV_OTHER", "other")
        .env("XSRV_A", "x")
        .env("MY_API_KEY", "k")
        .env("monkey_business", "lower")
        .env("DB_SECRET", "s")
        .env("GH_TOKEN", "t")
        .env("ABC", "abc")
        .env("abc", "lower-abc")
        .env("ABBC", "abbc")
        .env("AC", "ac")
        .env("CODEX_ESCALATE_SOCKET", "9")
        .env("BASH_EXEC_WRAPPER", "/x")
        .env("EXEC_WRAPPER", "/y")
        .spawn();
    s.initialize();
    s
}

fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("USER", "tester"),
        ("SRV_PLAIN", "plain"),
        ("SRV_OTHER", "other"),
        ("XSRV_A", "x"),
        ("MY_API_KEY", "k"),
        ("monkey_business", "lower"),
        ("DB_SECRET", "s"),
        ("GH_TOKEN", "t"),
        ("ABC", "abc"),
        ("abc", "lower-abc"),
        ("ABBC", "abbc"),
        ("AC", "ac"),
        ("CODEX_ESCALATE_SOCKET", "9"),
        ("BASH_EXEC_WRAPPER", "/x"),
        ("EXEC_WRAPPER", "/y"),
    ]
}

/// Expected child env: `base` (name, value) list then `overlay` over it.
fn expect(base: &[(&str, &str)], overlay: &Map<String, Value>) -> Vec<String> {
    let mut m: HashMap<String, String> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in overlay {
        m.insert(k.clone(), v.as_str().unwrap().to_string());
    }
    let mut v: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v
}

const ESCALATION_VARS: [&str; 3] = ["CODEX_ESCALATE_SOCKET", "BASH_EXEC_WRAPPER", "EXEC_WRAPPER"];
const DEFAULT_EXCLUDED: [&str; 4] = ["MY_API_KEY", "monkey_business", "DB_SECRET", "GH_TOKEN"];

#[test]
fn env_policy_absent_means_exactly_env() {
    let mut s = env_server();
    let env = marker_env(&s, &[("FOO", "bar baz"), ("EMPTY", ""), ("EQ", "a=b")]);
    let got = env_of(&mut s, "env-abs", json!({"env": env.clone()}));
    assert_eq!(got, expected_env(&env));
    let got = env_of(
        &mut s,
        "env-null",
        json!({"env": env.clone(), "envPolicy": null}),
    );
    assert_eq!(got, expected_env(&env));
    // Same in tty mode: nothing added (no TERM, no SHELL).
    let run = s.run(
        "env-tty",
        &["/usr/bin/env"],
        json!({"env": env.clone(), "tty": true}),
    );
    assert_eq!(env_lines(&run.pty_str()), expected_env(&env));
}

#[test]
fn env_policy_inherit_all_with_default_excludes() {
    let mut s = env_server();
    let overlay = marker_env(&s, &[]);
    let got = env_of(&mut s, "all", json!({"envPolicy": {"inherit": "all"}}));
    let base: Vec<(&str, &str)> = server_env()
        .into_iter()
        .filter(|(k, _)| !ESCALATION_VARS.contains(k) && !DEFAULT_EXCLUDED.contains(k))
        .collect();
    assert_eq!(got, expect(&base, &overlay));
    // An empty policy object means the same (all members default).
    let got = env_of(&mut s, "all-empty", json!({"envPolicy": {}}));
    assert_eq!(got, expect(&base, &overlay));
}

#[test]
fn env_policy_ignore_default_excludes() {
    let mut s = env_server();
    let overlay = marker_env(&s, &[]);
    let got = env_of(
        &mut s,
        "nodef",
        json!({"envPolicy": {"inherit": "all", "ignoreDefaultExcludes": true, "exclude": [], "set": {}, "includeOnly": []}}),
    );
    let base: Vec<(&str, &str)> = server_env()
        .into_iter()
        .filter(|(k, _)| !ESCALATION_VARS.contains(k))
        .collect();
    assert_eq!(got, expect(&base, &overlay));
}

#[test]
fn env_policy_inherit_core_and_none() {
    let mut s = env_server();
    let overlay = marker_env(&s, &[]);
    let got = env_of(&mut s, "core", json!({"envPolicy": {"inherit": "core"}}));
    let core = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/root"),
        ("LANG", "C.UTF-8"),
        ("USER", "tester"),
    ];
    assert_eq!(got, expect(&core, &overlay));
    let got = env_of(
        &mut s,
        "none",
        json!({"envPolicy": {"inherit": "none", "set": {"S": "1"}}}),
    );
    assert_eq!(got, expect(&[("S", "1")], &overlay));
    let (code, _) = s.call_err(
        "process/start",
        s.start_params(
            "badinherit",
            &["/usr/bin/env"],
            json!({"envPolicy": {"inherit": "some"}}),
        ),
    );
    assert_eq!(code, -32602);
}

#[test]
fn env_policy_exclude_patterns() {
    let mut s = env_server();
    let overlay = marker_env(&s, &[]);
    let got = env_of(
        &mut s,
        "excl",
        json!({"envPolicy": {"inherit": "all", "exclude": ["srv_*", "A?C", "us*r"]}}),
    );
    let removed = ["SRV_PLAIN", "SRV_OTHER", "ABC", "abc", "USER"];
    let base: Vec<(&str, &str)> = server_env()
        .into_iter()
        .filter(|(k, _)| {
            !ESCALATION_VARS.contains(k) && !DEFAULT_EXCLUDED.contains(k) && !removed.contains(k)
        })
        .collect();
    // XSRV_A (whole-name match), ABBC and AC (? is exactly one) survive.
    assert!(base.iter().any(|(k, _)| *k == "XSRV_A"));
    assert_eq!(got, expect(&base, &overlay));
}

#[test]
fn env_policy_set_include_only_and_env_wins() {
    let mut s = env_server();
    // set replaces and adds.
    let overlay = marker_env(&s, &[]);
    let got = env_of(
        &mut s,
        "set",
        json!({"envPolicy": {"inherit": "none", "set": {"NEW": "1", "HOME": "/set-home"}}}),
    );
    assert_eq!(
        got,
        expect(&[("NEW", "1"), ("HOME", "/set-home")], &overlay)
    );
    // includeOnly keeps only matching names (set entries included), then env
    // is overlaid regardless.
    let overlay = marker_env(&s, &[("ONLY_ENV", "e"), ("SRV_PLAIN", "from-env")]);
    let got = env_of(
        &mut s,
        "inc",
        json!({
            "env": {"ONLY_ENV": "e", "SRV_PLAIN": "from-env"},
            "envPolicy": {
                "inherit": "all",
                "set": {"SETVAR": "s", "SRV_SET": "kept"},
                "includeOnly": ["srv_*", "HOME"],
            },
        }),
    );
    let base = [
        ("SRV_OTHER", "other"),
        ("SRV_SET", "kept"),
        ("HOME", "/root"),
    ];
    assert_eq!(got, expect(&base, &overlay));
    // env wins over set; a default-excluded name can still be given by env or set.
    let overlay = marker_env(&s, &[("X", "from-env"), ("MY_TOKEN", "given")]);
    let got = env_of(
        &mut s,
        "wins",
        json!({
            "env": {"X": "from-env", "MY_TOKEN": "given"},
            "envPolicy": {"inherit": "none", "set": {"X": "from-set", "A_KEY": "set-key"}},
        }),
    );
    assert_eq!(got, expect(&[("A_KEY", "set-key")], &overlay));
}

// ---- tty ------------------------------------------------------------------

#[test]
fn tty_echo() {
    let mut s = Server::ready();
    let run = s.run(
        "tty",
        &sh("echo hi; echo err >&2; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty"),
        json!({"tty": true}),
    );
    assert!(run.stdout.is_empty() && run.stderr.is_empty());
    assert_eq!(run.pty_str(), "hi\r\nerr\r\ntty\r\n");
    for e in &run.events {
        if e["method"] == "process/output" {
            assert_eq!(e["params"]["stream"], "pty");
        }
    }
    assert_eq!(run.exit_code(), 0);
}

#[test]
fn tty_default_size() {
    let mut s = Server::ready();
    let run = s.run("tty-def", &["stty", "size"], json!({"tty": true}));
    assert_eq!(run.pty_str(), "24 80\r\n");
    // size is ignored without a tty.
    let run = s.run(
        "notty-size",
        &sh("stty size 2>/dev/null || echo none"),
        json!({"size": {"rows": 5, "cols": 6}}),
    );
    assert_eq!(run.stdout_str(), "none\n");
}

#[test]
fn tty_size_resize_and_interrupt() {
    let mut s = Server::ready();
    s.start_ok(
        "tty-1",
        &[
            "/bin/bash",
            "-c",
            "stty size; read line; echo \"got:$line\"; stty size; exec sleep 60",
        ],
        json!({"tty": true, "size": {"rows": 40, "cols": 120}}),
    );
    s.wait_output_contains("tty-1", "40 120\r\n", TIMEOUT);
    let r = s.call(
        "process/resize",
        json!({"processId": "tty-1", "rows": 50, "cols": 200}),
    );
    assert_eq!(r, json!({}));
    let w = s.call(
        "process/write",
        json!({"processId": "tty-1", "chunk": b64(b"go\r"), "writeId": "w1"}),
    );
    assert_eq!(w, json!({"status": "accepted"}));
    s.wait_output_contains("tty-1", "50 200\r\n", TIMEOUT);
    // Interrupt the sleep itself: a SIGINT that reaches bash between its commands
    // (or a child before it execs) is bash's business, not the server's.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !marked_processes(&s.marker)
        .iter()
        .any(|p| p.cmdline.starts_with("sleep"))
    {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let r = s.call(
        "process/signal",
        json!({"processId": "tty-1", "signal": "interrupt"}),
    );
    assert_eq!(r, json!({}));
    let events = s.collect_until_closed("tty-1");
    let exited = events
        .iter()
        .find(|e| e["method"] == "process/exited")
        .expect("exited");
    assert_eq!(exited["params"]["exitCode"], json!(130));
    assert_eq!(exited["params"]["signal"], json!("SIGINT"));
    // Resize after exit/close: {}.
    let r = s.call(
        "process/resize",
        json!({"processId": "tty-1", "rows": 10, "cols": 10}),
    );
    assert_eq!(r, json!({}));
}

#[test]
fn tty_input_echo_and_sigwinch() {
    let mut s = Server::ready();
    s.start_ok(
        "winch",
        &[
            "/bin/bash",
            "-c",
            "trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done",
        ],
        json!({"tty": true}),
    );
    s.wait_output_contains("winch", "ready", TIMEOUT);
    s.call(
        "process/resize",
        json!({"processId": "winch", "rows": 33, "cols": 77}),
    );
    s.wait_output_contains("winch", "33 77", TIMEOUT);
    s.call("process/terminate", json!({"processId": "winch"}));
    s.collect_until_closed("winch");

    // Kernel default modes: input is echoed with \r\n.
    s.start_ok("cat-tty", &["cat"], json!({"tty": true}));
    let w = s.call(
        "process/write",
        json!({"processId": "cat-tty", "chunk": b64(b"abc\r")}),
    );
    assert_eq!(w, json!({"status": "accepted"}));
    s.wait_output_contains("cat-tty", "abc\r\nabc\r\n", TIMEOUT);
    // Writing the end-of-file character ends cat.
    s.call(
        "process/write",
        json!({"processId": "cat-tty", "chunk": b64(b"\x04")}),
    );
    let events = s.collect_until_closed("cat-tty");
    let exited = events
        .iter()
        .find(|e| e["method"] == "process/exited")
        .unwrap();
    assert_eq!(exited["params"]["exitCode"], json!(0));
}

#[test]
fn resize_errors() {
    let mut s = Server::ready();
    let r = s.request(
        "process/resize",
        json!({"processId": "ghost", "rows": 10, "cols": 10}),
    );
    assert_error(&r, -32600, "unknown process id ghost");
    s.start_ok("pipe", &["sleep", "60"], json!({}));
    let r = s.request(
        "process/resize",
        json!({"processId": "pipe", "rows": 10, "cols": 10}),
    );
    assert_error(&r, -32600, "process pipe has no terminal");
    s.start_ok("term", &["sleep", "60"], json!({"tty": true}));
    for (rows, cols) in [(0, 10), (10, 0), (65536, 10), (10, 65536), (-1, 10)] {
        let (code, _) = s.call_err(
            "process/resize",
            json!({"processId": "term", "rows": rows, "cols": cols}),
        );
        assert_eq!(code, -32602, "{rows}x{cols}");
    }
    let r = s.call(
        "process/resize",
        json!({"processId": "term", "rows": 65535, "cols": 1}),
    );
    assert_eq!(r, json!({}));
}

// ---- stdin ------------------------------------------------------------------

#[test]
fn pipe_stdin_write_and_close() {
    let mut s = Server::ready();
    s.start_ok("cat", &["cat"], json!({"pipeStdin": true}));
    let w = s.call(
        "process/write",
        json!({"processId": "cat", "chunk": b64(b"hello\n"), "writeId": "a"}),
    );
    assert_eq!(w, json!({"status": "accepted"}));
    let w = s.call(
        "process/write",
        json!({"processId": "cat", "chunk": b64(b"\x00\xffbin")}),
    );
    assert_eq!(w, json!({"status": "accepted"}));
    let w = s.call("process/write", json!({"processId": "cat", "chunk": ""}));
    assert_eq!(w, json!({"status": "accepted"}), "empty chunk");
    let c = s.call("process/closeStdin", json!({"processId": "cat"}));
    assert_eq!(c, json!({"status": "accepted"}));
    let run = Run::from_events(s.collect_until_closed("cat"));
    assert_eq!(run.stdout, b"hello\n\x00\xffbin");
    assert_eq!(run.exit_code(), 0);
    let c = s.call("process/closeStdin", json!({"processId": "cat"}));
    assert_eq!(c, json!({"status": "stdinClosed"}));
    let w = s.call(
        "process/write",
        json!({"processId": "cat", "chunk": b64(b"late")}),
    );
    assert_eq!(w, json!({"status": "stdinClosed"}));
}

#[test]
fn write_statuses() {
    let mut s = Server::ready();
    let w = s.call(
        "process/write",
        json!({"processId": "ghost", "chunk": "aGkK", "writeId": "w"}),
    );
    assert_eq!(w, json!({"status": "unknownProcess"}));
    let c = s.call("process/closeStdin", json!({"processId": "ghost"}));
    assert_eq!(c, json!({"status": "unknownProcess"}));
    s.start_ok("nostdin", &["sleep", "60"], json!({}));
    let w = s.call(
        "process/write",
        json!({"processId": "nostdin", "chunk": "aGkK"}),
    );
    assert_eq!(w, json!({"status": "stdinClosed"}));
    let c = s.call("process/closeStdin", json!({"processId": "nostdin"}));
    assert_eq!(c, json!({"status": "stdinClosed"}));
    // After closeStdin, writes are refused.
    s.start_ok("closed", &["sleep", "60"], json!({"pipeStdin": true}));
    let c = s.call("process/closeStdin", json!({"processId": "closed"}));
    assert_eq!(c, json!({"status": "accepted"}));
    let w = s.call(
        "process/write",
        json!({"processId": "closed", "chunk": "aGkK"}),
    );
    assert_eq!(w, json!({"status": "stdinClosed"}));
    // After the direct child exited: stdinClosed.
    s.start_ok("gone", &sh("exit 0"), json!({"pipeStdin": true}));
    s.collect_until_closed("gone");
    let w = s.call(
        "process/write",
        json!({"processId": "gone", "chunk": "aGkK"}),
    );
    assert_eq!(w, json!({"status": "stdinClosed"}));
    // A tty process cannot closeStdin.
    s.start_ok("tt", &["sleep", "60"], json!({"tty": true}));
    let r = s.request("process/closeStdin", json!({"processId": "tt"}));
    assert_error(
        &r,
        -32600,
        "process tt uses a terminal; write the end-of-file character instead",
    );
    // Bad params.
    let (code, msg) = s.call_err(
        "process/write",
        json!({"processId": "closed", "chunk": "aGkK", "writeId": ""}),
    );
    assert_eq!((code, msg.as_str()), (-32602, "writeId must not be empty"));
    let (code, _) = s.call_err(
        "process/write",
        json!({"processId": "closed", "chunk": "!!!"}),
    );
    assert_eq!(code, -32602, "invalid base64");
    let (code, _) = s.call_err("process/write", json!({"processId": "closed"}));
    assert_eq!(code, -32602, "chunk missing");
}

#[test]
fn write_id_deduplicates() {
    let mut s = Server::ready();
    s.start_ok("dd", &["cat"], json!({"pipeStdin": true}));
    for (chunk, id) in [
        ("a", "w1"),
        ("a", "w1"),
        ("b", "w2"),
        ("a", "w1"),
        ("c", "w3"),
        ("b", "w2"),
    ] {
        let w = s.call(
            "process/write",
            json!({"processId": "dd", "chunk": b64(chunk.as_bytes()), "writeId": id}),
        );
        assert_eq!(w, json!({"status": "accepted"}));
    }
    // Without writeId there is no de-duplication.
    for _ in 0..2 {
        s.call(
            "process/write",
            json!({"processId": "dd", "chunk": b64(b"x")}),
        );
    }
    s.call("process/closeStdin", json!({"processId": "dd"}));
    let run = Run::from_events(s.collect_until_closed("dd"));
    assert_eq!(run.stdout_str(), "abcxx");
    // A remembered writeId is accepted even after stdin closed (row 3 before 4).
    let w = s.call(
        "process/write",
        json!({"processId": "dd", "chunk": b64(b"a"), "writeId": "w1"}),
    );
    assert_eq!(w, json!({"status": "accepted"}));
    let w = s.call(
        "process/write",
        json!({"processId": "dd", "chunk": b64(b"a"), "writeId": "w9"}),
    );
    assert_eq!(w, json!({"status": "stdinClosed"}));
}

#[test]
fn many_writes_are_delivered_in_order() {
    let mut s = Server::ready();
    s.start_ok("order", &["cat"], json!({"pipeStdin": true}));
    let mut expect = String::new();
    // Each write waits for its answer: requests are served concurrently, so
    // only the order of accepted writes is defined (docs/protocol.md "Transport", "Processes").
    for i in 0..300 {
        let text = format!("line {i}\n");
        expect.push_str(&text);
        let r = s.call(
            "process/write",
            json!({"processId": "order", "chunk": b64(text.as_bytes()), "writeId": format!("w{i}")}),
        );
        assert_eq!(r, json!({"status": "accepted"}));
    }
    s.call("process/closeStdin", json!({"processId": "order"}));
    let run = Run::from_events(s.collect_until_closed("order"));
    assert_eq!(run.stdout_str(), expect);
}

// ---- read -------------------------------------------------------------------

#[test]
fn read_returns_what_the_notifications_carried() {
    let mut s = Server::ready();
    s.start_ok(
        "rd",
        &sh("printf one; sleep 0.2; printf two >&2; sleep 0.2; printf three; exit 2"),
        json!({}),
    );
    let events = s.collect_until_closed("rd");
    check_event_sequence(&events);
    let outputs: Vec<Value> = events
        .iter()
        .filter(|e| e["method"] == "process/output")
        .map(|e| {
            let p = &e["params"];
            json!({"seq": p["seq"], "stream": p["stream"], "chunk": p["chunk"]})
        })
        .collect();
    let closed_seq = events.last().unwrap()["params"]["seq"].as_i64().unwrap();

    let id = s.send_request("process/read", Some(json!({"processId": "rd"})));
    let r = s.wait_response(&json!(id))["result"].clone();
    let raw = s.last_raw.clone().unwrap();
    assert_key_order(
        &raw,
        &[
            "chunks",
            "nextSeq",
            "exited",
            "exitCode",
            "closed",
            "failure",
            "sandboxDenied",
            "droppedBytes",
            "firstRetainedSeq",
        ],
    );
    assert_eq!(
        r,
        json!({
            "chunks": outputs,
            "nextSeq": closed_seq + 1,
            "exited": true,
            "exitCode": 2,
            "closed": true,
            "failure": null,
            "sandboxDenied": false,
            "droppedBytes": 0,
            "firstRetainedSeq": 1,
        })
    );
    let all: Vec<u8> = outputs
        .iter()
        .flat_map(|c| unb64(c["chunk"].as_str().unwrap()))
        .collect();
    assert_eq!(String::from_utf8(all).unwrap(), "onetwothree");
    assert!(
        outputs.len() >= 3,
        "separate writes 200 ms apart, two streams: {outputs:?}"
    );

    // afterSeq: only later chunks.
    let first_seq = outputs[0]["seq"].as_i64().unwrap();
    let r = s.call(
        "process/read",
        json!({"processId": "rd", "afterSeq": first_seq}),
    );
    assert_eq!(r["chunks"], json!(outputs[1..]));
    assert_eq!(r["nextSeq"], json!(closed_seq + 1));
    // afterSeq past everything: no chunks, returns at once even with waitMs.
    let t0 = Instant::now();
    let r = s.call(
        "process/read",
        json!({"processId": "rd", "afterSeq": closed_seq, "waitMs": 5000}),
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(r["chunks"], json!([]));
    assert_eq!(r["nextSeq"], json!(closed_seq + 1));

    // maxBytes 0: exactly the first chunk; nextSeq after it.
    let r = s.call("process/read", json!({"processId": "rd", "maxBytes": 0}));
    assert_eq!(r["chunks"], json!([outputs[0]]));
    assert_eq!(r["nextSeq"], json!(first_seq + 1));
    // maxBytes exactly the first two chunks.
    let len = |c: &Value| unb64(c["chunk"].as_str().unwrap()).len();
    let two = len(&outputs[0]) + len(&outputs[1]);
    let r = s.call("process/read", json!({"processId": "rd", "maxBytes": two}));
    assert_eq!(r["chunks"], json!(outputs[..2]));
    assert_eq!(r["nextSeq"], json!(outputs[1]["seq"].as_i64().unwrap() + 1));
    // One byte less: only the first.
    let r = s.call(
        "process/read",
        json!({"processId": "rd", "maxBytes": two - 1}),
    );
    assert_eq!(r["chunks"], json!(outputs[..1]));
    // maxBytes with nothing returned: next unassigned seq.
    let r = s.call(
        "process/read",
        json!({"processId": "rd", "afterSeq": closed_seq, "maxBytes": 10}),
    );
    assert_eq!(r["nextSeq"], json!(closed_seq + 1));
    // Explicit nulls mean defaults.
    let r = s.call(
        "process/read",
        json!({"processId": "rd", "afterSeq": null, "maxBytes": null, "waitMs": null}),
    );
    assert_eq!(r["chunks"], json!(outputs));
}

#[test]
fn read_reports_signal_and_running_state() {
    let mut s = Server::ready();
    s.start_ok("rs", &sh("echo hi; exec sleep 60"), json!({}));
    s.wait_output_contains("rs", "hi", TIMEOUT);
    let r = s.call("process/read", json!({"processId": "rs"}));
    assert_eq!(r["exited"], json!(false));
    assert_eq!(r["exitCode"], json!(null));
    assert_eq!(r["closed"], json!(false));
    assert!(r.get("signal").is_none());
    assert_eq!(r["nextSeq"], json!(2));
    s.call(
        "process/signal",
        json!({"processId": "rs", "signal": "kill"}),
    );
    s.collect_until_closed("rs");
    let r = s.call("process/read", json!({"processId": "rs", "afterSeq": 1}));
    assert_eq!(r["exited"], json!(true));
    assert_eq!(r["exitCode"], json!(137));
    assert_eq!(r["signal"], json!("SIGKILL"));
    assert_eq!(r["closed"], json!(true));
    assert_eq!(r["chunks"], json!([]));
    assert_eq!(r["nextSeq"], json!(4));
}

#[test]
fn read_errors() {
    let mut s = Server::ready();
    let r = s.request("process/read", json!({"processId": "ghost"}));
    assert_error(&r, -32600, "unknown process id ghost");
    let r = s.request("process/read", json!({"processId": ""}));
    assert_error(&r, -32600, "unknown process id ");
    for bad in [
        json!({}),
        json!({"processId": 5}),
        json!({"processId": "x", "afterSeq": -1}),
        json!({"processId": "x", "maxBytes": -1}),
        json!({"processId": "x", "waitMs": -5}),
        json!({"processId": "x", "waitMs": "10"}),
    ] {
        let (code, _) = s.call_err("process/read", bad.clone());
        assert_eq!(code, -32602, "{bad}");
    }
}

#[test]
fn long_poll_returns_when_output_arrives() {
    let mut s = Server::ready();
    s.start_ok("lp", &sh("sleep 1; echo late; sleep 60"), json!({}));
    let t0 = Instant::now();
    let r = s.call(
        "process/read",
        json!({"processId": "lp", "afterSeq": 0, "waitMs": 15000}),
    );
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(500),
        "returned before the output: {el:?} {r}"
    );
    assert!(
        el < Duration::from_secs(6),
        "waited for the full waitMs: {el:?}"
    );
    let chunks = r["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1, "{r}");
    assert_eq!(unb64(chunks[0]["chunk"].as_str().unwrap()), b"late\n");
    assert_eq!(r["exited"], json!(false));
    // A short wait on a silent process returns after about waitMs, empty.
    let t0 = Instant::now();
    let r = s.call(
        "process/read",
        json!({"processId": "lp", "afterSeq": 1, "waitMs": 300}),
    );
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(250) && el < Duration::from_secs(3),
        "{el:?}"
    );
    assert_eq!(r["chunks"], json!([]));
    assert_eq!(r["nextSeq"], json!(2));
    // A long poll ends when the process exits.
    let poll = s.send_request(
        "process/read",
        Some(json!({"processId": "lp", "afterSeq": 1, "waitMs": 20000})),
    );
    thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    s.call("process/terminate", json!({"processId": "lp"}));
    let r = s.wait_response(&json!(poll));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(r["result"]["exited"], json!(true), "{r}");
}

#[test]
fn long_poll_does_not_delay_other_requests() {
    let mut s = Server::ready();
    s.start_ok("lp2", &["sleep", "60"], json!({}));
    let polls: Vec<i64> = (0..5)
        .map(|_| {
            s.send_request(
                "process/read",
                Some(json!({"processId": "lp2", "waitMs": 15000})),
            )
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    s.start_ok("lp3", &sh("echo quick"), json!({}));
    let run = Run::from_events(s.collect_until_closed("lp3"));
    assert_eq!(run.stdout_str(), "quick\n");
    let r = s.call("process/read", json!({"processId": "lp3"}));
    assert_eq!(r["closed"], json!(true));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    for p in &polls {
        assert!(
            !s.pending_values().iter().any(|v| v["id"] == json!(p)),
            "poll {p} returned early"
        );
    }
    s.call("process/terminate", json!({"processId": "lp2"}));
    for p in polls {
        s.wait_response(&json!(p));
    }
}

#[test]
fn retention_keeps_head_and_tail_and_reports_loss() {
    const TOTAL: usize = 3 * 1024 * 1024;
    let mut s = Server::ready();
    let script = format!("head -c {TOTAL} /dev/urandom");
    s.start_ok("ret", &sh(&script), json!({}));
    let mut notif_chunks: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut total = 0usize;
    s.for_each_until_closed("ret", |e| {
        if e["method"] == "process/output" {
            let b = unb64(e["params"]["chunk"].as_str().unwrap());
            total += b.len();
            notif_chunks.push((e["params"]["seq"].as_i64().unwrap(), b));
        }
    });
    assert_eq!(total, TOTAL, "notifications carry every byte");
    let r = s.call("process/read", json!({"processId": "ret", "afterSeq": 0}));
    let chunks = r["chunks"].as_array().unwrap();
    let got: Vec<(i64, Vec<u8>)> = chunks
        .iter()
        .map(|c| {
            (
                c["seq"].as_i64().unwrap(),
                unb64(c["chunk"].as_str().unwrap()),
            )
        })
        .collect();
    let dropped = r["droppedBytes"].as_u64().unwrap() as usize;
    let first_retained = r["firstRetainedSeq"].as_i64().unwrap();
    assert!(dropped > 0, "{dropped}");
    assert!(first_retained > 1, "{first_retained}");
    let retained: usize = got.iter().map(|c| c.1.len()).sum();
    assert_eq!(retained + dropped, TOTAL, "retained + dropped = everything");
    assert!(
        retained <= 1024 * 1024,
        "at most 1 MiB retained: {retained}"
    );
    // Every retained chunk is identical to the notification with its seq.
    let by_seq: HashMap<i64, &Vec<u8>> = notif_chunks.iter().map(|(s, b)| (*s, b)).collect();
    for (seq, b) in &got {
        assert_eq!(
            by_seq.get(seq).copied(),
            Some(b),
            "retained chunk {seq} differs"
        );
    }
    // Head: a contiguous run from seq 1 within 64 KiB / 1000 chunks.
    assert_eq!(got[0].0, 1, "the head chunks are still present");
    let split = got
        .iter()
        .position(|c| c.0 >= first_retained)
        .expect("tail present");
    let head = &got[..split];
    let tail = &got[split..];
    assert!(!head.is_empty());
    for (i, c) in head.iter().enumerate() {
        assert_eq!(c.0, i as i64 + 1, "head contiguous");
    }
    let head_bytes: usize = head.iter().map(|c| c.1.len()).sum();
    assert!(
        head_bytes <= 65536 && head.len() <= 1000,
        "head {head_bytes} bytes, {} chunks",
        head.len()
    );
    // The head is closed by the first chunk that does not fit.
    let next_after_head = notif_chunks
        .iter()
        .find(|c| c.0 == head.len() as i64 + 1)
        .unwrap();
    assert!(head_bytes + next_after_head.1.len() > 65536 || head.len() == 1000);
    // Tail: contiguous from firstRetainedSeq to the last output chunk, ≤ 960 KiB.
    assert_eq!(tail[0].0, first_retained);
    for w in tail.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "tail contiguous");
    }
    assert_eq!(tail.last().unwrap().0, notif_chunks.last().unwrap().0);
    let tail_bytes: usize = tail.iter().map(|c| c.1.len()).sum();
    assert!(tail_bytes <= 983_040, "tail {tail_bytes}");
    // Dropped whole, oldest first, only until it fits: one more would overflow.
    let before = notif_chunks
        .iter()
        .find(|c| c.0 == first_retained - 1)
        .unwrap();
    assert!(
        tail_bytes + before.1.len() > 983_040,
        "tail dropped more than needed"
    );
    // maxBytes paging walks the same chunks.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let r = s.call(
            "process/read",
            json!({"processId": "ret", "afterSeq": after, "maxBytes": 200000}),
        );
        let cs = r["chunks"].as_array().unwrap().clone();
        if cs.is_empty() {
            break;
        }
        after = r["nextSeq"].as_i64().unwrap() - 1;
        paged.extend(cs.iter().map(|c| c["seq"].as_i64().unwrap()));
    }
    assert_eq!(paged, got.iter().map(|c| c.0).collect::<Vec<_>>());
}

#[test]
fn fifty_megabytes_in_order_before_exit() {
    const TOTAL: u64 = 50_000_000;
    let mut s = Server::ready();
    s.start_ok("big", &["head", "-c", "50000000", "/dev/zero"], json!({}));
    let mut expected_seq = 1;
    let mut bytes = 0u64;
    let mut exited_at = None;
    let mut closed = false;
    s.for_each_until_closed("big", |e| {
        let p = &e["params"];
        assert_eq!(p["seq"].as_i64().unwrap(), expected_seq, "seq without gaps");
        expected_seq += 1;
        match e["method"].as_str().unwrap() {
            "process/output" => {
                assert!(
                    exited_at.is_none(),
                    "output after exited (the child wrote nothing after exit)"
                );
                assert_eq!(p["stream"], "stdout");
                let b = unb64(p["chunk"].as_str().unwrap());
                assert!(!b.is_empty() && b.len() <= 65536);
                assert!(b.iter().all(|x| *x == 0));
                bytes += b.len() as u64;
            }
            "process/exited" => {
                assert_eq!(p["exitCode"], json!(0));
                exited_at = Some(bytes);
            }
            "process/closed" => closed = true,
            _ => unreachable!(),
        }
    });
    assert!(closed);
    assert_eq!(exited_at, Some(TOTAL), "all output before exited");
    assert_eq!(bytes, TOTAL);
}

#[test]
fn two_hundred_concurrent_processes() {
    let mut s = Server::ready();
    let mut ids = Vec::new();
    for i in 0..200 {
        let p = s.start_params(
            &format!("c{i}"),
            &sh(&format!("sleep 0.2; echo {i}")),
            json!({}),
        );
        ids.push(s.send_request("process/start", Some(p)));
    }
    for (i, id) in ids.iter().enumerate() {
        let r = s.wait_response(&json!(id));
        assert_eq!(
            r["result"],
            json!({"processId": format!("c{i}"), "sandboxType": "none"}),
            "{r}"
        );
    }
    for i in 0..200 {
        let run = Run::from_events(s.collect_until_closed(&format!("c{i}")));
        assert_eq!(run.stdout_str(), format!("{i}\n"));
        assert_eq!(run.exit_code(), 0);
    }
}

#[test]
fn unknown_ids_for_signal_terminate_resize() {
    let mut s = Server::ready();
    let r = s.call(
        "process/signal",
        json!({"processId": "ghost", "signal": "kill"}),
    );
    assert_eq!(r, json!({}));
    let r = s.call("process/terminate", json!({"processId": "ghost"}));
    assert_eq!(r, json!({"running": false}));
    let r = s.call(
        "process/terminate",
        json!({"processId": "ghost", "graceMs": 100000}),
    );
    assert_eq!(r, json!({"running": false}));
    let r = s.request(
        "process/resize",
        json!({"processId": "ghost", "rows": 1, "cols": 1}),
    );
    assert_error(&r, -32600, "unknown process id ghost");
    // Signal on a closed process: {} and nothing happens.
    let run = s.run("done", &sh("exit 0"), json!({}));
    assert_eq!(run.exit_code(), 0);
    let r = s.call(
        "process/signal",
        json!({"processId": "done", "signal": "interrupt"}),
    );
    assert_eq!(r, json!({}));
    // Unknown signal names.
    s.start_ok("alive", &["sleep", "60"], json!({}));
    for bad in [json!("SIGKILL"), json!("bogus"), json!(9), json!(null)] {
        let (code, _) = s.call_err(
            "process/signal",
            json!({"processId": "alive", "signal": bad}),
        );
        assert_eq!(code, -32602, "{bad}");
    }
    let (code, _) = s.call_err(
        "process/terminate",
        json!({"processId": "alive", "graceMs": -1}),
    );
    assert_eq!(code, -32602);
    let r = s.call("process/read", json!({"processId": "alive"}));
    assert_eq!(r["exited"], json!(false), "the bad requests sent nothing");
}

#[test]
fn terminate_does_not_kill_descendants_that_left_the_group() {
    let mut s = Server::ready();
    // setsid puts the sleeper in its own session; it no longer holds our pipes.
    s.start_ok(
        "esc",
        &sh("setsid sleep 307 </dev/null >/dev/null 2>&1 & echo started; exec sleep 60"),
        json!({}),
    );
    s.wait_output_contains("esc", "started", TIMEOUT);
    assert!(wait_until(Duration::from_secs(5), || {
        marked_processes(&s.marker)
            .iter()
            .any(|p| p.cmdline == "sleep 307")
    }));
    s.call("process/terminate", json!({"processId": "esc"}));
    s.collect_until_closed("esc");
    thread::sleep(Duration::from_millis(300));
    assert!(
        marked_processes(&s.marker)
            .iter()
            .any(|p| p.cmdline == "sleep 307"),
        "docs/protocol.md \"Lifetime\": during operation, escaped descendants are not killed by terminate"
    );
}

#[test]
fn at_most_1024_open_processes() {
    let mut s = Server::ready();
    let mut ids = Vec::new();
    for i in 0..1024 {
        let p = s.start_params(&format!("lim{i}"), &["sleep", "60"], json!({}));
        ids.push(s.send_request("process/start", Some(p)));
    }
    for id in ids {
        let r = s.wait_response(&json!(id));
        assert!(r.get("result").is_some(), "{r}");
    }
    let r = s.start_process("one-too-many", &["sleep", "60"], json!({}));
    assert_error(
        &r,
        -32600,
        "too many processes: at most 1024 may be open per connection",
    );
    // Closing one frees a slot.
    s.call("process/terminate", json!({"processId": "lim0"}));
    s.wait_notification(
        |v| v["method"] == "process/closed" && v["params"]["processId"] == "lim0",
        TIMEOUT,
    );
    let r = s.start_ok("one-more", &["true"], json!({}));
    assert_eq!(r["processId"], json!("one-more"));
}
