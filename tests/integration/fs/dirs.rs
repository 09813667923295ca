//! fs/createDirectory, fs/readDirectory, fs/remove, fs/canonicalize (docs/protocol.md "Filesystem").

use crate::support::fs::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::ffi::OsStrExt;

// ---------------------------------------------------------------- createDirectory

#[test]
fn create_directory_recursive_by_default() {
    let t = TempDir::new("mkdir_default");
    let mut s = FsServer::start_with(Opts {
        umask: Some(0o027),
        ..Opts::default()
    });
    let p = t.join("a/b/c");
    assert_eq!(
        s.call("fs/createDirectory", json!({"path": uri(&p)})),
        json!({})
    );
    assert!(p.is_dir());
    assert_eq!(mode_of(&p), 0o750, "0777 minus umask 027");
    assert_eq!(mode_of(&t.join("a")), 0o750, "parents too");
    // Existing: fine, recursive (default and explicit).
    s.call("fs/createDirectory", json!({"path": uri(&p)}));
    s.call(
        "fs/createDirectory",
        json!({"path": uri(&p), "recursive": true, "followSymlinks": true, "sandbox": null}),
    );
    s.call(
        "fs/createDirectory",
        json!({"path": uri(&t.join("x/y")), "recursive": null}),
    );
    assert!(t.join("x/y").is_dir(), "recursive null means default true");
}

#[test]
fn create_directory_not_recursive() {
    let t = TempDir::new("mkdir_flat");
    let mut s = FsServer::start();
    let p = t.join("one");
    s.call(
        "fs/createDirectory",
        json!({"path": uri(&p), "recursive": false}),
    );
    assert!(p.is_dir());
    s.expect_err(
        "fs/createDirectory",
        json!({"path": uri(&p), "recursive": false}),
        -32603,
        "File exists (os error 17)",
    );
    s.expect_os_err(
        "fs/createDirectory",
        json!({"path": uri(&t.join("missing/child")), "recursive": false}),
        -32004,
        2,
    );
    assert!(!exists(&t.join("missing")));
}

#[test]
fn create_directory_over_existing_file() {
    let t = TempDir::new("mkdir_file");
    let mut s = FsServer::start();
    let f = t.join("file");
    fs::write(&f, b"x").unwrap();
    for recursive in [json!(true), json!(false), Value::Null] {
        s.expect_err(
            "fs/createDirectory",
            json!({"path": uri(&f), "recursive": recursive}),
            -32603,
            "File exists (os error 17)",
        );
    }
    assert_eq!(fs::read(&f).unwrap(), b"x");
    // A file in a middle component.
    let (c, m) = s.fail(
        "fs/createDirectory",
        json!({"path": uri(&t.join("file/sub"))}),
    );
    assert_eq!(c, -32603, "{m}");
}

#[test]
fn create_directory_concurrent_mkdir_p() {
    let t = TempDir::new("mkdir_concurrent");
    let mut s = FsServer::start();
    let deep = t.join("c/d/e/f/g/h/i/j/k/l");
    let mut ids = Vec::new();
    for i in 0..48 {
        // The same deep path many times, plus siblings that share its parents.
        ids.push(s.send("fs/createDirectory", json!({"path": uri(&deep)})));
        let sib = t.join(format!("c/d/e/f/g/h/s{}", i % 4));
        ids.push(s.send(
            "fs/createDirectory",
            json!({"path": uri(&sib), "recursive": true}),
        ));
    }
    for id in ids {
        let r = s.wait(id);
        assert_eq!(r.get("result"), Some(&json!({})), "id {id}: {r}");
    }
    assert!(deep.is_dir());
    for i in 0..4 {
        assert!(t.join(format!("c/d/e/f/g/h/s{i}")).is_dir());
    }
}

