//! The process sandbox, attacked (PROTOCOL.md §8.6): for every rule a sandboxed
//! command tries the allowed action and the denied one, and the test then checks
//! the outside world is unchanged. Probes are small shell and python3 scripts.

#[path = "it/harness.rs"]
mod harness;

use harness::{assert_error, Server};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A workspace (the writable root) and an outside directory that the server's
/// user could write without the sandbox. Outside is not under /tmp, which the
/// workspace-write policy makes writable.
struct Dirs {
    ws: PathBuf,
    out: PathBuf,
}

impl Dirs {
    fn new(name: &str) -> Dirs {
        let id = harness::unique(name);
        let ws = std::env::temp_dir().join(format!("tether-sbx-ws-{id}"));
        let out = PathBuf::from("/var/tmp").join(format!("tether-sbx-out-{id}"));
        fs::create_dir_all(ws.join(".git")).unwrap();
        fs::write(ws.join(".git/config"), "[core]\n").unwrap();
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("f"), "outside\n").unwrap();
        for d in [&ws, &out] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        Dirs {
            ws: fs::canonicalize(&ws).unwrap(),
            out: fs::canonicalize(&out).unwrap(),
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.ws);
        let _ = fs::remove_dir_all(&self.out);
    }
}

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// The context the Codex CLI 0.169 sends with `-s workspace-write` (§8.5).
fn workspace_write(ws: &Path) -> Value {
    json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
        {"path":{"type":"special","value":{"kind":"project_roots"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"slash_tmp"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"tmpdir"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"project_roots","subpath":".git"}},"access":"read","missing_path_behavior":"skip"},
        {"path":{"type":"special","value":{"kind":"project_roots","subpath":".agents"}},"access":"read","missing_path_behavior":"skip"},
        {"path":{"type":"special","value":{"kind":"project_roots","subpath":".codex"}},"access":"read","missing_path_behavior":"skip"},
        {"path":{"type":"special","value":{"kind":"project_roots","subpath":".aws"}},"access":"read","missing_path_behavior":"skip"}]},
        "network":"restricted"},
        "cwd": uri(ws), "workspaceRoots": [uri(ws)], "windowsSandboxLevel":"disabled"})
}

struct Outcome {
    result: Value,
    /// stdout, then stderr.
    output: String,
    stdout: String,
    exit_code: i64,
    sandbox_denied: bool,
}

/// Run `script` with `sh -c` in `cwd` under `sandbox`.
fn sh(s: &mut Server, id: &str, cwd: &Path, sandbox: &Value, script: &str) -> Outcome {
    let result = s.start_ok(
        id,
        &["/bin/sh", "-c", script],
        json!({"cwd": uri(cwd), "sandbox": sandbox}),
    );
    let run = harness::Run::from_events(s.collect_until_closed(id));
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let mut output = stdout.clone();
    output.push_str(&String::from_utf8_lossy(&run.stderr));
    Outcome {
        result,
        output,
        stdout,
        exit_code: run.exited["exitCode"].as_i64().unwrap(),
        sandbox_denied: run.exited["sandboxDenied"].as_bool().unwrap(),
    }
}

fn py(s: &mut Server, id: &str, cwd: &Path, sandbox: &Value, code: &str) -> Outcome {
    sh(s, id, cwd, sandbox, &format!("exec python3 -c '{code}'"))
}

#[test]
fn start_result_reports_what_is_enforced() {
    let d = Dirs::new("report");
    let mut s = Server::ready();
    let o = sh(&mut s, "r", &d.ws, &workspace_write(&d.ws), "true");
    assert_eq!(o.result["sandboxType"], "linuxSeccomp");
    let rep = &o.result["sandbox"];
    assert_eq!(rep["mode"], "strict");
    assert_eq!(rep["seccomp"], true);
    assert_eq!(rep["noNewPrivs"], true);
    assert_eq!(rep["mountNamespace"], true);
    assert_eq!(rep["network"], "restricted");
    assert_eq!(rep["unenforced"], json!([]));
    assert!(
        rep["landlock"] == "full" || rep["landlock"] == "partial",
        "{rep}"
    );
    // No sandbox: no report, sandboxType none.
    let r = s.start_ok("n", &["true"], json!({}));
    assert_eq!(r["sandboxType"], "none");
    assert!(r.get("sandbox").is_none());
    s.collect_until_closed("n");
    // A context that allows everything: nothing applied, but reported.
    let r = s.start_ok(
        "d",
        &["true"],
        json!({"sandbox": {"permissions": {"type": "disabled"}}}),
    );
    assert_eq!(r["sandboxType"], "none");
    assert_eq!(r["sandbox"]["seccomp"], false);
    s.collect_until_closed("d");
}

