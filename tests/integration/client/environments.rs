//! environments.toml through `tether run`: every validation message (exact
//! text), CODEX_HOME and --environments, relative cwd, env overlay, url refused.

use crate::support::client::*;
use std::path::Path;
use std::process::Command;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let f = dir.join("environments.toml");
    std::fs::write(&f, text).unwrap();
    f
}

/// `tether run --environments FILE --env ID -- true` with CODEX_HOME unset.
fn run_with(file: &Path, env: &str) -> std::process::Output {
    run_with_input(
        Command::new(bin()).env_remove("CODEX_HOME").args([
            "run",
            "--environments",
            file.to_str().unwrap(),
            "--env",
            env,
            "--",
            "true",
        ]),
        b"",
    )
}

#[test]
fn every_validation_message() {
    let dir = temp_dir("envs-messages");
    let long = "x".repeat(65);
    let cases: Vec<(String, String)> = vec![
        ("[[environments]]\nid = \"a\"\n".into(), "environment `a` must set exactly one of url or program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://127.0.0.1:1\"\nprogram = \"tether\"\n".into(), "environment `a` must set exactly one of url or program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://127.0.0.1:1\"\nargs = [\"x\"]\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"ws://127.0.0.1:1\"\nenv = { A = \"1\" }\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\ncwd = \"/tmp\"\n".into(), "environment `a` args, env, and cwd require program".into()),
        ("[[environments]]\nid = \"a\"\nprogram = \"tether\"\nconnect_timeout_sec = 5\n".into(), "environment `a` connect_timeout_sec requires url".into()),
        ("[[environments]]\nid = \"local\"\nprogram = \"tether\"\n".into(), "environment id `local` is reserved".into()),
        ("[[environments]]\nid = \"NONE\"\nprogram = \"tether\"\n".into(), "environment id `NONE` is reserved".into()),
        ("default = \"nope\"\n".into(), "default environment `nope` is not configured".into()),
        ("[[environments]]\nid = \"bad id\"\nprogram = \"tether\"\n".into(), "environment id `bad id` must contain only ASCII letters, numbers, '-' or '_'".into()),
        ("[[environments]]\nid = \"\"\nprogram = \"tether\"\n".into(), "environment id cannot be empty".into()),
        ("[[environments]]\nid = \"a \"\nprogram = \"tether\"\n".into(), "environment id `a ` must not contain surrounding whitespace".into()),
        (format!("[[environments]]\nid = \"{long}\"\nprogram = \"tether\"\n"), format!("environment id `{long}` cannot be longer than 64 characters")),
        ("[[environments]]\nid = \"a\"\nprogram = \"t\"\n[[environments]]\nid = \"a\"\nprogram = \"t\"\n".into(), "environment id `a` is duplicated".into()),
        ("[[environments]]\nid = \"a\"\nprogram = \"  \"\n".into(), "environment `a` program cannot be empty".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"https://example.com\"\n".into(), "environment url `https://example.com` must use ws:// or wss://".into()),
        ("[[environments]]\nid = \"a\"\nurl = \"\"\n".into(), "environment url cannot be empty".into()),
        ("default = \"\"\n".into(), "default environment id cannot be empty".into()),
        ("include_local = false\ndefault = \"local\"\n".into(), "default environment `local` is not configured".into()),
    ];
    for (toml, msg) in cases {
        let f = write(&dir, &toml);
        let out = run_with(&f, "a");
        assert_eq!(
            text(&out.stderr),
            format!("tether run: {msg}\n"),
            "for:\n{toml}"
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_keys_and_bad_toml_are_rejected() {
    let dir = temp_dir("envs-unknown");
    for (toml, needle) in [
        ("defualt = \"a\"\n", "unknown field `defualt`"),
        (
            "[[environments]]\nid = \"a\"\nprogram = \"t\"\nshell = \"bash\"\n",
            "unknown field `shell`",
        ),
        (
            "[[environments]]\nid = \"a\"\nprogram = \"t\"\ninitialize_timeout_sec = -1\n",
            "initialize_timeout_sec",
        ),
        ("this is not toml\n", "TOML parse error at line 1, column 6"),
    ] {
        let f = write(&dir, toml);
        let out = run_with(&f, "a");
        let err = text(&out.stderr);
        let prefix = format!(
            "tether run: failed to parse environment config `{}`: ",
            f.display()
        );
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.contains(needle), "{needle} in {err}");
        assert_eq!(out.status.code(), Some(2));
    }
    let missing = dir.join("missing.toml");
    let out = run_with(&missing, "a");
    assert_eq!(
        text(&out.stderr),
        format!("tether run: failed to read environment config `{}`: No such file or directory (os error 2)\n", missing.display())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn codex_home_program_environment_with_relative_cwd_and_env() {
    let home = temp_dir("envs-home");
    std::fs::create_dir(home.join("work")).unwrap();
    write(
        &home,
        &format!(
            "default = \"none\"\n[[environments]]\nid = \"here\"\nprogram = \"{}\"\nargs = [\"exec-server\"]\nenv = {{ TETHER_FROM_TOML = \"toml\" }}\ncwd = \"work\"\ninitialize_timeout_sec = 5\n\n[[environments]]\nid = \"remote\"\nurl = \"ws://127.0.0.1:8765\"\n",
            bin().display()
        ),
    );
    let run = |args: &[&str]| {
        run_with_input(Command::new(bin()).env("CODEX_HOME", &home).args(args), b"")
    };
    // The command runs in the server's cwd (CODEX_HOME/work) with its environment.
    let out = run(&[
        "run",
        "--env",
        "here",
        "--",
        "sh",
        "-c",
        "echo $TETHER_FROM_TOML; pwd",
    ]);
    assert_eq!(
        text(&out.stdout),
        format!("toml\n{}\n", home.join("work").display()),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    // `local` is Tether itself, in our cwd, without the toml's env.
    let out = run(&[
        "run",
        "--env",
        "local",
        "--",
        "sh",
        "-c",
        "echo ${TETHER_FROM_TOML:-unset}",
    ]);
    assert_eq!(text(&out.stdout), "unset\n");
    let out = run(&["run", "--env", "remote", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "tether run: environment `remote` uses url `ws://127.0.0.1:8765`, which is not supported: tether speaks stdio only (set program instead)\n"
    );
    let out = run(&["run", "--env", "other", "--", "true"]);
    assert_eq!(
        text(&out.stderr),
        "tether run: environment `other` is not configured\n"
    );
    // Without --env, the local default ignores the file entirely.
    let out = run(&["run", "--", "echo", "plain"]);
    assert_eq!(text(&out.stdout), "plain\n");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn environments_file_default_is_used_without_env() {
    let dir = temp_dir("envs-default");
    let f = write(
        &dir,
        &format!("default = \"t\"\n[[environments]]\nid = \"t\"\nprogram = \"{}\"\nargs = [\"exec-server\"]\ncwd = \"/\"\n", bin().display()),
    );
    let out = tether(&["run", "--environments", f.to_str().unwrap(), "--", "pwd"]);
    assert_eq!(text(&out.stdout), "/\n", "{}", text(&out.stderr));
    let f = write(&dir, "default = \"none\"\n");
    let out = tether(&["run", "--environments", f.to_str().unwrap(), "--", "pwd"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "tether run: the environments file sets no default environment: choose one with --env ID\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
