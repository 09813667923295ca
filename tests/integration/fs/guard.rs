//! Destructive requests (docs/protocol.md, "Destructive requests"): `fs/remove`
//! never removes `/` or a mount point, and a recursive `fs/remove` or `fs/copy`
//! never crosses into another filesystem — directly and through the `codex-fs`
//! helper.
//!
//! Nothing here is aimed at the machine: every server runs in its own private
//! mount namespace (tests/fs/ns.rs). The `/` tests chroot it into a scratch tmpfs
//! holding only read-only binds of what the binary needs, so even a broken build
//! could only empty that tmpfs; the mount tests mount a tmpfs and binds inside a
//! scratch directory, visible to that server alone.

use crate::support::fs::*;
use crate::support::ns::Ns;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT_ERR: &str = "fs/remove refuses to remove the root directory";

fn mount_point_err(p: &Path) -> String {
    format!("fs/remove refuses to remove mount point `{}`", p.display())
}

fn remove_cross_err(p: &Path) -> String {
    format!(
        "fs/remove refuses to cross into another filesystem at `{}`",
        p.display()
    )
}

fn copy_cross_err(p: &Path) -> String {
    format!(
        "fs/copy refuses to cross into another filesystem at `{}`",
        p.display()
    )
}

/// A restricted context that sends writes to the helper: `/` readable, `root`
/// writable.
fn sandbox(root: &Path) -> Value {
    json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
        {"path": {"type": "path", "path": uri(root)}, "access": "write"}]}},
        "cwd": uri(root)})
}

fn with_sandbox(mut params: Value, sb: &Option<Value>) -> Value {
    if let Some(sb) = sb {
        params["sandbox"] = sb.clone();
    }
    params
}

fn chown_tree(p: &Path) {
    let _ = std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY));
    if fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path());
        }
    }
}

// ------------------------------------------------------------------ `/`

/// A server chrooted into a scratch tmpfs (in its own mount namespace) that holds
/// canaries, a link to `/`, read-only binds of /usr and the binary, and (when
/// `proc`) a proc for the helper. As `nobody`, the tmpfs and canaries are its own.
fn chrooted(t: &TempDir, nobody: bool, proc: bool) -> Result<FsServer, String> {
    let root = t.join("root");
    fs::create_dir(&root).unwrap();
    let mut ns = Ns::new()?.tmpfs(&root, 0o755);
    if proc && ns.userns {
        return Err("a user namespace cannot mount proc without a pid namespace".into());
    }
    for d in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(d);
        let Ok(m) = fs::symlink_metadata(&host) else {
            continue;
        };
        if m.file_type().is_symlink() {
            ns = ns.symlink(&fs::read_link(&host).unwrap(), &root.join(d));
        } else if m.is_dir() {
            ns = ns
                .mkdir(&root.join(d), 0o755)
                .bind(&host, &root.join(d), true);
        }
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_tether"));
    ns = ns
        .write(&root.join("tether"), b"")
        .bind(bin, &root.join("tether"), true)
        .mkdir(&root.join("etc"), 0o755)
        .write(&root.join("etc/passwd"), b"canary")
        .mkdir(&root.join("home"), 0o755)
        .write(&root.join("home/f"), b"canary")
        .write(&root.join("keep"), b"canary")
        .symlink(Path::new("/"), &root.join("rootlink"));
    if proc {
        ns = ns.mkdir(&root.join("proc"), 0o555).proc(&root.join("proc"));
    }
    if nobody {
        for p in [
            "",
            "etc",
            "etc/passwd",
            "home",
            "home/f",
            "keep",
            "rootlink",
        ] {
            ns = ns.chown(&root.join(p), NOBODY);
        }
    }
    Ok(FsServer::start_with(Opts {
        as_nobody: nobody,
        setup: Some(ns.chroot(&root).setup()),
        program: Some(PathBuf::from("/tether")),
        ..Opts::default()
    }))
}

/// Every canary is still there, read through the server.
fn canaries_intact(s: &mut FsServer) {
    for p in ["/etc/passwd", "/home/f", "/keep"] {
        let r = s.call("fs/readFile", json!({"path": p}));
        assert_eq!(unb64(&r["dataBase64"]), b"canary", "{p}");
    }
    let r = s.call("fs/getMetadata", json!({"path": "/tether"}));
    assert_eq!(r["isFile"], json!(true));
}

