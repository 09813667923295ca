//! The escape suite for sandboxed filesystem requests (docs/protocol.md "Sandboxed filesystem requests"),
//! through the built binary: for each rule the allowed action succeeds, the denied
//! one fails with -32600 `Permission denied (os error 13)`, and the world outside
//! the writable roots is unchanged afterwards.
//!
//! The workspace is under /var/tmp (the workspace-write context of docs/protocol.md "Sandbox" also makes
//! /tmp writable). Key denials run twice: as the test user (root in CI) and with
//! the server running as `nobody`, owning every file involved, so that only the
//! sandbox stands between it and the outside.

use crate::support::fs::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DENIED: &str = "Permission denied (os error 13)";

/// A workspace `proj` (with `.git/config`, `src/a.txt`) next to an `outside`
/// directory (with `f`), and a server whose cwd is the workspace.
struct Fx {
    base: PathBuf,
    proj: PathBuf,
    out: PathBuf,
    s: FsServer,
}

fn chown_tree(p: &Path) {
    let _ = std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY));
    if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path());
        }
    }
}

impl Fx {
    fn new(name: &str, nobody: bool) -> Fx {
        let base = PathBuf::from(format!(
            "/var/tmp/tether-sbfs-{}-{name}{}",
            std::process::id(),
            if nobody { "-nobody" } else { "" }
        ));
        let _ = fs::remove_dir_all(&base);
        let proj = base.join("proj");
        let out = base.join("outside");
        fs::create_dir_all(proj.join(".git")).unwrap();
        fs::create_dir_all(proj.join("src")).unwrap();
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::write(proj.join(".git/config"), b"[core]\n").unwrap();
        fs::write(proj.join("src/a.txt"), b"a").unwrap();
        fs::write(out.join("f"), b"outside").unwrap();
        fs::write(out.join("sub/g"), b"deep").unwrap();
        if nobody && is_root() {
            chown_tree(&base);
        }
        let s = FsServer::start_with(Opts {
            as_nobody: nobody,
            cwd: Some(proj.clone()),
            ..Opts::default()
        });
        Fx { base, proj, out, s }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.proj.join(rel)
    }
    fn u(&self, rel: &str) -> String {
        uri(&self.p(rel))
    }

    /// The workspace-write context of docs/protocol.md "Sandbox", cwd the workspace.
    fn ww(&self) -> Value {
        ww_context(&self.proj)
    }

    /// The same plus `deny` on the outside directory and on `*.pem` in the workspace.
    fn ww_deny(&self) -> Value {
        let mut v = self.ww();
        let entries = v["permissions"]["file_system"]["entries"]
            .as_array_mut()
            .unwrap();
        entries.push(json!({"path": {"type": "path", "path": uri(&self.out)}, "access": "deny"}));
        entries.push(
            json!({"path": {"type": "path", "path": uri(&self.p("secrets"))}, "access": "deny"}),
        );
        entries.push(json!({"path": {"type": "glob_pattern", "pattern": format!("{}/**/*.pem", self.proj.display())}, "access": "deny"}));
        v
    }

    fn write(&mut self, path: &str, sb: &Value) -> Value {
        self.s.request(
            "fs/writeFile",
            json!({"path": path, "dataBase64": b64(b"pwned"), "sandbox": sb}),
        )
    }

    fn denied(&mut self, method: &str, mut params: Value, sb: &Value) {
        params["sandbox"] = sb.clone();
        self.s.expect_err(method, params, -32600, DENIED);
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn ww_context(cwd: &Path) -> Value {
    let special = |kind: &str| json!({"type": "special", "value": {"kind": kind}});
    let sub = |name: &str| {
        json!({"path": {"type": "special", "value": {"kind": "project_roots", "subpath": name}},
               "access": "read", "missing_path_behavior": "skip"})
    };
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": special("root"), "access": "read"},
            {"path": special("project_roots"), "access": "write"},
            {"path": special("slash_tmp"), "access": "write"},
            {"path": special("tmpdir"), "access": "write"},
            sub(".git"), sub(".agents"), sub(".codex"), sub(".aws")]},
        "network": "restricted"},
        "cwd": uri(cwd), "workspaceRoots": [uri(cwd)],
        "windowsSandboxLevel": "disabled", "windowsSandboxProxySettingsMode": "reconcile",
        "useLegacyLandlock": false})
}