#[test]
fn writes_inside_the_workspace_and_not_outside() {
    let d = Dirs::new("write");
    let mut s = Server::ready();
    let script = format!(
        "echo in > inside.txt && echo out > {}/new.txt",
        d.out.display()
    );
    let o = sh(&mut s, "w", &d.ws, &workspace_write(&d.ws), &script);
    assert_eq!(fs::read_to_string(d.ws.join("inside.txt")).unwrap(), "in\n");
    assert!(!d.out.join("new.txt").exists(), "{}", o.output);
    assert!(o.output.contains("Permission denied"), "{}", o.output);
    assert_ne!(o.exit_code, 0);
    assert!(o.sandbox_denied);
    // Reading outside is allowed (root: read).
    let o = sh(
        &mut s,
        "r",
        &d.ws,
        &workspace_write(&d.ws),
        &format!("cat {}/f", d.out.display()),
    );
    assert_eq!(o.output, "outside\n");
    assert_eq!(o.exit_code, 0);
    assert!(!o.sandbox_denied);
}

#[test]
fn carve_outs_are_read_only_and_missing_ones_cannot_be_created() {
    let d = Dirs::new("carve");
    let mut s = Server::ready();
    let o = sh(
        &mut s,
        "c",
        &d.ws,
        &workspace_write(&d.ws),
        "cat .git/config; echo x >> .git/config; rm -f .git/config; mv .git .git-moved; touch .git/new; mkdir .codex; touch .codex/x; mkdir -p .agents/skills; echo ok > fine.txt",
    );
    assert!(o.output.starts_with("[core]\n"), "{}", o.output);
    assert_eq!(
        fs::read_to_string(d.ws.join(".git/config")).unwrap(),
        "[core]\n",
        "{}",
        o.output
    );
    assert!(!d.ws.join(".git/new").exists());
    assert!(!d.ws.join(".git-moved").exists());
    assert_eq!(fs::read_to_string(d.ws.join("fine.txt")).unwrap(), "ok\n");
    // The placeholders for the missing names are gone once the process closed.
    for name in [".codex", ".agents", ".aws"] {
        assert!(
            !d.ws.join(name).exists(),
            "{name} was left behind: {}",
            o.output
        );
    }
}

#[test]
fn symlinks_and_dotdot_do_not_leave_the_workspace() {
    let d = Dirs::new("links");
    std::os::unix::fs::symlink(&d.out, d.ws.join("out-dir")).unwrap();
    std::os::unix::fs::symlink(d.out.join("f"), d.ws.join("out-file")).unwrap();
    fs::create_dir_all(d.out.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.out.join("sub"), d.ws.join("out-sub")).unwrap();
    std::os::unix::fs::symlink(d.ws.join(".git"), d.ws.join("git-link")).unwrap();
    let mut s = Server::ready();
    let o = sh(
        &mut s,
        "l",
        &d.ws,
        &workspace_write(&d.ws),
        "echo x > out-dir/new; echo x >> out-file; echo x > out-sub/../dotdot; echo x > git-link/config; ln -s /etc newlink && echo x > newlink/evil; cat out-file",
    );
    assert!(!d.out.join("new").exists());
    assert!(!d.out.join("dotdot").exists());
    assert_eq!(fs::read_to_string(d.out.join("f")).unwrap(), "outside\n");
    assert_eq!(
        fs::read_to_string(d.ws.join(".git/config")).unwrap(),
        "[core]\n"
    );
    assert!(!Path::new("/etc/evil").exists());
    // Reading through a link is allowed.
    assert_eq!(o.stdout, "outside\n", "{}", o.output);
}

#[test]
fn hard_links_rename_and_truncate_across_the_boundary() {
    let d = Dirs::new("hard");
    // A hard link made before the sandbox: writing through it is allowed, as in the
    // reference (documented in PROTOCOL.md §8.10).
    fs::write(d.out.join("linked"), "before\n").unwrap();
    fs::hard_link(d.out.join("linked"), d.ws.join("linked")).unwrap();
    fs::write(d.ws.join("mine"), "mine\n").unwrap();
    let mut s = Server::ready();
    let script = format!(
        "echo through >> linked; ln {out}/f new-hard; mv mine {out}/; mv {out}/f stolen; truncate -s 0 {out}/f; : > {out}/f",
        out = d.out.display()
    );
    let o = sh(&mut s, "h", &d.ws, &workspace_write(&d.ws), &script);
    assert_eq!(
        fs::read_to_string(d.out.join("linked")).unwrap(),
        "before\nthrough\n",
        "{}",
        o.output
    );
    assert!(
        !d.ws.join("new-hard").exists(),
        "a new hard link to an outside file: {}",
        o.output
    );
    assert!(d.ws.join("mine").exists() && !d.out.join("mine").exists());
    assert!(!d.ws.join("stolen").exists());
    assert_eq!(
        fs::read_to_string(d.out.join("f")).unwrap(),
        "outside\n",
        "{}",
        o.output
    );
}

