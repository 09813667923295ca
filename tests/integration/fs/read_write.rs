//! fs/readFile, fs/writeFile, fs/getMetadata (docs/protocol.md "Filesystem").

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[test]
fn read_file_empty_and_small() {
    let t = TempDir::new("read_small");
    let mut s = FsServer::start();
    fs::write(t.join("empty"), b"").unwrap();
    let r = s.call("fs/readFile", json!({"path": uri(&t.join("empty"))}));
    assert_eq!(r, json!({"dataBase64": ""}));

    let data: Vec<u8> = (0..=255u8).cycle().take(70_001).collect();
    fs::write(t.join("bin"), &data).unwrap();
    let r = s.call(
        "fs/readFile",
        json!({"path": uri(&t.join("bin")), "followSymlinks": true, "sandbox": null}),
    );
    assert_eq!(unb64(&r["dataBase64"]), data);
    // Plain absolute path (Tether extension).
    let r = s.call("fs/readFile", json!({"path": native(&t.join("bin"))}));
    assert_eq!(unb64(&r["dataBase64"]), data);
}

#[test]
fn read_file_100_mib_compared_by_hash() {
    let t = TempDir::new("read_100mib");
    let size = 100 * 1024 * 1024;
    let want = {
        let data = pseudo_random(size, 0x1234_5678_9abc_def1);
        fs::write(t.join("big"), &data).unwrap();
        fnv1a64(&data)
    };
    fs::write(t.join("small"), b"small").unwrap();
    let mut s = FsServer::start();
    // Both at once: each is answered whole, the small one's line intact next to a
    // 140 MB one. (Which comes first is a race: the big file is encoded while it
    // is written, so its result is ready as soon as the file is opened.)
    let big_id = s.send("fs/readFile", json!({"path": uri(&t.join("big"))}));
    let small_id = s.send("fs/readFile", json!({"path": uri(&t.join("small"))}));
    let small = s.wait_msg(small_id);
    assert_eq!(small.value["result"]["dataBase64"], b64(b"small"));
    let big = s.wait_msg_timeout(&json!(big_id), Duration::from_secs(90));
    let r = big.value;
    let got = unb64(&r["result"]["dataBase64"]);
    assert_eq!(got.len(), size);
    assert_eq!(fnv1a64(&got), want, "content differs (hash)");
}

/// Files from 1 MiB up are encoded while they are written, in blocks of 768 KiB
/// (a multiple of 3): every size around those boundaries gives exactly the
/// standard encoding, padding included, and the server keeps serving.
#[test]
fn read_file_streamed_sizes_around_block_boundaries() {
    let t = TempDir::new("read_streamed");
    let mut s = FsServer::start();
    let block = 3 << 18;
    for size in [
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (1 << 20) + 2,
        2 * block,
        2 * block + 1,
        2 * block + 2,
        3 * block - 1,
    ] {
        let data = pseudo_random(size, size as u64);
        let p = t.join(format!("f{size}"));
        fs::write(&p, &data).unwrap();
        let r = s.call("fs/readFile", json!({"path": uri(&p)}));
        assert_eq!(r["dataBase64"], b64(&data), "{size} bytes");
    }
    assert_eq!(
        s.call("environment/status", json!({})),
        json!({"status": "ready"})
    );
}

#[test]
fn read_file_over_limit_is_refused() {
    let t = TempDir::new("read_too_large");
    let f = fs::File::create(t.join("sparse")).unwrap();
    f.set_len(536_870_913).unwrap(); // sparse: no disk used
    drop(f);
    let mut s = FsServer::start();
    s.expect_err(
        "fs/readFile",
        json!({"path": uri(&t.join("sparse"))}),
        -32600,
        "file is too large to read: limit is 536870912 bytes",
    );
}

#[test]
fn read_file_proc_files_that_report_size_zero() {
    let mut s = FsServer::start();
    let m = s.call(
        "fs/getMetadata",
        json!({"path": "file:///proc/self/status"}),
    );
    assert_eq!(m["isFile"], true);
    assert_eq!(m["size"], 0, "premise: /proc files report size 0");
    let r = s.call("fs/readFile", json!({"path": "file:///proc/self/status"}));
    let text = String::from_utf8(unb64(&r["dataBase64"])).unwrap();
    assert!(text.starts_with("Name:"), "{text:.200}");
    assert!(
        text.contains(&format!("\nPid:\t{}\n", s.pid())),
        "{text:.400}"
    );
    let r = s.call("fs/readFile", json!({"path": "/proc/self/cmdline"}));
    let cmdline = unb64(&r["dataBase64"]);
    assert!(cmdline.ends_with(b"exec-server\0"), "{cmdline:?}");
}

