//! The handshake gate for fs methods (docs/protocol.md "Handshake") and the `sandbox` member before
//! the sandbox lands (docs/protocol.md "Filesystem", "Sandboxed filesystem requests").

use crate::support::fs::*;
use serde_json::{json, Value};
use std::fs;

const FS_METHODS: [&str; 14] = [
    "fs/readFile",
    "fs/writeFile",
    "fs/createDirectory",
    "fs/getMetadata",
    "fs/readDirectory",
    "fs/remove",
    "fs/copy",
    "fs/canonicalize",
    "fs/walk",
    "fs/open",
    "fs/readBlock",
    "fs/writeBlock",
    "fs/close",
    "fs/watchMissing",
];

#[test]
fn gate_before_initialize_and_initialized() {
    let t = TempDir::new("gate");
    let target = t.join("must-not-exist");
    let mut s = FsServer::spawn(Opts::default());
    for m in FS_METHODS {
        // Gate before params decoding: `{}` would be a params error.
        s.expect_err(
            m,
            json!({}),
            -32600,
            "client must call initialize before using filesystem methods",
        );
    }
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&target), "dataBase64": "eA=="}),
        -32600,
        "client must call initialize before using filesystem methods",
    );
    s.expect_err(
        "fs/notAMethod",
        json!({}),
        -32601,
        "exec-server stub does not implement `fs/notAMethod` yet",
    );
    let r = s.request("initialize", json!({"clientName": "gate-test"}));
    assert!(r.get("result").is_some(), "{r}");
    for m in FS_METHODS {
        s.expect_err(
            m,
            Value::Null,
            -32600,
            "client must send initialized before using filesystem methods",
        );
    }
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&target), "dataBase64": "eA=="}),
        -32600,
        "client must send initialized before using filesystem methods",
    );
    s.expect_err(
        "fs/notAMethod",
        json!({}),
        -32601,
        "exec-server stub does not implement `fs/notAMethod` yet",
    );
    assert!(!exists(&target), "a gated request ran");
    // A request method sent as a notification is refused (docs/protocol.md "Transport") and not run.
    s.notify(
        "fs/writeFile",
        json!({"path": uri(&target), "dataBase64": "eA=="}),
    );
    let m = s.wait_msg_timeout(&json!(-1), TIMEOUT);
    assert_eq!(
        m.value,
        json!({"error": {"code": -32600, "message": "client notification `fs/writeFile` is not supported (only `initialized` may be sent without an id)"}, "id": -1})
    );
    s.notify("initialized", json!({}));
    s.call(
        "fs/writeFile",
        json!({"path": uri(&target), "dataBase64": "eA=="}),
    );
    assert_eq!(fs::read(&target).unwrap(), b"x");
    s.expect_err(
        "fs/notAMethod",
        json!({}),
        -32601,
        "exec-server stub does not implement `fs/notAMethod` yet",
    );
    // fs/watchMissing is advertised.
    let info = s.call("environment/info", json!({}));
    assert_eq!(info["capabilities"]["fsWatchMissing"], true, "{info}");
    assert_eq!(
        info["tether"]["extensions"]["fs/readDirectory.isSymlink"],
        1
    );
}

/// A profile that restricts reads and writes (neither full read nor full write).
fn restrictive(t: &TempDir) -> Value {
    json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {
        "type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "minimal"}}, "access": "read"},
            {"path": {"type": "path", "path": uri(t.path())}, "access": "write"}]}},
        "cwd": uri(t.path())})
}