/// Every file below `p` with its bytes, links with their targets, and directories.
fn snapshot(p: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn go(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(m) = fs::symlink_metadata(p) else {
            return;
        };
        let v = if m.file_type().is_symlink() {
            format!("link {:?}", fs::read_link(p).unwrap())
        } else if m.is_dir() {
            for e in fs::read_dir(p).unwrap().flatten() {
                go(&e.path(), out);
            }
            format!("dir {:o}", m.mode())
        } else {
            format!(
                "file {:o} {:?}",
                m.mode(),
                String::from_utf8_lossy(&fs::read(p).unwrap_or_default())
            )
        };
        out.insert(p.to_path_buf(), v);
    }
    go(p, &mut out);
    out
}

// ------------------------------------------------------------------ A.4

#[test]
fn appendix_a4_transcript() {
    let mut f = Fx::new("a4", false);
    let ww = f.ww();
    let before = snapshot(&f.out);
    let r = f.s.request(
        "fs/writeFile",
        json!({"path": f.u("src/a.txt"), "dataBase64": "aGkK", "sandbox": ww}),
    );
    assert_eq!(r["result"], json!({}), "{r}");
    assert_eq!(fs::read(f.p("src/a.txt")).unwrap(), b"hi\n");
    let notes = uri(&f.base.join("notes.txt"));
    f.denied(
        "fs/writeFile",
        json!({"path": notes, "dataBase64": "aGkK"}),
        &ww,
    );
    f.denied(
        "fs/writeFile",
        json!({"path": f.u(".git/config"), "dataBase64": "aGkK"}),
        &ww,
    );
    f.denied(
        "fs/createDirectory",
        json!({"path": f.u(".codex"), "recursive": true}),
        &ww,
    );
    symlink("/etc", f.p("link"));
    f.denied(
        "fs/writeFile",
        json!({"path": f.u("link/x"), "dataBase64": "aGkK"}),
        &ww,
    );
    f.s.expect_err(
        "fs/writeFile",
        json!({"path": f.u("new/b.txt"), "dataBase64": "aGkK", "sandbox": ww}),
        -32004,
        "No such file or directory (os error 2)",
    );
    let r = f.s.call(
        "process/start",
        json!({"processId": "sb-1", "argv": ["/bin/sh", "-c", format!("echo x > {}", f.base.join("notes.txt").display())],
               "cwd": uri(&f.proj), "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "sandbox": ww}),
    );
    assert_eq!(r["sandboxType"], json!("linuxSeccomp"), "{r}");
    let mut exited = None;
    while let Some(n) = f.s.next_notification(TIMEOUT) {
        if n.value["method"] == json!("process/exited") {
            exited = Some(n.value["params"].clone());
            break;
        }
    }
    let exited = exited.expect("process/exited");
    assert_eq!(exited["exitCode"], json!(2), "{exited}");
    assert_eq!(exited["sandboxDenied"], json!(true), "{exited}");
    while let Some(n) = f.s.next_notification(TIMEOUT) {
        if n.value["method"] == json!("process/closed") {
            break;
        }
    }
    assert!(!exists(&f.base.join("notes.txt")));
    // The process's placeholder for the missing .codex (docs/protocol.md "Sandbox") goes when it closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while exists(&f.p(".codex")) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!exists(&f.p(".codex")));
    assert!(!exists(&f.p("new")));
    assert_eq!(fs::read(f.p(".git/config")).unwrap(), b"[core]\n");
    assert_eq!(snapshot(&f.out), before);
}

// ------------------------------------------------------------------ the key denials

fn inside_outside_carve_outs(nobody: bool) {
    let mut f = Fx::new("key", nobody);
    let ww = f.ww();
    let before_out = snapshot(&f.out);
    let before_git = snapshot(&f.p(".git"));
    // Allowed inside.
    assert_eq!(f.write(&f.u("src/new.txt"), &ww)["result"], json!({}));
    assert_eq!(fs::read(f.p("src/new.txt")).unwrap(), b"pwned");
    f.s.call(
        "fs/createDirectory",
        json!({"path": f.u("made/deep"), "sandbox": ww}),
    );
    assert!(f.p("made/deep").is_dir());
    // Denied outside: write, create, remove, copy in.
    let (of, osub) = (uri(&f.out.join("f")), uri(&f.out.join("sub")));
    for (m, p) in [
        ("fs/writeFile", json!({"path": of, "dataBase64": "eA=="})),
        (
            "fs/writeFile",
            json!({"path": uri(&f.out.join("new")), "dataBase64": "eA=="}),
        ),
        (
            "fs/createDirectory",
            json!({"path": uri(&f.out.join("nd")), "recursive": false}),
        ),
        ("fs/remove", json!({"path": of})),
        ("fs/remove", json!({"path": osub, "recursive": true})),
        (
            "fs/copy",
            json!({"sourcePath": f.u("src/a.txt"), "destinationPath": uri(&f.out.join("c")), "recursive": false}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": f.u("src"), "destinationPath": uri(&f.out.join("tree")), "recursive": true}),
        ),
    ] {
        f.denied(m, p, &ww);
    }
    // Carve-outs: .git is read-only, a missing .codex cannot be created.
    for (m, p) in [
        (
            "fs/writeFile",
            json!({"path": f.u(".git/config"), "dataBase64": "eA=="}),
        ),
        (
            "fs/writeFile",
            json!({"path": f.u(".git/new"), "dataBase64": "eA=="}),
        ),
        ("fs/remove", json!({"path": f.u(".git/config")})),
        ("fs/remove", json!({"path": f.u(".git")})),
        (
            "fs/createDirectory",
            json!({"path": f.u(".codex"), "recursive": false}),
        ),
        (
            "fs/createDirectory",
            json!({"path": f.u(".codex/sub"), "recursive": true}),
        ),
        (
            "fs/writeFile",
            json!({"path": f.u(".codex"), "dataBase64": "eA=="}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": f.u("src"), "destinationPath": f.u(".agents"), "recursive": true}),
        ),
    ] {
        f.denied(m, p, &ww);
    }
    // Reading the carve-out is fine.
    let r = f.s.call(
        "fs/readFile",
        json!({"path": f.u(".git/config"), "sandbox": ww}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"[core]\n");
    // Links inside that lead outside or into .git.
    symlink(&f.out, f.p("out_abs"));
    symlink("../outside", f.p("out_rel"));
    symlink(".git", f.p("git_link"));
    symlink(f.out.join("f"), f.p("file_link"));
    symlink("src/../../outside/f", f.p("dotdot_link"));
    for path in [
        "out_abs/f",
        "out_abs/new",
        "out_rel/f",
        "git_link/config",
        "file_link",
        "dotdot_link",
    ] {
        let r = f.write(&f.u(path), &ww);
        assert_eq!(
            r["error"],
            json!({"code": -32600, "message": DENIED}),
            "{path}: {r}"
        );
    }
    // `..` after a link is lexical: out_abs/../src/b.txt is src/b.txt, inside.
    assert_eq!(
        f.write(&f.u("out_abs/../src/b.txt"), &ww)["result"],
        json!({})
    );
    assert_eq!(fs::read(f.p("src/b.txt")).unwrap(), b"pwned");
    // Reading outside through the link is allowed where the policy reads.
    let r = f.s.call(
        "fs/readFile",
        json!({"path": f.u("out_abs/f"), "sandbox": ww}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"outside");
    // Remove of a tree containing .git, and of the link (not its target).
    f.denied(
        "fs/remove",
        json!({"path": uri(&f.proj), "recursive": true}),
        &ww,
    );
    f.s.call("fs/remove", json!({"path": f.u("out_abs"), "sandbox": ww}));
    assert!(!exists(&f.p("out_abs")));
    assert!(f.p(".git/config").is_file() && f.p("src/a.txt").is_file());
    assert!(!exists(&f.p(".codex")) && !exists(&f.p(".agents")));
    assert_eq!(snapshot(&f.out), before_out, "the outside changed");
    assert_eq!(snapshot(&f.p(".git")), before_git, ".git changed");
}

#[test]
fn inside_outside_and_carve_outs() {
    inside_outside_carve_outs(false);
}

#[test]
fn inside_outside_and_carve_outs_as_nobody() {
    if !is_root() {
        return skip("not root: the unprivileged run is the one above");
    }
    inside_outside_carve_outs(true);
}

// ------------------------------------------------------------------ protected names

/// `.git`, `.codex`, `.agents` and `.aws` at the top of a writable root are
/// read-only whatever they are: here `.git` a link to a directory inside, `.aws` a
/// link to a file inside, `.agents` a dangling link, `.codex` missing. Requests
/// name them through the root as the context gives it and through its real
/// spelling; with `via_link` the context's root is a link to the real one (whose
/// real `.git` etc. were left writable before).
fn protected_names(name: &str, via_link: bool, nobody: bool) {
    let base = PathBuf::from(format!(
        "/var/tmp/tether-sbfs-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&base);
    let real = base.join("real");
    fs::create_dir_all(real.join("src/gitdir")).unwrap();
    fs::write(real.join("src/gitdir/HEAD"), b"ref").unwrap();
    fs::write(real.join("src/a.txt"), b"a").unwrap();
    fs::create_dir_all(real.join("lib")).unwrap();
    fs::write(real.join("lib/l.txt"), b"l").unwrap();
    symlink("src/gitdir", real.join(".git"));
    symlink("src/a.txt", real.join(".aws"));
    symlink("src/nowhere", real.join(".agents"));
    let link = base.join("link");
    symlink("real", &link);
    if nobody && is_root() {
        chown_tree(&base);
    }
    let root = if via_link { link.clone() } else { real.clone() };
    let mut s = FsServer::start_with(Opts {
        as_nobody: nobody,
        cwd: Some(root.clone()),
        ..Opts::default()
    });
    let ww = ww_context(&root);
    let before = snapshot(&base);
    let file = uri(&real.join("lib/l.txt"));
    let dir = uri(&real.join("lib"));
    let data = b64(b"pwned");
    for spelling in [&real, &link] {
        for prot in [".git", ".aws", ".agents", ".codex"] {
            let u = uri(&spelling.join(prot));
            let under = uri(&spelling.join(prot).join("x"));
            let mut reqs = vec![
                ("fs/writeFile", json!({"path": u, "dataBase64": data})),
                (
                    "fs/writeFile",
                    json!({"path": u, "dataBase64": data, "followSymlinks": false}),
                ),
                ("fs/writeFile", json!({"path": under, "dataBase64": data})),
                ("fs/createDirectory", json!({"path": under})),
                (
                    "fs/copy",
                    json!({"sourcePath": file, "destinationPath": u, "recursive": false}),
                ),
                (
                    "fs/copy",
                    json!({"sourcePath": dir, "destinationPath": u, "recursive": true}),
                ),
                (
                    "fs/copy",
                    json!({"sourcePath": uri(&real.join(".agents")), "destinationPath": u, "recursive": false}),
                ),
            ];
            if prot == ".codex" {
                reqs.push(("fs/createDirectory", json!({"path": u, "recursive": false})));
            } else {
                // Present (as a link), so mkdir reports that first, as mkdir(2) does.
                let mut p = json!({"path": u, "recursive": false, "sandbox": ww});
                s.expect_err(
                    "fs/createDirectory",
                    p.take(),
                    -32603,
                    "File exists (os error 17)",
                );
                // Removing it, or what it names, is refused.
                for extra in [
                    json!({}),
                    json!({"followSymlinks": false}),
                    json!({"recursive": false, "force": false}),
                ] {
                    let mut p = extra;
                    p["path"] = json!(u);
                    reqs.push(("fs/remove", p));
                }
            }
            // Through `link` without following links, the link may be reported
            // instead: a refusal too.
            let link_err = format!(
                "path `{}` contains a symbolic link",
                spelling.join(prot).display()
            );
            for (m, mut p) in reqs {
                let nofollow = p["followSymlinks"] == json!(false);
                p["sandbox"] = ww.clone();
                let r = s.request(m, p.clone());
                let e = &r["error"];
                let ok = e["code"] == json!(-32600)
                    && (e["message"] == json!(DENIED)
                        || (nofollow && spelling == &link && e["message"] == json!(link_err)));
                assert!(ok, "{m} {p}: {r}");
            }
        }
    }
    assert_eq!(snapshot(&base), before, "something changed");
    // The rest of the root is writable (through its real spelling: the helper
    // checks the path as given too, and the context's root is the real one).
    s.call(
        "fs/writeFile",
        json!({"path": uri(&real.join("src/new")), "dataBase64": data, "sandbox": ww}),
    );
    assert_eq!(fs::read(real.join("src/new")).unwrap(), b"pwned");
    drop(s);
    let _ = fs::remove_dir_all(&base);
}

#[test]
fn protected_names_whatever_they_are() {
    protected_names("prot", false, false);
}

#[test]
fn protected_names_whatever_they_are_as_nobody() {
    if !is_root() {
        return skip("not root: the unprivileged run is the one above");
    }
    protected_names("prot-nobody", false, true);
}

#[test]
fn protected_names_of_a_root_reached_through_a_link() {
    protected_names("prot-link", true, false);
}

#[test]
fn protected_names_of_a_root_reached_through_a_link_as_nobody() {
    if !is_root() {
        return skip("not root: the unprivileged run is the one above");
    }
    protected_names("prot-link-nobody", true, true);
}

// ------------------------------------------------------------------ more rules

#[test]
fn hard_link_to_an_outside_file_is_written_like_the_reference() {
    // docs/protocol.md "Sandboxed filesystem requests": the link is inside, so writing through it is allowed (as bubblewrap and
    // Landlock allow it); this is documented, not a defect (docs/protocol.md "Sandbox").
    let mut f = Fx::new("hardlink", false);
    let ww = f.ww();
    fs::hard_link(f.out.join("f"), f.p("hl")).unwrap();
    assert_eq!(f.write(&f.u("hl"), &ww)["result"], json!({}));
    assert_eq!(fs::read(f.out.join("f")).unwrap(), b"pwned");
}

#[test]
fn copy_across_the_boundary() {
    let mut f = Fx::new("copy", false);
    let ww = f.ww();
    // In: reading outside is allowed, the copy lands inside.
    f.s.call(
        "fs/copy",
        json!({"sourcePath": uri(&f.out.join("f")), "destinationPath": f.u("in"), "recursive": false, "sandbox": ww}),
    );
    assert_eq!(fs::read(f.p("in")).unwrap(), b"outside");
    f.s.call(
        "fs/copy",
        json!({"sourcePath": uri(&f.out), "destinationPath": f.u("tree"), "recursive": true, "sandbox": ww}),
    );
    assert_eq!(fs::read(f.p("tree/sub/g")).unwrap(), b"deep");
    // A tree that contains a carve-out is not copied, even where it may be written.
    f.denied(
        "fs/copy",
        json!({"sourcePath": uri(&f.proj), "destinationPath": "/tmp/tether-sbfs-never", "recursive": true}),
        &ww,
    );
    assert!(!exists(Path::new("/tmp/tether-sbfs-never")));
    // Same results as the direct version for the plain errors.
    f.s.expect_err(
        "fs/copy",
        json!({"sourcePath": f.u("src"), "destinationPath": f.u("src2"), "recursive": false, "sandbox": ww}),
        -32600,
        "fs/copy requires recursive: true when sourcePath is a directory",
    );
    f.s.expect_err(
        "fs/copy",
        json!({"sourcePath": f.u("src"), "destinationPath": f.u("src/inner"), "recursive": true, "sandbox": ww}),
        -32600,
        "fs/copy cannot copy a directory to itself or one of its descendants",
    );
}

#[test]
fn deny_entries_refuse_every_access() {
    let mut f = Fx::new("deny", false);
    let sb = f.ww_deny();
    fs::create_dir(f.p("secrets")).unwrap();
    fs::write(f.p("secrets/k"), b"key").unwrap();
    fs::write(f.p("src/id.pem"), b"pem").unwrap();
    symlink("../secrets/k", f.p("src/k_link"));
    symlink(&f.out, f.p("out_abs"));
    let before = snapshot(&f.base);
    for (m, p) in [
        ("fs/readFile", json!({"path": f.u("secrets/k")})),
        ("fs/readFile", json!({"path": f.u("src/k_link")})),
        ("fs/readFile", json!({"path": f.u("src/id.pem")})),
        ("fs/readFile", json!({"path": uri(&f.out.join("f"))})),
        ("fs/readFile", json!({"path": f.u("out_abs/f")})),
        ("fs/getMetadata", json!({"path": f.u("secrets/k")})),
        ("fs/readDirectory", json!({"path": f.u("secrets")})),
        ("fs/readDirectory", json!({"path": uri(&f.out)})),
        ("fs/canonicalize", json!({"path": f.u("src/k_link")})),
        (
            "fs/writeFile",
            json!({"path": f.u("secrets/k"), "dataBase64": "eA=="}),
        ),
        (
            "fs/writeFile",
            json!({"path": f.u("src/new.pem"), "dataBase64": "eA=="}),
        ),
        ("fs/remove", json!({"path": f.u("src")})),
        ("fs/remove", json!({"path": f.u("secrets")})),
        (
            "fs/copy",
            json!({"sourcePath": f.u("src"), "destinationPath": f.u("src_copy"), "recursive": true}),
        ),
    ] {
        f.denied(m, p, &sb);
    }
    assert_eq!(snapshot(&f.base), before, "something changed");
    // Reads elsewhere work; the listing shows names, the walk does not enter.
    let r = f.s.call(
        "fs/readFile",
        json!({"path": f.u("src/a.txt"), "sandbox": sb}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"a");
    let r = f.s.call(
        "fs/readDirectory",
        json!({"path": uri(&f.proj), "sandbox": sb}),
    );
    assert!(r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["fileName"] == json!("secrets")));
    let walk = json!({"maxDepth": 4, "maxDirectories": 100, "maxEntries": 1000, "followDirectorySymlinks": true});
    let r = f.s.call(
        "fs/walk",
        json!({"path": uri(&f.proj), "options": walk, "sandbox": sb}),
    );
    let paths: Vec<String> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(!paths.iter().any(|p| p.ends_with("secrets/k")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.ends_with("out_abs/f")), "{paths:?}");
    let errors: Vec<String> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(errors.contains(&f.u("secrets")), "{r}");
}

#[test]
fn follow_symlinks_false() {
    let mut f = Fx::new("nofollow", false);
    let sb = f.ww_deny();
    symlink("src", f.p("src_link"));
    symlink("a.txt", f.p("src/a_link"));
    let link_err = |p: &Path| format!("path `{}` contains a symbolic link", p.display());
    for (m, path, extra) in [
        ("fs/readFile", "src_link/a.txt", json!({})),
        ("fs/readFile", "src/a_link", json!({})),
        ("fs/writeFile", "src/a_link", json!({"dataBase64": "eA=="})),
        (
            "fs/writeFile",
            "src_link/new",
            json!({"dataBase64": "eA=="}),
        ),
        ("fs/createDirectory", "src_link/nd", json!({})),
        ("fs/getMetadata", "src_link/a.txt", json!({})),
        ("fs/remove", "src_link/a.txt", json!({})),
    ] {
        let mut p = extra;
        p["path"] = json!(f.u(path));
        p["followSymlinks"] = json!(false);
        p["sandbox"] = sb.clone();
        f.s.expect_err(m, p, -32600, &link_err(&f.p(path)));
    }
    assert_eq!(fs::read(f.p("src/a.txt")).unwrap(), b"a");
    // A final link is reported (getMetadata) or removed itself (remove).
    let r = f.s.call(
        "fs/getMetadata",
        json!({"path": f.u("src/a_link"), "followSymlinks": false, "sandbox": sb}),
    );
    assert_eq!(r["isSymlink"], json!(true));
    f.s.call(
        "fs/remove",
        json!({"path": f.u("src/a_link"), "followSymlinks": false, "sandbox": sb}),
    );
    assert!(!exists(&f.p("src/a_link")) && f.p("src/a.txt").is_file());
    // Followed, the link works.
    let r = f.s.call(
        "fs/readFile",
        json!({"path": f.u("src_link/a.txt"), "sandbox": sb}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"a");
}

#[test]
fn symlink_swap_race_never_escapes() {
    // Another thread flips `swing` between a directory inside, one outside and
    // `.git` (at least 10,000 times) while writes through it run; afterwards
    // nothing outside or in .git has changed.
    let mut f = Fx::new("race", false);
    let ww = f.ww();
    fs::create_dir(f.p("inside")).unwrap();
    symlink("inside", f.p("swing"));
    let before_out = snapshot(&f.out);
    let before_git = snapshot(&f.p(".git"));
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let flipper = {
        let (stop, flips) = (stop.clone(), flips.clone());
        let proj = f.proj.clone();
        let out = f.out.clone();
        std::thread::spawn(move || {
            let targets = [PathBuf::from("inside"), out, PathBuf::from(".git")];
            let tmp = proj.join("swing.tmp");
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) || i < 10_000 {
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&targets[i % 3], &tmp).unwrap();
                fs::rename(&tmp, proj.join("swing")).unwrap();
                i += 1;
                flips.store(i, Ordering::Relaxed);
            }
        })
    };
    let mut ok = 0;
    let mut n = 0;
    // Keep 16 requests in flight (the helper limit) until the flipper is done.
    let mut pending = std::collections::VecDeque::new();
    while n < 200 || flips.load(Ordering::Relaxed) < 10_000 {
        while pending.len() < 16 {
            let id = f.s.send(
                "fs/writeFile",
                json!({"path": f.u(&format!("swing/f{}", n % 8)), "dataBase64": b64(b"pwned"), "sandbox": ww}),
            );
            pending.push_back(id);
            n += 1;
        }
        let id = pending.pop_front().unwrap();
        let r = f.s.wait(id);
        if r.get("result").is_some() {
            ok += 1;
        } else {
            let code = r["error"]["code"].as_i64();
            // Denied, or the link vanished between unlink and rename... never more.
            assert!(matches!(code, Some(-32600) | Some(-32004)), "{r}");
        }
        if n > 20_000 {
            break;
        }
    }
    for id in pending {
        f.s.wait(id);
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(flips.load(Ordering::Relaxed) >= 10_000);
    eprintln!(
        "{n} writes, {ok} landed inside, {} flips",
        flips.load(Ordering::Relaxed)
    );
    assert_eq!(snapshot(&f.out), before_out, "the outside changed");
    assert_eq!(snapshot(&f.p(".git")), before_git, ".git changed");
}

// ------------------------------------------------------------------ the mode itself

fn codex_fs(input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("codex-fs")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

/// The effective context the server would send for `cwd`.
fn effective(cwd: &Path) -> Value {
    json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "path", "path": "file:///"}, "access": "read"},
        {"path": {"type": "path", "path": uri(cwd)}, "access": "write"},
        {"path": {"type": "path", "path": uri(&cwd.join(".git"))}, "access": "read"}]}}})
}

#[test]
fn codex_fs_mode_directly() {
    let f = Fx::new("mode", false);
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"operation":"fs/readFile","params":{"path":"/x"}}"#,
        br#"{"operation":"fs/nope","params":{"path":"/x","sandbox":{"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[]}}}}}"#,
        br#"{"operation":"fs/readFile","params":{"path":"/x","sandbox":{"permissions":{"type":"read-only"}}}}"#,
    ] {
        let out = codex_fs(bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", String::from_utf8_lossy(bad));
        assert!(err.starts_with("codex-fs: "), "{err}");
        assert!(out.stdout.is_empty());
    }
    let sb = effective(&f.proj);
    let req = json!({"operation": "fs/writeFile", "params": {"path": f.u("w.txt"), "dataBase64": "aGkK", "sandbox": sb}});
    let out = codex_fs(req.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"status\":\"ok\",\"payload\":{\"operation\":\"fs/writeFile\",\"response\":{}}}\n"
    );
    assert_eq!(fs::read(f.p("w.txt")).unwrap(), b"hi\n");
    let req = json!({"operation": "fs/writeFile", "params": {"path": f.u(".git/config"), "dataBase64": "aGkK", "sandbox": sb}});
    let out = codex_fs(req.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"status\":\"error\",\"payload\":{\"code\":-32600,\"message\":\"Permission denied (os error 13)\"}}\n"
    );
    let req =
        json!({"operation": "fs/getMetadata", "params": {"path": f.u("w.txt"), "sandbox": sb}});
    let out = codex_fs(req.to_string().as_bytes());
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["payload"]["response"]["size"], json!(3), "{line}");
}

