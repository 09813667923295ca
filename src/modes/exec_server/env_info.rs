//! `environmentInfo` (docs/protocol.md "environmentInfo"), computed once when the server starts.
//! The host sandbox facts in it come from the probe in `sandbox/host.rs`.

use crate::protocol::handshake::*;
use crate::protocol::paths::to_uri;
use crate::sandbox::host::NamespaceProbe;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const PROTOCOL_VERSION: u32 = 1;

/// Extensions this build implements, each at version 1. Names are added here only
/// when the feature works end to end.
pub const EXTENSIONS: &[&str] = &[
    "paths.plain",
    "process/start.size",
    "process/start.sandboxMode",
    "process/start.sandboxReport",
    "process/write.optionalWriteId",
    "process/read.loss",
    "process/signal.signals",
    "process/terminate.graceMs",
    "process/exited.signal",
    "process/resize",
    "process/closeStdin",
    "process/start.escalation",
    "process/approveExec",
    "fs/readDirectory.isSymlink",
    "tools",
];

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// First of: `$SHELL` if absolute, executable and bash/zsh/sh; `/bin/bash`; `/bin/sh`.
pub fn pick_shell(shell_var: Option<OsString>) -> Shell {
    let from_env = shell_var.map(PathBuf::from).filter(|p| {
        p.is_absolute()
            && matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("bash" | "zsh" | "sh")
            )
            && is_executable(p)
    });
    let path = from_env.unwrap_or_else(|| {
        if is_executable(Path::new("/bin/bash")) {
            PathBuf::from("/bin/bash")
        } else {
            PathBuf::from("/bin/sh")
        }
    });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Shell {
        name,
        path: path.to_string_lossy().into_owned(),
    }
}

fn tmpdir() -> Option<PathBuf> {
    std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// Compute the whole object. Call before the runtime starts children.
#[cfg(any(test, fuzzing))]
pub fn compute() -> EnvironmentInfo {
    compute_with(NamespaceProbe::start())
}

/// Compute the whole object with a probe started earlier.
pub fn compute_with(probe: NamespaceProbe) -> EnvironmentInfo {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let tmp = tmpdir();
    let extensions: BTreeMap<String, u32> = EXTENSIONS.iter().map(|e| (e.to_string(), 1)).collect();
    EnvironmentInfo {
        shell: pick_shell(std::env::var_os("SHELL")),
        executor_version: Some(VERSION.into()),
        cwd: Some(to_uri(&cwd)),
        user_home_dir: crate::sys::home_dir().map(|h| to_uri(&h)),
        platform_os: Some("linux".into()),
        temporary_directories: tmp.iter().map(|t| to_uri(t)).collect(),
        temp_dir: Some(to_uri(tmp.as_deref().unwrap_or(Path::new("/tmp")))),
        capabilities: Capabilities {
            fs_watch_missing: true,
            environment_config_read: true,
            http_header_env_vars: true,
            shell_snapshot_v2: true,
            file_write_streaming: true,
            capability_discovery_v2: true,
            sandboxed_file_streaming: true,
            // `root: write` keeps /dev usable and the carve-outs enforced
            // (tests/sandbox_proc.rs root_write_keeps_devices_and_carve_outs).
            linux_root_write_preserves_devices: true,
            ..Capabilities::default()
        },
        tether: Some(TetherInfo {
            protocol_version: PROTOCOL_VERSION,
            version: VERSION.into(),
            extensions,
            sandbox: probe.finish(),
            // Filled in by `environment/info` once the guard has reported.
            lifetime: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_choice() {
        assert_eq!(pick_shell(Some("/bin/sh".into())).path, "/bin/sh");
        // Not absolute, or not a known shell: fall back.
        let fallback = pick_shell(None).path;
        assert_eq!(pick_shell(Some("sh".into())).path, fallback);
        assert_eq!(pick_shell(Some("/usr/bin/env".into())).path, fallback);
        assert!(fallback == "/bin/bash" || fallback == "/bin/sh");
    }

    #[test]
    fn info_has_every_member() {
        let info = compute();
        let v = serde_json::to_value(&info).unwrap();
        for m in [
            "shell",
            "executorVersion",
            "cwd",
            "platformOs",
            "temporaryDirectories",
            "tempDir",
            "capabilities",
            "tether",
        ] {
            assert!(v.get(m).is_some(), "{m}");
        }
        assert_eq!(v["capabilities"].as_object().unwrap().len(), 15);
        assert!(v["cwd"].as_str().unwrap().starts_with("file:///"));
    }
}
