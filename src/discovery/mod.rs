//! `capabilities/discoverV2` (docs/protocol.md "Capability discovery"): the
//! skills that exist on the executor, for a client that offers them to its model.
//!
//! Two roots, in this order: `$CODEX_HOME/skills` (`codex-home-skills`, default
//! `~/.codex/skills`, `.system/` included) and `~/.agents/skills`
//! (`user-agent-skills`). Below each, every directory holding a `SKILL.md` whose
//! front matter parses is a skill (skills may nest), found depth first in
//! bytewise name order, at most [`MAX_DEPTH`] levels and [`MAX_DIRS`] directories
//! deep per root. `agents/openai.yaml` beside a `SKILL.md` gives its policy and
//! dependencies. With a `sandbox`, only what the policy lets be read (by real
//! path) is looked at. Nothing is written and no process is started.

use crate::protocol::discovery::{
    Dependencies, DiscoverV2Result, DiscoveryRoot, Skill, SkillPolicy, ToolDependency,
};
use crate::protocol::paths::to_uri;
use crate::sandbox::policy::{Access, Policy, PolicyError, Resolved};
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// Directory levels looked at below a root.
pub const MAX_DEPTH: usize = 6;
/// Directories read per root.
pub const MAX_DIRS: usize = 2_000;
/// Largest `SKILL.md` or `openai.yaml` read.
pub const MAX_FILE: u64 = 1024 * 1024;
/// The one warning, when a `SKILL.md` could not be used.
pub const INCOMPLETE: &str =
    "some capability metadata could not be loaded; discovery may be incomplete";

/// Where the roots are: the server's `$HOME` and Codex home.
pub struct Homes {
    pub home: Option<PathBuf>,
    pub codex_home: Option<PathBuf>,
}

impl Homes {
    /// The server's home ([`crate::sys::home_dir`]) and `$CODEX_HOME` (default
    /// `<home>/.codex`).
    pub fn from_env() -> Homes {
        let home = crate::sys::home_dir();
        let codex_home = std::env::var_os("CODEX_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".codex")));
        Homes { home, codex_home }
    }
}

/// Decide what may be read: everything, or what `r` allows.
enum Reader {
    All,
    Policy(Resolved),
}

impl Reader {
    fn from(sandbox: Option<&serde_json::Value>) -> Result<Reader, PolicyError> {
        let Some(ctx) = crate::sandbox::policy::parse(sandbox)? else {
            return Ok(Reader::All);
        };
        Ok(match ctx.policy {
            Policy::Restricted(r) if !r.full_read() => Reader::Policy(r),
            _ => Reader::All,
        })
    }

    /// Whether `p` (any spelling) may be read: its real path decides.
    fn may_read(&self, p: &Path) -> bool {
        match self {
            Reader::All => true,
            Reader::Policy(r) => fs::canonicalize(p)
                .is_ok_and(|real| matches!(r.access(&real), Some(Access::Read | Access::Write))),
        }
    }
}

/// Discover the skills under the roots of `homes`, as `sandbox` allows.
pub fn discover_v2(
    homes: &Homes,
    sandbox: Option<&serde_json::Value>,
) -> Result<DiscoverV2Result, PolicyError> {
    let reader = Reader::from(sandbox)?;
    let mut out = DiscoverV2Result::default();
    let mut incomplete = false;
    let roots = [
        ("codex-home-skills", homes.codex_home.as_ref().map(|h| h.join("skills"))),
        (
            "user-agent-skills",
            homes.home.as_ref().map(|h| h.join(".agents").join("skills")),
        ),
    ];
    for (id, root) in roots {
        let Some(root) = root else { continue };
        let at = DiscoveryRoot {
            id: id.into(),
            path: to_uri(&root),
        };
        let mut walk = Walk {
            reader: &reader,
            root: at,
            seen: HashSet::new(),
            dirs: 0,
            skills: &mut out.skills,
            incomplete: &mut incomplete,
        };
        walk.dir(&root, 0);
    }
    if incomplete {
        out.warnings.push(INCOMPLETE.into());
    }
    Ok(out)
}

struct Walk<'a> {
    reader: &'a Reader,
    root: DiscoveryRoot,
    /// (device, inode) of the directories read: a link loop is read once.
    seen: HashSet<(u64, u64)>,
    dirs: usize,
    skills: &'a mut Vec<Skill>,
    incomplete: &'a mut bool,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH || self.dirs >= MAX_DIRS || !self.reader.may_read(dir) {
            return;
        }
        let Ok(meta) = fs::metadata(dir) else { return };
        if !meta.is_dir() || !self.seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        self.dirs += 1;
        let skill_md = dir.join("SKILL.md");
        if skill_md.is_file() && self.reader.may_read(&skill_md) {
            match skill(dir, &skill_md, self.reader) {
                Some((name, description, short, dependencies, policy)) => {
                    self.skills.push(Skill {
                        name,
                        description,
                        short_description: short,
                        path: to_uri(&skill_md),
                        discovery_root: self.root.clone(),
                        dependencies,
                        policy,
                    })
                }
                None => *self.incomplete = true,
            }
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let sub = dir.join(&name);
            if sub.is_dir() {
                self.dir(&sub, depth + 1);
            }
        }
    }
}