#[test]
fn shutdown_with_helpers_in_flight_exits_promptly() {
    let mut f = Fx::new("shutdown", false);
    let ww = f.ww();
    let big = b64(&vec![b'x'; 256 << 10]);
    for i in 0..16 {
        f.s.send(
            "fs/writeFile",
            json!({"path": f.u(&format!("big{i}")), "dataBase64": big, "sandbox": ww}),
        );
    }
    // The shutdown comes while helpers run: wait until one does.
    let pid = f.s.pid() as i32;
    let helper_running = wait_until(TIMEOUT, || {
        children(pid)
            .into_iter()
            .any(|c| proc_info(c).is_some_and(|p| p.cmdline.starts_with("codex-fs")))
    });
    assert!(helper_running, "no codex-fs helper ever ran");
    // SAFETY: signalling the server we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = std::time::Instant::now();
    while exists(Path::new(&format!("/proc/{pid}/stat")))
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "server still running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A deny glob that matches a directory denies everything inside it too, as the
/// mount layer does for processes (docs/protocol.md "Sandbox", "Resolving a
/// policy"): `proj/sec*` covers `proj/secrets/s`, not only `proj/secrets`.
#[test]
fn deny_glob_matching_a_directory_covers_its_contents() {
    let mut f = Fx::new("denyglobdir", false);
    let mut sb = f.ww();
    sb["permissions"]["file_system"]["entries"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": {"type": "glob_pattern", "pattern": format!("{}/sec*", f.proj.display())}, "access": "deny"}));
    fs::create_dir_all(f.p("secrets/inner")).unwrap();
    fs::write(f.p("secrets/s"), b"secret").unwrap();
    fs::write(f.p("secrets/inner/t"), b"deeper").unwrap();
    fs::write(f.p("src/sec-not-matched"), b"open").unwrap();
    let before = snapshot(&f.base);
    for (m, p) in [
        ("fs/readFile", json!({"path": f.u("secrets/s")})),
        ("fs/readFile", json!({"path": f.u("secrets/inner/t")})),
        ("fs/getMetadata", json!({"path": f.u("secrets/inner")})),
        ("fs/readDirectory", json!({"path": f.u("secrets/inner")})),
        (
            "fs/writeFile",
            json!({"path": f.u("secrets/new"), "dataBase64": "eA=="}),
        ),
        (
            "fs/writeFile",
            json!({"path": f.u("secrets/s"), "dataBase64": "eA=="}),
        ),
        ("fs/createDirectory", json!({"path": f.u("secrets/d")})),
        ("fs/remove", json!({"path": f.u("secrets/inner/t")})),
        (
            "fs/copy",
            json!({"sourcePath": f.u("secrets/inner"), "destinationPath": f.u("src/stolen"), "recursive": true}),
        ),
    ] {
        f.denied(m, p, &sb);
    }
    assert_eq!(snapshot(&f.base), before, "something changed");
    let r = f.s.call(
        "fs/readFile",
        json!({"path": f.u("src/sec-not-matched"), "sandbox": sb}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"open");
    let walk = json!({"maxDepth": 4, "maxDirectories": 100, "maxEntries": 1000, "followDirectorySymlinks": false});
    let r = f.s.call(
        "fs/walk",
        json!({"path": uri(&f.proj), "options": walk, "sandbox": sb}),
    );
    let listed = r["entries"].to_string();
    assert!(!listed.contains("secrets/"), "{r}");
}

/// `fs/open` under a sandbox (docs/protocol.md "File handles"): the helper opens
/// the file with the checks of fs/readFile / fs/writeFile and passes the
/// descriptor back; the handle then reads and writes without it.
fn sandboxed_file_handles(nobody: bool) {
    let mut f = Fx::new(if nobody { "handles-n" } else { "handles" }, nobody);
    let ww = f.ww();
    let deny = f.ww_deny();
    fs::create_dir(f.p("secrets")).unwrap();
    fs::write(f.p("secrets/k"), b"key").unwrap();
    fs::write(f.p("src/id.pem"), b"pem").unwrap();
    symlink(f.out.join("f"), f.p("src/out_link"));
    if nobody && is_root() {
        chown_tree(&f.base);
    }
    let open =
        |id: &str, path: String, mode: &str| json!({"handleId": id, "path": path, "mode": mode});
    // replace: created at open, written in place, a gap reads as zeros.
    let mut p = open("w", f.u("src/h.txt"), "replace");
    p["sandbox"] = ww.clone();
    f.s.call("fs/open", p);
    assert_eq!(fs::read(f.p("src/h.txt")).unwrap(), b"", "created at open");
    for (off, data) in [(0, &b"hello"[..]), (7, &b"x"[..])] {
        f.s.call(
            "fs/writeBlock",
            json!({"handleId": "w", "offset": off, "chunk": b64(data)}),
        );
    }
    f.s.call("fs/close", json!({"handleId": "w"}));
    assert_eq!(fs::read(f.p("src/h.txt")).unwrap(), b"hello\0\0x");
    // replace truncates an existing file at open.
    let mut p = open("t", f.u("src/a.txt"), "replace");
    p["sandbox"] = ww.clone();
    f.s.call("fs/open", p);
    assert_eq!(fs::read(f.p("src/a.txt")).unwrap(), b"");
    // A failed block call forgets the handle: reading a replace handle fails,
    // then the handle is unknown.
    let (code, _) = f.s.fail(
        "fs/readBlock",
        json!({"handleId": "t", "offset": 0, "len": 4}),
    );
    assert_eq!(code, -32600);
    let (code, msg) = f.s.fail(
        "fs/writeBlock",
        json!({"handleId": "t", "offset": 0, "chunk": "eA=="}),
    );
    assert_eq!((code, msg.as_str()), (-32004, "unknown file handle `t`"));

    // Refused: outside the workspace, in .git, through a link that leaves it, a
    // denied file, a denied glob. Nothing is created or truncated.
    let before = snapshot(&f.base);
    for (id, path, mode, sb) in [
        ("o1", uri(&f.out.join("new")), "replace", &ww),
        ("o2", uri(&f.out.join("f")), "replace", &ww),
        ("o3", f.u(".git/config"), "replace", &ww),
        ("o4", f.u("src/out_link"), "replace", &ww),
        ("o5", f.u("secrets/k"), "read", &deny),
        ("o6", f.u("src/id.pem"), "read", &deny),
        ("o7", uri(&f.out.join("f")), "read", &deny),
    ] {
        f.denied("fs/open", open(id, path, mode), sb);
    }
    // A bad handle id is refused before the helper runs: no file appears.
    let mut p = open("", f.u("src/never.txt"), "replace");
    p["sandbox"] = ww.clone();
    let (code, _) = f.s.fail("fs/open", p);
    assert_eq!(code, -32600);
    assert_eq!(snapshot(&f.base), before, "something changed");

    // read: allowed where fs/readFile is.
    let mut p = open("r", f.u("src/h.txt"), "read");
    p["sandbox"] = deny.clone();
    f.s.call("fs/open", p);
    let r = f.s.call(
        "fs/readBlock",
        json!({"handleId": "r", "offset": 0, "len": 100}),
    );
    assert_eq!(unb64(&r["chunk"]), b"hello\0\0x");
    assert_eq!(r["eof"], json!(true));
}

#[test]
fn sandboxed_file_handles_open_in_the_helper() {
    sandboxed_file_handles(false);
}

#[test]
fn sandboxed_file_handles_open_in_the_helper_as_nobody() {
    sandboxed_file_handles(true);
}
