//! Wire types only: message framing, method names, params and results, paths and
//! byte strings. No I/O happens here; the exec-server mode, the services and `client/` build on these types.

pub mod bytes;
pub mod discovery;
pub mod envconfig;
pub mod escalation;
pub mod fs;
pub mod handshake;
pub mod http;
pub mod paths;
pub mod process;
pub mod tools;

use serde::{Deserialize, Serialize};
use std::fmt;

/// JSON-RPC error codes used on the wire (docs/protocol.md "Transport").
pub mod codes {
    pub const NOT_FOUND: i64 = -32004;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
}

/// Method names (docs/protocol.md "Handshake", "Environment methods", "environmentConfig/read", "Processes", "Filesystem", "Unified-exec tools", "http/request").
pub mod methods {
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "initialized";
    pub const ENVIRONMENT_INFO: &str = "environment/info";
    pub const ENVIRONMENT_STATUS: &str = "environment/status";
    pub const ENVIRONMENT_CONFIG_READ: &str = "environmentConfig/read";
    pub const PROCESS_START: &str = "process/start";
    pub const PROCESS_READ: &str = "process/read";
    pub const PROCESS_WRITE: &str = "process/write";
    pub const PROCESS_SIGNAL: &str = "process/signal";
    pub const PROCESS_TERMINATE: &str = "process/terminate";
    pub const PROCESS_RESIZE: &str = "process/resize";
    pub const PROCESS_CLOSE_STDIN: &str = "process/closeStdin";
    pub const FS_READ_FILE: &str = "fs/readFile";
    pub const FS_WRITE_FILE: &str = "fs/writeFile";
    pub const FS_CREATE_DIRECTORY: &str = "fs/createDirectory";
    pub const FS_GET_METADATA: &str = "fs/getMetadata";
    pub const FS_READ_DIRECTORY: &str = "fs/readDirectory";
    pub const FS_REMOVE: &str = "fs/remove";
    pub const FS_COPY: &str = "fs/copy";
    pub const FS_CANONICALIZE: &str = "fs/canonicalize";
    pub const FS_WALK: &str = "fs/walk";
    pub const FS_OPEN: &str = "fs/open";
    pub const FS_READ_BLOCK: &str = "fs/readBlock";
    pub const FS_WRITE_BLOCK: &str = "fs/writeBlock";
    pub const FS_CLOSE: &str = "fs/close";
    pub const FS_WATCH_MISSING: &str = "fs/watchMissing";
    pub const FS_MISSING_CHANGED: &str = "fs/missingChanged";
    pub const PROCESS_OUTPUT: &str = "process/output";
    pub const PROCESS_EXITED: &str = "process/exited";
    pub const PROCESS_CLOSED: &str = "process/closed";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const HTTP_REQUEST: &str = "http/request";
    pub const CAPABILITIES_DISCOVER_V2: &str = "capabilities/discoverV2";
    pub const HTTP_REQUEST_BODY_DELTA: &str = "http/request/bodyDelta";
}

/// A request id: a string or a signed 64-bit integer, echoed exactly as received.
/// `Display` quotes strings so that `7` and `"7"` never look alike in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Int(n) => write!(f, "{n}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `error` member of an error response. `data` is written only where
/// docs/protocol.md says (the `kind` of a failed `process/start`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    pub message: String,
}

/// `{"id":<id>,"result":...}`
#[derive(Debug, Serialize)]
pub struct ResponseOut<'a, R: Serialize> {
    pub id: &'a RequestId,
    pub result: R,
}

/// `{"error":{...},"id":<id>}` (member order as docs/protocol.md "Transport").
#[derive(Debug, Serialize)]
pub struct ErrorOut<'a> {
    pub error: &'a ErrorObject,
    pub id: &'a RequestId,
}

/// `{"method":"<name>","params":{...}}`
#[derive(Debug, Serialize)]
pub struct NotificationOut<'a, P: Serialize> {
    pub method: &'a str,
    pub params: P,
}

/// The id used for errors that cannot be tied to a request.
pub const MALFORMED_ID: RequestId = RequestId::Int(-1);

