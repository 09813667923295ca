//! fs/copy (docs/protocol.md "Filesystem").

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
fn copy_file_with_permission_bits_and_overwrite() {
    let t = TempDir::new("copy_file");
    let mut s = FsServer::start();
    let src = t.join("src.sh");
    let data = pseudo_random(200_000, 7);
    fs::write(&src, &data).unwrap();
    chmod(&src, 0o754);
    let dst = t.join("dst.sh");
    assert_eq!(
        s.call(
            "fs/copy",
            json!({"sourcePath": uri(&src), "destinationPath": uri(&dst), "recursive": false})
        ),
        json!({})
    );
    assert_eq!(fs::read(&dst).unwrap(), data);
    assert_eq!(mode_of(&dst), 0o754);
    // Overwrite an existing, longer destination.
    let other = t.join("other");
    fs::write(&other, vec![b'z'; 500_000]).unwrap();
    s.call(
        "fs/copy",
        json!({"sourcePath": native(&src), "destinationPath": native(&other), "recursive": true, "sandbox": null}),
    );
    assert_eq!(fs::read(&other).unwrap(), data, "overwritten and truncated");
    // An empty file.
    fs::write(t.join("empty"), b"").unwrap();
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&t.join("empty")), "destinationPath": uri(&t.join("empty2")), "recursive": false}),
    );
    assert_eq!(fs::read(t.join("empty2")).unwrap(), b"");
}

#[test]
fn copy_requires_recursive_member() {
    let t = TempDir::new("copy_params");
    let mut s = FsServer::start();
    fs::write(t.join("a"), b"x").unwrap();
    let (c, m) = s.fail(
        "fs/copy",
        json!({"sourcePath": uri(&t.join("a")), "destinationPath": uri(&t.join("b"))}),
    );
    assert_eq!(c, -32602, "recursive is required: {m}");
    assert!(!exists(&t.join("b")));
}

#[test]
fn copy_symlink_is_copied_as_link() {
    let t = TempDir::new("copy_link");
    let mut s = FsServer::start();
    fs::write(t.join("target"), b"x").unwrap();
    symlink("target", t.join("rel"));
    symlink("does/not/exist", t.join("dangling"));
    fs::create_dir(t.join("dir")).unwrap();
    symlink("dir", t.join("dirlink"));
    for (name, target, recursive) in [
        ("rel", "target", false),
        ("dangling", "does/not/exist", false),
        ("dirlink", "dir", false),
    ] {
        let dst = t.join(format!("{name}.copy"));
        s.call(
            "fs/copy",
            json!({"sourcePath": uri(&t.join(name)), "destinationPath": uri(&dst), "recursive": recursive}),
        );
        let m = fs::symlink_metadata(&dst).unwrap();
        assert!(m.file_type().is_symlink(), "{name}: not a link");
        assert_eq!(fs::read_link(&dst).unwrap(), std::path::Path::new(target));
    }
}

#[test]
fn copy_directory_recursive_skips_special_files() {
    let t = TempDir::new("copy_tree");
    let mut s = FsServer::start();
    let src = t.join("src");
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::create_dir(src.join("empty")).unwrap();
    fs::write(src.join("top.txt"), b"top").unwrap();
    fs::write(src.join("a/b/deep.bin"), pseudo_random(70_000, 3)).unwrap();
    chmod(&src.join("a/b/deep.bin"), 0o600);
    fs::write(src.join("a/x.sh"), b"#!/bin/sh\n").unwrap();
    chmod(&src.join("a/x.sh"), 0o755);
    symlink("../top.txt", src.join("a/link"));
    symlink("nowhere", src.join("dangling"));
    mkfifo(&src.join("a/fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();

    let dst = t.join("dst");
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&src), "destinationPath": uri(&dst), "recursive": true}),
    );
    assert_eq!(fs::read(dst.join("top.txt")).unwrap(), b"top");
    assert_eq!(
        fs::read(dst.join("a/b/deep.bin")).unwrap(),
        pseudo_random(70_000, 3)
    );
    assert_eq!(mode_of(&dst.join("a/b/deep.bin")), 0o600);
    assert_eq!(mode_of(&dst.join("a/x.sh")), 0o755);
    assert!(dst.join("empty").is_dir());
    assert_eq!(
        fs::read_link(dst.join("a/link")).unwrap(),
        std::path::Path::new("../top.txt")
    );
    assert_eq!(
        fs::read_link(dst.join("dangling")).unwrap(),
        std::path::Path::new("nowhere")
    );
    assert!(!exists(&dst.join("a/fifo")), "FIFO must be skipped");
    assert!(!exists(&dst.join("sock")), "socket must be skipped");
    // The source is untouched.
    assert!(src.join("a/fifo").exists());
}

