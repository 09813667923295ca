//! Shell snapshots (docs/protocol.md "Shell snapshots"): `shellSnapshot` on
//! `process/start` replays a login shell's functions, aliases, options and
//! exports into later `SHELL -lc` commands, which run as a plain shell.

use crate::support::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const BASH: &str = "/bin/bash";

/// A home whose `.profile` counts its runs (one line per run in `runs`) and
/// whose `.bashrc` defines a function, an alias, exports and an option.
fn home(bashrc_extra: &str) -> PathBuf {
    let h = temp_dir("snap");
    fs::write(
        h.join(".profile"),
        format!(
            "echo profile-ran >> '{}'\necho from-profile\n",
            h.join("runs").display()
        ),
    )
    .unwrap();
    fs::write(
        h.join(".bashrc"),
        format!(
            "{bashrc_extra}
snapfn() {{ echo \"snapfn says $1\"; }}
alias snapalias='echo aliased'
export SNAP_RC_VAR=from-bashrc
export SNAP_RC_OVERRIDDEN=from-bashrc
export SNAP_API_TOKEN=secret
set -o noclobber
"
        ),
    )
    .unwrap();
    h
}

fn runs(h: &Path) -> usize {
    fs::read_to_string(h.join("runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn snap(scope: &str) -> Value {
    json!({"scopeId": scope, "shell": {"name": "bash", "path": BASH}})
}

/// What a command sees: the function, the alias, the option, the variables,
/// and whether it is a login shell.
const PROBE: &str = "type snapfn >/dev/null 2>&1 && echo SNAP || echo NOSNAP; \
    alias snapalias >/dev/null 2>&1 && echo ALIAS; \
    [ -o noclobber ] && echo NOCLOBBER; \
    echo \"rc=$SNAP_RC_VAR over=$SNAP_RC_OVERRIDDEN token=[$SNAP_API_TOKEN]\"; \
    shopt -q login_shell && echo LOGIN || echo NONLOGIN";

fn start(s: &mut Server, id: &str, h: &Path, argv: &[&str], extra: Value) -> Run {
    let mut params = json!({
        "env": {"HOME": h.to_str().unwrap(), "SNAP_RC_OVERRIDDEN": "from-request"},
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            params[k] = v;
        }
    }
    s.run(id, argv, params)
}

#[test]
fn snapshot_replays_the_login_shell_once_per_key_as_a_non_login_shell() {
    let h = home("");
    let mut s = Server::ready();
    let argv = [BASH, "-lc", PROBE];
    let r = start(
        &mut s,
        "s1",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:x")}),
    );
    let out = r.stdout_str();
    assert_eq!(r.exit_code(), 0, "{out} {}", r.stderr_str());
    for want in ["SNAP\n", "ALIAS\n", "NOCLOBBER\n", "NONLOGIN\n"] {
        assert!(out.contains(want), "{want:?} missing from {out:?}");
    }
    // The export from .bashrc arrives, the request's env wins, and the default
    // excludes (*TOKEN*) filter the snapshot's exports.
    assert!(
        out.contains("rc=from-bashrc over=from-request token=[]"),
        "{out:?}"
    );
    // What the profile printed during the capture is not replayed.
    assert!(!out.contains("from-profile"), "{out:?}");
    assert_eq!(runs(&h), 1, "the capture ran the login profile once");

    // Same key: no new capture, same replay.
    let r = start(
        &mut s,
        "s2",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:x")}),
    );
    assert!(r.stdout_str().contains("SNAP\n"), "{}", r.stdout_str());
    assert_eq!(runs(&h), 1, "a second command of the scope captured again");

    // The function works as a command, with arguments.
    let r = start(
        &mut s,
        "s3",
        &h,
        &[BASH, "-lc", "snapfn hello"],
        json!({"shellSnapshot": snap("t:x")}),
    );
    assert_eq!(r.stdout_str(), "snapfn says hello\n");
    assert_eq!(runs(&h), 1);

    // Another scope, another cwd, another envPolicy: each captures anew.
    start(
        &mut s,
        "s4",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:y")}),
    );
    assert_eq!(runs(&h), 2, "a new scope captures");
    start(
        &mut s,
        "s5",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:y"), "cwd": h.to_str().unwrap()}),
    );
    assert_eq!(runs(&h), 3, "a new cwd captures");
    let r = start(
        &mut s,
        "s6",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:y"), "cwd": h.to_str().unwrap(),
               "envPolicy": {"inherit": "core", "ignoreDefaultExcludes": true}}),
    );
    assert_eq!(runs(&h), 4, "a new envPolicy captures");
    // With ignoreDefaultExcludes the token export is replayed too.
    assert!(
        r.stdout_str().contains("token=[secret]"),
        "{}",
        r.stdout_str()
    );
    // The request's env is not part of the key.
    start(
        &mut s,
        "s7",
        &h,
        &argv,
        json!({"shellSnapshot": snap("t:x"), "env": {"OTHER": "1"}}),
    );
    assert_eq!(runs(&h), 4, "a different env captured again");
    fs::remove_dir_all(&h).unwrap();
}

#[test]
fn snapshot_is_a_no_op_unless_argv_is_the_snapshot_shell_with_lc() {
    let h = home("");
    let mut s = Server::ready();
    for (id, argv) in [
        ("n1", vec![BASH, "-c", PROBE]),
        ("n2", vec!["bash", "-lc", PROBE]),
    ] {
        let r = start(&mut s, id, &h, &argv, json!({"shellSnapshot": snap("t:x")}));
        assert!(
            r.stdout_str().contains("NOSNAP"),
            "{id}: {}",
            r.stdout_str()
        );
    }
    assert_eq!(runs(&h), 1, "only the plain `bash -lc` ran the profile");
    fs::remove_dir_all(&h).unwrap();
}

#[test]
fn a_failed_capture_runs_the_command_as_sent() {
    // A .bashrc that exits makes the capture fail; the command still runs, as
    // the login shell it asked for.
    let h = home("exit 3");
    let mut s = Server::ready();
    let r = start(
        &mut s,
        "f1",
        &h,
        &[BASH, "-lc", "echo ran; shopt -q login_shell && echo LOGIN"],
        json!({"shellSnapshot": snap("t:x")}),
    );
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.stdout_str(), "from-profile\nran\nLOGIN\n");
    // The profile ran twice: in the capture that failed, and in the command.
    assert_eq!(runs(&h), 2);
    fs::remove_dir_all(&h).unwrap();
}

#[test]
fn snapshot_works_with_a_terminal() {
    let h = home("");
    let mut s = Server::ready();
    let r = start(
        &mut s,
        "t1",
        &h,
        &[BASH, "-lc", "snapfn tty"],
        json!({"shellSnapshot": snap("t:x"), "tty": true}),
    );
    let out = String::from_utf8_lossy(&r.pty).into_owned();
    assert!(out.contains("snapfn says tty"), "{out:?}");
    fs::remove_dir_all(&h).unwrap();
}

#[test]
fn shell_snapshot_is_validated_first() {
    let mut s = Server::ready();
    let scope_err = "shell snapshot scope must be non-empty and at most 256 bytes";
    let long = "x".repeat(257);
    for (snap, want) in [
        (snap(""), scope_err.to_string()),
        (snap(&long), scope_err.to_string()),
        (
            json!({"scopeId": "t:x", "shell": {"name": "fish", "path": "/usr/bin/fish"}}),
            "shell snapshots are unsupported for shell `fish`".to_string(),
        ),
    ] {
        // argv is empty as well: the snapshot is checked before anything else.
        let mut p = s.start_params("v", &[], json!({}));
        p["shellSnapshot"] = snap;
        assert_eq!(s.call_err("process/start", p), (-32602, want));
    }
    let mut p = s.start_params("v", &[BASH, "-lc", "true"], json!({}));
    p["shellSnapshot"] = json!({"scopeId": "t:x"});
    let (code, msg) = s.call_err("process/start", p);
    assert_eq!(code, -32602);
    assert!(msg.contains("missing field `shell`"), "{msg}");
    // 256 bytes is allowed.
    let h = home("");
    let r = start(
        &mut s,
        "ok",
        &h,
        &[BASH, "-lc", "snapfn ok"],
        json!({"shellSnapshot": snap(&"y".repeat(256))}),
    );
    assert_eq!(r.stdout_str(), "snapfn says ok\n");
    fs::remove_dir_all(&h).unwrap();
}
