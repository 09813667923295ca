//! Tether's `execve-wrapper` against the protocol-exact server of `fake.rs`:
//! every decision, every accepted reply form, and each of the wrapper's own
//! errors (docs/protocol.md "Exec escalation").

use super::fake::*;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Start the wrapper on a fresh socket and take its request.
fn ask(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, OwnedFd, Value, OwnedFd) {
    let (server, child) = socketpair(libc::SOCK_DGRAM);
    let w = wrapper(Some(&child), args, env);
    drop(child);
    let stream = accept(&server);
    let (req, fds) = read_frame(&stream);
    assert!(fds.is_empty());
    (w, stream, req, server)
}

#[test]
fn request_shape_and_run_in_place() {
    let (w, stream, req, _server) = ask(
        &["/bin/sh", "-sh", "-c", "echo ran $0 $CODEX_ESCALATE_SOCKET"],
        &[
            ("BASH_EXEC_WRAPPER", "/x/w"),
            ("EXEC_WRAPPER", "/x/w"),
            ("KEEP", "1"),
        ],
    );
    // Message 1: file, argv with argv[0] (which may start with `-`), workdir, env
    // without the three escalation variables.
    assert_eq!(req["file"], "/bin/sh");
    assert_eq!(
        req["argv"],
        json!(["-sh", "-c", "echo ran $0 $CODEX_ESCALATE_SOCKET"])
    );
    assert_eq!(req["workdir"], "/tmp");
    let env = req["env"].as_object().unwrap();
    assert_eq!(env["KEEP"], "1");
    for v in ["CODEX_ESCALATE_SOCKET", "BASH_EXEC_WRAPPER", "EXEC_WRAPPER"] {
        assert!(!env.contains_key(v), "{v} is not sent");
    }
    write_frame(&stream, &json!({"action": "Run"}));
    // Run: exec in place, environment unchanged (the socket variable stays).
    let (code, out, err) = finish(w);
    assert_eq!((code, out.as_str()), (Some(0), "ran -sh 3\n"), "{err}");
}

#[test]
fn every_reply_form_is_understood() {
    for (reply, want_code, want_err) in [
        (json!({"action": {"Run": null}}), Some(0), ""),
        (
            json!({"action": {"Deny": {}}}),
            Some(1),
            "Execution denied\n",
        ),
        (
            json!({"action": {"Deny": {"reason": null}}}),
            Some(1),
            "Execution denied\n",
        ),
        (
            json!({"action": {"Deny": {"reason": ""}}}),
            Some(1),
            "Execution denied\n",
        ),
        (
            json!({"action": {"Deny": {"reason": "no way"}}}),
            Some(1),
            "Execution denied: no way\n",
        ),
    ] {
        let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
        write_frame(&stream, &reply);
        let (code, out, err) = finish(w);
        assert_eq!((code, err.as_str()), (want_code, want_err), "{reply}");
        assert_eq!(out, "");
    }
}

#[test]
fn escalate_passes_stdio_and_exits_with_the_status() {
    for (reply, status) in [
        (json!({"action": "Escalate"}), 5),
        (json!({"action": {"Escalate": null}}), 300),
    ] {
        let (w, stream, _req, _server) = ask(&["/bin/false", "false"], &[]);
        write_frame(&stream, &reply);
        let (msg, fds) = read_frame(&stream);
        assert_eq!(msg, json!({"fds": [0, 1, 2]}));
        assert_eq!(fds.len(), 3);
        // The escalated command writes through the passed descriptors.
        let mut out = std::fs::File::from(fds.into_iter().nth(1).unwrap());
        std::io::Write::write_all(&mut out, b"from the server\n").unwrap();
        drop(out);
        write_frame(&stream, &json!({ "exit_code": status }));
        let (code, out, err) = finish(w);
        assert_eq!(code, Some(status % 256), "{err}");
        assert_eq!(out, "from the server\n");
    }
}

#[test]
fn stderr_stays_usable_after_escalation() {
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    write_frame(&stream, &json!({"action": "Escalate"}));
    let (_msg, fds) = read_frame(&stream);
    drop(fds);
    write_frame(&stream, &json!({"exit": "nonsense"}));
    let (code, _out, err) = finish(w);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("execve-wrapper: invalid response from escalation server: "),
        "{err}"
    );
}