#[test]
fn create_directory_follow_symlinks_false() {
    let t = TempDir::new("mkdir_nofollow");
    let mut s = FsServer::start();
    fs::create_dir(t.join("real")).unwrap();
    symlink("real", t.join("link"));
    let p = t.join("link/new/deeper");
    s.expect_err(
        "fs/createDirectory",
        json!({"path": uri(&p), "followSymlinks": false}),
        -32600,
        &format!("path `{}` contains a symbolic link", native(&p)),
    );
    assert!(!exists(&t.join("real/new")));
    // A link as the final component (docs/protocol.md "Filesystem": any component).
    s.expect_err(
        "fs/createDirectory",
        json!({"path": uri(&t.join("link")), "followSymlinks": false}),
        -32600,
        &format!(
            "path `{}` contains a symbolic link",
            native(&t.join("link"))
        ),
    );
    // Followed: works through the link.
    s.call("fs/createDirectory", json!({"path": uri(&p)}));
    assert!(t.join("real/new/deeper").is_dir());
}

// ---------------------------------------------------------------- readDirectory

fn entry(name: &str, dir: bool, file: bool, link: bool) -> Value {
    json!({"fileName": name, "isDirectory": dir, "isFile": file, "isSymlink": link})
}

#[test]
fn read_directory_sorted_with_all_kinds() {
    let t = TempDir::new("readdir_kinds");
    let mut s = FsServer::start();
    let d = t.join("d");
    fs::create_dir(&d).unwrap();
    fs::create_dir(d.join("B")).unwrap();
    fs::write(d.join("Z"), b"z").unwrap();
    symlink("Z", d.join("_u"));
    symlink("B", d.join("a"));
    symlink("missing", d.join("a.txt"));
    mkfifo(&d.join("b"));
    fs::write(d.join("ä"), b"").unwrap();
    fs::write(d.join(os(b"\xff\xfe")), b"").unwrap();
    symlink("loop2", d.join("loop1"));
    symlink("loop1", d.join("loop2"));

    let msg = s.request_msg("fs/readDirectory", json!({"path": uri(&d)}));
    let r = &msg.value["result"];
    let want = vec![
        entry("B", true, false, false),
        entry("Z", false, true, false),
        entry("_u", false, true, true),
        entry("a", true, false, true),
        entry("a.txt", false, false, true),
        entry("b", false, false, false),
        entry("loop1", false, false, true),
        entry("loop2", false, false, true),
        entry("ä", false, true, false),
        entry("\u{FFFD}\u{FFFD}", false, true, false),
    ];
    assert_eq!(r["entries"], Value::Array(want), "{r}");
    assert_eq!(
        member_order(&msg.raw, &["result", "entries", "0"]),
        ["fileName", "isDirectory", "isFile", "isSymlink"]
    );
    // Through a link to the directory, with the sandbox member null.
    symlink("d", t.join("dl"));
    let r2 = s.call(
        "fs/readDirectory",
        json!({"path": uri(&t.join("dl")), "sandbox": null}),
    );
    assert_eq!(&r2, r);
}

#[test]
fn read_directory_empty_missing_and_not_a_directory() {
    let t = TempDir::new("readdir_errors");
    let mut s = FsServer::start();
    fs::create_dir(t.join("empty")).unwrap();
    assert_eq!(
        s.call("fs/readDirectory", json!({"path": uri(&t.join("empty"))})),
        json!({"entries": []})
    );
    fs::write(t.join("f"), b"").unwrap();
    s.expect_err(
        "fs/readDirectory",
        json!({"path": uri(&t.join("f"))}),
        -32603,
        "Not a directory (os error 20)",
    );
    s.expect_os_err(
        "fs/readDirectory",
        json!({"path": uri(&t.join("nope"))}),
        -32004,
        2,
    );
}

#[test]
fn read_directory_entry_limit() {
    let t = TempDir::new("readdir_limit");
    let d = t.join("many");
    fs::create_dir(&d).unwrap();
    for i in 0..50_001 {
        fs::File::create(d.join(format!("{i:05}"))).unwrap();
    }
    let mut s = FsServer::start();
    s.expect_err(
        "fs/readDirectory",
        json!({"path": uri(&d)}),
        -32603,
        "fs/readDirectory returned 50001 entries; limit is 50000",
    );
    fs::remove_file(d.join("50000")).unwrap();
    let r = s.call("fs/readDirectory", json!({"path": uri(&d)}));
    let e = r["entries"].as_array().unwrap();
    assert_eq!(e.len(), 50_000);
    assert_eq!(e[0]["fileName"], "00000");
    assert_eq!(e[49_999]["fileName"], "49999");
}