fn root_is_refused(name: &str, nobody: bool) {
    let t = TempDir::new(name);
    let mut s = match chrooted(&t, nobody, false) {
        Ok(s) => s,
        Err(why) => return skip(why),
    };
    canaries_intact(&mut s);
    for path in [
        "/",
        "file:///",
        "//",
        "///",
        "/..",
        "/../..",
        "/.",
        "/etc/..",
        "/rootlink/..",
        "file:///..",
        "file://localhost/",
    ] {
        for extra in [
            json!({}),
            json!({"recursive": true, "force": true}),
            json!({"recursive": false, "force": false}),
            json!({"followSymlinks": false}),
        ] {
            let mut p = extra.clone();
            p["path"] = json!(path);
            s.expect_err("fs/remove", p, -32600, ROOT_ERR);
        }
        canaries_intact(&mut s);
    }
    // A link to `/` is removed itself, as any link (never what it points to).
    assert_eq!(s.call("fs/remove", json!({"path": "/rootlink"})), json!({}));
    let r = s.call("fs/getMetadata", json!({"path": "/"}));
    assert_eq!(r["isDirectory"], json!(true));
    s.expect_os_err(
        "fs/getMetadata",
        json!({"path": "/rootlink", "followSymlinks": false}),
        -32004,
        2,
    );
    canaries_intact(&mut s);
}

#[test]
fn remove_of_the_root_is_refused() {
    root_is_refused("guard_root", false);
}

#[test]
fn remove_of_the_root_is_refused_as_nobody() {
    if !is_root() {
        return skip("not root: the run above is already unprivileged (user namespace)");
    }
    root_is_refused("guard_root_nobody", true);
}

#[test]
fn sandboxed_remove_of_the_root_is_refused() {
    // The helper route: `/` writable but a deny elsewhere keeps it sandboxed.
    let t = TempDir::new("guard_root_sb");
    let mut s = match chrooted(&t, false, true) {
        Ok(s) => s,
        Err(why) => return skip(why),
    };
    let sb = json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
        {"path": {"type": "special", "value": {"kind": "root"}}, "access": "write"},
        {"path": {"type": "path", "path": "file:///home"}, "access": "deny"}]}}});
    for path in ["/", "//", "/..", "/etc/.."] {
        s.expect_err(
            "fs/remove",
            json!({"path": path, "sandbox": sb}),
            -32600,
            ROOT_ERR,
        );
    }
    canaries_intact(&mut s);
    // The helper did run and may write where the context allows (below an
    // entry of `/`: file rights on `/` itself are not granted, so that a rule on
    // `/` cannot reach other terminals or disks in /dev; docs/protocol.md
    // "Sandbox").
    s.call(
        "fs/writeFile",
        json!({"path": "/etc/new", "dataBase64": b64(b"x"), "sandbox": sb}),
    );
    canaries_intact(&mut s);
}

// ------------------------------------------------------------------ mount points

/// A scratch directory with three trees, each holding another filesystem:
/// `a/inner` a tmpfs (another device), `b/bind` a bind mount of `bsrc` (the same
/// device), `c/bindfile` a bind mount of the file `csrc.txt`. Mounted in the
/// server's own namespace only; the test itself sees the empty mount points.
struct Mounts {
    t: TempDir,
    s: FsServer,
}

impl Mounts {
    fn new(name: &str, nobody: bool) -> Result<Mounts, String> {
        let t = TempDir::new(name);
        for d in ["a/sub", "a/inner", "b/bind", "bsrc/deep", "c"] {
            fs::create_dir_all(t.join(d)).unwrap();
        }
        for f in ["a/outer.txt", "a/sub/x", "b/outer.txt", "c/outer.txt"] {
            fs::write(t.join(f), b"outer").unwrap();
        }
        fs::write(t.join("bsrc/deep/kept.txt"), b"bound").unwrap();
        fs::write(t.join("csrc.txt"), b"bound file").unwrap();
        fs::write(t.join("c/bindfile"), b"").unwrap();
        if nobody {
            chown_tree(t.path());
        }
        let inner = t.join("a/inner");
        let ns = Ns::new()?
            .tmpfs(&inner, 0o777)
            .write(&inner.join("keep"), b"inner")
            .mkdir(&inner.join("d"), 0o755)
            .write(&inner.join("d/deep"), b"inner deep")
            .chown(&inner.join("keep"), NOBODY)
            .chown(&inner.join("d"), NOBODY)
            .chown(&inner.join("d/deep"), NOBODY)
            .bind(&t.join("bsrc"), &t.join("b/bind"), false)
            .bind(&t.join("csrc.txt"), &t.join("c/bindfile"), false);
        let s = FsServer::start_with(Opts {
            as_nobody: nobody,
            setup: Some(ns.setup()),
            ..Opts::default()
        });
        Ok(Mounts { t, s })
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.t.join(rel)
    }