#[test]
fn read_file_not_a_file() {
    let t = TempDir::new("read_not_file");
    let mut s = FsServer::start();
    fs::create_dir(t.join("dir")).unwrap();
    mkfifo(&t.join("fifo"));
    fs::create_dir(t.join("a dir")).unwrap();
    for name in ["dir", "fifo", "a dir"] {
        let p = t.join(name);
        let start = Instant::now();
        s.expect_err(
            "fs/readFile",
            json!({"path": uri(&p)}),
            -32600,
            &format!("path `{}` is not a file", native(&p)),
        );
        assert!(start.elapsed() < Duration::from_secs(5), "{name} blocked");
    }
    s.expect_err(
        "fs/readFile",
        json!({"path": "/dev/null"}),
        -32600,
        "path `/dev/null` is not a file",
    );
    // The message names the decoded, normalised path.
    s.expect_err(
        "fs/readFile",
        json!({"path": format!("{}/./a%20dir/", uri(t.path()))}),
        -32600,
        &format!("path `{}` is not a file", native(&t.join("a dir"))),
    );
}

#[test]
fn read_file_socket_is_not_a_file() {
    let t = TempDir::new("read_socket");
    let mut s = FsServer::start();
    let p = t.join("sock");
    let _sock = UnixListener::bind(&p).unwrap();
    s.expect_err(
        "fs/readFile",
        json!({"path": uri(&p)}),
        -32600,
        &format!("path `{}` is not a file", native(&p)),
    );
}

#[test]
fn read_file_missing_and_not_a_directory() {
    let t = TempDir::new("read_missing");
    let mut s = FsServer::start();
    s.expect_os_err(
        "fs/readFile",
        json!({"path": uri(&t.join("nope"))}),
        -32004,
        2,
    );
    s.expect_os_err(
        "fs/readFile",
        json!({"path": uri(&t.join("nodir/nope"))}),
        -32004,
        2,
    );
    fs::write(t.join("file"), b"x").unwrap();
    s.expect_os_err(
        "fs/readFile",
        json!({"path": uri(&t.join("file/below"))}),
        -32603,
        20,
    );
}

#[test]
fn read_file_follow_symlinks_false() {
    let t = TempDir::new("read_nofollow");
    let mut s = FsServer::start();
    fs::create_dir(t.join("real")).unwrap();
    fs::write(t.join("real/f.txt"), b"content").unwrap();
    symlink("real", t.join("linkdir"));
    symlink("real/f.txt", t.join("linkf"));

    for p in [t.join("linkdir/f.txt"), t.join("linkf")] {
        // Followed by default and with true.
        let r = s.call("fs/readFile", json!({"path": uri(&p)}));
        assert_eq!(unb64(&r["dataBase64"]), b"content");
        let r = s.call(
            "fs/readFile",
            json!({"path": uri(&p), "followSymlinks": true}),
        );
        assert_eq!(unb64(&r["dataBase64"]), b"content");
        s.expect_err(
            "fs/readFile",
            json!({"path": uri(&p), "followSymlinks": false}),
            -32600,
            &format!("path `{}` contains a symbolic link", native(&p)),
        );
    }
    // The message names the normalised path.
    s.expect_err(
        "fs/readFile",
        json!({"path": format!("{}/./linkdir//f.txt", native(t.path())), "followSymlinks": false}),
        -32600,
        &format!(
            "path `{}` contains a symbolic link",
            native(&t.join("linkdir/f.txt"))
        ),
    );
    // No link at all: fine.
    let r = s.call(
        "fs/readFile",
        json!({"path": uri(&t.join("real/f.txt")), "followSymlinks": false}),
    );
    assert_eq!(unb64(&r["dataBase64"]), b"content");
}

