//! fs/open, fs/readBlock, fs/writeBlock, fs/close (docs/protocol.md "Filesystem").

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::io::Write;

#[test]
fn open_read_random_offsets_and_eof() {
    let t = TempDir::new("handle_random");
    let size = 3 * 1024 * 1024 + 17;
    let data = pseudo_random(size, 99);
    let p = t.join("data");
    fs::write(&p, &data).unwrap();
    let mut s = FsServer::start();
    assert_eq!(
        s.call("fs/open", json!({"handleId": "h", "path": uri(&p)})),
        json!({"handleId": "h"})
    );
    let mut rng = Rng(0xfeed_beef);
    let mut reqs = Vec::new();
    for _ in 0..60 {
        let offset = rng.below(size as u64 + 1000);
        let len = 1 + rng.below(1_048_576);
        let id = s.send(
            "fs/readBlock",
            json!({"handleId": "h", "offset": offset, "len": len}),
        );
        reqs.push((id, offset, len));
    }
    for (id, offset, len) in reqs {
        let r = s.wait(id);
        let r = &r["result"];
        let from = (offset as usize).min(size);
        let to = ((offset + len) as usize).min(size);
        assert_eq!(
            unb64(&r["chunk"]),
            &data[from..to],
            "offset {offset} len {len}"
        );
        assert_eq!(
            r["eof"],
            offset + len >= size as u64,
            "offset {offset} len {len}"
        );
    }
    // Sequential 1 MiB blocks; only the last says eof.
    let mut got = Vec::new();
    let mut off = 0u64;
    loop {
        let r = s.call(
            "fs/readBlock",
            json!({"handleId": "h", "offset": off, "len": 1_048_576}),
        );
        let chunk = unb64(&r["chunk"]);
        off += chunk.len() as u64;
        got.extend_from_slice(&chunk);
        if r["eof"] == true {
            break;
        }
        assert_eq!(chunk.len(), 1_048_576);
    }
    assert_eq!(fnv1a64(&got), fnv1a64(&data));
    assert_eq!(s.call("fs/close", json!({"handleId": "h"})), json!({}));
}

#[test]
fn read_block_eof_edges() {
    let t = TempDir::new("handle_eof");
    let p = t.join("ten");
    fs::write(&p, b"0123456789").unwrap();
    let mut s = FsServer::start();
    s.call(
        "fs/open",
        json!({"handleId": "e", "path": uri(&p), "mode": "read"}),
    );
    let rb = |s: &mut FsServer, offset: u64, len: u64| {
        let r = s.call(
            "fs/readBlock",
            json!({"handleId": "e", "offset": offset, "len": len}),
        );
        (unb64(&r["chunk"]), r["eof"].as_bool().expect("eof bool"))
    };
    assert_eq!(rb(&mut s, 0, 4), (b"0123".to_vec(), false));
    assert_eq!(
        rb(&mut s, 6, 4),
        (b"6789".to_vec(), true),
        "ends exactly at EOF"
    );
    assert_eq!(rb(&mut s, 0, 10), (b"0123456789".to_vec(), true));
    assert_eq!(rb(&mut s, 8, 100), (b"89".to_vec(), true));
    assert_eq!(rb(&mut s, 10, 1), (vec![], true), "at the end");
    assert_eq!(rb(&mut s, 1000, 5), (vec![], true), "past the end");
    // eof compares with the file's current size.
    fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(b"abcde")
        .unwrap();
    assert_eq!(rb(&mut s, 6, 4), (b"6789".to_vec(), false), "file grew");
    assert_eq!(rb(&mut s, 10, 10), (b"abcde".to_vec(), true));
    // An empty file.
    fs::write(t.join("empty"), b"").unwrap();
    s.call(
        "fs/open",
        json!({"handleId": "z", "path": uri(&t.join("empty"))}),
    );
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": "z", "offset": 0, "len": 1}),
    );
    assert_eq!(r, json!({"chunk": "", "eof": true}));
}