// ---------------------------------------------------------------- remove

#[test]
fn remove_defaults_recursive_and_force() {
    let t = TempDir::new("remove_defaults");
    let mut s = FsServer::start();
    let d = t.join("tree");
    fs::create_dir_all(d.join("a/b/c")).unwrap();
    fs::write(d.join("a/b/c/f"), b"x").unwrap();
    fs::write(d.join("top"), b"x").unwrap();
    mkfifo(&d.join("a/fifo"));
    assert_eq!(s.call("fs/remove", json!({"path": uri(&d)})), json!({}));
    assert!(!exists(&d));
    // Missing with force default: fine.
    assert_eq!(s.call("fs/remove", json!({"path": uri(&d)})), json!({}));
    s.call(
        "fs/remove",
        json!({"path": uri(&d), "force": true, "recursive": true, "followSymlinks": true, "sandbox": null}),
    );
    s.expect_os_err(
        "fs/remove",
        json!({"path": uri(&d), "force": false}),
        -32004,
        2,
    );
    // A file and a FIFO.
    fs::write(t.join("f"), b"x").unwrap();
    mkfifo(&t.join("p"));
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("f")), "recursive": false}),
    );
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("p")), "force": false}),
    );
    assert!(!exists(&t.join("f")) && !exists(&t.join("p")));
}

#[test]
fn remove_not_recursive() {
    let t = TempDir::new("remove_flat");
    let mut s = FsServer::start();
    fs::create_dir_all(t.join("full/sub")).unwrap();
    s.expect_err(
        "fs/remove",
        json!({"path": uri(&t.join("full")), "recursive": false}),
        -32603,
        "Directory not empty (os error 39)",
    );
    s.expect_err(
        "fs/remove",
        json!({"path": uri(&t.join("full")), "recursive": false, "force": true}),
        -32603,
        "Directory not empty (os error 39)",
    );
    assert!(t.join("full/sub").is_dir());
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("full/sub")), "recursive": false}),
    );
    assert!(!exists(&t.join("full/sub")));
}

#[test]
fn remove_symlinks_removes_the_link_only() {
    let t = TempDir::new("remove_links");
    let mut s = FsServer::start();
    fs::create_dir(t.join("target_dir")).unwrap();
    fs::write(t.join("target_dir/keep"), b"keep").unwrap();
    fs::write(t.join("target_file"), b"keep").unwrap();
    symlink("target_dir", t.join("ld"));
    symlink("target_file", t.join("lf"));
    symlink("nowhere", t.join("dangling"));
    for name in ["ld", "lf", "dangling"] {
        s.call("fs/remove", json!({"path": uri(&t.join(name))}));
        assert!(!exists(&t.join(name)), "{name} still there");
    }
    assert_eq!(fs::read(t.join("target_dir/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(t.join("target_file")).unwrap(), b"keep");
    // Non-recursive on a link to a directory: still just the link.
    symlink("target_dir", t.join("ld2"));
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("ld2")), "recursive": false, "force": false}),
    );
    assert!(!exists(&t.join("ld2")));
    assert!(t.join("target_dir/keep").exists());
}

#[test]
fn remove_tree_does_not_follow_links_inside() {
    let t = TempDir::new("remove_tree_links");
    let mut s = FsServer::start();
    fs::create_dir(t.join("outside")).unwrap();
    fs::write(t.join("outside/precious"), b"p").unwrap();
    fs::create_dir_all(t.join("tree/sub")).unwrap();
    symlink(t.join("outside"), t.join("tree/to_dir"));
    symlink(t.join("outside/precious"), t.join("tree/sub/to_file"));
    symlink("..", t.join("tree/sub/up"));
    s.call("fs/remove", json!({"path": uri(&t.join("tree"))}));
    assert!(!exists(&t.join("tree")));
    assert_eq!(fs::read(t.join("outside/precious")).unwrap(), b"p");
}