#[test]
fn read_file_bad_params() {
    let mut s = FsServer::start();
    let (c, _) = s.fail("fs/readFile", json!({}));
    assert_eq!(c, -32602);
    let (c, _) = s.fail("fs/readFile", serde_json::Value::Null);
    assert_eq!(c, -32602);
    let (c, _) = s.fail("fs/readFile", json!({"path": 5}));
    assert_eq!(c, -32602);
    // Params are decoded before the method's own checks (docs/protocol.md "Transport").
    let (c, m) = s.fail(
        "fs/readFile",
        json!({"path": "/no/such/file", "followSymlinks": "no"}),
    );
    assert_eq!(c, -32602, "{m}");
    let (c, _) = s.fail("fs/close", serde_json::Value::Null);
    assert_eq!(c, -32602);
    // Unknown members are ignored.
    let r = s.call(
        "fs/getMetadata",
        json!({"path": "/", "extra": {"deep": [1, 2]}}),
    );
    assert_eq!(r["isDirectory"], true);
}

#[test]
fn write_file_creates_truncates_and_uses_umask() {
    let t = TempDir::new("write_basic");
    let mut s = FsServer::start_with(Opts {
        umask: Some(0o027),
        ..Opts::default()
    });
    let p = t.join("new.txt");
    assert_eq!(
        s.call(
            "fs/writeFile",
            json!({"path": uri(&p), "dataBase64": b64(&[b'x'; 1000])})
        ),
        json!({})
    );
    assert_eq!(fs::read(&p).unwrap(), vec![b'x'; 1000]);
    assert_eq!(mode_of(&p), 0o640, "0666 minus umask 027");
    // Truncates.
    s.call(
        "fs/writeFile",
        json!({"path": uri(&p), "dataBase64": "aGkK"}),
    );
    assert_eq!(fs::read(&p).unwrap(), b"hi\n");
    // Empty content.
    s.call(
        "fs/writeFile",
        json!({"path": native(&p), "dataBase64": "", "followSymlinks": true, "sandbox": null}),
    );
    assert_eq!(fs::read(&p).unwrap(), b"");

    let mut s2 = FsServer::start_with(Opts {
        umask: Some(0o002),
        ..Opts::default()
    });
    let q = t.join("other.txt");
    s2.call(
        "fs/writeFile",
        json!({"path": uri(&q), "dataBase64": "eA=="}),
    );
    assert_eq!(mode_of(&q), 0o664, "0666 minus umask 002");
}

#[test]
fn write_file_codex_apply_patch_sequence() {
    let t = TempDir::new("write_apply_patch");
    let mut s = FsServer::start();
    let p = t.join("src/deep/nested/new.rs");
    let data = b64(b"fn main() {}\n");
    s.expect_os_err(
        "fs/writeFile",
        json!({"path": uri(&p), "dataBase64": data, "sandbox": null}),
        -32004,
        2,
    );
    assert!(!exists(&t.join("src")), "failed write created something");
    s.call(
        "fs/createDirectory",
        json!({"path": uri(p.parent().unwrap()), "recursive": true, "sandbox": null}),
    );
    s.call(
        "fs/writeFile",
        json!({"path": uri(&p), "dataBase64": data, "sandbox": null}),
    );
    assert_eq!(fs::read(&p).unwrap(), b"fn main() {}\n");
}

#[test]
fn write_file_invalid_base64() {
    let t = TempDir::new("write_bad_b64");
    let mut s = FsServer::start();
    let p = t.join("x");
    for bad in ["!!!!", "aGk=K", "a"] {
        let (c, m) = s.fail("fs/writeFile", json!({"path": uri(&p), "dataBase64": bad}));
        assert_eq!(c, -32600, "{bad}: {m}");
        let prefix = "fs/writeFile requires valid base64 dataBase64: ";
        assert!(
            m.starts_with(prefix) && m.len() > prefix.len(),
            "{bad}: {m:?}"
        );
    }
    let (c, _) = s.fail("fs/writeFile", json!({"path": uri(&p)}));
    assert_eq!(c, -32602, "missing dataBase64");
}