#[test]
fn open_read_pins_the_inode() {
    let t = TempDir::new("handle_pin");
    let p = t.join("f");
    fs::write(&p, b"old content").unwrap();
    let mut s = FsServer::start();
    s.call(
        "fs/open",
        json!({"handleId": "pin", "path": uri(&p), "sandbox": null}),
    );
    fs::write(t.join("f.tmp"), b"NEW").unwrap();
    fs::rename(t.join("f.tmp"), &p).unwrap();
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": "pin", "offset": 0, "len": 100}),
    );
    assert_eq!(unb64(&r["chunk"]), b"old content");
    assert_eq!(r["eof"], true);
    let r = s.call("fs/readFile", json!({"path": uri(&p)}));
    assert_eq!(unb64(&r["dataBase64"]), b"NEW");
    fs::remove_file(&p).unwrap();
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": "pin", "offset": 4, "len": 100}),
    );
    assert_eq!(unb64(&r["chunk"]), b"content");
}

#[test]
fn open_replace_write_block_and_gaps() {
    let t = TempDir::new("handle_replace");
    let mut s = FsServer::start_with(Opts {
        umask: Some(0o027),
        ..Opts::default()
    });
    let p = t.join("out");
    assert_eq!(
        s.call(
            "fs/open",
            json!({"handleId": "w", "path": uri(&p), "mode": "replace"})
        ),
        json!({"handleId": "w"})
    );
    assert_eq!(fs::read(&p).unwrap(), b"", "created at once");
    assert_eq!(mode_of(&p), 0o640, "0666 minus umask");
    assert_eq!(
        s.call(
            "fs/writeBlock",
            json!({"handleId": "w", "offset": 0, "chunk": b64(b"abc")})
        ),
        json!({})
    );
    assert_eq!(fs::read(&p).unwrap(), b"abc", "visible before close");
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 10, "chunk": b64(b"Z")}),
    );
    assert_eq!(
        fs::read(&p).unwrap(),
        b"abc\0\0\0\0\0\0\0Z",
        "gap reads as zeros"
    );
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 1, "chunk": b64(b"XY")}),
    );
    assert_eq!(fs::read(&p).unwrap(), b"aXY\0\0\0\0\0\0\0Z", "in place");
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 3, "chunk": ""}),
    );
    assert_eq!(s.call("fs/close", json!({"handleId": "w"})), json!({}));
    assert_eq!(fs::read(&p).unwrap(), b"aXY\0\0\0\0\0\0\0Z");
    // After close the id is unknown.
    s.expect_err(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": "eA=="}),
        -32004,
        "unknown file handle `w`",
    );

    // Replace truncates an existing file.
    let q = t.join("existing");
    fs::write(&q, b"old old old").unwrap();
    s.call(
        "fs/open",
        json!({"handleId": "w2", "path": native(&q), "mode": "replace"}),
    );
    assert_eq!(fs::read(&q).unwrap(), b"");
    let big = pseudo_random(1_500_000, 5);
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w2", "offset": 0, "chunk": b64(&big)}),
    );
    s.call("fs/close", json!({"handleId": "w2"}));
    assert_eq!(fs::read(&q).unwrap(), big);

    // Missing parent.
    s.expect_os_err(
        "fs/open",
        json!({"handleId": "w3", "path": uri(&t.join("no/such")), "mode": "replace"}),
        -32004,
        2,
    );
    assert!(!exists(&t.join("no")));
}

