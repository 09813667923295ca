//! The real Codex CLI (0.169.0 and 0.171.0) uses `shellSnapshotV2` through
//! Tether: with `--enable shell_snapshot_v2` a login-shell command gets
//! `shellSnapshot` on `process/start`, and Tether replays the state captured
//! from the executor's `~/.bashrc`, so a function defined only there runs.
//!
//! Tether's `HOME` (its environment in environments.toml) is a directory whose
//! `.bashrc` defines `tetherfn`; a plain `bash -lc` does not read `.bashrc`,
//! so without the feature the same command says `tetherfn: command not found`.

use super::codex::{
    assert_no_survivors, check_ok, codex_exec_tapped, exec_call, new_marker, temp_dir, Mock,
};
use crate::support::npm::{codex_at, CODEX_NEWEST, CODEX_VERSION};
use crate::support::skip;
use serde_json::{json, Value};

const SAYS: &str = "tetherfn-ran-from-the-executor-bashrc";

/// Runs `tetherfn`, then prints the shell's own `argv[1]`: `-lc` as Codex sent
/// it, or `-pc` when Tether replayed a snapshot (so `shellSnapshot` was sent).
const ARGV1_CMD: &str =
    "tetherfn; echo exit=$?; echo argv1=$(tr '\\0' '\\n' </proc/$$/cmdline | sed -n 2p)";

/// Run `tetherfn` through a login `exec_command`: the tool output, the
/// server log, and the `process/start` params Codex sent (from the tap).
fn run_tetherfn(version: &str, enable: bool) -> Option<(String, String, Vec<Value>)> {
    let codex = match codex_at(version) {
        Ok(c) => c,
        Err(why) => {
            skip(why);
            return None;
        }
    };
    let home = temp_dir("exec-home");
    std::fs::write(
        home.join(".bashrc"),
        format!("tetherfn() {{ echo {SAYS}; }}\n"),
    )
    .unwrap();
    let mock = Mock::start(vec![exec_call(
        "f1",
        json!({"cmd": ARGV1_CMD, "login": true}),
    )]);
    let ws = temp_dir("ws-snapshot");
    let home_s = home.display().to_string();
    let args: &[&str] = if enable {
        &["--enable", "shell_snapshot_v2"]
    } else {
        &[]
    };
    let tap = home.join("tap.jsonl");
    let run = codex_exec_tapped(
        &codex,
        &mock,
        &ws,
        "danger-full-access",
        &new_marker(),
        &[("HOME", &home_s)],
        args,
        Some(&tap),
        false,
    );
    check_ok(&run);
    let log = std::fs::read_to_string(&run.server_log).unwrap_or_default();
    let starts: Vec<Value> = std::fs::read_to_string(&tap)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["method"] == "process/start")
        .map(|m| m["params"].clone())
        .collect();
    let out = mock.outputs().get("f1").cloned().unwrap_or_else(|| {
        panic!(
            "no output for f1: {:?}\nstderr:\n{}",
            mock.outputs(),
            run.stderr
        )
    });
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
    let _ = std::fs::remove_dir_all(&home);
    Some((out, log, starts))
}

fn snapshot_replays_the_executor_bashrc(version: &str) {
    let Some((out, log, starts)) = run_tetherfn(version, true) else {
        return;
    };
    // Codex sent `shellSnapshot` (for bash, scope `<thread>:<environment>`) …
    let [start] = &starts[..] else {
        panic!("one process/start expected: {starts:?}");
    };
    let snap = &start["shellSnapshot"];
    assert_eq!(snap["shell"]["name"], "bash", "{start}");
    assert_eq!(snap["shell"]["path"], start["argv"][0], "{start}");
    assert_eq!(start["argv"][1], "-lc", "{start}");
    assert!(
        snap["scopeId"]
            .as_str()
            .is_some_and(|s| s.ends_with(":tether")),
        "{start}"
    );
    // … the function from the executor's ~/.bashrc ran …
    assert!(out.contains(SAYS), "{out}\nserver log:\n{log}");
    assert!(out.contains("exit=0"), "{out}");
    // … as Tether's replay (`bash -pc`), not the login shell that was sent.
    assert!(out.contains("argv1=-pc"), "{out}\nserver log:\n{log}");

    // Control: without the feature, no `shellSnapshot`, and no function.
    let Some((out, log, starts)) = run_tetherfn(version, false) else {
        return;
    };
    let [start] = &starts[..] else {
        panic!("one process/start expected: {starts:?}");
    };
    assert!(
        start.get("shellSnapshot").is_none_or(Value::is_null),
        "{start}"
    );
    assert!(!out.contains(SAYS), "{out}");
    assert!(
        out.contains("tetherfn: command not found"),
        "{out}\nserver log:\n{log}"
    );
    assert!(out.contains("argv1=-lc"), "{out}");
}

#[test]
fn shell_snapshot_codex_0169() {
    snapshot_replays_the_executor_bashrc(CODEX_VERSION);
}

#[test]
fn shell_snapshot_codex_0171() {
    snapshot_replays_the_executor_bashrc(CODEX_NEWEST);
}