#[test]
fn proc_self_fd_and_root_do_not_reopen_for_writing() {
    let d = Dirs::new("proc");
    let mut s = Server::ready();
    let f = d.out.join("f");
    let code = format!(
        "import os\nfd = os.open(\"{f}\", os.O_RDONLY)\nfor p in (\"/proc/self/fd/%d\" % fd, \"/proc/self/root{f}\"):\n    try:\n        os.open(p, os.O_WRONLY | os.O_TRUNC); print(\"opened\", p)\n    except OSError as e:\n        print(\"denied\", e.errno)\n",
        f = f.display()
    );
    let o = py(&mut s, "p", &d.ws, &workspace_write(&d.ws), &code);
    assert_eq!(o.output.matches("denied 13").count(), 2, "{}", o.output);
    assert_eq!(fs::read_to_string(&f).unwrap(), "outside\n");
}

#[test]
fn deny_entries_hide_paths() {
    let d = Dirs::new("deny");
    fs::create_dir_all(d.ws.join("secrets")).unwrap();
    fs::write(d.ws.join("secrets/key"), "k\n").unwrap();
    fs::write(d.ws.join("id.pem"), "pem\n").unwrap();
    let sandbox = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
        {"path":{"type":"path","path":uri(&d.ws)},"access":"write"},
        {"path":{"type":"path","path":uri(&d.ws.join("secrets"))},"access":"deny"},
        {"path":{"type":"glob_pattern","pattern":format!("{}/**/*.pem", d.ws.display())},"access":"deny"}]}},
        "cwd": uri(&d.ws)});
    let mut s = Server::ready();
    let o = sh(
        &mut s,
        "d",
        &d.ws,
        &sandbox,
        "cat secrets/key; ls secrets; cat id.pem; echo x > secrets/new; echo ok > visible.txt",
    );
    assert!(
        !o.output.contains("k\n") && !o.output.contains("pem\n"),
        "{}",
        o.output
    );
    assert!(!d.ws.join("secrets/new").exists());
    assert_eq!(fs::read_to_string(d.ws.join("secrets/key")).unwrap(), "k\n");
    assert_eq!(
        fs::read_to_string(d.ws.join("visible.txt")).unwrap(),
        "ok\n"
    );
}

#[test]
fn network_is_restricted_and_enabled_when_asked() {
    let d = Dirs::new("net");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let uport = udp.local_addr().unwrap().port();
    let abstract_name = format!("tether-test-{}", harness::unique("abs"));
    let abs = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    abs.set_nonblocking(true).unwrap();
    let code = format!(
        "import socket\ndef t(name, f):\n    try:\n        f(); print(name, \"ok\")\n    except OSError as e:\n        print(name, \"denied\", e.errno)\n\
t(\"connect\", lambda: socket.create_connection((\"127.0.0.1\", {port}), timeout=2))\n\
t(\"bind\", lambda: socket.socket().bind((\"127.0.0.1\", 0)))\n\
t(\"udp\", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\"x\", (\"127.0.0.1\", {uport})))\n\
t(\"abstract\", lambda: socket.socket(socket.AF_UNIX).connect(\"\\0{abstract_name}\"))\n\
t(\"unixpair\", lambda: socket.socketpair())\n"
    );
    let mut s = Server::ready();
    let o = py(&mut s, "n", &d.ws, &workspace_write(&d.ws), &code);
    for probe in ["connect", "bind", "udp", "abstract"] {
        assert!(
            o.output.contains(&format!("{probe} denied 1")),
            "{probe}: {}",
            o.output
        );
    }
    assert!(o.output.contains("unixpair ok"), "{}", o.output);
    assert!(listener.accept().is_err(), "a connection got through");
    assert!(
        abs.accept().is_err(),
        "an abstract unix connection got through"
    );
    let mut buf = [0u8; 4];
    assert!(udp.recv(&mut buf).is_err(), "a datagram got through");

    // Network enabled: the same connect works (filesystem still restricted).
    let mut enabled = workspace_write(&d.ws);
    enabled["permissions"]["network"] = json!("enabled");
    let o = py(&mut s, "e", &d.ws, &enabled, &code);
    assert!(o.output.contains("connect ok"), "{}", o.output);
}

