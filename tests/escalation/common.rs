//! Setup shared by the escalation tests: the npm package, and shells started
//! with `escalation` on a harness server.

use crate::harness::{Run, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const PACKAGE: &str = "@openai/codex-shell-tool-mcp";
pub const VERSION: &str = "0.97.0";

/// The binaries taken from the package.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The patched bash build for Debian 12 x86_64 (reads `BASH_EXEC_WRAPPER`).
    pub bash: String,
    /// The reference wrapper (x86_64 musl).
    pub wrapper: String,
}

fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("TETHER_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/tether")
}

fn vendor(prefix: &Path) -> PathBuf {
    prefix.join("node_modules/@openai/codex-shell-tool-mcp/vendor/x86_64-unknown-linux-musl")
}

/// Whether `bash` runs here (the right libc and loader).
fn runs(bash: &Path) -> bool {
    Command::new(bash)
        .args(["-c", "echo ok"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"ok\n")
}

fn locate(prefix: &Path) -> Option<Tools> {
    let v = vendor(prefix);
    let wrapper = v.join("codex-execve-wrapper");
    // Debian 12 first; any other build that runs on this machine after it.
    let builds = [
        "debian-12",
        "debian-11",
        "ubuntu-24.04",
        "ubuntu-22.04",
        "centos-9",
    ];
    let bash = builds
        .iter()
        .map(|b| v.join("bash").join(b).join("bash"))
        .find(|b| b.exists() && runs(b))?;
    wrapper.exists().then(|| Tools {
        bash: bash.to_string_lossy().into_owned(),
        wrapper: wrapper.to_string_lossy().into_owned(),
    })
}

/// The tools, installed once per machine; `None` after a loud message when they
/// cannot be had here.
pub fn tools() -> Option<Tools> {
    static TOOLS: OnceLock<Option<Tools>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let prefix = cache_dir().join(format!("codex-shell-tool-mcp-{VERSION}"));
            if let Some(t) = locate(&prefix) {
                return Some(t);
            }
            let _ = std::fs::create_dir_all(&prefix);
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("{PACKAGE}@{VERSION}"))
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => match locate(&prefix) {
                    Some(t) => Some(t),
                    None => {
                        eprintln!(
                            "\n*** SKIPPING the escalation tests: {PACKAGE}@{VERSION} has no patched bash that runs here or no codex-execve-wrapper (looked in {})\n",
                            vendor(&prefix).display()
                        );
                        None
                    }
                },
                Ok(o) => {
                    eprintln!(
                        "\n*** SKIPPING the escalation tests: `npm install {PACKAGE}@{VERSION}` failed ({}):\n{}\n",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    );
                    None
                }
                Err(e) => {
                    eprintln!("\n*** SKIPPING the escalation tests: cannot run npm: {e}\n");
                    None
                }
            }
        })
        .clone()
}

/// Tools, or return from the test (after the loud message).
#[macro_export]
macro_rules! need_tools {
    () => {
        match $crate::escalation::common::tools() {
            Some(t) => t,
            None => {
                eprintln!(
                    "*** SKIPPING {}: escalation tools unavailable",
                    module_path!()
                );
                return;
            }
        }
    };
}

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

/// Wait until `pred` holds, polling; false after `timeout`.
pub fn eventually(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
