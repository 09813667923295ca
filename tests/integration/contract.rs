//! Two contract points the Codex client 0.171 depends on, through the binary:
//!
//! - server→client requests carry integer ids 1, 2, 3, … in their own id space
//!   (docs/protocol.md "What the server writes"): the client refuses `"s-1"`.
//!   The request is made by a shell that calls `$EXEC_WRAPPER` itself, as a
//!   patched bash would, so no downloaded program is needed.
//! - the fs `sandbox` object's `policyContext {cwd, workspaceRoots}` stands in
//!   for the top-level members when they are absent (docs/protocol.md
//!   "The `sandbox` object"): 0.171 sends only it for some requests.

use crate::support::escalation::next_approval;
use crate::support::fs::{uri, FsServer};
use crate::support::{Run, Server};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A shell that asks twice, through the wrapper, to run `/bin/echo`.
fn asking_shell(s: &mut Server) {
    let script = r#""$EXEC_WRAPPER" /bin/echo /bin/echo one; echo rc=$?
"$EXEC_WRAPPER" /bin/echo /bin/echo two; echo rc=$?"#;
    s.start_ok(
        "ask",
        &["/bin/sh", "-c", script],
        json!({"escalation": {"default": "prompt"}}),
    );
}

#[test]
fn server_requests_have_integer_ids_in_their_own_space() {
    let mut s = Server::ready();
    asking_shell(&mut s);
    let first = next_approval(&mut s);
    assert_eq!(
        first,
        json!({"id": 1, "method": "process/approveExec", "params": {"processId": "ask",
            "file": "file:///bin/echo", "argv": ["/bin/echo", "one"], "workdir": "file:///tmp"}})
    );
    // A string id, even "1", answers nothing; nor does the old "s-1".
    s.send(&json!({"id": "1", "result": {"decision": "approve"}}));
    s.send(&json!({"id": "s-1", "result": {"decision": "approve"}}));
    // A client request with id 1 is another id space: it gets its own answer
    // and the server's request 1 stays pending.
    s.send(&json!({"id": 1, "method": "environment/status"}));
    let status = s.wait_response(&json!(1));
    assert_eq!(status["result"], json!({"status": "ready"}), "{status}");
    let early = s.try_wait_line(Duration::from_millis(500), |v| {
        v["method"] == "process/approveExec"
    });
    assert!(early.is_none(), "request 1 was answered by a wrong id");
    s.send(&json!({"id": 1, "result": {"decision": "approve"}}));
    let second = next_approval(&mut s);
    assert_eq!(second["id"], json!(2), "{second}");
    assert_eq!(second["params"]["argv"], json!(["/bin/echo", "two"]));
    s.send(&json!({"id": 2, "result": {"decision": "deny"}}));
    let r = Run::from_events(s.collect_until_closed("ask"));
    assert_eq!(r.stdout_str(), "one\nrc=0\nrc=1\n", "{}", r.stderr_str());
    assert_eq!(
        r.stderr_str(),
        "Execution denied: User declined execution\n"
    );
}

/// A workspace `proj` and an `other` root under /var/tmp (the profile below
/// also opens /tmp), removed on drop.
struct Ws {
    base: PathBuf,
}

impl Ws {
    fn new(name: &str) -> Ws {
        let base = PathBuf::from(format!(
            "/var/tmp/tether-contract-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("proj")).unwrap();
        fs::create_dir_all(base.join("other")).unwrap();
        Ws { base }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// The workspace-write profile Codex sends, with only `policyContext` for cwd
/// and roots (no top-level `cwd`, `workspaceRoots`).
fn context_only(cwd: &Path, roots: &[&Path]) -> Value {
    let special = |kind: &str| json!({"type": "special", "value": {"kind": kind}});
    let roots: Vec<String> = roots.iter().map(|r| uri(r)).collect();
    json!({"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": special("root"), "access": "read"},
            {"path": special("project_roots"), "access": "write"},
            {"path": special("slash_tmp"), "access": "write"}]},
        "network": "restricted"},
        "policyContext": {"cwd": uri(cwd), "workspaceRoots": roots},
        "windowsSandboxLevel": "disabled"})
}

#[test]
fn sandbox_policy_context_stands_in_for_cwd_and_roots() {
    let w = Ws::new("policy-context");
    let mut s = FsServer::start();
    let write = |s: &mut FsServer, p: &Path, sb: &Value| {
        s.request(
            "fs/writeFile",
            json!({"path": uri(p), "dataBase64": "aGkK", "sandbox": sb}),
        )
    };
    // Roots = [cwd]: the project is writable, its sibling is not.
    let sb = context_only(&w.p("proj"), &[&w.p("proj")]);
    let r = write(&mut s, &w.p("proj/a.txt"), &sb);
    assert_eq!(r["result"], json!({}), "{r}");
    assert_eq!(fs::read(w.p("proj/a.txt")).unwrap(), b"hi\n");
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&w.p("other/b.txt")), "dataBase64": "aGkK", "sandbox": sb}),
        -32600,
        "Permission denied (os error 13)",
    );
    assert!(!w.p("other/b.txt").exists());
    // policyContext.workspaceRoots is what the project roots are.
    let sb = context_only(&w.p("proj"), &[&w.p("other")]);
    let r = write(&mut s, &w.p("other/b.txt"), &sb);
    assert_eq!(r["result"], json!({}), "{r}");
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&w.p("proj/c.txt")), "dataBase64": "aGkK", "sandbox": sb}),
        -32600,
        "Permission denied (os error 13)",
    );
    // Without it (and without the top-level members) the profile cannot be resolved.
    let mut bare = context_only(&w.p("proj"), &[]);
    bare.as_object_mut().unwrap().remove("policyContext");
    s.expect_err(
        "fs/writeFile",
        json!({"path": uri(&w.p("proj/d.txt")), "dataBase64": "aGkK", "sandbox": bare}),
        -32600,
        "file system sandbox context with dynamic permissions requires cwd",
    );
}
