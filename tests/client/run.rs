//! `tether run`: exit codes, stdin forwarding, --set, --cwd, --server, --sandbox.

use super::common::*;
use std::process::Command;

#[test]
fn exit_codes_are_the_commands_own() {
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
fn sandbox_is_not_yet_supported() {
    for (args, name) in [
        (
            &["run", "--sandbox", "read-only", "--", "true"][..],
            "read-only",
        ),
        (
            &[
                "run",
                "--sandbox",
                "workspace-write",
                "--writable",
                "/tmp",
                "--",
                "true",
            ],
            "workspace-write",
        ),
    ] {
        let out = tether(args);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr),
            format!("tether run: --sandbox {name} is not yet supported: this version of tether cannot enforce sandbox policies\n")
        );
        assert!(out.stdout.is_empty());
    }
    let out = tether(&["run", "--sandbox", "full", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tether(&["run", "--writable", "/tmp", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "--writable needs --sandbox");
}
