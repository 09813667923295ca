//! Sandbox policies (docs/protocol.md "Sandbox"): parse the legacy `SandboxPolicy` and the
//! permission-profile shapes, then resolve them into concrete path entries.
//!
//! Over 500 lines, on purpose: the two wire shapes, their resolution into
//! entries, and the access decision on them are one contract (docs/protocol.md
//! "Sandbox", steps 1–4) that is easiest to check side by side; a third of the
//! file is its tests.

use super::glob::glob_match;
use crate::protocol::paths::parse_path;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What an entry grants. The order is the tie-break: deny beats write beats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
    Deny,
}

impl Access {
    /// How much it allows: deny < read < write.
    fn rank(self) -> u8 {
        match self {
            Access::Deny => 0,
            Access::Read => 1,
            Access::Write => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Restricted,
    Enabled,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Restricted => "restricted",
            Network::Enabled => "enabled",
        }
    }
}

/// A resolved entry: an absolute path (or a deny glob) and its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub access: Access,
}

/// The effective policy of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// No sandbox at all.
    Disabled,
    /// The filesystem is confined by someone else; only the network rules apply.
    External { network: Network },
    /// The filesystem is not restricted; only the network rules apply.
    Unrestricted { network: Network },
    /// Restricted filesystem: concrete entries.
    Restricted(Resolved),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub entries: Vec<Entry>,
    /// Deny glob patterns (absolute).
    pub globs: Vec<String>,
    pub glob_depth: u32,
    pub network: Network,
}

/// Why a sandbox context was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// -32602: the context does not decode.
    #[error("{0}")]
    Params(String),
    /// -32600 with this exact text.
    #[error("file system sandbox context with dynamic permissions requires cwd")]
    NeedsCwd,
    /// -32600 `sandbox cannot be enforced: <reason>`.
    #[error("sandbox cannot be enforced: {0}")]
    Unenforceable(String),
}

fn params(msg: impl Into<String>) -> PolicyError {
    PolicyError::Params(msg.into())
}

/// The sandbox context of one request (docs/protocol.md "Sandbox"), decoded.
#[derive(Debug, Clone)]
pub struct Context {
    pub policy: Policy,
}

fn path_member(v: &Value, what: &str) -> Result<PathBuf, PolicyError> {
    let s = v
        .as_str()
        .ok_or_else(|| params(format!("{what} must be a path string")))?;
    parse_path(s).map_err(|e| params(format!("{what}: {e}")))
}

fn network_of(v: Option<&Value>) -> Result<Network, PolicyError> {
    match v {
        None | Some(Value::Null) => Ok(Network::Restricted),
        Some(Value::Bool(false)) => Ok(Network::Restricted),
        Some(Value::Bool(true)) => Ok(Network::Enabled),
        Some(Value::String(s)) if s == "restricted" => Ok(Network::Restricted),
        Some(Value::String(s)) if s == "enabled" => Ok(Network::Enabled),
        Some(other) => Err(params(format!(
            "unknown variant `{}`, expected `restricted` or `enabled`",
            other
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| other.to_string())
        ))),
    }
}

/// Paths the `minimal` special path expands to, when they exist.
const MINIMAL: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/etc",
    "/lib",
    "/lib64",
    "/nix/store",
    "/run/current-system/sw",
];
/// Names protected at the top of every writable root (docs/protocol.md "Sandbox" step 2).
pub const PROTECTED: &[&str] = &[".git", ".agents", ".codex", ".aws"];

