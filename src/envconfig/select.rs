//! Pure TOML work for `environmentConfig/read`: keeping only the selected key
//! paths of a layer, merging tables (for project discovery), and turning a
//! legacy `managed_config.toml` into requirements.

use toml::map::Map;
use toml::Value;

/// The selected key paths as a tree. A node is `terminal` when a path ends at
/// it: everything below it is kept.
#[derive(Debug, Default)]
pub struct Selector {
    terminal: bool,
    children: Vec<(String, Selector)>,
}

impl Selector {
    /// Build from key paths. An empty path would select the whole document;
    /// the request is refused before that (`TOML paths must contain at least
    /// one key segment`).
    pub fn new(paths: &[Vec<String>]) -> Self {
        let mut root = Selector::default();
        for p in paths {
            root.insert(p);
        }
        root
    }

    fn insert(&mut self, path: &[String]) {
        if self.terminal {
            return;
        }
        let Some((first, rest)) = path.split_first() else {
            self.terminal = true;
            self.children.clear();
            return;
        };
        let child = match self.children.iter().position(|(k, _)| k == first) {
            Some(i) => &mut self.children[i].1,
            None => {
                self.children.push((first.clone(), Selector::default()));
                &mut self.children.last_mut().expect("just pushed").1
            }
        };
        child.insert(rest);
    }

    fn child(&self, key: &str) -> Option<&Selector> {
        self.children.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}

/// The part of `table` the selector keeps, or `None` when nothing is left at
/// the top (the layer is then dropped). A selected value is kept whole; a
/// value that is not a table met on the way to a selected key is kept as it is
/// (it still overrides lower layers); a table met on the way keeps only its
/// selected keys, and is kept even when none is left.
pub fn project(table: &Map<String, Value>, sel: &Selector) -> Option<Map<String, Value>> {
    let out = project_table(table, sel);
    (!out.is_empty()).then_some(out)
}

fn project_table(table: &Map<String, Value>, sel: &Selector) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in table {
        let Some(child) = sel.child(k) else { continue };
        out.insert(k.clone(), project_value(v, child));
    }
    out
}

fn project_value(v: &Value, sel: &Selector) -> Value {
    match v {
        Value::Table(t) if !sel.terminal => Value::Table(project_table(t, sel)),
        _ => v.clone(),
    }
}

/// Merge `over` into `base`: tables merge key by key, anything else replaces.
pub fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Keys a project's `.codex/config.toml` may not set: repository contents must
/// not choose where credentials go or which local commands run. They are
/// removed from project layers.
pub const PROJECT_DENYLIST: &[&str] = &[
    "openai_base_url",
    "chatgpt_base_url",
    "apps_mcp_product_sku",
    "model_provider",
    "model_providers",
    "notify",
    "profile",
    "profiles",
    "experimental_realtime_webrtc_call_base_url",
    "experimental_realtime_ws_base_url",
    "otel",
];

const APPROVAL_POLICIES: &[&str] = &["untrusted", "on-failure", "on-request", "granular", "never"];
const SANDBOX_MODES: &[&str] = &["read-only", "workspace-write", "danger-full-access"];
/// The members of a `granular` approval policy, in the order they are written.
const GRANULAR: &[&str] = &[
    "sandbox_approval",
    "rules",
    "skill_approval",
    "request_permissions",
    "mcp_elicitations",
];

fn unknown_variant(value: &str, expected: &[&str], key: &str) -> String {
    let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    format!(
        "Failed to parse config requirements as TOML: unknown variant `{value}`, expected one of {}\nin `{key}`\n",
        list.join(", ")
    )
}

fn invalid(key: &str, what: &str) -> String {
    format!("Failed to parse config requirements as TOML: {what}\nin `{key}`\n")
}

/// A legacy `managed_config.toml` read as requirements: `approval_policy` →
/// `allowed_approval_policies`, `approvals_reviewer` →
/// `allowed_approvals_reviewers` (`auto_review` also allows `user`),
/// `sandbox_mode` → `allowed_sandbox_modes` (always with `read-only`). Other
/// keys are not requirements. Err: the reason, for a value that is not one
/// of the known ones.
pub fn legacy_requirements(managed: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    if let Some(v) = managed.get("approval_policy") {
        let policy = match v {
            Value::String(s) if APPROVAL_POLICIES.contains(&s.as_str()) && s != "granular" => {
                v.clone()
            }
            Value::String(s) => return Err(unknown_variant(s, APPROVAL_POLICIES, "approval_policy")),
            Value::Table(t) if t.len() == 1 && t.contains_key("granular") => {
                let Some(Value::Table(g)) = t.get("granular") else {
                    return Err(invalid("approval_policy", "granular must be a table"));
                };
                let mut flags = Map::new();
                for name in GRANULAR {
                    let flag = match g.get(*name) {
                        None => false,
                        Some(Value::Boolean(b)) => *b,
                        Some(_) => {
                            return Err(invalid("approval_policy", &format!("{name} must be a boolean")))
                        }
                    };
                    flags.insert(name.to_string(), Value::Boolean(flag));
                }
                let mut gt = Map::new();
                gt.insert("granular".into(), Value::Table(flags));
                Value::Table(gt)
            }
            _ => {
                return Err(invalid(
                    "approval_policy",
                    "expected a policy name or a `granular` table",
                ))
            }
        };
        out.insert("allowed_approval_policies".into(), Value::Array(vec![policy]));
    }
    if let Some(v) = managed.get("approvals_reviewer") {
        let allowed: &[&str] = match v.as_str() {
            Some("user") => &["user"],
            // `guardian_subagent` is the older name of `auto_review`.
            Some("auto_review" | "guardian_subagent") => &["auto_review", "user"],
            Some(s) => {
                return Err(unknown_variant(
                    s,
                    &["user", "auto_review", "guardian_subagent"],
                    "approvals_reviewer",
                ))
            }
            None => return Err(invalid("approvals_reviewer", "expected a string")),
        };
        out.insert("allowed_approvals_reviewers".into(), strings(allowed));
    }
    if let Some(v) = managed.get("sandbox_mode") {
        let mode = match v.as_str() {
            Some(s) if SANDBOX_MODES.contains(&s) => s,
            Some(s) => return Err(unknown_variant(s, SANDBOX_MODES, "sandbox_mode")),
            None => return Err(invalid("sandbox_mode", "expected a string")),
        };
        // Codex cannot work without read-only, so it is always allowed.
        let allowed: &[&str] = if mode == "read-only" {
            &["read-only"]
        } else {
            &["read-only", mode]
        };
        out.insert("allowed_sandbox_modes".into(), strings(allowed));
    }
    Ok(out)
}

