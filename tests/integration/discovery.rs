//! `capabilities/discoverV2` (docs/protocol.md "Capability discovery"): the
//! skills under `$CODEX_HOME/skills` and `~/.agents/skills` of the server.

use crate::support::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

fn write(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// The same tree the reference (codex exec-server 0.171.0) was probed with.
fn tree(t: &Path) {
    let ch = t.join("ch/skills");
    write(
        &ch.join(".system/sysx/SKILL.md"),
        "---\nname: sys-skill\ndescription: desc of sys-skill\n---\nbody\n",
    );
    write(
        &ch.join("chs/SKILL.md"),
        "---\nname: ch-skill\ndescription: \"quoted desc\"\nmetadata:\n  short-description: short one\n---\n",
    );
    write(
        &ch.join("chs/agents/openai.yaml"),
        "policy:\n  allow_implicit_invocation: false\ndependencies:\n  tools:\n    - type: mcp\n      value: srv\n      description: d\n      transport: streamable_http\n      url: http://x\n",
    );
    write(&ch.join("nofm/SKILL.md"), "no front matter\n");
    write(
        &ch.join("deep/a/b/SKILL.md"),
        "---\nname: deep-skill\ndescription: deep\n---\n",
    );
    write(
        &ch.join("noname/SKILL.md"),
        "---\ndescription: no name\n---\n",
    );
    write(
        &ch.join("nested/SKILL.md"),
        "---\nname: outer\ndescription: o\n---\n",
    );
    write(
        &ch.join("nested/inner/SKILL.md"),
        "---\nname: inner\ndescription: i\n---\n",
    );
    write(
        &t.join("home/.agents/skills/ha/SKILL.md"),
        "---\nname: home-agents-skill\ndescription: ha\n---\n",
    );
    fs::create_dir_all(t.join("proj")).unwrap();
}

fn server(t: &Path) -> Server {
    let mut s = Server::builder()
        .env("HOME", t.join("home"))
        .env("CODEX_HOME", t.join("ch"))
        .spawn();
    s.initialize();
    s
}

fn u(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn skills_of_both_roots_with_metadata_policy_and_dependencies() {
    let t = temp_dir("discover");
    tree(&t);
    let mut s = server(&t);
    let r = s.call(
        "capabilities/discoverV2",
        json!({"cwd": u(&t.join("proj"))}),
    );
    let ch = json!({"id": "codex-home-skills", "path": u(&t.join("ch/skills"))});
    let ha = json!({"id": "user-agent-skills", "path": u(&t.join("home/.agents/skills"))});
    let skill = |name: &str, desc: &str, rel: &str, root: &Value| {
        json!({"name": name, "description": desc, "shortDescription": null,
               "path": u(&t.join(rel)), "discoveryRoot": root,
               "dependencies": null, "policy": null})
    };
    let mut chs = skill("ch-skill", "quoted desc", "ch/skills/chs/SKILL.md", &ch);
    chs["shortDescription"] = json!("short one");
    chs["dependencies"] = json!({"tools": [{"type": "mcp", "value": "srv", "description": "d",
        "transport": "streamable_http", "command": null, "url": "http://x", "oauthCallbackPort": null}]});
    chs["policy"] = json!({"allowImplicitInvocation": false, "products": []});
    // What the reference answered for the same tree.
    assert_eq!(
        r,
        json!({
            "plugins": [],
            "skills": [
                skill("sys-skill", "desc of sys-skill", "ch/skills/.system/sysx/SKILL.md", &ch),
                chs,
                skill("deep-skill", "deep", "ch/skills/deep/a/b/SKILL.md", &ch),
                skill("outer", "o", "ch/skills/nested/SKILL.md", &ch),
                skill("inner", "i", "ch/skills/nested/inner/SKILL.md", &ch),
                skill("noname", "no name", "ch/skills/noname/SKILL.md", &ch),
                skill("home-agents-skill", "ha", "home/.agents/skills/ha/SKILL.md", &ha),
            ],
            "warnings": ["some capability metadata could not be loaded; discovery may be incomplete"],
        })
    );
    // A cwd that does not exist is not an error.
    s.call(
        "capabilities/discoverV2",
        json!({"cwd": u(&t.join("nope"))}),
    );
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn a_sandbox_limits_what_is_discovered() {
    let t = temp_dir("discover-sb");
    tree(&t);
    let mut s = server(&t);
    // Only the home is readable: the Codex-home skills are not looked at.
    let sb = json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {
        "type": "restricted", "entries": [
            {"path": {"type": "path", "path": u(&t.join("home"))}, "access": "read"}]}},
        "cwd": u(&t.join("proj"))});
    let r = s.call(
        "capabilities/discoverV2",
        json!({"cwd": u(&t.join("proj")), "sandbox": sb}),
    );
    let names: Vec<&str> = r["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["home-agents-skill"], "{r}");
    assert_eq!(r["warnings"], json!([]));
    // A deny on one skill's directory hides it; a link into the denied
    // directory does not reveal it.
    std::os::unix::fs::symlink(
        t.join("ch/skills/chs"),
        t.join("home/.agents/skills/via-link"),
    )
    .unwrap();
    let sb = json!({"permissions": {"type": "managed", "network": "restricted", "file_system": {
        "type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
            {"path": {"type": "path", "path": u(&t.join("ch/skills/chs"))}, "access": "deny"}]}},
        "cwd": u(&t.join("proj"))});
    let r = s.call(
        "capabilities/discoverV2",
        json!({"cwd": u(&t.join("proj")), "sandbox": sb}),
    );
    assert!(!r.to_string().contains("ch-skill"), "{r}");
    assert!(r.to_string().contains("sys-skill"), "{r}");
    fs::remove_dir_all(&t).unwrap();
}

#[test]
fn discover_v2_errors_and_gate() {
    let t = temp_dir("discover-err");
    let mut s = Server::builder()
        .env("HOME", t.join("home"))
        .env("CODEX_HOME", t.join("ch"))
        .spawn();
    let r = s.request("capabilities/discoverV2", json!({"cwd": u(&t)}));
    assert_error(
        &r,
        -32600,
        "client must call initialize before using capability discovery methods",
    );
    s.initialize();
    let r = s.request("capabilities/discoverV2", json!({}));
    assert_error(&r, -32602, "missing field `cwd`");
    // No skill directories at all: an empty answer.
    let r = s.call("capabilities/discoverV2", json!({"cwd": u(&t)}));
    assert_eq!(r, json!({"plugins": [], "skills": [], "warnings": []}));
    fs::remove_dir_all(&t).unwrap();
}