/// Parse and resolve a `sandbox` member. `None` for absent or null.
pub fn parse(sandbox: Option<&Value>) -> Result<Option<Context>, PolicyError> {
    let Some(sb) = sandbox.filter(|s| !s.is_null()) else {
        return Ok(None);
    };
    let obj = sb
        .as_object()
        .ok_or_else(|| params("invalid type: sandbox must be an object"))?;
    let perms = obj
        .get("permissions")
        .ok_or_else(|| params("missing field `permissions`"))?;
    // `policyContext {cwd, workspaceRoots}` stands in for the top-level
    // members where they are absent (Codex 0.171 sends only it for some requests).
    let context = match obj.get("policyContext") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return Err(params("invalid type: policyContext must be an object")),
    };
    let member = |name: &str| -> Option<(&Value, String)> {
        match obj.get(name) {
            Some(v) if !v.is_null() => Some((v, name.to_string())),
            _ => context
                .and_then(|c| c.get(name))
                .filter(|v| !v.is_null())
                .map(|v| (v, format!("policyContext.{name}"))),
        }
    };
    let cwd = match member("cwd") {
        None => None,
        Some((v, what)) => Some(path_member(v, &what)?),
    };
    let roots = match member("workspaceRoots") {
        None => None,
        Some((Value::Array(a), what)) => Some(
            a.iter()
                .map(|v| path_member(v, &what))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some((_, what)) => return Err(params(format!("invalid type: {what} must be an array"))),
    };
    let ty = perms
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| params("missing field `type` in permissions"))?;
    let dynamic = Dynamic { cwd, roots };
    let policy = match ty {
        "disabled" | "danger-full-access" => Policy::Disabled,
        "external" => Policy::External { network: network_of(perms.get("network"))? },
        "external-sandbox" => Policy::External { network: network_of(perms.get("network_access"))? },
        "read-only" => {
            if perms.get("access").is_some_and(|a| !a.is_null()) {
                return Err(params("read-only.access is not supported: it would widen access"));
            }
            let network = network_of(perms.get("network_access"))?;
            resolve(vec![Raw::path("/", Access::Read)], vec![], 8, network, &dynamic)?
        }
        "workspace-write" => {
            if perms.get("read_only_access").is_some_and(|a| !a.is_null()) {
                return Err(params("workspace-write.read_only_access is not supported: it would widen access"));
            }
            let network = network_of(perms.get("network_access"))?;
            let flag = |k: &str| perms.get(k).and_then(Value::as_bool).unwrap_or(false);
            let mut raw = vec![Raw::path("/", Access::Read), Raw::Cwd(Access::Write)];
            if !flag("exclude_slash_tmp") {
                raw.push(Raw::SlashTmp(Access::Write));
            }
            if !flag("exclude_tmpdir_env_var") {
                raw.push(Raw::Tmpdir(Access::Write));
            }
            if let Some(w) = perms.get("writable_roots").filter(|w| !w.is_null()) {
                let w = w.as_array().ok_or_else(|| params("invalid type: writable_roots must be an array"))?;
                for p in w {
                    raw.push(Raw::Path(path_member(p, "writable_roots")?, Access::Write));
                }
            }
            resolve(raw, vec![], 8, network, &dynamic)?
        }
        "managed" => {
            let network = network_of(perms.get("network"))?;
            let fs = perms.get("file_system").ok_or_else(|| params("missing field `file_system`"))?;
            match fs.get("type").and_then(Value::as_str) {
                Some("unrestricted") => Policy::Unrestricted { network },
                Some("restricted") => {
                    let depth = match fs.get("glob_scan_max_depth") {
                        None | Some(Value::Null) => 8,
                        Some(v) => v
                            .as_u64()
                            .filter(|d| *d >= 1)
                            .ok_or_else(|| params("glob_scan_max_depth must be an integer >= 1"))?
                            as u32,
                    };
                    let entries = fs.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
                    let (raw, globs) = parse_entries(&entries)?;
                    resolve(raw, globs, depth, network, &dynamic)?
                }
                Some(other) => return Err(params(format!("unknown variant `{other}`, expected `unrestricted` or `restricted`"))),
                None => return Err(params("missing field `type` in file_system")),
            }
        }
        other => {
            return Err(params(format!(
                "unknown variant `{other}`, expected one of `disabled`, `external`, `managed`, `danger-full-access`, `read-only`, `workspace-write`, `external-sandbox`"
            )))
        }
    };
    Ok(Some(Context { policy }))
}

/// An entry before expansion.
#[derive(Debug, Clone)]
enum Raw {
    Path(PathBuf, Access),
    Root(Access),
    Minimal(Access),
    Cwd(Access),
    ProjectRoots(Option<String>, Access),
    Tmpdir(Access),
    SlashTmp(Access),
}

impl Raw {
    fn path(p: &str, a: Access) -> Raw {
        if p == "/" {
            Raw::Root(a)
        } else {
            Raw::Path(PathBuf::from(p), a)
        }
    }
}

fn parse_access(v: Option<&Value>) -> Result<Access, PolicyError> {
    match v.and_then(Value::as_str) {
        Some("read") => Ok(Access::Read),
        Some("write") => Ok(Access::Write),
        Some("deny") | Some("none") => Ok(Access::Deny),
        Some(other) => Err(params(format!(
            "unknown variant `{other}`, expected one of `read`, `write`, `deny`, `none`"
        ))),
        None => Err(params("missing field `access`")),
    }
}

