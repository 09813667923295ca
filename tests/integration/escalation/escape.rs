//! Attempts to get out of a sandboxed shell through exec escalation (issue 14):
//! workspace-written programs under a basename rule, links into and out of the
//! workspace, loader and interpreter variables, descriptor floods on the
//! escalation socket, and fd 3 used to reach other sockets. Each test fails on a
//! server without the matching rule. Servers run as root, and as `nobody` where
//! the rule depends on the user.

use crate::support::escalation::*;
use crate::support::{self, Server};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn an_unprivileged_shell_gets_no_basename_escalation_for_what_it_owns() {
    let mut d = Dirs::new("nobody");
    let own = d.extra("own");
    let (ws, out) = (d.ws.clone(), d.out.clone());
    // Outside the writable roots, but owned by the shell's user.
    probe(&own.join("ls"), &out, "a");
    d.chown_all(NOBODY);
    std::os::unix::fs::chown(own.join("ls"), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    let mut s = Server::builder()
        .cwd("/")
        .run_as(NOBODY.0, NOBODY.1)
        .spawn();
    s.initialize();
    let bin = support::bin();
    let wrapper = bin.to_str().unwrap();
    let own_ls = own.join("ls");
    let sh_cmd = format!("echo b > {}/b && echo b:escaped", out.display());
    let base =
        json!({"cwd": uri(&ws), "sandbox": sandbox(&ws), "escalation": allow(&["ls", "sh"])});
    // The wrapper itself is the shell here: bash is under /root, out of reach.
    let r = s.run(
        "own",
        &[wrapper, "execve-wrapper", own_ls.to_str().unwrap(), "ls"],
        base.clone(),
    );
    assert_eq!(r.stdout_str(), "a:confined\n", "{}", r.stderr_str());
    let r = s.run(
        "sys",
        &[wrapper, "execve-wrapper", "/bin/sh", "sh", "-c", &sh_cmd],
        base,
    );
    assert_eq!(r.stdout_str(), "b:escaped\n", "{}", r.stderr_str());
    assert!(!out.join("a").exists());
    // Named by its full path, the same program is escalated without a prompt:
    // the sandboxed shell itself cannot write there.
    let full = json!({"cwd": uri(&ws), "sandbox": sandbox(&ws),
                      "escalation": {"rules": [{"prefix": [own_ls.to_str().unwrap()], "decision": "allow"}]}});
    let r = s.run(
        "full",
        &[wrapper, "execve-wrapper", own_ls.to_str().unwrap(), "ls"],
        full,
    );
    assert_eq!(r.stdout_str(), "a:escaped\n", "{}", r.stderr_str());
}

/// A Python escalation client on fd 3 (docs/protocol.md, "Exec escalation"),
/// for requests no wrapper would send.
const CLIENT: &str = r#"
import json, os, socket, struct, sys
esc = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fileno=3)
def stream():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    socket.send_fds(esc, [b"\0"], [b.fileno()])
    b.close()
    return a
def send(s, obj, fds=()):
    body = json.dumps(obj).encode()
    data = struct.pack("<I", len(body)) + body
    # sendmsg/recvmsg only: the sandbox's seccomp filter refuses sendto/recvfrom.
    n = socket.send_fds(s, [data], list(fds))
    while n < len(data):
        n += s.sendmsg([data[n:]])