type Found = (
    String,
    String,
    Option<String>,
    Option<Dependencies>,
    Option<SkillPolicy>,
);

/// A skill's metadata, or `None` when its `SKILL.md` has no usable front matter.
fn skill(dir: &Path, skill_md: &Path, reader: &Reader) -> Option<Found> {
    let text = read_small(skill_md)?;
    let fm = front_matter(&text)?;
    let doc = YamlLoader::load_from_str(fm).ok()?.into_iter().next()?;
    doc.as_hash()?;
    let name = doc["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))?;
    let description = doc["description"].as_str().unwrap_or("").to_string();
    let short = doc["metadata"]["short-description"]
        .as_str()
        .map(str::to_string);
    let yaml = dir.join("agents").join("openai.yaml");
    let extra = (yaml.is_file() && reader.may_read(&yaml))
        .then(|| read_small(&yaml))
        .flatten()
        .and_then(|t| YamlLoader::load_from_str(&t).ok())
        .and_then(|d| d.into_iter().next());
    let (dependencies, policy) = match extra {
        Some(y) => (dependencies_of(&y["dependencies"]), policy_of(&y["policy"])),
        None => (None, None),
    };
    Some((name, description, short, dependencies, policy))
}

fn read_small(p: &Path) -> Option<String> {
    let f = fs::File::open(p).ok()?;
    let mut s = String::new();
    f.take(MAX_FILE).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The YAML between a first line `---` and the next line `---`.
fn front_matter(text: &str) -> Option<&str> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some(&rest[..at]);
        }
        at += line.len();
    }
    None
}

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn dependencies_of(y: &Yaml) -> Option<Dependencies> {
    let tools = y["tools"].as_vec()?;
    Some(Dependencies {
        tools: tools
            .iter()
            .map(|t| ToolDependency {
                kind: text(&t["type"]),
                value: text(&t["value"]),
                description: text(&t["description"]),
                transport: text(&t["transport"]),
                command: text(&t["command"]),
                url: text(&t["url"]),
                oauth_callback_port: t["oauth_callback_port"]
                    .as_i64()
                    .and_then(|p| u64::try_from(p).ok()),
            })
            .collect(),
    })
}

fn policy_of(y: &Yaml) -> Option<SkillPolicy> {
    y.as_hash()?;
    Some(SkillPolicy {
        allow_implicit_invocation: y["allow_implicit_invocation"].as_bool(),
        products: y["products"]
            .as_vec()
            .map(|v| v.iter().filter_map(text).collect())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_between_the_dashes() {
        assert_eq!(front_matter("---\nname: a\n---\nbody"), Some("name: a\n"));
        assert_eq!(front_matter("---\r\nname: a\r\n---\r\n"), Some("name: a\r\n"));
        assert_eq!(front_matter("no front matter\n"), None);
        assert_eq!(front_matter("---\nname: a\n"), None);
    }
}