#[test]
fn remove_follow_symlinks_false() {
    let t = TempDir::new("remove_nofollow");
    let mut s = FsServer::start();
    fs::create_dir(t.join("real")).unwrap();
    fs::write(t.join("real/f"), b"x").unwrap();
    symlink("real", t.join("ld"));
    let p = t.join("ld/f");
    s.expect_err(
        "fs/remove",
        json!({"path": uri(&p), "followSymlinks": false}),
        -32600,
        &format!("path `{}` contains a symbolic link", native(&p)),
    );
    assert!(t.join("real/f").exists());
    // A final link is removed itself.
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("ld")), "followSymlinks": false}),
    );
    assert!(!exists(&t.join("ld")));
    assert!(t.join("real/f").exists());
    // Followed (default): removes through the link's directory.
    symlink("real", t.join("ld"));
    s.call("fs/remove", json!({"path": uri(&p)}));
    assert!(!exists(&t.join("real/f")));
}

#[test]
fn remove_force_does_not_hide_other_errors() {
    // Even root may not unlink a /proc file: EPERM → -32600.
    let mut s = FsServer::start();
    s.expect_os_err(
        "fs/remove",
        json!({"path": "/proc/self/status", "force": true}),
        -32600,
        1,
    );
    let t = TempDir::new("remove_enotdir");
    fs::write(t.join("f"), b"x").unwrap();
    s.expect_os_err(
        "fs/remove",
        json!({"path": uri(&t.join("f/x")), "force": true}),
        -32603,
        20,
    );
}

// ---------------------------------------------------------------- canonicalize

#[test]
fn canonicalize_resolves_links() {
    let t = TempDir::new("canon");
    let mut s = FsServer::start();
    fs::create_dir_all(t.join("real/dir")).unwrap();
    fs::write(t.join("real/dir/file"), b"x").unwrap();
    symlink("real/dir", t.join("l2"));
    symlink("l2", t.join("l1"));
    let real = fs::canonicalize(t.join("real/dir/file")).unwrap();
    let r = s.call("fs/canonicalize", json!({"path": uri(&t.join("l1/file"))}));
    assert_eq!(r, json!({"path": uri(&real)}));
    assert!(r["path"].as_str().unwrap().starts_with("file:///"));
    // Plain path with dot segments, and the sandbox member null.
    let plain = format!("{}/real/./dir/../dir/file", native(t.path()));
    let r = s.call("fs/canonicalize", json!({"path": plain, "sandbox": null}));
    assert_eq!(r["path"], uri(&real));
    // A directory.
    let r = s.call("fs/canonicalize", json!({"path": uri(&t.join("l1"))}));
    assert_eq!(
        r["path"],
        uri(&fs::canonicalize(t.join("real/dir")).unwrap())
    );
    // Missing, a dangling link, a loop.
    s.expect_os_err(
        "fs/canonicalize",
        json!({"path": uri(&t.join("nope"))}),
        -32004,
        2,
    );
    symlink("nowhere", t.join("dangling"));
    s.expect_os_err(
        "fs/canonicalize",
        json!({"path": uri(&t.join("dangling"))}),
        -32004,
        2,
    );
    symlink("loopb", t.join("loopa"));
    symlink("loopa", t.join("loopb"));
    s.expect_os_err(
        "fs/canonicalize",
        json!({"path": uri(&t.join("loopa"))}),
        -32603,
        40,
    );
}

#[test]
fn canonicalize_non_utf8_round_trip() {
    let t = TempDir::new("canon_bytes");
    let mut s = FsServer::start();
    let name = os(b"caf\xe9 #?%");
    fs::create_dir(t.join(name)).unwrap();
    fs::write(t.join(name).join("x"), b"bytes").unwrap();
    let r = s.call("fs/canonicalize", json!({"path": uri(&t.join(name))}));
    let got = r["path"].as_str().unwrap().to_string();
    let canon = fs::canonicalize(t.join(name)).unwrap();
    assert_eq!(got, uri(&canon));
    assert!(got.ends_with("/caf%E9%20%23%3F%25"), "{got}");
    assert_eq!(canon.file_name().unwrap().as_bytes(), name.as_bytes());
    // The URI goes back in and names the same directory.
    let r = s.call("fs/readFile", json!({"path": format!("{got}/x")}));
    assert_eq!(unb64(&r["dataBase64"]), b"bytes");
}
