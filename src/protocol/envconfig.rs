//! `environmentConfig/read` params and result (docs/protocol.md
//! "environmentConfig/read").

use super::paths::PathArg;
use serde::{Deserialize, Serialize};

/// A key path into a TOML document: `["mcp_servers"]`, `["features", "x"]`.
pub type KeyPath = Vec<String>;

/// The params. All three members are required; unknown members are ignored.
/// (The struct's name is part of the decoder's error texts, which match the
/// reference's: ``invalid type: null, expected struct EnvironmentConfigReadParams``.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadParams {
    pub cwd: PathArg,
    pub config_paths: Vec<KeyPath>,
    pub requirements_paths: Vec<KeyPath>,
}

/// The result, members in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadResult {
    /// URI of the home directory, or null.
    pub user_home_dir: Option<String>,
    /// URI of `$CODEX_HOME` (default `~/.codex`).
    pub codex_home_dir: String,
    /// The host name, or null.
    pub hostname: Option<String>,
    pub config: LayerStack,
    pub requirements: LayerStack,
}

/// Layers, lowest precedence first, and where a caller inserts its cloud layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerStack {
    pub layers: Vec<Layer>,
    pub cloud_insertion_index: usize,
}

/// One TOML source, projected to the selected key paths.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// `system (<file>)`, `user (<file>)`, `project (<file>)`,
    /// `legacy managed_config.toml (<file>)`; a bare file path for requirements.
    pub source: String,
    /// URI of the directory its relative paths are relative to.
    pub base_dir: String,
    /// The projected table as TOML text.
    pub toml: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_decode_with_the_reference_texts() {
        let p: EnvironmentConfigReadParams = serde_json::from_value(json!({
            "cwd": "file:///w", "configPaths": [["mcp_servers"]], "requirementsPaths": [], "x": 1
        }))
        .unwrap();
        assert_eq!(p.config_paths, vec![vec!["mcp_servers".to_string()]]);
        let err = |v| {
            serde_json::from_value::<EnvironmentConfigReadParams>(v)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(json!({"configPaths": [], "requirementsPaths": []})),
            "missing field `cwd`"
        );
        assert_eq!(
            err(json!({"cwd": "/", "requirementsPaths": []})),
            "missing field `configPaths`"
        );
        assert_eq!(
            err(json!(null)),
            "invalid type: null, expected struct EnvironmentConfigReadParams"
        );
    }

    #[test]
    fn result_members_in_wire_order() {
        let r = EnvironmentConfigReadResult {
            user_home_dir: None,
            codex_home_dir: "file:///h/.codex".into(),
            hostname: Some("vm".into()),
            config: LayerStack {
                layers: vec![Layer {
                    source: "user (/h/.codex/config.toml)".into(),
                    base_dir: "file:///h/.codex".into(),
                    toml: "a = 1\n".into(),
                }],
                cloud_insertion_index: 0,
            },
            requirements: LayerStack::default(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"userHomeDir":null,"codexHomeDir":"file:///h/.codex","hostname":"vm","config":{"layers":[{"source":"user (/h/.codex/config.toml)","baseDir":"file:///h/.codex","toml":"a = 1\n"}],"cloudInsertionIndex":0},"requirements":{"layers":[],"cloudInsertionIndex":0}}"#
        );
    }
}