#[test]
fn write_file_directory_in_the_way_and_special_files() {
    let t = TempDir::new("write_special");
    let mut s = FsServer::start();
    fs::create_dir(t.join("dir")).unwrap();
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&t.join("dir")), "dataBase64": "eA=="}),
        -32603,
        "Is a directory (os error 21)",
    );
    // A FIFO without a reader fails at once (non-blocking open: ENXIO).
    mkfifo(&t.join("fifo"));
    let start = Instant::now();
    let (c, m) = s.fail(
        "fs/writeFile",
        json!({"path": uri(&t.join("fifo")), "dataBase64": "eA=="}),
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "FIFO write blocked"
    );
    assert_eq!(c, -32603, "{m}");
    assert!(m.ends_with("(os error 6)"), "{m}");
    // A file where a directory is expected.
    fs::write(t.join("file"), b"x").unwrap();
    s.expect_os_err(
        "fs/writeFile",
        json!({"path": uri(&t.join("file/x")), "dataBase64": "eA=="}),
        -32603,
        20,
    );
}

#[test]
fn write_file_proc_is_refused_even_for_root() {
    // Writing a read-only /proc file fails with EINVAL (root) or EACCES
    // (others); both map to -32600.
    let mut s = FsServer::start();
    let (c, m) = s.fail(
        "fs/writeFile",
        json!({"path": "/proc/self/status", "dataBase64": "eA=="}),
    );
    assert_eq!(c, -32600, "{m}");
    assert!(
        m == "Invalid argument (os error 22)" || m == "Permission denied (os error 13)",
        "{m}"
    );
}

#[test]
fn write_file_symlinks() {
    let t = TempDir::new("write_links");
    let mut s = FsServer::start();
    fs::create_dir(t.join("real")).unwrap();
    fs::write(t.join("real/f"), b"old").unwrap();
    symlink("real", t.join("ld"));
    symlink("real/f", t.join("lf"));
    for p in [t.join("ld/f"), t.join("lf")] {
        s.expect_err(
            "fs/writeFile",
            json!({"path": uri(&p), "dataBase64": b64(b"new"), "followSymlinks": false}),
            -32600,
            &format!("path `{}` contains a symbolic link", native(&p)),
        );
        assert_eq!(fs::read(t.join("real/f")).unwrap(), b"old");
    }
    // A new file below a linked directory is refused too.
    let p = t.join("ld/new");
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&p), "dataBase64": b64(b"new"), "followSymlinks": false}),
        -32600,
        &format!("path `{}` contains a symbolic link", native(&p)),
    );
    assert!(!exists(&t.join("real/new")));
    // A dangling final link is refused too, and nothing is created.
    symlink("real/created-through-link", t.join("dangling"));
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&t.join("dangling")), "dataBase64": "eA==", "followSymlinks": false}),
        -32600,
        &format!(
            "path `{}` contains a symbolic link",
            native(&t.join("dangling"))
        ),
    );
    assert!(!exists(&t.join("real/created-through-link")));
    // Followed by default: the target is written, the link stays a link.
    s.call(
        "fs/writeFile",
        json!({"path": uri(&t.join("lf")), "dataBase64": b64(b"new")}),
    );
    assert_eq!(fs::read(t.join("real/f")).unwrap(), b"new");
    assert!(fs::symlink_metadata(t.join("lf"))
        .unwrap()
        .file_type()
        .is_symlink());
}

// ---------------------------------------------------------------- getMetadata

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn get_metadata_file_and_member_order() {
    let t = TempDir::new("meta_file");
    let mut s = FsServer::start();
    let before = now_ms();
    let p = t.join("f.txt");
    fs::write(&p, b"12345").unwrap();
    let after = now_ms();
    let msg = s.request_msg("fs/getMetadata", json!({"path": uri(&p)}));
    assert_eq!(
        member_order(&msg.raw, &["result"]),
        [
            "isDirectory",
            "isFile",
            "isSymlink",
            "size",
            "createdAtMs",
            "modifiedAtMs"
        ]
    );
    let m = &msg.value["result"];
    assert_eq!(m["isDirectory"], false);
    assert_eq!(m["isFile"], true);
    assert_eq!(m["isSymlink"], false);
    assert_eq!(m["size"], 5);
    let mtime = m["modifiedAtMs"].as_i64().expect("modifiedAtMs integer");
    assert!(
        mtime >= before - 2000 && mtime <= after + 2000,
        "modifiedAtMs {mtime} not in [{before}, {after}]"
    );
    let ctime = m["createdAtMs"].as_i64().expect("createdAtMs integer");
    assert!(
        ctime == 0 || (ctime >= before - 2000 && ctime <= after + 2000),
        "createdAtMs {ctime}"
    );

    // A known modification time, to the millisecond.
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        .unwrap();
    drop(f);
    let m = s.call("fs/getMetadata", json!({"path": native(&p)}));
    assert_eq!(m["modifiedAtMs"], 1_700_000_000_123i64);
}

