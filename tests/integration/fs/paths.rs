//! Path spellings in and out (docs/protocol.md "Transport").

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::os::unix::ffi::OsStrExt;

fn read(s: &mut FsServer, path: &str) -> Vec<u8> {
    let r = s.call("fs/readFile", json!({"path": path}));
    unb64(&r["dataBase64"])
}

#[test]
fn uri_and_plain_spellings() {
    let t = TempDir::new("paths_spellings");
    let mut s = FsServer::start();
    let weird = "sp a%c#d?e`f{g}\"h<i>j";
    let p = t.join(weird);
    fs::write(&p, b"weird").unwrap();
    let u = uri(&p);
    assert!(
        u.contains("sp%20a%25c%23d%3Fe%60f%7Bg%7D%22h%3Ci%3Ej"),
        "{u}"
    );
    assert_eq!(read(&mut s, &u), b"weird");
    assert_eq!(read(&mut s, &localhost(&u)), b"weird");
    assert_eq!(
        read(&mut s, &u.replacen("file://", "file://LocalHost", 1)),
        b"weird"
    );
    assert_eq!(
        read(&mut s, &native(&p)),
        b"weird",
        "plain path, byte for byte"
    );
    // file:/abs is normalised by the URL parser.
    assert_eq!(read(&mut s, &u.replacen("file://", "file:", 1)), b"weird");

    // `file:tmp` is normalised to /tmp by the URL parser.
    let r = s.call("fs/canonicalize", json!({"path": "file:tmp"}));
    assert_eq!(r["path"], uri(&fs::canonicalize("/tmp").unwrap()));

    // Escapes of ordinary characters decode; plain paths are not decoded.
    fs::write(t.join("xA"), b"decoded").unwrap();
    fs::write(t.join("x%41"), b"literal").unwrap();
    assert_eq!(read(&mut s, &format!("{}/x%41", uri(t.path()))), b"decoded");
    assert_eq!(
        read(&mut s, &format!("{}/x%41", native(t.path()))),
        b"literal"
    );
}

#[test]
fn lexical_normalisation() {
    let t = TempDir::new("paths_normalise");
    let mut s = FsServer::start();
    fs::create_dir_all(t.join("sub/deeper")).unwrap();
    fs::write(t.join("real.txt"), b"top").unwrap();
    fs::write(t.join("sub/real.txt"), b"sub").unwrap();
    symlink("sub/deeper", t.join("link"));
    // `..` removes the previous segment without looking at the link.
    assert_eq!(
        read(&mut s, &format!("{}/link/../real.txt", uri(t.path()))),
        b"top"
    );
    assert_eq!(
        read(&mut s, &format!("{}/./link/../real.txt", native(t.path()))),
        b"top"
    );
    assert_eq!(
        read(&mut s, &format!("{}//sub///real.txt", native(t.path()))),
        b"sub"
    );
    // Never above the root.
    let depth = t.path().components().count();
    let up = "../".repeat(depth + 3);
    assert_eq!(
        read(
            &mut s,
            &format!(
                "/{up}{}",
                native(&t.join("real.txt")).trim_start_matches('/')
            )
        ),
        b"top"
    );
}

#[test]
fn rejected_spellings() {
    let mut s = FsServer::start();
    for rel in ["tmp", ".", "./x", "~/x", "", "tmp/x"] {
        s.expect_err(
            "fs/readFile",
            json!({"path": rel}),
            -32602,
            "invalid URI: relative URL without a base",
        );
    }
    s.expect_err(
        "fs/readFile",
        json!({"path": "http://example.com/x"}),
        -32602,
        "unsupported path URI scheme `http`",
    );
    s.expect_err(
        "fs/readFile",
        json!({"path": "file:///tmp/x?a=1"}),
        -32602,
        "query parameters are not allowed in path URIs",
    );
    s.expect_err(
        "fs/readFile",
        json!({"path": "file:///tmp/x#frag"}),
        -32602,
        "fragments are not allowed in path URIs",
    );
    for u in ["file://other/tmp/x", "file://example.com/etc/passwd"] {
        s.expect_err(
            "fs/readFile",
            json!({"path": u}),
            -32600,
            &format!("'{u}' is invalid on 'linux'"),
        );
    }
    for nul in ["file:///tmp/a%00b", "/tmp/a\u{0}b"] {
        s.expect_err(
            "fs/readFile",
            json!({"path": nul}),
            -32602,
            "path must not contain NUL bytes",
        );
    }
    // The same rules on the other path members.
    s.expect_err(
        "fs/copy",
        json!({"sourcePath": "/tmp", "destinationPath": "rel", "recursive": true}),
        -32602,
        "invalid URI: relative URL without a base",
    );
    s.expect_err(
        "fs/open",
        json!({"handleId": "h", "path": "file://other/x"}),
        -32600,
        "'file://other/x' is invalid on 'linux'",
    );
}

#[test]
fn non_utf8_names_round_trip() {
    let t = TempDir::new("paths_bytes");
    let mut s = FsServer::start();
    let d = t.join(os(b"d\xff\xfe"));
    fs::create_dir(&d).unwrap();
    let f = d.join(os(b"n\x80x\x01 "));
    fs::write(&f, b"bytes").unwrap();

    // readDirectory: U+FFFD in fileName.
    let r = s.call("fs/readDirectory", json!({"path": uri(t.path())}));
    assert_eq!(r["entries"][0]["fileName"], "d\u{FFFD}\u{FFFD}");
    // walk: percent-encoded URIs that go back in.
    let r = s.call(
        "fs/walk",
        json!({"path": uri(t.path()), "options": {"maxDepth": 5, "maxDirectories": 10, "maxEntries": 10, "followDirectorySymlinks": false}}),
    );
    let paths: Vec<String> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, [uri(&d), uri(&f)]);
    assert!(paths[1].ends_with("/d%FF%FE/n%80x%01%20"), "{}", paths[1]);
    assert_eq!(read(&mut s, &paths[1]), b"bytes");
    // canonicalize.
    let r = s.call("fs/canonicalize", json!({"path": paths[1]}));
    assert_eq!(r["path"], uri(&fs::canonicalize(&f).unwrap()));
    // Writing through an encoded name creates exactly those bytes.
    let w = format!("{}/w%80z", uri(&d));
    s.call(
        "fs/writeFile",
        json!({"path": w, "dataBase64": b64(b"new")}),
    );
    assert_eq!(fs::read(d.join(os(b"w\x80z"))).unwrap(), b"new");
    // Messages name the path with U+FFFD.
    s.expect_err(
        "fs/readFile",
        json!({"path": uri(&d)}),
        -32600,
        &format!("path `{}` is not a file", native(&d)),
    );
    assert!(native(&d).ends_with("d\u{FFFD}\u{FFFD}"));
    assert_eq!(d.file_name().unwrap().as_bytes(), b"d\xff\xfe");
}
