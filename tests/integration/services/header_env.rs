//! `valueEnvVar` on `http/request` headers (docs/protocol.md "http/request"):
//! the value sent is `value` followed by a variable of the server's own
//! environment; denylisted, unset and empty variables are refused with their
//! exact texts, before anything is sent.

use super::httpd::Httpd;
use crate::support::services::server_with_env;
use crate::support::unb64;
use crate::support::wire::assert_error;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn httpd() -> &'static Httpd {
    static H: OnceLock<Httpd> = OnceLock::new();
    H.get_or_init(Httpd::start)
}

fn echo(headers: Value, id: &str) -> Value {
    json!({"method": "GET", "url": httpd().url("/echo"), "requestId": id, "headers": headers})
}

const ENV: &[(&str, &str)] = &[
    ("TETHER_IT_TOK", "tok-xyz"),
    ("TETHER_IT_EMPTY", ""),
    ("OPENAI_API_KEY", "sk-x"),
    ("GITHUB_TOKEN", "gh-x"),
];

#[test]
fn the_server_environment_supplies_the_value() {
    let mut s = server_with_env(ENV);
    let r = s.call(
        "http/request",
        echo(
            json!([
                {"name": "authorization", "value": "Bearer ", "valueEnvVar": "TETHER_IT_TOK"},
                {"name": "x-raw", "value": "", "valueEnvVar": "TETHER_IT_TOK"},
                {"name": "x-plain", "value": "p", "valueEnvVar": null},
                // Not on the denylist.
                {"name": "x-gh", "value": "", "valueEnvVar": "GITHUB_TOKEN"}
            ]),
            "ok",
        ),
    );
    let text = String::from_utf8(unb64(r["bodyBase64"].as_str().unwrap())).unwrap();
    for want in [
        "authorization: Bearer tok-xyz\n",
        "x-raw: tok-xyz\n",
        "x-plain: p\n",
        "x-gh: gh-x\n",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    assert!(!text.contains("TETHER_IT_TOK"), "{text}");
}

#[test]
fn denylisted_unset_and_empty_variables_are_refused() {
    let mut s = server_with_env(ENV);
    // Nothing listens here: an attempted connection would be -32603, so a
    // -32602 shows the request was refused before anything was sent.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut refused = |var: &str, msg: &str| {
        let r = s.request(
            "http/request",
            json!({"method": "GET", "url": format!("http://127.0.0.1:{closed}/"), "requestId": "x",
                   "headers": [{"name": "authorization", "value": "Bearer ", "valueEnvVar": var}]}),
        );
        assert_error(&r, -32602, msg);
    };
    refused(
        "TETHER_IT_MISSING",
        "http/request header authorization requires executor environment variable TETHER_IT_MISSING",
    );
    refused(
        "TETHER_IT_EMPTY",
        "http/request header authorization requires a non-empty executor environment variable TETHER_IT_EMPTY",
    );
    // The denylist is checked first, ignoring case; the name is echoed as sent.
    refused(
        "openai_api_key",
        "http/request header authorization cannot use executor environment variable openai_api_key",
    );
    for var in [
        "CODEX_EXEC_SERVER_NOISE_AUTH_TOKEN",
        "OPENAI_FEDERATION_RULE_ID",
        "OPENAI_IDENTITY_TOKEN_FILE",
        "OPENAI_WORKLOAD_IDENTITY_CONTEXT",
        "OPENAI_API_KEY",
        "CODEX_API_KEY",
        "CODEX_ACCESS_TOKEN",
        "CODEX_CONNECTORS_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        refused(
            var,
            &format!(
                "http/request header authorization cannot use executor environment variable {var}"
            ),
        );
    }
    // The bit is advertised.
    let info = s.call("environment/info", json!({}));
    assert_eq!(info["capabilities"]["httpHeaderEnvVars"], true, "{info}");
}