#[test]
fn open_errors() {
    let t = TempDir::new("handle_open_errors");
    let mut s = FsServer::start();
    fs::create_dir(t.join("dir")).unwrap();
    mkfifo(&t.join("fifo"));
    fs::write(t.join("f"), b"x").unwrap();
    for name in ["dir", "fifo"] {
        let p = t.join(name);
        let start = std::time::Instant::now();
        s.expect_err(
            "fs/open",
            json!({"handleId": name, "path": uri(&p)}),
            -32600,
            &format!("path `{}` is not a file", native(&p)),
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{name} blocked"
        );
    }
    s.expect_os_err(
        "fs/open",
        json!({"handleId": "m", "path": uri(&t.join("missing"))}),
        -32004,
        2,
    );
    // Failed opens did not take their ids.
    s.call(
        "fs/open",
        json!({"handleId": "dir", "path": uri(&t.join("f"))}),
    );
    s.expect_err(
        "fs/open",
        json!({"handleId": "dir", "path": uri(&t.join("f"))}),
        -32600,
        "file handle `dir` already exists",
    );
    s.expect_err(
        "fs/open",
        json!({"handleId": "dir", "path": uri(&t.join("new")), "mode": "replace"}),
        -32600,
        "file handle `dir` already exists",
    );
    assert!(
        !exists(&t.join("new")),
        "a refused replace must not create the file"
    );
    let (c, m) = s.fail(
        "fs/open",
        json!({"handleId": "x", "path": uri(&t.join("f")), "mode": "append"}),
    );
    assert_eq!(c, -32602, "unknown mode: {m}");
}

#[test]
fn open_socket_is_not_a_file() {
    let t = TempDir::new("handle_socket");
    let p = t.join("sock");
    let _sock = std::os::unix::net::UnixListener::bind(&p).unwrap();
    let mut s = FsServer::start();
    s.expect_err(
        "fs/open",
        json!({"handleId": "s", "path": uri(&p)}),
        -32600,
        &format!("path `{}` is not a file", native(&p)),
    );
}

#[test]
fn write_block_far_past_the_end() {
    let t = TempDir::new("handle_sparse");
    let p = t.join("sparse");
    let mut s = FsServer::start();
    s.call(
        "fs/open",
        json!({"handleId": "w", "path": uri(&p), "mode": "replace"}),
    );
    let off: u64 = 1 << 30;
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": off, "chunk": b64(b"end")}),
    );
    s.call("fs/close", json!({"handleId": "w"}));
    assert_eq!(fs::metadata(&p).unwrap().len(), off + 3);
    s.call("fs/open", json!({"handleId": "r", "path": uri(&p)}));
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": "r", "offset": off - 5, "len": 100}),
    );
    assert_eq!(unb64(&r["chunk"]), b"\0\0\0\0\0end");
    assert_eq!(r["eof"], true);
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": "r", "offset": 12345, "len": 4}),
    );
    assert_eq!(r, json!({"chunk": b64(&[0; 4]), "eof": false}));
}

#[test]
fn handle_ids_and_block_lengths() {
    let t = TempDir::new("handle_ids");
    let p = t.join("f");
    fs::write(&p, b"data").unwrap();
    let mut s = FsServer::start();
    let id32 = "a".repeat(32);
    s.call("fs/open", json!({"handleId": id32, "path": uri(&p)}));
    s.expect_err(
        "fs/open",
        json!({"handleId": "a".repeat(33), "path": uri(&p)}),
        -32600,
        "file read handle ID must not exceed 32 bytes",
    );
    // Bytes, not characters: 11 × "é" is 22 bytes (fine), 17 × is 34.
    s.call(
        "fs/open",
        json!({"handleId": "é".repeat(11), "path": uri(&p)}),
    );
    s.expect_err(
        "fs/open",
        json!({"handleId": "é".repeat(17), "path": uri(&p)}),
        -32600,
        "file read handle ID must not exceed 32 bytes",
    );
    s.expect_err(
        "fs/open",
        json!({"handleId": "", "path": uri(&p)}),
        -32600,
        "file read handle ID must not be empty",
    );
    for len in [0u64, 1_048_577] {
        s.expect_err(
            "fs/readBlock",
            json!({"handleId": id32, "offset": 0, "len": len}),
            -32600,
            "file read block length must be between 1 and 1048576",
        );
    }
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": id32, "offset": 0, "len": 1_048_576}),
    );
    assert_eq!(r, json!({"chunk": b64(b"data"), "eof": true}));
    let r = s.call(
        "fs/readBlock",
        json!({"handleId": id32, "offset": 3, "len": 1}),
    );
    assert_eq!(r, json!({"chunk": b64(b"a"), "eof": true}));
}