#[test]
fn ptrace_io_uring_and_signals_to_the_server_are_refused() {
    let d = Dirs::new("ptrace");
    let mut s = Server::ready();
    let server = s.pid();
    let code = format!(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
r = libc.ptrace(16, {server}, 0, 0); print(\"ptrace\", r, ctypes.get_errno())\n\
buf = ctypes.create_string_buffer(120)\nr = libc.syscall(425, 4, buf); print(\"io_uring\", r, ctypes.get_errno())\n\
try:\n    os.kill({server}, 15); print(\"kill ok\")\nexcept OSError as e:\n    print(\"kill denied\", e.errno)\n\
print(open(\"/proc/self/status\").read())\n"
    );
    let o = py(&mut s, "t", &d.ws, &workspace_write(&d.ws), &code);
    assert!(o.output.contains("ptrace -1 1\n"), "{}", o.output);
    assert!(o.output.contains("io_uring -1 1\n"), "{}", o.output);
    assert!(o.output.contains("kill denied 1"), "{}", o.output);
    assert!(o.output.contains("NoNewPrivs:\t1"), "{}", o.output);
    assert!(o.output.contains("Seccomp:\t2"), "{}", o.output);
    // The server is alive and serving.
    assert_eq!(
        s.call("environment/status", json!({})),
        json!({"status":"ready"})
    );
}

#[test]
fn an_unprivileged_server_sandboxes_the_same_way() {
    let d = Dirs::new("nobody");
    // nobody must own the carve-out to make its own namespace mounts on it.
    let nobody = (65534, 65534);
    for p in [&d.ws, &d.ws.join(".git"), &d.ws.join(".git/config")] {
        std::os::unix::fs::chown(p, Some(nobody.0), Some(nobody.1)).unwrap();
    }
    let mut s = Server::builder()
        .cwd("/")
        .run_as(nobody.0, nobody.1)
        .spawn();
    s.initialize();
    let script = format!(
        "id -u; echo in > inside.txt; echo out > {}/new.txt; echo x >> .git/config; mkdir .codex",
        d.out.display()
    );
    let o = sh(&mut s, "u", &d.ws, &workspace_write(&d.ws), &script);
    assert!(o.output.starts_with("65534\n"), "{}", o.output);
    assert_eq!(o.result["sandbox"]["mountNamespace"], true, "{}", o.result);
    assert_eq!(
        fs::read_to_string(d.ws.join("inside.txt")).unwrap(),
        "in\n",
        "{}",
        o.output
    );
    assert!(!d.out.join("new.txt").exists(), "{}", o.output);
    assert_eq!(
        fs::read_to_string(d.ws.join(".git/config")).unwrap(),
        "[core]\n",
        "{}",
        o.output
    );
    assert!(!d.ws.join(".codex").exists());
}

#[test]
fn contexts_that_cannot_be_enforced_or_decoded_are_refused() {
    let d = Dirs::new("refuse");
    let mut s = Server::ready();
    let start = |s: &mut Server, id: &str, sandbox: Value, extra: Value| {
        let mut p = json!({"cwd": uri(&d.ws), "sandbox": sandbox});
        if let Value::Object(e) = extra {
            for (k, v) in e {
                p[k] = v;
            }
        }
        s.start_process(id, &["true"], p)
    };
    // Legacy workspace-write without cwd.
    let r = start(
        &mut s,
        "a",
        json!({"permissions":{"type":"workspace-write"}}),
        json!({}),
    );
    assert_error(
        &r,
        -32600,
        "file system sandbox context with dynamic permissions requires cwd",
    );
    // A glob that is not deny.
    let glob = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"restricted","entries":[
        {"path":{"type":"glob_pattern","pattern":"/x/*"},"access":"read"}]}}});
    let r = start(&mut s, "b", glob, json!({}));
    assert_error(
        &r,
        -32600,
        "sandbox cannot be enforced: glob_pattern entries are only supported with deny access",
    );
    // Unknown policy type: params.
    let r = start(
        &mut s,
        "c",
        json!({"permissions":{"type":"sometimes"}}),
        json!({}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A read-only carve-out whose parent is missing: strict refuses, best-effort runs.
    let missing = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
        {"path":{"type":"path","path":uri(&d.ws)},"access":"write"},
        {"path":{"type":"path","path":uri(&d.ws.join("no/such/dir"))},"access":"read"}]}}, "cwd": uri(&d.ws)});
    let r = start(&mut s, "d", missing.clone(), json!({}));
    assert_error(
        &r,
        -32600,
        &format!(
            "sandbox cannot be enforced: cannot protect missing path `{}` because its parent does not exist; set sandboxMode to \"best-effort\" to run anyway",
            d.ws.join("no/such/dir").display()
        ),
    );
    let r = start(&mut s, "e", missing, json!({"sandboxMode": "best-effort"}));
    let rep = &r["result"]["sandbox"];
    assert_eq!(rep["mode"], "best-effort", "{r}");
    assert_eq!(
        rep["unenforced"],
        json!([format!(
            "readOnlyPath:{}",
            d.ws.join("no/such/dir").display()
        )])
    );
    s.collect_until_closed("e");
    // A failed start leaves no record.
    let r = s.request("process/read", json!({"processId": "d"}));
    assert_error(&r, -32600, "unknown process id d");
}
