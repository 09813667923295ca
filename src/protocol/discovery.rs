//! `capabilities/discoverV2` params and result (docs/protocol.md "Capability
//! discovery").

use super::paths::PathArg;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverV2Params {
    /// The session's cwd (required; read by no root today).
    pub cwd: PathArg,
    /// A sandbox context: only what it lets be read is discovered.
    #[serde(default)]
    pub sandbox: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverV2Result {
    /// Always empty: plugins are not discovered on the executor.
    pub plugins: Vec<serde_json::Value>,
    pub skills: Vec<Skill>,
    pub warnings: Vec<String>,
}

/// One skill: a `SKILL.md` with front matter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub short_description: Option<String>,
    /// URI of the `SKILL.md`.
    pub path: String,
    pub discovery_root: DiscoveryRoot,
    /// From `agents/openai.yaml` next to `SKILL.md`, or null.
    pub dependencies: Option<Dependencies>,
    /// From `agents/openai.yaml` next to `SKILL.md`, or null.
    pub policy: Option<SkillPolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryRoot {
    /// `codex-home-skills` or `user-agent-skills`.
    pub id: String,
    /// URI of the root directory.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    pub tools: Vec<ToolDependency>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDependency {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: Option<String>,
    pub description: Option<String>,
    pub transport: Option<String>,
    pub command: Option<String>,
    pub url: Option<String>,
    pub oauth_callback_port: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillPolicy {
    pub allow_implicit_invocation: Option<bool>,
    pub products: Vec<String>,
}