#[test]
fn get_metadata_dirs_links_and_special_files() {
    let t = TempDir::new("meta_kinds");
    let mut s = FsServer::start();
    fs::create_dir(t.join("dir")).unwrap();
    fs::write(t.join("f"), b"abc").unwrap();
    symlink("f", t.join("lf"));
    symlink("dir", t.join("ld"));
    symlink("nowhere", t.join("dangling"));
    mkfifo(&t.join("fifo"));
    let _sock = UnixListener::bind(t.join("sock")).unwrap();

    let m = s.call("fs/getMetadata", json!({"path": uri(&t.join("dir"))}));
    assert_eq!(
        (&m["isDirectory"], &m["isFile"], &m["isSymlink"]),
        (&json!(true), &json!(false), &json!(false))
    );
    let m = s.call("fs/getMetadata", json!({"path": uri(&t.join("lf"))}));
    assert_eq!(
        (&m["isDirectory"], &m["isFile"], &m["isSymlink"], &m["size"]),
        (&json!(false), &json!(true), &json!(true), &json!(3)),
        "link to file: {m}"
    );
    let m = s.call("fs/getMetadata", json!({"path": uri(&t.join("ld"))}));
    assert_eq!(
        (&m["isDirectory"], &m["isFile"], &m["isSymlink"]),
        (&json!(true), &json!(false), &json!(true)),
        "link to dir: {m}"
    );
    s.expect_os_err(
        "fs/getMetadata",
        json!({"path": uri(&t.join("dangling"))}),
        -32004,
        2,
    );
    s.expect_os_err(
        "fs/getMetadata",
        json!({"path": uri(&t.join("nope"))}),
        -32004,
        2,
    );
    for name in ["fifo", "sock"] {
        let m = s.call("fs/getMetadata", json!({"path": uri(&t.join(name))}));
        assert_eq!(
            (&m["isDirectory"], &m["isFile"], &m["isSymlink"]),
            (&json!(false), &json!(false), &json!(false)),
            "{name}: {m}"
        );
    }
    let m = s.call("fs/getMetadata", json!({"path": "/dev/null"}));
    assert_eq!(
        (&m["isDirectory"], &m["isFile"]),
        (&json!(false), &json!(false))
    );
}

#[test]
fn get_metadata_follow_symlinks_false() {
    let t = TempDir::new("meta_nofollow");
    let mut s = FsServer::start();
    fs::create_dir(t.join("dir")).unwrap();
    fs::write(t.join("dir/f"), b"abcdef").unwrap();
    symlink("dir/f", t.join("lf"));
    symlink("dir", t.join("ld"));
    symlink("no/such/target", t.join("dangling"));
    // A final link is reported itself, as lstat does.
    for (name, target) in [
        ("lf", "dir/f"),
        ("ld", "dir"),
        ("dangling", "no/such/target"),
    ] {
        let m = s.call(
            "fs/getMetadata",
            json!({"path": uri(&t.join(name)), "followSymlinks": false}),
        );
        assert_eq!(m["isSymlink"], true, "{name}: {m}");
        assert_eq!(
            (&m["isDirectory"], &m["isFile"]),
            (&json!(false), &json!(false)),
            "{name}: the link itself is neither a file nor a directory: {m}"
        );
        assert_eq!(
            m["size"],
            target.len(),
            "{name}: lstat size is the target text length"
        );
    }
    // A link in a middle component is refused.
    let p = t.join("ld/f");
    s.expect_err(
        "fs/getMetadata",
        json!({"path": uri(&p), "followSymlinks": false}),
        -32600,
        &format!("path `{}` contains a symbolic link", native(&p)),
    );
    let m = s.call(
        "fs/getMetadata",
        json!({"path": uri(&t.join("dir/f")), "followSymlinks": false}),
    );
    assert_eq!((&m["isFile"], &m["size"]), (&json!(true), &json!(6)));
}
