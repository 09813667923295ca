//! `initialize`, `environmentInfo` and the environment methods (docs/protocol.md "Handshake", "Environment methods").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_name: String,
    #[serde(default)]
    pub resume_session_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub session_id: String,
    pub environment_info: EnvironmentInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Shell {
    pub name: String,
    pub path: String,
}

/// What the server tells the client about the host (docs/protocol.md "environmentInfo"). Members in wire order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    pub shell: Shell,
    #[serde(default)]
    pub executor_version: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_home_dir: Option<String>,
    #[serde(default)]
    pub platform_os: Option<String>,
    #[serde(default)]
    pub temporary_directories: Vec<String>,
    #[serde(default)]
    pub temp_dir: Option<String>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<TetherInfo>,
}

/// Feature flags (docs/protocol.md "environmentInfo"), written in the documented order, all of them always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Capabilities {
    pub network_proxy_launch: bool,
    pub network_proxy_review_domains: bool,
    pub credential_masking: bool,
    pub credential_masking_custom_providers: bool,
    pub capability_discovery_sandbox: bool,
    pub fs_watch_missing: bool,
    pub capability_discovery_v2: bool,
    pub environment_config_read: bool,
    pub http_header_env_vars: bool,
    pub sandboxed_file_streaming: bool,
    pub file_write_streaming: bool,
    pub shell_snapshot_v2: bool,
    pub windows_mxc: bool,
    pub linux_root_write_preserves_devices: bool,
    pub linux_approved_root_write_preserves_restrictions: bool,
}

/// The `tether` member (Tether extension, docs/protocol.md "environmentInfo").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TetherInfo {
    pub protocol_version: u32,
    pub version: String,
    pub extensions: BTreeMap<String, u32>,
    pub sandbox: HostSandbox,
    /// How the server's descendants are held when it dies (absent: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<LifetimeGuard>,
}

/// `tether.lifetime`: what kills the server's descendants if the server itself
/// is killed. `guard` is `cgroup` (every descendant) or `processGroups` (the
/// process groups of its spawns only; `reason` says why no cgroup).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifetimeGuard {
    pub guard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What this host can enforce, probed once at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSandbox {
    pub landlock_abi: u32,
    pub seccomp: bool,
    pub user_namespaces: bool,
    pub mount_namespaces: bool,
    pub kernel: String,
    pub default_mode: String,
}

/// `environment/status` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StatusResult {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_params_resume_is_optional() {
        let p: InitializeParams = serde_json::from_str(r#"{"clientName":"c"}"#).unwrap();
        assert_eq!(p.client_name, "c");
        assert!(p.resume_session_id.is_none());
        assert!(serde_json::from_str::<InitializeParams>("{}").is_err());
    }

    #[test]
    fn capabilities_are_written_in_documented_order() {
        let s = serde_json::to_string(&Capabilities::default()).unwrap();
        let order = [
            "networkProxyLaunch",
            "networkProxyReviewDomains",
            "credentialMasking",
            "credentialMaskingCustomProviders",
            "capabilityDiscoverySandbox",
            "fsWatchMissing",
            "capabilityDiscoveryV2",
            "environmentConfigRead",
            "httpHeaderEnvVars",
            "sandboxedFileStreaming",
            "fileWriteStreaming",
            "shellSnapshotV2",
            "windowsMxc",
            "linuxRootWritePreservesDevices",
            "linuxApprovedRootWritePreservesRestrictions",
        ];
        let mut last = 0;
        for name in order {
            let at = s.find(&format!("\"{name}\"")).unwrap();
            assert!(at >= last, "{name} out of order in {s}");
            last = at;
        }
    }

    #[test]
    fn minimal_environment_info_decodes() {
        let e: EnvironmentInfo =
            serde_json::from_str(r#"{"shell":{"name":"sh","path":"/bin/sh"}}"#).unwrap();
        assert_eq!(e.shell.name, "sh");
        assert!(e.tether.is_none());
    }
}
