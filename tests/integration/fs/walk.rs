//! fs/walk (docs/protocol.md "Filesystem").

use crate::support::fs::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

/// root/
///   .hf  .hidden/h.txt  a/{a1.txt, deep/x/y.txt}  b.txt
///   dangling -> nope   fifo   link_a -> a   link_f -> b.txt
fn tree(t: &TempDir) -> std::path::PathBuf {
    let r = t.join("root");
    fs::create_dir_all(r.join(".hidden")).unwrap();
    fs::create_dir_all(r.join("a/deep/x")).unwrap();
    fs::write(r.join(".hf"), b"").unwrap();
    fs::write(r.join(".hidden/h.txt"), b"").unwrap();
    fs::write(r.join("a/a1.txt"), b"").unwrap();
    fs::write(r.join("a/deep/x/y.txt"), b"").unwrap();
    fs::write(r.join("b.txt"), b"").unwrap();
    symlink("nope", r.join("dangling"));
    mkfifo(&r.join("fifo"));
    symlink("a", r.join("link_a"));
    symlink("b.txt", r.join("link_f"));
    r
}

/// All entries of the tree, in walk order (follow false, no pruning).
const ALL: [(&str, &str); 13] = [
    (".hf", "file"),
    (".hidden", "directory"),
    ("a", "directory"),
    ("b.txt", "file"),
    ("dangling", "file"),
    ("fifo", "file"),
    ("link_a", "directory"),
    ("link_f", "file"),
    (".hidden/h.txt", "file"),
    ("a/a1.txt", "file"),
    ("a/deep", "directory"),
    ("a/deep/x", "directory"),
    ("a/deep/x/y.txt", "file"),
];

fn opts(depth: u64, dirs: u64, entries: u64, follow: bool) -> Value {
    json!({"maxDepth": depth, "maxDirectories": dirs, "maxEntries": entries, "followDirectorySymlinks": follow})
}

/// (relative path, kind) of each entry; asserts the result shape.
fn rel(root: &Path, r: &Value) -> Vec<(String, String)> {
    let prefix = format!("{}/", uri(root));
    r["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {r}"))
        .iter()
        .map(|e| {
            let p = e["path"].as_str().expect("path");
            let rest = p
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{p} not below {prefix}"));
            (
                rest.to_string(),
                e["kind"].as_str().expect("kind").to_string(),
            )
        })
        .collect()
}