#[test]
fn handle_mode_and_unknown_errors() {
    let t = TempDir::new("handle_modes");
    let p = t.join("f");
    fs::write(&p, b"data").unwrap();
    let mut s = FsServer::start();
    s.call("fs/open", json!({"handleId": "r", "path": uri(&p)}));
    s.call(
        "fs/open",
        json!({"handleId": "w", "path": uri(&t.join("g")), "mode": "replace"}),
    );
    s.expect_err(
        "fs/readBlock",
        json!({"handleId": "w", "offset": 0, "len": 10}),
        -32600,
        "file handle `w` is not open for reading",
    );
    s.expect_err(
        "fs/writeBlock",
        json!({"handleId": "r", "offset": 0, "chunk": "eA=="}),
        -32600,
        "file handle `r` is not open for writing",
    );
    assert_eq!(fs::read(&p).unwrap(), b"data");
    s.expect_err(
        "fs/readBlock",
        json!({"handleId": "ghost", "offset": 0, "len": 10}),
        -32004,
        "unknown file handle `ghost`",
    );
    s.expect_err(
        "fs/writeBlock",
        json!({"handleId": "ghost", "offset": 0, "chunk": "eA=="}),
        -32004,
        "unknown file handle `ghost`",
    );
    let (c, m) = s.fail(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": "!!"}),
    );
    assert_eq!(c, -32602, "invalid base64 chunk: {m}");
    let (c, m) = s.fail(
        "fs/readBlock",
        json!({"handleId": "r", "offset": -1, "len": 1}),
    );
    assert_eq!(c, -32602, "negative offset: {m}");
    // Close: unknown, twice, then the id is gone.
    assert_eq!(s.call("fs/close", json!({"handleId": "ghost"})), json!({}));
    assert_eq!(s.call("fs/close", json!({"handleId": "r"})), json!({}));
    assert_eq!(s.call("fs/close", json!({"handleId": "r"})), json!({}));
    s.expect_err(
        "fs/readBlock",
        json!({"handleId": "r", "offset": 0, "len": 10}),
        -32004,
        "unknown file handle `r`",
    );
    // A closed id can be reused.
    s.call("fs/open", json!({"handleId": "r", "path": uri(&p)}));
}

#[test]
fn open_handle_limit_128() {
    let t = TempDir::new("handle_limit");
    let p = t.join("f");
    fs::write(&p, b"x").unwrap();
    let mut s = FsServer::start();
    let ids: Vec<_> = (0..128)
        .map(|i| {
            s.send(
                "fs/open",
                json!({"handleId": format!("h{i}"), "path": uri(&p)}),
            )
        })
        .collect();
    for id in ids {
        let r = s.wait(id);
        assert!(r.get("result").is_some(), "open {id}: {r}");
    }
    s.expect_err(
        "fs/open",
        json!({"handleId": "h128", "path": uri(&p)}),
        -32600,
        "at most 128 file reads may be open per connection",
    );
    s.call("fs/close", json!({"handleId": "h0"}));
    s.call("fs/open", json!({"handleId": "h128", "path": uri(&p)}));
    s.expect_err(
        "fs/open",
        json!({"handleId": "h129", "path": uri(&p)}),
        -32600,
        "at most 128 file reads may be open per connection",
    );
    // Handles belong to the connection: a new server starts empty.
    let mut s2 = FsServer::start();
    s2.call("fs/open", json!({"handleId": "h1", "path": uri(&p)}));
}