    /// Everything on the other filesystems and in the trees is still there.
    fn intact(&mut self) {
        for (rel, data) in [
            ("a/inner/keep", &b"inner"[..]),
            ("a/inner/d/deep", b"inner deep"),
            ("b/bind/deep/kept.txt", b"bound"),
            ("c/bindfile", b"bound file"),
            ("a/outer.txt", b"outer"),
            ("a/sub/x", b"outer"),
            ("b/outer.txt", b"outer"),
            ("c/outer.txt", b"outer"),
        ] {
            let r = self
                .s
                .call("fs/readFile", json!({"path": uri(&self.p(rel))}));
            assert_eq!(unb64(&r["dataBase64"]), data, "{rel}");
        }
        // Seen from outside the namespace: the bound sources and the trees.
        assert_eq!(fs::read(self.p("bsrc/deep/kept.txt")).unwrap(), b"bound");
        assert_eq!(fs::read(self.p("csrc.txt")).unwrap(), b"bound file");
        assert_eq!(fs::read(self.p("a/sub/x")).unwrap(), b"outer");
    }
}

fn mounts_are_not_crossed(name: &str, nobody: bool, sandboxed: bool) {
    let mut m = match Mounts::new(name, nobody) {
        Ok(m) => m,
        Err(why) => return skip(why),
    };
    let sb = sandboxed.then(|| sandbox(m.t.path()));
    m.intact();
    // Recursive removal of a tree holding another filesystem: refused up front.
    for (tree, at) in [("a", "a/inner"), ("b", "b/bind"), ("c", "c/bindfile")] {
        for extra in [json!({}), json!({"recursive": true, "force": true})] {
            let mut p = extra;
            p["path"] = json!(uri(&m.p(tree)));
            m.s.expect_err(
                "fs/remove",
                with_sandbox(p, &sb),
                -32600,
                &remove_cross_err(&m.p(at)),
            );
        }
    }
    m.intact();
    // The mount points themselves, recursive or not.
    for at in ["a/inner", "b/bind", "c/bindfile"] {
        for extra in [json!({}), json!({"recursive": false})] {
            let mut p = extra;
            p["path"] = json!(uri(&m.p(at)));
            m.s.expect_err(
                "fs/remove",
                with_sandbox(p, &sb),
                -32600,
                &mount_point_err(&m.p(at)),
            );
        }
    }
    m.intact();
    // Recursive copies of those trees: refused before the destination exists.
    for (tree, at) in [("a", "a/inner"), ("b", "b/bind"), ("c", "c/bindfile")] {
        let dst = m.p(&format!("{tree}_copy"));
        m.s.expect_err(
            "fs/copy",
            with_sandbox(
                json!({"sourcePath": uri(&m.p(tree)), "destinationPath": uri(&dst), "recursive": true}),
                &sb,
            ),
            -32600,
            &copy_cross_err(&m.p(at)),
        );
        assert!(!exists(&dst), "{tree}: the destination was created");
    }
    m.intact();
    // What stays on one filesystem works: a tree beside the mounts, a subtree, and
    // a copy whose top is a mount point (it crosses nothing below it).
    m.s.call(
        "fs/copy",
        with_sandbox(
            json!({"sourcePath": uri(&m.p("a/inner")), "destinationPath": uri(&m.p("inner_copy")), "recursive": true}),
            &sb,
        ),
    );
    assert_eq!(fs::read(m.p("inner_copy/d/deep")).unwrap(), b"inner deep");
    m.s.call(
        "fs/remove",
        with_sandbox(json!({"path": uri(&m.p("inner_copy"))}), &sb),
    );
    assert!(!exists(&m.p("inner_copy")));
    m.s.call(
        "fs/remove",
        with_sandbox(json!({"path": uri(&m.p("a/inner/d"))}), &sb),
    );
    m.s.expect_os_err(
        "fs/getMetadata",
        json!({"path": uri(&m.p("a/inner/d"))}),
        -32004,
        2,
    );
    m.s.call(
        "fs/remove",
        with_sandbox(json!({"path": uri(&m.p("a/sub"))}), &sb),
    );
    assert!(!exists(&m.p("a/sub")));
    let r =
        m.s.call("fs/readFile", json!({"path": uri(&m.p("a/inner/keep"))}));
    assert_eq!(unb64(&r["dataBase64"]), b"inner");
}

#[test]
fn mounts_are_not_crossed_or_removed() {
    mounts_are_not_crossed("guard_mounts", false, false);
}

#[test]
fn mounts_are_not_crossed_or_removed_as_nobody() {
    if !is_root() {
        return skip("not root: the run above is already unprivileged (user namespace)");
    }
    mounts_are_not_crossed("guard_mounts_nobody", true, false);
}

#[test]
fn sandboxed_mounts_are_not_crossed_or_removed() {
    mounts_are_not_crossed("guard_mounts_sb", false, true);
}

#[test]
fn sandboxed_mounts_are_not_crossed_or_removed_as_nobody() {
    if !is_root() {
        return skip("not root: the run above is already unprivileged (user namespace)");
    }
    mounts_are_not_crossed("guard_mounts_sb_nobody", true, true);
}