def recv(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recvmsg(n - len(b))[0]
            if not c:
                raise SystemExit("closed")
            b += c
        return b
    n = struct.unpack("<I", exact(4))[0]
    return json.loads(exact(n))
"#;

#[test]
fn malformed_environment_names_do_not_smuggle_loader_variables() {
    let mut s = Server::ready();
    let script = format!(
        "{CLIENT}
a = stream()
send(a, {{'file': '/usr/bin/env', 'argv': ['env'], 'workdir': '/',
         'env': {{'LD_PRELOAD=/nonexistent/x.so:': '', 'LD_PRELOAD': '/nonexistent/y.so',
                 'OK_VAR': '1'}}}})
assert recv(a)['action'] == 'Escalate'
send(a, {{'fds': [1, 2]}}, [1, 2])
sys.stdout.flush()
print('exit', recv(a)['exit_code'])
"
    );
    let r = s.run(
        "mal",
        &[PYTHON, "-c", &script],
        json!({"escalation": allow(&["env"])}),
    );
    let out = r.stdout_str();
    assert!(
        out.contains("\nOK_VAR=1\n") || out.starts_with("OK_VAR=1\n"),
        "{out}"
    );
    assert!(!out.contains("LD_PRELOAD"), "{out}");
    assert!(out.ends_with("exit 0\n"), "{out}\n{}", r.stderr_str());
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The flood: 3,000 handshakes that all pass the same never-answering stream,
/// messages with 16 and 200 descriptors, and request headers sent a byte at a
/// time with 16 descriptors each; then a fresh wrapper stream, which must be
/// refused while the others hold every slot; then it holds everything open.
const FLOOD: &str = r#"
def tr(f):
    try:
        f()
    except OSError:
        pass
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
junk = [os.open("/dev/null", os.O_RDONLY) for _ in range(200)]
for i in range(3000):
    tr(lambda: socket.send_fds(esc, [b"\0"], [b.fileno()]))
    if i == 10:
        for _ in range(4):
            tr(lambda: socket.send_fds(a, [b"\1"], junk[:16]))
    if i % 100 == 0:
        tr(lambda: socket.send_fds(esc, [b"\0"], junk[:16]))
        tr(lambda: socket.send_fds(esc, [b"\0"], junk))
t = stream()
send(t, {'file': '/bin/true', 'argv': ['true'], 'workdir': '/'})
print('flooded', json.dumps(recv(t)), flush=True)
import time
time.sleep(60)
"#;

fn flood_keeps_the_server_usable(mut s: Server, ws: &Path) {
    let pid = s.pid();
    let before = open_fds(pid);
    let file = ws.join("f.txt");
    std::fs::write(&file, "still here").unwrap();
    let script = format!("{CLIENT}{FLOOD}");
    s.start_ok(
        "flood",
        &[PYTHON, "-c", &script],
        json!({"cwd": uri(ws), "sandbox": sandbox(ws), "escalation": {}}),
    );
    let events = s.wait_output_contains("flood", "flooded", Duration::from_secs(60));
    let out = String::from_utf8_lossy(&support::output_bytes(&events, Some("stdout"))).into_owned();
    assert!(
        out.contains(r#"flooded {"action": {"Deny": {"reason": "too many escalation requests at once (at most 64 per shell)"}}}"#),
        "{out}"
    );
    let during = open_fds(pid);
    // 64 streams in flight and the server's own descriptors for two processes.
    assert!(
        during <= before + 64 + 40,
        "the server holds {during} descriptors (before the flood: {before})"
    );
    let started = Instant::now();
    let r = s.run("after", &["/bin/echo", "ok"], json!({}));
    assert_eq!(r.stdout_str(), "ok\n");
    let got = s.call("fs/readFile", json!({"path": file.to_str().unwrap()}));
    assert_eq!(
        support::unb64(got["dataBase64"].as_str().unwrap()),
        b"still here"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    s.call("process/terminate", json!({"processId": "flood"}));
    s.collect_until_closed("flood");
}

#[test]
fn a_descriptor_flood_on_the_escalation_socket_leaves_other_requests_working() {
    let d = Dirs::new("flood");
    let s = Server::builder().nofile(1024).spawn();
    let mut s = s;
    s.initialize();
    flood_keeps_the_server_usable(s, &d.ws);
}

#[test]
fn a_descriptor_flood_from_an_unprivileged_shell() {
    let d = Dirs::new("flood-nobody");
    d.chown_all(NOBODY);
    let mut s = Server::builder()
        .cwd("/")
        .nofile(1024)
        .run_as(NOBODY.0, NOBODY.1)
        .spawn();
    s.initialize();
    flood_keeps_the_server_usable(s, &d.ws);
}

#[test]
fn the_soft_descriptor_limit_is_raised_for_the_server_only() {
    let s = Server::builder()
        .program("/usr/bin/prlimit")
        .args([
            "--nofile=256:4096".into(),
            support::bin().into_os_string(),
            "exec-server".into(),
        ])
        .spawn();
    let mut s = s;
    s.initialize();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(line, "Max open files 4096 4096 files");
    // Children get the limit the server was started with back.
    let r = s.run(
        "lim",
        &["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"],
        json!({}),
    );
    assert_eq!(r.stdout_str(), "256\n4096\n");
}

/// Bind a datagram socket at `path`, open to everyone.
fn listener(path: &Path) -> std::os::unix::net::UnixDatagram {
    let l = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    l.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    l
}

fn fd3_cannot_reach(mut s: Server, d: &Dirs) {
    let path = d.out.join("log.sock");
    let l = listener(&path);
    let script = format!(
        "{CLIENT}
try:
    esc.sendmsg([b'escaped'], [], 0, {p:?})
    print('sent')
except OSError as e:
    print('refused', e.errno)
",
        p = path.to_str().unwrap()
    );
    let r = s.run(
        "fd3",
        &[PYTHON, "-c", &script],
        json!({"cwd": uri(&d.ws), "sandbox": sandbox(&d.ws), "escalation": {}}),
    );
    assert!(
        r.stdout_str().starts_with("sent") || r.stdout_str().starts_with("refused"),
        "{}\n{}",
        r.stdout_str(),
        r.stderr_str()
    );
    let mut buf = [0u8; 64];
    match l.recv(&mut buf) {
        Ok(n) => panic!(
            "the sandboxed shell reached {} through fd 3: {:?}",
            path.display(),
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
}

#[test]
fn the_escalation_socket_cannot_send_to_other_sockets() {
    let d = Dirs::new("fd3");
    fd3_cannot_reach(Server::ready(), &d);
}

#[test]
fn the_escalation_socket_cannot_send_to_other_sockets_unprivileged() {
    let d = Dirs::new("fd3-nobody");
    d.chown_all(NOBODY);
    let mut s = Server::builder()
        .cwd("/")
        .run_as(NOBODY.0, NOBODY.1)
        .spawn();
    s.initialize();
    fd3_cannot_reach(s, &d);
}

#[test]
fn a_handshake_with_something_other_than_a_stream_is_ignored() {
    let mut s = Server::ready();
    // The shell passes its own stdout pipe as the "stream": the server must
    // leave it alone (before, it was switched to non-blocking and read from).
    let script = format!(
        "{CLIENT}
import fcntl, time
socket.send_fds(esc, [b'\\0'], [1])
time.sleep(0.3)
print('nonblock', bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK), flush=True)
t = stream()
send(t, {{'file': '/bin/true', 'argv': ['true'], 'workdir': '/'}})
print(json.dumps(recv(t)))
"
    );
    let r = s.run("pipe", &[PYTHON, "-c", &script], json!({"escalation": {}}));
    assert_eq!(
        r.stdout_str(),
        "nonblock False\n{\"action\": \"Run\"}\n",
        "{}",
        r.stderr_str()
    );
}