#[test]
fn a_stop_signal_while_escalated_closes_the_stream() {
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    write_frame(&stream, &json!({"action": "Escalate"}));
    let (_msg, fds) = read_frame(&stream);
    drop(fds);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
    let (code, _out, err) = finish(w);
    assert_eq!(code, Some(128 + libc::SIGTERM), "{err}");
    // The stream ends: the server would kill the command now.
    let (rest, _) = recv(stream.as_raw_fd(), 16);
    assert!(rest.is_empty(), "end of stream");
}

#[test]
fn usage_and_help() {
    for args in [&[][..], &["/bin/true"][..]] {
        let (code, out, err) = finish(wrapper(None, args, &[]));
        assert_eq!(code, Some(2));
        assert!(err.starts_with("usage: execve-wrapper FILE ARGV0"), "{err}");
        assert_eq!(out, "");
    }
    let (code, out, _) = finish(wrapper(None, &["--help"], &[]));
    assert_eq!(code, Some(0));
    assert!(out.starts_with("usage: execve-wrapper FILE ARGV0"), "{out}");
}

#[test]
fn without_a_socket_it_runs_in_place() {
    for env in [&[][..], &[("CODEX_ESCALATE_SOCKET", "")][..]] {
        let (code, out, err) = finish(wrapper(None, &["/bin/echo", "-echo", "a"], env));
        assert_eq!((code, out.as_str()), (Some(0), "a\n"), "{err}");
    }
}

