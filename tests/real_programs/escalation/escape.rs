//! Escape attempts that need the real patched bash (the rest are in the
//! default suite, `tests/integration/escalation/escape.rs`): workspace-written
//! programs under a basename rule, an `allow` for a program the sandbox can
//! write, and loader and interpreter variables set in the shell.

use crate::need_tools;
use crate::support::escalation::*;
use crate::support::{Run, Server};
use serde_json::json;
use std::os::unix::fs::symlink;

#[test]
fn basename_rules_do_not_escalate_programs_the_sandbox_can_write() {
    let t = need_tools!();
    let mut d = Dirs::new("base");
    let trusted = d.extra("bin");
    let (ws, out) = (d.ws.clone(), d.out.clone());
    // A workspace `ls`; a link named `ls` in a root-owned directory that points
    // into the workspace; a root-owned directory link to the workspace.
    probe(&ws.join("ls"), &out, "a");
    probe(&ws.join("evil"), &out, "b");
    symlink(ws.join("evil"), trusted.join("ls")).unwrap();
    symlink(&ws, trusted.join("wsdir")).unwrap();
    let tb = trusted.display();
    let script = format!(
        "./ls; {tb}/ls; {tb}/wsdir/ls; sh -c 'echo c > {o}/c && echo c:escaped'",
        o = out.display()
    );
    let mut s = Server::ready();
    s.start_ok(
        "base",
        &[&t.bash, "-c", &script],
        json!({"cwd": uri(&ws), "sandbox": sandbox(&ws), "escalation": allow(&["ls", "sh"])}),
    );
    let r = Run::from_events(s.collect_until_closed("base"));
    // The workspace programs run in place, inside the sandbox; the system `sh`
    // is still escalated by the same rules.
    assert_eq!(
        r.stdout_str(),
        "a:confined\nb:confined\na:confined\nc:escaped\n",
        "{}",
        r.stderr_str()
    );
    assert!(!out.join("a").exists() && !out.join("b").exists());
}

#[test]
fn allow_for_a_program_the_sandbox_can_write_asks_first() {
    let t = need_tools!();
    let d = Dirs::new("ask");
    let (ws, out) = (d.ws.clone(), d.out.clone());
    probe(&ws.join("tool"), &out, "a");
    probe(&ws.join("other"), &out, "b");
    let tool = ws.join("tool");
    let esc = json!({"rules": [{"prefix": [tool.to_str().unwrap()], "decision": "allow"}],
                     "default": "allow"});
    let mut s = Server::ready();
    s.start_ok(
        "ask",
        &[&t.bash, "-c", "./tool; ./other"],
        json!({"cwd": uri(&ws), "sandbox": sandbox(&ws), "escalation": esc}),
    );
    // A full-path `allow` rule and `default: allow` both become prompts.
    let req = next_approval(&mut s);
    assert_eq!(req["params"]["file"], uri(&tool));
    s.send(&json!({"id": req["id"], "result": {"decision": "deny"}}));
    let req = next_approval(&mut s);
    assert_eq!(req["params"]["file"], uri(&ws.join("other")));
    s.send(&json!({"id": req["id"], "result": {"decision": "approve"}}));
    let r = Run::from_events(s.collect_until_closed("ask"));
    assert_eq!(r.stdout_str(), "b:escaped\n", "{}", r.stderr_str());
    // (The sandboxed bash also reads ~/.bashrc: its stdin check fails under
    // seccomp, so it believes it runs from a remote shell daemon.)
    assert!(
        r.stderr_str()
            .ends_with("Execution denied: User declined execution\n"),
        "{}",
        r.stderr_str()
    );
}

/// Names whose value an escalated command must not take from the shell.
const INJECTED: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "MALLOC_PERTURB_",
    "HOSTALIASES",
    "NLSPATH",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "RUBYOPT",
    "NODE_OPTIONS",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_f%%",
    "PS4",
    "GIT_CONFIG_GLOBAL",
    "GIT_SSH_COMMAND",
    "JAVA_TOOL_OPTIONS",
    "LUA_INIT",
    "PAGER",
    "EDITOR",
    "LESSOPEN",
    "OPENSSL_CONF",
];

fn env_map(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn escalated_commands_do_not_get_the_shells_loader_or_interpreter_variables() {
    let t = need_tools!();
    let mut s = Server::ready();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut script = String::from(
        "f() { :; }; export -f f\nexport LD_PRELOAD= LD_LIBRARY_PATH=/nonexistent LD_AUDIT= \
         GCONV_PATH=/w GLIBC_TUNABLES= MALLOC_PERTURB_=0 HOSTALIASES=/w NLSPATH=/w \
         PYTHONSTARTUP=/w/s.py PYTHONPATH=/w PERL5OPT=-d RUBYOPT=-r/w NODE_OPTIONS=--require=/w \
         BASH_ENV=/w/rc ENV=/w/rc PS4='$(x)' GIT_CONFIG_GLOBAL=/w/g GIT_SSH_COMMAND=x \
         JAVA_TOOL_OPTIONS=-x LUA_INIT=@/w PAGER=/w/p EDITOR=/w/e LESSOPEN='|/w/l %s' \
         OPENSSL_CONF=/w/c HOME=/w FOO=bar GIT_AUTHOR_NAME=A TERM=xterm-test PATH=/w/bin:$PATH\n",
    );
    script.push_str("env\n");
    s.start_ok(
        "env",
        &[&t.bash, "-c", &script],
        json!({"escalation": allow(&["env"]), "env": {"PYTHONPATH": "/opt/client", "HOME": home}}),
    );
    let r = Run::from_events(s.collect_until_closed("env"));
    let env = env_map(&r.stdout_str());
    assert_eq!(r.exit_code(), 0, "{}", r.stderr_str());
    // None of the shell's values arrives: each name is as in the server's own
    // environment (absent, unless the test runner has it, as cargo's
    // LD_LIBRARY_PATH).
    for name in INJECTED {
        assert_eq!(
            env.get(*name),
            std::env::var(name).ok().as_ref(),
            "{name} came from the shell"
        );
    }
    // Ordinary variables pass, the shell's changes included; the listed ones
    // keep the value the shell was started with.
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    assert_eq!(env.get("GIT_AUTHOR_NAME").map(String::as_str), Some("A"));
    assert_eq!(env.get("TERM").map(String::as_str), Some("xterm-test"));
    assert!(env["PATH"].starts_with("/w/bin:"), "{}", env["PATH"]);
    assert_eq!(env.get("HOME"), Some(&home));
    assert_eq!(
        env.get("PYTHONPATH").map(String::as_str),
        Some("/opt/client")
    );
}
