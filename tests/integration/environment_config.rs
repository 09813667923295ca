//! `environmentConfig/read` (docs/protocol.md "environmentConfig/read")
//! through the binary: the layers (system, user, trusted project, legacy
//! managed config), the requirements, the projection by key paths, the exact
//! result bytes, every error text, and the gate.
//!
//! No test reads the real `/etc`: the server gets `CODEX_HOME`, `HOME` and the
//! test hook `TETHER_CODEX_SYSTEM_DIR` pointing into a scratch tree. One test
//! checks the default `/etc/codex` inside a private mount namespace, where a
//! scratch `/etc` is mounted (it skips where no namespace can be made).

use crate::support::ns::Ns;
use crate::support::server::Server;
use crate::support::wire::assert_error;
use crate::support::{skip, temp_dir};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

const METHOD: &str = "environmentConfig/read";

/// A scratch tree, removed on drop: `home/`, `codex/` (CODEX_HOME), `etc/`
/// (the system directory), `proj/` (a git project).
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        // Canonical, so that the paths the server reports are these.
        let root = fs::canonicalize(temp_dir(name)).unwrap();
        for d in ["home", "codex", "etc", "proj/.git", "proj/sub"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("proj/.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        Tree { root }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    /// The user config: `extra`, then trust for `proj` when `trust` is given.
    fn user_config(&self, extra: &str, trust: Option<&str>) {
        let mut text = extra.to_string();
        if let Some(level) = trust {
            text.push_str(&format!(
                "\n[projects.\"{}\"]\ntrust_level = \"{level}\"\n",
                self.s("proj")
            ));
        }
        self.write("codex/config.toml", &text);
    }
    fn server(&self) -> Server {
        self.server_with(&[])
    }
    fn server_with(&self, env: &[(&str, &str)]) -> Server {
        let mut b = Server::builder()
            .strict()
            .env("HOME", self.p("home"))
            .env("CODEX_HOME", self.p("codex"))
            .env("TETHER_CODEX_SYSTEM_DIR", self.p("etc"));
        for (k, v) in env {
            b = b.env(*k, *v);
        }
        let mut s = b.spawn();
        s.initialize();
        s
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn params(cwd: &Path, config: Value, requirements: Value) -> Value {
    json!({"cwd": uri(cwd), "configPaths": config, "requirementsPaths": requirements})
}

/// The result's config layers as (source, baseDir, toml).
fn layers(stack: &Value) -> Vec<(String, String, String)> {
    stack["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_string(),
                l["baseDir"].as_str().unwrap().to_string(),
                l["toml"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sources(stack: &Value) -> Vec<String> {
    layers(stack).into_iter().map(|l| l.0).collect()
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

const USER_MCP: &str = "[mcp_servers.user1]\nurl = \"https://u.example/mcp\"\n\n[mcp_servers.user1.http_headers]\nX-A = \"1\"\n";
const PROJ_MCP: &str =
    "[mcp_servers.proj1]\nurl = \"https://p.example/mcp\"\n\n[mcp_servers.user1]\nenabled = false\n";

/// The example of docs/protocol.md, byte for byte: a user server with
/// headers, a trusted git project whose `.codex/config.toml` adds a server
/// and disables the user's; then a selector that matches nothing.
#[test]
fn the_documented_example_byte_for_byte() {
    let t = Tree::new("ecr-example");
    t.user_config(&format!("model = \"m\"\n{USER_MCP}"), Some("trusted"));
    t.write("proj/.codex/config.toml", PROJ_MCP);
    let mut s = t.server();
    let r = s.request(
        METHOD,
        params(
            &t.p("proj/sub"),
            json!([["mcp_servers"]]),
            json!([["mcp_servers"]]),
        ),
    );
    let id = &r["id"];
    let head = format!(
        r#"{{"id":{id},"result":{{"userHomeDir":{},"codexHomeDir":{},"hostname":{},"#,
        json!(uri(&t.p("home"))),
        json!(uri(&t.p("codex"))),
        json!(hostname())
    );
    let want = format!(
        r#"{head}"config":{{"layers":[{{"source":{},"baseDir":{},"toml":{}}},{{"source":{},"baseDir":{},"toml":{}}}],"cloudInsertionIndex":0}},"requirements":{{"layers":[],"cloudInsertionIndex":0}}}}}}"#,
        json!(format!("user ({})", t.s("codex/config.toml"))),
        json!(uri(&t.p("codex"))),
        json!(USER_MCP),
        json!(format!("project ({})", t.s("proj/.codex/config.toml"))),
        json!(uri(&t.p("proj/.codex"))),
        json!(PROJ_MCP),
    );
    assert_eq!(s.last_raw.as_deref(), Some(want.as_str()));

    let r = s.request(
        METHOD,
        params(&t.p("proj"), json!([["nonexistent_key"]]), json!([])),
    );
    let want = format!(
        r#"{{"id":{},"result":{{"userHomeDir":{},"codexHomeDir":{},"hostname":{},"config":{{"layers":[],"cloudInsertionIndex":0}},"requirements":{{"layers":[],"cloudInsertionIndex":0}}}}}}"#,
        r["id"],
        json!(uri(&t.p("home"))),
        json!(uri(&t.p("codex"))),
        json!(hostname())
    );
    assert_eq!(s.last_raw.as_deref(), Some(want.as_str()));
}

/// Only a trusted project contributes: no entry and `untrusted` give the user
/// layer alone; trust of the directory itself counts; a project's denylisted
/// keys (`model_provider`, …) never come back.
#[test]
fn only_trusted_projects_contribute() {
    let t = Tree::new("ecr-trust");
    t.write(
        "proj/.codex/config.toml",
        "model_provider = \"evil\"\nnotify = [\"x\"]\nmodel = \"p\"\n",
    );
    t.write("proj/sub/.codex/config.toml", "model = \"sub\"\n");
    let keys = json!([["model"], ["model_provider"], ["notify"]]);
    let read = |trust: Option<&str>, extra: &str| {
        t.user_config(&format!("model = \"u\"\n{extra}"), trust);
        let mut s = t.server();
        let r = s.call(METHOD, params(&t.p("proj/sub"), keys.clone(), json!([])));
        layers(&r["config"])
    };
    let user = (
        format!("user ({})", t.s("codex/config.toml")),
        uri(&t.p("codex")),
        "model = \"u\"\n".to_string(),
    );
    assert_eq!(read(None, ""), vec![user.clone()]);
    assert_eq!(read(Some("untrusted"), ""), vec![user.clone()]);
    assert_eq!(
        read(Some("trusted"), ""),
        vec![
            user.clone(),
            (
                format!("project ({})", t.s("proj/.codex/config.toml")),
                uri(&t.p("proj/.codex")),
                "model = \"p\"\n".to_string()
            ),
            (
                format!("project ({})", t.s("proj/sub/.codex/config.toml")),
                uri(&t.p("proj/sub/.codex")),
                "model = \"sub\"\n".to_string()
            ),
        ]
    );
    // The sub-directory trusted by itself, the project root not.
    let sub_only = format!(
        "[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
        t.s("proj/sub")
    );
    let got = read(None, &sub_only);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].2, "model = \"sub\"\n");
}

/// Project layers run from the root (the nearest `.git` above `cwd`) down to
/// `cwd`: a `.codex` above the root is not read, and a missing `cwd` is not an
/// error. A `.codex` that is `CODEX_HOME` is the user layer only.
#[test]
fn project_root_bounds_and_missing_cwd() {
    let t = Tree::new("ecr-root");
    t.user_config("", Some("trusted"));
    // Above the project root: never a layer.
    t.write(".codex/config.toml", "model = \"above\"\n");
    t.write("proj/.codex/config.toml", "model = \"root\"\n");
    let mut s = t.server();
    let r = s.call(
        METHOD,
        params(&t.p("proj/no/such/dir"), json!([["model"]]), json!([])),
    );
    assert_eq!(
        sources(&r["config"]),
        vec![format!("project ({})", t.s("proj/.codex/config.toml"))]
    );
    // project_root_markers = [] makes cwd the root.
    t.write("proj/sub/.codex/config.toml", "model = \"sub\"\n");
    t.user_config(
        &format!(
            "project_root_markers = []\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
            t.s("proj/sub")
        ),
        None,
    );
    let r = s.call(
        METHOD,
        params(&t.p("proj/sub"), json!([["model"]]), json!([])),
    );
    assert_eq!(
        sources(&r["config"]),
        vec![format!("project ({})", t.s("proj/sub/.codex/config.toml"))]
    );
    drop(s);
    // CODEX_HOME is proj/.codex: that file is the user layer, not a project one.
    let mut s = Server::builder()
        .strict()
        .env("HOME", t.p("home"))
        .env("CODEX_HOME", t.p("proj/.codex"))
        .env("TETHER_CODEX_SYSTEM_DIR", t.p("etc"))
        .spawn();
    s.initialize();
    t.write(
        "proj/.codex/config.toml",
        &format!(
            "model = \"root\"\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
            t.s("proj")
        ),
    );
    let r = s.call(
        METHOD,
        params(&t.p("proj/sub"), json!([["model"]]), json!([])),
    );
    assert_eq!(
        sources(&r["config"]),
        vec![
            format!("user ({})", t.s("proj/.codex/config.toml")),
            format!("project ({})", t.s("proj/sub/.codex/config.toml")),
        ]
    );
}

/// The system directory's config, requirements and legacy managed config,
/// with the cloud insertion index of each stack before and after projection.
#[test]
fn system_layers_requirements_and_legacy_managed_config() {
    let t = Tree::new("ecr-system");
    t.user_config("[mcp_servers.u]\nurl = \"https://u.example/mcp\"\n", None);
    t.write(
        "etc/config.toml",
        "[mcp_servers.sys1]\nurl = \"https://s.example/mcp\"\n",
    );
    t.write(
        "etc/requirements.toml",
        "[mcp_servers.req1]\nidentity = { url = \"https://r.example/mcp\" }\nallowed_sandbox_modes = [\"read-only\"]\n",
    );
    t.write(
        "etc/managed_config.toml",
        "approval_policy = \"never\"\nsandbox_mode = \"workspace-write\"\n[mcp_servers.man1]\nurl = \"https://m.example/mcp\"\n",
    );
    let mut s = t.server();
    let etc = uri(&t.p("etc"));
    let r = s.call(
        METHOD,
        params(
            &t.p("proj"),
            json!([["mcp_servers"]]),
            json!([["mcp_servers"]]),
        ),
    );
    assert_eq!(
        layers(&r["config"]),
        vec![
            (
                format!("system ({})", t.s("etc/config.toml")),
                etc.clone(),
                "[mcp_servers.sys1]\nurl = \"https://s.example/mcp\"\n".into()
            ),
            (
                format!("user ({})", t.s("codex/config.toml")),
                uri(&t.p("codex")),
                "[mcp_servers.u]\nurl = \"https://u.example/mcp\"\n".into()
            ),
            (
                format!(
                    "legacy managed_config.toml ({})",
                    t.s("etc/managed_config.toml")
                ),
                etc.clone(),
                "[mcp_servers.man1]\nurl = \"https://m.example/mcp\"\n".into()
            ),
        ]
    );
    assert_eq!(r["config"]["cloudInsertionIndex"], 1);
    // Requirements: the bare path as source; an inline table written as a table.
    assert_eq!(
        layers(&r["requirements"]),
        vec![(
            t.s("etc/requirements.toml"),
            etc.clone(),
            "[mcp_servers.req1]\nallowed_sandbox_modes = [\"read-only\"]\n\n[mcp_servers.req1.identity]\nurl = \"https://r.example/mcp\"\n".into()
        )]
    );
    assert_eq!(r["requirements"]["cloudInsertionIndex"], 1);
    // The system layers dropped by the projection: both indexes 0. The legacy
    // managed config read as requirements.
    let r = s.call(
        METHOD,
        params(
            &t.p("proj"),
            json!([["approval_policy"], ["sandbox_mode"]]),
            json!([["allowed_approval_policies"], ["allowed_sandbox_modes"]]),
        ),
    );
    assert_eq!(
        layers(&r["config"]),
        vec![(
            format!(
                "legacy managed_config.toml ({})",
                t.s("etc/managed_config.toml")
            ),
            etc.clone(),
            "approval_policy = \"never\"\nsandbox_mode = \"workspace-write\"\n".into()
        )]
    );
    assert_eq!(r["config"]["cloudInsertionIndex"], 0);
    // requirements.toml has no such key at its top: dropped, so the index is 0.
    assert_eq!(
        layers(&r["requirements"]),
        vec![(
            t.s("etc/managed_config.toml"),
            etc.clone(),
            "allowed_approval_policies = [\"never\"]\nallowed_sandbox_modes = [\"read-only\", \"workspace-write\"]\n".into()
        )]
    );
    assert_eq!(r["requirements"]["cloudInsertionIndex"], 0);
    // Without requirements.toml the requirements index is 0.
    fs::remove_file(t.p("etc/requirements.toml")).unwrap();
    let r = s.call(
        METHOD,
        params(
            &t.p("proj"),
            json!([["x"]]),
            json!([["allowed_sandbox_modes"]]),
        ),
    );
    assert_eq!(
        sources(&r["requirements"]),
        vec![t.s("etc/managed_config.toml")]
    );
    assert_eq!(r["requirements"]["cloudInsertionIndex"], 0);
    // The system layer kept alone: config index 1 (it comes before the cloud).
    let r = s.call(
        METHOD,
        params(
            &t.p("proj"),
            json!([["mcp_servers", "sys1"]]),
            json!([["x"]]),
        ),
    );
    assert_eq!(
        sources(&r["config"]),
        vec![
            format!("system ({})", t.s("etc/config.toml")),
            format!("user ({})", t.s("codex/config.toml")),
            format!(
                "legacy managed_config.toml ({})",
                t.s("etc/managed_config.toml")
            ),
        ]
    );
    assert_eq!(r["config"]["cloudInsertionIndex"], 1);
}

/// Key paths: a selected table whole, in file order; a table on the way keeps
/// only selected keys (and stays when none is left); a value that is not a
/// table on the way is kept; layers left empty are dropped.
#[test]
fn projection_by_key_paths() {
    let t = Tree::new("ecr-project");
    t.user_config(
        "model = \"u\"\n[mcp_servers.zeta]\nurl = \"z\"\n[mcp_servers.alpha]\nurl = \"a\"\nenabled = true\n",
        Some("trusted"),
    );
    t.write("proj/.codex/config.toml", "mcp_servers = 5\n");
    let mut s = t.server();
    let mut toml_of = |paths: Value| -> Vec<String> {
        let r = s.call(METHOD, params(&t.p("proj"), paths, json!([])));
        layers(&r["config"]).into_iter().map(|l| l.2).collect()
    };
    assert_eq!(
        toml_of(json!([["mcp_servers"]])),
        vec![
            "[mcp_servers.zeta]\nurl = \"z\"\n\n[mcp_servers.alpha]\nurl = \"a\"\nenabled = true\n",
            "mcp_servers = 5\n"
        ]
    );
    assert_eq!(
        toml_of(json!([["mcp_servers", "alpha", "enabled"], ["model"]])),
        vec![
            "model = \"u\"\n\n[mcp_servers.alpha]\nenabled = true\n",
            "mcp_servers = 5\n"
        ]
    );
    assert_eq!(
        toml_of(json!([["mcp_servers", "none"]])),
        vec!["[mcp_servers]\n", "mcp_servers = 5\n"]
    );
    assert_eq!(toml_of(json!([["model"]])), vec!["model = \"u\"\n"]);
    assert!(toml_of(json!([["absent"], ["model", "x"]])).len() == 1);
}

/// Every -32602 text, in the documented order of checks (the `cwd` URI before
/// the key paths), and the -32603 texts of a home or file that cannot be read.
#[test]
fn errors_have_the_documented_texts() {
    let t = Tree::new("ecr-errors");
    let mut s = t.server();
    let cwd = uri(&t.p("proj"));
    let cases = [
        (
            json!({"configPaths": [["a"]], "requirementsPaths": []}),
            "missing field `cwd`",
        ),
        (
            json!({"cwd": cwd, "requirementsPaths": []}),
            "missing field `configPaths`",
        ),
        (
            json!({"cwd": cwd, "configPaths": [["a"]]}),
            "missing field `requirementsPaths`",
        ),
        (
            json!({"cwd": cwd, "configPaths": [], "requirementsPaths": []}),
            "at least one config or requirements path is required",
        ),
        (
            json!({"cwd": cwd, "configPaths": [["a"], []], "requirementsPaths": []}),
            "TOML paths must contain at least one key segment",
        ),
        (
            json!({"cwd": cwd, "configPaths": [["a"]], "requirementsPaths": [[]]}),
            "TOML paths must contain at least one key segment",
        ),
        (
            json!({"cwd": "tmp", "configPaths": [["a"]], "requirementsPaths": []}),
            "invalid URI: relative URL without a base",
        ),
        // The URI is checked first.
        (
            json!({"cwd": "tmp", "configPaths": [], "requirementsPaths": []}),
            "invalid URI: relative URL without a base",
        ),
        (
            json!({"cwd": "http://x/tmp", "configPaths": [["a"]], "requirementsPaths": []}),
            "unsupported path URI scheme `http`",
        ),
        // A foreign host is invalid params here (-32600 for fs methods).
        (
            json!({"cwd": "file://host/tmp", "configPaths": [["a"]], "requirementsPaths": []}),
            "'file://host/tmp' is invalid on 'linux'",
        ),
        (
            Value::Null,
            "invalid type: null, expected struct EnvironmentConfigReadParams",
        ),
    ];
    for (p, msg) in cases {
        let r = s.request(METHOD, p.clone());
        assert_error(&r, -32602, msg);
    }
    drop(s);

    let missing = t.p("no-such-home");
    let mut s = t.server_with(&[("CODEX_HOME", missing.to_str().unwrap())]);
    let r = s.request(METHOD, params(&t.p("proj"), json!([["a"]]), json!([])));
    assert_error(
        &r,
        -32603,
        &format!("failed to find Codex home: CODEX_HOME points to {missing:?}, but that path does not exist"),
    );
    drop(s);
    t.write("afile", "");
    let file = t.p("afile");
    let mut s = t.server_with(&[("CODEX_HOME", file.to_str().unwrap())]);
    let r = s.request(METHOD, params(&t.p("proj"), json!([["a"]]), json!([])));
    assert_error(
        &r,
        -32603,
        &format!("failed to find Codex home: CODEX_HOME points to {file:?}, but that path is not a directory"),
    );
    drop(s);

    let mut s = t.server();
    t.write("codex/config.toml", "a = 1\nx = \n");
    let r = s.request(METHOD, params(&t.p("proj"), json!([["a"]]), json!([])));
    assert_error(
        &r,
        -32603,
        &format!(
            "failed to load executor-local config: {}:2:5: string values must be quoted, expected literal string",
            t.s("codex/config.toml")
        ),
    );
    t.write("codex/config.toml", "");
    t.write("etc/managed_config.toml", "approval_policy = \"bogus\"\n");
    let r = s.request(METHOD, params(&t.p("proj"), json!([["a"]]), json!([])));
    assert_error(
        &r,
        -32603,
        "failed to load executor-local config: Failed to parse config requirements as TOML: unknown variant `bogus`, expected one of `untrusted`, `on-failure`, `on-request`, `granular`, `never`\nin `approval_policy`\n",
    );
}

/// The handshake gate names the family `environment config`; the capability is
/// advertised.
#[test]
fn gate_family_and_capability() {
    let mut s = Server::builder().strict().spawn();
    let p = json!({"cwd": "file:///", "configPaths": [["a"]], "requirementsPaths": []});
    let r = s.request(METHOD, p.clone());
    assert_error(
        &r,
        -32600,
        "client must call initialize before using environment config methods",
    );
    let init = s.call("initialize", json!({"clientName": "t"}));
    let r = s.request(METHOD, p.clone());
    assert_error(
        &r,
        -32600,
        "client must send initialized before using environment config methods",
    );
    assert_eq!(
        init["environmentInfo"]["capabilities"]["environmentConfigRead"],
        true
    );
    s.send_line(r#"{"method":"initialized"}"#);
    assert!(s.request(METHOD, p).get("result").is_some());
}

/// Without the test hook the system directory is `/etc/codex`: checked in a
/// private mount namespace whose `/etc` is a scratch copy of links to the
/// real one plus a `codex/` directory (the machine's `/etc` is not touched).
#[test]
fn the_system_directory_is_etc_codex() {
    let t = Tree::new("ecr-etc");
    t.user_config("", None);
    let real = t.p("real-etc");
    let fake = t.p("fake-etc");
    fs::create_dir_all(&real).unwrap();
    fs::create_dir_all(fake.join("codex")).unwrap();
    for e in fs::read_dir("/etc").unwrap().flatten() {
        if e.file_name() != "codex" {
            std::os::unix::fs::symlink(real.join(e.file_name()), fake.join(e.file_name())).unwrap();
        }
    }
    fs::write(fake.join("codex/config.toml"), "model = \"sys\"\n").unwrap();
    fs::write(fake.join("codex/requirements.toml"), "x = 1\n").unwrap();
    let ns = match Ns::new() {
        Ok(ns) => ns,
        Err(why) => return skip(format!("no mount namespace: {why}")),
    };
    let setup = ns
        .bind(Path::new("/etc"), &real, false)
        .bind(&fake, Path::new("/etc"), false)
        .setup();
    let mut s = Server::builder()
        .strict()
        .env("HOME", t.p("home"))
        .env("CODEX_HOME", t.p("codex"))
        .env_remove("TETHER_CODEX_SYSTEM_DIR")
        .pre_exec(setup)
        .spawn();
    s.initialize();
    let r = s.call(
        METHOD,
        params(&t.p("proj"), json!([["model"]]), json!([["x"]])),
    );
    assert_eq!(
        layers(&r["config"]),
        vec![(
            "system (/etc/codex/config.toml)".to_string(),
            "file:///etc/codex".to_string(),
            "model = \"sys\"\n".to_string()
        )]
    );
    assert_eq!(
        layers(&r["requirements"]),
        vec![(
            "/etc/codex/requirements.toml".to_string(),
            "file:///etc/codex".to_string(),
            "x = 1\n".to_string()
        )]
    );
    assert_eq!(r["config"]["cloudInsertionIndex"], 1);
    assert_eq!(r["requirements"]["cloudInsertionIndex"], 1);
}