fn strings(list: &[&str]) -> Value {
    Value::Array(list.iter().map(|s| Value::String(s.to_string())).collect())
}

/// The text of a projected table, as `toml` writes it.
pub fn to_text(table: &Map<String, Value>) -> Result<String, String> {
    toml::to_string(table).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Map<String, Value> {
        toml::from_str(text).unwrap()
    }

    fn paths(p: &[&[&str]]) -> Vec<Vec<String>> {
        p.iter()
            .map(|k| k.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn projected(text: &str, p: &[&[&str]]) -> Option<String> {
        project(&table(text), &Selector::new(&paths(p))).map(|t| to_text(&t).unwrap())
    }

    #[test]
    fn projection_keeps_selected_tables_whole_in_file_order() {
        let src = "model = \"x\"\n[mcp_servers.zeta]\nurl = \"z\"\n[mcp_servers.a]\nurl = \"a\"\n[mcp_servers.a.http_headers]\nX-A = \"1\"\n";
        assert_eq!(
            projected(src, &[&["mcp_servers"]]).unwrap(),
            "[mcp_servers.zeta]\nurl = \"z\"\n\n[mcp_servers.a]\nurl = \"a\"\n\n[mcp_servers.a.http_headers]\nX-A = \"1\"\n"
        );
        assert_eq!(projected(src, &[&["nothing"]]), None);
        // A table on the way keeps only selected keys, and stays when empty.
        assert_eq!(
            projected(src, &[&["mcp_servers", "a", "url"]]).unwrap(),
            "[mcp_servers.a]\nurl = \"a\"\n"
        );
        assert_eq!(
            projected(src, &[&["mcp_servers", "none"]]).unwrap(),
            "[mcp_servers]\n"
        );
        // A value that is not a table, met on the way, is kept.
        assert_eq!(
            projected("mcp_servers = 5\n", &[&["mcp_servers", "x"]]).unwrap(),
            "mcp_servers = 5\n"
        );
        // A shorter path wins over a longer one, in either order.
        for p in [
            &[&["mcp_servers", "a", "url"][..], &["mcp_servers"][..]][..],
            &[&["mcp_servers"][..], &["mcp_servers", "a", "url"][..]][..],
        ] {
            assert!(projected(src, p).unwrap().contains("zeta"));
        }
    }

    #[test]
    fn inline_tables_are_written_as_tables() {
        assert_eq!(
            projected(
                "[mcp_servers.r]\nidentity = { url = \"u\" }\nallowed = [\"read-only\"]\n",
                &[&["mcp_servers"]]
            )
            .unwrap(),
            "[mcp_servers.r]\nallowed = [\"read-only\"]\n\n[mcp_servers.r.identity]\nurl = \"u\"\n"
        );
    }

    #[test]
    fn merge_is_deep() {
        let mut a = table("[p.\"/x\"]\ntrust_level = \"untrusted\"\nk = 1\n");
        merge(&mut a, &table("[p.\"/x\"]\ntrust_level = \"trusted\"\n"));
        assert_eq!(a["p"]["/x"]["trust_level"].as_str(), Some("trusted"));
        assert_eq!(a["p"]["/x"]["k"].as_integer(), Some(1));
    }

    #[test]
    fn legacy_managed_config_as_requirements() {
        let r = |t: &str| legacy_requirements(&table(t)).map(|m| to_text(&m).unwrap());
        assert_eq!(
            r("approval_policy = \"never\"\nsandbox_mode = \"workspace-write\"\nother = 1\n").unwrap(),
            "allowed_approval_policies = [\"never\"]\nallowed_sandbox_modes = [\"read-only\", \"workspace-write\"]\n"
        );
        assert_eq!(
            r("approvals_reviewer = \"guardian_subagent\"\nsandbox_mode = \"read-only\"\n").unwrap(),
            "allowed_approvals_reviewers = [\"auto_review\", \"user\"]\nallowed_sandbox_modes = [\"read-only\"]\n"
        );
        assert_eq!(
            r("approval_policy = { granular = { sandbox_approval = true, rules = false, mcp_elicitations = true } }\n").unwrap(),
            "[[allowed_approval_policies]]\n\n[allowed_approval_policies.granular]\nsandbox_approval = true\nrules = false\nskill_approval = false\nrequest_permissions = false\nmcp_elicitations = true\n"
        );
        assert_eq!(
            r("approval_policy = \"bogus\"\n").unwrap_err(),
            "Failed to parse config requirements as TOML: unknown variant `bogus`, expected one of `untrusted`, `on-failure`, `on-request`, `granular`, `never`\nin `approval_policy`\n"
        );
        assert_eq!(r("x = 1\n").unwrap(), "");
    }
}
