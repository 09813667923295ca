//! docs/protocol.md "Transport" the binary: mode dispatch, `tether run`, `install-links`, CLI errors.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use serde_json::json;

use crate::support::client::run_with_input;
use crate::support::*;

fn tether(args: &[&str]) -> Output {
    run_with_input(Command::new(bin()).args(args), b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_passes_stdout_stderr_and_exit_code() {
    let out = tether(&["run", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(text(&out.stdout), "out\n", "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn run_forwards_stdin() {
    let out = run_with_input(Command::new(bin()).args(["run", "--", "cat"]), b"hello\n");
    assert_eq!(
        text(&out.stdout),
        "hello\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
    // Through a shell pipeline, as a user would type it.
    let line = format!("echo hello | '{}' run -- cat", bin().display());
    let out = run_with_input(Command::new("/bin/sh").args(["-c", &line]), b"");
    assert_eq!(
        text(&out.stdout),
        "hello\n",
        "stderr: {}",
        text(&out.stderr)
    );
}

#[test]
fn run_reports_signal_death_as_128_plus_n() {
    let out = tether(&["run", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(out.status.signal().is_none());
    let out = tether(&["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(143));
}

#[test]
fn run_binary_output_is_passed_unchanged() {
    let out = tether(&["run", "--", "sh", "-c", "printf '\\000\\377\\r\\n'; exit 0"]);
    assert_eq!(out.stdout, b"\x00\xff\r\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn help_lists_the_modes() {
    let out = tether(&["--help"]);
    assert!(out.status.success(), "{:?}", out.status);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for mode in ["exec-server", "codex-fs", "execve-wrapper"] {
        assert!(all.contains(mode), "--help mentions {mode}: {all}");
    }
}

#[test]
fn version_flags() {
    let v = env!("CARGO_PKG_VERSION");
    for args in [
        &["--version"][..],
        &["exec-server", "--version"],
        &["codex-fs", "--version"],
    ] {
        let out = tether(args);
        assert!(
            out.status.success(),
            "{args:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(v),
            "{args:?}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn exec_server_is_stdio_only() {
    let out = tether(&["exec-server", "--listen", "tcp://127.0.0.1:1234"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("tether is stdio-only"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout: {}",
        text(&out.stdout)
    );
    for listen in [&["--listen", "stdio://"][..], &["--listen=stdio"], &[]] {
        let mut s = Server::builder()
            .args(std::iter::once("exec-server").chain(listen.iter().copied()))
            .spawn();
        s.initialize();
        assert_eq!(
            s.call("environment/status", json!({})),
            json!({"status": "ready"}),
            "{listen:?}"
        );
    }
    // Anything else still goes through the argument parser.
    let out = tether(&["exec-server", "--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--bogus"),
        "{}",
        text(&out.stderr)
    );
    let out = tether(&["exec-server", "--listen", "stdio", "extra"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn codex_fs_mode_dispatch() {
    // docs/protocol.md "Sandboxed filesystem requests": a request it cannot handle → `codex-fs: <detail>` on stderr, exit 1.
    let out = run_with_input(Command::new(bin()).arg("codex-fs").env_clear(), b"not json");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("codex-fs: "),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn execve_wrapper_mode_dispatch() {
    // docs/protocol.md "Exec escalation": fewer than two arguments → usage on stderr, exit 2; lone --help → 0.
    let out = tether(&["execve-wrapper"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    assert!(!out.stderr.is_empty());
    let out = tether(&["execve-wrapper", "--help"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    // Without an escalation socket it runs the command in place.
    let out = run_with_input(
        Command::new(bin())
            .args(["execve-wrapper", "/bin/sh", "sh", "-c", "echo in-place"])
            .env_remove("CODEX_ESCALATE_SOCKET"),
        b"",
    );
    assert_eq!(
        text(&out.stdout),
        "in-place\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn install_links_and_argv0_dispatch() {
    let dir = temp_dir("links");
    let out = tether(&["install-links", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    let target = std::fs::canonicalize(bin()).unwrap();
    for name in ["exec-server", "codex-fs", "execve-wrapper"] {
        let link = dir.join(name);
        let meta = std::fs::symlink_metadata(&link).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(meta.file_type().is_symlink(), "{name} is a symlink");
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            target,
            "{name} points at the binary"
        );
    }
    // argv[0] = exec-server speaks the protocol, without arguments.
    let mut s = Server::builder()
        .program(dir.join("exec-server"))
        .args(Vec::<String>::new())
        .spawn();
    let r = s.initialize();
    assert!(r["sessionId"].is_string());
    let run = s.run("via-link", &["/bin/sh", "-c", "echo linked"], json!({}));
    assert_eq!(run.stdout_str(), "linked\n");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `install-links` into a fresh directory; returns it.
fn links() -> std::path::PathBuf {
    let dir = temp_dir("links");
    let out = tether(&["install-links", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    dir
}

#[test]
fn argv0_execve_wrapper_dispatch() {
    let dir = links();
    let out = run_with_input(&mut Command::new(dir.join("execve-wrapper")), b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage exit: {}",
        text(&out.stderr)
    );
    assert!(!out.stderr.is_empty());
    let out = run_with_input(
        Command::new(dir.join("execve-wrapper"))
            .args(["/bin/sh", "sh", "-c", "echo via-link"])
            .env_remove("CODEX_ESCALATE_SOCKET"),
        b"",
    );
    assert_eq!(
        text(&out.stdout),
        "via-link\n",
        "stderr: {}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn argv0_codex_fs_dispatch() {
    let dir = links();
    let out = run_with_input(Command::new(dir.join("codex-fs")).env_clear(), b"{");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("codex-fs: "),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Until its issue lands, the execve-wrapper mode dispatches and says so plainly
/// (codex-fs is implemented: see `codex_fs_mode_dispatch`).
/// Both helper modes dispatch by name and through their links: `execve-wrapper`
/// without an escalation socket runs the command in place.
#[test]
fn helper_modes_dispatch_by_name_and_link() {
    let out = run_with_input(
        Command::new(bin())
            .args(["execve-wrapper", "/bin/true", "true"])
            .env_remove("CODEX_ESCALATE_SOCKET"),
        b"{}",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    let dir = links();
    let out = run_with_input(
        Command::new(dir.join("execve-wrapper"))
            .args(["/bin/false", "false"])
            .env_remove("CODEX_ESCALATE_SOCKET"),
        b"{}",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "via link: {}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tether --version` (and each mode's) says the version, the commit it was
/// built from, and whether it is a static binary.
#[test]
fn version_names_the_commit_and_the_linkage() {
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for (args, name) in [
        (vec!["--version"], "tether"),
        (vec!["exec-server", "--version"], "tether-exec-server"),
        (vec!["run", "--version"], "tether-run"),
    ] {
        let out = Command::new(bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let want = format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"));
        let rest = text
            .strip_prefix(&want)
            .unwrap_or_else(|| panic!("{args:?}: {text:?}"));
        let (commit, linkage) = rest
            .trim_end()
            .strip_suffix(')')
            .and_then(|r| r.split_once(", "))
            .unwrap_or_else(|| panic!("{text:?}"));
        let linkage_ok = linkage == "static" || linkage == "dynamic";
        assert!(linkage_ok, "{text:?}");
        match &git {
            // Built from this checkout: its commit (modified or not).
            Some(head) => assert!(commit.starts_with(head.as_str()), "{text:?} vs {head}"),
            None => assert_eq!(commit, "unknown", "{text:?}"),
        }
    }
}
