//! Permission denied → -32600 with the OS text (docs/protocol.md "Transport"). When the tests run as
//! root the server runs as `nobody`; otherwise as the test user, against
//! files whose mode denies even their owner.

use crate::support::fs::*;
use serde_json::json;
use std::fs;
use std::path::PathBuf;

struct Fixture {
    t: TempDir,
    s: FsServer,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let t = TempDir::new(name);
        fs::write(t.join("pub.txt"), b"public").unwrap();
        fs::write(t.join("secret.txt"), b"secret").unwrap();
        chmod(&t.join("secret.txt"), 0o000);
        fs::create_dir(t.join("ro")).unwrap();
        fs::write(t.join("ro/file.txt"), b"ro").unwrap();
        chmod(&t.join("ro"), 0o555);
        fs::create_dir_all(t.join("closed/sub")).unwrap();
        fs::write(t.join("closed/inner.txt"), b"inner").unwrap();
        chmod(&t.join("closed"), 0o000);
        symlink("closed/inner.txt", t.join("link_closed"));
        fs::create_dir(t.join("rw")).unwrap();
        if is_root() {
            std::os::unix::fs::chown(t.join("rw"), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let mut s = FsServer::start_with(Opts {
            as_nobody: true,
            cwd: Some(t.path().to_path_buf()),
            ..Opts::default()
        });
        // Premise: the server really runs unprivileged.
        let status = s.call("fs/readFile", json!({"path": "/proc/self/status"}));
        let status = String::from_utf8(unb64(&status["dataBase64"])).unwrap();
        if is_root() {
            assert!(status.contains("\nUid:\t65534\t"), "{status}");
        }
        Fixture { t, s }
    }
    fn u(&self, rel: &str) -> String {
        uri(&self.t.join(rel))
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.t.join(rel)
    }
}

const EACCES: i32 = 13;

#[test]
fn permission_denied_on_reads() {
    let mut f = Fixture::new("perms_read");
    let (secret, inner, closed) = (f.u("secret.txt"), f.u("closed/inner.txt"), f.u("closed"));
    f.s.expect_os_err("fs/readFile", json!({"path": secret}), -32600, EACCES);
    f.s.expect_os_err("fs/readFile", json!({"path": inner}), -32600, EACCES);
    f.s.expect_os_err(
        "fs/open",
        json!({"handleId": "s", "path": secret}),
        -32600,
        EACCES,
    );
    f.s.expect_os_err("fs/readDirectory", json!({"path": closed}), -32600, EACCES);
    f.s.expect_os_err("fs/getMetadata", json!({"path": inner}), -32600, EACCES);
    f.s.expect_os_err("fs/canonicalize", json!({"path": inner}), -32600, EACCES);
    f.s.expect_os_err(
        "fs/copy",
        json!({"sourcePath": secret, "destinationPath": f.u("rw/copy"), "recursive": false}),
        -32600,
        EACCES,
    );
    assert!(!exists(&f.p("rw/copy")) || fs::read(f.p("rw/copy")).unwrap().is_empty());

    // A link whose target cannot be examined is listed with both false.
    let r =
        f.s.call("fs/readDirectory", json!({"path": uri(f.t.path())}));
    let entries = r["entries"].as_array().unwrap();
    let find = |n: &str| {
        entries
            .iter()
            .find(|e| e["fileName"] == n)
            .unwrap_or_else(|| panic!("{n} not listed: {r}"))
            .clone()
    };
    assert_eq!(
        find("link_closed"),
        json!({"fileName": "link_closed", "isDirectory": false, "isFile": false, "isSymlink": true})
    );
    assert_eq!(find("closed")["isDirectory"], true);
    assert_eq!(find("secret.txt")["isFile"], true);
}

#[test]
fn permission_denied_in_walk_is_an_error_item() {
    let mut f = Fixture::new("perms_walk");
    let r = f.s.call(
        "fs/walk",
        json!({"path": uri(f.t.path()), "options": {"maxDepth": 5, "maxDirectories": 100, "maxEntries": 100, "followDirectorySymlinks": false}}),
    );
    let paths: Vec<&str> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&f.u("closed").as_str()), "{r}");
    assert!(
        paths.contains(&f.u("ro/file.txt").as_str()),
        "the walk goes on: {r}"
    );
    assert!(!paths.iter().any(|p| p.contains("/closed/")), "{r}");
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{r}");
    assert_eq!(errors[0]["path"], f.u("closed"));
    assert_eq!(errors[0]["message"], os_text(EACCES));
    assert_eq!(r["truncated"], false);
}

#[test]
fn permission_denied_on_writes() {
    let mut f = Fixture::new("perms_write");
    f.s.expect_os_err(
        "fs/writeFile",
        json!({"path": f.u("ro/new"), "dataBase64": "eA=="}),
        -32600,
        EACCES,
    );
    for recursive in [true, false] {
        f.s.expect_os_err(
            "fs/createDirectory",
            json!({"path": f.u("ro/nd"), "recursive": recursive}),
            -32600,
            EACCES,
        );
    }
    f.s.expect_os_err(
        "fs/createDirectory",
        json!({"path": f.u("closed/x/y")}),
        -32600,
        EACCES,
    );
    for force in [true, false] {
        f.s.expect_os_err(
            "fs/remove",
            json!({"path": f.u("ro/file.txt"), "force": force}),
            -32600,
            EACCES,
        );
    }
    // force does not hide EACCES on a path below an unreadable directory.
    f.s.expect_os_err(
        "fs/remove",
        json!({"path": f.u("closed/inner.txt")}),
        -32600,
        EACCES,
    );
    f.s.expect_os_err(
        "fs/open",
        json!({"handleId": "w", "path": f.u("ro/new"), "mode": "replace"}),
        -32600,
        EACCES,
    );
    f.s.expect_os_err(
        "fs/copy",
        json!({"sourcePath": f.u("pub.txt"), "destinationPath": f.u("ro/copy"), "recursive": false}),
        -32600,
        EACCES,
    );
    for name in ["ro/new", "ro/nd", "ro/copy"] {
        assert!(!exists(&f.p(name)), "{name} created");
    }
    assert!(exists(&f.p("ro/file.txt")));
    // The writable directory works.
    f.s.call(
        "fs/writeFile",
        json!({"path": f.u("rw/ok"), "dataBase64": "eA=="}),
    );
    assert_eq!(fs::read(f.p("rw/ok")).unwrap(), b"x");
}