#[test]
fn copy_directory_errors() {
    let t = TempDir::new("copy_dir_errors");
    let mut s = FsServer::start();
    let src = t.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f"), b"x").unwrap();

    // Not recursive: refused, nothing created.
    s.expect_err(
        "fs/copy",
        json!({"sourcePath": uri(&src), "destinationPath": uri(&t.join("d1")), "recursive": false}),
        -32600,
        "fs/copy requires recursive: true when sourcePath is a directory",
    );
    assert!(!exists(&t.join("d1")));

    // Into itself or a descendant, also through a link.
    symlink("src", t.join("srclink"));
    for dst in [
        src.clone(),
        src.join("sub/inner"),
        src.join("new"),
        t.join("srclink/new"),
    ] {
        s.expect_err(
            "fs/copy",
            json!({"sourcePath": uri(&src), "destinationPath": uri(&dst), "recursive": true}),
            -32600,
            "fs/copy cannot copy a directory to itself or one of its descendants",
        );
    }
    assert!(!exists(&src.join("sub/inner")) && !exists(&src.join("new")));
    // A sibling whose name merely starts with the source's name is fine.
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&src), "destinationPath": uri(&t.join("src2")), "recursive": true}),
    );
    assert!(t.join("src2/sub").is_dir());

    // Destination directory exists.
    fs::create_dir(t.join("exists")).unwrap();
    s.expect_err(
        "fs/copy",
        json!({"sourcePath": uri(&src), "destinationPath": uri(&t.join("exists")), "recursive": true}),
        -32603,
        "File exists (os error 17)",
    );
    assert!(!exists(&t.join("exists/sub")));

    // Missing source.
    s.expect_os_err(
        "fs/copy",
        json!({"sourcePath": uri(&t.join("nope")), "destinationPath": uri(&t.join("d2")), "recursive": true}),
        -32004,
        2,
    );
}

#[test]
fn copy_special_source_and_missing_parent() {
    let t = TempDir::new("copy_special");
    let mut s = FsServer::start();
    mkfifo(&t.join("fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(t.join("sock")).unwrap();
    for src in [t.join("fifo"), t.join("sock"), "/dev/null".into()] {
        for recursive in [false, true] {
            s.expect_err(
                "fs/copy",
                json!({"sourcePath": uri(&src), "destinationPath": uri(&t.join("out")), "recursive": recursive}),
                -32600,
                "fs/copy only supports regular files, directories, and symlinks",
            );
        }
    }
    assert!(!exists(&t.join("out")));
    fs::write(t.join("f"), b"x").unwrap();
    s.expect_os_err(
        "fs/copy",
        json!({"sourcePath": uri(&t.join("f")), "destinationPath": uri(&t.join("no/such/f")), "recursive": false}),
        -32004,
        2,
    );
}

#[test]
fn copy_hard_links_become_separate_files() {
    let t = TempDir::new("copy_hardlinks");
    let mut s = FsServer::start();
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"shared").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    let dst = t.join("dst");
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&src), "destinationPath": uri(&dst), "recursive": true}),
    );
    let (a, b) = (
        fs::metadata(dst.join("a")).unwrap(),
        fs::metadata(dst.join("b")).unwrap(),
    );
    let sa = fs::metadata(src.join("a")).unwrap();
    assert_ne!(a.ino(), b.ino(), "hard links copied as separate files");
    assert_ne!(a.ino(), sa.ino());
    assert_eq!(a.nlink(), 1);
    fs::write(dst.join("a"), b"changed").unwrap();
    assert_eq!(fs::read(dst.join("b")).unwrap(), b"shared");
    assert_eq!(fs::read(src.join("a")).unwrap(), b"shared");
    // A single hard-linked file copied on its own.
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&src.join("b")), "destinationPath": uri(&t.join("single")), "recursive": false}),
    );
    assert_eq!(fs::metadata(t.join("single")).unwrap().nlink(), 1);
    assert_eq!(fs::read(t.join("single")).unwrap(), b"shared");
}