#[test]
fn restrictive_sandbox_runs_in_the_helper() {
    // Neither full read nor full write: every request goes through `codex-fs`
    // (docs/protocol.md "Sandboxed filesystem requests") and answers as the direct version would inside the writable root.
    let t = TempDir::new("sandbox_helper");
    fs::write(t.join("f"), b"keep").unwrap();
    fs::create_dir(t.join("d")).unwrap();
    let sb = restrictive(&t);
    let f = uri(&t.join("f"));
    let d = uri(&t.join("d"));
    let mut s = FsServer::start();
    let r = s.call("fs/readFile", json!({"path": f, "sandbox": sb}));
    assert_eq!(unb64(&r["dataBase64"]), b"keep");
    let r = s.call("fs/getMetadata", json!({"path": f, "sandbox": sb}));
    assert_eq!(
        (r["isFile"].clone(), r["size"].clone()),
        (json!(true), json!(4))
    );
    let r = s.call("fs/readDirectory", json!({"path": d, "sandbox": sb}));
    assert_eq!(r, json!({"entries": []}));
    let r = s.call("fs/canonicalize", json!({"path": f, "sandbox": sb}));
    assert_eq!(r["path"], json!(f));
    let walk = json!({"maxDepth": 1, "maxDirectories": 1, "maxEntries": 1, "followDirectorySymlinks": false});
    let r = s.call(
        "fs/walk",
        json!({"path": d, "options": walk, "sandbox": sb}),
    );
    assert_eq!(r, json!({"entries": [], "errors": [], "truncated": false}));
    let new = uri(&t.join("new"));
    s.call(
        "fs/writeFile",
        json!({"path": new, "dataBase64": "eA==", "sandbox": sb}),
    );
    s.call(
        "fs/createDirectory",
        json!({"path": uri(&t.join("nd")), "sandbox": sb}),
    );
    s.call(
        "fs/copy",
        json!({"sourcePath": new, "destinationPath": uri(&t.join("c")), "recursive": false, "sandbox": sb}),
    );
    s.call(
        "fs/writeFile",
        json!({"path": f, "dataBase64": "eA==", "sandbox": sb}),
    );
    assert_eq!(fs::read(t.join("f")).unwrap(), b"x");
    assert_eq!(fs::read(t.join("c")).unwrap(), b"x");
    assert!(t.join("nd").is_dir());
    s.call("fs/remove", json!({"path": f, "sandbox": sb}));
    assert!(!exists(&t.join("f")));
    // Write-class requests under legacy policies: read-only refuses, workspace-write
    // writes inside its cwd.
    let ro = json!({"permissions": {"type": "read-only"}, "cwd": uri(t.path())});
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&t.join("ro")), "dataBase64": "eA==", "sandbox": ro}),
        -32600,
        "Permission denied (os error 13)",
    );
    assert!(!exists(&t.join("ro")));
    let ww = json!({"permissions": {"type": "workspace-write"}, "cwd": uri(t.path())});
    s.call(
        "fs/writeFile",
        json!({"path": uri(&t.join("ww")), "dataBase64": "eA==", "sandbox": ww}),
    );
    assert_eq!(fs::read(t.join("ww")).unwrap(), b"x");
    // Handles under a sandbox are opened in the helper (tests/sandbox_fs.rs has
    // the escapes): a replace handle writes inside the workspace.
    s.call(
        "fs/open",
        json!({"handleId": "w", "path": uri(&t.join("new")), "mode": "replace", "sandbox": ww}),
    );
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": "eHl6"}),
    );
    s.call("fs/close", json!({"handleId": "w"}));
    assert_eq!(fs::read(t.join("new")).unwrap(), b"xyz");
}

#[test]
fn disabled_sandbox_runs_directly() {
    let t = TempDir::new("sandbox_disabled");
    let sb = json!({"permissions": {"type": "disabled"}});
    let mut s = FsServer::start();
    let f = t.join("f");
    s.call(
        "fs/writeFile",
        json!({"path": uri(&f), "dataBase64": "eA==", "sandbox": sb}),
    );
    assert_eq!(fs::read(&f).unwrap(), b"x");
    let r = s.call("fs/readFile", json!({"path": uri(&f), "sandbox": sb}));
    assert_eq!(r["dataBase64"], "eA==");
    s.call(
        "fs/createDirectory",
        json!({"path": uri(&t.join("d/e")), "sandbox": sb}),
    );
    assert!(t.join("d/e").is_dir());
    let r = s.call("fs/getMetadata", json!({"path": uri(&f), "sandbox": sb}));
    assert_eq!(r["isFile"], true);
    let r = s.call(
        "fs/readDirectory",
        json!({"path": uri(&t.join("d")), "sandbox": sb}),
    );
    assert_eq!(r["entries"][0]["fileName"], "e");
    s.call(
        "fs/copy",
        json!({"sourcePath": uri(&f), "destinationPath": uri(&t.join("g")), "recursive": false, "sandbox": sb}),
    );
    assert_eq!(fs::read(t.join("g")).unwrap(), b"x");
    let r = s.call("fs/canonicalize", json!({"path": uri(&f), "sandbox": sb}));
    assert_eq!(r["path"], uri(&fs::canonicalize(&f).unwrap()));
    let r = s.call(
        "fs/walk",
        json!({"path": uri(&t.join("d")), "sandbox": sb,
               "options": {"maxDepth": 1, "maxDirectories": 1, "maxEntries": 1, "followDirectorySymlinks": false}}),
    );
    assert_eq!(r["entries"].as_array().unwrap().len(), 1);
    s.call(
        "fs/remove",
        json!({"path": uri(&t.join("g")), "sandbox": sb}),
    );
    assert!(!exists(&t.join("g")));
    s.call(
        "fs/open",
        json!({"handleId": "r", "path": uri(&f), "sandbox": sb}),
    );
    s.call(
        "fs/open",
        json!({"handleId": "w", "path": uri(&t.join("w")), "mode": "replace", "sandbox": sb}),
    );
    s.call(
        "fs/writeBlock",
        json!({"handleId": "w", "offset": 0, "chunk": "eQ=="}),
    );
    assert_eq!(fs::read(t.join("w")).unwrap(), b"y");
    s.call(
        "fs/open",
        json!({"handleId": "dfa", "path": uri(&f), "sandbox": {"permissions": {"type": "danger-full-access"}}}),
    );
}