fn parse_entries(entries: &[Value]) -> Result<(Vec<Raw>, Vec<String>), PolicyError> {
    let mut raw = Vec::new();
    let mut globs = Vec::new();
    for e in entries {
        let access = parse_access(e.get("access"))?;
        let p = e
            .get("path")
            .ok_or_else(|| params("missing field `path` in entry"))?;
        match p.get("type").and_then(Value::as_str) {
            Some("path") => {
                let path = path_member(p.get("path").unwrap_or(&Value::Null), "path")?;
                raw.push(if path == Path::new("/") {
                    Raw::Root(access)
                } else {
                    Raw::Path(path, access)
                });
            }
            Some("glob_pattern") => {
                let pat = p
                    .get("pattern")
                    .and_then(Value::as_str)
                    .ok_or_else(|| params("missing field `pattern`"))?;
                if access != Access::Deny {
                    return Err(PolicyError::Unenforceable(
                        "glob_pattern entries are only supported with deny access".into(),
                    ));
                }
                if !pat.starts_with('/') {
                    return Err(params(format!("glob pattern `{pat}` must be absolute")));
                }
                globs.push(pat.to_string());
            }
            Some("special") => {
                let v = p
                    .get("value")
                    .ok_or_else(|| params("missing field `value` in special path"))?;
                let kind = v
                    .get("kind")
                    .and_then(Value::as_str)
                    .ok_or_else(|| params("missing field `kind`"))?;
                match kind {
                    "root" => raw.push(Raw::Root(access)),
                    "minimal" => raw.push(Raw::Minimal(access)),
                    "current_working_directory" => raw.push(Raw::Cwd(access)),
                    "tmpdir" => raw.push(Raw::Tmpdir(access)),
                    "slash_tmp" => raw.push(Raw::SlashTmp(access)),
                    "project_roots" => {
                        let sub = v.get("subpath").and_then(Value::as_str).map(str::to_string);
                        raw.push(Raw::ProjectRoots(sub, access));
                    }
                    "unknown" => {}
                    other => return Err(params(format!("unknown special path kind `{other}`"))),
                }
            }
            Some(other) => return Err(params(format!("unknown path type `{other}`"))),
            None => return Err(params("missing field `type` in path")),
        }
    }
    Ok((raw, globs))
}

struct Dynamic {
    cwd: Option<PathBuf>,
    roots: Option<Vec<PathBuf>>,
}

impl Dynamic {
    fn cwd(&self) -> Result<&Path, PolicyError> {
        self.cwd.as_deref().ok_or(PolicyError::NeedsCwd)
    }
    fn roots(&self) -> Result<Vec<PathBuf>, PolicyError> {
        match &self.roots {
            Some(r) => Ok(r.clone()),
            None => Ok(vec![self.cwd()?.to_path_buf()]),
        }
    }
}

fn join_sub(root: &Path, sub: &str) -> PathBuf {
    let joined = root.join(sub.trim_start_matches('/'));
    parse_path(&joined.to_string_lossy()).unwrap_or(joined)
}

