//! The real Codex CLI (0.169.0 and 0.171.0) uses `environmentConfig/read` and
//! `valueEnvVar` headers through Tether: an MCP server configured only in the
//! executor's own CODEX_HOME, with a bearer token that only the executor's
//! environment holds, is offered to the model and called.
//!
//! The host's CODEX_HOME (the `codex` harness) knows nothing of the server.
//! Tether gets `CODEX_HOME` = a second directory whose `config.toml` names a
//! streamable-HTTP MCP server (a tiny JSON responder on 127.0.0.1, below) with
//! `bearer_token_env_var`, and the token variable. Codex reads that config
//! through `environmentConfig/read`, reaches the server through `http/request`
//! with `valueEnvVar`, and offers its tool; the mock model calls it.

use super::codex::{
    assert_no_survivors, check_ok, codex_exec_with, new_marker, temp_dir, Mock, Turn,
};
use crate::support::npm::{codex_at, CODEX_NEWEST, CODEX_VERSION};
use crate::support::skip;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const TOKEN_VAR: &str = "TETHER_E2E_MCP_TOKEN";
const TOKEN: &str = "tok-e2e-5f1c";
const TOOL: &str = "tether_probe";
const ANSWER: &str = "mcp-says-hi-from-the-executor";

/// What the MCP server saw: (JSON-RPC method, `authorization` header).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A streamable-HTTP MCP server that answers with plain JSON: `initialize`,
/// `tools/list` (one tool), `tools/call`; notifications get 202; GET 405.
fn mcp_server() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the MCP server");
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let seen = s.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let method = line.split_whitespace().next().unwrap_or("").to_string();
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len = headers
                        .get("content-length")
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let auth = headers.get("authorization").cloned().unwrap_or_default();
                    let (status, payload) = if method != "POST" {
                        seen.lock().unwrap().push((format!("HTTP {method}"), auth));
                        ("405 Method Not Allowed", String::new())
                    } else {
                        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let m = msg["method"].as_str().unwrap_or("").to_string();
                        seen.lock().unwrap().push((m.clone(), auth));
                        let result = match m.as_str() {
                            "initialize" => Some(json!({
                                "protocolVersion": msg["params"]["protocolVersion"],
                                "capabilities": {"tools": {"listChanged": false}},
                                "serverInfo": {"name": "tether-e2e", "version": "1.0.0"}})),
                            "tools/list" => Some(json!({"tools": [{"name": TOOL,
                                "description": "Answers with a fixed text.",
                                "inputSchema": {"type": "object", "properties": {}}}]})),
                            "tools/call" => Some(json!({
                                "content": [{"type": "text", "text": ANSWER}], "isError": false})),
                            _ => None,
                        };
                        match (msg.get("id"), result) {
                            (None, _) => ("202 Accepted", String::new()),
                            (Some(id), Some(result)) => (
                                "200 OK",
                                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                            ),
                            (Some(id), None) => (
                                "200 OK",
                                json!({"jsonrpc": "2.0", "id": id,
                                       "error": {"code": -32601, "message": "no such method"}})
                                .to_string(),
                            ),
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        payload.len()
                    );
                    if w.write_all(head.as_bytes())
                        .and_then(|()| w.write_all(payload.as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// The function call for the MCP tool in a list of tool definitions: a
/// function named `…tether_probe`, or one inside a namespace.
fn find_tool(tools: &Value) -> Option<Value> {
    for t in tools.as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("");
        if name.ends_with(TOOL) {
            return Some(json!({"type":"function_call","id":"fc_m1","call_id":"m1",
                               "name":name,"arguments":"{}"}));
        }
        for inner in t["tools"].as_array().into_iter().flatten() {
            if inner["name"].as_str().is_some_and(|n| n.ends_with(TOOL)) {
                return Some(json!({"type":"function_call","id":"fc_m1","call_id":"m1",
                                   "namespace":name,"name":inner["name"],"arguments":"{}"}));
            }
        }
    }
    None
}

fn give_up(why: &str) -> Value {
    json!({"type":"message","id":"msg_none","role":"assistant",
           "content":[{"type":"output_text","text":why}]})
}

/// The model's first turn: Codex defers MCP tools behind `tool_search`, so
/// search for the tool (or call it when it is offered up front).
fn search_for_the_tool() -> Turn {
    Box::new(|raw: &str| {
        let req: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        find_tool(&req["tools"]).unwrap_or_else(|| {
            json!({"type":"tool_search_call","id":"ts_1","call_id":"s1","execution":"client",
                   "arguments":{"query":TOOL,"limit":8}})
        })
    })
}

/// The second turn: call the tool the search returned.
fn call_the_tool() -> Turn {
    Box::new(|raw: &str| {
        let req: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        let found = req["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "tool_search_output")
            .find_map(|i| find_tool(&i["tools"]))
            .or_else(|| find_tool(&req["tools"]));
        found.unwrap_or_else(|| give_up("tool_search did not find the MCP tool"))
    })
}

fn executor_mcp_server_is_offered_and_called(version: &str) {
    let codex = match codex_at(version) {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let (port, seen) = mcp_server();
    let exec_home = temp_dir("exec-codex-home");
    std::fs::write(
        exec_home.join("config.toml"),
        format!(
            "[mcp_servers.execmcp]\nurl = \"http://127.0.0.1:{port}/mcp\"\nbearer_token_env_var = \"{TOKEN_VAR}\"\n"
        ),
    )
    .unwrap();
    let mock = Mock::start(vec![search_for_the_tool(), call_the_tool()]);
    let ws = temp_dir("ws-mcp");
    let exec_home_s = exec_home.display().to_string();
    let run = codex_exec_with(
        &codex,
        &mock,
        &ws,
        "danger-full-access",
        &new_marker(),
        &[("CODEX_HOME", &exec_home_s), (TOKEN_VAR, TOKEN)],
        &[],
    );
    check_ok(&run);
    let log = std::fs::read_to_string(&run.server_log).unwrap_or_default();
    let seen = seen.lock().unwrap().clone();
    // What the model was shown after the first turn (the search's result).
    let tools: Vec<Value> = mock
        .requests
        .lock()
        .unwrap()
        .iter()
        .skip(1)
        .flat_map(|r| r["input"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["type"] == "tool_search_output")
        .collect();
    let outputs = mock.outputs();
    let diag = format!(
        "MCP server saw: {seen:?}\nmodel tools: {tools:?}\noutputs: {outputs:?}\nstderr:\n{}\nserver log (tail):\n{}",
        run.stderr,
        log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // Codex read the executor's config through Tether …
    assert!(log.contains("environmentConfig/read"), "{diag}");
    // … reached the server through the executor, the token from its environment …
    let methods: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    for m in ["initialize", "tools/list", "tools/call"] {
        assert!(methods.contains(&m), "no {m}: {diag}");
    }
    for (m, auth) in &seen {
        assert_eq!(auth, &format!("Bearer {TOKEN}"), "{m}: {diag}");
    }
    // … and the model got the tool's answer.
    assert!(
        outputs.get("m1").is_some_and(|o| o.contains(ANSWER)),
        "{diag}"
    );
    assert_no_survivors(&run);
    let _ = std::fs::remove_dir_all(&ws);
    let _ = std::fs::remove_dir_all(&exec_home);
}

#[test]
fn executor_mcp_server_codex_0169() {
    executor_mcp_server_is_offered_and_called(CODEX_VERSION);
}

#[test]
fn executor_mcp_server_codex_0171() {
    executor_mcp_server_is_offered_and_called(CODEX_NEWEST);
}