/// Send `perms` on a writeFile and a readFile; describe what was not direct.
fn not_direct(s: &mut FsServer, t: &TempDir, i: usize, perms: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let f = t.join(format!("f{i}"));
    let sb = json!({"permissions": perms, "cwd": uri(t.path())});
    let r = s.request(
        "fs/writeFile",
        json!({"path": uri(&f), "dataBase64": "eA==", "sandbox": sb}),
    );
    if r.get("result") != Some(&json!({})) {
        failures.push(format!("writeFile {perms}: {}", r["error"]));
    }
    fs::write(&f, b"x").unwrap();
    let r = s.request("fs/readFile", json!({"path": uri(&f), "sandbox": sb}));
    if r.get("result") != Some(&json!({"dataBase64": "eA=="})) {
        failures.push(format!("readFile {perms}: {}", r["error"]));
    }
    failures
}

#[test]
fn unrestricted_profiles_run_directly() {
    // docs/protocol.md "Sandboxed filesystem requests" first row: `sandbox` null, `disabled`, `external`, unrestricted →
    // direct for every fs request, whatever the network setting (the network
    // matters only for processes). A legacy `danger-full-access` is
    // `disabled` and `external-sandbox` is `external` (docs/protocol.md "Sandbox").
    let t = TempDir::new("sandbox_unrestricted");
    let mut s = FsServer::start();
    let mut failures = Vec::new();
    for (i, perms) in [
        json!({"type": "danger-full-access"}),
        json!({"type": "external", "network": "restricted"}),
        json!({"type": "external", "network": "enabled"}),
        json!({"type": "external"}),
        json!({"type": "managed", "network": "restricted", "file_system": {"type": "unrestricted"}}),
        json!({"type": "managed", "network": "enabled", "file_system": {"type": "unrestricted"}}),
        json!({"type": "external-sandbox"}),
        json!({"type": "external-sandbox", "network_access": "enabled"}),
    ]
    .iter()
    .enumerate()
    {
        failures.extend(not_direct(&mut s, &t, i, perms));
    }
    assert!(
        failures.is_empty(),
        "not run directly:\n{}",
        failures.join("\n")
    );
}

#[test]
fn full_write_profile_runs_directly() {
    let t = TempDir::new("sandbox_full_write");
    let mut s = FsServer::start();
    let full_write = json!({"type": "managed", "network": "restricted", "file_system": {
        "type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "write"}]}});
    let failures = not_direct(&mut s, &t, 0, &full_write);
    assert!(
        failures.is_empty(),
        "not run directly:\n{}",
        failures.join("\n")
    );
}

#[test]
fn full_read_policy_reads_run_directly() {
    // docs/protocol.md "Sandboxed filesystem requests": under full read (`root: read`, no deny) the read-class requests
    // are direct; only write-class requests need the helper.
    let t = TempDir::new("sandbox_full_read");
    fs::write(t.join("f"), b"x").unwrap();
    let mut s = FsServer::start();
    let cwd = uri(t.path());
    let mut failures = Vec::new();
    for perms in [
        json!({"type": "read-only"}),
        json!({"type": "workspace-write"}),
        json!({"type": "managed", "network": "restricted", "file_system": {"type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}}),
    ] {
        let sb = json!({"permissions": perms.clone(), "cwd": cwd});
        for (m, p) in [
            (
                "fs/readFile",
                json!({"path": uri(&t.join("f")), "sandbox": sb}),
            ),
            (
                "fs/getMetadata",
                json!({"path": uri(&t.join("f")), "sandbox": sb}),
            ),
            ("fs/readDirectory", json!({"path": cwd, "sandbox": sb})),
            ("fs/canonicalize", json!({"path": cwd, "sandbox": sb})),
            (
                "fs/open",
                json!({"handleId": "h", "path": uri(&t.join("f")), "sandbox": sb}),
            ),
        ] {
            let r = s.request(m, p);
            if r.get("result").is_none() {
                failures.push(format!("{m} {perms}: {}", r["error"]));
            }
            s.call("fs/close", json!({"handleId": "h"}));
        }
    }
    assert!(
        failures.is_empty(),
        "not run directly:\n{}",
        failures.join("\n")
    );
}
