//! `tools/list` and `tools/call` params and results (docs/protocol.md "Unified-exec tools", Tether
//! extension). The tool arguments are decoded from `arguments` per tool name.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// `tools/call` params: the tool's name and its arguments (decoded later, per tool).
#[derive(Debug, Clone, Deserialize)]
pub struct CallParams {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// `exec_command` arguments.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExecCommandArgs {
    pub cmd: String,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub tty: Option<bool>,
    #[serde(default)]
    pub yield_time_ms: Option<i64>,
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub login: Option<bool>,
}

/// `write_stdin` arguments.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct WriteStdinArgs {
    pub session_id: i64,
    #[serde(default)]
    pub chars: Option<String>,
    #[serde(default)]
    pub yield_time_ms: Option<i64>,
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
}

/// One advertised tool. `input_schema` is pre-serialized so its members keep the
/// documented order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub input_schema: Box<RawValue>,
}

#[derive(Debug, Serialize)]
pub struct ListResult {
    pub tools: Vec<ToolSpec>,
}

/// One `content` item: always text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextContent {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl TextContent {
    pub fn text(text: String) -> Self {
        TextContent {
            kind: "text".into(),
            text,
        }
    }
}

/// `tools/call` result (member order as docs/protocol.md "Unified-exec tools").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallResult {
    pub content: Vec<TextContent>,
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub wall_time_ms: u64,
    pub original_token_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exec_command_needs_only_cmd() {
        let a: ExecCommandArgs = serde_json::from_value(json!({"cmd": "ls", "x": 1})).unwrap();
        assert_eq!(a.cmd, "ls");
        assert!(a.workdir.is_none() && a.tty.is_none() && a.login.is_none());
        assert!(serde_json::from_value::<ExecCommandArgs>(json!({})).is_err());
        assert!(serde_json::from_value::<ExecCommandArgs>(json!({"cmd": 1})).is_err());
    }

    #[test]
    fn write_stdin_needs_an_integer_session() {
        let a: WriteStdinArgs = serde_json::from_value(json!({"session_id": 3})).unwrap();
        assert_eq!(a.session_id, 3);
        assert!(a.chars.is_none());
        assert!(serde_json::from_value::<WriteStdinArgs>(json!({"session_id": "3"})).is_err());
    }

    #[test]
    fn call_result_members_in_order_and_optional_ones_left_out() {
        let r = CallResult {
            content: vec![TextContent::text("hi\n".into())],
            is_error: false,
            session_id: None,
            exit_code: Some(0),
            wall_time_ms: 5,
            original_token_count: 1,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"content":[{"type":"text","text":"hi\n"}],"isError":false,"exitCode":0,"wallTimeMs":5,"originalTokenCount":1}"#
        );
        assert_eq!(serde_json::from_str::<CallResult>(&s).unwrap(), r);
    }
}