#[test]
fn run_in_place_errors() {
    // ENOENT → 127, EACCES → 126, each with the OS text.
    let (code, _, err) = finish(wrapper(None, &["/nonexistent/x", "x"], &[]));
    assert_eq!(code, Some(127));
    assert_eq!(
        err,
        "execve-wrapper: /nonexistent/x: No such file or directory (os error 2)\n"
    );
    let dir = crate::support::temp_dir("wrap-noexec");
    let f = dir.join("plain");
    std::fs::write(&f, "echo hi\n").unwrap();
    let fs = f.to_str().unwrap();
    let (code, _, err) = finish(wrapper(None, &[fs, "plain"], &[]));
    assert_eq!(code, Some(126));
    assert_eq!(
        err,
        format!("execve-wrapper: {fs}: Permission denied (os error 13)\n")
    );
    // ENOEXEC: an executable without `#!` runs under /bin/sh, with its arguments.
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(&f, "echo script \"$1\"\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, out, err) = finish(wrapper(None, &[fs, "plain", "arg"], &[]));
    assert_eq!((code, out.as_str()), (Some(0), "script arg\n"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cannot_reach_the_server() {
    let reach = "execve-wrapper: cannot reach the escalation server: ";
    // Not a number.
    let (code, _, err) = finish(wrapper(
        None,
        &["/bin/true", "true"],
        &[("CODEX_ESCALATE_SOCKET", "x3")],
    ));
    assert_eq!(code, Some(1));
    assert!(err.starts_with(reach), "{err}");
    // Not an open descriptor.
    let (code, _, err) = finish(wrapper(
        None,
        &["/bin/true", "true"],
        &[("CODEX_ESCALATE_SOCKET", "917")],
    ));
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(reach) && err.contains("Bad file descriptor (os error 9)"),
        "{err}"
    );
    // Not a socket.
    let f = std::fs::File::open("/dev/null").unwrap();
    let fd = OwnedFd::from(f);
    let (code, _, err) = finish(wrapper(Some(&fd), &["/bin/true", "true"], &[]));
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(reach) && err.contains("not a socket"),
        "{err}"
    );
    // A dead server: its end of the socket is closed.
    let (server, child) = socketpair(libc::SOCK_DGRAM);
    drop(server);
    let (code, _, err) = finish(wrapper(Some(&child), &["/bin/true", "true"], &[]));
    assert_eq!(code, Some(1));
    assert!(err.starts_with(reach) && err.contains("os error"), "{err}");
}

#[test]
fn non_utf8_arguments_are_refused_and_env_entries_left_out() {
    let (server, child) = socketpair(libc::SOCK_DGRAM);
    let bad = OsStr::from_bytes(b"\xff\xfe");
    let w = wrapper(
        Some(&child),
        &[OsStr::new("/bin/echo"), OsStr::new("echo"), bad],
        &[],
    );
    let (code, _, err) = finish(w);
    assert_eq!(code, Some(126));
    assert_eq!(
        err,
        "execve-wrapper: cannot ask for a decision: argument is not valid UTF-8\n"
    );
    // Environment entries that are not UTF-8 are dropped from the request.
    let w = {
        use std::os::unix::process::CommandExt;
        let fd = child.as_raw_fd();
        let mut c = std::process::Command::new(crate::support::bin());
        c.args(["execve-wrapper", "/bin/true", "true"])
            .env("CODEX_ESCALATE_SOCKET", "3")
            .env(OsStr::from_bytes(b"BAD_\xff"), "v")
            .env("GOOD", OsStr::from_bytes(b"\xff"))
            .env("FINE", "yes")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // SAFETY: only dup2 between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        c.spawn().unwrap()
    };
    let stream = accept(&server);
    let (req, _) = read_frame(&stream);
    let env = req["env"].as_object().unwrap();
    assert_eq!(env["FINE"], "yes");
    assert!(!env.contains_key("GOOD"));
    assert!(!env.keys().any(|k| k.starts_with("BAD_")));
    write_frame(&stream, &json!({"action": "Run"}));
    assert_eq!(finish(w).0, Some(0));
}

#[test]
fn the_server_closing_or_answering_badly() {
    let closed = "execve-wrapper: escalation server closed the connection\n";
    let invalid = "execve-wrapper: invalid response from escalation server: ";
    // End of stream instead of a reply.
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    drop(stream);
    let (code, _, err) = finish(w);
    assert_eq!((code, err.as_str()), (Some(1), closed));
    // The stream ends inside a frame.
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    send(stream.as_raw_fd(), &[9, 0, 0, 0, b'{'], &[]);
    drop(stream);
    let (code, _, err) = finish(w);
    assert_eq!((code, err.as_str()), (Some(1), closed));
    // Not JSON, not an action, an oversized frame.
    for body in [
        &b"not json"[..],
        br#"{"action":"Fly"}"#,
        br#"{"action":{}}"#,
    ] {
        let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
        write_raw_frame(&stream, body, &[]);
        let (code, _, err) = finish(w);
        assert_eq!(code, Some(1));
        assert!(err.starts_with(invalid), "{err}");
    }
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    send(
        stream.as_raw_fd(),
        &(16 * 1024 * 1024 + 1u32).to_le_bytes(),
        &[],
    );
    let (code, _, err) = finish(w);
    assert_eq!(code, Some(1));
    assert!(err.starts_with(invalid) && err.contains("exceeds"), "{err}");
    // The stream ends while the escalated command "runs".
    let (w, stream, _req, _server) = ask(&["/bin/true", "true"], &[]);
    write_frame(&stream, &json!({"action": "Escalate"}));
    drop(read_frame(&stream));
    drop(stream);
    let (code, _, err) = finish(w);
    assert_eq!((code, err.as_str()), (Some(1), closed));
}

#[test]
fn concurrent_wrappers_use_separate_streams() {
    let (server, child) = socketpair(libc::SOCK_DGRAM);
    let a = wrapper(Some(&child), &["/bin/echo", "echo", "a"], &[]);
    let b = wrapper(Some(&child), &["/bin/echo", "echo", "b"], &[]);
    let s1 = accept(&server);
    let s2 = accept(&server);
    let (r1, _) = read_frame(&s1);
    let (r2, _) = read_frame(&s2);
    // Answer in the opposite order.
    for (s, r) in [(&s2, &r2), (&s1, &r1)] {
        let deny = r["argv"][1] == "a";
        if deny {
            write_frame(s, &json!({"action": {"Deny": {"reason": "a is denied"}}}));
        } else {
            write_frame(s, &json!({"action": "Run"}));
        }
    }
    let (ca, oa, ea) = finish(a);
    let (cb, ob, _) = finish(b);
    assert_eq!(
        (ca, oa.as_str(), ea.as_str()),
        (Some(1), "", "Execution denied: a is denied\n")
    );
    assert_eq!((cb, ob.as_str()), (Some(0), "b\n"));
}