fn want(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn walk_breadth_first_sorted() {
    let t = TempDir::new("walk_bfs");
    let root = tree(&t);
    let mut s = FsServer::start();
    let msg = s.request_msg(
        "fs/walk",
        json!({"path": uri(&root), "options": opts(64, 10_000, 50_000, false), "sandbox": null}),
    );
    let r = &msg.value["result"];
    assert_eq!(
        member_order(&msg.raw, &["result"]),
        ["entries", "errors", "truncated"]
    );
    assert_eq!(
        member_order(&msg.raw, &["result", "entries", "0"]),
        ["path", "kind"]
    );
    assert_eq!(rel(&root, r), want(&ALL));
    assert_eq!(r["errors"], json!([]));
    assert_eq!(r["truncated"], false);
    // Following directory links: link_a is the same directory as a, which
    // was already read, so nothing changes.
    let r = s.call(
        "fs/walk",
        json!({"path": native(&root), "options": opts(64, 10_000, 50_000, true)}),
    );
    assert_eq!(rel(&root, &r), want(&ALL));
    assert_eq!(r["truncated"], false);
}

#[test]
fn walk_depth_limits() {
    let t = TempDir::new("walk_depth");
    let root = tree(&t);
    let mut s = FsServer::start();
    for (depth, n) in [(1, 8), (2, 11), (3, 12), (4, 13), (64, 13)] {
        let r = s.call(
            "fs/walk",
            json!({"path": uri(&root), "options": opts(depth, 10_000, 50_000, false)}),
        );
        assert_eq!(rel(&root, &r), want(&ALL[..n]), "maxDepth {depth}");
        assert_eq!(
            r["truncated"], false,
            "maxDepth {depth}: depth is not truncation"
        );
    }
}

#[test]
fn walk_max_directories_and_entries_truncate() {
    let t = TempDir::new("walk_trunc");
    let root = tree(&t);
    let mut s = FsServer::start();
    // Directories read: root, .hidden, a, a/deep, a/deep/x = 5.
    for (dirs, n, truncated) in [(1, 8, true), (2, 9, true), (4, 12, true), (5, 13, false)] {
        let r = s.call(
            "fs/walk",
            json!({"path": uri(&root), "options": opts(64, dirs, 50_000, false)}),
        );
        assert_eq!(rel(&root, &r), want(&ALL[..n]), "maxDirectories {dirs}");
        assert_eq!(r["truncated"], truncated, "maxDirectories {dirs}");
    }
    for (entries, truncated) in [(1, true), (3, true), (12, true), (13, false), (14, false)] {
        let r = s.call(
            "fs/walk",
            json!({"path": uri(&root), "options": opts(64, 10_000, entries, false)}),
        );
        let n = (entries as usize).min(13);
        assert_eq!(rel(&root, &r), want(&ALL[..n]), "maxEntries {entries}");
        assert_eq!(r["truncated"], truncated, "maxEntries {entries}");
    }
}

#[test]
fn walk_prune_hidden_directories() {
    let t = TempDir::new("walk_prune");
    let root = tree(&t);
    let mut s = FsServer::start();
    let mut o = opts(64, 10_000, 50_000, false);
    o["pruneHiddenDirectories"] = json!(true);
    let r = s.call("fs/walk", json!({"path": uri(&root), "options": o}));
    let expected: Vec<_> = ALL
        .iter()
        .filter(|(p, _)| !p.starts_with(".hidden"))
        .copied()
        .collect();
    assert_eq!(rel(&root, &r), want(&expected));
    assert!(
        rel(&root, &r).iter().any(|(p, _)| p == ".hf"),
        "hidden files stay"
    );
    o["pruneHiddenDirectories"] = json!(false);
    let r = s.call("fs/walk", json!({"path": uri(&root), "options": o}));
    assert_eq!(rel(&root, &r), want(&ALL));
}

#[test]
fn walk_follow_directory_symlinks_with_loops() {
    let t = TempDir::new("walk_loops");
    let root = t.join("root");
    fs::create_dir_all(root.join("d")).unwrap();
    fs::create_dir(t.join("outside")).unwrap();
    fs::write(t.join("outside/o.txt"), b"").unwrap();
    symlink(".", root.join("d/self"));
    symlink("..", root.join("d/up"));
    symlink(t.join("outside"), root.join("ext"));
    symlink("loop2", root.join("loop1"));
    symlink("loop1", root.join("loop2"));
    let mut s = FsServer::start();
    let r = s.call(
        "fs/walk",
        json!({"path": uri(&root), "options": opts(64, 10_000, 50_000, true)}),
    );
    assert_eq!(
        rel(&root, &r),
        want(&[
            ("d", "directory"),
            ("ext", "directory"),
            ("loop1", "file"),
            ("loop2", "file"),
            ("d/self", "directory"),
            ("d/up", "directory"),
            ("ext/o.txt", "file"),
        ]),
        "each directory is read at most once"
    );
    assert_eq!(r["truncated"], false);
    assert_eq!(r["errors"], json!([]));
    let r = s.call(
        "fs/walk",
        json!({"path": uri(&root), "options": opts(64, 10_000, 50_000, false)}),
    );
    assert_eq!(
        rel(&root, &r),
        want(&[
            ("d", "directory"),
            ("ext", "directory"),
            ("loop1", "file"),
            ("loop2", "file"),
            ("d/self", "directory"),
            ("d/up", "directory"),
        ]),
        "links to directories are not read without followDirectorySymlinks"
    );
}

#[test]
fn walk_limits_and_errors() {
    let t = TempDir::new("walk_errors");
    let root = tree(&t);
    let mut s = FsServer::start();
    let msg = "filesystem walk limits exceed maximums: depth=64, directories=10000, entries=50000";
    for o in [
        opts(65, 10_000, 50_000, false),
        opts(64, 10_001, 50_000, false),
        opts(64, 10_000, 50_001, false),
    ] {
        s.expect_err(
            "fs/walk",
            json!({"path": uri(&root), "options": o}),
            -32600,
            msg,
        );
    }
    // Missing required option members → params error.
    let (c, m) = s.fail(
        "fs/walk",
        json!({"path": uri(&root), "options": {"maxDepth": 1, "maxDirectories": 1, "maxEntries": 1}}),
    );
    assert_eq!(c, -32602, "{m}");
    let (c, m) = s.fail("fs/walk", json!({"path": uri(&root)}));
    assert_eq!(c, -32602, "{m}");
    s.expect_os_err(
        "fs/walk",
        json!({"path": uri(&t.join("nope")), "options": opts(1, 1, 1, false)}),
        -32004,
        2,
    );
    s.expect_err(
        "fs/walk",
        json!({"path": uri(&root.join("b.txt")), "options": opts(1, 1, 1, false)}),
        -32603,
        "Not a directory (os error 20)",
    );
}
