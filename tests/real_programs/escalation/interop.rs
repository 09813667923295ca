//! Tether's server with the reference `codex-execve-wrapper` (0.97) as the
//! shell's wrapper (`wrapperPath`): the same wire, the other implementation.

use crate::need_tools;
use crate::support::escalation::*;
use crate::support::{Run, Server};
use serde_json::json;

fn reference(t: &Tools, mut esc: serde_json::Value) -> serde_json::Value {
    esc["wrapperPath"] = json!(t.wrapper);
    esc
}

#[test]
fn reference_wrapper_run_escalate_deny() {
    let t = need_tools!();
    let mut s = Server::ready();
    let server = s.pid();
    let esc = reference(
        &t,
        json!({"rules": [
            {"prefix": ["sh"], "decision": "allow"},
            {"prefix": ["rm"], "decision": "forbidden"}]}),
    );
    let r = shell(
        &mut s,
        &t,
        "ref",
        "/bin/echo a b
sh -c 'echo parent=$PPID; exit 6'; echo rc=$?
echo hi | sh -c 'tr a-z A-Z'
rm -f /nonexistent-x; echo rc=$?",
        esc,
    );
    assert_eq!(
        r.stdout_str(),
        format!("a b\nparent={server}\nrc=6\nHI\nrc=1\n"),
        "{}",
        r.stderr_str()
    );
    assert!(
        r.stderr_str()
            .contains("Execution denied: Execution forbidden by policy"),
        "{}",
        r.stderr_str()
    );
}

#[test]
fn reference_wrapper_prompt() {
    let t = need_tools!();
    let mut s = Server::ready();
    let esc = reference(&t, json!({"default": "prompt"}));
    start_shell(
        &mut s,
        &t,
        "refp",
        "/bin/echo a b; echo rc=$?",
        esc,
        json!({}),
    );
    let req = next_approval(&mut s);
    assert_eq!(req["params"]["file"], "file:///bin/echo");
    assert_eq!(req["params"]["argv"], json!(["/bin/echo", "a", "b"]));
    s.send(&json!({"id": req["id"], "result": {"decision": "approve"}}));
    let r = Run::from_events(s.collect_until_closed("refp"));
    assert_eq!(r.stdout_str(), "a b\nrc=0\n", "{}", r.stderr_str());
}
