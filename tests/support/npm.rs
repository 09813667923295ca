//! Real programs from npm, installed once per machine into a cache outside the
//! repository (`$TETHER_CACHE`, default `~/.cache/tether`): the Codex CLI
//! (`@openai/codex`) and the patched bash plus the reference
//! `codex-execve-wrapper` (`@openai/codex-shell-tool-mcp`). Only the opt-in
//! binary (`tests/real_programs`) uses them. Each getter returns why it could
//! not, for [`super::skip::skip`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The cache directory (`$TETHER_CACHE`, default `~/.cache/tether`).
pub fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("TETHER_CACHE") {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/tether")
}

/// `npm install --prefix PREFIX SPEC`; why not, when it fails.
fn npm_install(prefix: &Path, spec: &str) -> Result<(), String> {
    std::fs::create_dir_all(prefix).map_err(|e| format!("cannot create {prefix:?}: {e}"))?;
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(prefix)
        .arg(spec)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`npm install {spec}` failed ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("cannot run npm: {e}")),
    }
}

// ---------------------------------------------------------------- Codex CLI

pub const CODEX_VERSION: &str = "0.169.0";
/// The newest Codex CLI the capability tests also run against.
pub const CODEX_NEWEST: &str = "0.171.0";

fn codex_path(prefix: &Path) -> PathBuf {
    prefix.join("node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex")
}

/// The Codex binary ([`CODEX_VERSION`]), installed once per machine; why not
/// when it cannot be had.
pub fn codex() -> Result<PathBuf, String> {
    codex_at(CODEX_VERSION)
}

/// The Codex binary of `version`, installed once per machine (and once per
/// test run); why not when it cannot be had.
pub fn codex_at(version: &str) -> Result<PathBuf, String> {
    static CODEX: std::sync::Mutex<Vec<(String, Result<PathBuf, String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut known = CODEX.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = known.iter().find(|(v, _)| v == version) {
        return r.clone();
    }
    let prefix = cache_dir().join(format!("codex-{version}"));
    let bin = codex_path(&prefix);
    let r = if bin.exists() {
        Ok(bin)
    } else {
        npm_install(&prefix, &format!("@openai/codex@{version}")).and_then(|()| {
            if bin.exists() {
                Ok(bin)
            } else {
                Err(format!(
                    "`npm install @openai/codex@{version}` left no {}",
                    bin.display()
                ))
            }
        })
    };
    known.push((version.to_string(), r.clone()));
    r
}

// ---------------------------------------------------- patched bash, wrapper

pub const SHELL_TOOL_PACKAGE: &str = "@openai/codex-shell-tool-mcp";
pub const SHELL_TOOL_VERSION: &str = "0.97.0";

/// The binaries taken from the shell-tool package.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The patched bash build for Debian 12 x86_64 (reads `BASH_EXEC_WRAPPER`).
    pub bash: String,
    /// The reference wrapper (x86_64 musl).
    pub wrapper: String,
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

/// The patched bash and the reference wrapper, installed once per machine;
/// why not when they cannot be had here.
pub fn shell_tools() -> Result<Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let prefix = cache_dir().join(format!("codex-shell-tool-mcp-{SHELL_TOOL_VERSION}"));
            if let Some(t) = locate(&prefix) {
                return Ok(t);
            }
            npm_install(
                &prefix,
                &format!("{SHELL_TOOL_PACKAGE}@{SHELL_TOOL_VERSION}"),
            )?;
            locate(&prefix).ok_or_else(|| {
                format!(
                    "{SHELL_TOOL_PACKAGE}@{SHELL_TOOL_VERSION} has no patched bash that runs here \
                     or no codex-execve-wrapper (looked in {})",
                    vendor(&prefix).display()
                )
            })
        })
        .clone()
}

/// The shell tools, or skip the test (a failure in CI) and return from it.
#[macro_export]
macro_rules! need_tools {
    () => {
        match $crate::support::npm::shell_tools() {
            Ok(t) => t,
            Err(why) => return $crate::support::skip::skip(why),
        }
    };
}