fn resolve(
    raw: Vec<Raw>,
    globs: Vec<String>,
    glob_depth: u32,
    network: Network,
    d: &Dynamic,
) -> Result<Policy, PolicyError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut push = |path: PathBuf, access| entries.push(Entry { path, access });
    for r in raw {
        match r {
            Raw::Path(p, a) => push(p, a),
            Raw::Root(a) => push(PathBuf::from("/"), a),
            Raw::Minimal(a) => {
                for m in MINIMAL {
                    if Path::new(m).exists() {
                        push(PathBuf::from(m), a);
                    }
                }
            }
            Raw::Cwd(a) => push(d.cwd()?.to_path_buf(), a),
            Raw::ProjectRoots(sub, a) => {
                for root in d.roots()? {
                    push(
                        match &sub {
                            Some(s) => join_sub(&root, s),
                            None => root,
                        },
                        a,
                    );
                }
            }
            Raw::Tmpdir(a) => {
                if let Some(t) = std::env::var_os("TMPDIR")
                    .map(PathBuf::from)
                    .filter(|t| t.is_absolute())
                {
                    push(t, a);
                }
            }
            Raw::SlashTmp(a) => {
                if Path::new("/tmp").is_dir() {
                    push(PathBuf::from("/tmp"), a);
                }
            }
        }
    }
    let mut r = Resolved {
        entries,
        globs,
        glob_depth,
        network,
    };
    // Step 2: protected names at the top of every writable root.
    if !r.full_write() {
        let writable: Vec<PathBuf> = r
            .entries
            .iter()
            .filter(|e| e.access == Access::Write && e.path != Path::new("/"))
            .map(|e| e.path.clone())
            .collect();
        for root in writable {
            for name in PROTECTED {
                r.entries.push(Entry {
                    path: root.join(name),
                    access: Access::Read,
                });
            }
            if let Ok(text) = std::fs::read_to_string(root.join(".git")) {
                if let Some(dir) = text.lines().next().and_then(|l| l.strip_prefix("gitdir:")) {
                    let dir = Path::new(dir.trim());
                    let dir = if dir.is_absolute() {
                        dir.to_path_buf()
                    } else {
                        root.join(dir)
                    };
                    if let Ok(p) = parse_path(&dir.to_string_lossy()) {
                        r.entries.push(Entry {
                            path: p,
                            access: Access::Read,
                        });
                    }
                }
            }
        }
    }
    // Step 4: roots canonicalised; narrowing entries also apply to their real path.
    let narrowing: Vec<bool> = r.entries.iter().map(|e| r.is_narrowing(e)).collect();
    let mut extra = Vec::new();
    for (e, narrow) in r.entries.iter_mut().zip(narrowing) {
        let Ok(real) = std::fs::canonicalize(&e.path) else {
            continue;
        };
        if real == e.path {
            continue;
        }
        if narrow {
            extra.push(Entry {
                path: real,
                access: e.access,
            });
        } else {
            e.path = real;
        }
    }
    r.entries.extend(extra);
    r.entries
        .sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    r.entries.dedup();
    Ok(Policy::Restricted(r))
}

