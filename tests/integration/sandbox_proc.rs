//! The process sandbox, attacked (docs/protocol.md "Sandbox"): for every rule a sandboxed
//! command tries the allowed action and the denied one, and the test then checks
//! the outside world is unchanged. Probes are small shell and python3 scripts.

use crate::support::wire::assert_start_error;
use crate::support::{self, assert_error, Server};
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
        let id = support::unique(name);
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

/// The context the Codex CLI 0.169 sends with `-s workspace-write` (docs/protocol.md "Sandbox").
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
    let run = support::Run::from_events(s.collect_until_closed(id));
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
        "cat .git/config; echo x >> .git/config; rm -f .git/config; mv .git .git-moved; touch .git/new; mkdir .codex; touch .codex/x; mkdir -p .agents/skills; umount .git; umount -l .git; mount -o remount,rw .git; echo again >> .git/config; echo ok > fine.txt",
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
    // reference (documented in docs/protocol.md "Sandbox").
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
    let abstract_name = format!("tether-test-{}", support::unique("abs"));
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
fn root_powers_that_step_around_the_sandbox_are_dropped() {
    let d = Dirs::new("caps");
    let mut s = Server::ready();
    // As root: a block device node in the writable workspace would give raw disk
    // access; kernel modules and mounts are out too.
    let code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
try:\n    os.mknod(\"disk\", 0o600 | 0o060000, os.makedev(8, 0)); print(\"mknod ok\")\nexcept OSError as e:\n    print(\"mknod denied\", e.errno)\n\
r = libc.syscall(175, None, 0, b\"\"); print(\"init_module\", r, ctypes.get_errno())\n\
print(open(\"/proc/self/status\").read())\n";
    let o = py(&mut s, "c", &d.ws, &workspace_write(&d.ws), code);
    assert!(o.output.contains("mknod denied 1"), "{}", o.output);
    assert!(!d.ws.join("disk").exists());
    // EPERM, or ENOSYS on a kernel built without module support.
    assert!(
        o.output.contains("init_module -1 1\n") || o.output.contains("init_module -1 38\n"),
        "{}",
        o.output
    );
    let bnd = o
        .output
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .expect("CapBnd in /proc/self/status");
    for cap in [16, 17, 21, 27, 39] {
        assert_eq!(
            bnd & (1 << cap),
            0,
            "capability {cap} still in the bounding set: {bnd:x}"
        );
    }
    // Without a sandbox nothing is dropped.
    let r = s.run(
        "plain",
        &["/bin/sh", "-c", "grep CapBnd /proc/self/status"],
        json!({}),
    );
    let line = String::from_utf8_lossy(&r.stdout).into_owned();
    let plain = u64::from_str_radix(line.trim().trim_start_matches("CapBnd:").trim(), 16).unwrap();
    assert_ne!(plain & (1 << 21), 0, "{line}");
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
    // A sandbox that cannot be had says so in the error's data (as the reference).
    assert_start_error(
        &r,
        -32600,
        "sandbox cannot be enforced: glob_pattern entries are only supported with deny access",
        "sandboxUnavailable",
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
    assert_start_error(
        &r,
        -32600,
        &format!(
            "sandbox cannot be enforced: cannot protect missing path `{}` because its parent does not exist; set sandboxMode to \"best-effort\" to run anyway",
            d.ws.join("no/such/dir").display()
        ),
        "sandboxUnavailable",
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

// ---- Escapes through kernel objects no path rule covers (issue 14) -------------

/// Who runs the server in [`each_user`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum User {
    Root,
    Nobody,
}

const NOBODY: (u32, u32) = (65534, 65534);

impl User {
    fn uid(self) -> u32 {
        match self {
            User::Root => 0,
            User::Nobody => NOBODY.0,
        }
    }
}

/// Run `f` once against a server running as root and once against one running as
/// `nobody`; for `nobody` the workspace (with its `.git`) belongs to nobody, as the
/// mount layer needs for its own namespace mounts.
fn each_user(name: &str, mut f: impl FnMut(User, &mut Server, &Dirs)) {
    for user in [User::Root, User::Nobody] {
        let d = Dirs::new(&format!("{name}-{user:?}"));
        let mut s = match user {
            User::Root => Server::ready(),
            User::Nobody => {
                for p in [&d.ws, &d.ws.join(".git"), &d.ws.join(".git/config")] {
                    std::os::unix::fs::chown(p, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
                }
                let mut s = Server::builder()
                    .cwd("/")
                    .run_as(NOBODY.0, NOBODY.1)
                    .spawn();
                s.initialize();
                s
            }
        };
        f(user, &mut s, &d);
    }
}

/// A python3 prelude for probes: `t(name, f)` prints `name ok <value>` or
/// `name denied <errno>`; `sc(nr, *args)` is a raw syscall raising OSError.
const PY_PRELUDE: &str = "import ctypes, os, socket, array\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
libc.syscall.restype = ctypes.c_long\n\
def sc(nr, *args):\n    r = libc.syscall(nr, *args)\n    if r < 0:\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    return r\n\
def t(name, f):\n    try:\n        print(name, \"ok\", f())\n    except OSError as e:\n        print(name, \"denied\", e.errno)\n";

/// Run a python3 probe (the prelude, then `body`) from a file in the workspace.
fn probe(s: &mut Server, id: &str, d: &Dirs, sandbox: &Value, body: &str) -> Outcome {
    let file = d.ws.join(format!("probe-{id}.py"));
    fs::write(&file, format!("{PY_PRELUDE}{body}")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    sh(
        s,
        id,
        &d.ws,
        sandbox,
        &format!("exec python3 {}", file.display()),
    )
}

/// Run a python3 snippet as `uid` (outside any sandbox); returns its trimmed stdout.
fn py_as(uid: u32, code: &str) -> String {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!("{PY_PRELUDE}{code}"))
        .uid(uid)
        .gid(if uid == 0 { 0 } else { NOBODY.1 })
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `user` key in the user keyring of `uid`, invalidated when dropped.
struct UserKey {
    uid: u32,
    serial: i64,
}

impl UserKey {
    fn add(uid: u32, desc: &str, payload: &str) -> UserKey {
        let out = py_as(
            uid,
            &format!(
                "print(sc({}, b\"user\", b\"{desc}\", b\"{payload}\", {}, -4))",
                libc::SYS_add_key,
                payload.len()
            ),
        );
        let serial = out.parse().unwrap_or_else(|_| panic!("add_key: {out}"));
        UserKey { uid, serial }
    }
}

impl Drop for UserKey {
    fn drop(&mut self) {
        // KEYCTL_INVALIDATE: nobody's key quota is small.
        py_as(
            self.uid,
            &format!("sc({}, 21, {})", libc::SYS_keyctl, self.serial),
        );
    }
}

#[test]
fn the_keyring_is_out_of_reach() {
    each_user("keys", |user, s, d| {
        let desc = support::unique("tether-key");
        let secret = format!("secret-{desc}");
        let key = UserKey::add(user.uid(), &desc, &secret);
        let serial = key.serial;
        let body = format!(
            "buf = ctypes.create_string_buffer(256)\n\
t(\"read\", lambda: (lambda n: buf.raw[:n])(sc({keyctl}, 11, {serial}, buf, 256)))\n\
t(\"user-keyring\", lambda: sc({keyctl}, 0, -4, 0))\n\
t(\"search\", lambda: sc({keyctl}, 10, -4, b\"user\", b\"{desc}\", 0))\n\
t(\"add\", lambda: sc({add_key}, b\"user\", b\"planted\", b\"x\", 1, -4))\n\
t(\"request\", lambda: sc({request_key}, b\"user\", b\"{desc}\", None, 0))\n",
            keyctl = libc::SYS_keyctl,
            add_key = libc::SYS_add_key,
            request_key = libc::SYS_request_key,
        );
        let o = probe(s, "k", d, &workspace_write(&d.ws), &body);
        for name in ["read", "user-keyring", "search", "add", "request"] {
            assert!(
                o.stdout.contains(&format!("{name} denied 1\n")),
                "{user:?} {name}: {}",
                o.output
            );
        }
        assert!(!o.output.contains(&secret), "{user:?}: {}", o.output);
        // Network-only sandboxes (full disk write) too.
        let mut net_only = workspace_write(&d.ws);
        net_only["permissions"]["file_system"] = json!({"type": "unrestricted"});
        let o = probe(s, "k2", d, &net_only, &body);
        assert!(
            o.stdout.contains("read denied 1\n"),
            "{user:?}: {}",
            o.output
        );
        assert!(!o.output.contains(&secret), "{user:?}: {}", o.output);
        // Unsandboxed processes keep the keyring.
        let o = probe(s, "k3", d, &Value::Null, &body);
        assert!(o.output.contains(&secret), "{user:?}: {}", o.output);
    });
}

/// A SysV shared memory segment made outside the sandbox, removed when dropped.
struct Shm {
    key: i32,
    id: i32,
    addr: *mut u8,
}

impl Shm {
    fn new(owner: u32, content: &[u8]) -> Shm {
        let key = 0x7e70_0000 | (std::process::id() as i32 & 0xffff);
        // SAFETY: plain SysV calls on a segment this test owns.
        unsafe {
            let id = libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
            assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
            let addr = libc::shmat(id, std::ptr::null(), 0) as *mut u8;
            assert_ne!(addr as isize, -1);
            std::ptr::copy_nonoverlapping(content.as_ptr(), addr, content.len());
            // Hand it to the server's user, as a process of that user would have it.
            let mut ds: libc::shmid_ds = std::mem::zeroed();
            assert_eq!(libc::shmctl(id, libc::IPC_STAT, &mut ds), 0);
            ds.shm_perm.uid = owner;
            assert_eq!(libc::shmctl(id, libc::IPC_SET, &mut ds), 0);
            Shm { key, id, addr }
        }
    }
    fn content(&self, n: usize) -> Vec<u8> {
        // SAFETY: the segment is 4096 bytes and attached for our lifetime.
        unsafe { std::slice::from_raw_parts(self.addr, n).to_vec() }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: detaching and removing our own segment.
        unsafe {
            libc::shmdt(self.addr as *const libc::c_void);
            libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

#[test]
fn sysv_ipc_and_message_queues_are_out_of_reach() {
    each_user("ipc", |user, s, d| {
        let shm = Shm::new(user.uid(), b"outside");
        let mq_name = format!("/{}", support::unique("tether-mq"));
        let cname = std::ffi::CString::new(mq_name.clone()).unwrap();
        // SAFETY: a queue this test owns, removed below.
        let mq = unsafe {
            libc::mq_open(
                cname.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_NONBLOCK,
                0o666 as libc::mode_t,
                std::ptr::null_mut::<libc::mq_attr>(),
            )
        };
        assert!(mq >= 0, "mq_open: {}", std::io::Error::last_os_error());
        let body = format!(
            "libc.shmat.restype = ctypes.c_void_p\n\
def attach(i):\n    a = libc.shmat(i, None, 0)\n    if a in (None, ctypes.c_void_p(-1).value):\n        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\n    got = ctypes.string_at(a, 7); ctypes.memmove(a, b\"INSIDE!\", 7); return got\n\
t(\"shmat-id\", lambda: attach({id}))\n\
t(\"shmget-key\", lambda: attach(sc({shmget}, {key}, 0, 0)))\n\
t(\"shmctl\", lambda: sc({shmctl}, {id}, 0, 0))\n\
t(\"shmget-new\", lambda: sc({shmctl}, sc({shmget}, 0, 4096, 0o1600), 0, 0))\n\
t(\"semget\", lambda: sc({semctl}, sc({semget}, 0, 1, 0o1600), 0, 0))\n\
t(\"msgget\", lambda: sc({msgctl}, sc({msgget}, 0, 0o1600), 0, 0))\n\
t(\"mq_open\", lambda: sc({mq_open}, b\"{mq}\", os.O_RDWR, 0, None))\n\
t(\"mq_open-new\", lambda: (sc({mq_open}, b\"{mq}-new\", os.O_RDWR | os.O_CREAT, 0o600, None), sc({mq_unlink}, b\"{mq}-new\")))\n\
t(\"mq_unlink\", lambda: sc({mq_unlink}, b\"{mq}\"))\n",
            id = shm.id,
            key = shm.key,
            shmget = libc::SYS_shmget,
            shmctl = libc::SYS_shmctl,
            semget = libc::SYS_semget,
            semctl = libc::SYS_semctl,
            msgctl = libc::SYS_msgctl,
            msgget = libc::SYS_msgget,
            mq_open = libc::SYS_mq_open,
            mq_unlink = libc::SYS_mq_unlink,
            mq = &mq_name[1..],
        );
        for (id, sandbox) in [
            ("w", workspace_write(&d.ws)),
            ("n", {
                let mut v = workspace_write(&d.ws);
                v["permissions"]["file_system"] = json!({"type": "unrestricted"});
                v
            }),
        ] {
            let o = probe(s, id, d, &sandbox, &body);
            for name in [
                "shmat-id",
                "shmget-key",
                "shmctl",
                "shmget-new",
                "semget",
                "msgget",
                "mq_open",
                "mq_open-new",
                "mq_unlink",
            ] {
                assert!(
                    o.stdout.contains(&format!("{name} denied 1\n")),
                    "{user:?} {id} {name}: {}",
                    o.output
                );
            }
            assert_eq!(shm.content(7), b"outside", "{user:?} {id}: {}", o.output);
        }
        // The queue is still there; unsandboxed processes keep SysV IPC.
        // SAFETY: our own queue.
        unsafe {
            assert_eq!(libc::mq_close(mq), 0);
            assert_eq!(libc::mq_unlink(cname.as_ptr()), 0, "the queue was removed");
        }
        let attach_only = body.split("t(\"shmget-key").next().unwrap();
        let o = probe(s, "u", d, &Value::Null, attach_only);
        assert!(
            o.stdout.contains("shmat-id ok b'outside'"),
            "{user:?}: {}",
            o.output
        );
        assert_eq!(shm.content(7), b"INSIDE!");
    });
}

#[test]
fn unix_datagrams_do_not_reach_outside_sockets() {
    each_user("dgram", |user, s, d| {
        let path = d.out.join("dgram.sock");
        let outside = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        outside.set_nonblocking(true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        let body = format!(
            "path = \"{path}\"\n\
rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array(\"i\", [0]))]\n\
def send(s, tag):\n    return s.sendmsg([tag], rights, 0, path)\n\
t(\"socket\", lambda: send(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), b\"socket\"))\n\
t(\"socket-flags\", lambda: send(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC), b\"flags\"))\n\
t(\"socket-raw\", lambda: send(socket.socket(socket.AF_UNIX, socket.SOCK_RAW), b\"raw\"))\n\
t(\"pair\", lambda: send(socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[0], b\"pair\"))\n\
t(\"pair-raw\", lambda: send(socket.socketpair(socket.AF_UNIX, socket.SOCK_RAW | socket.SOCK_CLOEXEC)[0], b\"pair-raw\"))\n\
t(\"stream\", lambda: send(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)[0], b\"stream\"))\n\
t(\"seqpacket\", lambda: send(socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)[0], b\"seqpacket\"))\n",
            path = path.display()
        );
        let o = probe(s, "g", d, &workspace_write(&d.ws), &body);
        for name in ["socket", "socket-flags", "socket-raw", "pair", "pair-raw"] {
            assert!(
                o.stdout.contains(&format!("{name} denied 1\n")),
                "{user:?} {name}: {}",
                o.output
            );
        }
        // Stream and seqpacket sockets do not send to an address.
        for name in ["stream", "seqpacket"] {
            assert!(
                o.stdout.contains(&format!("{name} denied ")),
                "{user:?} {name}: {}",
                o.output
            );
        }
        let mut buf = [0u8; 64];
        assert!(
            outside.recv(&mut buf).is_err(),
            "{user:?}: a datagram got through: {:?} {}",
            String::from_utf8_lossy(&buf),
            o.output
        );
        // With the network enabled datagram sockets stay available.
        let mut enabled = workspace_write(&d.ws);
        enabled["permissions"]["network"] = json!("enabled");
        let o = probe(s, "e", d, &enabled, &body);
        assert!(o.stdout.contains("pair ok"), "{user:?}: {}", o.output);
        assert!(outside.recv(&mut buf).is_ok(), "{user:?}: {}", o.output);
    });
}

#[test]
fn common_tools_still_work_with_the_network_restricted() {
    each_user("tools", |user, s, d| {
        let body = "import multiprocessing as mp, subprocess\n\
def child(c):\n    c.send(c.recv() * 2)\n\
def duplex():\n    a, b = mp.Pipe()\n    p = mp.Process(target=child, args=(b,)); p.start(); a.send(21); r = a.recv(); p.join(); return r\n\
def simplex():\n    r, w = mp.Pipe(duplex=False); w.send(\"one way\"); return r.recv()\n\
def pairs():\n    out = []\n    for ty in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):\n        a, b = socket.socketpair(socket.AF_UNIX, ty); a.sendmsg([b\"x\"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array(\"i\", [0]))]); out.append(b.recv(1))\n    return out\n\
def queue():\n    q = mp.Queue(); q.put(\"queued\"); return q.get(timeout=20)\n\
def pool():\n    with mp.Pool(2) as p:\n        return p.map(abs, [-1, -2, -3])\n\
def git():\n    cmd = \"mkdir repo && cd repo && git init -q && echo a > a && git add a && git -c user.name=t -c user.email=t@t commit -qm m && git log --format=%s\"\n    return subprocess.run([\"sh\", \"-c\", cmd], capture_output=True, text=True, env=dict(os.environ, HOME=os.getcwd(), PATH=\"/usr/local/bin:/usr/bin:/bin\")).stdout.strip()\n\
if __name__ == \"__main__\":\n    t(\"duplex\", duplex)\n    t(\"simplex\", simplex)\n    t(\"pairs\", pairs)\n    t(\"queue\", queue)\n    t(\"pool\", pool)\n    t(\"git\", git)\n";
        let o = probe(s, "t", d, &workspace_write(&d.ws), body);
        for want in [
            "duplex ok 42\n",
            "simplex ok one way\n",
            "pairs ok [b'x', b'x']\n",
            "queue ok queued\n",
            "pool ok [1, 2, 3]\n",
            "git ok m\n",
        ] {
            assert!(o.stdout.contains(want), "{user:?} {want}: {}", o.output);
        }
    });
}

/// x32 numbers (bit 30 set) would name the same calls with the same audit
/// architecture on kernels built with the x32 ABI, stepping around every rule.
#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscall_numbers_are_refused() {
    let d = Dirs::new("x32");
    let mut s = Server::ready();
    let body = format!(
        "t(\"x32-getpid\", lambda: sc({}))\nt(\"x32-keyctl\", lambda: sc({}, 0, -4, 0))\n",
        0x4000_0000 + libc::SYS_getpid,
        0x4000_0000 + libc::SYS_keyctl
    );
    let o = probe(&mut s, "x", &d, &workspace_write(&d.ws), &body);
    assert!(o.stdout.contains("x32-getpid denied 1\n"), "{}", o.output);
    assert!(o.stdout.contains("x32-keyctl denied 1\n"), "{}", o.output);
}

/// A pseudo-terminal pair opened outside the sandbox (another user's session).
struct OutsidePty {
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
    name: PathBuf,
}

impl OutsidePty {
    fn open(owner: u32) -> OutsidePty {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty fills two descriptors we then own.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors from openpty.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let name = fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
        std::os::unix::fs::chown(&name, Some(owner), None).unwrap();
        OutsidePty {
            master,
            slave,
            name,
        }
    }
}

#[test]
fn other_terminals_and_devices_are_out_of_reach() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    each_user("pts", |user, s, d| {
        let pty = OutsidePty::open(user.uid());
        // Another process's POSIX shared memory.
        let shm = PathBuf::from(format!("/dev/shm/{}", support::unique("tether-shm")));
        fs::write(&shm, "shm-secret").unwrap();
        std::os::unix::fs::chown(&shm, Some(user.uid()), None).unwrap();
        // Typed into the other session, waiting to be read there.
        fs::File::from(pty.master.try_clone().unwrap())
            .write_all(b"typed-secret\n")
            .unwrap();
        let body = format!(
            "def rd(p):\n    fd = os.open(p, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)\n    try:\n        return os.read(fd, 64)\n    except BlockingIOError:\n        return b\"\"\n\
t(\"read\", lambda: rd(\"{pts}\"))\n\
t(\"write\", lambda: os.write(os.open(\"{pts}\", os.O_WRONLY | os.O_NOCTTY), b\"injected\\n\"))\n\
t(\"proc-fd\", lambda: rd(\"/proc/{pid}/fd/{fd}\"))\n\
t(\"console\", lambda: rd(\"/dev/console\"))\n\
t(\"tty1\", lambda: rd(\"/dev/tty1\"))\n\
t(\"vcs\", lambda: rd(\"/dev/vcs\"))\n\
t(\"disk\", lambda: rd(\"/dev/{disk}\"))\n\
t(\"list\", lambda: \"ptmx\" in os.listdir(\"/dev/pts\"))\n\
t(\"urandom\", lambda: len(open(\"/dev/urandom\", \"rb\").read(4)))\n\
t(\"null\", lambda: open(\"/dev/null\", \"w\").write(\"x\"))\n\
t(\"shm\", lambda: len(os.listdir(\"/dev/shm\")) >= 0)\n\
t(\"host-shm\", lambda: open(\"{shm}\").read())\n\
t(\"host-shm-write\", lambda: open(\"{shm}\", \"w\").write(\"x\"))\n\
t(\"etc\", lambda: len(open(\"/etc/passwd\").read()) > 0)\n",
            pts = pty.name.display(),
            pid = std::process::id(),
            fd = pty.slave.as_raw_fd(),
            shm = shm.display(),
            disk = ["vda", "sda", "nvme0n1", "xvda"]
                .into_iter()
                .find(|n| Path::new("/dev").join(n).exists())
                .unwrap_or("vda"),
        );
        let o = probe(s, "p", d, &workspace_write(&d.ws), &body);
        let shm_text = fs::read_to_string(&shm).unwrap();
        let _ = fs::remove_file(&shm);
        assert_eq!(shm_text, "shm-secret", "{user:?}: {}", o.output);
        for name in [
            "read", "write", "proc-fd", "console", "tty1", "vcs", "disk", "host-shm",
        ] {
            assert!(
                o.stdout.contains(&format!("{name} denied ")),
                "{user:?} {name}: {}",
                o.output
            );
        }
        for want in ["read denied 13\n", "write denied 13\n"] {
            assert!(o.stdout.contains(want), "{user:?} {want}: {}", o.output);
        }
        for want in [
            "list ok True\n",
            "urandom ok 4\n",
            "null ok 1\n",
            "shm ok True\n",
            "etc ok True\n",
        ] {
            assert!(o.stdout.contains(want), "{user:?} {want}: {}", o.output);
        }
        // The input is still there for its own session, and nothing was injected.
        let mut slave = fs::File::from(pty.slave.try_clone().unwrap());
        let mut buf = [0u8; 64];
        let n = slave.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"typed-secret\n", "{user:?}");

        // The process's own terminal keeps working; the directory may be listed.
        let script = "t=$(tty); echo \"own=$t\"; echo via-path > \"$t\"; ls /dev/pts >/dev/null && echo listed";
        let r = s.start_ok(
            "own",
            &["/bin/sh", "-c", script],
            json!({"cwd": uri(&d.ws), "sandbox": workspace_write(&d.ws), "tty": true}),
        );
        assert_eq!(r["sandboxType"], "linuxSeccomp");
        let run = support::Run::from_events(s.collect_until_closed("own"));
        let out = run.pty_str();
        assert!(out.contains("own=/dev/pts/"), "{user:?}: {out}");
        assert!(out.contains("via-path"), "{user:?}: {out}");
        assert!(out.contains("listed"), "{user:?}: {out}");
    });
}

#[test]
fn protected_names_hold_whatever_they_are() {
    each_user("names", |user, s, d| {
        let own = |p: &Path| {
            std::os::unix::fs::lchown(p, Some(user.uid()), Some(user.uid())).unwrap();
        };
        // `.codex` is a link to a directory of the workspace, `.agents` a file,
        // `.aws` missing (and `.git` a directory, from `Dirs`).
        fs::create_dir(d.ws.join("real-codex")).unwrap();
        fs::write(d.ws.join("real-codex/config.toml"), "model = \"x\"\n").unwrap();
        std::os::unix::fs::symlink("real-codex", d.ws.join(".codex")).unwrap();
        fs::write(d.ws.join(".agents"), "agents\n").unwrap();
        fs::create_dir(d.ws.join("evil")).unwrap();
        for p in [
            "real-codex",
            "real-codex/config.toml",
            ".codex",
            ".agents",
            "evil",
        ] {
            own(&d.ws.join(p));
        }
        let script = "cat .codex/config.toml; rm .codex; rm -rf .codex; mv .codex moved; \
ln -s evil new-link && mv -T new-link .codex; ln -sfn evil .codex; \
echo x > .codex/new; echo y >> .codex/config.toml; \
rm .agents; mv .agents moved-agents; echo z > .agents; \
ln -s evil .aws; mkdir .aws; echo ok > fine.txt";
        let o = sh(s, "n", &d.ws, &workspace_write(&d.ws), script);
        assert!(
            o.stdout.starts_with("model = \"x\"\n"),
            "{user:?}: {}",
            o.output
        );
        assert_eq!(
            fs::read_link(d.ws.join(".codex")).unwrap(),
            Path::new("real-codex"),
            "{user:?}: {}",
            o.output
        );
        assert_eq!(
            fs::read_to_string(d.ws.join("real-codex/config.toml")).unwrap(),
            "model = \"x\"\n",
            "{user:?}: {}",
            o.output
        );
        assert!(
            !d.ws.join("real-codex/new").exists(),
            "{user:?}: {}",
            o.output
        );
        assert_eq!(
            fs::read_to_string(d.ws.join(".agents")).unwrap(),
            "agents\n"
        );
        assert!(!d.ws.join(".aws").exists(), "{user:?}: {}", o.output);
        assert!(!d.ws.join("moved").exists() && !d.ws.join("moved-agents").exists());
        assert_eq!(fs::read_dir(d.ws.join("evil")).unwrap().count(), 0);
        assert_eq!(fs::read_to_string(d.ws.join("fine.txt")).unwrap(), "ok\n");
    });
}

#[test]
fn a_dangling_protected_link_is_refused_in_strict_mode() {
    let d = Dirs::new("dangling");
    std::os::unix::fs::symlink("not-yet", d.ws.join(".codex")).unwrap();
    let mut s = Server::ready();
    let p = s.start_params(
        "s",
        &["/bin/sh", "-c", "mkdir not-yet"],
        json!({"cwd": uri(&d.ws), "sandbox": workspace_write(&d.ws)}),
    );
    let r = s.request("process/start", p);
    assert_start_error(
        &r,
        -32600,
        &format!(
            "sandbox cannot be enforced: cannot protect `{}` because it is a symbolic link to a missing path; set sandboxMode to \"best-effort\" to run anyway",
            d.ws.join(".codex").display()
        ),
        "sandboxUnavailable",
    );
    assert!(!d.ws.join("not-yet").exists());
    // Best-effort runs, says so, and still pins the link itself.
    let r = s.start_ok(
        "b",
        &["/bin/sh", "-c", "rm .codex; ln -sfn /etc .codex"],
        json!({"cwd": uri(&d.ws), "sandbox": workspace_write(&d.ws), "sandboxMode": "best-effort"}),
    );
    assert_eq!(
        r["sandbox"]["unenforced"],
        json!([format!("readOnlyPath:{}", d.ws.join(".codex").display())]),
        "{r}"
    );
    s.collect_until_closed("b");
    assert_eq!(
        fs::read_link(d.ws.join(".codex")).unwrap(),
        Path::new("not-yet")
    );
}

/// `root: write` with carve-outs (what `linuxRootWritePreservesDevices` promises,
/// docs/protocol.md "environmentInfo"): the device files a shell needs behave
/// normally, with pipes and on a terminal, and the carve-outs still hold.
#[test]
fn root_write_keeps_devices_and_carve_outs() {
    let d = Dirs::new("rootwrite");
    fs::create_dir_all(d.ws.join("ro")).unwrap();
    let sandbox = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"write"},
        {"path":{"type":"path","path":uri(&d.out)},"access":"deny"},
        {"path":{"type":"path","path":uri(&d.ws.join("ro"))},"access":"read"}]}},
        "cwd": uri(&d.ws)});
    let mut s = Server::ready();
    let script = format!(
        "echo x > /dev/null && echo null-ok; \
         head -c 4 /dev/zero | od -An -tx1; \
         head -c 8 /dev/urandom | wc -c; \
         cat '{out}/f'; echo x > ro/new; echo w > w.txt && echo write-ok",
        out = d.out.display()
    );
    let o = sh(&mut s, "rw", &d.ws, &sandbox, &script);
    assert!(o.stdout.contains("null-ok\n"), "{}", o.output);
    assert!(o.stdout.contains(" 00 00 00 00\n"), "{}", o.output);
    assert!(o.stdout.contains("8\n"), "{}", o.output);
    assert!(o.stdout.contains("write-ok\n"), "{}", o.output);
    assert!(
        !o.output.contains("outside"),
        "the denied file was read: {}",
        o.output
    );
    assert!(
        !d.ws.join("ro/new").exists(),
        "the read-only carve-out was written"
    );
    assert_eq!(fs::read_to_string(d.ws.join("w.txt")).unwrap(), "w\n");
    // On a terminal: the tty itself is usable.
    s.start_ok(
        "rwt",
        &[
            "/bin/sh",
            "-c",
            "tty >/dev/null && echo tty-ok; echo to-tty > /dev/tty",
        ],
        json!({"cwd": uri(&d.ws), "sandbox": sandbox, "tty": true}),
    );
    let run = crate::support::Run::from_events(s.collect_until_closed("rwt"));
    let out = String::from_utf8_lossy(&run.pty).into_owned();
    assert!(out.contains("tty-ok") && out.contains("to-tty"), "{out:?}");
    assert_eq!(run.exited["exitCode"], 0, "{out:?}");
}
