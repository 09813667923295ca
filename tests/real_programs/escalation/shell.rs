//! The real patched bash with Tether's wrapper and server: Run, Escalate, Deny,
//! prompts, exit codes, `exec`, nested shells, background jobs, terminate,
//! signals, shutdown, and a sandboxed shell (docs/protocol.md "Exec escalation").

use crate::need_tools;
use crate::support::escalation::*;
use crate::support::{marked_processes, output_bytes, proc_info, wait_until, Run, Server};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn run_executes_in_place_inside_the_shell() {
    let t = need_tools!();
    let mut s = Server::ready();
    // `sh` is run in place: its parent is the shell, and it still sees the
    // escalation variables (nested patched shells are intercepted too).
    let r = shell(
        &mut s,
        &t,
        "run",
        r#"echo shell=$$; sh -c 'echo parent=$PPID sock=$CODEX_ESCALATE_SOCKET'; /bin/echo a b"#,
        json!({}),
    );
    let out = r.stdout_str();
    let shell_pid = out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("shell=")
        .to_string();
    assert!(
        out.contains(&format!("parent={shell_pid} sock=3\n")),
        "{out}\n{}",
        r.stderr_str()
    );
    assert!(out.ends_with("a b\n"), "{out}");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn escalate_runs_in_the_server_with_the_wrappers_stdio() {
    let t = need_tools!();
    let mut s = Server::ready();
    let server = s.pid();
    let r = shell(
        &mut s,
        &t,
        "esc",
        r#"sh -c 'echo parent=$PPID; echo to-stderr >&2'
echo hi | sh -c 'tr a-z A-Z' | cat
echo done"#,
        allow(&["sh"]),
    );
    assert_eq!(
        r.stdout_str(),
        format!("parent={server}\nHI\ndone\n"),
        "{}",
        r.stderr_str()
    );
    assert_eq!(r.stderr_str(), "to-stderr\n");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn escalated_command_reads_the_shells_stdin() {
    let t = need_tools!();
    let mut s = Server::ready();
    start_shell(
        &mut s,
        &t,
        "stdin",
        "sh -c 'read l; echo got:$l'",
        allow(&["sh"]),
        json!({"pipeStdin": true}),
    );
    let w = s.call(
        "process/write",
        json!({"processId": "stdin", "chunk": crate::support::b64(b"fed\n")}),
    );
    assert_eq!(w["status"], "accepted");
    let r = Run::from_events(s.collect_until_closed("stdin"));
    assert_eq!(r.stdout_str(), "got:fed\n", "{}", r.stderr_str());
}

#[test]
fn forbidden_is_denied_and_does_not_run() {
    let t = need_tools!();
    let mut s = Server::ready();
    let dir = crate::support::temp_dir("esc-deny");
    let f = dir.join("keep");
    std::fs::write(&f, "x").unwrap();
    let script = format!("rm -f {}; echo rc=$?", f.display());
    let r = shell(
        &mut s,
        &t,
        "deny",
        &script,
        json!({"rules": [{"prefix": ["rm", "-f"], "decision": "forbidden"}]}),
    );
    assert_eq!(r.stdout_str(), "rc=1\n");
    assert_eq!(
        r.stderr_str(),
        "Execution denied: Execution forbidden by policy\n"
    );
    assert!(f.exists(), "the command did not run");
    // `default: forbidden` denies what no rule matches.
    let r = shell(
        &mut s,
        &t,
        "deny2",
        "/bin/echo a b; echo rc=$?",
        json!({"default": "forbidden"}),
    );
    assert_eq!(r.stdout_str(), "rc=1\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn prompts_are_answered_by_the_client() {
    let t = need_tools!();
    let mut s = Server::ready();
    let script = "sh -c 'echo one'; echo rc=$?
sh -c 'echo two'; echo rc=$?
sh -c 'echo three'; echo rc=$?
sh -c 'echo four'; echo rc=$?
sh -c 'echo five'; echo rc=$?";
    start_shell(
        &mut s,
        &t,
        "ask",
        script,
        json!({"rules": [{"prefix": ["sh", "-c"], "decision": "prompt"}]}),
        json!({}),
    );
    let answers: [Value; 5] = [
        json!({"result": {"decision": "approve"}}),
        json!({"result": {"decision": "deny"}}),
        json!({"result": {"decision": "cancel"}}),
        json!({"error": {"code": -32000, "message": "no human here"}}),
        json!({"result": {"decision": "perhaps"}}),
    ];
    for (i, answer) in answers.iter().enumerate() {
        let req = next_approval(&mut s);
        let word = ["one", "two", "three", "four", "five"][i];
        assert_eq!(
            req,
            json!({"id": i + 1, "method": "process/approveExec", "params": {
                "processId": "ask", "file": "file:///usr/bin/sh",
                "argv": ["sh", "-c", format!("echo {word}")], "workdir": "file:///tmp"}})
        );
        let mut msg = answer.clone();
        msg["id"] = req["id"].clone();
        s.send(&msg);
    }
    let r = Run::from_events(s.collect_until_closed("ask"));
    assert_eq!(r.stdout_str(), "one\nrc=0\nrc=1\nrc=1\nrc=1\nrc=1\n");
    let err = r.stderr_str();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "Execution denied: User declined execution");
    assert_eq!(lines[1], "Execution denied: User cancelled execution");
    assert_eq!(
        lines[2],
        "Execution denied: Execution approval failed: no human here"
    );
    assert!(
        lines[3].starts_with("Execution denied: Execution approval failed: "),
        "{err}"
    );
    assert_eq!(lines.len(), 4, "{err}");
    // A late or repeated answer matches nothing and is ignored.
    s.send(&json!({"id": 1, "result": {"decision": "approve"}}));
    let st = s.call("environment/status", json!({}));
    assert_eq!(st["status"], "ready");
}

#[test]
fn exit_codes_and_signal_deaths() {
    let t = need_tools!();
    let mut s = Server::ready();
    let r = shell(
        &mut s,
        &t,
        "codes",
        "sh -c 'exit 3'; echo rc=$?; sh -c 'kill -KILL $$'; echo rc=$?; sh -c 'kill -TERM $$'; echo rc=$?",
        allow(&["sh"]),
    );
    assert_eq!(
        r.stdout_str(),
        "rc=3\nrc=137\nrc=143\n",
        "{}",
        r.stderr_str()
    );
}

#[test]
fn spawn_failure_of_an_escalated_command() {
    let t = need_tools!();
    let mut s = Server::ready();
    let dir = crate::support::temp_dir("esc-noexec");
    std::fs::write(dir.join("tool"), "echo hi\n").unwrap();
    let script = format!("cd {} && ./tool; echo rc=$?", dir.display());
    let r = shell(&mut s, &t, "noexec", &script, json!({"default": "allow"}));
    assert_eq!(r.stdout_str(), "rc=126\n", "{}", r.stderr_str());
    assert_eq!(
        r.stderr_str(),
        format!(
            "execve-wrapper: {}/tool: Permission denied (os error 13)\n",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_exec_builtin() {
    let t = need_tools!();
    let mut s = Server::ready();
    let server = s.pid();
    // Escalated: the shell becomes the waiting wrapper; its status is the command's.
    let r = shell(
        &mut s,
        &t,
        "exec-esc",
        "echo before; exec sh -c 'echo parent=$PPID; exit 7'",
        allow(&["sh"]),
    );
    assert_eq!(r.stdout_str(), format!("before\nparent={server}\n"));
    assert_eq!(r.exit_code(), 7);
    // Run: the command replaces the shell.
    let r = shell(
        &mut s,
        &t,
        "exec-run",
        "exec sh -c 'exit 4'; echo not-reached",
        json!({}),
    );
    assert_eq!(r.stdout_str(), "");
    assert_eq!(r.exit_code(), 4);
}

#[test]
fn nested_patched_bash_is_intercepted_too() {
    let t = need_tools!();
    let mut s = Server::ready();
    let server = s.pid();
    // The inner bash runs in place (Run); its own `sh` is escalated.
    let script = r#"$BASH -c "sh -c 'echo inner parent=\$PPID'"; echo outer"#;
    let r = shell(&mut s, &t, "nested", script, allow(&["sh"]));
    assert_eq!(
        r.stdout_str(),
        format!("inner parent={server}\nouter\n"),
        "{}",
        r.stderr_str()
    );
}

#[test]
fn background_jobs_are_served_concurrently() {
    let t = need_tools!();
    let mut s = Server::ready();
    let script = "sh -c 'sleep 0.6; echo slow' &
sh -c 'sleep 0.1; echo fast' &
wait; echo done";
    let started = std::time::Instant::now();
    let r = shell(&mut s, &t, "bg", script, allow(&["sh"]));
    assert_eq!(r.stdout_str(), "fast\nslow\ndone\n", "{}", r.stderr_str());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Wait for an escalated `sleep` of this test and return its pid.
fn escalated_sleep(s: &Server) -> i32 {
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            pid = marked_processes(&s.marker)
                .into_iter()
                .find(|p| p.cmdline.starts_with("sleep 60") && p.ppid == s.pid())
                .map(|p| p.pid);
            pid.is_some()
        }),
        "the escalated sleep is a child of the server"
    );
    pid.unwrap()
}

#[test]
fn terminate_kills_escalated_commands() {
    let t = need_tools!();
    let mut s = Server::ready();
    start_shell(
        &mut s,
        &t,
        "term",
        "sh -c 'exec sleep 60 0'; echo after",
        allow(&["sh"]),
        json!({}),
    );
    let pid = escalated_sleep(&s);
    let r = s.call("process/terminate", json!({"processId": "term"}));
    assert_eq!(r["running"], true);
    s.collect_until_closed("term");
    assert!(
        wait_until(
            Duration::from_secs(5),
            || !matches!(proc_info(pid), Some(p) if p.state != 'Z')
        ),
        "the escalated command was killed"
    );
}

#[test]
fn signals_reach_escalated_commands() {
    let t = need_tools!();
    let mut s = Server::ready();
    // The shell (and so its waiting wrapper) ignores SIGUSR1; the escalated
    // command does not, so only the signal sent to its own group reaches it.
    start_shell(
        &mut s,
        &t,
        "sig",
        r#"trap '' USR1; sh -c 'trap "echo got-usr1; exit 9" USR1; echo ready; while :; do sleep 0.05; done'; echo rc=$?"#,
        allow(&["sh"]),
        json!({}),
    );
    s.wait_output_contains("sig", "ready", Duration::from_secs(10));
    s.call(
        "process/signal",
        json!({"processId": "sig", "signal": "user1"}),
    );
    let rest = s.collect_until_closed("sig");
    let out = String::from_utf8_lossy(&output_bytes(&rest, Some("stdout"))).into_owned();
    assert_eq!(out, "got-usr1\nrc=9\n");
}

#[test]
fn shutdown_kills_escalated_commands() {
    let t = need_tools!();
    let mut s = Server::ready();
    start_shell(
        &mut s,
        &t,
        "shut",
        "sh -c 'exec sleep 60 0'",
        allow(&["sh"]),
        json!({}),
    );
    let pid = escalated_sleep(&s);
    s.close_stdin();
    assert!(
        s.wait_exit(Duration::from_secs(3)).is_some(),
        "server exits"
    );
    assert!(
        wait_until(
            Duration::from_secs(3),
            || !matches!(proc_info(pid), Some(p) if p.state != 'Z')
        ),
        "the escalated command was killed at shutdown"
    );
}

#[test]
fn a_sandboxed_shell_escalates_outside_its_sandbox() {
    let t = need_tools!();
    let mut s = Server::ready();
    let id = crate::support::unique("esc-sbx");
    let ws = std::env::temp_dir().join(format!("tether-esc-ws-{id}"));
    let out = std::path::PathBuf::from("/var/tmp").join(format!("tether-esc-out-{id}"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let uri = |p: &std::path::Path| format!("file://{}", p.display());
    let sandbox = json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
        {"path":{"type":"special","value":{"kind":"project_roots"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"slash_tmp"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"tmpdir"}},"access":"write"}]},
        "network":"restricted"},
        "cwd": uri(&ws), "workspaceRoots": [uri(&ws)], "windowsSandboxLevel":"disabled"});
    let o = out.display();
    let script = format!(
        "echo in > {o}/builtin 2>/dev/null || echo builtin-denied
dash -c 'echo run > {o}/run' 2>/dev/null || echo run-denied
sh -c 'echo esc > {o}/escalated'; echo rc=$?"
    );
    let r = {
        s.start_ok(
            "sbx",
            &[&t.bash, "-c", &script],
            json!({"cwd": uri(&ws), "sandbox": sandbox, "escalation": allow(&["sh"])}),
        );
        Run::from_events(s.collect_until_closed("sbx"))
    };
    assert_eq!(
        r.stdout_str(),
        "builtin-denied\nrun-denied\nrc=0\n",
        "{}",
        r.stderr_str()
    );
    assert!(!out.join("builtin").exists() && !out.join("run").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("escalated")).unwrap(),
        "esc\n"
    );
    let _ = std::fs::remove_dir_all(&ws);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_escalation_params_are_refused() {
    let mut s = Server::ready();
    let resp = s.start_process(
        "bad",
        &["/bin/true"],
        json!({"escalation": {"rules": [{"prefix": [], "decision": "allow"}]}}),
    );
    crate::support::assert_error(&resp, -32602, "escalation rule prefix must not be empty");
    let resp = s.start_process(
        "bad2",
        &["/bin/true"],
        json!({"escalation": {"default": "maybe"}}),
    );
    assert_eq!(crate::support::error_of(&resp).unwrap().0, -32602);
}