/// Params for methods that take none: absent, `null` or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The empty result `{}`.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmptyResult {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_stay_distinct() {
        let a: RequestId = serde_json::from_str("7").unwrap();
        let b: RequestId = serde_json::from_str("\"7\"").unwrap();
        assert_ne!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "7");
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"7\"");
        assert_eq!(format!("{a} {b}"), "7 \"7\"");
    }

    #[test]
    fn error_member_order_is_error_then_id() {
        let e = ErrorObject {
            code: -32600,
            data: None,
            message: "x".into(),
        };
        let s = serde_json::to_string(&ErrorOut {
            error: &e,
            id: &MALFORMED_ID,
        })
        .unwrap();
        assert_eq!(s, r#"{"error":{"code":-32600,"message":"x"},"id":-1}"#);
        // `data`, when present, sits between code and message, as the reference
        // writes it.
        let e = ErrorObject {
            code: -32603,
            data: Some(serde_json::json!({"kind": "spawnNotFound"})),
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":-32603,"data":{"kind":"spawnNotFound"},"message":"x"}"#
        );
    }
}

/// Serialize one message as a wire line: compact JSON and `\n`.
pub fn to_line<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(msg).expect("wire types always serialize");
    v.push(b'\n');
    v
}

/// What closes a `process/output` line after its base64 chunk.
pub const OUTPUT_TAIL: &[u8] = b"\"}}\n";

/// The `process/output` line up to (not including) its base64 chunk, built without
/// an intermediate value because it is the hot path. The writer sends head, chunk
/// and [`OUTPUT_TAIL`] as one message, so the chunk is never copied into a line.
pub fn output_head(process_id: &str, seq: u64, stream: process::Stream) -> Vec<u8> {
    use std::io::Write;
    let mut v = Vec::with_capacity(process_id.len() + 96);
    v.extend_from_slice(br#"{"method":"process/output","params":{"processId":"#);
    serde_json::to_writer(&mut v, process_id).expect("a string always serializes");
    let _ = write!(
        v,
        r#","seq":{seq},"stream":"{}","chunk":""#,
        stream.as_str()
    );
    v
}

/// The whole `process/output` line; `chunk_b64` is already base64.
pub fn output_line(
    process_id: &str,
    seq: u64,
    stream: process::Stream,
    chunk_b64: &str,
) -> Vec<u8> {
    let mut v = output_head(process_id, seq, stream);
    v.extend_from_slice(chunk_b64.as_bytes());
    v.extend_from_slice(OUTPUT_TAIL);
    v
}

/// What closes an `fs/readFile` result line after its base64 data.
pub const READ_FILE_TAIL: &[u8] = b"\"}}\n";

/// The `fs/readFile` response line up to its base64 data: `{"id":..,"result":{"dataBase64":"`.
/// A big file's data is then written after it without being copied into a line.
pub fn read_file_head(id: &RequestId) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(br#"{"id":"#);
    serde_json::to_writer(&mut v, id).expect("an id always serializes");
    v.extend_from_slice(br#","result":{"dataBase64":""#);
    v
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn output_line_matches_the_documented_shape() {
        let l = output_line("p\"1", 3, process::Stream::Stderr, "aGkK");
        assert_eq!(
            std::str::from_utf8(&l).unwrap(),
            "{\"method\":\"process/output\",\"params\":{\"processId\":\"p\\\"1\",\"seq\":3,\"stream\":\"stderr\",\"chunk\":\"aGkK\"}}\n"
        );
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["params"]["processId"], "p\"1");
    }

    #[test]
    fn read_file_line_matches_the_serialized_result() {
        for id in [RequestId::Int(-7), RequestId::Str("a\"b".into())] {
            let mut l = read_file_head(&id);
            l.extend_from_slice(b"aGkK");
            l.extend_from_slice(READ_FILE_TAIL);
            let want = to_line(&ResponseOut {
                id: &id,
                result: fs::ReadFileResult {
                    data_base64: "aGkK".into(),
                },
            });
            assert_eq!(l, want);
        }
    }
}
