//! What `tools/list` advertises (docs/protocol.md "Unified-exec tools"). Names and schemas are the
//! contract; the schemas are written as JSON text so their members keep this order.

use crate::protocol::tools::{ListResult, ToolSpec};
use serde_json::value::RawValue;

pub const EXEC_COMMAND: &str = "exec_command";
pub const WRITE_STDIN: &str = "write_stdin";

const EXEC_COMMAND_SCHEMA: &str = r#"{"type":"object","required":["cmd"],"properties":{"cmd":{"type":"string"},"workdir":{"type":"string"},"tty":{"type":"boolean"},"yield_time_ms":{"type":"integer"},"max_output_tokens":{"type":"integer"},"env":{"type":"object","additionalProperties":{"type":"string"}},"login":{"type":"boolean"}}}"#;

const WRITE_STDIN_SCHEMA: &str = r#"{"type":"object","required":["session_id"],"properties":{"session_id":{"type":"integer"},"chars":{"type":"string"},"yield_time_ms":{"type":"integer"},"max_output_tokens":{"type":"integer"}}}"#;

const EXEC_COMMAND_DESCRIPTION: &str = "Run a shell command in a new session (a login shell by \
default). Waits up to yield_time_ms (250 to 30000, default 10000) for it to finish and returns \
its output, truncated to max_output_tokens (default 10000) keeping the head and the tail. \
Returns exitCode when the command finished, or sessionId while it is still running: use \
write_stdin to poll it or, with tty=true, to type into it.";

const WRITE_STDIN_DESCRIPTION: &str = "Write to a running session from exec_command (chars, \
needs tty=true; empty chars only polls), then wait up to yield_time_ms (250 to 30000, default \
250) and return the output produced since the previous call. Returns exitCode once the \
command finished; the session is then gone.";

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("the tool schemas are valid JSON")
}

pub fn list() -> ListResult {
    ListResult {
        tools: vec![
            ToolSpec {
                name: EXEC_COMMAND,
                description: EXEC_COMMAND_DESCRIPTION,
                input_schema: raw(EXEC_COMMAND_SCHEMA),
            },
            ToolSpec {
                name: WRITE_STDIN,
                description: WRITE_STDIN_DESCRIPTION,
                input_schema: raw(WRITE_STDIN_SCHEMA),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn schemas_are_the_documented_ones() {
        let v: Value = serde_json::to_value(list()).unwrap();
        let tools = v["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0]["name"], EXEC_COMMAND);
        assert_eq!(
            tools[0]["inputSchema"]["properties"]["env"],
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
        assert_eq!(tools[0]["inputSchema"]["required"], json!(["cmd"]));
        assert_eq!(tools[1]["name"], WRITE_STDIN);
        assert_eq!(tools[1]["inputSchema"]["required"], json!(["session_id"]));
        assert_eq!(
            tools[1]["inputSchema"]["properties"]["session_id"],
            json!({"type": "integer"})
        );
    }
}