impl Resolved {
    /// The entry deciding `p` among `entries`: most components, then deny > write > read.
    fn decide<'a>(entries: impl Iterator<Item = &'a Entry>, p: &Path) -> Option<Access> {
        let mut best: Option<(usize, Access)> = None;
        for e in entries {
            if p.starts_with(&e.path) {
                let n = e.path.components().count();
                match best {
                    Some((bn, ba)) if bn > n || (bn == n && ba >= e.access) => {}
                    _ => best = Some((n, e.access)),
                }
            }
        }
        best.map(|(_, a)| a)
    }

    /// The access of path `p` (docs/protocol.md "Sandbox" step 3); `None` means no access.
    /// A deny glob that matches `p` or any directory above it denies `p`: what a
    /// denied directory holds is denied with it, as the mount layer masks it.
    pub fn access(&self, p: &Path) -> Option<Access> {
        if self
            .globs
            .iter()
            .any(|g| p.ancestors().any(|a| glob_match(g, a)))
        {
            return Some(Access::Deny);
        }
        Self::decide(self.entries.iter(), p)
    }

    /// An entry whose access is lower than that of its nearest ancestor entry.
    pub fn is_narrowing(&self, e: &Entry) -> bool {
        let parent = e.path.parent();
        let Some(parent) = parent else { return false };
        let ancestors = self.entries.iter().filter(|o| o.path != e.path);
        match Self::decide(ancestors, parent) {
            Some(a) => e.access.rank() < a.rank(),
            None => false,
        }
    }

    pub fn narrowing(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| self.is_narrowing(e))
            .collect()
    }

    fn root_access(&self) -> Option<Access> {
        self.entries
            .iter()
            .filter(|e| e.path == Path::new("/"))
            .map(|e| e.access)
            .max()
    }

    /// `root` readable and no deny anywhere.
    pub fn full_read(&self) -> bool {
        matches!(self.root_access(), Some(Access::Read | Access::Write))
            && self.globs.is_empty()
            && !self.entries.iter().any(|e| e.access == Access::Deny)
    }

    /// `root` writable and nothing narrows it.
    pub fn full_write(&self) -> bool {
        self.root_access() == Some(Access::Write)
            && self.globs.is_empty()
            && self.narrowing().is_empty()
    }

    /// Roots that grant `access` (not narrowing entries).
    pub fn roots(&self, access: Access) -> Vec<&Path> {
        self.entries
            .iter()
            .filter(|e| e.access == access && !self.is_narrowing(e))
            .map(|e| e.path.as_path())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolved(v: Value) -> Resolved {
        match parse(Some(&v)).unwrap().unwrap().policy {
            Policy::Restricted(r) => r,
            other => panic!("not restricted: {other:?}"),
        }
    }

    fn codex_workspace_write(cwd: &str) -> Value {
        json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
            {"path":{"type":"special","value":{"kind":"root"}},"access":"read"},
            {"path":{"type":"special","value":{"kind":"project_roots"}},"access":"write"},
            {"path":{"type":"special","value":{"kind":"slash_tmp"}},"access":"write"},
            {"path":{"type":"special","value":{"kind":"tmpdir"}},"access":"write"},
            {"path":{"type":"special","value":{"kind":"project_roots","subpath":".git"}},"access":"read","missing_path_behavior":"skip"}]},
            "network":"restricted"},"cwd":cwd,"workspaceRoots":[cwd],"windowsSandboxLevel":"disabled"})
    }

    #[test]
    fn unrestricted_shapes() {
        for v in [
            json!({"permissions":{"type":"disabled"}}),
            json!({"permissions":{"type":"danger-full-access"}}),
        ] {
            assert_eq!(parse(Some(&v)).unwrap().unwrap().policy, Policy::Disabled);
        }
        let v = json!({"permissions":{"type":"external","network":"enabled"}});
        assert_eq!(
            parse(Some(&v)).unwrap().unwrap().policy,
            Policy::External {
                network: Network::Enabled
            }
        );
        let v = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"unrestricted"}}});
        assert_eq!(
            parse(Some(&v)).unwrap().unwrap().policy,
            Policy::Unrestricted {
                network: Network::Restricted
            }
        );
        assert!(parse(None).unwrap().is_none());
        assert!(parse(Some(&Value::Null)).unwrap().is_none());
    }

    #[test]
    fn codex_workspace_write_resolves_with_carve_outs() {
        let d = std::env::temp_dir().join(format!("tether-policy-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let d = std::fs::canonicalize(&d).unwrap();
        let r = resolved(codex_workspace_write(d.to_str().unwrap()));
        assert_eq!(r.access(&d.join("src/a.rs")), Some(Access::Write));
        assert_eq!(r.access(&d.join(".git/config")), Some(Access::Read));
        assert_eq!(r.access(&d.join(".codex")), Some(Access::Read));
        assert_eq!(r.access(&d.join(".aws/credentials")), Some(Access::Read));
        assert_eq!(r.access(Path::new("/etc/passwd")), Some(Access::Read));
        assert_eq!(r.access(Path::new("/tmp/x")), Some(Access::Write));
        assert!(r.full_read());
        assert!(!r.full_write());
        let narrowing: Vec<_> = r.narrowing().iter().map(|e| e.path.clone()).collect();
        assert!(narrowing.contains(&d.join(".git")));
        assert!(narrowing.contains(&d.join(".agents")));
        // /tmp's carve-outs too: /tmp is a writable root.
        assert!(narrowing.contains(&PathBuf::from("/tmp/.git")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn gitdir_file_target_is_protected() {
        let d = std::env::temp_dir().join(format!("tether-gitdir-{}", std::process::id()));
        std::fs::create_dir_all(d.join("real-git")).unwrap();
        let d = std::fs::canonicalize(&d).unwrap();
        std::fs::write(
            d.join(".git"),
            format!("gitdir: {}\n", d.join("real-git").display()),
        )
        .unwrap();
        let r = resolved(codex_workspace_write(d.to_str().unwrap()));
        assert_eq!(r.access(&d.join("real-git/HEAD")), Some(Access::Read));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn most_specific_wins_then_deny_write_read() {
        let v = json!({"permissions":{"type":"managed","network":"restricted","file_system":{"type":"restricted","entries":[
            {"path":{"type":"special","value":{"kind":"minimal"}},"access":"read"},
            {"path":{"type":"path","path":"file:///home/u/proj"},"access":"write"},
            {"path":{"type":"path","path":"file:///home/u/proj/secrets"},"access":"deny"},
            {"path":{"type":"path","path":"/home/u/proj/tie"},"access":"read"},
            {"path":{"type":"path","path":"/home/u/proj/tie"},"access":"write"},
            {"path":{"type":"glob_pattern","pattern":"/home/u/proj/**/*.pem"},"access":"deny"}]}},"cwd":"file:///home/u/proj"});
        let r = resolved(v);
        assert_eq!(r.access(Path::new("/home/u/proj/a")), Some(Access::Write));
        assert_eq!(
            r.access(Path::new("/home/u/proj/secrets/k")),
            Some(Access::Deny)
        );
        assert_eq!(
            r.access(Path::new("/home/u/proj/tie/x")),
            Some(Access::Write)
        );
        assert_eq!(
            r.access(Path::new("/home/u/proj/sub/dir/key.pem")),
            Some(Access::Deny)
        );
        assert_eq!(r.access(Path::new("/home/u/other")), None);
        assert_eq!(r.access(Path::new("/usr/bin/sh")), Some(Access::Read));
        assert!(!r.full_read());
        // Protected names apply to the explicit writable root too.
        assert_eq!(
            r.access(Path::new("/home/u/proj/.git/x")),
            Some(Access::Read)
        );
    }

    #[test]
    fn legacy_policies() {
        let r = resolved(json!({"permissions":{"type":"read-only"}}));
        assert_eq!(r.access(Path::new("/x")), Some(Access::Read));
        assert!(r.full_read());
        assert_eq!(r.network, Network::Restricted);
        let r = resolved(
            json!({"permissions":{"type":"workspace-write","writable_roots":["/home/u/cache"],
            "network_access":true,"exclude_slash_tmp":true},"cwd":"/home/u/proj"}),
        );
        assert_eq!(r.access(Path::new("/home/u/proj/x")), Some(Access::Write));
        assert_eq!(r.access(Path::new("/home/u/cache/x")), Some(Access::Write));
        assert_eq!(r.access(Path::new("/tmp/x")), Some(Access::Read));
        assert_eq!(r.network, Network::Enabled);
        let e = parse(Some(
            &json!({"permissions":{"type":"read-only","access":{"x":1}}}),
        ))
        .unwrap_err();
        assert!(matches!(e, PolicyError::Params(_)));
    }

    #[test]
    fn policy_context_stands_in_for_absent_members() {
        // Only policyContext, as Codex 0.171 sends for `fs/open` mode `replace`.
        let r = resolved(json!({"permissions":{"type":"workspace-write","exclude_slash_tmp":true,
            "exclude_tmpdir_env_var":true},
            "policyContext":{"cwd":"file:///home/u/proj","workspaceRoots":["file:///home/u/other"]}}));
        assert_eq!(r.access(Path::new("/home/u/proj/x")), Some(Access::Write));
        // The top-level members win where present.
        let r = resolved(json!({"permissions":{"type":"workspace-write","exclude_slash_tmp":true,
            "exclude_tmpdir_env_var":true},"cwd":"/home/u/top",
            "policyContext":{"cwd":"file:///home/u/proj"}}));
        assert_eq!(r.access(Path::new("/home/u/top/x")), Some(Access::Write));
        assert_eq!(r.access(Path::new("/home/u/proj/x")), Some(Access::Read));
        let e = parse(Some(&json!({"permissions":{"type":"workspace-write"},
            "policyContext":{"cwd":"rel"}})))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "policyContext.cwd: invalid URI: relative URL without a base"
        );
        let e = parse(Some(&json!({"permissions":{"type":"workspace-write"},"policyContext":{}})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "file system sandbox context with dynamic permissions requires cwd"
        );
    }

    #[test]
    fn errors() {
        let e = parse(Some(&json!({"permissions":{"type":"workspace-write"}}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file system sandbox context with dynamic permissions requires cwd"
        );
        let e = parse(Some(
            &json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
            {"path":{"type":"glob_pattern","pattern":"/a/*"},"access":"read"}]}}}),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "sandbox cannot be enforced: glob_pattern entries are only supported with deny access"
        );
        assert!(matches!(
            parse(Some(&json!({"permissions":{"type":"bogus"}}))),
            Err(PolicyError::Params(_))
        ));
        assert!(matches!(
            parse(Some(&json!({}))),
            Err(PolicyError::Params(_))
        ));
        let e = parse(Some(
            &json!({"permissions":{"type":"managed","file_system":{"type":"restricted","entries":[
            {"path":{"type":"special","value":{"kind":"root"}},"access":"sometimes"}]}}}),
        ))
        .unwrap_err();
        assert!(matches!(e, PolicyError::Params(_)));
    }
}
