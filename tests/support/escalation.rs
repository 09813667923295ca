//! Escalation fixtures shared by the escalation tests of both binaries: shells
//! started with `escalation` on a [`Server`], rules, approvals, and the
//! scratch directories and workspace-write sandbox of the escape tests. The
//! patched bash itself comes from [`super::npm`].

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fixtures::{unique, write_file};
pub use super::npm::Tools;
use super::server::Server;
use super::wire::Run;

/// Start `bash -c script` with `escalation` (plus `extra` start params).
pub fn start_shell(
    s: &mut Server,
    t: &Tools,
    id: &str,
    script: &str,
    escalation: Value,
    extra: Value,
) {
    let mut extra = extra;
    if !extra.is_object() {
        extra = json!({});
    }
    extra["escalation"] = escalation;
    s.start_ok(id, &[&t.bash, "-c", script], extra);
}

/// Run `bash -c script` with `escalation` to its end.
pub fn shell(s: &mut Server, t: &Tools, id: &str, script: &str, escalation: Value) -> Run {
    start_shell(s, t, id, script, escalation, json!({}));
    Run::from_events(s.collect_until_closed(id))
}

/// Rules that escalate (`allow`) each of `names`.
pub fn allow(names: &[&str]) -> Value {
    let rules: Vec<Value> = names
        .iter()
        .map(|n| json!({"prefix": [n], "decision": "allow"}))
        .collect();
    json!({ "rules": rules })
}

/// The next `process/approveExec` request.
pub fn next_approval(s: &mut Server) -> Value {
    s.wait_line("process/approveExec", Duration::from_secs(20), |v| {
        v["method"] == "process/approveExec"
    })
    .value
}

pub const NOBODY: (u32, u32) = (65534, 65534);
pub const PYTHON: &str = "/usr/bin/python3";

pub fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Scratch directories: `ws` (the sandbox's writable workspace) and `out`
/// (outside every writable root), both under /var/tmp, removed on drop.
pub struct Dirs {
    pub ws: PathBuf,
    pub out: PathBuf,
    more: Vec<PathBuf>,
}

impl Dirs {
    pub fn new(name: &str) -> Dirs {
        let id = unique(name);
        let base = PathBuf::from("/var/tmp");
        let ws = base.join(format!("tether-esc-ws-{id}"));
        let out = base.join(format!("tether-esc-out-{id}"));
        for d in [&ws, &out] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Dirs {
            ws,
            out,
            more: Vec::new(),
        }
    }

    /// Another directory outside every writable root.
    pub fn extra(&mut self, name: &str) -> PathBuf {
        let d = PathBuf::from("/var/tmp").join(format!("tether-esc-{name}-{}", unique("x")));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.more.push(d.clone());
        d
    }

    pub fn chown_all(&self, to: (u32, u32)) {
        for d in [&self.ws, &self.out].into_iter().chain(&self.more) {
            std::os::unix::fs::chown(d, Some(to.0), Some(to.1)).unwrap();
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        for d in [&self.ws, &self.out].into_iter().chain(&self.more) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Workspace-write sandbox: root readable, `ws` and /tmp writable, no network.
pub fn sandbox(ws: &Path) -> Value {
    json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
        {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
        {"path":{"type":"special","value":{"kind":"project_roots"}},"access":"write"},
        {"path":{"type":"special","value":{"kind":"slash_tmp"}},"access":"write"}]},
        "network":"restricted"},
        "cwd": uri(ws), "workspaceRoots": [uri(ws)], "windowsSandboxLevel":"disabled"})
}

/// A script that reports whether it could write outside the sandbox.
pub fn probe(path: &Path, out: &Path, tag: &str) {
    write_file(
        path,
        &format!(
            "#!/bin/sh\nif echo {tag} > {}/{tag} 2>/dev/null; then echo {tag}:escaped; else echo {tag}:confined; fi\n",
            out.display()
        ),
        0o755,
    );
}
