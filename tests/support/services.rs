//! The services tests' server (tools, `http/request`): the one driver
//! ([`Server`]) with the proxy variables removed (requests to the local test
//! server go straight to it), the server itself marked (tool sessions inherit
//! its environment, so the orphan check covers them), and ended by end of
//! stdin alone.

use serde_json::json;

use super::server::{Server, Shutdown};

/// Removed from the server's environment unless a test sets them.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A services server past the handshake.
pub fn server() -> Server {
    server_with_env(&[])
}

/// A services server with these extra environment variables.
pub fn server_with_env(env: &[(&str, &str)]) -> Server {
    let mut b = Server::builder()
        .mark_server()
        .strict()
        .shutdown(Shutdown::CloseStdin);
    for k in PROXY_VARS {
        b = b.env_remove(*k);
    }
    for (k, v) in env {
        b = b.env(*k, *v);
    }
    let mut s = b.spawn();
    s.call("initialize", json!({"clientName": "services-test"}));
    s.send(&json!({"method": "initialized"}));
    s
}
