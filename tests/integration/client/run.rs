//! `tether run`: exit codes, stdin forwarding, --set, --cwd, --server, --sandbox.

use crate::support::client::*;
use std::process::Command;

#[test]
fn exit_codes_are_the_commands_own() {
    let _orphans = OrphanCheck::new();
    let out = tether(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(7));
    let out = tether(&["run", "--", "sh", "-c", "kill -INT $$"]);
    assert_eq!(out.status.code(), Some(130), "128 + SIGINT");
    let out = tether(&["run", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137), "128 + SIGKILL");
    let out = tether(&["run", "--", "/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        text(&out.stderr),
        "tether run: /nonexistent/command: No such file or directory (os error 2)\n"
    );
}

#[test]
fn stdin_is_forwarded_and_closed_at_end_of_input() {
    let _orphans = OrphanCheck::new();
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = run_with_input(Command::new(bin()).args(["run", "--", "cat"]), &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, input);
    // End of input reaches the command: wc sees it and exits.
    let out = run_with_input(
        Command::new(bin()).args(["run", "--", "wc", "-c"]),
        b"12345",
    );
    assert_eq!(text(&out.stdout).trim(), "5");
}

#[test]
fn set_and_cwd() {
    let _orphans = OrphanCheck::new();
    let dir = temp_dir("run-cwd");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let out = run_with_input(
        Command::new(bin())
            .current_dir(&dir)
            .env("TETHER_INHERITED", "yes")
            .args([
                "run", "--set", "A=1", "--set", "B=x=y", "--cwd", "sub", "--",
            ])
            .args(["sh", "-c", "echo $A $B $TETHER_INHERITED; pwd"]),
        b"",
    );
    assert_eq!(
        text(&out.stdout),
        format!("1 x=y yes\n{}\n", dir.join("sub").display())
    );
    let out = tether(&["run", "--cwd", dir.to_str().unwrap(), "--", "pwd"]);
    assert_eq!(text(&out.stdout), format!("{}\n", dir.display()));
    let out = tether(&["run", "--set", "novalue", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_program_with_args() {
    let _orphans = OrphanCheck::new();
    let b = bin();
    let out = tether(&[
        "run",
        "--server",
        b.to_str().unwrap(),
        "--server-arg",
        "exec-server",
        "--set",
        "X=over-there",
        "--",
        "sh",
        "-c",
        "echo $X",
    ]);
    assert_eq!(text(&out.stdout), "over-there\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
    // A server that is not one: exit 125 and its stderr is shown.
    let out = tether(&[
        "run",
        "--server",
        "sh",
        "--server-arg",
        "-c",
        "--server-arg",
        "echo broken >&2",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        text(&out.stderr),
        "tether run: sh: handshake failed: the server went away\ntether run: sh: broken\n"
    );
    let out = tether(&["run", "--server", "/nonexistent/server", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = tether(&["run", "--server-arg", "x", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--server-arg needs --server");
    let out = tether(&["run", "--env", "a", "--server", "sh", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--env and --server conflict");
}

#[test]
fn sandbox_policies_confine_the_command() {
    let _orphans = OrphanCheck::new();
    let ws = temp_dir("run-sbx-ws");
    // Outside /tmp, which workspace-write makes writable.
    let extra = std::path::PathBuf::from("/var/tmp").join(unique("run-sbx-extra"));
    std::fs::create_dir_all(&extra).unwrap();
    let outside = std::path::PathBuf::from("/var/tmp").join(unique("run-sbx-out"));
    std::fs::create_dir_all(&outside).unwrap();
    let script = format!(
        "echo a > {ws}/a; echo b > {extra}/b; echo c > {out}/c; echo done",
        ws = ws.display(),
        extra = extra.display(),
        out = outside.display()
    );
    // read-only: nothing is written anywhere.
    let out = run_with_input(
        Command::new(bin()).current_dir(&ws).args([
            "run",
            "--sandbox",
            "read-only",
            "--",
            "sh",
            "-c",
            &script,
        ]),
        b"",
    );
    assert_eq!(text(&out.stdout), "done\n", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    assert!(!ws.join("a").exists() && !extra.join("b").exists() && !outside.join("c").exists());
    // workspace-write: the cwd and --writable, not elsewhere; exit code passes through.
    let out = run_with_input(
        Command::new(bin()).current_dir(&ws).args([
            "run",
            "--sandbox",
            "workspace-write",
            "--writable",
            extra.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &format!("{script}; test ! -e {}/c", outside.display()),
        ]),
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(ws.join("a")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(extra.join("b")).unwrap(), "b\n");
    assert!(!outside.join("c").exists());
    for d in [&ws, &extra, &outside] {
        let _ = std::fs::remove_dir_all(d);
    }
    let out = tether(&["run", "--sandbox", "full", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tether(&["run", "--writable", "/tmp", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--writable needs --sandbox");
}
